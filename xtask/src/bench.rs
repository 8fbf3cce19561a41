//! `cargo xtask bench`: what tracing costs the traced program, measured side by side.
//!
//! An allocation-heavy gcload run doing a fixed amount of work (`-work MiB`: allocate
//! that much, no pacing, exit) alone and under `gctrace-bpf` (default mode, JSON to a
//! file), in interleaved pairs whose order alternates so drift in the machine's load
//! hits both sides alike. Reported: the medians of the workload's own wall time (its
//! `ElapsedNs`, main to end of work: the tracer's start-up is not the program's
//! slowdown) and their ratio, probe hits per GC cycle, and the runtime's own pause
//! figures (MemStats.PauseNs) alone vs traced. The results replace the generated section
//! of docs/performance.md; the hand-written introduction above it stays.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::env;

/// Markers of the section `cargo xtask bench` rewrites in docs/performance.md.
const BEGIN: &str = "<!-- BEGIN cargo xtask bench: generated, do not edit by hand -->";
const END: &str = "<!-- END cargo xtask bench -->";

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Alone/traced pairs to run (the order alternates from one pair to the next).
    #[arg(long, default_value_t = 20)]
    pairs: usize,
    /// MiB each gcload run allocates (its fixed work).
    #[arg(long, default_value_t = 1024)]
    work_mib: u64,
    /// Print the results without rewriting docs/performance.md.
    #[arg(long)]
    no_write: bool,
}

/// One gcload run.
#[derive(Debug)]
struct Sample {
    /// gcload's own ElapsedNs: main to end of work.
    work_ns: u64,
    /// gcload's CPU time (getrusage at the end: user + system, and system alone).
    cpu_ns: u64,
    sys_ns: u64,
    /// Spawn to exit of the command (gcload, or the tracer launching it).
    process_ns: u64,
    /// CPU time of the whole command (its process tree, once reaped).
    command_cpu_ns: u64,
    num_gc: u64,
    /// MemStats.PauseNs of the run's cycles (the last 256 at most).
    pauses_ns: Vec<u64>,
    /// Traced runs: records in the trace.
    gc_records: u64,
    stw_records: u64,
    lost_events: u64,
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.pairs == 0 || args.work_mib == 0 {
        bail!("--pairs and --work-mib must be positive");
    }
    if !env::is_root()? {
        bail!("cargo xtask bench loads eBPF programs: run it as root");
    }
    let started = Instant::now();
    super::build()?;
    let tracer = env::tracer_binary();
    let go = env::newest_go()?;
    let dir = env::target_dir().join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let gcload = dir.join("gcload");
    env::run(
        env::go_command(&go.go)
            .arg("build")
            .arg("-o")
            .arg(&gcload)
            .arg("./")
            .current_dir(env::workspace_root().join("workloads").join("gcload")),
    )
    .with_context(|| format!("building gcload with Go {}", go.version))?;

    let bench = Bench {
        tracer,
        gcload,
        dir,
        work_mib: args.work_mib,
    };
    let load_before = loadavg();
    println!(
        "bench: {} pairs of gcload -work {} (Go {}), alone vs traced; warming up",
        args.pairs, args.work_mib, go.version
    );
    // One discarded pair: page cache, CPU frequency, the tracer's first load.
    bench.alone()?;
    bench.traced()?;
    let mut alone = Vec::new();
    let mut traced = Vec::new();
    for pair in 0..args.pairs {
        let (a, t) = if pair % 2 == 0 {
            let a = bench.alone()?;
            (a, bench.traced()?)
        } else {
            let t = bench.traced()?;
            (bench.alone()?, t)
        };
        println!(
            "  pair {:>2}: alone {:.3} s ({:.3} s CPU), traced {:.3} s ({:.3} s CPU), {} / {} cycles",
            pair + 1,
            secs(a.work_ns),
            secs(a.cpu_ns),
            secs(t.work_ns),
            secs(t.cpu_ns),
            a.num_gc,
            t.num_gc
        );
        alone.push(a);
        traced.push(t);
    }
    let report = Report::new(&alone, &traced, args, &go.version, load_before, loadavg());
    let section = report.markdown();
    println!("\n{section}");
    if !args.no_write {
        let doc = env::workspace_root().join("docs").join("performance.md");
        write_section(&doc, &section)?;
        println!("bench: wrote {}", doc.display());
    }
    println!(
        "bench: traced/alone {:.3} wall (median {:.3} s vs {:.3} s), {:.3} CPU; ~{:.1} probe \
         hits per cycle; median pause {:.0} µs alone vs {:.0} µs traced; took {} s",
        report.ratio,
        secs(report.work_traced),
        secs(report.work_alone),
        report.cpu_ratio,
        report.hits_per_cycle,
        report.pause_alone as f64 / 1e3,
        report.pause_traced as f64 / 1e3,
        started.elapsed().as_secs()
    );
    Ok(())
}

struct Bench {
    tracer: PathBuf,
    gcload: PathBuf,
    dir: PathBuf,
    work_mib: u64,
}

impl Bench {
    fn memstats_path(&self) -> PathBuf {
        self.dir.join("memstats.json")
    }

    /// gcload's arguments: the fixed work, and where to write its MemStats.
    fn gcload_args(&self) -> Vec<OsString> {
        vec![
            "-work".into(),
            self.work_mib.to_string().into(),
            "-memstats-out".into(),
            self.memstats_path().into(),
        ]
    }

    fn alone(&self) -> Result<Sample> {
        let run = self.run(Command::new(&self.gcload).args(self.gcload_args()))?;
        self.sample(run, None)
    }

    fn traced(&self) -> Result<Sample> {
        let trace = self.dir.join("trace.ndjson");
        let mut cmd = Command::new(&self.tracer);
        cmd.args(["--format", "json", "--output"])
            .arg(&trace)
            .arg("--")
            .arg(&self.gcload)
            .args(self.gcload_args());
        let run = self.run(&mut cmd)?;
        self.sample(run, Some(&trace))
    }

    /// Runs `cmd` (stdout discarded, stderr kept for errors); its wall time and the CPU
    /// time of its process tree, in ns.
    fn run(&self, cmd: &mut Command) -> Result<(u64, u64)> {
        let _ = fs::remove_file(self.memstats_path());
        let line = env::describe(cmd);
        let cpu_before = children_cpu_ns()?;
        let start = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("could not start `{line}`"))?;
        let elapsed = start.elapsed();
        if !out.status.success() {
            bail!(
                "`{line}` failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((
            nanos(elapsed),
            children_cpu_ns()?.saturating_sub(cpu_before),
        ))
    }

    fn sample(
        &self,
        (process_ns, command_cpu_ns): (u64, u64),
        trace: Option<&Path>,
    ) -> Result<Sample> {
        let path = self.memstats_path();
        let memstats =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let field = |key: &str| {
            json_u64(&memstats, key).with_context(|| format!("no {key} in {}", path.display()))
        };
        let mut sample = Sample {
            work_ns: field("ElapsedNs")?,
            cpu_ns: field("UserNs")? + field("SysNs")?,
            sys_ns: field("SysNs")?,
            process_ns,
            command_cpu_ns,
            num_gc: field("NumGC")?,
            pauses_ns: json_u64_array(&memstats, "PauseNs")
                .with_context(|| format!("no PauseNs in {}", path.display()))?,
            gc_records: 0,
            stw_records: 0,
            lost_events: 0,
        };
        if let Some(trace) = trace {
            let text = fs::read_to_string(trace)
                .with_context(|| format!("reading {}", trace.display()))?;
            for line in text.lines() {
                if line.starts_with("{\"type\":\"gc\"") {
                    sample.gc_records += 1;
                } else if line.starts_with("{\"type\":\"stw\"") {
                    sample.stw_records += 1;
                } else if line.starts_with("{\"type\":\"summary\"") {
                    sample.lost_events = json_u64(line, "lost_events").unwrap_or(0);
                }
            }
            if sample.gc_records == 0 {
                bail!(
                    "the traced run's trace {} has no gc record",
                    trace.display()
                );
            }
        }
        Ok(sample)
    }
}

struct Report {
    pairs: usize,
    work_mib: u64,
    go_version: String,
    load_before: String,
    load_after: String,
    work_alone: u64,
    work_traced: u64,
    ratio: f64,
    /// Each pair's traced/alone ratio, sorted: the spread.
    pair_ratios: Vec<f64>,
    cpu_alone: u64,
    cpu_traced: u64,
    cpu_ratio: f64,
    sys_alone: u64,
    sys_traced: u64,
    process_alone: u64,
    process_traced: u64,
    /// The tracer's own CPU per run: the command's CPU minus gcload's.
    tracer_cpu: u64,
    cycles_alone: u64,
    cycles_traced: u64,
    hits_per_cycle: f64,
    stw_per_cycle: f64,
    pause_p10_alone: u64,
    pause_p10_traced: u64,
    pause_alone: u64,
    pause_traced: u64,
    pause_p90_alone: u64,
    pause_p90_traced: u64,
    lost_events: u64,
}

impl Report {
    fn new(
        alone: &[Sample],
        traced: &[Sample],
        args: &BenchArgs,
        go_version: &str,
        load_before: String,
        load_after: String,
    ) -> Report {
        let med = |v: &[Sample], f: fn(&Sample) -> u64| median(v.iter().map(f).collect());
        let work_alone = med(alone, |s| s.work_ns);
        let work_traced = med(traced, |s| s.work_ns);
        let mut pair_ratios: Vec<f64> = alone
            .iter()
            .zip(traced)
            .map(|(a, t)| t.work_ns as f64 / a.work_ns.max(1) as f64)
            .collect();
        pair_ratios.sort_by(f64::total_cmp);
        let cpu_alone = med(alone, |s| s.cpu_ns);
        let cpu_traced = med(traced, |s| s.cpu_ns);
        let gc: u64 = traced.iter().map(|s| s.gc_records).sum();
        let stw: u64 = traced.iter().map(|s| s.stw_records).sum();
        let pooled = |v: &[Sample]| v.iter().flat_map(|s| s.pauses_ns.clone()).collect();
        let (pa, pt): (Vec<u64>, Vec<u64>) = (pooled(alone), pooled(traced));
        Report {
            pairs: args.pairs,
            work_mib: args.work_mib,
            go_version: go_version.to_owned(),
            load_before,
            load_after,
            work_alone,
            work_traced,
            ratio: work_traced as f64 / work_alone.max(1) as f64,
            pair_ratios,
            cpu_alone,
            cpu_traced,
            cpu_ratio: cpu_traced as f64 / cpu_alone.max(1) as f64,
            sys_alone: med(alone, |s| s.sys_ns),
            sys_traced: med(traced, |s| s.sys_ns),
            process_alone: med(alone, |s| s.process_ns),
            process_traced: med(traced, |s| s.process_ns),
            tracer_cpu: med(traced, |s| s.command_cpu_ns.saturating_sub(s.cpu_ns)),
            cycles_alone: med(alone, |s| s.num_gc),
            cycles_traced: med(traced, |s| s.num_gc),
            // One hit at gcStart per cycle, two per stop-the-world (entry, and the RET
            // that restarts the world); the tracer does not count its hits itself.
            hits_per_cycle: (2 * stw + gc) as f64 / gc.max(1) as f64,
            stw_per_cycle: stw as f64 / gc.max(1) as f64,
            pause_p10_alone: percentile(pa.clone(), 10),
            pause_p10_traced: percentile(pt.clone(), 10),
            pause_alone: percentile(pa.clone(), 50),
            pause_traced: percentile(pt.clone(), 50),
            pause_p90_alone: percentile(pa, 90),
            pause_p90_traced: percentile(pt, 90),
            lost_events: traced.iter().map(|s| s.lost_events).sum(),
        }
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let us = |ns: u64| format!("{:.0} µs", ns as f64 / 1e3);
        let s = |ns: u64| format!("{:.3} s", secs(ns));
        let _ = writeln!(md, "## Latest run: {}\n", today());
        let _ = writeln!(
            md,
            "Machine: {}; kernel {}; load average before {}, after {}.\n\
             Workload: `gcload -work {}` (Go {}): 4 goroutines allocate {} MiB in all, \
             unpaced. {} interleaved pairs (order alternating), after one discarded pair.\n",
            cpu_description(),
            fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into()),
            self.load_before,
            self.load_after,
            self.work_mib,
            self.go_version,
            self.work_mib,
            self.pairs
        );
        let _ = writeln!(md, "| measure (median) | alone | traced | traced/alone |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| workload wall time (its own clock: main to end of work) | {} | {} | **{:.3}** |",
            s(self.work_alone),
            s(self.work_traced),
            self.ratio
        );
        let _ = writeln!(
            md,
            "| workload CPU time (user + system, getrusage) | {} | {} | **{:.3}** |",
            s(self.cpu_alone),
            s(self.cpu_traced),
            self.cpu_ratio
        );
        let _ = writeln!(
            md,
            "| of which system time (uprobe traps are charged here) | {} | {} | {:+.0} ms |",
            s(self.sys_alone),
            s(self.sys_traced),
            (self.sys_traced as f64 - self.sys_alone as f64) / 1e6
        );
        let _ = writeln!(
            md,
            "| whole command, spawn to exit (traced: tracer start-up, attach and flush included) | {} | {} | {:.3} |",
            s(self.process_alone),
            s(self.process_traced),
            self.process_traced as f64 / self.process_alone.max(1) as f64
        );
        let _ = writeln!(
            md,
            "| the tracer's own CPU time per run (start-up included; 10 ms ticks) | | {} | |",
            s(self.tracer_cpu)
        );
        let _ = writeln!(
            md,
            "| GC cycles per run | {} | {} | |",
            self.cycles_alone, self.cycles_traced
        );
        let pauses = [
            ("p10", self.pause_p10_alone, self.pause_p10_traced),
            ("median", self.pause_alone, self.pause_traced),
            ("p90", self.pause_p90_alone, self.pause_p90_traced),
        ];
        for (name, a, t) in pauses {
            let _ = writeln!(
                md,
                "| MemStats.PauseNs per cycle (both stops), {name} over all cycles | {} | {} | {:+.0} µs |",
                us(a),
                us(t),
                (t as f64 - a as f64) / 1e3
            );
        }
        let _ = writeln!(md);
        let spread = match (self.pair_ratios.first(), self.pair_ratios.last()) {
            (Some(lo), Some(hi)) => format!("{lo:.3} to {hi:.3}"),
            _ => "?".into(),
        };
        let _ = writeln!(
            md,
            "- Per-pair traced/alone ratios range from {spread}.\n\
             - Probe hits per GC cycle: **~{:.1}**, an estimate from the trace (the tracer \
             does not count its hits): one at `gcStart` per cycle plus two per \
             stop-the-world, {:.2} stops per cycle here (the GC's two, plus the final \
             `ReadMemStats`).\n\
             - Pause inflation per stop: about half the per-cycle difference above (a \
             cycle has two stops, one probe hit inside each). On a loaded machine the \
             median and p90 pauses are dominated by preemption of the stopping threads; \
             p10 is the least disturbed.\n\
             - Lost events in all traced runs: {}.",
            self.hits_per_cycle, self.stw_per_cycle, self.lost_events
        );
        md
    }
}

/// Replaces the generated section of `doc` (or appends one), keeping the rest.
fn write_section(doc: &Path, section: &str) -> Result<()> {
    let old = fs::read_to_string(doc).unwrap_or_default();
    let generated = format!("{BEGIN}\n\n{section}\n{END}\n");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!(
                "{}{generated}{}",
                &old[..b],
                &old[e + END.len()..].trim_start_matches('\n')
            )
        }
        _ if old.is_empty() => format!("# Performance\n\n{generated}"),
        _ => format!("{}\n{generated}", old.trim_end()),
    };
    if let Some(parent) = doc.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(doc, new).with_context(|| format!("writing {}", doc.display()))
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn median(v: Vec<u64>) -> u64 {
    percentile(v, 50)
}

/// Nearest-rank percentile (0 for no values).
fn percentile(mut v: Vec<u64>, pct: usize) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = (v.len() * pct).div_ceil(100).max(1);
    v[rank - 1]
}

/// `"key":123` in compact JSON (gcload's -memstats-out, the tracer's records).
fn json_u64(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let rest = &text[text.find(&pat)? + pat.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `"key":[1,2,3]` in compact JSON.
fn json_u64_array(text: &str, key: &str) -> Option<Vec<u64>> {
    let pat = format!("\"{key}\":[");
    let rest = &text[text.find(&pat)? + pat.len()..];
    let body = &rest[..rest.find(']')?];
    body.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().ok())
        .collect()
}

/// CPU time (user + system) of this process's reaped children so far: /proc/self/stat
/// cutime + cstime, in USER_HZ ticks (100 per second on Linux).
fn children_cpu_ns() -> Result<u64> {
    let stat = fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .context("malformed /proc/self/stat")
    };
    // cutime is field 16, cstime field 17.
    Ok((tick(13)? + tick(14)?) * 10_000_000)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// "2 × Intel(R) Xeon(R) ..." from /proc/cpuinfo.
fn cpu_description() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let hypervisor = if info.contains(" hypervisor") {
        ", virtual machine"
    } else {
        ""
    };
    format!("{cpus} × {model}{hypervisor}")
}

/// Today's date (UTC), from `date`, for the section heading.
fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown date".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields() {
        let text = r#"{"NumGC":3,"PauseNs":[10,20,30],"TotalAlloc":5,"ElapsedNs":42}"#;
        assert_eq!(json_u64(text, "NumGC"), Some(3));
        assert_eq!(json_u64(text, "ElapsedNs"), Some(42));
        assert_eq!(json_u64(text, "Missing"), None);
        assert_eq!(json_u64_array(text, "PauseNs"), Some(vec![10, 20, 30]));
        assert_eq!(json_u64_array(r#"{"PauseNs":[]}"#, "PauseNs"), Some(vec![]));
    }

    #[test]
    fn percentiles() {
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![5]), 5);
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(percentile((1..=10).collect(), 90), 9);
        assert_eq!(percentile((1..=10).collect(), 50), 5);
    }

    #[test]
    fn section_is_replaced_and_the_intro_kept() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        let doc = dir.join("performance.md");
        let _ = fs::remove_dir_all(&dir);
        write_section(&doc, "first\n")?;
        let text = fs::read_to_string(&doc)?;
        assert!(text.starts_with("# Performance\n"), "{text}");
        fs::write(
            &doc,
            text.replace("# Performance\n", "# Performance\n\nintro\n"),
        )?;
        write_section(&doc, "second\n")?;
        let text = fs::read_to_string(&doc)?;
        assert!(text.contains("intro\n") && text.contains("second") && !text.contains("first"));
        assert_eq!(text.matches(BEGIN).count(), 1, "{text}");
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
