"""Measure start-up time and memory of each precision, packed at load or converted.

For the original checkpoint with each `--dtype`, and for the directory `jclip convert` writes
for each precision, runs one fresh `jclip bench` process that embeds one 16-token text, and
records the time from `main` to the open model and to the first embedding, and the resident
memory right after opening and at the end. Writes the "Start-up and memory" section of
BENCHMARKS.md.

    python tools/bench/startup.py --model DIR [--precisions f32,bf16] [--write BENCHMARKS.md]

The converted directories are written once under ~/.cache/jclip-bench/converted/ and reused.
The page cache is warm: every file has been read before the measured run.
"""

import argparse
import json
import logging
import shlex
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import machine
import report

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_JCLIP = REPOSITORY / "target" / "release" / "jclip"
CACHE = Path.home() / ".cache" / "jclip-bench" / "converted"
HEADING = "## Start-up and memory"
MEGABYTE = 1024 * 1024

log = logging.getLogger("bench")


def converted_dir(jclip: Path, model: Path, precision: str) -> Path:
    """Return the converted directory of `model` at `precision`, writing it when missing."""
    out = CACHE / f"{model.resolve().name}-{precision}"
    source_stamp = (model / "model.safetensors").stat().st_mtime_ns
    stamp = out / ".source-mtime"
    if out.is_dir() and stamp.is_file() and stamp.read_text() == str(source_stamp):
        return out
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    log.info("converting %s to %s", model, precision)
    subprocess.run([str(jclip), "convert", "--model", str(model), "--dtype", precision, "--out", str(out)],
                   check=True)
    stamp.write_text(str(source_stamp))
    return out


def run_once(jclip: Path, model: Path, dtype: str | None, threads: int) -> dict:
    command = [str(jclip), "bench", "--model", str(model), "--threads", str(threads), "--case", "text:16",
               "--warmup", "0", "--repeat", "1", "--no-peak", "--json"]
    if dtype:
        command += ["--dtype", dtype]
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    return json.loads(completed.stdout)


def measure(jclip: Path, model: Path, dtype: str | None, threads: int, repeat: int) -> dict:
    """Run `repeat` fresh processes (after one that warms the page cache) and keep the medians."""
    run_once(jclip, model, dtype, threads)
    runs = [run_once(jclip, model, dtype, threads) for _ in range(repeat)]

    def median(get):
        values = [get(run) for run in runs]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    return {
        "open_ms": median(lambda r: r["first_open_ms"]),
        "first_embedding_ms": median(lambda r: r["first_embedding_ms"]),
        "anonymous_after_load": median(lambda r: (r.get("resident_after_load") or {}).get("anonymous_bytes")),
        "file_after_load": median(lambda r: (r.get("resident_after_load") or {}).get("file_bytes")),
        "peak_rss": median(lambda r: r.get("process_peak_rss_bytes")),
        "precision": runs[0]["precision"],
        "in_place": runs[0]["weights_in_place"],
    }


def megabytes(value) -> str:
    return "–" if value is None else f"{value / MEGABYTE:.0f}"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="original checkpoint directory")
    parser.add_argument("--jclip", type=Path, default=DEFAULT_JCLIP, help="jclip binary (default: %(default)s)")
    parser.add_argument("--precisions", default="f32,f16,bf16", help="comma-separated (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="worker threads (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="measured processes per row (default: %(default)s)")
    parser.add_argument("--write", type=Path, metavar="BENCHMARKS.md", help="replace the section in this file")
    args = parser.parse_args(argv)
    if not args.jclip.is_file():
        parser.error(f"no jclip binary at {args.jclip}; run `cargo build --release` or pass --jclip")

    started_at = datetime.now(timezone.utc)
    load_before = machine.load_average()
    rows = []
    for precision in args.precisions.split(","):
        log.info("%s packed at load", precision)
        rows.append(("original checkpoint, `--dtype " + precision + "`",
                     measure(args.jclip, args.model, precision, args.threads, args.repeat)))
        converted = converted_dir(args.jclip, args.model, precision)
        log.info("%s converted", precision)
        rows.append((f"`jclip convert --dtype {precision}`",
                     measure(args.jclip, converted, None, args.threads, args.repeat)))
    load_after = machine.load_average()

    command = "python " + shlex.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    load = " / ".join("–" if l is None else f"{l[0]:.2f}" for l in (load_before, load_after))
    lines = [
        HEADING, "",
        "<!-- Generated by tools/bench/startup.py; rerun it instead of editing this section. -->", "",
        f"Command: `{command}`, started {started_at.isoformat(timespec='seconds')} (UTC).", "",
        f"- Machine: {machine.cpu_model()}, {machine.available_cpus()} CPUs; jclip at "
        f"{machine.git_revision(REPOSITORY)}; {args.threads} worker threads.",
        f"- 1-minute load average before / after: {load}.",
        f"- Each row is the median of {args.repeat} fresh `jclip bench --case text:16` processes, after one "
        "more that warmed the page cache. Times count from the start of `main`.",
        "- Resident memory after load: anonymous memory (heap, packed weights) and pages of mapped "
        "files (the checkpoint, the binary), read from /proc/self/status right after the model opened.",
        "",
        "| model directory | weights | model open, ms | first embedding, ms | anonymous after load, MB "
        "| mapped after load, MB | process peak RSS, MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in rows:
        where = "mapped in place" if row["in_place"] else "packed at load"
        lines.append(
            f"| {label} | {row['precision']}, {where} | {row['open_ms']:.0f} | {row['first_embedding_ms']:.0f} | "
            f"{megabytes(row['anonymous_after_load'])} | {megabytes(row['file_after_load'])} | "
            f"{megabytes(row['peak_rss'])} |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if args.write:
        report.replace_section(args.write, HEADING, markdown)
        log.info("wrote the start-up section of %s", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
