//! GitLab and GitHub drive a control plane: webhook deliveries shaped exactly as the forges send
//! them, against a real server and a bare repository the test pushes to — a push runs a
//! pipeline at its commit, a merge request brings up `mr-<iid>` with its own database and moves
//! it with new commits (never back to an older one), closing it takes it down, a tag promotes;
//! bad secrets, bad bodies and unknown projects are refused and leave nothing; a redelivery
//! starts nothing; `sandpit hooks` lists what came; `sandpit ci` in a GitLab CI job does what the
//! hook would have done.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sandpit_ops::forge::samples;
use sandpit_server::routes::hooks::github_signature;
use serde_json::{json, Value};

use crate::pipelines::{stages, Team, SERVER};
use crate::server::Server;

const SECRET: &str = "correct-horse-battery-staple";

fn definition() -> String {
    r#"[project]
name = "shop"

[environments.dev]
biomes = true
[environments.test]
promote_from = "dev"

[pipelines]
tag_promotes_to = "test"

[database]
migrations = "db/migrations"

[services.web]
path = "web"
run = "python3 server.py"
health = "/health"
start_timeout = 10
"#
    .to_owned()
}

struct Forge {
    team: Team,
    server: Server,
    client: Client,
    admin: String,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Forge {
    fn new() -> Forge {
        let team = Team::with_files(&[
            ("sandpit.toml", &definition()),
            ("web/server.py", SERVER),
            (
                "db/migrations/001_orders.sql",
                "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);\n",
            ),
        ]);
        let server = Server::start(&team.sandbox, &[]);
        let admin = std::fs::read_to_string(team.sandbox.home.join("server/admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Forge {
            team,
            server,
            client: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin,
        }
    }

    fn deliver(&self, path: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        deliver(&self.client, &self.server.url, path, headers, body)
    }

    fn gitlab(&self, event: &str, uuid: &str, body: &str) -> Answer {
        gitlab(&self.client, &self.server.url, event, uuid, body)
    }
}

fn deliver(
    client: &Client,
    url: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> Answer {
    let mut request = client
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body.into());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

fn gitlab(client: &Client, url: &str, event: &str, uuid: &str, body: &str) -> Answer {
    deliver(
        client,
        url,
        "/hooks/gitlab/shop",
        &[
            ("X-Gitlab-Token", SECRET),
            ("X-Gitlab-Event", event),
            ("X-Gitlab-Event-UUID", uuid),
        ],
        body.to_owned(),
    )
}

impl Forge {
    fn head(&self) -> String {
        self.team.sandbox.git(&["rev-parse", "HEAD"])
    }

    /// Waits for the pipeline an answer started to finish; returns it.
    fn finished(&self, answer: &Answer) -> Value {
        assert_eq!(answer.status, 202, "{:#}", answer.body);
        let id = answer.body["pipeline"].as_i64().unwrap();
        self.team.wait_for(
            &self.server,
            &self.admin,
            id,
            &["succeeded", "failed", "pending", "superseded"],
        )
    }

    fn deliveries(&self) -> Vec<Value> {
        let list = self
            .team
            .json(&self.server, &self.admin, &["hooks", "--limit", "500"]);
        list["deliveries"].as_array().unwrap().clone()
    }

    fn biomes(&self) -> Vec<String> {
        let listed = self.team.sandbox.json(&["ls"]);
        listed["biomes"]
            .as_array()
            .unwrap_or_else(|| panic!("{listed:#}"))
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn merge_request(iid: u64, action: &str, sha: &str, at: &str, new_commits: bool) -> String {
    samples::gitlab_merge_request(iid, action, sha, at, new_commits, 15)
}

#[test]
fn gitlab_and_github_deliveries_run_pipelines_and_merge_request_biomes() {
    let forge = Forge::new();
    let team = &forge.team;
    let sandbox = &team.sandbox;
    let admin = forge.admin.as_str();

    // Registering prints the hook URLs and a generated secret once; `show` never shows it.
    let added = team.ok(
        &forge.server,
        admin,
        &[
            "projects",
            "add",
            "shop",
            "--git",
            &team.url(),
            "--webhook-secret",
            SECRET,
        ],
    );
    assert!(
        added.contains(&format!("{}/hooks/gitlab/shop", forge.server.url)),
        "{added}"
    );
    assert!(
        !added.contains("shown once"),
        "a given secret is not echoed: {added}"
    );
    let shown = team.ok(&forge.server, admin, &["projects", "show", "shop"]);
    assert!(
        shown.contains("/hooks/github/shop") && !shown.contains(SECRET),
        "{shown}"
    );

    // A wrong or missing secret is 401 and nothing happens.
    let head = forge.head();
    let push = samples::gitlab_push("main", &head);
    for token in ["wrong-secret-wrong-secret", ""] {
        let refused = forge.deliver(
            "/hooks/gitlab/shop",
            &[("X-Gitlab-Token", token), ("X-Gitlab-Event", "Push Hook")],
            push.clone(),
        );
        assert_eq!(refused.status, 401, "{:#}", refused.body);
        assert_eq!(refused.body["error"]["code"], "unauthorized");
    }
    let unsigned = forge.deliver(
        "/hooks/github/shop",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        push.clone(),
    );
    assert_eq!(unsigned.status, 401);
    assert!(forge.deliveries().is_empty());
    let pipelines = team.json(&forge.server, admin, &["pipelines"]);
    assert_eq!(pipelines["pipelines"], json!([]), "{pipelines:#}");

    // Unknown project 404; malformed JSON 400 naming where; a body over 25 MB 413.
    let unknown = forge.deliver(
        "/hooks/gitlab/nope",
        &[("X-Gitlab-Token", SECRET), ("X-Gitlab-Event", "Push Hook")],
        push.clone(),
    );
    assert_eq!(unknown.status, 404, "{:#}", unknown.body);
    let malformed = forge.gitlab("Push Hook", "m-1", "{\"object_kind\": \"push\",");
    assert_eq!(malformed.status, 400, "{:#}", malformed.body);
    assert!(
        malformed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{:#}",
        malformed.body
    );
    let huge = forge.deliver(
        "/hooks/gitlab/shop",
        &[("X-Gitlab-Token", SECRET), ("X-Gitlab-Event", "Push Hook")],
        vec![b' '; 26_000_000],
    );
    assert_eq!(huge.status, 413, "{:#}", huge.body);
    // Over the API's 1 MiB but within a webhook's 25 MB is read (and ignored: another branch).
    let large = format!(
        "{}{}",
        samples::gitlab_push("feature/large", &forge.head()),
        " ".repeat(3 * 1024 * 1024)
    );
    let read = forge.gitlab("Push Hook", "large-1", &large);
    assert_eq!(read.status, 200, "{:#}", read.body);
    assert_eq!(read.body["action"], "ignored");
    // Other events are answered 200 and ignored, with why.
    let other = forge.gitlab("Pipeline Hook", "o-1", "{}");
    assert_eq!(other.status, 200);
    assert!(other.body["ignored"]
        .as_str()
        .unwrap()
        .contains("Pipeline Hook"));

    // A push to the project's branch runs a pipeline at its commit.
    let pushed = forge.gitlab("Push Hook", "push-1", &push);
    assert_eq!(pushed.status, 202, "{:#}", pushed.body);
    let pipeline = forge.finished(&pushed);
    assert_eq!(pipeline["state"], "succeeded", "{pipeline:#}");
    assert_eq!(pipeline["sha"], head.as_str());
    assert_eq!(pipeline["trigger"], "webhook");
    assert_eq!(pipeline["requested_by"], "gitlab:alice");
    assert_eq!(sandbox.status("dev")["sha"], head.as_str());
    // The same delivery again: the first answer, nothing new.
    let again = forge.gitlab("Push Hook", "push-1", &push);
    assert_eq!(again.status, 200);
    assert_eq!(again.body["pipeline"], pushed.body["pipeline"]);
    assert_eq!(again.body["redelivered"], true);
    // Other branches do nothing; neither does a deletion.
    let feature = forge.gitlab(
        "Push Hook",
        "push-2",
        &samples::gitlab_push("feature/x", &head),
    );
    assert_eq!(feature.status, 200);
    assert_eq!(feature.body["action"], "ignored");

    // A merge request: its branch pushed, its biome up at its last commit with its own database.
    sandbox.git(&["checkout", "-q", "-b", "feature/better-model"]);
    sandbox.write("web/VERSION", "2\n");
    let first = sandbox.commit("better model");
    team.push("feature/better-model");
    let opened = forge.gitlab(
        "Merge Request Hook",
        "mr-1-open",
        &merge_request(1, "open", &first, "2026-12-02T10:00:00Z", false),
    );
    assert_eq!(opened.body["biome"], "mr-1", "{:#}", opened.body);
    let up = forge.finished(&opened);
    assert_eq!(
        stages(&up),
        ["fetch succeeded", "build succeeded", "up dev succeeded"],
        "{up:#}"
    );
    let status = sandbox.status("mr-1");
    assert_eq!(status["sha"], first.as_str(), "{status:#}");
    assert_eq!(status["state"], "healthy", "{status:#}");
    let database = status["database"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        database.contains("mr_1") || database.contains("mr-1"),
        "{status:#}"
    );

    // An update without new commits changes nothing; one with a new commit moves the biome.
    let retitled = forge.gitlab(
        "Merge Request Hook",
        "mr-1-title",
        &merge_request(1, "update", &first, "2026-12-02T10:01:00Z", false),
    );
    assert_eq!(retitled.status, 200);
    assert!(retitled.body["ignored"]
        .as_str()
        .unwrap()
        .contains("without new commits"));
    sandbox.write("web/VERSION", "3\n");
    let second = sandbox.commit("even better");
    team.push("feature/better-model");
    let moved = forge.gitlab(
        "Merge Request Hook",
        "mr-1-update",
        &merge_request(1, "update", &second, "2026-12-02T10:02:00Z", true),
    );
    assert_eq!(forge.finished(&moved)["state"], "succeeded");
    assert_eq!(sandbox.status("mr-1")["sha"], second.as_str());
    // A late delivery of an older event never brings the older commit back.
    let late = forge.gitlab(
        "Merge Request Hook",
        "mr-1-late",
        &merge_request(1, "update", &first, "2026-12-02T10:01:30Z", true),
    );
    assert_eq!(late.status, 200, "{:#}", late.body);
    assert!(
        late.body["ignored"].as_str().unwrap().contains("older"),
        "{:#}",
        late.body
    );
    assert_eq!(sandbox.status("mr-1")["sha"], second.as_str());

    // A fork's merge request does not run; a commit the repository lacks fails the pipeline.
    let fork = forge.gitlab(
        "Merge Request Hook",
        "mr-2-open",
        &samples::gitlab_merge_request(2, "open", &second, "2026-12-02T10:03:00Z", false, 99),
    );
    assert!(
        fork.body["ignored"].as_str().unwrap().contains("fork"),
        "{:#}",
        fork.body
    );
    let missing = "0badc0de0badc0de0badc0de0badc0de0badc0de";
    let lacking = forge.gitlab(
        "Merge Request Hook",
        "mr-3-open",
        &merge_request(3, "open", missing, "2026-12-02T10:03:00Z", false),
    );
    let failed = forge.finished(&lacking);
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("is not in the project's repository"),
        "{failed:#}"
    );
    assert!(!forge.biomes().contains(&"mr-3".to_owned()));

    // Merging takes the biome down, database and all.
    let merged = forge.gitlab(
        "Merge Request Hook",
        "mr-1-merge",
        &merge_request(1, "merge", &second, "2026-12-02T10:04:00Z", false),
    );
    let down = forge.finished(&merged);
    assert_eq!(
        stages(&down),
        ["fetch succeeded", "down dev succeeded"],
        "{down:#}"
    );
    assert!(
        !forge.biomes().contains(&"mr-1".to_owned()),
        "{:?}",
        forge.biomes()
    );
    let history = sandbox.json(&["history", "mr-1"]);
    assert_eq!(history["deployments"][0]["kind"], "down", "{history:#}");

    // A tag promotes the commit dev runs into test.
    let tag = samples::render(
        samples::GITLAB_TAG_PUSH,
        &[
            ("TAG", "v1.0.0"),
            ("SHA", &head),
            ("TAG_OBJECT", "fedcba9876543210fedcba9876543210fedcba98"),
            ("BEFORE", "0000000000000000000000000000000000000000"),
        ],
    );
    let tagged = forge.gitlab("Tag Push Hook", "tag-1", &tag);
    let promoted = forge.finished(&tagged);
    assert_eq!(
        stages(&promoted),
        ["fetch succeeded", "promote test succeeded"],
        "{promoted:#}"
    );
    assert_eq!(sandbox.status("test")["sha"], head.as_str());

    // GitHub: a signed push runs a pipeline; a closed pull request of no biome is a no-op down.
    let github_push = samples::render(
        samples::GITHUB_PUSH,
        &[
            ("BRANCH", "main"),
            ("SHA", &head),
            ("BEFORE", "0000000000000000000000000000000000000000"),
            ("DELETED", "false"),
        ],
    );
    let signed = forge.deliver(
        "/hooks/github/shop",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "gh-1"),
            (
                "X-Hub-Signature-256",
                &github_signature(github_push.as_bytes(), SECRET),
            ),
        ],
        github_push.clone(),
    );
    assert_eq!(forge.finished(&signed)["requested_by"], "github:alice");
    let tampered = github_push.replace("main", "mainx");
    let forged = forge.deliver(
        "/hooks/github/shop",
        &[
            ("X-GitHub-Event", "push"),
            (
                "X-Hub-Signature-256",
                &github_signature(github_push.as_bytes(), SECRET),
            ),
        ],
        tampered,
    );
    assert_eq!(forged.status, 401);

    // Every accepted delivery is listed, newest first, with what it started.
    let listed = forge.deliveries();
    let keys: Vec<&str> = listed
        .iter()
        .filter_map(|d| d["delivery_key"].as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "gh-1",
            "tag-1",
            "mr-1-merge",
            "mr-3-open",
            "mr-2-open",
            "mr-1-late",
            "mr-1-update",
            "mr-1-title",
            "mr-1-open",
            "push-2",
            "push-1",
            "o-1",
            "large-1"
        ],
        "{listed:#?}"
    );
    assert_eq!(listed[2]["action"], "biome_down");
    assert_eq!(listed[2]["biome"], "mr-1");
    let table = team.ok(&forge.server, admin, &["hooks"]);
    assert!(
        table.contains("Merge Request Hook") && table.contains("biome_down"),
        "{table}"
    );

    // `sandpit ci` in a GitLab CI job: a merge request pipeline brings its biome up, following
    // the log; the stop job takes it down.
    let deployer = team
        .ok(
            &forge.server,
            admin,
            &["tokens", "create", "ci-bot", "--role", "deployer"],
        )
        .trim()
        .to_owned();
    let ci = |extra: &[(&str, &str)], args: &[&str]| {
        let mut command = sandbox.command(args);
        command
            .env("XDG_CONFIG_HOME", &team.no_config)
            .env("SANDPIT_SERVER", &forge.server.url)
            .env("SANDPIT_TOKEN", &deployer)
            .env("GITLAB_CI", "true")
            .env("CI_PIPELINE_SOURCE", "merge_request_event")
            .env("CI_COMMIT_SHA", &second)
            .env("CI_COMMIT_REF_NAME", "feature/better-model")
            .env("CI_DEFAULT_BRANCH", "main")
            .env("CI_MERGE_REQUEST_IID", "7")
            .env("CI_MERGE_REQUEST_PROJECT_ID", "15")
            .env("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "15")
            .env("CI_PROJECT_PATH", "team/shop")
            .env("CI_PIPELINE_ID", "1001")
            .env("CI_JOB_ID", "5001")
            .env("GITLAB_USER_LOGIN", "alice");
        for (name, value) in extra {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let job = ci(&[], &["ci"]);
    let log = String::from_utf8_lossy(&job.stdout).into_owned();
    assert!(
        job.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&job.stderr)
    );
    assert!(
        log.contains("biome mr-7") && log.contains("succeeded"),
        "{log}"
    );
    assert_eq!(sandbox.status("mr-7")["sha"], second.as_str());
    let ci_pipelines = team.json(&forge.server, admin, &["pipelines"]);
    assert_eq!(
        ci_pipelines["pipelines"][0]["trigger"], "ci",
        "{ci_pipelines:#}"
    );
    assert_eq!(ci_pipelines["pipelines"][0]["requested_by"], "ci-bot");
    let stop = ci(&[("CI_JOB_ID", "5002")], &["ci", "--stop"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(!forge.biomes().contains(&"mr-7".to_owned()));
    // Outside a job it says what is missing; a failing pipeline fails the job.
    let outside = sandbox
        .command(&["ci"])
        .env("XDG_CONFIG_HOME", &team.no_config)
        .env("SANDPIT_SERVER", &forge.server.url)
        .output()
        .unwrap();
    assert_eq!(outside.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&outside.stderr).contains("CI_PIPELINE_SOURCE is not set"),
        "{outside:?}"
    );
    let doomed = ci(
        &[
            ("CI_COMMIT_SHA", missing),
            ("CI_MERGE_REQUEST_IID", "8"),
            ("CI_JOB_ID", "5003"),
        ],
        &["ci"],
    );
    assert_eq!(doomed.status.code(), Some(1), "{doomed:?}");
}

/// Waits until no pipeline is queued or running.
fn settled(forge: &Forge) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let list = forge.team.json(
            &forge.server,
            &forge.admin,
            &["pipelines", "--limit", "1000"],
        );
        let pipelines = list["pipelines"].as_array().unwrap().clone();
        if pipelines
            .iter()
            .all(|p| p["state"] != "queued" && p["state"] != "running")
        {
            return pipelines;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never drained: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_storm_of_deliveries_is_processed_once_each_and_ends_as_the_last_events_say() {
    let forge = Forge::new();
    let team = &forge.team;
    let sandbox = &team.sandbox;
    team.ok(
        &forge.server,
        &forge.admin,
        &[
            "projects",
            "add",
            "shop",
            "--git",
            &team.url(),
            "--webhook-secret",
            SECRET,
        ],
    );
    let head = forge.head();
    sandbox.git(&["checkout", "-q", "-b", "feature/better-model"]);
    let mut commits = Vec::new();
    for n in 0..3 {
        sandbox.write("web/VERSION", &format!("{n}\n"));
        commits.push(sandbox.commit(&format!("version {n}")));
    }
    team.push("feature/better-model");

    // 200 deliveries: pushes of main and events of four merge requests, each merge request's
    // events at increasing times; every fourth one delivered twice. Merge requests 1 and 3 end
    // open at their newest commit, 2 and 4 end closed.
    let mut planned: Vec<(String, String, String)> = Vec::new(); // (event, key, body)
    let mut second_of_minute = 0;
    let mut at = || {
        second_of_minute += 1;
        format!(
            "2026-12-02T11:{:02}:{:02}Z",
            second_of_minute / 60,
            second_of_minute % 60
        )
    };
    let mut n = 0;
    while planned.len() < 150 {
        n += 1;
        if n % 5 == 0 {
            planned.push((
                "Push Hook".into(),
                format!("push-{n}"),
                samples::gitlab_push("main", &head),
            ));
            continue;
        }
        let iid = (n % 4) as u64 + 1;
        let sha = &commits[n % commits.len()];
        let action = if n % 3 == 0 { "update" } else { "open" };
        planned.push((
            "Merge Request Hook".into(),
            format!("mr-{iid}-{n}"),
            merge_request(iid, action, sha, &at(), true),
        ));
    }
    let newest = &commits[commits.len() - 1];
    for iid in 1..=4u64 {
        let (action, sha) = if iid % 2 == 1 {
            ("update", newest)
        } else {
            ("close", newest)
        };
        planned.push((
            "Merge Request Hook".into(),
            format!("mr-{iid}-last"),
            merge_request(iid, action, sha, "2026-12-02T12:00:00Z", true),
        ));
    }
    let mut deliveries: Vec<(String, String, String)> = Vec::new();
    for (index, delivery) in planned.iter().enumerate() {
        deliveries.push(delivery.clone());
        if index % 4 == 0 && deliveries.len() < 200 {
            deliveries.push(delivery.clone());
        }
    }
    while deliveries.len() < 200 {
        let again = planned[deliveries.len() % planned.len()].clone();
        deliveries.push(again);
    }
    // Delivered from 8 senders at once, as a busy GitLab does.
    let started = Instant::now();
    let answers: Vec<(String, Answer)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = deliveries.chunks(25).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (client, url) = (forge.client.clone(), forge.server.url.clone());
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(event, key, body)| {
                            (key.clone(), gitlab(&client, &url, event, key, body))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    assert_eq!(answers.len(), 200);
    println!("200 deliveries answered in {elapsed:?}");
    for (key, answer) in &answers {
        assert!(
            [200, 202].contains(&answer.status),
            "{key}: {} {:#}",
            answer.status,
            answer.body
        );
    }
    // Each distinct delivery recorded exactly once, every redelivery answered with the first.
    let distinct: std::collections::BTreeSet<&str> =
        deliveries.iter().map(|(_, key, _)| key.as_str()).collect();
    let recorded = forge.deliveries();
    assert_eq!(recorded.len(), distinct.len(), "{recorded:#?}");
    let mut first_pipeline: std::collections::BTreeMap<&str, Value> = Default::default();
    for (key, answer) in &answers {
        let pipeline = answer.body["pipeline"].clone();
        let seen = first_pipeline
            .entry(key.as_str())
            .or_insert(pipeline.clone());
        assert_eq!(*seen, pipeline, "{key}: redelivery with another answer");
    }
    let started_pipelines: std::collections::BTreeSet<i64> = recorded
        .iter()
        .filter_map(|d| d["pipeline"].as_i64())
        .collect();
    let pipelines = settled(&forge);
    assert_eq!(
        pipelines.len(),
        started_pipelines.len(),
        "one pipeline per accepted delivery"
    );
    assert!(
        pipelines.iter().any(|p| p["state"] == "superseded"),
        "older queued pipelines are superseded"
    );
    for pipeline in &pipelines {
        assert!(
            ["succeeded", "superseded"].contains(&pipeline["state"].as_str().unwrap()),
            "{pipeline:#}"
        );
    }
    // The final state of every biome is its merge request's last event.
    let biomes = forge.biomes();
    for iid in 1..=4u64 {
        let name = format!("mr-{iid}");
        if iid % 2 == 1 {
            assert_eq!(sandbox.status(&name)["sha"], newest.as_str(), "{name}");
        } else {
            assert!(!biomes.contains(&name), "{name} should be down: {biomes:?}");
        }
    }
}
