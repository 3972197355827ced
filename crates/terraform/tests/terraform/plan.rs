//! `plan_to_file` summaries and `apply_plan`, including a plan gone stale.

use serde_json::json;

use sandpit_terraform::{apply, apply_plan, init, outputs, plan_to_file, Action, TerraformError};

use crate::fixtures::{terraform, Module, DEPLOYMENT_MODULE, SHA_A, SHA_B};

fn actions(summary: &sandpit_terraform::PlanSummary) -> Vec<(&str, Action)> {
    summary
        .resources
        .iter()
        .map(|r| (r.address.as_str(), r.action))
        .collect()
}

#[test]
fn a_plan_is_summarised_and_its_saved_file_applied() {
    let module = Module::new(&[("main.tf", DEPLOYMENT_MODULE)]);
    let plan = module.root.join("first.tfplan");
    let run = module.run_with(&[("sha", SHA_A), ("biome", "alice")]);
    init(terraform(), &run).unwrap();

    let first = plan_to_file(terraform(), &run, &plan).unwrap();
    assert_eq!((first.add, first.change, first.destroy), (2, 0, 0));
    assert_eq!(
        actions(&first),
        [
            ("terraform_data.deployment", Action::Create),
            ("terraform_data.marker", Action::Create)
        ]
    );
    assert_eq!(
        first.to_string(),
        "2 to add, 0 to change, 0 to destroy: + terraform_data.deployment, + terraform_data.marker"
    );
    // Planning changed nothing yet.
    assert!(outputs(terraform(), &run).unwrap().is_empty());
    apply_plan(terraform(), &run, &plan).unwrap();
    assert_eq!(
        outputs(terraform(), &run).unwrap()["deployed"].value,
        json!(format!("{SHA_A}/alice"))
    );

    // A new commit and another biome: `input` is updated in place, `triggers_replace` replaces.
    let run = module.run_with(&[("sha", SHA_B), ("biome", "bob")]);
    let second = plan_to_file(terraform(), &run, &module.root.join("second.tfplan")).unwrap();
    assert_eq!((second.add, second.change, second.destroy), (1, 1, 1));
    assert_eq!(
        actions(&second),
        [
            ("terraform_data.deployment", Action::Update),
            ("terraform_data.marker", Action::Replace)
        ]
    );
    // Terraform's own count, in the log, agrees.
    assert!(
        module
            .log_text()
            .contains("Plan: 1 to add, 1 to change, 1 to destroy."),
        "{}",
        module.log_text()
    );

    // A plan of what is already there is empty.
    let run = module.run_with(&[("sha", SHA_A), ("biome", "alice")]);
    let nothing = plan_to_file(terraform(), &run, &module.root.join("same.tfplan")).unwrap();
    assert!(nothing.is_empty(), "{nothing}");
    assert_eq!(nothing.to_string(), "0 to add, 0 to change, 0 to destroy");
}

#[test]
fn a_saved_plan_is_refused_once_the_state_moved() {
    let module = Module::new(&[("main.tf", DEPLOYMENT_MODULE)]);
    let plan = module.root.join("approved.tfplan");
    let planned = module.run_with(&[("sha", SHA_A), ("biome", "alice")]);
    init(terraform(), &planned).unwrap();
    plan_to_file(terraform(), &planned, &plan).unwrap();

    // Someone applies directly meanwhile.
    let direct = module.run_with(&[("sha", SHA_B), ("biome", "alice")]);
    apply(terraform(), &direct).unwrap();

    let error = apply_plan(terraform(), &planned, &plan).unwrap_err();
    let TerraformError::StalePlan {
        command,
        plan: refused,
        tail,
        log,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(command, "terraform apply");
    assert_eq!(refused, &plan);
    assert_eq!(log, &module.log);
    assert!(tail.contains("Saved plan is stale"), "{tail}");
    assert!(
        error
            .to_string()
            .contains("make a new plan (and have it approved again)"),
        "{error}"
    );
    // The state is the direct apply's.
    assert_eq!(
        outputs(terraform(), &planned).unwrap()["deployed"].value,
        json!(format!("{SHA_B}/alice"))
    );
}
