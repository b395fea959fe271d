"""Python-side benchmark: realizar vs gguf-py vs the NumPy allocate-and-fill ceiling.

For each format and size it times (best of --repeat runs, wall clock):
  gguf-py      gguf.quants.dequantize (fresh output)
  fresh 1T/MT  realizar.dequantize(data, fmt, threads=1 / default)  (new array each call)
  out 1T/MT    realizar.dequantize(data, fmt, out=buf, threads=1 / default)  (reused array)
  np fresh     a = np.empty(n, np.float32); a.fill(1)   (the cost of merely making the output)
  np fill      buf.fill(1)                              (the cost of merely writing it)
  np fill MT   the same fill, split over the default number of threads (NumPy releases the GIL)
and prints Gweights/s and the ratios: realizar (default threads, fresh) over gguf-py, realizar's
time over NumPy's for fresh and reused outputs (1.0 = as fast as only writing the floats), and
the speed-up of the default thread count over one thread, next to the same speed-up of NumPy's
fill: the memory's own limit for more threads writing a reused array.

    python benches/bench_python.py                      # 262,144 and 67,108,864 weights
    python benches/bench_python.py --quick              # tiny sizes, for CI smoke tests
    python benches/bench_python.py --sizes 1000000 --formats Q4_K Q6_K --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import realizar

ALL_FORMATS = [t.name for t in realizar.QuantType]
F16_FIELDS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,),
    "Q5_0": (0,),
    "Q8_0": (0,),
    "Q4_1": (0, 2),
    "Q5_1": (0, 2),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q6_K": (208,),
}


def make_data(fmt: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random quants with ordinary finite scales (or ordinary values for F32/F16/BF16)."""
    qt = realizar.QuantType.parse(fmt)
    if fmt == "F32":
        return rng.standard_normal(n, dtype=np.float32).view(np.uint8)
    if fmt == "F16":
        return rng.standard_normal(n, dtype=np.float32).astype(np.float16).view(np.uint8)
    if fmt == "BF16":
        return (
            (rng.standard_normal(n, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        )
    nb = n // qt.block_size
    raw = rng.integers(0, 256, size=(nb, qt.type_size), dtype=np.uint8)
    for off in F16_FIELDS[fmt]:
        scales = rng.uniform(1e-4, 4e-3, nb).astype(np.float16)
        raw[:, off : off + 2] = scales.view(np.uint8).reshape(nb, 2)
    return raw.reshape(-1)


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (page cache, lazy imports, thread pool)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


Row = dict[str, "float | str"]


def measure(fmt: str, data: np.ndarray, out: np.ndarray, repeat: int, with_gguf: bool) -> Row:
    """Times realizar (and gguf-py) on one input; checks they agree bit for bit."""
    row: Row = {"format": fmt, "n": out.size}
    row["fresh_1t"] = best_time(lambda: realizar.dequantize(data, fmt, threads=1), repeat)
    row["fresh_mt"] = best_time(lambda: realizar.dequantize(data, fmt), repeat)
    row["out_1t"] = best_time(lambda: realizar.dequantize(data, fmt, out=out, threads=1), repeat)
    row["out_mt"] = best_time(lambda: realizar.dequantize(data, fmt, out=out), repeat)
    if with_gguf:
        import gguf
        import gguf.quants

        gt = gguf.GGMLQuantizationType[fmt]
        row["gguf"] = best_time(lambda: gguf.quants.dequantize(data, gt), max(1, min(repeat, 2)))
        want = np.asarray(gguf.quants.dequantize(data, gt), np.float32).reshape(-1)
        if not np.array_equal(realizar.dequantize(data, fmt).view(np.uint32), want.view(np.uint32)):
            raise SystemExit(f"{fmt}: realizar and gguf-py differ")
    return row


def ceilings(n: int, out: np.ndarray, repeat: int, threads: int) -> tuple[float, float, float]:
    """NumPy's time to allocate and fill a fresh array, to fill `out`, and to fill `out` in
    `threads` contiguous parts at once."""
    parts = np.array_split(out, threads)
    with ThreadPoolExecutor(threads) as pool:
        fill_mt = best_time(lambda: list(pool.map(lambda a: a.fill(1), parts)), repeat)
    return (
        best_time(lambda: np.empty(n, np.float32).fill(1), repeat),
        best_time(lambda: out.fill(1), repeat),
        fill_mt,
    )


def run(
    formats: Sequence[str], sizes: Sequence[int], repeat: int, with_gguf: bool, threads: int
) -> list[Row]:
    rows: list[Row] = []
    rng = np.random.default_rng(0)
    for n in sizes:
        out = np.zeros(n, np.float32)
        np_fresh, np_fill, np_fill_mt = ceilings(n, out, repeat, threads)
        for fmt in formats:
            if n % realizar.QuantType.parse(fmt).block_size:
                print(f"skipping {fmt} at {n}: not a whole number of blocks", file=sys.stderr)
                continue
            row = measure(fmt, make_data(fmt, n, rng), out, repeat, with_gguf)
            row.update(np_fresh=np_fresh, np_fill=np_fill, np_fill_mt=np_fill_mt)
            rows.append(row)
    return rows


def print_table(rows: list[Row], threads: int) -> None:
    def gw(row: Row, key: str) -> str:
        return f"{float(row['n']) / float(row[key]) / 1e9:6.2f}" if key in row else "     -"

    print(f"realizar {realizar.__version__}, kernel {realizar.kernel()}, default threads = {threads}")
    print("Gweights/s (best of runs); ratios: x gguf = gguf-py time / realizar (default threads, fresh);")
    print("/np = realizar time / NumPy's (fresh: np.empty+fill, out: fill; 1.0 = only writing the floats);")
    print("MT/1T = speed-up of the default thread count over one thread (reused output); np MT/1T = the")
    print("same for NumPy's fill (the memory's limit for more threads writing).")
    head = (
        f"{'format':6} {'weights':>10} {'gguf-py':>7} {'fresh1T':>7} {'freshMT':>7} {'out1T':>7} {'outMT':>7}"
        f" {'npfresh':>7} {'npfill':>7} {'npfilMT':>7} | {'x gguf':>7} {'fresh/np':>8} {'out/np':>7}"
        f" {'MT/1T':>6} {'np MT/1T':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        xg = f"{float(r['gguf']) / float(r['fresh_mt']):7.1f}" if "gguf" in r else "      -"
        print(
            f"{r['format']:6} {r['n']:>10} {gw(r, 'gguf'):>7} {gw(r, 'fresh_1t'):>7} {gw(r, 'fresh_mt'):>7}"
            f" {gw(r, 'out_1t'):>7} {gw(r, 'out_mt'):>7} {gw(r, 'np_fresh'):>7} {gw(r, 'np_fill'):>7}"
            f" {gw(r, 'np_fill_mt'):>7} | {xg} {float(r['fresh_mt']) / float(r['np_fresh']):8.2f}"
            f" {float(r['out_mt']) / float(r['np_fill']):7.2f} {float(r['out_1t']) / float(r['out_mt']):6.2f}"
            f" {float(r['np_fill']) / float(r['np_fill_mt']):8.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[262_144, 67_108_864], help="weights per call")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (best is kept)")
    p.add_argument("--formats", nargs="+", default=ALL_FORMATS, choices=ALL_FORMATS, metavar="FMT")
    p.add_argument("--kernel", default="auto", help="realizar kernel: auto, scalar, avx2, ...")
    p.add_argument("--no-gguf", action="store_true", help="skip gguf-py (it is slow at large sizes)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 runs (a smoke test)")
    args = p.parse_args(argv)
    sizes, repeat = (args.sizes, args.repeat) if not args.quick else ([4096, 65_536], 2)
    if repeat < 1 or any(s < 1 for s in sizes):
        p.error("--repeat and --sizes must be positive")
    realizar.set_kernel(args.kernel)
    from realizar import _realizar

    threads = _realizar._num_threads()
    rows = run(args.formats, sizes, repeat, with_gguf=not args.no_gguf, threads=threads)
    print_table(rows, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
