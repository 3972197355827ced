//! The `database` section: how long a biome's database takes to create (and tear down) from a
//! template of about 10 MiB, against a bare `CREATE DATABASE … TEMPLATE` + `DROP DATABASE` of
//! the same template on the same server, interleaved in the same run.
//!
//! Sandpit's side is exactly what `up` and `down` call: `Admin::ensure_biome_database` (advisory
//! lock, the clone with the role made alongside on a second session, the grants; the clone's
//! objects are the template's `pg_database_owner`'s, so nothing is handed over) and
//! `Admin::drop_biome_database`.
//! Where its time goes comes from the crate's own step events (`sandpit_database::steps`).
//! The bare clone is measured with both strategies, `WAL_LOG` (PostgreSQL 15's default) and
//! `FILE_COPY` (which checkpoints the whole instance before and after copying).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sandpit_database::{
    libpq_url, quote_identifier, steps, EmbeddedCluster, MigrationSet, PgBinaries, Secret,
    TemplateName,
};
use sandpit_domain::Name;
use tokio_postgres::{Client, NoTls};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::Layer;

/// Runs of each side. Each is a clone and a drop (a checkpoint) of about 20 MiB, which varies
/// by half from run to run on a shared two-core machine; 21 give a steadier median and a p90 that
/// is not simply the slowest run.
const RUNS: usize = 21;

/// Rows in the template's table: with its two indexes about 10 MiB of user data.
const ROWS: u32 = 80_000;

pub fn run() -> anyhow::Result<()> {
    let steps = StepLog::install()?;
    let server = Server::start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(measure(&server, &steps));
    drop(server);
    report?.print();
    Ok(())
}

/// The embedded instance, started from the crate's own [`EmbeddedCluster::launch`] as the
/// supervisor would (as the `postgres` user when the bench runs as root); stopped when dropped.
struct Server {
    cluster: EmbeddedCluster,
    child: Child,
    _directory: tempfile::TempDir,
}

impl Server {
    fn start() -> anyhow::Result<Server> {
        // The server user must be able to reach its data directory: the bench's scratch
        // directory is private (0700), so the cluster gets a traversable one of its own.
        let directory = tempfile::Builder::new()
            .prefix("spbench-db-")
            .tempdir_in("/tmp")?;
        fs::set_permissions(directory.path(), fs::Permissions::from_mode(0o755))?;
        let binaries = PgBinaries::locate_configured(
            configured_pg_bin().as_deref().map(Path::new),
            path_variable().as_deref(),
        )?;
        let cluster = EmbeddedCluster::prepare(&directory.path().join("state"), &binaries)?;
        let launch = cluster.launch();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cluster.log_file())?;
        let mut command = launch.foreground(&log)?;
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.program.display()))?;
        let server = Server {
            cluster,
            child,
            _directory: directory,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if let Err(error) = runtime.block_on(server.cluster.wait_ready(Duration::from_secs(60))) {
            let log = fs::read_to_string(server.cluster.log_file()).unwrap_or_default();
            anyhow::bail!("{error}\n--- postgres.log ---\n{log}");
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let _ = self.child.wait();
    }
}

#[allow(clippy::disallowed_methods)]
fn configured_pg_bin() -> Option<String> {
    std::env::var("SANDPIT_PG_BIN").ok()
}

#[allow(clippy::disallowed_methods)]
fn path_variable() -> Option<String> {
    std::env::var("PATH").ok()
}

/// The step events `sandpit_database` emits, collected as (operation, step, time).
#[derive(Clone, Default)]
struct StepLog {
    events: Arc<Mutex<Vec<(String, String, Duration)>>>,
}

impl StepLog {
    fn install() -> anyhow::Result<StepLog> {
        let log = StepLog::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(log.clone()))
            .context("cannot install the step collector")?;
        Ok(log)
    }

    fn take(&self) -> Vec<(String, String, Duration)> {
        std::mem::take(&mut *self.events.lock().expect("step log"))
    }
}

impl<S: tracing::Subscriber> Layer<S> for StepLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == steps::TARGET
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            operation: String,
            step: String,
            micros: u64,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                match field.name() {
                    "operation" => self.operation = value.to_owned(),
                    "step" => self.step = value.to_owned(),
                    _ => {}
                }
            }
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "micros" {
                    self.micros = value;
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.events.lock().expect("step log").push((
            fields.operation,
            fields.step,
            Duration::from_micros(fields.micros),
        ));
    }
}

/// A create and a drop.
#[derive(Clone, Copy)]
struct Cycle {
    create: Duration,
    drop: Duration,
}

#[derive(Default)]
struct Side {
    cycles: Vec<Cycle>,
}

impl Side {
    fn create(&self) -> Vec<Duration> {
        self.cycles.iter().map(|cycle| cycle.create).collect()
    }
    fn drop(&self) -> Vec<Duration> {
        self.cycles.iter().map(|cycle| cycle.drop).collect()
    }
    fn total(&self) -> Vec<Duration> {
        self.cycles
            .iter()
            .map(|cycle| cycle.create + cycle.drop)
            .collect()
    }
}

struct Report {
    user_data_bytes: i64,
    database_bytes: i64,
    wal_log: Side,
    file_copy: Side,
    sandpit: Side,
    /// (operation, step) → each run's time.
    steps: BTreeMap<(String, String), Vec<Duration>>,
    step_order: Vec<(String, String)>,
}

async fn measure(server: &Server, step_log: &StepLog) -> anyhow::Result<Report> {
    let admin = server.cluster.admin(Default::default()).await?;
    admin.restrict_maintenance_databases().await?;
    let project = Name::parse("bench").map_err(anyhow::Error::msg)?;
    let biome = Name::parse("clone").map_err(anyhow::Error::msg)?;
    let template = admin.ensure_template(&project, &template_set()).await?;
    let catalog = connect(&server.cluster.admin_url()).await?;
    let (user_data_bytes, database_bytes) = sizes(server, &catalog, &template).await?;

    let password = Secret::new("bench-clone-password");
    let mut report = Report {
        user_data_bytes,
        database_bytes,
        wal_log: Side::default(),
        file_copy: Side::default(),
        sandpit: Side::default(),
        steps: BTreeMap::new(),
        step_order: Vec::new(),
    };
    step_log.take();
    for run in 0..RUNS {
        // Rotate who goes first, so none always follows another's checkpoint.
        for turn in 0..3 {
            match (run + turn) % 3 {
                0 => report
                    .wal_log
                    .cycles
                    .push(bare_cycle(&catalog, &template, "WAL_LOG").await?),
                1 => report
                    .file_copy
                    .cycles
                    .push(bare_cycle(&catalog, &template, "FILE_COPY").await?),
                _ => {
                    let start = Instant::now();
                    admin
                        .ensure_biome_database(&project, &biome, &template, &password)
                        .await?;
                    let create = start.elapsed();
                    let start = Instant::now();
                    admin.drop_biome_database(&project, &biome).await?;
                    let drop = start.elapsed();
                    report.sandpit.cycles.push(Cycle { create, drop });
                    for (operation, step, time) in step_log.take() {
                        let key = (operation, step);
                        if !report.step_order.contains(&key) {
                            report.step_order.push(key.clone());
                        }
                        report.steps.entry(key).or_default().push(time);
                    }
                }
            }
        }
    }
    Ok(report)
}

/// `CREATE DATABASE … TEMPLATE … STRATEGY <strategy>` and `DROP DATABASE` on one open
/// connection, nothing else.
async fn bare_cycle(
    client: &Client,
    template: &TemplateName,
    strategy: &str,
) -> anyhow::Result<Cycle> {
    let copy = quote_identifier("bench_bare_clone");
    let start = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE DATABASE {copy} TEMPLATE {} STRATEGY {strategy}",
            quote_identifier(template.as_str())
        ))
        .await?;
    let create = start.elapsed();
    let start = Instant::now();
    client
        .batch_execute(&format!("DROP DATABASE {copy}"))
        .await?;
    Ok(Cycle {
        create,
        drop: start.elapsed(),
    })
}

/// A table of assays with a primary key and a secondary index, seeded with [`ROWS`] rows.
fn template_set() -> MigrationSet {
    MigrationSet::from_files(
        [(
            "001_assays.sql".to_owned(),
            "CREATE TABLE assays (\n\
             \x20   id bigserial PRIMARY KEY,\n\
             \x20   sample text NOT NULL,\n\
             \x20   grade numeric NOT NULL,\n\
             \x20   taken_at timestamptz NOT NULL\n\
             );\n\
             CREATE INDEX assays_by_sample ON assays (sample, taken_at);\n"
                .to_owned(),
        )],
        Some((
            "seed.sql".to_owned(),
            format!(
                "INSERT INTO assays (sample, grade, taken_at)\n\
                 SELECT 'sample-' || (i % 7919), (i % 997) / 10.0, \
                 timestamptz '2024-01-01' + i * interval '1 minute'\n\
                 FROM generate_series(1, {ROWS}) AS i;\n"
            ),
        )),
    )
}

/// The template's tables and indexes, and the whole database (catalogs included), in bytes.
async fn sizes(
    server: &Server,
    catalog: &Client,
    template: &TemplateName,
) -> anyhow::Result<(i64, i64)> {
    let database: i64 = catalog
        .query_one("SELECT pg_database_size($1::text)", &[&template.as_str()])
        .await?
        .get(0);
    // The template refuses connections: look at a clone of it.
    let probe = "bench_size_probe";
    catalog
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_identifier(probe),
            quote_identifier(template.as_str())
        ))
        .await?;
    let cluster = &server.cluster;
    let inside = connect(&libpq_url(
        "127.0.0.1",
        cluster.port,
        &cluster.admin_user,
        &cluster.admin_password,
        probe,
    ))
    .await?;
    let user_data: i64 = inside
        .query_one(
            "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname = 'public'",
            &[],
        )
        .await?
        .get(0);
    drop(inside);
    catalog
        .batch_execute(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote_identifier(probe)
        ))
        .await?;
    Ok((user_data, database))
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The nearest-rank percentile `percent` of `samples`.
fn percentile(mut samples: Vec<Duration>, percent: usize) -> Duration {
    samples.sort();
    let rank = (samples.len() * percent).div_ceil(100).max(1);
    samples[rank - 1]
}

fn median(samples: Vec<Duration>) -> Duration {
    crate::median(samples)
}

fn median_ratio(mut ratios: Vec<f64>) -> f64 {
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

impl Report {
    fn print(&self) {
        let mib = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
        println!(
            "biome database from a template of {:.1} MiB of tables and indexes ({:.1} MiB with \
             its catalogs), {RUNS} runs each, interleaved (median / p90, ms):",
            mib(self.user_data_bytes),
            mib(self.database_bytes)
        );
        println!(
            "  {:<52} {:>15} {:>15} {:>15}",
            "", "create", "drop", "create + drop"
        );
        let row = |label: &str, side: &Side| {
            let cell = |samples: Vec<Duration>| {
                format!(
                    "{:>6.1} / {:>6.1}",
                    millis(median(samples.clone())),
                    millis(percentile(samples, 90))
                )
            };
            println!(
                "  {label:<52} {:>15} {:>15} {:>15}",
                cell(side.create()),
                cell(side.drop()),
                cell(side.total())
            );
        };
        row(
            "bare CREATE DATABASE … TEMPLATE (WAL_LOG) + DROP",
            &self.wal_log,
        );
        row("bare … STRATEGY FILE_COPY + DROP", &self.file_copy);
        row(
            "sandpit ensure_biome_database + drop_biome_database",
            &self.sandpit,
        );
        let ratio = |ours: Vec<Duration>, bare: Vec<Duration>| {
            median(ours).as_secs_f64() / median(bare).as_secs_f64()
        };
        println!(
            "  ratio (sandpit / bare): {:.2} (create + drop; create alone {:.2}, drop alone {:.2})",
            ratio(self.sandpit.total(), self.wal_log.total()),
            ratio(self.sandpit.create(), self.wal_log.create()),
            ratio(self.sandpit.drop(), self.wal_log.drop()),
        );
        // Each sandpit cycle against the bare one next to it in time, which the machine's load
        // drifting over the run affects least.
        let paired: Vec<f64> = self
            .sandpit
            .total()
            .iter()
            .zip(self.wal_log.total())
            .map(|(ours, bare)| ours.as_secs_f64() / bare.as_secs_f64())
            .collect();
        println!(
            "  median of the per-run ratios (sandpit / bare, create + drop): {:.2}",
            median_ratio(paired)
        );
        println!(
            "  FILE_COPY / WAL_LOG clone: {:.2} (create + drop {:.2})",
            ratio(self.file_copy.create(), self.wal_log.create()),
            ratio(self.file_copy.total(), self.wal_log.total()),
        );
        println!("  where sandpit's time goes (median per step, ms):");
        let mut operation_shown = None;
        for key in &self.step_order {
            let (operation, step) = key;
            if operation_shown != Some(operation) {
                println!("    {operation}:");
                operation_shown = Some(operation);
            }
            let samples = self.steps[key].clone();
            println!(
                "      {step:<22} {:>6.1} / {:>6.1}",
                millis(median(samples.clone())),
                millis(percentile(samples, 90))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p90_of_eleven_is_the_tenth_fastest() {
        let samples: Vec<Duration> = (1..=11).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(samples.clone(), 90), Duration::from_millis(10));
        assert_eq!(percentile(samples, 50), Duration::from_millis(6));
    }
}
