//! `sandpit model-server --port P`: an environment's shared model endpoint. Started and supervised
//! by the daemon (one per environment); not meant to be run by hand.
//!
//! Registrations are kept as files in `--registrations DIR` (written by whoever registers, see
//! `sandpit_ops::models`) and read back at start, so a restarted endpoint serves what it served
//! and knows the same biomes. A file that cannot be used is logged and skipped: its biome is
//! answered as unknown, the others keep being served. Restored registrations go through the
//! same checks as the registration API: an artifact outside the `--store`s is refused.
//!
//! Registration needs the bearer token in `--token-file` (its path is on the command line,
//! never the token). The HTTP limits (timeouts, connection cap, keep-alive, body size) default
//! to `sandpit_http::Limits::default()`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sandpit_models::{AppState, ArtifactStores, Limits, OrtEngine, RegisteredModel, ServerConfig};
use sandpit_ops::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Loopback port to listen on.
    #[arg(long)]
    port: u16,
    /// Memory budget of loaded models, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024 * 1024)]
    max_memory: u64,
    /// Most models loaded at once.
    #[arg(long, default_value_t = 64)]
    max_models: usize,
    /// Directory of saved registrations (`<biome>.json`, `_base.json`).
    #[arg(long)]
    registrations: Option<PathBuf>,
    /// File holding the registration API's bearer token (mode 0600, owned by this user);
    /// without it every registration is refused.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// An artifact store registered artifacts may be in (repeat for each store).
    #[arg(long = "store")]
    stores: Vec<PathBuf>,
    /// How long a client may take to send a request's headers, in milliseconds.
    #[arg(long, default_value_t = millis(Limits::default().header_read_timeout))]
    header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body after its headers, in milliseconds.
    #[arg(long, default_value_t = millis(Limits::default().body_read_timeout))]
    body_read_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept, in milliseconds.
    #[arg(long, default_value_t = millis(Limits::default().idle_timeout))]
    idle_timeout_ms: u64,
    /// Most connections served at once; more wait in the listen queue.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Most requests served on one keep-alive connection.
    #[arg(long, default_value_t = Limits::default().max_requests_per_connection)]
    max_requests_per_connection: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body: usize,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub async fn exec(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let library = sandpit_ops::models::onnxruntime_library(context)?;
    let engine = Arc::new(OrtEngine::new(&library)?);
    let config = ServerConfig {
        max_memory_bytes: args.max_memory,
        max_models: args.max_models,
        limits: Limits {
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
            idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            max_connections: args.max_connections,
            max_requests_per_connection: args.max_requests_per_connection,
            max_body_bytes: args.max_body,
        },
        token_file: args.token_file.clone(),
        stores: ArtifactStores::new(args.stores.clone()),
        ..ServerConfig::default()
    };
    config.limits.check()?;
    if config.token_file.is_none() {
        tracing::warn!("no --token-file: every registration will be refused");
    }
    let state = AppState::new(config, engine);
    if let Some(dir) = &args.registrations {
        for saved in sandpit_ops::models::read_saved(dir)? {
            let registrations = match &saved.models {
                Ok(registrations) => registrations.clone(),
                Err(reason) => {
                    tracing::error!(
                        "not restoring the saved registration {}: {reason}",
                        saved.path.display()
                    );
                    continue;
                }
            };
            let models: Vec<RegisteredModel> = registrations
                .into_iter()
                .map(|m| RegisteredModel {
                    name: m.name,
                    artifact: m.artifact,
                    digest: m.digest,
                    path: m.path,
                    file: m.file,
                })
                .collect();
            match state.register(saved.biome(), models) {
                Ok(count) => tracing::info!("restored {count} model(s) of {}", saved.label),
                Err(refusal) => tracing::error!(
                    "not restoring the saved registration {}: {refusal}",
                    saved.path.display()
                ),
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    tracing::info!(
        "model endpoint listening on 127.0.0.1:{} (ONNX Runtime {})",
        args.port,
        library.display()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        let _ = terminate.recv().await;
    };
    state.serve(listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
