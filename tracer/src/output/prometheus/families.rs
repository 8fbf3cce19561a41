//! The metric families and the registry they are registered in: what is exported, under
//! which names, units and help texts (docs/prometheus.md lists them), and the encoding
//! of the whole registry. How records update them is `update.rs`; when a process's series
//! go is `series.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use super::series::{
    FindingLabels, InfoLabels, Known, PhaseLabels, StwLabels, Target, TriggerLabels,
};
use super::Exposition;

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
    pub(super) registry: Registry,
    /// Each pid's `exe` and cgroup labels (from its `process` record), and the label
    /// values its series used, to remove them once it has ended.
    pub(super) procs: HashMap<u32, Known>,
    pub(super) info: Family<InfoLabels, Gauge>,
    pub(super) cycles_runtime: Family<Target, Counter>,
    pub(super) cycles_traced: Family<TriggerLabels, Counter>,
    pub(super) pauses_gc: Durations<StwLabels>,
    pub(super) pauses_other: Durations<StwLabels>,
    pub(super) cycle_pause: Durations<Target>,
    pub(super) phases: Durations<PhaseLabels>,
    pub(super) heap_live: Family<Target, Gauge>,
    pub(super) heap_start: Family<Target, Gauge>,
    pub(super) heap_end: Family<Target, Gauge>,
    pub(super) heap_goal: Family<Target, Gauge>,
    pub(super) goroutines: Family<Target, Gauge>,
    pub(super) gomaxprocs: Family<Target, Gauge>,
    pub(super) gogc: Family<Target, Gauge>,
    pub(super) memory_limit: Family<Target, Gauge>,
    pub(super) gc_cpu_fraction: Family<Target, FloatGauge>,
    pub(super) gc_cpu_seconds: Family<PhaseLabels, FloatCounter>,
    pub(super) alloc_bytes: Family<Target, Counter>,
    pub(super) alloc_objects: Family<Target, Counter>,
    pub(super) alloc_rate: Family<Target, Gauge>,
    pub(super) lost_events: Family<Target, Counter>,
    pub(super) findings: Family<FindingLabels, Gauge>,
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
