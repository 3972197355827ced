//! Projects, pipelines and decisions over HTTP, against real git repositories (a bare one as
//! the project's remote) and a real state store: what is refused, with which status and code,
//! and that a refused request leaves nothing queued. No queue worker runs here: pipelines stay
//! queued (the end-to-end suite runs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use sandpit_ops::principal::Role;
use sandpit_ops::Context;
use sandpit_state::{DeploymentKind, NewDeployment};
use serde_json::json;

use super::Api;

const DEFINITION: &str = r#"[project]
name = "shop"

[environments.dev]

[environments.prod]
promote_from = "dev"
auto_promote = true
protected = true
"#;

/// A server whose context can run git, a work tree and the bare remote it pushes to.
struct World {
    api: Api,
    work: PathBuf,
    remote: PathBuf,
    git_env: Vec<(String, String)>,
}

impl World {
    fn new() -> World {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        let home = root.join("sandpit-home");
        let git_home = root.join("git-home");
        let work = root.join("work");
        for dir in [&home, &git_home, &work] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let git_env = vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), git_home.to_string_lossy().into_owned()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ];
        let mut context = Context::for_home(&home);
        context.base_env = git_env.clone();
        context.supervisor.base_env = git_env.clone();
        let world = World {
            api: Api::over(temp, context),
            remote: root.join("remote.git"),
            work,
            git_env,
        };
        world.git(&root, &["init", "-q", "--bare", "remote.git"]);
        world.git(
            &world.work,
            &["-c", "init.defaultBranch=main", "init", "-q"],
        );
        for (key, value) in [
            ("user.name", "Tester"),
            ("user.email", "tester@example.com"),
            ("commit.gpgsign", "false"),
        ] {
            world.git(&world.work, &["config", key, value]);
        }
        world
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .env_clear()
            .envs(self.git_env.iter().map(|(k, v)| (k, v)))
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Commits `definition` as `sandpit.toml` on the current branch; returns the commit.
    fn commit(&self, definition: &str, message: &str) -> String {
        std::fs::write(self.work.join("sandpit.toml"), definition).unwrap();
        std::fs::write(self.work.join("readme.txt"), message).unwrap();
        self.git(&self.work, &["add", "-A"]);
        self.git(&self.work, &["commit", "-q", "-m", message]);
        self.git(&self.work, &["rev-parse", "HEAD"])
            .trim()
            .to_owned()
    }

    fn push(&self, branch: &str) {
        let remote = self.remote.to_str().unwrap();
        self.git(&self.work, &["push", "-q", "-f", remote, branch]);
    }

    fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    /// `shop` committed, pushed and registered; returns its head.
    async fn registered(&self) -> String {
        let head = self.commit(DEFINITION, "first");
        self.push("main");
        let added = self
            .api
            .post_json(
                "/api/v1/projects",
                &self.api.admin,
                &json!({"name": "shop", "git": self.url()}),
            )
            .await;
        assert_eq!(added.status, 201, "{}", added.text);
        head
    }
}

#[tokio::test]
async fn projects_are_added_by_admins_listed_shown_and_removed() {
    let world = World::new();
    let api = &world.api;
    let head = world.commit(DEFINITION, "first");
    world.push("main");
    let deployer = api.token_with(&[Role::Deployer]);
    let viewer = api.token_with(&[Role::Viewer]);
    let body = json!({"name": "shop", "git": world.url()});

    let refused = api.post_json("/api/v1/projects", &deployer, &body).await;
    let message = refused.error(403, "forbidden");
    assert!(message.contains("`admin`"), "{message}");

    let added = api.post_json("/api/v1/projects", &api.admin, &body).await;
    assert_eq!(added.status, 201, "{}", added.text);
    let project = added.json();
    assert_eq!(project["name"], "shop");
    assert_eq!(project["branch"], "main");
    assert_eq!(project["head"], head.as_str());
    assert_eq!(project["added_by"], "user@x");

    let again = api.post_json("/api/v1/projects", &api.admin, &body).await;
    again.error(409, "conflict");

    let list = api.get("/api/v1/projects", Some(&viewer)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json()["projects"][0]["name"], "shop");
    let shown = api.get("/api/v1/projects/shop", Some(&viewer)).await;
    // The same project, but the webhook secret only ever in the answer of the add.
    let secret = project["webhook_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{project:#}");
    let mut without_secret = project.clone();
    without_secret
        .as_object_mut()
        .unwrap()
        .remove("webhook_secret");
    assert_eq!(shown.json(), without_secret);
    assert!(!shown.text.contains(&secret));
    assert!(!list.text.contains(&secret));
    api.get("/api/v1/projects/nope", Some(&viewer))
        .await
        .error(404, "not_found");

    api.delete("/api/v1/projects/shop", &viewer)
        .await
        .error(403, "forbidden");
    let removed = api.delete("/api/v1/projects/shop", &api.admin).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.json()["kept"], "projects/shop/");
    api.get("/api/v1/projects/shop", Some(&viewer))
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn a_project_whose_definition_is_invalid_is_refused_with_its_diagnostics() {
    let world = World::new();
    let api = &world.api;
    world.commit("[project]\nname = \"shop\"\n[servces.api]\n", "typo");
    world.push("main");
    let refused = api
        .post_json(
            "/api/v1/projects",
            &api.admin,
            &json!({"name": "shop", "git": world.url()}),
        )
        .await;
    let message = refused.error(422, "invalid_input");
    assert!(message.contains("servces"), "{message}");
    assert!(message.contains("sandpit.toml"), "{message}");
    let list = api.get("/api/v1/projects", Some(&api.admin)).await;
    assert_eq!(list.json(), json!({"projects": []}));
    // A body of the wrong shape is the client's mistake, not an invalid project.
    api.post_json("/api/v1/projects", &api.admin, &json!({"name": "shop"}))
        .await
        .error(400, "invalid_request");
}

#[tokio::test]
async fn a_pipeline_is_queued_for_a_pushed_commit_and_bad_requests_queue_nothing() {
    let world = World::new();
    let api = &world.api;
    let head = world.registered().await;
    let deployer = api.token_for("dora@x", &[Role::Deployer]);
    let viewer = api.token_with(&[Role::Viewer]);
    let path = "/api/v1/projects/shop/pipelines";

    // A commit that exists here but was never pushed.
    let unpushed = world.commit(DEFINITION, "not pushed");
    let refused = api
        .post_json(path, &deployer, &json!({"sha": unpushed}))
        .await;
    let message = refused.error(404, "not_found");
    assert!(message.contains("push it first"), "{message}");

    let both = api
        .post_json(path, &deployer, &json!({"sha": head, "branch": "main"}))
        .await;
    let message = both.error(422, "invalid_input");
    assert!(message.contains("not both"), "{message}");
    api.post_raw(path, &deployer, "{\"sha\": ")
        .await
        .error(400, "invalid_request");
    api.post_json(path, &viewer, &json!({}))
        .await
        .error(403, "forbidden");
    api.post_json("/api/v1/projects/nope/pipelines", &deployer, &json!({}))
        .await
        .error(404, "not_found");
    let none = api.get("/api/v1/pipelines", Some(&viewer)).await;
    assert_eq!(none.json(), json!({"pipelines": []}), "nothing was queued");

    let queued = api.post_json(path, &deployer, &json!({})).await;
    assert_eq!(queued.status, 201, "{}", queued.text);
    let pipeline = queued.json();
    assert_eq!(pipeline["state"], "queued");
    assert_eq!(pipeline["sha"], head.as_str());
    assert_eq!(pipeline["branch"], "main");
    assert_eq!(pipeline["requested_by"], "dora@x");
    assert_eq!(pipeline["trigger"], "manual");
    let stages: Vec<String> = pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["kind"].as_str().unwrap(),
                s["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            "fetch waiting",
            "build waiting",
            "deploy waiting",
            "promote waiting"
        ]
    );
    let id = pipeline["id"].as_i64().unwrap();

    let shown = api
        .get(&format!("/api/v1/pipelines/{id}"), Some(&viewer))
        .await;
    assert_eq!(shown.json(), pipeline);
    let listed = api
        .get("/api/v1/pipelines?project=shop&limit=5", Some(&viewer))
        .await;
    assert_eq!(listed.json()["pipelines"][0], pipeline);
    let other = api
        .get("/api/v1/pipelines?project=other", Some(&viewer))
        .await;
    assert_eq!(other.json(), json!({"pipelines": []}));
    api.get("/api/v1/pipelines?limit=many", Some(&viewer))
        .await
        .error(400, "invalid_request");
    api.get("/api/v1/pipelines/999", Some(&viewer))
        .await
        .error(404, "not_found");

    // Not started: an empty log, not finished; an offset past it is refused.
    let log = api
        .get(&format!("/api/v1/pipelines/{id}/log"), Some(&viewer))
        .await;
    assert_eq!(
        log.json(),
        json!({"text": "", "next_offset": 0, "finished": false})
    );
    api.get(
        &format!("/api/v1/pipelines/{id}/log?offset=10"),
        Some(&viewer),
    )
    .await
    .error(422, "invalid_input");
    // Only a finished pipeline is retried.
    api.post_json(
        &format!("/api/v1/pipelines/{id}/retry"),
        &deployer,
        &json!({}),
    )
    .await
    .error(409, "conflict");

    let metrics = api.get("/metrics", None).await;
    for line in [
        "sandpit_pipelines{state=\"queued\"} 1",
        "sandpit_pipelines{state=\"running\"} 0",
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "{line} in\n{}",
            metrics.text
        );
    }
}

#[tokio::test]
async fn a_log_is_read_in_chunks_from_an_offset() {
    let world = World::new();
    let api = &world.api;
    world.registered().await;
    let deployer = api.token_for("dora@x", &[Role::Deployer]);
    let queued = api
        .post_json("/api/v1/projects/shop/pipelines", &deployer, &json!({}))
        .await
        .json();
    let id = queued["id"].as_i64().unwrap();
    let path = sandpit_ops::pipeline::log_path(&api.context(), id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let big = "x".repeat(300 * 1024);
    std::fs::write(&path, format!("first line\n{big}\n")).unwrap();
    let first = api
        .get(&format!("/api/v1/pipelines/{id}/log"), Some(&api.admin))
        .await
        .json();
    let next = first["next_offset"].as_u64().unwrap();
    assert_eq!(next, 256 * 1024);
    assert!(first["text"].as_str().unwrap().starts_with("first line\n"));
    assert_eq!(first["finished"], false);
    let rest = api
        .get(
            &format!("/api/v1/pipelines/{id}/log?offset={next}"),
            Some(&api.admin),
        )
        .await
        .json();
    let total = "first line\n".len() + big.len() + 1;
    assert_eq!(rest["next_offset"].as_u64().unwrap() as usize, total);
    assert_eq!(
        first["text"].as_str().unwrap().len() + rest["text"].as_str().unwrap().len(),
        total
    );
    // Queued, so not finished even at the end.
    assert_eq!(rest["finished"], false);
}

#[tokio::test]
async fn nobody_approves_their_own_deployment_and_an_approver_rejects() {
    let api = Api::new();
    let pending = {
        let mut store = sandpit_ops::deployment::state_store(&api.context()).unwrap();
        store
            .create(&NewDeployment {
                project: "shop".into(),
                target: "prod".into(),
                env: "prod".into(),
                biome: None,
                sha: "a".repeat(40),
                components: Vec::new(),
                requested_by: "dora@x".into(),
                approvals_required: 1,
                kind: DeploymentKind::Deploy,
                rollback_of: None,
                restores: None,
            })
            .unwrap()
    };
    let id = pending.id;
    // Dora holds every role, approver included: still not her own.
    let dora = api.token_for("dora@x", &[Role::Deployer, Role::Approver]);
    let message = api
        .post_json(
            &format!("/api/v1/deployments/{id}/approve"),
            &dora,
            &json!({}),
        )
        .await
        .error(403, "forbidden");
    assert!(message.contains("dora@x"), "{message}");
    let deployer = api.token_for("dan@x", &[Role::Deployer]);
    api.post_json(
        &format!("/api/v1/deployments/{id}/approve"),
        &deployer,
        &json!({}),
    )
    .await
    .error(403, "forbidden");
    api.post_json("/api/v1/deployments/999/approve", &api.admin, &json!({}))
        .await
        .error(404, "not_found");

    let approver = api.token_for("ann@x", &[Role::Approver]);
    let rejected = api
        .post_json(
            &format!("/api/v1/deployments/{id}/reject"),
            &approver,
            &json!({"reason": "not today"}),
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    let deployment = rejected.json();
    assert_eq!(deployment["state"], "rejected");
    assert_eq!(deployment["rejected_by"], "ann@x");
    api.post_json(
        &format!("/api/v1/deployments/{id}/approve"),
        &approver,
        &json!({}),
    )
    .await
    .error(409, "conflict");
}
