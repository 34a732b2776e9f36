//! A latency histogram with logarithmic buckets, in the manner of
//! HdrHistogram: fixed memory, constant-time recording, and percentiles
//! within 1/128 (0.8 %) of the recorded value at any magnitude.
//!
//! Values below 256 have a bucket each. Above, every power of two
//! `[2^k, 2^(k+1))` is split into 128 equal sub-buckets, so a bucket's width
//! is at most 1/128 of the values it holds. Values are meant to be
//! nanoseconds; anything over [`VALUE_MAX`] (about 68.7 s) is recorded as
//! `VALUE_MAX`. It never allocates after [`Histogram::new`].

/// Bits of precision kept below a value's most significant bit.
const SUB_BUCKET_BITS: u32 = 7;
/// Sub-buckets per power of two.
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Largest value recorded as itself: 2^36 - 1 (ns: about 68.7 s).
pub const VALUE_MAX: u64 = (1 << 36) - 1;
/// Buckets needed to reach [`VALUE_MAX`].
const BUCKETS: usize = bucket_of(VALUE_MAX) + 1;

/// The bucket holding `value` (at most [`VALUE_MAX`]).
const fn bucket_of(value: u64) -> usize {
    if value < 2 * SUB_BUCKETS {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BUCKET_BITS;
    // (value >> shift) is in [SUB_BUCKETS, 2 * SUB_BUCKETS).
    (shift as u64 * SUB_BUCKETS + (value >> shift)) as usize
}

/// The smallest and largest value that fall into bucket `index`.
fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return (index, index);
    }
    let shift = index / SUB_BUCKETS - 1;
    let top = index - shift * SUB_BUCKETS;
    let low = top << shift;
    (low, low + (1 << shift) - 1)
}

/// Counts of values in logarithmic buckets; see the module docs.
///
/// ```
/// use meridian::cli::bench::Histogram;
///
/// let mut latencies_ns = Histogram::new();
/// for v in 1..=1000 {
///     latencies_ns.record(v * 1000);
/// }
/// let p50 = latencies_ns.value_at_quantile(0.50);
/// assert!((496_000..=504_000).contains(&p50), "{p50}");
/// assert_eq!(latencies_ns.max(), 1_000_000);
/// ```
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Histogram {
    /// An empty histogram (about 30 KiB).
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one value; values over [`VALUE_MAX`] count as `VALUE_MAX`.
    pub fn record(&mut self, value: u64) {
        let value = value.min(VALUE_MAX);
        self.counts[bucket_of(value)] += 1;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean of the values recorded (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value below or at which a fraction `quantile` (0.0–1.0) of the
    /// recorded values fall: the highest value of the bucket holding the
    /// value of that rank, never more than the largest value recorded.
    /// 0 when empty.
    pub fn value_at_quantile(&self, quantile: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let quantile = quantile.clamp(0.0, 1.0);
        // The rank (1-based) of the value asked for.
        let rank = ((quantile * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (_, high) = bucket_range(index);
                return high.clamp(self.min, self.max);
            }
        }
        unreachable!("the bucket counts add up to count")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact value of rank ceil(q * n) in sorted `values`.
    fn exact(values: &mut [u64], quantile: f64) -> u64 {
        values.sort_unstable();
        let rank = ((quantile * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    }

    fn within_precision(got: u64, want: u64) -> bool {
        // A bucket is at most 1/128 of its values wide, and the answer is
        // its highest value.
        got >= want && got - want <= want / SUB_BUCKETS
    }

    #[test]
    fn buckets_are_contiguous_and_each_value_lies_in_its_own() {
        let mut next_low = 0;
        for index in 0..BUCKETS {
            let (low, high) = bucket_range(index);
            assert_eq!(low, next_low, "bucket {index} starts where the last ended");
            assert!(high >= low);
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(high), index);
            assert!(
                high - low <= low / SUB_BUCKETS,
                "bucket {index} [{low}, {high}] is wider than 1/128 of its values"
            );
            next_low = high + 1;
        }
        assert_eq!(next_low, VALUE_MAX + 1, "the last bucket ends at VALUE_MAX");
    }

    #[test]
    fn small_values_have_exact_percentiles() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.value_at_quantile(0.5), 50);
        assert_eq!(h.value_at_quantile(0.99), 99);
        assert_eq!(h.value_at_quantile(0.999), 100);
        assert_eq!(h.value_at_quantile(0.0), 1);
        assert_eq!(h.value_at_quantile(1.0), 100);
        assert_eq!((h.min(), h.max(), h.count()), (1, 100, 100));
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn percentiles_of_latencies_are_within_one_percent() {
        // Microsecond to hundred-millisecond latencies in nanoseconds, with a
        // long tail: 1 % of the values are 100x slower.
        let mut values: Vec<u64> = (0..100_000u64)
            .map(|i| {
                let base = 20_000 + (i * 7919) % 180_000;
                if i % 100 == 0 {
                    base * 100
                } else {
                    base
                }
            })
            .collect();
        let mut h = Histogram::new();
        for &v in &values {
            h.record(v);
        }
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999] {
            let want = exact(&mut values, q);
            let got = h.value_at_quantile(q);
            assert!(within_precision(got, want), "p{q}: got {got}, want {want}");
        }
        assert_eq!(h.max(), *values.iter().max().unwrap());
        assert_eq!(h.value_at_quantile(1.0), h.max());
    }

    #[test]
    fn a_single_slow_outlier_sets_p999_only_when_it_is_a_thousandth() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(100_000);
        }
        h.record(50_000_000);
        assert!(within_precision(h.value_at_quantile(0.99), 100_000));
        assert!(within_precision(h.value_at_quantile(0.999), 100_000));
        assert_eq!(h.value_at_quantile(0.9999), 50_000_000);
    }

    #[test]
    fn merged_histograms_equal_one_recording_everything() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..10_000u64 {
            let value = v * v;
            if v % 3 == 0 {
                a.record(value)
            } else {
                b.record(value)
            }
            all.record(value);
        }
        a.merge(&b);
        assert_eq!(a.counts, all.counts);
        assert_eq!(
            (a.count(), a.min(), a.max()),
            (all.count(), 0, 9_999 * 9_999)
        );
        for q in [0.5, 0.99, 0.999] {
            assert_eq!(a.value_at_quantile(q), all.value_at_quantile(q));
        }
    }

    #[test]
    fn values_beyond_the_range_are_clamped_and_an_empty_histogram_reads_zero() {
        let mut h = Histogram::new();
        assert_eq!(h.value_at_quantile(0.99), 0);
        assert_eq!((h.min(), h.max(), h.mean()), (0, 0, 0.0));
        h.record(u64::MAX);
        assert_eq!(h.max(), VALUE_MAX);
        assert_eq!(h.value_at_quantile(0.5), VALUE_MAX);
    }
}
