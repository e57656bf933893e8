"""Small SVG charts drawn on the server (bars per day, lines over time), the same in HTML and PDF.

Each chart is one self-contained ``<svg>`` string with its labels as text (escaped), embedded in the
page as a data URI so that browsers and WeasyPrint show it alike.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 22, 28
COLOURS = ("#2f5496", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a")


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def _frame(title: str, lo: float, hi: float) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="WenQuanYi Micro Hei, sans-serif" font-size="10">',
           f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = TOP + plot_h - plot_h * k / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#dde3ea"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" fill="#555">{_fmt(v)}</text>')
    return out


def bars(title: str, labels: Sequence[str], values: Sequence[float | None], *, lo: float = 0.0,
         hi: float | None = None) -> str:
    """A bar per label (None: no bar); the axis runs from ``lo`` to ``hi`` (default: the largest value)."""
    top = hi if hi is not None else max([v for v in values if v is not None] + [1.0])
    if top <= lo:
        top = lo + 1.0
    out = _frame(title, lo, top)
    n = max(1, len(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / n
    every = max(1, n // 16)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + i * step
        if v is not None:
            h = plot_h * (min(max(v, lo), top) - lo) / (top - lo)
            out.append(f'<rect x="{x + step * 0.15:.1f}" y="{TOP + plot_h - h:.1f}" width="{step * 0.7:.1f}" '
                       f'height="{h:.1f}" fill="{COLOURS[0]}"><title>{escape(label)}: {_fmt(v)}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" fill="#555">'
                       f'{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def lines(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *,
          x_labels: Sequence[tuple[float, str]] = ()) -> str:
    """One line per (name, [(x, y)...]); x in any unit (seconds), each series scaled to the common axes."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    if not xs:
        return ""
    x0, x1 = min(xs), max(xs)
    lo, hi = min(0.0, min(ys)), max(ys) if max(ys) > 0 else 1.0
    out = _frame(title, lo, hi)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return LEFT + plot_w * (x - x0) / span

    def py(y: float) -> float:
        return TOP + plot_h - plot_h * (y - lo) / ((hi - lo) or 1.0)

    for k, (name, pts) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        out.append(f'<text x="{WIDTH - RIGHT - 4}" y="{TOP + 12 * (k + 1)}" text-anchor="end" fill="{colour}">'
                   f'{escape(name)}</text>')
    for x, label in x_labels:
        out.append(f'<text x="{px(x):.1f}" y="{HEIGHT - 10}" text-anchor="middle" fill="#555">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
