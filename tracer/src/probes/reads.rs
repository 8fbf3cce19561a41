//! The runtime variables the kernel programs read, and where each lives in a binary.
//!
//! [`READS`] lists every one with the struct field (or global) that holds it and the
//! field name a warning uses when it cannot be located; [`plan_reads`] turns that list
//! into read slots (link-time addresses) for one binary. Offsets come from
//! [`GoBinary::struct_field_offset`]: DWARF, the offsets table, or the binary's own code.

use super::scheme::{StopsMode, StwScheme};
use crate::binary::{GoBinary, GoVersion, OffsetsSource};
use tracer_common::{ProbeKind, HEAP_LARGE_BYTES_WORD, HEAP_LARGE_OBJECTS_WORD, MAX_READS};

/// A runtime variable read by the kernel program into one of the event's read slots.
/// Every one is read when the world restarts, except [`ReadField::GcPhase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadField {
    /// `work.cycles` (uint32).
    GcCycles,
    /// `memstats.numgc` (uint32).
    NumGc,
    /// `work.userForced` (bool).
    UserForced,
    /// `runtimeInitTime` (int64).
    RuntimeInit,
    /// `gomaxprocs` (int32).
    Gomaxprocs,
    /// `gcphase` (uint32): 0 off, 1 mark, 2 mark termination. Read when the world
    /// starts stopping (Go 1.19–1.20 only).
    GcPhase,
    /// `work.tEnd` (int64).
    GcEnd,
    /// `work.heap0`, `heap1`, `heap2` (uint64): gctrace's heap triple.
    Heap0,
    Heap1,
    Heap2,
    /// `gcController.lastHeapGoal` (uint64).
    HeapGoal,
    /// `gcController.lastStackScan` (`maxStackScan` before 1.20) (uint64).
    StackScan,
    /// `gcController.globalsScan` (uint64).
    GlobalsScan,
    /// `work.maxprocs`, `work.stwprocs` (int32).
    MaxProcs,
    StwProcs,
    /// `memstats.gc_cpu_fraction` (float64).
    GcCpuFraction,
    /// `gcController.assistTime`, `dedicatedMarkTime`, `fractionalMarkTime`,
    /// `idleMarkTime` (int64 ns).
    AssistTime,
    DedicatedMarkTime,
    FractionalMarkTime,
    IdleMarkTime,
    /// `work.tSweepTerm`, `tMark`, `tMarkTerm` (int64 nanotime).
    TSweepTerm,
    TMark,
    TMarkTerm,
    /// `gcController.gcPercent` (int32): GOGC, negative = off.
    GcPercent,
    /// `gcController.memoryLimit` (int64): GOMEMLIMIT.
    MemoryLimit,
    /// `work.pauseNS` (int64): the cycle's stop-the-world time, `MemStats.PauseNs`.
    PauseNs,
    /// `memstats.numforcedgc` (uint32): forced cycles so far, counted inside the stop.
    NumForcedGc,
    /// `allglen` (uintptr): every goroutine ever created and not freed (the runtime
    /// reuses dead ones, it never frees them).
    Allglen,
    /// `sched.gFree.n` (1.19–1.24) or `sched.gFree.stack.size` (1.25+) (int32): dead
    /// goroutines on the global free list (with a stack).
    SchedGFree,
    /// `sched.gFree.noStack.size` (int32, Go 1.25+): dead goroutines without a stack.
    SchedGFreeNoStack,
    /// `sched.ngsys` (int32): system goroutines.
    SchedNgsys,
    /// `gcController.totalAlloc` (uint64): cumulative bytes allocated, span granularity.
    TotalAlloc,
    /// Objects allocated so far, as `MemStats.Mallocs` counts them: not one word but the
    /// sum over `memstats.heapStats` the kernel takes ([`super::heap_stats`]), counted
    /// when spans leave an mcache, like [`ReadField::TotalAlloc`]. Only with the
    /// allocation probes (`--allocs sample|exact`).
    Mallocs,
    /// Bytes of large objects allocated so far (`heapStats`' `largeAlloc`, summed over
    /// its generations from the same reads as [`ReadField::Mallocs`], which plans it):
    /// what lets a sample's large and small allocations each be scaled to the runtime's
    /// own count of its kind.
    LargeAllocBytes,
    /// Large objects allocated so far (`largeAllocCount`), likewise.
    LargeAllocObjects,
    /// `gcController.mappedReady` (uint64): mapped memory in the Ready state, what
    /// counts against GOMEMLIMIT.
    MappedReady,
    /// `gcController.heapFree` (uint64): free heap pages not yet returned to the OS.
    HeapFree,
    /// `gcController.totalFree` (uint64): cumulative bytes freed. With the three
    /// above, the non-heap memory `memoryLimitHeapGoal` subtracts from the limit:
    /// `mappedReady − heapFree − (totalAlloc − totalFree)` (the same in Go 1.19–1.27).
    /// Keep the last variant last in [`ReadField::COUNT`].
    TotalFree,
}

impl ReadField {
    /// Number of variants (discriminants are 0..COUNT): sizes per-field lookup tables.
    pub const COUNT: usize = ReadField::TotalFree as usize + 1;

    /// Which events carry this field when every stop is probed ([`StopsMode::Every`]).
    pub fn read_at(self) -> &'static [ProbeKind] {
        match self {
            ReadField::GcPhase => &[ProbeKind::StopTheWorld],
            _ => &[ProbeKind::StartTheWorldReturn],
        }
    }

    /// Which events carry this field in the default mode ([`StopsMode::Cycle`]): all at
    /// the cycle's end; the allocation counter and GOMAXPROCS also at non-GC stops' ends
    /// (whose paired events read the slots of [`ProbeKind::StartTheWorldReturn`]).
    pub fn read_at_cycle(self) -> &'static [ProbeKind] {
        match self {
            ReadField::TotalAlloc
            | ReadField::Mallocs
            | ReadField::LargeAllocBytes
            | ReadField::LargeAllocObjects
            | ReadField::Gomaxprocs => &[ProbeKind::GcDone, ProbeKind::StartTheWorldReturn],
            _ => &[ProbeKind::GcDone],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSlot {
    pub field: ReadField,
    /// Link-time address; add the load bias for the running process.
    pub address: u64,
    /// The probe kinds whose events read it.
    pub at: &'static [ProbeKind],
}

/// Where a runtime variable read by the kernel programs lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A field of a struct-typed global: the global's symbol, its struct type, and the
    /// field's names, newest first (the first one the binary has is used, unless
    /// [`location_for`] picks one by Go version).
    Field {
        global: &'static str,
        ty: &'static str,
        members: &'static [&'static str],
    },
    /// A global of its own.
    Global(&'static str),
}

/// One runtime variable the kernel programs may read, and what the user loses without it.
#[derive(Clone, Copy, Debug)]
pub struct ReadSpec {
    pub field: ReadField,
    pub location: Location,
    pub without: &'static str,
}

/// A struct-typed global the tracer reads fields of: its symbol and its type's name.
type Struct = (&'static str, &'static str);
const WORK: Struct = ("runtime.work", "runtime.workType");
const MEMSTATS: Struct = ("runtime.memstats", "runtime.mstats");
const CONTROLLER: Struct = ("runtime.gcController", "runtime.gcControllerState");
const SCHED: Struct = ("runtime.sched", "runtime.schedt");
const STATE: &str = "gctrace figures";
const GOROUTINES: &str = "goroutine count";
const NON_HEAP: &str = "non-heap memory (memory-limit what-ifs)";

/// A field (`members`, a path into the struct) of the struct-typed global `of`.
const fn member(
    of: Struct,
    field: ReadField,
    members: &'static [&'static str],
    without: &'static str,
) -> ReadSpec {
    ReadSpec {
        field,
        location: Location::Field {
            global: of.0,
            ty: of.1,
            members,
        },
        without,
    }
}

const fn global(field: ReadField, symbol: &'static str, without: &'static str) -> ReadSpec {
    ReadSpec {
        field,
        location: Location::Global(symbol),
        without,
    }
}

/// Every runtime variable the tracer reads, in read-slot order: the one list that both
/// [`plan`] and the offsets table generator (`cargo xtask gen-offsets`, through
/// [`read_struct_fields`]) work from, so the table always covers what is read.
/// [`ReadField::GcPhase`] is only read on Go 1.19–1.20.
pub const READS: &[ReadSpec] = &[
    member(
        WORK,
        ReadField::GcCycles,
        &["cycles"],
        "cycle numbers (counted from attach instead)",
    ),
    member(
        MEMSTATS,
        ReadField::NumGc,
        &["numgc"],
        "cycle completion (a cycle is closed at the next one)",
    ),
    member(
        WORK,
        ReadField::UserForced,
        &["userForced"],
        "forced flag (inferred from gcStart)",
    ),
    global(
        ReadField::RuntimeInit,
        "runtime.runtimeInitTime",
        "gctrace @ times",
    ),
    global(ReadField::Gomaxprocs, "runtime.gomaxprocs", "GOMAXPROCS"),
    member(
        WORK,
        ReadField::GcEnd,
        &["tEnd"],
        "exact end of mark termination",
    ),
    // gctrace's heap, goal and cpu figures and the settings in force, read when the
    // world restarts after mark termination, where gctrace itself reads them.
    member(WORK, ReadField::Heap0, &["heap0"], STATE),
    member(WORK, ReadField::Heap1, &["heap1"], STATE),
    member(WORK, ReadField::Heap2, &["heap2"], STATE),
    member(CONTROLLER, ReadField::HeapGoal, &["lastHeapGoal"], STATE),
    member(
        CONTROLLER,
        ReadField::StackScan,
        &["lastStackScan", "maxStackScan"],
        STATE,
    ),
    member(CONTROLLER, ReadField::GlobalsScan, &["globalsScan"], STATE),
    member(WORK, ReadField::MaxProcs, &["maxprocs"], STATE),
    member(WORK, ReadField::StwProcs, &["stwprocs"], STATE),
    member(
        MEMSTATS,
        ReadField::GcCpuFraction,
        &["gc_cpu_fraction"],
        STATE,
    ),
    member(CONTROLLER, ReadField::AssistTime, &["assistTime"], STATE),
    member(
        CONTROLLER,
        ReadField::DedicatedMarkTime,
        &["dedicatedMarkTime"],
        STATE,
    ),
    member(
        CONTROLLER,
        ReadField::FractionalMarkTime,
        &["fractionalMarkTime"],
        STATE,
    ),
    member(
        CONTROLLER,
        ReadField::IdleMarkTime,
        &["idleMarkTime"],
        STATE,
    ),
    member(WORK, ReadField::TSweepTerm, &["tSweepTerm"], STATE),
    member(WORK, ReadField::TMark, &["tMark"], STATE),
    member(WORK, ReadField::TMarkTerm, &["tMarkTerm"], STATE),
    member(CONTROLLER, ReadField::GcPercent, &["gcPercent"], "GOGC"),
    member(
        CONTROLLER,
        ReadField::MemoryLimit,
        &["memoryLimit"],
        "GOMEMLIMIT",
    ),
    member(
        WORK,
        ReadField::PauseNs,
        &["pauseNS"],
        "the runtime's own pause per cycle",
    ),
    member(
        MEMSTATS,
        ReadField::NumForcedGc,
        &["numforcedgc"],
        "exact forced flag (read from work.userForced, which the next runtime.GC() may \
         already have set)",
    ),
    member(
        CONTROLLER,
        ReadField::TotalAlloc,
        &["totalAlloc"],
        "allocation rate",
    ),
    // `gcount()`'s terms that sit at fixed addresses (its per-P free lists do not).
    global(ReadField::Allglen, "runtime.allglen", GOROUTINES),
    member(
        SCHED,
        ReadField::SchedGFree,
        &["gFree.n", "gFree.stack.size"],
        GOROUTINES,
    ),
    member(
        SCHED,
        ReadField::SchedGFreeNoStack,
        &["gFree.noStack.size"],
        GOROUTINES,
    ),
    member(SCHED, ReadField::SchedNgsys, &["ngsys"], GOROUTINES),
    global(
        ReadField::GcPhase,
        "runtime.gcphase",
        "telling GC stops apart",
    ),
    // Where `memstats.heapStats` starts; the counts' place in it is [`super::heap_stats`]'s.
    member(
        MEMSTATS,
        ReadField::Mallocs,
        &["heapStats"],
        super::heap_stats::WITHOUT,
    ),
    // memoryLimitHeapGoal's terms: the non-heap memory a memory-limit what-if needs.
    member(
        CONTROLLER,
        ReadField::MappedReady,
        &["mappedReady"],
        NON_HEAP,
    ),
    member(CONTROLLER, ReadField::HeapFree, &["heapFree"], NON_HEAP),
    member(CONTROLLER, ReadField::TotalFree, &["totalFree"], NON_HEAP),
];

/// The goroutine count's terms (`allglen`, `sched.gFree`, `sched.ngsys`), the
/// allocation count (`memstats.heapStats`, whose inner layout changed in Go 1.25, and the
/// large objects' two words beside it, planned only with it) and the
/// non-heap memory's (`mappedReady`, `heapFree`, `totalFree`): located only through the
/// symbol table and DWARF. They are not in the offsets table and not derived from code,
/// so a stripped binary has no goroutine count, no runtime object count and no non-heap
/// memory (and a warning says so) while its GC figures are unaffected.
pub fn symbols_only(field: ReadField) -> bool {
    matches!(
        field,
        ReadField::Allglen
            | ReadField::SchedGFree
            | ReadField::SchedGFreeNoStack
            | ReadField::SchedNgsys
            | ReadField::Mallocs
            | ReadField::LargeAllocBytes
            | ReadField::LargeAllocObjects
            | ReadField::MappedReady
            | ReadField::HeapFree
            | ReadField::TotalFree
    )
}

/// Every (struct type, field name) the tracer may read, each once, in [`READS`] order,
/// but the [`symbols_only`] ones: what the offsets table holds. Alternative names are all
/// listed: a binary has one of them.
pub fn read_struct_fields() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in READS.iter().filter(|r| !symbols_only(r.field)) {
        if let Location::Field { ty, members, .. } = r.location {
            for m in members {
                if !out.contains(&(ty, *m)) {
                    out.push((ty, m));
                }
            }
        }
    }
    out
}

/// The struct fields `bin` would have read, one per [`READS`] entry that is a field (the
/// member the binary has, or the first candidate name when none is known): what
/// `inspect` lists with each offset's source.
pub fn fields_read(bin: &GoBinary) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for spec in READS.iter().filter(|r| !symbols_only(r.field)) {
        if let Location::Field { ty, members, .. } = location_for(spec, bin.go_version()) {
            let m = members
                .iter()
                .copied()
                .find(|m| bin.struct_field_offset(ty, m).is_some())
                .or_else(|| members.first().copied());
            if let Some(m) = m {
                if !out.contains(&(ty, m)) {
                    out.push((ty, m));
                }
            }
        }
    }
    out
}

/// Where `spec` is read in a binary of `version`: its location, except where the field
/// gctrace prints changed while the old one stayed. Go 1.19 has both `lastStackScan` and
/// `maxStackScan`, but its gctrace prints `maxStackScan` (stack space in use) where 1.20+
/// print `lastStackScan` (stack bytes the last cycle scanned), so the first-found rule of
/// [`locate`] read the wrong one on 1.19 (with 10,000 parked goroutines: 32 MB read where
/// gctrace said 78 MB; with few goroutines both round to 0 MB).
pub(super) fn location_for(spec: &ReadSpec, version: &GoVersion) -> Location {
    match spec.location {
        Location::Field { global, ty, .. }
            if spec.field == ReadField::StackScan && version.minor < 20 =>
        {
            Location::Field {
                global,
                ty,
                members: &["maxStackScan"],
            }
        }
        other => other,
    }
}

/// Link-time address of one runtime variable in `bin`, if it can be located.
fn locate(bin: &GoBinary, location: Location) -> Option<u64> {
    match location {
        Location::Global(symbol) => bin.data_symbol(symbol),
        Location::Field {
            global,
            ty,
            members,
        } => {
            let base = bin.data_symbol(global)?;
            let off = members
                .iter()
                .find_map(|m| bin.struct_field_offset(ty, m))?;
            base.checked_add(off)
        }
    }
}

/// The runtime variables to read, with their link-time addresses. Unknown ones become
/// warnings; the rest of the tracer shows them as unknown.
pub(super) fn plan_reads(
    bin: &GoBinary,
    scheme: StwScheme,
    mode: StopsMode,
    warnings: &mut Vec<String>,
) -> (Vec<ReadSlot>, Option<(u64, u64)>) {
    let minor = bin.go_version().minor;
    let wanted: Vec<&ReadSpec> = READS
        .iter()
        .filter(|r| {
            r.field != ReadField::GcPhase
                || (scheme == StwScheme::CallerInferred && mode == StopsMode::Every)
        })
        // The free list was split in two in Go 1.25.
        .filter(|r| r.field != ReadField::SchedGFreeNoStack || minor >= 25)
        .collect();
    if bin.is_stripped() {
        warnings.extend(bin.data_symbol_warnings());
    }
    let needs_offsets = wanted
        .iter()
        .any(|r| matches!(r.location, Location::Field { .. }));
    let source = bin.offsets_source();
    if needs_offsets && matches!(source, OffsetsSource::None | OffsetsSource::Code) {
        warnings.extend(bin.derived_offsets_warnings());
        let unknown: Vec<String> = fields_read(bin)
            .into_iter()
            .filter(|(ty, f)| bin.struct_field_offset(ty, f).is_none())
            .map(|(ty, f)| format!("{ty}.{f}"))
            .collect();
        if source == OffsetsSource::None {
            warnings.push(format!(
                "no DWARF and {} {} is not in the built-in offsets table, and its code \
                 confirms no layout: runtime struct fields cannot be located",
                bin.go_version(),
                bin.arch()
            ));
        } else if !unknown.is_empty() {
            warnings.push(format!(
                "no DWARF and {} {} is not in the built-in offsets table: offsets derived \
                 from code; not verified, so unknown: {}",
                bin.go_version(),
                bin.arch(),
                unknown.join(", ")
            ));
        }
    }
    let mut systemstack = None;
    if scheme == StwScheme::CallerInferred && mode == StopsMode::Every {
        // An assembly function: `.abi0` in the symbol table, plain in pclntab.
        systemstack = bin
            .function("runtime.systemstack")
            .or_else(|| bin.function("runtime.systemstack.abi0"))
            .map(|f| (f.address, f.address + f.size));
        if systemstack.is_none() {
            warnings.push("runtime.systemstack not found: GC stops reported as unknown".into());
        }
    }

    let mut reads = Vec::new();
    let mut lost: Vec<&str> = Vec::new();
    for want in wanted {
        let located = locate(bin, location_for(want, bin.go_version()));
        // The allocation count is read from its first counting word, where the layout
        // of `heapStats` allows it.
        let located = match want.field {
            ReadField::Mallocs => located.and_then(|base| {
                super::heap_stats::locate(bin).and_then(|h| base.checked_add(h.offset))
            }),
            _ => located,
        };
        match located {
            Some(address) if reads.len() < MAX_READS => reads.push(ReadSlot {
                field: want.field,
                address,
                at: match mode {
                    StopsMode::Every => want.field.read_at(),
                    StopsMode::Cycle => want.field.read_at_cycle(),
                },
            }),
            // Wanted by `--allocs sample` alone, which says so itself when the plan has
            // no such slot ([`super::heap_stats::WITHOUT`]): not a gap of the other modes.
            _ if want.field == ReadField::Mallocs => {}
            _ => {
                if !lost.contains(&want.without) {
                    lost.push(want.without);
                }
            }
        }
    }
    // The large objects' words sit beside the object count's first word, and are summed
    // with it (never read as the word their slot points at).
    if let Some(base) = reads
        .iter()
        .find(|r| r.field == ReadField::Mallocs)
        .map(|r| r.address)
    {
        let at = match mode {
            StopsMode::Every => ReadField::Mallocs.read_at(),
            StopsMode::Cycle => ReadField::Mallocs.read_at_cycle(),
        };
        for (field, word) in [
            (ReadField::LargeAllocBytes, HEAP_LARGE_BYTES_WORD),
            (ReadField::LargeAllocObjects, HEAP_LARGE_OBJECTS_WORD),
        ] {
            if reads.len() < MAX_READS {
                reads.push(ReadSlot {
                    field,
                    address: base.wrapping_add(8 * word as u64),
                    at,
                });
            }
        }
    }
    if !lost.is_empty() {
        warnings.push(format!(
            "runtime variables not located in this binary; unknown: {}",
            lost.join(", ")
        ));
    }
    (reads, systemstack)
}
