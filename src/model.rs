//! The public entry point: a model opened from a directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;

use jclip_kernels::{Isa, Kernels};
use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::layers::Packer;
use crate::options::{ModelOptions, available_cpus, resolve_threads};
use crate::precision::Precision;
use crate::preprocess::{DecodeOptions, PreprocessConfig};
use crate::text::{TextTokenizer, TextTower};
use crate::vision::VisionTower;
use crate::weights::{Checkpoint, names};

/// The image tower with the preprocessing that feeds it.
pub(crate) struct ImageSide {
    pub tower: VisionTower,
    pub preprocess: PreprocessConfig,
    pub decode: DecodeOptions,
}

/// Minimum tokens per lane for a forward pass to run in lanes, each worker
/// thread embedding its own part of the inputs (see [`Model::run_lanes`]).
/// One image (197 tokens) or a few texts reach it. With fewer tokens, each
/// lane's matmuls would wait on reading the weights, which every lane reads
/// in full.
///
/// NOTE: an estimate, measured only on 2 threads, where lanes were 0.99 to
/// 1.17 times as fast as one pass split between the threads.
pub(crate) const MIN_LANE_TOKENS: usize = 192;

/// Returns the lane count of a pass over `inputs` inputs of `tokens` tokens
/// in all with `threads` workers (see [`Model::lane_count`]).
fn lane_count(threads: usize, inputs: usize, tokens: usize) -> usize {
    threads.min(inputs).min(tokens / MIN_LANE_TOKENS).max(1)
}

/// A jina-clip-v1 model ready to embed. `Model` is `Send + Sync`: one model
/// can serve several threads at once, each call using the model's own
/// worker pool.
pub struct Model {
    pub(crate) dir: PathBuf,
    pub(crate) config: ModelConfig,
    pub(crate) kernels: Kernels,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) threads: usize,
    pub(crate) batch_tokens: usize,
    pub(crate) tokenizer: TextTokenizer,
    pub(crate) text: TextTower,
    pub(crate) image: Option<ImageSide>,
    pub(crate) logit_scale: Option<f32>,
    pub(crate) precision: Precision,
    pub(crate) weights_in_place: bool,
    pub(crate) spin: bool,
    /// Single-thread pools, one per worker, created on the first batch that
    /// runs in lanes; `None` inside when they could not be started.
    pub(crate) lanes: OnceLock<Option<Vec<rayon::ThreadPool>>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("isa", &self.kernels.isa())
            .field("threads", &self.threads)
            .field("precision", &self.precision)
            .field("text", &self.text)
            .field("vision", &self.image.as_ref().map(|side| &side.tower))
            .finish()
    }
}

impl Model {
    /// Opens the model directory `dir`: `config.json`, `model.safetensors`
    /// (or its sharded index), `tokenizer.json`, and for the image tower
    /// `preprocessor_config.json` when present (else the CLIP defaults).
    pub fn open(dir: impl AsRef<Path>, options: &ModelOptions) -> Result<Model> {
        let dir = dir.as_ref().to_path_buf();
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidOption {
                name: "model",
                value: dir.display().to_string(),
                reason: "is a file, not a directory; give the model directory, which holds config.json, \
                         model.safetensors and tokenizer.json"
                    .into(),
            });
        }
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir,
                hint: "expected a model directory with config.json, model.safetensors and tokenizer.json".into(),
            });
        }
        if options.batch_tokens == 0 {
            return Err(Error::InvalidOption {
                name: "batch_tokens",
                value: "0".into(),
                reason: "a batch needs room for at least one token".into(),
            });
        }
        let kernels = match options.isa {
            Some(isa) => Kernels::for_isa(isa)?,
            None => Kernels::detect()?,
        };
        let threads = resolve_threads(options.threads)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("jclip-worker-{i}"))
            .build()
            .map_err(|e| Error::ThreadPool { threads, message: e.to_string() })?;

        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), options.max_length, options.truncation)?;
        let checkpoint = Arc::new(Checkpoint::open_dir(&dir)?);
        let precision = resolve_precision(&checkpoint, options.precision)?;
        let packer = Packer::new(&checkpoint, precision);
        let text = pool.install(|| TextTower::load(&checkpoint, &config.text, &packer))?;
        let image = match &config.vision {
            Some(vision) => {
                let preprocess = preprocess_config(&dir, vision.image_size)?;
                let tower = pool.install(|| VisionTower::load(&checkpoint, vision, &packer))?;
                let decode = DecodeOptions {
                    max_pixels: options.max_image_pixels,
                    apply_exif_orientation: options.apply_exif_orientation,
                };
                Some(ImageSide { tower, preprocess, decode })
            }
            None => None,
        };
        let logit_scale = names::logit_scale(&checkpoint)?;
        let weights_in_place = checkpoint.packed_layout().is_some();
        log::debug!(
            "opened {} with {precision} weights{} and the {} kernels on {threads} threads",
            dir.display(),
            if weights_in_place { " mapped in place" } else { " packed at load" },
            kernels.isa()
        );
        Ok(Model {
            dir,
            config,
            kernels,
            pool,
            threads,
            batch_tokens: options.batch_tokens,
            // A poller on an oversubscribed CPU would take time from a working thread.
            spin: options.spin && threads <= available_cpus(),
            tokenizer,
            text,
            image,
            logit_scale,
            precision,
            weights_in_place,
            lanes: OnceLock::new(),
        })
    }

    /// Returns the precision of the linear layers' weights.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Reports whether the weights are used in place from a file written by
    /// `jclip convert` (true) or were packed while opening (false).
    pub fn weights_in_place(&self) -> bool {
        self.weights_in_place
    }

    /// Returns whether idle workers poll for work during a forward pass:
    /// [`ModelOptions::spin`], unless the pool has more threads than CPUs.
    pub fn spin(&self) -> bool {
        self.spin
    }

    /// Returns the model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the configuration read from `config.json`.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Returns the width of the text embeddings.
    pub fn text_dim(&self) -> usize {
        self.text.dim()
    }

    /// Returns the width of the image embeddings, `None` for a text-only model.
    pub fn image_dim(&self) -> Option<usize> {
        self.image.as_ref().map(|side| side.tower.dim())
    }

    /// Returns the kernel tier in use.
    pub fn isa(&self) -> Isa {
        self.kernels.isa()
    }

    /// Returns the number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Returns the CLIP temperature stored in the checkpoint (`logit_scale`, before `exp`).
    pub fn logit_scale(&self) -> Option<f32> {
        self.logit_scale
    }

    /// Returns the tokenizer with the engine's truncation policy.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Returns the text tower, for callers that inspect hidden states.
    pub fn text_tower(&self) -> &TextTower {
        &self.text
    }

    /// Returns the image tower, `None` for a text-only model.
    pub fn vision_tower(&self) -> Option<&VisionTower> {
        self.image.as_ref().map(|side| &side.tower)
    }

    /// Returns the image preprocessing settings, `None` for a text-only model.
    pub fn preprocess_config(&self) -> Option<&PreprocessConfig> {
        self.image.as_ref().map(|side| &side.preprocess)
    }

    /// Returns the kernels in use.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Runs `work` on the model's worker threads.
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    /// Returns the single-thread lane pools, one per worker, starting them
    /// on first use; `None` when the model has one thread or they failed to start.
    fn lane_pools(&self) -> Option<&[rayon::ThreadPool]> {
        if self.threads < 2 {
            return None;
        }
        let lanes = self.lanes.get_or_init(|| {
            (0..self.threads)
                .map(|i| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(move |_| format!("jclip-lane-{i}"))
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .ok()
        });
        lanes.as_deref()
    }

    /// Returns how many lanes a pass over `inputs` inputs of `tokens` tokens
    /// in all should run in: one per worker while each lane gets at least
    /// [`MIN_LANE_TOKENS`], else 1.
    pub(crate) fn lane_count(&self, inputs: usize, tokens: usize) -> usize {
        lane_count(self.threads, inputs, tokens)
    }

    /// Runs `pass` on each of `parts` at once, each in its own single-thread
    /// lane, and returns the results in order. The model's workers hand the
    /// parts to the lanes and wait. Falls back to one pass after the other
    /// on the worker pool when the lanes cannot be started.
    pub(crate) fn run_lanes<T: Send, R: Send>(&self, parts: Vec<T>, pass: impl Fn(T) -> R + Sync) -> Vec<R> {
        let Some(lanes) = self.lane_pools().filter(|lanes| lanes.len() >= parts.len()) else {
            return parts.into_iter().map(|part| self.run_pass(|| pass(part))).collect();
        };
        self.pool.install(|| parts.into_par_iter().zip(lanes).map(|(part, lane)| lane.install(|| pass(part))).collect())
    }

    /// Runs one forward pass on the model's worker threads, with the idle
    /// workers polling for its kernels when [`ModelOptions::spin`] is set.
    pub(crate) fn run_pass<R: Send>(&self, pass: impl FnOnce() -> R + Send) -> R {
        if self.spin {
            self.pool.install(|| jclip_kernels::with_workers_polling(pass))
        } else {
            self.pool.install(pass)
        }
    }
}

/// Reads `preprocessor_config.json` if present and checks it against the tower's input size.
fn preprocess_config(dir: &Path, image_size: usize) -> Result<PreprocessConfig> {
    let path = dir.join("preprocessor_config.json");
    let config = if path.is_file() {
        PreprocessConfig::from_file(&path).map_err(Error::Preprocess)?
    } else {
        PreprocessConfig { size: image_size as u32, ..PreprocessConfig::default() }
    };
    if config.size as usize != image_size {
        return Err(Error::InvalidConfig {
            path,
            message: format!(
                "size {} differs from vision_config.image_size {image_size} in config.json; \
                 correct whichever of the two files is wrong",
                config.size
            ),
        });
    }
    Ok(config)
}

/// Chooses the precision: the one asked for, which must match a packed
/// checkpoint's, else the packed checkpoint's, else f32.
fn resolve_precision(checkpoint: &Checkpoint, requested: Option<Precision>) -> Result<Precision> {
    match (checkpoint.packed_layout(), requested) {
        (Some(layout), Some(requested)) if requested != layout.precision => Err(Error::InvalidOption {
            name: "precision",
            value: requested.name().into(),
            reason: format!(
                "{} holds weights converted to {} by jclip convert; open it without a precision, \
                 or open the original checkpoint to use {requested}",
                checkpoint.path().display(),
                layout.precision
            ),
        }),
        (Some(layout), _) => Ok(layout.precision),
        (None, requested) => Ok(requested.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_need_threads_inputs_and_tokens() {
        assert_eq!(lane_count(1, 8, 4096), 1);
        assert_eq!(lane_count(2, 1, 4096), 1);
        assert_eq!(lane_count(2, 8, 2 * MIN_LANE_TOKENS - 1), 1);
        assert_eq!(lane_count(2, 8, 512), 2);
        assert_eq!(lane_count(4, 3, 8192), 3);
        assert_eq!(lane_count(4, 8, 3 * MIN_LANE_TOKENS), 3);
        assert_eq!(lane_count(2, 0, 0), 1);
    }
}
