//! Synthetic checkpoints with deterministic weights, in the real file layout.
//!
//! The real jina-clip-v1 weights are not needed to test or benchmark the
//! engine: [`write_model_dir`] writes `config.json`, `model.safetensors`,
//! `tokenizer.json` and `preprocessor_config.json` for a preset shape, with
//! weights from a counter-based generator that the PyTorch reference in
//! `tools/reference/` implements identically. Both sides can regenerate the
//! same checkpoint, so tests compare against small reference outputs instead
//! of storing weights.
//!
//! Generator (all integer arithmetic wrapping, on u64):
//! `seed_t = fnv1a64(name) ^ mix64(seed)`; element `i` of tensor `name`
//! (row-major) is `x = ((mix64(seed_t + (i + 1)·GAMMA) >> 40) − 2²³) / 2²³`,
//! exact in f32 and in [−1, 1). The value depends on the tensor's role:
//! matrices `x·sqrt(3 / fan_in)`, LayerNorm weights `1 + 0.1·x`, biases and
//! LayerNorm biases `0.1·x`, embeddings and tokens `x`, `logit_scale` 4.0.
//! Names are the flash-attn style names; the classic layout renames and
//! splits the same values.

use std::io::{BufWriter, Write};
use std::path::Path;

use half::{bf16, f16};

use crate::error::{Error, Result};

/// Weyl increment of the generator (2⁶⁴ / golden ratio).
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser.
pub fn mix64(mut z: u64) -> u64 {
    z ^= z >> 30;
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 27;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Uniform values in [−1, 1) for tensor `name`, elements `start..start + out.len()`.
pub fn uniform_values(seed: u64, name: &str, start: usize, out: &mut [f32]) {
    let tensor_seed = fnv1a64(name.as_bytes()) ^ mix64(seed);
    for (offset, out) in out.iter_mut().enumerate() {
        let counter = (start + offset) as u64 + 1;
        let r = mix64(tensor_seed.wrapping_add(counter.wrapping_mul(GAMMA)));
        let u = (r >> 40) as i64 - (1 << 23);
        *out = u as f32 / (1u32 << 23) as f32;
    }
}

/// Scaling of a tensor's uniform values, chosen by the tensor's role.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Constant(f32),
    Unscaled,
    Scaled(f32),
    LayerNormWeight,
}

fn role(name: &str, shape: &[usize]) -> Role {
    const BIAS_SCALE: f32 = 0.1;
    if name == "logit_scale" {
        Role::Constant(4.0)
    } else if ["word_embeddings.weight", "token_type_embeddings.weight", "cls_token", "pos_embed"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    {
        Role::Unscaled
    } else if name.ends_with(".weight") && shape.len() == 1 {
        Role::LayerNormWeight
    } else if name.ends_with(".weight") {
        let fan_in: usize = shape[1..].iter().product();
        Role::Scaled((3.0f64 / fan_in as f64).sqrt() as f32)
    } else {
        Role::Scaled(BIAS_SCALE)
    }
}

/// Values of tensor `name` (flash-style name) with `shape`, elements `start..start + out.len()`.
pub fn tensor_values(seed: u64, name: &str, shape: &[usize], start: usize, out: &mut [f32]) {
    match role(name, shape) {
        Role::Constant(value) => out.fill(value),
        role => {
            uniform_values(seed, name, start, out);
            for v in out.iter_mut() {
                *v = match role {
                    Role::Unscaled => *v,
                    Role::Scaled(scale) => *v * scale,
                    Role::LayerNormWeight => 1.0 + *v * 0.1,
                    Role::Constant(_) => unreachable!("handled above"),
                };
            }
        }
    }
}

/// Model shapes of the synthetic presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Text hidden 96, 3 layers, 6 heads; image width 96, 2 blocks of 6 heads, 224 px.
    Tiny,
    /// Text hidden 64, 2 layers, 8 heads; image width 96, 2 blocks, 64 px (a 4×4 grid, no interpolation).
    SmallGrid,
    /// The real jina-clip-v1 shapes.
    Full,
}

impl Preset {
    pub fn from_name(name: &str) -> Option<Preset> {
        match name {
            "tiny" => Some(Preset::Tiny),
            "small-grid" => Some(Preset::SmallGrid),
            "full" => Some(Preset::Full),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::SmallGrid => "small-grid",
            Preset::Full => "full",
        }
    }

    /// The seed the reference fixtures use for this preset.
    pub fn default_seed(self) -> u64 {
        match self {
            Preset::Tiny => 1,
            Preset::SmallGrid => 2,
            Preset::Full => 3,
        }
    }

    fn shape(self) -> PresetShape {
        match self {
            Preset::Tiny => PresetShape {
                text_hidden: 96,
                text_layers: 3,
                text_heads: 6,
                text_intermediate: 128,
                image_size: 224,
                patch_size: 16,
                vision_width: 96,
                vision_layers: 2,
                head_width: 16,
                pt_hw_seq_len: 16,
                intp_freq: true,
            },
            Preset::SmallGrid => PresetShape {
                text_hidden: 64,
                text_layers: 2,
                text_heads: 8,
                text_intermediate: 96,
                image_size: 64,
                patch_size: 16,
                vision_width: 96,
                vision_layers: 2,
                head_width: 16,
                pt_hw_seq_len: 4,
                intp_freq: false,
            },
            Preset::Full => PresetShape {
                text_hidden: 768,
                text_layers: 12,
                text_heads: 12,
                text_intermediate: 3072,
                image_size: 224,
                patch_size: 16,
                vision_width: 768,
                vision_layers: 12,
                head_width: 64,
                pt_hw_seq_len: 16,
                intp_freq: true,
            },
        }
    }
}

struct PresetShape {
    text_hidden: usize,
    text_layers: usize,
    text_heads: usize,
    text_intermediate: usize,
    image_size: usize,
    patch_size: usize,
    vision_width: usize,
    vision_layers: usize,
    head_width: usize,
    pt_hw_seq_len: usize,
    intp_freq: bool,
}

/// Vocabulary rows of every preset, as jina-bert-v2 (the tokenizer has 30522).
const VOCAB_SIZE: usize = 30528;
/// `mlp_ratio` of the EVA-02 B/16 config; `int(width · ratio)` gives the MLP width.
const MLP_RATIO: f64 = 2.6667;

/// Storage type of a synthetic checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthDtype {
    F32,
    F16,
    BF16,
}

impl SynthDtype {
    pub fn from_name(name: &str) -> Option<SynthDtype> {
        match name {
            "f32" => Some(SynthDtype::F32),
            "f16" => Some(SynthDtype::F16),
            "bf16" => Some(SynthDtype::BF16),
            _ => None,
        }
    }

    fn safetensors_name(self) -> &'static str {
        match self {
            SynthDtype::F32 => "F32",
            SynthDtype::F16 => "F16",
            SynthDtype::BF16 => "BF16",
        }
    }

    fn size(self) -> usize {
        match self {
            SynthDtype::F32 => 4,
            SynthDtype::F16 | SynthDtype::BF16 => 2,
        }
    }
}

/// Tensor naming of the text tower in a synthetic checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthNaming {
    /// flash-attn style under `text_model.transformer.`, as jina-clip-v1.
    Flash,
    /// Classic JinaBERT names under `text_model.transformer.`.
    Classic,
    /// Classic names without a prefix and no image tower, as a bare jina-embeddings-v2 checkpoint.
    BareText,
}

/// Settings of the checkpoint that [`write_model_dir`] writes.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub preset: Preset,
    pub seed: u64,
    pub dtype: SynthDtype,
    pub naming: SynthNaming,
}

impl SynthOptions {
    /// The options of a preset with its default seed, f32 storage and flash names.
    pub fn new(preset: Preset) -> SynthOptions {
        SynthOptions { preset, seed: preset.default_seed(), dtype: SynthDtype::F32, naming: SynthNaming::Flash }
    }
}

/// One tensor to write: its stored name, shape, and where its values come from.
struct TensorPlan {
    name: String,
    shape: Vec<usize>,
    /// Flash-style name whose generator stream supplies the values.
    source: String,
    /// Shape of the source tensor.
    source_shape: Vec<usize>,
    /// First element of the source used (row blocks of a split `Wqkv`).
    source_start: usize,
}

fn plain(name: String, shape: Vec<usize>) -> TensorPlan {
    TensorPlan { source: name.clone(), source_shape: shape.clone(), name, shape, source_start: 0 }
}

/// Lists the tensors of a preset, sorted by name.
fn plan(options: &SynthOptions) -> Vec<TensorPlan> {
    let s = options.preset.shape();
    let mut plans = Vec::new();
    let (h, inner) = (s.text_hidden, s.text_intermediate);
    let flash = "text_model.transformer.";
    let prefix = match options.naming {
        SynthNaming::BareText => "",
        _ => flash,
    };
    let classic = options.naming != SynthNaming::Flash;
    let renamed = |plans: &mut Vec<TensorPlan>, stored: String, source: String, shape: Vec<usize>| {
        plans.push(TensorPlan { name: stored, shape: shape.clone(), source, source_shape: shape, source_start: 0 })
    };

    if options.naming != SynthNaming::BareText {
        plans.push(TensorPlan {
            name: "logit_scale".into(),
            shape: vec![],
            source: "logit_scale".into(),
            source_shape: vec![],
            source_start: 0,
        });
    }
    for table in ["word_embeddings", "token_type_embeddings"] {
        let rows = if table == "word_embeddings" { VOCAB_SIZE } else { 2 };
        renamed(
            &mut plans,
            format!("{prefix}embeddings.{table}.weight"),
            format!("{flash}embeddings.{table}.weight"),
            vec![rows, h],
        );
    }
    for part in ["weight", "bias"] {
        let stored =
            if classic { format!("{prefix}embeddings.LayerNorm.{part}") } else { format!("{prefix}emb_ln.{part}") };
        renamed(&mut plans, stored, format!("{flash}emb_ln.{part}"), vec![h]);
    }
    for i in 0..s.text_layers {
        let source = format!("{flash}encoder.layers.{i}.");
        if classic {
            let layer = format!("{prefix}encoder.layer.{i}.");
            for (block, name) in ["query", "key", "value"].into_iter().enumerate() {
                plans.push(TensorPlan {
                    name: format!("{layer}attention.self.{name}.weight"),
                    shape: vec![h, h],
                    source: format!("{source}mixer.Wqkv.weight"),
                    source_shape: vec![3 * h, h],
                    source_start: block * h * h,
                });
                plans.push(TensorPlan {
                    name: format!("{layer}attention.self.{name}.bias"),
                    shape: vec![h],
                    source: format!("{source}mixer.Wqkv.bias"),
                    source_shape: vec![3 * h],
                    source_start: block * h,
                });
            }
            let pairs = [
                ("attention.output.dense", "mixer.out_proj"),
                ("attention.output.LayerNorm", "norm1"),
                ("mlp.layernorm", "norm2"),
                ("mlp.wo", "mlp.wo"),
            ];
            for (stored, flash_name) in pairs {
                let shape_of = |part: &str| match (flash_name, part) {
                    ("mixer.out_proj", "weight") => vec![h, h],
                    ("mlp.wo", "weight") => vec![h, inner],
                    _ => vec![h],
                };
                for part in ["weight", "bias"] {
                    renamed(
                        &mut plans,
                        format!("{layer}{stored}.{part}"),
                        format!("{source}{flash_name}.{part}"),
                        shape_of(part),
                    );
                }
            }
            renamed(
                &mut plans,
                format!("{layer}mlp.gated_layers.weight"),
                format!("{source}mlp.gated_layers.weight"),
                vec![2 * inner, h],
            );
        } else {
            plans.push(plain(format!("{source}mixer.Wqkv.weight"), vec![3 * h, h]));
            plans.push(plain(format!("{source}mixer.Wqkv.bias"), vec![3 * h]));
            plans.push(plain(format!("{source}mixer.out_proj.weight"), vec![h, h]));
            plans.push(plain(format!("{source}mixer.out_proj.bias"), vec![h]));
            for norm in ["norm1", "norm2"] {
                plans.push(plain(format!("{source}{norm}.weight"), vec![h]));
                plans.push(plain(format!("{source}{norm}.bias"), vec![h]));
            }
            plans.push(plain(format!("{source}mlp.gated_layers.weight"), vec![2 * inner, h]));
            plans.push(plain(format!("{source}mlp.wo.weight"), vec![h, inner]));
            plans.push(plain(format!("{source}mlp.wo.bias"), vec![h]));
        }
    }

    if options.naming != SynthNaming::BareText {
        let w = s.vision_width;
        let f = (w as f64 * MLP_RATIO) as usize;
        let p = s.patch_size;
        let grid = s.image_size / p;
        let v = "vision_model.";
        plans.push(plain(format!("{v}cls_token"), vec![1, 1, w]));
        plans.push(plain(format!("{v}pos_embed"), vec![1, grid * grid + 1, w]));
        plans.push(plain(format!("{v}patch_embed.proj.weight"), vec![w, 3, p, p]));
        plans.push(plain(format!("{v}patch_embed.proj.bias"), vec![w]));
        for i in 0..s.vision_layers {
            let b = format!("{v}blocks.{i}.");
            for norm in ["norm1", "norm2", "attn.inner_attn_ln"] {
                plans.push(plain(format!("{b}{norm}.weight"), vec![w]));
                plans.push(plain(format!("{b}{norm}.bias"), vec![w]));
            }
            for proj in ["q_proj", "k_proj", "v_proj"] {
                plans.push(plain(format!("{b}attn.{proj}.weight"), vec![w, w]));
            }
            plans.push(plain(format!("{b}attn.q_bias"), vec![w]));
            plans.push(plain(format!("{b}attn.v_bias"), vec![w]));
            plans.push(plain(format!("{b}attn.proj.weight"), vec![w, w]));
            plans.push(plain(format!("{b}attn.proj.bias"), vec![w]));
            for gate in ["w1", "w2"] {
                plans.push(plain(format!("{b}mlp.{gate}.weight"), vec![f, w]));
                plans.push(plain(format!("{b}mlp.{gate}.bias"), vec![f]));
            }
            plans.push(plain(format!("{b}mlp.ffn_ln.weight"), vec![f]));
            plans.push(plain(format!("{b}mlp.ffn_ln.bias"), vec![f]));
            plans.push(plain(format!("{b}mlp.w3.weight"), vec![w, f]));
            plans.push(plain(format!("{b}mlp.w3.bias"), vec![w]));
        }
        plans.push(plain(format!("{v}norm.weight"), vec![w]));
        plans.push(plain(format!("{v}norm.bias"), vec![w]));
    }
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    plans
}

/// Returns the `config.json` text of a synthetic checkpoint.
pub fn config_json(options: &SynthOptions) -> String {
    let s = options.preset.shape();
    let text_kwargs = serde_json::json!({
        "use_flash_attn": false,
        "vocab_size": VOCAB_SIZE,
        "hidden_size": s.text_hidden,
        "num_hidden_layers": s.text_layers,
        "num_attention_heads": s.text_heads,
        "intermediate_size": s.text_intermediate,
        "layer_norm_eps": 1e-12,
    });
    let value = if options.naming == SynthNaming::BareText {
        let mut config = serde_json::json!({
            "architectures": ["JinaBertForMaskedLM"],
            "model_type": "bert",
            "position_embedding_type": "alibi",
            "feed_forward_type": "geglu",
            "emb_pooler": "mean",
            "hidden_act": "gelu",
            "type_vocab_size": 2,
            "pad_token_id": 0,
        });
        for (key, value) in text_kwargs.as_object().expect("literal object") {
            config[key] = value.clone();
        }
        config
    } else {
        serde_json::json!({
            "architectures": ["JinaCLIPModel"],
            "model_type": "jina_clip",
            "add_projections": false,
            "projection_dim": s.text_hidden,
            "logit_scale_init_value": 2.6592,
            "torch_dtype": "float32",
            "text_config": {
                "embed_dim": s.text_hidden,
                "hf_model_name_or_path": "jinaai/jina-bert-flash-implementation",
                "hf_model_config_kwargs": text_kwargs,
                "pooler_type": "mean_pooler",
                "proj_type": null,
                "proj_bias": false,
                "model_type": "jina_clip_text",
            },
            "vision_config": {
                "embed_dim": s.vision_width,
                "width": s.vision_width,
                "image_size": s.image_size,
                "patch_size": s.patch_size,
                "layers": s.vision_layers,
                "head_width": s.head_width,
                "mlp_ratio": MLP_RATIO,
                "ls_init_value": null,
                "patch_dropout": 0.0,
                "qkv_bias": true,
                "fused_layer_norm": false,
                "x_attention": true,
                "post_norm": false,
                "rope_embeddings": true,
                "pt_hw_seq_len": s.pt_hw_seq_len,
                "intp_freq": s.intp_freq,
                "naive_swiglu": true,
                "subln": true,
                "drop_path_rate": 0.0,
                "proj_type": null,
                "model_type": "jina_clip_vision",
            },
        })
    };
    serde_json::to_string_pretty(&value).expect("JSON values serialise")
}

/// Returns the `preprocessor_config.json` text for an image size.
fn preprocessor_json(image_size: usize) -> String {
    let value = serde_json::json!({
        "image_processor_type": "JinaCLIPImageProcessor",
        "size": image_size,
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "resize_mode": "shortest",
        "interpolation": "bicubic",
        "fill_color": 0,
    });
    serde_json::to_string_pretty(&value).expect("JSON values serialise")
}

/// The uncased BERT WordPiece `tokenizer.json` (bert-base-uncased vocabulary) written with every synthetic model.
pub const TOKENIZER_JSON: &str = include_str!("../assets/tokenizer.json");

/// Writes a complete model directory into `out` (created if needed).
pub fn write_model_dir(out: &Path, options: &SynthOptions) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|source| Error::write(out, source))?;
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| Error::write(&path, source))
    };
    write("config.json", &config_json(options))?;
    write("tokenizer.json", TOKENIZER_JSON)?;
    if options.naming != SynthNaming::BareText {
        write("preprocessor_config.json", &preprocessor_json(options.preset.shape().image_size))?;
    }
    write_safetensors(&out.join("model.safetensors"), options)
}

/// Elements generated per step, so memory stays small for the full preset.
const CHUNK: usize = 1 << 20;

fn write_safetensors(path: &Path, options: &SynthOptions) -> Result<()> {
    let plans = plan(options);
    let size = options.dtype.size();
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for tensor in &plans {
        let bytes = tensor.shape.iter().product::<usize>() * size;
        header.insert(
            tensor.name.clone(),
            serde_json::json!({
                "dtype": options.dtype.safetensors_name(),
                "shape": tensor.shape,
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut header = serde_json::to_string(&header).expect("JSON values serialise");
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }

    let file = std::fs::File::create(path).map_err(|source| Error::write(path, source))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let io = |source| Error::write(path, source);
    writer.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    writer.write_all(header.as_bytes()).map_err(io)?;
    let mut values = vec![0.0f32; CHUNK];
    let mut bytes = Vec::with_capacity(CHUNK * 4);
    for tensor in &plans {
        let count: usize = tensor.shape.iter().product();
        for start in (0..count).step_by(CHUNK) {
            let chunk = &mut values[..CHUNK.min(count - start)];
            tensor_values(options.seed, &tensor.source, &tensor.source_shape, tensor.source_start + start, chunk);
            bytes.clear();
            for &v in chunk.iter() {
                match options.dtype {
                    SynthDtype::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
                    SynthDtype::F16 => bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                    SynthDtype::BF16 => bytes.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
                }
            }
            writer.write_all(&bytes).map_err(io)?;
        }
    }
    writer.flush().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_values_are_exact_and_bounded() {
        let mut out = vec![0.0f32; 10_000];
        uniform_values(7, "some.tensor", 0, &mut out);
        assert!(out.iter().all(|&v| (-1.0..1.0).contains(&v)));
        assert!(out.iter().all(|&v| (v * (1u32 << 23) as f32).fract() == 0.0));
        let mut tail = vec![0.0f32; 10];
        uniform_values(7, "some.tensor", 9_990, &mut tail);
        assert_eq!(&out[9_990..], &tail[..]);
    }

    #[test]
    fn known_hash_values() {
        // FNV-1a test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // SplitMix64 from state 0: first output is mix64(GAMMA).
        assert_eq!(mix64(GAMMA), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn roles_follow_names() {
        assert_eq!(role("logit_scale", &[]), Role::Constant(4.0));
        assert_eq!(role("vision_model.pos_embed", &[1, 197, 8]), Role::Unscaled);
        assert_eq!(role("x.norm1.weight", &[8]), Role::LayerNormWeight);
        assert_eq!(role("x.mlp.wo.weight", &[8, 12]), Role::Scaled(0.5));
        assert_eq!(role("x.attn.q_bias", &[8]), Role::Scaled(0.1));
    }
}
