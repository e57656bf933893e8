"""Files shipped inside the package, and where the rules are looked for (``rules/`` of a checkout links to
the shipped ones).

Rules are searched in this order: ``$WEIBAO_RULES``, ``./rules`` under the working directory, then the copy
inside the installed package; a configuration or ``--rules`` that names a directory wins over all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PACKAGED_RULES = PACKAGE_ROOT / "rules"
PACKAGED_UNITS = PACKAGE_ROOT / "packaging" / "systemd"


def rules_search_path() -> list[Path]:
    """The directories that may hold the rules, in the order they are tried."""
    dirs = []
    env = os.environ.get("WEIBAO_RULES")
    if env:
        dirs.append(Path(env))
    return [*dirs, Path("rules"), PACKAGED_RULES]


def default_rules_dir() -> Path:
    """The first directory of ``rules_search_path`` that exists (the packaged rules at the latest)."""
    return next((d for d in rules_search_path() if d.is_dir()), PACKAGED_RULES)
