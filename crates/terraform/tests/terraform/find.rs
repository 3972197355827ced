//! Finding the binary: on the PATH given, by path, and what a missing or foreign one says.

use std::ffi::OsString;

use sandpit_terraform::{Terraform, TerraformError, INSTALL_HINT};

use crate::fixtures::{path_var, terraform};

#[test]
fn terraform_is_found_on_the_path_given_with_its_version() {
    let found = terraform();
    assert_eq!(found.binary().file_name().unwrap(), "terraform");
    let version = found.version();
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() >= 3 && parts[0].parse::<u32>().is_ok(),
        "{version}"
    );
    // By path, the same binary and version.
    let by_path = Terraform::find(found.binary().to_str().unwrap(), None).unwrap();
    assert_eq!(by_path.version(), version);
    // Only the PATH given is searched: an empty one finds nothing.
    let empty = OsString::new();
    assert!(matches!(
        Terraform::find("terraform", Some(&empty)),
        Err(TerraformError::NotFound { .. })
    ));
}

#[test]
fn a_missing_binary_is_not_found_with_the_install_hint() {
    let error = Terraform::find("no-such-binary", path_var().as_deref()).unwrap_err();
    let TerraformError::NotFound { name, hint, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(name, "no-such-binary");
    assert_eq!(*hint, INSTALL_HINT);
    let message = error.to_string();
    assert!(
        message.starts_with("`no-such-binary` was not found (looked in /"),
        "{message}"
    );
    assert!(
        message.contains("install Terraform (https://developer.hashicorp.com/terraform/install) or set [terraform] binary; see `sandpit doctor`"),
        "{message}"
    );
}

#[test]
fn a_binary_that_is_not_terraform_is_refused_saying_so() {
    // `true version -json` succeeds and prints nothing.
    let error = Terraform::find("true", path_var().as_deref()).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, TerraformError::UnexpectedOutput { .. }),
        "{error:?}"
    );
    assert!(
        message.contains("version -json` printed something unexpected (not JSON"),
        "{message}"
    );
    assert!(
        message.contains("is it terraform or OpenTofu?"),
        "{message}"
    );
}
