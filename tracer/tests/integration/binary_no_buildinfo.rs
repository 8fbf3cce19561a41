//! Binaries whose `.go.buildinfo` was removed after the build (`objcopy
//! --remove-section`), for every release of the test matrix stripped on amd64, and the
//! oldest and newest also PIE-stripped and on arm64: the version read from the runtime's own string equals the
//! one the untouched build's build info gives, and the whole probe plan is unchanged.
//! A version string rewritten to another layout family is refused in one line naming
//! the disagreement. Analysis only (no root, no run).

// Helpers of a test crate: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use gobuild::Flavor;
use tracer::binary::{GoBinary, VersionSource};
use tracer::probes::plan;

use crate::harness::gobuild;

const PROGRAM: &str = r#"package main

import "fmt"

func main() { fmt.Println("ok") }
"#;

/// `objcopy --remove-section .go.buildinfo`. The host's objcopy reads only x86-64 ELF by
/// name; other machines go through its generic `elf64-little`, which writes e_machine 0,
/// so the original machine is put back.
/// The copy gets a name of its own per call: the tests of this file run in parallel on
/// the same builds, and one of them read the other's half-written copy.
fn remove_buildinfo(bin: &Path) -> PathBuf {
    static COPIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = bin.with_extension(format!("nobuildinfo-{}-{n}", std::process::id()));
    let original = std::fs::read(bin).unwrap();
    let machine = [original[18], original[19]];
    let mut cmd = Command::new("objcopy");
    if machine != [62, 0] {
        cmd.args(["-I", "elf64-little", "-O", "elf64-little"]);
    }
    let o = cmd
        .args(["--remove-section", ".go.buildinfo"])
        .arg(bin)
        .arg(&out)
        .output()
        .expect("objcopy (binutils; cargo xtask setup installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut data = std::fs::read(&out).unwrap();
    data[18..20].copy_from_slice(&machine);
    std::fs::write(&out, data).unwrap();
    out
}

fn builds() -> Vec<PathBuf> {
    let dir = gobuild::work_dir("binary_no_buildinfo");
    // The Go build cache of binary_stripped.rs, which builds the same shapes: its
    // standard library builds are reused (a cold cache costs minutes on 2 cores).
    let cache = gobuild::work_dir("binary_stripped");
    let src = gobuild::source(&dir, PROGRAM, "hello");
    let mut out = Vec::new();
    let matrix = gobuild::matrix(&dir);
    let last = matrix.len().saturating_sub(1);
    for (i, tc) in matrix.iter().enumerate() {
        // Every release stripped on amd64 (each layout family); arm64 and PIE on the
        // oldest and newest only, to keep the build count (and CI time) down.
        let shapes: &[(&str, Flavor)] = if i == 0 || i == last {
            &[
                ("amd64", Flavor::Stripped),
                ("amd64", Flavor::PieStripped),
                ("arm64", Flavor::Stripped),
            ]
        } else {
            &[("amd64", Flavor::Stripped)]
        };
        for &(goarch, flavor) in shapes {
            let path = dir.join(format!("hello-{}-{goarch}-{flavor:?}", tc.version));
            gobuild::build(&tc.go, &cache, &src, goarch, flavor, &path);
            out.push(path);
        }
    }
    out
}

#[test]
fn version_from_runtime_string_equals_build_info() {
    let mut checked = 0;
    for bin in builds() {
        let with = GoBinary::open(&bin).unwrap_or_else(|e| panic!("{e}"));
        let without_path = remove_buildinfo(&bin);
        let without = GoBinary::open(&without_path).unwrap_or_else(|e| panic!("{e}"));
        let what = without_path.display();
        assert_eq!(with.version_source(), VersionSource::BuildInfo, "{what}");
        assert_eq!(
            without.version_source(),
            VersionSource::RuntimeString,
            "{what}"
        );
        assert_eq!(without.go_version(), with.go_version(), "{what}");
        let (a, b) = (plan(&with), plan(&without));
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.sites, b.sites, "{what}");
                assert_eq!(a.reads, b.reads, "{what}");
                assert_eq!(a.scheme, b.scheme, "{what}");
            }
            (a, b) => assert_eq!(
                a.err().map(|e| e.to_string()),
                b.err().map(|e| e.to_string()),
                "{what}"
            ),
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} builds checked");
}

/// The version string of a build without build info, rewritten to a release of another
/// layout family (same length), is refused naming what disagrees.
#[test]
fn version_disagreeing_with_layout_is_refused() {
    let all = builds();
    let pick = |version: &str| -> PathBuf {
        let b = all
            .iter()
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.contains(&format!("-go{version}-amd64-Stripped"))
            })
            .unwrap_or_else(|| panic!("no {version} build"));
        remove_buildinfo(b)
    };
    let cases = [
        ("1.19.8", "go1.19.8", "go1.27.3", "magic 0xfffffff0"),
        ("1.25.5", "go1.25.5", "go1.26.5", "stores textStart"),
        ("1.27.3", "go1.27.3", "go1.26.5", "moduledata"),
        ("1.26.6", "go1.26.6", "go1.25.5", "lacks textStart"),
    ];
    for (version, from, to, expect) in cases {
        let bin = pick(version);
        let data = std::fs::read(&bin).unwrap();
        let needle = from.as_bytes();
        let mut data2 = data.clone();
        let mut n = 0;
        for i in 0..data.len().saturating_sub(needle.len()) {
            if &data[i..i + needle.len()] == needle {
                data2[i..i + needle.len()].copy_from_slice(to.as_bytes());
                n += 1;
            }
        }
        assert!(n >= 1, "{from} not in {}", bin.display());
        let err = GoBinary::parse(data2, &bin).unwrap_err().to_string();
        assert!(
            err.contains("no Go build info")
                && err.contains(&format!("says {to}"))
                && err.contains(expect),
            "{version} rewritten to {to}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
