//! Element-wise activations: exact (erf) GELU and SiLU.
//!
//! The erf approximation uses two regimes with coefficients fitted for this
//! crate by least squares in float64 (Chebyshev nodes): `x·P(x²)` for
//! |x| ≤ 1 and `1 − exp(−x²)·Q(1/(1 + x/2))` for 1 < |x| < 4, with erf = ±1
//! beyond. Evaluated in f32 the absolute error stays below 1.5e-7 on
//! [−6, 6] (checked by the `erf_matches_f64_reference` test).

use rayon::prelude::*;

use crate::isa::Kernels;
use crate::simd::{self, Simd};

/// Values per parallel task of the slice kernels.
const VALUES_PER_TASK: usize = 1 << 14;

/// Coefficients of `P(z)`, lowest degree first, with erf(x) ≈ x·P(x²) for |x| ≤ 1.
pub(crate) const ERF_SMALL: [f32; 7] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    -0.376_126_3,
    0.112_836_26,
    -0.026_855_4,
    0.005_191_216_6,
    -0.000_803_482_8,
    7.933_422_4e-5,
];

/// Coefficients of `Q(t)`, lowest degree first, with
/// erf(x) ≈ 1 − exp(−x²)·Q(t), t = 1/(1 + x/2), for 1 < x < 4.
pub(crate) const ERF_LARGE: [f32; 8] = [
    -0.000_159_166_05,
    0.284_986_36,
    0.259_225_27,
    0.349_389_1,
    -0.106_831_87,
    0.567_138_1,
    -0.473_749_35,
    0.120_059_65,
];

/// |x| at and above which erf(x) is ±1 in f32 (erfc(4) ≈ 1.5e-8).
pub(crate) const ERF_SATURATION: f32 = 4.0;

/// Returns erf(x) to about 1.5e-7 absolute error.
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let magnitude = if a <= 1.0 {
        let z = a * a;
        let mut p = ERF_SMALL[6];
        for &c in ERF_SMALL[..6].iter().rev() {
            p = p * z + c;
        }
        a * p
    } else if a < ERF_SATURATION {
        let t = 1.0 / (1.0 + 0.5 * a);
        let mut q = ERF_LARGE[7];
        for &c in ERF_LARGE[..7].iter().rev() {
            q = q * t + c;
        }
        1.0 - (-a * a).exp() * q
    } else if a.is_nan() {
        return x;
    } else {
        1.0
    };
    magnitude.copysign(x)
}

/// Exact GELU: `0.5·x·(1 + erf(x/√2))`, as PyTorch's `nn.GELU()` default.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// SiLU: `x·sigmoid(x)`, computed as `x / (1 + exp(−x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Applies [`gelu`] to every element in place.
pub fn gelu_in_place(values: &mut [f32]) {
    for v in values {
        *v = gelu(*v);
    }
}

/// Applies [`silu`] to every element in place.
pub fn silu_in_place(values: &mut [f32]) {
    for v in values {
        *v = silu(*v);
    }
}

/// Replaces `row` by its softmax, `exp(x − max) / Σ exp(x − max)`.
pub(crate) fn softmax_row_scalar(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inverse = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inverse;
    }
}

pub(crate) fn erf_scalar(values: &mut [f32]) {
    for v in values {
        *v = erf(*v);
    }
}

/// The element-wise functions with a SIMD form.
#[derive(Clone, Copy)]
pub(crate) enum Elementwise {
    Erf,
    Gelu,
    Silu,
}

#[inline(always)]
fn apply<S: Simd>(s: S, function: Elementwise, v: S::F) -> S::F {
    match function {
        Elementwise::Erf => simd::erf(s, v),
        Elementwise::Gelu => simd::gelu(s, v),
        Elementwise::Silu => simd::silu(s, v),
    }
}

/// Applies `function` to every value in place.
#[inline(always)]
pub(crate) fn elementwise_simd<S: Simd>(s: S, function: Elementwise, values: &mut [f32]) {
    let len = values.len();
    let ptr = values.as_mut_ptr();
    for c in (0..len).step_by(S::LANES) {
        let lanes = S::LANES.min(len - c);
        // SAFETY: c + lanes <= len.
        unsafe {
            if lanes == S::LANES {
                s.store(ptr.add(c), apply(s, function, s.load(ptr.add(c))));
            } else {
                s.store_partial(ptr.add(c), lanes, apply(s, function, s.load_partial(ptr.add(c), lanes)));
            }
        }
    }
}

/// Softmax of one row in place, as [`softmax_row_scalar`].
#[inline(always)]
pub(crate) fn softmax_row_simd<S: Simd>(s: S, row: &mut [f32]) {
    let len = row.len();
    let ptr = row.as_mut_ptr();
    let full = len / S::LANES * S::LANES;
    let mut max_vector = s.splat(f32::NEG_INFINITY);
    for c in (0..full).step_by(S::LANES) {
        // SAFETY: c + LANES <= full <= len.
        max_vector = s.max(max_vector, unsafe { s.load(ptr.add(c)) });
    }
    let mut max = s.reduce_max(max_vector);
    for &v in &row[full..] {
        max = max.max(v);
    }
    let max_vector = s.splat(max);
    let mut sum_vector = s.zero();
    for c in (0..full).step_by(S::LANES) {
        // SAFETY: as above.
        unsafe {
            let e = simd::exp(s, s.sub(s.load(ptr.add(c)), max_vector));
            s.store(ptr.add(c), e);
            sum_vector = s.add(sum_vector, e);
        }
    }
    let mut sum = s.reduce_sum(sum_vector);
    if full < len {
        // SAFETY: the tail full..len lies inside the row.
        unsafe {
            let e = simd::exp(s, s.sub(s.load_partial(ptr.add(full), len - full), max_vector));
            s.store_partial(ptr.add(full), len - full, e);
        }
        for &v in &row[full..] {
            sum += v;
        }
    }
    let inverse = s.splat(1.0 / sum);
    for c in (0..len).step_by(S::LANES) {
        let lanes = S::LANES.min(len - c);
        // SAFETY: c + lanes <= len.
        unsafe {
            if lanes == S::LANES {
                s.store(ptr.add(c), s.mul(s.load(ptr.add(c)), inverse));
            } else {
                s.store_partial(ptr.add(c), lanes, s.mul(s.load_partial(ptr.add(c), lanes), inverse));
            }
        }
    }
}

impl Kernels {
    /// Replaces every value by erf(value), to about 1.5e-7 absolute error.
    pub fn erf(&self, values: &mut [f32]) {
        let kernel = self.table.erf;
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        values.par_chunks_mut(VALUES_PER_TASK).for_each(|chunk| unsafe { kernel(chunk) });
    }

    /// Replaces every value by its exact (erf) GELU.
    pub fn gelu(&self, values: &mut [f32]) {
        let kernel = self.table.gelu;
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        values.par_chunks_mut(VALUES_PER_TASK).for_each(|chunk| unsafe { kernel(chunk) });
    }

    /// Replaces every value by its SiLU.
    pub fn silu(&self, values: &mut [f32]) {
        let kernel = self.table.silu;
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        values.par_chunks_mut(VALUES_PER_TASK).for_each(|chunk| unsafe { kernel(chunk) });
    }

    /// Replaces every row of `values` (`dim` values each) by its softmax.
    ///
    /// # Panics
    /// If `values.len()` is not a multiple of `dim`.
    pub fn softmax(&self, values: &mut [f32], dim: usize) {
        if dim == 0 {
            assert!(values.is_empty(), "softmax rows of 0 values in a slice of {}", values.len());
            return;
        }
        assert_eq!(values.len() % dim, 0, "softmax input of {} values is not a multiple of {dim}", values.len());
        let kernel = self.table.softmax;
        let rows_per_task = (VALUES_PER_TASK / dim).max(1);
        values.par_chunks_mut(dim * rows_per_task).for_each(|rows| {
            for row in rows.chunks_exact_mut(dim) {
                // SAFETY: `Kernels` exists only for tiers the CPU supports.
                unsafe { kernel(row) };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in float64 by its Taylor series (|x| ≤ 3) or continued fraction
    /// for erfc (|x| > 3): slow, accurate to ~1e-13, only for testing.
    fn erf_f64(x: f64) -> f64 {
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
            // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...)))).
            let mut fraction = 0.0;
            for n in (1..100).rev() {
                fraction = (n as f64 / 2.0) / (a + fraction);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + fraction)
        };
        value.copysign(x)
    }

    #[test]
    fn erf_matches_f64_reference() {
        let mut max_error = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let error = (erf(x) as f64 - erf_f64(x as f64)).abs();
            max_error = max_error.max(error);
        }
        assert!(max_error < 1.5e-7, "max erf error {max_error}");
    }

    #[test]
    fn erf_special_values() {
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_known_values() {
        // 0.5·x·(1 + erf(x/√2)) evaluated in float64.
        let cases =
            [(1.0f32, 0.841_344_746_068_542_9f64), (-1.0, -0.158_655_253_931_457_05), (3.0, 2.995_950_393_053_2)];
        for (x, expected) in cases {
            assert!((gelu(x) as f64 - expected).abs() < 2e-7, "gelu({x}) = {}", gelu(x));
        }
    }

    #[test]
    fn silu_known_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-7);
        assert!((silu(-20.0) + 4.122_307e-8).abs() < 1e-12);
    }
}
