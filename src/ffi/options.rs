//! `jclip_options`: how C callers open a model.

use std::ffi::{CStr, c_char};
use std::mem::size_of;

use jclip_kernels::Isa;

use super::status::{Failure, jclip_status::*};
use crate::options::ModelOptions;
use crate::precision::Precision;
use crate::text::Truncation;

/// Options of `jclip_open`. Zero in any field selects its default, so
/// initialise the whole struct to zero and set `size`:
///
/// ```c
/// jclip_options options = { .size = sizeof(jclip_options), .threads = 4 };
/// ```
///
/// Later versions of jclip add fields at the end and keep the old ones.
/// Because `size` is the struct size in the caller's header, fields past
/// `size` take their defaults. A `size` larger than this library's struct
/// is accepted only when the extra bytes are zero.
//
// Layout rule: every field is 4 or 8 bytes wide and 8-byte fields sit at
// multiples of 8, so the struct has no padding on 64-bit targets and a
// zero-initialised struct has no bytes of unspecified value.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct jclip_options {
    /// `sizeof(jclip_options)` as the caller's header defines it.
    pub size: u32,
    /// Worker threads of the model, at most 1024; 0 uses the `JCLIP_THREADS`
    /// environment variable, else the CPUs available to the process.
    pub threads: u32,
    /// Token limit per text, including `[CLS]` and `[SEP]`; 0 means 512.
    pub max_length: u32,
    /// A `jclip_truncation` value; 0 is `JCLIP_TRUNCATION_RIGHT`.
    pub truncation: u32,
    /// A `jclip_precision` value; 0 is `JCLIP_PRECISION_AUTO`.
    pub precision: u32,
    /// Maximum tokens per forward pass (an image counts its patches plus
    /// one); 0 means 8192.
    pub batch_tokens: u32,
    /// Encoded images with more pixels are rejected before their pixels are
    /// decoded; 0 means 178956970, Pillow's limit.
    pub max_image_pixels: u64,
    /// Kernel tier by name (such as "scalar"), NUL-terminated; NULL uses the
    /// `JCLIP_ISA` environment variable, else the best tier the CPU supports.
    pub isa: *const c_char,
    /// Nonzero rotates encoded images by their EXIF orientation tag. Off by
    /// default, because the PyTorch reference pipeline (Pillow's `Image.open`)
    /// ignores it.
    pub apply_exif_orientation: u32,
    /// Nonzero lets idle worker threads sleep between kernels instead of
    /// polling for work during a forward pass (the CLI's `--no-spin`): less
    /// CPU time spent waiting, slower on short inputs with several threads.
    /// 0, the default, polls; a model with one thread, or with more threads
    /// than CPUs, never polls.
    pub no_spin: u32,
}

/// Truncation policy for texts longer than `max_length` tokens.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum jclip_truncation {
    /// Keep the first `max_length` tokens, as the reference does.
    JCLIP_TRUNCATION_RIGHT = 0,
    /// Fail with `JCLIP_ERR_INPUT_TOO_LONG`.
    JCLIP_TRUNCATION_NONE = 1,
}

/// Precision of the linear layers' weights. LayerNorm, softmax, residuals
/// and pooling run in float32 whatever the precision.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum jclip_precision {
    /// The precision of a directory written by `jclip convert`, else float32.
    JCLIP_PRECISION_AUTO = 0,
    /// float32 weights.
    JCLIP_PRECISION_F32 = 1,
    /// IEEE half weights, float32 arithmetic.
    JCLIP_PRECISION_F16 = 2,
    /// 16-bit weights: bfloat16 in the image tower (bf16 dot products where
    /// the CPU has them), IEEE half in the text tower.
    JCLIP_PRECISION_BF16 = 3,
    /// int8 weights with per-output-feature scales, activations quantised
    /// per token, integer dot products.
    JCLIP_PRECISION_INT8 = 4,
}

impl jclip_truncation {
    fn from_raw(value: u32) -> Option<jclip_truncation> {
        [jclip_truncation::JCLIP_TRUNCATION_RIGHT, jclip_truncation::JCLIP_TRUNCATION_NONE]
            .into_iter()
            .find(|&truncation| truncation as u32 == value)
    }
}

impl jclip_precision {
    fn from_raw(value: u32) -> Option<jclip_precision> {
        use jclip_precision::*;
        [JCLIP_PRECISION_AUTO, JCLIP_PRECISION_F32, JCLIP_PRECISION_F16, JCLIP_PRECISION_BF16, JCLIP_PRECISION_INT8]
            .into_iter()
            .find(|&precision| precision as u32 == value)
    }
}

/// Size of the first version of `jclip_options`, the smallest `size` accepted.
pub(crate) const OPTIONS_SIZE: usize = size_of::<jclip_options>();

/// Reads the caller's options; NULL selects every default.
///
/// # Safety
/// `options` must be NULL or point to at least `options->size` readable
/// bytes, and a non-NULL `options->isa` must point to a NUL-terminated string.
pub(crate) unsafe fn read_options(options: *const jclip_options) -> Result<ModelOptions, Failure> {
    if options.is_null() {
        return Ok(ModelOptions::default());
    }
    // SAFETY: every jclip_options begins with its u32 size, which the caller
    // guarantees is readable; the read tolerates any alignment.
    let size = unsafe { options.cast::<u32>().read_unaligned() } as usize;
    if size < OPTIONS_SIZE {
        return Err(Failure::invalid(format!(
            "options.size is {size}, expected sizeof(jclip_options) = {OPTIONS_SIZE}; set it to sizeof(jclip_options)"
        )));
    }
    if size > OPTIONS_SIZE {
        // SAFETY: the caller guarantees `size` readable bytes from `options`.
        let newer = unsafe { std::slice::from_raw_parts(options.cast::<u8>().add(OPTIONS_SIZE), size - OPTIONS_SIZE) };
        if let Some(offset) = newer.iter().position(|&byte| byte != 0) {
            return Err(Failure::new(
                JCLIP_ERR_UNSUPPORTED,
                format!(
                    "options.size is {size}, but this version of jclip knows only the first {OPTIONS_SIZE} bytes, \
                     and byte {} after them is set; link the jclip version whose header you compiled against",
                    OPTIONS_SIZE + offset
                ),
            ));
        }
    }
    // SAFETY: at least OPTIONS_SIZE bytes are readable, and every field is an
    // integer or a raw pointer, valid for any bit pattern.
    let raw = unsafe { options.read_unaligned() };
    // SAFETY: forwarded from this function's contract on `isa`.
    unsafe { to_model_options(&raw) }
}

/// # Safety
/// A non-NULL `raw.isa` must point to a NUL-terminated string.
unsafe fn to_model_options(raw: &jclip_options) -> Result<ModelOptions, Failure> {
    let mut options = ModelOptions::default();
    if raw.threads != 0 {
        options.threads = Some(raw.threads as usize);
    }
    if raw.max_length != 0 {
        options.max_length = raw.max_length as usize;
    }
    options.truncation = match jclip_truncation::from_raw(raw.truncation) {
        Some(jclip_truncation::JCLIP_TRUNCATION_RIGHT) => Truncation::Right,
        Some(jclip_truncation::JCLIP_TRUNCATION_NONE) => Truncation::Disabled,
        None => {
            return Err(Failure::invalid(format!(
                "options.truncation is {}; expected JCLIP_TRUNCATION_RIGHT (0) or JCLIP_TRUNCATION_NONE (1)",
                raw.truncation
            )));
        }
    };
    options.precision = match jclip_precision::from_raw(raw.precision) {
        Some(jclip_precision::JCLIP_PRECISION_AUTO) => None,
        Some(jclip_precision::JCLIP_PRECISION_F32) => Some(Precision::F32),
        Some(jclip_precision::JCLIP_PRECISION_F16) => Some(Precision::F16),
        Some(jclip_precision::JCLIP_PRECISION_BF16) => Some(Precision::BF16),
        Some(jclip_precision::JCLIP_PRECISION_INT8) => Some(Precision::Int8),
        None => {
            return Err(Failure::invalid(format!(
                "options.precision is {}; expected a jclip_precision value from 0 to 4",
                raw.precision
            )));
        }
    };
    if raw.batch_tokens != 0 {
        options.batch_tokens = raw.batch_tokens as usize;
    }
    if raw.max_image_pixels != 0 {
        options.max_image_pixels = raw.max_image_pixels;
    }
    if !raw.isa.is_null() {
        // SAFETY: the caller guarantees a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(raw.isa) }.to_string_lossy();
        let isa = Isa::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = Isa::ALL.iter().map(|isa| isa.name()).collect();
            Failure::invalid(format!(
                "options.isa is {name:?}, which is not a kernel tier of this build; expected one of: {}",
                known.join(", ")
            ))
        })?;
        options.isa = Some(isa);
    }
    options.apply_exif_orientation = raw.apply_exif_orientation != 0;
    options.spin = raw.no_spin == 0;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_have_no_padding() {
        let fields = 6 * size_of::<u32>() + size_of::<u64>() + size_of::<*const c_char>() + 2 * size_of::<u32>();
        assert_eq!(OPTIONS_SIZE, fields);
    }

    #[test]
    fn no_spin_turns_polling_off() {
        // SAFETY: all-zero bytes are a valid jclip_options (integers 0, `isa` NULL),
        // which is how the header tells C callers to initialise it.
        let mut raw = jclip_options { size: OPTIONS_SIZE as u32, ..unsafe { std::mem::zeroed() } };
        // SAFETY: `isa` is NULL.
        let polling = unsafe { to_model_options(&raw) }.expect("zeroed options are valid");
        assert!(polling.spin, "zero keeps the default, polling");
        raw.no_spin = 1;
        // SAFETY: as above.
        let sleeping = unsafe { to_model_options(&raw) }.expect("no_spin = 1 is valid");
        assert!(!sleeping.spin, "nonzero turns polling off");
    }
}
