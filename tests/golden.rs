//! Agreement with the independently computed golden outputs (two tiny
//! checkpoints, PyTorch and timm, computed outside this project).

mod common;

use common::{assert_close, fixtures};
use jclip::{Model, ModelOptions};

/// Maximum absolute difference allowed against the fp32 reference.
const TOLERANCE: f32 = 1e-4;

/// Rebuilds a golden model directory from its trimmed fixture: the word
/// embedding table is restored to its full shape with the stored rows in
/// place and zeros elsewhere (the golden texts never read those).
fn rebuild(name: &str) -> (tempfile::TempDir, serde_json::Value) {
    let source = fixtures().join("golden").join(name);
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::copy(fixtures().join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("expected.json")).unwrap()).unwrap();

    let bytes = std::fs::read(source.join("weights.safetensors")).unwrap();
    let trimmed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let rows_view = trimmed.tensor("golden.word_embedding_rows").unwrap();
    let rows: Vec<usize> =
        rows_view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize).collect();
    let values = trimmed.tensor("golden.word_embedding_values").unwrap();
    let hidden = values.shape()[1];
    let element = values.data().len() / (rows.len() * hidden);
    let vocab = 30528;
    let mut table = vec![0u8; vocab * hidden * element];
    let row_bytes = hidden * element;
    for (k, &row) in rows.iter().enumerate() {
        table[row * row_bytes..(row + 1) * row_bytes]
            .copy_from_slice(&values.data()[k * row_bytes..(k + 1) * row_bytes]);
    }
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        trimmed.tensors().into_iter().filter(|(name, _)| !name.starts_with("golden.")).collect();
    views.push((
        "text_model.transformer.embeddings.word_embeddings.weight".into(),
        safetensors::tensor::TensorView::new(values.dtype(), vec![vocab, hidden], &table).unwrap(),
    ));
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    (dir, expected)
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

fn check_texts(name: &str, model: &Model, expected: &serde_json::Value) {
    let cases = expected["texts"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let encoded = model.encode_texts(&texts).unwrap();
    let raw = model.embed_texts(&texts, false).unwrap();
    let normalized = model.embed_texts(&texts, true).unwrap();
    for (i, case) in cases.iter().enumerate() {
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(encoded[i].ids, ids, "{name}: ids of text {i}");
        assert_close(&raw[i].embedding, &floats(&case["embedding"]), TOLERANCE, &format!("{name}: text {i}"));
        assert_close(&normalized[i].embedding, &floats(&case["normalized"]), TOLERANCE, &format!("{name}: text {i}"));
    }
}

#[test]
fn golden_tiny_f32_texts() {
    let (dir, expected) = rebuild("tiny-f32");
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    check_texts("tiny-f32", &model, &expected);
}

#[test]
fn golden_tiny_f16_texts() {
    let (dir, expected) = rebuild("tiny-f16");
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    check_texts("tiny-f16", &model, &expected);
}

fn check_images(name: &str, model: &Model, expected: &serde_json::Value) {
    let cases = expected["images"].as_array().unwrap();
    let paths: Vec<std::path::PathBuf> =
        cases.iter().map(|c| fixtures().join("images").join(c["image"].as_str().unwrap())).collect();
    let raw = model.embed_image_files(&paths, false).unwrap();
    let normalized = model.embed_image_files(&paths, true).unwrap();
    let config = model.preprocess_config().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let what = format!("{name}: image {}", case["image"]);
        // The preprocessed input at the golden checksum positions (channel, row, column).
        let image = jclip::preprocess::decode_file(&paths[i], &Default::default()).unwrap();
        let pixels = jclip::preprocess::preprocess(&image, config).unwrap();
        let positions = [(0, 0, 0), (1, 112, 112), (2, 223, 223), (0, 17, 200), (1, 111, 3)];
        let checksum = floats(&case["pixel_checksum"]);
        assert_eq!(checksum.len(), positions.len(), "{what}: checksum length");
        for (k, &(c, y, x)) in positions.iter().enumerate() {
            assert_eq!(pixels[(c * 224 + y) * 224 + x], checksum[k], "{what}: pixel checksum {k}");
        }
        let sum: f64 = pixels.iter().map(|&v| v as f64).sum();
        let expected_sum = case["pixel_sum"].as_f64().unwrap();
        assert!((sum - expected_sum).abs() < 1e-3, "{what}: pixel sum {sum} vs {expected_sum}");
        assert_close(&raw[i].embedding, &floats(&case["embedding"]), TOLERANCE, &what);
        assert_close(&normalized[i].embedding, &floats(&case["normalized"]), TOLERANCE, &what);
    }
}

#[test]
fn golden_tiny_f32_images() {
    let (dir, expected) = rebuild("tiny-f32");
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    check_images("tiny-f32", &model, &expected);
}

#[test]
fn golden_tiny_f16_images() {
    let (dir, expected) = rebuild("tiny-f16");
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    check_images("tiny-f16", &model, &expected);
}
