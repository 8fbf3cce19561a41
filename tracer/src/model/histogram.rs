//! Bounded-memory record of pause durations for the summary's percentiles, and the
//! compact per-time-bucket form the TUI's time windows merge ([`CompactPauses`]): one
//! bucketing for both, so the TUI's "since attach" p99 and the summary's p99 of the
//! same run are the same number.
//!
//! A trace can run for days and see millions of stop-the-world pauses (a busy program
//! reading `runtime.MemStats` in a loop stops the world each time), so pauses are not
//! stored one by one. Instead they go into log-linear buckets, in the style of
//! HdrHistogram: every power of two is split into [`SUB_BUCKETS`] equal buckets, and
//! values below `2 * SUB_BUCKETS` get one bucket each (exact). A percentile is reported
//! as the middle of its bucket, so its relative error is at most `1 / (2 * SUB_BUCKETS)`
//! (0.4%), well under the 1% a pause summary needs. Minimum and maximum are kept exactly,
//! and reported values are clamped to them, so `max` is exact and a single pause is
//! reported exactly. Memory: at most `SUB_BUCKETS * 58` buckets (about 7,400, 58 KiB),
//! whatever the number of pauses; the bucket array grows only as far as the longest
//! pause (about 1,000 buckets, 8 KiB, for pauses up to a millisecond). Recording is an
//! array increment, because it runs for every pause.

/// Buckets per power of two (2^7): 0.39% worst-case relative error.
const SUB_BITS: u32 = 7;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;

#[derive(Clone, Debug, Default)]
pub struct PauseHistogram {
    /// Count per bucket index, up to the largest index recorded so far.
    buckets: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
}

/// Bucket index of `v`. Values below `2 * SUB_BUCKETS` map to themselves.
fn index_of(v: u64) -> u16 {
    if v < SUB_BUCKETS {
        return v as u16;
    }
    // Position of the highest set bit: v is in [2^exp, 2^(exp+1)), exp >= SUB_BITS.
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    // The top SUB_BITS + 1 bits of v, in [SUB_BUCKETS, 2 * SUB_BUCKETS).
    let top = v >> shift;
    // At most 128 + 56 * 128 + 127 = 7423: fits u16.
    (u64::from(shift) * SUB_BUCKETS + top) as u16
}

/// The smallest value and the width of bucket `idx` (inverse of [`index_of`]).
fn bucket_bounds(idx: u16) -> (u64, u64) {
    let idx = u64::from(idx);
    if idx < SUB_BUCKETS {
        return (idx, 1);
    }
    let shift = (idx - SUB_BUCKETS) / SUB_BUCKETS;
    let top = idx - shift * SUB_BUCKETS;
    (top << shift, 1 << shift)
}

/// Takes `[lo, hi]` into the exact extent `(min, max)` of `count` values recorded so far
/// (which is meaningless while `count` is 0, so then it is simply set).
fn widen(count: u64, min: &mut u64, max: &mut u64, lo: u64, hi: u64) {
    if count == 0 {
        *min = lo;
        *max = hi;
    } else {
        *min = (*min).min(lo);
        *max = (*max).max(hi);
    }
}

impl PauseHistogram {
    pub fn record(&mut self, v: u64) {
        let idx = usize::from(index_of(v));
        if idx >= self.buckets.len() {
            self.buckets.resize(idx + 1, 0);
        }
        self.buckets[idx] += 1;
        widen(self.count, &mut self.min, &mut self.max, v, v);
        self.count += 1;
    }

    /// Exact largest value recorded; None when empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// Nearest-rank percentile `p` (0 < p <= 100): the value at rank `ceil(p/100 * n)`
    /// (rank at least 1) of the sorted values, within the bucket error. None when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = nearest_rank(p, self.count);
        let mut seen = 0u64;
        for (idx, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // Indices come from index_of, so they fit u16.
                let (low, width) = bucket_bounds(idx as u16);
                let mid = low + width / 2;
                return Some(mid.clamp(self.min, self.max));
            }
        }
        // Unreachable: the counts add up to `count` >= rank. Fall back to the exact max.
        Some(self.max)
    }

    /// p50, p90, p99 and max: the four figures the views show of a set of pauses.
    /// None when empty.
    pub fn p50_p90_p99_max(&self) -> Option<[u64; 4]> {
        Some([
            self.percentile(50.0)?,
            self.percentile(90.0)?,
            self.percentile(99.0)?,
            self.max()?,
        ])
    }
}

impl PauseHistogram {
    /// Number of pauses recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds every pause of `c` (as if each had been recorded here).
    pub fn merge(&mut self, c: &CompactPauses) {
        if c.count == 0 {
            return;
        }
        for &(idx, n) in &c.buckets {
            let idx = usize::from(idx);
            if idx >= self.buckets.len() {
                self.buckets.resize(idx + 1, 0);
            }
            self.buckets[idx] += u64::from(n);
        }
        widen(self.count, &mut self.min, &mut self.max, c.min, c.max);
        self.count += c.count;
    }
}

/// The pauses of a short stretch of time (the TUI keeps one per second), stored as the
/// non-empty buckets of [`PauseHistogram`] only: a second of pauses usually touches a
/// handful of buckets, so thousands of these cost kilobytes where dense histograms would
/// cost megabytes. Merged into a [`PauseHistogram`] to read percentiles.
#[derive(Clone, Debug, Default)]
pub struct CompactPauses {
    /// (bucket index, count), sorted by index.
    buckets: Vec<(u16, u32)>,
    count: u64,
    min: u64,
    max: u64,
}

impl CompactPauses {
    pub fn record(&mut self, v: u64) {
        let idx = index_of(v);
        match self.buckets.binary_search_by_key(&idx, |b| b.0) {
            Ok(at) => self.buckets[at].1 = self.buckets[at].1.saturating_add(1),
            Err(at) => self.buckets.insert(at, (idx, 1)),
        }
        widen(self.count, &mut self.min, &mut self.max, v, v);
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact largest pause; None when empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }
}

/// Rank (1-based) of percentile `p` among `n` sorted values, nearest-rank method.
/// Computed in integers where possible so p50 of 2 values is rank 1, not 1.0000001.
fn nearest_rank(p: f64, n: u64) -> u64 {
    let p = if p.is_nan() {
        100.0
    } else {
        p.clamp(0.0, 100.0)
    };
    // p is given with at most a few decimals (50, 99, 99.9): scale to an integer
    // per-million fraction to avoid float rounding at exact ranks.
    let ppm = (p * 10_000.0).round() as u128;
    let rank = (ppm * u128::from(n)).div_ceil(1_000_000);
    (rank as u64).clamp(1, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_and_is_monotonic() {
        let mut prev = 0u16;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let idx = index_of(v);
            assert!(idx >= prev, "monotonic at {v}");
            prev = idx;
            let (low, width) = bucket_bounds(idx);
            assert!(low <= v && v - low < width, "v={v} low={low} width={width}");
        }
        assert_eq!(index_of(u64::MAX), 7423);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = PauseHistogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
        assert_eq!(h.max(), Some(100));
    }

    #[test]
    fn large_values_within_one_percent() {
        let mut h = PauseHistogram::default();
        // 1,000 pauses from 10 µs to 10 ms, in order.
        let values: Vec<u64> = (1..=1000u64).map(|i| i * 10_007).collect();
        for &v in values.iter().rev() {
            h.record(v);
        }
        for (p, exact) in [(50.0, values[499]), (99.0, values[989]), (1.0, values[9])] {
            let got = h.percentile(p).unwrap_or(0);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err <= 0.01, "p{p}: got {got}, exact {exact}");
        }
        assert_eq!(h.max(), Some(10_007_000));
    }

    #[test]
    fn single_value_is_exact() {
        let mut h = PauseHistogram::default();
        h.record(123_456_789);
        assert_eq!(h.percentile(50.0), Some(123_456_789));
        assert_eq!(h.percentile(99.0), Some(123_456_789));
    }

    #[test]
    fn empty_has_no_percentiles() {
        let h = PauseHistogram::default();
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
    }

    /// Merging compact per-second histograms gives exactly what recording every pause
    /// into one histogram gives.
    #[test]
    fn merged_compact_histograms_equal_one_histogram() {
        let values: Vec<u64> = (1..=3000u64).map(|i| (i * 7919) % 2_000_000 + 3).collect();
        let mut whole = PauseHistogram::default();
        let mut parts = vec![CompactPauses::default(); 7];
        for (i, &v) in values.iter().enumerate() {
            whole.record(v);
            parts[i % 7].record(v);
        }
        let mut merged = PauseHistogram::default();
        for p in &parts {
            merged.merge(p);
        }
        merged.merge(&CompactPauses::default());
        assert_eq!(merged.count(), 3000);
        for p in [1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            assert_eq!(merged.percentile(p), whole.percentile(p), "p{p}");
        }
        assert_eq!(merged.max(), whole.max());
        assert_eq!(parts[0].max(), values.iter().step_by(7).max().copied());
    }

    #[test]
    fn nearest_rank_method() {
        assert_eq!(nearest_rank(50.0, 2), 1);
        assert_eq!(nearest_rank(50.0, 3), 2);
        assert_eq!(nearest_rank(99.0, 100), 99);
        assert_eq!(nearest_rank(99.0, 101), 100);
        assert_eq!(nearest_rank(99.0, 1), 1);
        assert_eq!(nearest_rank(0.0, 10), 1);
    }
}
