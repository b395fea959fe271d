"""Derive realizar's code point classes from llama.cpp's ``src/unicode-data.cpp``.

The BPE pre-tokenizers only ask whether a code point is a letter (``\\p{L}``), a number (``\\p{N}``)
or white space (llama.cpp's own list); llama.cpp answers from tables generated from the Unicode
Character Database, whose version need not be the one of Python's :mod:`unicodedata`. So realizar
ships the same answers, derived from llama.cpp's tables by this script:

    python tests/gen_unicode_classes.py target/llama.cpp/src/src/unicode-data.cpp \\
        > python/realizar/eval/_unicode_classes.py

``tests/test_tokenizer.py`` checks that the shipped module equals what this script derives.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LETTER, NUMBER = 0x0004, 0x0002  # unicode_cpt_flags::LETTER, ::NUMBER (src/unicode.h)


def _pairs(source: str, table: str) -> list[tuple[int, int]]:
    m = re.search(table + r"\s*=\s*\{[^\n]*\n(.*?)\};", source, re.S)
    if m is None:
        raise ValueError(f"{table} not found in unicode-data.cpp")
    pair = r"\{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\}"
    return [(int(a, 16), int(b, 16)) for a, b in re.findall(pair, m.group(1))]


def derive(source: str) -> tuple[list[int], str, list[int]]:
    """(range starts, one class letter per range: L letter, N number, O other; white space)."""
    flags = _pairs(source, "unicode_ranges_flags")
    if not flags or flags[0][0] != 0 or flags[-1][0] != 0x110000:
        raise ValueError("unicode_ranges_flags must run from 0 to 0x110000")
    starts: list[int] = []
    classes: list[str] = []
    for start, f in flags[:-1]:  # the last entry only closes the table
        c = "L" if f & LETTER else "N" if f & NUMBER else "O"
        if not classes or classes[-1] != c:
            starts.append(start)
            classes.append(c)
    m = re.search(r"unicode_set_whitespace\s*=\s*\{(.*?)\};", source, re.S)
    if m is None:
        raise ValueError("unicode_set_whitespace not found in unicode-data.cpp")
    whitespace = sorted(int(h, 16) for h in re.findall(r"0x([0-9A-Fa-f]+)", m.group(1)))
    return starts, "".join(classes), whitespace


def lowercase_into_ascii(source: str) -> dict[int, int]:
    """Code points >= 128 whose lower case (unicode_map_lowercase) is ASCII."""
    return {a: b for a, b in _pairs(source, "unicode_map_lowercase") if a >= 128 and b < 128}


def module_text(source: str) -> str:
    starts, classes, whitespace = derive(source)
    lines = [
        '"""Code point classes of llama.cpp\'s pre-tokenizers (generated, do not edit).',
        "",
        "Derived from llama.cpp's src/unicode-data.cpp (MIT licence) by tests/gen_unicode_classes.py:",
        "RANGE_CLASSES[i] is the class of the code points RANGE_STARTS[i] <= cp < RANGE_STARTS[i + 1]",
        "(the last range runs to 0x10FFFF): L a letter (\\\\p{L}), N a number (\\\\p{N}), O anything else.",
        "WHITESPACE is llama.cpp's list of white space, which takes precedence over the class.",
        '"""',
        "",
        "from typing import Final",
        "",
        "# fmt: off",
        "RANGE_STARTS: Final[tuple[int, ...]] = (",
    ]
    for i in range(0, len(starts), 10):
        lines.append("    " + " ".join(f"0x{s:05X}," for s in starts[i : i + 10]))
    lines.append(")")
    lines.append("RANGE_CLASSES: Final = (")
    for i in range(0, len(classes), 80):
        lines.append(f'    "{classes[i : i + 80]}"')
    lines.append(")")
    lines.append("WHITESPACE: Final = frozenset((")
    for i in range(0, len(whitespace), 10):
        lines.append("    " + " ".join(f"0x{w:04X}," for w in whitespace[i : i + 10]))
    lines.append("))")
    lines.append("# fmt: on")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} path/to/llama.cpp/src/unicode-data.cpp > _unicode_classes.py")
    sys.stdout.write(module_text(Path(sys.argv[1]).read_text(encoding="utf-8")))
