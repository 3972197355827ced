//! `GET /sandpit/usage`: what each registration's loaded models hold, each digest charged once.

use axum::http::StatusCode;
use sandpit_models::server::UsageAnswer;

use crate::support::{config, Server, V1, V2};

async fn usage(server: &Server) -> UsageAnswer {
    // Open, like `/metrics`: no credentials.
    let (status, answer) = server.call("GET", "/sandpit/usage", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    serde_json::from_value(answer).unwrap()
}

fn bytes_of(answer: &UsageAnswer, registration: &str) -> u64 {
    answer
        .registrations
        .iter()
        .find(|r| r.registration == registration)
        .unwrap_or_else(|| panic!("no registration {registration} in {answer:?}"))
        .bytes
}

#[tokio::test]
async fn a_loaded_model_shows_its_bytes_for_the_registration_that_has_it_as_its_own() {
    let server = Server::new(config());
    let base_grade = server.package(V1, "grade");
    let alice_grade = server.package(V2, "grade");
    server.register("_base", &[("grade", &base_grade)]).await;
    server.register("alice", &[("grade", &alice_grade)]).await;
    // bob's branch did not change the model: he registers the base's bytes as his own.
    server.register("bob", &[("grade", &base_grade)]).await;
    server.register("carol", &[]).await;

    let before = usage(&server).await;
    assert_eq!(before.loaded_bytes, 0, "{before:?}");
    let names: Vec<&str> = before
        .registrations
        .iter()
        .map(|r| r.registration.as_str())
        .collect();
    assert_eq!(names, ["_base", "alice", "bob", "carol"]);
    assert!(before.registrations.iter().all(|r| r.bytes == 0));

    // alice's own version loads: hers alone.
    assert_eq!(
        server
            .linear_y("/biomes/alice", "grade", [1.0, 2.0, 3.0])
            .await,
        139.0
    );
    let after_alice = usage(&server).await;
    let alice = bytes_of(&after_alice, "alice");
    assert!(alice > 0, "{after_alice:?}");
    assert_eq!(bytes_of(&after_alice, "_base"), 0);
    assert_eq!(after_alice.loaded_bytes, alice);
    assert_eq!(
        alice as f64,
        server.metric("sandpit_models_memory_bytes").await,
        "the split adds up to the endpoint's loaded memory"
    );
    let model = &after_alice.registrations[1].models[0];
    assert!(
        model.loaded && model.charged && model.bytes == alice,
        "{model:?}"
    );

    // carol falls back to the base's: loaded once, charged to the base (who has it as its own),
    // not to bob, who registered the same bytes, nor to carol.
    assert_eq!(
        server
            .linear_y("/biomes/carol", "grade", [1.0, 2.0, 3.0])
            .await,
        14.5
    );
    let after_carol = usage(&server).await;
    let base = bytes_of(&after_carol, "_base");
    assert!(base > 0, "{after_carol:?}");
    assert_eq!(bytes_of(&after_carol, "bob"), 0);
    assert_eq!(bytes_of(&after_carol, "carol"), 0);
    let bobs = &after_carol.registrations[2].models[0];
    assert!(
        bobs.loaded && !bobs.charged && bobs.bytes == base,
        "{bobs:?}"
    );
    assert_eq!(after_carol.loaded_bytes, base + alice);

    // Taken down: alice's model is unloaded and she is no longer listed.
    let (status, answer) = server
        .admin("DELETE", "/sandpit/biomes/alice/models", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let after_down = usage(&server).await;
    assert!(after_down
        .registrations
        .iter()
        .all(|r| r.registration != "alice"));
    assert_eq!(after_down.loaded_bytes, base);
}
