//! A Go runtime newer than any this tracer knows (go1.28.0) or a development build: a
//! clear verdict from `inspect` and at attach, and no wrong numbers. Fixtures are real
//! builds whose version strings are rewritten (`.go.buildinfo` and the runtime's
//! `runtime.buildVersion`), so everything else is a real runtime: the newest release
//! stands in for a 1.28 that kept its signatures, older ones for one that changed them.
//! Live runs need root; everything skips unless GCTRACE_INTEGRATION=1.

// Helpers of a test crate: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use crate::harness;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use harness::{GcBuild, Toolchain, RUN_TIMEOUT};
use serde_json::Value;

/// gcload built with `tc` as `build`, copied into `dir` with every occurrence of its Go
/// version replaced by `to` (same length).
fn rewritten(tc: &Toolchain, build: GcBuild, to: &str, dir: &Path) -> PathBuf {
    let bin = &harness::build_gcload_as(tc, build);
    let from = &tc.go_version();
    assert_eq!(from.len(), to.len());
    let data = fs::read(bin).unwrap_or_else(|e| panic!("reading {}: {e}", bin.display()));
    let (f, t) = (from.as_bytes(), to.as_bytes());
    let mut out = data.clone();
    let mut n = 0;
    let mut i = 0;
    while i + f.len() <= out.len() {
        if &out[i..i + f.len()] == f {
            out[i..i + f.len()].copy_from_slice(t);
            n += 1;
            i += f.len();
        } else {
            i += 1;
        }
    }
    assert!(
        n >= 2,
        "{from} found {n} times in {} (build info and runtime)",
        bin.display()
    );
    let path = dir.join("gcload");
    fs::write(&path, out).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// `.go.buildinfo`'s version (a uvarint-length string right after the 32-byte header)
/// replaced by a longer development-build string, the module info string after it
/// shortened to keep the blob's size.
fn with_devel_buildinfo(bin: &Path, devel: &str, dir: &Path) -> PathBuf {
    let mut data = fs::read(bin).unwrap();
    let magic = b"\xff Go buildinf:";
    let at = data
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("build info");
    let v = at + 32;
    let vlen = usize::from(data[v]);
    assert!(vlen < 128);
    let m = v + 1 + vlen;
    // modinfo: uvarint length (1 or 2 bytes) then bytes.
    let (mlen, mused) = if data[m] & 0x80 == 0 {
        (usize::from(data[m]), 1)
    } else {
        (
            usize::from(data[m] & 0x7f) | usize::from(data[m + 1]) << 7,
            2,
        )
    };
    let total = 1 + vlen + mused + mlen;
    let new_v = devel.as_bytes();
    let avail = total - 1 - new_v.len();
    let mut blob = vec![new_v.len() as u8];
    blob.extend_from_slice(new_v);
    let rest = if avail - 1 < 128 {
        blob.push((avail - 1) as u8);
        avail - 1
    } else {
        let rest = avail - 2;
        assert!(rest < 1 << 14);
        blob.extend_from_slice(&[(rest as u8 & 0x7f) | 0x80, (rest >> 7) as u8]);
        rest
    };
    blob.extend(std::iter::repeat_n(b' ', rest));
    assert_eq!(blob.len(), total);
    data[v..v + total].copy_from_slice(&blob);
    let path = dir.join("devel");
    fs::write(&path, data).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// What `inspect` says of `bin`: its JSON report, its text, and the report's warnings.
fn inspect(bin: &Path) -> (Value, String, Vec<String>) {
    let json = harness::TracerCmd::new()
        .args(["inspect", "--format", "json"])
        .arg(bin)
        .output()
        .expect("inspect");
    let text = harness::TracerCmd::new()
        .arg("inspect")
        .arg(bin)
        .output()
        .expect("inspect");
    let report = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect JSON of {}: {e}\n{}",
            bin.display(),
            String::from_utf8_lossy(&json.stderr)
        )
    });
    let warnings = warnings(&report);
    (
        report,
        String::from_utf8_lossy(&text.stdout).into_owned(),
        warnings,
    )
}

fn warnings(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `bin` started by the tracer (`--format json` into `dir`) with GODEBUG=gctrace=1 (the
/// oracle) and gcload's usual arguments, then `extra`; the trace read back, and the
/// run's output for failure messages. Fails unless the tracer exits 0.
fn traced(
    bin: &Path,
    dir: &Path,
    extra: &[&OsStr],
) -> (harness::RunResult, harness::Trace, String) {
    let out = dir.join("trace.ndjson");
    let _exclusive = harness::exclusive();
    let mut cmd = harness::TracerCmd::new();
    cmd.env("GODEBUG", "gctrace=1")
        .args(["--format", "json", "--output"])
        .arg(&out)
        .arg("--")
        .arg(bin)
        .args(harness::WORKLOAD_ARGS)
        .args(extra);
    let run = cmd.run(dir, "traced");
    let diag = harness::diagnostics(&run.stdout, &run.stderr);
    assert!(run.status.success(), "{diag}");
    let trace = harness::read_trace(&out);
    (run, trace, diag)
}

fn newest() -> Toolchain {
    harness::newest_toolchain()
}

/// A "go1.28.0" that kept the newest release's signatures: traced, with a verdict that
/// says it is newer and what was verified; with DWARF, every field is read.
#[test]
fn newer_release_with_same_signatures_is_traced_with_a_verdict() {
    let tc = newest();
    let tmp = tempfile::tempdir().unwrap();
    let bin = rewritten(&tc, GcBuild::Default, "go1.28.0", tmp.path());
    let (report, text, w) = inspect(&bin);
    assert_eq!(report["go_version"], "go1.28.0", "{text}");
    assert_eq!(report["offsets_source"], "dwarf", "{text}");
    assert!(
        w.iter().any(|w| w.contains("newer than Go 1.27")
            && w.contains("verified in this binary")
            && w.contains("runtime.startTheWorldWithSema (40 bytes of arguments)")
            && w.contains("stop reason names")),
        "{text}"
    );
    assert!(text.contains("verdict: traceable, with gaps"), "{text}");
    assert!(!w.iter().any(|w| w.contains("unknown:")), "{text}");

    if !harness::integration_enabled() {
        return;
    }
    // Live: the verdict at attach, and the same figures as the runtime's gctrace.
    let memstats = tmp.path().join("memstats.json");
    let (run, trace, diag) = traced(
        &bin,
        tmp.path(),
        &["-memstats-out".as_ref(), memstats.as_os_str()],
    );
    assert!(
        run.stderr.contains("go1.28.0 is newer than Go 1.27"),
        "no verdict at attach\n{diag}"
    );
    let gctrace = harness::parse_gctrace(&run.stderr);
    let mut failures = trace.errors.clone();
    failures.extend(harness::check_heap_against_gctrace(&trace, &gctrace));
    failures.extend(harness::check_knobs(&trace, harness::DEFAULT_KNOBS));
    failures.extend(harness::check_alloc(
        &trace,
        &harness::MemStats::read(&memstats),
    ));
    let reads = trace
        .stw
        .iter()
        .filter(|s| s.reason == "read mem stats")
        .count();
    // 20 calls spread over the run, one more for -memstats-out at the end.
    if reads != 21 {
        failures.push(format!(
            "{reads} `read mem stats` stops, the workload made 21 ReadMemStats calls"
        ));
    }
    harness::assert_no_failures("go1.28.0 (rewritten newest release)", &failures, &diag);
}

/// A stripped "go1.28.0" (a real 1.27.3, rewritten): the table has no such release, so
/// its struct offsets come from its own code, verified field by field against it, as for
/// any release the table lacks, and the figures agree with its own gctrace lines. The
/// verdict still says the runtime is newer than we know.
#[test]
fn newer_stripped_release_gets_offsets_from_code() {
    let tc = newest();
    let tmp = tempfile::tempdir().unwrap();
    let bin = rewritten(&tc, GcBuild::Stripped, "go1.28.0", tmp.path());
    let (report, text, w) = inspect(&bin);
    assert!(w.iter().any(|w| w.contains("newer than Go 1.27")), "{text}");
    assert_eq!(report["offsets_source"], "code", "{text}");

    if !harness::integration_enabled() {
        return;
    }
    let (run, trace, diag) = traced(&bin, tmp.path(), &[]);
    assert!(trace.stw.len() >= 20, "too few stops\n{diag}");
    let gctrace = harness::parse_gctrace(&run.stderr);
    let mut compared = 0;
    for g in &trace.gc {
        let Some(line) = gctrace.get(&g.cycle) else {
            continue;
        };
        if line.heap_mb.is_none() {
            continue;
        }
        compared += 1;
        assert_eq!(
            g.heap.mb(),
            line.heap_and_goal_mb(),
            "cycle {}: {}\n{diag}",
            g.cycle,
            line.text
        );
    }
    assert!(compared >= 5, "only {compared} cycles compared\n{diag}");
}

/// A "go1.28.0" whose startTheWorldWithSema has another signature (an older runtime's,
/// renamed): refused in one line that says why, by inspect and at attach.
#[test]
fn newer_release_with_changed_signature_is_refused() {
    let Some(tc) = harness::toolchains()
        .into_iter()
        .find(|t| t.minor() == 22 || t.minor() == 21)
    else {
        panic!("no Go 1.21 or 1.22 toolchain in the matrix");
    };
    let tmp = tempfile::tempdir().unwrap();
    // Same length as "go1.22.10" / "go1.21.13".
    let bin = rewritten(&tc, GcBuild::Default, "go1.28.10", tmp.path());
    let (_, text, w) = inspect(&bin);
    assert!(
        w.iter().any(
            |w| w.starts_with("cannot trace: go1.28.10 is newer than Go 1.27")
                && w.contains("runtime.startTheWorldWithSema takes")
        ),
        "{text}"
    );
    assert!(text.contains("verdict: cannot be traced"), "{text}");
    if !harness::integration_enabled() {
        return;
    }
    let tmp2 = tempfile::tempdir().unwrap();
    let run = harness::run(
        harness::TracerCmd::new().arg("--").arg(&bin),
        tmp2.path(),
        "refused",
        RUN_TIMEOUT,
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line:\n{}", run.stderr);
    assert!(lines[0].contains("its signature changed"), "{}", run.stderr);
}

/// A development build ("devel go1.28-…" in its build info): the verdict names it so.
#[test]
fn development_build_gets_a_verdict() {
    let tc = newest();
    let tmp = tempfile::tempdir().unwrap();
    let bin = with_devel_buildinfo(
        &harness::build_gcload(&tc),
        "devel go1.28-1a2b3c4d5e Tue Jan 1 00:00:00 2030 +0000",
        tmp.path(),
    );
    let (report, text, w) = inspect(&bin);
    assert!(
        report["go_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("devel go1.28-")),
        "{text}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("newer than Go 1.27") && w.contains("verified in this binary")),
        "{text}"
    );
}
