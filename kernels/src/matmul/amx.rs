//! Matmul with BF16 weights on AMX tiles (`tdpbf16ps`), and its scalar twin.
//!
//! The activations are rounded to bfloat16 once per call, as the
//! `avx512bf16` tier rounds them, and stored row-major. Row `r` starts at
//! word `r·stride`, where `stride` is `ceil(k / 2)` pairs rounded up to a
//! multiple of 16. Word `q` of a row is `bf16(x[r][2q]) | bf16(x[r][2q + 1]) << 16`.
//! The padding pairs and the rows past the end, up to a multiple of 16 rows,
//! are zero.
//!
//! With that layout every tile is one load:
//! - an A tile is 16 rows × 16 pairs of X (64 bytes per row, row stride
//!   `4·stride` bytes);
//! - a B tile is 16 consecutive pairs of one weight panel, which the packed
//!   layout stores as 1024 contiguous bytes (see [`super::packed`]);
//! - a C tile is 16 rows × 16 output features in f32.
//!
//! Per output element, one `tdpbf16ps` over 16 pairs computes
//! `acc + (E + O)`, where `E` is the sum of the 16 products of the first
//! values of the pairs and `O` that of the second values, each summed in
//! ascending order. Every sum is rounded to f32 (nearest even), subnormal
//! inputs read as zero and subnormal results are flushed to zero. This
//! order was inferred from the results of single instructions on chosen
//! values (sums of 2²⁴ and ±1) on the development machine, a KVM guest
//! reporting CPUID family 6 model 167 with AMX. The Intel SDM's pseudocode
//! gives a different order, so this is an observation of one processor.
//! [`SCALAR_TWIN`] computes it in plain Rust.

use super::bf16::{self, Bf16DotKernels, flush_subnormal, widen_flushed};
use super::int8::always;
use super::{MatmulJob, NR, Tile};

/// Pairs of input features per `tdpbf16ps` (the A tile's 64 bytes per row).
const TILE_PAIRS: usize = 16;

/// Returns the `tdpbf16ps` chain of one output element (see the module documentation).
fn element_dot(x: &[u32], panel: &[u32], lane: usize) -> f32 {
    let mut acc = 0.0f32;
    for (step, pairs) in x.chunks(TILE_PAIRS).enumerate() {
        let (mut first, mut second) = (0.0f32, 0.0f32);
        for (i, &pair) in pairs.iter().enumerate() {
            let w = panel[(step * TILE_PAIRS + i) * NR + lane];
            let (x0, x1) = (widen_flushed(pair as u16), widen_flushed((pair >> 16) as u16));
            let (w0, w1) = (widen_flushed(w as u16), widen_flushed((w >> 16) as u16));
            // Products of two 8-bit significands are exact in f32 unless
            // they overflow or fall below the normal range.
            first = flush_subnormal(first + flush_subnormal(x0 * w0));
            second = flush_subnormal(second + flush_subnormal(x1 * w1));
        }
        acc = flush_subnormal(acc + flush_subnormal(first + second));
    }
    acc
}

/// # Safety
/// No other task may write the tile's part of the output meanwhile.
unsafe fn tile_scalar(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract.
    unsafe { bf16::tile_scalar_with(job, tile, element_dot) }
}

/// The scalar twin of the AMX tier.
pub(crate) const SCALAR_TWIN: Bf16DotKernels =
    Bf16DotKernels { tile: tile_scalar, mr: 1, pair_align: 1, pack_group: bf16::pack_group_scalar, available: always };

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! The AMX tile loop. Tile registers are named in the assembly: C tiles
    //! in `tmm0` to `tmm3`, A tiles in `tmm4` and `tmm5`, B tiles in `tmm6`
    //! and `tmm7`.

    use std::arch::asm;

    use super::{Bf16DotKernels, MatmulJob, TILE_PAIRS, Tile};
    use crate::matmul::NR;
    use crate::matmul::bf16::avx512::convert_row;
    use crate::matmul::simd::{epilogue, return_scratch, take_scratch};
    use crate::simd::avx512::Avx512;

    /// Rows of an A or C tile, and of a packed row group.
    pub(crate) const MR: usize = 16;
    /// Bytes of one B tile: 16 pairs × 16 lanes × 4 bytes.
    pub(crate) const B_TILE_BYTES: usize = TILE_PAIRS * NR * 4;
    /// Rows and columns of the C block kept in tiles: 2 × 2 C tiles.
    pub(crate) const BLOCK: usize = 2 * MR;

    /// The 64-byte tile configuration that `ldtilecfg` reads.
    #[repr(C, align(64))]
    pub(crate) struct TileConfig(pub(crate) [u8; 64]);

    impl TileConfig {
        /// Palette 1 with all 8 tiles at 16 rows of 64 bytes.
        pub(crate) fn full() -> TileConfig {
            let mut bytes = [0u8; 64];
            bytes[0] = 1;
            for t in 0..8 {
                // Bytes per row (16-bit little-endian) from byte 16, rows from byte 48.
                bytes[16 + 2 * t] = 64;
                bytes[48 + t] = 16;
            }
            TileConfig(bytes)
        }
    }

    /// One B tile in memory, for the zero-padded last pairs of a panel.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    pub(crate) struct BTile(pub(crate) [u8; B_TILE_BYTES]);

    /// Loads tile `T` from 16 rows of 64 bytes at `ptr`, `stride` bytes apart.
    ///
    /// # Safety
    /// The tile configuration is loaded, and 16 rows of 64 bytes at `ptr` are readable.
    #[inline(always)]
    unsafe fn load<const T: u8>(ptr: *const u8, stride: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("tileloadd tmm{t}, [{p} + {s}*1]", t = const T, p = in(reg) ptr, s = in(reg) stride,
                options(nostack, readonly, preserves_flags))
        }
    }

    /// Stores tile `T` as 16 rows of 64 bytes at `ptr`, `stride` bytes apart.
    ///
    /// # Safety
    /// The tile configuration is loaded, and 16 rows of 64 bytes at `ptr` are writable.
    #[inline(always)]
    unsafe fn store<const T: u8>(ptr: *mut u8, stride: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("tilestored [{p} + {s}*1], tmm{t}", t = const T, p = in(reg) ptr, s = in(reg) stride,
                options(nostack, preserves_flags))
        }
    }

    /// Sets tile `T` to zero.
    ///
    /// # Safety
    /// The tile configuration is loaded.
    #[inline(always)]
    unsafe fn zero<const T: u8>() {
        // SAFETY: the caller's contract; the instruction touches only tile `T`.
        unsafe { asm!("tilezero tmm{t}", t = const T, options(nomem, nostack, preserves_flags)) }
    }

    /// Accumulates `tmm{C} += tmm{A} · tmm{B}`: with `tdpbssd` (signed
    /// bytes, exact i32 sums) when `INT8`, else with `tdpbf16ps`.
    ///
    /// # Safety
    /// The tile configuration is loaded.
    #[inline(always)]
    unsafe fn dot<const INT8: bool, const C: u8, const A: u8, const B: u8>() {
        // SAFETY: the caller's contract; the instructions touch only tiles.
        unsafe {
            if INT8 {
                asm!("tdpbssd tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
                    options(nomem, nostack, preserves_flags))
            } else {
                asm!("tdpbf16ps tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
                    options(nomem, nostack, preserves_flags))
            }
        }
    }

    /// Computes a block of `ROWS × PANELS` C tiles (each 1 or 2) over all
    /// pairs and stores it at `c`, row stride [`BLOCK`] values (f32, or i32
    /// when `INT8`). With `INT8`, a pair is a group of 4 int8 values.
    ///
    /// `a` is the first A tile (its rows `a_stride` bytes apart, 16 more rows
    /// `16·a_stride` bytes later), `b[p]` the first B tile of panel `p`, and
    /// `b_tail[p]` the zero-padded B tile of its last `pairs % 16` pairs.
    /// Only the first `PANELS` entries of `b` are read.
    ///
    /// # Safety
    /// The tile configuration is loaded. `a` has `ROWS·16` rows of
    /// `ceil(pairs / 16)·64` readable bytes, each `b[p]` `floor(pairs / 16)`
    /// readable B tiles, and `c` room for `ROWS·16` rows of [`BLOCK`] floats.
    #[inline(always)]
    unsafe fn block<const INT8: bool, const ROWS: usize, const PANELS: usize>(
        a: *const u8,
        a_stride: usize,
        b: [*const u8; 2],
        b_tail: &[BTile; 2],
        pairs: usize,
        c: *mut f32,
    ) {
        let full_steps = pairs / TILE_PAIRS;
        let steps = pairs.div_ceil(TILE_PAIRS);
        let a_next = MR * a_stride;
        // SAFETY: every pointer below stays inside the ranges of this
        // function's contract, and the configuration is loaded.
        unsafe {
            zero::<0>();
            if PANELS == 2 {
                zero::<1>();
            }
            if ROWS == 2 {
                zero::<2>();
                if PANELS == 2 {
                    zero::<3>();
                }
            }
            for step in 0..steps {
                let a_step = a.add(step * TILE_PAIRS * 4);
                let b_step = |p: usize| {
                    if step < full_steps { b[p].add(step * B_TILE_BYTES) } else { b_tail[p].0.as_ptr() }
                };
                load::<4>(a_step, a_stride);
                load::<6>(b_step(0), 64);
                if PANELS == 2 {
                    load::<7>(b_step(1), 64);
                }
                dot::<INT8, 0, 4, 6>();
                if PANELS == 2 {
                    dot::<INT8, 1, 4, 7>();
                }
                if ROWS == 2 {
                    load::<5>(a_step.add(a_next), a_stride);
                    dot::<INT8, 2, 5, 6>();
                    if PANELS == 2 {
                        dot::<INT8, 3, 5, 7>();
                    }
                }
            }
            let c_stride = BLOCK * 4;
            store::<0>(c.cast(), c_stride);
            if PANELS == 2 {
                store::<1>(c.add(NR).cast(), c_stride);
            }
            if ROWS == 2 {
                store::<2>(c.add(MR * BLOCK).cast(), c_stride);
                if PANELS == 2 {
                    store::<3>(c.add(MR * BLOCK + NR).cast(), c_stride);
                }
            }
        }
    }

    /// Runs [`block`] for `rows` and `panels` (each 1 or 2) known only at run time.
    ///
    /// # Safety
    /// As [`block`] with `ROWS = rows`, `PANELS = panels`.
    #[inline(always)]
    pub(crate) unsafe fn block_dispatch<const INT8: bool>(
        rows: usize,
        panels: usize,
        a: *const u8,
        a_stride: usize,
        b: [*const u8; 2],
        b_tail: &[BTile; 2],
        pairs: usize,
        c: *mut f32,
    ) {
        // SAFETY: the caller's contract with the sizes matched here.
        unsafe {
            match (rows, panels) {
                (2, 2) => block::<INT8, 2, 2>(a, a_stride, b, b_tail, pairs, c),
                (2, 1) => block::<INT8, 2, 1>(a, a_stride, b, b_tail, pairs, c),
                (1, 2) => block::<INT8, 1, 2>(a, a_stride, b, b_tail, pairs, c),
                (1, 1) => block::<INT8, 1, 1>(a, a_stride, b, b_tail, pairs, c),
                _ => unreachable!("{rows}×{panels} C tiles per block"),
            }
        }
    }

    /// Computes one tile of a job whose matrices are all BF16, epilogue included.
    ///
    /// The tile runs in blocks of up to 32 rows × 2 panels. Each block keeps
    /// its 2 × 2 C tiles in tile registers over all of `k`, stores them to
    /// scratch memory and applies the f32 epilogue there. Every output
    /// element is the same `tdpbf16ps` chain over `k` in ascending order,
    /// wherever it lies in the tile, so results do not depend on the tiling.
    ///
    /// # Safety
    /// The CPU must support the `amx` tier (which includes the operating
    /// system's permission to use the tile data state), and no other task
    /// may write the tile's part of the output meanwhile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c,avx512bf16")]
    unsafe fn tile(job: &MatmulJob<'_>, tile: Tile) {
        // SAFETY: this function runs only where its features were detected.
        let s = unsafe { Avx512::new_unchecked() };
        let pairs = job.k.div_ceil(2);
        let stride = pairs.next_multiple_of(TILE_PAIRS);
        let x_pairs = job.x_pairs.expect("the AMX tile reads X as packed pairs");
        assert_eq!(job.x_pack_rows, MR, "X packed in groups of {} rows", job.x_pack_rows);
        assert!(tile.row0.is_multiple_of(MR), "tile starts at row {}, inside a row group", tile.row0);
        let row_tiles = tile.rows.div_ceil(MR);
        assert!(x_pairs.len() >= (tile.row0 + row_tiles * MR) * stride, "packed X shorter than the tile's rows");
        let (first, second) = job.matrices();
        let matrices: Vec<_> = [Some(first), second].into_iter().flatten().collect();
        let block_len = BLOCK * BLOCK;
        let mut scratch = take_scratch(2 * block_len);
        let accumulators = scratch.as_mut_ptr();
        let full_steps = pairs / TILE_PAIRS;
        let tail_pairs = pairs % TILE_PAIRS;
        let mut b_tails = [[BTile([0; B_TILE_BYTES]); 2]; 2];
        let config = TileConfig::full();
        // SAFETY: the CPU supports AMX and the process may use it (this
        // function's contract), and the configuration is a valid palette 1.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) config.0.as_ptr(), options(nostack, readonly, preserves_flags)) };

        for panel in (0..tile.panels).step_by(2) {
            let panels = 2.min(tile.panels - panel);
            let mut b = [[std::ptr::null::<u8>(); 2]; 2];
            for (m, w) in matrices.iter().enumerate() {
                for p in 0..panels {
                    b[m][p] = w.panel_ptr(tile.panel0 + panel + p, 0);
                    if tail_pairs > 0 {
                        let tail = w.panel_ptr(tile.panel0 + panel + p, 2 * full_steps * TILE_PAIRS);
                        let tail_bytes = tail_pairs * NR * 4;
                        // SAFETY: the panel has `pairs` pairs of NR words,
                        // and the tail contains the last `tail_pairs` of them.
                        let source = unsafe { std::slice::from_raw_parts(tail, tail_bytes) };
                        b_tails[m][p].0[..tail_bytes].copy_from_slice(source);
                    }
                }
            }
            let col0 = (tile.panel0 + panel) * NR;
            let cols = (panels * NR).min(job.n - col0);
            for row_tile in (0..row_tiles).step_by(2) {
                let rows = 2.min(row_tiles - row_tile);
                let row0 = tile.row0 + row_tile * MR;
                let a = x_pairs[row0 * stride..].as_ptr().cast::<u8>();
                for m in 0..matrices.len() {
                    // SAFETY: rows row0..row0 + 32 (or + 16) of packed X
                    // exist (asserted above), the panels hold `pairs` pairs,
                    // and the scratch has room for 2 blocks of 32 × 32 floats.
                    unsafe {
                        block_dispatch::<false>(
                            rows,
                            panels,
                            a,
                            stride * 4,
                            b[m],
                            &b_tails[m],
                            pairs,
                            accumulators.add(m * block_len),
                        )
                    };
                }
                let out_rows = (rows * MR).min(tile.rows - row_tile * MR);
                // SAFETY: the block lies in this tile, whose output the
                // caller reserved, and the scratch holds its sums.
                unsafe {
                    let value_acc = accumulators.add(block_len);
                    epilogue(s, job, accumulators, value_acc, BLOCK, row0, out_rows, col0, cols);
                }
            }
        }
        // SAFETY: the configuration is loaded. `tilerelease` returns the tile
        // registers and configuration to their initial state.
        unsafe { asm!("tilerelease", options(nomem, nostack, preserves_flags)) };
        return_scratch(scratch);
    }

    /// Converts one row group to row-major bf16 pairs, `ceil(k / 2)` rounded
    /// up to a multiple of 16 words per row, with zero rows after the group's rows.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, BW and BF16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c,avx512bf16")]
    unsafe fn pack_group(x: &[f32], k: usize, mr: usize, out: &mut [u32]) {
        let stride = k.div_ceil(2).next_multiple_of(TILE_PAIRS);
        assert!(x.len().is_multiple_of(k), "{} values are not whole rows of {k}", x.len());
        assert!(x.len() / k <= mr, "{} rows in a group of {mr}", x.len() / k);
        assert!(out.len() >= mr * stride, "packed group of {} words too short", out.len());
        let rows = x.len() / k;
        for (i, row) in x.chunks_exact(k).enumerate() {
            // SAFETY: the caller's contract; the row has `stride` words, a
            // multiple of 16 at least ceil(k / 2).
            unsafe { convert_row(row, &mut out[i * stride..(i + 1) * stride]) };
        }
        out[rows * stride..mr * stride].fill(0);
    }

    /// The `amx` tier's bf16 matmul.
    pub(crate) const KERNELS: Bf16DotKernels =
        Bf16DotKernels { tile, mr: MR, pair_align: TILE_PAIRS, pack_group, available: super::always };
}
