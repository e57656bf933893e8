"""The wheel is the product: built from a copy of this checkout, installed into a fresh venv outside it, it
carries every file weibao reads at run time, installs nothing but ``weibao``, and its ``weibao init``
skeleton passes both checks, with the rules found inside the installed package; a short ``weibao demo``
runs from it.

Build and install reach PyPI for setuptools and the dependencies (pip's cache makes a second run quick).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.collector import REPO
from weibao.embedded.simlab import data_roots

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DEBIAN_PYTHON = Path("/usr/bin/python3")
# what a build from a checkout in use must not pick up
_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", "out",
                                     "weibao-data", ".*_cache")


def run(cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_NOT_SOURCE)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(src)], cwd=work,
        timeout=300)
    (found,) = (work / "dist").glob("weibao-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("installed") / "venv"
    run([str(DEBIAN_PYTHON), "-m", "venv", str(where)], cwd=where.parent, timeout=120)
    run([str(where / "bin" / "pip"), "install", "-q", str(wheel)], cwd=where.parent, timeout=420)
    yield where


def clean_env() -> dict[str, str]:
    """The environment without anything that would lead the installed copy back to this checkout."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "WEIBAO_RULES", "WEIBAO_DATA", "VIRTUAL_ENV")}


def test_the_wheel_carries_every_run_time_file_under_the_product_name(wheel: Path) -> None:
    package = REPO / "weibao"
    expected = {f"weibao/{p.relative_to(package).as_posix()}" for p in package.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        top_level = z.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
    assert expected - names == set()  # python modules, rules, profiles, calendar data, templates, units ...
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"weibao"}
    assert top_level == ["weibao"]
    for needed in ("weibao/rules/contract.yaml", "weibao/agent/profiles/if_mib.yaml",
                   "weibao/collector/contract/calendar_data/cn-holidays.yaml",
                   "weibao/core/inspection/templates/report.html.j2",
                   "weibao/collector/reports/templates/report.html.j2",
                   "weibao/packaging/systemd/weibao-collector.service",
                   "weibao/collector/state/migrations/versions/0002_tickets.py"):
        assert needed in names


def test_the_installed_skeleton_passes_both_checks(venv: Path, tmp_path: Path) -> None:
    weibao = str(venv / "bin" / "weibao")
    env = clean_env()
    where = run([str(venv / "bin" / "python"), "-c", "import weibao.core.packaged as p; print(p.PACKAGED_RULES)"],
                cwd=tmp_path, timeout=60, env=env).stdout.strip()
    rules = Path(where)
    assert rules.is_relative_to(venv) and not rules.is_relative_to(REPO)
    run([weibao, "init", "etc", "--data", str(tmp_path / "data"), "--site", "示例单位"], cwd=tmp_path, timeout=60,
        env=env)
    check = run([weibao, "check", "--inventory", "etc/inventory.yaml", "--rules", str(rules)], cwd=tmp_path,
                timeout=120, env=env)
    assert check.stdout.startswith("ok: etc/inventory.yaml")
    collector = run([weibao, "collector", "--check", "--config", "etc/collector.yaml"], cwd=tmp_path, timeout=120,
                    env=env)
    assert f"{rules}/contract.yaml" in collector.stdout  # no rules named: the package's own
    units = run([weibao, "units", "print", "agent"], cwd=tmp_path, timeout=60, env=env).stdout
    assert f"ExecStart={weibao} agent " in units


def test_a_short_demo_runs_from_the_installed_copy(venv: Path, tmp_path: Path) -> None:
    if not data_roots():
        pytest.fail("snmpsim-data is not installed (./dev setup installs it)")
    proc = run([str(venv / "bin" / "weibao"), "demo", "--out", str(tmp_path / "demo"), "--lang", "en"],
               cwd=tmp_path, timeout=240, env=clean_env(), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted((tmp_path / "demo").glob("inspection-*.html"))
    assert re.search(r"\bdist-sw-2\s+down\s+3\s", proc.stdout), proc.stdout
