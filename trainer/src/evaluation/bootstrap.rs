//! Intervals: the paired bootstrap of MILAN-PMI's differences over test units, and mean ± std
//! over trials.

use serde::{Deserialize, Serialize};

/// Bootstrap resamples of the paired intervals.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The paired bootstrap of `mean_t mean_i (a_ti - b_ti)`: each resample draws every trial's test
/// neurons with replacement (the same draw for both systems, so the pairing is kept). Returns
/// (mean, 2.5th percentile, 97.5th percentile); percentiles interpolate linearly, as numpy's.
pub fn paired_bootstrap(
    trials: &[(Vec<f64>, Vec<f64>)],
    resamples: usize,
    seed: u64,
) -> (f64, f64, f64) {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    let diffs: Vec<Vec<f64>> = trials
        .iter()
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect())
        .collect();
    let mean_of = |d: &[f64]| d.iter().sum::<f64>() / d.len().max(1) as f64;
    let mean = diffs.iter().map(|d| mean_of(d)).sum::<f64>() / diffs.len().max(1) as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            diffs
                .iter()
                .map(|d| {
                    if d.is_empty() {
                        return 0.0;
                    }
                    (0..d.len())
                        .map(|_| d[(rng.next_u64() % d.len() as u64) as usize])
                        .sum::<f64>()
                        / d.len() as f64
                })
                .sum::<f64>()
                / diffs.len().max(1) as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if stats.is_empty() {
            return mean;
        }
        let rank = q * (stats.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(stats.len() - 1);
        stats[lo] + (stats[hi] - stats[lo]) * (rank - lo as f64)
    };
    (mean, pct(0.025), pct(0.975))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n.max(1.0);
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        MeanStd { mean, std }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paired_bootstrap_centres_on_the_mean_difference_and_keeps_the_pairing() {
        // Two systems that differ by exactly 0.1 on every neuron: the interval is a point.
        let a: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 0.1).collect();
        let (mean, low, high) = paired_bootstrap(&[(a.clone(), b)], 500, 1);
        assert!((mean - 0.1).abs() < 1e-12);
        assert!((low - 0.1).abs() < 1e-12 && (high - 0.1).abs() < 1e-12);
        // Noisy differences around 0: the interval holds 0 and is narrower with more neurons.
        let noise = |n: usize, s: u64| -> Vec<f64> {
            (0..n)
                .map(|i| (((i as u64 * 2654435761 + s) % 1000) as f64 / 1000.0) - 0.5)
                .collect()
        };
        let zeros = |n: usize| vec![0.0; n];
        let (m1, l1, h1) = paired_bootstrap(&[(noise(40, 3), zeros(40))], 2000, 2);
        let (_, l2, h2) = paired_bootstrap(&[(noise(400, 3), zeros(400))], 2000, 2);
        assert!(l1 <= m1 && m1 <= h1);
        assert!(l1 < 0.05 && h1 > -0.05, "[{l1}, {h1}]");
        assert!(h2 - l2 < h1 - l1, "[{l2}, {h2}] vs [{l1}, {h1}]");
        // Several trials average.
        let (m, _, _) = paired_bootstrap(&[(vec![1.0], vec![0.0]), (vec![0.0], vec![0.0])], 10, 0);
        assert!((m - 0.5).abs() < 1e-12);
    }
}
