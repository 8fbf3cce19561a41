//! The Go version of an executable whose `.go.buildinfo` was removed after the build
//! (seen on a widely used bundler's release binaries): the runtime's own version string
//! (`runtime.buildVersion`, which `runtime.Version()` returns), checked against what the
//! function table's layout says about the release that wrote it.
//!
//! `runtime.buildVersion` is a string variable the linker fills in (`addstrdata`): a
//! `(pointer, length)` pair in `.data` pointing at the bytes "go1.N.M" in `.rodata`. In a
//! stripped binary its symbol is gone, so every 8-byte-aligned pair in the writable data
//! whose pointer lands on a string of the exact Go version grammar is a candidate (in
//! PIE files the pointer is a relocation's addend). A program may hold another such
//! string, so candidates are first filtered by the layout family, and more than one
//! survivor is refused rather than guessed between.
//!
//! Families (`runtime/symtab.go`, the linker's `pclntab.go`, `runtime/symtab.go`
//! `moduledata`): pclntab magic 0xfffffff0 is Go 1.18–1.19 and 0xfffffff1 Go 1.20+;
//! Go 1.26 stopped storing `pcHeader.textStart` and added the `.go.module` section; the
//! moduledata layout of the version (Go 1.27 added `typedesclen`) must validate.

use std::path::Path;

use super::elf::{read_uint, ElfInfo};
use super::moduledata::{Memory, ModuleData};
use super::pclntab::{self, Family};
use super::{BinaryError, GoVersion};

const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;

/// Longest version string accepted ("devel go1.28-abcdef0123 Tue Jan 1 00:00:00 2030 +0000"
/// with experiments fits).
const MAX_LEN: u64 = 128;

/// The version of a Go executable without build info. `NotGo` when it has no Go function
/// table either; otherwise a one-line error that names the part that is missing or
/// disagrees.
pub(crate) fn find_version(
    data: &[u8],
    info: &ElfInfo,
    path: &Path,
) -> Result<GoVersion, BinaryError> {
    let Some(family) = pclntab::family(data, info) else {
        return Err(BinaryError::NotGo {
            path: path.to_path_buf(),
        });
    };
    let fail = |detail: String| BinaryError::NoBuildInfo {
        path: path.to_path_buf(),
        detail,
    };
    let mem = Memory::new(data, info);
    let candidates = candidates(data, info, &mem);
    if candidates.is_empty() {
        return Err(fail(format!(
            "no runtime version string (runtime.buildVersion) was found, although its \
             function table is Go's ({})",
            describe(family)
        )));
    }
    let mut agreeing = Vec::new();
    let mut disagreements = Vec::new();
    for v in candidates {
        match disagreement(data, info, &mem, family, &v) {
            None => agreeing.push(v),
            Some(why) => disagreements.push(format!("it says {} but {why}", v.raw)),
        }
    }
    match agreeing.len() {
        1 => Ok(agreeing.remove(0)),
        0 => Err(fail(format!(
            "its runtime version string disagrees with the binary's layout ({})",
            disagreements.join("; ")
        ))),
        _ => Err(fail(format!(
            "several strings could be the runtime's version ({}): refusing to \
             guess",
            agreeing
                .iter()
                .map(|v| v.raw.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn describe(f: Family) -> &'static str {
    match (f.magic, f.stores_text_start) {
        (MAGIC_GO118, _) => "pclntab of Go 1.18–1.19",
        (_, true) => "pclntab of Go 1.20–1.25",
        _ => "pclntab of Go 1.26 or newer",
    }
}

/// Why version `v` cannot have written this binary, or `None` if everything agrees.
fn disagreement(
    data: &[u8],
    info: &ElfInfo,
    mem: &Memory,
    family: Family,
    v: &GoVersion,
) -> Option<String> {
    if v.major != 1 {
        return Some("not a Go 1 release".into());
    }
    let magic_ok = match family.magic {
        MAGIC_GO118 => (18..=19).contains(&v.minor),
        MAGIC_GO120 => v.minor >= 20,
        _ => false,
    };
    if !magic_ok {
        return Some(format!(
            "its function table has magic {:#x} ({})",
            family.magic,
            describe(family)
        ));
    }
    let new_text = v.at_least(1, 26);
    if family.stores_text_start == new_text {
        return Some(if new_text {
            "its pclntab stores textStart, which Go 1.26+ does not".into()
        } else {
            "its pclntab lacks textStart, which Go before 1.26 stores".into()
        });
    }
    // Files with section headers: Go 1.26+ writes `.go.module`, older releases do not.
    if !info.sections.is_empty() && info.section(".go.module").is_some() != new_text {
        return Some(if new_text {
            "it has no .go.module section, which Go 1.26+ writes".into()
        } else {
            "it has a .go.module section, which only Go 1.26+ writes".into()
        });
    }
    if let Err(e) = ModuleData::find(data, info, mem, v, None) {
        return Some(format!(
            "its runtime.moduledata does not have this release's layout ({e})"
        ));
    }
    None
}

/// Distinct version strings that a `(pointer, length)` pair in the writable data points
/// at, in the order first seen.
fn candidates(data: &[u8], info: &ElfInfo, mem: &Memory) -> Vec<GoVersion> {
    let mut out: Vec<GoVersion> = Vec::new();
    for (start, bytes) in writable_data(data, info) {
        let mut off = (8 - (start % 8) as usize) % 8;
        while let (Some(len), Some(addr)) = (
            read_uint(bytes, off.saturating_add(8), 8),
            start.checked_add(off as u64),
        ) {
            if (5..=MAX_LEN).contains(&len) {
                if let Some(s) = mem
                    .ptr(data, addr)
                    .and_then(|p| mem.bytes(data, p, len))
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .filter(|s| is_version_string(s))
                {
                    if !out.iter().any(|v| v.raw == s) {
                        if let Some(v) = GoVersion::parse(s) {
                            out.push(v);
                        }
                    }
                }
            }
            off = off.saturating_add(8);
        }
    }
    out
}

/// `.data` (where the linker puts `runtime.buildVersion`), or every writable file-backed
/// region when the file has no section headers: (link-time address, bytes).
fn writable_data<'d>(data: &'d [u8], info: &ElfInfo) -> Vec<(u64, &'d [u8])> {
    if let Some(s) = info.section(".data") {
        return info
            .section_data(data, s)
            .map(|b| vec![(s.addr, b)])
            .unwrap_or_default();
    }
    info.segments
        .iter()
        .filter(|s| !s.executable)
        .filter_map(|s| {
            let start = usize::try_from(s.offset).ok()?;
            let end = start.checked_add(usize::try_from(s.filesz).ok()?)?;
            Some((s.vaddr, data.get(start..end)?))
        })
        .collect()
}

/// The runtime's version grammar, exactly: "go1.N", "go1.N.M", "go1.NrcK", "go1.NbetaK",
/// each optionally followed by " X:experiments"; or "devel go1.N-…" / "devel +hash …".
fn is_version_string(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("devel ") {
        let printable = rest.bytes().all(|b| (0x20..0x7f).contains(&b));
        return printable && (rest.starts_with("go1.") || rest.starts_with('+'));
    }
    let (base, experiments) = match s.split_once(' ') {
        Some((b, x)) => (b, Some(x)),
        None => (s, None),
    };
    if let Some(x) = experiments {
        let ok = x.strip_prefix("X:").is_some_and(|e| {
            !e.is_empty()
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'_')
        });
        if !ok {
            return false;
        }
    }
    let Some(rest) = base.strip_prefix("go1.") else {
        return false;
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (minor, tail) = match rest.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !digits(minor) {
        return false;
    }
    tail.is_empty()
        || tail.strip_prefix('.').is_some_and(digits)
        || tail.strip_prefix("rc").is_some_and(digits)
        || tail.strip_prefix("beta").is_some_and(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_grammar() {
        for ok in [
            "go1.19.8",
            "go1.27.3",
            "go1.28",
            "go1.28rc1",
            "go1.28beta2",
            "go1.22.0 X:nocoverageredesign",
            "devel go1.28-1ed0f5b Mon Jun 3 12:00:00 2030 +0000",
        ] {
            assert!(is_version_string(ok), "{ok}");
        }
        for bad in [
            "go1.",
            "go1.x",
            "go1.27.3.",
            "go1.27.3x",
            "go1.27.3 ",
            "go1.27.3 X:",
            "gox1.2",
            "go2.0",
            "go1.27.3\n",
            "devel",
            "devel abc",
            "golang.org/x/net",
        ] {
            assert!(!is_version_string(bad), "{bad}");
        }
    }
}
