//! The runtime's own names of its stop-the-world reasons, `runtime.stwReasonStrings`
//! (Go 1.21+: `var stwReasonStrings = [...]string{stwUnknown: "unknown", ...}`), read from
//! the binary. Decoding a stop's `stwReason` code assumes the numbering we know; for a
//! Go release newer than any we checked, this table says whether that still holds.
//!
//! The array is in `.data` (strings hold pointers): found by its symbol when `.symtab`
//! exists, else as the string headers whose first two entries are "unknown" and
//! "GC mark termination" (the runtime's first two reasons since Go 1.21).

use super::elf::{read_uint, ElfInfo};
use super::moduledata::Memory;

/// Entries read at most (the runtime has a dozen or so).
const MAX_ENTRIES: usize = 64;
const FIRST: &str = "unknown";
const SECOND: &str = "GC mark termination";

/// The array's strings, in code order, up to the first entry that is not a plausible
/// name; `None` when no such array is found.
pub(crate) fn read(data: &[u8], info: &ElfInfo, symbol: Option<u64>) -> Option<Vec<String>> {
    let mem = Memory::new(data, info);
    let string_at = |addr: u64| -> Option<String> {
        let ptr = mem.ptr(data, addr)?;
        let len = read_uint(mem.bytes(data, addr.checked_add(8)?, 8)?, 0, 8)?;
        if !(1..=64).contains(&len) {
            return None;
        }
        let s = std::str::from_utf8(mem.bytes(data, ptr, len)?).ok()?;
        s.bytes()
            .all(|b| (0x20..0x7f).contains(&b))
            .then(|| s.to_string())
    };
    let start = match symbol {
        Some(a) => a,
        None => {
            let s = info.section(".data")?;
            let mut found = None;
            let mut addr = s.addr.checked_add((8 - s.addr % 8) % 8)?;
            let end = s.addr.checked_add(s.size)?;
            while addr.checked_add(32)? <= end {
                if string_at(addr).as_deref() == Some(FIRST)
                    && string_at(addr + 16).as_deref() == Some(SECOND)
                {
                    found = Some(addr);
                    break;
                }
                addr += 8;
            }
            found?
        }
    };
    let mut out = Vec::new();
    for i in 0..MAX_ENTRIES as u64 {
        match string_at(start.checked_add(i * 16)?) {
            Some(s) => out.push(s),
            None => break,
        }
    }
    (out.first().map(String::as_str) == Some(FIRST)).then_some(out)
}
