//! The process-level rules, judged once a second over the [`Window`].

use super::window::Window;
use super::{Thresholds, Verdict};
use crate::model::records::{FindingId, Severity};

/// Fewest pauses in the window for a percentile to mean anything.
const MIN_PAUSES: usize = 10;
/// Fewest cycles in the growth window for a trend.
const MIN_GROWTH_CYCLES: usize = 8;
/// Cycles each of the first and last thirds (of time) of a growth window must hold.
const MIN_THIRD_CYCLES: usize = 2;
/// A series grew when its last third's mean is this much above its first third's.
const GROWTH_RATIO: f64 = 1.2;
/// The heap is "near" the memory limit from this share of it.
const NEAR_LIMIT: f64 = 0.85;

pub fn judge(w: &Window, t: &Thresholds, cpu_limit_cores: Option<f64>) -> Vec<Verdict> {
    let mut out = Vec::new();
    out.extend(pause_slo(w, t));
    let cpu = w.gc_cpu_percent(t.window_s);
    if let Some(cpu) = cpu.filter(|c| *c > t.gc_cpu_percent) {
        let severity = if cpu > 5.0 * t.gc_cpu_percent {
            Severity::Critical
        } else {
            Severity::Warning
        };
        out.push(Verdict {
            id: FindingId::GcThrashing,
            severity,
            summary: format!(
                "GC CPU {cpu:.1}% of GOMAXPROCS over the last {:.0}s > {}%",
                w.covered_s(t.window_s),
                t.gc_cpu_percent
            ),
            evidence: vec![
                ("gc_cpu_percent", round1(cpu)),
                ("threshold_percent", t.gc_cpu_percent),
                (
                    "cycles_per_s",
                    round1(w.cycles_per_s(t.window_s).unwrap_or(0.0)),
                ),
            ],
            sites: Vec::new(),
        });
    }
    if let Some(rate) = w.cycles_per_s(t.window_s).filter(|r| *r > t.cycles_per_s) {
        out.push(Verdict {
            id: FindingId::GcFrequency,
            severity: Severity::Warning,
            summary: format!("{rate:.0} GC cycles/s > {:.0}/s", t.cycles_per_s),
            evidence: vec![
                ("cycles_per_s", round1(rate)),
                ("threshold_cycles_per_s", t.cycles_per_s),
            ],
            sites: Vec::new(),
        });
    }
    let heap: Vec<(u64, f64)> = w
        .cycles_in(t.growth_window_s)
        .filter_map(|c| Some((c.end_ns, c.heap_live? as f64)))
        .collect();
    if let Some(g) = growth(&heap, t.growth_window_s, 0.0) {
        out.push(Verdict {
            id: FindingId::HeapGrowth,
            severity: Severity::Warning,
            summary: format!(
                "live heap {:.1} -> {:.1} MB over {:.0}s ({:+.1} MB/min)",
                g.from / 1e6,
                g.to / 1e6,
                g.span_s,
                g.per_min / 1e6
            ),
            evidence: vec![
                ("heap_live_from_bytes", g.from.round()),
                ("heap_live_to_bytes", g.to.round()),
                ("growth_bytes_per_min", g.per_min.round()),
                ("span_s", round1(g.span_s)),
                ("cycles", heap.len() as f64),
            ],
            sites: Vec::new(),
        });
    }
    let procs = f64::from(w.latest_gomaxprocs().unwrap_or(1));
    let gs: Vec<(u64, f64)> = w
        .cycles_in(t.growth_window_s)
        .filter_map(|c| Some((c.end_ns, c.goroutines? as f64)))
        .collect();
    // Dead goroutines cached on Ps (up to 64 each) are in the count: growth must exceed them.
    if let Some(g) = growth(&gs, t.growth_window_s, 64.0 * procs + 36.0) {
        out.push(Verdict {
            id: FindingId::GoroutineGrowth,
            severity: Severity::Warning,
            summary: format!(
                "goroutines {:.0} -> {:.0} over {:.0}s ({:+.0}/min)",
                g.from, g.to, g.span_s, g.per_min
            ),
            evidence: vec![
                ("goroutines_from", g.from.round()),
                ("goroutines_to", g.to.round()),
                ("growth_per_min", g.per_min.round()),
                ("span_s", round1(g.span_s)),
            ],
            sites: Vec::new(),
        });
    }
    out.extend(memory_limit_spiral(w, t, cpu));
    if let (Some(limit), Some(procs)) = (cpu_limit_cores, w.latest_gomaxprocs()) {
        if f64::from(procs) > limit.ceil() {
            out.push(Verdict {
                id: FindingId::GomaxprocsOverCpuLimit,
                severity: Severity::Warning,
                summary: format!("GOMAXPROCS {procs} > cgroup CPU limit {limit:.2} cores"),
                evidence: vec![("gomaxprocs", f64::from(procs)), ("cpu_limit_cores", limit)],
                sites: Vec::new(),
            });
        }
    }
    out
}

fn pause_slo(w: &Window, t: &Thresholds) -> Option<Verdict> {
    if w.pauses.len() < MIN_PAUSES {
        return None;
    }
    let mut v: Vec<u64> = w.pauses.iter().map(|p| p.1).collect();
    v.sort_unstable();
    let at = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let (p50, p99) = (at(50.0), at(99.0));
    if p99 <= t.pause_p99_ns && p50 <= t.pause_p50_ns {
        return None;
    }
    let severity = if p99 > 10 * t.pause_p99_ns {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let ms = |ns: u64| ns as f64 / 1e6;
    Some(Verdict {
        id: FindingId::PauseSlo,
        severity,
        summary: format!(
            "pause p99 {:.2} ms, p50 {:.2} ms (targets {:.2}, {:.2}) over {} stops",
            ms(p99),
            ms(p50),
            ms(t.pause_p99_ns),
            ms(t.pause_p50_ns),
            v.len()
        ),
        evidence: vec![
            ("pause_p99_ms", ms(p99)),
            ("pause_p50_ms", ms(p50)),
            ("target_p99_ms", ms(t.pause_p99_ns)),
            ("target_p50_ms", ms(t.pause_p50_ns)),
            ("pauses", v.len() as f64),
        ],
        sites: Vec::new(),
    })
}

/// Heap near GOMEMLIMIT while GC CPU is over target and not falling.
fn memory_limit_spiral(w: &Window, t: &Thresholds, cpu: Option<f64>) -> Option<Verdict> {
    let last = w.cycles.back()?;
    let limit = last.memory_limit? as f64;
    let heap = last.heap_end? as f64;
    let cpu = cpu?;
    let older = w.gc_cpu_percent_between(t.window_s)?;
    if heap < NEAR_LIMIT * limit || cpu <= t.gc_cpu_percent || cpu < older {
        return None;
    }
    Some(Verdict {
        id: FindingId::MemoryLimitSpiral,
        severity: Severity::Critical,
        summary: format!(
            "heap {:.0}% of GOMEMLIMIT and GC CPU {older:.1}% -> {cpu:.1}%",
            heap / limit * 100.0
        ),
        evidence: vec![
            ("heap_bytes", heap),
            ("memory_limit_bytes", limit),
            ("gc_cpu_percent", round1(cpu)),
            ("gc_cpu_percent_before", round1(older)),
        ],
        sites: Vec::new(),
    })
}

struct Growth {
    from: f64,
    to: f64,
    span_s: f64,
    per_min: f64,
}

/// A sustained rise of `series` (time, value, in time order): its last third of the time
/// spanned all above its first third, the means `GROWTH_RATIO` apart and at least
/// `min_delta` apart, over at least a third of the window. Thirds of *time*, not of
/// cycles: the cycle rate changes with the program's phase (a leak after a busy phase
/// comes with a bigger heap and fewer cycles, so the last third of the cycles held the
/// busy phase's: the demo's 7 → 2,700 goroutines went unseen).
fn growth(series: &[(u64, f64)], window_s: f64, min_delta: f64) -> Option<Growth> {
    if series.len() < MIN_GROWTH_CYCLES {
        return None;
    }
    let (t0, t1) = (series[0].0, series[series.len() - 1].0);
    let span_s = t1.saturating_sub(t0) as f64 / 1e9;
    if span_s < window_s / 3.0 {
        return None;
    }
    let third_ns = t1.saturating_sub(t0) / 3;
    let first_end = series.partition_point(|p| p.0 <= t0 + third_ns);
    let last_start = series.partition_point(|p| p.0 < t1 - third_ns);
    let (first, last) = (&series[..first_end], &series[last_start..]);
    // A third with a single cycle is one reading, not a level.
    if first.len() < MIN_THIRD_CYCLES || last.len() < MIN_THIRD_CYCLES {
        return None;
    }
    let mean = |s: &[(u64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64;
    let (from, to) = (mean(first), mean(last));
    let first_max = first.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let last_min = last.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    if last_min <= first_max || to < from * GROWTH_RATIO || to - from < min_delta {
        return None;
    }
    let center = |s: &[(u64, f64)]| s.iter().map(|p| p.0 as f64).sum::<f64>() / s.len() as f64;
    let dt_s = (center(last) - center(first)) / 1e9;
    Some(Growth {
        from,
        to,
        span_s,
        per_min: if dt_s > 0.0 {
            (to - from) / dt_s * 60.0
        } else {
            0.0
        },
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
