"""realizar: bit-exact, SIMD, multi-core decoding of llama.cpp / GGML quantized weights to NumPy.

>>> import numpy as np, realizar
>>> block = bytes([0x00, 0x38]) + bytes(range(32))   # one Q8_0 block: d = 0.5, q = 0..31
>>> realizar.dequantize(block, "Q8_0")[:4]
array([0. , 0.5, 1. , 1.5], dtype=float32)
"""

from __future__ import annotations

from ._api import dequantize, weights_in
from ._quantize import quantize
from ._realizar import RealizarError, __version__, available_kernels, kernel, set_kernel
from ._types import QuantType, QuantTypeLike
from .gguf import GGUFError, GGUFFile, TensorInfo, load_gguf

__all__ = [
    "GGUFError",
    "GGUFFile",
    "QuantType",
    "QuantTypeLike",
    "RealizarError",
    "TensorInfo",
    "__version__",
    "available_kernels",
    "dequantize",
    "kernel",
    "load_gguf",
    "quantize",
    "set_kernel",
    "weights_in",
]
