"""What SNMP answers turn into on our side: OIDs as int tuples, values as int / str / Missing."""

from __future__ import annotations

from typing import ClassVar

from weibao.agent.errors import PollFailure

Oid = tuple[int, ...]


class Missing:
    """Placeholder for noSuchObject / noSuchInstance / endOfMibView: the agent has no value here."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Missing({self.kind})"


Value = int | str | Missing
VarBind = tuple[Oid, Value]


def parse_oid(text: str) -> Oid:
    return tuple(int(p) for p in text.strip(".").split("."))


def oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


class SnmpErrorStatus(PollFailure):
    """The agent answered with an error-status (noSuchName for v1, genErr, tooBig...)."""

    NAMES: ClassVar[dict[int, str]] = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr"}

    def __init__(self, status: int, index: int) -> None:
        self.status = status
        self.index = index  # 1-based varbind index, 0 when the agent did not say
        super().__init__(f"SNMP error-status {self.NAMES.get(status, status)} at varbind {index}")
