//! Builds the kernel programs (`tracer-ebpf`) for both Go architectures we analyse and
//! places the objects in OUT_DIR, so `gctrace-bpf` is one self-contained file.
//!
//! The kernel crate is compiled by Debian's `rustc-web` (it ships a prebuilt `core` for
//! the BPF targets; no nightly or rust-src is needed) and linked by `bpf-linker` built
//! against Debian's LLVM (`cargo xtask setup` installs both). When that toolchain is
//! missing the build stops with one line naming the command that installs it.

use std::{
    env,
    path::{Path, PathBuf},
    process::{exit, Command},
};

/// Debian's compiler with the BPF `core` (package rustc-web + libstd-rust-web-dev-bpf).
const BPF_RUSTC: &str = "/usr/bin/rustc";
const BPF_CORE_DIR: &str = "/usr/lib/rustlib/bpfel-unknown-none/lib";
const INSTALL_HINT: &str = "run `cargo xtask setup` (as root) to install it";

/// (value of `bpf_target_arch`, object file name)
const ARCHES: [(&str, &str); 2] = [
    ("x86_64", "tracer-ebpf-x86_64.o"),
    ("aarch64", "tracer-ebpf-aarch64.o"),
];

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}

fn find_bpf_linker() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = env::var_os("CARGO_HOME")
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest_dir.join("..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    for dir in ["tracer-ebpf/src", "tracer-common/src"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for file in [
        "tracer-ebpf/Cargo.toml",
        "tracer-common/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }

    if !Path::new(BPF_RUSTC).is_file() || !Path::new(BPF_CORE_DIR).is_dir() {
        fail(&format!(
            "BPF toolchain missing: {BPF_RUSTC} with the bpfel core library ({BPF_CORE_DIR}) is not installed; {INSTALL_HINT}"
        ));
    }
    let Some(linker) = find_bpf_linker() else {
        fail(&format!(
            "BPF toolchain missing: bpf-linker not found; {INSTALL_HINT}"
        ));
    };
    let linker_dir = linker.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = env::join_paths(
        std::iter::once(linker_dir).chain(
            env::var_os("PATH")
                .map(|p| env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default(),
        ),
    )
    .unwrap_or_default();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (arch, object) in ARCHES {
        // A target directory of its own per architecture: the two builds differ only in a
        // cfg flag, and sharing one directory would rebuild everything each time.
        let target_dir = workspace.join("target").join("bpf").join(arch);
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&workspace)
            .args(["build", "--package", "tracer-ebpf", "--release"])
            .args(["--target", "bpfel-unknown-none"])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTC", BPF_RUSTC)
            // aya-ebpf uses #![feature(asm_experimental_arch)].
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", format!("--cfg bpf_target_arch=\"{arch}\""))
            .env("PATH", &path);
        for var in [
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_MAKEFLAGS",
            "MAKEFLAGS",
            "MFLAGS",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            cmd.env_remove(var);
        }
        let status = match cmd.status() {
            Ok(s) => s,
            Err(e) => fail(&format!("cannot run cargo to build tracer-ebpf: {e}")),
        };
        if !status.success() {
            fail(&format!(
                "building tracer-ebpf for {arch} failed (see above); if the BPF toolchain is incomplete, {INSTALL_HINT}"
            ));
        }
        let built = target_dir.join("bpfel-unknown-none/release/tracer-ebpf");
        if let Err(e) = std::fs::copy(&built, out_dir.join(object)) {
            fail(&format!("cannot copy {}: {e}", built.display()));
        }
    }
}
