//! The client side of the daemon protocol, used by the CLI: one typed method per request, each
//! decoding the one answer that request has, so no caller matches on answer shapes.

use std::path::Path;

use sandpit_domain::Name;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::protocol::{
    BiomeSpec, BiomeStatus, ComponentEnv, InstanceKey, InstanceSpec, InstanceStatus, Reply,
    ReplyBody, Request,
};

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens on the socket (absent, or left behind by a daemon that died).
    #[error("no sandpit daemon is listening on {0}")]
    NotRunning(String),
    #[error("lost the connection to the sandpit daemon: {0}")]
    Disconnected(String),
    /// The daemon answered with an error meant for the user.
    #[error("{0}")]
    Refused(String),
    /// The daemon answered with something other than what the request has (a daemon of another
    /// sandpit version); `expected` says what was asked for, in words.
    #[error(
        "the sandpit daemon did not answer with {expected}\nhint: it may be from another sandpit version: `sandpit daemon stop` and `sandpit daemon start` restart it with this one"
    )]
    UnexpectedAnswer { expected: &'static str },
}

/// What a running daemon says of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Pong {
    pub pid: u32,
    pub version: String,
    /// Environment-level processes it supervises.
    pub instances: Vec<InstanceStatus>,
    /// What its start-up recovery had to say.
    pub notices: Vec<String>,
    /// The ports its gateway listens on, the home's own first.
    pub gateway_ports: Vec<u16>,
}

/// One connection to the daemon.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        UnixStream::connect(socket)
            .await
            .map(|stream| Client { stream })
            .map_err(|_| ClientError::NotRunning(socket.display().to_string()))
    }

    /// Is the daemon alive? Its pid, version, instances and recovery notices.
    pub async fn ping(self) -> Result<Pong, ClientError> {
        match self.request(&Request::Ping, |_, _| {}).await? {
            ReplyBody::Pong {
                pid,
                version,
                instances,
                notices,
                gateway_ports,
            } => Ok(Pong {
                pid,
                version,
                instances,
                notices,
                gateway_ports,
            }),
            _ => Err(unexpected("its pid and version")),
        }
    }

    /// Makes the biome look like `biome`; its status once converged.
    pub async fn up(
        self,
        biome: BiomeSpec,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<BiomeStatus, ClientError> {
        let answer = self.request(&Request::Up { biome }, on_event).await?;
        biome_status(answer)
    }

    /// Stops and forgets the biome; its last status.
    pub async fn down(
        self,
        project: Name,
        biome: Name,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<BiomeStatus, ClientError> {
        let answer = self
            .request(&Request::Down { project, biome }, on_event)
            .await?;
        biome_status(answer)
    }

    /// One biome's status.
    pub async fn status(self, project: Name, biome: Name) -> Result<BiomeStatus, ClientError> {
        let answer = self
            .request(&Request::Status { project, biome }, |_, _| {})
            .await?;
        biome_status(answer)
    }

    /// Every biome of `project` (of every project with `None`).
    pub async fn list(self, project: Option<Name>) -> Result<Vec<BiomeStatus>, ClientError> {
        self.list_with(project, false).await
    }

    /// [`Client::list`] without the biomes' components (`ls`: states, usage, databases).
    pub async fn list_brief(self, project: Option<Name>) -> Result<Vec<BiomeStatus>, ClientError> {
        self.list_with(project, true).await
    }

    async fn list_with(
        self,
        project: Option<Name>,
        brief: bool,
    ) -> Result<Vec<BiomeStatus>, ClientError> {
        match self
            .request(&Request::List { project, brief }, |_, _| {})
            .await?
        {
            ReplyBody::Biomes { biomes } => Ok(biomes),
            _ => Err(unexpected("the list of biomes")),
        }
    }

    /// Restarts one component, or every service; the biome's status once healthy again.
    pub async fn restart(
        self,
        project: Name,
        biome: Name,
        component: Option<Name>,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<BiomeStatus, ClientError> {
        let request = Request::Restart {
            project,
            biome,
            component,
        };
        biome_status(self.request(&request, on_event).await?)
    }

    /// Puts the biome to sleep; its status (`sleeping`).
    pub async fn sleep(
        self,
        project: Name,
        biome: Name,
        reason: String,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<BiomeStatus, ClientError> {
        let request = Request::Sleep {
            project,
            biome,
            reason,
        };
        biome_status(self.request(&request, on_event).await?)
    }

    /// Wakes the biome; its status once its services are healthy.
    pub async fn wake(
        self,
        project: Name,
        biome: Name,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<BiomeStatus, ClientError> {
        let request = Request::Wake { project, biome };
        biome_status(self.request(&request, on_event).await?)
    }

    /// The environment a component of the biome is started with.
    pub async fn env(
        self,
        project: Name,
        biome: Name,
        component: Option<Name>,
    ) -> Result<ComponentEnv, ClientError> {
        let request = Request::Env {
            project,
            biome,
            component,
        };
        match self.request(&request, |_, _| {}).await? {
            ReplyBody::Env(env) => Ok(env),
            _ => Err(unexpected("the environment of a component")),
        }
    }

    /// Starts (or keeps running) an environment-level process; its status once it accepts
    /// connections.
    pub async fn ensure_instance(
        self,
        instance: InstanceSpec,
        on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<InstanceStatus, ClientError> {
        match self
            .request(&Request::EnsureInstance { instance }, on_event)
            .await?
        {
            ReplyBody::Instance(status) => Ok(status),
            _ => Err(unexpected("the status of an environment-level process")),
        }
    }

    /// Stops an environment-level process and forgets it.
    pub async fn stop_instance(self, key: InstanceKey) -> Result<(), ClientError> {
        self.request(&Request::StopInstance { key }, |_, _| {})
            .await
            .map(drop)
    }

    /// Sends `request` and waits for its answer, handing progress events to `on_event`.
    pub async fn request(
        mut self,
        request: &Request,
        mut on_event: impl FnMut(Option<&Name>, &str),
    ) -> Result<ReplyBody, ClientError> {
        let disconnected = |e: std::io::Error| ClientError::Disconnected(e.to_string());
        let mut line = serde_json::to_vec(request).expect("requests always serialize");
        line.push(b'\n');
        self.stream.write_all(&line).await.map_err(disconnected)?;
        let mut reader = BufReader::new(self.stream);
        loop {
            let mut reply_line = String::new();
            if reader
                .read_line(&mut reply_line)
                .await
                .map_err(disconnected)?
                == 0
            {
                return Err(ClientError::Disconnected(
                    "the daemon closed the connection".into(),
                ));
            }
            match serde_json::from_str::<Reply>(&reply_line) {
                Ok(Reply::Event { component, message }) => on_event(component.as_ref(), &message),
                Ok(Reply::Ok { body }) => return Ok(body),
                Ok(Reply::Error { message }) => return Err(ClientError::Refused(message)),
                Err(error) => {
                    return Err(ClientError::Disconnected(format!(
                        "unreadable reply ({error}): {reply_line}"
                    )))
                }
            }
        }
    }
}

fn unexpected(expected: &'static str) -> ClientError {
    ClientError::UnexpectedAnswer { expected }
}

fn biome_status(answer: ReplyBody) -> Result<BiomeStatus, ClientError> {
    match answer {
        ReplyBody::Biome(status) => Ok(status),
        _ => Err(unexpected("the status of the biome")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_the_wrong_shape_says_what_was_asked_for_and_how_to_fix_it() {
        let error = biome_status(ReplyBody::Done).unwrap_err();
        assert!(matches!(
            error,
            ClientError::UnexpectedAnswer {
                expected: "the status of the biome"
            }
        ));
        let message = error.to_string();
        assert!(
            message.contains("did not answer with the status of the biome"),
            "{message}"
        );
        assert!(
            message.contains("hint: ") && message.contains("sandpit daemon stop"),
            "{message}"
        );
        // Never the answer's internal shape.
        assert!(!message.contains("Done"), "{message}");
    }
}
