//! How one process's records update the metric families: each record kind sets its
//! series, and remembers which label values it used so `series.rs` can remove them once
//! the process has ended.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

use super::series::{
    note, CgroupLabels, FindingLabels, InfoLabels, Known, PhaseLabels, StwLabels, Target,
    TriggerLabels,
};
use super::GcMetrics;
use crate::decode::events::Trigger;
use crate::model::records::{AllocRecord, GcRecord, ProcessInfo, Record, StwRecord, Summary};

impl GcMetrics {
    pub(super) fn target(&self, pid: u32) -> Target {
        match self.procs.get(&pid) {
            Some(k) => k.target.clone(),
            None => Target {
                pid,
                ..Target::default()
            },
        }
    }

    /// The book of `pid`, made when a record comes before its `process` record.
    pub(super) fn known(&mut self, pid: u32) -> &mut Known {
        self.procs.entry(pid).or_insert_with(|| {
            Known::new(Target {
                pid,
                ..Target::default()
            })
        })
    }

    /// Update the metrics of process `pid` from one of its records.
    pub fn record(&mut self, pid: u32, rec: &Record) {
        match rec {
            Record::Process(p) => self.process(pid, p),
            Record::Gc(g) => self.gc(pid, g),
            Record::Stw(s) => self.stw(pid, s),
            Record::Alloc(a) => self.alloc(pid, a),
            Record::Summary(s) => self.summary(pid, s),
            Record::Settings(s) => self.settings(pid, s.gogc, s.memory_limit_bytes, s.gomaxprocs),
            Record::Finding(f) => {
                let labels = FindingLabels {
                    target: self.target(pid),
                    id: f.id.as_str(),
                    severity: f.severity.as_str(),
                };
                let on = i64::from(f.state == crate::model::records::FindingState::Start);
                self.findings.get_or_create(&labels).set(on);
                let used = (labels.id, labels.severity);
                let k = self.known(pid);
                if !k.findings.contains(&used) {
                    k.findings.push(used);
                }
            }
            // Top types and sites are a profile, not a time series: the JSON and the TUI
            // show them.
            Record::AllocTypes(_) | Record::AllocSites(_) => {}
        }
    }

    pub(super) fn process(&mut self, pid: u32, p: &ProcessInfo) {
        // A pid reused by a new process: the old one's series go first.
        if self.procs.get(&pid).is_some_and(|k| k.ended.is_some()) {
            self.remove(pid);
        }
        self.expire(Instant::now(), false);
        let target = Target {
            pid,
            exe: p.exe.clone(),
            labels: CgroupLabels(std::sync::Arc::new(p.labels.clone())),
        };
        let info = InfoLabels {
            target: target.clone(),
            go_version: p.go_version.clone(),
            arch: p.arch.clone(),
        };
        self.info.get_or_create(&info).set(1);
        let k = self.known(pid);
        k.target = target.clone();
        k.info = Some(info);
        self.settings(pid, p.gogc, p.memory_limit_bytes, p.gomaxprocs);
    }

    /// GOGC, GOMEMLIMIT and GOMAXPROCS as last read (at attach, then as they change).
    pub(super) fn settings(
        &mut self,
        pid: u32,
        gogc: Option<i32>,
        memory_limit: Option<i64>,
        gomaxprocs: Option<u32>,
    ) {
        let target = self.target(pid);
        if let Some(n) = gomaxprocs {
            self.gomaxprocs.get_or_create(&target).set(i64::from(n));
        }
        if let Some(gogc) = gogc {
            self.gogc.get_or_create(&target).set(i64::from(gogc));
        }
        if let Some(limit) = memory_limit {
            self.memory_limit.get_or_create(&target).set(limit);
        }
    }

    pub(super) fn gc(&mut self, pid: u32, g: &GcRecord) {
        let t = self.target(pid);
        raise(&self.cycles_runtime.get_or_create(&t), u64::from(g.cycle));
        let trigger = g.trigger.map_or("unknown", Trigger::as_str);
        note(&mut self.known(pid).triggers, trigger);
        self.cycles_traced
            .get_or_create(&TriggerLabels {
                target: t.clone(),
                trigger,
            })
            .inc();
        self.cycle_pause.get_or_create(&t).observe(secs(g.pause_ns));
        for (phase, ns) in [
            ("sweep_termination", g.sweep_term_ns),
            ("mark", g.mark_ns),
            ("mark_termination", g.mark_term_ns),
        ] {
            self.phases
                .get_or_create(&PhaseLabels {
                    target: t.clone(),
                    phase,
                })
                .observe(secs(ns));
        }
        for (family, value) in [
            (&self.heap_live, g.heap_live_bytes),
            (&self.heap_start, g.heap_start_bytes),
            (&self.heap_end, g.heap_end_bytes),
            (&self.heap_goal, g.heap_goal_bytes),
            (&self.gomaxprocs, g.gomaxprocs.map(u64::from)),
            (&self.goroutines, g.goroutines),
        ] {
            if let Some(v) = value {
                family.get_or_create(&t).set(gauge_value(v));
            }
        }
        if let Some(gogc) = g.gogc {
            self.gogc.get_or_create(&t).set(i64::from(gogc));
        }
        if let Some(limit) = g.memory_limit_bytes {
            self.memory_limit.get_or_create(&t).set(limit);
        }
        if let Some(pct) = g.cpu_percent {
            self.gc_cpu_fraction
                .get_or_create(&t)
                .set(f64::from(pct) / 100.0);
        }
        if let Some(cpu) = g.cpu {
            for (phase, ns) in cpu.by_phase() {
                self.gc_cpu_seconds
                    .get_or_create(&PhaseLabels {
                        target: t.clone(),
                        phase,
                    })
                    .inc_by(secs(ns));
            }
        }
    }

    pub(super) fn stw(&mut self, pid: u32, s: &StwRecord) {
        note(&mut self.known(pid).reasons, s.reason.as_str());
        let family = if s.reason.is_gc() {
            &self.pauses_gc
        } else {
            &self.pauses_other
        };
        family
            .get_or_create(&StwLabels {
                target: self.target(pid),
                reason: s.reason.as_str(),
            })
            .observe(secs(s.duration_ns));
    }

    pub(super) fn alloc(&mut self, pid: u32, a: &AllocRecord) {
        let t = self.target(pid);
        raise(&self.alloc_bytes.get_or_create(&t), a.total_bytes);
        if let Some(rate) = a.rate_bytes_per_s {
            self.alloc_rate.get_or_create(&t).set(gauge_value(rate));
        }
        if let Some(objects) = a.alloc_objects {
            raise(&self.alloc_objects.get_or_create(&t), objects);
        }
    }

    /// The last record of a process: its series are kept for one more scrape.
    pub(super) fn summary(&mut self, pid: u32, s: &Summary) {
        self.set_lost_events(pid, s.lost_events);
        let now = Instant::now();
        let k = self.known(pid);
        k.ended = Some(now);
        k.served_after_end = false;
        self.expire(now, false);
    }

    /// Events lost so far for `pid` (the live count is the kernel's, which the session
    /// reads every tick; the summary adds the decoder's). Never goes down. Ignored once
    /// the process has ended, so a late count cannot bring back its removed series.
    pub fn set_lost_events(&mut self, pid: u32, lost: u64) {
        if self.procs.get(&pid).is_some_and(|k| k.ended.is_some()) {
            return;
        }
        raise(&self.lost_events.get_or_create(&self.target(pid)), lost);
    }
}

/// Sets a counter that mirrors an absolute count (the runtime's cycle number, its
/// allocation counter) to `to`; a counter only goes up, so a smaller value is ignored.
fn raise(counter: &Counter, to: u64) {
    let now = counter.get();
    if to > now {
        counter.inc_by(to - now);
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}
