//! Shared harness of the integration tests: they run the real tracer (eBPF, so root)
//! against the `gcload` workload built with each Go toolchain, and compare what it
//! reports with what the Go runtime itself says (GODEBUG=gctrace=1 and MemStats).
//!
//! `cargo xtask test` sets GCTRACE_INTEGRATION=1 and GCTRACE_GO_TOOLCHAINS
//! (`VERSION=PATH_TO_GO,...`, from `cargo xtask go-toolchains`). Without
//! GCTRACE_INTEGRATION the tests skip; with it, a missing prerequisite is a failure.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cycles;
pub mod exporters;
pub mod gcload_fixture;
pub mod json_run;
pub mod live_checks;
pub mod target_procs;

pub const SKIP_MESSAGE: &str = "skipped: set GCTRACE_INTEGRATION=1 (cargo xtask test does)";

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

/// False (after printing why) when the integration tests are not requested; panics
/// when they are but cannot run.
pub fn integration_enabled() -> bool {
    match std::env::var_os("GCTRACE_INTEGRATION") {
        None => {
            println!("{SKIP_MESSAGE}");
            false
        }
        Some(v) if v.is_empty() || v == "0" => {
            println!("{SKIP_MESSAGE}");
            false
        }
        Some(_) => {
            // SAFETY: geteuid has no preconditions.
            let euid = unsafe { libc::geteuid() };
            assert_eq!(
                euid, 0,
                "GCTRACE_INTEGRATION is set but the tests do not run as root (euid {euid}); \
                 the tracer loads eBPF programs"
            );
            true
        }
    }
}

/// Serialises the traced runs of one test binary: the timing comparisons are fairer
/// when two traced workloads do not fight over the CPUs.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------
// Go toolchains and the gcload workload

#[derive(Clone, Debug)]
pub struct Toolchain {
    /// Without the "go" prefix, e.g. "1.19.8".
    pub version: String,
    pub go: PathBuf,
}

impl Toolchain {
    /// "1.19" for "1.19.8".
    pub fn series(&self) -> String {
        series_of(&self.version)
    }

    /// Minor version number (19 for 1.19.8).
    pub fn minor(&self) -> u32 {
        self.version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("malformed Go version {:?}", self.version))
    }

    /// What the binary's build info (and so the tracer) calls it: "go1.19.8", from
    /// `go version` itself rather than from the configuration.
    pub fn go_version(&self) -> String {
        let out = go_command(&self.go)
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("running {} version: {e}", self.go.display()));
        assert!(out.status.success(), "{} version failed", self.go.display());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .find(|w| w.starts_with("go1"))
            .unwrap_or_else(|| panic!("unexpected `go version` output {text:?}"))
            .to_owned()
    }
}

pub fn series_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// GCTRACE_GO_TOOLCHAINS, parsed; panics when unset or malformed.
pub fn toolchains() -> Vec<Toolchain> {
    let raw = std::env::var("GCTRACE_GO_TOOLCHAINS").unwrap_or_else(|_| {
        panic!(
            "GCTRACE_GO_TOOLCHAINS is not set; it lists VERSION=PATH_TO_GO,... \
             (`cargo xtask go-toolchains` prints it; `cargo xtask test` sets it)"
        )
    });
    let all: Vec<Toolchain> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (version, go) = entry.split_once('=').unwrap_or_else(|| {
                panic!("GCTRACE_GO_TOOLCHAINS entry {entry:?} is not VERSION=PATH")
            });
            Toolchain {
                version: version.trim_start_matches("go").to_owned(),
                go: PathBuf::from(go),
            }
        })
        .collect();
    assert!(!all.is_empty(), "GCTRACE_GO_TOOLCHAINS is empty");
    for t in &all {
        assert!(
            t.go.is_file(),
            "Go {} missing: {} does not exist (run `cargo xtask setup`)",
            t.version,
            t.go.display()
        );
    }
    all
}

/// The configured toolchain of a release series ("1.21"); panics when missing.
pub fn toolchain(series: &str) -> Toolchain {
    let all = toolchains();
    all.iter()
        .find(|t| t.series() == series)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no Go {series} toolchain in GCTRACE_GO_TOOLCHAINS ({})",
                all.iter()
                    .map(|t| t.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The newest configured toolchain.
pub fn newest_toolchain() -> Toolchain {
    toolchains()
        .into_iter()
        .max_by_key(|t| {
            t.version
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .expect("toolchains() is never empty")
}

/// One `#[test]` per Go toolchain for a check `fn(&Toolchain)`, each skipped unless the
/// integration tests are requested: `per_toolchain!(check { check_newest_go => newest,
/// check_go1_19 => "1.19" });`. A doc comment or attribute before a name goes on that test.
/// Why a macro: a test per toolchain shows which Go broke in the test list, and the
/// wrappers were otherwise the same five lines written out for every pair.
#[macro_export]
macro_rules! per_toolchain {
    ($check:ident { $( $(#[$meta:meta])* $name:ident => $series:tt ),+ $(,)? }) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                if !$crate::common::integration_enabled() {
                    return;
                }
                $check(&$crate::per_toolchain!(@toolchain $series));
            }
        )+
    };
    (@toolchain newest) => { $crate::common::newest_toolchain() };
    (@toolchain $series:literal) => { $crate::common::toolchain($series) };
}

/// `go` with settings for tests: never download a toolchain, caches under target/,
/// static binaries.
fn go_command(go: &Path) -> Command {
    let cache = target_dir().join("gcload-cache");
    let mut cmd = Command::new(go);
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOCACHE", cache.join("gocache"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null());
    cmd
}

/// Builds `workloads/NAME` with `toolchain` into `<target>/NAME-cache/<version>/NAME` (a
/// second or two; not cached: the small workloads other than gcload).
pub fn build_workload(toolchain: &Toolchain, name: &str) -> PathBuf {
    let src = workspace_root().join("workloads").join(name);
    let dir = target_dir()
        .join(format!("{name}-cache"))
        .join(&toolchain.version);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let bin = dir.join(name);
    go_build(toolchain, &src, &bin, name, |_| {});
    bin
}

/// `go build [flags] -o out ./` in `src` with `toolchain` (`flags` adds the flags);
/// panics with the compiler's output, naming `what` was built, if it fails.
fn go_build(
    toolchain: &Toolchain,
    src: &Path,
    out: &Path,
    what: &str,
    flags: impl FnOnce(&mut Command),
) {
    let mut cmd = go_command(&toolchain.go);
    cmd.arg("build");
    flags(&mut cmd);
    let run = cmd
        .arg("-o")
        .arg(out)
        .arg("./")
        .current_dir(src)
        .output()
        .unwrap_or_else(|e| panic!("running {} build: {e}", toolchain.go.display()));
    assert!(
        run.status.success(),
        "building {what} with Go {} failed ({}):\n{}{}",
        toolchain.version,
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// How gcload is built: the default static binary, or one of the shapes real
/// deployments have that the tracer must cope with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcBuild {
    /// `CGO_ENABLED=0 go build`: static, with symbols and DWARF.
    Default,
    /// `-ldflags='-s -w'`: no .symtab, no DWARF (runtime offsets must come from elsewhere).
    Stripped,
    /// `CGO_ENABLED=1 go build -buildmode=pie`: dynamically linked, position independent,
    /// and gcload's cgo.go calls C once.
    PieCgo,
    /// Stripped, then `objcopy --remove-section .go.buildinfo`: the shape of release
    /// binaries whose build info was removed after the build (the version must come from
    /// the runtime's own string).
    NoBuildInfo,
}

impl GcBuild {
    /// Directory suffix in the build cache and label in messages.
    pub fn name(self) -> &'static str {
        match self {
            GcBuild::Default => "default",
            GcBuild::Stripped => "stripped",
            GcBuild::PieCgo => "pie-cgo",
            GcBuild::NoBuildInfo => "no-buildinfo",
        }
    }

    fn configure(self, cmd: &mut Command) {
        match self {
            GcBuild::Default => {}
            GcBuild::Stripped | GcBuild::NoBuildInfo => {
                cmd.arg("-ldflags=-s -w");
            }
            GcBuild::PieCgo => {
                cmd.env("CGO_ENABLED", "1").arg("-buildmode=pie");
            }
        }
    }
}

/// FNV-1a over the workload's sources and the toolchain, to know when to rebuild.
fn gcload_fingerprint(src: &Path, toolchain: &Toolchain, build: GcBuild) -> String {
    let mut names: Vec<PathBuf> = fs::read_dir(src)
        .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".go") || name == "go.mod" || name == "go.sum"
        })
        .collect();
    names.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    feed(toolchain.version.as_bytes());
    feed(toolchain.go.to_string_lossy().as_bytes());
    feed(build.name().as_bytes());
    for name in &names {
        feed(name.to_string_lossy().as_bytes());
        feed(&fs::read(name).unwrap_or_else(|e| panic!("reading {}: {e}", name.display())));
    }
    format!("{hash:016x}")
}

/// Builds workloads/gcload with `toolchain` into `<target>/gcload-cache/<version>/`,
/// reusing the previous build while the sources are unchanged.
pub fn build_gcload(toolchain: &Toolchain) -> PathBuf {
    build_gcload_as(toolchain, GcBuild::Default)
}

/// Like [`build_gcload`], in the shape `build` (other than the default in
/// `<target>/gcload-cache/<version>-<shape>/`).
pub fn build_gcload_as(toolchain: &Toolchain, build: GcBuild) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());

    let src = workspace_root().join("workloads").join("gcload");
    let dir_name = match build {
        GcBuild::Default => toolchain.version.clone(),
        other => format!("{}-{}", toolchain.version, other.name()),
    };
    let dir = target_dir().join("gcload-cache").join(dir_name);
    let bin = dir.join("gcload");
    let stamp = dir.join("gcload.stamp");
    let fingerprint = gcload_fingerprint(&src, toolchain, build);
    if bin.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint.as_str()) {
        return bin;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let tmp = dir.join("gcload.tmp");
    let what = format!("gcload ({})", build.name());
    go_build(toolchain, &src, &tmp, &what, |cmd| build.configure(cmd));
    if build == GcBuild::NoBuildInfo {
        let out = Command::new("objcopy")
            .args(["--remove-section", ".go.buildinfo"])
            .arg(&tmp)
            .output()
            .unwrap_or_else(|e| panic!("running objcopy: {e}"));
        assert!(
            out.status.success(),
            "objcopy --remove-section .go.buildinfo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::rename(&tmp, &bin).unwrap_or_else(|e| panic!("renaming to {}: {e}", bin.display()));
    fs::write(&stamp, &fingerprint).unwrap_or_else(|e| panic!("writing {}: {e}", stamp.display()));
    bin
}

// ---------------------------------------------------------------------------------
// Processes

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
    let mut cmd = Command::new(tracer_bin());
    cmd.env("GODEBUG", "gctrace=1")
        .envs(env.iter().copied())
        .args(["--format", format, "--output"])
        .arg(&out)
        .arg("--")
        .arg(&gcload)
        .args(WORKLOAD_ARGS)
        .arg("-memstats-out")
        .arg(&memstats_path);
    let run = run(&mut cmd, tmp.path(), "traced", RUN_TIMEOUT);
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

// ---------------------------------------------------------------------------------
// gctrace lines

/// A duration as gctrace prints it: fmtNSAsMS truncates to two significant digits
/// (at most three decimals), or to whole milliseconds from 10 ms on, so the true value
/// lies in `[lo_ns, hi_ns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsRange {
    pub lo_ns: u64,
    pub hi_ns: u64,
}

impl MsRange {
    /// How far `ns` lies outside the range (0 inside).
    pub fn distance(&self, ns: u64) -> u64 {
        if ns < self.lo_ns {
            self.lo_ns - ns
        } else {
            ns.saturating_sub(self.hi_ns)
        }
    }
}

impl std::fmt::Display for MsRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}) ns", self.lo_ns, self.hi_ns)
    }
}

/// One `gc N @Ts P%: a+b+c ms clock, ...` line. The cycle and the clock triple are
/// required; every other figure is `None` when it is missing or not a number (the
/// tracer prints `?` for what it could not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcTraceLine {
    pub cycle: u32,
    /// `@T s`: milliseconds since the runtime started (printed with 3 decimals).
    pub at_ms: Option<u64>,
    /// `P%`: GC CPU utilisation since the program started.
    pub util_pct: Option<u32>,
    /// Sweep termination, concurrent mark, mark termination (wall clock).
    pub clock: [MsRange; 3],
    /// CPU: sweep termination, assist, background, idle, mark termination.
    pub cpu: Option<[MsRange; 5]>,
    /// `heap0->heap1->heap2 MB`: heap at GC start, at mark end, live (MiB, truncated).
    pub heap_mb: Option<[u64; 3]>,
    pub goal_mb: Option<u64>,
    pub stacks_mb: Option<u64>,
    pub globals_mb: Option<u64>,
    /// `N P`: GOMAXPROCS.
    pub procs: Option<u32>,
    /// Ends with " (forced)": runtime.GC() or debug.FreeOSMemory.
    pub forced: bool,
    /// The record itself, from "gc " to the end of the line (trailing space trimmed).
    pub text: String,
}

/// Parses a duration printed by the runtime's fmtNSAsMS.
pub fn parse_ms(text: &str) -> Option<MsRange> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 6 {
        return None;
    }
    if text.contains('.') && frac.is_empty() {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let scale = 10u64.pow(6 - frac.len() as u32);
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()? * scale
    };
    let lo_ns = int * 1_000_000 + frac_ns;
    let ulp = if !frac.is_empty() {
        scale
    } else if lo_ns == 0 {
        // "0": under one microsecond.
        1_000
    } else {
        1_000_000
    };
    Some(MsRange {
        lo_ns,
        hi_ns: lo_ns + ulp,
    })
}

/// Finds a gctrace record in a line (which may carry other text before it, when writes
/// interleave).
pub fn parse_gctrace_line(line: &str) -> Option<GcTraceLine> {
    let mut from = 0;
    while let Some(pos) = line[from..].find("gc ") {
        let start = from + pos;
        if let Some(parsed) = parse_gctrace_at(&line[start..]) {
            return Some(parsed);
        }
        from = start + 3;
    }
    None
}

fn parse_gctrace_at(text: &str) -> Option<GcTraceLine> {
    let rest = text.strip_prefix("gc ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return None;
    }
    let cycle = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(" @")?;
    // "0.012s 2%: " (Go 1.27 may insert " (checking for goroutine leaks)" before ": ").
    let colon = rest.find(": ")?;
    let mut head = rest[..colon].split_whitespace();
    let at_ms = head
        .next()
        .and_then(|t| t.strip_suffix('s'))
        .and_then(parse_ms)
        // "0.012" parsed as milliseconds is 12 µs: the value is seconds.
        .map(|r| r.lo_ns / 1_000);
    let util_pct = head
        .next()
        .and_then(|p| p.strip_suffix('%'))
        .and_then(|p| p.parse().ok());
    let rest = &rest[colon + 2..];
    let clock_end = rest.find(" ms clock")?;
    let mut parts = rest[..clock_end].split('+');
    let clock = [
        parse_ms(parts.next()?)?,
        parse_ms(parts.next()?)?,
        parse_ms(parts.next()?)?,
    ];
    if parts.next().is_some() {
        return None;
    }
    let tail = rest[clock_end..]
        .strip_prefix(" ms clock")?
        .trim_end()
        .strip_prefix(", ")
        .unwrap_or("");
    let forced = tail.ends_with(" (forced)");
    let tail = tail.strip_suffix(" (forced)").unwrap_or(tail);
    let mut line = GcTraceLine {
        cycle,
        at_ms,
        util_pct,
        clock,
        cpu: None,
        heap_mb: None,
        goal_mb: None,
        stacks_mb: None,
        globals_mb: None,
        procs: None,
        forced,
        text: text.trim_end().to_owned(),
    };
    let num = |s: &str| s.parse::<u64>().ok();
    for part in tail.split(", ") {
        if let Some(cpu) = part.strip_suffix(" ms cpu") {
            // "a+b/c/d+e"
            let mut plus = cpu.split('+');
            let (st, mid, mt) = (plus.next(), plus.next(), plus.next());
            let mut slash = mid.unwrap_or("").split('/');
            line.cpu = (|| {
                Some([
                    parse_ms(st?)?,
                    parse_ms(slash.next()?)?,
                    parse_ms(slash.next()?)?,
                    parse_ms(slash.next()?)?,
                    parse_ms(mt?)?,
                ])
            })();
        } else if let Some(goal) = part.strip_suffix(" MB goal") {
            line.goal_mb = num(goal);
        } else if let Some(stacks) = part.strip_suffix(" MB stacks") {
            line.stacks_mb = num(stacks);
        } else if let Some(globals) = part.strip_suffix(" MB globals") {
            line.globals_mb = num(globals);
        } else if let Some(heap) = part.strip_suffix(" MB") {
            let v: Vec<Option<u64>> = heap.split("->").map(num).collect();
            if let [Some(a), Some(b), Some(c)] = v[..] {
                line.heap_mb = Some([a, b, c]);
            }
        } else if let Some(procs) = part.strip_suffix(" P") {
            line.procs = procs.parse().ok();
        }
    }
    Some(line)
}

/// Every gctrace record in a stderr capture, by cycle (the last one wins for a
/// repeated cycle number, which would be a runtime oddity).
pub fn parse_gctrace(stderr: &str) -> BTreeMap<u32, GcTraceLine> {
    stderr
        .lines()
        .filter_map(parse_gctrace_line)
        .map(|l| (l.cycle, l))
        .collect()
}

// ---------------------------------------------------------------------------------
// The tracer's NDJSON output

#[derive(Clone, Debug, serde::Deserialize)]
pub struct ProcessRec {
    pub pid: Option<u64>,
    pub exe: Option<String>,
    pub go_version: Option<String>,
    pub arch: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct GcRec {
    pub cycle: u32,
    pub trigger: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub sweep_term_ns: u64,
    pub mark_ns: u64,
    pub mark_term_ns: u64,
    pub pause_ns: u64,
    #[serde(flatten)]
    pub heap: HeapRec,
    /// gctrace's `MB stacks`, in bytes.
    pub stacks_bytes: Option<u64>,
    pub gomaxprocs: Option<u64>,
    pub gogc: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
}

/// A gc record's heap figures: the runtime's own, `None` where the tracer printed `null`.
/// gctrace prints the same four as `heap0->heap1->heap2 MB, goal MB`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct HeapRec {
    #[serde(rename = "heap_start_bytes")]
    pub start: Option<u64>,
    #[serde(rename = "heap_end_bytes")]
    pub end: Option<u64>,
    #[serde(rename = "heap_live_bytes")]
    pub live: Option<u64>,
    #[serde(rename = "heap_goal_bytes")]
    pub goal: Option<u64>,
}

impl HeapRec {
    /// The four figures in gctrace's whole MB (it truncates): start, end, live, goal.
    pub fn mb(&self) -> [Option<u64>; 4] {
        [self.start, self.end, self.live, self.goal].map(|b| b.map(|b| b >> 20))
    }
}

impl GcTraceLine {
    /// gctrace's `heap0->heap1->heap2 MB, goal MB`, in the order of [`HeapRec::mb`].
    pub fn heap_and_goal_mb(&self) -> [Option<u64>; 4] {
        let heap = self.heap_mb.map(|h| h.map(Some)).unwrap_or([None; 3]);
        [heap[0], heap[1], heap[2], self.goal_mb]
    }
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct AllocRec {
    pub ts_ns: u64,
    pub total_bytes: u64,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct StwRec {
    pub reason: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub cycle: Option<u32>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct SummaryRec {
    pub cycles: u64,
    pub lost_events: u64,
    pub alloc_bytes: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Trace {
    /// The first line, if it was a process record.
    pub process: Option<ProcessRec>,
    pub first_type: Option<String>,
    pub last_type: Option<String>,
    pub gc: Vec<GcRec>,
    pub stw: Vec<StwRec>,
    pub alloc: Vec<AllocRec>,
    pub summary: Option<SummaryRec>,
    /// Lines that are not JSON objects or lack a required field.
    pub errors: Vec<String>,
}

/// The `--format json` output of a run over several processes, split by the `"pid"`
/// every record carries, each part parsed on its own; lines without a pid are reported
/// under pid 0.
pub fn traces_by_pid(text: &str) -> BTreeMap<u64, Trace> {
    let mut lines: BTreeMap<u64, String> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let pid = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("pid").and_then(Value::as_u64))
            .unwrap_or(0);
        let part = lines.entry(pid).or_default();
        part.push_str(line);
        part.push('\n');
    }
    lines
        .into_iter()
        .map(|(pid, text)| (pid, parse_trace(&text)))
        .collect()
}

/// Reads the tracer's `--format json` output.
pub fn read_trace(path: &Path) -> Trace {
    let text = fs::read_to_string(path).unwrap_or_default();
    parse_trace(&text)
}

pub fn parse_trace(text: &str) -> Trace {
    let mut trace = Trace::default();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                trace.errors.push(format!("line {}: {e}: {line}", n + 1));
                continue;
            }
        };
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if trace.first_type.is_none() {
            trace.first_type = Some(ty.clone());
        }
        trace.last_type = Some(ty.clone());
        // Each record by its own field names (the harness' structs, not the tracer's: a
        // renamed or missing field must fail here, not pass by construction). A field
        // that is not an `Option` is required.
        let parsed: Result<(), serde_json::Error> = (|| {
            match ty.as_str() {
                // Only the first process record counts.
                "process" if trace.process.is_none() => {
                    trace.process = Some(serde_json::from_value(v)?);
                }
                "gc" => trace.gc.push(serde_json::from_value(v)?),
                "alloc" => trace.alloc.push(serde_json::from_value(v)?),
                "stw" => trace.stw.push(serde_json::from_value(v)?),
                "summary" => trace.summary = Some(serde_json::from_value(v)?),
                // Record types added later are not this harness's business.
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            trace.errors.push(format!("line {}: {e}: {line}", n + 1));
        }
    }
    trace
}

// ---------------------------------------------------------------------------------
// gcload's -memstats-out

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemStats {
    #[serde(rename = "NumGC")]
    pub num_gc: u32,
    #[serde(rename = "NumForcedGC")]
    pub num_forced_gc: u32,
    pub pause_ns: Vec<u64>,
    pub pause_ns_first_cycle: u32,
    pub total_alloc: u64,
    pub mallocs: u64,
    pub read_mem_stats_calls: u64,
    /// runtime.NumCgoCall(): above zero in a cgo build (absent from old gcload builds).
    #[serde(default)]
    pub num_cgo_call: u64,
    /// Wall time of the program's main, up to the end of its work.
    #[serde(default)]
    pub elapsed_ns: u64,
    /// -stw-loop: the longest single ReadMemStats call (absent from old gcload builds).
    #[serde(default)]
    pub max_read_mem_stats_ns: u64,
    /// gcload -large-every: the bytes of its large objects (absent from old builds).
    #[serde(default)]
    pub large_bytes: u64,
}

impl MemStats {
    pub fn read(path: &Path) -> MemStats {
        let text =
            fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}: {text}", path.display()))
    }

    /// MemStats.PauseNs of `cycle`, when still in the runtime's 256-entry buffer.
    pub fn pause_of(&self, cycle: u32) -> Option<u64> {
        let index = cycle.checked_sub(self.pause_ns_first_cycle)?;
        self.pause_ns.get(index as usize).copied()
    }
}

// ---------------------------------------------------------------------------------
// Runtime state (heap, goal, GOMAXPROCS, GOGC, GOMEMLIMIT, allocation) vs the runtime

/// Share of cycles that must agree with the runtime, in percent.
pub const AGREEMENT_PCT: usize = 95;

/// Fails the test with every problem found, and `diag` (commands, output) after them.
pub fn assert_no_failures(what: &str, failures: &[String], diag: &str) {
    assert!(
        failures.is_empty(),
        "{what}: {} problem(s):\n- {}\n{diag}",
        failures.len(),
        failures.join("\n- ")
    );
}

/// `rows` of a comparison table, with a header, for a failure message (the first 40).
pub fn table(header: &str, rows: &[String]) -> String {
    const SHOWN: usize = 40;
    let mut out = format!("  {header}\n");
    for row in rows.iter().take(SHOWN) {
        let _ = writeln!(out, "  {row}");
    }
    if rows.len() > SHOWN {
        let _ = writeln!(out, "  [... {} more rows]", rows.len() - SHOWN);
    }
    out
}

/// The tracer's heap triple, goal and GOMAXPROCS against the runtime's own gctrace line,
/// cycle by cycle, for every cycle in `gctrace` (a cycle without a gc record disagrees).
/// gctrace prints sizes as `bytes >> 20`. Fails when more than 5 % of the cycles
/// disagree; prints the tolerated disagreements otherwise.
pub fn check_heap_against_gctrace(
    trace: &Trace,
    gctrace: &BTreeMap<u32, GcTraceLine>,
) -> Vec<String> {
    if gctrace.is_empty() {
        return vec!["no gctrace lines to compare the heap figures with".into()];
    }
    let by_cycle: BTreeMap<u32, &GcRec> = trace.gc.iter().map(|r| (r.cycle, r)).collect();
    let show = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
    let mut rows = Vec::new();
    let mut bad = 0usize;
    for (cycle, line) in gctrace {
        let Some(rec) = by_cycle.get(cycle) else {
            bad += 1;
            rows.push(format!(
                "{cycle:>6} | (no gc record)  |        | {}",
                line.text
            ));
            continue;
        };
        let (ours, theirs) = (rec.heap.mb(), line.heap_and_goal_mb());
        let fields = [
            ("heap_start MB", ours[0], theirs[0]),
            ("heap_end MB", ours[1], theirs[1]),
            ("heap_live MB", ours[2], theirs[2]),
            ("heap_goal MB", ours[3], theirs[3]),
            ("gomaxprocs", rec.gomaxprocs, line.procs.map(u64::from)),
        ];
        let before = rows.len();
        for (name, tracer, runtime) in fields {
            if runtime.is_none() || tracer != runtime {
                rows.push(format!(
                    "{cycle:>6} | {name:<15} | {:>6} | {:>6}",
                    show(tracer),
                    show(runtime)
                ));
            }
        }
        if rows.len() > before {
            bad += 1;
        }
    }
    let total = gctrace.len();
    let header = " cycle | field           | tracer | gctrace";
    if (total - bad) * 100 < total * AGREEMENT_PCT {
        vec![format!(
            "heap/goal/GOMAXPROCS disagree with gctrace in {bad} of {total} cycles (more than \
             {}%):\n{}",
            100 - AGREEMENT_PCT,
            table(header, &rows)
        )]
    } else {
        if bad > 0 {
            println!(
                "tolerated heap disagreements ({bad} of {total} cycles):\n{}",
                table(header, &rows)
            );
        }
        Vec::new()
    }
}

/// GOGC and GOMEMLIMIT the runtime runs with (100 and "no limit", math.MaxInt64, by default).
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    pub gogc: i64,
    pub memory_limit_bytes: i64,
}

pub const DEFAULT_KNOBS: Knobs = Knobs {
    gogc: 100,
    memory_limit_bytes: i64::MAX,
};

/// Every gc record carries the GOGC and GOMEMLIMIT the program was started with.
pub fn check_knobs(trace: &Trace, expected: Knobs) -> Vec<String> {
    let mut failures = Vec::new();
    let wrong: Vec<String> = trace
        .gc
        .iter()
        .filter(|r| {
            r.gogc != Some(expected.gogc)
                || r.memory_limit_bytes != Some(expected.memory_limit_bytes)
        })
        .map(|r| {
            format!(
                "cycle {}: gogc {:?}, memory_limit_bytes {:?}",
                r.cycle, r.gogc, r.memory_limit_bytes
            )
        })
        .collect();
    if trace.gc.is_empty() {
        failures.push("no gc records to check gogc/memory_limit_bytes on".into());
    } else if !wrong.is_empty() {
        failures.push(format!(
            "{} of {} gc records lack gogc {} / memory_limit_bytes {} (the program's \
             GOGC/GOMEMLIMIT); first ones:\n  {}",
            wrong.len(),
            trace.gc.len(),
            expected.gogc,
            expected.memory_limit_bytes,
            wrong
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    failures
}

/// Allocation figures of a launch-mode run against MemStats at the program's exit:
/// `summary.alloc_bytes` within 5 % of TotalAlloc; `alloc` records at least once a
/// second of the program's own run time (MemStats' ElapsedNs) and never more than 1.5 s
/// apart, with strictly increasing timestamps and non-decreasing totals that never
/// exceed TotalAlloc by more than 5 %.
pub fn check_alloc(trace: &Trace, memstats: &MemStats) -> Vec<String> {
    let mut failures = Vec::new();
    let total = memstats.total_alloc;
    match trace.summary.as_ref().and_then(|s| s.alloc_bytes) {
        Some(bytes) if bytes.abs_diff(total) <= total / 20 => {}
        other => failures.push(format!(
            "summary.alloc_bytes is {other:?}, MemStats.TotalAlloc at exit is {total} \
             (allowed: within 5 %)"
        )),
    }
    let secs = memstats.elapsed_ns / 1_000_000_000;
    if (trace.alloc.len() as u64) < secs {
        failures.push(format!(
            "{} alloc records for a program that ran {:.2} s (at least one a second expected)",
            trace.alloc.len(),
            memstats.elapsed_ns as f64 / 1e9
        ));
    }
    for w in trace.alloc.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.ts_ns <= a.ts_ns || b.total_bytes < a.total_bytes {
            failures.push(format!(
                "alloc records go backwards: {a:?} then {b:?} (ts_ns must increase, \
                 total_bytes must not decrease)"
            ));
        } else if b.ts_ns - a.ts_ns > 1_500_000_000 {
            failures.push(format!(
                "alloc records {} ms apart: {a:?} then {b:?} (one a second expected)",
                (b.ts_ns - a.ts_ns) / 1_000_000
            ));
        }
    }
    if let Some(last) = trace.alloc.last() {
        if last.total_bytes > total + total / 20 {
            failures.push(format!(
                "the last alloc record says {} bytes, more than MemStats.TotalAlloc {total} \
                 at exit",
                last.total_bytes
            ));
        }
    }
    failures
}

// ---------------------------------------------------------------------------------
// Self-tests of the parsers (run without root or GCTRACE_INTEGRATION).

pub fn self_test_parsers() {
    assert_eq!(
        parse_ms("0.026"),
        Some(MsRange {
            lo_ns: 26_000,
            hi_ns: 27_000
        })
    );
    assert_eq!(
        parse_ms("1.8"),
        Some(MsRange {
            lo_ns: 1_800_000,
            hi_ns: 1_900_000
        })
    );
    assert_eq!(
        parse_ms("0.39"),
        Some(MsRange {
            lo_ns: 390_000,
            hi_ns: 400_000
        })
    );
    assert_eq!(
        parse_ms("12"),
        Some(MsRange {
            lo_ns: 12_000_000,
            hi_ns: 13_000_000
        })
    );
    assert_eq!(
        parse_ms("0"),
        Some(MsRange {
            lo_ns: 0,
            hi_ns: 1_000
        })
    );
    assert_eq!(parse_ms(""), None);
    assert_eq!(parse_ms("1."), None);
    assert_eq!(parse_ms("x"), None);

    let line = "gc 10 @0.500s 2%: 0.22+10+0.004 ms clock, 0.44+0/1.4/17+0.008 ms cpu, \
                55->55->31 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)";
    let parsed = parse_gctrace_line(line).expect("parses");
    assert_eq!(parsed.cycle, 10);
    assert!(parsed.forced);
    assert_eq!(parsed.clock[0].lo_ns, 220_000);
    assert_eq!(parsed.clock[1].lo_ns, 10_000_000);
    assert_eq!(parsed.clock[1].hi_ns, 11_000_000);
    assert_eq!(parsed.clock[2].hi_ns, 5_000);
    assert_eq!(parsed.at_ms, Some(500));
    assert_eq!(parsed.util_pct, Some(2));
    let cpu = parsed.cpu.expect("cpu parses");
    assert_eq!(cpu[0].lo_ns, 440_000);
    assert_eq!(cpu[1], parse_ms("0").expect("0"));
    assert_eq!(cpu[2].lo_ns, 1_400_000);
    assert_eq!(cpu[3].lo_ns, 17_000_000);
    assert_eq!(cpu[4].lo_ns, 8_000);
    assert_eq!(parsed.heap_mb, Some([55, 55, 31]));
    assert_eq!(parsed.goal_mb, Some(61));
    assert_eq!(parsed.stacks_mb, Some(0));
    assert_eq!(parsed.globals_mb, Some(0));
    assert_eq!(parsed.procs, Some(2));
    assert_eq!(parsed.text, line);

    // The tracer prints `?` for what it could not read: those figures are None.
    let unknown = "gc 7 @?s ?%: 0.026+0.32+0.003 ms clock, ?+?/?/?+? ms cpu, ?->?->? MB, \
                   ? MB goal, ? MB stacks, ? MB globals, ? P";
    let parsed = parse_gctrace_line(unknown).expect("parses");
    assert_eq!(
        (parsed.at_ms, parsed.util_pct, parsed.cpu),
        (None, None, None)
    );
    assert_eq!(
        (parsed.heap_mb, parsed.goal_mb, parsed.procs),
        (None, None, None)
    );
    assert!(!parsed.forced);

    let noisy = "some other output gc 3 @0.034s 6% (checking for goroutine leaks): \
                 0.10+2.6+0.004 ms clock, 0.20+1.7/0.88/1.5+0.008 ms cpu, 8->9->7 MB, \
                 10 MB goal, 0 MB stacks, 0 MB globals, 2 P";
    let parsed = parse_gctrace_line(noisy).expect("parses");
    assert_eq!(parsed.cycle, 3);
    assert!(!parsed.forced);
    assert_eq!(parsed.at_ms, Some(34));
    assert_eq!(parsed.util_pct, Some(6));
    assert_eq!(parsed.heap_mb, Some([8, 9, 7]));
    assert_eq!(parsed.goal_mb, Some(10));
    assert_eq!(parsed.procs, Some(2));
    assert_eq!(parse_gctrace_line("gc 3 is not a trace line"), None);
    assert_eq!(parse_gctrace_line("scvg: 0 MB released"), None);

    let trace = parse_trace(
        "{\"type\":\"process\",\"pid\":7,\"exe\":\"/x\",\"go_version\":\"go1.25.5\",\"arch\":\"x86_64\",\"gomaxprocs\":2}\n\
         {\"type\":\"gc\",\"cycle\":1,\"trigger\":\"heap\",\"start_ns\":1,\"end_ns\":2,\"sweep_term_ns\":3,\"mark_ns\":4,\"mark_term_ns\":5,\"pause_ns\":6,\"heap_start_bytes\":null}\n\
         {\"type\":\"stw\",\"reason\":\"read mem stats\",\"start_ns\":1,\"duration_ns\":2,\"cycle\":null}\n\
         {\"type\":\"summary\",\"cycles\":1,\"pause_p50_ns\":1,\"pause_p99_ns\":1,\"pause_max_ns\":1,\"alloc_bytes\":null,\"alloc_objects\":null,\"lost_events\":0}\n",
    );
    assert!(trace.errors.is_empty(), "{:?}", trace.errors);
    assert_eq!(trace.first_type.as_deref(), Some("process"));
    assert_eq!(trace.last_type.as_deref(), Some("summary"));
    assert_eq!(trace.gc.len(), 1);
    assert_eq!(trace.gc[0].trigger.as_deref(), Some("heap"));
    assert_eq!(trace.stw[0].cycle, None);
    assert_eq!(trace.summary.as_ref().map(|s| s.lost_events), Some(0));
    assert_eq!(trace.process.as_ref().and_then(|p| p.pid), Some(7));
    assert_eq!(trace.gc[0].pause_ns, 6);
    assert_eq!(trace.gc[0].heap.start, None);

    // A record without a required field, or with one of the wrong type, is an error
    // that names it; a record type the harness does not know is passed over.
    let bad = parse_trace(
        "{\"type\":\"gc\",\"cycle\":1,\"start_ns\":1}\n\
         {\"type\":\"stw\",\"reason\":5,\"start_ns\":1,\"duration_ns\":2}\n\
         {\"type\":\"future\",\"x\":1}\n\
         not json\n",
    );
    assert_eq!(bad.errors.len(), 3, "{:?}", bad.errors);
    assert!(bad.errors[0].contains("end_ns"), "{:?}", bad.errors);
    assert!(bad.gc.is_empty() && bad.stw.is_empty());
    assert_eq!(bad.last_type.as_deref(), Some("future"));
}
