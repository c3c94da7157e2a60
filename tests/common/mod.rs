//! Helpers shared by the integration tests: synthetic models, reference
//! fixtures, comparisons and a minimal `.npy` reader.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use jclip::preprocess::RgbImage;

use jclip::synth::{Preset, SynthDtype, SynthNaming, SynthOptions, write_model_dir};

/// Writes a synthetic model directory into a fresh temporary directory.
pub fn synth_model(preset: Preset, naming: SynthNaming, dtype: SynthDtype) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let options = SynthOptions { preset, seed: preset.default_seed(), dtype, naming };
    write_model_dir(dir.path(), &options).expect("write a synthetic model");
    dir
}

/// Returns the largest absolute difference, after checking the lengths agree.
pub fn max_abs_diff(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0, f32::max)
}

/// Asserts `actual` is within `tolerance` of `expected` everywhere, naming the first mismatch.
pub fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: {} values, expected {}", actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "{what}: element {i} is {a}, expected {e} (max difference {}, tolerance {tolerance})",
            max_abs_diff(actual, expected)
        );
    }
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A tensor as raw little-endian bytes, for rewriting checkpoints in tests.
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Rewrites `dir/model.safetensors`: `edit` may change or drop (`None`) each tensor.
pub fn rewrite_checkpoint(dir: &Path, mut edit: impl FnMut(&str, RawTensor) -> Option<RawTensor>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, RawTensor)> = Vec::new();
    for (name, view) in tensors.tensors() {
        let raw = RawTensor { dtype: view.dtype(), shape: view.shape().to_vec(), data: view.data().to_vec() };
        if let Some(raw) = edit(&name, raw) {
            kept.push((name, raw));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = kept
        .iter()
        .map(|(name, raw)| {
            (name.clone(), safetensors::tensor::TensorView::new(raw.dtype, raw.shape.clone(), &raw.data).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

/// Root of the committed fixtures.
pub fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A reference case written by `tools/reference/make_fixtures.py`: its JSON
/// description and its tensors.
pub struct ReferenceCase {
    pub name: String,
    pub json: serde_json::Value,
    bytes: Vec<u8>,
}

impl ReferenceCase {
    /// Loads `tests/fixtures/reference/<name>.{json,safetensors}`.
    pub fn load(name: &str) -> ReferenceCase {
        let dir = fixtures().join("reference");
        let json_path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&json_path).unwrap_or_else(|e| panic!("read {}: {e}", json_path.display()));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json["format_version"], 1,
            "{name}: unknown fixture format; regenerate with tools/reference/make_fixtures.py"
        );
        let bytes = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
        ReferenceCase { name: name.to_string(), json, bytes }
    }

    /// Returns the f32 tensor `key`, or `None` when the case does not store it.
    pub fn tensor(&self, key: &str) -> Option<Vec<f32>> {
        let tensors = safetensors::SafeTensors::deserialize(&self.bytes).unwrap();
        let view = tensors.tensor(key).ok()?;
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{}: {key} is not F32", self.name);
        Some(view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Returns the f32 tensor `key`, panicking with the regeneration hint when absent.
    pub fn required(&self, key: &str) -> Vec<f32> {
        self.tensor(key).unwrap_or_else(|| {
            panic!(
                "{}: fixture tensor {key} is missing; run tools/reference/make_fixtures.py --case {}",
                self.name, self.name
            )
        })
    }

    pub fn texts(&self) -> &Vec<serde_json::Value> {
        self.json["texts"].as_array().expect("texts array")
    }

    pub fn images(&self) -> &Vec<serde_json::Value> {
        self.json["images"].as_array().expect("images array")
    }

    /// The synthetic checkpoint options of the case.
    pub fn synth_options(&self) -> SynthOptions {
        let preset = Preset::from_name(self.json["preset"].as_str().unwrap()).expect("known preset");
        let dtype = SynthDtype::from_name(self.json["dtype"].as_str().unwrap()).expect("known dtype");
        SynthOptions { preset, seed: self.json["seed"].as_u64().unwrap(), dtype, naming: SynthNaming::Flash }
    }

    /// Writes the case's synthetic checkpoint into a temporary directory.
    pub fn synth_model(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        write_model_dir(dir.path(), &self.synth_options()).expect("write a synthetic model");
        dir
    }
}

/// Returns the path of a file under `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(relative)
}

/// An array read from a version 1 `.npy` file: its shape and raw little-endian data.
pub struct Npy {
    pub shape: Vec<usize>,
    pub descr: String,
    pub data: Vec<u8>,
}

/// Reads a C-order `.npy` file (format version 1.0).
pub fn read_npy(relative: &str) -> Npy {
    let path = fixture(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{} is not .npy", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let descr = header.split("'descr': '").nth(1).and_then(|s| s.split('\'').next()).unwrap().to_string();
    let shape_text = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).unwrap();
    let shape = shape_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    Npy { shape, descr, data: bytes[10 + header_len..].to_vec() }
}

/// Reads an `(H, W, 3)` uint8 `.npy` file as an image.
pub fn read_rgb_npy(relative: &str) -> RgbImage {
    let npy = read_npy(relative);
    assert_eq!(npy.descr, "|u1", "{relative}");
    assert_eq!(npy.shape.len(), 3, "{relative}");
    assert_eq!(npy.shape[2], 3, "{relative}");
    RgbImage { width: npy.shape[1] as u32, height: npy.shape[0] as u32, data: npy.data }
}

/// Differences between two images of the same size.
#[derive(Debug)]
pub struct Difference {
    /// Largest absolute difference of one sample.
    pub max: u8,
    /// Number of samples that differ.
    pub differing: usize,
    /// Number of samples compared.
    pub total: usize,
    /// Position (x, y, channel) of the first differing sample.
    pub first: Option<(usize, usize, usize)>,
}

impl Difference {
    pub fn share(&self) -> f64 {
        self.differing as f64 / self.total as f64
    }
}

/// Compares two images sample by sample.
///
/// # Panics
/// If the sizes differ.
pub fn difference(actual: &RgbImage, expected: &RgbImage) -> Difference {
    assert_eq!((actual.width, actual.height), (expected.width, expected.height), "image sizes differ");
    let mut result = Difference { max: 0, differing: 0, total: actual.data.len(), first: None };
    for (i, (&a, &e)) in actual.data.iter().zip(&expected.data).enumerate() {
        if a != e {
            result.differing += 1;
            result.max = result.max.max(a.abs_diff(e));
            if result.first.is_none() {
                let pixel = i / 3;
                let width = actual.width as usize;
                result.first = Some((pixel % width, pixel / width, i % 3));
            }
        }
    }
    result
}
