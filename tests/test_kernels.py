"""Every kernel this CPU runs, at every thread count, equals gguf-py's dequantize bit for bit.

Random blocks with special fp16 fields (±Inf, quiet and signalling NaNs, ±0, subnormals, ±max),
block counts that are not multiples of any SIMD width or thread chunk, unaligned input and output.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import realizar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import assert_matches_gguf_py, gguf_py_dequantize

FORMATS = [t.name for t in realizar.QuantType]
KERNELS = realizar.available_kernels()

# Byte offsets of the fp16 fields of one block (the float formats: every value is a field).
F16_FIELDS: dict[str, list[int]] = {
    "Q4_0": [0],
    "Q5_0": [0],
    "Q8_0": [0],
    "Q4_1": [0, 2],
    "Q5_1": [0, 2],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q2_K": [80, 82],
    "Q3_K": [108],
    "Q6_K": [208],
    "F16": [0],
    "BF16": [],
    "F32": [],
}
SPECIAL_F16 = [
    0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7E01, 0x7C01, 0xFD55, 0x7DFF,  # ±Inf, quiet and signalling NaNs
    0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0x1400,  # ±0, subnormals, max
]  # fmt: skip
SPECIAL_BF16 = [0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFA5, 0x0000, 0x8000, 0x0001, 0x7F7F, 0xFF7F]


@pytest.fixture(autouse=True)
def _auto_kernel_after() -> Iterator[None]:
    yield
    realizar.set_kernel("auto")


def make_blocks(fmt: str, nblocks: int, seed: int, specials: list[tuple[int, int, int]]) -> bytes:
    """Random blocks; each (block, field, value) in `specials` overwrites an fp16 field (or value)."""
    qt = realizar.QuantType.parse(fmt)
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(nblocks, qt.type_size), dtype=np.uint8)
    fields = F16_FIELDS[fmt]
    for blk, field, value in specials:
        row = raw[blk % nblocks]
        if fmt == "BF16":
            row[0:2] = _le(SPECIAL_BF16[value % len(SPECIAL_BF16)], 2)
        elif fields:
            off = fields[field % len(fields)]
            row[off : off + 2] = _le(SPECIAL_F16[value % len(SPECIAL_F16)], 2)
        elif fmt == "F32":
            row[:] = _le([0x7F800000, 0x7FA00001, 0xFFC00000, 0x80000000, 0x00000001][value % 5], 4)
    if fmt == "F16" and nblocks >= 32:  # a clean run so the F16 kernel's fast path is taken too
        clean = rng.uniform(-2, 2, 32).astype(np.float16)
        raw[:32] = np.frombuffer(clean.tobytes(), np.uint8).reshape(32, 2)
    return raw.tobytes()


def _le(value: int, nbytes: int) -> np.ndarray:
    return np.frombuffer(value.to_bytes(nbytes, "little"), np.uint8)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    nblocks=st.sampled_from([1, 2, 3, 5, 7, 8, 9, 16, 17, 33, 64, 65, 100, 257]),
    seed=st.integers(0, 2**32 - 1),
    specials=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 1), st.integers(0, 30)), max_size=40),
    threads=st.sampled_from([None, 1, 2, 3, 8]),
    src_off=st.integers(0, 3),
    dst_off=st.integers(0, 3),
    use_out=st.booleans(),
)
def test_kernel_matches_gguf_py(
    kernel: str,
    fmt: str,
    nblocks: int,
    seed: int,
    specials: list[tuple[int, int, int]],
    threads: int | None,
    src_off: int,
    dst_off: int,
    use_out: bool,
) -> None:
    if fmt in ("F32", "F16", "BF16"):
        nblocks *= 5
    data = make_blocks(fmt, nblocks, seed, specials)
    want = gguf_py_dequantize(data, fmt)
    assert realizar.set_kernel(kernel) == kernel
    assert realizar.kernel() == kernel
    # Unaligned input: the same bytes `src_off` bytes into a buffer.
    buf = np.zeros(len(data) + src_off, np.uint8)
    buf[src_off:] = np.frombuffer(data, np.uint8)
    src = buf[src_off:]
    what = f"{fmt} kernel={kernel} n={nblocks} threads={threads} src+{src_off} dst+{dst_off} out={use_out}"
    if use_out:
        backing = np.full(want.size + dst_off + 1, np.nan, np.float32)
        out = backing[dst_off : dst_off + want.size]
        res = realizar.dequantize(src, fmt, out=out, threads=threads)
        assert res is out
        assert np.isnan(backing[:dst_off]).all(), what
        assert np.isnan(backing[dst_off + want.size :]).all(), what
    else:
        res = realizar.dequantize(src, fmt, threads=threads)
    assert_matches_gguf_py(res, want, fmt, data, what)


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_gives_the_same_bits_on_a_large_input(kernel: str) -> None:
    """Sizes past the automatic-threading threshold and the streaming-store threshold, all threads."""
    data = make_blocks("Q4_K", 17_000, 1, [(i * 7, i, i) for i in range(200)])  # 4.35M weights, 17 MB out
    want = gguf_py_dequantize(data, "Q4_K")
    realizar.set_kernel(kernel)
    for threads in (None, 1, 2, 3):
        got = realizar.dequantize(data, "Q4_K", threads=threads)
        assert_matches_gguf_py(got, want, "Q4_K", data, f"{kernel} threads={threads}")
        out = np.empty(want.size, np.float32)
        realizar.dequantize(data, "Q4_K", out=out, threads=threads)
        assert_matches_gguf_py(out, want, "Q4_K", data, f"{kernel} out= threads={threads}")


def test_set_kernel_rejects_unknown_and_auto_restores_best() -> None:
    with pytest.raises(ValueError, match="sse9"):
        realizar.set_kernel("sse9")
    best = realizar.set_kernel("auto")
    assert best in KERNELS
    assert best != "scalar" or KERNELS == ["scalar"]
    assert realizar.kernel() == best
