"""Stage: g2 of the HBT pair and the single-emitter verdict.

Three modes (``Alignment.g2_mode``):

* ``"pulsed"`` with nanotimes (T3, T2 with sync events): raw and time-gated peak areas;
* ``"pulsed"`` without nanotimes (T2, comb found in the correlation): raw peak areas only;
* ``"cw"`` (T2 without a comb): the antibunching dip fitted
  (:func:`qrspec.fitting.antibunching.fit_antibunching`: g2(0), rise time, dip centre).

Every lag is relative to the chosen zero (``Alignment.delay_ns``). The verdict uses the gated
g2(0) when there is one, else the raw or fitted g2(0) (an upper bound of the gated one for a
single emitter, so a "single" verdict stays valid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.detector import G2Afterpulse
from qrspec.fitting.antibunching import AntibunchingFit
from qrspec.photons import Photons

__all__ = ["G2Histogram", "G2Result", "measure_g2", "CW_MAX_LAG_NS", "CW_BIN_NS"]

CW_MAX_LAG_NS = 200.0  # CW dip: +-200 ns holds rise times up to ~50 ns (fit bound: width/4)
CW_BIN_NS = 0.1  # much narrower than a rise time of ~1 ns (detector jitter ~0.05-0.3 ns)


@dataclass(frozen=True, eq=False)
class G2Histogram:
    """One g2 histogram with its peak areas and g2(0).

    Attributes
    ----------
    lag_ns : ndarray of float64
        Bin centre lag ``t(det1) - t(det0) - delay_ns``.
    counts : ndarray of int64
        Photon pairs per lag bin.
    peaks : ndarray of int64
        Peak indices k (lag ~ k periods), centre included (empty for CW).
    peak_areas : ndarray of int64
        Pairs in each peak window (empty for CW).
    g2_zero, g2_zero_err : float
        Pulsed: centre / mean side peak area and its Poisson standard error; CW: the fitted
        dip bottom. NaN when undefined (flagged).
    window_ns : float
        Full width of each peak window (NaN for CW).
    gate_window_ns : tuple of float or None
        ``(start, stop)`` on the aligned nanotime axis kept for both photons; None: no gate.
    g2_zero_ci95 : tuple of float
        Pulsed: Clopper-Pearson 95 % interval of g2(0) (the statement to use when the centre
        peak holds no pair: g2(0) = 0 with an undefined Poisson error); CW: g2_zero -+ 1.96
        errors; NaN when undefined.
    """

    lag_ns: np.ndarray
    counts: np.ndarray
    peaks: np.ndarray
    peak_areas: np.ndarray
    g2_zero: float
    g2_zero_err: float
    window_ns: float
    gate_window_ns: tuple[float, ...] | None
    g2_zero_ci95: tuple[float, ...] = (math.nan, math.nan)


@dataclass(frozen=True, eq=False)
class G2Result:
    """g2 of one particle.

    Attributes
    ----------
    detectors : tuple of int
        ``(start, stop)`` detectors.
    delay_ns : float
        HBT delay subtracted from every lag (``Alignment.delay_ns``).
    gate_after_rise_ns : float
        Gate start after the rise t0 (``AnalysisConfig.gate_after_rise_ns``; NaN without
        nanotimes).
    raw : G2Histogram
        Without gate (CW: the fitted correlation).
    gated : G2Histogram or None
        Both photons in ``[t0 + gate_after_rise_ns, period)`` (None without nanotimes). When
        the gate does not fit in the period it holds no pairs and NaN g2(0) (flagged).
    single_emitter : bool
        g2(0) significantly below ``single_emitter_max_g2`` (gated when there is a gate);
        False when undecided. With an applied afterpulse correction, the corrected gated g2(0)
        decides.
    flags : tuple of str
        Flags of this stage.
    g2_mode : str
        ``"pulsed"`` or ``"cw"``.
    antibunching : AntibunchingFit or None
        The CW dip fit (None when pulsed).
    afterpulse : G2Afterpulse or None
        g2(0) corrected for afterpulsing (:mod:`qrspec.analysis.detector`; the histograms and
        their ``g2_zero`` stay as measured); None when afterpulsing was not estimated.
    """

    detectors: tuple[int, ...]
    delay_ns: float
    gate_after_rise_ns: float
    raw: G2Histogram
    gated: G2Histogram | None
    single_emitter: bool
    flags: tuple[str, ...]
    g2_mode: str = "pulsed"
    antibunching: AntibunchingFit | None = None
    afterpulse: G2Afterpulse | None = None


def _histogram(curve, pk, gate) -> G2Histogram:
    return G2Histogram(lag_ns=curve.lag_ns, counts=curve.counts,
                       peaks=np.asarray(pk.peaks, np.int64), peak_areas=pk.areas,
                       g2_zero=float(pk.g2_0), g2_zero_err=float(pk.g2_0_err),
                       window_ns=float(pk.window_ns),
                       gate_window_ns=None if gate is None else tuple(map(float, gate)),
                       g2_zero_ci95=tuple(float(x) for x in pk.g2_0_ci95))


def _peak_flag(pk) -> str:
    """Why g2(0) (or its error) is undefined: the peak analysis's own reason, or, when the
    side peaks have no usable exposure (e.g. all photons at one time), that."""
    if pk.flag or np.isfinite(pk.g2_0):
        return pk.flag
    return "g2(0) undefined: no side-peak exposure to normalise the centre peak"


def _verdict(h: G2Histogram, config: AnalysisConfig, label: str, flags: list) -> bool:
    from qrspec.fitting.g2_analysis import single_emitter_verdict

    if np.isfinite(h.g2_zero) and np.isfinite(h.g2_zero_err):
        return bool(single_emitter_verdict(h.g2_zero, h.g2_zero_err,
                                           threshold=config.single_emitter_max_g2).single)
    flags.append(f"{label} or its error undefined: single-emitter verdict not made")
    return False


def _cw(photons: Photons, alignment: Alignment, config: AnalysisConfig) -> G2Result:
    from qrspec.fitting.antibunching import fit_antibunching
    from qrspec.stats.correlation import g2

    dets = config.detectors
    curve = g2(photons, detectors=dets, max_lag_ns=CW_MAX_LAG_NS, bin_ns=CW_BIN_NS,
               delay_ns=alignment.delay_ns)
    fit = fit_antibunching(curve)
    flags = [curve.coarsening_note] if curve.coarsening_note else []
    if fit.message:
        flags.append(f"CW antibunching fit: {fit.message}")
    ok = fit.success
    ci = (fit.g2_0 - 1.96 * fit.g2_0_err, fit.g2_0 + 1.96 * fit.g2_0_err) if ok else \
        (math.nan, math.nan)
    raw = G2Histogram(lag_ns=curve.lag_ns, counts=curve.counts, peaks=np.zeros(0, np.int64),
                      peak_areas=np.zeros(0, np.int64),
                      g2_zero=float(fit.g2_0) if ok else math.nan,
                      g2_zero_err=float(fit.g2_0_err) if ok else math.nan,
                      window_ns=math.nan, gate_window_ns=None,
                      g2_zero_ci95=tuple(float(x) for x in ci))
    single = _verdict(raw, config, "CW g2(0)", flags)
    return G2Result(detectors=tuple(dets), delay_ns=float(alignment.delay_ns),
                    gate_after_rise_ns=math.nan, raw=raw, gated=None, single_emitter=single,
                    flags=tuple(flags), g2_mode="cw", antibunching=fit)


def measure_g2(photons: Photons, alignment: Alignment, config: AnalysisConfig, *,
               afterpulsing=None) -> G2Result:
    """Raw and gated (pulsed) or fitted (CW) g2 and the single-emitter verdict.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the two analysed detectors.
    alignment : Alignment
        g2 mode, lag zero, offsets and rise (:func:`qrspec.analysis.alignment.align_detectors`).
    config : AnalysisConfig
        Uses ``detectors`` (the two analysed), ``g2_*``, ``gate_after_rise_ns``,
        ``single_emitter_max_g2`` and ``correct_afterpulsing``.
    afterpulsing : AfterpulseEstimate, optional
        Afterpulse probabilities of the two detectors, estimated from ``photons``
        (:func:`qrspec.analysis.detector.estimate_detector_afterpulsing`): g2(0) corrected
        (pulsed T3 only).

    Returns
    -------
    G2Result
    """
    from qrspec.stats.correlation import g2, g2_peaks

    if alignment.g2_mode == "cw":
        return _cw(photons, alignment, config)
    dets = config.detectors
    flags: list[str] = []
    period = None if photons.is_t3 else alignment.g2_period_ns  # T3: the sync period
    g2_raw = g2(photons, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns, period_ns=period)
    pk_raw = g2_peaks(g2_raw, window_ns=config.g2_peak_window_ns)
    flags += [f for f in (g2_raw.coarsening_note, _peak_flag(pk_raw)) if f]
    raw = _histogram(g2_raw, pk_raw, None)
    if not photons.is_t3:  # T2 comb: no nanotimes, no gate (flagged by the acquisition)
        single = _verdict(raw, config, "g2(0)", flags)
        return G2Result(detectors=tuple(dets), delay_ns=float(alignment.delay_ns),
                        gate_after_rise_ns=math.nan, raw=raw, gated=None,
                        single_emitter=single, flags=tuple(flags))
    gate = (alignment.t0_ns + config.gate_after_rise_ns, alignment.period_ns)
    if not gate[0] < gate[1]:
        # the rise sits within the gate offset of the end of the period (or the decay is one
        # spike whose rise estimate is the last bin): a gate cannot start after the period ends
        flags.append(f"gate start t0 + gate_after_rise_ns = {gate[0]:.4g} ns is not inside the "
                     f"laser period ({alignment.period_ns:.4g} ns): gated g2 not computed")
        gated = G2Histogram(lag_ns=raw.lag_ns, counts=np.zeros_like(raw.counts),
                            peaks=raw.peaks, peak_areas=np.zeros_like(raw.peak_areas),
                            g2_zero=math.nan, g2_zero_err=math.nan, window_ns=raw.window_ns,
                            gate_window_ns=None)
        g2_gated = None
    else:
        g2_gated = g2(photons, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                      bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns, gate_ns=gate,
                      gate_offsets_ns=alignment.offsets_ns)
        pk_gated = g2_peaks(g2_gated, window_ns=config.g2_peak_window_ns)
        if _peak_flag(pk_gated):  # "gated g2(0) undefined: ...", "gated g2 not applicable: ..."
            flags.append(f"gated {_peak_flag(pk_gated)}")
        gated = _histogram(g2_gated, pk_gated, gate)
    ap = None
    decide = gated
    if afterpulsing is not None:  # afterpulse pairs removed from g2(0) (issue 18)
        from dataclasses import replace

        from qrspec.analysis.detector import g2_afterpulse_correction, g2_afterpulse_flags

        frac = None if g2_gated is None else \
            np.asarray(g2_gated.n_photons, float) / np.asarray(g2_raw.n_photons, float)
        ap = g2_afterpulse_correction(afterpulsing, raw, gated,
                                      None if g2_gated is None else gate, frac,
                                      apply=config.correct_afterpulsing)
        flags += g2_afterpulse_flags(ap)
        if ap.applied and np.isfinite(ap.g2_zero_gated):
            decide = replace(gated, g2_zero=ap.g2_zero_gated, g2_zero_err=ap.g2_zero_gated_err)
    single = _verdict(decide, config, "gated g2(0)", flags)
    return G2Result(detectors=tuple(dets), delay_ns=float(alignment.delay_ns),
                    gate_after_rise_ns=float(config.gate_after_rise_ns), raw=raw, gated=gated,
                    single_emitter=single, flags=tuple(flags), afterpulse=ap)
