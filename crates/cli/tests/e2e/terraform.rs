//! Terraform components end to end, with the real `terraform` binary and built-in resources
//! only (`terraform_data`, outputs, `local-exec`): applied before the service that depends on
//! it, which sees its outputs; the state in sandpit's backend (read back with `terraform state
//! pull` through `sandpit exec`), one per biome; a half-way failure, a stale lock, a failing
//! destroy (`destroy-failed`) and an invalid module, each reported with what to do.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::environments::{as_user, json_as};
use crate::harness::{component, http_get, Sandbox};

/// Answers what it got from terraform: `<marker>|<password>`.
const SERVER: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("SANDPIT_TF_INFRA_MARKER", "-") + "|" + os.environ.get("SANDPIT_TF_INFRA_PASSWORD", "-")
        self.send_response(200); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// `guard`'s destroy fails while the file its `flag` names exists.
const MODULE: &str = r#"variable "sha" { type = string }
variable "env" { type = string }
variable "biome" { type = string }
variable "greeting" { type = string }
variable "flag" { type = string }

resource "terraform_data" "marker" {
  input = "${var.greeting}-${var.sha}-${var.biome}"
}

resource "terraform_data" "guard" {
  input = var.flag
  provisioner "local-exec" {
    when    = destroy
    command = "test ! -e ${self.input}"
  }
}

output "marker" { value = terraform_data.marker.output }

output "password" {
  value     = "pw-${var.env}-${var.biome}"
  sensitive = true
}
"#;

fn sandpit_toml(flag: &Path) -> String {
    format!(
        r#"
[project]
name = "infra"

[environments.dev]
biomes = true

[terraform.infra]
path = "infra"
vars = {{ greeting = "hello", flag = "{}" }}

[services.api]
path = "api"
run = "python3 server.py"
start_timeout = 20
depends_on = ["infra"]
"#,
        flag.display()
    )
}

/// A project with a terraform component and a service depending on it; terraform gets a CLI
/// configuration of the test's own (an empty file), never the machine's.
fn project() -> Sandbox {
    let mut sandbox = Sandbox::new();
    let flag = sandbox.home.with_file_name("block-destroy");
    sandbox.write("sandpit.toml", &sandpit_toml(&flag));
    sandbox.write("infra/main.tf", MODULE);
    sandbox.write("api/server.py", SERVER);
    sandbox.commit("infra and api");
    let rc = sandbox.home.with_file_name("terraformrc");
    fs::write(&rc, "").unwrap();
    assert!(
        std::process::Command::new("terraform")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "these tests need the `terraform` binary on PATH: install Terraform (bash scripts/setup.sh says how)"
    );
    sandbox
        .extra_env
        .push(("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()));
    sandbox
        .extra_env
        .push(("SANDPIT_TF_LOCK_TIMEOUT_MS".into(), "500".into()));
    sandbox
}

fn answer(status: &Value) -> String {
    let url = component(status, "api")["url"].as_str().unwrap().to_owned();
    let (code, body) = http_get(&url);
    assert_eq!(code, 200, "{body}");
    body
}

fn combined(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `terraform state pull` run through `sandpit exec` against the biome's state in the backend.
fn state_pull(sandbox: &Sandbox, biome: &str) -> Value {
    let output = sandbox.run(&[
        "exec",
        biome,
        "--component",
        "infra",
        "--",
        "terraform",
        "state",
        "pull",
    ]);
    assert!(output.status.success(), "{}", combined(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn markers(state: &Value) -> Vec<String> {
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "marker")
        .map(|r| {
            r["instances"][0]["attributes"]["output"]["value"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn outputs_reach_the_service_and_every_biome_has_a_state_of_its_own_destroyed_with_it() {
    let sandbox = project();
    let sha = sandbox.git(&["rev-parse", "HEAD"]);
    let up = sandbox.run(&["up", "alice"]);
    assert!(up.status.success(), "{}", combined(&up));
    let printed = combined(&up);
    assert!(
        !printed.contains("pw-dev-alice"),
        "a sensitive output is never printed:\n{printed}"
    );
    assert!(printed.contains("SANDPIT_TF_INFRA_MARKER"), "{printed}");
    let alice = sandbox.status("alice");
    assert_eq!(answer(&alice), format!("hello-{sha}-alice|pw-dev-alice"));
    // The sensitive output reaches the service as a secret: masked unless asked for.
    let env = sandbox.json(&["env", "alice"]);
    assert!(
        env["vars"]["SANDPIT_TF_INFRA_PASSWORD"].is_null(),
        "{env:#}"
    );
    assert_eq!(
        env["vars"]["SANDPIT_TF_INFRA_MARKER"],
        format!("hello-{sha}-alice")
    );
    assert!(!alice.to_string().contains("pw-dev-alice"));
    let states = alice["terraform"].as_array().unwrap();
    assert_eq!(states.len(), 1, "{alice:#}");
    assert_eq!(states[0]["component"], "infra");
    assert_eq!(states[0]["resources"], 2);
    assert_eq!(
        states[0]["sensitive_outputs"][0],
        "SANDPIT_TF_INFRA_PASSWORD"
    );
    assert!(states[0]["lock"].is_null());

    // The state lives in sandpit's backend: terraform reads it back through it.
    let state = state_pull(&sandbox, "alice");
    assert_eq!(markers(&state), [format!("hello-{sha}-alice")]);

    // The same state by the module's own directory, as a user types it in the checkout.
    let listed = sandbox.ok(&[
        "exec",
        "alice",
        "--",
        "terraform",
        "-chdir=infra",
        "state",
        "list",
    ]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["terraform_data.guard", "terraform_data.marker"],
        "{listed}"
    );

    sandbox.ok(&["up", "bob"]);
    let bob = sandbox.status("bob");
    assert_eq!(answer(&bob), format!("hello-{sha}-bob|pw-dev-bob"));
    let bob_state = state_pull(&sandbox, "bob");
    assert_eq!(markers(&bob_state), [format!("hello-{sha}-bob")]);
    assert_ne!(state["lineage"], bob_state["lineage"], "two states");
    let versions = sandbox.json(&["tf", "state", "alice", "infra"]);
    assert!(!versions.to_string().contains("pw-dev-alice"));

    // The same commit again: nothing to apply, nothing recorded.
    let again = sandbox.ok(&["up", "alice"]);
    assert!(!again.contains("terraform apply"), "{again}");

    // A new commit applies again with its sha; the service restarts with the new output.
    sandbox.write("api/README", "a change\n");
    let second = sandbox.commit("change api");
    let output = sandbox.run(&["up", "alice"]);
    assert!(output.status.success(), "{}", combined(&output));
    assert!(
        combined(&output).contains("terraform apply"),
        "{}",
        combined(&output)
    );
    let alice = sandbox.status("alice");
    assert_eq!(answer(&alice), format!("hello-{second}-alice|pw-dev-alice"));

    // `down` destroys bob's resources and forgets its state; alice's stays.
    let down = sandbox.run(&["down", "bob"]);
    assert!(down.status.success(), "{}", combined(&down));
    assert!(
        combined(&down).contains("destroyed 2 resource instance(s)"),
        "{}",
        combined(&down)
    );
    let gone = sandbox.run(&[
        "exec",
        "bob",
        "--component",
        "infra",
        "--",
        "terraform",
        "state",
        "pull",
    ]);
    assert!(!gone.status.success());
    assert_eq!(markers(&state_pull(&sandbox, "alice")).len(), 1);
}

#[test]
fn a_failed_apply_fails_the_up_keeps_what_ran_and_the_state_says_what_exists() {
    let sandbox = project();
    sandbox.ok(&["up", "alice"]);
    let before = answer(&sandbox.status("alice"));
    sandbox.write(
        "infra/broken.tf",
        r#"resource "terraform_data" "half" {
  input = "x"
  provisioner "local-exec" { command = "exit 3" }
}
"#,
    );
    sandbox.commit("a resource that fails to create");
    let stderr = sandbox.fails(&["up", "alice"], 1);
    assert!(
        stderr.contains("terraform component `infra` was not applied")
            && stderr.contains("its state now holds")
            && stderr.contains("exit 3"),
        "{stderr}"
    );
    // The service was not touched: it answers as before.
    assert_eq!(answer(&sandbox.status("alice")), before);
    // The state records what exists: the failed resource, tainted, beside the others.
    let state = state_pull(&sandbox, "alice");
    let half: Vec<&Value> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "half")
        .collect();
    assert_eq!(half.len(), 1, "{state:#}");
    assert_eq!(half[0]["instances"][0]["status"], "tainted", "{state:#}");
    let history = sandbox.json(&["history", "alice"]);
    assert_eq!(history["deployments"][0]["state"], "failed", "{history:#}");

    // A biome whose very first apply failed half-way: listed with what it left, and `down`
    // destroys what the failed apply made.
    let stderr = sandbox.fails(&["up", "bob"], 1);
    assert!(stderr.contains("was not applied"), "{stderr}");
    let listing = sandbox.ok(&["ls"]);
    assert!(
        listing.contains("bob") && listing.contains("terraform state `infra`"),
        "{listing}"
    );
    let down = sandbox.run(&["down", "bob"]);
    assert!(down.status.success(), "{}", combined(&down));
    assert!(
        combined(&down).contains("terraform: destroyed"),
        "{}",
        combined(&down)
    );
    assert!(!sandbox.ok(&["ls"]).contains("bob"));
}

/// Takes alice's state lock as a crashed `terraform apply` would have left it: through the
/// backend, with the state's own credential, never released.
fn leave_a_lock(sandbox: &Sandbox) {
    let key = sandpit_tfstate::StateKey {
        project: sandpit_domain::Name::parse("infra").unwrap(),
        environment: sandpit_domain::Name::parse("dev").unwrap(),
        biome: Some(sandpit_domain::Name::parse("alice").unwrap()),
        component: sandpit_domain::Name::parse("infra").unwrap(),
    };
    let addr = sandpit_tfstate::endpoint(&sandbox.home).unwrap().unwrap();
    let credential = sandpit_tfstate::home_store(&sandbox.home)
        .credential(&key)
        .unwrap();
    let lock = serde_json::json!({
        "ID": "0b7a-crashed", "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner-7",
        "Version": "1.11.4", "Created": "2026-12-03T14:00:00Z", "Path": "",
    });
    let status = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(
            reqwest::Method::from_bytes(b"LOCK").unwrap(),
            key.url(&format!("http://{addr}")),
        )
        .basic_auth(key.path(), Some(credential))
        .body(lock.to_string())
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

#[test]
fn a_stale_lock_is_reported_with_its_holder_and_cleared_by_tf_unlock() {
    let sandbox = project();
    sandbox.ok(&["up", "alice"]);
    leave_a_lock(&sandbox);
    sandbox.write("api/README", "next\n");
    sandbox.commit("next");
    let stderr = sandbox.fails(&["up", "alice"], 1);
    assert!(
        stderr.contains("sandpit tf unlock alice infra") && stderr.contains("ci@runner-7"),
        "{stderr}"
    );
    // `status` says who holds it, and how to clear it.
    let status = sandbox.ok(&["status", "alice"]);
    assert!(
        status.contains("locked by ci@runner-7")
            && status.contains("sandpit tf unlock alice infra"),
        "{status}"
    );
    let unlocked = sandbox.ok(&["tf", "unlock", "alice", "infra"]);
    assert!(unlocked.contains("ci@runner-7"), "{unlocked}");
    let up = sandbox.json(&["up", "alice"]);
    assert_eq!(up["terraform"][0]["component"], "infra", "{up:#}");
    assert!(up["terraform"][0]["lock"].is_null(), "{up:#}");
    assert!(
        up["terraform"][0]["applied_by"].as_i64().is_some(),
        "{up:#}"
    );
}

#[test]
fn a_destroy_that_fails_leaves_the_biome_destroy_failed_until_down_succeeds() {
    let sandbox = project();
    sandbox.ok(&["up", "alice"]);
    let flag = sandbox.home.with_file_name("block-destroy");
    fs::write(&flag, "").unwrap();
    let stderr = sandbox.fails(&["down", "alice"], 1);
    assert!(
        stderr.contains("terraform destroy of `infra` failed")
            && stderr.contains("sandpit down alice"),
        "{stderr}"
    );
    let listing = sandbox.ok(&["ls"]);
    assert!(
        listing.contains("destroy-failed") && listing.contains("terraform state `infra`"),
        "{listing}"
    );
    let listed = sandbox.json(&["ls"]);
    assert_eq!(
        listed["incomplete"][0]["state"], "destroy-failed",
        "{listed:#}"
    );

    fs::remove_file(&flag).unwrap();
    sandbox.ok(&["down", "alice"]);
    let listing = sandbox.ok(&["ls"]);
    assert!(!listing.contains("alice"), "{listing}");
}

#[test]
fn an_invalid_module_fails_the_build_with_terraforms_message_located() {
    let sandbox = project();
    sandbox.write(
        "infra/main.tf",
        "variable \"sha\" { type = string }\nresource \"terraform_data\" \"x\" {\n  input = var.nope\n}\n",
    );
    sandbox.commit("undeclared variable");
    let stderr = sandbox.fails(&["build"], 1);
    assert!(
        stderr.contains("terraform component `infra`") && stderr.contains("infra/main.tf:3:"),
        "{stderr}"
    );
    sandbox.write(
        "infra/main.tf",
        "resource \"terraform_data\" \"x\" { input = \"a\"\n",
    );
    sandbox.commit("syntax error");
    let stderr = sandbox.fails(&["build"], 1);
    assert!(stderr.contains("infra/main.tf:1:"), "{stderr}");
    // A `path` with no configuration in it would apply nothing: refused.
    fs::remove_file(sandbox.repo.join("infra/main.tf")).unwrap();
    sandbox.write("infra/README", "the module moved\n");
    sandbox.commit("no configuration");
    let stderr = sandbox.fails(&["build"], 1);
    assert!(
        stderr.contains("infra: no Terraform configuration"),
        "{stderr}"
    );
    // Nothing was built into the store for the broken commits.
    let artifacts = sandbox.ok(&["artifacts"]);
    assert!(!artifacts.contains("infra-"), "{artifacts}");
}

/// `doctor --json`'s `terraform` check (doctor exits non-zero when a check is an error).
fn terraform_check(sandbox: &Sandbox) -> Value {
    let output = sandbox.run(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "terraform")
        .unwrap()
        .clone()
}

#[test]
fn doctor_reports_terraform_and_a_missing_binary_with_the_fix() {
    let sandbox = project();
    let check = terraform_check(&sandbox);
    assert_eq!(check["status"], "ok", "{check:#}");
    assert!(
        check["detail"].as_str().unwrap().contains("1."),
        "{check:#}"
    );

    let flag = sandbox.home.with_file_name("block-destroy");
    let toml = sandpit_toml(&flag).replace(
        "[terraform.infra]",
        "[terraform]\nbinary = \"no-such-terraform\"\n\n[terraform.infra]",
    );
    sandbox.write("sandpit.toml", &toml);
    sandbox.commit("a binary that is not installed");
    let check = terraform_check(&sandbox);
    assert_eq!(check["status"], "error", "{check:#}");
    assert!(
        check["fix"].as_str().unwrap().contains("install Terraform"),
        "{check:#}"
    );
    let stderr = sandbox.fails(&["up", "alice"], 1);
    assert!(
        stderr.contains("no-such-terraform") && stderr.contains("sandpit doctor"),
        "{stderr}"
    );
}

/// [`project`] with a protected `prod` that takes promotions from `dev`.
fn protected_project() -> Sandbox {
    let mut sandbox = project();
    let flag = sandbox.home.with_file_name("block-destroy");
    sandbox.write(
        "sandpit.toml",
        &sandpit_toml(&flag).replace(
            "biomes = true\n",
            "biomes = true\n\n[environments.prod]\npromote_from = \"dev\"\nprotected = true\n",
        ),
    );
    sandbox.commit("a protected prod");
    sandbox
        .extra_env
        .push(("CHECKPOINT_DISABLE".into(), "1".into()));
    sandbox
}

fn steps(deployment: &Value) -> Vec<(String, String)> {
    deployment["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_promotion_to_a_protected_environment_applies_the_plan_its_approver_saw_and_refuses_it_once_stale(
) {
    let sandbox = protected_project();
    let first = sandbox.git(&["rev-parse", "HEAD"]);
    let dev = json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    assert_eq!(dev["state"], "succeeded", "{dev:#}");
    assert!(steps(&dev).is_empty(), "dev applies directly: {dev:#}");
    assert_eq!(
        answer(&sandbox.status("dev")),
        format!("hello-{first}-|pw-dev-")
    );

    // The promotion waits for approval with the plan's summary, every address in it.
    let promoted = as_user(&sandbox, "alice@example.com", &["promote", "dev", "prod"]);
    let printed = combined(&promoted);
    assert!(promoted.status.success(), "{printed}");
    let plan_line = "infra: 2 to add, 0 to change, 0 to destroy: + terraform_data.guard, + terraform_data.marker";
    assert!(
        printed.contains("is pending") && printed.contains(&format!("planned: {plan_line}")),
        "{printed}"
    );
    let history = sandbox.json(&["history", "prod"]);
    let pending = &history["deployments"][0];
    assert_eq!(pending["state"], "pending", "{history:#}");
    assert_eq!(
        steps(pending),
        [("planned".to_owned(), plan_line.to_owned())]
    );
    let id = pending["id"].as_i64().unwrap();
    let text = sandbox.ok(&["history", "prod"]);
    assert!(text.contains(&format!("planned: {plan_line}")), "{text}");
    // Nothing was applied: prod has no state yet, and runs nothing. The plan is private.
    let base = sandbox
        .home
        .join("projects/infra/terraform/prod/_base/infra");
    let plan = base.join(format!("plans/deployment-{id}.tfplan"));
    let mode = fs::metadata(&plan).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(!base.join("applied.json").exists());
    assert_eq!(sandbox.run(&["status", "prod"]).status.code(), Some(1));

    // Another user approves: exactly that plan is applied, and the service sees its output.
    let approved = json_as(&sandbox, "bob@example.com", &["approve", &id.to_string()]);
    assert_eq!(approved["state"], "succeeded", "{approved:#}");
    assert_eq!(
        steps(&approved),
        [
            ("planned".to_owned(), plan_line.to_owned()),
            ("applied".to_owned(), plan_line.to_owned())
        ]
    );
    assert_eq!(
        answer(&sandbox.status("prod")),
        format!("hello-{first}-|pw-prod-")
    );
    assert!(!plan.exists(), "an applied plan is not kept");
    assert_eq!(
        markers(&state_pull(&sandbox, "prod")),
        [format!("hello-{first}-")]
    );

    // A new commit is promoted and planned; then prod's state changes before the approval.
    sandbox.write("api/README", "a change\n");
    let second = sandbox.commit("change api");
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    let again = json_as(&sandbox, "alice@example.com", &["promote", "dev", "prod"]);
    assert_eq!(again["state"], "pending", "{again:#}");
    assert_eq!(
        steps(&again),
        [(
            "planned".to_owned(),
            "infra: 0 to add, 1 to change, 0 to destroy: ~ terraform_data.marker".to_owned()
        )]
    );
    // `status` of prod shows the approver what waits, with its plan.
    let status = sandbox.ok(&["status", "prod"]);
    assert!(
        status.contains(&format!("pending deployment #{}", again["id"]))
            && status.contains("terraform plan: infra: 0 to add, 1 to change, 0 to destroy: ~ terraform_data.marker"),
        "{status}"
    );
    let document = sandbox.status("prod");
    assert_eq!(
        document["pending"][0]["approvals_missing"], 1,
        "{document:#}"
    );
    assert_eq!(
        document["pending"][0]["plan"][0],
        "infra: 0 to add, 1 to change, 0 to destroy: ~ terraform_data.marker"
    );
    let stale_id = again["id"].as_i64().unwrap().to_string();
    let replaced = sandbox.run(&[
        "exec",
        "prod",
        "--component",
        "infra",
        "--",
        "terraform",
        "apply",
        "-auto-approve",
        "-input=false",
        "-replace=terraform_data.marker",
    ]);
    assert!(replaced.status.success(), "{}", combined(&replaced));

    let refused = as_user(&sandbox, "bob@example.com", &["approve", &stale_id]);
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{}", combined(&refused));
    assert!(
        stderr.contains("the state changed after this plan was approved")
            && stderr.contains("promote again to plan and approve anew")
            && stderr.contains("sandpit promote dev prod")
            && stderr.contains("before anything in `prod` was changed"),
        "{stderr}"
    );
    let history = sandbox.json(&["history", "prod"]);
    let newest = &history["deployments"][0];
    assert_eq!(
        newest["id"].as_i64().unwrap().to_string(),
        stale_id,
        "no rollback was needed: {history:#}"
    );
    assert_eq!(newest["state"], "failed", "{history:#}");
    // prod still runs the earlier release, with the earlier commit's output.
    let prod = sandbox.status("prod");
    assert!(
        prod["sha"].as_str().unwrap().starts_with(&first),
        "{prod:#}"
    );
    assert_eq!(answer(&prod), format!("hello-{first}-|pw-prod-"));
    assert_eq!(
        markers(&state_pull(&sandbox, "prod")),
        [format!("hello-{first}-")]
    );
    assert_ne!(first, second);
}

#[test]
fn a_promotion_whose_plan_fails_is_refused_and_leaves_nothing_pending() {
    let sandbox = protected_project();
    // Valid at build time; its precondition fails only when prod is planned.
    sandbox.write(
        "infra/prod_only.tf",
        r#"resource "terraform_data" "checked" {
  input = var.env
  lifecycle {
    precondition {
      condition     = var.env != "prod"
      error_message = "this module refuses prod"
    }
  }
}
"#,
    );
    sandbox.commit("a precondition prod fails");
    json_as(&sandbox, "alice@example.com", &["deploy", "dev"]);
    let promoted = as_user(&sandbox, "alice@example.com", &["promote", "dev", "prod"]);
    let stderr = String::from_utf8_lossy(&promoted.stderr).into_owned();
    assert_eq!(promoted.status.code(), Some(1), "{}", combined(&promoted));
    assert!(
        stderr.contains("could not be planned")
            && stderr.contains("this module refuses prod")
            && stderr.contains("nothing waits for approval"),
        "{stderr}"
    );
    let history = sandbox.json(&["history", "prod"]);
    let deployments = history["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{history:#}");
    assert_eq!(deployments[0]["state"], "failed", "{history:#}");
    assert!(steps(&deployments[0]).is_empty(), "{history:#}");
    assert_eq!(sandbox.run(&["status", "prod"]).status.code(), Some(1));
}
