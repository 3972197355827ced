//! A database per biome on the environment's shared PostgreSQL instance, against a real server
//! that sandpit initialises and its daemon runs.

use std::time::{Duration, Instant};

use crate::harness::{component, http_get, sql, Sandbox};

fn project(migrations: &[(&str, &str)]) -> Sandbox {
    let files: Vec<(String, String)> = vec![
        (
            "sandpit.toml".into(),
            r#"
[project]
name = "geo"

[database]
migrations = "db/migrations"
seed = "db/seed.sql"
shared = "db/shared.sql"

[jobs.check]
path = "check"
run = "test -n \"$DATABASE_URL\" && test -n \"$SHARED_DATABASE_URL\""

[services.web]
path = "web"
run = "python3 server.py"
depends_on = ["check"]
"#
            .into(),
        ),
        ("db/seed.sql".into(), "insert into samples(label) values ('seeded');\n".into()),
        (
            "db/shared.sql".into(),
            "create table ore_types(code text primary key);\ninsert into ore_types values ('oxide'), ('sulphide');\n".into(),
        ),
        ("check/README".into(), "checks the injected variables\n".into()),
        (
            "web/server.py".into(),
            r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
        self.wfile.write(os.environ["DATABASE_URL"].encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
            .into(),
        ),
    ];
    with_migrations(files, migrations)
}

/// A committed repository of `files` plus `db/migrations/<name>` for each migration.
fn with_migrations(mut files: Vec<(String, String)>, migrations: &[(&str, &str)]) -> Sandbox {
    for (name, body) in migrations {
        files.push((format!("db/migrations/{name}"), (*body).to_owned()));
    }
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Sandbox::with_files(&borrowed)
}

const SAMPLES: &str = "create table samples(id serial primary key, label text not null);\n";

fn database_url(sandbox: &Sandbox, biome: &str) -> String {
    let status = sandbox.json(&["status", biome, "--show-secrets"]);
    status["database"]["url"].as_str().unwrap().to_owned()
}

fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

#[test]
fn biomes_get_isolated_databases_from_one_template_and_down_drops_them() {
    let sandbox = project(&[("001_samples.sql", SAMPLES)]);
    let alice = sandbox.json(&["up", "alice"]);
    // SANDPIT_LOG shows sandpit's own diagnostics on stderr: here the time of each step of
    // making bob's database; stdout stays the JSON answer.
    let traced = sandbox
        .command(&["up", "bob", "--json"])
        .env("SANDPIT_LOG", "sandpit_database::steps=debug")
        .output()
        .unwrap();
    assert!(traced.status.success(), "{traced:?}");
    let diagnostics = String::from_utf8_lossy(&traced.stderr);
    assert!(
        diagnostics.contains("step=\"clone\"") && diagnostics.contains("micros="),
        "{diagnostics}"
    );
    let bob: serde_json::Value = serde_json::from_slice(&traced.stdout).unwrap();
    let typo = sandbox
        .command(&["ls"])
        .env("SANDPIT_LOG", "sandpit_database=loud")
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&typo.stderr)
            .contains("SANDPIT_LOG `sandpit_database=loud` is not a filter"),
        "{typo:?}"
    );
    assert_eq!(
        component(&alice, "check")["state"],
        "succeeded",
        "jobs see DATABASE_URL"
    );
    assert_eq!(alice["database"]["name"], "geo_alice");
    assert_eq!(alice["database"]["url_env"], "DATABASE_URL");
    assert!(
        alice["database"].get("url").is_none(),
        "no secrets without --show-secrets: {alice:#}"
    );
    assert_eq!(
        alice["database"]["template"], bob["database"]["template"],
        "one template per migrations hash"
    );
    let template = alice["database"]["template"].as_str().unwrap().to_owned();

    let alice_url = database_url(&sandbox, "alice");
    let bob_url = database_url(&sandbox, "bob");
    // The service got exactly its own URL.
    let (_, served) = http_get(&format!(
        "{}/",
        component(&alice, "web")["url"].as_str().unwrap()
    ));
    assert_eq!(served, alice_url);
    // Each biome starts from the seed and keeps its own data.
    sql(
        &alice_url,
        "insert into samples(label) values ('alice only')",
    )
    .unwrap();
    let labels = |url: &str| -> Vec<String> {
        sql(url, "select label from samples order by id")
            .unwrap()
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect()
    };
    assert_eq!(labels(&alice_url), ["seeded", "alice only"]);
    assert_eq!(labels(&bob_url), ["seeded"]);
    // Alice's credentials are refused by Bob's database, the template and the maintenance db.
    for other in ["geo_bob", template.as_str(), "postgres"] {
        let refused = sql(&with_database(&alice_url, other), "select 1").unwrap_err();
        assert!(
            refused.contains("permission denied")
                || refused.contains("not currently accepting connections"),
            "{other}: {refused}"
        );
    }
    // The shared data set is readable and read-only, enforced by PostgreSQL.
    let shared_url = with_database(&alice_url, "geo_shared");
    assert_eq!(
        sql(&shared_url, "select count(*) from ore_types").unwrap()[0][0].as_deref(),
        Some("2")
    );
    let refused = sql(&shared_url, "insert into ore_types values ('fresh')").unwrap_err();
    assert!(
        refused.contains("permission denied") || refused.contains("read-only"),
        "{refused}"
    );
    let refused = sql(&shared_url, "create table mine(x int)").unwrap_err();
    assert!(
        refused.contains("permission denied") || refused.contains("read-only"),
        "{refused}"
    );

    // Up again at a new commit without migration changes: data kept, same URL.
    sandbox.write("web/README", "docs only\n");
    sandbox.commit("docs");
    sandbox.ok(&["up", "alice"]);
    assert_eq!(database_url(&sandbox, "alice"), alice_url);
    assert_eq!(labels(&alice_url), ["seeded", "alice only"]);

    // down: no database and no role left.
    sandbox.ok(&["down", "alice"]);
    let databases = sandbox.admin_column("geo", "select datname from pg_database");
    let roles = sandbox.admin_column("geo", "select rolname from pg_roles");
    assert!(
        !databases.contains(&"geo_alice".to_owned()),
        "{databases:?}"
    );
    assert!(
        !roles.iter().any(|r| r.starts_with("geo_alice")),
        "{roles:?}"
    );
    assert!(databases.contains(&"geo_bob".to_owned()));
    assert!(
        sql(&alice_url, "select 1").is_err(),
        "alice's credentials are gone"
    );
}

#[test]
fn new_migrations_reach_a_biome_in_place_and_reset_db_starts_it_over() {
    let sandbox = project(&[("001_samples.sql", SAMPLES)]);
    let first = sandbox.json(&["up", "carol"]);
    let url = database_url(&sandbox, "carol");
    sql(&url, "insert into samples(label) values ('precious')").unwrap();
    let count = |url: &str| sql(url, "select count(*) from samples").unwrap()[0][0].clone();

    // A broken migration: the error names the file, the line and PostgreSQL's message, and
    // nothing of it stays.
    sandbox.write("db/migrations/002_broken.sql", "-- adds a column\nalter table samples\n  add column grade numeric;\nselect frobnicate();\n");
    sandbox.commit("broken migration");
    let error = sandbox.fails(&["up", "carol"], 1);
    assert!(error.contains("002_broken.sql"), "{error}");
    assert!(error.contains("line 4"), "{error}");
    assert!(error.contains("frobnicate"), "{error}");
    assert!(
        sql(&url, "select grade from samples").is_err(),
        "the rehearsal kept nothing"
    );
    let databases = sandbox.admin_column("geo", "select datname from pg_database");
    assert!(
        !databases.iter().any(|d| d.ends_with("_building")),
        "no half-built template: {databases:?}"
    );
    assert_eq!(count(&url).as_deref(), Some("2"), "carol untouched");
    let history = sandbox.json(&["history", "carol"]);
    let failed = &history["deployments"][0];
    assert_eq!(failed["state"], "failed", "{history:#}");
    assert_eq!(
        failed["steps"][0]["step"], "rehearsal_failed",
        "{history:#}"
    );

    // Fixed: applied in place, the data kept, and recorded with its hash.
    let fixed = "alter table samples add column grade numeric;\n";
    sandbox.write("db/migrations/002_broken.sql", fixed);
    sandbox.commit("fixed migration");
    let migrated = sandbox.json(&["up", "carol"]);
    assert_eq!(migrated["state"], "healthy");
    assert_eq!(
        database_url(&sandbox, "carol"),
        url,
        "same database, same URL"
    );
    assert_eq!(count(&url).as_deref(), Some("2"), "data kept");
    sql(&url, "update samples set grade = 1.5").unwrap();
    let recorded = sql(
        &url,
        "select file, checksum from sandpit_migrations where kind = 'migration' order by file",
    )
    .unwrap();
    use sha2::Digest as _;
    let expected = hex::encode(sha2::Sha256::digest(fixed.as_bytes()));
    assert_eq!(
        recorded,
        [
            vec![
                Some("001_samples.sql".to_owned()),
                Some(hex::encode(sha2::Sha256::digest(SAMPLES.as_bytes())))
            ],
            vec![Some("002_broken.sql".to_owned()), Some(expected.clone())],
        ]
    );
    let steps = &sandbox.json(&["history", "carol"])["deployments"][0]["steps"];
    assert_eq!(steps[0]["step"], "rehearsed", "{steps:#}");
    assert_eq!(steps[1]["step"], "migrated", "{steps:#}");
    assert!(steps[1]["message"]
        .as_str()
        .unwrap()
        .contains("002_broken.sql"));

    // An applied migration edited afterwards is refused, naming the file and both hashes.
    let edited = "alter table samples add column grade numeric(6,2);\n";
    sandbox.write("db/migrations/002_broken.sql", edited);
    sandbox.commit("edit an applied migration");
    let error = sandbox.fails(&["up", "carol"], 1);
    let edited_hash = hex::encode(sha2::Sha256::digest(edited.as_bytes()));
    assert!(
        error.contains("002_broken.sql")
            && error.contains(&expected)
            && error.contains(&edited_hash),
        "{error}"
    );
    assert!(error.contains("--reset-db"), "{error}");

    // --reset-db starts over from the (new) template and the seed.
    let reset = sandbox.json(&["up", "carol", "--reset-db"]);
    assert_ne!(reset["database"]["template"], first["database"]["template"]);
    assert_eq!(count(&url).as_deref(), Some("1"), "re-cloned from the seed");
    sql(&url, "update samples set grade = 1.25").unwrap();
}

fn pipeline_with_database(migrations: &[(&str, &str)]) -> Sandbox {
    let files: Vec<(String, String)> = vec![
        (
            "sandpit.toml".into(),
            r#"
[project]
name = "geo"

[environments.dev]
biomes = true
seed = true
[environments.test]
promote_from = "dev"
[environments.prod]
promote_from = "test"
protected = true
approvals = 1

[database]
migrations = "db/migrations"
seed = "db/seed.sql"

[services.web]
path = "web"
run = "python3 server.py"
"#
            .into(),
        ),
        (
            "db/seed.sql".into(),
            "insert into notes(text) values ('seeded');\n".into(),
        ),
        (
            "web/server.py".into(),
            r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
            .into(),
        ),
    ];
    let mut sandbox = with_migrations(files, migrations);
    sandbox
        .extra_env
        .push(("SANDPIT_USER".into(), "alice@example.com".into()));
    sandbox
}

#[test]
fn environments_migrate_in_place_after_a_rehearsal_on_their_own_data() {
    let sandbox = pipeline_with_database(&[
        ("001_samples.sql", SAMPLES),
        ("002_notes.sql", "create table notes(text text not null);\n"),
    ]);
    sandbox.json(&["deploy", "dev"]);
    sandbox.json(&["promote", "dev", "test"]);
    let dev_url = database_url(&sandbox, "dev");
    let test_url = database_url(&sandbox, "test");
    let labels = |url: &str| -> Vec<String> {
        sql(url, "select label from samples order by id")
            .unwrap()
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect()
    };
    // The seed runs into dev (it opted in) and never into test.
    let notes = |url: &str| sql(url, "select text from notes").unwrap();
    assert_eq!(notes(&dev_url), [vec![Some("seeded".to_owned())]]);
    assert!(notes(&test_url).is_empty());
    sql(&dev_url, "insert into samples(label) values ('dev data')").unwrap();
    sql(&test_url, "insert into samples(label) values ('test data')").unwrap();
    let web_pid = component(&sandbox.status("test"), "web")["pid"].clone();

    // A new migration is deployed, then promoted: applied in place, data kept, recorded.
    sandbox.write(
        "db/migrations/003_grade.sql",
        "alter table samples add column grade numeric not null default 0;\ncreate table assays(id serial primary key, sample int references samples(id));\n",
    );
    sandbox.commit("grades");
    let deployed = sandbox.json(&["deploy", "dev"]);
    assert_eq!(deployed["state"], "succeeded", "{deployed:#}");
    let steps: Vec<&str> = deployed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["rehearsed", "migrated"], "{deployed:#}");
    let promoted = sandbox.json(&["promote", "dev", "test"]);
    assert_eq!(promoted["state"], "succeeded", "{promoted:#}");
    assert_eq!(labels(&dev_url), ["dev data"]);
    assert_eq!(labels(&test_url), ["test data"]);
    // The environment's own role owns and can use what the migration created.
    sql(
        &test_url,
        "insert into assays(sample) select id from samples",
    )
    .unwrap();
    sql(&test_url, "update samples set grade = 2").unwrap();
    let history = sandbox.json(&["history", "test"]);
    assert_eq!(history["deployments"][0]["steps"][0]["step"], "rehearsed");

    // A migration that cannot apply to test's rows (an empty template accepts it): the rehearsal
    // fails before anything is stopped, and test is untouched.
    sandbox.write(
        "db/migrations/004_site.sql",
        "-- every sample needs a site\nalter table samples add column site text not null;\n",
    );
    sandbox.commit("sites");
    // A new biome, cloned from an empty template, takes it.
    let fresh = sandbox.json(&["up", "zed"]);
    assert_eq!(fresh["state"], "healthy");
    // dev has rows too: the deploy fails at the rehearsal, naming file, line and the reason.
    let output = sandbox.run(&["deploy", "dev"]);
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("004_site.sql")
            && error.contains("line 2")
            && error.contains("contains null values"),
        "{error}"
    );
    assert!(error.contains("nothing"), "says nothing changed: {error}");
    assert!(sql(&dev_url, "select site from samples").is_err());
    let history = sandbox.json(&["history", "dev"]);
    let failed = &history["deployments"][0];
    assert_eq!(failed["state"], "failed", "{history:#}");
    assert_eq!(failed["steps"][0]["step"], "rehearsal_failed");
    assert_eq!(
        history["deployments"][1]["id"], deployed["id"],
        "no automatic rollback was needed: nothing had changed"
    );
    assert_eq!(component(&sandbox.status("test"), "web")["pid"], web_pid);
    let applied = sql(
        &dev_url,
        "select count(*) from sandpit_migrations where kind = 'migration'",
    )
    .unwrap();
    assert_eq!(applied[0][0].as_deref(), Some("3"));

    // Destroying an environment drops its database, and is recorded.
    let destroyed = sandbox.json(&["env", "destroy", "test", "--confirm", "test"]);
    assert_eq!(destroyed["state"], "succeeded", "{destroyed:#}");
    let databases = sandbox.admin_column_in("geo", "test", "select datname from pg_database");
    assert!(!databases.contains(&"geo_test".to_owned()), "{databases:?}");
    let roles = sandbox.admin_column_in("geo", "test", "select rolname from pg_roles");
    assert!(
        !roles.iter().any(|r| r.starts_with("geo_test")),
        "{roles:?}"
    );
    let databases = sandbox.admin_column("geo", "select datname from pg_database");
    assert!(databases.contains(&"geo_dev".to_owned()), "{databases:?}");
    assert_eq!(labels(&dev_url), ["dev data"]);
}
#[test]
fn killing_the_embedded_instance_during_up_leaves_nothing_half_made() {
    let sandbox = project(&[
        ("001_samples.sql", SAMPLES),
        ("002_slow.sql", "select pg_sleep(4);\n"),
    ]);
    // The instance must exist to be killed: bring up another biome on a fast first commit.
    let up = sandbox
        .command(&["up", "dave"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the template is being built, then kill the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    let postmaster = loop {
        let pid_file = sandbox
            .home
            .join("projects/geo/postgres/dev/data/postmaster.pid");
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            let building = sql(
                &sandbox.admin_url("geo", "dev"),
                "select datname from pg_database where datname like '%_building'",
            )
            .map(|rows| !rows.is_empty())
            .unwrap_or(false);
            if building {
                break text.lines().next().unwrap().trim().parse::<u32>().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the template build never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    crate::harness::kill9(postmaster);
    let output = up.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "up fails when its database dies under it"
    );
    // The daemon restarts the instance; the next up finishes the job from scratch.
    let status = sandbox.json(&["up", "dave"]);
    assert_eq!(status["state"], "healthy");
    let databases = sandbox.admin_column("geo", "select datname from pg_database");
    assert!(
        !databases.iter().any(|d| d.ends_with("_building")),
        "{databases:?}"
    );
    assert!(databases.contains(&"geo_dave".to_owned()));
    let url = database_url(&sandbox, "dave");
    assert_eq!(
        sql(&url, "select label from samples").unwrap()[0][0].as_deref(),
        Some("seeded")
    );
}

#[test]
fn an_external_instance_is_used_as_configured_and_its_password_never_shown() {
    // The external server is another project's embedded instance, reached by URL.
    let host = project(&[("001_samples.sql", SAMPLES)]);
    host.ok(&["up", "erin"]);
    let admin_url = host.admin_url("geo", "dev");
    let password = admin_url
        .split(':')
        .nth(2)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();

    let mut guest = Sandbox::with_files(&[
        (
            "sandpit.toml",
            r#"
[project]
name = "guest"

[environments.dev]
biomes = true
[environments.dev.database]
url_env = "GUEST_ADMIN_URL"

[database]
migrations = "migrations"

[jobs.noop]
path = "noop"
run = "true"
"#,
        ),
        ("migrations/001.sql", SAMPLES),
        ("noop/README", "nothing\n"),
    ]);
    let error = guest.fails(&["up", "frank"], 1);
    assert!(
        error.contains("GUEST_ADMIN_URL"),
        "names the missing variable: {error}"
    );

    guest.extra_env.push((
        "GUEST_ADMIN_URL".into(),
        admin_url.replace(&password, "wrong-password"),
    ));
    let error = guest.fails(&["up", "frank"], 1);
    assert!(
        !error.contains("wrong-password"),
        "the password never appears: {error}"
    );
    assert!(
        error.contains("password authentication failed") || error.contains("authentication"),
        "{error}"
    );

    guest.extra_env.clear();
    guest
        .extra_env
        .push(("GUEST_ADMIN_URL".into(), admin_url.clone()));
    let up = guest.run(&["up", "frank", "--json"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        !printed.contains(&password),
        "the admin password never appears"
    );
    let databases = host.admin_column("geo", "select datname from pg_database");
    assert!(
        databases.contains(&"guest_frank".to_owned()),
        "{databases:?}"
    );
    guest.ok(&["down", "frank"]);
    let databases = host.admin_column("geo", "select datname from pg_database");
    assert!(
        !databases.contains(&"guest_frank".to_owned()),
        "{databases:?}"
    );
}

#[test]
fn up_racing_down_of_one_biome_leaves_it_whole_or_gone() {
    let sandbox = project(&[
        ("001_samples.sql", SAMPLES),
        // Slow enough that the down arrives while the up is preparing the database.
        ("002_slow.sql", "select pg_sleep(0.5);\n"),
    ]);
    sandbox.ok(&["up", "warm"]);
    for round in 0..3 {
        let up = sandbox
            .command(&["up", "racer"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Let the up record itself first in odd rounds, race it from the start in even ones.
        if round % 2 == 1 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !sandbox.run(&["history", "racer"]).status.success() {
                assert!(Instant::now() < deadline, "the up never recorded itself");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let down = sandbox.run(&["down", "racer"]);
        let up = up.wait_with_output().unwrap();
        let listed = sandbox.json(&["ls"]);
        let running = listed["biomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "racer");
        let databases = sandbox.admin_column("geo", "select datname from pg_database");
        let has_database = databases.contains(&"geo_racer".to_owned());
        let password = sandbox
            .home
            .join("projects/geo/databases/dev/racer.password")
            .exists();
        let context = format!(
            "round {round}: up {} ({}), down {} ({})",
            up.status,
            String::from_utf8_lossy(&up.stderr)
                .lines()
                .last()
                .unwrap_or_default(),
            down.status,
            String::from_utf8_lossy(&down.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        );
        if running {
            // The down came first (or found nothing yet): the up then made it whole.
            assert!(
                has_database && password,
                "{context}: running without its database"
            );
            let status = sandbox.status("racer");
            assert_eq!(status["state"], "healthy", "{context}");
            assert_eq!(status["database"]["name"], "geo_racer", "{context}");
            sandbox.ok(&["down", "racer"]);
        } else {
            assert!(
                !has_database && !password,
                "{context}: gone but its database is left"
            );
        }
        let history = sandbox.json(&["history", "racer"]);
        assert!(
            history["deployments"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["state"] != "running" && d["state"] != "pending"),
            "{context}: every operation finished: {history:#}"
        );
    }
}

#[test]
fn ten_ups_at_once_on_a_fresh_home_share_one_instance() {
    let sandbox = std::sync::Arc::new(project(&[("001_samples.sql", SAMPLES)]));
    let ups: Vec<_> = (0..10)
        .map(|i| {
            let sandbox = sandbox.clone();
            std::thread::spawn(move || sandbox.run(&["up", &format!("b{i}")]))
        })
        .collect();
    for up in ups {
        let output = up.join().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let daemon = sandbox.json(&["daemon", "status"]);
    let postgres = daemon["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"] == "postgres")
        .count();
    assert_eq!(postgres, 1, "{daemon:#}");
    let databases = sandbox.admin_column("geo", "select datname from pg_database");
    for i in 0..10 {
        assert!(databases.contains(&format!("geo_b{i}")), "{databases:?}");
    }
}

/// Sends SIGCONT to a stopped process when dropped, so a failing test never leaves it stopped.
struct Stopped(nix::unistd::Pid);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

#[test]
fn a_hung_database_fails_down_in_time_and_a_second_down_finishes_it() {
    let mut sandbox = project(&[("001_samples.sql", SAMPLES)]);
    sandbox.ok(&["up", "hank"]);
    sandbox
        .extra_env
        .push(("SANDPIT_DATABASE_TIMEOUT_MS".into(), "1500".into()));
    let pid_file = sandbox
        .home
        .join("projects/geo/postgres/dev/data/postmaster.pid");
    let postmaster: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let postmaster = nix::unistd::Pid::from_raw(postmaster);
    nix::sys::signal::kill(postmaster, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let stopped = Stopped(postmaster);

    // `down` gives up on the silent server instead of hanging (the harness would hang with it).
    let mut down = sandbox
        .command(&["down", "hank"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while down.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = down.kill();
            panic!("`down` still waits on a stopped PostgreSQL after 60s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = down.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("did not answer"), "{error}");
    assert!(
        error.contains("sandpit down hank"),
        "says how to finish: {error}"
    );

    // Nothing of it runs, and it is listed with what is left.
    let listed = sandbox.json(&["ls"]);
    assert!(
        !listed["biomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "hank"),
        "{listed:#}"
    );
    let left = listed["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["biome"] == "hank")
        .unwrap_or_else(|| panic!("not listed as incomplete: {listed:#}"))
        .clone();
    assert_eq!(left["state"], "down-failed");
    assert!(left["left"].to_string().contains("database"), "{left:#}");
    let history = sandbox.json(&["history", "hank"]);
    assert_eq!(history["deployments"][0]["kind"], "down");
    assert_eq!(history["deployments"][0]["state"], "failed");

    // Once PostgreSQL answers again, a second `down` finishes the job (with the default
    // timeout: a just-resumed server on a busy machine may well take longer than 1.5 s).
    drop(stopped);
    sandbox
        .extra_env
        .retain(|(name, _)| name != "SANDPIT_DATABASE_TIMEOUT_MS");
    sandbox.ok(&["down", "hank"]);
    let databases = sandbox.admin_column("geo", "select datname from pg_database");
    assert!(!databases.contains(&"geo_hank".to_owned()), "{databases:?}");
    let listed = sandbox.json(&["ls"]);
    assert_eq!(listed["incomplete"], serde_json::json!([]), "{listed:#}");
    let again = sandbox.fails(&["down", "hank"], 1);
    assert!(again.contains("already down"), "{again}");
}

/// The biome role's password in a `postgres://role:password@host:port/db` URL.
fn password_of(url: &str) -> &str {
    let (_, rest) = url.split_once("://").unwrap();
    let (credentials, _) = rest.split_once('@').unwrap();
    credentials.split_once(':').unwrap().1
}

/// The first process whose parent is `parent`, waited for (it is being started).
fn child_of(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                (crate::harness::parent(pid) == Some(parent)).then_some(pid)
            });
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "{parent} started no child");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exec_env_and_psql_reach_the_biomes_database_and_its_password_never_reaches_a_command_line() {
    let sandbox = project(&[("001_samples.sql", SAMPLES)]);
    sandbox.ok(&["up", "alice"]);
    let url = database_url(&sandbox, "alice");
    let password = password_of(&url).to_owned();
    assert!(password.len() >= 16, "{url}");

    // exec: the biome's URL, and the command's exit code.
    let output = sandbox.run(&[
        "exec",
        "alice",
        "--",
        "sh",
        "-c",
        "echo $DATABASE_URL; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), url);

    // env: secrets masked unless asked for, in text and JSON.
    let text = sandbox.ok(&["env", "alice"]);
    assert!(text.contains("DATABASE_URL=********\n"), "{text}");
    assert!(text.contains("SHARED_DATABASE_URL=********\n"), "{text}");
    assert!(!text.contains(&password), "{text}");
    let shown = sandbox.ok(&["env", "alice", "--show-secrets"]);
    assert!(
        shown
            .lines()
            .any(|line| line == format!("DATABASE_URL={url}")),
        "{shown}"
    );
    let json = sandbox.json(&["env", "alice"]);
    assert_eq!(json["component"], "web");
    assert_eq!(json["vars"]["DATABASE_URL"], serde_json::Value::Null);
    assert_eq!(
        json["secret"],
        serde_json::json!(["DATABASE_URL", "SHARED_DATABASE_URL"])
    );
    assert!(!json.to_string().contains(&password), "{json}");
    let json = sandbox.json(&["env", "alice", "--show-secrets"]);
    assert_eq!(json["vars"]["DATABASE_URL"], url.as_str());

    // A long-running command has the password in its environment, on no command line.
    let mut running = sandbox
        .command(&["exec", "alice", "--", "sleep", "300"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleeper = child_of(running.id());
    for pid in [running.id(), sleeper] {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&password),
            "{pid}: {cmdline:?}"
        );
    }
    let environ = std::fs::read(format!("/proc/{sleeper}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|entry| entry == format!("DATABASE_URL={url}").as_bytes()),
        "the command got DATABASE_URL"
    );
    crate::harness::kill9(sleeper);
    assert_eq!(running.wait().unwrap().code(), Some(128 + 9));

    // psql: the biome's own database, as its role.
    let rows = sandbox.ok(&[
        "psql",
        "alice",
        "--",
        "-tAc",
        "select current_database(), (select string_agg(label, ',') from samples)",
    ]);
    assert_eq!(rows.trim(), "geo_alice|seeded");
    // Its exit code is sandpit's.
    let output = sandbox.run(&["psql", "alice", "--", "-c", "select * from nowhere"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // Without psql on PATH, the error says what to install.
    let empty = tempfile::tempdir().unwrap();
    let output = sandbox
        .command(&["psql", "alice", "--", "-c", "select 1"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("`psql`")
            && error.contains("apt-get install -y postgresql-client")
            && error.contains("sandpit doctor"),
        "{error}"
    );
}
