"""Shared helpers of the benchmarks: CPU and memory of a process from /proc, loopback addresses, tables,
and the refusal to print a ratio over work that was not all done."""

from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def loopback_addresses(n: int) -> list[str]:
    """``n`` distinct addresses 127.1.x.y (y in 1..250): one loopback peer bound to all of them is n devices."""
    if not 0 <= n <= 250 * 256:
        raise ValueError("at most 64,000 loopback addresses")
    return [f"127.1.{i // 250}.{1 + i % 250}" for i in range(n)]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_cpu() -> float:
    """CPU seconds (user + system) this process used so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (all its threads' children)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int, *, tree: bool = False) -> float:
    """CPU seconds (utime + stime) of a live process, with ``tree`` its live descendants too."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    if tree:
        total += sum(cpu_seconds(c, tree=True) for c in children(pid))
    return total


@dataclass(frozen=True)
class Memory:
    """Resident memory in KiB: now (VmRSS) and the peak so far (VmHWM)."""

    rss_kib: int
    hwm_kib: int

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.rss_kib + other.rss_kib, self.hwm_kib + other.hwm_kib)


def memory(pid: int, *, tree: bool = False) -> Memory:
    """VmRSS and VmHWM of a live process (summed over its live descendants with ``tree``)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return Memory(0, 0)
    vals = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
            if line.startswith(("VmRSS:", "VmHWM:"))}
    mem = Memory(vals.get("VmRSS", 0), vals.get("VmHWM", 0))
    if tree:
        for c in children(pid):
            mem = mem + memory(c, tree=True)
    return mem


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it lingers; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int] = (0,)) -> str:
    """A GitHub markdown table: the ``left`` columns (text) left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) if i in left else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join(("-" * (w + 2)) if i in left else ("-" * (w + 1) + ":")
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def require_complete(bench: str, problems: Sequence[str], *, shown: int = 12) -> None:
    """Stop the benchmark (exit status 1, the problems on standard error, nothing more on standard
    output) when ``problems`` names work that was not done: a rate over incomplete work is no rate."""
    if not problems:
        return
    lines = [f"  - {p}" for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more")
    raise SystemExit(f"{bench}: the work was not complete on both sides, so no ratio is printed:\n"
                     + "\n".join(lines))


def shortfall(label: str, total: int, missing: dict[str, list[str]], *, unit: str = "devices") -> str | None:
    """One line on what ``label`` left undone: ``missing`` maps each incomplete item (a device, a host)
    to what it lacked; None when nothing is missing."""
    if not missing:
        return None
    lacks = Counter(what for items in missing.values() for what in dict.fromkeys(items))
    common = ", ".join(f"{what} ({n})" for what, n in lacks.most_common(6))
    first, items = next(iter(missing.items()))
    return (f"{label}: {len(missing)} of {total} {unit} incomplete; most often missing: {common}; "
            f"e.g. {first}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}")
