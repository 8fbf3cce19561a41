//! End-to-end: the real tracer against the gcload workload, built with every Go
//! toolchain, compared with what the runtime itself reports (GODEBUG=gctrace=1 lines
//! and MemStats). Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use common::{ChildGuard, GcBuild, GcTraceLine, MsRange, Toolchain, TracedRun, RUN_TIMEOUT};

/// One test per Go release series and per question, so a failure names both. The exact
/// patch versions and paths come from GCTRACE_GO_TOOLCHAINS (xtask's toolchain list);
/// `every_configured_toolchain_has_a_test` keeps this list in step with it. The timing
/// and the heap tests judge the same traced run (one per series, see `shared_run`).
macro_rules! per_toolchain {
    ($($name:ident => $series:literal),* $(,)?) => {
        const TESTED_SERIES: &[&str] = &[$($series),*];

        mod gc_cycles_match_runtime_all_versions {
            $(
                #[test]
                fn $name() {
                    super::gc_cycles_match_runtime($series);
                }
            )*
        }

        mod heap_and_goal_match_gctrace {
            $(
                #[test]
                fn $name() {
                    super::heap_and_goal_match_gctrace($series);
                }
            )*
        }

        mod gctrace_format_matches_runtime {
            $(
                #[test]
                fn $name() {
                    super::gctrace_format_matches_runtime($series);
                }
            )*
        }
    };
}

per_toolchain! {
    go1_19 => "1.19",
    go1_21 => "1.21",
    go1_22 => "1.22",
    go1_23 => "1.23",
    go1_24 => "1.24",
    go1_25 => "1.25",
    go1_26 => "1.26",
    go1_27 => "1.27",
}

#[test]
fn harness_parsers() {
    common::self_test_parsers();
}

#[test]
fn every_configured_toolchain_has_a_test() {
    if !common::integration_enabled() {
        return;
    }
    for t in common::toolchains() {
        assert!(
            TESTED_SERIES.contains(&t.series().as_str()),
            "Go {} is configured but has no gc_cycles_match_runtime_all_versions test; \
             add it to per_toolchain! in {}",
            t.version,
            file!()
        );
    }
}

/// The `--format json` run of a series, made once and judged by several tests (CI has
/// two cores: one run per version keeps the suite short).
fn shared_run(series: &str) -> Arc<TracedRun> {
    type Cell = Arc<OnceLock<Arc<TracedRun>>>;
    static RUNS: Mutex<BTreeMap<String, Cell>> = Mutex::new(BTreeMap::new());
    let cell = RUNS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(series.to_owned())
        .or_default()
        .clone();
    cell.get_or_init(|| {
        Arc::new(common::traced_run(
            &common::toolchain(series),
            GcBuild::Default,
            "json",
            &[],
        ))
    })
    .clone()
}

fn gc_cycles_match_runtime(series: &str) {
    if !common::integration_enabled() {
        return;
    }
    let toolchain = common::toolchain(series);
    let shared = shared_run(series);
    match common::cycles::check_cycles_against_runtime(
        &shared,
        toolchain.minor(),
        std::env::consts::ARCH,
        common::cycles::NATIVE,
    ) {
        Ok(account) => println!("{account}"),
        Err(problems) => panic!("{problems}"),
    }
}

/// The runtime state the tracer reads (heap triple, goal, GOMAXPROCS, GOGC, GOMEMLIMIT,
/// allocation) against the runtime's own gctrace lines and MemStats, on the shared run.
fn heap_and_goal_match_gctrace(series: &str) {
    if !common::integration_enabled() {
        return;
    }
    let shared = shared_run(series);
    let memstats = shared.assert_completed();
    let gctrace = common::parse_gctrace(&shared.stderr);
    let trace = common::parse_trace(&shared.trace_text);
    let mut failures = trace.errors.clone();
    failures.extend(common::check_heap_against_gctrace(&trace, &gctrace));
    failures.extend(common::check_knobs(&trace, common::DEFAULT_KNOBS));
    failures.extend(common::check_alloc(&trace, memstats));
    common::assert_no_failures(
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
fn gctrace_format_matches_runtime(series: &str) {
    if !common::integration_enabled() {
        return;
    }
    let run = common::traced_run(&common::toolchain(series), GcBuild::Default, "gctrace", &[]);
    run.assert_completed();
    let runtime = common::parse_gctrace(&run.stderr);
    let tracer = common::parse_gctrace(&run.trace_text);
    let mut failures = Vec::new();
    let unparsed: Vec<&str> = run
        .trace_text
        .lines()
        .filter(|l| !l.starts_with("# ") && common::parse_gctrace_line(l).is_none())
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
    if total > 0 && (total - bad) * 100 < total * common::AGREEMENT_PCT {
        failures.push(format!(
            "{bad} of {total} cycles' lines differ from the runtime's beyond the tolerances \
             (more than {}%):\n{}",
            100 - common::AGREEMENT_PCT,
            common::table(header, &rows)
        ));
    } else if bad > 0 {
        println!(
            "tolerated line differences ({bad} of {total} cycles):\n{}",
            common::table(header, &rows)
        );
    }
    common::assert_no_failures(
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

mod attach_by_pid_reports_cycles_in_window {
    #[test]
    fn newest() {
        if !crate::common::integration_enabled() {
            return;
        }
        super::attach_by_pid(&crate::common::newest_toolchain());
    }

    #[test]
    fn go1_19() {
        if !crate::common::integration_enabled() {
            return;
        }
        super::attach_by_pid(&crate::common::toolchain("1.19"));
    }
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
    child.signal(libc::SIGTERM);
    let status = child.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "untraced gcload -forever did not exit 0 on SIGTERM: {status:?}\n{}",
        common::diagnostics(&child.stdout_text(), &child.stderr_text())
    );
    child.stdout_text()
}

fn attach_by_pid(toolchain: &Toolchain) {
    let gcload = common::build_gcload(toolchain);
    let tmp = tempfile::tempdir().expect("tempdir");
    let expected_stdout = untraced_forever_stdout(&gcload, tmp.path());
    let out = tmp.path().join("trace.ndjson");

    let _exclusive = common::exclusive();
    let mut workload = ChildGuard::spawn(
        Command::new(&gcload)
            .env("GODEBUG", "gctrace=1")
            .arg("-forever"),
        tmp.path(),
        "workload",
    );
    thread::sleep(Duration::from_secs(1));
    assert!(
        workload.try_wait().is_none(),
        "gcload -forever exited before the attach: {:?}",
        workload.try_wait()
    );
    let mut cmd = Command::new(common::tracer_bin());
    cmd.arg("--pid")
        .arg(workload.pid().to_string())
        .args(["--format", "json", "--output"])
        .arg(&out)
        .args(["--duration", "3"]);
    let run = common::run(&mut cmd, tmp.path(), "tracer", RUN_TIMEOUT);
    let trace_text = std::fs::read_to_string(&out).unwrap_or_default();
    let tracer_diag = format!(
        "Go {}, command {cmd:?}\n--- tracer ---\n{}--- trace (first 20 lines) ---\n{}",
        toolchain.version,
        common::diagnostics(&run.stdout, &run.stderr),
        trace_text.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(
        run.status.success(),
        "gctrace-bpf --pid failed: {}\n{tracer_diag}",
        run.status
    );

    // Detaching must leave the workload running, and unharmed.
    let alive_after_detach = workload.try_wait();
    assert!(
        alive_after_detach.is_none(),
        "the workload died while or after being traced: {alive_after_detach:?}\n{tracer_diag}\n\
         --- workload ---\n{}",
        common::diagnostics(&workload.stdout_text(), &workload.stderr_text())
    );
    // Let it run a few more cycles untraced, then stop it.
    thread::sleep(Duration::from_millis(300));
    workload.signal(libc::SIGTERM);
    let status = workload.wait_timeout(Duration::from_secs(30));
    let workload_diag = common::diagnostics(&workload.stdout_text(), &workload.stderr_text());
    assert!(
        status.is_some_and(|s| s.success()),
        "the workload did not exit 0 on SIGTERM after the tracer detached: {status:?}\n\
         {workload_diag}"
    );
    assert_eq!(
        workload.stdout_text(),
        expected_stdout,
        "the traced workload's stdout differs from an untraced run's"
    );

    let trace = common::parse_trace(&trace_text);
    let gctrace = common::parse_gctrace(&workload.stderr_text());
    let mut failures: Vec<String> = Vec::new();
    if !trace.errors.is_empty() {
        failures.push(format!(
            "malformed trace lines:\n  {}",
            trace.errors.join("\n  ")
        ));
    }
    match &trace.process {
        Some(p) if trace.first_type.as_deref() == Some("process") => {
            if p.pid != Some(u64::from(workload.pid())) {
                failures.push(format!(
                    "process.pid is {:?}, the workload is {}",
                    p.pid,
                    workload.pid()
                ));
            }
        }
        _ => failures.push(format!(
            "first record is {:?}, not \"process\"",
            trace.first_type
        )),
    }
    let cycles: Vec<u32> = trace.gc.iter().map(|r| r.cycle).collect();
    let unique: BTreeSet<u32> = cycles.iter().copied().collect();
    if unique.len() != cycles.len() {
        failures.push(format!("cycles reported more than once: {cycles:?}"));
    }
    if unique.len() < 2 {
        failures.push(format!(
            "only {} cycles reported in a 3 s window (gctrace printed {})",
            unique.len(),
            gctrace.len()
        ));
    }
    if let (Some(&first), Some(&last)) = (unique.first(), unique.last()) {
        // Every cycle the runtime completed inside the window is there: no gaps between
        // the first and the last one reported.
        let gaps: Vec<u32> = (first..=last).filter(|c| !unique.contains(c)).collect();
        if !gaps.is_empty() {
            failures.push(format!(
                "cycles {first}..={last} were reported with gaps: {gaps:?} missing"
            ));
        }
        // And they are real cycles, numbered as the runtime numbers them.
        let unknown: Vec<u32> = unique
            .iter()
            .copied()
            .filter(|c| !gctrace.contains_key(c))
            .collect();
        if !unknown.is_empty() {
            failures.push(format!(
                "reported cycles gctrace never printed: {unknown:?} (gctrace printed {:?}..={:?})",
                gctrace.keys().next(),
                gctrace.keys().next_back()
            ));
        }
        // The window's timestamps are ordered like its cycle numbers.
        let mut by_cycle = trace.gc.clone();
        by_cycle.sort_by_key(|r| r.cycle);
        if by_cycle
            .windows(2)
            .any(|w| w[1].start_ns < w[0].end_ns || w[0].end_ns < w[0].start_ns)
        {
            failures.push("gc records' timestamps do not follow their cycle order".into());
        }
    }
    match &trace.summary {
        Some(s) if s.lost_events != 0 => {
            failures.push(format!("summary.lost_events is {}", s.lost_events))
        }
        Some(_) => {}
        None => failures.push("no summary record".into()),
    }
    assert!(
        failures.is_empty(),
        "attach to Go {}: {} problem(s):\n- {}\n{tracer_diag}\n--- workload ---\n{workload_diag}",
        toolchain.version,
        failures.len(),
        failures.join("\n- ")
    );
}

#[test]
fn launch_mode_propagates_exit_status() {
    if !common::integration_enabled() {
        return;
    }
    let toolchain = common::newest_toolchain();
    let gcload = common::build_gcload(&toolchain);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(common::tracer_bin());
    cmd.arg("--")
        .arg(&gcload)
        .args(["-duration", "200ms", "-exit-code", "3"]);
    let run = common::run(&mut cmd, tmp.path(), "traced", RUN_TIMEOUT);
    assert_eq!(
        run.status.code(),
        Some(3),
        "gctrace-bpf should exit with the workload's status 3, got {}\n{}",
        run.status,
        common::diagnostics(&run.stdout, &run.stderr)
    );
    assert!(
        run.stdout
            .contains("gcload done: goroutines=4 forced=0 readmemstats=0"),
        "the workload's stdout did not come through\n{}",
        common::diagnostics(&run.stdout, &run.stderr)
    );
}
