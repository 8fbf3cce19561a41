//! The label sets of the series, and which series each traced process has, so that a
//! process's series can be removed once it has ended.
//!
//! Why removal: with `--exe` or a long-lived agent, processes come and go; series of ended
//! ones would otherwise stay forever (a scrape that grows without bound, and dashboards
//! showing the dead as alive at their last value). A process's series stay until the
//! first scrape after its `summary` record has served them (so its last cycles are
//! collected), and go at the next one; when nobody scrapes, they go [`LINGER`] after the
//! end, so memory stays bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use super::Exposition;
use crate::model::records::Labels;

/// How long the series of an ended process are kept when no scrape comes.
pub const LINGER: Duration = Duration::from_secs(300);

/// The process a series describes.
#[derive(
    Clone, Debug, Default, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet,
)]
pub(super) struct Target {
    pub pid: u32,
    /// The executable's path, as the `process` record has it; empty until that record.
    pub exe: String,
    #[prometheus(flatten)]
    pub labels: CgroupLabels,
}

/// The process's cgroup labels (container, pod, systemd unit), only those known: a label
/// with no value is no label in Prometheus. Shared, since every series of the process
/// carries them and a label set is built for every record.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub(super) struct CgroupLabels(pub Arc<Labels>);

impl EncodeLabelSet for CgroupLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for label in self.0.known() {
            label.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct InfoLabels {
    #[prometheus(flatten)]
    pub target: Target,
    pub go_version: String,
    pub arch: String,
}

/// A stop of the world, by the runtime's own reason (`read mem stats`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct StwLabels {
    #[prometheus(flatten)]
    pub target: Target,
    pub reason: &'static str,
}

/// A GC phase, or a kind of GC CPU time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct PhaseLabels {
    #[prometheus(flatten)]
    pub target: Target,
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct TriggerLabels {
    #[prometheus(flatten)]
    pub target: Target,
    pub trigger: &'static str,
}

/// Every `phase` label value: the GC phases and the kinds of GC CPU time.
pub(super) const PHASES: [&str; 6] = [
    "sweep_termination",
    "mark",
    "mark_termination",
    "assist",
    "background",
    "idle",
];

/// A finding of the rule engine (docs/findings.md), by id and severity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FindingLabels {
    #[prometheus(flatten)]
    pub target: Target,
    pub id: &'static str,
    pub severity: &'static str,
}

/// What is known of one traced process, and which label values its series used.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub target: Target,
    pub info: Option<InfoLabels>,
    pub reasons: Vec<&'static str>,
    pub triggers: Vec<&'static str>,
    /// Findings (id, severity) it has had.
    pub findings: Vec<(&'static str, &'static str)>,
    /// When its `summary` came.
    pub ended: Option<Instant>,
    /// A scrape has served its series since it ended.
    pub served_after_end: bool,
}

impl Known {
    pub fn new(target: Target) -> Known {
        Known {
            target,
            ..Known::default()
        }
    }

    /// Whether its series are to go now: served once after the end, or ended long ago.
    pub fn expired(&self, now: Instant, scraping: bool) -> bool {
        match self.ended {
            None => false,
            Some(at) => (scraping && self.served_after_end) || now.duration_since(at) >= LINGER,
        }
    }
}

/// Removing the series of ended processes.
impl super::GcMetrics {
    /// Processes traced and not yet removed (ended ones included until they go).
    #[cfg(test)]
    pub fn processes(&self) -> usize {
        self.procs.len()
    }

    /// Remove the series of ended processes that are due ([`Known::expired`]).
    pub(super) fn expire(&mut self, now: Instant, scraping: bool) {
        let due: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, k)| k.expired(now, scraping))
            .map(|(&pid, _)| pid)
            .collect();
        for pid in due {
            self.remove(pid);
        }
    }

    /// Remove every series of `pid`.
    pub(super) fn remove(&mut self, pid: u32) {
        let Some(k) = self.procs.remove(&pid) else {
            return;
        };
        let t = &k.target;
        if let Some(info) = &k.info {
            self.info.remove(info);
        }
        for f in [&self.cycles_runtime, &self.alloc_bytes, &self.alloc_objects] {
            f.remove(t);
        }
        self.lost_events.remove(t);
        for f in [
            &self.heap_live,
            &self.heap_start,
            &self.heap_end,
            &self.heap_goal,
            &self.gomaxprocs,
            &self.gogc,
            &self.memory_limit,
            &self.alloc_rate,
            &self.goroutines,
        ] {
            f.remove(t);
        }
        for &(id, severity) in &k.findings {
            self.findings.remove(&FindingLabels {
                target: t.clone(),
                id,
                severity,
            });
        }
        self.gc_cpu_fraction.remove(t);
        self.cycle_pause.remove(t);
        for &reason in &k.reasons {
            let l = StwLabels {
                target: t.clone(),
                reason,
            };
            self.pauses_gc.remove(&l);
            self.pauses_other.remove(&l);
        }
        for &trigger in &k.triggers {
            self.cycles_traced.remove(&TriggerLabels {
                target: t.clone(),
                trigger,
            });
        }
        for phase in PHASES {
            let l = PhaseLabels {
                target: t.clone(),
                phase,
            };
            self.phases.remove(&l);
            self.gc_cpu_seconds.remove(&l);
        }
    }

    /// What a scrape gets: first the processes whose end an earlier scrape has served
    /// go, then the registry is encoded, and the ended processes it still showed are
    /// marked served.
    pub fn scrape(&mut self, format: Exposition) -> Result<String, std::fmt::Error> {
        self.expire(Instant::now(), true);
        let out = self.encode(format)?;
        for k in self.procs.values_mut() {
            if k.ended.is_some() {
                k.served_after_end = true;
            }
        }
        Ok(out)
    }
}

/// Adds `v` to `list` unless it is there (a handful of values per process).
pub(super) fn note(list: &mut Vec<&'static str>, v: &'static str) {
    if !list.contains(&v) {
        list.push(v);
    }
}

#[cfg(test)]
mod tests;
