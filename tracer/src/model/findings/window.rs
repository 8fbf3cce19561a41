//! The recent past the rules judge: cycles and pauses of the last windows, pruned as
//! trace time advances (bounded memory whatever the run's length).

use std::collections::VecDeque;

use super::Thresholds;
use crate::model::records::{GcRecord, StwRecord};

/// What the rules need of one completed cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CycleBrief {
    pub end_ns: u64,
    pub heap_live: Option<u64>,
    pub heap_end: Option<u64>,
    pub goroutines: Option<u64>,
    /// GC CPU of the cycle (stops × Ps, assists, background workers; not idle workers,
    /// which use otherwise idle Ps), ns.
    pub cpu_ns: Option<u64>,
    pub gomaxprocs: Option<u32>,
    /// GOMEMLIMIT in force, when one is set.
    pub memory_limit: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Window {
    pub cycles: VecDeque<CycleBrief>,
    /// (end, duration) of every stop of the world, GC or not.
    pub pauses: VecDeque<(u64, u64)>,
    /// First and latest trace time seen.
    pub first_ns: Option<u64>,
    pub now_ns: u64,
    /// GOMAXPROCS from the process record, before any cycle says.
    pub gomaxprocs: Option<u32>,
    /// Cycles seen in the whole run, for the code-level rules' GC activity.
    pub total_cycles: u64,
}

impl Window {
    pub fn gc(&mut self, g: &GcRecord) {
        self.total_cycles += 1;
        self.cycles.push_back(CycleBrief {
            end_ns: g.end_ns,
            heap_live: g.heap_live_bytes,
            heap_end: g.heap_end_bytes,
            goroutines: g.goroutines,
            cpu_ns: g.cpu.map(|c| {
                c.sweep_term_ns
                    .saturating_add(c.assist_ns)
                    .saturating_add(c.background_ns)
                    .saturating_add(c.mark_term_ns)
            }),
            gomaxprocs: g.gomaxprocs,
            memory_limit: g
                .memory_limit_bytes
                .filter(|l| *l > 0 && *l < i64::MAX)
                .map(|l| l as u64),
        });
    }

    pub fn stw(&mut self, s: &StwRecord) {
        self.pauses
            .push_back((s.start_ns.saturating_add(s.duration_ns), s.duration_ns));
    }

    /// Trace time advanced to `now`: forget what no window covers any more.
    pub fn now(&mut self, now: u64, t: &Thresholds) {
        self.first_ns.get_or_insert(now);
        self.now_ns = self.now_ns.max(now);
        let keep = |s: f64| self.now_ns.saturating_sub((s * 1e9) as u64);
        let pauses_from = keep(t.window_s);
        while self.pauses.front().is_some_and(|p| p.0 < pauses_from) {
            self.pauses.pop_front();
        }
        let cycles_from = keep(t.window_s.max(t.growth_window_s));
        while self.cycles.front().is_some_and(|c| c.end_ns < cycles_from) {
            self.cycles.pop_front();
        }
    }

    /// Seconds of trace the last `window_s` actually cover (less at the start).
    pub fn covered_s(&self, window_s: f64) -> f64 {
        let seen = self
            .first_ns
            .map_or(0.0, |f| self.now_ns.saturating_sub(f) as f64 / 1e9);
        seen.min(window_s)
    }

    /// The cycles that ended in the last `window_s` seconds.
    pub fn cycles_in(&self, window_s: f64) -> impl Iterator<Item = &CycleBrief> {
        let from = self.now_ns.saturating_sub((window_s * 1e9) as u64);
        self.cycles.iter().filter(move |c| c.end_ns >= from)
    }

    pub fn latest_gomaxprocs(&self) -> Option<u32> {
        self.cycles
            .iter()
            .rev()
            .find_map(|c| c.gomaxprocs)
            .or(self.gomaxprocs)
    }

    /// GC CPU over the last `window_s`, percent of GOMAXPROCS × wall time.
    pub fn gc_cpu_percent(&self, window_s: f64) -> Option<f64> {
        let procs = f64::from(self.latest_gomaxprocs().filter(|p| *p > 0)?);
        let covered = self.covered_s(window_s);
        if covered <= 0.0 {
            return None;
        }
        let mut any = false;
        let mut ns = 0u64;
        for c in self.cycles_in(window_s) {
            if let Some(n) = c.cpu_ns {
                any = true;
                ns = ns.saturating_add(n);
            }
        }
        any.then(|| ns as f64 / (covered * 1e9 * procs) * 100.0)
    }

    /// Cycles a second over the last `window_s`.
    pub fn cycles_per_s(&self, window_s: f64) -> Option<f64> {
        let covered = self.covered_s(window_s);
        (covered > 0.0).then(|| self.cycles_in(window_s).count() as f64 / covered)
    }
}

impl Window {
    /// GC CPU over the window before the last one (`2 × window_s` ago to `window_s`
    /// ago), to tell a climbing share from a steady one. None before that much is seen.
    pub fn gc_cpu_percent_between(&self, window_s: f64) -> Option<f64> {
        let procs = f64::from(self.latest_gomaxprocs().filter(|p| *p > 0)?);
        let w = (window_s * 1e9) as u64;
        let (from, to) = (
            self.now_ns.saturating_sub(2 * w),
            self.now_ns.saturating_sub(w),
        );
        if self.first_ns? > to {
            return None;
        }
        let span = to.saturating_sub(from.max(self.first_ns?));
        if span == 0 {
            return None;
        }
        let ns: u64 = self
            .cycles
            .iter()
            .filter(|c| (from..to).contains(&c.end_ns))
            .filter_map(|c| c.cpu_ns)
            .sum();
        Some(ns as f64 / (span as f64 * procs) * 100.0)
    }
}
