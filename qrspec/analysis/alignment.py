"""Stage: the time axes of the analysis.

The total decay aligns the detectors (per-detector nanotime offsets, the rise t0); the HBT set-up
fixes lag zero of every g2 (pulsed or CW, the comb period, the zero-delay peak with whole-period
delays: :mod:`qrspec.stats.hbt`); a measured IRF is put on the aligned axis.

Lag zero: the detectors' rise offsets give the delay only modulo the laser period. The zero
peak is found from the data (the suppressed peak of an antibunched emitter:
:func:`qrspec.stats.hbt.find_zero_peak`) or given (``AnalysisConfig.hbt_delay_ns``); when the
data cannot decide (classical light, too few pairs, two suppressed peaks) the sub-period delay
is used and the result is flagged. Every g2 of the particle (raw, gated, per state, gate scan,
charging windows) subtracts the same ``delay_ns``.

The evidence is taken from the raw correlation and, when that cannot decide and nanotimes
exist, from the time-gated one (both photons ``gate_after_rise_ns`` after the rise, as the
gated g2): a quantum dot's biexciton photons fill the raw centre peak (raw g2(0) ~0.3-0.9 for
charged or bright particles), the gate removes them first, and a neutral 20 s particle whose
raw centre peak is suppressed by z ~ 2 reaches z ~ 7 gated (``data_samples/sim_neutral.ptu``).
Two looks at the same data barely change the false-decision rate: a Poisson peak reaches the
acceptance ``z >= 5`` with probability ~3e-7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.acquisition import Acquisition
from qrspec.analysis.config import AnalysisConfig
from qrspec.photons import Photons

__all__ = ["Alignment", "align_detectors"]


@dataclass(frozen=True, eq=False)
class Alignment:
    """Total aligned decay (TCSPC bins), lag zero of the g2 and the measured IRF.

    Attributes
    ----------
    time_ns : ndarray of float64 or None
        Left bin edge of each bin on the aligned axis (None without nanotimes).
    counts : ndarray of int64 or None
        Aligned decay of all photons (None without nanotimes).
    t0_ns : float
        Rise of the aligned decay (half maximum of the rising edge; NaN without nanotimes).
    offsets_ns : ndarray of float64
        Nanotime offset subtracted from each analysed detector (whole TCSPC bins; empty
        without nanotimes).
    period_ns : float
        Length of the aligned axis (the laser period; NaN without nanotimes).
    bin_ns : float
        Bin width (the TCSPC resolution; NaN without nanotimes).
    delay_ns : float
        HBT delay ``t(det 1) - t(det 0)`` subtracted from every g2 lag, whole periods included
        (NaN with one detector).
    recorded_ns : float
        Raw nanotime range the instrument records (``Decay.recorded_ns``; NaN without
        nanotimes): fits end before it when it is shorter than the period.
    g2_mode : str
        ``"pulsed"``, ``"cw"`` (T2 without a comb) or ``"not_applicable"`` (one detector).
    g2_period_ns : float
        Period of the g2 comb: the sync period (T3, T2 with sync) or the period found in the
        correlation (T2); NaN for CW and one detector.
    period_source : str
        ``"sync"``, ``"comb"`` or ``""``.
    delay_source : str
        ``"data"`` (the suppressed peak), ``"user"`` (``hbt_delay_ns``), ``"default"`` (the
        data could not decide: sub-period delay, flagged) or ``""`` (one detector; CW without
        a user delay: the dip fit finds the dip centre).
    base_delay_ns : float
        The sub-period delay (rise offsets, or the comb's phase in T2), known modulo the period.
    zero_peak_index : int
        Chosen peak k: ``delay_ns = base_delay_ns + k * g2_period_ns`` (0 when not decided).
    zero_peak_z : float
        Poisson z-score ``(m - A_k) / sqrt(m)`` of the chosen (lowest) peak against the median
        ``m`` of the others (NaN when not computed).
    zero_peak_second_z : float
        The same for the lowest of the other peaks (a second suppressed peak: ambiguous).
    zero_peak_median_area : float
        ``m``: median exposure-corrected pairs of the other peaks.
    zero_peak_peaks : ndarray of int64 or None
        Peak indices k (relative to ``base_delay_ns``) of the evidence.
    zero_peak_areas : ndarray of float64 or None
        Their exposure-corrected areas.
    comb_p_value : float
        T2 without sync: probability of the strongest comb line in Poisson noise (NaN
        otherwise).
    irf_counts : ndarray of float64 or None
        Measured IRF on the aligned axis, one row per detector (None: tail fits).
    irf_source : str
        IRF file ("" when none).
    irf_roll_ns : float
        Whole-bin shift applied to a text / npy IRF to put its median on the decay's rise (the
        fit refines it); 0 for a TTTR IRF (same axis as the decay); NaN without an IRF.
    zero_peak_gated : bool
        The zero peak was decided on the time-gated correlation (the raw one could not).
    flags : tuple of str
        Flags of this stage.
    """

    time_ns: np.ndarray | None
    counts: np.ndarray | None
    t0_ns: float
    offsets_ns: np.ndarray
    period_ns: float
    bin_ns: float
    delay_ns: float
    recorded_ns: float = math.nan
    g2_mode: str = "pulsed"
    g2_period_ns: float = math.nan
    period_source: str = ""
    delay_source: str = ""
    base_delay_ns: float = math.nan
    zero_peak_index: int = 0
    zero_peak_z: float = math.nan
    zero_peak_second_z: float = math.nan
    zero_peak_median_area: float = math.nan
    zero_peak_peaks: np.ndarray | None = None
    zero_peak_areas: np.ndarray | None = None
    comb_p_value: float = math.nan
    irf_counts: np.ndarray | None = None
    irf_source: str = ""
    irf_roll_ns: float = math.nan
    zero_peak_gated: bool = False
    flags: tuple[str, ...] = ()


def _irf_on_axis(path: str, bin_ns, decay) -> tuple[np.ndarray, float]:
    """The measured IRF on the aligned full-resolution axis of ``decay``, and the roll applied.

    One row per detector; the roll is the whole-bin roll applied (text / npy: its median put on the
    decay's rise t0).
    """
    from qrspec.io.irf import read_irf
    from qrspec.stats.decay import irf_histogram

    irf = read_irf(path, bin_ns=bin_ns)
    rows = irf_histogram(irf, decay)
    if irf.kind == "tttr":  # histogrammed with the decay's own offsets: the same axis
        return rows, 0.0
    # a histogram's time axis is rarely the aligned axis: for a decay much longer than the
    # IRF, the rise (half maximum) of the decay is where the IRF has delivered half its area
    cum = np.cumsum(rows[0])
    median_bin = int(np.searchsorted(cum, 0.5 * cum[-1]))
    roll = int(round(decay.t0_ns / decay.bin_ns)) - median_bin
    return np.roll(rows, roll, axis=1), roll * decay.bin_ns


def _gated(photons: Photons, dets, offsets_ns, t0_ns: float, period_ns: float,
            gate_after_rise_ns: float) -> Photons | None:
    """The photons inside the gated g2's gate; None when the gate does not fit in the period.

    The gate is the aligned nanotime range ``[t0 + g, period)``, by the kernel's per-detector rule
    of :func:`qrspec.stats._input.gate_tables`.
    """
    from dataclasses import replace

    from qrspec.stats._input import N_DET, gate_tables
    from qrspec.validate import shift_to_grid

    gate = (t0_ns + gate_after_rise_ns, period_ns)
    if not gate[0] < gate[1]:
        return None
    off = np.zeros(N_DET, np.int64)
    off[list(dets)] = shift_to_grid(np.asarray(offsets_ns), photons.nanotimes_unit * 1e9)
    lo, hi = gate_tables(photons, gate, off)
    nt = photons.nanotimes.astype(np.int64)
    keep = (nt >= lo[photons.detectors]) & (nt < hi[photons.detectors])
    return replace(photons, timestamps=photons.timestamps[keep],
                   detectors=photons.detectors[keep], nanotimes=photons.nanotimes[keep])


def align_detectors(photons: Photons, acquisition: Acquisition,
                    config: AnalysisConfig) -> Alignment:
    """Total decay with per-detector offsets, lag zero of the g2, the measured IRF.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    acquisition : Acquisition
        Detectors and timing mode.
    config : AnalysisConfig
        Uses ``hbt_delay_ns``, ``irf_path`` and ``irf_bin_ns``.

    Returns
    -------
    Alignment
    """
    from qrspec.stats.decay import decay_histogram
    from qrspec.stats.hbt import find_zero_peak, plan_g2

    dets = acquisition.detectors
    flags: list[str] = []
    kw: dict = {}
    if acquisition.has_nanotimes:
        dec = decay_histogram(photons, detectors=dets)
        offsets = np.asarray(dec.offsets_ns, float)
        kw.update(time_ns=dec.time_ns, counts=dec.counts, t0_ns=float(dec.t0_ns),
                  offsets_ns=offsets, period_ns=float(dec.period_ns),
                  bin_ns=float(dec.bin_ns), recorded_ns=float(dec.recorded_ns))
        if config.irf_path is not None:
            rows, roll = _irf_on_axis(config.irf_path, config.irf_bin_ns, dec)
            kw.update(irf_counts=rows, irf_source=config.irf_path, irf_roll_ns=float(roll))
    else:
        kw.update(time_ns=None, counts=None, t0_ns=math.nan, offsets_ns=np.zeros(0),
                  period_ns=math.nan, bin_ns=math.nan)
        if config.irf_path is not None:
            flags.append(f"irf_path={config.irf_path!r} not used: no nanotimes")
    if not acquisition.hbt:
        return Alignment(**kw, delay_ns=math.nan, g2_mode="not_applicable",
                         flags=tuple(flags))
    comb = None
    gated = False
    if acquisition.has_nanotimes:
        base = float(offsets[1] - offsets[0])
        zp = find_zero_peak(photons, detectors=dets, delay_ns=config.hbt_delay_ns,
                            base_delay_ns=base)
        if not zp.decided:
            sub = _gated(photons, dets, offsets, kw["t0_ns"], kw["period_ns"],
                         config.gate_after_rise_ns)
            if sub is not None and np.all(np.isin(dets, sub.detectors)):
                zg = find_zero_peak(sub, detectors=dets, base_delay_ns=base)
                if zg.decided:
                    zp, gated = zg, True
        g2_mode, source = "pulsed", "sync"
    else:
        plan = plan_g2(photons, detectors=dets, delay_ns=config.hbt_delay_ns)
        g2_mode, zp, comb = plan.g2_mode, plan.zero_peak, plan.comb
        source = plan.period_source
        if g2_mode == "cw":
            return Alignment(**kw, delay_ns=float(plan.delay_ns), g2_mode="cw",
                             delay_source="user" if config.hbt_delay_ns is not None else "",
                             base_delay_ns=float(plan.delay_ns),
                             comb_p_value=float(comb.p_value), flags=tuple(flags))
    if zp.flag:
        flags.append(zp.flag)
    return Alignment(
        **kw, delay_ns=float(zp.delay_ns), g2_mode=g2_mode, g2_period_ns=float(zp.period_ns),
        period_source=source, delay_source=zp.source, base_delay_ns=float(zp.base_delay_ns),
        zero_peak_index=int(zp.zero_peak_index), zero_peak_z=float(zp.z_score),
        zero_peak_second_z=float(zp.second_z), zero_peak_median_area=float(zp.median_area),
        zero_peak_peaks=np.asarray(zp.peaks, np.int64),
        zero_peak_areas=np.asarray(zp.areas, np.float64),
        comb_p_value=math.nan if comb is None else float(comb.p_value), zero_peak_gated=gated,
        flags=tuple(flags))
