//! What decides whether a running component must be replaced: its bytes, how it is run, and the
//! hash of each secret's value. The fingerprint is persisted in `runtime/state.json`, so it holds
//! hashes of secrets, never the secrets.

use sandpit_domain::Name;
use sha2::{Digest as _, Sha256};

use crate::protocol::ComponentSpec;
use crate::secret_env::ResolvedSecrets;

/// The fingerprint of `component` run beside `services`, with `secrets` read from its files.
pub(super) fn fingerprint(
    component: &ComponentSpec,
    services: &[Name],
    secrets: &ResolvedSecrets,
) -> String {
    let mut encoded = serde_json::json!({
        "digest": component.digest,
        "run": component.run,
        "health": component.health,
        "timeout": component.start_timeout_secs,
        "env": component.env,
        "depends_on": component.depends_on,
        "siblings": services,
    });
    // Only when there are secrets: a component without any keeps the fingerprint it had before
    // secrets existed, so upgrading the daemon does not restart it. Which file a value comes
    // from does not matter, only the value.
    if !component.secret_env.is_empty() {
        encoded["secret_env"] = serde_json::json!(secrets.content_hashes());
    }
    hex::encode(Sha256::digest(encoded.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use sandpit_domain::{ComponentKind, Digest};

    use super::*;
    use crate::owner_only;
    use crate::secret_env;

    fn web(secret_env: BTreeMap<String, PathBuf>) -> ComponentSpec {
        ComponentSpec {
            name: Name::parse("web").unwrap(),
            kind: ComponentKind::Service,
            artifact: "web-0123456789ab.zip".into(),
            digest: Digest::of(b"web"),
            run: "python3 server.py".into(),
            health: Some("/health".into()),
            start_timeout_secs: 30,
            env: BTreeMap::from([("MODE".to_owned(), "dev".to_owned())]),
            secret_env,
            depends_on: Vec::new(),
        }
    }

    fn services() -> Vec<Name> {
        vec![Name::parse("web").unwrap()]
    }

    /// Writes `value` to `path` and fingerprints `web` with `DATABASE_URL` read from it.
    fn with_url(path: &Path, value: &str) -> String {
        owner_only::write_file(path, value.as_bytes()).unwrap();
        let component = web(BTreeMap::from([(
            "DATABASE_URL".to_owned(),
            path.to_owned(),
        )]));
        let secrets = secret_env::resolve(&component.secret_env).unwrap();
        fingerprint(&component, &services(), &secrets)
    }

    #[test]
    fn a_component_without_secrets_keeps_the_fingerprint_of_the_previous_version() {
        let component = web(BTreeMap::new());
        let before_secrets = serde_json::json!({
            "digest": component.digest,
            "run": component.run,
            "health": component.health,
            "timeout": component.start_timeout_secs,
            "env": component.env,
            "depends_on": component.depends_on,
            "siblings": services(),
        });
        assert_eq!(
            fingerprint(&component, &services(), &ResolvedSecrets::default()),
            hex::encode(Sha256::digest(before_secrets.to_string().as_bytes()))
        );
    }

    #[test]
    fn a_changed_secret_changes_the_fingerprint_and_an_unchanged_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("alice.database-url");
        let moved = dir.path().join("moved.database-url");
        let first = with_url(&url, "postgres://alice:one@127.0.0.1:5432/geo_alice");
        for (what, path, value, same) in [
            (
                "the same value again",
                &url,
                "postgres://alice:one@127.0.0.1:5432/geo_alice",
                true,
            ),
            (
                "the same value in another file",
                &moved,
                "postgres://alice:one@127.0.0.1:5432/geo_alice",
                true,
            ),
            (
                "a new password",
                &url,
                "postgres://alice:two@127.0.0.1:5432/geo_alice",
                false,
            ),
            (
                "another port",
                &url,
                "postgres://alice:one@127.0.0.1:5433/geo_alice",
                false,
            ),
        ] {
            assert_eq!(with_url(path, value) == first, same, "{what}");
        }
        let without = fingerprint(
            &web(BTreeMap::new()),
            &services(),
            &ResolvedSecrets::default(),
        );
        assert_ne!(first, without, "gaining a secret variable restarts");
    }
}
