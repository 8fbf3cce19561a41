//! Probes: which runtime functions to instrument for a given binary ([`plan`]) and the
//! loading and attaching of the kernel programs ([`loader`]).

pub mod code;
mod cycle_plan;
pub mod loader;
pub mod multi;
pub mod plan;
pub mod unreleased;

pub use loader::{AllocMaps, AttachError, KernelCounters, Probes};
pub use plan::{
    plan, plan_allocs, plan_with, AllocPlan, PlanError, ProbePlan, ProbeSite, ReadField, ReadSlot,
    StopsMode, StwScheme,
};
