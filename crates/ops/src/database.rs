//! A biome's database: the environment's PostgreSQL instance (embedded and run by the daemon, or
//! external), the template migrated from the commit's migrations, and the biome's own database
//! and login role cloned from it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sandpit_database::{
    libpq_url, names, Admin, EmbeddedCluster, MigrationFile, MigrationSet, PgBinaries, RedactedUrl,
    Secret, Timeouts,
};
use sandpit_domain::Name;
use sandpit_runtime::owner_only;
use sandpit_runtime::process::Program;
use sandpit_runtime::protocol::{DatabaseInfo, InstanceKey, InstanceSpec};
use sandpit_spec::{DatabaseUrl, Spec};
use sandpit_state::StepKind;

use crate::daemon_connection;
use crate::Context;

/// What a biome's components are given.
#[derive(Debug, Clone)]
pub struct BiomeDatabaseGrant {
    /// `DATABASE_URL` and, with a shared data set, `SHARED_DATABASE_URL`, each with the
    /// owner-only file its value (a URL with the role's password) is kept in: the daemon reads
    /// them when it starts a component, so the URLs are never sent to it or saved in its state.
    pub secret_env: BTreeMap<String, PathBuf>,
    pub info: DatabaseInfo,
}

/// Where the environment's instance is and how to administer it.
struct Instance {
    admin_url: String,
    host: String,
    port: u16,
    /// The embedded instance's log, named when the server does not answer in time.
    server_log: Option<PathBuf>,
    timeouts: Timeouts,
}

impl Instance {
    /// The administrator's connection, with this invocation's timeouts.
    async fn admin(&self) -> Result<Admin, sandpit_database::DatabaseError> {
        Admin::connect_with(&self.admin_url, self.timeouts, self.server_log.as_deref()).await
    }
}

/// The embedded cluster's directory. PostgreSQL runs as the `postgres` user when sandpit runs as
/// root, and that user must be able to reach its data directory; a `SANDPIT_HOME` under a private
/// directory (such as `/root`) cannot be reached, so such clusters live under `/var/lib/sandpit`.
fn cluster_dir(context: &Context, project: &Name, env: &Name) -> PathBuf {
    let preferred = context
        .home
        .join("projects")
        .join(project.as_str())
        .join("postgres")
        .join(env.as_str());
    if !nix::unistd::geteuid().is_root() || ancestors_traversable(&context.home) {
        return preferred;
    }
    let home_id = hex_prefix(context.home.as_os_str().as_encoded_bytes());
    PathBuf::from("/var/lib/sandpit/clusters")
        .join(home_id)
        .join(project.as_str())
        .join(env.as_str())
}

fn hex_prefix(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Whether every existing ancestor of `path` lets others pass through (`o+x`).
fn ancestors_traversable(path: &Path) -> bool {
    path.ancestors()
        .filter_map(|dir| fs::metadata(dir).ok())
        .all(|meta| meta.permissions().mode() & 0o001 != 0)
}

/// Whether the biome (or base) may still have a database and role: its password file is kept
/// until both are dropped.
pub fn may_have_database(context: &Context, project: &Name, env: &Name, biome: &Name) -> bool {
    password_file(context, project, env, biome).exists()
}

/// Closes what an older sandpit left open of the biome's kept secrets (the directory 0700, its
/// password and URL files 0600, the embedded instance's superuser password 0600), as preparing
/// its database does: an `up` with nothing to do still leaves them private.
pub(crate) fn close_kept_secrets(
    context: &Context,
    project: &Name,
    env: &Name,
    biome: &Name,
) -> anyhow::Result<KeptSecrets> {
    let dir = secrets_dir(context, project, env);
    let files = std::iter::once(password_file(context, project, env, biome)).chain(
        SECRET_VARIABLES
            .iter()
            .map(|variable| variable_file(context, project, env, biome, variable)),
    );
    // The embedded instance's directory and superuser password, when this environment has one.
    let cluster = cluster_dir(context, project, env);
    let instance = [
        (
            cluster.join(sandpit_database::cluster::ADMIN_PASSWORD_FILE),
            owner_only::FILE_MODE,
        ),
        (cluster, sandpit_database::cluster::STATE_DIR_MAX_MODE),
    ];
    for (path, mode) in std::iter::once((dir, owner_only::DIR_MODE))
        .chain(files.map(|file| (file, owner_only::FILE_MODE)))
        .chain(instance)
    {
        owner_only::repair(&path, mode)
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    let present = |path: PathBuf| fs::read(path).is_ok_and(|kept| !kept.trim_ascii().is_empty());
    Ok(
        if present(password_file(context, project, env, biome))
            && present(variable_file(context, project, env, biome, "DATABASE_URL"))
        {
            KeptSecrets::Intact
        } else {
            KeptSecrets::Missing
        },
    )
}

/// Whether a biome's database password and `DATABASE_URL` are still kept (a removed password
/// file asks for a new password at the next `up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeptSecrets {
    Intact,
    Missing,
}

/// `projects/<p>/databases/<env>/` (0700): each biome's password and URLs, 0600.
fn secrets_dir(context: &Context, project: &Name, env: &Name) -> PathBuf {
    context
        .home
        .join("projects")
        .join(project.as_str())
        .join("databases")
        .join(env.as_str())
}

fn password_file(context: &Context, project: &Name, env: &Name, biome: &Name) -> PathBuf {
    secrets_dir(context, project, env).join(format!("{biome}.password"))
}

/// The file a secret variable of the biome is read from: `DATABASE_URL` →
/// `<biome>.database-url`.
fn variable_file(
    context: &Context,
    project: &Name,
    env: &Name,
    biome: &Name,
    variable: &str,
) -> PathBuf {
    let suffix = variable.to_ascii_lowercase().replace('_', "-");
    secrets_dir(context, project, env).join(format!("{biome}.{suffix}"))
}

/// The variables a biome's database may give its components.
const SECRET_VARIABLES: [&str; 2] = ["DATABASE_URL", "SHARED_DATABASE_URL"];

/// The biome role's password, generated once and kept (0600) so `DATABASE_URL` stays the same
/// across `up`s and running components need not restart. Also closes what an older version left
/// open: the directory 0700, the file 0600.
fn load_or_create_password(path: &Path) -> anyhow::Result<Secret> {
    let dir = path.parent().expect("password files live in a directory");
    owner_only::create_dir(dir)
        .with_context(|| format!("cannot create {} (owner-only)", dir.display()))?;
    owner_only::repair(path, owner_only::FILE_MODE)
        .with_context(|| format!("cannot make {} private", path.display()))?;
    if let Ok(existing) = fs::read_to_string(path) {
        if !existing.trim().is_empty() {
            return Ok(Secret::new(existing.trim()));
        }
    }
    let secret = Secret::generate().context("cannot generate a database password")?;
    owner_only::write_file(path, secret.expose().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

/// Keeps `value` in `path` (0600), rewriting it only when it changed.
fn keep_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    owner_only::repair(path, owner_only::FILE_MODE)
        .with_context(|| format!("cannot make {} private", path.display()))?;
    if fs::read_to_string(path).is_ok_and(|kept| kept == value) {
        return Ok(());
    }
    owner_only::write_file(path, value.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The biome's `DATABASE_URL`, password included, read from the file the daemon reads it from
/// (for `status --show-secrets`).
pub fn read_url(biome: &Name, info: &DatabaseInfo) -> anyhow::Result<String> {
    let Some(path) = &info.url_file else {
        bail!(
            "the database URL of `{biome}` is not known: it was brought up by an older sandpit, which did not keep it in a file\nhint: `sandpit up {biome}` (`sandpit deploy {biome}` for an environment) keeps it; its components restart once, with DATABASE_URL from that file"
        );
    };
    let url = fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the database URL of `{biome}` from {}",
            path.display()
        )
    })?;
    Ok(url.trim_end().to_owned())
}

async fn instance(
    context: &Context,
    spec: &Spec,
    env: &Name,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<Instance> {
    let project = &spec.project.name;
    let configured = spec
        .environments
        .get(env)
        .and_then(|e| e.database_url.clone());
    let external_url = match configured {
        Some(DatabaseUrl::Literal(url)) => Some(url),
        Some(DatabaseUrl::FromEnv(variable)) => Some(context.process_env.get(&variable).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "[environments.{env}.database] url_env names `{variable}`, which is not set\nhint: export {variable}=postgres://admin@host:5432/postgres"
            )
        })?),
        None => None,
    };
    if let Some(url) = external_url {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            anyhow::anyhow!(
                "the database URL of environment `{env}` ({}) is invalid: {e}",
                RedactedUrl(&url)
            )
        })?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        return Ok(Instance {
            admin_url: url,
            host,
            port,
            server_log: None,
            timeouts: context.database_timeouts,
        });
    }

    let path_variable = context
        .base_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let binaries =
        PgBinaries::locate_configured(context.pg_bin_dir.as_deref(), path_variable.as_deref())?;
    let dir = cluster_dir(context, project, env);
    // Of many `up`s at once, one initialises the cluster; the others wait for it and use it.
    let cluster =
        tokio::task::spawn_blocking(move || EmbeddedCluster::prepare(&dir, &binaries)).await??;
    let fresh = cluster.created;
    if fresh {
        on_event(&format!(
            "initialised the PostgreSQL instance of `{env}` in {}",
            cluster.data_dir.display()
        ));
        if let Some(notice) = &cluster.notice {
            on_event(notice);
        }
    }
    let launch = cluster.launch();
    let spec = InstanceSpec {
        key: InstanceKey {
            project: project.clone(),
            env: env.clone(),
            name: Name::parse("postgres").expect("valid"),
        },
        program: Program::Exec {
            path: launch.program,
            args: launch.args,
        },
        working_dir: launch.working_dir,
        env: launch.env,
        run_as: launch.uid.zip(launch.gid),
        port: cluster.port,
        log: cluster.log_file(),
        stop_signal: "SIGINT".into(),
        start_timeout_secs: 60,
    };
    let client = daemon_connection::started(context).await?;
    daemon_connection::answer(client.ensure_instance(spec, |_, m| on_event(m)).await)?;
    cluster
        .wait_ready(context.database_timeouts.statement)
        .await?;
    if fresh {
        cluster
            .admin(context.database_timeouts)
            .await?
            .restrict_maintenance_databases()
            .await?;
    }
    Ok(Instance {
        admin_url: cluster.admin_url(),
        host: "127.0.0.1".into(),
        port: cluster.port,
        server_log: Some(cluster.log_file()),
        timeouts: context.database_timeouts,
    })
}

/// The size of each of `names` on the environment's instance, in one query; `None` when it
/// cannot be told. Reads never start anything: an embedded instance is asked only when
/// `embedded_running` (the daemon reports it running) and its cluster exists; an external one
/// (`[environments.<env>.database] url`) is always asked. Bounded by the usual database
/// timeouts.
pub(crate) async fn sizes_if_running(
    context: &Context,
    spec: &Spec,
    env: &Name,
    names: &[String],
    embedded_running: bool,
) -> Option<BTreeMap<String, u64>> {
    let configured = spec
        .environments
        .get(env)
        .and_then(|e| e.database_url.clone());
    let (url, server_log) = match configured {
        Some(DatabaseUrl::Literal(url)) => (url, None),
        Some(DatabaseUrl::FromEnv(variable)) => (context.process_env.get(&variable)?.clone(), None),
        None if embedded_running => {
            let dir = cluster_dir(context, &spec.project.name, env);
            let url = sandpit_database::cluster::existing_admin_url(&dir)?;
            (url, Some(dir.join("postgres.log")))
        }
        None => return None,
    };
    let admin = Admin::connect_with(&url, context.database_timeouts, server_log.as_deref())
        .await
        .ok()?;
    admin.database_sizes(names).await.ok()
}

/// How long a rehearsal or an in-place migration waits for a lock a running service holds before
/// it gives up (and the deployment fails, changing nothing more): long enough for ordinary
/// transactions to finish, short enough that the services queued behind the migration's lock
/// request are not stalled for long.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the `[database] seed` runs into this target's database when it is created: always
/// for biomes, for an environment's base only when it opts in with `seed = true`.
pub fn seeds(spec: &Spec, env: &Name, biome: &Name) -> bool {
    biome != env || spec.environments.get(env).is_some_and(|e| e.seed)
}

fn file_list(files: &[MigrationFile]) -> String {
    files
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes sure the target (a biome, or an environment's base) has its database: cloned from the
/// template of the commit's migrations when it has none (or `reset` asks for a new one), else
/// brought forward in place — the commit's new migrations rehearsed against its data in a
/// transaction that is rolled back, then applied one transaction each. Rehearsals and
/// migrations are reported through `on_step`. `None` when `sandpit.toml` has no `[database]`.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    context: &Context,
    spec: &Spec,
    source: &crate::deployment::DatabaseSource<'_>,
    env: &Name,
    biome: &Name,
    seed: bool,
    on_event: &mut dyn FnMut(&str),
    on_step: &mut dyn FnMut(StepKind, &str) -> anyhow::Result<()>,
) -> anyhow::Result<Option<BiomeDatabaseGrant>> {
    if spec.database.is_none() {
        return Ok(None);
    }
    let project = &spec.project.name;
    let (mut migrations, shared) = crate::sql_files::read_sql(&source.sql, spec)?;
    if !seed {
        migrations.seed = None;
    }
    let instance = instance(context, spec, env, on_event).await?;
    let admin = instance.admin().await?;
    let database = names::biome_database(project, biome);
    let mut exists = admin.database_exists(&database).await?;
    if exists && source.reset {
        on_event(&format!(
            "dropping {database} to clone it again from the template"
        ));
        admin.drop_biome_database(project, biome).await?;
        exists = false;
    }
    let template = if exists {
        migrate_in_place(
            &admin,
            project,
            env,
            biome,
            &database,
            &migrations,
            on_event,
            on_step,
        )
        .await?;
        match admin.template_of(&database).await? {
            Some(template) => template,
            None => names::template_database(project, &migrations.content_hash()),
        }
    } else {
        admin.ensure_template(project, &migrations).await?
    };
    let password = load_or_create_password(&password_file(context, project, env, biome))?;
    let granted = admin
        .ensure_biome_database(project, biome, &template, &password)
        .await?;
    let url = libpq_url(
        &instance.host,
        instance.port,
        &granted.role,
        &password,
        &granted.database,
    );
    let mut values = BTreeMap::new();
    values.insert("DATABASE_URL", url);
    if let Some(shared) = shared {
        admin.ensure_shared_database(project, &shared).await?;
        admin.grant_shared_read(project, &granted.role).await?;
        let shared_url = libpq_url(
            &instance.host,
            instance.port,
            &granted.role,
            &password,
            &names::shared_database(project),
        );
        values.insert("SHARED_DATABASE_URL", shared_url);
    }
    let mut secret_env = BTreeMap::new();
    for variable in SECRET_VARIABLES {
        let path = variable_file(context, project, env, biome, variable);
        match values.get(variable) {
            Some(value) => {
                keep_secret(&path, value)?;
                secret_env.insert(variable.to_owned(), path);
            }
            None => remove_if_present(&path)?,
        }
    }
    Ok(Some(BiomeDatabaseGrant {
        info: DatabaseInfo {
            name: granted.database,
            template: granted.template.as_str().to_owned(),
            url_file: secret_env.get("DATABASE_URL").cloned(),
        },
        secret_env,
    }))
}

/// Brings an existing database forward to the commit's migrations: refuses edited ones,
/// rehearses the new ones on the real data, then applies them.
#[allow(clippy::too_many_arguments)]
async fn migrate_in_place(
    admin: &Admin,
    project: &Name,
    env: &Name,
    biome: &Name,
    database: &str,
    migrations: &MigrationSet,
    on_event: &mut dyn FnMut(&str),
    on_step: &mut dyn FnMut(StepKind, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let who = if biome == env {
        format!("environment `{env}`")
    } else {
        format!("biome `{biome}`")
    };
    let plan = admin.plan_migrations(database, migrations).await?;
    if let Some(changed) = plan.changed.first() {
        let hint = if biome == env {
            "hint: restore the file as it was applied and put the change in a new migration file"
                .to_owned()
        } else {
            format!("hint: restore the file as it was applied and put the change in a new migration file, or start this biome's database over from the template with `sandpit up {biome} --reset-db` (its data will be lost)")
        };
        bail!(
            "migration `{}` was changed after it was applied to {who}'s database `{database}`: it was applied with sha256 {}, the commit has sha256 {}; applied migrations are never re-run or skipped{}\n{hint}",
            changed.file,
            changed.applied_checksum,
            changed.commit_checksum,
            if plan.changed.len() > 1 {
                format!(
                    " ({} more changed: {})",
                    plan.changed.len() - 1,
                    plan.changed[1..].iter().map(|c| c.file.as_str()).collect::<Vec<_>>().join(", ")
                )
            } else {
                String::new()
            }
        );
    }
    if !plan.ahead.is_empty() {
        on_event(&format!(
            "{who}'s database has {} migration(s) this commit does not have ({}); they stay applied",
            plan.ahead.len(),
            plan.ahead.join(", ")
        ));
    }
    if plan.pending.is_empty() {
        return Ok(());
    }
    let names = file_list(&plan.pending);
    on_event(&format!(
        "rehearsing {} new migration(s) on {who}'s data: {names}",
        plan.pending.len()
    ));
    if let Err(error) = admin.rehearse(database, &plan.pending, LOCK_TIMEOUT).await {
        on_step(StepKind::RehearsalFailed, &error.to_string())?;
        return Err(error.into());
    }
    on_step(
        StepKind::Rehearsed,
        &format!("rehearsed {names} on the data of `{database}` and rolled back: they apply"),
    )?;
    match admin
        .apply_in_place(project, biome, &plan.pending, LOCK_TIMEOUT)
        .await
    {
        Ok(applied) => {
            let applied = applied.join(", ");
            on_step(
                StepKind::Migrated,
                &format!("applied in place to `{database}`: {applied}"),
            )?;
            on_event(&format!("migrated {who}'s database in place: {applied}"));
            Ok(())
        }
        Err(error) => {
            on_step(
                StepKind::Migrated,
                &format!("migrating `{database}` in place failed: {error}"),
            )?;
            Err(error.into())
        }
    }
}

/// Drops the biome's database and role, if it ever got one. Idempotent.
pub async fn drop(
    context: &Context,
    spec: &Spec,
    env: &Name,
    biome: &Name,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<bool> {
    let project = &spec.project.name;
    let secret = password_file(context, project, env, biome);
    if !secret.exists() {
        return Ok(false);
    }
    let instance = instance(context, spec, env, on_event).await?;
    let admin = instance.admin().await?;
    admin.drop_biome_database(project, biome).await?;
    for variable in SECRET_VARIABLES {
        remove_if_present(&variable_file(context, project, env, biome, variable))?;
    }
    // Last: while it exists, the biome may still have a database (`may_have_database`).
    fs::remove_file(&secret).with_context(|| format!("cannot remove {}", secret.display()))?;
    Ok(true)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}
