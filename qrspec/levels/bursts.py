"""Photon bursts: trace bins far above every intensity level (scatter, cosmic events).

Detection (:func:`find_bursts`) on the photons binned at ``bin_width_s`` (default 1 ms; or on
a given :class:`~qrspec.stats.trace.IntensityTrace`). Short bins matter: a scatter burst of
300 photons in 1 ms is 5x a 60 kcps level at 1 ms bins but only 0.5x at 10 ms bins, where it
stays below the bright level whenever it falls in a dim period (measured in
``scripts/validate_hygiene.py``).

1. Reference level ``mu``: the largest running median of the counts over ``2 h + 1``
   consecutive bins (``h = max_burst_bins``, default 2 -> 5 bins). A level that lasts at least
   ``h + 1`` bins raises it; a burst of at most ``h`` bins cannot. This is the brightest
   sustained level, found without knowing the levels (bursts must go before change-point
   analysis, which would otherwise cut them out as short bright segments).
2. Threshold: the smallest count ``n*`` with ``P(Poisson(mu) >= n*) <= alpha / n_bins``
   (Bonferroni): a particle without bursts whose brightest level is Poisson has at most a
   probability ``alpha`` of one false burst bin (the running maximum makes ``mu`` a little
   high, which makes this conservative; measured rates in ``scripts/validate_hygiene.py``).
3. Burst bins: ``count >= n*``. A burst cut by a bin edge leaves part of its photons in the
   neighbouring bin: a neighbour with ``P(Poisson(mu) >= count) < 1e-3`` joins the burst.
   Neighbouring burst bins are merged into windows.

Removal (:func:`remove_bursts`) drops every photon inside the windows and closes the gaps:
later timestamps move back by the removed whole ticks (T3: whole laser periods), so nanotimes,
detector delays and the g2 comb are untouched and the change-point analysis sees no dark gap.
:meth:`BurstRemoval.to_original_s` maps analysis times back to the file's clock (figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["BurstRemoval", "find_bursts", "remove_bursts"]

NEIGHBOUR_P = 1e-3  # a bin next to a burst bin joins it below this Poisson tail probability


@dataclass(frozen=True, eq=False)
class BurstRemoval:
    """Bursts found in a trace and what their removal takes out.

    Attributes
    ----------
    windows_ticks : ndarray of int64, shape (m, 2)
        Half-open ``[start, stop)`` tick windows removed (file clock).
    timestamps_unit : float
        Seconds per tick.
    counts : ndarray of int64
        Photons in each window.
    excess_photons : float
        Photons above the reference level in the windows (the burst photons, estimated).
    reference_cps : float
        Brightest sustained level (``mu / bin_width_s``).
    threshold_counts : int
        Smallest burst-bin count ``n*``.
    bin_width_s : float
    n_bins : int
        Bins of the trace searched.
    alpha : float
        Design false-alarm probability per particle.
    """

    windows_ticks: np.ndarray
    timestamps_unit: float
    counts: np.ndarray
    excess_photons: float
    reference_cps: float
    threshold_counts: int
    bin_width_s: float
    n_bins: int
    alpha: float

    @property
    def n_bursts(self) -> int:
        """Number of removed windows (neighbouring burst bins merged)."""
        return int(self.windows_ticks.shape[0])

    @property
    def n_photons(self) -> int:
        """Photons removed."""
        return int(self.counts.sum())

    @property
    def windows_s(self) -> np.ndarray:
        """Removed windows in seconds on the file's clock, shape (m, 2)."""
        return self.windows_ticks * self.timestamps_unit

    @property
    def removed_s(self) -> float:
        """Total time removed."""
        return float(np.sum(np.diff(self.windows_ticks, axis=1))) * self.timestamps_unit

    def to_original_s(self, time_s) -> np.ndarray:
        """File-clock times of analysis-clock times (after :func:`remove_bursts`)."""
        t = np.asarray(time_s, dtype=np.float64)
        if self.n_bursts == 0:
            return t.copy()
        w = self.windows_s
        lengths = w[:, 1] - w[:, 0]
        starts_analysis = w[:, 0] - np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        k = np.searchsorted(starts_analysis, t, side="right")
        return t + np.concatenate([[0.0], np.cumsum(lengths)])[k]


def _running_median_max(counts: np.ndarray, h: int) -> float:
    w = 2 * h + 1
    if counts.size < w:
        return float(np.median(counts)) if counts.size else 0.0
    win = np.lib.stride_tricks.sliding_window_view(counts, w)
    return float(np.max(np.median(win, axis=1)))


def find_bursts(photons, *, bin_width_s: float = 1e-3, alpha: float = 0.01,
                max_burst_bins: int = 2) -> BurstRemoval:
    """Bins far above the brightest sustained level (see the module docstring).

    Parameters
    ----------
    photons : Photons or IntensityTrace
        The analysed detectors' photons (binned at ``bin_width_s``), or a trace of their
        summed counts (:func:`qrspec.stats.trace.intensity_trace`; ``bin_width_s`` ignored).
    bin_width_s : float
        Bin width for photons input.
    alpha : float
        False-alarm probability per particle (Bonferroni over the bins).
    max_burst_bins : int
        Longest burst in bins; anything longer is a level.

    Returns
    -------
    BurstRemoval
    """
    from scipy.special import pdtrc

    from qrspec.photons import Photons
    from qrspec.stats.trace import IntensityTrace, intensity_trace

    if isinstance(photons, Photons):
        trace = intensity_trace(photons, bin_width_s)
    elif isinstance(photons, IntensityTrace):
        trace = photons
    else:
        raise QrspecError(f"photons={type(photons).__name__} must be Photons or an "
                          "IntensityTrace")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise QrspecError(f"alpha={alpha!r} must be in (0, 1)")
    if isinstance(max_burst_bins, bool) or not isinstance(max_burst_bins, int | np.integer) \
            or max_burst_bins < 1:
        raise QrspecError(f"max_burst_bins={max_burst_bins!r} must be an integer >= 1")
    c = np.asarray(trace.counts, np.int64)
    n_bins = int(c.size)
    # the last bin is only partly covered by data: never a burst, never the reference
    full = c[:-1] if n_bins > 1 else c[:0]
    mu = _running_median_max(full, int(max_burst_bins))
    empty = np.zeros((0, 2), np.int64)
    if full.size == 0 or not mu > 0:
        return BurstRemoval(empty, trace.timestamps_unit, np.zeros(0, np.int64), 0.0,
                            mu / trace.bin_width_s, -1, trace.bin_width_s, n_bins, float(alpha))
    level = alpha / full.size
    # smallest n with P(N >= n) = pdtrc(n - 1, mu) <= level; bracket above mu
    lo = int(math.floor(mu))
    hi = max(lo + 1, int(mu + 10.0 * math.sqrt(mu) + 50.0))
    while pdtrc(hi - 1, mu) > level:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pdtrc(mid - 1, mu) <= level:
            hi = mid
        else:
            lo = mid
    n_star = hi
    hot = np.flatnonzero(full >= n_star)
    if hot.size:
        # a neighbour of a burst bin that is itself significantly high holds its remainder
        nb = np.unique(np.concatenate([hot - 1, hot + 1]))
        nb = nb[(nb >= 0) & (nb < full.size)]
        nb = nb[pdtrc(full[nb] - 1, mu) < NEIGHBOUR_P]
        hot = np.union1d(hot, nb)
    if hot.size == 0:
        return BurstRemoval(empty, trace.timestamps_unit, np.zeros(0, np.int64), 0.0,
                            mu / trace.bin_width_s, n_star, trace.bin_width_s, n_bins,
                            float(alpha))
    new = np.ones(hot.size, bool)
    new[1:] = np.diff(hot) > 1
    first = hot[new]
    last = hot[np.concatenate([new[1:], [True]])]
    edges = trace.edges_ticks
    windows = np.column_stack([edges[first], edges[last + 1]]).astype(np.int64)
    counts = np.asarray([c[a:b + 1].sum() for a, b in zip(first, last, strict=True)], np.int64)
    excess = float(np.sum(c[hot] - mu))
    return BurstRemoval(windows, trace.timestamps_unit, counts, excess, mu / trace.bin_width_s,
                        n_star, trace.bin_width_s, n_bins, float(alpha))


def remove_bursts(photons, bursts: BurstRemoval):
    """Photons without the burst windows, later timestamps moved back to close the gaps.

    Markers and T2 sync events inside the windows are dropped and later ones moved the same
    way. The input is not modified.
    """
    from qrspec.photons import Photons

    if not isinstance(photons, Photons):
        raise QrspecError(f"photons={type(photons).__name__} must be a Photons object")
    if not isinstance(bursts, BurstRemoval):
        raise QrspecError(f"bursts={type(bursts).__name__} must be a BurstRemoval")
    if bursts.timestamps_unit != photons.timestamps_unit:
        raise QrspecError(f"bursts.timestamps_unit={bursts.timestamps_unit!r} differs from "
                          f"photons.timestamps_unit={photons.timestamps_unit!r}")
    if bursts.n_bursts == 0:
        return photons
    w = bursts.windows_ticks

    def shift(ts):
        k = np.searchsorted(w[:, 0], ts, side="right") - 1  # last window starting at/before
        inside = (k >= 0) & (ts < w[np.maximum(k, 0), 1])
        removed = np.concatenate([[0], np.cumsum(w[:, 1] - w[:, 0])])
        after = np.searchsorted(w[:, 1], ts, side="right")  # windows ending at/before ts
        return ~inside, ts - removed[after]

    keep, ts = shift(photons.timestamps)
    out = replace(photons, timestamps=ts[keep], detectors=photons.detectors[keep],
                  nanotimes=None if photons.nanotimes is None else photons.nanotimes[keep])
    if photons.markers.size:
        mk, mts = shift(photons.markers.timestamps)
        out = replace(out, markers=replace(photons.markers, timestamps=mts[mk],
                                           bits=photons.markers.bits[mk]))
    if photons.sync_timestamps is not None and photons.sync_timestamps.size:
        sk, sts = shift(photons.sync_timestamps)
        out = replace(out, sync_timestamps=sts[sk])
    return out
