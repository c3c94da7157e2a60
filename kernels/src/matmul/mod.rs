//! Matrix multiplication for linear layers: `Y = X·Wᵀ + b`, with W packed once.
//!
//! Layout of a packed matrix: W is `[n, k]` (PyTorch `Linear` layout, one row
//! per output feature). Packing groups the output features into panels of
//! [`NR`] features; panel `p` stores, for every `kk` in `0..k`, the `NR`
//! weights `W[p·NR + j][kk]` contiguously, with zeros past `n`. One layout
//! serves every tier, so a packed file runs on any CPU.
//!
//! The driver splits the output into tiles of [`MC`] rows by a number of
//! panels and runs the tiles in parallel on the current rayon pool. Each
//! output element is reduced over `k` in the same order, in blocks of [`KC`],
//! whatever the tiling and thread count, so results are bitwise reproducible
//! for a given tier.

pub(crate) mod scalar;

use rayon::prelude::*;

use crate::activation;
use crate::disjoint::DisjointOutput;
use crate::isa::Kernels;

/// Output features per packed panel, fixed by the packed format.
pub const NR: usize = 16;
/// Rows of X per tile: a tile's rows of X stay in cache across its panels.
pub const MC: usize = 64;
/// Reduction block: one block of a panel (`KC·NR` weights) stays in L1/L2.
pub const KC: usize = 256;

/// Storage format of packed weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    /// 32-bit floats.
    F32,
}

/// Weights of one linear layer in the packed panel layout.
#[derive(Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    format: WeightFormat,
    /// `ceil(n / NR)` panels of `k·NR` values.
    panels: Vec<f32>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix").field("n", &self.n).field("k", &self.k).field("format", &self.format).finish()
    }
}

impl PackedMatrix {
    /// Packs a row-major `[n, k]` matrix.
    ///
    /// # Panics
    /// If `w.len() != n·k`.
    pub fn from_f32(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        assert_eq!(w.len(), n * k, "weight matrix has {} values, expected {n}×{k}", w.len());
        PackedMatrix::from_rows(n, k, |row, out| out.copy_from_slice(&w[row * k..(row + 1) * k]))
    }

    /// Packs an `[n, k]` matrix whose rows are produced by `fill_row(row, out)`,
    /// so callers can convert from any storage type without a full f32 copy.
    pub fn from_rows(n: usize, k: usize, mut fill_row: impl FnMut(usize, &mut [f32])) -> PackedMatrix {
        let panel_count = n.div_ceil(NR);
        let mut panels = vec![0.0f32; panel_count * k * NR];
        let mut row = vec![0.0f32; k];
        for r in 0..n {
            fill_row(r, &mut row);
            let panel = &mut panels[(r / NR) * k * NR..][..k * NR];
            let lane = r % NR;
            for (kk, &value) in row.iter().enumerate() {
                panel[kk * NR + lane] = value;
            }
        }
        PackedMatrix { n, k, format: WeightFormat::F32, panels }
    }

    /// Output features (rows of W).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features (columns of W), the reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Storage format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Bytes of packed storage.
    pub fn storage_bytes(&self) -> usize {
        self.panels.len() * std::mem::size_of::<f32>()
    }

    /// Returns `W[row][col]`, for tests and debugging.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        assert!(row < self.n && col < self.k, "index ({row}, {col}) outside {}×{}", self.n, self.k);
        self.panels[(row / NR) * self.k * NR + col * NR + row % NR]
    }

    pub(crate) fn panel_count(&self) -> usize {
        self.n.div_ceil(NR)
    }

    pub(crate) fn panel_data(&self) -> &[f32] {
        &self.panels
    }
}

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

/// Accumulates one reduction block of a tile:
/// `acc[r·acc_stride + p·NR + j] += Σ_{kk<kc} x[r·x_stride + kk] · panels[p·panel_stride + kk·NR + j]`
/// for `r < rows`, `p < panel_count`, `j < NR`. `x` starts at the block's
/// first column and `panels` at the block's first row of the first panel.
pub(crate) type BlockKernel = fn(
    x: &[f32],
    x_stride: usize,
    rows: usize,
    panels: &[f32],
    panel_stride: usize,
    panel_count: usize,
    kc: usize,
    acc: &mut [f32],
    acc_stride: usize,
);

/// The per-tier inner kernels of the matmul driver.
#[derive(Clone, Copy)]
pub(crate) struct TileKernels {
    pub block: BlockKernel,
}

/// One tile of the output: rows `row0..row0 + rows`, panels `panel0..panel0 + panels`.
#[derive(Clone, Copy, Debug)]
struct Tile {
    row0: usize,
    rows: usize,
    panel0: usize,
    panels: usize,
}

/// Splits `rows × panel_count` into tiles, enough of them to keep `threads` busy.
fn tiles(rows: usize, panel_count: usize, threads: usize) -> Vec<Tile> {
    let row_blocks = rows.div_ceil(MC).max(1);
    let wanted = 4 * threads.max(1);
    let panel_blocks = wanted.div_ceil(row_blocks).clamp(1, panel_count.max(1));
    let panels_per_block = panel_count.div_ceil(panel_blocks).max(1);
    let mut result = Vec::new();
    for row0 in (0..rows).step_by(MC) {
        for panel0 in (0..panel_count).step_by(panels_per_block) {
            result.push(Tile {
                row0,
                rows: MC.min(rows - row0),
                panel0,
                panels: panels_per_block.min(panel_count - panel0),
            });
        }
    }
    result
}

/// Computes the raw product of one tile into `acc` (`rows × panels·NR`).
fn tile_product(kernels: &TileKernels, x: &[f32], k: usize, w: &PackedMatrix, tile: Tile, acc: &mut [f32]) {
    let acc_stride = tile.panels * NR;
    acc[..tile.rows * acc_stride].fill(0.0);
    let panel_stride = k * NR;
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        (kernels.block)(
            &x[tile.row0 * k + k0..],
            k,
            tile.rows,
            &w.panel_data()[tile.panel0 * panel_stride + k0 * NR..],
            panel_stride,
            tile.panels,
            kc,
            acc,
            acc_stride,
        );
    }
}

fn check_shapes(x: &[f32], rows: usize, w: &PackedMatrix, y: &[f32]) {
    assert_eq!(x.len(), rows * w.k, "matmul input has {} values, expected {rows}×{}", x.len(), w.k);
    assert_eq!(y.len(), rows * w.n, "matmul output has {} values, expected {rows}×{}", y.len(), w.n);
}

impl Kernels {
    /// Computes `y = act(x·Wᵀ + bias) + residual` for `x: [rows, k]`, `y: [rows, n]`.
    ///
    /// # Panics
    /// If a slice length disagrees with `rows`, `w.n()` or `w.k()`.
    pub fn linear(&self, x: &[f32], rows: usize, w: &PackedMatrix, epilogue: Epilogue<'_>, y: &mut [f32]) {
        check_shapes(x, rows, w, y);
        let n = w.n;
        if let Some(bias) = epilogue.bias {
            assert_eq!(bias.len(), n, "bias has {} values, expected {n}", bias.len());
        }
        if let Some(residual) = epilogue.residual {
            assert_eq!(residual.len(), rows * n, "residual has {} values, expected {rows}×{n}", residual.len());
        }
        let output = DisjointOutput::new(y);
        let kernels = self.table.matmul;
        tiles(rows, w.panel_count(), rayon::current_num_threads()).into_par_iter().for_each(|tile| {
            let mut acc = vec![0.0f32; tile.rows * tile.panels * NR];
            tile_product(&kernels, x, w.k, w, tile, &mut acc);
            let col0 = tile.panel0 * NR;
            let cols = (tile.panels * NR).min(n - col0);
            for r in 0..tile.rows {
                let row = tile.row0 + r;
                // SAFETY: this tile alone owns columns col0..col0 + cols of rows
                // row0..row0 + rows, and the range lies inside y (checked above).
                let out = unsafe { output.slice(row * n + col0, cols) };
                let acc_row = &acc[r * tile.panels * NR..][..cols];
                for (c, (out, &value)) in out.iter_mut().zip(acc_row).enumerate() {
                    let mut v = value;
                    if let Some(bias) = epilogue.bias {
                        v += bias[col0 + c];
                    }
                    v = epilogue.activation.apply(v);
                    if let Some(residual) = epilogue.residual {
                        v += residual[row * n + col0 + c];
                    }
                    *out = v;
                }
            }
        });
    }

    /// Computes the gated product `y = act(x·Gᵀ + gate_bias) ⊙ (x·Vᵀ + value_bias)`
    /// (GEGLU with GELU, SwiGLU with SiLU) for `x: [rows, k]`, `y: [rows, n]`.
    ///
    /// # Panics
    /// If the two matrices differ in shape or a slice length disagrees with them.
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
        assert_eq!((gate.n, gate.k), (value.n, value.k), "gate and value matrices differ in shape");
        check_shapes(x, rows, gate, y);
        let n = gate.n;
        for bias in [gate_bias, value_bias].into_iter().flatten() {
            assert_eq!(bias.len(), n, "bias has {} values, expected {n}", bias.len());
        }
        let output = DisjointOutput::new(y);
        let kernels = self.table.matmul;
        tiles(rows, gate.panel_count(), rayon::current_num_threads()).into_par_iter().for_each(|tile| {
            let len = tile.rows * tile.panels * NR;
            let mut gate_acc = vec![0.0f32; len];
            let mut value_acc = vec![0.0f32; len];
            tile_product(&kernels, x, gate.k, gate, tile, &mut gate_acc);
            tile_product(&kernels, x, value.k, value, tile, &mut value_acc);
            let col0 = tile.panel0 * NR;
            let cols = (tile.panels * NR).min(n - col0);
            for r in 0..tile.rows {
                let row = tile.row0 + r;
                // SAFETY: this tile alone owns columns col0..col0 + cols of rows
                // row0..row0 + rows, and the range lies inside y (checked above).
                let out = unsafe { output.slice(row * n + col0, cols) };
                let offset = r * tile.panels * NR;
                for (c, out) in out.iter_mut().enumerate() {
                    let mut g = gate_acc[offset + c];
                    let mut v = value_acc[offset + c];
                    if let Some(bias) = gate_bias {
                        g += bias[col0 + c];
                    }
                    if let Some(bias) = value_bias {
                        v += bias[col0 + c];
                    }
                    *out = activation.apply(g) * v;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], rows: usize, w: &[f32], n: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; rows * n];
        for r in 0..rows {
            for c in 0..n {
                y[r * n + c] = (0..k).map(|kk| x[r * k + kk] as f64 * w[c * k + kk] as f64).sum();
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn packing_round_trips() {
        let (n, k) = (37, 11);
        let w = values(n * k, 7);
        let packed = PackedMatrix::from_f32(&w, n, k);
        for r in 0..n {
            for c in 0..k {
                assert_eq!(packed.get(r, c), w[r * k + c]);
            }
        }
    }

    #[test]
    fn linear_matches_naive_on_odd_shapes() {
        let kernels = Kernels::scalar();
        for &(rows, n, k) in &[(0, 5, 3), (1, 1, 1), (3, 17, 7), (65, 33, 300), (7, 16, 0), (130, 20, 513)] {
            let x = values(rows * k, 1);
            let w = values(n * k, 2);
            let bias = values(n, 3);
            let packed = PackedMatrix::from_f32(&w, n, k);
            let mut y = vec![f32::NAN; rows * n];
            kernels.linear(&x, rows, &packed, Epilogue::bias(Some(&bias)), &mut y);
            let expected = naive(&x, rows, &w, n, k);
            for (i, (&got, &want)) in y.iter().zip(&expected).enumerate() {
                let want = want + bias[i % n] as f64;
                let tolerance = 1e-6 * (k as f64).sqrt().max(1.0) * 4.0;
                assert!((got as f64 - want).abs() <= tolerance, "({rows},{n},{k}) element {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn gated_matches_separate_products() {
        let kernels = Kernels::scalar();
        let (rows, n, k) = (9, 21, 19);
        let x = values(rows * k, 4);
        let g = values(n * k, 5);
        let v = values(n * k, 6);
        let gb = values(n, 7);
        let vb = values(n, 8);
        let (pg, pv) = (PackedMatrix::from_f32(&g, n, k), PackedMatrix::from_f32(&v, n, k));
        let mut y = vec![f32::NAN; rows * n];
        kernels.linear_gated(&x, rows, &pg, Some(&gb), &pv, Some(&vb), Activation::Silu, &mut y);
        let mut gy = vec![0.0; rows * n];
        let mut vy = vec![0.0; rows * n];
        kernels.linear(&x, rows, &pg, Epilogue::bias(Some(&gb)), &mut gy);
        kernels.linear(&x, rows, &pv, Epilogue::bias(Some(&vb)), &mut vy);
        for i in 0..rows * n {
            assert_eq!(y[i], activation::silu(gy[i]) * vy[i], "element {i}");
        }
    }

    #[test]
    fn residual_and_activation_order() {
        let kernels = Kernels::scalar();
        let w = [1.0f32, 0.0, 0.0, 1.0];
        let packed = PackedMatrix::from_f32(&w, 2, 2);
        let x = [-1.0f32, 2.0];
        let bias = [0.5f32, 0.5];
        let residual = [10.0f32, 20.0];
        let mut y = [0.0f32; 2];
        let epilogue = Epilogue { bias: Some(&bias), activation: Activation::Gelu, residual: Some(&residual) };
        kernels.linear(&x, 1, &packed, epilogue, &mut y);
        assert_eq!(y[0], activation::gelu(-0.5) + 10.0);
        assert_eq!(y[1], activation::gelu(2.5) + 20.0);
    }
}
