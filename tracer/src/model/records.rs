//! What the model reports: the records every view (JSON, gctrace text, later the TUI and
//! recordings) is built from. Field names follow the JSON contract of docs/json-schema.md.

use crate::binary::StwReason;
use crate::decode::events::{AllocStat, SiteStat, Trigger};

/// The traced process; first record of every run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub exe: String,
    /// As the binary's build info says, e.g. "go1.25.5".
    pub go_version: String,
    /// "x86_64" or "aarch64".
    pub arch: String,
    pub gomaxprocs: Option<u32>,
    /// Its cgroup, container, pod and systemd unit (recordings made before these existed
    /// have none).
    #[serde(default)]
    pub labels: Labels,
    /// GOGC (negative: off) and GOMEMLIMIT in bytes (`i64::MAX`: none) when the probes
    /// went on, read from the target's memory; `None` when unreadable or not set yet (a
    /// launched program before its runtime initialised: a `settings` record follows).
    /// Absent from recordings made before they were read (serde default).
    #[serde(default)]
    pub gogc: Option<i32>,
    #[serde(default)]
    pub memory_limit_bytes: Option<i64>,
}

impl ProcessInfo {
    /// A process known by its identity alone: settings unknown and no labels, for the
    /// caller to fill in what it has read.
    pub fn new(pid: u32, exe: &str, go_version: &str, arch: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            exe: exe.to_owned(),
            go_version: go_version.to_owned(),
            arch: arch.to_owned(),
            gomaxprocs: None,
            labels: Default::default(),
            gogc: None,
            memory_limit_bytes: None,
        }
    }
}

/// The labels of one process (read by `session/labels.rs`). `None` is unknown or not
/// applicable (a process outside any container has no container id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Labels {
    /// The cgroup path, as `/proc/PID/cgroup` gives it.
    pub cgroup: Option<String>,
    /// The full 64-hex-digit container id.
    pub container_id: Option<String>,
    /// Which runtime made the container: docker, containerd, cri-o or podman.
    pub container_runtime: Option<String>,
    pub container_name: Option<String>,
    /// The Kubernetes pod UID (with dashes, as the API server spells it).
    pub pod_uid: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// The innermost systemd unit (`.service` or `.scope`) of the cgroup path.
    pub systemd_unit: Option<String>,
}

impl Labels {
    /// Why the pod's name and namespace are unknown, when the process is in a pod.
    pub fn unknown_pod_warning(&self) -> Option<String> {
        if self.pod_uid.is_none() || self.pod_name.is_some() {
            return None;
        }
        Some(format!(
            "pod_name and pod_namespace unknown for pod {}: no container runtime state \
             (containerd, cri-o or docker) found for container {} under / or /proc/1/root \
             (set GCTRACE_HOST_ROOT to where the host's / is mounted)",
            self.pod_uid.as_deref().unwrap_or("?"),
            self.container_id.as_deref().unwrap_or("?"),
        ))
    }

    /// The labels that are known, by name, in a fixed order: for Prometheus and OTLP.
    pub fn known(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("cgroup", &self.cgroup),
            ("container_id", &self.container_id),
            ("container_runtime", &self.container_runtime),
            ("container_name", &self.container_name),
            ("pod_uid", &self.pod_uid),
            ("pod_name", &self.pod_name),
            ("pod_namespace", &self.pod_namespace),
            ("systemd_unit", &self.systemd_unit),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

/// The settings the runtime runs with, as read from its memory: emitted when first
/// known and whenever one of them changes (`debug.SetGCPercent`, `SetMemoryLimit`,
/// `runtime.GOMAXPROCS`), so views know them with no GC cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsRecord {
    pub ts_ns: u64,
    /// GOGC (negative: off).
    pub gogc: Option<i32>,
    /// GOMEMLIMIT in bytes (`i64::MAX`: none).
    pub memory_limit_bytes: Option<i64>,
    pub gomaxprocs: Option<u32>,
}

/// One completed GC cycle. Durations are wall clock, like gctrace's `ms clock` triple;
/// timestamps are CLOCK_MONOTONIC nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcRecord {
    /// The runtime's own cycle number (gctrace's `gc N`).
    pub cycle: u32,
    pub trigger: Option<Trigger>,
    /// Start of the sweep-termination stop.
    pub start_ns: u64,
    /// End of the (last) mark-termination stop.
    pub end_ns: u64,
    pub sweep_term_ns: u64,
    pub mark_ns: u64,
    pub mark_term_ns: u64,
    /// All stop-the-world time of the cycle (MemStats.PauseNs for it).
    pub pause_ns: u64,
    /// `nanotime()` at runtime start, for gctrace's `@Ts`; None when unknown.
    pub runtime_init_ns: Option<u64>,
    pub gomaxprocs: Option<u32>,
    /// gctrace's `heap0->heap1->heap2 MB`: live heap at the start, at mark termination,
    /// and marked (live after the cycle).
    pub heap_start_bytes: Option<u64>,
    pub heap_end_bytes: Option<u64>,
    pub heap_live_bytes: Option<u64>,
    /// gctrace's `MB goal`.
    pub heap_goal_bytes: Option<u64>,
    /// gctrace's `MB stacks` and `MB globals`: scannable stack and global bytes.
    pub stacks_bytes: Option<u64>,
    pub globals_bytes: Option<u64>,
    /// GOGC in force (negative: off) and GOMEMLIMIT in bytes (`i64::MAX`: none).
    pub gogc: Option<i32>,
    pub memory_limit_bytes: Option<i64>,
    /// Goroutines when the world restarted after mark termination:
    /// `runtime.NumGoroutine()` plus the dead goroutines cached on Ps (up to 64 per P).
    pub goroutines: Option<u64>,
    /// gctrace's `P%`: GC CPU share since the program started, whole percent.
    pub cpu_percent: Option<u32>,
    /// gctrace's `ms cpu` figures.
    pub cpu: Option<GcCpu>,
    /// The runtime's own phase timestamps for this cycle (`work.tSweepTerm`, `tMark`,
    /// `tMarkTerm`, `tEnd`), when readable. The JSON timings are measured by the probes;
    /// the gctrace view prints these so its lines equal the runtime's.
    pub runtime_clock: Option<[u64; 4]>,
    /// Memory counted against GOMEMLIMIT that holds no heap objects, when the world
    /// restarted after mark termination: `memoryLimitHeapGoal`'s `mappedReady −
    /// heapFree − heapAlloc` (stacks, runtime metadata, free space in in-use spans).
    pub non_heap_bytes: Option<u64>,
}

/// CPU time the cycle spent, as gctrace's `a+b/c/d+e ms cpu`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcCpu {
    /// Sweep termination: stop length × Ps stopped.
    pub sweep_term_ns: u64,
    /// Mark assists by allocating goroutines.
    pub assist_ns: u64,
    /// Dedicated and fractional background mark workers.
    pub background_ns: u64,
    /// Idle mark workers.
    pub idle_ns: u64,
    /// Mark termination: stop length × Ps stopped.
    pub mark_term_ns: u64,
}

impl GcCpu {
    /// Each phase's CPU time under the `phase` label value the metric exporters
    /// (Prometheus and OTLP) give it, in gctrace's order.
    pub fn by_phase(&self) -> [(&'static str, u64); 5] {
        [
            ("sweep_termination", self.sweep_term_ns),
            ("assist", self.assist_ns),
            ("background", self.background_ns),
            ("idle", self.idle_ns),
            ("mark_termination", self.mark_term_ns),
        ]
    }
}

/// Allocation so far, from the runtime's own cumulative counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocRecord {
    pub ts_ns: u64,
    /// `gcController.totalAlloc`: bytes allocated since the program started (counted
    /// per span, so it runs slightly ahead of MemStats.TotalAlloc between cycles).
    pub total_bytes: u64,
    /// Since the previous alloc record; None for the first.
    pub rate_bytes_per_s: Option<u64>,
    /// Objects allocated while traced, when the allocation probes count them.
    pub alloc_objects: Option<u64>,
}

/// One stop-the-world pause, GC or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StwRecord {
    pub reason: StwReason,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The GC cycle this stop belongs to, for GC stops.
    pub cycle: Option<u32>,
}

/// Last record of every run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Completed cycles reported.
    pub cycles: u64,
    /// Percentiles over every stop-the-world pause seen (GC and non-GC).
    pub pause_p50_ns: Option<u64>,
    pub pause_p99_ns: Option<u64>,
    pub pause_max_ns: Option<u64>,
    /// Bytes allocated while traced (from the start, when the command was launched).
    pub alloc_bytes: Option<u64>,
    pub alloc_objects: Option<u64>,
    /// Events the kernel could not deliver (ring buffer full) plus events the decoder
    /// could not use.
    pub lost_events: u64,
}

/// Periodic snapshot: allocations by type and size class since tracing began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocTypesRecord {
    pub ts_ns: u64,
    /// Every allocation was counted (`--allocs exact`); otherwise estimates.
    pub exact: bool,
    pub objects: u64,
    /// Size-class-rounded bytes, as MemStats.TotalAlloc counts.
    pub bytes: u64,
    /// Allocations the probes counted (all of them when `exact`); sampled figures are
    /// these scaled to the runtime's own byte counter.
    pub counted_objects: u64,
    /// Sampled mode: the statistical error of `objects` (95 %, per mille). `bytes` is the
    /// runtime's own count and has none.
    pub objects_error_permille: Option<u32>,
    /// Allocations the kernel could not count (maps full); not in the figures.
    pub dropped_objects: u64,
    /// Top types by bytes.
    pub types: Vec<AllocStat>,
    pub size_classes: Vec<SizeClassStat>,
}

/// One size class (or page-rounded large size) and what was allocated in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeClassStat {
    pub size: u64,
    pub objects: u64,
    pub bytes: u64,
}

/// Periodic snapshot: top allocation sites (call stack and type) by bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocSitesRecord {
    pub ts_ns: u64,
    pub exact: bool,
    pub sites: Vec<SiteStat>,
}

/// A sampling error kept in per mille, as a percentage with one decimal (JSON, TUI).
pub fn permille_as_pct(permille: Option<u32>) -> Option<f64> {
    permille.map(|p| f64::from(p) / 10.0)
}

/// `Gc` is the largest variant; records live in one reused vector per pipeline and are
/// never stored in bulk by the model, so boxing it would only add an allocation per cycle.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Process(ProcessInfo),
    Gc(GcRecord),
    Stw(StwRecord),
    Alloc(AllocRecord),
    Settings(SettingsRecord),
    AllocTypes(AllocTypesRecord),
    AllocSites(AllocSitesRecord),
    Finding(FindingRecord),
    Summary(Summary),
}

/// A diagnosis from the findings rule engine ([`crate::model::findings`]): one record when it
/// starts (sustained evidence) and one when it ends. Vocabulary: docs/findings.md.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingRecord {
    /// When the evidence was judged (CLOCK_MONOTONIC ns of the last record seen).
    pub ts_ns: u64,
    pub state: FindingState,
    pub id: FindingId,
    pub severity: Severity,
    /// One line for people: what was seen, with the numbers.
    pub summary: String,
    /// The numbers the rule decided on, by name (units in the names).
    pub evidence: Vec<(&'static str, f64)>,
    /// What to change, in one or two lines.
    pub remedy: &'static str,
    /// Code-level findings: the user's own frames that allocate this way, heaviest first.
    pub sites: Vec<crate::decode::events::Frame>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingState {
    Start,
    End,
}

impl FindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Start => "start",
            FindingState::End => "end",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The fixed vocabulary of findings (docs/findings.md): ids never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingId {
    GcThrashing,
    PauseSlo,
    GcFrequency,
    HeapGrowth,
    GoroutineGrowth,
    MemoryLimitSpiral,
    GomaxprocsOverCpuLimit,
    AllocStringConcat,
    AllocSliceGrowth,
    AllocInterfaceBoxing,
    AllocMapGrowth,
}

impl FindingId {
    pub const ALL: [FindingId; 11] = [
        FindingId::GcThrashing,
        FindingId::PauseSlo,
        FindingId::GcFrequency,
        FindingId::HeapGrowth,
        FindingId::GoroutineGrowth,
        FindingId::MemoryLimitSpiral,
        FindingId::GomaxprocsOverCpuLimit,
        FindingId::AllocStringConcat,
        FindingId::AllocSliceGrowth,
        FindingId::AllocInterfaceBoxing,
        FindingId::AllocMapGrowth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingId::GcThrashing => "gc-thrashing",
            FindingId::PauseSlo => "pause-slo",
            FindingId::GcFrequency => "gc-frequency",
            FindingId::HeapGrowth => "heap-growth",
            FindingId::GoroutineGrowth => "goroutine-growth",
            FindingId::MemoryLimitSpiral => "memory-limit-spiral",
            FindingId::GomaxprocsOverCpuLimit => "gomaxprocs-over-cpu-limit",
            FindingId::AllocStringConcat => "alloc-string-concat",
            FindingId::AllocSliceGrowth => "alloc-slice-growth",
            FindingId::AllocInterfaceBoxing => "alloc-interface-boxing",
            FindingId::AllocMapGrowth => "alloc-map-growth",
        }
    }

    /// Findings about a line of code (they carry `sites`), not about the whole process.
    pub fn is_code_level(self) -> bool {
        matches!(
            self,
            FindingId::AllocStringConcat
                | FindingId::AllocSliceGrowth
                | FindingId::AllocInterfaceBoxing
                | FindingId::AllocMapGrowth
        )
    }
}
