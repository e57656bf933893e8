"""The inspection report (rendered by the core, shared with the collector's daily inspection)."""

from weibao.core.inspection.report import render_html, report_name, write_report

__all__ = ["render_html", "report_name", "write_report"]
