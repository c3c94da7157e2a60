//! The tokenizer policy: the engine's own truncation, whatever `tokenizer.json` contains.
//!
//! The reference's `encode_text` truncates each text to 512 tokens including
//! `[CLS]` and `[SEP]` and pads to the longest text of the batch. The engine
//! packs texts without padding (attention never crosses texts), so only the
//! truncation is applied here; the embedding is the same as with padding.

use std::path::Path;

use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// Default token limit per text, including `[CLS]` and `[SEP]`, as the reference's `encode_text`.
pub const DEFAULT_MAX_LENGTH: usize = 512;

/// Largest token limit per text that a model accepts. Attention time grows
/// with the square of the length: one text of 8192 tokens takes about a
/// minute on one core of the development machine, so a text at this limit
/// takes over an hour. Memory grows linearly: at this limit the output of
/// jina-clip-v1's fused feed-forward projection alone (6144 floats per
/// token) takes 1.6 GB.
pub const MAX_LENGTH_LIMIT: usize = 65_536;

/// Handling of a text longer than the token limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Truncation {
    /// Keep the first tokens, as the reference does.
    #[default]
    Right,
    /// Reject the text with [`Error::InputTooLong`].
    Disabled,
}

/// Token ids of one text, ready for the tower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedText {
    pub ids: Vec<u32>,
    /// Whether tokens past the limit were dropped.
    pub truncated: bool,
}

/// A `tokenizer.json` with the engine's truncation policy.
pub struct TextTokenizer {
    truncating: Tokenizer,
    whole: Tokenizer,
    max_length: usize,
    truncation: Truncation,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_length", &self.max_length)
            .field("truncation", &self.truncation)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, replacing its own truncation and padding settings.
    pub fn from_file(path: &Path, max_length: usize, truncation: Truncation) -> Result<TextTokenizer> {
        if !path.is_file() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "the model directory needs the tokenizer.json of jinaai/jina-clip-v1".into(),
            });
        }
        let tokenizer = Tokenizer::from_file(path).map_err(|e| {
            // A file that is JSON but not a tokenizer gets a parse error
            // about its fields, which reads like broken syntax.
            let is_json =
                std::fs::read(path).is_ok_and(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
            let context = if is_json {
                format!("loading {}: valid JSON but not a Hugging Face tokenizer file", path.display())
            } else {
                format!("loading {}", path.display())
            };
            Error::Tokenizer { context, message: e.to_string() }
        })?;
        TextTokenizer::new(tokenizer, max_length, truncation)
    }

    /// Wraps a loaded tokenizer, replacing its truncation and padding settings.
    pub fn new(tokenizer: Tokenizer, max_length: usize, truncation: Truncation) -> Result<TextTokenizer> {
        let specials = tokenizer.get_post_processor().map_or(0, |processor| processor.added_tokens(false));
        if max_length <= specials {
            return Err(Error::InvalidOption {
                name: "max_length",
                value: max_length.to_string(),
                reason: format!("must leave room for text besides the {specials} special tokens"),
            });
        }
        if max_length > MAX_LENGTH_LIMIT {
            return Err(Error::InvalidOption {
                name: "max_length",
                value: max_length.to_string(),
                reason: format!("must be at most {MAX_LENGTH_LIMIT} tokens per text"),
            });
        }
        let mut whole = tokenizer;
        let tokenizer_error = |e: tokenizers::Error| Error::Tokenizer {
            context: "configuring truncation".into(),
            message: e.to_string(),
        };
        whole.with_padding(None).with_truncation(None).map_err(tokenizer_error)?;
        let mut truncating = whole.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(tokenizer_error)?;
        Ok(TextTokenizer { truncating, whole, max_length, truncation })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenizes text `index` of a request (the index names it in errors).
    pub fn encode(&self, index: usize, text: &str) -> Result<EncodedText> {
        let tokenizer_error =
            |e: tokenizers::Error| Error::Tokenizer { context: format!("text {index}"), message: e.to_string() };
        match self.truncation {
            Truncation::Right => {
                let encoding = self.truncating.encode(text, true).map_err(tokenizer_error)?;
                let truncated = !encoding.get_overflowing().is_empty();
                Ok(EncodedText { ids: encoding.get_ids().to_vec(), truncated })
            }
            Truncation::Disabled => {
                let encoding = self.whole.encode(text, true).map_err(tokenizer_error)?;
                if encoding.len() > self.max_length {
                    return Err(Error::InputTooLong { index, tokens: encoding.len(), limit: self.max_length });
                }
                Ok(EncodedText { ids: encoding.get_ids().to_vec(), truncated: false })
            }
        }
    }
}
