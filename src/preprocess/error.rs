//! The error type of image decoding and preprocessing.

use std::path::PathBuf;

/// An error from decoding an image, reading a preprocessor config or resizing.
///
/// Every variant names the input at fault: the file path for [`decode_file`] and
/// [`PreprocessConfig::from_file`], or `the encoded image` / `config JSON` for in-memory input.
///
/// [`decode_file`]: crate::preprocess::decode_file
/// [`PreprocessConfig::from_file`]: crate::preprocess::PreprocessConfig::from_file
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file that was read.
        path: PathBuf,
        /// The error from the operating system.
        source: std::io::Error,
    },

    /// The input is empty, so there is nothing to decode.
    #[error("{input} is empty (0 bytes); pass a JPEG, PNG, WebP, GIF, BMP or TIFF file")]
    Empty {
        /// The file path or `the encoded image`.
        input: String,
    },

    /// The input starts with no signature of a supported format.
    #[error(
        "{input} is not in a supported image format (JPEG, PNG, WebP, GIF, BMP, TIFF); \
         the first bytes are {signature}"
    )]
    UnsupportedFormat {
        /// The file path or `the encoded image`.
        input: String,
        /// The first bytes of the input in hexadecimal.
        signature: String,
    },

    /// The format is recognised but this kind of image in it is not decoded.
    #[error("{input}: unsupported {format} image: {detail}; convert it to 8-bit RGB PNG or JPEG")]
    UnsupportedImage {
        /// The file path or `the encoded image`.
        input: String,
        /// The container format, such as `TIFF`.
        format: &'static str,
        /// The unsupported feature, such as the sample layout.
        detail: String,
    },

    /// The image declares more pixels than [`DecodeOptions::max_pixels`] allows.
    ///
    /// [`DecodeOptions::max_pixels`]: crate::preprocess::DecodeOptions::max_pixels
    #[error(
        "{input}: the image is {width}x{height} ({pixels} pixels), more than the limit of \
         {max_pixels} pixels; downscale it first or raise the limit (--max-image-pixels on the command \
         line, max_image_pixels in ModelOptions or jclip_options)"
    )]
    TooManyPixels {
        /// The file path or `the encoded image`.
        input: String,
        /// The declared width.
        width: u64,
        /// The declared height.
        height: u64,
        /// `width * height`.
        pixels: u64,
        /// The limit that was exceeded.
        max_pixels: u64,
    },

    /// The data is corrupt or truncated, or the decoder failed on it.
    #[error("failed to decode {format} from {input}: {message}; the file is corrupt or truncated")]
    Decode {
        /// The file path or `the encoded image`.
        input: String,
        /// The container format, such as `PNG`.
        format: &'static str,
        /// The message of the underlying decoder.
        message: String,
    },

    /// The preprocessor config is not valid JSON or has a value of the wrong type.
    #[error("invalid preprocessor config {input}: {message}")]
    InvalidConfig {
        /// The file path or `config JSON`.
        input: String,
        /// The problem found.
        message: String,
    },

    /// The preprocessor config requests a transform that the engine does not implement.
    #[error(
        "unsupported preprocessor config {input}: {key} = {value}; the engine implements only \
         {supported}"
    )]
    UnsupportedConfig {
        /// The file path or `config JSON`.
        input: String,
        /// The JSON key.
        key: &'static str,
        /// The rejected value as JSON.
        value: String,
        /// The values the engine accepts.
        supported: &'static str,
    },

    /// An image has a zero width or height, or a requested size is zero.
    #[error("invalid {subject}: {width}x{height}; both sides must be at least 1 pixel")]
    EmptyDimensions {
        /// The object that has the dimensions, such as `input image`.
        subject: &'static str,
        /// The width.
        width: u64,
        /// The height.
        height: u64,
    },

    /// A crop size above [`MAX_IMAGE_SIZE`](crate::preprocess::MAX_IMAGE_SIZE).
    #[error("crop size {size} is above the maximum of {max}; use a size from 1 to {max}")]
    SizeTooLarge {
        /// The requested crop size.
        size: u32,
        /// The largest crop size.
        max: u32,
    },

    /// A resize would produce an image too large to allocate.
    #[error(
        "resizing a {in_width}x{in_height} image so that its shortest side is {size} gives \
         {out_width}x{out_height} pixels, more than the limit of {limit}; use \
         resize_and_crop, which computes only the centre crop"
    )]
    ResizeTooLarge {
        /// The input width.
        in_width: u32,
        /// The input height.
        in_height: u32,
        /// The requested shortest side.
        size: u32,
        /// The width that the resize would produce.
        out_width: u64,
        /// The height that the resize would produce.
        out_height: u64,
        /// The largest output in pixels.
        limit: u64,
    },
}
