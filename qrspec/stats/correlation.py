"""Pulsed second-order correlation g2(tau): histograms, peak areas, gate scans.

Lag convention: ``lag = t(detectors[1]) - t(detectors[0]) - delay_ns``.

Exact integer time base. Absolute times are integers in a quantum ``q``:

* T3: ``t = (timestamp - ts0) * tick_q + nanotime * nt_q`` with ``q`` the coarsest of
  1, 0.1, 0.01, 0.001 ps in which the TCSPC bin is a whole number (16 ps -> q = 1 ps,
  70.24 ps -> q = 0.01 ps), ``nt_q = nanotimes_unit / q`` and ``tick_q = round(sync period /
  q)``. The sync period is not in general a whole number of TCSPC bins (e.g. 200.0016 ns /
  64 ps = 3125.025), which is why times are not counted in TCSPC bins; rounding the period to
  ``q`` shifts a lag of k periods by at most ``k * q / 2`` (0.5 ps per period at q = 1 ps).
* T2: ``t = timestamp - ts0`` (``q = timestamps_unit``).

Lag bins are ``[lag_lo + i * bin_q, lag_lo + (i + 1) * bin_q)`` with integer ``bin_q =
round(bin_ns / q)`` and ``lag_lo = -n_half * bin_q``: lag 0 is a bin edge, the axis is symmetric,
and with ``max_lag_periods = K`` it spans at least ``(K + 1/2)`` periods on each side, so the
K-th side peaks are complete. Pairs are counted exactly (no float truncation of the window).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats._input import N_DET, NO_GATE_HI, check_chunk, chunks
from qrspec.validate import (
    detector_list,
    finite_float,
    in_windows,
    integer,
    interval,
    interval_to_grid,
    positive_float,
    shift_to_grid,
    to_grid,
    windows_to_ticks,
)

__all__ = [
    "aligned_gate",
    "MAX_G2_BINS",
    "MAX_GATE_SCAN_CELLS",
    "MAX_PAIRS_PER_PHOTON",
    "MIN_G2_BINS_PER_PERIOD",
    "G2Accumulator",
    "G2Curve",
    "G2GateScan",
    "G2Peaks",
    "find_comb_period_ns",
    "refine_comb",
    "g2",
    "g2_gate_scan",
    "g2_with_gate",
    "g2_peaks",
]

logger = logging.getLogger(__name__)

_INT_LIMIT = 1 << 62

#: Largest g2 histogram, in lag bins (8 MiB of int64). Past it the bin is widened (whole time
#: quanta) until the lag range fits; ``G2Curve.coarsened_from_ns`` records the request.
MAX_G2_BINS = 1 << 20
#: A pulsed curve must keep at least this many bins per laser period (peaks are told apart by
#: their bins); a lag range that would need wider bins to fit :data:`MAX_G2_BINS` is refused.
MIN_G2_BINS_PER_PERIOD = 8
#: The pair kernels compare every photon with every photon within the lag reach, so their time
#: grows as photons x (mean rate x reach). A lag range that would compare each photon with more
#: than this many others (at the data's mean rate) is refused, unless the total is below
#: :data:`MIN_PAIR_BUDGET`: 1000 per photon keeps a 5 M-photon particle near 5 s.
MAX_PAIRS_PER_PHOTON = 1000
#: Pair comparisons always allowed (a small data set with a long lag range is cheap).
MIN_PAIR_BUDGET = 10**8
#: Largest gate-scan table (peaks x 65536 nanotimes, 128 MiB of int64); more peaks (a larger
#: ``max_lag_periods``) are refused.
MAX_GATE_SCAN_CELLS = 1 << 24


@dataclass(frozen=True, eq=False)
class G2Curve:
    """Histogram of photon-pair lags.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_bins,)
        Pairs per lag bin.
    edges_ns : ndarray of float64, shape (n_bins + 1,)
        Bin edges in ns (exact multiples of the time quantum; lag 0 is an edge).
    bin_ns : float
        Bin width actually used.
    period_ns : float
        Laser period (NaN when unknown).
    detectors : tuple of int
        ``(start, stop)`` detectors in cross mode; the merged detectors in auto mode.
    mode : str
        ``"cross"`` or ``"auto"``.
    gate_ns : tuple of float or None
        Nanotime gate applied to both photons.
    gate_offsets_ns : tuple of float or None
        Per-detector shift of the gate.
    delay_ns : float
        Cable delay subtracted from every lag.
    n_photons : tuple of int
        Photons used on each side (cross: detectors[0], detectors[1]; auto: merged, merged).
    duration_s : float
        Total time covered (sum of ``window_lengths_s``).
    window_lengths_s : ndarray of float64
        Lengths of the disjoint time windows the photons were restricted to (one window spanning
        the data when no ``time_windows_s`` were given). Used by :func:`g2_peaks` to correct side
        peaks for the pairs a window edge removes.
    quantum_s : float
        Integer time quantum.
    coarsened_from_ns : float or None
        The requested bin when the lag range needed more than :data:`MAX_G2_BINS` bins and
        the bin was widened (``bin_ns`` is the bin used); None otherwise.
    """

    counts: np.ndarray
    edges_ns: np.ndarray
    bin_ns: float
    period_ns: float
    detectors: tuple
    mode: str
    gate_ns: tuple | None
    gate_offsets_ns: tuple | None
    delay_ns: float
    n_photons: tuple
    duration_s: float
    window_lengths_s: np.ndarray
    quantum_s: float
    coarsened_from_ns: float | None = None

    @property
    def coarsening_note(self) -> str:
        """A flag text when the bin was widened to fit :data:`MAX_G2_BINS`, else ``""``."""
        if self.coarsened_from_ns is None:
            return ""
        return (f"g2 coarsened: bin_ns={self.coarsened_from_ns:.6g} would need more than "
                f"{MAX_G2_BINS} lag bins; {self.bin_ns:.6g} ns used")

    @property
    def lag_ns(self) -> np.ndarray:
        """Bin centres in ns."""
        return 0.5 * (self.edges_ns[:-1] + self.edges_ns[1:])

    @property
    def normalization(self) -> float:
        """Expected pairs per bin for uncorrelated (Poissonian, unpulsed) photons.

        ``N0 * N1 * bin / duration`` (cross) or ``N (N - 1) * bin / duration`` (auto).
        """
        n0, n1 = self.n_photons
        if self.mode == "auto":
            n1 = n1 - 1
        if self.duration_s <= 0:
            return float("nan")
        return n0 * n1 * self.bin_ns * 1e-9 / self.duration_s

    @property
    def g2(self) -> np.ndarray:
        """``counts / normalization`` (for pulsed data use :func:`g2_peaks`)."""
        norm = self.normalization
        if not norm > 0:
            return np.full(self.counts.size, np.nan)
        return self.counts / norm


@dataclass(frozen=True, eq=False)
class G2Peaks:
    """Peak areas of a pulsed g2 and g2(0) = centre / mean side.

    A bin belongs to peak ``k`` if its centre lies in ``[k P - w/2, k P + w/2)``.

    Attributes
    ----------
    peaks : ndarray of int
        Peak indices ``k`` (lag ~ k periods), centre included.
    areas : ndarray of int64
        Raw pair counts in each peak window.
    exposure_factors : ndarray of float64
        Correction of each peak for pairs lost at time-window edges,
        ``sum(L) / sum(max(L - |k| P, 0))`` over the window lengths ``L`` (1 for the centre).
    centre : int
        Centre-peak area C0.
    side_mean : float
        Mean corrected side-peak area S.
    n_side : int
        Number of side peaks averaged.
    g2_0 : float
        ``C0 / S``.
    g2_0_err : float
        Poisson standard error ``g2_0 * sqrt(1 / C0 + 1 / sum(raw side areas))``; NaN (and
        flagged) when C0 = 0, where ``g2_0_ci95`` is the statement to use.
    g2_0_ci95 : tuple of float
        Clopper-Pearson 95 % interval of ``C0 / (C0 + sum side)`` mapped to g2(0).
    window_ns : float
        Peak window width.
    period_ns : float
        Period used.
    flag : str
        Why ``g2_0`` (with its error and interval) is NaN: no photons on a detector ("g2 not
        applicable"), no pairs, or no side-peak pairs; or why only its error is NaN (no pair in
        the centre peak); ``""`` when both are defined.
    """

    peaks: np.ndarray
    areas: np.ndarray
    exposure_factors: np.ndarray
    centre: int
    side_mean: float
    n_side: int
    g2_0: float
    g2_0_err: float
    g2_0_ci95: tuple
    window_ns: float
    period_ns: float
    flag: str = ""

    @property
    def side_areas(self) -> np.ndarray:
        """Corrected side-peak areas (peaks != 0)."""
        side = self.peaks != 0
        return self.areas[side] * self.exposure_factors[side]


@dataclass(frozen=True, eq=False)
class G2GateScan:
    """g2(0; T_g) for several gate starts, from one pass over the pairs.

    A photon of detector ``d`` passes gate ``T`` if ``nanotime - offset_d >= T`` (and below the
    common stop). Values equal :func:`g2_peaks` of :func:`g2` with ``gate_ns=(T, stop)``.

    Attributes
    ----------
    gates_ns : ndarray of float64
        Gate starts actually used (whole TCSPC bins).
    centre : ndarray of int64
        Centre-peak area per gate.
    side_areas : ndarray of int64, shape (n_gates, n_side)
        Raw side-peak areas per gate.
    side_peaks : ndarray of int
        Side-peak indices.
    side_mean : ndarray of float64
        Mean exposure-corrected side area per gate.
    g2_0, g2_0_err : ndarray of float64
        As in :class:`G2Peaks`, per gate.
    g2_0_ci95 : ndarray of float64, shape (n_gates, 2)
        Clopper-Pearson 95 % intervals.
    curve : G2Curve
        The ungated (stop-gated only) curve of the same pairs.
    flags : tuple of str
        Per gate, as ``G2Peaks.flag`` (``""`` where g2(0) is defined).
    """

    gates_ns: np.ndarray
    centre: np.ndarray
    side_areas: np.ndarray
    side_peaks: np.ndarray
    side_mean: np.ndarray
    g2_0: np.ndarray
    g2_0_err: np.ndarray
    g2_0_ci95: np.ndarray
    curve: G2Curve
    flags: tuple = ()


# ------------------------------------------------------------------ time base
def _quantum(photons: Photons) -> tuple[float, int, int]:
    """(q_s, tick_q, nt_q) of the integer time base (see module docstring)."""
    if not photons.is_t3:
        return photons.timestamps_unit, 1, 0
    res = photons.nanotimes_unit
    for q in (1e-12, 1e-13, 1e-14, 1e-15):
        x = res / q
        if abs(x - round(x)) < 1e-6 * x:
            return q, int(round(photons.timestamps_unit / q)), int(round(x))
    logger.warning("nanotimes_unit=%r s is not a whole number of fs: the sync period is "
                   "rounded to whole TCSPC bins for g2 lags", res)
    return res, int(round(photons.timestamps_unit / res)), 1


class _PairScanner:
    """Shared set-up of the pair kernels: tables, time base, windows, chunk tails."""

    def __init__(self, *, detectors, mode, max_lag_periods, max_lag_ns, bin_ns, gate_ns,
                 gate_offsets_ns, delay_ns, time_windows_s, period_ns, need_nanotimes=False,
                 extra_gates=()):
        if mode not in ("cross", "auto"):
            raise QrspecError(f"mode={mode!r} must be 'cross' or 'auto'")
        dets = detector_list("detectors", detectors)
        if mode == "cross" and len(dets) != 2:
            raise QrspecError(f"detectors={detectors!r} must be two distinct detectors in "
                              "cross mode")
        self.detectors = tuple(dets)
        self.mode = mode
        self.bin_ns_req = positive_float("bin_ns", bin_ns)
        if max_lag_ns is not None:
            positive_float("max_lag_ns", max_lag_ns)
        self.max_lag_ns = max_lag_ns
        self.max_lag_periods = integer("max_lag_periods", max_lag_periods, minimum=1)
        # row g of the kernels' gate tables and histograms: gates[g] = (gate_ns, offsets_ns)
        self.gates = [self._gate(g, o, len(dets))
                      for g, o in [(gate_ns, gate_offsets_ns), *extra_gates]]
        self.gate_ns, self.gate_offsets_ns = self.gates[0]
        self.delay_ns = finite_float("delay_ns", delay_ns)
        if mode == "auto" and self.delay_ns != 0:
            raise QrspecError(f"delay_ns={delay_ns!r} must be 0 in auto mode")
        if period_ns is not None:
            positive_float("period_ns", period_ns)
        self.period_ns_req = period_ns
        self.windows_s = time_windows_s
        self.need_nanotimes = need_nanotimes
        self._ready = False
        self._tail = None
        self.n_used = np.zeros((len(self.gates), 2), np.int64)
        self.ts_first = None
        self.ts_last = None

    @staticmethod
    def _gate(gate_ns, gate_offsets_ns, n_det: int) -> tuple:
        """Checked ``(gate_ns, gate_offsets_ns)`` tuples (or None)."""
        gate = None if gate_ns is None else interval("gate_ns", gate_ns)
        if gate_offsets_ns is None:
            return gate, None
        off = np.asarray(gate_offsets_ns, dtype=np.float64)
        if off.shape != (n_det,) or not np.all(np.isfinite(off)):
            raise QrspecError(f"gate_offsets_ns={gate_offsets_ns!r} must hold one finite "
                              f"offset per detector ({n_det})")
        return gate, tuple(float(x) for x in off)

    # set-up from the first chunk -------------------------------------------------------
    def _setup(self, ph: Photons) -> None:
        if self.need_nanotimes and not ph.is_t3:
            raise QrspecError("a gate scan needs T3 data (nanotimes); this is T2 data")
        for gate, _ in self.gates:
            if gate is not None and not ph.is_t3:
                raise QrspecError(f"gate_ns={gate!r} needs T3 data (nanotimes); this is T2 "
                                  "data")
        self.unit = ph.timestamps_unit
        self.is_t3 = ph.is_t3
        self.nt_unit = ph.nanotimes_unit
        self.q_s, self.tick_q, self.nt_q = _quantum(ph)
        if self.period_ns_req is not None:
            self.period_ns = float(self.period_ns_req)
        elif ph.is_t3:
            self.period_ns = ph.timestamps_unit * 1e9
        elif ph.sync_rate_hz > 0:
            self.period_ns = 1e9 / ph.sync_rate_hz
        else:
            self.period_ns = float("nan")
        q_ns = self.q_s * 1e9
        self.bin_q = max(1, int(round(self.bin_ns_req / q_ns)))
        if self.max_lag_ns is not None:
            half = float(self.max_lag_ns)
            self.lag_name = f"max_lag_ns={self.max_lag_ns!r}"
        else:
            if not math.isfinite(self.period_ns):
                raise QrspecError("max_lag_periods needs the laser period: pass period_ns= or "
                                  "max_lag_ns= (T2 data without sync_rate_hz)")
            half = (self.max_lag_periods + 0.5) * self.period_ns
            self.lag_name = f"max_lag_periods={self.max_lag_periods!r}"
        half_q = half / q_ns
        self.coarsened_from_ns = None
        if 2 * math.ceil(half_q / self.bin_q - 1e-9) > MAX_G2_BINS:
            self.bin_q = max(self.bin_q, math.ceil(half_q / (MAX_G2_BINS // 2)))
            self.coarsened_from_ns = self.bin_ns_req
            if math.isfinite(self.period_ns) and \
                    self.bin_q * q_ns > self.period_ns / MIN_G2_BINS_PER_PERIOD:
                raise QrspecError(
                    f"{self.lag_name} (lag range +-{half:.6g} ns) needs more than {MAX_G2_BINS} "
                    f"lag bins even at {self.period_ns / MIN_G2_BINS_PER_PERIOD:.4g} ns "
                    f"(period / {MIN_G2_BINS_PER_PERIOD}): choose a shorter lag range")
            logger.info("g2 bin coarsened from bin_ns=%g to %g ns (MAX_G2_BINS=%d)",
                        self.bin_ns_req, self.bin_q * q_ns, MAX_G2_BINS)
        self.n_half = max(1, math.ceil(half_q / self.bin_q - 1e-9))
        self.lag_lo_q = -self.n_half * self.bin_q
        self.delay_q = int(round(self.delay_ns / q_ns))
        self.role = np.full(N_DET, -1, np.int64)
        if self.mode == "cross":
            self.role[self.detectors[0]] = 0
            self.role[self.detectors[1]] = 1
        else:
            self.role[list(self.detectors)] = 0
        n_gates = len(self.gates)
        self.gate_lo = np.zeros((n_gates, N_DET), np.int64)
        self.gate_hi = np.full((n_gates, N_DET), NO_GATE_HI, np.int64)
        offsets_bins = np.zeros((n_gates, N_DET), np.int64)
        for g, (gate, offsets) in enumerate(self.gates):
            if offsets is not None:
                if not ph.is_t3:
                    raise QrspecError("gate_offsets_ns needs T3 data (nanotimes)")
                res_ns = ph.nanotimes_unit * 1e9
                offsets_bins[g, list(self.detectors)] = shift_to_grid(np.asarray(offsets),
                                                                      res_ns)
            if gate is not None:
                g0, g1 = interval_to_grid("gate_ns", gate, ph.nanotimes_unit * 1e9)
                self.gate_lo[g] = g0 + offsets_bins[g]
                self.gate_hi[g] = min(g1, NO_GATE_HI) + offsets_bins[g]
        self.offsets_bins = offsets_bins[0]
        self.win = None
        if self.windows_s is not None:
            self.win = windows_to_ticks("time_windows_s", self.windows_s, self.unit, merge=True)
        self.ts0 = int(ph.timestamps[0])
        ntmax_q = 65535 * self.nt_q
        self.reach_q = max(-self.lag_lo_q, self.lag_lo_q + self.n_bins * self.bin_q) \
            + abs(self.delay_q) + ntmax_q
        self.reach_ticks = self.reach_q // self.tick_q + 1
        self._ready = True

    @property
    def n_bins(self) -> int:
        return 2 * self.n_half

    # streaming ----------------------------------------------------------------------------
    def calls(self, ph: Photons) -> list:
        """Kernel inputs ``(ts, nt, det, mask, j_start, ntmax_q)`` for a new chunk.

        The chunk alone (``j_start = 0``), then, if photons were carried, the boundary: the
        carried tail followed by the chunk's photons within reach of it (``j_start`` = tail
        length, counting only tail-chunk pairs). The chunk is never copied.
        """
        check_chunk(ph)
        if not self._ready:
            if ph.size == 0:
                return []
            self._setup(ph)
        elif ph.timestamps_unit != self.unit or ph.is_t3 != self.is_t3:
            raise QrspecError("all chunks must share timestamps_unit and T2/T3 mode")
        if ph.size == 0:
            return []
        ts, det = ph.timestamps, ph.detectors
        nt = ph.nanotimes if ph.is_t3 else np.zeros(0, np.uint16)
        if self.ts_first is None:
            self.ts_first = int(ts[0])
        self.ts_last = int(ts[-1])
        span_q = (self.ts_last - self.ts0 + 1) * self.tick_q + 65536 * self.nt_q
        if span_q >= _INT_LIMIT:
            span_s = (self.ts_last - self.ts0) * self.unit
            limit_s = _INT_LIMIT * self.q_s
            raise QrspecError(f"measurement too long for the integer time base: span "
                              f"{span_s:.4g} s exceeds {limit_s:.4g} s at the time quantum "
                              f"{self.q_s:.3g} s (2**62 quanta)")
        self._check_pair_load(ts)
        # photon timestamps are non-decreasing (qrspec.photons): windows searched in the ticks
        mask = in_windows(ts, *self.win, ticks_sorted=True) if self.win is not None \
            else np.zeros(0, np.bool_)
        out = [(ts, nt, det, mask, 0, (int(nt.max()) if nt.size else 0) * self.nt_q)]
        tail = self._tail
        if tail is not None:
            tts, tdet, tnt, tmask = tail
            m = int(np.searchsorted(ts, int(tts[-1]) + self.reach_ticks, side="right"))
            bts = np.concatenate([tts, ts[:m]])
            bnt = np.concatenate([tnt, nt[:m]]) if self.is_t3 else nt[:0]
            bmask = np.concatenate([tmask, mask[:m]]) if self.win is not None else mask
            ntmax_q = (int(bnt.max()) if bnt.size else 0) * self.nt_q
            out.append((bts, bnt, np.concatenate([tdet, det[:m]]), bmask, tts.size, ntmax_q))
        # carry every photon (old tail included) that later photons can still reach
        cut = self.ts_last - self.reach_ticks
        k = int(np.searchsorted(ts, cut, side="left"))
        parts = [(ts[k:], det[k:], nt[k:] if self.is_t3 else None,
                  mask[k:] if self.win is not None else None)]
        if k == 0 and tail is not None:
            kt = int(np.searchsorted(tail[0], cut, side="left"))
            parts.insert(0, tuple(None if x is None else x[kt:] for x in tail))
        self._tail = tuple(None if parts[0][i] is None else
                           np.concatenate([p[i] for p in parts]) for i in range(4))
        return out

    def _check_pair_load(self, ts: np.ndarray) -> None:
        """Refuse a lag reach that would compare each photon with too many others."""
        n = ts.size
        span = int(ts[-1]) - int(ts[0]) if n else 0
        if n < 2:
            return
        per_photon = min(n - 1, (n - 1) / max(span, 1) * self.reach_ticks)
        if per_photon > MAX_PAIRS_PER_PHOTON and n * per_photon > MIN_PAIR_BUDGET:
            reach_ns = self.reach_ticks * self.unit * 1e9
            raise QrspecError(
                f"{self.lag_name} (reach {reach_ns:.4g} ns) would compare each photon with "
                f"~{per_photon:.3g} others at this data's mean rate; at most "
                f"{MAX_PAIRS_PER_PHOTON} are allowed (time grows as photons x that number): "
                "choose a shorter lag range")

    def curve(self, counts: np.ndarray, g: int = 0) -> G2Curve:
        """The curve of gate row ``g`` from its counts."""
        q_ns = self.q_s * 1e9
        edges = (self.lag_lo_q + self.bin_q * np.arange(self.n_bins + 1)) * q_ns
        if self.win is not None:
            lo = np.maximum(self.win[0], self.ts_first if self.ts_first is not None else 0)
            hi = np.minimum(self.win[1], (self.ts_last + 1) if self.ts_last is not None else 0)
            lengths = np.maximum(hi - lo, 0) * self.unit
            lengths = lengths[lengths > 0]
        elif self.ts_first is not None:
            lengths = np.array([(self.ts_last + 1 - self.ts_first) * self.unit])
        else:
            lengths = np.zeros(0)
        n0, n1 = int(self.n_used[g, 0]), int(self.n_used[g, 1])
        if self.mode == "auto":
            n1 = n0
        gate, offsets = self.gates[g]
        return G2Curve(counts, edges, self.bin_q * q_ns, self.period_ns, self.detectors,
                       self.mode, gate, offsets, self.delay_ns, (n0, n1),
                       float(lengths.sum()), lengths, self.q_s, self.coarsened_from_ns)


# ------------------------------------------------------------------ g2
def aligned_gate(photons, detectors, *, gate_ns=None, gate_after_rise_ns=None, offsets_ns=None
                 ) -> tuple[tuple | None, tuple | None]:
    """Resolve a nanotime gate to ``(gate_ns, offsets_ns)`` on the aligned nanotime axis.

    The one gate convention of qrspec: ``gate_ns=(start, stop)`` is absolute on the aligned
    axis of :func:`~qrspec.stats.decay.decay_histogram` (detector ``d``'s nanotime minus its
    offset); ``gate_after_rise_ns=g`` means ``gate_ns = (t0 + g, period)`` with ``t0`` the rise
    of the aligned decay (``Decay.t0_ns``), the pipeline's gated g2 (``AnalysisConfig.gate_ns``
    today, to be renamed ``gate_after_rise_ns``).

    Parameters
    ----------
    photons : Photons or iterable of Photons
        The photons (offsets and the rise are estimated only from a Photons object).
    detectors : sequence of int
        Detectors whose offsets are returned (in this order).
    gate_ns : (float, float), optional
        Absolute aligned gate.
    gate_after_rise_ns : float, optional
        Gate start after the rise (exclusive with ``gate_ns``).
    offsets_ns : sequence of float, optional
        Per-detector offsets (default: estimated, relative to the lowest detector).

    Returns
    -------
    gate_ns : tuple of float or None
    offsets_ns : tuple of float or None
        ``None`` when there is no gate and no offsets were given.
    """
    if gate_ns is not None and gate_after_rise_ns is not None:
        raise QrspecError(f"give gate_ns={gate_ns!r} or gate_after_rise_ns="
                          f"{gate_after_rise_ns!r}, not both")
    if gate_ns is None and gate_after_rise_ns is None:
        return None, None if offsets_ns is None else tuple(np.atleast_1d(offsets_ns).tolist())
    if gate_ns is not None:
        gate_ns = interval("gate_ns", gate_ns)
        if offsets_ns is not None:
            return gate_ns, tuple(float(x) for x in np.atleast_1d(offsets_ns))
    else:
        g = finite_float("gate_after_rise_ns", gate_after_rise_ns)
        if g < 0:
            raise QrspecError(f"gate_after_rise_ns={gate_after_rise_ns!r} must be >= 0")
    from qrspec.stats.decay import decay_histogram

    name = "gate_ns" if gate_ns is not None else "gate_after_rise_ns"
    if not isinstance(photons, Photons):
        raise QrspecError(f"{name} needs a Photons object to estimate the detector offsets and "
                          "the rise; with chunks pass gate_ns= and gate_offsets_ns= (e.g. from "
                          "a DecayAccumulator)")
    if not photons.is_t3:
        value = gate_ns if gate_ns is not None else gate_after_rise_ns
        raise QrspecError(f"{name}={value!r} needs T3 data (nanotimes); this is T2 data")
    dets = detector_list("detectors", detectors)
    order = sorted(dets)
    given = None
    if offsets_ns is not None:
        off = np.atleast_1d(np.asarray(offsets_ns, np.float64))
        if off.shape != (len(dets),):
            raise QrspecError(f"gate_offsets_ns={offsets_ns!r} must hold one finite offset per "
                              f"detector ({len(dets)})")
        given = [float(off[dets.index(d)]) for d in order]
    dec = decay_histogram(photons, detectors=order, offsets_ns=given)
    by_det = dict(zip(order, dec.offsets_ns.tolist(), strict=True))
    offsets = tuple(float(by_det[d]) for d in dets)
    if gate_ns is None:
        gate_ns = (dec.t0_ns + g, dec.period_ns)
        if not gate_ns[0] < gate_ns[1]:
            raise QrspecError(f"gate_after_rise_ns={gate_after_rise_ns!r}: the gate start t0 + "
                              f"g = {gate_ns[0]:.4g} ns is not inside the aligned axis "
                              f"({dec.period_ns:.4g} ns)")
    return gate_ns, offsets


class G2Accumulator:
    """Build a :class:`G2Curve` from time-ordered photon chunks (bounded memory).

    The photons of a chunk that can still pair with later photons (within the lag range) are
    carried to the next chunk, so the result equals :func:`g2` on all photons. Parameters are
    those of :func:`g2`, except that a ``gate_ns`` needs explicit ``gate_offsets_ns`` (they
    cannot be estimated from a stream before it is read; e.g. from a
    :class:`~qrspec.stats.decay.DecayAccumulator` pass).

    ``extra_gates``: further ``(gate_ns, gate_offsets_ns)`` whose curves are filled in the same
    pass over the pairs (``result(1)``, ``result(2)``...; each equals :func:`g2` with that gate
    and the other parameters).
    """

    def __init__(self, *, detectors=(0, 1), mode="cross", max_lag_periods=5, max_lag_ns=None,
                 bin_ns=0.5, gate_ns=None, gate_offsets_ns=None, delay_ns=0.0,
                 time_windows_s=None, period_ns=None, extra_gates=()):
        for gate, offsets in [(gate_ns, gate_offsets_ns), *extra_gates]:
            if gate is not None and offsets is None:
                raise QrspecError(f"gate_ns={gate!r} needs gate_offsets_ns= with chunked "
                                  "photons (the aligned axis needs a first pass; zeros gate "
                                  "raw nanotimes)")
        self._scan = _PairScanner(detectors=detectors, mode=mode,
                                  max_lag_periods=max_lag_periods, max_lag_ns=max_lag_ns,
                                  bin_ns=bin_ns, gate_ns=gate_ns, gate_offsets_ns=gate_offsets_ns,
                                  delay_ns=delay_ns, time_windows_s=time_windows_s,
                                  period_ns=period_ns, extra_gates=extra_gates)
        self._counts = None

    def add(self, photons: Photons) -> None:
        """Add the pairs whose later photon is in this chunk."""
        from qrspec.stats._kernels import correlate as _kc

        s = self._scan
        for ts, nt, det, mask, j_start, ntmax_q in s.calls(photons):
            if self._counts is None:
                self._counts = np.zeros((len(s.gates), s.n_bins), np.int64)
            _kc.g2_histogram(ts, nt, det, s.role, s.gate_lo, s.gate_hi, mask, j_start, s.ts0,
                             s.tick_q, s.nt_q, ntmax_q, s.delay_q, s.lag_lo_q, s.bin_q,
                             s.mode == "auto", self._counts, s.n_used)

    def result(self, gate: int = 0) -> G2Curve:
        """The curve of every chunk added so far (``gate``: 0, or 1... for ``extra_gates``)."""
        if self._counts is None:
            raise QrspecError("no photons: g2 needs at least one non-empty chunk")
        return self._scan.curve(self._counts[gate].copy(), gate)


def g2(photons, *, detectors=(0, 1), mode="cross", max_lag_periods=5, max_lag_ns=None,
       bin_ns=0.5, gate_ns=None, gate_after_rise_ns=None, gate_offsets_ns=None, delay_ns=0.0,
       time_windows_s=None, period_ns=None) -> G2Curve:
    """Histogram of photon-pair lags (pulsed or CW g2) on exact linear bins.

    Parameters
    ----------
    photons : Photons or iterable of Photons
        T3 or T2 photons, or the time-ordered chunks of :func:`qrspec.io.iter_tttr`.
    detectors : sequence of int
        Cross mode: ``(start, stop)``, lag = t(stop) - t(start). Auto mode: the detectors merged
        into one stream.
    mode : {"cross", "auto"}
        ``"auto"`` correlates every ordered pair of distinct photons of the merged stream
        (symmetric curve, same-detector pairs included).
    max_lag_periods : int
        Lag range ``+-(K + 1/2)`` laser periods, rounded up to whole bins.
    max_lag_ns : float, optional
        Lag range ``+-max_lag_ns`` (rounded up to whole bins); overrides ``max_lag_periods``.
    bin_ns : float
        Bin width, rounded to whole time quanta (the width used is ``G2Curve.bin_ns``); widened
        past :data:`MAX_G2_BINS` lag bins (``G2Curve.coarsened_from_ns``).
    gate_ns : (float, float), optional
        Absolute time gate on the *aligned* nanotime axis (the axis of
        :func:`~qrspec.stats.decay.decay_histogram`): keep only photons with ``start <=
        nanotime - offset_d < stop`` on both detectors (T3).
    gate_after_rise_ns : float, optional
        Gate relative to the rise instead: ``gate_ns = (t0 + gate_after_rise_ns, period)`` with
        ``t0`` the rise of the aligned summed decay of ``detectors`` (``Decay.t0_ns``), as the
        pipeline's gated g2. Exclusive with ``gate_ns``.
    gate_offsets_ns : sequence of float, optional
        Per-detector offsets ``offset_d`` of the aligned axis (e.g. ``Decay.offsets_ns``), one
        per detector. Default with a gate: estimated from the data as
        :func:`~qrspec.stats.decay.decay_histogram` does (needs a Photons object; pass them with
        chunks). Zeros gate the raw nanotimes.
    delay_ns : float
        Cable delay subtracted from every lag so the centre peak sits at 0 (cross mode); see
        :func:`qrspec.stats.hbt.find_zero_peak` for delays of whole laser periods.
    time_windows_s : sequence of (float, float), optional
        Use only photons (both of a pair) inside these half-open windows on ``timestamps *
        timestamps_unit`` (edges by the seconds-to-ticks rule of :mod:`qrspec.validate`), e.g.
        charged periods; side peaks then come from the same windows.
    period_ns : float, optional
        Laser period (default: T3 sync period; T2: ``1 / sync_rate_hz``).

    Returns
    -------
    G2Curve
    """
    gate_ns, gate_offsets_ns = aligned_gate(photons, detectors, gate_ns=gate_ns,
                                            gate_after_rise_ns=gate_after_rise_ns,
                                            offsets_ns=gate_offsets_ns)
    acc = G2Accumulator(detectors=detectors, mode=mode, max_lag_periods=max_lag_periods,
                        max_lag_ns=max_lag_ns, bin_ns=bin_ns, gate_ns=gate_ns,
                        gate_offsets_ns=gate_offsets_ns, delay_ns=delay_ns,
                        time_windows_s=time_windows_s, period_ns=period_ns)
    for chunk in chunks(photons):
        acc.add(chunk)
    return acc.result()


def g2_with_gate(photons, gate_ns, *, detectors=(0, 1), max_lag_periods=5, bin_ns=0.5,
                 gate_offsets_ns=None, delay_ns=0.0, time_windows_s=None, period_ns=None
                 ) -> tuple[G2Curve, G2Curve]:
    """The g2 of all photons and the time-gated g2, from one pass over the photon pairs.

    Equal to ``g2(photons, **kw)`` and ``g2(photons, gate_ns=gate_ns,
    gate_offsets_ns=gate_offsets_ns, **kw)`` (cross mode; the other parameters as in
    :func:`g2`): the gated pairs are those of the ungated curve with both photons in the gate.

    Returns
    -------
    ungated, gated : G2Curve
    """
    gate_ns, gate_offsets_ns = aligned_gate(photons, detectors, gate_ns=gate_ns,
                                            offsets_ns=gate_offsets_ns)
    acc = G2Accumulator(detectors=detectors, max_lag_periods=max_lag_periods, bin_ns=bin_ns,
                        delay_ns=delay_ns, time_windows_s=time_windows_s, period_ns=period_ns,
                        extra_gates=[(gate_ns, gate_offsets_ns)])
    for chunk in chunks(photons):
        acc.add(chunk)
    return acc.result(0), acc.result(1)


# ------------------------------------------------------------------ peaks
def _peak_assignment(edges_ns, period_ns, window_ns, side_peaks=None):
    """(bin_peak row per bin or -1, peaks array) for windows of width w around k P."""
    centres = 0.5 * (edges_ns[:-1] + edges_ns[1:])
    k = np.floor(centres / period_ns + 0.5).astype(np.int64)
    inside = (centres >= k * period_ns - window_ns / 2) & (centres < k * period_ns + window_ns / 2)
    tol = 1e-9 * period_ns
    k_min = math.ceil((edges_ns[0] + window_ns / 2 - tol) / period_ns)
    k_max = math.floor((edges_ns[-1] - window_ns / 2 + tol) / period_ns)
    avail = np.arange(k_min, k_max + 1)
    if side_peaks is not None:
        want = np.unique(np.abs(np.asarray(side_peaks, dtype=np.int64)))
        if want.size == 0 or want.min() < 1:
            raise QrspecError(f"side_peaks={side_peaks!r} must be peak indices k >= 1 "
                              "(both signs are used)")
        peaks = np.concatenate([-want[::-1], [0], want])
        missing = np.setdiff1d(peaks, avail)
        if missing.size:
            raise QrspecError(f"side_peaks={side_peaks!r}: peaks {missing.tolist()} are not "
                              f"fully inside the curve (available {k_min}..{k_max})")
    else:
        peaks = avail
    if 0 not in peaks or peaks.size < 2:
        raise QrspecError(f"the curve (lags {edges_ns[0]:.4g}..{edges_ns[-1]:.4g} ns) holds no "
                          f"complete centre and side peak for period_ns={period_ns:.6g}, "
                          f"window_ns={window_ns:.6g}")
    row = np.full(peaks.max() - peaks.min() + 1, -1, np.int64)
    row[peaks - peaks.min()] = np.arange(peaks.size)
    kk = k - peaks.min()
    ok = inside & (kk >= 0) & (kk < row.size)
    bin_peak = np.full(centres.size, -1, np.int64)
    bin_peak[ok] = row[kk[ok]]
    return bin_peak, peaks


def _exposure_factors(lengths_s, peaks, period_ns):
    lengths = np.asarray(lengths_s, np.float64)
    total = lengths.sum()
    out = np.ones(peaks.size)
    if total <= 0:
        return out
    for i, k in enumerate(peaks):
        eff = np.maximum(lengths - abs(int(k)) * period_ns * 1e-9, 0).sum()
        out[i] = total / eff if eff > 0 else np.nan
    return out


def _peak_stats(c0, side_raw, side_factors):
    """(side_mean, g2, err, (lo, hi)) from centre count and raw side areas (last axis)."""
    from scipy.stats import beta

    c0 = np.asarray(c0, np.float64)
    side_raw = np.asarray(side_raw, np.float64)
    m = side_raw.shape[-1]
    s_tot = side_raw.sum(axis=-1)
    s_corr = (side_raw * side_factors).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        side_mean = s_corr / m
        g = np.where(side_mean > 0, c0 / np.where(side_mean > 0, side_mean, 1), np.nan)
        # C0 = 0: the Poisson error is undefined (NaN, flagged); g2_0_ci95 bounds g2(0) there
        err = np.where((c0 > 0) & (s_tot > 0),
                       g * np.sqrt(1 / np.maximum(c0, 1) + 1 / np.maximum(s_tot, 1)), np.nan)
        n = c0 + s_tot
        alpha = 0.05
        p_lo = np.where(c0 > 0, beta.ppf(alpha / 2, c0, s_tot + 1), 0.0)
        p_hi = np.where(s_tot > 0, beta.ppf(1 - alpha / 2, c0 + 1, s_tot), 1.0)
        scale = np.where(s_tot > 0, m * s_tot / np.where(s_corr > 0, s_corr, 1), np.nan)
        lo = np.where(n > 0, p_lo / (1 - p_lo) * scale, np.nan)
        hi = np.where((n > 0) & (p_hi < 1), p_hi / np.where(p_hi < 1, 1 - p_hi, 1) * scale,
                      np.inf)
    return side_mean, g, err, lo, hi


def _g2_flag(c0: int, s_tot: float, curve: G2Curve) -> str:
    """Why g2(0) is undefined ("" when it is defined)."""
    n0, n1 = curve.n_photons
    if curve.mode == "cross" and (n0 == 0 or n1 == 0):
        missing = [d for d, n in zip(curve.detectors, (n0, n1), strict=True) if n == 0]
        return (f"g2 not applicable: no (gated) photons on detector "
                f"{', '.join(map(str, missing))}")
    if c0 + s_tot == 0:
        return "g2(0) undefined: no photon pairs in the peak windows"
    if s_tot == 0:
        return "g2(0) undefined: no side-peak pairs to normalise the centre peak"
    if c0 == 0:
        return ("g2(0) error undefined: no pairs in the centre peak (g2(0) = 0; g2_0_ci95 "
                "bounds it)")
    return ""


def _check_window(window_ns, period_ns):
    if not (period_ns > 0 and math.isfinite(period_ns)):
        raise QrspecError(f"period_ns={period_ns!r} unknown or invalid: pass period_ns=")
    if window_ns is None:
        return period_ns
    w = positive_float("window_ns", window_ns)
    if w > period_ns * (1 + 1e-12):
        raise QrspecError(f"window_ns={window_ns!r} must not exceed the period "
                          f"({period_ns:.6g} ns)")
    return w


def g2_peaks(curve: G2Curve, *, window_ns=None, side_peaks=None, period_ns=None) -> G2Peaks:
    """Centre and side peak areas of a pulsed g2 and g2(0) = centre / mean side.

    Parameters
    ----------
    curve : G2Curve
        A pulsed g2 histogram.
    window_ns : float, optional
        Width ``w`` of each peak window ``[k P - w/2, k P + w/2)`` (default: the period, so the
        windows tile the lag axis); a bin counts if its centre is inside.
    side_peaks : sequence of int, optional
        Side peaks ``k >= 1`` to average (both signs). Default: every complete side peak.
    period_ns : float, optional
        Period (default: ``curve.period_ns``).

    Returns
    -------
    G2Peaks
    """
    if not isinstance(curve, G2Curve):
        raise QrspecError(f"curve={type(curve).__name__} must be a G2Curve")
    period = curve.period_ns if period_ns is None else positive_float("period_ns", period_ns)
    w = _check_window(window_ns, period)
    bin_peak, peaks = _peak_assignment(curve.edges_ns, period, w, side_peaks)
    areas = np.bincount(bin_peak[bin_peak >= 0], weights=curve.counts[bin_peak >= 0],
                        minlength=peaks.size).astype(np.int64)
    factors = _exposure_factors(curve.window_lengths_s, peaks, period)
    side = peaks != 0
    c0 = int(areas[~side][0])
    side_mean, g, err, lo, hi = _peak_stats(c0, areas[side], factors[side])
    flag = _g2_flag(c0, float(areas[side].sum()), curve)
    if not np.isfinite(g):
        g = err = lo = hi = math.nan
    return G2Peaks(peaks, areas, factors, c0, float(side_mean), int(side.sum()), float(g),
                   float(err), (float(lo), float(hi)), w, period, flag)


def g2_gate_scan(photons, gates_ns, *, detectors=(0, 1), gate_stop_ns=None,
                 gate_offsets_ns=None, window_ns=None, side_peaks=None, max_lag_periods=5,
                 bin_ns=0.5, delay_ns=0.0, time_windows_s=None, period_ns=None) -> G2GateScan:
    """Time-gated g2(0; T) for many gate starts T in one pass (methods.md section 2.3).

    Every pair in a peak window is histogrammed by the smaller aligned nanotime of its two
    photons; a reverse cumulative sum then gives the peak areas for every gate start.

    Parameters
    ----------
    photons : Photons or iterable of Photons
        T3 photons or chunks.
    gates_ns : sequence of float
        Gate starts T (ns, on the aligned nanotime axis ``nanotime - offset_d`` as ``gate_ns``
        of :func:`g2`), rounded up to whole TCSPC bins.
    gate_stop_ns : float, optional
        Common gate stop (default: none).
    gate_offsets_ns : sequence of float, optional
        Per-detector offsets (e.g. ``Decay.offsets_ns``). Default: estimated as in :func:`g2`
        (a Photons object is needed; pass them with chunks).
    window_ns, side_peaks
        As in :func:`g2_peaks`.
    detectors, max_lag_periods, bin_ns, delay_ns, time_windows_s, period_ns
        As in :func:`g2` (cross mode). The table of peaks x 65536 nanotimes holds at most
        :data:`MAX_GATE_SCAN_CELLS` cells (a larger ``max_lag_periods`` is refused).

    Returns
    -------
    G2GateScan
    """
    from qrspec.stats._kernels import correlate as _kc

    gates = np.atleast_1d(np.asarray(gates_ns, dtype=np.float64))
    if gates.ndim != 1 or gates.size == 0 or not np.all(np.isfinite(gates)):
        raise QrspecError(f"gates_ns={gates_ns!r} must be a non-empty sequence of finite gate "
                          "starts in ns")
    if gate_stop_ns is not None:
        stop = float(gate_stop_ns)
        if not np.all(gates < stop):
            raise QrspecError(f"gate_stop_ns={gate_stop_ns!r} must exceed every gate start")
        gate = (float(gates.min()) - 1e9, stop)  # placeholder start: the scan sets the starts
    else:
        gate = None
    if isinstance(photons, Photons) and not photons.is_t3:
        raise QrspecError("a gate scan needs T3 data (nanotimes); this is T2 data")
    if gate_offsets_ns is None:
        _, gate_offsets_ns = aligned_gate(photons, detectors, gate_ns=(0.0, math.inf))
    scan = _PairScanner(detectors=detectors, mode="cross", max_lag_periods=max_lag_periods,
                        max_lag_ns=None, bin_ns=bin_ns, gate_ns=gate,
                        gate_offsets_ns=gate_offsets_ns, delay_ns=delay_ns,
                        time_windows_s=time_windows_s, period_ns=period_ns,
                        need_nanotimes=True)
    hist = counts = peaks = bin_peak = None
    m_lo = 0
    for chunk in chunks(photons):
        calls = scan.calls(chunk)
        if calls and hist is None:
            scan.gate_lo[:] = 0  # starts are scanned, only the stop filters photons
            edges_ns = (scan.lag_lo_q + scan.bin_q * np.arange(scan.n_bins + 1)) \
                * scan.q_s * 1e9
            w = _check_window(window_ns, scan.period_ns)
            bin_peak, peaks = _peak_assignment(edges_ns, scan.period_ns, w, side_peaks)
            if peaks.size * (1 << 16) > MAX_GATE_SCAN_CELLS:
                raise QrspecError(f"max_lag_periods={max_lag_periods!r} gives {peaks.size} "
                                  f"peaks; a gate scan holds at most "
                                  f"{MAX_GATE_SCAN_CELLS >> 16} (MAX_GATE_SCAN_CELLS): choose "
                                  "fewer side peaks")
            off = scan.offsets_bins
            m_lo = -int(off.max())
            hist = np.zeros((peaks.size, 65536 + int(off.max() - off.min())), np.int64)
            counts = np.zeros((1, scan.n_bins), np.int64)
        for ts, nt, det, mask, j_start, ntmax_q in calls:  # the curve and the table, one pass
            _kc.g2_peak_min_nanotime(ts, nt, det, scan.role, scan.gate_lo, scan.gate_hi, mask,
                                     j_start, scan.ts0, scan.tick_q, scan.nt_q, ntmax_q,
                                     scan.delay_q, scan.lag_lo_q, scan.bin_q, bin_peak, off,
                                     m_lo, hist, counts, scan.n_used)
    if hist is None:
        raise QrspecError("no photons: the gate scan needs at least one non-empty chunk")
    curve = scan.curve(counts[0])
    curve = replace(curve, gate_ns=None if gate is None else (float("-inf"), gate[1]))
    res_ns = scan.nt_unit * 1e9
    # the gate rule of qrspec.validate (as g2(gate_ns=...)): the first bin starting at or after T
    g_bins = np.atleast_1d(to_grid(gates, res_ns)).astype(np.int64)
    rev = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # rev[:, m] = pairs with min >= m + m_lo
    idx = g_bins - m_lo
    above = np.zeros((peaks.size, idx.size), np.int64)
    inside = idx < hist.shape[1]
    above[:, inside] = rev[:, np.maximum(idx[inside], 0)]  # T below every pair: all pairs
    areas = above.T  # (n_gates, n_peaks)
    factors = _exposure_factors(curve.window_lengths_s, peaks, scan.period_ns)
    side = peaks != 0
    c0 = areas[:, ~side][:, 0]
    side_mean, g, err, lo, hi = _peak_stats(c0, areas[:, side], factors[side])
    # the scan's curve has no gate start: the photon counts per gate are unknown, so "not
    # applicable" is judged on the curve, the rest per gate
    flags = tuple(_g2_flag(int(c), float(a.sum()), curve) for c, a in zip(c0, areas[:, side],
                                                                             strict=True))
    bad = ~np.isfinite(g)
    g, err, lo, hi = (np.where(bad, np.nan, x) for x in (g, err, lo, hi))
    return G2GateScan(g_bins * res_ns, c0, areas[:, side], peaks[side], side_mean, g, err,
                      np.stack([lo, hi], axis=1), curve, flags)


# ------------------------------------------------------------------ comb period
def _lowest_strong_line(power: np.ndarray, band: np.ndarray) -> int:
    """Index of the comb's fundamental.

    The lowest line in ``band`` at least half the band's strongest, climbed to its local maximum.
    """
    strong = band[power[band] >= 0.5 * power[band].max()]
    i = int(strong[0])
    while i + 1 < power.size and power[i + 1] > power[i]:
        i += 1
    return i


def refine_comb(curve: G2Curve, period_ns: float, phase_ns: float | None = None
                ) -> tuple[float, float, int]:
    """Refine a comb's period and phase: straight line through the peak centroids.

    Each complete window ``[k P + phase - P/2, k P + phase + P/2)`` gives the count-weighted
    centroid of its counts above the window minimum; ``centroid_k = P k + phase`` is fitted.
    The fit starts with the peaks ``|k| <= 4`` and doubles that range each round (a starting
    period off by ``dP`` misplaces window ``k`` by ``k dP``, so far windows join only once the
    period is good enough to place them).

    Parameters
    ----------
    curve : G2Curve
        The curve.
    period_ns : float
        Starting period (e.g. from a periodogram line).
    phase_ns : float, optional
        Starting phase (default: the phase of the counts' Fourier component at the period).

    Returns
    -------
    period_ns, phase_ns : float
        Phase in ``(-P/2, P/2]``.
    n_peaks : int
        Peaks used in the last fit (0: the starting values came back).
    """
    c = curve.counts.astype(np.float64)
    lag = curve.lag_ns
    period = float(period_ns)
    if phase_ns is None:
        phase = float(-np.angle((c * np.exp(-2j * np.pi * lag / period)).sum()) * period
                      / (2 * np.pi))
    else:
        phase = float(phase_ns)
    used_n = 0
    k_lim = 4
    n_total = int((curve.edges_ns[-1] - curve.edges_ns[0]) / period) + 2
    while True:
        for _ in range(2):  # windows move with the estimate
            k = np.floor((lag - phase) / period + 0.5)
            ks = np.unique(k)
            ks = ks[(np.abs(ks) <= k_lim)
                    & (ks * period + phase - period / 2 >= curve.edges_ns[0])
                    & (ks * period + phase + period / 2 <= curve.edges_ns[-1])]
            cent, used = [], []
            for kk in ks:
                m = k == kk
                wts = c[m] - c[m].min()
                if wts.sum() > 0:
                    cent.append(float((wts * lag[m]).sum() / wts.sum()))
                    used.append(kk)
            if len(used) < 2:
                break
            period, phase = (float(x) for x in np.polyfit(np.asarray(used), np.asarray(cent),
                                                          1))
            used_n = len(used)
        if k_lim >= n_total:
            break
        k_lim *= 2
    phase = phase - period * math.floor(phase / period + 0.5)
    if phase <= -period / 2:
        phase += period
    return period, phase, used_n


def find_comb_period_ns(curve: G2Curve, *, min_period_ns=None, max_period_ns=None) -> float:
    """Period of the pulsed-peak comb of a g2 curve (e.g. when the laser rate is unknown).

    The lowest-frequency strong line (>= half the strongest) of the power spectrum of the
    counts gives a rough period, refined by :func:`refine_comb` (a straight-line fit of the
    peak centroids against their index). To decide first whether there is a comb at all, use
    :func:`qrspec.stats.hbt.detect_comb`.

    Parameters
    ----------
    curve : G2Curve
        A curve spanning several periods.
    min_period_ns, max_period_ns : float, optional
        Search range (default: 4 bins to a third of the lag range).

    Returns
    -------
    float
    """
    if not isinstance(curve, G2Curve):
        raise QrspecError(f"curve={type(curve).__name__} must be a G2Curve")
    c = curve.counts.astype(np.float64)
    n = c.size
    span = curve.edges_ns[-1] - curve.edges_ns[0]
    lo_p = 4 * curve.bin_ns if min_period_ns is None else float(min_period_ns)
    hi_p = span / 3 if max_period_ns is None else float(max_period_ns)
    if not 0 < lo_p < hi_p:
        raise QrspecError(f"min_period_ns={min_period_ns!r}, max_period_ns={max_period_ns!r} "
                          "must satisfy 0 < min < max")
    if c.sum() == 0:
        raise QrspecError("the curve holds no pairs")
    power = np.abs(np.fft.rfft(c - c.mean())) ** 2
    freq = np.fft.rfftfreq(n, d=curve.bin_ns)
    band = np.flatnonzero((freq >= 1 / hi_p) & (freq <= 1 / lo_p))
    if band.size == 0:
        raise QrspecError("no frequency in the search range: widen the curve's lag range")
    period, _, _ = refine_comb(curve, 1.0 / freq[_lowest_strong_line(power, band)])
    return float(period)
