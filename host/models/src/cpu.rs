//! Which SIMD kernels this CPU gets.
//!
//! Caxton is built for baseline x86-64 so one binary runs on any x86-64
//! machine. The code where SIMD matters chooses at run time instead, by
//! CPUID: candle's quantized (GGUF) and f32 kernels, gemm's matrix
//! multiply, NumKong's vector distances, and our GELU. They all want
//! AVX2 with FMA (x86-64-v3) from the CPU, so that is what
//! [`simd_kernels`] reports: without it the local model runs 3–4× slower.
//! The f32 matrix products (gemm: the embedding encoder, candle's f32
//! matmul) also have AVX-512 kernels, reported by [`matrix_kernels`]:
//! on a CPU with AVX-512 they embed batches ~1.6× faster.

/// Whether the CPU running us has AVX2 and FMA (cached after the first call).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether the CPU has every feature of x86-64-v3 that the matrix
/// library's AVX2 kernels are compiled for.
#[cfg(target_arch = "x86_64")]
fn has_v3() -> bool {
    use std::is_x86_feature_detected as has;
    has!("avx2") && has!("fma") && has!("bmi1") && has!("bmi2") && has!("lzcnt")
}

/// Whether the CPU has the AVX-512 subsets (x86-64-v4) the matrix
/// library's AVX-512 kernels are compiled for.
#[cfg(target_arch = "x86_64")]
fn has_v4() -> bool {
    use std::is_x86_feature_detected as has;
    has_v3()
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl")
}

/// The kernels of the f32 matrix products (gemm) on this CPU: `avx512`,
/// `avx2+fma`, `neon` or `portable`.
pub fn matrix_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if has_v4() {
            return "avx512";
        }
        if has_v3() {
            return "avx2+fma";
        }
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        return "neon";
    }
    "portable"
}

/// gemm picks its kernels by one CPUID flag each (`avx512f`, `fma`) and
/// then asserts the whole feature set they were compiled for. A CPU with
/// the flag but not the set (AVX-512F without BW/DQ/VL: Xeon Phi; FMA
/// without AVX2: AMD Piledriver) would abort inside the first matrix
/// product, so models check this before they load and refuse with a
/// reason instead.
pub fn check_matrix_kernels() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx512f") && !has_v4() {
            return Err(
                "this CPU has AVX-512F without the rest of x86-64-v4 (BW, CD, DQ, VL, \
                 as on a Xeon Phi); the matrix library's kernels need all of them"
                    .to_string(),
            );
        }
        if has!("fma") && !has_v3() {
            return Err(
                "this CPU has FMA without the rest of x86-64-v3 (AVX2, BMI1/2, LZCNT, \
                 as on an AMD Piledriver); the matrix library's kernels need all of them"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// The kernel family this CPU gets, for logs and benchmarks:
/// `avx2+fma`, `neon`, or `portable`.
pub fn simd_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return "avx2+fma";
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        return "neon";
    }
    "portable"
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    use super::*;

    /// The kernel family to expect: `CAXTON_EXPECT_SIMD` when set (under
    /// an emulator `/proc/cpuinfo` is the host's, so `scripts/test` says
    /// what to expect there), else `family` of the CPU's flags as
    /// `/proc/cpuinfo` lists them.
    fn expected_kernels(family: impl Fn(&[&str]) -> Option<&'static str>) -> String {
        if let Ok(expected) = std::env::var("CAXTON_EXPECT_SIMD") {
            return expected;
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let fallback = if cfg!(target_arch = "aarch64") {
            "neon"
        } else {
            "portable"
        };
        family(&flags).unwrap_or(fallback).to_string()
    }

    /// The kernels chosen are the ones the CPU can run fastest.
    #[test]
    fn the_kernels_chosen_are_the_ones_the_cpu_has() {
        let expected = expected_kernels(|flags| {
            (flags.contains(&"avx2") && flags.contains(&"fma")).then_some("avx2+fma")
        });
        assert_eq!(simd_kernels(), expected);
    }

    /// The matrix kernels reported are the family the CPU's flags allow,
    /// the matrix library can run on this CPU, and its product is right.
    #[test]
    fn the_matrix_kernels_are_the_ones_the_cpu_has() {
        let expected = expected_kernels(|flags| {
            let all = |names: &[&str]| names.iter().all(|n| flags.contains(n));
            // `abm` is how /proc/cpuinfo spells LZCNT.
            let v3 = all(&["avx2", "fma", "bmi1", "bmi2", "abm"]);
            if v3 && all(&["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]) {
                Some("avx512")
            } else {
                v3.then_some("avx2+fma")
            }
        });
        assert_eq!(matrix_kernels(), expected);
        assert_eq!(check_matrix_kernels(), Ok(()));
        let (m, k, n) = (37, 70, 29);
        let a = values(m * k, 3);
        let b = values(k * n, 5);
        let mut c = vec![0f32; m * n];
        // SAFETY: a is m×k, b is k×n and c is m×n, all row-major; every
        // index the strides reach is in bounds, and c aliases neither.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
                let got = c[i * n + j];
                assert!((got - want).abs() < 1e-4, "[{i},{j}] {got} vs {want}");
            }
        }
    }

    /// Deterministic values in [-1, 1).
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A quantized matrix product, through whichever kernels candle picked
    /// for this CPU, equals the f32 product with the dequantized weights
    /// up to the activations' own 8-bit quantization. Run natively (AVX2)
    /// and by `scripts/test` under a CPU without AVX (the portable code).
    #[test]
    fn quantized_matmul_agrees_with_f32_on_this_cpu() {
        // One row (a decoded token) and three (a prompt) take different
        // paths; 18 output rows are four column quads and a pair.
        for m in [1, 3] {
            quantized_matmul_agrees_with_f32(18, 512, m);
        }
    }

    fn quantized_matmul_agrees_with_f32(rows: usize, k: usize, m: usize) {
        let cpu = &Device::Cpu;
        let w = Tensor::from_vec(values(rows * k, 7), (rows, k), cpu).expect("weights");
        let x = Tensor::from_vec(values(m * k, 11), (m, k), cpu).expect("input");
        // Each format the default model uses, and the four whose generic
        // loop has an AVX2 twin (vendor/candle-core).
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&w, dtype).expect("quantize");
            let expected = q
                .dequantize(cpu)
                .and_then(|wd| x.matmul(&wd.t()?))
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .expect("f32 product");
            let got = QMatMul::from_qtensor(q)
                .and_then(|mm| mm.forward(&x))
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .expect("quantized product");
            let error: f32 = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt();
            let norm: f32 = expected.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(
                error / norm < 0.02,
                "{dtype:?} on {} kernels, {m} row(s): relative error {}",
                simd_kernels(),
                error / norm
            );
        }
    }
}
