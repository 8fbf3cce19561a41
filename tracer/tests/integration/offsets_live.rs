//! Live runs on stripped builds whose Go release is removed from the offsets table
//! (`GCTRACE_OFFSETS_TABLE_EXCLUDE`): every struct offset comes from the binary's own
//! code (`tracer/src/binary/anchors/derive.rs`), and the trace must still agree with the
//! runtime's gctrace lines (runtime cycle numbers, heap triple and goal in MB, GOMAXPROCS),
//! GOGC, and TotalAlloc. Launch mode and `--pid` mode, older releases and the newest.
//! Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).
//!
//! The older releases are 1.19 and 1.21, each alone in its minor in the table: no
//! tabulated layout of `runtime.work` (nor, on 1.19, of `gcControllerState`) matches
//! them, so those fields come from the code's own anchors (`tracer/src/binary/anchors/
//! work_anchors.rs`, `pacer_anchors.rs`, `print_anchors.rs`) and the rest from layouts
//! the code confirms.

use crate::harness;

use std::thread;
use std::time::Duration;

use harness::{live_checks, GcBuild, Toolchain};

const EXCLUDE: &str = "GCTRACE_OFFSETS_TABLE_EXCLUDE";

/// The release key of `toolchain` ("go1.27.3") and a check that excluding it really
/// makes the stripped build derive its offsets (so the runs below cannot pass on the
/// table).
fn excluded_release(toolchain: &Toolchain) -> String {
    let key = toolchain.go_version();
    let bin = harness::build_gcload_as(toolchain, GcBuild::Stripped);
    let out = harness::TracerCmd::new()
        .args(["inspect", "--format", "json"])
        .arg(&bin)
        .env(EXCLUDE, &key)
        .output()
        .expect("running gctrace-bpf inspect");
    assert!(out.status.success(), "inspect failed: {out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(
        report["offsets_source"],
        "code",
        "{EXCLUDE}={key} did not make {} derive its offsets: {report}",
        bin.display()
    );
    let unknown: Vec<&serde_json::Value> = report["fields"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["offset"].is_null()).collect())
        .unwrap_or_default();
    assert!(unknown.is_empty(), "Go {key}: unknown fields {unknown:?}");
    key
}

fn launch(toolchain: &Toolchain) {
    let key = excluded_release(toolchain);
    let run = harness::traced_run(toolchain, GcBuild::Stripped, "json", &[(EXCLUDE, &key)]);
    let memstats = run.assert_completed();
    let (trace, gctrace, mut failures) =
        live_checks::check_launch_state(&run, harness::DEFAULT_KNOBS);
    failures.extend(harness::check_alloc(&trace, memstats));
    harness::assert_no_failures(
        &format!(
            "Go {} stripped, table entry excluded, launch mode ({} gctrace lines, {} gc \
             records)",
            run.go_version,
            gctrace.len(),
            trace.gc.len()
        ),
        &failures,
        &run.diag(),
    );
}

/// Attached by `--pid` to a running stripped gcload: the cycle numbers are the
/// runtime's own (read from `work.cycles`, not counted from attach), and the window is
/// judged by `live_checks::check_attached` and on its GOGC and GOMEMLIMIT.
fn attach(toolchain: &Toolchain) {
    let key = excluded_release(toolchain);
    let gcload = harness::build_gcload_as(toolchain, GcBuild::Stripped);
    let tmp = tempfile::tempdir().expect("tempdir");
    let _exclusive = harness::exclusive();
    let mut workload = live_checks::spawn_forever(&gcload, tmp.path(), "workload");
    // Let several cycles pass first, so numbering from attach would show.
    thread::sleep(Duration::from_secs(2));
    let traced = live_checks::trace_pid(
        workload.pid(),
        tmp.path(),
        &[(EXCLUDE, &key)],
        &format!("Go {key}"),
    );
    thread::sleep(Duration::from_millis(300));
    live_checks::stop_forever(&mut workload, "the stripped workload, after the trace,");
    traced.assert_succeeded();
    let trace = harness::parse_trace(&traced.trace_text);
    let gctrace = harness::parse_gctrace(&workload.stderr_text());
    let mut failures = live_checks::check_attached(&trace, &gctrace, workload.pid(), "3 s", true);
    let first = trace.gc.iter().map(|r| r.cycle).min();
    if first.is_some_and(|c| c <= 1) {
        failures.push(format!(
            "first cycle reported is {first:?} after 2 s of GC: counted from attach, not the \
             runtime's work.cycles"
        ));
    }
    failures.extend(harness::check_knobs(&trace, harness::DEFAULT_KNOBS));
    harness::assert_no_failures(
        &format!("Go {key} stripped, table entry excluded, --pid"),
        &failures,
        &traced.diag,
    );
}

/// `RELEASE::launch_mode` and `RELEASE::pid_mode` per release (`newest`: the newest
/// toolchain).
macro_rules! releases {
    ($($name:ident => $series:tt),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                per_toolchain!(launch { launch_mode => $series });
                per_toolchain!(attach { pid_mode => $series });
            }
        )*
    };
}

releases! {
    go1_19 => "1.19",
    go1_21 => "1.21",
    newest => newest,
}
