//! Version-independent events: the only input of the aggregation model.
//!
//! The decoder (`decode`) turns raw kernel events, whose meaning depends on the Go version
//! and architecture, into these. The model never learns whether they came from a live
//! ring buffer or a recording.

use serde::Serialize;

/// Why a GC cycle was started (`gcTrigger.kind` in the runtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The heap reached the pacer's trigger (gcTriggerHeap).
    Heap,
    /// No GC for 2 minutes; sysmon's forcegc (gcTriggerTime).
    Time,
    /// `runtime.GC()` or `debug.FreeOSMemory()` (gcTriggerCycle), gctrace's "(forced)".
    Forced,
}

impl Trigger {
    /// From the runtime's `gcTriggerKind` value.
    pub fn from_kind(kind: u64) -> Option<Trigger> {
        match kind {
            0 => Some(Trigger::Heap),
            1 => Some(Trigger::Time),
            2 => Some(Trigger::Forced),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Heap => "heap",
            Trigger::Time => "time",
            Trigger::Forced => "forced",
        }
    }
}

/// Why the world was stopped: the runtime's `stwReason` (Go 1.21+), or inferred from
/// the caller on older versions. The strings are the runtime's own (`stwReasonStrings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StwReason {
    Unknown,
    GcMarkTerm,
    GcSweepTerm,
    WriteHeapDump,
    GoroutineProfile,
    GoroutineProfileCleanup,
    AllGoroutinesStackTrace,
    ReadMemStats,
    AllThreadsSyscall,
    Gomaxprocs,
    StartTrace,
    StopTrace,
    /// A code this tracer does not know (a newer Go); kept so nothing is lost.
    Other(u8),
}

impl StwReason {
    /// From the runtime's `stwReason` code (Go 1.21+).
    pub fn from_code(code: u8) -> StwReason {
        use StwReason::*;
        match code {
            0 => Unknown,
            1 => GcMarkTerm,
            2 => GcSweepTerm,
            3 => WriteHeapDump,
            4 => GoroutineProfile,
            5 => GoroutineProfileCleanup,
            6 => AllGoroutinesStackTrace,
            7 => ReadMemStats,
            8 => AllThreadsSyscall,
            9 => Gomaxprocs,
            10 => StartTrace,
            11 => StopTrace,
            n => Other(n),
        }
    }

    /// The runtime's own wording (runtime/proc.go `stwReasonStrings`).
    pub fn as_str(self) -> &'static str {
        use StwReason::*;
        match self {
            Unknown => "unknown",
            GcMarkTerm => "GC mark termination",
            GcSweepTerm => "GC sweep termination",
            WriteHeapDump => "write heap dump",
            GoroutineProfile => "goroutine profile",
            GoroutineProfileCleanup => "goroutine profile cleanup",
            AllGoroutinesStackTrace => "all goroutines stack trace",
            ReadMemStats => "read mem stats",
            AllThreadsSyscall => "AllThreadsSyscall",
            Gomaxprocs => "GOMAXPROCS",
            StartTrace => "start trace",
            StopTrace => "stop trace",
            Other(_) => "other",
        }
    }

    /// Whether the stop belongs to a GC cycle.
    pub fn is_gc(self) -> bool {
        matches!(self, StwReason::GcMarkTerm | StwReason::GcSweepTerm)
    }
}

/// Runtime state read from the target's memory when the world restarts. Each field is
/// `None` when its address or offset is unknown for this binary (or the read failed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeSnapshot {
    /// `work.cycles`: number of the cycle in progress or last started.
    pub gc_cycles: Option<u32>,
    /// `memstats.numgc`: number of completed cycles (gctrace's `gc N`).
    pub num_gc: Option<u32>,
    /// `work.userForced`: the current cycle was started by runtime.GC().
    pub user_forced: Option<bool>,
    /// `runtimeInitTime`: nanotime() when the runtime started (gctrace's `@Ts` origin).
    pub runtime_init_ns: Option<u64>,
    /// `gomaxprocs`.
    pub gomaxprocs: Option<u32>,
    /// `work.tEnd`: when the runtime ended the last mark termination's pause. Go before
    /// 1.22 takes it before restarting the world (which can take a while when threads
    /// must be created), and counts the pause up to it; 1.22+ passes it to
    /// `startTheWorldWithSema`, so the end of the stop already equals it.
    pub gc_end_ns: Option<u64>,
}

/// One decoded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A goroutine entered `gcStart`. It may return without starting a cycle.
    GcRequested { ts_ns: u64, trigger: Trigger },
    /// The world started stopping at `ts_ns` (the runtime's own timestamp when it
    /// passes one, otherwise the probe's clock).
    StwBegin { ts_ns: u64, reason: StwReason },
    /// The world is running again; `ts_ns` is the runtime's own `now` when known.
    StwEnd {
        ts_ns: u64,
        snapshot: RuntimeSnapshot,
    },
}
