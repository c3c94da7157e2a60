#!/usr/bin/env python3
"""Print numpy's single-precision matmul rate at the model's shapes as a Markdown table.

numpy's wheels link OpenBLAS, so this is the OpenBLAS reference of the
"Matmul, f32 weights" table in BENCHMARKS.md. It times `x @ w.T` for X
`[M, K]` and W `[N, K]`, best of 5 calls after one warm-up call, in GFLOP/s.
Set the thread count before numpy loads, for one thread:

    OPENBLAS_NUM_THREADS=1 python3 benches/openblas_sgemm.py
"""

import os
import time

import numpy as np

# The shapes of benches/kernels.rs: ROWS and LAYERS as (N, K).
ROWS = [1, 16, 64, 197, 512, 1576]
LAYERS = [(768, 768), (2304, 768), (2048, 768), (768, 2048), (6144, 768), (768, 3072)]
TRIES = 5


def rate(m: int, n: int, k: int, rng: np.random.Generator) -> float:
    """Return the best GFLOP/s of `x @ w.T` over TRIES calls."""
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    x @ w.T
    best = float("inf")
    for _ in range(TRIES):
        started = time.perf_counter()
        x @ w.T
        best = min(best, time.perf_counter() - started)
    return 2 * m * n * k / best / 1e9


def main() -> None:
    rng = np.random.default_rng(0)
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset (all CPUs)")
    print(f"numpy {np.__version__}, {config.get('name')} {config.get('version')}, OPENBLAS_NUM_THREADS {threads}\n")
    print("| M | " + " | ".join(f"{n}×{k}" for n, k in LAYERS) + " |")
    print("|---|" + "---|" * len(LAYERS))
    for m in ROWS:
        print(f"| {m} | " + " | ".join(f"{rate(m, n, k, rng):.1f}" for n, k in LAYERS) + " |", flush=True)


if __name__ == "__main__":
    main()
