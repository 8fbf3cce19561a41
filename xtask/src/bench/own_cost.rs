//! What gctrace-bpf itself costs, beside what it costs the traced program (the other
//! series): its own CPU time and memory while tracing, at a GC-only event rate and at a
//! high one; how long it takes from start to attached, on gcload and on a ~100 MB
//! binary; and the highest event rate it keeps up with without losing an event.
//!
//! The tracer runs as `--pid` on a target the bench started, so its figures are its own:
//! CPU time from /proc/PID/stat over a window while it runs (in launch mode the target
//! would be its child, and its rusage would include the target's), peak RSS as
//! `ru_maxrss` from wait4 (whole run: analysis, attach and exit included). "Attached" is
//! when its first record, `process`, is in the output file: the tracer writes and flushes
//! it after every probe is attached.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::bigbin::{self, BigBinary};
use super::{json_u64, median, secs, BenchArgs};
use crate::env::GoToolchain;

mod report;

use report::mb;

/// Time from attached to the start of the CPU window: start-up work that finishes just
/// after attach (first memory sample, allocation baseline) stays out of the window.
const WARMUP: Duration = Duration::from_secs(1);
/// How often the output file is checked for the `process` record.
const POLL: Duration = Duration::from_millis(2);
/// The longest a start-up may take before the bench gives up.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// Stops per second of `gcload -stw-loop` with no `-stw-rate`, traced, on this VM: sizes
/// the back-to-back runs of the rate series to about `--rate-secs`.
const UNPACED_STOPS_PER_SEC: u64 = 15_000;

/// The load the tracer watches in the footprint series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `gcload -forever`: four paced allocating goroutines, tens of GC cycles a second.
    GcOnly,
    /// `gcload -stw-loop`: stops of the world back to back, the highest event rate a Go
    /// program gives the default mode (stops are serialised by the runtime).
    StwLoop,
}

impl Load {
    fn gcload_args(self) -> Vec<String> {
        match self {
            Load::GcOnly => vec!["-forever".into()],
            // Far more stops than a run lasts: the target is killed once the tracer ends.
            Load::StwLoop => vec!["-stw-loop".into(), "2000000000".into()],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Load::GcOnly => "GC only (`gcload -forever`)",
            Load::StwLoop => "high event rate (`gcload -stw-loop`)",
        }
    }
}

/// One footprint run.
#[derive(Debug)]
pub struct Footprint {
    pub window_ns: u64,
    /// The tracer's CPU time (user + system, all threads) within the window.
    pub window_cpu_ns: u64,
    /// Its CPU time for the whole run, start-up and exit included (wait4).
    pub total_cpu_ns: u64,
    pub maxrss_kib: u64,
    /// Stop-the-world and gc records whose start lies in the window.
    pub stops: u64,
    pub cycles: u64,
    pub lost: u64,
}

impl Footprint {
    /// Probe hits in the window: two per stop (entry and RET of `startTheWorldWithSema`)
    /// and one per cycle (`gcStart`, more when goroutines race). On Go 1.22+ the kernel
    /// sends a stop's two hits as one ring-buffer event.
    pub fn events(&self) -> u64 {
        2 * self.stops + self.cycles
    }

    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.window_cpu_ns as f64 / self.window_ns.max(1) as f64
    }
}

/// One attach: the whole start-up to attached, and the analysis alone.
#[derive(Debug)]
pub struct Attach {
    pub attach_ns: u64,
    /// `gctrace-bpf inspect` on the same binary: the binary analysis alone.
    pub analysis_ns: u64,
    pub maxrss_kib: u64,
}

/// One run of the rate series.
#[derive(Debug)]
pub struct RateRun {
    /// Stops per second asked of gcload (0: back to back).
    pub requested: u64,
    pub stops: u64,
    /// gcload's own ElapsedNs for the stops.
    pub elapsed_ns: u64,
    pub stw_records: u64,
    pub lost: u64,
}

impl RateRun {
    /// Probe hits per second offered to the tracer: two per stop.
    pub fn events_per_sec(&self) -> f64 {
        2.0 * self.stops as f64 / secs(self.elapsed_ns).max(1e-9)
    }
}

pub struct OwnCost {
    pub footprint_window: Duration,
    /// Per load, in round order.
    pub footprint: Vec<(Load, Vec<Footprint>)>,
    pub attach_small: Vec<Attach>,
    pub attach_big: Vec<Attach>,
    pub small_bytes: u64,
    pub big: Option<BigBinary>,
    pub rates: Vec<RateRun>,
    pub rate_secs: u64,
}

/// A process the bench started, killed (SIGKILL) and reaped if still running when
/// dropped, so a failing bench leaves nothing behind.
struct Proc {
    child: Child,
    reaped: bool,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Result<Proc> {
        let line = crate::env::describe(cmd);
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start `{line}`"))?;
        Ok(Proc {
            child,
            reaped: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped (so not reused).
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Waits for the process (wait4): its exit status and resource usage.
    fn wait(mut self) -> Result<(libc::c_int, Usage)> {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own unreaped child, with pointers to live locals.
        let rc = unsafe { libc::wait4(self.child.id() as libc::pid_t, &mut status, 0, &mut ru) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context("wait4");
        }
        self.reaped = true;
        let tv_ns =
            |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000;
        Ok((
            status,
            Usage {
                cpu_ns: tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime),
                maxrss_kib: ru.ru_maxrss as u64,
            },
        ))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A child's resource usage, from wait4.
struct Usage {
    cpu_ns: u64,
    maxrss_kib: u64,
}

/// Whether a wait status is a normal exit with status 0.
fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// CLOCK_MONOTONIC now, in ns: the clock of the tracer's timestamps (Go's nanotime).
fn monotonic_ns() -> u64 {
    // SAFETY: an all-zero timespec is a valid value of this plain C struct.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes into the live local it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// On-CPU time of every thread of `pid` so far, in ns: the sum of the scheduler's own
/// count, /proc/PID/task/*/schedstat (/proc/PID/stat counts 10 ms ticks, too coarse for a
/// tenth of a percent over seconds), and how many threads there were. A thread that exits
/// between two readings takes its time with it: the caller checks the count held.
fn proc_cpu_ns(pid: u32) -> Result<(u64, usize)> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    let mut threads = 0;
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry
            .with_context(|| format!("reading {dir}"))?
            .path()
            .join("schedstat");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        total += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("malformed {}", path.display()))?;
        threads += 1;
    }
    Ok((total, threads))
}

/// Waits until the tracer has written its `process` record to `trace`: attached.
fn wait_attached(trace: &Path, tracer: &Proc, stderr: &Path, started: Instant) -> Result<u64> {
    loop {
        if fs::read_to_string(trace).is_ok_and(|t| t.contains("{\"type\":\"process\"")) {
            return Ok(super::nanos(started.elapsed()));
        }
        let state = fs::read_to_string(format!("/proc/{}/stat", tracer.pid())).unwrap_or_default();
        let gone = state
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
        if gone || started.elapsed() > ATTACH_TIMEOUT {
            bail!(
                "gctrace-bpf did not attach ({}): {}",
                if gone { "it exited" } else { "timed out" },
                fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        thread::sleep(POLL);
    }
}

/// The paths and binaries the series share.
pub struct Runner<'a> {
    pub tracer: &'a Path,
    pub gcload: &'a Path,
    pub dir: &'a Path,
}

impl Runner<'_> {
    fn trace_path(&self) -> PathBuf {
        self.dir.join("own.ndjson")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.join("own.stderr")
    }

    /// `gctrace-bpf --pid PID --format json --output own.ndjson --duration SECS`, its
    /// stderr to own.stderr, and the moment it was started.
    fn start_tracer(&self, pid: u32, duration: Duration) -> Result<(Proc, Instant)> {
        let trace = self.trace_path();
        let _ = fs::remove_file(&trace);
        let stderr = fs::File::create(self.stderr_path()).context("creating own.stderr")?;
        let started = Instant::now();
        let proc = Proc::spawn(
            Command::new(self.tracer)
                .args(["--pid", &pid.to_string(), "--format", "json", "--duration"])
                .arg(format!("{:.3}", duration.as_secs_f64()))
                .arg("--output")
                .arg(&trace)
                .stdout(Stdio::null())
                .stderr(stderr),
        )?;
        Ok((proc, started))
    }

    fn footprint_once(&self, load: Load, window: Duration) -> Result<Footprint> {
        let target = Proc::spawn(
            Command::new(self.gcload)
                .args(load.gcload_args())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        thread::sleep(Duration::from_millis(300));
        let (tracer, started) =
            self.start_tracer(target.pid(), WARMUP + window + Duration::from_secs(1))?;
        wait_attached(&self.trace_path(), &tracer, &self.stderr_path(), started)?;
        thread::sleep(WARMUP);
        let ((cpu0, threads0), mono0, t0) =
            (proc_cpu_ns(tracer.pid())?, monotonic_ns(), Instant::now());
        thread::sleep(window);
        let ((cpu1, threads1), mono1, window_ns) = (
            proc_cpu_ns(tracer.pid())?,
            monotonic_ns(),
            super::nanos(t0.elapsed()),
        );
        if threads0 != threads1 {
            bail!(
                "gctrace-bpf went from {threads0} to {threads1} threads within the window: \
                 its CPU time there cannot be summed per thread"
            );
        }
        let (status, usage) = tracer.wait()?;
        if !exited_ok(status) {
            bail!(
                "gctrace-bpf failed (wait status {status:#x}): {}",
                fs::read_to_string(self.stderr_path()).unwrap_or_default()
            );
        }
        match load {
            Load::GcOnly => {
                target.signal(libc::SIGTERM);
                let (status, _) = target.wait()?;
                if !exited_ok(status) {
                    bail!("gcload -forever did not exit cleanly after tracing (wait status {status:#x})");
                }
            }
            Load::StwLoop => drop(target),
        }
        let text = fs::read_to_string(self.trace_path()).context("reading own.ndjson")?;
        let in_window =
            |line: &str| json_u64(line, "start_ns").is_some_and(|t| (mono0..=mono1).contains(&t));
        let mut f = Footprint {
            window_ns,
            window_cpu_ns: cpu1.saturating_sub(cpu0),
            total_cpu_ns: usage.cpu_ns,
            maxrss_kib: usage.maxrss_kib,
            stops: 0,
            cycles: 0,
            lost: 0,
        };
        for line in text.lines() {
            if line.starts_with("{\"type\":\"stw\"") && in_window(line) {
                f.stops += 1;
            } else if line.starts_with("{\"type\":\"gc\"") && in_window(line) {
                f.cycles += 1;
            } else if line.starts_with("{\"type\":\"summary\"") {
                f.lost = json_u64(line, "lost_events").unwrap_or(0);
            }
        }
        Ok(f)
    }

    /// Starts `bin` (reading its ready line when it prints one), then times
    /// `gctrace-bpf inspect` on it and a `--pid` attach.
    fn attach_once(&self, bin: &Path, args: &[&str], ready: Option<&str>) -> Result<Attach> {
        let mut target = Proc::spawn(
            Command::new(bin)
                .args(args)
                .stdout(if ready.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stderr(Stdio::null()),
        )?;
        match (ready, target.child.stdout.take()) {
            (Some(prefix), Some(out)) => {
                let mut line = String::new();
                BufReader::new(out)
                    .read_line(&mut line)
                    .with_context(|| format!("reading {}'s output", bin.display()))?;
                if !line.starts_with(prefix) {
                    bail!("{} did not start: {line:?}", bin.display());
                }
            }
            _ => thread::sleep(Duration::from_millis(300)),
        }
        let t = Instant::now();
        let out = Command::new(self.tracer)
            .args(["inspect", "--format", "json"])
            .arg(bin)
            .stdin(Stdio::null())
            .output()
            .context("running gctrace-bpf inspect")?;
        let analysis_ns = super::nanos(t.elapsed());
        if !out.status.success() {
            bail!(
                "gctrace-bpf inspect {} failed: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (tracer, started) = self.start_tracer(target.pid(), Duration::from_millis(200))?;
        let attach_ns = wait_attached(&self.trace_path(), &tracer, &self.stderr_path(), started)?;
        let (status, usage) = tracer.wait()?;
        if !exited_ok(status) {
            bail!(
                "gctrace-bpf failed (wait status {status:#x}): {}",
                fs::read_to_string(self.stderr_path()).unwrap_or_default()
            );
        }
        target.signal(libc::SIGTERM);
        let (status, _) = target.wait()?;
        if !exited_ok(status) {
            bail!(
                "{} did not exit cleanly after tracing (wait status {status:#x})",
                bin.display()
            );
        }
        Ok(Attach {
            attach_ns,
            analysis_ns,
            maxrss_kib: usage.maxrss_kib,
        })
    }

    /// A launch-mode run of `gcload -stw-loop` at `rate` stops per second (0: unpaced).
    fn rate_once(&self, rate: u64, secs: u64) -> Result<RateRun> {
        let stops = if rate == 0 {
            UNPACED_STOPS_PER_SEC * secs
        } else {
            rate * secs
        };
        let trace = self.trace_path();
        let memstats = self.dir.join("own-memstats.json");
        let _ = fs::remove_file(&trace);
        let _ = fs::remove_file(&memstats);
        let mut cmd = Command::new(self.tracer);
        cmd.args(["--format", "json", "--output"])
            .arg(&trace)
            .arg("--")
            .arg(self.gcload)
            .args(["-stw-loop", &stops.to_string()]);
        if rate > 0 {
            cmd.args(["-stw-rate", &rate.to_string()]);
        }
        cmd.arg("-memstats-out").arg(&memstats);
        let line = crate::env::describe(&cmd);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{line}`"))?;
        if !out.status.success() {
            bail!(
                "`{line}` failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ms = fs::read_to_string(&memstats).context("reading own-memstats.json")?;
        let text = fs::read_to_string(&trace).context("reading own.ndjson")?;
        let mut run = RateRun {
            requested: rate,
            stops,
            elapsed_ns: json_u64(&ms, "ElapsedNs").context("no ElapsedNs")?,
            stw_records: 0,
            lost: 0,
        };
        for line in text.lines() {
            // Only the loop's stops: a GC cycle may run too, and its stops are not counted.
            if line.starts_with("{\"type\":\"stw\"")
                && line.contains("\"reason\":\"read mem stats\"")
            {
                run.stw_records += 1;
            } else if line.starts_with("{\"type\":\"summary\"") {
                run.lost = json_u64(line, "lost_events").context("summary without lost_events")?;
            }
        }
        Ok(run)
    }
}

/// Runs the series `args` asks for.
pub fn measure(runner: &Runner<'_>, go: &GoToolchain, args: &BenchArgs) -> Result<OwnCost> {
    let window = Duration::from_secs(args.footprint_secs);
    let mut own = OwnCost {
        footprint_window: window,
        footprint: vec![(Load::GcOnly, Vec::new()), (Load::StwLoop, Vec::new())],
        attach_small: Vec::new(),
        attach_big: Vec::new(),
        small_bytes: fs::metadata(runner.gcload).map(|m| m.len()).unwrap_or(0),
        big: None,
        rates: Vec::new(),
        rate_secs: args.rate_secs,
    };
    if args.footprint_rounds > 0 {
        println!(
            "bench: own-cost series, {} rounds of gctrace-bpf --pid on gcload, GC only and stop-the-world loop, {} s windows",
            args.footprint_rounds, args.footprint_secs
        );
        for round in 0..args.footprint_rounds {
            let mut line = format!("  footprint {:>2}:", round + 1);
            for k in 0..own.footprint.len() {
                let i = (round + k) % own.footprint.len();
                let load = own.footprint[i].0;
                let f = runner.footprint_once(load, window)?;
                line.push_str(&format!(
                    " {:?} {:.2} % CPU, {} KiB peak, {:.0} events/s;",
                    load,
                    f.cpu_percent(),
                    f.maxrss_kib,
                    f.events() as f64 / secs(f.window_ns)
                ));
                own.footprint[i].1.push(f);
            }
            println!("{}", line.trim_end_matches(';'));
        }
    }
    if args.attach_rounds > 0 {
        let big = bigbin::big_binary(
            go,
            runner.dir,
            args.big_binary_mb,
            args.big_binary_functions,
        )?;
        println!(
            "bench: attach series, {} rounds (after one discarded) on gcload and on {} ({})",
            args.attach_rounds,
            big.path.display(),
            mb(big.bytes)
        );
        for round in 0..=args.attach_rounds {
            let small = runner.attach_once(runner.gcload, &["-forever"], None)?;
            let large = runner.attach_once(&big.path, &[], Some("bigbin ready"))?;
            println!(
                "  attach {:>2}{}: gcload {:.3} s (analysis {:.3} s), big {:.3} s (analysis {:.3} s, {} KiB peak)",
                round,
                if round == 0 { " (discarded)" } else { "" },
                secs(small.attach_ns),
                secs(small.analysis_ns),
                secs(large.attach_ns),
                secs(large.analysis_ns),
                large.maxrss_kib
            );
            if round > 0 {
                own.attach_small.push(small);
                own.attach_big.push(large);
            }
        }
        own.big = Some(big);
    }
    if args.rate_rounds > 0 {
        println!(
            "bench: event-rate series, {} rounds of gcload -stw-loop at {:?} stops/s (0: back to back), {} s each",
            args.rate_rounds, args.rates, args.rate_secs
        );
        for round in 0..args.rate_rounds {
            let mut line = format!("  rate {:>2}:", round + 1);
            for k in 0..args.rates.len() {
                let rate = args.rates[(round + k) % args.rates.len()];
                let r = runner.rate_once(rate, args.rate_secs)?;
                line.push_str(&format!(
                    " {} -> {:.0} events/s, {} lost;",
                    rate,
                    r.events_per_sec(),
                    r.lost
                ));
                own.rates.push(r);
            }
            println!("{}", line.trim_end_matches(';'));
        }
    }
    Ok(own)
}
