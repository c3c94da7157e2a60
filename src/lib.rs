//! jclip: a CPU inference engine for the Jina CLIP v1 embedding model.
pub mod preprocess;
