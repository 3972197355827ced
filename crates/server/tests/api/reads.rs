//! The read routes of a project (status, history, trace, artifacts, logs, config): a token is needed,
//! a viewer's suffices, an unknown project is 404, and malformed queries are refused in the
//! error shape before anything is looked up.

use sandpit_ops::principal::Role;

use crate::Api;

const READS: [&str; 6] = [
    "/api/v1/projects/nope/status/alice",
    "/api/v1/projects/nope/history?target=dev",
    "/api/v1/projects/nope/trace/0123456",
    "/api/v1/projects/nope/artifacts?env=dev",
    "/api/v1/projects/nope/logs/alice?tail=5",
    "/api/v1/projects/nope/config/dev",
];

#[tokio::test]
async fn every_read_needs_a_token_and_a_viewers_reaches_the_project_lookup() {
    let api = Api::new();
    let viewer = api.token_with(&[Role::Viewer]);
    for path in READS {
        let message = api.get(path, None).await.error(401, "unauthorized");
        assert!(message.contains("missing"), "{path}: {message}");
        let message = api.get(path, Some(&viewer)).await.error(404, "not_found");
        assert!(message.contains("`nope`"), "{path}: {message}");
    }
}

#[tokio::test]
async fn malformed_read_queries_are_refused_before_any_lookup() {
    let api = Api::new();
    let viewer = api.token_with(&[Role::Viewer]);
    let no_target = api
        .get("/api/v1/projects/nope/history", Some(&viewer))
        .await
        .error(400, "invalid_request");
    assert!(no_target.contains("target"), "{no_target}");
    let tail = api
        .get("/api/v1/projects/nope/logs/alice?tail=many", Some(&viewer))
        .await
        .error(400, "invalid_request");
    assert!(tail.contains("tail"), "{tail}");
    let cursor = api
        .get(
            "/api/v1/projects/nope/logs/alice?after=yesterday",
            Some(&viewer),
        )
        .await
        .error(422, "invalid_input");
    assert!(
        cursor.contains("`yesterday` is not a log cursor"),
        "{cursor}"
    );
    let since = api
        .get("/api/v1/projects/nope/logs/alice?since=soon", Some(&viewer))
        .await
        .error(422, "invalid_input");
    assert!(since.contains("since"), "{since}");
}
