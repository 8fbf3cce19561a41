//! PC → function, file and line from the runtime's own tables (`.gopclntab`), the way
//! `runtime.FuncForPC` / `runtime.CallersFrames` compute them, so it works on stripped
//! binaries too. Reference: `runtime/symtab.go` (`findfunc`, `pcvalue`, `step`,
//! `funcfile`) and `runtime/symtabinl.go` (inlining).
//!
//! * functab (`moduledata.ftab`): `nfunc` pairs `u32 entryoff, u32 funcoff` plus an end
//!   entry; `entryoff` is relative to `moduledata.text`, `funcoff` to `pclntable`.
//! * `_func`: `u32 entryOff; i32 nameOff; i32 args; u32 deferreturn; u32 pcsp, pcfile,
//!   pcln, npcdata, cuOffset; [i32 startLine, Go 1.20+]; u8 funcID, flag, _, nfuncdata;
//!   u32 pcdata[npcdata]; u32 funcdata[nfuncdata]`.
//! * pcvalue tables (offsets into `pctab`): pairs of uvarints (zig-zag value delta, pc
//!   delta in units of the PC quantum), starting from value -1 at the entry; a zero value
//!   delta after the first pair ends the table.
//! * file: the pcfile value indexes the function's compilation unit in `cutab`
//!   (`cutab[cuOffset + n]`), which holds an offset of a NUL-terminated name in `filetab`.
//! * inlining: `pcdata[PCDATA_InlTreeIndex=2]` gives the index of the innermost inlined
//!   call at a PC (-1: none) in the tree at `gofunc + funcdata[FUNCDATA_InlTree=3]`. Each
//!   entry names the inlined function and `parentPc`, a PC (offset from entry) whose
//!   position is the call site in the caller, where the walk continues.

use super::moduledata::{Memory, ModuleData, Slice};

/// One source-level frame: what the line tables say of a code address, and what
/// allocation sites are made of in records, pprof files and recordings (one type for
/// both, so no stage converts field by field).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Frame {
    /// Function name as the runtime's pclntab stores it, e.g. "main.(*T).m": what
    /// `runtime.FuncForPC(pc).Name()` returns for non-generic code. Generic
    /// instantiations keep the linker's form (".gen[...]"; Go 1.21+ `FuncForPC` may
    /// format generic methods differently), and '·' is kept where `.symtab` writes '.'.
    pub function: String,
    /// Absolute source path as recorded by the compiler ("?" if the table has none).
    pub file: String,
    /// 1-based line; 0 if unknown.
    pub line: u32,
}

const PCDATA_INL_TREE_INDEX: u64 = 2;
const FUNCDATA_INL_TREE: u64 = 3;
/// Inline depth we follow at most: real trees are a handful deep; a bound keeps a corrupt
/// (cyclic) tree from looping.
const MAX_INLINE_DEPTH: usize = 64;

/// Bounds-checked views of the tables one lookup needs.
struct Tables<'d> {
    funcnametab: &'d [u8],
    cutab: &'d [u8],
    filetab: &'d [u8],
    pctab: &'d [u8],
    pclntable: &'d [u8],
    ftab: &'d [u8],
}

impl<'d> Tables<'d> {
    fn new(data: &'d [u8], mem: &Memory, md: &ModuleData) -> Option<Tables<'d>> {
        let get = |s: Slice, elem: u64| mem.bytes(data, s.addr, s.len.checked_mul(elem)?);
        Some(Tables {
            funcnametab: get(md.funcnametab, 1)?,
            cutab: get(md.cutab, 4)?,
            filetab: get(md.filetab, 1)?,
            pctab: get(md.pctab, 1)?,
            pclntable: get(md.pclntable, 1)?,
            ftab: get(md.ftab, 8)?,
        })
    }
}

/// The `_func` fields we use.
struct Func {
    /// Link-time address of the function's first instruction.
    entry: u64,
    name_off: u32,
    pcfile: u32,
    pcln: u32,
    cu_offset: u32,
    /// `pcdata[]` offsets, then `funcdata[]` offsets.
    npcdata: u32,
    nfuncdata: u8,
    /// Offset of `pcdata[0]` in `pclntable`.
    tables_off: usize,
}

/// Frames for `pc`, innermost (most deeply inlined) first; the last one is the physical
/// function. `None` if `pc` is outside every function.
pub(crate) fn frames(data: &[u8], mem: &Memory, md: &ModuleData, pc: u64) -> Option<Vec<Frame>> {
    let t = Tables::new(data, mem, md)?;
    let f = find_func(&t, md, pc)?;
    let physical_name = cstr(t.funcnametab, f.name_off)?;

    let inl_tree = inline_tree(&t, md, &f);
    let mut out = Vec::new();
    let mut at = pc;
    let mut index = inl_tree.and_then(|_| pcdata(&t, md, &f, PCDATA_INL_TREE_INDEX, at));
    loop {
        let file = pcvalue(&t, md, &f, f.pcfile, at)
            .and_then(|n| file_name(&t, &f, n))
            .unwrap_or_else(|| "?".to_string());
        let line = pcvalue(&t, md, &f, f.pcln, at)
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0);
        let (tree, ix) = match (inl_tree, index) {
            (Some(tree), Some(ix)) if ix >= 0 && out.len() < MAX_INLINE_DEPTH => (tree, ix),
            _ => {
                out.push(Frame {
                    function: physical_name,
                    file,
                    line,
                });
                return Some(out);
            }
        };
        let call = inlined_call(mem, data, md, tree, ix)?;
        out.push(Frame {
            function: cstr(t.funcnametab, call.name_off)?,
            file,
            line,
        });
        at = f.entry.checked_add(u64::try_from(call.parent_pc).ok()?)?;
        index = pcdata(&t, md, &f, PCDATA_INL_TREE_INDEX, at);
    }
}

/// The `_func` containing `pc`: binary search of the functab, as `runtime.findfunc` does
/// in effect (it uses a bucket index for speed; the answer is the same).
fn find_func(t: &Tables<'_>, md: &ModuleData, pc: u64) -> Option<Func> {
    let off = u32::try_from(pc.checked_sub(md.text)?).ok()?;
    let nfunc = usize::try_from(md.nfunc).ok()?;
    let entryoff = |i: usize| u32_at(t.ftab, i.checked_mul(8)?);
    // The end entry bounds the last function.
    if off >= entryoff(nfunc)? {
        return None;
    }
    // First index whose entry is > off, minus one.
    let (mut lo, mut hi) = (0usize, nfunc);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entryoff(mid)? <= off {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let i = lo.checked_sub(1)?;
    let funcoff = usize::try_from(u32_at(t.ftab, i.checked_mul(8)?.checked_add(4)?)?).ok()?;
    let p = t.pclntable.get(funcoff..)?;
    let entry_off = u32_at(p, 0)?;
    if entry_off != entryoff(i)? {
        return None;
    }
    // Go 1.20 inserted startLine (4 bytes) before funcID/flag/_/nfuncdata.
    let tail = if md.go118_layout { 36 } else { 40 };
    Some(Func {
        entry: md.text.checked_add(u64::from(entry_off))?,
        name_off: u32_at(p, 4)?,
        pcfile: u32_at(p, 20)?,
        pcln: u32_at(p, 24)?,
        npcdata: u32_at(p, 28)?,
        cu_offset: u32_at(p, 32)?,
        nfuncdata: *p.get(tail + 3)?,
        tables_off: funcoff.checked_add(tail + 4)?,
    })
}

/// The value of pcvalue table `off` at `target` (`runtime.pcvalue`); `None` when the
/// function has no such table or the table does not cover `target`.
fn pcvalue(t: &Tables<'_>, md: &ModuleData, f: &Func, off: u32, target: u64) -> Option<i32> {
    if off == 0 {
        return None;
    }
    let mut p = t.pctab.get(usize::try_from(off).ok()?..)?;
    let mut pc = f.entry;
    let mut val: i32 = -1;
    loop {
        let (uvdelta, n) = uvarint32(p)?;
        if uvdelta == 0 && pc != f.entry {
            return None;
        }
        p = p.get(n..)?;
        // Zig-zag: low bit is the sign.
        let delta = if uvdelta & 1 != 0 {
            !((uvdelta >> 1) as i32)
        } else {
            (uvdelta >> 1) as i32
        };
        val = val.wrapping_add(delta);
        let (pcdelta, n) = uvarint32(p)?;
        p = p.get(n..)?;
        pc = pc.checked_add(u64::from(pcdelta).checked_mul(md.pc_quantum)?)?;
        if target < pc {
            return Some(val);
        }
    }
}

/// `pcdata[table]` evaluated at `pc`.
fn pcdata(t: &Tables<'_>, md: &ModuleData, f: &Func, table: u64, pc: u64) -> Option<i32> {
    if table >= u64::from(f.npcdata) {
        return None;
    }
    let off = u32_at(
        t.pclntable,
        f.tables_off
            .checked_add(usize::try_from(table.checked_mul(4)?).ok()?)?,
    )?;
    pcvalue(t, md, f, off, pc)
}

/// Link-time address of the function's inline tree, if it has one.
fn inline_tree(t: &Tables<'_>, md: &ModuleData, f: &Func) -> Option<u64> {
    if FUNCDATA_INL_TREE >= u64::from(f.nfuncdata) {
        return None;
    }
    let slot = f
        .tables_off
        .checked_add(usize::try_from(f.npcdata).ok()?.checked_mul(4)?)?
        .checked_add(usize::try_from(FUNCDATA_INL_TREE * 4).ok()?)?;
    let off = u32_at(t.pclntable, slot)?;
    if off == u32::MAX {
        return None;
    }
    md.gofunc.checked_add(u64::from(off))
}

struct InlinedCall {
    name_off: u32,
    parent_pc: i32,
}

/// Entry `ix` of an inline tree. Go 1.20+: `u8 funcID; [3]pad; i32 nameOff; i32 parentPc;
/// i32 startLine` (16 bytes). Go 1.18–1.19: `i16 parent; u8 funcID; pad; i32 file;
/// i32 line; i32 func_; i32 parentPc` (20 bytes).
fn inlined_call(
    mem: &Memory,
    data: &[u8],
    md: &ModuleData,
    tree: u64,
    ix: i32,
) -> Option<InlinedCall> {
    let (size, name_at, parent_at) = if md.go118_layout {
        (20, 12, 16)
    } else {
        (16, 4, 8)
    };
    let base = tree.checked_add(u64::try_from(ix).ok()?.checked_mul(size)?)?;
    let bytes = mem.bytes(data, base, size)?;
    Some(InlinedCall {
        name_off: u32_at(bytes, name_at)?,
        parent_pc: i32::from_le_bytes(u32_at(bytes, parent_at)?.to_le_bytes()),
    })
}

/// File name for pcfile value `n` of `f`'s compilation unit.
fn file_name(t: &Tables<'_>, f: &Func, n: i32) -> Option<String> {
    let index = u64::from(f.cu_offset).checked_add(u64::try_from(n).ok()?)?;
    let off = u32_at(t.cutab, usize::try_from(index.checked_mul(4)?).ok()?)?;
    if off == u32::MAX {
        return None;
    }
    cstr(t.filetab, off)
}

/// NUL-terminated string at `off` of `tab`.
fn cstr(tab: &[u8], off: u32) -> Option<String> {
    let rest = tab.get(usize::try_from(off).ok()?..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(rest.get(..len)?).into_owned())
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Go's `readvarint`: a uvarint of at most 32 bits; returns (value, bytes used).
fn uvarint32(p: &[u8]) -> Option<(u32, usize)> {
    let (v, n) = crate::binary::uvarint(p)?;
    Some((u32::try_from(v).ok()?, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(uvarint32(&[0x05]), Some((5, 1)));
        assert_eq!(uvarint32(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(uvarint32(&[0x80]), None);
        assert_eq!(uvarint32(&[]), None);
        assert_eq!(uvarint32(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
    }

    #[test]
    fn cstrings() {
        let tab = b"a\0bc\0d";
        assert_eq!(cstr(tab, 0).as_deref(), Some("a"));
        assert_eq!(cstr(tab, 2).as_deref(), Some("bc"));
        assert_eq!(cstr(tab, 5), None);
        assert_eq!(cstr(tab, 99), None);
    }
}
