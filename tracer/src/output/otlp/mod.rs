//! OTLP export (`--otlp ENDPOINT`): the metrics of the Prometheus view, and each GC
//! cycle and stop of the world as a span, pushed to an OpenTelemetry Collector (or any
//! OTLP receiver) over gRPC or http/protobuf.
//!
//! Built on the official OTLP types and gRPC stubs (`opentelemetry-proto`, `tonic`)
//! rather than the SDK's pipeline: the SDK binds one resource to a provider, while one
//! tracer run sees many processes, each of which is an OTel resource of its own
//! (`process.pid`, `process.executable.name`, its container and pod), and the spans take
//! their times from the records, not from a clock read when they are reported.
//!
//! The [`Sink`] updates a shared [`State`] under a mutex; a thread of its own ([`run`])
//! sends the spans every `OTEL_BSP_SCHEDULE_DELAY` (5 s) and the metrics every
//! `OTEL_METRIC_EXPORT_INTERVAL` (60 s), and everything once more when the run ends.
//! Nothing is lost silently: every failed or partly rejected export, and every span the
//! bounded queue could not hold, is counted, warned about and in the exit summary.

mod config;
mod metrics;
mod names;
mod spans;
mod state;
mod transport;

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use super::{Sink, Tee};
use crate::model::records::Record;
use spans::Ids;
use state::State;
use transport::Transport;

pub use config::{Config, Protocol};
pub use names::{Kind, Name, ALL as METRICS};
pub use state::resource_attributes;

/// Upper bounds of the duration histograms' buckets, in seconds: the Prometheus view's
/// (1 µs doubling, 25 buckets), so both show the same distribution.
pub(crate) static DURATION_BOUNDS_S: std::sync::LazyLock<Vec<f64>> =
    std::sync::LazyLock::new(|| {
        let (start, factor, count) = super::prometheus::DURATION_BUCKETS;
        (0..i32::from(count))
            .map(|i| start * factor.powi(i))
            .collect()
    });

/// Spans waiting to be sent, at most; more are dropped and counted (a Collector that is
/// down must not make the tracer grow without bound).
const MAX_QUEUED_SPANS: usize = 65_536;
/// Spans per request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`'s default): well under the 4 MiB
/// a gRPC receiver takes by default.
const SPANS_PER_REQUEST: usize = 512;
/// Processes per metrics request, for the same reason.
const PROCESSES_PER_REQUEST: usize = 64;

pub(crate) fn attr_str(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..KeyValue::default()
    }
}

pub(crate) fn attr_int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..KeyValue::default()
    }
}

/// What the exporter has done, for the warnings and the exit summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub failed_requests: u64,
    pub points_sent: u64,
    pub points_lost: u64,
    pub spans_sent: u64,
    pub spans_lost: u64,
    /// Spans the queue had no room for.
    pub spans_dropped: u64,
    pub last_error: Option<String>,
    /// The last request failed: the next failure is not warned about again.
    failing: bool,
}

struct Shared {
    state: Mutex<State>,
    stats: Mutex<Stats>,
    config: Config,
    /// Wakes the exporter thread: to stop, or to send spans early when many are queued.
    wake: mpsc::Sender<Wake>,
    /// Warnings kept for the end instead of printed (the TUI owns the terminal).
    held: Mutex<Option<Vec<String>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held loses at most a record's update.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn warn(&self, line: String) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_mut() {
            Some(lines) => lines.push(line),
            None => eprintln!("{line}"),
        }
    }

    /// A request not tried after another failed: its `items` are not delivered.
    fn skipped(&self, items: u64, spans: bool) {
        let mut s = self.stats();
        if spans {
            s.spans_lost += items;
        } else {
            s.points_lost += items;
        }
    }

    /// Note the outcome of one request of `items` spans or points.
    fn outcome(&self, result: Result<u64>, items: u64, spans: bool) {
        let mut s = self.stats();
        s.requests += 1;
        let (sent, lost) = match result {
            Ok(rejected) => {
                s.failing = false;
                if rejected > 0 {
                    self.warn(format!(
                        "gctrace-bpf: warning: the OTLP receiver at {} rejected {rejected} of {items} {}",
                        self.config.endpoint,
                        if spans { "spans" } else { "metric points" }
                    ));
                }
                (items.saturating_sub(rejected), rejected.min(items))
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if !s.failing {
                    self.warn(format!(
                        "gctrace-bpf: warning: OTLP export to {} ({}) failed: {msg}; {items} {} \
                         not delivered (failures are counted in the exit summary)",
                        self.config.endpoint,
                        self.config.protocol.as_str(),
                        if spans { "spans" } else { "metric points" }
                    ));
                }
                s.failing = true;
                s.failed_requests += 1;
                s.last_error = Some(msg);
                (0, items)
            }
        };
        if spans {
            s.spans_sent += sent;
            s.spans_lost += lost;
        } else {
            s.points_sent += sent;
            s.points_lost += lost;
        }
    }
}

enum Wake {
    /// Enough spans for several requests are queued: send them now, not at the next
    /// tick (at 20,000 stops a second the queue would fill up within the 5 s delay).
    Spans,
    Shutdown,
}

/// Queued spans that wake the exporter early.
const WAKE_AT_SPANS: usize = 8 * SPANS_PER_REQUEST;

/// Exports to one endpoint from a thread of its own; hands out the sink that feeds it.
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", &self.shared.config.endpoint)
            .finish()
    }
}

impl Exporter {
    /// Start exporting; the records' monotonic times are placed by the current clocks.
    pub fn start(config: Config) -> Result<Exporter> {
        let realtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let offset = realtime - i128::from(crate::clock::monotonic_ns());
        Exporter::start_with_clock(config, offset)
    }

    /// Start exporting records whose monotonic ns are `clock_offset` ns before Unix time
    /// (a recording's, for replay).
    pub fn start_with_clock(config: Config, clock_offset: i128) -> Result<Exporter> {
        let mut transport = Transport::new(&config)?;
        let (wake, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                procs: BTreeMap::new(),
                finished: Vec::new(),
                spans: Vec::new(),
                ids: Ids::new(clock_offset as u64 ^ u64::from(std::process::id())),
                clock_offset,
                dropped: 0,
            }),
            stats: Mutex::new(Stats::default()),
            config,
            wake,
            held: Mutex::new(None),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("otlp-export".to_owned())
                .spawn(move || run(&shared, &mut transport, &rx))
                .context("cannot start the OTLP exporter thread")?
        };
        Ok(Exporter {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Keep warnings until [`Exporter::finish`] instead of printing them as they happen:
    /// for the TUI, which owns the terminal while it runs.
    pub fn hold_warnings(&self) {
        let mut held = self.shared.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get_or_insert_with(Vec::new);
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A sink that feeds the exporter.
    pub fn sink(&self) -> OtlpSink {
        OtlpSink {
            shared: Arc::clone(&self.shared),
        }
    }

    /// `primary`, with the records also exported.
    pub fn tee(&self, primary: Box<dyn Sink + Send>) -> Box<dyn Sink + Send> {
        Box::new(Tee::new(primary, self.sink()))
    }

    /// Events lost so far for `pid` (the kernel's live count is not a record).
    pub fn set_lost_events(&self, pid: u32, lost: u64) {
        let mut st = self.shared.state();
        if let Some(p) = st.procs.get_mut(&pid) {
            p.metrics.lost_events(lost);
        }
    }

    /// Send what is left, stop the thread, and say what was exported (one line).
    pub fn finish(&self) -> Stats {
        let _ = self.shared.wake.send(Wake::Shutdown);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        let held = self
            .shared
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for line in held.unwrap_or_default() {
            eprintln!("{line}");
        }
        self.stats()
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.shared.stats().clone();
        s.spans_dropped = self.shared.state().dropped;
        s
    }
}

/// The exporter thread: spans every `span_delay`, metrics every `metric_interval`,
/// everything when told to stop (or when every sender is gone).
fn run(shared: &Shared, transport: &mut Transport, rx: &mpsc::Receiver<Wake>) {
    let config = shared.config.clone();
    let mut next_metrics = Instant::now() + config.metric_interval;
    loop {
        let last = match rx.recv_timeout(config.span_delay) {
            Ok(Wake::Shutdown) | Err(RecvTimeoutError::Disconnected) => true,
            Ok(Wake::Spans) | Err(RecvTimeoutError::Timeout) => false,
        };
        // Once a request of this round failed, the rest are not tried (counted as not
        // delivered): a receiver that hangs costs one timeout a round, and at exit the
        // tracer does not wait a timeout per queued request.
        let failed_before = shared.stats().failed_requests;
        let failed_now = || shared.stats().failed_requests > failed_before;
        let spans = shared.state().take_spans();
        for (req, n) in spans {
            if failed_now() {
                shared.skipped(n, true);
            } else {
                shared.outcome(transport.traces(req), n, true);
            }
        }
        if last || Instant::now() >= next_metrics {
            next_metrics = Instant::now() + config.metric_interval;
            let requests = shared.state().take_metrics();
            for (req, n) in requests {
                if failed_now() {
                    shared.skipped(n, false);
                } else {
                    shared.outcome(transport.metrics(req), n, false);
                }
            }
        }
        if last {
            return;
        }
    }
}

/// Feeds records to the exporter.
pub struct OtlpSink {
    shared: Arc<Shared>,
}

impl Sink for OtlpSink {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        let queued = {
            let mut st = self.shared.state();
            st.record(pid, rec);
            st.spans.len()
        };
        if queued == WAKE_AT_SPANS {
            let _ = self.shared.wake.send(Wake::Spans);
        }
        Ok(())
    }

    /// The exporter thread sends on its own schedule.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The exit summary's line.
pub fn summary_line(config: &Config, s: &Stats) -> String {
    let mut line = format!(
        "OTLP export to {} ({}): {} metric points and {} spans sent",
        config.endpoint,
        config.protocol.as_str(),
        s.points_sent,
        s.spans_sent
    );
    if s.failed_requests > 0 || s.points_lost > 0 || s.spans_lost > 0 || s.spans_dropped > 0 {
        line.push_str(&format!(
            "; NOT delivered: {} metric points and {} spans ({} of {} requests failed{}){}",
            s.points_lost,
            s.spans_lost + s.spans_dropped,
            s.failed_requests,
            s.requests,
            s.last_error
                .as_deref()
                .map(|e| format!(", last: {e}"))
                .unwrap_or_default(),
            if s.spans_dropped > 0 {
                format!("; {} spans found the queue full", s.spans_dropped)
            } else {
                String::new()
            }
        ));
    }
    line
}

#[cfg(test)]
mod tests;
