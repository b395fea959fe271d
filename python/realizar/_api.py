"""The convenience layer over the extension: argument parsing and reshaping, no decoding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsIndex

import numpy as np
import numpy.typing as npt

from . import _realizar
from ._types import QuantType, QuantTypeLike

Buffer = Any  # anything exporting the buffer protocol (collections.abc.Buffer on 3.12+)


def _shape_tuple(shape: SupportsIndex | Sequence[SupportsIndex]) -> tuple[int, ...]:
    if isinstance(shape, Sequence):
        return tuple(int(s) for s in shape)
    return (int(shape),)


def weights_in(nbytes: int, qtype: QuantTypeLike) -> int:
    """How many weights ``nbytes`` bytes of ``qtype`` hold (a ``RealizarError`` if not whole blocks)."""
    return _realizar._weights_in(int(QuantType.parse(qtype)), int(nbytes))


def dequantize(
    data: Buffer,
    qtype: QuantTypeLike,
    *,
    out: npt.NDArray[np.float32] | None = None,
    shape: SupportsIndex | Sequence[SupportsIndex] | None = None,
    threads: int | None = None,
) -> npt.NDArray[np.float32]:
    """Decode GGML blocks into float32, bit for bit as llama.cpp does.

    Args:
        data: whole blocks of ``qtype`` in any C-contiguous buffer (bytes, bytearray, memoryview,
            a NumPy array of any dtype such as a ``np.memmap`` or a gguf-py tensor's ``data``,
            mmap). It is read in place, never copied.
        qtype: a :class:`QuantType`, its name in any case (``"q6_k"``), or its ggml type id.
        out: a writable C-contiguous float32 array with exactly as many elements as ``data``
            decodes to; filled in place and returned (its shape is kept).
        shape: shape of the result; its product must equal the number of weights.
        threads: threads to use; ``None`` lets realizar choose (all cores for large inputs).

    Returns:
        A new float32 array that owns the decoded buffer (no copy), or ``out``.

    Raises:
        RealizarError: ``data`` is not a whole number of blocks, ``qtype`` is unknown, or
            ``out``/``shape`` do not match the number of weights (a ``ValueError`` subclass).
        TypeError: ``data`` is not a buffer, ``out`` is not a float32 array.
        ValueError: ``data`` or ``out`` is not C-contiguous, ``out`` is read-only.
    """
    qt = QuantType.parse(qtype)
    nthreads = threads_arg(threads)
    target = None if shape is None else _shape_tuple(shape)
    if out is not None and target is not None and tuple(out.shape) != target:
        raise _realizar.RealizarError(f"shape {target} does not match out.shape {tuple(out.shape)}")
    result: npt.NDArray[np.float32] = _realizar.dequantize(data, int(qt), out, nthreads)
    if out is None and target is not None:
        if any(s < 0 for s in target) or math.prod(target) != result.size:
            raise _realizar.RealizarError(
                f"shape {target} holds {math.prod(target)} values but the {qt.name} data decodes to "
                f"{result.size} weights"
            )
        result = result.reshape(target)
    return result


def threads_arg(threads: int | None) -> int:
    """The core's thread count for a ``threads=`` argument: ``None`` -> 0 (realizar chooses)."""
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return 0 if threads is None else int(threads)
