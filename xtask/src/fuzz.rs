//! The bounded fuzz run of `cargo xtask test`: the recording reader takes untrusted
//! files. Its build (the tracer and all its dependencies again, instrumented for
//! coverage) can start early, in the background: the arm64 guest runs on one
//! emulated CPU, so a core is free while it boots and runs, and one cargo job uses it.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::env::{self, run};

const TARGET: &str = "recording_reader";

/// `cargo fuzz SUBCOMMAND recording_reader --release`: `build` and `run` get the same
/// flags, so the run finds the build up to date.
fn cargo_fuzz(subcommand: &str) -> Command {
    let mut cmd = env::cargo();
    // No sanitizer, debug assertions on: the reader is safe Rust, whose bounds checks
    // and (with the assertions) overflow checks turn a bad read into a panic the fuzzer
    // sees; AddressSanitizer instrumented the tracer and every dependency, the biggest
    // part of a build that ran ~10 CPU-minutes of CI.
    cmd.args([
        "fuzz",
        subcommand,
        TARGET,
        "--release",
        "--debug-assertions",
    ])
    .args(["--sanitizer", "none"])
    // Sanitizer flags are unstable options; stable rustc takes them this way.
    .env("RUSTC_BOOTSTRAP", "1");
    cmd
}

/// The fuzz target's build, running in the background; killed if dropped unfinished
/// (an earlier phase failed).
pub struct BackgroundBuild {
    child: Option<Child>,
    log: PathBuf,
}

impl BackgroundBuild {
    /// Starts `cargo fuzz build` with one job, its output to `target/fuzz-build.log`.
    pub fn start() -> Result<Self> {
        let log = env::target_dir().join("fuzz-build.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = cargo_fuzz("build");
        cmd.env("CARGO_BUILD_JOBS", "1")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        println!(
            "$ {} (in the background, one job; output in {})",
            env::describe(&cmd),
            log.display()
        );
        let child = cmd.spawn().context("starting cargo fuzz build")?;
        Ok(Self {
            child: Some(child),
            log,
        })
    }

    /// Waits for the build; on failure shows its log.
    pub fn finish(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child.wait().context("waiting for cargo fuzz build")?;
        if !status.success() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("{text}");
            bail!(
                "cargo fuzz build failed: {status} (output above and in {})",
                self.log.display()
            );
        }
        println!("fuzz build: done ({})", self.log.display());
        Ok(())
    }
}

impl Drop for BackgroundBuild {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fuzzes the recording reader for a bounded time (building it first if needed).
pub fn run_bounded() -> Result<()> {
    run(cargo_fuzz("run")
        .arg("--")
        .args(["-max_total_time=45", "-print_final_stats=1"]))
}
