"""Synthetic checkpoint presets: their config files and the list of tensors they contain."""

from dataclasses import dataclass

import prng

TEXT_PREFIX = "text_model.transformer."
VISION_PREFIX = "vision_model."

TOKEN_TYPE_ROWS = 2
IMAGE_CHANNELS = 3
LOGIT_SCALE_INIT = 2.6592
# Mean and std of the OpenAI CLIP image normalisation, used by jina-clip-v1's processor.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class Preset:
    seed: int
    vocab_size: int
    hidden_size: int
    text_layers: int
    text_heads: int
    intermediate_size: int
    text_layer_norm_eps: float
    image_size: int
    patch_size: int
    width: int
    vision_layers: int
    head_width: int
    mlp_ratio: float
    pt_hw_seq_len: int
    intp_freq: bool


PRESETS = {
    "tiny": Preset(
        seed=1,
        vocab_size=30528, hidden_size=96, text_layers=3, text_heads=6, intermediate_size=128,
        text_layer_norm_eps=1e-12,
        image_size=224, patch_size=16, width=96, vision_layers=2, head_width=16,
        mlp_ratio=2.6667, pt_hw_seq_len=16, intp_freq=True,
    ),
    "small-grid": Preset(
        seed=2,
        vocab_size=30528, hidden_size=64, text_layers=2, text_heads=8, intermediate_size=96,
        text_layer_norm_eps=1e-12,
        image_size=64, patch_size=16, width=96, vision_layers=2, head_width=16,
        mlp_ratio=2.6667, pt_hw_seq_len=4, intp_freq=False,
    ),
    # The shapes of jinaai/jina-clip-v1 (222,647,041 values).
    "full": Preset(
        seed=3,
        vocab_size=30528, hidden_size=768, text_layers=12, text_heads=12, intermediate_size=3072,
        text_layer_norm_eps=1e-12,
        image_size=224, patch_size=16, width=768, vision_layers=12, head_width=64,
        mlp_ratio=2.6667, pt_hw_seq_len=16, intp_freq=True,
    ),
}

TORCH_DTYPE_NAMES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def clip_config(preset: Preset, dtype: str) -> dict:
    """Build `config.json` in the layout of jinaai/jina-clip-v1.

    The text tower's hyper-parameters sit in `text_config.hf_model_config_kwargs`, because the
    real model reads them from the jina-bert-flash-implementation config. Each `embed_dim`
    equals its tower width, so the text and vision dims may differ, which the real
    `JinaCLIPConfig` would reject when `add_projections` is false.
    """
    return {
        "architectures": ["JinaCLIPModel"],
        "model_type": "jina_clip",
        "add_projections": False,
        "projection_dim": preset.hidden_size,
        "logit_scale_init_value": LOGIT_SCALE_INIT,
        "torch_dtype": TORCH_DTYPE_NAMES[dtype],
        "text_config": {
            "embed_dim": preset.hidden_size,
            "hf_model_name_or_path": "jinaai/jina-bert-flash-implementation",
            "hf_model_config_kwargs": {
                "use_flash_attn": False,
                "vocab_size": preset.vocab_size,
                "hidden_size": preset.hidden_size,
                "num_hidden_layers": preset.text_layers,
                "num_attention_heads": preset.text_heads,
                "intermediate_size": preset.intermediate_size,
                "layer_norm_eps": preset.text_layer_norm_eps,
            },
            "pooler_type": "mean_pooler",
            "proj_type": None,
            "proj_bias": False,
            "model_type": "jina_clip_text",
        },
        "vision_config": {
            "embed_dim": preset.width,
            "width": preset.width,
            "image_size": preset.image_size,
            "patch_size": preset.patch_size,
            "layers": preset.vision_layers,
            "head_width": preset.head_width,
            "mlp_ratio": preset.mlp_ratio,
            "ls_init_value": None,
            "patch_dropout": 0.0,
            "qkv_bias": True,
            "fused_layer_norm": False,
            "x_attention": True,
            "post_norm": False,
            "rope_embeddings": True,
            "pt_hw_seq_len": preset.pt_hw_seq_len,
            "intp_freq": preset.intp_freq,
            "naive_swiglu": True,
            "subln": True,
            "drop_path_rate": 0.0,
            "proj_type": None,
            "model_type": "jina_clip_vision",
        },
    }


def preprocessor_config(image_size: int) -> dict:
    """Build `preprocessor_config.json` of the JinaCLIPImageProcessor for one image size."""
    return {
        "image_processor_type": "JinaCLIPImageProcessor",
        "size": image_size,
        "mean": CLIP_MEAN,
        "std": CLIP_STD,
        "resize_mode": "shortest",
        "interpolation": "bicubic",
        "fill_color": 0,
    }


@dataclass(frozen=True)
class TensorSpec:
    name: str  # flash-style checkpoint name
    shape: tuple
    role: str  # one of the prng.ROLE_* constants


def _layer_norm(prefix: str, size: int) -> list:
    return [
        TensorSpec(prefix + ".weight", (size,), prng.ROLE_NORM_WEIGHT),
        TensorSpec(prefix + ".bias", (size,), prng.ROLE_NORM_BIAS),
    ]


def _linear(prefix: str, out_features: int, in_features: int, bias: bool = True) -> list:
    specs = [TensorSpec(prefix + ".weight", (out_features, in_features), prng.ROLE_LINEAR)]
    if bias:
        specs.append(TensorSpec(prefix + ".bias", (out_features,), prng.ROLE_BIAS))
    return specs


def text_tensor_specs(config: dict) -> list:
    """List the text tower tensors (flash names) that `config` implies."""
    kwargs = config["text_config"]["hf_model_config_kwargs"]
    hidden = kwargs["hidden_size"]
    inner = kwargs["intermediate_size"]
    p = TEXT_PREFIX

    specs = [
        TensorSpec(p + "embeddings.word_embeddings.weight", (kwargs["vocab_size"], hidden), prng.ROLE_EMBEDDING),
        TensorSpec(p + "embeddings.token_type_embeddings.weight", (TOKEN_TYPE_ROWS, hidden), prng.ROLE_EMBEDDING),
    ]
    specs += _layer_norm(p + "emb_ln", hidden)
    for layer in range(kwargs["num_hidden_layers"]):
        lp = f"{p}encoder.layers.{layer}."
        specs += _linear(lp + "mixer.Wqkv", 3 * hidden, hidden)
        specs += _linear(lp + "mixer.out_proj", hidden, hidden)
        specs += _layer_norm(lp + "norm1", hidden)
        specs += _linear(lp + "mlp.gated_layers", 2 * inner, hidden, bias=False)
        specs += _linear(lp + "mlp.wo", hidden, inner)
        specs += _layer_norm(lp + "norm2", hidden)
    return specs


def vision_tensor_specs(config: dict) -> list:
    """List the vision tower tensors (jina names) that `config` implies."""
    vision = config["vision_config"]
    width = vision["width"]
    patch = vision["patch_size"]
    grid = vision["image_size"] // patch
    mlp_hidden = int(width * vision["mlp_ratio"])
    p = VISION_PREFIX

    specs = [
        TensorSpec(p + "cls_token", (1, 1, width), prng.ROLE_EMBEDDING),
        TensorSpec(p + "pos_embed", (1, 1 + grid * grid, width), prng.ROLE_EMBEDDING),
        TensorSpec(p + "patch_embed.proj.weight", (width, IMAGE_CHANNELS, patch, patch), prng.ROLE_LINEAR),
        TensorSpec(p + "patch_embed.proj.bias", (width,), prng.ROLE_BIAS),
    ]
    for block in range(vision["layers"]):
        bp = f"{p}blocks.{block}."
        specs += _layer_norm(bp + "norm1", width)
        for projection in ("q_proj", "k_proj", "v_proj"):
            specs += _linear(bp + "attn." + projection, width, width, bias=False)
        if vision["qkv_bias"]:
            specs.append(TensorSpec(bp + "attn.q_bias", (width,), prng.ROLE_BIAS))
            specs.append(TensorSpec(bp + "attn.v_bias", (width,), prng.ROLE_BIAS))
        specs += _layer_norm(bp + "attn.inner_attn_ln", width)
        specs += _linear(bp + "attn.proj", width, width)
        specs += _layer_norm(bp + "norm2", width)
        specs += _linear(bp + "mlp.w1", mlp_hidden, width)
        specs += _linear(bp + "mlp.w2", mlp_hidden, width)
        specs += _layer_norm(bp + "mlp.ffn_ln", mlp_hidden)
        specs += _linear(bp + "mlp.w3", width, mlp_hidden)
    specs += _layer_norm(p + "norm", width)
    return specs


def tensor_specs(config: dict) -> list:
    """List every tensor of a checkpoint for `config`, with flash-style text names."""
    specs = [TensorSpec("logit_scale", (), prng.ROLE_CONSTANT)]
    return specs + text_tensor_specs(config) + vision_tensor_specs(config)
