//! Absolute addresses of runtime globals in arm64 (A64) code, from the instructions the
//! `yaxpeax-arm` crate decodes, and the register tracking that ties them together.
//!
//! arm64 has no PC-relative loads of arbitrary reach: Go builds the address of a global
//! `sym+off` with `ADRP Rt, page(sym+off)` followed by `ADD $lo12, Rt, Rd` (address
//! taken) or a load/store with `lo12` as its immediate offset (`MOVD lo12(R27), R1`),
//! always adjacent or within a few instructions. [`events`] tracks registers that hold a
//! known page or address for a short window and reports every memory operand (and address
//! computation) whose absolute target follows. The decoding is the crate's; what is ours
//! is that tracking, which a decoder cannot know: anything not understood that writes a
//! register forgets that register, so a stale value is never used; a call forgets all.
//! Instructions are fixed 4-byte little-endian words, so a linear scan never desyncs, and
//! a word that does not decode (data in a literal pool after a function's last branch)
//! is skipped after forgetting everything.

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Opcode, Operand, SIMDSizeCode, SizeCode};

/// How a global is touched by one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ADD $imm, Rn, Rd` completing an `ADRP`: the address is taken into `rd`.
    AddrOf { rd: u8 },
    /// A load of `size` bytes into register `rt` (`fp`: a floating-point register).
    Load { size: u8, rt: u8, fp: bool },
    /// A store of `size` bytes.
    Store { size: u8 },
    /// A load-acquire / store-release / exclusive / LSE atomic (or CAS) on the address;
    /// `rt` is the register a load-acquire or exclusive load fills from it (a
    /// read-modify-write counts as a store).
    Atomic {
        size: u8,
        store: bool,
        rt: Option<u8>,
    },
}

/// One instruction that addresses a known absolute location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Link-time address of the instruction.
    pub pc: u64,
    /// Absolute link-time address addressed.
    pub target: u64,
    pub kind: Kind,
}

/// One decoded event of a function, in address order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Access(Access),
    /// `BL target`, or `BLR Rn` with target 0 (an indirect call has no static target;
    /// x86-64's report theirs the same way).
    Call {
        pc: u64,
        target: u64,
    },
    /// `B`, `BR` or `RET`: the next instruction is not reached from this one (a value
    /// seen before it says nothing after it).
    Jump {
        pc: u64,
    },
    /// Any other instruction that writes general register `rd` (its value is unknown).
    Clobber {
        pc: u64,
        rd: u8,
    },
    /// `rd` now holds `rs`'s value, possibly shifted (`MOVD Rs, Rd`, `LSR $n, Rs, Rd`).
    Move {
        pc: u64,
        rd: u8,
        rs: u8,
    },
    /// A general register stored to or loaded from the stack frame at `offset(RSP)`.
    Stack {
        pc: u64,
        offset: u64,
        rt: u8,
        load: bool,
    },
}

/// How many instructions a register set by `ADRP`/`ADD` stays believed: Go emits the
/// pair adjacently; a receiver `ADD` may precede its `BL` by a few argument moves.
const WINDOW: u64 = 8;

/// One word decoded, or `None` when it is no A64 instruction `yaxpeax-arm` knows (data in
/// a literal pool, SVE, which Go does not emit).
pub(crate) fn decode(word: u32) -> Option<Instruction> {
    let bytes = word.to_le_bytes();
    InstDecoder::default()
        .decode(&mut U8Reader::new(&bytes))
        .ok()
}

/// The words of `code` (bytes at link-time address `base`) with their addresses; a
/// trailing partial word is left out.
pub(crate) fn words(code: &[u8], base: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
    code.chunks_exact(4).zip(0u64..).map(move |(w, i)| {
        (
            base.wrapping_add(4 * i),
            u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
        )
    })
}

/// A general-purpose register operand's number (31 is XZR or SP, as the operand says).
fn gpr(op: &Operand) -> Option<u8> {
    match *op {
        Operand::Register(_, r) | Operand::RegisterOrSP(_, r) => u8::try_from(r).ok(),
        _ => None,
    }
}

/// A 64-bit general register (`Xn`, or `SP` where the form allows it).
fn x_reg(op: &Operand) -> Option<u8> {
    match *op {
        Operand::Register(SizeCode::X, r) | Operand::RegisterOrSP(SizeCode::X, r) => {
            u8::try_from(r).ok()
        }
        _ => None,
    }
}

/// `[Rn, #off]` without writeback (unsigned-offset and signed-offset forms; the exclusive,
/// ordered and atomic forms with offset 0): `(rn, off)`.
pub(crate) fn base_offset(op: &Operand) -> Option<(u8, i64)> {
    match *op {
        Operand::RegPreIndex(rn, off, false) => Some((u8::try_from(rn).ok()?, i64::from(off))),
        _ => None,
    }
}

/// The registers `ADRP`/`ADD` tracking believes, each with the instruction index it was
/// set at. Register numbers come from the decoder; any out of range is simply not held.
struct Known([Option<(u64, u64)>; 32]);

impl Known {
    fn set(&mut self, r: u8, value: Option<(u64, u64)>) {
        if let Some(slot) = self.0.get_mut(usize::from(r)) {
            *slot = value;
        }
    }

    /// `r`'s value if it was set within the window before instruction `idx`.
    fn get(&self, r: u8, idx: u64) -> Option<u64> {
        self.0
            .get(usize::from(r))
            .copied()
            .flatten()
            .filter(|(_, at)| idx - at <= WINDOW)
            .map(|(v, _)| v)
    }

    fn forget_all(&mut self) {
        self.0 = [None; 32];
    }
}

/// Decodes `code` (the bytes of a function at link-time address `base`) into events.
pub fn events(code: &[u8], base: u64) -> Vec<Event> {
    let mut known = Known([None; 32]);
    let mut out = Vec::new();
    for ((pc, word), idx) in words(code, base).zip(0u64..) {
        let Some(insn) = decode(word) else {
            known.forget_all();
            continue;
        };
        match classify(&insn, pc) {
            Insn::Adrp { rd, page } => known.set(rd, Some((page, idx))),
            Insn::AddImm { rd, rn, imm } => match known.get(rn, idx) {
                Some(v) => {
                    let addr = v.wrapping_add(imm);
                    known.set(rd, Some((addr, idx)));
                    out.push(Event::Access(Access {
                        pc,
                        target: addr,
                        kind: Kind::AddrOf { rd },
                    }));
                }
                None => {
                    known.set(rd, None);
                    out.push(Event::Clobber { pc, rd });
                }
            },
            Insn::Mem {
                rt,
                rt2,
                rn,
                offset,
                size,
                load,
                fp,
            } => {
                if let Some(v) = known.get(rn, idx) {
                    let target = v.wrapping_add(offset);
                    let kind = |rt| {
                        if load {
                            Kind::Load { size, rt, fp }
                        } else {
                            Kind::Store { size }
                        }
                    };
                    out.push(Event::Access(Access {
                        pc,
                        target,
                        kind: kind(rt),
                    }));
                    if let Some(r2) = rt2 {
                        out.push(Event::Access(Access {
                            pc,
                            target: target.wrapping_add(u64::from(size)),
                            kind: kind(r2),
                        }));
                    }
                } else if rn == 31 && !fp {
                    out.push(Event::Stack {
                        pc,
                        offset,
                        rt,
                        load,
                    });
                    if let Some(r2) = rt2 {
                        out.push(Event::Stack {
                            pc,
                            offset: offset.wrapping_add(u64::from(size)),
                            rt: r2,
                            load,
                        });
                    }
                }
                if load && !fp {
                    for r in std::iter::once(rt).chain(rt2) {
                        known.set(r, None);
                        out.push(Event::Clobber { pc, rd: r });
                    }
                }
            }
            Insn::Atomic {
                rn,
                size,
                store,
                rt,
                writes,
            } => {
                if let Some(v) = known.get(rn, idx) {
                    out.push(Event::Access(Access {
                        pc,
                        target: v,
                        kind: Kind::Atomic { size, store, rt },
                    }));
                }
                for r in writes.into_iter().flatten() {
                    known.set(r, None);
                    out.push(Event::Clobber { pc, rd: r });
                }
            }
            Insn::Move { rd, rs } => {
                known.set(rd, None);
                out.push(Event::Move { pc, rd, rs });
            }
            Insn::Call { target } => {
                known.forget_all();
                out.push(Event::Call { pc, target });
            }
            Insn::Jump => {
                known.forget_all();
                out.push(Event::Jump { pc });
            }
            Insn::Other { writes } => {
                for r in writes.into_iter().flatten() {
                    known.set(r, None);
                    out.push(Event::Clobber { pc, rd: r });
                }
            }
        }
    }
    out
}

/// The registers one instruction writes (at most: a pair and a writeback base).
type Writes = [Option<u8>; 3];

/// The instruction forms understood, with their registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Insn {
    Adrp {
        rd: u8,
        page: u64,
    },
    /// `ADD Xd, Xn, #imm` (64-bit, optionally shifted by 12).
    AddImm {
        rd: u8,
        rn: u8,
        imm: u64,
    },
    /// LDR/STR (unsigned immediate) and LDP/STP (signed offset), GPR or FP.
    Mem {
        rt: u8,
        /// The second register of a pair.
        rt2: Option<u8>,
        rn: u8,
        offset: u64,
        size: u8,
        load: bool,
        fp: bool,
    },
    /// LDAR/STLR, LDAXR/STLXR, CAS and LSE atomics: address in Rn, no offset.
    Atomic {
        rn: u8,
        size: u8,
        store: bool,
        /// The register a load-acquire (or exclusive load) fills from the address.
        rt: Option<u8>,
        writes: Writes,
    },
    /// `BL target`, or `BLR Rn` with target 0 (an indirect call, as x86-64's have).
    Call {
        target: u64,
    },
    /// `B`, `BR`, `RET`: no fall-through.
    Jump,
    /// `ORR Rd, ZR, Rs` (register move) or `UBFM` as `LSR $n, Rs, Rd`.
    Move {
        rd: u8,
        rs: u8,
    },
    /// Anything else, and the general registers it writes.
    Other {
        writes: Writes,
    },
}

/// Bytes an access of `op`'s width moves: `Wn` 4, `Xn` 8, `Bn`..`Qn` 1..16.
fn width(op: &Operand) -> Option<u8> {
    Some(match *op {
        Operand::Register(SizeCode::W, _) => 4,
        Operand::Register(SizeCode::X, _) => 8,
        Operand::SIMDRegister(SIMDSizeCode::B, _) => 1,
        Operand::SIMDRegister(SIMDSizeCode::H, _) => 2,
        Operand::SIMDRegister(SIMDSizeCode::S, _) => 4,
        Operand::SIMDRegister(SIMDSizeCode::D, _) => 8,
        Operand::SIMDRegister(SIMDSizeCode::Q, _) => 16,
        _ => return None,
    })
}

/// A floating-point/SIMD scalar register operand (`Bn`..`Qn`).
fn fp_reg(op: &Operand) -> Option<u8> {
    match *op {
        Operand::SIMDRegister(_, r) => u8::try_from(r).ok(),
        _ => None,
    }
}

/// A register an LDR/STR/LDP/STP transfers: `(number, fp)`.
fn transfer_reg(op: &Operand) -> Option<(u8, bool)> {
    gpr(op)
        .map(|r| (r, false))
        .or_else(|| fp_reg(op).map(|r| (r, true)))
}

fn classify(i: &Instruction, pc: u64) -> Insn {
    let ops = &i.operands;
    let form = match i.opcode {
        Opcode::ADRP => adrp(ops, pc),
        Opcode::ADD => add_x_imm(i).map(|(rd, rn, imm)| Insn::AddImm { rd, rn, imm }),
        Opcode::ORR => mov(ops),
        Opcode::UBFM => lsr(ops),
        Opcode::BL => match ops[0] {
            Operand::PCOffset(off) => Some(Insn::Call {
                target: pc.wrapping_add(off as u64),
            }),
            _ => None,
        },
        Opcode::BLR => Some(Insn::Call { target: 0 }),
        Opcode::B | Opcode::BR | Opcode::RET => Some(Insn::Jump),
        op => mem(op, ops).or_else(|| atomic(op, ops)),
    };
    form.unwrap_or_else(|| Insn::Other { writes: writes(i) })
}

fn adrp(ops: &[Operand; 4], pc: u64) -> Option<Insn> {
    match (gpr(&ops[0]), ops[1]) {
        // The offset is in bytes, a multiple of 4 KiB, from the instruction's own page.
        (Some(rd), Operand::PCOffset(off)) => Some(Insn::Adrp {
            rd,
            page: (pc & !0xFFF).wrapping_add(off as u64),
        }),
        _ => None,
    }
}

/// `ADD Xd, Xn, #imm` (64-bit, immediate, optionally shifted by 12): `(rd, rn, imm)`.
pub(crate) fn add_x_imm(i: &Instruction) -> Option<(u8, u8, u64)> {
    if i.opcode != Opcode::ADD {
        return None;
    }
    let imm = match i.operands[2] {
        Operand::Immediate(imm) => u64::from(imm),
        Operand::ImmShift(imm, shift) => u64::from(imm).checked_shl(u32::from(shift))?,
        _ => return None,
    };
    Some((x_reg(&i.operands[0])?, x_reg(&i.operands[1])?, imm))
}

/// `MOV Rd, Rs`: `ORR Rd, ZR, Rs` unshifted.
fn mov(ops: &[Operand; 4]) -> Option<Insn> {
    let rs = match ops[2] {
        Operand::RegShift(_, 0, _, rs) => u8::try_from(rs).ok()?,
        Operand::Register(_, rs) => u8::try_from(rs).ok()?,
        _ => return None,
    };
    match (ops[0], ops[1]) {
        (Operand::Register(_, rd), Operand::Register(_, 31)) => Some(Insn::Move {
            rd: u8::try_from(rd).ok()?,
            rs,
        }),
        _ => None,
    }
}

/// `LSR $n, Rs, Rd`: `UBFM` to the register's top bit (`imms` 63, or 31 for `Wd`).
fn lsr(ops: &[Operand; 4]) -> Option<Insn> {
    let top = match ops[0] {
        Operand::Register(SizeCode::X, _) => 63,
        Operand::Register(SizeCode::W, _) => 31,
        _ => return None,
    };
    (ops[3] == Operand::Immediate(top)).then_some(Insn::Move {
        rd: gpr(&ops[0])?,
        rs: gpr(&ops[1])?,
    })
}

/// LDR/STR with an unsigned immediate offset and LDP/STP with a signed one (yaxpeax-arm's
/// `[Rn, #off]` without writeback; the unscaled `LDUR`/`STUR` are opcodes of their own).
fn mem(op: Opcode, ops: &[Operand; 4]) -> Option<Insn> {
    // (load, fixed size or the register's width, pair)
    let (load, fixed, pair) = match op {
        Opcode::LDR => (true, None, false),
        Opcode::STR => (false, None, false),
        Opcode::LDRB | Opcode::LDRSB => (true, Some(1), false),
        Opcode::STRB => (false, Some(1), false),
        Opcode::LDRH | Opcode::LDRSH => (true, Some(2), false),
        Opcode::STRH => (false, Some(2), false),
        Opcode::LDRSW => (true, Some(4), false),
        Opcode::LDP => (true, None, true),
        Opcode::STP => (false, None, true),
        Opcode::LDPSW => (true, Some(4), true),
        _ => return None,
    };
    let (rt, fp) = transfer_reg(&ops[0])?;
    let (rt2, addr) = if pair {
        (Some(transfer_reg(&ops[1])?.0), &ops[2])
    } else {
        (None, &ops[1])
    };
    let (rn, offset) = base_offset(addr)?;
    Some(Insn::Mem {
        rt,
        rt2,
        rn,
        offset: offset as u64,
        size: fixed.or_else(|| width(&ops[0]))?,
        load,
        fp,
    })
}

/// How an exclusive, ordered or atomic instruction uses its registers.
#[derive(Clone, Copy)]
enum AtomicForm {
    /// `LDAR Rt, [Rn]`, `LDAXR Rt, [Rn]`, `LDAXP Rt, Rt2, [Rn]`: fills Rt (and Rt2).
    Load,
    /// `STLR Rt, [Rn]`: writes no register.
    Store,
    /// `STLXR Ws, Rt, [Rn]`: writes the status Ws.
    StoreExclusive,
    /// `LDADD Rs, Rt, [Rn]`, `SWP`: writes the old value to Rt.
    ReadModifyWrite,
    /// `CAS Rs, Rt, [Rn]`: writes the old value to Rs.
    CompareAndSwap,
}

fn atomic(op: Opcode, ops: &[Operand; 4]) -> Option<Insn> {
    use AtomicForm::*;
    #[rustfmt::skip]
    let (form, fixed): (AtomicForm, Option<u8>) = match op {
        Opcode::LDAR | Opcode::LDAXR | Opcode::LDXR | Opcode::LDLAR | Opcode::LDAPR
        | Opcode::LDAXP | Opcode::LDXP => (Load, None),
        Opcode::LDARB | Opcode::LDAXRB | Opcode::LDXRB | Opcode::LDLARB | Opcode::LDAPRB => {
            (Load, Some(1))
        }
        Opcode::LDARH | Opcode::LDAXRH | Opcode::LDXRH | Opcode::LDLARH | Opcode::LDAPRH => {
            (Load, Some(2))
        }
        Opcode::STLR | Opcode::STLLR => (Store, None),
        Opcode::STLRB | Opcode::STLLRB => (Store, Some(1)),
        Opcode::STLRH | Opcode::STLLRH => (Store, Some(2)),
        Opcode::STLXR | Opcode::STXR | Opcode::STLXP | Opcode::STXP => (StoreExclusive, None),
        Opcode::STLXRB | Opcode::STXRB => (StoreExclusive, Some(1)),
        Opcode::STLXRH | Opcode::STXRH => (StoreExclusive, Some(2)),
        Opcode::SWP(_) | Opcode::LDADD(_) | Opcode::LDCLR(_) | Opcode::LDEOR(_)
        | Opcode::LDSET(_) | Opcode::LDSMAX(_) | Opcode::LDSMIN(_) | Opcode::LDUMAX(_)
        | Opcode::LDUMIN(_) => (ReadModifyWrite, None),
        Opcode::SWPB(_) | Opcode::LDADDB(_) | Opcode::LDCLRB(_) | Opcode::LDEORB(_)
        | Opcode::LDSETB(_) | Opcode::LDSMAXB(_) | Opcode::LDSMINB(_) | Opcode::LDUMAXB(_)
        | Opcode::LDUMINB(_) => (ReadModifyWrite, Some(1)),
        Opcode::SWPH(_) | Opcode::LDADDH(_) | Opcode::LDCLRH(_) | Opcode::LDEORH(_)
        | Opcode::LDSETH(_) | Opcode::LDSMAXH(_) | Opcode::LDSMINH(_) | Opcode::LDUMAXH(_)
        | Opcode::LDUMINH(_) => (ReadModifyWrite, Some(2)),
        Opcode::CAS(_) => (CompareAndSwap, None),
        Opcode::CASB(_) => (CompareAndSwap, Some(1)),
        Opcode::CASH(_) => (CompareAndSwap, Some(2)),
        _ => return None,
    };
    // The registers before the address, in order; the last one's width is the data's.
    let at = ops.iter().position(|o| base_offset(o).is_some())?;
    let (rn, _) = base_offset(&ops[at])?;
    let size = fixed.or_else(|| ops[..at].last().and_then(width))?;
    let mut regs = ops[..at].iter().filter_map(gpr);
    let (first, second) = (regs.next(), regs.next());
    let (store, rt, writes) = match form {
        Load => (false, first, [first, second, None]),
        Store => (true, None, [None; 3]),
        StoreExclusive | CompareAndSwap => (true, None, [first, None, None]),
        ReadModifyWrite => (true, None, [second, None, None]),
    };
    Some(Insn::Atomic {
        rn,
        size,
        store,
        rt,
        writes,
    })
}

/// The general registers an instruction not otherwise understood writes: its first
/// operand (both of a load pair's or a `CASP` pair's), except where that is only read
/// (stores, compare and branch, conditional compare), and the base register of a
/// writeback address. As on x86-64, the first operand is the destination.
fn writes(i: &Instruction) -> Writes {
    let ops = &i.operands;
    #[rustfmt::skip]
    let (first, second) = match i.opcode {
        Opcode::STR | Opcode::STRB | Opcode::STRH | Opcode::STRW | Opcode::STUR
        | Opcode::STURB | Opcode::STURH | Opcode::STTR | Opcode::STTRB | Opcode::STTRH
        | Opcode::STP | Opcode::STNP | Opcode::STLUR | Opcode::STLURB | Opcode::STLURH
        | Opcode::CBZ | Opcode::CBNZ | Opcode::TBZ | Opcode::TBNZ | Opcode::CCMP
        | Opcode::CCMN | Opcode::SYS(_) => (None, None),
        Opcode::LDP | Opcode::LDPSW | Opcode::LDNP => (gpr(&ops[0]), gpr(&ops[1])),
        _ => match ops[0] {
            Operand::RegisterPair(_, r) => (
                u8::try_from(r).ok(),
                r.checked_add(1).and_then(|r| u8::try_from(r).ok()),
            ),
            _ => (gpr(&ops[0]), None),
        },
    };
    let base = ops.iter().find_map(|o| match *o {
        Operand::RegPreIndex(rn, _, true)
        | Operand::RegPostIndex(rn, _)
        | Operand::RegPostIndexReg(rn, _) => u8::try_from(rn).ok(),
        _ => None,
    });
    [first, second, base]
}

#[cfg(test)]
mod tests;
