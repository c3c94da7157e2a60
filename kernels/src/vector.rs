//! Small vector operations: dot product and L2 normalisation.

use crate::isa::Kernels;
use crate::simd::Simd;

/// Smallest norm divided by in [`Kernels::l2_normalize`], as
/// `torch.nn.functional.normalize`'s default `eps`.
pub const L2_NORM_EPS: f32 = 1e-12;

/// Vectors summed in separate accumulators, so additions do not wait on each other.
const ACCUMULATORS: usize = 4;
/// Values whose squares are summed in f32 before the sum joins the f64 total.
const SQUARES_PER_F64_ADD: usize = 256;

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}

/// Divides `x` by `max(‖x‖₂, L2_NORM_EPS)` with the norm accumulated in f64.
pub(crate) fn l2_normalize_scalar(x: &mut [f32]) {
    let norm = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt() as f32;
    let divisor = norm.max(L2_NORM_EPS);
    for v in x {
        *v /= divisor;
    }
}

/// Returns `Σ a[i]·b[i]` over `len` values, in [`ACCUMULATORS`] vector sums
/// taken in turn, zero-padded at the tail.
///
/// # Safety
/// `a` and `b` must hold `len` readable floats.
#[inline(always)]
unsafe fn dot_raw<S: Simd>(s: S, a: *const f32, b: *const f32, len: usize) -> f32 {
    let mut sums = [s.zero(); ACCUMULATORS];
    for (index, c) in (0..len).step_by(S::LANES).enumerate() {
        let lanes = S::LANES.min(len - c);
        // SAFETY: c + lanes <= len (caller's contract); the zero padding of a
        // partial load adds nothing to the sum.
        let product = unsafe {
            if lanes == S::LANES {
                s.mul(s.load(a.add(c)), s.load(b.add(c)))
            } else {
                s.mul(s.load_partial(a.add(c), lanes), s.load_partial(b.add(c), lanes))
            }
        };
        sums[index % ACCUMULATORS] = s.add(sums[index % ACCUMULATORS], product);
    }
    s.reduce_sum(s.add(s.add(sums[0], sums[1]), s.add(sums[2], sums[3])))
}

#[inline(always)]
pub(crate) fn dot_simd<S: Simd>(s: S, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot product of {} and {} values", a.len(), b.len());
    // SAFETY: both slices hold a.len() values.
    unsafe { dot_raw(s, a.as_ptr(), b.as_ptr(), a.len()) }
}

/// As [`l2_normalize_scalar`]; squares are summed in f32 vectors over blocks
/// of [`SQUARES_PER_F64_ADD`] values and the block sums in f64.
#[inline(always)]
pub(crate) fn l2_normalize_simd<S: Simd>(s: S, x: &mut [f32]) {
    let mut total = 0.0f64;
    for block in x.chunks(SQUARES_PER_F64_ADD) {
        // SAFETY: `block` holds block.len() values.
        total += unsafe { dot_raw(s, block.as_ptr(), block.as_ptr(), block.len()) } as f64;
    }
    let divisor = s.splat((total.sqrt() as f32).max(L2_NORM_EPS));
    let len = x.len();
    let ptr = x.as_mut_ptr();
    for c in (0..len).step_by(S::LANES) {
        let lanes = S::LANES.min(len - c);
        // SAFETY: c + lanes <= len.
        unsafe {
            if lanes == S::LANES {
                s.store(ptr.add(c), s.div(s.load(ptr.add(c)), divisor));
            } else {
                s.store_partial(ptr.add(c), lanes, s.div(s.load_partial(ptr.add(c), lanes), divisor));
            }
        }
    }
}

impl Kernels {
    /// Returns `Σ a[i]·b[i]`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot product of {} and {} values", a.len(), b.len());
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { (self.table.dot)(a, b) }
    }

    /// Divides `x` by `max(‖x‖₂, 1e-12)` in place; the norm is accumulated in
    /// f64 (the SIMD tiers sum blocks of 256 squares in f32 first).
    pub fn l2_normalize(&self, x: &mut [f32]) {
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { (self.table.l2_normalize)(x) }
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
