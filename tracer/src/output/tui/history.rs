//! What the Overview's time windows are computed from: per-second (and per-ten-second)
//! aggregates of one process's stops and cycles.
//!
//! The windows run up to 30 minutes, and a busy program makes thousands of stops and
//! hundreds of cycles a second, so a ring of recent records cannot cover them (a ring of
//! 8,192 stops was 45 s of a program at 90 cycles/s). Each record is instead added to
//! the bucket of its second. Memory is bounded by time, not by events: at most
//! [`FINE_BUCKETS`] one-second buckets (the last 2 minutes) and [`COARSE_BUCKETS`]
//! ten-second buckets (the last 30 minutes), each a few counters, one heap point and the
//! non-empty buckets of its pause histogram (a few dozen in practice; at most one per
//! histogram bucket its pauses fall in).
//!
//! A window is read by merging the buckets that overlap it, so its edge is rounded out
//! to a whole bucket: at most one second for windows up to 2 minutes, ten seconds above.

use std::collections::{BTreeMap, VecDeque};

use crate::binary::StwReason;
use crate::model::histogram::{CompactPauses, PauseHistogram};
use crate::model::records::{GcRecord, StwRecord};

/// One-second buckets kept: windows up to this many seconds are read from them.
pub const FINE_BUCKETS: usize = 120;
/// Ten-second buckets kept: 30 minutes, the longest window.
pub const COARSE_BUCKETS: usize = 180;
const FINE_NS: u64 = 1_000_000_000;
const COARSE_NS: u64 = 10 * FINE_NS;

/// The heap at the end of the last cycle that ended in a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapPoint {
    pub end_ns: u64,
    pub live_bytes: Option<u64>,
    pub goal_bytes: Option<u64>,
}

impl HeapPoint {
    /// The heap a cycle left: its marked (live) bytes and the goal it set.
    pub fn of(g: &GcRecord) -> HeapPoint {
        HeapPoint {
            end_ns: g.end_ns,
            live_bytes: g.heap_live_bytes,
            goal_bytes: g.heap_goal_bytes,
        }
    }
}

/// Everything that happened in one bucket of time.
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Which bucket: the start time divided by the bucket width.
    index: u64,
    pauses: CompactPauses,
    /// Non-GC stops by reason.
    non_gc: BTreeMap<StwReason, u32>,
    cycles: u32,
    /// GC CPU time of the cycles that ended here and carried CPU figures.
    gc_cpu_ns: u64,
    cpu_known: bool,
    heap: Option<HeapPoint>,
}

/// Buckets of one width, oldest first, spanning at most `cap` buckets of time.
#[derive(Clone, Debug)]
struct Level {
    width_ns: u64,
    cap: usize,
    buckets: VecDeque<Bucket>,
}

impl Level {
    fn new(width_ns: u64, cap: usize) -> Level {
        Level {
            width_ns,
            cap,
            buckets: VecDeque::new(),
        }
    }

    /// The bucket holding time `ns`, made if needed; None when `ns` is older than the
    /// history kept (the record still counts in the figures since attach).
    fn at(&mut self, ns: u64) -> Option<&mut Bucket> {
        let index = ns / self.width_ns;
        let newest = self.buckets.back().map_or(index, |b| b.index.max(index));
        if index + self.cap as u64 <= newest {
            return None;
        }
        // Records arrive almost in time order: the newest bucket is nearly always it.
        let at = match self.buckets.back() {
            Some(b) if b.index == index => self.buckets.len() - 1,
            _ => match self.buckets.binary_search_by_key(&index, |b| b.index) {
                Ok(at) => at,
                Err(at) => {
                    self.buckets.insert(
                        at,
                        Bucket {
                            index,
                            ..Bucket::default()
                        },
                    );
                    while self
                        .buckets
                        .front()
                        .is_some_and(|f| f.index + self.cap as u64 <= newest)
                    {
                        self.buckets.pop_front();
                    }
                    match self.buckets.binary_search_by_key(&index, |b| b.index) {
                        Ok(at) => at,
                        Err(_) => return None,
                    }
                }
            },
        };
        self.buckets.get_mut(at)
    }

    /// The buckets overlapping `[start_ns, ∞)`, oldest first.
    fn from(&self, start_ns: u64) -> impl Iterator<Item = &Bucket> {
        let first = start_ns / self.width_ns;
        let skip = self.buckets.partition_point(|b| b.index < first);
        self.buckets.range(skip..)
    }
}

/// The per-process history behind the time windows.
#[derive(Clone, Debug)]
pub struct History {
    fine: Level,
    coarse: Level,
}

impl Default for History {
    fn default() -> History {
        History {
            fine: Level::new(FINE_NS, FINE_BUCKETS),
            coarse: Level::new(COARSE_NS, COARSE_BUCKETS),
        }
    }
}

/// A time window's figures, merged from the buckets that overlap it.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Every stop of the window.
    pub pauses: PauseHistogram,
    /// Non-GC stops by reason.
    pub non_gc: BTreeMap<StwReason, u64>,
    /// Cycles that ended in the window.
    pub cycles: u64,
    /// GC CPU time of those cycles (None when no cycle carried CPU figures).
    pub gc_cpu_ns: Option<u64>,
    /// The heap at the last cycle of each bucket, oldest first: one point per second
    /// (ten above two minutes), whatever the cycle rate.
    pub heap: Vec<HeapPoint>,
}

impl Window {
    pub fn non_gc_stops(&self) -> u64 {
        self.non_gc.values().sum()
    }

    /// p50, p90, p99 and max of the window's stops.
    pub fn percentiles(&self) -> Option<[u64; 4]> {
        self.pauses.p50_p90_p99_max()
    }
}

impl History {
    pub fn stop(&mut self, s: &StwRecord) {
        let end = s.start_ns.saturating_add(s.duration_ns);
        for level in [&mut self.fine, &mut self.coarse] {
            if let Some(b) = level.at(end) {
                b.pauses.record(s.duration_ns);
                if !s.reason.is_gc() {
                    *b.non_gc.entry(s.reason).or_insert(0) += 1;
                }
            }
        }
    }

    pub fn cycle(&mut self, g: &GcRecord) {
        let cpu = g.cpu.map(|c| {
            c.sweep_term_ns
                .saturating_add(c.assist_ns)
                .saturating_add(c.background_ns)
                .saturating_add(c.mark_term_ns)
        });
        let point = HeapPoint::of(g);
        for level in [&mut self.fine, &mut self.coarse] {
            if let Some(b) = level.at(g.end_ns) {
                b.cycles += 1;
                if let Some(ns) = cpu {
                    b.gc_cpu_ns = b.gc_cpu_ns.saturating_add(ns);
                    b.cpu_known = true;
                }
                if b.heap.is_none_or(|h| h.end_ns <= point.end_ns) {
                    b.heap = Some(point);
                }
            }
        }
    }

    /// The figures of the window of `window_s` seconds ending at `now_ns`.
    pub fn window(&self, now_ns: u64, window_s: u64) -> Window {
        let level = if window_s <= FINE_BUCKETS as u64 {
            &self.fine
        } else {
            &self.coarse
        };
        let start = now_ns.saturating_sub(window_s.saturating_mul(FINE_NS));
        let mut w = Window::default();
        for b in level.from(start) {
            w.pauses.merge(&b.pauses);
            for (r, n) in &b.non_gc {
                *w.non_gc.entry(*r).or_insert(0) += u64::from(*n);
            }
            w.cycles += u64::from(b.cycles);
            if b.cpu_known {
                w.gc_cpu_ns = Some(w.gc_cpu_ns.unwrap_or(0).saturating_add(b.gc_cpu_ns));
            }
            w.heap.extend(b.heap);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(end_s: f64, dur_ns: u64, reason: StwReason) -> StwRecord {
        let end = (end_s * 1e9) as u64;
        StwRecord {
            reason,
            start_ns: end - dur_ns,
            duration_ns: dur_ns,
            cycle: None,
        }
    }

    /// A window covers its whole length however many stops it holds, and only it.
    #[test]
    fn windows_follow_time_not_event_counts() {
        let mut h = History::default();
        // 100 stops a second for 100 s: 10,000 stops, more than any ring kept.
        for i in 0..10_000u64 {
            let t = 1000.0 + i as f64 / 100.0;
            h.stop(&stop(t, 10_000 + i, StwReason::GcMarkTerm));
        }
        h.stop(&stop(1099.5, 7_000_000, StwReason::ReadMemStats));
        let now = 1100 * FINE_NS;
        let w60 = h.window(now, 60);
        // 60 s of stops, plus at most the one second the edge is rounded out to.
        assert!(
            (6001..=6101).contains(&w60.pauses.count()),
            "{}",
            w60.pauses.count()
        );
        assert_eq!(w60.non_gc_stops(), 1);
        assert_eq!(w60.percentiles().map(|p| p[3]), Some(7_000_000));
        let w10 = h.window(now, 10);
        assert!((1001..=1101).contains(&w10.pauses.count()));
        // The 30-minute window is read from the ten-second buckets: everything.
        assert_eq!(h.window(now, 1800).pauses.count(), 10_001);
    }

    #[test]
    fn memory_is_bounded_by_time() {
        let mut h = History::default();
        for s in 0..10_000u64 {
            h.stop(&stop(s as f64 + 0.5, 1000, StwReason::GcSweepTerm));
        }
        assert_eq!(h.fine.buckets.len(), FINE_BUCKETS);
        assert_eq!(h.coarse.buckets.len(), COARSE_BUCKETS);
        // A late record older than the history is left out, not misfiled.
        h.stop(&stop(5.0, 1000, StwReason::GcSweepTerm));
        assert_eq!(h.fine.buckets.len(), FINE_BUCKETS);
        assert!(h.fine.buckets.iter().all(|b| b.pauses.count() == 1));
    }

    #[test]
    fn cycles_give_one_heap_point_per_bucket_and_their_cpu() {
        let mut h = History::default();
        for i in 0..300u64 {
            h.cycle(&GcRecord {
                cycle: i as u32,
                end_ns: 10 * FINE_NS + i * (FINE_NS / 100),
                heap_live_bytes: Some(i),
                cpu: Some(crate::model::records::GcCpu {
                    sweep_term_ns: 1,
                    assist_ns: 2,
                    background_ns: 3,
                    idle_ns: 100,
                    mark_term_ns: 4,
                }),
                ..GcRecord::default()
            });
        }
        let w = h.window(13 * FINE_NS, 60);
        assert_eq!(w.cycles, 300);
        assert_eq!(w.gc_cpu_ns, Some(300 * 10));
        assert_eq!(w.heap.len(), 3);
        assert_eq!(w.heap[2].live_bytes, Some(299));
        // Out of order within a bucket: the latest cycle stays the bucket's point.
        h.cycle(&GcRecord {
            end_ns: 12 * FINE_NS + 1,
            heap_live_bytes: Some(7),
            ..GcRecord::default()
        });
        assert_eq!(h.window(13 * FINE_NS, 60).heap[2].live_bytes, Some(299));
    }
}
