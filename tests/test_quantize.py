"""realizar.quantize: byte-exact with ggml's C reference (golden vectors) and with gguf-py."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
import realizar
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from realizar import QuantType, RealizarError

from .conftest import VECTORS

BLOCK_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]
IMATRIX_TYPES = [t for t in BLOCK_TYPES if t != "q8_0"]
THREADS = [1, 2, 3, 4]
KERNELS = realizar.available_kernels()


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> Iterator[object]:
    """Runs a test once per kernel this CPU has (the scalar reference encoders and the SIMD ones)."""
    before = realizar.kernel()
    realizar.set_kernel(str(request.param))
    yield request.param
    realizar.set_kernel(before)


def _load(name: str) -> dict[str, npt.NDArray[np.generic]]:
    path = VECTORS / name
    if not path.exists():  # a missing vector file is a failure, never a skip
        pytest.fail(f"golden vectors missing: {path}")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def edge() -> dict[str, npt.NDArray[np.generic]]:
    return _load("ggml_reference.npz")


@pytest.fixture(scope="module")
def bulk() -> dict[str, npt.NDArray[np.generic]]:
    return _load("ggml_quantize_bulk.npz")


def _assert_rows_equal(got: npt.NDArray[np.uint8], want: npt.NDArray[np.generic], names: list[str]) -> None:
    assert got.dtype == np.uint8
    assert got.shape == want.shape
    bad = [names[i] for i in range(want.shape[0]) if not np.array_equal(got[i], want[i])]
    assert not bad, f"rows differ from ggml: {bad}"


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("t", BLOCK_TYPES)
def test_edge_rows_match_ggml_ref(
    edge: dict[str, npt.NDArray[np.generic]], t: str, threads: int, kernel: object
) -> None:
    x = edge["x"].astype(np.float32)
    names = [str(s) for s in edge["x_names"]]
    got = realizar.quantize(x, t, threads=threads)
    _assert_rows_equal(got, edge[f"{t}_q"], names)
    # One row at a time and as one flat row give the same bytes (ref quantizers are per block).
    assert np.array_equal(realizar.quantize(x.reshape(-1), t).reshape(got.shape), got)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("t", BLOCK_TYPES)
def test_bulk_matches_ggml_without_imatrix(
    bulk: dict[str, npt.NDArray[np.generic]], t: str, threads: int, kernel: object
) -> None:
    x = bulk["x"].astype(np.float32)
    got = realizar.quantize(x, t, threads=threads)
    _assert_rows_equal(got, bulk[f"{t}_q"], [f"row {i}" for i in range(x.shape[0])])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("t", BLOCK_TYPES)
def test_bulk_matches_ggml_with_imatrix(
    bulk: dict[str, npt.NDArray[np.generic]], t: str, threads: int, kernel: object
) -> None:
    x = bulk["x"].astype(np.float32)
    got = realizar.quantize(x, t, imatrix=bulk["imatrix"], threads=threads)
    _assert_rows_equal(got, bulk[f"{t}_q_imatrix"], [f"row {i}" for i in range(x.shape[0])])
    if t in IMATRIX_TYPES:
        # The importance matrix must actually change the result for these types.
        assert not np.array_equal(got, bulk[f"{t}_q"])


def test_imatrix_rows_are_independent(bulk: dict[str, npt.NDArray[np.generic]]) -> None:
    x = bulk["x"].astype(np.float32)
    for t in IMATRIX_TYPES:
        whole = realizar.quantize(x, t, imatrix=bulk["imatrix"])
        for i in (0, 17, 63):
            one = realizar.quantize(x[i], t, imatrix=bulk["imatrix"])
            assert np.array_equal(one, whole[i]), (t, i)


def test_out_and_shapes(edge: dict[str, npt.NDArray[np.generic]]) -> None:
    x = edge["x"].astype(np.float32).reshape(4, 4, 4096)
    want = realizar.quantize(x, "Q6_K")
    assert want.shape == (4, 4, 4096 // 256 * 210)
    out = np.zeros((16 * 16 * 210,), dtype=np.uint8)
    res = realizar.quantize(x, QuantType.Q6_K, out=out)
    assert res is out
    assert np.array_equal(out.reshape(want.shape), want)
    # float64 / float16 inputs are converted to float32 first.
    x64 = x.astype(np.float64)
    assert np.array_equal(realizar.quantize(x64, "q4_0"), realizar.quantize(x, "q4_0"))
    x16 = np.clip(x, -6e4, 6e4).astype(np.float16)
    assert np.array_equal(realizar.quantize(x16, "q8_0"), realizar.quantize(x16.astype(np.float32), "q8_0"))
    # Non-contiguous input is accepted (copied).
    xt = np.asfortranarray(edge["x"].astype(np.float32))
    assert np.array_equal(
        realizar.quantize(xt, "q5_K"), realizar.quantize(edge["x"].astype(np.float32), "q5_K")
    )
    # Round trip through dequantize keeps the values close.
    y = realizar.dequantize(want, "Q6_K", shape=x.shape)
    assert y.shape == x.shape


# ---------------------------------------------------------------------------------------------
# gguf-py: its quantize exists for F32, F16, BF16 and the legacy block types.

GGUF_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]

_finite32 = st.floats(
    min_value=-(2.0**100), max_value=2.0**100, allow_nan=False, allow_infinity=False, width=32
)
_special = st.sampled_from(
    [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 8.5, 1e-8, -1e-8, 3e5, -3e5, 65504.0, 1e-38, 6e-8]
)


@st.composite
def _rows(draw: st.DrawFn) -> npt.NDArray[np.float32]:
    nrows = draw(st.integers(1, 4))
    nblocks = draw(st.integers(1, 3))
    scale = draw(st.sampled_from([1e-6, 1e-2, 1.0, 100.0, 1e4]))
    arr = draw(hnp.arrays(np.float32, (nrows, 32 * nblocks), elements=_finite32 | _special))
    if draw(st.booleans()):
        arr = (np.tanh(arr.astype(np.float64)) * scale).astype(np.float32)
    return arr


@settings(max_examples=150, deadline=None)
@given(
    x=_rows(), t=st.sampled_from(GGUF_TYPES), threads=st.sampled_from(THREADS), kern=st.sampled_from(KERNELS)
)
def test_matches_gguf_py(x: npt.NDArray[np.float32], t: str, threads: int, kern: str) -> None:
    import gguf
    from gguf.quants import quantize as gguf_quantize

    # gguf-py and ggml disagree on the sign of zero: in a block whose abs-max (Q4_0, Q5_0) or min /
    # max (Q4_1, Q5_1) is a zero, ggml's C loops keep their initial +0.0 or the FIRST zero they see,
    # while gguf-py's argmax / np.min may pick another zero, so the stored fp16 d or m can differ in
    # its sign bit. realizar follows ggml (the golden "zeros" rows check it). For the block types
    # the comparison with gguf-py therefore uses inputs without -0.0 (x + 0.0 turns -0.0 into +0.0).
    if t not in ("F32", "F16", "BF16"):
        x = x + np.float32(0.0)
    xg = x
    with np.errstate(over="ignore", invalid="ignore"):  # gguf-py casts overflowing scales to fp16
        want = gguf_quantize(xg, gguf.GGMLQuantizationType[t])
    want_bytes = np.ascontiguousarray(want).view(np.uint8).reshape(x.shape[0], -1)
    before = realizar.kernel()
    realizar.set_kernel(kern)
    try:
        got = realizar.quantize(x, t, threads=threads)
    finally:
        realizar.set_kernel(before)
    assert got.shape == want_bytes.shape
    assert np.array_equal(got, want_bytes)


@settings(max_examples=60, deadline=None)
@given(x=_rows(), t=st.sampled_from(BLOCK_TYPES[:5]))
def test_thread_counts_agree_on_random_rows(x: npt.NDArray[np.float32], t: str) -> None:
    qw = np.linspace(0.0, 3.0, x.shape[1], dtype=np.float32)
    one = realizar.quantize(x, t, imatrix=qw, threads=1)
    for threads in THREADS[1:]:
        assert np.array_equal(realizar.quantize(x, t, imatrix=qw, threads=threads), one)


# ---------------------------------------------------------------------------------------------
# Round trip: llama.cpp's tests/test-quantize-fns.cpp bounds on its own data and metric.

MAX_QUANTIZATION_TOTAL_ERROR = 0.002
MAX_QUANTIZATION_TOTAL_ERROR_2BITS = 0.0075
MAX_QUANTIZATION_TOTAL_ERROR_3BITS = 0.0040
LLAMA_BOUNDS = {t: MAX_QUANTIZATION_TOTAL_ERROR for t in BLOCK_TYPES}
LLAMA_BOUNDS["q2_K"] = MAX_QUANTIZATION_TOTAL_ERROR_2BITS
LLAMA_BOUNDS["q3_K"] = MAX_QUANTIZATION_TOTAL_ERROR_3BITS

# RMSE / RMS on unit Gaussian data (measured: see the report); the bounds leave ~25% headroom.
GAUSSIAN_REL_RMSE_MAX = {
    "q4_0": 0.108,
    "q4_1": 0.098,
    "q5_0": 0.054,
    "q5_1": 0.048,
    "q8_0": 0.0067,
    "q2_K": 0.37,
    "q3_K": 0.19,
    "q4_K": 0.09,
    "q5_K": 0.045,
    "q6_K": 0.022,
}


@pytest.mark.parametrize("t", BLOCK_TYPES)
def test_round_trip_error_within_llama_cpp_bounds(t: str) -> None:
    n = 32 * 128  # test_size of test-quantize-fns.cpp
    i = np.arange(n, dtype=np.float32)
    x = (0.1 + 2.0 * np.cos(i).astype(np.float32)).astype(np.float32)  # generate_data(0.0, n, ...)
    y = realizar.dequantize(realizar.quantize(x, t), t)
    diff = x.astype(np.float64) - y.astype(np.float64)
    total_error = math.sqrt(float(np.sum(diff * diff))) / n  # array_rmse as llama.cpp defines it
    assert total_error < LLAMA_BOUNDS[t], (t, total_error)


@pytest.mark.parametrize("t", BLOCK_TYPES)
def test_round_trip_relative_rmse_on_gaussian(t: str) -> None:
    x = np.random.default_rng(1234).standard_normal((16, 4096)).astype(np.float32)
    y = realizar.dequantize(realizar.quantize(x, t), t, shape=x.shape)
    rel = float(np.sqrt(np.mean((x - y) ** 2.0)) / np.sqrt(np.mean(x**2.0)))
    print(f"{t}: relative RMSE {rel:.5f}")
    assert 0.0 < rel < GAUSSIAN_REL_RMSE_MAX[t], (t, rel)


# ---------------------------------------------------------------------------------------------
# Errors


def test_error_not_a_multiple_of_block() -> None:
    with pytest.raises(RealizarError, match="multiple of 256"):
        realizar.quantize(np.zeros((2, 300), np.float32), "q4_K")
    with pytest.raises(RealizarError, match="multiple of 32"):
        realizar.quantize(np.zeros(33, np.float32), "q8_0")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_error_non_finite_names_first_index(bad: float) -> None:
    x = np.ones((3, 64), np.float32)
    x[1, 5] = bad
    x[2, 0] = bad
    with pytest.raises(RealizarError, match=r"index 69\b"):
        realizar.quantize(x, "q4_0")
    with pytest.raises(RealizarError, match="non-finite"):
        realizar.quantize(x, "q5_1", imatrix=np.ones(64, np.float32))


def test_error_imatrix() -> None:
    x = np.ones((2, 256), np.float32)
    with pytest.raises(RealizarError, match="importance matrix"):
        realizar.quantize(x, "q4_K", imatrix=np.ones(255, np.float32))
    with pytest.raises(RealizarError, match="importance matrix"):
        realizar.quantize(x, "q4_K", imatrix=np.ones((2, 256), np.float32))
    qw = np.ones(256, np.float32)
    qw[7] = -1.0
    with pytest.raises(RealizarError, match="negative"):
        realizar.quantize(x, "q4_K", imatrix=qw)
    qw[7] = np.nan
    with pytest.raises(RealizarError, match="index 7"):
        realizar.quantize(x, "q4_K", imatrix=qw)


def test_error_bad_arguments() -> None:
    x = np.ones((2, 256), np.float32)
    with pytest.raises(TypeError):
        realizar.quantize(np.ones(256, np.int32), "q8_0")
    with pytest.raises(RealizarError):
        realizar.quantize(x, "q4_K", out=np.zeros(10, np.uint8))
    with pytest.raises(TypeError):
        realizar.quantize(x, "q4_K", out=np.zeros(288, np.float32))
    ro = np.zeros(288, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        realizar.quantize(x, "q4_K", out=ro)
    with pytest.raises(ValueError, match="threads"):
        realizar.quantize(x, "q4_K", threads=0)
    with pytest.raises(RealizarError):
        realizar.quantize(x, "nope")


@st.composite
def _k_rows(draw: st.DrawFn) -> npt.NDArray[np.float32]:
    nrows = draw(st.integers(1, 3))
    scale = draw(st.sampled_from([1e-30, 1e-6, 1e-2, 1.0, 3e5, 1e30]))
    arr = draw(hnp.arrays(np.float32, (nrows, 256), elements=_finite32 | _special))
    mode = draw(st.integers(0, 2))
    if mode == 1:
        arr = (np.tanh(arr.astype(np.float64)) * scale).astype(np.float32)
    elif mode == 2:  # a few distinct values: ties, constant sub-blocks, zeros
        arr = (np.round(np.tanh(arr.astype(np.float64)) * 4) / 4 * scale).astype(np.float32)
    return arr


@pytest.mark.skipif(len(KERNELS) < 2, reason="only the scalar kernel on this CPU: nothing to compare")
@settings(max_examples=200, deadline=None)
@given(x=_k_rows(), t=st.sampled_from(BLOCK_TYPES), imat=st.integers(0, 2))
def test_simd_encoders_equal_scalar_reference(x: npt.NDArray[np.float32], t: str, imat: int) -> None:
    qw = None
    if imat == 1:
        qw = np.abs(x[0]) + np.float32(0.01)
    elif imat == 2:
        qw = (np.arange(x.shape[1]) % 7).astype(np.float32)  # zero weights included
    before = realizar.kernel()
    try:
        realizar.set_kernel("scalar")
        want = realizar.quantize(x, t, imatrix=qw)
        for k in KERNELS[1:]:
            realizar.set_kernel(k)
            assert np.array_equal(realizar.quantize(x, t, imatrix=qw), want), k
    finally:
        realizar.set_kernel(before)
