"""Running configurations: secrets masked, volatile lines dropped, kept per device, changes as diffs.

A masked secret becomes ``<secret:xxxxxxxx>``, a keyed digest (HMAC with a key kept beside the stored
configurations): a changed password still shows as a changed line, yet neither the stored copy, the diff
nor the event holds the secret, and without the key the digest cannot be tested against guesses.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weibao.core.files import write_atomic

_KEY_FILE = ".mask-key"

# (pattern, group holding the secret); applied in order to every line
_SECRET_PATTERNS: list[re.Pattern[str]] = [
    # Huawei / H3C: "password cipher X", "irreversible-cipher X", "shared-key cipher X", "simple X", "hash X"
    re.compile(r"\b(?:irreversible-cipher|cipher|simple)\s+(?P<s>\S+)"),
    re.compile(r"\bpassword\s+hash\s+(?P<s>\S+)"),
    # Huawei / H3C SNMP communities, with or without cipher/simple
    re.compile(r"^\s*snmp-agent\s+community\s+(?:read|write|complexity\S*)\s+(?:cipher\s+|simple\s+)?(?P<s>\S+)"),
    # Cisco / Ruijie SNMP communities
    re.compile(r"^\s*snmp-server\s+community\s+(?:\d\s+)?(?P<s>\S+)"),
    # SNMPv3 user keys (Cisco: "auth sha X priv aes 128 Y")
    re.compile(r"\bauth\s+(?:md5|sha\S*)\s+(?P<s>\S+)"),
    re.compile(r"\bpriv\s+(?:3des|des|aes(?:\s+\d+)?)\s+(?P<s>\S+)"),
    # password / secret / key-string / shared keys, optionally preceded by an encryption type digit
    re.compile(
        r"\b(?:password|secret|key-string|shared-key|pre-shared-key|authentication-key|md5|wpa-psk\s+ascii)"
        r"(?>(?:\s+(?:\d{1,2}|sha256|scrypt))?)\s+(?!(?:cipher|simple|plain|irreversible-cipher|hash)\b)(?P<s>\S+)"
    ),
    # public keys written inline
    re.compile(r"\b(?:ssh-rsa|ssh-ed25519|ssh-dss|ecdsa-sha2-\S+)\s+(?P<s>[A-Za-z0-9+/=]{16,})"),
]
# TACACS+/RADIUS/ISAKMP keys ("tacacs-server key 7 X", "key 7 X", "crypto isakmp key X address ...");
# only on lines of these kinds, since elsewhere "key" is a plain word ("key chain NAME")
_KEY_VALUE = re.compile(r"(?<![-\w])key\s+(?:\d\s+)?(?!(?:cipher|simple|hash)\b)(?P<s>\S+)")
_KEY_LINE = re.compile(r"^\s*(?:tacacs-server|radius-server|crypto\s+isakmp\s+key|server-private|key\s+\d\s)")
_BLOB_LINE = re.compile(r"^\s*(?:[0-9A-Fa-f]{8}\s*){2,}$")
_BLOCK_START = re.compile(r"^\s*(?:certificate\b|public-key-code\s+begin|.*-----BEGIN )")
_BLOCK_END = re.compile(r"^\s*(?:quit|public-key-code\s+end|.*-----END )")

# lines that change without anyone changing the configuration
_VOLATILE = re.compile(
    r"^\s*(?:"
    r"!\s*Time:|!\s*Last configuration (?:change|was)|!\s*NVRAM config last updated|!\s*No configuration change"
    r"|Building configuration|Current configuration\s*:|ntp clock-period"
    r"|!\s*Last configuration was (?:updated|saved)"
    r")",
    re.IGNORECASE,
)


class Masker:
    """Replaces secrets by keyed digests; one key per configuration directory."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def in_dir(cls, directory: Path) -> Masker:
        path = directory / _KEY_FILE
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
            return cls(key)

    def token(self, secret: str) -> str:
        return "<secret:" + hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()[:8] + ">"

    def mask_line(self, line: str) -> str:
        for pattern in _SECRET_PATTERNS:
            line = _sub(pattern, line, self.token)
        if _KEY_LINE.match(line):
            line = _sub(_KEY_VALUE, line, self.token)
        return line

    def mask(self, text: str) -> str:
        out: list[str] = []
        in_block = False
        for line in text.splitlines():
            if in_block:
                if _BLOCK_END.match(line):
                    in_block = False
                elif _BLOB_LINE.match(line) or line.strip():
                    out.append(_indent(line) + self.token(line.strip()))
                    continue
            elif _BLOCK_START.match(line):
                in_block = True
            out.append(self.mask_line(line))
        return "\n".join(out)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _sub(pattern: re.Pattern[str], line: str, token: Callable[[str], str]) -> str:
    def repl(m: re.Match[str]) -> str:
        value = m.group("s")
        if value.startswith("<secret:"):
            return m.group(0)
        start, end = m.span("s")
        base = m.start()
        whole = m.group(0)
        return whole[: start - base] + token(value) + whole[end - base :]

    return pattern.sub(repl, line)


def normalize(text: str) -> str:
    """Drop volatile lines, trailing blanks and carriage returns; the form that is stored and compared."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept = [ln for ln in lines if not _VOLATILE.match(ln)]
    while kept and not kept[0]:
        kept.pop(0)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n"


@dataclass(frozen=True, slots=True)
class ConfigChange:
    diff: str
    added: int
    removed: int


class ConfigStore:
    """One masked configuration file per device in a private directory (0700, files 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self.masker = Masker.in_dir(self.directory)

    def path(self, device: str) -> Path:
        return self.directory / f"{device}.cfg"

    def prepare(self, raw: str) -> str:
        return normalize(self.masker.mask(raw))

    def update(self, device: str, raw: str) -> tuple[str, ConfigChange | None]:
        """Store the new configuration; returns it (masked) and the change from the previous one, if any.

        The first configuration of a device is a baseline: stored, no change reported.
        """
        new = self.prepare(raw)
        path = self.path(device)
        try:
            old: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        if old == new:
            return new, None
        self._write(path, new)
        if old is None:
            return new, None
        diff_lines = list(
            difflib.unified_diff(
                old.splitlines(), new.splitlines(), f"{device}/previous", f"{device}/current", lineterm=""
            )
        )
        added = sum(1 for ln in diff_lines if ln.startswith("+") and not ln.startswith("+++"))
        removed = sum(1 for ln in diff_lines if ln.startswith("-") and not ln.startswith("---"))
        return new, ConfigChange("\n".join(diff_lines) + "\n", added, removed)

    def _write(self, path: Path, text: str) -> None:
        write_atomic(path, text)
