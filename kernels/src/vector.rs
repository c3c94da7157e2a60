//! Small vector operations: dot product and L2 normalisation.

use crate::isa::Kernels;

/// Smallest norm divided by in [`Kernels::l2_normalize`], as
/// `torch.nn.functional.normalize`'s default `eps`.
pub const L2_NORM_EPS: f32 = 1e-12;

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}

impl Kernels {
    /// Returns `Σ a[i]·b[i]`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot product of {} and {} values", a.len(), b.len());
        (self.table.dot)(a, b)
    }

    /// Divides `x` by `max(‖x‖₂, 1e-12)` in place; the norm is accumulated in f64.
    pub fn l2_normalize(&self, x: &mut [f32]) {
        let norm = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt() as f32;
        let divisor = norm.max(L2_NORM_EPS);
        for v in x {
            *v /= divisor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_normalize_gives_unit_norm() {
        let mut x = vec![3.0f32, 4.0];
        Kernels::scalar().l2_normalize(&mut x);
        assert_eq!(x, vec![0.6, 0.8]);
    }

    #[test]
    fn l2_normalize_keeps_zero_vector() {
        let mut x = vec![0.0f32; 4];
        Kernels::scalar().l2_normalize(&mut x);
        assert_eq!(x, vec![0.0; 4]);
    }
}
