//! The answers the gateway writes itself, when no backend answers: 404 for a host nobody
//! serves, 502 for a backend that did not answer, 503 for one the owner could not make ready.
//! Plain text ending in a newline, so `curl` shows them as they are.

use std::net::SocketAddr;

use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// The body of a 404: the owner's sentence, then each valid host on a line of its own.
pub(crate) fn unknown_host_text(message: &str, valid_hosts: &[String]) -> String {
    let mut text = line(message);
    for host in valid_hosts {
        text.push_str(&line(host));
    }
    text
}

/// The body of a 502: which component, where, why, and where to look next.
pub(crate) fn bad_gateway_text(component: &str, addr: SocketAddr, why: &str) -> String {
    format!(
        "{component} did not answer at {addr}: {why}\n\
         `sandpit status` shows its state and `sandpit logs` its output.\n"
    )
}

/// The body of a 503: the owner's reason.
pub(crate) fn unavailable_text(message: &str) -> String {
    line(message)
}

/// `text` ending in exactly one newline.
fn line(text: &str) -> String {
    let mut line = text.trim_end_matches('\n').to_owned();
    line.push('\n');
    line
}

/// A response with `text` as its plain-text body.
pub(crate) fn plain(status: StatusCode, text: String) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_lines_ending_in_a_newline() {
        let hosts = vec![
            "http://web.alice.shop.localhost:8080".to_owned(),
            "http://api.alice.shop.localhost:8080".to_owned(),
        ];
        let addr: SocketAddr = "127.0.0.1:4100".parse().unwrap();
        let cases = [
            (
                unknown_host_text("no service answers at `x.localhost`", &hosts),
                "no service answers at `x.localhost`\n\
                 http://web.alice.shop.localhost:8080\n\
                 http://api.alice.shop.localhost:8080\n",
            ),
            (
                unknown_host_text("no project `shop`\n", &[]),
                "no project `shop`\n",
            ),
            (
                unavailable_text("biome `alice` could not wake: service `api` crashed"),
                "biome `alice` could not wake: service `api` crashed\n",
            ),
            (unavailable_text(""), "\n"),
            (
                bad_gateway_text("service `api` of biome `alice`", addr, "connection refused"),
                "service `api` of biome `alice` did not answer at 127.0.0.1:4100: connection refused\n\
                 `sandpit status` shows its state and `sandpit logs` its output.\n",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn plain_answers_say_they_are_utf8_text() {
        let response = plain(StatusCode::NOT_FOUND, "gone\n".to_owned());
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body().as_ref(), b"gone\n");
    }
}
