//! Allocation probes in a live session: when they are attached (all the time in exact
//! mode, in short bursts within an overhead budget in sampled mode), and turning the
//! kernel maps into [`AllocBatch`]es.
//!
//! Cost is decided by probe hits, not by what the BPF program does: a uprobe hit costs
//! ~1 µs on bare metal and ~20 µs on nested-virtualisation VMs, and allocation functions
//! run millions of times a second. Sampled mode therefore measures the allocation rate
//! during a burst and keeps `duty × rate × cost_per_hit` under the budget.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::collector::{Collector, Resolver};
use super::sizeclass::Rules;
use crate::binary::GoBinary;
use crate::events::{AllocBatch, Frame};
use crate::probes::{AllocPlan, Probes};
use crate::target;

/// `--allocs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocMode {
    /// Allocation rate from the runtime's own counter; no allocation probes (default).
    Rate,
    /// Probes attached in short bursts within the overhead budget; counts extrapolated.
    Sample,
    /// Every allocation counted; costs one probe hit per allocation.
    Exact,
}

/// Sampling period: one burst per period (longer when a burst's hits, attach and detach
/// included, need more time to average out within the budget). Attaching costs ~10 ms
/// and detaching a `uprobe_multi` link removes every breakpoint at once; on kernels
/// without those links, per-site uprobes linger a grace period each after a burst, and
/// the budget check below stretches the gap accordingly.
const PERIOD: Duration = Duration::from_secs(5);
/// Shortest burst, and the first one (which measures the allocation rate).
const MIN_BURST: Duration = Duration::from_millis(2);
const FIRST_BURST: Duration = Duration::from_millis(10);
/// The first burst waits this long: a program's first moments (runtime and package
/// initialisation, or the tracer's own attach) say little about its allocations.
const FIRST_BURST_AFTER: Duration = Duration::from_secs(1);

pub struct LiveAllocs {
    mode: AllocMode,
    plan: AllocPlan,
    collector: Collector,
    resolver: LiveResolver,
    /// Budget as a fraction (0.02 = 2 %).
    budget: f64,
    /// Measured cost of one probe hit on this machine.
    cost_per_hit: Duration,
    /// Sampled mode: when the current burst started, and the hit counter then.
    burst: Option<(Instant, u64)>,
    next_burst: Instant,
    burst_len: Duration,
    /// When the previous burst began, and every allocation-probe hit counted before it
    /// (its attach); the hits since include the attach and detach, whose cost the burst
    /// length does not show.
    last_burst: Option<(Instant, u64)>,
    /// Sampling gave up (attach failed).
    failed: bool,
}

impl LiveAllocs {
    pub fn new(
        mode: AllocMode,
        plan: AllocPlan,
        bin: GoBinary,
        pid: u32,
        bias: u64,
        budget_percent: f64,
        cost_per_hit: Duration,
    ) -> LiveAllocs {
        let rules = Rules::for_minor(bin.go_version().minor);
        LiveAllocs {
            mode,
            plan,
            collector: Collector::new(rules),
            resolver: LiveResolver::new(bin, pid, bias),
            budget: (budget_percent / 100.0).clamp(0.0001, 1.0),
            cost_per_hit,
            burst: None,
            next_burst: Instant::now() + FIRST_BURST_AFTER,
            burst_len: FIRST_BURST,
            last_burst: None,
            failed: false,
        }
    }

    pub fn mode(&self) -> AllocMode {
        self.mode
    }

    /// Attach the probes now if this mode keeps them attached all the time.
    pub fn start(&mut self, probes: &mut Probes) -> Result<()> {
        if self.mode == AllocMode::Exact {
            probes.attach_allocs(&self.plan)?;
        }
        Ok(())
    }

    /// Sampled mode: when [`LiveAllocs::steer`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.mode != AllocMode::Sample || self.failed {
            return None;
        }
        Some(match self.burst {
            Some((start, _)) => start + self.burst_len,
            None => self.next_burst,
        })
    }

    /// Sampled mode: start or end a burst when due. Ending one yields the batch of what
    /// it saw, scaled to the whole period by the runtime's own allocation counter.
    pub fn steer(&mut self, probes: &mut Probes, ts_ns: u64) -> Result<Option<AllocBatch>> {
        if self.mode != AllocMode::Sample || self.failed {
            return Ok(None);
        }
        let now = Instant::now();
        match self.burst {
            None if now >= self.next_burst => {
                // Everything the previous burst cost, attach and detach included, must
                // be spread over enough time to stay within the budget.
                let all_hits = probes.counters()?.alloc_hits();
                if let Some((start, hits_before)) = self.last_burst {
                    let cost = self
                        .cost_per_hit
                        .mul_f64(all_hits.saturating_sub(hits_before) as f64);
                    let gap = cost.div_f64(self.budget).max(PERIOD);
                    if now < start + gap {
                        self.next_burst = start + gap;
                        return Ok(None);
                    }
                }
                self.last_burst = Some((now, all_hits));
                if let Err(e) = probes.attach_allocs(&self.plan) {
                    // The target may just have exited (the session notices that by
                    // itself); anything else ends sampling, loudly, but not the trace.
                    probes.detach_allocs();
                    self.failed = true;
                    if target::exists(self.resolver.pid) {
                        eprintln!("gctrace-bpf: allocation sampling stopped: {e}");
                    }
                    return Ok(None);
                }
                self.burst = Some((Instant::now(), probes.counters()?.allocs));
                Ok(None)
            }
            Some((start, hits0)) if now.duration_since(start) >= self.burst_len => {
                probes.detach_allocs();
                self.burst = None;
                let elapsed = now.duration_since(start);
                let hits = probes.counters()?.allocs.saturating_sub(hits0);
                // Overhead while attached ≈ hits/s × cost per hit; keep its average over
                // the period within the budget.
                let per_sec = hits as f64 / elapsed.as_secs_f64().max(1e-6);
                let overhead = per_sec * self.cost_per_hit.as_secs_f64();
                let duty = if overhead > 0.0 {
                    (self.budget / overhead).min(1.0)
                } else {
                    1.0
                };
                self.burst_len = PERIOD.mul_f64(duty).max(MIN_BURST);
                self.next_burst = start + PERIOD;
                self.batch(probes, ts_ns)
            }
            _ => Ok(None),
        }
    }

    /// What was allocated since the last batch. Exact mode: every allocation. Sampled
    /// mode: what the last burst saw, with how much the runtime counted over the whole
    /// period; the model scales the sample to it.
    pub fn batch(&mut self, probes: &Probes, ts_ns: u64) -> Result<Option<AllocBatch>> {
        let counters = probes.counters()?;
        let maps = probes.alloc_maps()?;
        let mut batch =
            self.collector
                .collect(ts_ns, &maps, counters.allocs_dropped, &mut self.resolver);
        batch.sampled = self.mode == AllocMode::Sample;
        Ok(Some(batch))
    }
}

/// Type names, pointer-freeness and symbols for a live target: from the binary where it
/// has them, from the target's memory where not (type descriptors live in the binary's
/// read-only data, identical in memory).
pub struct LiveResolver {
    bin: GoBinary,
    pid: u32,
    bias: u64,
    names: HashMap<u64, String>,
    noscan: HashMap<u64, bool>,
    frames: HashMap<u64, Frame>,
}

impl LiveResolver {
    pub fn new(bin: GoBinary, pid: u32, bias: u64) -> LiveResolver {
        LiveResolver {
            bin,
            pid,
            bias,
            names: HashMap::new(),
            noscan: HashMap::new(),
            frames: HashMap::new(),
        }
    }
}

impl Resolver for LiveResolver {
    fn type_name(&mut self, typ: u64) -> String {
        if typ == 0 {
            return "(untyped)".to_string();
        }
        let (bin, bias) = (&self.bin, self.bias);
        self.names
            .entry(typ)
            .or_insert_with(|| {
                bin.type_name(typ.wrapping_sub(bias))
                    .unwrap_or_else(|| format!("type@{typ:#x}"))
            })
            .clone()
    }

    fn noscan(&mut self, typ: u64) -> bool {
        if typ == 0 {
            return true;
        }
        let pid = self.pid;
        *self.noscan.entry(typ).or_insert_with(|| {
            // abi.Type: Size_ uintptr, PtrBytes uintptr, ... (same prefix since Go 1.0).
            target::read_memory::<8>(pid, typ + 8)
                .map(|b| u64::from_le_bytes(b) == 0)
                .unwrap_or(false)
        })
    }

    fn frame(&mut self, pc: u64) -> Frame {
        let (bin, bias) = (&self.bin, self.bias);
        self.frames
            .entry(pc)
            .or_insert_with(|| {
                // A return address: the call instruction is just before it.
                let link = pc.wrapping_sub(bias).wrapping_sub(1);
                bin.symbolize(link)
                    .map(|f| Frame {
                        function: f.function,
                        file: f.file,
                        line: f.line,
                    })
                    .unwrap_or_else(|| Frame {
                        function: bin
                            .function_at(link)
                            .map(|f| f.name)
                            .unwrap_or_else(|| format!("{pc:#x}")),
                        ..Frame::default()
                    })
            })
            .clone()
    }
}
