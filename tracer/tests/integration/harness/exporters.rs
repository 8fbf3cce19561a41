//! Talking to what a live tracer serves (`--prometheus`): waiting for it, the HTTP
//! client, the address it says it serves on. Shared by the Prometheus and fleet tests,
//! which both scrape a running tracer.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `f` every 100 ms until it returns Some, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A scraper's HTTP client: bounded in time, an error status handed back as a response
/// (the tests judge statuses themselves), and no proxy from the environment (the tracer
/// serves on loopback).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// `http://HOST:PORT/metrics` from the tracer's stderr line, once it has printed it.
pub fn served_url(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        let url = l.strip_prefix("gctrace-bpf: serving Prometheus metrics on ")?;
        Some(url.trim().to_owned())
    })
}
