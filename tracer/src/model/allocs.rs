//! Allocation totals, by type, by size class and by call site, accumulated from
//! [`AllocBatch`]es. Bounded: at most [`MAX_KEYS`] types and sites are kept (the rest
//! are summed under "(other)"), so a long trace of a program with endless distinct
//! stacks does not grow without limit.

use std::collections::HashMap;

use crate::events::{AllocBatch, AllocStat, Frame, SiteStat};
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
    dropped_objects: u64,
    by_type: HashMap<String, Count>,
    by_site: HashMap<(Vec<Frame>, String), Count>,
    by_class: HashMap<u64, Count>,
    last_snapshot_ns: Option<u64>,
    last_ts_ns: u64,
}

fn other_site() -> (Vec<Frame>, String) {
    (
        vec![Frame {
            function: "(other)".into(),
            ..Frame::default()
        }],
        String::new(),
    )
}

impl AllocModel {
    /// Whether any allocation batch was seen (allocation probes in use).
    pub fn active(&self) -> bool {
        self.seen
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

    fn scaled(&self, c: &Count) -> (u64, u64) {
        let f = self.factor();
        (
            (c.objects as f64 * f).round() as u64,
            (c.bytes as f64 * f).round() as u64,
        )
    }

    /// What the runtime's own allocation counter says was allocated while traced: the
    /// reference that sampled counts are scaled to.
    pub fn set_runtime_bytes(&mut self, bytes: u64) {
        self.runtime_bytes = bytes;
    }

    /// Estimated (or exact) objects and bytes so far.
    pub fn totals(&self) -> (u64, u64) {
        self.scaled(&self.total)
    }

    /// Add a batch; returns snapshot records when one is due.
    pub fn add(&mut self, b: &AllocBatch) -> Option<(AllocTypesRecord, AllocSitesRecord)> {
        self.seen = true;
        self.sampled |= b.sampled;
        self.total.add(b.objects, b.bytes);
        self.dropped_objects += b.dropped_objects;
        for t in &b.by_type {
            let full = self.by_type.len() >= MAX_KEYS && !self.by_type.contains_key(&t.name);
            let key = if full {
                "(other)".to_string()
            } else {
                t.name.clone()
            };
            self.by_type.entry(key).or_default().add(t.objects, t.bytes);
        }
        for s in &b.by_site {
            let key = (s.frames.clone(), s.type_name.clone());
            let key = if self.by_site.len() >= MAX_KEYS && !self.by_site.contains_key(&key) {
                other_site()
            } else {
                key
            };
            self.by_site.entry(key).or_default().add(s.objects, s.bytes);
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
            .map(|(name, c)| {
                let (objects, bytes) = round(c);
                AllocStat {
                    name: name.clone(),
                    objects,
                    bytes,
                }
            })
            .collect();
        types.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        types.truncate(TOP_N);
        let mut sites: Vec<SiteStat> = self
            .by_site
            .iter()
            .map(|((frames, type_name), c)| {
                let (objects, bytes) = round(c);
                SiteStat {
                    frames: frames.clone(),
                    type_name: type_name.clone(),
                    objects,
                    bytes,
                }
            })
            .collect();
        sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.frames.cmp(&b.frames)));
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
            .map(|((frames, type_name), c)| {
                let (objects, bytes) = self.scaled(c);
                SiteStat {
                    frames: frames.clone(),
                    type_name: type_name.clone(),
                    objects,
                    bytes,
                }
            })
            .collect()
    }
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
                    objects: 8,
                    bytes: 128,
                },
                AllocStat {
                    name: "[]uint8".into(),
                    objects: 2,
                    bytes: 32,
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
        assert_eq!(types.types[0].objects, 16);
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
        assert_eq!(types.types[0].objects, 32);
        // Later allocations the sample did not see still count in the runtime's total.
        m.set_runtime_bytes(1280);
        assert_eq!(m.totals(), (80, 1280));
    }
}
