//! Fused multi-head attention over packed variable-length sequences.
//!
//! Tokens of several sequences are concatenated; each sequence (a segment)
//! attends only to itself. For every query the kernel walks the keys in tiles
//! of [`KEY_TILE`], keeping a running maximum and sum of the softmax
//! (online softmax), so no `n × n` score or bias matrix is ever stored:
//! memory grows linearly with the sequence length.

use std::ops::Range;

use rayon::prelude::*;

use crate::disjoint::DisjointOutput;
use crate::isa::Kernels;

/// Keys scored together before the running softmax is updated.
pub const KEY_TILE: usize = 128;

/// Additive score of a masked key, as the reference padding mask (−10000,
/// not −∞, so a row whose keys are all masked still averages its values).
pub const MASKED_KEY_SCORE: f32 = -10_000.0;

/// Queries per parallel task.
const QUERIES_PER_TASK: usize = 32;

/// Position bias added to the scaled scores.
#[derive(Clone, Copy, Debug)]
pub enum AttentionBias<'a> {
    /// No bias.
    None,
    /// Symmetric ALiBi: `−slopes[h]·|i − j|` for query `i`, key `j` of head `h`.
    Alibi { slopes: &'a [f32] },
}

/// Shape and options of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams<'a> {
    pub heads: usize,
    pub head_dim: usize,
    /// Multiplies `q·k`, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    pub bias: AttentionBias<'a>,
    /// Per token, `false` for keys that get [`MASKED_KEY_SCORE`] added.
    pub key_mask: Option<&'a [bool]>,
}

/// Bias inputs of one query row.
#[derive(Clone, Copy)]
pub(crate) struct RowBias<'a> {
    /// ALiBi slope of the head, 0 for no bias.
    pub slope: f32,
    /// Query position within its segment.
    pub query: usize,
    /// Mask of the segment's keys.
    pub key_mask: Option<&'a [bool]>,
}

/// Attention of one query over the `len` keys and values of its segment:
/// `out = softmax(scale·q·kⱼ + bias(i, j)) · V`. Keys and values are rows of
/// `head_dim` values, `stride` floats apart. `scores` holds [`KEY_TILE`] values.
pub(crate) type RowKernel = fn(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    len: usize,
    scale: f32,
    bias: RowBias<'_>,
    out: &mut [f32],
    scores: &mut [f32],
);

pub(crate) fn attention_row_scalar(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    len: usize,
    scale: f32,
    bias: RowBias<'_>,
    out: &mut [f32],
    scores: &mut [f32],
) {
    let head_dim = q.len();
    let mut running_max = f32::NEG_INFINITY;
    let mut running_sum = 0.0f32;
    out.fill(0.0);
    for tile_start in (0..len).step_by(KEY_TILE) {
        let tile_len = KEY_TILE.min(len - tile_start);
        let tile_scores = &mut scores[..tile_len];
        let mut tile_max = f32::NEG_INFINITY;
        for (offset, score) in tile_scores.iter_mut().enumerate() {
            let j = tile_start + offset;
            let key = &keys[j * stride..][..head_dim];
            let mut s = q.iter().zip(key).map(|(&a, &b)| a * b).sum::<f32>() * scale;
            if bias.slope != 0.0 {
                s += -bias.slope * bias.query.abs_diff(j) as f32;
            }
            if let Some(mask) = bias.key_mask {
                if !mask[j] {
                    s += MASKED_KEY_SCORE;
                }
            }
            *score = s;
            tile_max = tile_max.max(s);
        }
        let new_max = running_max.max(tile_max);
        let correction = (running_max - new_max).exp();
        running_sum *= correction;
        for v in out.iter_mut() {
            *v *= correction;
        }
        for (offset, &s) in tile_scores.iter().enumerate() {
            let p = (s - new_max).exp();
            running_sum += p;
            let value = &values[(tile_start + offset) * stride..][..head_dim];
            for (o, &v) in out.iter_mut().zip(value) {
                *o += p * v;
            }
        }
        running_max = new_max;
    }
    if running_sum > 0.0 {
        let inverse = 1.0 / running_sum;
        for v in out.iter_mut() {
            *v *= inverse;
        }
    }
}

/// One unit of parallel work: a block of queries of one head of one segment.
struct Task {
    segment: Range<usize>,
    head: usize,
    queries: Range<usize>,
}

impl Kernels {
    /// Computes multi-head attention for packed sequences.
    ///
    /// `q`, `k` and `v` hold one row per token with `stride` floats between
    /// rows; head `h` of a row is at columns `h·head_dim..(h + 1)·head_dim`.
    /// They may be views into one fused QKV buffer. `out` is `[tokens,
    /// heads·head_dim]`. Every token must lie in exactly one segment.
    ///
    /// # Panics
    /// If the segments or slices do not fit the shape.
    pub fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        stride: usize,
        segments: &[Range<usize>],
        params: &AttentionParams<'_>,
        out: &mut [f32],
    ) {
        let width = params.heads * params.head_dim;
        let tokens = out.len() / width.max(1);
        assert_eq!(out.len(), tokens * width, "attention output of {} values is not a multiple of {width}", out.len());
        assert!(stride >= width, "row stride {stride} smaller than {width}");
        if tokens > 0 {
            let needed = (tokens - 1) * stride + width;
            assert!(
                q.len() >= needed && k.len() >= needed && v.len() >= needed,
                "attention inputs shorter than {tokens} rows"
            );
        }
        let mut covered = 0;
        for segment in segments {
            assert_eq!(segment.start, covered, "segments must tile the tokens in order");
            covered = segment.end;
        }
        assert_eq!(covered, tokens, "segments cover {covered} of {tokens} tokens");
        if let AttentionBias::Alibi { slopes } = params.bias {
            assert_eq!(slopes.len(), params.heads, "{} ALiBi slopes for {} heads", slopes.len(), params.heads);
        }
        if let Some(mask) = params.key_mask {
            assert_eq!(mask.len(), tokens, "key mask of {} tokens for {tokens}", mask.len());
        }

        let mut tasks = Vec::new();
        for segment in segments {
            for head in 0..params.heads {
                for first in (0..segment.len()).step_by(QUERIES_PER_TASK) {
                    let queries = first..(first + QUERIES_PER_TASK).min(segment.len());
                    tasks.push(Task { segment: segment.clone(), head, queries });
                }
            }
        }

        let output = DisjointOutput::new(out);
        let row_kernel = self.table.attention_row;
        let head_dim = params.head_dim;
        tasks.into_par_iter().for_each(|task| {
            let mut scores = vec![0.0f32; KEY_TILE];
            let base = task.segment.start;
            let column = task.head * head_dim;
            let keys = &k[base * stride + column..];
            let values = &v[base * stride + column..];
            let slope = match params.bias {
                AttentionBias::None => 0.0,
                AttentionBias::Alibi { slopes } => slopes[task.head],
            };
            let key_mask = params.key_mask.map(|mask| &mask[task.segment.clone()]);
            for i in task.queries {
                let row = base + i;
                let query = &q[row * stride + column..][..head_dim];
                let start = row * width + column;
                // SAFETY: each (row, head) block belongs to exactly one task,
                // and it lies inside `out` (the shape checks above).
                let out_row = unsafe { output.slice(start, head_dim) };
                let bias = RowBias { slope, query: i, key_mask };
                row_kernel(query, keys, values, stride, task.segment.len(), params.scale, bias, out_row, &mut scores);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Materialised softmax attention in f64 for one head of one segment.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        stride: usize,
        len: usize,
        d: usize,
        scale: f64,
        slope: f64,
        mask: Option<&[bool]>,
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; len * d];
        for i in 0..len {
            let scores: Vec<f64> = (0..len)
                .map(|j| {
                    let dot: f64 = (0..d).map(|c| q[i * stride + c] as f64 * k[j * stride + c] as f64).sum();
                    let masked = mask.is_some_and(|m| !m[j]);
                    dot * scale - slope * (i as f64 - j as f64).abs() + if masked { -10_000.0 } else { 0.0 }
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for c in 0..d {
                out[i * d + c] = (0..len).map(|j| weights[j] * v[j * stride + c] as f64).sum::<f64>() / total;
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn matches_materialised_softmax_with_alibi_and_mask() {
        let (heads, d) = (3, 8);
        let width = heads * d;
        let lengths = [1usize, 5, 300, 2];
        let tokens: usize = lengths.iter().sum();
        let stride = 3 * width;
        let qkv = values(tokens * stride, 11);
        let slopes = [0.5f32, 0.25, 0.0625];
        let mut mask = vec![true; tokens];
        mask[7] = false;
        mask[100] = false;
        let mut segments = Vec::new();
        let mut start = 0;
        for &len in &lengths {
            segments.push(start..start + len);
            start += len;
        }
        let params = AttentionParams {
            heads,
            head_dim: d,
            scale: 0.35,
            bias: AttentionBias::Alibi { slopes: &slopes },
            key_mask: Some(&mask),
        };
        let mut out = vec![f32::NAN; tokens * width];
        Kernels::scalar().attention(&qkv, &qkv[width..], &qkv[2 * width..], stride, &segments, &params, &mut out);
        for segment in &segments {
            for h in 0..heads {
                let col = h * d;
                let expected = reference(
                    &qkv[segment.start * stride + col..],
                    &qkv[segment.start * stride + width + col..],
                    &qkv[segment.start * stride + 2 * width + col..],
                    stride,
                    segment.len(),
                    d,
                    0.35,
                    slopes[h] as f64,
                    Some(&mask[segment.clone()]),
                );
                for i in 0..segment.len() {
                    for c in 0..d {
                        let got = out[(segment.start + i) * width + col + c] as f64;
                        let want = expected[i * d + c];
                        assert!(
                            (got - want).abs() < 2e-6,
                            "segment {segment:?} head {h} query {i} dim {c}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
