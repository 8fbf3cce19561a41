//! Field addresses read straight from the runtime's own gctrace printing code.
//!
//! `gcMarkTermination` prints (1.19–1.27, mgc.go)
//! `print(" ms cpu, ", work.heap0>>20, "->", work.heap1>>20, "->", work.heap2>>20,
//! " MB, ", gcController.lastHeapGoal>>20, " MB goal, ", <stacks>>>20, " MB stacks, ",
//! gcController.globalsScan>>20, " MB globals, ", work.maxprocs, " P")`, before that
//! `print("gc ", memstats.numgc, " @", …)`, and `if work.userForced { print(" (forced)") }`.
//! Each number is a `printuint`/`printint` call whose argument register (RAX / R0) holds a
//! global's value, usually loaded before `printlock` and parked in a stack slot; the string
//! printed right after it names the field. A small dataflow over registers and stack
//! slots follows each value from its load to the call, so the field's *absolute* address
//! comes from the code itself, whatever the struct's layout. No layout is assumed: these
//! anchors are what candidate layouts are checked against ([`super::derive`]).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use iced_x86::{Mnemonic, OpKind, Register};

use super::instructions;
use crate::binary::image::arm64::{Access, Event, Kind};
use crate::binary::{Arch, GoBinary};

const WORK_TYPE: &str = "runtime.workType";
const MSTATS: &str = "runtime.mstats";
const CONTROLLER_TYPE: &str = "runtime.gcControllerState";

/// One field located by its print label: struct type, field name, absolute address.
pub type Anchors = BTreeMap<(&'static str, &'static str), u64>;

/// A step of the architecture-neutral dataflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// `dst` = value of the global at `addr` (`size` bytes).
    Load {
        dst: u16,
        addr: u64,
        size: u8,
    },
    /// `dst` = the address `addr` (a string's bytes, for `printstring`).
    AddrOf {
        dst: u16,
        addr: u64,
    },
    StoreSlot {
        slot: u64,
        src: u16,
    },
    LoadSlot {
        dst: u16,
        slot: u64,
    },
    Move {
        dst: u16,
        src: u16,
    },
    Clobber {
        dst: u16,
    },
    /// A byte of a global compared in place (x86-64 `CMPB sym, $0`).
    TestByte {
        addr: u64,
    },
    Call {
        target: u64,
    },
}

/// What a register or slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Global(u64),
    Addr(u64),
}

/// One print call, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Printed {
    Number(Option<u64>),
    Text(Vec<u8>),
    /// `printstring(" (forced)")`-style text with the byte global tested just before it.
    Guarded(Vec<u8>, Option<u64>),
}

/// What a register or stack slot holds after a copy into it: the source's value if that
/// was known, else nothing (the old value is gone either way).
pub(crate) fn set_or_forget<K: std::hash::Hash + Eq, V>(
    held: &mut HashMap<K, V>,
    key: K,
    value: Option<V>,
) {
    match value {
        Some(v) => {
            held.insert(key, v);
        }
        None => {
            held.remove(&key);
        }
    }
}

/// The anchors of `bin`'s `gcMarkTermination`, or why there are none.
pub fn anchors(bin: &GoBinary) -> Result<Anchors, String> {
    let f = bin
        .function("runtime.gcMarkTermination")
        .ok_or("runtime.gcMarkTermination not found")?;
    let printed = run(bin, &flow(bin, &f));
    let stacks = if bin.go_version().minor < 20 {
        "maxStackScan"
    } else {
        "lastStackScan"
    };
    Ok(label(&printed, stacks))
}
/// Each store of a register to a stack slot in `flow`, in order: the slot, and the
/// 8-byte global word in `range` the register holds, when it was loaded straight from one
/// and not changed since (a value computed from loads, like a sum, holds none). What the
/// print code's arrays (`[]int64{...}`) are built from.
pub(crate) fn stores_of_loads(flow: &[Flow], range: &Range<u64>) -> Vec<(u64, Option<u64>)> {
    let mut holds: HashMap<u16, u64> = HashMap::new();
    let mut stored = Vec::new();
    for step in flow {
        match *step {
            Flow::Load { dst, addr, size } => {
                if size == 8 && range.contains(&addr) {
                    holds.insert(dst, addr);
                } else {
                    holds.remove(&dst);
                }
            }
            Flow::AddrOf { dst, .. } | Flow::LoadSlot { dst, .. } | Flow::Clobber { dst } => {
                holds.remove(&dst);
            }
            Flow::Move { dst, src } => {
                let v = holds.get(&src).copied();
                set_or_forget(&mut holds, dst, v);
            }
            Flow::StoreSlot { slot, src } => stored.push((slot, holds.get(&src).copied())),
            Flow::TestByte { .. } => {}
            Flow::Call { .. } => holds.clear(),
        }
    }
    stored
}

/// The architecture-neutral dataflow steps of `f`, in address order.
pub(crate) fn flow(bin: &GoBinary, f: &crate::binary::Function) -> Vec<Flow> {
    match bin.arch() {
        Arch::X86_64 => x86_flow(bin, f),
        Arch::Aarch64 => arm64_flow(bin, f),
    }
}

/// Names the numbers by the text printed right after them. A field seen at two different
/// addresses is dropped (the code is not what this module expects).
fn label(printed: &[Printed], stacks: &'static str) -> Anchors {
    let mut seen: BTreeMap<(&'static str, &'static str), Vec<u64>> = BTreeMap::new();
    let mut arrows = 0;
    for (i, p) in printed.iter().enumerate() {
        match p {
            Printed::Number(Some(addr)) => {
                let Some(Printed::Text(next)) = printed.get(i + 1) else {
                    continue;
                };
                let field = if next.starts_with(b" MB goal, ") {
                    Some((CONTROLLER_TYPE, "lastHeapGoal"))
                } else if next.starts_with(b" MB stacks, ") {
                    Some((CONTROLLER_TYPE, stacks))
                } else if next.starts_with(b" MB globals, ") {
                    Some((CONTROLLER_TYPE, "globalsScan"))
                } else if next.starts_with(b" MB, ") {
                    Some((WORK_TYPE, "heap2"))
                } else if next.starts_with(b" P") {
                    Some((WORK_TYPE, "maxprocs"))
                } else if next.starts_with(b" @") {
                    Some((MSTATS, "numgc"))
                } else if next.starts_with(b"->") {
                    arrows += 1;
                    match arrows {
                        1 => Some((WORK_TYPE, "heap0")),
                        2 => Some((WORK_TYPE, "heap1")),
                        _ => None,
                    }
                } else {
                    None
                };
                if let Some(key) = field {
                    seen.entry(key).or_default().push(*addr);
                }
            }
            Printed::Guarded(text, Some(addr)) if text.starts_with(b" (forced)") => {
                seen.entry((WORK_TYPE, "userForced"))
                    .or_default()
                    .push(*addr);
            }
            _ => {}
        }
    }
    seen.into_iter()
        .filter_map(|(k, addrs)| {
            let first = *addrs.first()?;
            addrs.iter().all(|a| *a == first).then_some((k, first))
        })
        .collect()
}

/// Runs the dataflow and collects the print calls.
fn run(bin: &GoBinary, flow: &[Flow]) -> Vec<Printed> {
    const ARG0: u16 = 0; // RAX / R0, normalised by the converters.
    let mut regs: HashMap<u16, Val> = HashMap::new();
    let mut slots: HashMap<u64, Val> = HashMap::new();
    let mut tested_byte: Option<u64> = None;
    let mut out = Vec::new();
    for step in flow {
        match *step {
            Flow::Load { dst, addr, size } => {
                regs.insert(dst, Val::Global(addr));
                if size == 1 {
                    tested_byte = Some(addr);
                }
            }
            Flow::AddrOf { dst, addr } => {
                regs.insert(dst, Val::Addr(addr));
            }
            Flow::StoreSlot { slot, src } => {
                let v = regs.get(&src).copied();
                set_or_forget(&mut slots, slot, v);
            }
            Flow::LoadSlot { dst, slot } => {
                let v = slots.get(&slot).copied();
                set_or_forget(&mut regs, dst, v);
            }
            Flow::Move { dst, src } => {
                let v = regs.get(&src).copied();
                set_or_forget(&mut regs, dst, v);
            }
            Flow::Clobber { dst } => {
                regs.remove(&dst);
            }
            Flow::TestByte { addr } => tested_byte = Some(addr),
            Flow::Call { target } => {
                let name = bin.function_at(target).map(|f| f.name).unwrap_or_default();
                let arg = regs.get(&ARG0).copied();
                match name.as_str() {
                    "runtime.printuint" | "runtime.printint" => {
                        out.push(Printed::Number(match arg {
                            Some(Val::Global(a)) => Some(a),
                            _ => None,
                        }));
                        tested_byte = None;
                    }
                    "runtime.printstring" => {
                        let text = match arg {
                            Some(Val::Addr(a)) => bin.bytes_at(a, 16).unwrap_or_default().to_vec(),
                            _ => Vec::new(),
                        };
                        out.push(Printed::Text(text.clone()));
                        if tested_byte.is_some() {
                            out.push(Printed::Guarded(text, tested_byte));
                        }
                        tested_byte = None;
                    }
                    "runtime.printlock" | "runtime.printunlock" => {}
                    _ => tested_byte = None,
                }
                regs.clear();
            }
        }
    }
    out
}

/// x86-64: registers by their full 64-bit register, RAX as 0.
fn x86_flow(bin: &GoBinary, f: &crate::binary::Function) -> Vec<Flow> {
    let reg = |r: Register| -> u16 {
        let full = r.full_register();
        if full == Register::RAX {
            0
        } else {
            1 + full as u16
        }
    };
    let stack_slot = |i: &iced_x86::Instruction| -> Option<u64> {
        (i.memory_base() == Register::RSP && i.memory_index() == Register::None)
            .then(|| i.memory_displacement64())
    };
    let mut out = Vec::new();
    for i in instructions::decode(bin, f) {
        if i.is_call_near() {
            out.push(Flow::Call {
                target: i.near_branch_target(),
            });
            continue;
        }
        let op0_reg = i.op_count() > 0 && i.op0_kind() == OpKind::Register;
        let op1_mem = i.op_count() > 1 && i.op1_kind() == OpKind::Memory;
        let op1_reg = i.op_count() > 1 && i.op1_kind() == OpKind::Register;
        let m = i.mnemonic();
        if op0_reg && op1_mem && i.is_ip_rel_memory_operand() {
            let dst = reg(i.op0_register());
            let addr = i.ip_rel_memory_address();
            match m {
                Mnemonic::Lea => out.push(Flow::AddrOf { dst, addr }),
                Mnemonic::Mov | Mnemonic::Movsxd | Mnemonic::Movzx | Mnemonic::Movsx => {
                    out.push(Flow::Load {
                        dst,
                        addr,
                        size: u8::try_from(i.memory_size().size()).unwrap_or(0),
                    })
                }
                _ => out.push(Flow::Clobber { dst }),
            }
            continue;
        }
        if m == Mnemonic::Cmp
            && i.op0_kind() == OpKind::Memory
            && i.is_ip_rel_memory_operand()
            && i.memory_size().size() == 1
        {
            out.push(Flow::TestByte {
                addr: i.ip_rel_memory_address(),
            });
            continue;
        }
        if m == Mnemonic::Mov && i.op0_kind() == OpKind::Memory && op1_reg {
            if let Some(slot) = stack_slot(&i) {
                out.push(Flow::StoreSlot {
                    slot,
                    src: reg(i.op1_register()),
                });
            }
            continue;
        }
        if matches!(m, Mnemonic::Mov | Mnemonic::Movsxd) && op0_reg && op1_mem {
            let dst = reg(i.op0_register());
            match stack_slot(&i) {
                Some(slot) => out.push(Flow::LoadSlot { dst, slot }),
                None => out.push(Flow::Clobber { dst }),
            }
            continue;
        }
        if m == Mnemonic::Mov && op0_reg && op1_reg {
            out.push(Flow::Move {
                dst: reg(i.op0_register()),
                src: reg(i.op1_register()),
            });
            continue;
        }
        if matches!(m, Mnemonic::Shr | Mnemonic::Sar) && op0_reg {
            continue; // `x>>20`: still the same field's value
        }
        if op0_reg {
            out.push(Flow::Clobber {
                dst: reg(i.op0_register()),
            });
        }
    }
    out
}

/// arm64: registers by number (R0 = 0).
fn arm64_flow(bin: &GoBinary, f: &crate::binary::Function) -> Vec<Flow> {
    let mut out = Vec::new();
    // Registers loads at this pc wrote (their Clobber events repeat them; LDP writes two).
    let mut loaded: Vec<(u64, u8)> = Vec::new();
    for e in instructions::events(bin, f) {
        match e {
            Event::Access(Access { pc, target, kind }) => match kind {
                Kind::AddrOf { rd } => out.push(Flow::AddrOf {
                    dst: rd.into(),
                    addr: target,
                }),
                // An atomic access that writes a register feeds it as a plain load does.
                Kind::Load {
                    size,
                    rt,
                    fp: false,
                }
                | Kind::Atomic {
                    size, rt: Some(rt), ..
                } => {
                    out.push(Flow::Load {
                        dst: rt.into(),
                        addr: target,
                        size,
                    });
                    loaded.retain(|(p, _)| *p == pc);
                    loaded.push((pc, rt));
                }
                _ => {}
            },
            Event::Stack {
                pc,
                offset,
                rt,
                load,
            } => {
                if load {
                    out.push(Flow::LoadSlot {
                        dst: rt.into(),
                        slot: offset,
                    });
                    loaded.retain(|(p, _)| *p == pc);
                    loaded.push((pc, rt));
                } else {
                    out.push(Flow::StoreSlot {
                        slot: offset,
                        src: rt.into(),
                    });
                }
            }
            Event::Move { rd, rs, .. } => out.push(Flow::Move {
                dst: rd.into(),
                src: rs.into(),
            }),
            Event::Clobber { pc, rd } => {
                if !loaded.contains(&(pc, rd)) {
                    out.push(Flow::Clobber { dst: rd.into() });
                }
            }
            Event::Call { target, .. } => out.push(Flow::Call { target }),
            // As on x86-64, the flow runs straight on (the print code has no branches
            // between a load and its print that this would change).
            Event::Jump { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_numbers_before_them() {
        let t = |s: &str| Printed::Text(s.as_bytes().to_vec());
        let n = |a: u64| Printed::Number(Some(a));
        let printed = vec![
            t("gc "),
            n(10),
            t(" @"),
            t(" ms cpu, "),
            n(100),
            t("->"),
            n(108),
            t("->"),
            n(116),
            t(" MB, "),
            n(200),
            t(" MB goal, "),
            n(208),
            t(" MB stacks, "),
            n(216),
            t(" MB globals, "),
            n(124),
            t(" P"),
            Printed::Guarded(b" (forced)".to_vec(), Some(130)),
        ];
        let a = label(&printed, "lastStackScan");
        assert_eq!(a[&(MSTATS, "numgc")], 10);
        assert_eq!(a[&(WORK_TYPE, "heap0")], 100);
        assert_eq!(a[&(WORK_TYPE, "heap1")], 108);
        assert_eq!(a[&(WORK_TYPE, "heap2")], 116);
        assert_eq!(a[&(CONTROLLER_TYPE, "lastHeapGoal")], 200);
        assert_eq!(a[&(CONTROLLER_TYPE, "lastStackScan")], 208);
        assert_eq!(a[&(CONTROLLER_TYPE, "globalsScan")], 216);
        assert_eq!(a[&(WORK_TYPE, "maxprocs")], 124);
        assert_eq!(a[&(WORK_TYPE, "userForced")], 130);
        // A field named twice with different addresses is not believed.
        let twice = vec![n(1), t(" MB goal, "), n(2), t(" MB goal, ")];
        assert!(label(&twice, "lastStackScan").is_empty());
    }
}
