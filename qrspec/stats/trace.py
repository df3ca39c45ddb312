"""Intensity trajectories: photon counts per time bin, per detector and summed.

``intensity_trace`` takes a :class:`~qrspec.photons.Photons` object or an iterable of the
streaming chunks of :func:`qrspec.io.iter_tttr` (bounded memory); both give identical results.

Size cap: a trajectory holds at most :data:`MAX_TRACE_BINS` bins. A longer one (span / bin
width) is *coarsened*: the bin width is multiplied by the smallest power of two that makes it
fit, the width used is ``IntensityTrace.bin_width_s`` and the requested one
``IntensityTrace.coarsened_from_s``. Memory is then bounded by the cap and the photons, never by
the span (a 10 ms sync period with a long overflow span) or a tiny bin width.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats._input import (
    N_DET,
    check_chunk,
    check_same_units,
    chunks,
    column_table,
    detectors_present,
    gate_tables,
)
from qrspec.validate import detector_list, interval, positive_float

__all__ = ["MAX_TRACE_BINS", "IntensityTrace", "TraceAccumulator", "intensity_trace"]

logger = logging.getLogger(__name__)

#: Largest number of trajectory bins. 2**21 bins is 5.8 h at the default 10 ms bin (far beyond
#: a single-particle measurement) and 16 MiB per detector row (int64); level finding still
#: runs on it in seconds. Past it the bin width is doubled until the trajectory fits (powers of
#: two keep streamed and whole-file results identical).
MAX_TRACE_BINS = 1 << 21


@dataclass(frozen=True, eq=False)
class IntensityTrace:
    """Photon counts in consecutive, equal time bins.

    Bin ``k`` holds the photons with ``start_tick + k * bin_ticks <= timestamp <
    start_tick + (k + 1) * bin_ticks``; the last bin ends after the last photon and is usually
    only partly covered by data.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_bins,)
        Photons per bin summed over ``detectors``.
    counts_per_detector : ndarray of int64, shape (n_detectors, n_bins)
        Photons per bin and detector (rows in the order of ``detectors``).
    detectors : tuple of int
        0-based detectors counted.
    bin_width_s : float
        Bin width actually used (``bin_ticks * timestamps_unit``).
    bin_ticks : int
        Bin width in timestamp ticks.
    start_tick : int
        Timestamp of the start of bin 0 (the first photon's timestamp).
    timestamps_unit : float
        Seconds per tick.
    gate_ns : tuple of float or None
        Nanotime gate applied (half-open, ns), or None.
    coarsened_from_s : float or None
        The requested bin width when the trajectory was coarsened to fit
        :data:`MAX_TRACE_BINS` (None when the requested width, rounded to whole ticks, was
        used).
    """

    counts: np.ndarray
    counts_per_detector: np.ndarray
    detectors: tuple
    bin_width_s: float
    bin_ticks: int
    start_tick: int
    timestamps_unit: float
    gate_ns: tuple | None = None
    coarsened_from_s: float | None = None

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.counts.size)

    @property
    def start_s(self) -> float:
        """Start of bin 0 in seconds (``start_tick * timestamps_unit``)."""
        return self.start_tick * self.timestamps_unit

    @property
    def time_s(self) -> np.ndarray:
        """Start time of each bin in seconds."""
        return (self.start_tick + self.bin_ticks * np.arange(self.n_bins)) * self.timestamps_unit

    @property
    def edges_ticks(self) -> np.ndarray:
        """Bin edges in ticks, shape (n_bins + 1,) (exact integers)."""
        return self.start_tick + self.bin_ticks * np.arange(self.n_bins + 1, dtype=np.int64)

    @property
    def rate_cps(self) -> np.ndarray:
        """Count rate per bin (counts / bin_width_s)."""
        return self.counts / self.bin_width_s

    @property
    def coarsening_note(self) -> str:
        """A flag text when the trajectory was coarsened, else ``""``."""
        if self.coarsened_from_s is None:
            return ""
        return (f"trajectory coarsened: bin_width_s={self.coarsened_from_s:.6g} would need more "
                f"than {MAX_TRACE_BINS} bins; {self.bin_width_s:.6g} s used")


def _coarsen_rows(k0: int, counts: np.ndarray, m: int) -> tuple[int, np.ndarray]:
    """Merge groups of ``m`` bins of a part starting at bin ``k0`` (bin k -> k // m)."""
    if m == 1:
        return k0, counts
    pad_front = k0 % m
    n = counts.shape[0] + pad_front
    n_out = -(-n // m)
    pad = np.zeros((n_out * m,) + counts.shape[1:], counts.dtype)
    pad[pad_front:pad_front + counts.shape[0]] = counts
    return k0 // m, pad.reshape((n_out, m) + counts.shape[1:]).sum(axis=1)


class TraceAccumulator:
    """Build an :class:`IntensityTrace` from photon chunks (bounded memory).

    Parameters
    ----------
    bin_width_s : float
        Requested bin width, rounded to whole ticks of the first chunk's ``timestamps_unit``
        (and coarsened by a power of two past :data:`MAX_TRACE_BINS` bins).
    gate_ns : (float, float), optional
        Half-open nanotime gate (T3 only).
    detectors : sequence of int, optional
        Detectors to count (default: every detector that has photons).

    Examples
    --------
    >>> acc = TraceAccumulator(0.01)                                   # doctest: +SKIP
    >>> for chunk in iter_tttr("particle.ptu"):                        # doctest: +SKIP
    ...     acc.add(chunk)
    >>> trace = acc.result()                                           # doctest: +SKIP
    """

    def __init__(self, bin_width_s: float, *, gate_ns=None, detectors=None):
        self.bin_width_s = positive_float("bin_width_s", bin_width_s)
        self.gate_ns = None if gate_ns is None else interval("gate_ns", gate_ns)
        self.detectors = detector_list("detectors", detectors)
        self._first = None  # (unit, requested bin_ticks, start tick)
        self._factor = 1  # power-of-two coarsening of the requested bin
        self._parts = []  # (first bin index, counts[n, n_cols], detectors of the columns)

    def add(self, photons: Photons) -> None:
        """Count the photons of one chunk (chunks must be in time order)."""
        from qrspec.stats._kernels import trace as _kt

        photons = check_chunk(photons)
        if self._first is None:
            if photons.size == 0:
                return
            unit = photons.timestamps_unit
            bin_ticks = round(self.bin_width_s / unit)
            if bin_ticks < 1:
                raise QrspecError(f"bin_width_s={self.bin_width_s!r} is shorter than one "
                                  f"timestamp tick ({unit:.4g} s)")
            if self.gate_ns is not None and not photons.is_t3:
                raise QrspecError(f"gate_ns={self.gate_ns!r} needs T3 data (nanotimes); "
                                  "this is T2 data")
            self._first = (unit, bin_ticks, int(photons.timestamps[0]))
        if photons.size == 0:
            return
        unit, req_ticks, start = self._first
        check_same_units(photons, unit)
        ts = photons.timestamps
        last = int(ts[-1]) - start
        while last // (req_ticks * self._factor) + 1 > MAX_TRACE_BINS:
            self._coarsen(2)
        bin_ticks = req_ticks * self._factor
        if self.detectors is None:  # columns: the detectors present in this chunk
            dets = tuple(int(d) for d in detectors_present(photons))
        else:
            dets = tuple(self.detectors)
        column = column_table(dets)
        lo, hi = gate_tables(photons, self.gate_ns)
        k0 = (int(ts[0]) - start) // bin_ticks
        k1 = last // bin_ticks
        counts = np.zeros((k1 - k0 + 1, len(dets)), np.int64)
        # nanotimes are read only when gating
        nt = photons.nanotimes if self.gate_ns is not None else np.zeros(0, np.uint16)
        _kt.bin_counts(ts, photons.detectors, nt, column, lo, hi, start + k0 * bin_ticks,
                       bin_ticks, counts)
        self._parts.append((k0, counts, dets))

    def _coarsen(self, m: int) -> None:
        self._factor *= m
        self._parts = [(*_coarsen_rows(k0, c, m), d) for k0, c, d in self._parts]

    def result(self) -> IntensityTrace:
        """Return the trace of every chunk added so far."""
        if self._first is None:
            dets = tuple(self.detectors or ())
            return IntensityTrace(np.zeros(0, np.int64), np.zeros((len(dets), 0), np.int64),
                                  dets, float("nan"), 0, 0, float("nan"), self.gate_ns)
        unit, req_ticks, start = self._first
        bin_ticks = req_ticks * self._factor
        n_bins = max(k0 + c.shape[0] for k0, c, _ in self._parts)
        if self.detectors is None:
            seen = np.zeros(N_DET, bool)
            for _, c, d in self._parts:
                seen[list(d)] |= c.any(axis=0)
            dets = tuple(int(d) for d in np.flatnonzero(seen))
        else:
            dets = tuple(self.detectors)
        row = column_table(dets)
        per_det = np.zeros((len(dets), n_bins), np.int64)
        for k0, c, d in self._parts:
            r = row[list(d)]
            use = r >= 0
            per_det[r[use], k0:k0 + c.shape[0]] += c[:, use].T
        coarsened = self.bin_width_s if self._factor > 1 else None
        if coarsened is not None:
            logger.info("trajectory coarsened from bin_width_s=%g to %g s (MAX_TRACE_BINS=%d)",
                        self.bin_width_s, bin_ticks * unit, MAX_TRACE_BINS)
        return IntensityTrace(per_det.sum(axis=0), per_det, dets, bin_ticks * unit, bin_ticks,
                              start, unit, self.gate_ns, coarsened)


def intensity_trace(photons, bin_width_s: float, *, gate_ns=None,
                    detectors=None) -> IntensityTrace:
    """Photon counts in consecutive time bins, per detector and summed.

    Parameters
    ----------
    photons : Photons or iterable of Photons
        All photons, or the time-ordered chunks of :func:`qrspec.io.iter_tttr`.
    bin_width_s : float
        Requested bin width in seconds, rounded to whole timestamp ticks (a T3 tick is one sync
        period) and coarsened by a power of two past :data:`MAX_TRACE_BINS` bins; the width
        actually used is ``IntensityTrace.bin_width_s``.
    gate_ns : (float, float), optional
        Count only photons with ``start <= nanotime < stop`` (ns, half-open; T3 only).
    detectors : sequence of int, optional
        Detectors to count (default: every detector with photons).

    Returns
    -------
    IntensityTrace
        Bin 0 starts at the first photon; ``counts.sum()`` equals the number of counted photons.
    """
    acc = TraceAccumulator(bin_width_s, gate_ns=gate_ns, detectors=detectors)
    for chunk in chunks(photons):
        acc.add(chunk)
    return acc.result()
