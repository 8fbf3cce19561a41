//! End-to-end: the real tracer against the gcload workload, built with every Go
//! toolchain, compared with what the runtime itself reports (GODEBUG=gctrace=1 lines
//! and MemStats). Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).

use crate::harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use harness::{live_checks, ChildGuard, GcBuild, GcTraceLine, MsRange, Toolchain, TracedRun};

/// One test per Go release series and per question, so a failure names both. The exact
/// patch versions and paths come from GCTRACE_GO_TOOLCHAINS (xtask's toolchain list);
/// `every_configured_toolchain_has_a_test` keeps the list of `every_go_series!` in step
/// with it. The timing and the heap tests judge the same traced run (one per series, see
/// `shared_run`).
mod gc_cycles_match_runtime_all_versions {
    use super::*;
    every_go_series!(gc_cycles_match_runtime);
}

mod heap_and_goal_match_gctrace {
    use super::*;
    every_go_series!(heap_and_goal_match_gctrace);
}

mod gctrace_format_matches_runtime {
    use super::*;
    every_go_series!(gctrace_format_matches_runtime);
}

#[test]
fn harness_parsers() {
    harness::self_test_parsers();
}

/// The per-version tests cover the test matrix, workloads/go-versions.txt (test names
/// are written out, so the list is in `every_go_series!` too): no live run needed.
#[test]
fn every_go_series_is_the_matrix() {
    let tested: &[&str] = every_go_series!(series);
    let matrix: Vec<String> = harness::matrix().iter().map(|g| g.series()).collect();
    assert_eq!(
        tested,
        matrix.as_slice(),
        "every_go_series! in tests/integration/harness/live_checks.rs and \
         workloads/go-versions.txt list different Go series"
    );
}

#[test]
fn every_configured_toolchain_has_a_test() {
    if !harness::integration_enabled() {
        return;
    }
    let tested: &[&str] = every_go_series!(series);
    for t in harness::toolchains() {
        assert!(
            tested.contains(&t.series().as_str()),
            "Go {} is configured but has no gc_cycles_match_runtime_all_versions test; \
             add it to every_go_series! in tests/integration/harness/live_checks.rs",
            t.version
        );
    }
}

/// The `--format json` run of a series, made once and judged by several tests (CI has
/// two cores: one run per version keeps the suite short).
fn shared_run(toolchain: &Toolchain) -> Arc<TracedRun> {
    type Cell = Arc<OnceLock<Arc<TracedRun>>>;
    static RUNS: Mutex<BTreeMap<String, Cell>> = Mutex::new(BTreeMap::new());
    let cell = RUNS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(toolchain.series())
        .or_default()
        .clone();
    // Whole before waiting: the test making the run needs the host whole, which a
    // waiter's share would otherwise keep from it.
    let _whole = harness::exclusive();
    cell.get_or_init(|| {
        Arc::new(harness::traced_run(
            toolchain,
            GcBuild::Default,
            "json",
            &[],
        ))
    })
    .clone()
}

fn gc_cycles_match_runtime(toolchain: &Toolchain) {
    let shared = shared_run(toolchain);
    match harness::cycles::check_cycles_against_runtime(
        &shared,
        toolchain.minor(),
        std::env::consts::ARCH,
        harness::cycles::NATIVE,
    ) {
        Ok(account) => println!("{account}"),
        Err(problems) => panic!("{problems}"),
    }
}

/// The runtime state the tracer reads (heap triple, goal, GOMAXPROCS, GOGC, GOMEMLIMIT,
/// allocation) against the runtime's own gctrace lines and MemStats, on the shared run.
fn heap_and_goal_match_gctrace(toolchain: &Toolchain) {
    let shared = shared_run(toolchain);
    let memstats = shared.assert_completed();
    let (trace, gctrace, mut failures) =
        live_checks::check_launch_state(&shared, harness::DEFAULT_KNOBS);
    failures.extend(harness::check_alloc(&trace, memstats));
    harness::assert_no_failures(
        &format!(
            "Go {} runtime state ({} gctrace lines, {} gc and {} alloc records, \
             MemStats.TotalAlloc {})",
            shared.go_version,
            gctrace.len(),
            trace.gc.len(),
            trace.alloc.len(),
            memstats.total_alloc
        ),
        &failures,
        &shared.diag(),
    );
}

/// Interval distance between what the tracer printed and what the runtime printed.
fn gap(a: MsRange, b: MsRange) -> u64 {
    b.lo_ns
        .saturating_sub(a.hi_ns.saturating_sub(1))
        .max(a.lo_ns.saturating_sub(b.hi_ns.saturating_sub(1)))
}

/// How the runtime prints a duration range's value, for the mismatch table.
fn ms(r: MsRange) -> String {
    format!("{}", r.lo_ns as f64 / 1e6)
}

/// The fields of the tracer's gctrace line that differ from the runtime's beyond the
/// tolerances: `(field, tracer, runtime)`.
fn gctrace_differences(
    tracer: &GcTraceLine,
    runtime: &GcTraceLine,
) -> Vec<(String, String, String)> {
    fn opt<T: std::fmt::Debug>(v: &Option<T>) -> String {
        v.as_ref()
            .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"))
    }
    let mut diffs = Vec::new();
    let mut differ = |field: &str, tracer: String, runtime: String| {
        diffs.push((field.to_owned(), tracer, runtime));
    };
    // @T: milliseconds since start, within 1 ms.
    match (tracer.at_ms, runtime.at_ms) {
        (Some(t), Some(r)) if t.abs_diff(r) <= 1 => {}
        (t, r) => differ("@ ms", opt(&t), opt(&r)),
    }
    if tracer.util_pct.is_none() || tracer.util_pct != runtime.util_pct {
        differ("P%", opt(&tracer.util_pct), opt(&runtime.util_pct));
    }
    for (i, name) in ["clock sweep term", "clock mark", "clock mark term"]
        .iter()
        .enumerate()
    {
        let (t, r) = (tracer.clock[i], runtime.clock[i]);
        if gap(t, r) > 60_000 + r.hi_ns * 15 / 100 {
            differ(name, ms(t), ms(r));
        }
    }
    let cpu_names = [
        "cpu sweep term",
        "cpu assist",
        "cpu background",
        "cpu idle",
        "cpu mark term",
    ];
    match (tracer.cpu, runtime.cpu) {
        (Some(t), Some(r)) => {
            for i in 0..5 {
                // ±1 in the last printed digit (the larger of the two digit sizes).
                let digit = (t[i].hi_ns - t[i].lo_ns).max(r[i].hi_ns - r[i].lo_ns);
                if t[i].lo_ns.abs_diff(r[i].lo_ns) > digit {
                    differ(cpu_names[i], ms(t[i]), ms(r[i]));
                }
            }
        }
        (t, r) => differ(
            "cpu",
            opt(&t.map(|c| c.map(ms))),
            opt(&r.map(|c| c.map(ms))),
        ),
    }
    let exact: [(&str, Option<u64>, Option<u64>); 7] = [
        (
            "heap0 MB",
            tracer.heap_mb.map(|h| h[0]),
            runtime.heap_mb.map(|h| h[0]),
        ),
        (
            "heap1 MB",
            tracer.heap_mb.map(|h| h[1]),
            runtime.heap_mb.map(|h| h[1]),
        ),
        (
            "heap2 MB",
            tracer.heap_mb.map(|h| h[2]),
            runtime.heap_mb.map(|h| h[2]),
        ),
        ("goal MB", tracer.goal_mb, runtime.goal_mb),
        ("stacks MB", tracer.stacks_mb, runtime.stacks_mb),
        ("globals MB", tracer.globals_mb, runtime.globals_mb),
        (
            "P",
            tracer.procs.map(u64::from),
            runtime.procs.map(u64::from),
        ),
    ];
    for (name, t, r) in exact {
        if t.is_none() || t != r {
            differ(name, opt(&t), opt(&r));
        }
    }
    if tracer.forced != runtime.forced {
        differ(
            "forced",
            tracer.forced.to_string(),
            runtime.forced.to_string(),
        );
    }
    diffs
}

/// `--format gctrace`: the tracer's line for each cycle against the line the runtime
/// itself printed (GODEBUG=gctrace=1): equal, or equal field by field within the
/// tolerances (clock as in the JSON test, @ within 1 ms, cpu ±1 in the last digit).
fn gctrace_format_matches_runtime(toolchain: &Toolchain) {
    let run = harness::traced_run(toolchain, GcBuild::Default, "gctrace", &[]);
    run.assert_completed();
    let runtime = harness::parse_gctrace(&run.stderr);
    let tracer = harness::parse_gctrace(&run.trace_text);
    let mut failures = Vec::new();
    let unparsed: Vec<&str> = run
        .trace_text
        .lines()
        .filter(|l| !l.starts_with("# ") && harness::parse_gctrace_line(l).is_none())
        .collect();
    if !unparsed.is_empty() {
        failures.push(format!(
            "{} lines of the tracer's output are neither gctrace lines nor `# ` comments:\n  {}",
            unparsed.len(),
            unparsed.join("\n  ")
        ));
    }
    if !run
        .trace_text
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("# gctrace-bpf: "))
    {
        failures.push("the output does not end with the `# gctrace-bpf: ` summary".into());
    }
    if runtime.is_empty() {
        failures.push("the runtime printed no gctrace lines".into());
    }
    let mut rows = Vec::new();
    let (mut identical, mut bad) = (0usize, 0usize);
    for (cycle, r) in &runtime {
        let Some(t) = tracer.get(cycle) else {
            bad += 1;
            rows.push(format!(
                "{cycle:>6} | (no line)        |          | {}",
                r.text
            ));
            continue;
        };
        if t.text == r.text {
            identical += 1;
            continue;
        }
        let mut diffs = gctrace_differences(t, r);
        // The runtime's own print race (see gc_cycles_match_runtime): gctrace prints
        // " (forced)" for a heap cycle when the runtime.GC() waiting for it has already
        // set work.userForced for the next one. The tracer takes the flag from
        // numforcedgc, advanced inside the stop, so it says heap; excused only when its
        // next cycle is the forced one.
        let next_forced = tracer.get(&(cycle + 1)).is_some_and(|n| n.forced);
        diffs.retain(|(field, _, _)| !(field == "forced" && r.forced && !t.forced && next_forced));
        if !diffs.is_empty() {
            bad += 1;
            for (field, tv, rv) in diffs {
                rows.push(format!("{cycle:>6} | {field:<16} | {tv:>8} | {rv}"));
            }
        }
    }
    let total = runtime.len();
    let header = " cycle | field            |   tracer | runtime";
    if total > 0 && (total - bad) * 100 < total * harness::AGREEMENT_PCT {
        failures.push(format!(
            "{bad} of {total} cycles' lines differ from the runtime's beyond the tolerances \
             (more than {}%):\n{}",
            100 - harness::AGREEMENT_PCT,
            harness::table(header, &rows)
        ));
    } else if bad > 0 {
        println!(
            "tolerated line differences ({bad} of {total} cycles):\n{}",
            harness::table(header, &rows)
        );
    }
    harness::assert_no_failures(
        &format!("Go {} --format gctrace", run.go_version),
        &failures,
        &run.diag(),
    );
    println!(
        "Go {}: {total} gctrace lines, {identical} identical, {} equal within tolerances, \
         {bad} differ",
        run.go_version,
        total - identical - bad
    );
}

newest_and_go1_19! {
    attach_by_pid_reports_cycles_in_window => attach_by_pid,
}

/// Runs gcload -forever untraced for a moment and stops it: its stdout is what a
/// traced run must print too.
fn untraced_forever_stdout(gcload: &Path, dir: &Path) -> String {
    let mut child = ChildGuard::spawn(
        Command::new(gcload).arg("-forever"),
        dir,
        "untraced-forever",
    );
    thread::sleep(Duration::from_millis(500));
    live_checks::stop_forever(&mut child, "untraced gcload -forever");
    child.stdout_text()
}

/// `--pid` on a running gcload: the workload survives the attach and the detach, prints
/// what an untraced run prints, and the window's cycles are judged by
/// `live_checks::check_attached`.
fn attach_by_pid(toolchain: &Toolchain) {
    let gcload = harness::build_gcload(toolchain);
    let tmp = tempfile::tempdir().expect("tempdir");
    let expected_stdout = untraced_forever_stdout(&gcload, tmp.path());

    let _exclusive = harness::exclusive();
    let mut workload = live_checks::spawn_forever(&gcload, tmp.path(), "workload");
    thread::sleep(Duration::from_secs(1));
    assert!(
        workload.try_wait().is_none(),
        "gcload -forever exited before the attach: {:?}",
        workload.try_wait()
    );
    let traced = live_checks::trace_pid(
        workload.pid(),
        tmp.path(),
        &[],
        &format!("Go {}", toolchain.version),
    );
    let tracer_diag = &traced.diag;
    traced.assert_succeeded();

    // Detaching must leave the workload running, and unharmed.
    let alive_after_detach = workload.try_wait();
    assert!(
        alive_after_detach.is_none(),
        "the workload died while or after being traced: {alive_after_detach:?}\n{tracer_diag}\n\
         --- workload ---\n{}",
        harness::diagnostics(&workload.stdout_text(), &workload.stderr_text())
    );
    // Let it run a few more cycles untraced, then stop it.
    thread::sleep(Duration::from_millis(300));
    live_checks::stop_forever(&mut workload, "the workload, after the tracer detached,");
    let workload_diag = harness::diagnostics(&workload.stdout_text(), &workload.stderr_text());
    assert_eq!(
        workload.stdout_text(),
        expected_stdout,
        "the traced workload's stdout differs from an untraced run's"
    );

    let trace = harness::parse_trace(&traced.trace_text);
    let gctrace = harness::parse_gctrace(&workload.stderr_text());
    let failures = live_checks::check_attached(&trace, &gctrace, workload.pid(), "3 s", true);
    assert!(
        failures.is_empty(),
        "attach to Go {}: {} problem(s):\n- {}\n{tracer_diag}\n--- workload ---\n{workload_diag}",
        toolchain.version,
        failures.len(),
        failures.join("\n- ")
    );
}

fn exit_status_propagates(toolchain: &Toolchain) {
    let gcload = harness::build_gcload(toolchain);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = harness::TracerCmd::new();
    cmd.arg("--")
        .arg(&gcload)
        .args(["-duration", "200ms", "-exit-code", "3"]);
    let run = cmd.run(tmp.path(), "traced");
    assert_eq!(
        run.status.code(),
        Some(3),
        "gctrace-bpf should exit with the workload's status 3, got {}\n{}",
        run.status,
        harness::diagnostics(&run.stdout, &run.stderr)
    );
    assert!(
        run.stdout
            .contains("gcload done: goroutines=4 forced=0 readmemstats=0"),
        "the workload's stdout did not come through\n{}",
        harness::diagnostics(&run.stdout, &run.stderr)
    );
}

per_toolchain!(exit_status_propagates {
    launch_mode_propagates_exit_status => newest,
});
