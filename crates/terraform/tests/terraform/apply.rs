//! `apply`, `outputs`, `state_list` and `destroy` with local state; an apply that fails
//! half-way.

use serde_json::json;

use sandpit_terraform::{apply, destroy, init, outputs, state_list, TerraformError};

use crate::fixtures::{terraform, Module, DEPLOYMENT_MODULE, SHA_A};

#[test]
fn an_apply_takes_its_variables_from_the_environment_and_its_outputs_read_back() {
    let module = Module::new(&[("main.tf", DEPLOYMENT_MODULE)]);
    let run = module.run_with(&[("sha", SHA_A), ("biome", "alice")]);
    init(terraform(), &run).unwrap();
    apply(terraform(), &run).unwrap();

    let outputs = outputs(terraform(), &run).unwrap();
    let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
    assert_eq!(names, ["deployed", "token"]);
    assert_eq!(outputs["deployed"].value, json!(format!("{SHA_A}/alice")));
    assert!(!outputs["deployed"].sensitive);
    assert_eq!(outputs["token"].value, json!("token-for-alice"));
    assert!(outputs["token"].sensitive);
    assert!(!format!("{:?}", outputs["token"]).contains("token-for-alice"));

    let log = module.log_text();
    // Every command is in the log with its arguments, and no variable's value is among them:
    // the values travelled as TF_VAR_* only.
    let commands: Vec<&str> = log.lines().filter(|l| l.starts_with("$ ")).collect();
    assert_eq!(commands.len(), 3, "{log}");
    assert!(
        commands[0].starts_with("$ terraform init -input=false -no-color -backend=false"),
        "{log}"
    );
    assert!(
        commands[1].starts_with(
            "$ terraform apply -auto-approve -input=false -no-color -lock-timeout=2000ms"
        ),
        "{log}"
    );
    assert!(commands[2].starts_with("$ terraform output -json"), "{log}");
    for command in &commands {
        assert!(
            !command.contains(SHA_A) && !command.contains("alice"),
            "{command}"
        );
    }
    // terraform's own output is in it; the outputs' JSON (sensitive values included) is not.
    assert!(
        log.contains("Apply complete! Resources: 2 added, 0 changed, 0 destroyed."),
        "{log}"
    );
    assert!(!log.contains("token-for-alice"), "{log}");
}

#[test]
fn destroy_empties_the_state() {
    let module = Module::new(&[("main.tf", DEPLOYMENT_MODULE)]);
    let run = module.run_with(&[("sha", SHA_A), ("biome", "bob")]);
    init(terraform(), &run).unwrap();
    // Before any apply there is no state: nothing in it, no outputs.
    assert_eq!(state_list(terraform(), &run).unwrap(), Vec::<String>::new());
    assert!(outputs(terraform(), &run).unwrap().is_empty());

    apply(terraform(), &run).unwrap();
    assert_eq!(
        state_list(terraform(), &run).unwrap(),
        ["terraform_data.deployment", "terraform_data.marker"]
    );
    destroy(terraform(), &run).unwrap();
    assert_eq!(state_list(terraform(), &run).unwrap(), Vec::<String>::new());
    assert!(outputs(terraform(), &run).unwrap().is_empty());
    assert!(module
        .log_text()
        .contains("Destroy complete! Resources: 2 destroyed."));
}

#[test]
fn an_apply_that_fails_half_way_reports_the_tail_and_the_state_keeps_what_was_made() {
    let module = Module::new(&[(
        "main.tf",
        r#"
resource "terraform_data" "first" {}

resource "terraform_data" "second" {
  depends_on = [terraform_data.first]

  provisioner "local-exec" {
    command = "exit 3"
  }
}
"#,
    )]);
    let run = module.run();
    init(terraform(), &run).unwrap();
    let error = apply(terraform(), &run).unwrap_err();
    let TerraformError::Failed {
        command,
        code,
        dir,
        tail,
        log,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(command, "terraform apply");
    assert_eq!(*code, Some(1));
    assert_eq!(dir, &module.dir);
    assert_eq!(log, &module.log);
    assert!(
        tail.contains("Error: local-exec provisioner error"),
        "{tail}"
    );
    assert!(
        tail.contains("Error running command 'exit 3': exit status 3"),
        "{tail}"
    );
    assert!(tail.lines().count() <= 20, "{tail}");
    assert!(!tail.contains('\u{1b}'), "{tail}");
    let message = error.to_string();
    assert!(
        message.starts_with("`terraform apply` failed (exit code 1) in `"),
        "{message}"
    );
    assert!(message.contains(&format!(
        "the whole output is in `{}`",
        module.log.display()
    )));
    // The log has everything, in order: the first resource made before the second failed.
    let log_text = module.log_text();
    let created = log_text
        .find("terraform_data.first: Creation complete")
        .expect(&log_text);
    let failed = log_text
        .find("Error: local-exec provisioner error")
        .expect(&log_text);
    assert!(created < failed, "{log_text}");
    // The state says what exists: the first, and the second (tainted, to be replaced).
    let listed = state_list(terraform(), &run).unwrap();
    assert!(
        listed.contains(&"terraform_data.first".to_owned()),
        "{listed:?}"
    );
}

#[test]
fn a_variable_terraform_cannot_take_is_refused_before_terraform_runs() {
    let module = Module::new(&[("main.tf", DEPLOYMENT_MODULE)]);
    let run = module.run_with(&[("sha", SHA_A), ("not a name", "x")]);
    let error = apply(terraform(), &run).unwrap_err();
    assert!(
        matches!(&error, TerraformError::InvalidVariable { name, .. } if name == "not a name"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("variable `not a name` cannot be passed to terraform"),
        "{error}"
    );
    assert_eq!(module.log_text(), "", "nothing ran");
}

#[test]
fn an_apply_while_another_holds_the_state_lock_is_reported_as_locked() {
    // The first apply holds the lock until the test creates `release` (polled by its
    // provisioner), so the second surely meets the lock: no timing involved.
    let module = Module::new(&[(
        "main.tf",
        "resource \"terraform_data\" \"slow\" {\n  provisioner \"local-exec\" {\n    command = \"while [ ! -e ../release ]; do sleep 0.02; done\"\n  }\n}\n",
    )]);
    let run = module.run();
    init(terraform(), &run).unwrap();
    let lock_info = module.file(".terraform.tfstate.lock.info");
    let first = {
        let run = run.clone();
        std::thread::spawn(move || apply(terraform(), &run))
    };
    while !crate::fixtures::exists(&lock_info) {
        assert!(
            !first.is_finished(),
            "the first apply ended before it locked: {:?}",
            first.join()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let mut second = run.clone();
    second.lock_timeout = std::time::Duration::ZERO;
    let error = apply(terraform(), &second).unwrap_err();
    std::fs::write(module.root.join("release"), "").unwrap();
    first.join().unwrap().unwrap();

    let TerraformError::Locked { command, tail, log } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(command, "terraform apply");
    assert_eq!(log, &module.log);
    assert!(tail.contains("Operation: OperationTypeApply"), "{tail}");
    let message = error.to_string();
    assert!(message.contains("another operation holds it"), "{message}");
    assert!(
        message.contains("if it crashed, clear its lock"),
        "{message}"
    );
    assert_eq!(
        state_list(terraform(), &run).unwrap(),
        ["terraform_data.slow"]
    );
}
