//! [`Simd`] on 256-bit AVX2 registers (8 lanes) with FMA and F16C.

use std::arch::x86_64::*;

use super::Simd;

/// Proof that the CPU has AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// Returns the token.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Avx2 {
        Avx2(())
    }
}

/// All-ones in the first `len` of 8 lanes, for `vmaskmovps`.
#[inline(always)]
fn first_lanes(len: usize) -> __m256i {
    debug_assert!(len <= 8);
    const INDICES: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
    // SAFETY: AVX2 is proven by the `Avx2` token held by every caller, and
    // `INDICES` holds 8 readable values.
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), _mm256_loadu_si256(INDICES.as_ptr().cast())) }
}

// Every method body below runs an AVX, AVX2, FMA or F16C intrinsic. A value
// of `Avx2` exists only where those features were detected, which is what
// each `// SAFETY:` note relies on.
impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;
    type M = __m256;

    #[inline(always)]
    fn splat(self, value: f32) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_set1_ps(value) }
    }

    #[inline(always)]
    fn prefetch_l2(self, address: usize) {
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(address as *const i8) }
    }

    #[inline(always)]
    fn prefetch_l1(self, address: usize) {
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address as *const i8) }
    }

    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> __m256 {
        // SAFETY: the token proves AVX; the caller guarantees 8 readable floats.
        unsafe { _mm256_loadu_ps(ptr) }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, v: __m256) {
        // SAFETY: the token proves AVX; the caller guarantees 8 writable floats.
        unsafe { _mm256_storeu_ps(ptr, v) }
    }

    #[inline(always)]
    unsafe fn load_partial(self, ptr: *const f32, len: usize) -> __m256 {
        // SAFETY: masked-off lanes are not accessed (and raise no fault), the
        // others are readable (caller's contract); the token proves AVX2.
        unsafe { _mm256_maskload_ps(ptr, first_lanes(len)) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, len: usize, v: __m256) {
        // SAFETY: masked-off lanes are not accessed, the others are writable
        // (caller's contract); the token proves AVX2.
        unsafe { _mm256_maskstore_ps(ptr, first_lanes(len), v) }
    }

    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> __m256 {
        // SAFETY: the token proves AVX; the caller guarantees `ptr` is readable.
        unsafe { _mm256_broadcast_ss(&*ptr) }
    }

    #[inline(always)]
    unsafe fn load_f16(self, ptr: *const u16) -> __m256 {
        // SAFETY: 8 halves (16 bytes) are readable (caller's contract); the token proves F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(ptr.cast())) }
    }

    #[inline(always)]
    unsafe fn load_bf16(self, ptr: *const u16) -> __m256 {
        // SAFETY: as `load_f16`; the token proves AVX2. A bfloat16 is the high half of an f32.
        unsafe {
            let halves = _mm_loadu_si128(ptr.cast());
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(halves)))
        }
    }

    #[inline(always)]
    unsafe fn load_bf16_pairs(self, ptr: *const u32) -> (__m256, __m256) {
        // SAFETY: 32 bytes are readable (caller's contract); the token proves AVX2.
        unsafe {
            let pairs = _mm256_loadu_si256(ptr.cast());
            let first = _mm256_slli_epi32::<16>(pairs);
            let second = _mm256_and_si256(pairs, _mm256_set1_epi32(-65536));
            (_mm256_castsi256_ps(first), _mm256_castsi256_ps(second))
        }
    }

    #[inline(always)]
    unsafe fn store_f16(self, ptr: *mut u16, v: __m256) {
        // SAFETY: 16 bytes are writable (caller's contract); the token proves F16C.
        unsafe { _mm_storeu_si128(ptr.cast(), _mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(v)) }
    }

    #[inline(always)]
    unsafe fn store_bf16(self, ptr: *mut u16, v: __m256) {
        // SAFETY: 16 bytes are writable (caller's contract); the token proves AVX2.
        unsafe {
            let bits = _mm256_castps_si256(v);
            // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
            let lowest_kept = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
            let rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lowest_kept, _mm256_set1_epi32(0x7fff)));
            // NaN keeps its upper half with the quiet bit set, so rounding cannot turn it into infinity.
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            let quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x0040_0000));
            let chosen = _mm256_srli_epi32::<16>(_mm256_blendv_epi8(rounded, quiet, nan));
            // Values are below 2¹⁶, so the saturating pack keeps them; it works
            // per 128-bit lane, and the permute puts the two halves in order.
            let packed = _mm256_packus_epi32(chosen, chosen);
            let ordered = _mm256_permute4x64_epi64::<0b1000>(packed);
            _mm_storeu_si128(ptr.cast(), _mm256_castsi256_si128(ordered));
        }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_add_ps(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }

    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_div_ps(a, b) }
    }

    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the token proves FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn neg_mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the token proves FMA.
        unsafe { _mm256_fnmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX. `vmaxps` returns its second operand for NaN.
        unsafe { _mm256_max_ps(a, b) }
    }

    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX. `vminps` returns its second operand for NaN.
        unsafe { _mm256_min_ps(a, b) }
    }

    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }

    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }

    #[inline(always)]
    fn scale_pow2(self, a: __m256, n: __m256) -> __m256 {
        // SAFETY: the token proves AVX2.
        unsafe {
            let n = _mm256_cvtps_epi32(n);
            let first = _mm256_srai_epi32::<1>(n);
            let second = _mm256_sub_epi32(n, first);
            let bias = _mm256_set1_epi32(127);
            let first = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(first, bias)));
            let second = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(second, bias)));
            _mm256_mul_ps(_mm256_mul_ps(a, first), second)
        }
    }

    #[inline(always)]
    fn copysign(self, magnitude: __m256, sign: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe {
            let sign_bit = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(sign_bit, magnitude), _mm256_and_ps(sign_bit, sign))
        }
    }

    #[inline(always)]
    fn le(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
    }

    #[inline(always)]
    fn select(self, mask: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX. `vblendvps` takes its second operand where the mask is set.
        unsafe { _mm256_blendv_ps(b, a, mask) }
    }

    #[inline(always)]
    fn swap_pairs(self, a: __m256) -> __m256 {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_permute_ps::<0b1011_0001>(a) }
    }

    #[inline(always)]
    fn reduce_sum(self, a: __m256) -> f32 {
        // SAFETY: the token proves AVX.
        unsafe {
            let quarters = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let pairs = _mm_add_ps(quarters, _mm_movehl_ps(quarters, quarters));
            _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)))
        }
    }

    #[inline(always)]
    fn reduce_max(self, a: __m256) -> f32 {
        // SAFETY: the token proves AVX.
        unsafe {
            let quarters = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let pairs = _mm_max_ps(quarters, _mm_movehl_ps(quarters, quarters));
            _mm_cvtss_f32(_mm_max_ss(pairs, _mm_movehdup_ps(pairs)))
        }
    }
}
