"""Clustering of segments into intensity levels (Watkins & Yang 2005, ``BICCluster.c``).

1. Agglomerative hierarchical clustering (AHC) of the segments: start from one cluster per
   segment and repeatedly merge the two clusters, adjacent in intensity, whose merge loses the
   least Poisson log-likelihood ``N_a ln(N_a/T_a) + N_b ln(N_b/T_b) - N ln(N/T)``. The partition
   with G clusters initialises step 2, for G = 1 .. max_levels.
2. Expectation-maximisation of the segment-level Poisson mixture
   ``P(n_j) = sum_g p_g Pois(n_j; I_g T_j)``, then hard assignment to the most probable level.
3. ``ln L(G) = sum_j ln Pois(n_j; I_g(j) T_j)`` with ``I_g`` the photon-weighted intensity of the
   assigned segments and ``BIC(G) = 2 [ln L - (2G - 1)/2 ln d - d/2 ln N]`` with ``d`` the number
   of level-changing transitions between consecutive segments and ``N`` the photon count;
   ``G = 1`` uses ``ln(number of segments)`` in place of ``ln d`` (reference code). The G with the
   largest BIC wins among the *resolvable* partitions (step 4).
4. Resolvability (an addition to Watkins & Yang, ``min_separation_sigma``): adjacent levels must
   differ by more than ``z (sqrt(I_a/T_a) + sqrt(I_b/T_b))``, with ``T`` the median segment
   duration of each level, i.e. be separable on a typical single segment (the criterion of
   methods.md §3.1 with the typical segment as the bin). Spurious change points cut segments
   where the intensity contrast is largest, so without this rule the BIC often splits one real
   level into two close sub-levels.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.levels.segments import Segments

__all__ = ["LevelClustering", "cluster_levels"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LevelClustering:
    """Segments grouped into intensity levels.

    Attributes
    ----------
    segments : Segments
        The input segments with ``level`` set (0 = dimmest).
    n_levels : int
        Number of levels chosen (by BIC unless fixed).
    intensity_cps : ndarray of float64
        Photon-weighted intensity of each level, ``photons / time`` (ascending).
    intensity_err_cps : ndarray of float64
        Poisson standard error ``sqrt(photons) / time``.
    n_photons : ndarray of int64
        Photons in each level.
    duration_s : ndarray of float64
        Time spent in each level.
    bic : ndarray of float64
        BIC for G = 1 .. max_levels (``-inf`` where G levels cannot be formed).
    dwell_times_s : tuple of ndarray
        Durations of the uninterrupted stays in each level (the first and last stays are cut by
        the trace ends).
    """

    segments: Segments
    n_levels: int
    intensity_cps: np.ndarray
    intensity_err_cps: np.ndarray
    n_photons: np.ndarray
    duration_s: np.ndarray
    bic: np.ndarray
    dwell_times_s: tuple

    def __repr__(self) -> str:
        rates = ", ".join(f"{r:.4g}" for r in self.intensity_cps)
        return f"LevelClustering(n_levels={self.n_levels}, intensity_cps=[{rates}])"


def _nlogr(n, t):
    """``n ln(n/t)`` with 0 for n == 0."""
    n = np.asarray(n, np.float64)
    out = np.zeros_like(n)
    pos = n > 0
    out[pos] = n[pos] * np.log(n[pos] / np.asarray(t, np.float64)[pos])
    return out


def _ahc(counts, durations, max_levels):
    """AHC of segments sorted by intensity; returns ``{G: cluster index per segment}``."""
    s = counts.size
    order = np.argsort(counts / durations, kind="stable")
    n = counts[order].astype(np.float64)
    t = durations[order].astype(np.float64)
    parent = np.arange(s)
    left = np.arange(s) - 1
    right = np.arange(s) + 1
    right[-1] = -1
    version = np.zeros(s, np.int64)
    ll = _nlogr(n, t)

    nl = n.tolist()
    tl = t.tolist()
    lll = ll.tolist()

    def nlogr(a, b):
        return a * math.log(a / b) if a > 0 else 0.0

    def cost(i, j):
        return lll[i] + lll[j] - nlogr(nl[i] + nl[j], tl[i] + tl[j])

    heap = [(cost(i, i + 1), i, i + 1, 0, 0) for i in range(s - 1)]
    heapq.heapify(heap)

    def snapshot():
        roots = parent.copy()
        while True:
            nxt = parent[roots]
            if np.array_equal(nxt, roots):
                break
            roots = nxt
        _, lab = np.unique(roots, return_inverse=True)  # roots are in intensity order
        out = np.empty(s, np.int64)
        out[order] = lab
        return out

    result = {}
    count = s
    if count <= max_levels:
        result[count] = snapshot()
    while count > 1 and heap:
        c, i, j, vi, vj = heapq.heappop(heap)
        if version[i] != vi or version[j] != vj or parent[i] != i or parent[j] != j:
            continue
        nl[i] += nl[j]
        tl[i] += tl[j]
        lll[i] = nlogr(nl[i], tl[i])
        parent[j] = i
        version[i] += 1
        version[j] += 1
        r = right[j]
        right[i] = r
        if r >= 0:
            left[r] = i
            heapq.heappush(heap, (cost(i, r), i, r, version[i], version[r]))
        lft = left[i]
        if lft >= 0:
            heapq.heappush(heap, (cost(lft, i), lft, i, version[lft], version[i]))
        count -= 1
        if count <= max_levels:
            result[count] = snapshot()
    return result


def _poisson_ll(counts, durations, rate, lgam):
    mu = rate * durations
    return counts * np.log(mu) - mu - lgam


def _em(counts, durations, lgam, init, n_groups, max_iter, tol):
    """Poisson-mixture EM started from a hard assignment; returns the hard assignment.

    Stops when the mixture log-likelihood changes by less than ``tol`` (absolute), or when the
    hard assignment (the only output) has not changed for 5 iterations.
    """
    floor = 1e-12 * counts.sum() / durations.sum()
    assign = init.copy()
    w = np.array([np.mean(assign == g) for g in range(n_groups)])
    rates = np.array([max(counts[assign == g].sum() / durations[assign == g].sum(), floor)
                      for g in range(n_groups)])
    # the terms of ln Pois(n_j; I_g T_j) that do not depend on I_g are the same for all g
    n_col = counts[:, None]
    t_col = durations[:, None]
    prev = -np.inf
    last_assign = assign
    stable = 0
    for _ in range(max_iter):
        logp = n_col * np.log(rates)[None, :] - rates[None, :] * t_col + np.log(w)[None, :]
        hard = np.argmax(logp, axis=1)
        stable = stable + 1 if np.array_equal(hard, last_assign) else 0
        last_assign = hard
        if stable >= 5:
            break
        top = logp.max(axis=1)
        resp = np.exp(logp - top[:, None])
        rsum = resp.sum(axis=1)
        total = float(np.sum(top + np.log(rsum)))
        resp /= rsum[:, None]
        wsum = resp.sum(axis=0)
        if np.any(wsum <= 0):
            break
        w = wsum / counts.size
        rates = np.maximum((resp * n_col).sum(axis=0) / (resp * t_col).sum(axis=0), floor)
        if abs(total - prev) <= tol:
            break
        prev = total
    logp = n_col * np.log(rates)[None, :] - rates[None, :] * t_col + np.log(w)[None, :]
    return np.argmax(logp, axis=1)


def _relabel(assign):
    """Renumber the used groups 0..G'-1 (order kept)."""
    _, lab = np.unique(assign, return_inverse=True)
    return lab.astype(np.int64)


def _bic(counts, durations, lgam, assign):
    g = int(assign.max()) + 1
    n_seg = counts.size
    tot_n = counts.sum()
    rates = np.bincount(assign, weights=counts, minlength=g) / np.bincount(
        assign, weights=durations, minlength=g)
    if np.any(rates <= 0) and g > 1:
        return -np.inf
    rates = np.maximum(rates, 1e-300)
    ll = float(_poisson_ll(counts, durations, rates[assign], lgam).sum())
    if g == 1:
        return 2.0 * (ll - 0.5 * np.log(n_seg))
    d = int(np.count_nonzero(np.diff(assign)))
    if d == 0:
        return -np.inf
    return 2.0 * (ll - 0.5 * (2 * g - 1) * np.log(d) - 0.5 * d * np.log(tot_n))


def _resolvable(counts, durations, assign, z):
    g = int(assign.max()) + 1
    if g == 1 or z <= 0:
        return True
    rates = np.bincount(assign, weights=counts, minlength=g) / np.bincount(
        assign, weights=durations, minlength=g)
    med_t = np.array([np.median(durations[assign == k]) for k in range(g)])
    order = np.argsort(rates)
    r, t = rates[order], med_t[order]
    sd = np.sqrt(r / t)
    return bool(np.all(np.diff(r) > z * (sd[:-1] + sd[1:])))


def cluster_levels(
    segments,
    *,
    max_levels: int = 5,
    n_levels: int | None = None,
    min_separation_sigma: float = 3.0,
    em: bool = True,
    max_iter: int = 200,
    tol: float = 1e-4,
) -> LevelClustering:
    """Group segments into intensity levels; choose the number of levels by BIC.

    Parameters
    ----------
    segments : Segments or ChangePoints
        Time-ordered segments (``ChangePoints`` are converted with ``.segments()``).
    max_levels : int
        Largest number of levels considered (1..20).
    n_levels : int, optional
        Fix the number of levels instead of choosing it by BIC.
    min_separation_sigma : float
        Resolvability rule (step 4): partitions whose adjacent levels are closer than this many
        single-segment Poisson standard deviations are not chosen by BIC (their BIC is still
        reported). 0 gives the plain Watkins & Yang choice.
    em : bool
        Refine the AHC partition by Poisson-mixture EM (Watkins & Yang); otherwise use AHC only.
    max_iter : int
        EM iterations.
    tol : float
        EM stops when the log-likelihood changes by less than this (absolute; BIC decisions
        involve differences of order 1).

    Returns
    -------
    LevelClustering
    """
    from scipy.special import gammaln

    from qrspec.levels import _kernels
    from qrspec.levels.changepoint import ChangePoints

    if isinstance(segments, ChangePoints):
        segments = segments.segments()
    if not isinstance(segments, Segments):
        raise QrspecError(f"segments must be Segments or ChangePoints, got "
                          f"{type(segments).__name__}")
    if not isinstance(max_levels, int | np.integer) or not 1 <= max_levels <= 20:
        raise QrspecError(f"max_levels={max_levels!r} must be an integer in 1..20")
    if n_levels is not None and (not isinstance(n_levels, int | np.integer)
                                 or not 1 <= n_levels <= max_levels):
        raise QrspecError(f"n_levels={n_levels!r} must be an integer in 1..max_levels="
                          f"{max_levels}")
    if not np.isfinite(min_separation_sigma) or min_separation_sigma < 0:
        raise QrspecError(f"min_separation_sigma={min_separation_sigma!r} must be >= 0")
    if segments.size == 0:
        raise QrspecError("segments is empty: nothing to cluster")
    counts = segments.n_photons.astype(np.float64)
    durations = segments.duration_s.astype(np.float64)
    if counts.sum() <= 0:
        raise QrspecError("segments hold no photons: nothing to cluster")
    lgam = gammaln(counts + 1.0)
    g_max = min(max_levels, segments.size)
    parts = _ahc(counts, durations, g_max)
    bic = np.full(max_levels, -np.inf)
    admissible = np.zeros(max_levels, bool)
    assigns = {}
    for g in range(1, g_max + 1):
        a = parts[g]
        if em and g > 1:
            a = _kernels.poisson_mixture_em(counts, durations, a.astype(np.int64), g,
                                            int(max_iter), float(tol), 5)
        a = _relabel(a)
        assigns[g] = a
        if int(a.max()) + 1 == g:
            bic[g - 1] = _bic(counts, durations, lgam, a)
            admissible[g - 1] = _resolvable(counts, durations, a, min_separation_sigma)
    if n_levels is not None:
        chosen = min(n_levels, g_max)
    else:
        chosen = int(np.argmax(np.where(admissible, bic, -np.inf))) + 1
    assign = assigns[chosen]
    # levels in ascending intensity
    g = int(assign.max()) + 1
    n_ph = np.bincount(assign, weights=segments.n_photons, minlength=g).astype(np.int64)
    dur = np.bincount(assign, weights=durations, minlength=g)
    order = np.argsort(n_ph / dur, kind="stable")
    rank = np.empty(g, np.int64)
    rank[order] = np.arange(g)
    assign = rank[assign]
    n_ph, dur = n_ph[order], dur[order]
    seg = segments.with_levels(assign)
    logger.debug("BIC %s -> %d levels", bic, g)
    return LevelClustering(
        segments=seg,
        n_levels=g,
        intensity_cps=n_ph / dur,
        intensity_err_cps=np.sqrt(n_ph) / dur,
        n_photons=n_ph,
        duration_s=dur,
        bic=bic,
        dwell_times_s=tuple(seg.dwell_times_s(level=k) for k in range(g)),
    )


def assigned_segments(levels) -> Segments:
    """The segments of a clustering (or segments given as they are), every one with a level.

    Parameters
    ----------
    levels : LevelClustering or Segments
        Clustered levels.

    Returns
    -------
    Segments

    Raises
    ------
    QrspecError
        Another type, no segments, or a segment without a level (``level < 0``).
    """
    seg = levels.segments if isinstance(levels, LevelClustering) else levels
    if not isinstance(seg, Segments):
        raise QrspecError(f"levels must be LevelClustering or Segments, got "
                          f"{type(levels).__name__}")
    if seg.size == 0 or np.any(seg.level < 0):
        raise QrspecError("levels must have every segment assigned to a level (level >= 0); "
                          "run cluster_levels first")
    return seg
