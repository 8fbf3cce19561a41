//! The processes a test starts: spawned in their own process group, output captured to
//! files, killed when the test ends or a bound passes.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::gctrace::parse_gctrace_line;

/// Kills (SIGKILL, whole process group) a child that is still running when dropped,
/// so a failing test leaves no workload behind.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    done: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` in its own process group with stdout and stderr going to
    /// `<dir>/<name>.stdout` and `<dir>/<name>.stderr`.
    pub fn spawn(cmd: &mut Command, dir: &Path, name: &str) -> ChildGuard {
        use std::os::unix::process::CommandExt;
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout file"))
            .stderr(File::create(&stderr).expect("create stderr file"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({cmd:?}): {e}"));
        ChildGuard {
            child,
            name: name.to_owned(),
            stdout,
            stderr,
            done: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// None while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.done.is_none() {
            self.done = self.child.try_wait().expect("try_wait");
        }
        self.done
    }

    /// Waits at most `timeout`; None (after killing it) when it did not exit in time.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain syscall on a pid we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.child.id());
    }

    fn kill(&mut self) {
        if self.done.is_some() {
            return;
        }
        // SAFETY: the child leads its own process group (process_group(0)).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.kill();
        self.done = self.child.wait().ok();
    }

    pub fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct RunResult {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion (stdout/stderr to files in `dir`), failing the test when
/// it takes longer than `timeout`.
pub fn run(cmd: &mut Command, dir: &Path, name: &str, timeout: Duration) -> RunResult {
    let mut child = ChildGuard::spawn(cmd, dir, name);
    let status = child.wait_timeout(timeout);
    let stdout = child.stdout_text();
    let stderr = child.stderr_text();
    let Some(status) = status else {
        panic!(
            "{name} did not finish within {timeout:?} and was killed: {cmd:?}\n{}",
            diagnostics(&stdout, &stderr)
        );
    };
    RunResult {
        status,
        stdout,
        stderr,
    }
}

/// stdout and stderr for a failure message, without the (many) gctrace lines.
pub fn diagnostics(stdout: &str, stderr: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "--- stdout ---\n{}", tail(stdout, 40));
    let gctrace = stderr
        .lines()
        .filter(|l| parse_gctrace_line(l).is_some())
        .count();
    let rest: Vec<&str> = stderr
        .lines()
        .filter(|l| parse_gctrace_line(l).is_none())
        .collect();
    let _ = writeln!(
        out,
        "--- stderr ({gctrace} gctrace lines omitted) ---\n{}",
        tail(&rest.join("\n"), 80)
    );
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "[... {skip} lines ...]");
    }
    out.push_str(&all[skip..].join("\n"));
    out
}

/// Generous bound for one traced run (start-up symbol reading and eBPF loading
/// included); the workload itself runs a few seconds.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
