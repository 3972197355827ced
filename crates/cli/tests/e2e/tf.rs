//! `sandpit tf state|unlock` against the Terraform state backend the daemon hosts, written to
//! over real HTTP with a state's credential from the store.

use reqwest::blocking::Client;
use reqwest::Method;
use sandpit_domain::Name;
use sandpit_tfstate::StateKey;

use crate::harness::Sandbox;

fn network_key() -> StateKey {
    StateKey {
        project: Name::parse("orewise").unwrap(),
        environment: Name::parse("dev").unwrap(),
        biome: None,
        component: Name::parse("network").unwrap(),
    }
}

fn send(sandbox: &Sandbox, method: &str, query: &[(&str, &str)], body: String) -> u16 {
    let key = network_key();
    let addr = sandpit_tfstate::endpoint(&sandbox.home)
        .unwrap()
        .expect("the daemon wrote the backend's endpoint");
    let credential = sandpit_tfstate::home_store(&sandbox.home)
        .credential(&key)
        .unwrap();
    Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            key.url(&format!("http://{addr}")),
        )
        .basic_auth(key.path(), Some(credential))
        .query(query)
        .body(body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn state(serial: u64) -> String {
    format!(r#"{{"version":4,"serial":{serial},"lineage":"line-1","resources":[]}}"#)
}

#[test]
fn tf_state_shows_the_daemons_versions_and_lock_and_tf_unlock_clears_it() {
    let sandbox = Sandbox::with_example();
    let toml = std::fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    sandbox.write(
        "sandpit.toml",
        &format!("{toml}\n[terraform.network]\npath = \"network\"\n"),
    );
    sandbox.write(
        "network/main.tf",
        "resource \"terraform_data\" \"net\" {}\n",
    );
    sandbox.commit("a terraform component");
    sandbox.ok(&["daemon", "start"]);
    let addr = sandpit_tfstate::endpoint(&sandbox.home).unwrap().unwrap();
    assert!(addr.ip().is_loopback());

    let shown = sandbox.ok(&["tf", "state", "dev", "network"]);
    assert!(shown.contains("no state yet"), "{shown}");
    assert_eq!(send(&sandbox, "POST", &[], state(1)), 200);
    assert_eq!(send(&sandbox, "POST", &[], state(2)), 200);

    let lock = serde_json::json!({
        "ID": "lock-1", "Operation": "OperationTypeApply", "Info": "", "Who": "alice@ci",
        "Version": "1.11.4", "Created": "2026-12-03T14:00:00Z", "Path": "",
    });
    assert_eq!(send(&sandbox, "LOCK", &[], lock.to_string()), 200);
    // Held: another writer is refused.
    assert_eq!(send(&sandbox, "POST", &[("ID", "other")], state(3)), 423);

    let listed = sandbox.json(&["tf", "state", "dev", "network"]);
    assert_eq!(listed["state"], "orewise/dev/_base/network");
    let serials: Vec<u64> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["serial"].as_u64().unwrap())
        .collect();
    assert_eq!(serials, vec![1, 2]);
    assert_eq!(listed["lock"]["Who"], "alice@ci");
    let shown = sandbox.ok(&["tf", "state", "dev", "network"]);
    assert!(
        shown.contains(
            "locked by alice@ci since 2026-12-03T14:00:00Z (OperationTypeApply, id lock-1)"
        ),
        "{shown}"
    );

    let unlocked = sandbox.ok(&["tf", "unlock", "dev", "network"]);
    assert!(
        unlocked.contains("it was locked by alice@ci since 2026-12-03T14:00:00Z"),
        "{unlocked}"
    );
    assert!(sandbox
        .ok(&["tf", "state", "dev", "network"])
        .contains("not locked"));
    let again = sandbox.ok(&["tf", "unlock", "dev", "network"]);
    assert!(again.contains("is not locked"), "{again}");
    assert_eq!(send(&sandbox, "POST", &[], state(3)), 200);

    // An unknown target: the usual did-you-mean, and nothing made.
    let output = sandbox.run(&["tf", "unlock", "deve", "network"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("did you mean `dev`?"), "{said}");

    // A component that is not a terraform component of the project: did-you-mean.
    let output = sandbox.run(&["tf", "state", "dev", "netwrk"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("not a terraform component") && said.contains("did you mean `network`?"),
        "{said}"
    );

    // A restarted daemon serves the same states on the same port.
    sandbox.ok(&["daemon", "stop"]);
    sandbox.ok(&["daemon", "start"]);
    assert_eq!(
        sandpit_tfstate::endpoint(&sandbox.home).unwrap(),
        Some(addr)
    );
    assert_eq!(send(&sandbox, "GET", &[], String::new()), 200);
}
