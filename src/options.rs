//! Options for opening a model.

use jclip_kernels::Isa;

use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::preprocess::DEFAULT_MAX_PIXELS;
use crate::text::Truncation;
use crate::text::tokenizer::DEFAULT_MAX_LENGTH;

/// Environment variable that sets the worker thread count when the options do not.
pub const THREADS_ENV: &str = "JCLIP_THREADS";

/// Maximum worker threads of a model: more than the 768 hardware threads
/// of a two-socket server with 192-core CPUs. A larger count is most likely
/// a typo, and would start that many operating-system threads.
pub const MAX_THREADS: usize = 1024;

/// Default token budget of one forward pass; larger requests run in several.
/// An image counts as its patch tokens plus CLS (197 for jina-clip-v1).
pub const DEFAULT_BATCH_TOKENS: usize = 8192;

/// Settings for opening and running a model.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Worker threads; `None` uses `JCLIP_THREADS`, else the CPUs available to
    /// this process (which respects container CPU quotas).
    pub threads: Option<usize>,
    /// Token limit per text, including `[CLS]` and `[SEP]`.
    pub max_length: usize,
    /// Handling of texts longer than `max_length`.
    pub truncation: Truncation,
    /// Maximum tokens per forward pass.
    pub batch_tokens: usize,
    /// Kernel tier; `None` picks the best the CPU supports (or `JCLIP_ISA`).
    pub isa: Option<Isa>,
    /// Images with more pixels are rejected before their pixels are decoded.
    pub max_image_pixels: u64,
    /// Rotate images by their EXIF orientation. Off by default because the
    /// reference (Pillow's `Image.open`) ignores it.
    pub apply_exif_orientation: bool,
    /// Weight precision. `None` takes the precision of a directory written by
    /// `jclip convert`, and f32 for an original checkpoint, which is packed
    /// at load in whatever precision is asked for.
    pub precision: Option<Precision>,
    /// Whether the idle worker threads poll for work during a forward pass
    /// instead of sleeping between kernels (see
    /// [`jclip_kernels::with_workers_polling`]). On by default, because
    /// waking a sleeping thread can cost tens of microseconds per kernel,
    /// which short inputs feel. Off, the other cores stay free while one
    /// thread works. A pool of one thread never polls, nor does a pool with
    /// more threads than the CPUs available, where a polling thread would
    /// take CPU time from a working one.
    pub spin: bool,
}

impl Default for ModelOptions {
    fn default() -> ModelOptions {
        ModelOptions {
            threads: None,
            max_length: DEFAULT_MAX_LENGTH,
            truncation: Truncation::Right,
            batch_tokens: DEFAULT_BATCH_TOKENS,
            isa: None,
            max_image_pixels: DEFAULT_MAX_PIXELS,
            apply_exif_orientation: false,
            precision: None,
            spin: true,
        }
    }
}

impl ModelOptions {
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = Some(precision);
        self
    }

    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    pub fn truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    pub fn batch_tokens(mut self, batch_tokens: usize) -> Self {
        self.batch_tokens = batch_tokens;
        self
    }

    pub fn isa(mut self, isa: Isa) -> Self {
        self.isa = Some(isa);
        self
    }

    pub fn max_image_pixels(mut self, max_image_pixels: u64) -> Self {
        self.max_image_pixels = max_image_pixels;
        self
    }

    pub fn apply_exif_orientation(mut self, apply: bool) -> Self {
        self.apply_exif_orientation = apply;
        self
    }

    /// Sets [`ModelOptions::spin`]: `false` lets idle workers sleep between kernels.
    pub fn spin(mut self, spin: bool) -> Self {
        self.spin = spin;
        self
    }
}

/// Returns `threads` when it is a valid worker count, from 1 to [`MAX_THREADS`].
///
/// # Errors
/// [`Error::InvalidOption`] naming the `threads` option otherwise.
pub fn check_threads(threads: usize) -> Result<usize> {
    if threads == 0 || threads > MAX_THREADS {
        return Err(Error::InvalidOption {
            name: "threads",
            value: threads.to_string(),
            reason: format!("use 1 to {MAX_THREADS} threads"),
        });
    }
    Ok(threads)
}

/// Returns the worker count: the option, else `JCLIP_THREADS`, else the available CPUs.
pub(crate) fn resolve_threads(requested: Option<usize>) -> Result<usize> {
    if let Some(threads) = requested {
        return check_threads(threads);
    }
    if let Ok(value) = std::env::var(THREADS_ENV)
        && !value.trim().is_empty()
    {
        return match value.trim().parse::<usize>() {
            Ok(threads) if (1..=MAX_THREADS).contains(&threads) => Ok(threads),
            _ => Err(Error::InvalidOption {
                name: THREADS_ENV,
                value,
                reason: format!("expected an integer; use 1 to {MAX_THREADS} threads"),
            }),
        };
    }
    Ok(available_cpus())
}

/// Returns the CPUs this process may run on, 1 when unknown.
pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}
