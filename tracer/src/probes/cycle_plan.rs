//! The default probe plan ([`StopsMode::Cycle`]): watch the runtime without touching its
//! pauses.
//!
//! **GC cycles: one hit each, none inside a pause.** `gcMarkTermination` calls
//! `mProf_Flush()` right after `startTheWorldWithSema` and before it releases
//! `worldsema`/`gcsema` (Go 1.19–1.27, mgc.go), so at that function's entry the world
//! runs, no other cycle can have started, and `work` holds the whole cycle: the clocks
//! `tSweepTerm`, `tMark`, `tMarkTerm`, `tEnd`, `pauseNS` (which `MemStats.PauseNs` was
//! just given), the heap figures gctrace prints. Both GC stops follow from them (see
//! `model::gc_done`). On Go 1.22+ the runtime counts the mark-termination pause from its
//! `worldStop.startedStopping`, a local of `gcMarkTermination` still in its frame at the
//! probe: read at a frame-pointer offset found in its code ([`code::arg_home`]).
//! `mProf_Flush` is also called inside the stop by `gcSweep` under
//! `GODEBUG=gcstoptheworld=2`; that hit sees `numgc` not yet advanced and is ignored.
//!
//! **Trigger:** `work.userForced` says forced; a time trigger comes only from
//! `forcegchelper`, whose call of `gcStart` is probed (a rare path: at most once per
//! two minutes); anything else is the heap.
//!
//! **Non-GC stops** are probed only on paths GC stops never take (`stopTheWorld` and
//! `startTheWorld`'s closures), so a GC cycle costs no hit there:
//!
//! | Go        | hits | start                                   | end, reason |
//! |-----------|------|-----------------------------------------|-------------|
//! | 1.22+     | 1    | `stopTheWorldContext.startedStopping`   | RET of `startTheWorld.func1` (RAX = `now`); reason from `stopTheWorldContext` |
//! | 1.21      | 2    | the call of `stopTheWorldWithSema` (before the stop) | same RET; reason in RAX at the call |
//! | 1.19–1.20 | 2    | the same call                           | same RET; reason: `m.preemptoff`, the string `stopTheWorld` was given |
//!
//! None of them falls inside the pause: the call site runs before the world starts
//! stopping, the RET after it runs again.

use tracer_common::{ProbeKind, OTHER_STOP_END};

use super::code;
use super::reads::{ReadField, ReadSlot};
use super::scheme::StwScheme;
use super::sites::{
    entry_site, required, return_sites, ProbeSite, GC_START, START_THE_WORLD, STOP_THE_WORLD,
};
use crate::binary::{Function, GoBinary};

pub(super) const MPROF_FLUSH: &str = "runtime.mProf_Flush";
const MARK_TERMINATION: &str = "runtime.gcMarkTermination";
const STOP_CLOSURE: &str = "runtime.stopTheWorld.func1";
const START_CLOSURE: &str = "runtime.startTheWorld.func1";
const STOP_CONTEXT: &str = "runtime.stopTheWorldContext";
const FORCEGC: &str = "runtime.forcegchelper";
const STOP_THE_WORLD_FN: &str = "runtime.stopTheWorld";

/// What [`plan_cycle`] decided.
pub(super) struct CyclePlan {
    pub sites: Vec<ProbeSite>,
    pub frame_off: Option<i64>,
    pub stw_ctx: Option<u64>,
    pub preemptoff: Option<(u32, u32)>,
}

/// Fields without which a cycle cannot be rebuilt from its end.
const NEEDED: [ReadField; 7] = [
    ReadField::GcCycles,
    ReadField::NumGc,
    ReadField::TSweepTerm,
    ReadField::TMark,
    ReadField::TMarkTerm,
    ReadField::GcEnd,
    ReadField::PauseNs,
];

fn function(bin: &GoBinary, name: &str) -> Result<Function, String> {
    bin.function(name)
        .ok_or_else(|| format!("{name} not found"))
}

fn site_at(
    bin: &GoBinary,
    kind: ProbeKind,
    program: &'static str,
    f: &Function,
    address: u64,
) -> Result<ProbeSite, String> {
    let file_offset = bin
        .file_offset(address)
        .ok_or_else(|| format!("{} at {address:#x} is not in a loadable segment", f.name))?;
    Ok(ProbeSite {
        kind,
        program,
        function: f.name.clone(),
        address,
        file_offset,
    })
}

/// The default plan for `bin`, or why it cannot be used on this binary.
pub(super) fn plan_cycle(
    bin: &GoBinary,
    scheme: StwScheme,
    reads: &[ReadSlot],
    warnings: &mut Vec<String>,
) -> Result<CyclePlan, String> {
    let missing: Vec<String> = NEEDED
        .iter()
        .filter(|f| !reads.iter().any(|r| r.field == **f))
        .map(|f| format!("{f:?}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "runtime variables not located: {}",
            missing.join(", ")
        ));
    }
    let flush = function(bin, MPROF_FLUSH)?;
    // At the push after the stack check where there is one (amd64): the same registers
    // as at the entry, at a fraction of the trap's cost (see `code::entry_equivalent_push`).
    let done = match code::entry_equivalent_push(bin, &flush) {
        Some(at) => site_at(
            bin,
            ProbeKind::GcDone,
            ProbeKind::GcDone.program_name(),
            &flush,
            at,
        )?,
        None => entry_site(bin, ProbeKind::GcDone, &flush).map_err(|e| crate::errors::chain(&e))?,
    };
    let mut sites = vec![done];

    // Time triggers: forcegchelper's call of gcStart (RAX = gcTriggerTime there).
    let gc_start = required(bin, GC_START, "GC triggers").map_err(|e| crate::errors::chain(&e))?;
    match bin.function(FORCEGC) {
        Some(helper) => {
            let calls = code::call_sites(bin, &helper, &gc_start);
            if calls.is_empty() {
                warnings.push(format!(
                    "no call of gcStart found in {FORCEGC}: time-triggered cycles are reported as heap"
                ));
            }
            for at in calls {
                sites.push(site_at(
                    bin,
                    ProbeKind::GcStart,
                    ProbeKind::GcStart.program_name(),
                    &helper,
                    at,
                )?);
            }
        }
        None => warnings.push(format!(
            "{FORCEGC} not found: time-triggered cycles are reported as heap"
        )),
    }

    let stop_closure = function(bin, STOP_CLOSURE)?;
    let start_closure = function(bin, START_CLOSURE)?;
    let stop_sema = function(bin, STOP_THE_WORLD)?;
    let start_sema = function(bin, START_THE_WORLD)?;
    if code::call_sites(bin, &start_closure, &start_sema).is_empty() {
        return Err(format!("{START_CLOSURE} does not call {}", start_sema.name));
    }
    let mut plan = CyclePlan {
        sites: Vec::new(),
        frame_off: None,
        stw_ctx: None,
        preemptoff: None,
    };
    match scheme {
        StwScheme::WorldStop => {
            plan.stw_ctx = bin
                .data_symbol(STOP_CONTEXT)
                .or_else(|| code::global_stored_after_call(bin, &stop_closure, &stop_sema));
            if plan.stw_ctx.is_none() {
                return Err(format!("{STOP_CONTEXT} not located"));
            }
            let ends = return_sites(bin, ProbeKind::StopPaired, &start_closure)
                .map_err(|e| crate::errors::chain(&e))?;
            sites.extend(ends.into_iter().map(|mut s| {
                s.program = OTHER_STOP_END;
                s
            }));
            let mark = bin.function(MARK_TERMINATION);
            // gcMarkTermination(stw worldStop): reason in the first register,
            // startedStopping (`start` in 1.22) in the second.
            plan.frame_off = mark.as_ref().and_then(|f| code::arg_home(bin, f, 1));
            if plan.frame_off.is_none() {
                warnings.push(
                    "the mark-termination stop's own start (worldStop.startedStopping) is not \
                     located in gcMarkTermination's frame: taken from work.tMarkTerm, a little \
                     earlier"
                        .into(),
                );
            }
        }
        StwScheme::ReasonArg | StwScheme::CallerInferred => {
            let calls = code::call_sites(bin, &stop_closure, &stop_sema);
            if calls.is_empty() {
                return Err(format!("{STOP_CLOSURE} does not call {}", stop_sema.name));
            }
            let kind = if scheme == StwScheme::ReasonArg {
                ProbeKind::StopTheWorld
            } else {
                ProbeKind::StopNamed
            };
            for at in calls {
                sites.push(site_at(bin, kind, kind.program_name(), &stop_closure, at)?);
            }
            sites.extend(
                return_sites(bin, ProbeKind::StartTheWorldReturn, &start_closure)
                    .map_err(|e| crate::errors::chain(&e))?,
            );
            if scheme == StwScheme::CallerInferred {
                let g_m = bin.struct_field_offset("runtime.g", "m");
                let off = bin.struct_field_offset("runtime.m", "preemptoff");
                plan.preemptoff = match (g_m, off) {
                    (Some(g), Some(o)) if o > 0 => match (u32::try_from(g), u32::try_from(o)) {
                        (Ok(g), Ok(o)) => Some((g, o)),
                        _ => None,
                    },
                    // No DWARF: from stopTheWorld's own store of its argument.
                    _ => bin
                        .function(STOP_THE_WORLD_FN)
                        .and_then(|f| code::preemptoff_from_code(bin, &f)),
                };
                if plan.preemptoff.is_none() {
                    warnings.push(
                        "runtime.m.preemptoff not located (no DWARF, and stopTheWorld's \
                         code not recognised): non-GC stops are reported as unknown"
                            .into(),
                    );
                }
            }
        }
    }
    plan.sites = sites;
    Ok(plan)
}
