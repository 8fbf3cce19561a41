//! `cargo xtask test-arm64`: the tracer live on an arm64 kernel, under emulation.
//!
//! The host builds the aarch64 `gctrace-bpf` and the arm64 `gcload` workloads, boots
//! Debian's arm64 kernel in `qemu-system-aarch64 -M virt -cpu max` with an initramfs
//! whose /init (init.sh) only runs the cases and sends back what they left (the tracer's
//! JSON, the workload's own gctrace stderr and MemStats, the kernel's link list). The
//! judging happens on the host, in `tracer/tests/integration/arm64_guest.rs`, with the comparison
//! code of the x86 integration tests; its results make the closing line
//! `arm64: N passed, M failed`.

pub mod assets;
mod cpio;
mod guest;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::cross::{self, Profile, Target};
use crate::env::{self, run};
use crate::skipped::SkippedLog;

/// The environment variable that points `tracer/tests/integration/arm64_guest.rs` at the artifacts.
pub const ARTIFACTS_ENV: &str = "GCTRACE_ARM64_ARTIFACTS";

/// The Go releases the guest runs: the oldest and the newest of the test matrix.
const OLDEST: &str = "1.19";
const NEWEST: &str = "1.27";

fn work_dir() -> PathBuf {
    env::target_dir().join("arm64-guest")
}

pub fn test_arm64() -> Result<()> {
    if !env::is_root()? {
        bail!("test-arm64 must run as root (it installs packages on first use)");
    }
    assets::ensure()?;
    // The demo's profile: the guest runs this build once, and the release build of
    // `dist` is the same code at a higher optimisation level.
    let tracer = cross::build_static(Target::Aarch64, Profile::Demo)?;
    let work = work_dir();
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let workloads = build_workloads(&work.join("w"))?;
    let initramfs = work.join("initramfs.cpio");
    guest::Initramfs {
        busybox: &assets::busybox()?,
        tracer: &tracer,
        workloads: &workloads,
    }
    .write(&initramfs)?;

    let out = work.join("out");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    let serial = work.join("serial.log");
    let guest_error = match guest::boot(&assets::kernel_image()?, &initramfs, &serial) {
        Ok(run) => {
            for (name, data) in &run.files {
                let path = out.join(name);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
            }
            fs::create_dir_all(&out)?;
            let notes = out.join("guest-notes.txt");
            fs::write(&notes, run.notes.join("\n") + "\n")
                .with_context(|| format!("writing {}", notes.display()))?;
            (!run.completed).then(|| {
                format!(
                    "the guest stopped before sending everything (console: {})",
                    serial.display()
                )
            })
        }
        Err(e) => Some(format!("{e:#}")),
    };
    fs::create_dir_all(&out)?;
    if let Some(e) = &guest_error {
        eprintln!("arm64: guest problem: {e}");
    }
    let skipped = SkippedLog::fresh("arm64")?;
    let (passed, failed) = judge(&out, &skipped)?;
    // A guest that never reported counts as a failure even if no case could be judged.
    let failed = failed + usize::from(guest_error.is_some() && passed + failed == 0);
    println!("arm64: {passed} passed, {failed} failed");
    let skipped = skipped.check();
    if failed > 0 || guest_error.is_some() {
        bail!("arm64 tests failed (guest console: {})", serial.display());
    }
    skipped
}

/// gcload for arm64 (static, `GOARCH=arm64`): with symbols for the oldest and the newest
/// Go, and stripped (`-s -w`) for the newest.
fn build_workloads(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let toolchains = env::go_toolchains()?;
    let go_of = |series: &str| {
        toolchains
            .iter()
            .find(|t| t.version == series || t.version.starts_with(&format!("{series}.")))
            .with_context(|| format!("no Go {series} toolchain; run `cargo xtask setup`"))
    };
    let src = env::workspace_root().join("workloads").join("gcload");
    let mut built = Vec::new();
    for (series, stripped) in [(OLDEST, false), (NEWEST, false), (NEWEST, true)] {
        let go = go_of(series)?;
        let name = format!(
            "gcload-go{series}{}",
            if stripped { "-stripped" } else { "" }
        );
        let bin = dir.join(&name);
        let mut cmd = env::go_command(&go.go);
        // The integration tests' Go cache (tracer/tests/integration/harness/workloads.rs),
        // where their static analysis of arm64 builds compiled this standard library.
        cmd.env(
            "GOCACHE",
            env::target_dir().join("go-cache").join("gocache"),
        );
        cmd.env("GOARCH", "arm64").arg("build");
        if stripped {
            cmd.arg("-ldflags=-s -w");
        }
        run(cmd.arg("-o").arg(&bin).arg("./").current_dir(&src))
            .with_context(|| format!("building {name} with Go {}", go.version))?;
        built.push((name, bin));
    }
    Ok(built)
}

/// Runs the host-side judgement over the artifacts; returns (passed, failed) as
/// `cargo test` counted them.
fn judge(artifacts: &Path, skipped: &SkippedLog) -> Result<(usize, usize)> {
    let toolchains = env::go_toolchains_env(&env::go_toolchains()?);
    let mut cmd = env::cargo();
    cmd.args(["test", "--release", "-p", "tracer", "--test", "integration"])
        .args(["--", "arm64_guest::", "--test-threads=1"])
        .env(ARTIFACTS_ENV, artifacts)
        .env("GCTRACE_GO_TOOLCHAINS", toolchains)
        .stdout(Stdio::piped());
    skipped.pass_to(&mut cmd);
    println!("$ {}", env::describe(&cmd));
    let mut child = cmd.spawn().context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        if line.starts_with("test ") {
            if line.ends_with(" ... ok") {
                passed += 1;
            } else if line.ends_with(" ... FAILED") {
                failed += 1;
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() && failed == 0 {
        // cargo test failed without a failing test: it did not build or did not run.
        failed += 1;
    }
    Ok((passed, failed))
}
