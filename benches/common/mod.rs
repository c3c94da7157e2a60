//! Inputs, baselines and the FMA peak loops shared by the benchmarks.
//!
//! Each benchmark includes this module and uses part of it.
#![allow(dead_code)]

use jclip_kernels::{Epilogue, Kernels, PackedMatrix};

/// Tokens per call: one text, short batches, one image (197), long batches.
pub const ROWS: [usize; 6] = [1, 16, 64, 197, 512, 1576];
/// (N, K) of every linear layer of the two towers: attention output and
/// patch embedding, fused QKV, one GEGLU or SwiGLU half, SwiGLU down
/// projection, the fused GEGLU up projection, GEGLU down projection.
pub const LAYERS: [(usize, usize); 6] = [(768, 768), (2304, 768), (2048, 768), (768, 2048), (6144, 768), (768, 3072)];

/// Returns `len` deterministic pseudo-random values in [-1, 1).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Builds a rayon pool of `threads` workers.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("failed to build a rayon pool")
}

/// `y = x·wᵀ` with the `gemm` crate; `w` is row-major `[n, k]`.
pub fn gemm_crate(x: &[f32], w: &[f32], y: &mut [f32], m: usize, n: usize, k: usize, threads: usize) {
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: x is [m, k] row-major and y is [m, n] row-major. w is read as
    // its transpose [k, n], with row stride 1 and column stride k. The three
    // slices have exactly those elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Panics unless jclip and the `gemm` crate agree on `m×n×k`, so that a
/// benchmark never times a wrong result.
pub fn check_against_gemm(kernels: &Kernels, m: usize, n: usize, k: usize) {
    let x = values(m * k, 1);
    let w = values(n * k, 2);
    let packed = PackedMatrix::from_f32(&w, n, k);
    let mut ours = vec![f32::NAN; m * n];
    let mut theirs = vec![f32::NAN; m * n];
    kernels.linear(&x, m, &packed, Epilogue::default(), &mut ours);
    gemm_crate(&x, &w, &mut theirs, m, n, k, 1);
    let tolerance = 1e-5 * (k as f32).sqrt();
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() <= tolerance, "{m}×{n}×{k} element {i}: jclip {a}, gemm {b}");
    }
}

#[cfg(target_arch = "x86_64")]
pub mod peak {
    use std::arch::x86_64::*;

    /// FMA chains in flight: more than latency × ports (4 cycles × 2 on recent
    /// Intel cores), so that the chains do not limit the rate.
    pub const CHAINS: usize = 16;

    /// Runs `iterations × CHAINS` AVX-512 FMAs and returns a value that depends on all of them.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iterations: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(0.0); CHAINS];
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm512_fmadd_ps(*chain, a, b);
            }
        }
        let mut total = _mm512_set1_ps(0.0);
        for chain in acc {
            total = _mm512_add_ps(total, chain);
        }
        _mm512_reduce_add_ps(total)
    }

    /// As [`fma_avx512`] with `vdpbf16ps`, which does 2 multiply-adds per
    /// f32 lane, so 4 floating-point operations per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dpbf16_avx512(iterations: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(0.0); CHAINS];
        // Products of 2⁻¹⁰ stay normal and far from overflow over any run.
        let pairs = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0 / 1024.0), _mm512_set1_ps(1.0 / 1024.0));
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm512_dpbf16_ps(*chain, pairs, pairs);
            }
        }
        let mut total = _mm512_set1_ps(0.0);
        for chain in acc {
            total = _mm512_add_ps(total, chain);
        }
        _mm512_reduce_add_ps(total)
    }

    /// Runs `iterations × CHAINS` AVX-512 VNNI `vpdpbusd` (64 byte products
    /// added into 16 i32 lanes each) and returns a value that depends on all of them.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dpbusd_avx512(iterations: usize) -> i32 {
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        let a = _mm512_set1_epi32(0x0101_0101);
        let b = _mm512_set1_epi32(0x01ff_01ff);
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm512_dpbusd_epi32(*chain, a, b);
            }
        }
        let mut total = _mm512_setzero_si512();
        for chain in acc {
            total = _mm512_add_epi32(total, chain);
        }
        _mm512_reduce_add_epi32(total)
    }

    /// As [`fma_avx512`] on 256-bit registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iterations: usize) -> f32 {
        let mut acc = [_mm256_set1_ps(0.0); CHAINS];
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm256_fmadd_ps(*chain, a, b);
            }
        }
        let mut sums = [0.0f32; 8];
        let mut total = _mm256_set1_ps(0.0);
        for chain in acc {
            total = _mm256_add_ps(total, chain);
        }
        // SAFETY: `sums` has room for 8 floats.
        unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), total) };
        sums.iter().sum()
    }
}
