"""``weibao demo``: a simulated site on loopback, its daily inspection, then ``weibao run`` with faults.

1. snmpsim serves recordings of real devices (weibao.embedded.demo_site); the demo writes a real inventory and
   secrets file and runs the daily inspection exactly as ``weibao inspect`` does (HTML report).
2. The embedded agent + collector (weibao.embedded.runtime, what ``weibao run`` runs) polls the site fast
   (ICMP 2 s, SNMP 5 s) for a bounded time; the demo then stops the branch switch's simulator (its
   ``up`` goes to 0, the device behind it too) and sends an upsTrapOnBattery from the UPS, and prints the
   tickets the collector opened, with their contract deadlines.

Everything started here (simulators, trap receiver, API server) stops at the end, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import func, select

from weibao.agent.inventory import Inventory, load_inventory
from weibao.collector.config import CollectorConfig, ContractConfig
from weibao.core.errors import ConfigError
from weibao.core.model import utcnow
from weibao.core.packaged import PACKAGED_RULES
from weibao.core.text import printable
from weibao.core.timeutil import SHANGHAI
from weibao.embedded import demo_site as site
from weibao.embedded.runtime import AGENT_DIR, Embedded, EmbeddedConfig, api_help
from weibao.embedded.simlab import SimLabError

RULES = PACKAGED_RULES / "inspection.yaml"
WARMUP_S = 11.0           # two SNMP rounds before the faults
TICKET_WAIT_S = 60.0      # how long the demo waits for the tickets of the faults
PROGRESS_EVERY_S = 3.0
VIEWER = "weibao-demo"    # the engineer token the demo uses to read its own API (revoked at the end)
DEMO_USER = "demo-engineer"  # a console account made afresh for each demo run
DEFAULT_LISTEN = ("127.0.0.1", 8480)


def register(subparsers: Any) -> None:
    """Add the ``demo`` command to the ``weibao`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="simulated devices on loopback: inspection report, then weibao run with faults and tickets")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where the report and data go")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p.add_argument("--keep", action="store_true",
                   help="keep the simulated site and weibao run going until Ctrl-C (browse the API)")
    p.set_defaults(handler=run)


def _say(text: str = "") -> None:
    print("\n".join(printable(line) for line in text.split("\n")), flush=True)


def _listen() -> tuple[str, int]:
    """127.0.0.1:8480 when free, else any free port (a second demo or a real ``weibao run`` may hold it)."""
    with socket.socket() as s:
        try:
            s.bind(DEFAULT_LISTEN)
        except OSError:
            return DEFAULT_LISTEN[0], 0
    return DEFAULT_LISTEN


def _free_udp(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _fresh(data: Path) -> None:
    """The collector's and the live agent's files from an earlier demo (the inspection history stays)."""
    for name in ("state.db", "state.db-wal", "state.db-shm", "state.db-journal"):
        (data / name).unlink(missing_ok=True)
    for name in ("run", AGENT_DIR):
        shutil.rmtree(data / name, ignore_errors=True)


def _term_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so the simulators (own sessions, not our process group) are stopped."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    _term_as_interrupt()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    _say("starting simulated devices (snmpsim with recordings of real devices) ...")
    try:
        with contextlib.ExitStack() as stack:
            sims = site.start_sims(stack)
            soon = utcnow().date() + timedelta(days=45)
            inv_path = site.write_site(sims, out, warranty_soon=soon.isoformat())
            try:
                inventory = load_inventory(inv_path)
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 1
            _say(f"inventory: {inv_path}  ({len(inventory.devices)} devices on 127.0.0.x, communities in "
                 f"{out / 'secrets.yaml'})")
            report = _inspect(inventory, out, data, args.lang)
            if report is None:
                return 1
            _fresh(data)
            weekly: list[Path] = []
            code = asyncio.run(_live(inventory, inv_path, data, sims, keep=args.keep, out=out, lang=args.lang,
                                     weekly=weekly))
            _term_as_interrupt()  # the event loop put the default action back when it closed
            _say(f"\nreport:    {report.resolve()}")
            for path in weekly:
                _say(f"weekly:    {path.resolve()}")
            _say(f"inventory: {inv_path.resolve()}")
            _say(f"data:      {data.resolve()}  (collector state.db; agent spool in {AGENT_DIR}/)")
            _say(f"run it yourself (simulated devices stop with the demo; --keep keeps them):\n"
                 f"  weibao run --inventory {inv_path} --data {data} --traps 127.0.0.1:1162")
            return code
    except SimLabError as exc:
        print(f"cannot start the simulated devices: {exc}", file=sys.stderr)
        return 1


def _inspect(inventory: Inventory, out: Path, data: Path, lang: Literal["zh", "en"]) -> Path | None:
    from weibao.agent.commands.inspect import run_inspection
    from weibao.agent.inspection import load_inspection_rules

    try:
        rules = load_inspection_rules(RULES)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    _say("daily inspection: polling (ICMP, SNMP; interface rates need two readings 5 s apart) ...")
    inspection, path = run_inspection(inventory, rules, data=data, out=out, lang=lang, settle_s=5.0)
    s = inspection.summary
    _say(f"{s.checked} devices checked: {s.healthy} healthy, {s.with_findings} with findings, "
         f"{s.unreachable} unreachable; {len(inspection.findings)} findings")
    for f in sorted(inspection.findings, key=lambda f: (-f.severity.rank, f.device))[:12]:
        _say(f"  [{f.severity.value:8}] {f.device:16} {f.message.get(lang)}")
    _say(f"inspection report: {path.resolve()}")
    shelf = data / "reports"  # where the console's reports page finds it
    shelf.mkdir(parents=True, exist_ok=True, mode=0o750)
    shutil.copy2(path, shelf / path.name)
    return path


# --- live: weibao run with faults ------------------------------------------------------------------


def _demo_rules(out: Path) -> Path:
    """The shipped rules, with an upstream tolerance that fits the demo's 2-5 s probes (10 s, not 2 min): a
    dependent's own fault waits that long for its upstream's samples (README, arrival order)."""
    rules = out / "rules"
    rules.mkdir(exist_ok=True)
    for name in ("contract.yaml", "inspection.yaml"):
        text = (PACKAGED_RULES / name).read_text(encoding="utf-8")
        if name == "contract.yaml":
            text = re.sub(r"(?m)^(\s*upstream_tolerance:).*$", r"\1 10s", text)
        (rules / name).write_text(text, encoding="utf-8")
    return rules / "contract.yaml"


async def _live(inventory: Inventory, inv_path: Path, data: Path, sims: site.Sims, *, keep: bool, out: Path,
                lang: Literal["zh", "en"], weekly: list[Path]) -> int:
    trap_port = _free_udp("127.0.0.1")
    collector = CollectorConfig(data_dir=data, contract=ContractConfig(rules=_demo_rules(out)))
    emb = Embedded(EmbeddedConfig(inventory=inv_path, data=data, listen=_listen(), traps=("127.0.0.1", trap_port),
                                  drain_s=3.0, final_ship_s=3.0, backoff_max_s=5.0), inventory, collector=collector)
    _say(f"\nweibao run: agent and collector in this process, traps on 127.0.0.1:{trap_port} ...")
    running = asyncio.create_task(emb.run())
    ready = asyncio.create_task(emb.ready.wait())
    await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
    if not emb.ready.is_set():
        ready.cancel()
        return await running or 1
    _say(f"API: {emb.api_url}")
    password = await asyncio.to_thread(_demo_engineer, emb)
    _console(emb, password)
    script = asyncio.create_task(_script(emb, sims, trap_port))
    done, _ = await asyncio.wait([running, script], return_when=asyncio.FIRST_COMPLETED)
    if running in done:  # Ctrl-C or SIGTERM: the agent drained and the server stopped
        script.cancel()
        await asyncio.gather(script, return_exceptions=True)
        _say("interrupted: stopped")
        return 130
    tickets, engine = script.result()
    _print_tickets(tickets, engine)
    try:
        weekly += await asyncio.to_thread(_weekly_report, emb, out, lang)
    except Exception as exc:  # the demo goes on without it; the reason is shown
        _say(f"weekly report not written: {type(exc).__name__}: {exc}")
    for line in api_help(emb.api_url, data):
        _say(line)
    _console(emb, password)
    if keep:
        _say(f"\nthe site keeps running (API {emb.api_url}); Ctrl-C stops everything")
    else:
        emb.request_stop()
    code = await running
    _say("weibao run stopped: agent drained, spool shipped, API closed")
    return code


def _weekly_report(emb: Embedded, out: Path, lang: Literal["zh", "en"]) -> list[Path]:
    """This week's report of the demo site (HTML, PDF, XLSX, JSON), written next to the inspection report."""
    from weibao.collector.reports.periods import Kind, containing

    now = datetime.now(SHANGHAI)
    week = containing(Kind.WEEKLY, now)
    _say(f"\nweekly report {week.key}: built from what the collector stored ...")
    _doc, saved, _ = emb.ctx.reports.service.generate(Kind.WEEKLY, week.key, formats=["html", "pdf", "xlsx", "json"],
                                                      lang=lang, now=now)
    copies = []
    for f in saved.files:
        target = out / f.path.name
        shutil.copyfile(f.path, target)
        copies.append(target)
    return copies


async def _script(emb: Embedded, sims: site.Sims, trap_port: int) -> tuple[list[dict[str, Any]], bool]:
    started = time.monotonic()
    token = await asyncio.to_thread(_viewer_token, emb)
    try:
        async with httpx.AsyncClient(base_url=emb.api_url, timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            _say(f"polling every {site.ICMP_EVERY_S} s (ICMP) and {site.SNMP_EVERY_S} s (SNMP) ...")
            await _watch(emb, api, started, until=started + WARMUP_S, stop_when=None)
            _say(f"fault 1: the branch switch {site.BRANCH_SWITCH} stops answering (its simulator is stopped; "
                 f"{site.BRANCH_BEHIND} behind it goes dark too)")
            await asyncio.to_thread(sims.branch.stop)
            _say(f"fault 2: {site.UPS} sends upsTrapOnBattery (mains power lost)")
            site.send_trap(site.ups_on_battery_trap(sims.communities[site.UPS]), source=site.UPS_HOST,
                           dest=("127.0.0.1", trap_port))
            wanted = {site.BRANCH_SWITCH, site.BRANCH_BEHIND, site.UPS}  # nvr-2 as affected, not its own
            return await _watch(emb, api, started, until=time.monotonic() + TICKET_WAIT_S, stop_when=wanted)
    finally:
        await asyncio.to_thread(_revoke_viewer, emb)


async def _watch(emb: Embedded, api: httpx.AsyncClient, started: float, *, until: float,
                 stop_when: set[str] | None) -> tuple[list[dict[str, Any]], bool]:
    """Print progress until ``until``; with ``stop_when``, stop early once those devices hold tickets
    (or, without a ticket engine, once they are seen down)."""
    tickets: list[dict[str, Any]] = []
    engine = True
    while True:
        states, samples = await asyncio.to_thread(_store_view, emb)
        tickets, engine = await _tickets(emb, api)
        down = sorted(d["name"] for d in states if d["up"] is False)
        up = sum(1 for d in states if d["up"] is True)
        line = f"  +{time.monotonic() - started:3.0f} s  {samples:6d} samples stored, {up}/{len(states)} devices up"
        if down:
            line += f" (down: {', '.join(down)})"
        _say(line + (f", {len(tickets)} tickets" if engine else ""))
        if stop_when is not None:
            ticketed = {t.get("device") for t in tickets} | {a for t in tickets for a in t.get("affected", [])}
            if (stop_when <= ticketed) if engine else (site.BRANCH_SWITCH in down):
                return tickets, engine
        if time.monotonic() >= until:
            return tickets, engine
        await asyncio.sleep(min(PROGRESS_EVERY_S, max(0.1, until - time.monotonic())))


def _store_view(emb: Embedded) -> tuple[list[dict[str, Any]], int]:
    from weibao.collector.state.models import Batch

    with emb.ctx.engine.connect() as conn:
        samples = conn.execute(select(func.coalesce(func.sum(Batch.samples), 0))).scalar_one()
    return emb.ctx.registry.states(), int(samples)


async def _tickets(emb: Embedded, api: httpx.AsyncClient) -> tuple[list[dict[str, Any]], bool]:
    """The collector's tickets from its API; (store rows without clocks, False) when it serves none."""
    try:
        r = await api.get("/api/v1/tickets")
    except httpx.HTTPError:
        r = None
    if r is not None and r.is_success:
        body = r.json()
        found = body.get("tickets", []) if isinstance(body, dict) else body
        return [t for t in found if isinstance(t, dict)], True
    from weibao.collector.tickets.store import TicketStore
    from weibao.collector.tickets.views import ticket_json

    rows = await asyncio.to_thread(lambda: TicketStore(emb.ctx.engine).find(limit=50))
    return [ticket_json(t, with_events=False) for t in rows], bool(rows)


def _demo_engineer(emb: Embedded) -> str:
    """A demo engineer with a one-time password (to be changed at the first login), made for this run."""
    from weibao.collector.access.accounts import UserRole, add, generate_password

    password = generate_password()
    add(emb.ctx.engine, DEMO_USER, UserRole.ENGINEER, password, must_change=True)
    return password


def _console(emb: Embedded, password: str) -> None:
    _say(f"console: {emb.api_url}/  user {DEMO_USER}, one-time password {password} (set a new one at the first "
         "login)")


def _viewer_token(emb: Embedded) -> str:
    from weibao.collector.auth import Role, issue

    _revoke_viewer(emb)
    return issue(emb.ctx.engine, VIEWER, Role.ENGINEER)


def _revoke_viewer(emb: Embedded) -> None:
    from weibao.collector.auth import revoke
    from weibao.collector.errors import TokenError

    with contextlib.suppress(TokenError):
        revoke(emb.ctx.engine, VIEWER)


def _when(value: object) -> str:
    if not isinstance(value, str):
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%m-%d %H:%M")
    except ValueError:
        return value


def _print_tickets(tickets: list[dict[str, Any]], engine: bool) -> None:
    if not engine:
        _say("\nno tickets: this build has no contract engine turning faults into tickets yet "
             "(the faults are in the data: see `up` above and GET /api/v1/devices)")
        return
    _say(f"\ntickets ({len(tickets)}), deadlines in contract time (Asia/Shanghai):")
    _say(f"  {'id':<14} {'device':<16} {'rule':<16} {'level':>5}  {'state':<9} "
         f"{'response by':<12} {'restored by':<12} {'report by':<12}")
    for t in tickets:
        clocks = t.get("clocks") or {}

        def due(name: str, clocks: dict[str, Any] = clocks) -> str:
            return _when((clocks.get(name) or {}).get("deadline"))

        _say(f"  {t.get('id', '-')!s:<14} {t.get('device', '-')!s:<16} {t.get('rule', '-')!s:<16} "
             f"{t.get('level', '-')!s:>5}  {t.get('state', '-')!s:<9} {due('response'):<12} "
             f"{due('restoration'):<12} {due('report'):<12}")
        if t.get("affected"):
            _say(f"  {'':<14} affected (behind it): {', '.join(map(str, t['affected']))}")
