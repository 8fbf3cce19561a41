//! A GC cycle rebuilt from the runtime's own account at its end ([`TraceEvent::GcDone`],
//! the default probe plan): no probe inside either of its stops.
//!
//! What the runtime keeps (mgc.go, Go 1.19–1.27): `tSweepTerm` (before the sweep-
//! termination stop), `tMark` (its end), `tMarkTerm` (before the last mark-termination
//! stop), `tEnd` (its end) and `pauseNS`, the sum of every stop of the cycle as the
//! runtime counts it (what `MemStats.PauseNs` gets). Per stop:
//! - Go 1.19–1.21 count each stop from `work.pauseStart`, which is `tSweepTerm` and
//!   `tMarkTerm`: sweep termination is exactly `[tSweepTerm, tMark]`, mark termination
//!   `[tMarkTerm, tEnd]`.
//! - Go 1.22+ count from the stop's own `worldStop.startedStopping`, taken a little after
//!   `tSweepTerm`/`tMarkTerm` (once `sched.lock` is held). The mark-termination one is
//!   read from `gcMarkTermination`'s frame; the sweep-termination one is what is left:
//!   `pauseNS - mark termination`, ending at `tMark`.
//! - `gcMarkDone` may stop the world, find more work and restart it (counted in
//!   `pauseNS`, nowhere else): whatever `pauseNS` holds beyond the two stops is reported
//!   as one more "GC mark termination" stop of the cycle. The runtime keeps only the
//!   total, not when they happened, so it is placed just before the final mark
//!   termination (`--every-stop` probes them one by one).
//!
//! So each cycle's stop records add up to its `pause_ns` exactly.

use super::{Model, Requests};
use crate::binary::StwReason;
use crate::decode::events::{RuntimeSnapshot, Trigger};
use crate::model::records::{GcRecord, Record, StwRecord};

impl Model {
    /// A time trigger (`forcegchelper` calling `gcStart`) at `ts_ns`.
    pub(super) fn time_requested(&mut self, ts_ns: u64) {
        self.time_request = Some(ts_ns);
    }

    pub(super) fn gc_done(
        &mut self,
        snap: &RuntimeSnapshot,
        mark_stop_start: Option<u64>,
        out: &mut Vec<Record>,
    ) {
        if let Some(total) = snap.total_alloc {
            self.alloc_reading(total, snap.mallocs, snap.large);
        }
        let (Some(number), Some(numgc)) = (snap.gc_cycles, snap.num_gc) else {
            self.diag.discarded_cycles += 1;
            return;
        };
        // numgc reaches the cycle's number just before the world restarts; a hit before
        // that (gcSweep's own flush under gcstoptheworld=2, inside the stop) or a second
        // one for the same cycle says nothing new.
        if numgc != number || self.last_done.is_some_and(|(n, _)| n == number) {
            return;
        }
        let f = &snap.gc;
        let clock = match (
            f.t_sweep_term,
            f.t_mark,
            f.t_mark_term,
            snap.gc_end_ns,
            snap.pause_ns,
        ) {
            (Some(a), Some(b), Some(c), Some(d), Some(p)) if a <= b && b <= c && c <= d => {
                [a, b, c, d, p]
            }
            _ => {
                self.diag.discarded_cycles += 1;
                return;
            }
        };
        let [t_sweep, t_mark, t_mark_term, t_end, pause] = clock;
        let prev = self.last_done;
        let prev_end = prev.map(|(_, end)| end);
        self.last_done = Some((number, t_end));
        // Forced: numforcedgc is advanced inside the cycle's own stop and nothing can
        // advance it again before this probe, while work.userForced can already belong
        // to the next cycle here (gcStart sets it before it waits for gcsema). Known from
        // the count when the previous cycle was seen (or this is the program's first).
        let prev_forced = match prev {
            Some((n, _)) if n.wrapping_add(1) == number => self.last_forced_count,
            None if number == 1 => Some(0),
            _ => None,
        };
        self.last_forced_count = snap.num_forced_gc;
        let forced = match (prev_forced, snap.num_forced_gc) {
            (Some(before), Some(now)) => Some(now != before),
            _ => snap.user_forced,
        };

        let mark_start = mark_stop_start
            .filter(|s| (t_mark_term..=t_end).contains(s))
            .unwrap_or(t_mark_term);
        let mark_ns = t_end - mark_start;
        let rest = pause.saturating_sub(mark_ns);
        let sweep_ns = rest.min(t_mark - t_sweep);
        let restarts_ns = rest - sweep_ns;
        let start_ns = t_mark - sweep_ns;

        let trigger = match forced {
            Some(true) => Some(Trigger::Forced),
            _ => {
                let timed = self
                    .time_request
                    .is_some_and(|t| t <= t_sweep && prev_end.is_none_or(|e| t > e));
                if timed {
                    Some(Trigger::Time)
                } else if forced.is_some() {
                    Some(Trigger::Heap)
                } else {
                    None
                }
            }
        };
        self.requests = Requests::default();
        self.last_cycle = Some(self.last_cycle.map_or(number, |l| l.max(number)));

        let mut stop = |model: &mut Model, start_ns: u64, duration_ns: u64, reason| {
            model.pauses.record(duration_ns);
            out.push(Record::Stw(StwRecord {
                reason,
                start_ns,
                duration_ns,
                cycle: Some(number),
            }));
        };
        stop(self, start_ns, sweep_ns, StwReason::GcSweepTerm);
        if restarts_ns > 0 {
            stop(
                self,
                mark_start.saturating_sub(restarts_ns),
                restarts_ns,
                StwReason::GcMarkTerm,
            );
        }
        stop(self, mark_start, mark_ns, StwReason::GcMarkTerm);

        let record = GcRecord {
            cycle: number,
            trigger,
            start_ns,
            end_ns: t_end,
            sweep_term_ns: sweep_ns,
            mark_ns: mark_start - t_mark,
            mark_term_ns: mark_ns,
            pause_ns: pause,
            runtime_init_ns: snap.runtime_init_ns,
            gomaxprocs: f.maxprocs.or(snap.settings.gomaxprocs),
            heap_start_bytes: f.heap0,
            heap_end_bytes: f.heap1,
            heap_live_bytes: f.heap2,
            heap_goal_bytes: f.heap_goal,
            stacks_bytes: f.stacks,
            globals_bytes: f.globals,
            gogc: snap.settings.gogc,
            memory_limit_bytes: snap.settings.memory_limit,
            goroutines: snap.goroutines,
            cpu_percent: f.cpu_percent,
            cpu: f.stwprocs.and_then(|procs| {
                let procs = u64::from(procs);
                Some(crate::model::records::GcCpu {
                    sweep_term_ns: procs * (t_mark - t_sweep),
                    assist_ns: f.assist_ns?,
                    background_ns: f.background_ns?,
                    idle_ns: f.idle_ns?,
                    mark_term_ns: procs * (t_end - t_mark_term),
                })
            }),
            runtime_clock: Some([t_sweep, t_mark, t_mark_term, t_end]),
            non_heap_bytes: f.non_heap,
        };
        self.cycles_reported += 1;
        out.push(Record::Gc(record));
    }
}

#[cfg(test)]
mod tests {
    use crate::binary::StwReason;
    use crate::decode::events::{GcFigures, RuntimeSnapshot, TraceEvent, Trigger};
    use crate::model::records::Record;
    use crate::model::Model;

    /// The runtime's account of cycle `n` at its end: sweep termination
    /// [1_000, 1_400] (stopped from 1_100 on 1.22+), mark until 9_000, mark termination
    /// [9_000, 9_300], `pause` in total.
    fn done(n: u32, pause: u64, mark_stop_start: Option<u64>, forced: bool) -> TraceEvent {
        let base = u64::from(n) * 100_000;
        TraceEvent::GcDone {
            ts_ns: base + 9_500,
            snapshot: RuntimeSnapshot {
                gc_cycles: Some(n),
                num_gc: Some(n),
                user_forced: Some(forced),
                gc_end_ns: Some(base + 9_300),
                pause_ns: Some(pause),
                gc: GcFigures {
                    t_sweep_term: Some(base + 1_000),
                    t_mark: Some(base + 1_400),
                    t_mark_term: Some(base + 9_000),
                    ..Default::default()
                },
                ..Default::default()
            },
            mark_stop_start: mark_stop_start.map(|s| base + s),
        }
    }

    fn stops(recs: &[Record]) -> Vec<(StwReason, u64, u64, Option<u32>)> {
        recs.iter()
            .filter_map(|r| match r {
                Record::Stw(s) => Some((s.reason, s.start_ns, s.duration_ns, s.cycle)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn go119_stops_are_the_clocks() {
        let mut m = Model::new();
        let recs = m.apply(&done(3, 700, None, false));
        assert_eq!(
            stops(&recs),
            [
                (StwReason::GcSweepTerm, 301_000, 400, Some(3)),
                (StwReason::GcMarkTerm, 309_000, 300, Some(3)),
            ]
        );
        let Some(Record::Gc(g)) = recs.last() else {
            panic!("no gc record: {recs:?}");
        };
        assert_eq!(
            (g.cycle, g.pause_ns, g.start_ns, g.end_ns),
            (3, 700, 301_000, 309_300)
        );
        assert_eq!(
            (g.sweep_term_ns, g.mark_ns, g.mark_term_ns),
            (400, 7_600, 300)
        );
        assert_eq!(g.trigger, Some(Trigger::Heap));
        // The same cycle again (a second flush) says nothing new.
        assert!(m.apply(&done(3, 700, None, false)).is_empty());
    }

    #[test]
    fn go122_stops_start_at_started_stopping() {
        let mut m = Model::new();
        // Mark termination stopped from 9_050: 250 ns; sweep termination is the rest
        // (300 of the 400 between tSweepTerm and tMark).
        let recs = m.apply(&done(4, 550, Some(9_050), true));
        assert_eq!(
            stops(&recs),
            [
                (StwReason::GcSweepTerm, 401_100, 300, Some(4)),
                (StwReason::GcMarkTerm, 409_050, 250, Some(4)),
            ]
        );
        let Some(Record::Gc(g)) = recs.last() else {
            panic!("no gc record");
        };
        assert_eq!(g.trigger, Some(Trigger::Forced));
        // A frame word outside [tMarkTerm, tEnd] is not this stop's start.
        let recs = m.apply(&done(5, 700, Some(1), false));
        assert_eq!(
            stops(&recs)[1],
            (StwReason::GcMarkTerm, 509_000, 300, Some(5))
        );
    }

    #[test]
    fn restarts_get_a_record_and_the_sum_is_pause_ns() {
        let mut m = Model::new();
        let recs = m.apply(&done(6, 1_000, None, false));
        let s = stops(&recs);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[1], (StwReason::GcMarkTerm, 608_700, 300, Some(6)));
        assert_eq!(s.iter().map(|x| x.2).sum::<u64>(), 1_000);
    }

    #[test]
    fn time_trigger_from_forcegc_between_cycles() {
        let mut m = Model::new();
        m.apply(&done(7, 700, None, false));
        m.apply(&TraceEvent::GcRequested {
            ts_ns: 800_500,
            trigger: Trigger::Time,
        });
        let recs = m.apply(&done(8, 700, None, false));
        let Some(Record::Gc(g)) = recs.last() else {
            panic!("no gc record");
        };
        assert_eq!(g.trigger, Some(Trigger::Time));
        // That request does not make the next cycle a time one too.
        let recs = m.apply(&done(9, 700, None, false));
        let Some(Record::Gc(g)) = recs.last() else {
            panic!("no gc record");
        };
        assert_eq!(g.trigger, Some(Trigger::Heap));
    }

    /// work.userForced read after the restart may be the next cycle's (Go 1.19 showed
    /// it); numforcedgc, advanced inside the stop, decides when the previous count is known.
    #[test]
    fn forced_comes_from_the_forced_count() {
        let with_count = |n: u32, forced_count: u32, user_forced: bool| {
            let TraceEvent::GcDone { mut snapshot, .. } = done(n, 700, None, user_forced) else {
                unreachable!()
            };
            snapshot.num_forced_gc = Some(forced_count);
            TraceEvent::GcDone {
                ts_ns: 0,
                snapshot,
                mark_stop_start: None,
            }
        };
        let trigger = |recs: Vec<Record>| match recs.last() {
            Some(Record::Gc(g)) => g.trigger,
            other => panic!("{other:?}"),
        };
        let mut m = Model::new();
        // Cycle 1 of the program: heap, although the next runtime.GC() set userForced.
        assert_eq!(
            trigger(m.apply(&with_count(1, 0, true))),
            Some(Trigger::Heap)
        );
        assert_eq!(
            trigger(m.apply(&with_count(2, 1, false))),
            Some(Trigger::Forced)
        );
        assert_eq!(
            trigger(m.apply(&with_count(3, 1, true))),
            Some(Trigger::Heap)
        );
        // After a gap the count cannot say which cycle it was: userForced decides.
        assert_eq!(
            trigger(m.apply(&with_count(5, 2, true))),
            Some(Trigger::Forced)
        );
    }

    #[test]
    fn incomplete_or_unreadable_cycles_are_not_reported() {
        let mut m = Model::new();
        // numgc not advanced yet: the flush inside the stop (gcstoptheworld=2).
        let TraceEvent::GcDone { mut snapshot, .. } = done(10, 700, None, false) else {
            unreachable!()
        };
        snapshot.num_gc = Some(9);
        let ev = TraceEvent::GcDone {
            ts_ns: 0,
            snapshot,
            mark_stop_start: None,
        };
        assert!(m.apply(&ev).is_empty());
        snapshot.num_gc = Some(10);
        snapshot.pause_ns = None;
        let ev = TraceEvent::GcDone {
            ts_ns: 0,
            snapshot,
            mark_stop_start: None,
        };
        assert!(m.apply(&ev).is_empty());
        assert_eq!(m.diagnostics().discarded_cycles, 1);
    }
}
