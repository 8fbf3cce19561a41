//! The bench's statistics, in one place: nearest-rank percentiles and medians of
//! integers, the interpolated median of ratios, and the paired (same-round) medians of a
//! series' differences and ratios.

use super::runner::Sample;

/// Medians over runs, and paired differences, of a series.
pub(super) fn med(v: &[Sample], f: impl Fn(&Sample) -> u64) -> u64 {
    median(v.iter().map(f).collect())
}

/// Median over rounds of `traced − alone` (paired: same round), in ns; negative allowed.
pub(super) fn paired_delta(alone: &[Sample], traced: &[Sample], f: impl Fn(&Sample) -> u64) -> f64 {
    let mut d: Vec<f64> = alone
        .iter()
        .zip(traced)
        .map(|(a, t)| f(t) as f64 - f(a) as f64)
        .collect();
    median_f64(&mut d)
}

/// Each round's traced/alone ratio of `f`, sorted.
pub(super) fn pair_ratios(
    alone: &[Sample],
    traced: &[Sample],
    f: impl Fn(&Sample) -> u64,
) -> Vec<f64> {
    let mut r: Vec<f64> = alone
        .iter()
        .zip(traced)
        .map(|(a, t)| f(t) as f64 / f(a).max(1) as f64)
        .collect();
    r.sort_by(f64::total_cmp);
    r
}

pub(super) fn median_f64(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(super) fn spread(r: &[f64]) -> String {
    match (r.first(), r.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.3} to {hi:.3}"),
        _ => "?".into(),
    }
}

pub(super) fn median(v: Vec<u64>) -> u64 {
    percentile(v, 50)
}

/// Nearest-rank percentile (0 for no values).
pub(super) fn percentile(mut v: Vec<u64>, pct: usize) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = (v.len() * pct).div_ceil(100).max(1);
    v[rank - 1]
}

/// Interpolated median of `v` (0 for none), leaving `v` as it is.
pub(super) fn median_of_f64(v: &[f64]) -> f64 {
    median_f64(&mut v.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![5]), 5);
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(percentile((1..=10).collect(), 90), 9);
        assert_eq!(percentile((1..=10).collect(), 50), 5);
    }
}
