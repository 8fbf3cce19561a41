//! Runtime struct offsets for binaries that have neither DWARF nor an exact entry in the
//! offsets table: candidate layouts from the table, kept only where the binary's own
//! code confirms them, field by field.
//!
//! 1. **Anchors** ([`super::print_anchors`]): the gctrace printing code of
//!    `gcMarkTermination` names nine fields by the text printed after them (heap0/1/2,
//!    goal, stacks, globals, maxprocs, numgc, userForced) and gives their absolute
//!    addresses, assuming no layout. [`super::work_anchors`] adds `&work` and the `work`
//!    fields the labels do not name (clock, stwprocs, cycles, pauseNS);
//!    [`super::pacer_anchors`] the pacer's GOGC, memory limit, TotalAlloc and mark times.
//! 2. **Candidates**: every table release of the same architecture, same minor first
//!    (nearest patch), then neighbouring minors. For each, the globals are located by the
//!    usual votes ([`super::globals`]) with that release's layouts; a struct's candidate
//!    layout is *confirmed* when every anchor of that struct sits exactly at
//!    `base + candidate offset`. The first confirmed candidate wins, per struct.
//! 3. **Per field**: an anchored field's offset is `anchor − base`. Any other field of a
//!    confirmed struct keeps the candidate's offset only if the code really accesses
//!    `base + offset`. Everything else is unknown — never a guess. A struct with no
//!    confirmed candidate keeps just its anchors, and only when its base is known
//!    without a layout (a method receiver: `gcController`).
//!
//! What this cannot see: a field that moved in a release while every anchor of its
//! struct stayed put and its old offset is still accessed (by a neighbouring field).
//! Layouts have so far changed by inserting or resizing members, which moves the
//! anchored fields too; the leave-one-out tests and `cargo xtask offsets-loo` measure it
//! on every tabulated release.

use std::collections::{BTreeMap, BTreeSet};

use super::globals::{self, Recovered, STRUCT_GLOBALS};
use super::instructions;
use super::pacer_anchors;
use super::print_anchors;
use super::work_anchors;
use crate::binary::layouts::offsets_table::{self, Layouts, StructLayout};
use crate::binary::{GoBinary, GoVersion};

const WORK_TYPE: &str = "runtime.workType";
const CONTROLLER_TYPE: &str = "runtime.gcControllerState";

/// What derivation found for one binary.
#[derive(Debug, Default)]
pub(crate) struct Derived {
    /// Per struct type: the layout used to locate its global (the confirmed candidate's,
    /// or only the anchored fields).
    pub layouts: BTreeMap<String, StructLayout>,
    /// Per struct type: the table release whose layout the code confirmed.
    pub confirmed_by: BTreeMap<String, String>,
    /// Anchored absolute addresses by (type, field).
    anchors: print_anchors::Anchors,
    /// Absolute addresses the runtime's GC code accesses.
    targets: BTreeSet<u64>,
    /// Globals located with the final layouts.
    pub recovered: Recovered,
    pub warnings: Vec<String>,
}

impl Derived {
    /// The verified offset of `field` in `ty`, or `None` (unknown).
    pub fn field_offset(&self, ty: &str, field: &str) -> Option<u64> {
        let symbol = STRUCT_GLOBALS.iter().find(|(_, t)| *t == ty)?.0;
        let base = *self.recovered.addresses.get(symbol)?;
        if let Some((_, abs)) = self
            .anchors
            .iter()
            .find(|((t, f), _)| *t == ty && *f == field)
        {
            return abs.checked_sub(base);
        }
        if !self.confirmed_by.contains_key(ty) {
            return None;
        }
        let off = *self.layouts.get(ty)?.fields.get(field)?;
        self.targets
            .contains(&base.checked_add(off)?)
            .then_some(off)
    }
}

/// Table releases of `bin`'s architecture that may be used, nearest to `bin`'s version
/// first; releases with identical layouts of the struct globals are tried once.
fn candidates(bin: &GoBinary) -> Vec<(String, &'static Layouts)> {
    let table = offsets_table::builtin();
    let own = bin.go_version();
    let goarch = offsets_table::goarch(bin.arch());
    let own_key = offsets_table::version_key(own);
    let mut found: Vec<(u32, u32, bool, String, &'static Layouts)> = Vec::new();
    for (key, per_arch) in &table.versions {
        if offsets_table::excluded(key) || (bin.table_excluded && Some(key.as_str()) == own_key) {
            continue;
        }
        let (Some(v), Some(layouts)) = (GoVersion::parse(key), per_arch.get(goarch)) else {
            continue;
        };
        // Same minor first, then by distance; within one, the nearest patch, and of
        // two equally near releases the older (layouts grow over time).
        found.push((
            own.minor.abs_diff(v.minor),
            own.patch.abs_diff(v.patch),
            v > *own,
            key.clone(),
            layouts,
        ));
    }
    found.sort_by_key(|a| (a.0, a.1, a.2));
    let mut out: Vec<(String, &'static Layouts)> = Vec::new();
    for (_, _, _, key, layouts) in found {
        let same = |l: &Layouts| {
            STRUCT_GLOBALS
                .iter()
                .all(|(_, ty)| l.get(*ty) == layouts.get(*ty))
        };
        if !out.iter().any(|(_, l)| same(l)) {
            out.push((key, layouts));
        }
    }
    out
}

/// Does every anchor of `ty` sit at `base + layout offset`? (False without anchors.)
fn confirms(anchors: &print_anchors::Anchors, ty: &str, base: u64, layout: &StructLayout) -> bool {
    let mut any = false;
    for ((t, field), abs) in anchors {
        if *t != ty {
            continue;
        }
        any = true;
        let want = layout.fields.get(*field).and_then(|o| base.checked_add(*o));
        if want != Some(*abs) {
            return false;
        }
    }
    any
}

/// `work.pauseNS`, anchored beside `memstats.pause_total_ns` once `mstats` is confirmed.
fn pause_anchor(bin: &GoBinary, out: &mut Derived) {
    const MSTATS: &str = "runtime.mstats";
    if !out.confirmed_by.contains_key(MSTATS) {
        return;
    }
    let addr = |s: &str| out.recovered.addresses.get(s).copied();
    let (Some(work), Some(memstats)) = (addr("runtime.work"), addr("runtime.memstats")) else {
        return;
    };
    let Some(total) = out
        .layouts
        .get(MSTATS)
        .and_then(|l| l.fields.get("pause_total_ns"))
        .and_then(|o| memstats.checked_add(*o))
    else {
        return;
    };
    if let Some(p) = work_anchors::pause_ns(bin, work, &out.anchors, total) {
        log::debug!("anchor {WORK_TYPE}.pauseNS at {p:#x} (beside pause_total_ns)");
        out.anchors.insert((WORK_TYPE, "pauseNS"), p);
    }
}

/// Derives what can be verified of `bin`'s runtime struct layouts from its code.
pub(crate) fn derive(bin: &GoBinary) -> Derived {
    let mut out = Derived::default();
    match print_anchors::anchors(bin) {
        Ok(a) => {
            for ((ty, f), addr) in &a {
                log::debug!("anchor {ty}.{f} at {addr:#x}");
            }
            out.anchors = a;
        }
        Err(why) => out.warnings.push(format!(
            "no gctrace printing code to check offsets against: {why}"
        )),
    }
    let code = globals::code_evidence(bin);
    // `work`'s base and the fields the print labels do not name.
    if let Some(base) = code.receiver_base(WORK_TYPE) {
        let init_time = globals::runtime_init_time_of(bin).ok();
        let more = work_anchors::anchors(bin, base, &out.anchors, init_time);
        for ((ty, f), addr) in &more {
            log::debug!("anchor {ty}.{f} at {addr:#x} (work code)");
        }
        out.anchors.extend(more);
    }
    // The pacer's mark times, from the CPU figures of the gctrace line.
    if let Some(base) = code.receiver_base(CONTROLLER_TYPE) {
        let more = pacer_anchors::anchors(bin, base);
        for ((ty, f), addr) in &more {
            log::debug!("anchor {ty}.{f} at {addr:#x} (cpu figures)");
        }
        out.anchors.extend(more);
    }
    for (key, layouts) in candidates(bin) {
        if STRUCT_GLOBALS
            .iter()
            .all(|(_, ty)| out.confirmed_by.contains_key(*ty))
        {
            break;
        }
        let rec = globals::recover_with(bin, &code, &|ty| layouts.get(ty).cloned());
        for (symbol, ty) in STRUCT_GLOBALS {
            if out.confirmed_by.contains_key(*ty) {
                continue;
            }
            let (Some(base), Some(layout)) = (rec.addresses.get(*symbol), layouts.get(*ty)) else {
                continue;
            };
            log::debug!("candidate {key}: {symbol} at {base:#x}");
            if confirms(&out.anchors, ty, *base, layout) {
                log::debug!("{ty}: layout of {key} confirmed at base {base:#x}");
                out.confirmed_by.insert((*ty).to_string(), key.clone());
                out.layouts.insert((*ty).to_string(), layout.clone());
            }
        }
    }
    // Unconfirmed structs: their anchors alone, if a receiver gives the base.
    for (_, ty) in STRUCT_GLOBALS {
        if out.layouts.contains_key(*ty) {
            continue;
        }
        let fields: Vec<(&str, u64)> = out
            .anchors
            .iter()
            .filter(|((t, _), _)| t == ty)
            .map(|((_, f), a)| (*f, *a))
            .collect();
        if let Some(base) = code.receiver_base(ty) {
            let fields = fields
                .iter()
                .filter_map(|(f, a)| Some(((*f).to_string(), a.checked_sub(base)?)))
                .collect();
            out.layouts
                .insert((*ty).to_string(), StructLayout { size: None, fields });
        }
        out.warnings.push(format!(
            "no offsets-table layout of {ty} matches this binary's code: only its {} \
             anchored field(s) are known",
            if code.receiver_base(ty).is_some() {
                fields.len()
            } else {
                0
            }
        ));
    }
    out.recovered = globals::recover_with(bin, &code, &|ty| out.layouts.get(ty).cloned());
    pause_anchor(bin, &mut out);
    // The final votes must still put every anchor where the confirmed layout says.
    for (symbol, ty) in STRUCT_GLOBALS {
        let Some(layout) = out.layouts.get(*ty) else {
            continue;
        };
        let ok = out
            .recovered
            .addresses
            .get(*symbol)
            .is_some_and(|base| confirms(&out.anchors, ty, *base, layout));
        if !ok && out.confirmed_by.remove(*ty).is_some() {
            out.warnings.push(format!(
                "{ty}: confirmed layout no longer matches after locating all globals"
            ));
        }
    }
    out.targets = code.targets;
    // `totalAlloc` is kept by the allocator's span paths, not the GC's own functions.
    for f in bin.functions_with_prefix("runtime.(*mcache).") {
        out.targets.extend(instructions::access_targets(bin, &f));
    }
    out
}
