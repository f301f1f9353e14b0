//! The one duration grammar of swh-deploy's flags (`--timeout`,
//! `--interval`...) and site file (`timeout = "30s"`).
//!
//! A duration is a plain number of seconds (`90`), or one or more
//! `<number><unit>` spans with the unit `ms`, `s`, `m` or `h`, summed
//! (`500ms`, `30s`, `15m`, `1h30m`). This is the subset of the `humantime`
//! grammar that swh-deploy documents; `humantime` does the arithmetic.
//! Spaces inside, other units (`d`, `min`...) and fractions are refused, so
//! that a site file means the same thing everywhere.

use std::time::Duration;

/// A text that is not a duration; its message names the text and the
/// grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: expected a number followed by `ms`, `s`, `m` or `h`")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
}

impl DurationError {
    /// Bad input: [`Exit::Failed`](crate::Exit::Failed).
    pub fn exit(&self) -> crate::Exit {
        crate::Exit::Failed
    }
}

/// Parses a duration (see the module documentation). Spaces around the
/// text are ignored.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError {
        text: text.to_string(),
    };
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
    }
    if !well_formed(t) {
        return Err(bad());
    }
    humantime::parse_duration(t).map_err(|_| bad())
}

/// Whether `t` is one or more `<digits><ms|s|m|h>` spans.
fn well_formed(t: &str) -> bool {
    let mut rest = t;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || !matches!(&rest[digits..digits + unit], "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[digits + unit..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_spans_and_plain_seconds() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("15m", Duration::from_secs(900)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m30s250ms", Duration::from_millis(90_250)),
            ("7", Duration::from_secs(7)),
            ("0", Duration::ZERO),
            (" 15m ", Duration::from_secs(900)),
        ] {
            assert_eq!(parse(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn refuses_other_units_spaces_and_overflow() {
        for text in [
            "",
            "s",
            "m",
            "5x",
            "2d",
            "5 s",
            "1.5h",
            "1h 30m",
            "-5s",
            "18446744073709551615h",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse(text).unwrap_err().to_string(),
                format!(
                    "invalid duration `{text}`: expected a number followed by `ms`, `s`, `m` or `h`"
                ),
            );
        }
    }
}
