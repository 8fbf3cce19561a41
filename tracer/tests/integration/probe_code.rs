//! The machine-code facts the default probe plan relies on, against `go tool objdump`:
//! where `gcMarkTermination` (Go 1.22+) keeps its `worldStop.startedStopping`, relative
//! to its frame pointer, on amd64 and arm64. Static analysis only; skips unless
//! GCTRACE_INTEGRATION=1 (it builds Go programs).

use crate::harness;

use std::path::Path;
use std::process::Command;

use harness::Toolchain;
use tracer::binary::GoBinary;
use tracer::probes::code;

/// `go build` of gcload for `goarch` into `out`, with the tests' shared Go cache (whose
/// standard library the other tests have compiled already).
fn build(go: &Path, goarch: &str, out: &Path) {
    let status = harness::go_command(go)
        .env("GOARCH", goarch)
        .arg("build")
        .arg("-o")
        .arg(out)
        .arg(".")
        .current_dir(harness::workspace_root().join("workloads").join("gcload"))
        .status()
        .expect("go build");
    assert!(status.success(), "go build GOARCH={goarch}");
}

/// The frame-pointer offset of the second register argument, from objdump's text: the
/// prologue's frame size and the first store of that register to the stack.
fn objdump_home(go: &Path, bin: &Path, arm64: bool) -> i64 {
    let out = Command::new(go)
        .args(["tool", "objdump", "-s", "^runtime.gcMarkTermination$"])
        .arg(bin)
        .output()
        .expect("go tool objdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = |s: &str| i64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    let mut frame = None;
    for line in text.lines() {
        let asm: String = line
            .split('\t')
            .filter(|f| !f.is_empty())
            .nth(3)
            .unwrap_or("")
            .to_owned();
        if arm64 {
            // MOVD R1, 312(RSP)
            if let Some(rest) = asm.strip_prefix("MOVD R1, ") {
                if let Some(off) = rest.strip_suffix("(RSP)") {
                    return off.parse::<i64>().expect("offset") + 8;
                }
            }
        } else if let Some(f) = asm
            .strip_prefix("SUBQ $")
            .and_then(|r| r.strip_suffix(", SP"))
        {
            frame = Some(hex(f));
        } else if let Some(rest) = asm.strip_prefix("MOVQ BX, ") {
            if let (Some(f), Some(off)) = (frame, rest.strip_suffix("(SP)")) {
                return hex(off) - f;
            }
        }
    }
    panic!("no store of the second argument in objdump:\n{text}");
}

/// Builds gcload with the newest toolchain for amd64 and for arm64 and runs `check` on
/// each build: the toolchain, GOARCH, the binary's path and the binary opened.
fn on_each_arch(check: impl Fn(&Toolchain, &str, &Path, &GoBinary)) {
    let toolchain = harness::newest_toolchain();
    let tmp = tempfile::tempdir().expect("tempdir");
    for goarch in ["amd64", "arm64"] {
        let out = tmp.path().join(format!("gcload-{goarch}"));
        build(&toolchain.go, goarch, &out);
        let bin = GoBinary::open(&out).expect("open");
        check(&toolchain, goarch, &out, &bin);
    }
}

#[test]
fn mark_stop_start_home_matches_objdump() {
    if !harness::integration_enabled() {
        return;
    }
    on_each_arch(|toolchain, goarch, out, bin| {
        let f = bin
            .function("runtime.gcMarkTermination")
            .expect("gcMarkTermination");
        let expected = objdump_home(&toolchain.go, out, goarch == "arm64");
        assert_eq!(
            code::arg_home(bin, &f, 1),
            Some(expected),
            "Go {} {goarch}",
            toolchain.version
        );
    });
}

/// The default plan probes `mProf_Flush` at the `PUSHQ BP` after its stack check (a push
/// the kernel emulates, where an entry probe is single-stepped): that address is objdump's
/// first `PUSHQ BP` of the function, three instructions in; none on arm64.
#[test]
fn gc_done_site_is_the_push_after_the_stack_check() {
    if !harness::integration_enabled() {
        return;
    }
    on_each_arch(|toolchain, goarch, out, bin| {
        let f = bin.function("runtime.mProf_Flush").expect("mProf_Flush");
        let text = Command::new(&toolchain.go)
            .args(["tool", "objdump", "-s", "^runtime.mProf_Flush$"])
            .arg(out)
            .output()
            .expect("go tool objdump")
            .stdout;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split('\t').filter(|f| !f.is_empty()).collect())
            .collect();
        let expected = (goarch == "amd64").then(|| {
            assert!(lines[0][3].starts_with("CMPQ SP, 0x10(R14)"), "{text}");
            assert!(lines[1][3].starts_with("JBE "), "{text}");
            assert!(lines[2][3].starts_with("PUSHQ BP"), "{text}");
            u64::from_str_radix(lines[2][1].trim_start_matches("0x"), 16).expect("hex")
        });
        assert_eq!(
            code::entry_equivalent_push(bin, &f),
            expected,
            "Go {} {goarch}",
            toolchain.version
        );
    });
}
