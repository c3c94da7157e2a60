//! Portable matmul tile: the fallback of every CPU and the oracle of the SIMD tiers.
//!
//! Plain loops over rows and panels, four rows at a time so each weight row
//! read is reused. Sums are accumulated per reduction block of [`KC`] with
//! separate multiply and add, so results differ from the fused SIMD tiers in
//! the last bits only.

use half::{bf16, f16};

use super::{KC, MatmulJob, NR, PackedMatrix, Product, Tile, WeightFormat};

/// Rows of X handled together, so each loaded panel row is reused MR times.
pub(crate) const MR: usize = 4;

pub(crate) const KERNELS: super::MatmulKernels = super::MatmulKernels { tile, mr: MR, packs_x: false, bf16_dot: None };

/// Copies rows `k0..k0 + kc` of panel `panel` to `out` (`kc·NR` floats) as
/// f32, `out[kk·NR + j]` for input feature `k0 + kk` and lane `j`. `k0` must
/// start a group of the format's `k_group` features.
fn read_panel_block(w: &PackedMatrix, panel: usize, k0: usize, kc: usize, out: &mut [f32]) {
    let width = w.format().bytes_per_weight();
    let group = w.format().k_group();
    let start = w.panel_ptr(panel, k0);
    // SAFETY: `panel_ptr` checked that the panel exists and that `k0` starts
    // a group; the groups holding rows k0..k0 + kc are
    // `ceil(kc / group)·group·NR·width` bytes inside the panel, whose last
    // group is padded to full size.
    let bytes = unsafe { std::slice::from_raw_parts(start, kc.div_ceil(group) * group * NR * width) };
    for kk in 0..kc {
        for j in 0..NR {
            let at = (((kk / group) * NR + j) * group + kk % group) * width;
            let value = &bytes[at..at + width];
            out[kk * NR + j] = match w.format() {
                WeightFormat::F32 => f32::from_le_bytes([value[0], value[1], value[2], value[3]]),
                WeightFormat::F16 => f16::from_le_bytes([value[0], value[1]]).to_f32(),
                WeightFormat::BF16 => bf16::from_le_bytes([value[0], value[1]]).to_f32(),
                WeightFormat::Int8 => unreachable!("int8 weights take the integer path"),
            };
        }
    }
}

/// Adds `x[rows]·panel` for one reduction block to `acc` (`rows × NR`, row stride `acc_stride`).
fn block(x: &[f32], x_stride: usize, rows: usize, panel: &[f32], kc: usize, acc: &mut [f32], acc_stride: usize) {
    let mut r = 0;
    while r < rows {
        let group = MR.min(rows - r);
        let mut sums = [[0.0f32; NR]; MR];
        for kk in 0..kc {
            let w = &panel[kk * NR..kk * NR + NR];
            for (i, sum) in sums.iter_mut().enumerate().take(group) {
                let a = x[(r + i) * x_stride + kk];
                for j in 0..NR {
                    sum[j] += a * w[j];
                }
            }
        }
        for (i, sum) in sums.iter().enumerate().take(group) {
            let out = &mut acc[(r + i) * acc_stride..][..NR];
            for j in 0..NR {
                out[j] += sum[j];
            }
        }
        r += group;
    }
}

/// Computes the raw product of the tile's rows with `w` into `acc` (`rows × panels·NR`).
fn product(job: &MatmulJob<'_>, tile: Tile, w: &PackedMatrix, acc: &mut [f32]) {
    let k = job.k;
    let acc_stride = tile.panels * NR;
    acc.fill(0.0);
    let mut panel_block = vec![0.0f32; KC * NR];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for p in 0..tile.panels {
            read_panel_block(w, tile.panel0 + p, k0, kc, &mut panel_block);
            block(&job.x[tile.row0 * k + k0..], k, tile.rows, &panel_block, kc, &mut acc[p * NR..], acc_stride);
        }
    }
}

/// # Safety
/// No other task may write the tile's part of the output meanwhile.
unsafe fn tile(job: &MatmulJob<'_>, tile: Tile) {
    let acc_stride = tile.panels * NR;
    let (first, second) = job.matrices();
    let mut acc = vec![0.0f32; tile.rows * acc_stride];
    product(job, tile, first, &mut acc);
    let mut value_acc = Vec::new();
    if let Some(value) = second {
        value_acc = vec![0.0f32; tile.rows * acc_stride];
        product(job, tile, value, &mut value_acc);
    }
    // SAFETY: the caller reserved the tile's output.
    unsafe { finish(job, tile, &acc, &value_acc) };
}

/// Applies the epilogue to the tile's raw sums `acc` (and, for a gated
/// product, the value sums `value_acc`), `rows × panels·NR` each, and
/// writes the tile's output.
///
/// # Safety
/// No other task may write the tile's part of the output meanwhile.
pub(crate) unsafe fn finish(job: &MatmulJob<'_>, tile: Tile, acc: &[f32], value_acc: &[f32]) {
    let acc_stride = tile.panels * NR;
    let col0 = tile.panel0 * NR;
    let cols = acc_stride.min(job.n - col0);
    for r in 0..tile.rows {
        let row = tile.row0 + r;
        // SAFETY: this tile alone owns columns col0..col0 + cols of its rows
        // (caller's contract), and the range lies inside the output.
        let out = unsafe { job.out.slice(row * job.n + col0, cols) };
        for (c, out) in out.iter_mut().enumerate() {
            let col = col0 + c;
            let sum = acc[r * acc_stride + c];
            *out = match job.product {
                Product::Linear { epilogue, .. } => {
                    let mut v = sum;
                    if let Some(bias) = epilogue.bias {
                        v += bias[col];
                    }
                    v = epilogue.activation.apply(v);
                    if let Some(residual) = epilogue.residual {
                        v += residual[row * job.n + col];
                    }
                    v
                }
                Product::Gated { gate_bias, value_bias, activation, .. } => {
                    let g = sum + gate_bias.map_or(0.0, |bias| bias[col]);
                    let v = value_acc[r * acc_stride + c] + value_bias.map_or(0.0, |bias| bias[col]);
                    activation.apply(g) * v
                }
            };
        }
    }
}
