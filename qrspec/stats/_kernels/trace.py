"""Numba kernels for intensity trajectories (arrays in, arrays out; no checks)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def bin_counts(timestamps, detectors, nanotimes, column, gate_lo, gate_hi, start, bin_ticks,
               counts):
    """Add photon i to its time bin and detector column of counts when it passes the gate.

    The photon goes to counts[(ts - start) // bin_ticks, column[det]] if column[det] >= 0 and
    gate_lo[det] <= nanotime < gate_hi[det] (nanotimes may be empty: no gate); ts sorted.
    """
    n = timestamps.size
    n_bins = counts.shape[0]
    has_nt = nanotimes.size == n and n > 0
    k = np.int64(-1)
    next_edge = np.int64(-(2**62))
    lo_edge = np.int64(2**62)
    for i in range(n):
        t = timestamps[i]
        if t >= next_edge or t < lo_edge:  # left the current bin: one division per bin change
            k = (t - start) // bin_ticks
            lo_edge = start + k * bin_ticks
            next_edge = lo_edge + bin_ticks
        d = detectors[i]
        c = column[d]
        if c < 0 or k < 0 or k >= n_bins:
            continue
        if has_nt:
            nt = nanotimes[i]
            if nt < gate_lo[d] or nt >= gate_hi[d]:
                continue
        counts[k, c] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def detectors_seen(detectors, seen):
    """Set seen[det] for every photon (stores only: no read-modify-write chain as in a count)."""
    for i in range(detectors.size):
        seen[detectors[i]] = True
    return seen
