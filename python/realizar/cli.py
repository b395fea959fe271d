"""The ``realizar`` command line. Each subcommand is a function ``cmd_<name>(args) -> int`` and one
``add_parser`` call in :func:`build_parser`; exit codes follow the usual convention: 0 success,
1 failure while working, 2 bad usage (argparse's own), 130 after Ctrl-C and 143 after SIGTERM (both
unwind, so that no temporary file is left behind). Text from a file is escaped before it is printed."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _cli_gguf, _realizar
from ._api import dequantize
from ._text import escape
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


def _load_tokens(path: str) -> npt.NDArray[Any]:
    """A 1-D integer ``.npy`` file of token ids, checked before it is read: its header must describe
    exactly the bytes the file has, so that a header claiming 10**11 entries is an error here rather
    than an attempt to allocate them."""
    with open(path, "rb") as fp:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as e:
            raise ValueError(f"{path}: not a .npy file of token ids ({e})") from None
        if dtype.kind not in "iu" or len(shape) != 1:
            raise ValueError(f"{path}: token ids must be a 1-D integer array, not {dtype} of shape {shape}")
        data_start = fp.tell()
        size = os.fstat(fp.fileno()).st_size
        claimed = shape[0] * dtype.itemsize
        if claimed != size - data_start:
            raise ValueError(
                f"{path}: the .npy header says {shape[0]} tokens of {dtype} ({claimed} bytes) but the file "
                f"has {size - data_start} bytes of data"
            )
        tokens: npt.NDArray[Any] = np.fromfile(fp, dtype=dtype, count=shape[0])
    return tokens


def _perplexity_tokens(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """The token ids to score and what they are, from --tokens or --text."""
    if args.tokens is not None:
        return _load_tokens(args.tokens), f"tokens {escape(args.tokens)}"
    from .eval.tokenizer import Tokenizer

    t0 = time.perf_counter()
    tokenizer = Tokenizer.from_gguf(args.model)
    with open(args.text, "rb") as f:
        data = f.read()
    tokens = tokenizer.encode(data)  # BOS as the model says (add_bos_token), as llama-perplexity
    print(f"tokenized {len(data)} bytes into {tokens.size} tokens with the model's tokenizer "
          f"({tokenizer.pre!r}, BOS {'added' if tokenizer.add_bos else 'not added'}) in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return tokens, f"text {escape(args.text)} ({tokens.size} tokens)"


def cmd_perplexity(args: argparse.Namespace) -> int:
    """Perplexity of a GGUF model on a text or token file: the reference, then each re-quantized
    variant."""
    # imported here so that the other subcommands do not load the evaluation code
    from .eval.perplexity import format_table, perplexity

    variants: list[QuantType | None] = [None, *args.requantize]
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
    print(f"model {escape(args.model)}, {source}: {args.windows} windows of {args.ctx} tokens, "
          f"{args.windows * (args.ctx - 1)} scored")
    print(format_table(results))
    print(f"total elapsed {time.perf_counter() - t0:.1f} s")
    return 0


def _requantize_type(text: str) -> QuantType:
    """argparse ``type=`` of ``--requantize``: a block-quantized type name, else a usage error."""
    from .eval.weights import check_requantize

    try:
        return check_requantize(text)
    except ValueError as e:  # RealizarError too
        raise argparse.ArgumentTypeError(str(e)) from None


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {n}")
        return n

    parse.__name__ = f"integer >= {low}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realizar",
        description="Decode llama.cpp / GGML quantized weights (bit-exact, SIMD, multi-core).",
        epilog="Exit status: 0 ok, 1 error while working, 2 bad usage, 130 interrupted (Ctrl-C), "
        "143 terminated (SIGTERM).",
    )
    parser.add_argument("--version", action="version", version=f"realizar {_realizar.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="decode a built-in example of every format and print the result",
        description="Decode a small built-in example of every format and print what it did.",
    )
    p.add_argument("--blocks", type=_at_least(1), default=4, help="blocks per format (default: %(default)s)")
    p.set_defaults(func=cmd_demo)
    _cli_gguf.add_parsers(sub)  # info, dequantize

    p = sub.add_parser("perplexity", help="perplexity of a GGUF llama/qwen2 model, optionally re-quantized",
                       description="Perplexity of a GGUF model (llama, qwen2) on a text, for the weights as "
                       "published and re-quantized to each --requantize type. The text is scored in "
                       "--windows non-overlapping windows of --ctx tokens from its start (docs/"
                       "perplexity-protocol.md). Exit status: 0 ok, 1 error while working, 2 bad usage.")
    p.add_argument("model", help="GGUF model file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="FILE",
                        help="a UTF-8 text file, tokenized with the model's own tokenizer from its GGUF "
                        "metadata (byte-level BPE; the same token ids as llama.cpp, BOS if the model's "
                        "add_bos_token says so)")
    source.add_argument("--tokens", metavar="FILE", help="token ids instead, a 1-D integer .npy file")
    p.add_argument("--requantize", nargs="*", default=[], metavar="T", type=_requantize_type,
                   help="re-quantize to these block-quantized types (e.g. Q8_0 Q4_K) after the reference")
    p.add_argument("--ctx", type=_at_least(2), default=512, help="tokens per window (default: %(default)s)")
    p.add_argument("--windows", type=_at_least(1), default=8, help="number of windows (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_perplexity)
    return parser


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that it unwinds (and cleans up) as Ctrl-C does."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args))
    except _cli_gguf.UsageError as e:
        parser.exit(2, f"realizar {args.command}: error: {escape(str(e))}\n")
    except MemoryError as e:
        print(f"realizar: error: out of memory{': ' + escape(str(e)) if str(e) else ''}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"realizar: error: {escape(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("realizar: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("realizar: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
