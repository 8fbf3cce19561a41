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

/// Sampling period: one burst per period.
const PERIOD: Duration = Duration::from_secs(1);
/// Shortest and first burst.
const MIN_BURST: Duration = Duration::from_millis(5);
const FIRST_BURST: Duration = Duration::from_millis(20);

pub struct LiveAllocs {
    mode: AllocMode,
    plan: AllocPlan,
    collector: Collector,
    resolver: LiveResolver,
    /// Budget as a fraction (0.02 = 2 %).
    budget: f64,
    /// Measured (or assumed) cost of one probe hit.
    cost_per_hit: Duration,
    /// Sampled mode: when the current burst started, and the hit counter then.
    burst: Option<(Instant, u64)>,
    next_burst: Instant,
    burst_len: Duration,
    /// Time attached since the last batch, and when the last batch was taken.
    attached_for: Duration,
    last_batch: Instant,
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
        let now = Instant::now();
        LiveAllocs {
            mode,
            plan,
            collector: Collector::new(rules),
            resolver: LiveResolver::new(bin, pid, bias),
            budget: (budget_percent / 100.0).clamp(0.0001, 1.0),
            cost_per_hit,
            burst: None,
            next_burst: now,
            burst_len: FIRST_BURST,
            attached_for: Duration::ZERO,
            last_batch: now,
        }
    }

    pub fn mode(&self) -> AllocMode {
        self.mode
    }

    /// Attach the probes now if this mode keeps them attached all the time.
    pub fn start(&mut self, probes: &mut Probes) -> Result<()> {
        if self.mode == AllocMode::Exact {
            probes.attach_allocs(&self.plan)?;
            self.burst = Some((Instant::now(), 0));
        }
        Ok(())
    }

    /// Sampled mode: start or end a burst when due. Call often (every drain tick).
    pub fn steer(&mut self, probes: &mut Probes) -> Result<()> {
        if self.mode != AllocMode::Sample {
            return Ok(());
        }
        let now = Instant::now();
        match self.burst {
            None if now >= self.next_burst => {
                probes.attach_allocs(&self.plan)?;
                self.burst = Some((now, probes.counters()?.allocs));
            }
            Some((start, hits0)) if now.duration_since(start) >= self.burst_len => {
                probes.detach_allocs();
                let elapsed = now.duration_since(start);
                self.attached_for += elapsed;
                self.burst = None;
                let hits = probes.counters()?.allocs.saturating_sub(hits0);
                // Overhead while attached ≈ hits/s × cost per hit; keep its average
                // (× duty) within the budget.
                let per_sec = hits as f64 / elapsed.as_secs_f64().max(1e-6);
                let overhead = per_sec * self.cost_per_hit.as_secs_f64();
                let duty = if overhead > 0.0 {
                    (self.budget / overhead).min(1.0)
                } else {
                    1.0
                };
                self.burst_len = PERIOD.mul_f64(duty).max(MIN_BURST);
                self.next_burst = start + PERIOD;
            }
            _ => {}
        }
        Ok(())
    }

    /// What was allocated since the last batch (scaled up in sampled mode).
    pub fn batch(&mut self, probes: &Probes, ts_ns: u64) -> Result<Option<AllocBatch>> {
        let now = Instant::now();
        let interval = now.duration_since(self.last_batch);
        self.last_batch = now;
        let mut attached = std::mem::take(&mut self.attached_for);
        if let Some((start, hits)) = self.burst.as_mut() {
            // Count the running part of a burst (or of exact mode) up to now.
            attached += now.duration_since(*start);
            *start = now;
            let _ = hits;
        }
        let counters = probes.counters()?;
        let maps = probes.alloc_maps()?;
        let mut stack = |id: i64| probes.stack(id);
        let mut batch = self.collector.collect(
            ts_ns,
            &maps,
            counters.allocs_dropped,
            &mut stack,
            &mut self.resolver,
        );
        if self.mode == AllocMode::Sample {
            let coverage = if interval.is_zero() {
                1.0
            } else {
                (attached.as_secs_f64() / interval.as_secs_f64()).clamp(0.0, 1.0)
            };
            batch.coverage = coverage;
            batch.scale = if coverage > 0.0 { 1.0 / coverage } else { 0.0 };
        }
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
                bin.symbolize(link).unwrap_or_else(|| Frame {
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
