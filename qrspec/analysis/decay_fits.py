"""Exciton tail fits of aligned decays, shared by the levels stage (one mono-exponential fit per
level), the states stage and the charging windows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ExcitonFit", "fit_x", "whole_bins", "merge_rows", "TAIL_START_NS", "FIT_BIN_NS",
           "NO_TAIL"]

TAIL_START_NS = 0.3  # tail fits start this far after the rise: past the IRF peak (~0.1 ns)
FIT_BIN_NS = 0.1  # decays are fitted on ~0.1 ns bins (whole TCSPC bins): 6x fewer than 16 ps
NO_TAIL = ("tail fit start t0 + 0.3 ns = {:.4g} ns is past the end of the period (rise at "
           "the period end or a one-bin decay)")


@dataclass(frozen=True, eq=False)
class ExcitonFit:
    """Exciton lifetime of one decay (:func:`fit_x`); ``fit`` is the LifetimeFit used (None
    when no fit was made), ``message`` says why the lifetime is NaN."""

    tau_ns: float
    tau_err_ns: float
    message: str
    fit: object | None


def whole_bins(decay):
    """Counts and left edges without a last, shorter bin (period not a multiple of the bin)."""
    n = int(np.floor(decay.period_ns / decay.bin_ns + 1e-9))
    return decay.counts[:n], decay.time_ns[:n]


def merge_rows(rows: np.ndarray) -> np.ndarray:
    """Merge touching (start, stop) rows (segments of one label can be adjacent)."""
    if rows.size == 0:
        return rows.reshape(0, 2)
    out = [list(rows[0])]
    for a, b in rows[1:]:
        if a <= out[-1][1] + 1e-12:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out)


def fit_x(decay, min_photons: int, models=("bi", "mono"), method: str = "mle", *,
          fixed_background=None) -> ExcitonFit:
    """Exciton lifetime of an aligned decay: bi-exponential tail fit (the short component
    absorbs the biexciton), mono-exponential when the bi fit cannot separate two components.

    Parameters
    ----------
    decay : qrspec.stats.decay.Decay
        Aligned decay (its rise ``t0_ns`` starts the tail at ``t0 + TAIL_START_NS``).
    min_photons : int
        Fewer photons: no fit (NaN with a message).
    models : tuple of str
        ``("bi", "mono")`` or ``("mono",)``.
    method : {"mle", "lsq"}
        Poisson maximum likelihood or Neyman-weighted least squares
        (:func:`qrspec.fitting.lifetime.fit_decay`).
    fixed_background : ndarray, optional
        Known expected counts per bin of ``decay`` added to the model besides the fitted flat
        background (the afterpulse profile, :mod:`qrspec.analysis.detector`).

    Returns
    -------
    ExcitonFit
    """
    from qrspec.fitting.lifetime import fit_decay

    if decay.n_photons < min_photons:
        return ExcitonFit(math.nan, math.nan, f"{decay.n_photons} photons < {min_photons}",
                          None)
    start = decay.t0_ns + TAIL_START_NS
    counts, time_ns = whole_bins(decay)
    if not start < time_ns.size * decay.bin_ns:
        return ExcitonFit(math.nan, math.nan, NO_TAIL.format(start), None)
    kw = dict(time_ns=time_ns, period_ns=decay.period_ns, fit_range_ns=(start, decay.period_ns),
              irf=None, background="fit", method=method)
    if fixed_background is not None:
        kw["fixed_background"] = np.asarray(fixed_background, np.float64)[:counts.size]
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
