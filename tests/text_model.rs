//! Text tower behaviour on synthetic checkpoints: invariances, naming layouts
//! and the tokenizer policy.

mod common;

use common::{assert_close, cosine, synth_model};
use jclip::synth::{Preset, SynthDtype, SynthNaming};
use jclip::{Model, ModelOptions, Truncation};

const TEXTS: [&str; 6] = [
    "a photo of a cat",
    "",
    "The quick brown fox jumps over the lazy dog while the cat watches from the window.",
    "dog bites man",
    "[PAD] inside a text is masked like padding",
    "hi",
];

fn open(dir: &std::path::Path, options: ModelOptions) -> Model {
    Model::open(dir, &options).expect("open the synthetic model")
}

#[test]
fn batch_gives_same_vectors_as_alone() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = open(dir.path(), ModelOptions::default());
    let batch = model.embed_texts(&TEXTS, false).unwrap();
    for (i, text) in TEXTS.iter().enumerate() {
        let alone = model.embed_texts(&[text], false).unwrap();
        assert_eq!(alone[0].embedding, batch[i].embedding, "text {i} differs alone and in a batch");
        assert_eq!(alone[0].tokens, batch[i].tokens);
    }
}

#[test]
fn token_budget_splits_without_changing_results() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let whole = open(dir.path(), ModelOptions::default()).embed_texts(&TEXTS, true).unwrap();
    let split = open(dir.path(), ModelOptions::default().batch_tokens(8)).embed_texts(&TEXTS, true).unwrap();
    assert_eq!(whole, split);
}

#[test]
fn word_order_changes_the_embedding() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = open(dir.path(), ModelOptions::default());
    let out = model.embed_texts(&["dog bites man", "man bites dog"], true).unwrap();
    let similarity = cosine(&out[0].embedding, &out[1].embedding);
    assert!(similarity < 0.9999, "word order ignored: cosine {similarity}");
    assert_ne!(out[0].embedding, out[1].embedding);
}

#[test]
fn embeddings_are_normalised_on_request() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = open(dir.path(), ModelOptions::default());
    let normalized = model.embed_texts(&TEXTS, true).unwrap();
    let raw = model.embed_texts(&TEXTS, false).unwrap();
    for (n, r) in normalized.iter().zip(&raw) {
        let norm: f64 = n.embedding.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "norm {norm}");
        let raw_norm: f32 = r.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        let scaled: Vec<f32> = r.embedding.iter().map(|v| v / raw_norm).collect();
        assert_close(&n.embedding, &scaled, 1e-6, "normalised vs raw / norm");
    }
}

#[test]
fn classic_and_bare_names_match_flash() {
    let flash = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let classic = synth_model(Preset::Tiny, SynthNaming::Classic, SynthDtype::F32);
    let bare = synth_model(Preset::Tiny, SynthNaming::BareText, SynthDtype::F32);
    let expected = open(flash.path(), ModelOptions::default()).embed_texts(&TEXTS, true).unwrap();
    let from_classic = open(classic.path(), ModelOptions::default()).embed_texts(&TEXTS, true).unwrap();
    let bare_model = open(bare.path(), ModelOptions::default());
    assert!(bare_model.config().vision.is_none(), "a bare text checkpoint has no image tower");
    let from_bare = bare_model.embed_texts(&TEXTS, true).unwrap();
    assert_eq!(expected, from_classic);
    assert_eq!(expected, from_bare);
}

#[test]
fn half_precision_storage_stays_close() {
    let f32_dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let expected = open(f32_dir.path(), ModelOptions::default()).embed_texts(&TEXTS, true).unwrap();
    for dtype in [SynthDtype::F16, SynthDtype::BF16] {
        let dir = synth_model(Preset::Tiny, SynthNaming::Flash, dtype);
        let got = open(dir.path(), ModelOptions::default()).embed_texts(&TEXTS, true).unwrap();
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let similarity = cosine(&g.embedding, &e.embedding);
            assert!(similarity > 0.999, "{dtype:?} text {i}: cosine {similarity}");
        }
    }
}

#[test]
fn pad_token_inside_text_is_masked() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = open(dir.path(), ModelOptions::default());
    let with_pad = model.encode_texts(&["hello [PAD] world"]).unwrap();
    assert!(with_pad[0].ids.contains(&0), "the tokenizer maps [PAD] to id 0: {:?}", with_pad[0].ids);
    // Masked positions take no part in attention or pooling, so the pad
    // token's position only shifts ALiBi distances: the vector differs from
    // the text without it but stays finite and normalised.
    let out = model.embed_texts(&["hello [PAD] world", "hello world"], true).unwrap();
    assert!(out[0].embedding.iter().all(|v| v.is_finite()));
    assert_ne!(out[0].embedding, out[1].embedding);
}

#[test]
fn long_text_is_truncated_to_max_length() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let long = "word ".repeat(600);
    let model = open(dir.path(), ModelOptions::default());
    let out = model.embed_texts(&[long.as_str(), "short"], true).unwrap();
    assert_eq!(out[0].tokens, 512);
    assert!(out[0].truncated);
    assert!(!out[1].truncated);

    let model = open(dir.path(), ModelOptions::default().max_length(16));
    let encoded = model.encode_texts(&[long.as_str()]).unwrap();
    assert_eq!(encoded[0].ids.len(), 16);
    assert_eq!(encoded[0].ids[0], 101, "[CLS] first");
    assert_eq!(encoded[0].ids[15], 102, "[SEP] last");
}

#[test]
fn long_text_is_rejected_without_truncation() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = open(dir.path(), ModelOptions::default().max_length(16).truncation(Truncation::Disabled));
    let error = model.embed_texts(&["fits", &"word ".repeat(20)], true).unwrap_err();
    assert_eq!(error.input_index(), Some(1));
    match error {
        jclip::Error::InputTooLong { index, tokens, limit } => {
            assert_eq!(index, 1);
            assert_eq!(tokens, 22);
            assert_eq!(limit, 16);
        }
        other => panic!("expected InputTooLong, got {other}"),
    }
}

#[test]
fn empty_text_embeds_cls_and_sep() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = open(dir.path(), ModelOptions::default());
    let encoded = model.encode_texts(&[""]).unwrap();
    assert_eq!(encoded[0].ids, vec![101, 102]);
    let out = model.embed_texts(&[""], true).unwrap();
    assert_eq!(out[0].tokens, 2);
}

#[test]
fn tokenizer_file_settings_are_overridden() {
    // A tokenizer.json that pads and truncates to 8 tokens, like some
    // sentence-transformers exports: the engine's own policy must win.
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let path = dir.path().join("tokenizer.json");
    let mut tokenizer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["truncation"] =
        serde_json::json!({"max_length": 8, "strategy": "LongestFirst", "stride": 0, "direction": "Right"});
    tokenizer["padding"] = serde_json::json!({"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null,
        "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"});
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let model = open(dir.path(), ModelOptions::default());
    let encoded = model.encode_texts(&["hi", &"word ".repeat(20)]).unwrap();
    assert_eq!(encoded[0].ids, vec![101, 7632, 102], "no padding");
    assert_eq!(encoded[1].ids.len(), 22, "no truncation at 8");
}

#[test]
fn thread_count_does_not_change_results() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let one = open(dir.path(), ModelOptions::default().threads(1)).embed_texts(&TEXTS, true).unwrap();
    for threads in [2, 3] {
        for spin in [true, false] {
            let options = ModelOptions::default().threads(threads).spin(spin);
            let many = open(dir.path(), options).embed_texts(&TEXTS, true).unwrap();
            assert_eq!(one, many, "{threads} threads (spin {spin}) differ from 1");
        }
    }

    // Enough tokens that 2 or 3 threads run the batch in lanes, one part of
    // the texts each, with parts of unequal length.
    let long: Vec<String> = (0..7).map(|i| format!("text {i}: {}", "lorem ipsum dolor ".repeat(10 + 5 * i))).collect();
    let single = open(dir.path(), ModelOptions::default().threads(1)).embed_texts(&long, true).unwrap();
    assert!(single.iter().map(|e| e.tokens).sum::<usize>() >= 600, "too few tokens for 3 lanes");
    for threads in [2, 3] {
        let lanes = open(dir.path(), ModelOptions::default().threads(threads)).embed_texts(&long, true).unwrap();
        assert_eq!(single, lanes, "{threads} threads in lanes differ from 1");
    }
}
