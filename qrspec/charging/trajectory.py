"""n_c(t) and tau_A,XX^{nc-}(t) from the charged segments of one particle (paper Figs. 1f, 2g).

Each charged segment (or sliding window of ``window`` consecutive segments) is inverted with
:func:`qrspec.charging.inverse.infer_charging` against the same particle's neutral reference.
A window of several segments combines their lifetimes by inverse-variance weighting, which is
only meaningful when the segments are in the same charge state (methods.md §1.6 "non-integer
and mean n_c"): prefer change-point segments as windows (``window=1``, the default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.inverse import ChargedObservation, ChargingFit, infer_charging
from qrspec.charging.neutral import NeutralReference
from qrspec.errors import QrspecError

__all__ = ["ChargingTrajectory", "charging_trajectory"]


@dataclass(frozen=True, eq=False)
class ChargingTrajectory:
    """Per-window results (arrays of length n_windows).

    Attributes
    ----------
    t_start_s, t_stop_s, t_mid_s : ndarray
        Window limits and centre.
    n, n_lo, n_hi : ndarray
        Charge number and its 68 % interval.
    tau_a_xx_ns, tau_a_xx_err_ns : ndarray
        Model tau_A,XX^{nc-} and delta-method error.
    tau_a_xx_direct_ns, tau_a_xx_direct_err_ns : ndarray
        Model-free tau_A,XX^{nc-} (capped, xi = 0).
    chi2, dof : ndarray
    success : ndarray of bool
    flags : tuple of tuple of str
    fits : tuple of ChargingFit
    """

    t_start_s: np.ndarray
    t_stop_s: np.ndarray
    t_mid_s: np.ndarray
    n: np.ndarray
    n_lo: np.ndarray
    n_hi: np.ndarray
    tau_a_xx_ns: np.ndarray
    tau_a_xx_err_ns: np.ndarray
    tau_a_xx_direct_ns: np.ndarray
    tau_a_xx_direct_err_ns: np.ndarray
    chi2: np.ndarray
    dof: np.ndarray
    success: np.ndarray
    flags: tuple
    fits: tuple


def _as_window(item, i) -> ChargedObservation:
    if isinstance(item, Mapping):
        names = {f.name for f in fields(ChargedObservation)}
        unknown = sorted(set(item) - names)
        if unknown:
            raise QrspecError(f"segments[{i}] has unknown keys {unknown}; known: {sorted(names)}")
        item = ChargedObservation(**item)
    if not isinstance(item, ChargedObservation):
        raise QrspecError(f"segments[{i}]={item!r} must be a ChargedObservation or a mapping")
    if item.t_start_s is None:
        raise QrspecError(f"segments[{i}] has no t_start_s/t_stop_s: a trajectory needs times")
    return item


def _combine(segs):
    """Inverse-variance weighted lifetimes of several segments (same charge state assumed)."""
    if len(segs) == 1:
        return segs[0]

    def wmean(vals, errs):
        w = 1.0 / np.square(errs)
        return float(np.sum(w * vals) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w)))

    tx, sx = wmean([s.tau_x_ns for s in segs], [s.tau_x_err_ns for s in segs])
    txx, sxx = wmean([s.tau_xx_ns for s in segs], [s.tau_xx_err_ns for s in segs])
    g2s = [s for s in segs if s.g2 is not None]
    g2, g2e = wmean([s.g2 for s in g2s], [s.g2_err for s in g2s]) if g2s else (None, 0.0)
    rs = [s for s in segs if s.rad_ratio is not None]
    rr, rre = (wmean([s.rad_ratio for s in rs], [s.rad_ratio_err for s in rs]) if rs
               else (None, 0.0))
    return ChargedObservation(tx, sx, txx, sxx, g2, g2e, rr, rre, t_start_s=segs[0].t_start_s,
                              t_stop_s=segs[-1].t_stop_s)


def charging_trajectory(segments, neutral: NeutralReference,
                        config: ChargeModelConfig | None = None, *, window: int = 1,
                        step: int | None = None, **fit_options) -> ChargingTrajectory:
    """Invert every charged segment (or sliding window of segments) of one particle.

    Parameters
    ----------
    segments : sequence of ChargedObservation or dict
        Charged segments in time order, with ``t_start_s`` and ``t_stop_s`` (dict keys as the
        :class:`~qrspec.charging.inverse.ChargedObservation` fields).
    neutral : NeutralReference
        The same particle's neutral reference.
    config : ChargeModelConfig, optional
        Model (default: methods.md §1.8).
    window : int
        Number of consecutive segments combined per point.
    step : int, optional
        Advance between windows (default ``window``: non-overlapping).
    **fit_options
        Passed to :func:`infer_charging` (``free``, ``n_max``, ``profile``, ``n_boot``, ...).

    Returns
    -------
    ChargingTrajectory
    """
    segs = [_as_window(s, i) for i, s in enumerate(segments)]
    if not segs:
        raise QrspecError("segments=[] is empty; need at least one charged segment")
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise QrspecError(f"window={window!r} must be an integer >= 1")
    step = int(window) if step is None else step
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise QrspecError(f"step={step!r} must be an integer >= 1")
    starts = [s.t_start_s for s in segs]
    if any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        raise QrspecError("segments must be sorted by t_start_s")
    window, step = int(window), int(step)
    if window > len(segs):
        raise QrspecError(f"window={window} exceeds the {len(segs)} segments")
    rows = []
    fits: list[ChargingFit] = []
    for i0 in range(0, len(segs) - window + 1, step):
        group = segs[i0:i0 + window]
        fit = infer_charging(neutral, _combine(group), config, **fit_options)
        fits.append(fit)
        rows.append((group[0].t_start_s, group[-1].t_stop_s))
    t0 = np.array([r[0] for r in rows])
    t1 = np.array([r[1] for r in rows])

    def col(name):
        return np.array([getattr(f, name) for f in fits], dtype=float)

    return ChargingTrajectory(
        t_start_s=t0, t_stop_s=t1, t_mid_s=(t0 + t1) / 2, n=col("n"), n_lo=col("n_lo"),
        n_hi=col("n_hi"), tau_a_xx_ns=col("tau_a_xx_ns"), tau_a_xx_err_ns=col("tau_a_xx_err_ns"),
        tau_a_xx_direct_ns=col("tau_a_xx_direct_ns"),
        tau_a_xx_direct_err_ns=col("tau_a_xx_direct_err_ns"), chi2=col("chi2"),
        dof=np.array([f.dof for f in fits], dtype=int),
        success=np.array([f.success for f in fits], dtype=bool),
        flags=tuple(f.flags for f in fits), fits=tuple(fits))
