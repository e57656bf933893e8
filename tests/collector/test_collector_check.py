"""``weibao collector --check``: the whole configuration validated before start, through the real command."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.collector import REPO, free_port

pytestmark = pytest.mark.timeout(120)

SMTP_PASSWORD = "Smtp-Pass-7f3a91"
DING_TOKEN = "access_token=ding-9c2e55aa"
DING_SECRET = "SEC-4b1d-signing-0042"
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-key-11aa22bb"
INFLUX_TOKEN = "influx-token-66de10"
SECRETS = (SMTP_PASSWORD, DING_TOKEN, DING_SECRET, "wecom-key-11aa22bb", INFLUX_TOKEN)

NOTIFY_OK = f"""\
channels:
  mail:
    type: email
    host: 127.0.0.1
    port: 2525
    username: ops
    password: {SMTP_PASSWORD}
    sender: weibao@example.com
    to: [duty@example.com]
  ding:
    type: dingtalk
    url: https://oapi.dingtalk.com/robot/send?{DING_TOKEN}
    secret: {DING_SECRET}
"""

CALENDAR_OK = """\
holidays:
  - {date: 2026-06-15, name: site closed}
working_days:
  - {date: 2026-06-20, name: stocktaking}
hours: {start: "09:00", end: "18:00"}
"""


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weibao", "collector", "--check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=env)


def write_config(tmp: Path, *, extra: str = "", calendar: str = CALENDAR_OK, notify: str = NOTIFY_OK,
                 calendar_files: tuple[str, ...] = ("site-calendar.yaml",)) -> Path:
    (tmp / "site-calendar.yaml").write_text(calendar)
    (tmp / "notify.yaml").write_text(notify)
    files = ", ".join(str(tmp / f) for f in calendar_files)
    cfg = tmp / "collector.yaml"
    cfg.write_text(f"""\
listen: 127.0.0.1:{free_port()}
data_dir: {tmp / "data"}
tsdb:
  backend: influxdb
  influxdb:
    url: http://127.0.0.1:8428
    token: {INFLUX_TOKEN}
{extra}contract:
  calendar: [{files}]
  notify: {tmp / "notify.yaml"}
""")
    return cfg


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of ``path`` containing ``text`` (the expected line, from the file)."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return n
    raise AssertionError(f"{text!r} not in {path}")


def test_valid_configuration_passes_with_a_summary(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    run = check("--config", str(cfg))
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.strip()
    assert summary.startswith("collector config ok: ")
    for part in (str(cfg), str(tmp_path / "notify.yaml"), "1 calendar file", "contract.yaml"):
        assert part in summary
    assert len(summary.splitlines()) == 1


def test_every_problem_of_several_files_in_one_run(tmp_path: Path) -> None:
    notify = NOTIFY_OK.replace("port: 2525", "port: twenty-five")
    calendar = CALENDAR_OK.replace("2026-06-15", "2026-02-30")  # no such day
    cfg = write_config(tmp_path, extra="limits:\n  max_batch_bytez: 10\n", notify=notify, calendar=calendar,
                       calendar_files=("site-calendar.yaml", "missing-calendar.yaml"))
    run = check("--config", str(cfg))
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    cal = tmp_path / "site-calendar.yaml"
    nfile = tmp_path / "notify.yaml"
    expected = [
        f"{cfg}:{line_of(cfg, 'max_batch_bytez')}: limits.max_batch_bytez: unknown key",
        f"{cal}:{line_of(cal, '2026-02-30')}: holidays.0.date: ",
        f"{cfg}:{line_of(cfg, 'missing-calendar.yaml')}: contract.calendar.1: ",
        f"{nfile}:{line_of(nfile, 'twenty-five')}: channels.mail.port: ",
    ]
    for prefix in expected:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    assert any("missing-calendar.yaml: no such file" in line for line in lines)
    assert f"{len(lines)} problem(s)" in run.stderr
    for secret in SECRETS:
        assert secret not in run.stdout + run.stderr


def test_secret_values_of_broken_channels_never_show(tmp_path: Path) -> None:
    notify = f"""\
channels:
  mail:
    type: email
    host: 127.0.0.1
    port: 25
    starttls: false
    username: ops
    password: {SMTP_PASSWORD}
    sender: weibao@example.com
    to: duty@example.com
  ding:
    type: dingtalk
    url: ftp://oapi.dingtalk.com/robot/send?{DING_TOKEN}
    secret: [{DING_SECRET}]
  wecom:
    type: wecom
    url: {WECOM_URL}
    secret: {DING_SECRET}
    headers: {{X-Auth: [{INFLUX_TOKEN}]}}
"""
    cfg = write_config(tmp_path, notify=notify)
    run = check("--config", str(cfg))
    assert run.returncode == 1
    out = run.stdout + run.stderr
    nfile = str(tmp_path / "notify.yaml")
    # pydantic reports field errors of a channel before its cross-field checks (url scheme, TLS for a password)
    for key in ("channels.mail.to", "channels.ding.secret", "channels.wecom.headers.X-Auth"):
        assert f"{nfile}:" in out and f": {key}" in out, (key, out)
    for secret in SECRETS:
        assert secret not in out


def test_missing_environment_reference_is_named_not_resolved(tmp_path: Path) -> None:
    notify = NOTIFY_OK.replace(SMTP_PASSWORD, "${WEIBAO_TEST_SMTP_PASSWORD}")
    cfg = write_config(tmp_path, notify=notify)
    env = {k: v for k, v in os.environ.items() if k != "WEIBAO_TEST_SMTP_PASSWORD"}
    run = check("--config", str(cfg), env=env)
    assert run.returncode == 1
    nfile = tmp_path / "notify.yaml"
    assert (f"{nfile}:{line_of(nfile, 'WEIBAO_TEST_SMTP_PASSWORD')}: channels.mail.password: "
            "environment variable WEIBAO_TEST_SMTP_PASSWORD is not set") in run.stdout
    env["WEIBAO_TEST_SMTP_PASSWORD"] = SMTP_PASSWORD
    assert check("--config", str(cfg), env=env).returncode == 0


def test_state_url_password_is_not_echoed(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra=f"state_url: mysql://weibao:{SMTP_PASSWORD}@127.0.0.1/weibao\n")
    run = check("--config", str(cfg))
    assert run.returncode == 1
    assert f"{cfg}:{line_of(cfg, 'state_url: mysql')}: state_url: " in run.stdout
    assert SMTP_PASSWORD not in run.stdout + run.stderr


# records what the real command does at the socket, database and file-system level (Python audit events)
_AUDIT = """\
import json, runpy, sys
log = open(sys.argv.pop(1), "w")
def hook(event, args):
    if event in ("socket.bind", "socket.connect", "sqlite3.connect", "os.mkdir") or (
            event == "open" and str(args[0]).endswith(".yaml")):
        log.write(json.dumps([event, repr(args)]) + "\\n"); log.flush()
sys.addaudithook(hook)
sys.argv[0] = "weibao"
runpy.run_module("weibao", run_name="__main__")
"""


def test_check_creates_nothing_connects_nowhere_and_opens_no_port(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra="state_url: postgresql+psycopg2://weibao@127.0.0.1:1/weibao\n")
    data = tmp_path / "data"
    events = tmp_path / "events.jsonl"
    listen = re.search(r"listen: 127.0.0.1:(\d+)", cfg.read_text())
    assert listen is not None
    port = int(listen[1])
    run = subprocess.run([sys.executable, "-c", _AUDIT, str(events), "collector", "--check", "--config", str(cfg)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not data.exists()
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(e[0] == "open" and str(cfg) in e[1] for e in seen), "the audit hook saw the config being read"
    assert [e for e in seen if e[0] in ("socket.bind", "socket.connect", "sqlite3.connect", "os.mkdir")] == []
    # and the listen address is still free: nothing was left behind on it
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))

    data.mkdir()
    assert check("--config", str(cfg), "--data", str(data)).returncode == 0
    assert list(data.iterdir()) == []


def test_data_directory_that_is_a_file_is_a_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    run = check("--data", str(blocker))
    assert run.returncode == 1
    assert "data_dir: data directory" in run.stdout and "not a directory" in run.stdout


def test_protection_periods_name_channels_of_the_notify_config(tmp_path: Path) -> None:
    period = ("protection_periods:\n  - name: year-end\n    start: 2026-12-30T00:00:00\n"
              "    end: 2027-01-04T00:00:00\n    threshold_factor: 0.5\n    notify: {mail: [boss@example.com], %s}\n")
    cfg = write_config(tmp_path, calendar=CALENDAR_OK + period % "ding: ['13800000000']")
    run = check("--config", str(cfg))
    assert run.returncode == 0, run.stdout + run.stderr
    cfg = write_config(tmp_path, calendar=CALENDAR_OK + period % "pager: ['42']")
    run = check("--config", str(cfg))
    assert run.returncode == 1, run.stdout + run.stderr
    (line,) = run.stdout.splitlines()
    assert str(tmp_path / "site-calendar.yaml") in line
    assert "protection_periods.year-end.notify.pager: no channel 'pager' in the notify config" in line
