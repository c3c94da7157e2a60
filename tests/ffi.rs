//! The C API called through its `extern "C"` functions, as a C program
//! calls them: results agree with the Rust API, and bad arguments of every
//! kind give the documented status and a message naming the fault, never a
//! crash.
#![warn(clippy::undocumented_unsafe_blocks)]

mod common;

use std::ffi::{CStr, CString, c_char};
use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use common::{fixture, synth_model};
use jclip::ffi::jclip_status::*;
use jclip::ffi::*;
use jclip::preprocess::{DecodeOptions, RgbImage, decode};
use jclip::synth::{Preset, SynthDtype, SynthNaming};
use jclip::{Input, Model, ModelOptions};

/// Returns the directory of one tiny synthetic model (text and image towers) that the tests share.
fn tiny_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32)).path()
}

const TEXTS: [&str; 3] = ["a photo of a cat", "A dog running on the beach.", "ünïcödé ☃ text"];

/// A handle that tests pass between threads; the C API allows that.
#[derive(Clone, Copy)]
struct Handle(*mut jclip_model);

// SAFETY: the C API documents a jclip_model as usable from several threads at once.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

fn c_path(path: &Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

fn last_error() -> String {
    // SAFETY: jclip_last_error never returns NULL, and the string stays valid
    // until this thread's next jclip call, after the copy.
    unsafe { CStr::from_ptr(jclip_last_error()) }.to_str().unwrap().to_owned()
}

/// Opens `dir` with `options` (NULL for the defaults), returning the status and handle.
fn try_open(dir: &Path, options: *const jclip_options) -> (jclip_status, *mut jclip_model) {
    let dir = c_path(dir);
    let mut model = null_mut();
    // SAFETY: `dir` is NUL-terminated, `options` is NULL or a full struct, `model` is writable.
    let status = unsafe { jclip_open(dir.as_ptr(), options, &mut model) };
    (status, model)
}

fn open(dir: &Path) -> Handle {
    let (status, model) = try_open(dir, null());
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    assert!(!model.is_null());
    Handle(model)
}

fn close(model: Handle) -> jclip_status {
    // SAFETY: the pointer came from jclip_open.
    unsafe { jclip_close(model.0) }
}

fn text_dim(model: Handle) -> usize {
    let mut dim = 0;
    // SAFETY: the pointer came from jclip_open and `dim` is writable.
    assert_eq!(unsafe { jclip_text_dim(model.0, &mut dim) }, JCLIP_OK, "{}", last_error());
    dim
}

fn image_dim(model: Handle) -> usize {
    let mut dim = 0;
    // SAFETY: as above.
    assert_eq!(unsafe { jclip_image_dim(model.0, &mut dim) }, JCLIP_OK, "{}", last_error());
    dim
}

fn as_c_texts(texts: &[&str]) -> Vec<jclip_text> {
    texts.iter().map(|text| jclip_text { data: text.as_ptr().cast::<c_char>(), length: text.len() }).collect()
}

/// Embeds texts into an output array of `capacity` floats pre-filled with NaN.
fn embed_texts_raw(model: Handle, texts: &[jclip_text], normalize: bool, capacity: usize) -> (jclip_status, Vec<f32>) {
    let mut out = vec![f32::NAN; capacity];
    // SAFETY: `texts` contains valid (pointer, length) pairs and `out` has `capacity` floats.
    let status =
        unsafe { jclip_embed_texts(model.0, texts.as_ptr(), texts.len(), normalize, out.as_mut_ptr(), capacity) };
    (status, out)
}

fn embed_texts(model: Handle, texts: &[&str], normalize: bool) -> Vec<f32> {
    let (status, out) = embed_texts_raw(model, &as_c_texts(texts), normalize, texts.len() * text_dim(model));
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    out
}

fn embed_images_raw(
    model: Handle,
    images: &[jclip_image_bytes],
    normalize: bool,
    capacity: usize,
) -> (jclip_status, Vec<f32>) {
    let mut out = vec![f32::NAN; capacity];
    // SAFETY: `images` contains valid (pointer, length) pairs and `out` has `capacity` floats.
    let status =
        unsafe { jclip_embed_images(model.0, images.as_ptr(), images.len(), normalize, out.as_mut_ptr(), capacity) };
    (status, out)
}

fn as_c_images(files: &[Vec<u8>]) -> Vec<jclip_image_bytes> {
    files.iter().map(|bytes| jclip_image_bytes { data: bytes.as_ptr(), length: bytes.len() }).collect()
}

fn embed_rgb_raw(
    model: Handle,
    images: &[jclip_rgb_image],
    normalize: bool,
    capacity: usize,
) -> (jclip_status, Vec<f32>) {
    let mut out = vec![f32::NAN; capacity];
    // SAFETY: every image's data covers its stride × height extent and `out` has `capacity` floats.
    let status = unsafe {
        jclip_embed_rgb_images(model.0, images.as_ptr(), images.len(), normalize, out.as_mut_ptr(), capacity)
    };
    (status, out)
}

fn read_photo(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("images/{name}"))).unwrap()
}

/// Returns the Rust API's embeddings of `inputs`, concatenated row after row.
fn rust_embeddings(inputs: &[Input<'_>], normalize: bool) -> Vec<f32> {
    let model = Model::open(tiny_dir(), &ModelOptions::default()).unwrap();
    model.embed(inputs, normalize).unwrap().into_iter().flat_map(|e| e.embedding).collect()
}

fn assert_error(status: jclip_status, expected: jclip_status, message_part: &str) {
    let message = last_error();
    assert_eq!(status, expected, "message: {message}");
    assert!(message.contains(message_part), "message {message:?} lacks {message_part:?}");
}

// ---- results agree with the Rust API ----

#[test]
fn open_reports_dims_and_isa() {
    let model = open(tiny_dir());
    assert_eq!(text_dim(model), 96);
    assert_eq!(image_dim(model), 96);
    let mut isa: *const c_char = null();
    // SAFETY: the pointer came from jclip_open and `isa` is writable.
    assert_eq!(unsafe { jclip_isa(model.0, &mut isa) }, JCLIP_OK);
    // SAFETY: jclip_isa stores a static NUL-terminated string.
    let isa = unsafe { CStr::from_ptr(isa) }.to_str().unwrap();
    assert_eq!(isa, Model::open(tiny_dir(), &ModelOptions::default()).unwrap().isa().name());
    assert_eq!(close(model), JCLIP_OK);
}

#[test]
fn texts_match_rust_api() {
    let model = open(tiny_dir());
    let inputs: Vec<Input<'_>> = TEXTS.iter().map(|text| Input::Text(text)).collect();
    for normalize in [true, false] {
        assert_eq!(embed_texts(model, &TEXTS, normalize), rust_embeddings(&inputs, normalize), "normalize {normalize}");
    }
    close(model);
}

#[test]
fn texts_need_no_nul_terminator() {
    let model = open(tiny_dir());
    // Two texts cut out of one buffer, neither followed by a NUL.
    let buffer = "a photo of a cata dog";
    let texts = [
        jclip_text { data: buffer.as_ptr().cast(), length: 16 },
        // SAFETY: offset 16 is inside `buffer`.
        jclip_text { data: unsafe { buffer.as_ptr().add(16) }.cast(), length: 5 },
    ];
    let (status, out) = embed_texts_raw(model, &texts, true, 2 * 96);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    assert_eq!(out, embed_texts(model, &["a photo of a cat", "a dog"], true));
    close(model);
}

#[test]
fn empty_text_is_valid() {
    let model = open(tiny_dir());
    let texts = [jclip_text { data: null(), length: 0 }];
    let (status, out) = embed_texts_raw(model, &texts, true, 96);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    assert_eq!(out, rust_embeddings(&[Input::Text("")], true));
    close(model);
}

#[test]
fn images_match_rust_api() {
    let model = open(tiny_dir());
    let files = [read_photo("rocket.jpg"), read_photo("chelsea.png"), read_photo("camera.png")];
    let inputs: Vec<Input<'_>> = files.iter().map(|bytes| Input::ImageBytes(bytes)).collect();
    for normalize in [true, false] {
        let (status, out) = embed_images_raw(model, &as_c_images(&files), normalize, 3 * 96);
        assert_eq!(status, JCLIP_OK, "{}", last_error());
        assert_eq!(out, rust_embeddings(&inputs, normalize), "normalize {normalize}");
    }
    close(model);
}

#[test]
fn rgb_images_match_rust_api() {
    let model = open(tiny_dir());
    let photos: Vec<RgbImage> = ["rocket.jpg", "coffee.png"]
        .iter()
        .map(|name| decode(&read_photo(name), &DecodeOptions::default()).unwrap())
        .collect();
    // The first image tightly packed (stride 0), the second with 5 bytes of padding per row.
    let padding = 5;
    let padded: Vec<u8> = photos[1]
        .data
        .chunks(photos[1].width as usize * 3)
        .flat_map(|row| row.iter().copied().chain(std::iter::repeat_n(0xAB, padding)))
        .collect();
    let images = [
        jclip_rgb_image { data: photos[0].data.as_ptr(), width: photos[0].width, height: photos[0].height, stride: 0 },
        jclip_rgb_image {
            data: padded.as_ptr(),
            width: photos[1].width,
            height: photos[1].height,
            stride: photos[1].width as usize * 3 + padding,
        },
    ];
    let (status, out) = embed_rgb_raw(model, &images, true, 2 * 96);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    let inputs: Vec<Input<'_>> = photos.iter().map(Input::Rgb).collect();
    assert_eq!(out, rust_embeddings(&inputs, true));
    close(model);
}

#[test]
fn larger_capacity_leaves_tail_untouched() {
    let model = open(tiny_dir());
    let (status, out) = embed_texts_raw(model, &as_c_texts(&TEXTS[..1]), true, 96 + 4);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    assert!(out[..96].iter().all(|v| v.is_finite()));
    assert!(out[96..].iter().all(|v| v.is_nan()), "floats past the embeddings were written");
    close(model);
}

// ---- options ----

fn options() -> jclip_options {
    jclip_options {
        size: std::mem::size_of::<jclip_options>() as u32,
        threads: 0,
        max_length: 0,
        truncation: 0,
        precision: 0,
        batch_tokens: 0,
        max_image_pixels: 0,
        isa: null(),
        apply_exif_orientation: 0,
        no_spin: 0,
    }
}

fn open_with(options: &jclip_options) -> (jclip_status, *mut jclip_model) {
    try_open(tiny_dir(), options)
}

#[test]
fn options_set_every_field() {
    let isa = CString::new(jclip::Isa::Scalar.name()).unwrap();
    let options = jclip_options {
        threads: 2,
        max_length: 64,
        truncation: jclip_truncation::JCLIP_TRUNCATION_NONE as u32,
        batch_tokens: 300,
        max_image_pixels: 1 << 20,
        isa: isa.as_ptr(),
        apply_exif_orientation: 1,
        no_spin: 1,
        ..options()
    };
    let (status, model) = open_with(&options);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    let model = Handle(model);
    let rust = Model::open(
        tiny_dir(),
        &ModelOptions::default().threads(2).max_length(64).batch_tokens(300).isa(jclip::Isa::Scalar).spin(false),
    )
    .unwrap();
    let expected: Vec<f32> = rust.embed_texts(&TEXTS, true).unwrap().into_iter().flat_map(|e| e.embedding).collect();
    assert_eq!(embed_texts(model, &TEXTS, true), expected);

    // max_length 64 with truncation off rejects a longer text.
    let long = "word ".repeat(100);
    let (status, _) = embed_texts_raw(model, &as_c_texts(&["short", &long]), true, 2 * 96);
    assert_error(status, JCLIP_ERR_INPUT_TOO_LONG, "text 1");

    // The 512 × 512 astronaut is within the limit of 1 << 20 pixels.
    let big = read_photo("astronaut.png");
    let (status, _) = embed_images_raw(model, &as_c_images(&[big]), true, 96);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    close(model);
}

#[test]
fn precision_option_selects_the_weights() {
    for (raw, precision) in [
        (jclip_precision::JCLIP_PRECISION_F32, jclip::Precision::F32),
        (jclip_precision::JCLIP_PRECISION_F16, jclip::Precision::F16),
        (jclip_precision::JCLIP_PRECISION_BF16, jclip::Precision::BF16),
        (jclip_precision::JCLIP_PRECISION_INT8, jclip::Precision::Int8),
    ] {
        let (status, model) = open_with(&jclip_options { precision: raw as u32, ..options() });
        assert_eq!(status, JCLIP_OK, "{}", last_error());
        let model = Handle(model);
        let rust = Model::open(tiny_dir(), &ModelOptions::default().precision(precision)).unwrap();
        let expected: Vec<f32> =
            rust.embed_texts(&TEXTS, true).unwrap().into_iter().flat_map(|e| e.embedding).collect();
        assert_eq!(embed_texts(model, &TEXTS, true), expected, "{precision}");
        close(model);
    }
}

#[test]
fn max_image_pixels_rejects_large_image() {
    let options = jclip_options { max_image_pixels: 1000, ..options() };
    let (status, model) = open_with(&options);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    let model = Handle(model);
    let (status, out) = embed_images_raw(model, &as_c_images(&[read_photo("rocket.jpg")]), true, 96);
    assert_error(status, JCLIP_ERR_IMAGE, "image 0");
    assert!(out.iter().all(|v| v.is_nan()));
    close(model);
}

#[test]
fn options_size_is_checked() {
    let (status, model) = open_with(&jclip_options { size: 0, ..options() });
    assert_error(status, JCLIP_ERR_INVALID_ARGUMENT, "options.size is 0");
    assert!(model.is_null());

    let (status, _) = open_with(&jclip_options { size: 8, ..options() });
    assert_error(status, JCLIP_ERR_INVALID_ARGUMENT, "options.size is 8");
}

/// A struct from a newer header: this library's fields plus one more.
#[repr(C)]
struct NewerOptions {
    base: jclip_options,
    extra: u64,
}

#[test]
fn newer_options_need_zero_extra_fields() {
    let size = std::mem::size_of::<NewerOptions>() as u32;
    let newer = NewerOptions { base: jclip_options { size, ..options() }, extra: 0 };
    let (status, model) = try_open(tiny_dir(), &newer.base);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    close(Handle(model));

    let newer = NewerOptions { base: jclip_options { size, ..options() }, extra: 1 };
    let (status, model) = try_open(tiny_dir(), &newer.base);
    assert_error(status, JCLIP_ERR_UNSUPPORTED, "knows only the first");
    assert!(model.is_null());
}

#[test]
fn bad_option_values_are_rejected() {
    let unknown_isa = CString::new("avx9000").unwrap();
    let cases = [
        (jclip_options { precision: 9, ..options() }, JCLIP_ERR_INVALID_ARGUMENT, "options.precision is 9"),
        (jclip_options { truncation: 7, ..options() }, JCLIP_ERR_INVALID_ARGUMENT, "options.truncation is 7"),
        (jclip_options { isa: unknown_isa.as_ptr(), ..options() }, JCLIP_ERR_INVALID_ARGUMENT, "\"avx9000\""),
        (jclip_options { max_length: 1, ..options() }, JCLIP_ERR_INVALID_ARGUMENT, "max_length"),
    ];
    for (options, expected, message_part) in cases {
        let (status, model) = open_with(&options);
        assert_error(status, expected, message_part);
        assert!(model.is_null(), "{message_part}: a handle was returned");
    }
}

// ---- bad model directories ----

#[test]
fn missing_directory_is_io_error() {
    let (status, model) = try_open(Path::new("/nonexistent/jclip-model"), null());
    assert_error(status, JCLIP_ERR_IO, "/nonexistent/jclip-model");
    assert!(model.is_null());
}

#[test]
fn corrupt_config_is_model_error() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let (status, model) = try_open(dir.path(), null());
    assert_error(status, JCLIP_ERR_MODEL, "config.json");
    assert!(model.is_null());
}

#[test]
fn text_only_model_rejects_images() {
    let dir = synth_model(Preset::Tiny, SynthNaming::BareText, SynthDtype::F32);
    let model = open(dir.path());
    assert_eq!(image_dim(model), 0);
    let (status, _) = embed_images_raw(model, &as_c_images(&[read_photo("rocket.jpg")]), true, 96);
    assert_error(status, JCLIP_ERR_NO_IMAGE_TOWER, "text-only");
    let pixels = [0_u8; 3];
    let images = [jclip_rgb_image { data: pixels.as_ptr(), width: 1, height: 1, stride: 0 }];
    let (status, _) = embed_rgb_raw(model, &images, true, 96);
    assert_error(status, JCLIP_ERR_NO_IMAGE_TOWER, "text-only");
    close(model);
}

// ---- bad arguments ----

#[test]
fn null_pointers_are_rejected() {
    let model = open(tiny_dir());
    let dir = c_path(tiny_dir());
    let mut handle = null_mut();
    let mut dim = 0;
    let mut isa: *const c_char = null();
    let mut out = [f32::NAN; 96];
    let text = as_c_texts(&["a cat"]);
    let image = [jclip_image_bytes { data: null(), length: 10 }];
    let pixels = [jclip_rgb_image { data: null(), width: 2, height: 2, stride: 0 }];

    // SAFETY: every non-NULL pointer below is valid; the NULL ones are the point of the test.
    unsafe {
        assert_error(jclip_open(null(), null(), &mut handle), JCLIP_ERR_NULL_POINTER, "dir is NULL");
        assert_error(jclip_open(dir.as_ptr(), null(), null_mut()), JCLIP_ERR_NULL_POINTER, "out is NULL");

        assert_error(jclip_text_dim(null(), &mut dim), JCLIP_ERR_NULL_POINTER, "model is NULL");
        assert_error(jclip_text_dim(model.0, null_mut()), JCLIP_ERR_NULL_POINTER, "out is NULL");
        assert_error(jclip_image_dim(null(), &mut dim), JCLIP_ERR_NULL_POINTER, "model is NULL");
        assert_error(jclip_image_dim(model.0, null_mut()), JCLIP_ERR_NULL_POINTER, "out is NULL");
        assert_error(jclip_isa(null(), &mut isa), JCLIP_ERR_NULL_POINTER, "model is NULL");
        assert_error(jclip_isa(model.0, null_mut()), JCLIP_ERR_NULL_POINTER, "out is NULL");

        let out_ptr = out.as_mut_ptr();
        assert_error(jclip_embed_texts(null(), text.as_ptr(), 1, true, out_ptr, 96), JCLIP_ERR_NULL_POINTER, "model");
        assert_error(jclip_embed_texts(model.0, null(), 1, true, out_ptr, 96), JCLIP_ERR_NULL_POINTER, "texts");
        assert_error(jclip_embed_texts(model.0, text.as_ptr(), 1, true, null_mut(), 96), JCLIP_ERR_NULL_POINTER, "out");
        let null_text = [jclip_text { data: null(), length: 3 }];
        assert_error(
            jclip_embed_texts(model.0, null_text.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_NULL_POINTER,
            "text 0: data",
        );

        assert_error(jclip_embed_images(null(), image.as_ptr(), 1, true, out_ptr, 96), JCLIP_ERR_NULL_POINTER, "model");
        assert_error(jclip_embed_images(model.0, null(), 1, true, out_ptr, 96), JCLIP_ERR_NULL_POINTER, "images");
        assert_error(
            jclip_embed_images(model.0, image.as_ptr(), 1, true, null_mut(), 96),
            JCLIP_ERR_NULL_POINTER,
            "out",
        );
        assert_error(
            jclip_embed_images(model.0, image.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_NULL_POINTER,
            "image 0: data",
        );

        assert_error(
            jclip_embed_rgb_images(null(), pixels.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_NULL_POINTER,
            "model",
        );
        assert_error(jclip_embed_rgb_images(model.0, null(), 1, true, out_ptr, 96), JCLIP_ERR_NULL_POINTER, "images");
        assert_error(
            jclip_embed_rgb_images(model.0, pixels.as_ptr(), 1, true, null_mut(), 96),
            JCLIP_ERR_NULL_POINTER,
            "out",
        );
        assert_error(
            jclip_embed_rgb_images(model.0, pixels.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_NULL_POINTER,
            "image 0: data",
        );

        // Closing NULL is a no-op, as free(NULL) is.
        assert_eq!(jclip_close(null_mut()), JCLIP_OK);
    }
    assert!(out.iter().all(|v| v.is_nan()), "a failed call wrote to out");
    close(model);
}

#[test]
fn zero_count_batches_write_nothing() {
    let model = open(tiny_dir());
    let mut out = [f32::NAN; 4];
    // SAFETY: with count 0 the library reads no item and writes no float; NULL is allowed.
    unsafe {
        assert_eq!(jclip_embed_texts(model.0, null(), 0, true, null_mut(), 0), JCLIP_OK);
        assert_eq!(last_error(), "");
        assert_eq!(jclip_embed_images(model.0, null(), 0, true, null_mut(), 0), JCLIP_OK);
        assert_eq!(jclip_embed_rgb_images(model.0, null(), 0, true, null_mut(), 0), JCLIP_OK);
        assert_eq!(jclip_embed_texts(model.0, null(), 0, true, out.as_mut_ptr(), 4), JCLIP_OK);
    }
    assert!(out.iter().all(|v| v.is_nan()));
    close(model);
}

#[test]
fn invalid_utf8_names_text_and_byte() {
    let model = open(tiny_dir());
    let good = "fine";
    let bad: &[u8] = b"caf\xC3(x"; // a 2-byte sequence broken at byte 3
    let texts = [
        jclip_text { data: good.as_ptr().cast(), length: good.len() },
        jclip_text { data: good.as_ptr().cast(), length: good.len() },
        jclip_text { data: bad.as_ptr().cast(), length: bad.len() },
    ];
    let (status, out) = embed_texts_raw(model, &texts, true, 3 * 96);
    assert_error(status, JCLIP_ERR_INVALID_UTF8, "text 2: invalid UTF-8 at byte 3 of 6");
    assert!(out.iter().all(|v| v.is_nan()), "a failed call wrote to out");
    close(model);
}

#[test]
fn corrupt_images_name_their_index() {
    let model = open(tiny_dir());
    let good = read_photo("chelsea.png");
    let truncated_png = good[..good.len() / 2].to_vec();
    let cases: [(Vec<u8>, &str); 3] = [
        (b"definitely not an image".to_vec(), "image 1: the encoded image is not in a supported image format"),
        (Vec::new(), "image 1: the encoded image is empty"),
        (truncated_png, "image 1:"),
    ];
    for (bad, message_part) in cases {
        let files = [good.clone(), bad];
        let (status, out) = embed_images_raw(model, &as_c_images(&files), true, 2 * 96);
        assert_error(status, JCLIP_ERR_IMAGE, message_part);
        assert!(out.iter().all(|v| v.is_nan()), "{message_part}: a failed call wrote to out");
    }
    close(model);
}

#[test]
fn bad_rgb_images_are_rejected() {
    let model = open(tiny_dir());
    let pixels = [128_u8; 4 * 4 * 3];
    let cases = [
        (
            jclip_rgb_image { data: pixels.as_ptr(), width: 4, height: 4, stride: 11 },
            JCLIP_ERR_INVALID_ARGUMENT,
            "image 0: stride 11",
        ),
        (jclip_rgb_image { data: pixels.as_ptr(), width: 0, height: 4, stride: 0 }, JCLIP_ERR_IMAGE, "image 0"),
        (jclip_rgb_image { data: null(), width: 4, height: 0, stride: 0 }, JCLIP_ERR_IMAGE, "image 0"),
        (
            jclip_rgb_image { data: pixels.as_ptr(), width: 4, height: u32::MAX, stride: usize::MAX / 2 },
            JCLIP_ERR_INVALID_ARGUMENT,
            "overflows",
        ),
    ];
    for (image, expected, message_part) in cases {
        let (status, out) = embed_rgb_raw(model, &[image], true, 96);
        assert_error(status, expected, message_part);
        assert!(out.iter().all(|v| v.is_nan()));
    }
    // A valid 4 × 4 image works.
    let image = jclip_rgb_image { data: pixels.as_ptr(), width: 4, height: 4, stride: 0 };
    let (status, _) = embed_rgb_raw(model, &[image], true, 96);
    assert_eq!(status, JCLIP_OK, "{}", last_error());
    close(model);
}

#[test]
fn small_output_is_rejected_untouched() {
    let model = open(tiny_dir());
    let (status, out) = embed_texts_raw(model, &as_c_texts(&TEXTS), true, 3 * 96 - 1);
    assert_error(
        status,
        JCLIP_ERR_BUFFER_TOO_SMALL,
        "out_capacity is 287 floats, but 3 texts × 96 dimensions need 288",
    );
    assert!(out.iter().all(|v| v.is_nan()));

    let (status, _) = embed_images_raw(model, &as_c_images(&[read_photo("rocket.jpg")]), true, 0);
    assert_error(status, JCLIP_ERR_BUFFER_TOO_SMALL, "1 images × 96 dimensions need 96");

    let pixels = [0_u8; 3];
    let images = [jclip_rgb_image { data: pixels.as_ptr(), width: 1, height: 1, stride: 0 }];
    let (status, _) = embed_rgb_raw(model, &images, true, 95);
    assert_error(status, JCLIP_ERR_BUFFER_TOO_SMALL, "need 96");
    close(model);
}

#[test]
fn misaligned_output_is_rejected() {
    let model = open(tiny_dir());
    let mut storage = vec![0_u8; 97 * 4];
    let texts = as_c_texts(&["a cat"]);
    // SAFETY: `storage` has 96 floats' worth of bytes after offset 1; the call rejects the alignment first.
    let status =
        unsafe { jclip_embed_texts(model.0, texts.as_ptr(), 1, true, storage.as_mut_ptr().add(1).cast::<f32>(), 96) };
    assert_error(status, JCLIP_ERR_INVALID_ARGUMENT, "out is not aligned");
    close(model);
}

// ---- handles ----

#[test]
fn closed_handle_is_detected() {
    let model = open(tiny_dir());
    assert_eq!(close(model), JCLIP_OK);

    let mut dim = 0;
    let mut isa: *const c_char = null();
    let mut out = [f32::NAN; 96];
    let texts = as_c_texts(&["a cat"]);
    let image = read_photo("rocket.jpg");
    let images = as_c_images(std::slice::from_ref(&image));
    let pixels = [0_u8; 3];
    let rgb = [jclip_rgb_image { data: pixels.as_ptr(), width: 1, height: 1, stride: 0 }];
    // SAFETY: the handle came from jclip_open (the shell of a closed handle stays valid); the rest is valid.
    unsafe {
        assert_error(jclip_close(model.0), JCLIP_ERR_CLOSED_HANDLE, "already closed");
        assert_error(jclip_text_dim(model.0, &mut dim), JCLIP_ERR_CLOSED_HANDLE, "already closed");
        assert_error(jclip_image_dim(model.0, &mut dim), JCLIP_ERR_CLOSED_HANDLE, "already closed");
        assert_error(jclip_isa(model.0, &mut isa), JCLIP_ERR_CLOSED_HANDLE, "already closed");
        let out_ptr = out.as_mut_ptr();
        assert_error(
            jclip_embed_texts(model.0, texts.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_CLOSED_HANDLE,
            "closed",
        );
        assert_error(
            jclip_embed_images(model.0, images.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_CLOSED_HANDLE,
            "closed",
        );
        assert_error(
            jclip_embed_rgb_images(model.0, rgb.as_ptr(), 1, true, out_ptr, 96),
            JCLIP_ERR_CLOSED_HANDLE,
            "closed",
        );
        // A zero-item batch on a closed handle is still an error.
        assert_error(jclip_embed_texts(model.0, null(), 0, true, null_mut(), 0), JCLIP_ERR_CLOSED_HANDLE, "closed");
    }
    assert_eq!(dim, 0);
    assert!(isa.is_null());
    assert!(out.iter().all(|v| v.is_nan()));
}

#[test]
fn foreign_pointer_is_invalid_handle() {
    // Zeroed, aligned memory larger than a handle: readable, but without the magic number.
    let fake = [0_u64; 32];
    let fake_handle = fake.as_ptr().cast::<jclip_model>();
    let mut dim = 0;
    // SAFETY: the memory is readable and aligned; the call only compares its magic field.
    let status = unsafe { jclip_text_dim(fake_handle, &mut dim) };
    assert_error(status, JCLIP_ERR_INVALID_HANDLE, "wrong magic number");

    // SAFETY: the library checks alignment before reading through the pointer.
    let status = unsafe { jclip_text_dim(fake.as_ptr().cast::<u8>().add(1).cast::<jclip_model>(), &mut dim) };
    assert_error(status, JCLIP_ERR_INVALID_HANDLE, "misaligned");
}

// ---- threads ----

#[test]
fn one_handle_serves_several_threads() {
    let model = open(tiny_dir());
    let photo = read_photo("rocket.jpg");
    let expected_texts = embed_texts(model, &TEXTS, true);
    let (status, expected_image) = embed_images_raw(model, &as_c_images(std::slice::from_ref(&photo)), true, 96);
    assert_eq!(status, JCLIP_OK, "{}", last_error());

    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (photo, expected_texts, expected_image) = (&photo, &expected_texts, &expected_image);
            scope.spawn(move || {
                for round in 0..3 {
                    assert_eq!(&embed_texts(model, &TEXTS, true), expected_texts, "thread {thread} round {round}");
                    let images = as_c_images(std::slice::from_ref(photo));
                    let (status, out) = embed_images_raw(model, &images, true, 96);
                    assert_eq!(status, JCLIP_OK, "{}", last_error());
                    assert_eq!(&out, expected_image, "thread {thread} round {round}");
                }
            });
        }
    });
    close(model);
}

#[test]
fn last_error_is_per_thread() {
    let model = open(tiny_dir());
    let bad = [jclip_text { data: b"\xFF".as_ptr().cast(), length: 1 }];
    let (status, _) = embed_texts_raw(model, &bad, true, 96);
    assert_eq!(status, JCLIP_ERR_INVALID_UTF8);

    // Another thread fails differently and succeeds; this thread's message stays.
    std::thread::spawn(move || {
        assert_eq!(last_error(), "");
        let (status, _) = embed_texts_raw(model, &as_c_texts(&["a cat"]), true, 1);
        assert_eq!(status, JCLIP_ERR_BUFFER_TOO_SMALL);
        assert!(last_error().contains("out_capacity"));
    })
    .join()
    .unwrap();
    assert_eq!(last_error(), "text 0: invalid UTF-8 at byte 0 of 1");

    // A successful call clears it.
    embed_texts(model, &["a cat"], true);
    assert_eq!(last_error(), "");
    close(model);
}

#[test]
fn close_waits_for_running_calls() {
    let model = open(tiny_dir());
    let expected = embed_texts(model, &TEXTS, true);
    let started = std::sync::Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (started, expected) = (&started, &expected);
            scope.spawn(move || {
                started.wait();
                // Embed until the handle is closed: every call either
                // completes with the right result or reports the closed handle.
                let mut completed = 0;
                loop {
                    let (status, out) = embed_texts_raw(model, &as_c_texts(&TEXTS), true, 3 * 96);
                    match status {
                        JCLIP_OK => {
                            assert_eq!(&out, expected);
                            completed += 1;
                        }
                        JCLIP_ERR_CLOSED_HANDLE => {
                            assert!(out.iter().all(|v| v.is_nan()));
                            break;
                        }
                        other => panic!("unexpected status {other:?}: {}", last_error()),
                    }
                }
                assert!(completed > 0, "no call ran before the close");
            });
        }
        started.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(close(model), JCLIP_OK);
    });
}

// ---- static strings ----

#[test]
fn status_names_cover_every_code() {
    for value in 0..=15 {
        // SAFETY: jclip_status_name returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(jclip_status_name(value)) }.to_str().unwrap();
        assert!(name.starts_with("JCLIP_"), "status {value} is named {name}");
    }
    // SAFETY: as above.
    let ok = unsafe { CStr::from_ptr(jclip_status_name(JCLIP_OK as i32)) };
    assert_eq!(ok.to_str().unwrap(), "JCLIP_OK");
    // SAFETY: as above.
    let image = unsafe { CStr::from_ptr(jclip_status_name(JCLIP_ERR_IMAGE as i32)) };
    assert_eq!(image.to_str().unwrap(), "JCLIP_ERR_IMAGE");
    for value in [-1, 16, i32::MAX] {
        // SAFETY: as above.
        let name = unsafe { CStr::from_ptr(jclip_status_name(value)) };
        assert_eq!(name.to_str().unwrap(), "unknown status");
    }
}

#[test]
fn version_matches_crate() {
    // SAFETY: jclip_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(jclip_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn status_is_int_sized() {
    // C compilers give an enum of small values the size of int.
    assert_eq!(std::mem::size_of::<jclip_status>(), std::mem::size_of::<i32>());
}
