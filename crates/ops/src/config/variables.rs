//! Configuration variables as data (Heroku's config vars, GitLab's CI/CD variables): what a name
//! may be, a change (`set`, `unset`), the two layers a biome's variables come from, and how they
//! merge for one component. Pure: no I/O.
//!
//! A variable is set on an environment or on a biome, for every component or for named ones. A
//! component gets, for each name, the most specific value: the biome's own for that component,
//! the biome's for all components, the environment's for that component, the environment's for
//! all. So whatever a biome sets wins over what it inherits, and within one level a value meant
//! for one component wins over the one meant for all of them.

use std::collections::BTreeMap;
use std::fmt;

use sandpit_domain::Name;
use serde::{Deserialize, Serialize};

/// A variable's name: `[A-Z_][A-Z0-9_]*`, and none that sandpit injects itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

/// Names sandpit injects into every component (besides any starting with `SANDPIT_`), with what
/// each carries: a value set for one would be overridden, or would redirect a service.
const RESERVED: &[(&str, &str)] = &[
    ("PORT", "the port a service listens on"),
    ("DATABASE_URL", "the URL of the biome's own database"),
    (
        "SHARED_DATABASE_URL",
        "the URL of the environment's shared database",
    ),
];

/// Why a name cannot be a variable's. The message names the problem and ends with a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a variable name is empty\nhint: write KEY=VALUE, e.g. LOG_LEVEL=debug")]
    Empty,
    #[error("the variable name {shown} {problem}; names are upper-case letters, digits and `_`, not starting with a digit\nhint: {hint}")]
    Malformed {
        shown: String,
        problem: &'static str,
        hint: String,
    },
    #[error("`{key}` is set by sandpit itself ({what}), so it cannot be configured\nhint: read it as sandpit gives it; for a value of your own, pick another name, e.g. `APP_{key}`")]
    Injected { key: String, what: &'static str },
    #[error("variables starting with `SANDPIT_` are sandpit's own (e.g. SANDPIT_URL_*, SANDPIT_DATA_DIR)\nhint: pick another name, e.g. `{suggestion}`")]
    SandpitPrefix { suggestion: String },
}

impl Key {
    pub fn parse(raw: &str) -> Result<Key, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        let problem = if raw.starts_with(|c: char| c.is_ascii_digit()) {
            Some("starts with a digit")
        } else if raw.chars().any(|c| c.is_ascii_lowercase()) {
            Some("has lower-case letters")
        } else if !raw
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            Some("has characters other than A-Z, 0-9 and `_`")
        } else {
            None
        };
        if let Some(problem) = problem {
            let hint = match suggestion(raw) {
                Some(suggested) => format!("did you mean `{suggested}`?"),
                None => "e.g. LOG_LEVEL".to_owned(),
            };
            return Err(KeyError::Malformed {
                shown: sandpit_domain::quoted(raw).to_string(),
                problem,
                hint,
            });
        }
        if let Some((key, what)) = RESERVED.iter().find(|(key, _)| *key == raw) {
            return Err(KeyError::Injected {
                key: (*key).to_owned(),
                what,
            });
        }
        if let Some(rest) = raw.strip_prefix("SANDPIT_") {
            let rest = rest.trim_start_matches('_');
            return Err(KeyError::SandpitPrefix {
                suggestion: if rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit()) {
                    "APP_SETTING".to_owned()
                } else {
                    format!("APP_{rest}")
                },
            });
        }
        Ok(Key(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a malformed name would be once upper-cased, with other characters made `_`, when that
/// is a valid name.
fn suggestion(raw: &str) -> Option<String> {
    let mut fixed: String = raw
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            c @ ('A'..='Z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if fixed.starts_with(|c: char| c.is_ascii_digit()) {
        fixed.insert(0, '_');
    }
    Key::parse(&fixed).ok().map(|key| key.0)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Key {
    type Error = KeyError;

    fn try_from(raw: String) -> Result<Key, KeyError> {
        Key::parse(&raw)
    }
}

impl From<Key> for String {
    fn from(key: Key) -> String {
        key.0
    }
}

/// A variable's value. Printing it with `{:?}` never shows a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    pub secret: bool,
    pub text: String,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Value(secret)")
        } else {
            write!(f, "Value({:?})", self.text)
        }
    }
}

/// Why a value cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    // The value itself is never shown: it may be a secret.
    #[error("the value of `{key}` has a NUL byte, which no environment variable can hold\nhint: remove it (a value may be empty, or hold any other character)")]
    NulByte { key: Key },
}

/// Checks that `text` can be an environment variable's value (anything without NUL; empty is fine).
pub fn check_value(key: &Key, text: &str) -> Result<(), ValueError> {
    if text.contains('\0') {
        return Err(ValueError::NulByte { key: key.clone() });
    }
    Ok(())
}

/// For which components a variable is set: `None` for all of them.
pub type Scope = Option<Name>;

/// The variables set at one level (an environment, or one biome), with a revision that grows
/// with every stored change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    pub revision: u64,
    pub entries: BTreeMap<(Scope, Key), Value>,
}

/// A requested change of one level's variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Sets each variable, for `components` (all of them when empty).
    Set {
        assignments: Vec<(Key, String)>,
        secret: bool,
        components: Vec<Name>,
    },
    /// Removes each variable: for `components`, or when empty, for all of them and any
    /// component named on its own.
    Unset {
        keys: Vec<Key>,
        components: Vec<Name>,
    },
}

/// An `unset` of a variable that is not set at that level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSet {
    pub key: Key,
    pub component: Scope,
}

impl Change {
    /// The values must be storable, and a change must name something.
    pub fn check(&self) -> Result<(), ValueError> {
        if let Change::Set { assignments, .. } = self {
            for (key, text) in assignments {
                check_value(key, text)?;
            }
        }
        Ok(())
    }

    pub fn keys(&self) -> Vec<&Key> {
        match self {
            Change::Set { assignments, .. } => assignments.iter().map(|(k, _)| k).collect(),
            Change::Unset { keys, .. } => keys.iter().collect(),
        }
    }

    /// What it does, naming the variables and never a value: for `history` and messages
    /// (`set GREETING, TOKEN (secret) for web`).
    pub fn describe(&self) -> String {
        let (verb, keys, secret, components) = match self {
            Change::Set {
                assignments,
                secret,
                components,
            } => (
                "set",
                assignments
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
                *secret,
                components,
            ),
            Change::Unset { keys, components } => (
                "unset",
                keys.iter().map(Key::as_str).collect(),
                false,
                components,
            ),
        };
        let mut text = format!("{verb} {}", keys.join(", "));
        if secret {
            text.push_str(" (secret)");
        }
        if !components.is_empty() {
            let names: Vec<&str> = components.iter().map(Name::as_str).collect();
            text.push_str(&format!(" for {}", names.join(", ")));
        }
        text
    }

    /// Applies it to one level's variables (not touching the revision). An `unset` of something
    /// not set there changes nothing and says what was missing.
    pub fn apply_to(&self, variables: &mut Variables) -> Result<(), NotSet> {
        match self {
            Change::Set {
                assignments,
                secret,
                components,
            } => {
                for (key, text) in assignments {
                    for scope in scopes(components) {
                        variables.entries.insert(
                            (scope, key.clone()),
                            Value {
                                secret: *secret,
                                text: text.clone(),
                            },
                        );
                    }
                }
            }
            Change::Unset { keys, components } => {
                let mut changed = variables.entries.clone();
                for key in keys {
                    if components.is_empty() {
                        let before = changed.len();
                        changed.retain(|(_, k), _| k != key);
                        if changed.len() == before {
                            return Err(NotSet {
                                key: key.clone(),
                                component: None,
                            });
                        }
                    } else {
                        for component in components {
                            let scope = Some(component.clone());
                            if changed.remove(&(scope.clone(), key.clone())).is_none() {
                                return Err(NotSet {
                                    key: key.clone(),
                                    component: scope,
                                });
                            }
                        }
                    }
                }
                variables.entries = changed;
            }
        }
        Ok(())
    }
}

fn scopes(components: &[Name]) -> Vec<Scope> {
    if components.is_empty() {
        vec![None]
    } else {
        components.iter().cloned().map(Some).collect()
    }
}

/// Where a value was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Environment,
    Biome,
}

/// The variables a target's components get: its environment's, and for a biome its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layers {
    pub env: Variables,
    /// `None` for an environment's base.
    pub biome: Option<Variables>,
}

/// One component's value of a variable, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: Value,
    pub level: Level,
    pub scope: Scope,
}

/// One variable as `sandpit config` lists it, with the components that get this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    pub scope: Scope,
    pub level: Level,
    pub value: Value,
    /// Empty when every component it was meant for gets another value (it is overridden).
    pub applies_to: Vec<Name>,
}

impl Layers {
    /// The levels from the least specific to the most.
    fn levels(&self) -> impl Iterator<Item = (Level, &Variables)> {
        std::iter::once((Level::Environment, &self.env))
            .chain(self.biome.as_ref().map(|b| (Level::Biome, b)))
    }

    /// What `component` gets, by name.
    pub fn effective(&self, component: &Name) -> BTreeMap<Key, Resolved> {
        let mut resolved = BTreeMap::new();
        // Later writes win: the environment's, then the biome's, each for all components first
        // and then for this one.
        for (level, variables) in self.levels() {
            for wanted in [None, Some(component)] {
                for ((scope, key), value) in &variables.entries {
                    if scope.as_ref() == wanted {
                        resolved.insert(
                            key.clone(),
                            Resolved {
                                value: value.clone(),
                                level,
                                scope: scope.clone(),
                            },
                        );
                    }
                }
            }
        }
        resolved
    }

    /// Every variable set at either level, in name order (the environment's before the
    /// biome's), with the components among `components` that get its value.
    pub fn rows(&self, components: &[Name]) -> Vec<Row> {
        let effective: Vec<(&Name, BTreeMap<Key, Resolved>)> =
            components.iter().map(|c| (c, self.effective(c))).collect();
        let mut rows = Vec::new();
        for (level, variables) in self.levels() {
            for ((scope, key), value) in &variables.entries {
                let applies_to = effective
                    .iter()
                    .filter(|(_, resolved)| {
                        resolved
                            .get(key)
                            .is_some_and(|r| r.level == level && r.scope == *scope)
                    })
                    .map(|(c, _)| (*c).clone())
                    .collect();
                rows.push(Row {
                    key: key.clone(),
                    scope: scope.clone(),
                    level,
                    value: value.clone(),
                    applies_to,
                });
            }
        }
        rows.sort_by(|a, b| (&a.key, a.level, &a.scope).cmp(&(&b.key, b.level, &b.scope)));
        rows
    }

    /// The revisions of both levels: what a release was made from.
    pub fn revisions(&self) -> (u64, u64) {
        (
            self.env.revision,
            self.biome.as_ref().map_or(0, |b| b.revision),
        )
    }

    /// Whether nothing was ever stored at either level (every change bumps a revision).
    pub fn is_pristine(&self) -> bool {
        self.revisions() == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> Key {
        Key::parse(raw).unwrap()
    }

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn plain(text: &str) -> Value {
        Value {
            secret: false,
            text: text.to_owned(),
        }
    }

    fn variables(entries: &[(Option<&str>, &str, &str)]) -> Variables {
        Variables {
            revision: 1,
            entries: entries
                .iter()
                .map(|(scope, k, v)| ((scope.map(name), key(k)), plain(v)))
                .collect(),
        }
    }

    #[test]
    fn keys_are_upper_snake_case_and_not_sandpits_own() {
        // (raw, Ok, or a fragment of the error message)
        let cases: &[(&str, Result<(), &str>)] = &[
            ("LOG_LEVEL", Ok(())),
            ("_PRIVATE", Ok(())),
            ("A1", Ok(())),
            ("X", Ok(())),
            ("PATH", Ok(())),
            ("PORTS", Ok(())),
            ("MY_SANDPIT_THING", Ok(())),
            ("", Err("is empty\nhint: write KEY=VALUE")),
            ("log_level", Err("has lower-case letters; names are upper-case letters, digits and `_`, not starting with a digit\nhint: did you mean `LOG_LEVEL`?")),
            ("LOG-LEVEL", Err("has characters other than A-Z, 0-9 and `_`; names are upper-case letters, digits and `_`, not starting with a digit\nhint: did you mean `LOG_LEVEL`?")),
            ("1PASSWORD", Err("starts with a digit; names are upper-case letters, digits and `_`, not starting with a digit\nhint: did you mean `_1PASSWORD`?")),
            ("A B", Err("hint: did you mean `A_B`?")),
            ("A\u{0}B", Err("`A\\0B` has characters other than")),
            ("port", Err("`port` has lower-case letters; names are upper-case letters, digits and `_`, not starting with a digit\nhint: e.g. LOG_LEVEL")),
            ("PORT", Err("`PORT` is set by sandpit itself (the port a service listens on), so it cannot be configured\nhint: read it as sandpit gives it; for a value of your own, pick another name, e.g. `APP_PORT`")),
            ("DATABASE_URL", Err("`DATABASE_URL` is set by sandpit itself (the URL of the biome's own database)")),
            ("SHARED_DATABASE_URL", Err("`SHARED_DATABASE_URL` is set by sandpit itself")),
            ("SANDPIT_DATA_DIR", Err("variables starting with `SANDPIT_` are sandpit's own (e.g. SANDPIT_URL_*, SANDPIT_DATA_DIR)\nhint: pick another name, e.g. `APP_DATA_DIR`")),
            ("SANDPIT_", Err("hint: pick another name, e.g. `APP_SETTING`")),
            ("SANDPIT_URL_WEB", Err("e.g. `APP_URL_WEB`")),
        ];
        for (raw, expected) in cases {
            match (Key::parse(raw), expected) {
                (Ok(parsed), Ok(())) => assert_eq!(parsed.as_str(), *raw),
                (Err(error), Err(fragment)) => {
                    let message = error.to_string();
                    assert!(message.contains(fragment), "{raw:?}: {message}");
                    assert!(message.contains("\nhint: "), "{raw:?}: {message}");
                }
                (got, _) => panic!("{raw:?}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn a_suggested_name_is_never_one_that_would_be_refused_too() {
        for raw in ["port", "database-url", "sandpit_x", "sandpit-url"] {
            let message = Key::parse(raw).unwrap_err().to_string();
            assert!(!message.contains("did you mean"), "{raw}: {message}");
        }
    }

    #[test]
    fn keys_read_from_a_file_are_checked_again() {
        let parsed: Result<Key, _> = serde_json::from_str(r#""PORT""#);
        assert!(parsed.is_err());
        let parsed: Key = serde_json::from_str(r#""GREETING""#).unwrap();
        assert_eq!(parsed, key("GREETING"));
    }

    #[test]
    fn values_may_be_empty_but_hold_no_nul_and_errors_never_show_them() {
        assert!(check_value(&key("A"), "").is_ok());
        assert!(check_value(&key("A"), "line one\nline two ünïcode =").is_ok());
        let error = check_value(&key("TOKEN"), "hunter2\0tail").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`TOKEN` has a NUL byte"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let change = Change::Set {
            assignments: vec![(key("TOKEN"), "x\0".into())],
            secret: true,
            components: vec![],
        };
        assert!(change.check().is_err());
    }

    #[test]
    fn a_secret_value_never_shows_in_debug_output_or_descriptions() {
        let change = Change::Set {
            assignments: vec![(key("TOKEN"), "hunter2".into()), (key("OTHER"), "x".into())],
            secret: true,
            components: vec![name("web"), name("worker")],
        };
        assert_eq!(
            change.describe(),
            "set TOKEN, OTHER (secret) for web, worker"
        );
        let mut layer = Variables::default();
        change.apply_to(&mut layer).unwrap();
        let shown = format!("{layer:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Value(secret)"), "{shown}");
        let unset = Change::Unset {
            keys: vec![key("A"), key("B")],
            components: vec![],
        };
        assert_eq!(unset.describe(), "unset A, B");
    }

    #[test]
    fn set_and_unset_by_scope() {
        let web = name("web");
        let set = |k: &str, v: &str, components: &[&str]| Change::Set {
            assignments: vec![(key(k), v.into())],
            secret: false,
            components: components.iter().map(|c| name(c)).collect(),
        };
        let unset = |k: &str, components: &[&str]| Change::Unset {
            keys: vec![key(k)],
            components: components.iter().map(|c| name(c)).collect(),
        };
        let mut layer = Variables::default();
        set("A", "all", &[]).apply_to(&mut layer).unwrap();
        set("A", "web", &["web"]).apply_to(&mut layer).unwrap();
        set("B", "1", &["web", "worker"])
            .apply_to(&mut layer)
            .unwrap();
        assert_eq!(layer.entries.len(), 4);
        assert_eq!(layer.entries[&(Some(web.clone()), key("A"))], plain("web"));

        // Unsetting for one component leaves the others.
        unset("B", &["worker"]).apply_to(&mut layer).unwrap();
        assert!(layer.entries.contains_key(&(Some(web.clone()), key("B"))));
        // Something not set is reported, and nothing changes.
        let before = layer.clone();
        let missing = unset("B", &["worker"]).apply_to(&mut layer).unwrap_err();
        assert_eq!(
            missing,
            NotSet {
                key: key("B"),
                component: Some(name("worker"))
            }
        );
        let two = Change::Unset {
            keys: vec![key("A"), key("NOPE")],
            components: vec![],
        };
        assert_eq!(two.apply_to(&mut layer).unwrap_err().key, key("NOPE"));
        assert_eq!(layer, before, "a refused change changes nothing");
        // Without components, every scope of the name goes.
        unset("A", &[]).apply_to(&mut layer).unwrap();
        assert!(layer.entries.keys().all(|(_, k)| *k != key("A")));
    }

    #[test]
    fn a_component_gets_the_most_specific_value() {
        let layers = Layers {
            env: variables(&[
                (None, "A", "env"),
                (Some("web"), "A", "env-web"),
                (None, "B", "env"),
                (Some("web"), "C", "env-web"),
                (None, "D", "env"),
            ]),
            biome: Some(variables(&[
                (None, "B", "biome"),
                (Some("worker"), "B", "biome-worker"),
                (Some("worker"), "C", "biome-worker"),
                (None, "E", "biome"),
            ])),
        };
        // (component, key, expected value, expected level)
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("web", "A", Some("env-web")),
            ("worker", "A", Some("env")),
            ("web", "B", Some("biome")),
            ("worker", "B", Some("biome-worker")),
            ("web", "C", Some("env-web")),
            ("worker", "C", Some("biome-worker")),
            ("other", "C", None),
            ("web", "D", Some("env")),
            ("other", "E", Some("biome")),
        ];
        for (component, k, expected) in cases {
            let effective = layers.effective(&name(component));
            assert_eq!(
                effective.get(&key(k)).map(|r| r.value.text.as_str()),
                *expected,
                "{component} {k}"
            );
        }
        // The biome's value for all components beats the environment's for one component.
        let env_web_b = Layers {
            env: variables(&[(Some("web"), "B", "env-web")]),
            biome: Some(variables(&[(None, "B", "biome")])),
        };
        assert_eq!(
            env_web_b.effective(&name("web"))[&key("B")].value,
            plain("biome")
        );
        // A base has only its environment's.
        let base = Layers {
            env: variables(&[(None, "A", "env")]),
            biome: None,
        };
        let resolved = &base.effective(&name("web"))[&key("A")];
        assert_eq!(resolved.level, Level::Environment);
        assert_eq!(resolved.scope, None);
    }

    #[test]
    fn rows_say_which_components_get_each_value() {
        let layers = Layers {
            env: variables(&[
                (None, "GREETING", "hello"),
                (None, "LEVEL", "info"),
                (Some("web"), "ONLY", "x"),
            ]),
            biome: Some(variables(&[
                (None, "GREETING", "hi"),
                (Some("web"), "LEVEL", "debug"),
            ])),
        };
        let components = [name("web"), name("worker")];
        let rows: Vec<(String, Option<String>, Level, Vec<String>)> = layers
            .rows(&components)
            .into_iter()
            .map(|r| {
                (
                    r.key.to_string(),
                    r.scope.map(|s| s.to_string()),
                    r.level,
                    r.applies_to.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect();
        let owned = |k: &str, s: Option<&str>, l: Level, to: &[&str]| {
            (
                k.to_owned(),
                s.map(str::to_owned),
                l,
                to.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            rows,
            vec![
                owned("GREETING", None, Level::Environment, &[]),
                owned("GREETING", None, Level::Biome, &["web", "worker"]),
                owned("LEVEL", None, Level::Environment, &["worker"]),
                owned("LEVEL", Some("web"), Level::Biome, &["web"]),
                owned("ONLY", Some("web"), Level::Environment, &["web"]),
            ]
        );
    }

    #[test]
    fn a_change_survives_a_round_trip_through_json() {
        let change = Change::Set {
            assignments: vec![(key("A"), "".into()), (key("B"), "x=y\n".into())],
            secret: true,
            components: vec![name("web")],
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
        let refused = text.replace("\"A\"", "\"PORT\"");
        assert!(serde_json::from_str::<Change>(&refused).is_err());
    }
}
