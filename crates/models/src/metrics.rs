//! Counters and histograms of the endpoint, rendered in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::load::LoadPhases;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    loads: BTreeMap<String, u64>,
    load_failures: BTreeMap<String, u64>,
    load_seconds: Histogram,
    load_phase_seconds: BTreeMap<&'static str, Histogram>,
    evictions: u64,
    hits: u64,
    requests: BTreeMap<(String, u16), u64>,
    request_seconds: BTreeMap<String, Histogram>,
    loaded: u64,
    memory_bytes: u64,
}

/// The endpoint's metrics. Model labels are registered names only, never arbitrary request input.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn load_succeeded(&self, model: &str, took: Duration, phases: &LoadPhases) {
        self.with(|m| {
            *m.loads.entry(model.to_string()).or_default() += 1;
            m.load_seconds.observe(took.as_secs_f64());
            for (phase, took) in phases.named() {
                m.load_phase_seconds
                    .entry(phase)
                    .or_default()
                    .observe(took.as_secs_f64());
            }
        });
    }

    pub fn load_failed(&self, model: &str) {
        self.with(|m| *m.load_failures.entry(model.to_string()).or_default() += 1);
    }

    pub fn evicted(&self) {
        self.with(|m| m.evictions += 1);
    }

    pub fn hit(&self) {
        self.with(|m| m.hits += 1);
    }

    /// The current number of loaded models and their memory charge.
    pub fn set_loaded(&self, count: usize, bytes: u64) {
        self.with(|m| {
            m.loaded = count as u64;
            m.memory_bytes = bytes;
        });
    }

    pub fn request(&self, model: &str, code: u16, took: Duration) {
        self.with(|m| {
            *m.requests.entry((model.to_string(), code)).or_default() += 1;
            m.request_seconds
                .entry(model.to_string())
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str("# HELP sandpit_model_loads_total Successful model loads.\n# TYPE sandpit_model_loads_total counter\n");
            for (model, n) in &m.loads {
                let _ = writeln!(out, "sandpit_model_loads_total{{model=\"{}\"}} {n}", label(model));
            }
            out.push_str("# HELP sandpit_model_load_failures_total Failed model loads.\n# TYPE sandpit_model_load_failures_total counter\n");
            for (model, n) in &m.load_failures {
                let _ = writeln!(out, "sandpit_model_load_failures_total{{model=\"{}\"}} {n}", label(model));
            }
            out.push_str("# HELP sandpit_model_load_seconds Time to read, verify and load a model.\n# TYPE sandpit_model_load_seconds histogram\n");
            m.load_seconds.render(&mut out, "sandpit_model_load_seconds", "");
            out.push_str("# HELP sandpit_model_load_phase_seconds Time of each phase of a successful load: read, verify (the digest, alongside extract and session), extract (from the zip), session (the engine's).\n# TYPE sandpit_model_load_phase_seconds histogram\n");
            for (phase, histogram) in &m.load_phase_seconds {
                histogram.render(&mut out, "sandpit_model_load_phase_seconds", &format!("phase=\"{phase}\""));
            }
            out.push_str("# HELP sandpit_model_evictions_total Models evicted to stay under the budget.\n# TYPE sandpit_model_evictions_total counter\n");
            let _ = writeln!(out, "sandpit_model_evictions_total {}", m.evictions);
            out.push_str("# HELP sandpit_model_cache_hits_total Requests answered by an already loaded model.\n# TYPE sandpit_model_cache_hits_total counter\n");
            let _ = writeln!(out, "sandpit_model_cache_hits_total {}", m.hits);
            out.push_str("# HELP sandpit_model_requests_total Inference requests by model and HTTP status.\n# TYPE sandpit_model_requests_total counter\n");
            for ((model, code), n) in &m.requests {
                let _ = writeln!(out, "sandpit_model_requests_total{{model=\"{}\",code=\"{code}\"}} {n}", label(model));
            }
            out.push_str("# HELP sandpit_model_request_seconds Inference request latency by model.\n# TYPE sandpit_model_request_seconds histogram\n");
            for (model, histogram) in &m.request_seconds {
                histogram.render(&mut out, "sandpit_model_request_seconds", &format!("model=\"{}\"", label(model)));
            }
            out.push_str("# HELP sandpit_models_loaded Models loaded now.\n# TYPE sandpit_models_loaded gauge\n");
            let _ = writeln!(out, "sandpit_models_loaded {}", m.loaded);
            out.push_str("# HELP sandpit_models_memory_bytes Memory charged for loaded models.\n# TYPE sandpit_models_memory_bytes gauge\n");
            let _ = writeln!(out, "sandpit_models_memory_bytes {}", m.memory_bytes);
            out
        })
    }
}
