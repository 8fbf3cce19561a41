//! The launch-mode run of gcload under the tracer that most live tests judge: gcload's
//! fixed workload, with GODEBUG=gctrace=1 and -memstats-out, as captured.

use std::ffi::OsStr;
use std::process::ExitStatus;

use super::exclusive;
use super::memstats::MemStats;
use super::processes::diagnostics;
use super::toolchains::Toolchain;
use super::tracer_cmd::TracerCmd;
use super::workloads::{build_gcload_as, GcBuild};

/// The workload of the launch-mode runs, and the line it ends with.
pub const WORKLOAD_ARGS: &[&str] = &["-duration", "3s", "-forced", "5", "-readmemstats", "20"];
pub const DONE_LINE: &str = "gcload done: goroutines=4 forced=5 readmemstats=20";

/// A launch-mode run of gcload under the tracer (`--format json`) with
/// GODEBUG=gctrace=1, as captured: the tests judge it, each for its own question.
pub struct TracedRun {
    pub go_version: String,
    pub build: GcBuild,
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub trace_text: String,
    /// None when the workload did not write it (the run failed).
    pub memstats: Option<MemStats>,
}

impl TracedRun {
    pub fn diag(&self) -> String {
        format!(
            "Go {} ({} build), command {}\n{}--- trace (first 20 lines) ---\n{}",
            self.go_version,
            self.build.name(),
            self.command,
            diagnostics(&self.stdout, &self.stderr),
            self.trace_text
                .lines()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// Panics unless the traced workload ran to its end.
    pub fn assert_completed(&self) -> &MemStats {
        assert!(
            self.status.success(),
            "traced run failed: {}\n{}",
            self.status,
            self.diag()
        );
        assert!(
            self.stdout.lines().any(|l| l == DONE_LINE),
            "workload stdout lacks {DONE_LINE:?}\n{}",
            self.diag()
        );
        self.memstats
            .as_ref()
            .unwrap_or_else(|| panic!("the workload wrote no -memstats-out\n{}", self.diag()))
    }
}

/// Runs gcload under the tracer: `format` is the tracer's `--format`, `env` extra
/// environment for the workload (GODEBUG=gctrace=1 is always set).
pub fn traced_run(
    toolchain: &Toolchain,
    build: GcBuild,
    format: &str,
    env: &[(&str, &str)],
) -> TracedRun {
    let gcload = build_gcload_as(toolchain, build);
    let go_version = toolchain.go_version();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("trace.out");
    let memstats_path = tmp.path().join("memstats.json");

    let _exclusive = exclusive();
    let mut cmd = TracerCmd::new();
    cmd.env("GODEBUG", "gctrace=1").envs(env.iter().copied());
    cmd.output_to(format, &out).launch(
        &gcload,
        WORKLOAD_ARGS
            .iter()
            .map(OsStr::new)
            .chain([OsStr::new("-memstats-out"), memstats_path.as_os_str()]),
    );
    let run = cmd.run(tmp.path(), "traced");
    TracedRun {
        go_version,
        build,
        command: format!("{cmd:?}"),
        status: run.status,
        stdout: run.stdout,
        stderr: run.stderr,
        trace_text: std::fs::read_to_string(&out).unwrap_or_default(),
        memstats: memstats_path
            .exists()
            .then(|| MemStats::read(&memstats_path)),
    }
}
