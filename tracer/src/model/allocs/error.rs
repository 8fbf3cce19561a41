//! The statistical error of sampled figures: what the sample holds says how far each
//! scaled entry may be off, and the spread between bursts says how much further.

use tracer_common::LARGE_OBJECT_OVER;

use super::{AllocModel, Count, Part};
use crate::decode::sizeclass::MAX_UNCOUNTED_PER_P;

/// Sums over the sampling bursts of their counted objects `o` and bytes `b`: enough for
/// the variance of the objects-per-byte ratio between bursts, in constant memory.
#[derive(Debug, Default)]
pub(super) struct BurstSums {
    k: u64,
    o: f64,
    b: f64,
    oo: f64,
    bb: f64,
    ob: f64,
}

impl BurstSums {
    pub(super) fn add(&mut self, objects: u64, bytes: u64) {
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

impl AllocModel {
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
    ///
    /// Scaled by kind ([`AllocModel::scales`]), each part of an entry has that error
    /// within its kind's sample, and the kinds are independent: the entry's variance is
    /// the sum of its parts'.
    pub(super) fn error_permille(&self, c: &Count) -> Option<u32> {
        if !self.sampled || c.objects() == 0 || self.total.bytes() == 0 {
            return None;
        }
        let whole = |c: &Count| Part {
            objects: c.objects(),
            bytes: c.bytes(),
        };
        let rel_var = if self.runtime_large().is_some() {
            let scales = self.scales();
            let (mut var, mut sum) = (0.0, 0.0);
            for large in [false, true] {
                let part = c.part(large);
                if part.objects == 0 {
                    continue;
                }
                let x = part.bytes as f64 * scales[usize::from(large)].bytes;
                let sample = self.total.part(large);
                var += x * x * self.rel_var(part, sample, self.sum_sq_sizes(Some(large)));
                sum += x;
            }
            if sum > 0.0 {
                var / (sum * sum)
            } else {
                0.0
            }
        } else {
            self.rel_var(whole(c), whole(&self.total), self.sum_sq_sizes(None))
        };
        Some(permille(rel_var * self.design_effect()))
    }

    /// The relative variance of an entry's counted part `p`, scaled by the `sample` it is
    /// part of, whose sizes' squares sum to `sum_sq` ([`AllocModel::error_permille`]).
    fn rel_var(&self, p: Part, sample: Part, sum_sq: f64) -> f64 {
        if p.objects == 0 || sample.bytes == 0 {
            return 0.0;
        }
        let (n, b, total) = (p.objects as f64, p.bytes as f64, sample.bytes as f64);
        let bytes_var = 1.0 / n + sum_sq / (total * total) - 2.0 * b / (n * total);
        let share_var = match self.runtime_objects {
            Some(_) if sample.objects > 0 => 1.0 / n - 1.0 / sample.objects as f64,
            _ => 0.0,
        };
        bytes_var.max(share_var).max(0.0)
    }

    /// The error of the total object figure. Counted from the runtime's own count: not a
    /// statistical error but a bound, what the mcaches may hold uncounted at either end
    /// of the window (at most [`MAX_UNCOUNTED_PER_P`] per P; `None` while GOMAXPROCS is
    /// unknown). Estimated from the bursts: as [`AllocModel::error_permille`] with the
    /// whole sample as the entry (`Σs²/B² − 1/N`), or the spread between bursts if wider
    /// — which does not cover the bursts' bias (the caller warns).
    pub(super) fn total_error_permille(&self) -> Option<u32> {
        if let Some(objects) = self.runtime_objects.filter(|_| self.sampled) {
            let bound = u64::from(self.max_procs?).saturating_mul(MAX_UNCOUNTED_PER_P);
            let total = objects.max(self.total.objects()).max(1);
            let permille = bound.saturating_mul(1000).div_ceil(total);
            return Some(u32::try_from(permille).unwrap_or(u32::MAX));
        }
        let rel_var = self.total_poisson_rel_var()?;
        let between = self.bursts.ratio_rel_var().unwrap_or(0.0);
        Some(permille(rel_var.max(between)))
    }

    fn total_poisson_rel_var(&self) -> Option<f64> {
        if !self.sampled || self.total.objects() == 0 || self.total.bytes() == 0 {
            return None;
        }
        let total = self.total.bytes() as f64;
        let rel_var = self.sum_sq_sizes(None) / (total * total) - 1.0 / self.total.objects() as f64;
        Some(rel_var.max(0.0))
    }

    /// How much wider the bursts' spread is than independent draws would make it (≥ 1).
    fn design_effect(&self) -> f64 {
        match (self.total_poisson_rel_var(), self.bursts.ratio_rel_var()) {
            (Some(poisson), Some(between)) if poisson > 0.0 => (between / poisson).max(1.0),
            _ => 1.0,
        }
    }

    /// Σ size² over every counted allocation, from the size classes; of one kind
    /// (`Some(large)`) or of all.
    fn sum_sq_sizes(&self, kind: Option<bool>) -> f64 {
        self.by_class
            .iter()
            .filter(|(&size, _)| kind.is_none_or(|large| (size > LARGE_OBJECT_OVER) == large))
            .map(|(&size, c)| c.objects() as f64 * (size as f64) * (size as f64))
            .sum()
    }
}

/// A relative variance as the 95 % error in per mille.
fn permille(rel_var: f64) -> u32 {
    (1960.0 * rel_var.max(0.0).sqrt()).round() as u32
}
