//! PNG: raw samples from the `png` crate, converted with Pillow's rules.

use std::borrow::Cow;
use std::io::Cursor;

use ::png::{BitDepth, ColorType, Transformations};

use super::{Decoded, Source};
use crate::preprocess::{ImageError, RgbImage};

const FORMAT: &str = "PNG";

/// Decodes the PNG without the crate's expansion transforms, so the original colour type,
/// bit depth and palette stay visible and Pillow's rules can be applied exactly.
/// An empty `IEND` chunk: length, type and CRC.
const IEND_CHUNK: [u8; 12] = *b"\0\0\0\0IEND\xAE\x42\x60\x82";

pub(super) fn decode(source: &Source) -> Result<Decoded, ImageError> {
    // Pillow 13 accepts a PNG whose `IEND` chunk is missing once the image data is complete,
    // but the `png` crate needs a chunk after the last `IDAT` to finish, so supply one.
    let bytes: Cow<[u8]> = if source.bytes.ends_with(&IEND_CHUNK) {
        Cow::Borrowed(source.bytes)
    } else {
        Cow::Owned([source.bytes, &IEND_CHUNK].concat())
    };
    let mut decoder = ::png::Decoder::new_with_limits(
        Cursor::new(bytes.as_ref()),
        ::png::Limits { bytes: source.max_buffer_bytes() },
    );
    let header = decoder.read_header_info().map_err(|e| source.decode_error(FORMAT, e))?;
    source.check_dimensions(FORMAT, header.width.into(), header.height.into())?;
    decoder.set_transformations(Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| source.decode_error(FORMAT, e))?;

    let buffer_size =
        reader.output_buffer_size().ok_or_else(|| source.decode_error(FORMAT, "the image size overflows memory"))?;
    let mut raw = vec![0_u8; buffer_size];
    let frame = reader.next_frame(&mut raw).map_err(|e| source.decode_error(FORMAT, e))?;

    let info = reader.info();
    let (width, height) = (info.width, info.height);
    let line_size = frame.line_size;
    let rows = raw.chunks_exact(line_size).take(height as usize);
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    match (info.color_type, info.bit_depth) {
        (ColorType::Grayscale, BitDepth::Sixteen) => {
            // Pillow opens 16-bit grey as `I;16`, whose conversion to 8 bits clamps to 255.
            for row in rows {
                for sample in row.chunks_exact(2) {
                    let value = u16::from_be_bytes([sample[0], sample[1]]);
                    data.extend_from_slice(&[value.min(255) as u8; 3]);
                }
            }
        }
        (ColorType::Grayscale, depth) => {
            let bits = depth as u8;
            let scale = 255 / ((1_u16 << bits) - 1) as u8;
            for row in rows {
                for value in unpack(row, bits, width) {
                    data.extend_from_slice(&[value * scale; 3]);
                }
            }
        }
        (ColorType::Indexed, depth) => {
            let palette = info.palette.as_deref().unwrap_or(&[]);
            for row in rows {
                for index in unpack(row, depth as u8, width) {
                    // Pillow's palette has 256 entries; the ones the file leaves out are black.
                    let entry = palette.get(usize::from(index) * 3..usize::from(index) * 3 + 3);
                    data.extend_from_slice(entry.unwrap_or(&[0, 0, 0]));
                }
            }
        }
        (color_type, depth) => {
            // RGB, RGBA and grey+alpha: 16-bit samples keep their high (first) byte, and the
            // alpha channel is dropped.
            let channels = color_type.samples();
            let bytes_per_sample = if depth == BitDepth::Sixteen { 2 } else { 1 };
            for row in rows {
                for pixel in row.chunks_exact(channels * bytes_per_sample) {
                    let sample = |i: usize| pixel[i * bytes_per_sample];
                    if channels >= 3 {
                        data.extend_from_slice(&[sample(0), sample(1), sample(2)]);
                    } else {
                        data.extend_from_slice(&[sample(0); 3]);
                    }
                }
            }
        }
    }
    let expected = width as usize * height as usize * 3;
    if data.len() != expected {
        return Err(source.decode_error(FORMAT, "the decoded rows are shorter than the header"));
    }
    let exif = info.exif_metadata.as_deref();
    Ok(Decoded { image: RgbImage { width, height, data }, orientation: source.exif_orientation(exif) })
}

/// Unpacks the first `width` samples of `bits` bits each from a row, most significant first.
fn unpack(row: &[u8], bits: u8, width: u32) -> impl Iterator<Item = u8> + '_ {
    let per_byte = 8 / usize::from(bits);
    let mask = ((1_u16 << bits) - 1) as u8;
    (0..width as usize).map(move |i| {
        let byte = row[i / per_byte];
        let shift = 8 - usize::from(bits) * (i % per_byte + 1);
        (byte >> shift) & mask
    })
}
