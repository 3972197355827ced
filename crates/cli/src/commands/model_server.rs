//! `sandpit model-server --port P`: an environment's shared model endpoint. Started and supervised
//! by the daemon (one per environment); not meant to be run by hand.
//!
//! Registrations are kept as files in `--registrations DIR` (written by whoever registers, see
//! `sandpit_ops::models`) and read back at start, so a restarted endpoint serves what it served
//! and knows the same biomes. A file that cannot be used is logged and skipped: its biome is
//! answered as unknown, the others keep being served.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use sandpit_models::{AppState, ModelRef, OrtEngine, ServerConfig};
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
        ..ServerConfig::default()
    };
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
            let models: BTreeMap<String, ModelRef> = registrations
                .into_iter()
                .map(|m| {
                    (
                        m.name,
                        ModelRef {
                            artifact: m.artifact,
                            digest: m.digest,
                            path: m.path,
                            file: m.file,
                        },
                    )
                })
                .collect();
            tracing::info!("restoring {} model(s) of {}", models.len(), saved.label);
            state.register(saved.biome(), models);
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
    axum::serve(listener, sandpit_models::router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(ExitCode::SUCCESS)
}
