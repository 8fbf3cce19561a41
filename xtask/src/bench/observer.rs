//! The observer effect, measured from outside the tracer (issue 14): what watching costs
//! a GC-heavy program with a small heap (gcload, few live objects, so the 4 MiB minimum
//! goal makes it collect hundreds to a thousand times a second).
//!
//! Interleaved rounds (order rotating) of: the program alone, gctrace-bpf in its default
//! mode, gctrace-bpf `--every-stop` (the plan before issue 14), and bpftrace counting the
//! three runtime entry points a do-it-yourself script would take (`gcStart`,
//! `stopTheWorldWithSema`, `startTheWorldWithSema`). For each run:
//! - the program's own wall time from main to end of work (`ElapsedNs` of its
//!   `-memstats-out`): medians of traced/alone per round;
//! - the program's own `PauseNs` (its last 256 cycles), pooled per variant: p50/p90/p99;
//! - probe hits counted by the kernel, not by the tool: with `BPF_ENABLE_STATS` held open
//!   by the bench, each BPF program's `run_cnt` in `/proc/TOOL/fdinfo` (the program runs
//!   once per uprobe hit), polled every 10 ms until the tool exits (the last interval's
//!   few hits are missed), divided by the program's own `NumGC`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Markers of this series' section in docs/performance.md.
pub const BEGIN: &str = "<!-- BEGIN cargo xtask bench observer: generated, do not edit by hand -->";
pub const END: &str = "<!-- END cargo xtask bench observer -->";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Alone,
    Default,
    EveryStop,
    Bpftrace,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Alone,
        Variant::Default,
        Variant::EveryStop,
        Variant::Bpftrace,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Alone => "alone",
            Variant::Default => "gctrace-bpf (default)",
            Variant::EveryStop => "gctrace-bpf --every-stop",
            Variant::Bpftrace => "bpftrace, 3 entry points",
        }
    }
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
struct Run {
    elapsed_ns: u64,
    num_gc: u64,
    pauses: Vec<u64>,
    /// Kernel-counted probe hits (None: alone).
    hits: Option<u64>,
}

/// `bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME)`: statistics are kept while the descriptor
/// is open (reference-counted by the kernel, so other users are not disturbed).
struct StatsOn(libc::c_int);

impl StatsOn {
    fn enable() -> Result<StatsOn> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        let mut attr = [0u8; 64];
        // SAFETY: bpf(2) reads `size` bytes of its attribute union from `attr`, a live
        // zeroed buffer of that size (type 0 = BPF_STATS_RUN_TIME); it writes nothing.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_mut_ptr(),
                attr.len() as libc::c_uint,
            )
        };
        if fd < 0 {
            bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
        }
        Ok(StatsOn(fd as libc::c_int))
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        // SAFETY: a descriptor bpf(2) returned, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Sum of `run_cnt` over the BPF programs process `pid` holds.
fn run_count(pid: u32) -> u64 {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter(|t| t.contains("prog_id:"))
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("run_cnt:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
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
        Variant::Bpftrace => {
            let bin = s.gcload.display();
            let script = format!(
                "uprobe:{bin}:runtime.gcStart,uprobe:{bin}:runtime.stopTheWorldWithSema,\
                 uprobe:{bin}:runtime.startTheWorldWithSema /pid == cpid/ {{ @ = count(); }}"
            );
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
    // Read the tool's run counts every 10 ms until it exits (its programs go with it);
    // the hits of the last interval are missed, a few of hundreds.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut hits = 0;
    loop {
        if variant != Variant::Alone {
            hits = hits.max(run_count(tool));
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
    let hits = (variant != Variant::Alone).then_some(hits);
    let text =
        fs::read_to_string(&memstats).with_context(|| format!("reading {}", memstats.display()))?;
    let num_gc = super::json_u64(&text, "NumGC").unwrap_or(0);
    let mut pauses = super::json_u64_array(&text, "PauseNs").unwrap_or_default();
    pauses.truncate(usize::try_from(num_gc).unwrap_or(usize::MAX).min(256));
    Ok(Run {
        elapsed_ns: super::json_u64(&text, "ElapsedNs").unwrap_or(0),
        num_gc,
        pauses,
        hits,
    })
}

/// Run the series and return its markdown section.
pub fn measure(s: &Setup, rounds: usize) -> Result<String> {
    let _stats = StatsOn::enable()?;
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); Variant::ALL.len()];
    for round in 0..rounds {
        for k in 0..Variant::ALL.len() {
            let i = (k + round) % Variant::ALL.len();
            let v = Variant::ALL[i];
            let r = one_run(s, v, round)?;
            println!(
                "bench observer: round {round} {:<26} {:>7.3} s, {} cycles, hits {:?}",
                v.name(),
                super::secs(r.elapsed_ns),
                r.num_gc,
                r.hits
            );
            runs[i].push(r);
        }
    }
    Ok(render(s, rounds, &runs))
}

fn render(s: &Setup, rounds: usize, runs: &[Vec<Run>]) -> String {
    let alone = &runs[0];
    let mut out = String::new();
    let cycles_per_s = {
        let rates: Vec<u64> = alone
            .iter()
            .map(|r| (r.num_gc as f64 / super::secs(r.elapsed_ns).max(1e-9)) as u64)
            .collect();
        super::median(rates)
    };
    let _ = writeln!(
        out,
        "### Observer effect (issue 14)\n\n\
         gcload `-work {} -live-slots 16 -goroutines 2`, GOGC={}: {cycles_per_s} GC cycles/s \
         alone (median); {rounds} interleaved rounds. Hits: the kernel's `run_cnt` of each \
         tool's BPF programs (`BPF_ENABLE_STATS`) over the program's own `NumGC`. Ratios: \
         median over rounds of traced/alone wall time (the program's `ElapsedNs`). Pauses: \
         the program's own `PauseNs`, pooled.\n",
        s.work_mib, s.gogc
    );
    let _ = writeln!(
        out,
        "| variant | hits per GC cycle | wall time / alone | PauseNs p50 | p90 | p99 | p50 / alone |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let pct =
        |v: &[Run], p| super::percentile(v.iter().flat_map(|r| r.pauses.clone()).collect(), p);
    let alone_p50 = pct(alone, 50).max(1);
    for (i, v) in Variant::ALL.iter().enumerate() {
        let rs = &runs[i];
        let hits = if *v == Variant::Alone {
            "–".to_owned()
        } else {
            let h: u64 = rs.iter().filter_map(|r| r.hits).sum();
            let c: u64 = rs.iter().map(|r| r.num_gc).sum();
            format!("{:.2}", h as f64 / c.max(1) as f64)
        };
        let mut ratios: Vec<f64> = rs
            .iter()
            .zip(alone)
            .map(|(t, a)| t.elapsed_ns as f64 / a.elapsed_ns.max(1) as f64)
            .collect();
        let ratio = super::median_f64(&mut ratios);
        let p50 = pct(rs, 50);
        let _ = writeln!(
            out,
            "| {} | {hits} | {ratio:.3} | {} | {} | {} | {:.3} |",
            v.name(),
            super::us(p50),
            super::us(pct(rs, 90)),
            super::us(pct(rs, 99)),
            p50 as f64 / alone_p50 as f64
        );
    }
    out
}
