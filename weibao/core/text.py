"""Text for a terminal: control characters shown as escapes, never sent raw to an engineer's screen.

Whatever reaches a table printed by a command (device names, notes, reasons from the collector) may
have come from the network. ``printable`` turns every character a terminal could act on into a visible
escape: C0 and C1 controls and DEL (``\\x1b`` for ESC), line and paragraph separators, and the
bidirectional overrides that reorder what is shown (``\\u202e``). Everything else, Chinese included,
passes unchanged.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; the Unicode line/paragraph separators; bidi embeddings, overrides, isolates
# and marks; the zero-width joiners and the BOM, which hide text
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u200b-\u200d\ufeff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control character escaped (see the module docstring)."""
    return _UNSAFE.sub(_escape, str(value))


# what json.dumps(..., ensure_ascii=False) leaves raw: C0 controls it escapes itself (those left in its
# output are its own line breaks and indentation)
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u200b-\u200d\ufeff]")


def escape_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the characters of the module docstring as
    ``\\uXXXX`` escapes: still the same JSON, nothing raw for the terminal."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
