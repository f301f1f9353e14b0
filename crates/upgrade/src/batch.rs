//! Rolling batches (`--batch`) and the failure budget (`--max-fail`).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// One size of a `--batch` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchSize {
    /// A number of hosts (at least 1).
    Count(usize),
    /// A percentage (1 to 100) of all target hosts, rounded up, at least 1.
    Percent(u32),
}

impl BatchSize {
    /// The number of hosts for `total` target hosts.
    pub fn hosts(self, total: usize) -> usize {
        match self {
            BatchSize::Count(n) => n,
            BatchSize::Percent(p) => (total * p as usize).div_ceil(100).max(1),
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A `--batch` value: `5`, `10%` or a list like `1,10%,100%`.
///
/// Batch *i* takes the *i*-th size of the list; once the list is used up its
/// last size repeats; the last batch takes whatever hosts remain (so it may
/// be smaller). The first batch is the canary. Percentages are of all target
/// hosts, rounded up, at least one host. Without `--batch`, all hosts form a
/// single batch (`100%`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSpec(pub Vec<BatchSize>);

impl BatchSpec {
    /// All hosts at once.
    pub fn all() -> BatchSpec {
        BatchSpec(vec![BatchSize::Percent(100)])
    }

    /// Splits `hosts` (in order) into batches.
    pub fn split<T: Clone>(&self, hosts: &[T]) -> Vec<Vec<T>> {
        let total = hosts.len();
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while start < total {
            let size = self.0[i.min(self.0.len() - 1)].hosts(total).max(1);
            let end = (start + size).min(total);
            out.push(hosts[start..end].to_vec());
            start = end;
            i += 1;
        }
        out
    }
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec::all()
    }
}

impl fmt::Display for BatchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|s| s.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// A `--batch` or `--max-fail` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {option} `{value}`: {reason}")]
pub struct SpecError {
    /// `--batch` or `--max-fail`.
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What is expected.
    pub reason: String,
}

fn parse_percent(option: &'static str, whole: &str, part: &str) -> Result<u32, SpecError> {
    let err = |reason: &str| SpecError {
        option,
        value: whole.to_owned(),
        reason: reason.to_owned(),
    };
    let digits = part.strip_suffix('%').unwrap_or(part);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(err(&format!("`{part}` is not a percentage like 10%")));
    }
    let p: u32 = digits
        .parse()
        .map_err(|_| err(&format!("`{part}` is too large")))?;
    if p > 100 {
        return Err(err(&format!("`{part}` is more than 100%")));
    }
    Ok(p)
}

impl FromStr for BatchSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<BatchSpec, SpecError> {
        let err = |reason: String| SpecError {
            option: "--batch",
            value: s.to_owned(),
            reason,
        };
        if s.trim().is_empty() {
            return Err(err(
                "expected a count (5), a percentage (10%) or a list (1,10%,100%)".into(),
            ));
        }
        let mut sizes = Vec::new();
        for part in s.split(',').map(str::trim) {
            if part.ends_with('%') {
                let p = parse_percent("--batch", s, part)?;
                if p == 0 {
                    return Err(err("a batch of 0% has no hosts".into()));
                }
                sizes.push(BatchSize::Percent(p));
            } else {
                if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err(format!(
                        "`{part}` is neither a count (5) nor a percentage (10%)"
                    )));
                }
                let n: usize = part
                    .parse()
                    .map_err(|_| err(format!("`{part}` is too large")))?;
                if n == 0 {
                    return Err(err("a batch of 0 hosts has no hosts".into()));
                }
                sizes.push(BatchSize::Count(n));
            }
        }
        Ok(BatchSpec(sizes))
    }
}

/// A `--max-fail` value: how many hosts may fail over the whole run before
/// no new batch starts. `N` hosts, or `P%` of all target hosts rounded down.
/// The default is 0: any failure stops the rollout after the current batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailBudget {
    /// At most this many failed hosts.
    Count(usize),
    /// At most this percentage of the target hosts.
    Percent(u32),
}

impl FailBudget {
    /// How many hosts may fail out of `total`.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            FailBudget::Count(n) => n,
            FailBudget::Percent(p) => total * p as usize / 100,
        }
    }

    /// True when `failed` failures out of `total` hosts exceed the budget.
    pub fn exceeded(self, failed: usize, total: usize) -> bool {
        failed > self.allowed(total)
    }
}

impl Default for FailBudget {
    fn default() -> Self {
        FailBudget::Count(0)
    }
}

impl fmt::Display for FailBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailBudget::Count(n) => write!(f, "{n}"),
            FailBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for FailBudget {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<FailBudget, SpecError> {
        let s_trim = s.trim();
        if s_trim.ends_with('%') {
            return parse_percent("--max-fail", s, s_trim).map(FailBudget::Percent);
        }
        if s_trim.is_empty() || !s_trim.chars().all(|c| c.is_ascii_digit()) {
            return Err(SpecError {
                option: "--max-fail",
                value: s.to_owned(),
                reason: "expected a number of hosts (2) or a percentage (10%)".into(),
            });
        }
        s_trim
            .parse()
            .map(FailBudget::Count)
            .map_err(|_| SpecError {
                option: "--max-fail",
                value: s.to_owned(),
                reason: "too large".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(spec: &str, total: usize) -> Vec<usize> {
        let hosts: Vec<usize> = (0..total).collect();
        let batches = spec.parse::<BatchSpec>().unwrap().split(&hosts);
        // Every host exactly once, in order.
        let flat: Vec<usize> = batches.iter().flatten().copied().collect();
        assert_eq!(flat, hosts);
        batches.iter().map(Vec::len).collect()
    }

    #[test]
    fn counts_repeat_and_leave_the_rest_last() {
        assert_eq!(sizes("5", 12), [5, 5, 2]);
        assert_eq!(sizes("5", 5), [5]);
        assert_eq!(sizes("5", 3), [3]);
        assert_eq!(sizes("1", 3), [1, 1, 1]);
    }

    #[test]
    fn percentages_round_up_and_are_at_least_one() {
        assert_eq!(sizes("10%", 20), [2; 10]);
        assert_eq!(sizes("10%", 15), [2, 2, 2, 2, 2, 2, 2, 1]);
        assert_eq!(sizes("10%", 4), [1, 1, 1, 1]);
        assert_eq!(sizes("100%", 7), [7]);
        assert_eq!(sizes("1%", 3), [1, 1, 1]);
    }

    #[test]
    fn lists_start_with_the_canary() {
        assert_eq!(sizes("1,10%,100%", 20), [1, 2, 17]);
        assert_eq!(sizes("1,10%", 20), [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1]);
        assert_eq!(sizes("1, 5", 12), [1, 5, 5, 1]);
        assert_eq!(sizes("2,50%", 2), [2]);
        assert!(sizes("1,10%,100%", 0).is_empty());
    }

    #[test]
    fn default_is_one_batch() {
        let hosts = ["a", "b", "c"];
        assert_eq!(BatchSpec::default().split(&hosts), vec![hosts.to_vec()]);
        assert_eq!(BatchSpec::default().to_string(), "100%");
    }

    #[test]
    fn bad_batch_specs() {
        let cases = [
            ("", "expected a count (5), a percentage (10%) or a list"),
            ("0", "a batch of 0 hosts"),
            ("0%", "a batch of 0%"),
            ("150%", "`150%` is more than 100%"),
            ("1,,2", "`` is neither a count"),
            ("-1", "`-1` is neither a count"),
            ("x%", "`x%` is not a percentage"),
            ("1.5", "`1.5` is neither"),
        ];
        for (input, reason) in cases {
            let e = input.parse::<BatchSpec>().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --batch `{input}`: ")),
                "{e}"
            );
            assert!(e.contains(reason), "{input}: {e}");
        }
        assert_eq!(
            "1,10%,100%".parse::<BatchSpec>().unwrap().to_string(),
            "1,10%,100%"
        );
    }

    #[test]
    fn failure_budget() {
        let b: FailBudget = "2".parse().unwrap();
        assert_eq!(b.allowed(100), 2);
        assert!(!b.exceeded(2, 100));
        assert!(b.exceeded(3, 100));
        let p: FailBudget = "10%".parse().unwrap();
        assert_eq!(p.allowed(20), 2);
        assert_eq!(p.allowed(25), 2);
        assert_eq!(p.allowed(5), 0);
        assert!(p.exceeded(1, 5));
        assert!(!p.exceeded(2, 20));
        assert!(p.exceeded(3, 20));
        assert_eq!(FailBudget::default().allowed(50), 0);
        assert_eq!("0%".parse::<FailBudget>().unwrap(), FailBudget::Percent(0));
        for bad in ["", "x", "-1", "101%", "1.5%"] {
            let e = bad.parse::<FailBudget>().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --max-fail `{bad}`: ")),
                "{e}"
            );
        }
    }
}
