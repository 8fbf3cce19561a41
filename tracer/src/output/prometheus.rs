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

mod http;
mod series;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{Context, Result};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use self::series::LINGER;
use self::series::{
    note, CgroupLabels, FindingLabels, InfoLabels, Known, PhaseLabels, StwLabels, Target,
    TriggerLabels,
};
use super::{Sink, Tee};
use crate::events::Trigger;
use crate::records::{AllocRecord, GcRecord, ProcessInfo, Record, StwRecord, Summary};

/// Histograms of durations, with buckets fine enough for microsecond pauses and wide
/// enough for a mark phase of seconds.
type Durations<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// Bucket bounds of every duration histogram, in seconds: 1 µs doubling to ~16.8 s. Go's
/// own pause histograms are finer, but 25 buckets per series keep a fleet's scrape small
/// and still separate a 50 µs pause from a 100 µs one.
pub const DURATION_BUCKETS: (f64, f64, u16) = (1e-6, 2.0, 25);

fn duration_histogram() -> Histogram {
    let (start, factor, count) = DURATION_BUCKETS;
    Histogram::new(exponential_buckets(start, factor, count))
}

fn durations<L: Clone + std::hash::Hash + Eq>() -> Durations<L> {
    Family::new_with_constructor(duration_histogram)
}

/// The metric families, updated from records. See docs/prometheus.md for what each means.
pub struct GcMetrics {
    registry: Registry,
    /// Each pid's `exe` and cgroup labels (from its `process` record), and the label
    /// values its series used, to remove them once it has ended.
    procs: HashMap<u32, Known>,
    info: Family<InfoLabels, Gauge>,
    cycles_runtime: Family<Target, Counter>,
    cycles_traced: Family<TriggerLabels, Counter>,
    pauses_gc: Durations<StwLabels>,
    pauses_other: Durations<StwLabels>,
    cycle_pause: Durations<Target>,
    phases: Durations<PhaseLabels>,
    heap_live: Family<Target, Gauge>,
    heap_start: Family<Target, Gauge>,
    heap_end: Family<Target, Gauge>,
    heap_goal: Family<Target, Gauge>,
    goroutines: Family<Target, Gauge>,
    gomaxprocs: Family<Target, Gauge>,
    gogc: Family<Target, Gauge>,
    memory_limit: Family<Target, Gauge>,
    gc_cpu_fraction: Family<Target, FloatGauge>,
    gc_cpu_seconds: Family<PhaseLabels, FloatCounter>,
    alloc_bytes: Family<Target, Counter>,
    alloc_objects: Family<Target, Counter>,
    alloc_rate: Family<Target, Gauge>,
    lost_events: Family<Target, Counter>,
    findings: Family<FindingLabels, Gauge>,
}

impl Default for GcMetrics {
    fn default() -> Self {
        GcMetrics::new()
    }
}

impl GcMetrics {
    pub fn new() -> GcMetrics {
        let mut m = GcMetrics {
            registry: Registry::default(),
            procs: HashMap::new(),
            info: Family::default(),
            cycles_runtime: Family::default(),
            cycles_traced: Family::default(),
            pauses_gc: durations(),
            pauses_other: durations(),
            cycle_pause: durations(),
            phases: durations(),
            heap_live: Family::default(),
            heap_start: Family::default(),
            heap_end: Family::default(),
            heap_goal: Family::default(),
            goroutines: Family::default(),
            gomaxprocs: Family::default(),
            gogc: Family::default(),
            memory_limit: Family::default(),
            gc_cpu_fraction: Family::default(),
            gc_cpu_seconds: Family::default(),
            alloc_bytes: Family::default(),
            alloc_objects: Family::default(),
            alloc_rate: Family::default(),
            lost_events: Family::default(),
            findings: Family::default(),
        };
        // Counters get `_total` and unit'd metrics their unit appended by the encoder:
        // "go_gc_heap_allocs" with Unit::Bytes is exported as go_gc_heap_allocs_bytes_total.
        let r = &mut m.registry;
        r.register(
            "gctrace_bpf_target_info",
            "The traced process: 1 for each pid, with its Go version and architecture",
            m.info.clone(),
        );
        r.register(
            "go_gc_cycles_total_gc_cycles",
            "Count of all completed GC cycles (the runtime's own number of the last cycle \
             seen, like /gc/cycles/total:gc-cycles; counted from the attach when the binary \
             does not let the tracer read it)",
            m.cycles_runtime.clone(),
        );
        r.register(
            "gctrace_bpf_gc_cycles",
            "GC cycles completed while traced, by trigger: heap, time (2 minutes without \
             GC), forced (runtime.GC, debug.FreeOSMemory) or unknown",
            m.cycles_traced.clone(),
        );
        r.register_with_unit(
            "go_sched_pauses_total_gc",
            "Distribution of individual GC-related stop-the-world pause latencies, from \
             deciding to stop the world until it is started again, by the runtime's reason \
             (like /sched/pauses/total/gc:seconds)",
            Unit::Seconds,
            m.pauses_gc.clone(),
        );
        r.register_with_unit(
            "go_sched_pauses_total_other",
            "Distribution of individual non-GC-related stop-the-world pause latencies, by the \
             runtime's reason (like /sched/pauses/total/other:seconds; Go 1.19-1.20 name no \
             reason: unknown)",
            Unit::Seconds,
            m.pauses_other.clone(),
        );
        r.register_with_unit(
            "gctrace_bpf_gc_pause",
            "Stop-the-world time of each GC cycle, all its stops together (MemStats.PauseNs)",
            Unit::Seconds,
            m.cycle_pause.clone(),
        );
        r.register_with_unit(
            "gctrace_bpf_gc_phase",
            "Wall-clock duration of each GC cycle's phases: sweep_termination, mark, \
             mark_termination (gctrace's ms clock)",
            Unit::Seconds,
            m.phases.clone(),
        );
        r.register_with_unit(
            "go_gc_heap_live",
            "Heap memory occupied by live objects that were marked by the previous GC \
             (gctrace's third heap figure)",
            Unit::Bytes,
            m.heap_live.clone(),
        );
        r.register_with_unit(
            "gctrace_bpf_gc_heap_start",
            "Heap in use when the last completed GC cycle started (gctrace's first heap figure)",
            Unit::Bytes,
            m.heap_start.clone(),
        );
        r.register_with_unit(
            "gctrace_bpf_gc_heap_end",
            "Heap in use at the last completed GC cycle's mark termination (gctrace's \
             second heap figure)",
            Unit::Bytes,
            m.heap_end.clone(),
        );
        r.register_with_unit(
            "gctrace_bpf_gc_heap_goal",
            "Heap goal of the last completed GC cycle (gctrace's MB goal); \
             go_gc_heap_goal_bytes would be the goal of the next one",
            Unit::Bytes,
            m.heap_goal.clone(),
        );
        r.register(
            "go_sched_goroutines_goroutines",
            "Goroutines as of the last GC cycle's end: runtime.NumGoroutine() plus the \
             dead goroutines cached on Ps (up to 64 per P)",
            m.goroutines.clone(),
        );
        r.register(
            "go_sched_gomaxprocs_threads",
            "The current runtime.GOMAXPROCS setting, as of the last GC cycle",
            m.gomaxprocs.clone(),
        );
        r.register(
            "go_gc_gogc_percent",
            "Heap size target percentage (GOGC, debug.SetGCPercent) in force at the last \
             GC cycle; -1 when off",
            m.gogc.clone(),
        );
        r.register_with_unit(
            "go_gc_gomemlimit",
            "Go runtime memory limit (GOMEMLIMIT, debug.SetMemoryLimit) in force at the last \
             GC cycle, math.MaxInt64 when none",
            Unit::Bytes,
            m.memory_limit.clone(),
        );
        r.register(
            "gctrace_bpf_gc_cpu_fraction",
            "The GC's share of the CPU available since the program started, as of the last \
             cycle (gctrace's P%, a whole percent, divided by 100)",
            m.gc_cpu_fraction.clone(),
        );
        r.register_with_unit(
            "gctrace_bpf_gc_cpu",
            "CPU time spent by the GC cycles completed while traced (gctrace's ms cpu), by \
             phase: sweep_termination, assist, background, idle, mark_termination",
            Unit::Seconds,
            m.gc_cpu_seconds.clone(),
        );
        r.register_with_unit(
            "go_gc_heap_allocs",
            "Cumulative sum of memory allocated to the heap by the application since it \
             started (the runtime's own counter, read about once a second)",
            Unit::Bytes,
            m.alloc_bytes.clone(),
        );
        r.register(
            "gctrace_bpf_heap_allocs_objects",
            "Heap objects allocated while traced, counted by the allocation probes \
             (--allocs exact; scaled estimates with --allocs sample)",
            m.alloc_objects.clone(),
        );
        r.register(
            "gctrace_bpf_alloc_rate_bytes_per_second",
            "Allocation rate between the last two reads of the runtime's allocation counter",
            m.alloc_rate.clone(),
        );
        r.register(
            "gctrace_bpf_lost_events",
            "Events the kernel could not deliver (ring buffer full) or the decoder could not \
             use; the figures above miss what they described",
            m.lost_events.clone(),
        );
        r.register(
            "gctrace_bpf_finding_active",
            "1 while the finding (docs/findings.md) is active, 0 once it has ended",
            m.findings.clone(),
        );
        m
    }

    fn target(&self, pid: u32) -> Target {
        match self.procs.get(&pid) {
            Some(k) => k.target.clone(),
            None => Target {
                pid,
                ..Target::default()
            },
        }
    }

    /// The book of `pid`, made when a record comes before its `process` record.
    fn known(&mut self, pid: u32) -> &mut Known {
        self.procs.entry(pid).or_insert_with(|| {
            Known::new(Target {
                pid,
                ..Target::default()
            })
        })
    }

    /// Update the metrics of process `pid` from one of its records.
    pub fn record(&mut self, pid: u32, rec: &Record) {
        match rec {
            Record::Process(p) => self.process(pid, p),
            Record::Gc(g) => self.gc(pid, g),
            Record::Stw(s) => self.stw(pid, s),
            Record::Alloc(a) => self.alloc(pid, a),
            Record::Summary(s) => self.summary(pid, s),
            Record::Settings(s) => self.settings(pid, s.gogc, s.memory_limit_bytes, s.gomaxprocs),
            Record::Finding(f) => {
                let labels = FindingLabels {
                    target: self.target(pid),
                    id: f.id.as_str(),
                    severity: f.severity.as_str(),
                };
                let on = i64::from(f.state == crate::records::FindingState::Start);
                self.findings.get_or_create(&labels).set(on);
                let used = (labels.id, labels.severity);
                let k = self.known(pid);
                if !k.findings.contains(&used) {
                    k.findings.push(used);
                }
            }
            // Top types and sites are a profile, not a time series: the JSON and the TUI
            // show them.
            Record::AllocTypes(_) | Record::AllocSites(_) => {}
        }
    }

    fn process(&mut self, pid: u32, p: &ProcessInfo) {
        // A pid reused by a new process: the old one's series go first.
        if self.procs.get(&pid).is_some_and(|k| k.ended.is_some()) {
            self.remove(pid);
        }
        self.expire(Instant::now(), false);
        let target = Target {
            pid,
            exe: p.exe.clone(),
            labels: CgroupLabels(std::sync::Arc::new(p.labels.clone())),
        };
        let info = InfoLabels {
            target: target.clone(),
            go_version: p.go_version.clone(),
            arch: p.arch.clone(),
        };
        self.info.get_or_create(&info).set(1);
        let k = self.known(pid);
        k.target = target.clone();
        k.info = Some(info);
        self.settings(pid, p.gogc, p.memory_limit_bytes, p.gomaxprocs);
    }

    /// GOGC, GOMEMLIMIT and GOMAXPROCS as last read (at attach, then as they change).
    fn settings(
        &mut self,
        pid: u32,
        gogc: Option<i32>,
        memory_limit: Option<i64>,
        gomaxprocs: Option<u32>,
    ) {
        let target = self.target(pid);
        if let Some(n) = gomaxprocs {
            self.gomaxprocs.get_or_create(&target).set(i64::from(n));
        }
        if let Some(gogc) = gogc {
            self.gogc.get_or_create(&target).set(i64::from(gogc));
        }
        if let Some(limit) = memory_limit {
            self.memory_limit.get_or_create(&target).set(limit);
        }
    }

    fn gc(&mut self, pid: u32, g: &GcRecord) {
        let t = self.target(pid);
        raise(&self.cycles_runtime.get_or_create(&t), u64::from(g.cycle));
        let trigger = g.trigger.map_or("unknown", Trigger::as_str);
        note(&mut self.known(pid).triggers, trigger);
        self.cycles_traced
            .get_or_create(&TriggerLabels {
                target: t.clone(),
                trigger,
            })
            .inc();
        self.cycle_pause.get_or_create(&t).observe(secs(g.pause_ns));
        for (phase, ns) in [
            ("sweep_termination", g.sweep_term_ns),
            ("mark", g.mark_ns),
            ("mark_termination", g.mark_term_ns),
        ] {
            self.phases
                .get_or_create(&PhaseLabels {
                    target: t.clone(),
                    phase,
                })
                .observe(secs(ns));
        }
        for (family, value) in [
            (&self.heap_live, g.heap_live_bytes),
            (&self.heap_start, g.heap_start_bytes),
            (&self.heap_end, g.heap_end_bytes),
            (&self.heap_goal, g.heap_goal_bytes),
            (&self.gomaxprocs, g.gomaxprocs.map(u64::from)),
            (&self.goroutines, g.goroutines),
        ] {
            if let Some(v) = value {
                family.get_or_create(&t).set(gauge_value(v));
            }
        }
        if let Some(gogc) = g.gogc {
            self.gogc.get_or_create(&t).set(i64::from(gogc));
        }
        if let Some(limit) = g.memory_limit_bytes {
            self.memory_limit.get_or_create(&t).set(limit);
        }
        if let Some(pct) = g.cpu_percent {
            self.gc_cpu_fraction
                .get_or_create(&t)
                .set(f64::from(pct) / 100.0);
        }
        if let Some(cpu) = g.cpu {
            for (phase, ns) in [
                ("sweep_termination", cpu.sweep_term_ns),
                ("assist", cpu.assist_ns),
                ("background", cpu.background_ns),
                ("idle", cpu.idle_ns),
                ("mark_termination", cpu.mark_term_ns),
            ] {
                self.gc_cpu_seconds
                    .get_or_create(&PhaseLabels {
                        target: t.clone(),
                        phase,
                    })
                    .inc_by(secs(ns));
            }
        }
    }

    fn stw(&mut self, pid: u32, s: &StwRecord) {
        note(&mut self.known(pid).reasons, s.reason.as_str());
        let family = if s.reason.is_gc() {
            &self.pauses_gc
        } else {
            &self.pauses_other
        };
        family
            .get_or_create(&StwLabels {
                target: self.target(pid),
                reason: s.reason.as_str(),
            })
            .observe(secs(s.duration_ns));
    }

    fn alloc(&mut self, pid: u32, a: &AllocRecord) {
        let t = self.target(pid);
        raise(&self.alloc_bytes.get_or_create(&t), a.total_bytes);
        if let Some(rate) = a.rate_bytes_per_s {
            self.alloc_rate.get_or_create(&t).set(gauge_value(rate));
        }
        if let Some(objects) = a.alloc_objects {
            raise(&self.alloc_objects.get_or_create(&t), objects);
        }
    }

    /// The last record of a process: its series are kept for one more scrape.
    fn summary(&mut self, pid: u32, s: &Summary) {
        self.set_lost_events(pid, s.lost_events);
        let now = Instant::now();
        let k = self.known(pid);
        k.ended = Some(now);
        k.served_after_end = false;
        self.expire(now, false);
    }

    /// Events lost so far for `pid` (the live count is the kernel's, which the session
    /// reads every tick; the summary adds the decoder's). Never goes down. Ignored once
    /// the process has ended, so a late count cannot bring back its removed series.
    pub fn set_lost_events(&mut self, pid: u32, lost: u64) {
        if self.procs.get(&pid).is_some_and(|k| k.ended.is_some()) {
            return;
        }
        raise(&self.lost_events.get_or_create(&self.target(pid)), lost);
    }

    /// The whole registry in `format`.
    pub fn encode(&self, format: Exposition) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        match format {
            Exposition::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
            Exposition::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}

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

/// Sets a counter that mirrors an absolute count (the runtime's cycle number, its
/// allocation counter) to `to`; a counter only goes up, so a smaller value is ignored.
fn raise(counter: &Counter, to: u64) {
    let now = counter.get();
    if to > now {
        counter.inc_by(to - now);
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The metrics behind the mutex. A panic while it was held cannot leave them in a state
/// worse than a missed record, so a poisoned lock is used anyway.
fn lock(m: &Mutex<GcMetrics>) -> MutexGuard<'_, GcMetrics> {
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
    pub fn encode(&self, format: Exposition) -> Result<String, fmt::Error> {
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

#[cfg(test)]
mod tests;
