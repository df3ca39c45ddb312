"""Stage: pulsed g2 of the HBT pair, raw and time-gated, and the single-emitter verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.detector import G2Afterpulse
from qrspec.photons import Photons

__all__ = ["G2Histogram", "G2Result", "measure_g2", "g2_flags"]


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
        Peak indices k (lag ~ k periods), centre included.
    peak_areas : ndarray of int64
        Pairs in each peak window.
    g2_zero, g2_zero_err : float
        Centre / mean side peak area and its Poisson standard error (NaN when undefined).
    window_ns : float
        Full width of each peak window.
    gate_window_ns : tuple of float or None
        ``(start, stop)`` on the aligned nanotime axis kept for both photons; None: no gate.
    """

    lag_ns: np.ndarray
    counts: np.ndarray
    peaks: np.ndarray
    peak_areas: np.ndarray
    g2_zero: float
    g2_zero_err: float
    window_ns: float
    gate_window_ns: tuple[float, ...] | None


@dataclass(frozen=True, eq=False)
class G2Result:
    """Raw and gated g2 of one particle.

    Attributes
    ----------
    detectors : tuple of int
        ``(start, stop)`` detectors.
    delay_ns : float
        HBT delay subtracted from every lag.
    gate_ns : float
        Gate start after the rise t0 (``AnalysisConfig.gate_ns``).
    raw, gated : G2Histogram
        Without gate and with both photons in ``[t0 + gate_ns, period)``. When the gate does
        not fit in the period, ``gated`` holds no pairs and NaN g2(0) (flagged).
    single_emitter : bool
        Gated g2(0) significantly below ``single_emitter_max_g2``; False when undecided.
        With an applied afterpulse correction, the corrected gated g2(0) decides.
    flags : tuple of str
        Flags of this stage.
    afterpulse : G2Afterpulse or None
        g2(0) corrected for afterpulsing (:mod:`qrspec.analysis.detector`; the histograms and
        their ``g2_zero`` stay as measured); None when afterpulsing was not estimated.
    """

    detectors: tuple[int, ...]
    delay_ns: float
    gate_ns: float
    raw: G2Histogram
    gated: G2Histogram
    single_emitter: bool
    flags: tuple[str, ...]
    afterpulse: G2Afterpulse | None = None


def g2_flags(label: str, pk) -> list[str]:
    """Flags for a g2(0) or its error that the photon pairs cannot define."""
    if not np.isfinite(pk.g2_0):
        return [f"{label} undefined (no photon pairs in the side peaks)"]
    if not np.isfinite(pk.g2_0_err):
        return [f"{label} error undefined (no photon pairs in the centre peak)"]
    return []


def _histogram(curve, pk, gate) -> G2Histogram:
    return G2Histogram(lag_ns=curve.lag_ns, counts=curve.counts,
                       peaks=np.asarray(pk.peaks, np.int64), peak_areas=pk.areas,
                       g2_zero=float(pk.g2_0), g2_zero_err=float(pk.g2_0_err),
                       window_ns=float(pk.window_ns),
                       gate_window_ns=None if gate is None else tuple(map(float, gate)))


def measure_g2(photons: Photons, alignment: Alignment, config: AnalysisConfig, *,
               afterpulsing=None) -> G2Result:
    """Raw and gated g2 and the single-emitter verdict.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    alignment : Alignment
        Offsets, rise and HBT delay (:func:`qrspec.analysis.alignment.align_detectors`).
    config : AnalysisConfig
        Uses ``detectors``, ``g2_*``, ``gate_ns``, ``single_emitter_max_g2`` and
        ``correct_afterpulsing``.
    afterpulsing : AfterpulseEstimate, optional
        Afterpulse probabilities of the two detectors, estimated from ``photons``
        (:func:`qrspec.analysis.detector.estimate_detector_afterpulsing`): g2(0) corrected.

    Returns
    -------
    G2Result
    """
    from qrspec.fitting.g2_analysis import single_emitter_verdict
    from qrspec.stats.correlation import g2, g2_peaks

    dets = config.detectors
    flags: list[str] = []
    gate = (alignment.t0_ns + config.gate_ns, alignment.period_ns)
    if not gate[0] < gate[1]:
        # the rise sits within gate_ns of the end of the period (or the decay is one spike
        # whose rise estimate is the last bin): a gate cannot start after the period ends
        flags.append(f"gate start t0 + gate_ns = {gate[0]:.4g} ns is not inside the laser "
                     f"period ({alignment.period_ns:.4g} ns): gated g2 not computed")
        gate = None
    g2_raw = g2(photons, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns)
    pk_raw = g2_peaks(g2_raw, window_ns=config.g2_peak_window_ns)
    flags += g2_flags("g2(0)", pk_raw)
    raw = _histogram(g2_raw, pk_raw, None)
    if gate is not None:
        g2_gated = g2(photons, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                      bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns, gate_ns=gate,
                      gate_offsets_ns=alignment.offsets_ns)
        pk_gated = g2_peaks(g2_gated, window_ns=config.g2_peak_window_ns)
        gated = _histogram(g2_gated, pk_gated, gate)
    else:  # same arrays with no pairs: g2(0) NaN, flagged above
        gated = G2Histogram(lag_ns=raw.lag_ns, counts=np.zeros_like(raw.counts),
                            peaks=raw.peaks, peak_areas=np.zeros_like(raw.peak_areas),
                            g2_zero=math.nan, g2_zero_err=math.nan, window_ns=raw.window_ns,
                            gate_window_ns=None)
    ap = None
    if afterpulsing is not None:  # afterpulse pairs removed from g2(0) (issue 18)
        from qrspec.analysis.detector import g2_afterpulse_correction, g2_afterpulse_flags

        frac = (np.asarray(g2_gated.n_photons, float) / np.asarray(g2_raw.n_photons, float)
                if gate is not None else None)
        ap = g2_afterpulse_correction(afterpulsing, raw, gated, gate, frac,
                                      apply=config.correct_afterpulsing)
        flags += g2_afterpulse_flags(ap)
    g_zero, g_err = (ap.g2_zero_gated, ap.g2_zero_gated_err) \
        if ap is not None and ap.applied and np.isfinite(ap.g2_zero_gated) \
        else (gated.g2_zero, gated.g2_zero_err)
    if np.isfinite(g_zero) and np.isfinite(g_err):
        verdict = single_emitter_verdict(g_zero, g_err, threshold=config.single_emitter_max_g2)
        single = bool(verdict.single)
    else:  # no pairs (few photons, gate removed everything): undecided, not single
        single = False
        if gate is not None:
            flags += [f + ": single-emitter verdict not made"
                      for f in g2_flags("gated g2(0)", pk_gated)]
    return G2Result(detectors=tuple(dets), delay_ns=alignment.delay_ns,
                    gate_ns=float(config.gate_ns), raw=raw, gated=gated,
                    single_emitter=single, flags=tuple(flags), afterpulse=ap)
