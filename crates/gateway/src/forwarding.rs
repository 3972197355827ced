//! The headers a proxy rewrites: hop-by-hop ones removed both ways, `X-Forwarded-*` added.
//!
//! Hop-by-hop headers describe one connection (RFC 9110 §7.6.1), not the message, so what the
//! client said about its connection to the gateway must not reach the backend, and what the
//! backend said about its connection must not reach the client: `Connection` and every header
//! it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. hyper
//! then frames each side itself (chunked or `Content-Length`, keep-alive or close). An upgrade
//! (WebSocket) is the exception: its `Connection: upgrade` and `Upgrade` pair is what asks the
//! backend to switch, and what tells the client it did.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`: the addresses a request came through, the client's last.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used (always `http`: the gateway has no TLS).
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the Host the client asked for.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Hop-by-hop headers removed whatever `Connection` says (the `Proxy-*` family aside).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether a request asks to switch protocols (a WebSocket handshake): an `Upgrade` header and
/// `upgrade` among the `Connection` tokens.
pub(crate) fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

/// Rewrites a client's request headers for the backend: hop-by-hop headers removed (the upgrade
/// pair kept when `upgrade`), then `X-Forwarded-For` with `client_ip` appended to what the
/// client sent, `X-Forwarded-Proto: http` and `X-Forwarded-Host` set to the Host the client
/// sent (removed when it sent none, so it cannot be made up). `Host` is left as it is.
pub(crate) fn rewrite_request(headers: &mut HeaderMap, client_ip: IpAddr, upgrade: bool) {
    // A message with both is framed by Transfer-Encoding (RFC 9112 §6.3); its Content-Length
    // would contradict the body hyper forwards, so a proxy must drop it.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    remove_hop_by_hop(headers, upgrade);
    append_forwarded_for(headers, client_ip);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// Rewrites a backend's response headers for the client: hop-by-hop headers removed (the
/// upgrade pair kept on a `101 Switching Protocols` to an upgrade).
pub(crate) fn rewrite_response(headers: &mut HeaderMap, upgrade: bool) {
    remove_hop_by_hop(headers, upgrade);
}

/// The `Connection` tokens, trimmed, as sent (several headers or comma-separated lists).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        // Host routes the request and is end to end: a client naming it in Connection must not
        // make the backend see another Host (hyper would fill in the backend's address).
        .filter(|name| *name != header::HOST)
        .collect();
    let upgrade = keep_upgrade
        .then(|| {
            headers
                .get_all(header::UPGRADE)
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|values| !values.is_empty());
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    let proxy_headers: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_headers {
        headers.remove(name);
    }
    if let Some(values) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        for value in values {
            headers.append(header::UPGRADE, value);
        }
    }
}

/// `X-Forwarded-For: <what the client sent>, <client_ip>` (one header: several are joined, as
/// RFC 9110 §5.3 allows for list headers).
fn append_forwarded_for(headers: &mut HeaderMap, client_ip: IpAddr) {
    let mut chain: Vec<String> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect();
    chain.push(client_ip.to_string());
    let joined = chain.join(", ");
    let value = HeaderValue::from_str(&joined)
        .expect("visible ASCII joined with commas and an address is a header value");
    headers.insert(X_FORWARDED_FOR, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// The headers as sorted `name: value` lines, values of one name in order.
    fn lines(map: &HeaderMap) -> Vec<String> {
        let mut lines: Vec<String> = map
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        lines.sort();
        lines
    }

    /// Headers as `(name, value)` pairs, in the order sent.
    type Pairs = &'static [(&'static str, &'static str)];
    /// Expected headers as sorted `name: value` lines.
    type Lines = &'static [&'static str];

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 7));

    #[test]
    fn requests_lose_hop_by_hop_headers_and_gain_forwarding_ones() {
        let cases: [(&str, Pairs, bool, Lines); 9] = [
            (
                "a plain request",
                &[("host", "web.alice.shop.localhost:8080"), ("accept", "*/*")],
                false,
                &[
                    "accept: */*",
                    "host: web.alice.shop.localhost:8080",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: web.alice.shop.localhost:8080",
                    "x-forwarded-proto: http",
                ],
            ),
            (
                "every hop-by-hop header, and the ones Connection names",
                &[
                    ("host", "h"),
                    ("connection", "keep-alive, X-Secret"),
                    ("connection", "x-other"),
                    ("x-secret", "1"),
                    ("x-other", "2"),
                    ("keep-alive", "timeout=5"),
                    ("te", "trailers"),
                    ("trailer", "x-checksum"),
                    ("proxy-authorization", "Basic Zm9v"),
                    ("proxy-connection", "keep-alive"),
                    ("upgrade", "websocket"),
                    ("x-kept", "3"),
                ],
                false,
                &[
                    "host: h",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: h",
                    "x-forwarded-proto: http",
                    "x-kept: 3",
                ],
            ),
            (
                "an upgrade keeps its pair",
                &[
                    ("host", "h"),
                    ("connection", "Upgrade, x-secret"),
                    ("x-secret", "1"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-key", "abc"),
                ],
                true,
                &[
                    "connection: upgrade",
                    "host: h",
                    "sec-websocket-key: abc",
                    "upgrade: websocket",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: h",
                    "x-forwarded-proto: http",
                ],
            ),
            (
                "X-Forwarded-For is appended to, several headers joined",
                &[
                    ("host", "h"),
                    ("x-forwarded-for", "203.0.113.1"),
                    ("x-forwarded-for", "198.51.100.2, 10.0.0.3"),
                ],
                false,
                &[
                    "host: h",
                    "x-forwarded-for: 203.0.113.1, 198.51.100.2, 10.0.0.3, 127.0.0.7",
                    "x-forwarded-host: h",
                    "x-forwarded-proto: http",
                ],
            ),
            (
                "forwarding headers the client made up are replaced",
                &[
                    ("host", "real"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "fake"),
                ],
                false,
                &[
                    "host: real",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: real",
                    "x-forwarded-proto: http",
                ],
            ),
            (
                "no Host: no X-Forwarded-Host either",
                &[("x-forwarded-host", "fake")],
                false,
                &["x-forwarded-for: 127.0.0.7", "x-forwarded-proto: http"],
            ),
            (
                "Host named in Connection stays",
                &[("host", "h"), ("connection", "host")],
                false,
                &[
                    "host: h",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: h",
                    "x-forwarded-proto: http",
                ],
            ),
            (
                "chunked framing drops a contradicting Content-Length",
                &[
                    ("host", "h"),
                    ("transfer-encoding", "chunked"),
                    ("content-length", "10"),
                ],
                false,
                &[
                    "host: h",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: h",
                    "x-forwarded-proto: http",
                ],
            ),
            (
                "Content-Length alone is kept",
                &[("host", "h"), ("content-length", "10")],
                false,
                &[
                    "content-length: 10",
                    "host: h",
                    "x-forwarded-for: 127.0.0.7",
                    "x-forwarded-host: h",
                    "x-forwarded-proto: http",
                ],
            ),
        ];
        for (what, given, upgrade, expected) in cases {
            let mut map = headers(given);
            rewrite_request(&mut map, CLIENT, upgrade);
            assert_eq!(lines(&map), expected.to_vec(), "{what}");
        }
    }

    #[test]
    fn responses_lose_hop_by_hop_headers() {
        let cases: [(Pairs, bool, Lines); 3] = [
            (
                &[
                    ("content-type", "text/plain"),
                    ("connection", "close, x-hop"),
                    ("x-hop", "1"),
                    ("transfer-encoding", "chunked"),
                    ("keep-alive", "timeout=5"),
                    ("proxy-authenticate", "Basic"),
                ],
                false,
                &["content-type: text/plain"],
            ),
            (
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-accept", "xyz"),
                ],
                true,
                &[
                    "connection: upgrade",
                    "sec-websocket-accept: xyz",
                    "upgrade: websocket",
                ],
            ),
            (
                // A backend that answers an upgrade without saying to what has nothing to keep.
                &[("connection", "upgrade")],
                true,
                &[],
            ),
        ];
        for (given, upgrade, expected) in cases {
            let mut map = headers(given);
            rewrite_response(&mut map, upgrade);
            assert_eq!(lines(&map), expected.to_vec(), "{given:?}");
        }
    }

    #[test]
    fn upgrades_need_both_headers() {
        let cases: [(&[(&str, &str)], bool); 5] = [
            (&[("connection", "Upgrade"), ("upgrade", "websocket")], true),
            (
                &[("connection", "keep-alive, upgrade"), ("upgrade", "h2c")],
                true,
            ),
            (&[("upgrade", "websocket")], false),
            (&[("connection", "upgrade")], false),
            (
                &[("connection", "keep-alive"), ("upgrade", "websocket")],
                false,
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(wants_upgrade(&headers(given)), expected, "{given:?}");
        }
    }
}
