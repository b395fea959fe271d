"""Bit-exactness against the two oracles: ggml's C output (golden vectors) and gguf-py."""

from __future__ import annotations

import warnings

import gguf
import numpy as np
import numpy.typing as npt
import pytest
import realizar
from gguf import quants
from hypothesis import given, settings
from hypothesis import strategies as st
from realizar import QuantType

from .conftest import assert_bits_equal, assert_matches_gguf_py, gguf_py_dequantize

BLOCK_TYPES = [t for t in QuantType if t.is_quantized]
GOLDEN_NAMES = {t: t.name.lower().replace("_k", "_K") for t in BLOCK_TYPES}  # q4_0, q6_K


@pytest.mark.parametrize("qt", BLOCK_TYPES, ids=str)
@pytest.mark.parametrize("kind", ["", "_raw"], ids=["quantized-rows", "random-blocks"])
def test_ggml_golden_vectors(
    ggml_reference: dict[str, npt.NDArray[np.generic]], qt: QuantType, kind: str
) -> None:
    t = GOLDEN_NAMES[qt]
    q = ggml_reference[f"{t}{kind}" if kind else f"{t}_q"]
    want = ggml_reference[f"{t}{kind}_y"]
    got = realizar.dequantize(q, qt)
    assert_bits_equal(got, want.astype(np.float32, copy=False), f"{qt} {kind or 'rows'}")
    # The raw vectors really do carry the special scales the README promises.
    if kind == "_raw":
        assert not np.isfinite(want).all()


@pytest.mark.parametrize("qt", BLOCK_TYPES, ids=str)
def test_golden_rows_one_by_one_with_shape(
    ggml_reference: dict[str, npt.NDArray[np.generic]], qt: QuantType
) -> None:
    t = GOLDEN_NAMES[qt]
    q, want = ggml_reference[f"{t}_q"], ggml_reference[f"{t}_y"]
    got = realizar.dequantize(q, qt, shape=want.shape)
    assert got.shape == want.shape
    for row in range(q.shape[0]):
        assert_bits_equal(realizar.dequantize(q[row], qt), want[row], f"{qt} row {row}")


@settings(max_examples=60, deadline=None)
@given(qt=st.sampled_from(list(QuantType)), nblocks=st.integers(0, 40), data=st.data())
def test_random_bytes_match_gguf_py(qt: QuantType, nblocks: int, data: st.DataObject) -> None:
    """Random bytes include NaN, Inf and subnormal fp16 scales."""
    raw = np.frombuffer(
        data.draw(st.binary(min_size=nblocks * qt.type_size, max_size=nblocks * qt.type_size)), dtype=np.uint8
    )
    got = realizar.dequantize(raw, qt)
    assert got.shape == (nblocks * qt.block_size,)
    if nblocks:
        assert_matches_gguf_py(got, gguf_py_dequantize(raw, qt), qt.name, raw, str(qt))


@settings(max_examples=40, deadline=None)
@given(qt=st.sampled_from(list(QuantType)), nblocks=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_random_blocks_with_special_scales_match_gguf_py(qt: QuantType, nblocks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, nblocks * qt.type_size, dtype=np.uint8)
    # Set about a tenth of all byte pairs (so fp16 fields too) to special fp16 values.
    specials = np.array([0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0xFBFF], np.uint16)
    raw16 = raw[: raw.size // 2 * 2].view(np.uint16)
    pick = rng.random(raw16.size) < 0.1
    raw16[pick] = rng.choice(specials, pick.sum())
    assert_matches_gguf_py(realizar.dequantize(raw, qt), gguf_py_dequantize(raw, qt), qt.name, raw, str(qt))


def _quantizable_with_gguf_py() -> list[QuantType]:
    out = []
    for t in BLOCK_TYPES:
        try:
            quants.quantize(np.zeros((1, t.block_size), np.float32), gguf.GGMLQuantizationType(int(t)))
        except NotImplementedError:
            continue
        out.append(t)
    return out


@settings(max_examples=30, deadline=None)
@given(
    qt=st.sampled_from(_quantizable_with_gguf_py()),
    rows=st.integers(1, 4),
    blocks=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-6, 1e-2, 1.0, 30.0, 3e4]),
)
def test_blocks_quantized_from_floats_match_gguf_py(
    qt: QuantType, rows: int, blocks: int, seed: int, scale: float
) -> None:
    x = (np.random.default_rng(seed).standard_normal((rows, blocks * qt.block_size)) * scale).astype(
        np.float32
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # gguf-py's fp16 cast of huge scales
        q = quants.quantize(x, gguf.GGMLQuantizationType(int(qt)))
    got = realizar.dequantize(q, qt, shape=x.shape)
    assert_bits_equal(got, gguf_py_dequantize(q, qt), str(qt))


def test_f16_every_value_matches_numpy() -> None:
    h = np.arange(65536, dtype=np.uint16)
    assert_bits_equal(realizar.dequantize(h, "F16"), h.view(np.float16).astype(np.float32), "F16")
    assert_bits_equal(realizar.dequantize(h, "F16"), gguf_py_dequantize(h, QuantType.F16), "F16 gguf-py")


def test_bf16_every_value_matches_gguf_py() -> None:
    h = np.arange(65536, dtype=np.uint16)
    assert_bits_equal(realizar.dequantize(h, "BF16"), gguf_py_dequantize(h, QuantType.BF16), "BF16")
