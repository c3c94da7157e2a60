//! [`Simd`] on 512-bit AVX-512 registers (16 lanes).

use std::arch::x86_64::*;

use super::Simd;

/// Proof that the CPU has AVX-512F, BW and VL, AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// Returns the token.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX-512BW, AVX-512VL, AVX2, FMA and F16C.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Avx512 {
        Avx512(())
    }
}

/// Mask of the first `len` lanes.
#[inline(always)]
fn first_lanes(len: usize) -> __mmask16 {
    debug_assert!(len <= 16);
    ((1u32 << len) - 1) as __mmask16
}

// Every method body below runs an AVX-512F/BW/VL intrinsic (or an F16C one).
// A value of `Avx512` exists only where those features were detected, which
// is what each `// SAFETY:` note relies on.
impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;
    type M = __mmask16;

    #[inline(always)]
    fn splat(self, value: f32) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_set1_ps(value) }
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
    unsafe fn load(self, ptr: *const f32) -> __m512 {
        // SAFETY: the token proves AVX-512F; the caller guarantees 16 readable floats.
        unsafe { _mm512_loadu_ps(ptr) }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, v: __m512) {
        // SAFETY: the token proves AVX-512F; the caller guarantees 16 writable floats.
        unsafe { _mm512_storeu_ps(ptr, v) }
    }

    #[inline(always)]
    unsafe fn load_partial(self, ptr: *const f32, len: usize) -> __m512 {
        // SAFETY: masked-off lanes are not accessed, the others are readable
        // (caller's contract); the token proves AVX-512F.
        unsafe { _mm512_maskz_loadu_ps(first_lanes(len), ptr) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, len: usize, v: __m512) {
        // SAFETY: masked-off lanes are not accessed, the others are writable
        // (caller's contract); the token proves AVX-512F.
        unsafe { _mm512_mask_storeu_ps(ptr, first_lanes(len), v) }
    }

    #[inline(always)]
    unsafe fn load_f16(self, ptr: *const u16) -> __m512 {
        // SAFETY: 16 halves (32 bytes) are readable (caller's contract); the
        // token proves AVX-512F, whose `vcvtph2ps` handles 16 lanes.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(ptr.cast())) }
    }

    #[inline(always)]
    unsafe fn load_bf16(self, ptr: *const u16) -> __m512 {
        // SAFETY: as `load_f16`. A bfloat16 is the high half of an f32.
        unsafe {
            let halves = _mm256_loadu_si256(ptr.cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(halves)))
        }
    }

    #[inline(always)]
    unsafe fn load_bf16_pairs(self, ptr: *const u32) -> (__m512, __m512) {
        // SAFETY: 64 bytes are readable (caller's contract); the token proves AVX-512F.
        unsafe {
            let pairs = _mm512_loadu_si512(ptr.cast());
            let first = _mm512_slli_epi32::<16>(pairs);
            let second = _mm512_and_si512(pairs, _mm512_set1_epi32(-65536));
            (_mm512_castsi512_ps(first), _mm512_castsi512_ps(second))
        }
    }

    #[inline(always)]
    unsafe fn store_f16(self, ptr: *mut u16, v: __m512) {
        // SAFETY: 32 bytes are writable (caller's contract); the token proves AVX-512F.
        unsafe { _mm256_storeu_si256(ptr.cast(), _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(v)) }
    }

    #[inline(always)]
    unsafe fn store_bf16(self, ptr: *mut u16, v: __m512) {
        // SAFETY: 32 bytes are writable (caller's contract); the token proves AVX-512F/BW.
        unsafe {
            let bits = _mm512_castps_si512(v);
            // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
            let lowest_kept = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
            let rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lowest_kept, _mm512_set1_epi32(0x7fff)));
            // NaN keeps its upper half with the quiet bit set, so rounding cannot turn it into infinity.
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let quiet = _mm512_or_si512(bits, _mm512_set1_epi32(0x0040_0000));
            let chosen = _mm512_mask_blend_epi32(nan, rounded, quiet);
            _mm256_storeu_si256(ptr.cast(), _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(chosen)));
        }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }

    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_div_ps(a, b) }
    }

    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn neg_mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F. `vmaxps` returns its second operand for NaN.
        unsafe { _mm512_max_ps(a, b) }
    }

    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F. `vminps` returns its second operand for NaN.
        unsafe { _mm512_min_ps(a, b) }
    }

    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_abs_ps(a) }
    }

    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }

    #[inline(always)]
    fn scale_pow2(self, a: __m512, n: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe {
            let n = _mm512_cvtps_epi32(n);
            let first = _mm512_srai_epi32::<1>(n);
            let second = _mm512_sub_epi32(n, first);
            let bias = _mm512_set1_epi32(127);
            let first = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(first, bias)));
            let second = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(second, bias)));
            _mm512_mul_ps(_mm512_mul_ps(a, first), second)
        }
    }

    #[inline(always)]
    fn copysign(self, magnitude: __m512, sign: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe {
            let sign_bit = _mm512_set1_epi32(i32::MIN);
            let magnitude = _mm512_andnot_si512(sign_bit, _mm512_castps_si512(magnitude));
            let sign = _mm512_and_si512(sign_bit, _mm512_castps_si512(sign));
            _mm512_castsi512_ps(_mm512_or_si512(magnitude, sign))
        }
    }

    #[inline(always)]
    fn le(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) }
    }

    #[inline(always)]
    fn select(self, mask: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F. The blend takes its second operand where the mask is set.
        unsafe { _mm512_mask_blend_ps(mask, b, a) }
    }

    #[inline(always)]
    fn swap_pairs(self, a: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_permute_ps::<0b1011_0001>(a) }
    }

    #[inline(always)]
    fn reduce_sum(self, a: __m512) -> f32 {
        // SAFETY: the token proves AVX-512F.
        unsafe {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
            let halves = _mm256_add_ps(_mm512_castps512_ps256(a), high);
            let quarters = _mm_add_ps(_mm256_castps256_ps128(halves), _mm256_extractf128_ps::<1>(halves));
            let pairs = _mm_add_ps(quarters, _mm_movehl_ps(quarters, quarters));
            _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)))
        }
    }

    #[inline(always)]
    fn reduce_max(self, a: __m512) -> f32 {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_reduce_max_ps(a) }
    }
}
