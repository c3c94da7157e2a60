//! Lower precisions and `jclip convert`. Packed files load in place and give
//! the same vectors as packing at load, and each precision stays within its
//! published accuracy on the full-size shape.

mod common;

use std::path::Path;

use common::{cosine, fixture, synth_model};
use jclip::synth::{Preset, SynthDtype, SynthNaming};
use jclip::{Error, Model, ModelOptions, Precision};

/// Returns every precision the engine offers.
fn precisions() -> &'static [Precision] {
    Precision::ALL
}

fn open(dir: &Path, precision: Option<Precision>) -> Model {
    let mut options = ModelOptions::default().threads(2);
    options.precision = precision;
    Model::open(dir, &options).unwrap_or_else(|e| panic!("open {} as {precision:?}: {e}", dir.display()))
}

/// Texts of about 8, 64 and 512 tokens.
fn texts() -> Vec<String> {
    let sentence = "A small red boat drifts past the old stone harbour while gulls circle overhead. ";
    vec!["a photo of a cat".to_string(), sentence.repeat(4), sentence.repeat(40)]
}

fn images() -> Vec<std::path::PathBuf> {
    ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
        .iter()
        .map(|n| fixture(&format!("images/{n}")))
        .collect()
}

fn embed_all(model: &Model) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = model.embed_texts(&texts(), true).unwrap().into_iter().map(|e| e.embedding).collect();
    if model.image_dim().is_some() {
        out.extend(model.embed_image_files(&images(), true).unwrap().into_iter().map(|e| e.embedding));
    }
    out
}

#[test]
fn converted_directory_loads_in_place_and_matches_packing_at_load() {
    let original = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    for &precision in precisions() {
        let out = tempfile::tempdir().unwrap();
        let converted = out.path().join("converted");
        let summary = jclip::convert::convert(original.path(), &converted, precision).unwrap();
        assert!(summary.matrices > 0);
        for name in ["config.json", "tokenizer.json", "preprocessor_config.json", "model.safetensors"] {
            assert!(converted.join(name).is_file(), "{name} missing after converting to {precision}");
        }

        let at_load = open(original.path(), Some(precision));
        assert!(!at_load.weights_in_place());
        let in_place = open(&converted, None);
        assert!(in_place.weights_in_place(), "{precision}: the converted weights were not mapped in place");
        assert_eq!(in_place.precision(), precision);
        // The same packed bytes give bitwise the same vectors.
        assert_eq!(
            embed_all(&in_place),
            embed_all(&at_load),
            "{precision}: converted file differs from packing at load"
        );

        // Requesting the file's own precision works. Another precision is an error that names the fix.
        open(&converted, Some(precision));
        let other = precisions().iter().copied().find(|&p| p != precision).unwrap();
        match Model::open(&converted, &ModelOptions::default().precision(other)) {
            Err(Error::InvalidOption { name: "precision", reason, .. }) => {
                assert!(reason.contains("original checkpoint"), "{reason}")
            }
            other => panic!("opening a {precision} file as another precision gave {other:?}"),
        }
    }
}

#[test]
fn converting_classic_names_and_bf16_storage_works() {
    for (naming, dtype) in [(SynthNaming::Classic, SynthDtype::BF16), (SynthNaming::BareText, SynthDtype::F16)] {
        let original = synth_model(Preset::Tiny, naming, dtype);
        let out = tempfile::tempdir().unwrap();
        let converted = out.path().join("m");
        jclip::convert::convert(original.path(), &converted, Precision::F16).unwrap();
        let at_load = open(original.path(), Some(Precision::F16));
        let in_place = open(&converted, None);
        assert!(in_place.weights_in_place());
        assert_eq!(embed_all(&in_place), embed_all(&at_load), "{naming:?} {dtype:?}");
    }
}

#[test]
fn convert_refuses_to_overwrite() {
    let original = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let same = jclip::convert::convert(original.path(), original.path(), Precision::BF16);
    assert!(matches!(same, Err(Error::InvalidOption { name: "out", .. })), "{same:?}");

    let busy = tempfile::tempdir().unwrap();
    std::fs::write(busy.path().join("notes.txt"), "keep me").unwrap();
    let result = jclip::convert::convert(original.path(), busy.path(), Precision::BF16);
    match result {
        Err(Error::InvalidOption { name: "out", reason, .. }) => assert!(reason.contains("not empty"), "{reason}"),
        other => panic!("converting into a non-empty directory gave {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(busy.path().join("notes.txt")).unwrap(), "keep me");

    // A converted directory converts again only to its own precision.
    let out = tempfile::tempdir().unwrap();
    let first = out.path().join("bf16");
    jclip::convert::convert(original.path(), &first, Precision::BF16).unwrap();
    let again = jclip::convert::convert(&first, &out.path().join("f16"), Precision::F16);
    assert!(matches!(again, Err(Error::InvalidOption { name: "dtype", .. })), "{again:?}");
    let copy = out.path().join("bf16-copy");
    jclip::convert::convert(&first, &copy, Precision::BF16).unwrap();
    assert_eq!(embed_all(&open(&copy, None)), embed_all(&open(&first, None)));
}

#[test]
fn packed_file_from_another_format_version_is_rejected() {
    let original = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let out = tempfile::tempdir().unwrap();
    let converted = out.path().join("m");
    jclip::convert::convert(original.path(), &converted, Precision::BF16).unwrap();
    let weights = converted.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let edited = header.replace("\"jclip.format_version\":\"1\"", "\"jclip.format_version\":\"9\"");
    assert_ne!(edited, header, "the header names the format version");
    bytes[8..8 + header_len].copy_from_slice(edited.as_bytes());
    std::fs::write(&weights, bytes).unwrap();
    match Model::open(&converted, &ModelOptions::default()) {
        Err(Error::InvalidCheckpoint { message, .. }) => {
            assert!(message.contains("version 9") && message.contains("convert the original"), "{message}")
        }
        other => panic!("a version 9 file gave {other:?}"),
    }
}

/// Smallest cosine to f32 that each precision must keep on the full-size
/// shape, for texts and for images. BENCHMARKS.md publishes the measured values.
fn accuracy_floor(precision: Precision) -> (f64, f64) {
    match precision {
        Precision::F32 => (1.0 - 1e-9, 1.0 - 1e-9),
        Precision::F16 | Precision::BF16 => (0.9999, 0.9999),
        Precision::Int8 => (0.998, 0.995),
    }
}

#[test]
fn full_size_accuracy_of_every_precision() {
    let original = synth_model(Preset::Full, SynthNaming::Flash, SynthDtype::F32);
    let reference = embed_all(&open(original.path(), Some(Precision::F32)));
    let text_count = texts().len();
    for &precision in precisions() {
        let vectors = embed_all(&open(original.path(), Some(precision)));
        let (text_floor, image_floor) = accuracy_floor(precision);
        for (index, (actual, expected)) in vectors.iter().zip(&reference).enumerate() {
            assert!(actual.iter().all(|v| v.is_finite()), "{precision}: input {index} has a non-finite value");
            let similarity = cosine(actual, expected);
            let floor = if index < text_count { text_floor } else { image_floor };
            assert!(similarity >= floor, "{precision}: input {index} has cosine {similarity:.6} to f32, below {floor}");
        }
    }
}
