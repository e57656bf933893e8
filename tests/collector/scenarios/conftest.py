"""Fixtures for the end-to-end contract scenarios: one real collector (uvicorn subprocess) per test module,
agents with tokens of their own (one per scenario, so registrations never retire each other's devices), and
an engineer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.scenarios.replay import register
from tests.peers.collector import CollectorPeer, run_collector
from weibao.collector.auth import Role, issue
from weibao.collector.state.db import create_state_engine

# history from weeks ago is replayed: keep it all, and let no retention round run during the tests
SCENARIO_CONFIG: dict[str, Any] = {
    "limits": {"max_batch_bytes": 4 * 1024 * 1024, "max_batch_samples": 5000},
    "retention": {"raw_days": 3650, "prune_interval_s": 86400},
    # clock breaches and gaps show within a second or two of being due
    "contract": {"sweep_interval_s": 1.0},
}

AgentFactory = Callable[[str, list[dict[str, Any]]], httpx.Client]


def issue_token(peer: CollectorPeer, name: str, role: Role) -> str:
    """A token written straight into the collector's state store (the collector verifies per request)."""
    engine = create_state_engine(f"sqlite:///{(peer.data_dir / 'state.db').resolve()}")
    try:
        return issue(engine, name, role)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    work: Path = tmp_path_factory.mktemp("scenario-collector")
    with run_collector(work, SCENARIO_CONFIG) as p:
        yield p


@pytest.fixture(scope="module")
def agent(peer: CollectorPeer) -> Iterator[AgentFactory]:
    """``agent(name, devices)``: a client holding a new agent token that has registered ``devices``."""
    clients: list[httpx.Client] = []

    def make(name: str, devices: list[dict[str, Any]]) -> httpx.Client:
        client = peer.client(issue_token(peer, name, Role.AGENT))
        clients.append(client)
        register(client, name, devices)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def engineer(peer: CollectorPeer) -> Iterator[httpx.Client]:
    with peer.client(issue_token(peer, "eng-wang", Role.ENGINEER)) as client:
        yield client
