"""Files shipped inside the package: the default rules (``weibao/rules``; ``rules/`` at the top of a checkout
links to them)."""

from __future__ import annotations

from pathlib import Path

PACKAGED_RULES = Path(__file__).resolve().parents[1] / "rules"
