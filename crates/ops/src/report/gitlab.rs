//! GitLab's REST API, the three calls the reporter makes: set a commit's status
//! (`POST /projects/:id/statuses/:sha`), create a merge request note
//! (`POST /projects/:id/merge_requests/:iid/notes`) and edit it
//! (`PUT /projects/:id/merge_requests/:iid/notes/:note_id`), and the one the reaper makes: a
//! merge request's state (`GET /projects/:id/merge_requests/:iid`); authenticated by
//! `PRIVATE-TOKEN`.
//! [`ApiCall`] is built without I/O; [`Client::send`] sends one.

use std::time::Duration;

use serde_json::json;

use super::plan::{encoded_project, Answer};
use crate::config::Value;

/// How long one call may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the machine's trusted certificate authorities usually are, for https API URLs.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// One API call, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub method: Method,
    pub url: String,
    /// JSON.
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

fn project_url(api_url: &str, project: &str) -> String {
    format!(
        "{}/projects/{}",
        api_url.trim_end_matches('/'),
        encoded_project(project)
    )
}

/// `POST …/statuses/<sha>` with the status's JSON body as enqueued.
pub fn commit_status(api_url: &str, project: &str, sha: &str, body: &str) -> ApiCall {
    ApiCall {
        method: Method::Post,
        url: format!("{}/statuses/{sha}", project_url(api_url, project)),
        body: body.to_owned(),
    }
}

/// The note on merge request `iid`: created when `note_id` is `None`, else edited in place.
pub fn merge_request_note(
    api_url: &str,
    project: &str,
    iid: u64,
    note_id: Option<u64>,
    markdown: &str,
) -> ApiCall {
    let notes = format!(
        "{}/merge_requests/{iid}/notes",
        project_url(api_url, project)
    );
    let body = json!({ "body": markdown }).to_string();
    match note_id {
        None => ApiCall {
            method: Method::Post,
            url: notes,
            body,
        },
        Some(id) => ApiCall {
            method: Method::Put,
            url: format!("{notes}/{id}"),
            body,
        },
    }
}

/// `GET …/merge_requests/<iid>`: the merge request, with its `state`.
pub fn merge_request(api_url: &str, project: &str, iid: u64) -> ApiCall {
    ApiCall {
        method: Method::Get,
        url: format!("{}/merge_requests/{iid}", project_url(api_url, project)),
        body: String::new(),
    }
}

/// What the forge answered: its status and, for a 2xx, the body (a created note's id is in it).
#[derive(Debug)]
pub struct Answered {
    pub answer: Answer,
    pub body: String,
}

/// An HTTP client for the API (one per worker, so connections are reused).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new() -> anyhow::Result<Client> {
        Client::with_timeout(CALL_TIMEOUT)
    }

    /// A client whose calls, connecting included, give up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> anyhow::Result<Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_built_in_root_certs(false)
            .user_agent(concat!("sandpit/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = CA_BUNDLES.iter().find_map(|path| std::fs::read(path).ok()) {
            for certificate in reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default() {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Client {
            http: builder.build()?,
        })
    }

    /// Sends `call` with `token`. A failure to connect is an answer too ([`Answer::NoAnswer`]);
    /// its text never holds the token, which only travels in a header.
    pub async fn send(&self, call: &ApiCall, token: &Value) -> Answered {
        let request = match call.method {
            Method::Get => self.http.get(&call.url),
            Method::Post => self.http.post(&call.url),
            Method::Put => self.http.put(&call.url),
        };
        let mut token_header = match reqwest::header::HeaderValue::from_str(&token.text) {
            Ok(value) => value,
            Err(_) => {
                return Answered {
                    answer: Answer::NoAnswer(
                        "the token holds characters an HTTP header cannot carry".to_owned(),
                    ),
                    body: String::new(),
                }
            }
        };
        token_header.set_sensitive(true);
        let request = request.header("PRIVATE-TOKEN", token_header);
        let request = match call.method {
            Method::Get => request,
            Method::Post | Method::Put => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(call.body.clone()),
        };
        let sent = request.send().await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Answered {
                    answer: Answer::Status(status),
                    body,
                }
            }
            Err(error) => Answered {
                // Without the URL's query (none is ever sent) the error names only the host.
                answer: Answer::NoAnswer(describe_failure(&error)),
                body: String::new(),
            },
        }
    }
}

fn describe_failure(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

/// The id of the note a `POST …/notes` created, from its answer (`{"id": 1234, …}`).
pub fn created_note_id(body: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("id")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_name_the_project_as_one_segment() {
        let call = commit_status(
            "https://gitlab.example/api/v4/",
            "group/app",
            "abc123",
            "{}",
        );
        assert_eq!(call.method, Method::Post);
        assert_eq!(
            call.url,
            "https://gitlab.example/api/v4/projects/group%2Fapp/statuses/abc123"
        );
        let create = merge_request_note("http://h/api/v4", "7", 3, None, "hi");
        assert_eq!(
            (create.method, create.url.as_str(), create.body.as_str()),
            (
                Method::Post,
                "http://h/api/v4/projects/7/merge_requests/3/notes",
                r#"{"body":"hi"}"#
            )
        );
        let update = merge_request_note("http://h/api/v4", "7", 3, Some(99), "hi");
        assert_eq!(
            (update.method, update.url.as_str()),
            (
                Method::Put,
                "http://h/api/v4/projects/7/merge_requests/3/notes/99"
            )
        );
    }

    #[test]
    fn a_merge_request_is_asked_for_by_its_iid() {
        let call = merge_request("http://h/api/v4/", "group/app", 12);
        assert_eq!(
            (call.method, call.url.as_str(), call.body.as_str()),
            (
                Method::Get,
                "http://h/api/v4/projects/group%2Fapp/merge_requests/12",
                ""
            )
        );
    }

    #[test]
    fn a_created_note_is_found_by_its_id() {
        assert_eq!(created_note_id(r#"{"id": 1234, "body": "x"}"#), Some(1234));
        assert_eq!(created_note_id(r#"{"body": "x"}"#), None);
        assert_eq!(created_note_id("not json"), None);
    }
}
