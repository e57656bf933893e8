"""Secret references: ``${ENV_VAR}`` from the environment, ``${secret:NAME}`` from a secrets file.

The secrets file is YAML mapping names to values and must be readable by its owner alone (mode 0600 or
stricter); a group- or world-readable file is refused, as ssh refuses a too-open private key.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from weibao.core.errors import Problem

REF = re.compile(r"^\$\{(?:(?P<env>[A-Za-z_][A-Za-z0-9_]*)|secret:(?P<secret>[A-Za-z0-9_.-]+))\}$")


def load_secrets_file(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """Read a secrets file, refusing one that others may read."""
    file = str(path)
    try:
        st = path.stat()
    except OSError as exc:
        return {}, [Problem(file, None, "secrets_file", f"unreadable secrets file {file}: {exc.strerror or exc}")]
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(st.st_mode)
        return {}, [Problem(file, None, "secrets_file",
                            f"secrets file {file} is group- or world-accessible (mode {mode:04o}); "
                            f"run chmod 600 {file}")]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, [Problem(file, None, "secrets_file", f"unreadable secrets file {file}: {type(exc).__name__}")]
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        return {}, [Problem(file, None, "secrets_file", f"secrets file {file} must map names to values")]
    return {k: str(v) for k, v in data.items()}, []


def resolve_refs(value: Any, path: tuple[str | int, ...], env: Mapping[str, str],
                 secrets: Mapping[str, str] | None, on_problem: Any, *, secrets_failed: bool = False) -> Any:
    """Replace every ``${...}`` string in ``value`` (recursively); report what cannot be resolved.

    ``secrets_failed``: the secrets file could not be used (already reported), so references into it
    are not reported again one by one.
    """
    if isinstance(value, dict):
        return {k: resolve_refs(v, (*path, k), env, secrets, on_problem, secrets_failed=secrets_failed)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, (*path, i), env, secrets, on_problem, secrets_failed=secrets_failed)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    m = REF.match(value)
    if m is None:
        on_problem(path, "a secret reference is ${ENV_VAR} or ${secret:NAME}, alone in the value")
        return value
    if m["env"]:
        if m["env"] not in env:
            on_problem(path, f"environment variable {m['env']} is not set")
            return value
        return env[m["env"]]
    if secrets_failed:
        return value
    if secrets is None:
        on_problem(path, f"refers to secret {m['secret']!r} but the inventory names no secrets_file")
        return value
    if m["secret"] not in secrets:
        on_problem(path, f"secret {m['secret']!r} is not in the secrets file")
        return value
    return secrets[m["secret"]]
