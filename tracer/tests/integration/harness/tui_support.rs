//! Test helpers of the TUI tests: read recorded JSON traces (the `--format json` output
//! of real runs, in `tests/fixtures/`) back into records, and render an [`App`] into a
//! ratatui `TestBackend` as plain text for snapshots.

#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;

use ratatui::{backend::TestBackend, Terminal};
use serde_json::Value;
use tracer::binary::StwReason;
use tracer::decode::events::{AllocCounts, AllocStat, Frame, SiteStat, Trigger};
use tracer::model::records::{
    AllocRecord, AllocSitesRecord, AllocTypesRecord, GcCpu, GcRecord, ProcessInfo, Record,
    SizeClassStat, StwRecord, Summary,
};
use tracer::output::tui::{render, App};

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn ou(v: &Value, k: &str) -> Option<u64> {
    v[k].as_u64()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

fn reason(name: &str) -> StwReason {
    (0..=255u8)
        .map(StwReason::from_code)
        .find(|r| r.as_str() == name)
        .unwrap_or(StwReason::Unknown)
}

fn trigger(v: &Value) -> Option<Trigger> {
    let name = v.as_str()?;
    (0..3)
        .filter_map(Trigger::from_kind)
        .find(|t| t.as_str() == name)
}

/// A struct literal whose fields listed under a reader come from the JSON keys of the
/// same names (`u`: a number, 0 when absent; `ou`: `None` when absent; `s`: a string),
/// then the fields written out. Why a macro: a field and its key are one name written
/// once, so they cannot drift apart, and the long lists read as what they are.
macro_rules! same_names {
    ($v:expr, $ty:ident { $($read:ident: [$($field:ident),* $(,)?]),* $(,)? } { $($rest:tt)* }) => {
        $ty { $($($field: $read($v, stringify!($field)),)*)* $($rest)* }
    };
}

/// One line of `--format json` output back as the record it was written from (the
/// fields the JSON has; `runtime_clock` and `runtime_init_ns` are not in it).
pub fn parse_line(line: &str) -> Option<Record> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some(match v["type"].as_str()? {
        "process" => Record::Process(same_names!(&v, ProcessInfo { s: [exe, go_version, arch] } {
            pid: u(&v, "pid") as u32,
            gomaxprocs: ou(&v, "gomaxprocs").map(|p| p as u32),
            labels: serde_json::from_value(v.clone()).unwrap_or_default(),
            gogc: None,
            memory_limit_bytes: None,
        })),
        "gc" => {
            let cpu = ou(&v, "cpu_sweep_term_ns").map(|st| GcCpu {
                sweep_term_ns: st,
                assist_ns: u(&v, "cpu_assist_ns"),
                background_ns: u(&v, "cpu_background_ns"),
                idle_ns: u(&v, "cpu_idle_ns"),
                mark_term_ns: u(&v, "cpu_mark_term_ns"),
            });
            Record::Gc(same_names!(&v, GcRecord {
                u: [start_ns, end_ns, sweep_term_ns, mark_ns, mark_term_ns, pause_ns],
                ou: [
                    heap_start_bytes, heap_end_bytes, heap_live_bytes, heap_goal_bytes,
                    stacks_bytes, globals_bytes, goroutines, non_heap_bytes,
                ],
            } {
                cycle: u(&v, "cycle") as u32,
                trigger: trigger(&v["trigger"]),
                runtime_init_ns: None,
                gomaxprocs: ou(&v, "gomaxprocs").map(|p| p as u32),
                gogc: v["gogc"].as_i64().map(|g| g as i32),
                memory_limit_bytes: v["memory_limit_bytes"].as_i64(),
                cpu_percent: ou(&v, "gc_cpu_percent").map(|p| p as u32),
                cpu,
                runtime_clock: None,
            }))
        }
        "stw" => Record::Stw(same_names!(&v, StwRecord { u: [start_ns, duration_ns] } {
            reason: reason(v["reason"].as_str()?),
            cycle: ou(&v, "cycle").map(|c| c as u32),
        })),
        "alloc" => Record::Alloc(same_names!(&v, AllocRecord {
            u: [ts_ns, total_bytes],
            ou: [rate_bytes_per_s, alloc_objects],
        } {})),
        "alloc_types" => Record::AllocTypes(same_names!(&v, AllocTypesRecord {
            u: [ts_ns, objects, bytes, counted_objects, dropped_objects],
        } {
            exact: v["exact"].as_bool().unwrap_or(false),
            objects_error_permille: permille(&v),
            types: v["types"]
                .as_array()?
                .iter()
                .map(|t| same_names!(t, AllocStat { s: [name] } { counts: counts(t) }))
                .collect(),
            size_classes: v["size_classes"]
                .as_array()?
                .iter()
                .map(|c| same_names!(c, SizeClassStat { u: [size, objects, bytes] } {}))
                .collect(),
        })),
        "alloc_sites" => Record::AllocSites(same_names!(&v, AllocSitesRecord { u: [ts_ns] } {
            exact: v["exact"].as_bool().unwrap_or(false),
            sites: v["sites"]
                .as_array()?
                .iter()
                .map(|site| same_names!(site, SiteStat { s: [via] } {
                    type_name: s(site, "type"),
                    counts: counts(site),
                    frames: site["frames"]
                        .as_array()
                        .map(|fs| {
                            fs.iter()
                                .map(|f| same_names!(f, Frame { s: [function, file] } {
                                    line: u(f, "line") as u32,
                                }))
                                .collect()
                        })
                        .unwrap_or_default(),
                }))
                .collect(),
        })),
        "summary" => Record::Summary(same_names!(&v, Summary {
            u: [cycles, lost_events],
            ou: [pause_p50_ns, pause_p99_ns, pause_max_ns, alloc_bytes, alloc_objects],
        } {})),
        _ => return None,
    })
}

/// Every record of a fixture (`tests/fixtures/NAME`), in order.
pub fn fixture(name: &str) -> Vec<Record> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let records: Vec<Record> = text.lines().filter_map(parse_line).collect();
    assert_eq!(
        records.len(),
        text.lines().filter(|l| !l.trim().is_empty()).count(),
        "{name}: every line parses"
    );
    judged(records)
}

/// The records as the pipeline hands them to a view: each followed by the findings of
/// the rule engine (default thresholds) that it starts or ends.
pub fn judged(records: Vec<Record>) -> Vec<Record> {
    let mut engine =
        tracer::model::findings::Engine::new(tracer::model::findings::Thresholds::default());
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let mut found = Vec::new();
        engine.observe(&r, &mut found);
        out.push(r);
        out.extend(found);
    }
    out
}

/// The screen as text, one line per row, trailing blanks trimmed.
pub fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    render(app, &mut terminal).expect("render");
    text(terminal.backend())
}

/// What a test backend shows, as lines of text with trailing blanks trimmed.
pub fn text(backend: &TestBackend) -> String {
    let buf = backend.buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Replaces volatile parts (the pid of the recorded run) so snapshots compare layout
/// and figures only.
pub fn redact(screen: &str, pid: u32) -> String {
    screen.replace(&format!("pid {pid}"), "pid <PID>")
}

/// A type or site entry's counts, as the JSON writes them.
fn counts(v: &Value) -> AllocCounts {
    same_names!(v, AllocCounts { u: [objects, bytes, counted, large_objects, large_bytes] } {
        error_permille: permille(v),
    })
}

/// A JSON `error_pct` back in the records' per mille.
fn permille(v: &Value) -> Option<u32> {
    v["error_pct"]
        .as_f64()
        .map(|pct| (pct * 10.0).round() as u32)
}
