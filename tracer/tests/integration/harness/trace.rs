//! The tracer's `--format json` output (NDJSON), read with this harness's own record
//! structs, never the tracer's: a renamed or missing field must fail here.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

#[derive(Clone, Debug, serde::Deserialize)]
pub struct ProcessRec {
    pub pid: Option<u64>,
    pub exe: Option<String>,
    pub go_version: Option<String>,
    pub arch: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct GcRec {
    pub cycle: u32,
    pub trigger: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub sweep_term_ns: u64,
    pub mark_ns: u64,
    pub mark_term_ns: u64,
    pub pause_ns: u64,
    #[serde(flatten)]
    pub heap: HeapRec,
    /// gctrace's `MB stacks`, in bytes.
    pub stacks_bytes: Option<u64>,
    pub gomaxprocs: Option<u64>,
    pub gogc: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
}

/// A gc record's heap figures: the runtime's own, `None` where the tracer printed `null`.
/// gctrace prints the same four as `heap0->heap1->heap2 MB, goal MB`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct HeapRec {
    #[serde(rename = "heap_start_bytes")]
    pub start: Option<u64>,
    #[serde(rename = "heap_end_bytes")]
    pub end: Option<u64>,
    #[serde(rename = "heap_live_bytes")]
    pub live: Option<u64>,
    #[serde(rename = "heap_goal_bytes")]
    pub goal: Option<u64>,
}

impl HeapRec {
    /// The four figures in gctrace's whole MB (it truncates): start, end, live, goal.
    pub fn mb(&self) -> [Option<u64>; 4] {
        [self.start, self.end, self.live, self.goal].map(|b| b.map(|b| b >> 20))
    }
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct AllocRec {
    pub ts_ns: u64,
    pub total_bytes: u64,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct StwRec {
    pub reason: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub cycle: Option<u32>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct SummaryRec {
    pub cycles: u64,
    pub lost_events: u64,
    pub alloc_bytes: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Trace {
    /// The first line, if it was a process record.
    pub process: Option<ProcessRec>,
    pub first_type: Option<String>,
    pub last_type: Option<String>,
    pub gc: Vec<GcRec>,
    pub stw: Vec<StwRec>,
    pub alloc: Vec<AllocRec>,
    pub summary: Option<SummaryRec>,
    /// Lines that are not JSON objects or lack a required field.
    pub errors: Vec<String>,
}

/// The `--format json` output of a run over several processes, split by the `"pid"`
/// every record carries, each part parsed on its own; lines without a pid are reported
/// under pid 0.
pub fn traces_by_pid(text: &str) -> BTreeMap<u64, Trace> {
    let mut lines: BTreeMap<u64, String> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let pid = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("pid").and_then(Value::as_u64))
            .unwrap_or(0);
        let part = lines.entry(pid).or_default();
        part.push_str(line);
        part.push('\n');
    }
    lines
        .into_iter()
        .map(|(pid, text)| (pid, parse_trace(&text)))
        .collect()
}

/// Reads the tracer's `--format json` output.
pub fn read_trace(path: &Path) -> Trace {
    let text = fs::read_to_string(path).unwrap_or_default();
    parse_trace(&text)
}

pub fn parse_trace(text: &str) -> Trace {
    let mut trace = Trace::default();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                trace.errors.push(format!("line {}: {e}: {line}", n + 1));
                continue;
            }
        };
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if trace.first_type.is_none() {
            trace.first_type = Some(ty.clone());
        }
        trace.last_type = Some(ty.clone());
        // Each record by its own field names (the harness' structs, not the tracer's: a
        // renamed or missing field must fail here, not pass by construction). A field
        // that is not an `Option` is required.
        let parsed: Result<(), serde_json::Error> = (|| {
            match ty.as_str() {
                // Only the first process record counts.
                "process" if trace.process.is_none() => {
                    trace.process = Some(serde_json::from_value(v)?);
                }
                "gc" => trace.gc.push(serde_json::from_value(v)?),
                "alloc" => trace.alloc.push(serde_json::from_value(v)?),
                "stw" => trace.stw.push(serde_json::from_value(v)?),
                "summary" => trace.summary = Some(serde_json::from_value(v)?),
                // Record types added later are not this harness's business.
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            trace.errors.push(format!("line {}: {e}: {line}", n + 1));
        }
    }
    trace
}

/// Self-test of the parser above (needs neither root nor GCTRACE_INTEGRATION).
pub fn self_test() {
    let trace = parse_trace(
        "{\"type\":\"process\",\"pid\":7,\"exe\":\"/x\",\"go_version\":\"go1.25.5\",\"arch\":\"x86_64\",\"gomaxprocs\":2}\n\
         {\"type\":\"gc\",\"cycle\":1,\"trigger\":\"heap\",\"start_ns\":1,\"end_ns\":2,\"sweep_term_ns\":3,\"mark_ns\":4,\"mark_term_ns\":5,\"pause_ns\":6,\"heap_start_bytes\":null}\n\
         {\"type\":\"stw\",\"reason\":\"read mem stats\",\"start_ns\":1,\"duration_ns\":2,\"cycle\":null}\n\
         {\"type\":\"summary\",\"cycles\":1,\"pause_p50_ns\":1,\"pause_p99_ns\":1,\"pause_max_ns\":1,\"alloc_bytes\":null,\"alloc_objects\":null,\"lost_events\":0}\n",
    );
    assert!(trace.errors.is_empty(), "{:?}", trace.errors);
    assert_eq!(trace.first_type.as_deref(), Some("process"));
    assert_eq!(trace.last_type.as_deref(), Some("summary"));
    assert_eq!(trace.gc.len(), 1);
    assert_eq!(trace.gc[0].trigger.as_deref(), Some("heap"));
    assert_eq!(trace.stw[0].cycle, None);
    assert_eq!(trace.summary.as_ref().map(|s| s.lost_events), Some(0));
    assert_eq!(trace.process.as_ref().and_then(|p| p.pid), Some(7));
    assert_eq!(trace.gc[0].pause_ns, 6);
    assert_eq!(trace.gc[0].heap.start, None);

    // A record without a required field, or with one of the wrong type, is an error
    // that names it; a record type the harness does not know is passed over.
    let bad = parse_trace(
        "{\"type\":\"gc\",\"cycle\":1,\"start_ns\":1}\n\
         {\"type\":\"stw\",\"reason\":5,\"start_ns\":1,\"duration_ns\":2}\n\
         {\"type\":\"future\",\"x\":1}\n\
         not json\n",
    );
    assert_eq!(bad.errors.len(), 3, "{:?}", bad.errors);
    assert!(bad.errors[0].contains("end_ns"), "{:?}", bad.errors);
    assert!(bad.gc.is_empty() && bad.stw.is_empty());
    assert_eq!(bad.last_type.as_deref(), Some("future"));
}
