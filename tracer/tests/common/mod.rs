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

/// FNV-1a over the workload's sources and the toolchain, to know when to rebuild.
fn gcload_fingerprint(src: &Path, toolchain: &Toolchain) -> String {
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
    for name in &names {
        feed(name.to_string_lossy().as_bytes());
        feed(&fs::read(name).unwrap_or_else(|e| panic!("reading {}: {e}", name.display())));
    }
    format!("{hash:016x}")
}

/// Builds workloads/gcload with `toolchain` into `<target>/gcload-cache/<version>/`,
/// reusing the previous build while the sources are unchanged.
pub fn build_gcload(toolchain: &Toolchain) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());

    let src = workspace_root().join("workloads").join("gcload");
    let dir = target_dir().join("gcload-cache").join(&toolchain.version);
    let bin = dir.join("gcload");
    let stamp = dir.join("gcload.stamp");
    let fingerprint = gcload_fingerprint(&src, toolchain);
    if bin.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint.as_str()) {
        return bin;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let tmp = dir.join("gcload.tmp");
    let out = go_command(&toolchain.go)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg("./")
        .current_dir(&src)
        .output()
        .unwrap_or_else(|e| panic!("running {} build: {e}", toolchain.go.display()));
    assert!(
        out.status.success(),
        "building gcload with Go {} failed ({}):\n{}{}",
        toolchain.version,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// One `gc N @Ts P%: a+b+c ms clock, ...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcTraceLine {
    pub cycle: u32,
    /// Sweep termination, concurrent mark, mark termination (wall clock).
    pub clock: [MsRange; 3],
    /// Ends with " (forced)": runtime.GC() or debug.FreeOSMemory.
    pub forced: bool,
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
    let rest = &rest[rest.find(": ")? + 2..];
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
    let forced = rest[clock_end..].contains(" (forced)");
    Some(GcTraceLine {
        cycle,
        clock,
        forced,
    })
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

#[derive(Clone, Debug)]
pub struct ProcessRec {
    pub pid: Option<u64>,
    pub exe: Option<String>,
    pub go_version: Option<String>,
    pub arch: Option<String>,
}

#[derive(Clone, Debug)]
pub struct GcRec {
    pub cycle: u32,
    pub trigger: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub sweep_term_ns: u64,
    pub mark_ns: u64,
    pub mark_term_ns: u64,
    pub pause_ns: u64,
}

#[derive(Clone, Debug)]
pub struct StwRec {
    pub reason: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub cycle: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct SummaryRec {
    pub cycles: u64,
    pub lost_events: u64,
}

#[derive(Debug, Default)]
pub struct Trace {
    /// The first line, if it was a process record.
    pub process: Option<ProcessRec>,
    pub first_type: Option<String>,
    pub last_type: Option<String>,
    pub gc: Vec<GcRec>,
    pub stw: Vec<StwRec>,
    pub summary: Option<SummaryRec>,
    /// Lines that are not JSON objects or lack a required field.
    pub errors: Vec<String>,
}

fn field_u64(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("missing or non-integer {key:?}"))
}

fn field_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
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
        let ty = field_str(&v, "type").unwrap_or_default();
        if trace.first_type.is_none() {
            trace.first_type = Some(ty.clone());
        }
        trace.last_type = Some(ty.clone());
        let parsed: Result<(), String> = (|| {
            match ty.as_str() {
                // Only the first process record counts.
                "process" if trace.process.is_none() => {
                    trace.process = Some(ProcessRec {
                        pid: v.get("pid").and_then(Value::as_u64),
                        exe: field_str(&v, "exe"),
                        go_version: field_str(&v, "go_version"),
                        arch: field_str(&v, "arch"),
                    });
                }
                "gc" => trace.gc.push(GcRec {
                    cycle: field_u64(&v, "cycle")? as u32,
                    trigger: field_str(&v, "trigger"),
                    start_ns: field_u64(&v, "start_ns")?,
                    end_ns: field_u64(&v, "end_ns")?,
                    sweep_term_ns: field_u64(&v, "sweep_term_ns")?,
                    mark_ns: field_u64(&v, "mark_ns")?,
                    mark_term_ns: field_u64(&v, "mark_term_ns")?,
                    pause_ns: field_u64(&v, "pause_ns")?,
                }),
                "stw" => trace.stw.push(StwRec {
                    reason: field_str(&v, "reason").ok_or("missing \"reason\"")?,
                    start_ns: field_u64(&v, "start_ns")?,
                    duration_ns: field_u64(&v, "duration_ns")?,
                    cycle: v.get("cycle").and_then(Value::as_u64).map(|c| c as u32),
                }),
                "summary" => {
                    trace.summary = Some(SummaryRec {
                        cycles: field_u64(&v, "cycles")?,
                        lost_events: field_u64(&v, "lost_events")?,
                    })
                }
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

    let noisy = "some other output gc 3 @0.034s 6% (checking for goroutine leaks): \
                 0.10+2.6+0.004 ms clock, 0.20+1.7/0.88/1.5+0.008 ms cpu, 8->9->7 MB, \
                 10 MB goal, 0 MB stacks, 0 MB globals, 2 P";
    let parsed = parse_gctrace_line(noisy).expect("parses");
    assert_eq!(parsed.cycle, 3);
    assert!(!parsed.forced);
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
}
