//! The tracer under test as a command: every traced run starts here, so the binary, the
//! way output is asked for and the time a run may take are decided in one place.

use std::ffi::OsStr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use super::processes::{run, ChildGuard, RunResult, RUN_TIMEOUT};
use super::tracer_bin;

/// A `gctrace-bpf` command line being built: flags, then what it traces (`launch`, the
/// program after `--`, or `pid`, `--pid N`), then one of the ways to run it. Derefs to
/// the [`Command`] for what the builder does not name (a flag's arguments, `stdin`).
pub struct TracerCmd {
    cmd: Command,
}

impl TracerCmd {
    /// [`tracer_bin`] with no arguments.
    pub fn new() -> TracerCmd {
        TracerCmd {
            cmd: Command::new(tracer_bin()),
        }
    }

    /// One more argument (a flag, or a flag's value).
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TracerCmd {
        self.cmd.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut TracerCmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// An environment variable of the tracer (and so of a program it launches).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TracerCmd {
        self.cmd.env(key, value);
        self
    }

    /// `--format FORMAT --output PATH`.
    pub fn output_to(&mut self, format: &str, path: &Path) -> &mut TracerCmd {
        self.cmd.args(["--format", format, "--output"]).arg(path);
        self
    }

    /// `--format json --output PATH`: NDJSON records in a file.
    pub fn json_to(&mut self, path: &Path) -> &mut TracerCmd {
        self.output_to("json", path)
    }

    /// `--pid PID`: attach to a running process.
    pub fn pid(&mut self, pid: u32) -> &mut TracerCmd {
        self.cmd.arg("--pid").arg(pid.to_string());
        self
    }

    /// `-- PROGRAM ARGS...`: launch the program under the tracer (last on the line).
    pub fn launch<I, S>(&mut self, program: impl AsRef<OsStr>, args: I) -> &mut TracerCmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.arg("--").arg(program).args(args);
        self
    }

    /// Runs to completion within [`RUN_TIMEOUT`], stdout and stderr in files `name.*`
    /// in `dir`; a run that takes longer fails the test.
    pub fn run(&mut self, dir: &Path, name: &str) -> RunResult {
        self.run_within(dir, name, RUN_TIMEOUT)
    }

    /// [`TracerCmd::run`] with another bound.
    pub fn run_within(&mut self, dir: &Path, name: &str, timeout: Duration) -> RunResult {
        run(&mut self.cmd, dir, name, timeout)
    }

    /// Starts it in its own process group (see [`ChildGuard::spawn`]).
    pub fn spawn(&mut self, dir: &Path, name: &str) -> ChildGuard {
        ChildGuard::spawn(&mut self.cmd, dir, name)
    }

    /// Runs it for its output, for a run that ends at once (`--help`, a refused flag).
    pub fn run_quick(&mut self) -> Output {
        self.cmd
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", tracer_bin().display()))
    }
}

/// As the [`Command`] (what failure messages show).
impl std::fmt::Debug for TracerCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cmd.fmt(f)
    }
}

impl Deref for TracerCmd {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.cmd
    }
}

impl DerefMut for TracerCmd {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }
}
