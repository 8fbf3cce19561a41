//! Allocation probes in a live session: when they are attached (all the time in exact
//! mode, in short bursts within an overhead budget in sampled mode), and turning the
//! kernel maps into [`AllocBatch`]es.
//!
//! Cost is decided by probe hits, not by what the BPF program does: a uprobe hit costs
//! ~1 µs on bare metal and ~20 µs on nested-virtualisation VMs, and allocation functions
//! run millions of times a second. Sampled mode therefore keeps an account: the budget
//! is a share of the CPU time the target uses (/proc/PID/stat), every allocation-probe hit
//! since sampling began is charged at the measured cost of a hit, and a burst starts only
//! while the account is in credit, sized from the hit rate the previous burst saw. The
//! budget is for what sampling adds: the GC probes are always there, the default mode's
//! cost, measured and reported on their own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::target;
use crate::binary::GoBinary;
use crate::decode::alloc_maps::{Collector, Resolver};
use crate::decode::events::{AllocBatch, Frame};
use crate::decode::sizeclass::Rules;
use crate::probes::{AllocMode, AllocPlan, Probes};

/// Sampling period: one burst per period (longer when a burst's hits, attach and detach
/// included, need more time to average out within the budget). Short, so that the bursts
/// see many moments of the program: a program's allocations change from millisecond to
/// millisecond, and one long burst would stand for them all (the model measures the
/// spread between bursts and states it as the error). Possible because attaching a
/// `uprobe_multi` link costs ~10 ms and detaching it removes every breakpoint at once; on
/// kernels without those links, per-site uprobes linger a grace period each after a
/// burst, and the budget check below stretches the gap accordingly.
const PERIOD: Duration = Duration::from_millis(500);
/// Shortest burst, and the first one (which measures the allocation rate).
const MIN_BURST: Duration = Duration::from_millis(1);
const FIRST_BURST: Duration = Duration::from_millis(10);
/// A burst costs the target more than its counted hits at the calibrated trap cost: on the
/// benchmark (gcload -work 6144, 180 GC cycles/s) the sampled runs' CPU time grew by about
/// four times that (+210 ms against ~2600 counted hits × 20 µs): the traps of a live
/// multi-threaded target cost more than our idle calibration call (system time alone was
/// twice the charge), and goroutines stalled behind trapped threads, GC pacing and cache
/// refills add user time. Hits are charged at this multiple of their measured cost so the
/// whole stays within the budget.
const INDIRECT_COST_FACTOR: f64 = 4.0;
/// The first burst waits this long: a program's first moments (runtime and package
/// initialisation, or the tracer's own attach) say little about its allocations.
const FIRST_BURST_AFTER: Duration = Duration::from_secs(1);

/// A point the budget is counted from.
#[derive(Clone, Copy, Debug)]
struct Ledger {
    cpu: Duration,
    hits: u64,
}

pub struct LiveAllocs {
    mode: AllocMode,
    plan: AllocPlan,
    collector: Collector,
    resolver: LiveResolver,
    /// Budget as a fraction (0.02 = 2 %).
    budget: f64,
    /// What one allocation-probe hit is charged: its measured trap cost on this machine,
    /// times [`INDIRECT_COST_FACTOR`].
    cost_per_hit: Duration,
    /// Sampled mode: when the current burst started, and the hit counter then.
    burst: Option<(Instant, u64)>,
    next_burst: Instant,
    burst_len: Duration,
    /// The budget's ledger: the target's CPU time and every allocation-probe hit when
    /// sampling began.
    ledger: Option<Ledger>,
    /// The target's CPU time and the time when the last burst began: its CPU rate.
    last_burst: Option<(Instant, Duration)>,
    /// Allocation-probe hits per second while the last burst was attached.
    attached_rate: Option<f64>,
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
            cost_per_hit: cost_per_hit.mul_f64(INDIRECT_COST_FACTOR),
            burst: None,
            next_burst: Instant::now() + FIRST_BURST_AFTER,
            burst_len: FIRST_BURST,
            ledger: None,
            last_burst: None,
            attached_rate: None,
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
                // The budget is a share of the CPU time the target uses, for what the
                // allocation probes add to it (the GC probes are the default mode's cost,
                // measured on their own). Every allocation-probe hit since sampling began,
                // the ones during attaches and detaches too, is charged against it; a
                // burst starts only while the account is in credit, so overspending is
                // repaid by waiting.
                let Ok(cpu) = target::cpu_time(self.resolver.pid) else {
                    return Ok(None); // exited: the session notices by itself
                };
                let hits = probes.counters()?.alloc_hits();
                let ledger = *self.ledger.get_or_insert(Ledger { cpu, hits });
                let spent = self
                    .cost_per_hit
                    .mul_f64(hits.saturating_sub(ledger.hits) as f64);
                let allowed = cpu.saturating_sub(ledger.cpu).mul_f64(self.budget);
                if self.last_burst.is_some() && spent >= allowed {
                    self.next_burst = now + PERIOD;
                    return Ok(None);
                }
                if let Some((at, cpu_then)) = self.last_burst {
                    // Size the burst for the budget's share of one period at the target's
                    // current CPU rate.
                    let rate = cpu.saturating_sub(cpu_then).as_secs_f64()
                        / now.duration_since(at).as_secs_f64().max(1e-3);
                    let share = PERIOD.mul_f64(self.budget * rate);
                    self.burst_len = self
                        .burst_len_for(share)
                        .unwrap_or(self.burst_len)
                        .clamp(MIN_BURST, PERIOD);
                }
                self.last_burst = Some((now, cpu));
                if let Err(e) = probes.attach_allocs(&self.plan) {
                    // The target may just have exited (the session notices that by
                    // itself); anything else ends sampling, loudly, but not the trace.
                    probes.detach_allocs();
                    self.failed = true;
                    if target::exists(self.resolver.pid) {
                        eprintln!(
                            "gctrace-bpf: allocation sampling stopped: {}",
                            crate::errors::chain(&e)
                        );
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
                self.attached_rate = Some(hits as f64 / elapsed.as_secs_f64().max(1e-6));
                log::debug!(
                    "allocation burst: {:?} attached, {hits} counted, next {:?}",
                    elapsed,
                    self.burst_len
                );
                self.next_burst = start + PERIOD;
                self.batch(probes, ts_ns)
            }
            _ => Ok(None),
        }
    }

    /// How long a burst may last for its hits to cost `share` of the target's CPU time,
    /// at the hit rate the last burst saw.
    fn burst_len_for(&self, share: Duration) -> Option<Duration> {
        let cost_per_sec = self.attached_rate? * self.cost_per_hit.as_secs_f64();
        (cost_per_sec > 0.0).then(|| Duration::from_secs_f64(share.as_secs_f64() / cost_per_sec))
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
