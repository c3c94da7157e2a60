//! Matrix multiplication for linear layers: `Y = X·Wᵀ + b`, with W packed once.
//!
//! W is packed into panels of [`NR`] output features (see [`packed`]). The
//! driver follows the BLIS loop nest:
//!
//! 1. split the output into tiles of at most [`MC`] rows, or [`F32_MC`] rows
//!    for f32 weights when a call has more than [`MC`] rows, by at most
//!    [`NC_PANELS`] panels, enough of them to keep every thread busy, and run
//!    the tiles in parallel on the current rayon pool;
//! 2. copy X into groups of the tier's MR rows, input-feature major, so the
//!    microkernel reads a row group as one stream. A copy that fits in
//!    [`SHARED_PACK_MAX_BYTES`] is made once and shared by the tiles. Larger
//!    inputs are copied per tile and reduction block, so that the reads of X
//!    overlap the arithmetic;
//! 3. within a tile, run the register-tiled microkernel (MR rows × NP·NR
//!    features, NP being the tier's panels per call) over every row group
//!    and group of NP panels, one reduction block at a time. Tiles of f32
//!    weights loop over panel groups outermost, each over all of `k` up to
//!    [`F32_KC_MAX`]. A panel group's weights are then read from memory
//!    once and reused from cache by the following row groups, while the
//!    tile's rows of X stay in L2. Tiles of f16 and bf16 weights, widened
//!    to f32 one block at a time, loop over row groups outermost, over
//!    blocks of [`KC`]. After the last block, apply the epilogue (bias, activation,
//!    gate product, residual) to the microkernel's output while it is still
//!    in L1.
//!
//! Every output element is the same fused multiply-add chain over `k` in
//! ascending order, whatever the tile, row group or thread it falls in, so
//! results are bitwise reproducible for a given tier. `k` is never split
//! across threads.
//!
//! Weights in [`WeightFormat::Int8`] take the integer path of the `int8` module: X is
//! quantised per row once per call, the products are summed exactly in i32,
//! and the sums are scaled to f32 before the same epilogue.

pub(crate) mod amx;
pub(crate) mod bf16;
pub(crate) mod bfdot;
pub(crate) mod int8;
pub mod packed;
pub(crate) mod scalar;
pub(crate) mod simd;

use rayon::prelude::*;

use crate::activation;
use crate::disjoint::DisjointOutput;
use crate::isa::Kernels;

pub use int8::INT8_MAX_K;
pub use packed::{INT8_MAX, PACKED_ALIGN, PackError, PackedMatrix, SharedBytes, WeightFormat, quantize_row};

/// Output features per packed panel, fixed by the packed format.
pub const NR: usize = 16;
/// Bytes of a cache line: the unit in which the kernels align scratch and
/// input buffers and prefetch weights. 64 on x86-64 and most aarch64 cores.
pub(crate) const CACHE_LINE: usize = 64;
/// Rows of X per tile at most, except in calls over f32 weights with more
/// rows than this (see [`F32_MC`]). Tiles cover the
/// rows of a model call (197 tokens of an image, a few short texts) in one
/// piece, so threads split the output features into tiles of equal work.
pub const MC: usize = 256;
/// Rows of X per tile at most over f32 weights when a call has more than
/// [`MC`] rows. A tile's rows of X (288 KiB at k = 768, 1.1 MiB at k = 3072)
/// stay in L2 while every panel group of the tile passes over them.
///
/// Measured against 256 on one thread, as the best of 16 interleaved runs
/// beside the `gemm` crate, with the weights in cache and with 16 copies
/// used in turn: `gemm`'s time over jclip's went from 1.01–1.04 to 1.05–1.11
/// at M = 512 and from 0.93–0.98 to 0.96–1.01 at M = 1576, and stayed
/// level at M = 197 (three tiles instead of one). Calls of up to [`MC`] rows
/// keep one tile of rows all the same. On two threads, one image (197 rows)
/// took 175 to 183 ms in one tile against 174 to 229 ms in three (`jclip
/// bench`, four interleaved rounds, best times). With 256-row tiles X
/// streamed from L3 for every panel group, which is why the tiles of more
/// than 200 rows used to loop over row groups outermost instead. 64 and
/// 128 rows measured within noise of 96.
pub const F32_MC: usize = 96;
/// Reduction block of tiles that loop over row groups outermost: the
/// tile's weights for one block (`KC·NC_PANELS·NR` floats, 512 KiB) stay
/// in L2 while its row groups pass. Blocks of 128 to 384 measured within
/// noise of each other on the development machine.
pub const KC: usize = 256;
/// Maximum reduction block of tiles that loop over panel groups outermost.
/// The weights of one panel group for a block (`F32_KC_MAX·NP·NR` floats,
/// 768 KiB at NP = 3) stay in L2 while the tile's row groups pass, and
/// every layer of the model (k ≤ 3072) runs in one block.
pub const F32_KC_MAX: usize = 4096;
/// Panels per tile at most: the tile's weights for one block
/// (`KC·NC_PANELS·NR` floats, 512 KiB) and its accumulators
/// (`MC·NC_PANELS·NR` floats, 512 KiB) stay in L2 while its row groups pass.
pub const NC_PANELS: usize = 32;

/// Returns the reduction block length over f32 weights: all of `k` when it
/// fits in [`F32_KC_MAX`], else blocks of equal length.
pub(crate) fn f32_block_len(k: usize) -> usize {
    k.div_ceil(k.div_ceil(F32_KC_MAX).max(1)).max(1)
}

/// Tiles per thread when more than one thread runs: enough for work
/// stealing to even out the last tiles, few enough that each tile's fixed
/// costs stay small.
const TILES_PER_THREAD: usize = 4;

/// Activation applied in a matmul epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// Exact (erf) GELU.
    Gelu,
    /// SiLU, `x·sigmoid(x)`.
    Silu,
}

impl Activation {
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Gelu => activation::gelu(x),
            Activation::Silu => activation::silu(x),
        }
    }
}

/// What a linear layer does after the product: `y = act(x·Wᵀ + bias) + residual`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// `[n]`, added to every row.
    pub bias: Option<&'a [f32]>,
    /// Applied after the bias.
    pub activation: Activation,
    /// `[rows, n]`, added last.
    pub residual: Option<&'a [f32]>,
}

impl<'a> Epilogue<'a> {
    /// Returns an epilogue that only adds `bias` when present.
    pub fn bias(bias: Option<&'a [f32]>) -> Epilogue<'a> {
        Epilogue { bias, ..Epilogue::default() }
    }
}

/// The product a matmul call computes.
#[derive(Clone, Copy)]
pub(crate) enum Product<'a> {
    /// `act(x·Wᵀ + bias) + residual`.
    Linear { w: &'a PackedMatrix, epilogue: Epilogue<'a> },
    /// `act(x·Gᵀ + gate_bias) ⊙ (x·Vᵀ + value_bias)`.
    Gated {
        gate: &'a PackedMatrix,
        gate_bias: Option<&'a [f32]>,
        value: &'a PackedMatrix,
        value_bias: Option<&'a [f32]>,
        activation: Activation,
    },
}

/// One matmul call, shared by its tiles.
pub(crate) struct MatmulJob<'a> {
    /// `[rows, k]`.
    pub x: &'a [f32],
    pub k: usize,
    /// Output features.
    pub n: usize,
    pub product: Product<'a>,
    /// `[rows, n]`; each tile writes only its own rows and columns.
    pub out: DisjointOutput<'a>,
    /// X in groups of `x_pack_rows` rows, each group `k` steps of
    /// `x_pack_rows` values (zero past the last row), when the driver packed
    /// it for all tiles.
    pub x_pack: Option<&'a [f32]>,
    /// X rounded to bfloat16 pairs in groups of `x_pack_rows` rows (see
    /// [`bf16`]), when the job runs on a bf16 dot-product tile.
    pub x_pairs: Option<&'a [u32]>,
    pub x_pack_rows: usize,
    /// X quantised for int8 weights.
    pub x_int8: Option<int8::QuantizedInput<'a>>,
}

impl MatmulJob<'_> {
    /// Returns the weight matrices: one, or gate then value.
    pub(crate) fn matrices(&self) -> (&PackedMatrix, Option<&PackedMatrix>) {
        match self.product {
            Product::Linear { w, .. } => (w, None),
            Product::Gated { gate, value, .. } => (gate, Some(value)),
        }
    }
}

/// One tile of the output: rows `row0..row0 + rows`, panels `panel0..panel0 + panels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tile {
    pub row0: usize,
    pub rows: usize,
    pub panel0: usize,
    pub panels: usize,
}

/// Computes one tile of a job completely, epilogue included.
///
/// # Safety
/// The CPU must support the tier the function belongs to, and no other task
/// may write the tile's part of the output meanwhile.
pub(crate) type TileKernel = unsafe fn(&MatmulJob<'_>, Tile);

/// The matmul entry of a tier's kernel table.
#[derive(Clone, Copy)]
pub(crate) struct MatmulKernels {
    pub tile: TileKernel,
    /// Rows per microkernel call; tiles are cut at multiples of it.
    pub mr: usize,
    /// Whether the tile reads X packed in row groups of `mr` rows.
    pub packs_x: bool,
    /// The tier's bf16 dot-product matmul, which replaces `tile` when every
    /// matrix of a call is stored as BF16 and the CPU has the kernel's
    /// features ([`bf16::Bf16DotKernels::available`]).
    pub bf16_dot: Option<bf16::Bf16DotKernels>,
}

/// Largest copy of X made once for all tiles: 8 images (1576 rows × 2048
/// features, 12.9 MB) and 8 texts of 64 tokens (512 rows × 3072 features,
/// 6.3 MB) fit. Each tile copies larger inputs one block at a time, which
/// repeats the copy for every tile of the same rows. With a 4 MiB limit, 8
/// images were copied per tile. Sharing the copy took ONNX Runtime's time
/// over jclip's on 8 images at 1 thread from 0.77 and 0.79 to 0.89 (two
/// interleaved runs each). The 1576-row shapes gained about 2 % against
/// the `gemm` crate.
pub const SHARED_PACK_MAX_BYTES: usize = 16 << 20;

/// Row groups packed per parallel task.
const GROUPS_PER_PACK_TASK: usize = 8;

/// Alignment in bytes of X as bf16 pairs: a cache line, so that every
/// 64-byte row of an AMX A tile is one line. Without it, bf16 matmuls on
/// AMX measured 7 to 15 % slower (one thread, 40 alternating calls).
const X_PAIRS_ALIGN: usize = CACHE_LINE;

thread_local! {
    /// Packed X of the matmul calls made from this thread, kept between calls.
    static X_PACK: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    /// X as bf16 pairs for the bf16 dot-product calls made from this thread, kept between calls.
    static X_PAIRS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Copies `x: [rows, k]` into `out` in groups of `mr` rows: group `g` is
/// `k` steps of `mr` values, `out[g·mr·k + kk·mr + i] = x[(g·mr + i)·k + kk]`,
/// with zeros for rows past the end.
fn pack_rows(x: &[f32], rows: usize, k: usize, mr: usize, out: &mut [f32]) {
    let group_len = mr * k;
    if group_len == 0 {
        return;
    }
    assert!(x.len() >= rows * k, "X has {} values, expected {rows}×{k}", x.len());
    assert!(out.len() >= rows.div_ceil(mr) * group_len, "packed X buffer of {} values too short", out.len());
    out.par_chunks_mut(group_len * GROUPS_PER_PACK_TASK).enumerate().for_each(|(task, groups)| {
        for (index, group) in groups.chunks_exact_mut(group_len).enumerate() {
            let row0 = (task * GROUPS_PER_PACK_TASK + index) * mr;
            let group_rows = mr.min(rows - row0);
            let source = &x[row0 * k..(row0 + group_rows) * k];
            match mr {
                6 => copy_group::<6>(source, k, group_rows, 0, k, group),
                8 => copy_group::<8>(source, k, group_rows, 0, k, group),
                _ => copy_group_any(source, k, group_rows, mr, 0, k, group),
            }
        }
    });
}

/// Copies input features `k0..k0 + kc` of the `rows <= MR` rows of
/// `source` (row stride `k`) into `out`, input-feature major:
/// `out[kk·MR + i] = source[i·k + k0 + kk]`, with zeros for rows `rows..MR`.
///
/// # Panics
/// If `rows > MR`, `source` ends before the last value read, or `out` is
/// shorter than `kc·MR`.
#[inline(always)]
pub(crate) fn copy_group<const MR: usize>(
    source: &[f32],
    k: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    out: &mut [f32],
) {
    if rows < MR || kc == 0 {
        copy_group_any(source, k, rows, MR, k0, kc, out);
        return;
    }
    let out = &mut out[..kc * MR];
    let lines: [&[f32]; MR] = std::array::from_fn(|i| &source[i * k + k0..i * k + k0 + kc]);
    // Full groups go through fixed-size arrays, so the compiler unrolls
    // the rows and drops the bounds checks: the copy runs once per call
    // (or per tile and block) over all of X.
    for (kk, step) in out.chunks_exact_mut(MR).enumerate() {
        let step: &mut [f32; MR] = step.try_into().expect("chunks of MR values");
        for (value, line) in step.iter_mut().zip(&lines) {
            *value = line[kk];
        }
    }
}

/// [`copy_group`] with the group size known only at run time.
fn copy_group_any(source: &[f32], k: usize, rows: usize, mr: usize, k0: usize, kc: usize, out: &mut [f32]) {
    assert!(rows <= mr, "{rows} rows in a group of {mr}");
    let out = &mut out[..kc * mr];
    if rows < mr {
        out.fill(0.0);
    }
    for (kk, step) in out.chunks_exact_mut(mr).enumerate() {
        for (i, value) in step[..rows].iter_mut().enumerate() {
            *value = source[i * k + k0 + kk];
        }
    }
}

/// Splits `rows × panel_count` into tiles: rows evenly into tiles of at most
/// `mc` (rounded up to multiples of `mr`), panels evenly into tiles of at
/// most [`NC_PANELS`]. With `threads > 1` there are at least
/// [`TILES_PER_THREAD`] tiles per thread, and the tile count is a multiple
/// of `threads` when the panels allow, so tiles of equal size share the
/// work evenly.
pub(crate) fn tiles(rows: usize, panel_count: usize, threads: usize, mr: usize, mc: usize) -> Vec<Tile> {
    if rows == 0 || panel_count == 0 {
        return Vec::new();
    }
    let row_tiles = rows.div_ceil(mc.max(1));
    let rows_per_tile = rows.div_ceil(row_tiles).next_multiple_of(mr.max(1)).min(rows);
    let row_tiles = rows.div_ceil(rows_per_tile);
    let mut panel_tiles = panel_count.div_ceil(NC_PANELS);
    if threads > 1 {
        panel_tiles = panel_tiles.max((TILES_PER_THREAD * threads).div_ceil(row_tiles));
        while !(row_tiles * panel_tiles).is_multiple_of(threads) && panel_tiles < panel_count {
            panel_tiles += 1;
        }
    }
    let panels_per_tile = panel_count.div_ceil(panel_tiles.min(panel_count));
    let mut result = Vec::with_capacity(row_tiles * panel_count.div_ceil(panels_per_tile));
    for row0 in (0..rows).step_by(rows_per_tile) {
        for panel0 in (0..panel_count).step_by(panels_per_tile) {
            result.push(Tile {
                row0,
                rows: rows_per_tile.min(rows - row0),
                panel0,
                panels: panels_per_tile.min(panel_count - panel0),
            });
        }
    }
    result
}

fn check_shapes(x: &[f32], rows: usize, w: &PackedMatrix, y: &[f32]) {
    assert_eq!(x.len(), rows * w.k(), "matmul input has {} values, expected {rows}×{}", x.len(), w.k());
    assert_eq!(y.len(), rows * w.n(), "matmul output has {} values, expected {rows}×{}", y.len(), w.n());
}

impl Kernels {
    /// Computes `y = act(x·Wᵀ + bias) + residual` for `x: [rows, k]`, `y: [rows, n]`.
    ///
    /// # Panics
    /// If a slice length disagrees with `rows`, `w.n()` or `w.k()`.
    /// With [`WeightFormat::Int8`] weights, X is quantised per row first
    /// (see the `int8` module for the scheme).
    pub fn linear(&self, x: &[f32], rows: usize, w: &PackedMatrix, epilogue: Epilogue<'_>, y: &mut [f32]) {
        check_shapes(x, rows, w, y);
        let n = w.n();
        if let Some(bias) = epilogue.bias {
            assert_eq!(bias.len(), n, "bias has {} values, expected {n}", bias.len());
        }
        if let Some(residual) = epilogue.residual {
            assert_eq!(residual.len(), rows * n, "residual has {} values, expected {rows}×{n}", residual.len());
        }
        let product = Product::Linear { w, epilogue };
        self.run_matmul(x, rows, w.k(), n, product, y);
    }

    /// Computes the gated product `y = act(x·Gᵀ + gate_bias) ⊙ (x·Vᵀ + value_bias)`
    /// (GEGLU with GELU, SwiGLU with SiLU) for `x: [rows, k]`, `y: [rows, n]`.
    ///
    /// # Panics
    /// If the two matrices differ in shape or format, or a slice length disagrees with them.
    pub fn linear_gated(
        &self,
        x: &[f32],
        rows: usize,
        gate: &PackedMatrix,
        gate_bias: Option<&[f32]>,
        value: &PackedMatrix,
        value_bias: Option<&[f32]>,
        activation: Activation,
        y: &mut [f32],
    ) {
        assert_eq!((gate.n(), gate.k()), (value.n(), value.k()), "gate and value matrices differ in shape");
        assert_eq!(gate.format(), value.format(), "gate and value matrices differ in format");
        check_shapes(x, rows, gate, y);
        let n = gate.n();
        for bias in [gate_bias, value_bias].into_iter().flatten() {
            assert_eq!(bias.len(), n, "bias has {} values, expected {n}", bias.len());
        }
        let product = Product::Gated { gate, gate_bias, value, value_bias, activation };
        self.run_matmul(x, rows, gate.k(), n, product, y);
    }

    fn run_matmul(&self, x: &[f32], rows: usize, k: usize, n: usize, product: Product<'_>, y: &mut [f32]) {
        let format = match product {
            Product::Linear { w, .. } => w.format(),
            Product::Gated { gate, .. } => gate.format(),
        };
        if format == WeightFormat::Int8 {
            int8::run(self.int8_kernels(), x, rows, k, n, product, y);
            return;
        }
        let kernels = self.table.matmul;
        let (first, second) = match product {
            Product::Linear { w, .. } => (w, None),
            Product::Gated { gate, value, .. } => (gate, Some(value)),
        };
        if let Some(dot) = self.bf16_dot_kernels().filter(|_| bf16::all_bf16(first, second)) {
            self.run_bf16_dot(dot, x, rows, k, n, product, y);
            return;
        }
        let mc = if first.format() == WeightFormat::F32 && rows > MC { F32_MC } else { MC };
        let tiles = tiles(rows, n.div_ceil(NR), rayon::current_num_threads(), kernels.mr, mc);
        if tiles.is_empty() {
            return;
        }
        let mut x_pack = Vec::new();
        let share_pack = kernels.packs_x && rows.next_multiple_of(kernels.mr) * k * 4 <= SHARED_PACK_MAX_BYTES;
        if share_pack {
            x_pack = X_PACK.take();
            let len = rows.next_multiple_of(kernels.mr) * k;
            if x_pack.len() < len {
                x_pack.resize(len, 0.0);
            }
            pack_rows(x, rows, k, kernels.mr, &mut x_pack[..len]);
        }
        let job = MatmulJob {
            x,
            k,
            n,
            product,
            out: DisjointOutput::new(y),
            x_pack: share_pack.then_some(&x_pack[..]),
            x_pairs: None,
            x_pack_rows: kernels.mr,
            x_int8: None,
        };
        // SAFETY: `Kernels` exists only for tiers the CPU supports, and
        // `tiles` returns disjoint tiles.
        unsafe { run_tiles(kernels.tile, &job, tiles) };
        X_PACK.set(x_pack);
    }

    /// Runs a call whose matrices are all BF16 on the tier's bf16
    /// dot-product tile. X is rounded to bf16 pairs once, for all tiles,
    /// whatever its size: the pairs take half the bytes of f32.
    fn run_bf16_dot(
        &self,
        dot: bf16::Bf16DotKernels,
        x: &[f32],
        rows: usize,
        k: usize,
        n: usize,
        product: Product<'_>,
        y: &mut [f32],
    ) {
        let tiles = tiles(rows, n.div_ceil(NR), rayon::current_num_threads(), dot.mr, MC);
        if tiles.is_empty() {
            return;
        }
        let mut x_pairs = X_PAIRS.take();
        let len = rows.next_multiple_of(dot.mr) * dot.row_words(k);
        let padded_len = len + X_PAIRS_ALIGN / size_of::<u32>();
        if x_pairs.len() < padded_len {
            x_pairs.resize(padded_len, 0);
        }
        let start = x_pairs.as_ptr().align_offset(X_PAIRS_ALIGN);
        let x_pairs_view = &mut x_pairs[start..start + len];
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { bf16::pack_pairs(x, rows, k, dot, x_pairs_view) };
        let job = MatmulJob {
            x,
            k,
            n,
            product,
            out: DisjointOutput::new(y),
            x_pack: None,
            x_pairs: Some(&x_pairs[start..start + len]),
            x_int8: None,
            x_pack_rows: dot.mr,
        };
        // SAFETY: as in `run_matmul`.
        unsafe { run_tiles(dot.tile, &job, tiles) };
        X_PAIRS.set(x_pairs);
    }
}

/// Runs `tiles` of `job` with `tile`, in parallel when there are several.
///
/// # Safety
/// The CPU must support the tier `tile` belongs to, and the tiles must be
/// disjoint, as [`tiles`] returns them.
unsafe fn run_tiles(tile: TileKernel, job: &MatmulJob<'_>, tiles: Vec<Tile>) {
    let run = |part: Tile| {
        // SAFETY: the caller's contract; each tile runs once.
        unsafe { tile(job, part) }
    };
    if tiles.len() == 1 {
        run(tiles[0]);
    } else {
        tiles.into_par_iter().for_each(run);
    }
}

/// Expands to a `match` on `$rows` that invokes the macro `$call!(N)` for
/// every listed literal row count `N`, so a microkernel runs with the row
/// count as a constant.
macro_rules! dispatch_rows {
    ($rows:expr, $call:ident, [$($count:literal),+]) => {
        match $rows {
            $($count => $call!($count),)+
            _ => unreachable!("{} rows per microkernel call", $rows),
        }
    };
}
pub(crate) use dispatch_rows;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_output_once() {
        for &(rows, panels, threads, mr, mc) in &[
            (1, 1, 1, 8, MC),
            (197, 48, 1, 8, MC),
            (197, 48, 2, 8, F32_MC),
            (1576, 384, 2, 6, MC),
            (1576, 48, 1, 8, F32_MC),
            (5, 200, 3, 4, MC),
            (130, 3, 4, 8, F32_MC),
        ] {
            let mut covered = vec![0u8; rows * panels];
            for tile in tiles(rows, panels, threads, mr, mc) {
                assert!(tile.rows <= mc.next_multiple_of(mr), "{tile:?} has too many rows");
                assert!(tile.panels <= NC_PANELS, "{tile:?} has too many panels");
                for r in tile.row0..tile.row0 + tile.rows {
                    for p in tile.panel0..tile.panel0 + tile.panels {
                        covered[r * panels + p] += 1;
                    }
                }
            }
            assert!(covered.iter().all(|&count| count == 1), "({rows}, {panels}, {threads}) not covered once");
        }
    }

    #[test]
    fn tiles_of_empty_output() {
        assert!(tiles(0, 5, 2, 8, MC).is_empty());
        assert!(tiles(5, 0, 2, 8, MC).is_empty());
    }
}
