"""Duration strings of the rule files ("1h", "90m", "1h30m", "2d", "45s") and their inverse."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m"-style text (units d, h, m, s in that order, whole numbers); raises ValueError."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"bad duration {text!r}: write e.g. 45s, 10m, 1h, 1h30m, 2d")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    return timedelta(days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0),
                     seconds=parts.get("s", 0))


def format_duration(value: timedelta) -> str:
    """The shortest text that parse_duration reads back as ``value`` (whole seconds)."""
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
