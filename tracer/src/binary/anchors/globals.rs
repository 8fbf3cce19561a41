//! Link-time addresses of runtime globals in binaries without `.symtab`, recovered from the
//! runtime's own machine code.
//!
//! `go build -ldflags='-s -w'` drops the symbol table but the runtime's code still
//! addresses its globals directly: on x86-64 every access to `work.cycles` is a
//! RIP-relative operand whose absolute target is `&work + offsetof(cycles)`. Two methods:
//!
//! * **Struct globals** (`work`, `memstats`, `gcController`): the functions that run a GC
//!   cycle touch dozens of their fields. Every RIP-relative target T and every known field
//!   offset o (from DWARF or the offsets table) votes for a base T − o; the base that
//!   explains the most *distinct* fields wins, if it explains at least
//!   [`MIN_DISTINCT_FIELDS`], clearly beats the runner-up (a base shifted by one word
//!   also explains runs of adjacent fields) and the whole struct fits in one data section.
//! * **Scalar globals** (offset 0, so nothing to vote with): one instruction pattern each,
//!   taken from a specific runtime function, checked against `.symtab` on every supported
//!   toolchain by the tests (`tracer/tests/integration/binary_stripped.rs`).
//!
//! arm64 builds addresses with ADRP+ADD/LDR pairs (decoded in [`crate::binary::image::arm64`]); its
//! receiver and scalar patterns are in [`super::globals_arm64`]. Everything is best effort: a global that is not found is reported
//! with a reason and the tracer shows it as unknown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use iced_x86::{Code, Mnemonic, OpKind, Register};

use super::globals_arm64;
use super::instructions;
use super::receivers;
use super::work_anchors;
use crate::binary::layouts::offsets_table::StructLayout;
use crate::binary::{Arch, Function, GoBinary};

/// Struct globals recovered by voting: symbol, its type, and the runtime functions whose
/// code is searched (by name prefix). These are the functions of a GC cycle and of
/// `ReadMemStats`, which between them touch most fields of all three.
pub const STRUCT_GLOBALS: &[(&str, &str)] = &[
    ("runtime.work", "runtime.workType"),
    ("runtime.memstats", "runtime.mstats"),
    ("runtime.gcController", "runtime.gcControllerState"),
];

/// Scalar globals recovered by an instruction pattern.
pub const SCALAR_GLOBALS: &[&str] = &[
    "runtime.gomaxprocs",
    "runtime.runtimeInitTime",
    "runtime.gcphase",
];

/// Name prefixes of the functions searched for struct-global accesses.
const VOTING_FUNCTIONS: &[&str] = &[
    "runtime.gc",
    "runtime.(*gcControllerState).",
    "runtime.readmemstats_m",
    "runtime.ReadMemStats",
    "runtime.readGCStats_m",
];

/// Fewest receiver sites (`LEA RAX, [global]; CALL method`, or its arm64 form) that
/// identify a receiver global.
const MIN_RECEIVER_SITES: usize = 3;

/// Fewest distinct fields a base must explain to be believed.
pub const MIN_DISTINCT_FIELDS: usize = 3;

/// What recovery found: addresses by symbol, and why the others are missing.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub addresses: HashMap<String, u64>,
    pub warnings: Vec<String>,
    /// How each struct global was found, for tests and diagnostics.
    pub votes: Vec<Evidence>,
}

/// How one struct global was located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub symbol: String,
    /// "receiver" (`LEA RAX, [global]; CALL method` sites), "lfstack receiver"
    /// (`&work.full` passed to `lfstack` methods, [`work_anchors::work_base`]) or
    /// "fields" (field votes).
    pub method: &'static str,
    /// Receiver sites naming the chosen address, or distinct fields it explains.
    pub support: usize,
    /// Sites naming other addresses, or the runner-up base's score.
    pub against: usize,
}

/// (base, distinct fields it explains, runner-up's score), or why there is no answer.
type VoteResult = Result<(u64, usize, usize), String>;

/// A data section's link-time extent `[start, end)`.
#[derive(Clone, Debug)]
pub(crate) struct DataRange {
    pub start: u64,
    pub end: u64,
}

/// What the code says independently of any struct layout: the absolute targets of the
/// voting functions and each struct type's method-receiver evidence. Computed once per
/// binary, whatever number of candidate layouts are then tried against it.
pub(crate) struct CodeEvidence {
    pub targets: BTreeSet<u64>,
    receivers: HashMap<&'static str, ReceiverResult>,
}

impl CodeEvidence {
    /// The global of type `ty` as a method receiver names it, when that evidence is
    /// conclusive (it needs no layout).
    pub fn receiver_base(&self, ty: &str) -> Option<u64> {
        match self.receivers.get(ty) {
            Some(Ok(Some((base, _, _)))) => Some(*base),
            _ => None,
        }
    }
}

/// (address, sites naming it, sites naming others), `None` for too few sites.
type ReceiverResult = Result<Option<(u64, usize, usize)>, String>;

/// Decodes the voting functions and the receiver sites of `bin`.
pub(crate) fn code_evidence(bin: &GoBinary) -> CodeEvidence {
    let data = bin.data_ranges();
    // Absolute targets inside data sections, from every voting function.
    let mut targets: BTreeSet<u64> = BTreeSet::new();
    let mut functions: Vec<Function> = Vec::new();
    for prefix in VOTING_FUNCTIONS {
        functions.extend(bin.functions_with_prefix(prefix));
    }
    for f in &functions {
        for target in instructions::access_targets(bin, f) {
            if data.iter().any(|r| (r.start..r.end).contains(&target)) {
                targets.insert(target);
            }
        }
    }
    let receivers = STRUCT_GLOBALS
        .iter()
        .map(|(_, ty)| {
            let r = receiver_of(bin, ty);
            // `workType` has no methods, but its first member `full` is an `lfstack`
            // receiver.
            let r = match r {
                Ok(None) if *ty == "runtime.workType" => work_anchors::work_base(bin),
                r => r,
            };
            (*ty, r)
        })
        .collect();
    CodeEvidence { targets, receivers }
}

/// Locates the globals of `bin` with its own layouts (DWARF, table or derived).
pub(crate) fn recover(bin: &GoBinary) -> Recovered {
    recover_with(bin, &code_evidence(bin), &|ty| bin.struct_layout(ty))
}

/// Locates the globals of `bin` from `code`, voting with the layouts `layout_of` gives
/// (candidate layouts, while offsets are being derived from code).
pub(crate) fn recover_with(
    bin: &GoBinary,
    code: &CodeEvidence,
    layout_of: &dyn Fn(&str) -> Option<StructLayout>,
) -> Recovered {
    let mut out = Recovered::default();
    let data = bin.data_ranges();
    let targets = &code.targets;
    // Globals already placed: their bytes explain their own accesses, so they are
    // removed from the evidence for the others and no other global may overlap them.
    let mut claimed: Vec<Range<u64>> = Vec::new();
    let mut pending: Vec<(&str, &str, StructLayout)> = Vec::new();
    for (symbol, ty) in STRUCT_GLOBALS {
        // Without a layout the fields could not be read anyway; the planner says why.
        let Some(layout) = layout_of(ty) else {
            continue;
        };
        // Strongest evidence first: `&global` passed as a method receiver.
        let receiver = code.receivers.get(ty).cloned().unwrap_or(Ok(None));
        match receiver {
            Ok(Some((base, support, against))) => {
                claimed.push(base..base.saturating_add(struct_size(&layout)));
                out.votes.push(Evidence {
                    symbol: (*symbol).to_string(),
                    // `workType` has no methods: its receiver is `work.full`'s.
                    method: if *ty == "runtime.workType" {
                        work_anchors::RECEIVER_METHOD
                    } else {
                        "receiver"
                    },
                    support,
                    against,
                });
                out.addresses.insert((*symbol).to_string(), base);
            }
            Ok(None) => pending.push((symbol, ty, layout)),
            Err(why) => out.warnings.push(format!(
                "no symbol table: cannot locate {symbol} from code: {why}"
            )),
        }
    }
    // Then by field votes, best-evidenced global first, each claiming its bytes.
    while !pending.is_empty() {
        let free: BTreeSet<u64> = targets
            .iter()
            .copied()
            .filter(|t| !claimed.iter().any(|c| c.contains(t)))
            .collect();
        let mut results: Vec<(usize, VoteResult)> = pending
            .iter()
            .enumerate()
            .map(|(i, (_, _, layout))| (i, vote(&free, layout, data, &claimed)))
            .collect();
        // Decide the global with the most fields explained first.
        results.sort_by_key(|(_, r)| std::cmp::Reverse(r.as_ref().map_or(0, |v| v.1)));
        let Some((i, result)) = results.into_iter().next() else {
            break;
        };
        let (symbol, _, layout) = pending.remove(i);
        match result {
            Ok((base, best, second)) => {
                log::debug!("{symbol} at {base:#x}: {best} fields (runner-up score {second})");
                claimed.push(base..base.saturating_add(struct_size(&layout)));
                out.votes.push(Evidence {
                    symbol: symbol.to_string(),
                    method: "fields",
                    support: best,
                    against: second,
                });
                out.addresses.insert(symbol.to_string(), base);
            }
            Err(why) => out.warnings.push(format!(
                "no symbol table: cannot locate {symbol} from code: {why}"
            )),
        }
    }
    let scalars = match bin.arch() {
        Arch::X86_64 => [
            ("runtime.gomaxprocs", gomaxprocs(bin)),
            ("runtime.runtimeInitTime", runtime_init_time(bin)),
            ("runtime.gcphase", gcphase(bin)),
        ],
        Arch::Aarch64 => [
            ("runtime.gomaxprocs", globals_arm64::gomaxprocs(bin)),
            (
                "runtime.runtimeInitTime",
                globals_arm64::runtime_init_time(bin),
            ),
            (
                "runtime.gcphase",
                gcphase_agreed(globals_arm64::gcphase(bin)),
            ),
        ],
    };
    for (symbol, found) in scalars {
        match found {
            Ok(addr) if data.iter().any(|r| (r.start..r.end).contains(&addr)) => {
                out.addresses.insert(symbol.to_string(), addr);
            }
            Ok(addr) => out.warnings.push(format!(
                "no symbol table: {symbol} candidate {addr:#x} is outside the data sections"
            )),
            Err(why) => out
                .warnings
                .push(format!("no symbol table: cannot locate {symbol}: {why}")),
        }
    }
    out
}

/// Picks the base that best explains the accesses. A candidate base B scores the
/// distinct fields whose start some target hits, minus the distinct targets that fall
/// inside `[B, B + size)` but on no field start. The second term is what separates the
/// true base from a base shifted by a word (which hits runs of adjacent fields too but
/// lands every other access mid-field) and from bases inside *another* densely accessed
/// global (a struct of consecutive 8-byte fields "fits" anywhere there). Interior
/// accesses to arrays and nested structs cost the true base a little; they cost wrong
/// bases far more. Returns (base, distinct fields hit, runner-up's score).
fn vote(
    targets: &BTreeSet<u64>,
    layout: &StructLayout,
    data: &[DataRange],
    claimed: &[Range<u64>],
) -> VoteResult {
    let offsets: BTreeSet<u64> = layout.fields.values().copied().collect();
    let size = struct_size(layout);
    let mut bases: BTreeSet<u64> = BTreeSet::new();
    for &t in targets {
        for &o in &offsets {
            // Structs with 8-byte fields are 8-aligned on 64-bit targets.
            if let Some(base) = t.checked_sub(o).filter(|b| b % 8 == 0) {
                bases.insert(base);
            }
        }
    }
    // (score, hits, base)
    let mut ranked: Vec<(i64, usize, u64)> = Vec::new();
    for base in bases {
        let Some(end) = base.checked_add(size) else {
            continue;
        };
        if !data.iter().any(|r| base >= r.start && end <= r.end)
            || claimed.iter().any(|c| c.start < end && base < c.end)
        {
            continue;
        }
        let mut hits = 0usize;
        let mut misses = 0usize;
        for &t in targets.range(base..end) {
            if offsets.contains(&(t - base)) {
                hits += 1;
            } else {
                misses += 1;
            }
        }
        let score = i64::try_from(hits).unwrap_or(i64::MAX) - i64::try_from(misses).unwrap_or(0);
        ranked.push((score, hits, base));
    }
    ranked.sort_by(|a, b| b.cmp(a));
    for (score, hits, base) in ranked.iter().take(3) {
        log::debug!("candidate {base:#x}: score {score}, {hits} fields");
    }
    let Some(&(best, hits, base)) = ranked.first() else {
        return Err("no access to any of its fields found".into());
    };
    let (second, second_base) = ranked.get(1).map_or((0, 0), |r| (r.0.max(0), r.2));
    if hits < MIN_DISTINCT_FIELDS || best < i64::try_from(MIN_DISTINCT_FIELDS).unwrap_or(0) {
        return Err(format!(
            "best candidate {base:#x} explains only {hits} field(s) (score {best}), \
             need {MIN_DISTINCT_FIELDS}"
        ));
    }
    // A clear winner, or nothing. The usual runner-up is the true base shifted by a word,
    // which still hits runs of adjacent 8-byte fields: on Go 1.19–1.27 it scores about
    // three quarters of the winner (e.g. 24 vs 33), unrelated regions less.
    if best - second < (best / 8).max(3) {
        return Err(format!(
            "ambiguous: {base:#x} scores {best}, {second_base:#x} scores {second}"
        ));
    }
    Ok((base, hits, usize::try_from(second).unwrap_or(0)))
}

/// The struct's size: DWARF's, else one word past the last field.
fn struct_size(layout: &StructLayout) -> u64 {
    layout
        .size
        .or_else(|| layout.fields.values().max().map(|o| o + 8))
        .unwrap_or(0)
}

/// Methods on a struct global are called with `&global` as receiver
/// ([`receivers::receivers`]): `runtime.setGCPercent`, `gcStart`, `gcMarkTermination`
/// and friends do this with `gcController`. Every such site in the runtime must name
/// the same address, bar a stray minority (at most one in five: a LEA of another
/// pointer argument can precede a call); `Ok(None)` when there are too few sites to
/// tell (e.g. `workType` has no methods).
/// Returns (address, sites naming it, sites naming others).
fn receiver_of(bin: &GoBinary, ty: &str) -> Result<Option<(u64, usize, usize)>, String> {
    let Some(short) = ty.strip_prefix("runtime.") else {
        return Ok(None);
    };
    let method_prefix = format!("runtime.(*{short}).");
    let is_method = |name: &str| name.starts_with(&method_prefix);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for f in bin.functions_with_prefix("runtime.") {
        for base in receivers::receivers(bin, &f, &is_method) {
            *seen.entry(base).or_default() += 1;
        }
    }
    // A stray match (a LEA of something else whose call happens to follow) is
    // outvoted; a real disagreement is not guessed through.
    let total: usize = seen.values().sum();
    let Some((&base, &n)) = seen.iter().max_by_key(|(_, n)| **n) else {
        return Ok(None);
    };
    if n >= MIN_RECEIVER_SITES && n * 5 >= total * 4 {
        return Ok(Some((base, n, total - n)));
    }
    if n < MIN_RECEIVER_SITES && seen.len() == 1 {
        return Ok(None);
    }
    Err(format!(
        "{method_prefix}* receivers disagree: {}",
        seen.iter()
            .map(|(a, n)| format!("{a:#x} ({n}x)"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `GOMAXPROCS(n)` reads `ret := int(gomaxprocs)` under `sched.lock` before anything
/// else it loads (1.19–1.27): the first 4-byte RIP-relative *load* (MOV/MOVSXD into a
/// register) in `runtime.GOMAXPROCS`. The lock itself is taken by address (LEA), and
/// 1.25's `MOVB $1, sched.customGOMAXPROCS` is a store, so neither matches.
fn gomaxprocs(bin: &GoBinary) -> Result<u64, String> {
    let f = bin
        .function("runtime.GOMAXPROCS")
        .ok_or("runtime.GOMAXPROCS not found")?;
    instructions::decode(bin, &f)
        .iter()
        .find(|i| {
            i.is_ip_rel_memory_operand()
                && matches!(i.mnemonic(), Mnemonic::Mov | Mnemonic::Movsxd)
                && i.op0_kind() == OpKind::Register
                && i.op1_kind() == OpKind::Memory
                && i.memory_size().size() == 4
        })
        .map(|i| i.ip_rel_memory_address())
        .ok_or_else(|| "no 4-byte global load in runtime.GOMAXPROCS".into())
}

/// `&runtimeInitTime`, either architecture (see [`runtime_init_time`]).
pub(crate) fn runtime_init_time_of(bin: &GoBinary) -> Result<u64, String> {
    match bin.arch() {
        Arch::X86_64 => runtime_init_time(bin),
        Arch::Aarch64 => globals_arm64::runtime_init_time(bin),
    }
}

/// `runtime.main` does `runtimeInitTime = nanotime()`: the first 8-byte store of a
/// register to a RIP-relative address within a few instructions after a call to
/// `runtime.nanotime1` (nanotime is inlined down to it) or `runtime.nanotime`.
fn runtime_init_time(bin: &GoBinary) -> Result<u64, String> {
    const WINDOW: usize = 6;
    let f = bin
        .function("runtime.main")
        .ok_or("runtime.main not found")?;
    let code = instructions::decode(bin, &f);
    for (i, ins) in code.iter().enumerate() {
        if !ins.is_call_near() {
            continue;
        }
        let callee = bin.function_at(ins.near_branch_target());
        if !callee.is_some_and(|c| c.name.starts_with("runtime.nanotime")) {
            continue;
        }
        let store = code.iter().skip(i + 1).take(WINDOW).find(|s| {
            s.is_ip_rel_memory_operand()
                && s.code() == Code::Mov_rm64_r64
                && s.op0_kind() == OpKind::Memory
        });
        if let Some(s) = store {
            return Ok(s.ip_rel_memory_address());
        }
    }
    Err("no store of nanotime()'s result in runtime.main".into())
}

/// `setGCPhase(x)` (inlined into the GC functions, or standalone) starts with
/// `atomic.Store(&gcphase, x)` and then re-reads `gcphase`:
/// `LEA r, [gcphase]; XCHG [r], r32; MOV r32', [gcphase]`. Every occurrence among the
/// `runtime.gc*`/`runtime.setGCPhase` functions must agree.
fn gcphase(bin: &GoBinary) -> Result<u64, String> {
    let mut found: BTreeSet<u64> = BTreeSet::new();
    let mut functions = bin.functions_with_prefix("runtime.gc");
    functions.extend(bin.function("runtime.setGCPhase"));
    for f in &functions {
        let code = instructions::decode(bin, f);
        for w in code.windows(3) {
            let (lea, xchg, load) = (&w[0], &w[1], &w[2]);
            if lea.mnemonic() != Mnemonic::Lea || !lea.is_ip_rel_memory_operand() {
                continue;
            }
            let reg = lea.op0_register();
            let xchg_ok = xchg.mnemonic() == Mnemonic::Xchg
                && xchg.op0_kind() == OpKind::Memory
                && xchg.memory_base() == reg
                && xchg.memory_index() == Register::None
                && xchg.memory_displacement64() == 0
                && xchg.memory_size().size() == 4;
            let load_ok = load.mnemonic() == Mnemonic::Mov
                && load.is_ip_rel_memory_operand()
                && load.op1_kind() == OpKind::Memory
                && load.ip_rel_memory_address() == lea.ip_rel_memory_address();
            if xchg_ok && load_ok {
                found.insert(lea.ip_rel_memory_address());
            }
        }
    }
    gcphase_agreed(found)
}

/// The one address every `setGCPhase` site (either architecture's pattern) named.
pub(crate) fn gcphase_agreed(found: BTreeSet<u64>) -> Result<u64, String> {
    match found.len() {
        1 => found
            .into_iter()
            .next()
            .ok_or_else(|| "no setGCPhase pattern".into()),
        0 => Err("no inlined setGCPhase (atomic store then reload) found".into()),
        n => Err(format!(
            "setGCPhase pattern matched {n} different addresses"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(fields: &[(&str, u64)], size: u64) -> StructLayout {
        StructLayout {
            size: Some(size),
            fields: fields.iter().map(|(n, o)| (n.to_string(), *o)).collect(),
        }
    }

    #[test]
    fn vote_finds_the_base_explaining_most_fields() {
        let l = layout(&[("a", 0), ("b", 8), ("c", 16), ("d", 24), ("e", 64)], 128);
        let data = [DataRange {
            start: 0x1000,
            end: 0x2000,
        }];
        let base = 0x1100;
        let targets: BTreeSet<u64> = [0, 8, 16, 24, 64].iter().map(|o| base + o).collect();
        let (b, best, _) = vote(&targets, &l, &data, &[]).unwrap();
        assert_eq!((b, best), (base, 5));
        // Too few witnesses.
        let few: BTreeSet<u64> = [base, base + 8].into_iter().collect();
        assert!(vote(&few, &l, &data, &[]).is_err());
        // Outside any data section.
        let outside: BTreeSet<u64> = [0, 8, 16, 24].iter().map(|o| 0x5000 + o).collect();
        assert!(vote(&outside, &l, &data, &[]).is_err());
        // Not overlapping a global already placed.
        let claimed: Vec<Range<u64>> = std::iter::once(base - 8..base + 8).collect();
        assert!(vote(&targets, &l, &data, &claimed).is_err());
    }
}
