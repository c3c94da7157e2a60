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
use crate::matmul::simd::{lines_len, micro_dispatch, return_scratch, split_lines, take_scratch};
use crate::matmul::{NR, copy_group};
use crate::simd::{self, Simd};

/// Keys scored together before the running softmax is updated; a multiple of [`NR`].
pub const KEY_TILE: usize = 128;

/// Additive score of a masked key, as the reference padding mask (−10000,
/// not −∞, so a row whose keys are all masked still averages its values).
pub const MASKED_KEY_SCORE: f32 = -10_000.0;

/// Minimum queries per parallel task when a segment and head is split. A
/// task packs the keys and values of its segment and head, so every split
/// packs them once more.
const MIN_QUERIES_PER_TASK: usize = 64;

/// Tasks per thread that [`query_blocks`] aims for when more than one
/// thread runs, so that work stealing evens out the last tasks.
const TASKS_PER_THREAD: usize = 4;

/// Returns how many tasks the queries of each segment and head are split
/// into: one, unless there are too few (segment, head) pairs to give every
/// one of `threads` threads [`TASKS_PER_THREAD`] tasks.
fn query_blocks(len: usize, pairs: usize, threads: usize) -> usize {
    if threads <= 1 || pairs == 0 {
        return 1;
    }
    let target = (TASKS_PER_THREAD * threads).div_ceil(pairs);
    target.min(len / MIN_QUERIES_PER_TASK).max(1)
}

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
/// `head_dim` values, `stride` floats apart. `scores` has room for [`KEY_TILE`] values.
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
            if bias.key_mask.is_some_and(|mask| !mask[j]) {
                s += MASKED_KEY_SCORE;
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
pub(crate) struct Task {
    pub segment: Range<usize>,
    pub head: usize,
    /// Query positions within the segment.
    pub queries: Range<usize>,
}

/// One attention call, shared by its tasks.
pub(crate) struct AttentionJob<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub stride: usize,
    pub params: &'a AttentionParams<'a>,
    /// `[tokens, heads·head_dim]`; each task writes only its own rows of its head.
    pub out: DisjointOutput<'a>,
}

impl AttentionJob<'_> {
    fn slope(&self, head: usize) -> f32 {
        match self.params.bias {
            AttentionBias::None => 0.0,
            AttentionBias::Alibi { slopes } => slopes[head],
        }
    }
}

/// Computes one task of an attention job.
///
/// # Safety
/// The CPU must support the tier the function belongs to, and no other task
/// may write the task's part of the output meanwhile.
pub(crate) type TaskKernel = unsafe fn(&AttentionJob<'_>, &Task);

/// Computes one task with [`attention_row_scalar`] for every query.
///
/// # Safety
/// No other task may write the task's part of the output meanwhile.
pub(crate) unsafe fn task_scalar(job: &AttentionJob<'_>, task: &Task) {
    let params = job.params;
    let head_dim = params.head_dim;
    let width = params.heads * head_dim;
    let mut scores = vec![0.0f32; KEY_TILE];
    let base = task.segment.start;
    let column = task.head * head_dim;
    let keys = &job.k[base * job.stride + column..];
    let values = &job.v[base * job.stride + column..];
    let key_mask = params.key_mask.map(|mask| &mask[task.segment.clone()]);
    for i in task.queries.clone() {
        let row = base + i;
        let query = &job.q[row * job.stride + column..][..head_dim];
        // SAFETY: each (row, head) block belongs to exactly one task (caller's
        // contract), and it lies inside `out` (checked by `Kernels::attention`).
        let out_row = unsafe { job.out.slice(row * width + column, head_dim) };
        let bias = RowBias { slope: job.slope(task.head), query: i, key_mask };
        attention_row_scalar(
            query,
            keys,
            values,
            job.stride,
            task.segment.len(),
            params.scale,
            bias,
            out_row,
            &mut scores,
        );
    }
}

/// Lane offsets 0, 1, 2, … as floats, for query positions in the ALiBi bias.
const LANE_INDICES: [f32; 16] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0];

/// Computes one task in blocks of `NP·NR` queries against key tiles of
/// [`KEY_TILE`], with both products on the matmul microkernel.
///
/// The scores are computed transposed, one row per key and one lane per
/// query: `Sᵀ = K·Qᵀ`, with the keys as the microkernel's rows (`MR` at a
/// time) and the queries as its panels. The softmax then runs down the
/// rows, each lane keeping its own query's running maximum and sum, so it
/// needs no reduction across lanes. The weights also come out key-major,
/// which is the layout the product `O = P·V` reads as its rows.
///
/// Per task, the keys of the segment and head are packed in groups of `MR`
/// within each key tile, dimension-major (`kp[(group·head_dim + c)·MR + r]`
/// for key `r` of the group), the queries in panels of [`NR`]
/// (`qt[(panel·head_dim + c)·NR + i]`) and the values in panels of `NR`
/// head dimensions (`vp[(panel·len + j)·NR + c]`). Keys and queries are
/// copied a group of rows at a time, each row read in order. Their rows lie
/// a whole QKV row apart, so walking one dimension down all rows would touch
/// one cache line per row, and with such strides only a few cache sets.
///
/// Each score is one fused chain over `head_dim`, then `s = S·scale +
/// ALiBi + mask` with separate roundings as the scalar kernel, the
/// online-softmax update, then `O += P·V`. A query's arithmetic depends only on its own segment: not on
/// the other queries of its block, nor on other segments.
///
/// # Safety
/// The CPU must support `S`'s tier, `MR <= MAX_MR`, `NP <= MAX_NP`,
/// `VPP·S::LANES == NR`, and no other task may write the task's part of the
/// output meanwhile.
#[inline(always)]
pub(crate) unsafe fn task_simd<S: Simd, const MR: usize, const NP: usize, const VPP: usize>(
    s: S,
    job: &AttentionJob<'_>,
    task: &Task,
) {
    const { assert!(NR <= LANE_INDICES.len()) };
    let params = job.params;
    let (head_dim, stride) = (params.head_dim, job.stride);
    let width = params.heads * head_dim;
    let len = task.segment.len();
    let queries = task.queries.len();
    let base = task.segment.start;
    let column = task.head * head_dim;
    let slope = job.slope(task.head);
    let block = NP * NR;
    // Key groups of MR rows start afresh in every tile, and the last group
    // of a tile is padded with zero keys.
    let groups_per_tile = KEY_TILE.div_ceil(MR);
    let key_group_len = MR * head_dim;
    let query_panels = queries.div_ceil(NR);
    let dim_panels = head_dim.div_ceil(NR);
    let padded_dim = dim_panels * NR;
    let score_rows = KEY_TILE + MR;

    let kp_len = len.div_ceil(KEY_TILE) * groups_per_tile * key_group_len;
    let qt_len = query_panels * head_dim * NR;
    let vp_len = dim_panels * len * NR;
    // Every part starts on a cache line, so the panels, score rows and
    // output rows that the microkernel reads and writes do too.
    let sizes = [kp_len, qt_len, vp_len, len, score_rows * block, block * padded_dim, block, block, block];
    let mut scratch = take_scratch(lines_len(&sizes));
    let [kp, qt, vp, mask_add, scores, o, running_max, running_sum, correction] = split_lines(&mut scratch, sizes);
    let key_group = |t0: usize, g: usize| ((t0 / KEY_TILE) * groups_per_tile + g / MR) * key_group_len;

    // Keys in groups of MR per tile, zeros past the end of each tile.
    for t0 in (0..len).step_by(KEY_TILE) {
        let tile_len = KEY_TILE.min(len - t0);
        for g in (0..tile_len).step_by(MR) {
            let source = &job.k[(base + t0 + g) * stride + column..];
            let out = &mut kp[key_group(t0, g)..][..key_group_len];
            copy_group::<MR>(source, stride, MR.min(tile_len - g), 0, head_dim, out);
        }
    }
    // The task's queries in panels, zeros past the last query.
    for (panel, panel_values) in qt.chunks_exact_mut(head_dim * NR).enumerate() {
        let first = base + task.queries.start + panel * NR;
        let count = NR.min(queries - panel * NR);
        copy_group::<NR>(&job.q[first * stride + column..], stride, count, 0, head_dim, panel_values);
    }
    // Values in panels of NR dimensions, zeros past head_dim.
    if head_dim % NR != 0 {
        vp[(dim_panels - 1) * len * NR..].fill(0.0);
    }
    for j in 0..len {
        let value = &job.v[(base + j) * stride + column..][..head_dim];
        let mut chunks = value.chunks_exact(NR);
        for (panel, chunk) in chunks.by_ref().enumerate() {
            let destination: &mut [f32; NR] = (&mut vp[(panel * len + j) * NR..][..NR]).try_into().expect("NR values");
            *destination = chunk.try_into().expect("NR values");
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            vp[((dim_panels - 1) * len + j) * NR..][..tail.len()].copy_from_slice(tail);
        }
    }
    for (j, add) in mask_add.iter_mut().enumerate() {
        let masked = params.key_mask.is_some_and(|mask| !mask[base + j]);
        *add = if masked { MASKED_KEY_SCORE } else { 0.0 };
    }

    let scale = s.splat(params.scale);
    let negative_slope = s.splat(-slope);
    let mut panels = [std::ptr::null::<f32>(); super::matmul::simd::MAX_NP];
    for q0 in (0..queries).step_by(block) {
        let block_queries = block.min(queries - q0);
        let np = block_queries.div_ceil(NR);
        let lanes = np * NR;
        for (p, panel) in panels[..np].iter_mut().enumerate() {
            *panel = qt[(q0 / NR + p) * head_dim * NR..].as_ptr();
        }
        running_max.fill(f32::NEG_INFINITY);
        running_sum.fill(0.0);
        o[..block_queries * padded_dim].fill(0.0);

        for t0 in (0..len).step_by(KEY_TILE) {
            let tile_len = KEY_TILE.min(len - t0);

            // Scores Sᵀ of the tile: one row of `lanes` queries per key, rows `block` apart.
            for g in (0..tile_len).step_by(MR) {
                // SAFETY: the key group contains head_dim·MR floats, and each
                // query panel head_dim·NR. The scores have room for g + MR ≤
                // score_rows rows of block ≥ np·NR floats.
                unsafe {
                    let x = kp.as_ptr().add(key_group(t0, g));
                    let acc = scores.as_mut_ptr().add(g * block);
                    micro_dispatch::<S, VPP>(s, MR, np, x, MR, &panels, head_dim, acc, block, false);
                }
            }

            // Bias and online-softmax update down each lane; the scores become the weights P.
            for v in (0..lanes).step_by(S::LANES) {
                let first_query = (task.queries.start + q0 + v) as f32;
                // SAFETY: LANE_INDICES contains NR ≥ LANES values. Lanes v..v +
                // LANES ≤ lanes ≤ block lie inside every row of the scores and
                // inside the statistics, and the rows r < tile_len exist.
                unsafe {
                    let query_positions = s.add(s.load(LANE_INDICES.as_ptr()), s.splat(first_query));
                    let mut tile_max = s.splat(f32::NEG_INFINITY);
                    for r in 0..tile_len {
                        let pointer = scores.as_mut_ptr().add(r * block + v);
                        let mut x = s.mul(s.load(pointer), scale);
                        if slope != 0.0 {
                            let distance = s.abs(s.sub(query_positions, s.splat((t0 + r) as f32)));
                            x = s.add(x, s.mul(negative_slope, distance));
                        }
                        x = s.add(x, s.splat(mask_add[t0 + r]));
                        s.store(pointer, x);
                        tile_max = s.max(tile_max, x);
                    }
                    let old_max = s.load(running_max.as_ptr().add(v));
                    let new_max = s.max(old_max, tile_max);
                    let factor = simd::exp(s, s.sub(old_max, new_max));
                    let mut sum = s.mul(s.load(running_sum.as_ptr().add(v)), factor);
                    for r in 0..tile_len {
                        let pointer = scores.as_mut_ptr().add(r * block + v);
                        let p = simd::exp(s, s.sub(s.load(pointer), new_max));
                        s.store(pointer, p);
                        sum = s.add(sum, p);
                    }
                    s.store(running_sum.as_mut_ptr().add(v), sum);
                    s.store(running_max.as_mut_ptr().add(v), new_max);
                    s.store(correction.as_mut_ptr().add(v), factor);
                }
            }
            if t0 > 0 {
                for (row, &factor) in o.chunks_exact_mut(padded_dim).zip(&correction[..block_queries]) {
                    let factor = s.splat(factor);
                    for c in (0..padded_dim).step_by(S::LANES) {
                        // SAFETY: the row has padded_dim floats, a multiple of LANES.
                        unsafe {
                            let pointer = row.as_mut_ptr().add(c);
                            s.store(pointer, s.mul(s.load(pointer), factor));
                        }
                    }
                }
            }

            // O += P·V over the tile, MR queries at a time; P is read key-major from the scores.
            for i0 in (0..block_queries).step_by(MR) {
                let rows = MR.min(block_queries - i0);
                for panel in (0..dim_panels).step_by(NP) {
                    let np = NP.min(dim_panels - panel);
                    let mut values = [std::ptr::null::<f32>(); super::matmul::simd::MAX_NP];
                    for (p, pointer) in values[..np].iter_mut().enumerate() {
                        *pointer = vp[((panel + p) * len + t0) * NR..].as_ptr();
                    }
                    // SAFETY: the scores contain tile_len rows of block ≥ i0 +
                    // rows floats, and each value panel tile_len·NR floats from
                    // t0. Rows i0..i0 + rows of o have padded_dim ≥ (panel +
                    // np)·NR floats.
                    unsafe {
                        let x = scores.as_ptr().add(i0);
                        let acc = o.as_mut_ptr().add(i0 * padded_dim + panel * NR);
                        micro_dispatch::<S, VPP>(s, rows, np, x, block, &values, tile_len, acc, padded_dim, true);
                    }
                }
            }
        }

        for i in 0..block_queries {
            let row = base + task.queries.start + q0 + i;
            // SAFETY: each (row, head) block belongs to exactly one task
            // (caller's contract), and it lies inside `out`.
            let out_row = unsafe { job.out.slice(row * width + column, head_dim) };
            let inverse = if running_sum[i] > 0.0 { 1.0 / running_sum[i] } else { 1.0 };
            for (out, &value) in out_row.iter_mut().zip(&o[i * padded_dim..]) {
                *out = value * inverse;
            }
        }
    }
    return_scratch(scratch);
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
        let threads = rayon::current_num_threads();
        for segment in segments {
            let blocks = query_blocks(segment.len(), segments.len() * params.heads, threads);
            let per_task = segment.len().div_ceil(blocks).max(1);
            for head in 0..params.heads {
                for first in (0..segment.len()).step_by(per_task) {
                    let queries = first..(first + per_task).min(segment.len());
                    tasks.push(Task { segment: segment.clone(), head, queries });
                }
            }
        }

        let job = AttentionJob { q, k, v, stride, params, out: DisjointOutput::new(out) };
        let kernel = self.table.attention;
        tasks.into_par_iter().for_each(|task| {
            // SAFETY: `Kernels` exists only for tiers the CPU supports, and
            // every (token, head) block of the output belongs to one task.
            unsafe { kernel(&job, &task) }
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
