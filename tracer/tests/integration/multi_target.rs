//! Several targets in one run, end to end: `--exe` picks up a second instance of a
//! program started after the tracer, and `--pid` given twice traces two processes until
//! both have exited. Each process's records are judged against that process's own
//! GODEBUG=gctrace=1 lines. Needs root; skips unless GCTRACE_INTEGRATION=1.

use crate::harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use harness::target_procs::{
    assert_exits_ok, child_diag, exclusive_tempdir, json_tracer, terminate_cleanly,
};
use harness::{ChildGuard, GcTraceLine, Trace};

/// Generous: attaching reads the binary and loads the kernel programs, on a shared
/// two-core machine.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// gcload copied into `dir`: a file of its own (its own inode), so `--exe` cannot pick
/// up the gcload processes other tests run at the same time.
fn private_gcload(dir: &Path) -> PathBuf {
    let built = harness::build_gcload(&harness::newest_toolchain());
    let copy = dir.join("gcload");
    std::fs::copy(&built, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    copy
}

/// gcload with the runtime's own gctrace on its stderr.
fn workload(gcload: &Path, dir: &Path, name: &str, args: &[&str]) -> ChildGuard {
    ChildGuard::spawn(
        Command::new(gcload).env("GODEBUG", "gctrace=1").args(args),
        dir,
        name,
    )
}

/// Waits until the tracer's stderr contains `text`; false after `timeout`.
fn wait_for_stderr(tracer: &mut ChildGuard, text: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if tracer.stderr_text().contains(text) {
            return true;
        }
        if tracer.try_wait().is_some() {
            return tracer.stderr_text().contains(text);
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Fails the test unless the tracer's stderr comes to contain `text` within `timeout`;
/// `failure` says what the tracer then did not do.
fn assert_tracer_says(tracer: &mut ChildGuard, text: &str, timeout: Duration, failure: &str) {
    assert!(
        wait_for_stderr(tracer, text, timeout),
        "{failure}\n{}",
        child_diag(tracer)
    );
}

/// Fails the test if the tracer ends within the next 1.5 s (a target's exit must not end
/// it while another still runs); `failure` says which ending that would be.
fn assert_tracer_stays(tracer: &mut ChildGuard, failure: &str) {
    thread::sleep(Duration::from_millis(1500));
    assert!(
        tracer.try_wait().is_none(),
        "{failure}\n{}",
        child_diag(tracer)
    );
}

/// One process's records against its own gctrace lines. The tracer sees the cycles
/// from its attach on: every gctrace line from the first cycle it reported up to
/// `last` (the last one it reported, or with `to_exit` the process's last line: it
/// exited while traced, so nothing may be missing at the end) has its gc record, and
/// no record is of a cycle the runtime did not print; heap, goal and GOMAXPROCS agree
/// as in the single-target tests; the records start with `process` and end with
/// `summary`, without lost events.
fn check_process(
    who: &str,
    trace: Option<&Trace>,
    gctrace: &BTreeMap<u32, GcTraceLine>,
    to_exit: bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    let Some(trace) = trace else {
        return vec![format!("{who}: no record carries its pid")];
    };
    if !trace.errors.is_empty() {
        failures.push(format!("{who}: malformed records: {:?}", trace.errors));
    }
    if trace.first_type.as_deref() != Some("process") {
        failures.push(format!("{who}: first record is {:?}", trace.first_type));
    }
    if trace.last_type.as_deref() != Some("summary") {
        failures.push(format!("{who}: last record is {:?}", trace.last_type));
    }
    match &trace.summary {
        Some(s) if s.lost_events != 0 => {
            failures.push(format!("{who}: {} events lost", s.lost_events))
        }
        Some(_) => {}
        None => failures.push(format!("{who}: no summary")),
    }
    if gctrace.is_empty() {
        failures.push(format!("{who}: printed no gctrace line"));
        return failures;
    }
    let cycles: Vec<u32> = trace.gc.iter().map(|r| r.cycle).collect();
    let reported: BTreeSet<u32> = cycles.iter().copied().collect();
    if reported.len() != cycles.len() {
        failures.push(format!("{who}: cycles reported more than once: {cycles:?}"));
    }
    let (Some(&first), Some(&last_reported)) = (reported.first(), reported.last()) else {
        failures.push(format!(
            "{who}: no gc record (gctrace printed cycles {:?}..={:?})",
            gctrace.keys().next(),
            gctrace.keys().next_back()
        ));
        return failures;
    };
    let last = if to_exit {
        gctrace.keys().next_back().copied().unwrap_or(last_reported)
    } else {
        last_reported
    };
    let window: BTreeMap<u32, GcTraceLine> = gctrace
        .range(first..=last)
        .map(|(c, l)| (*c, l.clone()))
        .collect();
    let missing: Vec<u32> = window
        .keys()
        .copied()
        .filter(|c| !reported.contains(c))
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{who}: {} of the {} cycles gctrace printed in {first}..={last} have no gc \
             record: {missing:?}",
            missing.len(),
            window.len()
        ));
    }
    // A process that exits may complete one more cycle than it prints: the runtime
    // prints the line after restarting the world, and exit can come first.
    let unprinted_last = gctrace
        .keys()
        .next_back()
        .map(|c| c + 1)
        .filter(|_| to_exit);
    let unknown: Vec<u32> = reported
        .iter()
        .copied()
        .filter(|c| !gctrace.contains_key(c) && Some(*c) != unprinted_last)
        .collect();
    if !unknown.is_empty() {
        failures.push(format!(
            "{who}: records of cycles gctrace never printed: {unknown:?}"
        ));
    }
    if window.len() < 3 {
        failures.push(format!(
            "{who}: only {} cycles traced ({first}..={last}); too few to judge",
            window.len()
        ));
    }
    failures.extend(
        harness::check_heap_against_gctrace(trace, &window)
            .into_iter()
            .map(|f| format!("{who}: {f}")),
    );
    failures
}

/// The records in `out` by pid, and what is wrong with them: they must carry exactly the
/// pids of `procs` (`(who, process, to_exit)`), and each process's records must pass
/// `check_process` against the gctrace lines on its own stderr.
fn check_processes(
    out: &Path,
    procs: &[(&str, &ChildGuard, bool)],
) -> (BTreeMap<u64, Trace>, Vec<String>) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let traces = harness::traces_by_pid(&text);
    let mut expected: Vec<u64> = procs.iter().map(|(_, p, _)| u64::from(p.pid())).collect();
    expected.sort_unstable();
    let pids: Vec<u64> = traces.keys().copied().collect();
    let mut failures = Vec::new();
    if pids != expected {
        failures.push(format!(
            "records carry pids {pids:?}; expected exactly {expected:?}"
        ));
    }
    for (who, process, to_exit) in procs {
        failures.extend(check_process(
            who,
            traces.get(&u64::from(process.pid())),
            &harness::parse_gctrace(&process.stderr_text()),
            *to_exit,
        ));
    }
    (traces, failures)
}

fn last_gc_end(trace: Option<&Trace>) -> u64 {
    trace
        .and_then(|t| t.gc.iter().map(|g| g.end_ns).max())
        .unwrap_or(0)
}

#[test]
fn exe_picks_up_a_process_started_later() {
    let Some((_exclusive, tmp)) = exclusive_tempdir() else {
        return;
    };
    let gcload = private_gcload(tmp.path());
    let out = tmp.path().join("trace.ndjson");

    let mut first = workload(&gcload, tmp.path(), "first", &["-forever"]);
    thread::sleep(Duration::from_millis(500));
    let mut tracer = ChildGuard::spawn(
        json_tracer(&out).arg("--exe").arg(&gcload),
        tmp.path(),
        "tracer",
    );
    assert_tracer_says(
        &mut tracer,
        &format!("tracing pid {}", first.pid()),
        ATTACH_TIMEOUT,
        "the tracer did not pick up the running instance",
    );

    // The second instance starts after the tracer, runs a few seconds and exits on its
    // own while traced; the first must be traced on regardless.
    let mut second = workload(&gcload, tmp.path(), "second", &["-duration", "4s"]);
    assert_tracer_says(
        &mut tracer,
        &format!("tracing pid {}", second.pid()),
        ATTACH_TIMEOUT,
        "the tracer did not pick up the instance started after it",
    );
    assert_exits_ok(&mut second, Duration::from_secs(60), "on its own");
    assert_tracer_says(
        &mut tracer,
        &format!("pid {} exited", second.pid()),
        Duration::from_secs(10),
        "the tracer did not report the second instance's exit",
    );
    // The tracer waits for more processes; the first is still traced.
    assert_tracer_stays(
        &mut tracer,
        "the tracer ended when one of its processes exited",
    );
    terminate_cleanly(&mut tracer, Duration::from_secs(30));
    // The first instance outlives the tracer's detach.
    assert!(first.try_wait().is_none(), "the first instance died");
    terminate_cleanly(&mut first, Duration::from_secs(30));

    let (traces, mut failures) = check_processes(
        &out,
        &[
            ("first (running before the tracer)", &first, false),
            (
                "second (started after the tracer, exited while traced)",
                &second,
                true,
            ),
        ],
    );
    // The first was traced on after the second had exited.
    let (a, b) = (u64::from(first.pid()), u64::from(second.pid()));
    if last_gc_end(traces.get(&a)) <= last_gc_end(traces.get(&b)) {
        failures.push("no cycle of the first instance after the second exited".into());
    }
    harness::assert_no_failures("--exe", &failures, &child_diag(&tracer));
}

#[test]
fn pid_given_twice_traces_both_until_both_exit() {
    let Some((_exclusive, tmp)) = exclusive_tempdir() else {
        return;
    };
    let gcload = private_gcload(tmp.path());
    let out = tmp.path().join("trace.ndjson");
    let gctrace_out = tmp.path().join("trace.txt");

    let mut long = workload(&gcload, tmp.path(), "long", &["-forever"]);
    // Ended by the test once traced (SIGTERM; it exits 0): a fixed lifetime could run out
    // before a loaded host has analysed and attached the first target.
    let mut short = workload(&gcload, tmp.path(), "short", &["-forever"]);
    // Not a Go program: reported in one line, and the others are traced anyway.
    let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("60"), tmp.path(), "sleep");
    thread::sleep(Duration::from_millis(300));
    let pids = format!("{},{}", long.pid(), short.pid());
    let mut tracer = ChildGuard::spawn(
        json_tracer(&out)
            .args(["--pid", &pids, "--pid"])
            .arg(sleeper.pid().to_string()),
        tmp.path(),
        "tracer",
    );
    // A second tracer on the same two, in the gctrace format: its lines name their pid.
    let mut text_tracer = ChildGuard::spawn(
        harness::TracerCmd::new()
            .args(["--pid", &pids, "--format", "gctrace", "--output"])
            .arg(&gctrace_out),
        tmp.path(),
        "text-tracer",
    );
    for t in [&mut tracer, &mut text_tracer] {
        for pid in [long.pid(), short.pid()] {
            assert_tracer_says(
                t,
                &format!("tracing pid {pid}"),
                ATTACH_TIMEOUT,
                &format!("pid {pid} not traced"),
            );
        }
    }
    // A few seconds traced by both (dozens of cycles), then the short one ends.
    thread::sleep(Duration::from_secs(3));
    terminate_cleanly(&mut short, Duration::from_secs(30));
    assert_tracer_stays(
        &mut tracer,
        "the tracer ended while one of its --pid targets still runs",
    );
    terminate_cleanly(&mut long, Duration::from_secs(30));
    // Every --pid target has exited: the run ends by itself.
    for t in [&mut tracer, &mut text_tracer] {
        assert_exits_ok(t, Duration::from_secs(30), "after every target exited");
    }
    let _ = sleeper.wait_timeout(Duration::ZERO);

    let stderr = tracer.stderr_text();
    let mut failures = Vec::new();
    let not_traced: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("not traced"))
        .collect();
    if not_traced.len() != 1
        || !not_traced[0].contains(&format!("pid {}", sleeper.pid()))
        || !not_traced[0].contains("is not a Go program")
    {
        failures.push(format!(
            "expected one line saying pid {} is not a Go program and not traced, got \
             {not_traced:?}",
            sleeper.pid()
        ));
    }
    // Both exited while traced: every cycle to the end is there.
    let (_, process_failures) =
        check_processes(&out, &[("long", &long, true), ("short", &short, true)]);
    failures.extend(process_failures);

    // gctrace text: every line names one of the two pids, and without its prefix a gc
    // line is that process's own line for the cycle (heap, goal, GOMAXPROCS and the
    // forced flag to the digit; the timings are the single-target tests' business).
    let text = std::fs::read_to_string(&gctrace_out).unwrap_or_default();
    let own: BTreeMap<u32, BTreeMap<u32, GcTraceLine>> = [
        (long.pid(), harness::parse_gctrace(&long.stderr_text())),
        (short.pid(), harness::parse_gctrace(&short.stderr_text())),
    ]
    .into_iter()
    .collect();
    let mut per_pid: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    let mut unlike: Vec<String> = Vec::new();
    for line in text.lines() {
        let body = line.strip_prefix("# ").unwrap_or(line);
        let Some((pid, rest)) = body
            .strip_prefix("[pid ")
            .and_then(|r| r.split_once("] "))
            .and_then(|(p, rest)| Some((p.parse::<u32>().ok()?, rest)))
        else {
            failures.push(format!("gctrace line without a [pid N] prefix: {line}"));
            continue;
        };
        let Some(runtime) = own.get(&pid) else {
            failures.push(format!("gctrace line of an unknown pid: {line}"));
            continue;
        };
        if line.starts_with('#') {
            continue;
        }
        let entry = per_pid.entry(pid).or_default();
        entry.0 += 1;
        let agrees = harness::parse_gctrace_line(rest).is_some_and(|t| {
            runtime.get(&t.cycle).is_some_and(|r| {
                (t.heap_mb, t.goal_mb, t.procs, t.forced)
                    == (r.heap_mb, r.goal_mb, r.procs, r.forced)
            })
        });
        if agrees {
            entry.1 += 1;
        } else if unlike.len() < 10 {
            unlike.push(line.to_owned());
        }
    }
    for (pid, (lines, agreeing)) in &per_pid {
        if *lines < 3 || agreeing * 100 < lines * harness::AGREEMENT_PCT {
            failures.push(format!(
                "pid {pid}: {agreeing} of {lines} gctrace lines agree with the runtime's; \
                 lines unlike it:\n  {}",
                unlike.join("\n  ")
            ));
        }
    }
    if per_pid.len() != 2 {
        failures.push(format!("gctrace lines of {} pids, not 2", per_pid.len()));
    }
    harness::assert_no_failures("--pid twice", &failures, &child_diag(&tracer));
}
