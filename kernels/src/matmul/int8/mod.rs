//! Matmul with int8 weights: integer dot products summed exactly in i32.
//!
//! Scheme:
//! - W is quantised once, symmetrically per output feature, when it is
//!   packed (see [`super::quantize_row`]), and stores its scales and row
//!   sums after the panels. With one scale per output feature, each output
//!   is one exact integer sum times one float factor. NOTE: scales per
//!   block along k might be more accurate, but were not measured.
//! - X is quantised per row (token) in every call, once for all tiles, with
//!   the same function on every tier, so every tier gets the same integers.
//! - Every tier sums `Σ_k qx·qw` exactly in i32, so the sums are bitwise
//!   the same on every tier, thread count and tile split. The sums are then
//!   scaled with `(sum as f32) · (x_scale · w_scale)` in f32, the same
//!   operations on every tier, before the usual epilogue.
//!
//! The quantised X of a call is stored in groups of the kernel's MR rows:
//! group `g`, input feature group `t` (4 features), row `i` and byte `b` at
//! `g·MR·k4 + (t·MR + i)·4 + b`, where `k4` is `k` rounded up to a multiple
//! of 4, with zeros past `k` and past the last row. So the 4 bytes that a
//! row contributes to one weight group are adjacent, ready to be broadcast.
//! Kernels that need unsigned X (AVX-512 VNNI `vpdpbusd` multiplies u8 by
//! s8) store `q + 128` and subtract `128·Σ_k qw` from every sum. The AMX
//! kernel reads whole rows instead ([`XLayout::RowMajor`]).

use std::cell::Cell;

use rayon::prelude::*;

use super::packed::quantize_row_inline;
use super::simd::{return_scratch, take_scratch};
use super::{MatmulJob, NR, PackedMatrix, TileKernel, scalar, tiles};
use crate::disjoint::DisjointOutput;
use crate::isa::{CpuFeatures, Kernels};
pub(crate) use crate::matmul::dispatch_rows;
use crate::matmul::{Product, Tile};
use crate::simd::Simd;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// Largest reduction length of int8 weights: `127·127·k` must fit in an i32.
pub const INT8_MAX_K: usize = 131_072;

/// Input features per reduction block: a row group's X (`MR·KC` bytes, 8 KiB
/// at MR = 8) stays in L1 while the tile's weights for the block
/// (`KC·NR` bytes per panel) stream past it, the same bytes as the f32 path.
const KC: usize = 1024;

/// Panels per microkernel call at most, over all int8 kernels.
pub(crate) const MAX_NP: usize = 4;

/// Row groups quantised per parallel task.
const GROUPS_PER_TASK: usize = 8;

/// Rows per group of the scalar int8 kernel.
const SCALAR_MR: usize = 4;

thread_local! {
    /// Quantised X of the int8 matmul calls made from this thread, kept between calls.
    static X_QUANTIZED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// Scales of the rows of `X_QUANTIZED`.
    static X_SCALES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Memory layout of the quantised X of a call, chosen by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XLayout {
    /// Groups of MR rows with their groups of 4 input features interleaved
    /// (the module documentation).
    Grouped,
    /// Row after row, each padded with zeros from `k` to a multiple of
    /// `align` bytes.
    // Only the AMX kernel of x86-64 reads this layout.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    RowMajor { align: usize },
}

impl XLayout {
    /// Returns the bytes of one quantised row of `k` input features.
    pub(crate) fn row_bytes(self, k: usize) -> usize {
        match self {
            XLayout::Grouped => k.next_multiple_of(4),
            XLayout::RowMajor { align } => k.next_multiple_of(4).next_multiple_of(align),
        }
    }
}

/// X of one call, quantised per row in the kernel's [`XLayout`].
#[derive(Clone, Copy)]
pub(crate) struct QuantizedInput<'a> {
    /// Groups of `rows_per_group` rows, `rows_per_group·layout.row_bytes(k)` bytes each.
    pub bytes: &'a [u8],
    /// One scale per row, rows rounded up to a multiple of `rows_per_group`.
    pub scales: &'a [f32],
    pub rows_per_group: usize,
    /// The bytes are `q + 128` as u8 rather than `q` as i8.
    pub unsigned: bool,
    pub layout: XLayout,
}

/// The int8 matmul kernel of a tier.
#[derive(Clone, Copy)]
pub(crate) struct Int8Kernels {
    pub tile: TileKernel,
    /// Rows per group of the quantised X.
    pub mr: usize,
    /// The kernel reads X as `q + 128` (see [`QuantizedInput::unsigned`]).
    pub unsigned: bool,
    pub name: &'static str,
    /// Reports whether the CPU has the features the kernel needs beyond its tier's.
    pub available: fn(&CpuFeatures) -> bool,
    /// Layout of the quantised X that the kernel reads.
    pub layout: XLayout,
    /// [`quantize_group`], or for [`XLayout::RowMajor`] a row-major
    /// quantiser, compiled for the kernel's instruction set.
    pub quantize: QuantizeKernel,
}

/// Quantises one group of X rows: `(x, k, unsigned, group, scales, row_buffer)`
/// as in [`quantize_group`], into the kernel's [`XLayout`].
///
/// # Safety
/// The CPU must support the instruction set the function is compiled for.
pub(crate) type QuantizeKernel = unsafe fn(&[f32], usize, bool, &mut [u8], &mut [f32], &mut [i8]);

/// Needs no feature beyond the tier's.
pub(crate) fn always(_: &CpuFeatures) -> bool {
    true
}

pub(crate) const SCALAR: Int8Kernels = Int8Kernels {
    tile: tile_scalar,
    mr: SCALAR_MR,
    unsigned: false,
    name: "scalar",
    available: always,
    layout: XLayout::Grouped,
    quantize: quantize_group_scalar,
};

/// [`quantize_group`] for the scalar kernel.
///
/// # Safety
/// None beyond the signature; `unsafe` only to fit [`QuantizeKernel`].
unsafe fn quantize_group_scalar(
    x: &[f32],
    k: usize,
    unsigned: bool,
    group: &mut [u8],
    scales: &mut [f32],
    row_buffer: &mut [i8],
) {
    quantize_group(x, k, unsigned, group, scales, row_buffer);
}

impl Kernels {
    /// Returns the int8 kernel of this tier: the first faster one whose features the CPU has, else the base one.
    pub(crate) fn int8_kernels(&self) -> Int8Kernels {
        let features = CpuFeatures::detect();
        let faster = self.table.matmul_int8_dot.iter().find(|kernels| (kernels.available)(&features));
        faster.copied().unwrap_or(self.table.matmul_int8)
    }

    /// Returns the name of the kernel that [`Kernels::linear`] runs for
    /// [`WeightFormat::Int8`](crate::WeightFormat::Int8) weights: `scalar`, `avx2`, `avx512-vnni`,
    /// `amx`, `neon`, `neon-dotprod` or `neon-i8mm`. The AVX-512 tier runs `avx2` on CPUs
    /// without VNNI, and the AMX tier runs `avx512-vnni` or `avx2` on CPUs
    /// without AMX-INT8.
    pub fn int8_kernel_name(&self) -> &'static str {
        self.int8_kernels().name
    }
}

/// Returns the f32 value of an exact integer sum: `(sum − offset) · (x_scale · w_scale)`.
///
/// Every tier computes the output from the same sum with this function, so
/// the results before the epilogue are bitwise the same.
#[inline(always)]
pub(crate) fn dequantize(sum: i32, offset: i32, x_scale: f32, w_scale: f32) -> f32 {
    sum.wrapping_sub(offset) as f32 * (x_scale * w_scale)
}

/// Quantises the rows `x` (`rows·k` values, `rows <= scales.len()`) of one
/// group of `mr = scales.len()` rows into `group` (`mr·k4` bytes, layout in
/// the module documentation) and `scales`, with zeros for the missing rows.
/// `row_buffer` is scratch space of `k` values.
#[inline(always)]
pub(crate) fn quantize_group(
    x: &[f32],
    k: usize,
    unsigned: bool,
    group: &mut [u8],
    scales: &mut [f32],
    row_buffer: &mut [i8],
) {
    let mr = scales.len();
    let rows = x.len() / k;
    let flip = if unsigned { 0x80 } else { 0 };
    for (i, scale) in scales.iter_mut().enumerate() {
        *scale = if i < rows {
            quantize_row_inline(&x[i * k..(i + 1) * k], row_buffer)
        } else {
            row_buffer.fill(0);
            0.0
        };
        // Whole groups of 4 input features as one 32-bit word each.
        let quads = row_buffer.chunks_exact(4);
        let tail = quads.remainder();
        for (t, quad) in quads.enumerate() {
            let word = u32::from_le_bytes([quad[0] as u8, quad[1] as u8, quad[2] as u8, quad[3] as u8]);
            let flipped = word ^ u32::from_le_bytes([flip; 4]);
            group[(t * mr + i) * 4..][..4].copy_from_slice(&flipped.to_le_bytes());
        }
        if !tail.is_empty() {
            let target = &mut group[(k / 4 * mr + i) * 4..][..4];
            target.fill(flip);
            for (byte, &q) in target.iter_mut().zip(tail) {
                *byte = q as u8 ^ flip;
            }
        }
    }
}

/// Quantises the rows `x` (`rows·k` values, `rows <= scales.len()`) of one
/// group of `scales.len()` rows into `group` in [`XLayout::RowMajor`] order:
/// `group.len() / scales.len()` signed bytes per row, with zeros past `k`
/// and for the missing rows. The scales and integers are those of
/// [`quantize_group`].
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn quantize_rows(x: &[f32], k: usize, group: &mut [u8], scales: &mut [f32], row_buffer: &mut [i8]) {
    let stride = group.len() / scales.len();
    let rows = x.len() / k;
    for (i, (row, scale)) in group.chunks_exact_mut(stride).zip(scales.iter_mut()).enumerate() {
        if i < rows {
            *scale = quantize_row_inline(&x[i * k..(i + 1) * k], row_buffer);
            for (byte, &q) in row.iter_mut().zip(row_buffer.iter()) {
                *byte = q as u8;
            }
            row[k..].fill(0);
        } else {
            *scale = 0.0;
            row.fill(0);
        }
    }
}

/// Quantises `x: [rows, k]` per row into `bytes` and `scales` in groups of
/// `kernels.mr` rows (layout in the module documentation).
fn quantize_input(kernels: Int8Kernels, x: &[f32], rows: usize, k: usize, bytes: &mut [u8], scales: &mut [f32]) {
    let mr = kernels.mr;
    let row_bytes = kernels.layout.row_bytes(k);
    let group_len = mr * row_bytes;
    assert_eq!(bytes.len(), rows.next_multiple_of(mr) * row_bytes, "quantised X buffer has the wrong length");
    assert_eq!(scales.len(), rows.next_multiple_of(mr), "X scale buffer has the wrong length");
    if group_len == 0 {
        scales.fill(0.0);
        return;
    }
    let tasks = bytes.par_chunks_mut(group_len * GROUPS_PER_TASK).zip(scales.par_chunks_mut(mr * GROUPS_PER_TASK));
    tasks.enumerate().for_each(|(task, (groups, group_scales))| {
        let mut row_buffer = vec![0i8; k];
        for (index, (group, scales)) in groups.chunks_exact_mut(group_len).zip(group_scales.chunks_mut(mr)).enumerate()
        {
            let row0 = ((task * GROUPS_PER_TASK + index) * mr).min(rows);
            let row_end = (row0 + mr).min(rows);
            let x_group = &x[row0 * k..row_end * k];
            // SAFETY: `Kernels` exists only for tiers the CPU supports, and
            // `int8_kernels` picks a quantiser only where its kernel may run.
            unsafe { (kernels.quantize)(x_group, k, kernels.unsigned, group, scales, &mut row_buffer) };
        }
    });
}

/// Alignment in bytes of the quantised X of a call: a cache line, so that
/// every 64-byte row of an AMX A tile is one line. Without it, int8
/// matmuls on AMX measured 5 to 10 % slower.
const X_ALIGN: usize = super::CACHE_LINE;

/// Runs a linear or gated product with int8 weights on `kernels`.
pub(crate) fn run(
    kernels: Int8Kernels,
    x: &[f32],
    rows: usize,
    k: usize,
    n: usize,
    product: Product<'_>,
    y: &mut [f32],
) {
    assert!(k <= INT8_MAX_K, "int8 weights have k = {k} input features, at most {INT8_MAX_K} are supported");
    let tiles = tiles(rows, n.div_ceil(NR), rayon::current_num_threads(), kernels.mr, super::MC);
    if tiles.is_empty() {
        return;
    }

    let padded_rows = rows.next_multiple_of(kernels.mr);
    let len = padded_rows * kernels.layout.row_bytes(k);
    let mut bytes = X_QUANTIZED.take();
    bytes.resize(bytes.len().max(len + X_ALIGN), 0);
    let start = bytes.as_ptr().align_offset(X_ALIGN);
    let mut scales = X_SCALES.take();
    scales.resize(scales.len().max(padded_rows), 0.0);
    quantize_input(kernels, x, rows, k, &mut bytes[start..start + len], &mut scales[..padded_rows]);

    let job = MatmulJob {
        x,
        k,
        n,
        product,
        out: DisjointOutput::new(y),
        x_pack: None,
        x_pairs: None,
        x_pack_rows: kernels.mr,
        x_int8: Some(QuantizedInput {
            bytes: &bytes[start..start + len],
            scales: &scales[..padded_rows],
            rows_per_group: kernels.mr,
            unsigned: kernels.unsigned,
            layout: kernels.layout,
        }),
    };
    // SAFETY: `Kernels` exists only for tiers the CPU supports, the int8
    // kernel belongs to its table, and `tiles` returns disjoint tiles.
    unsafe { super::run_tiles(kernels.tile, &job, tiles) };
    X_QUANTIZED.set(bytes);
    X_SCALES.set(scales);
}

/// Returns the quantised X of an int8 job, checked against `mr` and the tile.
fn quantized_input<'a>(job: &MatmulJob<'a>, tile: Tile, mr: usize, layout: XLayout) -> QuantizedInput<'a> {
    let input = job.x_int8.expect("int8 tile without quantised X");
    assert_eq!(input.layout, layout, "X quantised in another layout");
    assert!(
        input.rows_per_group == mr && tile.row0.is_multiple_of(mr),
        "X quantised for {} rows per group",
        input.rows_per_group
    );
    assert!(input.scales.len() >= (tile.row0 + tile.rows).next_multiple_of(mr), "quantised X shorter than the tile");
    input
}

/// Computes one tile with plain integer loops: the fallback of every CPU and
/// the oracle of the SIMD int8 kernels.
///
/// # Safety
/// No other task may write the tile's part of the output meanwhile.
unsafe fn tile_scalar(job: &MatmulJob<'_>, tile: Tile) {
    let input = quantized_input(job, tile, SCALAR_MR, XLayout::Grouped);
    let k4 = job.k.next_multiple_of(4);
    let offset_factor = if input.unsigned { 128 } else { 0 };
    let acc_stride = tile.panels * NR;
    let (first, second) = job.matrices();
    let mut accumulators = [Vec::new(), Vec::new()];
    for (w, acc) in [Some(first), second].into_iter().flatten().zip(&mut accumulators) {
        acc.resize(tile.rows * acc_stride, 0.0);
        for p in 0..tile.panels {
            // SAFETY: `panel_ptr` checked that the panel exists, and it is k4·NR bytes long.
            let panel = unsafe { std::slice::from_raw_parts(w.panel_ptr(tile.panel0 + p, 0), k4 * NR) };
            let (scales, sums) = w.int8_trailer(tile.panel0 + p);
            for r in 0..tile.rows {
                let row = tile.row0 + r;
                let (group, i) = (row / SCALAR_MR, row % SCALAR_MR);
                let x = &input.bytes[group * SCALAR_MR * k4..][..SCALAR_MR * k4];
                let mut totals = [0i32; NR];
                for (t, weights) in panel.chunks_exact(4 * NR).enumerate() {
                    let x_bytes = &x[(t * SCALAR_MR + i) * 4..][..4];
                    for (j, total) in totals.iter_mut().enumerate() {
                        for b in 0..4 {
                            let xq = if input.unsigned { i32::from(x_bytes[b]) } else { i32::from(x_bytes[b] as i8) };
                            *total += xq * i32::from(weights[4 * j + b] as i8);
                        }
                    }
                }
                for (j, &total) in totals.iter().enumerate() {
                    acc[r * acc_stride + p * NR + j] =
                        dequantize(total, offset_factor * sums[j], input.scales[row], scales[j]);
                }
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { scalar::finish(job, tile, &accumulators[0], &accumulators[1]) };
}

/// The register-tiled int8 microkernel of one SIMD kernel.
pub(crate) trait Int8Micro: Copy {
    /// Rows per group of the quantised X, and rows per call at most.
    const MR: usize;
    /// Panels per call.
    const NP: usize;

    /// Sets, for `i < rows`, `p < NP` and `j < NR`,
    /// `acc[i·acc_stride + p·NR + j]` to its old value when `accumulate`
    /// (else 0) plus `Σ_{t<groups} Σ_{b<4} x[(t·MR + i)·4 + b] · w[p][64t + 4j + b]`,
    /// wrapping in i32, with the X bytes read as the kernel's X format.
    ///
    /// # Safety
    /// The CPU must support the kernel, `1 <= rows <= MR`, `x` must have
    /// `groups·MR·4` readable bytes, each `w[p]` for `p < NP` `groups·64`
    /// readable bytes, and `acc` room for `rows` rows of `NP·NR` values at
    /// stride `acc_stride`.
    unsafe fn run(
        self,
        rows: usize,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    );
}

/// Returns the weight pointers of one microkernel call: panels
/// `panel..panel + np` at input feature `k0`, and the first of them again
/// in place of missing panels, whose sums go to unused accumulator columns.
fn panel_pointers(w: &PackedMatrix, panel: usize, np: usize, count: usize, k0: usize) -> [*const u8; MAX_NP] {
    let mut pointers = [std::ptr::null(); MAX_NP];
    for (p, pointer) in pointers.iter_mut().enumerate().take(count) {
        *pointer = w.panel_ptr(panel + if p < np { p } else { 0 }, k0);
    }
    pointers
}

/// Computes one tile of an int8 job with microkernel `micro`, epilogue included.
///
/// # Safety
/// The CPU must support `S`'s tier and `M`'s kernel, `M::NP <= MAX_NP`, and
/// no other task may write the tile's part of the output meanwhile.
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd, M: Int8Micro>(s: S, micro: M, job: &MatmulJob<'_>, tile: Tile) {
    const { assert!(M::NP <= MAX_NP) };
    let mr = M::MR;
    let input = quantized_input(job, tile, mr, XLayout::Grouped);
    let k4 = job.k.next_multiple_of(4);
    let offset_factor = if input.unsigned { 128 } else { 0 };
    let (first, second) = job.matrices();
    let matrices = if second.is_some() { 2 } else { 1 };
    let groups = tile.rows.div_ceil(mr);
    // Whole microkernel calls fit: missing panels of the last call write here unused.
    let acc_stride = tile.panels.next_multiple_of(M::NP) * NR;
    let acc_len = groups * mr * acc_stride;
    let mut scratch = take_scratch(matrices * acc_len);
    // The sums are written as i32 and converted to f32 in place.
    let accumulators: *mut f32 = scratch.as_mut_ptr();
    let x_tile = input.bytes[tile.row0 * k4..(tile.row0 + groups * mr) * k4].as_ptr();

    // A tile of one row group reuses no weight, so it reads each panel in one pass over k.
    let block_len = if groups == 1 { k4.max(4) } else { KC };
    // With k = 0 there is one empty block, so the epilogue still runs.
    let blocks = k4.div_ceil(block_len).max(1);
    for block in 0..blocks {
        let k0 = block * block_len;
        let kc = block_len.min(k4 - k0);
        let last = block + 1 == blocks;
        for g in 0..groups {
            let group_rows = mr.min(tile.rows - g * mr);
            for panel in (0..tile.panels).step_by(M::NP) {
                let np = M::NP.min(tile.panels - panel);
                for (m, w) in [Some(first), second].into_iter().flatten().enumerate() {
                    let pointers = panel_pointers(w, tile.panel0 + panel, np, M::NP, k0);
                    // SAFETY: row group g has kc/4 groups of MR·4 bytes from
                    // k0 on, each panel kc·NR bytes from k0 on, and the
                    // accumulators of matrix m have room for MR rows of
                    // NP·NR values at column panel·NR (acc_stride is a
                    // multiple of NP·NR).
                    unsafe {
                        let acc = accumulators.add(m * acc_len + g * mr * acc_stride + panel * NR).cast::<i32>();
                        let x = x_tile.add(g * mr * k4 + k0 * mr);
                        micro.run(group_rows, x, &pointers, kc / 4, acc, acc_stride, block > 0);
                    }
                }
                if last {
                    let row0 = tile.row0 + g * mr;
                    for (m, w) in [Some(first), second].into_iter().flatten().enumerate() {
                        let (scales, sums) = w.int8_trailer(tile.panel0 + panel);
                        let (scales, sums) = (&scales[..np * NR], &sums[..np * NR]);
                        for r in 0..group_rows {
                            let x_scale = input.scales[row0 + r];
                            // SAFETY: the row's np·NR sums lie inside the
                            // accumulators of matrix m, and no pointer is
                            // used to access them while the slice lives.
                            let row = unsafe {
                                let start = accumulators.add(m * acc_len + (g * mr + r) * acc_stride + panel * NR);
                                std::slice::from_raw_parts_mut(start, np * NR)
                            };
                            // The microkernel stored i32 sums, which are replaced by their f32 values.
                            for ((slot, &w_scale), &row_sum) in row.iter_mut().zip(scales).zip(sums) {
                                let sum = slot.to_bits() as i32;
                                *slot = dequantize(sum, offset_factor * row_sum, x_scale, w_scale);
                            }
                        }
                    }
                    let col0 = (tile.panel0 + panel) * NR;
                    let cols = (np * NR).min(job.n - col0);
                    // SAFETY: the block lies in this tile, whose output the
                    // caller reserved, and the accumulators hold its f32 sums.
                    unsafe {
                        let acc = accumulators.add(g * mr * acc_stride + panel * NR);
                        let value_acc = if matrices == 2 { acc.add(acc_len) } else { acc };
                        super::simd::epilogue(s, job, acc, value_acc, acc_stride, row0, group_rows, col0, cols);
                    }
                }
            }
        }
    }
    return_scratch(scratch);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the signed integer of row `i`, input feature `kk` of a group in
    /// the grouped layout of `mr` rows.
    fn grouped_value(group: &[u8], mr: usize, i: usize, kk: usize) -> i8 {
        group[(kk / 4 * mr + i) * 4 + kk % 4] as i8
    }

    #[test]
    fn row_major_quantiser_matches_grouped() {
        // 3 rows of a group of 4, with k not a multiple of 4 and a row stride
        // padded to 64 bytes, as the AMX kernel stores them.
        let (mr, k, rows) = (4, 70, 3);
        let x: Vec<f32> = (0..rows * k).map(|v| ((v * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let stride = XLayout::RowMajor { align: 64 }.row_bytes(k);
        let mut row_major = vec![0xAA; mr * stride];
        let mut row_scales = vec![f32::NAN; mr];
        let mut grouped = vec![0xAA; mr * XLayout::Grouped.row_bytes(k)];
        let mut group_scales = vec![f32::NAN; mr];
        let mut buffer = vec![0i8; k];
        quantize_rows(&x, k, &mut row_major, &mut row_scales, &mut buffer);
        quantize_group(&x, k, false, &mut grouped, &mut group_scales, &mut buffer);

        assert_eq!(row_scales, group_scales);
        for i in 0..mr {
            let row = &row_major[i * stride..(i + 1) * stride];
            for kk in 0..k {
                assert_eq!(row[kk] as i8, grouped_value(&grouped, mr, i, kk), "row {i}, feature {kk}");
            }
            assert!(row[k..].iter().all(|&b| b == 0), "row {i} is not zero past k");
        }
        assert_eq!(row_scales[3], 0.0, "the missing row has scale 0");
    }
}
