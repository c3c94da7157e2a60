//! Fused attention of every tier against the scalar twin and a materialised
//! float64 softmax.

// Index loops over heads, queries and dimensions read clearer in numeric code.
#![allow(clippy::needless_range_loop)]

mod common;

use std::ops::Range;

use common::*;
use jclip_kernels::{AttentionBias, AttentionParams, Kernels};

/// Error allowed in an output (a weighted mean of values in [−1, 1]) per
/// √(head_dim) of the score dot products, in units of f32 epsilon.
const ATTENTION_ROUNDING_UNITS: f64 = 4.0;

fn segments_of(lengths: &[usize]) -> Vec<Range<usize>> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            start += len;
            start - len..start
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
/// Materialised softmax attention in f64 for one head of one segment; rows `stride` apart.
fn reference(
    qkv: &[f32],
    width: usize,
    segment: &Range<usize>,
    head: usize,
    d: usize,
    scale: f64,
    slope: f64,
    mask: Option<&[bool]>,
) -> Vec<f64> {
    let stride = 3 * width;
    let len = segment.len();
    let at =
        |row: usize, part: usize, c: usize| qkv[(segment.start + row) * stride + part * width + head * d + c] as f64;
    let mut out = vec![0.0f64; len * d];
    for i in 0..len {
        let scores: Vec<f64> = (0..len)
            .map(|j| {
                let dot: f64 = (0..d).map(|c| at(i, 0, c) * at(j, 1, c)).sum();
                let masked = mask.is_some_and(|m| !m[segment.start + j]);
                dot * scale - slope * (i as f64 - j as f64).abs() + if masked { -10_000.0 } else { 0.0 }
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for c in 0..d {
            out[i * d + c] = (0..len).map(|j| weights[j] * at(j, 2, c)).sum::<f64>() / total;
        }
    }
    out
}

fn run(
    kernels: &Kernels,
    qkv: &[f32],
    width: usize,
    segments: &[Range<usize>],
    params: &AttentionParams<'_>,
    offset: usize,
) -> Vec<f32> {
    let tokens = segments.last().map_or(0, |s| s.end);
    let buffer = placed(qkv, offset);
    let qkv = &buffer[offset..offset + qkv.len()];
    let mut out = vec![f32::NAN; offset + tokens * width + 1];
    kernels.attention(
        qkv,
        &qkv[width..],
        &qkv[2 * width..],
        3 * width,
        segments,
        params,
        &mut out[offset..offset + tokens * width],
    );
    assert!(
        out[..offset].iter().all(|v| v.is_nan()) && out[offset + tokens * width].is_nan(),
        "wrote outside the output"
    );
    out[offset..offset + tokens * width].to_vec()
}

#[test]
fn attention_matches_reference_and_scalar() {
    let cases: [(&[usize], usize, usize, bool); 6] = [
        (&[1], 1, 8, false),
        (&[5, 17, 1], 2, 16, true),
        (&[129, 3], 3, 24, true),
        (&[33, 130, 7], 2, 64, false),
        (&[197], 2, 64, false),
        (&[300, 2, 65], 3, 8, true),
    ];
    for (index, &(lengths, heads, head_dim, alibi)) in cases.iter().enumerate() {
        let width = heads * head_dim;
        let segments = segments_of(lengths);
        let tokens = segments.last().unwrap().end;
        let qkv: Vec<f32> = values(tokens * 3 * width, 700 + index as u64).iter().map(|v| v * 2.0).collect();
        let slopes: Vec<f32> = (0..heads).map(|h| 0.5f32.powi(h as i32 + 1)).collect();
        let mut mask = vec![true; tokens];
        for t in (3..tokens).step_by(7) {
            mask[t] = false;
        }
        let scale = 1.0 / (head_dim as f32).sqrt();
        let params = AttentionParams {
            heads,
            head_dim,
            scale,
            bias: if alibi { AttentionBias::Alibi { slopes: &slopes } } else { AttentionBias::None },
            key_mask: alibi.then_some(&mask[..]),
        };
        let offset = OFFSETS[index % OFFSETS.len()];
        let scalar = run(&Kernels::scalar(), &qkv, width, &segments, &params, offset);
        // Scores reach |q·k|·scale ≤ 4·√head_dim; their error scales with that.
        let tolerance = ATTENTION_ROUNDING_UNITS * f32::EPSILON as f64 * 4.0 * (head_dim as f64).sqrt();
        for kernels in all_tiers() {
            let got = run(&kernels, &qkv, width, &segments, &params, offset);
            for segment in &segments {
                for h in 0..heads {
                    let slope = if alibi { slopes[h] as f64 } else { 0.0 };
                    let mask = params.key_mask;
                    let expected = reference(&qkv, width, segment, h, head_dim, scale as f64, slope, mask);
                    for i in 0..segment.len() {
                        for c in 0..head_dim {
                            let at = (segment.start + i) * width + h * head_dim + c;
                            let want = expected[i * head_dim + c];
                            let context = format!(
                                "{} case {index} segment {segment:?} head {h} query {i} dim {c}",
                                kernels.isa()
                            );
                            assert!(
                                (got[at] as f64 - want).abs() <= tolerance,
                                "{context}: {}, expected {want} ± {tolerance}",
                                got[at]
                            );
                            assert!(
                                (got[at] - scalar[at]).abs() as f64 <= 2.0 * tolerance,
                                "{context}: {}, scalar twin {}",
                                got[at],
                                scalar[at]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn attention_independent_of_threads_and_batch() {
    let (heads, head_dim) = (3, 64);
    let width = heads * head_dim;
    let lengths = [70usize, 197, 1, 129];
    let segments = segments_of(&lengths);
    let tokens = segments.last().unwrap().end;
    let qkv = values(tokens * 3 * width, 800);
    let slopes = [0.5f32, 0.25, 0.125];
    let mask: Vec<bool> = (0..tokens).map(|t| t % 11 != 4).collect();
    let params = AttentionParams {
        heads,
        head_dim,
        scale: 0.125,
        bias: AttentionBias::Alibi { slopes: &slopes },
        key_mask: Some(&mask),
    };
    for kernels in all_tiers() {
        let batch = pool(1).install(|| run(&kernels, &qkv, width, &segments, &params, 0));
        for threads in [2, 3] {
            let other = pool(threads).install(|| run(&kernels, &qkv, width, &segments, &params, 0));
            assert!(
                batch.iter().zip(&other).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}: differs on {threads} threads",
                kernels.isa()
            );
        }
        for segment in &segments {
            let alone_qkv = &qkv[segment.start * 3 * width..segment.end * 3 * width];
            let alone_mask = &mask[segment.clone()];
            let alone_params = AttentionParams { key_mask: Some(alone_mask), ..params };
            let alone_segments = segments_of(&[segment.len()]);
            let alone = run(&kernels, alone_qkv, width, &alone_segments, &alone_params, 1);
            let in_batch = &batch[segment.start * width..segment.end * width];
            assert!(
                alone.iter().zip(in_batch).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}: segment {segment:?} alone differs from the batch",
                kernels.isa()
            );
        }
    }
}
