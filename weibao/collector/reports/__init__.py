"""Periodic reports built from what the collector stores (weekly, monthly, quarterly, annual, fault analysis).

One JSON document per report is the source of every format; small renderers turn it into HTML (Jinja2
templates), PDF (from that HTML) and XLSX (from the same tables), so the figures cannot differ between
formats. Text in both languages comes from ``weibao.core.inspection.i18n``, shared with the daily
inspection report.
"""
