//! The text side: tokenizer policy and the JinaBERT v2 tower.

pub mod alibi;
pub mod tokenizer;
pub mod tower;

pub use tokenizer::{EncodedText, TextTokenizer, Truncation};
pub use tower::{TextTower, TokenBatch};
