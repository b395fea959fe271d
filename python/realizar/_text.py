"""Text from a file on its way to a terminal: control characters escaped, long strings shortened.

A GGUF file is untrusted input, and its metadata strings and tensor names reach the terminal
through ``realizar info``, error messages and progress bars. A terminal acts on control characters
(ESC starts sequences that clear the screen or retitle the window, CR returns to the start of the
line and lets a value overwrite its row), so every C0 control character, DEL and every C1 control
character is shown as an escape (``\\x1b``, ``\\r``, ``\\n``) instead (CWE-150).
"""

from __future__ import annotations

import re
from typing import Final

_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1) written as an escape sequence."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def shorten(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters, ending in ``...`` if it was cut."""
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."
