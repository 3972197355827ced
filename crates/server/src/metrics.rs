//! `/metrics`: requests by matched route, method and status, a duration histogram by route, and
//! gauges of what the machine runs (biomes by state from the daemon, pipelines by state), in
//! Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// The matched route of a request, carried on its response to [`record`].
#[derive(Debug, Clone)]
struct RouteLabel(String);

#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket of [`BUCKETS`]: requests at most that long (not cumulative; summed on render).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    requests: BTreeMap<(String, String, u16), u64>,
    durations: BTreeMap<String, Histogram>,
}

impl Metrics {
    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut recorded = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *recorded
            .requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        let histogram = recorded.durations.entry(route.to_owned()).or_default();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[bucket] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The text exposition, with `biomes` (state → count) from the daemon when it runs and
    /// `pipelines` (state → count, every state) from the state store.
    pub fn render(
        &self,
        biomes: &BTreeMap<String, u64>,
        pipelines: &BTreeMap<String, u64>,
    ) -> String {
        let recorded = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP sandpit_server_requests_total Requests answered, by matched route, method and status.\n");
        out.push_str("# TYPE sandpit_server_requests_total counter\n");
        for ((route, method, status), count) in &recorded.requests {
            let _ = writeln!(
                out,
                "sandpit_server_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP sandpit_server_request_duration_seconds Time to answer a request, by matched route.\n");
        out.push_str("# TYPE sandpit_server_request_duration_seconds histogram\n");
        for (route, histogram) in &recorded.durations {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "sandpit_server_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "sandpit_server_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "sandpit_server_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "sandpit_server_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        out.push_str("# HELP sandpit_biomes Biomes the supervisor runs, by state (none when it is stopped).\n");
        out.push_str("# TYPE sandpit_biomes gauge\n");
        for (state, count) in biomes {
            let _ = writeln!(out, "sandpit_biomes{{state=\"{}\"}} {count}", escape(state));
        }
        out.push_str("# HELP sandpit_pipelines Pipeline runs, by state.\n");
        out.push_str("# TYPE sandpit_pipelines gauge\n");
        for (state, count) in pipelines {
            let _ = writeln!(
                out,
                "sandpit_pipelines{{state=\"{}\"}} {count}",
                escape(state)
            );
        }
        out
    }
}

/// A label value as Prometheus reads it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Inside routing (a route layer): puts the matched route on the response for [`record`].
pub async fn label(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// Around routing: counts the request and its time under its route (or `unmatched`).
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Methods outside HTTP's own set are counted together: a client inventing methods must not
    // grow the series without bound.
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "OTHER",
    }
    .to_owned();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or(UNMATCHED, |label| label.0.as_str());
    state.metrics().observe(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_by_route_and_accumulates_buckets() {
        let metrics = Metrics::default();
        metrics.observe("/healthz", "GET", 200, 0.001);
        metrics.observe("/healthz", "GET", 200, 0.2);
        metrics.observe(UNMATCHED, "GET", 404, 0.001);
        let biomes = BTreeMap::from([("healthy".to_owned(), 2)]);
        let pipelines = BTreeMap::from([("running".to_owned(), 0), ("queued".to_owned(), 3)]);
        let text = metrics.render(&biomes, &pipelines);
        for line in [
            "sandpit_server_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2",
            "sandpit_server_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
            "sandpit_server_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1",
            "sandpit_server_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.25\"} 2",
            "sandpit_server_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 2",
            "sandpit_server_request_duration_seconds_count{route=\"/healthz\"} 2",
            "sandpit_biomes{state=\"healthy\"} 2",
            "sandpit_pipelines{state=\"running\"} 0",
            "sandpit_pipelines{state=\"queued\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
