//! Checks of a trace against the runtime's own figures (heap, goal, GOMAXPROCS, GOGC,
//! GOMEMLIMIT, allocation), each returning the problems it found.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::gctrace::GcTraceLine;
use super::memstats::MemStats;
use super::trace::{GcRec, Trace};

/// Share of cycles that must agree with the runtime, in percent.
pub const AGREEMENT_PCT: usize = 95;

/// Fails the test with every problem found, and `diag` (commands, output) after them.
pub fn assert_no_failures(what: &str, failures: &[String], diag: &str) {
    assert!(
        failures.is_empty(),
        "{what}: {} problem(s):\n- {}\n{diag}",
        failures.len(),
        failures.join("\n- ")
    );
}

/// `rows` of a comparison table, with a header, for a failure message (the first 40).
pub fn table(header: &str, rows: &[String]) -> String {
    const SHOWN: usize = 40;
    let mut out = format!("  {header}\n");
    for row in rows.iter().take(SHOWN) {
        let _ = writeln!(out, "  {row}");
    }
    if rows.len() > SHOWN {
        let _ = writeln!(out, "  [... {} more rows]", rows.len() - SHOWN);
    }
    out
}

/// The tracer's heap triple, goal and GOMAXPROCS against the runtime's own gctrace line,
/// cycle by cycle, for every cycle in `gctrace` (a cycle without a gc record disagrees).
/// gctrace prints sizes as `bytes >> 20`. Fails when more than 5 % of the cycles
/// disagree; prints the tolerated disagreements otherwise.
pub fn check_heap_against_gctrace(
    trace: &Trace,
    gctrace: &BTreeMap<u32, GcTraceLine>,
) -> Vec<String> {
    if gctrace.is_empty() {
        return vec!["no gctrace lines to compare the heap figures with".into()];
    }
    let by_cycle: BTreeMap<u32, &GcRec> = trace.gc.iter().map(|r| (r.cycle, r)).collect();
    let show = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
    let mut rows = Vec::new();
    let mut bad = 0usize;
    for (cycle, line) in gctrace {
        let Some(rec) = by_cycle.get(cycle) else {
            bad += 1;
            rows.push(format!(
                "{cycle:>6} | (no gc record)  |        | {}",
                line.text
            ));
            continue;
        };
        let (ours, theirs) = (rec.heap.mb(), line.heap_and_goal_mb());
        let fields = [
            ("heap_start MB", ours[0], theirs[0]),
            ("heap_end MB", ours[1], theirs[1]),
            ("heap_live MB", ours[2], theirs[2]),
            ("heap_goal MB", ours[3], theirs[3]),
            ("gomaxprocs", rec.gomaxprocs, line.procs.map(u64::from)),
        ];
        let before = rows.len();
        for (name, tracer, runtime) in fields {
            if runtime.is_none() || tracer != runtime {
                rows.push(format!(
                    "{cycle:>6} | {name:<15} | {:>6} | {:>6}",
                    show(tracer),
                    show(runtime)
                ));
            }
        }
        if rows.len() > before {
            bad += 1;
        }
    }
    let total = gctrace.len();
    let header = " cycle | field           | tracer | gctrace";
    if (total - bad) * 100 < total * AGREEMENT_PCT {
        vec![format!(
            "heap/goal/GOMAXPROCS disagree with gctrace in {bad} of {total} cycles (more than \
             {}%):\n{}",
            100 - AGREEMENT_PCT,
            table(header, &rows)
        )]
    } else {
        if bad > 0 {
            println!(
                "tolerated heap disagreements ({bad} of {total} cycles):\n{}",
                table(header, &rows)
            );
        }
        Vec::new()
    }
}

/// GOGC and GOMEMLIMIT the runtime runs with (100 and "no limit", math.MaxInt64, by default).
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    pub gogc: i64,
    pub memory_limit_bytes: i64,
}

pub const DEFAULT_KNOBS: Knobs = Knobs {
    gogc: 100,
    memory_limit_bytes: i64::MAX,
};

/// Every gc record carries the GOGC and GOMEMLIMIT the program was started with.
pub fn check_knobs(trace: &Trace, expected: Knobs) -> Vec<String> {
    let mut failures = Vec::new();
    let wrong: Vec<String> = trace
        .gc
        .iter()
        .filter(|r| {
            r.gogc != Some(expected.gogc)
                || r.memory_limit_bytes != Some(expected.memory_limit_bytes)
        })
        .map(|r| {
            format!(
                "cycle {}: gogc {:?}, memory_limit_bytes {:?}",
                r.cycle, r.gogc, r.memory_limit_bytes
            )
        })
        .collect();
    if trace.gc.is_empty() {
        failures.push("no gc records to check gogc/memory_limit_bytes on".into());
    } else if !wrong.is_empty() {
        failures.push(format!(
            "{} of {} gc records lack gogc {} / memory_limit_bytes {} (the program's \
             GOGC/GOMEMLIMIT); first ones:\n  {}",
            wrong.len(),
            trace.gc.len(),
            expected.gogc,
            expected.memory_limit_bytes,
            wrong
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    failures
}

/// Allocation figures of a launch-mode run against MemStats at the program's exit:
/// `summary.alloc_bytes` within 5 % of TotalAlloc; `alloc` records at least once a
/// second of the program's own run time (MemStats' ElapsedNs) and never more than 1.5 s
/// apart, with strictly increasing timestamps and non-decreasing totals that never
/// exceed TotalAlloc by more than 5 %.
pub fn check_alloc(trace: &Trace, memstats: &MemStats) -> Vec<String> {
    let mut failures = Vec::new();
    let total = memstats.total_alloc;
    match trace.summary.as_ref().and_then(|s| s.alloc_bytes) {
        Some(bytes) if bytes.abs_diff(total) <= total / 20 => {}
        other => failures.push(format!(
            "summary.alloc_bytes is {other:?}, MemStats.TotalAlloc at exit is {total} \
             (allowed: within 5 %)"
        )),
    }
    let secs = memstats.elapsed_ns / 1_000_000_000;
    if (trace.alloc.len() as u64) < secs {
        failures.push(format!(
            "{} alloc records for a program that ran {:.2} s (at least one a second expected)",
            trace.alloc.len(),
            memstats.elapsed_ns as f64 / 1e9
        ));
    }
    for w in trace.alloc.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.ts_ns <= a.ts_ns || b.total_bytes < a.total_bytes {
            failures.push(format!(
                "alloc records go backwards: {a:?} then {b:?} (ts_ns must increase, \
                 total_bytes must not decrease)"
            ));
        } else if b.ts_ns - a.ts_ns > 1_500_000_000 {
            failures.push(format!(
                "alloc records {} ms apart: {a:?} then {b:?} (one a second expected)",
                (b.ts_ns - a.ts_ns) / 1_000_000
            ));
        }
    }
    if let Some(last) = trace.alloc.last() {
        if last.total_bytes > total + total / 20 {
            failures.push(format!(
                "the last alloc record says {} bytes, more than MemStats.TotalAlloc {total} \
                 at exit",
                last.total_bytes
            ));
        }
    }
    failures
}
