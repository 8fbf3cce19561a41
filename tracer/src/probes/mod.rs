//! Probes: from a binary to its plan ([`analyse`]), which runtime functions to instrument
//! ([`plan`]), and the loading and attaching of the kernel programs ([`loader`]).

mod alloc_plan;
mod analysis;
pub mod code;
mod cycle_plan;
pub(crate) mod heap_stats;
pub(crate) mod loader;
pub(crate) mod multi;
pub mod plan;
mod reads;
mod scheme;
mod sites;
pub(crate) mod unreleased;

pub use alloc_plan::{plan_allocs, AllocMode, AllocPlan, MALLOCGC};
pub use analysis::{analyse, host_mismatch};
pub use loader::{AllocMaps, AttachError, KernelCounters, Probes, Scope};
pub use plan::{plan, plan_with, ProbePlan};
pub use reads::{ReadField, ReadSlot};
pub use scheme::{StopsMode, StwScheme};
pub use sites::{PlanError, ProbeSite};
