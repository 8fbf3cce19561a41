//! Findings: a pure rule engine over the model's records that turns numbers into a
//! diagnosis against the Go GC tuning playbook — what is wrong, the evidence, the
//! remedy, and for allocation causes the user's own lines of code.
//!
//! Like the model it has no I/O and no clock: it sees the same records live and in a
//! replay, and says the same. Each rule is judged once a second of trace time (and at
//! each allocation-sites snapshot for the code-level ones); a finding starts only after
//! its condition held at [`Thresholds::sustain`] judgements in a row and ends after it
//! failed as many times in a row (hysteresis: one slow cycle is not a leak). Starts and
//! ends come out as [`Record::Finding`] records. Vocabulary and rules: docs/findings.md.

mod rules;
mod sites;
mod window;

use std::collections::BTreeMap;

use crate::model::records::{FindingId, FindingRecord, FindingState, Record, Severity};
use window::Window;

/// The playbook's targets (flags of the same names) and how long evidence must last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Pause p99 target (`--slo-pause`, default 1 ms).
    pub pause_p99_ns: u64,
    /// Pause p50 target (`--slo-pause-p50`, default 0.5 ms).
    pub pause_p50_ns: u64,
    /// GC CPU share target, percent of GOMAXPROCS (`--slo-gc-cpu`, default 5).
    pub gc_cpu_percent: f64,
    /// Most GC cycles a second (`--max-gc-rate`, default 50).
    pub cycles_per_s: f64,
    /// Window of the pause, CPU and frequency rules, seconds.
    pub window_s: f64,
    /// Window of the growth rules (heap, goroutines), seconds.
    pub growth_window_s: f64,
    /// Judgements in a row a condition must hold to start a finding (and fail to end it).
    pub sustain: u32,
    /// Share of allocated bytes, percent, from which an allocation cause is a finding.
    pub alloc_share_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            pause_p99_ns: 1_000_000,
            pause_p50_ns: 500_000,
            gc_cpu_percent: 5.0,
            cycles_per_s: 50.0,
            window_s: 10.0,
            growth_window_s: 30.0,
            sustain: 3,
            alloc_share_percent: 10.0,
        }
    }
}

/// One rule's verdict at a judgement: the finding it would report, or nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub id: FindingId,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<(&'static str, f64)>,
    pub sites: Vec<crate::decode::events::Frame>,
}

/// A rule's hysteresis state.
#[derive(Clone, Debug, Default)]
struct Track {
    /// Judgements in a row that agreed with a change of state.
    streak: u32,
    /// The finding as started (its latest evidence), while active.
    active: Option<Verdict>,
}

/// The rule engine of one process. Feed it every record ([`Engine::observe`]); it
/// appends the finding records that start or end.
#[derive(Debug)]
pub struct Engine {
    t: Thresholds,
    window: Window,
    /// CPUs the target's cgroup allows (`cpu.max`), when known.
    cpu_limit_cores: Option<f64>,
    next_judgement_ns: Option<u64>,
    tracks: BTreeMap<FindingId, Track>,
    /// Every finding started in this run (for reports), in order, with its end when seen.
    history: Vec<(FindingRecord, Option<u64>)>,
    /// Bytes allocated while traced, per the latest allocation-types snapshot.
    alloc_total_bytes: u64,
}

/// Allocation-site snapshots in a row (5 s apart) that must agree: the code-level
/// rules' hysteresis.
const SITES_SUSTAIN: u32 = 2;

/// Trace time between judgements of the process-level rules.
const JUDGE_EVERY_NS: u64 = 1_000_000_000;

impl Engine {
    pub fn new(t: Thresholds) -> Engine {
        Engine {
            t,
            window: Window::default(),
            cpu_limit_cores: None,
            next_judgement_ns: None,
            tracks: BTreeMap::new(),
            history: Vec::new(),
            alloc_total_bytes: 0,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.t
    }

    /// The CPUs the target may use by its cgroup's `cpu.max` (quota / period), read by
    /// whoever attached to it; `None` when unlimited or unknown.
    pub fn set_cpu_limit(&mut self, cores: Option<f64>) {
        self.cpu_limit_cores = cores;
    }

    /// Findings active now.
    pub fn active(&self) -> impl Iterator<Item = &Verdict> {
        self.tracks.values().filter_map(|t| t.active.as_ref())
    }

    /// Every finding started so far, with when it ended (None: still active).
    pub fn history(&self) -> &[(FindingRecord, Option<u64>)] {
        &self.history
    }

    /// One record of the process; appends the findings that start or end because of it.
    pub fn observe(&mut self, rec: &Record, out: &mut Vec<Record>) {
        let now = match rec {
            Record::Gc(g) => {
                self.window.gc(g);
                Some(g.end_ns)
            }
            Record::Stw(s) => {
                self.window.stw(s);
                Some(s.start_ns.saturating_add(s.duration_ns))
            }
            Record::Alloc(a) => Some(a.ts_ns),
            Record::Process(p) => {
                self.window.gomaxprocs = p.gomaxprocs;
                None
            }
            // GOMAXPROCS as the runtime has it now (it may change while traced).
            Record::Settings(s) => {
                self.window.gomaxprocs = s.gomaxprocs.or(self.window.gomaxprocs);
                Some(s.ts_ns)
            }
            Record::AllocTypes(a) => {
                self.alloc_total_bytes = a.bytes;
                Some(a.ts_ns)
            }
            Record::AllocSites(s) => {
                self.window.now(s.ts_ns, &self.t);
                let verdicts = sites::judge(
                    &s.sites,
                    self.alloc_total_bytes,
                    &self.t,
                    &self.window,
                    s.ts_ns,
                );
                self.apply(&FindingId::ALL[7..], verdicts, s.ts_ns, SITES_SUSTAIN, out);
                Some(s.ts_ns)
            }
            Record::Finding(_) | Record::Summary(_) => None,
        };
        let Some(now) = now else { return };
        self.window.now(now, &self.t);
        let due = *self.next_judgement_ns.get_or_insert(now + JUDGE_EVERY_NS);
        if now >= due {
            self.next_judgement_ns = Some(now + JUDGE_EVERY_NS);
            let verdicts = rules::judge(&self.window, &self.t, self.cpu_limit_cores);
            let sustain = self.t.sustain;
            self.apply(&FindingId::ALL[..7], verdicts, now, sustain, out);
        }
    }

    /// Hysteresis over the verdicts of the rules `ids` (absent from `verdicts`: the
    /// condition does not hold).
    fn apply(
        &mut self,
        ids: &[FindingId],
        verdicts: Vec<Verdict>,
        now: u64,
        sustain: u32,
        out: &mut Vec<Record>,
    ) {
        let sustain = sustain.max(1);
        for &id in ids {
            let verdict = verdicts.iter().find(|v| v.id == id).cloned();
            let track = self.tracks.entry(id).or_default();
            match (&mut track.active, verdict) {
                (Some(active), Some(v)) => {
                    track.streak = 0;
                    *active = v;
                }
                (None, None) => track.streak = 0,
                (None, Some(v)) => {
                    track.streak += 1;
                    if track.streak >= sustain {
                        track.streak = 0;
                        let rec = record(&v, FindingState::Start, now);
                        self.history.push((rec.clone(), None));
                        out.push(Record::Finding(rec));
                        track.active = Some(v);
                    }
                }
                (Some(_), None) => {
                    track.streak += 1;
                    if track.streak >= sustain {
                        track.streak = 0;
                        if let Some(v) = track.active.take() {
                            out.push(Record::Finding(record(&v, FindingState::End, now)));
                            if let Some(h) = self.history.iter_mut().rev().find(|h| h.0.id == id) {
                                h.1 = Some(now);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn record(v: &Verdict, state: FindingState, ts_ns: u64) -> FindingRecord {
    FindingRecord {
        ts_ns,
        state,
        id: v.id,
        severity: v.severity,
        summary: v.summary.clone(),
        evidence: v.evidence.clone(),
        remedy: remedy(v.id),
        sites: v.sites.clone(),
    }
}

/// The playbook's remedy for each finding, in one or two lines.
pub fn remedy(id: FindingId) -> &'static str {
    match id {
        FindingId::GcThrashing => {
            "Allocate less on the hot path (reuse buffers, sync.Pool), or give the GC more \
             room: raise GOGC, or set GOMEMLIMIT with GOGC=off if memory allows."
        }
        FindingId::PauseSlo => {
            "Look at the stops' reasons: non-GC stops (ReadMemStats, profiles, traces) are \
             the callers'; GC pauses grow with goroutine count and GOMAXPROCS contention."
        }
        FindingId::GcFrequency => {
            "Cycles come faster than the playbook's 50/s: raise GOGC (or GOMEMLIMIT) so \
             the heap goal is larger than the 4 MiB floor, and allocate less."
        }
        FindingId::HeapGrowth => {
            "The live heap grows cycle after cycle: look for a leak (caches without bounds, \
             retained slices); compare two heap profiles taken minutes apart."
        }
        FindingId::GoroutineGrowth => {
            "Goroutines keep growing: a goroutine leak (blocked sends/receives, missing \
             context cancellation); take a goroutine profile to see where they wait."
        }
        FindingId::MemoryLimitSpiral => {
            "The heap is near GOMEMLIMIT and GC CPU climbs: the limit is too low for the \
             live heap; raise it or reduce the live heap before the GC CPU limiter hits 50%."
        }
        FindingId::GomaxprocsOverCpuLimit => {
            "GOMAXPROCS exceeds the cgroup's CPU limit, so the GC's 25% and the Ps get \
             throttled: set GOMAXPROCS to the limit (Go 1.25+ does it by default)."
        }
        FindingId::AllocStringConcat => {
            "Strings built by + in a loop copy the whole string each time: use a \
             strings.Builder (Grow it first) or append to a reused []byte."
        }
        FindingId::AllocSliceGrowth => {
            "append without capacity reallocates and copies as the slice grows: make the \
             slice with its final (or estimated) capacity, or reuse it ([:0])."
        }
        FindingId::AllocInterfaceBoxing => {
            "Non-pointer values stored in interfaces are boxed on the heap: keep them \
             typed (generics, concrete types) on the hot path."
        }
        FindingId::AllocMapGrowth => {
            "Maps grown by insertion reallocate their tables: give make(map[K]V, n) a size \
             hint, or clear() and reuse the map."
        }
    }
}

#[cfg(test)]
mod tests;
