"""Write the long-text reference case `tests/fixtures/reference/tiny-long.{json,safetensors}`.

    python tools/reference/make_long_fixture.py

ALiBi has no learned position table, so the engine accepts texts far past the 512-token default
when the limit is raised. This case embeds texts of 2048, 8192 and 12288 tokens (the model
card's 8K context and the product page's 12,288) with the tiny preset, truncated at exactly that
length, so the Rust tests can check long inputs against PyTorch. The reference materialises
the full attention matrix, so the 12288-token text needs about 12 GB of memory.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

import checkpoint
import encode
import presets
from checkpoint import Checkpoint
from make_fixtures import FORMAT_VERSION, LONG_TEXT_PARAGRAPH, REFERENCE_DIR, TOKENIZER_FIXTURE, check_size

CASE = "tiny-long"
LENGTHS = (2048, 8192, 12288)


def long_text(tokens: int, tokenizer: Tokenizer) -> str:
    """Return a text of numbered paragraphs with more than `tokens` word pieces."""
    parts = []
    part = 0
    while True:
        part += 1
        parts.append(f"Part {part}. {LONG_TEXT_PARAGRAPH}")
        if part % 20 == 0 and len(tokenizer.encode(" ".join(parts)).ids) > tokens:
            return " ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    preset = presets.PRESETS["tiny"]
    dtype = "f32"
    untruncated = Tokenizer.from_file(str(TOKENIZER_FIXTURE))
    untruncated.no_truncation()
    untruncated.no_padding()
    outputs = {}
    entries = []
    with tempfile.TemporaryDirectory(prefix="jclip-long-") as work_dir:
        model_dir = Path(work_dir) / CASE
        config = presets.clip_config(preset, dtype)
        tensors = checkpoint.generate_tensors(config, preset.seed, dtype)
        checkpoint.write_checkpoint(model_dir, config, tensors, TOKENIZER_FIXTURE, preset.image_size)
        del tensors
        tower = Checkpoint.load(model_dir).text_tower()
        for index, length in enumerate(LENGTHS):
            started = time.perf_counter()
            text = long_text(length, untruncated)
            truncating = Tokenizer.from_file(str(TOKENIZER_FIXTURE))
            truncating.enable_truncation(length)
            truncating.no_padding()
            ids = encode.tokenize(truncating, text)
            assert len(ids) == length, f"{len(ids)} tokens, expected {length}"
            embedding = encode.text_embeddings(tower, [ids])[0]
            outputs[f"text.{index}.embedding"] = embedding.contiguous()
            outputs[f"text.{index}.normalized"] = encode.l2_normalize(embedding).contiguous()
            entries.append({"text": text, "max_length": length, "ids": ids, "truncated": True, "hidden_states": False})
            print(f"{length} tokens in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    summary = {
        "format_version": FORMAT_VERSION,
        "preset": "tiny",
        "seed": preset.seed,
        "dtype": dtype,
        "generated_by": "tools/reference/make_long_fixture.py",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "texts": entries,
        "images": [],
        "weight_checks": {},
    }
    path = REFERENCE_DIR / f"{CASE}.safetensors"
    save_file(outputs, str(path), metadata={"format_version": str(FORMAT_VERSION)})
    checkpoint.write_json(REFERENCE_DIR / f"{CASE}.json", summary)
    check_size(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
