//! Seeding and drawing: every unit has its own ChaCha8 stream, seeded from a stable hash of
//! (corpus seed, model key, layer, unit), so a unit's content never depends on which other units
//! or keys are generated, nor on the Rust release (std's hasher may change; FNV-1a does not).

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// FNV-1a, 64 bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub fn unit_rng(seed: u64, key: &str, layer: &str, unit: usize) -> ChaCha8Rng {
    let text = format!("{seed}\u{1f}{key}\u{1f}{layer}\u{1f}{unit}");
    ChaCha8Rng::seed_from_u64(fnv1a(text.as_bytes()))
}

/// Small helpers over a ChaCha8 stream.
pub trait Draw {
    /// Uniform in [0, 1).
    fn unit_f64(&mut self) -> f64;
    /// Uniform in [lo, hi).
    fn range_f32(&mut self, lo: f32, hi: f32) -> f32;
    /// Uniform in lo..=hi.
    fn range_usize(&mut self, lo: usize, hi: usize) -> usize;
    fn chance(&mut self, p: f64) -> bool;
    fn pick<T: Copy>(&mut self, items: &[T]) -> T;
    /// An index drawn with probability proportional to `weights`.
    fn weighted(&mut self, weights: &[f64]) -> usize;
}

impl Draw for ChaCha8Rng {
    fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range_f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit_f64() as f32
    }

    fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(lo <= hi);
        lo + ((u128::from(self.next_u64()) * (hi - lo + 1) as u128) >> 64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit_f64() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range_usize(0, items.len() - 1)]
    }

    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit_f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }
}
