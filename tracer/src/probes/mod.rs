//! Probes: which runtime functions to instrument for a given binary ([`plan`]) and the
//! loading and attaching of the kernel programs ([`loader`]).

mod alloc_plan;
pub mod code;
mod cycle_plan;
pub mod loader;
pub mod multi;
pub mod plan;
mod reads;
pub mod unreleased;

pub use alloc_plan::{plan_allocs, AllocPlan, MALLOCGC};
pub use loader::{AllocMaps, AttachError, KernelCounters, Probes, Scope};
pub use plan::{
    plan, plan_with, PlanError, ProbePlan, ProbeSite, ReadField, ReadSlot, StopsMode, StwScheme,
};
