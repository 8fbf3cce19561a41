//! Allocation totals, by type, by size class and by call site, accumulated from
//! [`AllocBatch`]es. Bounded: at most [`MAX_KEYS`] types and sites are kept (the rest
//! are summed under "(other)"), so a long trace of a program with endless distinct
//! stacks does not grow without limit.

use std::collections::HashMap;

use tracer_common::LARGE_OBJECT_OVER;

use crate::decode::events::{AllocBatch, AllocCounts, AllocStat, Frame, LargeAllocs, SiteStat};
use crate::model::records::{AllocSitesRecord, AllocTypesRecord, SizeClassStat};
use error::BurstSums;

mod error;
#[cfg(test)]
mod tests;

/// Distinct types or sites kept before folding into "(other)".
const MAX_KEYS: usize = 10_000;
/// Entries in each periodic snapshot record.
pub const TOP_N: usize = 20;
/// Interval between snapshot records.
const SNAPSHOT_EVERY_NS: u64 = 5_000_000_000;

/// The names of the entries that stand for what the runtime counted of a kind no burst
/// saw (small objects, large objects): [`AllocModel::unseen`].
const UNSEEN: [&str; 2] = [
    "(small objects no burst saw)",
    "(large objects no burst saw)",
];

/// Objects and bytes of one kind of allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Part {
    objects: u64,
    bytes: u64,
}

impl Part {
    fn add(&mut self, objects: u64, bytes: u64) {
        self.objects = self.objects.saturating_add(objects);
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// Counts kept by kind, small objects and large ones (over [`LARGE_OBJECT_OVER`] bytes):
/// the runtime counts large objects apart, so in sampled mode each part is scaled to the
/// runtime's own count of its kind ([`AllocModel::scales`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    small: Part,
    large: Part,
}

impl Count {
    /// An entry's counts, their large part as the batch split it.
    fn add(&mut self, c: &AllocCounts) {
        let large_objects = c.large_objects.min(c.objects);
        let large_bytes = c.large_bytes.min(c.bytes);
        self.small
            .add(c.objects - large_objects, c.bytes - large_bytes);
        self.large.add(large_objects, large_bytes);
    }

    fn part(&self, large: bool) -> Part {
        if large {
            self.large
        } else {
            self.small
        }
    }

    fn part_mut(&mut self, large: bool) -> &mut Part {
        if large {
            &mut self.large
        } else {
            &mut self.small
        }
    }

    fn objects(&self) -> u64 {
        self.small.objects.saturating_add(self.large.objects)
    }

    fn bytes(&self) -> u64 {
        self.small.bytes.saturating_add(self.large.bytes)
    }
}

/// What one counted object and byte of a kind stand for.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Scale {
    objects: f64,
    bytes: f64,
}

#[derive(Debug, Default)]
pub struct AllocModel {
    seen: bool,
    /// Some batch was a sample: figures are estimates scaled by [`AllocModel::factor`].
    sampled: bool,
    /// What the probes counted (raw, not scaled).
    total: Count,
    /// Bytes the runtime's own counter advanced by while traced (set by the model).
    runtime_bytes: u64,
    /// Objects the runtime's own count advanced by over the same window, when read
    /// (`memstats.heapStats`, what MemStats.Mallocs sums): the sampled total then.
    runtime_objects: Option<u64>,
    /// The large objects among the runtime's counts over the same window, when read.
    runtime_large: Option<LargeAllocs>,
    /// The most Ps seen: how many mcaches may hold allocations that count is behind by.
    max_procs: Option<u32>,
    dropped_objects: u64,
    by_type: HashMap<String, Count>,
    /// By (frames, type, runtime function called: [`SiteStat::via`]).
    by_site: HashMap<(Vec<Frame>, String, String), Count>,
    by_class: HashMap<u64, Count>,
    last_snapshot_ns: Option<u64>,
    /// The last snapshot returned by [`AllocModel::add`] holds every batch so far: the
    /// end of the trace then has nothing new to say (a second, identical snapshot would
    /// count as a second judgement of the same evidence).
    reported: bool,
    last_ts_ns: u64,
    /// Sampled mode: what each burst saw, as running sums, for the spread between bursts.
    bursts: BurstSums,
}

fn other_site() -> (Vec<Frame>, String, String) {
    (
        vec![Frame {
            function: "(other)".into(),
            ..Frame::default()
        }],
        String::new(),
        String::new(),
    )
}

impl AllocModel {
    /// Whether any allocation batch was seen (allocation probes in use).
    pub fn active(&self) -> bool {
        self.seen
    }

    /// Batches arrived since the last snapshot [`AllocModel::add`] returned (or none was
    /// returned yet): the end of the trace owes a final snapshot.
    pub fn unreported(&self) -> bool {
        self.seen && !self.reported
    }

    /// Every allocation was counted (no sampling, nothing dropped).
    pub fn exact(&self) -> bool {
        self.seen && !self.sampled && self.dropped_objects == 0
    }

    /// What one counted allocation stands for: 1 when counting everything; in sampled
    /// mode, the runtime's own byte count while traced divided by the bytes the samples
    /// saw (the sample's proportions by type and site are kept).
    pub fn factor(&self) -> f64 {
        if !self.sampled || self.total.bytes() == 0 {
            return 1.0;
        }
        (self.runtime_bytes as f64 / self.total.bytes() as f64).max(1.0)
    }

    /// What one counted object stands for: as [`AllocModel::factor`], but scaled to the
    /// runtime's own object count when it is known, so that the objects by type, site
    /// and size class add up to it. The bursts see too few small objects (see
    /// docs/json-schema.md), and that bias stays in the shares, not in the total.
    fn object_factor(&self) -> f64 {
        match self.runtime_objects {
            Some(o) if self.sampled && self.total.objects() > 0 => {
                (o as f64 / self.total.objects() as f64).max(1.0)
            }
            _ => self.factor(),
        }
    }

    /// The runtime's large-object counts, where the sample is scaled by kind: sampled
    /// mode, counts read, and consistent with the totals they are part of.
    fn runtime_large(&self) -> Option<LargeAllocs> {
        self.runtime_large.filter(|l| {
            self.sampled
                && l.bytes <= self.runtime_bytes
                && self.runtime_objects.is_some_and(|o| l.objects <= o)
        })
    }

    /// What one counted small and one counted large allocation stand for. Without the
    /// runtime's large-object counts, both the single [`AllocModel::factor`] (and
    /// [`AllocModel::object_factor`]). With them, each kind its own: the runtime's count
    /// of that kind over the sample's. A burst sees a rare large allocation only now and
    /// then, and scaled by one factor, one caught or missed swung every share (a
    /// program whose bytes were two thirds one 320 KB slice per 20,000 small boxes showed
    /// the boxes anywhere from 7 % to 100 %); by kind, a share is wrong only within its
    /// kind. A kind the sample holds none of scales by 0 ([`AllocModel::unseen`]).
    fn scales(&self) -> [Scale; 2] {
        let single = Scale {
            objects: self.object_factor(),
            bytes: self.factor(),
        };
        let Some(l) = self.runtime_large() else {
            return [single, single];
        };
        let ratio = |runtime: u64, sample: u64| {
            if sample == 0 {
                0.0
            } else {
                (runtime as f64 / sample as f64).max(1.0)
            }
        };
        let objects = self.runtime_objects.unwrap_or(0);
        let t = &self.total;
        [
            Scale {
                objects: ratio(objects - l.objects, t.small.objects),
                bytes: ratio(self.runtime_bytes - l.bytes, t.small.bytes),
            },
            Scale {
                objects: ratio(l.objects, t.large.objects),
                bytes: ratio(l.bytes, t.large.bytes),
            },
        ]
    }

    /// What the runtime counted of a kind (small, large) the sample holds none of: the
    /// snapshots show it as an entry of its own, named [`UNSEEN`], with the runtime's
    /// exact counts, rather than spread over the kinds that were seen.
    fn unseen(&self) -> [Option<Part>; 2] {
        let Some(l) = self.runtime_large() else {
            return [None, None];
        };
        let runtime = [
            Part {
                objects: self.runtime_objects.unwrap_or(0) - l.objects,
                bytes: self.runtime_bytes - l.bytes,
            },
            Part {
                objects: l.objects,
                bytes: l.bytes,
            },
        ];
        [false, true].map(|large| {
            let r = runtime[usize::from(large)];
            (self.total.part(large).bytes == 0 && r.bytes > 0).then_some(r)
        })
    }

    /// `c` as reported: scaled in sampled mode, with what was counted and its error.
    fn counts(&self, c: &Count) -> AllocCounts {
        let (objects, bytes) = self.scaled(c);
        AllocCounts {
            objects,
            bytes,
            counted: c.objects(),
            error_permille: self.error_permille(c),
            ..AllocCounts::default()
        }
    }

    fn scaled(&self, c: &Count) -> (u64, u64) {
        let [small, large] = self.scales();
        let scale = |n: u64, f: f64| n as f64 * f;
        (
            (scale(c.small.objects, small.objects) + scale(c.large.objects, large.objects)).round()
                as u64,
            (scale(c.small.bytes, small.bytes) + scale(c.large.bytes, large.bytes)).round() as u64,
        )
    }

    /// What the runtime's own allocation counter says was allocated while traced: the
    /// reference that sampled counts are scaled to.
    pub fn set_runtime_bytes(&mut self, bytes: u64) {
        self.runtime_bytes = bytes;
    }

    /// What the runtime's own object count says was allocated over the same window as
    /// [`AllocModel::set_runtime_bytes`], and GOMAXPROCS now (for its bound).
    pub fn set_runtime_objects(&mut self, objects: u64, gomaxprocs: Option<u32>) {
        self.runtime_objects = Some(objects);
        self.max_procs = self.max_procs.max(gomaxprocs);
    }

    /// The large objects among what the runtime counted over the same window as
    /// [`AllocModel::set_runtime_bytes`] (`heapStats`' `largeAlloc`, `largeAllocCount`).
    pub fn set_runtime_large(&mut self, large: LargeAllocs) {
        self.runtime_large = Some(large);
    }

    /// Whether the sampled objects total is the runtime's own count (else the bursts'
    /// estimate, biased low).
    pub fn objects_counted_by_runtime(&self) -> bool {
        self.runtime_objects.is_some()
    }

    /// Estimated (or exact) objects and bytes so far, what no burst saw included.
    pub fn totals(&self) -> (u64, u64) {
        let (objects, bytes) = self.scaled(&self.total);
        self.unseen()
            .iter()
            .flatten()
            .fold((objects, bytes), |(o, b), p| {
                (o.saturating_add(p.objects), b.saturating_add(p.bytes))
            })
    }

    /// Add a batch; returns snapshot records when one is due.
    pub fn add(&mut self, b: &AllocBatch) -> Option<(AllocTypesRecord, AllocSitesRecord)> {
        self.seen = true;
        self.sampled |= b.sampled;
        if b.sampled && b.bytes > 0 {
            self.bursts.add(b.objects, b.bytes);
        }
        let large = b.by_type.iter().fold(Part::default(), |mut p, t| {
            p.add(t.counts.large_objects, t.counts.large_bytes);
            p
        });
        self.total.add(&AllocCounts {
            objects: b.objects,
            bytes: b.bytes,
            large_objects: large.objects,
            large_bytes: large.bytes,
            ..AllocCounts::default()
        });
        self.dropped_objects += b.dropped_objects;
        for t in &b.by_type {
            let full = self.by_type.len() >= MAX_KEYS && !self.by_type.contains_key(&t.name);
            let key = if full {
                "(other)".to_string()
            } else {
                t.name.clone()
            };
            self.by_type.entry(key).or_default().add(&t.counts);
        }
        for s in &b.by_site {
            let key = (s.frames.clone(), s.type_name.clone(), s.via.clone());
            let key = if self.by_site.len() >= MAX_KEYS && !self.by_site.contains_key(&key) {
                other_site()
            } else {
                key
            };
            self.by_site.entry(key).or_default().add(&s.counts);
        }
        for &(class, objects) in &b.by_class {
            self.by_class
                .entry(class)
                .or_default()
                .part_mut(class > LARGE_OBJECT_OVER)
                .add(objects, class.saturating_mul(objects));
        }
        self.last_ts_ns = b.ts_ns;
        let due = match self.last_snapshot_ns {
            None => {
                self.last_snapshot_ns = Some(b.ts_ns);
                false
            }
            Some(t) => b.ts_ns.saturating_sub(t) >= SNAPSHOT_EVERY_NS,
        };
        self.reported = due;
        if due {
            self.last_snapshot_ns = Some(b.ts_ns);
            Some(self.snapshot())
        } else {
            None
        }
    }

    /// The current top types and sites.
    pub fn snapshot(&self) -> (AllocTypesRecord, AllocSitesRecord) {
        let round = |c: &Count| self.scaled(c);
        let mut types: Vec<AllocStat> = self
            .by_type
            .iter()
            .map(|(name, c)| AllocStat {
                name: name.clone(),
                counts: self.counts(c),
            })
            .chain(self.unseen_entries().map(|(name, counts)| AllocStat {
                name: name.into(),
                counts,
            }))
            .collect();
        types.sort_by(|a, b| {
            (b.counts.bytes.cmp(&a.counts.bytes)).then_with(|| a.name.cmp(&b.name))
        });
        types.truncate(TOP_N);
        let mut sites = self.all_sites();
        sites.sort_by(|a, b| {
            (b.counts.bytes.cmp(&a.counts.bytes)).then_with(|| a.frames.cmp(&b.frames))
        });
        sites.truncate(TOP_N);
        let mut classes: Vec<SizeClassStat> = self
            .by_class
            .iter()
            .map(|(&size, c)| {
                let (objects, bytes) = round(c);
                SizeClassStat {
                    size,
                    objects,
                    bytes,
                }
            })
            .collect();
        classes.sort_by_key(|c| c.size);
        let (objects, bytes) = self.totals();
        (
            AllocTypesRecord {
                ts_ns: self.last_ts_ns,
                exact: self.exact(),
                objects,
                bytes,
                counted_objects: self.total.objects(),
                objects_error_permille: self.total_error_permille(),
                dropped_objects: self.dropped_objects,
                types,
                size_classes: classes,
            },
            AllocSitesRecord {
                ts_ns: self.last_ts_ns,
                exact: self.exact(),
                sites,
            },
        )
    }

    /// Every site with its counts (for profiles), not only the top ones, and what no
    /// burst saw as sites of their own.
    pub fn all_sites(&self) -> Vec<SiteStat> {
        self.by_site
            .iter()
            .map(|((frames, type_name, via), c)| SiteStat {
                frames: frames.clone(),
                via: via.clone(),
                type_name: type_name.clone(),
                counts: self.counts(c),
            })
            .chain(self.unseen_entries().map(|(name, counts)| SiteStat {
                frames: vec![Frame {
                    function: name.into(),
                    ..Frame::default()
                }],
                counts,
                ..SiteStat::default()
            }))
            .collect()
    }

    /// [`AllocModel::unseen`] as entries: the runtime's counts, exact (no error).
    fn unseen_entries(&self) -> impl Iterator<Item = (&'static str, AllocCounts)> {
        UNSEEN
            .into_iter()
            .zip(self.unseen())
            .filter_map(|(name, p)| {
                p.map(|p| {
                    let counts = AllocCounts {
                        objects: p.objects,
                        bytes: p.bytes,
                        ..AllocCounts::default()
                    };
                    (name, counts)
                })
            })
    }
}
