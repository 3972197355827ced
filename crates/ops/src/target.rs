//! Targets on the command line: `ENV` (an environment's base deployment), `ENV/BIOME`, or a bare
//! `BIOME`. A bare name that is an environment's means its base, which is why biomes may not be
//! named like environments.

use anyhow::bail;
use sandpit_domain::Name;
use sandpit_spec::Spec;

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub env: Option<Name>,
    /// The biome, or the environment itself for a bare environment name.
    pub name: Name,
}

impl Target {
    pub fn parse(raw: &str) -> anyhow::Result<Target> {
        let parse = |part: &str, what: &str| {
            Name::parse(part).map_err(|e| {
                anyhow::anyhow!(
                    "the {what} {} in target {} {}\nhint: {}",
                    sandpit_domain::quoted(part),
                    sandpit_domain::quoted(raw),
                    e.problem(),
                    e.hint()
                )
            })
        };
        match raw.split_once('/') {
            Some((env, biome)) => Ok(Target {
                env: Some(parse(env, "environment")?),
                name: parse(biome, "biome")?,
            }),
            None => Ok(Target {
                env: None,
                name: parse(raw, "name")?,
            }),
        }
    }

    /// Whether it names an environment's base in `spec`.
    pub fn is_base(&self, spec: &Spec) -> bool {
        self.env.is_none() && spec.environments.contains_key(&self.name)
    }

    /// How deployments record it: `ENV` or `ENV/BIOME` (a bare biome keeps its bare name).
    pub fn label(&self, spec: &Spec) -> String {
        match &self.env {
            Some(env) => format!("{env}/{}", self.name),
            None if self.is_base(spec) => self.name.to_string(),
            None => self.name.to_string(),
        }
    }

    /// Whether a recorded target label is this target.
    pub fn matches(&self, label: &str, recorded: &str) -> bool {
        if recorded == label {
            return true;
        }
        // A bare biome name matches `<any env>/<biome>`.
        self.env.is_none()
            && recorded
                .split_once('/')
                .is_some_and(|(_, biome)| biome == self.name.as_str())
    }

    /// The environment must be the one the biome lives in, when the target names it.
    pub fn check_env(&self, actual: &Name) -> anyhow::Result<()> {
        match &self.env {
            Some(env) if env != actual => bail!(
                "`{}` lives in environment `{actual}`, not `{env}`",
                self.name
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        // (input, Some((name, env)) when valid)
        type Expected<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: &[(&str, Expected)] = &[
            ("dev", Some(("dev", None))),
            ("dev/alice", Some(("alice", Some("dev")))),
            ("Dev/alice", None),
            ("dev/", None),
            ("a/b/c", None),
        ];
        for (raw, expected) in cases {
            let parsed = Target::parse(raw).ok();
            let simplified = parsed
                .as_ref()
                .map(|t| (t.name.as_str(), t.env.as_ref().map(Name::as_str)));
            assert_eq!(simplified, *expected, "{raw}");
        }
        let bare = Target::parse("alice").unwrap();
        assert!(bare.matches("alice", "dev/alice"));
        assert!(!bare.matches("alice", "dev/bob"));
        let full = Target::parse("test/alice").unwrap();
        assert!(!full.matches("test/alice", "dev/alice"));
    }
}
