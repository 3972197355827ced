//! The SQLite schema of the state store, as ordered migrations tracked by `PRAGMA user_version`.
//!
//! Migration `i` (0-based) brings the database from `user_version = i` to `i + 1`. Migrations are
//! only ever appended to this list; an applied migration is never edited.

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: deployments (immutable facts), their components, and the event log.
    r#"
CREATE TABLE deployments (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    project            TEXT    NOT NULL,
    target             TEXT    NOT NULL,
    env                TEXT    NOT NULL,
    biome              TEXT,
    sha                TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('deploy', 'promote', 'rollback', 'up')),
    promoted_from      TEXT,
    requested_by       TEXT    NOT NULL,
    approvals_required INTEGER NOT NULL CHECK (approvals_required >= 0),
    rollback_of        INTEGER REFERENCES deployments (id),
    restores           INTEGER REFERENCES deployments (id),
    created_at         TEXT    NOT NULL
);
CREATE INDEX deployments_by_target ON deployments (project, target, id);
CREATE INDEX deployments_by_env ON deployments (project, env, id);
CREATE INDEX deployments_by_sha ON deployments (project, sha);

CREATE TABLE deployment_components (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id),
    position      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    artifact      TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, position)
);
CREATE INDEX deployment_components_by_digest ON deployment_components (digest);
CREATE INDEX deployment_components_by_artifact ON deployment_components (artifact);

CREATE TABLE deployment_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments (id),
    event          TEXT    NOT NULL CHECK (event IN
                       ('created', 'approved', 'rejected', 'started', 'succeeded', 'failed', 'rolled_back')),
    at             TEXT    NOT NULL,
    actor          TEXT,
    message        TEXT,
    -- the process that appended the event (for `started`: the process running the deployment)
    pid            INTEGER,
    -- for `rolled_back`: the deployment that undid this one
    ref_deployment INTEGER REFERENCES deployments (id)
);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);

-- Records are append-only: the database itself refuses to change or remove them.
CREATE TRIGGER deployments_append_only_update BEFORE UPDATE ON deployments
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployments_append_only_delete BEFORE DELETE ON deployments
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_components_append_only_update BEFORE UPDATE ON deployment_components
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_components_append_only_delete BEFORE DELETE ON deployment_components
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_events_append_only_update BEFORE UPDATE ON deployment_events
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_events_append_only_delete BEFORE DELETE ON deployment_events
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
"#,
    // 2: environments can be destroyed and biomes taken down (deployments of kind `destroy` and
    // `down`, after which nothing runs in the target), configuration changes are deployments of
    // kind `config`, and a deployment records
    // its steps (a rehearsal of migrations and its result, migrations applied in place) as events.
    // SQLite cannot change a CHECK constraint, so the three tables are rebuilt under new names,
    // the old ones dropped (children first, so no foreign key ever dangles), and the new ones
    // renamed — which also rewrites the references between them.
    r#"
CREATE TABLE deployments_v2 (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    project            TEXT    NOT NULL,
    target             TEXT    NOT NULL,
    env                TEXT    NOT NULL,
    biome              TEXT,
    sha                TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('deploy', 'promote', 'rollback', 'up', 'destroy', 'down', 'config')),
    promoted_from      TEXT,
    requested_by       TEXT    NOT NULL,
    approvals_required INTEGER NOT NULL CHECK (approvals_required >= 0),
    rollback_of        INTEGER REFERENCES deployments_v2 (id),
    restores           INTEGER REFERENCES deployments_v2 (id),
    created_at         TEXT    NOT NULL
);
CREATE TABLE deployment_components_v2 (
    deployment_id INTEGER NOT NULL REFERENCES deployments_v2 (id),
    position      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    artifact      TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, position)
);
CREATE TABLE deployment_events_v2 (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments_v2 (id),
    event          TEXT    NOT NULL CHECK (event IN
                       ('created', 'approved', 'rejected', 'started', 'succeeded', 'failed', 'rolled_back',
                        'rehearsed', 'rehearsal_failed', 'migrated', 'configured')),
    at             TEXT    NOT NULL,
    actor          TEXT,
    message        TEXT,
    pid            INTEGER,
    ref_deployment INTEGER REFERENCES deployments_v2 (id)
);
INSERT INTO deployments_v2 SELECT * FROM deployments ORDER BY id;
INSERT INTO deployment_components_v2 SELECT * FROM deployment_components;
INSERT INTO deployment_events_v2 SELECT * FROM deployment_events ORDER BY id;
DROP TABLE deployment_events;
DROP TABLE deployment_components;
DROP TABLE deployments;
ALTER TABLE deployments_v2 RENAME TO deployments;
ALTER TABLE deployment_components_v2 RENAME TO deployment_components;
ALTER TABLE deployment_events_v2 RENAME TO deployment_events;

CREATE INDEX deployments_by_target ON deployments (project, target, id);
CREATE INDEX deployments_by_env ON deployments (project, env, id);
CREATE INDEX deployments_by_sha ON deployments (project, sha);
CREATE INDEX deployment_components_by_digest ON deployment_components (digest);
CREATE INDEX deployment_components_by_artifact ON deployment_components (artifact);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);

CREATE TRIGGER deployments_append_only_update BEFORE UPDATE ON deployments
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployments_append_only_delete BEFORE DELETE ON deployments
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_components_append_only_update BEFORE UPDATE ON deployment_components
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_components_append_only_delete BEFORE DELETE ON deployment_components
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_events_append_only_update BEFORE UPDATE ON deployment_events
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_events_append_only_delete BEFORE DELETE ON deployment_events
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
"#,
    // 3: the projects a server builds from git: a row per registration (name, URL, branch, who
    // and when), and events on it — `added`, `fetched` (the branch head's sha), `removed`. A
    // removed name may be registered again: that is a new row.
    r#"
CREATE TABLE projects (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT    NOT NULL,
    git_url  TEXT    NOT NULL,
    branch   TEXT    NOT NULL,
    added_at TEXT    NOT NULL,
    added_by TEXT    NOT NULL
);
CREATE INDEX projects_by_name ON projects (name, id);

CREATE TABLE project_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects (id),
    event      TEXT    NOT NULL CHECK (event IN ('added', 'removed', 'fetched')),
    -- for `fetched`: the commit the registered branch named
    sha        TEXT,
    at         TEXT    NOT NULL,
    actor      TEXT,
    message    TEXT
);
CREATE INDEX project_events_by_project ON project_events (project_id, event, id);

CREATE TRIGGER projects_append_only_update BEFORE UPDATE ON projects
BEGIN SELECT RAISE(ABORT, 'project records are append-only'); END;
CREATE TRIGGER projects_append_only_delete BEFORE DELETE ON projects
BEGIN SELECT RAISE(ABORT, 'project records are append-only'); END;
CREATE TRIGGER project_events_append_only_update BEFORE UPDATE ON project_events
BEGIN SELECT RAISE(ABORT, 'project records are append-only'); END;
CREATE TRIGGER project_events_append_only_delete BEFORE DELETE ON project_events
BEGIN SELECT RAISE(ABORT, 'project records are append-only'); END;
"#,
    // 4: pipelines (a commit built, deployed to the first environment and promoted onward as
    // asked), their planned stages, and what happened to each as events.
    r#"
CREATE TABLE pipelines (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT    NOT NULL,
    trigger      TEXT    NOT NULL CHECK (trigger IN ('manual', 'webhook', 'schedule')),
    requested_by TEXT    NOT NULL,
    -- the branch asked for; NULL when a commit was named
    branch       TEXT,
    sha          TEXT    NOT NULL,
    retry_of     INTEGER REFERENCES pipelines (id),
    created_at   TEXT    NOT NULL
);
CREATE INDEX pipelines_by_project ON pipelines (project, id);

CREATE TABLE pipeline_stages (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id),
    position    INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('fetch', 'build', 'deploy', 'promote')),
    env         TEXT,
    PRIMARY KEY (pipeline_id, position)
);

CREATE TABLE pipeline_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id   INTEGER NOT NULL REFERENCES pipelines (id),
    -- NULL for the pipeline's own events, else the stage's position
    stage         INTEGER,
    event         TEXT    NOT NULL CHECK (event IN
                      ('queued', 'started', 'succeeded', 'failed', 'pending', 'superseded', 'skipped')),
    at            TEXT    NOT NULL,
    message       TEXT,
    deployment_id INTEGER REFERENCES deployments (id),
    pid           INTEGER
);
CREATE INDEX pipeline_events_by_pipeline ON pipeline_events (pipeline_id, id);

CREATE TRIGGER pipelines_append_only_update BEFORE UPDATE ON pipelines
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipelines_append_only_delete BEFORE DELETE ON pipelines
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_stages_append_only_update BEFORE UPDATE ON pipeline_stages
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_stages_append_only_delete BEFORE DELETE ON pipeline_stages
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_events_append_only_update BEFORE UPDATE ON pipeline_events
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_events_append_only_delete BEFORE DELETE ON pipeline_events
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
"#,
    // 5: the control plane's API tokens (immutable facts: who, which roles, the secret's sha256,
    // when it expires) and what happened to them later (revoked) as events. A token is revoked at
    // most once, which the partial unique index keeps true across processes.
    r#"
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY CHECK (id GLOB 'tok_[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    user          TEXT NOT NULL CHECK (user <> ''),
    -- role names separated by commas, e.g. `viewer,deployer`
    roles         TEXT NOT NULL CHECK (roles <> ''),
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (length(secret_sha256) = 64),
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    created_by    TEXT NOT NULL
);

CREATE TABLE token_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id TEXT NOT NULL REFERENCES tokens (id),
    event    TEXT NOT NULL CHECK (event IN ('revoked')),
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL
);
CREATE UNIQUE INDEX token_events_revoked_once ON token_events (token_id) WHERE event = 'revoked';

CREATE TRIGGER tokens_append_only_update BEFORE UPDATE ON tokens
BEGIN SELECT RAISE(ABORT, 'token records are append-only'); END;
CREATE TRIGGER tokens_append_only_delete BEFORE DELETE ON tokens
BEGIN SELECT RAISE(ABORT, 'token records are append-only'); END;
CREATE TRIGGER token_events_append_only_update BEFORE UPDATE ON token_events
BEGIN SELECT RAISE(ABORT, 'token records are append-only'); END;
CREATE TRIGGER token_events_append_only_delete BEFORE DELETE ON token_events
BEGIN SELECT RAISE(ABORT, 'token records are append-only'); END;
"#,
    // 6: pipelines can target a biome (fetch, build, `up` it at the commit) or take one down,
    // are started by `sandpit ci` too, and may have their stages after the fetch planned once
    // the commit's sandpit.toml is read (a webhook records the pipeline before anything is
    // fetched). Projects get their webhook settings, and every webhook delivery is recorded
    // (once per delivery key, which a partial unique index keeps true across processes).
    // The pipeline tables are rebuilt as migration 2 rebuilt the deployment tables.
    r#"
CREATE TABLE pipelines_v6 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT    NOT NULL,
    trigger      TEXT    NOT NULL CHECK (trigger IN ('manual', 'webhook', 'schedule', 'ci')),
    requested_by TEXT    NOT NULL,
    branch       TEXT,
    sha          TEXT    NOT NULL,
    retry_of     INTEGER REFERENCES pipelines_v6 (id),
    created_at   TEXT    NOT NULL,
    target       TEXT    NOT NULL CHECK (target IN ('environments', 'biome', 'biome_down')),
    -- the biome a `biome` or `biome_down` pipeline acts on
    biome        TEXT,
    CHECK ((target = 'environments') = (biome IS NULL))
);
CREATE TABLE pipeline_stages_v6 (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines_v6 (id),
    position    INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('fetch', 'build', 'deploy', 'promote', 'up', 'down')),
    env         TEXT,
    PRIMARY KEY (pipeline_id, position)
);
CREATE TABLE pipeline_events_v6 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id   INTEGER NOT NULL REFERENCES pipelines_v6 (id),
    stage         INTEGER,
    event         TEXT    NOT NULL CHECK (event IN
                      ('queued', 'started', 'succeeded', 'failed', 'pending', 'superseded', 'skipped')),
    at            TEXT    NOT NULL,
    message       TEXT,
    deployment_id INTEGER REFERENCES deployments (id),
    pid           INTEGER
);
INSERT INTO pipelines_v6
    SELECT id, project, trigger, requested_by, branch, sha, retry_of, created_at, 'environments', NULL
    FROM pipelines ORDER BY id;
INSERT INTO pipeline_stages_v6 SELECT * FROM pipeline_stages;
INSERT INTO pipeline_events_v6 SELECT * FROM pipeline_events ORDER BY id;
DROP TABLE pipeline_events;
DROP TABLE pipeline_stages;
DROP TABLE pipelines;
ALTER TABLE pipelines_v6 RENAME TO pipelines;
ALTER TABLE pipeline_stages_v6 RENAME TO pipeline_stages;
ALTER TABLE pipeline_events_v6 RENAME TO pipeline_events;
CREATE INDEX pipelines_by_project ON pipelines (project, id);
CREATE INDEX pipeline_events_by_pipeline ON pipeline_events (pipeline_id, id);

CREATE TRIGGER pipelines_append_only_update BEFORE UPDATE ON pipelines
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipelines_append_only_delete BEFORE DELETE ON pipelines
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_stages_append_only_update BEFORE UPDATE ON pipeline_stages
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_stages_append_only_delete BEFORE DELETE ON pipeline_stages
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_events_append_only_update BEFORE UPDATE ON pipeline_events
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;
CREATE TRIGGER pipeline_events_append_only_delete BEFORE DELETE ON pipeline_events
BEGIN SELECT RAISE(ABORT, 'pipeline records are append-only'); END;

CREATE TABLE project_webhooks (
    project_id  INTEGER PRIMARY KEY REFERENCES projects (id),
    -- the shared secret: GitLab sends it as is, GitHub signs the body with it
    secret      TEXT    NOT NULL CHECK (length(secret) >= 16),
    allow_forks INTEGER NOT NULL CHECK (allow_forks IN (0, 1))
);

CREATE TABLE hook_deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project       TEXT    NOT NULL,
    forge         TEXT    NOT NULL CHECK (forge IN ('gitlab', 'github', 'gitlab_ci')),
    event         TEXT    NOT NULL,
    -- X-Gitlab-Event-UUID, X-GitHub-Delivery or Idempotency-Key
    delivery_key  TEXT,
    received_at   TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('pipeline', 'biome_up', 'biome_down', 'promotion', 'ignored')),
    summary       TEXT    NOT NULL,
    pipeline_id   INTEGER REFERENCES pipelines (id),
    biome         TEXT,
    sha           TEXT,
    -- for merge request events: which one, and the event's own time (the watermark)
    merge_request INTEGER,
    mr_updated_at TEXT
);
CREATE UNIQUE INDEX hook_deliveries_once ON hook_deliveries (project, delivery_key)
    WHERE delivery_key IS NOT NULL;
CREATE INDEX hook_deliveries_by_project ON hook_deliveries (project, id);
CREATE INDEX hook_deliveries_by_merge_request ON hook_deliveries (project, forge, merge_request, id);

CREATE TRIGGER project_webhooks_append_only_update BEFORE UPDATE ON project_webhooks
BEGIN SELECT RAISE(ABORT, 'project records are append-only'); END;
CREATE TRIGGER project_webhooks_append_only_delete BEFORE DELETE ON project_webhooks
BEGIN SELECT RAISE(ABORT, 'project records are append-only'); END;
CREATE TRIGGER hook_deliveries_append_only_update BEFORE UPDATE ON hook_deliveries
BEGIN SELECT RAISE(ABORT, 'hook deliveries are append-only'); END;
CREATE TRIGGER hook_deliveries_append_only_delete BEFORE DELETE ON hook_deliveries
BEGIN SELECT RAISE(ABORT, 'hook deliveries are append-only'); END;
"#,
    // 7: the outbox of reports to a forge — each commit status or merge request note to send and its delivery's state —
    // and the one note kept per merge request. Unlike the records above, an outbox row changes
    // (attempts, next attempt, result): it is a work queue, not history, and the pipeline's own
    // events stay the record of what happened.
    REPORTS_OUTBOX,
    // 8: overlay biomes: a deployment's component may be borrowed — served by the named biome's
    // instance (the environment's base), not run by the target itself. NULL: the target runs it.
    r#"
ALTER TABLE deployment_components ADD COLUMN borrowed_from TEXT;
"#,
    // 9: when each biome expires. A row per change — `up` (the ttl of the commit it ran, and
    // the repository and revision it was brought up from, so a reaper without the user's
    // checkout can read the biome's definition) or `extend` — and the newest row of a biome
    // wins. Append-only like the deployment records.
    BIOME_EXPIRIES,
    // 10: a deployment into a protected environment records the terraform plan it will apply
    // (`planned`, while it waits for approval) and what applying it did (`applied`). SQLite
    // cannot change a CHECK constraint: the event table is rebuilt as migration 2 rebuilt it
    // (nothing refers to it, so it is copied, dropped and renamed; its index and triggers made
    // again).
    DEPLOYMENT_EVENTS_PLANNED,
    // 11: several servers may share one state database (PostgreSQL, whose version 1 is this
    // schema): events record the host beside the pid, so a pid is only judged alive or dead on
    // its own machine; and a deployment, a pipeline or a pipeline's stage is started at most
    // once, which partial unique indexes keep true whoever races.
    r#"
ALTER TABLE deployment_events ADD COLUMN host TEXT;
ALTER TABLE pipeline_events ADD COLUMN host TEXT;
CREATE UNIQUE INDEX deployment_events_started_once ON deployment_events (deployment_id)
    WHERE event = 'started';
CREATE UNIQUE INDEX pipeline_events_started_once ON pipeline_events (pipeline_id, COALESCE(stage, -1))
    WHERE event = 'started';
"#,
];

/// Migration 7: see [`MIGRATIONS`].
const REPORTS_OUTBOX: &str = r#"
CREATE TABLE reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id     INTEGER REFERENCES pipelines (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('commit_status', 'merge_request_note')),
    -- rows with the same key are delivered one after another, in id order
    ordering_key    TEXT    NOT NULL,
    api_url         TEXT    NOT NULL,
    -- the forge's project: a path or a numeric id, as `sandpit.toml` wrote it
    forge_project   TEXT    NOT NULL,
    -- where the API token is: configuration secret `token_secret` of sandpit project
    -- `project`, environment `token_env` (its base); the token itself is never stored here
    project         TEXT    NOT NULL,
    token_env       TEXT    NOT NULL,
    token_secret    TEXT    NOT NULL,
    -- commit_status: the commit; merge_request_note: the merge request's iid
    sha             TEXT,
    merge_request   INTEGER,
    -- a status's JSON body, or a note's Markdown
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('waiting', 'delivered', 'failed', 'superseded')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- milliseconds since the Unix epoch
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    finished_at     TEXT
);
CREATE INDEX reports_by_state ON reports (state, id);
CREATE INDEX reports_by_pipeline ON reports (pipeline_id, id);

CREATE TABLE merge_request_notes (
    api_url       TEXT    NOT NULL,
    forge_project TEXT    NOT NULL,
    merge_request INTEGER NOT NULL,
    note_id       INTEGER NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (api_url, forge_project, merge_request)
);
"#;

/// Migration 9: see [`MIGRATIONS`].
const BIOME_EXPIRIES: &str = r#"
CREATE TABLE biome_expiries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project       TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    biome         TEXT    NOT NULL,
    -- RFC 3339 UTC
    expires_at    TEXT    NOT NULL,
    reason        TEXT    NOT NULL CHECK (reason IN ('up', 'extend')),
    requested_by  TEXT    NOT NULL,
    at            TEXT    NOT NULL,
    -- `up`: the ttl in seconds and the deployment it followed (NULL when the biome already ran
    -- the commit and nothing was deployed)
    ttl_secs      INTEGER CHECK (ttl_secs > 0),
    deployment_id INTEGER REFERENCES deployments (id),
    -- `up`: where the biome's definition is read from: a checkout's project directory or a
    -- bare repository, and the commit (or snapshot tree) it ran
    repository    TEXT,
    bare          INTEGER CHECK (bare IN (0, 1)),
    revision      TEXT,
    CHECK ((reason = 'up') = (ttl_secs IS NOT NULL AND repository IS NOT NULL AND bare IS NOT NULL AND revision IS NOT NULL))
);
CREATE INDEX biome_expiries_by_biome ON biome_expiries (project, env, biome, id);

CREATE TRIGGER biome_expiries_append_only_update BEFORE UPDATE ON biome_expiries
BEGIN SELECT RAISE(ABORT, 'expiry records are append-only'); END;
CREATE TRIGGER biome_expiries_append_only_delete BEFORE DELETE ON biome_expiries
BEGIN SELECT RAISE(ABORT, 'expiry records are append-only'); END;
"#;

/// Migration 10: see [`MIGRATIONS`].
const DEPLOYMENT_EVENTS_PLANNED: &str = r#"
CREATE TABLE deployment_events_v10 (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments (id),
    event          TEXT    NOT NULL CHECK (event IN
                       ('created', 'approved', 'rejected', 'started', 'succeeded', 'failed', 'rolled_back',
                        'rehearsed', 'rehearsal_failed', 'migrated', 'configured', 'planned', 'applied')),
    at             TEXT    NOT NULL,
    actor          TEXT,
    message        TEXT,
    pid            INTEGER,
    ref_deployment INTEGER REFERENCES deployments (id)
);
INSERT INTO deployment_events_v10 SELECT * FROM deployment_events ORDER BY id;
DROP TABLE deployment_events;
ALTER TABLE deployment_events_v10 RENAME TO deployment_events;
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);
CREATE TRIGGER deployment_events_append_only_update BEFORE UPDATE ON deployment_events
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
CREATE TRIGGER deployment_events_append_only_delete BEFORE DELETE ON deployment_events
BEGIN SELECT RAISE(ABORT, 'deployment records are append-only'); END;
"#;
