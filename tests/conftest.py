"""Shared test helpers: the golden vectors and gguf-py as oracles."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import settings

# In the development setup (and this project's CI) the repository is checked out next to
# ../shared; tests/vectors holds a verbatim copy of its golden vectors for checkouts without it
# (GitHub runners, an sdist). test_vectors_copy_is_verbatim keeps the two identical.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VECTORS = SHARED / "vectors" if (SHARED / "vectors").is_dir() else Path(__file__).parent / "vectors"

# Hypothesis: a fixed, derandomised profile in CI (.ci/run sets HYPOTHESIS_PROFILE=ci) so a run
# is reproducible.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def ggml_reference() -> dict[str, npt.NDArray[np.generic]]:
    path = VECTORS / "ggml_reference.npz"
    if not path.exists():  # fail, never skip: the vectors are part of the test setup
        pytest.fail(f"golden vectors missing: {path}")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def bits(a: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    """float32 bit patterns, so NaN payloads and -0.0 compare exactly."""
    assert a.dtype == np.float32, a.dtype
    return np.ascontiguousarray(a).view(np.uint32)


def assert_bits_equal(got: npt.NDArray[np.float32], want: npt.NDArray[np.float32], what: str = "") -> None:
    g, w = bits(got.reshape(-1)), bits(np.asarray(want, dtype=np.float32).reshape(-1))
    assert g.shape == w.shape, (what, g.shape, w.shape)
    bad = np.flatnonzero(g != w)
    if bad.size:
        i = int(bad[0])
        raise AssertionError(
            f"{what}: {bad.size} of {g.size} values differ; first at {i}: "
            f"got {g[i]:#010x} ({got.reshape(-1)[i]!r}), want {w[i]:#010x} ({want.reshape(-1)[i]!r})"
        )


def gguf_py_dequantize(data: object, qtype: object) -> npt.NDArray[np.float32]:
    """The oracle: gguf-py's ``quants.dequantize`` of ``data`` (bytes or any contiguous array, read
    as raw bytes) as type ``qtype`` (a QuantType, name or id), flattened to float32. NaN/Inf scales
    in random blocks make NumPy warn; the values, not the warnings, are what is compared."""
    import warnings

    import gguf
    from gguf import quants
    from realizar import QuantType

    raw = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray) else np.asarray(data)
    raw = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    gtype = gguf.GGMLQuantizationType(int(QuantType.parse(qtype)))  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = quants.dequantize(raw, gtype)
    return np.asarray(out, dtype=np.float32).reshape(-1)


# Byte offset of the fp16 field added after the product (`m` / `dmin`) in the formats that have one.
MIN_FIELD = {"Q4_1": 2, "Q5_1": 2, "Q2_K": 82, "Q4_K": 2, "Q5_K": 2}


def assert_matches_gguf_py(
    got: npt.NDArray[np.float32],
    want: npt.NDArray[np.float32],
    qtype: str,
    raw: bytes | npt.NDArray[np.uint8],
    what: str = "",
) -> None:
    """Bit-exact comparison with gguf-py, with the one case where ggml and gguf-py themselves disagree.

    In `y = q*d + m` (and `(d*sc)*q - dmin*m`) with a non-finite `m`/`dmin` field, both terms can
    be NaN (e.g. Inf*0 + NaN); IEEE 754 leaves open which NaN the sum returns, and x86 returns the
    first operand's. ggml's C reference built as llama.cpp builds ggml-quants.c (-O3, which the
    golden vectors were made with, and realizar follows) returns the product's NaN; NumPy, and so
    gguf-py, (and ggml built with -march=native) return `m`'s. Only positions where both outputs
    are NaN, in blocks whose `m`/`dmin` field is non-finite, may differ; everything else is exact.
    """
    from realizar import QuantType

    qt = QuantType.parse(qtype)
    g, w = bits(got.reshape(-1)), bits(np.asarray(want, dtype=np.float32).reshape(-1))
    assert g.shape == w.shape, (what, g.shape, w.shape)
    bad = np.flatnonzero(g != w)
    if bad.size and qt.name in MIN_FIELD:
        blocks = np.frombuffer(bytes(raw), np.uint8).reshape(-1, qt.type_size)
        off = MIN_FIELD[qt.name]
        m_bits = blocks[:, off].astype(np.uint16) | (blocks[:, off + 1].astype(np.uint16) << 8)
        m_nonfinite = (m_bits & 0x7C00) == 0x7C00
        both_nan = np.isnan(got.reshape(-1)[bad]) & np.isnan(np.asarray(want).reshape(-1)[bad])
        bad = bad[~(both_nan & m_nonfinite[bad // qt.block_size])]
    if bad.size:
        i = int(bad[0])
        raise AssertionError(
            f"{what}: {bad.size} of {g.size} values differ from gguf-py; first at {i}: "
            f"got {g[i]:#010x}, want {w[i]:#010x}"
        )
