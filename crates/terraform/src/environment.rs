//! The environment of every terraform process (pure): which inherited variables are removed,
//! and what is set on top — in the order later entries win.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::error::TerraformError;
use crate::run::HttpBackend;

/// Inherited variables starting with one of these are removed: each would change what terraform
/// does behind sandpit's back — extra variables or arguments, another backend address or
/// credentials, another workspace or data directory, logs that may hold secrets.
const SCRUBBED_PREFIXES: &[&str] = &["TF_VAR_", "TF_HTTP_", "TF_CLI_ARGS", "TF_LOG"];
/// Inherited variables removed by exact name.
const SCRUBBED_NAMES: &[&str] = &["TF_WORKSPACE", "TF_DATA_DIR"];

/// Whether an inherited variable is removed from terraform's environment.
pub(crate) fn is_scrubbed(name: &OsStr) -> bool {
    // A name that is not UTF-8 cannot start with an ASCII prefix's bytes and still be one of
    // terraform's variables, which are all ASCII; comparing bytes covers both.
    let name = name.as_encoded_bytes();
    SCRUBBED_PREFIXES
        .iter()
        .any(|prefix| name.starts_with(prefix.as_bytes()))
        || SCRUBBED_NAMES.iter().any(|exact| name == exact.as_bytes())
}

/// What a run adds to the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Additions<'a> {
    pub(crate) plugin_cache_dir: &'a Path,
    pub(crate) cli_config_file: Option<&'a Path>,
    pub(crate) vars: &'a BTreeMap<String, String>,
    pub(crate) backend: Option<&'a HttpBackend>,
    pub(crate) extra_env: &'a [(String, String)],
}

/// The variables set on every terraform process, in order (a later one of the same name wins,
/// as with `Command::env`): automation mode, no prompts, no call home, the plugin cache, the CLI
/// configuration, `TF_VAR_<name>` per variable, the backend, then the caller's extras.
pub(crate) fn additions(add: Additions<'_>) -> Result<Vec<(OsString, OsString)>, TerraformError> {
    let mut env: Vec<(OsString, OsString)> = base()
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    env.push((
        "TF_PLUGIN_CACHE_DIR".into(),
        add.plugin_cache_dir.as_os_str().to_owned(),
    ));
    if let Some(file) = add.cli_config_file {
        env.push(("TF_CLI_CONFIG_FILE".into(), file.as_os_str().to_owned()));
    }
    for (name, value) in add.vars {
        check_variable(name, value)?;
        env.push((format!("TF_VAR_{name}").into(), value.into()));
    }
    if let Some(backend) = add.backend {
        // Terraform's http backend locks and unlocks at the state's own address (with the LOCK
        // and UNLOCK methods) when these are set; without them it would not lock at all.
        for name in [
            "TF_HTTP_ADDRESS",
            "TF_HTTP_LOCK_ADDRESS",
            "TF_HTTP_UNLOCK_ADDRESS",
        ] {
            env.push((name.into(), backend.address.clone().into()));
        }
        env.push(("TF_HTTP_USERNAME".into(), backend.username.clone().into()));
        env.push(("TF_HTTP_PASSWORD".into(), backend.password.clone().into()));
    }
    for (name, value) in add.extra_env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(TerraformError::InvalidVariable {
                name: name.clone(),
                problem: "an environment variable's name must be non-empty without `=` or NUL, and its value without NUL",
            });
        }
        env.push((name.into(), value.into()));
    }
    Ok(env)
}

/// What even `version` gets: nothing terraform could prompt for, and no call home.
pub(crate) fn base() -> [(&'static str, &'static str); 3] {
    [
        ("TF_IN_AUTOMATION", "1"),
        ("TF_INPUT", "0"),
        ("CHECKPOINT_DISABLE", "1"),
    ]
}

/// A variable terraform can take from `TF_VAR_<name>`: its name an identifier as terraform
/// declares them (a letter or `_`, then letters, digits, `_` and `-`), its value without NUL.
fn check_variable(name: &str, value: &str) -> Result<(), TerraformError> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_well = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !(starts_well && rest_well) {
        return Err(TerraformError::InvalidVariable {
            name: name.to_owned(),
            problem: "a terraform variable's name starts with a letter or `_` and has only letters, digits, `_` and `-`; rename it in the module and in sandpit.toml",
        });
    }
    if value.contains('\0') {
        return Err(TerraformError::InvalidVariable {
            name: name.to_owned(),
            problem: "its value contains a NUL character, which no environment variable can hold",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_variables_that_steer_terraform_are_scrubbed() {
        let cases = [
            ("TF_VAR_sha", true),
            ("TF_VAR_", true),
            ("TF_HTTP_PASSWORD", true),
            ("TF_HTTP_ADDRESS", true),
            ("TF_CLI_ARGS", true),
            ("TF_CLI_ARGS_apply", true),
            ("TF_WORKSPACE", true),
            ("TF_DATA_DIR", true),
            ("TF_LOG", true),
            ("TF_LOG_PATH", true),
            ("TF_LOG_PROVIDER", true),
            // Kept: where the CLI configuration is (set again when the run names one), the
            // credentials of module registries, and everything not terraform's.
            ("TF_CLI_CONFIG_FILE", false),
            ("TF_TOKEN_example_com", false),
            ("TF_WORKSPACES", false),
            ("TF_DATA_DIRECTORY", false),
            ("PATH", false),
            ("HOME", false),
            ("tf_var_lower", false),
        ];
        for (name, scrubbed) in cases {
            assert_eq!(is_scrubbed(OsStr::new(name)), scrubbed, "{name}");
        }
    }

    fn names(env: &[(OsString, OsString)]) -> Vec<&str> {
        env.iter().map(|(n, _)| n.to_str().unwrap()).collect()
    }

    #[test]
    fn additions_come_in_order_with_the_extras_last() {
        let vars = BTreeMap::from([
            ("sha".to_owned(), "a".repeat(40)),
            ("biome".to_owned(), "alice".to_owned()),
        ]);
        let backend = HttpBackend {
            address: "http://127.0.0.1:1/state".into(),
            username: "sandpit".into(),
            password: "hunter2".into(),
        };
        let extra = vec![("TF_HTTP_PASSWORD".to_owned(), "override".to_owned())];
        let env = additions(Additions {
            plugin_cache_dir: Path::new("/cache"),
            cli_config_file: Some(Path::new("/cfg.tfrc")),
            vars: &vars,
            backend: Some(&backend),
            extra_env: &extra,
        })
        .unwrap();
        assert_eq!(
            names(&env),
            [
                "TF_IN_AUTOMATION",
                "TF_INPUT",
                "CHECKPOINT_DISABLE",
                "TF_PLUGIN_CACHE_DIR",
                "TF_CLI_CONFIG_FILE",
                "TF_VAR_biome",
                "TF_VAR_sha",
                "TF_HTTP_ADDRESS",
                "TF_HTTP_LOCK_ADDRESS",
                "TF_HTTP_UNLOCK_ADDRESS",
                "TF_HTTP_USERNAME",
                "TF_HTTP_PASSWORD",
                "TF_HTTP_PASSWORD",
            ]
        );
        let value = |name: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap())
        };
        assert_eq!(value("CHECKPOINT_DISABLE"), Some("1"));
        assert_eq!(
            value("TF_HTTP_LOCK_ADDRESS"),
            Some("http://127.0.0.1:1/state")
        );
        assert_eq!(value("TF_HTTP_PASSWORD"), Some("override"));
        assert_eq!(value("TF_VAR_biome"), Some("alice"));
    }

    #[test]
    fn without_a_backend_or_configuration_file_neither_is_set() {
        let env = additions(Additions {
            plugin_cache_dir: Path::new("/cache"),
            cli_config_file: None,
            vars: &BTreeMap::new(),
            backend: None,
            extra_env: &[],
        })
        .unwrap();
        assert_eq!(
            names(&env),
            [
                "TF_IN_AUTOMATION",
                "TF_INPUT",
                "CHECKPOINT_DISABLE",
                "TF_PLUGIN_CACHE_DIR"
            ]
        );
    }

    #[test]
    fn variables_terraform_cannot_take_are_refused_before_anything_runs() {
        let cases: &[(&str, &str, bool)] = &[
            ("sha", "abc", true),
            ("_private", "", true),
            ("with-dash_and_9", "x", true),
            ("9lives", "x", false),
            ("", "x", false),
            ("a=b", "x", false),
            ("has space", "x", false),
            ("émoji", "x", false),
            ("nul_value", "a\0b", false),
        ];
        for (name, value, ok) in cases {
            let vars = BTreeMap::from([(name.to_string(), value.to_string())]);
            let result = additions(Additions {
                plugin_cache_dir: Path::new("/cache"),
                cli_config_file: None,
                vars: &vars,
                backend: None,
                extra_env: &[],
            });
            assert_eq!(result.is_ok(), *ok, "{name:?}={value:?}");
            if let Err(error) = result {
                assert!(
                    matches!(error, TerraformError::InvalidVariable { .. }),
                    "{error}"
                );
                assert!(!error.to_string().contains("a\0b"), "{error}");
            }
        }
        let bad_extra = vec![("A=B".to_owned(), "x".to_owned())];
        let result = additions(Additions {
            plugin_cache_dir: Path::new("/cache"),
            cli_config_file: None,
            vars: &BTreeMap::new(),
            backend: None,
            extra_env: &bad_extra,
        });
        assert!(result.is_err());
    }
}
