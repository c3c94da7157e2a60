//! TIFF: the first image of the file, from the `tiff` crate, converted with Pillow's rules.
//!
//! Pillow 13 rules, checked with the TIFF fixtures:
//! - 16-bit grey (`I;16`) clamps to 255, and 16-bit RGB and RGBA keep the high byte.
//! - `WhiteIsZero` grey is inverted (the `tiff` crate does that).
//! - CMYK uses Pillow's CMYK formula.
//! - Associated (premultiplied) alpha is divided out as Pillow's `RGBa` unpacker does:
//!   `min(255, c * 255 / a)`, black where `a = 0`, on the high bytes of 16-bit samples.
//!   Other alpha is dropped.
//! - The `Orientation` tag is always applied, because Pillow applies it when it loads a TIFF.

use std::io::Cursor;

use ::tiff::ColorType;
use ::tiff::decoder::{Decoder, DecodingResult, Limits};
use ::tiff::tags::Tag;

use super::{Decoded, Source, cmyk_to_rgb};
use crate::preprocess::orientation::apply_orientation;
use crate::preprocess::{ImageError, RgbImage};

const FORMAT: &str = "TIFF";

/// `ExtraSamples` value of associated (premultiplied) alpha.
const ASSOCIATED_ALPHA: u16 = 1;

/// EXIF and TIFF orientation tag.
const ORIENTATION_TAG: u16 = 274;

pub(super) fn decode(source: &Source) -> Result<Decoded, ImageError> {
    let error = |e: ::tiff::TiffError| source.decode_error(FORMAT, e);
    let mut decoder = Decoder::new(Cursor::new(source.bytes)).map_err(error)?.with_limits(limits(source));
    let (width, height) = decoder.dimensions().map_err(error)?;
    source.check_dimensions(FORMAT, width.into(), height.into())?;
    let color_type = decoder.colortype().map_err(|e| match e {
        ::tiff::TiffError::UnsupportedError(detail) => source.unsupported(FORMAT, detail),
        other => error(other),
    })?;
    let premultiplied = decoder
        .find_tag_unsigned_vec::<u16>(Tag::ExtraSamples)
        .map_err(error)?
        .is_some_and(|extra| extra.first() == Some(&ASSOCIATED_ALPHA));
    let orientation = decoder.find_tag_unsigned::<u8>(Tag::Unknown(ORIENTATION_TAG)).ok().flatten();
    let samples = decoder.read_image().map_err(error)?;

    let pixels = width as usize * height as usize;
    let mut data = Vec::with_capacity(pixels * 3);
    match (color_type, samples) {
        (ColorType::Gray(1), DecodingResult::U8(packed)) => {
            let row_bytes = (width as usize).div_ceil(8);
            for row in packed.chunks_exact(row_bytes).take(height as usize) {
                for x in 0..width as usize {
                    let bit = (row[x / 8] >> (7 - x % 8)) & 1;
                    data.extend_from_slice(&[bit * 255; 3]);
                }
            }
        }
        (ColorType::Gray(8), DecodingResult::U8(v)) => {
            data.extend(v.iter().flat_map(|&g| [g; 3]));
        }
        (ColorType::Gray(16), DecodingResult::U16(v)) => {
            // Pillow opens 16-bit grey as `I;16`, whose conversion to 8 bits clamps to 255.
            data.extend(v.iter().flat_map(|&g| [g.min(255) as u8; 3]));
        }
        (ColorType::Multiband { bit_depth: 8, num_samples: 2 }, DecodingResult::U8(v)) => {
            if premultiplied {
                return Err(
                    source.unsupported(FORMAT, "grey with associated alpha, which Pillow cannot convert to RGB")
                );
            }
            data.extend(v.chunks_exact(2).flat_map(|la| [la[0]; 3]));
        }
        (ColorType::RGB(8), DecodingResult::U8(v)) => data.extend_from_slice(&v),
        (ColorType::RGBA(8), DecodingResult::U8(v)) => {
            for rgba in v.chunks_exact(4) {
                let rgb = [rgba[0], rgba[1], rgba[2]];
                if premultiplied {
                    data.extend_from_slice(&unpremultiply(rgb, rgba[3]));
                } else {
                    data.extend_from_slice(&rgb);
                }
            }
        }
        (ColorType::RGB(16), DecodingResult::U16(v)) => {
            data.extend(v.iter().map(|&s| (s >> 8) as u8));
        }
        (ColorType::RGBA(16), DecodingResult::U16(v)) => {
            for rgba in v.chunks_exact(4) {
                let [r, g, b, a] = [rgba[0], rgba[1], rgba[2], rgba[3]].map(|s| (s >> 8) as u8);
                if premultiplied {
                    data.extend_from_slice(&unpremultiply([r, g, b], a));
                } else {
                    data.extend_from_slice(&[r, g, b]);
                }
            }
        }
        (ColorType::CMYK(8), DecodingResult::U8(v)) => {
            for cmyk in v.chunks_exact(4) {
                data.extend_from_slice(&cmyk_to_rgb([cmyk[0], cmyk[1], cmyk[2], cmyk[3]]));
            }
        }
        (color_type, _) => {
            return Err(source.unsupported(FORMAT, describe(color_type)));
        }
    }
    if data.len() != pixels * 3 {
        return Err(source.decode_error(FORMAT, "the decoded image is shorter than its header"));
    }
    let image = RgbImage { width, height, data };
    // Pillow's TIFF plugin applies the orientation tag while loading (`exif_transpose` in
    // `load_end`), so the reference image is upright regardless of the options.
    let image = match orientation {
        Some(orientation) => apply_orientation(image, orientation),
        None => image,
    };
    Ok(Decoded { image, orientation: None })
}

/// Decoding limits scaled to the pixel limit. Tag values keep the crate's default cap (1 MiB),
/// because a forged count in a tag would otherwise make the crate allocate that many values.
fn limits(source: &Source) -> Limits {
    let mut limits = Limits::default();
    limits.decoding_buffer_size = source.max_buffer_bytes();
    limits.intermediate_buffer_size = source.max_buffer_bytes();
    limits
}

/// Divides premultiplied colour by alpha as Pillow's `RGBa` unpacker does.
fn unpremultiply(rgb: [u8; 3], alpha: u8) -> [u8; 3] {
    match alpha {
        0 => [0, 0, 0],
        255 => rgb,
        a => rgb.map(|c| (u32::from(c) * 255 / u32::from(a)).min(255) as u8),
    }
}

/// Names a colour type for an error message, for example "RGB with 16 bits per sample".
fn describe(color_type: ColorType) -> String {
    let (name, bits) = match color_type {
        ColorType::Gray(bits) => ("grey", bits),
        ColorType::RGB(bits) => ("RGB", bits),
        ColorType::Palette(bits) => ("palette", bits),
        ColorType::GrayA(bits) => ("grey with alpha", bits),
        ColorType::RGBA(bits) => ("RGBA", bits),
        ColorType::CMYK(bits) => ("CMYK", bits),
        ColorType::YCbCr(bits) => ("YCbCr", bits),
        ColorType::Multiband { bit_depth, num_samples } => {
            return format!("{num_samples} samples per pixel with {bit_depth} bits each");
        }
        other => return format!("colour type {other:?}"),
    };
    format!("{name} with {bits} bits per sample")
}
