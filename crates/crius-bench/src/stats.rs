//! Percentiles over a series of samples.

use serde::{Deserialize, Serialize};

/// Summary of a series. Percentiles use the nearest-rank method: pXX is the smallest sample
/// such that at least XX% of the samples are less than or equal to it (so it is always a
/// sample that was really observed, and p100 is the max).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    /// None for an empty series. NaN samples are ignored.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        Some(Stats {
            n,
            min: sorted[0],
            p50: percentile_sorted(&sorted, 50.0),
            p95: percentile_sorted(&sorted, 95.0),
            max: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
        })
    }
}

/// Nearest-rank percentile of an ascending, non-empty slice; `q` in (0, 100].
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of an empty series");
    let n = sorted.len();
    // rank = ceil(q/100 * n), in 1..=n. The small epsilon keeps 0.95*20 = 19 from becoming 20
    // through floating-point error.
    let rank = ((q / 100.0) * n as f64 - 1e-9).ceil().max(1.0) as usize;
    sorted[rank.min(n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_series_has_no_stats() {
        assert_eq!(Stats::from_samples(&[]), None);
        assert_eq!(Stats::from_samples(&[f64::NAN]), None);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let s = Stats::from_samples(&[7.5]).unwrap();
        assert_eq!((s.n, s.min, s.p50, s.p95, s.max, s.mean), (1, 7.5, 7.5, 7.5, 7.5, 7.5));
    }

    #[test]
    fn nearest_rank_on_one_to_twenty() {
        // Unsorted input: 1..=20 reversed.
        let samples: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let s = Stats::from_samples(&samples).unwrap();
        assert_eq!(s.n, 20);
        assert_eq!(s.p50, 10.0); // rank ceil(10) = 10
        assert_eq!(s.p95, 19.0); // rank ceil(19) = 19, not 20
        assert_eq!(s.max, 20.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.mean, 10.5);
    }

    #[test]
    fn nearest_rank_rounds_up() {
        let sorted = [1.0, 2.0, 3.0];
        assert_eq!(percentile_sorted(&sorted, 50.0), 2.0); // ceil(1.5) = 2
        assert_eq!(percentile_sorted(&sorted, 95.0), 3.0); // ceil(2.85) = 3
        assert_eq!(percentile_sorted(&sorted, 100.0), 3.0);
        assert_eq!(percentile_sorted(&sorted, 1.0), 1.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&hundred, 50.0), 50.0);
        assert_eq!(percentile_sorted(&hundred, 95.0), 95.0);
    }

    #[test]
    fn nan_samples_are_ignored() {
        let s = Stats::from_samples(&[f64::NAN, 2.0, 4.0]).unwrap();
        assert_eq!((s.n, s.p50, s.max), (2, 2.0, 4.0));
    }
}
