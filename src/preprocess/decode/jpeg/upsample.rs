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
    fn at(&self, x: usize, y: usize) -> i32 {
        i32::from(self.samples[y * self.stride + x])
    }

    /// The sample at row `y` and column `x`, with both clamped to the plane.
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
    let rows = output
        .chunks_exact_mut(out_width)
        .take(out_height)
        .enumerate();
    match (h_factor, v_factor) {
        (1, 1) => {
            for (y, out) in rows {
                let start = y * plane.stride;
                out.copy_from_slice(&plane.samples[start..start + out_width]);
            }
        }
        (2, 1) if fancy_width => {
            for (y, out) in rows {
                for (x, sample) in out.iter_mut().enumerate() {
                    let (column, odd) = ((x / 2) as isize, x % 2 == 1);
                    let near = 3 * plane.clamped(column, y as isize);
                    let value = if odd {
                        (near + plane.clamped(column + 1, y as isize) + 2) >> 2
                    } else {
                        (near + plane.clamped(column - 1, y as isize) + 1) >> 2
                    };
                    *sample = value as u8;
                }
            }
        }
        (2, 2) if fancy_width => {
            for (y, out) in rows {
                let (source_row, lower) = ((y / 2) as isize, y % 2 == 1);
                let far_row = if lower {
                    source_row + 1
                } else {
                    source_row - 1
                };
                let column_sum =
                    |c: isize| 3 * plane.clamped(c, source_row) + plane.clamped(c, far_row);
                for (x, sample) in out.iter_mut().enumerate() {
                    let (column, odd) = ((x / 2) as isize, x % 2 == 1);
                    let this = column_sum(column);
                    let value = if odd {
                        (3 * this + column_sum(column + 1) + 7) >> 4
                    } else {
                        (3 * this + column_sum(column - 1) + 8) >> 4
                    };
                    *sample = value as u8;
                }
            }
        }
        (1, 2) => {
            for (y, out) in rows {
                let (source_row, lower) = ((y / 2) as isize, y % 2 == 1);
                let (far_row, bias) = if lower {
                    (source_row + 1, 2)
                } else {
                    (source_row - 1, 1)
                };
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
