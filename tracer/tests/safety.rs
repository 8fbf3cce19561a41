//! The traced program is never harmed: by attaching and detaching over and over, by the
//! tracer being killed with SIGKILL, or by two tracers at once. Needs root; skips unless
//! GCTRACE_INTEGRATION=1 (`cargo xtask test`).

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::ChildGuard;

/// The target's CPU time in the kernel (stime, clock ticks): uprobe traps are charged here.
fn stime_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    // After the command name: state is field 3, stime is field 15.
    rest.split_whitespace()
        .nth(12)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn start_workload(dir: &std::path::Path) -> ChildGuard {
    let gcload = common::build_gcload(&common::newest_toolchain());
    let w = ChildGuard::spawn(
        Command::new(&gcload).args(["-forever", "-goroutines", "2"]),
        dir,
        "workload",
    );
    thread::sleep(Duration::from_millis(500));
    w
}

/// Ends the workload with SIGTERM: it must exit 0 after printing its closing line.
fn finish_workload(mut w: ChildGuard) {
    w.signal(libc::SIGTERM);
    let status = w.wait_timeout(Duration::from_secs(20));
    let out = w.stdout_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "workload ended with {status:?}\n{}",
        common::diagnostics(&out, &w.stderr_text())
    );
    assert!(
        out.contains("gcload done: goroutines=2 forced=0 readmemstats=0"),
        "{out}"
    );
}

#[test]
fn attach_and_detach_fifty_times_leaves_the_target_unharmed() {
    if !common::integration_enabled() {
        return;
    }
    let _exclusive = common::exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = start_workload(dir.path());
    let pid = w.pid().to_string();
    for i in 0..50 {
        let out = Command::new(common::tracer_bin())
            .args([
                "--pid",
                &pid,
                "--duration",
                "0.05",
                "--format",
                "json",
                "--output",
            ])
            .arg(dir.path().join("t.json"))
            .output()
            .expect("running gctrace-bpf");
        assert!(
            out.status.success(),
            "attach {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        w.try_wait().is_none(),
        "the workload died while being attached to"
    );
    finish_workload(w);
}

#[test]
fn sigkill_of_the_tracer_removes_every_probe() {
    if !common::integration_enabled() {
        return;
    }
    let _exclusive = common::exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let w = start_workload(dir.path());
    let pid = w.pid();
    // Exact allocation tracing traps on every allocation: while attached, the target's
    // kernel time climbs fast; once the probes are gone it must fall back.
    let mut tracer = ChildGuard::spawn(
        Command::new(common::tracer_bin())
            .args([
                "--pid",
                &pid.to_string(),
                "--allocs",
                "exact",
                "--format",
                "json",
                "--output",
            ])
            .arg(dir.path().join("t.json")),
        dir.path(),
        "tracer",
    );
    let window = Duration::from_secs(2);
    thread::sleep(Duration::from_secs(2));
    let s0 = stime_ticks(pid);
    thread::sleep(window);
    let traced = stime_ticks(pid) - s0;
    tracer.signal(libc::SIGKILL);
    assert!(tracer.wait_timeout(Duration::from_secs(10)).is_some());
    // Closing the perf-event fds (the kernel does it for a killed process) unregisters
    // the uprobes; give the kernel a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let untraced = loop {
        thread::sleep(Duration::from_millis(500));
        let s0 = stime_ticks(pid);
        thread::sleep(window);
        let d = stime_ticks(pid) - s0;
        if d * 4 < traced.max(4) || Instant::now() > deadline {
            break d;
        }
    };
    assert!(
        untraced * 4 < traced.max(4),
        "kernel time per {window:?}: {traced} ticks traced, still {untraced} after SIGKILL"
    );
    finish_workload(w);
}

#[test]
fn two_tracers_on_one_target_both_see_its_cycles() {
    if !common::integration_enabled() {
        return;
    }
    let _exclusive = common::exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let w = start_workload(dir.path());
    let pid = w.pid().to_string();
    let spawn = |name: &str| {
        ChildGuard::spawn(
            Command::new(common::tracer_bin())
                .args([
                    "--pid",
                    &pid,
                    "--duration",
                    "3",
                    "--format",
                    "json",
                    "--output",
                ])
                .arg(dir.path().join(format!("{name}.json"))),
            dir.path(),
            name,
        )
    };
    let mut a = spawn("a");
    let mut b = spawn("b");
    for t in [&mut a, &mut b] {
        let status = t.wait_timeout(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{}", t.stderr_text());
    }
    let cycles = |name: &str| -> Vec<u64> {
        common::read_trace(&dir.path().join(format!("{name}.json")))
            .gc
            .iter()
            .map(|g| u64::from(g.cycle))
            .collect()
    };
    let (ca, cb) = (cycles("a"), cycles("b"));
    assert!(ca.len() >= 2 && cb.len() >= 2, "a: {ca:?}, b: {cb:?}");
    // The windows overlap almost entirely: most cycles are seen by both.
    let common_cycles = ca.iter().filter(|c| cb.contains(c)).count();
    assert!(
        common_cycles * 2 >= ca.len().min(cb.len()),
        "a: {ca:?}, b: {cb:?}"
    );
    finish_workload(w);
}

/// Overload: a tiny ring buffer and a storm of stops. Losses are counted and reported,
/// and the model stays consistent: no stop paired with another's end, no cycle with a
/// lost stop reported as complete (every gc record agrees with the runtime's own line).
#[test]
fn ring_buffer_overload_is_counted_and_the_model_stays_consistent() {
    if !common::integration_enabled() {
        return;
    }
    let _exclusive = common::exclusive();
    let gcload = common::build_gcload(&common::newest_toolchain());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("t.json");
    let mut cmd = Command::new(common::tracer_bin());
    cmd.env("GODEBUG", "gctrace=1")
        .args(["--ring-kib", "4", "--format", "json", "--output"])
        .arg(&out)
        .arg("--")
        .arg(&gcload)
        .args(["-duration", "3s", "-readmemstats", "20000"]);
    let run = common::run(&mut cmd, dir.path(), "traced", common::RUN_TIMEOUT);
    let diag = common::diagnostics(&run.stdout, &run.stderr);
    assert!(run.status.success(), "{}\n{diag}", run.status);
    let trace = common::read_trace(&out);
    let lost = trace.summary.as_ref().map_or(0, |s| s.lost_events);
    assert!(
        lost > 0,
        "no loss provoked; the test needs a smaller ring\n{diag}"
    );
    assert!(
        run.stderr.contains("events lost"),
        "losses not reported on stderr\n{diag}"
    );
    assert_no_overlap(&trace);

    // A storm of stops alone (no GC): the hardest case for pairing begins and ends.
    // The workload times every ReadMemStats call: no stop it caused lasted longer than
    // the longest call, so a stop paired with a later stop's end shows up.
    let ms_path = dir.path().join("storm-memstats.json");
    let mut cmd = Command::new(common::tracer_bin());
    cmd.args(["--ring-kib", "4", "--format", "json", "--output"])
        .arg(dir.path().join("storm.json"))
        .arg("--")
        .arg(&gcload)
        .args(["-stw-loop", "30000", "-memstats-out"])
        .arg(&ms_path);
    let storm = common::run(&mut cmd, dir.path(), "storm", common::RUN_TIMEOUT);
    assert!(storm.status.success(), "{}", storm.stderr);
    let storm_trace = common::read_trace(&dir.path().join("storm.json"));
    assert!(storm_trace
        .summary
        .as_ref()
        .is_some_and(|s| s.lost_events > 0));
    assert_no_overlap(&storm_trace);
    let longest_call = common::MemStats::read(&ms_path).max_read_mem_stats_ns;
    assert!(longest_call > 0, "gcload wrote no MaxReadMemStatsNs");
    for s in storm_trace
        .stw
        .iter()
        .filter(|s| s.reason == "read mem stats")
    {
        assert!(
            s.duration_ns <= longest_call,
            "stop {s:?} longer than the longest ReadMemStats call ({longest_call} ns)"
        );
    }

    let gctrace = common::parse_gctrace(&run.stderr);
    for g in &trace.gc {
        let line = gctrace.get(&g.cycle).unwrap_or_else(|| {
            panic!(
                "gc {} reported but the runtime printed no such cycle",
                g.cycle
            )
        });
        for (i, got) in [g.sweep_term_ns, g.mark_ns, g.mark_term_ns]
            .into_iter()
            .enumerate()
        {
            let want = &line.clock[i];
            let slack = 60_000 + want.hi_ns * 15 / 100;
            assert!(
                want.distance(got) <= slack,
                "gc {}: phase {i} is {got} ns, the runtime says {want:?}",
                g.cycle
            );
        }
    }
}

/// Stops never overlap (the runtime serialises them): a stop paired with a later stop's
/// end would swallow the stops in between.
fn assert_no_overlap(trace: &common::Trace) {
    let mut stops: Vec<_> = trace.stw.iter().collect();
    stops.sort_by_key(|s| s.start_ns);
    for w in stops.windows(2) {
        assert!(
            w[0].start_ns + w[0].duration_ns <= w[1].start_ns,
            "overlapping stops {:?} and {:?}",
            w[0],
            w[1]
        );
    }
}

/// Once the probes are attached the tracer keeps only the capabilities it still needs:
/// no CAP_SYS_ADMIN, no CAP_PERFMON (default mode).
#[test]
fn capabilities_are_dropped_after_attach() {
    if !common::integration_enabled() {
        return;
    }
    let _exclusive = common::exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let w = start_workload(dir.path());
    let tracer = ChildGuard::spawn(
        Command::new(common::tracer_bin())
            .args([
                "--pid",
                &w.pid().to_string(),
                "--duration",
                "3",
                "--format",
                "json",
                "--output",
            ])
            .arg(dir.path().join("t.json")),
        dir.path(),
        "tracer",
    );
    thread::sleep(Duration::from_millis(1500));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", tracer.pid())).unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff of the tracer");
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_PERFMON: u64 = 1 << 38;
    const CAP_BPF: u64 = 1 << 39;
    assert_eq!(eff & (CAP_SYS_ADMIN | CAP_PERFMON), 0, "CapEff {eff:#x}");
    assert_ne!(
        eff & CAP_BPF,
        0,
        "CapEff {eff:#x}: the maps still need CAP_BPF"
    );
    drop(tracer);
    finish_workload(w);
}

/// The target execs another program: said clearly, the run ends with its summary, and
/// in launch mode the tracer still exits with the (new) program's status.
#[test]
fn target_exec_is_reported_and_ends_the_run_cleanly() {
    if !common::integration_enabled() {
        return;
    }
    let _exclusive = common::exclusive();
    let gcload = common::build_gcload(&common::newest_toolchain());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("t.json");
    let script = dir.path().join("after.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 2\nexit 4\n").expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = Command::new(common::tracer_bin());
    cmd.args(["--format", "json", "--output"])
        .arg(&out)
        .arg("--")
        .arg(&gcload)
        .args(["-duration", "1s", "-exec"])
        .arg(&script);
    let run = common::run(&mut cmd, dir.path(), "traced", common::RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains("replaced its program"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let trace = common::read_trace(&out);
    assert!(trace.summary.is_some(), "no summary written");
    assert!(
        !trace.gc.is_empty(),
        "no cycles of the Go program before its exec"
    );
}
