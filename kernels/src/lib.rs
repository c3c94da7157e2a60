//! CPU kernels for jclip. Numbers in, numbers out: this crate knows no model,
//! no tensor names and no files.
//!
//! Every operation is reached through a [`Kernels`] value, a table of
//! functions chosen for one instruction-set tier ([`Isa`]). The scalar tier is
//! the portable fallback and the test oracle of every other tier.
//!
//! Shapes use one alphabet throughout: `rows` (tokens, often written M),
//! `n` (output features), `k` (input features, the reduction length),
//! `heads`, `head_dim`.

// Kernels take shapes, strides and buffers as separate arguments by design.
#![allow(clippy::too_many_arguments)]
// Index loops over several arrays with one index read clearer in numeric code.
#![allow(clippy::needless_range_loop)]

pub mod activation;
pub mod attention;
pub mod convert;
mod disjoint;
pub mod isa;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod vector;

pub use attention::{AttentionBias, AttentionParams};
pub use isa::{Isa, IsaError, Kernels};
pub use matmul::{Activation, Epilogue, PackedMatrix, WeightFormat};
