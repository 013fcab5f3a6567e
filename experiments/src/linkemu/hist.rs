//! A small fixed-size log-linear histogram of nanosecond values (HdrHistogram
//! style): exact below 64 ns, then 32 sub-buckets per power of two, i.e. a
//! relative error below 1/32 (≈ 3 %). Constant memory (1920 buckets, 15 kB), O(1) record.

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below `2 * SUB` get one bucket each.
const LINEAR: usize = 2 * SUB;
const LINEAR_U64: u64 = 2 << SUB_BITS;
/// Linear region, then one group of `SUB` buckets per exponent 6..=63.
const BUCKETS: usize = LINEAR + (63 - SUB_BITS as usize) * SUB;

/// Log-linear histogram of `u64` nanosecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    sum: u128,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR_U64 {
        return usize::try_from(v).unwrap_or(0);
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let sub = (v >> (exp - SUB_BITS)) & (SUB as u64 - 1);
    LINEAR + (exp - SUB_BITS - 1) as usize * SUB + usize::try_from(sub).unwrap_or(0)
}

/// Smallest value that falls into bucket `i`, and the bucket's width.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR_U64 {
        return (i, 1);
    }
    let j = i - LINEAR_U64;
    let exp = j / SUB as u64 + u64::from(SUB_BITS) + 1;
    let sub = j % SUB as u64;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    ((1u64 << exp) + sub * width, width)
}

/// Percentile summary of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of recorded values.
    pub count: u64,
    /// Mean (exact).
    pub mean_us: f64,
    /// Median (bucket midpoint, ≤ 3 % error).
    pub p50_us: f64,
    /// 99th percentile (bucket midpoint).
    pub p99_us: f64,
    /// 99.9th percentile (bucket midpoint).
    pub p999_us: f64,
    /// Maximum (exact).
    pub max_us: f64,
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.count += 1;
        self.sum += u128::from(ns);
        self.max = self.max.max(ns);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest recorded value.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in `[0, 1]` (midpoint of its bucket, never
    /// above the exact maximum); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // Rank of the wanted value, 1-based: ceil(q * count), at least 1.
        // The product lies in [0, count], so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bucket_range(i);
                return (lo + (width - 1) / 2).min(self.max);
            }
        }
        self.max
    }

    /// Mean of the recorded values (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Adds all values of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Percentiles in microseconds.
    pub fn summary(&self) -> Summary {
        let us = |ns: u64| ns as f64 / 1e3;
        Summary {
            count: self.count,
            mean_us: self.mean() / 1e3,
            p50_us: us(self.quantile(0.5)),
            p99_us: us(self.quantile(0.99)),
            p999_us: us(self.quantile(0.999)),
            max_us: us(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_all_values_monotonically() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(i >= last);
            last = i;
            let (lo, width) = bucket_range(i);
            assert!(
                lo <= v && v - lo < width,
                "v={v} i={i} lo={lo} width={width}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_bucket_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        for (q, exact) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 1.0 / 32.0,
                "q={q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert!((h.mean() - 500_005.0).abs() < 1e-6);
        let s = h.summary();
        assert_eq!(s.count, 100_000);
        assert!((s.max_us - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn empty_and_merge() {
        let mut a = Histogram::default();
        assert_eq!(a.quantile(0.5), 0);
        assert_eq!(a.summary(), Summary::default());
        let mut b = Histogram::default();
        b.record(7);
        a.record(3);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.quantile(1.0), 7);
        assert_eq!(a.quantile(0.5), 3);
    }
}
