//! `--otlp ENDPOINT`: a live run of gcload, launched under the tracer with `--format json`
//! and `--otlp`, against a receiver this test starts (tests/otlp/receiver.py) that decodes
//! the wire format with the official schema (PyPI's opentelemetry-proto and grpcio; no
//! decoder of ours). Over gRPC and over http/protobuf, what it received must match the
//! run's own JSON records: one `GC cycle` span per gc record with its cycle number,
//! phases, pause and heap figures, one `stop the world` span per stw record with its
//! reason and duration (GC stops children of their cycle), and final metrics whose
//! cycle count, pause histograms and heap gauges add up to the same records. The
//! workload's runtime.MemStats (NumGC) is the independent check that the JSON itself has
//! every cycle.
//! Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).

use crate::harness;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use harness::MemStats;
use serde_json::Value;

/// Where `cargo xtask setup` installs opentelemetry-proto and grpcio.
const PYTHON_TOOLS: &str = "/var/cache/gctrace-bpf/python-tools";

struct Receiver {
    child: Child,
    grpc_port: u16,
    http_port: u16,
}

impl Receiver {
    fn start(out: &Path) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/receiver.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(out)
            .env("PYTHONPATH", PYTHON_TOOLS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the OTLP receiver");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("receiver stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the receiver's ready line");
        let ports: Vec<u16> = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| {
                panic!(
                    "receiver did not start ({line:?}); is `cargo xtask setup` done \
                     (opentelemetry-proto and grpcio in {PYTHON_TOOLS})?"
                )
            })
            .split_whitespace()
            .map(|p| p.parse().expect("port"))
            .collect();
        Receiver {
            child,
            grpc_port: ports[0],
            http_port: ports[1],
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An int64/uint64 of protobuf's JSON mapping: a string, or a number.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not an integer: {v}")),
        Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("not an integer: {v}")),
        _ => panic!("not an integer: {v}"),
    }
}

/// Attributes (`[{key, value: {intValue|stringValue|doubleValue}}]`) by key.
fn attrs(v: &Value) -> BTreeMap<String, Value> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    let value = kv["value"]
                        .as_object()
                        .and_then(|o| o.values().next().cloned())
                        .unwrap_or(Value::Null);
                    (kv["key"].as_str().unwrap_or("").to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn attr_int(a: &BTreeMap<String, Value>, key: &str) -> Option<i64> {
    a.get(key).map(int)
}

/// Each span received, as its name, duration and attributes, sorted.
fn span_digest(received: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = received
        .iter()
        .filter(|r| r["signal"] == "traces")
        .flat_map(|r| {
            r["request"]["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            format!(
                "{} {} {:?}",
                s["name"],
                int(&s["endTimeUnixNano"]) - int(&s["startTimeUnixNano"]),
                attrs(&s["attributes"])
            )
        })
        .collect();
    out.sort();
    out
}

#[derive(Debug)]
struct Run {
    json: Vec<Value>,
    received: Vec<Value>,
    /// What `replay RECORDING --otlp` of the same run sent (over HTTP).
    replayed: Vec<Value>,
    stderr: String,
    memstats: MemStats,
}

/// A traced run exporting over `protocol` to the receiver, or, with `reachable` false,
/// to a port nobody listens on; None (after saying why) unless the integration tests are
/// requested.
fn traced(protocol: &str, reachable: bool) -> Option<Run> {
    let fx = harness::gcload_fixture::start()?;
    let got = fx.dir().join("received.ndjson");
    let receiver = Receiver::start(&got);
    let port = match protocol {
        _ if !reachable => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port(),
        "grpc" => receiver.grpc_port,
        _ => receiver.http_port,
    };
    let out = fx.dir().join("trace.ndjson");
    let memstats = fx.dir().join("memstats.json");
    let mut cmd = harness::TracerCmd::new();
    cmd.env("GODEBUG", "gctrace=1")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        // Spans go out every 200 ms and metrics every second while the run lasts: the
        // last metrics export, at the end, must still be the complete one.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .args(["--format", "json", "--output"])
        .arg(&out)
        .arg("--record")
        .arg(fx.dir().join("run.gct"))
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--otlp-protocol", protocol, "--"])
        .arg(&fx.gcload)
        .args(harness::WORKLOAD_ARGS)
        .arg("-memstats-out")
        .arg(&memstats);
    let run = cmd.run(fx.dir(), "traced");
    assert!(
        run.status.success(),
        "traced run failed: {}\n{}",
        run.status,
        harness::diagnostics(&run.stdout, &run.stderr)
    );
    drop(receiver);
    let replayed = fx.dir().join("replayed.ndjson");
    if reachable {
        let receiver = Receiver::start(&replayed);
        let mut cmd = harness::TracerCmd::new();
        cmd.arg("replay")
            .arg(fx.dir().join("run.gct"))
            .args(["--format", "json", "--output", "/dev/null", "--otlp"])
            .arg(format!("http://127.0.0.1:{}", receiver.http_port))
            .args(["--otlp-protocol", "http/protobuf"]);
        let run = cmd.run(fx.dir(), "replay");
        assert!(
            run.status.success(),
            "replay failed\n{}",
            harness::diagnostics(&run.stdout, &run.stderr)
        );
    }
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    Some(Run {
        json: lines(&out),
        received: lines(&got),
        replayed: lines(&replayed),
        stderr: run.stderr,
        memstats: MemStats::read(&memstats),
    })
}

fn check(protocol: &str) {
    let Some(run) = traced(protocol, true) else {
        return;
    };
    let diag = format!("stderr:\n{}", run.stderr);
    let of = |ty: &str| -> Vec<&Value> { run.json.iter().filter(|r| r["type"] == ty).collect() };
    let gcs = of("gc");
    let stws = of("stw");
    let pid = of("process")[0]["pid"].as_i64().expect("pid");
    assert!(
        gcs.len() as u32 >= run.memstats.num_gc.min(5) && !gcs.is_empty(),
        "too few cycles in the JSON: {} (MemStats.NumGC {})\n{diag}",
        gcs.len(),
        run.memstats.num_gc
    );
    // The run is launched: the JSON has every cycle the runtime completed by the time
    // the workload read its MemStats.
    let cycles: Vec<i64> = gcs
        .iter()
        .map(|g| g["cycle"].as_i64().expect("cycle"))
        .collect();
    assert!(
        cycles.contains(&i64::from(run.memstats.num_gc)),
        "cycle {} (NumGC) missing from the JSON {cycles:?}",
        run.memstats.num_gc
    );
    assert!(
        run.received
            .iter()
            .all(|r| r["transport"] == if protocol == "grpc" { "grpc" } else { "http" }),
        "requests came over the wrong transport"
    );
    assert!(
        run.stderr.contains("OTLP export to http://127.0.0.1:")
            && !run.stderr.contains("NOT delivered"),
        "the exit summary must say everything was delivered\n{diag}"
    );

    // ---- spans
    let mut spans = Vec::new();
    for r in run.received.iter().filter(|r| r["signal"] == "traces") {
        for rs in r["request"]["resourceSpans"]
            .as_array()
            .expect("resourceSpans")
        {
            let res = attrs(&rs["resource"]["attributes"]);
            assert_eq!(attr_int(&res, "process.pid"), Some(pid), "{rs}");
            assert_eq!(
                res.get("process.executable.name"),
                Some(&Value::from("gcload"))
            );
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                spans.extend(ss["spans"].as_array().expect("spans").iter().cloned());
            }
        }
    }
    let cycle_spans: BTreeMap<i64, &Value> = spans
        .iter()
        .filter(|s| s["name"] == "GC cycle")
        .map(|s| {
            (
                attr_int(&attrs(&s["attributes"]), "go.gc.cycle").expect("go.gc.cycle"),
                s,
            )
        })
        .collect();
    assert_eq!(
        cycle_spans.keys().copied().collect::<Vec<_>>(),
        cycles,
        "one GC cycle span per gc record\n{diag}"
    );
    let mut failures = Vec::new();
    for g in &gcs {
        let c = g["cycle"].as_i64().unwrap_or(-1);
        let s = cycle_spans[&c];
        let a = attrs(&s["attributes"]);
        let dur = int(&s["endTimeUnixNano"]) - int(&s["startTimeUnixNano"]);
        let want_dur = g["end_ns"].as_i64().unwrap_or(0) - g["start_ns"].as_i64().unwrap_or(0);
        if dur != want_dur {
            failures.push(format!("cycle {c}: span lasts {dur} ns, record {want_dur}"));
        }
        for (attr, field) in [
            ("go.gc.sweep_term_ns", "sweep_term_ns"),
            ("go.gc.mark_ns", "mark_ns"),
            ("go.gc.mark_term_ns", "mark_term_ns"),
            ("go.gc.pause_ns", "pause_ns"),
        ] {
            if attr_int(&a, attr) != g[field].as_i64() {
                failures.push(format!(
                    "cycle {c}: {attr} {:?} vs {field} {}",
                    a.get(attr),
                    g[field]
                ));
            }
        }
        for (attr, field) in [
            ("go.gc.heap_start_bytes", "/heap_start_bytes"),
            ("go.gc.heap_end_bytes", "/heap_end_bytes"),
            ("go.gc.heap_live_bytes", "/heap_live_bytes"),
            ("go.gc.heap_goal_bytes", "/heap_goal_bytes"),
        ] {
            let want = g.pointer(field).and_then(Value::as_i64);
            if attr_int(&a, attr) != want {
                failures.push(format!(
                    "cycle {c}: {attr} {:?} vs {field} {want:?}",
                    a.get(attr)
                ));
            }
        }
        let events: Vec<&str> = s["events"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["name"].as_str()).collect())
            .unwrap_or_default();
        if events != ["sweep termination", "mark", "mark termination"] {
            failures.push(format!("cycle {c}: phase events {events:?}"));
        }
    }
    // Stops: the same multiset of (reason, duration, cycle) as the JSON's.
    let mut want: Vec<(String, i64, Option<i64>)> = stws
        .iter()
        .map(|s| {
            (
                s["reason"].as_str().unwrap_or("").to_owned(),
                s["duration_ns"].as_i64().unwrap_or(-1),
                s["cycle"].as_i64(),
            )
        })
        .collect();
    let mut got: Vec<(String, i64, Option<i64>)> = spans
        .iter()
        .filter(|s| s["name"] == "stop the world")
        .map(|s| {
            let a = attrs(&s["attributes"]);
            let cycle = attr_int(&a, "go.gc.cycle");
            if let Some(c) = cycle {
                let parent = &cycle_spans.get(&c).map(|p| p["spanId"].clone());
                if parent.as_ref() != Some(&s["parentSpanId"])
                    || cycle_spans.get(&c).map(|p| &p["traceId"]) != Some(&s["traceId"])
                {
                    failures.push(format!(
                        "stop of cycle {c} is not a child of its cycle's span"
                    ));
                }
            }
            (
                a.get("go.stw.reason")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                int(&s["endTimeUnixNano"]) - int(&s["startTimeUnixNano"]),
                cycle,
            )
        })
        .collect();
    want.sort();
    got.sort();
    if want != got {
        failures.push(format!(
            "stop spans differ from the stw records:\n json {want:?}\n otlp {got:?}"
        ));
    }

    // ---- metrics: the last export of the process is the complete one.
    let last = run
        .received
        .iter()
        .filter(|r| r["signal"] == "metrics")
        .flat_map(|r| {
            r["request"]["resourceMetrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .rfind(|rm| attr_int(&attrs(&rm["resource"]["attributes"]), "process.pid") == Some(pid))
        .unwrap_or_else(|| panic!("no metrics received\n{diag}"));
    let metrics: BTreeMap<String, Value> = last["scopeMetrics"][0]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or("").to_owned(), m.clone()))
        .collect();
    let number = |name: &str| -> Option<i64> {
        let m = metrics.get(name)?;
        let p = m.get("sum").or(m.get("gauge"))?["dataPoints"]
            .get(0)?
            .clone();
        p.get("asInt").map(int)
    };
    let last_gc = gcs.last().expect("a cycle");
    for (name, want) in [
        ("go.gc.cycles.total", last_gc["cycle"].as_i64()),
        (
            "go.gc.heap.live",
            last_gc.pointer("/heap_live_bytes").and_then(Value::as_i64),
        ),
        (
            "gctrace_bpf.gc.heap.goal",
            last_gc.pointer("/heap_goal_bytes").and_then(Value::as_i64),
        ),
    ] {
        if number(name) != want {
            failures.push(format!("{name}: {:?}, JSON {want:?}", number(name)));
        }
    }
    match metrics.get("gctrace_bpf.gc.pause") {
        Some(m) => {
            let p = &m["histogram"]["dataPoints"][0];
            let count = int(&p["count"]);
            let sum = p["sum"].as_f64().unwrap_or(-1.0);
            let want_sum: f64 = gcs
                .iter()
                .map(|g| g["pause_ns"].as_u64().unwrap_or(0) as f64 / 1e9)
                .sum();
            if count != gcs.len() as i64 || (sum - want_sum).abs() > 1e-9 {
                failures.push(format!(
                    "gc.pause: count {count} sum {sum}, JSON {} and {want_sum}",
                    gcs.len()
                ));
            }
        }
        None => failures.push("no gctrace_bpf.gc.pause".to_owned()),
    }
    // Stops by reason, GC and not.
    let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
    for s in &stws {
        *by_reason
            .entry(s["reason"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    let mut got_reasons: BTreeMap<String, i64> = BTreeMap::new();
    for name in ["go.sched.pauses.total.gc", "go.sched.pauses.total.other"] {
        for p in metrics
            .get(name)
            .and_then(|m| m["histogram"]["dataPoints"].as_array().cloned())
            .unwrap_or_default()
        {
            let reason = attrs(&p["attributes"])
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            got_reasons.insert(reason, int(&p["count"]));
        }
    }
    if by_reason != got_reasons {
        failures.push(format!(
            "pauses by reason: OTLP {got_reasons:?}, JSON {by_reason:?}"
        ));
    }
    // Replayed from the recording, the spans are the live ones (ids and the placing of
    // monotonic times on the wall clock aside).
    let (live, replayed) = (span_digest(&run.received), span_digest(&run.replayed));
    if live != replayed {
        failures.push(format!(
            "replay --otlp sent other spans than the live run:\n live {live:?}\n replay {replayed:?}"
        ));
    }
    harness::assert_no_failures(&format!("OTLP over {protocol}"), &failures, &diag);
}

/// A receiver that is not there: every span and point is counted as not delivered, the
/// warning is printed once, and the trace itself is complete.
#[test]
fn otlp_failures_are_counted() {
    let Some(run) = traced("grpc", false) else {
        return;
    };
    let records = |ty: &str| run.json.iter().filter(|r| r["type"] == ty).count();
    let spans = records("gc") + records("stw");
    let diag = format!("stderr:\n{}", run.stderr);
    assert!(records("gc") > 0 && records("summary") == 1, "{diag}");
    assert!(run.received.is_empty());
    let warnings = run.stderr.matches("warning: OTLP export to").count();
    assert_eq!(warnings, 1, "one warning for the run of failures\n{diag}");
    let summary = run
        .stderr
        .lines()
        .find(|l| l.contains("OTLP export to") && l.contains("sent"))
        .unwrap_or_else(|| panic!("no exit summary\n{diag}"));
    let want = "0 metric points and 0 spans sent; NOT delivered: ";
    assert!(summary.contains(want), "{summary}");
    let lost_spans = format!(" metric points and {spans} spans (");
    assert!(
        summary.contains(&lost_spans),
        "the summary must count the {spans} spans of the JSON's gc and stw records: {summary}"
    );
}

#[test]
fn otlp_grpc_matches_the_json() {
    check("grpc");
}

#[test]
fn otlp_http_matches_the_json() {
    check("http/protobuf");
}
