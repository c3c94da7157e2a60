"""Compare int8 weight-scale granularities by simulation on a checkpoint.

jclip's int8 precision keeps one scale per output feature of each weight
matrix. The alternative is one scale per block of input features. This
script measures both on the PyTorch reference towers. Every matrix that
jclip stores in int8 is replaced by its int8 version: symmetric weights,
activations quantised per token, products summed exactly in float64. The
text tower's attention and feed-forward output projections are rounded to
bfloat16, as jclip's int8 plan does. Each embedding is then compared with
the f32 embedding by cosine similarity. The per-feature row also checks the
simulation against the engine's own measured accuracy.

Usage:
    python tools/reference/int8_granularity.py --model DIR --image PHOTO [--image PHOTO ...]

The short texts are the captions of `examples/accuracy.rs`.
"""

import argparse
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from checkpoint import Checkpoint  # noqa: E402
from encode import load_tokenizer, pad_batch, tokenize  # noqa: E402
from vision_tower import load_pixels, make_transform  # noqa: E402

INT8_MAX = 127
# Block sizes along the input features to compare with one scale per output feature (None).
GRANULARITIES = [None, 128, 64, 32]
# Text matrices that jclip's int8 plan keeps in bfloat16 (src/precision.rs).
TEXT_BF16_MATRICES = ("out_proj", "mlp.wo")


def captions() -> list:
    """Return the short texts of examples/accuracy.rs."""
    source = (HERE.parent.parent / "examples" / "accuracy.rs").read_text()
    block = re.search(r"const CAPTIONS: &\[&str\] = &\[(.*?)\];", source, re.S)
    if block is None:
        raise SystemExit("examples/accuracy.rs has no CAPTIONS array; run this script from a jclip checkout")
    return re.findall(r'"([^"]*)"', block.group(1))


def symmetric_scale(values: torch.Tensor) -> torch.Tensor:
    """Return max|v| / 127 over the last axis, with 1 for all-zero rows."""
    scale = values.abs().amax(dim=-1, keepdim=True) / INT8_MAX
    return torch.where(scale > 0, scale, torch.ones_like(scale))


class Int8Linear(torch.nn.Module):
    """A linear layer with int8 weights (one scale per output feature or per block) and per-token int8 input."""

    def __init__(self, linear: torch.nn.Linear, block: int | None):
        super().__init__()
        weight = linear.weight.detach().double()
        n, k = weight.shape
        self.k = k
        self.block = block or k
        self.pad = -k % self.block
        blocks = F.pad(weight, (0, self.pad)).view(n, -1, self.block)
        self.scale = symmetric_scale(blocks)
        self.q = torch.round(blocks / self.scale).clamp(-INT8_MAX, INT8_MAX)
        self.bias = None if linear.bias is None else linear.bias.detach().double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.k).double()
        x_scale = symmetric_scale(rows)
        xq = torch.round(rows / x_scale).clamp(-INT8_MAX, INT8_MAX)
        xq = F.pad(xq, (0, self.pad)).view(rows.shape[0], -1, self.block)
        sums = torch.einsum("tbk,nbk->tnb", xq, self.q)
        y = (sums * self.scale.squeeze(-1)).sum(dim=-1) * x_scale
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).reshape(*shape[:-1], -1)


def bf16_weights(linear: torch.nn.Linear) -> torch.nn.Linear:
    """Round a layer's weight to bfloat16 in place (its bias stays f32) and return it."""
    with torch.no_grad():
        linear.weight.copy_(linear.weight.to(torch.bfloat16).float())
    return linear


def quantize(module: torch.nn.Module, block: int | None, bf16_names: tuple) -> list:
    """Replace every nn.Linear under `module` and return the names of the int8 ones."""
    replaced = []
    for name, child in list(module.named_modules()):
        for attribute, layer in list(child.named_children()):
            if not isinstance(layer, torch.nn.Linear):
                continue
            full = f"{name}.{attribute}" if name else attribute
            if any(full.endswith(suffix) for suffix in bf16_names):
                bf16_weights(layer)
            else:
                setattr(child, attribute, Int8Linear(layer, block))
                replaced.append(full)
    return replaced


def summary(cosines: torch.Tensor) -> str:
    return f"{cosines.mean().item():.6f} / {cosines.min().item():.6f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Texts: the 8 captions of examples/accuracy.rs. Prints a Markdown table of the cosine "
        "to f32 (mean / minimum) per scale granularity, for the texts and the photos. The model must "
        "be an original checkpoint (not a `jclip convert` directory). The full-size model takes "
        "about a minute and a half on 2 cores.",
    )
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument("--image", type=Path, action="append", required=True, help="photo (repeatable)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    tokenizer = load_tokenizer(args.model / "tokenizer.json")
    ids = pad_batch([tokenize(tokenizer, text) for text in captions()])
    checkpoint = Checkpoint.load(args.model)
    transform = make_transform(checkpoint.preprocessor)
    pixels = torch.stack([load_pixels(path, transform) for path in args.image])

    def embed(block):
        text = checkpoint.text_tower()
        vision = checkpoint.vision_tower()
        if block != "f32":
            quantize(text, block, TEXT_BF16_MATRICES)
            quantize(vision, block, ())
        return (
            F.normalize(text(ids), dim=-1),
            F.normalize(vision(pixels), dim=-1),
        )

    try:
        text_f32, image_f32 = embed("f32")
    except RuntimeError as error:
        raise SystemExit(
            f"{args.model} does not load as an original checkpoint ({str(error).splitlines()[0]}); "
            "pass the directory of the Hugging Face files, not one written by `jclip convert`"
        ) from error
    print(f"| int8 weight scales | {len(ids)} short texts, mean / min | {len(pixels)} photos, mean / min |")
    print("|---|---|---|")
    for block in GRANULARITIES:
        text, image = embed(block)
        label = "one per output feature" if block is None else f"one per {block} input features"
        text_cos = (text * text_f32).sum(-1)
        image_cos = (image * image_f32).sum(-1)
        print(f"| {label} | {summary(text_cos)} | {summary(image_cos)} |", flush=True)


if __name__ == "__main__":
    main()
