//! LayerNorm over the last dimension.

use rayon::prelude::*;

use crate::isa::Kernels;
use crate::simd::Simd;

/// Rows per parallel task: small rows are not worth a task each.
const ROWS_PER_TASK: usize = 16;

/// Normalises one row in place: `(x − mean) / sqrt(var + eps) · gamma + beta`,
/// with the biased variance, as `torch.nn.LayerNorm`. Statistics in f64.
pub(crate) fn layer_norm_row_scalar(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let dim = row.len();
    if dim == 0 {
        return;
    }
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
    let variance = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
    let inverse_std = 1.0 / (variance + eps as f64).sqrt();
    let (mean, inverse_std) = (mean as f32, inverse_std as f32);
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inverse_std * g + b;
    }
}

/// Vectors summed in separate accumulators, so additions do not wait on each other.
const ACCUMULATORS: usize = 4;

/// Returns `Σ (row[i] − center)²`, or `Σ row[i]` when `square` is false:
/// full vectors into [`ACCUMULATORS`] vector sums in turn, then the tail in
/// scalar code, in a fixed order.
#[inline(always)]
fn sum<S: Simd>(s: S, row: &[f32], center: f32, square: bool) -> f32 {
    let mut sums = [s.zero(); ACCUMULATORS];
    let center_vector = s.splat(center);
    let full = row.len() / S::LANES;
    for c in 0..full {
        // SAFETY: vector c lies inside `row`.
        let v = unsafe { s.load(row.as_ptr().add(c * S::LANES)) };
        let term = if square {
            let d = s.sub(v, center_vector);
            s.mul(d, d)
        } else {
            v
        };
        sums[c % ACCUMULATORS] = s.add(sums[c % ACCUMULATORS], term);
    }
    let mut total = s.reduce_sum(s.add(s.add(sums[0], sums[1]), s.add(sums[2], sums[3])));
    for &value in &row[full * S::LANES..] {
        total += if square { (value - center) * (value - center) } else { value };
    }
    total
}

/// Normalises one row in place like [`layer_norm_row_scalar`], with f32
/// statistics from two passes (mean, then the mean square deviation).
#[inline(always)]
pub(crate) fn layer_norm_row_simd<S: Simd>(s: S, row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let dim = row.len();
    assert!(
        gamma.len() == dim && beta.len() == dim,
        "LayerNorm parameters of {} values for rows of {dim}",
        gamma.len()
    );
    if dim == 0 {
        return;
    }
    let mean = sum(s, row, 0.0, false) / dim as f32;
    let mean_vector = s.splat(mean);
    let squares = sum(s, row, mean, true);
    let inverse_std = 1.0 / (squares / dim as f32 + eps).sqrt();
    let inverse_std_vector = s.splat(inverse_std);
    for c in (0..dim).step_by(S::LANES) {
        let len = S::LANES.min(dim - c);
        // SAFETY: c + len <= dim for all three slices (checked above).
        unsafe {
            let (x, g, b) = (row.as_mut_ptr().add(c), gamma.as_ptr().add(c), beta.as_ptr().add(c));
            if len == S::LANES {
                let t = s.mul(s.sub(s.load(x), mean_vector), inverse_std_vector);
                s.store(x, s.mul_add(t, s.load(g), s.load(b)));
            } else {
                let t = s.mul(s.sub(s.load_partial(x, len), mean_vector), inverse_std_vector);
                s.store_partial(x, len, s.mul_add(t, s.load_partial(g, len), s.load_partial(b, len)));
            }
        }
    }
}

impl Kernels {
    /// Applies LayerNorm to every row of `x: [rows, dim]` in place, with
    /// `dim = gamma.len()`.
    ///
    /// # Panics
    /// If `x.len()` is not a multiple of `dim` or `beta.len() != dim`.
    pub fn layer_norm(&self, x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let dim = gamma.len();
        assert_eq!(beta.len(), dim, "LayerNorm beta has {} values, gamma {dim}", beta.len());
        if dim == 0 {
            return;
        }
        assert_eq!(x.len() % dim, 0, "LayerNorm input of {} values is not a multiple of {dim}", x.len());
        let row_kernel = self.table.layer_norm;
        x.par_chunks_mut(dim * ROWS_PER_TASK).for_each(|rows| {
            for row in rows.chunks_exact_mut(dim) {
                // SAFETY: `Kernels` exists only for tiers the CPU supports.
                unsafe { row_kernel(row, gamma, beta, eps) };
            }
        });
    }

    /// Writes LayerNorm of `x` into `out` (same shape), leaving `x` unchanged.
    pub fn layer_norm_into(&self, x: &[f32], out: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        assert_eq!(x.len(), out.len(), "LayerNorm input has {} values, output {}", x.len(), out.len());
        out.copy_from_slice(x);
        self.layer_norm(out, gamma, beta, eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_zero_mean_unit_variance() {
        let mut x: Vec<f32> = (0..96).map(|i| (i as f32 * 0.37).sin() * 5.0 + 3.0).collect();
        let gamma = vec![1.0; 48];
        let beta = vec![0.0; 48];
        Kernels::scalar().layer_norm(&mut x, &gamma, &beta, 1e-12);
        for row in x.chunks(48) {
            let mean: f64 = row.iter().map(|&v| v as f64).sum::<f64>() / 48.0;
            let var: f64 = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 48.0;
            assert!(mean.abs() < 1e-6, "mean {mean}");
            assert!((var - 1.0).abs() < 1e-5, "variance {var}");
        }
    }

    #[test]
    fn constant_row_gives_beta() {
        let mut x = vec![2.5f32; 8];
        let gamma = vec![3.0; 8];
        let beta: Vec<f32> = (0..8).map(|i| i as f32).collect();
        Kernels::scalar().layer_norm(&mut x, &gamma, &beta, 1e-6);
        assert_eq!(x, beta);
    }
}
