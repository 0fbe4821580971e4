//! Softmax over one row of attention logits, vectorisable.
//!
//! Attention takes one exponential per pair of tokens per head: for a
//! 256-token text, 4.7 M of them. libm's scalar `expf` per element was
//! 6 % of embedding such a text and the loop around it another 12 %
//! (perf, 2 cores). Here exp is Cephes' polynomial on the reduced argument
//! and a power of two built from the exponent bits: multiplies, adds and a
//! rounding, which vectorise. The arguments are `x - max(row) <= 0`, so
//! only the range [-87, 0] matters (below it, exp is 0 in f32 anyway).
//!
//! Like [`crate::gelu`], the loop has a twin compiled for AVX2+FMA,
//! chosen at run time.

use crate::gelu::madd;

/// `row = softmax(row)`: exponentials of the differences to the largest
/// value (so none overflows), divided by their sum.
pub fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { softmax_avx2_fma(row) };
    }
    softmax::<{ cfg!(target_feature = "fma") }>(row);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_avx2_fma(row: &mut [f32]) {
    softmax::<true>(row);
}

#[inline(always)]
fn softmax<const FUSED: bool>(row: &mut [f32]) {
    // Eight running maxima and sums, so both loops vectorise (one running
    // value would force one comparison or addition after another).
    let mut lanes = [f32::NEG_INFINITY; 8];
    for chunk in row.chunks(8) {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(*v);
        }
    }
    let max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sums = [0f32; 8];
    for chunk in row.chunks_mut(8) {
        for (sum, v) in sums.iter_mut().zip(chunk) {
            *v = exp_nonpositive::<FUSED>(*v - max);
            *sum += *v;
        }
    }
    let inverse = 1.0 / sums.iter().sum::<f32>();
    row.iter_mut().for_each(|v| *v *= inverse);
}

/// e^x for x <= 0, to ~2 ulp (Cephes `expf`): x = n·ln 2 + r with
/// |r| <= ln 2 / 2, e^r by a degree-6 polynomial, 2^n from the exponent bits.
#[inline(always)]
fn exp_nonpositive<const FUSED: bool>(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = madd::<FUSED>(n, -LN2_HI, x);
    let r = madd::<FUSED>(n, -LN2_LO, r);
    let mut p = 1.987_569_1e-4_f32;
    p = madd::<FUSED>(p, r, 1.398_2e-3);
    p = madd::<FUSED>(p, r, 8.333_452e-3);
    p = madd::<FUSED>(p, r, 4.166_579_6e-2);
    p = madd::<FUSED>(p, r, 1.666_666_5e-1);
    p = madd::<FUSED>(p, r, 5e-1);
    let y = madd::<FUSED>(p, r * r, r + 1.0);
    // n is in [-126, 0]: a normal power of two.
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_over_the_range_softmax_uses() {
        let mut worst = 0f32;
        for i in 0..=100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            for (ours, fused) in [
                (exp_nonpositive::<false>(x), false),
                (exp_nonpositive::<true>(x), true),
            ] {
                let want = x.exp();
                let relative = ((ours - want) / want).abs();
                assert!(relative < 1e-6, "exp({x}) fused={fused}: {ours} vs {want}");
                worst = worst.max(relative);
            }
        }
        assert!(worst > 0.0, "compared against something");
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        for len in [1, 7, 8, 9, 256] {
            let mut row: Vec<f32> = (0..len)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) * 1.5)
                .collect();
            let original = row.clone();
            softmax_in_place(&mut row);
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "length {len}: sum {sum}");
            let max = original.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let denominator: f32 = original.iter().map(|v| (v - max).exp()).sum();
            for (got, x) in row.iter().zip(&original) {
                let want = (x - max).exp() / denominator;
                assert!((got - want).abs() < 1e-6, "length {len}: {got} vs {want}");
            }
        }
    }
}
