//! The routes that change what runs, through `Router::oneshot`: every role × every change →
//! allowed (anything but 403) or 403 naming the role needed; a revoked token → 401 on each;
//! whose biome it is; and bad input (malformed JSON, oversize bodies, unknown project, biome,
//! commit or deployment, `sha` with `branch`). The project is a real bare repository in a
//! temporary directory, registered with `sandpit_ops::projects::add`. No daemon runs (the
//! executable does not exist), so an allowed change gets as far as the rollout.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use sandpit_ops::principal::{Principal, Role};
use sandpit_ops::{projects, tokens, Context};
use sandpit_server::{app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt as _;

const SPEC: &str = r#"[project]
name = "shop"

[environments.dev]
biomes = true

[environments.test]
promote_from = "dev"

[environments.prod]
protected = true

[jobs.hello]
path = "."
run = "true"
"#;

/// A `$SANDPIT_HOME` serving project `shop`, whose remote is a bare repository.
struct World {
    _temp: tempfile::TempDir,
    work: PathBuf,
    context: Context,
    app: Router,
}

fn root() -> Principal {
    Principal::named("root@x", [Role::Admin])
}

impl World {
    fn new() -> World {
        World::with_read_timeout(sandpit_server::REQUEST_TIMEOUT)
    }

    /// A world whose reads are answered 503 past `read_timeout` (changes keep theirs).
    fn with_read_timeout(read_timeout: std::time::Duration) -> World {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path().join("home");
        let git_home = temp.path().join("git-home");
        let work = temp.path().join("work");
        let remote = temp.path().join("shop.git");
        for dir in [&home, &git_home, &work] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let mut context = Context::for_home(&home);
        context.base_env = vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), git_home.display().to_string()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ];
        context.supervisor.base_env = context.base_env.clone();
        let world = World {
            _temp: temp,
            work,
            app: app(AppState::with_timeout(context.clone(), read_timeout)),
            context,
        };
        world.git(
            &world.work,
            &["-c", "init.defaultBranch=main", "init", "-q"],
        );
        world.git(&world.work, &["config", "user.email", "tester@example.com"]);
        world.git(&world.work, &["config", "user.name", "Tester"]);
        world.git(&world.work, &["config", "commit.gpgsign", "false"]);
        world.git(
            remote.parent().unwrap(),
            &["init", "-q", "--bare", "shop.git"],
        );
        std::fs::write(world.work.join("sandpit.toml"), SPEC).unwrap();
        world.git(&world.work, &["add", "-A"]);
        world.git(&world.work, &["commit", "-q", "-m", "shop"]);
        let url = format!("file://{}", remote.display());
        world.git(&world.work, &["remote", "add", "origin", &url]);
        world.git(&world.work, &["push", "-q", "origin", "main"]);
        projects::add(&world.context, &root(), "shop", &url, "main").unwrap();
        world
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .env_clear()
            .envs(self.context.base_env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// A token's secret for `user` with `roles`, and its id.
    fn token(&self, user: &str, roles: &[Role]) -> (String, String) {
        let created = tokens::create(&self.context, &root(), user, roles, None).unwrap();
        (created.secret.expose().to_owned(), created.record.id)
    }

    async fn send(&self, method: Method, path: &str, token: &str, body: Option<String>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap();
        Answer {
            status,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn change(&self, change: &Change, token: &str) -> Answer {
        self.send(
            change.method.clone(),
            &change.path,
            token,
            change.body.as_ref().map(Value::to_string),
        )
        .await
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let body: Value = serde_json::from_str(&self.text).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// One change route as the matrix calls it.
struct Change {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    /// The role it needs.
    needs: &'static str,
    /// The role every call of the route needs, checked first (a developer's for any change of
    /// variables, even an environment's, which then needs a deployer).
    floor: &'static str,
}

const P: &str = "/api/v1/projects/shop";

/// Every change route, each on a biome of its own (named after `role`) so that no row makes
/// another's biome someone's.
fn changes(role: &str) -> Vec<Change> {
    let change = |name, method, path: String, body: Option<Value>, needs| Change {
        name,
        method,
        path,
        body,
        needs,
        floor: needs,
    };
    let set = json!({"action": "set", "assignments": [{"key": "GREETING", "value": "hi"}]});
    vec![
        change(
            "up",
            Method::POST,
            format!("{P}/biomes"),
            Some(json!({"biome": format!("up-{role}")})),
            "developer",
        ),
        change(
            "down",
            Method::DELETE,
            format!("{P}/biomes/down-{role}"),
            None,
            "developer",
        ),
        change(
            "restart",
            Method::POST,
            format!("{P}/biomes/restart-{role}/restart"),
            Some(json!({})),
            "developer",
        ),
        change(
            "config of a biome",
            Method::POST,
            format!("{P}/config/config-{role}"),
            Some(set.clone()),
            "developer",
        ),
        change(
            "deploy",
            Method::POST,
            format!("{P}/environments/dev/deployments"),
            Some(json!({})),
            "deployer",
        ),
        change(
            "deploy into a protected environment",
            Method::POST,
            format!("{P}/environments/prod/deployments"),
            Some(json!({})),
            "deployer",
        ),
        change(
            "promote",
            Method::POST,
            format!("{P}/environments/test/promotions"),
            Some(json!({"from": "dev"})),
            "deployer",
        ),
        change(
            "rollback",
            Method::POST,
            format!("{P}/environments/dev/rollbacks"),
            Some(json!({})),
            "deployer",
        ),
        Change {
            floor: "developer",
            ..change(
                "config of an environment",
                Method::POST,
                format!("{P}/config/dev"),
                Some(set),
                "deployer",
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_make_exactly_the_changes_its_role_allows_and_a_revoked_token_none() {
    let world = World::new();
    // Columns: viewer, developer, deployer, approver, admin.
    let allowed_for = |needs: &str| match needs {
        "developer" => [false, true, true, false, true],
        _ => [false, false, true, false, true],
    };
    for (column, role) in Role::ALL.into_iter().enumerate() {
        let (secret, _) = world.token(&format!("{}@x", role.as_str()), &[role]);
        for change in changes(role.as_str()) {
            let answer = world.change(&change, &secret).await;
            let allowed = allowed_for(change.needs)[column];
            if allowed {
                assert!(
                    answer.status != StatusCode::FORBIDDEN
                        && answer.status != StatusCode::UNAUTHORIZED,
                    "{role:?} {}: {} {}",
                    change.name,
                    answer.status,
                    answer.text
                );
            } else {
                let message = answer.error(403, "forbidden");
                let named = if matches!(role, Role::Viewer | Role::Approver) {
                    change.floor
                } else {
                    change.needs
                };
                let expected =
                    format!("needs the `{named}` role; your token has {}", role.as_str());
                assert!(
                    message.contains(&expected),
                    "{role:?} {}: {message}",
                    change.name
                );
            }
        }
    }
    // Into a protected environment a deployer's deployment is a request: recorded, 202.
    let (deployer, _) = world.token("dee@x", &[Role::Deployer]);
    let requested = world
        .send(
            Method::POST,
            &format!("{P}/environments/prod/deployments"),
            &deployer,
            Some("{}".into()),
        )
        .await;
    assert_eq!(requested.status, StatusCode::ACCEPTED, "{}", requested.text);
    let body: Value = serde_json::from_str(&requested.text).unwrap();
    assert_eq!(body["state"], "pending", "{body}");
    assert_eq!(body["requested_by"], "dee@x", "{body}");
    assert_eq!(body["approvals_required"], 1, "{body}");

    let (revoked, id) = world.token("gone@x", &[Role::Admin]);
    tokens::revoke(&world.context, &root(), &id).unwrap();
    for change in changes("admin") {
        let message = world
            .change(&change, &revoked)
            .await
            .error(401, "unauthorized");
        assert!(message.contains("revoked"), "{}: {message}", change.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_biome_is_its_newest_ups_requesters_and_only_they_or_a_deployer_change_it() {
    let world = World::new();
    let (alice, _) = world.token("alice@x", &[Role::Developer]);
    let (bob, _) = world.token("bob@x", &[Role::Developer]);
    let (carol, _) = world.token("carol@x", &[Role::Deployer]);
    // No daemon can start here, so the `up` fails at its rollout, but it is recorded as
    // alice's: the biome is hers.
    let up = world
        .send(
            Method::POST,
            &format!("{P}/biomes"),
            &alice,
            Some(json!({"biome": "shared"}).to_string()),
        )
        .await;
    assert!(up.status.is_server_error(), "{} {}", up.status, up.text);
    for (method, path, body) in [
        (Method::DELETE, format!("{P}/biomes/shared"), None),
        (
            Method::POST,
            format!("{P}/biomes/shared/restart"),
            Some("{}".to_owned()),
        ),
        (
            Method::POST,
            format!("{P}/config/dev%2Fshared"),
            Some(json!({"action": "unset", "keys": ["GREETING"]}).to_string()),
        ),
        // Last: the deployer's `up` makes the biome theirs.
        (
            Method::POST,
            format!("{P}/biomes"),
            Some(json!({"biome": "shared"}).to_string()),
        ),
    ] {
        let refused = world.send(method.clone(), &path, &bob, body.clone()).await;
        let message = refused.error(403, "forbidden");
        assert!(
            message.starts_with("biome `shared` is alice@x's (they brought it up last): this needs the `deployer` role; your token has developer"),
            "{method} {path}: {message}"
        );
        let owner = world
            .send(method.clone(), &path, &alice, body.clone())
            .await;
        assert_ne!(
            owner.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            owner.text
        );
        let deployer = world.send(method.clone(), &path, &carol, body).await;
        assert_ne!(
            deployer.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            deployer.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_are_refused_with_what_and_where() {
    let world = World::new();
    let (admin, _) = world.token("admin@x", &[Role::Admin]);
    let deploy = format!("{P}/environments/dev/deployments");

    let malformed = world
        .send(Method::POST, &deploy, &admin, Some("{not json".into()))
        .await;
    malformed.error(400, "invalid_request");
    let unknown_field = world
        .send(
            Method::POST,
            &deploy,
            &admin,
            Some(json!({"shaa": "abc"}).to_string()),
        )
        .await;
    unknown_field.error(400, "invalid_request");
    let huge = format!(
        "{{\"sha\": \"{}\"}}",
        "a".repeat(sandpit_server::BODY_LIMIT + 1)
    );
    world
        .send(Method::POST, &deploy, &admin, Some(huge))
        .await
        .error(413, "payload_too_large");

    let both = world
        .send(
            Method::POST,
            &deploy,
            &admin,
            Some(json!({"sha": "abcdef1", "branch": "main"}).to_string()),
        )
        .await
        .error(422, "invalid_input");
    assert!(both.contains("give one of them"), "{both}");

    let message = world
        .send(
            Method::POST,
            "/api/v1/projects/nope/environments/dev/deployments",
            &admin,
            Some("{}".into()),
        )
        .await
        .error(404, "not_found");
    assert!(message.contains("nope"), "{message}");

    // A commit the repository does not have: pushed nowhere.
    std::fs::write(world.work.join("extra.txt"), "unpushed").unwrap();
    world.git(&world.work, &["add", "-A"]);
    world.git(&world.work, &["commit", "-q", "-m", "unpushed"]);
    let unpushed = world.git(&world.work, &["rev-parse", "HEAD"]);
    for path in [deploy.clone(), format!("{P}/biomes")] {
        let body = json!({"sha": unpushed, "biome": "b"});
        let body = if path.ends_with("biomes") {
            body
        } else {
            json!({"sha": unpushed})
        };
        let message = world
            .send(Method::POST, &path, &admin, Some(body.to_string()))
            .await
            .error(404, "not_found");
        assert!(
            message.contains(&format!("commit {} is not in file://", &unpushed[..12]))
                && message.contains("push it first"),
            "{path}: {message}"
        );
    }

    let message = world
        .send(Method::DELETE, &format!("{P}/biomes/nobody"), &admin, None)
        .await
        .error(404, "not_found");
    assert!(message.contains("there is no biome `nobody`"), "{message}");
    let message = world
        .send(
            Method::POST,
            &format!("{P}/environments/dev/rollbacks"),
            &admin,
            Some(json!({"to": 999}).to_string()),
        )
        .await
        .error(404, "not_found");
    assert!(message.contains("there is no deployment #999"), "{message}");
    let message = world
        .send(
            Method::POST,
            &format!("{P}/environments/nowhere/deployments"),
            &admin,
            Some("{}".into()),
        )
        .await
        .error(404, "not_found");
    assert!(
        message.contains("there is no environment `nowhere`"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_set_through_the_api_is_in_no_answer() {
    let world = World::new();
    let (alice, _) = world.token("alice@x", &[Role::Developer]);
    let secret_value = "s3cr3t-value-never-shown";
    let answer = world
        .send(
            Method::POST,
            &format!("{P}/config/mine"),
            &alice,
            Some(json!({"action": "set", "secret": true, "assignments": [{"key": "API_KEY", "value": secret_value}]}).to_string()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(!answer.text.contains(secret_value), "{}", answer.text);
    let body: Value = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(
        body,
        json!({"target": "dev/mine", "change": body["change"], "stored": true, "applies": "next_up"})
    );
    assert!(
        body["change"].as_str().unwrap().contains("API_KEY"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_held_to_its_own_deadline_not_to_the_reads_one() {
    // Reads are given up after a millisecond here; a change (a fetch, a build) takes longer.
    let world = World::with_read_timeout(std::time::Duration::from_millis(1));
    let (admin, _) = world.token("admin@x", &[Role::Admin]);
    let read = world
        .send(Method::GET, &format!("{P}/biomes"), &admin, None)
        .await;
    let message = read.error(503, "unavailable");
    assert!(message.contains("took longer than 1 ms"), "{message}");
    let change = world
        .send(
            Method::POST,
            &format!("{P}/config/mine"),
            &admin,
            Some(json!({"action": "set", "assignments": [{"key": "A", "value": "1"}]}).to_string()),
        )
        .await;
    assert_eq!(change.status, StatusCode::OK, "{}", change.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_reads_a_pending_deployments_terraform_plan_in_its_history() {
    let world = World::new();
    let mut state = sandpit_state::StateStore::open(&world.context.home.join("state.db")).unwrap();
    let sha = world.git(&world.work, &["rev-parse", "HEAD"]);
    let pending = state
        .create(&sandpit_state::NewDeployment {
            project: "shop".into(),
            target: "prod".into(),
            env: "prod".into(),
            biome: None,
            sha,
            components: Vec::new(),
            requested_by: "alice@x".into(),
            approvals_required: 1,
            kind: sandpit_state::DeploymentKind::Deploy,
            rollback_of: None,
            restores: None,
        })
        .unwrap();
    let plan = "infra: 1 to add, 0 to change, 0 to destroy: + terraform_data.marker";
    state
        .record_step(pending.id, sandpit_state::StepKind::Planned, plan)
        .unwrap();
    let (approver, _) = world.token("bob@x", &[Role::Approver]);
    let answer = world
        .send(
            Method::GET,
            &format!("{P}/history?target=prod"),
            &approver,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body: Value = serde_json::from_str(&answer.text).unwrap();
    let listed = &body["deployments"][0];
    assert_eq!(listed["state"], "pending", "{body:#}");
    assert_eq!(listed["steps"][0]["step"], "planned", "{body:#}");
    assert_eq!(listed["steps"][0]["message"], plan, "{body:#}");
}
