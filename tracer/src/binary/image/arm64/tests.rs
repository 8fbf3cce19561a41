//! The decoder's forms, each checked against objdump's reading of the same words.

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

#[test]
fn cas_and_lse_atomics_are_read_modify_writes() {
    // 1.27.3 internal/runtime/exithook.Run: ADRP 2646016(PC), R2; ADD $3740, R2, R2;
    // MOVW ZR, R27; CASALW R27, (R2), R1 (GNU objdump: casal w27, w1, [x2]; go tool
    // objdump prints "?"). CAS writes the old value into the compare register, R27.
    let ev = events(
        &words(&[0xd0001422, 0x913a7042, 0x2a1f03fb, 0x88fbfc41]),
        0x21850,
    );
    let target = (0x21850 & !0xfff) + 2646016 + 3740;
    assert_eq!(
        ev[2..],
        [
            Event::Access(Access {
                pc: 0x2185c,
                target,
                kind: Kind::Atomic {
                    size: 4,
                    store: true,
                    rt: None
                }
            }),
            Event::Clobber {
                pc: 0x2185c,
                rd: 27
            },
        ]
    );
    // (*mspan).setUserArenaChunkToFault: ADRP 2646016(PC), R4; ADD $3064, R4, R4;
    // LDADDALD R2, (R4), R5 (ldaddal x2, x5, [x4]): the old value lands in R5.
    let ev = events(&words(&[0xd0001424, 0x912fe084, 0xf8e20085]), 0x22980);
    let target = (0x22980 & !0xfff) + 2646016 + 3064;
    assert_eq!(
        ev[1..],
        [
            Event::Access(Access {
                pc: 0x22988,
                target,
                kind: Kind::Atomic {
                    size: 8,
                    store: true,
                    rt: None
                }
            }),
            Event::Clobber { pc: 0x22988, rd: 5 },
        ]
    );
}

#[test]
fn exclusive_loop_across_a_conditional_branch() {
    // 1.27.3 runtime.traceReader: ADRP 2150400(PC), R1; ADD $1224, R1, R1;
    // LDAXR (R1), R27; CMP R0, R27; BNE 3(PC); STLXR ZR, (R1), R27; CBNZ R27, -4(PC).
    // The branches read registers and fall through: R1 is still the address.
    let code = words(&[
        0xb0001061, 0x91132021, 0xc85ffc3b, 0xeb00037f, 0x54000061, 0xc81bfc3f, 0xb5ffff9b,
    ]);
    let ev = events(&code, 0x76c54);
    let target = (0x76c54 & !0xfff) + 2150400 + 1224;
    let atomics: Vec<Kind> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Access(a) if a.target == target => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        atomics,
        [
            Kind::AddrOf { rd: 1 },
            Kind::Atomic {
                size: 8,
                store: false,
                rt: Some(27)
            },
            Kind::Atomic {
                size: 8,
                store: true,
                rt: None
            },
        ]
    );
    // LDAXR fills R27, STLXR writes its status there; the branches write nothing.
    let clobbers: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Clobber { pc, rd: 27 } => Some(*pc),
            Event::Clobber { pc, rd } if *rd != 31 => panic!("{pc:#x} clobbers R{rd}"),
            _ => None,
        })
        .collect();
    assert_eq!(clobbers, [0x76c5c, 0x76c68]);
}

#[test]
fn writeback_forgets_the_base() {
    // 1.27.3 gcMarkTermination: ADRP 2576384(PC), R0; ADD $2848, R0, R0; MOVD $42, R1;
    // STP.P (ZR, ZR), 16(R0) x4; SUB $1, R1, R1; CBNZ R1, -5(PC); STP (ZR, ZR), (R0).
    // After the post-indexed stores R0 is no longer the global's address.
    let code = words(&[
        0xb00013a0, 0x912c8000, 0xd2800541, 0xa8817c1f, 0xa8817c1f, 0xa8817c1f, 0xa8817c1f,
        0xd1000421, 0xb5ffff61, 0xa9007c1f,
    ]);
    let ev = events(&code, 0x36ce4);
    let accesses: Vec<&Event> = ev
        .iter()
        .filter(|e| matches!(e, Event::Access(_)))
        .collect();
    assert_eq!(
        accesses,
        [&Event::Access(Access {
            pc: 0x36ce8,
            target: (0x36ce4 & !0xfff) + 2576384 + 2848,
            kind: Kind::AddrOf { rd: 0 }
        })]
    );
    assert!(ev.contains(&Event::Clobber { pc: 0x36cf0, rd: 0 }));
}

#[test]
fn compare_branches_keep_and_returns_forget() {
    // 1.19.8 encoding/json.mapEncoder.encode: ADRP 385024(PC), R1; ADD $1784, R1, R1;
    // MOVD 184(RSP), R2; STP (ZR, ZR), 216(RSP); CBZ R1, 2(PC); MOVD 8(R1), R1.
    let code = words(&[
        0xd00002e1, 0x911be021, 0xf9405fe2, 0xa90dffff, 0xb4000041, 0xf9400421,
    ]);
    let ev = events(&code, 0xa7efc);
    assert!(ev.contains(&Event::Access(Access {
        pc: 0xa7f10,
        target: (0xa7efc & !0xfff) + 385024 + 1784 + 8,
        kind: Kind::Load {
            size: 8,
            rt: 1,
            fp: false
        }
    })));
    // 1.27.3 runtime.mapaccess2: ADRP 2699264(PC), R0; ADD $2304, R0, R0; MOVD ZR, R1;
    // MOVD -8(RSP), R29; MOVD.P 112(RSP), R30; RET; MOVWU 128(R0), R3. The load after
    // the RET is reached from elsewhere: R0 is not that address there.
    let code = words(&[
        0xf0001480, 0x91240000, 0xaa1f03e1, 0xf85f83fd, 0xf84707fe, 0xd65f03c0, 0xb9408003,
    ]);
    let ev = events(&code, 0x16454);
    assert!(ev.contains(&Event::Jump { pc: 0x16468 }));
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Event::Access(a) if a.pc == 0x1646c)));
}

#[test]
fn indirect_calls_and_undecodable_words_forget_all() {
    // ADRP R27; BLR R1; MOVD 3600(R27), R1: the call forgets R27.
    let ev = events(&words(&[0xd0000abb, 0xd63f0020, 0xf9470b61]), 0x1000);
    assert_eq!(
        ev,
        [
            Event::Call {
                pc: 0x1004,
                target: 0
            },
            Event::Clobber { pc: 0x1008, rd: 1 },
        ]
    );
    // A literal-pool word (after 1.19.8 (*mheap).sysAlloc's last branch) and an SVE
    // word, neither decoded: nothing is believed after them.
    for data in [0x0001_0190, 0x0400_0028] {
        let ev = events(&words(&[0xd0000abb, data, 0xf9470b61]), 0x1000);
        assert_eq!(ev, [Event::Clobber { pc: 0x1008, rd: 1 }], "{data:#x}");
    }
}
