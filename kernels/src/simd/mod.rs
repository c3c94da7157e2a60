//! One vector trait over the SIMD tiers, and the math written once on top of it.
//!
//! Every SIMD kernel of this crate is a generic `#[inline(always)]` function
//! over [`Simd`]. Each tier instantiates it inside a thin
//! `#[target_feature]` function (see `crate::tiers`), so the generic body is
//! compiled with that tier's instructions. A value of a `Simd` type is a token:
//! it can only be made by `unsafe` code that vouches for the CPU features,
//! which is why its methods may call the intrinsics.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

/// f32 vectors of one instruction set.
///
/// Loads and stores take raw pointers and accept any alignment, also for
/// the half-precision forms, whose pointers may come from byte buffers.
pub(crate) trait Simd: Copy + Send + Sync + 'static {
    /// f32 lanes per vector.
    const LANES: usize;
    /// A vector of [`Self::LANES`] f32 values.
    type F: Copy;
    /// The result of a lane-wise comparison.
    type M: Copy;

    fn splat(self, value: f32) -> Self::F;

    #[inline(always)]
    fn zero(self) -> Self::F {
        self.splat(0.0)
    }

    /// Loads `LANES` values.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be readable.
    unsafe fn load(self, ptr: *const f32) -> Self::F;

    /// Stores `LANES` values.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be writable.
    unsafe fn store(self, ptr: *mut f32, v: Self::F);

    /// Loads the first `len` lanes and sets the others to zero.
    ///
    /// # Safety
    /// `len <= LANES` and `ptr..ptr + len` must be readable.
    unsafe fn load_partial(self, ptr: *const f32, len: usize) -> Self::F;

    /// Stores the first `len` lanes.
    ///
    /// # Safety
    /// `len <= LANES` and `ptr..ptr + len` must be writable.
    unsafe fn store_partial(self, ptr: *mut f32, len: usize, v: Self::F);

    /// Returns `*ptr` in every lane.
    ///
    /// # Safety
    /// `ptr` must be readable.
    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> Self::F {
        // SAFETY: the caller guarantees that `ptr` is readable.
        self.splat(unsafe { ptr.read() })
    }

    /// Hints that the cache line at `address` will be read soon, into L2.
    /// Tiers without a prefetch instruction ignore it.
    #[inline(always)]
    fn prefetch_l2(self, address: usize) {
        let _ = address;
    }

    /// Hints that the cache line at `address` will be read soon, into L1.
    /// Tiers without a prefetch instruction ignore it.
    #[inline(always)]
    fn prefetch_l1(self, address: usize) {
        let _ = address;
    }

    /// Loads `LANES` IEEE half-precision values (bit patterns) as f32.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be readable; any alignment is accepted.
    unsafe fn load_f16(self, ptr: *const u16) -> Self::F;

    /// Loads `LANES` bfloat16 values (bit patterns) as f32.
    ///
    /// # Safety
    /// As [`Simd::load_f16`].
    unsafe fn load_bf16(self, ptr: *const u16) -> Self::F;

    /// Loads `LANES` bfloat16 pairs, each a 32-bit little-endian word with
    /// the first value in its low half, and returns the first and the
    /// second values of the pairs as f32.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be readable; any alignment is accepted.
    unsafe fn load_bf16_pairs(self, ptr: *const u32) -> (Self::F, Self::F);

    /// Stores `LANES` values as IEEE half precision, rounding to nearest even.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be writable; any alignment is accepted.
    unsafe fn store_f16(self, ptr: *mut u16, v: Self::F);

    /// Stores `LANES` values as bfloat16, rounding to nearest even; NaN stays NaN.
    ///
    /// # Safety
    /// As [`Simd::store_f16`].
    unsafe fn store_bf16(self, ptr: *mut u16, v: Self::F);

    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    fn div(self, a: Self::F, b: Self::F) -> Self::F;
    /// Returns `a·b + c` with one rounding.
    fn mul_add(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Returns `c − a·b` with one rounding.
    fn neg_mul_add(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Lane-wise maximum; a NaN in `b` is returned as is.
    fn max(self, a: Self::F, b: Self::F) -> Self::F;
    /// Lane-wise minimum; a NaN in `b` is returned as is.
    fn min(self, a: Self::F, b: Self::F) -> Self::F;
    fn abs(self, a: Self::F) -> Self::F;
    /// Rounds to the nearest integer, ties to even.
    fn round(self, a: Self::F) -> Self::F;
    /// Returns `a·2ⁿ` for integer-valued `n` in `[−252, 254]`, in two
    /// multiplications so that results that underflow or overflow f32 come
    /// out as subnormals, zero or infinity.
    fn scale_pow2(self, a: Self::F, n: Self::F) -> Self::F;
    /// Returns `|magnitude|` with the sign bit of `sign`.
    fn copysign(self, magnitude: Self::F, sign: Self::F) -> Self::F;
    /// Lane-wise `a <= b` (false for NaN).
    fn le(self, a: Self::F, b: Self::F) -> Self::M;
    /// Lane-wise `mask ? a : b`.
    fn select(self, mask: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// Swaps lanes `2j` and `2j + 1` for every `j`.
    fn swap_pairs(self, a: Self::F) -> Self::F;
    /// Sums the lanes in a fixed order.
    fn reduce_sum(self, a: Self::F) -> f32;
    /// Returns the largest lane.
    fn reduce_max(self, a: Self::F) -> f32;
}

/// ln 2 split in a part with trailing zero bits (so `n·LN2_HI` is exact for
/// |n| < 512) and the rest.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Below this argument eˣ is flushed to zero: e⁻⁸⁷ ≈ 1.6e-38 is near the
/// smallest normal f32, and subnormal results would cost a microcode assist
/// per lane on x86 (softmax of masked keys, erf of large arguments).
const EXP_ARGUMENT_MIN: f32 = -87.0;
/// Arguments are clamped to this before the reduction; above 88.73 eˣ is ∞
/// in f32, which the two-step scaling still produces.
const EXP_ARGUMENT_MAX: f32 = 89.0;

/// Returns eˣ lane-wise, within about 2 ulp of the exact value for
/// x ≥ −87, 0 below −87 (instead of values under 1.6e-38), ∞ above 88.73,
/// and NaN kept.
///
/// eˣ = 2ⁿ·eʳ with n = round(x/ln 2) and |r| ≤ ln 2 / 2, where eʳ is its
/// Taylor polynomial of degree 7 (truncation error below 6e-9 relative).
#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::F) -> S::F {
    // `max`/`min` return a NaN second operand unchanged, so NaN survives the clamp.
    let flushed = s.le(x, s.splat(EXP_ARGUMENT_MIN));
    let x = s.min(s.splat(EXP_ARGUMENT_MAX), s.max(s.splat(EXP_ARGUMENT_MIN), x));
    let n = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
    let r = s.neg_mul_add(n, s.splat(LN2_HI), x);
    let r = s.neg_mul_add(n, s.splat(LN2_LO), r);
    const INVERSE_FACTORIALS: [f32; 8] =
        [1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    let mut p = s.splat(INVERSE_FACTORIALS[7]);
    for &c in INVERSE_FACTORIALS[..7].iter().rev() {
        p = s.mul_add(p, r, s.splat(c));
    }
    s.select(flushed, s.zero(), s.scale_pow2(p, n))
}

/// Returns erf(x) lane-wise with the coefficients of the scalar
/// [`crate::activation::erf`], to about 1.5e-7 absolute error.
#[inline(always)]
pub(crate) fn erf<S: Simd>(s: S, x: S::F) -> S::F {
    use crate::activation::{ERF_LARGE, ERF_SATURATION, ERF_SMALL};
    let a = s.abs(x);
    let z = s.mul(a, a);
    // At and above saturation erf is ±1; bounding the argument keeps exp(−x²) normal.
    let bounded = s.min(s.splat(ERF_SATURATION), a);

    // |x| ≤ 1: x·P(x²).
    let mut p = s.splat(ERF_SMALL[ERF_SMALL.len() - 1]);
    for &c in ERF_SMALL[..ERF_SMALL.len() - 1].iter().rev() {
        p = s.mul_add(p, z, s.splat(c));
    }
    let small = s.mul(a, p);

    // 1 < |x| < 4: 1 − exp(−x²)·Q(1/(1 + x/2)).
    let one = s.splat(1.0);
    let t = s.div(one, s.mul_add(a, s.splat(0.5), one));
    let mut q = s.splat(ERF_LARGE[ERF_LARGE.len() - 1]);
    for &c in ERF_LARGE[..ERF_LARGE.len() - 1].iter().rev() {
        q = s.mul_add(q, t, s.splat(c));
    }
    let large = s.neg_mul_add(exp(s, s.mul(s.sub(s.zero(), bounded), bounded)), q, one);

    let magnitude = s.select(s.le(a, one), small, large);
    // Comparisons are false for NaN, so a NaN keeps the `large` value, which is NaN.
    let magnitude = s.select(s.le(s.splat(ERF_SATURATION), a), one, magnitude);
    s.copysign(magnitude, x)
}

/// Returns the exact GELU `0.5·x·(1 + erf(x/√2))` lane-wise.
#[inline(always)]
pub(crate) fn gelu<S: Simd>(s: S, x: S::F) -> S::F {
    let e = erf(s, s.mul(x, s.splat(std::f32::consts::FRAC_1_SQRT_2)));
    s.mul(s.mul(s.splat(0.5), x), s.add(s.splat(1.0), e))
}

/// Returns SiLU `x / (1 + exp(−x))` lane-wise.
#[inline(always)]
pub(crate) fn silu<S: Simd>(s: S, x: S::F) -> S::F {
    s.div(x, s.add(s.splat(1.0), exp(s, s.sub(s.zero(), x))))
}
