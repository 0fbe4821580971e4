//! GELU (the exact, erf form), vectorisable and parallel.
//!
//! candle's `gelu_erf` calls libm's scalar `erff` once per element on one
//! thread. For a batch of 64 sentences the feed-forward activations are
//! ~1.3 M values per layer, and that loop was 11 % of the whole embedding
//! time while the other core waited. Here erf is Eigen's rational
//! approximation (odd degree-13 numerator over even degree-8 denominator on
//! x clamped to [-4, 4], where f32 erf is ±1 anyway): only multiplies, adds
//! and one divide, which vectorise, and the values are split across the
//! rayon pool running the forward pass.
//!
//! The binary is built for baseline x86-64 (it must run on any CPU), so the
//! loop has a twin compiled for AVX2+FMA, chosen at run time
//! ([`crate::cpu::has_avx2_fma`]). The portable twin writes `a * b + c`:
//! `f32::mul_add` without FMA hardware is a libm call per operation.

use rayon::prelude::*;

/// Elements per parallel task: big enough that splitting costs nothing
/// next to the work, small enough that both cores share a query's.
const CHUNK: usize = 8 * 1024;

/// `x ← x · ½ · (1 + erf(x / √2))` for every element.
pub fn gelu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(gelu_chunk);
}

fn gelu_chunk(chunk: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { gelu_chunk_avx2_fma(chunk) };
    }
    gelu_chunk_portable(chunk);
}

/// The loop for whatever the binary was built for: fused multiply-adds
/// only when the build target itself guarantees FMA.
fn gelu_chunk_portable(chunk: &mut [f32]) {
    for v in chunk {
        *v = gelu::<{ cfg!(target_feature = "fma") }>(*v);
    }
}

/// The same loop, compiled for AVX2+FMA (8 lanes, fused multiply-adds).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_chunk_avx2_fma(chunk: &mut [f32]) {
    for v in chunk {
        *v = gelu::<true>(*v);
    }
}

#[inline(always)]
fn gelu<const FUSED: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<FUSED>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `a * b + c`, rounded once when `FUSED`.
#[inline(always)]
pub(crate) fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

/// erf(x) to within ~1e-7 absolute (Eigen's `generic_fast_erf_float`).
#[inline(always)]
fn erf<const FUSED: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = madd::<FUSED>(p, x2, 2.770_681_4e-8);
    p = madd::<FUSED>(p, x2, -2.101_024e-6);
    p = madd::<FUSED>(p, x2, -5.692_506_4e-5);
    p = madd::<FUSED>(p, x2, -7.349_906_3e-4);
    p = madd::<FUSED>(p, x2, -2.954_6e-3);
    p = madd::<FUSED>(p, x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5_f32;
    q = madd::<FUSED>(q, x2, -2.133_740_6e-4);
    q = madd::<FUSED>(q, x2, -1.682_827e-3);
    q = madd::<FUSED>(q, x2, -7.373_329e-3);
    q = madd::<FUSED>(q, x2, -1.426_474e-2);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// A dense grid through the interesting range plus the tails, and
    /// candle's exact GELU of it.
    fn grid_and_reference() -> (Vec<f32>, Vec<f32>) {
        let xs: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 / 1000.0).collect();
        let reference = Tensor::from_vec(xs.clone(), xs.len(), &Device::Cpu)
            .and_then(|t| t.gelu_erf())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle gelu");
        (xs, reference)
    }

    fn worst_relative_difference(ours: &[f32], reference: &[f32], xs: &[f32]) -> f32 {
        ours.iter()
            .zip(reference)
            .zip(xs)
            .map(|((a, b), x)| (a - b).abs() / x.abs().max(1.0))
            .fold(0f32, f32::max)
    }

    #[test]
    fn matches_candles_exact_gelu() {
        let (xs, reference) = grid_and_reference();
        let mut ours = xs.clone();
        gelu_in_place(&mut ours);
        let worst = worst_relative_difference(&ours, &reference, &xs);
        assert!(worst < 1e-6, "largest relative difference {worst}");
        assert_eq!(gelu::<true>(0.0), 0.0);
        assert!((gelu::<true>(10.0) - 10.0).abs() < 1e-5);
        assert!(gelu::<false>(-10.0).abs() < 1e-5);
    }

    /// Whichever twin the CPU running the test gets, the other one is held
    /// to the same bound: the portable loop is what a CPU without AVX2
    /// runs, and a CI machine with AVX2 would otherwise never run it.
    #[test]
    fn both_twins_match_candle() {
        let (xs, reference) = grid_and_reference();
        let mut portable = xs.clone();
        gelu_chunk_portable(&mut portable);
        let worst = worst_relative_difference(&portable, &reference, &xs);
        assert!(
            worst < 1e-6,
            "portable: largest relative difference {worst}"
        );
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx2_fma() {
            let mut fused = xs.clone();
            // SAFETY: checked just above.
            unsafe { gelu_chunk_avx2_fma(&mut fused) };
            let worst = worst_relative_difference(&fused, &reference, &xs);
            assert!(
                worst < 1e-6,
                "avx2+fma: largest relative difference {worst}"
            );
        }
    }
}
