//! Matmul with BF16 weights on AArch64 `bfdot` (FEAT_BF16), and its scalar twin.
//!
//! The activations are rounded to bfloat16 and packed in row groups of
//! pairs as for `vdpbf16ps`, with the same rounding function (see
//! [`super::bf16`]), so every bf16 dot-product tier reads the same
//! activations. `bfdot Vd.4s, Vn.8h, Vm.2h[i]` takes the pairs of 4 output
//! features from Vn, broadcasts the pair of one row from 32-bit element `i`
//! of Vm, and adds the two products of each lane to that lane's f32 sum.
//!
//! Per output element and pair, `bfdot` computes `acc + (x₀·w₀ + x₁·w₁)` as
//! the function BFDotAdd of the Arm Architecture Reference Manual (DDI 0487)
//! gives it without FEAT_EBF16. Each product and each of the two sums is
//! rounded to f32 by rounding to odd (truncate, then set the last bit if
//! the result was inexact), and the FPCR rounding and flush settings are
//! ignored. Subnormal inputs read as
//! zero, and results below the normal range become zero of the same sign.
//! Overflow gives infinity, and every NaN result is the default NaN
//! `0x7fc00000`. A product of two bfloat16 values is exact in f32 unless it
//! leaves the normal range. [`SCALAR_TWIN`] computes this in plain Rust.
//! qemu 7.2 emulates `bfdot` the same way (function `bfdotadd` in its
//! target/arm/vec_helper.c), so the kernel tests compare bit for bit.
//!
//! NOTE: on a CPU with FEAT_EBF16, a program that sets FPCR.EBF to 1 gets
//! the extended behaviour instead (fused products, FPCR's rounding), which
//! the twin does not model. These kernels never set FPCR.

use super::bf16::{self, Bf16DotKernels, flush_subnormal, widen_flushed};
use super::int8::always;
use super::{MatmulJob, Tile};

/// The AArch64 default NaN, the result of every `bfdot` step that gives NaN.
const DEFAULT_NAN: f32 = f32::from_bits(0x7fc0_0000);

/// Returns `value` rounded to f32 as BFloat16 arithmetic rounds it: to odd,
/// below the normal range to zero of the same sign, beyond it to infinity,
/// NaN to the default NaN.
///
/// `value` must be exact: the product or sum that the instruction rounds.
fn round_to_odd(value: f64) -> f32 {
    if value.is_nan() {
        return DEFAULT_NAN;
    }
    if value == 0.0 || value.is_infinite() {
        return value as f32;
    }
    let bits = value.to_bits();
    let sign = ((bits >> 63) as u32) << 31;
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    if exponent < -126 {
        return f32::from_bits(sign);
    }
    if exponent > 127 {
        return f32::from_bits(sign | 0x7f80_0000);
    }
    // f32 keeps the top 23 of the 52 fraction bits of f64.
    let fraction = bits & ((1 << 52) - 1);
    let dropped = fraction & ((1 << 29) - 1);
    let truncated = (fraction >> 29) as u32;
    let odd = truncated | u32::from(dropped != 0);
    f32::from_bits(sign | (((exponent + 127) as u32) << 23) | odd)
}

/// Returns the product of two bfloat16 values as `bfdot` computes it.
fn multiply(x: u16, w: u16) -> f32 {
    // Two 8-bit significands give a 16-bit one, exact in f64.
    round_to_odd(f64::from(widen_flushed(x)) * f64::from(widen_flushed(w)))
}

/// Returns `a + b` as `bfdot` computes it.
fn add(a: f32, b: f32) -> f32 {
    let (a, b) = (flush_subnormal(a), flush_subnormal(b));
    let (large, small) = if a.abs() >= b.abs() { (a, b) } else { (b, a) };
    let biased_exponent = |value: f32| i64::from((value.to_bits() >> 23) & 0xff);
    let exponent_gap = biased_exponent(large) - biased_exponent(small);
    let small = if small == 0.0 || !large.is_finite() || exponent_gap <= 28 {
        // Both significands fit in 53 bits with their carry, so the f64 sum is exact.
        f64::from(small)
    } else {
        // `small` lies below 2^(e − 28) for `large` in [2^e, 2^(e + 1)),
        // a sixteenth of the smallest f32 step next to `large`. It only
        // makes the sum inexact and sets its direction, so a stand-in of
        // the same sign and of size 2^(e − 28), whose sum is exact in f64,
        // rounds to the same f32.
        let stand_in = f64::from_bits(((biased_exponent(large) - 127 - 28 + 1023) as u64) << 52);
        stand_in.copysign(f64::from(small))
    };
    round_to_odd(f64::from(large) + small)
}

/// Returns `acc` after one `bfdot` lane step with the pairs `x` and `w`.
pub(crate) fn dot_pair(acc: f32, x: u32, w: u32) -> f32 {
    let first = multiply(x as u16, w as u16);
    let second = multiply((x >> 16) as u16, (w >> 16) as u16);
    add(acc, add(first, second))
}

/// Returns the `bfdot` chain of one output element.
fn element_dot(x: &[u32], panel: &[u32], lane: usize) -> f32 {
    let mut sum = 0.0f32;
    for (q, &pair) in x.iter().enumerate() {
        sum = dot_pair(sum, pair, panel[q * super::NR + lane]);
    }
    sum
}

/// # Safety
/// No other task may write the tile's part of the output meanwhile.
unsafe fn tile_scalar(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract.
    unsafe { bf16::tile_scalar_with(job, tile, element_dot) }
}

/// The scalar twin of `bfdot`.
pub(crate) const SCALAR_TWIN: Bf16DotKernels =
    Bf16DotKernels { tile: tile_scalar, mr: 1, pair_align: 1, pack_group: bf16::pack_group_scalar, available: always };

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    //! `bfdot` by element on 128-bit registers.

    use std::arch::aarch64::*;

    use super::{Bf16DotKernels, MatmulJob, Tile, bf16};
    use crate::isa::CpuFeatures;
    use crate::matmul::bf16::Bf16Micro;
    use crate::matmul::simd::MAX_NP;
    use crate::matmul::{NR, dispatch_rows};
    use crate::simd::neon::Neon;

    /// Rows per microkernel call: 6 rows × 1 panel (4 q registers) = 24 of
    /// the 32 registers accumulate, 4 hold weight pairs and 2 the rows' pairs.
    const MR: usize = 6;

    /// Returns `acc` after `bfdot` of the weight pairs `w` (4 output
    /// features) with the pair in 32-bit element `LANE` of `x`.
    ///
    /// # Safety
    /// The CPU must support FEAT_BF16.
    #[inline(always)]
    unsafe fn bfdot_lane<const LANE: i32>(acc: float32x4_t, w: uint32x4_t, x: uint32x4_t) -> float32x4_t {
        let mut acc = acc;
        // SAFETY: `bfdot` exists when FEAT_BF16 does (caller's contract)
        // and touches only the named registers. It is written in assembly
        // because the bf16 intrinsics are unstable (`stdarch_neon_bf16`,
        // as of Rust 1.96).
        unsafe {
            std::arch::asm!(
                "bfdot {acc:v}.4s, {w:v}.8h, {x:v}.2h[{lane}]",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                lane = const LANE,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        acc
    }

    /// The `bfdot` microkernel: one pair of rows 0 to 3 is one register
    /// (`low`), rows 4 and 5 are the low half of another (`high`).
    #[derive(Clone, Copy)]
    struct Bfdot(());

    impl Bfdot {
        /// # Safety
        /// As [`Bf16Micro::run`] with `ROWS` rows and one panel.
        #[inline(always)]
        unsafe fn micro<const ROWS: usize>(
            self,
            x: *const u32,
            w: *const u32,
            pairs: usize,
            acc: *mut f32,
            acc_stride: usize,
            accumulate: bool,
        ) {
            // SAFETY: the token proves NEON and BF16; every pointer stays
            // inside the ranges of `Bf16Micro::run`'s contract (a pair of a
            // row group is MR = 6 words, read as 4 words and 2 words).
            unsafe {
                let mut c = [[vdupq_n_f32(0.0); 4]; ROWS];
                if accumulate {
                    for i in 0..ROWS {
                        for v in 0..4 {
                            c[i][v] = vld1q_f32(acc.add(i * acc_stride + 4 * v));
                        }
                    }
                }
                for q in 0..pairs {
                    let mut b = [vdupq_n_u32(0); 4];
                    for v in 0..4 {
                        b[v] = vld1q_u32(w.add(q * NR + 4 * v));
                    }
                    let low = vld1q_u32(x.add(q * MR));
                    let high = if ROWS > 4 {
                        vcombine_u32(vld1_u32(x.add(q * MR + 4)), vdup_n_u32(0))
                    } else {
                        vdupq_n_u32(0)
                    };
                    for v in 0..4 {
                        c[0][v] = bfdot_lane::<0>(c[0][v], b[v], low);
                        if ROWS > 1 {
                            c[1 % ROWS][v] = bfdot_lane::<1>(c[1 % ROWS][v], b[v], low);
                        }
                        if ROWS > 2 {
                            c[2 % ROWS][v] = bfdot_lane::<2>(c[2 % ROWS][v], b[v], low);
                        }
                        if ROWS > 3 {
                            c[3 % ROWS][v] = bfdot_lane::<3>(c[3 % ROWS][v], b[v], low);
                        }
                        if ROWS > 4 {
                            c[4 % ROWS][v] = bfdot_lane::<0>(c[4 % ROWS][v], b[v], high);
                        }
                        if ROWS > 5 {
                            c[5 % ROWS][v] = bfdot_lane::<1>(c[5 % ROWS][v], b[v], high);
                        }
                    }
                }
                for i in 0..ROWS {
                    for v in 0..4 {
                        vst1q_f32(acc.add(i * acc_stride + 4 * v), c[i][v]);
                    }
                }
            }
        }
    }

    impl Bf16Micro for Bfdot {
        const MR: usize = MR;
        const NP: usize = 1;

        #[inline(always)]
        unsafe fn run(
            self,
            rows: usize,
            panels: usize,
            x: *const u32,
            w: &[*const u32; MAX_NP],
            pairs: usize,
            acc: *mut f32,
            acc_stride: usize,
            accumulate: bool,
        ) {
            assert_eq!(panels, 1, "{panels} panels per bfdot microkernel call");
            macro_rules! call {
                ($rows:literal) => {{
                    // SAFETY: the caller's contract, with ROWS = rows.
                    unsafe { self.micro::<$rows>(x, w[0], pairs, acc, acc_stride, accumulate) }
                }};
            }
            dispatch_rows!(rows, call, [1, 2, 3, 4, 5, 6])
        }
    }

    /// Computes one tile of a job whose matrices are all BF16, epilogue included.
    ///
    /// # Safety
    /// The CPU must support NEON and BF16, and no other task may write the
    /// tile's part of the output meanwhile.
    #[target_feature(enable = "neon,bf16")]
    unsafe fn tile(job: &MatmulJob<'_>, tile: Tile) {
        // SAFETY: the caller's contract covers both tokens and the tile.
        unsafe { bf16::tile(Neon::new_unchecked(), Bfdot(()), job, tile) }
    }

    fn has_bf16(features: &CpuFeatures) -> bool {
        features.bf16
    }

    /// The `neon` tier's bf16 matmul on CPUs with FEAT_BF16. The activations
    /// are rounded by the scalar [`bf16::pack_group_scalar`], the rounding of
    /// every bf16 dot-product tier.
    pub(crate) const KERNELS: Bf16DotKernels =
        Bf16DotKernels { tile, mr: MR, pair_align: 1, pack_group: bf16::pack_group_scalar, available: has_bf16 };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_bits(value: f32) -> u16 {
        let bits = value.to_bits();
        assert_eq!(bits & 0xffff, 0, "{value} is not a bfloat16 value");
        (bits >> 16) as u16
    }

    fn pair(first: f32, second: f32) -> u32 {
        u32::from(bf16_bits(first)) | u32::from(bf16_bits(second)) << 16
    }

    #[test]
    fn sums_round_to_odd() {
        let step = f32::EPSILON;
        // 1 + 2⁻²⁴ lies halfway between 1 and 1 + 2⁻²³: rounding to odd
        // gives 1 + 2⁻²³, where rounding to nearest even would give 1.
        assert_eq!(dot_pair(0.0, pair(1.0, 1.0 / 16_777_216.0), pair(1.0, 1.0)), 1.0 + step);
        // 1 + 2⁻²³ + 2⁻²⁴ is inexact and truncates to 1 + 2⁻²³, which is already odd.
        assert_eq!(dot_pair(1.0 + step, pair(1.0 / 16_777_216.0, 0.0), pair(1.0, 0.0)), 1.0 + step);
        // 1 − 2⁻²⁶ truncates to 1 − 2⁻²⁴, which is odd; rounding to nearest would give 1.
        let below = dot_pair(1.0, pair(-1.0 / 67_108_864.0, 0.0), pair(1.0, 0.0));
        assert_eq!(below, 1.0 - step / 2.0);
        // Exact sums are unchanged.
        assert_eq!(dot_pair(2.0, pair(0.5, 0.25), pair(4.0, 8.0)), 6.0);
    }

    #[test]
    fn far_smaller_term_only_sets_last_bit() {
        // 2⁴⁰ + 2⁻⁴⁰: the small term decides only that the sum is inexact.
        let big = 1_099_511_627_776.0f32;
        let tiny = 1.0 / big;
        let odd_big = f32::from_bits(big.to_bits() | 1);
        assert_eq!(dot_pair(big, pair(tiny, 0.0), pair(1.0, 0.0)), odd_big);
        // Subtracting it truncates to the f32 below 2⁴⁰, which is odd.
        let below = f32::from_bits(big.to_bits() - 1);
        assert_eq!(dot_pair(big, pair(-tiny, 0.0), pair(1.0, 0.0)), below);
    }

    #[test]
    fn range_limits_and_nan() {
        let tiny = 1e-20f32;
        let tiny = f32::from_bits(tiny.to_bits() & 0xffff_0000);
        // A product below the normal range is flushed, keeping its sign.
        assert_eq!(multiply(bf16_bits(tiny), bf16_bits(-tiny)).to_bits(), (-0.0f32).to_bits());
        assert_eq!(dot_pair(1.0, pair(tiny, 0.0), pair(tiny, 0.0)), 1.0);
        assert_eq!(round_to_odd(-1e-40).to_bits(), (-0.0f32).to_bits());
        // A product beyond it overflows to infinity.
        let huge = f32::from_bits(0x7f00_0000);
        assert_eq!(dot_pair(0.0, pair(huge, 0.0), pair(huge, 0.0)), f32::INFINITY);
        // Infinity times zero, infinity minus infinity and NaN inputs give the default NaN.
        let infinity = f32::INFINITY;
        assert_eq!(dot_pair(0.0, pair(infinity, 0.0), pair(0.0, 0.0)).to_bits(), DEFAULT_NAN.to_bits());
        assert_eq!(dot_pair(0.0, pair(infinity, infinity), pair(1.0, -1.0)).to_bits(), DEFAULT_NAN.to_bits());
        let nan = f32::from_bits(0xffc1_0000);
        assert_eq!(dot_pair(0.0, pair(nan, 0.0), pair(1.0, 0.0)).to_bits(), DEFAULT_NAN.to_bits());
        // Cancellation gives +0.
        assert_eq!(dot_pair(-1.0, pair(1.0, 0.0), pair(1.0, 0.0)).to_bits(), 0.0f32.to_bits());
    }
}
