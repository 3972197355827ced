//! A biome's database: the environment's PostgreSQL instance (embedded and run by the daemon, or
//! external), the template migrated from the commit's migrations, and the biome's own database
//! and login role cloned from it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sandpit_build::git::Repository;
use sandpit_database::{
    libpq_url, names, Admin, EmbeddedCluster, MigrationFile, MigrationSet, PgBinaries, RedactedUrl,
    Secret,
};
use sandpit_domain::Name;
use sandpit_runtime::process::Program;
use sandpit_runtime::protocol::{DatabaseInfo, InstanceKey, InstanceSpec, ReplyBody, Request};
use sandpit_spec::{DatabaseUrl, Spec};

use crate::daemon_connection;
use crate::Context;

/// What a biome's components are given.
#[derive(Debug, Clone)]
pub struct BiomeDatabaseGrant {
    /// `DATABASE_URL` and, with a shared data set, `SHARED_DATABASE_URL`.
    pub env: BTreeMap<String, String>,
    pub info: DatabaseInfo,
}

/// Where the environment's instance is and how to administer it.
struct Instance {
    admin_url: String,
    host: String,
    port: u16,
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

fn password_file(context: &Context, project: &Name, env: &Name, biome: &Name) -> PathBuf {
    context
        .home
        .join("projects")
        .join(project.as_str())
        .join("databases")
        .join(env.as_str())
        .join(format!("{biome}.password"))
}

/// The biome role's password, generated once and kept (0600) so `DATABASE_URL` stays the same
/// across `up`s and running components need not restart.
fn load_or_create_password(path: &Path) -> anyhow::Result<Secret> {
    if let Ok(existing) = fs::read_to_string(path) {
        if !existing.trim().is_empty() {
            return Ok(Secret::new(existing.trim()));
        }
    }
    let parent = path.parent().expect("password files live in a directory");
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    fs::set_permissions(parent, fs::Permissions::from_mode(0o700))?;
    let secret = Secret::generate().context("cannot generate a database password")?;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(secret.expose().as_bytes())?;
    Ok(secret)
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
        });
    }

    let path_variable = context
        .base_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let binaries = PgBinaries::locate(path_variable.as_deref())?;
    let dir = cluster_dir(context, project, env);
    let fresh = !dir.join("data").join("PG_VERSION").is_file();
    let cluster = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || EmbeddedCluster::prepare(&dir, &binaries)).await??
    };
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
        log: cluster.state_dir.join("postgres.log"),
        stop_signal: "SIGINT".into(),
        start_timeout_secs: 60,
    };
    match daemon_connection::request(
        context,
        &Request::EnsureInstance { instance: spec },
        |_, m| on_event(m),
    )
    .await?
    {
        ReplyBody::Instance(_) => {}
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let admin_url = cluster.admin_url();
    if fresh {
        Admin::connect(&admin_url)
            .await?
            .restrict_maintenance_databases()
            .await?;
    }
    Ok(Instance {
        admin_url,
        host: "127.0.0.1".into(),
        port: cluster.port,
    })
}

/// Reads the migrations, seed and shared data set as they are at `treeish`.
fn read_sql(
    repo: &Repository,
    treeish: &str,
    spec: &Spec,
) -> anyhow::Result<(MigrationSet, Option<MigrationFile>)> {
    let database = spec.database.as_ref().expect("checked by the caller");
    let in_repo = |path: &str| {
        if repo.prefix().is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", repo.prefix())
        }
    };
    let names = repo.list_files(treeish, &in_repo(&database.migrations))?.ok_or_else(|| {
        anyhow::anyhow!(
            "[database] migrations = \"{}\" is not a directory in the commit\nhint: create it with at least one .sql file and commit it",
            database.migrations
        )
    })?;
    let mut files = Vec::new();
    for name in names.into_iter().filter(|n| n.ends_with(".sql")) {
        let sql = repo
            .read_file(
                treeish,
                &in_repo(&format!("{}/{name}", database.migrations)),
            )?
            .unwrap_or_default();
        files.push((name, sql));
    }
    let read_named = |path: &Option<String>,
                      key: &str|
     -> anyhow::Result<Option<(String, String)>> {
        match path {
            None => Ok(None),
            Some(path) => match repo.read_file(treeish, &in_repo(path))? {
                Some(sql) => Ok(Some((path.clone(), sql))),
                None => bail!("[database] {key} = \"{path}\" does not exist in the commit\nhint: commit it, or remove the key"),
            },
        }
    };
    let seed = read_named(&database.seed, "seed")?;
    let shared =
        read_named(&database.shared, "shared")?.map(|(name, sql)| MigrationFile::new(name, sql));
    Ok((MigrationSet::from_files(files, seed), shared))
}

/// Makes sure the biome has its database, cloned from the template of the commit's migrations.
/// `None` when `sandpit.toml` has no `[database]`.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    context: &Context,
    spec: &Spec,
    repo: &Repository,
    treeish: &str,
    env: &Name,
    biome: &Name,
    reset: bool,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<Option<BiomeDatabaseGrant>> {
    if spec.database.is_none() {
        return Ok(None);
    }
    let project = &spec.project.name;
    let (migrations, shared) = read_sql(repo, treeish, spec)?;
    let instance = instance(context, spec, env, on_event).await?;
    let admin = Admin::connect(&instance.admin_url).await?;
    let template = admin.ensure_template(project, &migrations).await?;
    let database = names::biome_database(project, biome);
    if admin.database_exists(&database).await? {
        if let Some(existing) = admin.template_of(&database).await? {
            if existing != template {
                if !reset {
                    bail!(
                        "the migrations changed since biome `{biome}`'s database was cloned (from {}; they now give {})\nhint: run `sandpit up {biome} --reset-db` to re-clone it from the new template; its data will be lost",
                        existing.as_str(),
                        template.as_str()
                    );
                }
                on_event(&format!("re-cloning {database} from {}", template.as_str()));
                admin.drop_biome_database(project, biome).await?;
            }
        }
    }
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
    let mut env_vars = BTreeMap::new();
    env_vars.insert("DATABASE_URL".to_owned(), url.clone());
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
        env_vars.insert("SHARED_DATABASE_URL".to_owned(), shared_url);
    }
    Ok(Some(BiomeDatabaseGrant {
        env: env_vars,
        info: DatabaseInfo {
            name: granted.database,
            template: granted.template.as_str().to_owned(),
            url,
        },
    }))
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
    let admin = Admin::connect(&instance.admin_url).await?;
    admin.drop_biome_database(project, biome).await?;
    fs::remove_file(&secret).with_context(|| format!("cannot remove {}", secret.display()))?;
    Ok(true)
}
