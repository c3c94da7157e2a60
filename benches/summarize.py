#!/usr/bin/env python3
"""Print the matmul results of `cargo bench --bench kernels` as Markdown tables.

Reads criterion's estimates under target/criterion (the mean time of the last
run of each benchmark) and prints GFLOP/s per shape and implementation, each
as a fraction of the measured FMA peak of one core. A second table gives the
`int8/` groups: GOP/s of int8 and f32 weights and their ratio.

Usage: python3 benches/summarize.py [target/criterion]
"""

import json
import pathlib
import sys


def mean_seconds(directory: pathlib.Path) -> float | None:
    estimates = directory / "new" / "estimates.json"
    if not estimates.exists():
        return None
    return json.loads(estimates.read_text())["mean"]["point_estimate"] / 1e9


def throughput(directory: pathlib.Path) -> float | None:
    benchmark = directory / "new" / "benchmark.json"
    seconds = mean_seconds(directory)
    if seconds is None:
        return None
    amount = json.loads(benchmark.read_text())["throughput"]
    value = amount.get("Elements") or amount.get("Bytes")
    return value / seconds / 1e9


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    peak = throughput(root / "peak" / "fma-avx512")
    if peak:
        print(f"FMA peak of one core (AVX-512): {peak:.1f} GFLOP/s\n")
    columns = [
        ("jclip-avx512", "1t"),
        ("gemm", "1t"),
        ("jclip-avx2", "1t"),
        ("naive", "1t"),
        ("jclip-avx512", "2t"),
        ("gemm", "2t"),
    ]
    header = " | ".join(f"{name} {threads}" for name, threads in columns)
    print(f"| M×N×K | {header} | 2t/1t jclip |")
    print("|---" * (len(columns) + 2) + "|")
    groups = sorted(
        (path for path in root.glob("matmul_*") if path.is_dir()),
        key=lambda path: [int(part) for part in path.name.split("_", 1)[1].split("x")],
    )
    for group in groups:
        cells = []
        rates = {}
        for name, threads in columns:
            rate = throughput(group / name / threads)
            rates[(name, threads)] = rate
            if rate is None:
                cells.append("–")
            elif peak and threads == "1t":
                cells.append(f"{rate:.1f} ({rate / peak:.0%})")
            else:
                cells.append(f"{rate:.1f}")
        single, double = rates[("jclip-avx512", "1t")], rates[("jclip-avx512", "2t")]
        scaling = f"{double / single:.2f}×" if single and double else "–"
        shape = group.name.split("_", 1)[1].replace("x", "×")
        print(f"| {shape} | {' | '.join(cells)} | {scaling} |")
    print_int8(root)


def print_int8(root: pathlib.Path) -> None:
    """Print the `int8/` groups: one thread, GOP/s per weight format and kernel."""
    vnni_peak = throughput(root / "peak" / "vpdpbusd-avx512")
    if vnni_peak:
        print(f"\nvpdpbusd peak of one core (AVX-512 VNNI): {vnni_peak:.1f} GOP/s")
    groups = sorted(
        (path for path in root.glob("int8_*") if path.is_dir()),
        key=lambda path: [int(part) for part in path.name.split("_", 1)[1].split("x")],
    )
    if not groups:
        return
    columns = sorted({path.name for group in groups for path in group.iterdir() if (path / "1t").is_dir()})
    f32_column = next((name for name in columns if name.startswith("f32-")), None)
    int8_columns = [name for name in columns if name.startswith("int8-")]
    print(f"\n| M×N×K | {' | '.join(columns)} | {' | '.join(f'{name} ÷ f32' for name in int8_columns)} |")
    print("|---" * (1 + len(columns) + len(int8_columns)) + "|")
    for group in groups:
        rates = {name: throughput(group / name / "1t") for name in columns}
        cells = [f"{rates[name]:.1f}" if rates[name] else "–" for name in columns]
        base = rates.get(f32_column) if f32_column else None
        ratios = [f"{rates[name] / base:.2f}×" if rates[name] and base else "–" for name in int8_columns]
        shape = group.name.split("_", 1)[1].replace("x", "×")
        print(f"| {shape} | {' | '.join(cells + ratios)} |")


if __name__ == "__main__":
    main()
