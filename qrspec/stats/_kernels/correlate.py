"""Numba kernels for photon correlations and photon pairs (arrays in, arrays out; no checks).

Times are integers in a quantum ``q`` (e.g. 1 ps): ``t = (ts - ts0) * tick_q + nanotime * nt_q``.
The merged stream is sorted by ``ts`` only (T3 photons of one period are not sorted by nanotime),
so pairs are found by a forward scan that stops once ``(ts_j - ts_i) * tick_q - ntmax_q`` exceeds
the reach; every unordered pair (i < j) within reach is visited exactly once.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def g2_histogram(timestamps, nanotimes, detectors, role, gate_lo, gate_hi, mask, j_start, ts0,
                 tick_q, nt_q, ntmax_q, delay_q, lag_lo_q, bin_q, auto, counts, n_used):
    """Add the lags of photon pairs to counts[(lag - lag_lo_q) // bin_q].

    Cross (auto=False): lag = t_j - t_i - delay_q for role[det_i] = 0, role[det_j] = 1, over all
    ordered such pairs. Auto: +-(t_j - t_i) for every pair of used photons. j_start = 0: every
    pair i < j, and n_used[role] counts the used photons. j_start > 0 (streaming boundary: the
    carried tail is [0, j_start)): only pairs i < j_start <= j, n_used untouched. A photon is used
    if role[det] >= 0, gate_lo[det] <= nanotime < gate_hi[det] (when nanotimes is not empty) and
    mask[i] (when mask is not empty).
    """
    n = timestamps.size
    n_bins = counts.size
    span = n_bins * bin_q
    has_nt = nanotimes.size == n and n > 0
    has_mask = mask.size == n and n > 0
    reach = max(-lag_lo_q, lag_lo_q + span) + abs(delay_q) + ntmax_q
    reach_ticks = reach // tick_q  # (ts_j - ts_i) * tick_q > reach  <=>  ts_j - ts_i > this
    if j_start == 0:  # pass 1, branch-free: photons used per role
        u0 = np.int64(0)
        u1 = np.int64(0)
        for i in range(n):
            di = detectors[i]
            ri = role[di]
            ok = ri >= 0
            if has_nt:
                x = nanotimes[i]
                ok = ok & (x >= gate_lo[di]) & (x < gate_hi[di])
            if has_mask:
                ok = ok & mask[i]
            u0 += ok & (ri == 0)
            u1 += ok & (ri == 1)
        n_used[0] += u0
        n_used[1] += u1
    # pass 2: most photons have no later photon within reach; that test needs timestamps only
    i_end = (j_start if j_start < n else 0) if j_start > 0 else n - 1  # j0 < n below
    for i in range(i_end):
        tsi = timestamps[i]
        j0 = max(i + 1, j_start)
        if timestamps[j0] - tsi > reach_ticks:
            continue
        di = detectors[i]
        ri = role[di]
        if ri < 0:
            continue
        ti = (tsi - ts0) * tick_q
        if has_nt:
            x = nanotimes[i]
            if x < gate_lo[di] or x >= gate_hi[di]:
                continue
            ti += np.int64(x) * nt_q
        if has_mask and not mask[i]:
            continue
        for j in range(j0, n):
            tsj = timestamps[j]
            if tsj - tsi > reach_ticks:
                break
            dj = detectors[j]
            rj = role[dj]
            if rj < 0 or (rj == ri and not auto):
                continue
            tj = (tsj - ts0) * tick_q
            if has_nt:
                y = nanotimes[j]
                if y < gate_lo[dj] or y >= gate_hi[dj]:
                    continue
                tj += np.int64(y) * nt_q
            if has_mask and not mask[j]:
                continue
            d = tj - ti
            if auto:
                z = d - lag_lo_q
                if 0 <= z < span:
                    counts[z // bin_q] += 1
                z = -d - lag_lo_q
                if 0 <= z < span:
                    counts[z // bin_q] += 1
            else:
                lag = d if ri == 0 else -d
                z = lag - delay_q - lag_lo_q
                if 0 <= z < span:
                    counts[z // bin_q] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def g2_peak_min_nanotime(timestamps, nanotimes, detectors, role, gate_lo, gate_hi, mask, j_start,
                         ts0, tick_q, nt_q, ntmax_q, delay_q, lag_lo_q, bin_q, n_bins, bin_peak,
                         shift, m_lo, hist):
    """Histogram of the smaller aligned nanotime of each cross pair, per g2 peak.

    Cross pairs as in g2_histogram (T3, same j_start rule): a pair whose lag bin b has bin_peak[b]
    = k >= 0 adds to hist[k, min(nt_i - shift[det_i], nt_j - shift[det_j]) - m_lo].
    """
    n = timestamps.size
    span = n_bins * bin_q
    has_mask = mask.size == n and n > 0
    reach = max(-lag_lo_q, lag_lo_q + span) + abs(delay_q) + ntmax_q
    reach_ticks = reach // tick_q
    i_end = (j_start if j_start < n else 0) if j_start > 0 else n - 1  # j0 < n below
    for i in range(i_end):
        j0 = max(i + 1, j_start)
        if timestamps[j0] - timestamps[i] > reach_ticks:
            continue
        di = detectors[i]
        ri = role[di]
        if ri < 0:
            continue
        x = nanotimes[i]
        if x < gate_lo[di] or x >= gate_hi[di]:
            continue
        if has_mask and not mask[i]:
            continue
        tsi = timestamps[i]
        ti = (tsi - ts0) * tick_q + np.int64(x) * nt_q
        ai = np.int64(x) - shift[di]
        for j in range(j0, n):
            tsj = timestamps[j]
            if tsj - tsi > reach_ticks:
                break
            dj = detectors[j]
            rj = role[dj]
            if rj < 0 or rj == ri:
                continue
            y = nanotimes[j]
            if y < gate_lo[dj] or y >= gate_hi[dj]:
                continue
            if has_mask and not mask[j]:
                continue
            tj = (tsj - ts0) * tick_q + np.int64(y) * nt_q
            d = tj - ti
            lag = d if ri == 0 else -d
            z = lag - delay_q - lag_lo_q
            if 0 <= z < span:
                k = bin_peak[z // bin_q]
                if k >= 0:
                    aj = np.int64(y) - shift[dj]
                    hist[k, min(ai, aj) - m_lo] += 1
    return hist


@numba.njit(cache=True, nogil=True)
def first_per_period(timestamps, nanotimes, detectors, role, gate_lo, gate_hi, shift, cap):
    """The first (smallest aligned nanotime) used photon of each period, per role.

    Per role r in {0, 1}: the periods (ts) holding a used photon and, per period, the smallest
    aligned nanotime (nanotime - shift[det]) and the number of used photons in it (ts sorted; cap
    >= photons of either role).
    """
    n = timestamps.size
    sync = np.empty((2, cap), np.int64)
    first = np.empty((2, cap), np.int32)
    mult = np.zeros((2, cap), np.int32)
    cnt = np.zeros(2, np.int64)
    last = np.full(2, -(2**62), np.int64)
    for i in range(n):
        d = detectors[i]
        r = role[d]
        if r < 0:
            continue
        x = nanotimes[i]
        if x < gate_lo[d] or x >= gate_hi[d]:
            continue
        t = timestamps[i]
        a = np.int32(np.int64(x) - shift[d])
        if t != last[r]:
            c = cnt[r]
            sync[r, c] = t
            first[r, c] = a
            mult[r, c] = 1
            cnt[r] = c + 1
            last[r] = t
        else:
            c = cnt[r] - 1
            mult[r, c] += 1
            if a < first[r, c]:
                first[r, c] = a
    return sync, first, mult, cnt


@numba.njit(cache=True, nogil=True)
def _period_matches_pass(sa, sb, max_shift, fill, out_a, out_b, out_k):
    na, nb = sa.size, sb.size
    m = 0
    lo = 0
    for ia in range(na):
        s = sa[ia]
        while lo < nb and sb[lo] < s - max_shift:
            lo += 1
        j = lo
        while j < nb and sb[j] <= s + max_shift:
            if fill:
                out_a[m] = ia
                out_b[m] = j
                out_k[m] = sb[j] - s
            m += 1
            j += 1
    return m


@numba.njit(cache=True, nogil=True)
def period_matches(sa, sb, max_shift):
    """All (ia, ib, k) with sb[ib] - sa[ia] = k, |k| <= max_shift (sa, sb sorted, unique)."""
    empty = np.empty(0, np.int64)
    m = _period_matches_pass(sa, sb, max_shift, False, empty, empty, empty)
    out_a = np.empty(m, np.int64)
    out_b = np.empty(m, np.int64)
    out_k = np.empty(m, np.int64)
    _period_matches_pass(sa, sb, max_shift, True, out_a, out_b, out_k)
    return out_a, out_b, out_k
