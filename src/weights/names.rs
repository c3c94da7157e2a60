//! The one module that maps checkpoint tensor names.
//!
//! It maps the names of a checkpoint onto typed per-layer structs and checks
//! every shape against the configuration. Three text layouts are accepted:
//! - flash-attn style, as in jina-clip-v1
//!   (`text_model.transformer.encoder.layers.N.mixer.Wqkv`, `norm1`,
//!   `mlp.gated_layers`, `mlp.wo`, `norm2`, `emb_ln`);
//! - classic JinaBERT (`encoder.layer.N.attention.self.{query,key,value}`,
//!   `attention.output.{dense,LayerNorm}`, `mlp.layernorm`, `embeddings.LayerNorm`);
//! - either of them without the `text_model.transformer.` prefix, as in a bare
//!   jina-embeddings-v2 checkpoint.
//!
//! The image tower uses the EVA-02 names of jina-clip-v1 under `vision_model.`.

use crate::config::{TextConfig, VisionConfig};
use crate::error::{Error, Result};
use crate::weights::{Checkpoint, TensorRef};

/// Prefix of the text tower inside a jina-clip checkpoint.
pub const CLIP_TEXT_PREFIX: &str = "text_model.transformer.";
/// Prefix of the image tower inside a jina-clip checkpoint.
pub const VISION_PREFIX: &str = "vision_model.";
/// The scalar temperature of the CLIP logits.
pub const LOGIT_SCALE: &str = "logit_scale";

/// LayerNorm weight and bias.
pub struct NormTensors<'a> {
    pub weight: TensorRef<'a>,
    pub bias: TensorRef<'a>,
}

/// A `Linear` layer: weight `[out, in]` and optional bias `[out]`.
pub struct LinearTensors<'a> {
    pub weight: TensorRef<'a>,
    pub bias: Option<TensorRef<'a>>,
}

/// The query, key and value projections of a text layer.
// Lives only while the model loads, so the variants' size difference is harmless.
#[allow(clippy::large_enum_variant)]
pub enum QkvTensors<'a> {
    /// One `[3·hidden, hidden]` matrix, rows ordered q, k, v (flash-attn `Wqkv`).
    Fused(LinearTensors<'a>),
    /// Three `[hidden, hidden]` matrices (classic JinaBERT).
    Separate { query: LinearTensors<'a>, key: LinearTensors<'a>, value: LinearTensors<'a> },
}

/// Tensors of one post-LayerNorm JinaBERT layer.
pub struct TextLayerTensors<'a> {
    pub qkv: QkvTensors<'a>,
    pub out_proj: LinearTensors<'a>,
    /// LayerNorm after the attention residual.
    pub norm1: NormTensors<'a>,
    /// GEGLU up-projection `[2·intermediate, hidden]`; rows `0..intermediate` are gated.
    pub gated_layers: LinearTensors<'a>,
    pub wo: LinearTensors<'a>,
    /// LayerNorm after the MLP residual.
    pub norm2: NormTensors<'a>,
}

/// Tensors of the text tower.
pub struct TextTensors<'a> {
    /// Name of the `[vocab, hidden]` word embedding table, read in place.
    pub word_embeddings: String,
    /// `[type_vocab, hidden]`; only row 0 is used.
    pub token_type_embeddings: TensorRef<'a>,
    pub embedding_norm: NormTensors<'a>,
    pub layers: Vec<TextLayerTensors<'a>>,
}

/// Tensors of one EVA-02 block.
pub struct VisionBlockTensors<'a> {
    pub norm1: NormTensors<'a>,
    /// `[width, width]` each, without bias tensors.
    pub q_proj: TensorRef<'a>,
    pub k_proj: TensorRef<'a>,
    pub v_proj: TensorRef<'a>,
    /// `[width]`, present when `qkv_bias` is set; k has no bias.
    pub q_bias: Option<TensorRef<'a>>,
    pub v_bias: Option<TensorRef<'a>>,
    /// Sub-LayerNorm on the attention output, before `proj`.
    pub inner_attn_ln: NormTensors<'a>,
    pub proj: LinearTensors<'a>,
    pub norm2: NormTensors<'a>,
    /// SwiGLU gate (through SiLU), `[mlp_hidden, width]`.
    pub w1: LinearTensors<'a>,
    /// SwiGLU value, `[mlp_hidden, width]`.
    pub w2: LinearTensors<'a>,
    /// Sub-LayerNorm of the MLP, `[mlp_hidden]`.
    pub ffn_ln: NormTensors<'a>,
    /// Down-projection `[width, mlp_hidden]`.
    pub w3: LinearTensors<'a>,
}

/// Tensors of the image tower.
pub struct VisionTensors<'a> {
    /// `[1, 1, width]`.
    pub cls_token: TensorRef<'a>,
    /// `[1, tokens_per_image, width]`.
    pub pos_embed: TensorRef<'a>,
    /// Patch projection: conv weight `[width, 3, patch, patch]` and bias.
    pub patch_embed: LinearTensors<'a>,
    pub blocks: Vec<VisionBlockTensors<'a>>,
    pub norm: NormTensors<'a>,
    /// Stored rotary tables `[grid², head_width]`, when the checkpoint has them.
    pub rope_cos: Option<TensorRef<'a>>,
    pub rope_sin: Option<TensorRef<'a>>,
}

/// Looks tensors up by name and checks their shapes.
struct Lookup<'a> {
    checkpoint: &'a Checkpoint,
    prefix: String,
    tower: &'static str,
}

impl<'a> Lookup<'a> {
    fn required(&self, name: &str, shape: &[usize]) -> Result<TensorRef<'a>> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self.checkpoint.get(&full).ok_or_else(|| Error::MissingTensor {
            path: self.checkpoint.path().to_path_buf(),
            name: full.clone(),
            hint: format!("required by the {} with the shapes in config.json", self.tower),
        })?;
        tensor.float_dtype()?;
        tensor.expect_shape(shape)?;
        Ok(tensor)
    }

    fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<TensorRef<'a>>> {
        if self.checkpoint.contains(&format!("{}{name}", self.prefix)) {
            self.required(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    fn norm(&self, name: &str, dim: usize) -> Result<NormTensors<'a>> {
        Ok(NormTensors {
            weight: self.required(&format!("{name}.weight"), &[dim])?,
            bias: self.required(&format!("{name}.bias"), &[dim])?,
        })
    }

    fn linear(&self, name: &str, out: usize, input: usize, bias: Bias) -> Result<LinearTensors<'a>> {
        let weight = self.required(&format!("{name}.weight"), &[out, input])?;
        let bias = match bias {
            Bias::Required => Some(self.required(&format!("{name}.bias"), &[out])?),
            Bias::Optional => self.optional(&format!("{name}.bias"), &[out])?,
        };
        Ok(LinearTensors { weight, bias })
    }
}

#[derive(Clone, Copy)]
enum Bias {
    Required,
    Optional,
}

/// Naming style of the text tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextNaming {
    Flash,
    Classic,
}

/// Finds where and how the text tower is named: returns the prefix and the style.
pub fn detect_text_layout(checkpoint: &Checkpoint) -> Result<(String, TextNaming)> {
    for prefix in [CLIP_TEXT_PREFIX, ""] {
        if !checkpoint.contains(&format!("{prefix}embeddings.word_embeddings.weight")) {
            continue;
        }
        if checkpoint.contains(&format!("{prefix}encoder.layers.0.mixer.Wqkv.weight"))
            || checkpoint.contains(&format!("{prefix}emb_ln.weight"))
        {
            return Ok((prefix.to_string(), TextNaming::Flash));
        }
        if checkpoint.contains(&format!("{prefix}encoder.layer.0.attention.self.query.weight"))
            || checkpoint.contains(&format!("{prefix}embeddings.LayerNorm.weight"))
        {
            return Ok((prefix.to_string(), TextNaming::Classic));
        }
    }
    Err(Error::MissingTensor {
        path: checkpoint.path().to_path_buf(),
        name: format!("{CLIP_TEXT_PREFIX}embeddings.word_embeddings.weight"),
        hint: "no text tower found, neither flash-attn style (encoder.layers.N.mixer.Wqkv) nor classic JinaBERT \
               (encoder.layer.N.attention.self.query) names, with or without the text_model.transformer. prefix"
            .into(),
    })
}

/// Maps the text tower's tensors and checks their shapes against `config`.
pub fn text_tensors<'a>(checkpoint: &'a Checkpoint, config: &TextConfig) -> Result<TextTensors<'a>> {
    let (prefix, naming) = detect_text_layout(checkpoint)?;
    let lookup = Lookup { checkpoint, prefix: prefix.clone(), tower: "text tower" };
    let hidden = config.hidden_size;
    let inner = config.intermediate_size;

    let word_embeddings = format!("{prefix}embeddings.word_embeddings.weight");
    lookup.required("embeddings.word_embeddings.weight", &[config.vocab_size, hidden])?;
    let token_type_embeddings =
        lookup.required("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, hidden])?;
    let (embedding_norm, layer_path) = match naming {
        TextNaming::Flash => (lookup.norm("emb_ln", hidden)?, "encoder.layers"),
        TextNaming::Classic => (lookup.norm("embeddings.LayerNorm", hidden)?, "encoder.layer"),
    };

    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let layer = format!("{layer_path}.{i}");
        let tensors = match naming {
            TextNaming::Flash => TextLayerTensors {
                qkv: QkvTensors::Fused(lookup.linear(
                    &format!("{layer}.mixer.Wqkv"),
                    3 * hidden,
                    hidden,
                    Bias::Required,
                )?),
                out_proj: lookup.linear(&format!("{layer}.mixer.out_proj"), hidden, hidden, Bias::Required)?,
                norm1: lookup.norm(&format!("{layer}.norm1"), hidden)?,
                gated_layers: lookup.linear(&format!("{layer}.mlp.gated_layers"), 2 * inner, hidden, Bias::Optional)?,
                wo: lookup.linear(&format!("{layer}.mlp.wo"), hidden, inner, Bias::Required)?,
                norm2: lookup.norm(&format!("{layer}.norm2"), hidden)?,
            },
            TextNaming::Classic => {
                let projection = |name: &str| {
                    lookup.linear(&format!("{layer}.attention.self.{name}"), hidden, hidden, Bias::Required)
                };
                TextLayerTensors {
                    qkv: QkvTensors::Separate {
                        query: projection("query")?,
                        key: projection("key")?,
                        value: projection("value")?,
                    },
                    out_proj: lookup.linear(
                        &format!("{layer}.attention.output.dense"),
                        hidden,
                        hidden,
                        Bias::Required,
                    )?,
                    norm1: lookup.norm(&format!("{layer}.attention.output.LayerNorm"), hidden)?,
                    gated_layers: lookup.linear(
                        &format!("{layer}.mlp.gated_layers"),
                        2 * inner,
                        hidden,
                        Bias::Optional,
                    )?,
                    wo: lookup.linear(&format!("{layer}.mlp.wo"), hidden, inner, Bias::Required)?,
                    norm2: lookup.norm(&format!("{layer}.mlp.layernorm"), hidden)?,
                }
            }
        };
        layers.push(tensors);
    }

    let extra = format!("{prefix}{layer_path}.{}.", config.num_layers);
    if let Some(name) = checkpoint.names().find(|name| name.starts_with(&extra)) {
        return Err(Error::InvalidCheckpoint {
            path: checkpoint.path().to_path_buf(),
            message: format!(
                "tensor {name} belongs to layer {} but config.json declares {} text layers; \
                 the config does not match the weights",
                config.num_layers, config.num_layers
            ),
        });
    }

    Ok(TextTensors { word_embeddings, token_type_embeddings, embedding_norm, layers })
}

/// Maps the image tower's tensors and checks their shapes against `config`.
pub fn vision_tensors<'a>(checkpoint: &'a Checkpoint, config: &VisionConfig) -> Result<VisionTensors<'a>> {
    let lookup = Lookup { checkpoint, prefix: VISION_PREFIX.to_string(), tower: "image tower" };
    let width = config.width;
    let hidden = config.mlp_hidden;
    let patch = config.patch_size;
    let patches = config.grid_size() * config.grid_size();

    let cls_token = lookup.required("cls_token", &[1, 1, width])?;
    let pos_embed = lookup.required("pos_embed", &[1, patches + 1, width])?;
    let patch_weight = lookup.required("patch_embed.proj.weight", &[width, 3, patch, patch])?;
    let patch_bias = lookup.required("patch_embed.proj.bias", &[width])?;

    let mut blocks = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let block = format!("blocks.{i}");
        let bias = |name: &str| -> Result<Option<TensorRef<'a>>> {
            if config.qkv_bias {
                lookup.required(&format!("{block}.attn.{name}"), &[width]).map(Some)
            } else {
                Ok(None)
            }
        };
        blocks.push(VisionBlockTensors {
            norm1: lookup.norm(&format!("{block}.norm1"), width)?,
            q_proj: lookup.required(&format!("{block}.attn.q_proj.weight"), &[width, width])?,
            k_proj: lookup.required(&format!("{block}.attn.k_proj.weight"), &[width, width])?,
            v_proj: lookup.required(&format!("{block}.attn.v_proj.weight"), &[width, width])?,
            q_bias: bias("q_bias")?,
            v_bias: bias("v_bias")?,
            inner_attn_ln: lookup.norm(&format!("{block}.attn.inner_attn_ln"), width)?,
            proj: lookup.linear(&format!("{block}.attn.proj"), width, width, Bias::Required)?,
            norm2: lookup.norm(&format!("{block}.norm2"), width)?,
            w1: lookup.linear(&format!("{block}.mlp.w1"), hidden, width, Bias::Required)?,
            w2: lookup.linear(&format!("{block}.mlp.w2"), hidden, width, Bias::Required)?,
            ffn_ln: lookup.norm(&format!("{block}.mlp.ffn_ln"), hidden)?,
            w3: lookup.linear(&format!("{block}.mlp.w3"), width, hidden, Bias::Required)?,
        });
    }
    let extra = format!("{VISION_PREFIX}blocks.{}.", config.num_layers);
    if let Some(name) = checkpoint.names().find(|name| name.starts_with(&extra)) {
        return Err(Error::InvalidCheckpoint {
            path: checkpoint.path().to_path_buf(),
            message: format!(
                "tensor {name} is past the {} image blocks that config.json declares; \
                 the config does not match the weights",
                config.num_layers
            ),
        });
    }

    let rope_shape = [patches, config.head_width];
    Ok(VisionTensors {
        cls_token,
        pos_embed,
        patch_embed: LinearTensors { weight: patch_weight, bias: Some(patch_bias) },
        blocks,
        norm: lookup.norm("norm", width)?,
        rope_cos: lookup.optional("rope.freqs_cos", &rope_shape)?,
        rope_sin: lookup.optional("rope.freqs_sin", &rope_shape)?,
    })
}

/// Reads the CLIP temperature `logit_scale` (a scalar), if the checkpoint has one.
pub fn logit_scale(checkpoint: &Checkpoint) -> Result<Option<f32>> {
    let Some(tensor) = checkpoint.get(LOGIT_SCALE) else {
        return Ok(None);
    };
    if tensor.len() != 1 {
        tensor.expect_shape(&[])?;
    }
    let mut value = [0.0f32];
    tensor.read_f32(0, &mut value)?;
    Ok(Some(value[0]))
}
