//! Which state a request means: `StateKey`, its path (`project/env/biome-or-_base/component`)
//! in URLs, in Basic-auth usernames and on disk.

use std::fmt;

use sandpit_domain::Name;

/// The path segment standing for an environment's base. It starts with `_`, which no [`Name`]
/// may, so it can never be taken for a biome called that.
pub const BASE_SEGMENT: &str = "_base";

/// One Terraform state: a `[terraform.<component>]` of a project, in an environment's base or
/// in one of its biomes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey {
    pub project: Name,
    pub environment: Name,
    /// `None`: the environment's base.
    pub biome: Option<Name>,
    pub component: Name,
}

/// Why a path does not name a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("`{path}` is not a state path: expected `project/environment/biome-or-{BASE_SEGMENT}/component`")]
    Shape { path: String },
    #[error("`{path}` is not a state path: its {part} {problem}")]
    BadName {
        path: String,
        part: &'static str,
        problem: String,
    },
}

impl StateKey {
    /// `project/environment/biome-or-_base/component`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.project,
            self.environment,
            self.biome.as_ref().map_or(BASE_SEGMENT, Name::as_str),
            self.component
        )
    }

    /// The state's address on the backend at `origin` (`http://127.0.0.1:PORT`).
    pub fn url(&self, origin: &str) -> String {
        format!("{}/v1/states/{}", origin.trim_end_matches('/'), self.path())
    }

    /// Reads [`StateKey::path`]'s form back.
    pub fn parse_path(path: &str) -> Result<StateKey, KeyError> {
        let parts: Vec<&str> = path.split('/').collect();
        let [project, environment, biome, component] = parts[..] else {
            return Err(KeyError::Shape {
                path: path.to_owned(),
            });
        };
        StateKey::from_segments(project, environment, biome, component).map_err(
            |(part, problem)| KeyError::BadName {
                path: path.to_owned(),
                part,
                problem,
            },
        )
    }

    /// A key from its four path segments; the failing part and its problem otherwise.
    pub fn from_segments(
        project: &str,
        environment: &str,
        biome: &str,
        component: &str,
    ) -> Result<StateKey, (&'static str, String)> {
        let name = |part: &'static str, raw: &str| {
            Name::parse(raw).map_err(|error| (part, format!("`{raw}` {}", error.problem())))
        };
        Ok(StateKey {
            project: name("project", project)?,
            environment: name("environment", environment)?,
            biome: if biome == BASE_SEGMENT {
                None
            } else {
                Some(name("biome", biome)?)
            },
            component: name("component", component)?,
        })
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(biome: Option<&str>) -> StateKey {
        StateKey {
            project: Name::parse("geo").unwrap(),
            environment: Name::parse("dev").unwrap(),
            biome: biome.map(|b| Name::parse(b).unwrap()),
            component: Name::parse("network").unwrap(),
        }
    }

    #[test]
    fn paths_name_the_base_with_a_token_no_biome_can_have() {
        assert!(Name::parse(BASE_SEGMENT).is_err());
        assert_eq!(key(None).path(), "geo/dev/_base/network");
        assert_eq!(key(Some("feat-x")).path(), "geo/dev/feat-x/network");
        assert_eq!(
            key(None).url("http://127.0.0.1:1234/"),
            "http://127.0.0.1:1234/v1/states/geo/dev/_base/network"
        );
    }

    #[test]
    fn paths_are_read_back_or_refused_saying_which_part_is_wrong() {
        // (path, the key or the refusal's text)
        let cases: &[(&str, Result<StateKey, &str>)] = &[
            ("geo/dev/_base/network", Ok(key(None))),
            ("geo/dev/feat-x/network", Ok(key(Some("feat-x")))),
            ("geo/dev/network", Err("expected `project/environment")),
            (
                "geo/dev/x/network/more",
                Err("expected `project/environment"),
            ),
            ("", Err("expected")),
            ("Geo/dev/_base/network", Err("its project `Geo`")),
            ("geo/dev/_other/network", Err("its biome `_other`")),
            ("geo/dev/_base/net_work", Err("its component `net_work`")),
            ("geo//_base/network", Err("its environment")),
        ];
        for (path, expected) in cases {
            match (StateKey::parse_path(path), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{path}"),
                (Err(error), Err(text)) => {
                    assert!(error.to_string().contains(text), "{path}: {error}")
                }
                (got, want) => panic!("{path}: got {got:?}, expected {want:?}"),
            }
        }
    }
}
