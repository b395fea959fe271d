"""Speed of realizar's tokenizer (pure Python) against llama.cpp's ``llama-tokenize`` on one text.

    python benches/bench_tokenizer.py MODEL.gguf TEXT [--rounds 5]

Alternates the two in each round and prints each one's median, and the ids are compared once (they
must be equal). llama-tokenize's time is the whole process (loading the vocabulary included), so
realizar's is given both with and without reading the vocabulary from the GGUF (a fresh
``Tokenizer`` per round: its word cache starts empty each time). The binary comes from
``.ci/llama-cpp`` (target/llama.cpp/build/bin).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from realizar.eval import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--llama-tokenize", default=str(ROOT / "target/llama.cpp/build/bin/llama-tokenize"))
    args = ap.parse_args()
    data = Path(args.text).read_bytes()
    cmd = [args.llama_tokenize, "-m", args.model, "-f", args.text, "--ids", "--no-escape", "--log-disable",
           "--no-parse-special"]
    have_binary = Path(args.llama_tokenize).exists()
    load: list[float] = []
    encode: list[float] = []
    binary: list[float] = []
    ids = None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        tok = Tokenizer.from_gguf(args.model)
        t1 = time.perf_counter()
        ids = tok.encode(data, add_special=tok.add_bos)
        t2 = time.perf_counter()
        load.append(t1 - t0)
        encode.append(t2 - t1)
        if have_binary:
            t3 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
            binary.append(time.perf_counter() - t3)
    assert ids is not None
    print(f"{args.text}: {len(data)} bytes, {ids.size} tokens, {args.rounds} rounds (medians)")
    enc = statistics.median(encode)
    print(f"realizar: load vocabulary {statistics.median(load):.2f} s, encode {enc:.2f} s "
          f"({len(data) / enc / 1e6:.2f} MB/s), both "
          f"{statistics.median([a + b for a, b in zip(load, encode, strict=True)]):.2f} s")
    if have_binary:
        want = [int(t) for t in out.strip()[1:-1].split(",")]
        print(f"llama-tokenize (whole process): {statistics.median(binary):.2f} s; "
              f"same ids: {want == ids.tolist()}")
    else:
        print(f"no {args.llama_tokenize}: run .ci/llama-cpp for the comparison", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
