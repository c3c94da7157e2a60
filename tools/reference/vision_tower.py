"""EVA-02 image tower of jina-clip-v1 through timm's `Eva`, plus the image preprocessing.

jina's `EVAVisionTransformer` and timm's `Eva` compute the same function once the checkpoint
names are mapped (timm's own EVA-CLIP checkpoint filter uses the same mapping).
Shapes: B batch, N tokens (1 + grid^2), W width, S image size.
"""

import re
from dataclasses import dataclass
from functools import partial

import torch
from PIL import Image
from timm.layers import LayerNorm
from timm.models.eva import Eva
from torchvision import transforms

VISION_PREFIX = "vision_model."
# Every LayerNorm of the tower, including the attention and MLP sub-LNs.
LAYER_NORM_EPS = 1e-6

# jina name fragment -> timm name fragment. Every other name is the same in both.
_JINA_TO_TIMM = [
    (re.compile(r"\.mlp\.w1\."), ".mlp.fc1_g."),
    (re.compile(r"\.mlp\.w2\."), ".mlp.fc1_x."),
    (re.compile(r"\.mlp\.w3\."), ".mlp.fc2."),
    (re.compile(r"\.mlp\.ffn_ln\."), ".mlp.norm."),
    (re.compile(r"\.attn\.inner_attn_ln\."), ".attn.norm."),
    (re.compile(r"\.attn\.q_bias$"), ".attn.q_proj.bias"),
    (re.compile(r"\.attn\.v_bias$"), ".attn.v_proj.bias"),
]


@dataclass(frozen=True)
class VisionConfig:
    image_size: int
    patch_size: int
    width: int
    layers: int
    head_width: int
    mlp_ratio: float
    qkv_bias: bool
    pt_hw_seq_len: int
    intp_freq: bool

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_heads(self) -> int:
        return self.width // self.head_width

    @property
    def rope_reference_grid(self) -> int:
        """Grid whose positions RoPE is scaled to: positions are i * ref / grid."""
        return self.pt_hw_seq_len if self.intp_freq else self.grid_size

    @classmethod
    def from_clip_config(cls, clip_config: dict) -> "VisionConfig":
        """Read `vision_config`, rejecting flags whose code path this reference does not build."""
        vision = clip_config["vision_config"]
        expected_flags = {
            "naive_swiglu": True,
            "subln": True,
            "rope_embeddings": True,
            "post_norm": False,
            "ls_init_value": None,
            "proj_type": None,
        }
        for key, expected in expected_flags.items():
            if vision.get(key) != expected:
                raise ValueError(
                    f"vision_config.{key} = {vision.get(key)!r} is not supported: "
                    f"the jina-clip-v1 reference needs {expected!r}"
                )
        if vision["embed_dim"] != vision["width"]:
            raise ValueError(
                f"vision_config.embed_dim {vision['embed_dim']} != width {vision['width']}: "
                "a projection head is not supported"
            )

        config = cls(
            image_size=vision["image_size"],
            patch_size=vision["patch_size"],
            width=vision["width"],
            layers=vision["layers"],
            head_width=vision["head_width"],
            mlp_ratio=vision["mlp_ratio"],
            qkv_bias=vision["qkv_bias"],
            pt_hw_seq_len=vision["pt_hw_seq_len"],
            intp_freq=vision["intp_freq"],
        )
        if not config.intp_freq and config.pt_hw_seq_len != config.grid_size:
            # jina's RoPE table then has pt^2 rows and cannot be applied to grid^2 patch tokens.
            raise ValueError(
                f"intp_freq is false but pt_hw_seq_len {config.pt_hw_seq_len} != "
                f"grid {config.grid_size}: the jina model would fail on this config"
            )
        return config


def build_eva(config: VisionConfig) -> Eva:
    """Build the timm Eva that matches jina's EVA-02 tower (no head, CLS pooling)."""
    reference = config.rope_reference_grid
    return Eva(
        img_size=config.image_size,
        patch_size=config.patch_size,
        num_classes=0,
        global_pool="token",
        embed_dim=config.width,
        depth=config.layers,
        num_heads=config.num_heads,
        qkv_bias=config.qkv_bias,
        qkv_fused=False,
        mlp_ratio=config.mlp_ratio,
        swiglu_mlp=True,
        scale_mlp=True,
        scale_attn_inner=True,
        use_rot_pos_emb=True,
        ref_feat_shape=(reference, reference),
        norm_layer=partial(LayerNorm, eps=LAYER_NORM_EPS),
    )


def jina_to_timm_state_dict(tensors: dict) -> dict:
    """Map the `vision_model.*` tensors of a jina checkpoint onto timm Eva names."""
    mapped = {}
    for name, tensor in tensors.items():
        if not name.startswith(VISION_PREFIX):
            continue
        timm_name = "." + name[len(VISION_PREFIX):]
        for pattern, replacement in _JINA_TO_TIMM:
            timm_name = pattern.sub(replacement, timm_name)
        mapped[timm_name[1:]] = tensor
    return mapped


def load_vision_tower(config: VisionConfig, tensors: dict) -> Eva:
    """Build the tower and load float32 copies of the checkpoint's vision tensors strictly."""
    model = build_eva(config)
    state = {name: t.to(torch.float32) for name, t in jina_to_timm_state_dict(tensors).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def image_hidden_states(model: Eva, pixels: torch.Tensor) -> list:
    """Return [after CLS + pos_embed, after block 0, ..., after block L-1], each [B, N, W]."""
    x = model.patch_embed(pixels)
    x, rope = model._pos_embed(x)
    x = model.norm_pre(x)
    states = [x]
    for block in model.blocks:
        x = block(x, rope=rope)
        states.append(x)
    return states


def image_embedding(model: Eva, last_hidden: torch.Tensor) -> torch.Tensor:
    """Return the final-LayerNorm CLS vector [B, W] (unnormalised) from the last hidden state."""
    return model.forward_head(model.norm(last_hidden))


def make_transform(preprocessor_config: dict) -> transforms.Compose:
    """Build the eval transform: shortest-side bicubic resize, centre crop, ToTensor, Normalize."""
    size = preprocessor_config["size"]
    if preprocessor_config.get("resize_mode", "shortest") != "shortest":
        raise ValueError(f"resize_mode {preprocessor_config['resize_mode']!r} is not supported: expected 'shortest'")
    if preprocessor_config.get("interpolation", "bicubic") != "bicubic":
        raise ValueError(f"interpolation {preprocessor_config['interpolation']!r} is not supported: expected 'bicubic'")
    return transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(mean=preprocessor_config["mean"], std=preprocessor_config["std"]),
    ])


def load_pixels(path, transform: transforms.Compose) -> torch.Tensor:
    """Decode an image file, convert it to RGB and return the normalised tensor [3, S, S]."""
    with Image.open(path) as image:
        return transform(image.convert("RGB"))
