//! Which functions of the Go runtime to probe, and how, for one binary.
//!
//! The choice is made per Go version (signatures differ; see shared notes
//! `go-runtime.md`) and for few hits per GC cycle: a probe hit costs microseconds, so
//! nothing here fires per allocation. Per stop-the-world we take two hits, and only one of
//! them falls inside the pause:
//!
//! | Go        | stop begins                                   | world restarted          |
//! |-----------|-----------------------------------------------|--------------------------|
//! | 1.22+     | `startTheWorldWithSema` entry: `worldStop` in registers (reason, startedStopping) | RET of `startTheWorldWithSema`: RAX = `now` |
//! | 1.21      | `stopTheWorldWithSema(reason)` entry           | same RET                 |
//! | 1.19–1.20 | `stopTheWorldWithSema()` entry; reason from the caller and `gcphase` | same RET |
//!
//! Cycle numbers and the forced flag are read from the runtime's own variables (`work`,
//! `memstats`) when the world restarts, at addresses found through the symbol table and
//! DWARF.

use crate::binary::{BinaryError, Function, GoBinary, GoVersion};
use tracer_common::{ProbeKind, MAX_READS};

/// How stop-the-world events are read on this Go version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StwScheme {
    /// Go 1.19–1.20: no reason code; GC stops are called straight through `systemstack`
    /// and told apart by `gcphase`.
    CallerInferred,
    /// Go 1.21: `stopTheWorldWithSema(reason stwReason)`.
    ReasonArg,
    /// Go 1.22+: `startTheWorldWithSema(now int64, w worldStop)`.
    WorldStop,
}

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
    /// `gcController.totalAlloc` (uint64): cumulative bytes allocated, span granularity.
    TotalAlloc,
}

impl ReadField {
    /// Which event carries this field.
    pub fn read_at(self) -> ProbeKind {
        match self {
            ReadField::GcPhase => ProbeKind::StopTheWorld,
            _ => ProbeKind::StartTheWorldReturn,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSlot {
    pub field: ReadField,
    /// Link-time address; add the load bias for the running process.
    pub address: u64,
}

/// One uprobe to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    pub kind: ProbeKind,
    pub function: String,
    /// Link-time virtual address of the probed instruction.
    pub address: u64,
    /// Offset of that instruction in the ELF file (what the kernel's uprobe API takes).
    pub file_offset: u64,
}

/// Everything the tracer will do to one binary.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    pub go_version: GoVersion,
    pub scheme: StwScheme,
    pub sites: Vec<ProbeSite>,
    pub reads: Vec<ReadSlot>,
    /// Link-time range of `runtime.systemstack` (for [`StwScheme::CallerInferred`]).
    pub systemstack: Option<(u64, u64)>,
    /// What works less well on this binary, in words for the user.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{version} is not supported: gctrace-bpf understands Go 1.19 to 1.27")]
    UnsupportedVersion { version: String },
    #[error("{function} not found in the binary; cannot trace {what}")]
    MissingFunction {
        function: &'static str,
        what: &'static str,
    },
    #[error("{function}: {source}")]
    Decode {
        function: String,
        source: BinaryError,
    },
    #[error("{function} has no RET instruction; refusing to guess its exits")]
    NoReturn { function: String },
    #[error("address {address:#x} of {function} is not in a loadable segment")]
    NoFileOffset { function: String, address: u64 },
}

/// Oldest and newest Go minor versions whose runtime this tracer has been checked against.
pub const SUPPORTED_MINORS: (u32, u32) = (19, 27);

pub const GC_START: &str = "runtime.gcStart";
pub const STOP_THE_WORLD: &str = "runtime.stopTheWorldWithSema";
pub const START_THE_WORLD: &str = "runtime.startTheWorldWithSema";

fn scheme_for(v: &GoVersion) -> Result<StwScheme, PlanError> {
    if v.major != 1 || v.minor < SUPPORTED_MINORS.0 || v.minor > SUPPORTED_MINORS.1 {
        return Err(PlanError::UnsupportedVersion {
            version: v.raw.clone(),
        });
    }
    Ok(match v.minor {
        19 | 20 => StwScheme::CallerInferred,
        21 => StwScheme::ReasonArg,
        _ => StwScheme::WorldStop,
    })
}

fn entry_site(bin: &GoBinary, kind: ProbeKind, f: &Function) -> Result<ProbeSite, PlanError> {
    let file_offset = bin
        .file_offset(f.address)
        .ok_or_else(|| PlanError::NoFileOffset {
            function: f.name.clone(),
            address: f.address,
        })?;
    Ok(ProbeSite {
        kind,
        function: f.name.clone(),
        address: f.address,
        file_offset,
    })
}

fn return_sites(
    bin: &GoBinary,
    kind: ProbeKind,
    f: &Function,
) -> Result<Vec<ProbeSite>, PlanError> {
    let rets = bin.return_sites(f).map_err(|source| PlanError::Decode {
        function: f.name.clone(),
        source,
    })?;
    if rets.is_empty() {
        return Err(PlanError::NoReturn {
            function: f.name.clone(),
        });
    }
    rets.into_iter()
        .map(|address| {
            let file_offset = bin
                .file_offset(address)
                .ok_or_else(|| PlanError::NoFileOffset {
                    function: f.name.clone(),
                    address,
                })?;
            Ok(ProbeSite {
                kind,
                function: f.name.clone(),
                address,
                file_offset,
            })
        })
        .collect()
}

fn required(bin: &GoBinary, name: &'static str, what: &'static str) -> Result<Function, PlanError> {
    bin.function(name).ok_or(PlanError::MissingFunction {
        function: name,
        what,
    })
}

/// Where one runtime variable lives: `symbol` plus the DWARF offset of `member` in `ty`
/// (`None` for a plain global), and what the user loses without it.
struct Wanted {
    field: ReadField,
    address: Option<u64>,
    without: &'static str,
}

/// The runtime variables to read, with their link-time addresses. Unknown ones become
/// warnings; the rest of the tracer shows them as unknown.
fn plan_reads(
    bin: &GoBinary,
    scheme: StwScheme,
    warnings: &mut Vec<String>,
) -> (Vec<ReadSlot>, Option<(u64, u64)>) {
    let field = |sym: &str, ty: &str, member: &str| {
        let base = bin.data_symbol(sym)?;
        let off = bin.struct_field_offset(ty, member)?;
        Some(base + off)
    };
    let work = |member: &str| field("runtime.work", "runtime.workType", member);
    let ctl = |member: &str| field("runtime.gcController", "runtime.gcControllerState", member);
    let stats = |member: &str| field("runtime.memstats", "runtime.mstats", member);
    let w = |field: ReadField, address: Option<u64>, without: &'static str| Wanted {
        field,
        address,
        without,
    };
    const STATE: &str = "gctrace figures";
    let mut wanted = vec![
        w(
            ReadField::GcCycles,
            work("cycles"),
            "cycle numbers (counted from attach instead)",
        ),
        w(
            ReadField::NumGc,
            stats("numgc"),
            "cycle completion (a cycle is closed at the next one)",
        ),
        w(
            ReadField::UserForced,
            work("userForced"),
            "forced flag (inferred from gcStart)",
        ),
        w(
            ReadField::RuntimeInit,
            bin.data_symbol("runtime.runtimeInitTime"),
            "gctrace @ times",
        ),
        w(
            ReadField::Gomaxprocs,
            bin.data_symbol("runtime.gomaxprocs"),
            "GOMAXPROCS",
        ),
        w(
            ReadField::GcEnd,
            work("tEnd"),
            "exact end of mark termination",
        ),
        // gctrace's heap, goal and cpu figures and the settings in force, read when the
        // world restarts after mark termination, where gctrace itself reads them.
        w(ReadField::Heap0, work("heap0"), STATE),
        w(ReadField::Heap1, work("heap1"), STATE),
        w(ReadField::Heap2, work("heap2"), STATE),
        w(ReadField::HeapGoal, ctl("lastHeapGoal"), STATE),
        w(
            ReadField::StackScan,
            ctl("lastStackScan").or_else(|| ctl("maxStackScan")),
            STATE,
        ),
        w(ReadField::GlobalsScan, ctl("globalsScan"), STATE),
        w(ReadField::MaxProcs, work("maxprocs"), STATE),
        w(ReadField::StwProcs, work("stwprocs"), STATE),
        w(ReadField::GcCpuFraction, stats("gc_cpu_fraction"), STATE),
        w(ReadField::AssistTime, ctl("assistTime"), STATE),
        w(
            ReadField::DedicatedMarkTime,
            ctl("dedicatedMarkTime"),
            STATE,
        ),
        w(
            ReadField::FractionalMarkTime,
            ctl("fractionalMarkTime"),
            STATE,
        ),
        w(ReadField::IdleMarkTime, ctl("idleMarkTime"), STATE),
        w(ReadField::TSweepTerm, work("tSweepTerm"), STATE),
        w(ReadField::TMark, work("tMark"), STATE),
        w(ReadField::TMarkTerm, work("tMarkTerm"), STATE),
        w(ReadField::GcPercent, ctl("gcPercent"), "GOGC"),
        w(ReadField::MemoryLimit, ctl("memoryLimit"), "GOMEMLIMIT"),
        w(ReadField::TotalAlloc, ctl("totalAlloc"), "allocation rate"),
    ];
    let mut systemstack = None;
    if scheme == StwScheme::CallerInferred {
        wanted.push(w(
            ReadField::GcPhase,
            bin.data_symbol("runtime.gcphase"),
            "telling GC stops apart",
        ));
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
        match want.address {
            Some(address) if reads.len() < MAX_READS => reads.push(ReadSlot {
                field: want.field,
                address,
            }),
            _ => {
                if !lost.contains(&want.without) {
                    lost.push(want.without);
                }
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

/// Decide the probes and memory reads for `bin`.
pub fn plan(bin: &GoBinary) -> Result<ProbePlan, PlanError> {
    let version = bin.go_version().clone();
    let scheme = scheme_for(&version)?;
    let mut sites = Vec::new();
    let mut warnings = Vec::new();

    let gc_start = required(bin, GC_START, "GC triggers")?;
    sites.push(entry_site(bin, ProbeKind::GcStart, &gc_start)?);

    let start = required(bin, START_THE_WORLD, "stop-the-world pauses")?;
    match scheme {
        StwScheme::WorldStop => sites.push(entry_site(bin, ProbeKind::StartTheWorld, &start)?),
        StwScheme::ReasonArg | StwScheme::CallerInferred => {
            let stop = required(bin, STOP_THE_WORLD, "stop-the-world pauses")?;
            sites.push(entry_site(bin, ProbeKind::StopTheWorld, &stop)?);
        }
    }
    sites.extend(return_sites(bin, ProbeKind::StartTheWorldReturn, &start)?);

    let (reads, systemstack) = plan_reads(bin, scheme, &mut warnings);

    Ok(ProbePlan {
        go_version: version,
        scheme,
        sites,
        reads,
        systemstack,
        warnings,
    })
}

/// `runtime.mallocgc`: every allocation up to Go 1.26 (by default) passes through it.
pub const MALLOCGC: &str = "runtime.mallocgc";

/// Go 1.27 (and 1.26 with GOEXPERIMENT=sizespecializedmalloc): size-specialised entry
/// points the compiler calls directly (cmd/compile ssagen `specializedMallocSym`), so most
/// small allocations never enter mallocgc. Their slow paths are called from them and are
/// not entry points.
const SPECIALISED_MALLOC_PREFIXES: [&str; 3] = [
    "runtime.mallocgcSmallScanNoHeaderSC",
    "runtime.mallocgcSmallNoScanSC",
    "runtime.mallocgcTinySC",
];

/// Probes for counting every allocation.
#[derive(Clone, Debug)]
pub struct AllocPlan {
    /// Entry of mallocgc and of every size-specialised allocation function present.
    pub sites: Vec<ProbeSite>,
    /// Link-time range of mallocgc: entries called from inside it are counted there.
    pub mallocgc: (u64, u64),
}

/// Decide the allocation probes for `bin` (used by `--allocs exact|sample`).
pub fn plan_allocs(bin: &GoBinary) -> Result<AllocPlan, PlanError> {
    let mallocgc = required(bin, MALLOCGC, "allocations")?;
    let mut sites = vec![entry_site(bin, ProbeKind::Alloc, &mallocgc)?];
    for prefix in SPECIALISED_MALLOC_PREFIXES {
        for f in bin.functions_with_prefix(prefix) {
            let suffix = &f.name[prefix.len()..];
            // SC<N> only: not the slow paths, not ABI wrappers.
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) {
                sites.push(entry_site(bin, ProbeKind::Alloc, &f)?);
            }
        }
    }
    Ok(AllocPlan {
        sites,
        mallocgc: (mallocgc.address, mallocgc.end()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u32) -> GoVersion {
        GoVersion {
            major: 1,
            minor,
            patch: 0,
            raw: format!("go1.{minor}"),
        }
    }

    #[test]
    fn scheme_follows_runtime_signatures() {
        assert_eq!(scheme_for(&v(19)).ok(), Some(StwScheme::CallerInferred));
        assert_eq!(scheme_for(&v(20)).ok(), Some(StwScheme::CallerInferred));
        assert_eq!(scheme_for(&v(21)).ok(), Some(StwScheme::ReasonArg));
        assert_eq!(scheme_for(&v(22)).ok(), Some(StwScheme::WorldStop));
        assert_eq!(scheme_for(&v(27)).ok(), Some(StwScheme::WorldStop));
    }

    #[test]
    fn unknown_versions_are_refused() {
        for minor in [18, 28] {
            let err = scheme_for(&v(minor)).unwrap_err().to_string();
            assert!(err.contains("Go 1.19 to 1.27"), "{err}");
        }
    }
}
