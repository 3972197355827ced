//! The client side of the daemon protocol, used by the CLI.

use std::path::Path;

use sandpit_domain::Name;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::protocol::{Reply, ReplyBody, Request};

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
