//! The OTLP name of each metric, next to the Prometheus name of the same figure, so the
//! two views cannot drift apart: a test checks every Prometheus name here against what
//! `--prometheus` serves.
//!
//! The rule: where the Prometheus name is one of Go's runtime metrics (`go_*`, from
//! `/gc/cycles/total:gc-cycles`), the OTLP name is that runtime/metrics path with dots
//! (`go.gc.cycles.total`) and its unit in the OTLP unit field (UCUM: `By`, `s`, `{gc_cycle}`),
//! as OpenTelemetry's own Go runtime instrumentation spells names; everything else is
//! `gctrace_bpf.*`, dotted the same way.

/// How a metric is exported over OTLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A cumulative monotonic sum.
    Counter,
    /// The last value.
    Gauge,
    /// A cumulative histogram with the Prometheus view's buckets.
    Histogram,
}

/// One metric in both views.
#[derive(Clone, Copy, Debug)]
pub struct Name {
    /// As `--prometheus` serves it (with the client's `_total` and unit suffixes).
    pub prometheus: &'static str,
    pub otlp: &'static str,
    /// UCUM unit, as OTLP's `Metric.unit`.
    pub unit: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

macro_rules! names {
    ($($id:ident = $prom:literal, $otlp:literal, $unit:literal, $kind:ident, $desc:literal;)*) => {
        $(pub const $id: Name = Name {
            prometheus: $prom,
            otlp: $otlp,
            unit: $unit,
            kind: Kind::$kind,
            description: $desc,
        };)*
        /// Every metric the OTLP view exports.
        pub const ALL: &[Name] = &[$($id),*];
    };
}

names! {
    CYCLES_TOTAL = "go_gc_cycles_total_gc_cycles_total", "go.gc.cycles.total", "{gc_cycle}", Counter,
        "Count of all completed GC cycles (the runtime's own number of the last cycle seen)";
    CYCLES_TRACED = "gctrace_bpf_gc_cycles_total", "gctrace_bpf.gc.cycles", "{gc_cycle}", Counter,
        "GC cycles completed while traced, by trigger";
    PAUSES_GC = "go_sched_pauses_total_gc_seconds", "go.sched.pauses.total.gc", "s", Histogram,
        "GC-related stop-the-world pauses, by the runtime's reason";
    PAUSES_OTHER = "go_sched_pauses_total_other_seconds", "go.sched.pauses.total.other", "s", Histogram,
        "Non-GC-related stop-the-world pauses, by the runtime's reason";
    CYCLE_PAUSE = "gctrace_bpf_gc_pause_seconds", "gctrace_bpf.gc.pause", "s", Histogram,
        "Stop-the-world time of each GC cycle, all its stops together (MemStats.PauseNs)";
    PHASES = "gctrace_bpf_gc_phase_seconds", "gctrace_bpf.gc.phase", "s", Histogram,
        "Wall-clock duration of each GC cycle's phases";
    HEAP_LIVE = "go_gc_heap_live_bytes", "go.gc.heap.live", "By", Gauge,
        "Heap memory occupied by live objects marked by the last GC (gctrace's third heap figure)";
    HEAP_START = "gctrace_bpf_gc_heap_start_bytes", "gctrace_bpf.gc.heap.start", "By", Gauge,
        "Heap in use when the last completed GC cycle started";
    HEAP_END = "gctrace_bpf_gc_heap_end_bytes", "gctrace_bpf.gc.heap.end", "By", Gauge,
        "Heap in use at the last completed GC cycle's mark termination";
    HEAP_GOAL = "gctrace_bpf_gc_heap_goal_bytes", "gctrace_bpf.gc.heap.goal", "By", Gauge,
        "Heap goal of the last completed GC cycle";
    GOROUTINES = "go_sched_goroutines_goroutines", "go.sched.goroutines", "{goroutine}", Gauge,
        "Goroutines as of the last GC cycle's end";
    GOMAXPROCS = "go_sched_gomaxprocs_threads", "go.sched.gomaxprocs", "{thread}", Gauge,
        "The runtime.GOMAXPROCS setting";
    GOGC = "go_gc_gogc_percent", "go.gc.gogc", "%", Gauge,
        "Heap size target percentage (GOGC); -1 when off";
    MEMORY_LIMIT = "go_gc_gomemlimit_bytes", "go.gc.gomemlimit", "By", Gauge,
        "Go runtime memory limit (GOMEMLIMIT), math.MaxInt64 when none";
    CPU_FRACTION = "gctrace_bpf_gc_cpu_fraction", "gctrace_bpf.gc.cpu.fraction", "1", Gauge,
        "The GC's share of the CPU available since the program started (gctrace's P%)";
    CPU = "gctrace_bpf_gc_cpu_seconds_total", "gctrace_bpf.gc.cpu", "s", Counter,
        "CPU time of the GC cycles completed while traced, by phase";
    ALLOC_BYTES = "go_gc_heap_allocs_bytes_total", "go.gc.heap.allocs", "By", Counter,
        "Cumulative memory allocated to the heap since the program started";
    ALLOC_OBJECTS = "gctrace_bpf_heap_allocs_objects_total", "gctrace_bpf.heap.allocs.objects", "{object}", Counter,
        "Heap objects allocated while traced, counted by the allocation probes";
    ALLOC_RATE = "gctrace_bpf_alloc_rate_bytes_per_second", "gctrace_bpf.alloc.rate", "By/s", Gauge,
        "Allocation rate between the last two reads of the runtime's allocation counter";
    LOST_EVENTS = "gctrace_bpf_lost_events_total", "gctrace_bpf.lost_events", "{event}", Counter,
        "Events the kernel could not deliver or the decoder could not use";
}
