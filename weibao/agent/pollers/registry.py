"""The polling protocols the agent knows: one ``PollerSpec`` each, registered in ``POLLERS``.

The runner, the scheduler and the ``weibao poll --protocol`` choices iterate this registry, so a new
protocol is its own package under ``pollers/`` (its poller and settings) plus one line below. The inventory
finds a device's settings for a protocol in the device field of the protocol's name (``device.snmp``), and
its schedule in the ``Schedule`` field the spec names (``schedule.snmp_s``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from weibao.agent.inventory import Device, Schedule
from weibao.agent.state import StateStore
from weibao.core.model import PollResult

# a run of one protocol may take at least this long when its schedule is once a day (SSH: many devices in turn)
DAILY_RUN_DEADLINE_S = 1800.0


class Poller(Protocol):
    """Polls many devices with one protocol; a device that fails is a result with an error, never a raise."""

    async def poll_many(self, devices: Sequence[Device]) -> list[PollResult]: ...

    def close(self) -> None: ...


# (the per-device memory, the folder for kept configurations) -> a poller for one round
PollerFactory = Callable[[StateStore, Path | None], Poller]


@dataclass(frozen=True, slots=True)
class PollerSpec:
    """One protocol: its name (the inventory field and the ``<name>.up`` metric), when it runs, its poller."""

    name: str
    schedule_key: str          # the ``Schedule`` field: seconds between runs, or a daily time of day
    factory: PollerFactory     # imports its poller lazily: a protocol not used costs nothing at start

    def polls(self, device: Device) -> bool:
        """Whether the device has settings for this protocol (``device.<name>`` is set)."""
        return getattr(device, self.name, None) is not None

    def when(self, schedule: Schedule) -> float | time:
        value: float | time = getattr(schedule, self.schedule_key)
        return value

    def deadline_s(self, schedule: Schedule) -> float:
        """The overall deadline of one run (on top of the per-device timeouts)."""
        if isinstance(self.when(schedule), time):
            return max(DAILY_RUN_DEADLINE_S, schedule.timeout_s)
        return schedule.timeout_s


def _icmp(_state: StateStore, _configs: Path | None) -> Poller:
    from weibao.agent.pollers.icmp import IcmpPoller

    return IcmpPoller()


def _snmp(state: StateStore, _configs: Path | None) -> Poller:
    from weibao.agent.pollers.snmp import SnmpPoller

    return SnmpPoller(state)


def _ssh(state: StateStore, configs: Path | None) -> Poller:
    from weibao.agent.pollers.ssh import SshPoller

    return SshPoller(state, configs)


POLLERS: Mapping[str, PollerSpec] = MappingProxyType({spec.name: spec for spec in (
    PollerSpec("icmp", "icmp_s", _icmp),
    PollerSpec("snmp", "snmp_s", _snmp),
    PollerSpec("ssh", "ssh_at", _ssh),
)})
