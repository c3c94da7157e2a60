"""Self-checks of the benchmark harness, run with `python -m pytest tools/bench`.

They use the repository's tokenizer and photos and a tiny checkpoint they generate with the
reference's synth.py. The jclip binary is not needed: `cargo test` covers its side of the
protocol (tests/bench_cli.rs).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import cases
import compare
import engines
import machine
import report
import worker

REPOSITORY = Path(__file__).resolve().parents[2]
TOKENIZER = REPOSITORY / "tests" / "fixtures" / "tokenizer.json"
IMAGES = REPOSITORY / "tests" / "fixtures" / "images"
FULL_CONFIG = {
    "text_config": {"hf_model_config_kwargs": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}},
    "vision_config": {"width": 768, "layers": 12, "patch_size": 16, "mlp_ratio": 2.6667, "image_size": 224},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPOSITORY / "tools" / "reference"))
    import synth

    out = tmp_path_factory.mktemp("tiny")
    synth.synthesize("tiny", out)
    return out


def test_cases_parse():
    assert cases.Case.parse("text:64") == cases.Case("text:64", "text", 1, 64)
    assert cases.Case.parse("text:64x8") == cases.Case("text:64x8", "text", 8, 64)
    assert cases.Case.parse("image") == cases.Case("image", "image", 1, 0)
    assert cases.Case.parse("image:8").label == "8 images"
    assert cases.Case.parse("text:64x8").label == "8 texts × 64 tokens"


@pytest.mark.parametrize("name", ["text", "text:2", "text:64x0", "image:0", "audio", "text:64x"])
def test_cases_reject_invalid(name):
    with pytest.raises(ValueError):
        cases.Case.parse(name)


@pytest.mark.parametrize("tokens", [3, 16, 64, 512, 2048])
def test_texts_have_exact_lengths(tokens):
    tokenizer = cases.raw_tokenizer(TOKENIZER)
    text = cases.text_with_tokens(tokenizer, tokens)
    assert len(tokenizer.encode(text).ids) == tokens


def test_flops_match_jclip_counts():
    # The same formulas as src/bin/jclip/bench/cases.rs, whose unit test checks these values.
    text = 2.0 * 12 * (64 * 768 * 12288 + 2 * 64 * 64 * 768)
    assert cases.text_flops(FULL_CONFIG, 64) == text
    patch = 196 * 768 * 768
    blocks = 12 * (197 * 768 * (4 * 768 + 3 * 2048) + 2 * 197 * 197 * 768)
    assert cases.image_flops(FULL_CONFIG) == 2.0 * (patch + blocks)
    assert cases.case_flops(cases.Case.parse("text:64x8"), FULL_CONFIG) == 8 * text


@pytest.mark.parametrize("image", sorted(p.name for p in IMAGES.iterdir()))
def test_numpy_preprocessing_matches_torchvision(image):
    sys.path.insert(0, str(REPOSITORY / "tools" / "reference"))
    from vision_tower import load_pixels, make_transform

    config = {"size": 224, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
    expected = load_pixels(IMAGES / image, make_transform(config)).numpy()
    actual = worker.preprocess_numpy(str(IMAGES / image), config)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def test_replace_section_keeps_other_sections(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nIntro.\n\n## Engine\n\nold engine\n\n## Other\n\nkept\n")
    report.replace_section(path, report.ENGINE_HEADING, "## Engine\n\nnew engine\n")
    assert path.read_text() == "# Benchmarks\n\nIntro.\n\n## Engine\n\nnew engine\n\n## Other\n\nkept\n"

    report.replace_section(path, report.COMPARISON_HEADING, f"{report.COMPARISON_HEADING}\n\ntable\n")
    text = path.read_text()
    assert text.endswith(f"## Other\n\nkept\n\n{report.COMPARISON_HEADING}\n\ntable\n")
    assert "new engine" in text


def test_replace_section_creates_the_file(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    report.replace_section(path, report.ENGINE_HEADING, "## Engine\n\nbody\n")
    assert path.read_text() == "# Benchmarks\n\n## Engine\n\nbody\n"


def test_busy_reasons():
    quiet = {"other_cpus": 0.02, "steal_cpus": 0.0}
    assert machine.busy_reasons((0.1, 0.1, 0.1), quiet) == []
    # A measured quiet run is trusted whatever the load average before it.
    assert machine.busy_reasons((1.5, 0.1, 0.1), quiet) == []
    assert len(machine.busy_reasons((1.5, 0.1, 0.1), None)) == 1
    assert len(machine.busy_reasons((0.1, 0.1, 0.1), {"other_cpus": 0.9, "steal_cpus": 0.3})) == 2


def test_ratios_pair_blocks_of_the_same_round():
    case = cases.Case.parse("text:16")
    args = type("Args", (), {})()
    args.thread_counts = [1]
    args.case_list = [case]
    args.engine_list = [spec for spec in engines.ENGINES if spec.key in ("ort-fp32", engines.BASELINE)]
    blocks = {
        # Round 0: the machine is slow for both engines; round 1: fast for both.
        "ort-fp32": [{"round": 0, "times_ms": [20.0, 22.0]}, {"round": 1, "times_ms": [10.0, 10.0]}],
        engines.BASELINE: [{"round": 0, "times_ms": [10.0, 11.0]}, {"round": 1, "times_ms": [5.0, 5.0]}],
    }
    embeddings = {"ort-fp32": [[1.0, 0.0]], engines.BASELINE: [[1.0, 1e-3]]}
    measurements = {1: {"cases": {"text:16": {"blocks": blocks, "embeddings": embeddings}}}}
    summary = compare.summarize(args, measurements, FULL_CONFIG)
    assert summary[("text:16", "ort-fp32")][1]["ratio_to_baseline"] == pytest.approx(2.0)
    assert summary[("text:16", "ort-fp32")][1]["median_ms"] == pytest.approx(15.0)
    assert summary[("text:16", engines.BASELINE)][1]["ratio_to_baseline"] == pytest.approx(1.0)
    # No PyTorch engine ran, so there is no reference to compare outputs with.
    assert "min_cosine" not in summary[("text:16", "ort-fp32")][1]


def test_workers_agree_on_a_tiny_checkpoint(tiny_model, tmp_path):
    import onnx_models

    onnx_dir = onnx_models.export_all(tiny_model, tmp_path / "onnx")
    texts = [cases.text_with_tokens(cases.raw_tokenizer(TOKENIZER), 16), "a photo of a cat"]
    images = [str(IMAGES / "rocket.jpg"), str(IMAGES / "camera.png")]
    outputs = {}
    for spec in engines.ENGINES:
        if spec.kind == "jclip":
            continue
        argv = engines.command(spec, 1, tiny_model, Path("unused"), onnx_dir)
        process = engines.Worker(spec, 1, argv, tmp_path / f"{spec.key}.log")
        try:
            text_reply = process.request(texts=texts, repeat=2, embeddings=True)
            image_reply = process.request(images=images, warmup=1, embeddings=True)
            with pytest.raises(engines.WorkerError, match="exactly one of"):
                process.request(texts=texts, images=images)
            assert process.request(texts=texts)["ok"], "the worker goes on after a rejected request"
        finally:
            process.close()
        assert len(text_reply["times_ms"]) == 2
        assert text_reply["tokens"] == [16, 7]
        assert image_reply["tokens"] == [197, 197]
        assert text_reply["peak_rss_bytes"] > 0
        outputs[spec.key] = np.asarray(text_reply["embeddings"] + image_reply["embeddings"])

    reference = outputs[engines.REFERENCE]
    norms = np.linalg.norm(reference, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    np.testing.assert_allclose(outputs["ort-fp32"], reference, atol=onnx_models.EXPORT_TOLERANCE)
    cosines = (outputs["ort-int8"] * reference).sum(axis=1)
    assert cosines.min() > 0.98, cosines
    assert json.loads((onnx_dir / "export.json").read_text())["opset"] == onnx_models.OPSET
