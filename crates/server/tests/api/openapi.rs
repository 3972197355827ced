//! The OpenAPI document: served at /api/v1/openapi.json, the same bytes as docs/openapi.json
//! (`SANDPIT_BLESS=1` rewrites the file), and it describes every route of the API.

use serde_json::Value;

use super::Api;

#[test]
fn the_checked_in_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = sandpit_server::openapi::document();
    #[allow(clippy::disallowed_methods)] // a test switch, not a setting of sandpit
    let bless = std::env::var_os("SANDPIT_BLESS").is_some_and(|value| value == "1");
    if bless {
        std::fs::write(path, generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is out of date with crates/server; regenerate it with\n  \
         SANDPIT_BLESS=1 cargo test -p sandpit-server the_checked_in_openapi_document_is_current"
    );
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_and_names_every_route() {
    let api = Api::new();
    let answer = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text, sandpit_server::openapi::document());
    let document: Value = answer.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/api/v1/openapi.json", "get"),
        ("/api/v1/whoami", "get"),
        ("/api/v1/tokens", "get"),
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/projects", "post"),
        ("/api/v1/projects", "get"),
        ("/api/v1/projects/{project}", "get"),
        ("/api/v1/projects/{project}", "delete"),
        ("/api/v1/projects/{project}/pipelines", "post"),
        ("/api/v1/pipelines", "get"),
        ("/api/v1/pipelines/{id}", "get"),
        ("/api/v1/pipelines/{id}/log", "get"),
        ("/api/v1/pipelines/{id}/retry", "post"),
        ("/api/v1/deployments/{id}/approve", "post"),
        ("/api/v1/deployments/{id}/reject", "post"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path}"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(document["components"]["schemas"]["CreateTokenRequest"].is_object());
}
