//! The C API: `extern "C"` functions over a model handle, built into
//! `libjclip.a` and `libjclip.so`.
//!
//! cbindgen generates `include/jclip.h` from this module, with the settings
//! and the header's opening comment in `cbindgen.toml`. The comment on each
//! item here becomes its comment in the header. Every function runs its body
//! in [`status::guard`], which catches panics, so no unwinding crosses the C
//! boundary.
#![warn(clippy::undocumented_unsafe_blocks)]

mod buffers;
mod handle;
mod options;
mod status;

use std::ffi::{CStr, c_char};
use std::sync::OnceLock;

pub use buffers::{jclip_image_bytes, jclip_rgb_image, jclip_text};
pub use handle::jclip_model;
pub use options::{jclip_options, jclip_precision, jclip_truncation};
pub use status::jclip_status;

use buffers::{Output, borrow_array};
use status::{Failure, guard, jclip_status::*};

use crate::embed::Input;
use crate::model::Model;

/// Opens the model directory `dir` (`config.json`, `model.safetensors`,
/// `tokenizer.json`, `preprocessor_config.json`) and stores the new handle
/// in `*out`; on failure `*out` is set to NULL.
///
/// `options` may be NULL for every default.
///
/// # Safety
/// `dir` must be NULL or a NUL-terminated path. `options` must be NULL or
/// point to a `jclip_options` of `options->size` bytes. `out` must be NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_open(
    dir: *const c_char,
    options: *const jclip_options,
    out: *mut *mut jclip_model,
) -> jclip_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: `out` is non-NULL and writable by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        if dir.is_null() {
            return Err(Failure::null("dir"));
        }
        // SAFETY: `dir` is non-NULL and NUL-terminated by the contract.
        let dir = path_from_c(unsafe { CStr::from_ptr(dir) })?;
        // SAFETY: forwarded from this function's contract on `options`.
        let options = unsafe { options::read_options(options) }?;
        let model = Model::open(dir, &options)?;
        // SAFETY: as above.
        unsafe { out.write(jclip_model::into_raw(model)) };
        Ok(())
    })
}

/// Closes `model`: frees its weights and worker threads once the calls in
/// progress on other threads have returned. Later calls with the handle
/// return `JCLIP_ERR_CLOSED_HANDLE`, a second close included. Closing NULL
/// does nothing and returns `JCLIP_OK`, as `free(NULL)` does.
///
/// NOTE: a shell of each handle (at most 64 bytes) stays allocated after
/// close, so that closed handles can be detected. A program that opens and
/// closes millions of models keeps that much per model.
///
/// # Safety
/// `model` must be NULL or a pointer returned by `jclip_open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_close(model: *mut jclip_model) -> jclip_status {
    guard(|| {
        if model.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { jclip_model::from_ptr(model) }?.close()
    })
}

/// Stores the width of text embeddings in `*out`.
///
/// # Safety
/// `model` must be NULL or a pointer returned by `jclip_open`; `out` must be
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_text_dim(model: *const jclip_model, out: *mut usize) -> jclip_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { write_property(model, out, |model| model.text_dim()) }
}

/// Stores the width of image embeddings in `*out`, 0 for a text-only model.
///
/// # Safety
/// As for `jclip_text_dim`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_image_dim(model: *const jclip_model, out: *mut usize) -> jclip_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { write_property(model, out, |model| model.image_dim().unwrap_or(0)) }
}

/// Stores in `*out` the name of the kernel tier that `model` runs (such as
/// "scalar"): a NUL-terminated static string, valid until the program ends.
///
/// # Safety
/// As for `jclip_text_dim`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_isa(model: *const jclip_model, out: *mut *const c_char) -> jclip_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { write_property(model, out, |model| isa_name(model.isa())) }
}

/// Embeds `count` UTF-8 texts and writes `count × text_dim` floats to `out`,
/// one row per text in input order, L2-normalised when `normalize` is true.
///
/// `out_capacity` is the length of `out` in floats; if it is too small, the
/// call fails with `JCLIP_ERR_BUFFER_TOO_SMALL` and writes nothing. On any
/// error `out` is left unchanged. `count` 0 returns `JCLIP_OK` and writes
/// nothing; `texts` and `out` may then be NULL.
///
/// # Safety
/// `model` must be NULL or a pointer returned by `jclip_open`. A non-NULL
/// `texts` must point to `count` `jclip_text` values whose buffers are
/// readable. A non-NULL `out` must be writable for `out_capacity` floats and
/// must not overlap any input.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_embed_texts(
    model: *const jclip_model,
    texts: *const jclip_text,
    count: usize,
    normalize: bool,
    out: *mut f32,
    out_capacity: usize,
) -> jclip_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { jclip_model::from_ptr(model) }?;
        let model = handle.open_model()?;
        if count == 0 {
            return Ok(());
        }
        // SAFETY: forwarded from this function's contract.
        let texts = unsafe { borrow_array(texts, count, "texts") }?;
        let output = Output::new(out, out_capacity, count, model.text_dim(), "texts")?;
        let embeddings = {
            let mut inputs = Vec::with_capacity(count);
            for (index, text) in texts.iter().enumerate() {
                // SAFETY: the buffers of `texts` are readable by the contract.
                inputs.push(Input::Text(unsafe { text.to_str(index) }?));
            }
            model.embed(&inputs, normalize)?
        };
        // SAFETY: `out` is writable for `out_capacity` floats and overlaps no input.
        unsafe { output.write(&embeddings) };
        Ok(())
    })
}

/// Embeds `count` encoded image files held in memory (JPEG, PNG, WebP, GIF,
/// BMP or TIFF) and writes `count × image_dim` floats to `out`, one row per
/// image in input order. The output contract is that of `jclip_embed_texts`.
/// A corrupt or unsupported file fails with `JCLIP_ERR_IMAGE`, and a
/// text-only model with `JCLIP_ERR_NO_IMAGE_TOWER`.
///
/// # Safety
/// As for `jclip_embed_texts`, with `images` in place of `texts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_embed_images(
    model: *const jclip_model,
    images: *const jclip_image_bytes,
    count: usize,
    normalize: bool,
    out: *mut f32,
    out_capacity: usize,
) -> jclip_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { jclip_model::from_ptr(model) }?;
        let model = handle.open_model()?;
        if count == 0 {
            return Ok(());
        }
        let dim = image_dim(&model)?;
        // SAFETY: forwarded from this function's contract.
        let images = unsafe { borrow_array(images, count, "images") }?;
        let output = Output::new(out, out_capacity, count, dim, "images")?;
        let embeddings = {
            let mut inputs = Vec::with_capacity(count);
            for (index, image) in images.iter().enumerate() {
                // SAFETY: the buffers of `images` are readable by the contract.
                inputs.push(Input::ImageBytes(unsafe { image.to_bytes(index) }?));
            }
            model.embed(&inputs, normalize)?
        };
        // SAFETY: `out` is writable for `out_capacity` floats and overlaps no input.
        unsafe { output.write(&embeddings) };
        Ok(())
    })
}

/// Embeds `count` decoded RGB8 images (see `jclip_rgb_image` for the pixel
/// layout) and writes `count × image_dim` floats to `out`, one row per image
/// in input order. The images go through the same resize, crop and
/// normalisation as encoded files. The output contract is that of
/// `jclip_embed_texts`.
///
/// # Safety
/// As for `jclip_embed_texts`, with `images` in place of `texts`; each
/// image's `data` must be readable for the extent that `jclip_rgb_image`
/// describes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jclip_embed_rgb_images(
    model: *const jclip_model,
    images: *const jclip_rgb_image,
    count: usize,
    normalize: bool,
    out: *mut f32,
    out_capacity: usize,
) -> jclip_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { jclip_model::from_ptr(model) }?;
        let model = handle.open_model()?;
        if count == 0 {
            return Ok(());
        }
        let dim = image_dim(&model)?;
        // SAFETY: forwarded from this function's contract.
        let images = unsafe { borrow_array(images, count, "images") }?;
        let output = Output::new(out, out_capacity, count, dim, "images")?;
        let mut decoded = Vec::with_capacity(count);
        for (index, image) in images.iter().enumerate() {
            // SAFETY: the pixels of `images` are readable by the contract.
            decoded.push(unsafe { image.to_image(index) }?);
        }
        let inputs: Vec<Input<'_>> = decoded.iter().map(Input::Rgb).collect();
        let embeddings = model.embed(&inputs, normalize)?;
        // SAFETY: `out` is writable for `out_capacity` floats and overlaps no input.
        unsafe { output.write(&embeddings) };
        Ok(())
    })
}

/// Returns the message of the last failed call on this thread, naming the
/// argument or input at fault, or "" if the last call succeeded. The string
/// stays valid until this thread's next call of a function that returns a
/// `jclip_status`. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn jclip_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// Returns the name of a status constant (such as "JCLIP_ERR_IMAGE") as a
/// static string, or "unknown status" for a value no version of jclip has.
/// Leaves the last error unchanged.
#[unsafe(no_mangle)]
pub extern "C" fn jclip_status_name(status: i32) -> *const c_char {
    let name = jclip_status::ALL.iter().find(|&&known| known as i32 == status).map(|known| known.name());
    name.unwrap_or(c"unknown status").as_ptr()
}

/// Returns the version of the library, such as "0.1.0", as a static string.
#[unsafe(no_mangle)]
pub extern "C" fn jclip_version() -> *const c_char {
    const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the package version contains no NUL"),
    };
    VERSION.as_ptr()
}

/// Runs `property` on the open model behind `model` and stores the result in `*out`.
///
/// # Safety
/// `model` must be NULL or a pointer returned by `jclip_open`; `out` must be
/// NULL or writable.
unsafe fn write_property<T>(
    model: *const jclip_model,
    out: *mut T,
    property: impl FnOnce(&Model) -> T,
) -> jclip_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { jclip_model::from_ptr(model) }?;
        let model = handle.open_model()?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if !out.is_aligned() {
            return Err(Failure::invalid("out is misaligned"));
        }
        // SAFETY: non-NULL, aligned and writable by the contract.
        unsafe { out.write(property(&model)) };
        Ok(())
    })
}

fn image_dim(model: &Model) -> Result<usize, Failure> {
    model.image_dim().ok_or_else(|| {
        Failure::new(
            JCLIP_ERR_NO_IMAGE_TOWER,
            format!("{} is a text-only model without an image tower", model.dir().display()),
        )
    })
}

/// Returns the tier's name as a static C string.
fn isa_name(isa: jclip_kernels::Isa) -> *const c_char {
    static NAMES: OnceLock<Vec<(jclip_kernels::Isa, std::ffi::CString)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        jclip_kernels::Isa::ALL
            .iter()
            .map(|&isa| (isa, std::ffi::CString::new(isa.name()).expect("tier names contain no NUL")))
            .collect()
    });
    let (_, name) = names.iter().find(|(known, _)| *known == isa).expect("Isa::ALL lists every tier");
    name.as_ptr()
}

#[cfg(unix)]
fn path_from_c(dir: &CStr) -> Result<&std::path::Path, Failure> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(dir.to_bytes())))
}

#[cfg(not(unix))]
fn path_from_c(dir: &CStr) -> Result<&std::path::Path, Failure> {
    dir.to_str().map(std::path::Path::new).map_err(|error| {
        Failure::new(JCLIP_ERR_INVALID_UTF8, format!("dir: invalid UTF-8 at byte {}", error.valid_up_to()))
    })
}
