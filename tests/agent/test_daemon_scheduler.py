"""The agent's scheduler: grouping by interval, skipped (never stacked) runs, run deadlines, daily jobs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from datetime import time as dtime

from weibao.agent.inventory.model import Device, IcmpSettings, Schedule
from weibao.agent.scheduler import Job, Scheduler, plan_jobs
from weibao.core.inventory import Category, Kind
from weibao.core.model import Protocol


def device(name: str, icmp_s: float = 10.0, ssh_at: dtime = dtime(2, 0)) -> Device:
    return Device(name=name, address="127.0.0.1", kind=Kind.SWITCH, category=Category.BUSINESS,
                  icmp=IcmpSettings(), schedule=Schedule(icmp_s=icmp_s, ssh_at=ssh_at))


def test_devices_with_the_same_interval_share_one_job() -> None:
    jobs = plan_jobs([device("a"), device("b"), device("c", icmp_s=30), device("d")])
    icmp = {j.every_s: j.devices for j in jobs if j.protocol == Protocol.ICMP}
    assert icmp == {10.0: ("a", "b", "d"), 30.0: ("c",)}
    assert all(j.protocol == Protocol.ICMP for j in jobs)  # no SNMP or SSH settings: no such jobs


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


def test_at_most_max_parallel_runs_poll_at_once() -> None:
    running = 0
    peak = 0
    done: list[str] = []

    async def slow(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.5)
        finally:
            running -= 1
        done.append(job.name)

    jobs = [Job(f"icmp-{i}", Protocol.ICMP, (f"d{i}",), every_s=60, deadline_s=10) for i in range(5)]
    # five runs due at once, two slots: three waves of 0.5 s
    sched = run_for(1.9, jobs, slow)
    assert peak == 2
    assert sorted(done) == sorted(j.name for j in jobs)
    assert all(s.runs == 1 and s.timeouts == 0 and s.failures == 0 for s in sched.stats().values())


def stop_then_drain(run_s: float, stop_at_s: float, drain_s: float) -> tuple[int, list[str], Scheduler, float]:
    """One run of ``run_s`` seconds, stop requested ``stop_at_s`` into it, then ``drain(drain_s)``."""
    stored: list[str] = []

    async def poll_and_store(job: Job) -> None:
        await asyncio.sleep(run_s)
        stored.append(job.name)

    async def scenario() -> tuple[int, Scheduler, float]:
        sched = Scheduler(poll_and_store, max_parallel=2)
        sched.set_jobs([Job("icmp/60s", Protocol.ICMP, ("a",), every_s=60, deadline_s=10)])
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        await asyncio.sleep(stop_at_s)
        stop.set()
        await task
        assert stored == []  # still polling when the stop came
        loop = asyncio.get_running_loop()
        started = loop.time()
        cancelled = await sched.drain(drain_s)
        return cancelled, sched, loop.time() - started

    cancelled, sched, took = asyncio.run(scenario())
    return cancelled, stored, sched, took


def test_drain_lets_a_running_run_finish_and_store() -> None:
    cancelled, stored, sched, took = stop_then_drain(run_s=0.8, stop_at_s=0.3, drain_s=2.0)
    assert cancelled == 0
    assert stored == ["icmp/60s"]
    st = sched.stats()["icmp/60s"]
    assert st.runs == 1 and st.failures == 0 and st.timeouts == 0
    assert 0.2 < took < 1.0  # waited for the run (about 0.5 s left), not for the whole deadline
    assert sched.running() == []


def test_drain_past_its_deadline_cancels_and_reports_the_count() -> None:
    cancelled, stored, sched, took = stop_then_drain(run_s=0.8, stop_at_s=0.1, drain_s=0.2)
    assert cancelled == 1
    assert stored == []
    st = sched.stats()["icmp/60s"]
    assert st.runs == 0 and st.failures == 1
    assert took < 0.6  # the run was cut at the deadline, not waited for
    assert sched.running() == []
