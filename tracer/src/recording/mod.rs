//! Recordings: everything a live run saw, kept so it can be replayed through the same
//! decoder and model, summarised for a postmortem, or exported.
//!
//! Layout (docs/trace-format.md has the full description):
//!
//! ```text
//! "GCTRACE\0" | u32 format version | u32 header length | header (JSON: Header)
//! block*      : "BLK1" | u32 payload length | u32 crc32(payload) | payload (deflate)
//! payload     : frame*  — u8 kind | u32 length | bytes
//! ```
//!
//! Frames hold the raw kernel events exactly as they arrived (so replay runs the live
//! decoding code), the allocation batches (already resolved: replay has no process to ask
//! for type names), and an end frame with the kernel's drop counter. Blocks are written
//! and flushed as they fill and at least every second, each checksummed, so a tracer
//! killed mid-run leaves a file whose intact blocks replay.

mod old_event;
mod reader;
mod writer;

pub use reader::{Item, ReadError, Reader};
pub use writer::Recorder;

use serde::{Deserialize, Serialize};

use crate::binary::OffsetsSource;
use crate::decode::DecodeSpec;
use crate::model::records::ProcessInfo;
use crate::probes::AllocMode;

/// First bytes of every recording.
pub const MAGIC: &[u8; 8] = b"GCTRACE\0";
/// Version of the layout this build writes (and the newest it reads; older ones read the
/// same). 2: raw events may be [`tracer_common::ProbeKind::StopPaired`], which a version-1
/// reader would count as undecodable rather than show as stops. 3: raw events may be
/// [`tracer_common::ProbeKind::GcDone`] and [`tracer_common::ProbeKind::StopNamed`] (the
/// default plan of one hit per GC cycle), which a version-2 reader would drop. 4: raw
/// events have 64 read slots (624 bytes, a u64 mask), for the pacer's memory counters; a
/// version-3 reader would reject them. Events of versions 1–3 (360 bytes) are widened.
/// 5: read slots may hold the large objects' counts (`LargeAllocBytes`,
/// `LargeAllocObjects`) and allocation batches their large parts, which a version-4
/// reader would reject as an unknown slot; older files replay with one scale for all
/// sizes, as they were made.
pub const FORMAT_VERSION: u32 = 5;
/// First bytes of every block.
pub const BLOCK_MAGIC: &[u8; 4] = b"BLK1";
/// Largest header and block accepted when reading (anything larger is corruption).
pub const MAX_HEADER: u32 = 1 << 20;
pub const MAX_BLOCK: u32 = 16 << 20;

/// Frame kinds.
pub(crate) mod frame {
    /// A `tracer_common::RawEvent`, as the kernel sent it.
    pub const RAW_EVENT: u8 = 1;
    /// An `AllocBatch`, JSON.
    pub const ALLOC_BATCH: u8 = 2;
    /// End of the run: u64 kernel events lost, then an i32 exit status (or -1).
    pub const END: u8 = 3;
}

/// What is known about the run before its first event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// gctrace-bpf version that wrote the file.
    pub tracer_version: String,
    pub process: ProcessInfo,
    /// How to decode the raw events (Go version's register usage, read slots).
    pub decode: DecodeSpec,
    /// Where the struct offsets came from ("dwarf", "table", "code", "none").
    pub offsets_source: OffsetsSource,
    /// `--allocs` mode of the run ("rate", "sample", "exact").
    pub allocs: AllocMode,
    /// Wall clock (Unix ns) and monotonic clock (ns) at the start, to place events in time.
    pub start_unix_ns: i64,
    pub start_monotonic_ns: u64,
}

/// How the recording ended (the end frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct End {
    pub lost_events: u64,
    pub exit_status: Option<i32>,
}

#[cfg(test)]
mod tests;
