//! A tracer run to completion that writes its JSON records to a file, with the failure
//! message its test shows: the tracer's output and the trace's first lines. The settings
//! and third-party tests each wrote the same run, read and message.

use std::path::Path;
use std::process::Command;

use super::RunResult;

pub struct JsonRun {
    pub run: RunResult,
    /// The trace file's text (empty when the tracer wrote none).
    pub text: String,
    /// The tracer's stdout and stderr, then the trace's first 10 lines.
    pub diag: String,
}

/// Runs `cmd`, a tracer with `--output out`, in `dir` (within `RUN_TIMEOUT`).
pub fn run(cmd: &mut Command, dir: &Path, name: &str, out: &Path) -> JsonRun {
    let run = super::run(cmd, dir, name, super::RUN_TIMEOUT);
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let diag = format!(
        "{}--- trace (first 10) ---\n{}",
        super::diagnostics(&run.stdout, &run.stderr),
        text.lines().take(10).collect::<Vec<_>>().join("\n")
    );
    JsonRun { run, text, diag }
}
