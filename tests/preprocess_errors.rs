//! Decoding and config errors: each bad input gives the right `ImageError` variant and a
//! message that names the input, and no input makes the decoder panic.

mod common;

use std::path::Path;

use jclip::preprocess::{DecodeOptions, ImageError, PreprocessConfig, decode, decode_file, resize_and_crop};

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(&format!("pillow/inputs/{name}"))).unwrap()
}

fn decode_bytes(bytes: &[u8]) -> Result<jclip::preprocess::RgbImage, ImageError> {
    decode(bytes, &DecodeOptions::default())
}

/// Decodes damaged data with a 1-megapixel limit, so that a damaged header that declares a
/// large image fails fast instead of allocating.
fn decode_damaged(bytes: &[u8]) -> Result<jclip::preprocess::RgbImage, ImageError> {
    let options = DecodeOptions { max_pixels: 1 << 20, ..DecodeOptions::default() };
    decode(bytes, &options)
}

#[test]
fn zero_bytes_is_empty() {
    let err = decode_bytes(&[]).unwrap_err();
    assert!(matches!(err, ImageError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("the encoded image"), "{err}");
}

#[test]
fn zero_byte_file_names_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.jpg");
    std::fs::write(&path, b"").unwrap();
    let err = decode_file(&path, &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, ImageError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.jpg"), "{err}");
}

#[test]
fn garbage_is_unsupported_format() {
    let err = decode_bytes(b"this is not an image at all").unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedFormat { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("the encoded image"), "{message}");
    assert!(message.contains("74 68 69 73"), "{message}");
}

#[test]
fn signature_then_garbage_is_decode_error() {
    for signature in
        [&b"\x89PNG\r\n\x1a\n"[..], b"\xFF\xD8\xFF\xE0", b"GIF89a", b"BM", b"II*\0", b"RIFF\x10\0\0\0WEBPVP8 "]
    {
        let mut bytes = signature.to_vec();
        bytes.extend_from_slice(&[0x5A; 40]);
        let err = decode_bytes(&bytes).unwrap_err();
        assert!(matches!(err, ImageError::Decode { .. }), "{signature:?}: {err:?}");
        assert!(err.to_string().contains("the encoded image"), "{err}");
    }
}

#[test]
fn missing_file_is_io_error() {
    let path = Path::new("/nonexistent/jclip/photo.png");
    let err = decode_file(path, &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/jclip/photo.png"), "{err}");
}

#[test]
fn truncated_png_fails() {
    let bytes = fixture_bytes("png_rgb8.png");
    for cut in [8, 20, 33, 60, bytes.len() / 2, bytes.len() - 30] {
        let err = decode_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, ImageError::Decode { format: "PNG", .. }), "cut {cut}: {err:?}");
        assert!(err.to_string().contains("the encoded image"), "{err}");
    }
}

#[test]
fn png_without_iend_decodes() {
    // Pillow 13 accepts a PNG that ends after its last IDAT chunk.
    let bytes = fixture_bytes("png_rgb8.png");
    let full = decode_bytes(&bytes).unwrap();
    let without_iend = decode_bytes(&bytes[..bytes.len() - 12]).unwrap();
    assert_eq!(full, without_iend);
}

#[test]
fn truncated_jpeg_fails() {
    let bytes = fixture_bytes("jpeg_420.jpg");
    for cut in [3, 100, bytes.len() / 2, bytes.len() - 2] {
        let err = decode_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, ImageError::Decode { format: "JPEG", .. }), "cut {cut}: {err:?}");
    }
}

#[test]
fn truncated_file_names_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.png");
    let bytes = fixture_bytes("png_rgb8.png");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = decode_file(&path, &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, ImageError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("cut.png"), "{err}");
}

#[test]
fn over_max_pixels_fails() {
    let options = DecodeOptions { max_pixels: 29 * 23 - 1, ..DecodeOptions::default() };
    let err = decode(&fixture_bytes("png_rgb8.png"), &options).unwrap_err();
    match &err {
        ImageError::TooManyPixels { width, height, max_pixels, .. } => {
            assert_eq!((*width, *height, *max_pixels), (29, 23, 29 * 23 - 1))
        }
        other => panic!("expected TooManyPixels, got {other:?}"),
    }
    assert!(err.to_string().contains("--max-image-pixels"), "{err}");
    assert!(err.to_string().contains("max_image_pixels"), "{err}");
    let at_limit = DecodeOptions { max_pixels: 29 * 23, ..DecodeOptions::default() };
    assert!(decode(&fixture_bytes("png_rgb8.png"), &at_limit).is_ok());
}

#[test]
fn huge_declared_sizes_fail_from_header() {
    // Headers that declare tens of gigapixels over a few bytes of data: the limit is
    // checked before any pixel buffer is allocated.
    for name in ["huge_declared_png.png", "huge_declared_jpeg.jpg", "huge_declared_gif.gif"] {
        let path = common::fixture(&format!("pillow/inputs/{name}"));
        let err = decode_file(&path, &DecodeOptions::default()).unwrap_err();
        assert!(matches!(err, ImageError::TooManyPixels { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn palette_tiff_is_unsupported() {
    // The `tiff` crate does not decode palette TIFFs, so the decoder reports an error instead
    // of guessing.
    let mut image = Vec::new();
    let header = b"II*\0\x08\0\0\0";
    image.extend_from_slice(header);
    let tags: [(u16, u16, u32, u32); 9] = [
        (256, 3, 1, 2),
        (257, 3, 1, 1),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 3),
        (273, 4, 1, 8 + 2 + 9 * 12 + 4),
        (277, 3, 1, 1),
        (278, 3, 1, 1),
        (279, 4, 1, 2),
    ];
    image.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in tags {
        image.extend_from_slice(&tag.to_le_bytes());
        image.extend_from_slice(&kind.to_le_bytes());
        image.extend_from_slice(&count.to_le_bytes());
        image.extend_from_slice(&value.to_le_bytes());
    }
    image.extend_from_slice(&[0, 0, 0, 0, 1, 0]);
    let err = decode_bytes(&image).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsupportedImage { format: "TIFF", .. } | ImageError::Decode { format: "TIFF", .. }),
        "{err:?}"
    );
}

#[test]
fn damaged_inputs_never_panic() {
    let dir = common::fixture("pillow/inputs");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for cut in [1, 2, 7, 16, 64, len / 3, len / 2, len - 1] {
            let _ = decode_damaged(&bytes[..cut.min(len)]);
        }
        // Flip bytes across the file, one position at a time.
        for step in 1..24 {
            let mut damaged = bytes.clone();
            let position = len * step / 24;
            damaged[position] ^= 0xA5;
            let _ = decode_damaged(&damaged);
        }
    }
}

#[test]
fn config_file_errors_name_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessor_config.json");
    std::fs::write(&path, r#"{"size": 224, "interpolation": "bilinear"}"#).unwrap();
    let err = PreprocessConfig::from_file(&path).unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedConfig { key: "interpolation", .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("preprocessor_config.json"), "{message}");
    assert!(message.contains("interpolation"), "{message}");
    assert!(message.contains("bilinear"), "{message}");

    std::fs::write(&path, r#"{"size": 224, "resize_mode": "longest"}"#).unwrap();
    let err = PreprocessConfig::from_file(&path).unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedConfig { key: "resize_mode", .. }), "{err:?}");
    assert!(err.to_string().contains("longest"), "{err}");

    std::fs::write(&path, "{ not json").unwrap();
    let err = PreprocessConfig::from_file(&path).unwrap_err();
    assert!(matches!(err, ImageError::InvalidConfig { .. }), "{err:?}");
    assert!(err.to_string().contains("preprocessor_config.json"), "{err}");

    let missing = dir.path().join("missing.json");
    let err = PreprocessConfig::from_file(&missing).unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err:?}");
}

#[test]
fn golden_config_file_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessor_config.json");
    std::fs::write(
        &path,
        r#"{"image_processor_type": "JinaCLIPImageProcessor", "size": 224,
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
            "resize_mode": "shortest", "interpolation": "bicubic", "fill_color": 0}"#,
    )
    .unwrap();
    assert_eq!(PreprocessConfig::from_file(&path).unwrap(), PreprocessConfig::default());
}

#[test]
fn jpeg_byte_flips_never_panic() {
    // The JPEG decoder is this crate's own code: damage every byte of small baseline,
    // progressive and restart-interval files, one at a time.
    for name in ["jpeg_420.jpg", "jpeg_420_progressive.jpg", "jpeg_420_progressive_restart.jpg", "jpeg_cmyk.jpg"] {
        let bytes = fixture_bytes(name);
        for position in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xFF] {
                let mut damaged = bytes.clone();
                damaged[position] ^= mask;
                let _ = decode_damaged(&damaged);
            }
        }
    }
}

#[test]
fn jpeg_with_too_many_scans_fails() {
    // Repeat the first (DC) scan of a progressive file 1001 times: each copy is valid, but
    // the decoder caps the scan count.
    let bytes = fixture_bytes("jpeg_grey_progressive.jpg");
    let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let scan_end = sos + 2 + bytes[sos + 2..].windows(2).position(|w| w[0] == 0xFF && w[1] != 0x00).unwrap();
    let mut many = bytes[..sos].to_vec();
    for _ in 0..1001 {
        many.extend_from_slice(&bytes[sos..scan_end]);
    }
    many.extend_from_slice(&bytes[scan_end..]);
    let err = decode_bytes(&many).unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedImage { format: "JPEG", .. }), "{err:?}");
    assert!(err.to_string().contains("1000 scans"), "{err}");

    let mut some = bytes[..sos].to_vec();
    for _ in 0..3 {
        some.extend_from_slice(&bytes[sos..scan_end]);
    }
    some.extend_from_slice(&bytes[scan_end..]);
    assert_eq!(decode_bytes(&some).unwrap(), decode_bytes(&bytes).unwrap());
}

#[test]
fn tiff_forged_tag_count_fails_cleanly() {
    // An Orientation tag that claims 2^30 values: the decoder must neither abort on the
    // allocation nor panic.
    let mut bytes = fixture_bytes("tiff_orientation6.tif");
    let ifd = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let entries = u16::from_le_bytes([bytes[ifd], bytes[ifd + 1]]) as usize;
    let orientation = (0..entries)
        .map(|i| ifd + 2 + 12 * i)
        .find(|&entry| u16::from_le_bytes([bytes[entry], bytes[entry + 1]]) == 274)
        .expect("fixture has an Orientation tag");
    bytes[orientation + 4..orientation + 8].copy_from_slice(&(1_u32 << 30).to_le_bytes());
    let _ = decode_bytes(&bytes);
}

#[test]
fn random_mutations_never_panic() {
    // Deterministic random damage: up to 6 bytes overwritten, and a quarter of the inputs
    // truncated too, 40 rounds over every fixture input. A 60-second run of this loop found
    // the forged-tag allocation above.
    let dir = common::fixture("pillow/inputs");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let config = PreprocessConfig { size: 16, ..PreprocessConfig::default() };
    for _ in 0..40 {
        for path in &files {
            let mut bytes = std::fs::read(path).unwrap();
            for _ in 0..1 + random() % 6 {
                let position = random() as usize % bytes.len();
                bytes[position] = random() as u8;
            }
            if random() % 4 == 0 {
                let cut = random() as usize % bytes.len();
                bytes.truncate(cut.max(1));
            }
            if let Ok(image) = decode_damaged(&bytes) {
                resize_and_crop(&image, &config).unwrap();
            }
        }
    }
}
