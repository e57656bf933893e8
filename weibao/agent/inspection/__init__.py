"""The daily inspection (巡检): hidden-danger checks as data, their evaluation, history and the HTML report."""

from weibao.agent.inspection.evaluate import inspect
from weibao.agent.inspection.history import History
from weibao.agent.inspection.report import render_html, write_report
from weibao.core.inspection.model import (
    AssetRow,
    CollectError,
    ConfigDiff,
    DeviceReport,
    DeviceStatus,
    Figures,
    Finding,
    Inspection,
    Severity,
    Summary,
    Text,
)
from weibao.core.inspection.rules import InspectionRules, load_inspection_rules

__all__ = [
    "AssetRow",
    "CollectError",
    "ConfigDiff",
    "DeviceReport",
    "DeviceStatus",
    "Figures",
    "Finding",
    "History",
    "Inspection",
    "InspectionRules",
    "Severity",
    "Summary",
    "Text",
    "inspect",
    "load_inspection_rules",
    "render_html",
    "write_report",
]
