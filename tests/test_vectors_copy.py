"""tests/vectors must stay a verbatim copy of ../shared/vectors (where that exists)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from .conftest import SHARED

COPY = Path(__file__).parent / "vectors"


@pytest.mark.parametrize("name", ["ggml_reference.npz", "ggml_quantize_bulk.npz"])
def test_vectors_copy_is_verbatim(name: str) -> None:
    assert (COPY / name).is_file(), f"tests/vectors/{name} is missing"
    shared = SHARED / "vectors" / name
    if not shared.is_file():
        pytest.skip("no ../shared/vectors next to this checkout (GitHub runner or sdist): nothing to compare")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (COPY / name, shared)]
    assert digest[0] == digest[1], f"tests/vectors/{name} differs from {shared}"
