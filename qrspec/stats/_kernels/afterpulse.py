"""Numba kernel of the afterpulsing estimate: photon pairs by laser-period difference."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sync_difference_counts(sync_a, sync_b, max_k, same):
    """``counts[k]``: pairs ``(i, j)`` with ``sync_b[j] - sync_a[i] == k`` for ``0 <= k <= max_k``.

    Both arrays sorted. With ``same`` (``sync_a`` is ``sync_b``) only ``j > i`` is counted, so a
    pair inside one period counts once.
    """
    counts = np.zeros(max_k + 1, np.int64)
    nb = sync_b.size
    lo = 0
    for i in range(sync_a.size):
        s = sync_a[i]
        if same:
            j = i + 1
        else:
            while lo < nb and sync_b[lo] < s:
                lo += 1
            j = lo
        while j < nb:
            k = sync_b[j] - s
            if k > max_k:
                break
            counts[k] += 1
            j += 1
    return counts


@numba.njit(cache=True, nogil=True)
def tagged_nanotime_histogram(sync_a, sync_b, nt_b, max_k, n_bins, same):
    """Histogram of ``nt_b[j]`` over the pairs ``(i, j)`` with ``1 <= sync_b[j] - sync_a[i] <=
    max_k`` (each later photon counted once per earlier partner); ``same``: ``a`` is ``b``."""
    hist = np.zeros(n_bins, np.int64)
    nb = sync_b.size
    lo = 0
    for i in range(sync_a.size):
        s = sync_a[i]
        if same:
            j = i + 1
        else:
            while lo < nb and sync_b[lo] <= s:
                lo += 1
            j = lo
        while j < nb:
            k = sync_b[j] - s
            if k > max_k:
                break
            if k >= 1:
                b = nt_b[j]
                if b < n_bins:
                    hist[b] += 1
            j += 1
    return hist
