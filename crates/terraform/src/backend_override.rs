//! The override file that points a module at sandpit's http backend, so the module needs no
//! backend block of its own.
//!
//! Terraform merges `*_override.tf` files into the configuration after the others, and for the
//! `terraform` block "if the original configuration has a backend block and the override has a
//! backend block, the override's block replaces the original's entirely" — so a module that
//! declares `backend "local"` (or any other) is run against sandpit's state all the same. The
//! block is empty: terraform reads the address and credentials from `TF_HTTP_*`, which only
//! ever travel in the process environment.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::TerraformError;

/// The file written into the module directory of a run with an http backend (and removed from
/// one without). The name is sandpit's: a module's own file of that name is replaced.
pub const BACKEND_OVERRIDE_FILE: &str = "sandpit_backend_override.tf";

/// What [`BACKEND_OVERRIDE_FILE`] holds.
pub const BACKEND_OVERRIDE_TEXT: &str = "\
# Written by sandpit before each run: the state lives in sandpit's http backend, whose address and
# credentials terraform reads from TF_HTTP_* in its environment. As an override file, this block
# replaces any backend the module declares.
terraform {
  backend \"http\" {}
}
";

/// Makes the module directory say what the run's backend is: the override present (with
/// exactly [`BACKEND_OVERRIDE_TEXT`]) for the http backend, absent for local state.
pub(crate) fn apply_to(dir: &Path, http_backend: bool) -> Result<(), TerraformError> {
    let path = dir.join(BACKEND_OVERRIDE_FILE);
    if http_backend {
        fs::write(&path, BACKEND_OVERRIDE_TEXT).map_err(|source| TerraformError::Io {
            what: "write the backend override",
            path,
            source,
        })
    } else {
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(TerraformError::Io {
                what: "remove the backend override",
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_is_an_empty_http_backend_block_and_nothing_else() {
        let code: Vec<&str> = BACKEND_OVERRIDE_TEXT
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect();
        assert_eq!(code, ["terraform {", "  backend \"http\" {}", "}"]);
        // Terraform only merges files whose names end in `_override.tf` (or are `override.tf`).
        assert!(BACKEND_OVERRIDE_FILE.ends_with("_override.tf"));
        // Nothing secret in it: no address, username or password.
        for word in ["address", "username", "password", "://"] {
            assert!(!code.concat().contains(word), "{word}");
        }
        assert!(!BACKEND_OVERRIDE_TEXT.contains("://"));
    }

    #[test]
    fn the_file_is_written_for_http_and_removed_for_local_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BACKEND_OVERRIDE_FILE);
        apply_to(dir.path(), false).unwrap();
        assert!(!path.exists());
        fs::write(&path, "stale").unwrap();
        apply_to(dir.path(), true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), BACKEND_OVERRIDE_TEXT);
        apply_to(dir.path(), false).unwrap();
        assert!(!path.exists());
        let missing = dir.path().join("missing");
        let error = apply_to(&missing, true).unwrap_err();
        assert!(
            error.to_string().contains("write the backend override"),
            "{error}"
        );
    }
}
