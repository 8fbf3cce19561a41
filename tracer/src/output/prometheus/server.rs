//! The exporter: the metrics behind one mutex, shared by the sink that updates them and
//! the HTTP server (`http.rs`) that encodes them for a scrape; and `--prometheus ADDR`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};

use super::{http, GcMetrics};
use crate::model::records::Record;
use crate::output::{Sink, Tee};

/// The metrics behind the mutex. A panic while it was held cannot leave them in a state
/// worse than a missed record, so a poisoned lock is used anyway.
pub(super) fn lock(m: &Mutex<GcMetrics>) -> MutexGuard<'_, GcMetrics> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves the metrics on `/metrics` and hands out the sink that updates them.
#[derive(Clone)]
pub struct Exporter {
    metrics: Arc<Mutex<GcMetrics>>,
    addr: SocketAddr,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Exporter {
    /// Listen on `addr` and serve from a thread of its own until the process exits.
    /// Called before anything is attached or started, so a port in use or a privileged
    /// port is a one-line error that leaves the target alone.
    pub fn start(addr: SocketAddr) -> Result<Exporter> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("cannot serve Prometheus metrics on {addr}"))?;
        let addr = listener
            .local_addr()
            .context("cannot serve Prometheus metrics")?;
        let metrics = Arc::new(Mutex::new(GcMetrics::new()));
        http::spawn(listener, Arc::clone(&metrics))
            .context("cannot start the Prometheus metrics server")?;
        Ok(Exporter { metrics, addr })
    }

    /// The address actually listened on (the kernel's choice for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A sink that updates the metrics.
    pub fn sink(&self) -> PrometheusSink {
        PrometheusSink {
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// `primary`, with the metrics updated from the same records.
    pub fn tee(&self, primary: Box<dyn Sink + Send>) -> Box<dyn Sink + Send> {
        Box::new(Tee::new(primary, self.sink()))
    }

    /// Events lost so far for `pid`: not a record, so the session reports them here.
    pub fn set_lost_events(&self, pid: u32, lost: u64) {
        lock(&self.metrics).set_lost_events(pid, lost);
    }

    /// What a scrape would get, without counting as one.
    #[cfg(test)]
    pub fn encode(&self, format: super::Exposition) -> Result<String, fmt::Error> {
        lock(&self.metrics).encode(format)
    }
}

/// Updates the exporter's metrics from records.
pub struct PrometheusSink {
    metrics: Arc<Mutex<GcMetrics>>,
}

impl Sink for PrometheusSink {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        lock(&self.metrics).record(pid, rec);
        Ok(())
    }

    /// Nothing buffered: a scrape reads the registry as it is.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `--prometheus ADDR`: `HOST:PORT` (`127.0.0.1:9101`, `[::1]:9101`, `localhost:9101`)
/// or `:PORT` for every IPv4 interface, as Go programs spell it. Port 0 lets the kernel
/// pick (the session prints the address).
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!("'{s}' is not an address to listen on (HOST:PORT, like 127.0.0.1:9101, or :PORT)")
    };
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(bad)
}
