"""Write and read checkpoint directories in the Hugging Face layout of jinaai/jina-clip-v1.

A directory contains `config.json`, `model.safetensors`, `tokenizer.json` and
`preprocessor_config.json`. Text tensors use either the flash-attn names of the real checkpoint
(`encoder.layers.N.mixer.Wqkv`, ...) or the classic JinaBERT names
(`encoder.layer.N.attention.self.query`, ...), and both load to the same tower.
"""

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import presets
import prng
from text_tower import JinaBertTextTower, TextConfig
from vision_tower import VisionConfig, load_vision_tower

STORAGE_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
NAMINGS = ("flash", "classic")
SAFETENSORS_METADATA = {"format": "pt"}

_FLASH_LAYER = re.compile(r"^(?P<prefix>text_model\.transformer\.encoder\.)layers\.(?P<layer>\d+)\.(?P<rest>.+)$")
_CLASSIC_LAYER = re.compile(r"^(?P<prefix>text_model\.transformer\.encoder\.)layer\.(?P<layer>\d+)\.(?P<rest>.+)$")

# Per-layer flash name -> classic name, except mixer.Wqkv, which splits into query/key/value.
_FLASH_TO_CLASSIC_LAYER = {
    "mixer.out_proj.weight": "attention.output.dense.weight",
    "mixer.out_proj.bias": "attention.output.dense.bias",
    "norm1.weight": "attention.output.LayerNorm.weight",
    "norm1.bias": "attention.output.LayerNorm.bias",
    "mlp.gated_layers.weight": "mlp.gated_layers.weight",
    "mlp.wo.weight": "mlp.wo.weight",
    "mlp.wo.bias": "mlp.wo.bias",
    "norm2.weight": "mlp.layernorm.weight",
    "norm2.bias": "mlp.layernorm.bias",
}
_CLASSIC_TO_FLASH_LAYER = {classic: flash for flash, classic in _FLASH_TO_CLASSIC_LAYER.items()}
_FLASH_EMB_LN = presets.TEXT_PREFIX + "emb_ln."
_CLASSIC_EMB_LN = presets.TEXT_PREFIX + "embeddings.LayerNorm."
_QKV_PARTS = ("query", "key", "value")


def generate_tensors(config: dict, seed: int, dtype: str) -> dict:
    """Generate every tensor of `config` from `seed`, rounded to the storage dtype.

    Values are generated in float32 and then rounded to nearest-even f16 or bf16.
    Returns flash-named tensors in the order of `presets.tensor_specs`.
    """
    storage = STORAGE_DTYPES[dtype]
    tensors = {}
    for spec in presets.tensor_specs(config):
        values = prng.generate_tensor(seed, spec.name, spec.shape, spec.role)
        tensors[spec.name] = torch.from_numpy(values).to(storage)
    return tensors


def flash_to_classic(tensors: dict) -> dict:
    """Rename flash-style text tensors to classic JinaBERT names, splitting Wqkv by rows."""
    renamed = {}
    for name, tensor in tensors.items():
        if name.startswith(_FLASH_EMB_LN):
            renamed[_CLASSIC_EMB_LN + name[len(_FLASH_EMB_LN):]] = tensor
            continue
        match = _FLASH_LAYER.match(name)
        if match is None:
            renamed[name] = tensor
            continue

        base = f"{match['prefix']}layer.{match['layer']}."
        rest = match["rest"]
        if rest in ("mixer.Wqkv.weight", "mixer.Wqkv.bias"):
            suffix = rest.rsplit(".", 1)[1]
            for part, block in zip(_QKV_PARTS, tensor.chunk(3, dim=0)):
                renamed[f"{base}attention.self.{part}.{suffix}"] = block.clone()
        elif rest in _FLASH_TO_CLASSIC_LAYER:
            renamed[base + _FLASH_TO_CLASSIC_LAYER[rest]] = tensor
        else:
            raise KeyError(f"no classic name for text tensor {name}")
    return renamed


def classic_to_flash(tensors: dict) -> dict:
    """Rename classic JinaBERT text tensors to flash names, concatenating q/k/v into Wqkv."""
    renamed = {}
    qkv_parts = {}
    for name, tensor in tensors.items():
        if name.startswith(_CLASSIC_EMB_LN):
            renamed[_FLASH_EMB_LN + name[len(_CLASSIC_EMB_LN):]] = tensor
            continue
        match = _CLASSIC_LAYER.match(name)
        if match is None:
            renamed[name] = tensor
            continue

        base = f"{match['prefix']}layers.{match['layer']}."
        rest = match["rest"]
        if rest.startswith("attention.self."):
            part, suffix = rest[len("attention.self."):].split(".")
            qkv_parts.setdefault(f"{base}mixer.Wqkv.{suffix}", {})[part] = tensor
        elif rest in _CLASSIC_TO_FLASH_LAYER:
            renamed[base + _CLASSIC_TO_FLASH_LAYER[rest]] = tensor
        else:
            raise KeyError(f"no flash name for text tensor {name}")

    for fused_name, parts in qkv_parts.items():
        missing = [part for part in _QKV_PARTS if part not in parts]
        if missing:
            raise KeyError(f"{fused_name}: missing classic attention.self tensors {missing}")
        renamed[fused_name] = torch.cat([parts[part] for part in _QKV_PARTS], dim=0)
    return renamed


def write_checkpoint(out_dir: Path, config: dict, tensors: dict, tokenizer_path: Path,
                     image_size: int, naming: str = "flash") -> None:
    """Write a checkpoint directory from flash-named tensors."""
    if naming not in NAMINGS:
        raise ValueError(f"invalid tensor naming {naming!r}: expected one of {NAMINGS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = flash_to_classic(tensors) if naming == "classic" else tensors
    save_file(stored, str(out_dir / "model.safetensors"), metadata=SAFETENSORS_METADATA)
    write_json(out_dir / "config.json", config)
    write_json(out_dir / "preprocessor_config.json", presets.preprocessor_config(image_size))
    shutil.copyfile(tokenizer_path, out_dir / "tokenizer.json")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json(path: Path, value) -> None:
    """Write JSON with two-space indentation and a final newline, keeping key order."""
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass
class Checkpoint:
    directory: Path
    config: dict
    preprocessor: dict
    tensors: dict  # flash names, storage dtype

    @classmethod
    def load(cls, directory: Path) -> "Checkpoint":
        """Read a checkpoint directory, converting classic text names to flash names."""
        directory = Path(directory)
        config = read_json(directory / "config.json")
        preprocessor = read_json(directory / "preprocessor_config.json")
        tensors = load_file(str(directory / "model.safetensors"))
        if any(_CLASSIC_LAYER.match(name) for name in tensors):
            tensors = classic_to_flash(tensors)
        return cls(directory, config, preprocessor, tensors)

    def text_tower(self) -> JinaBertTextTower:
        """Build the text tower with float32 copies of the stored weights (strict load)."""
        tower = JinaBertTextTower(TextConfig.from_clip_config(self.config))
        state = {
            name[len(presets.TEXT_PREFIX):]: tensor.to(torch.float32)
            for name, tensor in self.tensors.items()
            if name.startswith(presets.TEXT_PREFIX)
        }
        tower.load_state_dict(state, strict=True)
        return tower.eval()

    def vision_tower(self):
        """Build the timm Eva image tower with float32 copies of the stored weights."""
        return load_vision_tower(VisionConfig.from_clip_config(self.config), self.tensors)


def weight_check(tensor: torch.Tensor) -> dict:
    """Summarise a stored tensor: its first 4 values and the float64 sum in element order.

    The sum adds the stored values, widened to float64, one at a time from element 0.
    """
    values = tensor.to(torch.float32).numpy().ravel().astype(np.float64)
    sequential_sum = float(np.cumsum(values)[-1]) if values.size else 0.0
    return {"first": [float(v) for v in values[:4]], "sum": sequential_sum}
