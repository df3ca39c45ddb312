"""Stage: g2 of the HBT pair and the single-emitter verdict.

Three modes (``Alignment.g2_mode``):

* ``"pulsed"`` with nanotimes (T3, T2 with sync events): raw and time-gated peak areas;
* ``"pulsed"`` without nanotimes (T2, comb found in the correlation): raw peak areas only;
* ``"cw"`` (T2 without a comb): the antibunching dip fitted
  (:func:`qrspec.fitting.antibunching.fit_antibunching`: g2(0), rise time, dip centre).

Every lag is relative to the chosen zero (``Alignment.delay_ns``).

Single-emitter verdict (three-way: ``single`` / ``not_single`` / ``undecidable``, with the
reason; ``docs/levels.md``): with nanotimes and labelled levels,
:func:`qrspec.levels.emitter_verdict` (the gate chosen from the measured tau_XX of the level
where a gate removes the biexciton; every long-lived level tested; a second decay component or
fast heralded tau_X forbids "single"). Without nanotimes (T2) the raw g2(0) and for CW the fitted
dip decide only "single" (upper bound below the threshold: biexciton photons only raise the
centre peak); one emitter's cascade can fill the ungated centre peak, so "not single" is never
called there (:func:`qrspec.fitting.g2_analysis.single_emitter_test_ungated`). The threshold is
``single_emitter_max_g2`` (default 0.35), the bounds one-sided at ``1 - verdict_alpha``.
The fixed-gate rule ``gated g2(0) + 2 sigma < 0.5`` it replaces called single rods with
long-lived biexcitons "not single" (issue 15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.detector import G2Afterpulse
from qrspec.errors import QrspecError
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
        ``verdict == "single"`` (the verdict's g2 is not afterpulse-corrected: afterpulse
        pairs only raise it, so the verdict stays conservative; ``afterpulse`` holds the
        corrected gated g2(0)).
    flags : tuple of str
        Flags of this stage.
    g2_mode : str
        ``"pulsed"`` or ``"cw"``.
    antibunching : AntibunchingFit or None
        The CW dip fit (None when pulsed).
    afterpulse : G2Afterpulse or None
        g2(0) corrected for afterpulsing (:mod:`qrspec.analysis.detector`; the histograms and
        their ``g2_zero`` stay as measured); None when afterpulsing was not estimated.
    verdict : str
        ``"single"``, ``"not_single"`` or ``"undecidable"`` (module docstring).
    verdict_reason : str
        Why, with the numbers.
    verdict_gate_ns : float
        Gate start after the rise of the deciding test (NaN: no gate).
    verdict_g2, verdict_g2_lower, verdict_g2_upper : float
        g2(0) of the deciding test and its one-sided bounds at ``1 - verdict_alpha``.
    verdict_level : int
        Level whose tau_XX set the gates (-1: none).
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
    verdict: str = "undecidable"
    verdict_reason: str = ""
    verdict_gate_ns: float = math.nan
    verdict_g2: float = math.nan
    verdict_g2_lower: float = math.nan
    verdict_g2_upper: float = math.nan
    verdict_level: int = -1


def _histogram(curve, pk, gate) -> G2Histogram:
    return G2Histogram(lag_ns=curve.lag_ns, counts=curve.counts,
                       peaks=np.asarray(pk.peaks, np.int64), peak_areas=pk.areas,
                       g2_zero=float(pk.g2_0), g2_zero_err=float(pk.g2_0_err),
                       window_ns=float(pk.window_ns),
                       gate_window_ns=None if gate is None else tuple(map(float, gate)),
                       g2_zero_ci95=tuple(float(x) for x in pk.g2_0_ci95))


def _peak_flag(pk) -> str:
    """Why g2(0) (or its error) is undefined.

    The peak analysis's own reason, or, when the side peaks have no usable exposure (e.g. all
    photons at one time), that.
    """
    if pk.flag or np.isfinite(pk.g2_0):
        return pk.flag
    return "g2(0) undefined: no side-peak exposure to normalise the centre peak"


def _verdict_fields(outcome: str, reason: str, test, level: int = -1) -> dict:
    """G2Result verdict fields from an EmitterTest (None: nothing tested)."""
    nan = math.nan
    get = (lambda a: float(getattr(test, a))) if test is not None else (lambda a: nan)
    return dict(single_emitter=outcome == "single", verdict=outcome, verdict_reason=reason,
                verdict_gate_ns=get("gate_ns"), verdict_g2=get("g2"),
                verdict_g2_lower=get("g2_lower"), verdict_g2_upper=get("g2_upper"),
                verdict_level=int(level))


def _ungated_verdict(h: G2Histogram, pk, config: AnalysisConfig, what: str) -> dict:
    """Verdict from an ungated g2 (T2 comb: peak counts; CW: the dip fit's Gaussian error)."""
    from scipy.stats import norm

    from qrspec.fitting.g2_analysis import g2_one_sided_bounds, single_emitter_test_ungated

    a = config.verdict_alpha
    if pk is not None:
        lo, hi = g2_one_sided_bounds(pk.centre, float(pk.areas[pk.peaks != 0].sum()),
                                     pk.side_mean, alpha=a)
        centre, side = int(pk.centre), float(pk.side_mean)
    elif np.isfinite(h.g2_zero) and np.isfinite(h.g2_zero_err):
        z = float(norm.ppf(1.0 - a))
        lo, hi = h.g2_zero - z * h.g2_zero_err, h.g2_zero + z * h.g2_zero_err
        centre, side = -1, math.nan
    else:
        lo = hi = math.nan
        centre, side = -1, math.nan
    t = single_emitter_test_ungated(h.g2_zero, lo, hi, threshold=config.single_emitter_max_g2,
                                    alpha=a, what=what, centre=centre, side_mean=side)
    return _verdict_fields(t.outcome, t.reason, t)


def _lag_zero_guard(fields: dict, alignment: Alignment) -> dict:
    """A pulsed "single" needs an established lag zero.

    The "centre" peak is lag zero only if the zero peak was found in the data or given; a
    suppressed peak elsewhere would pass for antibunching.
    """
    if fields["verdict"] == "single" and alignment.delay_source == "default":
        fields = dict(fields, single_emitter=False, verdict="undecidable", verdict_reason=(
            "lag zero of the g2 not established (zero peak not found; set hbt_delay_ns): "
            + fields["verdict_reason"]))
    return fields


def particle_verdict(photons: Photons, labels, alignment: Alignment,
                     config: AnalysisConfig, raw: G2Histogram | None = None,
                     pk_raw=None) -> dict:
    """Three-way verdict of a T3 particle from its labelled levels, as G2Result fields.

    See :func:`qrspec.levels.emitter_verdict`.

    When the levels cannot decide (no level with a heralded tau_XX, too few pairs after the
    gate), the raw g2(0) of all photons still can say "single"
    (:func:`qrspec.fitting.g2_analysis.single_emitter_test_ungated`: biexciton photons only
    raise the ungated centre peak, and a second emitter adds its cross pairs whatever its
    state); the reason then quotes both.

    Parameters
    ----------
    photons : Photons
        T3 photons on the two analysed detectors.
    labels : qrspec.levels.LevelLabels or None
        Labels with evidence (:func:`qrspec.analysis.levels.find_labelled_levels`).
    alignment : Alignment
        Offsets and HBT delay.
    config : AnalysisConfig
        Uses ``single_emitter_max_g2``, ``verdict_alpha``, ``mean_excitations`` (the
        suppression bound at <N> <= it; 1 when unknown), ``g2_max_lag_periods``,
        ``g2_bin_ns``.
    raw : G2Histogram, optional
        The raw g2 of all photons, and ``pk_raw`` its peak analysis (the fallback above).

    Returns
    -------
    dict
        ``single_emitter``, ``verdict``, ``verdict_reason``, ``verdict_gate_ns``,
        ``verdict_g2``, ``verdict_g2_lower``, ``verdict_g2_upper``, ``verdict_level``.
    """
    from qrspec.levels.emitter import emitter_verdict

    def fallback(fields: dict) -> dict:
        if fields["verdict"] == "undecidable" and raw is not None and pk_raw is not None:
            ung = _ungated_verdict(raw, pk_raw, config, "raw g2(0)")
            if ung["verdict"] == "single":
                ung["verdict_reason"] += f" (gated test: {fields['verdict_reason']})"
                fields = ung
        return _lag_zero_guard(fields, alignment)

    if labels is None or labels.tau_xx_ns is None:
        return fallback(_verdict_fields("undecidable", "no level evidence (tau_X, tau_XX per "
                                        "level)", None))
    try:
        v = emitter_verdict(photons, labels, detectors=tuple(config.detectors),
                            offsets_ns=alignment.offsets_ns,
                            threshold=config.single_emitter_max_g2, alpha=config.verdict_alpha,
                            max_mean_excitations=config.mean_excitations or 1.0,
                            max_lag_periods=config.g2_max_lag_periods, bin_ns=config.g2_bin_ns,
                            delay_ns=alignment.delay_ns)
    except QrspecError as exc:  # e.g. a gate scan the data cannot hold: say why, decide nothing
        return fallback(_verdict_fields("undecidable", f"verdict not made: {exc}", None))
    return fallback(_verdict_fields(v.outcome, v.reason, v.decisive, v.reference_level))


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
    verdict = _ungated_verdict(raw, None, config, "CW g2(0) fit")
    return G2Result(detectors=tuple(dets), delay_ns=float(alignment.delay_ns),
                    gate_after_rise_ns=math.nan, raw=raw, gated=None, flags=tuple(flags),
                    g2_mode="cw", antibunching=fit, **verdict)


def measure_g2(photons: Photons, alignment: Alignment, config: AnalysisConfig, *,
               labels=None, afterpulsing=None) -> G2Result:
    """Raw and gated (pulsed) or fitted (CW) g2 and the single-emitter verdict.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the two analysed detectors.
    alignment : Alignment
        g2 mode, lag zero, offsets and rise (:func:`qrspec.analysis.alignment.align_detectors`).
    config : AnalysisConfig
        Uses ``detectors`` (the two analysed), ``g2_*``, ``gate_after_rise_ns``,
        ``single_emitter_max_g2``, ``verdict_alpha``, ``mean_excitations`` and
        ``correct_afterpulsing``.
    labels : qrspec.levels.LevelLabels, optional
        The particle's labelled levels with evidence (T3: the verdict needs them; without
        them a T3 particle is undecidable).
    afterpulsing : AfterpulseEstimate, optional
        Afterpulse probabilities of the two detectors, estimated from ``photons``
        (:func:`qrspec.analysis.detector.estimate_detector_afterpulsing`): g2(0) corrected
        (pulsed T3 only).

    Returns
    -------
    G2Result
    """
    from qrspec.stats.correlation import g2, g2_peaks, g2_with_gate

    if alignment.g2_mode == "cw":
        return _cw(photons, alignment, config)
    dets = config.detectors
    flags: list[str] = []
    period = None if photons.is_t3 else alignment.g2_period_ns  # T3: the sync period
    gate = (alignment.t0_ns + config.gate_after_rise_ns, alignment.period_ns)
    g2_gated = None
    if photons.is_t3 and gate[0] < gate[1]:  # both curves from one pass over the pairs
        g2_raw, g2_gated = g2_with_gate(photons, gate, detectors=dets,
                                        max_lag_periods=config.g2_max_lag_periods,
                                        bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns,
                                        gate_offsets_ns=alignment.offsets_ns)
    else:
        g2_raw = g2(photons, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                    bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns, period_ns=period)
    pk_raw = g2_peaks(g2_raw, window_ns=config.g2_peak_window_ns)
    flags += [f for f in (g2_raw.coarsening_note, _peak_flag(pk_raw)) if f]
    raw = _histogram(g2_raw, pk_raw, None)
    if not photons.is_t3:  # T2 comb: no nanotimes, no gate (flagged by the acquisition)
        verdict = _lag_zero_guard(_ungated_verdict(raw, pk_raw, config, "raw g2(0)"),
                                  alignment)
        return G2Result(detectors=tuple(dets), delay_ns=float(alignment.delay_ns),
                        gate_after_rise_ns=math.nan, raw=raw, gated=None, flags=tuple(flags),
                        **verdict)
    if g2_gated is None:
        # the rise sits within the gate offset of the end of the period (or the decay is one
        # spike whose rise estimate is the last bin): a gate cannot start after the period ends
        flags.append(f"gate start t0 + gate_after_rise_ns = {gate[0]:.4g} ns is not inside the "
                     f"laser period ({alignment.period_ns:.4g} ns): gated g2 not computed")
        gated = G2Histogram(lag_ns=raw.lag_ns, counts=np.zeros_like(raw.counts),
                            peaks=raw.peaks, peak_areas=np.zeros_like(raw.peak_areas),
                            g2_zero=math.nan, g2_zero_err=math.nan, window_ns=raw.window_ns,
                            gate_window_ns=None)
    else:
        pk_gated = g2_peaks(g2_gated, window_ns=config.g2_peak_window_ns)
        if _peak_flag(pk_gated):  # "gated g2(0) undefined: ...", "gated g2 not applicable: ..."
            flags.append(f"gated {_peak_flag(pk_gated)}")
        gated = _histogram(g2_gated, pk_gated, gate)
    ap = None
    if afterpulsing is not None:  # afterpulse pairs removed from g2(0) (issue 18)
        from qrspec.analysis.detector import g2_afterpulse_correction, g2_afterpulse_flags

        frac = None if g2_gated is None else \
            np.asarray(g2_gated.n_photons, float) / np.asarray(g2_raw.n_photons, float)
        ap = g2_afterpulse_correction(afterpulsing, raw, gated,
                                      None if g2_gated is None else gate, frac,
                                      apply=config.correct_afterpulsing)
        flags += g2_afterpulse_flags(ap)
    verdict = particle_verdict(photons, labels, alignment, config, raw, pk_raw)
    return G2Result(detectors=tuple(dets), delay_ns=float(alignment.delay_ns),
                    gate_after_rise_ns=float(config.gate_after_rise_ns), raw=raw, gated=gated,
                    flags=tuple(flags), afterpulse=ap, **verdict)
