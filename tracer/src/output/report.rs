//! `gctrace-bpf report`: a postmortem summary of a recording — pause percentiles, the
//! worst pauses and their reasons, GC CPU, allocation rate, SLO breaches, the target's
//! settings. Figures come from replaying the recording through the model, so they are
//! the ones the live run reported (its summary record).

use crate::units::{mib_unit, ms_unit};
use std::fmt::Write as _;

use serde::Serialize;

use crate::decode::events::Frame;
use crate::model::records::{FindingState, GcRecord, Record, StwRecord, Summary};
use crate::model::whatif::{Inputs, Prediction, WhatIf};

/// How many of the longest pauses are listed.
const WORST: usize = 10;

#[derive(Debug, Serialize)]
pub struct Report {
    pub pid: u32,
    pub exe: String,
    pub go_version: String,
    pub gogc: Option<i32>,
    pub memory_limit_bytes: Option<i64>,
    pub gomaxprocs: Option<u32>,
    /// First to last event, seconds.
    pub duration_s: f64,
    /// CLOCK_MONOTONIC time of the first event (findings' times are relative to it).
    pub first_ns: u64,
    pub cycles: u64,
    pub stop_the_world_pauses: usize,
    pub pause_p50_ns: Option<u64>,
    pub pause_p99_ns: Option<u64>,
    pub pause_max_ns: Option<u64>,
    pub worst_pauses: Vec<Pause>,
    /// gctrace's P% at the last cycle: GC's share of CPU since the program started.
    pub gc_cpu_percent: Option<u32>,
    /// Average over the recording.
    pub alloc_rate_bytes_per_s: Option<u64>,
    pub alloc_bytes: Option<u64>,
    pub slo_pause_ns: u64,
    pub pauses_over_slo: usize,
    pub p99_over_slo: bool,
    pub lost_events: u64,
    /// Why the recording ended early, if it did.
    pub damage: Option<String>,
    /// What the findings rule engine diagnosed (docs/findings.md), in order of start.
    pub findings: Vec<ReportFinding>,
    /// What other GOGC / GOMEMLIMIT settings would do (docs/what-if.md), and the
    /// measured steady state the predictions start from.
    pub what_if: Vec<Prediction>,
    pub what_if_inputs: Inputs,
}

/// One finding of the run: as it started, and when it ended (None: still active at the
/// end of the recording).
#[derive(Debug, Serialize)]
pub struct ReportFinding {
    pub id: &'static str,
    pub severity: &'static str,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    pub summary: String,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub remedy: &'static str,
    pub sites: Vec<Frame>,
}

#[derive(Debug, Serialize)]
pub struct Pause {
    pub start_ns: u64,
    pub duration_ns: u64,
    pub reason: &'static str,
    pub cycle: Option<u32>,
}

/// The report of `records`; `what_if` are the settings to predict (`None`: the
/// defaults, GOGC 50, 200, 400 and the memory limit when one is set).
pub fn build(
    records: &[Record],
    slo_pause_ns: u64,
    damage: Option<String>,
    what_if: Option<&[WhatIf]>,
) -> Report {
    let mut process = None;
    let mut settings = None;
    let mut gcs: Vec<&GcRecord> = Vec::new();
    let mut stws: Vec<&StwRecord> = Vec::new();
    let mut summary = Summary::default();
    let mut allocs = Vec::new();
    let mut findings: Vec<ReportFinding> = Vec::new();
    let (mut first_ts, mut last_ts) = (u64::MAX, 0u64);
    for r in records {
        let ts = match r {
            Record::Process(p) => {
                process = Some(p);
                None
            }
            Record::Gc(g) => {
                gcs.push(g);
                Some(g.end_ns)
            }
            Record::Stw(s) => {
                stws.push(s);
                Some(s.start_ns)
            }
            Record::Alloc(a) => {
                allocs.push((a.ts_ns, a.total_bytes));
                Some(a.ts_ns)
            }
            Record::Summary(s) => {
                summary = s.clone();
                None
            }
            Record::Settings(s) => {
                settings = Some(s);
                Some(s.ts_ns)
            }
            Record::Finding(f) if f.state == FindingState::Start => {
                findings.push(ReportFinding {
                    id: f.id.as_str(),
                    severity: f.severity.as_str(),
                    start_ns: f.ts_ns,
                    end_ns: None,
                    summary: f.summary.clone(),
                    evidence: f
                        .evidence
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), serde_json::json!(v)))
                        .collect(),
                    remedy: f.remedy,
                    sites: f.sites.clone(),
                });
                None
            }
            Record::Finding(f) => {
                let id = f.id.as_str();
                if let Some(open) = findings
                    .iter_mut()
                    .rev()
                    .find(|o| o.id == id && o.end_ns.is_none())
                {
                    open.end_ns = Some(f.ts_ns);
                }
                None
            }
            _ => None,
        };
        if let Some(ts) = ts {
            first_ts = first_ts.min(ts);
            last_ts = last_ts.max(ts);
        }
    }
    let mut worst: Vec<&StwRecord> = stws.clone();
    worst.sort_by_key(|s| std::cmp::Reverse(s.duration_ns));
    let last_gc = gcs.last();
    let what_if_inputs = Inputs::measure(&gcs, process.map_or("", |p| p.go_version.as_str()));
    let tried = match what_if {
        Some(w) => w.to_vec(),
        None => crate::model::whatif::default_settings(&what_if_inputs),
    };
    let what_if = crate::model::whatif::predict_all(&what_if_inputs, &tried);
    let alloc_rate = match (allocs.first(), allocs.last()) {
        (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
            Some(((b1.saturating_sub(b0)) as u128 * 1_000_000_000 / (t1 - t0) as u128) as u64)
        }
        _ => None,
    };
    Report {
        pid: process.map_or(0, |p| p.pid),
        exe: process.map(|p| p.exe.clone()).unwrap_or_default(),
        go_version: process.map(|p| p.go_version.clone()).unwrap_or_default(),
        // The settings as last read (each second and at every stop), else the last
        // cycle's, else those read at attach: known with no cycle in the recording.
        gogc: settings
            .and_then(|s| s.gogc)
            .or(last_gc.and_then(|g| g.gogc))
            .or(process.and_then(|p| p.gogc)),
        memory_limit_bytes: settings
            .and_then(|s| s.memory_limit_bytes)
            .or(last_gc.and_then(|g| g.memory_limit_bytes))
            .or(process.and_then(|p| p.memory_limit_bytes)),
        gomaxprocs: settings
            .and_then(|s| s.gomaxprocs)
            .or(last_gc.and_then(|g| g.gomaxprocs))
            .or(process.and_then(|p| p.gomaxprocs)),
        first_ns: if first_ts == u64::MAX { 0 } else { first_ts },
        duration_s: if last_ts > first_ts {
            (last_ts - first_ts) as f64 / 1e9
        } else {
            0.0
        },
        cycles: summary.cycles,
        stop_the_world_pauses: stws.len(),
        pause_p50_ns: summary.pause_p50_ns,
        pause_p99_ns: summary.pause_p99_ns,
        pause_max_ns: summary.pause_max_ns,
        worst_pauses: worst
            .iter()
            .take(WORST)
            .map(|s| Pause {
                start_ns: s.start_ns,
                duration_ns: s.duration_ns,
                reason: s.reason.as_str(),
                cycle: s.cycle,
            })
            .collect(),
        gc_cpu_percent: last_gc.and_then(|g| g.cpu_percent),
        alloc_rate_bytes_per_s: alloc_rate,
        alloc_bytes: summary.alloc_bytes,
        slo_pause_ns,
        pauses_over_slo: stws.iter().filter(|s| s.duration_ns > slo_pause_ns).count(),
        p99_over_slo: summary.pause_p99_ns.is_some_and(|p| p > slo_pause_ns),
        lost_events: summary.lost_events,
        damage,
        findings,
        what_if,
        what_if_inputs,
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

fn limit(l: Option<i64>) -> String {
    match l {
        Some(i64::MAX) => "none".into(),
        Some(b) => mib_unit(Some(b as u64)),
        None => "?".into(),
    }
}

/// Plain text, or Markdown when `markdown`.
pub fn render(r: &Report, markdown: bool) -> String {
    let mut s = String::new();
    let h = |s: &mut String, t: &str| {
        if markdown {
            let _ = writeln!(s, "\n## {t}\n");
        } else {
            let _ = writeln!(s, "\n{t}");
        }
    };
    let item = if markdown { "- " } else { "  " };
    if markdown {
        let _ = writeln!(s, "# GC postmortem: {} (pid {})", r.exe, r.pid);
    } else {
        let _ = writeln!(s, "GC postmortem: {} (pid {})", r.exe, r.pid);
    }
    if let Some(d) = &r.damage {
        let _ = writeln!(
            s,
            "{item}WARNING: the recording is {d}; figures cover its intact part"
        );
    }
    h(&mut s, "Settings");
    let _ = writeln!(
        s,
        "{item}Go {}, GOGC {}, GOMEMLIMIT {}, GOMAXPROCS {}",
        r.go_version,
        opt(r.gogc),
        limit(r.memory_limit_bytes),
        opt(r.gomaxprocs)
    );
    let _ = writeln!(
        s,
        "{item}recorded {:.1} s, {} GC cycles, {} stop-the-world pauses, {} events lost",
        r.duration_s, r.cycles, r.stop_the_world_pauses, r.lost_events
    );
    h(&mut s, "Pauses");
    let _ = writeln!(
        s,
        "{item}p50 {}, p99 {}, max {}",
        ms_unit(r.pause_p50_ns),
        ms_unit(r.pause_p99_ns),
        ms_unit(r.pause_max_ns)
    );
    let _ = writeln!(
        s,
        "{item}SLO {}: {} pauses over it; p99 {}",
        ms_unit(Some(r.slo_pause_ns)),
        r.pauses_over_slo,
        if r.p99_over_slo {
            "BREACHES the SLO"
        } else {
            "within the SLO"
        }
    );
    h(&mut s, "Worst pauses");
    if markdown {
        let _ = writeln!(s, "| duration | reason | cycle |\n|---|---|---|");
    }
    for p in &r.worst_pauses {
        if markdown {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                ms_unit(Some(p.duration_ns)),
                p.reason,
                opt(p.cycle)
            );
        } else {
            let _ = writeln!(
                s,
                "  {:>10}  {}{}",
                ms_unit(Some(p.duration_ns)),
                p.reason,
                p.cycle.map(|c| format!(" (gc {c})")).unwrap_or_default()
            );
        }
    }
    h(&mut s, "CPU and allocation");
    let _ = writeln!(
        s,
        "{item}GC CPU: {}",
        r.gc_cpu_percent.map_or("?".into(), |p| format!("{p} %"))
    );
    let _ = writeln!(
        s,
        "{item}allocation rate: {}/s on average, {} in total",
        mib_unit(r.alloc_rate_bytes_per_s),
        mib_unit(r.alloc_bytes)
    );
    h(&mut s, "Findings");
    if r.findings.is_empty() {
        let _ = writeln!(s, "{item}none");
    }
    let at = |ns: u64| (ns.saturating_sub(r.first_ns)) as f64 / 1e9;
    for f in &r.findings {
        let until = f
            .end_ns
            .map_or("the end".to_string(), |e| format!("{:.1} s", at(e)));
        let id = if markdown {
            format!("**{}**", f.id)
        } else {
            f.id.to_string()
        };
        let _ = writeln!(
            s,
            "{item}{id} ({}), {:.1} s to {until}: {}",
            f.severity,
            at(f.start_ns),
            f.summary
        );
        let sub = if markdown { "  - " } else { "      " };
        for site in &f.sites {
            let _ = writeln!(s, "{sub}at {}:{} ({})", site.file, site.line, site.function);
        }
        let _ = writeln!(s, "{sub}remedy: {}", f.remedy);
    }
    h(&mut s, "What if");
    crate::model::whatif::text::render(&mut s, &r.what_if_inputs, &r.what_if, markdown);
    s
}
