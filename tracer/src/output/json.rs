//! Newline-delimited JSON: one object per record, `"type"` first.
//!
//! Field names and order are a contract (docs/json-schema.md, tests, users' scripts): the
//! records are mapped through the private structs below rather than by deriving `Serialize`
//! on the records, so renaming a record field cannot silently change the output. Unknown
//! values are `null`, never omitted, so every line of a type has the same keys.

use std::io::{self, Write};

use serde::Serialize;

use super::Sink;
use crate::decode::events::{AllocCounts, Frame, Trigger};
use crate::model::records::{
    permille_as_pct, AllocRecord, AllocSitesRecord, AllocTypesRecord, FindingRecord, GcRecord,
    ProcessInfo, Record, SettingsRecord, StwRecord, Summary,
};

/// Writes each record as one JSON line.
pub struct JsonSink<W: Write> {
    w: W,
    /// Reused line buffer: one allocation for the whole run.
    line: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(w: W) -> JsonSink<W> {
        JsonSink {
            w,
            line: Vec::with_capacity(512),
        }
    }

    /// The writer back (tests, or to flush and close a file).
    pub fn into_inner(self) -> W {
        self.w
    }
}

#[derive(Serialize)]
struct ProcessJson<'a> {
    r#type: &'static str,
    pid: u32,
    exe: &'a str,
    go_version: &'a str,
    arch: &'a str,
    gomaxprocs: Option<u32>,
    gogc: Option<i32>,
    memory_limit_bytes: Option<i64>,
    /// `cgroup`, `container_id`, `pod_uid`, `pod_name`, … (`null` when unknown).
    #[serde(flatten)]
    labels: &'a crate::model::records::Labels,
}

#[derive(Serialize)]
struct SettingsJson {
    r#type: &'static str,
    ts_ns: u64,
    gogc: Option<i32>,
    memory_limit_bytes: Option<i64>,
    gomaxprocs: Option<u32>,
}

fn settings(s: &SettingsRecord) -> SettingsJson {
    SettingsJson {
        r#type: "settings",
        ts_ns: s.ts_ns,
        gogc: s.gogc,
        memory_limit_bytes: s.memory_limit_bytes,
        gomaxprocs: s.gomaxprocs,
    }
}

#[derive(Serialize)]
struct GcJson {
    r#type: &'static str,
    cycle: u32,
    trigger: Option<Trigger>,
    start_ns: u64,
    end_ns: u64,
    sweep_term_ns: u64,
    mark_ns: u64,
    mark_term_ns: u64,
    pause_ns: u64,
    heap_start_bytes: Option<u64>,
    heap_end_bytes: Option<u64>,
    heap_live_bytes: Option<u64>,
    heap_goal_bytes: Option<u64>,
    gomaxprocs: Option<u32>,
    stacks_bytes: Option<u64>,
    globals_bytes: Option<u64>,
    gogc: Option<i32>,
    memory_limit_bytes: Option<i64>,
    goroutines: Option<u64>,
    gc_cpu_percent: Option<u32>,
    cpu_sweep_term_ns: Option<u64>,
    cpu_assist_ns: Option<u64>,
    cpu_background_ns: Option<u64>,
    cpu_idle_ns: Option<u64>,
    cpu_mark_term_ns: Option<u64>,
    non_heap_bytes: Option<u64>,
}

#[derive(Serialize)]
struct AllocJson {
    r#type: &'static str,
    ts_ns: u64,
    total_bytes: u64,
    rate_bytes_per_s: Option<u64>,
    alloc_objects: Option<u64>,
}

#[derive(Serialize)]
struct CountJson<'a> {
    name: &'a str,
    #[serde(flatten)]
    counts: CountsJson,
}

/// An entry's counts ([`AllocCounts`]), as both type and site entries write them.
#[derive(Serialize)]
struct CountsJson {
    objects: u64,
    bytes: u64,
    counted: u64,
    error_pct: Option<f64>,
}

impl From<&AllocCounts> for CountsJson {
    fn from(c: &AllocCounts) -> CountsJson {
        CountsJson {
            objects: c.objects,
            bytes: c.bytes,
            counted: c.counted,
            error_pct: permille_as_pct(c.error_permille),
        }
    }
}

#[derive(Serialize)]
struct ClassJson {
    size: u64,
    objects: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct AllocTypesJson<'a> {
    r#type: &'static str,
    ts_ns: u64,
    exact: bool,
    objects: u64,
    bytes: u64,
    counted_objects: u64,
    error_pct: Option<f64>,
    dropped_objects: u64,
    types: Vec<CountJson<'a>>,
    size_classes: Vec<ClassJson>,
}

#[derive(Serialize)]
struct FrameJson<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
}

#[derive(Serialize)]
struct SiteJson<'a> {
    #[serde(rename = "type")]
    type_name: &'a str,
    #[serde(flatten)]
    counts: CountsJson,
    frames: Vec<FrameJson<'a>>,
    /// The runtime function the outermost frame called (`runtime.growslice`, …), or "".
    via: &'a str,
}

#[derive(Serialize)]
struct AllocSitesJson<'a> {
    r#type: &'static str,
    ts_ns: u64,
    exact: bool,
    sites: Vec<SiteJson<'a>>,
}

fn alloc_types(r: &AllocTypesRecord) -> AllocTypesJson<'_> {
    AllocTypesJson {
        r#type: "alloc_types",
        ts_ns: r.ts_ns,
        exact: r.exact,
        objects: r.objects,
        bytes: r.bytes,
        counted_objects: r.counted_objects,
        error_pct: permille_as_pct(r.objects_error_permille),
        dropped_objects: r.dropped_objects,
        types: r
            .types
            .iter()
            .map(|t| CountJson {
                name: &t.name,
                counts: CountsJson::from(&t.counts),
            })
            .collect(),
        size_classes: r
            .size_classes
            .iter()
            .map(|c| ClassJson {
                size: c.size,
                objects: c.objects,
                bytes: c.bytes,
            })
            .collect(),
    }
}

fn alloc_sites(r: &AllocSitesRecord) -> AllocSitesJson<'_> {
    AllocSitesJson {
        r#type: "alloc_sites",
        ts_ns: r.ts_ns,
        exact: r.exact,
        sites: r
            .sites
            .iter()
            .map(|s| SiteJson {
                type_name: &s.type_name,
                counts: CountsJson::from(&s.counts),
                via: &s.via,
                frames: s
                    .frames
                    .iter()
                    .map(|f| FrameJson {
                        function: &f.function,
                        file: &f.file,
                        line: f.line,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct StwJson {
    r#type: &'static str,
    reason: &'static str,
    start_ns: u64,
    duration_ns: u64,
    cycle: Option<u32>,
    /// Its own field rather than [`WithPid`]: a program can stop the world tens of
    /// thousands of times a second, and `flatten` serialises through serde's slower map
    /// path.
    pid: u32,
}

#[derive(Serialize)]
struct SummaryJson {
    r#type: &'static str,
    cycles: u64,
    pause_p50_ns: Option<u64>,
    pause_p99_ns: Option<u64>,
    pause_max_ns: Option<u64>,
    alloc_bytes: Option<u64>,
    alloc_objects: Option<u64>,
    lost_events: u64,
}

fn process(p: &ProcessInfo) -> ProcessJson<'_> {
    ProcessJson {
        r#type: "process",
        pid: p.pid,
        exe: &p.exe,
        go_version: &p.go_version,
        arch: &p.arch,
        gomaxprocs: p.gomaxprocs,
        gogc: p.gogc,
        memory_limit_bytes: p.memory_limit_bytes,
        labels: &p.labels,
    }
}

fn gc(g: &GcRecord) -> GcJson {
    GcJson {
        r#type: "gc",
        cycle: g.cycle,
        trigger: g.trigger,
        start_ns: g.start_ns,
        end_ns: g.end_ns,
        sweep_term_ns: g.sweep_term_ns,
        mark_ns: g.mark_ns,
        mark_term_ns: g.mark_term_ns,
        pause_ns: g.pause_ns,
        heap_start_bytes: g.heap_start_bytes,
        heap_end_bytes: g.heap_end_bytes,
        heap_live_bytes: g.heap_live_bytes,
        heap_goal_bytes: g.heap_goal_bytes,
        gomaxprocs: g.gomaxprocs,
        stacks_bytes: g.stacks_bytes,
        globals_bytes: g.globals_bytes,
        gogc: g.gogc,
        memory_limit_bytes: g.memory_limit_bytes,
        goroutines: g.goroutines,
        gc_cpu_percent: g.cpu_percent,
        cpu_sweep_term_ns: g.cpu.map(|c| c.sweep_term_ns),
        cpu_assist_ns: g.cpu.map(|c| c.assist_ns),
        cpu_background_ns: g.cpu.map(|c| c.background_ns),
        cpu_idle_ns: g.cpu.map(|c| c.idle_ns),
        cpu_mark_term_ns: g.cpu.map(|c| c.mark_term_ns),
        non_heap_bytes: g.non_heap_bytes,
    }
}

fn alloc(a: &AllocRecord) -> AllocJson {
    AllocJson {
        r#type: "alloc",
        ts_ns: a.ts_ns,
        total_bytes: a.total_bytes,
        rate_bytes_per_s: a.rate_bytes_per_s,
        alloc_objects: a.alloc_objects,
    }
}

fn stw(s: &StwRecord, pid: u32) -> StwJson {
    StwJson {
        r#type: "stw",
        reason: s.reason.as_str(),
        start_ns: s.start_ns,
        duration_ns: s.duration_ns,
        cycle: s.cycle,
        pid,
    }
}

/// A record of one process: its fields, then `"pid"` (every record carries the pid of the
/// process it describes, since one run can trace several).
#[derive(Serialize)]
struct WithPid<T: Serialize> {
    #[serde(flatten)]
    inner: T,
    pid: u32,
}

/// `{"type":"finding",…}`: see docs/findings.md.
#[derive(Serialize)]
pub(crate) struct FindingJson<'a> {
    r#type: &'static str,
    ts_ns: u64,
    state: &'static str,
    id: &'static str,
    severity: &'static str,
    summary: &'a str,
    evidence: Evidence<'a>,
    remedy: &'static str,
    sites: &'a [Frame],
}

/// Evidence as a JSON object, in the rule's order.
pub(crate) struct Evidence<'a>(pub &'a [(&'static str, f64)]);

impl Serialize for Evidence<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

pub(crate) fn finding(f: &FindingRecord) -> FindingJson<'_> {
    FindingJson {
        r#type: "finding",
        ts_ns: f.ts_ns,
        state: f.state.as_str(),
        id: f.id.as_str(),
        severity: f.severity.as_str(),
        summary: &f.summary,
        evidence: Evidence(&f.evidence),
        remedy: f.remedy,
        sites: &f.sites,
    }
}

fn summary(s: &Summary) -> SummaryJson {
    SummaryJson {
        r#type: "summary",
        cycles: s.cycles,
        pause_p50_ns: s.pause_p50_ns,
        pause_p99_ns: s.pause_p99_ns,
        pause_max_ns: s.pause_max_ns,
        alloc_bytes: s.alloc_bytes,
        alloc_objects: s.alloc_objects,
        lost_events: s.lost_events,
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        self.line.clear();
        let line = &mut self.line;
        match rec {
            Record::Process(p) => serde_json::to_writer(line, &process(p)),
            Record::Gc(g) => serde_json::to_writer(line, &WithPid { inner: gc(g), pid }),
            Record::Stw(s) => serde_json::to_writer(line, &stw(s, pid)),
            Record::Alloc(a) => serde_json::to_writer(
                line,
                &WithPid {
                    inner: alloc(a),
                    pid,
                },
            ),
            Record::AllocTypes(r) => serde_json::to_writer(
                line,
                &WithPid {
                    inner: alloc_types(r),
                    pid,
                },
            ),
            Record::AllocSites(r) => serde_json::to_writer(
                line,
                &WithPid {
                    inner: alloc_sites(r),
                    pid,
                },
            ),
            Record::Finding(f) => serde_json::to_writer(
                line,
                &WithPid {
                    inner: finding(f),
                    pid,
                },
            ),
            Record::Summary(s) => serde_json::to_writer(
                line,
                &WithPid {
                    inner: summary(s),
                    pid,
                },
            ),
            Record::Settings(s) => serde_json::to_writer(
                line,
                &WithPid {
                    inner: settings(s),
                    pid,
                },
            ),
        }
        .map_err(io::Error::other)?;
        self.line.push(b'\n');
        self.w.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::StwReason;

    fn line(rec: Record) -> String {
        let mut sink = JsonSink::new(Vec::new());
        assert!(sink.record(4242, &rec).is_ok());
        String::from_utf8(sink.into_inner()).unwrap_or_default()
    }

    #[test]
    fn process() {
        let rec = Record::Process(ProcessInfo {
            labels: crate::model::records::Labels {
                cgroup: Some("/system.slice/app.service".into()),
                systemd_unit: Some("app.service".into()),
                ..Default::default()
            },
            ..ProcessInfo::new(4242, "/usr/bin/my \"app\"", "go1.25.5", "x86_64")
        });
        assert_eq!(
            line(rec),
            r#"{"type":"process","pid":4242,"exe":"/usr/bin/my \"app\"","go_version":"go1.25.5","arch":"x86_64","gomaxprocs":null,"gogc":null,"memory_limit_bytes":null,"cgroup":"/system.slice/app.service","container_id":null,"container_runtime":null,"container_name":null,"pod_uid":null,"pod_name":null,"pod_namespace":null,"systemd_unit":"app.service"}"#
                .to_owned()
                + "\n"
        );
    }

    #[test]
    fn gc() {
        let rec = Record::Gc(GcRecord {
            cycle: 3,
            trigger: Some(Trigger::Forced),
            start_ns: 100,
            end_ns: 900,
            sweep_term_ns: 26,
            mark_ns: 700,
            mark_term_ns: 74,
            pause_ns: 100,
            runtime_init_ns: Some(5),
            gomaxprocs: Some(8),
            heap_start_bytes: Some(4 << 20),
            heap_end_bytes: None,
            heap_live_bytes: None,
            heap_goal_bytes: None,
            ..Default::default()
        });
        assert_eq!(
            line(rec),
            concat!(
                r#"{"type":"gc","cycle":3,"trigger":"forced","start_ns":100,"end_ns":900,"#,
                r#""sweep_term_ns":26,"mark_ns":700,"mark_term_ns":74,"pause_ns":100,"#,
                r#""heap_start_bytes":4194304,"heap_end_bytes":null,"heap_live_bytes":null,"#,
                r#""heap_goal_bytes":null,"gomaxprocs":8,"stacks_bytes":null,"globals_bytes":null,"gogc":null,"memory_limit_bytes":null,"goroutines":null,"gc_cpu_percent":null,"cpu_sweep_term_ns":null,"cpu_assist_ns":null,"cpu_background_ns":null,"cpu_idle_ns":null,"cpu_mark_term_ns":null,"non_heap_bytes":null,"pid":4242}"#,
                "\n"
            )
        );
    }

    #[test]
    fn gc_unknown_trigger_is_null() {
        // Every runtime read unknown: the default record.
        let rec = Record::Gc(GcRecord {
            cycle: 1,
            ..Default::default()
        });
        assert!(line(rec).contains(r#""trigger":null,"#));
    }

    #[test]
    fn stw() {
        let gc_stop = Record::Stw(StwRecord {
            reason: StwReason::GcSweepTerm,
            start_ns: 100,
            duration_ns: 26,
            cycle: Some(3),
        });
        assert_eq!(
            line(gc_stop),
            "{\"type\":\"stw\",\"reason\":\"GC sweep termination\",\"start_ns\":100,\"duration_ns\":26,\"cycle\":3,\"pid\":4242}\n"
        );
        let other = Record::Stw(StwRecord {
            reason: StwReason::ReadMemStats,
            start_ns: 1,
            duration_ns: 2,
            cycle: None,
        });
        assert_eq!(
            line(other),
            "{\"type\":\"stw\",\"reason\":\"read mem stats\",\"start_ns\":1,\"duration_ns\":2,\"cycle\":null,\"pid\":4242}\n"
        );
    }

    #[test]
    fn summary() {
        let rec = Record::Summary(Summary {
            cycles: 12,
            pause_p50_ns: Some(26_000),
            pause_p99_ns: Some(320_000),
            pause_max_ns: Some(1_200_000),
            alloc_bytes: None,
            alloc_objects: None,
            lost_events: 0,
        });
        assert_eq!(
            line(rec),
            concat!(
                r#"{"type":"summary","cycles":12,"pause_p50_ns":26000,"pause_p99_ns":320000,"#,
                r#""pause_max_ns":1200000,"alloc_bytes":null,"alloc_objects":null,"lost_events":0,"pid":4242}"#,
                "\n"
            )
        );
    }
}
