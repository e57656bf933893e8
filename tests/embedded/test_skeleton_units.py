"""``weibao init`` writes a skeleton both checks accept and refuses to overwrite; ``weibao units`` renders the
shipped units for this installation, and systemd itself accepts them (``systemd-analyze verify``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.collector import weibao

UNIT_NAMES = ("weibao-collector.service", "weibao-agent.service", "weibao-backup.service", "weibao-backup.timer")


def test_init_skeleton_passes_both_checks(tmp_path: Path) -> None:
    site = tmp_path / "etc"
    out = weibao("init", str(site), "--data", str(tmp_path / "data"), "--site", "示例单位")
    assert "secrets.yaml (0600)" in out.stdout
    names = {p.name for p in site.iterdir()}
    assert names == {"inventory.yaml", "secrets.yaml", "collector.yaml", "notify.yaml", "calendar.yaml",
                     "maintenance.yaml", "agent.env"}
    assert (site / "secrets.yaml").stat().st_mode & 0o777 == 0o600
    for p in site.iterdir():
        assert p.stat().st_mode & 0o007 == 0, p  # nothing of the site for others
    assert "示例单位" in (site / "inventory.yaml").read_text(encoding="utf-8")

    check = weibao("check", "--inventory", str(site / "inventory.yaml"), check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    collector = weibao("collector", "--check", "--config", str(site / "collector.yaml"), check=False)
    assert collector.returncode == 0, collector.stdout + collector.stderr
    # every file the skeleton names was checked, by its absolute path
    for name in ("notify.yaml", "maintenance.yaml"):
        assert str(site / name) in collector.stdout
    assert "1 calendar file" in collector.stdout
    assert not (tmp_path / "data").exists()  # checking creates nothing


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    site = tmp_path / "etc"
    site.mkdir()
    (site / "notify.yaml").write_text("channels: {}\n")
    out = weibao("init", str(site), "--data", str(tmp_path / "data"), check=False)
    assert out.returncode == 1
    assert f"{site / 'notify.yaml'} exists" in out.stderr
    assert [p.name for p in site.iterdir()] == ["notify.yaml"]
    assert (site / "notify.yaml").read_text() == "channels: {}\n"


def test_units_print_names_this_installation(tmp_path: Path) -> None:
    out = weibao("units", "print", "collector", "--etc", str(tmp_path / "conf")).stdout
    assert "/opt/weibao/bin/weibao" not in out
    exe = Path(sys.executable).parent / "weibao"  # the script beside the interpreter running it
    lines = [line for line in out.splitlines() if line.startswith(("ExecStart=", "ExecStartPre="))]
    assert len(lines) == 2 and all(line.split("=", 1)[1].startswith(f"{exe} collector ") for line in lines), lines
    assert f"--config {tmp_path / 'conf'}/collector.yaml" in out
    assert "weibao-agent" not in out
    backup = weibao("units", "print", "backup", "--etc", str(tmp_path / "conf")).stdout
    settings = [line for line in backup.splitlines() if not line.startswith("#")]
    assert any(f"--include {tmp_path / 'conf'} " in line for line in settings)
    assert not any("/etc/weibao" in line for line in settings)
    bad = weibao("units", "print", "nginx", check=False)
    assert bad.returncode == 2 and "no unit named nginx" in bad.stderr


def test_units_install_into_a_root_then_refuse_a_changed_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    weibao("units", "install", "--root", str(root))
    unit_dir = root / "etc/systemd/system"
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(UNIT_NAMES)
    assert (root / "etc/sysusers.d/weibao.conf").read_text().startswith("#")
    weibao("units", "install", "--root", str(root))  # the same files again: nothing to refuse
    changed = unit_dir / "weibao-agent.service"
    changed.write_text(changed.read_text() + "\n# site change\n")
    again = weibao("units", "install", "--root", str(root), check=False)
    assert again.returncode == 1 and "exists and differs" in again.stderr
    assert changed.read_text().endswith("# site change\n")


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd; ./dev installs it)")
    root = tmp_path / "root"
    weibao("units", "install", "--root", str(root))
    units = [str(root / "etc/systemd/system" / n) for n in UNIT_NAMES]
    proc = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    # verify warns about unknown keys and bad values on stderr, and fails on a missing executable
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    for path in units[:3]:
        text = Path(path).read_text()
        for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "User=weibao"):
            assert option in text, (path, option)
    agent = Path(units[1]).read_text()
    assert "AmbientCapabilities=CAP_NET_RAW CAP_NET_BIND_SERVICE" in agent
    assert "CapabilityBoundingSet=\n" in Path(units[0]).read_text()  # the collector needs none
    assert "--out-dir /var/lib/weibao/backups --keep 14" in Path(units[2]).read_text()
