"""Nanotime histograms (decays): per detector, aligned, rebinned; intensity-sliced decays; FLID.

Alignment: detector ``d``'s nanotime ``n`` goes to the aligned bin ``(n - offset_d) mod L``
where ``L`` is the length of the aligned axis: the number of TCSPC bins per laser period
``P = round(timestamps_unit / nanotimes_unit)``, or the 65536 bins of the uint16 nanotime range
when the period is longer than that (a 10 ms sync period at 16 ps would be 625 M bins; no
photon can lie beyond bin 65535). Photons that fall before a detector's rise wrap to the end of
the axis (they are the previous pulse's tail) and nothing is lost. Offsets are whole TCSPC bins.
By default they are estimated from the data as the half-maximum point of each detector's rising
edge (the IRF centre for a decay that is long compared with the IRF;
:func:`estimate_offsets_bins`) relative to the first detector, so the aligned axis is the first
detector's own nanotime axis.

Because alignment is a cyclic shift of whole bins, it is done on full-resolution per-detector
histograms after counting: streaming (:class:`DecayAccumulator`) and whole-file results are
identical.

Size caps (memory bounded by the photons, never by the period, span or TCSPC resolution): a
decay axis holds at most :data:`MAX_DECAY_BINS` bins (above); sliced decays at most
:data:`MAX_SLICED_CELLS` (slices x bins; the bin is widened past it, and too many slices are
refused); a FLID at most :data:`MAX_FLID_COUNT_BINS` x :data:`MAX_FLID_DELAY_BINS` cells (its
axes are widened past them).

Recorded range: some instruments record a TCSPC range shorter than the laser period (a
HydraHarp's 32768 bins of 16 ps = 524 ns at a 1 MHz sync); the aligned axis is still the
period, and ``Decay.recorded_ns`` says how much of it each detector can fill (flat background
fills only that part, which :func:`background_counts` and :func:`flid` account for).
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
    check_photons,
    check_same_units,
    chunks,
    detectors_present,
    require_t3,
)
from qrspec.stats.trace import intensity_trace
from qrspec.validate import detector_list, integer, positive_float, shift_to_grid, windows_to_ticks

__all__ = [
    "FLID",
    "MAX_DECAY_BINS",
    "MAX_FLID_COUNT_BINS",
    "MAX_FLID_DELAY_BINS",
    "MAX_SLICED_CELLS",
    "Decay",
    "DecayAccumulator",
    "SlicedDecays",
    "background_counts",
    "decay_histogram",
    "estimate_offsets_bins",
    "flid",
    "irf_histogram",
    "sliced_decays",
]

logger = logging.getLogger(__name__)

_N_RAW = 1 << 16  # nanotimes are uint16
_MIN_PHOTONS_FOR_OFFSET = 200

#: Longest aligned decay axis, in TCSPC bins: the uint16 nanotime range. A laser period longer
#: than 65536 TCSPC bins holds no photon beyond it, so the axis stops there (not rebinned).
MAX_DECAY_BINS = _N_RAW
#: Largest sliced-decay array (slices x output bins; 128 MiB of int64). Past it the output bin
#: is widened (whole TCSPC bins) until it fits; more than ``MAX_SLICED_CELLS //
#: MIN_SLICED_BINS`` slices are refused (no bin width fits them).
MAX_SLICED_CELLS = 1 << 24
#: Fewest bins per sliced decay that coarsening may leave (a lifetime fit needs a shape).
MIN_SLICED_BINS = 64
#: Largest FLID count axis (bins of whole counts); a wider one gets wider integer count bins.
MAX_FLID_COUNT_BINS = 512
#: Largest FLID delay axis; a wider one gets wider delay bins (multiples of 0.1 ns).
MAX_FLID_DELAY_BINS = 512
_FLID_DELAY_BIN_NS = 0.1


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
        The aligned axis length ``L * resolution_ns``: the laser period in whole TCSPC bins,
        or the 65536-bin nanotime range when the period is longer (module docstring).
    recorded_ns : float
        Raw nanotime range the instrument records: ``period_ns``, unless the largest nanotime
        is ``2**k - 1`` with ``2**k`` bins shorter than the period, the signature of a TCSPC
        range (4096, 32768 channels) shorter than the laser period; then ``2**k *
        resolution_ns``. Flat background fills only this range (shifted by each detector's
        offset on the aligned axis).
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
    recorded_ns: float | None = None

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
    coarsened_from_ns : float or None
        The requested output bin when the array (slices x bins) was coarsened to fit
        :data:`MAX_SLICED_CELLS` (``total.bin_ns`` is the bin used); None otherwise.
    trace_coarsened_from_s : float or None
        ``IntensityTrace.coarsened_from_s`` of the trace that assigned the photons.
    """

    counts: np.ndarray
    unassigned: np.ndarray
    total: Decay
    n_time_bins: np.ndarray
    duration_s: np.ndarray
    labels: tuple
    bin_width_s: float | None
    coarsened_from_ns: float | None = None
    trace_coarsened_from_s: float | None = None

    @property
    def edges_ns(self) -> np.ndarray:
        """Bin edges in ns (as ``total.edges_ns``)."""
        return self.total.edges_ns

    @property
    def n_photons(self) -> np.ndarray:
        """Photons per slice."""
        return self.counts.sum(axis=1)

    @property
    def coarsening_note(self) -> str:
        """A flag text when a grid was coarsened to fit its cap, else ``""``."""
        notes = []
        if self.coarsened_from_ns is not None:
            notes.append(f"sliced decays coarsened: bin_ns={self.coarsened_from_ns:.6g} x "
                         f"{self.counts.shape[0]} slices exceeds {MAX_SLICED_CELLS} cells; "
                         f"{self.total.bin_ns:.6g} ns used")
        if self.trace_coarsened_from_s is not None:
            notes.append(f"slice trajectory coarsened: bin_width_s="
                         f"{self.trace_coarsened_from_s:.6g}; {self.bin_width_s:.6g} s used")
        return "; ".join(notes)


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
    coarsening_note : str
        Says which axis was widened to fit its cap (:data:`MAX_FLID_COUNT_BINS`,
        :data:`MAX_FLID_DELAY_BINS`, the trajectory's ``MAX_TRACE_BINS``); ``""`` if none.
    """

    histogram: np.ndarray
    count_edges: np.ndarray
    delay_edges_ns: np.ndarray
    counts: np.ndarray
    delay_ns: np.ndarray
    bin_width_s: float
    background_cps: float
    t_irf_ns: float
    coarsening_note: str = ""


# ------------------------------------------------------------------ decay histograms
class DecayAccumulator:
    """Accumulate full-resolution per-detector nanotime histograms from photon chunks.

    Parameters
    ----------
    detectors : sequence of int, optional
        Detectors to include (default: every detector with photons).
    """

    def __init__(self, *, detectors=None):
        self.detectors = detector_list("detectors", detectors)
        self._row = np.full(N_DET, -1, np.int64)  # detector -> row of _raw (first seen first)
        self._raw = np.zeros((0, _N_RAW), np.int64)
        self._n_used = 0  # raw columns that can hold counts: max nanotime seen + 1
        self._units = None

    def add(self, photons: Photons) -> None:
        """Histogram the nanotimes of one chunk."""
        from qrspec.stats._kernels import histogram as _kh

        photons = check_chunk(photons)
        require_t3(photons, "decay histograms need")
        if self._units is None:
            self._units = (photons.timestamps_unit, photons.nanotimes_unit)
        else:
            check_same_units(photons, self._units[0])
        if photons.size == 0:
            return
        present = detectors_present(photons)
        if self.detectors is not None:
            present = present[np.isin(present, self.detectors)]
        new = present[self._row[present] < 0]
        if new.size:
            n_old = self._raw.shape[0]
            self._row[new] = n_old + np.arange(new.size)
            grown = np.zeros((n_old + new.size, _N_RAW), np.int64)
            grown[:n_old] = self._raw
            self._raw = grown
        # _row holds only included detectors (-1 for the rest)
        _kh.nanotime_counts(photons.detectors, photons.nanotimes, self._row, self._raw)
        self._n_used = max(self._n_used, int(photons.nanotimes.max()) + 1)

    def raw_counts(self) -> tuple[tuple, np.ndarray]:
        """Return (detectors, raw per-detector histograms of shape (n_det, 65536))."""
        return self._counts(_N_RAW)

    def _counts(self, n_cols):
        """:meth:`raw_counts` with the first ``n_cols`` columns (``>= self._n_used``)."""
        used = self._raw[:, : self._n_used]
        if self.detectors is None:
            dets = tuple(int(d) for d in np.flatnonzero(self._row >= 0)
                         if used[self._row[d]].any())
        else:
            dets = tuple(self.detectors)
        out = np.zeros((len(dets), n_cols), np.int64)
        for i, d in enumerate(dets):
            if self._row[d] >= 0:
                out[i, : self._n_used] = used[self._row[d]]
        return dets, out

    def result(self, *, bin_ns=None, offsets_ns=None) -> Decay:
        """Aligned, rebinned :class:`Decay` of every chunk added so far."""
        if self._units is None:
            raise QrspecError("no photons chunks were added")
        # only the columns that can hold counts (nanotimes beyond are zero): the same decay
        dets, raw = self._counts(self._n_used)
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
    for chunk in chunks(photons):
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
    """Fold (n, 65536) raw histograms onto one axis: out[:, j] = sum_m raw[:, j + m P]."""
    n_rows = raw.shape[0]
    m = -(-raw.shape[1] // period_bins)
    pad = np.zeros((n_rows, m * period_bins), np.int64)
    pad[:, : raw.shape[1]] = raw
    return pad.reshape(n_rows, m, period_bins).sum(axis=1)


def _period_bins(units) -> int:
    """Aligned axis length L: TCSPC bins per period, at most the nanotime range."""
    ts_unit, nt_unit = units
    return int(min(max(1, round(ts_unit / nt_unit)), MAX_DECAY_BINS))


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
    return shift_to_grid(off, res_ns) % period_bins, False


def _rebin_factor(bin_ns, res_ns: float) -> int:
    if bin_ns is None:
        return 1
    b = positive_float("bin_ns", bin_ns)
    r = int(round(b / res_ns))
    if r < 1:
        raise QrspecError(f"bin_ns={bin_ns!r} is shorter than one TCSPC bin "
                          f"({res_ns:.4g} ns)")
    return r


def _align_rebin(folded: np.ndarray, off: np.ndarray, r: int) -> np.ndarray:
    """Cyclically shift each row by its offset (aligned[a] = folded[(a + off) mod P]), rebin."""
    n_rows, p = folded.shape
    aligned = np.empty_like(folded)
    for i in range(n_rows):  # np.roll(folded[i], -o), without its overhead
        o = int(off[i]) % p
        aligned[i, : p - o] = folded[i, o:]
        aligned[i, p - o:] = folded[i, :o]
    if r == 1:
        return aligned
    n_out = -(-p // r)
    pad = np.zeros((n_rows, n_out * r), np.int64)
    pad[:, :p] = aligned
    # r strided adds: exact (integers) and several times faster than sum(axis=2) over a short
    # last axis
    out = pad[:, 0::r].copy()
    for j in range(1, r):
        out += pad[:, j::r]
    return out


def _recorded_bins(raw: np.ndarray, axis_bins: int) -> int:
    """Recorded raw nanotime range in bins (see ``Decay.recorded_ns``)."""
    nz = np.flatnonzero(raw.any(axis=0))
    if not nz.size:
        return axis_bins
    n = int(nz[-1]) + 1
    if n < axis_bins and n >= 256 and n & (n - 1) == 0:  # a power of two: the TCSPC range
        return n
    return axis_bins


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
                 signed * res_ns, estimated, t0, r * res_ns, res_ns, p * res_ns,
                 _recorded_bins(raw, p) * res_ns)


def _recorded_masks(decay: Decay) -> tuple[np.ndarray, np.ndarray]:
    """Per detector: aligned full-resolution bins its recorded range covers, and its length.

    Returns ``(mask, n)`` with ``mask`` of shape (n_det, L) and ``n`` = covered bins per row.
    """
    res = decay.resolution_ns
    p = int(round(decay.period_ns / res))
    n_det = len(decay.detectors)
    mask = np.ones((n_det, p), bool)
    rec = p if decay.recorded_ns is None else int(round(decay.recorded_ns / res))
    if rec < p:
        off = shift_to_grid(decay.offsets_ns, res) % p
        for i in range(n_det):
            mask[i] = False
            mask[i, (np.arange(rec) - off[i]) % p] = True
    return mask, mask.sum(axis=1)


def irf_histogram(irf, decay: Decay) -> np.ndarray:
    """A measured IRF (:func:`qrspec.io.irf.read_irf`) on a decay's axis, one row per detector.

    A TTTR IRF is histogrammed exactly as the decay: its raw per-detector nanotimes are folded
    onto the same period, shifted by the *decay's* offsets and rebinned to ``decay.bin_ns``
    (same TCSPC resolution and laser period required). A text/npy IRF is on the aligned axis
    already; it is resampled onto ``decay.edges_ns`` by linear interpolation of its cumulative
    counts (area-preserving) and used for every detector.

    Parameters
    ----------
    irf : IRF
        The measured IRF.
    decay : Decay
        The decay it is for.

    Returns
    -------
    ndarray of float64, shape (n_detectors, n_bins)
        IRF counts per decay bin (background not subtracted: see
        :func:`qrspec.fitting.irf.normalize_irf`).
    """
    from qrspec.io.irf import IRF

    if not isinstance(irf, IRF):
        raise QrspecError(f"irf={type(irf).__name__} must be an IRF (qrspec.io.irf.read_irf)")
    if not isinstance(decay, Decay):
        raise QrspecError(f"decay={type(decay).__name__} must be a Decay")
    n_det, n_bins = decay.counts_per_detector.shape
    if irf.kind == "tttr":
        res = decay.resolution_ns
        if abs(irf.bin_ns - res) > 1e-6 * res:
            raise QrspecError(f"{irf.source}: IRF TCSPC resolution {irf.bin_ns:.6g} ns differs "
                              f"from the decay's {res:.6g} ns: give the IRF as a histogram")
        units = (irf.timestamps_unit, irf.bin_ns * 1e-9)
        p = int(round(decay.period_ns / res))
        if _period_bins(units) != p:
            raise QrspecError(f"{irf.source}: IRF laser period ({irf.period_ns:.6g} ns) differs "
                              f"from the decay's ({decay.period_ns:.6g} ns)")
        missing = [d for d in decay.detectors if d not in irf.detectors]
        if missing:
            raise QrspecError(f"{irf.source}: the IRF has no photons on detector "
                              f"{', '.join(map(str, missing))} (IRF detectors: "
                              f"{list(irf.detectors)})")
        raw = np.zeros((n_det, _N_RAW), np.int64)
        for i, d in enumerate(decay.detectors):
            row = irf.counts[irf.detectors.index(d)]
            raw[i, :row.size] = np.rint(row).astype(np.int64)
        on_axis = _make_decay(raw, decay.detectors, units, decay.bin_ns, decay.offsets_ns)
        return on_axis.counts_per_detector.astype(np.float64)
    cum = np.concatenate([[0.0], np.cumsum(irf.counts[0])])
    vals = np.interp(decay.edges_ns, irf.edges_ns, cum)  # 0 before, total after the IRF
    row = np.diff(vals)
    if not row.sum() > 0:
        e = irf.edges_ns
        raise QrspecError(f"{irf.source}: IRF time range [{e[0]:.6g}, {e[-1]:.6g}) ns does "
                          f"not overlap the decay axis [0, {decay.period_ns:.6g}) ns")
    return np.tile(row, (n_det, 1))


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
      timestamps_unit`` (edges by the seconds-to-ticks rule of :mod:`qrspec.validate`); each
      window is a slice, or windows sharing a label in ``window_labels`` form one slice.

    The array of slices x output bins holds at most :data:`MAX_SLICED_CELLS`; past it the output
    bin is widened (``coarsened_from_ns`` records the request).

    Parameters
    ----------
    photons : Photons
        T3 photons (passes: the trace, the total decay, the slices).
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

    Returns
    -------
    SlicedDecays
    """
    from qrspec.stats._kernels import histogram as _kh

    photons = check_photons(photons)
    require_t3(photons, "sliced decays need")
    modes = [x is not None for x in (intensity_ranges, levels, time_windows_s)]
    if sum(modes) != 1:
        raise QrspecError("give exactly one of intensity_ranges=, levels=, time_windows_s= "
                          f"(got {sum(modes)})")
    dets = detector_list("detectors", detectors)
    if dets is None:
        dets = [int(d) for d in photons.detector_ids]
    unit = photons.timestamps_unit
    trace_coarsened = None
    if time_windows_s is None:
        if bin_width_s is None:
            raise QrspecError("bin_width_s is required with intensity_ranges= or levels=")
        trace = intensity_trace(photons, bin_width_s, detectors=dets)
        trace_coarsened = trace.coarsened_from_s
        n = trace.n_bins
        if intensity_ranges is not None:
            ranges = _intensity_ranges(intensity_ranges)
            label_of_bin = np.full(n, -1, np.int64)
            for j, (lo, hi) in enumerate(ranges):
                label_of_bin[(trace.counts >= lo) & (trace.counts < hi)] = j
            labels = tuple(ranges)
        else:
            label_of_bin = np.asarray(levels)
            if trace_coarsened is not None:
                raise QrspecError(f"levels= needs one label per trace bin, but the trace of "
                                  f"bin_width_s={bin_width_s!r} exceeds MAX_TRACE_BINS and was "
                                  f"coarsened to {trace.bin_width_s:.6g} s: pass that width")
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
        _check_slice_count(n_slices, "levels" if levels is not None else "intensity_ranges")
        n_time_bins = np.bincount(label_of_bin[label_of_bin >= 0], minlength=n_slices)
        duration = n_time_bins * trace.bin_width_s
        used_bin_width = trace.bin_width_s
    else:
        seg_lo, seg_hi = windows_to_ticks("time_windows_s", time_windows_s, unit)
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
        _check_slice_count(n_slices, "time_windows_s")
        labels = tuple(range(n_slices))
        n_time_bins = np.bincount(seg_label, minlength=n_slices)
        duration = np.bincount(seg_label, weights=(seg_hi - seg_lo) * unit, minlength=n_slices)
        used_bin_width = None
    units = (unit, photons.nanotimes_unit)
    res_ns = units[1] * 1e9
    acc = DecayAccumulator(detectors=dets)
    acc.add(photons)
    _, raw = acc.raw_counts()
    p = _period_bins(units)
    r_req = _rebin_factor(bin_ns, res_ns)
    r = r_req
    if n_slices * -(-p // r) > MAX_SLICED_CELLS:
        r = -(-p // (MAX_SLICED_CELLS // n_slices))
    total = _make_decay(raw, dets, units, r * res_ns, offsets_ns)
    off = shift_to_grid(total.offsets_ns, res_ns) % p
    row = np.full(N_DET, -1, np.int64)
    row[dets] = np.arange(len(dets))
    # output bin of every raw nanotime per detector: ((n - offset) mod L) // r, as a table
    raw_bins = np.arange(_N_RAW, dtype=np.int64)
    bin_of = np.stack([((raw_bins - o) % p) // r for o in off]).astype(np.int32)
    n_out = total.counts.size
    counts = np.zeros((n_slices, n_out), np.int64)
    rest = np.zeros(n_out, np.int64)
    _kh.segment_aligned_counts(photons.timestamps, photons.detectors, photons.nanotimes, row,
                               bin_of, np.ascontiguousarray(seg_lo, np.int64),
                               np.ascontiguousarray(seg_hi, np.int64),
                               np.ascontiguousarray(seg_label, np.int64), counts, rest)
    coarsened = None
    if r != r_req:
        coarsened = r_req * res_ns
        logger.info("sliced decays coarsened from bin_ns=%g to %g ns (%d slices, "
                    "MAX_SLICED_CELLS=%d)", coarsened, r * res_ns, n_slices, MAX_SLICED_CELLS)
    return SlicedDecays(counts, rest, total, np.asarray(n_time_bins, np.int64),
                        np.asarray(duration, np.float64), labels, used_bin_width, coarsened,
                        trace_coarsened)


def _check_slice_count(n_slices: int, name: str) -> None:
    limit = MAX_SLICED_CELLS // MIN_SLICED_BINS
    if n_slices > limit:
        raise QrspecError(f"{name} gives {n_slices} slices; at most {limit} fit the sliced-decay "
                          f"cap (MAX_SLICED_CELLS={MAX_SLICED_CELLS} cells at >= "
                          f"{MIN_SLICED_BINS} bins per decay): merge slices")


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
        Trace bin width (rounded to whole ticks; coarsened past ``MAX_TRACE_BINS``).
    detectors, offsets_ns
        As in :func:`decay_histogram` (nanotimes are aligned before averaging).
    background_cps : float, optional
        Background rate (all ``detectors``). Default: estimated per detector from the total
        decay in ``background_window_ns``; pass 0 to disable the correction.
    background_window_ns : (float, float), optional
        Aligned-nanotime window holding only background (default: from ``t0 - 0.1 P`` to
        ``t0 - 0.02 P`` before the rise ``t0``, wrapped into the period ``P``).
    t_irf_ns : float, optional
        IRF position on the aligned axis subtracted from the mean delay (default: the rise of
        the total decay, ``Decay.t0_ns``).
    min_counts : int
        Bins with fewer photons get a NaN delay.
    count_edges, delay_edges_ns : array_like, optional
        Histogram edges. Default: unit count bins and 0.1 ns delay bins over the finite delays
        within ``[-t_irf_ns, period - t_irf_ns]`` (the values a mean delay can take; a bin
        barely above the background can scatter outside and is then left out of the
        histogram, not of ``delay_ns``), each widened (whole counts, multiples of 0.1 ns)
        past :data:`MAX_FLID_COUNT_BINS` / :data:`MAX_FLID_DELAY_BINS`. Given edges may hold
        at most that many bins each.

    Returns
    -------
    FLID
    """
    from qrspec.stats._kernels import histogram as _kh

    photons = check_photons(photons)
    require_t3(photons, "FLID needs")
    min_counts = integer("min_counts", min_counts, minimum=1)
    trace = intensity_trace(photons, bin_width_s, detectors=detectors)
    notes = [trace.coarsening_note] if trace.coarsening_note else []
    dets = list(trace.detectors)
    total = decay_histogram(photons, detectors=dets, offsets_ns=offsets_ns)
    res_ns = total.resolution_ns
    p = int(round(total.period_ns / res_ns))
    off = shift_to_grid(total.offsets_ns, res_ns) % p
    shift = np.full(N_DET, -1, np.int64)
    shift[dets] = off
    n = trace.n_bins
    counts = np.zeros(n, np.int64)
    sums = np.zeros(n, np.int64)
    _kh.bin_delay_sums(photons.timestamps, photons.detectors, photons.nanotimes, shift, p,
                       trace.start_tick, trace.bin_ticks, counts, sums)
    t0 = total.t0_ns if t_irf_ns is None else float(t_irf_ns)
    mask, n_rec = _recorded_masks(total)
    # mean aligned bin start of flat background, per detector (over its recorded range)
    t_b = np.array([np.flatnonzero(m).mean() if m.any() else 0.0 for m in mask]) * res_ns
    if background_cps is None:
        duration = photons.duration_s
        per_det = (background_counts(total, background_window_ns) / duration if duration > 0
                   else np.zeros(len(dets)))
        bg = float(per_det.sum())
        bg_sum_ns = float((per_det * t_b).sum())  # sum over detectors of rate x mean time
    else:
        bg = float(background_cps)
        if not (bg >= 0 and np.isfinite(bg)):
            raise QrspecError(f"background_cps={background_cps!r} must be finite and >= 0")
        bg_sum_ns = bg * float(t_b.mean()) if t_b.size else 0.0  # split evenly
    n_b = bg * trace.bin_width_s
    denom = counts - n_b
    ok = (denom > 0) & (counts >= min_counts)
    mean_ns = np.full(n, np.nan)
    sum_ns = sums * res_ns  # aligned bin starts, like t0 (a bin start too)
    mean_ns[ok] = (sum_ns[ok] - bg_sum_ns * trace.bin_width_s) / denom[ok] - t0
    count_edges, w_count = _flid_count_edges(count_edges, counts)
    # default axis: the finite delays a mean nanotime can have, [-t0, axis length - t0]
    # (a bin with c barely above n_b can scatter far outside; it stays in delay_ns)
    physical = (mean_ns >= -t0) & (mean_ns <= total.period_ns - t0)
    delay_edges_ns, w_delay = _flid_delay_edges(delay_edges_ns,
                                                np.where(physical, mean_ns, np.nan))
    if w_count > 1:
        notes.append(f"FLID count axis coarsened to bins of {w_count} counts "
                     f"(MAX_FLID_COUNT_BINS={MAX_FLID_COUNT_BINS})")
    if w_delay > 1:
        notes.append(f"FLID delay axis coarsened to {w_delay * _FLID_DELAY_BIN_NS:.4g} ns bins "
                     f"(MAX_FLID_DELAY_BINS={MAX_FLID_DELAY_BINS})")
    fin = np.isfinite(mean_ns)
    hist, _, _ = np.histogram2d(counts[fin], mean_ns[fin], bins=(count_edges, delay_edges_ns))
    return FLID(hist.astype(np.int64), count_edges, delay_edges_ns, counts, mean_ns,
                trace.bin_width_s, bg, t0, "; ".join(notes))


def _check_edges(name: str, edges, cap: int) -> np.ndarray:
    e = np.asarray(edges, np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise QrspecError(f"{name} must be increasing finite 1-D edges (got shape {e.shape})")
    if e.size - 1 > cap:
        raise QrspecError(f"{name} has {e.size - 1} bins; at most {cap} are allowed "
                          "(FLID size cap): use wider bins")
    return e


def _flid_count_edges(count_edges, counts) -> tuple[np.ndarray, int]:
    """Count-axis edges and the count bin width (1 unless widened past the cap)."""
    if count_edges is not None:
        return _check_edges("count_edges", count_edges, MAX_FLID_COUNT_BINS), 1
    n = int(counts.max(initial=0)) + 1  # unit bins [c, c + 1) for c = 0 .. max
    w = max(1, -(-n // MAX_FLID_COUNT_BINS))
    return np.arange(-(-n // w) + 1, dtype=np.float64) * w, w


def _flid_delay_edges(delay_edges_ns, mean_ns) -> tuple[np.ndarray, int]:
    """Delay-axis edges and the width in units of 0.1 ns (1 unless widened past the cap)."""
    if delay_edges_ns is not None:
        return _check_edges("delay_edges_ns", delay_edges_ns, MAX_FLID_DELAY_BINS), 1
    step = _FLID_DELAY_BIN_NS
    fin = mean_ns[np.isfinite(mean_ns)]
    if not fin.size:
        return np.array([0.0, step]), 1
    lo = np.floor(fin.min() * 10) / 10  # step = 0.1 ns
    hi = np.ceil(fin.max() * 10) / 10 + step
    n = round((hi - lo) / step)
    w = max(1, -(-n // MAX_FLID_DELAY_BINS))
    return np.arange(-(-n // w) + 1) * (w * step) + lo, w


def background_counts(decay: Decay, window_ns=None) -> np.ndarray:
    """Per-detector flat-background photons of a full-resolution decay, from a window.

    The counts in the aligned window (a pre-rise window holds only background) are scaled to
    the part of the axis the detector records: ``counts_in_window * recorded_bins /
    window_bins_inside_it`` (the whole period, ``L / window_bins``, unless the TCSPC range is
    shorter than the period; see ``Decay.recorded_ns``). A window outside a detector's recorded
    range gives 0 for it (logged).

    Parameters
    ----------
    decay : Decay
        Decay at the TCSPC resolution (``bin_ns == resolution_ns``).
    window_ns : (float, float), optional
        Half-open aligned-nanotime window, wrapped into the period (default: from
        ``t0 - 0.1 P`` to ``t0 - 0.02 P`` before the rise ``t0 = decay.t0_ns``).

    Returns
    -------
    ndarray of float64
        One value per ``decay.detectors``.
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
    mask, n_rec = _recorded_masks(decay)
    inside = mask[:, idx]
    n_in = inside.sum(axis=1)
    cpd = decay.counts_per_detector[:, idx]
    out = np.zeros(len(decay.detectors))
    for i, d in enumerate(decay.detectors):
        if n_in[i] == 0:
            if cpd[i].sum() or n_rec[i]:
                logger.warning("background window %s ns lies outside detector %d's recorded "
                               "nanotime range: its background is taken as 0", window_ns, d)
            continue
        out[i] = cpd[i][inside[i]].sum() * (n_rec[i] / n_in[i])
    return out
