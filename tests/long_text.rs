//! Texts far past the 512-token default: ALiBi has no position table, so a
//! raised `max_length` must work, agree with PyTorch and keep memory linear.

mod common;

use common::{ReferenceCase, assert_close};
use jclip::{Model, ModelOptions};

/// Maximum absolute difference allowed against the fp32 reference.
const TOLERANCE: f32 = 1e-4;

#[test]
fn long_texts_match_reference() {
    let case = ReferenceCase::load("tiny-long");
    let dir = case.synth_model();
    for (i, text) in case.texts().iter().enumerate() {
        let length = text["max_length"].as_u64().unwrap() as usize;
        let model = Model::open(dir.path(), &ModelOptions::default().max_length(length)).unwrap();
        let input = text["text"].as_str().unwrap();
        let encoded = model.encode_texts(&[input]).unwrap();
        let ids: Vec<u32> = text["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(encoded[0].ids.len(), length);
        assert_eq!(encoded[0].ids, ids, "ids of the {length}-token text");
        let out = model.embed_texts(&[input], false).unwrap();
        assert!(out[0].truncated);
        let what = format!("{length}-token text");
        assert_close(&out[0].embedding, &case.required(&format!("text.{i}.embedding")), TOLERANCE, &what);
    }
}
