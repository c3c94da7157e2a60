//! The error type of the library. Every variant names the input at fault.

use std::path::PathBuf;

/// Errors from opening a model or embedding inputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file or directory could not be created or written.
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A required file of the model directory does not exist.
    #[error("missing file {path}: {hint}")]
    MissingFile { path: PathBuf, hint: String },

    /// A JSON file is not valid or lacks a required key.
    #[error("invalid {path}: {message}")]
    InvalidConfig { path: PathBuf, message: String },

    /// A configuration value selects math that the engine does not implement.
    #[error("unsupported setting in {path}: {key} = {value} ({reason})")]
    UnsupportedConfig { path: PathBuf, key: String, value: String, reason: String },

    /// A safetensors file is corrupt or truncated.
    #[error("invalid safetensors file {path}: {message}")]
    InvalidCheckpoint { path: PathBuf, message: String },

    /// A tensor the model needs is absent from the checkpoint.
    #[error("missing tensor {name} in {path} ({hint})")]
    MissingTensor { path: PathBuf, name: String, hint: String },

    /// A tensor has another shape than the configuration implies.
    #[error("tensor {name} has shape {actual:?}, expected {expected:?} from config.json")]
    TensorShape { name: String, expected: Vec<usize>, actual: Vec<usize> },

    /// A tensor is stored in a data type the engine cannot read.
    #[error("tensor {name} is stored as {dtype}; expected F32, F16 or BF16")]
    TensorDtype { name: String, dtype: String },

    /// The tokenizer file could not be loaded or failed on an input.
    #[error("tokenizer error ({context}): {message}")]
    Tokenizer { context: String, message: String },

    /// A token id is outside the embedding table.
    #[error(
        "text {index}: token id {id} is outside the embedding table of {vocab_size} rows; the tokenizer does not match the model"
    )]
    TokenOutOfRange { index: usize, id: u32, vocab_size: usize },

    /// A text is longer than the token limit and truncation is off.
    #[error(
        "text {index} has {tokens} tokens, more than the limit of {limit}; raise the limit (--max-length) or allow truncation (--truncate right)"
    )]
    InputTooLong { index: usize, tokens: usize, limit: usize },

    /// An option has an invalid value.
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption { name: &'static str, value: String, reason: String },

    /// The model has no tower for the requested input kind.
    #[error("{0}")]
    MissingTower(String),

    /// An image could not be decoded or preprocessed; `index` is its position in the request.
    #[error("image {index}: {source}")]
    Image {
        index: usize,
        #[source]
        source: crate::preprocess::ImageError,
    },

    /// `preprocessor_config.json` could not be used.
    #[error("{0}")]
    Preprocess(#[source] crate::preprocess::ImageError),

    /// A computation produced NaN or infinity, which is never returned.
    #[error("{input}: the embedding contains NaN or infinite values ({hint})")]
    NonFinite { input: String, hint: String },

    /// The requested kernel tier cannot run on this CPU.
    #[error("{0}")]
    Isa(#[from] jclip_kernels::IsaError),

    /// The worker thread pool could not be created.
    #[error("failed to start {threads} worker threads: {message}")]
    ThreadPool { threads: usize, message: String },
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Returns the position of the input the error is about, counted from 0
    /// over the inputs of the call. Only errors about one text or image
    /// have a position; the others return `None`.
    pub fn input_index(&self) -> Option<usize> {
        match self {
            Error::TokenOutOfRange { index, .. } | Error::InputTooLong { index, .. } | Error::Image { index, .. } => {
                Some(*index)
            }
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Write { path: path.into(), source }
    }
}
