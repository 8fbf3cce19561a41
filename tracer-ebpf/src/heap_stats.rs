//! The runtime's own allocation counts, summed where it keeps them: `memstats.heapStats`
//! is not one word but three generations of per-kind counters (user space says where,
//! `tracer::probes::heap_stats`), so the kernel adds them up at the probe.

use aya_ebpf::helpers::bpf_probe_read_user;
use tracer_common::{
    Config, HEAP_LARGE_BYTES_WORD, HEAP_LARGE_OBJECTS_WORD, HEAP_STATS_GENS, HEAP_STATS_MAX_WORDS,
};

/// Sums over the generations of `memstats.heapStats`.
pub struct HeapSums {
    /// What `MemStats.Mallocs` adds up.
    pub objects: u64,
    /// `largeAlloc`: bytes of large objects.
    pub large_bytes: u64,
    /// `largeAllocCount`: large objects.
    pub large_objects: u64,
}

/// What `MemStats.Mallocs` adds up, read where the runtime keeps it: the object counts
/// of `memstats.heapStats`'s three generations (`base` = `stats[0].tinyAllocCount`), 8
/// words per read, and the large objects' words beside them. `None` when a read faults:
/// a partial sum would be a wrong count.
#[inline(always)]
pub fn heap_stats_sums(base: u64, config: &Config) -> Option<HeapSums> {
    let words = (config.heap_stats_words as usize).min(HEAP_STATS_MAX_WORDS);
    let stride = u64::from(config.heap_stats_stride);
    let mut sum: u64 = 0;
    let mut large_bytes: u64 = 0;
    let mut large_objects: u64 = 0;
    let mut g = 0;
    while g < HEAP_STATS_GENS {
        let gen = base.wrapping_add(g as u64 * stride);
        let mut c = 0;
        while c < HEAP_STATS_MAX_WORDS / 8 && c * 8 < words {
            let at = gen.wrapping_add(64 * c as u64);
            // SAFETY: a helper reading target memory; faults are returned, not taken.
            let chunk = unsafe { bpf_probe_read_user(at as *const [u64; 8]) }.ok()?;
            let mut j = 0;
            while j < 8 {
                let i = c * 8 + j;
                if i < words && tracer_common::heap_stats_counts(i) {
                    sum = sum.wrapping_add(chunk[j]);
                }
                if i == HEAP_LARGE_BYTES_WORD {
                    large_bytes = large_bytes.wrapping_add(chunk[j]);
                }
                if i == HEAP_LARGE_OBJECTS_WORD {
                    large_objects = large_objects.wrapping_add(chunk[j]);
                }
                j += 1;
            }
            c += 1;
        }
        g += 1;
    }
    Some(HeapSums {
        objects: sum,
        large_bytes,
        large_objects,
    })
}
