"""Where the tests find llama.cpp's sources and tools, and how they skip when these are absent.

``.ci/llama-cpp`` unpacks llama.cpp (the copy vendored in a pinned llama-cpp-python sdist) and builds
its library and tools into ``target/llama.cpp`` under the repository root (``.ci/run`` calls it; a
developer runs it once, or symlinks a build made elsewhere to that path). Tests that compare realizar
with llama.cpp take every path from here and call :func:`require` (or the helpers built on it), which
skips the test, saying how to get the missing piece, when that piece is absent.

>>> from tests import llama_cpp
>>> exe = llama_cpp.binary("llama-tokenize")      # doctest: +SKIP  (skips if not built)
>>> vocab = llama_cpp.vocab("qwen2")              # doctest: +SKIP
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""
LLAMA_CPP = ROOT / "target" / "llama.cpp"
"""Everything ``.ci/llama-cpp`` makes."""
SRC = LLAMA_CPP / "src"
"""llama.cpp's source tree (``src/llama-vocab.cpp`` is ``SRC / "src" / "llama-vocab.cpp"``)."""
MODELS = SRC / "models"
"""The vocabulary-only GGUFs with their test inputs (``ggml-vocab-*.gguf``, ``.inp``, ``.out``)."""
BIN = LLAMA_CPP / "build" / "bin"
"""Tools and shared libraries built as llama.cpp builds them (-O3, no -march)."""
NATIVE_BIN = LLAMA_CPP / "native" / "bin"
"""``ggml-base`` built with -march=native (``.ci/llama-cpp --native``), for speed comparisons only."""

HOW = "run .ci/llama-cpp (it builds llama.cpp's sources and tools into target/llama.cpp)"


def require(path: Path, what: str | None = None) -> Path:
    """``path`` if it exists; otherwise skip the calling test, naming it and ``.ci/llama-cpp``."""
    if not path.exists():
        pytest.skip(f"{what or path.name} not found at {path}: {HOW}")
    return path


def source(relpath: str) -> Path:
    """A file of llama.cpp's source tree, e.g. ``source("src/unicode-data.cpp")``."""
    return require(SRC / relpath, f"llama.cpp source {relpath}")


def binary(name: str, *, native: bool = False) -> Path:
    """A tool or library built by ``.ci/llama-cpp``: ``binary("llama-tokenize")``,
    ``binary("libggml-base.so")``; ``native=True`` for the -march=native build."""
    return require((NATIVE_BIN if native else BIN) / name, f"llama.cpp's {name}")


def vocab(name: str) -> Path:
    """The vocabulary-only GGUF ``models/ggml-vocab-<name>.gguf``."""
    return require(MODELS / f"ggml-vocab-{name}.gguf", f"llama.cpp's vocabulary file ggml-vocab-{name}.gguf")


def vocab_cases(name: str) -> list[tuple[bytes, list[int]]]:
    """The inputs and expected token ids of ``ggml-vocab-<name>.gguf.inp`` / ``.out``, read as
    llama.cpp's tests/test-tokenizer-0.cpp reads them (inputs separated by
    ``"\\n__ggml_vocab_test__\\n"``, one line of space-separated ids per input; no BOS/EOS)."""
    gguf = vocab(name)
    raw = require(gguf.with_name(gguf.name + ".inp")).read_bytes()
    lines = require(gguf.with_name(gguf.name + ".out")).read_bytes().split(b"\n")
    if lines and lines[-1] == b"":  # std::getline yields no line after a final newline
        lines.pop()
    sep = b"\n__ggml_vocab_test__\n"
    inputs: list[bytes] = []
    pos = 0
    while pos < len(raw):
        nxt = raw.find(sep, pos)
        if nxt < 0:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:nxt])
        pos = nxt + len(sep)
    if len(inputs) != len(lines):
        raise AssertionError(f"{gguf.name}: {len(inputs)} inputs but {len(lines)} expected outputs")
    return [(text, [int(t) for t in line.split()]) for text, line in zip(inputs, lines, strict=True)]


def tokenize(model: Path, text_file: Path, *, bos: bool = True, parse_special: bool = True) -> list[int]:
    """Token ids of the file's bytes by ``llama-tokenize``, verbatim (``--no-escape``); BOS (and EOS)
    as the model's ``add_bos_token`` says unless ``bos=False`` (``--no-bos``); control tokens' texts
    as those tokens unless ``parse_special=False`` (``--no-parse-special``)."""
    cmd = [str(binary("llama-tokenize")), "-m", str(model), "-f", str(text_file), "--ids", "--no-escape",
           "--log-disable"]
    if not bos:
        cmd.append("--no-bos")
    if not parse_special:
        cmd.append("--no-parse-special")
    run = subprocess.run(cmd, capture_output=True, check=False)
    if run.returncode != 0:
        err = run.stderr.decode(errors="replace")
        raise AssertionError(f"{' '.join(cmd)} failed ({run.returncode}): {err}")
    out = run.stdout.decode().strip()
    if not (out.startswith("[") and out.endswith("]")):
        raise AssertionError(f"unexpected llama-tokenize output: {out[:200]!r}")
    body = out[1:-1].strip()
    return [int(t) for t in body.split(",")] if body else []
