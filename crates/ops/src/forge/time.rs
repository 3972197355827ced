//! The times forges put in payloads, normalised to RFC 3339 UTC with milliseconds so that two
//! of them compare as strings (and sort so in the state store). GitLab has sent
//! `2013-12-03T17:23:34Z`, `2013-12-03 17:23:34 UTC` and `2013-12-03T17:23:34+01:00`; GitHub
//! sends `2013-12-03T17:23:34Z`.

use std::time::{Duration, SystemTime};

/// `raw` as RFC 3339 UTC with milliseconds, or `None` when it is not a time of those shapes.
pub fn normalise(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (local, offset_seconds) = split_offset(raw)?;
    let local = humantime::parse_rfc3339_weak(local.trim()).ok()?;
    let utc = if offset_seconds >= 0 {
        local.checked_sub(Duration::from_secs(offset_seconds.unsigned_abs()))?
    } else {
        local.checked_add(Duration::from_secs(offset_seconds.unsigned_abs()))?
    };
    Some(format(utc))
}

fn format(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// The local part and the offset east of UTC in seconds.
fn split_offset(raw: &str) -> Option<(&str, i64)> {
    if let Some(local) = raw.strip_suffix(" UTC").or_else(|| raw.strip_suffix('Z')) {
        return Some((local, 0));
    }
    // `+01:00`, `+0100` or `-05:30` after the seconds (the date's own `-`s come earlier).
    let Some(sign_at) = raw.rfind(['+', '-']).filter(|&at| at > 10) else {
        // No zone at all: forges write UTC.
        return Some((raw, 0));
    };
    let (local, offset) = raw.split_at(sign_at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

/// Whether normalised time `a` is strictly before normalised time `b`.
pub fn is_before(a: &str, b: &str) -> bool {
    a < b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_a_forge_sends_becomes_one_comparable_string() {
        for (raw, normalised) in [
            ("2013-12-03T17:23:34Z", Some("2013-12-03T17:23:34.000Z")),
            ("2013-12-03 17:23:34 UTC", Some("2013-12-03T17:23:34.000Z")),
            (
                "2013-12-03T18:23:34+01:00",
                Some("2013-12-03T17:23:34.000Z"),
            ),
            ("2013-12-03T18:23:34+0100", Some("2013-12-03T17:23:34.000Z")),
            (
                "2013-12-03T12:23:34.250-05:00",
                Some("2013-12-03T17:23:34.250Z"),
            ),
            ("2013-12-03 17:23:34", Some("2013-12-03T17:23:34.000Z")),
            ("yesterday", None),
            ("2013-12-03T17:23:34+1", None),
            ("", None),
        ] {
            assert_eq!(normalise(raw).as_deref(), normalised, "{raw}");
        }
        let earlier = normalise("2013-12-03 17:23:34 UTC").unwrap();
        let later = normalise("2013-12-03T17:23:35.001Z").unwrap();
        assert!(is_before(&earlier, &later));
        assert!(!is_before(&later, &earlier));
        assert!(!is_before(&earlier, &earlier));
    }
}
