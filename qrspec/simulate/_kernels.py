"""Numba kernels of the simulator (arrays in, arrays out, no checks).

Randomness inside kernels comes from a SplitMix64 stream seeded from the caller's numpy
Generator, so a seed fixes the result of the compiled kernel and of its ``py_func`` alike.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["detect_events", "splitmix_uniform"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, nogil=True)
def splitmix_uniform(state):
    """Advance the SplitMix64 state (uint64 array of length 1); return a uniform in [0, 1)."""
    z = state[0] + _GOLDEN
    state[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return float(z >> _S11) * _INV53


@numba.njit(cache=True, nogil=True)
def _normalise(sync, t_ns, period_ns):
    """Fold a time after sync ``sync`` into (sync', t') with 0 <= t' < period."""
    k = np.floor(t_ns / period_ns)
    s = sync + np.int64(k)
    t = t_ns - k * period_ns
    if t >= period_ns:
        t -= period_ns
        s += 1
    elif t < 0.0:
        t += period_ns
        s -= 1
    return s, t


@numba.njit(cache=True, nogil=True)
def _grow_i8(a, n):
    b = np.empty(max(2 * a.size, 16), a.dtype)
    b[:n] = a[:n]
    return b


@numba.njit(cache=True, nogil=True)
def _grow_f8(a, n):
    b = np.empty(max(2 * a.size, 16), a.dtype)
    b[:n] = a[:n]
    return b


@numba.njit(cache=True, nogil=True)
def detect_events(sync, t_ns, det, period_ns, n_sync, dead_ns, one_per_sync, ap_prob,
                  ap_tau_ns, xt_prob, xt_delay_ns, seed):
    """Sequential per-detector dead time with afterpulsing and crosstalk over sorted events.

    Candidates (``sync``, ``t_ns`` in [0, period), ``det`` in {0, 1}) must be sorted by time.
    An event on detector d is recorded unless it falls within ``dead_ns[d]`` of the last
    recorded event of d (non-paralysable) or, with ``one_per_sync``, in the same sync period.
    Each recorded event spawns, with probability ``ap_prob[d]``, an afterpulse on d at
    ``t + dead_ns[d] + Exp(ap_tau_ns[d])`` and, with probability ``xt_prob``, a crosstalk event
    on the other detector at ``t + xt_delay_ns``; spawned events (before ``n_sync``) are
    processed in time order like candidates and can themselves spawn more.

    Returns (sync, t_ns, det, src, kind, parent) of the recorded events in time order: ``src``
    is the candidate index (-1 for spawned events), ``kind`` 0 candidate / 1 afterpulse /
    2 crosstalk, ``parent`` the output index of the event that spawned it (-1 for candidates).
    """
    n = sync.size
    cap = n + 16
    o_sync = np.empty(cap, np.int64)
    o_t = np.empty(cap, np.float64)
    o_det = np.empty(cap, np.int64)
    o_src = np.empty(cap, np.int64)
    o_kind = np.empty(cap, np.int64)
    o_par = np.empty(cap, np.int64)
    q_sync = np.empty(16, np.int64)
    q_t = np.empty(16, np.float64)
    q_det = np.empty(16, np.int64)
    q_kind = np.empty(16, np.int64)
    q_par = np.empty(16, np.int64)
    nq = 0
    last_sync = np.zeros(2, np.int64)
    last_t = np.zeros(2, np.float64)
    has_last = np.zeros(2, np.bool_)
    state = np.empty(1, np.uint64)
    state[0] = seed
    i = 0
    m = 0
    while i < n or nq > 0:
        jmin = -1
        for j in range(nq):
            if jmin < 0 or (q_sync[j] - q_sync[jmin]) * period_ns + (q_t[j] - q_t[jmin]) < 0.0:
                jmin = j
        take_pending = False
        if jmin >= 0:
            if i >= n:
                take_pending = True
            elif (q_sync[jmin] - sync[i]) * period_ns + (q_t[jmin] - t_ns[i]) < 0.0:
                take_pending = True
        if take_pending:
            s = q_sync[jmin]
            t = q_t[jmin]
            d = q_det[jmin]
            kind = q_kind[jmin]
            par = q_par[jmin]
            src = -1
            nq -= 1
            q_sync[jmin] = q_sync[nq]
            q_t[jmin] = q_t[nq]
            q_det[jmin] = q_det[nq]
            q_kind[jmin] = q_kind[nq]
            q_par[jmin] = q_par[nq]
        else:
            s = sync[i]
            t = t_ns[i]
            d = np.int64(det[i])
            kind = 0
            par = -1
            src = i
            i += 1
        if has_last[d]:
            if one_per_sync and s == last_sync[d]:
                continue
            if (s - last_sync[d]) * period_ns + (t - last_t[d]) < dead_ns[d]:
                continue
        if m == o_sync.size:
            o_sync = _grow_i8(o_sync, m)
            o_t = _grow_f8(o_t, m)
            o_det = _grow_i8(o_det, m)
            o_src = _grow_i8(o_src, m)
            o_kind = _grow_i8(o_kind, m)
            o_par = _grow_i8(o_par, m)
        o_sync[m] = s
        o_t[m] = t
        o_det[m] = d
        o_src[m] = src
        o_kind[m] = kind
        o_par[m] = par
        has_last[d] = True
        last_sync[d] = s
        last_t[d] = t
        for spawn in range(2):
            if spawn == 0:
                p = ap_prob[d]
            else:
                p = xt_prob
            if p <= 0.0:
                continue
            if splitmix_uniform(state) >= p:
                continue
            if spawn == 0:
                delay = dead_ns[d] - ap_tau_ns[d] * np.log(1.0 - splitmix_uniform(state))
                dd = d
            else:
                delay = xt_delay_ns
                dd = 1 - d
            ns, nt = _normalise(s, t + delay, period_ns)
            if ns >= n_sync:
                continue
            if nq == q_sync.size:
                q_sync = _grow_i8(q_sync, nq)
                q_t = _grow_f8(q_t, nq)
                q_det = _grow_i8(q_det, nq)
                q_kind = _grow_i8(q_kind, nq)
                q_par = _grow_i8(q_par, nq)
            q_sync[nq] = ns
            q_t[nq] = nt
            q_det[nq] = dd
            q_kind[nq] = spawn + 1
            q_par[nq] = m
            nq += 1
        m += 1
    return o_sync[:m], o_t[:m], o_det[:m], o_src[:m], o_kind[:m], o_par[:m]
