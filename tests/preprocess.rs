//! Preprocessing against the Pillow + torchvision reference: the golden crops of the five
//! photos and the generated fixture sweep of `tools/reference/pillow_fixtures.py`. Every
//! comparison is exact: uint8 equality of decoded images and crops, float32 bit equality of
//! normalised tensors.
//!
//! Regenerate the sweep with (Pillow 13, torchvision; see `tests/fixtures/pillow/README.md`)
//! `python tools/reference/pillow_fixtures.py tests/fixtures/pillow`.

mod common;

use std::path::PathBuf;

use common::{difference, read_rgb_npy};
use jclip::preprocess::{
    DecodeOptions, PreprocessConfig, RgbImage, decode_file, normalize_chw, preprocess, resize_and_crop,
};
use serde_json::Value;

/// Number of cases that decode to an image (all but the `error` cases).
const IMAGE_CASES: usize = 114;

/// Number of cases with an EXIF or TIFF orientation.
const ORIENTATION_CASES: usize = 11;

#[test]
fn golden_crops_exact() {
    let names = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg"];
    for name in names {
        let path = common::fixture(&format!("images/{name}"));
        let image = decode_file(&path, &DecodeOptions::default()).unwrap();
        let crop = resize_and_crop(&image, &PreprocessConfig::default()).unwrap();
        let expected = read_rgb_npy(&format!("pillow/golden/{name}.u8.npy"));
        let diff = difference(&crop, &expected);
        assert_eq!(diff.differing, 0, "{name}: {diff:?}");
    }
}

/// One fixture of `tests/fixtures/pillow/manifest.json`.
struct Case {
    name: String,
    kind: String,
    input: PathBuf,
    size: u32,
    entry: Value,
}

impl Case {
    /// A fixture path stored under `key`, relative to `tests/fixtures`.
    fn path(&self, key: &str) -> Option<String> {
        self.entry[key].as_str().map(|p| format!("pillow/{p}"))
    }
}

fn manifest_cases() -> Vec<Case> {
    let path = common::fixture("pillow/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest["format_version"], 1, "regenerate the fixtures with tools/reference/pillow_fixtures.py");
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| Case {
            name: entry["name"].as_str().unwrap().to_string(),
            kind: entry["kind"].as_str().unwrap().to_string(),
            input: common::fixture(&format!("pillow/{}", entry["input"].as_str().unwrap())),
            size: entry["size"].as_u64().unwrap_or(0) as u32,
            entry: entry.clone(),
        })
        .collect()
}

/// 64-bit FNV-1a over the little-endian bytes of a float32 tensor, as the generator computes.
fn fnv1a64(tensor: &[f32]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for value in tensor {
        for byte in value.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn config_of(size: u32) -> PreprocessConfig {
    PreprocessConfig { size, ..PreprocessConfig::default() }
}

/// Compares two images and describes the first difference, if any.
fn compare(name: &str, stage: &str, actual: &RgbImage, expected: &RgbImage) -> Option<String> {
    if (actual.width, actual.height) != (expected.width, expected.height) {
        return Some(format!(
            "{name} {stage}: {}x{}, Pillow {}x{}",
            actual.width, actual.height, expected.width, expected.height
        ));
    }
    let diff = difference(actual, expected);
    (diff.differing > 0).then(|| format!("{name} {stage}: {diff:?}"))
}

#[test]
fn pillow_fixture_sweep() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in manifest_cases() {
        if case.kind == "error" {
            continue;
        }
        checked += 1;
        let image = match decode_file(&case.input, &DecodeOptions::default()) {
            Ok(image) => image,
            Err(e) => {
                failures.push(format!("{}: decode failed: {e}", case.name));
                continue;
            }
        };
        if let Some(decoded) = case.path("decoded") {
            failures.extend(compare(&case.name, "decoded", &image, &read_rgb_npy(&decoded)));
        }
        let crop = resize_and_crop(&image, &config_of(case.size)).unwrap();
        let expected_crop = read_rgb_npy(&case.path("crop").unwrap());
        failures.extend(compare(&case.name, "crop", &crop, &expected_crop));
        if let Some(checksum) = case.entry["tensor_fnv1a64"].as_str() {
            let tensor = preprocess(&image, &config_of(case.size)).unwrap();
            if fnv1a64(&tensor) != checksum {
                failures.push(format!("{}: normalised tensor checksum differs", case.name));
            }
        }
    }
    assert_eq!(checked, IMAGE_CASES, "fixture count");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn exif_orientation_applied_on_request() {
    let options = DecodeOptions { apply_exif_orientation: true, ..DecodeOptions::default() };
    let mut checked = 0;
    for case in manifest_cases() {
        let Some(oriented) = case.path("oriented") else {
            continue;
        };
        checked += 1;
        let image = decode_file(&case.input, &options).unwrap();
        let failure = compare(&case.name, "oriented", &image, &read_rgb_npy(&oriented));
        assert!(failure.is_none(), "{failure:?}");
    }
    assert_eq!(checked, ORIENTATION_CASES, "orientation fixtures");
}

#[test]
fn exif_orientation_ignored_by_default() {
    // The reference ignores EXIF orientation in PNG, JPEG and WebP; the sweep checks that the
    // default decode equals Pillow's unrotated image. This checks one case directly.
    let path = common::fixture("pillow/inputs/png_exif_orientation6.png");
    let image = decode_file(&path, &DecodeOptions::default()).unwrap();
    assert_eq!((image.width, image.height), (29, 23));
}

#[test]
fn normalize_matches_torchvision_bits() {
    // All 256 levels in each channel, normalised by torchvision with the CLIP mean and std.
    let path = common::fixture("pillow/inputs/values.png");
    let image = decode_file(&path, &DecodeOptions::default()).unwrap();
    let config = config_of(16);
    let tensor = normalize_chw(&image, &config);
    let expected = common::read_npy("pillow/expected/values.f32.npy");
    assert_eq!(expected.shape, [3, 16, 16]);
    assert_eq!(expected.descr, "<f4");
    for (i, (actual, bytes)) in tensor.iter().zip(expected.data.chunks_exact(4)).enumerate() {
        let reference = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        assert_eq!(actual.to_bits(), reference.to_bits(), "element {i}: {actual} != {reference}");
    }
    assert_eq!(preprocess(&image, &config).unwrap(), tensor);
}
