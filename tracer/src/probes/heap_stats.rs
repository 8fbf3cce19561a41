//! Where the runtime keeps its own allocation count: `memstats.heapStats`, the
//! `consistentHeapStats` that `MemStats.Mallocs` and `/gc/heap/allocs:objects` are summed
//! from (`readmemstats_m`: `tinyAllocCount + largeAllocCount + Σ smallAllocCount`, over
//! the three generations of `stats`). Not one word, so the kernel program adds it up
//! ([`tracer_common::Config::heap_stats_stride`]) and user space's samples do the same
//! ([`HeapStats::objects`]).
//!
//! The counts move when an mcache gives a span back (`mcache.refill`, `releaseAll`), as
//! `gcController.totalAlloc` does, so a reading lags the true count by what the cached
//! spans hold ([`crate::decode::sizeclass::MAX_UNCOUNTED_PER_P`]). Large objects are
//! counted at once.
//!
//! Located from DWARF only: `heapStatsDelta` lost `inPtrScalarBits` in Go 1.25, and no
//! code anchors its fields, so a stripped binary has no count (the caller warns).

use crate::binary::GoBinary;
use tracer_common::{
    heap_stats_counts, HEAP_LARGE_BYTES_WORD, HEAP_LARGE_OBJECTS_WORD, HEAP_STATS_GENS,
    HEAP_STATS_MAX_WORDS,
};

/// What `--allocs sample` loses without it (its warning).
pub const WITHOUT: &str = "the runtime's own object count (memstats.heapStats, located through \
     DWARF only): the objects total is the sampling bursts' estimate, which runs low (every \
     allocation traps during a burst, which slows small-object loops most) by more than its \
     stated error, and one scale serves all sizes, so large objects rare enough for most \
     bursts to miss get a share as wrong as the bursts' luck";

const DELTA: &str = "runtime.heapStatsDelta";

/// The counting words of `memstats.heapStats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// From `&memstats.heapStats` to `stats[0].tinyAllocCount`.
    pub offset: u64,
    /// `sizeof(heapStatsDelta)`: from one generation to the next.
    pub stride: u32,
    /// Words from `tinyAllocCount` to the end of `smallAllocCount`.
    pub words: u32,
}

impl HeapStats {
    /// The object count of one reading: `gens` holds [`HEAP_STATS_GENS`] generations of
    /// [`HeapStats::words`] words each, back to back.
    pub fn objects(&self, gens: &[Vec<u64>]) -> u64 {
        gens.iter()
            .flat_map(|g| {
                g.iter()
                    .take(self.words as usize)
                    .enumerate()
                    .filter(|(i, _)| heap_stats_counts(*i))
                    .map(|(_, w)| *w)
            })
            .fold(0u64, u64::wrapping_add)
    }

    /// Bytes and count of the large objects of one reading (as [`HeapStats::objects`]),
    /// summed as the kernel sums them beside the object count.
    pub fn large(&self, gens: &[Vec<u64>]) -> (u64, u64) {
        let word = |i: usize| {
            gens.iter()
                .filter_map(|g| g.get(i))
                .fold(0u64, |a, w| a.wrapping_add(*w))
        };
        (word(HEAP_LARGE_BYTES_WORD), word(HEAP_LARGE_OBJECTS_WORD))
    }
}

/// The layout of `heapStats` in `bin`, when its DWARF shows the one the kernel's sum
/// assumes: three generations of `tinyAllocCount, largeAlloc, largeAllocCount,
/// smallAllocCount[N]` in that order (Go 1.19–1.27).
pub fn locate(bin: &GoBinary) -> Option<HeapStats> {
    if !bin.has_dwarf() {
        return None;
    }
    let off = |ty: &str, f: &str| bin.struct_field_offset(ty, f);
    let stats = off("runtime.consistentHeapStats", "stats")?;
    let gen = off("runtime.consistentHeapStats", "gen")?;
    let tiny = off(DELTA, "tinyAllocCount")?;
    let large_bytes = off(DELTA, "largeAlloc")?;
    let large_count = off(DELTA, "largeAllocCount")?;
    let small = off(DELTA, "smallAllocCount")?;
    let large_free = off(DELTA, "largeFree")?;
    let small_free = off(DELTA, "smallFreeCount")?;
    // `smallFreeCount` has as many words as `smallAllocCount` and ends the struct.
    let stride = small_free.checked_add(large_free.checked_sub(small)?)?;
    let words = large_free.checked_sub(tiny)? / 8;
    let fits = large_bytes == tiny + 8 * HEAP_LARGE_BYTES_WORD as u64
        && large_count == tiny + 8 * HEAP_LARGE_OBJECTS_WORD as u64
        && small == tiny + 24
        && (large_free - tiny) % 8 == 0
        && words as usize <= HEAP_STATS_MAX_WORDS
        && gen.checked_sub(stats)? == HEAP_STATS_GENS as u64 * stride;
    fits.then_some(HeapStats {
        offset: stats.checked_add(tiny)?,
        stride: u32::try_from(stride).ok()?,
        words: u32::try_from(words).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_skip_the_large_bytes_word() {
        let h = HeapStats {
            offset: 48,
            stride: 1176,
            words: 5,
        };
        // tiny 1, largeAlloc 1000 (bytes), largeAllocCount 2, small 3 and 4, then a
        // word past the counts (largeFree) that must not count.
        let gen = vec![1, 1000, 2, 3, 4, 9999];
        assert_eq!(h.objects(&[gen.clone(), gen.clone(), vec![0; 6]]), 20);
        assert_eq!(h.large(&[gen.clone(), gen, vec![0; 6]]), (2000, 4));
    }
}
