"""Numba kernels for nanotime (decay) histograms (arrays in, arrays out; no checks)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def nanotime_counts(detectors, nanotimes, row, counts):
    """Add photon i to counts[row[det], nanotime] if row[det] >= 0 (nanotime < counts.shape[1])."""
    for i in range(detectors.size):
        r = row[detectors[i]]
        if r >= 0:
            counts[r, nanotimes[i]] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def bin_delay_sums(timestamps, detectors, nanotimes, shift, period_bins, start, bin_ticks,
                   counts, sums):
    """Photon count and aligned-nanotime sum per time bin.

    Per time bin k = (ts - start) // bin_ticks: photon count and sum of the aligned nanotime
    (nanotime - shift[det]) mod period_bins, for detectors with shift[det] >= 0 (ts sorted).
    """
    n_bins = counts.size
    k = np.int64(-1)
    next_edge = np.int64(-(2**62))
    lo_edge = np.int64(2**62)
    for i in range(timestamps.size):
        s = shift[detectors[i]]
        if s < 0:
            continue
        t = timestamps[i]
        if t >= next_edge or t < lo_edge:
            k = (t - start) // bin_ticks
            lo_edge = start + k * bin_ticks
            next_edge = lo_edge + bin_ticks
        if k < 0 or k >= n_bins:
            continue
        a = (np.int64(nanotimes[i]) - s) % period_bins
        counts[k] += 1
        sums[k] += a
    return counts, sums


@numba.njit(cache=True, nogil=True)
def segment_aligned_counts(timestamps, detectors, nanotimes, row, bin_of, seg_lo, seg_hi,
                           seg_label, counts, unassigned):
    """Add photon i to its segment's label row of counts, else to unassigned.

    Photon i (row[det] >= 0) goes to counts[seg_label[p], bin_of[row[det], nanotime]] if seg_lo[p]
    <= ts < seg_hi[p] for a segment p with a label >= 0 (sorted, disjoint; ts sorted), else to
    unassigned[...] at the same bin (bin_of: the aligned, rebinned output bin of each raw nanotime,
    one row per detector).
    """
    n_seg = seg_lo.size
    p = 0
    for i in range(timestamps.size):
        r = row[detectors[i]]
        if r < 0:
            continue
        b = bin_of[r, nanotimes[i]]
        t = timestamps[i]
        while p < n_seg and seg_hi[p] <= t:
            p += 1
        if p < n_seg and seg_lo[p] <= t and seg_label[p] >= 0:
            counts[seg_label[p], b] += 1
        else:
            unassigned[b] += 1
    return counts, unassigned
