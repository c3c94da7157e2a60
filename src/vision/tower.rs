//! The EVA-02 image tower: patch embedding, pre-LayerNorm blocks with 2-D
//! rotary attention and sub-LayerNorms, SwiGLU MLP, CLS output.
//!
//! Shapes: `B` images, `G×G` patches of `P×P` pixels, `N = G² + 1` tokens per
//! image (CLS first), `T = B·N`, `W` width, `F` MLP width,
//! `heads × head_width = W`.

use std::ops::Range;

use jclip_kernels::{Activation, AttentionBias, AttentionParams, Kernels, PackedMatrix};

use crate::config::VisionConfig;
use crate::error::{Error, Result};
use crate::layers::{LayerNorm, Linear, Packer};
use crate::precision::{MatrixKind, MatrixRole, Tower};
use crate::text::tower::HiddenStateObserver;
use crate::vision::rope::RopeTable;
use crate::weights::Checkpoint;
use crate::weights::names::{VisionBlockTensors, vision_tensors};

/// One pre-LayerNorm block.
#[derive(Debug)]
struct VisionBlock {
    norm1: LayerNorm,
    /// `[3W, W]`, rows q, k, v; the bias is `[q_bias, 0, v_bias]` (k has none).
    qkv: Linear,
    /// Sub-LayerNorm on the attention output.
    inner_attn_ln: LayerNorm,
    proj: Linear,
    norm2: LayerNorm,
    /// SwiGLU gate `[F, W]` (through SiLU) and value `[F, W]`, with biases.
    gate: PackedMatrix,
    gate_bias: Vec<f32>,
    value: PackedMatrix,
    value_bias: Vec<f32>,
    /// Sub-LayerNorm of the MLP.
    ffn_ln: LayerNorm,
    w3: Linear,
}

impl VisionBlock {
    fn load(
        tensors: &VisionBlockTensors<'_>,
        eps: f32,
        packer: &Packer<'_>,
        index: usize,
        layers: usize,
    ) -> Result<VisionBlock> {
        let role = |kind| MatrixRole { tower: Tower::Vision, layer: Some(index), layers, kind };
        let qkv = Linear::stack(
            packer,
            role(MatrixKind::Qkv),
            &[
                (&tensors.q_proj, tensors.q_bias.as_ref()),
                (&tensors.k_proj, None),
                (&tensors.v_proj, tensors.v_bias.as_ref()),
            ],
        )?;
        let gate_bias = tensors.w1.bias.as_ref().map(|b| b.to_f32_vec()).transpose()?.unwrap_or_default();
        let value_bias = tensors.w2.bias.as_ref().map(|b| b.to_f32_vec()).transpose()?.unwrap_or_default();
        Ok(VisionBlock {
            norm1: LayerNorm::from_tensors(&tensors.norm1, eps)?,
            qkv,
            inner_attn_ln: LayerNorm::from_tensors(&tensors.inner_attn_ln, eps)?,
            proj: Linear::from_tensors(packer, role(MatrixKind::AttentionOut), &tensors.proj)?,
            norm2: LayerNorm::from_tensors(&tensors.norm2, eps)?,
            gate: packer.rows(role(MatrixKind::Gate), &tensors.w1.weight, 0, tensors.w1.weight.shape[0])?,
            gate_bias,
            value: packer.rows(role(MatrixKind::Up), &tensors.w2.weight, 0, tensors.w2.weight.shape[0])?,
            value_bias,
            ffn_ln: LayerNorm::from_tensors(&tensors.ffn_ln, eps)?,
            w3: Linear::from_tensors(packer, role(MatrixKind::Down), &tensors.w3)?,
        })
    }
}

/// The image tower with its weights packed for the kernels.
pub struct VisionTower {
    config: VisionConfig,
    /// The conv patch projection as a linear layer `[W, 3·P·P]`, inputs ordered (channel, y, x).
    patch_embed: Linear,
    /// `[W]`.
    cls_token: Vec<f32>,
    /// `[N, W]`, row 0 for the CLS token.
    pos_embed: Vec<f32>,
    blocks: Vec<VisionBlock>,
    norm: LayerNorm,
    rope: Option<RopeTable>,
}

impl std::fmt::Debug for VisionTower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionTower").field("config", &self.config).field("blocks", &self.blocks.len()).finish()
    }
}

impl VisionTower {
    /// Builds the tower from a checkpoint, packing every matrix.
    pub fn load(checkpoint: &Checkpoint, config: &VisionConfig, packer: &Packer<'_>) -> Result<VisionTower> {
        let tensors = vision_tensors(checkpoint, config)?;
        let eps = config.layer_norm_eps;
        let layers = tensors.blocks.len();
        let blocks = tensors
            .blocks
            .iter()
            .enumerate()
            .map(|(index, block)| VisionBlock::load(block, eps, packer, index, layers))
            .collect::<Result<Vec<_>>>()?;
        let patch_role = MatrixRole { tower: Tower::Vision, layer: None, layers, kind: MatrixKind::PatchEmbed };
        let rope = if !config.rope {
            None
        } else if let (Some(cos), Some(sin)) = (&tensors.rope_cos, &tensors.rope_sin) {
            // The checkpoint's own tables take precedence over the formula.
            Some(RopeTable { cos: cos.to_f32_vec()?, sin: sin.to_f32_vec()? })
        } else {
            Some(RopeTable::new(config))
        };
        Ok(VisionTower {
            config: config.clone(),
            patch_embed: Linear::from_tensors(packer, patch_role, &tensors.patch_embed)?,
            cls_token: tensors.cls_token.to_f32_vec()?,
            pos_embed: tensors.pos_embed.to_f32_vec()?,
            blocks,
            norm: LayerNorm::from_tensors(&tensors.norm, eps)?,
            rope,
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Output width.
    pub fn dim(&self) -> usize {
        self.config.width
    }

    /// Values per image of the normalised input, `3·S·S`.
    pub fn pixels_per_image(&self) -> usize {
        3 * self.config.image_size * self.config.image_size
    }

    /// Returns the CLS embeddings `[B, W]` (not normalised) of `images`
    /// normalised images, given as `[B, 3, S, S]` floats.
    pub fn forward(
        &self,
        kernels: &Kernels,
        pixels: &[f32],
        images: usize,
        mut observer: Option<HiddenStateObserver<'_>>,
    ) -> Result<Vec<f32>> {
        let config = &self.config;
        if pixels.len() != images * self.pixels_per_image() {
            return Err(Error::InvalidOption {
                name: "pixels",
                value: format!("{} values", pixels.len()),
                reason: format!("expected {images} images of 3×{0}×{0}", config.image_size),
            });
        }
        let width = config.width;
        let grid = config.grid_size();
        let patches = grid * grid;
        let tokens_per_image = patches + 1;
        let tokens = images * tokens_per_image;
        let heads = config.num_heads();
        let head_width = config.head_width;
        let segments: Vec<Range<usize>> =
            (0..images).map(|b| b * tokens_per_image..(b + 1) * tokens_per_image).collect();

        // Patch embedding: a P×P stride-P convolution is a matmul over patches.   [B·G², W]
        let columns = self.unfold_patches(pixels, images);
        let mut patch_tokens = vec![0.0f32; images * patches * width];
        self.patch_embed.forward(kernels, &columns, images * patches, &mut patch_tokens);

        // CLS token first, then the patches; absolute positions added to all.   x: [T, W]
        let mut x = vec![0.0f32; tokens * width];
        for b in 0..images {
            let image = &mut x[b * tokens_per_image * width..(b + 1) * tokens_per_image * width];
            for (t, row) in image.chunks_exact_mut(width).enumerate() {
                let source = if t == 0 {
                    &self.cls_token[..]
                } else {
                    &patch_tokens[(b * patches + t - 1) * width..(b * patches + t) * width]
                };
                let position = &self.pos_embed[t * width..(t + 1) * width];
                for ((out, &s), &p) in row.iter_mut().zip(source).zip(position) {
                    *out = s + p;
                }
            }
        }
        if let Some(observe) = observer.as_mut() {
            observe(0, &x);
        }

        let mlp = config.mlp_hidden;
        let mut h = vec![0.0f32; tokens * width];
        let mut qkv = vec![0.0f32; tokens * 3 * width];
        let mut context = vec![0.0f32; tokens * width];
        let mut next = vec![0.0f32; tokens * width];
        let mut gated = vec![0.0f32; tokens * mlp];
        let attention = AttentionParams {
            heads,
            head_dim: head_width,
            scale: 1.0 / (head_width as f32).sqrt(),
            bias: AttentionBias::None,
            key_mask: None,
        };
        for (index, block) in self.blocks.iter().enumerate() {
            // Attention: x = x + proj(inner_ln(attn(rope(q), rope(k), v)))
            block.norm1.forward_into(kernels, &x, &mut h);
            block.qkv.forward(kernels, &h, tokens, &mut qkv);
            if let Some(rope) = &self.rope {
                self.rotate(kernels, rope, &mut qkv, images);
            }
            kernels.attention(&qkv, &qkv[width..], &qkv[2 * width..], 3 * width, &segments, &attention, &mut context);
            block.inner_attn_ln.forward(kernels, &mut context);
            block.proj.forward_add(kernels, &context, tokens, &x, &mut next);
            std::mem::swap(&mut x, &mut next);

            // MLP: x = x + w3(ffn_ln(SiLU(w1·h) ⊙ w2·h))
            block.norm2.forward_into(kernels, &x, &mut h);
            kernels.linear_gated(
                &h,
                tokens,
                &block.gate,
                Some(&block.gate_bias),
                &block.value,
                Some(&block.value_bias),
                Activation::Silu,
                &mut gated,
            );
            block.ffn_ln.forward(kernels, &mut gated);
            block.w3.forward_add(kernels, &gated, tokens, &x, &mut next);
            std::mem::swap(&mut x, &mut next);
            if let Some(observe) = observer.as_mut() {
                observe(index + 1, &x);
            }
        }

        // Final LayerNorm of the CLS token of each image.   [B, W]
        let mut out = Vec::with_capacity(images * width);
        for b in 0..images {
            out.extend_from_slice(&x[b * tokens_per_image * width..][..width]);
        }
        self.norm.forward(kernels, &mut out);
        Ok(out)
    }

    /// Rearranges `[B, 3, S, S]` pixels into `[B·G², 3·P·P]` patch rows,
    /// patches in row-major grid order, values ordered (channel, y, x) like
    /// the convolution weight.
    fn unfold_patches(&self, pixels: &[f32], images: usize) -> Vec<f32> {
        let size = self.config.image_size;
        let patch = self.config.patch_size;
        let grid = self.config.grid_size();
        let row_len = 3 * patch * patch;
        let mut columns = vec![0.0f32; images * grid * grid * row_len];
        for b in 0..images {
            let image = &pixels[b * 3 * size * size..(b + 1) * 3 * size * size];
            for gy in 0..grid {
                for gx in 0..grid {
                    let row = &mut columns[((b * grid + gy) * grid + gx) * row_len..][..row_len];
                    for c in 0..3 {
                        for ky in 0..patch {
                            let source = &image[(c * size + gy * patch + ky) * size + gx * patch..][..patch];
                            row[(c * patch + ky) * patch..][..patch].copy_from_slice(source);
                        }
                    }
                }
            }
        }
        columns
    }

    /// Applies the rotary embedding to q and k of every patch token (not CLS).
    fn rotate(&self, kernels: &Kernels, rope: &RopeTable, qkv: &mut [f32], images: usize) {
        let width = self.config.width;
        let heads = self.config.num_heads();
        let head_width = self.config.head_width;
        let tokens_per_image = self.config.tokens_per_image();
        let patches = tokens_per_image - 1;
        let stride = 3 * width;
        for b in 0..images {
            let first_patch = b * tokens_per_image + 1;
            for part in 0..2 {
                // part 0 rotates q (columns 0..W), part 1 rotates k (columns W..2W).
                let start = first_patch * stride + part * width;
                let end = start + (patches - 1) * stride + width;
                kernels.rope_interleaved(
                    &mut qkv[start..end],
                    stride,
                    patches,
                    heads,
                    head_width,
                    &rope.cos,
                    &rope.sin,
                );
            }
        }
    }
}
