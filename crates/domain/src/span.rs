//! Spans of time as people write them in `sandpit.toml` and on the command line: `30m`, `7d`,
//! `1h30m`, `90s` — a biome's idle timeout, its time to live, an extension.

use std::fmt;
use std::time::Duration;

/// A positive whole number of seconds, written with units (`w`, `d`, `h`, `m`, `s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a span of time: write a number with a unit (s, m, h, d, w), e.g. \"30m\", \"7d\" or \"1h30m\"")]
pub struct SpanError(pub String);

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Span {
    pub fn from_secs(secs: u64) -> Span {
        Span(Duration::from_secs(secs))
    }

    /// [`Span::from_secs`] for constants.
    pub const fn from_secs_const(secs: u64) -> Span {
        Span(Duration::from_secs(secs))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// `30m`, `7d`, `1h30m`, `2w`: one or more `<number><unit>` parts, each unit at most once and
    /// from the largest to the smallest; the total must be more than zero.
    pub fn parse(raw: &str) -> Result<Span, SpanError> {
        let error = || SpanError(raw.to_owned());
        let text = raw.trim();
        if text.is_empty() {
            return Err(error());
        }
        let mut total: u64 = 0;
        let mut rest = text;
        // Units must come largest first, so `1m1h` (a typo more often than not) is refused.
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
            if digits == 0 {
                return Err(error());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| error())?;
            let unit = rest[digits..].chars().next().ok_or_else(error)?;
            let position = UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(error)?;
            let seconds = UNITS[next_unit + position].1;
            next_unit += position + 1;
            total = number
                .checked_mul(seconds)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(error)?;
            rest = &rest[digits + unit.len_utf8()..];
        }
        if total == 0 {
            return Err(error());
        }
        Ok(Span(Duration::from_secs(total)))
    }
}

/// The exact form in days and smaller units: `7d`, `1h30m`, `90s` → `1m30s`, `2w` → `14d`.
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = self.0.as_secs();
        if left == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS.into_iter().skip(1) {
            if left >= size {
                write!(f, "{}{unit}", left / size)?;
                left %= size;
            }
        }
        Ok(())
    }
}

/// An approximate, human form of a number of seconds for listings: `3d`, `5h`, `12m`, `40s`
/// (the two largest units, rounded down).
pub fn approximately(secs: u64) -> String {
    let mut parts = Vec::new();
    let mut left = secs;
    for (unit, size) in UNITS.iter().skip(1) {
        if left >= *size {
            parts.push(format!("{}{unit}", left / size));
            left %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_from_units_largest_first_and_print_back_exactly() {
        for (raw, secs, shown) in [
            ("30m", 1_800, "30m"),
            ("7d", 604_800, "7d"),
            ("1h30m", 5_400, "1h30m"),
            ("90s", 90, "1m30s"),
            ("2w1d", 1_296_000, "15d"),
            (" 5s ", 5, "5s"),
        ] {
            let span = Span::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(span.as_secs(), secs, "{raw}");
            assert_eq!(span.to_string(), shown, "{raw}");
        }
    }

    #[test]
    fn malformed_or_empty_spans_are_refused() {
        for raw in [
            "",
            "30",
            "m",
            "0s",
            "0m0s",
            "1m1h",
            "1h1h",
            "3 days",
            "1.5h",
            "-1m",
            "5ms",
            "1y",
            "99999999999999999999s",
            "9999999999999999w",
        ] {
            assert!(Span::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }

    #[test]
    fn approximate_forms_keep_the_two_largest_units() {
        for (secs, shown) in [
            (0, "0s"),
            (40, "40s"),
            (61, "1m1s"),
            (3_700, "1h1m"),
            (90_061, "1d1h"),
            (604_800, "7d"),
        ] {
            assert_eq!(approximately(secs), shown);
        }
    }
}
