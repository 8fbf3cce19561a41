//! `--prometheus ADDR`: a live run serves `/metrics`, and what a real HTTP client scrapes
//! from it agrees exactly with the JSON records of the same run.
//!
//! Exact, without timing luck: the tracer updates its metrics and its JSON output from
//! the same records, in order, and a scrape sees the metrics after a whole number of
//! records. So every scrape, whenever it happens, must equal what some prefix of the
//! run's JSON stream adds up to: its cycles, its pause counts, sums and buckets, the
//! heap figures of its last cycle. The workload (gcload -idle) then goes quiet while
//! still traced; once the metrics show all the cycles the runtime says it completed
//! (-memstats-out), a last scrape must cover every one of them, and its forced cycles
//! must be the runtime's own count.
//! Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).

use crate::harness;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use harness::exporters::{agent, served_url, wait_for};
use harness::{ChildGuard, MemStats};
use serde_json::Value;

/// gcload's line once its work is done (it then idles until SIGTERM).
const DONE: &str = "gcload done: goroutines=4 forced=3 readmemstats=10";

// ---------------------------------------------------------------------------------
// The exposition, as a scraper reads it

#[derive(Clone, Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (or OpenMetrics text): `# ` lines are metadata,
/// every other line is `name{label="value",...} value`.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{why}: {line:?}");
        let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(mut l) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = l.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = l.split_once("=\"").ok_or_else(|| bad("label"))?;
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => return Err(bad("escape")),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => return Err(bad("unterminated label value")),
                    }
                };
                labels.insert(key.to_owned(), value);
                l = &after[end + 1..];
                l = l.strip_prefix(',').unwrap_or(l);
            }
        }
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| bad("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("value"))?,
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    Ok(out)
}

struct Scrape {
    samples: Vec<Sample>,
    /// When it was taken, for messages.
    at: Duration,
}

impl Scrape {
    /// The value of `name` for labels `labels` (besides pid and exe, which must be the
    /// target's), if the series exists.
    fn get(&self, target: &Target, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.get("pid") == Some(&target.pid)
                    && s.labels.get("exe") == Some(&target.exe)
                    && target
                        .labels
                        .iter()
                        .all(|(k, v)| s.labels.get(k) == Some(v))
                    && s.labels.len() == labels.len() + 2 + target.labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// Upper bounds of the `le` buckets of histogram `name` (`name_bucket`) found for
    /// this reason or phase.
    fn bucket_bounds(&self, name: &str) -> Vec<f64> {
        let mut bounds: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
            .filter_map(|s| s.labels.get("le"))
            .filter_map(|le| match le.as_str() {
                "+Inf" => Some(f64::INFINITY),
                v => v.parse().ok(),
            })
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        bounds
    }
}

struct Target {
    pid: String,
    exe: String,
    /// The process's cgroup labels that the `process` record has (non-null): every series
    /// must carry exactly these too.
    labels: BTreeMap<String, String>,
}

/// GET `url` (with `accept`, if given): status, Content-Type, body.
fn get(agent: &ureq::Agent, url: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req
        .call()
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("reading the body of {url}: {e}"));
    (status, content_type, body)
}

// ---------------------------------------------------------------------------------
// What a prefix of the JSON stream adds up to

#[derive(Clone, Debug, Default)]
struct Hist {
    durations_ns: Vec<u64>,
}

impl Hist {
    fn count(&self) -> f64 {
        self.durations_ns.len() as f64
    }
    /// Summed as the tracer sums: seconds as f64, in record order.
    fn sum(&self) -> f64 {
        self.durations_ns.iter().map(|&ns| ns as f64 / 1e9).sum()
    }
    fn bucket(&self, le: f64) -> f64 {
        self.durations_ns
            .iter()
            .filter(|&&ns| ns as f64 / 1e9 <= le)
            .count() as f64
    }
}

#[derive(Clone, Debug, Default)]
struct Expected {
    records: usize,
    gc_records: usize,
    max_cycle: u64,
    by_trigger: BTreeMap<String, u64>,
    /// (GC stop?, reason) → durations.
    pauses: BTreeMap<(bool, String), Hist>,
    phases: BTreeMap<&'static str, Hist>,
    cycle_pause: Hist,
    gauges: BTreeMap<&'static str, u64>,
    alloc_total: Option<u64>,
}

const GC_REASONS: [&str; 2] = ["GC sweep termination", "GC mark termination"];

impl Expected {
    fn apply(&mut self, v: &Value) {
        self.records += 1;
        let u = |key: &str| v.get(key).and_then(Value::as_u64);
        match v.get("type").and_then(Value::as_str) {
            Some("process") => {
                if let Some(n) = u("gomaxprocs") {
                    self.gauges.insert("go_sched_gomaxprocs_threads", n);
                }
            }
            Some("gc") => {
                self.gc_records += 1;
                self.max_cycle = self.max_cycle.max(u("cycle").unwrap_or(0));
                let trigger = v
                    .get("trigger")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned();
                *self.by_trigger.entry(trigger).or_default() += 1;
                for (phase, key) in [
                    ("sweep_termination", "sweep_term_ns"),
                    ("mark", "mark_ns"),
                    ("mark_termination", "mark_term_ns"),
                ] {
                    self.phases
                        .entry(phase)
                        .or_default()
                        .durations_ns
                        .push(u(key).unwrap_or(0));
                }
                self.cycle_pause
                    .durations_ns
                    .push(u("pause_ns").unwrap_or(0));
                for (metric, key) in [
                    ("gctrace_bpf_gc_heap_goal_bytes", "heap_goal_bytes"),
                    ("go_gc_heap_live_bytes", "heap_live_bytes"),
                    ("gctrace_bpf_gc_heap_start_bytes", "heap_start_bytes"),
                    ("gctrace_bpf_gc_heap_end_bytes", "heap_end_bytes"),
                    ("go_sched_gomaxprocs_threads", "gomaxprocs"),
                ] {
                    if let Some(n) = u(key) {
                        self.gauges.insert(metric, n);
                    }
                }
            }
            Some("stw") => {
                let reason = v
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let gc = GC_REASONS.contains(&reason.as_str());
                self.pauses
                    .entry((gc, reason))
                    .or_default()
                    .durations_ns
                    .push(u("duration_ns").unwrap_or(0));
            }
            Some("alloc") => self.alloc_total = u("total_bytes").or(self.alloc_total),
            _ => {}
        }
    }

    /// Every way `scrape` differs from this state (empty: they agree).
    fn differences(&self, scrape: &Scrape, t: &Target) -> Vec<String> {
        let mut diffs = Vec::new();
        let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        // Counters and histograms: a series not created yet counts as 0.
        let mut counter = |name: &str, labels: &[(&str, &str)], want: f64| {
            let got = scrape.get(t, name, labels).unwrap_or(0.0);
            if !close(got, want) {
                diffs.push(format!("{name}{labels:?}: scraped {got}, JSON says {want}"));
            }
        };
        counter(
            "go_gc_cycles_total_gc_cycles_total",
            &[],
            self.max_cycle as f64,
        );
        for trigger in ["heap", "time", "forced", "unknown"] {
            let want = self.by_trigger.get(trigger).copied().unwrap_or(0) as f64;
            counter("gctrace_bpf_gc_cycles_total", &[("trigger", trigger)], want);
        }
        for ((gc, reason), hist) in &self.pauses {
            let name = if *gc {
                "go_sched_pauses_total_gc_seconds"
            } else {
                "go_sched_pauses_total_other_seconds"
            };
            let labels = [("reason", reason.as_str())];
            counter(&format!("{name}_count"), &labels, hist.count());
            counter(&format!("{name}_sum"), &labels, hist.sum());
            for le in scrape.bucket_bounds(name) {
                let le_text = if le.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    // The scrape's own spelling of the bound.
                    scrape
                        .samples
                        .iter()
                        .filter(|s| s.name == format!("{name}_bucket"))
                        .filter_map(|s| s.labels.get("le"))
                        .find(|l| l.parse::<f64>().ok() == Some(le))
                        .cloned()
                        .unwrap_or_default()
                };
                counter(
                    &format!("{name}_bucket"),
                    &[("reason", reason.as_str()), ("le", le_text.as_str())],
                    hist.bucket(le),
                );
            }
        }
        for (phase, hist) in &self.phases {
            let labels = [("phase", *phase)];
            counter("gctrace_bpf_gc_phase_seconds_count", &labels, hist.count());
            counter("gctrace_bpf_gc_phase_seconds_sum", &labels, hist.sum());
        }
        counter(
            "gctrace_bpf_gc_pause_seconds_count",
            &[],
            self.cycle_pause.count(),
        );
        counter(
            "gctrace_bpf_gc_pause_seconds_sum",
            &[],
            self.cycle_pause.sum(),
        );
        counter(
            "go_gc_heap_allocs_bytes_total",
            &[],
            self.alloc_total.unwrap_or(0) as f64,
        );
        // Gauges: present exactly when the JSON has had a value.
        for name in [
            "gctrace_bpf_gc_heap_goal_bytes",
            "go_gc_heap_live_bytes",
            "gctrace_bpf_gc_heap_start_bytes",
            "gctrace_bpf_gc_heap_end_bytes",
            "go_sched_gomaxprocs_threads",
        ] {
            let want = self.gauges.get(name).map(|&n| n as f64);
            let got = scrape.get(t, name, &[]);
            if got != want {
                diffs.push(format!("{name}: scraped {got:?}, JSON says {want:?}"));
            }
        }
        diffs
    }
}

/// The prefix of `records` that `scrape` equals: (its length, the state it adds up
/// to), or the closest one's differences.
fn matching_prefix(
    records: &[Value],
    scrape: &Scrape,
    t: &Target,
) -> Result<Expected, (usize, Vec<String>)> {
    let mut state = Expected::default();
    let mut best: Option<(usize, Vec<String>)> = None;
    for i in 0..=records.len() {
        if i > 0 {
            state.apply(&records[i - 1]);
        }
        let diffs = state.differences(scrape, t);
        if diffs.is_empty() {
            return Ok(state);
        }
        if best.as_ref().is_none_or(|(_, d)| diffs.len() < d.len()) {
            best = Some((i, diffs));
        }
    }
    Err(best.unwrap_or_default())
}

#[test]
fn scrapes_match_the_json_of_the_same_run() {
    let Some(fx) = harness::gcload_fixture::start() else {
        return;
    };
    let out = fx.dir().join("trace.ndjson");
    let memstats_path = fx.dir().join("memstats.json");
    let mut cmd = harness::TracerCmd::new();
    cmd.args(["--format", "json", "--output"])
        .arg(&out)
        // Port 0: the kernel picks a free port, the tracer says which. No race with
        // other tests for a "free" port.
        .args(["--prometheus", "127.0.0.1:0", "--"])
        .arg(&fx.gcload)
        .args([
            "-duration",
            "3s",
            "-forced",
            "3",
            "-readmemstats",
            "10",
            "-idle",
        ])
        .arg("-memstats-out")
        .arg(&memstats_path);
    let mut tracer = ChildGuard::spawn(&mut cmd, fx.dir(), "tracer");
    let started = Instant::now();
    let diag = |tracer: &ChildGuard| {
        format!(
            "command {cmd:?}\n{}",
            harness::diagnostics(&tracer.stdout_text(), &tracer.stderr_text())
        )
    };

    let url = wait_for(Duration::from_secs(60), || {
        served_url(&tracer.stderr_text())
    })
    .unwrap_or_else(|| panic!("the tracer never said where it serves\n{}", diag(&tracer)));
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    let agent = agent();

    // Scrape all along the workload's run, until it says its work is done.
    let mut scrapes = Vec::new();
    let deadline = Instant::now() + harness::RUN_TIMEOUT;
    loop {
        assert!(
            tracer.try_wait().is_none(),
            "the tracer exited during the run: {:?}\n{}",
            tracer.try_wait(),
            diag(&tracer)
        );
        let done = tracer.stdout_text().lines().any(|l| l == DONE);
        let (status, content_type, body) = get(&agent, &url, None);
        assert_eq!(status, 200, "GET {url}: {body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let samples = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        scrapes.push(Scrape {
            samples,
            at: started.elapsed(),
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no {DONE:?}\n{}", diag(&tracer));
        thread::sleep(Duration::from_millis(250));
    }
    let memstats = MemStats::read(&memstats_path);

    // The workload idles now. Once the metrics show every cycle the runtime ran, the
    // tracer has processed them all: that scrape is the last.
    let mut last_body = String::new();
    let last = wait_for(Duration::from_secs(30), || {
        let (status, _, body) = get(&agent, &url, None);
        assert_eq!(status, 200);
        let samples = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let cycles = samples
            .iter()
            .find(|s| s.name == "go_gc_cycles_total_gc_cycles_total")
            .map_or(0.0, |s| s.value);
        last_body = body;
        (cycles >= f64::from(memstats.num_gc)).then(|| Scrape {
            samples,
            at: started.elapsed(),
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "the metrics never showed the runtime's {} cycles; last scrape:\n{last_body}\n{}",
            memstats.num_gc,
            diag(&tracer)
        )
    });

    // The other routes and the OpenMetrics format, while it serves.
    let (status, _, _) = get(&agent, &url.replace("/metrics", "/nope"), None);
    assert_eq!(status, 404);
    let (status, content_type, body) = get(
        &agent,
        &url,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(parse_exposition(&body).is_ok());

    // End the run: the workload exits 0 on SIGTERM, and the tracer with it.
    let pid: i32 = last
        .samples
        .iter()
        .find(|s| s.name == "gctrace_bpf_target_info")
        .and_then(|s| s.labels.get("pid")?.parse().ok())
        .unwrap_or_else(|| panic!("no gctrace_bpf_target_info with a pid:\n{last_body}"));
    // SAFETY: plain syscall; the pid is the tracer's child, which it has not reaped
    // (the tracer is still running, serving).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tracer.wait_timeout(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "the tracer did not exit 0 after its command did: {status:?}\n{}",
        diag(&tracer)
    );

    // Now judge every scrape against the JSON of the same run.
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let process = records
        .first()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("process"))
        .unwrap_or_else(|| panic!("the JSON does not start with a process record:\n{text}"));
    let target = Target {
        pid: process["pid"]
            .as_u64()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        exe: process["exe"].as_str().unwrap_or_default().to_owned(),
        labels: [
            "cgroup",
            "container_id",
            "container_runtime",
            "container_name",
            "pod_uid",
            "pod_name",
            "pod_namespace",
            "systemd_unit",
        ]
        .iter()
        .filter_map(|k| Some((k.to_string(), process[*k].as_str()?.to_owned())))
        .collect(),
    };
    assert_eq!(target.pid, pid.to_string());
    let summary = records
        .last()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("summary"))
        .unwrap_or_else(|| panic!("the JSON does not end with a summary"));
    assert_eq!(summary["lost_events"].as_u64(), Some(0), "events were lost");

    let mut failures = Vec::new();
    let mut matched = Vec::new();
    for (i, scrape) in scrapes.iter().chain(std::iter::once(&last)).enumerate() {
        match matching_prefix(&records, scrape, &target) {
            Ok(state) => matched.push(state),
            Err((closest, diffs)) => failures.push(format!(
                "scrape {i} (at {:?}) equals no prefix of the JSON; the closest, {closest} \
                 records, differs in:\n    {}",
                scrape.at,
                diffs.join("\n    ")
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scrapes disagree with the JSON:\n- {}",
        failures.len(),
        scrapes.len() + 1,
        failures.join("\n- ")
    );

    // The last scrape covers the whole run: every cycle the runtime had completed when
    // it wrote -memstats-out, the forced ones as the runtime counted them, every reason
    // of stop seen, with the process labels right. (A heap-triggered cycle still in its
    // mark phase then may complete later, after the last scrape: it is in the JSON only.)
    let num_gc = u64::from(memstats.num_gc);
    let gc_cycles: Vec<u64> = records
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("gc"))
        .filter_map(|r| r["cycle"].as_u64())
        .collect();
    let done_by_memstats = gc_cycles.iter().filter(|&&c| c <= num_gc).count();
    let end = matched.last().cloned().unwrap_or_default();
    assert!(
        end.max_cycle >= num_gc && end.gc_records >= done_by_memstats,
        "the last scrape covers {} gc records up to cycle {}; the runtime had completed \
         {num_gc} cycles, {done_by_memstats} of them in the JSON",
        end.gc_records,
        end.max_cycle
    );
    assert!(
        gc_cycles.len() >= 10,
        "only {} gc records: {gc_cycles:?}",
        gc_cycles.len()
    );
    assert_eq!(
        last.get(
            &target,
            "gctrace_bpf_gc_cycles_total",
            &[("trigger", "forced")]
        ),
        Some(f64::from(memstats.num_forced_gc)),
        "forced cycles: the runtime counted {}",
        memstats.num_forced_gc
    );
    assert!(
        end.pauses
            .contains_key(&(false, "read mem stats".to_owned())),
        "no ReadMemStats stop in the last scrape's prefix"
    );
    let goal = end.gauges.get("gctrace_bpf_gc_heap_goal_bytes").copied();
    assert!(goal.is_some_and(|g| g > 0), "heap goal {goal:?}");
    assert_eq!(
        last.get(&target, "gctrace_bpf_lost_events_total", &[]),
        Some(0.0)
    );
    let info = last
        .samples
        .iter()
        .find(|s| s.name == "gctrace_bpf_target_info")
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    assert_eq!(info.get("exe"), Some(&target.exe));
    assert_eq!(
        info.get("go_version").map(String::as_str),
        process["go_version"].as_str()
    );
    let strays: Vec<&Sample> = last
        .samples
        .iter()
        .filter(|s| {
            s.labels.get("pid") != Some(&target.pid) || s.labels.get("exe") != Some(&target.exe)
        })
        .collect();
    assert!(
        strays.is_empty(),
        "series without the target's labels: {strays:?}"
    );
    println!(
        "{} scrapes, each equal to a prefix of the JSON (records: {:?}); the last: {} \
         cycles, {} stops",
        scrapes.len() + 1,
        matched.iter().map(|m| m.records).collect::<Vec<_>>(),
        end.gc_records,
        end.pauses
            .values()
            .map(|h| h.durations_ns.len())
            .sum::<usize>()
    );
}

/// A port already taken is one line and exit 1, before the command is started.
#[test]
fn a_taken_port_fails_before_anything_starts() {
    if !harness::integration_enabled() {
        return;
    }
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("local addr");
    let tmp = tempfile::tempdir().expect("tempdir");
    let marker = tmp.path().join("started");
    let out = harness::TracerCmd::new()
        .args(["--prometheus", &addr.to_string(), "--", "touch"])
        .arg(&marker)
        .stdin(Stdio::null())
        .output()
        .expect("running gctrace-bpf");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "gctrace-bpf: cannot serve Prometheus metrics on {addr}: "
        )) && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        !marker.exists(),
        "the command ran although the tracer could not serve"
    );
}

/// A malformed address is a usage error (no root needed).
#[test]
fn a_bad_address_is_a_usage_error() {
    for bad in ["9101", "localhost", "127.0.0.1:http"] {
        let out = harness::TracerCmd::new()
            .args(["--prometheus", bad, "--", "true"])
            .stdin(Stdio::null())
            .output()
            .expect("running gctrace-bpf");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("not an address to listen on"), "{bad}: {err}");
    }
}

#[test]
fn the_exposition_parser() {
    let s = parse_exposition(
        "# HELP x y\nx_total{pid=\"1\",exe=\"/a \\\"b\\\"\\\\c\"} 3\nh_bucket{le=\"+Inf\"} 2\nz 1.5e-6\n",
    )
    .expect("parses");
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].labels["exe"], "/a \"b\"\\c");
    assert_eq!(s[0].value, 3.0);
    assert_eq!(s[1].labels["le"], "+Inf");
    assert_eq!(s[2].value, 1.5e-6);
    assert!(parse_exposition("x{a=\"1} 2\n").is_err());
}
