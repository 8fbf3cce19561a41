//! `cargo xtask bench`: what tracing costs the traced program, mode by mode, side by side
//! with bpftrace doing the same probes.
//!
//! An allocation-heavy gcload run doing a fixed amount of work (`-work MiB`: allocate
//! that much, no pacing, exit) alone and traced, in interleaved rounds whose order rotates
//! so drift in the machine's load hits every variant alike. Three series:
//!
//! - default mode (`--allocs rate`: GC probes only): alone, gctrace-bpf, and bpftrace
//!   counting hits on the same GC probe sites;
//! - `--allocs sample`: alone vs gctrace-bpf, a longer run (bursts every 500 ms from 1 s),
//!   checked against the default 2 % overhead budget;
//! - `--allocs exact`: alone, gctrace-bpf, and bpftrace counting hits on the same
//!   allocation functions, on a small `-work` (every allocation is a probe hit).
//!
//! Measured: the workload's own wall and CPU time (its `ElapsedNs`, main to end of work,
//! and getrusage, from its `-memstats-out`: the tools' start-up is not the program's
//! slowdown), system time (uprobe traps are charged there), the runtime's pause figures,
//! probe hits (bpftrace counts its own; the tracer's are estimated from its trace or taken
//! from bpftrace's count on the same functions) and from them the cost of one hit. Then
//! the tracer's own cost (`own_cost`): its CPU and memory, its attach latency on gcload
//! and on a generated ~100 MB program (`bigbin`), the event rate it sustains without
//! loss. The results replace the generated section of docs/performance.md; the
//! hand-written introduction above it stays.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::env;

mod bigbin;
mod json;
mod observer;
mod own_cost;
mod report;
mod report_series;
mod runner;
mod stats;
mod table;

use json::*;
use report::*;
use runner::*;
use stats::*;
use table::*;

/// Markers of the section `cargo xtask bench` rewrites in docs/performance.md.
const BEGIN: &str = "<!-- BEGIN cargo xtask bench: generated, do not edit by hand -->";
const END: &str = "<!-- END cargo xtask bench -->";

/// The allocation functions the tracer probes with `--allocs sample|exact` (see
/// `plan_allocs` in tracer/src/probes/alloc_plan.rs): `runtime.mallocgc`, and on Go 1.27 the
/// size-specialised entry points, `<prefix><digits>` only.
const MALLOCGC: &str = "runtime.mallocgc";
const SPECIALISED_MALLOC_PREFIXES: [&str; 3] = [
    "runtime.mallocgcSmallScanNoHeaderSC",
    "runtime.mallocgcSmallNoScanSC",
    "runtime.mallocgcTinySC",
];
/// The GC function whose RET sites the tracer probes (the world restarted), on every
/// supported Go version.
const START_THE_WORLD: &str = "runtime.startTheWorldWithSema";

/// Slowest over fastest run of the program alone in the stop-the-world series beyond
/// which the series is reported as disturbed (quiet runs here agree within ~1.3×).
const DISTURBED_SPREAD: u64 = 3;

/// The overhead budget of `--allocs sample` when `--overhead-budget` is not given.
const SAMPLE_BUDGET_PERCENT: f64 = 2.0;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Rounds of the default-mode series (alone, gctrace-bpf, bpftrace; order rotating,
    /// so a multiple of 3 puts each in each position equally often).
    #[arg(long, alias = "pairs", default_value_t = 12)]
    rounds: usize,
    /// MiB each gcload run of the default-mode series allocates (its fixed work).
    #[arg(long, default_value_t = 1024)]
    work_mib: u64,
    /// Rounds of alone / default mode / `--allocs sample` (0 skips the series).
    #[arg(long, default_value_t = 4)]
    sample_pairs: usize,
    /// MiB per run of the sample series: long enough for several sampling bursts (the
    /// first 1 s after the start, then every 500 ms while the budget allows).
    #[arg(long, default_value_t = 6144)]
    sample_work_mib: u64,
    /// Rounds of the `--allocs exact` series (alone, gctrace-bpf, bpftrace; 0 skips it).
    #[arg(long, default_value_t = 3)]
    exact_rounds: usize,
    /// MiB per run of the exact series: every allocation costs a probe hit, keep it small.
    #[arg(long, default_value_t = 32)]
    exact_work_mib: u64,
    /// Rounds of the stop-the-world series (alone, gctrace-bpf, bpftrace; 0 skips it).
    #[arg(long, default_value_t = 6)]
    stw_rounds: usize,
    /// Stops of the world per run of that series (`gcload -stw-loop N`).
    #[arg(long, default_value_t = 20000)]
    stw_loop: u64,
    /// Rounds of the tracer's own CPU and memory, `--pid` on gcload GC-only and on its
    /// stop-the-world loop (0 skips the series).
    #[arg(long, default_value_t = 3)]
    footprint_rounds: usize,
    /// Seconds of each of those runs' CPU window.
    #[arg(long, default_value_t = 8)]
    footprint_secs: u64,
    /// Rounds of the attach-latency series, after one discarded (0 skips it, and the
    /// generation of its big binary).
    #[arg(long, default_value_t = 5)]
    attach_rounds: usize,
    /// Size of the generated Go program of the attach series, in MB (10^6 bytes).
    #[arg(long, default_value_t = 100)]
    big_binary_mb: u64,
    /// Generated functions in it (compiled once, about 1000 a second; then cached).
    #[arg(long, default_value_t = 60000)]
    big_binary_functions: u64,
    /// Rounds of the event-rate series (0 skips it).
    #[arg(long, default_value_t = 2)]
    rate_rounds: usize,
    /// Stops of the world per second asked of gcload in that series; 0 is back to back.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 2000, 5000, 10000, 15000, 0])]
    rates: Vec<u64>,
    /// Seconds per run of the event-rate series.
    #[arg(long, default_value_t = 3)]
    rate_secs: u64,
    /// Rounds of the observer-effect series (alone, default mode, --every-stop, bpftrace
    /// on the three classic entry points; 0 skips it). See bench/observer.rs.
    #[arg(long, default_value_t = 6)]
    observer_rounds: usize,
    /// MiB each run of the observer series allocates (small heap, many cycles).
    #[arg(long, default_value_t = 512)]
    observer_work_mib: u64,
    /// GOGC of the observer series' program (100: the 4 MiB minimum goal).
    #[arg(long, default_value_t = 100)]
    observer_gogc: u32,
    /// Run only the observer-effect series (and write only its section).
    #[arg(long)]
    observer_only: bool,
    /// Print the results without rewriting docs/performance.md.
    #[arg(long)]
    no_write: bool,
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.rounds == 0 || args.work_mib == 0 || args.sample_work_mib == 0 {
        bail!("--rounds and the --*work-mib values must be positive");
    }
    if args.exact_work_mib == 0 || args.stw_loop == 0 {
        bail!("--exact-work-mib and --stw-loop must be positive");
    }
    if args.footprint_secs == 0 || args.rate_secs == 0 || args.big_binary_functions == 0 {
        bail!("--footprint-secs, --rate-secs and --big-binary-functions must be positive");
    }
    if args.rate_rounds > 0 && args.rates.is_empty() {
        bail!("--rates needs at least one rate");
    }
    if !env::is_root()? {
        bail!("cargo xtask bench loads eBPF programs: run it as root");
    }
    let started = Instant::now();
    super::build()?;
    let bpftrace_version = tool_version("bpftrace", "--version")
        .context("bpftrace is needed for the side-by-side figures: run `cargo xtask setup`")?;
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
    // bpftrace's -c splits its command line at spaces.
    for path in [&gcload, &dir] {
        if path.to_string_lossy().contains(char::is_whitespace) {
            bail!(
                "{} contains whitespace, which bpftrace -c cannot pass on; set CARGO_TARGET_DIR",
                path.display()
            );
        }
    }

    let tracer = env::tracer_binary();
    let (observer_gcload, observer_dir) = (gcload.clone(), dir.clone());
    let observer_section = |tracer: &Path| -> Result<Option<String>> {
        if args.observer_rounds == 0 {
            return Ok(None);
        }
        let section = observer::measure(
            &observer::Setup {
                tracer,
                gcload: &observer_gcload,
                dir: &observer_dir,
                work_mib: args.observer_work_mib,
                gogc: args.observer_gogc,
            },
            args.observer_rounds,
        )?;
        println!("\n{section}");
        if !args.no_write {
            let doc = env::workspace_root().join("docs").join("performance.md");
            write_marked(&doc, observer::BEGIN, observer::END, &section)?;
            println!("bench: wrote {}", doc.display());
        }
        Ok(Some(section))
    };
    if args.observer_only {
        observer_section(&tracer)?;
        println!("bench: took {} s", started.elapsed().as_secs());
        return Ok(());
    }
    // bpftrace's default-series baseline: the three entry points a do-it-yourself script
    // takes, and the ones `--every-stop` (the default before one hit per cycle) probes (its
    // hit estimates below assume that plan; the observer series counts the default mode's
    // hits in the kernel).
    let _ = gc_probe_sites;
    let gc_sites: Vec<String> = [
        "runtime.gcStart",
        "runtime.stopTheWorldWithSema",
        START_THE_WORLD,
    ]
    .iter()
    .map(|f| format!("\"{f}\""))
    .collect();
    let alloc_functions = alloc_functions(&go.go, &gcload)?;
    let gc_script = dir.join("gc.bt");
    let alloc_script = dir.join("allocs.bt");
    write_script(&gc_script, &gcload, &gc_sites)?;
    let alloc_sites: Vec<String> = alloc_functions.iter().map(|f| format!("\"{f}\"")).collect();
    write_script(&alloc_script, &gcload, &alloc_sites)?;

    let bench = Bench {
        tracer,
        gcload,
        dir,
        gc_script,
        alloc_script,
    };
    let load_before = loadavg();
    println!(
        "bench: gcload (Go {}), {bpftrace_version}; {} GC probe sites, {} allocation functions",
        go.version,
        gc_sites.len(),
        alloc_functions.len()
    );

    let default = bench.series(
        "default",
        Work::Alloc(args.work_mib),
        &[
            Variant::Alone,
            Variant::Tracer(AllocMode::Rate),
            Variant::Bpftrace(ProbeSet::Gc),
        ],
        args.rounds,
        true,
    )?;
    // The other series are optional: 0 rounds leaves one out of the run and the report.
    let optional = |name: &str, work: Work, variants: &[Variant], rounds: usize| {
        (rounds > 0)
            .then(|| bench.series(name, work, variants, rounds, false))
            .transpose()
    };
    let sample = optional(
        "sample",
        Work::Alloc(args.sample_work_mib),
        &[
            Variant::Alone,
            Variant::Tracer(AllocMode::Rate),
            Variant::Tracer(AllocMode::Sample),
        ],
        args.sample_pairs,
    )?;
    let exact = optional(
        "exact",
        Work::Alloc(args.exact_work_mib),
        &[
            Variant::Alone,
            Variant::Tracer(AllocMode::Exact),
            Variant::Bpftrace(ProbeSet::Allocs),
        ],
        args.exact_rounds,
    )?;
    let stw = optional(
        "stw",
        Work::Stw(args.stw_loop),
        &[
            Variant::Alone,
            Variant::Tracer(AllocMode::Rate),
            Variant::Bpftrace(ProbeSet::Gc),
        ],
        args.stw_rounds,
    )?;

    let own = own_cost::measure(
        &own_cost::Runner {
            tracer: &bench.tracer,
            gcload: &bench.gcload,
            dir: &bench.dir,
        },
        &go,
        args,
    )?;

    let report = Report {
        go_version: go.version.clone(),
        bpftrace_version,
        load_before,
        load_after: loadavg(),
        gc_sites,
        alloc_functions,
        default,
        sample,
        exact,
        stw,
        own,
        took: started.elapsed(),
    };
    let section = report.markdown();
    println!("\n{section}");
    if !args.no_write {
        let doc = env::workspace_root().join("docs").join("performance.md");
        write_section(&doc, &section)?;
        println!("bench: wrote {}", doc.display());
    }
    observer_section(&bench.tracer)?;
    println!("bench: took {} s", started.elapsed().as_secs());
    Ok(())
}
