//! The allocation probes (`--allocs exact|sample`): which allocation entry points to probe.

use super::sites::{entry_site, required, PlanError, ProbeSite};
use crate::binary::GoBinary;
use tracer_common::ProbeKind;

/// `--allocs`. Serialized (in recording headers) as "rate", "sample", "exact": the names
/// headers written before it was an enum already used.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AllocMode {
    /// Allocation rate from the runtime's own counter; no allocation probes (default).
    Rate,
    /// Probes attached in short bursts within the overhead budget; counts extrapolated.
    Sample,
    /// Every allocation counted; costs one probe hit per allocation.
    Exact,
}

/// `runtime.mallocgc`: every allocation up to Go 1.26 (by default) passes through it.
pub const MALLOCGC: &str = "runtime.mallocgc";

/// Go 1.27 (and 1.26 with GOEXPERIMENT=sizespecializedmalloc): size-specialised entry
/// points the compiler calls directly (cmd/compile ssagen `specializedMallocSym`), so most
/// small allocations never enter mallocgc. Their slow paths are called from them and are
/// not entry points.
const SPECIALISED_MALLOC_PREFIXES: [&str; 3] = [
    "runtime.mallocgcSmallScanNoHeaderSC",
    "runtime.mallocgcSmallNoScanSC",
    "runtime.mallocgcTinySC",
];

/// Probes for counting every allocation.
#[derive(Clone, Debug)]
pub struct AllocPlan {
    /// Entry of mallocgc and of every size-specialised allocation function present.
    pub sites: Vec<ProbeSite>,
    /// Link-time range of mallocgc: entries called from inside it are counted there.
    pub mallocgc: (u64, u64),
}

/// Decide the allocation probes for `bin` (used by `--allocs exact|sample`).
pub fn plan_allocs(bin: &GoBinary) -> Result<AllocPlan, PlanError> {
    let mallocgc = required(bin, MALLOCGC, "allocations")?;
    let mut sites = vec![entry_site(bin, ProbeKind::Alloc, &mallocgc)?];
    for prefix in SPECIALISED_MALLOC_PREFIXES {
        for f in bin.functions_with_prefix(prefix) {
            let suffix = &f.name[prefix.len()..];
            // SC<N> only: not the slow paths, not ABI wrappers.
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) {
                sites.push(entry_site(bin, ProbeKind::Alloc, &f)?);
            }
        }
    }
    Ok(AllocPlan {
        sites,
        mallocgc: (mallocgc.address, mallocgc.end()),
    })
}
