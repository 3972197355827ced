//! Command-line values checked while the arguments are parsed, so a malformed name is a usage
//! error (exit 2, with clap's usage line) before anything is built or started. Whether the name
//! exists (an environment declared in `sandpit.toml`, a biome that runs) is checked later, by the
//! use case, and is a failure (exit 1).

use sandpit_domain::Name;

/// A name (environment, biome, component): a DNS label.
pub fn name(raw: &str) -> Result<String, String> {
    Name::parse(raw)
        .map(|_| raw.to_owned())
        .map_err(|error| format!("{error}\nhint: {}", error.hint()))
}

/// A target: `ENV`, `ENV/BIOME` or `BIOME`.
pub fn target(raw: &str) -> Result<String, String> {
    sandpit_ops::target::Target::parse(raw)
        .map(|_| raw.to_owned())
        .map_err(|error| error.to_string())
}

/// What names a biome: a target, or a branch name that becomes one the way `up` names biomes
/// (`feature/Better_Model` → `feature-better-model`).
pub fn biome(raw: &str) -> Result<String, String> {
    if target(raw).is_ok() || Name::sanitize(raw).is_some() {
        Ok(raw.to_owned())
    } else {
        target(raw)
    }
}

/// A span of time: `3d`, `12h`, `1h30m` (units w, d, h, m, s).
pub fn span(raw: &str) -> Result<sandpit_domain::Span, String> {
    sandpit_domain::Span::parse(raw).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_targets_are_checked_at_parse_time() {
        let cases: &[(&str, bool, bool)] = &[
            // (raw, valid name, valid target)
            ("dev", true, true),
            ("alice-2", true, true),
            ("dev/alice", false, true),
            ("Dev", false, false),
            ("a_b", false, false),
            ("", false, false),
            ("dev/", false, false),
            ("a/b/c", false, false),
            ("9lives", false, false),
        ];
        for (raw, name, target) in cases {
            assert_eq!(super::name(raw).is_ok(), *name, "name {raw:?}");
            assert_eq!(super::target(raw).is_ok(), *target, "target {raw:?}");
        }
        assert!(super::name("Bad").unwrap_err().contains("hint:"));
        assert_eq!(super::span("3d").unwrap().as_secs(), 259_200);
        for bad in ["3", "3 days", "0s", "-1d"] {
            assert!(
                super::span(bad).unwrap_err().contains("not a span of time"),
                "{bad}"
            );
        }
    }
}
