//! The observer effect, measured from outside the tracer: what watching costs
//! a GC-heavy program with a small heap (gcload, few live objects, so the 4 MiB minimum
//! goal makes it collect hundreds to a thousand times a second).
//!
//! Interleaved rounds (order rotating) of: the program alone, gctrace-bpf in its default
//! mode, gctrace-bpf `--every-stop` (the default plan before one hit per cycle), bpftrace
//! counting the three runtime entry points a do-it-yourself script would take (`gcStart`,
//! `stopTheWorldWithSema`, `startTheWorldWithSema`), and bpftrace counting the default
//! mode's one site (`mProf_Flush`'s entry): the same trap per cycle with the least BPF work
//! and an idle user space, which splits the default mode's cost into the trap's and the
//! rest (see [`render`]). For each run:
//! - the program's own wall time from main to end of work (`ElapsedNs` of its
//!   `-memstats-out`): medians of traced/alone per round;
//! - the program's own `PauseNs` (its last 256 cycles), pooled per variant: p50/p90/p99;
//! - probe hits counted by the kernel, not by the tool: with `BPF_ENABLE_STATS` held open
//!   by the bench, each BPF program's `run_cnt` in `/proc/TOOL/fdinfo` (the program runs
//!   once per uprobe hit), polled every 10 ms until the tool exits (the last interval's
//!   few hits are missed), divided by the program's own `NumGC`; and those programs'
//!   `run_time_ns` (their own run time in the kernel, the trap around them excluded);
//! - the program's own CPU time (getrusage: a trap is charged to the trapping thread);
//! - the tool's own CPU time while the program ran: its threads' scheduler time
//!   (`/proc/TOOL/task/*/schedstat`), sampled with the run counts, over the last
//!   `ElapsedNs` before it exited (so its start-up is left out, its final drain kept).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Shared, as source, with tracer/tests/integration/probe_hits.rs: both count probe hits from outside
/// the tracer.
#[path = "../../../tracer/tests/common/bpf_stats.rs"]
mod bpf_stats;

use bpf_stats::{prog_stats, StatsOn};

/// Markers of this series' section in docs/performance.md.
pub const BEGIN: &str = "<!-- BEGIN cargo xtask bench observer: generated, do not edit by hand -->";
pub const END: &str = "<!-- END cargo xtask bench observer -->";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Alone,
    Default,
    EveryStop,
    Bpftrace,
    BpftraceFlush,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Alone,
        Variant::Default,
        Variant::EveryStop,
        Variant::Bpftrace,
        Variant::BpftraceFlush,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Alone => "alone",
            Variant::Default => "gctrace-bpf (default)",
            Variant::EveryStop => "gctrace-bpf --every-stop",
            Variant::Bpftrace => "bpftrace, 3 entry points",
            Variant::BpftraceFlush => "bpftrace, the default's 1 site",
        }
    }
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
struct Run {
    elapsed_ns: u64,
    /// The program's own CPU time (getrusage, user + system), and system alone.
    cpu_ns: u64,
    sys_ns: u64,
    num_gc: u64,
    pauses: Vec<u64>,
    /// Kernel-counted probe hits and the programs' own run time (None: alone).
    hits: Option<u64>,
    bpf_ns: Option<u64>,
    /// The tool's CPU time over the program's last `ElapsedNs` (None: alone).
    tool_cpu_ns: Option<u64>,
}

/// On-CPU time of all of `pid`'s threads so far (the scheduler's ns count), or None once
/// it is gone.
fn task_cpu_ns(pid: u32) -> Option<u64> {
    let dir = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0;
    for t in dir.flatten() {
        let text = fs::read_to_string(t.path().join("schedstat")).ok()?;
        sum += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

pub struct Setup<'a> {
    pub tracer: &'a Path,
    pub gcload: &'a Path,
    pub dir: &'a Path,
    pub work_mib: u64,
    pub gogc: u32,
}

fn one_run(s: &Setup, variant: Variant, round: usize) -> Result<Run> {
    let memstats = s.dir.join(format!("observer-{round}-{variant:?}.json"));
    let _ = fs::remove_file(&memstats);
    let workload = format!(
        "{} -work {} -live-slots 16 -goroutines 2 -memstats-out {}",
        s.gcload.display(),
        s.work_mib,
        memstats.display()
    );
    let args: Vec<String> = workload.split(' ').map(str::to_owned).collect();
    let mut cmd = match variant {
        Variant::Alone => {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        }
        Variant::Default | Variant::EveryStop => {
            let mut c = Command::new(s.tracer);
            if variant == Variant::EveryStop {
                c.arg("--every-stop");
            }
            c.args(["--format", "json", "--output", "/dev/null", "--"])
                .args(&args);
            c
        }
        Variant::Bpftrace | Variant::BpftraceFlush => {
            let bin = s.gcload.display();
            let probes = if variant == Variant::Bpftrace {
                format!(
                    "uprobe:{bin}:runtime.gcStart,uprobe:{bin}:runtime.stopTheWorldWithSema,\
                     uprobe:{bin}:runtime.startTheWorldWithSema"
                )
            } else {
                format!("uprobe:{bin}:runtime.mProf_Flush")
            };
            let script = format!("{probes} /pid == cpid/ {{ @ = count(); }}");
            let mut c = Command::new("bpftrace");
            c.args(["-e", &script, "-c", &workload]);
            c
        }
    };
    cmd.env("GOGC", s.gogc.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child: Child = cmd
        .spawn()
        .with_context(|| format!("starting {variant:?}"))?;
    let tool = child.id();
    // Read the tool's run counts and CPU time every 10 ms until it exits (its programs go
    // with it); the hits of the last interval are missed, a few of hundreds.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut hits, mut bpf_ns) = (0, 0);
    let mut cpu: Vec<(Instant, u64)> = Vec::new();
    loop {
        if variant != Variant::Alone {
            let stats = prog_stats(tool);
            if stats.run_cnt >= hits {
                (hits, bpf_ns) = (stats.run_cnt, stats.run_time_ns);
            }
            if let Some(c) = task_cpu_ns(tool) {
                cpu.push((Instant::now(), c));
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{variant:?}: still running after 300 s");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let text =
        fs::read_to_string(&memstats).with_context(|| format!("reading {}", memstats.display()))?;
    let m = MemStats::parse(&text).with_context(|| format!("parsing {}", memstats.display()))?;
    let mut pauses = m.pause_ns;
    pauses.truncate(usize::try_from(m.num_gc).unwrap_or(usize::MAX).min(256));
    let traced = variant != Variant::Alone;
    Ok(Run {
        elapsed_ns: m.elapsed_ns,
        cpu_ns: m.user_ns + m.sys_ns,
        sys_ns: m.sys_ns,
        num_gc: m.num_gc,
        pauses,
        hits: traced.then_some(hits),
        bpf_ns: traced.then_some(bpf_ns),
        tool_cpu_ns: if traced {
            cpu_over_last(&cpu, Duration::from_nanos(m.elapsed_ns))
        } else {
            None
        },
    })
}

/// The figures of gcload's `-memstats-out` this series reads.
struct MemStats {
    num_gc: u64,
    pause_ns: Vec<u64>,
    elapsed_ns: u64,
    user_ns: u64,
    sys_ns: u64,
}

impl MemStats {
    fn parse(text: &str) -> Result<MemStats> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let num = |key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_u64)
                .with_context(|| format!("no {key}"))
        };
        let pause_ns = v
            .get("PauseNs")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        Ok(MemStats {
            num_gc: num("NumGC")?,
            pause_ns,
            elapsed_ns: num("ElapsedNs")?,
            user_ns: num("UserNs")?,
            sys_ns: num("SysNs")?,
        })
    }
}

/// CPU time spent over the last `window` of the samples `(when, total)`: from the last
/// sample taken at or before the window's start to the last sample.
fn cpu_over_last(samples: &[(Instant, u64)], window: Duration) -> Option<u64> {
    let (end_at, end) = *samples.last()?;
    let start_at = end_at.checked_sub(window)?;
    let start = samples
        .iter()
        .rev()
        .find(|(t, _)| *t <= start_at)
        .map_or(samples.first()?.1, |s| s.1);
    Some(end.saturating_sub(start))
}

/// Run the series and return its markdown section.
pub fn measure(s: &Setup, rounds: usize) -> Result<String> {
    let _stats = StatsOn::enable().context("BPF_ENABLE_STATS")?;
    let load_before = super::loadavg();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); Variant::ALL.len()];
    for round in 0..rounds {
        for k in 0..Variant::ALL.len() {
            let i = (k + round) % Variant::ALL.len();
            let v = Variant::ALL[i];
            let r = one_run(s, v, round)?;
            println!(
                "bench observer: round {round} {:<30} {:>7.3} s, cpu {:.3} s, {} cycles, hits {:?}, tool cpu {:?} ms",
                v.name(),
                super::secs(r.elapsed_ns),
                super::secs(r.cpu_ns),
                r.num_gc,
                r.hits,
                r.tool_cpu_ns.map(|n| n / 1_000_000)
            );
            runs[i].push(r);
        }
    }
    let load = (load_before, super::loadavg());
    Ok(render(s, rounds, &runs, &load))
}

/// Median over rounds of `f(traced) - f(alone)` in the same round.
fn delta(traced: &[Run], alone: &[Run], f: impl Fn(&Run) -> u64) -> f64 {
    let mut d: Vec<f64> = traced
        .iter()
        .zip(alone)
        .map(|(t, a)| f(t) as f64 - f(a) as f64)
        .collect();
    super::median_f64(&mut d)
}

/// Median over rounds of `f(run)`, for the runs that have it.
fn median_of(runs: &[Run], f: impl Fn(&Run) -> Option<u64>) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| f(r).map(|x| x as f64)).collect();
    (!v.is_empty()).then(|| super::median_f64(&mut v))
}

fn render(s: &Setup, rounds: usize, runs: &[Vec<Run>], load: &(String, String)) -> String {
    let alone = &runs[0];
    let mut out = String::new();
    let cycles_per_s = {
        let rates: Vec<u64> = alone
            .iter()
            .map(|r| (r.num_gc as f64 / super::secs(r.elapsed_ns).max(1e-9)) as u64)
            .collect();
        super::median(rates)
    };
    let alone_wall = median_of(alone, |r| Some(r.elapsed_ns)).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "### Observer effect\n\n\
         gcload `-work {} -live-slots 16 -goroutines 2`, GOGC={}: {cycles_per_s} GC cycles/s \
         alone (median), {:.3} s per run; {rounds} interleaved rounds (order rotating); load \
         average before {}, after {}. Hits: the kernel's `run_cnt` of each \
         tool's BPF programs (`BPF_ENABLE_STATS`) over the program's own `NumGC`. Ratios: \
         median over rounds of traced/alone wall time (the program's `ElapsedNs`). Pauses: \
         the program's own `PauseNs`, pooled.\n",
        s.work_mib,
        s.gogc,
        alone_wall / 1e9,
        load.0,
        load.1
    );
    let _ = writeln!(
        out,
        "| variant | hits per GC cycle | wall time / alone | PauseNs p50 | p90 | p99 | p50 / alone |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let pct =
        |v: &[Run], p| super::percentile(v.iter().flat_map(|r| r.pauses.clone()).collect(), p);
    let alone_p50 = pct(alone, 50).max(1);
    let ratio = |rs: &[Run]| {
        let mut ratios: Vec<f64> = rs
            .iter()
            .zip(alone)
            .map(|(t, a)| t.elapsed_ns as f64 / a.elapsed_ns.max(1) as f64)
            .collect();
        super::median_f64(&mut ratios)
    };
    let per_cycle = |rs: &[Run]| {
        let h: u64 = rs.iter().filter_map(|r| r.hits).sum();
        let c: u64 = rs.iter().map(|r| r.num_gc).sum();
        h as f64 / c.max(1) as f64
    };
    for (i, v) in Variant::ALL.iter().enumerate() {
        let rs = &runs[i];
        let hits = if *v == Variant::Alone {
            "–".to_owned()
        } else {
            format!("{:.2}", per_cycle(rs))
        };
        let p50 = pct(rs, 50);
        let _ = writeln!(
            out,
            "| {} | {hits} | {:.3} | {} | {} | {} | {:.3} |",
            v.name(),
            ratio(rs),
            super::us(p50),
            super::us(pct(rs, 90)),
            super::us(pct(rs, 99)),
            p50 as f64 / alone_p50 as f64
        );
    }

    // Where the time goes: the program's wall and CPU time against alone, the kernel's
    // run time of the tool's BPF programs, and the tool's own CPU time while it ran.
    let _ = writeln!(
        out,
        "\nWhere it goes, per run (medians over rounds; Δ: traced − alone in the same round). \
         The program's CPU time is its getrusage (a uprobe trap is charged to the trapping \
         thread, mostly as system time); BPF: the tool's programs' own `run_time_ns` in the \
         kernel (inside the trap, part of the program's system time); tool: its threads' \
         scheduler time over the program's run (`/proc/TOOL/task/*/schedstat`), which it \
         takes from the same 2 cores as the program.\n"
    );
    let _ = writeln!(
        out,
        "| variant | Δ wall | Δ program CPU | of which Δ system | Δ CPU per hit | BPF per hit | tool CPU | tool, % of one core |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let ms = |ns: f64| format!("{:+.1} ms", ns / 1e6);
    for (i, v) in Variant::ALL.iter().enumerate().skip(1) {
        let rs = &runs[i];
        let hits = median_of(rs, |r| r.hits).unwrap_or(0.0).max(1.0);
        let d_cpu = delta(rs, alone, |r| r.cpu_ns);
        let bpf_hit = median_of(rs, |r| r.bpf_ns.zip(r.hits).map(|(n, h)| n / h.max(1)));
        let tool = median_of(rs, |r| r.tool_cpu_ns);
        let tool_pct = median_of(rs, |r| {
            r.tool_cpu_ns.map(|t| t * 100_000 / r.elapsed_ns.max(1))
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} µs | {} | {} | {} |",
            v.name(),
            ms(delta(rs, alone, |r| r.elapsed_ns)),
            ms(d_cpu),
            ms(delta(rs, alone, |r| r.sys_ns)),
            d_cpu / hits / 1e3,
            bpf_hit.map_or("?".into(), |n| format!("{:.2} µs", n / 1e3)),
            tool.map_or("?".into(), |n| format!("{:.1} ms", n / 1e6)),
            tool_pct.map_or("?".into(), |p| format!("{:.2} %", p / 1e3)),
        );
    }
    out
}
