//! Building small Go programs with every installed toolchain, in each of the ways the
//! tracer must be able to read a binary (plain, stripped, PIE, externally linked, arm64):
//! the fixtures of the binary-analysis tests. Builds are kept on disk under the test's
//! own work directory and redone only when the program's source changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use super::workloads::go_cache_dirs;

/// The binary-analysis tests' program: it allocates, collects once and exits, or with
/// the argument `sleep` prints `ready` and waits a minute (to be read as a process).
pub const ALLOCATING_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

var sink [][]byte

func main() {
	for i := 0; i < 200; i++ {
		sink = append(sink, make([]byte, 1<<16))
		if len(sink) > 50 {
			sink = sink[:0]
		}
	}
	runtime.GC()
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		fmt.Println("ready")
		time.Sleep(60 * time.Second)
	}
	fmt.Println("ok", len(sink))
}
"#;

/// A test's place for its builds and Go caches (`CARGO_TARGET_TMPDIR/NAME`).
pub fn work_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `go` with the tests' shared caches (see [`go_cache_dirs`]), cgo off and the host's
/// GOARCH/GOOS unset (callers set what they build for). `work` is the test's own
/// directory, for its outputs only.
pub fn go_cmd(go: &Path, _work: &Path) -> Command {
    let (gocache, gopath) = go_cache_dirs();
    let mut c = Command::new(go);
    c.env("GOTOOLCHAIN", "local")
        .env("GOCACHE", gocache)
        .env("GOPATH", gopath)
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env_remove("GOARCH");
    c
}

/// An installed toolchain and its `go env GOVERSION`.
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub go: PathBuf,
    pub version: String,
}

/// `go env GOVERSION` of the toolchain at `go`.
pub fn go_version(go: &Path, work: &Path) -> String {
    let o = go_cmd(go, work)
        .args(["env", "GOVERSION"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", go.display()));
    assert!(o.status.success(), "{} env GOVERSION failed", go.display());
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Every toolchain of `gos` that is installed (saying which are not), with its version.
pub fn installed(gos: impl IntoIterator<Item = PathBuf>, work: &Path) -> Vec<Toolchain> {
    let mut out = Vec::new();
    for go in gos {
        if !go.exists() {
            super::skip(&format!("Go toolchain {} is not installed", go.display()));
            continue;
        }
        let version = go_version(&go, work);
        out.push(Toolchain { go, version });
    }
    assert!(!out.is_empty(), "no Go toolchain installed");
    out
}

/// The test matrix's toolchains (workloads/go-versions.txt) that are installed.
pub fn matrix(work: &Path) -> Vec<Toolchain> {
    installed(super::toolchains::matrix().iter().map(|g| g.go()), work)
}

/// The matrix's Debian toolchain (the oldest, which `cargo xtask gen-offsets` does not
/// install under /var/cache/gctrace-bpf/go).
pub fn debian_go() -> PathBuf {
    super::toolchains::matrix()
        .into_iter()
        .find(|g| g.debian)
        .expect("workloads/go-versions.txt lists a debian toolchain")
        .go()
}

/// How a program is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Plain,
    /// `-ldflags=-s -w`: no symbol table, no DWARF.
    Stripped,
    Pie,
    PieStripped,
    /// cgo + external linker, PIE: `.text` no longer starts at `runtime.text`, and Go ≤ 1.25
    /// has no `.gopclntab` section. amd64 only, and only with a C compiler.
    ExternalPie,
    ExternalPieStripped,
}

impl Flavor {
    /// Every flavor, in the order above.
    pub const ALL: [Flavor; 6] = [
        Flavor::Plain,
        Flavor::Stripped,
        Flavor::Pie,
        Flavor::PieStripped,
        Flavor::ExternalPie,
        Flavor::ExternalPieStripped,
    ];

    pub fn stripped(self) -> bool {
        matches!(
            self,
            Flavor::Stripped | Flavor::PieStripped | Flavor::ExternalPieStripped
        )
    }

    pub fn pie(self) -> bool {
        !matches!(self, Flavor::Plain | Flavor::Stripped)
    }

    pub fn external(self) -> bool {
        matches!(self, Flavor::ExternalPie | Flavor::ExternalPieStripped)
    }

    /// The same build with its symbols and DWARF (what `go tool objdump` can read).
    pub fn unstripped(self) -> Flavor {
        match self {
            Flavor::Stripped => Flavor::Plain,
            Flavor::PieStripped => Flavor::Pie,
            Flavor::ExternalPieStripped => Flavor::ExternalPie,
            other => other,
        }
    }

    fn apply(self, c: &mut Command) {
        if self.external() {
            c.env("CGO_ENABLED", "1");
        }
        let ldflags = match (self.external(), self.stripped()) {
            (true, true) => Some("-ldflags=-linkmode=external -s -w"),
            (true, false) => Some("-ldflags=-linkmode=external"),
            (false, true) => Some("-ldflags=-s -w"),
            (false, false) => None,
        };
        if self.pie() {
            c.arg("-buildmode=pie");
        }
        if let Some(flags) = ldflags {
            c.arg(flags);
        }
    }
}

/// Whether a C compiler is installed (for the externally linked flavors); says so if not.
pub fn have_cc() -> bool {
    let have = Command::new("cc").arg("--version").output().is_ok();
    if !have {
        super::skip("externally linked builds: no C compiler");
    }
    have
}

/// A program's source directory under `work`: `main.go` and a `go.mod` of `module`,
/// written only when they changed. Returns the directory and when `main.go` last changed.
pub fn source(work: &Path, program: &str, module: &str) -> (PathBuf, SystemTime) {
    let src = work.join("src");
    std::fs::create_dir_all(&src).expect("create the source directory");
    let write_if_changed = |p: PathBuf, s: &str| {
        if std::fs::read_to_string(&p).ok().as_deref() != Some(s) {
            std::fs::write(&p, s).expect("write the program");
        }
    };
    write_if_changed(src.join("main.go"), program);
    write_if_changed(src.join("go.mod"), &format!("module {module}\n\ngo 1.19\n"));
    let mtime = std::fs::metadata(src.join("main.go"))
        .and_then(|m| m.modified())
        .expect("main.go's mtime");
    (src, mtime)
}

/// One build of [`build_all`]: the program with `go` for `goarch` as `flavor` into `out`.
pub struct Planned {
    pub go: PathBuf,
    pub goarch: &'static str,
    pub flavor: Flavor,
    pub out: PathBuf,
}

/// How many toolchains [`build_all`] builds with at once. One `go build` of a cold cache
/// keeps about one core busy (the runtime package compiles alone); two keep both of a
/// CI machine's.
const PARALLEL_TOOLCHAINS: usize = 2;

/// [`build`] for each of `builds`, the toolchains' builds side by side (each
/// toolchain's in order, so no two compile the same standard library at once).
pub fn build_all(work: &Path, src: &(PathBuf, SystemTime), builds: &[Planned]) {
    let mut by_toolchain: Vec<Vec<&Planned>> = Vec::new();
    for b in builds {
        match by_toolchain.iter_mut().find(|g| g[0].go == b.go) {
            Some(group) => group.push(b),
            None => by_toolchain.push(vec![b]),
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL_TOOLCHAINS)
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(group) = by_toolchain.get(i) else {
                        break;
                    };
                    for b in group {
                        build(&b.go, work, src, b.goarch, b.flavor, &b.out);
                    }
                })
            })
            .collect();
        for w in workers {
            // A failed build panicked its worker: fail the caller with its message.
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// Build the program in `src` with `go` for `goarch` as `flavor` into `out`, unless `out`
/// is newer than `src_mtime`.
pub fn build(
    go: &Path,
    work: &Path,
    (src, src_mtime): &(PathBuf, SystemTime),
    goarch: &str,
    flavor: Flavor,
    out: &Path,
) {
    let fresh = std::fs::metadata(out)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= *src_mtime);
    if fresh {
        return;
    }
    let mut c = go_cmd(go, work);
    c.current_dir(src).env("GOARCH", goarch).arg("build");
    flavor.apply(&mut c);
    let o = c
        .arg("-o")
        .arg(out)
        .arg(".")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", go.display()));
    assert!(
        o.status.success(),
        "building {}: {}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}
