//! What the supervisor's table tests build their rows from.

use sandpit_domain::{ComponentKind, Digest, Name};

use crate::protocol::ComponentSpec;

/// A component named `name` of `kind` that depends on `depends_on`, with placeholder
/// artifact, digest and command.
pub(crate) fn component_spec(
    name: &str,
    kind: ComponentKind,
    depends_on: &[&str],
) -> ComponentSpec {
    ComponentSpec {
        name: Name::parse(name).unwrap(),
        kind,
        artifact: format!("{name}.zip"),
        digest: Digest::of(name.as_bytes()),
        run: "true".into(),
        health: None,
        start_timeout_secs: 1,
        env: Default::default(),
        secret_env: Default::default(),
        depends_on: depends_on.iter().map(|d| Name::parse(d).unwrap()).collect(),
    }
}
