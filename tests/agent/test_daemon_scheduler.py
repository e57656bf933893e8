"""The agent's scheduler: grouping by interval, skipped (never stacked) runs, run deadlines, daily jobs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from datetime import time as dtime

from agent.inventory.model import Category, Device, IcmpSettings, Kind, Schedule
from agent.model import Protocol
from agent.scheduler import Job, Scheduler, plan_jobs


def device(name: str, icmp_s: float = 10.0, ssh_at: dtime = dtime(2, 0)) -> Device:
    return Device(name=name, address="127.0.0.1", kind=Kind.SWITCH, category=Category.BUSINESS,
                  icmp=IcmpSettings(), schedule=Schedule(icmp_s=icmp_s, ssh_at=ssh_at))


def test_devices_with_the_same_interval_share_one_job() -> None:
    jobs = plan_jobs([device("a"), device("b"), device("c", icmp_s=30), device("d")])
    icmp = {j.every_s: j.devices for j in jobs if j.protocol is Protocol.ICMP}
    assert icmp == {10.0: ("a", "b", "d"), 30.0: ("c",)}
    assert all(j.protocol is Protocol.ICMP for j in jobs)  # no SNMP or SSH settings: no such jobs


def run_for(seconds: float, jobs: list[Job], runner: object) -> Scheduler:
    async def scenario() -> Scheduler:
        sched = Scheduler(runner, max_parallel=2)  # type: ignore[arg-type]
        sched.set_jobs(jobs)
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task
        await sched.drain(2)
        return sched

    return asyncio.run(scenario())


def test_a_run_still_going_is_skipped_not_stacked() -> None:
    running = 0
    most = 0

    async def slow(job: Job) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.55)
        running -= 1

    sched = run_for(2.0, [Job("icmp/0.2s", Protocol.ICMP, ("a",), every_s=0.2, deadline_s=5)], slow)
    st = sched.stats()["icmp/0.2s"]
    assert most == 1
    assert 3 <= st.runs <= 4
    assert st.skipped >= 5


def test_a_run_past_its_deadline_is_stopped_and_counted() -> None:
    async def hangs(job: Job) -> None:
        await asyncio.sleep(30)

    sched = run_for(1.0, [Job("snmp/5s", Protocol.SNMP, ("a",), every_s=5, deadline_s=0.3)], hangs)
    st = sched.stats()["snmp/5s"]
    assert st.timeouts == 1 and st.runs == 0


def test_daily_job_fires_at_its_wall_clock_time() -> None:
    fired: list[str] = []

    async def record(job: Job) -> None:
        fired.append(job.name)

    at = (datetime.now() + timedelta(seconds=1.2)).time().replace(microsecond=0)
    if at < (datetime.now() + timedelta(seconds=0.5)).time():  # too close to the second: next one
        at = (datetime.combine(datetime.now().date(), at) + timedelta(seconds=1)).time()
    run_for(2.6, [Job("ssh@now", Protocol.SSH, ("a",), at=at, deadline_s=5)], record)
    assert fired == ["ssh@now"]


def test_reload_keeps_the_rhythm_of_kept_jobs() -> None:
    calls: list[str] = []

    async def record(job: Job) -> None:
        calls.append(job.name)

    async def scenario() -> None:
        sched = Scheduler(record)
        sched.set_jobs([Job("a", Protocol.ICMP, ("x",), every_s=0.3)])
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        await asyncio.sleep(0.5)
        sched.set_jobs([Job("a", Protocol.ICMP, ("x", "y"), every_s=0.3), Job("b", Protocol.ICMP, ("z",),
                                                                               every_s=10)])
        await asyncio.sleep(0.5)
        stop.set()
        await task
        await sched.drain(1)

    asyncio.run(scenario())
    assert calls.count("b") == 1
    assert 3 <= calls.count("a") <= 4
