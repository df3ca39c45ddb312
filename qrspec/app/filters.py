"""Particle filters: a small, safe expression language over the summary table.

``--filter "single_emitter and rate_cps > 5000 and not (n_levels >= 4)"`` selects rows of the
``/summary`` table (a numpy structured array, :func:`qrspec.analysis.results.summary_dtype`).
The expression is parsed with :mod:`ast` and only these nodes are allowed (nothing is ever
evaluated as Python):

* column names (a bare name must be a boolean column, e.g. ``single_emitter``);
* numbers, strings (for text columns such as ``group`` and ``status``), ``True``/``False``;
  a unary minus on a number;
* comparisons ``< <= > >= == !=`` between columns and constants or two columns, chained
  (``1.2 < alpha_on < 2``); text columns take ``==`` and ``!=`` only;
* ``and``, ``or``, ``not`` and parentheses.

Missing values (NaN) follow SQL's three-valued logic: a comparison with NaN is *unknown*,
``not unknown`` is unknown, ``unknown and False`` is False, ``unknown or True`` is True, and a
row is selected only when the whole expression is known to be True. So a particle without an
exponent passes neither ``alpha_on > 1.5`` nor ``not (alpha_on > 1.5)``; select those
particles with ``not (alpha_on > 0 or alpha_on <= 0)`` if needed.

Errors are :class:`~qrspec.errors.QrspecError` naming the expression and the problem.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["ParticleFilter", "parse_filter", "apply_filter", "filter_exclusion", "MAX_LENGTH"]

MAX_LENGTH = 2000  # characters; longer expressions are refused (parser depth, readability)

_OPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
           ast.NotEq: "!="}
_ALLOWED = "only column names, numbers, strings, comparisons, and/or/not, parentheses"


@dataclass(frozen=True, eq=False)
class ParticleFilter:
    """A parsed filter expression.

    Attributes
    ----------
    expression : str
        The text as given (record it with the results).
    columns : tuple of str
        Columns it refers to, in order of first use.
    """

    expression: str
    columns: tuple
    _tree: ast.Expression

    def mask(self, rows: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows the expression selects (see the module docstring)."""
        rows = _check_rows(rows, self.expression)
        missing = [c for c in self.columns if c not in rows.dtype.names]
        if missing:
            raise _error(self.expression, f"unknown column {missing[0]!r} (known: "
                         f"{', '.join(rows.dtype.names)})")
        value, known = _Evaluator(self.expression, rows).boolean(self._tree.body)
        return np.asarray(value & known, bool)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The rows the expression selects: ``rows[self.mask(rows)]``."""
        return rows[self.mask(rows)]


def _error(expr: str, problem: str) -> QrspecError:
    return QrspecError(f"filter={expr!r}: {problem}")


def _check_rows(rows, expr) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype.names is None or rows.ndim != 1:
        raise _error(expr, f"rows must be a 1-D structured array (the summary table), got "
                     f"dtype={rows.dtype} shape={rows.shape}")
    return rows


def parse_filter(expression: str, columns=None) -> ParticleFilter:
    """Parse and check a filter expression.

    Parameters
    ----------
    expression : str
        The filter (see the module docstring).
    columns : sequence of str, optional
        Known column names; unknown names are an error here rather than at :meth:`mask`.

    Returns
    -------
    ParticleFilter
    """
    if not isinstance(expression, str):
        raise QrspecError(f"filter={expression!r} must be a string")
    if not expression.strip():
        raise _error(expression, "is empty")
    if len(expression) > MAX_LENGTH:
        raise _error(expression[:40] + "...", f"is {len(expression)} characters long; at most "
                     f"{MAX_LENGTH} are allowed")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise _error(expression, f"is not a valid expression ({exc.msg} at column "
                     f"{exc.offset})") from None
    except (RecursionError, MemoryError, ValueError):
        raise _error(expression, "is nested too deeply or contains a null byte") from None
    names: list[str] = []
    try:
        _check_node(tree.body, expression, names)
    except RecursionError:
        raise _error(expression, "is nested too deeply") from None
    if columns is not None:
        known = list(columns)
        for n in names:
            if n not in known:
                raise _error(expression, f"unknown column {n!r} (known: {', '.join(known)})")
    return ParticleFilter(expression, tuple(dict.fromkeys(names)), tree)


def _check_node(node, expr, names):
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check_node(v, expr, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_node(node.operand, expr, names)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _OPS:
                raise _error(expr, f"operator {type(op).__name__} is not allowed ({_ALLOWED})")
        for v in [node.left, *node.comparators]:
            _check_operand(v, expr, names)
    elif isinstance(node, ast.Name):
        names.append(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        pass
    else:
        raise _error(expr, f"{_describe(node)} is not allowed as a condition ({_ALLOWED})")


def _check_operand(node, expr, names):
    if isinstance(node, ast.Name):
        names.append(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str):
        pass
    elif (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd)
          and isinstance(node.operand, ast.Constant)
          and isinstance(node.operand.value, int | float)
          and not isinstance(node.operand.value, bool)):
        pass
    else:
        raise _error(expr, f"{_describe(node)} is not allowed in a comparison ({_ALLOWED})")


def _describe(node) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001  description only
        text = type(node).__name__
    return f"{type(node).__name__} {text!r}"


class _Evaluator:
    """Three-valued evaluation: every node gives ``(value, known)`` boolean arrays."""

    def __init__(self, expr: str, rows: np.ndarray):
        self.expr = expr
        self.rows = rows
        self.n = rows.shape[0]

    def boolean(self, node):
        if isinstance(node, ast.BoolOp):
            parts = [self.boolean(v) for v in node.values]
            value, known = parts[0]
            for v, k in parts[1:]:
                if isinstance(node.op, ast.And):
                    # False if either side is known False; True if both known True
                    known, value = (known & k) | (known & ~value) | (k & ~v), value & v
                else:
                    known, value = (known & k) | (known & value) | (k & v), value | v
            return value & known, known
        if isinstance(node, ast.UnaryOp):  # not
            value, known = self.boolean(node.operand)
            return ~value & known, known
        if isinstance(node, ast.Compare):
            value = np.ones(self.n, bool)
            known = np.ones(self.n, bool)
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                v, k = self.compare(op, left, right)
                known, value = (known & k) | (known & ~value) | (k & ~v), value & v
                left = right
            return value & known, known
        if isinstance(node, ast.Constant):
            return np.full(self.n, bool(node.value)), np.ones(self.n, bool)
        col = self.rows[node.id]
        if col.dtype != np.bool_:
            raise _error(self.expr, f"column {node.id!r} is not boolean ({col.dtype}); "
                         f"compare it, e.g. {node.id} > 0")
        return col.astype(bool), np.ones(self.n, bool)

    def operand(self, node):
        """``(kind, array or scalar, label)`` with kind 'num', 'text' or 'bool'."""
        if isinstance(node, ast.Name):
            col = self.rows[node.id]
            if col.dtype == np.bool_:
                return "bool", col.astype(bool), node.id
            if col.dtype.kind in "SU":
                return "text", col, node.id
            if col.dtype.kind in "iuf":
                return "num", col.astype(np.float64), node.id
            raise _error(self.expr, f"column {node.id!r} has dtype {col.dtype}, which cannot "
                         "be compared")
        if isinstance(node, ast.UnaryOp):
            v = float(node.operand.value)
            return "num", -v if isinstance(node.op, ast.USub) else v, ast.unparse(node)
        v = node.value
        if isinstance(v, bool):
            return "bool", v, repr(v)
        if isinstance(v, str):
            return "text", v, repr(v)
        return "num", float(v), repr(v)

    def compare(self, op, left, right):
        (ka, a, la), (kb, b, lb) = self.operand(left), self.operand(right)
        sym = _SYMBOL[type(op)]
        if ka != kb:
            raise _error(self.expr, f"cannot compare {la} ({_KIND[ka]}) {sym} {lb} "
                         f"({_KIND[kb]})")
        if ka in ("text", "bool") and type(op) not in (ast.Eq, ast.NotEq):
            raise _error(self.expr, f"{la} {sym} {lb}: {_KIND[ka]} values take == and != only")
        if ka == "text":
            a, b = _as_bytes(a), _as_bytes(b)
        fn = _OPS[type(op)]
        value = np.broadcast_to(np.asarray(fn(a, b)), (self.n,)).astype(bool)
        if ka == "num":
            known = np.broadcast_to(np.isfinite(a) & np.isfinite(b), (self.n,))
        else:
            known = np.ones(self.n, bool)
        return value & known, np.array(known, bool)


_KIND = {"num": "a number", "text": "text", "bool": "a boolean"}


def _as_bytes(v):
    if isinstance(v, str):
        return v.encode("utf-8")
    if v.dtype.kind == "U":
        return np.char.encode(v, "utf-8")
    return v


def apply_filter(rows: np.ndarray, expression: str) -> np.ndarray:
    """Mask of the summary rows selected by ``expression`` (see :func:`parse_filter`)."""
    rows = _check_rows(rows, expression)
    return parse_filter(expression, rows.dtype.names).mask(rows)


def filter_exclusion(rows: np.ndarray, expression: str, exclusion=None):
    """An exclusion list of the summary rows that ``expression`` does not select.

    The list (:class:`qrspec.app.exclude.ExclusionList`) is merged with ``exclusion`` (its ids and
    reasons kept): ``qrspec report --filter`` feeds it to the report's exclusion machinery, so the
    group statistics are recomputed by the store on the selected particles.

    Parameters
    ----------
    rows : ndarray
        The ``/summary`` table.
    expression : str
        The filter (:func:`parse_filter`).
    exclusion : ExclusionList, optional
        Particles excluded already (``--exclude``).

    Returns
    -------
    ExclusionList
    """
    from qrspec.app.exclude import ExclusionList

    mask = apply_filter(rows, expression)
    ids = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
           for x in np.asarray(rows["particle_id"]).tolist()]
    before = tuple(exclusion.particles) if exclusion is not None else ()
    reason = dict(exclusion.reason) if exclusion is not None else {}
    dropped = [pid for pid, keep in zip(ids, mask, strict=True) if not keep]
    for pid in dropped:
        reason.setdefault(pid, f"not selected by --filter {expression!r}")
    return ExclusionList(particles=tuple(dict.fromkeys(before + tuple(dropped))),
                         reason=reason,
                         extra={**(exclusion.extra if exclusion is not None else {}),
                                "filter": expression},
                         source=exclusion.source if exclusion is not None else "")
