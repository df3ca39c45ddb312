"""Nanotime histograms (decays): per detector, aligned, rebinned; intensity-sliced decays; FLID.

Alignment: detector ``d``'s nanotime ``n`` goes to the aligned bin ``(n - offset_d) mod P``
where ``P = round(timestamps_unit / nanotimes_unit)`` is the number of TCSPC bins per laser
period, so photons that fall before a detector's rise wrap to the end of the period (they are the
previous pulse's tail) and nothing is lost. Offsets are whole TCSPC bins. By default they are
estimated from the data as the half-maximum point of each detector's rising edge (the IRF centre
for a decay that is long compared with the IRF; :func:`estimate_offsets_bins`) relative to the
first detector, so the aligned axis is the first detector's own nanotime axis.

Because alignment is a cyclic shift of whole bins, it is done on full-resolution per-detector
histograms after counting: streaming (:class:`DecayAccumulator`) and whole-file results are
identical.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats.trace import (
    _N_DET,
    _check_photons,
    _check_same_units,
    _chunks,
    _detector_list,
    _positive_float,
    intensity_trace,
)

__all__ = [
    "FLID",
    "Decay",
    "DecayAccumulator",
    "SlicedDecays",
    "background_counts",
    "decay_histogram",
    "estimate_offsets_bins",
    "flid",
    "sliced_decays",
]

logger = logging.getLogger(__name__)

_N_RAW = 1 << 16  # nanotimes are uint16
_MIN_PHOTONS_FOR_OFFSET = 200


@dataclass(frozen=True, eq=False)
class Decay:
    """A nanotime histogram over one laser period, aligned across detectors.

    Bin ``j`` covers aligned nanotimes ``[edges_ns[j], edges_ns[j + 1])``; the last bin is
    shorter when the period is not a multiple of the bin width.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_bins,)
        Aligned counts summed over ``detectors``.
    counts_per_detector : ndarray of int64, shape (n_detectors, n_bins)
        Aligned counts per detector.
    edges_ns : ndarray of float64, shape (n_bins + 1,)
        Bin edges in ns (left edge of bin 0 is 0; the last edge is ``period_ns``).
    detectors : tuple of int
        Detectors included.
    offsets_ns : ndarray of float64
        Offset subtracted from each detector's nanotimes (whole TCSPC bins).
    offsets_estimated : bool
        True if the offsets were estimated from the data.
    t0_ns : float
        Rise (half-maximum of the rising edge) of the summed aligned decay: an estimate of the
        IRF position, in ns.
    bin_ns : float
        Bin width actually used (whole TCSPC bins).
    resolution_ns : float
        TCSPC bin width (``nanotimes_unit``).
    period_ns : float
        ``bins_per_period * resolution_ns``: the aligned axis length.
    """

    counts: np.ndarray
    counts_per_detector: np.ndarray
    edges_ns: np.ndarray
    detectors: tuple
    offsets_ns: np.ndarray
    offsets_estimated: bool
    t0_ns: float
    bin_ns: float
    resolution_ns: float
    period_ns: float

    @property
    def time_ns(self) -> np.ndarray:
        """Left edge of each bin in ns."""
        return self.edges_ns[:-1]

    @property
    def n_photons(self) -> int:
        """Photons in the histogram."""
        return int(self.counts.sum())


@dataclass(frozen=True, eq=False)
class SlicedDecays:
    """Aligned decays of the photons in several slices (intensity ranges, levels or windows).

    Attributes
    ----------
    counts : ndarray of int64, shape (n_slices, n_bins)
        Aligned decay of each slice, summed over detectors.
    unassigned : ndarray of int64, shape (n_bins,)
        Decay of the photons in no slice; ``counts.sum(0) + unassigned == total.counts``.
    total : Decay
        Decay of all photons (its offsets are the ones applied to every slice).
    n_time_bins : ndarray of int64, shape (n_slices,)
        Trace bins assigned to each slice (intensity/level modes; windows: number of windows).
    duration_s : ndarray of float64, shape (n_slices,)
        Time covered by each slice.
    labels : tuple
        Description of each slice (the intensity range, level label or window label).
    bin_width_s : float or None
        Trace bin width used to assign photons (None for time windows).
    """

    counts: np.ndarray
    unassigned: np.ndarray
    total: Decay
    n_time_bins: np.ndarray
    duration_s: np.ndarray
    labels: tuple
    bin_width_s: float | None

    @property
    def edges_ns(self) -> np.ndarray:
        """Bin edges in ns (as ``total.edges_ns``)."""
        return self.total.edges_ns

    @property
    def n_photons(self) -> np.ndarray:
        """Photons per slice."""
        return self.counts.sum(axis=1)


@dataclass(frozen=True, eq=False)
class FLID:
    """Fluorescence-lifetime-intensity distribution: counts per bin vs mean delay.

    Per trace bin ``i``: ``delay_ns[i] = (sum of aligned nanotimes - n_b * t_b) / (c_i - n_b) -
    t_irf_ns``, with ``n_b = background_cps * bin_width_s`` expected background photons whose
    mean aligned nanotime is ``t_b = (P - 1) / 2`` TCSPC bins (uniform over the ``P`` bins of
    a period); nanotimes are bin starts. NaN where ``c_i - n_b <= 0`` or
    ``c_i < min_counts``.

    Attributes
    ----------
    histogram : ndarray of int64, shape (n_count_bins, n_delay_bins)
        Number of trace bins per (counts, delay) cell; NaN-delay bins are not included.
    count_edges : ndarray of float64
        Edges of the counts axis (integer counts ``c`` fall in ``[c, c + 1)`` by default).
    delay_edges_ns : ndarray of float64
        Edges of the delay axis in ns.
    counts : ndarray of int64, shape (n_bins,)
        Photons per trace bin.
    delay_ns : ndarray of float64, shape (n_bins,)
        Background-corrected mean delay per trace bin.
    bin_width_s : float
        Trace bin width actually used.
    background_cps : float
        Background rate used for the correction.
    t_irf_ns : float
        Time subtracted from each mean delay (the IRF position on the aligned axis).
    """

    histogram: np.ndarray
    count_edges: np.ndarray
    delay_edges_ns: np.ndarray
    counts: np.ndarray
    delay_ns: np.ndarray
    bin_width_s: float
    background_cps: float
    t_irf_ns: float


# ------------------------------------------------------------------ decay histograms
class DecayAccumulator:
    """Accumulate full-resolution per-detector nanotime histograms from photon chunks.

    Parameters
    ----------
    detectors : sequence of int, optional
        Detectors to include (default: every detector with photons).
    """

    def __init__(self, *, detectors=None):
        self.detectors = _detector_list(detectors)
        self._raw = np.zeros((0, _N_RAW), np.int64)  # row = detector id (rows up to max seen)
        self._units = None

    def add(self, photons: Photons) -> None:
        """Histogram the nanotimes of one chunk."""
        from qrspec.stats._kernels import histogram as _kh

        if not isinstance(photons, Photons):
            raise QrspecError(f"photons={type(photons).__name__} must be a Photons chunk")
        if not photons.is_t3:
            raise QrspecError("decay histograms need T3 data (nanotimes); this is T2 data")
        if self._units is None:
            self._units = (photons.timestamps_unit, photons.nanotimes_unit)
        else:
            _check_same_units(photons, self._units[0])
        if photons.size == 0:
            return
        n_rows = int(photons.detectors.max()) + 1
        if self._raw.shape[0] < n_rows:
            new = np.zeros((n_rows, _N_RAW), np.int64)
            new[: self._raw.shape[0]] = self._raw
            self._raw = new
        row = np.full(_N_DET, -1, np.int64)
        if self.detectors is None:
            row[:n_rows] = np.arange(n_rows)
        else:
            sel = [d for d in self.detectors if d < n_rows]
            row[sel] = sel
        _kh.nanotime_counts(photons.detectors, photons.nanotimes, row, self._raw)

    def raw_counts(self) -> tuple[tuple, np.ndarray]:
        """Return (detectors, raw per-detector histograms of shape (n_det, 65536))."""
        if self.detectors is None:
            dets = tuple(int(d) for d in np.flatnonzero(self._raw.any(axis=1)))
        else:
            dets = tuple(self.detectors)
        out = np.zeros((len(dets), _N_RAW), np.int64)
        for i, d in enumerate(dets):
            if d < self._raw.shape[0]:
                out[i] = self._raw[d]
        return dets, out

    def result(self, *, bin_ns=None, offsets_ns=None) -> Decay:
        """Aligned, rebinned :class:`Decay` of every chunk added so far."""
        if self._units is None:
            raise QrspecError("no photons chunks were added")
        dets, raw = self.raw_counts()
        return _make_decay(raw, dets, self._units, bin_ns, offsets_ns)


def decay_histogram(photons, *, detectors=None, bin_ns=None, offsets_ns=None) -> Decay:
    """Nanotime histogram per detector and summed, aligned to a common zero.

    Parameters
    ----------
    photons : Photons or iterable of Photons
        T3 photons, or the time-ordered chunks of :func:`qrspec.io.iter_tttr`.
    detectors : sequence of int, optional
        Detectors to include (default: every detector with photons).
    bin_ns : float, optional
        Output bin width, rounded to whole TCSPC bins (default: the TCSPC resolution).
    offsets_ns : sequence of float, optional
        Offset to subtract from each detector's nanotimes (one per detector, rounded to whole
        TCSPC bins). Default: estimated as each detector's rise (half-maximum of the rising
        edge) relative to the first detector's (see :func:`estimate_offsets_bins`). Pass zeros
        to disable alignment.

    Returns
    -------
    Decay
        Photons whose aligned nanotime falls outside ``[0, period)`` are wrapped (mod the
        period), so ``counts.sum()`` equals the number of photons on ``detectors``.
    """
    acc = DecayAccumulator(detectors=detectors)
    for chunk in _chunks(photons):
        acc.add(chunk)
    return acc.result(bin_ns=bin_ns, offsets_ns=offsets_ns)


def estimate_offsets_bins(folded: np.ndarray, resolution_ns: float) -> np.ndarray:
    """Rise position of each row of periodic histograms, in TCSPC bins.

    Each row is smoothed with a centred periodic moving average of about 0.1 ns (an odd number
    of bins, at least 1); the rise is the first bin of the rising edge at or above half-way
    between the smoothed minimum (background) and maximum. For a decay ``IRF * exp(-t/tau)``
    with ``tau`` much longer than the IRF this is the IRF centre (the edge is ``Phi((t - t0) /
    sigma)``), without the bias of a steepest-slope estimate on a sharp rise. Rows with fewer
    than 200 photons give 0.

    Parameters
    ----------
    folded : ndarray, shape (n_det, bins_per_period)
        Per-detector histograms folded onto one period.
    resolution_ns : float
        TCSPC bin width.
    """
    folded = np.atleast_2d(folded)
    n = folded.shape[1]
    half_w = max(0, int(round(0.05 / resolution_ns)))
    half_w = min(half_w, (n - 1) // 2)
    w = 2 * half_w + 1
    out = np.zeros(folded.shape[0], np.int64)
    for r, h in enumerate(folded):
        if h.sum() < _MIN_PHOTONS_FOR_OFFSET:
            continue
        ext = np.concatenate([h[n - half_w:], h, h[:half_w]]).astype(np.float64)
        c = np.concatenate([[0.0], np.cumsum(ext)])
        smooth = (c[w:] - c[:-w]) / w  # smooth[j] = mean of h[j - half_w .. j + half_w]
        peak = int(np.argmax(smooth))
        level = 0.5 * (smooth.min() + smooth[peak])
        j = peak
        for _ in range(n):  # walk down the rising edge
            if smooth[(j - 1) % n] < level:
                break
            j -= 1
        out[r] = j % n
    return out


def _fold(raw: np.ndarray, period_bins: int) -> np.ndarray:
    """Fold (n, 65536) raw histograms onto one period: out[:, j] = sum_m raw[:, j + m P]."""
    n_rows = raw.shape[0]
    m = -(-raw.shape[1] // period_bins)
    pad = np.zeros((n_rows, m * period_bins), np.int64)
    pad[:, : raw.shape[1]] = raw
    return pad.reshape(n_rows, m, period_bins).sum(axis=1)


def _period_bins(units) -> int:
    ts_unit, nt_unit = units
    return max(1, int(round(ts_unit / nt_unit)))


def _resolve_offsets(folded, dets, offsets_ns, res_ns, period_bins):
    """Per-detector integer offsets in [0, period) and whether they were estimated."""
    if offsets_ns is None:
        rise = estimate_offsets_bins(folded, res_ns)
        usable = folded.sum(axis=1) >= _MIN_PHOTONS_FOR_OFFSET
        ref = int(rise[np.argmax(usable)]) if usable.any() else 0
        off = np.where(usable, rise - ref, 0)
        for d, u in zip(dets, usable, strict=True):
            if not u:
                logger.warning("detector %d has < %d photons: offset not estimated (0)", d,
                               _MIN_PHOTONS_FOR_OFFSET)
        return off % period_bins, True
    off = np.atleast_1d(np.asarray(offsets_ns, dtype=np.float64))
    if off.shape != (len(dets),) or not np.all(np.isfinite(off)):
        raise QrspecError(f"offsets_ns={offsets_ns!r} must hold one finite offset per detector "
                          f"({len(dets)} detectors: {list(dets)})")
    return np.rint(off / res_ns).astype(np.int64) % period_bins, False


def _rebin_factor(bin_ns, res_ns: float) -> int:
    if bin_ns is None:
        return 1
    b = _positive_float("bin_ns", bin_ns)
    r = int(round(b / res_ns))
    if r < 1:
        raise QrspecError(f"bin_ns={bin_ns!r} is shorter than one TCSPC bin "
                          f"({res_ns:.4g} ns)")
    return r


def _align_rebin(folded: np.ndarray, off: np.ndarray, r: int) -> np.ndarray:
    """Cyclically shift each row by its offset (aligned[a] = folded[(a + off) mod P]), rebin."""
    n_rows, p = folded.shape
    aligned = np.empty_like(folded)
    for i in range(n_rows):
        aligned[i] = np.roll(folded[i], -int(off[i]))
    n_out = -(-p // r)
    pad = np.zeros((n_rows, n_out * r), np.int64)
    pad[:, :p] = aligned
    return pad.reshape(n_rows, n_out, r).sum(axis=2)


def _make_decay(raw, dets, units, bin_ns, offsets_ns) -> Decay:
    res_ns = units[1] * 1e9
    p = _period_bins(units)
    r = _rebin_factor(bin_ns, res_ns)
    folded = _fold(raw, p)
    off, estimated = _resolve_offsets(folded, dets, offsets_ns, res_ns, p)
    per_det = _align_rebin(folded, off, r)
    total_fine = _align_rebin(folded, off, 1).sum(axis=0, keepdims=True)
    t0 = float(estimate_offsets_bins(total_fine, res_ns)[0]) * res_ns
    edges = np.minimum(np.arange(per_det.shape[1] + 1) * r, p) * res_ns
    signed = np.where(off > p // 2, off - p, off)  # report offsets in (-P/2, P/2]
    return Decay(per_det.sum(axis=0), per_det, edges, tuple(int(d) for d in dets),
                 signed * res_ns, estimated, t0, r * res_ns, res_ns, p * res_ns)


# ------------------------------------------------------------------ sliced decays
def sliced_decays(photons, *, bin_width_s=None, intensity_ranges=None, levels=None,
                  time_windows_s=None, window_labels=None, detectors=None, bin_ns=None,
                  offsets_ns=None) -> SlicedDecays:
    """Decays of the photons in several slices of the measurement, in one pass.

    Exactly one way of slicing must be given:

    * ``intensity_ranges`` with ``bin_width_s``: slice ``j`` pools the trace bins whose count
      (summed over ``detectors``) satisfies ``lo_j <= count < hi_j``;
    * ``levels`` with ``bin_width_s``: an integer label per trace bin (``-1`` = none), e.g. a level
      assignment; slice ``j`` pools the bins labelled ``j``;
    * ``time_windows_s``: half-open windows ``(start, stop)`` in seconds on ``timestamps *
      timestamps_unit`` (edges rounded to the nearest tick); each window is a slice, or windows
      sharing a label in ``window_labels`` form one slice.

    Parameters
    ----------
    photons : Photons
        T3 photons (two passes are made: the trace, then the decays).
    bin_width_s : float, optional
        Trace bin width for ``intensity_ranges`` / ``levels`` (rounded to whole ticks).
    intensity_ranges : sequence of (int, int), optional
        Non-overlapping half-open count ranges.
    levels : array_like of int, optional
        Label per trace bin of :func:`qrspec.stats.trace.intensity_trace` with the same
        ``bin_width_s`` and ``detectors``.
    time_windows_s : sequence of (float, float), optional
        Non-overlapping windows.
    window_labels : array_like of int, optional
        Slice index of each window (default: one slice per window).
    detectors, bin_ns, offsets_ns
        As in :func:`decay_histogram`; the offsets are estimated on all photons and applied to
        every slice.
    """
    from qrspec.stats._kernels import histogram as _kh

    photons = _check_photons(photons)
    if not photons.is_t3:
        raise QrspecError("sliced decays need T3 data (nanotimes); this is T2 data")
    modes = [x is not None for x in (intensity_ranges, levels, time_windows_s)]
    if sum(modes) != 1:
        raise QrspecError("give exactly one of intensity_ranges=, levels=, time_windows_s= "
                          f"(got {sum(modes)})")
    dets = _detector_list(detectors)
    if dets is None:
        dets = [int(d) for d in photons.detector_ids]
    unit = photons.timestamps_unit
    if time_windows_s is None:
        if bin_width_s is None:
            raise QrspecError("bin_width_s is required with intensity_ranges= or levels=")
        trace = intensity_trace(photons, bin_width_s, detectors=dets)
        n = trace.n_bins
        if intensity_ranges is not None:
            ranges = _intensity_ranges(intensity_ranges)
            label_of_bin = np.full(n, -1, np.int64)
            for j, (lo, hi) in enumerate(ranges):
                label_of_bin[(trace.counts >= lo) & (trace.counts < hi)] = j
            labels = tuple(ranges)
        else:
            label_of_bin = np.asarray(levels)
            if label_of_bin.shape != (n,) or not np.issubdtype(label_of_bin.dtype, np.integer):
                raise QrspecError(f"levels shape {label_of_bin.shape} dtype {label_of_bin.dtype}"
                                  f" must be integer labels, one per trace bin ({n} bins)")
            if label_of_bin.size and label_of_bin.min() < -1:
                raise QrspecError(f"levels must be >= -1 (-1 = unassigned), got "
                                  f"{label_of_bin.min()}")
            label_of_bin = label_of_bin.astype(np.int64)
            labels = tuple(range(int(label_of_bin.max()) + 1 if n else 0))
        edges = trace.edges_ticks
        seg_lo, seg_hi, seg_label = edges[:-1], edges[1:], label_of_bin
        n_slices = len(labels)
        n_time_bins = np.bincount(label_of_bin[label_of_bin >= 0], minlength=n_slices)
        duration = n_time_bins * trace.bin_width_s
        used_bin_width = trace.bin_width_s
    else:
        seg_lo, seg_hi = _windows_ticks(time_windows_s, unit)
        if window_labels is None:
            seg_label = np.arange(seg_lo.size, dtype=np.int64)
        else:
            seg_label = np.asarray(window_labels)
            if seg_label.shape != seg_lo.shape or not np.issubdtype(seg_label.dtype, np.integer) \
                    or (seg_label.size and seg_label.min() < 0):
                raise QrspecError(f"window_labels={window_labels!r} must be one integer >= 0 per "
                                  f"window ({seg_lo.size} windows)")
            seg_label = seg_label.astype(np.int64)
        order = np.argsort(seg_lo, kind="stable")
        seg_lo, seg_hi, seg_label = seg_lo[order], seg_hi[order], seg_label[order]
        if np.any(seg_lo[1:] < seg_hi[:-1]):
            raise QrspecError(f"time_windows_s={time_windows_s!r} must not overlap")
        n_slices = int(seg_label.max()) + 1 if seg_label.size else 0
        labels = tuple(range(n_slices))
        n_time_bins = np.bincount(seg_label, minlength=n_slices)
        duration = np.bincount(seg_label, weights=(seg_hi - seg_lo) * unit, minlength=n_slices)
        used_bin_width = None
    row = np.full(_N_DET, -1, np.int64)
    row[dets] = np.arange(len(dets))
    n_raw = max(_period_bins((unit, photons.nanotimes_unit)),
                int(photons.nanotimes.max()) + 1 if photons.size else 1)
    counts = np.zeros((n_slices, len(dets), n_raw), np.int64)
    unassigned = np.zeros((len(dets), n_raw), np.int64)
    _kh.segment_nanotime_counts(photons.timestamps, photons.detectors, photons.nanotimes, row,
                                np.ascontiguousarray(seg_lo, np.int64),
                                np.ascontiguousarray(seg_hi, np.int64),
                                np.ascontiguousarray(seg_label, np.int64), counts, unassigned)
    units = (unit, photons.nanotimes_unit)
    total_raw = counts.sum(axis=0) + unassigned
    total = _make_decay(total_raw, dets, units, bin_ns, offsets_ns)
    p = _period_bins(units)
    off = np.rint(total.offsets_ns / total.resolution_ns).astype(np.int64) % p
    r = int(round(total.bin_ns / total.resolution_ns))
    sliced = np.stack([_align_rebin(_fold(c, p), off, r).sum(axis=0) for c in counts]) \
        if n_slices else np.zeros((0, total.counts.size), np.int64)
    rest = _align_rebin(_fold(unassigned, p), off, r).sum(axis=0)
    return SlicedDecays(sliced, rest, total, np.asarray(n_time_bins, np.int64),
                        np.asarray(duration, np.float64), labels, used_bin_width)


def _intensity_ranges(ranges) -> list[tuple[int, int]]:
    out = []
    try:
        for lo, hi in ranges:
            out.append((int(lo), int(hi)))
    except (TypeError, ValueError):
        raise QrspecError(f"intensity_ranges={ranges!r} must be (lo, hi) count pairs") from None
    if not out or any(lo >= hi for lo, hi in out):
        raise QrspecError(f"intensity_ranges={ranges!r} must be non-empty (lo, hi) pairs with "
                          "lo < hi")
    s = sorted(out)
    if any(a[1] > b[0] for a, b in zip(s, s[1:], strict=False)):
        raise QrspecError(f"intensity_ranges={ranges!r} must not overlap")
    return out


def _windows_ticks(windows_s, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-open windows in seconds -> int64 tick arrays (edges rounded to the nearest tick)."""
    try:
        w = np.asarray(windows_s, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise QrspecError(f"time_windows_s={windows_s!r} must be (start, stop) pairs in s") \
            from None
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w[:, 0] >= w[:, 1]):
        raise QrspecError(f"time_windows_s={windows_s!r} must be non-empty finite (start, stop) "
                          "pairs with start < stop")
    lo = np.rint(w[:, 0] / unit).astype(np.int64)
    hi = np.rint(w[:, 1] / unit).astype(np.int64)
    return lo, hi


# ------------------------------------------------------------------ FLID
def flid(photons, bin_width_s: float, *, detectors=None, offsets_ns=None, background_cps=None,
         background_window_ns=None, t_irf_ns=None, min_counts: int = 1, count_edges=None,
         delay_edges_ns=None) -> FLID:
    """Fluorescence-lifetime-intensity distribution (methods.md section 2.7, "fast" estimator).

    Parameters
    ----------
    photons : Photons
        T3 photons.
    bin_width_s : float
        Trace bin width (rounded to whole ticks).
    detectors, offsets_ns
        As in :func:`decay_histogram` (nanotimes are aligned before averaging).
    background_cps : float, optional
        Background rate (all ``detectors``). Default: estimated from the total decay in
        ``background_window_ns``; pass 0 to disable the correction.
    background_window_ns : (float, float), optional
        Aligned-nanotime window holding only background (default: from ``t0 - 0.1 P`` to
        ``t0 - 0.02 P`` before the rise ``t0``, wrapped into the period ``P``).
    t_irf_ns : float, optional
        IRF position on the aligned axis subtracted from the mean delay (default: the rise of
        the total decay, ``Decay.t0_ns``).
    min_counts : int
        Bins with fewer photons get a NaN delay.
    count_edges, delay_edges_ns : array_like, optional
        Histogram edges (default: unit count bins; 0.1 ns delay bins over the finite delays).
    """
    from qrspec.stats._kernels import histogram as _kh

    photons = _check_photons(photons)
    if not photons.is_t3:
        raise QrspecError("FLID needs T3 data (nanotimes); this is T2 data")
    if not (isinstance(min_counts, int | np.integer) and min_counts >= 1):
        raise QrspecError(f"min_counts={min_counts!r} must be an integer >= 1")
    trace = intensity_trace(photons, bin_width_s, detectors=detectors)
    dets = list(trace.detectors)
    total = decay_histogram(photons, detectors=dets, offsets_ns=offsets_ns)
    res_ns = total.resolution_ns
    p = int(round(total.period_ns / res_ns))
    off = np.rint(total.offsets_ns / res_ns).astype(np.int64) % p
    shift = np.full(_N_DET, -1, np.int64)
    shift[dets] = off
    n = trace.n_bins
    counts = np.zeros(n, np.int64)
    sums = np.zeros(n, np.int64)
    _kh.bin_delay_sums(photons.timestamps, photons.detectors, photons.nanotimes, shift, p,
                       trace.start_tick, trace.bin_ticks, counts, sums)
    t0 = total.t0_ns if t_irf_ns is None else float(t_irf_ns)
    if background_cps is None:
        background_cps = _background_cps(total, photons, background_window_ns)
    bg = float(background_cps)
    if not (bg >= 0 and np.isfinite(bg)):
        raise QrspecError(f"background_cps={background_cps!r} must be finite and >= 0")
    n_b = bg * trace.bin_width_s
    t_b = (p - 1) / 2 * res_ns  # mean aligned bin start of uniform background
    denom = counts - n_b
    ok = (denom > 0) & (counts >= min_counts)
    mean_ns = np.full(n, np.nan)
    sum_ns = sums * res_ns  # aligned bin starts, like t0 (a bin start too)
    mean_ns[ok] = (sum_ns[ok] - n_b * t_b) / denom[ok] - t0
    if count_edges is None:
        count_edges = np.arange(int(counts.max(initial=0)) + 2, dtype=np.float64)
    if delay_edges_ns is None:
        fin = mean_ns[np.isfinite(mean_ns)]
        lo, hi = (np.floor(fin.min() * 10) / 10, np.ceil(fin.max() * 10) / 10 + 0.1) \
            if fin.size else (0.0, 0.1)
        delay_edges_ns = np.arange(round((hi - lo) / 0.1) + 1) * 0.1 + lo
    count_edges = np.asarray(count_edges, np.float64)
    delay_edges_ns = np.asarray(delay_edges_ns, np.float64)
    for name, e in (("count_edges", count_edges), ("delay_edges_ns", delay_edges_ns)):
        if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
            raise QrspecError(f"{name} must be increasing 1-D edges (got shape {e.shape})")
    fin = np.isfinite(mean_ns)
    hist, _, _ = np.histogram2d(counts[fin], mean_ns[fin], bins=(count_edges, delay_edges_ns))
    return FLID(hist.astype(np.int64), count_edges, delay_edges_ns, counts, mean_ns,
                trace.bin_width_s, bg, t0)


def _background_cps(total: Decay, photons: Photons, window_ns) -> float:
    """Background rate from the counts in an aligned pre-rise window of the total decay."""
    duration = photons.duration_s
    if duration <= 0:
        return 0.0
    return float(background_counts(total, window_ns).sum()) / duration


def background_counts(decay: Decay, window_ns=None) -> np.ndarray:
    """Per-detector flat-background photons of a full-resolution decay, from a window.

    The counts in the aligned window (a pre-rise window holds only background) are scaled to
    the whole period: ``counts_in_window * bins_per_period / bins_in_window``.

    Parameters
    ----------
    decay : Decay
        Decay at the TCSPC resolution (``bin_ns == resolution_ns``).
    window_ns : (float, float), optional
        Half-open aligned-nanotime window, wrapped into the period (default: from
        ``t0 - 0.1 P`` to ``t0 - 0.02 P`` before the rise ``t0 = decay.t0_ns``).
    """
    res, period = decay.resolution_ns, decay.period_ns
    if window_ns is None:
        window_ns = (decay.t0_ns - 0.1 * period, decay.t0_ns - 0.02 * period)
    try:
        w0, w1 = (float(x) for x in window_ns)
    except (TypeError, ValueError):
        raise QrspecError(f"background_window_ns={window_ns!r} must be a (start, stop) pair "
                          "in ns") from None
    if not w0 < w1 or w1 - w0 > period:
        raise QrspecError(f"background_window_ns={window_ns!r} must satisfy start < stop and "
                          f"span at most one period ({period:.4g} ns)")
    if abs(decay.bin_ns - res) > 1e-9 * res:
        raise QrspecError(f"decay bin_ns={decay.bin_ns!r} must equal the TCSPC resolution "
                          f"({res!r} ns) to estimate the background")
    p = decay.counts_per_detector.shape[1]
    idx = np.arange(int(np.floor(w0 / res)), int(np.floor(w1 / res))) % p
    if idx.size == 0:
        return np.zeros(len(decay.detectors))
    return decay.counts_per_detector[:, idx].sum(axis=1) * (p / idx.size)
