//! `gctrace-bpf export`: a recording as Chrome/Perfetto trace-event JSON (opens in
//! ui.perfetto.dev and chrome://tracing): GC cycles and their phases and every
//! stop-the-world as slices, heap and allocation rate as counters.

use serde_json::{json, Value};

use crate::model::records::Record;

/// Tracks (threads of the fake process) in the trace.
const TRACK_CYCLES: u32 = 1;
const TRACK_STW: u32 = 2;

fn us(ns: u64, t0: u64) -> f64 {
    ns.saturating_sub(t0) as f64 / 1000.0
}

/// The trace-event document for `records`.
pub fn perfetto(records: &[Record]) -> Value {
    let pid = records
        .iter()
        .find_map(|r| match r {
            Record::Process(p) => Some(p.pid),
            _ => None,
        })
        .unwrap_or(1);
    let name = records
        .iter()
        .find_map(|r| match r {
            Record::Process(p) => Some(format!("{} ({})", p.exe, p.go_version)),
            _ => None,
        })
        .unwrap_or_default();
    let t0 = records
        .iter()
        .filter_map(|r| match r {
            Record::Gc(g) => Some(g.start_ns),
            Record::Stw(s) => Some(s.start_ns),
            Record::Alloc(a) => Some(a.ts_ns),
            _ => None,
        })
        .min()
        .unwrap_or(0);
    let mut ev = vec![
        json!({"ph":"M","name":"process_name","pid":pid,"args":{"name":name}}),
        json!({"ph":"M","name":"thread_name","pid":pid,"tid":TRACK_CYCLES,"args":{"name":"GC cycles"}}),
        json!({"ph":"M","name":"thread_name","pid":pid,"tid":TRACK_STW,"args":{"name":"stop-the-world"}}),
    ];
    for r in records {
        match r {
            Record::Gc(g) => {
                let mark_start = g.start_ns + g.sweep_term_ns;
                let mark_term_start = mark_start + g.mark_ns;
                ev.push(json!({
                    "ph":"X","cat":"gc","name":format!("GC {}", g.cycle),"pid":pid,"tid":TRACK_CYCLES,
                    "ts":us(g.start_ns, t0),"dur":(g.end_ns.saturating_sub(g.start_ns)) as f64 / 1000.0,
                    "args":{"trigger":g.trigger.map(|t| t.as_str()),"pause_ns":g.pause_ns,
                            "heap_start_bytes":g.heap_start_bytes,"heap_live_bytes":g.heap_live_bytes,
                            "heap_goal_bytes":g.heap_goal_bytes}
                }));
                for (phase, start, dur) in [
                    ("sweep termination", g.start_ns, g.sweep_term_ns),
                    ("mark", mark_start, g.mark_ns),
                    ("mark termination", mark_term_start, g.mark_term_ns),
                ] {
                    ev.push(
                        json!({"ph":"X","cat":"gc","name":phase,"pid":pid,"tid":TRACK_CYCLES,
                                   "ts":us(start, t0),"dur":dur as f64 / 1000.0}),
                    );
                }
                if let (Some(live), Some(goal)) = (g.heap_live_bytes, g.heap_goal_bytes) {
                    ev.push(
                        json!({"ph":"C","name":"heap","pid":pid,"ts":us(g.end_ns, t0),
                                   "args":{"live":live,"goal":goal}}),
                    );
                }
            }
            Record::Stw(s) => ev.push(json!({
                "ph":"X","cat":"stw","name":s.reason.as_str(),"pid":pid,"tid":TRACK_STW,
                "ts":us(s.start_ns, t0),"dur":s.duration_ns as f64 / 1000.0,
                "args":{"cycle":s.cycle}
            })),
            Record::Alloc(a) => {
                if let Some(rate) = a.rate_bytes_per_s {
                    ev.push(
                        json!({"ph":"C","name":"allocation rate (bytes/s)","pid":pid,
                                   "ts":us(a.ts_ns, t0),"args":{"rate":rate}}),
                    );
                }
            }
            _ => {}
        }
    }
    json!({"traceEvents": ev, "displayTimeUnit": "ms"})
}
