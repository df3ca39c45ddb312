"""Argument checks and unit conversions shared by qrspec (one home for each rule).

Every check raises :class:`~qrspec.errors.QrspecError` (a ``ValueError``) with a
``name=value`` message, e.g. ``QrspecError("bin_ns=0 must be a finite number > 0")``.
This module imports nothing of qrspec but :mod:`qrspec.errors`, so every layer may use it.

Seconds (or ns) to integer grid points: one rule
-------------------------------------------------
A grid point ``k`` (a timestamp tick of ``timestamps_unit`` seconds, or a TCSPC bin of
``nanotimes_unit``) stands for the time ``k * unit`` (a tick's or bin's *start*). A half-open
interval ``[a, b)`` in physical units selects the grid points whose time lies in it::

    a <= k * unit < b   <=>   ceil(a / unit) <= k < ceil(b / unit)

so :func:`to_grid` is ``ceil(x / unit)``, with a tolerance of ``1e-9`` grid points plus 4 ulp
of ``x / unit`` so that an edge that is a whole number of units up to float rounding (``0.3 /
0.1 = 2.9999999999999996``, ``0.30000000000000004 / 0.1``) lands on that grid point. Time
windows (``time_windows_s``), nanotime gates (``gate_ns``) and trace bin edges all use it, so
a photon is inside a window in :meth:`Photons.select_windows`, :func:`~qrspec.stats.decay.
sliced_decays`, :func:`~qrspec.stats.correlation.g2` and the pipeline alike. Shifts (detector
offsets, cable delays) are not intervals: they are rounded to the *nearest* grid point
(:func:`shift_to_grid`).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from qrspec.errors import QrspecError

__all__ = [
    "GRID_TOLERANCE",
    "detector_list",
    "finite_float",
    "in_windows",
    "integer",
    "interval",
    "interval_to_grid",
    "merge_intervals",
    "positive_float",
    "shift_to_grid",
    "strict_number",
    "to_grid",
    "windows_to_ticks",
]

#: absolute part of the tolerance of :func:`to_grid`, in grid points
GRID_TOLERANCE = 1e-9


# ------------------------------------------------------------------ scalars
def finite_float(name: str, value) -> float:
    """``float(value)``, which must be finite.

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : object
        The value to check.

    Returns
    -------
    float
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(v):
        raise QrspecError(f"{name}={value!r} must be finite")
    return v


def positive_float(name: str, value) -> float:
    """``float(value)``, which must be finite and > 0.

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : object
        The value to check.

    Returns
    -------
    float
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={value!r} must be a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise QrspecError(f"{name}={value!r} must be a finite number > 0")
    return v


def integer(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float) within ``[minimum, maximum]``.

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : object
        The value to check.
    minimum, maximum : int, optional
        Inclusive bounds.

    Returns
    -------
    int
    """
    if isinstance(value, bool | np.bool_):
        raise QrspecError(f"{name}={value!r} must be an integer")
    try:
        v = operator.index(value)
    except TypeError:
        raise QrspecError(f"{name}={value!r} must be an integer") from None
    if minimum is not None and v < minimum:
        raise QrspecError(f"{name}={value!r} must be an integer >= {minimum}")
    if maximum is not None and v > maximum:
        raise QrspecError(f"{name}={value!r} must be an integer <= {maximum}")
    return int(v)


def strict_number(name: str, value, *, kind: str = "real", lo=None, hi=None,
                  lo_open: bool = False, hi_open: bool = False, optional: bool = False):
    """A number from a user's config.

    A bool, a string or a non-finite value is refused (no coercion: ``"0.5"`` and ``true`` are not
    numbers here), and so is a value outside the bounds.

    Parameters
    ----------
    name : str
        Parameter name used in the message (``charge_model.eps``).
    value : object
        The value to check.
    kind : {"real", "int"}
        ``"int"`` accepts integers only (not ``2.0``).
    lo, hi : number, optional
        Bounds; ``lo_open`` / ``hi_open`` make them exclusive.
    optional : bool
        ``None`` is allowed (and returned).

    Returns
    -------
    int or float or None
        A plain Python ``int`` / ``float`` (numpy scalars are converted).
    """
    import numbers

    if value is None and optional:
        return None
    if kind == "int":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_) \
            and math.isfinite(value)
    if ok:
        ok = (lo is None or (value > lo if lo_open else value >= lo)) and \
             (hi is None or (value < hi if hi_open else value <= hi))
    if not ok:
        what = "an integer" if kind == "int" else "a finite number"
        if lo is not None and hi is not None:
            rng = f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        elif lo is not None:
            rng = f" {'>' if lo_open else '>='} {lo:g}"
        else:
            rng = ""
        raise QrspecError(f"{name}={value!r} must be {what}{rng}"
                          + (" or null" if optional else ""))
    return int(value) if kind == "int" else float(value)


def interval(name: str, value) -> tuple[float, float]:
    """A ``(start, stop)`` pair of numbers with ``start < stop`` (either may be infinite).

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : object
        The value to check.

    Returns
    -------
    tuple of float
    """
    if isinstance(value, str | bytes):
        raise QrspecError(f"{name}={value!r} must be a (start, stop) pair")
    try:
        a, b = (float(x) for x in value)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={value!r} must be a (start, stop) pair") from None
    if not a < b:
        raise QrspecError(f"{name}={value!r} must satisfy start < stop")
    return a, b


def detector_list(name: str, value) -> list[int] | None:
    """Distinct 0-based detectors in ``0..255`` as a list (``None`` passes through).

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : int, sequence of int or None
        The detectors.

    Returns
    -------
    list of int or None
    """
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    try:
        dets = [integer(name, d) for d in arr]
    except QrspecError:
        raise QrspecError(f"{name}={value!r} must be distinct 0-based detectors in 0..255"
                          ) from None
    if not dets or any(d < 0 or d > 255 for d in dets) or len(set(dets)) != len(dets):
        raise QrspecError(f"{name}={value!r} must be distinct 0-based detectors in 0..255")
    return dets


# ------------------------------------------------------------------ grids
def to_grid(x, unit: float):
    """Index of the first grid point at or after ``x`` (``ceil(x / unit)``, see module doc).

    Parameters
    ----------
    x : float or array_like
        Time(s) in the unit of ``unit`` (seconds for ticks, ns for TCSPC bins in ns).
    unit : float
        Grid spacing.

    Returns
    -------
    int or ndarray of int64
        ``int`` for a scalar ``x``.
    """
    r = np.asarray(x, dtype=np.float64) / unit
    tol = GRID_TOLERANCE + 4 * np.spacing(np.abs(r))
    k = np.ceil(r - tol)
    if k.ndim == 0:
        return int(k)
    return k.astype(np.int64)


def shift_to_grid(x, unit: float):
    """Nearest grid point of a shift (offset or delay) ``x`` (``rint(x / unit)``).

    Parameters
    ----------
    x : float or array_like
        Shift(s) in the unit of ``unit``.
    unit : float
        Grid spacing.

    Returns
    -------
    int or ndarray of int64
    """
    k = np.rint(np.asarray(x, dtype=np.float64) / unit)
    if k.ndim == 0:
        return int(k)
    return k.astype(np.int64)


def interval_to_grid(name: str, value, unit: float) -> tuple[int, int]:
    """Half-open interval ``[start, stop)`` -> half-open grid range ``[lo, hi)``, ``lo >= 0``.

    An infinite start maps to 0, an infinite stop to ``2**62``.

    Parameters
    ----------
    name : str
        Parameter name used in the message (e.g. ``"gate_ns"``).
    value : (float, float)
        The interval, in the unit of ``unit``.
    unit : float
        Grid spacing (e.g. the TCSPC bin in ns).

    Returns
    -------
    tuple of int
    """
    a, b = interval(name, value)
    big = 1 << 62
    lo = 0 if a == -math.inf else to_grid(a, unit)
    hi = big if b == math.inf else to_grid(b, unit)
    return min(max(lo, 0), big), min(max(hi, 0), big)


def windows_to_ticks(name: str, windows_s, unit: float, *, merge: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Half-open time windows in seconds -> int64 tick ranges ``[lo, hi)`` (module-doc rule).

    Parameters
    ----------
    name : str
        Parameter name used in the message (e.g. ``"time_windows_s"``).
    windows_s : array_like, shape (n, 2)
        ``(start_s, stop_s)`` rows on ``timestamps * timestamps_unit``; finite, start < stop.
    unit : float
        Seconds per tick.
    merge : bool
        Sort the windows and merge overlapping or adjacent ones (the result is sorted and
        disjoint). Without it the rows keep their order and may overlap.

    Returns
    -------
    lo, hi : ndarray of int64
    """
    try:
        w = np.asarray(windows_s, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={windows_s!r} must be (start, stop) pairs in s") from None
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w[:, 0] >= w[:, 1]):
        raise QrspecError(f"{name}={windows_s!r} must be non-empty finite (start, stop) pairs "
                          "with start < stop")
    lo = to_grid(w[:, 0], unit)
    hi = to_grid(w[:, 1], unit)
    if not merge:
        return lo, hi
    keep = hi > lo  # a window narrower than one tick selects no tick
    return merge_intervals(lo[keep], hi[keep])


def merge_intervals(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Sort half-open intervals ``[lo, hi)`` and merge overlapping or touching ones.

    The one window-merging rule of qrspec (ticks or seconds alike).

    Parameters
    ----------
    lo, hi : array_like
        Interval starts and stops (``lo <= hi``), any order.

    Returns
    -------
    lo, hi : ndarray
        Sorted, disjoint, non-touching intervals (same dtype as the input).
    """
    lo, hi = np.asarray(lo), np.asarray(hi)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    if lo.size == 0:
        return lo, hi
    # an interval starts a new group unless it starts at or before the running end so far
    run_end = np.maximum.accumulate(hi)
    new = np.concatenate([[True], lo[1:] > run_end[:-1]])
    ends = np.flatnonzero(np.concatenate([new[1:], [True]]))  # last member of each group
    return lo[new], run_end[ends]


def in_windows(ticks, lo, hi, *, ticks_sorted: bool = False) -> np.ndarray:
    """Mask of ``ticks`` inside sorted, disjoint half-open tick windows ``[lo, hi)``.

    Parameters
    ----------
    ticks : array_like of int
        Timestamps.
    lo, hi : ndarray of int64
        Window starts and stops (as :func:`windows_to_ticks` with ``merge=True`` gives them).
    ticks_sorted : bool
        ``ticks`` are non-decreasing (photon timestamps): the windows are located in the ticks
        (a search per window, not per tick) and their runs set; the same mask.

    Returns
    -------
    ndarray of bool
    """
    ticks = np.asarray(ticks)
    if lo.size == 0:
        return np.zeros(ticks.shape, bool)
    if ticks_sorted and ticks.ndim == 1 and lo.size <= 1000:
        a = np.searchsorted(ticks, lo, "left")
        b = np.searchsorted(ticks, hi, "left")
        mask = np.zeros(ticks.shape, bool)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            mask[i:j] = True
        return mask
    idx = np.searchsorted(lo, ticks, side="right") - 1
    ok = idx >= 0
    return ok & (ticks < hi[np.maximum(idx, 0)])
