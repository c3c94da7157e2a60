//! int8 microkernels for AArch64: `smmla` (FEAT_I8MM), `sdot`
//! (FEAT_DotProd) and plain NEON.

use std::arch::aarch64::*;

use super::{Int8Kernels, Int8Micro, MAX_NP, XLayout, always, dispatch_rows};
use crate::isa::CpuFeatures;
use crate::matmul::{MatmulJob, Tile};
use crate::simd::neon::Neon;

/// Returns `acc + Σ_{b<4} w[4j + b]·x[4·LANE + b]` in lane `j` (`sdot` by element).
///
/// # Safety
/// The CPU must support FEAT_DotProd.
#[inline(always)]
unsafe fn sdot_lane<const LANE: i32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` exists when FEAT_DotProd does (caller's contract) and
    // touches only the named registers. It is written in assembly because
    // the dot-product intrinsics are unstable (`stdarch_neon_dotprod`, as of
    // Rust 1.96).
    unsafe {
        std::arch::asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            lane = const LANE,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    acc
}

/// Returns `acc + a·bᵀ` as a 2×2 row-major block (`smmla`): `a` holds two
/// rows of 8 signed bytes, `b` two columns of 8 signed bytes, and lane
/// `2i + j` gets `Σ_{b<8} a[8i + b]·b[8j + b]`.
///
/// # Safety
/// The CPU must support FEAT_I8MM.
#[inline(always)]
unsafe fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `smmla` exists when FEAT_I8MM does (caller's contract) and
    // touches only the named registers. It is written in assembly because
    // the matrix-multiply intrinsics are unstable (`stdarch_neon_i8mm`, as
    // of Rust 1.96).
    unsafe {
        std::arch::asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    acc
}

/// The matrix-multiply kernel: `smmla` multiplies a pair of rows by a pair
/// of output features over 8 input features (two groups of 4).
///
/// The layouts need no change. For groups `t` and `t + 1`, `zip1`/`zip2` on
/// the 32-bit elements of the X registers give
/// `[r0 t, r0 t+1, r1 t, r1 t+1]`, one row pair with its 8 bytes per row
/// side by side. Likewise the weight registers of the two groups give
/// `[f0 t, f0 t+1, f1 t, f1 t+1]` for a pair of output features. An odd
/// last group is paired with zeros. Each sum comes out as a 2×2 block
/// `[r0·f0, r0·f1, r1·f0, r1·f1]`, and `zip1`/`zip2` on 64-bit halves turn
/// two blocks into 4 outputs of each row when the sums are stored.
///
/// 3 row pairs × 8 feature pairs = 24 of the 32 registers accumulate; 3
/// hold row pairs and up to 4 weights.
#[derive(Clone, Copy)]
struct MatrixMultiply(());

impl MatrixMultiply {
    /// Returns one group of X: rows 0 to 3, and rows 4 and 5 in the low half.
    ///
    /// # Safety
    /// The CPU must support NEON, and `group` must have 24 readable bytes.
    #[inline(always)]
    unsafe fn load_x(group: *const u8) -> [int32x4_t; 2] {
        // SAFETY: the caller's contract.
        unsafe {
            let low = vld1q_s32(group.cast());
            let high = vcombine_s32(vld1_s32(group.add(16).cast()), vdup_n_s32(0));
            [low, high]
        }
    }

    /// # Safety
    /// As [`Int8Micro::run`] with `ROWS` rows.
    #[inline(always)]
    unsafe fn micro<const ROWS: usize>(
        self,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        const MR: usize = MatrixMultiply::MR;
        // Row pairs: a missing row of the last pair reads the zeros that pad
        // the group to MR rows, and its sums are not stored.
        let pairs = ROWS.div_ceil(2);
        // SAFETY: the token proves NEON and I8MM; every pointer stays inside
        // the ranges of `Int8Micro::run`'s contract: a group of X is MR·4 =
        // 24 bytes, read as 16 bytes (rows 0 to 3) and 8 bytes (rows 4 and
        // 5), and a group of weights is 64 bytes. The group after an odd
        // last group is never read.
        unsafe {
            // c[p][f] contains the 2×2 block of rows 2p, 2p + 1 and features 2f, 2f + 1.
            let mut c = [[vdupq_n_s32(0); 8]; 3];
            for t in (0..groups).step_by(2) {
                let second = t + 1 < groups;
                let [x0_low, x0_high] = Self::load_x(x.add(MR * 4 * t));
                let [x1_low, x1_high] =
                    if second { Self::load_x(x.add(MR * 4 * (t + 1))) } else { [vdupq_n_s32(0); 2] };
                let a = [
                    vreinterpretq_s8_s32(vzip1q_s32(x0_low, x1_low)),
                    vreinterpretq_s8_s32(vzip2q_s32(x0_low, x1_low)),
                    vreinterpretq_s8_s32(vzip1q_s32(x0_high, x1_high)),
                ];
                for v in 0..4 {
                    let w0 = vld1q_s32(w[0].add(64 * t + 16 * v).cast());
                    let w1 = if second { vld1q_s32(w[0].add(64 * (t + 1) + 16 * v).cast()) } else { vdupq_n_s32(0) };
                    let b = [vreinterpretq_s8_s32(vzip1q_s32(w0, w1)), vreinterpretq_s8_s32(vzip2q_s32(w0, w1))];
                    for p in 0..pairs {
                        c[p][2 * v] = smmla(c[p][2 * v], a[p], b[0]);
                        c[p][2 * v + 1] = smmla(c[p][2 * v + 1], a[p], b[1]);
                    }
                }
            }
            for p in 0..pairs {
                for v in 0..4 {
                    let (even, odd) = (vreinterpretq_s64_s32(c[p][2 * v]), vreinterpretq_s64_s32(c[p][2 * v + 1]));
                    let row_sums = [vzip1q_s64(even, odd), vzip2q_s64(even, odd)];
                    for (half, &sums) in row_sums.iter().enumerate().take(ROWS - 2 * p) {
                        let at = acc.add((2 * p + half) * acc_stride + 4 * v);
                        let sums = vreinterpretq_s32_s64(sums);
                        let sum = if accumulate { vaddq_s32(sums, vld1q_s32(at)) } else { sums };
                        vst1q_s32(at, sum);
                    }
                }
            }
        }
    }
}

impl Int8Micro for MatrixMultiply {
    const MR: usize = 6;
    const NP: usize = 1;

    #[inline(always)]
    unsafe fn run(
        self,
        rows: usize,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        macro_rules! call {
            ($rows:literal) => {{
                // SAFETY: the caller's contract, with ROWS = rows.
                unsafe { self.micro::<$rows>(x, w, groups, acc, acc_stride, accumulate) }
            }};
        }
        dispatch_rows!(rows, call, [1, 2, 3, 4, 5, 6])
    }
}

/// The dot-product kernel: a group of 4 rows' X is one 16-byte register
/// whose 32-bit element `i` is row `i`, and `sdot` by element adds 4
/// products per lane.
///
/// 4 rows × 1 panel (4 q registers) = 16 of the 32 registers accumulate.
#[derive(Clone, Copy)]
struct DotProd(());

impl DotProd {
    /// # Safety
    /// As [`Int8Micro::run`] with `ROWS` rows.
    #[inline(always)]
    unsafe fn micro<const ROWS: usize>(
        self,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        // SAFETY: the token proves NEON and DotProd; every pointer stays
        // inside the ranges of `Int8Micro::run`'s contract (a group of X is
        // MR·4 = 16 bytes whatever ROWS is).
        unsafe {
            let mut c = [[vdupq_n_s32(0); 4]; ROWS];
            for t in 0..groups {
                let mut b = [vdupq_n_s8(0); 4];
                for v in 0..4 {
                    b[v] = vld1q_s8(w[0].add(64 * t + 16 * v).cast());
                }
                let a = vld1q_s8(x.add(16 * t).cast());
                for v in 0..4 {
                    c[0][v] = sdot_lane::<0>(c[0][v], b[v], a);
                    if ROWS > 1 {
                        c[1 % ROWS][v] = sdot_lane::<1>(c[1 % ROWS][v], b[v], a);
                    }
                    if ROWS > 2 {
                        c[2 % ROWS][v] = sdot_lane::<2>(c[2 % ROWS][v], b[v], a);
                    }
                    if ROWS > 3 {
                        c[3 % ROWS][v] = sdot_lane::<3>(c[3 % ROWS][v], b[v], a);
                    }
                }
            }
            for i in 0..ROWS {
                for v in 0..4 {
                    let at = acc.add(i * acc_stride + 4 * v);
                    let sum = if accumulate { vaddq_s32(c[i][v], vld1q_s32(at)) } else { c[i][v] };
                    vst1q_s32(at, sum);
                }
            }
        }
    }
}

impl Int8Micro for DotProd {
    const MR: usize = 4;
    const NP: usize = 1;

    #[inline(always)]
    unsafe fn run(
        self,
        rows: usize,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        macro_rules! call {
            ($rows:literal) => {{
                // SAFETY: the caller's contract, with ROWS = rows.
                unsafe { self.micro::<$rows>(x, w, groups, acc, acc_stride, accumulate) }
            }};
        }
        dispatch_rows!(rows, call, [1, 2, 3, 4])
    }
}

/// The kernel for NEON without dot products: `smull`/`smull2` multiply 8
/// byte pairs into i16 (at most 127·127 in magnitude), and `sadalp` adds
/// adjacent products into i32 halves of a lane's sum. The two halves of
/// the 4-byte groups are added pairwise (`addp`) when the sums are stored.
///
/// 2 rows × 1 panel × 2 halves = 16 of the 32 registers accumulate.
#[derive(Clone, Copy)]
struct Widening(());

impl Widening {
    /// # Safety
    /// As [`Int8Micro::run`] with `ROWS` rows.
    #[inline(always)]
    unsafe fn micro<const ROWS: usize>(
        self,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        // SAFETY: the token proves NEON; every pointer stays inside the
        // ranges of `Int8Micro::run`'s contract.
        unsafe {
            // low[i][v] contains the partial sums of lanes 4v, 4v + 1, high[i][v] of 4v + 2, 4v + 3.
            let mut low = [[vdupq_n_s32(0); 4]; ROWS];
            let mut high = [[vdupq_n_s32(0); 4]; ROWS];
            for t in 0..groups {
                let mut b = [vdupq_n_s8(0); 4];
                for v in 0..4 {
                    b[v] = vld1q_s8(w[0].add(64 * t + 16 * v).cast());
                }
                for i in 0..ROWS {
                    let bytes = x.add((t * Self::MR + i) * 4).cast::<i32>().read_unaligned();
                    let a = vreinterpretq_s8_s32(vdupq_n_s32(bytes));
                    for v in 0..4 {
                        low[i][v] = vpadalq_s16(low[i][v], vmull_s8(vget_low_s8(b[v]), vget_low_s8(a)));
                        high[i][v] = vpadalq_s16(high[i][v], vmull_high_s8(b[v], a));
                    }
                }
            }
            for i in 0..ROWS {
                for v in 0..4 {
                    let at = acc.add(i * acc_stride + 4 * v);
                    let sums = vpaddq_s32(low[i][v], high[i][v]);
                    let sum = if accumulate { vaddq_s32(sums, vld1q_s32(at)) } else { sums };
                    vst1q_s32(at, sum);
                }
            }
        }
    }
}

impl Int8Micro for Widening {
    const MR: usize = 2;
    const NP: usize = 1;

    #[inline(always)]
    unsafe fn run(
        self,
        rows: usize,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        macro_rules! call {
            ($rows:literal) => {{
                // SAFETY: the caller's contract, with ROWS = rows.
                unsafe { self.micro::<$rows>(x, w, groups, acc, acc_stride, accumulate) }
            }};
        }
        dispatch_rows!(rows, call, [1, 2])
    }
}

/// # Safety
/// The CPU must support NEON and I8MM; no other task may write the
/// tile's part of the output meanwhile.
#[target_feature(enable = "neon,i8mm")]
unsafe fn tile_i8mm(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract covers both tokens and the tile.
    unsafe { super::tile(Neon::new_unchecked(), MatrixMultiply(()), job, tile) }
}

/// # Safety
/// The CPU must support NEON and DotProd; no other task may write the
/// tile's part of the output meanwhile.
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dotprod(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract covers both tokens and the tile.
    unsafe { super::tile(Neon::new_unchecked(), DotProd(()), job, tile) }
}

/// # Safety
/// The CPU must support NEON; no other task may write the tile's part of
/// the output meanwhile.
#[target_feature(enable = "neon")]
unsafe fn tile_neon(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract covers both tokens and the tile.
    unsafe { super::tile(Neon::new_unchecked(), Widening(()), job, tile) }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
unsafe fn quantize_neon(
    x: &[f32],
    k: usize,
    unsigned: bool,
    group: &mut [u8],
    scales: &mut [f32],
    row_buffer: &mut [i8],
) {
    super::quantize_group(x, k, unsigned, group, scales, row_buffer);
}

fn has_i8mm(features: &CpuFeatures) -> bool {
    features.i8mm
}

pub(crate) const I8MM: Int8Kernels = Int8Kernels {
    tile: tile_i8mm,
    mr: MatrixMultiply::MR,
    unsigned: false,
    name: "neon-i8mm",
    available: has_i8mm,
    layout: XLayout::Grouped,
    quantize: quantize_neon,
};

fn has_dotprod(features: &CpuFeatures) -> bool {
    features.dotprod
}

pub(crate) const DOTPROD: Int8Kernels = Int8Kernels {
    tile: tile_dotprod,
    mr: DotProd::MR,
    unsigned: false,
    name: "neon-dotprod",
    available: has_dotprod,
    layout: XLayout::Grouped,
    quantize: quantize_neon,
};

pub(crate) const NEON: Int8Kernels = Int8Kernels {
    tile: tile_neon,
    mr: Widening::MR,
    unsigned: false,
    name: "neon",
    available: always,
    layout: XLayout::Grouped,
    quantize: quantize_neon,
};
