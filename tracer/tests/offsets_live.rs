//! Live runs on stripped builds whose Go release is removed from the offsets table
//! (`GCTRACE_OFFSETS_TABLE_EXCLUDE`): every struct offset comes from the binary's own
//! code (`tracer/src/binary/derive.rs`), and the trace must still agree with the
//! runtime's gctrace lines (runtime cycle numbers, heap triple and goal in MB, GOMAXPROCS),
//! GOGC, and TotalAlloc. Launch mode and `--pid` mode, older releases and the newest.
//! Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).
//!
//! The older releases are 1.19 and 1.21, each alone in its minor in the table: no
//! tabulated layout of `runtime.work` (nor, on 1.19, of `gcControllerState`) matches
//! them, so those fields come from the code's own anchors (`tracer/src/binary/
//! work_anchors.rs`, `pacer_anchors.rs`, `print_anchors.rs`) and the rest from layouts
//! the code confirms.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{ChildGuard, GcBuild, Toolchain, RUN_TIMEOUT};

const EXCLUDE: &str = "GCTRACE_OFFSETS_TABLE_EXCLUDE";

/// The release key of `toolchain` ("go1.27.3") and a check that excluding it really
/// makes the stripped build derive its offsets (so the runs below cannot pass on the
/// table).
fn excluded_release(toolchain: &Toolchain) -> String {
    let key = toolchain.go_version();
    let bin = common::build_gcload_as(toolchain, GcBuild::Stripped);
    let out = Command::new(common::tracer_bin())
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
    let run = common::traced_run(toolchain, GcBuild::Stripped, "json", &[(EXCLUDE, &key)]);
    let memstats = run.assert_completed();
    let gctrace = common::parse_gctrace(&run.stderr);
    let trace = common::parse_trace(&run.trace_text);
    let mut failures = trace.errors.clone();
    if trace.gc.is_empty() {
        failures.push("no gc records".into());
    }
    failures.extend(common::check_heap_against_gctrace(&trace, &gctrace));
    failures.extend(common::check_knobs(&trace, common::DEFAULT_KNOBS));
    failures.extend(common::check_alloc(&trace, memstats));
    common::assert_no_failures(
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
/// runtime's own (read from `work.cycles`, not counted from attach).
fn attach(toolchain: &Toolchain) {
    let key = excluded_release(toolchain);
    let gcload = common::build_gcload_as(toolchain, GcBuild::Stripped);
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("trace.ndjson");
    let _exclusive = common::exclusive();
    let mut workload = ChildGuard::spawn(
        Command::new(&gcload)
            .env("GODEBUG", "gctrace=1")
            .arg("-forever"),
        tmp.path(),
        "workload",
    );
    // Let several cycles pass first, so numbering from attach would show.
    thread::sleep(Duration::from_secs(2));
    let mut cmd = Command::new(common::tracer_bin());
    cmd.env(EXCLUDE, &key)
        .arg("--pid")
        .arg(workload.pid().to_string())
        .args(["--format", "json", "--output"])
        .arg(&out)
        .args(["--duration", "3"]);
    let run = common::run(&mut cmd, tmp.path(), "tracer", RUN_TIMEOUT);
    thread::sleep(Duration::from_millis(300));
    workload.signal(libc::SIGTERM);
    let _ = workload.wait_timeout(Duration::from_secs(30));
    let trace_text = std::fs::read_to_string(&out).unwrap_or_default();
    let diag = format!(
        "Go {key}, command {cmd:?}\n--- tracer ---\n{}--- trace (first 20 lines) ---\n{}",
        common::diagnostics(&run.stdout, &run.stderr),
        trace_text.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(run.status.success(), "gctrace-bpf --pid failed\n{diag}");
    let trace = common::parse_trace(&trace_text);
    let gctrace = common::parse_gctrace(&workload.stderr_text());
    let mut failures = trace.errors.clone();
    let reported: Vec<u32> = trace.gc.iter().map(|r| r.cycle).collect();
    if reported.len() < 2 {
        failures.push(format!("only {} cycles reported in 3 s", reported.len()));
    }
    if reported.first().is_some_and(|c| *c <= 1) {
        failures.push(format!(
            "first cycle reported is {:?} after 2 s of GC: counted from attach, not the \
             runtime's work.cycles",
            reported.first()
        ));
    }
    if let (Some(first), Some(last)) = (reported.iter().min(), reported.iter().max()) {
        let window: BTreeMap<u32, common::GcTraceLine> = gctrace
            .range(first..=last)
            .map(|(c, l)| (*c, l.clone()))
            .collect();
        failures.extend(common::check_heap_against_gctrace(&trace, &window));
    }
    failures.extend(common::check_knobs(&trace, common::DEFAULT_KNOBS));
    common::assert_no_failures(
        &format!("Go {key} stripped, table entry excluded, --pid"),
        &failures,
        &diag,
    );
}

macro_rules! releases {
    ($($name:ident => $series:expr),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn launch_mode() {
                    if !crate::common::integration_enabled() {
                        return;
                    }
                    super::launch(&super::toolchain($series));
                }

                #[test]
                fn pid_mode() {
                    if !crate::common::integration_enabled() {
                        return;
                    }
                    super::attach(&super::toolchain($series));
                }
            }
        )*
    };
}

/// `""` is the newest toolchain.
fn toolchain(series: &str) -> Toolchain {
    if series.is_empty() {
        common::newest_toolchain()
    } else {
        common::toolchain(series)
    }
}

releases! {
    go1_19 => "1.19",
    go1_21 => "1.21",
    newest => "",
}
