//! One process's traced data as the terminal UI keeps it, and the figures derived from
//! it ([`Data`]). Pure: records in, numbers out; drawing and keys live elsewhere.
//!
//! A trace can run for days, so nothing here grows with it: the tables' recent records
//! live in rings of fixed capacity, the time windows read per-second aggregates
//! ([`super::history`]), and figures "since attach" are running aggregates updated once
//! per record.

use std::collections::{BTreeMap, VecDeque};

use super::history::{HeapPoint, History, Window};
use crate::binary::StwReason;
use crate::model::histogram::PauseHistogram;
use crate::model::records::{
    AllocRecord, AllocSitesRecord, AllocTypesRecord, GcRecord, ProcessInfo, Record, SettingsRecord,
    StwRecord, Summary,
};

/// Cycles kept for the Cycles view's table (a busy program does a few per second:
/// minutes of history; the heap chart reads [`History`]).
pub const GC_HISTORY: usize = 2048;
/// Stop-the-world pauses kept for the Pauses view's table and the timeline's bars (the
/// window percentiles read [`History`]).
pub const STW_HISTORY: usize = 8192;
/// Allocation-rate samples kept (one per second: over an hour).
pub const ALLOC_HISTORY: usize = 4096;

/// Why the run ended, shown until the user quits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    TargetExited(Option<i32>),
    Detached,
}

/// A fixed-capacity FIFO: pushing onto a full one drops the oldest entry.
#[derive(Clone, Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Ring<T> {
        Ring {
            items: VecDeque::with_capacity(cap.min(256)),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, v: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(v);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// `i`-th newest (0: the newest).
    pub fn nth_newest(&self, i: usize) -> Option<&T> {
        self.items.iter().rev().nth(i)
    }
}

/// Upper bounds (exclusive, ns) of the Pauses view's latency histogram bars; the last
/// bar holds everything longer.
pub const LATENCY_BARS_NS: [u64; 13] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];

/// The traced data: what a frozen display keeps a copy of.
#[derive(Clone, Debug)]
pub struct Data {
    pub process: Option<ProcessInfo>,
    /// The settings as last read (a `settings` record), fresher than the last cycle's.
    pub settings: Option<SettingsRecord>,
    pub gcs: Ring<GcRecord>,
    pub stws: Ring<StwRecord>,
    pub allocs: Ring<AllocRecord>,
    pub alloc_types: Option<AllocTypesRecord>,
    pub alloc_sites: Option<AllocSitesRecord>,
    pub summary: Option<Summary>,
    /// Every pause since attach, in the summary's own histogram (so the TUI's p99 since
    /// attach is the summary's p99).
    pub pauses: PauseHistogram,
    /// Per-second aggregates behind the Overview's time windows.
    pub history: History,
    /// Counts per bar of [`LATENCY_BARS_NS`] (+1 for the overflow bar), since attach.
    pub latency_bars: [u64; LATENCY_BARS_NS.len() + 1],
    pub gc_stops: u64,
    pub non_gc_stops: u64,
    /// Stops per reason since attach (a dozen reasons at most).
    pub reasons: BTreeMap<StwReason, u64>,
    pub cycles: u64,
    /// First and latest CLOCK_MONOTONIC time seen (records or ticks).
    pub first_ns: Option<u64>,
    pub now_ns: u64,
    pub lost: u64,
    pub ended: Option<Ended>,
    /// Findings of the rule engine, as their records arrived.
    pub findings: super::findings::Board,
}

impl Default for Data {
    fn default() -> Data {
        Data {
            process: None,
            settings: None,
            gcs: Ring::new(GC_HISTORY),
            stws: Ring::new(STW_HISTORY),
            allocs: Ring::new(ALLOC_HISTORY),
            alloc_types: None,
            alloc_sites: None,
            summary: None,
            pauses: PauseHistogram::default(),
            history: History::default(),
            latency_bars: [0; LATENCY_BARS_NS.len() + 1],
            gc_stops: 0,
            non_gc_stops: 0,
            reasons: BTreeMap::new(),
            cycles: 0,
            first_ns: None,
            now_ns: 0,
            lost: 0,
            ended: None,
            findings: Default::default(),
        }
    }
}

impl Data {
    pub(super) fn saw_time(&mut self, ns: u64) {
        if ns == 0 {
            return;
        }
        if self.first_ns.is_none() {
            self.first_ns = Some(ns);
        }
        self.now_ns = self.now_ns.max(ns);
    }

    pub(super) fn record(&mut self, rec: Record) {
        match rec {
            Record::Process(p) => self.process = Some(p),
            Record::Settings(s) => {
                self.saw_time(s.ts_ns);
                self.settings = Some(s);
            }
            Record::Gc(g) => {
                self.saw_time(g.end_ns);
                self.cycles += 1;
                self.history.cycle(&g);
                self.gcs.push(g);
            }
            Record::Stw(s) => {
                self.saw_time(s.start_ns.saturating_add(s.duration_ns));
                self.pauses.record(s.duration_ns);
                self.history.stop(&s);
                let bar = LATENCY_BARS_NS
                    .iter()
                    .position(|&b| s.duration_ns < b)
                    .unwrap_or(LATENCY_BARS_NS.len());
                self.latency_bars[bar] += 1;
                *self.reasons.entry(s.reason).or_insert(0) += 1;
                if s.reason.is_gc() {
                    self.gc_stops += 1;
                } else {
                    self.non_gc_stops += 1;
                }
                self.stws.push(s);
            }
            Record::Alloc(a) => {
                self.saw_time(a.ts_ns);
                self.allocs.push(a);
            }
            Record::AllocTypes(t) => {
                self.saw_time(t.ts_ns);
                self.alloc_types = Some(t);
            }
            Record::AllocSites(s) => {
                self.saw_time(s.ts_ns);
                self.alloc_sites = Some(s);
            }
            Record::Finding(f) => {
                self.saw_time(f.ts_ns);
                self.findings.record(f);
            }
            Record::Summary(s) => {
                self.lost = self.lost.max(s.lost_events);
                self.summary = Some(s);
            }
        }
    }

    /// Start of the visible window.
    pub fn window_start(&self, window_s: u64) -> u64 {
        self.now_ns
            .saturating_sub(window_s.saturating_mul(1_000_000_000))
    }

    /// Seconds since the first event seen.
    pub fn attached_s(&self) -> f64 {
        match self.first_ns {
            Some(f) => self.now_ns.saturating_sub(f) as f64 / 1e9,
            None => 0.0,
        }
    }

    /// The latest cycle, for the settings in force (GOGC, GOMEMLIMIT, GOMAXPROCS).
    pub fn latest_gc(&self) -> Option<&GcRecord> {
        self.gcs.last()
    }

    /// GOGC, GOMEMLIMIT and GOMAXPROCS in force, freshest first: the last `settings`
    /// record (they are read each second and at every stop), else the last cycle's, else
    /// what was read at attach.
    pub fn current_settings(&self) -> (Option<i32>, Option<i64>, Option<u32>) {
        let s = self.settings.as_ref();
        let g = self.latest_gc();
        let p = self.process.as_ref();
        (
            s.and_then(|s| s.gogc)
                .or(g.and_then(|g| g.gogc))
                .or(p.and_then(|p| p.gogc)),
            s.and_then(|s| s.memory_limit_bytes)
                .or(g.and_then(|g| g.memory_limit_bytes))
                .or(p.and_then(|p| p.memory_limit_bytes)),
            s.and_then(|s| s.gomaxprocs)
                .or(g.and_then(|g| g.gomaxprocs))
                .or(p.and_then(|p| p.gomaxprocs)),
        )
    }

    /// Stops in the window, oldest first, as far back as [`STW_HISTORY`] reaches (the
    /// timeline's bars; figures over the window come from [`Data::window`]).
    pub fn window_stws(&self, window_s: u64) -> impl DoubleEndedIterator<Item = &StwRecord> {
        let start = self.window_start(window_s);
        self.stws
            .iter()
            .filter(move |s| s.start_ns.saturating_add(s.duration_ns) >= start)
    }

    /// The figures of the window: merged once per call from per-second aggregates, so
    /// the cost does not grow with the number of stops.
    pub fn window(&self, window_s: u64) -> Window {
        self.history.window(self.now_ns, window_s)
    }

    /// The length of the window actually covered by the trace, in seconds (a window
    /// longer than the time attached is only as long as the time attached).
    pub fn covered_s(&self, window_s: u64) -> f64 {
        (window_s as f64).min(self.attached_s())
    }

    /// p50, p90, p99, max of the pauses in the window.
    pub fn window_percentiles(&self, window_s: u64) -> Option<[u64; 4]> {
        self.window(window_s).percentiles()
    }

    /// p50, p90, p99, max since attach.
    pub fn total_percentiles(&self) -> Option<[u64; 4]> {
        self.pauses.p50_p90_p99_max()
    }

    /// The runtime's own GC CPU share (since the program started; gctrace's `P%`).
    pub fn gc_cpu_percent(&self) -> Option<u32> {
        self.gcs.iter().rev().find_map(|g| g.cpu_percent)
    }

    /// GC CPU share over window `w` (from [`Data::window`]): the cycles' CPU time
    /// (stops × Ps, assists, background workers; idle workers only use otherwise idle
    /// Ps, so not them) over the window's CPU capacity.
    pub fn window_gc_cpu_percent(&self, w: &Window, window_s: u64) -> Option<f64> {
        let procs = self
            .latest_gc()
            .and_then(|g| g.gomaxprocs)
            .or(self.process.as_ref().and_then(|p| p.gomaxprocs))?;
        let covered = self.covered_s(window_s);
        if covered <= 0.0 || procs == 0 {
            return None;
        }
        let ns = w.gc_cpu_ns?;
        Some(ns as f64 / (covered * 1e9 * f64::from(procs)) * 100.0)
    }

    /// The heap chart's points over the window, oldest first: every cycle as far back as
    /// the [`GC_HISTORY`] ring reaches, and before that the last cycle of each bucket of
    /// the history, so the chart has each cycle's shape and still spans the window at
    /// any cycle rate.
    pub fn heap_points(&self, w: &Window, window_s: u64) -> Vec<HeapPoint> {
        let start = self.window_start(window_s);
        let ring: Vec<HeapPoint> = self
            .gcs
            .iter()
            .filter(|g| g.end_ns >= start)
            .map(HeapPoint::of)
            .collect();
        // The ring reaches back past the window: it has every cycle of it.
        let reaches =
            self.gcs.len() < GC_HISTORY || self.gcs.iter().next().is_some_and(|g| g.end_ns < start);
        if reaches {
            return ring;
        }
        let oldest = ring.first().map_or(u64::MAX, |p| p.end_ns);
        let mut points: Vec<HeapPoint> = w
            .heap
            .iter()
            .filter(|p| p.end_ns < oldest)
            .copied()
            .collect();
        points.extend(ring);
        points
    }

    /// Cycles per second over window `w` (from [`Data::window`]).
    pub fn cycles_per_s(&self, w: &Window, window_s: u64) -> Option<f64> {
        let covered = self.covered_s(window_s);
        (covered > 0.0).then(|| w.cycles as f64 / covered)
    }

    pub fn latest_alloc_rate(&self) -> Option<u64> {
        self.allocs.iter().rev().find_map(|a| a.rate_bytes_per_s)
    }
}
