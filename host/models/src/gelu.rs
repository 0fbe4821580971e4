//! GELU (the exact, erf form), vectorisable and parallel.
//!
//! candle's `gelu_erf` calls libm's scalar `erff` once per element on one
//! thread. For a batch of 64 sentences the feed-forward activations are
//! ~1.3 M values per layer, and that loop was 11 % of the whole embedding
//! time while the other core waited. Here erf is Eigen's rational
//! approximation (odd degree-13 numerator over even degree-8 denominator on
//! x clamped to [-4, 4], where f32 erf is ±1 anyway): only multiplies, adds
//! and one divide, which the compiler turns into AVX2 code, and the values
//! are split across the rayon pool running the forward pass.

use rayon::prelude::*;

/// Elements per parallel task: big enough that splitting costs nothing
/// next to the work, small enough that both cores share a query's.
const CHUNK: usize = 8 * 1024;

/// `x ← x · ½ · (1 + erf(x / √2))` for every element.
pub fn gelu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        for v in chunk {
            *v = gelu(*v);
        }
    });
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf(x) to within ~1e-7 absolute (Eigen's `generic_fast_erf_float`).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_candles_exact_gelu() {
        // A dense grid through the interesting range plus the tails.
        let xs: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 / 1000.0).collect();
        let reference = Tensor::from_vec(xs.clone(), xs.len(), &Device::Cpu)
            .and_then(|t| t.gelu_erf())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle gelu");
        let mut ours = xs.clone();
        gelu_in_place(&mut ours);
        let worst = ours
            .iter()
            .zip(&reference)
            .zip(&xs)
            .map(|((a, b), x)| (a - b).abs() / x.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "largest relative difference {worst}");
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(10.0) - 10.0).abs() < 1e-5);
        assert!(gelu(-10.0).abs() < 1e-5);
    }
}
