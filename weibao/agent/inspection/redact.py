"""The credential values of the inventory, for the inspection's redactor (which lives in the core)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr

from weibao.agent.inventory.model import Device
from weibao.core.inspection.redact import MASK, MIN_SECRET_LEN, Redactor

__all__ = ["MASK", "MIN_SECRET_LEN", "Redactor", "secrets_of"]


def secrets_of(devices: Iterable[Device]) -> frozenset[str]:
    """Every credential value the inventory holds for these devices."""
    out: set[str] = set()
    for dev in devices:
        creds: list[object] = []
        if dev.snmp is not None:
            creds.append(dev.snmp.credential)
        if dev.ssh is not None:
            creds.append(dev.ssh.credential)
        for cred in creds:
            for value in vars(cred).values():
                if isinstance(value, SecretStr):
                    out.add(value.get_secret_value())
    return frozenset(out)
