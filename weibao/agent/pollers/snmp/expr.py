"""The small expression language of SNMP profiles: arithmetic over the columns of one table row.

Profiles say how raw values become metrics with expressions such as
``100 * hrStorageUsed / hrStorageSize`` or ``8 * coalesce(rate(ifHCInOctets), rate(ifInOctets))``.
An expression is parsed once with Python's ``ast`` and only a closed set of nodes is accepted:
numbers, strings, names, ``+ - * / %``, comparisons, ``and or not``, ``x if c else y`` and the
functions below. Nothing is ever passed to ``eval``.

Missing values are ``None`` and poison the result (``1 + None`` is ``None``); division by zero is
``None``; a comparison with ``None`` is ``None`` (false in ``where``).

Functions: ``rate(col)`` per-second rate of a counter column since the previous poll (``None`` on
the first poll, after a reset or a long gap), ``coalesce(a, b, ...)`` first value that is not
``None``, ``nonzero(x)`` ``x`` unless it is 0, ``max(...)``/``min(...)`` ignoring ``None``,
``num(x)`` a number from a string such as ``"12.5"``, ``startswith(s, prefix)``, ``pow10(n)`` 10**n
(for ENTITY-SENSOR scales).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Env = Mapping[str, Any]
RateFn = Callable[[str], float | None]

_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod,
}
_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
FUNCTIONS = frozenset({"rate", "coalesce", "nonzero", "max", "min", "num", "startswith", "pow10"})


class ExprError(ValueError):
    """An expression uses something the language does not have."""


@dataclass(frozen=True)
class Expr:
    source: str
    tree: ast.Expression
    names: frozenset[str]
    rated: frozenset[str]  # names used as rate(name)

    def __call__(self, env: Env, rate: RateFn | None = None) -> Any:
        return _eval(self.tree.body, env, rate)


def compile_expr(source: str) -> Expr:
    """Parse and check an expression; raises ExprError naming what is not allowed."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error in {source!r}: {exc.msg}") from exc
    names: set[str] = set()
    rated: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ExprError(f"unknown function in {source!r} (allowed: {', '.join(sorted(FUNCTIONS))})")
            if node.keywords:
                raise ExprError(f"keyword arguments are not allowed in {source!r}")
            if node.func.id == "rate":
                if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                    raise ExprError(f"rate() takes one column name in {source!r}")
                rated.add(node.args[0].id)
        elif isinstance(node, ast.Name):
            if node.id not in FUNCTIONS:
                names.add(node.id)
        elif isinstance(node, ast.Constant):
            if node.value is not None and (not isinstance(node.value, int | float | str)
                                           or isinstance(node.value, bool)):
                raise ExprError(f"only numbers, strings and None are allowed as constants in {source!r}")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BIN:
                raise ExprError(f"operator not allowed in {source!r}")
        elif isinstance(node, ast.Compare):
            if any(type(op) not in _CMP for op in node.ops):
                raise ExprError(f"comparison not allowed in {source!r}")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.Not):
                raise ExprError(f"unary operator not allowed in {source!r}")
        elif not isinstance(node, ast.Expression | ast.BoolOp | ast.And | ast.Or | ast.IfExp
                            | ast.Load | ast.cmpop | ast.operator | ast.unaryop):
            raise ExprError(f"{type(node).__name__} is not allowed in {source!r}")
    return Expr(source, tree, frozenset(names), frozenset(rated))


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None if v is None else float(v)
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _eval(node: ast.expr, env: Env, rate: RateFn | None) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env, rate), _eval(node.right, env, rate)
        if isinstance(node.op, ast.Add) and isinstance(a, str) and isinstance(b, str):
            return a + b
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return None
        if isinstance(node.op, ast.Div | ast.Mod) and b == 0:
            return None
        return _BIN[type(node.op)](a, b)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env, rate)
        if isinstance(node.op, ast.Not):
            return None if v is None else not v
        return -v if isinstance(v, int | float) else None
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, rate)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env, rate)
            if left is None or right is None:
                return None
            try:
                if not _CMP[type(op)](left, right):
                    return False
            except TypeError:  # a string compared with a number
                return None
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, env, rate) for v in node.values]
        if isinstance(node.op, ast.And):
            return None if any(v is None for v in values) else all(values)
        if any(v for v in values):
            return True
        return None if any(v is None for v in values) else False
    if isinstance(node, ast.IfExp):
        cond = _eval(node.test, env, rate)
        if cond is None:
            return None
        return _eval(node.body if cond else node.orelse, env, rate)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        fn = node.func.id
        if fn == "rate":
            assert isinstance(node.args[0], ast.Name)
            return rate(node.args[0].id) if rate is not None else None
        if fn == "coalesce":  # lazy: a rate() after the first present value is never taken
            for a in node.args:
                v = _eval(a, env, rate)
                if v is not None:
                    return v
            return None
        args = [_eval(a, env, rate) for a in node.args]
        if fn == "pow10":
            n = args[0] if args else None
            return 10.0 ** n if isinstance(n, int | float) and -30 <= n <= 30 else None
        if fn == "nonzero":
            return None if not args or args[0] in (0, None) else args[0]
        if fn in ("max", "min"):
            nums = [a for a in args if isinstance(a, int | float)]
            if not nums:
                return None
            return max(nums) if fn == "max" else min(nums)
        if fn == "num":
            return _num(args[0]) if args else None
        if fn == "startswith":
            if len(args) != 2 or args[0] is None or args[1] is None:
                return None
            return str(args[0]).startswith(str(args[1]))
    raise ExprError(f"cannot evaluate {ast.dump(node)}")  # compile_expr let through a node it should not
