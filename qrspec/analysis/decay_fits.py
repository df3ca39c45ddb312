"""Exciton tail fits of aligned decays, shared by the levels, states and charging stages.

The levels stage makes one mono-exponential fit per level; the states stage and the charging
windows use the same fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["late_tail_start_ns", "LATE_TAIL_XX", "ExcitonFit", "fit_x", "fit_bin_ns",
           "fit_stop_ns", "whole_bins", "merge_rows", "TAIL_START_NS", "FIT_BIN_NS", "NO_TAIL",
           "IRF_SHIFT_BOUNDS_NS", "CASCADE_START_NS"]

TAIL_START_NS = 0.3  # tail fits start this far after the rise: past the IRF peak (~0.1 ns)
FIT_BIN_NS = 0.1  # decays are fitted on ~0.1 ns bins (whole TCSPC bins): 6x fewer than 16 ps
IRF_SHIFT_BOUNDS_NS = (-0.2, 0.2)  # TTTR IRF: same cables and offsets, only a colour shift
NO_TAIL = ("tail fit start t0 + 0.3 ns = {:.4g} ns is past the end of the period (rise at "
           "the period end or a one-bin decay)")


@dataclass(frozen=True, eq=False)
class ExcitonFit:
    """Exciton lifetime of one decay (:func:`fit_x`).

    ``fit`` is the LifetimeFit used (None when no fit was made), ``message`` says why the lifetime
    is NaN.
    """

    tau_ns: float
    tau_err_ns: float
    message: str
    fit: object | None


def whole_bins(decay):
    """Counts and left edges without a last, shorter bin (period not a multiple of the bin)."""
    n = int(np.floor(decay.period_ns / decay.bin_ns + 1e-9))
    return decay.counts[:n], decay.time_ns[:n]


def fit_bin_ns(photons) -> float:
    """Bin of the fitted decays.

    ``FIT_BIN_NS``, or one TCSPC bin when that is coarser (some instruments bin at 0.25-4 ns; a
    decay cannot be finer than its data).
    """
    res_ns = photons.nanotimes_unit * 1e9
    return FIT_BIN_NS if res_ns <= FIT_BIN_NS else res_ns


def fit_stop_ns(decay) -> float:
    """End of the fit range on a decay's aligned axis.

    The period, or, when the TCSPC range is shorter than the period (``Decay.recorded_ns``), the
    end of the range every detector records (``recorded - max(offset)``: detector d records aligned
    times ``[-off_d, recorded - off_d)``).
    """
    rec = decay.recorded_ns
    if rec is None or not rec < decay.period_ns - 0.5 * decay.resolution_ns:
        return float(decay.period_ns)
    off = np.asarray(decay.offsets_ns, float)
    return float(rec - max(0.0, float(off.max()) if off.size else 0.0))


def merge_rows(rows: np.ndarray) -> np.ndarray:
    """Merge touching or overlapping (start, stop) rows (segments of one label can be adjacent).

    :func:`qrspec.validate.merge_intervals` on an ``(n, 2)`` array.
    """
    from qrspec.validate import merge_intervals

    rows = np.asarray(rows, np.float64).reshape(-1, 2)
    lo, hi = merge_intervals(rows[:, 0], rows[:, 1])
    return np.column_stack([lo, hi])


CASCADE_START_NS = 1.0  # the neutral cascade fit starts 1 ns after the rise: past an IRF of
# sigma <= 0.2 ns; on issue 15's 30 rods pulls were alike from 0.6 to 1.5 ns (std 1.29-1.34,
# 1.24 at 1 ns) and worse from 2-3 ns (the cascade's rise is no longer seen)
LATE_TAIL_XX = 4.0  # the exciton's late tail starts this many biexciton lifetimes after the rise


def late_tail_start_ns(tau_xx_ns: float, tau_xx_err_ns: float = 0.0) -> float | None:
    """Start (after the rise) of a state's exciton tail fit when its tau_XX is measured.

    The start is ``LATE_TAIL_XX (tau_XX + 2 sigma)`` (at least ``TAIL_START_NS``), the rule of the
    level evidence (:mod:`qrspec.levels.evidence`); None without a tau_XX (biexciton lifetime).

    Early in the decay the biexciton photons and the exciton photons that follow a biexciton
    (emitted at T_XX + T_X) distort the fit: from ``TAIL_START_NS`` on (bi-exponential),
    tau_X0 of a 20-s neutral rod came out +0.5 % (2-3 standard errors) too long at <N> = 0.3;
    from 3 tau_XX on (mono-exponential) the biexciton photons still there made it 0.7 % too
    short; from 4 (tau_XX + 2 sigma) on the pulls are ~N(0, 1), for a ~1.7x larger error. (On
    brighter rods at <N> 0.4-0.5 it is still 0.25-1 % short, pulls down to -11: issue 15; the
    neutral state fits the X/XX cascade instead when <N> is known:
    :func:`~qrspec.analysis.states.measure_state`.)
    """
    if not (math.isfinite(tau_xx_ns) and tau_xx_ns > 0):
        return None
    err = tau_xx_err_ns if math.isfinite(tau_xx_err_ns) else 0.0
    return max(TAIL_START_NS, LATE_TAIL_XX * (float(tau_xx_ns) + 2.0 * err))


def fit_x(decay, min_photons: int, models=("bi", "mono"), method: str = "mle", *, irf=None,
          shift_bounds_ns=IRF_SHIFT_BOUNDS_NS, start_ns: float | None = None,
          fixed_background=None, mean_excitations: float | None = None) -> ExcitonFit:
    """Exciton lifetime of an aligned decay.

    Bi-exponential fit (the short component absorbs the biexciton), mono-exponential when the bi
    fit cannot separate two components; or, with ``"cascade"`` first in ``models``, the
    constrained X/XX cascade at a known <N> (:func:`qrspec.fitting.lifetime.fit_decay`,
    ``model="cascade"``), the others when it fails.

    Without ``irf`` a tail fit from ``t0 + TAIL_START_NS``; with a measured IRF a
    reconvolution fit of the whole recorded range with a fitted IRF shift. Either ends at
    :func:`fit_stop_ns` (before the end of a TCSPC range shorter than the period).

    Parameters
    ----------
    decay : qrspec.stats.decay.Decay
        Aligned decay (its rise ``t0_ns`` starts the tail at ``t0 + TAIL_START_NS``).
    min_photons : int
        Fewer photons: no fit (NaN with a message).
    models : tuple of str
        ``("bi", "mono")``, ``("mono",)`` or ``("cascade", ...)`` (needs ``mean_excitations``).
    method : {"mle", "lsq"}
        Poisson maximum likelihood or Neyman-weighted least squares
        (:func:`qrspec.fitting.lifetime.fit_decay`).
    irf : ndarray, optional
        Measured IRF on the decay's bins (background subtracted; normalised by the fit).
    shift_bounds_ns : (float, float)
        Bounds of the fitted IRF shift.
    start_ns : float, optional
        Tail fit start after the rise (default ``TAIL_START_NS``; a late tail, e.g. three
        biexciton lifetimes, is mono-exponential: :func:`late_tail_start_ns`).
    fixed_background : ndarray, optional
        Known expected counts per bin of ``decay`` added to the model besides the fitted flat
        background (the afterpulse profile, :mod:`qrspec.analysis.detector`).
    mean_excitations : float, optional
        <N> of the cascade model (required with ``"cascade"``).

    Returns
    -------
    ExcitonFit
    """
    from qrspec.fitting.lifetime import fit_decay

    if decay.n_photons < min_photons:
        return ExcitonFit(math.nan, math.nan, f"{decay.n_photons} photons < {min_photons}",
                          None)
    start = decay.t0_ns + (TAIL_START_NS if start_ns is None else float(start_ns))
    counts, time_ns = whole_bins(decay)
    stop = min(fit_stop_ns(decay), time_ns.size * decay.bin_ns)
    if irf is None:
        if not start < stop:
            return ExcitonFit(math.nan, math.nan, NO_TAIL.format(start)
                              if start_ns is None else f"late tail start {start:.4g} ns is past "
                              "the end of the period", None)
        kw = dict(fit_range_ns=(start, stop), irf=None)
    else:
        kw = dict(fit_range_ns=(0.0, stop), irf=np.asarray(irf, float)[:counts.size],
                  shift_bounds_ns=shift_bounds_ns)
    kw.update(time_ns=time_ns, period_ns=decay.period_ns, background="fit", method=method)
    if fixed_background is not None:
        kw["fixed_background"] = np.asarray(fixed_background, np.float64)[:counts.size]
    if "cascade" in models:
        cas = fit_decay(counts, model="cascade", mean_excitations=mean_excitations, **kw)
        err = cas.param_errs.get("tau_x_ns", math.nan) if cas.success else math.nan
        if math.isfinite(err) and err > 0:
            return ExcitonFit(float(cas.params["tau_x_ns"]), float(err), "", cas)
        if not {"bi", "mono"} & set(models):
            why = cas.message if not cas.success else "no finite tau_X error"
            return ExcitonFit(math.nan, math.nan, f"cascade fit failed: {why}", None)
    bi = fit_decay(counts, model="bi", **kw) if "bi" in models else None
    if bi is not None and bi.success and bi.tau_ns[0] < 0.8 * bi.tau_ns[1]:
        # the exciton carries most photons (the biexciton share is ~<N>/2 at low <N>); a minor
        # long component is contamination from neighbouring states at segment edges
        k = int(np.argmax(bi.fractions))
        if np.isfinite(bi.tau_err_ns[k]):
            return ExcitonFit(bi.tau_ns[k], bi.tau_err_ns[k], "", bi)
    mono = fit_decay(counts, model="mono", **kw)
    if mono.success:
        return ExcitonFit(mono.tau_ns[0], mono.tau_err_ns[0], "", mono)
    return ExcitonFit(math.nan, math.nan, f"lifetime fit failed: {mono.message}", None)
