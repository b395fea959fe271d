"""Turns `cargo bench --bench dequantize` output into a table of Gweights/s and ratios.

    cargo bench --bench dequantize 2>&1 | tee bench.txt
    python benches/summarize_criterion.py bench.txt

Ratios are against llama.cpp's C reference (`dequantize_row_*`, -O3 -march=native) measured on
this kind of machine (2-core EPYC, Zen 3), as given in the project's issues, and against the
ceiling (a loop that only writes as many f32) of the same run.
"""

from __future__ import annotations

import argparse
import re
import sys

# Gweights/s in cache / out of cache.
GGML_REF: dict[str, tuple[float, float]] = {
    "Q4_0": (6.4, 6.2),
    "Q8_0": (20.5, 7.2),
    "Q4_K": (16.1, 7.5),
    "Q5_K": (12.4, 7.5),
    "Q6_K": (1.5, 1.5),
    "Q4_1": (4.5, 4.5),
    "Q5_0": (5.8, 5.7),
    "Q5_1": (5.7, 5.6),
    "Q2_K": (3.5, 3.4),
    "Q3_K": (2.1, 2.1),
}
TARGET: dict[str, tuple[float, float]] = {
    "Q4_0": (2.5, 1.4),
    "Q8_0": (1.2, 1.2),
    "Q4_K": (1.3, 1.2),
    "Q5_K": (1.5, 1.2),
    "Q6_K": (6.0, 5.0),
    "Q4_1": (2.5, 1.4),
    "Q5_0": (2.5, 1.4),
    "Q5_1": (2.5, 1.4),
    "Q2_K": (4.0, 1.4),
    "Q3_K": (4.0, 1.4),
}
UNIT = {"Gelem/s": 1.0, "Melem/s": 1e-3, "Kelem/s": 1e-6, "elem/s": 1e-9}


def parse(text: str) -> dict[str, float]:
    """Benchmark id -> median Gweights/s."""
    out: dict[str, float] = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"^(\S+/\S+)\s+time:", line) or re.match(r"^(\S+/\S+)\s*$", line)
        if m and not line.startswith("Benchmarking"):
            name = m.group(1)
        t = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if t and name:
            out[name] = float(t.group(1)) * UNIT[t.group(2)]
            name = None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", type=argparse.FileType(), default=sys.stdin)
    r = parse(p.parse_args().file.read())
    fmts = ["F32", "F16", "BF16", *GGML_REF]
    kernels = sorted(
        {k.split("/")[2] for k in r if k.count("/") == 2 and k.split("/")[0] in fmts}, reverse=True
    )
    fill = (r.get("ceiling/256Ki/fill", 0.0), r.get("ceiling/64Mi/fill", 0.0))
    stream = (r.get("ceiling/256Ki/fill_stream", 0.0), r.get("ceiling/64Mi/fill_stream", 0.0))
    print("Gweights/s, one thread, reused output (median of criterion samples)")
    print(f"ceiling in / out of cache: fill {fill[0]:.2f} / {fill[1]:.2f}", end="")
    print(f", streaming fill {stream[0]:.2f} / {stream[1]:.2f}")
    cols = " | ".join(f"{k} in / out" for k in kernels)
    head = f"| format | {cols} | best/fill in / out | ggml ref in / out | best/ggml in / out | target |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for f in fmts:
        cells = []
        best = [0.0, 0.0]
        for k in kernels:
            a, b = r.get(f"{f}/256Ki/{k}", 0.0), r.get(f"{f}/64Mi/{k}", 0.0)
            best = [max(best[0], a), max(best[1], b)]
            cells.append(f"{a:.2f} / {b:.2f}")
        ref = GGML_REF.get(f)
        refs = f"{ref[0]} / {ref[1]}" if ref else "-"
        ratio = f"{best[0] / ref[0]:.2f}x / {best[1] / ref[1]:.2f}x" if ref else "-"
        tgt = f"{TARGET[f][0]}x / {TARGET[f][1]}x" if f in TARGET else "-"
        ceil = f"{best[0] / fill[0] if fill[0] else 0:.2f} / {best[1] / fill[1] if fill[1] else 0:.2f}"
        print(f"| {f} | {' | '.join(cells)} | {ceil} | {refs} | {ratio} | {tgt} |")
    streams = sorted({k.split("/")[1] for k in r if k.startswith("stream/")})
    if streams:
        print("\nStreaming vs plain stores, 64Mi weights, one thread (Gweights/s)")
        for f in streams:
            pl = r.get(f"stream/{f}/64Mi/plain", 0.0)
            cells = [f"plain {pl:.2f}"]
            for v in ("stream32", "stream16"):
                x = r.get(f"stream/{f}/64Mi/{v}", 0.0)
                if x:
                    cells.append(f"{v} {x:.2f} ({x / pl if pl else 0:.2f}x)")
            print(f"| {f} | " + " | ".join(cells) + " |")
    sizes = sorted({int(k.split("/")[2]) for k in r if k.startswith("stream_size/")})
    if sizes:
        print("\nQ8_0 streaming vs plain by size (weights: plain / stream32 Gweights/s)")
        for n in sizes:
            pl, st = r.get(f"stream_size/Q8_0/{n}/plain", 0.0), r.get(f"stream_size/Q8_0/{n}/stream32", 0.0)
            print(f"| {n} ({4 * n >> 20} MiB) | {pl:.2f} | {st:.2f} | {st / pl if pl else 0:.2f}x |")
    thr = sorted({int(k.split("/")[2]) for k in r if k.startswith("threads/")})
    if thr:
        print("\n1 vs 2 threads (Gweights/s, best kernel)")
        for f in sorted({k.split("/")[1] for k in r if k.startswith("threads/")}):
            cells = []
            for n in thr:
                one, two = r.get(f"threads/{f}/{n}/1", 0), r.get(f"threads/{f}/{n}/2", 0)
                cells.append(f"{n}: {one:.2f}/{two:.2f} ({two / one if one else 0:.2f}x)")
            print(f"| {f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
