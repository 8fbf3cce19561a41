//! The arm64 (A64) register-relative forms the default probe plan reads from code
//! (`probes/code.rs`), beside [`super::arm64`]'s absolute-address tracking: a load, a store
//! and an add with an immediate offset off a register, and the one-byte global stored
//! right after a call. Each takes the instruction word and matches what `yaxpeax-arm`
//! decodes it to, so the callers keep walking plain words.

use yaxpeax_arm::armv8::a64::{Opcode, Operand, SizeCode};

use super::arm64::{self, Access, Event, Kind};

/// `opcode Xt, [Xn, #off]` with an unsigned immediate offset (the decoder's `[Xn, #off]`
/// without writeback; the unscaled and pre/post-indexed forms are other opcodes or
/// operands): `(rt, rn, off)`.
fn x_unsigned_offset(w: u32, opcode: Opcode) -> Option<(u8, u8, u64)> {
    let i = arm64::decode(w).filter(|i| i.opcode == opcode)?;
    let Operand::Register(SizeCode::X, rt) = i.operands[0] else {
        return None;
    };
    let (rn, off) = arm64::base_offset(&i.operands[1])?;
    Some((u8::try_from(rt).ok()?, rn, u64::try_from(off).ok()?))
}

/// `LDR Xt, [Xn, #off]` (64-bit load, unsigned immediate offset; Go's `MOVD off(Rn), Rt`):
/// `(rt, rn, off)`. For the register-relative fields the probe plan reads from code, such
/// as `g.m` off R28 (the g register); [`arm64::events`] tracks only absolute addresses.
pub(crate) fn ldr_x_imm(w: u32) -> Option<(u8, u8, u64)> {
    x_unsigned_offset(w, Opcode::LDR)
}

/// `STR Xt, [Xn, #off]` (64-bit store, unsigned immediate offset; `MOVD Rt, off(Rn)`):
/// `(rt, rn, off)`.
pub(crate) fn str_x_imm(w: u32) -> Option<(u8, u8, u64)> {
    x_unsigned_offset(w, Opcode::STR)
}

/// `ADD Xd, Xn, #imm` (64-bit, immediate, optionally shifted by 12; `ADD $imm, Rn, Rd`):
/// `(rd, rn, imm)`.
pub(crate) fn add_x_imm(w: u32) -> Option<(u8, u8, u64)> {
    arm64::add_x_imm(&arm64::decode(w)?)
}

/// The absolute address of the first global `code` stores after its `BL callee`, when that
/// store is of one byte (Go 1.22+ `stopTheWorldContext = stopTheWorldWithSema(reason)`:
/// `MOVB R0, lo12(R27)`, the result's first field, its reason, at the global's start).
/// `None` when there is no such call, or another call or access comes first.
pub(crate) fn byte_global_stored_after_call(code: &[u8], base: u64, callee: u64) -> Option<u64> {
    let ev = arm64::events(code, base);
    let call = ev
        .iter()
        .position(|e| matches!(e, Event::Call { target, .. } if *target == callee))?;
    ev[call + 1..].iter().find_map(|e| match e {
        Event::Access(Access {
            target,
            kind: Kind::Store { size: 1 },
            ..
        }) => Some(Some(*target)),
        Event::Access(_) | Event::Call { .. } => Some(None),
        _ => None,
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_relative_loads_stores_and_adds() {
        // Go 1.19.8 arm64 runtime.stopTheWorld (go tool objdump):
        // MOVD 48(R28), R4; MOVD R5, 256(R4); ADD $248, R4, R2.
        assert_eq!(ldr_x_imm(0xf9401b84), Some((4, 28, 48)));
        assert_eq!(str_x_imm(0xf9008085), Some((5, 4, 256)));
        assert_eq!(add_x_imm(0x9103e082), Some((2, 4, 248)));
        // Not each other: MOVD R28, 48(RSP) is a store, CALL is neither.
        assert_eq!(ldr_x_imm(0xf9001bfc), None);
        assert_eq!(str_x_imm(0xf9001bfc), Some((28, 31, 48)));
        assert_eq!(add_x_imm(0x9400a68d), None);
        // ADD $1, R0, R0 shifted by 12.
        assert_eq!(add_x_imm(0x91400400), Some((0, 0, 0x1000)));
    }

    #[test]
    fn the_byte_stored_after_a_call() {
        // Go 1.27.3 arm64 runtime.stopTheWorld.func1 at 0x8509c:
        // CALL runtime.stopTheWorldWithSema; ADRP 2240512(PC), R27; MOVB R0, 480(R27).
        let code: Vec<u8> = [0x97ff53d5u32, 0xf000111b, 0x39078360]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        // runtime.stopTheWorldWithSema at 0x59ff0, runtime.stopTheWorldContext at 0x2a81e0 (nm).
        let callee = 0x8509c - 44075 * 4;
        let global = 0x2a81e0;
        assert_eq!(
            byte_global_stored_after_call(&code, 0x8509c, callee),
            Some(global)
        );
        assert_eq!(
            byte_global_stored_after_call(&code, 0x8509c, callee + 4),
            None
        );
    }

    #[test]
    fn writeback_and_unscaled_forms_are_not_immediate_offsets() {
        // Go 1.27.3 arm64 epilogue and prologue: MOVD -8(RSP), R29 (LDUR);
        // MOVD.P 112(RSP), R30 (post-index); MOVD.W R30, -32(RSP) (pre-index).
        assert_eq!(ldr_x_imm(0xf85f83fd), None);
        assert_eq!(ldr_x_imm(0xf84707fe), None);
        assert_eq!(str_x_imm(0xf81e0ffe), None);
        // 32-bit forms are not the 64-bit ones: MOVWU 128(R0), R3; ADD $1, R0, R0 (W).
        assert_eq!(ldr_x_imm(0xb9408003), None);
        assert_eq!(add_x_imm(0x11000400), None);
    }
}
