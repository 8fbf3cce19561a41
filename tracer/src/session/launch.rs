//! Starting a command under tracing, stopped at its first instruction.
//!
//! The child asks to be traced (`PTRACE_TRACEME`, from `std::process::Command`'s
//! `pre_exec` hook, between fork and exec) and execs; the kernel stops it right after
//! `execve` succeeds, before any of its code runs. The tracer then analyses
//! `/proc/PID/exe`, attaches its probes and lets the child go ([`Launched::resume`]), so
//! not one GC cycle is missed. ptrace is used for nothing else: the child is detached
//! before it runs.
//!
//! All of this must happen on one thread (ptrace requests are only accepted from the
//! tracing thread), before any async runtime starts threads.

use crate::sys;
use std::{
    ffi::OsString,
    os::unix::{ffi::OsStrExt, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no command given")]
    Empty,
    #[error("cannot start {cmd}")]
    Start {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {cmd}: it exited before its first instruction ({status})")]
    Died { cmd: String, status: String },
}

/// A child stopped right after exec, not yet running.
#[derive(Debug)]
pub struct Launched {
    pub pid: u32,
    resumed: bool,
}

/// Resolve `cmd` through PATH the way a shell would (names with a slash are used as is).
fn resolve(cmd: &OsString) -> Option<PathBuf> {
    let p = Path::new(cmd);
    if cmd.as_bytes().contains(&b'/') {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file() && is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Describe a wait status the way a user reads it.
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Shell-style exit code for a wait status: the exit status, or 128 + signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Fork and exec `argv`, returning with the child stopped after exec.
pub fn spawn_stopped(argv: &[OsString]) -> Result<Launched, LaunchError> {
    let first = argv.first().ok_or(LaunchError::Empty)?;
    let name = first.to_string_lossy().into_owned();
    let start_err = |source| LaunchError::Start {
        cmd: name.clone(),
        source,
    };
    let program = resolve(first).ok_or_else(|| {
        start_err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "command not found",
        ))
    })?;
    // A path without a slash (PATH held an empty or "." entry) is relative to the current
    // directory, as the lookup above meant it; Command would search PATH again.
    let program = if program.as_os_str().as_bytes().contains(&b'/') {
        program
    } else {
        Path::new(".").join(program)
    };
    let mut cmd = Command::new(program);
    cmd.arg0(first).args(&argv[1..]);
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed; it makes one system call (ptrace) and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(sys::ptrace_traceme);
    }
    // spawn returns once exec succeeded (the child is then stopped, not yet running) or
    // with exec's error, the failed child already reaped.
    let pid = cmd.spawn().map_err(start_err)?.id();
    let status = sys::waitpid(pid).map_err(start_err)?;
    if !libc::WIFSTOPPED(status) {
        return Err(LaunchError::Died {
            cmd: name,
            status: describe_status(status),
        });
    }
    Ok(Launched {
        pid,
        resumed: false,
    })
}

impl Launched {
    /// Let the child run (detach ptrace without delivering a signal).
    pub fn resume(&mut self) -> std::io::Result<()> {
        if self.resumed {
            return Ok(());
        }
        sys::ptrace_detach(self.pid)?;
        self.resumed = true;
        Ok(())
    }

    /// Kill a child that never ran (tracing could not be set up).
    pub fn abort(mut self) {
        self.kill_unresumed();
    }

    fn kill_unresumed(&mut self) {
        if self.resumed {
            return;
        }
        // Our own child, stopped: nothing to do if it is already gone.
        let _ = sys::kill(self.pid, rustix::process::Signal::KILL);
        let _ = sys::waitpid(self.pid);
        self.resumed = true;
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        // A child that was never resumed would stay stopped forever.
        self.kill_unresumed();
    }
}

/// Block until child `pid` exits; returns its wait status.
pub fn wait_exit(pid: u32) -> std::io::Result<libc::c_int> {
    loop {
        match sys::waitpid(pid) {
            Ok(status) if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) => {
                return Ok(status)
            }
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_command_is_a_clear_error() {
        let err = spawn_stopped(&["/nonexistent/gctrace-test-cmd".into()]).unwrap_err();
        assert!(
            crate::errors::chain(&err).starts_with("cannot start /nonexistent/gctrace-test-cmd"),
            "{err}"
        );
        let err = spawn_stopped(&["gctrace-no-such-command".into()]).unwrap_err();
        assert!(
            crate::errors::chain(&err).contains("command not found"),
            "{err}"
        );
    }

    #[test]
    fn child_is_stopped_then_runs_to_completion() {
        let mut child = spawn_stopped(&["/bin/sh".into(), "-c".into(), "exit 7".into()]).unwrap();
        let stat = crate::session::target::stat(child.pid).unwrap();
        // 't' = stopped by a tracer.
        assert_eq!(stat.state, 't', "{stat:?}");
        child.resume().unwrap();
        let st = wait_exit(child.pid).unwrap();
        assert_eq!(exit_code(st), 7);
    }
}
