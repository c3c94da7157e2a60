"""Self-checks of the reference tool, run with `python -m pytest tools/reference`.

They use only files of this repository (tests/fixtures/) and checkpoints they generate.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import checkpoint
import encode
import make_fixtures
import presets
import prng
from checkpoint import Checkpoint
from text_tower import alibi_slopes

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
# Same text alone and in a padded batch: only matmul blocking may differ.
BATCH_TOLERANCE = 1e-5
GOLDEN_TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """Write the tiny preset twice, with flash and with classic text names."""
    root = tmp_path_factory.mktemp("tiny")
    preset = presets.PRESETS["tiny"]
    config = presets.clip_config(preset, "f32")
    tensors = checkpoint.generate_tensors(config, preset.seed, "f32")
    dirs = {}
    for naming in checkpoint.NAMINGS:
        dirs[naming] = root / naming
        checkpoint.write_checkpoint(dirs[naming], config, tensors, FIXTURES / "tokenizer.json",
                                    preset.image_size, naming)
    return dirs


def fixture_ids() -> list:
    tokenizer = encode.load_tokenizer(FIXTURES / "tokenizer.json")
    texts = [entry["text"] for entry in checkpoint.read_json(FIXTURES / "reference" / "tiny-f32.json")["texts"]]
    return [encode.tokenize(tokenizer, text) for text in texts]


def test_splitmix64_known_outputs():
    # First outputs of the public SplitMix64 generator seeded with 0.
    assert prng.mix64(prng.GAMMA) == 0xE220A8397B1DCDAF
    assert prng.mix64(2 * prng.GAMMA) == 0x6E789E6AA1B965F4


def test_fnv1a64_known_hashes():
    assert prng.fnv1a64(b"") == 0xCBF29CE484222325
    assert prng.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert prng.fnv1a64(b"foobar") == 0x85944171F73967E8


def test_uniform_matches_scalar_definition():
    seed = prng.tensor_seed(7, "vision_model.cls_token")
    expected = []
    for i in range(5):
        u = prng.mix64(seed + (i + 1) * prng.GAMMA) >> 40
        expected.append((u - 2**23) / 2**23)
    assert prng.uniform_f32(seed, 5).tolist() == expected


def test_uniform_chunking_is_invisible(monkeypatch):
    whole = prng.uniform_f32(12345, 1000)
    monkeypatch.setattr(prng, "CHUNK_ELEMENTS", 7)
    assert np.array_equal(prng.uniform_f32(12345, 1000), whole)


def test_generated_roles_follow_formulas():
    x = prng.uniform_f32(prng.tensor_seed(1, "w"), 12)
    linear = prng.generate_tensor(1, "w", (3, 4), prng.ROLE_LINEAR)
    assert np.array_equal(linear.ravel(), x * np.float32(math.sqrt(3 / 4)))
    norm = prng.generate_tensor(1, "w", (12,), prng.ROLE_NORM_WEIGHT)
    assert np.array_equal(norm, np.float32(1) + x * np.float32(0.1))
    conv = prng.generate_tensor(1, "w", (2, 3, 2, 1), prng.ROLE_LINEAR)
    assert np.array_equal(conv.ravel(), x * np.float32(math.sqrt(3 / 6)))
    assert prng.generate_tensor(1, "logit_scale", (), prng.ROLE_CONSTANT) == np.float32(4.0)


def test_full_preset_has_real_parameter_count():
    config = presets.clip_config(presets.PRESETS["full"], "f32")
    assert sum(math.prod(spec.shape) for spec in presets.tensor_specs(config)) == 222_647_041


def test_alibi_slopes_twelve_heads():
    expected = [2**-1, 2**-2, 2**-3, 2**-4, 2**-5, 2**-6, 2**-7, 2**-8,
                2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    assert alibi_slopes(12) == pytest.approx(expected, rel=1e-12)


def test_alibi_slopes_six_heads():
    expected = [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    assert alibi_slopes(6) == pytest.approx(expected, rel=1e-12)


def test_text_batch_matches_alone(tiny_dirs):
    tower = Checkpoint.load(tiny_dirs["flash"]).text_tower()
    ids_list = fixture_ids()
    alone = encode.text_embeddings(tower, ids_list)
    batched = encode.text_embeddings_batched(tower, ids_list)
    assert torch.max(torch.abs(alone - batched)).item() <= BATCH_TOLERANCE


def test_pad_id_inside_text_is_masked(tiny_dirs):
    tower = Checkpoint.load(tiny_dirs["flash"]).text_tower()
    ids = torch.tensor([[101, 1037, 6302, 0, 4937, 102]])
    before = tower(ids)
    with torch.no_grad():
        tower.embeddings.word_embeddings.weight[0] = 100.0
    after = tower(ids)
    assert torch.equal(before, after)


def test_classic_and_flash_names_load_identically(tiny_dirs):
    flash = Checkpoint.load(tiny_dirs["flash"])
    classic = Checkpoint.load(tiny_dirs["classic"])
    raw_classic = load_file(str(tiny_dirs["classic"] / "model.safetensors"))
    assert any(".attention.self.query.weight" in name for name in raw_classic)
    assert not any("Wqkv" in name for name in raw_classic)

    assert flash.tensors.keys() == classic.tensors.keys()
    for name, tensor in flash.tensors.items():
        assert torch.equal(tensor, classic.tensors[name]), name

    ids_list = fixture_ids()
    from_flash = encode.text_embeddings(flash.text_tower(), ids_list)
    from_classic = encode.text_embeddings(classic.text_tower(), ids_list)
    assert torch.equal(from_flash, from_classic)


@pytest.mark.parametrize("case", ["tiny-f32", "tiny-bf16", "small-grid"])
def test_fixture_weight_checks_regenerate(case):
    summary = checkpoint.read_json(FIXTURES / "reference" / f"{case}.json")
    preset = presets.PRESETS[summary["preset"]]
    config = presets.clip_config(preset, summary["dtype"])
    tensors = checkpoint.generate_tensors(config, summary["seed"], summary["dtype"])
    for name, expected in summary["weight_checks"].items():
        assert checkpoint.weight_check(tensors[name]) == expected, name


@pytest.mark.parametrize("case", ["tiny-f32", "small-grid"])
def test_fixture_embeddings_regenerate(case, tmp_path):
    summary = checkpoint.read_json(FIXTURES / "reference" / f"{case}.json")
    stored = load_file(str(FIXTURES / "reference" / f"{case}.safetensors"))
    preset = presets.PRESETS[summary["preset"]]
    config = presets.clip_config(preset, summary["dtype"])
    tensors = checkpoint.generate_tensors(config, summary["seed"], summary["dtype"])
    checkpoint.write_checkpoint(tmp_path, config, tensors, FIXTURES / "tokenizer.json", preset.image_size)
    ckpt = Checkpoint.load(tmp_path)

    ids_list = [entry["ids"] for entry in summary["texts"]]
    text = encode.text_embeddings(ckpt.text_tower(), ids_list)
    for index in range(len(ids_list)):
        assert torch.equal(text[index], stored[f"text.{index}.embedding"]), f"text {index}"

    model = ckpt.vision_tower()
    for index, entry in enumerate(summary["images"]):
        if entry["pixels"]:
            _, image = encode.image_outputs(model, stored[f"image.{index}.pixels"][None])
            assert torch.equal(image[0], stored[f"image.{index}.embedding"]), entry["file"]


@pytest.mark.parametrize("case", make_fixtures.GOLDEN_CASES)
def test_trimmed_golden_reproduces_expected(case, tmp_path):
    source = FIXTURES / "golden" / case
    tensors = load_file(str(source / "weights.safetensors"))
    rows = tensors.pop("golden.word_embedding_rows")
    values = tensors.pop("golden.word_embedding_values")
    vocab = checkpoint.read_json(source / "config.json")["text_config"]["hf_model_config_kwargs"]["vocab_size"]
    table = torch.zeros(vocab, values.shape[1], dtype=values.dtype)
    table[rows] = values
    tensors[make_fixtures.WORD_EMBEDDINGS] = table
    save_file(tensors, str(tmp_path / "model.safetensors"))
    for name in ("config.json", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((source / name).read_bytes())

    expected = checkpoint.read_json(source / "expected.json")
    tower = Checkpoint.load(tmp_path).text_tower()
    computed = encode.text_embeddings(tower, [entry["ids"] for entry in expected["texts"]])
    golden = torch.tensor([entry["embedding"] for entry in expected["texts"]])
    assert torch.max(torch.abs(computed - golden)).item() <= GOLDEN_TOLERANCE
