//! CPU kernels for jclip. Numbers in, numbers out: this crate knows no model.
