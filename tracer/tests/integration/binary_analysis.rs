//! Binary analysis checked against real Go binaries and the Go toolchain's own tools.
//!
//! A tiny program is built with every installed Go toolchain, for amd64 and arm64,
//! plain, stripped (`-s -w`) and (amd64) PIE. The oracles are `go version`, `go tool
//! objdump` (function addresses, RET instructions, instruction bytes) and, for stripped
//! builds (which objdump refuses), the unstripped build of the same toolchain: `-s -w`
//! does not move code. Builds are cached under the target dir so reruns are quick.

// Helpers of a test crate: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gobuild::{Flavor, Toolchain};
use tracer::binary::{process, Arch, GoBinary};

use crate::harness::gobuild;

const PROBED: &[&str] = &[
    "runtime.gcStart",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
    "runtime.mallocgc",
];

struct Build {
    toolchain: usize,
    goarch: &'static str,
    variant: Flavor,
    path: PathBuf,
}

struct Fixtures {
    toolchains: Vec<Toolchain>,
    builds: Vec<Build>,
}

const WORK: &str = "binary_analysis";

fn go_cmd(go: &Path) -> Command {
    gobuild::go_cmd(go, &gobuild::work_dir(WORK))
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = gobuild::work_dir(WORK);
        let src = gobuild::source(&dir, gobuild::ALLOCATING_PROGRAM, "hello");
        let toolchains = gobuild::matrix(&dir);
        let have_cc = gobuild::have_cc();
        let mut builds = Vec::new();
        let mut planned = Vec::new();
        for (ti, tc) in toolchains.iter().enumerate() {
            for goarch in ["amd64", "arm64"] {
                for variant in [
                    Flavor::Plain,
                    Flavor::Stripped,
                    Flavor::Pie,
                    Flavor::ExternalPie,
                    Flavor::ExternalPieStripped,
                ] {
                    if (variant.pie() && goarch != "amd64") || (variant.external() && !have_cc) {
                        continue;
                    }
                    let path = dir.join(format!("hello-{}-{goarch}-{variant:?}", tc.version));
                    planned.push(gobuild::Planned {
                        go: tc.go.clone(),
                        goarch,
                        flavor: variant,
                        out: path.clone(),
                    });
                    builds.push(Build {
                        toolchain: ti,
                        goarch,
                        variant,
                        path,
                    });
                }
            }
        }
        gobuild::build_all(&dir, &src, &planned);
        Fixtures { toolchains, builds }
    })
}

/// One function as `go tool objdump` shows it.
#[derive(Debug, Default)]
struct Disasm {
    /// (address, instruction bytes, instruction text)
    instrs: Vec<(u64, Vec<u8>, String)>,
}

impl Disasm {
    fn rets(&self) -> Vec<u64> {
        self.instrs
            .iter()
            .filter(|(_, _, text)| text == "RET" || text.starts_with("RET "))
            .map(|(a, _, _)| *a)
            .collect()
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `go tool objdump -s '^(a|b|...)$'`, split per function. objdump shows arm64
/// instructions as 32-bit numbers, so their bytes come out reversed; `word_le` undoes that.
fn objdump(go: &Path, bin: &Path, names: &[&str], word_le: bool) -> BTreeMap<String, Disasm> {
    let re = format!(
        "^({})$",
        names
            .iter()
            .map(|n| n
                .replace('.', "\\.")
                .replace('(', "\\(")
                .replace(')', "\\)")
                .replace('*', "\\*"))
            .collect::<Vec<_>>()
            .join("|")
    );
    let o = go_cmd(go)
        .args(["tool", "objdump", "-s", &re])
        .arg(bin)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "objdump {}: {}",
        bin.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut out: BTreeMap<String, Disasm> = BTreeMap::new();
    let mut current = None;
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        if let Some(rest) = line.strip_prefix("TEXT ") {
            let name = rest.split("(SB)").next().unwrap().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let fields: Vec<&str> = line.split('\t').filter(|f| !f.is_empty()).collect();
        if fields.len() < 4 || !fields[1].starts_with("0x") {
            continue;
        }
        let addr = u64::from_str_radix(&fields[1][2..], 16).unwrap();
        let mut bytes = hex(fields[2]);
        if word_le {
            bytes.reverse();
        }
        let text = fields[3].trim().to_string();
        out.get_mut(current.as_ref().unwrap())
            .unwrap()
            .instrs
            .push((addr, bytes, text));
    }
    out
}

fn open(b: &Build) -> GoBinary {
    GoBinary::open(&b.path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn version_arch_and_kind() {
    let fx = fixtures();
    for b in &fx.builds {
        let bin = open(b);
        let tc = &fx.toolchains[b.toolchain];
        assert_eq!(bin.go_version().raw, tc.version, "{}", b.path.display());
        assert_eq!(bin.go_version().to_string(), tc.version);
        let expected = if b.goarch == "amd64" {
            Arch::X86_64
        } else {
            Arch::Aarch64
        };
        assert_eq!(bin.arch(), expected, "{}", b.path.display());
        assert_eq!(bin.is_pie(), b.variant.pie(), "{}", b.path.display());
        assert_eq!(
            bin.is_stripped(),
            b.variant.stripped(),
            "{}",
            b.path.display()
        );
        assert_eq!(
            bin.has_dwarf(),
            !b.variant.stripped(),
            "{}",
            b.path.display()
        );
    }
}

/// Functions, RET sites and file offsets against `go tool objdump` of unstripped builds.
#[test]
fn functions_and_returns_match_objdump() {
    let fx = fixtures();
    for b in fx.builds.iter().filter(|b| !b.variant.stripped()) {
        let tc = &fx.toolchains[b.toolchain];
        let bin = open(b);
        let data = std::fs::read(&b.path).unwrap();
        let dis = objdump(&tc.go, &b.path, PROBED, b.goarch == "arm64");
        for name in PROBED {
            let what = format!("{name} in {}", b.path.display());
            let f = bin.function(name).unwrap_or_else(|| panic!("no {what}"));
            let d = dis
                .get(*name)
                .unwrap_or_else(|| panic!("objdump lacks {what}"));
            let (first_addr, first_bytes, _) = &d.instrs[0];
            assert_eq!(f.address, *first_addr, "{what}");
            let (last_addr, last_bytes, _) = d.instrs.last().unwrap();
            assert_eq!(f.end(), last_addr + last_bytes.len() as u64, "{what}");

            let rets = bin.return_sites(&f).unwrap();
            assert!(!rets.is_empty(), "{what} has no RET");
            assert_eq!(rets, d.rets(), "{what}");

            let off = bin.file_offset(f.address).unwrap() as usize;
            assert_eq!(
                &data[off..off + first_bytes.len()],
                &first_bytes[..],
                "{what}"
            );

            assert_eq!(bin.function_at(f.address).as_ref(), Some(&f), "{what}");
            assert_eq!(bin.function_at(f.end() - 1).as_ref(), Some(&f), "{what}");
            assert_ne!(bin.function_at(f.end()).as_ref(), Some(&f), "{what}");
            let same_prefix = bin.functions_with_prefix(name);
            assert!(same_prefix.contains(&f), "{what}");
            assert!(same_prefix.iter().all(|g| g.name.starts_with(name)));
        }
        assert!(bin.function("runtime.doesNotExist").is_none());
        for g in ["runtime.work", "runtime.memstats", "runtime.gomaxprocs"] {
            assert!(bin.data_symbol(g).is_some(), "{g} in {}", b.path.display());
        }
        assert!(bin.data_symbol("runtime.gcStart").is_none());
    }
}

/// Stripped builds: functions come from .gopclntab and must agree with the plain build.
#[test]
fn stripped_builds_use_pclntab() {
    let fx = fixtures();
    for s in fx.builds.iter().filter(|b| b.variant.stripped()) {
        let plain = fx
            .builds
            .iter()
            .find(|b| {
                b.toolchain == s.toolchain
                    && b.goarch == s.goarch
                    && b.variant == s.variant.unstripped()
            })
            .unwrap();
        let tc = &fx.toolchains[s.toolchain];
        let sbin = open(s);
        let pbin = open(plain);
        let dis = objdump(&tc.go, &plain.path, PROBED, false);
        for name in PROBED {
            let what = format!("{name} in {}", s.path.display());
            let sf = sbin.function(name).unwrap_or_else(|| panic!("no {what}"));
            let pf = pbin.function(name).unwrap();
            assert_eq!(sf.address, pf.address, "{what}: -s -w moved code?");
            // pclntab sizes run to the next function, so may include padding.
            assert!(
                sf.size >= pf.size && sf.size - pf.size < 64,
                "{what}: {sf:?} vs {pf:?}"
            );
            assert_eq!(sbin.return_sites(&sf).unwrap(), dis[*name].rets(), "{what}");
            assert_eq!(
                sbin.function_at(sf.address + 1).as_ref(),
                Some(&sf),
                "{what}"
            );
        }
        // No .symtab/DWARF: offsets come from the built-in table, and globals are located
        // from code on both architectures (checked in detail by binary_stripped.rs).
        assert_eq!(
            sbin.struct_field_offset("runtime.workType", "cycles"),
            pbin.struct_field_offset("runtime.workType", "cycles"),
            "{}",
            s.path.display()
        );
        assert!(
            sbin.data_symbol("runtime.work").is_some(),
            "{}",
            s.path.display()
        );
        // Every pclntab function is a symtab function at the same address.
        let mut checked = 0;
        for f in sbin.functions_with_prefix("runtime.gc") {
            let p = pbin
                .function(&f.name)
                .unwrap_or_else(|| panic!("{} not in symtab", f.name));
            assert_eq!(p.address, f.address, "{} in {}", f.name, s.path.display());
            checked += 1;
        }
        assert!(checked > 10);
    }
}

#[test]
fn struct_offsets_from_dwarf() {
    let fx = fixtures();
    for b in fx.builds.iter().filter(|b| !b.variant.stripped()) {
        let bin = open(b);
        let what = b.path.display();
        let cycles = bin.struct_field_offset("runtime.workType", "cycles");
        let sweep = bin.struct_field_offset("runtime.workType", "tSweepTerm");
        let numgc = bin.struct_field_offset("runtime.mstats", "numgc");
        assert!(
            cycles.is_some() && sweep.is_some() && numgc.is_some(),
            "{what}"
        );
        assert_ne!(cycles, sweep, "{what}");
        assert!(bin
            .struct_field_offset("runtime.workType", "noSuchField")
            .is_none());
        assert!(bin
            .struct_field_offset("runtime.noSuchType", "cycles")
            .is_none());
        // Dotted path through an anonymous nested struct: workType.assistQueue.{lock,q}.
        let aq = bin
            .struct_field_offset("runtime.workType", "assistQueue")
            .unwrap();
        assert_eq!(
            bin.struct_field_offset("runtime.workType", "assistQueue.lock"),
            Some(aq),
            "{what}"
        );
        let q = bin
            .struct_field_offset("runtime.workType", "assistQueue.q")
            .unwrap();
        assert!(q > aq, "{what}");
        if bin.go_version().raw == "go1.19.8" && bin.arch() == Arch::X86_64 {
            let o = |s, f| bin.struct_field_offset(s, f);
            assert_eq!(o("runtime.gcControllerState", "heapLive"), Some(136));
            assert_eq!(cycles, Some(344));
            assert_eq!(sweep, Some(360));
            assert_eq!(o("runtime.workType", "pauseNS"), Some(392));
        }
    }
}

#[test]
fn not_go_and_malformed_inputs_fail_cleanly() {
    let e = GoBinary::open(Path::new("/bin/ls"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "/bin/ls is not a Go program (no Go build info, no Go function table)"
    );
    let e = GoBinary::parse(b"#!/bin/sh\n".to_vec(), Path::new("x.sh"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "x.sh is not an ELF executable");
    let e = GoBinary::open(Path::new("/nonexistent/prog")).unwrap_err();
    assert_eq!(e.to_string(), "cannot read /nonexistent/prog");
    let e = tracer::errors::chain(&e);
    assert!(e.starts_with("cannot read /nonexistent/prog: "), "{e}");

    // Truncations and corruptions of real binaries must give errors or answers, never panic.
    let fx = fixtures();
    for b in fx.builds.iter().filter(|b| b.variant.stripped()).take(4) {
        let data = std::fs::read(&b.path).unwrap();
        for len in [
            0,
            16,
            64,
            1000,
            data.len() / 3,
            data.len() / 2,
            data.len() - 1,
        ] {
            let _ = GoBinary::parse(data[..len].to_vec(), &b.path);
        }
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..40 {
            let mut d = data.clone();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % d.len() as u64) as usize;
                d[i] = (seed >> 32) as u8;
            }
            if let Ok(bin) = GoBinary::parse(d, &b.path) {
                for name in PROBED {
                    if let Some(f) = bin.function(name) {
                        let _ = bin.return_sites(&f);
                        let _ = bin.file_offset(f.address);
                    }
                }
                let _ = bin.struct_field_offset("runtime.workType", "cycles");
                let _ = bin.function_at(0x401000);
            }
        }
    }
}

/// Runs the newest amd64 build (plain and PIE) and checks the load bias.
#[test]
fn load_bias_of_running_process() {
    if std::env::consts::ARCH != "x86_64" {
        crate::harness::skip("the host is not x86_64");
        return;
    }
    let fx = fixtures();
    let newest = fx.toolchains.len() - 1;
    for variant in [Flavor::Plain, Flavor::Pie] {
        let b = fx
            .builds
            .iter()
            .find(|b| b.toolchain == newest && b.goarch == "amd64" && b.variant == variant)
            .unwrap();
        let mut child = KillOnDrop(
            Command::new(&b.path)
                .arg("sleep")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // Wait for "ready" so the runtime is up.
        let mut out = child.0.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        let pid = child.0.id();
        {
            let bin = GoBinary::open(&process::exe_path(pid)).unwrap();
            let bias = process::load_bias(pid, &bin).unwrap();
            if variant == Flavor::Plain {
                assert_eq!(bias, 0);
                continue;
            }
            assert_ne!(bias, 0);
            assert_eq!(bias % 4096, 0);
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
            let in_exe = |addr: u64, want_exec: bool| {
                maps.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let (s, e) = f[0].split_once('-').unwrap();
                    let (s, e) = (
                        u64::from_str_radix(s, 16).unwrap(),
                        u64::from_str_radix(e, 16).unwrap(),
                    );
                    f.len() >= 6
                        && f[5] == b.path.to_str().unwrap()
                        && (s..e).contains(&addr)
                        && (!want_exec || f[1].contains('x'))
                })
            };
            let work = bin.data_symbol("runtime.work").unwrap();
            // runtime.work is in .bss (zero-filled, maybe anonymous); use .data/.noptrdata
            // globals and text for the file-backed check.
            let gc = bin.function("runtime.gcStart").unwrap();
            assert!(
                in_exe(gc.address + bias, true),
                "gcStart+bias not in exe text"
            );
            let rodata_ok = ["runtime.buildVersion", "runtime.firstmoduledata"]
                .iter()
                .filter_map(|g| bin.data_symbol(g))
                .any(|a| in_exe(a + bias, false));
            assert!(rodata_ok, "no data symbol + bias in an exe mapping");
            let _ = work;
        }
    }
}

/// Kills the child even when an assertion fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gctrace-bpf inspect --format json` on every build of the matrix (amd64 and arm64,
/// plain and stripped): Go version, architecture, kind, and every probed function's entry
/// and return sites as `go tool objdump` lists them (for a stripped build, objdump of its
/// unstripped twin: stripping does not move code).
#[test]
fn inspect_command_matches_objdump() {
    let fx = fixtures();
    for b in &fx.builds {
        let tc = &fx.toolchains[b.toolchain];
        let twin = fx
            .builds
            .iter()
            .find(|p| {
                p.toolchain == b.toolchain
                    && p.goarch == b.goarch
                    && p.variant == b.variant.unstripped()
            })
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gctrace-bpf"))
            .args(["inspect", "--format", "json"])
            .arg(&b.path)
            .output()
            .unwrap();
        let what = b.path.display().to_string();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["go_version"], tc.version.as_str(), "{what}");
        let arch = if b.goarch == "arm64" {
            "aarch64"
        } else {
            "x86_64"
        };
        assert_eq!(report["arch"], arch, "{what}");
        assert_eq!(report["stripped"], b.variant.stripped(), "{what}");
        assert_eq!(report["pie"], b.variant.pie(), "{what}");
        let dis = objdump(&tc.go, &twin.path, PROBED, b.goarch == "arm64");
        let probes = report["probes"].as_array().unwrap();
        for name in PROBED {
            let p = probes
                .iter()
                .find(|p| p["symbol"] == *name)
                .unwrap_or_else(|| panic!("{what}: inspect lists no {name}"));
            let d = &dis[*name];
            assert_eq!(
                p["address"],
                format!("{:#x}", d.instrs[0].0),
                "{what} {name}"
            );
            let rets: Vec<String> = d.rets().iter().map(|a| format!("{a:#x}")).collect();
            let listed: Vec<String> = p["ret_addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
            assert_eq!(listed, rets, "{what} {name}");
        }
    }
}
