"""Suite-wide rules. Under CI (``WEIBAO_CI`` set, as ``.ci/run`` does) a skipped test is a failure: every peer
is installed there, so a skip can only hide a broken peer or a product bug."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

STRICT = bool(os.environ.get("WEIBAO_CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI (WEIBAO_CI), which counts as a failure: {reason}"
