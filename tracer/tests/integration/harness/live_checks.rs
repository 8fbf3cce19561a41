//! What several live tests share: the Go series a per-version test covers, and a
//! `--pid` attach to a running gcload judged against the gctrace lines the workload
//! printed over its whole life (gc_cycles.rs, offsets_live.rs, runtime_state.rs, and
//! arm64_guest.rs on what the guest brought back).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{
    check_heap_against_gctrace, check_knobs, diagnostics, parse_gctrace, parse_trace, ChildGuard,
    GcTraceLine, Knobs, RunResult, Trace, TracedRun, TracerCmd,
};

/// `per_toolchain!` over every Go release series the per-version tests cover, with the
/// tests named `go1_19` ... (`every_go_series!(check)`), or that list of series as a
/// `&[&str]` (`every_go_series!(series)`). One list, so a new Go release is added in one
/// place and gc_cycles.rs's `every_configured_toolchain_has_a_test` covers every user.
#[macro_export]
macro_rules! every_go_series {
    (@with [$($name:ident => $series:literal),*] series) => { &[$($series),*] };
    (@with [$($name:ident => $series:literal),*] $check:ident) => {
        $crate::per_toolchain!($check { $($name => $series),* });
    };
    ($($what:tt)*) => {
        $crate::every_go_series! {
            @with [
                go1_19 => "1.19",
                go1_21 => "1.21",
                go1_22 => "1.22",
                go1_23 => "1.23",
                go1_24 => "1.24",
                go1_25 => "1.25",
                go1_26 => "1.26",
                go1_27 => "1.27"
            ] $($what)*
        }
    };
}

/// A module `TEST` per check with the tests `TEST::newest` and `TEST::go1_19`: the newest
/// toolchain and the oldest, whose runtime differs most (`newest_and_go1_19! { TEST =>
/// check, ... }`, each check a `fn(&Toolchain)` of the invoking module).
#[macro_export]
macro_rules! newest_and_go1_19 {
    ($($test:ident => $check:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;
                $crate::per_toolchain!($check { newest => newest, go1_19 => "1.19" });
            }
        )*
    };
}

/// The runtime state a launch-mode run reports, against the runtime's own gctrace lines:
/// the trace parses and has gc records, not all without heap figures; their heap triple,
/// goal and GOMAXPROCS are gctrace's, their GOGC and GOMEMLIMIT `knobs`. Returns the
/// trace, the gctrace lines and the problems found, for the caller's further checks.
pub fn check_launch_state(
    run: &TracedRun,
    knobs: Knobs,
) -> (Trace, BTreeMap<u32, GcTraceLine>, Vec<String>) {
    let gctrace = parse_gctrace(&run.stderr);
    let trace = parse_trace(&run.trace_text);
    let mut failures = trace.errors.clone();
    if trace.gc.is_empty() {
        failures.push("no gc records".into());
    } else if trace.gc.iter().all(|r| r.heap.live.is_none()) {
        failures.push(format!(
            "every gc record has heap figures null: the tracer could not read the runtime's \
             state from this {} build",
            run.build.name()
        ));
    }
    failures.extend(check_heap_against_gctrace(&trace, &gctrace));
    failures.extend(check_knobs(&trace, knobs));
    (trace, gctrace, failures)
}

/// Starts `gcload -forever` with GODEBUG=gctrace=1, its output in `dir/NAME.*`: the
/// running program the `--pid` tests attach to.
pub fn spawn_forever(gcload: &Path, dir: &Path, name: &str) -> ChildGuard {
    ChildGuard::spawn(
        Command::new(gcload)
            .env("GODEBUG", "gctrace=1")
            .arg("-forever"),
        dir,
        name,
    )
}

/// Stops a `gcload -forever` with SIGTERM, which it asks for and answers by exiting 0,
/// and panics unless it did so within 30 s: `what` names it in the message.
pub fn stop_forever(workload: &mut ChildGuard, what: &str) {
    workload.signal(libc::SIGTERM);
    let status = workload.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "{what} did not exit 0 on SIGTERM: {status:?}\n{}",
        diagnostics(&workload.stdout_text(), &workload.stderr_text())
    );
}

/// A `gctrace-bpf --pid` run over a 3 s window, as captured.
pub struct PidTrace {
    pub run: RunResult,
    pub trace_text: String,
    /// The command, the tracer's output and the trace's start, for failure messages.
    pub diag: String,
}

impl PidTrace {
    pub fn assert_succeeded(&self) {
        assert!(
            self.run.status.success(),
            "gctrace-bpf --pid failed: {}\n{}",
            self.run.status,
            self.diag
        );
    }
}

/// Traces process `pid` for 3 s (`--pid P --format json --duration 3`) with `env` set
/// for the tracer; `what` opens the diagnostics (the Go version, say).
pub fn trace_pid(pid: u32, dir: &Path, env: &[(&str, &str)], what: &str) -> PidTrace {
    let out = dir.join("trace.ndjson");
    let mut cmd = TracerCmd::new();
    cmd.envs(env.iter().copied());
    cmd.pid(pid).json_to(&out).args(["--duration", "3"]);
    let run = cmd.run(dir, "tracer");
    let trace_text = std::fs::read_to_string(&out).unwrap_or_default();
    let diag = format!(
        "{what}, command {cmd:?}\n--- tracer ---\n{}--- trace (first 20 lines) ---\n{}",
        diagnostics(&run.stdout, &run.stderr),
        trace_text.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    PidTrace {
        run,
        trace_text,
        diag,
    }
}

/// What a `--pid` trace of the running process `pid` over `window` ("3 s") must show,
/// against `gctrace`, every line the workload printed: the process record first, with
/// that pid; at least two cycles, each once, none missing between the first and the
/// last, in timestamp order; no lost events in the summary. With `runtime_numbers` (the
/// tracer located the runtime's variables) the cycles also carry the runtime's numbers,
/// so each is one gctrace printed, and their heap triple, goal and GOMAXPROCS are that
/// line's; without, the numbers count from the attach and only the continuity is judged.
pub fn check_attached(
    trace: &Trace,
    gctrace: &BTreeMap<u32, GcTraceLine>,
    pid: u32,
    window: &str,
    runtime_numbers: bool,
) -> Vec<String> {
    let mut failures = trace.errors.clone();
    match &trace.process {
        Some(p) if trace.first_type.as_deref() == Some("process") => {
            if p.pid != Some(u64::from(pid)) {
                failures.push(format!("process.pid is {:?}, the workload is {pid}", p.pid));
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
            "only {} cycles reported in a {window} window (gctrace printed {})",
            unique.len(),
            gctrace.len()
        ));
    }
    if let (Some(&first), Some(&last)) = (unique.first(), unique.last()) {
        // Every cycle the runtime completed inside the window is there.
        let gaps: Vec<u32> = (first..=last).filter(|c| !unique.contains(c)).collect();
        if !gaps.is_empty() {
            failures.push(format!(
                "cycles {first}..={last} were reported with gaps: {gaps:?} missing"
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
        if runtime_numbers {
            let printed: BTreeSet<u32> = gctrace.keys().copied().collect();
            let unknown: Vec<&u32> = unique.difference(&printed).collect();
            if !unknown.is_empty() {
                failures.push(format!(
                    "reported cycles gctrace never printed: {unknown:?} (gctrace printed \
                     {:?}..={:?})",
                    gctrace.keys().next(),
                    gctrace.keys().next_back()
                ));
            }
            let window: BTreeMap<u32, GcTraceLine> = gctrace
                .range(first..=last)
                .map(|(c, l)| (*c, l.clone()))
                .collect();
            failures.extend(check_heap_against_gctrace(trace, &window));
        }
    }
    match &trace.summary {
        Some(s) if s.lost_events != 0 => {
            failures.push(format!("summary.lost_events is {}", s.lost_events))
        }
        Some(_) => {}
        None => failures.push("no summary record".into()),
    }
    failures
}
