//! arm64 forms of the instruction patterns [`super::globals`] locates runtime globals by,
//! in binaries without `.symtab`. Addresses come from [`crate::binary::image::arm64`]'s
//! ADRP tracking; each pattern is the arm64 shape of its x86-64 twin and is checked
//! against `.symtab` on every supported toolchain by `tracer/tests/integration/binary_stripped.rs`.

use std::collections::BTreeSet;

use super::instructions::{accesses, events};
use crate::binary::image::arm64::{Access, Event, Kind};
use crate::binary::GoBinary;

/// `GOMAXPROCS(n)` reads `int(gomaxprocs)` before anything else it loads: the first
/// 4-byte general-register load from a global in `runtime.GOMAXPROCS` (the lock is taken
/// by address, 1.25's `customGOMAXPROCS` is a byte store).
pub(crate) fn gomaxprocs(bin: &GoBinary) -> Result<u64, String> {
    let f = bin
        .function("runtime.GOMAXPROCS")
        .ok_or("runtime.GOMAXPROCS not found")?;
    accesses(bin, &f)
        .iter()
        .find(|a| {
            matches!(
                a.kind,
                Kind::Load {
                    size: 4,
                    fp: false,
                    ..
                }
            )
        })
        .map(|a| a.target)
        .ok_or_else(|| "no 4-byte global load in runtime.GOMAXPROCS".into())
}

/// `runtimeInitTime = nanotime()` in `runtime.main`: the first 8-byte store to a global
/// within a few instructions after `BL runtime.nanotime1` (or `runtime.nanotime`).
pub(crate) fn runtime_init_time(bin: &GoBinary) -> Result<u64, String> {
    const WINDOW: usize = 6;
    let f = bin
        .function("runtime.main")
        .ok_or("runtime.main not found")?;
    let ev = events(bin, &f);
    for (i, e) in ev.iter().enumerate() {
        let Event::Call { target, .. } = e else {
            continue;
        };
        if !bin
            .function_at(*target)
            .is_some_and(|c| c.name.starts_with("runtime.nanotime"))
        {
            continue;
        }
        let store = ev.iter().skip(i + 1).take(WINDOW).find_map(|s| match s {
            Event::Access(Access {
                target,
                kind: Kind::Store { size: 8 },
                ..
            }) => Some(*target),
            _ => None,
        });
        if let Some(t) = store {
            return Ok(t);
        }
    }
    Err("no store of nanotime()'s result in runtime.main".into())
}

/// `setGCPhase(x)`: `STLRW Rx, (Rg)` to `&gcphase`, then the next global access reloads
/// it with a 4-byte load. Every address so named in the `runtime.gc*` functions, which
/// must agree (the caller judges that, as for x86-64).
pub(crate) fn gcphase(bin: &GoBinary) -> BTreeSet<u64> {
    let mut found: BTreeSet<u64> = BTreeSet::new();
    let mut functions = bin.functions_with_prefix("runtime.gc");
    functions.extend(bin.function("runtime.setGCPhase"));
    for f in &functions {
        let acc: Vec<Access> = accesses(bin, f)
            .into_iter()
            .filter(|a| !matches!(a.kind, Kind::AddrOf { .. }))
            .collect();
        for w in acc.windows(2) {
            let store_ok = matches!(
                w[0].kind,
                Kind::Atomic {
                    size: 4,
                    store: true,
                    ..
                }
            );
            let load_ok = matches!(w[1].kind, Kind::Load { size: 4, .. })
                && w[1].target == w[0].target
                && w[1].pc.saturating_sub(w[0].pc) <= 4 * 4;
            if store_ok && load_ok {
                found.insert(w[0].target);
            }
        }
    }
    found
}
