//! jclip: a CPU inference engine for the Jina CLIP v1 embedding model.
//!
//! Open a model directory (the Hugging Face files of `jinaai/jina-clip-v1`)
//! with [`Model::open`] and embed texts with [`Model::embed_texts`]:
//!
//! ```no_run
//! let model = jclip::Model::open("jina-clip-v1", &jclip::ModelOptions::default())?;
//! let embeddings = model.embed_texts(&["a photo of a cat"], true)?;
//! assert_eq!(embeddings[0].embedding.len(), model.text_dim());
//! # Ok::<(), jclip::Error>(())
//! ```
//!
//! The library never prints; it logs through the `log` facade at debug level.

pub mod config;
pub mod convert;
pub mod embed;
pub mod error;
pub mod ffi;
pub mod layers;
pub mod model;
pub mod options;
pub mod precision;
pub mod preprocess;
pub mod synth;
pub mod text;
pub mod vision;
pub mod weights;

pub use embed::{Embedding, Input, Modality, TextEmbedding};
pub use error::{Error, Result};
pub use jclip_kernels::Isa;
pub use model::Model;
pub use options::ModelOptions;
pub use precision::Precision;
pub use text::Truncation;
