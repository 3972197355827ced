//! The key files of both sides, under `$SANDPIT_HOME`:
//!
//! ```text
//! agent/agent.key                     the agent's own signing key (0600, created once)
//! agent/control-plane.pub             the control plane's public key the agent trusts
//! keys/control-plane.key              the control plane's signing key (0600, created on first use)
//! keys/agents/<project>/<env>.pub     the agents the control plane registered
//! ```
//!
//! A secret key file is created with its final mode and never overwritten: a second `init`
//! finds it and keeps it (the public half registered elsewhere stays valid).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use sandpit_domain::Name;
use sandpit_manifest::{PublicKey, SecretKey};
use sandpit_runtime::owner_only;

use crate::error::ErrorKind;

pub fn agent_key_path(home: &Path) -> PathBuf {
    home.join("agent").join("agent.key")
}

pub fn trusted_key_path(home: &Path) -> PathBuf {
    home.join("agent").join("control-plane.pub")
}

pub fn control_plane_key_path(home: &Path) -> PathBuf {
    home.join("keys").join("control-plane.key")
}

pub fn registered_key_path(home: &Path, project: &Name, env: &Name) -> PathBuf {
    home.join("keys")
        .join("agents")
        .join(project.as_str())
        .join(format!("{env}.pub"))
}

/// The secret key at `path`, made (0600, in a 0700 directory) when there is none; whether it
/// was made now. An existing file is read, never replaced, even when two processes race.
fn secret_key_at(path: &Path) -> anyhow::Result<(SecretKey, bool)> {
    if let Some(key) = read_secret(path)? {
        return Ok((key, false));
    }
    let dir = path.parent().expect("key paths have a directory");
    owner_only::create_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let key = SecretKey::generate()?;
    // Written whole beside it, then linked into place: the link fails when another process
    // made the key meanwhile, and no reader ever sees half a key.
    let temporary = dir.join(format!(".key.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temporary);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(owner_only::FILE_MODE)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(format!("{}\n", key.to_text()).as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    match written {
        Ok(()) => Ok((key, true)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = read_secret(path)?.expect("it exists: the link said so");
            Ok((key, false))
        }
        Err(error) => Err(anyhow::anyhow!("cannot write {}: {error}", path.display())),
    }
}

fn read_secret(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    match fs::read_to_string(path) {
        Ok(text) => SecretKey::from_text(&text).map(Some).map_err(|e| {
            crate::error::failure(
                ErrorKind::InvalidInput,
                format!(
                    "{} is not a sandpit key: {e}\nhint: it was changed by hand; restore it from a backup (a new key would need registering again)",
                    path.display()
                ),
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
    }
}

fn read_public(path: &Path, missing_hint: &str) -> anyhow::Result<PublicKey> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => crate::fail!(
            NotFound,
            "there is no {}\nhint: {missing_hint}",
            path.display()
        ),
        Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
    };
    PublicKey::from_text(&text).map_err(|e| {
        crate::error::failure(
            ErrorKind::InvalidInput,
            format!(
                "{} is not a public key: {e}\nhint: {missing_hint}",
                path.display()
            ),
        )
    })
}

/// A public key given on the command line, or a clear error naming what it was for.
pub fn parse_public(text: &str, what: &str) -> anyhow::Result<PublicKey> {
    PublicKey::from_text(text).map_err(|e| {
        crate::error::failure(
            ErrorKind::InvalidInput,
            format!(
                "{what} {} is not a public key: {e}\nhint: copy it whole from the other side's output (43 base64url characters)",
                sandpit_domain::quoted(text)
            ),
        )
    })
}

/// What `sandpit agent init` did.
#[derive(Debug)]
pub struct Initialized {
    pub public: PublicKey,
    /// Whether the agent's key was made now (false: it existed and was kept).
    pub created: bool,
}

/// Makes the agent's key (once) and trusts `control_plane` (the trust may be replaced: a
/// control plane's key can be rotated by running `init` again).
pub fn init(home: &Path, control_plane: &PublicKey) -> anyhow::Result<Initialized> {
    let (key, created) = secret_key_at(&agent_key_path(home))?;
    let trusted = trusted_key_path(home);
    owner_only::write_file(&trusted, format!("{control_plane}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", trusted.display()))?;
    Ok(Initialized {
        public: key.public(),
        created,
    })
}

/// The agent's own key; an error saying to run `sandpit agent init` when there is none.
pub fn agent_key(home: &Path) -> anyhow::Result<SecretKey> {
    let path = agent_key_path(home);
    read_secret(&path)?.ok_or_else(|| {
        crate::error::failure(
            ErrorKind::NotFound,
            format!(
                "this machine has no agent key ({} is missing)\nhint: run `sandpit agent init --trust CONTROL_PLANE_PUBLIC_KEY` (`sandpit agent control-key` prints it on the control plane)",
                path.display()
            ),
        )
    })
}

/// The control plane's public key the agent trusts.
pub fn trusted(home: &Path) -> anyhow::Result<PublicKey> {
    read_public(
        &trusted_key_path(home),
        "run `sandpit agent init --trust CONTROL_PLANE_PUBLIC_KEY` (`sandpit agent control-key` prints it on the control plane)",
    )
}

/// The control plane's signing key, made on first use.
pub fn control_plane_key(home: &Path) -> anyhow::Result<SecretKey> {
    Ok(secret_key_at(&control_plane_key_path(home))?.0)
}

/// Registers the public key of `project`'s agent for `env` (replacing an earlier one).
pub fn register(
    home: &Path,
    project: &Name,
    env: &Name,
    key: &PublicKey,
) -> anyhow::Result<PathBuf> {
    let path = registered_key_path(home, project, env);
    let dir = path.parent().expect("has a directory");
    fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    owner_only::write_file(&path, format!("{key}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The registered public key of `project`'s agent for `env`.
pub fn registered(home: &Path, project: &Name, env: &Name) -> anyhow::Result<PublicKey> {
    read_public(
        &registered_key_path(home, project, env),
        &format!("register the agent: `sandpit agent register --project {project} --env {env} AGENT_PUBLIC_KEY` (`sandpit agent key` prints it on the agent's machine)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_agent_key_is_made_once_owner_only_and_kept() {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path();
        let error = agent_key(home).unwrap_err().to_string();
        assert!(error.contains("run `sandpit agent init"), "{error}");
        let control = control_plane_key(home).unwrap();
        let first = init(home, &control.public()).unwrap();
        assert!(first.created);
        let mode = fs::metadata(agent_key_path(home))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = init(home, &control.public()).unwrap();
        assert!(!again.created);
        assert_eq!(again.public, first.public, "never overwritten");
        assert_eq!(agent_key(home).unwrap().public(), first.public);
        assert_eq!(trusted(home).unwrap(), control.public());
        assert_eq!(control_plane_key(home).unwrap().public(), control.public());
    }

    #[test]
    fn registered_agents_are_read_back_and_missing_ones_say_how_to_register() {
        let temp = tempfile::tempdir().unwrap();
        let (project, env) = (Name::parse("shop").unwrap(), Name::parse("prod").unwrap());
        let error = registered(temp.path(), &project, &env)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sandpit agent register --project shop --env prod"),
            "{error}"
        );
        let key = SecretKey::generate().unwrap().public();
        register(temp.path(), &project, &env, &key).unwrap();
        assert_eq!(registered(temp.path(), &project, &env).unwrap(), key);
        let error = parse_public("nope", "the agent key")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the agent key `nope` is not a public key"),
            "{error}"
        );
    }
}
