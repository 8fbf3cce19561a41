//! The executable as a file: its ELF structure, the Go build info and version, the
//! function table (`.symtab` or the runtime's own `.gopclntab`), source lines and type
//! names from the runtime's module data, the return instructions of a function, the
//! x86-64 and arm64 instruction decoders; and the vocabulary of binary analysis:
//! [`Arch`], [`GoVersion`], [`Function`], [`BinaryError`].

pub(crate) mod arm64;
pub(crate) mod arm64_regs;
pub(crate) mod buildinfo;
pub(crate) mod elf;
pub(crate) mod lines;
pub(crate) mod moduledata;
pub(crate) mod pclntab;
pub(crate) mod returns;
pub(crate) mod runtime_version;
pub(crate) mod stw_reasons;
pub(crate) mod symbols;
pub(crate) mod types;
pub(crate) mod x86;

use std::fmt;
use std::path::PathBuf;

/// Where the Go version of a binary was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionSource {
    /// The linker's `.go.buildinfo` blob.
    BuildInfo,
    /// No build info: the runtime's own `runtime.buildVersion` string, checked against the
    /// layout of the function table (see `runtime_version.rs`).
    RuntimeString,
}

impl VersionSource {
    /// "buildinfo" or "runtime.buildVersion", as `inspect` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionSource::BuildInfo => "buildinfo",
            VersionSource::RuntimeString => "runtime.buildVersion",
        }
    }
}

/// CPU architecture of the traced program; only the two the kernel programs support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The name used in messages and records ("x86_64", "aarch64"), matching `uname -m`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Go toolchain version that built a binary, as recorded in its build info.
///
/// Field order matters: the derived `Ord` compares `major`, `minor`, `patch` first, so
/// version gates can be written as `v >= &GoVersion::new(1, 26, 0)`-style comparisons on the
/// numeric parts. Pre-releases ("go1.27rc1") have patch 0.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// Exactly as stored in the binary, e.g. "go1.25.5".
    pub raw: String,
}

impl GoVersion {
    /// Parses a Go version string such as "go1.25.5", "go1.27rc1" or
    /// "go1.22.0 X:nocoverageredesign" (experiment suffixes are kept in `raw` only).
    /// Development builds ("devel go1.24-abcdef …") parse by their base version.
    pub fn parse(raw: &str) -> Option<GoVersion> {
        let s = raw.trim();
        let s = s.strip_prefix("devel ").unwrap_or(s);
        let rest = s.strip_prefix("go")?;
        let (major, rest) = take_number(rest)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = take_number(rest)?;
        let patch = rest
            .strip_prefix('.')
            .and_then(take_number)
            .map_or(0, |(p, _)| p);
        Some(GoVersion {
            major,
            minor,
            patch,
            raw: raw.to_string(),
        })
    }

    /// True when this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// Splits a leading decimal number off `s`.
fn take_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n = s.get(..end)?.parse().ok()?;
    Some((n, s.get(end..)?))
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A function of the program: its symbol name and link-time extent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    pub name: String,
    /// Link-time virtual address of the first instruction.
    pub address: u64,
    /// Size in bytes. From `.symtab` this is the exact size; from `.gopclntab` it runs to
    /// the next function and so may include alignment padding.
    pub size: u64,
}

impl Function {
    /// One past the last byte of the function.
    pub fn end(&self) -> u64 {
        self.address.saturating_add(self.size)
    }
}

/// Why a binary cannot be analysed. Messages are one line, name the file and are meant to be
/// shown to the user as they are.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF executable")]
    NotElf { path: PathBuf },
    #[error("{path} is not a Go program (no Go build info, no Go function table)")]
    NotGo { path: PathBuf },
    #[error(
        "{path} is built for {arch}; only x86_64 and aarch64 (64-bit little-endian) are supported"
    )]
    UnsupportedArch { path: PathBuf, arch: String },
    #[error("{path}: no Go build info (.go.buildinfo), and {detail}")]
    NoBuildInfo { path: PathBuf, detail: String },
    #[error("{path}: unsupported Go build info: {detail}")]
    UnsupportedBuildInfo { path: PathBuf, detail: String },
    #[error("{path}: cannot decode {what}: {detail}")]
    Decode {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("process {pid}: {detail}")]
    Process { pid: u32, detail: String },
}
