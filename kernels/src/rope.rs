//! Rotary position embedding with interleaved pairs (GPT-J layout).

use crate::isa::Kernels;
use crate::simd::Simd;

/// Rotates one head vector in place: for each pair `(x₂ⱼ, x₂ⱼ₊₁)`,
/// `out₂ⱼ = x₂ⱼ·cos₂ⱼ − x₂ⱼ₊₁·sin₂ⱼ` and `out₂ⱼ₊₁ = x₂ⱼ₊₁·cos₂ⱼ₊₁ + x₂ⱼ·sin₂ⱼ₊₁`.
pub(crate) fn rope_row_scalar(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    for ((pair, c), s) in x.chunks_exact_mut(2).zip(cos.chunks_exact(2)).zip(sin.chunks_exact(2)) {
        let (even, odd) = (pair[0], pair[1]);
        pair[0] = even * c[0] + -odd * s[0];
        pair[1] = odd * c[1] + even * s[1];
    }
}

/// −1 on even lanes, +1 on odd lanes: the sign of `sin` applied to the swapped partner.
const PAIR_SIGNS: [f32; 16] = [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0];

/// Rotates one head vector in place like [`rope_row_scalar`]:
/// `out = x·cos + swap_pairs(x)·(±sin)`.
#[inline(always)]
pub(crate) fn rope_row_simd<S: Simd>(s: S, x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let len = x.len();
    assert!(cos.len() >= len && sin.len() >= len, "rotary tables shorter than the head");
    debug_assert!(S::LANES <= PAIR_SIGNS.len() && S::LANES % 2 == 0);
    // SAFETY: PAIR_SIGNS holds at least LANES values.
    let signs = unsafe { s.load(PAIR_SIGNS.as_ptr()) };
    for c in (0..len).step_by(S::LANES) {
        let lanes = S::LANES.min(len - c);
        // SAFETY: c + lanes <= len <= the table lengths (checked above).
        unsafe {
            let (xp, cp, sp) = (x.as_mut_ptr().add(c), cos.as_ptr().add(c), sin.as_ptr().add(c));
            if lanes == S::LANES {
                let v = s.load(xp);
                let rotated = s.mul(s.swap_pairs(v), s.mul(s.load(sp), signs));
                s.store(xp, s.mul_add(v, s.load(cp), rotated));
            } else {
                let v = s.load_partial(xp, lanes);
                let rotated = s.mul(s.swap_pairs(v), s.mul(s.load_partial(sp, lanes), signs));
                s.store_partial(xp, lanes, s.mul_add(v, s.load_partial(cp, lanes), rotated));
            }
        }
    }
}

impl Kernels {
    /// Applies the interleaved rotary embedding to `tokens` rows of `x`, each
    /// row holding `heads` vectors of `head_dim` values at `stride` floats
    /// apart. Row `t` uses row `t` of the `[tokens, head_dim]` tables `cos`, `sin`.
    ///
    /// # Panics
    /// If `head_dim` is odd or a slice is too short for the shape.
    pub fn rope_interleaved(
        &self,
        x: &mut [f32],
        stride: usize,
        tokens: usize,
        heads: usize,
        head_dim: usize,
        cos: &[f32],
        sin: &[f32],
    ) {
        assert_eq!(head_dim % 2, 0, "rotary head size {head_dim} is odd");
        assert!(
            cos.len() >= tokens * head_dim && sin.len() >= tokens * head_dim,
            "rotary tables shorter than {tokens} rows"
        );
        if tokens == 0 {
            return;
        }
        assert!(x.len() >= (tokens - 1) * stride + heads * head_dim, "rotary input too short");
        let row_kernel = self.table.rope;
        for t in 0..tokens {
            let c = &cos[t * head_dim..][..head_dim];
            let s = &sin[t * head_dim..][..head_dim];
            for h in 0..heads {
                // SAFETY: `Kernels` exists only for tiers the CPU supports.
                unsafe { row_kernel(&mut x[t * stride + h * head_dim..][..head_dim], c, s) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_pairs_by_angle() {
        let angle = 0.3f32;
        let mut x = vec![1.0f32, 0.0, 0.0, 2.0];
        let cos = vec![angle.cos(); 4];
        let sin = vec![angle.sin(); 4];
        Kernels::scalar().rope_interleaved(&mut x, 4, 1, 1, 4, &cos, &sin);
        assert!((x[0] - angle.cos()).abs() < 1e-7);
        assert!((x[1] - angle.sin()).abs() < 1e-7);
        assert!((x[2] + 2.0 * angle.sin()).abs() < 1e-7);
        assert!((x[3] - 2.0 * angle.cos()).abs() < 1e-7);
    }
}
