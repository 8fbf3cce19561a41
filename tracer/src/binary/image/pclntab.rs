//! Function table of stripped binaries, from the runtime's own `.gopclntab`.
//!
//! Read by hand: no maintained Rust crate reads Go's pclntab (gimli and object stop at
//! DWARF and ELF; the Go tree's own reader is `debug/gosym`).
//!
//! Layout since Go 1.18 (magic 0xfffffff0 for 1.18–1.19, 0xfffffff1 for 1.20+), see
//! `runtime/symtab.go` `pcHeader`:
//!
//! ```text
//! u32 magic; u8 pad1, pad2, minLC, ptrSize;
//! uintptr nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset,
//!         pctabOffset, pclnOffset        (offsets relative to the header)
//! ```
//!
//! At `pclnOffset` is the functab, `nfunc` pairs of u32 `(entryoff, funcoff)` plus one
//! final `entryoff` (the end of the last function); `entryoff` is relative to the start of
//! the text (`runtime.text`), `funcoff` to `pclnOffset`. The `_func` at `funcoff` begins
//! with `u32 entryOff; i32 nameOff`, `nameOff` indexing NUL-terminated names in the
//! funcnametab.
//!
//! The text start is the delicate part. Up to Go 1.25 it is `pcHeader.textStart`; Go 1.26
//! stopped storing it (the slot is still there, zero) and only `moduledata.text` has it,
//! which Go 1.26 puts in its own `.go.module` section. In position-independent binaries
//! both are pointers the dynamic loader relocates, so the file may hold 0 and the real
//! value is the addend of an R_*_RELATIVE relocation. As a last resort, like `go tool
//! objdump`, we take the `.text` section address, which equals `runtime.text` for
//! internally linked programs. Each candidate is checked: all functions must then lie in
//! executable, file-backed memory.

use std::collections::HashMap;
use std::path::Path;

use object::read::elf::ElfFile64;
use object::{elf, Endianness, Object, RelocationFlags};

use super::elf::{read_uint, ElfInfo};
use super::{BinaryError, Function, GoVersion};

const MAGIC_GO118: u64 = 0xffff_fff0;
const MAGIC_GO120: u64 = 0xffff_fff1;
/// Index of `moduledata.text` in pointer-sized words: pcHeader (1), six slices
/// funcnametab..ftab (3 words each = 18), findfunctab, minpc, maxpc (3) → 22. Unchanged
/// from Go 1.18 through 1.27.
const MODULEDATA_TEXT_WORD: usize = 22;

pub(crate) fn functions(
    data: &[u8],
    info: &ElfInfo,
    version: &GoVersion,
    path: &Path,
) -> Result<Vec<Function>, BinaryError> {
    let err = |detail: String| BinaryError::Decode {
        path: path.to_path_buf(),
        what: "function table (.gopclntab)",
        detail,
    };
    let (tab, tab_addr) = locate(data, info)
        .ok_or_else(|| err("binary has neither .symtab nor a recognisable .gopclntab".into()))?;
    let header = Header::parse(tab).map_err(err)?;
    let relocs = RelativeRelocs::read(data, info.pie);

    let ft = header.pcln_offset;
    // The functab as u32 words: entryoff, funcoff, entryoff, funcoff, ..., end.
    let word = |k: u64| -> Option<u64> {
        let off = ft.checked_add(usize::try_from(k.checked_mul(4)?).ok()?)?;
        read_uint(tab, off, 4)
    };
    let end_off = word(2 * header.nfunc).ok_or_else(|| err("functab is truncated".into()))?;
    let first_off = word(0).ok_or_else(|| err("functab is truncated".into()))?;

    let text_start = text_start_candidates(data, info, version, &header, tab_addr, &relocs)
        .into_iter()
        .find(|&t| {
            let (Some(lo), Some(hi)) = (t.checked_add(first_off), t.checked_add(end_off)) else {
                return false;
            };
            hi > lo
                && info
                    .segments
                    .iter()
                    .any(|s| s.executable && s.contains_file_range(lo, hi - lo))
        })
        .ok_or_else(|| err("cannot determine the start of the text".into()))?;

    let mut funcs = Vec::with_capacity(usize::try_from(header.nfunc).unwrap_or(0));
    let mut kinds = Vec::with_capacity(funcs.capacity());
    for i in 0..header.nfunc {
        let (Some(start), Some(funcoff), Some(next)) =
            (word(2 * i), word(2 * i + 1), word(2 * i + 2))
        else {
            return Err(err(format!("functab entry {i} is truncated")));
        };
        let name = func_name(tab, &header, funcoff)
            .ok_or_else(|| err(format!("name of function {i} is unreadable")))?;
        let size = next
            .checked_sub(start)
            .ok_or_else(|| err(format!("functab is not sorted at entry {i}")))?;
        kinds.push(func_kind(tab, &header, funcoff));
        funcs.push(Function {
            name,
            address: text_start.wrapping_add(start),
            size,
        });
    }
    name_abi0_twins(&mut funcs, &kinds);
    Ok(funcs)
}

/// What `_func.funcID` / `_func.flag` say about a function, for telling ABI twins apart.
#[derive(Clone, Copy, Debug, Default)]
struct FuncKind {
    /// Written in assembly (FuncFlagAsm): assembly functions use ABI0.
    asm: bool,
    /// Any special funcID, notably FuncIDWrapper for compiler-generated ABI wrappers.
    special: bool,
}

/// FuncFlagAsm = 1 << 2 (TopFrame, SPWrite, Asm) in Go 1.19 through 1.27.
const FUNC_FLAG_ASM: u8 = 1 << 2;

fn func_kind(tab: &[u8], header: &Header, funcoff: u64) -> FuncKind {
    // funcID and flag follow nine u32s, plus startLine since Go 1.20.
    let id_off: usize = if header.magic == MAGIC_GO118 { 36 } else { 40 };
    let bytes = usize::try_from(funcoff)
        .ok()
        .and_then(|f| header.pcln_offset.checked_add(f)?.checked_add(id_off))
        .and_then(|o| tab.get(o..o.checked_add(2)?));
    match bytes {
        Some([id, flag]) => FuncKind {
            asm: flag & FUNC_FLAG_ASM != 0,
            special: *id != 0,
        },
        _ => FuncKind::default(),
    }
}

/// A function called across the ABI boundary exists twice, under one name in
/// `.gopclntab`: the implementation and a compiler-generated wrapper. `.symtab` calls the
/// ABI0 one "NAME.abi0"; do the same so `function(NAME)` is the ABIInternal entry Go
/// code calls, whichever way the table was read. The ABI0 twin is the assembly one if
/// there is one (an asm function with a Go-ABI wrapper), else the wrapper (a Go function
/// with an ABI0 wrapper for assembly callers). Undecidable pairs keep their names.
fn name_abi0_twins(funcs: &mut [Function], kinds: &[FuncKind]) {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in funcs.iter().enumerate() {
        by_name.entry(f.name.as_str()).or_default().push(i);
    }
    let mut renames = Vec::new();
    for idx in by_name.values() {
        let [a, b] = idx[..] else { continue };
        let (Some(ka), Some(kb)) = (kinds.get(a), kinds.get(b)) else {
            continue;
        };
        let abi0 = match (ka.asm, kb.asm, ka.special, kb.special) {
            (true, false, _, _) => a,
            (false, true, _, _) => b,
            (false, false, true, false) => a,
            (false, false, false, true) => b,
            _ => continue,
        };
        renames.push(abi0);
    }
    for i in renames {
        if let Some(f) = funcs.get_mut(i) {
            f.name.push_str(".abi0");
        }
    }
}

/// The pclntab bytes (from its header to the end of the section or segment) and its
/// link-time address. Go ≤ 1.25 linked externally as PIE has no `.gopclntab` section (the
/// table sits inside `.data.rel.ro`); there we look for a valid header at 8-byte-aligned
/// positions of the non-executable segments.
fn locate<'d>(data: &'d [u8], info: &ElfInfo) -> Option<(&'d [u8], u64)> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(sect) = info.section(name) {
            return Some((info.section_data(data, sect)?, sect.addr));
        }
    }
    for seg in info.segments.iter().filter(|s| !s.executable) {
        let start = usize::try_from(seg.offset).ok()?;
        let end = start.checked_add(usize::try_from(seg.filesz).ok()?)?;
        let bytes = data.get(start..end)?;
        // vaddr ≡ offset (mod page), so 8-byte alignment in memory is alignment in the file.
        let mut off = (8 - start % 8) % 8;
        while let Some(window) = bytes.get(off..) {
            if window.len() < 64 {
                break;
            }
            let magic = read_uint(window, 0, 4);
            if (magic == Some(MAGIC_GO118) || magic == Some(MAGIC_GO120))
                && window.get(4..6) == Some(&[0, 0])
                && window.get(7) == Some(&8)
                && Header::parse(window).is_ok()
            {
                return Some((window, seg.vaddr.checked_add(u64::try_from(off).ok()?)?));
            }
            off = off.checked_add(8)?;
        }
    }
    None
}

/// The parsed `pcHeader` (offsets converted to `usize` and bounds-checked lazily).
struct Header {
    magic: u64,
    nfunc: u64,
    text_start_slot: u64,
    funcname_offset: usize,
    pcln_offset: usize,
}

impl Header {
    fn parse(tab: &[u8]) -> Result<Header, String> {
        let magic = read_uint(tab, 0, 4).ok_or("section is empty")?;
        if magic != MAGIC_GO118 && magic != MAGIC_GO120 {
            return Err(format!(
                "unsupported magic {magic:#x} (Go 1.18 or newer layout expected)"
            ));
        }
        let ptr_size = usize::from(*tab.get(7).ok_or("header is truncated")?);
        if ptr_size != 8 {
            return Err(format!(
                "pointer size {ptr_size} (only 64-bit is supported)"
            ));
        }
        let word = |i: usize| read_uint(tab, 8 + i * 8, 8).ok_or("header is truncated");
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| "offset out of range");
        let nfunc = word(0)?;
        // Every function needs 8 bytes of functab: reject absurd counts before allocating.
        if nfunc > tab.len() as u64 / 8 {
            return Err(format!("implausible function count {nfunc}"));
        }
        Ok(Header {
            magic,
            nfunc,
            text_start_slot: word(2)?,
            funcname_offset: to_usize(word(3)?)?,
            pcln_offset: to_usize(word(7)?)?,
        })
    }
}

fn func_name(tab: &[u8], header: &Header, funcoff: u64) -> Option<String> {
    let func = header
        .pcln_offset
        .checked_add(usize::try_from(funcoff).ok()?)?;
    let name_off = u32::try_from(read_uint(tab, func.checked_add(4)?, 4)?).ok()?;
    let name_off = usize::try_from(i32::from_le_bytes(name_off.to_le_bytes())).ok()?;
    let start = header.funcname_offset.checked_add(name_off)?;
    let rest = tab.get(start..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(rest.get(..len)?).into_owned())
}

/// Candidate text start addresses, most authoritative first.
fn text_start_candidates(
    data: &[u8],
    info: &ElfInfo,
    version: &GoVersion,
    header: &Header,
    pclntab_addr: u64,
    relocs: &RelativeRelocs,
) -> Vec<u64> {
    let mut out = Vec::new();
    // Go ≤ 1.25: pcHeader.textStart (word 2 after the 8-byte magic/pad/minLC/ptrSize).
    if !version.at_least(1, 26) {
        let slot_addr = pclntab_addr.wrapping_add(8 + 2 * 8);
        if let Some(v) = relocs.value(slot_addr, header.text_start_slot) {
            out.push(v);
        }
    }
    // Go ≥ 1.26: moduledata.text in .go.module (also fine to try on older ones if present).
    if let Some(md) = info.section(".go.module") {
        let word_addr = md.addr.wrapping_add((MODULEDATA_TEXT_WORD * 8) as u64);
        if let Some(raw) = info
            .bytes_at(data, word_addr)
            .and_then(|b| read_uint(b, 0, 8))
        {
            if let Some(v) = relocs.value(word_addr, raw) {
                out.push(v);
            }
        }
    }
    if let Some(text) = info.section(".text") {
        out.push(text.addr);
    }
    out
}

/// Addends of R_*_RELATIVE dynamic relocations by target address (empty unless PIE);
/// `moduledata.rs` reads the same ones.
pub(crate) fn relative_relocs(data: &[u8], pie: bool) -> HashMap<u64, u64> {
    let mut map = HashMap::new();
    if !pie {
        return map;
    }
    let Ok(file) = ElfFile64::<Endianness>::parse(data) else {
        return map;
    };
    if let Some(relocs) = file.dynamic_relocations() {
        for (addr, rel) in relocs {
            let relative = matches!(
                rel.flags(),
                RelocationFlags::Elf { r_type }
                    if r_type == elf::R_X86_64_RELATIVE || r_type == elf::R_AARCH64_RELATIVE
            );
            if relative && !rel.has_implicit_addend() {
                map.insert(addr, rel.addend() as u64);
            }
        }
    }
    map
}

/// Addends of R_*_RELATIVE dynamic relocations by target address, for PIE binaries whose
/// pointers are only filled in at load time.
struct RelativeRelocs(HashMap<u64, u64>);

impl RelativeRelocs {
    fn read(data: &[u8], pie: bool) -> RelativeRelocs {
        RelativeRelocs(relative_relocs(data, pie))
    }

    /// The value a pointer at `addr` holds after loading at link-time addresses: the
    /// relocation addend if there is one, else what the file holds; `None` if that is 0.
    fn value(&self, addr: u64, file_value: u64) -> Option<u64> {
        let v = self.0.get(&addr).copied().unwrap_or(file_value);
        (v != 0).then_some(v)
    }
}

/// What the pclntab header says about the Go release that wrote it, for checking a
/// version found elsewhere (see [`super::runtime_version`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Family {
    /// 0xfffffff0 (Go 1.18–1.19) or 0xfffffff1 (Go 1.20+).
    pub magic: u32,
    /// `pcHeader.textStart` holds the text address (Go ≤ 1.25; Go 1.26 stopped storing it).
    pub stores_text_start: bool,
}

/// The layout family of the binary's pclntab, or `None` when it has no recognisable one.
pub(crate) fn family(data: &[u8], info: &ElfInfo) -> Option<Family> {
    let (tab, addr) = locate(data, info)?;
    let header = Header::parse(tab).ok()?;
    let relocs = RelativeRelocs::read(data, info.pie);
    let slot_addr = addr.wrapping_add(8 + 2 * 8);
    Some(Family {
        magic: u32::try_from(header.magic).ok()?,
        stores_text_start: relocs.value(slot_addr, header.text_start_slot).is_some(),
    })
}
/// `_func.args` (bytes of arguments and results, Go's own figure) of the function named
/// `name`, read from the pclntab by name alone: a signature fingerprint that stripped
/// binaries keep. `None` when the function or the table is missing.
pub(crate) fn args_size(data: &[u8], info: &ElfInfo, name: &str) -> Option<u32> {
    let (tab, _) = locate(data, info)?;
    let header = Header::parse(tab).ok()?;
    let ft = header.pcln_offset;
    for i in 0..header.nfunc {
        let off = ft.checked_add(usize::try_from(i.checked_mul(8)?.checked_add(4)?).ok()?)?;
        let funcoff = read_uint(tab, off, 4)?;
        if func_name(tab, &header, funcoff).as_deref() != Some(name) {
            continue;
        }
        let func = ft.checked_add(usize::try_from(funcoff).ok()?)?;
        // _func: entryOff u32, nameOff i32, args i32.
        return u32::try_from(read_uint(tab, func.checked_add(8)?, 4)?).ok();
    }
    None
}
