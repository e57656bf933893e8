"""notify.yaml: secret references, strict keys with file and line, secrets that never print."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from weibao.collector.notify.config import EmailChannel, WebhookChannel, load_notify_config
from weibao.core.errors import ConfigError

GOOD = """\
secrets_file: secrets.yaml
channels:
  mail:
    type: email
    host: smtp.example.net
    port: 587
    username: weibao
    password: ${SMTP_PASSWORD}
    sender: weibao@example.net
    to: [noc@example.net]
    routing: {levels: [1, 2]}
  ding:
    type: dingtalk
    url: ${secret:ding_url}
    secret: ${secret:ding_sign}
dispatch: {max_attempts: 4}
"""

SMTP_PASSWORD = "Env-Smtp-Pa55"
DING_URL = "https://oapi.dingtalk.com/robot/send?access_token=abc123token"
DING_SIGN = "SECsignsecret42"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f"ding_url: '{DING_URL}'\nding_sign: {DING_SIGN}\n")
    secrets.chmod(0o600)
    path = tmp_path / "notify.yaml"
    path.write_text(GOOD)
    return path


def test_load_resolves_refs(files: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = load_notify_config(files, env={"SMTP_PASSWORD": SMTP_PASSWORD})
    mail, ding = cfg.channels["mail"], cfg.channels["ding"]
    assert isinstance(mail, EmailChannel) and isinstance(ding, WebhookChannel)
    assert mail.password is not None and mail.password.get_secret_value() == SMTP_PASSWORD
    assert ding.url.get_secret_value() == DING_URL and ding.secret is not None
    assert mail.routing.levels == [1, 2] and cfg.dispatch.max_attempts == 4
    printed = repr(cfg) + str(cfg) + str(cfg.model_dump()) + caplog.text
    for secret in (SMTP_PASSWORD, DING_URL, "abc123token", DING_SIGN):
        assert secret not in printed


def test_problems_name_file_line_and_key(files: Path) -> None:
    bad = GOOD.replace("    port: 587\n", "    port: 587\n    colour: blue\n").replace(
        "dispatch: {max_attempts: 4}", "dispatch: {max_attempts: 0}")
    with pytest.raises(ConfigError) as err:
        load_notify_config(files, env={"SMTP_PASSWORD": "x"}, text=bad)
    text = str(err.value)
    assert f"{files}:7: channels.mail.colour: unknown key" in text
    dispatch_line = bad.splitlines().index("dispatch: {max_attempts: 0}") + 1
    assert f"{files}:{dispatch_line}: dispatch.max_attempts" in text
    with pytest.raises(ConfigError) as err:
        load_notify_config(files, env={})
    assert str(err.value) == f"{files}:8: channels.mail.password: environment variable SMTP_PASSWORD is not set"


def test_secrets_file_must_be_private(files: Path) -> None:
    (files.parent / "secrets.yaml").chmod(0o644)
    with pytest.raises(ConfigError, match="group- or world-accessible"):
        load_notify_config(files, env={"SMTP_PASSWORD": "x"})


def test_protection_periods_are_refused_here_with_where_they_belong(files: Path) -> None:
    moved = GOOD + ("protection:\n  - name: 国庆重保\n    starts_at: 2026-10-01T00:00:00+08:00\n"
                    "    ends_at: 2026-10-08T00:00:00+08:00\n    extra: {mail: [director@example.net]}\n")
    with pytest.raises(ConfigError) as err:
        load_notify_config(files, env={"SMTP_PASSWORD": "x"}, text=moved)
    (problem,) = err.value.problems
    assert problem.key.startswith("protection") and "calendar file" in problem.message
    assert problem.line == GOOD.count("\n") + 1
