use std::collections::BTreeMap;
use std::io;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use super::*;
use crate::binary::StwReason;
use crate::decode::events::Trigger;
use crate::model::records::{AllocRecord, GcRecord, ProcessInfo, Record, StwRecord, Summary};
use crate::model::records::{AllocTypesRecord, GcCpu};

/// `name{k="v",...} value` lines of the Prometheus text format, keyed by the line's
/// series as written (labels in the encoder's order).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line has a value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("a number"),
            };
            (series.to_owned(), value)
        })
        .collect()
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no series {series} in:\n{s:#?}"))
}

/// The cumulative count of histogram `name`'s bucket with upper bound `le` (compared
/// as numbers: the encoder's float formatting is its own business).
fn bucket(s: &BTreeMap<String, f64>, name: &str, labels: &str, le: f64) -> f64 {
    let prefix = format!("{name}_bucket{{{labels},le=\"");
    let found: Vec<f64> = s
        .iter()
        .filter_map(|(k, v)| {
            let bound = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound: f64 = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            (bound == le || (le.is_finite() && (bound - le).abs() <= le * 1e-12)).then_some(*v)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "no bucket le={le} of {name}{{{labels}}} in:\n{s:#?}"
    );
    found[0]
}

const T: &str = r#"pid="42",exe="/srv/app""#;

fn process() -> Record {
    Record::Process(ProcessInfo {
        gomaxprocs: Some(4),
        ..ProcessInfo::new(42, "/srv/app", "go1.25.5", "x86_64")
    })
}

fn gc(cycle: u32, trigger: Option<Trigger>, goal: u64) -> Record {
    Record::Gc(GcRecord {
        cycle,
        trigger,
        start_ns: 1_000,
        end_ns: 3_000_000,
        sweep_term_ns: 50_000,
        mark_ns: 2_000_000,
        mark_term_ns: 30_000,
        pause_ns: 80_000,
        gomaxprocs: Some(2),
        heap_start_bytes: Some(4 << 20),
        heap_end_bytes: Some(5 << 20),
        heap_live_bytes: Some(3 << 20),
        heap_goal_bytes: Some(goal),
        gogc: Some(100),
        memory_limit_bytes: Some(i64::MAX),
        cpu_percent: Some(3),
        cpu: Some(GcCpu {
            sweep_term_ns: 100_000,
            assist_ns: 200_000,
            background_ns: 1_000_000,
            idle_ns: 0,
            mark_term_ns: 60_000,
        }),
        ..GcRecord::default()
    })
}

fn stw(reason: StwReason, duration_ns: u64) -> Record {
    Record::Stw(StwRecord {
        reason,
        start_ns: 10,
        duration_ns,
        cycle: None,
    })
}

fn alloc(total_bytes: u64, rate: Option<u64>) -> Record {
    Record::Alloc(AllocRecord {
        ts_ns: 1,
        total_bytes,
        rate_bytes_per_s: rate,
        alloc_objects: None,
    })
}

fn fed(records: &[Record]) -> GcMetrics {
    let mut m = GcMetrics::new();
    for r in records {
        m.record(42, r);
    }
    m
}

fn text(m: &GcMetrics) -> String {
    m.encode(Exposition::Text).expect("encodes")
}

#[test]
fn records_become_labelled_series() {
    let m = fed(&[
        process(),
        stw(StwReason::GcSweepTerm, 50_000),
        stw(StwReason::GcMarkTerm, 30_000),
        gc(7, Some(Trigger::Heap), 8 << 20),
        stw(StwReason::ReadMemStats, 1_500),
        stw(StwReason::GcSweepTerm, 3_000_000),
        stw(StwReason::GcMarkTerm, 20_000),
        gc(8, Some(Trigger::Forced), 9 << 20),
        alloc(1_000, None),
        alloc(5_000, Some(4_000)),
    ]);
    let s = samples(&text(&m));
    let info = format!(r#"gctrace_bpf_target_info{{{T},go_version="go1.25.5",arch="x86_64"}}"#);
    assert_eq!(get(&s, &info), 1.0);

    // Cycles: the runtime's count, and the traced ones by trigger.
    assert_eq!(
        get(&s, &format!("go_gc_cycles_total_gc_cycles_total{{{T}}}")),
        8.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"gctrace_bpf_gc_cycles_total{{{T},trigger="heap"}}"#)
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"gctrace_bpf_gc_cycles_total{{{T},trigger="forced"}}"#)
        ),
        1.0
    );

    // Pauses: GC and other stops apart, by reason, in seconds.
    let sweep = format!(r#"{T},reason="GC sweep termination""#);
    assert_eq!(
        get(
            &s,
            &format!("go_sched_pauses_total_gc_seconds_count{{{sweep}}}")
        ),
        2.0
    );
    assert_eq!(
        get(
            &s,
            &format!("go_sched_pauses_total_gc_seconds_sum{{{sweep}}}")
        ),
        50_000f64 / 1e9 + 3_000_000f64 / 1e9
    );
    // 50 µs is in the 64 µs bucket, 3 ms is not; both are under 4.096 ms.
    let name = "go_sched_pauses_total_gc_seconds";
    assert_eq!(bucket(&s, name, &sweep, 64e-6), 1.0);
    assert_eq!(bucket(&s, name, &sweep, 4.096e-3), 2.0);
    assert_eq!(bucket(&s, name, &sweep, f64::INFINITY), 2.0);
    let rms = format!(r#"{T},reason="read mem stats""#);
    assert_eq!(
        get(
            &s,
            &format!("go_sched_pauses_total_other_seconds_count{{{rms}}}")
        ),
        1.0
    );
    assert!(!s.contains_key(&format!("go_sched_pauses_total_gc_seconds_count{{{rms}}}")));

    // Phases and per-cycle pauses: one observation per cycle.
    for phase in ["sweep_termination", "mark", "mark_termination"] {
        let series = format!(r#"gctrace_bpf_gc_phase_seconds_count{{{T},phase="{phase}"}}"#);
        assert_eq!(get(&s, &series), 2.0);
    }
    assert_eq!(
        get(
            &s,
            &format!(r#"gctrace_bpf_gc_phase_seconds_sum{{{T},phase="mark"}}"#)
        ),
        0.004
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_gc_pause_seconds_count{{{T}}}")),
        2.0
    );

    // Gauges: the last cycle's figures.
    assert_eq!(
        get(&s, &format!("gctrace_bpf_gc_heap_goal_bytes{{{T}}}")),
        (9 << 20) as f64
    );
    assert_eq!(
        get(&s, &format!("go_gc_heap_live_bytes{{{T}}}")),
        (3 << 20) as f64
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_gc_heap_start_bytes{{{T}}}")),
        (4 << 20) as f64
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_gc_heap_end_bytes{{{T}}}")),
        (5 << 20) as f64
    );
    // The process record said 4, the cycles since say 2.
    assert_eq!(get(&s, &format!("go_sched_gomaxprocs_threads{{{T}}}")), 2.0);
    assert_eq!(get(&s, &format!("go_gc_gogc_percent{{{T}}}")), 100.0);
    assert_eq!(
        get(&s, &format!("go_gc_gomemlimit_bytes{{{T}}}")),
        i64::MAX as f64
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_gc_cpu_fraction{{{T}}}")),
        0.03
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"gctrace_bpf_gc_cpu_seconds_total{{{T},phase="background"}}"#)
        ),
        0.002
    );

    // Allocation: the runtime's own cumulative counter, and the last rate.
    assert_eq!(
        get(&s, &format!("go_gc_heap_allocs_bytes_total{{{T}}}")),
        5_000.0
    );
    assert_eq!(
        get(
            &s,
            &format!("gctrace_bpf_alloc_rate_bytes_per_second{{{T}}}")
        ),
        4_000.0
    );
    // Only with allocation probes.
    assert!(!s
        .keys()
        .any(|k| k.starts_with("gctrace_bpf_heap_allocs_objects")));
}

#[test]
fn counters_mirroring_absolute_counts_never_go_down() {
    let mut m = fed(&[process(), gc(10, None, 1), alloc(9_000, None)]);
    // A lower cycle number or allocation total (cannot happen in one process) is not
    // a reset: Prometheus would take it for a counter restart.
    m.record(42, &gc(9, None, 1));
    m.record(42, &alloc(8_000, None));
    m.set_lost_events(42, 5);
    m.set_lost_events(42, 3);
    m.record(
        42,
        &Record::Summary(Summary {
            lost_events: 7,
            ..Summary::default()
        }),
    );
    let s = samples(&text(&m));
    assert_eq!(
        get(&s, &format!("go_gc_cycles_total_gc_cycles_total{{{T}}}")),
        10.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"gctrace_bpf_gc_cycles_total{{{T},trigger="unknown"}}"#)
        ),
        2.0
    );
    assert_eq!(
        get(&s, &format!("go_gc_heap_allocs_bytes_total{{{T}}}")),
        9_000.0
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_lost_events_total{{{T}}}")),
        7.0
    );
}

#[test]
fn processes_are_told_apart_by_pid_and_exe() {
    let mut m = GcMetrics::new();
    m.record(42, &process());
    m.record(
        43,
        &Record::Process(ProcessInfo::new(
            43,
            "/srv/other \"quoted\"",
            "go1.19.8",
            "x86_64",
        )),
    );
    m.record(42, &gc(1, Some(Trigger::Heap), 1));
    m.record(43, &gc(5, Some(Trigger::Heap), 1));
    m.record(43, &gc(6, Some(Trigger::Heap), 1));
    // Unknown figures leave their gauges out rather than reporting zero.
    m.record(43, &Record::Gc(GcRecord::default()));
    let s = samples(&text(&m));
    assert_eq!(
        get(&s, &format!("go_gc_cycles_total_gc_cycles_total{{{T}}}")),
        1.0
    );
    // Label values are escaped by the client library.
    let other = r#"pid="43",exe="/srv/other \"quoted\"""#;
    assert_eq!(
        get(
            &s,
            &format!("go_gc_cycles_total_gc_cycles_total{{{other}}}")
        ),
        6.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"gctrace_bpf_gc_cycles_total{{{other},trigger="heap"}}"#)
        ),
        2.0
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_gc_heap_goal_bytes{{{other}}}")),
        1.0
    );
    // A record of a pid without a process record yet still counts, with an empty exe.
    m.record(44, &stw(StwReason::Gomaxprocs, 10));
    let s = samples(&text(&m));
    let series =
        r#"go_sched_pauses_total_other_seconds_count{pid="44",exe="",reason="GOMAXPROCS"}"#;
    assert_eq!(get(&s, series), 1.0);
}

#[test]
fn allocation_snapshots_and_objects() {
    let mut m = fed(&[process()]);
    m.record(
        42,
        &Record::AllocTypes(AllocTypesRecord {
            ts_ns: 1,
            exact: true,
            objects: 3,
            bytes: 48,
            counted_objects: 3,
            objects_error_permille: None,
            dropped_objects: 0,
            types: vec![],
            size_classes: vec![],
        }),
    );
    m.record(
        42,
        &Record::Alloc(AllocRecord {
            ts_ns: 2,
            total_bytes: 100,
            rate_bytes_per_s: Some(50),
            alloc_objects: Some(12),
        }),
    );
    let s = samples(&text(&m));
    assert_eq!(
        get(&s, &format!("gctrace_bpf_heap_allocs_objects_total{{{T}}}")),
        12.0
    );
}

#[test]
fn openmetrics_and_text_formats() {
    let m = fed(&[process(), gc(3, Some(Trigger::Time), 1)]);
    let om = m.encode(Exposition::OpenMetrics).expect("encodes");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE go_gc_cycles_total_gc_cycles counter\n"),
        "{om}"
    );
    assert!(om.contains("# UNIT go_gc_heap_live_bytes bytes\n"), "{om}");
    let text = text(&m);
    assert!(!text.contains("# EOF"));
    assert!(
        text.contains("# TYPE go_gc_cycles_total_gc_cycles_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE gctrace_bpf_gc_phase_seconds histogram\n"));
}

/// The bucket bounds documented in docs/prometheus.md.
#[test]
fn duration_buckets_span_microseconds_to_seconds() {
    let s = samples(&text(&fed(&[process(), stw(StwReason::ReadMemStats, 1)])));
    let bounds: Vec<f64> = s
        .keys()
        .filter(|k| k.starts_with("go_sched_pauses_total_other_seconds_bucket"))
        .filter_map(|k| k.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
        .filter(|b: &f64| b.is_finite())
        .collect();
    assert_eq!(bounds.len(), 25);
    let min = bounds.iter().copied().fold(f64::MAX, f64::min);
    let max = bounds.iter().copied().fold(0.0, f64::max);
    assert_eq!(min, 1e-6);
    assert!((max - 16.777216).abs() < 1e-9, "{max}");
}

/// A `Write + Send` the test reads back.
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

fn lock_buf(b: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock_buf(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn served(head: &str, m: &Mutex<GcMetrics>) -> (String, String) {
    let out = String::from_utf8(http::respond(head.as_bytes(), m)).expect("utf-8");
    let (headers, body) = out.split_once("\r\n\r\n").expect("a blank line");
    (headers.to_owned(), body.to_owned())
}

#[test]
fn http_routes_and_formats() {
    let m = Mutex::new(fed(&[process(), gc(1, Some(Trigger::Heap), 1)]));
    let (h, body) = served("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &m);
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert!(
        h.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{h}"
    );
    assert!(
        h.contains(&format!("Content-Length: {}", body.len())),
        "{h}"
    );
    assert!(body.contains("go_gc_cycles_total_gc_cycles_total{"));

    let prometheus_accept = "Accept: application/openmetrics-text;version=1.0.0,\
                             application/openmetrics-text;version=0.0.1;q=0.75,\
                             text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (h, body) = served(
        &format!("GET /metrics?x=1 HTTP/1.1\r\n{prometheus_accept}\r\n\r\n"),
        &m,
    );
    assert!(
        h.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{h}"
    );
    assert!(body.ends_with("# EOF\n"));

    let (h, body) = served("HEAD /metrics HTTP/1.0\n\n", &m);
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert!(!h.contains("Content-Length: 0"), "{h}");
    assert_eq!(body, "");

    let (h, _) = served("GET / HTTP/1.1\r\n\r\n", &m);
    assert!(h.starts_with("HTTP/1.1 404 Not Found\r\n"), "{h}");
    let (h, _) = served("GET /metricsx HTTP/1.1\r\n\r\n", &m);
    assert!(h.starts_with("HTTP/1.1 404 "), "{h}");
    let (h, _) = served("POST /metrics HTTP/1.1\r\n\r\n", &m);
    assert!(
        h.starts_with("HTTP/1.1 405 ") && h.contains("Allow: GET, HEAD"),
        "{h}"
    );
    for bad in [
        "",
        "GET\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n",
    ] {
        let (h, _) = served(bad, &m);
        assert!(h.starts_with("HTTP/1.1 400 "), "{bad:?}: {h}");
    }
}

/// Through a real socket: the exporter serves what its sink was given.
#[test]
fn exporter_serves_what_its_sink_gets() -> anyhow::Result<()> {
    let exporter = Exporter::start(parse_listen_addr("127.0.0.1:0").map_err(anyhow::Error::msg)?)?;
    let addr = exporter.local_addr();
    assert_ne!(addr.port(), 0);
    let json = Arc::new(Mutex::new(Vec::new()));
    let mut sink = exporter.tee(Box::new(super::super::JsonSink::new(SharedBuf(
        Arc::clone(&json),
    ))));
    sink.record(42, &process())?;
    sink.record(42, &gc(12, Some(Trigger::Forced), 1))?;
    sink.flush()?;
    exporter.set_lost_events(42, 2);

    let mut conn = TcpStream::connect(addr)?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let s = samples(body);
    assert_eq!(
        get(&s, &format!("go_gc_cycles_total_gc_cycles_total{{{T}}}")),
        12.0
    );
    assert_eq!(
        get(&s, &format!("gctrace_bpf_lost_events_total{{{T}}}")),
        2.0
    );
    assert_eq!(
        exporter.encode(Exposition::Text).ok().as_deref(),
        Some(body)
    );
    // The primary view got the same records.
    let json = String::from_utf8(lock_buf(&json).clone()).unwrap_or_default();
    assert_eq!(json.lines().count(), 2, "{json}");

    // The port is taken now: a second exporter says so, naming the address.
    let err = crate::errors::chain(Exporter::start(addr).expect_err("port in use").as_ref());
    assert!(
        err.starts_with(&format!("cannot serve Prometheus metrics on {addr}: ")),
        "{err}"
    );
    Ok(())
}

#[test]
fn listen_addresses() {
    assert_eq!(
        parse_listen_addr("127.0.0.1:9101"),
        Ok(SocketAddr::from(([127, 0, 0, 1], 9101)))
    );
    assert_eq!(
        parse_listen_addr(":9101"),
        Ok(SocketAddr::from(([0, 0, 0, 0], 9101)))
    );
    assert_eq!(
        parse_listen_addr("[::1]:80"),
        Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 80)))
    );
    assert!(parse_listen_addr("localhost:9101").is_ok_and(|a| a.ip().is_loopback()));
    for bad in ["", "9101", ":", ":http", "127.0.0.1", "127.0.0.1:99999"] {
        assert!(parse_listen_addr(bad).is_err(), "{bad}");
    }
}

#[test]
fn goroutines_and_findings() {
    use crate::model::records::{FindingId, FindingRecord, FindingState, Severity};
    let mut with_g = gc(3, None, 1);
    if let Record::Gc(g) = &mut with_g {
        g.goroutines = Some(1234);
    }
    let finding = |state| {
        Record::Finding(FindingRecord {
            ts_ns: 5,
            state,
            id: FindingId::GcThrashing,
            severity: Severity::Warning,
            summary: "GC CPU 12%".into(),
            evidence: vec![("gc_cpu_percent", 12.0)],
            remedy: "less",
            sites: Vec::new(),
        })
    };
    let mut m = fed(&[process(), with_g, finding(FindingState::Start)]);
    let key = format!(r#"gctrace_bpf_finding_active{{{T},id="gc-thrashing",severity="warning"}}"#);
    let s = samples(&text(&m));
    assert_eq!(
        get(&s, &format!("go_sched_goroutines_goroutines{{{T}}}")),
        1234.0
    );
    assert_eq!(get(&s, &key), 1.0);
    m.record(42, &finding(FindingState::End));
    assert_eq!(get(&samples(&text(&m)), &key), 0.0);
}
