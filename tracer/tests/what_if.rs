//! What-if predictions against reality: workloads/steady (a fixed live heap, garbage at
//! a clock-paced rate) is recorded under the tracer at GOGC=100,
//! `report --what-if` predicts GOGC=50, 200 and 400 from that recording alone, and the
//! workload then runs untraced at each setting with its own `GODEBUG=gctrace=1` lines as
//! the oracle. Targets (issue 17): cycles/s and peak heap within 15 %, GC CPU within
//! 25 %; the test allows [`TOLERANCE`] for a shared 2-core machine and fails on a miss.
//! The GC CPU asserted is all of it, idle mark workers included (`gc_cpu_total_percent`,
//! gctrace's five cpu figures): the work a cycle needs. The part outside idle workers
//! (`gc_cpu_percent`, gctrace's P%) is printed, not asserted: how a cycle's marking is
//! split between idle and other workers follows how idle the machine is
//! (docs/performance.md, "What-if predictions").

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Toolchain;
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
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

fn build_steady(toolchain: &Toolchain) -> PathBuf {
    let src = common::workspace_root().join("workloads").join("steady");
    let dir = common::target_dir()
        .join("steady-cache")
        .join(&toolchain.version);
    std::fs::create_dir_all(&dir).expect("steady cache dir");
    let bin = dir.join("steady");
    let cache = common::target_dir().join("gcload-cache");
    let out = Command::new(&toolchain.go)
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", cache.join("gocache"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./")
        .current_dir(&src)
        .output()
        .expect("running go build");
    assert!(
        out.status.success(),
        "building steady with Go {}: {}",
        toolchain.version,
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// The steady state by the runtime's own gctrace lines: cycles/s, all GC CPU % of
/// GOMAXPROCS (the five cpu figures), GC CPU % without idle workers (gctrace's P%
/// counts it so), mean heap at mark termination; and the cycles.
fn oracle(stderr: &str) -> ([f64; 4], usize) {
    let lines: Vec<_> = common::parse_gctrace(stderr)
        .into_values()
        .filter(|l| !l.forced && l.at_ms.is_some_and(|t| t >= WARM_UP_MS))
        .collect();
    assert!(lines.len() >= 5, "too few steady cycles: {stderr}");
    let at = |l: &common::GcTraceLine| l.at_ms.unwrap_or(0) as f64 / 1e3;
    let span = at(&lines[lines.len() - 1]) - at(&lines[0]);
    let procs = f64::from(lines[0].procs.expect("gctrace P"));
    let mid = |r: common::MsRange| (r.lo_ns + r.hi_ns) as f64 / 2.0;
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

fn untraced(bin: &Path, flags: &[&str], gogc: i32, dir: &Path) -> String {
    let mut cmd = Command::new(bin);
    cmd.env("GOGC", gogc.to_string())
        .env("GOMAXPROCS", GOMAXPROCS)
        .env("GODEBUG", "gctrace=1")
        .args(flags)
        .args(["-duration", RUN_FOR]);
    let run = common::run(&mut cmd, dir, &format!("steady-{gogc}"), RUN_TIMEOUT);
    assert!(run.status.success(), "GOGC={gogc}: {}", run.stderr);
    run.stderr
}

/// "12.3" / "?" for one figure (peak heap in MiB).
fn shown(i: usize, v: Option<f64>) -> String {
    match v {
        Some(v) if i == 3 => format!("{:.1}", v / (1 << 20) as f64),
        Some(v) => format!("{v:.2}"),
        None => "?".into(),
    }
}

#[test]
fn what_if_predictions_match_runs_at_those_settings() {
    if !common::integration_enabled() {
        return;
    }
    let tc = common::newest_toolchain();
    let bin = build_steady(&tc);
    let tmp = tempfile::tempdir().expect("tempdir");
    let _exclusive = common::exclusive();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (workload, flags) in WORKLOADS {
        check_workload(&bin, workload, flags, tmp.path(), &mut rows, &mut failures);
    }
    let table = common::table(
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
    let rec = dir.join("steady.gct");
    let mut cmd = Command::new(common::tracer_bin());
    cmd.env("GOGC", "100")
        .env("GOMAXPROCS", GOMAXPROCS)
        .env("GODEBUG", "gctrace=1")
        .args(["--format", "json", "--output"])
        .arg(dir.join("trace.ndjson"))
        .arg("--record")
        .arg(&rec)
        .arg("--")
        .arg(bin)
        .args(flags)
        .args(["-duration", RUN_FOR]);
    let run = common::run(&mut cmd, dir, "traced", RUN_TIMEOUT);
    let diag = format!("{cmd:?}\n{}", common::diagnostics(&run.stdout, &run.stderr));
    assert!(run.status.success(), "traced run failed: {diag}");

    let mut report = Command::new(common::tracer_bin());
    report.arg("report").arg(&rec).args(["--format", "json"]);
    for g in SETTINGS {
        report.args(["--what-if", &format!("gogc={g}")]);
    }
    let out = report.output().expect("running report");
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("report json");
    let preds = doc["what_if"].as_array().expect("what_if array").clone();
    assert_eq!(preds.len(), SETTINGS.len(), "{doc}");
    let inputs = &doc["what_if_inputs"];

    // The recorded run against its own gctrace: the inputs' "now" is the oracle's.
    let (m, n) = oracle(&run.stderr);
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
    rows.push(format!(
        "{workload} | GOGC 100 (recorded) | {} | {n} |",
        cells.join(" | ")
    ));
    for (g, p) in SETTINGS.iter().zip(&preds) {
        assert_eq!(p["gogc"], *g, "{p}");
        let stderr = untraced(bin, flags, *g, dir);
        let (m, n) = oracle(&stderr);
        let predicted = [
            "cycles_per_s",
            "gc_cpu_total_percent",
            "gc_cpu_percent",
            "peak_heap_bytes",
        ]
        .map(|k| p[k].as_f64());
        let mut errs = Vec::new();
        for (i, name) in FIGURES.iter().enumerate() {
            match predicted[i] {
                Some(v) => {
                    let e = v / m[i] - 1.0;
                    errs.push(format!("{:+.0} %", e * 100.0));
                    if let Some(t) = TOLERANCE[i].filter(|t| e.abs() > *t) {
                        failures.push(format!(
                            "{workload}, GOGC={g}: {name} predicted {v:.3}, measured {:.3} \
                             ({:+.0} %, allowed ±{:.0} %)",
                            m[i],
                            e * 100.0,
                            t * 100.0
                        ));
                    }
                }
                None => failures.push(format!("{workload}, GOGC={g}: no {name} predicted: {p}")),
            }
        }
        let cells: Vec<String> = (0..4)
            .map(|i| format!("{} / {}", shown(i, Some(m[i])), shown(i, predicted[i])))
            .collect();
        rows.push(format!(
            "{workload} | GOGC {g} | {} | {n} | {}",
            cells.join(" | "),
            errs.join(", ")
        ));
    }
    rows.push(format!("{workload} inputs: {inputs}"));
}
