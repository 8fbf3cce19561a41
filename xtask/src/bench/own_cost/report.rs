//! The markdown of the tracer's own cost: its CPU and memory, its attach latency and the
//! event rate it keeps up with, each against its goal.

use super::*;
use crate::bench::median_of_f64 as med_f;

pub(super) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(super) fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Goal verdict.
fn holds(ok: bool) -> &'static str {
    if ok {
        "holds"
    } else {
        "**does not hold**"
    }
}

impl OwnCost {
    pub fn is_empty(&self) -> bool {
        self.footprint.iter().all(|(_, v)| v.is_empty())
            && self.attach_big.is_empty()
            && self.rates.is_empty()
    }

    pub fn markdown(&self, md: &mut String) {
        use std::fmt::Write as _;
        if self.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### The tracer's own cost\n\n\
             gctrace-bpf's own CPU time and memory, its start-up, and the event rate it keeps \
             up with. It runs as `--pid` on a target the bench started, so its figures are its \
             own (in launch mode the target is its child). Goals: ≤ 1 % of one core and ≤ \
             64 MiB, attached within 1 s on a 100 MB binary.\n"
        );
        self.footprint_md(md);
        self.attach_md(md);
        self.rates_md(md);
    }

    fn footprint_md(&self, md: &mut String) {
        use std::fmt::Write as _;
        let [(_, gc), (_, stw)] = &self.footprint[..] else {
            return;
        };
        if gc.is_empty() || stw.is_empty() {
            return;
        }
        let w = self.footprint_window.as_secs();
        let _ = writeln!(
            md,
            "#### CPU and memory\n\n\
             {} rounds of `gctrace-bpf --pid` on `gcload -forever` (four paced allocating \
             goroutines) and on `gcload -stw-loop` (stops of the world back to back: the \
             highest event rate a Go program gives the default mode, as the runtime serialises \
             its stops), order alternating. CPU: the tracer's on-CPU time, summed over its \
             threads from /proc/PID/task/*/schedstat (the scheduler's ns count; the thread \
             count must not change), over a {w} s window that starts 1 s after it attached. Peak RSS: its `ru_maxrss` from wait4, over the whole run \
             (analysis and attach included). Events: probe hits in the window, two per \
             stop-the-world record and one per gc record of its trace (the kernel sends a \
             stop's two hits as one ring-buffer event on Go 1.22+; the bench's Go is newer). \
             Output: JSON lines to a file, one per stop. Medians over rounds.\n",
            gc.len(),
        );
        let _ = writeln!(
            md,
            "| measure | {} | {} |",
            Load::GcOnly.label(),
            Load::StwLoop.label()
        );
        let _ = writeln!(md, "|---|---:|---:|");
        let row = |md: &mut String, name: &str, f: &dyn Fn(&[Footprint]) -> String| {
            let _ = writeln!(md, "| {name} | {} | {} |", f(gc), f(stw));
        };
        let per_sec = |v: &[Footprint], x: &dyn Fn(&Footprint) -> u64| {
            med_f(
                &v.iter()
                    .map(|f| x(f) as f64 / secs(f.window_ns).max(1e-9))
                    .collect::<Vec<_>>(),
            )
        };
        row(md, "events per second (probe hits)", &|v| {
            format!("{:.0}", per_sec(v, &Footprint::events))
        });
        row(md, "GC cycles / stops of the world per second", &|v| {
            format!(
                "{:.1} / {:.0}",
                per_sec(v, &|f| f.cycles),
                per_sec(v, &|f| f.stops)
            )
        });
        let cpu =
            |v: &[Footprint]| med_f(&v.iter().map(Footprint::cpu_percent).collect::<Vec<_>>());
        row(md, "**CPU, % of one core** (goal ≤ 1 %)", &|v| {
            format!("**{:.2} %**", cpu(v))
        });
        row(md, "CPU per event (probe hit)", &|v| {
            let us: Vec<f64> = v
                .iter()
                .map(|f| f.window_cpu_ns as f64 / f.events().max(1) as f64 / 1e3)
                .collect();
            format!("{:.2} µs", med_f(&us))
        });
        row(md, "**peak RSS** (goal ≤ 64 MiB)", &|v| {
            format!(
                "**{}**",
                mib(median(v.iter().map(|f| f.maxrss_kib).collect()))
            )
        });
        row(
            md,
            "CPU time of the whole run (start-up, analysis, attach, exit)",
            &|v| crate::bench::s3(median(v.iter().map(|f| f.total_cpu_ns).collect())),
        );
        row(md, "lost events (all rounds)", &|v| {
            v.iter().map(|f| f.lost).sum::<u64>().to_string()
        });
        let peak = |v: &[Footprint]| median(v.iter().map(|f| f.maxrss_kib).collect());
        let _ = writeln!(
            md,
            "\n- CPU per round: GC only {}; stop-the-world loop {}. At the GC-only rate the \
             tracer's fixed work (draining the ring buffer every 100 ms, reading the \
             allocation counter every second) outweighs its events: CPU per event there is \
             not a cost per event.\n\
             - Goals: GC only, {:.2} % of a core {} the 1 % goal and {} {} the 64 MiB goal; \
             at the high event rate, {:.2} % {} the CPU goal (the tracer decodes and writes \
             every event: its CPU grows with the event rate, not with the program) and {} {} \
             the memory goal.\n",
            spread_pct(gc),
            spread_pct(stw),
            cpu(gc),
            holds(cpu(gc) <= 1.0),
            mib(peak(gc)),
            holds(peak(gc) <= 64 * 1024),
            cpu(stw),
            holds(cpu(stw) <= 1.0),
            mib(peak(stw)),
            holds(peak(stw) <= 64 * 1024),
        );
    }

    fn attach_md(&self, md: &mut String) {
        use std::fmt::Write as _;
        let Some(big) = &self.big else {
            return;
        };
        if self.attach_big.is_empty() {
            return;
        }
        let s = big.sections;
        let _ = writeln!(
            md,
            "#### Attach latency\n\n\
             From starting `gctrace-bpf --pid PID --format json --output FILE` to its first \
             record (`process`) in FILE, which it writes once every probe is attached: binary \
             analysis, eBPF load and attach, and its own start-up. Beside it, `gctrace-bpf \
             inspect` on the same binary (the analysis alone, in a process of its own). {} \
             rounds after one discarded, page cache warm, on gcload ({}) and on a generated \
             Go program of {} ({} functions, {} of them generated in {} packages and all \
             reachable; `.text` {}, `.gopclntab` {}, symbol and string tables {}, DWARF {} \
             (compressed), {} of embedded data to reach the size; built with the same Go).\n",
            self.attach_big.len(),
            mb(self.small_bytes),
            mb(big.bytes),
            big.functions,
            big.generated_functions,
            big.generated_functions.div_ceil(2500),
            mb(s.text),
            mb(s.gopclntab),
            mb(s.symtab),
            mb(s.dwarf),
            mb(big.embedded_bytes)
        );
        let _ = writeln!(
            md,
            "| measure | gcload ({}) | big binary ({}) |",
            mb(self.small_bytes),
            mb(big.bytes)
        );
        let _ = writeln!(md, "|---|---:|---:|");
        let stat = |v: &[Attach], f: &dyn Fn(&Attach) -> u64| {
            let all: Vec<u64> = v.iter().map(f).collect();
            format!(
                "{} ({} to {})",
                crate::bench::s3(median(all.clone())),
                crate::bench::s3(all.iter().copied().min().unwrap_or(0)),
                crate::bench::s3(all.iter().copied().max().unwrap_or(0))
            )
        };
        let _ = writeln!(
            md,
            "| **start to attached** (median, min to max; goal ≤ 1 s on 100 MB) | {} | **{}** |",
            stat(&self.attach_small, &|a| a.attach_ns),
            stat(&self.attach_big, &|a| a.attach_ns)
        );
        let _ = writeln!(
            md,
            "| binary analysis alone (`inspect`, its whole process) | {} | {} |",
            stat(&self.attach_small, &|a| a.analysis_ns),
            stat(&self.attach_big, &|a| a.analysis_ns)
        );
        let _ = writeln!(
            md,
            "| the tracer's peak RSS (ru_maxrss) | {} | {} |",
            mib(median(
                self.attach_small.iter().map(|a| a.maxrss_kib).collect()
            )),
            mib(median(
                self.attach_big.iter().map(|a| a.maxrss_kib).collect()
            ))
        );
        let big_attach = median(self.attach_big.iter().map(|a| a.attach_ns).collect());
        let big_rss = median(self.attach_big.iter().map(|a| a.maxrss_kib).collect());
        let _ = writeln!(
            md,
            "\n- Goal: attached in {} on the {} binary: {}. Peak RSS on it: {}, which {} the \
             64 MiB goal (the tracer maps the executable: the pages its analysis touches \
             count).\n",
            crate::bench::s3(big_attach),
            mb(big.bytes),
            holds(big_attach <= 1_000_000_000),
            mib(big_rss),
            holds(big_rss <= 64 * 1024)
        );
    }

    fn rates_md(&self, md: &mut String) {
        use std::fmt::Write as _;
        if self.rates.is_empty() {
            return;
        }
        let mut requested: Vec<u64> = self.rates.iter().map(|r| r.requested).collect();
        requested.sort_unstable_by_key(|&r| if r == 0 { u64::MAX } else { r });
        requested.dedup();
        let rounds = self.rates.len() / requested.len().max(1);
        let _ = writeln!(
            md,
            "#### Events per second without loss\n\n\
             Launch mode, default ring buffer (4 MiB), `gcload -stw-loop N -stw-rate R`: N \
             stops of the world (`runtime.ReadMemStats`) paced at R per second (about {} s \
             each; \"back to back\" is unpaced), {rounds} rounds, order rotating. Each stop \
             is two probe hits (sent as one ring-buffer event on Go 1.22+), counted as two \
             events; the rate is what gcload achieved (its own count and clock). Lost: the summary's `lost_events`, summed \
             over rounds. Without loss, the trace must hold one `read mem stats` stw record \
             per stop (plus the final `ReadMemStats` for -memstats-out): records missing \
             where no loss was counted would be a silent loss. With a loss, the model drops \
             the stops whose events it lost, and never pairs one stop's start with another's \
             end.\n",
            self.rate_secs
        );
        let _ = writeln!(
            md,
            "| stops/s asked | events/s achieved (median) | lost events | stop records missing from the traces |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|");
        let mut best: Option<f64> = None;
        for &req in &requested {
            let runs: Vec<&RateRun> = self.rates.iter().filter(|r| r.requested == req).collect();
            let eps = med_f(&runs.iter().map(|r| r.events_per_sec()).collect::<Vec<_>>());
            let lost: u64 = runs.iter().map(|r| r.lost).sum();
            let complete = runs.iter().all(|r| r.stw_records == r.stops + 1);
            let missing: u64 = runs
                .iter()
                .map(|r| (r.stops + 1).saturating_sub(r.stw_records))
                .sum();
            // Missing records without a counted loss would be a silent loss.
            let silent = runs
                .iter()
                .any(|r| r.lost == 0 && r.stw_records != r.stops + 1);
            if lost == 0 && complete {
                let lowest = runs
                    .iter()
                    .map(|r| r.events_per_sec())
                    .fold(f64::INFINITY, f64::min);
                best = Some(best.map_or(lowest, |b: f64| b.max(lowest)));
            }
            let _ = writeln!(
                md,
                "| {} | {eps:.0} | {lost} | {missing}{} |",
                if req == 0 {
                    "back to back".to_string()
                } else {
                    req.to_string()
                },
                if silent {
                    " (**with no loss counted**)"
                } else {
                    ""
                }
            );
        }
        let unpaced: Vec<&RateRun> = self.rates.iter().filter(|r| r.requested == 0).collect();
        let unpaced_ok = !unpaced.is_empty()
            && unpaced
                .iter()
                .all(|r| r.lost == 0 && r.stw_records == r.stops + 1);
        let _ = writeln!(
            md,
            "\n- Highest rate sustained without loss in every round: {}.{}\n",
            best.map_or_else(|| "none".to_string(), |b| format!("**{b:.0} events/s**")),
            if unpaced_ok {
                " In this run even back to back, the most this workload produces here (each \
                 stop costs the program two probe traps; see the stop-the-world loop above), \
                 lost nothing: the tracer's limit was not reached."
            } else {
                ""
            }
        );
    }
}

/// "a to b %" of the per-round CPU percentages.
fn spread_pct(v: &[Footprint]) -> String {
    let mut p: Vec<f64> = v.iter().map(Footprint::cpu_percent).collect();
    p.sort_by(f64::total_cmp);
    match (p.first(), p.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.2} to {hi:.2} %"),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(requested: u64, stops: u64, elapsed_ms: u64, stw_records: u64, lost: u64) -> RateRun {
        RateRun {
            requested,
            stops,
            elapsed_ns: elapsed_ms * 1_000_000,
            stw_records,
            lost,
        }
    }

    fn own(rates: Vec<RateRun>) -> OwnCost {
        OwnCost {
            footprint_window: Duration::from_secs(1),
            footprint: vec![(Load::GcOnly, Vec::new()), (Load::StwLoop, Vec::new())],
            attach_small: Vec::new(),
            attach_big: Vec::new(),
            small_bytes: 0,
            big: None,
            rates,
            rate_secs: 1,
        }
    }

    /// The highest rate counts only when every round at it lost nothing and its trace
    /// holds every stop; a round with a silent loss (records missing, lost 0) does not.
    #[test]
    fn highest_rate_without_loss() {
        let mut md = String::new();
        own(vec![
            run(1000, 1000, 1000, 1001, 0),
            run(1000, 1000, 1000, 1001, 0),
            run(5000, 5000, 1000, 5001, 0),
            run(5000, 5000, 1000, 5001, 0),
            run(0, 20000, 1000, 19990, 0),
            run(0, 20000, 1000, 20001, 0),
        ])
        .markdown(&mut md);
        assert!(md.contains("**10000 events/s**"), "{md}");
        assert!(
            md.contains("| back to back | 40000 | 0 | 11 (**with no loss counted**) |"),
            "{md}"
        );
        assert!(!md.contains("the tracer's limit was not reached"), "{md}");

        let mut md = String::new();
        own(vec![
            run(0, 20000, 1000, 20001, 0),
            run(1000, 1000, 1000, 1001, 3),
        ])
        .markdown(&mut md);
        assert!(md.contains("**40000 events/s**"), "{md}");
        assert!(md.contains("| 1000 | 2000 | 3 | 0 |"), "{md}");
        assert!(md.contains("the tracer's limit was not reached"), "{md}");
    }

    #[test]
    fn nothing_measured_writes_nothing() {
        let mut md = String::new();
        own(Vec::new()).markdown(&mut md);
        assert!(md.is_empty(), "{md}");
    }
}
