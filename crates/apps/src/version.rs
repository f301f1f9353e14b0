//! Image versions `YYYYMMDD.N`: UTC date and a per-day counter starting at 1,
//! ordered numerically (so `.10` comes after `.9`).

use std::fmt;

/// An image version `YYYYMMDD.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageVersion {
    /// The UTC date as the number YYYYMMDD.
    pub date: u32,
    /// The counter of that day, from 1.
    pub n: u32,
}

impl ImageVersion {
    /// Parses `YYYYMMDD.N` (exactly eight digits, a dot, a number without
    /// leading zeros). Anything else (`latest`, `v1.2`) is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (d, n) = s.split_once('.')?;
        if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if n.is_empty()
            || !n.bytes().all(|b| b.is_ascii_digit())
            || (n.len() > 1 && n.starts_with('0'))
        {
            return None;
        }
        Some(ImageVersion {
            date: d.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

/// Serialised as its text, `YYYYMMDD.N`.
impl serde::Serialize for ImageVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}.{}", self.date, self.n)
    }
}

/// A date as the number YYYYMMDD.
fn yyyymmdd(date: chrono::NaiveDate) -> u32 {
    use chrono::Datelike as _;
    u32::try_from(date.year()).unwrap_or(0) * 10_000 + date.month() * 100 + date.day()
}

/// The UTC date of a Unix time as YYYYMMDD (calendar arithmetic by
/// `chrono`).
pub fn date_of(unix_seconds: i64) -> u32 {
    let when = chrono::DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default();
    yyyymmdd(when.date_naive())
}

/// Today's UTC date as YYYYMMDD.
pub fn today_utc() -> u32 {
    yyyymmdd(chrono::Utc::now().date_naive())
}

/// The next version for `date`, given every version already taken (in the
/// registry or as git tags): `date.(max N of that date + 1)`, or `date.1`.
pub fn next_version(date: u32, taken: impl IntoIterator<Item = ImageVersion>) -> ImageVersion {
    let max = taken
        .into_iter()
        .filter(|v| v.date == date)
        .map(|v| v.n)
        .max()
        .unwrap_or(0);
    ImageVersion { date, n: max + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order_numerically() {
        let a = ImageVersion::parse("20250117.9").unwrap();
        let b = ImageVersion::parse("20250117.10").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "20250117.10");
        for bad in [
            "latest",
            "2025011.1",
            "20250117",
            "20250117.",
            "20250117.01",
            "v20250117.1",
            "20250117.1a",
        ] {
            assert_eq!(ImageVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn next_is_numeric_max_plus_one_of_the_day() {
        let taken = ["20250117.9", "20250117.10", "20250117.2", "20250116.40"]
            .iter()
            .filter_map(|s| ImageVersion::parse(s));
        assert_eq!(next_version(20250117, taken).to_string(), "20250117.11");
        let taken = ["20250116.40"]
            .iter()
            .filter_map(|s| ImageVersion::parse(s));
        assert_eq!(next_version(20250117, taken).to_string(), "20250117.1");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(date_of(0), 19700101);
        // 2000-02-29T23:59:59Z and the second after.
        assert_eq!(date_of(951_868_799), 20000229);
        assert_eq!(date_of(951_868_800), 20000301);
        // 2024-12-31T23:59:59Z
        assert_eq!(date_of(1_735_689_599), 20241231);
        assert_eq!(date_of(1_735_689_600), 20250101);
    }
}
