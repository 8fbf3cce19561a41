//! Which functions of the Go runtime to probe, and how, for one binary.
//!
//! The choice is made per Go version (the signatures of the stop-the-world functions
//! differ: 1.19–1.20 take no reason, 1.21 a reason code, 1.22+ return a `worldStop`) and
//! for few hits per GC cycle: a probe hit costs microseconds, so nothing here fires per
//! allocation.
//!
//! **Default ([`StopsMode::Cycle`], `cycle_plan.rs`):** one hit per GC cycle, after the
//! world has restarted (entry of `mProf_Flush`, called by `gcMarkTermination` before it
//! releases `worldsema`), reading the runtime's own clocks and `pauseNS` in `work`; the
//! GC's two stops are rebuilt from them, so no probe fires inside a GC pause. Non-GC stops
//! are probed on their own paths only (1 hit each on Go 1.22+, 2 before, none inside the
//! pause on 1.19–1.21). Falls back to the mode below, with a warning, when the binary
//! lacks what it needs.
//!
//! **`--every-stop` ([`StopsMode::Every`]):** two hits per stop-the-world, one inside the
//! pause:
//!
//! | Go        | stop begins                                   | world restarted          |
//! |-----------|-----------------------------------------------|--------------------------|
//! | 1.22+     | `startTheWorldWithSema` entry: `worldStop` in registers (reason, startedStopping) | RET of `startTheWorldWithSema`: RAX = `now` |
//! | 1.21      | `stopTheWorldWithSema(reason)` entry           | same RET                 |
//! | 1.19–1.20 | `stopTheWorldWithSema()` entry; reason from the caller and `gcphase` | same RET |
//!
//! Cycle numbers and the forced flag are read from the runtime's own variables (`work`,
//! `memstats`), at addresses found through the symbol table and DWARF.

use super::heap_stats::{self, HeapStats};
use super::reads::plan_reads;
pub use super::reads::{
    fields_read, read_struct_fields, symbols_only, Location, ReadField, ReadSlot, ReadSpec, READS,
};
use super::scheme::{scheme_for, StopsMode, StwScheme, SUPPORTED_MINORS};
use super::sites::{
    entry_site, required, return_sites, PlanError, ProbeSite, GC_START, START_THE_WORLD,
    STOP_THE_WORLD,
};
use super::{cycle_plan, unreleased};
use crate::binary::{GoBinary, GoVersion};
use tracer_common::ProbeKind;

/// Everything the tracer will do to one binary.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    pub go_version: GoVersion,
    pub scheme: StwScheme,
    pub mode: StopsMode,
    /// [`StopsMode::Cycle`], Go 1.22+: where `gcMarkTermination` keeps its `worldStop`'s
    /// `startedStopping`, relative to the frame pointer at `mProf_Flush`'s entry.
    pub frame_off: Option<i64>,
    /// [`StopsMode::Cycle`], Go 1.22+: link-time address of `runtime.stopTheWorldContext`.
    pub stw_ctx: Option<u64>,
    /// [`StopsMode::Cycle`], Go 1.19–1.20: offsets of `g.m` and `m.preemptoff`.
    pub preemptoff: Option<(u32, u32)>,
    pub sites: Vec<ProbeSite>,
    pub reads: Vec<ReadSlot>,
    /// Link-time range of `runtime.systemstack` (for [`StwScheme::CallerInferred`]).
    pub systemstack: Option<(u64, u64)>,
    /// What works less well on this binary, in words for the user.
    pub warnings: Vec<String>,
    /// Where the [`ReadField::Mallocs`] slot's counts are (with the allocation probes
    /// only); `None` when that slot is not planned.
    pub heap_stats: Option<HeapStats>,
}

/// The layout behind the [`ReadField::Mallocs`] slot of `reads`, if there is one.
fn heap_stats_of(bin: &GoBinary, reads: &[ReadSlot]) -> Option<HeapStats> {
    reads
        .iter()
        .any(|r| r.field == ReadField::Mallocs)
        .then(|| heap_stats::locate(bin))
        .flatten()
}

/// Decide the probes and memory reads for `bin` in the default mode.
pub fn plan(bin: &GoBinary) -> Result<ProbePlan, PlanError> {
    plan_with(bin, StopsMode::Cycle)
}

/// Decide the probes and memory reads for `bin`. The default mode falls back to probing
/// every stop, with a warning that says why, when this binary does not let it see a
/// cycle whole from its end (a runtime variable or code shape it needs is missing).
pub fn plan_with(bin: &GoBinary, mode: StopsMode) -> Result<ProbePlan, PlanError> {
    // A runtime newer than any we know: seeing a cycle from its end relies on where
    // gcMarkTermination calls mProf_Flush, which its source may have moved, so only the
    // every-stop plan (whose functions' signatures `unreleased` verifies) is used.
    if mode == StopsMode::Cycle && unreleased::is_unreleased(bin.go_version()) {
        let mut every = plan_every(bin)?;
        every.warnings.insert(
            0,
            format!(
                "every stop of the world is probed (2 hits each): one hit per cycle is \
                 verified on Go 1.{}-1.{} only",
                SUPPORTED_MINORS.0, SUPPORTED_MINORS.1
            ),
        );
        return Ok(every);
    }
    if mode == StopsMode::Cycle {
        let version = bin.go_version().clone();
        let scheme = scheme_for(&version)?;
        let mut warnings = Vec::new();
        let (reads, _) = plan_reads(bin, scheme, StopsMode::Cycle, &mut warnings);
        match cycle_plan::plan_cycle(bin, scheme, &reads, &mut warnings) {
            Ok(cycle) => {
                return Ok(ProbePlan {
                    go_version: version,
                    scheme,
                    mode,
                    frame_off: cycle.frame_off,
                    stw_ctx: cycle.stw_ctx,
                    preemptoff: cycle.preemptoff,
                    sites: cycle.sites,
                    heap_stats: heap_stats_of(bin, &reads),
                    reads,
                    systemstack: None,
                    warnings,
                })
            }
            Err(why) => {
                let mut every = plan_every(bin)?;
                every.warnings.insert(
                    0,
                    format!("every stop of the world is probed (2 hits each): {why}"),
                );
                return Ok(every);
            }
        }
    }
    plan_every(bin)
}

/// [`StopsMode::Every`]: entry and end of every stop of the world.
fn plan_every(bin: &GoBinary) -> Result<ProbePlan, PlanError> {
    let version = bin.go_version().clone();
    let mut warnings = Vec::new();
    let scheme = unreleased::scheme_of(bin, &mut warnings)?;
    let mut sites = Vec::new();

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

    let (reads, systemstack) = plan_reads(bin, scheme, StopsMode::Every, &mut warnings);

    Ok(ProbePlan {
        go_version: version,
        scheme,
        mode: StopsMode::Every,
        frame_off: None,
        stw_ctx: None,
        preemptoff: None,
        sites,
        heap_stats: heap_stats_of(bin, &reads),
        reads,
        systemstack,
        warnings,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
