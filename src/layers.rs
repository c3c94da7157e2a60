//! Building blocks shared by both towers: packed linear layers and LayerNorm.

use std::ops::Range;
use std::sync::Mutex;

use jclip_kernels::{Epilogue, Kernels, PackedMatrix};

use crate::error::{Error, Result};
use crate::precision::{MatrixRole, Precision};
use crate::weights::names::{LinearTensors, NormTensors};
use crate::weights::{Checkpoint, TensorRef};

/// A packed matrix as `jclip convert` stores it.
pub struct PackRecord {
    /// Names the matrix inside a packed checkpoint.
    pub key: String,
    /// The original tensors it was built from.
    pub sources: Vec<String>,
    pub matrix: PackedMatrix,
}

/// Builds the packed matrices of a model: packs the original weights in the
/// format the precision chooses for each matrix, or, for a checkpoint that
/// `jclip convert` wrote, maps the stored packed bytes in place.
pub struct Packer<'c> {
    checkpoint: &'c Checkpoint,
    precision: Precision,
    /// Every matrix built, kept for `jclip convert`.
    records: Option<Mutex<Vec<PackRecord>>>,
}

impl<'c> Packer<'c> {
    pub fn new(checkpoint: &'c Checkpoint, precision: Precision) -> Packer<'c> {
        Packer { checkpoint, precision, records: None }
    }

    /// Creates a packer that keeps a copy of every matrix for [`Packer::into_records`].
    pub fn recording(checkpoint: &'c Checkpoint, precision: Precision) -> Packer<'c> {
        Packer { checkpoint, precision, records: Some(Mutex::new(Vec::new())) }
    }

    /// Returns the matrices built so far, in order.
    pub fn into_records(self) -> Vec<PackRecord> {
        self.records.map(|records| records.into_inner().unwrap_or_else(|e| e.into_inner())).unwrap_or_default()
    }

    /// Packs the rows `rows` of each part, in order, into one `[Σ rows, k]` matrix.
    pub fn matrix(&self, role: MatrixRole, parts: &[(&TensorRef<'_>, Range<usize>)]) -> Result<PackedMatrix> {
        let k: usize = parts[0].0.shape[1..].iter().product();
        let n: usize = parts.iter().map(|(_, rows)| rows.len()).sum();
        let key = parts
            .iter()
            .map(|(tensor, rows)| {
                if rows.start == 0 && rows.end == tensor.shape[0] {
                    tensor.name.to_string()
                } else {
                    format!("{}[{}..{}]", tensor.name, rows.start, rows.end)
                }
            })
            .collect::<Vec<_>>()
            .join("+");
        let matrix = if self.checkpoint.packed_layout().is_some() {
            self.checkpoint.packed_matrix(&key, n, k)?
        } else {
            let mut sources = Vec::with_capacity(n);
            for (tensor, rows) in parts {
                let view = tensor.float_view()?;
                let part_k: usize = tensor.shape[1..].iter().product();
                if part_k != k {
                    return Err(Error::TensorShape {
                        name: tensor.name.to_string(),
                        expected: vec![tensor.shape[0], k],
                        actual: tensor.shape.to_vec(),
                    });
                }
                sources.extend(rows.clone().map(|r| (view, r * k)));
            }
            // The first row with NaN or infinity, which no trained model contains.
            let mut non_finite: Option<usize> = None;
            let matrix = PackedMatrix::from_rows_as(self.precision.format_for(role), n, k, |r, out| {
                let (view, start) = sources[r];
                view.read(start, out);
                if non_finite.is_none() && !all_finite(out) {
                    non_finite = Some(r);
                }
            });
            if let Some(row) = non_finite {
                return Err(non_finite_error(parts, row));
            }
            matrix
        };
        if let Some(records) = &self.records {
            let sources = parts.iter().map(|(tensor, _)| tensor.name.to_string()).collect();
            let record = PackRecord { key, sources, matrix: matrix.clone() };
            records.lock().unwrap_or_else(|e| e.into_inner()).push(record);
        }
        Ok(matrix)
    }

    /// Packs rows `first..first + count` of a stored `[n, k]` matrix.
    pub fn rows(&self, role: MatrixRole, tensor: &TensorRef<'_>, first: usize, count: usize) -> Result<PackedMatrix> {
        self.matrix(role, &[(tensor, first..first + count)])
    }
}

/// Reports whether no value is infinite or NaN, whose exponent bits are all
/// ones. Adding one to the exponent field carries into the sign bit only
/// for those, and OR-ing the results needs no branch, so the loop
/// vectorises even on the baseline x86-64 target.
fn all_finite(values: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    const EXPONENT_ONE: u32 = 0x0080_0000;
    let carries =
        values.iter().fold(0u32, |carries, value| carries | (value.to_bits() & EXPONENT).wrapping_add(EXPONENT_ONE));
    carries & 0x8000_0000 == 0
}

/// Returns the error for row `row` of the matrix stacked from `parts`, a row with NaN or infinity.
fn non_finite_error(parts: &[(&TensorRef<'_>, Range<usize>)], row: usize) -> Error {
    let mut offset = row;
    let mut found = &parts[parts.len() - 1];
    for part in parts {
        if offset < part.1.len() {
            found = part;
            break;
        }
        offset -= part.1.len();
    }
    let (tensor, rows) = found;
    Error::InvalidCheckpoint {
        path: tensor.path().to_path_buf(),
        message: format!(
            "tensor {} has NaN or infinite values in row {}; the file is corrupt, download or convert it again",
            tensor.name,
            rows.start + offset
        ),
    }
}

/// A linear layer `y = x·Wᵀ + b` with W packed for the kernels.
#[derive(Debug)]
pub struct Linear {
    pub weight: PackedMatrix,
    /// `[out]`.
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    /// Packs a stored linear layer.
    pub fn from_tensors(packer: &Packer<'_>, role: MatrixRole, tensors: &LinearTensors<'_>) -> Result<Linear> {
        let weight = packer.rows(role, &tensors.weight, 0, tensors.weight.shape[0])?;
        let bias = tensors.bias.as_ref().map(|bias| bias.to_f32_vec()).transpose()?;
        Ok(Linear { weight, bias })
    }

    /// Stacks several layers with the same input into one (e.g. q, k, v):
    /// the output rows are the parts' rows in order, and a part without a
    /// bias contributes zeros to the bias.
    pub fn stack(
        packer: &Packer<'_>,
        role: MatrixRole,
        parts: &[(&TensorRef<'_>, Option<&TensorRef<'_>>)],
    ) -> Result<Linear> {
        let rows: Vec<(&TensorRef<'_>, Range<usize>)> =
            parts.iter().map(|(weight, _)| (*weight, 0..weight.shape[0])).collect();
        let weight = packer.matrix(role, &rows)?;
        let bias = if parts.iter().any(|(_, bias)| bias.is_some()) {
            let mut values = Vec::with_capacity(weight.n());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_accepts_extremes() {
        assert!(all_finite(&[]));
        assert!(all_finite(&[0.0, -0.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE, f32::from_bits(1), -1.5]));
    }

    #[test]
    fn all_finite_flags_each_non_finite_value() {
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001)] {
            for at in [0, 37, 99] {
                let mut values = vec![f32::MAX; 100];
                values[at] = bad;
                assert!(!all_finite(&values), "{bad} at {at}");
            }
        }
    }
}
