"""Quantizer throughput from Python: realizar vs gguf-py (legacy types) and thread scaling.

    python benches/quantize_vs_gguf.py [--rows 256] [--reps 3]

Single-thread numbers use CPU time of the calling thread (``time.thread_time``: realizar runs a
one-thread call on the caller's thread with the GIL released), which is robust on a busy machine;
the two-thread number is wall time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import realizar

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
GGML_REF = {  # ggml's quantize_row_<t>_ref, Mweights/s, single thread (issue 6)
    "Q4_0": 1800, "Q4_1": 1900, "Q5_0": 1060, "Q5_1": 1150, "Q8_0": 410,
    "Q2_K": 26, "Q3_K": 107, "Q4_K": 21, "Q5_K": 27, "Q6_K": 50,
}  # fmt: skip


def rate(fn: Callable[[], object], n: int, reps: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    fn()  # warm-up: the first calls also settle the allocator's thresholds for fresh outputs
    for _ in range(reps):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return n / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.rows, 4096)) * 0.02).astype(np.float32)
    qw = (rng.random(4096) + 0.1).astype(np.float32)
    try:
        import gguf
        from gguf.quants import quantize as gguf_quantize
    except ImportError:
        gguf = None  # type: ignore[assignment]
    cpu, wall = time.thread_time, time.perf_counter
    print("type    1 thread  x ggml ref  2 threads  scaling  imatrix  gguf-py  x gguf   (Mweights/s)")
    for t in TYPES:
        rows = x if t.endswith(("_0", "_1")) else x[: max(1, args.rows // 8)]
        n = rows.size
        one = rate(partial(realizar.quantize, rows, t, threads=1), n, args.reps, cpu)
        two = rate(partial(realizar.quantize, rows, t, threads=2), n, args.reps, wall)
        one_wall = rate(partial(realizar.quantize, rows, t, threads=1), n, args.reps, wall)
        imat = rate(partial(realizar.quantize, rows, t, imatrix=qw, threads=1), n, 1, cpu)
        g = ratio = ""
        if gguf is not None and t.endswith(("_0", "_1")):
            gr = rate(partial(gguf_quantize, rows, gguf.GGMLQuantizationType[t]), n, 1, cpu)
            g, ratio = f"{gr:8.1f}", f"{one / gr:6.1f}x"
        line = f"{t:6} {one:9.1f} {one / GGML_REF[t]:10.2f}x {two:10.1f} {two / one_wall:7.2f}x {imat:8.1f}"
        print(f"{line} {g:>8} {ratio:>7}")


if __name__ == "__main__":
    main()
