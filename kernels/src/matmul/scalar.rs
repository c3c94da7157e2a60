//! Portable matmul block kernel: the fallback and the oracle of the SIMD tiers.

use super::{NR, TileKernels};

pub(crate) const KERNELS: TileKernels = TileKernels { block };

/// Rows of X handled together, so each loaded panel row is reused MR times.
const MR: usize = 4;

#[allow(clippy::too_many_arguments)]
fn block(
    x: &[f32],
    x_stride: usize,
    rows: usize,
    panels: &[f32],
    panel_stride: usize,
    panel_count: usize,
    kc: usize,
    acc: &mut [f32],
    acc_stride: usize,
) {
    for p in 0..panel_count {
        let panel = &panels[p * panel_stride..][..kc * NR];
        let mut r = 0;
        while r + MR <= rows {
            let mut sums = [[0.0f32; NR]; MR];
            for kk in 0..kc {
                let w = &panel[kk * NR..kk * NR + NR];
                for (i, sum) in sums.iter_mut().enumerate() {
                    let a = x[(r + i) * x_stride + kk];
                    for j in 0..NR {
                        sum[j] += a * w[j];
                    }
                }
            }
            for (i, sum) in sums.iter().enumerate() {
                let out = &mut acc[(r + i) * acc_stride + p * NR..][..NR];
                for j in 0..NR {
                    out[j] += sum[j];
                }
            }
            r += MR;
        }
        for r in r..rows {
            let mut sum = [0.0f32; NR];
            for kk in 0..kc {
                let a = x[r * x_stride + kk];
                let w = &panel[kk * NR..kk * NR + NR];
                for j in 0..NR {
                    sum[j] += a * w[j];
                }
            }
            let out = &mut acc[r * acc_stride + p * NR..][..NR];
            for j in 0..NR {
                out[j] += sum[j];
            }
        }
    }
}
