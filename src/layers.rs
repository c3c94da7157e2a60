//! Building blocks shared by both towers: packed linear layers and LayerNorm.

use jclip_kernels::{Epilogue, Kernels, PackedMatrix};

use crate::error::Result;
use crate::weights::TensorRef;
use crate::weights::names::{LinearTensors, NormTensors};

/// A linear layer `y = x·Wᵀ + b` with W packed for the kernels.
#[derive(Debug)]
pub struct Linear {
    pub weight: PackedMatrix,
    /// `[out]`.
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    /// Packs a stored linear layer.
    pub fn from_tensors(tensors: &LinearTensors<'_>) -> Result<Linear> {
        let weight = pack_rows(&tensors.weight, 0, tensors.weight.shape[0])?;
        let bias = tensors.bias.as_ref().map(|bias| bias.to_f32_vec()).transpose()?;
        Ok(Linear { weight, bias })
    }

    /// Stacks several layers with the same input into one (e.g. q, k, v):
    /// the output rows are the parts' rows in order, and a part without a
    /// bias contributes zeros to the bias.
    pub fn stack(parts: &[(&TensorRef<'_>, Option<&TensorRef<'_>>)]) -> Result<Linear> {
        let k = parts[0].0.shape[1];
        let mut rows = Vec::new();
        for (weight, _) in parts {
            let view = weight.float_view()?;
            for r in 0..weight.shape[0] {
                rows.push((view, r * k));
            }
        }
        let weight = PackedMatrix::from_rows(rows.len(), k, |r, out| {
            let (view, start) = rows[r];
            view.read(start, out);
        });
        let bias = if parts.iter().any(|(_, bias)| bias.is_some()) {
            let mut values = Vec::with_capacity(rows.len());
            for (weight, bias) in parts {
                match bias {
                    Some(bias) => values.extend(bias.to_f32_vec()?),
                    None => values.extend(std::iter::repeat_n(0.0, weight.shape[0])),
                }
            }
            Some(values)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    pub fn out_features(&self) -> usize {
        self.weight.n()
    }

    /// Computes `y = x·Wᵀ + b` for `rows` rows.
    pub fn forward(&self, kernels: &Kernels, x: &[f32], rows: usize, y: &mut [f32]) {
        kernels.linear(x, rows, &self.weight, Epilogue::bias(self.bias.as_deref()), y);
    }

    /// Computes `y = x·Wᵀ + b + residual`.
    pub fn forward_add(&self, kernels: &Kernels, x: &[f32], rows: usize, residual: &[f32], y: &mut [f32]) {
        let epilogue = Epilogue { bias: self.bias.as_deref(), residual: Some(residual), ..Epilogue::default() };
        kernels.linear(x, rows, &self.weight, epilogue, y);
    }
}

/// Packs rows `first..first + count` of a stored `[n, k]` matrix.
pub fn pack_rows(tensor: &TensorRef<'_>, first: usize, count: usize) -> Result<PackedMatrix> {
    let k = tensor.shape[1..].iter().product();
    let view = tensor.float_view()?;
    Ok(PackedMatrix::from_rows(count, k, |r, out| view.read((first + r) * k, out)))
}

/// LayerNorm parameters.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

impl LayerNorm {
    pub fn from_tensors(tensors: &NormTensors<'_>, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: tensors.weight.to_f32_vec()?, bias: tensors.bias.to_f32_vec()?, eps })
    }

    /// Normalises every row of `x` in place.
    pub fn forward(&self, kernels: &Kernels, x: &mut [f32]) {
        kernels.layer_norm(x, &self.weight, &self.bias, self.eps);
    }

    /// Writes the normalised rows of `x` into `out`.
    pub fn forward_into(&self, kernels: &Kernels, x: &[f32], out: &mut [f32]) {
        kernels.layer_norm_into(x, out, &self.weight, &self.bias, self.eps);
    }
}
