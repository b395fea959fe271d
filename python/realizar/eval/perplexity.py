"""Perplexity of a GGUF model on a token sequence, optionally with its weights re-quantized.

The protocol (``docs/perplexity-protocol.md``): ``windows`` non-overlapping windows of ``ctx`` tokens
from the start of the sequence, each evaluated alone from an empty cache; a window's loss is the
next-token negative log-likelihood of its tokens 1..ctx-1 given the preceding ones; perplexity is
``exp(total NLL / (windows * (ctx - 1)))``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .._text import escape
from .._types import QuantType, QuantTypeLike
from .model import Model
from .weights import check_requantize, is_replaced, load_model
from .weights import requantize as requantize_tensor

SEVEN_B = 7e9  # parameters of the "7B model" used for the size column


@dataclass
class PerplexityResult:
    """One evaluation: the reference (``qtype`` None) or one re-quantized variant."""

    model: str
    qtype: QuantType | None
    ppl: float
    window_nll: list[float]  # summed NLL of each window (nats)
    scored_tokens: int
    ctx: int
    load_seconds: float
    eval_seconds: float
    eval_cpu_seconds: float = 0.0  # CPU time of all threads during the evaluation (load-independent cost)
    replaced_tensors: int = 0
    replaced_weights: int = 0
    total_weights: int = 0
    rel_rms_error: float | None = None
    sum_sq_error: float = field(default=0.0, repr=False)
    sum_sq_weight: float = field(default=0.0, repr=False)

    @property
    def name(self) -> str:
        return "reference" if self.qtype is None else self.qtype.name

    @property
    def bits_per_weight(self) -> float | None:
        """Storage bits per weight of the format, scales included (None for the reference)."""
        return None if self.qtype is None else self.qtype.bits_per_weight

    @property
    def size_7b_gb(self) -> float | None:
        """Size in GB (1e9 bytes) of a 7e9-parameter model stored entirely in this format."""
        bpw = self.bits_per_weight
        return None if bpw is None else SEVEN_B * bpw / 8 / 1e9


def _sum_sq(a: np.ndarray, chunk: int = 1 << 20) -> float:
    """sum(a**2) accumulated in float64, in chunks to bound temporary memory."""
    flat = a.reshape(-1)
    total = 0.0
    for s in range(0, flat.size, chunk):
        c = flat[s : s + chunk].astype(np.float64)
        total += float(np.dot(c, c))
    return total


def _sum_sq_diff(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 20) -> float:
    fa, fb = a.reshape(-1), b.reshape(-1)
    total = 0.0
    for s in range(0, fa.size, chunk):
        c = fa[s : s + chunk].astype(np.float64) - fb[s : s + chunk]
        total += float(np.dot(c, c))
    return total


def window_nll(logits: npt.NDArray[np.float32], tokens: np.ndarray) -> float:
    """Summed NLL (nats) of ``tokens[1:]`` under ``logits[:-1]`` with a stable log-softmax.

    The log-sum-exp of each row is taken in float64 after subtracting the row maximum.
    """
    lg = logits[:-1]
    target = np.asarray(tokens[1:], dtype=np.intp)
    m = lg.max(axis=-1, keepdims=True)
    e = lg - m
    np.exp(e, out=e)
    lse = np.log(np.sum(e, axis=-1, dtype=np.float64)) + m[:, 0].astype(np.float64)
    picked = lg[np.arange(lg.shape[0]), target].astype(np.float64)
    return float(np.sum(lse - picked))


def _progress(iterable: Iterable[int], total: int, desc: str, enabled: bool) -> Iterable[int]:
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # a plain fallback: one line per window on stderr
        def plain() -> Iterable[int]:
            for i, x in enumerate(iterable):
                print(f"{desc}: window {i + 1}/{total}", file=sys.stderr, flush=True)
                yield x

        return plain()
    return tqdm(iterable, total=total, desc=desc, unit="window", file=sys.stderr)  # type: ignore[no-any-return]


def perplexity(
    model_path: str | os.PathLike[str],
    tokens: npt.ArrayLike,
    *,
    requantize: QuantTypeLike | None = None,
    ctx: int = 512,
    windows: int = 8,
    progress: bool = True,
) -> PerplexityResult:
    """Perplexity of the GGUF model at ``model_path`` on ``tokens`` under the protocol.

    Args:
        model_path: a GGUF file of a ``llama`` or ``qwen2`` model.
        tokens: 1-D integer token ids, at least ``ctx * windows`` of them (only those are used).
        requantize: ``None`` for the reference (the weights as published), else a block-quantized
            type: every tensor with 2+ dims and a multiple of 256 elements is replaced by
            ``dequantize(quantize_T(w.ravel()))``.
        ctx: tokens per window (positions 1..ctx-1 are scored).
        windows: number of non-overlapping windows from the start of ``tokens``.
        progress: show a progress bar over windows on stderr.

    Raises:
        ValueError: bad arguments, too few tokens, or a model this forward pass cannot run.
    """
    toks = np.asarray(tokens)
    if toks.ndim != 1 or not np.issubdtype(toks.dtype, np.integer):
        raise ValueError("tokens must be a 1-D array of integer token ids")
    if ctx < 2 or windows < 1:
        raise ValueError(f"need ctx >= 2 and windows >= 1, got ctx={ctx}, windows={windows}")
    if toks.size < ctx * windows:
        raise ValueError(f"{windows} windows of {ctx} tokens need {ctx * windows} tokens; got {toks.size}")
    qt = None if requantize is None else check_requantize(requantize)

    t0 = time.perf_counter()
    metadata, tensors = load_model(model_path)
    total = sum(int(w.size) for w in tensors.values())
    n_rep = n_rep_w = 0
    sse = ssw = 0.0
    if qt is not None:
        for name in list(tensors):
            w = tensors[name]
            if not is_replaced(w, qt):
                continue
            w2 = requantize_tensor(w, qt)
            sse += _sum_sq_diff(w2, w)
            ssw += _sum_sq(w)
            n_rep += 1
            n_rep_w += int(w.size)
            tensors[name] = w2  # the original is freed here
            del w, w2
    model = Model(metadata, tensors)
    del tensors
    load_s = time.perf_counter() - t0

    t1, c1 = time.perf_counter(), time.process_time()
    nll: list[float] = []
    desc = escape(f"{os.path.basename(os.fspath(model_path))} {'reference' if qt is None else qt.name}")
    for i in _progress(range(windows), windows, desc, progress):
        window = toks[i * ctx : (i + 1) * ctx]
        nll.append(window_nll(model.logits(window), window))
    eval_s, eval_cpu = time.perf_counter() - t1, time.process_time() - c1
    scored = windows * (ctx - 1)
    return PerplexityResult(
        model=os.fspath(model_path),
        qtype=qt,
        ppl=float(np.exp(sum(nll) / scored)),
        window_nll=nll,
        scored_tokens=scored,
        ctx=ctx,
        load_seconds=load_s,
        eval_seconds=eval_s,
        eval_cpu_seconds=eval_cpu,
        replaced_tensors=n_rep,
        replaced_weights=n_rep_w,
        total_weights=total,
        rel_rms_error=None if qt is None else (float(np.sqrt(sse / ssw)) if ssw > 0 else 0.0),
        sum_sq_error=sse,
        sum_sq_weight=ssw,
    )


def summary_rows(results: Sequence[PerplexityResult]) -> list[dict[str, object]]:
    """One dict per result (reference first if present): ppl, change vs the reference in percent,
    bits per weight, 7B size in GB, relative RMS error of the replaced weights, times."""
    ref = next((r for r in results if r.qtype is None), None)
    ordered = ([ref] if ref is not None else []) + [r for r in results if r is not ref]
    rows: list[dict[str, object]] = []
    for r in ordered:
        rows.append(
            {
                "variant": r.name,
                "ppl": r.ppl,
                "change_pct": None if ref is None or r is ref else (r.ppl / ref.ppl - 1.0) * 100.0,
                "bits_per_weight": r.bits_per_weight,
                "size_7b_gb": r.size_7b_gb,
                "rel_rms_error": r.rel_rms_error,
                "replaced_tensors": r.replaced_tensors,
                "load_s": r.load_seconds,
                "eval_s": r.eval_seconds,
                "eval_cpu_s": r.eval_cpu_seconds,
            }
        )
    return rows


def format_table(results: Sequence[PerplexityResult]) -> str:
    """The summary as a fixed-width text table (reference first, then each variant)."""

    def f(v: object, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = (
        f"{'variant':<10} {'ppl':>10} {'change':>9} {'bits/w':>7} {'7B GB':>6} {'rel RMS err':>11} "
        f"{'tensors':>7} {'load s':>7} {'eval s':>7} {'cpu s':>7}"
    )
    lines = [head, "-" * len(head)]
    for row in summary_rows(results):
        change = row["change_pct"]
        lines.append(
            f"{row['variant']!s:<10} {f(row['ppl'], '.4f'):>10} "
            f"{'-' if change is None else format(change, '+.2f') + '%':>9} "
            f"{f(row['bits_per_weight'], '.4g'):>7} {f(row['size_7b_gb'], '.2f'):>6} "
            f"{f(row['rel_rms_error'], '.5f'):>11} {row['replaced_tensors']!s:>7} "
            f"{f(row['load_s'], '.1f'):>7} {f(row['eval_s'], '.1f'):>7} {f(row['eval_cpu_s'], '.1f'):>7}"
        )
    return "\n".join(lines)
