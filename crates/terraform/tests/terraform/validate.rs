//! `validate`: a valid module passes; a syntax error (on which `init` itself fails) and a
//! semantic one (on which `validate` fails) come back located.

use sandpit_terraform::{init, validate, Severity, TerraformError};

use crate::fixtures::{terraform, Module, DEPLOYMENT_MODULE};

fn validated(module: &Module) -> Result<(), sandpit_terraform::InvalidModule> {
    validate(
        terraform(),
        &module.dir,
        &module.plugin_cache,
        Some(&module.cli_config),
    )
}

#[test]
fn a_valid_module_passes() {
    let module = Module::new(&[("main.tf", DEPLOYMENT_MODULE)]);
    validated(&module).unwrap();
    // Nothing of a backend was configured or written.
    assert!(!module
        .file(sandpit_terraform::BACKEND_OVERRIDE_FILE)
        .exists());
}

#[test]
fn a_syntax_error_is_located_although_init_fails_on_it() {
    let module = Module::new(&[
        ("main.tf", DEPLOYMENT_MODULE),
        (
            "network.tf",
            "resource \"terraform_data\" \"net\" {\n  input = \"x\"\n}\n\nvariable \"x\" { type = string default = \"a\" }\n",
        ),
    ]);
    // The path this takes: `init` refuses the module, in prose…
    let init_error = init(terraform(), &module.run()).unwrap_err();
    assert!(
        matches!(&init_error, TerraformError::Failed { command, .. } if command == "terraform init"),
        "{init_error:?}"
    );
    assert!(
        init_error.to_string().contains("on network.tf line 5"),
        "{init_error}"
    );
    // …and `validate` still says where, as data.
    let invalid = validated(&module).unwrap_err();
    let first = &invalid.diagnostics[0];
    assert_eq!(first.severity, Severity::Error);
    assert_eq!(first.summary, "Invalid single-argument block definition");
    assert_eq!(
        (first.file.as_deref(), first.line, first.column),
        (Some("network.tf"), Some(5), Some(30))
    );
    let shown = invalid.under("infra").to_string();
    assert!(
        shown.starts_with("infra/network.tf:5:30: error: Invalid single-argument block definition: A single-line block definition must end with a closing brace"),
        "{shown}"
    );
}

#[test]
fn an_undeclared_variable_is_located() {
    let module = Module::new(&[(
        "main.tf",
        "resource \"terraform_data\" \"a\" {\n  input = var.nope\n}\n",
    )]);
    // `init` has nothing against this module: `validate` is what finds it.
    init(terraform(), &module.run()).unwrap();
    let invalid = validated(&module).unwrap_err();
    assert_eq!(invalid.diagnostics.len(), 1, "{invalid}");
    assert_eq!(
        invalid.to_string(),
        "main.tf:2:11: error: Reference to undeclared input variable: An input variable with the name \"nope\" has not been declared. This variable can be declared with a variable \"nope\" {} block."
    );
}

#[test]
fn a_provider_that_cannot_be_installed_is_named() {
    let module = Module::new(&[(
        "main.tf",
        "terraform {\n  required_providers {\n    thing = {\n      source = \"sandpit-test/thing\"\n    }\n  }\n}\n\nresource \"thing_widget\" \"a\" {}\n",
    )]);
    // Providers come only from an empty directory: nothing is looked up anywhere else.
    let mirror = module.root.join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    std::fs::write(
        &module.cli_config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            mirror.display()
        ),
    )
    .unwrap();
    let invalid = validated(&module).unwrap_err();
    let shown = invalid.to_string();
    assert!(
        shown.starts_with("error: Missing required provider: "),
        "{shown}"
    );
    assert!(shown.contains("sandpit-test/thing"), "{shown}");
}
