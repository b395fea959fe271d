"""The convenience layer over the extension: argument parsing and reshaping, no decoding."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, SupportsIndex

import numpy as np
import numpy.typing as npt

from . import _realizar
from ._types import QuantType, QuantTypeLike

Buffer = Any  # anything exporting the buffer protocol (collections.abc.Buffer on 3.12+)


def as_index(value: object, what: str) -> int:
    """``operator.index(value)``: an int, a NumPy integer or anything with ``__index__``; floats and
    strings are refused with a ``TypeError`` naming ``what`` instead of being truncated or parsed."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{what} must be an integer, got a bool ({value!r})")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} ({value!r})") from None


def _shape_tuple(shape: SupportsIndex | Sequence[SupportsIndex]) -> tuple[int, ...]:
    if isinstance(shape, str | bytes | bytearray):
        raise TypeError(f"shape must be an integer or a sequence of integers, got {type(shape).__name__}")
    if isinstance(shape, Sequence) or (isinstance(shape, np.ndarray) and shape.ndim == 1):
        return tuple(as_index(s, "every dimension of shape") for s in shape)
    return (as_index(shape, "shape"),)


def resolve_shape(target: tuple[int, ...], n: int, source: str) -> tuple[int, ...]:
    """``target`` with its one ``-1`` (if any) inferred, as NumPy's ``reshape`` does, checked to hold
    exactly ``n`` values; ``source`` says where they come from ("the Q8_0 data decodes to 128 weights")."""
    unknown = [i for i, s in enumerate(target) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in target):
        raise _realizar.RealizarError(
            f"shape {target}: dimensions must be >= 0, and at most one may be -1 (inferred); {source}"
        )
    if unknown:
        known = math.prod(s for s in target if s != -1)
        if known == 0 or n % known:
            raise _realizar.RealizarError(f"shape {target}: no size for the -1 fits, as {source}")
        target = tuple(n // known if s == -1 else s for s in target)
    if math.prod(target) != n:
        raise _realizar.RealizarError(f"shape {target} holds {math.prod(target)} values but {source}")
    return target


def weights_in(nbytes: SupportsIndex, qtype: QuantTypeLike) -> int:
    """How many weights ``nbytes`` bytes of ``qtype`` hold (a ``RealizarError`` if not whole blocks)."""
    n = as_index(nbytes, "nbytes")
    if n < 0:
        raise _realizar.RealizarError(f"nbytes must be >= 0, got {n}")
    return _realizar._weights_in(int(QuantType.parse(qtype)), n)


def dequantize(
    data: Buffer,
    qtype: QuantTypeLike,
    *,
    out: npt.NDArray[np.float32] | None = None,
    shape: SupportsIndex | Sequence[SupportsIndex] | None = None,
    threads: SupportsIndex | None = None,
) -> npt.NDArray[np.float32]:
    """Decode GGML blocks into float32, bit for bit as llama.cpp does.

    Args:
        data: whole blocks of ``qtype`` in any C-contiguous buffer (bytes, bytearray, memoryview,
            a NumPy array of any dtype such as a ``np.memmap`` or a gguf-py tensor's ``data``,
            mmap). It is read in place, never copied.
        qtype: a :class:`QuantType`, its name in any case (``"q6_k"``), or its ggml type id.
        out: a writable C-contiguous float32 array with exactly as many elements as ``data``
            decodes to; filled in place and returned (its shape is kept).
        shape: shape of the result; its product must equal the number of weights. One dimension
            may be ``-1``, inferred from the number of weights as NumPy's ``reshape`` does.
        threads: threads to use; ``None`` lets realizar choose (all cores for large inputs).

    Returns:
        A new float32 array that owns the decoded buffer (no copy), or ``out``.

    Raises:
        RealizarError: ``data`` is not a whole number of blocks, ``qtype`` is unknown, or
            ``out``/``shape`` do not match the number of weights (a ``ValueError`` subclass).
        TypeError: ``data`` is not a buffer, ``out`` is not a float32 array, ``shape`` or
            ``threads`` is not made of integers.
        ValueError: ``data`` or ``out`` is not C-contiguous, ``out`` is read-only.
    """
    qt = QuantType.parse(qtype)
    nthreads = threads_arg(threads)
    target = None if shape is None else _shape_tuple(shape)
    if target is not None and isinstance(out, np.ndarray):
        if resolve_shape(target, out.size, f"out has {out.size} elements") != out.shape:
            raise _realizar.RealizarError(f"shape {target} does not match out.shape {out.shape}")
    result: npt.NDArray[np.float32] = _realizar.dequantize(data, int(qt), out, nthreads)
    if out is None and target is not None:
        result = result.reshape(
            resolve_shape(target, result.size, f"the {qt.name} data decodes to {result.size} weights")
        )
    return result


def threads_arg(threads: SupportsIndex | None) -> int:
    """The core's thread count for a ``threads=`` argument: ``None`` -> 0 (realizar chooses)."""
    if threads is None:
        return 0
    if isinstance(threads, bool | np.bool_):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    n = as_index(threads, "threads")
    if n < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    # More threads than the pool has are never used; the cap only keeps the count in the core's range.
    return min(n, _MAX_THREADS)


_MAX_THREADS = (1 << 31) - 1
