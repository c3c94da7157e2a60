//! Bad model directories and inputs give typed errors that name the culprit.

mod common;

use common::{RawTensor, rewrite_checkpoint, synth_model};
use jclip::synth::{Preset, SynthDtype, SynthNaming};
use jclip::{Error, Model, ModelOptions};

fn tiny() -> tempfile::TempDir {
    synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32)
}

fn open_error(dir: &std::path::Path) -> Error {
    Model::open(dir, &ModelOptions::default()).expect_err("opening should fail")
}

const WQKV: &str = "text_model.transformer.encoder.layers.1.mixer.Wqkv.weight";

#[test]
fn missing_tensor_is_named() {
    let dir = tiny();
    rewrite_checkpoint(dir.path(), |name, raw| (name != WQKV).then_some(raw));
    let error = open_error(dir.path());
    assert_eq!(error.input_index(), None, "not about one input");
    match error {
        Error::MissingTensor { name, .. } => assert_eq!(name, WQKV),
        other => panic!("expected MissingTensor, got {other}"),
    }
}

#[test]
fn non_finite_weight_names_tensor_and_row() {
    let dir = tiny();
    rewrite_checkpoint(dir.path(), |name, mut raw| {
        if name == WQKV {
            // Row 200, column 5 of [288, 96] f32 values.
            let at = (200 * raw.shape[1] + 5) * 4;
            raw.data[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        Some(raw)
    });
    for precision in [jclip::Precision::F32, jclip::Precision::Int8] {
        let options = ModelOptions::default().precision(precision);
        let error = Model::open(dir.path(), &options).expect_err("opening should fail");
        match error {
            Error::InvalidCheckpoint { path, message } => {
                assert_eq!(path, dir.path().join("model.safetensors"));
                assert!(message.contains(&format!("tensor {WQKV} has NaN or infinite values in row 200")), "{message}");
            }
            other => panic!("{precision:?}: expected InvalidCheckpoint, got {other}"),
        }
    }
}

#[test]
fn wrong_shape_names_tensor_and_shapes() {
    let dir = tiny();
    rewrite_checkpoint(dir.path(), |name, raw| {
        if name == WQKV {
            // Drop the last row: [288, 96] becomes [287, 96].
            let row_bytes = raw.shape[1] * 4;
            Some(RawTensor {
                dtype: raw.dtype,
                shape: vec![raw.shape[0] - 1, raw.shape[1]],
                data: raw.data[row_bytes..].to_vec(),
            })
        } else {
            Some(raw)
        }
    });
    let error = open_error(dir.path());
    let message = error.to_string();
    match error {
        Error::TensorShape { name, expected, actual } => {
            assert_eq!(name, WQKV);
            assert_eq!(expected, vec![288, 96]);
            assert_eq!(actual, vec![287, 96]);
        }
        other => panic!("expected TensorShape, got {other}"),
    }
    assert!(message.contains("[287, 96]") && message.contains("[288, 96]"), "{message}");
}

#[test]
fn unreadable_dtype_is_rejected() {
    let dir = tiny();
    let name = "text_model.transformer.emb_ln.weight";
    rewrite_checkpoint(dir.path(), |n, raw| {
        if n == name {
            let count: usize = raw.shape.iter().product();
            Some(RawTensor { dtype: safetensors::Dtype::I32, shape: raw.shape, data: vec![0; count * 4] })
        } else {
            Some(raw)
        }
    });
    match open_error(dir.path()) {
        Error::TensorDtype { name: found, dtype } => {
            assert_eq!(found, name);
            assert_eq!(dtype, "I32");
        }
        other => panic!("expected TensorDtype, got {other}"),
    }
}

#[test]
fn missing_files_are_named() {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let dir = tiny();
        std::fs::remove_file(dir.path().join(file)).unwrap();
        match open_error(dir.path()) {
            Error::MissingFile { path, .. } => assert!(path.ends_with(file), "{file}: {}", path.display()),
            other => panic!("{file}: expected MissingFile, got {other}"),
        }
    }
}

#[test]
fn json_that_is_not_a_tokenizer_is_named() {
    let dir = tiny();
    std::fs::write(dir.path().join("tokenizer.json"), r#"{"foo": 1}"#).unwrap();
    match open_error(dir.path()) {
        Error::Tokenizer { context, .. } => {
            assert!(context.contains("tokenizer.json"), "{context}");
            assert!(context.contains("not a Hugging Face tokenizer file"), "{context}");
        }
        other => panic!("expected Tokenizer, got {other}"),
    }

    std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
    match open_error(dir.path()) {
        Error::Tokenizer { context, .. } => assert!(!context.contains("not a Hugging Face"), "{context}"),
        other => panic!("expected Tokenizer, got {other}"),
    }
}

#[test]
fn missing_directory_is_named() {
    match open_error(std::path::Path::new("/nonexistent/jclip-model")) {
        Error::MissingFile { path, .. } => assert!(path.ends_with("jclip-model")),
        other => panic!("expected MissingFile, got {other}"),
    }
}

#[test]
fn truncated_checkpoint_is_reported() {
    let dir = tiny();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 100, 4, 0] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        match open_error(dir.path()) {
            Error::InvalidCheckpoint { path: found, message } => {
                assert_eq!(found, path, "{keep} bytes");
                assert!(message.contains("truncated"), "{keep} bytes: {message}");
            }
            other => panic!("{keep} bytes: expected InvalidCheckpoint, got {other}"),
        }
    }
}

#[test]
fn config_with_unsupported_pooler_is_rejected() {
    let dir = tiny();
    let path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&path).unwrap().replace("\"mean_pooler\"", "\"cls_pooler\"");
    std::fs::write(&path, config).unwrap();
    match open_error(dir.path()) {
        Error::UnsupportedConfig { key, value, .. } => {
            assert_eq!(key, "text_config.pooler_type");
            assert_eq!(value, "\"cls_pooler\"");
        }
        other => panic!("expected UnsupportedConfig, got {other}"),
    }
}

#[test]
fn config_and_weights_layer_count_mismatch() {
    let dir = tiny();
    let path = dir.path().join("config.json");
    let config =
        std::fs::read_to_string(&path).unwrap().replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2");
    std::fs::write(&path, config).unwrap();
    match open_error(dir.path()) {
        Error::InvalidCheckpoint { message, .. } => assert!(message.contains("layer"), "{message}"),
        other => panic!("expected InvalidCheckpoint, got {other}"),
    }
}

#[test]
fn token_outside_the_table_is_an_error() {
    // A model whose embedding table has 2000 rows, with the full BERT tokenizer.
    let dir = tiny();
    let rows = 2000;
    rewrite_checkpoint(dir.path(), |name, raw| {
        if name.ends_with("word_embeddings.weight") {
            let row_bytes = raw.shape[1] * 4;
            Some(RawTensor {
                dtype: raw.dtype,
                shape: vec![rows, raw.shape[1]],
                data: raw.data[..rows * row_bytes].to_vec(),
            })
        } else {
            Some(raw)
        }
    });
    let path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&path).unwrap().replace("\"vocab_size\": 30528", "\"vocab_size\": 2000");
    std::fs::write(&path, config).unwrap();
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    // "hi" is id 7632, outside 2000 rows; [CLS] 101 and [SEP] 102 are inside.
    let error = model.embed_texts(&["", "hi"], true).unwrap_err();
    assert_eq!(error.input_index(), Some(1));
    match error {
        Error::TokenOutOfRange { index, id, vocab_size } => {
            assert_eq!(index, 1);
            assert_eq!(id, 7632);
            assert_eq!(vocab_size, 2000);
        }
        other => panic!("expected TokenOutOfRange, got {other}"),
    }
}

#[test]
fn zero_threads_is_an_invalid_option() {
    let dir = tiny();
    match Model::open(dir.path(), &ModelOptions::default().threads(0)).unwrap_err() {
        Error::InvalidOption { name, .. } => assert_eq!(name, "threads"),
        other => panic!("expected InvalidOption, got {other}"),
    }
}

#[test]
fn preprocessor_size_mismatch_names_both_files() {
    let dir = tiny();
    let path = dir.path().join("preprocessor_config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["size"] = serde_json::json!(999);
    std::fs::write(&path, config.to_string()).unwrap();
    match open_error(dir.path()) {
        Error::InvalidConfig { path: named, message } => {
            assert_eq!(named, path);
            assert!(message.contains("size 999 differs"), "{message}");
            assert!(message.contains("in config.json"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other}"),
    }
}

#[test]
fn too_many_threads_is_an_invalid_option() {
    let dir = tiny();
    let threads = jclip::options::MAX_THREADS + 1;
    match Model::open(dir.path(), &ModelOptions::default().threads(threads)).unwrap_err() {
        Error::InvalidOption { name, value, reason } => {
            assert_eq!((name, value), ("threads", threads.to_string()));
            assert!(reason.contains("1 to 1024"), "{reason}");
        }
        other => panic!("expected InvalidOption, got {other}"),
    }
}

#[test]
fn more_threads_than_cpus_do_not_poll() {
    let dir = tiny();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fitting = Model::open(dir.path(), &ModelOptions::default().threads(cpus)).unwrap();
    assert!(fitting.spin());
    let oversubscribed = Model::open(dir.path(), &ModelOptions::default().threads(cpus + 1)).unwrap();
    assert!(!oversubscribed.spin());
    let reference = fitting.embed_texts(&["two threads or more"], true).unwrap();
    assert_eq!(oversubscribed.embed_texts(&["two threads or more"], true).unwrap(), reference);
}

#[test]
fn max_length_must_leave_room_for_text() {
    let dir = tiny();
    match Model::open(dir.path(), &ModelOptions::default().max_length(2)).unwrap_err() {
        Error::InvalidOption { name, .. } => assert_eq!(name, "max_length"),
        other => panic!("expected InvalidOption, got {other}"),
    }
}

#[test]
fn sharded_checkpoint_loads() {
    let single = tiny();
    let expected = Model::open(single.path(), &ModelOptions::default()).unwrap().embed_texts(&["a cat"], true).unwrap();

    // Split the tensors into two shards listed by an index file.
    let sharded = tiny();
    let bytes = std::fs::read(sharded.path().join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut shards: [Vec<(String, safetensors::tensor::TensorView<'_>)>; 2] = [Vec::new(), Vec::new()];
    let mut weight_map = serde_json::Map::new();
    for (name, view) in tensors.tensors() {
        let shard = usize::from(name.starts_with("vision_model.") || name.contains("layers.2"));
        let file = format!("model-0000{}-of-00002.safetensors", shard + 1);
        weight_map.insert(name.clone(), serde_json::Value::String(file));
        shards[shard].push((name, view));
    }
    for (shard, views) in shards.into_iter().enumerate() {
        let file = sharded.path().join(format!("model-0000{}-of-00002.safetensors", shard + 1));
        safetensors::serialize_to_file(views, None, &file).unwrap();
    }
    std::fs::remove_file(sharded.path().join("model.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(sharded.path().join("model.safetensors.index.json"), index.to_string()).unwrap();

    let got = Model::open(sharded.path(), &ModelOptions::default()).unwrap().embed_texts(&["a cat"], true).unwrap();
    assert_eq!(got, expected);

    // A missing shard is named with the index that lists it.
    let second = sharded.path().join("model-00002-of-00002.safetensors");
    std::fs::rename(&second, sharded.path().join("moved.safetensors")).unwrap();
    match open_error(sharded.path()) {
        Error::MissingFile { path, hint } => {
            assert_eq!(path, second);
            assert!(hint.contains("model.safetensors.index.json lists it"), "{hint}");
        }
        other => panic!("expected MissingFile, got {other}"),
    }

    // A weight_map that is not an object is named as such, not as missing.
    std::fs::write(sharded.path().join("model.safetensors.index.json"), r#"{"weight_map": 5}"#).unwrap();
    match open_error(sharded.path()) {
        Error::InvalidConfig { message, .. } => {
            assert!(message.contains("weight_map must be an object"), "{message}");
            assert!(message.contains("found 5"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other}"),
    }
}

#[test]
fn unwritable_output_is_a_write_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = file.join("model");
    let options = jclip::synth::SynthOptions::new(Preset::Tiny);
    match jclip::synth::write_model_dir(&out, &options).unwrap_err() {
        Error::Write { path, .. } => assert_eq!(path, out),
        other => panic!("expected Write, got {other}"),
    }
}
