//! The home's gateway, hosted by the daemon: `sandpit_gateway` proxies, the supervisor answers
//! where each host goes (`<service>.<biome>.<project>.localhost`), waking a sleeping biome first
//! and holding the request meanwhile. The home's own port is chosen once and kept in
//! `runtime/gateway.json`; a project's `[gateway] port` is listened on as well when its biomes
//! come up.

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use sandpit_domain::{ComponentKind, ComponentState, Name};
use sandpit_gateway::{GatewayConfig, HostName, Route, RouteFuture, Routes};
use serde::{Deserialize, Serialize};

use super::{BiomeKey, RequestActivity, Supervisor};
use crate::state_file;

/// How often a request held for a waking biome looks whether its service is healthy yet (the
/// health probes themselves start at 2 ms and double to 20 ms).
const WAKE_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// The most threads the gateway serves one port with.
const MAX_LOOPS: usize = 4;

/// A loopback socket bound to `addr` with `SO_REUSEPORT`, so each of the gateway's loops can
/// listen on the same port (only sockets of the same user may join).
fn reuse_port_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// How many hosts a 404 lists at most (a home may hold hundreds of biomes).
const MAX_LISTED_HOSTS: usize = 200;

/// `runtime/gateway.json`: the home's own port, kept across daemon restarts so that public URLs
/// stay valid.
#[derive(Debug, Serialize, Deserialize)]
struct SavedGateway {
    port: u16,
}

/// [`Supervisor::route_now`]'s answer: where the request goes, or the biome to wake first.
enum Routing {
    Now(Route),
    AfterWake {
        key: BiomeKey,
        service: Name,
        activity: RequestActivity,
    },
}

/// What the gateway asks: the supervisor's answer for every request. Answered on the gateway's
/// thread when nothing has to wait (a lookup under the biomes' lock); a wake runs on the
/// daemon's runtime, `daemon`, where the biome's processes are supervised.
struct BiomeRoutes {
    supervisor: Arc<Supervisor>,
    daemon: tokio::runtime::Handle,
}

impl Routes for BiomeRoutes {
    fn route(&self, host: &HostName) -> RouteFuture {
        match self.supervisor.route_now(host) {
            Routing::Now(route) => Box::pin(std::future::ready(route)),
            Routing::AfterWake {
                key,
                service,
                activity,
            } => {
                let waking = self
                    .daemon
                    .spawn(Arc::clone(&self.supervisor).route_after_wake(key, service, activity));
                Box::pin(async move {
                    waking.await.unwrap_or_else(|error| Route::Unavailable {
                        message: format!("the wake was interrupted: {error}"),
                    })
                })
            }
        }
    }
}

/// Where a host's requests go, decided from what the supervisor knows (pure).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Destination {
    /// The service of this biome (the lender's, for an overlay's borrowed service).
    Service {
        key: BiomeKey,
        service: Name,
    },
    Unknown(String),
}

impl Supervisor {
    fn gateway_file(&self) -> std::path::PathBuf {
        self.runtime_dir().join("gateway.json")
    }

    /// Starts the home's gateway on the port it had (or a new one, saved): called once by the
    /// daemon after recovery. A port that is taken meanwhile is replaced by a new one, said in
    /// the daemon's notices, since the old public URLs cannot be served anyway.
    pub async fn start_gateway(self: &Arc<Self>) -> Result<u16, String> {
        let saved = fs::read(self.gateway_file())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SavedGateway>(&bytes).ok());
        if let Some(saved) = &saved {
            match self.listen(saved.port).await {
                Ok(()) => return Ok(saved.port),
                Err(error) => {
                    let notice = format!(
                        "the gateway could not listen on its port {} again ({error}); it moved to a new port, and the public URLs changed with it",
                        saved.port
                    );
                    tracing::warn!("{notice}");
                    self.notices.lock().expect("notices poisoned").push(notice);
                }
            }
        }
        let mut last_error = String::new();
        for _ in 0..8 {
            let port = crate::port_offer::offer().map_err(|e| e.to_string())?;
            match self.listen(port).await {
                Ok(()) => {
                    let bytes =
                        serde_json::to_vec(&SavedGateway { port }).expect("a port always encodes");
                    if let Err(error) = state_file::write_atomically(&self.gateway_file(), &bytes) {
                        tracing::warn!("the gateway's port {port} is not saved: {error}");
                    }
                    return Ok(port);
                }
                Err(error) => last_error = error,
            }
        }
        Err(format!("the gateway found no free port: {last_error}"))
    }

    /// Makes sure the gateway listens on `port` too (a project's `[gateway] port`).
    pub(super) async fn ensure_gateway_port(self: &Arc<Self>, port: u16) -> Result<(), String> {
        if self.gateway_ports().contains(&port) {
            return Ok(());
        }
        self.listen(port).await.map_err(|error| {
            format!("the gateway cannot listen on port {port}, which `[gateway] port` in sandpit.toml asks for: {error}\nhint: choose a free port there, or remove the key to use this home's own ({})",
                self.gateway_ports().first().map_or("none yet".to_owned(), u16::to_string))
        })
    }

    /// Listens on `port` with one single-threaded loop per core (at most [`MAX_LOOPS`]), each
    /// on a thread of its own with its own `SO_REUSEPORT` listener: the kernel spreads the
    /// connections, and a request never waits for the daemon's own work (measured against one
    /// work-stealing runtime: about twice the requests per second, `scripts/bench.sh gateway`).
    async fn listen(self: &Arc<Self>, port: u16) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Bound (not listening) until every loop has its own listener: the port is this home's
        // from the first moment, and a refusal is said here.
        // First as anyone would bind it: `SO_REUSEPORT` alone would join a listener of another
        // home's gateway run by the same user, and share its connections.
        drop(std::net::TcpListener::bind(addr).map_err(|e| e.to_string())?);
        let holder = reuse_port_socket(addr).map_err(|e| e.to_string())?;
        let loops = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_LOOPS);
        let routes: Arc<dyn Routes> = Arc::new(BiomeRoutes {
            supervisor: Arc::clone(self),
            daemon: tokio::runtime::Handle::current(),
        });
        let (bound_tx, mut bound_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(loops);
        for index in 0..loops {
            let routes = Arc::clone(&routes);
            let mut stop = self.gateway_stop.subscribe();
            let bound = bound_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("gateway-{port}-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = bound.blocking_send(Err(error.to_string()));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let listener = match reuse_port_socket(addr).and_then(|s| s.listen(1024)) {
                            Ok(listener) => {
                                let _ = bound.send(Ok(())).await;
                                listener
                            }
                            Err(error) => {
                                let _ = bound.send(Err(error.to_string())).await;
                                return;
                            }
                        };
                        let shutdown = async move {
                            let _ = stop.wait_for(|stopped| *stopped).await;
                        };
                        if let Err(error) = sandpit_gateway::serve(
                            listener,
                            routes,
                            GatewayConfig::default(),
                            shutdown,
                        )
                        .await
                        {
                            tracing::error!("the gateway on port {port} stopped: {error}");
                        }
                    });
                });
            if let Err(error) = spawned {
                return Err(format!("cannot start the gateway's thread: {error}"));
            }
        }
        drop(bound_tx);
        // One answer per loop (each keeps its sender while it serves).
        let mut started = 0;
        for _ in 0..loops {
            match bound_rx.recv().await {
                Some(result) => {
                    result?;
                    started += 1;
                }
                None => break,
            }
        }
        drop(holder);
        if started == 0 {
            return Err("no loop of the gateway started".to_owned());
        }
        self.add_gateway_port(port);
        tracing::info!("gateway listening on 127.0.0.1:{port} ({started} loops)");
        Ok(())
    }

    /// Where `host` goes when nothing has to wait: the backend of an awake biome, or why there
    /// is none. A sleeping biome is `AfterWake`, with the request's activity already counted: its
    /// wake is [`Self::route_after_wake`]'s. Called on the gateway's own threads.
    fn route_now(self: &Arc<Self>, host: &HostName) -> Routing {
        let destination = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            destination(host, |key| {
                biomes.get(key).map(|biome| BiomeView {
                    services: biome
                        .spec
                        .components
                        .iter()
                        .filter(|c| c.kind == ComponentKind::Service)
                        .map(|c| c.name.clone())
                        .collect(),
                    borrowed: borrowed_of(&biome.spec),
                })
            })
        };
        let (key, service) = match destination {
            Destination::Service { key, service } => (key, service),
            Destination::Unknown(message) => {
                return Routing::Now(Route::Unknown {
                    message,
                    valid_hosts: self.valid_hosts(host),
                })
            }
        };
        let activity = self.request_started(&key);
        if self.is_asleep(&key) {
            return Routing::AfterWake {
                key,
                service,
                activity,
            };
        }
        Routing::Now(self.backend(&key, &service, activity))
    }

    /// Wakes the biome (on the daemon's runtime, where its processes are supervised), then
    /// routes to the service.
    async fn route_after_wake(
        self: Arc<Self>,
        key: BiomeKey,
        service: Name,
        activity: RequestActivity,
    ) -> Route {
        if let Err(error) = self.wake_for(&key, &service).await {
            return Route::Unavailable {
                message: format!(
                    "biome `{}` of project `{}` is asleep and could not wake: {error}",
                    key.biome, key.project
                ),
            };
        }
        self.backend(&key, &service, activity)
    }

    /// The backend of `service` of an awake biome.
    fn backend(&self, key: &BiomeKey, service: &Name, activity: RequestActivity) -> Route {
        let (port, note) = {
            let biomes = self.biomes.lock().expect("biomes poisoned");
            let Some(biome) = biomes.get(key) else {
                return Route::Unavailable {
                    message: format!(
                        "biome `{}` of project `{}` was removed meanwhile",
                        key.biome, key.project
                    ),
                };
            };
            let unit = biome.units.get(service);
            let note = unit.and_then(|u| match u.run.state {
                ComponentState::Healthy => None,
                state => Some(match &u.run.detail {
                    Some(detail) => format!("it is {state}: {detail}"),
                    None => format!("it is {state}"),
                }),
            });
            (biome.ports.get(service).copied(), note)
        };
        let Some(port) = port else {
            return Route::Unavailable {
                message: format!(
                    "service `{service}` of biome `{}` (project `{}`) has no port yet",
                    key.biome, key.project
                ),
            };
        };
        let mut component = format!(
            "service `{service}` of biome `{}` (project `{}`)",
            key.biome, key.project
        );
        if let Some(note) = note {
            component.push_str(&format!("; {note}"));
        }
        Route::Backend {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            component,
            activity: Some(Box::new(activity)),
        }
    }

    /// Wakes the biome for a request to `service`, and returns as soon as that service is
    /// healthy: the rest of the biome (later waves, which the service does not need) goes on
    /// waking in the background, so the request is not held for what it does not reach. A wake
    /// that fails before the service is healthy is the error.
    async fn wake_for(self: &Arc<Self>, key: &BiomeKey, service: &Name) -> Result<(), String> {
        let waking = {
            let supervisor = Arc::clone(self);
            let key = key.clone();
            tokio::spawn(async move { supervisor.wake(&key, &None).await })
        };
        loop {
            if waking.is_finished() {
                return match waking.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error),
                    Err(error) => Err(format!("the wake was interrupted: {error}")),
                };
            }
            if self.serves_awake(key, service) {
                return Ok(());
            }
            tokio::time::sleep(WAKE_POLL).await;
        }
    }

    /// Whether the biome is awake and `service` of it healthy.
    fn serves_awake(&self, key: &BiomeKey, service: &Name) -> bool {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        biomes.get(key).is_some_and(|biome| {
            biome.sleeping_since.is_none()
                && biome
                    .units
                    .get(service)
                    .is_some_and(|unit| unit.run.state == ComponentState::Healthy)
        })
    }

    /// The hosts the gateway answers for the project `host` names (every project's when it
    /// names none that exists), at most [`MAX_LISTED_HOSTS`].
    fn valid_hosts(&self, host: &HostName) -> Vec<String> {
        let biomes = self.biomes.lock().expect("biomes poisoned");
        let projects: BTreeSet<&Name> = biomes.keys().map(|k| &k.project).collect();
        let wanted = match host {
            HostName::Service { project, .. } => {
                projects.iter().find(|p| p.as_str() == project).copied()
            }
            HostName::Other(_) => None,
        };
        let mut hosts = Vec::new();
        for (key, biome) in biomes.iter() {
            if wanted.is_some_and(|p| p != &key.project) {
                continue;
            }
            let mut services: Vec<&Name> = biome
                .spec
                .components
                .iter()
                .filter(|c| c.kind == ComponentKind::Service)
                .map(|c| &c.name)
                .collect();
            let borrowed = borrowed_of(&biome.spec);
            services.extend(borrowed.keys());
            services.sort();
            for service in services {
                hosts.push(format!(
                    "{service}.{}.{}.{}",
                    key.biome,
                    key.project,
                    sandpit_gateway::PUBLIC_SUFFIX
                ));
                if hosts.len() == MAX_LISTED_HOSTS {
                    return hosts;
                }
            }
        }
        hosts
    }
}

/// What [`destination`] needs to know of a biome.
pub(super) struct BiomeView {
    services: Vec<Name>,
    /// Overlay biomes: service → the biome (its environment's base) whose instance serves it.
    borrowed: std::collections::BTreeMap<Name, Name>,
}

/// An overlay biome's borrowed services (none for others).
fn borrowed_of(spec: &crate::protocol::BiomeSpec) -> std::collections::BTreeMap<Name, Name> {
    spec.borrowed.clone()
}

/// Where requests for `host` go, given what is known of each biome (pure).
pub(super) fn destination(
    host: &HostName,
    biome: impl Fn(&BiomeKey) -> Option<BiomeView>,
) -> Destination {
    let (service, biome_name, project) = match host {
        HostName::Service {
            service,
            biome,
            project,
        } => (service, biome, project),
        HostName::Other(raw) => {
            return Destination::Unknown(format!(
                "no service answers at `{raw}`: the gateway serves hosts such as <service>.<biome>.<project>.{}",
                sandpit_gateway::PUBLIC_SUFFIX
            ))
        }
    };
    let (Ok(service), Ok(biome_key_name), Ok(project)) = (
        Name::parse(service),
        Name::parse(biome_name),
        Name::parse(project),
    ) else {
        return Destination::Unknown(format!(
            "`{service}.{biome_name}.{project}` names no service"
        ));
    };
    let key = BiomeKey {
        project: project.clone(),
        biome: biome_key_name.clone(),
    };
    let Some(view) = biome(&key) else {
        return Destination::Unknown(format!(
            "there is no biome or environment `{biome_key_name}` in project `{project}` on this machine"
        ));
    };
    if view.services.contains(&service) {
        return Destination::Service { key, service };
    }
    if let Some(lender) = view.borrowed.get(&service) {
        return Destination::Service {
            key: BiomeKey {
                project,
                biome: lender.clone(),
            },
            service,
        };
    }
    Destination::Unknown(format!(
        "biome `{biome_key_name}` of project `{project}` has no service `{service}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn host(raw: &str) -> HostName {
        HostName::parse(raw)
    }

    #[test]
    fn hosts_go_to_their_biomes_services_or_say_what_is_unknown() {
        let lookup = |key: &BiomeKey| match (key.project.as_str(), key.biome.as_str()) {
            ("shop", "alice") => Some(BiomeView {
                services: vec![name("web")],
                borrowed: [(name("api"), name("dev"))].into_iter().collect(),
            }),
            ("shop", "dev") => Some(BiomeView {
                services: vec![name("web"), name("api")],
                borrowed: Default::default(),
            }),
            _ => None,
        };
        let to = |project: &str, biome: &str, service: &str| Destination::Service {
            key: BiomeKey {
                project: name(project),
                biome: name(biome),
            },
            service: name(service),
        };
        assert_eq!(
            destination(&host("web.alice.shop.localhost:8480"), lookup),
            to("shop", "alice", "web")
        );
        assert_eq!(
            destination(&host("api.alice.shop.localhost"), lookup),
            to("shop", "dev", "api"),
            "a borrowed service goes to the lender"
        );
        assert_eq!(
            destination(&host("api.dev.shop.localhost"), lookup),
            to("shop", "dev", "api")
        );
        for (raw, says) in [
            ("db.alice.shop.localhost", "has no service `db`"),
            ("web.bob.shop.localhost", "no biome or environment `bob`"),
            ("web.alice.other.localhost", "in project `other`"),
            ("localhost:8480", "no service answers at `localhost`"),
        ] {
            match destination(&host(raw), lookup) {
                Destination::Unknown(message) => {
                    assert!(message.contains(says), "{raw}: {message}")
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
