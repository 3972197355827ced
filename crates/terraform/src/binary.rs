//! Finding the terraform binary (or OpenTofu's) on the PATH the caller passes, and its version.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::TerraformError;
use crate::process;

/// What to do when the binary is missing.
pub const INSTALL_HINT: &str = "install Terraform (https://developer.hashicorp.com/terraform/install) or set [terraform] binary; see `sandpit doctor`";

/// The binary found, with its version ("1.11.4").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terraform {
    binary: PathBuf,
    version: String,
}

impl Terraform {
    /// `name` is `terraform` or `[terraform] binary` (e.g. `tofu`, or a path: any name with a
    /// `/` is taken as one). A plain name is looked for in the directories of `path_var` (the
    /// caller's `PATH`; this crate reads no environment); empty entries, which would mean the
    /// current directory, are skipped. Runs `<binary> version -json` once.
    pub fn find(name: &str, path_var: Option<&OsStr>) -> Result<Terraform, TerraformError> {
        Terraform::at(Terraform::locate(name, path_var)?)
    }

    /// The binary `binary` is, with its version asked (`<binary> version -json`).
    pub fn at(binary: PathBuf) -> Result<Terraform, TerraformError> {
        let version = process::version_json(&binary)?;
        Ok(Terraform { binary, version })
    }

    /// A binary whose version the caller already knows (asked earlier of the same file, e.g.
    /// kept by its size and modification time): no process runs.
    pub fn known(binary: PathBuf, version: String) -> Terraform {
        Terraform { binary, version }
    }

    /// Where [`Terraform::find`] finds `name`, without running it.
    pub fn locate(name: &str, path_var: Option<&OsStr>) -> Result<PathBuf, TerraformError> {
        let not_found = |searched: Vec<PathBuf>| TerraformError::NotFound {
            name: name.to_owned(),
            searched,
            hint: INSTALL_HINT,
        };
        let binary = if name.contains('/') {
            let path = PathBuf::from(name);
            if !is_executable_file(&path) {
                return Err(not_found(vec![path]));
            }
            path
        } else {
            let dirs: Vec<PathBuf> = path_var
                .map(|path| {
                    std::env::split_paths(path)
                        .filter(|dir| !dir.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if name.is_empty() {
                return Err(not_found(dirs));
            }
            match dirs
                .iter()
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable_file(candidate))
            {
                Some(binary) => binary,
                None => return Err(not_found(dirs)),
            }
        };
        Ok(binary)
    }

    /// The executable that runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Its version as it reports it (`1.11.4`; OpenTofu's own, e.g. `1.8.2`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `terraform` or `tofu` (the file name): how commands are named in messages.
    pub(crate) fn program_name(&self) -> String {
        self.binary
            .file_name()
            .unwrap_or(self.binary.as_os_str())
            .to_string_lossy()
            .into_owned()
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The version in `version -json`'s document: its `terraform_version` (OpenTofu prints the same
/// key). `Err` says what was wrong, for the message.
pub(crate) fn version_from_json(stdout: &str) -> Result<String, String> {
    let document: serde_json::Value =
        serde_json::from_str(stdout).map_err(|e| format!("not JSON: {e}"))?;
    let version = document
        .get("terraform_version")
        .and_then(serde_json::Value::as_str)
        .ok_or("no `terraform_version` string in it")?;
    let plausible = version.chars().next().is_some_and(|c| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    if !plausible {
        return Err(format!("`terraform_version` is {version:?}, not a version"));
    }
    Ok(version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_version_json() {
        // terraform 1.11.4's output (captured).
        let terraform = r#"{
  "terraform_version": "1.11.4",
  "platform": "linux_amd64",
  "provider_selections": {},
  "terraform_outdated": false
}"#;
        let cases: &[(&str, Result<&str, &str>)] = &[
            (terraform, Ok("1.11.4")),
            (
                r#"{"terraform_version":"1.8.2","platform":"linux_amd64","provider_selections":{}}"#,
                Ok("1.8.2"),
            ),
            (
                r#"{"terraform_version":"1.12.0-alpha20250101"}"#,
                Ok("1.12.0-alpha20250101"),
            ),
            ("Terraform v1.11.4\non linux_amd64", Err("not JSON")),
            (r#"{"version":"1.0"}"#, Err("no `terraform_version`")),
            (r#"{"terraform_version":7}"#, Err("no `terraform_version`")),
            (r#"{"terraform_version":""}"#, Err("not a version")),
            (r#"{"terraform_version":"v1 ; rm"}"#, Err("not a version")),
        ];
        for (stdout, expected) in cases {
            match (version_from_json(stdout), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want),
                (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
                (got, want) => panic!("{stdout}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn a_missing_binary_says_where_it_looked_and_what_to_install() {
        let path = std::ffi::OsString::from("/nonexistent/a::/nonexistent/b");
        let error = Terraform::find("terraform", Some(&path)).unwrap_err();
        let message = error.to_string();
        assert!(
            message
                .starts_with("`terraform` was not found (looked in /nonexistent/a:/nonexistent/b)"),
            "{message}"
        );
        assert!(message.ends_with(INSTALL_HINT), "{message}");
        let error = Terraform::find("tofu", None).unwrap_err();
        assert!(error.to_string().contains("no PATH to look on"), "{error}");
        let error = Terraform::find("./no/such/tofu", None).unwrap_err();
        assert!(
            error.to_string().contains("looked in ./no/such/tofu"),
            "{error}"
        );
    }
}
