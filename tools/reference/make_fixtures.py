"""Regenerate the reference fixtures that the Rust tests compare against.

    python tools/reference/make_fixtures.py --all

writes `tests/fixtures/reference/<case>.{json,safetensors}` for every case, the trimmed golden
checkpoints in `tests/fixtures/golden/`, `tests/fixtures/tokenizer.json`, and any missing photo in
`tests/fixtures/images/`. Inputs come from the golden set directory (`--golden-dir`). Running it
twice gives identical bytes.
"""

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file

import checkpoint
import encode
import presets
from check_golden import DEFAULT_GOLDEN_DIR
from checkpoint import Checkpoint
from vision_tower import load_pixels, make_transform

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
REFERENCE_DIR = FIXTURES_DIR / "reference"
TRIMMED_GOLDEN_DIR = FIXTURES_DIR / "golden"
IMAGES_DIR = FIXTURES_DIR / "images"
TOKENIZER_FIXTURE = FIXTURES_DIR / "tokenizer.json"
SCRIPT = "tools/reference/make_fixtures.py"
FORMAT_VERSION = 1

GOLDEN_IMAGES = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg")
GOLDEN_CASES = ("tiny-f32", "tiny-f16")
GOLDEN_COPIED_FILES = ("config.json", "preprocessor_config.json", "expected.json")
WORD_EMBEDDINGS = presets.TEXT_PREFIX + "embeddings.word_embeddings.weight"
# Per-layer hidden states are stored only for texts up to this many tokens.
MAX_HIDDEN_STATE_TOKENS = 64

# Texts added to the golden ones: a literal [PAD] (id 0 inside the text, masked like padding),
# characters the vocabulary lacks ([UNK]), and a text longer than the 512-token limit.
PAD_TEXT = "a photo of a [PAD] cat"
UNK_TEXT = "ᚠᛇᚻ runes ☃ and a snowman"
LONG_TEXT_PARAGRAPH = (
    "The James Webb Space Telescope captured infrared images of distant galaxies, revealing "
    "star-forming regions hidden behind clouds of dust. Astronomers compared the new "
    "observations with earlier data from Hubble and found that several of the galaxies are "
    "older than models had predicted, which raises questions about how quickly the first "
    "structures formed after the Big Bang."
)
LONG_TEXT = " ".join(f"Part {part}. {LONG_TEXT_PARAGRAPH}" for part in range(1, 11))
MIN_LONG_TEXT_PIECES = 600
# Size limit of each fixture file, checked on every safetensors file written here.
MAX_FIXTURE_BYTES = 3_000_000


@dataclass(frozen=True)
class Case:
    preset: str
    dtype: str
    text_hidden_states: bool
    # Indices into the image list: images stored with pixels, and images with hidden states.
    pixel_images: tuple
    hidden_state_images: tuple
    # The texts to run, in this order. None runs every fixture text.
    text_subset: tuple = None
    images: tuple = GOLDEN_IMAGES


CASES = {
    # NOTE: tiny-f32 stores the pixels of 4 of the 5 photos, because all five (3.0 MB of float32)
    # plus the hidden states would exceed the 3 MB fixture limit. coffee.png has no pixels here,
    # and tiny-bf16 has the same 224-pixel inputs.
    "tiny-f32": Case("tiny", "f32", True, pixel_images=(0, 1, 2, 4), hidden_state_images=(0, 1)),
    "tiny-bf16": Case("tiny", "bf16", True, pixel_images=(), hidden_state_images=(0, 1)),
    "small-grid": Case("small-grid", "f32", True, pixel_images=(0, 1, 2, 3, 4), hidden_state_images=(0, 1)),
    "full": Case(
        "full", "f32", False, pixel_images=(), hidden_state_images=(),
        text_subset=("a photo of a cat", PAD_TEXT, "Kantō ¿Quién? 台北‧08月20日", LONG_TEXT),
        images=("astronaut.png", "rocket.jpg"),
    ),
}


def weight_check_names(config: dict) -> list:
    """Pick tensors of every generation role whose summaries the Rust PRNG is checked against."""
    last_text = config["text_config"]["hf_model_config_kwargs"]["num_hidden_layers"] - 1
    last_block = config["vision_config"]["layers"] - 1
    t = presets.TEXT_PREFIX
    v = presets.VISION_PREFIX
    return [
        "logit_scale",
        WORD_EMBEDDINGS,
        t + "emb_ln.weight",
        t + "encoder.layers.0.mixer.Wqkv.weight",
        t + "encoder.layers.0.mixer.Wqkv.bias",
        t + f"encoder.layers.{last_text}.norm2.bias",
        v + "pos_embed",
        v + "patch_embed.proj.weight",
        v + "blocks.0.attn.q_bias",
        v + f"blocks.{last_block}.mlp.w3.weight",
    ]


def fixture_texts(golden_dir: Path) -> list:
    """Return the golden texts followed by the [PAD], [UNK] and long texts."""
    golden_texts = checkpoint.read_json(golden_dir / "texts.json")
    return list(golden_texts) + [PAD_TEXT, UNK_TEXT, LONG_TEXT]


def make_case(name: str, case: Case, golden_dir: Path, work_dir: Path) -> None:
    """Generate one checkpoint, run the reference on it and write the case's two files."""
    preset = presets.PRESETS[case.preset]
    model_dir = work_dir / name
    config = presets.clip_config(preset, case.dtype)
    tensors = checkpoint.generate_tensors(config, preset.seed, case.dtype)
    checkpoint.write_checkpoint(model_dir, config, tensors, TOKENIZER_FIXTURE, preset.image_size)
    del tensors
    ckpt = Checkpoint.load(model_dir)

    outputs = {}
    summary = {
        "format_version": FORMAT_VERSION,
        "preset": case.preset,
        "seed": preset.seed,
        "dtype": case.dtype,
        "generated_by": f"{SCRIPT} --case {name}",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "texts": run_texts(ckpt, case, golden_dir, outputs),
        "images": run_images(ckpt, case, golden_dir, outputs),
        "weight_checks": {n: checkpoint.weight_check(ckpt.tensors[n]) for n in weight_check_names(config)},
    }

    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    tensors_path = REFERENCE_DIR / f"{name}.safetensors"
    save_file(outputs, str(tensors_path), metadata={"format_version": str(FORMAT_VERSION)})
    checkpoint.write_json(REFERENCE_DIR / f"{name}.json", summary)
    shutil.rmtree(model_dir)
    check_size(tensors_path)


def run_texts(ckpt: Checkpoint, case: Case, golden_dir: Path, outputs: dict) -> list:
    """Embed the case's texts one at a time, add the tensors to `outputs`, return the JSON entries."""
    texts = fixture_texts(golden_dir)
    if case.text_subset is not None:
        missing = [t for t in case.text_subset if t not in texts]
        if missing:
            raise ValueError(f"text_subset lists texts that are not fixture texts: {missing}")
        texts = list(case.text_subset)

    tokenizer = encode.load_tokenizer(ckpt.directory / "tokenizer.json")
    untruncated = encode.load_tokenizer(ckpt.directory / "tokenizer.json")
    untruncated.no_truncation()
    long_pieces = len(untruncated.encode(LONG_TEXT).ids)
    if long_pieces <= MIN_LONG_TEXT_PIECES:
        raise AssertionError(f"the long text has {long_pieces} word pieces, expected more than {MIN_LONG_TEXT_PIECES}")

    tower = ckpt.text_tower()
    entries = []
    for index, text in enumerate(texts):
        ids = encode.tokenize(tokenizer, text)
        with_hidden = case.text_hidden_states and len(ids) <= MAX_HIDDEN_STATE_TOKENS
        if with_hidden:
            for layer, state in enumerate(encode.text_hidden_states(tower, ids)):
                outputs[f"text.{index}.hidden.{layer}"] = state.contiguous()
        embedding = encode.text_embeddings(tower, [ids])[0]
        outputs[f"text.{index}.embedding"] = embedding.contiguous()
        outputs[f"text.{index}.normalized"] = encode.l2_normalize(embedding).contiguous()
        entries.append({
            "text": text,
            "ids": ids,
            "truncated": len(untruncated.encode(text).ids) > len(ids),
            "hidden_states": with_hidden,
        })
    return entries


def run_images(ckpt: Checkpoint, case: Case, golden_dir: Path, outputs: dict) -> list:
    """Embed the case's images one at a time, add the tensors to `outputs`, return the JSON entries."""
    transform = make_transform(ckpt.preprocessor)
    model = ckpt.vision_tower()
    entries = []
    for index, file_name in enumerate(case.images):
        source = golden_dir / "images" / file_name
        pixels = load_pixels(source, transform)
        states, embedding = encode.image_outputs(model, pixels[None])
        if index in case.pixel_images:
            outputs[f"image.{index}.pixels"] = pixels.contiguous()
        if index in case.hidden_state_images:
            for layer, state in enumerate(states):
                outputs[f"image.{index}.hidden.{layer}"] = state[0].contiguous()
        outputs[f"image.{index}.embedding"] = embedding[0].contiguous()
        outputs[f"image.{index}.normalized"] = encode.l2_normalize(embedding[0]).contiguous()
        entries.append({
            "file": f"images/{file_name}",
            "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "pixel_sum": float(pixels.to(torch.float64).sum()),
            "pixels": index in case.pixel_images,
            "hidden_states": index in case.hidden_state_images,
        })
    return entries


def make_trimmed_golden(golden_dir: Path) -> None:
    """Copy the golden checkpoints without the unused rows of the word embedding table.

    `weights.safetensors` contains every tensor of `model.safetensors` unchanged, except the word
    embeddings, which become `golden.word_embedding_rows` (I64 sorted distinct ids of the golden
    texts) and `golden.word_embedding_values` ([rows, H], the stored dtype).
    """
    for case in GOLDEN_CASES:
        source = golden_dir / case
        target = TRIMMED_GOLDEN_DIR / case
        target.mkdir(parents=True, exist_ok=True)
        for file_name in GOLDEN_COPIED_FILES:
            shutil.copyfile(source / file_name, target / file_name)

        expected = checkpoint.read_json(source / "expected.json")
        rows = sorted({token for entry in expected["texts"] for token in entry["ids"]})
        tensors = load_file(str(source / "model.safetensors"))
        table = tensors.pop(WORD_EMBEDDINGS)
        row_index = torch.tensor(rows, dtype=torch.int64)
        tensors["golden.word_embedding_rows"] = row_index
        tensors["golden.word_embedding_values"] = table[row_index].contiguous()
        save_file(tensors, str(target / "weights.safetensors"), metadata={"format": "pt"})
        check_size(target / "weights.safetensors")


def check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FIXTURE_BYTES:
        raise RuntimeError(
            f"{path} is {size} bytes, over the {MAX_FIXTURE_BYTES}-byte fixture limit: "
            "store fewer pixel or hidden-state tensors for this case in CASES"
        )


def copy_shared_inputs(golden_dir: Path) -> None:
    """Copy the tokenizer and any missing photo, and raise if an existing photo has other bytes."""
    TOKENIZER_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(golden_dir / "tiny-f32" / "tokenizer.json", TOKENIZER_FIXTURE)

    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    for file_name in GOLDEN_IMAGES:
        source = golden_dir / "images" / file_name
        target = IMAGES_DIR / file_name
        if not target.exists():
            shutil.copyfile(source, target)
        elif target.read_bytes() != source.read_bytes():
            raise RuntimeError(f"{target} differs from {source}: the fixture photos must be byte-identical to the golden ones")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="regenerate every case, the trimmed golden copy and the inputs")
    parser.add_argument("--case", action="append", choices=sorted(CASES), default=[],
                        help="regenerate one reference case (repeatable)")
    parser.add_argument("--trimmed-golden", action="store_true", help="regenerate tests/fixtures/golden/")
    parser.add_argument("--golden-dir", type=Path, default=DEFAULT_GOLDEN_DIR,
                        help="golden set directory with texts.json, images/ and tiny-f32/ (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (keep 1 so that reruns reproduce the same bytes)")
    args = parser.parse_args(argv)
    if not (args.all or args.case or args.trimmed_golden):
        parser.error("nothing to do: pass --all, --case NAME or --trimmed-golden")
    torch.set_num_threads(args.threads)

    cases = sorted(CASES) if args.all else args.case
    if args.all:
        copy_shared_inputs(args.golden_dir)
    if args.all or args.trimmed_golden:
        make_trimmed_golden(args.golden_dir)
        print(f"wrote {TRIMMED_GOLDEN_DIR}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="jclip-fixtures-") as work_dir:
        for name in cases:
            started = time.perf_counter()
            make_case(name, CASES[name], args.golden_dir, Path(work_dir))
            print(f"wrote case {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
