//! Targets on the command line: `ENV` (an environment's base deployment), `ENV/BIOME`, or a bare
//! `BIOME`. A bare name that is an environment's means its base, which is why biomes may not be
//! named like environments.

use sandpit_domain::Name;
use sandpit_spec::Spec;

use crate::Context;

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
                crate::error::failure(
                    crate::error::ErrorKind::InvalidInput,
                    format!(
                        "the {what} {} in target {} {}\nhint: {}",
                        sandpit_domain::quoted(part),
                        sandpit_domain::quoted(raw),
                        e.problem(),
                        e.hint()
                    ),
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
            Some(env) if env != actual => crate::fail!(
                NotFound,
                "`{}` lives in environment `{actual}`, not `{env}`",
                self.name
            ),
            _ => Ok(()),
        }
    }
}

/// The biome a command means, given what was typed (`None`: nothing):
/// - nothing: the current branch's biome, named the way `up` names it;
/// - `ENV/BIOME` where ENV is an environment of `spec`, `ENV`, or a valid biome name: as given;
/// - anything else that looks like a branch (`feature/Better_Model`): sanitised as `up` would.
pub fn resolve(context: &Context, spec: &Spec, raw: Option<&str>) -> anyhow::Result<Target> {
    let Some(raw) = raw else {
        let name = context
            .source
            .default_biome_name(&context.base_env, "name the biome")?;
        return Ok(Target { env: None, name });
    };
    interpret(spec, raw)
}

/// [`resolve`] for a name given on the command line (pure).
fn interpret(spec: &Spec, raw: &str) -> anyhow::Result<Target> {
    if let Some((env, _)) = raw.split_once('/') {
        if Name::parse(env).is_ok_and(|env| spec.environments.contains_key(&env)) {
            return Target::parse(raw);
        }
    } else if let Ok(target) = Target::parse(raw) {
        return Ok(target);
    }
    match Name::sanitize(raw) {
        Some(name) => Ok(Target { env: None, name }),
        None => Target::parse(raw),
    }
}

/// `did you mean `alice`?` among the biomes `project` has (running or in its history).
pub fn did_you_mean_biome(known: &[String], written: &Name) -> Option<String> {
    sandpit_domain::suggestion::did_you_mean(written.as_str(), known.iter().map(String::as_str))
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

    #[test]
    fn branch_names_become_biome_names() {
        let spec = sandpit_spec::parse(
            "[project]\nname = \"p\"\n[environments.dev]\nbiomes = true\n[jobs.j]\npath = \".\"\nrun = \"true\"\n",
        )
        .unwrap();
        // (typed, env, biome)
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("alice", None, "alice"),
            ("dev", None, "dev"),
            ("dev/alice", Some("dev"), "alice"),
            ("feature/Better_Model", None, "feature-better-model"),
            ("Alice", None, "alice"),
            ("fix/recovery", None, "fix-recovery"),
        ];
        for (typed, env, biome) in cases {
            let target = interpret(&spec, typed).unwrap();
            assert_eq!(target.env.as_ref().map(Name::as_str), *env, "{typed}");
            assert_eq!(target.name.as_str(), *biome, "{typed}");
        }
        assert!(interpret(&spec, "///").is_err());
    }
}
