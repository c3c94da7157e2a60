//! Helpers shared by the preprocessing tests: fixture paths and a minimal `.npy` reader.

#![allow(dead_code)]

use std::path::PathBuf;

use jclip::preprocess::RgbImage;

/// Returns the path of a file under `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
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
    let descr = header
        .split("'descr': '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap()
        .to_string();
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    Npy {
        shape,
        descr,
        data: bytes[10 + header_len..].to_vec(),
    }
}

/// Reads an `(H, W, 3)` uint8 `.npy` file as an image.
pub fn read_rgb_npy(relative: &str) -> RgbImage {
    let npy = read_npy(relative);
    assert_eq!(npy.descr, "|u1", "{relative}");
    assert_eq!(npy.shape.len(), 3, "{relative}");
    assert_eq!(npy.shape[2], 3, "{relative}");
    RgbImage {
        width: npy.shape[1] as u32,
        height: npy.shape[0] as u32,
        data: npy.data,
    }
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
    assert_eq!(
        (actual.width, actual.height),
        (expected.width, expected.height),
        "image sizes differ"
    );
    let mut result = Difference {
        max: 0,
        differing: 0,
        total: actual.data.len(),
        first: None,
    };
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
