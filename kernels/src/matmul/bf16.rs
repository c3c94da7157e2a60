//! Matmul with BF16 weights on bf16 dot-product instructions, and its scalar twin.
//!
//! The activations are rounded to bfloat16 once per call and packed in row
//! groups of pairs. For every pair `q` of input features, group `g` stores
//! the `mr` 32-bit words `bf16(x[g·mr + i][2q]) | bf16(x[g·mr + i][2q + 1]) << 16`.
//! Rows past the end and the padding feature of an odd `k` are zero. The packed weights already have this pair layout
//! (see [`super::packed`]), so one instruction multiplies a broadcast pair
//! of one row with a pair of each of 16 output features.
//!
//! Per output element and pair, the product follows `vdpbf16ps` as the
//! Intel SDM (December 2023, volume 2) gives it: the second products are
//! added first, `acc += x₁·w₁`, then `acc += x₀·w₀`, each a fused
//! multiply-add rounded to nearest even, with subnormal inputs read as zero
//! and subnormal results flushed to zero. Activations are rounded as
//! `vcvtne2ps2bf16` rounds them: nearest even, subnormals to signed zero,
//! NaN kept quiet. [`SCALAR_TWIN`] computes exactly that in plain Rust, so
//! a SIMD tier can be checked against it bit for bit.

use rayon::prelude::*;

use super::int8::always;
use super::simd::{MAX_MR, MAX_NP, epilogue, return_scratch, take_scratch};
use super::{KC, MatmulJob, NR, PackedMatrix, Tile, TileKernel, WeightFormat};
use crate::isa::CpuFeatures;
use crate::simd::Simd;

/// Converts the rows of one row group to packed bf16 pairs:
/// `(x, k, mr, out)` with `x` holding the group's rows (at most `mr`, each
/// `k` values) and `out` the group's `mr·ceil(k / 2)` words.
///
/// # Safety
/// The CPU must support the tier the function belongs to.
pub(crate) type PackGroup = unsafe fn(&[f32], usize, usize, &mut [u32]);

/// The bf16 dot-product matmul of a tier, used for matrices stored as [`WeightFormat::BF16`].
#[derive(Clone, Copy)]
pub(crate) struct Bf16DotKernels {
    pub tile: TileKernel,
    /// Rows per row group of the packed activations; tiles are cut at multiples of it.
    pub mr: usize,
    /// Pairs of one packed row are padded with zeros to a multiple of this.
    pub pair_align: usize,
    pub pack_group: PackGroup,
    /// Reports whether the CPU has the features the kernel needs beyond its tier's.
    pub available: fn(&CpuFeatures) -> bool,
}

impl Bf16DotKernels {
    /// Returns the words of one packed row of `k` input features, padding included.
    pub(crate) fn row_words(&self, k: usize) -> usize {
        k.div_ceil(2).next_multiple_of(self.pair_align)
    }
}

/// Row groups converted per parallel task.
const GROUPS_PER_PACK_TASK: usize = 8;

/// Converts `x: [rows, k]` to bf16 pairs in row groups of `dot.mr` rows
/// (see the module documentation), `out` holding at least
/// `ceil(rows / mr)·mr·dot.row_words(k)` words.
///
/// # Safety
/// The CPU must support the tier `dot` belongs to.
pub(crate) unsafe fn pack_pairs(x: &[f32], rows: usize, k: usize, dot: Bf16DotKernels, out: &mut [u32]) {
    let (mr, pack_group) = (dot.mr, dot.pack_group);
    let group_len = mr * dot.row_words(k);
    if group_len == 0 {
        return;
    }
    assert!(x.len() >= rows * k, "X has {} values, expected {rows}×{k}", x.len());
    assert!(out.len() >= rows.div_ceil(mr) * group_len, "packed X buffer of {} words too short", out.len());
    let out = &mut out[..rows.div_ceil(mr) * group_len];
    out.par_chunks_mut(group_len * GROUPS_PER_PACK_TASK).enumerate().for_each(|(task, groups)| {
        for (index, group) in groups.chunks_exact_mut(group_len).enumerate() {
            let row0 = (task * GROUPS_PER_PACK_TASK + index) * mr;
            let group_rows = mr.min(rows - row0);
            // SAFETY: the caller vouches for the tier of `pack_group`.
            unsafe { pack_group(&x[row0 * k..(row0 + group_rows) * k], k, mr, group) };
        }
    });
}

/// Returns `value` rounded to bfloat16 as `vcvtne2ps2bf16` rounds it.
pub(crate) fn round_to_bf16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = (bits >> 16) as u16 & 0x8000;
    if value.is_nan() {
        return (bits >> 16) as u16 | 0x0040;
    }
    if value == 0.0 || value.is_subnormal() {
        return sign;
    }
    if value.is_infinite() {
        return (bits >> 16) as u16;
    }
    let lowest_kept = (bits >> 16) & 1;
    (bits.wrapping_add(0x7fff + lowest_kept) >> 16) as u16
}

/// Returns a bfloat16 as f32, with a subnormal read as zero of the same sign.
pub(crate) fn widen_flushed(value: u16) -> f32 {
    flush_subnormal(f32::from_bits(u32::from(value) << 16))
}

pub(crate) fn flush_subnormal(value: f32) -> f32 {
    if value.is_subnormal() { f32::from_bits(value.to_bits() & 0x8000_0000) } else { value }
}

/// Returns `acc` after one `vdpbf16ps` lane step with the pairs `x` and `w`.
fn dot_pair(acc: f32, x: u32, w: u32) -> f32 {
    let (x0, x1) = (widen_flushed(x as u16), widen_flushed((x >> 16) as u16));
    let (w0, w1) = (widen_flushed(w as u16), widen_flushed((w >> 16) as u16));
    let acc = flush_subnormal(x1.mul_add(w1, flush_subnormal(acc)));
    flush_subnormal(x0.mul_add(w0, acc))
}

/// Scalar [`PackGroup`]: rounds every value with [`round_to_bf16`].
///
/// # Safety
/// None beyond the type's contract; the function is `unsafe` to fit [`PackGroup`].
pub(crate) unsafe fn pack_group_scalar(x: &[f32], k: usize, mr: usize, out: &mut [u32]) {
    out.fill(0);
    for (i, row) in x.chunks_exact(k).enumerate() {
        for (q, pair) in row.chunks(2).enumerate() {
            let first = u32::from(round_to_bf16(pair[0]));
            let second = pair.get(1).map_or(0, |&value| u32::from(round_to_bf16(value)));
            out[q * mr + i] = first | second << 16;
        }
    }
}

/// The bf16 dot product of one output element as an instruction computes
/// it: `(x, panel, lane)` with `x` the row's `pairs` packed pairs and
/// `panel` the weight panel's `pairs·NR` pairs, of which lane `lane` is used.
pub(crate) type ElementDot = fn(&[u32], &[u32], usize) -> f32;

/// Returns the `vdpbf16ps` chain of one output element.
fn element_dot(x: &[u32], panel: &[u32], lane: usize) -> f32 {
    let mut sum = 0.0f32;
    for (q, &pair) in x.iter().enumerate() {
        sum = dot_pair(sum, pair, panel[q * NR + lane]);
    }
    sum
}

/// Computes the raw product of the tile's rows with `w` into `acc`
/// (`rows × panels·NR`), one `dot` per element.
fn product_scalar(
    job: &MatmulJob<'_>,
    tile: Tile,
    w: &PackedMatrix,
    x_pairs: &[u32],
    dot: ElementDot,
    acc: &mut [f32],
) {
    let pairs = job.k.div_ceil(2);
    let acc_stride = tile.panels * NR;
    for p in 0..tile.panels {
        let start = w.panel_ptr(tile.panel0 + p, 0).cast::<u32>();
        // SAFETY: the panel exists (checked by `panel_ptr`) and contains
        // ceil(k / 2)·NR pairs. Packed storage is 64-byte aligned, and so is
        // every panel, because a panel is a multiple of 64 bytes.
        let panel = unsafe { std::slice::from_raw_parts(start, pairs * NR) };
        for r in 0..tile.rows {
            let x = &x_pairs[(tile.row0 + r) * pairs..][..pairs];
            for j in 0..NR {
                acc[r * acc_stride + p * NR + j] = dot(x, panel, j);
            }
        }
    }
}

/// # Safety
/// No other task may write the tile's part of the output meanwhile.
unsafe fn tile_scalar(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract.
    unsafe { tile_scalar_with(job, tile, element_dot) }
}

/// Computes one tile with `dot` per element, from X packed one row per group.
///
/// # Safety
/// No other task may write the tile's part of the output meanwhile.
pub(crate) unsafe fn tile_scalar_with(job: &MatmulJob<'_>, tile: Tile, dot: ElementDot) {
    let x_pairs = job.x_pairs.expect("the bf16 dot-product tile reads X as packed pairs");
    assert_eq!(job.x_pack_rows, 1, "the scalar twin reads X packed one row per group");
    let acc_stride = tile.panels * NR;
    let (first, second) = job.matrices();
    let mut acc = vec![0.0f32; tile.rows * acc_stride];
    product_scalar(job, tile, first, x_pairs, dot, &mut acc);
    let mut value_acc = Vec::new();
    if let Some(value) = second {
        value_acc = vec![0.0f32; tile.rows * acc_stride];
        product_scalar(job, tile, value, x_pairs, dot, &mut value_acc);
    }
    // SAFETY: the caller reserved the tile's output.
    unsafe { super::scalar::finish(job, tile, &acc, &value_acc) };
}

/// The scalar twin of the bf16 dot-product tiers.
pub(crate) const SCALAR_TWIN: Bf16DotKernels =
    Bf16DotKernels { tile: tile_scalar, mr: 1, pair_align: 1, pack_group: pack_group_scalar, available: always };

/// The register-tiled microkernel of a bf16 dot-product tier.
pub(crate) trait Bf16Micro: Copy {
    /// Rows per row group of the packed activations, and rows per call at most.
    const MR: usize;
    /// Panels per call at most.
    const NP: usize;

    /// Sets, for `i < rows`, `p < panels` and `j < NR`,
    /// `acc[i·acc_stride + p·NR + j]` to the instruction's dot-product chain
    /// of row `i` of `x` with lane `j` of panel `p` over `pairs` pairs,
    /// starting from its old value when `accumulate`, else from zero.
    ///
    /// # Safety
    /// The CPU must support the kernel, `1 <= rows <= MR`,
    /// `1 <= panels <= NP`. `x` must have `pairs·MR` readable words (pair
    /// `q` of row `i` at `q·MR + i`), each `w[p]` for `p < panels`
    /// `pairs·NR` readable words, and `acc` room for `rows` rows of
    /// `panels·NR` floats at stride `acc_stride`.
    #[allow(clippy::too_many_arguments)]
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
    );
}

/// Pairs per reduction block: the [`KC`] input features of the tiles over widened weights.
const BLOCK_PAIRS: usize = KC / 2;

/// Computes one tile of a job whose matrices are all BF16 with microkernel
/// `micro`, epilogue included.
///
/// # Safety
/// The CPU must support `S`'s tier and `M`'s kernel, and no other task may
/// write the tile's part of the output meanwhile.
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd, M: Bf16Micro>(s: S, micro: M, job: &MatmulJob<'_>, tile: Tile) {
    const { assert!(M::MR <= MAX_MR && M::NP <= MAX_NP) };
    let pairs = job.k.div_ceil(2);
    let x_pairs = job.x_pairs.expect("the bf16 dot-product tile reads X as packed pairs");
    assert_eq!(job.x_pack_rows, M::MR, "X packed in groups of {} rows", job.x_pack_rows);
    assert!(tile.row0.is_multiple_of(M::MR), "tile starts at row {}, inside a row group", tile.row0);
    let (first, second) = job.matrices();
    let matrices = if second.is_some() { 2 } else { 1 };
    let groups = tile.rows.div_ceil(M::MR);
    assert!(x_pairs.len() >= (tile.row0 + groups * M::MR) * pairs, "packed X shorter than the tile's rows");
    let x_tile = x_pairs[tile.row0 * pairs..].as_ptr();
    let acc_stride = tile.panels * NR;
    let acc_len = groups * M::MR * acc_stride;
    let mut scratch = take_scratch(matrices * acc_len);
    let accumulators = scratch.as_mut_ptr();

    // With k = 0 there is one empty block, so the epilogue still runs.
    let blocks = pairs.div_ceil(BLOCK_PAIRS).max(1);
    for block in 0..blocks {
        let q0 = block * BLOCK_PAIRS;
        let qc = BLOCK_PAIRS.min(pairs - q0);
        let last = block + 1 == blocks;
        for g in 0..groups {
            let group_rows = M::MR.min(tile.rows - g * M::MR);
            for panel in (0..tile.panels).step_by(M::NP) {
                let np = M::NP.min(tile.panels - panel);
                for (m, w) in [Some(first), second].into_iter().flatten().enumerate() {
                    let mut chunk = [std::ptr::null::<u32>(); MAX_NP];
                    for (p, pointer) in chunk.iter_mut().enumerate().take(np) {
                        *pointer = w.panel_ptr(tile.panel0 + panel + p, 2 * q0).cast();
                    }
                    // SAFETY: row group g has MR words per pair from the
                    // block's start, each panel qc·NR words from pair q0,
                    // and the accumulator block of matrix m has room for
                    // group_rows rows of np·NR floats.
                    unsafe {
                        let acc = accumulators.add(m * acc_len + g * M::MR * acc_stride + panel * NR);
                        let x = x_tile.add(g * M::MR * pairs + q0 * M::MR);
                        micro.run(group_rows, np, x, &chunk, qc, acc, acc_stride, block > 0);
                    }
                }
                if last {
                    let col0 = (tile.panel0 + panel) * NR;
                    let cols = (np * NR).min(job.n - col0);
                    // SAFETY: the block lies in this tile, whose output
                    // the caller reserved, and the accumulators hold it.
                    unsafe {
                        let acc = accumulators.add(g * M::MR * acc_stride + panel * NR);
                        let value_acc = if matrices == 2 { acc.add(acc_len) } else { acc };
                        epilogue(s, job, acc, value_acc, acc_stride, tile.row0 + g * M::MR, group_rows, col0, cols);
                    }
                }
            }
        }
    }
    return_scratch(scratch);
}

/// Reports whether every matrix of the job is stored as BF16, so the bf16
/// dot-product tile can compute it.
pub(crate) fn all_bf16(first: &PackedMatrix, second: Option<&PackedMatrix>) -> bool {
    first.format() == WeightFormat::BF16 && second.is_none_or(|w| w.format() == WeightFormat::BF16)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    //! `vdpbf16ps` on 512-bit registers.

    use std::arch::x86_64::*;

    use super::{Bf16DotKernels, Bf16Micro, MatmulJob, NR, Tile, always};
    use crate::matmul::simd::MAX_NP;
    use crate::simd::avx512::Avx512;

    /// Rows per microkernel call: 8 rows × 3 panels = 24 of the 32 zmm
    /// registers accumulate, 3 hold weight pairs and 1 the broadcast pair.
    const MR: usize = 8;
    const NP: usize = 3;

    /// Reinterprets 64 bytes as 32 bfloat16 values.
    #[inline(always)]
    fn as_bf16(v: __m512i) -> __m512bh {
        // SAFETY: both types are 64-byte vectors of plain bits, valid for every bit pattern.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }

    /// Accumulates one register tile over `pairs` pairs:
    /// `acc[i·acc_stride + p·NR + j]` gets the `vdpbf16ps` chain of row `i`
    /// of `x` with lane `j` of panel `p`, starting from zero unless `accumulate`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 BF16. `x` must have
    /// `pairs·MR_` readable words (group layout, row stride 1, pair stride
    /// `MR_`), each `w[p]` `pairs·NR` readable words, and `acc`
    /// `(ROWS − 1)·acc_stride + PANELS·NR` readable and writable floats.
    #[inline(always)]
    unsafe fn micro<const ROWS: usize, const PANELS: usize>(
        x: *const u32,
        x_stride: usize,
        w: &[*const u32; MAX_NP],
        pairs: usize,
        acc: *mut f32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        // SAFETY: the intrinsics need AVX-512F and BF16 (this function's
        // contract), and every pointer stays inside the ranges above.
        unsafe {
            let mut c = [[_mm512_setzero_ps(); PANELS]; ROWS];
            if accumulate {
                for i in 0..ROWS {
                    for p in 0..PANELS {
                        c[i][p] = _mm512_loadu_ps(acc.add(i * acc_stride + p * NR));
                    }
                }
            }
            for q in 0..pairs {
                let mut b = [as_bf16(_mm512_setzero_si512()); PANELS];
                for p in 0..PANELS {
                    b[p] = as_bf16(_mm512_loadu_si512(w[p].add(q * NR).cast()));
                }
                for i in 0..ROWS {
                    let a = as_bf16(_mm512_set1_epi32(x.add(q * x_stride + i).read() as i32));
                    for p in 0..PANELS {
                        c[i][p] = _mm512_dpbf16_ps(c[i][p], a, b[p]);
                    }
                }
            }
            for i in 0..ROWS {
                for p in 0..PANELS {
                    _mm512_storeu_ps(acc.add(i * acc_stride + p * NR), c[i][p]);
                }
            }
        }
    }

    /// The `vdpbf16ps` microkernel.
    #[derive(Clone, Copy)]
    struct Dpbf16(());

    impl Bf16Micro for Dpbf16 {
        const MR: usize = MR;
        const NP: usize = NP;

        /// Runs [`micro`] for `rows <= MR` and `panels <= NP` known only at run time.
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
            if rows == MR && panels == NP {
                // SAFETY: the caller's contract with the full register tile.
                unsafe { micro::<MR, NP>(x, MR, w, pairs, acc, acc_stride, accumulate) };
                return;
            }
            macro_rules! by_panels {
                ($rows:literal) => {
                    match panels {
                        // SAFETY: the caller's contract with the sizes matched here.
                        1 => unsafe { micro::<$rows, 1>(x, MR, w, pairs, acc, acc_stride, accumulate) },
                        // SAFETY: as above.
                        2 => unsafe { micro::<$rows, 2>(x, MR, w, pairs, acc, acc_stride, accumulate) },
                        // SAFETY: as above.
                        3 => unsafe { micro::<$rows, 3>(x, MR, w, pairs, acc, acc_stride, accumulate) },
                        _ => unreachable!("{panels} panels per microkernel call"),
                    }
                };
            }
            match rows {
                1 => by_panels!(1),
                2 => by_panels!(2),
                3 => by_panels!(3),
                4 => by_panels!(4),
                5 => by_panels!(5),
                6 => by_panels!(6),
                7 => by_panels!(7),
                8 => by_panels!(8),
                _ => unreachable!("{rows} rows per microkernel call"),
            }
        }
    }

    /// Computes one tile of a job whose matrices are all BF16, epilogue included.
    ///
    /// # Safety
    /// The CPU must support the `avx512bf16` tier, and no other task may
    /// write the tile's part of the output meanwhile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c,avx512bf16")]
    unsafe fn tile(job: &MatmulJob<'_>, tile: Tile) {
        // SAFETY: this function runs only where its features were detected,
        // and the caller reserved the tile's output.
        unsafe { super::tile(Avx512::new_unchecked(), Dpbf16(()), job, tile) }
    }

    /// Converts one row group to bf16 pairs with `vcvtne2ps2bf16`, 32 values at a time.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, BW and BF16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c,avx512bf16")]
    unsafe fn pack_group(x: &[f32], k: usize, mr: usize, out: &mut [u32]) {
        let pairs = k.div_ceil(2);
        assert!(x.len().is_multiple_of(k), "{} values are not whole rows of {k}", x.len());
        assert!(x.len() / k <= mr, "{} rows in a group of {mr}", x.len() / k);
        assert!(out.len() >= mr * pairs, "packed group of {} words too short", out.len());
        out.fill(0);
        let mut row_pairs = vec![0u32; pairs.next_multiple_of(16)];
        for (i, row) in x.chunks_exact(k).enumerate() {
            // SAFETY: the caller's contract; `row_pairs` has room for the padded row.
            unsafe { convert_row(row, &mut row_pairs) };
            for (q, &pair) in row_pairs[..pairs].iter().enumerate() {
                out[q * mr + i] = pair;
            }
        }
    }

    /// Converts one row of `k` values to `ceil(k / 2)` bf16 pairs with
    /// `vcvtne2ps2bf16`, 32 values at a time, writing zeros up to the next
    /// multiple of 16 words.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, BW and BF16.
    ///
    /// # Panics
    /// If `out` has fewer than `ceil(k / 2)` words rounded up to a multiple of 16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c,avx512bf16")]
    pub(crate) unsafe fn convert_row(row: &[f32], row_pairs: &mut [u32]) {
        let k = row.len();
        assert!(row_pairs.len() >= k.div_ceil(2).next_multiple_of(16), "row of {} words too short", row_pairs.len());
        for c in (0..k).step_by(32) {
            let low = 16.min(k - c);
            let high = (k - c).saturating_sub(16).min(16);
            // SAFETY: the masks select values c..c + low and
            // c + 16..c + 16 + high of the row, which exist. The row of
            // pairs has room for 16 words at c / 2, because c / 2 is a
            // multiple of 16 below ceil(k / 2) and the row has ceil(k / 2)
            // words rounded up to a multiple of 16. The transmute
            // reinterprets 64 bytes of plain bits.
            unsafe {
                let first = _mm512_maskz_loadu_ps(((1u32 << low) - 1) as __mmask16, row.as_ptr().add(c));
                let second = if high == 0 {
                    _mm512_setzero_ps()
                } else {
                    _mm512_maskz_loadu_ps(((1u32 << high) - 1) as __mmask16, row.as_ptr().add(c + 16))
                };
                let converted = _mm512_cvtne2ps_pbh(second, first);
                let bits = std::mem::transmute::<__m512bh, __m512i>(converted);
                _mm512_storeu_si512(row_pairs.as_mut_ptr().add(c / 2).cast(), bits);
            }
        }
    }

    /// The `avx512bf16` tier's bf16 dot-product matmul.
    pub(crate) const KERNELS: Bf16DotKernels =
        Bf16DotKernels { tile, mr: MR, pair_align: 1, pack_group, available: always };
}
