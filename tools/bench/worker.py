"""A benchmark worker: one peer engine with one model, timing requests read from stdin.

It speaks the line protocol of `jclip bench --serve-stdin`, so the harness drives every
engine alike. It writes a ready line, then reads one JSON request per line:
{"texts": [...]} or {"images": [paths]}, with optional "warmup" (untimed runs, default 0),
"repeat" (timed runs, default 1) and "embeddings" (return the L2-normalised vectors of the
last run). Each reply is one JSON line: {"ok": true, "times_ms", "tokens", "peak_rss_bytes",
...} or {"ok": false, "error"}. {"probe": true} times torch.mm (PyTorch engine only).

One run covers what a user of the engine does per request: tokenize the texts (or decode
and preprocess the image files), run the tower, L2-normalise.

    python worker.py --engine torch --model DIR --threads N
    python worker.py --engine onnxruntime --onnx-dir DIR --precision fp32 --model DIR --threads N
"""

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

import machine
from cases import raw_tokenizer

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
PAD_TOKEN_ID = 0
# Side of the square matrices of the torch.mm probe.
SGEMM_SIZE = 2048
SGEMM_TRIES = 3


def pad_ids(ids_list: list) -> np.ndarray:
    """Right-pad token id lists with id 0 to the longest, as int64 [batch, tokens]."""
    longest = max(len(ids) for ids in ids_list)
    batch = np.full((len(ids_list), longest), PAD_TOKEN_ID, dtype=np.int64)
    for row, ids in enumerate(ids_list):
        batch[row, : len(ids)] = ids
    return batch


def preprocess_numpy(path: str, config: dict) -> np.ndarray:
    """Decode an image and return the normalised float32 [3, S, S] array, without torch.

    Reproduces torchvision's Resize(size, BICUBIC) on a PIL image (shortest side to `size`,
    the other side truncated), CenterCrop(size), ToTensor and Normalize(mean, std), as the
    reference's make_transform.
    """
    size = config["size"]
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_size != (width, height):
        image = image.resize(new_size, Image.BICUBIC)
    width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(config["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(config["std"], dtype=np.float32)[:, None, None]
    return (pixels - mean) / std


class TorchEngine:
    """PyTorch eager fp32: the reference modules of tools/reference."""

    def __init__(self, model_dir: Path, threads: int):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        sys.path.insert(0, str(REFERENCE_DIR))
        from checkpoint import Checkpoint
        from vision_tower import load_pixels, make_transform

        checkpoint = Checkpoint.load(model_dir)
        self.torch = torch
        self.text = checkpoint.text_tower()
        self.vision = checkpoint.vision_tower()
        self.transform = make_transform(checkpoint.preprocessor)
        self.load_pixels = load_pixels
        self.tokenizer = raw_tokenizer(model_dir / "tokenizer.json")

    def embed_texts(self, texts: list) -> tuple:
        import torch.nn.functional as F

        ids = [self.tokenizer.encode(text).ids for text in texts]
        with self.torch.inference_mode():
            pooled = self.text(self.torch.from_numpy(pad_ids(ids)))
            embeddings = F.normalize(pooled, p=2, dim=-1, eps=1e-12)
        return embeddings.numpy(), [len(i) for i in ids]

    def embed_images(self, paths: list) -> tuple:
        import torch.nn.functional as F

        with self.torch.inference_mode():
            pixels = self.torch.stack([self.load_pixels(path, self.transform) for path in paths])
            embeddings = F.normalize(self.vision(pixels), p=2, dim=-1, eps=1e-12)
        return embeddings.numpy(), [self.vision.patch_embed.num_patches + 1] * len(paths)

    def probe(self) -> dict:
        """Time torch.mm on two fp32 SGEMM_SIZE² matrices, best of a few tries."""
        torch = self.torch
        a = torch.rand(SGEMM_SIZE, SGEMM_SIZE)
        b = torch.rand(SGEMM_SIZE, SGEMM_SIZE)
        best = float("inf")
        for _ in range(SGEMM_TRIES):
            started = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - started)
        return {"sgemm_gflops": 2 * SGEMM_SIZE**3 / best / 1e9, "sgemm_size": SGEMM_SIZE}


class OnnxRuntimeEngine:
    """ONNX Runtime on the CPU with the towers exported by onnx_models.py."""

    def __init__(self, model_dir: Path, onnx_dir: Path, precision: str, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        suffix = ".onnx" if precision == "fp32" else f".{precision}.onnx"
        providers = ["CPUExecutionProvider"]
        self.text = onnxruntime.InferenceSession(str(onnx_dir / f"text{suffix}"), options, providers=providers)
        self.vision = onnxruntime.InferenceSession(str(onnx_dir / f"vision{suffix}"), options, providers=providers)
        self.tokenizer = raw_tokenizer(model_dir / "tokenizer.json")
        self.preprocessor = json.loads((model_dir / "preprocessor_config.json").read_text())
        config = json.loads((model_dir / "config.json").read_text())["vision_config"]
        self.tokens_per_image = (config["image_size"] // config["patch_size"]) ** 2 + 1

    def embed_texts(self, texts: list) -> tuple:
        ids = [self.tokenizer.encode(text).ids for text in texts]
        return self.text.run(None, {"input_ids": pad_ids(ids)})[0], [len(i) for i in ids]

    def embed_images(self, paths: list) -> tuple:
        pixels = np.stack([preprocess_numpy(path, self.preprocessor) for path in paths])
        return self.vision.run(None, {"pixels": pixels})[0], [self.tokens_per_image] * len(paths)

    def probe(self) -> dict:
        raise ValueError("the ONNX Runtime worker has no probe")


def handle(engine, request: dict) -> dict:
    """Run one request and return the reply."""
    unknown = set(request) - {"texts", "images", "probe", "warmup", "repeat", "embeddings"}
    if unknown:
        raise ValueError(f"unknown request fields {sorted(unknown)}")
    if request.get("probe"):
        return {"ok": True, "peaks": engine.probe()}
    if ("texts" in request) == ("images" in request):
        raise ValueError("a request needs exactly one of texts, images or probe")
    run = engine.embed_texts if "texts" in request else engine.embed_images
    inputs = request.get("texts") or request.get("images")
    if not inputs:
        raise ValueError("the request has no inputs")
    repeat = request.get("repeat", 1)
    if repeat < 1:
        raise ValueError("repeat must be at least 1")

    per_request = machine.reset_peak_rss()
    for _ in range(request.get("warmup", 0)):
        run(inputs)
    times_ms = []
    for _ in range(repeat):
        started = time.perf_counter()
        embeddings, tokens = run(inputs)
        times_ms.append((time.perf_counter() - started) * 1e3)
    reply = {
        "ok": True, "times_ms": times_ms, "tokens": tokens,
        "peak_rss_bytes": machine.peak_rss_bytes(), "peak_rss_per_request": per_request,
    }
    if request.get("embeddings"):
        reply["embeddings"] = np.asarray(embeddings, dtype=np.float32).tolist()
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("torch", "onnxruntime"), required=True)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--onnx-dir", type=Path, help="directory of the ONNX files (onnxruntime)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="ONNX Runtime model")
    args = parser.parse_args()

    started = time.perf_counter()
    if args.engine == "torch":
        engine = TorchEngine(args.model, args.threads)
    else:
        if args.onnx_dir is None:
            parser.error("--engine onnxruntime needs --onnx-dir")
        engine = OnnxRuntimeEngine(args.model, args.onnx_dir, args.precision, args.threads)
    ready = {"ready": True, "engine": args.engine, "threads": args.threads, "pid": os.getpid(),
             "open_ms": (time.perf_counter() - started) * 1e3}
    print(json.dumps(ready), flush=True)

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = handle(engine, json.loads(line))
        except Exception as error:  # the harness reads the message; the worker goes on
            print(f"worker: request failed: {error!r}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
