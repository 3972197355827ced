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
];
