"""The README's Python examples run, and pass ``mypy --strict``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python examples"
    return blocks


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int) -> None:
    exec(compile(python_blocks()[index], f"README.md[python block {index}]", "exec"), {})


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    from mypy import api

    files = []
    for i, code in enumerate(python_blocks()):
        f = tmp_path / f"readme_example_{i}.py"
        f.write_text(code)
        files.append(str(f))
    stdout, stderr, status = api.run(["--strict", "--no-incremental", *files])
    assert status == 0, stdout + stderr
