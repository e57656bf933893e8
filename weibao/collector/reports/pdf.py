"""PDF from the report's HTML page with WeasyPrint (a CJK font that renders fast: WenQuanYi Micro Hei)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def html_to_pdf(html: str) -> bytes:
    """The page as PDF; WeasyPrint runs in the calling thread (call it from a worker, never the event loop)."""
    import weasyprint

    # the page loads nothing from elsewhere: every image is a data URI
    return bytes(weasyprint.HTML(string=html, base_url=None).write_pdf())
