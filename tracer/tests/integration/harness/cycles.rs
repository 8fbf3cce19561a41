//! The launch-mode judgement of a traced gcload run against the runtime's own account
//! (its GODEBUG=gctrace=1 lines and MemStats): every cycle reported once, forced cycles,
//! ReadMemStats stops, phase clocks and pauses cycle by cycle, the summary. Shared by the
//! x86 integration tests (gc_cycles.rs) and the arm64 guest's (arm64_guest.rs), which
//! judge runs made elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{parse_gctrace, parse_trace, GcRec, MsRange, TracedRun};

/// How closely a run must agree with the runtime.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// The share of cycles, in percent, that must agree on every measure.
    pub agreement_pct: usize,
}

/// On real hardware.
pub const NATIVE: Tolerance = Tolerance { agreement_pct: 95 };

/// gctrace's value range widened by 60 µs + 15 %.
pub fn clock_ok(range: MsRange, measured: u64) -> bool {
    range.distance(measured) <= 60_000 + range.hi_ns * 15 / 100
}

/// Every check of a launch-mode run of gcload (WORKLOAD_ARGS) under `--format json`:
/// `minor` is the Go minor version (1.19-1.20 have no stop reasons), `arch` the
/// `process.arch` expected, `tolerance` [`NATIVE`] on real hardware. Ok holds a one-line account, Err every problem found.
pub fn check_cycles_against_runtime(
    shared: &TracedRun,
    minor: u32,
    arch: &str,
    tolerance: Tolerance,
) -> Result<String, String> {
    let go_version = &shared.go_version;
    let memstats = shared.assert_completed();
    let trace_text = &shared.trace_text;
    let gctrace = parse_gctrace(&shared.stderr);
    let trace = parse_trace(trace_text);
    let mut failures: Vec<String> = Vec::new();

    if !trace.errors.is_empty() {
        failures.push(format!(
            "malformed trace lines:\n  {}",
            trace.errors.join("\n  ")
        ));
    }
    if gctrace.is_empty() {
        failures.push("no gctrace lines on stderr: was GODEBUG passed to the workload?".into());
    }

    // The process record.
    match (&trace.first_type, &trace.process) {
        (Some(t), Some(p)) if t == "process" => {
            if p.go_version.as_deref() != Some(go_version.as_str()) {
                failures.push(format!(
                    "process.go_version is {:?}, `go version` says {go_version:?}",
                    p.go_version
                ));
            }
            if p.arch.as_deref() != Some(arch) {
                failures.push(format!("process.arch is {:?}, expected {arch:?}", p.arch));
            }
        }
        (first, _) => failures.push(format!("first record is {first:?}, not \"process\"")),
    }

    // Every cycle gctrace printed is reported, once.
    let mut by_cycle: BTreeMap<u32, &GcRec> = BTreeMap::new();
    for rec in &trace.gc {
        if by_cycle.insert(rec.cycle, rec).is_some() {
            failures.push(format!("cycle {} reported more than once", rec.cycle));
        }
    }
    let missing: Vec<u32> = gctrace
        .keys()
        .copied()
        .filter(|c| !by_cycle.contains_key(c))
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{} of {} cycles gctrace printed have no gc record: {missing:?}",
            missing.len(),
            gctrace.len()
        ));
    }

    // Forced cycles agree.
    let forced_json: BTreeSet<u32> = trace
        .gc
        .iter()
        .filter(|r| r.trigger.as_deref() == Some("forced"))
        .map(|r| r.cycle)
        .collect();
    let forced_gctrace: BTreeSet<u32> = gctrace
        .values()
        .filter(|l| l.forced)
        .map(|l| l.cycle)
        .collect();
    // gctrace prints " (forced)" after restarting the world, reading work.userForced
    // again; a runtime.GC() waiting for that cycle can start the next one and set the flag
    // in between (seen on Go 1.19: "gc 16 ... (forced)" for a heap cycle, NumForcedGC one
    // lower than the forced lines). Such a line is the runtime's print race, not a forced
    // cycle: it is excused only when the next cycle is forced, and the runtime's own count
    // (MemStats.NumForcedGC) must still match the trace exactly.
    let race_excused: BTreeSet<u32> = forced_gctrace
        .difference(&forced_json)
        .copied()
        .filter(|c| forced_json.contains(&(c + 1)))
        .collect();
    let forced_gctrace_real: BTreeSet<u32> =
        forced_gctrace.difference(&race_excused).copied().collect();
    if forced_json != forced_gctrace_real {
        failures.push(format!(
            "forced cycles differ: trace says {forced_json:?}, gctrace says {forced_gctrace:?}"
        ));
    }
    if forced_json.len() != memstats.num_forced_gc as usize {
        failures.push(format!(
            "trace has {} forced cycles, MemStats.NumForcedGC is {}",
            forced_json.len(),
            memstats.num_forced_gc
        ));
    }

    // ReadMemStats stops the world each time, named in the runtime's words on every
    // version (Go 1.19-1.20 from the string passed to stopTheWorld), and no stop of this
    // workload is unnamed.
    let rms_reason = "read mem stats";
    let rms = trace.stw.iter().filter(|s| s.reason == rms_reason).count() as u64;
    let unknown = trace.stw.iter().filter(|s| s.reason == "unknown").count();
    if unknown > 0 {
        failures.push(format!(
            "Go 1.{minor}: {unknown} stw records with reason \"unknown\""
        ));
    }
    if rms < memstats.read_mem_stats_calls {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &trace.stw {
            *reasons.entry(s.reason.as_str()).or_default() += 1;
        }
        failures.push(format!(
            "{rms} stw records with reason {rms_reason:?}, but the workload called \
             ReadMemStats {} times; stw reasons seen: {reasons:?}",
            memstats.read_mem_stats_calls
        ));
    }

    // Phase durations and pauses, cycle by cycle.
    let mut table = String::new();
    let mut matched = 0usize;
    let mut bad_cycles = 0usize;
    for (cycle, line) in &gctrace {
        let Some(rec) = by_cycle.get(cycle) else {
            continue;
        };
        matched += 1;
        let mut bad = Vec::new();
        let phases = [
            ("sweep_term_ns", rec.sweep_term_ns, line.clock[0]),
            ("mark_ns", rec.mark_ns, line.clock[1]),
            ("mark_term_ns", rec.mark_term_ns, line.clock[2]),
        ];
        for (name, measured, range) in phases {
            if !clock_ok(range, measured) {
                bad.push(format!(
                    "{cycle:>6} | {name:<14} | {measured:>12} | {:>10} | {:>10} | gctrace {range}",
                    range.distance(measured),
                    60_000 + range.hi_ns * 15 / 100
                ));
            }
        }
        // The runtime's own pause, exactly (read from its clocks, so emulation changes
        // nothing), and the cycle's stop records add up to it.
        if let Some(pause) = memstats.pause_of(*cycle) {
            if rec.pause_ns != pause {
                failures.push(format!(
                    "cycle {cycle}: pause_ns {} but MemStats.PauseNs {pause}",
                    rec.pause_ns
                ));
            }
        }
        let stops: Vec<&super::StwRec> = trace
            .stw
            .iter()
            .filter(|s| s.cycle == Some(*cycle))
            .collect();
        let sum: u64 = stops.iter().map(|s| s.duration_ns).sum();
        let has = |r: &str| stops.iter().any(|s| s.reason == r);
        if sum != rec.pause_ns || !has("GC sweep termination") || !has("GC mark termination") {
            failures.push(format!(
                "cycle {cycle}: stw records {:?} sum to {sum}, pause_ns is {}",
                stops
                    .iter()
                    .map(|s| (s.reason.as_str(), s.duration_ns))
                    .collect::<Vec<_>>(),
                rec.pause_ns
            ));
        }
        if !bad.is_empty() {
            bad_cycles += 1;
            for row in bad {
                let _ = writeln!(table, "{row}");
            }
        }
    }
    // Most of the matched cycles (95 % natively) must agree on every measure.
    let pct = tolerance.agreement_pct;
    if matched > 0 && (matched - bad_cycles) * 100 < matched * pct {
        failures.push(format!(
            "{bad_cycles} of {matched} cycles disagree with the runtime (more than {} %):\n \
             cycle | field          |  tracer ns  |   off ns   | allowed ns | runtime\n{table}",
            100 - pct
        ));
    } else if bad_cycles > 0 {
        println!("tolerated disagreements ({bad_cycles} of {matched} cycles):\n{table}");
    }

    // The summary closes the output.
    match &trace.summary {
        Some(s) => {
            if s.cycles < matched as u64 {
                failures.push(format!(
                    "summary.cycles is {} but {matched} cycles were matched",
                    s.cycles
                ));
            }
            if s.lost_events != 0 {
                failures.push(format!("summary.lost_events is {}", s.lost_events));
            }
            if trace.last_type.as_deref() != Some("summary") {
                failures.push(format!(
                    "last record is {:?}, not the summary",
                    trace.last_type
                ));
            }
        }
        None => failures.push("no summary record".into()),
    }

    if !failures.is_empty() {
        return Err(format!(
            "Go {go_version}: {} problem(s); gctrace printed {} cycles (NumGC {}), trace has {} \
             gc and {} stw records:\n- {}\n{}",
            failures.len(),
            gctrace.len(),
            memstats.num_gc,
            trace.gc.len(),
            trace.stw.len(),
            failures.join("\n- "),
            shared.diag()
        ));
    }
    Ok(format!(
        "Go {go_version}: {matched} cycles matched ({bad_cycles} tolerated), {} stw records",
        trace.stw.len()
    ))
}
