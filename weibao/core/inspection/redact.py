"""Remove credentials from text that came from devices (config diffs, error messages, facts) before it is shown.

Two nets: every known credential value (the caller passes them in: the agent takes them from its
inventory) is replaced wherever it appears, and the value after a secret-bearing keyword of a device
configuration (``snmp-server community X``, ``password cipher X``, ``enable secret 5 X``...) is replaced
even when nobody knows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "******"
# shorter values are too likely to be ordinary words; SNMPv3 keys are >= 8 by the RFC
MIN_SECRET_LEN = 4

# a secret word, then any modifiers (encryption type, algorithm, access), then the value to hide
_KEYWORD = re.compile(
    r"(?P<kw>\b(?:password|passwd|secret|community|key|auth|priv|cipher|psk|pre-shared-key|shared-key"
    r"|authentication-key|auth-key|priv-key|encrypted-password)"
    r"(?:\s+(?:\d{1,3}|cipher|simple|plain|hidden|encrypted|irreversible-cipher|sha|sha-?256|sha-?512|md5"
    r"|aes|aes-?128|aes-?256|des|3des|read|write|ro|rw))*\s+)(?P<val>\S+)",
    re.IGNORECASE,
)


class Redactor:
    """Replaces known secrets and configuration secret values with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first: one secret may contain another
        known = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._known = re.compile("|".join(re.escape(s) for s in known)) if known else None

    def known(self, text: str) -> str:
        """Only the inventory's credential values: for our own messages, where keywords are ordinary words."""
        return text if self._known is None else self._known.sub(MASK, text)

    def config(self, text: str) -> str:
        """Credential values and the values after secret keywords: for configurations and device output."""
        return "\n".join(self._line(line) for line in self.known(text).split("\n"))

    @staticmethod
    def _line(line: str) -> str:
        return _KEYWORD.sub(lambda m: m["kw"] + (m["val"] if m["val"] == MASK else MASK), line)
