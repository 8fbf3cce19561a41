//! What-if predictions against reality: workloads/steady (a fixed live heap, garbage at
//! a clock-paced rate) is recorded under the tracer at GOGC=100,
//! `report --what-if` predicts GOGC=50, 200 and 400 from that recording alone, and the
//! workload then runs untraced at each setting with its own `GODEBUG=gctrace=1` lines as
//! the oracle. Targets: cycles/s and peak heap within 15 %, GC CPU within
//! 25 %; the test allows [`TOLERANCE`] for a shared 2-core machine and fails on a miss.
//! The GC CPU asserted is all of it, idle mark workers included (`gc_cpu_total_percent`,
//! gctrace's five cpu figures): the work a cycle needs. The part outside idle workers
//! (`gc_cpu_percent`, gctrace's P%) is printed, not asserted: how a cycle's marking is
//! split between idle and other workers follows how idle the machine is
//! (docs/performance.md, "What-if predictions").
//! A second test predicts a memory limit from a recording made without one (the
//! non-heap memory read from the runtime) and runs the workload under that GOMEMLIMIT.

use crate::harness;
use crate::harness::tui_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{Toolchain, RUN_TIMEOUT};
use serde_json::Value;
use tracer::model::records::Record;
use tracer::model::whatif::pacer::gogc_goal;

const RUN_FOR: &str = "12s";
/// Cycles of the first seconds (the live heap being built) are not steady.
const WARM_UP_MS: u64 = 2_000;
/// Allowed relative error: cycles/s, all GC CPU, GC CPU outside idle workers (`None`:
/// not asserted), peak heap.
const TOLERANCE: [Option<f64>; 4] = [Some(0.20), Some(0.25), None, Some(0.20)];
const FIGURES: [&str; 4] = ["cycles/s", "GC CPU", "GC CPU excl. idle", "peak heap"];
const SETTINGS: [i32; 3] = [50, 200, 400];
/// The workloads: name and flags of workloads/steady (32 MiB live is its default). A
/// second one (`-live 64`) was tried: it took the test past 3 minutes, and under a
/// loaded machine GOGC=50 needed more CPU than there was (docs/performance.md).
const WORKLOADS: [(&str, &[&str]); 1] = [("live 32 MiB", &[])];
/// Pinned, so the dedicated/fractional worker count is the same in every run (and as
/// on CI's 2 cores).
const GOMAXPROCS: &str = "2";

/// What every run of the checks starts with: workloads/steady built with `toolchain`, a
/// scratch directory, and the machine to this test alone (the guard).
fn steady_setup(toolchain: &Toolchain) -> (PathBuf, tempfile::TempDir, harness::Exclusive) {
    let bin = harness::build_workload(toolchain, "steady");
    let tmp = tempfile::tempdir().expect("tempdir");
    (bin, tmp, harness::exclusive())
}

/// The steady state by the runtime's own gctrace lines: cycles/s, all GC CPU % of
/// GOMAXPROCS (the five cpu figures), GC CPU % without idle workers (gctrace's P%
/// counts it so), mean heap at mark termination; and the cycles.
fn oracle(stderr: &str) -> ([f64; 4], usize) {
    let lines: Vec<_> = harness::parse_gctrace(stderr)
        .into_values()
        .filter(|l| !l.forced && l.at_ms.is_some_and(|t| t >= WARM_UP_MS))
        .collect();
    assert!(lines.len() >= 5, "too few steady cycles: {stderr}");
    let at = |l: &harness::GcTraceLine| l.at_ms.unwrap_or(0) as f64 / 1e3;
    let span = at(&lines[lines.len() - 1]) - at(&lines[0]);
    let procs = f64::from(lines[0].procs.expect("gctrace P"));
    let mid = |r: harness::MsRange| (r.lo_ns + r.hi_ns) as f64 / 2.0;
    let (mut busy_ns, mut idle_ns) = (0.0, 0.0);
    for l in &lines[1..] {
        let c = l.cpu.expect("gctrace cpu");
        busy_ns += mid(c[0]) + mid(c[1]) + mid(c[2]) + mid(c[4]);
        idle_ns += mid(c[3]);
    }
    let share = |ns: f64| ns / (span * 1e9 * procs) * 100.0;
    // MB are truncated MiB: half a MiB on average.
    let peak: f64 = lines
        .iter()
        .map(|l| (l.heap_mb.expect("gctrace heap")[1] as f64 + 0.5) * (1 << 20) as f64)
        .sum::<f64>()
        / lines.len() as f64;
    (
        [
            (lines.len() - 1) as f64 / span,
            share(busy_ns + idle_ns),
            share(busy_ns),
            peak,
        ],
        lines.len(),
    )
}

/// An untraced run at `GOGC=gogc` (and `GOMEMLIMIT=limit` bytes): its stderr.
fn untraced(bin: &Path, flags: &[&str], gogc: &str, limit: Option<u64>, dir: &Path) -> String {
    let mut cmd = Command::new(bin);
    cmd.env("GOGC", gogc)
        .env("GOMAXPROCS", GOMAXPROCS)
        .env("GODEBUG", "gctrace=1")
        .env_remove("GOMEMLIMIT")
        .args(flags)
        .args(["-duration", RUN_FOR]);
    if let Some(l) = limit {
        cmd.env("GOMEMLIMIT", l.to_string());
    }
    let name = format!("steady-{gogc}-{}", limit.unwrap_or(0));
    let run = harness::run(&mut cmd, dir, &name, RUN_TIMEOUT);
    assert!(
        run.status.success(),
        "GOGC={gogc} GOMEMLIMIT={limit:?}: {}",
        run.stderr
    );
    run.stderr
}

/// Records workloads/steady at `GOGC=100` under the tracer, without a memory limit:
/// the recording and the traced run's stderr.
fn record_steady(bin: &Path, flags: &[&str], dir: &Path) -> (PathBuf, String) {
    let rec = dir.join("steady.gct");
    let mut cmd = harness::TracerCmd::new();
    cmd.env("GOGC", "100")
        .env("GOMAXPROCS", GOMAXPROCS)
        .env("GODEBUG", "gctrace=1")
        .env_remove("GOMEMLIMIT")
        .args(["--format", "json", "--output"])
        .arg(dir.join("trace.ndjson"))
        .arg("--record")
        .arg(&rec)
        .arg("--")
        .arg(bin)
        .args(flags)
        .args(["-duration", RUN_FOR]);
    let run = cmd.run(dir, "traced");
    let diag = format!(
        "{cmd:?}\n{}",
        harness::diagnostics(&run.stdout, &run.stderr)
    );
    assert!(run.status.success(), "traced run failed: {diag}");
    (rec, run.stderr)
}

/// `report --format json` of `rec` with these `--what-if` settings.
fn report(rec: &Path, settings: &[String]) -> Value {
    let mut report = harness::TracerCmd::new();
    report.arg("report").arg(rec).args(["--format", "json"]);
    for s in settings {
        report.args(["--what-if", s]);
    }
    let out = report.output().expect("running report");
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report json")
}

/// The four predicted figures of one `what_if` entry, in [`FIGURES`] order.
fn predicted(p: &Value) -> [Option<f64>; 4] {
    [
        "cycles_per_s",
        "gc_cpu_total_percent",
        "gc_cpu_percent",
        "peak_heap_bytes",
    ]
    .map(|k| p[k].as_f64())
}

/// One predicted setting against its untraced run: a table row, and a failure for
/// each figure outside [`TOLERANCE`] or not predicted.
fn compare(
    what: &str,
    predicted: [Option<f64>; 4],
    stderr: &str,
    rows: &mut Vec<String>,
    failures: &mut Vec<String>,
) {
    let (m, n) = oracle(stderr);
    let mut errs = Vec::new();
    for (i, name) in FIGURES.iter().enumerate() {
        match predicted[i] {
            Some(v) => {
                let e = v / m[i] - 1.0;
                errs.push(format!("{:+.0} %", e * 100.0));
                if let Some(t) = TOLERANCE[i].filter(|t| e.abs() > *t) {
                    failures.push(format!(
                        "{what}: {name} predicted {v:.3}, measured {:.3} ({:+.0} %, \
                         allowed ±{:.0} %)",
                        m[i],
                        e * 100.0,
                        t * 100.0
                    ));
                }
            }
            None => failures.push(format!("{what}: no {name} predicted")),
        }
    }
    let cells: Vec<String> = (0..4)
        .map(|i| format!("{} / {}", shown(i, Some(m[i])), shown(i, predicted[i])))
        .collect();
    rows.push(format!(
        "{what} | {} | {n} | {}",
        cells.join(" | "),
        errs.join(", ")
    ));
}

/// The recorded run against its own gctrace: the inputs' "now" is the oracle's.
fn recorded_row(what: &str, stderr: &str, inputs: &Value) -> String {
    let (m, n) = oracle(stderr);
    let now = [
        "now_cycles_per_s",
        "now_gc_cpu_total_percent",
        "now_gc_cpu_percent",
        "now_peak_heap_bytes",
    ]
    .map(|k| inputs[k].as_f64());
    let cells: Vec<String> = (0..4)
        .map(|i| format!("{} / {}", shown(i, Some(m[i])), shown(i, now[i])))
        .collect();
    format!("{what} | {} | {n} |", cells.join(" | "))
}

/// "12.3" / "?" for one figure (peak heap in MiB).
fn shown(i: usize, v: Option<f64>) -> String {
    match v {
        Some(v) if i == 3 => format!("{:.1}", v / (1 << 20) as f64),
        Some(v) => format!("{v:.2}"),
        None => "?".into(),
    }
}

/// The runtime's own goal, read from its memory each cycle, is the pacer equation of
/// the cycle before's marked heap, stacks and globals (or the 4 MiB minimum): on
/// recorded runs (fixtures), so it needs neither root nor GCTRACE_INTEGRATION.
#[test]
fn gogc_goal_is_the_runtimes_own_on_recorded_cycles() {
    for (name, fixture) in [
        ("1.27", "trace-sample-1.27.ndjson"),
        ("1.25", "trace-playbook-concat-1.25.ndjson"),
    ] {
        let gcs: Vec<_> = tui_support::fixture(fixture)
            .into_iter()
            .filter_map(|r| match r {
                Record::Gc(g) => Some(g),
                _ => None,
            })
            .collect();
        assert!(gcs.len() > 20, "{name}: {} cycles", gcs.len());
        let mut checked = 0;
        for w in gcs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let predicted = gogc_goal(
                b.gogc.expect("gogc"),
                a.heap_live_bytes.expect("heap_live_bytes"),
                a.stacks_bytes.expect("stacks_bytes"),
                a.globals_bytes.expect("globals_bytes"),
            );
            assert_eq!(predicted, b.heap_goal_bytes, "{name}: gc {}", b.cycle);
            checked += 1;
        }
        assert!(checked > 20);
    }
}

per_toolchain!(predictions_match_runs {
    what_if_predictions_match_runs_at_those_settings => newest,
});

fn predictions_match_runs(tc: &Toolchain) {
    let (bin, tmp, _exclusive) = steady_setup(tc);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (workload, flags) in WORKLOADS {
        check_workload(&bin, workload, flags, tmp.path(), &mut rows, &mut failures);
    }
    let table = harness::table(
        &format!(
            "Go {}: workload | setting | measured / predicted: cycles/s | all GC CPU % | \
             GC CPU % excl. idle | peak heap MiB | cycles | errors",
            tc.version
        ),
        &rows,
    );
    println!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}

/// Records one workload at GOGC=100, predicts the other settings from the recording,
/// runs them, and adds its rows and misses.
fn check_workload(
    bin: &Path,
    workload: &str,
    flags: &[&str],
    dir: &Path,
    rows: &mut Vec<String>,
    failures: &mut Vec<String>,
) {
    let (rec, stderr) = record_steady(bin, flags, dir);
    let settings: Vec<String> = SETTINGS.iter().map(|g| format!("gogc={g}")).collect();
    let doc = report(&rec, &settings);
    let preds = doc["what_if"].as_array().expect("what_if array").clone();
    assert_eq!(preds.len(), SETTINGS.len(), "{doc}");
    let inputs = &doc["what_if_inputs"];
    rows.push(recorded_row(
        &format!("{workload} | GOGC 100 (recorded)"),
        &stderr,
        inputs,
    ));
    for (g, p) in SETTINGS.iter().zip(&preds) {
        assert_eq!(p["gogc"], *g, "{p}");
        let stderr = untraced(bin, flags, &g.to_string(), None, dir);
        let what = format!("{workload} | GOGC {g}");
        compare(&what, predicted(p), &stderr, rows, failures);
    }
    rows.push(format!("{workload} inputs: {inputs}"));
}

per_toolchain!(memory_limit_predictions {
    memory_limit_predictions_from_an_unlimited_recording_match_runs => newest,
});

/// Memory limits predicted from a recording made without one: the non-heap
/// memory the limit's goal subtracts is read from the runtime (gcController's
/// mappedReady, heapFree, totalAlloc, totalFree) after each cycle. The limit chosen
/// binds: the recording's marked heap and non-heap memory plus 20 MiB, so the goal
/// sits about halfway between the marked heap and GOGC=100's goal and cycles come
/// about twice as often, well short of the GC CPU limiter. Predicted at GOGC=off and
/// GOGC=100 under it; each then runs untraced at that setting with gctrace as the
/// oracle, held to the same [`TOLERANCE`] as the GOGC predictions.
fn memory_limit_predictions(tc: &Toolchain) {
    let (bin, tmp, _exclusive) = steady_setup(tc);
    let (rec, traced_stderr) = record_steady(&bin, &[], tmp.path());

    // The inputs alone first: the non-heap memory must have been read, not inverted
    // from a goal (there was no limit).
    let doc = report(&rec, &[]);
    let inputs = doc["what_if_inputs"].clone();
    assert_eq!(inputs["memory_limit_bytes"], Value::Null, "{inputs}");
    assert_eq!(inputs["non_heap_source"], "read", "{inputs}");
    let non_heap = inputs["non_heap_bytes"].as_u64().expect("non_heap_bytes");
    let marked = inputs["heap_live_bytes"].as_u64().expect("heap_live_bytes");
    // Stacks, runtime metadata and the unused part of in-use spans: more than nothing
    // and far less than the heap for this program.
    assert!(
        non_heap > 256 << 10 && non_heap < marked,
        "non-heap {non_heap} B, marked {marked} B: {inputs}"
    );
    let limit = (marked + non_heap + (20 << 20)) >> 20 << 20;
    let settings = [
        format!("gogc=off,limit={limit}"),
        format!("gogc=100,limit={limit}"),
    ];
    let doc = report(&rec, &settings);
    let preds = doc["what_if"].as_array().expect("what_if array").clone();
    assert_eq!(preds.len(), settings.len(), "{doc}");

    let mut rows = vec![recorded_row(
        &format!(
            "GOGC 100, no limit (recorded; non-heap {:.1} MiB)",
            non_heap as f64 / (1 << 20) as f64
        ),
        &traced_stderr,
        &inputs,
    )];
    let mut failures = Vec::new();
    for (gogc, p) in ["off", "100"].iter().zip(&preds) {
        assert_eq!(p["memory_limit_bytes"], limit, "{p}");
        let what = format!("GOGC={gogc} GOMEMLIMIT={} MiB", limit >> 20);
        // The limit was chosen to bind, short of the limiter.
        if p["bound_by"] != "memory-limit" {
            failures.push(format!(
                "{what}: bound by {}, not the limit: {p}",
                p["bound_by"]
            ));
        }
        let stderr = untraced(&bin, &[], gogc, Some(limit), tmp.path());
        compare(&what, predicted(p), &stderr, &mut rows, &mut failures);
    }
    let table = harness::table(
        &format!(
            "Go {}: setting | measured / predicted: cycles/s | all GC CPU % | \
             GC CPU % excl. idle | peak heap MiB | cycles | errors",
            tc.version
        ),
        &rows,
    );
    println!("{table}");
    assert!(
        failures.is_empty(),
        "{}\n{table}\ninputs: {inputs}",
        failures.join("\n")
    );
}
