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

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::env;

mod bigbin;
mod observer;
mod own_cost;

/// Markers of the section `cargo xtask bench` rewrites in docs/performance.md.
const BEGIN: &str = "<!-- BEGIN cargo xtask bench: generated, do not edit by hand -->";
const END: &str = "<!-- END cargo xtask bench -->";

/// The allocation functions the tracer probes with `--allocs sample|exact` (see
/// `plan_allocs` in tracer/src/probes/plan.rs): `runtime.mallocgc`, and on Go 1.27 the
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

/// What runs gcload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Alone,
    /// gctrace-bpf with this `--allocs` mode.
    Tracer(AllocMode),
    /// bpftrace counting hits on these probe sites.
    Bpftrace(ProbeSet),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AllocMode {
    Rate,
    Sample,
    Exact,
}

impl AllocMode {
    fn arg(self) -> &'static str {
        match self {
            AllocMode::Rate => "rate",
            AllocMode::Sample => "sample",
            AllocMode::Exact => "exact",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeSet {
    /// The default mode's GC probe sites.
    Gc,
    /// The allocation functions of `--allocs exact`.
    Allocs,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Alone => "alone",
            Variant::Tracer(AllocMode::Rate) => "gctrace-bpf",
            Variant::Tracer(AllocMode::Sample) => "gctrace-bpf sample",
            Variant::Tracer(AllocMode::Exact) => "gctrace-bpf exact",
            Variant::Bpftrace(_) => "bpftrace",
        }
    }
}

/// One gcload run.
#[derive(Debug)]
struct Sample {
    /// gcload's own ElapsedNs: main to end of work.
    work_ns: u64,
    /// gcload's CPU time (getrusage at the end: user + system, and system alone).
    cpu_ns: u64,
    sys_ns: u64,
    /// Spawn to exit of the command (gcload, or the tool launching it).
    process_ns: u64,
    /// CPU time of the whole command (its process tree, once reaped).
    command_cpu_ns: u64,
    num_gc: u64,
    mallocs: u64,
    /// MemStats.PauseNs of the run's cycles (the last 256 at most).
    pauses_ns: Vec<u64>,
    /// gctrace-bpf runs: records in the trace, and the allocations its last alloc_types
    /// record counts (exact: every one; sample: extrapolated from the bursts).
    gc_records: u64,
    stw_records: u64,
    lost_events: u64,
    alloc_objects: u64,
    alloc_dropped: u64,
    /// bpftrace runs: the hits it counted.
    hits: Hits,
}

impl Sample {
    /// The tool's own CPU time: the command's less gcload's (10 ms ticks).
    fn tool_cpu_ns(&self) -> u64 {
        self.command_cpu_ns.saturating_sub(self.cpu_ns)
    }
}

/// A gcload run's fixed work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// `-work MiB`: allocate that much.
    Alloc(u64),
    /// `-stw-loop N`: stop the world N times (runtime.ReadMemStats), allocate nothing.
    Stw(u64),
}

impl Work {
    fn args(self) -> [String; 2] {
        match self {
            Work::Alloc(mib) => ["-work".into(), mib.to_string()],
            Work::Stw(n) => ["-stw-loop".into(), n.to_string()],
        }
    }
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [flag, value] = self.args();
        write!(f, "gcload {flag} {value}")
    }
}

/// A series' runs, one list per variant, in round order.
struct Series {
    work: Work,
    variants: Vec<Variant>,
    runs: Vec<Vec<Sample>>,
}

impl Series {
    fn of(&self, v: Variant) -> &[Sample] {
        self.variants
            .iter()
            .position(|&x| x == v)
            .and_then(|i| self.runs.get(i))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn rounds(&self) -> usize {
        self.runs.first().map_or(0, Vec::len)
    }
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
    // takes, and the ones the plan before issue 14 probed (its hit estimates below assume
    // that plan; the observer series counts the default mode's hits in the kernel).
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
    let sample = if args.sample_pairs > 0 {
        Some(bench.series(
            "sample",
            Work::Alloc(args.sample_work_mib),
            &[
                Variant::Alone,
                Variant::Tracer(AllocMode::Rate),
                Variant::Tracer(AllocMode::Sample),
            ],
            args.sample_pairs,
            false,
        )?)
    } else {
        None
    };
    let exact = if args.exact_rounds > 0 {
        Some(bench.series(
            "exact",
            Work::Alloc(args.exact_work_mib),
            &[
                Variant::Alone,
                Variant::Tracer(AllocMode::Exact),
                Variant::Bpftrace(ProbeSet::Allocs),
            ],
            args.exact_rounds,
            false,
        )?)
    } else {
        None
    };
    let stw = if args.stw_rounds > 0 {
        Some(bench.series(
            "stw",
            Work::Stw(args.stw_loop),
            &[
                Variant::Alone,
                Variant::Tracer(AllocMode::Rate),
                Variant::Bpftrace(ProbeSet::Gc),
            ],
            args.stw_rounds,
            false,
        )?)
    } else {
        None
    };

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

/// The default mode's probe sites on `gcload` that bpftrace can take: the entries of
/// the functions the tracer attaches (from `gctrace-bpf inspect --format json`), as
/// `"function"`. Not the RET sites of `runtime.startTheWorldWithSema`, which the tracer
/// also probes: Debian's bpftrace is built without the instruction decoder that
/// `uprobe:BIN:FUNC+OFFSET` needs ("Can't check if uprobe is in proper place"), even with
/// `--unsafe`; the one RET hit per call is added to the tracer's count instead.
fn gc_probe_sites(tracer: &Path, gcload: &Path) -> Result<Vec<String>> {
    let out = Command::new(tracer)
        .args(["inspect", "--format", "json"])
        .arg(gcload)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} inspect", tracer.display()))?;
    if !out.status.success() {
        bail!(
            "{} inspect {} failed: {}\n{}",
            tracer.display(),
            gcload.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let sites = gc_sites_from_inspect(&text);
    if sites.is_empty() {
        bail!(
            "gctrace-bpf inspect lists no attached probe for {}",
            gcload.display()
        );
    }
    Ok(sites)
}

/// See [`gc_probe_sites`]; `text` is inspect's JSON.
fn gc_sites_from_inspect(text: &str) -> Vec<String> {
    text.split("{\"symbol\":\"")
        .skip(1)
        .filter_map(|probe| {
            let (symbol, rest) = probe.split_once('"')?;
            let fields = rest.split('}').next().unwrap_or(rest);
            fields
                .contains("\"attached\":true")
                .then(|| format!("\"{symbol}\""))
        })
        .collect()
}

/// The allocation functions `--allocs exact` probes on `gcload`, from `go tool nm`.
fn alloc_functions(go: &Path, gcload: &Path) -> Result<Vec<String>> {
    let out = env::go_command(go)
        .args(["tool", "nm"])
        .arg(gcload)
        .output()
        .with_context(|| format!("running go tool nm {}", gcload.display()))?;
    if !out.status.success() {
        bail!("go tool nm {} failed: {}", gcload.display(), out.status);
    }
    let functions = alloc_functions_from_nm(&String::from_utf8_lossy(&out.stdout));
    if !functions.iter().any(|f| f == MALLOCGC) {
        bail!("no {MALLOCGC} in {}", gcload.display());
    }
    Ok(functions)
}

/// See [`alloc_functions`]; `nm` is `go tool nm`'s output ("ADDR T NAME").
fn alloc_functions_from_nm(nm: &str) -> Vec<String> {
    let mut functions: Vec<String> = nm
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == "T" || kind == "t").then_some(name)
        })
        .filter(|name| {
            *name == MALLOCGC
                || SPECIALISED_MALLOC_PREFIXES.iter().any(|prefix| {
                    name.strip_prefix(prefix).is_some_and(|suffix| {
                        !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
                    })
                })
        })
        .map(str::to_owned)
        .collect();
    functions.sort();
    functions.dedup();
    functions
}

/// A bpftrace script counting hits per probe site of `binary`, in the child bpftrace
/// starts (`-c`) only: a uprobe on a path fires in every process mapping it.
fn write_script(path: &Path, binary: &Path, sites: &[String]) -> Result<()> {
    let probes: Vec<String> = sites
        .iter()
        .map(|site| format!("uprobe:{}:{site}", binary.display()))
        .collect();
    let script = format!(
        "// Generated by cargo xtask bench: count the hits of each probe site.\n{}\n\
         /pid == cpid/\n{{\n  @[probe] = count();\n}}\n",
        probes.join(",\n")
    );
    fs::write(path, script).with_context(|| format!("writing {}", path.display()))
}

struct Bench {
    tracer: PathBuf,
    gcload: PathBuf,
    dir: PathBuf,
    gc_script: PathBuf,
    alloc_script: PathBuf,
}

impl Bench {
    fn memstats_path(&self) -> PathBuf {
        self.dir.join("memstats.json")
    }

    fn trace_path(&self) -> PathBuf {
        self.dir.join("trace.ndjson")
    }

    /// gcload's arguments: the fixed work, and where to write its MemStats.
    fn gcload_args(&self, work: Work) -> Vec<OsString> {
        let [flag, value] = work.args();
        vec![
            flag.into(),
            value.into(),
            "-memstats-out".into(),
            self.memstats_path().into(),
        ]
    }

    /// `rounds` rounds of every variant, the order rotating from round to round; with
    /// `warmup`, one discarded round first (page cache, CPU frequency, first loads).
    fn series(
        &self,
        name: &str,
        work: Work,
        variants: &[Variant],
        rounds: usize,
        warmup: bool,
    ) -> Result<Series> {
        println!(
            "bench: {name} series, {rounds} rounds of {work}: {}",
            variants
                .iter()
                .map(|v| v.label())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if warmup {
            for &v in variants {
                self.once(v, work)?;
            }
        }
        let mut runs: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            let mut line = format!("  {name} {:>2}:", round + 1);
            for k in 0..variants.len() {
                let i = (round + k) % variants.len();
                let s = self.once(variants[i], work)?;
                let _ = write!(
                    line,
                    " {} {:.3} s ({:.3} s CPU);",
                    variants[i].label(),
                    secs(s.work_ns),
                    secs(s.cpu_ns)
                );
                runs[i].push(s);
            }
            println!("{}", line.trim_end_matches(';'));
        }
        Ok(Series {
            work,
            variants: variants.to_vec(),
            runs,
        })
    }

    fn once(&self, variant: Variant, work: Work) -> Result<Sample> {
        let args = self.gcload_args(work);
        match variant {
            Variant::Alone => {
                let run = self.run(Command::new(&self.gcload).args(args))?;
                self.sample(&run, None)
            }
            Variant::Tracer(mode) => {
                let trace = self.trace_path();
                let mut cmd = Command::new(&self.tracer);
                cmd.args(["--format", "json", "--allocs", mode.arg(), "--output"])
                    .arg(&trace)
                    .arg("--")
                    .arg(&self.gcload)
                    .args(args);
                let run = self.run(&mut cmd)?;
                self.sample(&run, Some(&trace))
            }
            Variant::Bpftrace(set) => {
                let script = match set {
                    ProbeSet::Gc => &self.gc_script,
                    ProbeSet::Allocs => &self.alloc_script,
                };
                let mut line = self.gcload.as_os_str().to_owned();
                for arg in &args {
                    line.push(" ");
                    line.push(arg);
                }
                let mut cmd = Command::new("bpftrace");
                cmd.arg(script).arg("-c").arg(line);
                let run = self.run(&mut cmd)?;
                let mut sample = self.sample(&run, None)?;
                let hits = bpftrace_hits(&run.stdout);
                if hits.all == 0 {
                    bail!(
                        "bpftrace counted no hit; its output:\n{}\n{}",
                        run.stdout,
                        run.stderr
                    );
                }
                sample.hits = hits;
                Ok(sample)
            }
        }
    }

    /// Runs `cmd` (stdout and stderr kept); its wall time and the CPU time of its process
    /// tree, in ns.
    fn run(&self, cmd: &mut Command) -> Result<Run> {
        let _ = fs::remove_file(self.memstats_path());
        let _ = fs::remove_file(self.trace_path());
        let line = env::describe(cmd);
        let cpu_before = children_cpu_ns()?;
        let start = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("could not start `{line}`"))?;
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!("`{line}` failed: {}\n{stderr}", out.status);
        }
        Ok(Run {
            process_ns: nanos(elapsed),
            command_cpu_ns: children_cpu_ns()?.saturating_sub(cpu_before),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        })
    }

    fn sample(&self, run: &Run, trace: Option<&Path>) -> Result<Sample> {
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
            process_ns: run.process_ns,
            command_cpu_ns: run.command_cpu_ns,
            num_gc: field("NumGC")?,
            mallocs: field("Mallocs")?,
            pauses_ns: json_u64_array(&memstats, "PauseNs")
                .with_context(|| format!("no PauseNs in {}", path.display()))?,
            gc_records: 0,
            stw_records: 0,
            lost_events: 0,
            alloc_objects: 0,
            alloc_dropped: 0,
            hits: Hits::default(),
        };
        if let Some(trace) = trace {
            let text = fs::read_to_string(trace)
                .with_context(|| format!("reading {}", trace.display()))?;
            for line in text.lines() {
                if line.starts_with("{\"type\":\"gc\"") {
                    sample.gc_records += 1;
                } else if line.starts_with("{\"type\":\"stw\"") {
                    sample.stw_records += 1;
                } else if line.starts_with("{\"type\":\"alloc_types\"") {
                    // Running totals: the last record has them all.
                    sample.alloc_objects = json_u64(line, "objects").unwrap_or(0);
                    sample.alloc_dropped = json_u64(line, "dropped_objects").unwrap_or(0);
                } else if line.starts_with("{\"type\":\"summary\"") {
                    sample.lost_events = json_u64(line, "lost_events").unwrap_or(0);
                }
            }
            if sample.gc_records == 0 && sample.num_gc > 0 {
                bail!(
                    "the traced run's trace {} has no gc record, the runtime counted {} cycles",
                    trace.display(),
                    sample.num_gc
                );
            }
        }
        Ok(sample)
    }
}

/// What [`Bench::run`] saw of a command.
struct Run {
    process_ns: u64,
    command_cpu_ns: u64,
    stdout: String,
    stderr: String,
}

/// Probe hits bpftrace counted in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Hits {
    all: u64,
    /// At the entry of `runtime.gcStart`.
    gc_start: u64,
    /// At the entry of `runtime.startTheWorldWithSema`: one per stop-the-world.
    start_the_world: u64,
}

/// bpftrace's printed map at exit, `@[uprobe:BIN:SITE]: N` per site.
fn bpftrace_hits(stdout: &str) -> Hits {
    let mut hits = Hits::default();
    for line in stdout.lines() {
        let Some((key, count)) = line.strip_prefix("@[").and_then(|l| l.rsplit_once("]: ")) else {
            continue;
        };
        let Ok(n) = count.trim().parse::<u64>() else {
            continue;
        };
        hits.all += n;
        if key.ends_with(":runtime.gcStart") {
            hits.gc_start += n;
        } else if key.ends_with(&format!(":{START_THE_WORLD}")) {
            hits.start_the_world += n;
        }
    }
    hits
}

/// The first line of `PROGRAM FLAG`'s output, e.g. "bpftrace v0.17.0".
fn tool_version(program: &str, flag: &str) -> Result<String> {
    let out = Command::new(program)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {program} {flag}"))?;
    if !out.status.success() {
        bail!("{program} {flag} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or(program)
        .trim()
        .to_owned())
}

/// Medians over runs, and paired differences, of a series.
fn med(v: &[Sample], f: impl Fn(&Sample) -> u64) -> u64 {
    median(v.iter().map(f).collect())
}

/// Median over rounds of `traced − alone` (paired: same round), in ns; negative allowed.
fn paired_delta(alone: &[Sample], traced: &[Sample], f: impl Fn(&Sample) -> u64) -> f64 {
    let mut d: Vec<f64> = alone
        .iter()
        .zip(traced)
        .map(|(a, t)| f(t) as f64 - f(a) as f64)
        .collect();
    median_f64(&mut d)
}

/// Each round's traced/alone ratio of `f`, sorted.
fn pair_ratios(alone: &[Sample], traced: &[Sample], f: impl Fn(&Sample) -> u64) -> Vec<f64> {
    let mut r: Vec<f64> = alone
        .iter()
        .zip(traced)
        .map(|(a, t)| f(t) as f64 / f(a).max(1) as f64)
        .collect();
    r.sort_by(f64::total_cmp);
    r
}

fn median_f64(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(r: &[f64]) -> String {
    match (r.first(), r.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.3} to {hi:.3}"),
        _ => "?".into(),
    }
}

/// See [`Report::default_hits`].
struct DefaultHits {
    bpftrace: f64,
    ours: f64,
    /// Two per stop-the-world record in the tracer's own trace, plus the gcStart hits.
    ours_from_trace: f64,
    gc_start: f64,
    start_the_world: f64,
}

struct Report {
    go_version: String,
    bpftrace_version: String,
    load_before: String,
    load_after: String,
    gc_sites: Vec<String>,
    alloc_functions: Vec<String>,
    default: Series,
    sample: Option<Series>,
    exact: Option<Series>,
    stw: Option<Series>,
    own: own_cost::OwnCost,
    took: Duration,
}

/// Formatting helpers for the tables.
fn s3(ns: u64) -> String {
    format!("{:.3} s", secs(ns))
}

fn us(ns: u64) -> String {
    format!("{:.0} µs", ns as f64 / 1e3)
}

fn ms_delta(ns: f64) -> String {
    format!("{:+.0} ms", ns / 1e6)
}

fn ratio(t: u64, a: u64) -> f64 {
    t as f64 / a.max(1) as f64
}

/// µs per hit of a CPU delta, or "–" without hits.
fn per_hit(delta_ns: f64, hits: f64) -> String {
    if hits > 0.0 {
        format!("{:.1} µs", delta_ns / hits / 1e3)
    } else {
        "–".into()
    }
}

impl Report {
    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Latest run: {}\n", today());
        let _ = writeln!(
            md,
            "Machine: {}; kernel {}; load average before {}, after {} (1, 5, 15 min). \
             gcload built with Go {}; {}. The whole bench took {} s.\n",
            cpu_description(),
            fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into()),
            self.load_before,
            self.load_after,
            self.go_version,
            self.bpftrace_version,
            self.took.as_secs()
        );
        let _ = writeln!(
            md,
            "All figures are medians over the rounds; \"Δ\" is the median over rounds of \
             (traced − alone) in the same round. CPU times (getrusage, the workload's own) \
             are the robust figures on this shared VM; wall times move with the load.\n"
        );
        self.default_md(&mut md);
        if let Some(sample) = &self.sample {
            self.sample_md(&mut md, sample);
        }
        if let Some(exact) = &self.exact {
            self.exact_md(&mut md, exact);
        }
        if let Some(stw) = &self.stw {
            self.stw_md(&mut md, stw);
        }
        self.per_hit_md(&mut md);
        self.own.markdown(&mut md);
        md
    }

    /// Hits per run in the default mode: bpftrace's count at the entries, and the
    /// tracer's, which takes the same entry hits plus one RET hit per
    /// `startTheWorldWithSema` call (its median over bpftrace's runs of the same work).
    fn default_hits(&self) -> DefaultHits {
        let d = &self.default;
        let ours = d.of(Variant::Tracer(AllocMode::Rate));
        let bt = d.of(Variant::Bpftrace(ProbeSet::Gc));
        let runs = ours.len().max(1) as f64;
        let stw: u64 = ours.iter().map(|s| s.stw_records).sum();
        let gc_start = med(bt, |s| s.hits.gc_start) as f64;
        let start_the_world = med(bt, |s| s.hits.start_the_world) as f64;
        let bpftrace = med(bt, |s| s.hits.all) as f64;
        DefaultHits {
            bpftrace,
            ours: bpftrace + start_the_world,
            ours_from_trace: 2.0 * stw as f64 / runs + gc_start,
            gc_start,
            start_the_world,
        }
    }

    fn default_md(&self, md: &mut String) {
        let d = &self.default;
        let alone = d.of(Variant::Alone);
        let ours = d.of(Variant::Tracer(AllocMode::Rate));
        let bt = d.of(Variant::Bpftrace(ProbeSet::Gc));
        let hits = self.default_hits();
        let cycles = med(ours, |s| s.num_gc).max(1) as f64;
        let _ = writeln!(
            md,
            "### Default mode (`--allocs rate`: GC probes only)\n\n\
             `{}`, {} rounds of alone / gctrace-bpf / bpftrace (order rotating), \
             after one discarded round. bpftrace counts hits in a map (`@[probe] = count()`, \
             in its `-c` child only) at the entries of the {} functions gctrace-bpf probes \
             (`{}`), but not at the RET sites of `{START_THE_WORLD}` that gctrace-bpf also \
             probes: Debian's bpftrace 0.17 is built without the instruction decoder that \
             `uprobe:BIN:FUNC+OFFSET` needs and refuses such probes, even with `--unsafe`. \
             bpftrace therefore takes one hit fewer per stop-the-world.\n",
            d.work,
            d.rounds(),
            self.gc_sites.len(),
            self.gc_sites.join("`, `")
        );
        let _ = writeln!(md, "| measure | alone | gctrace-bpf | bpftrace |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let row3 = |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| {
            let (a, o, b) = (med(alone, f), med(ours, f), med(bt, f));
            let _ = writeln!(
                md,
                "| {name} | {} | {} ({:.3}×) | {} ({:.3}×) |",
                s3(a),
                s3(o),
                ratio(o, a),
                s3(b),
                ratio(b, a)
            );
        };
        row3(
            md,
            "workload wall time (its own clock, main to end of work)",
            &|s| s.work_ns,
        );
        row3(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row3(md, "of which system time (uprobe traps land here)", &|s| {
            s.sys_ns
        });
        let _ = writeln!(
            md,
            "| Δ workload CPU time vs alone | | {} | {} |",
            ms_delta(paired_delta(alone, ours, |s| s.cpu_ns)),
            ms_delta(paired_delta(alone, bt, |s| s.cpu_ns))
        );
        let _ = writeln!(
            md,
            "| Δ system time vs alone | | {} | {} |",
            ms_delta(paired_delta(alone, ours, |s| s.sys_ns)),
            ms_delta(paired_delta(alone, bt, |s| s.sys_ns))
        );
        let _ = writeln!(
            md,
            "| probe hits per run | | {:.0} | {:.0} |",
            hits.ours, hits.bpftrace
        );
        let _ = writeln!(
            md,
            "| probe hits per GC cycle | | {:.1} | {:.1} |",
            hits.ours / cycles,
            hits.bpftrace / med(bt, |s| s.num_gc).max(1) as f64
        );
        row3(
            md,
            "whole command, spawn to exit (tool start-up, attach, exit included)",
            &|s| s.process_ns,
        );
        let _ = writeln!(
            md,
            "| the tool's own CPU time per run (start-up included; 10 ms ticks) | | {} | {} |",
            s3(med(ours, Sample::tool_cpu_ns)),
            s3(med(bt, Sample::tool_cpu_ns))
        );
        let _ = writeln!(
            md,
            "| GC cycles per run | {} | {} | {} |",
            med(alone, |s| s.num_gc),
            med(ours, |s| s.num_gc),
            med(bt, |s| s.num_gc)
        );
        let pooled =
            |v: &[Sample]| -> Vec<u64> { v.iter().flat_map(|s| s.pauses_ns.clone()).collect() };
        let (pa, po, pb) = (pooled(alone), pooled(ours), pooled(bt));
        for (name, pct) in [("p10", 10), ("median", 50), ("p90", 90)] {
            let _ = writeln!(
                md,
                "| MemStats.PauseNs per cycle (both stops), {name} over all cycles | {} | {} | {} |",
                us(percentile(pa.clone(), pct)),
                us(percentile(po.clone(), pct)),
                us(percentile(pb.clone(), pct))
            );
        }
        let lost: u64 = ours.iter().map(|s| s.lost_events).sum();
        let _ = writeln!(
            md,
            "\n- Per-round wall-time ratios vs alone: gctrace-bpf {}, bpftrace {}; CPU-time \
             ratios: gctrace-bpf {}, bpftrace {}.\n\
             - Hits: bpftrace's are its own count ({:.0} at `gcStart` entry — more than \
             one per cycle, as goroutines race to start a cycle — and {:.0} at \
             `{START_THE_WORLD}` entry). gctrace-bpf does not count its hits: it takes the \
             same entry hits on the same work plus one RET hit per `{START_THE_WORLD}` \
             call. Cross-check from its own trace: two hits per stop-the-world record \
             ({:.2} stops per cycle: the GC's two, plus the final `ReadMemStats`) plus the \
             `gcStart` hits gives {:.0} per run.\n\
             - Both tools take the same traps; gctrace-bpf's programs also read runtime \
             variables and send an event per stop and per `gcStart` through a ring buffer \
             (keeping a stop's entry registers in a map until its RET), bpftrace's only \
             bump a per-CPU counter.\n\
             - Pause inflation per stop is about half the per-cycle difference (a cycle \
             has two stops, one hit inside each); on a loaded machine the median and p90 \
             pauses are dominated by preemption of the stopping threads, p10 is the least \
             disturbed.\n\
             - Lost events in all gctrace-bpf runs: {lost}.\n",
            spread(&pair_ratios(alone, ours, |s| s.work_ns)),
            spread(&pair_ratios(alone, bt, |s| s.work_ns)),
            spread(&pair_ratios(alone, ours, |s| s.cpu_ns)),
            spread(&pair_ratios(alone, bt, |s| s.cpu_ns)),
            hits.gc_start,
            hits.start_the_world,
            ours.iter().map(|s| s.stw_records).sum::<u64>() as f64
                / ours.iter().map(|s| s.gc_records).sum::<u64>().max(1) as f64,
            hits.ours_from_trace,
        );
    }

    fn sample_md(&self, md: &mut String, series: &Series) {
        let alone = series.of(Variant::Alone);
        let rate = series.of(Variant::Tracer(AllocMode::Rate));
        let ours = series.of(Variant::Tracer(AllocMode::Sample));
        let _ = writeln!(
            md,
            "### `--allocs sample` (allocation probes in bursts, within a {SAMPLE_BUDGET_PERCENT} % budget)\n\n\
             `{}`, {} rounds of alone / gctrace-bpf in the default mode / gctrace-bpf \
             `--allocs sample` (order rotating). The budget bounds what the allocation \
             probes add to the target's CPU time, on top of the GC probes every mode has \
             (the default mode's own cost, the middle column). The first burst (10 ms, \
             measuring the hit rate) starts 1 s after the tracer; then one every 500 ms \
             while the budget's account is in credit (allowed: 2 % of the target's CPU time \
             so far; spent: every allocation-probe hit at four times the cost of a hit \
             measured at startup, for what a burst costs beyond its traps), each sized for \
             the budget's share of a period. The probes come and go \
             as one `uprobe_multi` link. No bpftrace column: bpftrace has no equivalent of \
             attaching probes in bursts.\n",
            series.work,
            series.rounds()
        );
        let _ = writeln!(
            md,
            "| measure | alone | gctrace-bpf default | gctrace-bpf sample | sample/default |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        let row = |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| {
            let (a, r, o) = (med(alone, f), med(rate, f), med(ours, f));
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {:.3} |",
                s3(a),
                s3(r),
                s3(o),
                ratio(o, r)
            );
        };
        row(md, "workload wall time", &|s| s.work_ns);
        row(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row(md, "of which system time", &|s| s.sys_ns);
        row(md, "whole command, spawn to exit", &|s| s.process_ns);
        let _ = writeln!(
            md,
            "| the tool's own CPU time per run | | {} | {} | |",
            s3(med(rate, Sample::tool_cpu_ns)),
            s3(med(ours, Sample::tool_cpu_ns))
        );
        let _ = writeln!(
            md,
            "| allocations per run: MemStats.Mallocs / gctrace-bpf's estimate from its bursts | {} | | {} | |",
            med(alone, |s| s.mallocs),
            med(ours, |s| s.alloc_objects)
        );
        let base = med(alone, |s| s.cpu_ns).max(1) as f64;
        let sampling_delta = paired_delta(rate, ours, |s| s.cpu_ns);
        let total_delta = paired_delta(alone, ours, |s| s.cpu_ns);
        let default_delta = paired_delta(alone, rate, |s| s.cpu_ns);
        let sys_delta = paired_delta(rate, ours, |s| s.sys_ns);
        let hit_ns = self.exact_hit_ns().unwrap_or(20_000.0);
        let sampling_pct = 100.0 * sampling_delta / base;
        let cpu_ratios = pair_ratios(rate, ours, |s| s.cpu_ns);
        let verdict = if med(ours, |s| s.alloc_objects) == 0 {
            "says nothing (no burst fell within the runs: make them longer)"
        } else if sampling_pct <= SAMPLE_BUDGET_PERCENT {
            "**holds**"
        } else {
            "**does not hold**"
        };
        let _ = writeln!(
            md,
            "\n- Budget check: sampling added {sampling_pct:+.1} % to the workload's CPU time \
             over the default mode (Δ {}, per-round sample/default ratios {}); against the \
             {SAMPLE_BUDGET_PERCENT} % budget that {verdict}. All told, against the program \
             alone: {:+.1} % (Δ {}), of which the default mode's GC probes {:+.1} % (Δ {}; \
             this workload runs {:.0} GC cycles a second, so they hit often).\n\
             - Where it goes: system time grew by {} per run over the default mode, about \
             {:.0} probe hits at the {} per hit measured in the exact-mode series below, \
             where the budget allows about {:.0} ({SAMPLE_BUDGET_PERCENT} % of the \
             workload's CPU time at that cost).\n",
            ms_delta(sampling_delta),
            spread(&cpu_ratios),
            100.0 * total_delta / base,
            ms_delta(total_delta),
            100.0 * default_delta / base,
            ms_delta(default_delta),
            med(alone, |s| s.num_gc) as f64 / (med(alone, |s| s.work_ns).max(1) as f64 / 1e9),
            ms_delta(sys_delta),
            sys_delta / hit_ns.max(1.0),
            per_hit(hit_ns, 1.0),
            SAMPLE_BUDGET_PERCENT / 100.0 * base / hit_ns.max(1.0),
        );
    }

    /// The tracer's CPU cost of one allocation-probe hit, from the exact-mode series.
    fn exact_hit_ns(&self) -> Option<f64> {
        let e = self.exact.as_ref()?;
        let hits = med(e.of(Variant::Bpftrace(ProbeSet::Allocs)), |s| s.hits.all) as f64;
        let delta = paired_delta(
            e.of(Variant::Alone),
            e.of(Variant::Tracer(AllocMode::Exact)),
            |s| s.cpu_ns,
        );
        (hits > 0.0 && delta > 0.0).then(|| delta / hits)
    }

    fn exact_md(&self, md: &mut String, series: &Series) {
        let alone = series.of(Variant::Alone);
        let ours = series.of(Variant::Tracer(AllocMode::Exact));
        let bt = series.of(Variant::Bpftrace(ProbeSet::Allocs));
        let mallocs = med(alone, |s| s.mallocs).max(1) as f64;
        let hits = med(bt, |s| s.hits.all) as f64;
        let _ = writeln!(
            md,
            "### `--allocs exact` (every allocation counted)\n\n\
             `{}`, {} rounds of alone / gctrace-bpf `--allocs exact` / bpftrace \
             (order rotating), no warm-up. bpftrace counts hits on the same {} allocation \
             functions (`runtime.mallocgc` and the size-specialised `SC<N>` entry points, \
             from `go tool nm`).\n",
            series.work,
            series.rounds(),
            self.alloc_functions.len()
        );
        let _ = writeln!(md, "| measure | alone | gctrace-bpf exact | bpftrace |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let row3 = |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| {
            let (a, o, b) = (med(alone, f), med(ours, f), med(bt, f));
            let _ = writeln!(
                md,
                "| {name} | {} | {} ({:.1}×) | {} ({:.1}×) |",
                s3(a),
                s3(o),
                ratio(o, a),
                s3(b),
                ratio(b, a)
            );
        };
        row3(md, "workload wall time", &|s| s.work_ns);
        row3(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row3(md, "of which system time", &|s| s.sys_ns);
        let (d_ours, d_bt) = (
            paired_delta(alone, ours, |s| s.cpu_ns),
            paired_delta(alone, bt, |s| s.cpu_ns),
        );
        let _ = writeln!(
            md,
            "| Δ workload CPU time vs alone | | {} | {} |",
            ms_delta(d_ours),
            ms_delta(d_bt)
        );
        let _ = writeln!(
            md,
            "| allocations per run (MemStats.Mallocs) | {:.0} | {} | {} |",
            mallocs,
            med(ours, |s| s.mallocs),
            med(bt, |s| s.mallocs)
        );
        let _ = writeln!(
            md,
            "| allocations counted by gctrace-bpf (dropped) | | {} ({}) | |",
            med(ours, |s| s.alloc_objects),
            med(ours, |s| s.alloc_dropped)
        );
        let _ = writeln!(
            md,
            "| probe hits per run (bpftrace's count; the same sites) | | {hits:.0} | {hits:.0} |"
        );
        let _ = writeln!(
            md,
            "| **cost per allocation** (Δ CPU / Mallocs) | | **{}** | **{}** |",
            per_hit(d_ours, mallocs),
            per_hit(d_bt, mallocs)
        );
        let _ = writeln!(
            md,
            "| cost per probe hit (Δ CPU / hits) | | {} | {} |",
            per_hit(d_ours, hits),
            per_hit(d_bt, hits)
        );
        row3(md, "whole command, spawn to exit", &|s| s.process_ns);
        let _ = writeln!(
            md,
            "| the tool's own CPU time per run (start-up included) | | {} | {} |",
            s3(med(ours, Sample::tool_cpu_ns)),
            s3(med(bt, Sample::tool_cpu_ns))
        );
        let _ = writeln!(
            md,
            "\n- Hits per allocation: {:.2}. There are more hits than allocations: on Go \
             1.27 `mallocgc` itself calls into the size-specialised functions, so an \
             allocation through it hits twice (the tracer counts it once: entries called \
             from inside `mallocgc` are counted there).\n",
            hits / mallocs
        );
    }

    fn stw_md(&self, md: &mut String, series: &Series) {
        let alone = series.of(Variant::Alone);
        let ours = series.of(Variant::Tracer(AllocMode::Rate));
        let bt = series.of(Variant::Bpftrace(ProbeSet::Gc));
        let bt_hits = med(bt, |s| s.hits.all) as f64;
        let stops = med(bt, |s| s.hits.start_the_world) as f64;
        let _ = writeln!(
            md,
            "### Default mode on a stop-the-world loop\n\n\
             `{}` (`runtime.ReadMemStats` back to back: each call stops and restarts the \
             world, no GC cycle, hardly any allocation), {} rounds of alone / gctrace-bpf / \
             bpftrace (order rotating): the default mode's hottest probes (`{START_THE_WORLD}` \
             entry and RET for gctrace-bpf, entry only for bpftrace) hit tens of thousands \
             of times for little other work, so their cost stands out of the noise.\n",
            series.work,
            series.rounds()
        );
        let _ = writeln!(md, "| measure | alone | gctrace-bpf | bpftrace |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let row3 = |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| {
            let (a, o, b) = (med(alone, f), med(ours, f), med(bt, f));
            let _ = writeln!(
                md,
                "| {name} | {} | {} ({:.2}×) | {} ({:.2}×) |",
                s3(a),
                s3(o),
                ratio(o, a),
                s3(b),
                ratio(b, a)
            );
        };
        row3(md, "workload wall time", &|s| s.work_ns);
        row3(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row3(md, "of which system time", &|s| s.sys_ns);
        let _ = writeln!(
            md,
            "| Δ workload CPU time vs alone | | {} | {} |",
            ms_delta(paired_delta(alone, ours, |s| s.cpu_ns)),
            ms_delta(paired_delta(alone, bt, |s| s.cpu_ns))
        );
        let _ = writeln!(
            md,
            "| probe hits per run | | {:.0} (bpftrace's + one RET per stop; its trace has {} stw records) | {bt_hits:.0} |",
            bt_hits + stops,
            med(ours, |s| s.stw_records)
        );
        let _ = writeln!(
            md,
            "| cost per stop-the-world (Δ CPU / stops) | | {} | {} |",
            per_hit(paired_delta(alone, ours, |s| s.cpu_ns), stops),
            per_hit(paired_delta(alone, bt, |s| s.cpu_ns), stops)
        );
        row3(md, "whole command, spawn to exit", &|s| s.process_ns);
        let _ = writeln!(
            md,
            "| the tool's own CPU time per run (start-up included; it decodes and writes every stw event) | | {} | {} |\n",
            s3(med(ours, Sample::tool_cpu_ns)),
            s3(med(bt, Sample::tool_cpu_ns))
        );
        // Every stop wakes the other vCPU; on a shared host that wake-up is sometimes
        // many times slower for minutes, and the program alone shows it.
        let fastest = alone.iter().map(|s| s.work_ns).min().unwrap_or(0);
        let slowest = alone.iter().map(|s| s.work_ns).max().unwrap_or(0);
        if fastest > 0 && slowest > DISTURBED_SPREAD * fastest {
            let _ = writeln!(
                md,
                "- **The machine was disturbed during this series**: the program alone took \
                 {} to {} for the same stops (each stop wakes the other vCPU, and those \
                 wake-ups were slow for part of the run). Its figures say little; compare \
                 rounds, or re-run.\n",
                s3(fastest),
                s3(slowest)
            );
        }
    }

    fn per_hit_md(&self, md: &mut String) {
        let d = &self.default;
        let alone = d.of(Variant::Alone);
        let ours = d.of(Variant::Tracer(AllocMode::Rate));
        let bt = d.of(Variant::Bpftrace(ProbeSet::Gc));
        let hits = self.default_hits();
        let (ours_hits, bt_hits) = (hits.ours, hits.bpftrace);
        let _ = writeln!(
            md,
            "### Cost of one probe hit\n\n\
             Δ CPU (or Δ system time) of the workload divided by the hits per run. On the \
             allocating workload the default mode takes only hundreds of hits per run, a \
             few ms of CPU, within the run-to-run noise of the CPU times: that row is a \
             consistency check only. The stop-the-world loop (tens of thousands of hits on \
             the same GC probes, little other work) and the exact mode (hundreds of \
             thousands of hits on the allocation probes) measure the cost of a hit.\n"
        );
        let _ = writeln!(
            md,
            "| series | hits per run (gctrace-bpf / bpftrace) | gctrace-bpf: µs per hit (CPU / system) | bpftrace: µs per hit (CPU / system) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| default mode, `{}` (GC probes, few hits) | {ours_hits:.0} / {bt_hits:.0} | {} / {} | {} / {} |",
            d.work,
            per_hit(paired_delta(alone, ours, |s| s.cpu_ns), ours_hits),
            per_hit(paired_delta(alone, ours, |s| s.sys_ns), ours_hits),
            per_hit(paired_delta(alone, bt, |s| s.cpu_ns), bt_hits),
            per_hit(paired_delta(alone, bt, |s| s.sys_ns), bt_hits),
        );
        if let Some(w) = &self.stw {
            let alone = w.of(Variant::Alone);
            let ours = w.of(Variant::Tracer(AllocMode::Rate));
            let bt = w.of(Variant::Bpftrace(ProbeSet::Gc));
            let bt_hits = med(bt, |s| s.hits.all) as f64;
            let ours_hits = bt_hits + med(bt, |s| s.hits.start_the_world) as f64;
            let _ = writeln!(
                md,
                "| default mode, `{}` (GC probes, stop-the-world loop) | {ours_hits:.0} / {bt_hits:.0} | {} / {} | {} / {} |",
                w.work,
                per_hit(paired_delta(alone, ours, |s| s.cpu_ns), ours_hits),
                per_hit(paired_delta(alone, ours, |s| s.sys_ns), ours_hits),
                per_hit(paired_delta(alone, bt, |s| s.cpu_ns), bt_hits),
                per_hit(paired_delta(alone, bt, |s| s.sys_ns), bt_hits),
            );
        }
        if let Some(e) = &self.exact {
            let alone = e.of(Variant::Alone);
            let ours = e.of(Variant::Tracer(AllocMode::Exact));
            let bt = e.of(Variant::Bpftrace(ProbeSet::Allocs));
            let hits = med(bt, |s| s.hits.all) as f64;
            let _ = writeln!(
                md,
                "| `--allocs exact`, `{}` (allocation probes) | {hits:.0} / {hits:.0} | {} / {} | {} / {} |",
                e.work,
                per_hit(paired_delta(alone, ours, |s| s.cpu_ns), hits),
                per_hit(paired_delta(alone, ours, |s| s.sys_ns), hits),
                per_hit(paired_delta(alone, bt, |s| s.cpu_ns), hits),
                per_hit(paired_delta(alone, bt, |s| s.sys_ns), hits),
            );
        }
        let _ = writeln!(md);
    }
}

/// Replaces the generated section of `doc` (or appends one), keeping the rest.
fn write_section(doc: &Path, section: &str) -> Result<()> {
    write_marked(doc, BEGIN, END, section)
}

/// Replace the text between `begin` and `end` in `doc` (or append it).
fn write_marked(doc: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
    let old = fs::read_to_string(doc).unwrap_or_default();
    let generated = format!("{begin}\n\n{section}\n{end}\n");
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => {
            format!(
                "{}{generated}{}",
                &old[..b],
                &old[e + end.len()..].trim_start_matches('\n')
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

/// `"key":"text"` in compact JSON (no escapes in the text).
fn json_str(text: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let rest = &text[text.find(&pat)? + pat.len()..];
    Some(rest[..rest.find('"')?].to_owned())
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
        assert_eq!(
            json_str(r#"{"key":"Go 1.27, 5 MB","n":1}"#, "key").as_deref(),
            Some("Go 1.27, 5 MB")
        );
        assert_eq!(json_str(r#"{"n":1}"#, "key"), None);
    }

    #[test]
    fn gc_sites_come_from_inspect() {
        let json = r#"{"go_version":"go1.27.3","probes":[{"symbol":"runtime.gcStart","address":"0x1000","ret_addresses":["0x1100"],"attached":true},{"symbol":"runtime.stopTheWorldWithSema","address":"0x2000","ret_addresses":[],"attached":false},{"symbol":"runtime.startTheWorldWithSema","address":"0x3000","ret_addresses":["0x3040","0x30a0"],"attached":true}],"warnings":[]}"#;
        assert_eq!(
            gc_sites_from_inspect(json),
            ["\"runtime.gcStart\"", "\"runtime.startTheWorldWithSema\""]
        );
    }

    #[test]
    fn alloc_functions_follow_the_plan() {
        let nm = "  4a0 T runtime.mallocgc\n  4b0 T runtime.mallocgcLarge\n  \
                  4c0 T runtime.mallocgcTinySC2\n  4d0 T runtime.mallocgcTinySlowPath\n  \
                  4e0 T runtime.mallocgcSmallScanNoHeaderSC12\n  4f0 D runtime.mallocgcSmallNoScanSC3\n";
        assert_eq!(
            alloc_functions_from_nm(nm),
            [
                "runtime.mallocgc",
                "runtime.mallocgcSmallScanNoHeaderSC12",
                "runtime.mallocgcTinySC2"
            ]
        );
    }

    #[test]
    fn bpftrace_maps_are_summed() {
        let out = "Attaching 3 probes...\ngcload done\n\n\n@[uprobe:/b/gcload:runtime.gcStart]: 31\n\
                   @[uprobe:/b/gcload:runtime.startTheWorldWithSema]: 24\n@[uprobe:/b/gcload:runtime.startTheWorldWithSema+385]: 24\n";
        assert_eq!(
            bpftrace_hits(out),
            Hits {
                all: 79,
                gc_start: 31,
                start_the_world: 24
            }
        );
        assert_eq!(bpftrace_hits(""), Hits::default());
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
