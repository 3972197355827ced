//! The backend as the daemon hosts it: on 127.0.0.1, on a port chosen once (outside the
//! ephemeral range) and kept in `runtime/terraform-state.json`, so that the addresses written
//! into Terraform's configuration stay valid across daemon restarts. [`endpoint`] is how the
//! rest of sandpit learns the address.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::store::{StateStore, DEFAULT_KEPT_VERSIONS};

/// Where the backend's port is kept, under `$SANDPIT_HOME`.
pub const ENDPOINT_FILE: &str = "runtime/terraform-state.json";

/// How many fresh ports are tried before giving up (another process may take one between
/// the offer and the bind).
const PORT_ATTEMPTS: usize = 8;

/// The states of a `$SANDPIT_HOME`.
pub fn states_root(home: &Path) -> PathBuf {
    home.join("terraform").join("states")
}

/// The store the daemon serves for `home` (also what `sandpit tf` reads in-process).
pub fn home_store(home: &Path) -> StateStore {
    StateStore::new(states_root(home), DEFAULT_KEPT_VERSIONS)
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedEndpoint {
    port: u16,
}

/// The backend's address for `home` (written once the daemon bound it); `None` when no daemon
/// has hosted it yet. The daemon may not be running now: callers start it first.
pub fn endpoint(home: &Path) -> io::Result<Option<SocketAddr>> {
    let path = home.join(ENDPOINT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let saved: SavedEndpoint = serde_json::from_slice(&bytes).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not the backend's endpoint ({error}); restarting the daemon writes it again",
                path.display()
            ),
        )
    })?;
    Ok(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, saved.port))))
}

/// A backend serving `home`'s states.
#[derive(Debug)]
pub struct Hosted {
    pub addr: SocketAddr,
    /// Set when the kept port was taken by someone else and the backend moved: what to log.
    pub moved: Option<String>,
}

/// Binds the backend (its kept port, else a new one, then kept), writes [`ENDPOINT_FILE`] and
/// serves `home`'s states on the current tokio runtime until the process ends.
pub async fn host(home: &Path) -> io::Result<Hosted> {
    let kept = endpoint(home).ok().flatten();
    let mut moved = None;
    let mut listener = None;
    if let Some(addr) = kept {
        match TcpListener::bind(addr).await {
            Ok(bound) => listener = Some(bound),
            Err(error) => {
                moved = Some(format!(
                    "the terraform state backend could not listen on its port {} again ({error}); it moved to a new port, and Terraform configurations holding the old address must be given the new one",
                    addr.port()
                ))
            }
        }
    }
    let listener = match listener {
        Some(listener) => listener,
        None => bind_new().await?,
    };
    let addr = listener.local_addr()?;
    let bytes =
        serde_json::to_vec(&SavedEndpoint { port: addr.port() }).expect("a port always encodes");
    sandpit_runtime::state_file::write_atomically(&home.join(ENDPOINT_FILE), &bytes)
        .map_err(|error| io::Error::other(error.to_string()))?;
    let store = Arc::new(home_store(home));
    tokio::spawn(async move {
        if let Err(error) = crate::server::serve(listener, store, std::future::pending()).await {
            tracing::error!("the terraform state backend stopped: {error}");
        }
    });
    if let Some(notice) = &moved {
        tracing::warn!("{notice}");
    }
    Ok(Hosted { addr, moved })
}

async fn bind_new() -> io::Result<TcpListener> {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let port = sandpit_runtime::port_offer::offer()?;
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no port was offered")))
}
