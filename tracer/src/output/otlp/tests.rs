use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric;

use super::state::State;
use super::*;
use crate::model::records::{GcRecord, ProcessInfo, StwRecord, Summary};

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn protocol_follows_flag_env_then_port() {
    let c = Config::resolve("localhost:4318", None, no_env).unwrap();
    assert_eq!(c.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.endpoint, "http://localhost:4318");
    let c = Config::resolve("http://127.0.0.1:4317/", None, no_env).unwrap();
    assert_eq!(
        (c.protocol, c.endpoint.as_str()),
        (Protocol::Grpc, "http://127.0.0.1:4317")
    );
    let c = Config::resolve("localhost:4318", Some(Protocol::Grpc), no_env).unwrap();
    assert_eq!(c.protocol, Protocol::Grpc);
    let env = |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:9999".to_owned()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_owned()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("1500".to_owned()),
        _ => None,
    };
    let c = Config::resolve("", None, env).unwrap();
    assert_eq!(c.endpoint, "http://collector:9999");
    assert_eq!(c.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.metric_interval, Duration::from_millis(1500));
    assert_eq!(c.span_delay, Duration::from_secs(5));
    let c = Config::resolve("", None, no_env).unwrap();
    assert_eq!(
        (c.endpoint.as_str(), c.protocol),
        ("http://localhost:4317", Protocol::Grpc)
    );
}

#[test]
fn bad_endpoints_are_one_line_errors() {
    for bad in ["https://x:4317", "ftp://x", "http://", "http://a b"] {
        let e = Config::resolve(bad, None, no_env).unwrap_err();
        assert!(
            e.contains("OTLP endpoint") && !e.contains('\n'),
            "{bad}: {e}"
        );
    }
    let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".to_owned());
    assert!(Config::resolve("x:1", None, env)
        .unwrap_err()
        .contains("http/json"));
    let env = |k: &str| (k == "OTEL_BSP_SCHEDULE_DELAY").then(|| "soon".to_owned());
    assert!(Config::resolve("x:1", None, env)
        .unwrap_err()
        .contains("OTEL_BSP_SCHEDULE_DELAY"));
}

/// The names table and the Prometheus view agree: every Prometheus name listed here is
/// one `--prometheus` serves, once a record of each kind went through it.
#[test]
fn names_match_the_prometheus_view() {
    let mut m = crate::output::prometheus::GcMetrics::new();
    for rec in sample_records() {
        m.record(7, &rec);
    }
    m.set_lost_events(7, 1);
    let text = m
        .encode(crate::output::prometheus::Exposition::Text)
        .unwrap();
    for n in METRICS {
        let typed = format!("# TYPE {} ", n.prometheus);
        assert!(
            text.contains(&typed),
            "{} is not served:\n{text}",
            n.prometheus
        );
        let otlp_ok = n.otlp.starts_with("go.") == n.prometheus.starts_with("go_");
        assert!(otlp_ok, "{} vs {}", n.otlp, n.prometheus);
    }
}

fn sample_records() -> Vec<Record> {
    use crate::model::records::{AllocRecord, GcCpu};
    vec![
        Record::Gc(GcRecord {
            cycle: 4,
            start_ns: 1_000,
            end_ns: 9_000,
            sweep_term_ns: 100,
            mark_ns: 7_000,
            mark_term_ns: 900,
            pause_ns: 1_000,
            heap_start_bytes: Some(4 << 20),
            heap_end_bytes: Some(5 << 20),
            heap_live_bytes: Some(3 << 20),
            heap_goal_bytes: Some(8 << 20),
            goroutines: Some(12),
            gomaxprocs: Some(2),
            gogc: Some(100),
            memory_limit_bytes: Some(i64::MAX),
            cpu_percent: Some(3),
            cpu: Some(GcCpu {
                sweep_term_ns: 1,
                assist_ns: 2,
                background_ns: 3,
                idle_ns: 4,
                mark_term_ns: 5,
            }),
            ..GcRecord::default()
        }),
        Record::Stw(StwRecord {
            reason: crate::binary::StwReason::from_code(2),
            start_ns: 1_000,
            duration_ns: 100,
            cycle: Some(4),
        }),
        Record::Stw(StwRecord {
            reason: crate::binary::StwReason::from_code(7),
            start_ns: 20_000,
            duration_ns: 2_000,
            cycle: None,
        }),
        Record::Alloc(AllocRecord {
            ts_ns: 10_000,
            total_bytes: 1 << 30,
            rate_bytes_per_s: Some(1 << 20),
            alloc_objects: Some(99),
        }),
    ]
}

fn state() -> State {
    State {
        procs: BTreeMap::new(),
        finished: Vec::new(),
        spans: Vec::new(),
        ids: Ids::new(42),
        clock_offset: 1_000_000_000_000,
        dropped: 0,
    }
}

#[test]
fn cycles_and_stops_become_spans_of_one_trace() {
    let mut st = state();
    for rec in sample_records() {
        st.record(7, &rec);
    }
    let reqs = st.take_spans();
    assert_eq!(reqs.len(), 1);
    let spans = &reqs[0].0.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 3);
    let (cycle, gc_stop, other) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!(cycle.name, "GC cycle");
    assert_eq!(cycle.start_time_unix_nano, 1_000_000_001_000);
    assert_eq!(cycle.end_time_unix_nano, 1_000_000_009_000);
    let times: Vec<u64> = cycle
        .events
        .iter()
        .map(|e| e.time_unix_nano - 1_000_000_000_000)
        .collect();
    assert_eq!(times, [1_000, 1_100, 8_100]);
    assert_eq!(gc_stop.trace_id, cycle.trace_id);
    assert_eq!(gc_stop.parent_span_id, cycle.span_id);
    assert_ne!(other.trace_id, cycle.trace_id);
    assert!(other.parent_span_id.is_empty());
    assert_eq!(other.end_time_unix_nano - other.start_time_unix_nano, 2_000);
    assert!(st.take_spans().is_empty());
}

#[test]
fn metrics_are_cumulative_and_ended_processes_go() {
    let mut st = state();
    for rec in sample_records() {
        st.record(7, &rec);
    }
    st.record(7, &sample_records()[0]);
    let reqs = st.take_metrics();
    let rm = &reqs[0].0.resource_metrics;
    assert_eq!(rm.len(), 1);
    let metrics = &rm[0].scope_metrics[0].metrics;
    let find = |name: &str| metrics.iter().find(|m| m.name == name).unwrap();
    match &find("go.gc.cycles.total").data {
        Some(metric::Data::Sum(s)) => {
            assert!(s.is_monotonic);
            assert_eq!(
                s.data_points[0].value,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(4))
            );
        }
        other => panic!("{other:?}"),
    }
    match &find("gctrace_bpf.gc.pause").data {
        Some(metric::Data::Histogram(h)) => {
            let p = &h.data_points[0];
            assert_eq!(p.count, 2);
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), 2);
            assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
            // 1 µs is the first bound: a 1000 ns pause is in the first bucket (le).
            assert_eq!(p.bucket_counts[0], 2);
        }
        other => panic!("{other:?}"),
    }
    // Still there next time, then gone after the summary's export.
    assert_eq!(st.take_metrics().len(), 1);
    st.record(7, &Record::Summary(Summary::default()));
    assert_eq!(st.take_metrics()[0].0.resource_metrics.len(), 1);
    assert!(st.take_metrics().is_empty());
}

#[test]
fn a_full_queue_counts_what_it_drops() {
    let mut st = state();
    let stop = sample_records()[2].clone();
    for _ in 0..MAX_QUEUED_SPANS + 3 {
        st.record(7, &stop);
    }
    assert_eq!(st.dropped, 3);
    assert_eq!(st.spans.len(), MAX_QUEUED_SPANS);
}

#[test]
fn resource_has_the_process_and_its_labels() {
    let mut p = ProcessInfo::new(5, "/usr/bin/server", "go1.25.5", "x86_64");
    p.labels.pod_uid = Some("abc".to_owned());
    let attrs = resource_attributes(5, Some(&p));
    let get = |k: &str| attrs.iter().find(|a| a.key == k).map(|a| a.value.clone());
    assert_eq!(get("process.pid"), Some(attr_int("x", 5).value));
    assert_eq!(
        get("process.executable.name"),
        Some(attr_str("x", "server").value)
    );
    assert_eq!(get("host.arch"), Some(attr_str("x", "amd64").value));
    assert_eq!(get("k8s.pod.uid"), Some(attr_str("x", "abc").value));
}
