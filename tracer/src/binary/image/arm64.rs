//! The few arm64 (A64) instruction forms the Go compiler uses to address runtime
//! globals, decoded by hand into absolute addresses.
//!
//! arm64 has no PC-relative loads of arbitrary reach: Go builds the address of a global
//! `sym+off` with `ADRP Rt, page(sym+off)` followed by `ADD $lo12, Rt, Rd` (address
//! taken) or a load/store with `lo12` as its immediate offset (`MOVD lo12(R27), R1`),
//! always adjacent or within a few instructions. [`accesses`] tracks registers that hold a
//! known page or address for a short window and reports every memory operand (and address
//! computation) whose absolute target follows. Anything not understood that writes a
//! register forgets that register, so a stale value is never used; a call forgets all.
//! Instructions are fixed 4-byte little-endian words, so a linear scan never desyncs.

/// How a global is touched by one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ADD $imm, Rn, Rd` completing an `ADRP`: the address is taken into `rd`.
    AddrOf { rd: u8 },
    /// A load of `size` bytes into register `rt` (`fp`: a floating-point register).
    Load { size: u8, rt: u8, fp: bool },
    /// A store of `size` bytes.
    Store { size: u8 },
    /// A load-acquire / store-release / exclusive / LSE atomic on the address; `rt` is
    /// the register a load-acquire writes.
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
    /// `BL target`.
    Call {
        pc: u64,
        target: u64,
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

/// Sign-extends the low `bits` of `v`.
fn sext(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Decodes `code` (the bytes of a function at link-time address `base`) into events.
pub fn events(code: &[u8], base: u64) -> Vec<Event> {
    // Register -> (known value, instruction index it was set at).
    let mut known: [Option<(u64, u64)>; 32] = [None; 32];
    let mut out = Vec::new();
    for (i, word) in code.chunks_exact(4).enumerate() {
        let idx = i as u64;
        let pc = base + 4 * idx;
        let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let rd = (w & 31) as u8;
        let rn = ((w >> 5) & 31) as u8;
        let value = |r: u8, known: &[Option<(u64, u64)>; 32]| -> Option<u64> {
            known
                .get(usize::from(r))
                .copied()
                .flatten()
                .filter(|(_, at)| idx - at <= WINDOW)
                .map(|(v, _)| v)
        };
        match decode(w, pc) {
            Insn::Adrp { page } => {
                known[usize::from(rd)] = Some((page, idx));
            }
            Insn::AddImm { imm } => {
                match value(rn, &known) {
                    Some(v) => {
                        let addr = v.wrapping_add(imm);
                        known[usize::from(rd)] = Some((addr, idx));
                        out.push(Event::Access(Access {
                            pc,
                            target: addr,
                            kind: Kind::AddrOf { rd },
                        }));
                    }
                    None => known[usize::from(rd)] = None,
                }
                continue;
            }
            Insn::Mem {
                offset,
                size,
                load,
                fp,
                rt2,
            } => {
                if let Some(v) = value(rn, &known) {
                    let target = v.wrapping_add(offset);
                    let kind = if load {
                        Kind::Load { size, rt: rd, fp }
                    } else {
                        Kind::Store { size }
                    };
                    out.push(Event::Access(Access { pc, target, kind }));
                    if let Some(r2) = rt2 {
                        let kind = if load {
                            Kind::Load { size, rt: r2, fp }
                        } else {
                            Kind::Store { size }
                        };
                        out.push(Event::Access(Access {
                            pc,
                            target: target.wrapping_add(u64::from(size)),
                            kind,
                        }));
                    }
                } else if rn == 31 && !fp {
                    out.push(Event::Stack {
                        pc,
                        offset,
                        rt: rd,
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
                    known[usize::from(rd)] = None;
                    out.push(Event::Clobber { pc, rd });
                }
                if let Some(r2) = rt2.filter(|_| load && !fp) {
                    known[usize::from(r2)] = None;
                    out.push(Event::Clobber { pc, rd: r2 });
                }
                continue;
            }
            Insn::Atomic {
                size,
                store,
                writes,
            } => {
                if let Some(v) = value(rn, &known) {
                    out.push(Event::Access(Access {
                        pc,
                        target: v,
                        kind: Kind::Atomic {
                            size,
                            store,
                            rt: writes.filter(|_| !store),
                        },
                    }));
                }
                if let Some(r) = writes {
                    known[usize::from(r)] = None;
                    out.push(Event::Clobber { pc, rd: r });
                }
                continue;
            }
            Insn::Move { rs } => {
                known[usize::from(rd)] = None;
                out.push(Event::Move { pc, rd, rs });
                continue;
            }
            Insn::Bl { target } => {
                known = [None; 32];
                out.push(Event::Call { pc, target });
                continue;
            }
            Insn::Other => {
                // Conservative: most A64 forms write bits 0..4. Stores and compares do
                // not, and forgetting their register only loses evidence.
                known[usize::from(rd)] = None;
                out.push(Event::Clobber { pc, rd });
                continue;
            }
        }
    }
    out
}

/// The instruction forms understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Insn {
    Adrp {
        page: u64,
    },
    /// `ADD Xd, Xn, #imm` (64-bit, optionally shifted by 12).
    AddImm {
        imm: u64,
    },
    /// LDR/STR (unsigned immediate) and LDP/STP (signed offset), GPR or FP.
    Mem {
        offset: u64,
        size: u8,
        load: bool,
        fp: bool,
        /// The second register of a pair.
        rt2: Option<u8>,
    },
    /// LDAR/STLR, LDAXR/STLXR and LSE atomics: address in Rn, no offset.
    Atomic {
        size: u8,
        store: bool,
        /// The register it writes, if any.
        writes: Option<u8>,
    },
    Bl {
        target: u64,
    },
    /// `ORR Rd, ZR, Rs` (register move) or `UBFM` as `LSR $n, Rs, Rd`.
    Move {
        rs: u8,
    },
    Other,
}

fn decode(w: u32, pc: u64) -> Insn {
    let rd = (w & 31) as u8;
    if w & 0x9F00_0000 == 0x9000_0000 {
        // ADRP: immhi (bits 5..23), immlo (29..30), in 4 KiB pages.
        let immlo = u64::from((w >> 29) & 3);
        let immhi = u64::from((w >> 5) & 0x7_FFFF);
        let imm = sext((immhi << 2 | immlo) << 12, 33);
        return Insn::Adrp {
            page: (pc & !0xFFF).wrapping_add(imm as u64),
        };
    }
    if w & 0xFF80_0000 == 0x9100_0000 {
        // ADD (immediate), 64-bit, sh = bit 22.
        let imm12 = u64::from((w >> 10) & 0xFFF);
        let sh = (w >> 22) & 1;
        return Insn::AddImm {
            imm: if sh == 1 { imm12 << 12 } else { imm12 },
        };
    }
    if w & 0x7FE0_FFE0 == 0x2A00_03E0 {
        // ORR (shifted register) with XZR/WZR and no shift: MOV.
        return Insn::Move {
            rs: ((w >> 16) & 31) as u8,
        };
    }
    if w & 0xFFC0_FC00 == 0xD340_FC00 || w & 0xFFC0_FC00 == 0x5300_7C00 {
        // UBFM with imms = 63 (31): LSR by immediate.
        return Insn::Move {
            rs: ((w >> 5) & 31) as u8,
        };
    }
    if w & 0xFC00_0000 == 0x9400_0000 {
        let imm = sext(u64::from(w & 0x03FF_FFFF), 26) * 4;
        return Insn::Bl {
            target: pc.wrapping_add(imm as u64),
        };
    }
    if w & 0x3B00_0000 == 0x3900_0000 {
        // Load/store register (unsigned immediate): size(31..30) 111 V(26) 01 opc(23..22).
        let size_bits = (w >> 30) & 3;
        let fp = (w >> 26) & 1 == 1;
        let opc = (w >> 22) & 3;
        let (scale, load) = if fp {
            // opc 1x with size 00 is the 128-bit form.
            match (size_bits, opc) {
                (0, 2) => (4, false),
                (0, 3) => (4, true),
                (s, o) => (s, o & 1 == 1),
            }
        } else {
            (size_bits, opc != 0)
        };
        if !fp && size_bits == 3 && opc == 2 {
            // PRFM: no access.
            return Insn::Other;
        }
        let imm12 = u64::from((w >> 10) & 0xFFF);
        return Insn::Mem {
            offset: imm12 << scale,
            size: 1 << scale,
            load,
            fp,
            rt2: None,
        };
    }
    if w & 0x3A00_0000 == 0x2800_0000 && (w >> 23) & 3 == 2 {
        // Load/store pair, signed offset: opc(31..30) 101 V 010 L imm7 Rt2 Rn Rt.
        let opc = (w >> 30) & 3;
        let fp = (w >> 26) & 1 == 1;
        let load = (w >> 22) & 1 == 1;
        let scale = if fp {
            2 + opc
        } else if opc == 2 {
            3
        } else {
            2
        };
        let imm7 = sext(u64::from((w >> 15) & 0x7F), 7) << scale;
        return Insn::Mem {
            offset: imm7 as u64,
            size: 1 << scale,
            load,
            fp,
            rt2: Some(((w >> 10) & 31) as u8),
        };
    }
    if w & 0x3F00_0000 == 0x0800_0000 {
        // Load/store exclusive and ordered (LDAR, STLR, LDAXR, STLXR, ...):
        // size(31..30) 001000 o2 L o1 Rs o0 Rt2 Rn Rt.
        let size = 1u8 << ((w >> 30) & 3);
        let load = (w >> 22) & 1 == 1;
        let exclusive = (w >> 23) & 1 == 0;
        let writes = if load {
            Some(rd)
        } else if exclusive {
            Some(((w >> 16) & 31) as u8) // status register Ws
        } else {
            None
        };
        return Insn::Atomic {
            size,
            store: !load,
            writes,
        };
    }
    if w & 0x3F20_0C00 == 0x3820_0000 {
        // LSE atomic memory operations (LDADD, SWP, ...): size 111 0 00 A R 1 Rs o3 opc 00.
        let size = 1u8 << ((w >> 30) & 3);
        return Insn::Atomic {
            size,
            store: true,
            writes: Some(rd),
        };
    }
    Insn::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words and addresses from `go tool objdump` of a Go 1.27.3 arm64 build.
    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn adrp_add_ldar_matches_objdump() {
        // 0x34170 ADRP 1560576(PC), R0; ADD $960, R0, R0; LDAR (R0), R0
        let code = words(&[0xb0000be0, 0x910f0000, 0xc8dffc00]);
        let ev = events(&code, 0x34170);
        let target = (0x34170 & !0xfff) + 1560576 + 960;
        assert_eq!(
            ev[0],
            Event::Access(Access {
                pc: 0x34174,
                target,
                kind: Kind::AddrOf { rd: 0 }
            })
        );
        assert_eq!(
            ev[1],
            Event::Access(Access {
                pc: 0x34178,
                target,
                kind: Kind::Atomic {
                    size: 8,
                    store: false,
                    rt: Some(0)
                }
            })
        );
    }

    #[test]
    fn loads_pairs_and_words() {
        // 0x341ac ADRP 1400832(PC), R27; MOVD 3600(R27), R1
        let ev = events(&words(&[0xd0000abb, 0xf9470b61]), 0x341ac);
        let page = (0x341ac & !0xfff) + 1400832;
        assert_eq!(
            ev[0],
            Event::Access(Access {
                pc: 0x341b0,
                target: page + 3600,
                kind: Kind::Load {
                    size: 8,
                    rt: 1,
                    fp: false
                }
            })
        );
        // 0x34190 ADRP; ADD $3584, R27, R27; LDP (R27), (R1, R2)
        let ev = events(&words(&[0xd0000abb, 0x9138037b, 0xa9400b61]), 0x34190);
        let page = (0x34190 & !0xfff) + 1400832;
        let pair = ev.iter().find_map(|e| match e {
            Event::Access(a) if matches!(a.kind, Kind::Load { .. }) => Some(*a),
            _ => None,
        });
        assert_eq!(pair.map(|a| a.target), Some(page + 3584));
        // 0x341d4 ADRP; MOVW 3536(R27), R0 (LDRSW... here LDR W: b98dd360)
        let ev = events(&words(&[0xd0000abb, 0xb98dd360]), 0x341d4);
        let page = (0x341d4 & !0xfff) + 1400832;
        assert!(matches!(
            ev[0],
            Event::Access(Access { target, kind: Kind::Load { size: 4, .. }, .. })
                if target == page + 3536
        ));
    }

    #[test]
    fn stores_calls_and_clobbers() {
        // 1.19.8 runtime.main: CALL nanotime1; MOVD 8(RSP), R0; ADRP 1196032(PC), R27;
        // ADD $296, R27, R27; MOVD R0, (R27)
        let code = words(&[0x9400a8a1, 0xf94007e0, 0x9000093b, 0x9104a37b, 0xf9000360]);
        let ev = events(&code, 0x436bc);
        assert_eq!(
            ev[0],
            Event::Call {
                pc: 0x436bc,
                target: 0x436bc + 0xa8a1 * 4
            }
        );
        let target = (0x436c4 & !0xfff) + 1196032 + 296;
        assert!(ev.contains(&Event::Access(Access {
            pc: 0x436cc,
            target,
            kind: Kind::Store { size: 8 }
        })));
        // A register overwritten by something unknown is forgotten:
        // ADRP R27; ORR $1, ZR, R27 (b24003fb); MOVD (R27), R1
        let ev = events(&words(&[0xd0000abb, 0xb24003fb, 0xf9400361]), 0x1000);
        assert!(!ev.iter().any(|e| matches!(e, Event::Access(_))), "{ev:?}");
    }

    #[test]
    fn moves_shifts_and_stack_slots() {
        // 1.27.3 gcMarkTermination: LSR $20, R1, R1; MOVD R1, 288(RSP); MOVD 288(RSP), R0
        let ev = events(&words(&[0xd354fc21, 0xf90093e1, 0xf94093e0]), 0x3419c);
        assert_eq!(
            ev,
            vec![
                Event::Move {
                    pc: 0x3419c,
                    rd: 1,
                    rs: 1
                },
                Event::Stack {
                    pc: 0x341a0,
                    offset: 288,
                    rt: 1,
                    load: false
                },
                Event::Stack {
                    pc: 0x341a4,
                    offset: 288,
                    rt: 0,
                    load: true
                },
                Event::Clobber { pc: 0x341a4, rd: 0 },
            ]
        );
        // MOVW R3, 60(RSP) (1.19.8): a 4-byte slot
        let ev = events(&words(&[0xb9003fe3]), 0x27148);
        assert_eq!(
            ev[0],
            Event::Stack {
                pc: 0x27148,
                offset: 60,
                rt: 3,
                load: false
            }
        );
    }

    #[test]
    fn stlrw_is_an_atomic_store() {
        // 1.27.3 gcStart: ADRP 1564672(PC), R2; ADD $1836, R2, R2; STLRW R1, (R2)
        let ev = events(&words(&[0xd0000be2, 0x911cb042, 0x889ffc41]), 0x32cc4);
        let target = (0x32cc4 & !0xfff) + 1564672 + 1836;
        assert!(ev.contains(&Event::Access(Access {
            pc: 0x32ccc,
            target,
            kind: Kind::Atomic {
                size: 4,
                store: true,
                rt: None
            }
        })));
    }
}
