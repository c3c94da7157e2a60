"""Compare jclip with PyTorch and ONNX Runtime on the same checkpoint and the same inputs.

Runs every engine of engines.ENGINES at each thread count, interleaved in blocks. Writes the
comparison table (median latency, time relative to jclip fp32, GFLOP/s, the cosine of each
engine's embeddings to PyTorch fp32's) and the time to first embedding and peak memory.

    python tools/bench/compare.py --model DIR [--quick] [--write BENCHMARKS.md] [--json FILE]

See README.md beside this file for the method.
"""

import argparse
import json
import logging
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import cases as cases_module
import engines as engines_module
import machine
import onnx_models
import report

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_JCLIP = REPOSITORY / "target" / "release" / "jclip"
DEFAULT_IMAGES = REPOSITORY / "tests" / "fixtures" / "images"
DEFAULT_CACHE = Path.home() / ".cache" / "jclip-bench"
# The text of the first request of every worker, whose reply ends its start-up time.
COLD_START_CASE = "text:16"
# Seconds between two blocks, so that spinning worker threads of one engine (OpenMP,
# ONNX Runtime) have gone to sleep before the next engine starts.
BLOCK_GAP = 0.25
# Relative difference allowed between jclip's FLOP count and this script's.
FLOP_COUNT_TOLERANCE = 1e-9

log = logging.getLogger("bench")


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory (jclip synth or the real one)")
    parser.add_argument("--jclip", type=Path, default=DEFAULT_JCLIP, help="jclip binary (default: %(default)s)")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default: %(default)s)")
    parser.add_argument("--cases", default=",".join(cases_module.COMPARE_CASES),
                        help="cases, comma-separated (default: %(default)s)")
    parser.add_argument("--engines", default=",".join(spec.key for spec in engines_module.ENGINES),
                        help="engines, comma-separated (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="blocks per engine and case (default: %(default)s)")
    parser.add_argument("--block-seconds", type=float, default=1.0,
                        help="target length of one block, from the slowest engine's warm-up time (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 0.3 s blocks: checks the harness, the numbers are rough")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="directory of the image files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where the ONNX exports and worker logs go (default: %(default)s)")
    parser.add_argument("--write", type=Path, metavar="BENCHMARKS.md",
                        help="replace the comparison section of this Markdown file")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every measurement to this file")
    args = parser.parse_args(argv)

    if args.quick:
        args.rounds, args.block_seconds = 2, 0.3

    args.thread_counts = [int(t) for t in args.threads.split(",")]
    args.case_list = [cases_module.Case.parse(name) for name in args.cases.split(",")]
    known = {spec.key: spec for spec in engines_module.ENGINES}
    unknown = [key for key in args.engines.split(",") if key not in known]
    if unknown:
        parser.error(f"unknown engines {unknown}; expected some of {sorted(known)}")
    args.engine_list = [known[key] for key in args.engines.split(",")]

    if not args.jclip.is_file() and any(spec.kind == "jclip" for spec in args.engine_list):
        parser.error(f"no jclip binary at {args.jclip}; run `cargo build --release` or pass --jclip")
    if args.rounds < 1 or min(args.thread_counts) < 1:
        parser.error("--rounds and --threads need positive values")
    return args


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_tokens(case, spec, reply, tokens_per_image: int) -> None:
    """Raise when an engine ran other token counts than the case defines."""
    expected = [case.tokens if case.kind == "text" else tokens_per_image] * case.batch
    if reply["tokens"] != expected:
        raise RuntimeError(f"{spec.label} ran {case.name} with tokens {reply['tokens']}, expected {expected}")


def start_workers(args, threads: int, onnx_dir, log_dir: Path, cold_request: dict) -> dict:
    """Start every engine one after another and time each from spawn to its first embedding."""
    workers = {}
    for spec in args.engine_list:
        argv = engines_module.command(spec, threads, args.model, args.jclip, onnx_dir)
        log.info("starting %s with %s: %s", spec.label, machine.threads_label(threads), shlex.join(argv))
        worker = engines_module.Worker(spec, threads, argv, log_dir / f"{spec.key}-{threads}.log")
        worker.request(**cold_request)
        worker.cold_start_s = time.monotonic() - worker.spawned_at
        workers[spec.key] = worker
    return workers


def measure_threads(args, threads: int, inputs: dict, onnx_dir, log_dir: Path, config: dict) -> dict:
    """Run every case on every engine at one thread count; return the raw measurements."""
    cold_request = inputs[cases_module.Case.parse(COLD_START_CASE)]
    workers = start_workers(args, threads, onnx_dir, log_dir, cold_request)
    tokens_per_image = (config["vision_config"]["image_size"] // config["vision_config"]["patch_size"]) ** 2 + 1
    result = {"engines": {}, "cases": {}, "probes": {}}
    try:
        for key, worker in workers.items():
            result["engines"][key] = {"cold_start_s": worker.cold_start_s, "ready": worker.ready, "peak_rss_bytes": 0}
            if worker.spec.kind in ("jclip", "torch"):
                result["probes"][key] = worker.request(probe=True)["peaks"]

        # Warm-up: one untimed and one timed run per case and engine; the timed run sizes the
        # blocks and its embeddings give the cosines.
        for case in args.case_list:
            entry = result["cases"][case.name] = {"estimate_ms": {}, "embeddings": {}, "blocks": {}}
            for key, worker in workers.items():
                reply = worker.request(**inputs[case], warmup=1, repeat=1, embeddings=True)
                check_tokens(case, worker.spec, reply, tokens_per_image)
                if reply.get("gflop") is not None:
                    counted = cases_module.case_flops(case, config) / 1e9
                    if abs(reply["gflop"] - counted) > FLOP_COUNT_TOLERANCE * counted:
                        raise RuntimeError(f"{worker.spec.label} counts {reply['gflop']} GFLOP for {case.name}, "
                                           f"this script {counted}")
                entry["estimate_ms"][key] = reply["times_ms"][0]
                entry["embeddings"][key] = reply["embeddings"]
                entry["blocks"][key] = []
            slowest = max(entry["estimate_ms"].values()) / 1e3
            entry["runs_per_block"] = max(1, int(args.block_seconds / slowest))

        remaining = sum(args.rounds * entry["runs_per_block"] * sum(entry["estimate_ms"].values()) / 1e3
                        for entry in result["cases"].values())
        log.info("%s: warm-up done, about %.0f s of timed runs follow", machine.threads_label(threads), remaining)

        # Rounds: each case runs on every engine in turn, starting one engine later each round.
        keys = list(workers)
        for round_index in range(args.rounds):
            order = keys[round_index % len(keys):] + keys[:round_index % len(keys)]
            for case in args.case_list:
                entry = result["cases"][case.name]
                for key in order:
                    reply = workers[key].request(**inputs[case], repeat=entry["runs_per_block"])
                    entry["blocks"][key].append({"round": round_index, "times_ms": reply["times_ms"]})
                    engine = result["engines"][key]
                    engine["peak_rss_bytes"] = max(engine["peak_rss_bytes"], reply.get("peak_rss_bytes") or 0)
                    time.sleep(BLOCK_GAP)
            log.info("%s: round %d of %d done", machine.threads_label(threads), round_index + 1, args.rounds)
    finally:
        for worker in workers.values():
            worker.close()
    return result


def summarize(args, measurements: dict, config: dict) -> dict:
    """Reduce the raw blocks to medians, ratios to jclip fp32, GFLOP/s and cosines."""
    reference_threads = args.thread_counts[0]
    summary = {}
    for case in args.case_list:
        flops = cases_module.case_flops(case, config)
        reference = measurements[reference_threads]["cases"][case.name]["embeddings"].get(engines_module.REFERENCE)
        for threads in args.thread_counts:
            entry = measurements[threads]["cases"][case.name]
            for spec in args.engine_list:
                blocks = entry["blocks"][spec.key]
                times = [t for block in blocks for t in block["times_ms"]]
                median = statistics.median(times)
                row = summary.setdefault((case.name, spec.key), {})
                row[threads] = {"median_ms": median, "runs": len(times), "gflop_per_second": flops / median / 1e6}
                baseline = entry["blocks"].get(engines_module.BASELINE)
                if baseline:
                    # Pair each block with the jclip block of the same round.
                    ratios = [statistics.median(own["times_ms"]) / statistics.median(base["times_ms"])
                              for own, base in zip(blocks, baseline)]
                    row[threads]["ratio_to_baseline"] = statistics.median(ratios)
                if reference is not None:
                    outputs = entry["embeddings"][spec.key]
                    row[threads]["min_cosine"] = min(
                        cosine(np.asarray(a), np.asarray(b)) for a, b in zip(outputs, reference))
    return summary


def main(argv=None) -> int:
    # Progress of this tool at INFO; other libraries (the ONNX quantizer logs every tensor) at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    args = parse_arguments(argv)
    started_at = datetime.now(timezone.utc)
    load_before = machine.load_average()
    cpu_before = machine.CpuSnapshot.take()
    config = json.loads((args.model / "config.json").read_text())

    tokenizer = cases_module.raw_tokenizer(args.model / "tokenizer.json")
    images = cases_module.image_files(args.images)
    needed = set(args.case_list) | {cases_module.Case.parse(COLD_START_CASE)}
    inputs = {case: cases_module.case_inputs(case, tokenizer, images) for case in needed}

    onnx_dir = None
    if any(spec.kind == "onnxruntime" for spec in args.engine_list):
        onnx_dir = onnx_models.export_all(args.model, args.cache_dir / "onnx")
    log_dir = args.cache_dir / "logs" / started_at.strftime("%Y%m%dT%H%M%SZ")
    log_dir.mkdir(parents=True, exist_ok=True)

    measurements = {}
    for threads in args.thread_counts:
        measurements[threads] = measure_threads(args, threads, inputs, onnx_dir, log_dir, config)

    load_after = machine.load_average()
    cpu_after = machine.CpuSnapshot.take()
    others = cpu_before.others_until(cpu_after) if cpu_before and cpu_after else None
    summary = summarize(args, measurements, config)
    run = {
        "command": "python " + shlex.join([str(Path(sys.argv[0])), *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "minutes": (datetime.now(timezone.utc) - started_at).total_seconds() / 60,
        "quick": args.quick,
        "rounds": args.rounds,
        "block_seconds": args.block_seconds,
        "thread_counts": args.thread_counts,
        "cpu_model": machine.cpu_model(),
        "cpu_flags": machine.cpu_flags(),
        "hypervisor": machine.hypervisor(),
        "cpus": machine.available_cpus(),
        "versions": machine.package_versions(),
        "jclip_revision": machine.git_revision(REPOSITORY),
        "model": str(args.model),
        "model_bytes": (args.model / "model.safetensors").stat().st_size,
        "load_before": load_before,
        "load_after": load_after,
        "others": others,
        "busy_reasons": machine.busy_reasons(load_before, others),
    }
    markdown = report.comparison_section(run, args.case_list, args.engine_list, measurements, summary)
    print(markdown)
    if args.write:
        report.replace_section(args.write, report.COMPARISON_HEADING, markdown)
        log.info("wrote the comparison section of %s", args.write)
    if args.json:
        serializable = {
            "run": run,
            "measurements": {str(t): m for t, m in measurements.items()},
            "summary": [{"case": case, "engine": key, **{str(t): v for t, v in row.items()}}
                        for (case, key), row in summary.items()],
        }
        args.json.write_text(json.dumps(serializable, indent=1) + "\n")
    for reason in run["busy_reasons"]:
        log.warning("the machine was busy: %s", reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
