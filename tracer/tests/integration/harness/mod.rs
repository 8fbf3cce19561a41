//! Shared harness of the integration tests: they run the real tracer (eBPF, so root)
//! against the `gcload` workload built with each Go toolchain, and compare what it
//! reports with what the Go runtime itself says (GODEBUG=gctrace=1 and MemStats).
//!
//! `cargo xtask test` sets GCTRACE_INTEGRATION=1 and GCTRACE_GO_TOOLCHAINS
//! (`VERSION=PATH_TO_GO,...`, from `cargo xtask go-toolchains`). Without
//! GCTRACE_INTEGRATION the tests skip; with it, a missing prerequisite is a failure.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use std::{fs, thread};

/// Shared, as source, with xtask's observer bench (hence outside this tree).
#[path = "../../common/bpf_stats.rs"]
pub mod bpf_stats;
pub mod checks;
pub mod cycles;
pub mod exporters;
pub mod gcload_fixture;
pub mod gcload_run;
pub mod gctrace;
pub mod gobuild;
pub mod json_run;
#[macro_use]
pub mod live_checks;
pub mod memstats;
pub mod processes;
pub mod target_procs;
#[macro_use]
pub mod toolchains;
pub mod trace;
pub mod tracer_cmd;
pub mod tui_support;
pub mod workloads;

// The names the tests use, at the harness's root as when it was one file.
pub use checks::*;
pub use gcload_run::*;
pub use gctrace::*;
pub use memstats::*;
pub use processes::*;
pub use toolchains::*;
pub use trace::*;
pub use tracer_cmd::TracerCmd;
pub use workloads::*;

/// The tracer under test: this package's binary, or GCTRACE_TEST_TRACER_BIN when set
/// (to run the tests against an installed copy, or a fake that checks the harness).
pub fn tracer_bin() -> PathBuf {
    match std::env::var_os("GCTRACE_TEST_TRACER_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_gctrace-bpf")),
    }
}

/// The cargo target directory (the tracer binary is `<target>/<profile>/gctrace-bpf`).
pub fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_gctrace-bpf"));
    bin.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tracer/ has a parent")
        .to_path_buf()
}

/// Both parsers' self-tests (gc_cycles::harness_parsers runs them).
pub fn self_test_parsers() {
    gctrace::self_test();
    trace::self_test();
}

/// Why a live test does not run when the integration tests are not requested.
const NOT_REQUESTED: &str = "set GCTRACE_INTEGRATION=1 (cargo xtask test does)";

/// The one way a test says it could not run (or could not run a part of itself):
/// prints `skipped: REASON`, and when GCTRACE_SKIPPED_LOG names a file appends
/// `TEST_NAME<TAB>REASON` to it. The caller then returns. Why a log: a test that returns
/// early reports as passed, so without it a missing toolchain or tool would pass
/// unseen; `cargo xtask test` sets the variable and fails when the file is not empty.
pub fn skip(reason: &str) {
    println!("skipped: {reason}");
    // libtest runs each test on a thread named after it.
    let thread = thread::current();
    let test = thread.name().unwrap_or("(unnamed test)");
    let line = format!("{test}\t{}\n", reason.replace(['\t', '\n'], " "));
    if let Err(e) = append_to_log("GCTRACE_SKIPPED_LOG", &line) {
        panic!("appending to GCTRACE_SKIPPED_LOG: {e}");
    }
}

/// Appends `line` to the file the variable `var` names, if it names one. One write of a
/// short line to a file opened for appending: concurrent writers (the tests run in
/// parallel) cannot interleave within it.
fn append_to_log(var: &str, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let Some(log) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&log))
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", Path::new(&log).display())))
}

/// False (after [`skip`]) when the integration tests are not requested; panics when
/// they are but cannot run.
pub fn integration_enabled() -> bool {
    match std::env::var_os("GCTRACE_INTEGRATION") {
        Some(v) if !v.is_empty() && v != "0" => {
            // SAFETY: geteuid has no preconditions.
            let euid = unsafe { libc::geteuid() };
            assert_eq!(
                euid, 0,
                "GCTRACE_INTEGRATION is set but the tests do not run as root (euid {euid}); \
                 the tracer loads eBPF programs"
            );
            share_host();
            true
        }
        _ => {
            skip(NOT_REQUESTED);
            false
        }
    }
}

/// The host, shared by every live test of this binary (each feature used to be a binary
/// of its own, run one after another). A live test shares it from [`integration_enabled`]
/// on (a read lock, held by its thread until the test ends); a traced run that times
/// anything takes it whole with [`exclusive`] (the write lock): then no other live test,
/// not even a Go build or a binary analysis of another feature, runs beside it.
static HOST: RwLock<()> = RwLock::new(());

thread_local! {
    /// This test thread's share of [`HOST`], dropped when the test's thread ends.
    static SHARED: RefCell<Option<RwLockReadGuard<'static, ()>>> = const { RefCell::new(None) };
    /// Whether this thread holds [`HOST`] whole (then it needs no share).
    static WHOLE: Cell<bool> = const { Cell::new(false) };
    /// This live test's time on the host, logged when its thread ends.
    static TIMING: RefCell<Option<Timing>> = const { RefCell::new(None) };
}

/// The variable naming the file each live test appends `TEST_NAME<TAB>SECONDS` to when it
/// ends (`cargo xtask test` sets it and prints the slowest: the CI budget is spent there).
const TIMES_LOG: &str = "GCTRACE_TEST_TIMES_LOG";

/// A live test's time on the host: from its first share of [`HOST`] to its end, less the
/// time it waited for the host (so that tests queued behind an exclusive one are not
/// charged for it).
struct Timing {
    start: Instant,
    waited: Duration,
}

impl Drop for Timing {
    fn drop(&mut self) {
        let busy = self.start.elapsed().saturating_sub(self.waited);
        let thread = thread::current();
        let test = thread.name().unwrap_or("(unnamed test)");
        let line = format!("{test}\t{:.1}\n", busy.as_secs_f64());
        // Best effort: a lost line only thins the report (and a panic in a thread-local
        // destructor would abort the whole test binary).
        let _ = append_to_log(TIMES_LOG, &line);
    }
}

/// Waits for `lock` and counts the wait as this test's waiting (see [`Timing`]).
fn timed_wait<G>(lock: impl FnOnce() -> G) -> G {
    let asked = Instant::now();
    let guard = lock();
    let waited = asked.elapsed();
    TIMING.with(|t| {
        let mut t = t.borrow_mut();
        match t.as_mut() {
            Some(timing) => timing.waited += waited,
            None => {
                *t = Some(Timing {
                    start: Instant::now(),
                    waited: Duration::ZERO,
                })
            }
        }
    });
    guard
}

/// This test thread shares the host until it ends (see [`HOST`]).
fn share_host() {
    if WHOLE.with(Cell::get) {
        return;
    }
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = Some(timed_wait(|| {
                HOST.read().unwrap_or_else(|poisoned| poisoned.into_inner())
            }));
        }
    });
}

/// The host to this test alone while it lives: see [`exclusive`].
pub struct Exclusive {
    /// None when this thread held the host whole already (an inner [`exclusive`]).
    whole: Option<RwLockWriteGuard<'static, ()>>,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if self.whole.take().is_some() {
            WHOLE.with(|w| w.set(false));
        }
    }
}

/// Serialises the traced runs: the timing comparisons hold when nothing else of the
/// suite fights over the CPUs (see [`HOST`]). Re-entrant: a test that holds the host
/// (e.g. while it waits for a run other tests share) may make the run itself.
pub fn exclusive() -> Exclusive {
    if WHOLE.with(Cell::get) {
        return Exclusive { whole: None };
    }
    // A share would deadlock the write lock: give it up first.
    SHARED.with(|s| s.borrow_mut().take());
    let whole = timed_wait(|| {
        HOST.write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    });
    WHOLE.with(|w| w.set(true));
    Exclusive { whole: Some(whole) }
}
