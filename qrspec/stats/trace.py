"""Intensity trajectories: photon counts per time bin, per detector and summed.

``intensity_trace`` takes a :class:`~qrspec.photons.Photons` object or an iterable of the
streaming chunks of :func:`qrspec.io.iter_tttr` (bounded memory); both give identical results.
The private helpers at the bottom (detector tables, gates, chunk handling) are shared by
``decay``, ``correlation`` and ``pairs``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons, _gate_bins

__all__ = ["IntensityTrace", "TraceAccumulator", "intensity_trace"]

logger = logging.getLogger(__name__)

_N_DET = 256  # detectors are uint8: per-detector lookup tables have 256 entries


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
    """

    counts: np.ndarray
    counts_per_detector: np.ndarray
    detectors: tuple
    bin_width_s: float
    bin_ticks: int
    start_tick: int
    timestamps_unit: float
    gate_ns: tuple | None = None

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


class TraceAccumulator:
    """Build an :class:`IntensityTrace` from photon chunks (bounded memory).

    Parameters
    ----------
    bin_width_s : float
        Requested bin width, rounded to whole ticks of the first chunk's ``timestamps_unit``.
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
        self.bin_width_s = _positive_float("bin_width_s", bin_width_s)
        self.gate_ns = None if gate_ns is None else tuple(float(g) for g in _pair("gate_ns",
                                                                                   gate_ns))
        self.detectors = _detector_list(detectors)
        self._first = None  # (unit, bin_ticks, start)
        self._parts = []  # (first bin index, counts[n, 256-col subset])
        self._seen = np.zeros(_N_DET, bool)

    def add(self, photons: Photons) -> None:
        """Count the photons of one chunk (chunks must be in time order)."""
        from qrspec.stats._kernels import trace as _kt

        if not isinstance(photons, Photons):
            raise QrspecError(f"photons={type(photons).__name__} must be a Photons chunk")
        if self._first is None:
            if photons.size == 0:
                return
            unit = photons.timestamps_unit
            bin_ticks = round(self.bin_width_s / unit)
            if bin_ticks < 1:
                raise QrspecError(f"bin_width_s={self.bin_width_s!r} is shorter than one "
                                  f"timestamp tick ({unit:.4g} s)")
            self._first = (unit, bin_ticks, int(photons.timestamps[0]), photons.is_t3)
            if self.gate_ns is not None and not photons.is_t3:
                raise QrspecError(f"gate_ns={self.gate_ns!r} needs T3 data (nanotimes); "
                                  "this is T2 data")
        if photons.size == 0:
            return
        unit, bin_ticks, start, _ = self._first
        _check_same_units(photons, unit)
        ts = photons.timestamps
        column = _column_table(self.detectors)
        lo, hi = _gate_tables(photons, self.gate_ns)
        k0 = (int(ts[0]) - start) // bin_ticks
        k1 = (int(ts[-1]) - start) // bin_ticks
        n_cols = (int(photons.detectors.max()) + 1 if self.detectors is None
                  else len(self.detectors))
        counts = np.zeros((k1 - k0 + 1, n_cols), np.int64)
        # nanotimes are read only when gating
        nt = photons.nanotimes if self.gate_ns is not None else np.zeros(0, np.uint16)
        _kt.bin_counts(ts, photons.detectors, nt, column, lo, hi, start + k0 * bin_ticks,
                       bin_ticks, counts)
        if self.detectors is None:
            self._seen[:n_cols] |= counts.any(axis=0)
        self._parts.append((k0, counts))

    def result(self) -> IntensityTrace:
        """Return the trace of every chunk added so far."""
        if self._first is None:
            dets = tuple(self.detectors or ())
            return IntensityTrace(np.zeros(0, np.int64), np.zeros((len(dets), 0), np.int64),
                                  dets, float("nan"), 0, 0, float("nan"), self.gate_ns)
        unit, bin_ticks, start, _ = self._first
        n_bins = max(k0 + c.shape[0] for k0, c in self._parts)
        if self.detectors is None:
            cols = np.flatnonzero(self._seen)
            dets = tuple(int(d) for d in cols)
        else:
            cols = np.arange(len(self.detectors))
            dets = tuple(self.detectors)
        per_det = np.zeros((len(dets), n_bins), np.int64)
        for k0, c in self._parts:
            use = cols < c.shape[1]  # a chunk has columns up to its own largest detector
            per_det[use, k0:k0 + c.shape[0]] += c[:, cols[use]].T
        return IntensityTrace(per_det.sum(axis=0), per_det, dets, bin_ticks * unit, bin_ticks,
                              start, unit, self.gate_ns)


def intensity_trace(photons, bin_width_s: float, *, gate_ns=None,
                    detectors=None) -> IntensityTrace:
    """Photon counts in consecutive time bins, per detector and summed.

    Parameters
    ----------
    photons : Photons or iterable of Photons
        All photons, or the time-ordered chunks of :func:`qrspec.io.iter_tttr`.
    bin_width_s : float
        Requested bin width in seconds, rounded to whole timestamp ticks (a T3 tick is one sync
        period); the width actually used is ``IntensityTrace.bin_width_s``.
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
    for chunk in _chunks(photons):
        acc.add(chunk)
    return acc.result()


# ------------------------------------------------------------------ shared private helpers
def _chunks(photons) -> Iterable[Photons]:
    """A Photons object as a one-chunk list; an iterable of chunks unchanged."""
    if isinstance(photons, Photons):
        return (photons,)
    if isinstance(photons, Iterable) and not isinstance(photons, str | bytes | np.ndarray):
        return photons
    raise QrspecError(f"photons={type(photons).__name__} must be Photons or an iterable of "
                      "Photons chunks")


def _check_photons(photons) -> Photons:
    if not isinstance(photons, Photons):
        raise QrspecError(f"photons={type(photons).__name__} must be a Photons object")
    return photons


def _check_same_units(photons: Photons, unit: float) -> None:
    if photons.timestamps_unit != unit:
        raise QrspecError(f"chunk timestamps_unit={photons.timestamps_unit!r} differs from the "
                          f"first chunk's {unit!r}")


def _positive_float(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={value!r} must be a number") from None
    if not (v > 0 and np.isfinite(v)):
        raise QrspecError(f"{name}={value!r} must be a finite number > 0")
    return v


def _pair(name: str, value) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in value)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={value!r} must be a (start, stop) pair") from None
    if not a < b:
        raise QrspecError(f"{name}={value!r} must satisfy start < stop")
    return a, b


def _detector_list(detectors) -> list[int] | None:
    if detectors is None:
        return None
    dets = [int(d) for d in np.atleast_1d(np.asarray(detectors))]
    if not dets or any(d < 0 or d > 255 for d in dets) or len(set(dets)) != len(dets):
        raise QrspecError(f"detectors={detectors!r} must be distinct 0-based detectors in 0..255")
    return dets


def _column_table(detectors) -> np.ndarray:
    """column[det] = output column of a detector, -1 if not counted (None: column = det)."""
    if detectors is None:
        return np.arange(_N_DET, dtype=np.int64)
    col = np.full(_N_DET, -1, np.int64)
    col[detectors] = np.arange(len(detectors))
    return col


def _gate_tables(photons: Photons, gate_ns, offsets_bins=None):
    """Per-detector half-open nanotime gates [lo, hi) in TCSPC bins (whole range if no gate).

    ``offsets_bins`` (per detector) shift the gate of each detector by its offset.
    """
    lo = np.zeros(_N_DET, np.int64)
    hi = np.full(_N_DET, 1 << 20, np.int64)
    if gate_ns is None:
        return lo, hi
    gate_ns = _pair("gate_ns", gate_ns)
    if not photons.is_t3:
        raise QrspecError(f"gate_ns={gate_ns!r} needs T3 data (nanotimes); this is T2 data")
    g0, g1 = _gate_bins(gate_ns, photons.nanotimes_unit)
    lo[:] = g0
    hi[:] = g1
    if offsets_bins is not None:
        lo += offsets_bins
        hi += offsets_bins
    return lo, hi


def _nanotimes_or_empty(photons: Photons) -> np.ndarray:
    return photons.nanotimes if photons.is_t3 else np.zeros(0, np.uint16)
