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
