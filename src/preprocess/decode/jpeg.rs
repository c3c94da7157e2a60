//! JPEG: `zune-jpeg` for entropy decoding, inverse DCT and upsampling; libjpeg-turbo's colour
//! conversion and Pillow's CMYK rules on top.
//!
//! Pillow decodes JPEG with libjpeg-turbo (3.2.0 in the Pillow 13 wheel) using the ISLOW
//! inverse DCT and "fancy" (triangular) chroma upsampling. `zune-jpeg` 0.5 has its own integer
//! IDCT and upsampler and offers no option to select libjpeg's, so decoded pixels can differ
//! by a few levels. Asking zune for raw YCbCr and converting it here with libjpeg-turbo's
//! fixed-point tables removes the colour-conversion part of the difference.
//!
//! Measured on the JPEG fixtures of `tests/fixtures/pillow` (see its README for the table)
//! with `tools/reference/pillow_fixtures.py` and `cargo test --test preprocess_decode`:
//! 4:4:4 and greyscale images decode within ±1 of Pillow, and chroma-subsampled ones (4:2:0,
//! 4:2:2) within a few levels; the README records the maximum difference and the share of
//! differing samples per fixture.

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::{Decoded, Source, cmyk_to_rgb};
use crate::preprocess::{ImageError, RgbImage};

const FORMAT: &str = "JPEG";

/// Fraction bits of libjpeg's colour-conversion tables (`SCALEBITS` in `jdcolor.c`).
const SCALE_BITS: u32 = 16;

/// Converts a coefficient to libjpeg's fixed point (`FIX(x)` in `jdcolor.c`).
const fn fix(x: f64) -> i32 {
    (x * (1 << SCALE_BITS) as f64 + 0.5) as i32
}

const ONE_HALF: i32 = 1 << (SCALE_BITS - 1);

pub(super) fn decode(source: &Source) -> Result<Decoded, ImageError> {
    // Non-strict mode tolerates the same stray bytes between markers that libjpeg skips with a
    // warning; a truncated scan is caught by the end-of-image check below.
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(source.bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| source.decode_error(FORMAT, format!("{e:?}")))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| source.decode_error(FORMAT, "no frame header"))?;
    source.check_dimensions(FORMAT, width as u64, height as u64)?;
    if !has_end_of_image(source.bytes) {
        return Err(source.decode_error(
            FORMAT,
            "no end-of-image marker (FF D9): the data is truncated",
        ));
    }
    let input_colorspace = decoder
        .input_colorspace()
        .ok_or_else(|| source.decode_error(FORMAT, "no frame header"))?;

    // Raw samples in the file's own colour space; the conversion follows below.
    let raw_colorspace = match input_colorspace {
        ColorSpace::Luma | ColorSpace::YCbCr | ColorSpace::RGB | ColorSpace::YCCK => {
            input_colorspace
        }
        ColorSpace::CMYK => ColorSpace::CMYK,
        other => {
            return Err(source.unsupported(FORMAT, format!("colour space {other:?}")));
        }
    };
    decoder.set_options(options.jpeg_set_out_colorspace(raw_colorspace));
    let samples = decoder
        .decode()
        .map_err(|e| source.decode_error(FORMAT, format!("{e:?}")))?;
    let orientation = source.exif_orientation(decoder.exif().map(Vec::as_slice));

    let (width, height) = (width as u32, height as u32);
    let pixels = width as usize * height as usize;
    let channels = raw_colorspace.num_components();
    if samples.len() != pixels * channels {
        return Err(source.decode_error(FORMAT, "the decoder returned a short buffer"));
    }
    let mut data = Vec::with_capacity(pixels * 3);
    match raw_colorspace {
        ColorSpace::Luma => {
            for &y in &samples {
                data.extend_from_slice(&[y; 3]);
            }
        }
        ColorSpace::RGB => data.extend_from_slice(&samples),
        ColorSpace::YCbCr => {
            let table = YccTable::new();
            for ycc in samples.chunks_exact(3) {
                data.extend_from_slice(&table.rgb(ycc[0], ycc[1], ycc[2]));
            }
        }
        ColorSpace::CMYK => {
            // Pillow reads every 4-channel JPEG as Adobe-inverted CMYK (raw mode `CMYK;I`).
            for cmyk in samples.chunks_exact(4) {
                let inverted = [!cmyk[0], !cmyk[1], !cmyk[2], !cmyk[3]];
                data.extend_from_slice(&cmyk_to_rgb(inverted));
            }
        }
        _ => {
            // YCCK: libjpeg turns YCC into inverted CMY and passes K through, then Pillow
            // inverts all four as for CMYK.
            // NOTE: no YCCK fixture exists (Pillow cannot write YCCK), so this branch is
            // checked only against the formulas of libjpeg-turbo's `ycck_cmyk_convert`.
            let table = YccTable::new();
            for ycck in samples.chunks_exact(4) {
                let [r, g, b] = table.rgb(ycck[0], ycck[1], ycck[2]);
                let cmyk = [255 - r, 255 - g, 255 - b, ycck[3]];
                let inverted = [!cmyk[0], !cmyk[1], !cmyk[2], !cmyk[3]];
                data.extend_from_slice(&cmyk_to_rgb(inverted));
            }
        }
    }
    Ok(Decoded {
        image: RgbImage {
            width,
            height,
            data,
        },
        orientation,
    })
}

/// Returns whether an end-of-image marker follows the last scan. Trailing bytes after it are
/// allowed, as libjpeg stops reading at the marker.
fn has_end_of_image(bytes: &[u8]) -> bool {
    bytes.windows(2).rev().any(|w| w == [0xFF, 0xD9])
}

/// libjpeg-turbo's YCbCr to RGB lookup tables (`build_ycc_rgb_table` in `jdcolor.c`).
struct YccTable {
    cr_to_r: [i32; 256],
    cb_to_b: [i32; 256],
    /// Scaled by 2^16 and not yet shifted.
    cr_to_g: [i32; 256],
    /// Scaled by 2^16 and including the rounding half.
    cb_to_g: [i32; 256],
}

impl YccTable {
    fn new() -> Self {
        let mut table = Self {
            cr_to_r: [0; 256],
            cb_to_b: [0; 256],
            cr_to_g: [0; 256],
            cb_to_g: [0; 256],
        };
        for i in 0..256 {
            let x = i as i32 - 128;
            table.cr_to_r[i] = (fix(1.40200) * x + ONE_HALF) >> SCALE_BITS;
            table.cb_to_b[i] = (fix(1.77200) * x + ONE_HALF) >> SCALE_BITS;
            table.cr_to_g[i] = -fix(0.71414) * x;
            table.cb_to_g[i] = -fix(0.34414) * x + ONE_HALF;
        }
        table
    }

    fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let (y, cb, cr) = (i32::from(y), usize::from(cb), usize::from(cr));
        let green = (self.cb_to_g[cb] + self.cr_to_g[cr]) >> SCALE_BITS;
        [
            (y + self.cr_to_r[cr]).clamp(0, 255) as u8,
            (y + green).clamp(0, 255) as u8,
            (y + self.cb_to_b[cb]).clamp(0, 255) as u8,
        ]
    }
}
