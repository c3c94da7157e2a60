//! The 2-D rotary embedding table of the EVA-02 image tower.
//!
//! Each head vector of `head_width` values is split in two halves: the first
//! rotates with the patch row, the second with the patch column. Within a
//! half, frequency `f_k = 10000^(−2k/half)` is used by the interleaved pair
//! `(2k, 2k+1)`. Grid position `i` becomes `t_i = i / grid · pt` when the
//! frequencies are interpolated (`intp_freq`), else `t_i = i`. Everything is
//! computed in f32, as PyTorch does when it builds the table.

use crate::config::VisionConfig;

/// Base of the rotary frequencies.
const THETA: f32 = 10_000.0;

/// Rotary tables `cos`, `sin`, each `[grid², head_width]`, rows ordered `row·grid + column`.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeTable {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

impl RopeTable {
    /// Computes the table for a configuration.
    pub fn new(config: &VisionConfig) -> RopeTable {
        let grid = config.grid_size();
        let half = config.head_width / 2;
        let frequencies: Vec<f32> = (0..half / 2).map(|k| 1.0 / THETA.powf((2 * k) as f32 / half as f32)).collect();
        let positions: Vec<f32> = (0..grid)
            .map(|i| {
                if config.rope_interpolate {
                    i as f32 / grid as f32 * config.rope_pretrained_grid as f32
                } else {
                    i as f32
                }
            })
            .collect();
        // Angles of one axis: each frequency twice, for both members of a pair.
        let axis_angles = |t: f32| -> Vec<f32> { frequencies.iter().flat_map(|&f| [t * f, t * f]).collect() };
        let mut cos = Vec::with_capacity(grid * grid * config.head_width);
        let mut sin = Vec::with_capacity(grid * grid * config.head_width);
        for &row in &positions {
            for &column in &positions {
                for angle in axis_angles(row).into_iter().chain(axis_angles(column)) {
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        RopeTable { cos, sin }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interpolate: bool, pretrained: usize) -> VisionConfig {
        VisionConfig {
            image_size: 224,
            patch_size: 16,
            width: 768,
            num_layers: 1,
            head_width: 64,
            mlp_hidden: 2048,
            qkv_bias: true,
            rope: true,
            rope_pretrained_grid: pretrained,
            rope_interpolate: interpolate,
            layer_norm_eps: 1e-6,
        }
    }

    #[test]
    fn interpolated_positions_scale_the_grid() {
        // Row 1 is patch (0, 1); column 32 is the first column-axis entry, with frequency 1.
        let table = RopeTable::new(&config(true, 16));
        assert_eq!(table.cos.len(), 196 * 64);
        let t1 = 1.0f32 / 14.0 * 16.0;
        assert!((table.cos[64 + 32] - t1.cos()).abs() < 1e-7);
        assert!((table.cos[64 + 32] - 0.4150).abs() < 1e-4);
        // The row axis of patch (0, 1) is at position 0: no rotation.
        assert_eq!(table.cos[64], 1.0);
        assert_eq!(table.sin[64], 0.0);
    }

    #[test]
    fn plain_positions_use_indices() {
        let mut plain = config(false, 14);
        plain.rope_interpolate = false;
        let table = RopeTable::new(&plain);
        assert!((table.cos[64 + 32] - 1.0f32.cos()).abs() < 1e-7);
        // Patch (1, 0): the row axis (column 0) uses t = 1, frequency 1.
        assert!((table.sin[14 * 64] - 1.0f32.sin()).abs() < 1e-7);
    }

    #[test]
    fn pairs_share_a_frequency() {
        let table = RopeTable::new(&config(true, 16));
        let row = &table.cos[5 * 64..6 * 64];
        for pair in row.chunks_exact(2) {
            assert_eq!(pair[0], pair[1]);
        }
    }
}
