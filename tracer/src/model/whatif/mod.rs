//! What-if predictions: what another GOGC or GOMEMLIMIT would do to this program, from
//! its own measured cycles run through the Go pacer's own equations.
//!
//! [`inputs`] measures the steady state (live heap, stacks, globals, heap growth, the
//! share of the runway used, GC CPU per cycle and per scanned byte); [`pacer`] holds the
//! runtime's goal equations; [`predict`] combines them for a [`WhatIf`] setting into
//! cycles/s, GC CPU % and peak heap. The allocation rate is taken as the program's and
//! not the GC's (true for a program paced by its requests, not for one that runs flat
//! out on the CPU). An unknown input leaves the outputs it feeds `None`, with a warning
//! naming it. Model and limits: docs/what-if.md.

pub(crate) mod inputs;
pub mod pacer;
mod steady;
pub(crate) mod text;

use serde::Serialize;

pub use inputs::Inputs;

/// A memory limit to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No limit (`limit=off`).
    Off,
    Bytes(u64),
}

/// One setting to predict (`--what-if gogc=200`, `gogc=off,limit=2GiB`); what it does
/// not name stays as the program runs now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WhatIf {
    /// GOGC (negative: off).
    pub gogc: Option<i32>,
    pub limit: Option<Limit>,
}

/// The syntax `--help` teaches.
pub const SYNTAX: &str = "gogc=N|off[,limit=SIZE|off] or limit=SIZE|off \
     (SIZE as GOMEMLIMIT takes it: 512MiB, 2GiB, or bytes)";

/// A size as GOMEMLIMIT takes it: a whole number with B, KiB, MiB, GiB or TiB.
fn parse_size(s: &str) -> Option<u64> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let shift = match &s[digits..] {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift).filter(|b| *b > 0)
}

impl std::str::FromStr for WhatIf {
    type Err = String;

    fn from_str(s: &str) -> Result<WhatIf, String> {
        let mut w = WhatIf::default();
        for part in s.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not KEY=VALUE; expected {SYNTAX}"))?;
            match key.trim() {
                "gogc" if w.gogc.is_none() => {
                    w.gogc = Some(match value.trim() {
                        "off" => -1,
                        v => v.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                            format!("gogc '{v}' is not a whole number ≥ 0 or off")
                        })?,
                    })
                }
                "limit" if w.limit.is_none() => {
                    w.limit = Some(match value.trim() {
                        "off" | "none" => Limit::Off,
                        v => Limit::Bytes(parse_size(v).ok_or_else(|| {
                            format!("limit '{v}' is not a size like 512MiB or 2GiB")
                        })?),
                    })
                }
                "gogc" | "limit" => return Err(format!("'{key}' given twice in '{s}'")),
                other => return Err(format!("unknown key '{other}'; expected {SYNTAX}")),
            }
        }
        Ok(w)
    }
}

/// What the pacer would do at one setting. `None`: unknown (see `warnings`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// GOGC tried (negative: off).
    pub gogc: Option<i32>,
    /// GOMEMLIMIT tried (`None`: no limit).
    pub memory_limit_bytes: Option<u64>,
    pub cycles_per_s: Option<f64>,
    /// GC CPU, percent of GOMAXPROCS × wall time (idle mark workers excluded, as in
    /// gctrace's P% and the gc-thrashing finding). The split between idle and other
    /// workers is taken as recorded; it moves with how idle the machine is.
    pub gc_cpu_percent: Option<f64>,
    /// All GC CPU, idle mark workers included (gctrace's five cpu figures, the
    /// runtime's `/cpu/classes/gc/total`), percent of GOMAXPROCS × wall time: the work
    /// a cycle needs whichever worker does it, so the figure the model predicts best.
    pub gc_cpu_total_percent: Option<f64>,
    /// The heap at mark termination (gctrace's heap1), the most a cycle lets it grow.
    pub peak_heap_bytes: Option<u64>,
    pub heap_goal_bytes: Option<u64>,
    /// What sets the goal: `gogc`, `heap-minimum`, `memory-limit`, `gc-cpu-limiter`
    /// (the limit would need more than half the CPU), `none` (GOGC=off, no limit).
    pub bound_by: Option<&'static str>,
    pub warnings: Vec<String>,
}

/// The settings predicted with no `--what-if`: GOGC 50, 200 and 400 (memory limit as
/// now), and GOGC=off under the memory limit when one is set.
pub fn default_settings(inputs: &Inputs) -> Vec<WhatIf> {
    let mut v: Vec<WhatIf> = [50, 200, 400]
        .into_iter()
        .map(|g| WhatIf {
            gogc: Some(g),
            limit: None,
        })
        .collect();
    if let Some(l) = inputs.memory_limit_bytes {
        v.push(WhatIf {
            gogc: Some(-1),
            limit: Some(Limit::Bytes(l)),
        });
    }
    v
}

/// Predicts every setting.
pub fn predict_all(inputs: &Inputs, settings: &[WhatIf]) -> Vec<Prediction> {
    settings.iter().map(|w| predict(inputs, w)).collect()
}

/// The pacer's steady state at `w`, from `inputs`.
pub fn predict(inputs: &Inputs, w: &WhatIf) -> Prediction {
    let gogc = w.gogc.or(inputs.gogc);
    let limit = match w.limit {
        Some(Limit::Off) => None,
        Some(Limit::Bytes(b)) => Some(b),
        None => inputs.memory_limit_bytes,
    };
    let mut p = Prediction {
        gogc,
        memory_limit_bytes: limit,
        cycles_per_s: None,
        gc_cpu_percent: None,
        gc_cpu_total_percent: None,
        peak_heap_bytes: None,
        heap_goal_bytes: None,
        bound_by: None,
        warnings: Vec::new(),
    };
    if inputs.cycles < inputs::MIN_PAIRS {
        p.warnings.extend(inputs.warnings.iter().cloned());
        return p;
    }
    let Some(gogc) = gogc else {
        p.warnings
            .push("gogc unknown: the recording does not say what GOGC ran".into());
        return p;
    };
    if gogc < 0 && limit.is_none() {
        p.bound_by = Some("none");
        p.cycles_per_s = Some(0.0);
        p.gc_cpu_percent = Some(0.0);
        p.gc_cpu_total_percent = Some(0.0);
        p.warnings.push(
            "GOGC=off and no memory limit: no cycle runs and the heap grows with every \
             allocation (no peak)"
                .into(),
        );
        return p;
    }
    let Some(known) = steady::Known::of(inputs) else {
        p.warnings.extend(inputs.warnings.iter().cloned());
        return p;
    };
    if limit.is_some() && known.non_heap.is_none() {
        p.warnings.push(
            "non_heap_bytes unknown: the memory limit's goal is the limit less the \
             runtime's non-heap memory, which this recording neither read (gcController's \
             mappedReady, heapFree, totalFree) nor shows in goals a limit set"
                .into(),
        );
        return p;
    }
    let Some(c) = steady::solve(&known, gogc, limit, inputs.go_minor) else {
        p.warnings
            .push("no steady state: the pacer sets no goal here".into());
        return p;
    };
    p.heap_goal_bytes = Some(c.goal);
    let limit_bound = c
        .limit_goal
        .is_some_and(|l| c.gogc_goal.is_none_or(|g| l < g));
    p.bound_by = Some(if limit_bound {
        "memory-limit"
    } else if c.gogc_goal.is_some_and(|g| {
        u64::try_from(gogc).is_ok_and(|pct| g == pacer::DEFAULT_HEAP_MINIMUM * pct / 100)
    }) {
        "heap-minimum"
    } else {
        "gogc"
    });
    let Some(growth) = inputs.heap_growth_bytes_per_s else {
        p.warnings.extend(inputs.warnings.iter().cloned());
        return p;
    };
    // GC CPU of a cycle: the stops, the workers (a quarter of the Ps for as long as the
    // mark lasts, which scales with the bytes to scan), and assists.
    let scan = (c.marked + known.stacks + known.globals) as f64;
    let cost_ns = (|| {
        let (stop, bg, all, assist) = (
            inputs.stop_cpu_ns?,
            inputs.background_cpu_ns_per_byte?,
            inputs.mark_cpu_ns_per_byte?,
            inputs.assist_cpu_ns_per_byte?,
        );
        // Assists as measured, plus the model's change of their share from the setting
        // recorded to this one.
        let share_now = inputs
            .gogc
            .and_then(|g| steady::solve(&known, g, inputs.memory_limit_bytes, inputs.go_minor))
            .map_or(0.0, |now| steady::assist_share(&now, known.wanted_alloc));
        let share = steady::assist_share(&c, known.wanted_alloc);
        let assists = (assist * scan + all * scan * (share - share_now)).max(0.0);
        Some(stop + bg * scan + assists)
    })();
    // All of a cycle's GC CPU: the stops and all marking, whoever does it. Assists and
    // idle workers take over work the dedicated and fractional workers would have
    // done, so the total follows the bytes to scan and not the split; never less than
    // the part outside idle workers (the assist rule may move more onto assists than
    // idle workers did).
    let total_cost_ns = inputs
        .stop_cpu_ns
        .zip(inputs.mark_cpu_ns_per_byte)
        .map(|(stop, all)| cost_ns.map_or(stop + all * scan, |c| c.max(stop + all * scan)));
    let capacity_ns = inputs.gomaxprocs.map(|p| f64::from(p) * 1e9);
    if c.peak > c.marked {
        let cycles = growth / (c.peak - c.marked) as f64;
        p.cycles_per_s = Some(cycles);
        p.peak_heap_bytes = Some(c.peak);
        p.gc_cpu_percent = cost_ns
            .zip(capacity_ns)
            .map(|(cost, cap)| cycles * cost / cap * 100.0);
        p.gc_cpu_total_percent = total_cost_ns
            .zip(capacity_ns)
            .map(|(cost, cap)| cycles * cost / cap * 100.0);
    }
    // The GC CPU limiter: under a memory limit, GC gets at most half the CPU; the
    // cycles it cannot afford let the heap run past the goal instead.
    let over = p
        .gc_cpu_percent
        .is_none_or(|c| c > pacer::CPU_LIMIT_SHARE * 100.0);
    if limit_bound && over {
        match cost_ns.zip(capacity_ns).filter(|(c, _)| *c > 0.0) {
            Some((cost, cap)) => {
                let cycles = pacer::CPU_LIMIT_SHARE * cap / cost;
                p.cycles_per_s = Some(cycles);
                p.gc_cpu_percent = Some(pacer::CPU_LIMIT_SHARE * 100.0);
                // The limiter counts no idle worker: they come on top.
                p.gc_cpu_total_percent = total_cost_ns.map(|t| cycles * t / cap * 100.0);
                p.peak_heap_bytes = Some(c.marked + (growth / cycles) as u64);
                p.bound_by = Some("gc-cpu-limiter");
                p.warnings.push(
                    "the memory limit would take more than half the CPU: the GC CPU limiter \
                     caps GC at 50 % and the heap exceeds the limit's goal"
                        .into(),
                );
            }
            None => {
                p.cycles_per_s = None;
                p.gc_cpu_total_percent = None;
                p.peak_heap_bytes = None;
                p.warnings.push(
                    "the memory limit leaves no runway and GC CPU per cycle is unknown: \
                     what the GC CPU limiter allows cannot be computed"
                        .into(),
                );
            }
        }
    }
    // A fixed allocation rate the GC cannot keep up with is outside the model: the
    // program would slow down instead, by an amount nothing here measures.
    if let Some(cpu) = p.gc_cpu_percent.filter(|c| *c > 100.0) {
        p.cycles_per_s = None;
        p.gc_cpu_percent = None;
        p.gc_cpu_total_percent = None;
        p.peak_heap_bytes = None;
        p.warnings.push(format!(
            "beyond the model: the GC would need {cpu:.0} % of GOMAXPROCS at the recorded \
             allocation rate; the program would slow down instead"
        ));
        return p;
    }
    if p.gc_cpu_percent.is_none() {
        p.warnings
            .push("gc_cpu_percent unknown: GC CPU per cycle or GOMAXPROCS not measured".into());
    }
    p
}

#[cfg(test)]
mod tests;
