//! The public entry point: a model opened from a directory, and its options.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jclip_kernels::{Isa, Kernels};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::text::tokenizer::DEFAULT_MAX_LENGTH;
use crate::text::{TextTokenizer, TextTower, TokenBatch, Truncation};
use crate::vision::VisionTower;
use crate::weights::{Checkpoint, names};

/// Environment variable that sets the worker thread count when the options do not.
pub const THREADS_ENV: &str = "JCLIP_THREADS";

/// Default token budget of one forward pass; larger requests run in several.
pub const DEFAULT_BATCH_TOKENS: usize = 8192;

/// How a model is opened.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Worker threads; `None` uses `JCLIP_THREADS`, else the CPUs available to
    /// this process (which respects container CPU quotas).
    pub threads: Option<usize>,
    /// Token limit per text, including `[CLS]` and `[SEP]`.
    pub max_length: usize,
    /// What happens to longer texts.
    pub truncation: Truncation,
    /// Maximum tokens per forward pass.
    pub batch_tokens: usize,
    /// Kernel tier; `None` picks the best the CPU supports (or `JCLIP_ISA`).
    pub isa: Option<Isa>,
}

impl Default for ModelOptions {
    fn default() -> ModelOptions {
        ModelOptions {
            threads: None,
            max_length: DEFAULT_MAX_LENGTH,
            truncation: Truncation::Right,
            batch_tokens: DEFAULT_BATCH_TOKENS,
            isa: None,
        }
    }
}

impl ModelOptions {
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
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
}

/// The embedding of one text.
#[derive(Clone, Debug, PartialEq)]
pub struct TextEmbedding {
    pub embedding: Vec<f32>,
    /// Tokens the tower saw, including `[CLS]` and `[SEP]`.
    pub tokens: usize,
    /// Whether the text was cut at the token limit.
    pub truncated: bool,
}

/// A jina-clip-v1 model ready to embed.
pub struct Model {
    dir: PathBuf,
    config: ModelConfig,
    kernels: Kernels,
    pool: rayon::ThreadPool,
    threads: usize,
    batch_tokens: usize,
    tokenizer: TextTokenizer,
    text: TextTower,
    vision: Option<VisionTower>,
    logit_scale: Option<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("isa", &self.kernels.isa())
            .field("threads", &self.threads)
            .field("text", &self.text)
            .finish()
    }
}

/// Returns the worker count: the option, else `JCLIP_THREADS`, else the available CPUs.
fn resolve_threads(requested: Option<usize>) -> Result<usize> {
    if let Some(threads) = requested {
        if threads == 0 {
            return Err(Error::InvalidOption {
                name: "threads",
                value: "0".into(),
                reason: "use at least 1 thread".into(),
            });
        }
        return Ok(threads);
    }
    if let Ok(value) = std::env::var(THREADS_ENV) {
        if !value.trim().is_empty() {
            return match value.trim().parse::<usize>() {
                Ok(threads) if threads > 0 => Ok(threads),
                _ => {
                    Err(Error::InvalidOption { name: THREADS_ENV, value, reason: "expected a positive integer".into() })
                }
            };
        }
    }
    Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Model {
    /// Opens the model directory `dir` (`config.json`, `model.safetensors` or
    /// its sharded index, `tokenizer.json`).
    pub fn open(dir: impl AsRef<Path>, options: &ModelOptions) -> Result<Model> {
        let dir = dir.as_ref().to_path_buf();
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
        let text = pool.install(|| TextTower::load(&checkpoint, &config.text))?;
        let vision = match &config.vision {
            Some(vision) => Some(pool.install(|| VisionTower::load(&checkpoint, vision))?),
            None => None,
        };
        let logit_scale = names::logit_scale(&checkpoint)?;
        log::debug!("opened {} with the {} kernels on {threads} threads", dir.display(), kernels.isa());
        Ok(Model {
            dir,
            config,
            kernels,
            pool,
            threads,
            batch_tokens: options.batch_tokens,
            tokenizer,
            text,
            vision,
            logit_scale,
        })
    }

    /// The configuration read from `config.json`.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Width of the text embeddings.
    pub fn text_dim(&self) -> usize {
        self.text.dim()
    }

    /// The kernel tier in use.
    pub fn isa(&self) -> Isa {
        self.kernels.isa()
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The CLIP temperature stored in the checkpoint (`logit_scale`, before `exp`).
    pub fn logit_scale(&self) -> Option<f32> {
        self.logit_scale
    }

    /// The tokenizer with the engine's truncation policy.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The text tower, for callers that inspect hidden states.
    pub fn text_tower(&self) -> &TextTower {
        &self.text
    }

    /// The image tower, absent for a text-only model.
    pub fn vision_tower(&self) -> Option<&VisionTower> {
        self.vision.as_ref()
    }

    /// The kernels in use.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Runs `work` on the model's worker threads.
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    /// Tokenizes `texts` and checks every id against the embedding table.
    pub fn encode_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<crate::text::EncodedText>> {
        let vocab_size = self.config.text.vocab_size;
        let pad = self.config.text.pad_token_id;
        let mut encoded = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let tokens = self.tokenizer.encode(index, text.as_ref())?;
            if let Some(&id) = tokens.ids.iter().find(|&&id| id as usize >= vocab_size) {
                return Err(Error::TokenOutOfRange { index, id, vocab_size });
            }
            if tokens.ids.iter().all(|&id| id == pad) {
                return Err(Error::Tokenizer {
                    context: format!("text {index}"),
                    message:
                        "the tokenizer produced only padding tokens; check that tokenizer.json adds [CLS] and [SEP]"
                            .into(),
                });
            }
            encoded.push(tokens);
        }
        Ok(encoded)
    }

    /// Embeds `texts`, L2-normalised when `normalize` is set, in input order.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S], normalize: bool) -> Result<Vec<TextEmbedding>> {
        let encoded = self.encode_texts(texts)?;
        let dim = self.text.dim();
        let mut results = Vec::with_capacity(encoded.len());
        let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
        for group in batches_by_tokens(&lengths, self.batch_tokens) {
            let mut batch = TokenBatch::default();
            for index in group.clone() {
                batch.push(&encoded[index].ids);
            }
            let pooled = self.pool.install(|| self.text.forward(&self.kernels, &batch, None));
            for (offset, row) in pooled.chunks_exact(dim).enumerate() {
                let index = group.start + offset;
                let mut embedding = row.to_vec();
                if normalize {
                    self.kernels.l2_normalize(&mut embedding);
                }
                check_finite(&embedding, || format!("text {index}"))?;
                results.push(TextEmbedding {
                    embedding,
                    tokens: encoded[index].ids.len(),
                    truncated: encoded[index].truncated,
                });
            }
        }
        Ok(results)
    }
}

/// Rejects vectors with NaN or infinite values.
fn check_finite(values: &[f32], input: impl FnOnce() -> String) -> Result<()> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Error::NonFinite {
            input: input(),
            hint: "the weights may be corrupt or overflow in this precision; try the f32 weights".into(),
        })
    }
}

/// Splits consecutive inputs into groups whose token counts sum to at most
/// `budget`; an input larger than the budget gets a group of its own.
fn batches_by_tokens(lengths: &[usize], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (index, &length) in lengths.iter().enumerate() {
        if index > start && used + length > budget {
            groups.push(start..index);
            start = index;
            used = 0;
        }
        used += length;
    }
    if start < lengths.len() {
        groups.push(start..lengths.len());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_budget() {
        assert_eq!(batches_by_tokens(&[3, 3, 3, 3], 6), vec![0..2, 2..4]);
        assert_eq!(batches_by_tokens(&[10, 2, 2], 6), vec![0..1, 1..3]);
        assert_eq!(batches_by_tokens(&[2, 10, 2], 6), vec![0..1, 1..2, 2..3]);
        assert_eq!(batches_by_tokens(&[], 6), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches_by_tokens(&[6], 6), vec![0..1]);
    }
}
