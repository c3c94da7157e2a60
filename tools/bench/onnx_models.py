"""Export both towers of a checkpoint to ONNX and quantize them, once per checkpoint.

The towers are the PyTorch reference modules of tools/reference, wrapped to return
L2-normalised embeddings:

- text.onnx: input_ids int64 [batch, tokens] (right-padded with id 0) -> embedding [batch, H];
- vision.onnx: pixels float32 [batch, 3, S, S] (normalised) -> embedding [batch, W];
- text.int8.onnx, vision.int8.onnx: the same after ONNX Runtime's shape inference and
  symbolic optimisation (`quant_pre_process`) and dynamic int8 quantization
  (`quantize_dynamic`, int8 weights, activations quantized at run time).

Exports are cached under a key of the checkpoint files and the package versions, so
reruns skip them.
"""

import hashlib
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
sys.path.insert(0, str(REFERENCE_DIR))

from checkpoint import Checkpoint  # noqa: E402
from encode import NORMALIZE_EPS  # noqa: E402

# Bump when the export changes, so that cached files are rebuilt.
EXPORT_FORMAT = 1
OPSET = 17
# ONNX Runtime fp32 must reproduce PyTorch within this on normalised embeddings.
EXPORT_TOLERANCE = 1e-4
FILES = ("text.onnx", "vision.onnx", "text.int8.onnx", "vision.int8.onnx")

log = logging.getLogger("bench.onnx")


class NormalizedTower(torch.nn.Module):
    """A tower followed by the L2 normalisation of encode_text and encode_image."""

    def __init__(self, tower: torch.nn.Module):
        super().__init__()
        self.tower = tower

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.tower(inputs), p=2, dim=-1, eps=NORMALIZE_EPS)


def cache_key(model_dir: Path) -> str:
    """Return a key of the checkpoint (config, size and modification time of the weights) and versions."""
    import onnxruntime

    weights = (model_dir / "model.safetensors").stat()
    parts = [
        (model_dir / "config.json").read_text(),
        str(weights.st_size),
        str(weights.st_mtime_ns),
        torch.__version__,
        onnxruntime.__version__,
        str(EXPORT_FORMAT),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def export_all(model_dir: Path, cache_root: Path) -> Path:
    """Return the directory with the four ONNX files of `model_dir`, exporting them if missing."""
    model_dir = model_dir.resolve()
    out = cache_root / cache_key(model_dir)
    if all((out / name).is_file() for name in FILES) and (out / "export.json").is_file():
        log.info("using the ONNX exports in %s", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    checkpoint = Checkpoint.load(model_dir)
    text = NormalizedTower(checkpoint.text_tower()).eval()
    vision = NormalizedTower(checkpoint.vision_tower()).eval()
    image_size = checkpoint.config["vision_config"]["image_size"]
    del checkpoint

    # The TorchScript exporter (dynamo=False) needs no onnxscript package. It deprecates itself
    # and warns about values it traces as constants, such as timm's input-size asserts. Those
    # warnings are silenced because check_export compares both graphs with PyTorch at other
    # batch sizes and lengths.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    log.info("exporting the text tower to %s", out / "text.onnx")
    torch.onnx.export(
        text, (torch.full((2, 16), 1000, dtype=torch.int64),), str(out / "text.onnx"),
        dynamo=False, opset_version=OPSET, input_names=["input_ids"], output_names=["embedding"],
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
    )
    log.info("exporting the image tower to %s", out / "vision.onnx")
    torch.onnx.export(
        vision, (torch.zeros(1, 3, image_size, image_size),), str(out / "vision.onnx"),
        dynamo=False, opset_version=OPSET, input_names=["pixels"], output_names=["embedding"],
        dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
    )
    check_export(out, text, vision, image_size)
    del text, vision

    for name in ("text", "vision"):
        log.info("quantizing %s to int8", name)
        quantize(out / f"{name}.onnx", out / f"{name}.int8.onnx")
    (out / "export.json").write_text(json.dumps({
        "model": str(model_dir), "torch": torch.__version__, "opset": OPSET,
        "export_format": EXPORT_FORMAT, "seconds": round(time.monotonic() - started, 1),
    }, indent=2) + "\n")
    return out


def check_export(out: Path, text: torch.nn.Module, vision: torch.nn.Module, image_size: int) -> None:
    """Compare ONNX Runtime fp32 with PyTorch on shapes other than the export's, padding included."""
    import onnxruntime

    ids = torch.randint(1000, 2000, (3, 37), generator=torch.Generator().manual_seed(1))
    ids[1, 30:] = 0  # a shorter, padded text
    pixels = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = {"text": text(ids).numpy(), "vision": vision(pixels).numpy()}
    feeds = {"text": {"input_ids": ids.numpy()}, "vision": {"pixels": pixels.numpy()}}
    for name in ("text", "vision"):
        session = onnxruntime.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        actual = session.run(None, feeds[name])[0]
        difference = float(np.abs(actual - expected[name]).max())
        if difference > EXPORT_TOLERANCE:
            raise RuntimeError(f"{name}.onnx differs from PyTorch by {difference:.2e} (tolerance "
                               f"{EXPORT_TOLERANCE:.0e}); the export is wrong, delete {out} and report it")
        log.info("%s.onnx matches PyTorch within %.1e", name, difference)


def quantize(source: Path, target: Path) -> None:
    """Write the dynamic int8 quantization of `source`, after ONNX Runtime's recommended pre-processing."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_suffix(".prepared.onnx")
    quant_pre_process(str(source), str(prepared))
    quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
    prepared.unlink()
