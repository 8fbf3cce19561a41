//! Bad input, table-driven: each case gets one line naming the cause on stderr, exit status
//! 2 for usage errors and 1 for failures, and never a panic. Cases that need a running
//! process or root skip unless GCTRACE_INTEGRATION=1 (`cargo xtask test`, as root).

use crate::harness;

use std::process::{Command, Stdio};

struct Case {
    what: &'static str,
    args: Vec<String>,
    status: i32,
    says: &'static str,
}

fn case(what: &'static str, args: &[&str], status: i32, says: &'static str) -> Case {
    Case {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        status,
        says,
    }
}

fn check(c: &Case, cmd: &mut Command) {
    let out = cmd
        .args(&c.args)
        .stdin(Stdio::null())
        .output()
        .expect("running gctrace-bpf");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(c.status), "{}: {err}", c.what);
    assert!(
        err.contains(c.says),
        "{}: expected {:?} in {err}",
        c.what,
        c.says
    );
    assert!(!err.contains("panicked"), "{}: {err}", c.what);
    if c.status == 1 {
        assert_eq!(err.lines().count(), 1, "{}: not one line: {err}", c.what);
        assert!(err.starts_with("gctrace-bpf: "), "{}: {err}", c.what);
    }
}

/// Usage errors need nothing but the binary.
#[test]
fn usage_errors_exit_2() {
    for c in [
        case("unknown flag", &["--bogus"], 2, "unexpected argument"),
        case("pid not a number", &["--pid", "x"], 2, "invalid value"),
        case("no target", &[], 2, "required"),
        case(
            "pid and command",
            &["--pid", "1", "--", "ls"],
            2,
            "cannot be used",
        ),
        case(
            "zero duration",
            &["--pid", "1", "--duration", "0"],
            2,
            "positive",
        ),
        case(
            "bad format",
            &["--pid", "1", "--format", "xml"],
            2,
            "invalid value",
        ),
        case(
            "bad alloc mode",
            &["--pid", "1", "--allocs", "all"],
            2,
            "invalid value",
        ),
        case(
            "bad budget",
            &["--pid", "1", "--overhead-budget", "0"],
            2,
            "between 0 and 100",
        ),
        case("inspect without binary", &["inspect"], 2, "required"),
        case(
            "exe and command",
            &["--exe", "/bin/true", "--", "ls"],
            2,
            "cannot be used",
        ),
        case(
            "pid list with a non-number",
            &["--pid", "1,x"],
            2,
            "invalid value",
        ),
    ] {
        check(&c, &mut harness::TracerCmd::new());
    }
}

/// Failures exit 1 with one line.
#[test]
fn failures_exit_1_with_one_line() {
    if !harness::integration_enabled() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let not_elf = dir.path().join("notes.txt");
    std::fs::write(&not_elf, "hello").expect("write");
    let mut sleeper = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawning sleep");
    let sleeper_pid = sleeper.id().to_string();
    let cases = [
        case(
            "no such pid",
            &["--pid", "999999999"],
            1,
            "no process with pid 999999999",
        ),
        case(
            "not a Go program",
            &["--pid", &sleeper_pid],
            1,
            "is not a Go program",
        ),
        case(
            "command cannot start",
            &["--", "/nonexistent/app"],
            1,
            "cannot start /nonexistent/app",
        ),
        case(
            "command not found",
            &["--", "no-such-command-xyz"],
            1,
            "command not found",
        ),
        case(
            "exe missing",
            &["--exe", "/nonexistent/server"],
            1,
            "cannot read /nonexistent/server",
        ),
        case(
            "exe not a Go program",
            &["--exe", "/bin/sleep"],
            1,
            "is not a Go program",
        ),
        case(
            "inspect not ELF",
            &["inspect", not_elf.to_str().unwrap_or("")],
            1,
            "is not an ELF",
        ),
        case(
            "inspect missing file",
            &["inspect", "/nonexistent/bin"],
            1,
            "cannot read",
        ),
        case(
            "replay missing file",
            &["replay", "/nonexistent/rec"],
            1,
            "cannot read",
        ),
    ];
    for c in &cases {
        check(c, &mut harness::TracerCmd::new());
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // Without privileges: drop to nobody with no capabilities.
    if Command::new("setpriv").arg("--help").output().is_ok() {
        let c = case(
            "not privileged",
            &["--pid", "1"],
            1,
            "needs root, or the capabilities CAP_BPF and CAP_PERFMON",
        );
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(harness::tracer_bin());
        check(&c, &mut cmd);
    }
}

/// Shell completions and the manual page come from the same clap definitions as the
/// parser, so they cannot drift from it.
#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = harness::TracerCmd::new()
            .args(["completions", shell])
            .run_quick();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(
            text.contains("gctrace-bpf") && text.contains("--pid"),
            "{shell}: {text}"
        );
    }
    let out = harness::TracerCmd::new().arg("man").run_quick();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains(".TH gctrace-bpf 1"), "{text}");
    assert!(
        text.contains("\\-\\-pid") || text.contains("--pid"),
        "{text}"
    );
}
