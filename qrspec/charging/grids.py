"""Evaluation grids of the charge model (charge numbers, Auger lifetimes), checked.

The ``qrspec model`` commands take grid limits from the user; the grids themselves, and the
checks of their limits, live here so the CLI holds no numerics.
"""

from __future__ import annotations

import math

import numpy as np

from qrspec.errors import QrspecError
from qrspec.validate import strict_number

__all__ = ["charge_grid", "log_grid_ns"]

_MAX_POINTS = 1_000_000  # a grid larger than this is a typo, not a model evaluation


def charge_grid(n_max: float, n_step: float, *, names=("n_max", "n_step")) -> np.ndarray:
    """Charge numbers ``0, n_step, 2 n_step, ...`` up to ``n_max`` inclusive.

    Parameters
    ----------
    n_max : float
        Largest charge number (>= 0). Included when it lies on the grid (within half a step).
    n_step : float
        Step (> 0).
    names : pair of str
        How the messages name the two limits (the CLI passes its option names).

    Returns
    -------
    ndarray of float64

    Raises
    ------
    QrspecError
        A limit that is not finite, ``n_max < 0``, ``n_step <= 0``, or more than a million
        points.
    """
    a, b = names
    n_max = strict_number(a, n_max, lo=0)
    n_step = strict_number(b, n_step, lo=0, lo_open=True)
    count = math.floor(n_max / n_step + 0.5) + 1
    if count > _MAX_POINTS:
        raise QrspecError(f"{a}={n_max!r} / {b}={n_step!r} gives {count} points "
                          f"(at most {_MAX_POINTS})")
    return np.arange(count, dtype=np.float64) * n_step


def log_grid_ns(start_ns: float, stop_ns: float, n: int, *,
                names=("start_ns", "stop_ns", "n")) -> np.ndarray:
    """``n`` log-spaced lifetimes from ``start_ns`` to ``stop_ns`` (ns, both included).

    ``names``: how the messages name the three arguments (the CLI passes its option names).

    Raises
    ------
    QrspecError
        Unless ``0 < start_ns < stop_ns`` (finite) and ``1 <= n <= 1e6``.
    """
    a, b, c = names
    if not (math.isfinite(start_ns) and math.isfinite(stop_ns) and 0 < start_ns < stop_ns):
        raise QrspecError(f"{a}={start_ns!r}, {b}={stop_ns!r} must satisfy 0 < {a} < {b}")
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= _MAX_POINTS:
        raise QrspecError(f"{c}={n!r} must be an integer from 1 to {_MAX_POINTS}")
    return np.geomspace(start_ns, stop_ns, int(n))
