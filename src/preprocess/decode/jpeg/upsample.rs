//! libjpeg-turbo's chroma upsampling with `do_fancy_upsampling` on (its default, which
//! Pillow keeps), from `jdsample.c`.
//!
//! - 2x horizontal (4:2:2): `h2v1_fancy_upsample`, a triangle filter: each output sample is
//!   3/4 of the nearer input plus 1/4 of the further one, rounded with alternating biases
//!   1 and 2.
//! - 2x both ways (4:2:0): `h2v2_fancy_upsample`: the vertical 3:1 sums stay unrounded and
//!   the horizontal step rounds once, with biases 8 and 7.
//! - 2x vertical (4:4:0): `h1v2_fancy_upsample`, with biases 1 (upper) and 2 (lower).
//! - Any other integer ratio, and the 2x cases on planes of 2 or fewer columns, replicate
//!   samples (`int_upsample` and `h2v1_upsample`/`h2v2_upsample`).
//!
//! Past the plane's edges libjpeg repeats the first and last real row and column, so the
//! neighbours are clamped here.

/// A component plane after the inverse DCT.
pub(super) struct Plane<'a> {
    /// Samples, `stride` per row.
    pub samples: &'a [u8],
    pub stride: usize,
    /// The component's real size in samples (`downsampled_width` and `downsampled_height`).
    pub width: usize,
    pub height: usize,
}

impl Plane<'_> {
    /// The `width` real samples of row `y`, which must be below `height`.
    fn row(&self, y: usize) -> &[u8] {
        &self.samples[y * self.stride..y * self.stride + self.width]
    }

    fn at(&self, x: usize, y: usize) -> i32 {
        i32::from(self.samples[y * self.stride + x])
    }

    /// Returns the sample at row `y` and column `x`, with both clamped to the plane.
    fn clamped(&self, x: isize, y: isize) -> i32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.at(x, y)
    }
}

/// Upsamples `plane` by the integer factors `(h_factor, v_factor)` and writes the top-left
/// `out_width` x `out_height` samples to `output`.
pub(super) fn upsample(
    plane: &Plane,
    h_factor: usize,
    v_factor: usize,
    out_width: usize,
    out_height: usize,
    output: &mut [u8],
) {
    let fancy_width = plane.width > 2;
    let rows = output.chunks_exact_mut(out_width).take(out_height).enumerate();
    match (h_factor, v_factor) {
        (1, 1) => {
            for (y, out) in rows {
                let start = y * plane.stride;
                out.copy_from_slice(&plane.samples[start..start + out_width]);
            }
        }
        (2, 1) if fancy_width => {
            let mut sums = vec![0_i32; plane.width];
            for (y, out) in rows {
                let input = plane.row(y);
                for (sum, &v) in sums.iter_mut().zip(input) {
                    *sum = 4 * i32::from(v);
                }
                // With each sum scaled by 4 the 2x2 rule below reduces to h2v1's
                // (3 * near + far + bias) >> 2 with biases 1 (left) and 2 (right).
                interpolate_columns(&sums, out, |this, other, odd| {
                    if odd { (3 * this + other + 8) >> 4 } else { (3 * this + other + 4) >> 4 }
                });
            }
        }
        (2, 2) if fancy_width => {
            let mut sums = vec![0_i32; plane.width];
            for (y, out) in rows {
                // Vertical 3:1 sums of the nearer and the further input row, unrounded.
                let near_row = y / 2;
                let far_row =
                    if y % 2 == 1 { (near_row + 1).min(plane.height - 1) } else { near_row.saturating_sub(1) };
                let (near, far) = (plane.row(near_row), plane.row(far_row));
                for ((sum, &n), &f) in sums.iter_mut().zip(near).zip(far) {
                    *sum = 3 * i32::from(n) + i32::from(f);
                }
                interpolate_columns(&sums, out, |this, other, odd| {
                    if odd { (3 * this + other + 7) >> 4 } else { (3 * this + other + 8) >> 4 }
                });
            }
        }
        (1, 2) => {
            for (y, out) in rows {
                let (source_row, lower) = ((y / 2) as isize, y % 2 == 1);
                let (far_row, bias) = if lower { (source_row + 1, 2) } else { (source_row - 1, 1) };
                for (x, sample) in out.iter_mut().enumerate() {
                    let near = 3 * plane.clamped(x as isize, source_row);
                    let far = plane.clamped(x as isize, far_row);
                    *sample = ((near + far + bias) >> 2) as u8;
                }
            }
        }
        _ => {
            for (y, out) in rows {
                let source = (y / v_factor) * plane.stride;
                for (x, sample) in out.iter_mut().enumerate() {
                    *sample = plane.samples[source + x / h_factor];
                }
            }
        }
    }
}

/// Doubles a row horizontally: output `2c` mixes column sum `c` with `c - 1`, output `2c + 1`
/// mixes it with `c + 1`, through `mix(this, other, odd)`. Neighbours past either end are the
/// edge column itself. `out` may be one sample shorter than twice `sums` (odd image width).
fn interpolate_columns(sums: &[i32], out: &mut [u8], mix: impl Fn(i32, i32, bool) -> i32) {
    let last = sums.len() - 1;
    for (c, pair) in out.chunks_mut(2).enumerate() {
        let this = sums[c];
        pair[0] = mix(this, sums[c.saturating_sub(1)], false) as u8;
        if let Some(right) = pair.get_mut(1) {
            *right = mix(this, sums[(c + 1).min(last)], true) as u8;
        }
    }
}
