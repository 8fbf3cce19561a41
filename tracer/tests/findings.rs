//! Findings and the goroutine count on real programs: workloads/playbook reproduces each
//! cause of the playbook (a flag per cause) and prints `runtime.NumGoroutine()`; the
//! tracer's code-level findings must name the workload's own file:line, the healthy
//! workload and gcload must show none of the code-level or thrashing findings, and the
//! goroutine count must be NumGoroutine within what Ps may cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Toolchain;
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds workloads/playbook with `toolchain` (a second or two; not cached).
fn build_playbook(toolchain: &Toolchain) -> PathBuf {
    let src = common::workspace_root().join("workloads").join("playbook");
    let dir = common::target_dir()
        .join("playbook-cache")
        .join(&toolchain.version);
    std::fs::create_dir_all(&dir).expect("playbook cache dir");
    let bin = dir.join("playbook");
    let cache = common::target_dir().join("gcload-cache");
    let out = Command::new(&toolchain.go)
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", cache.join("gocache"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./")
        .current_dir(&src)
        .output()
        .expect("running go build");
    assert!(
        out.status.success(),
        "building playbook with Go {}: {}",
        toolchain.version,
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// The line of main.go marked `// playbook:TAG`.
fn marked_line(tag: &str) -> u32 {
    let src = common::workspace_root().join("workloads/playbook/main.go");
    let text = std::fs::read_to_string(&src).expect("reading playbook/main.go");
    let mark = format!("// playbook:{tag}");
    text.lines()
        .position(|l| l.contains(&mark))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no {mark} in main.go"))
}

struct Run {
    records: Vec<Value>,
    stdout: String,
    diag: String,
}

impl Run {
    fn findings(&self) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| r["type"] == "finding" && r["state"] == "start")
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.findings()
            .iter()
            .map(|f| f["id"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

fn traced(bin: &Path, args: &[&str], allocs: &str) -> Run {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("trace.ndjson");
    let _exclusive = common::exclusive();
    let mut cmd = Command::new(common::tracer_bin());
    cmd.args(["--format", "json", "--allocs", allocs, "--output"])
        .arg(&out)
        .arg("--")
        .arg(bin)
        .args(args);
    let run = common::run(&mut cmd, tmp.path(), "traced", RUN_TIMEOUT);
    let diag = format!("{cmd:?}\n{}", common::diagnostics(&run.stdout, &run.stderr));
    assert!(run.status.success(), "traced run failed: {diag}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Run {
        records,
        stdout: run.stdout,
        diag,
    }
}

const CODE_LEVEL: [&str; 4] = [
    "alloc-string-concat",
    "alloc-slice-growth",
    "alloc-interface-boxing",
    "alloc-map-growth",
];

/// Oldest and newest toolchains: maps changed implementation in Go 1.24, the allocators
/// in 1.27.
fn ends_of_the_matrix() -> Vec<Toolchain> {
    let all = common::toolchains();
    let mut v = vec![all[0].clone()];
    if let Some(last) = all.last().filter(|l| l.version != all[0].version) {
        v.push(last.clone());
    }
    v
}

#[test]
fn code_level_findings_point_at_the_workloads_own_lines() {
    if !common::integration_enabled() {
        return;
    }
    let mut failures = Vec::new();
    for tc in ends_of_the_matrix() {
        let bin = build_playbook(&tc);
        for (cause, id) in [
            ("concat", "alloc-string-concat"),
            ("append", "alloc-slice-growth"),
            ("box", "alloc-interface-boxing"),
            ("map", "alloc-map-growth"),
        ] {
            let run = traced(&bin, &["-cause", cause, "-duration", "12s"], "sample");
            let line = marked_line(cause);
            let found = run.findings().into_iter().find(|f| f["id"] == id).cloned();
            let Some(f) = found else {
                failures.push(format!(
                    "Go {} -cause {cause}: no {id} finding (got {:?})\n{}",
                    tc.version,
                    run.ids(),
                    run.diag
                ));
                continue;
            };
            let site = &f["sites"][0];
            let file = site["file"].as_str().unwrap_or("");
            if !(file.ends_with("playbook/main.go") && site["line"] == line) {
                failures.push(format!(
                    "Go {} -cause {cause}: {id} points at {site} instead of main.go:{line}",
                    tc.version
                ));
            }
            // Exactly the one code-level cause this program has.
            let others: Vec<String> = run
                .ids()
                .into_iter()
                .filter(|i| CODE_LEVEL.contains(&i.as_str()) && i != id)
                .collect();
            if !others.is_empty() {
                failures.push(format!("Go {} -cause {cause}: also {others:?}", tc.version));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn healthy_programs_show_no_code_level_or_thrashing_findings() {
    if !common::integration_enabled() {
        return;
    }
    let tc = common::newest_toolchain();
    let playbook = build_playbook(&tc);
    let gcload = common::build_gcload(&tc);
    let runs = [
        (
            "playbook -cause healthy",
            traced(
                &playbook,
                &["-cause", "healthy", "-duration", "12s"],
                "sample",
            ),
        ),
        ("gcload", traced(&gcload, common::WORKLOAD_ARGS, "sample")),
    ];
    for (what, run) in &runs {
        let bad: Vec<String> = run
            .ids()
            .into_iter()
            .filter(|i| CODE_LEVEL.contains(&i.as_str()) || i == "gc-thrashing")
            .collect();
        assert!(bad.is_empty(), "{what}: {bad:?}\n{}", run.diag);
        assert!(
            run.records.iter().any(|r| r["type"] == "alloc_sites"),
            "{what}: no allocation sites, nothing was judged\n{}",
            run.diag
        );
    }
}

#[test]
fn goroutine_count_is_numgoroutine_within_what_ps_cache() {
    if !common::integration_enabled() {
        return;
    }
    let mut failures = Vec::new();
    for tc in common::toolchains() {
        let bin = build_playbook(&tc);
        let run = traced(&bin, &["-cause", "leak", "-duration", "3s"], "rate");
        // (CLOCK_MONOTONIC ns, NumGoroutine) as the workload printed them.
        let printed: Vec<(u64, u64)> = run
            .stdout
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("goroutines ")?;
                let (n, t) = rest.split_once(" at ")?;
                Some((t.trim().parse().ok()?, n.parse().ok()?))
            })
            .collect();
        assert!(
            printed.len() >= 8,
            "Go {}: {:?}\n{}",
            tc.version,
            printed,
            run.diag
        );
        let mut checked = 0;
        for g in run.records.iter().filter(|r| r["type"] == "gc") {
            let (Some(end), Some(procs)) = (g["end_ns"].as_u64(), g["gomaxprocs"].as_u64()) else {
                continue;
            };
            let Some(count) = g["goroutines"].as_u64() else {
                failures.push(format!(
                    "Go {}: cycle {} has no goroutines",
                    tc.version, g["cycle"]
                ));
                continue;
            };
            // Only cycles well inside a plateau: after a print, 50 ms before the next step.
            let Some(k) = printed
                .windows(2)
                .position(|w| w[0].0 < end && end + 50_000_000 < w[1].0)
            else {
                continue;
            };
            let expected = printed[k].1;
            checked += 1;
            if count < expected || count > expected + 64 * procs {
                failures.push(format!(
                    "Go {}: cycle {} read {count} goroutines, NumGoroutine {expected} (+ up to {} cached)",
                    tc.version,
                    g["cycle"],
                    64 * procs
                ));
            }
        }
        if checked < 3 {
            failures.push(format!(
                "Go {}: only {checked} cycles inside a plateau\n{}",
                tc.version, run.diag
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
