//! A function's instructions, decoded for searching: the x86-64 instructions up to the
//! first undecodable byte, the arm64 events with their ADRP-tracked addresses, and the
//! absolute addresses either accesses. Every locator of globals and offsets reads code
//! through these.

use iced_x86::Instruction;

use crate::binary::image::arm64::{self, Access, Event};
use crate::binary::image::x86;
use crate::binary::{Arch, Function, GoBinary};

/// The decoded events of `f` (empty when its bytes cannot be read).
pub(crate) fn events(bin: &GoBinary, f: &Function) -> Vec<Event> {
    bin.code_bytes(f)
        .map(|code| arm64::events(code, f.address))
        .unwrap_or_default()
}

/// Every absolute access of `f`.
pub(crate) fn accesses(bin: &GoBinary, f: &Function) -> Vec<Access> {
    events(bin, f)
        .into_iter()
        .filter_map(|e| match e {
            Event::Access(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// The absolute addresses `f` addresses: on x86-64 its RIP-relative memory operands, on
/// arm64 its ADRP-based ones (address computations included on both: taking a field's
/// address is as good a witness as loading it). Undecodable bytes end an x86-64 scan:
/// this is a search, not a uprobe placement.
pub(crate) fn access_targets(bin: &GoBinary, f: &Function) -> Vec<u64> {
    match bin.arch() {
        Arch::X86_64 => decode(bin, f)
            .iter()
            .filter(|i| i.is_ip_rel_memory_operand())
            .map(|i| i.ip_rel_memory_address())
            .collect(),
        Arch::Aarch64 => accesses(bin, f).iter().map(|a| a.target).collect(),
    }
}

/// The instructions of `f` up to the first it cannot decode (none when its bytes cannot
/// be read): the locators search code, they place no probe.
pub(crate) fn decode(bin: &GoBinary, f: &Function) -> Vec<Instruction> {
    let Ok(bytes) = bin.code_bytes(f) else {
        return Vec::new();
    };
    x86::decode(bytes, f.address).unwrap_or_else(|stop| stop.decoded)
}
