"""Numba kernels of the afterpulsing estimate: photon pairs by laser-period difference."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def pair_counts(sync, code, max_k):
    """Counts ``counts[a, b, k]`` of coded photon pairs ``k`` syncs apart.

    Pairs of photons ``i < j`` (time order) with ``code[i] = a``, ``code[j] = b`` (0 or 1; other
    codes skipped) and ``sync[j] - sync[i] = k <= max_k``.

    ``sync`` sorted (the merged stream of both detectors); one pass, no per-detector copies.
    """
    counts = np.zeros((2, 2, max_k + 1), np.int64)
    n = sync.size
    for i in range(n):
        a = code[i]
        if a < 0 or a > 1:
            continue
        s = sync[i]
        j = i + 1
        while j < n:
            k = sync[j] - s
            if k > max_k:
                break
            b = code[j]
            if b == 0 or b == 1:
                counts[a, b, k] += 1
            j += 1
    return counts


@numba.njit(cache=True, nogil=True)
def tagged_nanotime_histograms(sync, code, nanotimes, max_k, n_bins):
    """Nanotime histograms ``hist[a, b, t]`` of the later photon of coded pairs.

    Over pairs ``i < j`` with ``code[i] = a``, ``code[j] = b`` and ``1 <= sync[j] - sync[i] <=
    max_k``, the histogram of the later photon's nanotime ``t`` (each later photon counted once per
    earlier partner).
    """
    hist = np.zeros((2, 2, n_bins), np.int64)
    n = sync.size
    for i in range(n):
        a = code[i]
        if a < 0 or a > 1:
            continue
        s = sync[i]
        j = i + 1
        while j < n:
            k = sync[j] - s
            if k > max_k:
                break
            b = code[j]
            if k >= 1 and (b == 0 or b == 1):
                t = nanotimes[j]
                if t < n_bins:
                    hist[a, b, t] += 1
            j += 1
    return hist
