//! Agreement with the PyTorch reference (`tools/reference/`) on synthetic
//! checkpoints: the generator's weights, token ids, every layer's hidden
//! states and the final embeddings, within 1e-4 (fp32).

mod common;

use common::{ReferenceCase, assert_close};
use jclip::text::TokenBatch;
use jclip::{Model, ModelOptions};

/// Maximum absolute difference allowed against the fp32 reference.
const TOLERANCE: f32 = 1e-4;

fn check_weights(case: &ReferenceCase, dir: &std::path::Path) {
    let checkpoint = jclip::weights::Checkpoint::open_dir(dir).unwrap();
    let checks = case.json["weight_checks"].as_object().expect("weight_checks");
    assert!(!checks.is_empty());
    for (name, check) in checks {
        let tensor = checkpoint.get(name).unwrap_or_else(|| panic!("{}: synthetic checkpoint lacks {name}", case.name));
        let values = tensor.to_f32_vec().unwrap();
        let first: Vec<f32> = check["first"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(&values[..first.len()], &first[..], "{}: first values of {name}", case.name);
        let sum: f64 = values.iter().map(|&v| v as f64).sum();
        let expected = check["sum"].as_f64().unwrap();
        assert!(
            (sum - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{}: sum of {name} is {sum}, expected {expected}",
            case.name
        );
    }
}

fn check_texts(case: &ReferenceCase, model: &Model) {
    let texts = case.texts();
    let strings: Vec<&str> = texts.iter().map(|t| t["text"].as_str().unwrap()).collect();
    let encoded = model.encode_texts(&strings).unwrap();
    for (i, (text, encoded)) in texts.iter().zip(&encoded).enumerate() {
        let ids: Vec<u32> = text["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(encoded.ids, ids, "{}: token ids of text {i}", case.name);
        assert_eq!(encoded.truncated, text["truncated"].as_bool().unwrap(), "{}: truncation of text {i}", case.name);
    }

    for (i, text) in texts.iter().enumerate() {
        if !text["hidden_states"].as_bool().unwrap_or(false) {
            continue;
        }
        let mut batch = TokenBatch::default();
        batch.push(&encoded[i].ids);
        let mut layers = 0;
        let mut observe = |layer: usize, hidden: &[f32]| {
            let expected = case.required(&format!("text.{i}.hidden.{layer}"));
            assert_close(hidden, &expected, TOLERANCE, &format!("{}: text {i} hidden state {layer}", case.name));
            layers += 1;
        };
        model.install(|| model.text_tower().forward(model.kernels(), &batch, Some(&mut observe)));
        assert_eq!(layers, model.config().text.num_layers + 1, "{}: observed layers", case.name);
    }

    let raw = model.embed_texts(&strings, false).unwrap();
    let normalized = model.embed_texts(&strings, true).unwrap();
    for i in 0..texts.len() {
        let preview: String = strings[i].chars().take(24).collect();
        let what = format!("{}: text {i} ({preview:?})", case.name);
        assert_close(&raw[i].embedding, &case.required(&format!("text.{i}.embedding")), TOLERANCE, &what);
        assert_close(&normalized[i].embedding, &case.required(&format!("text.{i}.normalized")), TOLERANCE, &what);
    }
}

/// Runs the image tower on the reference's own pixel tensors.
fn check_image_tower(case: &ReferenceCase, model: &Model) -> usize {
    let tower = model.vision_tower().expect("an image tower");
    let mut checked = 0;
    for (i, image) in case.images().iter().enumerate() {
        let Some(pixels) = case.tensor(&format!("image.{i}.pixels")) else {
            continue;
        };
        let with_hidden = image["hidden_states"].as_bool().unwrap_or(false);
        let mut layers = 0;
        let mut observe = |layer: usize, hidden: &[f32]| {
            if with_hidden {
                let expected = case.required(&format!("image.{i}.hidden.{layer}"));
                assert_close(hidden, &expected, TOLERANCE, &format!("{}: image {i} hidden state {layer}", case.name));
            }
            layers += 1;
        };
        let embedding = model.install(|| tower.forward(model.kernels(), &pixels, 1, Some(&mut observe))).unwrap();
        assert_eq!(layers, model.config().vision.as_ref().unwrap().num_layers + 1);
        let what = format!("{}: image {i} ({})", case.name, image["file"]);
        assert_close(&embedding, &case.required(&format!("image.{i}.embedding")), TOLERANCE, &what);
        let mut normalized = embedding.clone();
        model.kernels().l2_normalize(&mut normalized);
        assert_close(&normalized, &case.required(&format!("image.{i}.normalized")), TOLERANCE, &what);
        checked += 1;
    }
    checked
}

/// Embeds the case's image files end to end: decoding, preprocessing, tower.
fn check_image_files(case: &ReferenceCase, model: &Model) {
    let paths: Vec<std::path::PathBuf> =
        case.images().iter().map(|image| common::fixtures().join(image["file"].as_str().unwrap())).collect();
    assert!(!paths.is_empty(), "{}: no images", case.name);
    let raw = model.embed_image_files(&paths, false).unwrap();
    let normalized = model.embed_image_files(&paths, true).unwrap();
    for (i, path) in paths.iter().enumerate() {
        let what = format!("{}: image file {}", case.name, path.display());
        assert_close(&raw[i].embedding, &case.required(&format!("image.{i}.embedding")), TOLERANCE, &what);
        assert_close(&normalized[i].embedding, &case.required(&format!("image.{i}.normalized")), TOLERANCE, &what);
    }
}

fn check_case(name: &str) {
    let case = ReferenceCase::load(name);
    let dir = case.synth_model();
    check_weights(&case, dir.path());
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    check_texts(&case, &model);
    let images = check_image_tower(&case, &model);
    assert!(images > 0, "{name}: no image with stored pixels was checked");
    check_image_files(&case, &model);
}

#[test]
fn tiny_f32_matches_reference() {
    check_case("tiny-f32");
}

#[test]
fn tiny_bf16_matches_reference() {
    let case = ReferenceCase::load("tiny-bf16");
    let dir = case.synth_model();
    check_weights(&case, dir.path());
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    check_texts(&case, &model);
    check_image_files(&case, &model);
}

#[test]
fn small_grid_matches_reference() {
    check_case("small-grid");
}

#[test]
fn full_size_matches_reference() {
    let case = ReferenceCase::load("full");
    let dir = case.synth_model();
    check_weights(&case, dir.path());
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    assert_eq!(model.text_dim(), 768);
    assert_eq!(model.image_dim(), Some(768));
    check_texts(&case, &model);
    check_image_files(&case, &model);
}
