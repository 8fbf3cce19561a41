//! `--exe` on the Go compiler while `go build -a` runs: every compile process lives well
//! under a second, most far less, so a tracer that finds processes by scanning /proc
//! misses them or their first cycles (23 of 123 cycles were missed before probes were
//! attached once per binary). The oracle is each compile's own `GODEBUG=gctrace=1` output:
//! a `-toolexec` wrapper `exec`s the compiler (same pid) with its stderr in a file named
//! by that pid, so every printed cycle can be looked up under its pid in the trace.
#![allow(clippy::unwrap_used)]

use crate::harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::target_procs::{child_diag, stop};
use harness::ChildGuard;

/// The cycle numbers a gctrace output printed (`gc N @...`).
fn printed_cycles(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.strip_prefix("gc "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// `gctrace-bpf --exe EXE --format json --output OUT`, once it says the file's probes are
/// on (from then on no process of it is missed).
fn watch_exe(exe: &std::path::Path, dir: &std::path::Path, out: &std::path::Path) -> ChildGuard {
    let mut cmd = harness::TracerCmd::new();
    cmd.arg("--exe").arg(exe);
    let mut tracer = cmd.json_to(out).spawn(dir, "tracer");
    let start = Instant::now();
    while !tracer
        .stderr_text()
        .contains("every process of it is traced from its start")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60) && tracer.try_wait().is_none(),
            "the tracer is not watching {}\n{}",
            exe.display(),
            child_diag(&tracer)
        );
        thread::sleep(Duration::from_millis(50));
    }
    tracer
}

#[test]
fn exe_records_every_cycle_of_every_compile_process() {
    if !harness::integration_enabled() {
        return;
    }
    let _exclusive = harness::exclusive();
    let toolchain = harness::newest_toolchain();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let gct = dir.join("gctrace");
    fs::create_dir(&gct).unwrap();

    let tooldir = Command::new(&toolchain.go)
        .args(["env", "GOTOOLDIR"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go env GOTOOLDIR");
    let compile =
        std::path::PathBuf::from(String::from_utf8_lossy(&tooldir.stdout).trim()).join("compile");
    assert!(compile.is_file(), "no compiler at {}", compile.display());

    let wrapper = dir.join("wrap.sh");
    fs::write(
        &wrapper,
        "#!/bin/sh\ntool=\"$1\"; shift\ncase \"$(basename \"$tool\")\" in\n  \
         compile) exec env GODEBUG=gctrace=1 \"$tool\" \"$@\" 2>\"$GCT_DIR/compile.$$.err\" ;;\n\
         esac\nexec \"$tool\" \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();

    let out = dir.join("trace.ndjson");
    let mut tracer = watch_exe(&compile, dir, &out);

    // Every package gcload needs, the runtime first among them, compiled afresh.
    let build = Command::new(&toolchain.go)
        .args(["build", "-a", "-p", "2", "-o"])
        .arg(dir.join("gcload"))
        .arg("-toolexec")
        .arg(&wrapper)
        .arg(".")
        .current_dir(harness::workspace_root().join("workloads/gcload"))
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("GCT_DIR", &gct)
        .stdin(Stdio::null())
        .output()
        .expect("go build");
    assert!(
        build.status.success(),
        "go build -a failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    // Ctrl-C, as a user ends a watch.
    stop(&mut tracer, libc::SIGINT);

    // The oracle: cycles printed per compile pid.
    let mut printed: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for entry in fs::read_dir(&gct).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("compile.")
            .and_then(|r| r.strip_suffix(".err"))
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        printed.insert(pid, printed_cycles(&fs::read_to_string(&path).unwrap()));
    }
    let total: usize = printed.values().map(Vec::len).sum();
    assert!(
        printed.len() >= 10 && total >= 5,
        "the build ran {} compile processes printing {total} cycles: too few to test",
        printed.len()
    );

    let traces = harness::traces_by_pid(&fs::read_to_string(&out).unwrap_or_default());
    let mut failures = Vec::new();
    let mut recorded = 0;
    for (pid, cycles) in &printed {
        if cycles.is_empty() {
            continue;
        }
        let Some(trace) = traces.get(pid) else {
            failures.push(format!("pid {pid}: printed cycles {cycles:?}, not traced"));
            continue;
        };
        let got: BTreeSet<u32> = trace.gc.iter().map(|g| g.cycle).collect();
        let missing: Vec<u32> = cycles
            .iter()
            .copied()
            .filter(|c| !got.contains(c))
            .collect();
        recorded += cycles.len() - missing.len();
        if !missing.is_empty() {
            failures.push(format!(
                "pid {pid}: cycles {missing:?} printed, not recorded"
            ));
        }
        // A cycle recorded but never printed can only be the process's last one (it
        // exited between the end of mark termination and the print).
        let max_printed = cycles.iter().max().copied().unwrap_or(0);
        let extra: Vec<u32> = got
            .iter()
            .copied()
            .filter(|c| !cycles.contains(c) && *c != max_printed + 1)
            .collect();
        if !extra.is_empty() {
            failures.push(format!(
                "pid {pid}: cycles {extra:?} recorded, never printed"
            ));
        }
        let lost = trace.summary.as_ref().map_or(u64::MAX, |s| s.lost_events);
        if trace.first_type.as_deref() != Some("process") || lost != 0 {
            failures.push(format!(
                "pid {pid}: first record {:?}, lost events {lost} (summary: {})",
                trace.first_type,
                trace.summary.is_some()
            ));
        }
    }
    eprintln!(
        "--exe compile: {} compile processes, {total} cycles printed, {recorded} recorded",
        printed.len()
    );
    harness::assert_no_failures("--exe across go build -a", &failures, &child_diag(&tracer));
}

/// A PIE binary is mapped at its own address in each process: one set of probes serves
/// them all because the kernel takes each process's load bias at the hit (the probe's
/// run-time address minus its link-time one). Short lives, one forced cycle each; the
/// heap figures, read through the bias, must agree with each process's own gctrace.
#[test]
fn exe_traces_short_lived_pie_processes_from_their_first_cycle() {
    if !harness::integration_enabled() {
        return;
    }
    let _exclusive = harness::exclusive();
    let built = harness::build_gcload_as(&harness::newest_toolchain(), harness::GcBuild::PieCgo);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let gcload = dir.join("gcload-pie");
    fs::copy(&built, &gcload).unwrap();
    let out = dir.join("trace.ndjson");
    let mut tracer = watch_exe(&gcload, dir, &out);
    let mut runs = Vec::new();
    for i in 0..6 {
        let mut g = ChildGuard::spawn(
            Command::new(&gcload).env("GODEBUG", "gctrace=1").args([
                "-duration",
                "50ms",
                "-forced",
                "1",
                "-goroutines",
                "1",
            ]),
            dir,
            &format!("pie{i}"),
        );
        let status = g.wait_timeout(Duration::from_secs(60));
        assert!(status.is_some_and(|s| s.success()), "pie{i}: {status:?}");
        runs.push(g);
    }
    stop(&mut tracer, libc::SIGINT);
    let traces = harness::traces_by_pid(&fs::read_to_string(&out).unwrap_or_default());
    let mut failures = Vec::new();
    for g in &runs {
        let pid = u64::from(g.pid());
        let gctrace = harness::parse_gctrace(&g.stderr_text());
        let Some(trace) = traces.get(&pid) else {
            failures.push(format!("{} (pid {pid}) not traced", g.name));
            continue;
        };
        let printed: BTreeSet<u32> = gctrace.keys().copied().collect();
        let got: BTreeSet<u32> = trace.gc.iter().map(|r| r.cycle).collect();
        if printed.is_empty() || !printed.is_subset(&got) {
            failures.push(format!("pid {pid}: printed {printed:?}, recorded {got:?}"));
        }
        failures.extend(
            harness::check_heap_against_gctrace(trace, &gctrace)
                .into_iter()
                .map(|f| format!("pid {pid}: {f}")),
        );
    }
    harness::assert_no_failures("--exe on a PIE", &failures, &child_diag(&tracer));
}
