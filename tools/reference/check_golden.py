"""Compare this reference with the independently computed golden outputs.

The golden set contains checkpoints `tiny-f32/` and `tiny-f16/` with `expected.json`, the photos in
`images/` and the resized uint8 pixels in `pixels/`. This script recomputes every text and image
embedding with this reference and prints the maximum absolute differences.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

import encode
from checkpoint import Checkpoint, read_json
from vision_tower import load_pixels, make_transform

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GOLDEN_DIR = REPO_ROOT.parent / "shared" / "golden"
GOLDEN_CASES = ("tiny-f32", "tiny-f16")
# Largest accepted difference. The golden outputs come from the same libraries in float32.
TOLERANCE = 1e-5
# (channel, row, column) of the five pixel values in expected.json's pixel_checksum.
PIXEL_CHECKSUM_POSITIONS = [(0, 0, 0), (1, 112, 112), (2, 223, 223), (0, 17, 200), (1, 111, 3)]


def max_abs_diff(actual, expected) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: computed {actual.shape}, golden {expected.shape}")
    return float(np.max(np.abs(actual - expected)))


def check_case(golden_dir: Path, case: str) -> dict:
    """Return the maximum absolute differences of one golden checkpoint, keyed by output."""
    ckpt = Checkpoint.load(golden_dir / case)
    expected = read_json(golden_dir / case / "expected.json")
    tokenizer = encode.load_tokenizer(golden_dir / case / "tokenizer.json")
    diffs = {}

    ids_list = []
    for entry in expected["texts"]:
        ids = encode.tokenize(tokenizer, entry["text"])
        if ids != entry["ids"]:
            raise AssertionError(f"{case}: token ids differ for {entry['text']!r}: {ids} != {entry['ids']}")
        ids_list.append(ids)
    text_tower = ckpt.text_tower()
    alone = encode.text_embeddings(text_tower, ids_list)
    batched = encode.text_embeddings_batched(text_tower, ids_list)
    golden_text = [entry["embedding"] for entry in expected["texts"]]
    diffs["text embedding"] = max_abs_diff(alone, golden_text)
    diffs["text normalized"] = max_abs_diff(encode.l2_normalize(alone), [e["normalized"] for e in expected["texts"]])
    diffs["text batched vs alone"] = max_abs_diff(batched, alone)

    transform = make_transform(ckpt.preprocessor)
    names = [entry["image"] for entry in expected["images"]]
    pixels = torch.stack([load_pixels(golden_dir / "images" / name, transform) for name in names])
    diffs["pixel checksum"] = max_abs_diff(
        [[float(p[c, y, x]) for c, y, x in PIXEL_CHECKSUM_POSITIONS] for p in pixels],
        [entry["pixel_checksum"] for entry in expected["images"]],
    )
    diffs["pixel sum"] = max_abs_diff(
        [float(p.to(torch.float64).sum()) for p in pixels],
        [entry["pixel_sum"] for entry in expected["images"]],
    )
    diffs["resized uint8 pixels"] = max(_resized_u8_diff(golden_dir, name, ckpt.preprocessor) for name in names)

    _, image_embeddings = encode.image_outputs(ckpt.vision_tower(), pixels)
    diffs["image embedding"] = max_abs_diff(image_embeddings, [e["embedding"] for e in expected["images"]])
    diffs["image normalized"] = max_abs_diff(
        encode.l2_normalize(image_embeddings), [e["normalized"] for e in expected["images"]]
    )
    return diffs


def _resized_u8_diff(golden_dir: Path, name: str, preprocessor: dict) -> float:
    """Compare the resized and cropped uint8 image with the golden `pixels/NAME.u8.npy`."""
    size = preprocessor["size"]
    resize_crop = transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
    ])
    with Image.open(golden_dir / "images" / name) as image:
        ours = np.asarray(resize_crop(image.convert("RGB")), dtype=np.int16)
    golden = np.load(golden_dir / "pixels" / f"{name}.u8.npy").astype(np.int16)
    return max_abs_diff(ours, golden)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden-dir", type=Path, default=DEFAULT_GOLDEN_DIR,
                        help="golden set directory (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    worst = 0.0
    for case in GOLDEN_CASES:
        diffs = check_case(args.golden_dir, case)
        for output, diff in diffs.items():
            print(f"{case:9s} {output:22s} max |diff| = {diff:.3e}")
            worst = max(worst, diff)
    status = "OK" if worst <= TOLERANCE else "FAILED"
    print(f"{status}: largest difference {worst:.3e} (tolerance {TOLERANCE:.0e})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
