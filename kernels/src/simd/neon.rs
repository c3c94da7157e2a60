//! [`Simd`] on 128-bit NEON registers (4 lanes) of AArch64.

use std::arch::aarch64::*;

use super::Simd;

/// Proof that the CPU has AArch64 Advanced SIMD (NEON), which every AArch64
/// CPU that runs Linux or macOS has.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    /// Returns the token.
    ///
    /// # Safety
    /// The CPU must support NEON.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Neon {
        Neon(())
    }
}

// Every method body below runs a NEON intrinsic. A value of `Neon` exists only
// where NEON was detected, which is what each `// SAFETY:` note relies on.
impl Simd for Neon {
    const LANES: usize = 4;
    type F = float32x4_t;
    type M = uint32x4_t;

    #[inline(always)]
    fn splat(self, value: f32) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vdupq_n_f32(value) }
    }

    #[inline(always)]
    fn prefetch_l2(self, address: usize) {
        // SAFETY: `prfm` is a hint: it never faults and changes no register or memory.
        unsafe {
            std::arch::asm!("prfm pldl2keep, [{0}]", in(reg) address, options(nostack, preserves_flags, readonly))
        }
    }

    #[inline(always)]
    fn prefetch_l1(self, address: usize) {
        // SAFETY: `prfm` is a hint: it never faults and changes no register or memory.
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) address, options(nostack, preserves_flags, readonly))
        }
    }

    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> float32x4_t {
        // SAFETY: the token proves NEON; the caller guarantees 4 readable floats.
        unsafe { vld1q_f32(ptr) }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, v: float32x4_t) {
        // SAFETY: the token proves NEON; the caller guarantees 4 writable floats.
        unsafe { vst1q_f32(ptr, v) }
    }

    #[inline(always)]
    unsafe fn load_partial(self, ptr: *const f32, len: usize) -> float32x4_t {
        debug_assert!(len <= 4);
        let mut lanes = [0.0f32; 4];
        // SAFETY: `len` floats are readable (caller's contract) and fit in `lanes`.
        unsafe { std::ptr::copy_nonoverlapping(ptr, lanes.as_mut_ptr(), len) };
        // SAFETY: the token proves NEON, and `lanes` has 4 floats.
        unsafe { vld1q_f32(lanes.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, len: usize, v: float32x4_t) {
        debug_assert!(len <= 4);
        let mut lanes = [0.0f32; 4];
        // SAFETY: the token proves NEON, and `lanes` has 4 floats.
        unsafe { vst1q_f32(lanes.as_mut_ptr(), v) };
        // SAFETY: `len` floats are writable (caller's contract) and `lanes` has them.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), ptr, len) };
    }

    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> float32x4_t {
        // SAFETY: the token proves NEON; the caller guarantees `ptr` is readable.
        unsafe { vld1q_dup_f32(ptr) }
    }

    #[inline(always)]
    unsafe fn load_f16(self, ptr: *const u16) -> float32x4_t {
        // SAFETY: 4 halves (8 bytes) are readable (caller's contract), read
        // without an alignment requirement; the token proves NEON.
        let halves = unsafe { vcreate_u16(ptr.cast::<u64>().read_unaligned()) };
        let widened: float32x4_t;
        // SAFETY: `fcvtl` (half to single precision) is part of base AArch64
        // SIMD and touches only the named registers. It is written in
        // assembly because its intrinsic needs Rust 1.94.
        unsafe {
            std::arch::asm!(
                "fcvtl {widened:v}.4s, {halves:v}.4h",
                widened = lateout(vreg) widened,
                halves = in(vreg) halves,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        widened
    }

    #[inline(always)]
    unsafe fn load_bf16(self, ptr: *const u16) -> float32x4_t {
        // SAFETY: as `load_f16`. A bfloat16 is the high half of an f32.
        unsafe {
            let halves = vreinterpret_u16_u64(vcreate_u64(ptr.cast::<u64>().read_unaligned()));
            vreinterpretq_f32_u32(vshll_n_u16::<16>(halves))
        }
    }

    #[inline(always)]
    unsafe fn load_bf16_pairs(self, ptr: *const u32) -> (float32x4_t, float32x4_t) {
        // SAFETY: 16 bytes are readable (caller's contract), read as bytes
        // without an alignment requirement; the token proves NEON.
        unsafe {
            let pairs = vld1q_u8(ptr.cast::<u8>());
            let pairs = vreinterpretq_u32_u8(pairs);
            let first = vshlq_n_u32::<16>(pairs);
            let second = vandq_u32(pairs, vdupq_n_u32(0xffff_0000));
            (vreinterpretq_f32_u32(first), vreinterpretq_f32_u32(second))
        }
    }

    #[inline(always)]
    unsafe fn store_f16(self, ptr: *mut u16, v: float32x4_t) {
        let halves: uint16x4_t;
        // SAFETY: `fcvtn` (single to half precision) is part of base AArch64
        // SIMD and touches only the named registers. It rounds in the FPCR
        // rounding mode, which is to nearest even unless the program changed it.
        unsafe {
            std::arch::asm!(
                "fcvtn {halves:v}.4h, {v:v}.4s",
                halves = lateout(vreg) halves,
                v = in(vreg) v,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        // SAFETY: 4 halves (8 bytes) are writable (caller's contract), written
        // without an alignment requirement; the token proves NEON.
        unsafe { ptr.cast::<u64>().write_unaligned(vget_lane_u64::<0>(vreinterpret_u64_u16(halves))) };
    }

    #[inline(always)]
    unsafe fn store_bf16(self, ptr: *mut u16, v: float32x4_t) {
        // SAFETY: as `store_f16`; the token proves NEON.
        unsafe {
            let bits = vreinterpretq_u32_f32(v);
            // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
            let lowest_kept = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(1));
            let rounded = vaddq_u32(bits, vaddq_u32(lowest_kept, vdupq_n_u32(0x7fff)));
            // NaN keeps its upper half with the quiet bit set, so rounding cannot turn it into infinity.
            let is_number = vceqq_f32(v, v);
            let quiet = vorrq_u32(bits, vdupq_n_u32(0x0040_0000));
            let chosen = vbslq_u32(is_number, rounded, quiet);
            let halves = vreinterpret_u64_u16(vshrn_n_u32::<16>(chosen));
            ptr.cast::<u64>().write_unaligned(vget_lane_u64::<0>(halves));
        }
    }

    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vaddq_f32(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vsubq_f32(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vmulq_f32(a, b) }
    }

    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vdivq_f32(a, b) }
    }

    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON. `vfmaq_f32(c, a, b)` is `c + a·b` fused.
        unsafe { vfmaq_f32(c, a, b) }
    }

    #[inline(always)]
    fn neg_mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON. `vfmsq_f32(c, a, b)` is `c − a·b` fused.
        unsafe { vfmsq_f32(c, a, b) }
    }

    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON. `fmax` returns NaN if either operand is NaN.
        unsafe { vmaxq_f32(a, b) }
    }

    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON. `fmin` returns NaN if either operand is NaN.
        unsafe { vminq_f32(a, b) }
    }

    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vabsq_f32(a) }
    }

    #[inline(always)]
    fn round(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON (`frintn`, ties to even).
        unsafe { vrndnq_f32(a) }
    }

    #[inline(always)]
    fn scale_pow2(self, a: float32x4_t, n: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe {
            let n = vcvtnq_s32_f32(n);
            let first = vshrq_n_s32::<1>(n);
            let second = vsubq_s32(n, first);
            let bias = vdupq_n_s32(127);
            let first = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(first, bias)));
            let second = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(second, bias)));
            vmulq_f32(vmulq_f32(a, first), second)
        }
    }

    #[inline(always)]
    fn copysign(self, magnitude: float32x4_t, sign: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON. The bit select takes the sign bit from `sign`.
        unsafe { vbslq_f32(vdupq_n_u32(0x8000_0000), sign, magnitude) }
    }

    #[inline(always)]
    fn le(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vcleq_f32(a, b) }
    }

    #[inline(always)]
    fn select(self, mask: uint32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vbslq_f32(mask, a, b) }
    }

    #[inline(always)]
    fn swap_pairs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON.
        unsafe { vrev64q_f32(a) }
    }

    #[inline(always)]
    fn reduce_sum(self, a: float32x4_t) -> f32 {
        // SAFETY: the token proves NEON.
        unsafe { vaddvq_f32(a) }
    }

    #[inline(always)]
    fn reduce_max(self, a: float32x4_t) -> f32 {
        // SAFETY: the token proves NEON.
        unsafe { vmaxvq_f32(a) }
    }
}
