//! EXIF orientation: the eight flips and rotations of the TIFF/EXIF `Orientation` tag.

use super::RgbImage;

/// Transforms `image` so that it displays upright for the EXIF `orientation` value, as
/// Pillow's `ImageOps.exif_transpose` does. Values outside 1..=8 leave the image unchanged.
///
/// | value | transform | value | transform |
/// |---|---|---|---|
/// | 1 | none | 5 | transpose (mirror across the main diagonal) |
/// | 2 | mirror left-right | 6 | rotate 90° clockwise |
/// | 3 | rotate 180° | 7 | transverse (mirror across the anti-diagonal) |
/// | 4 | mirror top-bottom | 8 | rotate 90° counter-clockwise |
pub fn apply_orientation(image: RgbImage, orientation: u8) -> RgbImage {
    if !(2..=8).contains(&orientation) {
        return image;
    }
    let (width, height) = (image.width as usize, image.height as usize);
    let swaps_axes = orientation >= 5;
    let (out_width, out_height) = if swaps_axes { (height, width) } else { (width, height) };
    // The source pixel of output pixel (x, y).
    let source = |x: usize, y: usize| -> (usize, usize) {
        match orientation {
            2 => (width - 1 - x, y),
            3 => (width - 1 - x, height - 1 - y),
            4 => (x, height - 1 - y),
            5 => (y, x),
            6 => (y, height - 1 - x),
            7 => (width - 1 - y, height - 1 - x),
            _ => (width - 1 - y, x),
        }
    };
    let mut data = Vec::with_capacity(image.data.len());
    for y in 0..out_height {
        for x in 0..out_width {
            let (sx, sy) = source(x, y);
            let i = (sy * width + sx) * 3;
            data.extend_from_slice(&image.data[i..i + 3]);
        }
    }
    RgbImage { width: out_width as u32, height: out_height as u32, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a 3x2 image whose pixel (x, y) has red = 10 * y + x.
    fn sample() -> RgbImage {
        let mut data = Vec::new();
        for y in 0..2 {
            for x in 0..3 {
                data.extend_from_slice(&[10 * y + x, 0, 0]);
            }
        }
        RgbImage { width: 3, height: 2, data }
    }

    fn reds(image: &RgbImage) -> Vec<u8> {
        image.data.chunks_exact(3).map(|p| p[0]).collect()
    }

    #[test]
    fn all_orientations() {
        // Input rows: [0 1 2] [10 11 12].
        let cases: [(u8, (u32, u32), &[u8]); 8] = [
            (1, (3, 2), &[0, 1, 2, 10, 11, 12]),
            (2, (3, 2), &[2, 1, 0, 12, 11, 10]),
            (3, (3, 2), &[12, 11, 10, 2, 1, 0]),
            (4, (3, 2), &[10, 11, 12, 0, 1, 2]),
            (5, (2, 3), &[0, 10, 1, 11, 2, 12]),
            (6, (2, 3), &[10, 0, 11, 1, 12, 2]),
            (7, (2, 3), &[12, 2, 11, 1, 10, 0]),
            (8, (2, 3), &[2, 12, 1, 11, 0, 10]),
        ];
        for (orientation, size, expected) in cases {
            let out = apply_orientation(sample(), orientation);
            assert_eq!((out.width, out.height), size, "orientation {orientation}");
            assert_eq!(reds(&out), expected, "orientation {orientation}");
        }
    }

    #[test]
    fn invalid_values_keep_image() {
        for orientation in [0, 9, 255] {
            assert_eq!(apply_orientation(sample(), orientation), sample());
        }
    }
}
