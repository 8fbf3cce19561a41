//! Record, replay, report and export on a real workload: the replay's JSON equals the live
//! JSON record for record, the report's figures equal the live summary, and the Perfetto
//! export has the structure trace viewers need. Needs root; skips unless
//! GCTRACE_INTEGRATION=1 (`cargo xtask test`).

use crate::harness;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The tracer under test, its subcommands and options to follow.
fn tracer() -> harness::TracerCmd {
    harness::TracerCmd::new()
}

/// The output of a run, whatever its status (the caller judges it).
fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("running gctrace-bpf")
}

/// The output of a run that must succeed; its stderr says why when it does not.
fn succeeded(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn replay_equals_live_and_report_equals_summary() {
    let Some(fx) = harness::gcload_fixture::start() else {
        return;
    };
    let live = fx.dir().join("live.json");
    let rec = fx.dir().join("run.gct");
    let mut cmd = tracer();
    cmd.args(["--format", "json", "--allocs", "sample", "--output"])
        .arg(&live)
        .arg("--record")
        .arg(&rec)
        .arg("--")
        .arg(&fx.gcload)
        .args([
            "-duration",
            "3s",
            "-forced",
            "2",
            "-readmemstats",
            "5",
            "-hotspot",
        ]);
    let run = cmd.run(fx.dir(), "traced");
    let diag = harness::diagnostics(&run.stdout, &run.stderr);
    assert!(run.status.success(), "{}\n{diag}", run.status);

    // Recordings are private to the user who made them.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&rec)
        .expect("recording")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = succeeded(tracer().args(["replay", "--format", "json"]).arg(&rec));
    let live = lines(&std::fs::read_to_string(&live).expect("live output"));
    let replayed = lines(&String::from_utf8_lossy(&out.stdout));
    let kinds: BTreeSet<String> = live
        .iter()
        .map(|r| r["type"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in [
        "gc",
        "stw",
        "alloc",
        "summary",
        "alloc_types",
        "alloc_sites",
    ] {
        assert!(
            kinds.contains(kind),
            "the live run has no {kind} record\n{diag}"
        );
    }
    for kind in &kinds {
        let pick = |v: &[Value]| -> Vec<Value> {
            v.iter()
                .filter(|r| r["type"] == kind.as_str())
                .cloned()
                .collect()
        };
        assert_eq!(pick(&live), pick(&replayed), "{kind} records differ");
    }

    let out = succeeded(tracer().args(["report", "--format", "json"]).arg(&rec));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let summary = live
        .iter()
        .find(|r| r["type"] == "summary")
        .expect("summary");
    for (r, s) in [
        ("cycles", "cycles"),
        ("pause_p50_ns", "pause_p50_ns"),
        ("pause_p99_ns", "pause_p99_ns"),
        ("pause_max_ns", "pause_max_ns"),
        ("alloc_bytes", "alloc_bytes"),
        ("lost_events", "lost_events"),
    ] {
        assert_eq!(report[r], summary[s], "report {r} vs summary {s}");
    }
    let stws: Vec<&Value> = live.iter().filter(|r| r["type"] == "stw").collect();
    assert_eq!(
        report["stop_the_world_pauses"].as_u64(),
        Some(stws.len() as u64)
    );
    // The report's percentiles against the stw records themselves, by the nearest-rank
    // method: within the histogram's 0.4 % bucket error, the maximum exactly.
    let mut durations: Vec<u64> = stws
        .iter()
        .map(|s| s["duration_ns"].as_u64().expect("duration_ns"))
        .collect();
    durations.sort_unstable();
    let nearest_rank = |p: f64| {
        let rank = ((p / 100.0 * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
        durations[rank - 1]
    };
    for (field, p) in [("pause_p50_ns", 50.0), ("pause_p99_ns", 99.0)] {
        let exact = nearest_rank(p) as f64;
        let got = report[field].as_u64().expect(field) as f64;
        assert!(
            (got - exact).abs() <= exact * 0.004 + 1.0,
            "report {field} {got} vs {exact} from the stw records"
        );
    }
    assert_eq!(report["pause_max_ns"].as_u64(), durations.last().copied());

    let perfetto = fx.dir().join("trace.json");
    succeeded(
        tracer()
            .arg("export")
            .arg(&rec)
            .arg("--perfetto")
            .arg(&perfetto),
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&perfetto).expect("export")).expect("JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents array");
    let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert!(!slices.is_empty());
    for e in &slices {
        assert!(e["ts"].as_f64().is_some_and(|t| t >= 0.0), "{e}");
        assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        assert!(
            e["pid"].is_u64() && e["tid"].is_u64() && e["name"].is_string(),
            "{e}"
        );
    }
    let gc_cycles = live.iter().filter(|r| r["type"] == "gc").count();
    let cycle_slices = slices
        .iter()
        .filter(|e| {
            e["cat"] == "gc"
                && e["name"]
                    .as_str()
                    .and_then(|n| n.strip_prefix("GC "))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(cycle_slices, gc_cycles);
    // Every stop is one slice on the stop-the-world track, in order, at its own time and
    // with its own length and reason (timestamps in µs from the first record).
    let t0 = live
        .iter()
        .filter_map(|r| match r["type"].as_str() {
            Some("gc") | Some("stw") => r["start_ns"].as_u64(),
            Some("alloc") => r["ts_ns"].as_u64(),
            _ => None,
        })
        .min()
        .expect("timed records");
    let stw_slices: Vec<&&Value> = slices.iter().filter(|e| e["cat"] == "stw").collect();
    assert_eq!(stw_slices.len(), stws.len());
    let us = |ns: u64| ns as f64 / 1000.0;
    for (e, s) in stw_slices.iter().zip(&stws) {
        let start = s["start_ns"].as_u64().expect("start_ns");
        let dur = s["duration_ns"].as_u64().expect("duration_ns");
        let close = |a: &Value, b: f64| a.as_f64().is_some_and(|a| (a - b).abs() < 1e-3);
        assert!(close(&e["ts"], us(start - t0)), "{e} vs {s}");
        assert!(close(&e["dur"], us(dur)), "{e} vs {s}");
        assert_eq!(e["name"], s["reason"], "{e} vs {s}");
        assert_eq!(e["args"]["cycle"], s["cycle"], "{e} vs {s}");
    }
    assert!(events.iter().any(|e| e["ph"] == "C" && e["name"] == "heap"));
}

#[test]
fn bad_recordings_fail_with_one_clear_line() {
    if !harness::integration_enabled() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.gct");
    std::fs::write(&junk, b"this is not a recording at all").expect("write");
    for sub in ["replay", "report"] {
        let out = output(tracer().arg(sub).arg(&junk));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{sub}: {err}");
        assert_eq!(err.lines().count(), 1, "{sub}: {err}");
        assert!(
            err.contains("is not a gctrace-bpf recording"),
            "{sub}: {err}"
        );
    }
    let missing = dir.path().join("missing.gct");
    let out = output(tracer().arg("replay").arg(&missing));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
