//! Version-independent events: the only input of the aggregation model.
//!
//! The decoder (`decode`) turns raw kernel events, whose meaning depends on the Go version
//! and architecture, into these. The model never learns whether they came from a live
//! ring buffer or a recording.

use serde::Serialize;

use crate::binary::StwReason;

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
    /// GOGC, GOMEMLIMIT and GOMAXPROCS at this stop (`gomaxprocs` is `None` while it
    /// still reads 0, before `procresize`).
    pub settings: Settings,
    /// `work.tEnd`: when the runtime ended the last mark termination's pause. Go before
    /// 1.22 takes it before restarting the world (which can take a while when threads
    /// must be created), and counts the pause up to it; 1.22+ passes it to
    /// `startTheWorldWithSema`, so the end of the stop already equals it.
    pub gc_end_ns: Option<u64>,
    /// What gctrace prints for the cycle that just ended its mark termination; valid at
    /// that stop's end (later stops of the same cycle carry the same values).
    pub gc: GcFigures,
    /// `gcController.totalAlloc`: bytes allocated since start, counted per span.
    pub total_alloc: Option<u64>,
    /// `work.pauseNS`: all stop-the-world time of the cycle so far (what
    /// `MemStats.PauseNs` gets when the cycle ends).
    pub pause_ns: Option<u64>,
    /// `memstats.numforcedgc`: forced cycles completed (`MemStats.NumForcedGC`).
    pub num_forced_gc: Option<u32>,
    /// Goroutines: `runtime.NumGoroutine()` plus the dead goroutines cached on Ps (up to
    /// 64 per P), which are not at a fixed address (see the decoder).
    pub goroutines: Option<u64>,
    /// Objects allocated since start, as `MemStats.Mallocs` counts them (the sum over
    /// `memstats.heapStats`; counted per span, like `total_alloc`). Only with the
    /// allocation probes.
    pub mallocs: Option<u64>,
    /// The large objects among them, read with them.
    pub large: Option<LargeAllocs>,
}

/// Large objects allocated since start, as the runtime counts them apart from the small
/// ones (`heapStats`' `largeAlloc` and `largeAllocCount`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LargeAllocs {
    /// Bytes, each object rounded to whole pages (its part of `total_alloc`).
    pub bytes: u64,
    pub objects: u64,
}

/// GOGC, GOMEMLIMIT and GOMAXPROCS as read from the target; each `None` when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `gcController.gcPercent`: GOGC (negative = off).
    pub gogc: Option<i32>,
    /// `gcController.memoryLimit`: GOMEMLIMIT in bytes (`i64::MAX` = none).
    pub memory_limit: Option<i64>,
    /// `gomaxprocs`.
    pub gomaxprocs: Option<u32>,
}

impl Settings {
    /// Each field from `newer` where it is known, else from `self`.
    pub fn updated(self, newer: Settings) -> Settings {
        Settings {
            gogc: newer.gogc.or(self.gogc),
            memory_limit: newer.memory_limit.or(self.memory_limit),
            gomaxprocs: newer.gomaxprocs.or(self.gomaxprocs),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Settings::default()
    }
}

/// The runtime's own account of the last cycle (the variables gctrace prints from).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcFigures {
    /// `work.heap0/1/2`: live heap at start, at mark termination, marked.
    pub heap0: Option<u64>,
    pub heap1: Option<u64>,
    pub heap2: Option<u64>,
    /// `gcController.lastHeapGoal`.
    pub heap_goal: Option<u64>,
    /// Scannable stack and globals bytes.
    pub stacks: Option<u64>,
    pub globals: Option<u64>,
    /// `work.maxprocs`, `work.stwprocs`.
    pub maxprocs: Option<u32>,
    pub stwprocs: Option<u32>,
    /// `int(memstats.gc_cpu_fraction * 100)`, gctrace's `P%`.
    pub cpu_percent: Option<u32>,
    /// GC CPU time by kind (ns): assist, dedicated + fractional (background), idle.
    pub assist_ns: Option<u64>,
    pub background_ns: Option<u64>,
    pub idle_ns: Option<u64>,
    /// `work.tSweepTerm`, `tMark`, `tMarkTerm` (nanotime).
    pub t_sweep_term: Option<u64>,
    pub t_mark: Option<u64>,
    pub t_mark_term: Option<u64>,
    /// `mappedReady − heapFree − (totalAlloc − totalFree)` (gcController): the memory
    /// `memoryLimitHeapGoal` counts against GOMEMLIMIT besides heap objects. `None`
    /// unread, or torn (the runtime's own check, `heapFree + heapAlloc ≤ mappedReady`,
    /// failed).
    pub non_heap: Option<u64>,
}

/// One decoded event.
///
/// `StwEnd` is far larger than the others; events are handled one at a time and never
/// stored in bulk, so boxing it would only add an allocation per stop.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
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
    /// A whole stop seen at once, when the kernel paired its begin with its end: exactly
    /// a [`TraceEvent::StwBegin`] followed by a [`TraceEvent::StwEnd`].
    Stw {
        begin_ns: u64,
        reason: StwReason,
        end_ns: u64,
        snapshot: RuntimeSnapshot,
    },
    /// A GC cycle's mark termination is over and the world runs again (one event per
    /// cycle): `snapshot` holds the runtime's whole account of the cycle, from which its
    /// two stops are rebuilt. `mark_stop_start` is the mark-termination stop's own
    /// `worldStop.startedStopping` (Go 1.22+), when it could be read.
    GcDone {
        ts_ns: u64,
        snapshot: RuntimeSnapshot,
        mark_stop_start: Option<u64>,
    },
    /// A periodic reading of the runtime's variables by user space: the cumulative
    /// allocation counter and the settings in force.
    Sample {
        ts_ns: u64,
        total_bytes: Option<u64>,
        settings: Settings,
        /// The runtime's object count ([`RuntimeSnapshot::mallocs`]) at the same reading.
        total_objects: Option<u64>,
        /// Its large objects ([`RuntimeSnapshot::large`]).
        large: Option<LargeAllocs>,
    },
    /// Allocations counted by the allocation probes since the previous batch.
    Allocs(Box<AllocBatch>),
    /// Events were lost here (the kernel's ring buffer was full): whatever was half
    /// seen (an open stop, a cycle in progress) cannot be trusted.
    Gap { missing: u32 },
}

/// Allocations seen by the allocation probes over one interval, already resolved to
/// type names and call sites, counted as the runtime counts them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct AllocBatch {
    pub ts_ns: u64,
    /// Only part of the allocations were seen (sampled mode): the counts are a sample,
    /// to be scaled by what the runtime itself counted (its `totalAlloc`).
    pub sampled: bool,
    pub objects: u64,
    /// Size-class-rounded bytes (what MemStats.TotalAlloc counts).
    pub bytes: u64,
    /// Allocations the kernel could not count (its maps were full).
    pub dropped_objects: u64,
    pub by_type: Vec<AllocStat>,
    pub by_site: Vec<SiteStat>,
    /// (size-class byte size, or the page-rounded size for large objects; objects).
    pub by_class: Vec<(u64, u64)>,
}

/// What was counted for one entry of a batch (a type, or a call site and type): the
/// count fields [`AllocStat`] and [`SiteStat`] share, flattened into each in JSON (the
/// recorded form is the same as when each entry held its own fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AllocCounts {
    pub objects: u64,
    pub bytes: u64,
    /// Allocations the probes counted for this entry: the same as `objects` when every
    /// allocation is counted; in sampled mode the figures above are these scaled up.
    /// Set by the model's snapshots; not recorded (the model recomputes it).
    #[serde(skip)]
    pub counted: u64,
    /// Sampled mode: the figures' statistical error (95 %, per mille of the figure); see
    /// [`crate::model::AllocModel`]. `None` when counted exactly.
    #[serde(skip)]
    pub error_permille: Option<u32>,
    /// Of `objects` and `bytes`, the large objects' (over
    /// [`tracer_common::LARGE_OBJECT_OVER`] bytes), which the runtime counts apart: in a
    /// batch, so that sampled mode can scale each kind to its own count. Zero (and not
    /// written) in the model's snapshots, and in batches recorded before it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub large_objects: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub large_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl AllocCounts {
    /// Counts of allocations every one of which was counted (no scaling, no error).
    pub fn exact(objects: u64, bytes: u64) -> AllocCounts {
        AllocCounts {
            objects,
            bytes,
            counted: objects,
            ..AllocCounts::default()
        }
    }
}

/// Allocations of one type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AllocStat {
    pub name: String,
    #[serde(flatten)]
    pub counts: AllocCounts,
}

/// Allocations from one call site (and type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SiteStat {
    /// Innermost first: the allocating function's caller chain, runtime frames removed.
    pub frames: Vec<Frame>,
    /// The runtime function the outermost of `frames` called to allocate (the
    /// outermost runtime frame dropped from the stack: `runtime.growslice`,
    /// `runtime.concatstring2`, `runtime.convT64`, ...); empty when the code called the
    /// allocator directly or the recording predates it. What the findings classify by.
    #[serde(default)]
    pub via: String,
    pub type_name: String,
    #[serde(flatten)]
    pub counts: AllocCounts,
}

/// One stack frame, symbolized (the binary analysis' own frame type).
pub use crate::binary::Frame;

#[cfg(test)]
mod tests {
    use super::{AllocBatch, AllocCounts, AllocStat, Frame, SiteStat, StwReason};

    /// Recordings hold allocation batches as this JSON: the entries' counts stand beside
    /// their names, as they did before the count fields had a struct of their own, and a
    /// batch written then reads back the same.
    #[test]
    fn allocation_batches_keep_their_recorded_json() {
        let recorded = r#"{"ts_ns":5,"sampled":true,"objects":3,"bytes":48,"dropped_objects":0,"by_type":[{"name":"main.node","objects":3,"bytes":48}],"by_site":[{"frames":[{"function":"main.f","file":"/m.go","line":7}],"via":"runtime.growslice","type_name":"uint8","objects":3,"bytes":48}],"by_class":[[16,3]]}"#;
        let counts = AllocCounts {
            objects: 3,
            bytes: 48,
            ..AllocCounts::default()
        };
        let batch = AllocBatch {
            ts_ns: 5,
            sampled: true,
            objects: 3,
            bytes: 48,
            dropped_objects: 0,
            by_type: vec![AllocStat {
                name: "main.node".into(),
                counts,
            }],
            by_site: vec![SiteStat {
                frames: vec![Frame {
                    function: "main.f".into(),
                    file: "/m.go".into(),
                    line: 7,
                }],
                via: "runtime.growslice".into(),
                type_name: "uint8".into(),
                counts,
            }],
            by_class: vec![(16, 3)],
        };
        assert_eq!(
            serde_json::to_string(&batch).ok().as_deref(),
            Some(recorded)
        );
        let read: AllocBatch = serde_json::from_str(recorded).expect("the recorded batch reads");
        assert_eq!(read, batch);
        // What the model sets and does not record stays out of the file.
        let mut modelled = batch.clone();
        modelled.by_type[0].counts = AllocCounts::exact(3, 48);
        modelled.by_type[0].counts.error_permille = Some(12);
        let json = serde_json::to_string(&modelled).unwrap_or_default();
        assert!(
            !json.contains("counted") && !json.contains("error_permille"),
            "{json}"
        );
    }

    /// Go 1.19–1.20's `stopTheWorld` strings name the same stops as 1.21's codes.
    #[test]
    fn old_reason_strings_map_to_codes() {
        for (text, code) in [
            (&b"read mem stats"[..], 7),
            (b"GOMAXPROCS", 9),
            (b"profile", 4),
            (b"profile cleanup", 5),
            (b"stack trace", 6),
            (b"write heap dump", 3),
            (b"doAllThreadsSyscall", 8),
            (b"start tracing", 10),
            (b"stop tracing", 11),
        ] {
            assert_eq!(StwReason::from_text(text), StwReason::from_code(code));
        }
        for code in 0..=11 {
            let r = StwReason::from_code(code);
            assert_eq!(StwReason::from_text(r.as_str().as_bytes()), r);
        }
        assert_eq!(StwReason::from_text(b"read mem stat"), StwReason::Unknown);
    }
}
