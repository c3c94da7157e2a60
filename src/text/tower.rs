//! The JinaBERT v2 text tower: ALiBi attention, GEGLU, post-LayerNorm, mean pooling.
//!
//! Shapes: `T` tokens of all texts in a batch, packed one after another;
//! `H` hidden size; `I` GEGLU inner width; `heads × head_dim = H`.

use std::ops::Range;
use std::sync::Arc;

use jclip_kernels::{Activation, AttentionBias, AttentionParams, Kernels, PackedMatrix};

use crate::config::TextConfig;
use crate::error::Result;
use crate::layers::{LayerNorm, Linear, Packer};
use crate::precision::{MatrixKind, MatrixRole, Tower};
use crate::text::alibi::alibi_slopes;
use crate::weights::names::{QkvTensors, TextTensors};
use crate::weights::{Checkpoint, MappedTable};

/// Token ids of several texts packed one after another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenBatch {
    /// `[T]`.
    pub ids: Vec<u32>,
    /// One range of `ids` per text, in order, covering all of `ids`.
    pub segments: Vec<Range<usize>>,
}

impl TokenBatch {
    /// Appends one text.
    pub fn push(&mut self, ids: &[u32]) {
        let start = self.ids.len();
        self.ids.extend_from_slice(ids);
        self.segments.push(start..self.ids.len());
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    pub fn texts(&self) -> usize {
        self.segments.len()
    }
}

/// One post-LayerNorm layer.
#[derive(Debug)]
struct TextLayer {
    /// `[3H, H]`, rows ordered q, k, v; head `j` owns `head_dim` consecutive rows of each.
    qkv: Linear,
    out_proj: Linear,
    norm1: LayerNorm,
    /// First half of the GEGLU up-projection `[I, H]`, through GELU.
    gate: PackedMatrix,
    /// Second half `[I, H]`, multiplied by the gate.
    value: PackedMatrix,
    /// Biases of the up-projection halves, when the checkpoint has one.
    gate_bias: Option<Vec<f32>>,
    value_bias: Option<Vec<f32>>,
    wo: Linear,
    norm2: LayerNorm,
}

/// The text tower with its weights packed for the kernels.
pub struct TextTower {
    config: TextConfig,
    /// `[vocab, H]`, read in place from the mapped checkpoint.
    word_embeddings: MappedTable,
    /// Row 0 of the token-type table, `[H]`: every token has type 0.
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<TextLayer>,
    /// `[heads]`.
    slopes: Vec<f32>,
}

impl std::fmt::Debug for TextTower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTower").field("config", &self.config).field("layers", &self.layers.len()).finish()
    }
}

/// Receives the hidden states `[T, H]` after the embeddings (index 0) and
/// after each layer (index `l + 1`), for tests and debugging.
pub type HiddenStateObserver<'a> = &'a mut dyn FnMut(usize, &[f32]);

impl TextTower {
    /// Builds the tower from a checkpoint, packing every matrix.
    pub fn load(checkpoint: &Arc<Checkpoint>, config: &TextConfig, packer: &Packer<'_>) -> Result<TextTower> {
        let tensors: TextTensors<'_> = crate::weights::names::text_tensors(checkpoint, config)?;
        let eps = config.layer_norm_eps;
        let inner = config.intermediate_size;
        let layer_count = tensors.layers.len();
        let mut layers = Vec::with_capacity(layer_count);
        for (index, layer) in tensors.layers.iter().enumerate() {
            let role = |kind| MatrixRole { tower: Tower::Text, layer: Some(index), layers: layer_count, kind };
            let qkv = match &layer.qkv {
                QkvTensors::Fused(fused) => Linear::from_tensors(packer, role(MatrixKind::Qkv), fused)?,
                QkvTensors::Separate { query, key, value } => Linear::stack(
                    packer,
                    role(MatrixKind::Qkv),
                    &[
                        (&query.weight, query.bias.as_ref()),
                        (&key.weight, key.bias.as_ref()),
                        (&value.weight, value.bias.as_ref()),
                    ],
                )?,
            };
            let up = &layer.gated_layers;
            let (gate_bias, value_bias) = match &up.bias {
                Some(bias) => {
                    let values = bias.to_f32_vec()?;
                    (Some(values[..inner].to_vec()), Some(values[inner..].to_vec()))
                }
                None => (None, None),
            };
            layers.push(TextLayer {
                qkv,
                out_proj: Linear::from_tensors(packer, role(MatrixKind::AttentionOut), &layer.out_proj)?,
                norm1: LayerNorm::from_tensors(&layer.norm1, eps)?,
                gate: packer.rows(role(MatrixKind::Gate), &up.weight, 0, inner)?,
                value: packer.rows(role(MatrixKind::Up), &up.weight, inner, inner)?,
                gate_bias,
                value_bias,
                wo: Linear::from_tensors(packer, role(MatrixKind::Down), &layer.wo)?,
                norm2: LayerNorm::from_tensors(&layer.norm2, eps)?,
            });
        }
        let mut token_type = vec![0.0f32; config.hidden_size];
        tensors.token_type_embeddings.read_f32(0, &mut token_type)?;
        let embedding_norm = LayerNorm::from_tensors(&tensors.embedding_norm, eps)?;
        let word_embeddings =
            MappedTable::new(Arc::clone(checkpoint), &tensors.word_embeddings, config.vocab_size, config.hidden_size)?;
        Ok(TextTower {
            config: config.clone(),
            word_embeddings,
            token_type,
            embedding_norm,
            layers,
            slopes: alibi_slopes(config.num_heads),
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Output width (the hidden size).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Returns the mean-pooled embeddings `[texts, H]` (not normalised).
    ///
    /// Token ids must be below the vocabulary size (checked by the caller),
    /// and every text must contain a token other than padding.
    pub fn forward(
        &self,
        kernels: &Kernels,
        batch: &TokenBatch,
        mut observer: Option<HiddenStateObserver<'_>>,
    ) -> Vec<f32> {
        let config = &self.config;
        let (tokens, hidden) = (batch.tokens(), config.hidden_size);
        let (heads, head_dim) = (config.num_heads, config.head_dim());
        let inner = config.intermediate_size;

        // Positions holding the pad id are masked out of attention and pooling,
        // as the reference derives its mask from `ids != pad_token_id`.
        let is_real: Vec<bool> = batch.ids.iter().map(|&id| id != config.pad_token_id).collect();
        let key_mask = if is_real.iter().all(|&real| real) { None } else { Some(is_real.as_slice()) };

        // Embeddings: word row + token-type row 0, then LayerNorm.   h: [T, H]
        let mut h = vec![0.0f32; tokens * hidden];
        for (row, &id) in h.chunks_exact_mut(hidden).zip(&batch.ids) {
            self.word_embeddings.read_row(id as usize, row);
            for (v, &t) in row.iter_mut().zip(&self.token_type) {
                *v += t;
            }
        }
        self.embedding_norm.forward(kernels, &mut h);
        if let Some(observe) = observer.as_mut() {
            observe(0, &h);
        }

        let mut qkv = vec![0.0f32; tokens * 3 * hidden];
        let mut context = vec![0.0f32; tokens * hidden];
        let mut h1 = vec![0.0f32; tokens * hidden];
        let mut gated = vec![0.0f32; tokens * inner];
        let attention = AttentionParams {
            heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            bias: AttentionBias::Alibi { slopes: &self.slopes },
            key_mask,
        };
        for (index, layer) in self.layers.iter().enumerate() {
            // Self-attention with ALiBi over each text.   qkv: [T, 3H] -> context: [T, H]
            layer.qkv.forward(kernels, &h, tokens, &mut qkv);
            kernels.attention(
                &qkv,
                &qkv[hidden..],
                &qkv[2 * hidden..],
                3 * hidden,
                &batch.segments,
                &attention,
                &mut context,
            );
            // h1 = LayerNorm(h + out_proj(context))
            layer.out_proj.forward_add(kernels, &context, tokens, &h, &mut h1);
            layer.norm1.forward(kernels, &mut h1);
            // GEGLU: GELU(first half) ⊙ second half.   gated: [T, I]
            kernels.linear_gated(
                &h1,
                tokens,
                &layer.gate,
                layer.gate_bias.as_deref(),
                &layer.value,
                layer.value_bias.as_deref(),
                Activation::Gelu,
                &mut gated,
            );
            // h = LayerNorm(h1 + wo(gated))
            layer.wo.forward_add(kernels, &gated, tokens, &h1, &mut h);
            layer.norm2.forward(kernels, &mut h);
            if let Some(observe) = observer.as_mut() {
                observe(index + 1, &h);
            }
        }

        // Mean over the real tokens of each text.   [texts, H]
        let mut pooled = vec![0.0f32; batch.texts() * hidden];
        for (out, segment) in pooled.chunks_exact_mut(hidden).zip(&batch.segments) {
            let mut sum = vec![0.0f64; hidden];
            let mut count = 0usize;
            for t in segment.clone().filter(|&t| is_real[t]) {
                count += 1;
                for (s, &v) in sum.iter_mut().zip(&h[t * hidden..(t + 1) * hidden]) {
                    *s += v as f64;
                }
            }
            for (o, s) in out.iter_mut().zip(sum) {
                *o = (s / count as f64) as f32;
            }
        }
        pooled
    }
}
