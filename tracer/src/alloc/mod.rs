//! Allocation tracing: turning the kernel's per-CPU allocation counts into what the
//! runtime would count, by type, size class and call site.

pub mod collector;
pub mod live;
pub mod sizeclass;

pub use collector::{Collector, Resolver};
pub use live::{AllocMode, LiveAllocs};
