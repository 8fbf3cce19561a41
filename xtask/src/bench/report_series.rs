//! The report's sections for the series beyond the default mode: `--allocs sample`,
//! `--allocs exact`, the stop-the-world loop, and the cost of one probe hit.

use std::fmt::Write as _;

use super::*;

impl Report {
    pub(super) fn sample_md(&self, md: &mut String, series: &Series) {
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
    pub(super) fn exact_hit_ns(&self) -> Option<f64> {
        let e = self.exact.as_ref()?;
        let hits = med(e.of(Variant::Bpftrace(ProbeSet::Allocs)), |s| s.hits.all) as f64;
        let delta = paired_delta(
            e.of(Variant::Alone),
            e.of(Variant::Tracer(AllocMode::Exact)),
            |s| s.cpu_ns,
        );
        (hits > 0.0 && delta > 0.0).then(|| delta / hits)
    }

    pub(super) fn exact_md(&self, md: &mut String, series: &Series) {
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
        let c = Columns {
            alone,
            ours,
            other: bt,
        };
        head(md, &["measure", "alone", "gctrace-bpf exact", "bpftrace"]);
        let row3 =
            |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| ratio_row(md, name, c, 1, f);
        row3(md, "workload wall time", &|s| s.work_ns);
        row3(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row3(md, "of which system time", &|s| s.sys_ns);
        let (d_ours, d_bt) = (
            paired_delta(alone, ours, |s| s.cpu_ns),
            paired_delta(alone, bt, |s| s.cpu_ns),
        );
        delta_row(md, "Δ workload CPU time vs alone", c, |s| s.cpu_ns);
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
        tool_cpu_row(md, "the tool's own CPU time per run (start-up included)", c);
        let _ = writeln!(
            md,
            "\n- Hits per allocation: {:.2}. There are more hits than allocations: on Go \
             1.27 `mallocgc` itself calls into the size-specialised functions, so an \
             allocation through it hits twice (the tracer counts it once: entries called \
             from inside `mallocgc` are counted there).\n",
            hits / mallocs
        );
    }

    pub(super) fn stw_md(&self, md: &mut String, series: &Series) {
        let c = gc_columns(series);
        let (alone, ours, bt) = (c.alone, c.ours, c.other);
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
        head(md, &["measure", "alone", "gctrace-bpf", "bpftrace"]);
        let row3 =
            |md: &mut String, name: &str, f: &dyn Fn(&Sample) -> u64| ratio_row(md, name, c, 2, f);
        row3(md, "workload wall time", &|s| s.work_ns);
        row3(md, "workload CPU time (user + system)", &|s| s.cpu_ns);
        row3(md, "of which system time", &|s| s.sys_ns);
        delta_row(md, "Δ workload CPU time vs alone", c, |s| s.cpu_ns);
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
        tool_cpu_row(
            md,
            "the tool's own CPU time per run (start-up included; it decodes and writes every stw event)",
            c,
        );
        let _ = writeln!(md);
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

    pub(super) fn per_hit_md(&self, md: &mut String) {
        let d = &self.default;
        let hits = self.default_hits();
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
        head(
            md,
            &[
                "series",
                "hits per run (gctrace-bpf / bpftrace)",
                "gctrace-bpf: µs per hit (CPU / system)",
                "bpftrace: µs per hit (CPU / system)",
            ],
        );
        per_hit_row(
            md,
            &format!("default mode, `{}` (GC probes, few hits)", d.work),
            gc_columns(d),
            hits.ours,
            hits.bpftrace,
        );
        if let Some(w) = &self.stw {
            let bt = w.of(Variant::Bpftrace(ProbeSet::Gc));
            let bt_hits = med(bt, |s| s.hits.all) as f64;
            let ours_hits = bt_hits + med(bt, |s| s.hits.start_the_world) as f64;
            per_hit_row(
                md,
                &format!(
                    "default mode, `{}` (GC probes, stop-the-world loop)",
                    w.work
                ),
                gc_columns(w),
                ours_hits,
                bt_hits,
            );
        }
        if let Some(e) = &self.exact {
            let c = Columns {
                alone: e.of(Variant::Alone),
                ours: e.of(Variant::Tracer(AllocMode::Exact)),
                other: e.of(Variant::Bpftrace(ProbeSet::Allocs)),
            };
            let hits = med(c.other, |s| s.hits.all) as f64;
            per_hit_row(
                md,
                &format!("`--allocs exact`, `{}` (allocation probes)", e.work),
                c,
                hits,
                hits,
            );
        }
        let _ = writeln!(md);
    }
}
