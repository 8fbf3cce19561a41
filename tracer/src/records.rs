//! What the model reports: the records every view (JSON, gctrace text, later the TUI and
//! recordings) is built from. Field names follow the JSON contract in the README.

use crate::events::{StwReason, Trigger};

/// The traced process; first record of every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub exe: String,
    /// As the binary's build info says, e.g. "go1.25.5".
    pub go_version: String,
    /// "x86_64" or "aarch64".
    pub arch: String,
    pub gomaxprocs: Option<u32>,
}

/// One completed GC cycle. Durations are wall clock, like gctrace's `ms clock` triple;
/// timestamps are CLOCK_MONOTONIC nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub heap_start_bytes: Option<u64>,
    pub heap_end_bytes: Option<u64>,
    pub heap_live_bytes: Option<u64>,
    pub heap_goal_bytes: Option<u64>,
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
    pub alloc_bytes: Option<u64>,
    pub alloc_objects: Option<u64>,
    /// Events the kernel could not deliver (ring buffer full) plus events the decoder
    /// could not use.
    pub lost_events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Process(ProcessInfo),
    Gc(GcRecord),
    Stw(StwRecord),
    Summary(Summary),
}
