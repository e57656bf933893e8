"""``weibao units print|install``: the shipped systemd units, made to start this installation's weibao.

The units ship inside the package (``weibao/packaging/systemd``, with ``sysusers.d/weibao.conf`` for the
user they run as) and name ``/opt/weibao/bin/weibao``, the documented install location. Printed or
installed from here, they name the ``weibao`` script of the interpreter running this command instead
(a venv, pipx), and ``/etc/weibao`` may be moved with ``--etc``. Installing never overwrites a file that
differs unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weibao.core.files import write_atomic
from weibao.core.packaged import PACKAGE_ROOT, PACKAGED_UNITS

DOCUMENTED_EXEC = "/opt/weibao/bin/weibao"
DOCUMENTED_ETC = "/etc/weibao"


@dataclass(frozen=True)
class Unit:
    """One shipped file and where it is installed, relative to the root of the file system."""

    name: str
    source: Path
    target: Path


UNITS = (
    Unit("collector", PACKAGED_UNITS / "weibao-collector.service", Path("etc/systemd/system/weibao-collector.service")),
    Unit("agent", PACKAGED_UNITS / "weibao-agent.service", Path("etc/systemd/system/weibao-agent.service")),
    Unit("backup", PACKAGED_UNITS / "weibao-backup.service", Path("etc/systemd/system/weibao-backup.service")),
    Unit("backup-timer", PACKAGED_UNITS / "weibao-backup.timer", Path("etc/systemd/system/weibao-backup.timer")),
    Unit("sysusers", PACKAGE_ROOT / "packaging" / "sysusers.d" / "weibao.conf", Path("etc/sysusers.d/weibao.conf")),
)


class UnitsError(Exception):
    """The units cannot be rendered or installed; the message says why."""


def weibao_executable() -> Path:
    """The ``weibao`` script of this installation: beside the interpreter (venv, pipx), else on PATH."""
    beside = Path(sys.executable).parent / "weibao"
    if beside.is_file():
        return beside.absolute()
    found = shutil.which("weibao")
    if found is None:
        raise UnitsError("cannot find the weibao command of this installation (not beside "
                         f"{sys.executable} and not on PATH)")
    return Path(found).absolute()


def render(unit: Unit, *, executable: Path, etc: Path) -> str:
    """The unit's text with this installation's command and configuration directory."""
    text = unit.source.read_text(encoding="utf-8")
    text = text.replace(DOCUMENTED_EXEC, str(executable))
    if str(etc) != DOCUMENTED_ETC:
        text = re.sub(re.escape(DOCUMENTED_ETC) + r"(?=/|\s|$)", str(etc).rstrip("/"), text, flags=re.MULTILINE)
    return text


def _chosen(names: list[str]) -> list[Unit]:
    return [u for u in UNITS if not names or u.name in names]


def register(sub: Any) -> None:
    p = sub.add_parser("units", help="print or install the systemd units of this installation")
    usub = p.add_subparsers(dest="units_command", required=True, metavar="ACTION")
    names = [u.name for u in UNITS]
    pr = usub.add_parser("print", help="print the units (all, or the ones named)")
    pr.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(names)} (default: all)")
    pr.add_argument("--etc", type=Path, default=Path(DOCUMENTED_ETC), help="configuration directory (%(default)s)")
    pr.set_defaults(handler=run_print)
    ins = usub.add_parser("install", help="write the units to ROOT/etc/systemd/system and the user to "
                                          "ROOT/etc/sysusers.d")
    ins.add_argument("--root", type=Path, default=Path("/"), help="file system root (default: %(default)s)")
    ins.add_argument("--etc", type=Path, default=Path(DOCUMENTED_ETC), help="configuration directory (%(default)s)")
    ins.add_argument("--force", action="store_true", help="replace installed files that differ")
    ins.set_defaults(handler=run_install)


def run_print(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - {u.name for u in UNITS})
    if unknown:
        print(f"weibao units: no unit named {', '.join(unknown)} (one of {', '.join(u.name for u in UNITS)})",
              file=sys.stderr)
        return 2
    try:
        exe = weibao_executable()
    except UnitsError as exc:
        print(f"weibao units: {exc}", file=sys.stderr)
        return 2
    for i, unit in enumerate(_chosen(args.names)):
        if i:
            print()
        print(f"# --- /{unit.target}")
        print(render(unit, executable=exe, etc=args.etc), end="")
    return 0


def run_install(args: argparse.Namespace) -> int:
    try:
        exe = weibao_executable()
    except UnitsError as exc:
        print(f"weibao units: {exc}", file=sys.stderr)
        return 2
    planned = [(args.root / u.target, render(u, executable=exe, etc=args.etc)) for u in UNITS]
    differing = [path for path, text in planned if path.exists() and path.read_text(encoding="utf-8") != text]
    if differing and not args.force:
        for path in differing:
            print(f"weibao units: {path} exists and differs (--force replaces it)", file=sys.stderr)
        return 1
    for path, text in planned:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text, mode=0o644)
        print(f"wrote {path}")
    print("next: systemd-sysusers && systemctl daemon-reload && "
          "systemctl enable --now weibao-collector weibao-agent weibao-backup.timer")
    return 0
