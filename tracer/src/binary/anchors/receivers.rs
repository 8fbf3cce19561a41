//! `&global` passed as a method's receiver, on either architecture: Go's register ABI
//! (amd64 and arm64, every supported release) passes the receiver in the first integer
//! argument register, so a call `global.method()` is `LEA RAX, [global]` (amd64) or
//! `ADRP R0; ADD $lo, R0, R0` (arm64) shortly before the call, the register untouched
//! in between. [`super::globals`] votes with these sites over a struct global's methods
//! and [`super::work_anchors`] over `work.full`'s `lfstack` methods; the pattern for
//! each decoder is written here once.

use iced_x86::{Mnemonic, OpKind, Register};

use super::instructions;
use crate::binary::image::arm64::{Access, Event, Kind};
use crate::binary::{Arch, Function, GoBinary};

/// The addresses `f` passes as the receiver of a direct call to the entry of a function
/// whose name `is_method` accepts, one per call site.
pub(crate) fn receivers(
    bin: &GoBinary,
    f: &Function,
    is_method: &dyn Fn(&str) -> bool,
) -> Vec<u64> {
    let calls_method = |target: u64| {
        bin.function_at(target)
            .is_some_and(|g| g.address == target && is_method(&g.name))
    };
    match bin.arch() {
        Arch::X86_64 => receivers_x86(bin, f, &calls_method),
        Arch::Aarch64 => receivers_arm64(bin, f, &calls_method),
    }
}

/// `LEA RAX, [global]`, then within a few instructions a `CALL`, with no instruction in
/// between naming RAX (or a part of it) as its first operand.
fn receivers_x86(bin: &GoBinary, f: &Function, calls_method: &dyn Fn(u64) -> bool) -> Vec<u64> {
    const WINDOW: usize = 4;
    let code = instructions::decode(bin, f);
    let mut out = Vec::new();
    for (i, lea) in code.iter().enumerate() {
        if lea.mnemonic() != Mnemonic::Lea
            || lea.op0_register() != Register::RAX
            || !lea.is_ip_rel_memory_operand()
        {
            continue;
        }
        let next = code.iter().skip(i + 1).take(WINDOW).find(|c| {
            c.is_call_near()
                || (c.op_count() > 0
                    && c.op0_kind() == OpKind::Register
                    && c.op0_register().full_register() == Register::RAX)
        });
        if next.is_some_and(|c| c.is_call_near() && calls_method(c.near_branch_target())) {
            out.push(lea.ip_rel_memory_address());
        }
    }
    out
}

/// `ADRP R0; ADD $lo, R0, R0`, then within a few instructions a `BL`, with R0 neither
/// overwritten, moved into, nor given another address in between, and no jump away.
fn receivers_arm64(bin: &GoBinary, f: &Function, calls_method: &dyn Fn(u64) -> bool) -> Vec<u64> {
    const WINDOW: usize = 6;
    let ev = instructions::events(bin, f);
    let mut out = Vec::new();
    for (i, e) in ev.iter().enumerate() {
        let Event::Access(Access {
            target,
            kind: Kind::AddrOf { rd: 0 },
            ..
        }) = e
        else {
            continue;
        };
        let next = ev.iter().skip(i + 1).take(WINDOW).find(|n| {
            matches!(
                n,
                Event::Call { .. }
                    | Event::Jump { .. }
                    | Event::Clobber { rd: 0, .. }
                    | Event::Move { rd: 0, .. }
                    | Event::Access(Access {
                        kind: Kind::AddrOf { rd: 0 },
                        ..
                    })
            )
        });
        if matches!(next, Some(Event::Call { target: t, .. }) if calls_method(*t)) {
            out.push(*target);
        }
    }
    out
}
