//! Decoding image files to RGB8 with Pillow 13's `Image.open(...).convert("RGB")` rules.

mod bmp;
mod gif;
mod jpeg;
mod png;
mod tiff;

use std::fmt::Display;
use std::io::Cursor;
use std::path::Path;

use ::image::ImageDecoder;

use super::orientation::apply_orientation;
use super::{ImageError, RgbImage};

/// Default [`DecodeOptions::max_pixels`]: Pillow's decompression-bomb limit
/// (`2 * Image.MAX_IMAGE_PIXELS` = 178,956,970 pixels, above which `Image.open` raises), so
/// the engine rejects what the reference rejects and accepts 100-megapixel photos.
pub const DEFAULT_MAX_PIXELS: u64 = 2 * 89_478_485;

/// Description of in-memory input in error messages.
const BYTES_INPUT: &str = "the encoded image";

/// Options of [`decode`] and [`decode_file`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest accepted `width * height`. The declared size is checked from the header, before
    /// the pixels are decoded.
    pub max_pixels: u64,
    /// Rotates and flips the image as its EXIF orientation tag specifies (JPEG, PNG, WebP).
    /// Off by default because the reference pipeline ignores the tag in these formats. TIFF
    /// orientation is always applied, as Pillow applies it.
    pub apply_exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS, apply_exif_orientation: false }
    }
}

/// Decodes a JPEG, PNG, WebP, GIF (first frame), BMP or TIFF image held in memory to RGB8.
///
/// The conversion to RGB is that of Pillow 13's `convert("RGB")`, checked against Pillow with
/// the fixtures of `tools/reference/pillow_fixtures.py`:
/// - alpha is dropped, not composited, and transparency keys (`tRNS`, GIF transparent index)
///   are ignored: a transparent pixel keeps its colour or palette entry;
/// - palette indices past the end of the palette become black;
/// - 1-, 2- and 4-bit grey scale to 0..=255 (x 255, 85, 17);
/// - 16-bit grey (Pillow's mode `I;16`) is clamped: values above 255 become 255, so most
///   16-bit grey images come out nearly white, exactly as in the reference;
/// - 16-bit RGB, RGBA and grey+alpha keep the high byte of each sample;
/// - CMYK becomes `R = (255 - K) - round(C * (255 - K) / 255)` and likewise for G, B, and
///   Pillow reads 4-channel JPEG as Adobe-inverted CMYK;
/// - JPEG is decoded as libjpeg-turbo decodes it for Pillow (integer inverse DCT, fancy
///   upsampling, its YCbCr tables), so JPEG pixels are equal too;
/// - TIFF's orientation tag is applied, because Pillow applies it when loading a TIFF. EXIF
///   orientation in other formats is applied only on request
///   ([`DecodeOptions::apply_exif_orientation`]);
/// - TIFF associated (premultiplied) alpha is divided out, and 16-bit BMP channels scale as
///   `v * 255 / (2^bits - 1)`, rounded down;
/// - GIF yields its first frame on Pillow's canvas (see the `gif` module), and APNG and
///   animated WebP their first frame.
///
/// # Errors
/// [`ImageError::Empty`] for no bytes, [`ImageError::UnsupportedFormat`] for an unknown
/// signature, [`ImageError::TooManyPixels`] when the header declares more than
/// `options.max_pixels`, [`ImageError::Decode`] for corrupt or truncated data, and
/// [`ImageError::UnsupportedImage`] for a valid file of a kind not decoded here (such as
/// arithmetic-coded JPEG or palette TIFF). Messages name the input as `the encoded image`.
pub fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<RgbImage, ImageError> {
    decode_named(bytes, options, BYTES_INPUT)
}

/// Reads and decodes an image file; see [`decode`]. Errors name `path`.
pub fn decode_file(path: &Path, options: &DecodeOptions) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
    decode_named(&bytes, options, &path.display().to_string())
}

fn decode_named(bytes: &[u8], options: &DecodeOptions, input: &str) -> Result<RgbImage, ImageError> {
    let source = Source { bytes, input, options };
    let Some(format) = Format::detect(bytes) else {
        return Err(if bytes.is_empty() {
            ImageError::Empty { input: input.to_string() }
        } else {
            ImageError::UnsupportedFormat { input: input.to_string(), signature: hex_prefix(bytes) }
        });
    };
    let decoded = match format {
        Format::Png => png::decode(&source)?,
        Format::Jpeg => jpeg::decode(&source)?,
        Format::Gif => gif::decode(&source)?,
        Format::Tiff => tiff::decode(&source)?,
        Format::WebP => decode_webp(&source)?,
        Format::Bmp => bmp::decode(&source)?,
    };
    match decoded.orientation {
        Some(orientation) if options.apply_exif_orientation => Ok(apply_orientation(decoded.image, orientation)),
        _ => Ok(decoded.image),
    }
}

/// The container formats that [`decode`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    Tiff,
}

impl Format {
    /// Recognises the format from its signature, as Pillow does, ignoring the file name.
    fn detect(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else if bytes.starts_with(b"BM") {
            Some(Self::Bmp)
        } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|signature| bytes.starts_with(*signature)) {
            Some(Self::Tiff)
        } else {
            None
        }
    }
}

/// Formats the first bytes of `bytes` in hexadecimal, for error messages.
fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    shown.join(" ")
}

/// The input of one decode call and what error messages call it.
struct Source<'a> {
    bytes: &'a [u8],
    input: &'a str,
    options: &'a DecodeOptions,
}

impl Source<'_> {
    /// Rejects a declared size above the pixel limit or with a zero side.
    fn check_dimensions(&self, format: &'static str, width: u64, height: u64) -> Result<(), ImageError> {
        if width == 0 || height == 0 {
            return Err(self.decode_error(format, format!("the header declares {width}x{height}")));
        }
        let pixels = width.saturating_mul(height);
        if pixels > self.options.max_pixels {
            return Err(ImageError::TooManyPixels {
                input: self.input.to_string(),
                width,
                height,
                pixels,
                max_pixels: self.options.max_pixels,
            });
        }
        Ok(())
    }

    /// Largest buffer a decoder may allocate: the pixel limit at 8 bytes per pixel (16-bit
    /// RGBA), so metadata with a forged length cannot ask for more than a real image would.
    /// It is at least 64 MiB (the `png` crate's default), so that metadata of small images
    /// still fits when `max_pixels` is set very low.
    fn max_buffer_bytes(&self) -> usize {
        const FLOOR: u64 = 64 << 20;
        let bytes = self.options.max_pixels.saturating_mul(8).max(FLOOR);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    fn decode_error(&self, format: &'static str, message: impl Display) -> ImageError {
        ImageError::Decode { input: self.input.to_string(), format, message: message.to_string() }
    }

    fn unsupported(&self, format: &'static str, detail: impl Display) -> ImageError {
        ImageError::UnsupportedImage { input: self.input.to_string(), format, detail: detail.to_string() }
    }

    /// Returns the EXIF orientation (1 to 8) of an EXIF block when the options ask for it.
    fn exif_orientation(&self, exif: Option<&[u8]>) -> Option<u8> {
        if !self.options.apply_exif_orientation {
            return None;
        }
        // The block is a TIFF structure; JPEG APP1 and some WebP and PNG writers put the
        // `Exif\0\0` identifier in front of it.
        let tiff = exif.map(|block| block.strip_prefix(b"Exif\0\0").unwrap_or(block));
        tiff.and_then(::image::metadata::Orientation::from_exif_chunk).map(::image::metadata::Orientation::to_exif)
    }
}

/// A decoded image and its EXIF orientation, if it has one and the options ask for it.
struct Decoded {
    image: RgbImage,
    orientation: Option<u8>,
}

/// Builds an [`RgbImage`] from interleaved 8-bit samples with `channels` per pixel. It keeps
/// the first three (RGB) or replicates the first (grey), and drops the rest, which is alpha.
fn rgb_from_interleaved(width: u32, height: u32, samples: &[u8], grey: bool, channels: usize) -> RgbImage {
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for pixel in samples.chunks_exact(channels) {
        if grey {
            data.extend_from_slice(&[pixel[0]; 3]);
        } else {
            data.extend_from_slice(&pixel[..3]);
        }
    }
    RgbImage { width, height, data }
}

/// Applies Pillow's `CMYK` to `RGB` conversion to one pixel: each channel is
/// `(255 - K) - MULDIV255(C, 255 - K)`, where `MULDIV255` rounds `a * b / 255`.
fn cmyk_to_rgb(cmyk: [u8; 4]) -> [u8; 3] {
    let not_k = 255 - u32::from(cmyk[3]);
    let channel = |c: u8| {
        let t = u32::from(c) * not_k + 128;
        let product = ((t >> 8) + t) >> 8;
        not_k.saturating_sub(product) as u8
    };
    [channel(cmyk[0]), channel(cmyk[1]), channel(cmyk[2])]
}

/// Decodes WebP with `image-webp`; alpha is dropped. Lossless WebP and the alpha plane are
/// exact by construction; lossy WebP matches libwebp on the fixtures (see the tests).
fn decode_webp(source: &Source) -> Result<Decoded, ImageError> {
    const FORMAT: &str = "WebP";
    let mut decoder = ::image::codecs::webp::WebPDecoder::new(Cursor::new(source.bytes))
        .map_err(|e| source.decode_error(FORMAT, e))?;
    let (width, height) = decoder.dimensions();
    source.check_dimensions(FORMAT, width.into(), height.into())?;
    let orientation =
        if source.options.apply_exif_orientation { decoder.orientation().ok().map(|o| o.to_exif()) } else { None };
    let channels = usize::from(decoder.color_type().channel_count());
    let mut samples = vec![0_u8; decoder.total_bytes() as usize];
    decoder.read_image(&mut samples).map_err(|e| source.decode_error(FORMAT, e))?;
    Ok(Decoded { image: rgb_from_interleaved(width, height, &samples, false, channels), orientation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_matches_pillow_values() {
        // Values printed by Pillow 13: Image.frombytes("CMYK", ...).convert("RGB").
        assert_eq!(cmyk_to_rgb([0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb([255, 255, 255, 255]), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb([255, 0, 0, 0]), [0, 255, 255]);
        assert_eq!(cmyk_to_rgb([128, 128, 128, 128]), [63, 63, 63]);
        assert_eq!(cmyk_to_rgb([10, 200, 30, 77]), [171, 38, 157]);
    }

    #[test]
    fn format_detection() {
        assert_eq!(Format::detect(b"\xFF\xD8\xFF\xE0"), Some(Format::Jpeg));
        assert_eq!(Format::detect(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::WebP));
        assert_eq!(Format::detect(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(Format::detect(b"MM\0*"), Some(Format::Tiff));
        assert_eq!(Format::detect(b""), None);
    }
}
