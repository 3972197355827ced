//! HTTP health probes against a service's health path on loopback.

use std::time::Duration;

/// Probes `http://127.0.0.1:<port><path>`; healthy means any 2xx.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    client: reqwest::Client,
}

/// The outcome of one probe, with enough detail to explain an unhealthy service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Healthy,
    Unhealthy(String),
}

impl HealthProbe {
    pub fn new() -> HealthProbe {
        let client = reqwest::Client::builder()
            // Probes go to loopback only; a user's HTTP_PROXY must never intercept them.
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with no TLS and no proxy always builds");
        HealthProbe { client }
    }

    pub fn url(port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{port}{path}")
    }

    pub async fn probe(&self, url: &str) -> ProbeResult {
        match self.client.get(url).send().await {
            Ok(response) if response.status().is_success() => ProbeResult::Healthy,
            Ok(response) => ProbeResult::Unhealthy(format!("{url} answered {}", response.status())),
            Err(error) if error.is_connect() => {
                ProbeResult::Unhealthy(format!("nothing is listening on {url}"))
            }
            Err(error) if error.is_timeout() => {
                ProbeResult::Unhealthy(format!("{url} did not answer within 2s"))
            }
            Err(error) => ProbeResult::Unhealthy(format!("{url}: {error}")),
        }
    }
}

impl Default for HealthProbe {
    fn default() -> Self {
        HealthProbe::new()
    }
}
