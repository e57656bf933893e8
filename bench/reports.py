"""Report benchmark: a monthly report of N devices and 2 tickets per device, built and rendered; one command:

    .venv/bin/python bench/reports.py [--devices 100,300,1000] [--skip-pdf]

For each size a fresh state store (SQLite, as the collector lays it out) is seeded with a month
(October 2026) of ``up`` samples every 5 minutes per device (raw samples, some outages and gaps), hourly
CPU and memory rollups, and 2 tickets per device with their events. Then, timed separately: the JSON
document (``Builder``: reading and classifying a month of samples, tickets and clocks), HTML, PDF
(WeasyPrint) and XLSX (openpyxl). References measured in the same run, for ratios:

- reading: one SQL scan of the same month of raw ``up`` rows (what any report must at least read);
- PDF: WeasyPrint rendering a one-page table of the same look, per page;
- XLSX: openpyxl writing the same number of cells with no formatting.

The aim (issue 9): HTML, PDF and XLSX of 1,000 devices and 2,000 tickets within 60 s in all on the
2-core machine. Fails loudly when a document lacks a device or a ticket, or a file is empty.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import markdown_table  # noqa: E402
from weibao.collector.config import ContractConfig  # noqa: E402
from weibao.collector.engine.setup import load_files  # noqa: E402
from weibao.collector.reports.build import Builder, Sources  # noqa: E402
from weibao.collector.reports.store import ReportStore  # noqa: E402
from weibao.collector.state.db import create_state_engine, migrate  # noqa: E402
from weibao.collector.storage.sqlite import SqliteSampleStore  # noqa: E402
from weibao.collector.tickets import machine  # noqa: E402
from weibao.collector.tickets.store import TicketStore  # noqa: E402

CST = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=CST)
END = datetime(2026, 11, 1, tzinfo=CST)
STEP_MS = 300_000
CATEGORIES = ("business", "realtime", "mis", "processing", "backbone", "provincial")


def seed(path: Path, devices: int, seed_value: int = 7) -> None:
    """Devices, a month of raw ``up`` every 5 min, hourly CPU / memory rollups, 2 tickets per device."""
    rnd = random.Random(seed_value)
    engine = create_state_engine(f"sqlite:///{path}")
    migrate(engine)
    SqliteSampleStore(path, shared=True).close()
    names = [f"dev-{i:04d}" for i in range(devices)]
    conn = sqlite3.connect(path)
    now_ms = int(time.time() * 1000)
    conn.executemany(
        "INSERT INTO devices (name, site, agent, kind, category, depends_on, tags, asset, spec, active,"
        " registered_ms, updated_ms) VALUES (?, 'bench', 'bench-agent', ?, ?, NULL, '[]', '{}', ?, 1, ?, ?)",
        [(n, "switch", CATEGORIES[i % len(CATEGORIES)],
          json.dumps({"name": n, "snmp": {}, "schedule": {"snmp_s": 300}}), now_ms, now_ms)
         for i, n in enumerate(names)])
    start_ms, end_ms = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    for i, n in enumerate(names):
        conn.execute("INSERT INTO ts_series (id, device, metric, labels) VALUES (?, ?, 'up', '{}')", (i + 1, n))
    outages: dict[int, list[tuple[int, int]]] = {}
    gaps: dict[int, tuple[int, int]] = {}
    for i in range(devices):
        spans = []
        for _ in range(rnd.randint(0, 3)):
            a = start_ms + rnd.randrange(0, end_ms - start_ms - 4 * 3_600_000, STEP_MS)
            spans.append((a, a + STEP_MS * rnd.randint(1, 24)))
        outages[i] = spans
        if i % 20 == 0:
            a = start_ms + rnd.randrange(0, end_ms - start_ms - 8 * 3_600_000, STEP_MS)
            gaps[i] = (a, a + 4 * 3_600_000)

    def rows() -> Any:
        for ts in range(start_ms, end_ms, STEP_MS):
            for i in range(devices):
                g = gaps.get(i)
                if g is not None and g[0] <= ts < g[1]:
                    continue
                down = any(a <= ts < b for a, b in outages[i])
                yield ts, i + 1, 0.0 if down else 1.0

    conn.executemany("INSERT INTO ts_samples (ts_ms, series_id, value) VALUES (?, ?, ?)", rows())
    base = 10_000
    for metric_k, metric in enumerate(("cpu.util_pct", "mem.util_pct")):
        ids = range(base + metric_k * devices, base + (metric_k + 1) * devices)
        conn.executemany("INSERT INTO series (id, device, metric, labels) VALUES (?, ?, ?, '{}')",
                         [(sid, n, metric) for sid, n in zip(ids, names, strict=True)])
        conn.executemany(
            'INSERT INTO rollups (resolution, bucket_ms, series_id, "min", "max", "sum", "count", "last", last_ts_ms)'
            " VALUES (3600, ?, ?, ?, ?, ?, 12, ?, ?)",
            ((h, sid, v, v + 5, v * 12, v, h) for h in range(start_ms, end_ms, 3_600_000) for sid in ids
             for v in (float(rnd.randint(5, 90)),)))
    conn.commit()
    conn.close()
    store = TicketStore(engine)
    for i, n in enumerate(names):
        for k in range(2):
            opened = START + timedelta(minutes=rnd.randrange(0, 30 * 24 * 60))
            t = machine.open_ticket(ticket_id=f"{opened:%Y%m%d}-{i:04d}{k}", device=n, rule="down",
                                    level=rnd.choice((1, 2, 3, 3, 3)), at=opened, actor="system",
                                    episode=None).ticket
            if rnd.random() < 0.8:
                t = machine.accept(t, at=opened + timedelta(minutes=rnd.randint(1, 40)), actor="eng").ticket
                t = machine.restore(t, at=t.events[-1].at + timedelta(minutes=rnd.randint(5, 600))).ticket
                if rnd.random() < 0.7:
                    t = machine.report(t, at=t.events[-1].at + timedelta(minutes=30), actor="eng").ticket
            store.save(t)
    engine.dispose()


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def pdf_pages(data: bytes) -> int:
    """The page count as poppler's pdfinfo reads it."""
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(["pdfinfo", f.name], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("Pages:")))


def reference_read(path: Path) -> float:
    conn = sqlite3.connect(path)
    start_ms, end_ms = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    t0 = time.perf_counter()
    n = sum(1 for _ in conn.execute("SELECT ts_ms, series_id, value FROM ts_samples WHERE ts_ms >= ? AND ts_ms < ?"
                                    " ORDER BY ts_ms", (start_ms, end_ms)))
    conn.close()
    assert n > 0
    return time.perf_counter() - t0


def reference_pdf_page() -> float:
    """Seconds per page of a plain table in the same font (one or two pages)."""
    import weasyprint

    rows = "".join(f"<tr><td>dev-{i}</td><td>99.9%</td><td>1:00:00</td></tr>" for i in range(30))
    html = (f'<html><head><meta charset="utf-8"><style>@page {{ size: A4 landscape; }} body {{ font-family: '
            f'"WenQuanYi Micro Hei"; }}</style></head><body><h1>设备可用率</h1><table>{rows}</table></body></html>')
    weasyprint.HTML(string=html).write_pdf()  # warm: fonts
    t0 = time.perf_counter()
    data = weasyprint.HTML(string=html).write_pdf()
    took = time.perf_counter() - t0
    return took / pdf_pages(data)


def reference_xlsx(cells: int) -> float:
    from openpyxl import Workbook

    t0 = time.perf_counter()
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    row = [1.0] * 10
    for _ in range(max(1, cells // 10)):
        ws.append(row)
    wb.save(io.BytesIO())
    return time.perf_counter() - t0


def run_size(devices: int, skip_pdf: bool) -> dict[str, Any]:
    from weibao.collector.reports.html import render_html
    from weibao.collector.reports.pdf import html_to_pdf
    from weibao.collector.reports.xlsx import render_xlsx

    with tempfile.TemporaryDirectory(prefix="weibao-bench-reports-") as tmp:
        path = Path(tmp) / "state.db"
        _, seed_s = timed(lambda: seed(path, devices))
        engine = create_state_engine(f"sqlite:///{path}")
        files = load_files(ContractConfig())
        samples = SqliteSampleStore(path, shared=True)
        src = Sources(engine=engine, samples=samples, tickets=TicketStore(engine),
                      reports=ReportStore(engine, Path(tmp)), rules=files.rules, calendar=files.calendar)
        doc, build_s = timed(lambda: Builder(src).build("monthly", "2026-10", now=datetime.now(CST)))
        if len(doc["devices"]) != devices or len(doc["tickets"]["items"]) != 2 * devices:
            raise SystemExit(f"incomplete document: {len(doc['devices'])} devices, "
                             f"{len(doc['tickets']['items'])} tickets")
        html, html_s = timed(lambda: render_html(doc, "zh"))
        if html.count("<tr>") < devices + 2 * devices:
            raise SystemExit("the HTML lacks rows")
        pdf_s, pages = float("nan"), 0
        if not skip_pdf:
            pdf, pdf_s = timed(lambda: html_to_pdf(render_html(doc, "zh", for_print=True)))
            pages = pdf_pages(pdf)
            if pages < 2:
                raise SystemExit("the PDF is empty")
        xlsx, xlsx_s = timed(lambda: render_xlsx(doc, "zh"))
        if len(xlsx) < 1000:
            raise SystemExit("the XLSX is empty")
        read_s = reference_read(path)
        cells = devices * 10 + 2 * devices * 10
        samples.close()
        engine.dispose()
    return {"devices": devices, "seed_s": seed_s, "build_s": build_s, "read_s": read_s, "html_s": html_s,
            "pdf_s": pdf_s, "pages": pages, "xlsx_s": xlsx_s, "xlsx_ref_s": reference_xlsx(cells)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", default="100,300,1000", help="comma-separated sizes (default: %(default)s)")
    ap.add_argument("--skip-pdf", action="store_true")
    args = ap.parse_args()
    sizes = [int(x) for x in args.devices.split(",") if x.strip()]
    page_s = float("nan") if args.skip_pdf else reference_pdf_page()
    results = [run_size(n, args.skip_pdf) for n in sizes]
    rows = []
    for r in results:
        total = r["html_s"] + r["pdf_s"] + r["xlsx_s"]
        rows.append([str(r["devices"]), str(2 * r["devices"]), f"{r['build_s']:.1f}", f"{r['read_s']:.2f}",
                     f"{r['build_s'] / r['read_s']:.1f}", f"{r['html_s']:.2f}", f"{r['pdf_s']:.1f}", str(r["pages"]),
                     f"{r['pdf_s'] / max(1, r['pages']) / page_s:.2f}", f"{r['xlsx_s']:.2f}",
                     f"{r['xlsx_s'] / r['xlsx_ref_s']:.1f}", f"{total:.1f}", f"{total + r['build_s']:.1f}"])
    print("## Monthly report (October 2026, 5-minute samples, 2 tickets per device)\n")
    print(markdown_table(["devices", "tickets", "JSON build s", "raw read s (ref)", "build / read", "HTML s",
                          "PDF s", "pages", "PDF s per page / ref page", "XLSX s", "XLSX / plain openpyxl",
                          "HTML+PDF+XLSX s", "with build s"], rows))
    print(f"\nreference: WeasyPrint one-page table {page_s:.2f} s; aim: HTML+PDF+XLSX of 1,000 devices <= 60 s")
    if len(results) > 1:
        a, b = results[0], results[-1]
        k = b["devices"] / a["devices"]
        growth = [f"{name} x{b[key] / a[key]:.1f}" for name, key in (("build", "build_s"), ("HTML", "html_s"),
                                                                     ("PDF", "pdf_s"), ("XLSX", "xlsx_s"))]
        print(f"growth from {a['devices']} to {b['devices']} devices (x{k:.0f}): {', '.join(growth)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
