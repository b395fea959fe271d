"""``QuantType``: the GGML tensor types realizar decodes, as an ``IntEnum`` of ggml type ids.

The members and their sizes come from the Rust core's one table of formats; ``tests/test_types.py``
checks that this list and that table agree. Being an ``IntEnum``, a member compares equal to gguf-py's
``GGMLQuantizationType`` of the same id.
"""

from __future__ import annotations

import enum
import operator
from typing import SupportsIndex

import numpy as np

from . import _realizar

_TABLE: dict[int, tuple[str, int, int]] = {
    gid: (name, block, size) for (name, gid, block, size) in _realizar._type_table()
}


class QuantType(enum.IntEnum):
    """A GGML tensor type; the value is its ggml / GGUF type id."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    BF16 = 30

    @property
    def ggml_id(self) -> int:
        """The ggml / GGUF type id (the same as ``int(self)``)."""
        return int(self)

    @property
    def block_size(self) -> int:
        """Weights per block (32 or 256; 1 for the float types)."""
        return _TABLE[self][1]

    @property
    def type_size(self) -> int:
        """Bytes per block."""
        return _TABLE[self][2]

    @property
    def bits_per_weight(self) -> float:
        """Storage bits per weight, scales included (Q4_0 is 4.5, Q6_K 6.5625)."""
        return self.type_size * 8 / self.block_size

    @property
    def is_quantized(self) -> bool:
        """True for block-quantized types, False for F32, F16 and BF16."""
        return self.block_size > 1

    @classmethod
    def parse(cls, value: QuantTypeLike) -> QuantType:
        """A ``QuantType`` from a member, a name in any case (``"q6_k"``) or a ggml id (``14``)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(_realizar._type_id_from_name(value))
        try:
            if isinstance(value, bool | np.bool_):
                raise TypeError
            type_id = operator.index(value)  # an int, a NumPy integer, gguf-py's enum
        except TypeError:
            raise TypeError(
                f"qtype must be a QuantType, a type name such as 'Q6_K', or a ggml type id; "
                f"got {type(value).__name__}"
            ) from None
        if not 0 <= type_id < 1 << 32:  # ids are u32 in GGUF; an unknown id, not an overflow
            supported = ", ".join(f"{q.name} ({q.value})" for q in cls)
            raise _realizar.RealizarError(
                f"unknown or unsupported ggml type id {type_id}; supported: {supported}"
            )
        return cls(_realizar._check_type_id(type_id))

    def __str__(self) -> str:
        return self.name


QuantTypeLike = QuantType | str | SupportsIndex
"""Anything :meth:`QuantType.parse` accepts: a member, a name, or a ggml type id (an ``int``, a NumPy
integer, gguf-py's ``GGMLQuantizationType``)."""
