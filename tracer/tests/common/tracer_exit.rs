//! Ending a tracer that runs until told (`--exe`, `--all`, `--pid`) and judging its exit:
//! the fleet and `--exe` tests each wrote the same wait, assertion and diagnostics.

use std::thread;
use std::time::Duration;

use super::ChildGuard;

/// A child's stdout and stderr, as `diagnostics` shows them in a failure message.
pub fn diag(child: &ChildGuard) -> String {
    super::diagnostics(&child.stdout_text(), &child.stderr_text())
}

/// The tracer exits 0 within 30 s (its targets have ended, or it was told to stop).
pub fn assert_exits_ok(tracer: &mut ChildGuard) {
    let status = tracer.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "tracer: {status:?}\n{}",
        diag(tracer)
    );
}

/// `signal` to the tracer once the last process's records are in (1.5 s after it ended),
/// then it must exit 0 as `assert_exits_ok` says.
pub fn stop(tracer: &mut ChildGuard, signal: libc::c_int) {
    thread::sleep(Duration::from_millis(1500));
    tracer.signal(signal);
    assert_exits_ok(tracer);
}
