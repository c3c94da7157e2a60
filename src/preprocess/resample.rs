//! Pillow's bicubic resampler for 8-bit RGB images, bit for bit.
//!
//! This is a port of the algorithm of `src/libImaging/Resample.c` in Pillow 13
//! (`ImagingResampleInner` with the `BICUBIC` filter and the 8-bit-per-channel passes):
//!
//! 1. For each output index of an axis, the filter window is centred on
//!    `center = (i + 0.5) * scale` with `scale = in / out`. When shrinking, the filter's support
//!    (2 for bicubic) is stretched by `scale`, which makes the resize anti-aliased.
//! 2. The weights are computed in double precision, normalised to sum to 1, and converted to
//!    signed fixed point with [`PRECISION_BITS`] fraction bits, rounding half away from zero.
//! 3. A horizontal pass writes an 8-bit intermediate image, then a vertical pass reads it. Each
//!    pass starts its accumulator at one half, shifts right by [`PRECISION_BITS`] and clamps to
//!    0..=255. Pillow skips a pass whose axis keeps its length; so does this port.
//!
//! Every output pixel depends only on its own window, so [`resample_window`] computes any
//! rectangle of the output exactly as the full resize would. The centre crop uses that to
//! avoid materialising the resized image.

use std::ops::Range;

use super::RgbImage;

/// Fraction bits of the fixed-point weights: 32 bits minus 8 for the sample and 2 for the
/// overshoot of the negative filter lobes.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Half the support of the bicubic kernel, in input pixels at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;

/// The `a` parameter of the Keys cubic convolution kernel that Pillow uses.
const BICUBIC_A: f64 = -0.5;

const CHANNELS: usize = 3;

/// Evaluates Pillow's bicubic kernel, with the same operation order as `bicubic_filter`.
fn bicubic(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * BICUBIC_A
    } else {
        0.0
    }
}

/// Fixed-point filter weights of one axis for a range of output indices.
struct AxisWeights {
    /// Weights per output index, `taps` entries each (zero-padded past `bounds[i].1`).
    weights: Vec<i32>,
    /// The first input index and the number of inputs of each output index.
    bounds: Vec<(usize, usize)>,
    /// Maximum number of inputs of one output index.
    taps: usize,
}

impl AxisWeights {
    /// Computes the weights of the output indices `outputs` for resizing `in_size` samples to
    /// `out_size` samples, as Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` do.
    fn new(in_size: u32, out_size: u64, outputs: Range<u64>) -> Self {
        // Pillow passes the resize box as C floats and subtracts them in single precision.
        let scale = f64::from(in_size as f32 - 0.0_f32) / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filter_scale;
        let taps = support.ceil() as usize * 2 + 1;
        let inverse_filter_scale = 1.0 / filter_scale;

        let count = (outputs.end - outputs.start) as usize;
        let mut weights = vec![0_i32; count * taps];
        let mut bounds = Vec::with_capacity(count);
        let mut exact = vec![0.0_f64; taps];
        for (slot, out_index) in outputs.enumerate() {
            let center = (out_index as f64 + 0.5) * scale;
            // `as` truncates toward zero like the C cast, then the window is clipped.
            let first = ((center - support + 0.5) as i64).max(0);
            let end = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let len = (end - first).max(0) as usize;

            let mut sum = 0.0;
            for (tap, w) in exact.iter_mut().enumerate().take(len) {
                let distance = (tap as i64 + first) as f64 - center + 0.5;
                *w = bicubic(distance * inverse_filter_scale);
                sum += *w;
            }
            let row = &mut weights[slot * taps..slot * taps + len];
            for (fixed, &w) in row.iter_mut().zip(&exact[..len]) {
                let w = if sum != 0.0 { w / sum } else { w };
                *fixed = to_fixed_point(w);
            }
            bounds.push((first as usize, len));
        }
        Self { weights, bounds, taps }
    }

    fn weights(&self, slot: usize) -> &[i32] {
        let (_, len) = self.bounds[slot];
        &self.weights[slot * self.taps..slot * self.taps + len]
    }
}

/// Converts a normalised weight to fixed point, rounding half away from zero.
fn to_fixed_point(weight: f64) -> i32 {
    let scaled = weight * f64::from(1_u32 << PRECISION_BITS);
    if weight < 0.0 { (scaled - 0.5) as i32 } else { (scaled + 0.5) as i32 }
}

/// Rounds a fixed-point accumulator to a sample and clamps it to 0..=255.
fn clip8(accumulator: i32) -> u8 {
    (accumulator >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The accumulator's start value: one half in fixed point, so the final shift rounds.
const ROUNDING: i32 = 1 << (PRECISION_BITS - 1);

/// Computes the rectangle `columns` x `rows` of `image` resized to `out_width` x `out_height`
/// with Pillow's bicubic filter. The result is `columns.len()` x `rows.len()`.
///
/// The caller guarantees a non-empty image with a consistent buffer, ranges inside the
/// output, and an allocation-sized window.
pub(crate) fn resample_window(
    image: &RgbImage,
    out_width: u64,
    out_height: u64,
    columns: Range<u64>,
    rows: Range<u64>,
) -> RgbImage {
    debug_assert!(image.width > 0 && image.height > 0);
    debug_assert!(columns.end <= out_width && rows.end <= out_height);
    let need_horizontal = out_width != u64::from(image.width);
    let need_vertical = out_height != u64::from(image.height);
    let window_height = (rows.end - rows.start) as usize;

    // Input rows that the output rows of the window read, and the vertical weights.
    let vertical = need_vertical.then(|| AxisWeights::new(image.height, out_height, rows.clone()));
    let source_rows = match &vertical {
        Some(v) if window_height > 0 => {
            let first = v.bounds.iter().map(|b| b.0).min().unwrap_or(0);
            let end = v.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
            first..end
        }
        Some(_) => 0..0,
        None => rows.start as usize..rows.end as usize,
    };

    // Horizontal pass: the window's columns of every source row, or a plain copy.
    let intermediate = if need_horizontal {
        let horizontal = AxisWeights::new(image.width, out_width, columns.clone());
        resample_rows(image, &source_rows, &horizontal)
    } else {
        copy_rect(image, columns.start as usize..columns.end as usize, &source_rows)
    };

    // Vertical pass over the intermediate, whose row 0 is `source_rows.start`.
    match &vertical {
        Some(v) => resample_columns(&intermediate, source_rows.start, v),
        None => intermediate,
    }
}

/// Resamples each row of `rows` horizontally with `weights`.
fn resample_rows(image: &RgbImage, rows: &Range<usize>, weights: &AxisWeights) -> RgbImage {
    let out_width = weights.bounds.len();
    let in_stride = image.width as usize * CHANNELS;
    let mut data = Vec::with_capacity(out_width * rows.len() * CHANNELS);
    for y in rows.clone() {
        let row = &image.data[y * in_stride..(y + 1) * in_stride];
        for (slot, &(first, _)) in weights.bounds.iter().enumerate() {
            let mut acc = [ROUNDING; CHANNELS];
            for (tap, &w) in weights.weights(slot).iter().enumerate() {
                let pixel = &row[(first + tap) * CHANNELS..(first + tap + 1) * CHANNELS];
                for c in 0..CHANNELS {
                    acc[c] += i32::from(pixel[c]) * w;
                }
            }
            data.extend(acc.map(clip8));
        }
    }
    RgbImage { width: out_width as u32, height: rows.len() as u32, data }
}

/// Resamples `image` vertically with `weights`; input row `r` of the weights is row
/// `r - row_offset` of `image`.
fn resample_columns(image: &RgbImage, row_offset: usize, weights: &AxisWeights) -> RgbImage {
    let stride = image.width as usize * CHANNELS;
    let out_height = weights.bounds.len();
    let mut data = vec![0_u8; stride * out_height];
    let mut acc = vec![0_i32; stride];
    for (slot, out_row) in data.chunks_exact_mut(stride.max(1)).enumerate() {
        let (first, _) = weights.bounds[slot];
        acc.fill(ROUNDING);
        for (tap, &w) in weights.weights(slot).iter().enumerate() {
            let y = first + tap - row_offset;
            let in_row = &image.data[y * stride..(y + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(in_row) {
                *a += i32::from(v) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    RgbImage { width: image.width, height: out_height as u32, data }
}

/// Copies the rectangle `columns` x `rows` of `image`.
fn copy_rect(image: &RgbImage, columns: Range<usize>, rows: &Range<usize>) -> RgbImage {
    let stride = image.width as usize * CHANNELS;
    let mut data = Vec::with_capacity(columns.len() * rows.len() * CHANNELS);
    for y in rows.clone() {
        let row = &image.data[y * stride..(y + 1) * stride];
        data.extend_from_slice(&row[columns.start * CHANNELS..columns.end * CHANNELS]);
    }
    RgbImage { width: columns.len() as u32, height: rows.len() as u32, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_values() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(-1.5), bicubic(1.5));
        assert_eq!(bicubic(0.5), 0.5625);
        assert_eq!(bicubic(1.5), -0.0625);
        assert_eq!(bicubic(2.0), 0.0);
    }

    #[test]
    fn fixed_point_rounds_half_away_from_zero() {
        let unit = 1.0 / f64::from(1_u32 << PRECISION_BITS);
        assert_eq!(to_fixed_point(1.0), 1 << PRECISION_BITS);
        assert_eq!(to_fixed_point(2.5 * unit), 3);
        assert_eq!(to_fixed_point(-2.5 * unit), -3);
        assert_eq!(to_fixed_point(2.4 * unit), 2);
    }

    #[test]
    fn weights_sum_near_one() {
        for (in_size, out_size) in [(1000, 224), (224, 224), (3, 224), (1, 224), (501, 7)] {
            let w = AxisWeights::new(in_size, out_size, 0..out_size);
            for slot in 0..out_size as usize {
                let sum: i32 = w.weights(slot).iter().sum();
                let error = (sum - (1 << PRECISION_BITS)).abs();
                assert!(error <= w.taps as i32, "{in_size}->{out_size} slot {slot}: {sum}");
            }
        }
    }

    #[test]
    fn window_matches_full_resize() {
        let (width, height) = (37_u32, 23_u32);
        let data = (0..width * height * 3).map(|i| (i * 97 % 251) as u8).collect();
        let image = RgbImage { width, height, data };
        let (out_w, out_h) = (61_u64, 17_u64);
        let full = resample_window(&image, out_w, out_h, 0..out_w, 0..out_h);
        let part = resample_window(&image, out_w, out_h, 5..40, 3..11);
        for y in 0..8 {
            for x in 0..35 {
                let a = ((y + 3) * out_w as usize + x + 5) * 3;
                let b = (y * 35 + x) * 3;
                assert_eq!(full.data[a..a + 3], part.data[b..b + 3], "pixel {x},{y}");
            }
        }
    }
}
