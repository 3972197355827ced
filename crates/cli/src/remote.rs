//! Talking to a control plane (`sandpit server`): which server and token (flags, variables,
//! then what `sandpit login` stored), the stored credentials, and requests whose failures come
//! back as the server's error shape, printed like local errors.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use sandpit_ops::error::{failure, ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::settings::RemoteSettings;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a change (`up`, `deploy`, …) may take: a minute past the server's own deadline for
/// it, so the server's answer (even its 503) arrives rather than a client-side timeout.
const CHANGE_TIMEOUT: Duration =
    sandpit_server::CHANGE_TIMEOUT.saturating_add(Duration::from_secs(60));

/// What `sandpit login` stores: one server and the token for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub token: String,
}

/// The credentials `sandpit login` stored, if any.
pub fn stored(path: &Path) -> anyhow::Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let credentials = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not what `sandpit login` writes\nhint: log in again with `sandpit login --server URL`",
            path.display()
        )
    })?;
    Ok(Some(credentials))
}

/// Stores `credentials` for the user: a 0600 file in a 0700 directory, replaced atomically.
pub fn store(path: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    let dir = path.parent().expect("the credentials file has a directory");
    sandpit_runtime::owner_only::create_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let text = serde_json::to_string_pretty(credentials)? + "\n";
    sandpit_runtime::owner_only::write_file(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `URL` without a trailing slash, refused unless it is http(s).
pub fn server_url(raw: &str) -> anyhow::Result<String> {
    let url = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        failure(
            ErrorKind::InvalidInput,
            format!("`{url}` is not a server URL: {e}\nhint: e.g. http://127.0.0.1:7780"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(failure(
            ErrorKind::InvalidInput,
            format!("`{url}` is not an http:// or https:// URL\nhint: e.g. http://127.0.0.1:7780"),
        ));
    }
    Ok(url.to_owned())
}

/// A control plane and the token to show it.
#[derive(Debug)]
pub struct Remote {
    server: String,
    token: String,
    client: reqwest::Client,
}

/// The HTTP client: no proxy (the server is usually on loopback), trusting `SANDPIT_CA_CERT`
/// and nothing else for https.
fn client(settings: &RemoteSettings) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .tls_built_in_root_certs(false);
    if let Some(path) = &settings.ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read SANDPIT_CA_CERT {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem).with_context(|| {
            format!(
                "SANDPIT_CA_CERT {} is not a PEM certificate",
                path.display()
            )
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().context("cannot set up an HTTP client")
}

impl Remote {
    /// The server and token this invocation uses. A stored token is only ever sent to the
    /// server it was stored for.
    pub fn from_settings(settings: &RemoteSettings) -> anyhow::Result<Remote> {
        let stored = stored(&settings.credentials)?;
        let server = match (&settings.server, &stored) {
            (Some(server), _) => server_url(server)?,
            (None, Some(stored)) => stored.server.clone(),
            (None, None) => {
                return Err(failure(
                    ErrorKind::Unauthorized,
                    "no control plane to talk to\nhint: `sandpit login --server URL`, or set SANDPIT_SERVER and SANDPIT_TOKEN",
                ))
            }
        };
        let token = match (&settings.token, &stored) {
            (Some(token), _) => token.trim().to_owned(),
            (None, Some(stored)) if stored.server == server => stored.token.clone(),
            (None, _) => {
                return Err(failure(
                    ErrorKind::Unauthorized,
                    format!("no token for {server}\nhint: `sandpit login --server {server}`, or set SANDPIT_TOKEN"),
                ))
            }
        };
        Remote::new(settings, server, token)
    }

    /// The server's URL (no trailing slash).
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn new(settings: &RemoteSettings, server: String, token: String) -> anyhow::Result<Remote> {
        Ok(Remote {
            server,
            token,
            client: client(settings)?,
        })
    }

    /// `method path` with `body` as JSON; the answer's JSON, or the server's refusal as an
    /// error of its kind.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        self.call_within(method, path, body, REQUEST_TIMEOUT).await
    }

    /// [`Remote::call`] for a change that builds and rolls out, which may take minutes.
    pub async fn change<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        self.call_within(method, path, body, CHANGE_TIMEOUT).await
    }

    /// [`Remote::call`] for a request that may take longer than most (an approval runs the
    /// deployment before it is answered): waits up to `timeout`.
    pub async fn call_within<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.server);
        let mut request = self
            .client
            .request(method, &url)
            .bearer_auth(&self.token)
            .timeout(timeout);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body)?);
        }
        let response = request.send().await.map_err(|e| {
            failure(
                ErrorKind::Unavailable,
                format!(
                    "cannot reach the control plane at {}: {}\nhint: is `sandpit server` running there?",
                    self.server,
                    describe(&e)
                ),
            )
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            failure(
                ErrorKind::Unavailable,
                format!(
                    "the control plane at {} broke off its answer: {}",
                    self.server,
                    describe(&e)
                ),
            )
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| self.unexpected(status, &e.to_string()));
        }
        Err(self.refusal(status, &bytes))
    }

    fn unexpected(&self, status: StatusCode, detail: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "the server at {} answered {status} with something that is not sandpit's API: {detail}\nhint: check the --server URL",
            self.server
        )
    }

    /// The server's error shape as an error of its kind, with its hint (and for a token that
    /// was not accepted, how to log in).
    fn refusal(&self, status: StatusCode, body: &[u8]) -> anyhow::Error {
        #[derive(Deserialize)]
        struct Shape {
            error: sandpit_server::wire::ErrorDetail,
        }
        let Ok(Shape { error }) = serde_json::from_slice::<Shape>(body) else {
            return self.unexpected(
                status,
                &String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>(),
            );
        };
        let kind = match error.code.as_str() {
            "unauthorized" => ErrorKind::Unauthorized,
            "forbidden" => ErrorKind::Forbidden,
            "not_found" => ErrorKind::NotFound,
            "conflict" => ErrorKind::Conflict,
            "needs_approval" => ErrorKind::NeedsApproval,
            "unavailable" => ErrorKind::Unavailable,
            "invalid_request" | "invalid_input" | "payload_too_large" => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        };
        let hint = match (kind, error.hint) {
            (ErrorKind::Unauthorized, _) => Some(format!(
                "log in again with `sandpit login --server {}` (a new token from an admin if yours was revoked or expired)",
                self.server
            )),
            (_, hint) => hint,
        };
        let message = match hint {
            Some(hint) => format!("{}\nhint: {hint}", error.message),
            None => error.message,
        };
        failure(kind, message)
    }
}

/// The project a remote command acts on: `--project NAME`, else the `[project] name` of the
/// `sandpit.toml` found from `directory` (or the current directory) upwards.
pub fn project_name(explicit: Option<&str>, directory: Option<&Path>) -> anyhow::Result<String> {
    if let Some(name) = explicit {
        return Ok(name.trim().to_owned());
    }
    let dir = match directory {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().context("cannot tell the current directory")?,
    };
    let spec = sandpit_ops::Source::Checkout { dir }.spec().map_err(|error| {
        failure(
            ErrorKind::InvalidInput,
            format!("{error:#}\nhint: name the server's project with --project NAME, or pass --local to act on this machine"),
        )
    })?;
    Ok(spec.project.name.to_string())
}

/// `/api/v1/projects/<project>` with the name percent-encoded for a path.
pub fn project_path(project: &str) -> String {
    format!("/api/v1/projects/{}", path_segment(project))
}

/// `raw` as one path segment: everything but RFC 3986's unreserved characters percent-encoded.
pub fn path_segment(raw: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(raw, SEGMENT).to_string()
}

/// `raw` as a query string value (the same encoding as a path segment: safe in both).
pub fn query_value(raw: &str) -> String {
    path_segment(raw)
}

/// A transport error with its causes (reqwest's own message alone says only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}
