//! What the default probe plan needs to know from the runtime's machine code: where a
//! function calls another, where a register argument is kept in its frame, and which
//! global a store after a call writes. Each finder decodes whole functions from their
//! first byte (amd64 is variable-length), so every address it returns is an instruction
//! boundary, and answers `None` rather than guess when the code does not look as expected.

use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

use yaxpeax_arm::armv8::a64::{Opcode, Operand};

use crate::binary::image::{arm64, arm64_regs, x86};
use crate::binary::{Arch, Function, GoBinary};

/// Decoded instructions of `f` (amd64), or `None` if the bytes cannot be read or decoded.
fn x86_instructions(bin: &GoBinary, f: &Function) -> Option<Vec<Instruction>> {
    x86::decode(bin.code_bytes(f).ok()?, f.address).ok()
}

/// arm64 instruction words of `f` with their addresses.
fn arm64_words(bin: &GoBinary, f: &Function) -> Option<Vec<(u64, u32)>> {
    let bytes = bin.code_bytes(f).ok()?;
    if !f.address.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(arm64::words(bytes, f.address).collect())
}

/// arm64 `BL label`: its target.
fn arm64_bl_target(addr: u64, word: u32) -> Option<u64> {
    let i = arm64::decode(word).filter(|i| i.opcode == Opcode::BL)?;
    match i.operands[0] {
        Operand::PCOffset(off) => Some(addr.wrapping_add(off as u64)),
        _ => None,
    }
}

/// Addresses of the call instructions in `f` whose target is `callee`.
pub fn call_sites(bin: &GoBinary, f: &Function, callee: &Function) -> Vec<u64> {
    match bin.arch() {
        Arch::X86_64 => x86_instructions(bin, f)
            .unwrap_or_default()
            .iter()
            .filter(|i| {
                i.mnemonic() == Mnemonic::Call
                    && i.op0_kind() == OpKind::NearBranch64
                    && i.near_branch_target() == callee.address
            })
            .map(|i| i.ip())
            .collect(),
        Arch::Aarch64 => arm64_words(bin, f)
            .unwrap_or_default()
            .into_iter()
            .filter(|(a, w)| arm64_bl_target(*a, *w) == Some(callee.address))
            .map(|(a, _)| a)
            .collect(),
    }
}

/// amd64: the `PUSHQ BP` right after `f`'s stack-bound check (`CMPQ SP, 16(R14)` and
/// its `JBE` to the morestack tail, which restarts `f` from its entry), where every
/// register but the flags still holds its value at `f`'s entry, so a probe there reads
/// what an entry probe reads. The kernel emulates a `push` at a uprobe instead of
/// single-stepping it out of line, and on a virtual machine the single-step is most of a
/// hit's cost (measured here: ~26 µs at an entry, ~1 µs at its push; docs/performance.md).
/// `None` on arm64 or when the prologue has another shape (the caller probes the entry).
pub fn entry_equivalent_push(bin: &GoBinary, f: &Function) -> Option<u64> {
    if bin.arch() != Arch::X86_64 {
        return None;
    }
    let code = x86_instructions(bin, f)?;
    let [cmp, jbe, push, ..] = code.as_slice() else {
        return None;
    };
    let bound_check = cmp.mnemonic() == Mnemonic::Cmp
        && cmp.op0_kind() == OpKind::Register
        && cmp.op0_register() == Register::RSP
        && cmp.op1_kind() == OpKind::Memory
        && cmp.memory_base() == Register::R14;
    let to_tail = jbe.mnemonic() == Mnemonic::Jbe
        && jbe.near_branch_target() > push.ip()
        && jbe.near_branch_target() < f.address + f.size;
    (bound_check
        && to_tail
        && push.code() == Code::Push_r64
        && push.op0_register() == Register::RBP)
        .then(|| push.ip())
}

/// Where `f` keeps its register argument number `arg` (0-based, integer registers),
/// relative to its frame pointer: the first store of that register into the frame after
/// the prologue. A callee's entry probe sees `f`'s frame pointer still in place, so it can
/// read the argument at `FP + offset` while `f` is suspended in the call. `None` when the
/// prologue or the store is not the expected shape (the caller then does without).
/// amd64: after `PUSH RBP; MOV RBP, RSP; SUB RSP, F`, `[RSP+d]` is `[RBP+d-F]`; arm64:
/// after `SUB $8, RSP, R29`, `[RSP+d]` is `[R29+8+d]`.
pub fn arg_home(bin: &GoBinary, f: &Function, arg: usize) -> Option<i64> {
    match bin.arch() {
        Arch::X86_64 => {
            const ARGS: [Register; 4] =
                [Register::RAX, Register::RBX, Register::RCX, Register::RDI];
            let reg = *ARGS.get(arg)?;
            let code = x86_instructions(bin, f)?;
            // Prologue: PUSH RBP; MOV RBP, RSP; SUB RSP, F (RBP = RSP + F from here on).
            let sub = code.iter().take(8).position(|i| {
                matches!(i.code(), Code::Sub_rm64_imm32 | Code::Sub_rm64_imm8)
                    && i.op0_register() == Register::RSP
            })?;
            let frame = code[sub].immediate(1) as i64;
            let pushed = code[..sub]
                .iter()
                .any(|i| i.code() == Code::Push_r64 && i.op0_register() == Register::RBP);
            if !pushed || frame <= 0 {
                return None;
            }
            // The argument registers are stored within the first few instructions; a
            // call before it would have clobbered them.
            for i in code.iter().skip(sub + 1).take(16) {
                if i.mnemonic() == Mnemonic::Call {
                    return None;
                }
                if i.code() == Code::Mov_rm64_r64
                    && i.op0_kind() == OpKind::Memory
                    && i.memory_base() == Register::RSP
                    && i.memory_index() == Register::None
                    && i.op1_register() == reg
                {
                    return Some(i.memory_displacement64() as i64 - frame);
                }
            }
            None
        }
        Arch::Aarch64 => {
            // Prologue ends with `SUB $8, RSP, R29` (FP = SP - 8); then the argument
            // `MOVD Rarg, off(RSP)` (STR Xarg, [SP, #off]): FP + 8 + off.
            const SET_FP: u32 = 0xd100_23fd;
            let arg = u32::try_from(arg).ok().filter(|a| *a < 8)?;
            let words = arm64_words(bin, f)?;
            let fp = words.iter().take(12).position(|(_, w)| *w == SET_FP)?;
            for (addr, w) in words.iter().skip(fp + 1).take(16) {
                if arm64_bl_target(*addr, *w).is_some() {
                    return None;
                }
                // STR Xarg, [SP, #off] (unsigned offset).
                if let Some((_, _, off)) = arm64_regs::str_x_imm(*w)
                    .filter(|(rt, rn, _)| *rn == 31 && u32::from(*rt) == arg)
                {
                    return i64::try_from(off).ok()?.checked_add(8);
                }
            }
            None
        }
    }
}

/// The global that `f` writes first after its call of `callee`: for
/// `stopTheWorldContext = stopTheWorldWithSema(reason)` in `stopTheWorld`'s closure, the
/// address of `runtime.stopTheWorldContext` (a stripped binary has no symbol for it).
/// amd64: a RIP-relative `MOVB AL`; arm64: `ADRP` + `MOVB R0, lo12(R27)`
/// ([`arm64_regs::byte_global_stored_after_call`]). `None` when the shape differs.
pub fn global_stored_after_call(bin: &GoBinary, f: &Function, callee: &Function) -> Option<u64> {
    if bin.arch() == Arch::Aarch64 {
        let code = bin.code_bytes(f).ok()?;
        return arm64_regs::byte_global_stored_after_call(code, f.address, callee.address);
    }
    let code = x86_instructions(bin, f)?;
    let call = code.iter().position(|i| {
        i.mnemonic() == Mnemonic::Call
            && i.op0_kind() == OpKind::NearBranch64
            && i.near_branch_target() == callee.address
    })?;
    let store = code.get(call + 1)?;
    // MOVB AL, global(SB): the first field of the result (reason) at the global's start.
    (store.mnemonic() == Mnemonic::Mov
        && store.op0_kind() == OpKind::Memory
        && store.is_ip_rel_memory_operand()
        && store.op1_register() == Register::AL)
        .then(|| store.ip_rel_memory_address())
}

/// Go 1.19–1.20 `stopTheWorld(reason string)` does `getg().m.preemptoff = reason`:
/// `MOVQ k(R14), M` (g.m), then the string's length stored at `M+off+8` and its pointer
/// at `M+off` (or, with the write barrier on, `ADDQ $off, M` before `gcWriteBarrier`).
/// Returns `(k, off)`, the offsets of `g.m` and `m.preemptoff`, for binaries without
/// DWARF. arm64: see [`preemptoff_from_arm64`].
pub fn preemptoff_from_code(bin: &GoBinary, stop_the_world: &Function) -> Option<(u32, u32)> {
    if bin.arch() == Arch::Aarch64 {
        return preemptoff_from_arm64(bin, stop_the_world);
    }
    let code = x86_instructions(bin, stop_the_world)?;
    let load = code.iter().position(|i| {
        i.code() == Code::Mov_r64_rm64
            && i.op1_kind() == OpKind::Memory
            && i.memory_base() == Register::R14
            && i.memory_index() == Register::None
    })?;
    let m = code[load].op0_register();
    let g_m = u32::try_from(code[load].memory_displacement64()).ok()?;
    let mut stores = Vec::new();
    let mut adds = Vec::new();
    for i in code.iter().skip(load + 1).take(12) {
        if i.code() == Code::Mov_rm64_r64
            && i.op0_kind() == OpKind::Memory
            && i.memory_base() == m
            && i.memory_index() == Register::None
        {
            stores.push(i.memory_displacement64());
        }
        if matches!(i.code(), Code::Add_rm64_imm32 | Code::Add_rm64_imm8) && i.op0_register() == m {
            adds.push(i.immediate(1));
        }
    }
    let off = stores
        .iter()
        .copied()
        .find(|d| *d >= 8 && (stores.contains(&(d - 8)) || adds.contains(&(d - 8))))?
        - 8;
    Some((g_m, u32::try_from(off).ok()?))
}

/// The arm64 shape of [`preemptoff_from_code`]'s: after the prologue (`SUB $8, RSP,
/// R29`), `MOVD k(R28), Rm` (g.m; R28 is the g register), then within a few
/// instructions the string's length stored at `off+8(Rm)` and its pointer at `off(Rm)`
/// (or `ADD $off, Rm, R2` before `gcWriteBarrier`).
fn preemptoff_from_arm64(bin: &GoBinary, stop_the_world: &Function) -> Option<(u32, u32)> {
    const SET_FP: u32 = 0xd100_23fd;
    const G: u8 = 28;
    let words = arm64_words(bin, stop_the_world)?;
    let fp = words.iter().take(12).position(|(_, w)| *w == SET_FP)?;
    let (load, (m, g_m)) = words
        .iter()
        .enumerate()
        .skip(fp + 1)
        .find_map(|(i, (_, w))| {
            arm64_regs::ldr_x_imm(*w)
                .filter(|(_, rn, _)| *rn == G)
                .map(|(rt, _, off)| (i, (rt, off)))
        })?;
    let mut stores = Vec::new();
    let mut adds = Vec::new();
    for (_, w) in words.iter().skip(load + 1).take(12) {
        if let Some((_, _, off)) = arm64_regs::str_x_imm(*w).filter(|(_, rn, _)| *rn == m) {
            stores.push(off);
        }
        if let Some((_, _, imm)) = arm64_regs::add_x_imm(*w).filter(|(_, rn, _)| *rn == m) {
            adds.push(imm);
        }
    }
    let off = stores
        .iter()
        .copied()
        .find(|d| *d >= 8 && (stores.contains(&(d - 8)) || adds.contains(&(d - 8))))?
        - 8;
    Some((u32::try_from(g_m).ok()?, u32::try_from(off).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_bl_targets_forward_and_back() {
        // BL +8 and BL -4.
        assert_eq!(arm64_bl_target(0x1000, 0x9400_0002), Some(0x1008));
        assert_eq!(arm64_bl_target(0x1000, 0x97ff_ffff), Some(0xffc));
        assert_eq!(arm64_bl_target(0x1000, 0xd65f_03c0), None);
    }
}
