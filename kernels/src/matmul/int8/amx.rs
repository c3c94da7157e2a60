//! The int8 matmul of the `amx` tier: `tdpbssd` on AMX tiles.
//!
//! X is quantised as signed bytes straight into row-major order, once per
//! call for all tiles. Each row is padded by zeros to a multiple of 64
//! bytes, so that an A tile is 16 rows × 64 bytes read in place. A B tile is
//! 16 consecutive groups of 4 input features of one weight panel: 1024
//! contiguous bytes of the packed layout, and the last partial block is
//! copied into a zero-padded buffer. `tdpbssd` sums the products of signed
//! bytes exactly in i32, so the sums, and after [`dequantize`] the outputs,
//! are bitwise those of every other int8 kernel.

use std::arch::asm;

use super::{Int8Kernels, XLayout, dequantize, quantize_rows, quantized_input};
use crate::isa::CpuFeatures;
use crate::matmul::amx::x86::{B_TILE_BYTES, BLOCK, BTile, MR, TileConfig, block_dispatch};
use crate::matmul::simd::{epilogue, return_scratch, take_scratch};
use crate::matmul::{MatmulJob, NR, Tile};
use crate::simd::avx512::Avx512;

/// Bytes of one A tile row: 16 groups of 4 input features.
const A_ROW_BYTES: usize = 64;
/// Groups of 4 input features per A tile row and per B tile.
const TILE_GROUPS: usize = A_ROW_BYTES / 4;

/// [`quantize_rows`] compiled for the `amx` tier.
///
/// # Safety
/// The CPU must support the `amx` tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn quantize_rows_amx(
    x: &[f32],
    k: usize,
    unsigned: bool,
    group: &mut [u8],
    scales: &mut [f32],
    row_buffer: &mut [i8],
) {
    assert!(!unsigned, "the AMX int8 tile reads X as signed bytes");
    quantize_rows(x, k, group, scales, row_buffer);
}

/// Largest A tiles of a pair of row tiles (32 rows of X) for which the tile
/// loops over pairs of row tiles outermost: 32 KiB, k ≤ 1024.
///
/// Measured with one thread, 40 alternating calls each, weights from four
/// copies in turn: with row tiles outermost 1576×768×768 ran 1.08 times and
/// 1576×3072×768 1.13 times as fast, 197×2304×768 1.04 times, but
/// 1576×768×3072 (96 KiB of A tiles) 0.96 times.
const ROWS_OUTER_MAX_A_BYTES: usize = 32 << 10;

/// Computes one tile of an int8 job on AMX tiles, epilogue included.
///
/// Like the bf16 AMX tile, the tile runs in blocks of up to 32 rows × 2
/// panels, each kept in 2 × 2 C tiles over all of `k`. The i32 sums are
/// stored to scratch memory, converted with [`dequantize`] and passed to
/// the f32 epilogue.
///
/// # Safety
/// The CPU must support the `amx` tier and AMX-INT8 (the tier includes the
/// operating system's permission to use the tile data state), and no other
/// task may write the tile's part of the output meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn tile(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: this function runs only where its features were detected.
    let s = unsafe { Avx512::new_unchecked() };
    let input = quantized_input(job, tile, MR, LAYOUT);
    assert!(!input.unsigned, "the AMX int8 tile reads X as signed bytes");
    let groups = job.k.div_ceil(4);
    let stride = LAYOUT.row_bytes(job.k);
    let row_tiles = tile.rows.div_ceil(MR);
    let x_rows = &input.bytes[tile.row0 * stride..(tile.row0 + row_tiles * MR) * stride];

    let (first, second) = job.matrices();
    let matrices: Vec<_> = [Some(first), second].into_iter().flatten().collect();
    let block_len = BLOCK * BLOCK;
    let mut scratch = take_scratch(2 * block_len);
    let accumulators = scratch.as_mut_ptr();
    let full_steps = groups / TILE_GROUPS;
    let tail_groups = groups % TILE_GROUPS;
    let config = TileConfig::full();
    // SAFETY: the CPU supports AMX and the process may use it (this
    // function's contract), and the configuration is a valid palette 1.
    unsafe { asm!("ldtilecfg [{0}]", in(reg) config.0.as_ptr(), options(nostack, readonly, preserves_flags)) };

    // B pointers and zero-padded tails of every pair of panels, made once
    // because each pair is read again for every pair of row tiles.
    let panel_pairs = tile.panels.div_ceil(2);
    let mut b_first = vec![[[std::ptr::null::<u8>(); 2]; 2]; panel_pairs];
    let mut b_tails = vec![[[BTile([0; B_TILE_BYTES]); 2]; 2]; if tail_groups > 0 { panel_pairs } else { 0 }];
    for (pair, b) in b_first.iter_mut().enumerate() {
        let panel = 2 * pair;
        for (m, w) in matrices.iter().enumerate() {
            for p in 0..2.min(tile.panels - panel) {
                b[m][p] = w.panel_ptr(tile.panel0 + panel + p, 0);
                if tail_groups > 0 {
                    let tail = w.panel_ptr(tile.panel0 + panel + p, 4 * full_steps * TILE_GROUPS);
                    let tail_bytes = tail_groups * NR * 4;
                    // SAFETY: the panel has `groups` groups of NR·4 bytes,
                    // and the tail contains the last `tail_groups` of them.
                    let source = unsafe { std::slice::from_raw_parts(tail, tail_bytes) };
                    b_tails[pair][m][p].0[..tail_bytes].copy_from_slice(source);
                }
            }
        }
    }
    let no_tails = [[BTile([0; B_TILE_BYTES]); 2]; 2];

    // Pairs of row tiles outermost when their A tiles fit in L1, so they
    // stay there while the weights, contiguous per panel, stream past them.
    // Otherwise pairs of panels outermost, as their B tiles are contiguous.
    let rows_outer = 2 * MR * stride <= ROWS_OUTER_MAX_A_BYTES;
    let row_pairs = row_tiles.div_ceil(2);
    for step in 0..row_pairs * panel_pairs {
        let (row_pair, pair) =
            if rows_outer { (step / panel_pairs, step % panel_pairs) } else { (step % row_pairs, step / row_pairs) };
        let panel = 2 * pair;
        let row_tile = 2 * row_pair;
        let panels = 2.min(tile.panels - panel);
        let b = b_first[pair];
        let b_tail = if tail_groups > 0 { &b_tails[pair] } else { &no_tails };
        let col0 = (tile.panel0 + panel) * NR;
        let cols = (panels * NR).min(job.n - col0);
        let rows = 2.min(row_tiles - row_tile);
        let row0 = tile.row0 + row_tile * MR;
        let a = x_rows[row_tile * MR * stride..].as_ptr();
        for (m, w) in matrices.iter().enumerate() {
            let acc = accumulators.wrapping_add(m * block_len);
            // SAFETY: rows row_tile·16.. of the row-major X have
            // `stride` bytes each (32 or 16 rows exist), the panels hold
            // `groups` groups, and the scratch has room for 2 blocks of
            // 32 × 32 values.
            unsafe { block_dispatch::<true>(rows, panels, a, stride, b[m], &b_tail[m], groups, acc) };

            // X is signed, so no row-sum offset applies.
            let scales = &w.int8_trailer(tile.panel0 + panel).0[..panels * NR];
            for r in 0..(rows * MR).min(tile.rows - row_tile * MR) {
                let x_scale = input.scales[row0 + r];
                // SAFETY: the row's panels·NR values lie inside block m
                // of the scratch, and no pointer is used to access them
                // while the slice lives.
                let row = unsafe { std::slice::from_raw_parts_mut(acc.add(r * BLOCK), panels * NR) };
                // The tiles stored i32 sums, which are replaced by their f32 values.
                for (slot, &w_scale) in row.iter_mut().zip(scales) {
                    *slot = dequantize(slot.to_bits() as i32, 0, x_scale, w_scale);
                }
            }
        }
        let out_rows = (rows * MR).min(tile.rows - row_tile * MR);
        // SAFETY: the block lies in this tile, whose output the caller
        // reserved, and the scratch holds its f32 sums.
        unsafe {
            let value_acc = accumulators.add(block_len);
            epilogue(s, job, accumulators, value_acc, BLOCK, row0, out_rows, col0, cols);
        }
    }
    // SAFETY: the configuration is loaded. `tilerelease` returns the tile
    // registers and configuration to their initial state.
    unsafe { asm!("tilerelease", options(nomem, nostack, preserves_flags)) };
    return_scratch(scratch);
}

fn has_amx_int8(features: &CpuFeatures) -> bool {
    features.amx_int8
}

/// Layout of the quantised X: whole A tile rows.
const LAYOUT: XLayout = XLayout::RowMajor { align: A_ROW_BYTES };

/// The `amx` tier's int8 matmul.
pub(crate) const KERNELS: Int8Kernels = Int8Kernels {
    tile,
    mr: MR,
    unsigned: false,
    name: "amx",
    available: has_amx_int8,
    layout: LAYOUT,
    quantize: quantize_rows_amx,
};
