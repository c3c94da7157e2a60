//! Model configuration read from `config.json`.
//!
//! Two layouts are accepted: a jina-clip `config.json` (`model_type`
//! "jina_clip", with `text_config` and `vision_config`), and the
//! `config.json` of a bare JinaBERT text model (jina-embeddings-v2, BERT-style
//! keys at the top level), which gives a text-only model.
//!
//! Keys that select math the engine does not implement are rejected with
//! [`Error::UnsupportedConfig`]; keys that do not affect inference (dropout
//! rates, attention backends, `auto_map`, `torch_dtype`) are ignored.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// LayerNorm epsilon of every vision LayerNorm (`eps=1e-6` in the EVA code).
pub const VISION_LAYER_NORM_EPS: f32 = 1e-6;

/// Hyper-parameters of the JinaBERT v2 text tower.
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    /// Rows of the word embedding table.
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Width of the GEGLU inner layer (the fused up-projection has twice as many rows).
    pub intermediate_size: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
    /// Token id whose positions are masked out of attention and pooling.
    pub pad_token_id: u32,
}

impl TextConfig {
    /// The jina-bert-v2-base values, used where `config.json` is silent.
    pub fn jina_bert_v2_base() -> TextConfig {
        TextConfig {
            vocab_size: 30528,
            hidden_size: 768,
            num_layers: 12,
            num_heads: 12,
            intermediate_size: 3072,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

/// Hyper-parameters of the EVA-02 image tower.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub image_size: usize,
    pub patch_size: usize,
    /// Hidden width of the transformer.
    pub width: usize,
    pub num_layers: usize,
    pub head_width: usize,
    /// Hidden width of the SwiGLU MLP, `int(width · mlp_ratio)` as in the EVA code.
    pub mlp_hidden: usize,
    /// Whether q and v carry biases (`qkv_bias`).
    pub qkv_bias: bool,
    /// Whether the 2-D rotary embedding is applied.
    pub rope: bool,
    /// Grid size the rotary frequencies were trained for (`pt_hw_seq_len`).
    pub rope_pretrained_grid: usize,
    /// Whether grid positions are rescaled to the pretrained grid (`intp_freq`).
    pub rope_interpolate: bool,
    pub layer_norm_eps: f32,
}

impl VisionConfig {
    pub fn num_heads(&self) -> usize {
        self.width / self.head_width
    }

    /// Patches along one side of the image.
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: the patches plus the CLS token.
    pub fn tokens_per_image(&self) -> usize {
        self.grid_size() * self.grid_size() + 1
    }
}

/// The whole model configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub text: TextConfig,
    /// `None` for a text-only (jina-embeddings-v2) model.
    pub vision: Option<VisionConfig>,
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::MissingFile {
                    path: path.to_path_buf(),
                    hint: "a model directory needs the config.json of jinaai/jina-clip-v1".into(),
                }
            } else {
                Error::io(path, source)
            }
        })?;
        ModelConfig::from_json_str(&text, path)
    }

    /// Parses and validates the text of `config.json`; `path` names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<ModelConfig> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidConfig { path: path.to_path_buf(), message: format!("not valid JSON: {e}") })?;
        let reader = Reader { path: path.to_path_buf() };
        let root = reader.object(&value, "the top level")?;
        let is_clip =
            root.contains_key("text_config") || root.get("model_type").and_then(Value::as_str) == Some("jina_clip");
        if is_clip {
            reader.clip_config(root)
        } else if root.contains_key("hidden_size") && root.contains_key("num_hidden_layers") {
            let text = reader.bert_config(root, "")?;
            Ok(ModelConfig { text, vision: None })
        } else {
            Err(Error::InvalidConfig {
                path: path.to_path_buf(),
                message: "neither a jina-clip config (text_config, vision_config) nor a JinaBERT config \
                          (hidden_size, num_hidden_layers); is this the model directory of jinaai/jina-clip-v1?"
                    .into(),
            })
        }
    }
}

/// Reads typed values out of JSON with errors that name the file and key.
struct Reader {
    path: PathBuf,
}

impl Reader {
    fn invalid(&self, message: String) -> Error {
        Error::InvalidConfig { path: self.path.clone(), message }
    }

    fn unsupported(&self, key: &str, value: &Value, reason: &str) -> Error {
        Error::UnsupportedConfig {
            path: self.path.clone(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    fn object<'v>(&self, value: &'v Value, what: &str) -> Result<&'v Map<String, Value>> {
        value.as_object().ok_or_else(|| self.invalid(format!("{what} must be a JSON object, found {value}")))
    }

    /// Reads a positive integer, or `default` when the key is absent or null.
    fn usize_or(&self, map: &Map<String, Value>, prefix: &str, key: &str, default: usize) -> Result<usize> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => match value.as_u64() {
                Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(n as usize),
                _ => Err(self.invalid(format!("{prefix}{key} must be a positive integer, found {value}"))),
            },
        }
    }

    fn f64_or(&self, map: &Map<String, Value>, prefix: &str, key: &str, default: f64) -> Result<f64> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| self.invalid(format!("{prefix}{key} must be a number, found {value}"))),
        }
    }

    fn bool_or(&self, map: &Map<String, Value>, prefix: &str, key: &str, default: bool) -> Result<bool> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_bool()
                .ok_or_else(|| self.invalid(format!("{prefix}{key} must be true or false, found {value}"))),
        }
    }

    /// Rejects `key` unless it is absent, null, or one of `allowed`.
    fn require_one_of(
        &self,
        map: &Map<String, Value>,
        prefix: &str,
        key: &str,
        allowed: &[&str],
        reason: &str,
    ) -> Result<()> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(value) if value.as_str().is_some_and(|s| allowed.contains(&s)) => Ok(()),
            Some(value) => Err(self.unsupported(&format!("{prefix}{key}"), value, reason)),
        }
    }

    /// Rejects `key` unless it is absent, null, false, zero or empty.
    fn require_unset(&self, map: &Map<String, Value>, prefix: &str, key: &str, reason: &str) -> Result<()> {
        match map.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(()),
            Some(Value::Array(a)) if a.is_empty() => Ok(()),
            Some(Value::Object(o)) if o.is_empty() => Ok(()),
            Some(value) => Err(self.unsupported(&format!("{prefix}{key}"), value, reason)),
        }
    }

    fn clip_config(&self, root: &Map<String, Value>) -> Result<ModelConfig> {
        if let Some(model_type) = root.get("model_type")
            && model_type.as_str() != Some("jina_clip")
        {
            return Err(self.unsupported("model_type", model_type, "expected \"jina_clip\""));
        }
        self.require_unset(
            root,
            "",
            "add_projections",
            "projection layers are not implemented; jina-clip-v1 has none",
        )?;
        self.require_unset(root, "", "truncate_dim", "Matryoshka truncation is not implemented")?;

        let text_value = root.get("text_config").ok_or_else(|| self.invalid("missing key text_config".into()))?;
        let text_map = self.object(text_value, "text_config")?;
        let prefix = "text_config.";
        self.require_one_of(
            text_map,
            prefix,
            "pooler_type",
            &["mean_pooler"],
            "only mean pooling is implemented, as in jina-clip-v1",
        )?;
        if matches!(text_map.get("pooler_type"), None | Some(Value::Null)) {
            // A null pooler makes the reference fall back to the CLS pooler of
            // the HF model type, which is not implemented.
            return Err(self.unsupported(
                "text_config.pooler_type",
                &Value::Null,
                "the reference would fall back to a CLS pooler; only \"mean_pooler\" is implemented",
            ));
        }
        self.require_unset(
            text_map,
            prefix,
            "proj_type",
            "a text projection is not implemented; jina-clip-v1 has none",
        )?;
        self.require_unset(text_map, prefix, "default_lora_task", "LoRA adapters are not implemented")?;
        self.require_unset(text_map, prefix, "default_instruction_task", "instruction prefixes are not implemented")?;
        let kwargs = match text_map.get("hf_model_config_kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(value) => self.object(value, "text_config.hf_model_config_kwargs")?.clone(),
        };
        let text = self.bert_config(&kwargs, "text_config.hf_model_config_kwargs.")?;

        let vision_value = root.get("vision_config").ok_or_else(|| self.invalid("missing key vision_config".into()))?;
        let vision = self.vision_config(self.object(vision_value, "vision_config")?)?;
        Ok(ModelConfig { text, vision: Some(vision) })
    }

    /// Reads JinaBERT hyper-parameters, defaulting to jina-bert-v2-base.
    fn bert_config(&self, map: &Map<String, Value>, prefix: &str) -> Result<TextConfig> {
        let base = TextConfig::jina_bert_v2_base();
        self.require_one_of(map, prefix, "hidden_act", &["gelu"], "only exact (erf) GELU is implemented")?;
        self.require_one_of(
            map,
            prefix,
            "position_embedding_type",
            &["alibi"],
            "only ALiBi positions are implemented",
        )?;
        self.require_one_of(
            map,
            prefix,
            "feed_forward_type",
            &["geglu"],
            "only the GEGLU feed-forward is implemented",
        )?;
        self.require_one_of(map, prefix, "emb_pooler", &["mean"], "only mean pooling is implemented")?;
        self.require_unset(map, prefix, "use_qk_norm", "query/key normalisation is not implemented")?;
        self.require_unset(map, prefix, "num_loras", "LoRA adapters are not implemented")?;
        self.require_unset(map, prefix, "lora_adaptations", "LoRA adapters are not implemented")?;
        if let Some(window) = map.get("window_size") {
            let is_global =
                window.is_null() || window.as_array().is_some_and(|w| w.iter().all(|v| v.as_i64() == Some(-1)));
            if !is_global {
                return Err(self.unsupported(
                    &format!("{prefix}window_size"),
                    window,
                    "local attention is not implemented",
                ));
            }
        }
        if let Some(value) = map.get("prenorm").or_else(|| map.get("pre_norm"))
            && value.as_bool() == Some(true)
        {
            return Err(self.unsupported(&format!("{prefix}prenorm"), value, "JinaBERT is post-LayerNorm"));
        }
        let config =
            TextConfig {
                vocab_size: self.usize_or(map, prefix, "vocab_size", base.vocab_size)?,
                hidden_size: self.usize_or(map, prefix, "hidden_size", base.hidden_size)?,
                num_layers: self.usize_or(map, prefix, "num_hidden_layers", base.num_layers)?,
                num_heads: self.usize_or(map, prefix, "num_attention_heads", base.num_heads)?,
                intermediate_size: self.usize_or(map, prefix, "intermediate_size", base.intermediate_size)?,
                type_vocab_size: self.usize_or(map, prefix, "type_vocab_size", base.type_vocab_size)?,
                layer_norm_eps: self.f64_or(map, prefix, "layer_norm_eps", base.layer_norm_eps as f64)? as f32,
                pad_token_id: match map.get("pad_token_id") {
                    None | Some(Value::Null) => base.pad_token_id,
                    Some(value) => value.as_u64().filter(|&v| v <= u32::MAX as u64).ok_or_else(|| {
                        self.invalid(format!("{prefix}pad_token_id must be a token id, found {value}"))
                    })? as u32,
                },
            };
        if !config.hidden_size.is_multiple_of(config.num_heads) {
            return Err(self.invalid(format!(
                "{prefix}hidden_size {} is not divisible by num_attention_heads {}",
                config.hidden_size, config.num_heads
            )));
        }
        // Zero or a negative value lets LayerNorm divide by zero or take the
        // root of a negative number, and a value near 1 or above swamps the variance.
        if !(config.layer_norm_eps > 0.0 && config.layer_norm_eps < 1.0) {
            return Err(self.invalid(format!(
                "{prefix}layer_norm_eps must be a small positive number such as 1e-12, found {}",
                map.get("layer_norm_eps").map_or_else(|| config.layer_norm_eps.to_string(), Value::to_string)
            )));
        }
        Ok(config)
    }

    fn vision_config(&self, map: &Map<String, Value>) -> Result<VisionConfig> {
        let prefix = "vision_config.";
        self.require_unset(map, prefix, "post_norm", "EVA-02 blocks are pre-LayerNorm")?;
        self.require_unset(map, prefix, "ls_init_value", "layer scale is not implemented; jina-clip-v1 has none")?;
        self.require_unset(map, prefix, "proj_type", "an image projection is not implemented; jina-clip-v1 has none")?;
        for (key, reason) in [
            ("subln", "only the sub-LayerNorm EVA-02 block (subln = true) is implemented"),
            ("naive_swiglu", "only the SwiGLU MLP (naive_swiglu = true) is implemented"),
        ] {
            if !self.bool_or(map, prefix, key, false)? {
                let value = map.get(key).cloned().unwrap_or(Value::Null);
                return Err(self.unsupported(&format!("{prefix}{key}"), &value, reason));
            }
        }
        let width = self.usize_or(map, prefix, "width", 768)?;
        let image_size = self.usize_or(map, prefix, "image_size", 224)?;
        let patch_size = self.usize_or(map, prefix, "patch_size", 16)?;
        let head_width = self.usize_or(map, prefix, "head_width", 64)?;
        let mlp_ratio = self.f64_or(map, prefix, "mlp_ratio", 4.0)?;
        // `int(dim * mlp_ratio)` in the EVA code: a float64 product, truncated.
        let mlp_hidden = (width as f64 * mlp_ratio).trunc();
        if !(1.0..=1e7).contains(&mlp_hidden) {
            return Err(self.invalid(format!("{prefix}mlp_ratio {mlp_ratio} gives an MLP width of {mlp_hidden}")));
        }
        let config = VisionConfig {
            image_size,
            patch_size,
            width,
            num_layers: self.usize_or(map, prefix, "layers", 12)?,
            head_width,
            mlp_hidden: mlp_hidden as usize,
            qkv_bias: self.bool_or(map, prefix, "qkv_bias", true)?,
            rope: self.bool_or(map, prefix, "rope_embeddings", false)?,
            rope_pretrained_grid: self.usize_or(map, prefix, "pt_hw_seq_len", 16)?,
            rope_interpolate: self.bool_or(map, prefix, "intp_freq", false)?,
            layer_norm_eps: VISION_LAYER_NORM_EPS,
        };
        if image_size % patch_size != 0 {
            return Err(
                self.invalid(format!("{prefix}image_size {image_size} is not a multiple of patch_size {patch_size}"))
            );
        }
        if width % head_width != 0 || head_width % 2 != 0 {
            return Err(self.invalid(format!(
                "{prefix}width {width} must be a multiple of head_width {head_width}, and head_width even"
            )));
        }
        if config.rope && head_width % 4 != 0 {
            return Err(self.invalid(format!(
                "{prefix}head_width {head_width} must be a multiple of 4 for the 2-D rotary embedding"
            )));
        }
        if config.rope && !config.rope_interpolate && config.rope_pretrained_grid != config.grid_size() {
            // Without interpolation the reference's rotary table has
            // pt_hw_seq_len² rows and cannot multiply a grid of another size.
            return Err(self.invalid(format!(
                "{prefix}pt_hw_seq_len {} differs from the patch grid {} while intp_freq is false",
                config.rope_pretrained_grid,
                config.grid_size()
            )));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelConfig> {
        ModelConfig::from_json_str(text, Path::new("config.json"))
    }

    const CLIP: &str = r#"{
        "model_type": "jina_clip", "add_projections": false, "torch_dtype": "float32",
        "auto_map": {"AutoModel": "x"}, "use_text_flash_attn": null,
        "text_config": {"embed_dim": 768, "pooler_type": "mean_pooler", "proj_type": null,
                        "hf_model_config_kwargs": {"use_flash_attn": false, "hidden_dropout_prob": 0.1}},
        "vision_config": {"width": 768, "layers": 12, "head_width": 64, "mlp_ratio": 2.6667,
                          "naive_swiglu": true, "subln": true, "rope_embeddings": true,
                          "pt_hw_seq_len": 16, "intp_freq": true, "x_attention": true, "patch_dropout": 0.1}
    }"#;

    #[test]
    fn real_layout_loads_with_defaults() {
        let config = parse(CLIP).unwrap();
        assert_eq!(config.text, TextConfig::jina_bert_v2_base());
        let vision = config.vision.unwrap();
        assert_eq!(vision.mlp_hidden, 2048);
        assert_eq!(vision.num_heads(), 12);
        assert_eq!(vision.tokens_per_image(), 197);
        assert!(vision.rope);
        assert!(vision.rope_interpolate);
    }

    #[test]
    fn rejects_math_changing_settings() {
        let cases = [
            (r#""pooler_type": "mean_pooler""#, r#""pooler_type": "cls_pooler""#, "text_config.pooler_type"),
            (r#""pooler_type": "mean_pooler""#, r#""pooler_type": null"#, "text_config.pooler_type"),
            (r#""proj_type": null"#, r#""proj_type": "linear""#, "text_config.proj_type"),
            (r#""use_flash_attn": false"#, r#""use_qk_norm": true"#, "use_qk_norm"),
            (r#""subln": true"#, r#""subln": false"#, "vision_config.subln"),
            (r#""x_attention": true"#, r#""post_norm": true"#, "vision_config.post_norm"),
            (r#""add_projections": false"#, r#""add_projections": true"#, "add_projections"),
        ];
        for (from, to, key) in cases {
            let text = CLIP.replace(from, to);
            assert_ne!(text, CLIP, "case {key} did not change the config");
            match parse(&text) {
                Err(Error::UnsupportedConfig { key: found, .. }) => assert!(found.ends_with(key), "{found} vs {key}"),
                other => panic!("{key}: expected UnsupportedConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn reads_hyper_parameters_from_kwargs() {
        let text = CLIP.replace(
            r#""use_flash_attn": false"#,
            r#""use_flash_attn": false, "hidden_size": 96, "num_attention_heads": 6, "num_hidden_layers": 2, "intermediate_size": 128"#,
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.text.hidden_size, 96);
        assert_eq!(config.text.num_heads, 6);
        assert_eq!(config.text.head_dim(), 16);
        assert_eq!(config.text.num_layers, 2);
    }

    #[test]
    fn bare_jina_bert_config_is_text_only() {
        let text = r#"{"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "intermediate_size": 96, "position_embedding_type": "alibi", "feed_forward_type": "geglu",
                       "emb_pooler": "mean", "hidden_act": "gelu", "vocab_size": 30528}"#;
        let config = parse(text).unwrap();
        assert!(config.vision.is_none());
        assert_eq!(config.text.hidden_size, 64);
    }

    #[test]
    fn invalid_json_names_the_file() {
        let error = parse("{not json").unwrap_err();
        assert!(error.to_string().contains("config.json"), "{error}");
    }

    #[test]
    fn layer_norm_eps_must_be_small_and_positive() {
        for eps in ["-1", "0", "1e30", "1e-60"] {
            let text = CLIP
                .replace(r#""use_flash_attn": false"#, &format!(r#""use_flash_attn": false, "layer_norm_eps": {eps}"#));
            let error = parse(&text).unwrap_err();
            assert!(error.to_string().contains("layer_norm_eps must be a small positive number"), "{eps}: {error}");
        }
        let text = CLIP.replace(r#""use_flash_attn": false"#, r#""use_flash_attn": false, "layer_norm_eps": 1e-5"#);
        assert_eq!(parse(&text).unwrap().text.layer_norm_eps, 1e-5);
    }

    #[test]
    fn rope_grid_mismatch_is_rejected() {
        let text = CLIP.replace(r#""intp_freq": true"#, r#""intp_freq": false"#);
        assert!(matches!(parse(&text), Err(Error::InvalidConfig { .. })));
    }
}
