"""Numba kernels of the dwell-time analysis: the KS scan of t_min and its bootstrap.

Arrays in, arrays out; no checks (the wrappers in :mod:`qrspec.levels.dwell_laws` validate).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def candidate_indices(x, resolution, min_events, max_candidates):
    """Indices into sorted ``x`` of the t_min candidates.

    Distinct values >= resolution that leave >= min_events values at or above them; at most
    ``max_candidates``, log-spaced by rank beyond that.
    """
    n = x.size
    out = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if x[i] < resolution or n - i < min_events:
            continue
        if i > 0 and x[i] == x[i - 1]:
            continue
        out[m] = i
        m += 1
    if m <= max_candidates:
        return out[:m].copy()
    pick = np.empty(max_candidates, np.int64)
    k = 0
    last = -1
    for j in range(max_candidates):
        r = int(np.round(np.exp(np.log(m) * j / (max_candidates - 1)))) - 1
        if r > last:
            pick[k] = out[r]
            k += 1
            last = r
    return pick[:k].copy()


@numba.njit(cache=True, nogil=True)
def ks_scan(x, censored, cand):
    """KS distance of the complete tail to the censored power-law MLE at each candidate.

    ``x`` sorted ascending (complete durations), ``censored`` any order, ``cand`` indices into
    ``x``. Returns ``(ks, alpha)`` per candidate (``inf``/NaN where the tail is degenerate).
    """
    n = x.size
    lnx = np.log(x)
    suffix = np.zeros(n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + lnx[i]
    # ECDF with ties: right[j] = #(x <= x_j), left[j] = #(x < x_j)
    right = np.empty(n, np.int64)
    left = np.empty(n, np.int64)
    j = 0
    while j < n:
        k = j
        while k + 1 < n and x[k + 1] == x[j]:
            k += 1
        for q in range(j, k + 1):
            left[q] = j
            right[q] = k + 1
        j = k + 1
    ks = np.full(cand.size, np.inf)
    alpha = np.full(cand.size, np.nan)
    for c_i in range(cand.size):
        i = cand[c_i]
        nt = n - i
        lt = lnx[i]
        total = suffix[i] - nt * lt
        for c in censored:
            if c >= x[i]:
                total += np.log(c) - lt
        if not total > 0:
            continue
        a = 1.0 + nt / total
        d = 0.0
        for q in range(i, n):
            f = -np.expm1((1.0 - a) * (lnx[q] - lt))
            hi = (right[q] - i) / nt - f
            lo = f - (left[q] - i) / nt
            if hi > d:
                d = hi
            if lo > d:
                d = lo
        ks[c_i] = d
        alpha[c_i] = a
    return ks, alpha


@numba.njit(cache=True, nogil=True)
def bootstrap_power_law(x, censored, resolution, min_events, max_candidates, n_boot, seed):
    """Power-law exponent and t_min of ``n_boot`` resamples of the complete durations ``x``.

    Resamples are drawn with replacement, each with its own KS choice of t_min; censored stays are
    kept as they are.

    Returns ``(alpha, t_min)`` arrays (NaN where a resample has no candidate).
    """
    np.random.seed(seed)
    n = x.size
    alphas = np.full(n_boot, np.nan)
    tmins = np.full(n_boot, np.nan)
    xb = np.empty(n)
    for b in range(n_boot):
        for i in range(n):
            xb[i] = x[np.random.randint(0, n)]
        xs = np.sort(xb)
        cand = candidate_indices(xs, resolution, min_events, max_candidates)
        if cand.size == 0:
            continue
        ks, alpha = ks_scan(xs, censored, cand)
        best = np.argmin(ks)
        if np.isfinite(ks[best]):
            alphas[b] = alpha[best]
            tmins[b] = xs[cand[best]]
    return alphas, tmins
