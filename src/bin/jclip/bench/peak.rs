//! The machine's FP32 arithmetic ceiling and the engine's matrix product
//! speed, to put a model's GFLOP/s in proportion.
//!
//! The ceiling is measured, not computed from a data sheet: every thread
//! runs independent chains of fused multiply-adds on registers with the
//! widest vectors the CPU has, so no memory access limits it. No matrix
//! product can exceed it; a good one reaches 80–90 % of it.

use std::time::{Duration, Instant};

use jclip_kernels::{Epilogue, PackedMatrix};
use serde::Serialize;

/// Independent accumulator chains: 8 keep two FMA units with a 4-cycle
/// latency busy, and 12 leave spare. A core with more units would need more,
/// and its ceiling would read low.
const CHAINS: usize = 12;
/// Wall time of one probe; the best of [`PROBE_TRIES`] probes counts.
const PROBE_TIME: Duration = Duration::from_millis(200);
const PROBE_TRIES: usize = 3;

/// Shape of the matrix product timed with the engine's kernels: a 256-token
/// batch through one half of the text tower's GEGLU up-projection.
const MATMUL_ROWS: usize = 256;
const MATMUL_N: usize = 3072;
const MATMUL_K: usize = 768;
const MATMUL_TRIES: usize = 3;

/// The measured ceilings at one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct Peaks {
    pub threads: usize,
    /// FP32 fused multiply-add throughput of all threads, GFLOP/s.
    pub fma_gflops: f64,
    /// The instructions of the FMA probe, e.g. "avx512f".
    pub fma_instructions: &'static str,
    /// The engine's `linear` kernel on a `rows × n × k` product, GFLOP/s.
    pub matmul_gflops: f64,
    /// `[rows, n, k]` of that product.
    pub matmul_shape: [usize; 3],
}

/// Measures both ceilings with the model's kernels and thread count.
pub fn measure(model: &jclip::Model) -> Peaks {
    let threads = model.threads();
    let (fma_gflops, fma_instructions) = fma_peak_gflops(threads);
    Peaks {
        threads,
        fma_gflops,
        fma_instructions,
        matmul_gflops: matmul_gflops(model),
        matmul_shape: [MATMUL_ROWS, MATMUL_N, MATMUL_K],
    }
}

/// Times `Kernels::linear` on the model's worker pool, best of a few tries.
fn matmul_gflops(model: &jclip::Model) -> f64 {
    // Values in [-1, 1) from a fixed integer pattern; the timing does not depend on them.
    let pattern = |i: usize| ((i * 7919) % 2003) as f32 / 1001.5 - 1.0;
    let x: Vec<f32> = (0..MATMUL_ROWS * MATMUL_K).map(pattern).collect();
    let w: Vec<f32> = (0..MATMUL_N * MATMUL_K).map(|i| pattern(i + 1)).collect();
    let packed = PackedMatrix::from_f32(&w, MATMUL_N, MATMUL_K);
    let mut y = vec![0.0f32; MATMUL_ROWS * MATMUL_N];
    let kernels = *model.kernels();
    let mut best = f64::INFINITY;
    for _ in 0..MATMUL_TRIES {
        let started = Instant::now();
        model.install(|| kernels.linear(&x, MATMUL_ROWS, &packed, Epilogue::default(), &mut y));
        best = best.min(started.elapsed().as_secs_f64());
    }
    std::hint::black_box(&y);
    2.0 * (MATMUL_ROWS * MATMUL_N * MATMUL_K) as f64 / best / 1e9
}

/// Returns the FP32 FMA throughput of `threads` threads in GFLOP/s and the
/// instruction set used, best of a few probes.
pub fn fma_peak_gflops(threads: usize) -> (f64, &'static str) {
    let (probe, instructions) = fma_probe();
    // Calibrate: one thread, a short run, scaled to the probe time.
    let mut iterations = 1u64 << 16;
    loop {
        let started = Instant::now();
        std::hint::black_box(probe(iterations));
        let elapsed = started.elapsed();
        if elapsed >= PROBE_TIME / 20 {
            let scale = PROBE_TIME.as_secs_f64() / elapsed.as_secs_f64();
            iterations = ((iterations as f64 * scale) as u64).max(1);
            break;
        }
        iterations *= 4;
    }
    let lanes = lanes_of(instructions) as f64;
    let flops = 2.0 * CHAINS as f64 * lanes * iterations as f64 * threads as f64;
    let mut best = f64::INFINITY;
    for _ in 0..PROBE_TRIES {
        let barrier = std::sync::Barrier::new(threads + 1);
        let started = std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    barrier.wait();
                    std::hint::black_box(probe(iterations));
                });
            }
            barrier.wait();
            Instant::now()
        });
        best = best.min(started.elapsed().as_secs_f64());
    }
    (flops / best / 1e9, instructions)
}

/// Values per vector of each probe.
fn lanes_of(instructions: &str) -> usize {
    match instructions {
        "avx512f" => 16,
        "avx2+fma" => 8,
        "neon" => 4,
        _ => 1,
    }
}

/// Picks the widest FMA probe this CPU runs.
fn fma_probe() -> (fn(u64) -> f32, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (x86::probe_avx512, "avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return (x86::probe_avx2, "avx2+fma");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return (arm::probe_neon, "neon");
    }
    #[allow(unreachable_code)]
    (probe_scalar, "scalar")
}

/// Runs `iterations` rounds of one multiply-add on each of [`CHAINS`]
/// independent scalar accumulators.
fn probe_scalar(iterations: u64) -> f32 {
    let mut acc = [0.0f32; CHAINS];
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999_999, 1e-6);
        }
    }
    acc.iter().sum()
}

// NOTE: AVX-512 intrinsics are stable from Rust 1.89, the version that the
// AVX-512 kernel tier of jclip-kernels needs as well.
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    pub fn probe_avx512(iterations: u64) -> f32 {
        // SAFETY: fma_probe returns this function only when the CPU has AVX-512F.
        unsafe { chains_avx512(iterations) }
    }

    pub fn probe_avx2(iterations: u64) -> f32 {
        // SAFETY: fma_probe returns this function only when the CPU has AVX2 and FMA.
        unsafe { chains_avx2(iterations) }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn chains_avx512(iterations: u64) -> f32 {
        // The accumulators converge to 1, far from overflow and subnormals.
        let scale = _mm512_set1_ps(0.999_999);
        let offset = _mm512_set1_ps(1e-6);
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, scale, offset);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chains_avx2(iterations: u64) -> f32 {
        let scale = _mm256_set1_ps(0.999_999);
        let offset = _mm256_set1_ps(1e-6);
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, scale, offset);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut total = 0.0;
        for a in acc {
            // SAFETY: `lanes` has room for the 8 floats of one 256-bit vector.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::CHAINS;

    pub fn probe_neon(iterations: u64) -> f32 {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { chains_neon(iterations) }
    }

    /// # Safety
    /// The CPU must support NEON (every aarch64 CPU does).
    #[target_feature(enable = "neon")]
    unsafe fn chains_neon(iterations: u64) -> f32 {
        let scale = vdupq_n_f32(0.999_999);
        let offset = vdupq_n_f32(1e-6);
        let mut acc = [vdupq_n_f32(0.0); CHAINS];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = vfmaq_f32(offset, *a, scale);
            }
        }
        acc.iter().map(|&a| vaddvq_f32(a)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fma_probes_agree_with_the_scalar_one() {
        // Every probe computes the same recurrence on every lane, so its sum is
        // the scalar sum times the lanes, up to rounding of the final reduction.
        let (probe, instructions) = fma_probe();
        let lanes = lanes_of(instructions) as f32;
        let expected = probe_scalar(1000) * lanes;
        let actual = probe(1000);
        assert!((actual - expected).abs() <= 1e-4 * expected.abs(), "{instructions}: {actual} vs {expected}");
    }
}
