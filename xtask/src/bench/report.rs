//! The bench's report: the markdown of the machine, the default-mode series and the
//! hit counts, its formatting helpers (the rows its tables share are in `table.rs`),
//! and the rewrite of the generated section of docs/performance.md (the other series'
//! sections are in `report_series.rs`).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::*;

/// See [`Report::default_hits`].
pub(super) struct DefaultHits {
    pub(super) bpftrace: f64,
    pub(super) ours: f64,
    /// Two per stop-the-world record in the tracer's own trace, plus the gcStart hits.
    pub(super) ours_from_trace: f64,
    pub(super) gc_start: f64,
    pub(super) start_the_world: f64,
}

pub(super) struct Report {
    pub(super) go_version: String,
    pub(super) bpftrace_version: String,
    pub(super) load_before: String,
    pub(super) load_after: String,
    pub(super) gc_sites: Vec<String>,
    pub(super) alloc_functions: Vec<String>,
    pub(super) default: Series,
    pub(super) sample: Option<Series>,
    pub(super) exact: Option<Series>,
    pub(super) stw: Option<Series>,
    pub(super) own: own_cost::OwnCost,
    pub(super) took: Duration,
}

/// Formatting helpers for the tables.
pub(super) fn s3(ns: u64) -> String {
    format!("{:.3} s", secs(ns))
}

pub(super) fn us(ns: u64) -> String {
    format!("{:.0} µs", ns as f64 / 1e3)
}

pub(super) fn ms_delta(ns: f64) -> String {
    format!("{:+.0} ms", ns / 1e6)
}

pub(super) fn ratio(t: u64, a: u64) -> f64 {
    t as f64 / a.max(1) as f64
}

/// µs per hit of a CPU delta, or "–" without hits.
pub(super) fn per_hit(delta_ns: f64, hits: f64) -> String {
    if hits > 0.0 {
        format!("{:.1} µs", delta_ns / hits / 1e3)
    } else {
        "–".into()
    }
}

impl Report {
    pub(super) fn markdown(&self) -> String {
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
    pub(super) fn default_hits(&self) -> DefaultHits {
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

    pub(super) fn default_md(&self, md: &mut String) {
        let d = &self.default;
        let c = gc_columns(d);
        let (alone, ours, bt) = (c.alone, c.ours, c.other);
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
        head(md, &["measure", "alone", "gctrace-bpf", "bpftrace"]);
        let row3 =
            |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| ratio_row(md, name, c, 3, f);
        row3(
            md,
            "workload wall time (its own clock, main to end of work)",
            &|s| s.work_ns,
        );
        row3(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row3(md, "of which system time (uprobe traps land here)", &|s| {
            s.sys_ns
        });
        delta_row(md, "Δ workload CPU time vs alone", c, |s| s.cpu_ns);
        delta_row(md, "Δ system time vs alone", c, |s| s.sys_ns);
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
        tool_cpu_row(
            md,
            "the tool's own CPU time per run (start-up included; 10 ms ticks)",
            c,
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
}

/// Replaces the generated section of `doc` (or appends one), keeping the rest.
pub(super) fn write_section(doc: &Path, section: &str) -> Result<()> {
    write_marked(doc, BEGIN, END, section)
}

/// Replace the text between `begin` and `end` in `doc` (or append it).
pub(super) fn write_marked(doc: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
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

pub(super) fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// "2 × Intel(R) Xeon(R) ..." from /proc/cpuinfo.
pub(super) fn cpu_description() -> String {
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
pub(super) fn today() -> String {
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
