//! Small statistics: percentiles of recorded latencies, medians across runs.

use std::time::Duration;

/// The `p`-th percentile (0.0..=100.0) of `values` by the nearest-rank method: the smallest
/// value such that at least `p`% of the values are at or below it. `None` when empty.
///
/// Nearest rank (not interpolation) so that a reported p99 is a latency some request really
/// had, as load tools such as wrk and hdrhistogram report it.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || p.is_nan() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p = p.clamp(0.0, 100.0);
    // rank is 1-based: ceil(p/100 * n), at least 1.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// The median of `values` (mean of the two middle values for an even count). `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(mid).copied()
    } else {
        Some((sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0)
    }
}

/// Latencies in milliseconds, for percentiles.
pub fn millis(durations: &[Duration]) -> Vec<f64> {
    durations.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

/// p50 and p99 of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
}

impl Percentiles {
    /// The p50/p99 of `durations`; `None` when there are none.
    pub fn of(durations: &[Duration]) -> Option<Percentiles> {
        let ms = millis(durations);
        Some(Percentiles {
            p50: percentile(&ms, 50.0)?,
            p99: percentile(&ms, 99.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_one_to_hundred_is_the_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
    }

    #[test]
    fn p99_of_a_small_sample_is_its_maximum() {
        // 10 values: rank ceil(9.9) = 10, the largest; a p99 must not hide the one slow request.
        let v = [5.0, 1.0, 9.0, 2.0, 3.0, 4.0, 8.0, 7.0, 6.0, 250.0];
        assert_eq!(percentile(&v, 99.0), Some(250.0));
        assert_eq!(percentile(&v, 50.0), Some(5.0));
    }

    #[test]
    fn empty_input_has_no_percentile_or_median() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(median(&[]), None);
        assert_eq!(Percentiles::of(&[]), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.5]), Some(7.5));
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let d: Vec<Duration> = (1..=4).map(|i| Duration::from_micros(i * 500)).collect();
        let p = Percentiles::of(&d).expect("non-empty");
        assert!((p.p50 - 1.0).abs() < 1e-9, "{p:?}");
        assert!((p.p99 - 2.0).abs() < 1e-9, "{p:?}");
    }
}
