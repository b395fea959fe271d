"""Every access to model weights used by :mod:`realizar.eval` goes through this module.

Two functions, and nothing else in the package touches a GGUF file or a quantizer:

* :func:`load_model` reads a GGUF file into ``(metadata, tensors)``: the metadata as plain Python
  values, each tensor decoded to float32 in NumPy order (the GGUF dims reversed).
* :func:`requantize` applies the protocol's re-quantization to one weight tensor.

Files are read with :class:`realizar.GGUFFile`, quantized with :func:`realizar.quantize` (ggml's
reference quantizers, byte for byte) and decoded with :func:`realizar.dequantize`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from .._api import dequantize
from .._quantize import quantize
from .._types import QuantType, QuantTypeLike
from ..gguf import GGUFFile

F32Array = npt.NDArray[np.float32]

# Weights re-quantized per call; a multiple of 256 so that no block (32 or 256 weights) is split and
# the result is the same as quantizing the whole flattened tensor at once.
_CHUNK = 1 << 20


def load_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, F32Array]]:
    """Read a GGUF file: its metadata and every tensor decoded to float32, in NumPy order.

    Returns:
        ``(metadata, tensors)``: ``metadata`` maps each key to a Python value (int, float, bool,
        str, list, or a NumPy array for long numeric arrays); ``tensors`` maps each tensor name to a
        C-contiguous float32 array whose shape is the GGUF dims reversed (so a ``[n_in, n_out]``
        matrix is ``(n_out, n_in)``).

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is not a valid GGUF file (``GGUFError``) or holds a tensor type realizar
            cannot decode (``RealizarError``).
    """
    with GGUFFile(path) as f:
        # f.dequantize returns a new float32 array of the NumPy-order shape (owned, not a view into
        # the file's mapping), so the arrays stay valid after the file is closed
        return dict(f.metadata), {name: f.dequantize(name) for name in f.tensors}


def _quantize(flat: F32Array, qt: QuantType) -> npt.NDArray[np.uint8]:
    """ggml's reference quantizer for ``qt`` (no importance matrix) on a 1-D float32 array of whole
    256-weight groups. The groups are passed as rows of 256 so that realizar can spread them over its
    threads; blocks (32 or 256 weights) never cross a row, so the bytes equal those of one long row."""
    return quantize(flat.reshape(-1, 256), qt).reshape(-1)


def check_requantize(qtype: QuantTypeLike) -> QuantType:
    """Fail early (ValueError) if re-quantizing to ``qtype`` is not possible; return the type."""
    qt = QuantType.parse(qtype)
    try:
        requantize(np.zeros((1, 256), dtype=np.float32), qt)
    except NotImplementedError as e:
        raise ValueError(str(e)) from e
    return qt


def is_replaced(w: np.ndarray, qtype: QuantTypeLike) -> bool:
    """Whether the protocol re-quantizes ``w``: 2 or more dims and a multiple of 256 elements."""
    QuantType.parse(qtype)
    return w.ndim >= 2 and w.size % 256 == 0


def requantize(w: np.ndarray, qtype: QuantTypeLike) -> F32Array:
    """The protocol's variant of one tensor: ``dequantize(quantize_T(w.ravel()))`` reshaped back.

    Tensors with fewer than 2 dims, or whose element count is not a multiple of 256, are returned
    unchanged (the same object). Blocks run over the flattened tensor in storage order.
    """
    qt = QuantType.parse(qtype)
    if not qt.is_quantized:
        raise ValueError(f"re-quantization target must be a block-quantized type, got {qt.name}")
    if not is_replaced(w, qt):
        return np.asarray(w, dtype=np.float32)
    flat = np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
    out = np.empty(flat.size, dtype=np.float32)
    for start in range(0, flat.size, _CHUNK):
        stop = min(start + _CHUNK, flat.size)
        dequantize(_quantize(flat[start:stop], qt), qt, out=out[start:stop])
    return out.reshape(w.shape)
