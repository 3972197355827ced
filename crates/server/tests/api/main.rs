//! The API's handlers through `Router::oneshot`, without a socket, over a real SQLite store in
//! a temporary `$SANDPIT_HOME`: authentication, roles, the error shape of every refusal, the
//! metrics, and the checked-in OpenAPI document.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use sandpit_ops::principal::{Principal, Role};
use sandpit_ops::tokens;
use sandpit_ops::Context;
use sandpit_server::{app, AppState};
use serde_json::{json, Value};
use tempfile::TempDir;
use tower::ServiceExt as _;

mod changes;
mod openapi;
mod pipelines;
mod reads;

/// A server over a fresh home, and an admin's secret.
struct Api {
    home: TempDir,
    context: Context,
    app: Router,
    admin: String,
}

impl Api {
    fn new() -> Api {
        let home = tempfile::tempdir().unwrap();
        let context = Context::for_home(home.path());
        Api::over(home, context)
    }

    /// A server over `context`, whose home is in `home`.
    fn over(home: TempDir, context: Context) -> Api {
        let app = app(AppState::new(context.clone()));
        let mut api = Api {
            home,
            context,
            app,
            admin: String::new(),
        };
        api.admin = api.token_with(&[Role::Admin]);
        api
    }

    fn context(&self) -> Context {
        self.context.clone()
    }

    /// A new token's secret, made through the use case.
    fn token_with(&self, roles: &[Role]) -> String {
        self.token_for("user@x", roles)
    }

    /// A new token of `user`'s.
    fn token_for(&self, user: &str, roles: &[Role]) -> String {
        let root = Principal::named("root@x", [Role::Admin]);
        let created = tokens::create(&self.context(), &root, user, roles, None).unwrap();
        created.secret.expose().to_owned()
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// `POST path` with `body` sent as it is, as JSON.
    async fn post_raw(&self, path: &str, token: &str, body: &str) -> Answer {
        self.send(
            Request::post(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }

    async fn post_json(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send(
            Request::post(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.send(
            Request::delete(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// Asserts the error shape with `code` and `status`; returns the message.
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let keys: Vec<&String> = body["error"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["code", "hint", "message"], "{body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert!(
            self.headers.contains_key("x-request-id"),
            "{:?}",
            self.headers
        );
        body["error"]["message"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn healthz_answers_ok_with_a_request_id() {
    let api = Api::new();
    let first = api.get("/healthz", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json(), json!({"status": "ok"}));
    let id = |a: &Answer| a.headers["x-request-id"].to_str().unwrap().to_owned();
    let second = api.get("/healthz", None).await;
    assert_eq!(id(&first).len(), 16);
    assert_ne!(id(&first), id(&second));
}

#[tokio::test]
async fn whoami_says_who_the_token_speaks_for() {
    let api = Api::new();
    let viewer = api.token_with(&[Role::Viewer, Role::Approver]);
    let answer = api.get("/api/v1/whoami", Some(&viewer)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["user"], "user@x");
    assert_eq!(body["roles"], json!(["viewer", "approver"]));
    assert!(body["token_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(body.as_object().unwrap().len(), 3);
}

#[tokio::test]
async fn missing_unknown_revoked_and_expired_tokens_are_401_saying_which() {
    let api = Api::new();
    let missing = api.get("/api/v1/whoami", None).await;
    let message = missing.error(401, "unauthorized");
    assert!(message.starts_with("missing token"), "{message}");
    assert!(missing.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    let unknown = format!("spt_{}", "x".repeat(43));
    let answer = api.get("/api/v1/whoami", Some(&unknown)).await;
    assert!(answer
        .error(401, "unauthorized")
        .starts_with("invalid token"));
    assert!(!answer.text.contains(&unknown), "the token is never echoed");
    let answer = api.get("/api/v1/whoami", Some("garbage")).await;
    assert!(answer
        .error(401, "unauthorized")
        .starts_with("invalid token"));
    let basic = api
        .send(
            Request::get("/api/v1/whoami")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwdw==")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(basic
        .error(401, "unauthorized")
        .starts_with("invalid token"));

    let doomed = api.token_with(&[Role::Viewer]);
    assert_eq!(api.get("/api/v1/whoami", Some(&doomed)).await.status, 200);
    let id = api.get("/api/v1/whoami", Some(&doomed)).await.json()["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = api
        .delete(&format!("/api/v1/tokens/{id}"), &api.admin)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(revoked.json()["revoked_at"].is_string());
    let answer = api.get("/api/v1/whoami", Some(&doomed)).await;
    assert!(answer
        .error(401, "unauthorized")
        .starts_with("revoked token"));
    assert!(!answer.text.contains(&doomed));

    // An already-expired token, recorded through the store with a past expiry.
    let secret = format!("spt_{}", "E".repeat(43));
    let mut store = sandpit_state::StateStore::open(&api.home.path().join("state.db")).unwrap();
    store
        .create_token(&sandpit_state::NewToken {
            id: "tok_00000000e0e0".to_owned(),
            user: "late@x".to_owned(),
            roles: vec!["admin".to_owned()],
            secret_sha256: sha256_hex(&secret),
            expires_at: Some("2020-01-01T00:00:00.000Z".to_owned()),
            created_by: "root@x".to_owned(),
        })
        .unwrap();
    let answer = api.get("/api/v1/whoami", Some(&secret)).await;
    assert!(answer
        .error(401, "unauthorized")
        .starts_with("expired token"));
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn every_role_but_admin_is_403_on_tokens_naming_the_role_needed_and_held() {
    let api = Api::new();
    let request = json!({"user": "eve@x", "roles": ["admin"]});
    for role in [
        Role::Viewer,
        Role::Developer,
        Role::Deployer,
        Role::Approver,
    ] {
        let token = api.token_with(&[role]);
        let answer = api.post_json("/api/v1/tokens", &token, &request).await;
        let message = answer.error(403, "forbidden");
        assert_eq!(
            message,
            format!(
                "this needs the `admin` role; your token has {}",
                role.as_str()
            )
        );
        assert!(answer.json()["error"]["hint"].is_string());
        api.get("/api/v1/tokens", Some(&token))
            .await
            .error(403, "forbidden");
        api.delete("/api/v1/tokens/tok_000000000000", &token)
            .await
            .error(403, "forbidden");
    }
    let listed = api.get("/api/v1/tokens", Some(&api.admin)).await.json();
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user"] != "eve@x"),
        "nothing was created: {listed}"
    );
}

#[tokio::test]
async fn an_admin_creates_lists_and_revokes_tokens() {
    let api = Api::new();
    let answer = api
        .post_json(
            "/api/v1/tokens",
            &api.admin,
            &json!({"user": "alice@x", "roles": ["deployer", "viewer"], "expires_in": "30d"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let created = answer.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("spt_") && secret.len() == 47, "{secret}");
    assert_eq!(created["roles"], json!(["viewer", "deployer"]));
    assert!(created["expires_at"].is_string());
    let id = created["id"].as_str().unwrap().to_owned();

    let me = api.get("/api/v1/whoami", Some(&secret)).await.json();
    assert_eq!(me["user"], "alice@x");
    assert_eq!(me["token_id"], id.as_str());

    let listed = api.get("/api/v1/tokens", Some(&api.admin)).await;
    assert_eq!(listed.status, 200);
    assert!(!listed.text.contains(&secret), "a list never shows secrets");
    let alice = listed.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap();
    let mut keys: Vec<String> = alice.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "created_by",
            "expires_at",
            "id",
            "revoked_at",
            "roles",
            "user"
        ]
    );
    assert_eq!(alice["created_by"], "user@x");
    assert_eq!(alice["revoked_at"], Value::Null);

    let revoked = api
        .delete(&format!("/api/v1/tokens/{id}"), &api.admin)
        .await;
    assert_eq!(revoked.status, 200);
    api.delete(&format!("/api/v1/tokens/{id}"), &api.admin)
        .await
        .error(409, "conflict");
    let unknown = api
        .delete("/api/v1/tokens/tok_000000000000", &api.admin)
        .await;
    assert!(unknown.error(404, "not_found").contains("tok_000000000000"));
}

#[tokio::test]
async fn bad_token_requests_are_refused_in_the_error_shape() {
    let api = Api::new();
    let unknown_role = api
        .post_json(
            "/api/v1/tokens",
            &api.admin,
            &json!({"user": "a@x", "roles": ["root"]}),
        )
        .await;
    assert!(unknown_role
        .error(422, "invalid_input")
        .contains("`root` is not a role"));
    let bad_expiry = api
        .post_json(
            "/api/v1/tokens",
            &api.admin,
            &json!({"user": "a@x", "roles": ["viewer"], "expires_in": "soon"}),
        )
        .await;
    bad_expiry.error(422, "invalid_input");
    let no_roles = api
        .post_json(
            "/api/v1/tokens",
            &api.admin,
            &json!({"user": "a@x", "roles": []}),
        )
        .await;
    no_roles.error(422, "invalid_input");
    let wrong_shape = api
        .post_json(
            "/api/v1/tokens",
            &api.admin,
            &json!({"user": "a@x", "role": "viewer"}),
        )
        .await;
    wrong_shape.error(400, "invalid_request");

    let malformed = api
        .send(
            Request::post("/api/v1/tokens")
                .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"user\": "))
                .unwrap(),
        )
        .await;
    malformed.error(400, "invalid_request");
    let not_json = api
        .send(
            Request::post("/api/v1/tokens")
                .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert!(not_json
        .error(400, "invalid_request")
        .contains("must be JSON"));

    let huge = format!(
        "{{\"user\": \"{}\", \"roles\": [\"viewer\"]}}",
        "a".repeat(sandpit_server::BODY_LIMIT + 1)
    );
    let oversize = api
        .send(
            Request::post("/api/v1/tokens")
                .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(huge))
                .unwrap(),
        )
        .await;
    oversize.error(413, "payload_too_large");
    let listed = api.get("/api/v1/tokens", Some(&api.admin)).await.json();
    assert_eq!(
        listed["tokens"].as_array().unwrap().len(),
        1,
        "only the admin's: {listed}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let api = Api::new();
    let answer = api.get("/api/v1/nope", Some(&api.admin)).await;
    assert!(answer.error(404, "not_found").contains("GET /api/v1/nope"));
    let answer = api.delete("/api/v1/whoami", &api.admin).await;
    answer.error(405, "invalid_request");
}

#[tokio::test]
async fn an_internal_fault_is_logged_under_the_request_id_and_never_sent() {
    let api = Api::new();
    // The store cannot be opened: a directory stands where its file was.
    let db = api.home.path().join("state.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::create_dir(&db).unwrap();
    std::fs::write(db.join("x"), "in the way").unwrap();
    let answer = api.get("/api/v1/whoami", Some(&api.admin)).await;
    let message = answer.error(500, "internal");
    let id = answer.headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        message,
        format!("internal error; see the server log (request id {id})")
    );
    assert!(
        !answer.text.contains(&*api.home.path().to_string_lossy()),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_show_biomes_and_pipelines() {
    let api = Api::new();
    api.get("/api/v1/whoami", Some(&api.admin)).await;
    api.get("/api/v1/whoami", None).await;
    api.delete("/api/v1/tokens/tok_000000000000", &api.admin)
        .await;
    api.get("/no/such/route", None).await;
    let metrics = api.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for line in [
        "sandpit_server_requests_total{route=\"/api/v1/whoami\",method=\"GET\",status=\"200\"} 1",
        "sandpit_server_requests_total{route=\"/api/v1/whoami\",method=\"GET\",status=\"401\"} 1",
        "sandpit_server_requests_total{route=\"/api/v1/tokens/{id}\",method=\"DELETE\",status=\"404\"} 1",
        "sandpit_server_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "sandpit_server_request_duration_seconds_count{route=\"/api/v1/whoami\"} 2",
        "sandpit_pipelines{state=\"running\"} 0",
        "# TYPE sandpit_biomes gauge",
    ] {
        assert!(metrics.text.lines().any(|l| l == line), "{line} in\n{}", metrics.text);
    }
}
