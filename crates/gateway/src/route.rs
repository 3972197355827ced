//! What the gateway asks its owner for every request: where the host's traffic goes.
//!
//! The gateway decides nothing about biomes. Its owner (the daemon) knows which biome a host
//! names, whether it sleeps, which port its service has, and answers one [`Route`] per request.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::HostName;

/// What [`Routes::route`] returns: a boxed future, so owners can hold the request while they
/// wake a biome, and the trait stays object-safe (`Arc<dyn Routes>`).
pub type RouteFuture = Pin<Box<dyn Future<Output = Route> + Send + 'static>>;

/// Something the owner holds while a request (or an upgraded connection) is in flight; the
/// gateway drops it when the response body has been sent completely, the response was given up
/// (the client left, the backend failed) or the upgraded connection closed. The owner counts
/// requests in flight and records the last activity in its `Drop`.
pub type Activity = Box<dyn Send + Sync>;

/// The owner's answer for every request (and every WebSocket upgrade).
pub trait Routes: Send + Sync + 'static {
    /// Where requests for `host` go. `host` is the request's Host (or the request target's
    /// authority) read by [`HostName::parse`]. The future may take long: the owner may wake a
    /// sleeping biome before answering; the request is held meanwhile, never redirected.
    fn route(&self, host: &HostName) -> RouteFuture;
}

/// Where one request goes.
pub enum Route {
    /// Proxy to this loopback address. `component` names it in errors ("service `api` of biome
    /// `alice` (project `shop`)"); `activity` is held until the response is done (see
    /// [`Activity`]).
    Backend {
        addr: SocketAddr,
        component: String,
        activity: Option<Activity>,
    },
    /// 404: no service answers at this host. The body is `message` (a sentence saying the host
    /// is unknown) and then `valid_hosts`, one per line.
    Unknown {
        message: String,
        valid_hosts: Vec<String>,
    },
    /// 503 with `message` as the body: e.g. the biome could not wake, and why.
    Unavailable { message: String },
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Backend {
                addr,
                component,
                activity,
            } => f
                .debug_struct("Backend")
                .field("addr", addr)
                .field("component", component)
                .field("activity", &activity.as_ref().map(|_| "…"))
                .finish(),
            Route::Unknown {
                message,
                valid_hosts,
            } => f
                .debug_struct("Unknown")
                .field("message", message)
                .field("valid_hosts", valid_hosts)
                .finish(),
            Route::Unavailable { message } => f
                .debug_struct("Unavailable")
                .field("message", message)
                .finish(),
        }
    }
}
