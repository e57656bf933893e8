"""The recordings snmpsim-data ships (UPS, cameras, storage, servers, switches, routers, wireless
controllers, appliances, of many makers), polled twice by the SNMP poller: each one answers,
nothing crashes or times out, and every reading is one the collector takes (finite, within the wire's
bounds, percentages between 0 and 100, counters' rates never negative, label values printable).

Devices without the standard MIBs (a camera that speaks only its maker's MIB) give only ``snmp.up``: that
is what weibao knows of them, and no error.

By default the recordings below 1.5 MB as shipped (about 100 of 116: snmpsim indexes the 15 largest, of up
to 1.7 million OIDs, for minutes); ``WEIBAO_EVERY_RECORDING=1`` takes every one (about 5 minutes).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.snmpsim import device_for, running_snmpsim
from weibao.agent.pollers.snmp import SnmpPoller
from weibao.agent.state import StateStore
from weibao.core.model import PollResult
from weibao.core.wire import sample_json
from weibao.embedded.simlab import SnmpSim, data_roots

pytestmark = pytest.mark.timeout(900)


LARGE = 1_500_000  # bytes as shipped (compressed or not)


def every_recording() -> dict[str, str]:
    every = os.environ.get("WEIBAO_EVERY_RECORDING") == "1"
    found: dict[str, str] = {}
    for root in data_roots()[-1:]:
        for path in sorted(Path(root).rglob("*.snmprec*")):
            if every or path.stat().st_size < LARGE:
                found[f"rec{len(found)}"] = str(path.relative_to(root)).split(".snmprec")[0]
    return found


RECORDINGS = every_recording()


@pytest.fixture(scope="module")
def polled() -> Iterator[tuple[SnmpSim, list[PollResult], list[PollResult]]]:
    # indexing every recording (some are compressed and large) takes snmpsim a while at its start
    with running_snmpsim(RECORDINGS, start_timeout_s=600) as sim:
        async def run() -> tuple[list[PollResult], list[PollResult]]:
            poller = SnmpPoller(StateStore(), max_in_flight=8)
            try:
                devices = [device_for(sim, n, timeout_s=10) for n in RECORDINGS]
                first = await poller.poll_many(devices)
                await asyncio.sleep(2)  # a second round gives the counters' rates
                return first, await poller.poll_many(devices)
            finally:
                poller.close()

        first, second = asyncio.run(run())
        yield sim, first, second


def test_snmpsim_data_ships_many_recordings() -> None:
    assert len(RECORDINGS) >= 90, len(RECORDINGS)


def test_every_recording_answers_without_an_error(polled: tuple[SnmpSim, list[PollResult], list[PollResult]]) -> None:
    _, first, second = polled
    for results in (first, second):
        assert sorted(r.device for r in results) == sorted(RECORDINGS)
        errors = [(RECORDINGS[r.device], e.message[:200]) for r in results for e in r.errors]
        assert errors == []
        down = [RECORDINGS[r.device] for r in results
                if not any(s.metric == "snmp.up" and s.value == 1.0 for s in r.samples)]
        assert down == []


def test_every_reading_is_one_the_collector_takes(polled: tuple[SnmpSim, list[PollResult], list[PollResult]]) -> None:
    _, first, second = polled
    bad: list[str] = []
    for r in (*first, *second):
        rec = RECORDINGS[r.device]
        for s in r.samples:
            try:
                sample_json(s)
            except ValueError as exc:
                bad.append(f"{rec} {s.metric}: {exc}")
            if str(s.metric).endswith("_pct") and not 0 <= s.value <= 100:
                bad.append(f"{rec} {s.metric} {dict(s.labels)} = {s.value}")
            if str(s.metric).endswith(("_bps", "_ps")) and s.value < 0:
                bad.append(f"{rec} {s.metric} {dict(s.labels)} = {s.value}")
            bad += [f"{rec} {s.metric} {k}={v!r}" for k, v in s.labels.items() if not v.isprintable()]
    assert bad == []
    # and most of them say more than that they answer: interfaces, system, power or storage readings
    rich = [r for r in second if len({s.metric for s in r.samples}) > 2]
    assert len(rich) >= len(second) // 2, len(rich)
