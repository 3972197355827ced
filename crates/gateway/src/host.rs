//! The host a request names, read the one way every route lookup reads it.
//!
//! `<service>.<biome-or-env>.<project>.localhost` is a service's public host: browsers and
//! `curl` resolve every `*.localhost` name to loopback without any DNS set-up, so the gateway
//! on one loopback port can tell hundreds of biomes apart by the Host header alone.

use std::fmt;

use sandpit_domain::Name;

/// The top-level label every public host ends with.
pub const PUBLIC_SUFFIX: &str = "localhost";

/// The host of a request, normalised: lower-cased, without port and trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostName {
    /// `<service>.<biome>.<project>.localhost`, each label a valid sandpit name. `biome` is an
    /// environment's name for an environment base (`web.dev.shop.localhost`): telling the two
    /// apart is the owner's business, it knows which environments the project has.
    Service {
        service: String,
        biome: String,
        project: String,
    },
    /// Anything else (a bare `localhost`, an IP address, two labels, a label that is not a
    /// name), normalised the same way, so the owner can still answer 404 with the valid hosts.
    Other(String),
}

impl HostName {
    /// Reads a Host header (or a request target's authority): `Web.Alice.Shop.localhost.:8080`
    /// is `Service { service: "web", biome: "alice", project: "shop" }`. Never fails: what is
    /// not a service's host is [`HostName::Other`].
    pub fn parse(raw_host_header: &str) -> HostName {
        let host = normalise(raw_host_header);
        let labels: Vec<&str> = host.split('.').collect();
        match labels.as_slice() {
            [service, biome, project, suffix]
                if *suffix == PUBLIC_SUFFIX
                    && [service, biome, project]
                        .iter()
                        .all(|label| Name::parse(label).is_ok()) =>
            {
                HostName::Service {
                    service: (*service).to_owned(),
                    biome: (*biome).to_owned(),
                    project: (*project).to_owned(),
                }
            }
            _ => HostName::Other(host),
        }
    }

    /// The URL a service is reached at through a gateway listening on loopback `port`:
    /// `http://web.alice.shop.localhost:8080`, without a trailing slash so a path can follow;
    /// port 80 is left out, as browsers show it.
    pub fn public_url(service: &str, biome: &str, project: &str, port: u16) -> String {
        let host = HostName::Service {
            service: service.to_owned(),
            biome: biome.to_owned(),
            project: project.to_owned(),
        };
        match port {
            80 => format!("http://{host}"),
            port => format!("http://{host}:{port}"),
        }
    }
}

impl fmt::Display for HostName {
    /// The normalised host, as a Host header without port would carry it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostName::Service {
                service,
                biome,
                project,
            } => write!(f, "{service}.{biome}.{project}.{PUBLIC_SUFFIX}"),
            HostName::Other(host) => f.write_str(host),
        }
    }
}

/// Lower-cased, surrounding blanks trimmed, the port and one trailing dot removed. An IPv6
/// literal keeps its brackets (`[::1]:8080` → `[::1]`).
fn normalise(raw: &str) -> String {
    let raw = raw.trim();
    let without_port = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    };
    let without_dot = without_port.strip_suffix('.').unwrap_or(without_port);
    without_dot.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(service: &str, biome: &str, project: &str) -> HostName {
        HostName::Service {
            service: service.to_owned(),
            biome: biome.to_owned(),
            project: project.to_owned(),
        }
    }

    fn other(host: &str) -> HostName {
        HostName::Other(host.to_owned())
    }

    #[test]
    fn host_headers_are_read_as_services_or_others() {
        let cases = [
            ("web.alice.shop.localhost", service("web", "alice", "shop")),
            (
                "web.alice.shop.localhost:8080",
                service("web", "alice", "shop"),
            ),
            ("Web.ALICE.Shop.LocalHost", service("web", "alice", "shop")),
            ("web.alice.shop.localhost.", service("web", "alice", "shop")),
            (
                "web.alice.shop.localhost.:80",
                service("web", "alice", "shop"),
            ),
            ("web.alice.shop.localhost:", service("web", "alice", "shop")),
            ("  api.dev.shop.localhost  ", service("api", "dev", "shop")),
            (
                "grade-api.mr-12.ore-wise.localhost",
                service("grade-api", "mr-12", "ore-wise"),
            ),
            // Not three names before `localhost`.
            ("localhost", other("localhost")),
            ("localhost:8080", other("localhost")),
            ("alice.shop.localhost", other("alice.shop.localhost")),
            (
                "x.web.alice.shop.localhost",
                other("x.web.alice.shop.localhost"),
            ),
            ("web.alice.shop.example", other("web.alice.shop.example")),
            ("web..shop.localhost", other("web..shop.localhost")),
            // Labels that are not names.
            (
                "1web.alice.shop.localhost",
                other("1web.alice.shop.localhost"),
            ),
            (
                "web.al_ice.shop.localhost",
                other("web.al_ice.shop.localhost"),
            ),
            (
                "web.alice-.shop.localhost",
                other("web.alice-.shop.localhost"),
            ),
            // Addresses and garbage.
            ("127.0.0.1:8080", other("127.0.0.1")),
            ("[::1]:8080", other("[::1]")),
            ("[::1", other("[::1")),
            ("", other("")),
            ("host:port", other("host:port")),
        ];
        for (raw, expected) in cases {
            assert_eq!(HostName::parse(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn public_urls_name_the_port_unless_it_is_80() {
        let cases = [
            (8080, "http://web.alice.shop.localhost:8080"),
            (80, "http://web.alice.shop.localhost"),
        ];
        for (port, expected) in cases {
            assert_eq!(HostName::public_url("web", "alice", "shop", port), expected);
        }
    }

    #[test]
    fn a_public_url_parses_back_to_its_service() {
        let url = HostName::public_url("web", "alice", "shop", 4321);
        let host = url.strip_prefix("http://").unwrap();
        assert_eq!(HostName::parse(host), service("web", "alice", "shop"));
        assert_eq!(
            HostName::parse(host).to_string(),
            "web.alice.shop.localhost"
        );
    }
}
