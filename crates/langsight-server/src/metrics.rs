//! Prometheus metrics of this process, rendered in the text exposition format.
//!
//! Hand-rolled rather than a metrics crate: a handful of counters and histograms with atomics is all we
//! need, and it keeps the dependency tree (and build time on two cores) small.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The original's HTTP duration buckets (seconds).
const HTTP_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Commit latency buckets: group commit makes most commits a few milliseconds.
const COMMIT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Publish → deliver latency of live events (seconds).
const DELIVERY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
/// Spans per ingest request (the SDK sends at most 50).
const BATCH_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0];

pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in micro-units so it can be an atomic integer.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

pub struct Metrics {
    pub sse_active: AtomicU64,
    pub sse_events_published: AtomicU64,
    pub sse_events_delivered: AtomicU64,
    /// Messages a slow client lost (it was told so in a `missed` frame).
    pub sse_events_dropped: AtomicU64,
    pub sse_delivery_seconds: Histogram,
    rate_limit: Mutex<BTreeMap<(String, &'static str), u64>>,
    http_requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    http_durations: Mutex<BTreeMap<(String, String), std::sync::Arc<Histogram>>>,
    pub spans_ingested: AtomicU64,
    /// Alerts that passed dedup and toggles (persisted and queued for delivery).
    pub alerts_fired: AtomicU64,
    /// Alerts skipped because the same kind and scope fired within the dedup window.
    pub alerts_deduplicated: AtomicU64,
    pub alert_deliveries_ok: AtomicU64,
    /// Deliveries given up after every retry, or refused by a full queue or the URL policy.
    pub alert_deliveries_failed: AtomicU64,
    pub ingest_batch_spans: Histogram,
    pub ingest_commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sse_active: AtomicU64::new(0),
            sse_events_published: AtomicU64::new(0),
            sse_events_delivered: AtomicU64::new(0),
            sse_events_dropped: AtomicU64::new(0),
            sse_delivery_seconds: Histogram::new(DELIVERY_BUCKETS),
            rate_limit: Mutex::new(BTreeMap::new()),
            http_requests: Mutex::new(BTreeMap::new()),
            http_durations: Mutex::new(BTreeMap::new()),
            spans_ingested: AtomicU64::new(0),
            alerts_fired: AtomicU64::new(0),
            alerts_deduplicated: AtomicU64::new(0),
            alert_deliveries_ok: AtomicU64::new(0),
            alert_deliveries_failed: AtomicU64::new(0),
            ingest_batch_spans: Histogram::new(BATCH_BUCKETS),
            ingest_commit_seconds: Histogram::new(COMMIT_BUCKETS),
        }
    }
}

/// The original's label normalisation: a segment longer than 8 characters made only of hex digits and
/// dashes is an id.
pub fn normalise_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .map(|seg| if seg.len() > 8 && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') { "{id}" } else { seg })
        .collect();
    let joined = parts.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn record_http(&self, method: &str, path: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.http_requests.lock() {
            *m.entry((method.to_string(), path.to_string(), status)).or_insert(0) += 1;
        }
        let h = self.http_durations.lock().ok().map(|mut m| {
            m.entry((method.to_string(), path.to_string()))
                .or_insert_with(|| std::sync::Arc::new(Histogram::new(HTTP_BUCKETS)))
                .clone()
        });
        if let Some(h) = h {
            h.observe(seconds);
        }
    }

    pub fn record_rate_limit(&self, route: &str, outcome: &'static str) {
        if let Ok(mut m) = self.rate_limit.lock() {
            *m.entry((route.to_string(), outcome)).or_insert(0) += 1;
        }
    }

    /// Shared-state health: Redis up, command latency, fallbacks, pub/sub reconnects.
    pub fn render_shared(&self, out: &mut String, shared: &langsight_shared::SharedState) {
        let m = &shared.metrics;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP langsight_rate_limit_decisions_total Rate-limit decisions by route and outcome (_local = Redis unreachable, decided by this worker).
");
        out.push_str(
            "# TYPE langsight_rate_limit_decisions_total counter
",
        );
        if let Ok(rl) = self.rate_limit.lock() {
            for ((route, outcome), n) in rl.iter() {
                let _ = writeln!(
                    out,
                    "langsight_rate_limit_decisions_total{{route=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP langsight_shared_state_backend The shared-state backend in use.
# TYPE langsight_shared_state_backend gauge
langsight_shared_state_backend{{backend=\"{}\"}} 1",
            shared.backend_name()
        );
        if shared.redis.is_none() {
            return;
        }
        out.push_str(
            "# HELP langsight_redis_up 1 when Redis answers, 0 while this worker runs on local fallbacks.
# TYPE langsight_redis_up gauge
",
        );
        let _ = writeln!(out, "langsight_redis_up {}", get(&m.redis_up));
        out.push_str(
            "# HELP langsight_redis_command_seconds Redis command round-trip time.
# TYPE langsight_redis_command_seconds histogram
",
        );
        let mut cumulative = 0;
        for (b, c) in langsight_shared::metrics::COMMAND_BUCKETS.iter().zip(&m.command_seconds.counts) {
            cumulative += get(c);
            let _ = writeln!(out, "langsight_redis_command_seconds_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = get(&m.command_seconds.count);
        let _ = writeln!(out, "langsight_redis_command_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "langsight_redis_command_seconds_sum {}", get(&m.command_seconds.sum_nanos) as f64 / 1e9);
        let _ = writeln!(out, "langsight_redis_command_seconds_count {count}");
        out.push_str("# HELP langsight_redis_fallbacks_total Operations served locally because Redis was unreachable, by feature.
# TYPE langsight_redis_fallbacks_total counter
");
        for (feature, a) in [
            ("rate_limit", &m.fallback_rate_limit),
            ("alert_dedup", &m.fallback_dedup),
            ("event_bus", &m.fallback_bus),
            ("circuit_breaker", &m.fallback_breaker),
        ] {
            let _ = writeln!(out, "langsight_redis_fallbacks_total{{feature=\"{feature}\"}} {}", get(a));
        }
        out.push_str("# HELP langsight_redis_pubsub_reconnects_total Times the event-bus subscription was lost and re-established.
# TYPE langsight_redis_pubsub_reconnects_total counter
");
        let _ = writeln!(out, "langsight_redis_pubsub_reconnects_total {}", get(&m.pubsub_reconnects));
        out.push_str("# HELP langsight_redis_bus_messages_read_total Event-log messages this worker read from Redis (only while it has live-view subscribers).
# TYPE langsight_redis_bus_messages_read_total counter
");
        let _ = writeln!(out, "langsight_redis_bus_messages_read_total {}", get(&m.bus_messages_read));
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP langsight_http_requests_total HTTP requests by method, path and status.\n");
        out.push_str("# TYPE langsight_http_requests_total counter\n");
        if let Ok(m) = self.http_requests.lock() {
            for ((method, path, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "langsight_http_requests_total{{method=\"{}\",path=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(path)
                );
            }
        }
        out.push_str("# HELP langsight_http_request_duration_seconds HTTP request duration.\n");
        out.push_str("# TYPE langsight_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.http_durations.lock() {
            for ((method, path), h) in m.iter() {
                let labels = format!("method=\"{}\",path=\"{}\"", escape(method), escape(path));
                h.render(&mut out, "langsight_http_request_duration_seconds", &labels);
            }
        }
        for (name, help, v) in [
            ("langsight_alerts_fired_total", "Alerts persisted and queued for delivery.", &self.alerts_fired),
            (
                "langsight_alerts_deduplicated_total",
                "Alerts skipped as duplicates within the dedup window.",
                &self.alerts_deduplicated,
            ),
            ("langsight_alert_deliveries_total{outcome=\"delivered\"}", "", &self.alert_deliveries_ok),
            ("langsight_alert_deliveries_total{outcome=\"failed\"}", "", &self.alert_deliveries_failed),
        ] {
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            } else if name.ends_with("delivered\"}") {
                out.push_str("# HELP langsight_alert_deliveries_total Alert deliveries per channel attempt outcome.\n");
                out.push_str("# TYPE langsight_alert_deliveries_total counter\n");
            }
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out.push_str("# HELP langsight_spans_ingested_total Spans accepted and committed.\n");
        out.push_str("# TYPE langsight_spans_ingested_total counter\n");
        let _ = writeln!(out, "langsight_spans_ingested_total {}", self.spans_ingested.load(Ordering::Relaxed));
        out.push_str("# HELP langsight_ingest_batch_spans Spans per ingest request.\n");
        out.push_str("# TYPE langsight_ingest_batch_spans histogram\n");
        self.ingest_batch_spans.render(&mut out, "langsight_ingest_batch_spans", "");
        out.push_str("# HELP langsight_ingest_commit_seconds Time from a request's spans reaching storage to their durable commit.\n");
        out.push_str("# TYPE langsight_ingest_commit_seconds histogram\n");
        self.ingest_commit_seconds.render(&mut out, "langsight_ingest_commit_seconds", "");
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP langsight_active_sse_connections Live-view streams open on this worker.\n# TYPE langsight_active_sse_connections gauge\nlangsight_active_sse_connections {}",
            get(&self.sse_active)
        );
        let _ = writeln!(
            out,
            "# HELP langsight_sse_events_published_total Live events published by this worker.\n# TYPE langsight_sse_events_published_total counter\nlangsight_sse_events_published_total {}",
            get(&self.sse_events_published)
        );
        let _ = writeln!(
            out,
            "# HELP langsight_sse_events_delivered_total Live events written to clients of this worker.\n# TYPE langsight_sse_events_delivered_total counter\nlangsight_sse_events_delivered_total {}",
            get(&self.sse_events_delivered)
        );
        let _ = writeln!(
            out,
            "# HELP langsight_sse_events_dropped_total Messages slow clients lost (they were told).\n# TYPE langsight_sse_events_dropped_total counter\nlangsight_sse_events_dropped_total {}",
            get(&self.sse_events_dropped)
        );
        out.push_str("# HELP langsight_sse_delivery_seconds Publish to delivery latency of live events.\n# TYPE langsight_sse_delivery_seconds histogram\n");
        self.sse_delivery_seconds.render(&mut out, "langsight_sse_delivery_seconds", "");
        if let Some(rss) = resident_memory_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

/// RSS from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalised() {
        assert_eq!(normalise_path("/api/agents/sessions/0123456789abcdef"), "/api/agents/sessions/{id}");
        assert_eq!(normalise_path("/api/auth/api-keys"), "/api/auth/api-keys");
        assert_eq!(normalise_path("/api/projects/deadbeef"), "/api/projects/deadbeef");
    }

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        m.ingest_batch_spans.observe(3.0);
        m.ingest_batch_spans.observe(30.0);
        let text = m.render();
        assert!(text.contains("langsight_ingest_batch_spans_bucket{le=\"5\"} 1"), "{text}");
        assert!(text.contains("langsight_ingest_batch_spans_bucket{le=\"50\"} 2"));
        assert!(text.contains("langsight_ingest_batch_spans_count 2"));
    }
}
