"""The configuration file and the token commands, through the real ``weibao`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from collector.config import load_config
from tests.peers.collector import weibao


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text("listen: 127.0.0.1:9999\nlimits:\n  max_batch_bytez: 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    problem = info.value.problems[0]
    assert (problem.line, problem.key) == (3, "limits.max_batch_bytez")


def test_influx_backend_needs_its_section_and_listen_is_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tsdb:\n  backend: influxdb\n")
    with pytest.raises(ConfigError):
        load_config(cfg)
    with pytest.raises(ConfigError):
        load_config(None, data_dir=tmp_path, listen="nowhere")


def test_token_issue_revoke_list(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first = weibao("token", "issue", "site-x", "--data", data)
    token = first.stdout.strip()
    assert token.startswith("wb_") and len(token) > 30
    assert token not in first.stderr
    twice = weibao("token", "issue", "site-x", "--data", data, check=False)
    assert twice.returncode == 2
    assert "already holds an active token" in twice.stderr
    weibao("token", "issue", "alice", "--role", "engineer", "--data", data)
    listing = weibao("token", "list", "--data", data).stdout
    assert "site-x\tagent" in listing and "alice\tengineer" in listing
    assert token not in listing
    weibao("token", "revoke", "site-x", "--data", data)
    assert "revoked" in weibao("token", "list", "--data", data).stdout
    assert weibao("token", "revoke", "site-x", "--data", data, check=False).returncode == 2
    again = weibao("token", "issue", "site-x", "--data", data).stdout.strip()
    assert again != token
