//! How the bench runs its variants: what runs gcload (alone, the tracer in a mode,
//! bpftrace on a probe set), one run's figures ([`Sample`]), a series of interleaved
//! rounds ([`Bench::series`]), and the probe sites bpftrace is given.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::*;

/// What runs gcload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Variant {
    Alone,
    /// gctrace-bpf with this `--allocs` mode.
    Tracer(AllocMode),
    /// bpftrace counting hits on these probe sites.
    Bpftrace(ProbeSet),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AllocMode {
    Rate,
    Sample,
    Exact,
}

impl AllocMode {
    pub(super) fn arg(self) -> &'static str {
        match self {
            AllocMode::Rate => "rate",
            AllocMode::Sample => "sample",
            AllocMode::Exact => "exact",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProbeSet {
    /// The default mode's GC probe sites.
    Gc,
    /// The allocation functions of `--allocs exact`.
    Allocs,
}

impl Variant {
    pub(super) fn label(self) -> &'static str {
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
pub(super) struct Sample {
    /// gcload's own ElapsedNs: main to end of work.
    pub(super) work_ns: u64,
    /// gcload's CPU time (getrusage at the end: user + system, and system alone).
    pub(super) cpu_ns: u64,
    pub(super) sys_ns: u64,
    /// Spawn to exit of the command (gcload, or the tool launching it).
    pub(super) process_ns: u64,
    /// CPU time of the whole command (its process tree, once reaped).
    pub(super) command_cpu_ns: u64,
    pub(super) num_gc: u64,
    pub(super) mallocs: u64,
    /// MemStats.PauseNs of the run's cycles (the last 256 at most).
    pub(super) pauses_ns: Vec<u64>,
    /// gctrace-bpf runs: records in the trace, and the allocations its last alloc_types
    /// record counts (exact: every one; sample: extrapolated from the bursts).
    pub(super) gc_records: u64,
    pub(super) stw_records: u64,
    pub(super) lost_events: u64,
    pub(super) alloc_objects: u64,
    pub(super) alloc_dropped: u64,
    /// bpftrace runs: the hits it counted.
    pub(super) hits: Hits,
}

impl Sample {
    /// The tool's own CPU time: the command's less gcload's (10 ms ticks).
    pub(super) fn tool_cpu_ns(&self) -> u64 {
        self.command_cpu_ns.saturating_sub(self.cpu_ns)
    }
}

/// A gcload run's fixed work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Work {
    /// `-work MiB`: allocate that much.
    Alloc(u64),
    /// `-stw-loop N`: stop the world N times (runtime.ReadMemStats), allocate nothing.
    Stw(u64),
}

impl Work {
    pub(super) fn args(self) -> [String; 2] {
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
pub(super) struct Series {
    pub(super) work: Work,
    pub(super) variants: Vec<Variant>,
    pub(super) runs: Vec<Vec<Sample>>,
}

impl Series {
    pub(super) fn of(&self, v: Variant) -> &[Sample] {
        self.variants
            .iter()
            .position(|&x| x == v)
            .and_then(|i| self.runs.get(i))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub(super) fn rounds(&self) -> usize {
        self.runs.first().map_or(0, Vec::len)
    }
}

/// The default mode's probe sites on `gcload` that bpftrace can take: the entries of
/// the functions the tracer attaches (from `gctrace-bpf inspect --format json`), as
/// `"function"`. Not the RET sites of `runtime.startTheWorldWithSema`, which the tracer
/// also probes: Debian's bpftrace is built without the instruction decoder that
/// `uprobe:BIN:FUNC+OFFSET` needs ("Can't check if uprobe is in proper place"), even with
/// `--unsafe`; the one RET hit per call is added to the tracer's count instead.
pub(super) fn gc_probe_sites(tracer: &Path, gcload: &Path) -> Result<Vec<String>> {
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
pub(super) fn gc_sites_from_inspect(text: &str) -> Vec<String> {
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
pub(super) fn alloc_functions(go: &Path, gcload: &Path) -> Result<Vec<String>> {
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
pub(super) fn alloc_functions_from_nm(nm: &str) -> Vec<String> {
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
pub(super) fn write_script(path: &Path, binary: &Path, sites: &[String]) -> Result<()> {
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

pub(super) struct Bench {
    pub(super) tracer: PathBuf,
    pub(super) gcload: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) gc_script: PathBuf,
    pub(super) alloc_script: PathBuf,
}

impl Bench {
    pub(super) fn memstats_path(&self) -> PathBuf {
        self.dir.join("memstats.json")
    }

    pub(super) fn trace_path(&self) -> PathBuf {
        self.dir.join("trace.ndjson")
    }

    /// gcload's arguments: the fixed work, and where to write its MemStats.
    pub(super) fn gcload_args(&self, work: Work) -> Vec<OsString> {
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
    pub(super) fn series(
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

    pub(super) fn once(&self, variant: Variant, work: Work) -> Result<Sample> {
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
    pub(super) fn run(&self, cmd: &mut Command) -> Result<Run> {
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

    pub(super) fn sample(&self, run: &Run, trace: Option<&Path>) -> Result<Sample> {
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
pub(super) struct Run {
    pub(super) process_ns: u64,
    pub(super) command_cpu_ns: u64,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Probe hits bpftrace counted in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Hits {
    pub(super) all: u64,
    /// At the entry of `runtime.gcStart`.
    pub(super) gc_start: u64,
    /// At the entry of `runtime.startTheWorldWithSema`: one per stop-the-world.
    pub(super) start_the_world: u64,
}

/// bpftrace's printed map at exit, `@[uprobe:BIN:SITE]: N` per site.
pub(super) fn bpftrace_hits(stdout: &str) -> Hits {
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
pub(super) fn tool_version(program: &str, flag: &str) -> Result<String> {
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

/// CPU time (user + system) of this process's reaped children so far: /proc/self/stat
/// cutime + cstime, in USER_HZ ticks (100 per second on Linux).
pub(super) fn children_cpu_ns() -> Result<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
