//! gctrace-bpf: what the garbage collector of an unmodified, running Go program is doing,
//! seen from eBPF uprobes.
//!
//! Data flows one way, one module per stage:
//! [`binary`] (which functions, return sites, offsets) → [`probes`] (load and attach the
//! kernel programs) → [`decode`] (raw kernel events → [`events`]) → [`model`]
//! (aggregation into [`records`]) → [`output`] (JSON, gctrace text) or [`tui`] (live
//! terminal UI).
//! [`session`] wires the stages together for a live run; [`launch`] starts a command
//! under tracing; [`cli`] is the command line.

pub mod binary;
pub mod cgroup;
pub mod cli;
pub mod clock;
pub mod decode;
pub mod errors;
pub mod labels;
pub mod launch;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod probes;
pub mod recording;
pub mod replay;
pub mod session;
pub mod sys;
pub mod target;
pub mod units;
