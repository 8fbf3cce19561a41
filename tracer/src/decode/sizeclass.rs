//! How the Go runtime counts the bytes of one allocation (`MemStats.TotalAlloc`): rounded
//! up to its size class, with an 8-byte header for larger pointerful objects (Go 1.22+),
//! whole pages for large objects, and tiny objects packed 16 bytes to a block.
//!
//! The size-class table is identical in every Go release from 1.19 to 1.27
//! (runtime/sizeclasses.go, internal/runtime/gc/sizeclasses.go from 1.24).

/// `class_to_size`: byte size of each size class (class 0 = large objects).
const CLASS_TO_SIZE: [u16; 68] = [
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
    2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];

/// `class_to_allocnpages`: pages in one span of each size class (same table, same
/// releases).
const CLASS_TO_NPAGES: [u8; 68] = [
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8,
    3, 10, 7, 4,
];

/// The most allocations one P's mcache can hold that the runtime's counters
/// (`memstats.heapStats`, `gcController.totalAlloc`) do not show yet: they count a span's
/// objects when the mcache gives the span back, so each cached span (one per size class,
/// with and without pointers) may hide all its slots, and tiny allocations packed into
/// earlier blocks (up to 15 more per 16-byte block of the tiny span, `c.tinyAllocs`)
/// wait for the tiny span's turn. Large objects are counted at once. 14,644.
pub const MAX_UNCOUNTED_PER_P: u64 = max_uncounted_per_p();

const fn max_uncounted_per_p() -> u64 {
    let mut slots = 0;
    let mut c = 1;
    while c < CLASS_TO_SIZE.len() {
        slots += CLASS_TO_NPAGES[c] as u64 * PAGE_SIZE / CLASS_TO_SIZE[c] as u64;
        c += 1;
    }
    let tiny_blocks = PAGE_SIZE / TINY_SIZE;
    // Scan and noscan spans of every class, the tiny allocations beside the tiny blocks,
    // and the block in use (`c.tiny`).
    2 * slots + (TINY_SIZE - 1) * tiny_blocks + TINY_SIZE
}

/// `_MaxSmallSize`: larger objects get their own span.
pub const MAX_SMALL_SIZE: u64 = 32768;
/// `maxTinySize`: smaller pointer-free objects share 16-byte blocks.
pub const TINY_SIZE: u64 = 16;
/// `mallocHeaderSize` and `minSizeForMallocHeader` (Go 1.22+).
const MALLOC_HEADER: u64 = 8;
const MIN_SIZE_FOR_HEADER: u64 = 512;
const PAGE_SIZE: u64 = 8192;

/// Rules that differ between Go versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Go 1.22+ puts an 8-byte type header before pointerful objects over 512 bytes.
    pub malloc_header: bool,
}

impl Rules {
    pub fn for_minor(minor: u32) -> Rules {
        Rules {
            malloc_header: minor >= 22,
        }
    }
}

/// How one allocation is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// A tiny object: the runtime charges 16 bytes per block, shared by several objects;
    /// the value is this object's share (its size, aligned as the tiny allocator does).
    Tiny(u64),
    /// Rounded to a size class (the class's byte size).
    Small(u64),
    /// Whole pages.
    Large(u64),
}

impl Counted {
    pub fn bytes(self) -> u64 {
        match self {
            Counted::Tiny(b) | Counted::Small(b) | Counted::Large(b) => b,
        }
    }
}

/// The size class that holds `size` bytes (1..=67), like `size_to_class8/128`.
pub fn class_of(size: u64) -> Option<usize> {
    if size > MAX_SMALL_SIZE {
        return None;
    }
    // The table is sorted: the first class at least as large.
    CLASS_TO_SIZE
        .iter()
        .skip(1)
        .position(|&c| u64::from(c) >= size)
        .map(|i| i + 1)
}

/// Byte size of size class `class`.
pub fn class_size(class: usize) -> Option<u64> {
    CLASS_TO_SIZE.get(class).map(|&c| u64::from(c))
}

/// How the runtime counts an allocation of `size` bytes of a type with or without
/// pointers (`noscan`: no pointers, or no type).
pub fn count(size: u64, noscan: bool, rules: Rules) -> Counted {
    if noscan && size < TINY_SIZE {
        // mallocgcTiny aligns the offset in the block to the object's natural alignment.
        let align = if size & 7 == 0 {
            8
        } else if size & 3 == 0 {
            4
        } else if size & 1 == 0 {
            2
        } else {
            1
        };
        return Counted::Tiny(size.max(1).div_ceil(align) * align);
    }
    // Go 1.22+: `size <= maxSmallSize-mallocHeaderSize` decides small vs large, before
    // the header is added; large objects keep their type in the span (no header).
    let small_limit = if rules.malloc_header {
        MAX_SMALL_SIZE - MALLOC_HEADER
    } else {
        MAX_SMALL_SIZE
    };
    if size > small_limit {
        return Counted::Large(size.div_ceil(PAGE_SIZE) * PAGE_SIZE);
    }
    let size = if rules.malloc_header && !noscan && size > MIN_SIZE_FOR_HEADER {
        size + MALLOC_HEADER
    } else {
        size
    };
    match class_of(size).and_then(class_size) {
        Some(bytes) => Counted::Small(bytes),
        None => Counted::Large(size.div_ceil(PAGE_SIZE) * PAGE_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: Rules = Rules {
        malloc_header: true,
    };
    const OLD: Rules = Rules {
        malloc_header: false,
    };

    #[test]
    fn classes() {
        assert_eq!(class_of(1), Some(1));
        assert_eq!(class_of(8), Some(1));
        assert_eq!(class_of(9), Some(2));
        assert_eq!(class_of(32768), Some(67));
        assert_eq!(class_of(32769), None);
        assert_eq!(class_size(5), Some(48));
    }

    #[test]
    fn counting_follows_the_runtime() {
        assert_eq!(count(5, true, NEW), Counted::Tiny(5));
        assert_eq!(count(6, true, NEW), Counted::Tiny(6));
        assert_eq!(count(12, true, NEW), Counted::Tiny(12));
        assert_eq!(count(12, false, NEW), Counted::Small(16));
        assert_eq!(count(33, true, NEW), Counted::Small(48));
        // 600-byte pointerful object: header pushes it to 608 -> class 640.
        assert_eq!(count(600, false, NEW), Counted::Small(640));
        assert_eq!(count(600, false, OLD), Counted::Small(640));
        // 1024 with pointers: 1032 -> 1152 with the header, 1024 without.
        assert_eq!(count(1024, false, NEW), Counted::Small(1152));
        assert_eq!(count(1024, false, OLD), Counted::Small(1024));
        assert_eq!(count(1024, true, NEW), Counted::Small(1024));
        assert_eq!(count(40_000, true, NEW), Counted::Large(40_960));
        assert_eq!(count(32_768, false, NEW), Counted::Large(32_768));
        assert_eq!(count(32_765, true, NEW), Counted::Large(32_768));
        assert_eq!(count(32_765, true, OLD), Counted::Small(32_768));
    }

    #[test]
    fn uncounted_bound_adds_up_every_cached_span() {
        // 3,474 slots over one span of each class 1-67, twice, + 15 x 512 + 16.
        assert_eq!(MAX_UNCOUNTED_PER_P, 2 * 3474 + 15 * 512 + 16);
    }
}
