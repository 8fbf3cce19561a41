//! Release builds of `gctrace-bpf` as single static files, one per architecture the
//! tool runs on: x86_64 with the rustup toolchain, aarch64 cross-compiled with Debian's
//! `rustc-web` and its prebuilt aarch64 std (no rustup target download needed), linked
//! by `aarch64-linux-gnu-gcc` against static glibc.
//! `tracer/build.rs` embeds the eBPF object of the target architecture either way.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::env::{self, run};

/// The cargo profile of a build: `release` for what is shipped (`cargo xtask dist`),
/// `demo` (Cargo.toml: release semantics, little optimisation, dependencies none, no
/// debug info) for a binary that runs once, such as the arm64 guest's: it compiles in
/// about half the time.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    Release,
    Demo,
}

impl Profile {
    /// The profile's name, which is also its output directory.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Demo => "demo",
        }
    }
}

/// A target the tracer is released for.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    X86_64,
    Aarch64,
}

impl Target {
    pub fn triple(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64-unknown-linux-gnu",
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// `gctrace-bpf-x86_64`, `gctrace-bpf-aarch64`: the names `cargo xtask dist` writes.
    pub fn dist_name(self) -> &'static str {
        match self {
            Target::X86_64 => "gctrace-bpf-x86_64",
            Target::Aarch64 => "gctrace-bpf-aarch64",
        }
    }

    /// A target directory of its own: a different compiler (aarch64) or different flags
    /// (crt-static) would otherwise invalidate the everyday `target/release` build.
    fn target_dir(self) -> PathBuf {
        env::target_dir().join(match self {
            Target::X86_64 => "x86_64-static",
            Target::Aarch64 => "aarch64-cross",
        })
    }

    pub fn binary(self, profile: Profile) -> PathBuf {
        self.target_dir()
            .join(self.triple())
            .join(profile.name())
            .join("gctrace-bpf")
    }
}

/// Debian's compiler with the aarch64 std (libstd-rust-web-dev:arm64).
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const AARCH64_STD: &str = "/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib";
const AARCH64_GCC: &str = "aarch64-linux-gnu-gcc";

/// `cargo build --profile PROFILE -p tracer --target TRIPLE`, statically linked; returns
/// the binary.
pub fn build_static(target: Target, profile: Profile) -> Result<PathBuf> {
    let triple = target.triple();
    let mut cmd = env::cargo();
    cmd.args(["build", "--profile", profile.name(), "-p", "tracer"])
        .args(["--target", triple])
        .arg("--target-dir")
        .arg(target.target_dir());
    // Only the target's crates get crt-static (with --target, RUSTFLAGS-like variables
    // scoped to the triple leave build scripts and proc macros alone).
    let var_triple = triple.to_uppercase().replace('-', "_");
    cmd.env(
        format!("CARGO_TARGET_{var_triple}_RUSTFLAGS"),
        "-C target-feature=+crt-static",
    )
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if let Target::Aarch64 = target {
        if !std::path::Path::new(AARCH64_STD).is_dir() {
            bail!("the aarch64 Rust std ({AARCH64_STD}) is missing; run `cargo xtask setup`");
        }
        cmd.env("RUSTC", DEBIAN_RUSTC)
            .env(format!("CARGO_TARGET_{var_triple}_LINKER"), AARCH64_GCC)
            .env(format!("CC_{}", triple.replace('-', "_")), AARCH64_GCC);
    }
    run(&mut cmd)?;
    let bin = target.binary(profile);
    if !bin.is_file() {
        bail!("cargo built no {}", bin.display());
    }
    Ok(bin)
}

/// ELF `e_machine` of each target.
fn elf_machine(target: Target) -> u16 {
    match target {
        Target::X86_64 => 62,
        Target::Aarch64 => 183,
    }
}

/// Fails unless `path` is a 64-bit little-endian ELF executable for `target` with no
/// program interpreter (`PT_INTERP`): a static (or static-pie) binary that runs on any
/// Linux of its architecture without a dynamic loader or shared libraries.
pub fn check_static(path: &std::path::Path, target: Target) -> Result<()> {
    let data =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    problem_of_elf(&data, target).map_or(Ok(()), |p| {
        bail!("{} is not a static {target:?} binary: {p}", path.display())
    })
}

fn problem_of_elf(data: &[u8], target: Target) -> Option<String> {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if data.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Some("not a 64-bit little-endian ELF file".into());
    }
    match u16_at(0x12) {
        Some(m) if m == elf_machine(target) => {}
        other => return Some(format!("e_machine is {other:?}")),
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Some("truncated ELF header".into());
    };
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff).ok()? + i * usize::from(phentsize);
        match u32_at(at) {
            Some(3) => return Some("it has a program interpreter (dynamically linked)".into()),
            Some(_) => {}
            None => return Some("truncated program headers".into()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_judged_by_its_interpreter() {
        // The test binary itself is dynamically linked (the default for the gnu target).
        let me = std::fs::read("/proc/self/exe").unwrap();
        let host = if cfg!(target_arch = "x86_64") {
            Target::X86_64
        } else {
            Target::Aarch64
        };
        let problem = problem_of_elf(&me, host).unwrap();
        assert!(problem.contains("interpreter"), "{problem}");
        let other = match host {
            Target::X86_64 => Target::Aarch64,
            Target::Aarch64 => Target::X86_64,
        };
        assert!(problem_of_elf(&me, other).unwrap().contains("e_machine"));
        assert!(problem_of_elf(b"#!/bin/sh\n", host).is_some());
    }
}
