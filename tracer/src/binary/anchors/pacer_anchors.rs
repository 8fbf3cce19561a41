//! The four mark-time fields of `runtime.gcController`, located by the gctrace printing
//! code of `gcMarkTermination` with no layout assumed (anchors for [`super::derive`]).
//!
//! Go 1.19–1.27 print the CPU times from a stack array
//! `[]int64{sweepTermCpu, gcController.assistTime…, gcController.dedicatedMarkTime… +
//! gcController.fractionalMarkTime…, gcController.idleMarkTime…, markTermCpu}`: five
//! consecutive words whose second and fourth are stored straight from loads of
//! `gcController` (assistTime, idleMarkTime), while the third is the sum of the two
//! `gcController` words accessed right before idleMarkTime's load, in source order
//! (dedicated, then fractional). Only addresses within [`EXTENT`] bytes of the receiver
//! base count. What does not fit is left out (unknown), never guessed; the leave-one-out
//! over the table checks the dedicated/fractional order on every release (on 1.21+ these
//! anchors must also agree with the confirmed layout).

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::instructions;
use super::print_anchors::{self, set_or_forget, Anchors, Flow};
use super::work_anchors::{self, Acc};
use crate::binary::image::arm64::Kind;
use crate::binary::{Arch, GoBinary};

const CONTROLLER_TYPE: &str = "runtime.gcControllerState";

/// `gcControllerState` is under 1 KiB in every release 1.19–1.27.
const EXTENT: u64 = 2048;

/// The mark-time anchors of `gcController` at `base`.
pub(crate) fn anchors(bin: &GoBinary, base: u64) -> Anchors {
    let mut out = Anchors::new();
    let Some(f) = bin.function("runtime.gcMarkTermination") else {
        return out;
    };
    let ctrl = base..base.saturating_add(EXTENT);
    out.extend(settings_and_total(bin, &ctrl));
    let Some((assist, idle)) = cpu_array(&print_anchors::flow(bin, &f), &ctrl) else {
        return out;
    };
    out.insert((CONTROLLER_TYPE, "assistTime"), assist);
    out.insert((CONTROLLER_TYPE, "idleMarkTime"), idle);
    if let Some((d, fr)) = mark_sum(&work_anchors::accesses(bin, &f), &ctrl, assist, idle) {
        out.insert((CONTROLLER_TYPE, "dedicatedMarkTime"), d);
        out.insert((CONTROLLER_TYPE, "fractionalMarkTime"), fr);
    }
    out
}

/// `gcPercent`, `memoryLimit` and `totalAlloc`, each from the one place that names it:
/// * `gcTrigger.test`'s `gcController.gcPercent.Load() < 0`: its only 4-byte load of
///   `gcController`;
/// * `gcControllerCommit`'s `gcPaceScavenger(gcController.memoryLimit.Load(), …)`: the
///   `gcController` word in the first argument register at that call;
/// * `mcache.allocLarge`'s `gcController.totalAlloc.Add(…)`: its first 8-byte atomic add
///   to `gcController` (`gcController.update`'s `heapLive.Add` may follow, inlined).
fn settings_and_total(bin: &GoBinary, ctrl: &Range<u64>) -> Anchors {
    let mut out = Anchors::new();
    if let Some(f) = bin.function("runtime.gcTrigger.test") {
        // arm64 loads the atomic with `LDARW`.
        let loads: BTreeSet<u64> = match bin.arch() {
            Arch::X86_64 => work_anchors::accesses(bin, &f)
                .iter()
                .filter(|a| a.load && a.size == 4)
                .map(|a| a.target)
                .collect(),
            Arch::Aarch64 => instructions::accesses(bin, &f)
                .iter()
                .filter(|a| {
                    matches!(
                        a.kind,
                        Kind::Load {
                            size: 4,
                            fp: false,
                            ..
                        } | Kind::Atomic {
                            size: 4,
                            store: false,
                            rt: Some(_)
                        }
                    )
                })
                .map(|a| a.target)
                .collect(),
        };
        let loads: BTreeSet<u64> = loads.into_iter().filter(|a| ctrl.contains(a)).collect();
        if loads.len() == 1 {
            out.extend(loads.first().map(|a| ((CONTROLLER_TYPE, "gcPercent"), *a)));
        }
    }
    if let Some(f) = bin.function("runtime.gcControllerCommit") {
        let mut limit: BTreeSet<u64> = BTreeSet::new();
        let mut holds: HashMap<u16, u64> = HashMap::new();
        for step in print_anchors::flow(bin, &f) {
            match step {
                Flow::Load { dst, addr, size } if size == 8 && ctrl.contains(&addr) => {
                    holds.insert(dst, addr);
                }
                Flow::Load { dst, .. }
                | Flow::AddrOf { dst, .. }
                | Flow::LoadSlot { dst, .. }
                | Flow::Clobber { dst } => {
                    holds.remove(&dst);
                }
                Flow::Move { dst, src } => {
                    let v = holds.get(&src).copied();
                    set_or_forget(&mut holds, dst, v);
                }
                Flow::Call { target } => {
                    let callee = bin.function_at(target).map(|g| g.name).unwrap_or_default();
                    if callee == "runtime.gcPaceScavenger" {
                        limit.extend(holds.get(&0));
                    }
                    holds.clear();
                }
                Flow::StoreSlot { .. } | Flow::TestByte { .. } => {}
            }
        }
        if limit.len() == 1 {
            out.extend(
                limit
                    .first()
                    .map(|a| ((CONTROLLER_TYPE, "memoryLimit"), *a)),
            );
        }
    }
    if let Some(f) = bin.function("runtime.(*mcache).allocLarge") {
        let first = match bin.arch() {
            Arch::X86_64 => work_anchors::increments_x86(bin, &f, 8)
                .into_iter()
                .find(|a| ctrl.contains(a)),
            Arch::Aarch64 => instructions::accesses(bin, &f).iter().find_map(|a| {
                (matches!(a.kind, Kind::Atomic { size: 8, .. }) && ctrl.contains(&a.target))
                    .then_some(a.target)
            }),
        };
        out.extend(first.map(|a| ((CONTROLLER_TYPE, "totalAlloc"), a)));
    }
    out
}

/// (assistTime, idleMarkTime): the 2nd and 4th of five consecutive stack words stored in
/// order, those two straight from 8-byte loads of `ctrl`, the 3rd not (a sum).
fn cpu_array(flow: &[Flow], ctrl: &Range<u64>) -> Option<(u64, u64)> {
    // (slot, the controller word stored, if straight from a load).
    let stored = print_anchors::stores_of_loads(flow, ctrl);
    stored.windows(5).find_map(|w| {
        let consecutive = w.windows(2).all(|p| p[0].0.checked_add(8) == Some(p[1].0));
        match (w[1].1, w[2].1, w[3].1) {
            (Some(a), None, Some(i)) if consecutive && a != i => Some((a, i)),
            _ => None,
        }
    })
}

/// (dedicatedMarkTime, fractionalMarkTime): the two distinct `ctrl` words accessed right
/// before a load of `idle`, neither of them `assist` or `idle`.
fn mark_sum(acc: &[Acc], ctrl: &Range<u64>, assist: u64, idle: u64) -> Option<(u64, u64)> {
    acc.windows(3).find_map(|w| {
        let (d, f, i) = (w[0], w[1], w[2]);
        let ok = i.target == idle
            && i.load
            && d.load
            && d.size == 8
            && f.size == 8
            && d.target != f.target
            && [d.target, f.target]
                .iter()
                .all(|t| ctrl.contains(t) && *t != assist && *t != idle);
        ok.then_some((d.target, f.target))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_array_names_the_loaded_words() {
        let ctrl = 0x2000..0x2800;
        let flow = [
            Flow::LoadSlot { dst: 1, slot: 0x40 },
            Flow::StoreSlot {
                slot: 0x158,
                src: 1,
            },
            Flow::Load {
                dst: 0,
                addr: 0x20e0,
                size: 8,
            },
            Flow::StoreSlot {
                slot: 0x160,
                src: 0,
            },
            Flow::Load {
                dst: 0,
                addr: 0x20e8,
                size: 8,
            },
            Flow::Clobber { dst: 0 },
            Flow::StoreSlot {
                slot: 0x168,
                src: 0,
            },
            Flow::Load {
                dst: 0,
                addr: 0x20f8,
                size: 8,
            },
            Flow::StoreSlot {
                slot: 0x170,
                src: 0,
            },
            Flow::LoadSlot { dst: 0, slot: 0x58 },
            Flow::StoreSlot {
                slot: 0x178,
                src: 0,
            },
        ];
        assert_eq!(cpu_array(&flow, &ctrl), Some((0x20e0, 0x20f8)));
        let l = |target| Acc {
            target,
            size: 8,
            load: true,
        };
        let acc = [
            l(0x20e0),
            l(0x20e8),
            Acc {
                target: 0x20f0,
                size: 8,
                load: false,
            },
            l(0x20f8),
        ];
        assert_eq!(
            mark_sum(&acc, &ctrl, 0x20e0, 0x20f8),
            Some((0x20e8, 0x20f0))
        );
        assert_eq!(mark_sum(&acc[1..], &ctrl, 0x20e8, 0x20f8), None);
    }
}
