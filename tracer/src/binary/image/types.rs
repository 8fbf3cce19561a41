//! Go type names from type descriptors (`abi.Type`, `runtime._type` before Go 1.21), as
//! `reflect.Type.String()` prints them.
//!
//! Layout on 64-bit, unchanged from Go 1.18 through 1.27 (`internal/abi/type.go`):
//!
//! ```text
//! 0  Size_ uintptr     8  PtrBytes uintptr   16 Hash uint32
//! 20 TFlag u8          21 Align_ u8          22 FieldAlign_ u8   23 Kind_ u8
//! 24 Equal func        32 GCData *byte       40 Str NameOff (i32) 44 PtrToThis TypeOff
//! ```
//!
//! `Str` is an offset from `moduledata.types` (the runtime's `resolveNameOff`) to an
//! `abi.Name`: one flag byte, the length as a uvarint (since Go 1.17; before that two
//! big-endian bytes, which no supported version uses), then the bytes. With
//! `TFlagExtraStar` the stored string is the name of the pointer type ("*T" for T) and the
//! runtime drops the first byte; we do the same.

use super::moduledata::{Memory, ModuleData};

const TYPE_TFLAG: u64 = 20;
const TYPE_STR: u64 = 40;
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// Longest name we accept; type strings of real programs are far shorter, and a bound
/// keeps a corrupt length from making us copy megabytes.
const MAX_NAME_LEN: u64 = 1 << 16;

/// The name of the type whose descriptor is at link-time address `typ`, or `None` if `typ`
/// is not a descriptor of this module (e.g. a type built at run time by `reflect`).
pub(crate) fn type_name(data: &[u8], mem: &Memory, md: &ModuleData, typ: u64) -> Option<String> {
    if typ < md.types || typ >= md.etypes {
        return None;
    }
    let tflag = mem.u8(data, typ.checked_add(TYPE_TFLAG)?)?;
    let str_off = i32::from_le_bytes(mem.u32(data, typ.checked_add(TYPE_STR)?)?.to_le_bytes());
    // 0 means "no name"; names always lie after the start of the types area.
    let str_off = u64::try_from(str_off).ok().filter(|&o| o > 0)?;
    let name = md.types.checked_add(str_off)?;
    if name >= md.etypes {
        return None;
    }
    let s = read_name(data, mem, name, md.etypes)?;
    if tflag & TFLAG_EXTRA_STAR != 0 {
        return Some(s.strip_prefix('*').unwrap_or(&s).to_string());
    }
    Some(s)
}

/// Reads an `abi.Name` at `addr` (which must end before `limit`): flag byte, uvarint
/// length, bytes.
fn read_name(data: &[u8], mem: &Memory, addr: u64, limit: u64) -> Option<String> {
    let start = addr.checked_add(1)?;
    // A uvarint is at most 10 bytes, and the name's ends before `limit`.
    let head = mem.bytes(data, start, limit.checked_sub(start)?.min(10))?;
    let (len, used) = crate::binary::uvarint(head)?;
    let pos = start.checked_add(u64::try_from(used).ok()?)?;
    if len > MAX_NAME_LEN || pos.checked_add(len)? > limit {
        return None;
    }
    let bytes = mem.bytes(data, pos, len)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}
