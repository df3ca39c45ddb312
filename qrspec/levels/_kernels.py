"""Numba kernels of the intensity-level layer (arrays in, arrays out; no checks).

Conventions shared by every kernel:

* ``x`` is a strictly increasing float64 array of photon times (any unit; the change-point
  statistic is scale-free).
* A *range* ``[a, b]`` of photon indices has ``n = b - a`` inter-photon intervals. A change
  point at offset ``k`` (``1 <= k < n``) splits it into ``[a, a + k]`` and ``[a + k, b]``: photon
  ``a + k`` is the first photon of the new segment.
* ``h1[j] = sum_{i=1..j} 1/i`` and ``h2[j] = sum_{i=1..j} 1/i**2`` (``h1[0] = h2[0] = 0``);
  ``jlnj[j] = j ln j`` (``jlnj[0] = 0``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

PI2_6 = math.pi**2 / 6.0
LN4 = math.log(4.0)


@numba.njit(cache=True, nogil=True)
def _glr_raw(x, a, k, n, x0, xn, lnt, jlnj):
    """``(glr, raw[k])``: the log-likelihood ratio at offset k without and with its constants."""
    kf = float(k)
    mf = float(n) - kf
    xk = x[a + k]
    glr = -2.0 * kf * (math.log(xk - x0) - lnt) - 2.0 * mf * (math.log(xn - xk) - lnt)
    return glr, glr + 2.0 * (jlnj[k] + jlnj[n - k] - jlnj[n])


@numba.njit(cache=True, nogil=True)
def _lam_raw(x, a, k, n, x0, xn, lnt, lnn, hn1, hn2, term, h1, h2, jlnj):
    """``(lam[k], raw[k])`` of :func:`cpa_scan`.

    ``lnt = ln(xn - x0)``, ``lnn = ln n``, ``hn1 = h1[n-1]``, ``hn2 = h2[n-1]``,
    ``term = pi^2/6 - hn2``.
    """
    kf = float(k)
    mf = float(n) - kf
    uk = -(hn1 - h1[k - 1])
    vk = hn2 - h2[k - 1]
    um = -(hn1 - h1[n - k - 1])
    vm = hn2 - h2[n - k - 1]
    s2 = 4.0 * kf * kf * vk + 4.0 * mf * mf * vm - 8.0 * kf * mf * term
    glr, raw = _glr_raw(x, a, k, n, x0, xn, lnt, jlnj)
    # 0.5 ln(4 k (n-k) / n^2) from the ln table: ln j = jlnj[j] / j
    lnk = jlnj[k] / kf
    lnm = jlnj[n - k] / mf
    val = (glr + 2.0 * kf * uk + 2.0 * mf * um) / math.sqrt(s2) + 0.5 * (
        LN4 + lnk + lnm - 2.0 * lnn
    )
    return val, raw


@numba.njit(cache=True, nogil=True)
def cpa_scan(x, a, b, h1, h2, jlnj, lam, raw):
    """Henderson statistic ``lam[k]`` and log-likelihood ratio ``raw[k]`` for k in 1..n-1.

    ``raw[k] = 2 ln [max-likelihood with a rate change at photon k / without]`` (the profile
    likelihood of the change location) on the range [a, b].

    Returns ``(k_best, lam_best)`` with ``k_best`` the argmax of ``lam`` (0 if n < 2).
    """
    return cpa_scan_part(x, a, b, 1, b - a - 1, h1, h2, jlnj, lam, raw)


@numba.njit(cache=True, nogil=True)
def cpa_scan_part(x, a, b, k0, k1, h1, h2, jlnj, lam, raw):
    """:func:`cpa_scan` restricted to offsets k0..k1 (clipped to 1..n-1)."""
    n = b - a
    best = -np.inf
    kbest = 0
    if n < 2:
        return kbest, best
    k0 = max(k0, 1)
    k1 = min(k1, n - 1)
    x0 = x[a]
    xn = x[b]
    total = xn - x0
    nf = float(n)
    hn1 = h1[n - 1]
    hn2 = h2[n - 1]
    term = PI2_6 - hn2
    lnn = math.log(nf)
    lnt = math.log(total)
    for k in range(k0, k1 + 1):
        val, r = _lam_raw(x, a, k, n, x0, xn, lnt, lnn, hn1, hn2, term, h1, h2, jlnj)
        lam[k] = val
        raw[k] = r
        if val > best:
            best = val
            kbest = k
    return kbest, best


# Pruned scan. On a long range most offsets are far below the critical value (no change, or
# away from one). With per-offset weights of the range length tabulated (once per call for the
# window length, one vectorised pass for a shorter range),
# lam[k] = p[k] - wa[k] (ln(x_k - x_0) - ln T) - wb[k] (ln(x_n - x_k) - ln T) up to rounding;
# ln is concave, so in a block of offsets the chord between the block ends' logarithms is a lower
# bound of both logarithms and gives an upper bound of lam without a logarithm per offset. Only the
# blocks whose bound can reach the current maximum (or the critical value) are evaluated with
# cpa_scan's code, so the change point, its statistic and (evaluated where needed) its confidence
# region are the ones cpa_scan gives, bit for bit.
PRUNE_BLOCK = 32
# the bound and lam differ from the exact-arithmetic ones by a few ulp of their largest term
# (|p|, wa |ln(x_k - x_0) - ln T|, wb ..., and the ulp of ln T in the chord); 1e-11 of that scale
# (5e4 ulp) is a margin that no rounding reaches and that costs no pruning (lam ~ 1..10)
PRUNE_MARGIN = 1e-11


PRUNE_MIN = 64  # shorter ranges are scanned in full (tabulating their weights costs as much)


@numba.njit(cache=True, nogil=True)
def new_pruner(n, h1, h2, jlnj):
    """``(weights, scratch)``: :func:`scan_weights` of ``n`` intervals and room for shorter ones.

    ``scratch = (ln_k, wa, wb, p)`` with ``ln_k[j] = ln j`` (from ``jlnj``) for ``j <= n``.
    """
    ln_k = np.zeros(n + 1)
    for j in range(1, n + 1):
        ln_k[j] = jlnj[j] / float(j)
    weights = fill_weights(n, h1, h2, ln_k, np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1))
    return weights, (ln_k, np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1))


@numba.njit(cache=True, nogil=True)
def scan_weights(n, h1, h2, jlnj):
    """Weights ``(n, wa, wb, p, wmax, pmax)`` of the pruned scan on ranges of ``n`` intervals.

    ``wa[k] = 2k/s_k``, ``wb[k] = 2(n-k)/s_k``, ``p[k]`` the statistic's centring and log term
    (``s_k`` the standard deviation of :func:`cpa_scan`), each to a few ulp; ``wmax`` and
    ``pmax`` are the largest ``max(wa, wb)`` and ``|p|`` (scale of the rounding margin).
    """
    return new_pruner(n, h1, h2, jlnj)[0]


@numba.njit(cache=True, nogil=True)
def fill_weights(n, h1, h2, ln_k, wa, wb, p):
    """:func:`scan_weights` into ``wa``, ``wb``, ``p`` (``[1, n)`` set).

    ``ln_k`` as in :func:`new_pruner`.
    """
    nf = float(n)
    hn1 = h1[n - 1]
    hn2 = h2[n - 1]
    term = PI2_6 - hn2
    lnn = math.log(nf)
    one = np.uint64(1)
    nu = np.uint64(n)
    for k in range(one, nu):  # unsigned: no negative-index wraparound, the loop vectorises
        kf = float(k)
        mf = nf - kf
        uk = -(hn1 - h1[k - one])
        vk = hn2 - h2[k - one]
        um = -(hn1 - h1[nu - k - one])
        vm = hn2 - h2[nu - k - one]
        inv = 1.0 / math.sqrt(4.0 * kf * kf * vk + 4.0 * mf * mf * vm - 8.0 * kf * mf * term)
        wa[k] = 2.0 * kf * inv
        wb[k] = 2.0 * mf * inv
        p[k] = (2.0 * kf * uk + 2.0 * mf * um) * inv + 0.5 * (
            LN4 + ln_k[k] + ln_k[nu - k] - 2.0 * lnn)
    wmax = 0.0
    pmax = 0.0
    for k in range(1, n):
        wmax = max(wmax, wa[k], wb[k])
        pmax = max(pmax, abs(p[k]))
    return n, wa, wb, p, wmax, pmax


@numba.njit(cache=True, nogil=True)
def pruner_weights(pruner, n, h1, h2):
    """Weights of ranges of ``n`` intervals from a :func:`new_pruner` (``n`` at most its)."""
    weights, scratch = pruner
    if n == weights[0]:
        return weights
    return fill_weights(n, h1, h2, scratch[0], scratch[1], scratch[2], scratch[3])


@numba.njit(cache=True, nogil=True)
def cpa_scan_pruned(x, a, b, cut, weights, h1, h2, jlnj):
    """``(k_best, lam_best)`` of :func:`cpa_scan` on [a, b] when ``lam_best > cut``.

    ``weights`` from :func:`scan_weights` for ``n = b - a``. Offsets whose ``lam`` provably
    cannot exceed ``max(cut, best so far)`` are skipped, so if no ``lam`` exceeds ``cut`` the
    result is only some ``lam_best <= cut`` (``k_best`` 0 if none was evaluated).
    """
    n = b - a
    wa = weights[1]
    wb = weights[2]
    p = weights[3]
    best = -np.inf
    kbest = 0
    if n < 2:
        return kbest, best
    xs = x[a:b + 1]
    x0 = x[a]
    xn = x[b]
    total = xn - x0
    hn1 = h1[n - 1]
    hn2 = h2[n - 1]
    term = PI2_6 - hn2
    lnn = math.log(float(n))
    lnt = math.log(total)
    da1 = x[a + 1] - x0
    la1 = math.log(da1)
    db1 = xn - x[a + 1]
    lb1 = math.log(db1)
    scale = weights[4] * (abs(lnt) + abs(la1 - lnt) + abs(math.log(xn - x[b - 1]) - lnt))
    margin = PRUNE_MARGIN * (scale + weights[5])
    k1 = 1
    while k1 < n:
        k2 = min(k1 + PRUNE_BLOCK, n - 1)
        stop = k2 if k2 < n - 1 else n  # the last block includes its end
        hit = k2 == k1
        if not hit:
            da2 = x[a + k2] - x0
            la2 = math.log(da2)
            db2 = xn - x[a + k2]
            lb2 = math.log(db2)
            sa = (la2 - la1) / (da2 - da1)
            sb = (lb2 - lb1) / (db2 - db1)
            lim = max(cut, best) - margin
            over = 0
            # unsigned offsets into a view: no negative-index wraparound, so the loop vectorises
            for k in range(np.uint64(k1), np.uint64(stop)):
                xk = xs[k]
                ca = la1 + ((xk - x0) - da1) * sa - lnt
                cb = lb1 + ((xn - xk) - db1) * sb - lnt
                over += p[k] - wa[k] * ca - wb[k] * cb > lim
            hit = over > 0
            da1 = da2
            la1 = la2
            db1 = db2
            lb1 = lb2
        if hit:
            for k in range(k1, stop):
                val = _lam_raw(x, a, k, n, x0, xn, lnt, lnn, hn1, hn2, term, h1, h2, jlnj)[0]
                if val > best:
                    best = val
                    kbest = k
        k1 = stop
    return kbest, best


@numba.njit(cache=True, nogil=True)
def ci_threshold(rhat, ln_r, c_ci):
    """Linear interpolation of the confidence threshold table in ln(rate ratio), clamped."""
    q = math.log(rhat)
    m = ln_r.size
    if q <= ln_r[0]:
        return c_ci[0]
    if q >= ln_r[m - 1]:
        return c_ci[m - 1]
    j = 0
    while ln_r[j + 1] < q:
        j += 1
    f = (q - ln_r[j]) / (ln_r[j + 1] - ln_r[j])
    return c_ci[j] + f * (c_ci[j + 1] - c_ci[j])


@numba.njit(cache=True, nogil=True)
def ci_bounds(x, a, b, k, c, jlnj):
    """Confidence region ``(lo, hi)`` around offset k of [a, b].

    Expands while ``raw > raw[k] - c`` (``raw`` of :func:`cpa_scan`, evaluated where needed).
    """
    n = b - a
    x0 = x[a]
    xn = x[b]
    lnt = math.log(xn - x0)
    ref = _glr_raw(x, a, k, n, x0, xn, lnt, jlnj)[1] - c
    lo = k - 1
    while lo > 0 and _glr_raw(x, a, lo, n, x0, xn, lnt, jlnj)[1] > ref:
        lo -= 1
    if lo < 0:
        lo = 0
    hi = k + 1
    while hi < n and _glr_raw(x, a, hi, n, x0, xn, lnt, jlnj)[1] > ref:
        hi += 1
    if hi > n:
        hi = n
    return lo, hi


@numba.njit(cache=True, nogil=True)
def rate_ratio(x, a, b, k):
    """Ratio (>= 1) of the two rate estimates on either side of offset k in [a, b]."""
    n = b - a
    t1 = x[a + k] - x[a]
    t2 = x[b] - x[a + k]
    r1 = k / t1
    r2 = (n - k) / t2
    return r1 / r2 if r1 > r2 else r2 / r1


@numba.njit(cache=True, nogil=True)
def _test_range(x, a, b, h1, h2, jlnj, crit, ln_r, c_ci, lam, raw, pruner):
    """Test one range; returns (found, k, lo, hi, lam_best, rhat) in absolute indices.

    Ranges of ``PRUNE_MIN`` intervals or more are scanned by :func:`cpa_scan_pruned` with the
    weights of ``pruner`` (:func:`new_pruner`); then ``lam_best`` of a range without a change
    is only some value <= the critical value.
    """
    n = b - a
    if n < 2:
        return False, 0, 0, 0, -np.inf, 1.0
    prune = PRUNE_MIN <= n <= pruner[0][0]
    weights = pruner_weights(pruner, n, h1, h2) if prune else pruner[0]
    if prune and np.isfinite(weights[4]) and np.isfinite(weights[5]):
        k, best = cpa_scan_pruned(x, a, b, crit[n], weights, h1, h2, jlnj)
    else:
        k, best = cpa_scan(x, a, b, h1, h2, jlnj, lam, raw)
    if best <= crit[n]:
        return False, 0, 0, 0, best, 1.0
    rhat = rate_ratio(x, a, b, k)
    c = ci_threshold(rhat, ln_r, c_ci)
    lo, hi = ci_bounds(x, a, b, k, c, jlnj)
    return True, a + k, a + lo, a + hi, best, rhat


@numba.njit(cache=True, nogil=True)
def _push(store, m, k, lo, hi, best, rhat):
    """Append a change to ``store = (idx, lo, hi, lam, rhat)`` (grown by doubling)."""
    idx, los, his, lams, rhs = store
    if m == idx.size:
        cap = 2 * idx.size
        idx2 = np.empty(cap, np.int64)
        lo2 = np.empty(cap, np.int64)
        hi2 = np.empty(cap, np.int64)
        lam2 = np.empty(cap, np.float64)
        rh2 = np.empty(cap, np.float64)
        idx2[:m] = idx[:m]
        lo2[:m] = los[:m]
        hi2[:m] = his[:m]
        lam2[:m] = lams[:m]
        rh2[:m] = rhs[:m]
        idx, los, his, lams, rhs = idx2, lo2, hi2, lam2, rh2
    idx[m] = k
    los[m] = lo
    his[m] = hi
    lams[m] = best
    rhs[m] = rhat
    return (idx, los, his, lams, rhs), m + 1


@numba.njit(cache=True, nogil=True)
def _segment(x, a0, b0, min_photons, h1, h2, jlnj, crit, ln_r, c_ci, lam, raw, stack_a, stack_b,
             store, m, pruner):
    """Recursive binary segmentation of the range [a0, b0]; changes are appended to ``store``.

    After a change is accepted the two sides outside its confidence region are searched again.
    """
    stack_a[0] = a0
    stack_b[0] = b0
    top = 1
    while top > 0:
        top -= 1
        a = stack_a[top]
        b = stack_b[top]
        if b - a < min_photons:
            continue
        found, k, lo, hi, best, rhat = _test_range(x, a, b, h1, h2, jlnj, crit, ln_r, c_ci,
                                                   lam, raw, pruner)
        if not found:
            continue
        store, m = _push(store, m, k, lo, hi, best, rhat)
        stack_a[top] = a
        stack_b[top] = lo
        top += 1
        stack_a[top] = hi
        stack_b[top] = b
        top += 1
    return store, m


def _new_store():
    return (np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64),
            np.empty(64, np.float64), np.empty(64, np.float64))


_new_store = numba.njit(cache=True, nogil=True)(_new_store)


@numba.njit(cache=True, nogil=True)
def cpa_trace(x, window, overlap, min_photons, h1, h2, jlnj, crit, ln_r, c_ci):
    """Recursive binary segmentation of ``x`` in windows of at most ``window`` intervals.

    Window ``j + 1`` starts ``overlap`` intervals before the end of window ``j``; a change
    found in two windows appears twice (possibly a few photons apart).

    Returns arrays ``(index, lo, hi, lam, rhat)`` of the change points (unsorted).
    """
    store = _new_store()
    m = 0
    pruner = new_pruner(window, h1, h2, jlnj)  # every full window has this length
    lam = np.empty(window + 1, np.float64)
    raw = np.empty(window + 1, np.float64)
    stack_a = np.empty(window + 2, np.int64)
    stack_b = np.empty(window + 2, np.int64)
    last = x.size - 1
    start = 0
    while start < last:
        end = min(start + window, last)
        store, m = _segment(x, start, end, min_photons, h1, h2, jlnj, crit, ln_r, c_ci, lam, raw,
                            stack_a, stack_b, store, m, pruner)
        if end == last:
            break
        start = end - overlap if end - overlap > start else start + 1
    return store[0][:m], store[1][:m], store[2][:m], store[3][:m], store[4][:m]


@numba.njit(cache=True, nogil=True)
def cpa_beside(x, cps, cps_lo, cps_hi, active, window, min_photons, h1, h2, jlnj, crit, ln_r,
               c_ci):
    """Search the photons beside changes for further changes (binary segmentation).

    For sorted changes ``cps`` with regions ``[cps_lo, cps_hi]`` the ranges
    ``[max(hi_prev, lo - window), lo]`` and ``[hi, min(lo_next, hi + window)]`` are searched
    (trace ends stand in for missing neighbours; a range shared by two neighbours is searched
    once), for the ``active`` changes and the ranges they share with a neighbour. These ranges
    start or end at a change, unlike the scan windows, so a change that sat at a window edge in
    the scan (the start of a short burst whose end was found) is tested with its full context.

    Returns arrays ``(index, lo, hi, lam, rhat)`` of the new changes (unsorted).
    """
    store = _new_store()
    n_new = 0
    pruner = new_pruner(window, h1, h2, jlnj)  # ranges beside far neighbours
    lam = np.empty(window + 1, np.float64)
    raw = np.empty(window + 1, np.float64)
    stack_a = np.empty(window + 2, np.int64)
    stack_b = np.empty(window + 2, np.int64)
    last = x.size - 1
    m = cps.size
    prev_a = -1
    prev_b = -1
    for j in range(m):
        hi_prev = cps_hi[j - 1] if j > 0 else 0
        lo_next = cps_lo[j + 1] if j + 1 < m else last
        for side in range(2):
            if side == 0:
                if not (active[j] or (j > 0 and active[j - 1])):
                    continue
                a = max(hi_prev, cps_lo[j] - window)
                b = cps_lo[j]
            else:
                if not (active[j] or (j + 1 < m and active[j + 1])):
                    continue
                a = cps_hi[j]
                b = min(lo_next, cps_hi[j] + window)
            if b - a < min_photons or (a == prev_a and b == prev_b):
                continue
            prev_a = a
            prev_b = b
            store, n_new = _segment(x, a, b, min_photons, h1, h2, jlnj, crit, ln_r, c_ci, lam,
                                    raw, stack_a, stack_b, store, n_new, pruner)
    return (store[0][:n_new], store[1][:n_new], store[2][:n_new], store[3][:n_new],
            store[4][:n_new])


@numba.njit(cache=True, nogil=True)
def cpa_refine(x, cps, cps_lo, cps_hi, cps_lam, cps_rhat, dirty_in, half_window, min_photons,
               h1, h2, jlnj, crit, ln_r, c_ci, max_sweeps):
    """Re-test change points between their neighbours (at most ``half_window`` each side).

    Change points that are no longer significant are removed; the others get their location and
    confidence region recomputed. ``cps`` must be sorted; ``cps_lo``, ``cps_hi``, ``cps_lam``,
    ``cps_rhat`` are their current regions and statistics. Only the ``dirty_in`` ones are
    re-tested at first; a change that moves or disappears makes its neighbours dirty.
    Returns ``(index, lo, hi, lam, rhat)``.
    """
    m = cps.size
    cp = cps.copy()
    keep = np.ones(m, np.bool_)
    los = cps_lo.copy()
    his = cps_hi.copy()
    lams = cps_lam.copy()
    rhs = cps_rhat.copy()
    pruner = new_pruner(2 * half_window, h1, h2, jlnj)  # changes far from both neighbours
    lam = np.empty(2 * half_window + 2, np.float64)
    raw = np.empty(2 * half_window + 2, np.float64)
    last = x.size - 1
    dirty = dirty_in.copy()
    for _sweep in range(max_sweeps):
        changed = False
        prev = 0
        prev_j = -1
        for j in range(m):
            if not keep[j]:
                continue
            nxt_j = -1
            nxt = last
            for q in range(j + 1, m):
                if keep[q]:
                    nxt = cp[q]
                    nxt_j = q
                    break
            if not dirty[j]:
                prev = cp[j]
                prev_j = j
                continue
            dirty[j] = False
            a = max(prev, cp[j] - half_window)
            b = min(nxt, cp[j] + half_window)
            found = False
            if b - a >= min_photons:
                # the whole range is scanned: a significant local maximum of Lambda near the
                # previous location need not be the global one (a shortcut that stopped there
                # left changes tens of photons from the maximum likelihood location)
                found, k, lo, hi, best, rhat = _test_range(
                    x, a, b, h1, h2, jlnj, crit, ln_r, c_ci, lam, raw, pruner
                )
            if not found or k != cp[j]:
                # the neighbours' ranges change: re-test them
                changed = True
                if prev_j >= 0:
                    dirty[prev_j] = True
                if nxt_j >= 0:
                    dirty[nxt_j] = True
            if not found:
                keep[j] = False
                continue
            cp[j] = k
            los[j] = lo
            his[j] = hi
            lams[j] = best
            rhs[j] = rhat
            prev = cp[j]
            prev_j = j
        if not changed:
            break
    return cp[keep], los[keep], his[keep], lams[keep], rhs[keep]


@numba.njit(cache=True, nogil=True)
def bin_times(x, start, bin_width, n_bins):
    """Histogram float times into ``n_bins`` half-open bins of ``bin_width`` from ``start``."""
    counts = np.zeros(n_bins, np.int64)
    for t in x:
        k = int(math.floor((t - start) / bin_width))
        if 0 <= k < n_bins:
            counts[k] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def hysteresis_states(counts, lower, upper):
    """State sequence of binned counts with hysteresis.

    ``lower[j] < upper[j]`` bound the switch between states j and j+1: moving up past boundary j
    needs ``count >= upper[j]``, moving down needs ``count < lower[j]``. The first bin takes the
    state given by the mid-points ``(lower + upper) / 2``.
    """
    nb = counts.size
    ns = lower.size
    out = np.empty(nb, np.int64)
    if nb == 0:
        return out
    s = 0
    c0 = counts[0]
    for j in range(ns):
        if c0 >= 0.5 * (lower[j] + upper[j]):
            s = j + 1
    out[0] = s
    for i in range(1, nb):
        c = counts[i]
        while s < ns and c >= upper[s]:
            s += 1
        while s > 0 and c < lower[s - 1]:
            s -= 1
        out[i] = s
    return out


SPREAD_CHUNK = 64  # photons checked at once for ties (most chunks of real traces have none)


@numba.njit(cache=True, nogil=True)
def spread_ticks(ticks):
    """Float ticks relative to the first photon; photons tied in one tick get (j + 0.5)/m.

    Returns ``(x, ok)``; ``ok`` is False (and ``x`` incomplete) if ``ticks`` decreases.
    Chunk by chunk of ``SPREAD_CHUNK`` photons: every photon gets ``tick - t0 + 0.5``
    (= (0 + 0.5) / 1, a photon alone in its tick) and the chunk is checked for ties or a
    decrease, both in vectorised loops; only tied groups are rewritten (a group may run past
    the chunk, which then ends after it).
    """
    n = ticks.size
    out = np.empty(n, np.float64)
    if n == 0:
        return out, True
    t0 = ticks[0]
    one = np.uint64(1)
    i = 0  # first photon not yet written
    while i < n:
        stop = min(i + SPREAD_CHUNK, n)
        last = min(stop, n - 1)  # pairs (j, j + 1) with j < last
        bad = 0
        # unsigned offsets: no negative-index wraparound, so both loops vectorise
        for j in range(np.uint64(i), np.uint64(stop)):
            out[j] = float(ticks[j] - t0) + 0.5
        for j in range(np.uint64(i), np.uint64(last)):
            bad += ticks[j + one] <= ticks[j]
        if bad == 0:
            i = stop
            continue
        j = i
        while j < last:
            tj = ticks[j]
            if ticks[j + 1] > tj:
                j += 1
                continue
            k = j + 1
            while k < n and ticks[k] == tj:
                k += 1
            if k < n and ticks[k] < tj:
                return out, False
            m = k - j
            base = float(tj - t0)
            for q in range(m):
                out[j + q] = base + (q + 0.5) / m
            j = k
        i = max(j, stop)
    return out, True


@numba.njit(cache=True, nogil=True)
def poisson_mixture_em(counts, durations, assign, n_groups, max_iter, tol, stable_iter):
    """EM of the segment Poisson mixture ``sum_g w_g Pois(n_j; I_g T_j)`` from a hard start.

    Returns the hard assignment (argmax posterior). Stops when the log-likelihood changes by
    less than ``tol`` or the hard assignment is unchanged for ``stable_iter`` iterations.
    """
    s = counts.size
    g_n = n_groups
    tot_n = 0.0
    tot_t = 0.0
    for j in range(s):
        tot_n += counts[j]
        tot_t += durations[j]
    floor = 1e-12 * tot_n / tot_t
    w = np.zeros(g_n)
    num = np.zeros(g_n)
    den = np.zeros(g_n)
    for j in range(s):
        w[assign[j]] += 1.0
        num[assign[j]] += counts[j]
        den[assign[j]] += durations[j]
    rates = np.empty(g_n)
    for g in range(g_n):
        rates[g] = max(num[g] / den[g], floor) if den[g] > 0 else floor
        w[g] = w[g] / s
    hard = assign.copy()
    logp = np.empty(g_n)
    prev = -np.inf
    stable = 0
    for _ in range(max_iter):
        lr = np.log(rates)
        lw = np.empty(g_n)
        for g in range(g_n):
            lw[g] = math.log(w[g]) if w[g] > 0 else -np.inf
        num[:] = 0.0
        den[:] = 0.0
        wsum = np.zeros(g_n)
        total = 0.0
        changed = False
        for j in range(s):
            top = -np.inf
            arg = 0
            for g in range(g_n):
                v = counts[j] * lr[g] - rates[g] * durations[j] + lw[g]
                logp[g] = v
                if v > top:
                    top = v
                    arg = g
            if arg != hard[j]:
                changed = True
                hard[j] = arg
            z = 0.0
            for g in range(g_n):
                logp[g] = math.exp(logp[g] - top)
                z += logp[g]
            total += top + math.log(z)
            for g in range(g_n):
                r = logp[g] / z
                wsum[g] += r
                num[g] += r * counts[j]
                den[g] += r * durations[j]
        stable = 0 if changed else stable + 1
        if stable >= stable_iter:
            break
        empty = False
        for g in range(g_n):
            if wsum[g] <= 0:
                empty = True
        if empty:
            break
        for g in range(g_n):
            w[g] = wsum[g] / s
            rates[g] = max(num[g] / den[g], floor)
        if abs(total - prev) <= tol:
            break
        prev = total
    # final hard assignment with the last parameters
    lr = np.log(rates)
    for j in range(s):
        top = -np.inf
        arg = 0
        for g in range(g_n):
            v = counts[j] * lr[g] - rates[g] * durations[j] + (
                math.log(w[g]) if w[g] > 0 else -np.inf)
            if v > top:
                top = v
                arg = g
        hard[j] = arg
    return hard
