"""The batch tables of a results file, as the report and the batch figures read them.

This is the one place where :mod:`qrspec.app.batch_figures`, :mod:`qrspec.app.html_report`,
:mod:`qrspec.app.exclude` and :mod:`qrspec.app.progress` touch the results store: the
``/summary`` table (one row per particle), the ``/groups`` table (per-group statistics written
by :func:`qrspec.store.hdf5.group_statistics`), the column units and descriptions, and the
analysis configuration. When the store API changes, only :func:`load_batch_tables`,
:func:`store_rows` and :func:`store_group_statistics` need re-pointing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["BatchTables", "load_batch_tables", "error_column", "value_columns", "store_rows",
           "store_group_statistics", "group_names", "column_values"]


@dataclass(frozen=True, eq=False)
class BatchTables:
    """The tables of one results file.

    Attributes
    ----------
    path : str
        The results file ("" for tables built in memory).
    summary : ndarray
        ``/summary`` as a structured array, text columns as ``str``.
    groups : ndarray
        ``/groups`` as a structured array (``group`` as ``str``), one row per group, sorted.
    units, descriptions : dict
        Column name -> unit / description text (summary columns).
    config : dict
        The analysis configuration the file was made with (``{}`` when absent).
    attrs : dict
        Root attributes of the file (format, version, creation time, ...).
    """

    path: str
    summary: np.ndarray
    groups: np.ndarray
    units: dict
    descriptions: dict
    config: dict
    attrs: dict

    @property
    def particle_ids(self) -> list[str]:
        """Particle ids in summary order."""
        return [str(x) for x in self.summary["particle_id"]]


def load_batch_tables(results) -> BatchTables:
    """Read the summary and group tables of a results file.

    Parameters
    ----------
    results : str, Path or BatchTables
        A qrspec results file (a :class:`BatchTables` is returned unchanged).

    Returns
    -------
    BatchTables

    Raises
    ------
    QrspecError
        Not a readable qrspec results file.
    """
    if isinstance(results, BatchTables):
        return results
    from qrspec.store.hdf5 import read_results

    columns = _summary_columns()

    res = read_results(os.fspath(results))
    names = set(res.summary.dtype.names or ())
    units = {n: u for n, _, u, _ in columns if n in names}
    desc = {n: d for n, _, _, d in columns if n in names}
    try:
        config = json.loads(res.attrs.get("config", "{}") or "{}")
    except json.JSONDecodeError:
        config = {}
    return BatchTables(path=res.path, summary=res.summary, groups=res.groups, units=units,
                       descriptions=desc, config=config if isinstance(config, dict) else {},
                       attrs=dict(res.attrs))


def _summary_columns():
    """(name, dtype, unit, description) of every summary column: the store's schema."""
    from qrspec.store.summary import SUMMARY_COLUMNS

    return SUMMARY_COLUMNS


def store_rows(summary: np.ndarray) -> np.ndarray:
    """Convert ``summary`` rows to the store's text encoding (UTF-8 bytes).

    Parameters
    ----------
    summary : ndarray
        ``/summary`` rows with ``str`` text columns.

    Returns
    -------
    ndarray
        The same rows with bytes text columns, as the store's functions expect them.
    """
    names = summary.dtype.names or ()
    cols = {n: np.char.encode(summary[n], "utf-8") if summary.dtype[n].kind == "U"
            else summary[n] for n in names}
    out = np.zeros(summary.shape, [(n, cols[n].dtype) for n in names])
    for n in names:
        out[n] = cols[n]
    return out


def store_group_statistics(summary: np.ndarray) -> np.ndarray:
    """Compute per-group statistics of ``summary`` rows with the store's own function.

    Parameters
    ----------
    summary : ndarray
        ``/summary`` rows (e.g. without excluded particles).

    Returns
    -------
    ndarray
        :func:`qrspec.store.hdf5.group_statistics` of the rows, text columns (``group``,
        ``dwell_model_*_pooled``) as ``str``.
    """
    from qrspec.store.hdf5 import group_statistics

    stats = group_statistics(store_rows(summary))
    text = [n for n in stats.dtype.names or () if stats.dtype[n].kind == "S"]
    if text:  # the group name and the text columns (e.g. dwell_model_on_pooled) as str
        dt = [(n, f"U{stats.dtype[n].itemsize}" if n in text else stats.dtype[n])
              for n in stats.dtype.names]
        out = np.zeros(stats.shape, dt)
        for n in stats.dtype.names:
            out[n] = np.char.decode(stats[n], "utf-8") if n in text else stats[n]
        return out
    return stats


def error_column(name: str, names) -> str | None:
    """Find the column holding the standard error of ``name``.

    Parameters
    ----------
    name : str
        A summary column.
    names : iterable of str
        All summary columns.

    Returns
    -------
    str or None
        The error column, or None when there is none.

    Notes
    -----
    The summary spells errors ``<stem>_err_<unit>`` (``tau_x_neutral_ns`` ->
    ``tau_x_neutral_err_ns``), ``<name>_err`` (``g2_zero`` -> ``g2_zero_err``) and, for a
    ``_mean`` column, ``<stem>_err`` (``n_c_mean`` -> ``n_c_err``); the first that exists wins.
    """
    names = set(names)
    if "_err" in name:
        return None
    cands = []
    for unit in ("_ns", "_s", "_cps"):
        if name.endswith(unit):
            cands.append(f"{name[: -len(unit)]}_err{unit}")
    cands.append(f"{name}_err")
    if name.endswith("_mean"):
        cands.append(f"{name[:-5]}_err")
    for c in cands:
        if c in names:
            return c
    return None


def value_columns(names) -> list[tuple[str, str | None]]:
    """Pair every column that is not itself an error column with its error column.

    Parameters
    ----------
    names : iterable of str
        All summary columns, in table order.

    Returns
    -------
    list of (str, str or None)
        ``(column, error column or None)`` in table order.
    """
    names = list(names)
    pairs = [(n, error_column(n, names)) for n in names]
    errs = {e for _, e in pairs if e}
    return [(n, e) for n, e in pairs if n not in errs]


def group_names(tables: BatchTables) -> list[str]:
    """List the groups in the order of ``/groups`` (sorted), else of the summary.

    Parameters
    ----------
    tables : BatchTables

    Returns
    -------
    list of str
    """
    if tables.groups.size and tables.groups.dtype.names and "group" in tables.groups.dtype.names:
        return [str(g) for g in tables.groups["group"]]
    return sorted(set(str(g) for g in tables.summary["group"])) if tables.summary.size else []


def column_values(tables: BatchTables, column: str, group: str | None = None,
                  *, ok_only: bool = True) -> np.ndarray:
    """Return the float values of one summary column (NaN kept).

    Parameters
    ----------
    tables : BatchTables
    column : str
        A numeric summary column.
    group : str, optional
        Only this group (default: all particles).
    ok_only : bool
        Only particles with status ``ok`` (as ``/groups`` counts them).

    Returns
    -------
    ndarray of float
    """
    s = tables.summary
    if not s.size:
        return np.zeros(0)
    sel = np.ones(s.size, bool)
    if group is not None:
        sel &= s["group"] == group
    if ok_only:
        sel &= s["status"] == "ok"
    return np.asarray(s[column][sel], float)
