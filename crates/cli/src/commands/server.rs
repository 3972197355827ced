//! `sandpit server [--listen ADDR] [--tls-cert F --tls-key F] [--public-url URL]`: the team
//! control plane's HTTP API in the foreground, over this `$SANDPIT_HOME`, until Ctrl-C or
//! SIGTERM, with the pipeline queue's worker (`sandpit_server::queue`) and the report worker
//! (`sandpit_server::reports`) on threads of their own.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_ops::Context;
use sandpit_server::AppState;
use tokio::net::TcpListener;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on; port 0 picks a free one (the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7780")]
    listen: SocketAddr,
    /// Serve https with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The server's address as its users reach it, for the links reports to GitLab carry to
    /// pipelines (default: the address it listens on).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Where deployments, pipelines, tokens and hook deliveries are recorded: a
    /// postgres://USER:PASSWORD@HOST:PORT/DB URL (several servers may share one; each
    /// pipeline runs on exactly one of them) or a SQLite file (default: SANDPIT_STATE, else
    /// $SANDPIT_HOME/state.db).
    #[arg(long, value_name = "URL")]
    state: Option<String>,
}

pub async fn exec(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut context = context.clone();
    if let Some(raw) = &args.state {
        context.state = sandpit_state::StateLocation::parse(raw, &std::env::current_dir()?)
            .map_err(|error| failure(ErrorKind::InvalidInput, format!("--state: {error}")))?;
    }
    // Reached (and migrated) now, so a wrong URL or a dead database stops the start with a
    // message instead of failing the first request.
    sandpit_ops::deployment::state_store(&context)
        .with_context(|| format!("cannot open the state store {}", context.state))?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            sandpit_http::Tls::from_pem_files(cert, key)
                .map_err(|e| failure(ErrorKind::InvalidInput, e.to_string()))?,
        ),
        _ => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| cannot_listen(args.listen, &error))?;
    let address = listener.local_addr()?;
    let mut stop = shutdown_signal()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match &args.public_url {
        Some(url) => public_url(url)?,
        None => format!("{scheme}://{address}"),
    };

    // The server supervises this machine's biomes as the CLI does: through the daemon, started
    // now (if none runs) so that what ran before comes back and stays supervised.
    sandpit_ops::daemon_connection::started(&context)
        .await
        .context("cannot start the supervisor daemon")?;

    // Reports are sent by a worker of their own; every context that runs or decides a
    // pipeline rings it when it enqueues one.
    context.reporting.public_url = Some(public_url);
    context.reporting.bell = sandpit_server::reports::start(context.clone())?;
    let context = &context;

    // Pipelines an earlier server left running are failed now, before any is queued.
    let (queue, recovered) = sandpit_server::queue::Queue::start(context.clone())?;
    for id in recovered {
        println!("pipeline #{id} was running when the server stopped: marked failed (`sandpit pipeline retry {id}` runs it again)");
    }
    let admin_token = sandpit_ops::tokens::admin_token_path(&context.home);
    match sandpit_ops::tokens::first_admin_token(context)? {
        Some(path) => println!(
            "admin token written to {} (read it once: `sandpit login --server URL --token-file {}`)",
            path.display(),
            path.display()
        ),
        None => println!("admin token: {} (from an earlier start)", admin_token.display()),
    }
    println!("state: {} ({})", context.state, context.state.kind());
    println!("listening on {scheme}://{address}");
    std::io::stdout().flush()?;

    let app = sandpit_server::app(AppState::serving(context.clone(), queue));
    let limits = sandpit_server::limits();
    let shutdown = async move {
        stop.as_mut().await;
        tracing::info!("stopping: requests in progress finish, no new ones are taken");
    };
    match tls {
        Some(tls) => sandpit_http::serve_with(listener, tls, app, limits, shutdown).await,
        None => sandpit_http::serve(listener, app, limits, shutdown).await,
    }
    .context("the server failed")?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `--public-url`, checked: an http(s) URL, kept without a trailing `/`.
fn public_url(raw: &str) -> anyhow::Result<String> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !raw.contains(['?', '#', ' ']) => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => Err(failure(
            ErrorKind::InvalidInput,
            format!(
                "--public-url {} is not an http(s) URL of this server\nhint: e.g. --public-url https://sandpit.example.com",
                sandpit_domain::quoted(raw)
            ),
        )),
    }
}

fn cannot_listen(address: SocketAddr, error: &std::io::Error) -> anyhow::Error {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another process listens on port {} (an earlier `sandpit server`?); stop it or pick another with --listen {}:PORT",
            address.port(),
            address.ip()
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine; e.g. --listen 127.0.0.1:{}",
            address.ip(),
            address.port()
        ),
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges; pick a port from 1024 up".to_owned()
        }
        _ => "pick another address with --listen HOST:PORT".to_owned(),
    };
    failure(
        ErrorKind::Unavailable,
        format!("cannot listen on {address}: {error}\nhint: {hint}"),
    )
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
fn shutdown_signal(
) -> anyhow::Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_an_http_url_kept_without_its_last_slash() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://sandpit.example.com/",
                Some("https://sandpit.example.com"),
            ),
            ("http://10.0.0.5:7780", Some("http://10.0.0.5:7780")),
            (
                "https://example.com/sandpit",
                Some("https://example.com/sandpit"),
            ),
            ("sandpit.example.com", None),
            ("ftp://sandpit.example.com", None),
            ("https://", None),
            ("https:///path", None),
            ("https://x.example?q=1", None),
        ];
        for (raw, expect) in cases {
            assert_eq!(public_url(raw).ok().as_deref(), *expect, "{raw}");
        }
        let refused = public_url("nope").unwrap_err().to_string();
        assert!(
            refused.contains("--public-url `nope` is not an http(s) URL"),
            "{refused}"
        );
    }
}
