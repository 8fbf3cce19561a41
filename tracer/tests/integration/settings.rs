//! GOGC, GOMEMLIMIT and GOMAXPROCS known without a GC cycle: read from the target's
//! memory when the probes go on (the `process` record), kept current (`settings`
//! records), kept in the recording, and in `report` of a recording with no cycle. The
//! oracle is the environment the program was started with (which its runtime parses) and,
//! for GOMAXPROCS, the runtime's own gctrace `N P`. Needs root; skips unless
//! GCTRACE_INTEGRATION=1 (`cargo xtask test`).

use crate::harness;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use harness::json_run::{self, JsonRun};
use harness::ChildGuard;
use serde_json::Value;

const GOGC: i64 = 50;
const GOMEMLIMIT: &str = "1GiB";
const LIMIT_BYTES: i64 = 1 << 30;
const PROCS: u64 = 2;

fn settings_env(cmd: &mut Command) -> &mut Command {
    cmd.env("GOGC", GOGC.to_string())
        .env("GOMEMLIMIT", GOMEMLIMIT)
        .env("GOMAXPROCS", PROCS.to_string())
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_type<'a>(records: &'a [Value], ty: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == ty).collect()
}

fn assert_settings(what: &str, r: &Value, diag: &str) {
    assert_eq!(r["gogc"].as_i64(), Some(GOGC), "{what} gogc: {r}\n{diag}");
    assert_eq!(
        r["memory_limit_bytes"].as_i64(),
        Some(LIMIT_BYTES),
        "{what} memory_limit_bytes: {r}\n{diag}"
    );
    assert_eq!(
        r["gomaxprocs"].as_u64(),
        Some(PROCS),
        "{what} gomaxprocs: {r}\n{diag}"
    );
}

/// An idle program attached by `--pid`: no cycle, no stop, yet the process record, a
/// settings record, and the report of the recording all carry its settings.
#[test]
fn idle_program_settings_at_attach_in_json_recording_and_report() {
    let Some(fx) = harness::gcload_fixture::start() else {
        return;
    };
    let mut workload = ChildGuard::spawn(
        settings_env(&mut Command::new(&fx.gcload)).args(["-duration", "200ms", "-idle"]),
        fx.dir(),
        "workload",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !workload.stdout_text().contains("gcload done") {
        assert!(
            Instant::now() < deadline && workload.try_wait().is_none(),
            "gcload -idle did not reach its done line\n{}",
            harness::diagnostics(&workload.stdout_text(), &workload.stderr_text())
        );
        thread::sleep(Duration::from_millis(50));
    }
    let out = fx.dir().join("trace.ndjson");
    let rec = fx.dir().join("idle.gct");
    let mut cmd = harness::TracerCmd::new();
    cmd.arg("--pid")
        .arg(workload.pid().to_string())
        .args(["--format", "json", "--duration", "2", "--output"])
        .arg(&out)
        .arg("--record")
        .arg(&rec);
    let JsonRun { run, text, diag } = json_run::run(&mut cmd, fx.dir(), "tracer", &out);
    assert!(
        run.status.success(),
        "tracer failed: {}\n{diag}",
        run.status
    );
    workload.signal(libc::SIGTERM);
    let records = lines(&text);
    assert!(
        of_type(&records, "gc").is_empty(),
        "an idle program ran a cycle\n{diag}"
    );
    let process = records.first().expect("a first record");
    assert_eq!(process["type"], "process", "{diag}");
    assert_settings("process record", process, &diag);
    let settings = of_type(&records, "settings");
    assert!(!settings.is_empty(), "no settings record\n{diag}");
    for s in &settings {
        assert_settings("settings record", s, &diag);
    }

    let out = harness::TracerCmd::new()
        .args(["report", "--format", "json"])
        .arg(&rec)
        .output()
        .expect("running gctrace-bpf report");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report JSON: {e}\n{}",
            harness::diagnostics(
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr)
            )
        )
    });
    assert_eq!(report["cycles"].as_u64(), Some(0), "{report}");
    assert_settings("report", &report, &format!("{report}"));
    let text_report = harness::TracerCmd::new()
        .arg("report")
        .arg(&rec)
        .output()
        .expect("running gctrace-bpf report");
    let text_report = String::from_utf8_lossy(&text_report.stdout);
    assert!(
        text_report.contains(&format!("GOGC {GOGC}")) && !text_report.contains("GOGC ?"),
        "the text report does not say GOGC {GOGC}:\n{text_report}"
    );
}

/// Launch mode: the settings cannot be read before the runtime sets them (the process
/// record says null, not 0), and a settings record with the program's values follows;
/// GOMAXPROCS agrees with the runtime's own gctrace `N P`.
#[test]
fn launched_program_settings_record_follows() {
    let Some(fx) = harness::gcload_fixture::start() else {
        return;
    };
    let out = fx.dir().join("trace.ndjson");
    let mut cmd = harness::TracerCmd::new();
    settings_env(&mut cmd)
        .env("GODEBUG", "gctrace=1")
        .args(["--format", "json", "--output"])
        .arg(&out)
        .arg("--")
        .arg(&fx.gcload)
        .args(["-duration", "2s"]);
    let JsonRun { run, text, diag } = json_run::run(&mut cmd, fx.dir(), "traced", &out);
    assert!(run.status.success(), "traced run failed\n{diag}");
    let records = lines(&text);
    let process = records.first().expect("a first record");
    for key in ["gogc", "memory_limit_bytes"] {
        assert!(
            process[key].is_null(),
            "process record {key} before the runtime started must be null: {process}\n{diag}"
        );
    }
    let settings = of_type(&records, "settings");
    assert!(!settings.is_empty(), "no settings record\n{diag}");
    assert_settings("settings record", settings[0], &diag);
    let gctrace = harness::parse_gctrace(&run.stderr);
    assert!(!gctrace.is_empty(), "no gctrace lines\n{diag}");
    assert!(
        gctrace.values().all(|l| l.procs == Some(PROCS as u32)),
        "gctrace does not say {PROCS} P on every line\n{diag}"
    );
}
