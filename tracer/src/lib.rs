//! gctrace-bpf: what the garbage collector of an unmodified, running Go program is doing,
//! seen from eBPF uprobes.
//!
//! Data flows one way, one folder per stage, and no stage imports a later one:
//! [`binary`] (which functions, return sites, offsets) → [`probes`] (what to attach, and
//! attaching it) → [`decode`] (raw kernel events → [`decode::events`]) → [`model`]
//! (aggregation into [`model::records`], findings, what-if) → [`output`] (gctrace text,
//! JSON, metrics, the terminal UI, reports).
//! [`recording`] stores the raw events of a run for replay; [`session`] wires the stages
//! together for a live run or a replay; [`cli`] is the command line.

pub mod binary;
pub mod cli;
pub(crate) mod clock;
pub mod decode;
pub mod errors;
pub mod model;
pub mod output;
pub mod probes;
pub mod recording;
pub mod session;
pub(crate) mod sys;
pub(crate) mod units;
