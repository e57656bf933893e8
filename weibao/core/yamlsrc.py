"""Strict YAML loading that remembers the line of every key, so that errors can name file, line and key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from weibao.core.errors import ConfigError, Problem

PathKey = tuple[str | int, ...]


@dataclass
class Located:
    """A parsed YAML document and the 1-based line of every mapping key and list item in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of the deepest known prefix of ``path`` (pydantic locations contain extra parts)."""
        best: int | None = self.lines.get(())
        cur: PathKey = ()
        for part in path:
            nxt = (*cur, part)
            if nxt in self.lines:
                cur = nxt
                best = self.lines[nxt]
            elif isinstance(part, str) and part.isdigit() and (*cur, int(part)) in self.lines:
                cur = (*cur, int(part))
                best = self.lines[cur]
        return best

    def problem(self, path: Iterable[str | int], message: str) -> Problem:
        path = tuple(path)
        key = ".".join(str(p) for p in path)
        return Problem(self.file, self.line_of(path), key, message)


def _convert(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], problems: list[Problem],
             file: str, scalars: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError([Problem(file, key_node.start_mark.line + 1, "<<",
                                           "YAML merge keys are not supported; use defaults and groups")])
            key = _convert(key_node, path, lines, problems, file, scalars)
            if not isinstance(key, str | int):
                problems.append(Problem(file, key_node.start_mark.line + 1, str(key), "keys must be strings"))
                continue
            key_path = (*path, key)
            if key in out:
                problems.append(Problem(file, key_node.start_mark.line + 1, ".".join(map(str, key_path)),
                                        f"duplicate key (first on line {lines[key_path]})"))
                continue
            lines[key_path] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, key_path, lines, problems, file, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            items.append(_convert(item, (*path, i), lines, problems, file, scalars))
        return items
    assert isinstance(node, yaml.ScalarNode)
    # resolve the scalar exactly as SafeLoader would (ints, bools, dates, null)
    try:
        return scalars.construct_object(node, deep=True)
    except ValueError as exc:  # a date that does not exist (2026-02-30), an out-of-range time
        problems.append(Problem(file, node.start_mark.line + 1, ".".join(map(str, path)) or "(top)",
                                f"invalid value {node.value!r}: {exc}"))
        return node.value


def load_yaml(path: Path, text: str | None = None) -> Located:
    """Parse one YAML file strictly; raises ConfigError naming the file and line on any problem."""
    file = str(path)
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(file, None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file, None, "", f"not UTF-8 text: {exc}")]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(file, line, "", f"YAML syntax: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, "", f"YAML syntax: {exc}")]) from exc
    lines: dict[PathKey, int] = {(): 1}
    problems: list[Problem] = []
    scalars = yaml.SafeLoader("")
    data = {} if node is None else _convert(node, (), lines, problems, file, scalars)
    if problems:
        raise ConfigError(problems)
    return Located(file, data, lines)


def pydantic_problems(src: Located, exc: Any, prefix: PathKey = ()) -> list[Problem]:
    """Turn a pydantic ValidationError into located problems (one per error)."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        # drop union/tag parts pydantic inserts that are not keys of the document
        clean: list[str | int] = []
        cur: PathKey = prefix
        for part in loc:
            nxt = (*cur, part)
            if nxt in src.lines or err["type"] in ("extra_forbidden", "missing"):
                clean.append(part)
                cur = nxt
        full = (*prefix, *clean)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        line = src.line_of(full)
        out.append(Problem(src.file, line, ".".join(map(str, full)), msg))
    return out
