//! Kernel allocation maps (cumulative, per type and size, per call site) → the
//! [`AllocBatch`] of what was allocated since the previous collection, counted as the
//! runtime counts it and resolved to type names and symbolized call stacks.

use std::collections::HashMap;

use tracer_common::{AllocSiteKey, AllocSiteValue, AllocSizeKey, SITE_FRAMES};

use super::sizeclass::{self, Counted, Rules};
use crate::decode::events::{AllocBatch, AllocCounts, AllocStat, Frame, SiteStat};
use crate::probes::AllocMaps;

/// Frames kept per call site, innermost first (after runtime frames are dropped).
const MAX_FRAMES: usize = 16;

/// What the collector needs to know about the target's types and code. Addresses are
/// run-time addresses in the target.
pub trait Resolver {
    /// The Go name of the type whose descriptor is at `typ`.
    fn type_name(&mut self, typ: u64) -> String;
    /// Whether objects of this type hold no pointers (`typ == 0`: untyped, no pointers).
    fn noscan(&mut self, typ: u64) -> bool;
    /// Function, file and line of a code address (a return address: the call is just
    /// before it).
    fn frame(&mut self, pc: u64) -> Frame;
}

/// Computes deltas between successive readings of the kernel maps.
pub struct Collector {
    rules: Rules,
    prev_sizes: HashMap<AllocSizeKey, u64>,
    prev_sites: HashMap<AllocSiteKey, AllocSiteValue>,
    prev_dropped: u64,
    /// Symbolized stacks by their return addresses.
    stacks: HashMap<(u64, [u64; SITE_FRAMES]), (Vec<Frame>, String)>,
}

impl Collector {
    pub fn new(rules: Rules) -> Collector {
        Collector {
            rules,
            prev_sizes: HashMap::new(),
            prev_sites: HashMap::new(),
            prev_dropped: 0,
            stacks: HashMap::new(),
        }
    }

    /// What was allocated since the last call. `dropped` is the kernel's cumulative count
    /// of allocations it could not record.
    pub fn collect(
        &mut self,
        ts_ns: u64,
        maps: &AllocMaps,
        dropped: u64,
        resolver: &mut dyn Resolver,
    ) -> AllocBatch {
        let mut batch = AllocBatch {
            ts_ns,
            dropped_objects: dropped.saturating_sub(self.prev_dropped),
            ..AllocBatch::default()
        };
        self.prev_dropped = dropped;

        let mut by_type: HashMap<u64, AllocCounts> = HashMap::new();
        let mut by_class: HashMap<u64, u64> = HashMap::new();
        for &(key, count) in &maps.sizes {
            let prev = self.prev_sizes.insert(key, count).unwrap_or(0);
            let n = count.saturating_sub(prev);
            if n == 0 {
                continue;
            }
            let counted = sizeclass::count(key.size, resolver.noscan(key.typ), self.rules);
            let bytes = counted.bytes() * n;
            batch.objects += n;
            batch.bytes += bytes;
            let t = by_type.entry(key.typ).or_default();
            t.objects += n;
            t.bytes += bytes;
            if matches!(counted, Counted::Large(_)) {
                t.large_objects += n;
                t.large_bytes += bytes;
            }
            let class = match counted {
                // Tiny objects live in 16-byte blocks (size class 2).
                Counted::Tiny(_) => sizeclass::TINY_SIZE,
                Counted::Small(b) | Counted::Large(b) => b,
            };
            *by_class.entry(class).or_default() += n;
        }
        batch.by_type = by_type
            .into_iter()
            .map(|(typ, counts)| AllocStat {
                name: resolver.type_name(typ),
                counts: AllocCounts {
                    counted: counts.objects,
                    ..counts
                },
            })
            .collect();
        batch.by_class = by_class.into_iter().collect();
        batch.by_class.sort_unstable();

        for &(key, value) in &maps.sites {
            let prev = self.prev_sites.insert(key, value).unwrap_or_default();
            let objects = value.count.saturating_sub(prev.count);
            if objects == 0 {
                continue;
            }
            let (frames, via) = self.frames(&key, resolver);
            batch.by_site.push(SiteStat {
                frames,
                via,
                type_name: resolver.type_name(key.typ),
                counts: AllocCounts {
                    large_objects: value.large_count.saturating_sub(prev.large_count),
                    large_bytes: value.large_bytes.saturating_sub(prev.large_bytes),
                    ..AllocCounts::exact(objects, value.bytes.saturating_sub(prev.bytes))
                },
            });
        }
        batch
    }

    /// The call stack of a site: its direct caller, then the walked stack minus its first
    /// entry (the probed function itself); allocator frames (`runtime.*`,
    /// `internal/runtime/*`) at the inner end are dropped so the site is the code that
    /// asked for memory.
    /// Also returns the outermost dropped runtime frame's function (see [`SiteStat::via`]).
    fn frames(&mut self, key: &AllocSiteKey, resolver: &mut dyn Resolver) -> (Vec<Frame>, String) {
        if let Some(f) = self.stacks.get(&(key.ret_addr, key.frames)) {
            return f.clone();
        }
        let pcs = std::iter::once(key.ret_addr).chain(key.frames.iter().skip(1).copied());
        let mut frames: Vec<Frame> = pcs
            .take_while(|pc| *pc != 0)
            .map(|pc| resolver.frame(pc))
            .collect();
        let runtime_prefix = frames
            .iter()
            .take_while(|f| {
                f.function.starts_with("runtime.") || f.function.starts_with("internal/runtime/")
            })
            .count();
        let mut via = String::new();
        if runtime_prefix < frames.len() {
            if let Some(outer) = runtime_prefix.checked_sub(1) {
                via = frames[outer].function.clone();
            }
            frames.drain(..runtime_prefix);
        }
        frames.truncate(MAX_FRAMES);
        let out = (frames, via);
        self.stacks.insert((key.ret_addr, key.frames), out.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Resolver for Fake {
        fn type_name(&mut self, typ: u64) -> String {
            format!("T{typ}")
        }
        fn noscan(&mut self, typ: u64) -> bool {
            typ == 0
        }
        fn frame(&mut self, pc: u64) -> Frame {
            let function = if pc < 100 {
                "runtime.newobject"
            } else {
                "main.work"
            };
            Frame {
                function: function.into(),
                file: "x.go".into(),
                line: pc as u32,
            }
        }
    }

    #[test]
    fn deltas_rounding_and_sites() {
        let mut c = Collector::new(Rules::for_minor(27));
        let mut maps = AllocMaps {
            sizes: vec![
                (AllocSizeKey { typ: 7, size: 40 }, 3),
                (AllocSizeKey { typ: 0, size: 5 }, 2),
            ],
            sites: vec![(
                AllocSiteKey {
                    typ: 7,
                    ret_addr: 50,
                    frames: {
                        let mut f = [0; SITE_FRAMES];
                        f[..3].copy_from_slice(&[1, 200, 300]);
                        f
                    },
                },
                AllocSiteValue {
                    count: 3,
                    bytes: 120,
                    ..AllocSiteValue::default()
                },
            )],
        };
        let b = c.collect(10, &maps, 0, &mut Fake);
        assert_eq!(b.objects, 5);
        assert_eq!(b.bytes, 3 * 48 + 2 * 5);
        assert_eq!(b.by_site.len(), 1);
        let site = &b.by_site[0];
        // runtime.newobject (the direct caller) is dropped; the walked stack's first
        // entry (the probed function) is skipped.
        assert_eq!(site.frames[0].line, 200);
        assert_eq!(site.frames.len(), 2);
        assert_eq!(site.via, "runtime.newobject");
        // Second collection: only the difference.
        maps.sizes[0].1 = 4;
        let b = c.collect(20, &maps, 0, &mut Fake);
        assert_eq!((b.objects, b.bytes), (1, 48));
        assert!(b.by_site.is_empty());
    }

    #[test]
    fn large_objects_are_counted_apart_by_type_and_by_site() {
        let mut c = Collector::new(Rules::for_minor(27));
        let frames = {
            let mut f = [0; SITE_FRAMES];
            f[..2].copy_from_slice(&[1, 200]);
            f
        };
        let maps = AllocMaps {
            // One type, allocated small (40 bytes, class 48) and large (40,000 bytes,
            // five pages).
            sizes: vec![
                (AllocSizeKey { typ: 7, size: 40 }, 3),
                (
                    AllocSizeKey {
                        typ: 7,
                        size: 40_000,
                    },
                    2,
                ),
            ],
            sites: vec![(
                AllocSiteKey {
                    typ: 7,
                    ret_addr: 50,
                    frames,
                },
                AllocSiteValue {
                    count: 5,
                    bytes: 3 * 40 + 2 * 40_000,
                    large_count: 2,
                    large_bytes: 2 * 40_000,
                },
            )],
        };
        let b = c.collect(10, &maps, 0, &mut Fake);
        let t = &b.by_type[0].counts;
        assert_eq!((t.objects, t.bytes), (5, 3 * 48 + 2 * 40_960));
        assert_eq!((t.large_objects, t.large_bytes), (2, 2 * 40_960));
        let s = &b.by_site[0].counts;
        assert_eq!((s.large_objects, s.large_bytes), (2, 80_000));
    }
}
