//! Allocation totals, by type, by size class and by call site, accumulated from
//! [`AllocBatch`]es. Bounded: at most [`MAX_KEYS`] types and sites are kept (the rest
//! are summed under "(other)"), so a long trace of a program with endless distinct
//! stacks does not grow without limit.

use std::collections::HashMap;

use crate::alloc::sizeclass::MAX_UNCOUNTED_PER_P;
use crate::events::{AllocBatch, AllocCounts, AllocStat, Frame, SiteStat};
use crate::records::{AllocSitesRecord, AllocTypesRecord, SizeClassStat};

/// Distinct types or sites kept before folding into "(other)".
const MAX_KEYS: usize = 10_000;
/// Entries in each periodic snapshot record.
pub const TOP_N: usize = 20;
/// Interval between snapshot records.
const SNAPSHOT_EVERY_NS: u64 = 5_000_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    objects: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, objects: u64, bytes: u64) {
        self.objects = self.objects.saturating_add(objects);
        self.bytes = self.bytes.saturating_add(bytes);
    }
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

/// Sums over the sampling bursts of their counted objects `o` and bytes `b`: enough for
/// the variance of the objects-per-byte ratio between bursts, in constant memory.
#[derive(Debug, Default)]
struct BurstSums {
    k: u64,
    o: f64,
    b: f64,
    oo: f64,
    bb: f64,
    ob: f64,
}

impl BurstSums {
    fn add(&mut self, objects: u64, bytes: u64) {
        let (o, b) = (objects as f64, bytes as f64);
        self.k += 1;
        self.o += o;
        self.b += b;
        self.oo += o * o;
        self.bb += b * b;
        self.ob += o * b;
    }

    /// Relative variance of the ratio estimate Σo/Σb from the spread between bursts
    /// (the ratio estimator's cluster-sampling variance, `k/(k−1) · Σ(o − R·b)² / (Σb)²`
    /// over R²); `None` with fewer than two bursts.
    fn ratio_rel_var(&self) -> Option<f64> {
        if self.k < 2 || self.o <= 0.0 || self.b <= 0.0 {
            return None;
        }
        let r = self.o / self.b;
        let resid = (self.oo - 2.0 * r * self.ob + r * r * self.bb).max(0.0);
        let k = self.k as f64;
        let var = k / (k - 1.0) * resid / (self.b * self.b);
        Some(var / (r * r))
    }
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
        if !self.sampled || self.total.bytes == 0 {
            return 1.0;
        }
        (self.runtime_bytes as f64 / self.total.bytes as f64).max(1.0)
    }

    /// What one counted object stands for: as [`AllocModel::factor`], but scaled to the
    /// runtime's own object count when it is known, so that the objects by type, site
    /// and size class add up to it. The bursts see too few small objects (see
    /// docs/json-schema.md), and that bias stays in the shares, not in the total.
    fn object_factor(&self) -> f64 {
        match self.runtime_objects {
            Some(o) if self.sampled && self.total.objects > 0 => {
                (o as f64 / self.total.objects as f64).max(1.0)
            }
            _ => self.factor(),
        }
    }

    /// The statistical error (95 %, per mille) of a sampled entry's scaled figures, from
    /// what the sample holds: `c` its counted allocations and bytes.
    ///
    /// An entry's estimate is `counted × runtime_bytes / sample_bytes`. Taking the
    /// sample's allocations as drawn independently (Poisson), its relative variance is
    /// `1/n + Σs²/B² − 2·b/(n·B)`: n and b the entry's counted allocations and bytes, B
    /// the sample's bytes and Σs² the sum of the squared sizes of everything counted (from
    /// the size classes). The middle term is the uncertainty of the scale itself, which
    /// large objects dominate: a sample holding twenty 32 KiB allocations among thousands
    /// of small ones knows its bytes only to ±45 %, and every scaled figure inherits that.
    ///
    /// Allocations are not drawn independently, though: a burst sees a few milliseconds of
    /// the program, and what a program allocates changes from moment to moment. Once
    /// there are two bursts or more, the spread of their objects-per-byte ratios measures
    /// that; where it exceeds what independent draws would give, every error is widened
    /// by the same factor (the survey statisticians' design effect).
    ///
    /// When objects are scaled to the runtime's object count instead
    /// ([`AllocModel::object_factor`]), an entry's objects are its share of the sample's
    /// objects times that count, whose relative variance is `1/n − 1/N` (N the sample's
    /// objects); the error is the wider of the two, for both figures of the entry.
    fn error_permille(&self, c: &Count) -> Option<u32> {
        if !self.sampled || c.objects == 0 || self.total.bytes == 0 {
            return None;
        }
        let (n, b, total) = (c.objects as f64, c.bytes as f64, self.total.bytes as f64);
        let bytes_var = 1.0 / n + self.sum_sq_sizes() / (total * total) - 2.0 * b / (n * total);
        let share_var = match self.runtime_objects {
            Some(_) if self.total.objects > 0 => 1.0 / n - 1.0 / self.total.objects as f64,
            _ => 0.0,
        };
        Some(permille(
            bytes_var.max(share_var).max(0.0) * self.design_effect(),
        ))
    }

    /// The error of the total object figure. Counted from the runtime's own count: not a
    /// statistical error but a bound, what the mcaches may hold uncounted at either end
    /// of the window (at most [`MAX_UNCOUNTED_PER_P`] per P; `None` while GOMAXPROCS is
    /// unknown). Estimated from the bursts: as [`AllocModel::error_permille`] with the
    /// whole sample as the entry (`Σs²/B² − 1/N`), or the spread between bursts if wider
    /// — which does not cover the bursts' bias (the caller warns).
    fn total_error_permille(&self) -> Option<u32> {
        if let Some(objects) = self.runtime_objects.filter(|_| self.sampled) {
            let bound = u64::from(self.max_procs?).saturating_mul(MAX_UNCOUNTED_PER_P);
            let total = objects.max(self.total.objects).max(1);
            let permille = bound.saturating_mul(1000).div_ceil(total);
            return Some(u32::try_from(permille).unwrap_or(u32::MAX));
        }
        let rel_var = self.total_poisson_rel_var()?;
        let between = self.bursts.ratio_rel_var().unwrap_or(0.0);
        Some(permille(rel_var.max(between)))
    }

    fn total_poisson_rel_var(&self) -> Option<f64> {
        if !self.sampled || self.total.objects == 0 || self.total.bytes == 0 {
            return None;
        }
        let total = self.total.bytes as f64;
        let rel_var = self.sum_sq_sizes() / (total * total) - 1.0 / self.total.objects as f64;
        Some(rel_var.max(0.0))
    }

    /// How much wider the bursts' spread is than independent draws would make it (≥ 1).
    fn design_effect(&self) -> f64 {
        match (self.total_poisson_rel_var(), self.bursts.ratio_rel_var()) {
            (Some(poisson), Some(between)) if poisson > 0.0 => (between / poisson).max(1.0),
            _ => 1.0,
        }
    }

    /// Σ size² over every counted allocation, from the size classes.
    fn sum_sq_sizes(&self) -> f64 {
        self.by_class
            .iter()
            .map(|(&size, c)| c.objects as f64 * (size as f64) * (size as f64))
            .sum()
    }

    /// `c` as reported: scaled in sampled mode, with what was counted and its error.
    fn counts(&self, c: &Count) -> AllocCounts {
        let (objects, bytes) = self.scaled(c);
        AllocCounts {
            objects,
            bytes,
            counted: c.objects,
            error_permille: self.error_permille(c),
        }
    }

    fn scaled(&self, c: &Count) -> (u64, u64) {
        (
            (c.objects as f64 * self.object_factor()).round() as u64,
            (c.bytes as f64 * self.factor()).round() as u64,
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

    /// Whether the sampled objects total is the runtime's own count (else the bursts'
    /// estimate, biased low).
    pub fn objects_counted_by_runtime(&self) -> bool {
        self.runtime_objects.is_some()
    }

    /// Estimated (or exact) objects and bytes so far.
    pub fn totals(&self) -> (u64, u64) {
        self.scaled(&self.total)
    }

    /// Add a batch; returns snapshot records when one is due.
    pub fn add(&mut self, b: &AllocBatch) -> Option<(AllocTypesRecord, AllocSitesRecord)> {
        self.seen = true;
        self.sampled |= b.sampled;
        if b.sampled && b.bytes > 0 {
            self.bursts.add(b.objects, b.bytes);
        }
        self.total.add(b.objects, b.bytes);
        self.dropped_objects += b.dropped_objects;
        for t in &b.by_type {
            let full = self.by_type.len() >= MAX_KEYS && !self.by_type.contains_key(&t.name);
            let key = if full {
                "(other)".to_string()
            } else {
                t.name.clone()
            };
            self.by_type
                .entry(key)
                .or_default()
                .add(t.counts.objects, t.counts.bytes);
        }
        for s in &b.by_site {
            let key = (s.frames.clone(), s.type_name.clone(), s.via.clone());
            let key = if self.by_site.len() >= MAX_KEYS && !self.by_site.contains_key(&key) {
                other_site()
            } else {
                key
            };
            self.by_site
                .entry(key)
                .or_default()
                .add(s.counts.objects, s.counts.bytes);
        }
        for &(class, objects) in &b.by_class {
            self.by_class
                .entry(class)
                .or_default()
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
                counted_objects: self.total.objects,
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

    /// Every site with its counts (for profiles), not only the top ones.
    pub fn all_sites(&self) -> Vec<SiteStat> {
        self.by_site
            .iter()
            .map(|((frames, type_name, via), c)| SiteStat {
                frames: frames.clone(),
                via: via.clone(),
                type_name: type_name.clone(),
                counts: self.counts(c),
            })
            .collect()
    }
}

/// A relative variance as the 95 % error in per mille.
fn permille(rel_var: f64) -> u32 {
    (1960.0 * rel_var.max(0.0).sqrt()).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ts_ns: u64, sampled: bool) -> AllocBatch {
        AllocBatch {
            ts_ns,
            sampled,
            objects: 10,
            bytes: 160,
            by_type: vec![
                AllocStat {
                    name: "main.node".into(),
                    counts: AllocCounts::exact(8, 128),
                },
                AllocStat {
                    name: "[]uint8".into(),
                    counts: AllocCounts::exact(2, 32),
                },
            ],
            by_class: vec![(16, 10)],
            ..AllocBatch::default()
        }
    }

    #[test]
    fn exact_counts_add_up_and_rank_by_bytes() {
        let mut m = AllocModel::default();
        assert!(m.add(&batch(1_000, false)).is_none());
        assert!(m.add(&batch(2_000, false)).is_none());
        let (types, _) = m.snapshot();
        assert!(types.exact);
        assert_eq!((types.objects, types.bytes), (20, 320));
        assert_eq!(types.types[0].name, "main.node");
        assert_eq!(types.types[0].counts.objects, 16);
        assert_eq!(types.size_classes[0].objects, 20);
        // A snapshot is due 5 s after the first batch.
        assert!(m.add(&batch(5_000_001_000, false)).is_some());
    }

    #[test]
    fn sampled_counts_are_scaled_and_not_exact() {
        let mut m = AllocModel::default();
        // The sample saw 160 bytes while the runtime counted 640: everything x4.
        m.add(&batch(1, true));
        m.set_runtime_bytes(640);
        let (types, _) = m.snapshot();
        assert!(!types.exact);
        assert_eq!((types.objects, types.bytes), (40, 640));
        assert_eq!(types.types[0].counts.objects, 32);
        // Later allocations the sample did not see still count in the runtime's total.
        m.set_runtime_bytes(1280);
        assert_eq!(m.totals(), (80, 1280));
    }

    #[test]
    fn sampling_error_follows_the_large_objects_that_set_the_scale() {
        // 2000 small and 20 large allocations counted: the bytes, and so the scale, rest
        // on the 20 large ones (±42 % at 95 %, from Σs²/B² − 1/N); the large type's own
        // bytes are nearly the whole sample and hardly uncertain; the small type's
        // estimate inherits the scale's error.
        let mut m = AllocModel::default();
        m.add(&AllocBatch {
            ts_ns: 1,
            sampled: true,
            objects: 2020,
            bytes: 2000 * 16 + 20 * 32768,
            by_type: vec![
                AllocStat {
                    name: "small".into(),
                    counts: AllocCounts::exact(2000, 2000 * 16),
                },
                AllocStat {
                    name: "large".into(),
                    counts: AllocCounts::exact(20, 20 * 32768),
                },
            ],
            by_class: vec![(16, 2000), (32768, 20)],
            ..AllocBatch::default()
        });
        m.set_runtime_bytes(100 * (2000 * 16 + 20 * 32768));
        let (types, _) = m.snapshot();
        assert_eq!(types.counted_objects, 2020);
        assert_eq!(types.objects_error_permille, Some(416));
        let error = |name: &str| {
            types
                .types
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| t.counts.error_permille)
        };
        assert_eq!(error("large"), Some(21));
        assert_eq!(error("small"), Some(420));
        // Two bursts that disagree (one saw only 16-byte objects, the other only 32-byte
        // ones): the spread between them, not the sizes, sets the error.
        let mut m = AllocModel::default();
        for size in [16, 32] {
            m.add(&AllocBatch {
                ts_ns: 1,
                sampled: true,
                objects: 1000,
                bytes: 1000 * size,
                by_type: vec![AllocStat {
                    name: format!("t{size}"),
                    counts: AllocCounts::exact(1000, 1000 * size),
                }],
                by_class: vec![(size, 1000)],
                ..AllocBatch::default()
            });
        }
        m.set_runtime_bytes(480_000);
        let (types, _) = m.snapshot();
        // Independent draws would say ±1.5 %; the bursts say ±65 %.
        assert_eq!(types.objects_error_permille, Some(653));
        assert!(types
            .types
            .iter()
            .all(|t| t.counts.error_permille > Some(600)));
        // Counting everything: no sampling error at all.
        let mut exact = AllocModel::default();
        exact.add(&batch(1, false));
        let (types, _) = exact.snapshot();
        assert_eq!(types.objects_error_permille, None);
        assert!(types
            .types
            .iter()
            .all(|t| t.counts.error_permille.is_none()));
    }
}
