//! CPU kernels for jclip. Numbers in, numbers out: this crate knows no model,
//! no tensor names and no files.
//!
//! Every operation is reached through a [`Kernels`] value, a table of
//! functions chosen for one instruction-set tier ([`Isa`]): scalar, AVX2,
//! AVX-512 or NEON. The scalar tier is the portable fallback and the test
//! oracle of every other tier. The SIMD kernels are written once over a
//! vector trait and compiled per tier with `#[target_feature]`, so the crate
//! builds for the baseline x86-64 target and uses AVX-512 only where the CPU
//! has it.
//!
//! Shapes use one alphabet throughout: `rows` (tokens, often written M),
//! `n` (output features), `k` (input features, the reduction length),
//! `heads`, `head_dim`.

// Kernels take shapes, strides and buffers as separate arguments by design.
#![allow(clippy::too_many_arguments)]
// Index loops over several arrays with one index read clearer in numeric code.
#![allow(clippy::needless_range_loop)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_endian = "big")]
compile_error!("jclip-kernels reads packed weights and half-precision data as little-endian memory");

pub mod activation;
pub mod attention;
pub mod convert;
mod disjoint;
pub mod isa;
pub mod matmul;
pub mod norm;
pub mod rope;
pub(crate) mod simd;
pub mod threads;
mod tiers;
pub mod vector;

pub use attention::{AttentionBias, AttentionParams};
pub use isa::{CpuFeatures, Isa, IsaError, Kernels};
pub use matmul::{
    Activation, Epilogue, INT8_MAX, INT8_MAX_K, PACKED_ALIGN, PackError, PackedMatrix, SharedBytes, WeightFormat,
    quantize_row,
};
pub use threads::with_workers_polling;
