//! What watching costs the traced program, counted by the kernel rather than by the
//! tracer: with BPF run-time statistics on (`BPF_ENABLE_STATS`, held by this test while it
//! runs), `/proc/TRACER/fdinfo/FD` of each of the tracer's BPF programs shows how many
//! times the kernel ran it (`run_cnt`): one per uprobe hit. Against the GC cycles the
//! workload's own gctrace lines count over the same window, on a steady workload (no
//! ReadMemStats, no runtime.GC: only the GC's own stops). Needs root; skips unless
//! GCTRACE_INTEGRATION=1.

use crate::harness;
use crate::harness::bpf_stats;

use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use bpf_stats::{prog_stats, StatsOn};
use harness::Toolchain;

/// One test per probe scheme, not per release: what is probed, and so what a cycle
/// costs, changes where `stopTheWorldWithSema` and `startTheWorldWithSema` changed
/// (1.19–1.20 no reason codes, 1.21 a reason argument, 1.22 the `worldStop` pair,
/// 1.23+ its present signature); 1.24–1.26 probe exactly what 1.23 and 1.27 do.
mod default_mode_at_most_two_hits_per_cycle {
    use super::*;
    crate::per_toolchain!(default_mode_hits {
        go1_19 => "1.19",
        go1_21 => "1.21",
        go1_22 => "1.22",
        go1_23 => "1.23",
        go1_27 => "1.27",
    });
}

/// The last `gc N` the workload printed so far.
fn last_cycle(stderr: &str) -> Option<u32> {
    stderr
        .lines()
        .rev()
        .find_map(harness::parse_gctrace_line)
        .map(|l| l.cycle)
}

/// Probe hits per GC cycle while `gctrace-bpf EXTRA --pid W` traces a steady gcload,
/// the hits and the cycles (printed too).
fn hits_per_cycle(toolchain: &Toolchain, extra: &[&str]) -> (f64, u64, u32) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let _exclusive = harness::exclusive();
    let gcload = harness::build_gcload(toolchain);
    let _stats = StatsOn::enable().unwrap_or_else(|e| panic!("BPF_ENABLE_STATS failed: {e}"));
    let mut workload =
        harness::live_checks::spawn_forever(&gcload, dir, &format!("workload{}", extra.len()));
    thread::sleep(Duration::from_millis(500));
    let mut tracer = harness::TracerCmd::new()
        .args(extra)
        .arg("--pid")
        .arg(workload.pid().to_string())
        .args([
            "--format",
            "json",
            "--output",
            "/dev/null",
            "--duration",
            "8",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gctrace-bpf");
    let tracer_pid = tracer.id();
    // Wait until every program is attached and has run (the first GC cycle's hit).
    let deadline = Instant::now() + Duration::from_secs(5);
    while prog_stats(tracer_pid).run_cnt == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(300));
    let before = prog_stats(tracer_pid);
    let cycle0 = last_cycle(&workload.stderr_text());
    thread::sleep(Duration::from_secs(4));
    let after = prog_stats(tracer_pid);
    let cycle1 = last_cycle(&workload.stderr_text());
    let _ = tracer.kill();
    let _ = tracer.wait();
    harness::live_checks::stop_forever(&mut workload, "the workload, after the trace,");
    let (Some(c0), Some(c1)) = (cycle0, cycle1) else {
        panic!(
            "no gctrace lines from the workload\n{}",
            workload.stderr_text()
        );
    };
    assert!(before.programs > 0, "the tracer holds no BPF program");
    let cycles = c1.saturating_sub(c0);
    assert!(
        cycles >= 20,
        "only {cycles} GC cycles in 4 s: not a steady workload"
    );
    let hits = after.run_cnt - before.run_cnt;
    let per_cycle = hits as f64 / f64::from(cycles);
    let mode = if extra.is_empty() {
        "default mode".to_owned()
    } else {
        extra.join(" ")
    };
    println!(
        "Go {}: {mode} {hits} probe hits over {cycles} GC cycles = {per_cycle:.2}/cycle",
        toolchain.version
    );
    (per_cycle, hits, cycles)
}

fn default_mode_hits(toolchain: &Toolchain) {
    let (per_cycle, hits, cycles) = hits_per_cycle(toolchain, &[]);
    assert!(
        per_cycle <= 2.0,
        "Go {}: {per_cycle:.2} probe hits per GC cycle ({hits} over {cycles}), counted by the \
         kernel; the default mode allows 2",
        toolchain.version
    );
    assert!(hits > 0, "no probe hit at all: the count is not ours");
}

fn every_stop_hits(toolchain: &Toolchain) {
    let (per_cycle, _, _) = hits_per_cycle(toolchain, &["--every-stop"]);
    assert!(
        per_cycle > 3.0,
        "--every-stop: {per_cycle:.2} hits per cycle; expected at least 4 (two stops, two \
         hits each): the kernel count does not see the probes"
    );
}

per_toolchain!(every_stop_hits {
    /// The count can fail: probing every stop takes more than two hits per cycle.
    every_stop_mode_counts_more => newest,
});
