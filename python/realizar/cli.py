"""The ``realizar`` command line. Each subcommand is a function ``cmd_<name>(args) -> int`` and one
``add_parser`` call in :func:`build_parser`; exit codes follow the usual convention: 0 success,
1 failure while working, 2 bad usage (argparse's own)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import _cli_gguf, _realizar
from ._api import dequantize
from ._types import QuantType


def _demo_block(qt: QuantType, nblocks: int, rng: np.random.Generator) -> bytes:
    """Random blocks of ``qt`` with sane fp16 scales (built-in example data, no file needed)."""
    raw = rng.integers(0, 256, size=nblocks * qt.type_size, dtype=np.uint8)
    if qt == QuantType.F32:
        return rng.standard_normal(raw.size // 4).astype("<f4").tobytes()
    if qt in (QuantType.F16, QuantType.BF16):
        x = rng.standard_normal(raw.size // 2).astype(np.float32)
        if qt == QuantType.F16:
            return x.astype("<f2").tobytes()
        return (x.view(np.uint32) >> 16).astype("<u2").tobytes()
    blocks = raw.reshape(nblocks, qt.type_size)
    # Put small positive fp16 scales where each format keeps them, so the numbers look like weights.
    scale = np.float16(0.01).view(np.uint16)
    offsets = {
        QuantType.Q4_0: [0],
        QuantType.Q4_1: [0, 2],
        QuantType.Q5_0: [0],
        QuantType.Q5_1: [0, 2],
        QuantType.Q8_0: [0],
        QuantType.Q2_K: [80, 82],
        QuantType.Q3_K: [108],
        QuantType.Q4_K: [0, 2],
        QuantType.Q5_K: [0, 2],
        QuantType.Q6_K: [208],
    }[qt]
    for off in offsets:
        blocks[:, off] = scale & 0xFF
        blocks[:, off + 1] = scale >> 8
    return blocks.tobytes()


def cmd_demo(args: argparse.Namespace) -> int:
    """Decode a small built-in example of every format and say what happened."""
    rng = np.random.default_rng(0)
    print(
        f"realizar {_realizar.__version__}, kernel {_realizar.kernel()} "
        f"(available: {', '.join(_realizar.available_kernels())})"
    )
    print(
        f"{'type':<6} {'id':>3} {'block':>5} {'bytes':>5} {'bits/w':>7} {'in bytes':>9} "
        f"{'weights':>8}  first values"
    )
    for qt in QuantType:
        data = _demo_block(qt, args.blocks, rng)
        t0 = time.perf_counter()
        y = dequantize(data, qt)
        dt = time.perf_counter() - t0
        first = " ".join(f"{v:+.4f}" for v in y[:4])
        print(
            f"{qt.name:<6} {qt.ggml_id:>3} {qt.block_size:>5} {qt.type_size:>5} {qt.bits_per_weight:>7.4g} "
            f"{len(data):>9} {y.size:>8}  {first}  ({dt * 1e6:.0f} us)"
        )
    print("ok: every format decoded")
    return 0


def _perplexity_tokens(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """The token ids to score and what they are, from --tokens or --text."""
    if args.tokens is not None:
        return np.load(args.tokens), f"tokens {args.tokens}"
    from .eval.tokenizer import Tokenizer

    t0 = time.perf_counter()
    tokenizer = Tokenizer.from_gguf(args.model)
    with open(args.text, "rb") as f:
        data = f.read()
    tokens = tokenizer.encode(data)  # BOS as the model says (add_bos_token), as llama-perplexity
    print(f"tokenized {len(data)} bytes into {tokens.size} tokens with the model's tokenizer "
          f"({tokenizer.pre!r}, BOS {'added' if tokenizer.add_bos else 'not added'}) in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return tokens, f"text {args.text} ({tokens.size} tokens)"


def cmd_perplexity(args: argparse.Namespace) -> int:
    """Perplexity of a GGUF model on a text or token file: the reference, then each re-quantized
    variant."""
    # imported here so that the other subcommands do not load the evaluation code
    from .eval.perplexity import format_table, perplexity
    from .eval.weights import check_requantize

    variants: list[QuantType | None] = [None, *(check_requantize(t) for t in args.requantize)]
    tokens, source = _perplexity_tokens(args)
    results = []
    t0 = time.perf_counter()
    for v in variants:
        r = perplexity(args.model, tokens, requantize=v, ctx=args.ctx, windows=args.windows,
                       progress=not args.no_progress)
        print(f"{r.name}: ppl {r.ppl:.4f} (load {r.load_seconds:.1f} s, eval {r.eval_seconds:.1f} s, "
              f"{r.eval_cpu_seconds:.1f} s CPU)",
              file=sys.stderr, flush=True)
        results.append(r)
    print(f"model {args.model}, {source}: {args.windows} windows of {args.ctx} tokens, "
          f"{args.windows * (args.ctx - 1)} scored")
    print(format_table(results))
    print(f"total elapsed {time.perf_counter() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realizar",
        description="Decode llama.cpp / GGML quantized weights (bit-exact, SIMD, multi-core).",
    )
    parser.add_argument("--version", action="version", version=f"realizar {_realizar.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="decode a built-in example of every format and print the result",
        description="Decode a small built-in example of every format and print what it did.",
    )
    p.add_argument("--blocks", type=int, default=4, help="blocks per format (default: %(default)s)")
    p.set_defaults(func=cmd_demo)
    _cli_gguf.add_parsers(sub)  # info, dequantize

    p = sub.add_parser("perplexity", help="perplexity of a GGUF llama/qwen2 model, optionally re-quantized",
                       description="Perplexity of a GGUF model (llama, qwen2) on a text, for the weights as "
                       "published and re-quantized to each --requantize type. The text is scored in "
                       "--windows non-overlapping windows of --ctx tokens from its start (docs/"
                       "perplexity-protocol.md).")
    p.add_argument("model", help="GGUF model file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="FILE",
                        help="a UTF-8 text file, tokenized with the model's own tokenizer from its GGUF "
                        "metadata (byte-level BPE; the same token ids as llama.cpp, BOS if the model's "
                        "add_bos_token says so)")
    source.add_argument("--tokens", metavar="FILE", help="token ids instead, a 1-D integer .npy file")
    p.add_argument("--requantize", nargs="*", default=[], metavar="T",
                   help="re-quantize to these types (e.g. Q8_0 Q4_K) after the reference")
    p.add_argument("--ctx", type=int, default=512, help="tokens per window (default: %(default)s)")
    p.add_argument("--windows", type=int, default=8, help="number of windows (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_perplexity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _cli_gguf.UsageError as e:
        parser.exit(2, f"realizar {args.command}: error: {e}\n")
    except (ValueError, OSError) as e:
        print(f"realizar: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("realizar: interrupted", file=sys.stderr)
        return 130
