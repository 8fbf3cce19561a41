//! Building the Go workloads of workloads/ with a test toolchain, each build kept on disk
//! and reused while its sources, toolchain and flags are unchanged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::toolchains::Toolchain;
use super::{target_dir, workspace_root};

/// GOCACHE and GOPATH of every Go build the tests make, under target/: one cache for all
/// tests and toolchains (Go keys its entries by toolchain and flags, and is safe for
/// concurrent builds), so each toolchain compiles its runtime and standard library once
/// rather than once per test.
pub fn go_cache_dirs() -> (PathBuf, PathBuf) {
    let cache = target_dir().join("go-cache");
    (cache.join("gocache"), cache.join("gopath"))
}

/// `go` with settings for tests: never download a toolchain, the shared caches, static
/// binaries.
pub fn go_command(go: &Path) -> Command {
    let (gocache, gopath) = go_cache_dirs();
    let mut cmd = Command::new(go);
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOCACHE", gocache)
        .env("GOPATH", gopath)
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null());
    cmd
}

/// Builds `workloads/NAME` with `toolchain` into `<target>/NAME-cache/<version>/NAME`,
/// reusing the previous build while the sources are unchanged.
pub fn build_workload(toolchain: &Toolchain, name: &str) -> PathBuf {
    build_cached(toolchain, name, GcBuild::Default)
}

/// `go build [flags] -o out ./` in `src` with `toolchain` (`flags` adds the flags);
/// panics with the compiler's output, naming `what` was built, if it fails.
fn go_build(
    toolchain: &Toolchain,
    src: &Path,
    out: &Path,
    what: &str,
    flags: impl FnOnce(&mut Command),
) {
    let mut cmd = go_command(&toolchain.go);
    cmd.arg("build");
    flags(&mut cmd);
    let run = cmd
        .arg("-o")
        .arg(out)
        .arg("./")
        .current_dir(src)
        .output()
        .unwrap_or_else(|e| panic!("running {} build: {e}", toolchain.go.display()));
    assert!(
        run.status.success(),
        "building {what} with Go {} failed ({}):\n{}{}",
        toolchain.version,
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// How gcload is built: the default static binary, or one of the shapes real
/// deployments have that the tracer must cope with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcBuild {
    /// `CGO_ENABLED=0 go build`: static, with symbols and DWARF.
    Default,
    /// `-ldflags='-s -w'`: no .symtab, no DWARF (runtime offsets must come from elsewhere).
    Stripped,
    /// `CGO_ENABLED=1 go build -buildmode=pie`: dynamically linked, position independent,
    /// and gcload's cgo.go calls C once.
    PieCgo,
    /// Stripped, then `objcopy --remove-section .go.buildinfo`: the shape of release
    /// binaries whose build info was removed after the build (the version must come from
    /// the runtime's own string).
    NoBuildInfo,
}

impl GcBuild {
    /// Directory suffix in the build cache and label in messages.
    pub fn name(self) -> &'static str {
        match self {
            GcBuild::Default => "default",
            GcBuild::Stripped => "stripped",
            GcBuild::PieCgo => "pie-cgo",
            GcBuild::NoBuildInfo => "no-buildinfo",
        }
    }

    fn configure(self, cmd: &mut Command) {
        match self {
            GcBuild::Default => {}
            GcBuild::Stripped | GcBuild::NoBuildInfo => {
                cmd.arg("-ldflags=-s -w");
            }
            GcBuild::PieCgo => {
                cmd.env("CGO_ENABLED", "1").arg("-buildmode=pie");
            }
        }
    }
}

/// FNV-1a over the workload's sources, the toolchain and the build's shape, to know
/// when to rebuild.
fn fingerprint(src: &Path, toolchain: &Toolchain, build: GcBuild) -> String {
    let mut names: Vec<PathBuf> = fs::read_dir(src)
        .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".go") || name == "go.mod" || name == "go.sum"
        })
        .collect();
    names.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    feed(toolchain.version.as_bytes());
    feed(toolchain.go.to_string_lossy().as_bytes());
    feed(build.name().as_bytes());
    for name in &names {
        feed(name.to_string_lossy().as_bytes());
        feed(&fs::read(name).unwrap_or_else(|e| panic!("reading {}: {e}", name.display())));
    }
    format!("{hash:016x}")
}

/// Builds workloads/gcload with `toolchain` into `<target>/gcload-cache/<version>/`,
/// reusing the previous build while the sources are unchanged.
pub fn build_gcload(toolchain: &Toolchain) -> PathBuf {
    build_gcload_as(toolchain, GcBuild::Default)
}

/// Like [`build_gcload`], in the shape `build` (other than the default in
/// `<target>/gcload-cache/<version>-<shape>/`).
pub fn build_gcload_as(toolchain: &Toolchain, build: GcBuild) -> PathBuf {
    build_cached(toolchain, "gcload", build)
}

/// Builds `workloads/NAME` in the shape `build` into
/// `<target>/NAME-cache/<version>[-<shape>]/NAME`, unless the build there has the
/// fingerprint of the current sources, toolchain and shape. The tests build in parallel:
/// one build at a time in this process, and each to a temporary name renamed into place,
/// so a test never runs a half-written binary.
fn build_cached(toolchain: &Toolchain, name: &str, build: GcBuild) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());

    let src = workspace_root().join("workloads").join(name);
    let dir_name = match build {
        GcBuild::Default => toolchain.version.clone(),
        other => format!("{}-{}", toolchain.version, other.name()),
    };
    let dir = target_dir().join(format!("{name}-cache")).join(dir_name);
    let bin = dir.join(name);
    let stamp = dir.join(format!("{name}.stamp"));
    let fingerprint = fingerprint(&src, toolchain, build);
    if bin.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint.as_str()) {
        return bin;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    let what = format!("{name} ({})", build.name());
    go_build(toolchain, &src, &tmp, &what, |cmd| build.configure(cmd));
    if build == GcBuild::NoBuildInfo {
        let out = Command::new("objcopy")
            .args(["--remove-section", ".go.buildinfo"])
            .arg(&tmp)
            .output()
            .unwrap_or_else(|e| panic!("running objcopy: {e}"));
        assert!(
            out.status.success(),
            "objcopy --remove-section .go.buildinfo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::rename(&tmp, &bin).unwrap_or_else(|e| panic!("renaming to {}: {e}", bin.display()));
    fs::write(&stamp, &fingerprint).unwrap_or_else(|e| panic!("writing {}: {e}", stamp.display()));
    bin
}
