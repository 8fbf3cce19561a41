//! The runtime's `moduledata` of the main module: where its type descriptors, name tables
//! and line tables are. Both [`super::types`] and [`super::lines`] read through it, exactly
//! as the runtime itself does (`resolveNameOff` uses `moduledata.types`, `findfunc` and
//! `pcvalue` use `moduledata.ftab`/`pctab`/...), so we read the same bytes the program does.
//!
//! Finding it, most direct first:
//! 1. `.symtab` symbol `runtime.firstmoduledata` (unstripped builds);
//! 2. the `.go.module` section, where Go 1.26+ places it;
//! 3. a scan of the non-executable segments for the word that points at the pclntab
//!    header (`moduledata.pcHeader`, the first field), found via `.gopclntab` or, for
//!    externally linked PIE (no such section), a search for the header magic. In PIE files
//!    that word is 0 on disk and the pointer is an `R_*_RELATIVE` relocation's addend, so
//!    relocation targets are candidates too.
//!
//! Every candidate is validated (text inside an executable segment, `types < etypes`,
//! table slices inside the file), so a stray matching word is rejected.
//!
//! Field positions, in 8-byte words (see `runtime/symtab.go`): pcHeader 0; six slices
//! funcnametab, cutab, filetab, pctab, pclntable, ftab at 1, 4, 7, 10, 13, 16; findfunctab,
//! minpc, maxpc 19–21; text 22; then noptrdata..enoptrbss 24–31. Go 1.20 inserted
//! covctrs/ecovctrs at 32, so `types`/`etypes`/`rodata`/`gofunc` are at 35/36/37/38 for
//! Go 1.18–1.19 and 37/38/39/40 for Go 1.20–1.26. Go 1.27 added `typedesclen` after
//! `types` and `itaboffset, itabsize` before `rodata`: types 37, etypes 39, gofunc 43.

use std::collections::HashMap;

use super::elf::{read_uint, ElfInfo, LoadSegment};
use super::GoVersion;

const PCLNTAB_MAGIC_GO118: u32 = 0xffff_fff0;
const PCLNTAB_MAGIC_GO120: u32 = 0xffff_fff1;

/// The program's initialised memory at link-time addresses, as the file holds it, with
/// pointers that the dynamic loader fills in (PIE) resolved from their relocations.
pub(crate) struct Memory {
    segments: Vec<LoadSegment>,
    /// Target address → addend of `R_*_RELATIVE` relocations (PIE only).
    relocs: HashMap<u64, u64>,
}

impl Memory {
    pub fn new(data: &[u8], info: &ElfInfo) -> Memory {
        Memory {
            segments: info.segments.clone(),
            relocs: super::pclntab::relative_relocs(data, info.pie),
        }
    }

    /// `len` file bytes at `addr`, all inside one segment's file-backed part.
    pub fn bytes<'d>(&self, data: &'d [u8], addr: u64, len: u64) -> Option<&'d [u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.contains_file_range(addr, len.max(1)))?;
        let start = usize::try_from(seg.file_offset_of(addr)?).ok()?;
        data.get(start..start.checked_add(usize::try_from(len).ok()?)?)
    }

    pub fn u8(&self, data: &[u8], addr: u64) -> Option<u8> {
        self.bytes(data, addr, 1)?.first().copied()
    }

    pub fn u32(&self, data: &[u8], addr: u64) -> Option<u32> {
        u32::try_from(read_uint(self.bytes(data, addr, 4)?, 0, 4)?).ok()
    }

    /// A pointer-sized word as the running program sees it: a relocation's addend if the
    /// loader writes one there, else the file's value.
    pub fn ptr(&self, data: &[u8], addr: u64) -> Option<u64> {
        if let Some(&v) = self.relocs.get(&addr) {
            return Some(v);
        }
        read_uint(self.bytes(data, addr, 8)?, 0, 8)
    }

    fn executable(&self, addr: u64, len: u64) -> bool {
        self.segments
            .iter()
            .any(|s| s.executable && s.contains_file_range(addr, len))
    }
}

/// A Go slice field of moduledata: data pointer and length (in elements).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slice {
    pub addr: u64,
    pub len: u64,
}

/// The fields of `runtime.moduledata` we use, as link-time addresses.
#[derive(Clone, Debug)]
pub(crate) struct ModuleData {
    /// Go 1.18–1.19 (magic 0xfffffff0) lack `_func.startLine` and use a 20-byte
    /// `inlinedCall`; 1.20+ (0xfffffff1) have both changed.
    pub go118_layout: bool,
    /// Number of functions in the functab (from the pcHeader).
    pub nfunc: u64,
    /// PC quantum (`pcHeader.minLC`): 1 on amd64, 4 on arm64.
    pub pc_quantum: u64,
    pub funcnametab: Slice,
    pub cutab: Slice,
    pub filetab: Slice,
    pub pctab: Slice,
    pub pclntable: Slice,
    pub ftab: Slice,
    pub text: u64,
    pub types: u64,
    pub etypes: u64,
    pub gofunc: u64,
}

/// Word indices of (types, etypes, gofunc) for a version (see the module doc).
fn type_words(version: &GoVersion, go118_layout: bool) -> (u64, u64, u64) {
    if go118_layout {
        (35, 36, 38)
    } else if version.at_least(1, 27) {
        (37, 39, 43)
    } else {
        (37, 38, 40)
    }
}

impl ModuleData {
    /// Finds and validates the main module's moduledata (see the module doc for how).
    pub fn find(
        data: &[u8],
        info: &ElfInfo,
        mem: &Memory,
        version: &GoVersion,
        firstmoduledata_symbol: Option<u64>,
    ) -> Result<ModuleData, String> {
        let mut candidates: Vec<u64> = Vec::new();
        candidates.extend(firstmoduledata_symbol);
        if let Some(s) = info.section(".go.module") {
            candidates.push(s.addr);
        }
        for addr in candidates {
            if let Some(md) = ModuleData::read(data, mem, version, addr) {
                return Ok(md);
            }
        }
        let header = pclntab_address(data, info)
            .ok_or("no .gopclntab and no pclntab header found in the data segments")?;
        for addr in pointers_to(data, info, mem, header) {
            if let Some(md) = ModuleData::read(data, mem, version, addr) {
                return Ok(md);
            }
        }
        Err(format!(
            "no runtime.moduledata points at the pclntab at {header:#x}"
        ))
    }

    /// Reads a moduledata at `addr`, or `None` if what is there does not look like one.
    fn read(data: &[u8], mem: &Memory, version: &GoVersion, addr: u64) -> Option<ModuleData> {
        let word = |i: u64| mem.ptr(data, addr.checked_add(i.checked_mul(8)?)?);
        let slice = |i: u64| -> Option<Slice> {
            Some(Slice {
                addr: word(i)?,
                len: word(i.checked_add(1)?)?,
            })
        };
        let pc_header = word(0)?;
        let magic = mem.u32(data, pc_header)?;
        let go118_layout = match magic {
            PCLNTAB_MAGIC_GO118 => true,
            PCLNTAB_MAGIC_GO120 => false,
            _ => return None,
        };
        // pcHeader: magic u32, pad1, pad2, minLC, ptrSize; then nfunc.
        if mem.u8(data, pc_header.checked_add(7)?)? != 8 {
            return None;
        }
        let pc_quantum = u64::from(mem.u8(data, pc_header.checked_add(6)?)?);
        let nfunc = mem.ptr(data, pc_header.checked_add(8)?)?;
        let (types_w, etypes_w, gofunc_w) = type_words(version, go118_layout);
        let md = ModuleData {
            go118_layout,
            nfunc,
            pc_quantum,
            funcnametab: slice(1)?,
            cutab: slice(4)?,
            filetab: slice(7)?,
            pctab: slice(10)?,
            pclntable: slice(13)?,
            ftab: slice(16)?,
            text: word(22)?,
            types: word(types_w)?,
            etypes: word(etypes_w)?,
            gofunc: word(gofunc_w)?,
        };
        md.valid(data, mem).then_some(md)
    }

    fn valid(&self, data: &[u8], mem: &Memory) -> bool {
        let in_file = |s: Slice, elem: u64| {
            s.len
                .checked_mul(elem)
                .is_some_and(|n| mem.bytes(data, s.addr, n).is_some())
        };
        // Each functab entry is 8 bytes; there are nfunc entries plus an end marker.
        self.pc_quantum > 0
            && self.nfunc > 0
            && self.ftab.len > self.nfunc
            && in_file(self.funcnametab, 1)
            && in_file(self.cutab, 4)
            && in_file(self.filetab, 1)
            && in_file(self.pctab, 1)
            && in_file(self.pclntable, 1)
            && in_file(self.ftab, 8)
            && mem.executable(self.text, 1)
            && self.types < self.etypes
            && mem
                .bytes(data, self.types, self.etypes - self.types)
                .is_some()
    }
}

/// Link-time address of the pclntab header: the `.gopclntab` section, else (Go ≤ 1.25
/// linked externally as PIE) a valid-looking header at an 8-byte-aligned position of a
/// non-executable segment.
fn pclntab_address(data: &[u8], info: &ElfInfo) -> Option<u64> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(s) = info.section(name) {
            return Some(s.addr);
        }
    }
    for seg in info.segments.iter().filter(|s| !s.executable) {
        let start = usize::try_from(seg.offset).ok()?;
        let bytes = data.get(start..start.checked_add(usize::try_from(seg.filesz).ok()?)?)?;
        let mut off = (8 - start % 8) % 8;
        while let Some(w) = bytes.get(off..off.saturating_add(16)) {
            let magic = read_uint(w, 0, 4).and_then(|m| u32::try_from(m).ok());
            let plausible = matches!(magic, Some(PCLNTAB_MAGIC_GO118 | PCLNTAB_MAGIC_GO120))
                && w.get(4..6) == Some(&[0, 0])
                && matches!(w.get(6), Some(1 | 2 | 4))
                && w.get(7) == Some(&8)
                && read_uint(w, 8, 8).is_some_and(|n| n > 0 && n < (1 << 24));
            if plausible {
                return seg.vaddr.checked_add(u64::try_from(off).ok()?);
            }
            off = off.checked_add(8)?;
        }
    }
    None
}

/// 8-byte-aligned addresses in non-executable segments whose pointer value is `target`:
/// relocation targets first (PIE), then plain words in the file.
fn pointers_to(data: &[u8], info: &ElfInfo, mem: &Memory, target: u64) -> Vec<u64> {
    let mut out: Vec<u64> = mem
        .relocs
        .iter()
        .filter(|&(_, &v)| v == target)
        .map(|(&a, _)| a)
        .collect();
    out.sort_unstable();
    for seg in info.segments.iter().filter(|s| !s.executable) {
        let Some(start) = usize::try_from(seg.offset).ok() else {
            continue;
        };
        let Some(bytes) = usize::try_from(seg.filesz)
            .ok()
            .and_then(|n| data.get(start..start.checked_add(n)?))
        else {
            continue;
        };
        let first = (8 - start % 8) % 8;
        let mut off = first;
        while let Some(v) = read_uint(bytes, off, 8) {
            if v == target {
                if let Some(a) = u64::try_from(off)
                    .ok()
                    .and_then(|o| seg.vaddr.checked_add(o))
                {
                    out.push(a);
                }
            }
            off = off.saturating_add(8);
        }
    }
    out
}
