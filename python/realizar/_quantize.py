"""``realizar.quantize``: float arrays to GGML blocks, byte for byte as llama.cpp's ggml."""

from __future__ import annotations

from typing import SupportsIndex

import numpy as np
import numpy.typing as npt

from . import _realizar
from ._api import threads_arg
from ._types import QuantType, QuantTypeLike


def quantize(
    x: npt.ArrayLike,
    qtype: QuantTypeLike,
    *,
    imatrix: npt.ArrayLike | None = None,
    out: npt.NDArray[np.uint8] | None = None,
    threads: SupportsIndex | None = None,
) -> npt.NDArray[np.uint8]:
    """Quantize float weights to GGML blocks, exactly as llama.cpp's ggml does.

    A drop-in replacement for gguf-py's ``gguf.quants.quantize``: rows are the last axis and the
    last axis becomes bytes, ``(..., n) -> (..., n // block_size * type_size)``.

    Without ``imatrix`` the bytes equal ggml's ``quantize_row_<t>_ref``; with it they equal ggml's
    importance-weighted ``ggml_quantize_chunk(type, x, dst, 0, nrows, n, imatrix)`` (Q8_0, F32, F16
    and BF16 ignore the importance matrix, as ggml does).

    Args:
        x: the weights. A C-contiguous float32 array is read in place; any other float dtype
            (float16, float64, ...) or layout is converted to a C-contiguous float32 copy first
            (float64 values round to float32, as ggml's callers do).
        qtype: a :class:`QuantType`, its name in any case (``"q4_k"``), or its ggml type id.
        imatrix: importance weights, one per column (``x.shape[-1]`` finite values >= 0).
        out: a writable C-contiguous uint8 array with exactly the encoded number of bytes; filled
            in place and returned (its shape is kept).
        threads: threads to use (split on rows); ``None`` lets realizar choose. The bytes are the
            same for every thread count.

    Returns:
        A new uint8 array of shape ``(..., n // block_size * type_size)``, or ``out``.

    Raises:
        RealizarError: the last axis is not a multiple of the block size, ``x`` holds NaN or an
            infinity (the message names the first flat index), the importance matrix has the
            wrong length or negative / non-finite values, or ``out`` has the wrong size.
        TypeError: ``x`` is not a float array, ``out`` is not a uint8 array.
        ValueError: ``out`` is not C-contiguous or is read-only.
    """
    qt = QuantType.parse(qtype)
    nthreads = threads_arg(threads)
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"x must be an array of floats, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise _realizar.RealizarError("x must have at least one dimension (rows are its last axis)")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    n_per_row = int(arr.shape[-1])
    if n_per_row % qt.block_size != 0:
        raise _realizar.RealizarError(
            f"{qt.name} quantization needs the last axis to be a multiple of {qt.block_size} "
            f"(the block size), got shape {arr.shape}"
        )
    qw: npt.NDArray[np.float32] | None = None
    if imatrix is not None:
        qwa = np.asarray(imatrix)
        if qwa.dtype.kind not in "fiu":
            raise TypeError(f"imatrix must be an array of numbers, got dtype {qwa.dtype}")
        if qwa.ndim != 1:
            raise _realizar.RealizarError(
                f"bad importance matrix: it must be 1-D with {n_per_row} weights, got shape {qwa.shape}"
            )
        qw = np.ascontiguousarray(qwa, dtype=np.float32)
    row_bytes = n_per_row // qt.block_size * qt.type_size
    flat = arr.reshape(-1) if arr.size else arr.reshape(0)
    if n_per_row == 0:  # nothing to encode, but `out` gets the checks the core would make
        if out is None:
            return np.zeros(arr.shape, dtype=np.uint8)
        _check_empty_out(out, qt)
        return out
    res: npt.NDArray[np.uint8] = _realizar.quantize(flat, int(qt), n_per_row, qw, out, nthreads)
    if out is None:
        res = res.reshape((*arr.shape[:-1], row_bytes))
    return res


def _check_empty_out(out: object, qt: QuantType) -> None:
    """The core's checks of ``out`` (same exceptions, same words) for an input with no weights."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray of dtype uint8, not {type(out).__name__}")
    if out.dtype != np.uint8:
        raise TypeError(f"out must have dtype uint8, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out is read-only (flags.writeable is False)")
    if out.size != 0:
        raise _realizar.RealizarError(
            f"out has {out.size} bytes (shape {list(out.shape)}) but the input encodes to 0 bytes "
            f"of {qt.name}"
        )
