"""Runs the collector under uvicorn: ``serve(config, host, port)``, in one process or several workers."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from weibao.collector.config import CollectorConfig
from weibao.collector.http.app import create_app
from weibao.collector.http.guard import BACKLOG, GuardedProtocol, GuardSettings
from weibao.collector.locks import run_dir
from weibao.collector.tls import check_tls_files
from weibao.core.errors import ConfigError, Problem

log = logging.getLogger(__name__)

CONFIG_ENV = "WEIBAO_COLLECTOR_CONFIG_FILE"


def tune_gc() -> None:
    """A batch allocates hundreds of thousands of short-lived objects; the default thresholds would run
    the cycle collector over the whole heap many times per batch for garbage that reference counting
    frees anyway. Objects alive at start-up are frozen out of collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def _hand_over(config: CollectorConfig) -> Path:
    """The effective configuration for worker processes: a file only the owner can read (it may hold the
    time-series server's token), never the environment."""
    path = run_dir(config.data_dir) / "collector-config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config.model_dump(mode="python"), f, default=_plain)
    return path


def app_from_env() -> FastAPI:
    """The application of one worker process (uvicorn imports this by name)."""
    path = Path(os.environ[CONFIG_ENV])
    app = create_app(CollectorConfig.model_validate(json.loads(path.read_text())))
    tune_gc()
    return app


def uvicorn_options(config: CollectorConfig) -> dict[str, Any]:
    """What every uvicorn server of the collector runs with (``weibao collector``, ``weibao run``): the
    guarded protocol (connection limit, timeouts, TLS; ``guard``), no access log, no server banner."""
    settings = GuardSettings(config.connections, config.tls)
    return {"http": functools.partial(GuardedProtocol, settings=settings), "log_level": "warning",
            "access_log": False, "server_header": False, "backlog": BACKLOG,
            "timeout_keep_alive": config.connections.idle_timeout_s}


def check_tls(config: CollectorConfig) -> None:
    """Refuse to start (ConfigError) with TLS files that cannot be used; log what will soon need renewal."""
    if config.tls is None:
        return
    found = check_tls_files(config.tls)
    for key, message in found.warnings:
        log.warning("%s: %s", key, message)
    if found.problems:
        raise ConfigError([Problem("<collector config>", None, key, message) for key, message in found.problems])


def serve(config: CollectorConfig, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted. SIGINT/SIGTERM end it cleanly (requests in flight are answered); uvicorn
    then re-raises the signal, so the process ends by it, which init systems count as a clean stop.
    ConfigError when the TLS files cannot be used."""
    listen_host, listen_port = config.host_port()
    host, port = host or listen_host, port or listen_port
    check_tls(config)
    opts: dict[str, Any] = {"host": host, "port": port, **uvicorn_options(config)}
    scheme = "https" if config.tls is not None else "http"
    if config.workers == 1:
        app = create_app(config)
        tune_gc()
        log.info("collector listening on %s://%s:%s, data in %s", scheme, host, port, config.data_dir)
        uvicorn.run(app, **opts)
        return
    create_app(config)  # migrate once and fail here, not in every worker, on a bad store
    for old in run_dir(config.data_dir).glob("metrics-*.json"):
        old.unlink()
    os.environ[CONFIG_ENV] = str(_hand_over(config))
    log.info("collector listening on %s://%s:%s with %d workers, data in %s", scheme, host, port, config.workers,
             config.data_dir)
    uvicorn.run("weibao.collector.http.server:app_from_env", factory=True, workers=config.workers, **opts)
