//! Image embedding behaviour: invariances, input kinds and errors.

mod common;

use common::{fixtures, synth_model};
use jclip::synth::{Preset, SynthDtype, SynthNaming};
use jclip::{Error, Input, Modality, Model, ModelOptions};

const PHOTOS: [&str; 3] = ["astronaut.png", "camera.png", "rocket.jpg"];

fn photo(name: &str) -> std::path::PathBuf {
    fixtures().join("images").join(name)
}

#[test]
fn image_batch_gives_same_vectors_as_alone() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    let paths: Vec<_> = PHOTOS.iter().map(|name| photo(name)).collect();
    let batch = model.embed_image_files(&paths, true).unwrap();
    for (i, path) in paths.iter().enumerate() {
        let alone = model.embed_image_files(&[path], true).unwrap();
        assert_eq!(alone[0].embedding, batch[i].embedding, "{} differs alone and in a batch", path.display());
        assert_eq!(alone[0].modality, Modality::Image);
        assert_eq!(alone[0].tokens, 197);
    }
}

#[test]
fn image_threads_do_not_change_results() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let paths: Vec<_> = PHOTOS.iter().map(|name| photo(name)).collect();
    let one =
        Model::open(dir.path(), &ModelOptions::default().threads(1)).unwrap().embed_image_files(&paths, true).unwrap();
    for threads in [2, 3] {
        for spin in [true, false] {
            let model = Model::open(dir.path(), &ModelOptions::default().threads(threads).spin(spin)).unwrap();
            assert_eq!(one, model.embed_image_files(&paths, true).unwrap(), "{threads} threads, spin {spin}");
        }
    }
}

#[test]
fn mixed_inputs_keep_their_order() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = Model::open(dir.path(), &ModelOptions::default().batch_tokens(300)).unwrap();
    let bytes = std::fs::read(photo("camera.png")).unwrap();
    let decoded = jclip::preprocess::decode_file(&photo("rocket.jpg"), &Default::default()).unwrap();
    let astronaut = photo("astronaut.png");
    let inputs = [
        Input::Text("a photo of an astronaut"),
        Input::ImageFile(&astronaut),
        Input::ImageBytes(&bytes),
        Input::Text("a camera man"),
        Input::Rgb(&decoded),
    ];
    let mixed = model.embed(&inputs, true).unwrap();
    let kinds: Vec<Modality> = mixed.iter().map(|e| e.modality).collect();
    assert_eq!(kinds, [Modality::Text, Modality::Image, Modality::Image, Modality::Text, Modality::Image]);

    let texts = model.embed_texts(&["a photo of an astronaut", "a camera man"], true).unwrap();
    let images =
        model.embed_image_files(&[photo("astronaut.png"), photo("camera.png"), photo("rocket.jpg")], true).unwrap();
    assert_eq!(mixed[0].embedding, texts[0].embedding);
    assert_eq!(mixed[3].embedding, texts[1].embedding);
    assert_eq!(mixed[1].embedding, images[0].embedding);
    assert_eq!(mixed[2].embedding, images[1].embedding, "bytes and file give the same vector");
    assert_eq!(mixed[4].embedding, images[2].embedding, "decoded pixels and file give the same vector");
}

#[test]
fn corrupt_image_names_its_position() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    let good = std::fs::read(photo("camera.png")).unwrap();
    let truncated = &good[..good.len() / 3];
    let inputs = [Input::ImageBytes(&good), Input::Text("x"), Input::ImageBytes(truncated)];
    let error = model.embed(&inputs, true).unwrap_err();
    assert_eq!(error.input_index(), Some(2));
    match error {
        Error::Image { index, source } => {
            assert_eq!(index, 2);
            assert!(source.to_string().contains("the encoded image"), "{source}");
        }
        other => panic!("expected Image, got {other}"),
    }
}

#[test]
fn missing_image_file_is_named() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    let error = model.embed_image_files(&["/nonexistent/cat.jpg"], true).unwrap_err();
    assert!(matches!(error, Error::Image { index: 0, .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/cat.jpg"), "{error}");
}

#[test]
fn oversized_image_is_rejected() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let model = Model::open(dir.path(), &ModelOptions::default().max_image_pixels(1000)).unwrap();
    let error = model.embed_image_files(&[photo("camera.png")], true).unwrap_err();
    assert!(error.to_string().contains("1000"), "{error}");
}

#[test]
fn text_only_model_rejects_images() {
    let dir = synth_model(Preset::Tiny, SynthNaming::BareText, SynthDtype::F32);
    let model = Model::open(dir.path(), &ModelOptions::default()).unwrap();
    assert_eq!(model.image_dim(), None);
    let path = photo("camera.png");
    match model.embed(&[Input::Text("fine"), Input::ImageFile(&path)], true).unwrap_err() {
        Error::MissingTower(message) => assert!(message.contains("input 1"), "{message}"),
        other => panic!("expected MissingTower, got {other}"),
    }
}

#[test]
fn preprocessor_size_must_match_the_tower() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let path = dir.path().join("preprocessor_config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"size\": 224", "\"size\": 256");
    std::fs::write(&path, text).unwrap();
    match Model::open(dir.path(), &ModelOptions::default()).unwrap_err() {
        Error::InvalidConfig { path: found, message } => {
            assert_eq!(found, path);
            assert!(message.contains("256") && message.contains("224"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other}"),
    }
}
