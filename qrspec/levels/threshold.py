"""Threshold / hysteresis level assignment on a binned intensity trace (methods.md §3.1).

1. Bin all photons at ``bin_width_s``.
2. Thresholds: given by the user (``thresholds_cps``), or from a K-component Poisson mixture
   fitted by EM to the counts of the complete bins, K <= max_levels chosen by the smallest
   ``BIC = -2 ln L + (2K - 1) ln(n_bins)``; the threshold between adjacent components is where
   their weighted posteriors are equal:
   ``c* = (mu_b - mu_a + ln(w_a / w_b)) / ln(mu_b / mu_a)`` counts per bin.
3. Hysteresis: a bin moves up across threshold ``theta`` (counts per bin) only when its count is
   ``>= theta + z sqrt(theta)`` and down only when ``< theta - z sqrt(theta)``
   (``z = hysteresis_sigma``, the Poisson noise scale at the threshold).
4. Runs shorter than ``min_dwell_bins`` are absorbed by the preceding run (the first run by the
   next one).

The time resolution is the bin width; transitions inside a bin are split. The change-point
method (:func:`qrspec.levels.find_change_points`) does not have this limitation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.levels.segments import Segments

__all__ = ["ThresholdLevels", "threshold_levels", "fit_poisson_mixture"]


@dataclass(frozen=True, eq=False)
class ThresholdLevels:
    """Result of :func:`threshold_levels`.

    Attributes
    ----------
    segments : Segments
        Runs of bins in one state; ``level`` is the state (0 = below the lowest threshold).
    counts : ndarray of int64
        Photon counts per bin.
    bin_width_s : float
        Bin width.
    start_s : float
        Start of the first bin.
    state : ndarray of int64
        State of each bin after hysteresis and the minimum dwell.
    thresholds_cps : ndarray of float64
        Thresholds between adjacent states (ascending).
    lower_cps, upper_cps : ndarray of float64
        Hysteresis band around each threshold.
    means_cps : ndarray of float64 or None
        Mixture component means (automatic thresholds only).
    weights : ndarray of float64 or None
        Mixture weights (automatic thresholds only).
    misassignment : float
        Expected fraction of misassigned bins from the mixture posteriors
        (``mean(1 - max posterior)``; NaN with user thresholds).
    """

    segments: Segments
    counts: np.ndarray
    bin_width_s: float
    start_s: float
    state: np.ndarray
    thresholds_cps: np.ndarray
    lower_cps: np.ndarray
    upper_cps: np.ndarray
    means_cps: np.ndarray | None
    weights: np.ndarray | None
    misassignment: float


def _mixture_loglik(values, mult, means, weights):
    from scipy.special import gammaln, logsumexp

    logp = (values[:, None] * np.log(means[None, :]) - means[None, :]
            - gammaln(values + 1.0)[:, None] + np.log(weights)[None, :])
    norm = logsumexp(logp, axis=1)
    return logp, norm, float((mult * norm).sum())


def fit_poisson_mixture(counts, n_components: int, *, max_iter: int = 500, tol: float = 1e-10):
    """Poisson-mixture EM on bin counts.

    Parameters
    ----------
    counts : array_like of int
        Counts per bin.
    n_components : int
        Number of components K (>= 1).

    Returns
    -------
    means : ndarray
        Component means in counts per bin, ascending.
    weights : ndarray
        Component weights.
    loglik : float
        Maximised log-likelihood.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0:
        raise QrspecError(f"counts must be a non-empty 1-D array, got shape {c.shape}")
    if not isinstance(n_components, int | np.integer) or n_components < 1:
        raise QrspecError(f"n_components={n_components!r} must be an integer >= 1")
    values, mult = np.unique(c.astype(np.float64), return_counts=True)
    mult = mult.astype(np.float64)
    floor = 1e-3
    qs = (np.arange(n_components) + 0.5) / n_components
    means = np.maximum(np.quantile(c, qs).astype(np.float64), floor)
    means = means + 1e-6 * np.arange(n_components)  # distinct starts
    weights = np.full(n_components, 1.0 / n_components)
    prev = -np.inf
    for _ in range(max_iter):
        logp, norm, ll = _mixture_loglik(values, mult, means, weights)
        resp = np.exp(logp - norm[:, None]) * mult[:, None]
        wsum = resp.sum(axis=0)
        weights = np.maximum(wsum / mult.sum(), 1e-300)
        means = np.maximum((resp * values[:, None]).sum(axis=0) / np.maximum(wsum, 1e-300),
                           floor)
        if abs(ll - prev) <= tol * max(1.0, abs(ll)):
            break
        prev = ll
    order = np.argsort(means)
    means, weights = means[order], weights[order]
    _, _, ll = _mixture_loglik(values, mult, means, weights)
    return means, weights, ll


def _equal_posterior(ma, mb, wa, wb):
    return (mb - ma + np.log(wa / wb)) / np.log(mb / ma)


def threshold_levels(
    times,
    *,
    timestamps_unit: float | None = None,
    bin_width_s: float = 0.01,
    thresholds_cps=None,
    max_levels: int = 5,
    hysteresis_sigma: float = 1.0,
    min_dwell_bins: int = 2,
) -> ThresholdLevels:
    """Assign intensity levels by thresholds with hysteresis on a binned trace.

    Parameters
    ----------
    times : Photons, ndarray of int64 ticks, or ndarray of float64 seconds
        Sorted arrival times of all photons.
    timestamps_unit : float, optional
        Seconds per tick for integer times.
    bin_width_s : float
        Bin width (default 10 ms; choose it so that the dimmest level has >= 20 counts per bin).
    thresholds_cps : sequence of float, optional
        Ascending thresholds between levels in counts per second; automatic (Poisson mixture +
        BIC) when omitted.
    max_levels : int
        Largest number of mixture components for automatic thresholds (1..10).
    hysteresis_sigma : float
        Half-width of the hysteresis band in Poisson standard deviations at the threshold
        (0 disables hysteresis).
    min_dwell_bins : int
        Shortest accepted stay in a state, in bins (>= 1).

    Returns
    -------
    ThresholdLevels
    """
    from qrspec.levels import _kernels
    from qrspec.levels.changepoint import prepare_times

    if not np.isfinite(bin_width_s) or not bin_width_s > 0:
        raise QrspecError(f"bin_width_s={bin_width_s!r} must be > 0")
    if not np.isfinite(hysteresis_sigma) or hysteresis_sigma < 0:
        raise QrspecError(f"hysteresis_sigma={hysteresis_sigma!r} must be >= 0")
    if not isinstance(min_dwell_bins, int | np.integer) or min_dwell_bins < 1:
        raise QrspecError(f"min_dwell_bins={min_dwell_bins!r} must be an integer >= 1")
    if not isinstance(max_levels, int | np.integer) or not 1 <= max_levels <= 10:
        raise QrspecError(f"max_levels={max_levels!r} must be an integer in 1..10")
    _x, t_s, _unit = prepare_times(times, timestamps_unit)
    t_s = np.asarray(t_s, dtype=np.float64)
    if t_s.size < 2:
        raise QrspecError(f"need at least 2 photons, got {t_s.size}")
    start = float(t_s[0])
    n_bins = int(np.floor((t_s[-1] - start) / bin_width_s)) + 1
    edges = start + bin_width_s * np.arange(n_bins + 1)
    edge_index = np.searchsorted(t_s, edges, side="left")
    edge_index[-1] = t_s.size
    counts = np.diff(edge_index).astype(np.int64)
    complete = counts[:-1] if n_bins > 1 else counts

    means = weights = None
    misassign = float("nan")
    if thresholds_cps is None:
        best = None
        for k in range(1, max_levels + 1):
            if k > np.unique(complete).size:
                break
            m, w, ll = fit_poisson_mixture(complete, k)
            bic = -2.0 * ll + (2 * k - 1) * np.log(complete.size)
            if best is None or bic < best[0]:
                best = (bic, m, w)
        _, means, weights = best
        thr = np.array([_equal_posterior(means[j], means[j + 1], weights[j], weights[j + 1])
                        for j in range(means.size - 1)])
        values = complete.astype(np.float64)
        logp, norm, _ = _mixture_loglik(values, np.ones_like(values), means, weights)
        misassign = float(np.mean(1.0 - np.exp(logp.max(axis=1) - norm)))
    else:
        thr_cps = np.atleast_1d(np.asarray(thresholds_cps, dtype=np.float64))
        if thr_cps.ndim != 1 or not np.all(np.isfinite(thr_cps)) or np.any(thr_cps <= 0):
            raise QrspecError(f"thresholds_cps={thresholds_cps!r} must be positive and finite")
        if np.any(np.diff(thr_cps) <= 0):
            raise QrspecError(f"thresholds_cps={thresholds_cps!r} must be strictly ascending")
        thr = thr_cps * bin_width_s
    half = hysteresis_sigma * np.sqrt(np.maximum(thr, 0.0))
    lower, upper = thr - half, thr + half
    if hysteresis_sigma == 0:
        lower = upper = thr
    state = _kernels.hysteresis_states(counts.astype(np.float64), lower, upper)
    state = _min_dwell(state, int(min_dwell_bins))
    change = np.flatnonzero(np.diff(state)) + 1
    run_start = np.concatenate([[0], change])
    bounds_bins = np.concatenate([run_start, [n_bins]])
    seg = Segments.from_boundaries(edges[bounds_bins], edge_index[bounds_bins])
    seg = seg.with_levels(state[run_start])
    return ThresholdLevels(
        segments=seg,
        counts=counts,
        bin_width_s=float(bin_width_s),
        start_s=start,
        state=state,
        thresholds_cps=thr / bin_width_s,
        lower_cps=lower / bin_width_s,
        upper_cps=upper / bin_width_s,
        means_cps=None if means is None else means / bin_width_s,
        weights=weights,
        misassignment=misassign,
    )


def _min_dwell(state: np.ndarray, min_bins: int) -> np.ndarray:
    """Absorb runs shorter than ``min_bins`` into the preceding run (first run: the next)."""
    s = state.copy()
    if min_bins <= 1 or s.size == 0:
        return s
    change = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [s.size]])
    values = s[starts]
    out = []  # [state, length] of accepted runs
    pending = 0  # leading short bins waiting for the first long run
    for v, a, b in zip(values, starts, ends, strict=True):
        n = int(b - a)
        if n < min_bins:
            if out:
                out[-1][1] += n
            else:
                pending += n
            continue
        if out and out[-1][0] == v:
            out[-1][1] += n
        else:
            out.append([int(v), n + pending])
            pending = 0
    if not out:  # every run is short: keep the input
        return s
    return np.repeat([o[0] for o in out], [o[1] for o in out]).astype(s.dtype)
