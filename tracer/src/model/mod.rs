//! Stage 4, the model: decoded [`TraceEvent`]s in, [`Record`]s ([`records`]) out. Beside
//! the state machine below: allocation totals by type and site (`allocs/`), the findings
//! engine judging the records ([`findings`]) and what-if predictions from them
//! ([`whatif`]).
//!
//! Pure state machine: no I/O, no clock, so it is unit-tested without a kernel and cannot
//! tell a live run from a replay. It relies on two properties of the Go runtime (1.19 to
//! 1.27): events arrive in time order, and stop-the-world windows are serialized by
//! `worldsema`, so a `StwBegin` is always followed by its own `StwEnd` before the next
//! `StwBegin`.
//!
//! A GC cycle N, as the model sees it:
//! 1. a "GC sweep termination" stop; at its end `work.cycles` is already N;
//! 2. concurrent mark (non-GC stops may happen here; they are not part of the cycle);
//! 3. one or more "GC mark termination" stops: `gcMarkDone` may stop the world, find
//!    more work, restart it and try again. Every one of them counts toward the cycle's
//!    pause, and the last one is the real mark termination; at its end
//!    `memstats.numgc` has become N, which is how the model knows the cycle is complete.
//!
//! When the snapshot cannot tell (`num_gc` unknown for this binary), completion is
//! decided lazily: the cycle is complete once the next cycle begins, or at the end of
//! the trace, and its last mark-termination stop is taken as the real one.
//!
//! Cycle numbers come from the runtime when possible (`work.cycles`, else
//! `memstats.numgc + 1` at sweep termination). When neither is known the model counts
//! cycles itself; if it never learned an absolute number (the tracer attached to a
//! running program) that numbering is relative to the attach and starts at 1, which
//! [`Model::diagnostics`] reports.

mod allocs;
pub mod findings;
mod gc_done;
pub(crate) mod histogram;
pub mod records;
pub mod whatif;

pub use allocs::AllocModel;

use crate::binary::StwReason;
use crate::decode::events::{
    GcFigures, LargeAllocs, RuntimeSnapshot, Settings, TraceEvent, Trigger,
};
use histogram::PauseHistogram;
use records::{AllocRecord, GcCpu, GcRecord, Record, SettingsRecord, StwRecord, Summary};

/// Oddities the model saw and coped with. None of them is a lost event: they are what a
/// tracer attached to a running program, or a binary with unknown offsets, looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// `StwEnd` with no open stop (attached in the middle of a stop).
    pub orphan_stw_ends: u64,
    /// `StwBegin` replaced by another `StwBegin` before its end, or still open at
    /// `finish` (its end was lost, or the trace stopped mid-stop).
    pub dropped_stw_begins: u64,
    /// Cycles started but never seen complete (attached mid-cycle, lost events, trace
    /// ended during the cycle). Never reported as `Gc` records.
    pub discarded_cycles: u64,
    /// Mark-termination stops with no cycle in progress (attached mid-cycle); reported
    /// as `Stw` records only.
    pub mark_terms_without_cycle: u64,
    /// Cycle numbers are the model's own count from 1, not the runtime's, because the
    /// runtime's counters were unreadable. Relative to when tracing started.
    pub relative_numbering: bool,
}

/// Where a cycle's number came from: the runtime's counters, or the model's own count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumberSource {
    Runtime,
    Counted,
}

/// The stop currently open (between `StwBegin` and `StwEnd`).
#[derive(Clone, Copy, Debug)]
struct OpenStop {
    start_ns: u64,
    reason: StwReason,
}

/// A cycle whose sweep termination was seen and which is not complete yet.
#[derive(Clone, Debug)]
struct CycleInProgress {
    number: u32,
    source: NumberSource,
    trigger: Option<Trigger>,
    start_ns: u64,
    mark_start_ns: u64,
    pause_ns: u64,
    runtime_init_ns: Option<u64>,
    gomaxprocs: Option<u32>,
    /// Start and end of the last mark-termination stop seen.
    mark_term: Option<(u64, u64)>,
    /// The last mark-termination snapshot had no `num_gc`: complete lazily.
    lazy: bool,
    /// The runtime's figures as of the last mark termination.
    figures: GcFigures,
    gc_end_ns: Option<u64>,
    gogc: Option<i32>,
    memory_limit: Option<i64>,
    goroutines: Option<u64>,
}

impl CycleInProgress {
    fn to_record(&self) -> Option<GcRecord> {
        let (mark_term_start, end) = self.mark_term?;
        Some(GcRecord {
            cycle: self.number,
            trigger: self.trigger,
            start_ns: self.start_ns,
            end_ns: end,
            sweep_term_ns: self.mark_start_ns.saturating_sub(self.start_ns),
            mark_ns: mark_term_start.saturating_sub(self.mark_start_ns),
            mark_term_ns: end.saturating_sub(mark_term_start),
            pause_ns: self.pause_ns,
            runtime_init_ns: self.runtime_init_ns,
            gomaxprocs: self.figures.maxprocs.or(self.gomaxprocs),
            heap_start_bytes: self.figures.heap0,
            heap_end_bytes: self.figures.heap1,
            heap_live_bytes: self.figures.heap2,
            heap_goal_bytes: self.figures.heap_goal,
            stacks_bytes: self.figures.stacks,
            globals_bytes: self.figures.globals,
            gogc: self.gogc,
            memory_limit_bytes: self.memory_limit,
            goroutines: self.goroutines,
            cpu_percent: self.figures.cpu_percent,
            cpu: self.cpu(),
            runtime_clock: self.runtime_clock(),
            non_heap_bytes: self.figures.non_heap,
        })
    }

    /// The runtime's timestamps, if they are this cycle's: in order, and starting within
    /// a few milliseconds of the measured start (a stale `work` would be a cycle older).
    fn runtime_clock(&self) -> Option<[u64; 4]> {
        const NEAR_NS: u64 = 5_000_000;
        let f = &self.figures;
        let clock = [f.t_sweep_term?, f.t_mark?, f.t_mark_term?, self.gc_end_ns?];
        let ordered = clock.windows(2).all(|w| w[0] <= w[1]);
        (ordered && clock[0].abs_diff(self.start_ns) < NEAR_NS).then_some(clock)
    }

    /// gctrace's cpu figures, from the runtime's own timestamps (as gctrace computes them).
    fn cpu(&self) -> Option<GcCpu> {
        let f = &self.figures;
        let procs = u64::from(f.stwprocs?);
        Some(GcCpu {
            sweep_term_ns: procs * f.t_mark?.saturating_sub(f.t_sweep_term?),
            assist_ns: f.assist_ns?,
            background_ns: f.background_ns?,
            idle_ns: f.idle_ns?,
            mark_term_ns: procs * self.gc_end_ns?.saturating_sub(f.t_mark_term?),
        })
    }
}

/// Allocation counter readings: where the rate comes from.
#[derive(Clone, Copy, Debug, Default)]
struct AllocState {
    /// First reading seen (the baseline of `Summary::alloc_bytes`).
    first: Option<u64>,
    /// Latest reading (from a sample or a stop's snapshot).
    last: Option<u64>,
    /// Latest reported sample, for the rate.
    last_sample: Option<(u64, u64)>,
    /// The runtime's object count at the first reading (`None` when that reading had
    /// none: then no later one covers the same window) and the latest.
    objects_first: Option<u64>,
    objects_last: Option<u64>,
    /// Likewise for the large objects among them.
    large_first: Option<LargeAllocs>,
    large_last: Option<LargeAllocs>,
}

/// `gcStart` calls seen since the current (or last) cycle started: what the next cycle's
/// trigger was, when the runtime's `work.userForced` does not say.
#[derive(Clone, Copy, Debug, Default)]
struct Requests {
    last: Option<Trigger>,
    any_time: bool,
}

/// The aggregation state. See the module documentation.
#[derive(Debug, Default)]
pub struct Model {
    open: Option<OpenStop>,
    cycle: Option<CycleInProgress>,
    /// Number of the last cycle started (or seen in a snapshot); basis of own counting.
    last_cycle: Option<u32>,
    requests: Requests,
    pauses: PauseHistogram,
    cycles_reported: u64,
    lost_events: u64,
    diag: Diagnostics,
    alloc: AllocState,
    allocs: AllocModel,
    /// Latest time trigger seen (`forcegchelper` calling `gcStart`).
    time_request: Option<u64>,
    /// Number and `tEnd` of the last cycle reported from a [`TraceEvent::GcDone`].
    last_done: Option<(u32, u64)>,
    /// `memstats.numforcedgc` at that cycle's end.
    last_forced_count: Option<u32>,
    /// The settings last reported in a `Settings` record.
    settings: Settings,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Feed one decoded event; returns the records it completes (0..n), in order.
    pub fn apply(&mut self, ev: &TraceEvent) -> Vec<Record> {
        let mut out = Vec::new();
        self.apply_into(ev, &mut out);
        out
    }

    /// [`Model::apply`] appending to `out`, so the live path reuses one vector rather
    /// than allocating one per stop of the world.
    pub fn apply_into(&mut self, ev: &TraceEvent, out: &mut Vec<Record>) {
        match ev {
            &TraceEvent::GcRequested { ts_ns, trigger } => {
                self.requests.last = Some(trigger);
                self.requests.any_time |= trigger == Trigger::Time;
                if trigger == Trigger::Time {
                    self.time_requested(ts_ns);
                }
            }
            TraceEvent::GcDone {
                snapshot,
                mark_stop_start,
                ..
            } => self.gc_done(snapshot, *mark_stop_start, out),
            TraceEvent::Gap { .. } => {
                // A stop whose end (or a later stop's begin) was lost would pair wrongly,
                // and a cycle missing a stop would be reported with wrong phases.
                if self.open.take().is_some() {
                    self.diag.dropped_stw_begins += 1;
                }
                if self.cycle.take().is_some() {
                    self.diag.discarded_cycles += 1;
                }
            }
            TraceEvent::Allocs(batch) => {
                if let Some((types, sites)) = self.allocs.add(batch) {
                    out.push(Record::AllocTypes(types));
                    out.push(Record::AllocSites(sites));
                }
            }
            &TraceEvent::StwBegin { ts_ns, reason } => self.stw_begin(ts_ns, reason, out),
            &TraceEvent::StwEnd {
                ts_ns,
                ref snapshot,
            } => self.stw_end(ts_ns, snapshot, out),
            &TraceEvent::Stw {
                begin_ns,
                reason,
                end_ns,
                ref snapshot,
            } => {
                self.stw_begin(begin_ns, reason, out);
                self.stw_end(end_ns, snapshot, out);
            }
            &TraceEvent::Sample {
                ts_ns,
                total_bytes,
                settings,
                total_objects,
                large,
            } => {
                self.observe_settings(ts_ns, settings, out);
                let Some(total_bytes) = total_bytes else {
                    return;
                };
                self.alloc_reading(total_bytes, total_objects, large);
                let rate = self.alloc.last_sample.and_then(|(t0, b0)| {
                    let dt = ts_ns.checked_sub(t0).filter(|dt| *dt > 0)?;
                    let db = total_bytes.saturating_sub(b0);
                    Some((db as u128 * 1_000_000_000 / dt as u128) as u64)
                });
                self.alloc.last_sample = Some((ts_ns, total_bytes));
                out.push(Record::Alloc(AllocRecord {
                    ts_ns,
                    total_bytes,
                    rate_bytes_per_s: rate,
                    alloc_objects: self.allocs.active().then(|| self.allocs.totals().0),
                }));
            }
        }
    }

    /// Events lost so far (kernel ring-buffer drops + undecodable), set by the session
    /// before `finish`; the model cannot see them itself.
    pub fn set_lost_events(&mut self, n: u64) {
        self.lost_events = n;
    }

    /// End of trace: returns any remaining complete records then exactly one
    /// `Record::Summary`. A cycle waiting for lazy completion is reported (its last
    /// mark termination is taken as the real one); any other cycle in progress is
    /// incomplete and dropped. The allocation aggregates get a last snapshot when batches
    /// came after the last one.
    pub fn finish(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        if self.open.take().is_some() {
            self.diag.dropped_stw_begins += 1;
        }
        self.settle_cycle(&mut out);
        if self.allocs.unreported() {
            let (types, sites) = self.allocs.snapshot();
            out.push(Record::AllocTypes(types));
            out.push(Record::AllocSites(sites));
        }
        out.push(Record::Summary(self.summary()));
        out
    }

    /// Allocation aggregates (for views and profiles).
    pub fn allocs(&self) -> &AllocModel {
        &self.allocs
    }

    /// Current summary (for live views).
    pub fn summary(&self) -> Summary {
        Summary {
            cycles: self.cycles_reported,
            pause_p50_ns: self.pauses.percentile(50.0),
            pause_p99_ns: self.pauses.percentile(99.0),
            pause_max_ns: self.pauses.max(),
            // Counted allocations when the allocation probes ran the whole time; else
            // the runtime's own counter.
            alloc_bytes: if self.allocs.exact() {
                Some(self.allocs.totals().1)
            } else {
                match (self.alloc.first, self.alloc.last) {
                    (Some(first), Some(last)) => Some(last.saturating_sub(first)),
                    _ => None,
                }
            },
            alloc_objects: self.allocs.active().then(|| self.allocs.totals().0),
            lost_events: self.lost_events,
        }
    }

    /// A reading of the cumulative allocation counters (they only grow): bytes, and the
    /// objects (and large objects) when read too. Objects count over the same window as
    /// bytes or not at all.
    fn alloc_reading(&mut self, total: u64, objects: Option<u64>, large: Option<LargeAllocs>) {
        if self.alloc.first.is_none() {
            self.alloc.objects_first = objects;
            self.alloc.large_first = large;
        }
        if let (Some(l0), Some(l)) = (self.alloc.large_first, large) {
            let last = self.alloc.large_last.map_or(l, |p| LargeAllocs {
                bytes: p.bytes.max(l.bytes),
                objects: p.objects.max(l.objects),
            });
            self.alloc.large_last = Some(last);
            self.allocs.set_runtime_large(LargeAllocs {
                bytes: last.bytes.saturating_sub(l0.bytes),
                objects: last.objects.saturating_sub(l0.objects),
            });
        }
        let first = *self.alloc.first.get_or_insert(total);
        let last = self.alloc.last.map_or(total, |l| l.max(total));
        self.alloc.last = Some(last);
        self.allocs.set_runtime_bytes(last.saturating_sub(first));
        if let (Some(o0), Some(o)) = (self.alloc.objects_first, objects) {
            let last = self.alloc.objects_last.map_or(o, |l| l.max(o));
            self.alloc.objects_last = Some(last);
            self.allocs
                .set_runtime_objects(last.saturating_sub(o0), self.settings.gomaxprocs);
        }
    }

    /// What the model saw and coped with (orphan ends, dropped cycles, ...), for logs.
    pub fn diagnostics(&self) -> Diagnostics {
        self.diag
    }

    /// The stop `stop` ended at `end_ns`: report it, and advance the cycle.
    fn stw_begin(&mut self, ts_ns: u64, reason: StwReason, out: &mut Vec<Record>) {
        if self.open.is_some() {
            // Its end was lost: the runtime never overlaps stops.
            self.diag.dropped_stw_begins += 1;
        }
        if reason == StwReason::GcSweepTerm {
            // A new cycle is starting, so the previous one is over: complete it if it was
            // waiting for lazy completion, else it is incomplete.
            self.settle_cycle(out);
        }
        self.open = Some(OpenStop {
            start_ns: ts_ns,
            reason,
        });
    }

    fn stw_end(&mut self, ts_ns: u64, snapshot: &RuntimeSnapshot, out: &mut Vec<Record>) {
        if let Some(total) = snapshot.total_alloc {
            self.alloc_reading(total, snapshot.mallocs, snapshot.large);
        }
        match self.open.take() {
            None => self.diag.orphan_stw_ends += 1,
            Some(stop) => self.close_stop(stop, ts_ns, snapshot, out),
        }
    }

    fn close_stop(
        &mut self,
        stop: OpenStop,
        end_ns: u64,
        snap: &RuntimeSnapshot,
        out: &mut Vec<Record>,
    ) {
        // Before Go 1.22 the runtime ends a mark-termination pause at `work.tEnd`, taken
        // before it restarts the world; use it when it belongs to this stop (a restarted
        // mark termination leaves the previous cycle's value behind).
        let end_ns = match (stop.reason, snap.gc_end_ns) {
            (StwReason::GcMarkTerm, Some(t)) if (stop.start_ns..=end_ns).contains(&t) => t,
            _ => end_ns,
        };
        let duration = end_ns.saturating_sub(stop.start_ns);
        self.pauses.record(duration);
        let cycle = match stop.reason {
            StwReason::GcSweepTerm => Some(self.start_cycle(stop.start_ns, end_ns, snap)),
            StwReason::GcMarkTerm => self.mark_termination(stop.start_ns, end_ns, snap),
            _ => None,
        };
        out.push(Record::Stw(StwRecord {
            reason: stop.reason,
            start_ns: stop.start_ns,
            duration_ns: duration,
            cycle,
        }));
        // The cycle completes after its last stop is reported: records stay in time order.
        self.complete_if_done(snap, out);
    }

    /// A sweep-termination stop ended: cycle N is in progress. Returns N.
    fn start_cycle(&mut self, start_ns: u64, end_ns: u64, snap: &RuntimeSnapshot) -> u32 {
        // Normally settled at the StwBegin already; this only catches a cycle that was
        // somehow still open.
        if self.cycle.take().is_some() {
            self.diag.discarded_cycles += 1;
        }
        let (number, source) = if let Some(n) = snap.gc_cycles {
            (n, NumberSource::Runtime)
        } else if let Some(done) = snap.num_gc {
            // numgc counts completed cycles; the one starting now is the next.
            (done.wrapping_add(1), NumberSource::Runtime)
        } else if let Some(prev) = self.last_cycle {
            (prev.wrapping_add(1), NumberSource::Counted)
        } else {
            self.diag.relative_numbering = true;
            (1, NumberSource::Counted)
        };
        self.last_cycle = Some(number);

        let trigger = match snap.user_forced {
            Some(true) => Some(Trigger::Forced),
            Some(false) if self.requests.any_time => Some(Trigger::Time),
            Some(false) => Some(Trigger::Heap),
            None => self.requests.last,
        };
        self.requests = Requests::default();

        self.cycle = Some(CycleInProgress {
            number,
            source,
            trigger,
            start_ns,
            mark_start_ns: end_ns,
            pause_ns: end_ns.saturating_sub(start_ns),
            runtime_init_ns: snap.runtime_init_ns,
            gomaxprocs: snap.settings.gomaxprocs,
            mark_term: None,
            lazy: false,
            figures: GcFigures::default(),
            gc_end_ns: None,
            gogc: snap.settings.gogc,
            memory_limit: snap.settings.memory_limit,
            goroutines: snap.goroutines,
        });
        number
    }

    /// Settings sampled at `ts_ns` (each second, by user space): a `Settings` record when
    /// they add to or change what was last reported (fields read as unknown keep their
    /// last known value). Stops' snapshots are not used: every cycle's record carries its
    /// own, and a record per stop would repeat the same values thousands of times.
    fn observe_settings(&mut self, ts_ns: u64, seen: Settings, out: &mut Vec<Record>) {
        let now = self.settings.updated(seen);
        if now != self.settings {
            self.settings = now;
            out.push(Record::Settings(SettingsRecord {
                ts_ns,
                gogc: now.gogc,
                memory_limit_bytes: now.memory_limit,
                gomaxprocs: now.gomaxprocs,
            }));
        }
    }

    /// A mark-termination stop ended. Returns the cycle it belongs to, if known.
    fn mark_termination(
        &mut self,
        start_ns: u64,
        end_ns: u64,
        snap: &RuntimeSnapshot,
    ) -> Option<u32> {
        if let (Some(c), Some(seen)) = (&mut self.cycle, snap.gc_cycles) {
            if seen != c.number {
                match c.source {
                    // Our own count was only a guess; the runtime knows better.
                    NumberSource::Counted => c.number = seen,
                    // Runtime says another cycle: we missed its sweep termination (lost
                    // events). Ours cannot be completed correctly.
                    NumberSource::Runtime => {
                        self.cycle = None;
                        self.diag.discarded_cycles += 1;
                    }
                }
            }
        }
        if let Some(seen) = snap.gc_cycles {
            self.last_cycle = Some(self.last_cycle.map_or(seen, |l| l.max(seen)));
        }
        let Some(c) = &mut self.cycle else {
            // Attached mid-cycle: the stop is real, the cycle cannot be reported.
            self.diag.mark_terms_without_cycle += 1;
            return snap.gc_cycles;
        };
        c.pause_ns = c.pause_ns.saturating_add(end_ns.saturating_sub(start_ns));
        c.mark_term = Some((start_ns, end_ns));
        c.lazy = snap.num_gc.is_none();
        c.runtime_init_ns = c.runtime_init_ns.or(snap.runtime_init_ns);
        c.gomaxprocs = c.gomaxprocs.or(snap.settings.gomaxprocs);
        c.figures = snap.gc;
        c.gc_end_ns = snap.gc_end_ns;
        c.gogc = snap.settings.gogc.or(c.gogc);
        c.memory_limit = snap.settings.memory_limit.or(c.memory_limit);
        c.goroutines = snap.goroutines.or(c.goroutines);
        Some(c.number)
    }

    /// Report the cycle in progress if the snapshot shows `numgc` reached its number.
    /// numgc is incremented only at the end of the real mark termination, so a restart
    /// (numgc still N-1) keeps waiting. Greater than N also means N finished.
    fn complete_if_done(&mut self, snap: &RuntimeSnapshot, out: &mut Vec<Record>) {
        let done = match (&self.cycle, snap.num_gc) {
            (Some(c), Some(numgc)) => c.mark_term.is_some() && numgc >= c.number,
            _ => false,
        };
        if done {
            if let Some(c) = self.cycle.take() {
                self.emit(&c, out);
            }
        }
    }

    /// The cycle in progress can no longer receive stops: report it if lazily complete,
    /// else count it as discarded.
    fn settle_cycle(&mut self, out: &mut Vec<Record>) {
        if let Some(c) = self.cycle.take() {
            if c.lazy && c.mark_term.is_some() {
                self.emit(&c, out);
            } else {
                self.diag.discarded_cycles += 1;
            }
        }
    }

    fn emit(&mut self, c: &CycleInProgress, out: &mut Vec<Record>) {
        if let Some(rec) = c.to_record() {
            self.cycles_reported += 1;
            out.push(Record::Gc(rec));
        } else {
            self.diag.discarded_cycles += 1;
        }
    }
}

#[cfg(test)]
mod tests;
