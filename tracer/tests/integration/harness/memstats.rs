//! What gcload's -memstats-out writes at exit: runtime.MemStats and a few figures of its
//! own, the second oracle beside gctrace.

use std::fs;
use std::path::Path;

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemStats {
    #[serde(rename = "NumGC")]
    pub num_gc: u32,
    #[serde(rename = "NumForcedGC")]
    pub num_forced_gc: u32,
    pub pause_ns: Vec<u64>,
    pub pause_ns_first_cycle: u32,
    pub total_alloc: u64,
    pub mallocs: u64,
    pub read_mem_stats_calls: u64,
    /// runtime.NumCgoCall(): above zero in a cgo build (absent from old gcload builds).
    #[serde(default)]
    pub num_cgo_call: u64,
    /// Wall time of the program's main, up to the end of its work.
    #[serde(default)]
    pub elapsed_ns: u64,
    /// -stw-loop: the longest single ReadMemStats call (absent from old gcload builds).
    #[serde(default)]
    pub max_read_mem_stats_ns: u64,
    /// gcload -large-every: the bytes of its large objects (absent from old builds).
    #[serde(default)]
    pub large_bytes: u64,
}

impl MemStats {
    pub fn read(path: &Path) -> MemStats {
        let text =
            fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}: {text}", path.display()))
    }

    /// MemStats.PauseNs of `cycle`, when still in the runtime's 256-entry buffer.
    pub fn pause_of(&self, cycle: u32) -> Option<u64> {
        let index = cycle.checked_sub(self.pause_ns_first_cycle)?;
        self.pause_ns.get(index as usize).copied()
    }
}
