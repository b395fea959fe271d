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


NEWCOMER_COMMANDS = [
    "pip install . && python -m realizar demo",
    "pip install '.[test]' && cargo test && python -m pytest",
]


def test_readme_keeps_the_newcomer_commands() -> None:
    """"Try it" and "Run the whole test suite": in a new virtual environment, one line each."""
    text = README.read_text()
    for command in NEWCOMER_COMMANDS:
        assert f"\n{command}\n" in text, command
    assert "python3 -m venv .venv && . .venv/bin/activate" in text


def test_ci_resolves_dependencies_as_a_newcomer_does() -> None:
    """.ci/run runs the README's test command with nothing cached and no local wheel directory, so
    that it gets the dependency versions a newcomer's `pip install` gets today."""
    ci = (README.parent / ".ci" / "run").read_text()
    first_install = min(m.start() for m in re.finditer(r"^[^#\n]*\bpip install", ci, flags=re.M))
    assert ci.index("export PIP_NO_CACHE_DIR=1") < first_install
    assert ci.index("unset PIP_FIND_LINKS") < first_install
    install, test = NEWCOMER_COMMANDS[1].split(" && ", 1)
    assert f"\n{install}\n" in ci and f"\n{test}\n" in ci
