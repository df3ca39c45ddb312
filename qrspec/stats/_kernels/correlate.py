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
def _count_used(nanotimes, detectors, role, gate_lo, gate_hi, mask, n_used):
    """n_used[g, role] += photons used under gate g (branch-free; one pass per gate)."""
    n = detectors.size
    has_nt = nanotimes.size == n and n > 0
    has_mask = mask.size == n and n > 0
    for g in range(gate_lo.shape[0]):
        lo = gate_lo[g]
        hi = gate_hi[g]
        u0 = np.int64(0)
        u1 = np.int64(0)
        for i in range(n):
            di = detectors[i]
            ri = role[di]
            ok = ri >= 0
            if has_nt:
                x = nanotimes[i]
                ok = ok & (x >= lo[di]) & (x < hi[di])
            if has_mask:
                ok = ok & mask[i]
            u0 += ok & (ri == 0)
            u1 += ok & (ri == 1)
        n_used[g, 0] += u0
        n_used[g, 1] += u1


@numba.njit(cache=True, nogil=True)
def g2_histogram(timestamps, nanotimes, detectors, role, gate_lo, gate_hi, mask, j_start, ts0,
                 tick_q, nt_q, ntmax_q, delay_q, lag_lo_q, bin_q, auto, counts, n_used):
    """Add the lags of photon pairs to counts[g, (lag - lag_lo_q) // bin_q], per gate g.

    Cross (auto=False): lag = t_j - t_i - delay_q for role[det_i] = 0, role[det_j] = 1, over all
    ordered such pairs. Auto: +-(t_j - t_i) for every pair of used photons. j_start = 0: every
    pair i < j, and n_used[g, role] counts the photons used under gate g. j_start > 0 (streaming
    boundary: the carried tail is [0, j_start)): only pairs i < j_start <= j, n_used untouched.
    A photon is used under gate g (a row of gate_lo, gate_hi: shape (n_gates, N_DET), at most
    62 gates) if role[det] >= 0, gate_lo[g, det] <= nanotime < gate_hi[g, det] (when nanotimes
    is not empty) and mask[i] (when mask is not empty). A pair goes to row g when both photons
    are used under gate g: the histograms of several gates share one pass over the pairs.
    """
    n = timestamps.size
    n_bins = counts.shape[1]
    span = n_bins * bin_q
    has_nt = nanotimes.size == n and n > 0
    has_mask = mask.size == n and n > 0
    reach = max(-lag_lo_q, lag_lo_q + span) + abs(delay_q) + ntmax_q
    reach_ticks = reach // tick_q  # (ts_j - ts_i) * tick_q > reach  <=>  ts_j - ts_i > this
    n_gates = gate_lo.shape[0]
    all_gates = (np.int64(1) << n_gates) - 1
    if j_start == 0:  # pass 1: photons used per gate and role
        _count_used(nanotimes, detectors, role, gate_lo, gate_hi, mask, n_used)
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
        bi = all_gates
        if has_nt:
            x = nanotimes[i]
            bi = np.int64(0)
            for g in range(n_gates):
                if gate_lo[g, di] <= x < gate_hi[g, di]:
                    bi |= np.int64(1) << g
            if bi == 0:
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
            b = bi
            if has_nt:
                y = nanotimes[j]
                for g in range(n_gates):
                    if not gate_lo[g, dj] <= y < gate_hi[g, dj]:
                        b &= ~(np.int64(1) << g)
                if b == 0:
                    continue
                tj += np.int64(y) * nt_q
            if has_mask and not mask[j]:
                continue
            d = tj - ti
            if auto:
                z = d - lag_lo_q
                z2 = -d - lag_lo_q
            else:
                z = (d if ri == 0 else -d) - delay_q - lag_lo_q
                z2 = -1
            for g in range(counts.shape[0]):
                if (b >> g) & 1:
                    if 0 <= z < span:
                        counts[g, z // bin_q] += 1
                    if 0 <= z2 < span:
                        counts[g, z2 // bin_q] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def g2_peak_min_nanotime(timestamps, nanotimes, detectors, role, gate_lo, gate_hi, mask, j_start,
                         ts0, tick_q, nt_q, ntmax_q, delay_q, lag_lo_q, bin_q, bin_peak, shift,
                         m_lo, hist, counts, n_used):
    """Cross g2 (as g2_histogram, one gate) and, per g2 peak, the smaller aligned nanotime.

    T3, gate_lo, gate_hi of shape (1, N_DET), counts (1, n_bins), n_used (1, 2) as in
    g2_histogram (same j_start rule), in the same pass: a pair whose lag bin b has bin_peak[b]
    = k >= 0 also adds to hist[k, min(nt_i - shift[det_i], nt_j - shift[det_j]) - m_lo].
    """
    n = timestamps.size
    n_bins = counts.shape[1]
    span = n_bins * bin_q
    lo = gate_lo[0]
    hi = gate_hi[0]
    has_mask = mask.size == n and n > 0
    reach = max(-lag_lo_q, lag_lo_q + span) + abs(delay_q) + ntmax_q
    reach_ticks = reach // tick_q
    if j_start == 0:
        _count_used(nanotimes, detectors, role, gate_lo, gate_hi, mask, n_used)
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
        if x < lo[di] or x >= hi[di]:
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
            if y < lo[dj] or y >= hi[dj]:
                continue
            if has_mask and not mask[j]:
                continue
            tj = (tsj - ts0) * tick_q + np.int64(y) * nt_q
            d = tj - ti
            lag = d if ri == 0 else -d
            z = lag - delay_q - lag_lo_q
            if 0 <= z < span:
                b = z // bin_q
                counts[0, b] += 1
                k = bin_peak[b]
                if k >= 0:
                    aj = np.int64(y) - shift[dj]
                    hist[k, min(ai, aj) - m_lo] += 1
    return hist


@numba.njit(cache=True, nogil=True)
def _grown(out, cap):
    """``out`` (rows x m) copied into a rows x cap array, cap >= m.

    Element loops: a sliced 2-D assignment costs seconds of cold compile time.
    """
    o2 = np.empty((out.shape[0], cap), np.int64)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            o2[r, c] = out[r, c]
    return o2


@numba.njit(cache=True, nogil=True)
def period_pairs(timestamps, nanotimes, detectors, role, gate_lo, gate_hi, shift, max_shift,
                 stats):
    """First photons per period and their pairs across roles, in one pass over the photons.

    A photon is used if role[det] >= 0 and gate_lo[det] <= nanotime < gate_hi[det]; its aligned
    nanotime is nanotime - shift[det]. Per role r (0 = A, 1 = B) a period (timestamp) holding
    used photons has a first value: the smallest aligned nanotime of them. Returns, for every A
    period s and B period s + k with |k| <= max_shift, ordered by s then k: s, k and the two
    first values (int64 arrays). stats (int64, shape (3, 2)) is set to, per role, the used
    photons, the periods holding one and those holding more than one (timestamps sorted).

    Most photons have no other photon within max_shift periods: that test needs timestamps
    only and comes first (roles are a coin flip to the branch predictor); the photons of a
    period holding several are never alone. The first used A photon of a period with
    neighbours collects the B periods in reach.
    """
    n = timestamps.size
    out = np.empty((4, 256), np.int64)
    m = 0
    u0 = np.int64(0)
    u1 = np.int64(0)
    for i in range(n):  # used photons per role (branch-free)
        di = detectors[i]
        ri = role[di]
        x = nanotimes[i]
        ok = (ri >= 0) & (x >= gate_lo[di]) & (x < gate_hi[di])
        u0 += ok & (ri == 0)
        u1 += ok & (ri == 1)
    extra = np.zeros(2, np.int64)  # used photons after the role's first in their period
    multi = np.zeros(2, np.int64)  # periods with more than one used photon of the role
    prev = np.int64(-(2**62))
    big = np.int64(1) << 62
    for i in range(n):
        t = timestamps[i]
        before = prev
        prev = t
        lo_t = t - max_shift
        hi_t = t + max_shift
        if before < lo_t and (i + 1 >= n or timestamps[i + 1] > hi_t):
            continue  # no other photon in reach
        di = detectors[i]
        ri = role[di]
        x = nanotimes[i]
        if ri < 0 or x < gate_lo[di] or x >= gate_hi[di]:
            continue
        if t == before:  # the second, third... used photon of its role in the period?
            k = 0
            j = i - 1
            while j >= 0 and timestamps[j] == t:
                dj = detectors[j]
                y = nanotimes[j]
                if role[dj] == ri and gate_lo[dj] <= y < gate_hi[dj]:
                    k += 1
                j -= 1
            if k >= 1:
                extra[ri] += 1
                multi[ri] += k == 1
                continue
        if ri != 0:
            continue
        p = i  # first photon of the earliest period in reach
        while p > 0 and timestamps[p - 1] >= lo_t:
            p -= 1
        m0 = m
        fa = big  # the first value of this A period
        last_b = lo_t - 1  # the B period being read, fb its first value so far
        fb = big
        j = p
        while True:
            tj = timestamps[j] if j < n else hi_t + 1
            if tj != last_b and fb < big:  # the B period last_b is complete
                if m == out.shape[1]:
                    out = _grown(out, 2 * m)
                out[0, m] = t
                out[1, m] = last_b - t
                out[3, m] = fb
                m += 1
                fb = big
            if tj > hi_t:
                break
            dj = detectors[j]
            y = nanotimes[j]
            rj = role[dj]
            if rj >= 0 and gate_lo[dj] <= y < gate_hi[dj]:
                if rj == 1:
                    last_b = tj
                    fb = min(fb, np.int64(y) - shift[dj])
                elif tj == t:
                    fa = min(fa, np.int64(y) - shift[dj])
            j += 1
        for c in range(m0, m):  # fa is known once the scan has passed period t
            out[2, c] = fa
    stats[0, 0], stats[0, 1] = u0, u1
    stats[1, 0], stats[1, 1] = u0 - extra[0], u1 - extra[1]
    stats[2, 0], stats[2, 1] = multi[0], multi[1]
    return out[0, :m].copy(), out[1, :m].copy(), out[2, :m].copy(), out[3, :m].copy()
