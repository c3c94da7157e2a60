//! Helpers shared by the tier tests: tiers to test, inputs, tolerances.

#![allow(dead_code)]

use jclip_kernels::{Isa, Kernels};

/// Lengths that hit every tail of 4-, 8- and 16-lane vectors and of the
/// register tiles, plus 0, 1 and primes.
pub const SWEEP: [usize; 14] = [0, 1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129, 2, 13];

/// Element offsets at which inputs and outputs start inside their buffers,
/// so that vector loads and stores meet every alignment.
pub const OFFSETS: [usize; 3] = [0, 1, 3];

/// Relative rounding error allowed per √(reduction length), in units of f32
/// epsilon: two independent roundings of a k-term sum differ by about
/// ε·√k·Σ|terms| and rarely by more than a few times that.
pub const ROUNDING_UNITS_PER_SQRT_K: f64 = 4.0;

/// Absolute error of the erf approximation in every tier.
pub const ERF_TOLERANCE: f64 = 1.5e-7;

/// Returns every supported tier except scalar, each to be compared with the scalar twin.
pub fn simd_tiers() -> Vec<Kernels> {
    Isa::supported()
        .into_iter()
        .filter(|&isa| isa != Isa::Scalar)
        .map(|isa| Kernels::for_isa(isa).expect("a supported tier has kernels"))
        .collect()
}

/// Returns the CPU features that `JCLIP_REQUIRE_FEATURES` names
/// (comma-separated, lower case), which the test run must find and use.
pub fn required_features() -> Vec<String> {
    std::env::var("JCLIP_REQUIRE_FEATURES")
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Returns every supported tier, scalar first.
pub fn all_tiers() -> Vec<Kernels> {
    Isa::supported().into_iter().map(|isa| Kernels::for_isa(isa).expect("a supported tier has kernels")).collect()
}

/// Deterministic values uniform in `[-1, 1)` (xorshift64).
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

/// `values` placed at `offset` of a buffer that is filled with NaN around it.
pub fn placed(values: &[f32], offset: usize) -> Vec<f32> {
    let mut buffer = vec![f32::NAN; offset + values.len() + 3];
    buffer[offset..offset + values.len()].copy_from_slice(values);
    buffer
}

/// Builds a thread pool of `threads` threads.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("failed to build a rayon pool")
}

/// Tolerance for a k-term sum of magnitude `magnitude` (Σ|terms|).
pub fn sum_tolerance(k: usize, magnitude: f64) -> f64 {
    ROUNDING_UNITS_PER_SQRT_K * f32::EPSILON as f64 * ((k + 1) as f64).sqrt() * magnitude + f32::MIN_POSITIVE as f64
}

/// erf in float64 by its Taylor series (|x| ≤ 3) or the continued fraction
/// of erfc (|x| > 3): slow, accurate to about 1e-13.
pub fn erf_f64(x: f64) -> f64 {
    let a = x.abs();
    let value = if a <= 3.0 {
        let mut term = a;
        let mut sum = a;
        let z = a * a;
        for n in 1..200 {
            term *= -z / n as f64;
            let contribution = term / (2 * n + 1) as f64;
            sum += contribution;
            if contribution.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut fraction = 0.0;
        for n in (1..100).rev() {
            fraction = (n as f64 / 2.0) / (a + fraction);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + fraction)
    };
    value.copysign(x)
}
