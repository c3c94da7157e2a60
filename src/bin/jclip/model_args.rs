//! Options shared by every subcommand that opens a model.

use std::path::PathBuf;

use jclip::{ModelOptions, Precision, Truncation};

/// How texts longer than `--max-length` are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TruncateMode {
    /// Keep the first tokens, as the reference does.
    Right,
    /// Reject the text with an error stating its token count.
    None,
}

/// Options for opening a model directory.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory with config.json, model.safetensors and tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// Worker threads, 1 to 1024 (default: JCLIP_THREADS, else the CPUs available to the process).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Token limit per text, including [CLS] and [SEP].
    #[arg(long, value_name = "N", default_value_t = jclip::text::tokenizer::DEFAULT_MAX_LENGTH)]
    pub max_length: usize,

    /// What happens to texts longer than --max-length.
    #[arg(long, value_enum, default_value_t = TruncateMode::Right)]
    pub truncate: TruncateMode,

    /// Maximum tokens per forward pass (an image counts as its patches plus CLS); an input longer than this runs alone.
    #[arg(long, value_name = "N", default_value_t = jclip::options::DEFAULT_BATCH_TOKENS)]
    pub batch_tokens: usize,

    /// Reject images with more pixels than this, before decoding them.
    #[arg(long, value_name = "PIXELS", default_value_t = jclip::preprocess::DEFAULT_MAX_PIXELS)]
    pub max_image_pixels: u64,

    /// Rotate images by their EXIF orientation tag (the reference does not).
    #[arg(long)]
    pub exif_orientation: bool,

    /// Weight precision: f32, f16, bf16, int8 (default: the precision of a
    /// directory written by `jclip convert`, else f32).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<Precision>,

    /// Let idle worker threads sleep between kernels instead of polling for
    /// work during a forward pass: less CPU time spent waiting, slower on
    /// short inputs with several threads. No effect with --threads 1 or with
    /// more threads than CPUs, which never poll.
    #[arg(long)]
    pub no_spin: bool,
}

impl ModelArgs {
    pub fn options(&self) -> ModelOptions {
        let mut options = ModelOptions::default()
            .max_length(self.max_length)
            .truncation(match self.truncate {
                TruncateMode::Right => Truncation::Right,
                TruncateMode::None => Truncation::Disabled,
            })
            .batch_tokens(self.batch_tokens)
            .max_image_pixels(self.max_image_pixels)
            .apply_exif_orientation(self.exif_orientation)
            .spin(!self.no_spin);
        options.threads = self.threads;
        options.precision = self.dtype;
        options
    }

    /// Opens the model, logging how long it took.
    pub fn open(&self) -> Result<jclip::Model, jclip::Error> {
        let started = std::time::Instant::now();
        let model = jclip::Model::open(&self.model, &self.options())?;
        log::info!(
            "loaded {} in {:.0} ms ({} weights {}, {} kernels, {} thread{})",
            self.model.display(),
            started.elapsed().as_secs_f64() * 1e3,
            model.precision(),
            if model.weights_in_place() { "mapped in place" } else { "packed at load" },
            model.isa(),
            model.threads(),
            if model.threads() == 1 { "" } else { "s" }
        );
        Ok(model)
    }
}
