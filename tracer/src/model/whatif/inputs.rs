//! What the what-if model needs, measured from the program's own recent cycles: the live
//! heap, stacks and globals, how fast the heap grows between cycles, how much of the
//! pacer's runway the program uses, and what a cycle costs in CPU. Nothing here is
//! assumed: an input no cycle showed stays `None`, and the outputs built on it are
//! unknown.

use serde::Serialize;

use crate::decode::events::Trigger;
use crate::model::records::GcRecord;

/// The steady state is judged over the cycles that ended in the last this many seconds
/// of trace (but at least [`MIN_SPAN_CYCLES`] cycles when there are that many): long
/// enough to average the pacer's noise, short enough to leave the start-up behind.
pub const STEADY_WINDOW_NS: u64 = 10_000_000_000;
const MIN_SPAN_CYCLES: usize = 8;
/// Fewer consecutive cycle pairs than this and nothing is measured.
pub const MIN_PAIRS: usize = 3;

/// The model's inputs. Byte and rate figures are means over the steady cycles.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Inputs {
    /// Consecutive (previous, this) cycle pairs the figures come from.
    pub cycles: usize,
    /// Seconds of trace those cycles span.
    pub span_s: f64,
    /// The settings in force during them (GOGC negative: off).
    pub gogc: Option<i32>,
    pub memory_limit_bytes: Option<u64>,
    pub gomaxprocs: Option<u32>,
    /// Go minor version (the limit goal's headroom changed in 1.21).
    pub go_minor: Option<u32>,
    /// Marked (live) heap after a cycle: the pacer's `heapMarked`.
    pub heap_live_bytes: Option<u64>,
    /// Scannable stacks and globals (gctrace's MB stacks / MB globals).
    pub stacks_bytes: Option<u64>,
    pub globals_bytes: Option<u64>,
    /// Heap growth from one cycle's marked heap to the next cycle's heap at mark
    /// termination, per second of trace: the allocation the pacer sees.
    pub heap_growth_bytes_per_s: Option<f64>,
    /// Heap allocated during the concurrent mark (heap at mark termination − heap at
    /// its start). The runtime allocates black while it marks, so this much of the
    /// marked heap is new objects and not the program's live data.
    pub mark_alloc_bytes: Option<u64>,
    /// The pacer's runway (`gcControllerState.runway`): how far below the goal it
    /// triggers, from its own cons/mark equation over the measured mark (assist and
    /// idle utilisation, heap allocated while marking); or, when the measured trigger
    /// sits between the pacer's bounds, the measured distance itself.
    pub trigger_runway_bytes: Option<u64>,
    /// How far below the goal the measured cycles triggered (goal − heap at the mark's
    /// start).
    pub trigger_distance_bytes: Option<u64>,
    /// CPU of a cycle's two stops (× the Ps stopped), ns.
    pub stop_cpu_ns: Option<f64>,
    /// Mark CPU per byte scanned (marked heap + stacks + globals), ns: of the
    /// dedicated and fractional workers (a quarter of the Ps for the mark's length),
    /// of all marking (assists and idle workers too), and of assists alone.
    pub background_cpu_ns_per_byte: Option<f64>,
    pub mark_cpu_ns_per_byte: Option<f64>,
    pub assist_cpu_ns_per_byte: Option<f64>,
    /// Memory that counts against GOMEMLIMIT and holds no heap objects (the pacer's
    /// mappedReady − heapFree − heapAlloc): the mean of what was read after each steady
    /// cycle; from a recording without those reads (older, or a stripped binary), only
    /// from cycles whose goal a limit set (inverted from their goal); `None` otherwise.
    pub non_heap_bytes: Option<u64>,
    /// Where `non_heap_bytes` came from: `read` (the runtime's counters) or
    /// `limit-goal` (inverted from goals a limit set); `None` when unknown.
    pub non_heap_source: Option<&'static str>,
    /// The program as it ran (same cycles): cycles/s, GC CPU % (idle workers
    /// excluded), all GC CPU % (idle workers included: gctrace's five cpu figures) and
    /// mean heap at mark termination, to set the predictions against.
    pub now_cycles_per_s: Option<f64>,
    pub now_gc_cpu_percent: Option<f64>,
    pub now_gc_cpu_total_percent: Option<f64>,
    pub now_peak_heap_bytes: Option<u64>,
    /// Why an input is unknown, naming it.
    pub warnings: Vec<String>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// "go1.25.5" → 25.
pub fn go_minor(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("go1.")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Inputs {
    /// Measures the inputs from `cycles` (oldest first, as recorded), of a program
    /// built with `go_version` ("go1.25.5"; empty when unknown).
    pub fn measure(cycles: &[&GcRecord], go_version: &str) -> Inputs {
        let mut inp = Inputs {
            go_minor: go_minor(go_version),
            ..Inputs::default()
        };
        let Some(last) = cycles.last() else {
            inp.warnings
                .push("no GC cycle recorded: nothing to predict from".into());
            return inp;
        };
        let from_ns = last.end_ns.saturating_sub(STEADY_WINDOW_NS);
        let in_window = cycles
            .iter()
            .rev()
            .take_while(|c| c.end_ns >= from_ns)
            .count();
        // One more than the pairs: each pair needs the cycle before it.
        let n = in_window.max(MIN_SPAN_CYCLES).min(cycles.len()) + 1;
        let steady = &cycles[cycles.len().saturating_sub(n)..];
        let pairs: Vec<(&GcRecord, &GcRecord)> = steady
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|(a, b)| {
                b.cycle == a.cycle.wrapping_add(1)
                    && b.trigger != Some(Trigger::Forced)
                    && a.trigger != Some(Trigger::Forced)
                    && b.end_ns > a.end_ns
            })
            .collect();
        inp.cycles = pairs.len();
        if pairs.len() < MIN_PAIRS {
            inp.warnings.push(format!(
                "only {} consecutive unforced cycle pairs recorded (need {MIN_PAIRS}): \
                 nothing to predict from",
                pairs.len()
            ));
            return inp;
        }
        let (first, last) = (pairs[0].0, pairs[pairs.len() - 1].1);
        inp.span_s = last.end_ns.saturating_sub(first.end_ns) as f64 / 1e9;
        inp.gogc = last.gogc;
        inp.memory_limit_bytes = last
            .memory_limit_bytes
            .filter(|l| *l > 0 && *l < i64::MAX)
            .map(|l| l as u64);
        inp.gomaxprocs = last.gomaxprocs.filter(|p| *p > 0);

        let of = |f: fn(&GcRecord) -> Option<u64>| -> Option<u64> {
            let v: Vec<f64> = pairs
                .iter()
                .filter_map(|p| f(p.1))
                .map(|b| b as f64)
                .collect();
            // Every cycle must say, or the mean would be of a different set of cycles.
            (v.len() == pairs.len())
                .then(|| mean(&v))
                .flatten()
                .map(|m| m as u64)
        };
        inp.heap_live_bytes = of(|g| g.heap_live_bytes);
        inp.now_peak_heap_bytes = of(|g| g.heap_end_bytes);
        if inp.span_s > 0.0 {
            inp.now_cycles_per_s = Some(pairs.len() as f64 / inp.span_s);
        }
        inp.stacks_bytes = of(|g| g.stacks_bytes);
        inp.globals_bytes = of(|g| g.globals_bytes);
        for (name, v) in [
            ("heap_live_bytes (marked heap)", inp.heap_live_bytes),
            ("stacks_bytes", inp.stacks_bytes),
            ("globals_bytes", inp.globals_bytes),
        ] {
            if v.is_none() {
                inp.warnings
                    .push(format!("{name} unknown: not read in every steady cycle"));
            }
        }

        // Growth: from each cycle's marked heap to the next one's heap at mark
        // termination (heapLive restarts from heapMarked at mark termination).
        let mut grown = 0u64;
        let mut grown_ns = 0u64;
        let mut complete = true;
        for (a, b) in &pairs {
            match (a.heap_live_bytes, b.heap_end_bytes) {
                (Some(marked), Some(end)) => {
                    grown += end.saturating_sub(marked);
                    grown_ns += b.end_ns - a.end_ns;
                }
                _ => complete = false,
            }
        }
        if complete && grown_ns > 0 {
            inp.heap_growth_bytes_per_s = Some(grown as f64 / (grown_ns as f64 / 1e9));
        } else {
            inp.warnings.push(
                "heap_growth_bytes_per_s unknown: heap at mark termination or marked heap \
                 not read in every steady cycle"
                    .into(),
            );
        }
        let allocs: Vec<u64> = pairs
            .iter()
            .filter_map(|(_, b)| Some(b.heap_end_bytes?.saturating_sub(b.heap_start_bytes?)))
            .collect();
        if allocs.len() == pairs.len() {
            inp.mark_alloc_bytes =
                mean(&allocs.iter().map(|a| *a as f64).collect::<Vec<_>>()).map(|m| m as u64);
        } else {
            inp.warnings.push(
                "mark_alloc_bytes unknown: heap at the start or end of the mark not read in \
                 every steady cycle"
                    .into(),
            );
        }
        inp.trigger_runway_bytes = trigger_runway(&pairs, inp.gomaxprocs, inp.go_minor);
        let distances: Vec<f64> = pairs
            .iter()
            .filter_map(
                |(_, b)| Some(b.heap_goal_bytes?.saturating_sub(b.heap_start_bytes?) as f64),
            )
            .collect();
        inp.trigger_distance_bytes = (distances.len() == pairs.len())
            .then(|| mean(&distances))
            .flatten()
            .map(|d| d as u64);
        if inp.trigger_runway_bytes.is_none() {
            inp.warnings.push(
                "trigger_runway_bytes unknown: the cycles' heap goal, heaps or CPU figures \
                 were not read in every steady cycle"
                    .into(),
            );
        }

        // CPU: the stops' cost per cycle, and marking per scanned byte.
        let cpus: Vec<_> = pairs
            .iter()
            .filter_map(|p| p.1.cpu.map(|c| (p.1, c)))
            .collect();
        if cpus.len() == pairs.len() {
            let stops: Vec<f64> = cpus
                .iter()
                .map(|(_, c)| c.sweep_term_ns.saturating_add(c.mark_term_ns) as f64)
                .collect();
            inp.stop_cpu_ns = mean(&stops);
            let (mut bg, mut all, mut assist, mut scanned) = (0f64, 0f64, 0f64, 0f64);
            let mut every = true;
            for (g, c) in &cpus {
                match (g.heap_live_bytes, g.stacks_bytes, g.globals_bytes) {
                    (Some(h), Some(s), Some(gl)) => {
                        bg += c.background_ns as f64;
                        assist += c.assist_ns as f64;
                        all += c
                            .assist_ns
                            .saturating_add(c.background_ns)
                            .saturating_add(c.idle_ns) as f64;
                        scanned += (h + s + gl) as f64;
                    }
                    _ => every = false,
                }
            }
            if every && scanned > 0.0 {
                inp.background_cpu_ns_per_byte = Some(bg / scanned);
                inp.mark_cpu_ns_per_byte = Some(all / scanned);
                inp.assist_cpu_ns_per_byte = Some(assist / scanned);
            }
            let total: f64 = stops.iter().sum::<f64>()
                + cpus
                    .iter()
                    .map(|(_, c)| c.assist_ns.saturating_add(c.background_ns) as f64)
                    .sum::<f64>();
            let idle: f64 = cpus.iter().map(|(_, c)| c.idle_ns as f64).sum();
            let capacity = inp
                .gomaxprocs
                .filter(|_| inp.span_s > 0.0)
                .map(|p| inp.span_s * 1e9 * f64::from(p));
            inp.now_gc_cpu_percent = capacity.map(|cap| total / cap * 100.0);
            inp.now_gc_cpu_total_percent = capacity.map(|cap| (total + idle) / cap * 100.0);
        }
        if inp.stop_cpu_ns.is_none() || inp.mark_cpu_ns_per_byte.is_none() {
            inp.warnings.push(
                "GC CPU per cycle unknown: the cycles' CPU figures (gctrace's ms cpu) or \
                 scanned bytes were not read in every steady cycle"
                    .into(),
            );
        }
        if inp.gomaxprocs.is_none() {
            inp.warnings
                .push("gomaxprocs unknown: GC CPU cannot be given as a share".into());
        }

        // Non-heap memory: read after every steady cycle (the runtime's own terms), or
        // else from cycles whose goal the memory limit set: the goal is then
        // (limit − non-heap) less its headroom, so non-heap follows from it.
        inp.non_heap_bytes = of(|g| g.non_heap_bytes);
        if inp.non_heap_bytes.is_some() {
            inp.non_heap_source = Some("read");
            return inp;
        }
        inp.non_heap_bytes = inp.memory_limit_bytes.and_then(|limit| {
            let v: Vec<f64> = pairs
                .iter()
                .filter_map(|(a, b)| {
                    let goal = b.heap_goal_bytes?;
                    // A cycle's goal was set at the end of the one before, from its
                    // marked heap, stacks and globals.
                    let gogc_goal = super::pacer::gogc_goal(
                        b.gogc?,
                        a.heap_live_bytes?,
                        a.stacks_bytes?,
                        a.globals_bytes?,
                    );
                    // Limit-bound: the goal is well under what GOGC alone would give.
                    (gogc_goal.is_none_or(|g| goal < g - g / 50))
                        .then(|| super::pacer::non_heap_from_limit_goal(limit, goal, inp.go_minor))
                        .flatten()
                        .map(|n| n as f64)
                })
                .collect();
            (v.len() * 2 >= pairs.len() && !v.is_empty())
                .then(|| mean(&v))
                .flatten()
                .map(|m| m as u64)
        });
        if inp.non_heap_bytes.is_some() {
            inp.non_heap_source = Some("limit-goal");
        } else {
            inp.warnings.push(
                "non_heap_bytes unknown: gcController.mappedReady, heapFree, totalAlloc and                  totalFree were not read after every steady cycle (a recording older than                  format 4, or a stripped binary), and no memory limit set the goal: memory                  limits cannot be predicted"
                    .into(),
            );
        }
        inp
    }
}

/// The pacer's runway over the steady cycles. Each cycle's trigger is `goal − runway`
/// held between 45/64 and 61/64 of the way from the marked heap to the goal; when the
/// measured triggers sit inside those bounds the runway is their distance below the
/// goal. Otherwise (at a bound, the usual case) it comes from the pacer's own equation,
/// `runway = consMark × (1 − u)/u × scan` with `consMark = (heap allocated while
/// marking) × (utilisation + idle utilisation) / (scan work × (1 − utilisation))`: the
/// scan work cancels, leaving `3 × allocated × (uₐ + uᵢ) / (1 − uₐ)` with `uₐ` 0.25 plus
/// the assists' share. Go 1.21+ keeps the largest cons/mark of the last five cycles;
/// before, a smoothing controller (the mean here).
fn trigger_runway(
    pairs: &[(&GcRecord, &GcRecord)],
    gomaxprocs: Option<u32>,
    go_minor: Option<u32>,
) -> Option<u64> {
    let procs = f64::from(gomaxprocs?);
    let mut fractions = Vec::new();
    let mut distances = Vec::new();
    let mut estimates = Vec::new();
    for (a, b) in pairs {
        let (marked, goal, start, end) = (
            a.heap_live_bytes?,
            b.heap_goal_bytes?,
            b.heap_start_bytes?,
            b.heap_end_bytes?,
        );
        if goal <= marked {
            continue;
        }
        fractions.push(start.saturating_sub(marked) as f64 / (goal - marked) as f64);
        distances.push(goal.saturating_sub(start) as f64);
        let cpu = b.cpu?;
        let span = b.mark_ns as f64 * procs;
        if span <= 0.0 {
            return None;
        }
        let u = 0.25 + cpu.assist_ns as f64 / span;
        let idle = cpu.idle_ns as f64 / span;
        if u >= 1.0 {
            continue;
        }
        let alloc = end.saturating_sub(start) as f64;
        estimates.push(3.0 * alloc * (u + idle) / (1.0 - u));
    }
    let distance = mean(&distances)?;
    let fraction = mean(&fractions)?;
    let (lo, hi) = (45.0 / 64.0, 61.0 / 64.0);
    if fraction > lo + 0.02 && fraction < hi - 0.02 {
        return Some(distance as u64);
    }
    let estimate = if go_minor.is_some_and(|m| m < 21) {
        mean(&estimates)?
    } else {
        let held: Vec<f64> = (0..estimates.len())
            .map(|i| {
                estimates[i.saturating_sub(4)..=i]
                    .iter()
                    .copied()
                    .fold(0.0, f64::max)
            })
            .collect();
        mean(&held)?
    };
    // At the lower bound the runway is at least the measured distance; at the upper
    // bound at most.
    Some(if fraction >= hi - 0.02 {
        estimate.min(distance)
    } else {
        estimate.max(distance)
    } as u64)
}
