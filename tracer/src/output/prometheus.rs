//! Prometheus metrics (`--prometheus ADDR`): one more view of the model's records, for
//! people who run the tracer next to their existing monitoring.
//!
//! [`GcMetrics`] is a registry of metric families built with the official Rust client
//! (`prometheus-client`), updated from the same [`Record`]s the other views get. The
//! [`Exporter`] shares it between its [`Sink`] (combined with the primary view by a
//! [`Tee`](super::Tee)) and a small HTTP server ([`http`]) that encodes it for
//! `GET /metrics`, in the OpenMetrics or the Prometheus text format as the scraper asks.
//! The exposition format is never written by hand.
//!
//! Names follow the Go runtime's own metrics, as the Go Prometheus client exports them
//! (`/gc/heap/live:bytes` → `go_gc_heap_live_bytes`), where the tracer's figure means the
//! same thing, so queries written for an instrumented program work on a traced one;
//! everything else is `gctrace_bpf_*`. Every series carries the traced process's `pid`
//! and `exe`. docs/prometheus.md lists them all.
//!
//! The sink and the server take one mutex, so a scrape sees the state after a whole
//! number of records: never a cycle counted whose heap figures are not in yet.
//!
//! Files, one job each: `families.rs` (the families and their registry), `update.rs`
//! (records → series), `series.rs` (label sets, and the one place that removes an ended
//! process's series), `server.rs` (the exporter and its sink), `http.rs` (`GET /metrics`).

mod families;
mod http;
mod series;
mod server;
mod update;

pub use self::families::{GcMetrics, DURATION_BUCKETS};
use self::server::lock;
pub use self::server::{parse_listen_addr, Exporter};

/// The text formats a scraper can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 text, what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for every other client (curl, older scrapers).
    Text,
}

impl Exposition {
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

#[cfg(test)]
mod tests;
