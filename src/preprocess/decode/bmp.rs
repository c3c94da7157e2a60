//! BMP: `image`'s decoder, except for 16 bits per pixel, which `image` scales to 8 bits
//! differently from Pillow.
//!
//! Pillow 13 reads 16-bit BMP as 5-5-5 (`BI_RGB`, or bit fields 0x7C00/0x3E0/0x1F) or 5-6-5
//! (bit fields 0xF800/0x7E0/0x1F). It scales a `b`-bit channel value `v` to
//! `v * 255 / (2^b - 1)`, rounding down, and rejects other 16-bit layouts.

use std::io::Cursor;

use ::image::ImageDecoder;

use super::{Decoded, Source, rgb_from_interleaved};
use crate::preprocess::{ImageError, RgbImage};

const FORMAT: &str = "BMP";

/// `BI_RGB`: uncompressed.
const BI_RGB: u32 = 0;
/// `BI_BITFIELDS`: uncompressed, channel masks given.
const BI_BITFIELDS: u32 = 3;

pub(super) fn decode(source: &Source) -> Result<Decoded, ImageError> {
    let bits_per_pixel = read_u16(source.bytes, 28);
    if bits_per_pixel == Some(16) {
        return decode_16_bit(source).map(|image| Decoded { image, orientation: None });
    }
    let decoder =
        ::image::codecs::bmp::BmpDecoder::new(Cursor::new(source.bytes)).map_err(|e| source.decode_error(FORMAT, e))?;
    let (width, height) = decoder.dimensions();
    source.check_dimensions(FORMAT, width.into(), height.into())?;
    let color_type = decoder.color_type();
    let channels = usize::from(color_type.channel_count());
    if usize::from(color_type.bytes_per_pixel()) != channels {
        return Err(source.unsupported(FORMAT, format!("{color_type:?} samples")));
    }
    let mut samples = vec![0_u8; decoder.total_bytes() as usize];
    decoder.read_image(&mut samples).map_err(|e| source.decode_error(FORMAT, e))?;
    Ok(Decoded { image: rgb_from_interleaved(width, height, &samples, channels < 3, channels), orientation: None })
}

fn read_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    let b = bytes.get(offset..offset + 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes an uncompressed 16-bit BMP with Pillow's channel scaling.
fn decode_16_bit(source: &Source) -> Result<RgbImage, ImageError> {
    let bytes = source.bytes;
    let short = || source.decode_error(FORMAT, "the header is truncated");
    let data_offset = read_u32(bytes, 10).ok_or_else(short)? as usize;
    let header_size = read_u32(bytes, 14).ok_or_else(short)?;
    if header_size < 40 {
        return Err(source.unsupported(FORMAT, "16-bit pixels with an OS/2 header"));
    }
    let width = read_u32(bytes, 18).ok_or_else(short)? as i32;
    let height = read_u32(bytes, 22).ok_or_else(short)? as i32;
    let compression = read_u32(bytes, 30).ok_or_else(short)?;
    let (width, top_down) = (width.unsigned_abs(), height < 0);
    let height = height.unsigned_abs();
    source.check_dimensions(FORMAT, width.into(), height.into())?;

    // Bit fields follow the 40-byte header, or sit at the same offset inside a larger one.
    let masks = match compression {
        BI_RGB => [0x7C00, 0x03E0, 0x001F],
        BI_BITFIELDS => [
            read_u32(bytes, 54).ok_or_else(short)?,
            read_u32(bytes, 58).ok_or_else(short)?,
            read_u32(bytes, 62).ok_or_else(short)?,
        ],
        other => {
            return Err(source.unsupported(FORMAT, format!("16-bit pixels with compression {other}")));
        }
    };
    if masks != [0x7C00, 0x03E0, 0x001F] && masks != [0xF800, 0x07E0, 0x001F] {
        return Err(
            source.unsupported(FORMAT, format!("16-bit bit fields {masks:#06x?}, which Pillow does not read either"))
        );
    }

    let stride = (width as usize * 2).div_ceil(4) * 4;
    let size = stride
        .checked_mul(height as usize)
        .ok_or_else(|| source.decode_error(FORMAT, "the image size overflows memory"))?;
    let pixels = bytes
        .get(data_offset..)
        .and_then(|rest| rest.get(..size))
        .ok_or_else(|| source.decode_error(FORMAT, "the pixel data is truncated"))?;

    let channel = |pixel: u32, mask: u32| {
        let max = mask >> mask.trailing_zeros();
        ((pixel & mask) >> mask.trailing_zeros()) * 255 / max
    };
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height as usize {
        let row = if top_down { y } else { height as usize - 1 - y };
        let line = &pixels[row * stride..row * stride + width as usize * 2];
        for pixel in line.chunks_exact(2) {
            let pixel = u32::from(u16::from_le_bytes([pixel[0], pixel[1]]));
            data.extend(masks.map(|mask| channel(pixel, mask) as u8));
        }
    }
    Ok(RgbImage { width, height, data })
}
