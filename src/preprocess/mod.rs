//! Image decoding and preprocessing that match the PyTorch reference bit for bit.
//!
//! The reference is jina-clip-v1's image transform run on a Pillow image:
//!
//! ```text
//! PIL.Image.open(path).convert("RGB")
//! torchvision Resize(size, BICUBIC)   shortest side -> size, long side int(size * long / short)
//! torchvision CenterCrop(size)        offsets int(round((side - size) / 2)), half to even
//! torchvision ToTensor                uint8 -> float32 / 255, HWC -> CHW
//! torchvision Normalize(mean, std)    float32 (x - mean) / std
//! ```
//!
//! [`decode`] reproduces Pillow 13's decoding and conversion to RGB. Its docs list the rules
//! per format, and JPEG goes through a port of libjpeg-turbo's integer IDCT and upsampling.
//! [`resize_and_crop`] reproduces the resize and crop exactly (uint8 equality), and
//! [`normalize_chw`] reproduces the float32 operations of `ToTensor` and `Normalize` with the
//! same rounding. [`preprocess`] therefore returns the reference tensor bit for bit on every
//! fixture of `tests/fixtures/pillow`.

mod config;
mod decode;
mod error;
mod orientation;
mod resample;

use std::ops::Range;

pub use config::{DEFAULT_IMAGE_SIZE, MAX_IMAGE_SIZE, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PreprocessConfig};
pub use decode::{DEFAULT_MAX_PIXELS, DecodeOptions, decode, decode_file};
pub use error::ImageError;

/// Largest image that [`resize_shortest_bicubic`] returns, in pixels (3 GiB as RGB8).
/// Larger outputs come from extreme aspect ratios; [`resize_and_crop`] handles those because
/// it computes only the crop.
pub const MAX_RESIZE_PIXELS: u64 = 1 << 30;

/// An 8-bit RGB image.
///
/// `data` contains `height` rows of `width` pixels, each pixel three bytes R, G, B, with no
/// padding (HWC order). The functions of this module panic on an image whose
/// `data.len()` is not `width * height * 3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples in row-major HWC order.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Returns the R, G, B samples of the pixel at column `x`, row `y`.
    ///
    /// # Panics
    /// If the pixel is outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(x < self.width && y < self.height, "pixel ({x}, {y}) outside the image");
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    fn assert_consistent(&self) {
        let expected = self.width as usize * self.height as usize * 3;
        assert_eq!(
            self.data.len(),
            expected,
            "RgbImage of {}x{} has {} bytes of data, expected {expected}",
            self.width,
            self.height,
            self.data.len()
        );
    }
}

/// Computes the size of the image after torchvision's `Resize(size)`: the shortest side
/// becomes `size` and the long side `int(size * long / short)`, as (width, height).
///
/// Python divides in double precision and truncates. While `size * long` is at most 2^53, the
/// double quotient is never rounded up to the next integer, because that would need
/// `short * quotient > 2^53`. Integer division therefore gives the same result. Above 2^53,
/// which no `size` up to [`MAX_IMAGE_SIZE`] reaches, it can differ from Python by one.
pub fn resized_dimensions(width: u32, height: u32, size: u32) -> (u64, u64) {
    let (short, long) = (width.min(height), width.max(height));
    let new_long = (u64::from(size) * u64::from(long)).checked_div(u64::from(short)).unwrap_or(0);
    if width <= height { (u64::from(size), new_long) } else { (new_long, u64::from(size)) }
}

/// Computes the offset of a centre crop of `crop` samples out of `full` samples as
/// torchvision does: `int(round((full - crop) / 2))`, where Python rounds halves to even
/// (0.5 -> 0, 1.5 -> 2, 2.5 -> 2).
///
/// # Panics
/// If `crop > full`.
pub fn center_crop_offset(full: u64, crop: u64) -> u64 {
    assert!(crop <= full, "crop {crop} larger than {full}");
    let excess = full - crop;
    let half = excess / 2;
    if excess % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
}

/// Resizes `image` so that its shortest side is `size` with Pillow's bicubic filter, as
/// torchvision's `Resize(size, interpolation=BICUBIC)` does on a Pillow image.
///
/// An image that already has the target size is returned unchanged, as Pillow returns a copy.
/// Fails when the image or `size` is empty, or when the output has more than
/// [`MAX_RESIZE_PIXELS`] pixels.
pub fn resize_shortest_bicubic(image: &RgbImage, size: u32) -> Result<RgbImage, ImageError> {
    image.assert_consistent();
    check_resize_input(image, size)?;
    let (out_width, out_height) = resized_dimensions(image.width, image.height, size);
    if out_width.saturating_mul(out_height) > MAX_RESIZE_PIXELS {
        return Err(ImageError::ResizeTooLarge {
            in_width: image.width,
            in_height: image.height,
            size,
            out_width,
            out_height,
            limit: MAX_RESIZE_PIXELS,
        });
    }
    Ok(resample::resample_window(image, out_width, out_height, 0..out_width, 0..out_height))
}

fn check_resize_input(image: &RgbImage, size: u32) -> Result<(), ImageError> {
    if image.width == 0 || image.height == 0 {
        return Err(ImageError::EmptyDimensions {
            subject: "input image",
            width: image.width.into(),
            height: image.height.into(),
        });
    }
    if size == 0 {
        return Err(ImageError::EmptyDimensions { subject: "target size", width: 0, height: 0 });
    }
    Ok(())
}

/// Crops the centre `size` x `size` of `image` as torchvision's `CenterCrop(size)` does.
///
/// A side shorter than `size` is first padded with black, `(size - side) / 2` pixels
/// (rounded down) before and the rest after, as torchvision pads.
pub fn center_crop(image: &RgbImage, size: u32) -> RgbImage {
    image.assert_consistent();
    let columns = crop_source_range(image.width, size);
    let rows = crop_source_range(image.height, size);
    let size = size as usize;
    let stride = image.width as usize * 3;
    let mut data = vec![0_u8; size * size * 3];
    for (out_y, y) in rows.enumerate() {
        let Some(y) = y else { continue };
        let out_row = &mut data[out_y * size * 3..(out_y + 1) * size * 3];
        for (out_x, x) in columns.clone().enumerate() {
            if let Some(x) = x {
                let i = y * stride + x * 3;
                out_row[out_x * 3..out_x * 3 + 3].copy_from_slice(&image.data[i..i + 3]);
            }
        }
    }
    RgbImage { width: size as u32, height: size as u32, data }
}

/// Maps each of the `crop` output positions of one axis to its source index, or `None` for
/// padding.
fn crop_source_range(side: u32, crop: u32) -> impl Iterator<Item = Option<usize>> + Clone {
    let (side, crop) = (i64::from(side), i64::from(crop));
    let (pad_before, padded) = if crop > side { ((crop - side) / 2, crop) } else { (0, side) };
    let offset = center_crop_offset(padded as u64, crop as u64) as i64;
    (0..crop).map(move |i| {
        let source = i + offset - pad_before;
        (0..side).contains(&source).then_some(source as usize)
    })
}

/// Resizes the shortest side of `image` to `config.size` and crops the centre square, equal
/// to [`center_crop`] of [`resize_shortest_bicubic`] but without building the whole resized
/// image, so extreme aspect ratios cost no more than the crop.
///
/// Fails when the image is empty, or `config.size` is 0 or above [`MAX_IMAGE_SIZE`].
pub fn resize_and_crop(image: &RgbImage, config: &PreprocessConfig) -> Result<RgbImage, ImageError> {
    image.assert_consistent();
    let size = config.size;
    check_resize_input(image, size)?;
    if size > MAX_IMAGE_SIZE {
        return Err(ImageError::SizeTooLarge { size, max: MAX_IMAGE_SIZE });
    }
    let (out_width, out_height) = resized_dimensions(image.width, image.height, size);
    let window = |full: u64| -> Range<u64> {
        let start = center_crop_offset(full, size.into());
        start..start + u64::from(size)
    };
    Ok(resample::resample_window(image, out_width, out_height, window(out_width), window(out_height)))
}

/// Converts `image` to a float32 tensor of shape `[3, height, width]` (CHW), computing
/// `(x / 255 - mean[c]) / std[c]` per sample in float32 with the operation order of
/// torchvision's `ToTensor` and `Normalize`, so the bits equal the reference.
pub fn normalize_chw(image: &RgbImage, config: &PreprocessConfig) -> Vec<f32> {
    image.assert_consistent();
    let plane = image.width as usize * image.height as usize;
    let mut tensor = vec![0.0_f32; 3 * plane];
    for (c, out) in tensor.chunks_exact_mut(plane.max(1)).enumerate().take(3) {
        let (mean, std) = (config.mean[c], config.std[c]);
        for (o, pixel) in out.iter_mut().zip(image.data.chunks_exact(3)) {
            let x = f32::from(pixel[c]) / 255.0;
            *o = (x - mean) / std;
        }
    }
    tensor
}

/// Runs the whole transform: [`resize_and_crop`], then [`normalize_chw`]. Returns a
/// `[3, size, size]` float32 tensor.
pub fn preprocess(image: &RgbImage, config: &PreprocessConfig) -> Result<Vec<f32>, ImageError> {
    let crop = resize_and_crop(image, config)?;
    Ok(normalize_chw(&crop, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offset_rounds_half_to_even() {
        // (full - crop) / 2 = 0.5, 1.5, 2.5, 38.5, 39.5
        let cases = [(1, 0), (3, 2), (5, 2), (77, 38), (79, 40), (0, 0), (4, 2), (2, 1)];
        for (excess, offset) in cases {
            assert_eq!(center_crop_offset(224 + excess, 224), offset, "excess {excess}");
        }
    }

    #[test]
    fn size_rule_truncates() {
        assert_eq!(resized_dimensions(1000, 750, 224), (298, 224));
        assert_eq!(resized_dimensions(750, 1000, 224), (224, 298));
        assert_eq!(resized_dimensions(224, 224, 224), (224, 224));
        assert_eq!(resized_dimensions(1, 1, 224), (224, 224));
        assert_eq!(resized_dimensions(3, 500, 224), (224, 37_333));
        assert_eq!(resized_dimensions(1, 7, 224), (224, 1568));
        // 224 * 333 / 100 = 745.92 -> 745
        assert_eq!(resized_dimensions(333, 100, 224), (745, 224));
        assert_eq!(resized_dimensions(u32::MAX, 1, 224), (224 * u64::from(u32::MAX), 224));
    }

    #[test]
    fn center_crop_pads_small_images() {
        let image = RgbImage { width: 1, height: 2, data: vec![10, 11, 12, 20, 21, 22] };
        let crop = center_crop(&image, 4);
        // Columns: padding 1 before, 2 after. Rows: padding 1 before, 1 after.
        assert_eq!(crop.pixel(1, 1), [10, 11, 12]);
        assert_eq!(crop.pixel(1, 2), [20, 21, 22]);
        assert_eq!(crop.pixel(0, 1), [0, 0, 0]);
        assert_eq!(crop.pixel(1, 0), [0, 0, 0]);
        assert_eq!(crop.pixel(2, 2), [0, 0, 0]);
    }

    #[test]
    fn empty_inputs_fail() {
        let empty = RgbImage { width: 0, height: 5, data: vec![] };
        let err = resize_shortest_bicubic(&empty, 224).unwrap_err();
        assert!(matches!(err, ImageError::EmptyDimensions { .. }), "{err:?}");
        let one = RgbImage { width: 1, height: 1, data: vec![1, 2, 3] };
        let err = resize_shortest_bicubic(&one, 0).unwrap_err();
        assert!(matches!(err, ImageError::EmptyDimensions { .. }), "{err:?}");
    }

    #[test]
    fn absurd_resize_fails() {
        let line = RgbImage { width: 100_000, height: 1, data: vec![7; 300_000] };
        let err = resize_shortest_bicubic(&line, 224).unwrap_err();
        assert!(matches!(err, ImageError::ResizeTooLarge { .. }), "{err:?}");
        let crop = resize_and_crop(&line, &PreprocessConfig::default()).unwrap();
        assert_eq!((crop.width, crop.height), (224, 224));
        assert!(crop.data.iter().all(|&v| v == 7));

        let huge = PreprocessConfig { size: MAX_IMAGE_SIZE + 1, ..PreprocessConfig::default() };
        let err = resize_and_crop(&line, &huge).unwrap_err();
        assert!(matches!(err, ImageError::SizeTooLarge { .. }), "{err:?}");
    }
}
