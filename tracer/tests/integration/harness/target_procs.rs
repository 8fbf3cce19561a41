//! The processes of the tests that run the tracer beside live targets (safety, multi-target,
//! fleet, `--exe`): the tracer writing JSON to a file, the machine to oneself with a
//! scratch directory, and a process that must exit 0 (or be stopped and then exit 0). One home for these, so the tests
//! read as the steps they check rather than as the same setup written again.

use std::path::Path;
use std::time::Duration;

use super::{diagnostics, exclusive, integration_enabled, ChildGuard, TracerCmd};

/// The tracer with `--format json --output OUT`; the caller adds its target (`--pid`,
/// `--exe`, or `-- PROGRAM ARGS` last) and any other flag.
pub fn json_tracer(out: &Path) -> TracerCmd {
    let mut cmd = TracerCmd::new();
    cmd.json_to(out);
    cmd
}

/// The start of a test with real targets: None when the integration tests are not
/// requested (the test returns), else the lock that keeps the other traced runs of this
/// binary off the CPUs and a scratch directory. Bind both (`let Some((_exclusive, dir))`):
/// the directory goes first when they drop, as when they were two `let`s.
pub fn exclusive_tempdir() -> Option<(super::Exclusive, tempfile::TempDir)> {
    if !integration_enabled() {
        return None;
    }
    let lock = exclusive();
    Some((lock, tempfile::tempdir().expect("tempdir")))
}

/// A child's name, stdout and stderr for a failure message.
pub fn child_diag(child: &ChildGuard) -> String {
    format!(
        "--- {} ---\n{}",
        child.name,
        diagnostics(&child.stdout_text(), &child.stderr_text())
    )
}

/// Waits at most `timeout` for `child` to exit and fails the test unless it exited 0;
/// `context` (when it ended) and the child's output go in the message.
pub fn assert_exits_ok(child: &mut ChildGuard, timeout: Duration, context: &str) {
    let status = child.wait_timeout(timeout);
    assert!(
        status.is_some_and(|s| s.success()),
        "{} ended with {status:?} {context}\n{}",
        child.name,
        child_diag(child)
    );
}

/// Sends `child` SIGTERM and fails the test unless it then exits 0 within `timeout`.
pub fn terminate_cleanly(child: &mut ChildGuard, timeout: Duration) {
    child.signal(libc::SIGTERM);
    assert_exits_ok(child, timeout, "on SIGTERM");
}

/// For a tracer that runs until told (`--exe`, `--all`, `--pid`): `signal` to it once
/// the last process's records are in (1.5 s after it ended), then it must exit 0 within
/// 30 s.
pub fn stop(tracer: &mut ChildGuard, signal: libc::c_int) {
    std::thread::sleep(Duration::from_millis(1500));
    tracer.signal(signal);
    assert_exits_ok(
        tracer,
        Duration::from_secs(30),
        &format!("on signal {signal}"),
    );
}
