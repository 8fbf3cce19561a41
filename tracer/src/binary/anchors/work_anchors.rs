//! `runtime.work` itself and the fields of it the gctrace print labels do not name,
//! located by the runtime's own code with no layout assumed ([`super::derive`] uses them
//! as anchors, like [`super::print_anchors`]'s).
//!
//! * **The base**: `work.full` is `workType`'s first member (1.19–1.27), and `putfull` /
//!   `trygetfull` call `work.full.push(…)` / `work.full.pop()`: the receiver of those
//!   `lfstack` methods is `&work`.
//! * **The clock** (`gcMarkTermination`'s gctrace code, 1.19–1.27):
//!   `uint64(work.tSweepTerm-runtimeInitTime)` is the load right before the only use of
//!   `runtimeInitTime`; `[]int64{work.tMark, work.tMarkTerm, work.tEnd}` is three loads
//!   stored to consecutive words of one stack array, in that order;
//!   `int64(work.stwprocs) * (work.tMark - work.tSweepTerm)` (and `… * (work.tEnd -
//!   work.tMarkTerm)`) puts the one 4-byte load beside two of those clock fields.
//! * **The cycle count**: `gcStart`'s `work.cycles++` (1.19) / `work.cycles.Add(1)`
//!   (1.20+), the only 4-byte read-modify-write increment of `work` there.
//!
//! Only addresses between the base and the last print-anchored `work` field (heap2 in
//! every release) count as `work`'s. Where a pattern is absent, ambiguous or disagrees
//! with itself the field is left out (unknown), never guessed.

use std::collections::BTreeSet;
use std::ops::Range;

use iced_x86::{Mnemonic, OpKind, Register};

use super::instructions;
use super::print_anchors::{self, Anchors, Flow};
use super::receivers;
use crate::binary::image::arm64::Kind;
use crate::binary::{Arch, GoBinary};

const WORK_TYPE: &str = "runtime.workType";

/// Functions that take `&work.full` as an `lfstack` method receiver.
const FULL_USERS: &[&str] = &["runtime.putfull", "runtime.trygetfull"];

/// One absolute memory access (address computations left out), either architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acc {
    pub target: u64,
    pub size: u8,
    /// A plain load into a general register.
    pub load: bool,
}

/// How [`work_base`]'s evidence is named in `globals::Evidence`.
pub(crate) const RECEIVER_METHOD: &str = "lfstack receiver";

/// `&work`, from the `lfstack` receivers of [`FULL_USERS`]: (address, sites, 0), or
/// `Ok(None)` when no site is found, or why the sites disagree.
pub(crate) fn work_base(bin: &GoBinary) -> Result<Option<(u64, usize, usize)>, String> {
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut sites = 0;
    for name in FULL_USERS {
        let Some(f) = bin.function(name) else {
            continue;
        };
        let found = receivers::receivers(bin, &f, &|name| name.starts_with("runtime.(*lfstack)."));
        sites += found.len();
        seen.extend(found);
    }
    match seen.len() {
        0 => Ok(None),
        1 => Ok(seen.first().map(|b| (*b, sites, 0))),
        _ => Err(format!(
            "work.full receivers disagree: {}",
            seen.iter()
                .map(|a| format!("{a:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The clock, `stwprocs` and `cycles` anchors of `work` at `base`, given the anchors the
/// print labels already gave (they bound `work`'s extent) and `&runtimeInitTime`.
pub(crate) fn anchors(
    bin: &GoBinary,
    base: u64,
    known: &Anchors,
    init_time: Option<u64>,
) -> Anchors {
    let mut out = Anchors::new();
    out.insert((WORK_TYPE, "full"), base);
    let Some(work) = extent(base, known) else {
        return out;
    };
    if let Some(f) = bin.function("runtime.gcMarkTermination") {
        let acc = accesses(bin, &f);
        if let Some(t) = init_time.and_then(|t| sweep_term(&acc, t, &work)) {
            out.insert((WORK_TYPE, "tSweepTerm"), t);
        }
        if let Some([m, mt, e]) = clock_array(&print_anchors::flow(bin, &f), &work) {
            out.insert((WORK_TYPE, "tMark"), m);
            out.insert((WORK_TYPE, "tMarkTerm"), mt);
            out.insert((WORK_TYPE, "tEnd"), e);
        }
        let clock = |f: &str| out.get(&(WORK_TYPE, f)).copied();
        if let (Some(st), Some(m), Some(mt), Some(e)) = (
            clock("tSweepTerm"),
            clock("tMark"),
            clock("tMarkTerm"),
            clock("tEnd"),
        ) {
            if let Some(p) = stwprocs(&acc, &work, &[[m, st], [e, mt]]) {
                out.insert((WORK_TYPE, "stwprocs"), p);
            }
        }
    }
    if let Some(c) = bin
        .function("runtime.gcStart")
        .and_then(|f| cycles(bin, &f, &work))
    {
        out.insert((WORK_TYPE, "cycles"), c);
    }
    out
}

/// `[base, last print-anchored work field)`: where `work`'s other anchors may lie.
fn extent(base: u64, known: &Anchors) -> Option<Range<u64>> {
    let end = known
        .iter()
        .filter(|((t, _), _)| *t == WORK_TYPE)
        .map(|(_, a)| *a)
        .max()
        .filter(|e| *e > base)?;
    Some(base..end)
}

/// `memstats.pause_total_ns += uint64(work.pauseNS)` in `gcMarkTermination`: the one
/// 8-byte load of `work` right beside an access to `pause_total` (the address of
/// `memstats.pause_total_ns`, from a confirmed `mstats` layout).
pub(crate) fn pause_ns(
    bin: &GoBinary,
    base: u64,
    known: &Anchors,
    pause_total: u64,
) -> Option<u64> {
    let work = extent(base, known)?;
    let f = bin.function("runtime.gcMarkTermination")?;
    let acc = accesses(bin, &f);
    let mut found: BTreeSet<u64> = BTreeSet::new();
    for (i, a) in acc.iter().enumerate() {
        if !(a.load && a.size == 8 && work.contains(&a.target)) {
            continue;
        }
        let beside = |j: Option<usize>| {
            j.and_then(|j| acc.get(j))
                .is_some_and(|n| n.target == pause_total)
        };
        if beside(i.checked_sub(1)) || beside(i.checked_add(1)) {
            found.insert(a.target);
        }
    }
    (found.len() == 1).then(|| found.first().copied()).flatten()
}

/// `f`'s absolute memory accesses in address order (address computations left out).
pub(crate) fn accesses(bin: &GoBinary, f: &crate::binary::Function) -> Vec<Acc> {
    match bin.arch() {
        Arch::X86_64 => instructions::decode(bin, f)
            .iter()
            .filter(|i| i.is_ip_rel_memory_operand() && i.mnemonic() != Mnemonic::Lea)
            .map(|i| Acc {
                target: i.ip_rel_memory_address(),
                size: u8::try_from(i.memory_size().size()).unwrap_or(0),
                load: matches!(i.mnemonic(), Mnemonic::Mov | Mnemonic::Movsxd)
                    && i.op_count() == 2
                    && i.op0_kind() == OpKind::Register
                    && i.op1_kind() == OpKind::Memory,
            })
            .collect(),
        Arch::Aarch64 => instructions::accesses(bin, f)
            .iter()
            .filter_map(|a| match a.kind {
                Kind::AddrOf { .. } => None,
                Kind::Load { size, fp, .. } => Some(Acc {
                    target: a.target,
                    size,
                    load: !fp,
                }),
                Kind::Store { size } | Kind::Atomic { size, .. } => Some(Acc {
                    target: a.target,
                    size,
                    load: false,
                }),
            })
            .collect(),
    }
}

/// `work.tSweepTerm-runtimeInitTime`: the 8-byte load of `work` right before the first
/// access to `runtimeInitTime`.
fn sweep_term(acc: &[Acc], init_time: u64, work: &Range<u64>) -> Option<u64> {
    let i = acc.iter().position(|a| a.target == init_time)?;
    let prev = acc.get(i.checked_sub(1)?)?;
    (prev.load && prev.size == 8 && work.contains(&prev.target)).then_some(prev.target)
}

/// `[]int64{work.tMark, work.tMarkTerm, work.tEnd}`: the first three 8-byte loads of
/// distinct `work` words stored, one after the other, to consecutive words of the stack.
fn clock_array(flow: &[Flow], work: &Range<u64>) -> Option<[u64; 3]> {
    // (slot, address) of each store of a `work` word, straight from its load, in order.
    let stored: Vec<(u64, u64)> = print_anchors::stores_of_loads(flow, work)
        .into_iter()
        .filter_map(|(slot, a)| Some((slot, a?)))
        .collect();
    stored.windows(3).find_map(|w| {
        let consecutive = w[1].0 == w[0].0.checked_add(8)? && w[2].0 == w[1].0.checked_add(8)?;
        let distinct = w[0].1 != w[1].1 && w[1].1 != w[2].1 && w[0].1 != w[2].1;
        (consecutive && distinct).then_some([w[0].1, w[1].1, w[2].1])
    })
}

/// `int64(work.stwprocs) * (a - b)` for the clock pairs given: a 4-byte load of `work`
/// with both fields of a pair among the two accesses either side of it. Every such load
/// must name the same address.
fn stwprocs(acc: &[Acc], work: &Range<u64>, pairs: &[[u64; 2]]) -> Option<u64> {
    let mut found: BTreeSet<u64> = BTreeSet::new();
    for (i, a) in acc.iter().enumerate() {
        if !(a.load && a.size == 4 && work.contains(&a.target)) {
            continue;
        }
        let near: Vec<u64> = acc[i.saturating_sub(2)..acc.len().min(i + 3)]
            .iter()
            .map(|n| n.target)
            .collect();
        if pairs.iter().any(|p| p.iter().all(|f| near.contains(f))) {
            found.insert(a.target);
        }
    }
    (found.len() == 1).then(|| found.first().copied()).flatten()
}

/// `work.cycles++` / `work.cycles.Add(1)` in `gcStart`: the only 4-byte `work` word it
/// increments in place (x86-64 `INC`/`ADD $1` on memory, `LOCK XADD` through a `LEA`;
/// arm64 an exclusive or LSE atomic, or `LDRW; ADD $1; STRW` on one address).
fn cycles(bin: &GoBinary, f: &crate::binary::Function, work: &Range<u64>) -> Option<u64> {
    let found: BTreeSet<u64> = match bin.arch() {
        Arch::X86_64 => increments_x86(bin, f, 4),
        Arch::Aarch64 => increments_arm64(bin, f),
    }
    .into_iter()
    .filter(|a| work.contains(a))
    .collect();
    (found.len() == 1).then(|| found.first().copied()).flatten()
}

/// The `size`-byte globals `f` increments in place on x86-64, in address order: `INC`
/// / `ADD $1` on the global, or `LOCK XADD` through a register a `LEA` just set.
pub(crate) fn increments_x86(bin: &GoBinary, f: &crate::binary::Function, size: usize) -> Vec<u64> {
    let code = instructions::decode(bin, f);
    let mut out = Vec::new();
    for (i, ins) in code.iter().enumerate() {
        let mem = ins.op_count() > 0
            && ins.op0_kind() == OpKind::Memory
            && ins.memory_size().size() == size;
        if !mem {
            continue;
        }
        if ins.is_ip_rel_memory_operand() {
            let add_one = ins.mnemonic() == Mnemonic::Add
                && ins.op_count() == 2
                && matches!(ins.op1_kind(), OpKind::Immediate8to32 | OpKind::Immediate32)
                && ins.immediate32() == 1;
            if ins.mnemonic() == Mnemonic::Inc || add_one {
                out.push(ins.ip_rel_memory_address());
            }
            continue;
        }
        // `LEA r, [global]; … LOCK XADD [r], reg`.
        if ins.mnemonic() != Mnemonic::Xadd
            || !ins.has_lock_prefix()
            || ins.memory_index() != Register::None
            || ins.memory_displacement64() != 0
        {
            continue;
        }
        let base = ins.memory_base();
        let lea = code[i.saturating_sub(3)..i].iter().rev().find(|p| {
            p.op_count() > 0 && p.op0_kind() == OpKind::Register && p.op0_register() == base
        });
        if let Some(lea) =
            lea.filter(|l| l.mnemonic() == Mnemonic::Lea && l.is_ip_rel_memory_operand())
        {
            out.push(lea.ip_rel_memory_address());
        }
    }
    out
}

fn increments_arm64(bin: &GoBinary, f: &crate::binary::Function) -> Vec<u64> {
    let mut out = Vec::new();
    let acc = instructions::accesses(bin, f);
    let word = |pc: u64| -> Option<u32> {
        let b = bin.bytes_at(pc, 4)?;
        Some(u32::from_le_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    };
    for (i, a) in acc.iter().enumerate() {
        match a.kind {
            Kind::Atomic { size: 4, .. } => out.push(a.target),
            Kind::Load {
                size: 4,
                rt,
                fp: false,
            } => {
                // `ADD $1, Rt, Rd` (32- or 64-bit) right after the load, then a 4-byte
                // store to the same address within a few instructions.
                let adds_one = word(a.pc + 4)
                    .is_some_and(|w| w & 0x7fff_fc00 == 0x1100_0400 && ((w >> 5) & 31) as u8 == rt);
                let stored = acc.iter().skip(i + 1).take(3).any(|s| {
                    s.target == a.target
                        && matches!(s.kind, Kind::Store { size: 4 })
                        && s.pc.saturating_sub(a.pc) <= 4 * 4
                });
                if adds_one && stored {
                    out.push(a.target);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_array_is_three_consecutive_words() {
        let work = 0x1000..0x1200;
        let flow = [
            Flow::Load {
                dst: 3,
                addr: 0x1100,
                size: 8,
            },
            Flow::StoreSlot { slot: 0x40, src: 3 },
            Flow::Load {
                dst: 3,
                addr: 0x1108,
                size: 8,
            },
            Flow::StoreSlot { slot: 0xf0, src: 3 },
            Flow::Load {
                dst: 3,
                addr: 0x1110,
                size: 8,
            },
            Flow::StoreSlot { slot: 0xf8, src: 3 },
            Flow::Load {
                dst: 4,
                addr: 0x1118,
                size: 8,
            },
            Flow::StoreSlot {
                slot: 0x100,
                src: 4,
            },
        ];
        assert_eq!(clock_array(&flow, &work), Some([0x1108, 0x1110, 0x1118]));
        // A register changed in between is not the loaded word any more.
        let mut broken = flow;
        broken[6] = Flow::Clobber { dst: 4 };
        assert_eq!(clock_array(&broken, &work), None);
    }

    #[test]
    fn sweep_term_and_stwprocs_by_their_neighbours() {
        let work = 0x1000..0x1200;
        let l = |target, size| Acc {
            target,
            size,
            load: true,
        };
        let acc = [
            l(0x1100, 8),
            Acc {
                target: 0x9000,
                size: 8,
                load: false,
            },
            l(0x10f4, 4),
            l(0x1108, 8),
            Acc {
                target: 0x1100,
                size: 8,
                load: false,
            },
        ];
        assert_eq!(sweep_term(&acc, 0x9000, &work), Some(0x1100));
        assert_eq!(sweep_term(&acc, 0x9000, &(0..0x10)), None);
        assert_eq!(stwprocs(&acc, &work, &[[0x1108, 0x1100]]), Some(0x10f4));
        assert_eq!(stwprocs(&acc, &work, &[[0x1108, 0x1118]]), None);
    }
}
