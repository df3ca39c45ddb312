"""Stage: detector artefacts of the analysed photons, afterpulsing and dead time / pile-up.

* **Afterpulsing** (:func:`estimate_detector_afterpulsing`, before the g2): the afterpulse
  probability of each HBT detector from its auto- against its cross-pairs
  (:func:`qrspec.stats.afterpulsing.estimate_afterpulsing`), on at most
  :data:`AFTERPULSE_MAX_PHOTONS` photons (a detector property: the first photons estimate it
  with the error of their number). It corrects

  - g2(0), raw and gated (:func:`g2_afterpulse_correction`, called by the g2 stage):
    afterpulses pair with the other detector like uncorrelated counts, in every peak, so
    ``g2 = g2_measured (1 + p) - p`` with ``p`` the afterpulse fractions of the two detectors'
    photons that enter the g2 (for the gated g2: the fractions among the gated photons). The
    corrected gated g2(0) makes the single-emitter verdict. Always applied with
    ``correct_afterpulsing`` (the formula needs no significance: with ``p`` consistent with 0
    it changes nothing beyond the error it propagates);
  - the exciton decay fits of the states and charging windows, only when the afterpulsing is
    significant (:meth:`~qrspec.stats.afterpulsing.AfterpulseEstimate.significant`, 3 sigma):
    the measured afterpulse nanotime profile, scaled to each decay's photons
    (:class:`AfterpulseBackground`), enters the fit as a known background shape. Without
    afterpulses that profile is noise clipped at 0 and would bias the fitted background, so
    it is not used then. A flat-background fit lengthens tau_X by +1.2 % at 2 % afterpulsing
    (``scripts/validate_detector.py --part decay``). The per-level labelling fits of the
    levels stage are not corrected (they only compare levels, which share the bias).

* **Dead time / pile-up** (:func:`check_dead_time`, after the g2 verdict):
  :func:`qrspec.fitting.pileup.dead_time_check` flags detection probabilities per laser period
  above the limit where the decays were checked unbiased (0.13 for a single emitter, 0.02
  otherwise).

Both need T3 data (timestamps in laser periods) and two detectors; otherwise the stage records
why it did not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.config import AnalysisConfig
from qrspec.photons import Photons
from qrspec.stats.afterpulsing import AfterpulseEstimate

#: the afterpulse estimate and its nanotime profile use at most this many photons (the first
#: of the analysed part): both are one pass over the photons, ~6 % of a 2.6 M-photon particle's
#: analysis in full; the Poisson errors are those of the photons used (``n_photons``), and
#: the decay correction was validated up to 1.2 M photons (scripts/validate_pipeline_hygiene.py)
AFTERPULSE_MAX_PHOTONS = 1 << 20

__all__ = ["AFTERPULSE_MAX_PHOTONS", "DetectorArtefacts", "AfterpulseBackground", "G2Afterpulse",
           "estimate_detector_afterpulsing", "afterpulse_photons", "afterpulse_background",
           "afterpulse_inconsistency", "usable_afterpulsing", "NEGATIVE_Z",
           "g2_afterpulse_correction",
           "g2_afterpulse_flags", "check_dead_time", "detector_artefacts"]


@dataclass(frozen=True, eq=False)
class DetectorArtefacts:
    """Afterpulsing and dead-time check of the analysed photons.

    Attributes
    ----------
    afterpulsing : AfterpulseEstimate or None
        Afterpulse probability per detector (order of ``AnalysisConfig.detectors``) and its
        delay profile in laser periods; None when not estimated (flagged).
    afterpulse_significant : ndarray of bool
        Per detector: probability > 3 errors.
    decay_correction : bool
        The afterpulse nanotime profile entered the exciton decay fits as a fixed background.
    p_det : ndarray of float64
        Recorded photons per laser period of each detector (dead-time / pile-up check; empty
        when not checked, flagged).
    p_det_limit : float
        Largest ``p_det`` not flagged (:func:`qrspec.fitting.pileup.dead_time_check`; NaN when
        not checked).
    dead_time_flagged : bool
        Some ``p_det`` exceeds ``p_det_limit``.
    flags : tuple of str
        Flags of this stage.
    """

    afterpulsing: AfterpulseEstimate | None
    afterpulse_significant: np.ndarray
    decay_correction: bool
    p_det: np.ndarray
    p_det_limit: float
    dead_time_flagged: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class AfterpulseBackground:
    """Expected afterpulse counts per raw nanotime bin of each detector for ``n_photons`` photons.

    Computed by :func:`qrspec.stats.afterpulsing.afterpulse_nanotime_profile`; not stored.
    """

    profile: np.ndarray
    n_photons: int

    def for_decay(self, decay, n_photons: int) -> np.ndarray:
        """The fixed background of a decay of ``n_photons`` photons, on its aligned bins."""
        from qrspec.stats.afterpulsing import aligned_profile

        return aligned_profile(self.profile, decay) * (n_photons / self.n_photons)


@dataclass(frozen=True, eq=False)
class G2Afterpulse:
    """g2(0) corrected for afterpulsing (:func:`g2_afterpulse_correction`).

    Attributes
    ----------
    probability, probability_err : ndarray of float64
        Afterpulse fraction of each detector's photons in the raw g2 and its error.
    probability_gated, probability_gated_err : ndarray of float64
        The same among the gated photons (afterpulses flat in nanotime); NaN without a gate.
    g2_zero, g2_zero_err : float
        Corrected raw g2(0) and its error (the error of ``p`` propagated); NaN when the
        measured g2(0) or its error is undefined (no correction: the measured value stays the
        particle's).
    g2_zero_gated, g2_zero_gated_err : float
        Corrected gated g2(0) and its error (NaN as above, or without a gate).
    bias, bias_gated : float
        Measured minus corrected g2(0).
    matters, matters_gated : bool
        The bias exceeds half the statistical error of the measured value.
    applied : bool
        The corrected values are the particle's g2(0) (``correct_afterpulsing``).
    """

    probability: np.ndarray
    probability_err: np.ndarray
    probability_gated: np.ndarray
    probability_gated_err: np.ndarray
    g2_zero: float
    g2_zero_err: float
    g2_zero_gated: float
    g2_zero_gated_err: float
    bias: float
    bias_gated: float
    matters: bool
    matters_gated: bool
    applied: bool


def _reason_not_estimable(photons: Photons, detectors) -> str:
    if not photons.is_t3:
        return "T2 data (afterpulse delays are counted in laser periods)"
    if detectors is None or len(detectors) != 2:
        return ("not two analysed detectors (the estimate compares a detector's pairs with the "
                "other's)")
    counts = photons.counts_per_detector
    empty = [d for d in detectors if d >= counts.size or counts[d] == 0]
    if empty:
        return f"detector {empty[0]} has no photons in the analysed part"
    return ""


def estimate_detector_afterpulsing(photons: Photons, config: AnalysisConfig
                                   ) -> tuple[AfterpulseEstimate | None, str]:
    """Afterpulse probability of each analysed detector, or None with the reason.

    Parameters
    ----------
    photons : Photons
        The analysed photons.
    config : AnalysisConfig
        Uses ``detectors`` and ``afterpulse_max_lag_s``.

    Returns
    -------
    (AfterpulseEstimate or None, str)
        The estimate and "" or None and why it was not made.
    """
    from qrspec.stats.afterpulsing import estimate_afterpulsing

    why = _reason_not_estimable(photons, config.detectors)
    if why:
        return None, why
    max_lag = max(float(config.afterpulse_max_lag_s), photons.sync_period_s)
    sub = afterpulse_photons(photons)
    why = _reason_not_estimable(sub, config.detectors)
    if why:
        return None, f"{why} (first {sub.size} photons)"
    return estimate_afterpulsing(sub, detectors=config.detectors, max_lag_s=max_lag), ""


#: an afterpulse estimate this many errors below 0 contradicts the estimator's assumption (both
#: detectors see the same photon statistics); its corrections are then not applied
NEGATIVE_Z = 3.0


def afterpulse_inconsistency(estimate: AfterpulseEstimate | None) -> str:
    """Why an estimate cannot be used for corrections ("" when it can).

    Afterpulses only add same-detector pairs, so a probability significantly below 0
    (< -:data:`NEGATIVE_Z` errors; by chance 0.13 % per detector) means the auto- and cross-pairs
    differ for another reason: cross-talk, unequal dead times, a detector split that changes
    during the measurement. Seen on a real file (libpicoquant_hh_v20.ht3: -0.015 +- 0.002).
    """
    if estimate is None:
        return ""
    neg = estimate.probability < -NEGATIVE_Z * estimate.probability_err
    if not np.any(neg):
        return ""
    k = int(np.argmax(neg))
    return (f"afterpulse estimate of detector {estimate.detectors[k]} is significantly "
            f"negative ({estimate.probability[k]:.3g} ± {estimate.probability_err[k]:.2g}): the "
            "two detectors do not see the same photon statistics (cross-talk, unequal dead "
            "times, a changing split); no afterpulse correction applied")


def usable_afterpulsing(estimate: AfterpulseEstimate | None) -> AfterpulseEstimate | None:
    """``estimate`` when it can correct g2(0) and decays, else None.

    See :func:`afterpulse_inconsistency`.
    """
    return None if estimate is None or afterpulse_inconsistency(estimate) else estimate


def afterpulse_photons(photons: Photons) -> Photons:
    """The photons the afterpulse estimate uses.

    All, or the first :data:`AFTERPULSE_MAX_PHOTONS` (a contiguous block: afterpulses stay with
    their parents).
    """
    from dataclasses import replace

    if photons.size <= AFTERPULSE_MAX_PHOTONS:
        return photons
    n = AFTERPULSE_MAX_PHOTONS
    return replace(photons, timestamps=photons.timestamps[:n], detectors=photons.detectors[:n],
                   nanotimes=None if photons.nanotimes is None else photons.nanotimes[:n])


def afterpulse_background(photons: Photons, estimate: AfterpulseEstimate | None,
                          config: AnalysisConfig) -> AfterpulseBackground | None:
    """The afterpulse nanotime profile for the decay fits, or None when they take none.

    None when afterpulsing is not significant, not estimated, or ``correct_afterpulsing`` is off.

    Parameters
    ----------
    photons : Photons
        The analysed photons (``estimate`` was made from :func:`afterpulse_photons` of them).
    estimate : AfterpulseEstimate or None
    config : AnalysisConfig
        Uses ``correct_afterpulsing``.

    Returns
    -------
    AfterpulseBackground or None
    """
    from qrspec.stats.afterpulsing import afterpulse_nanotime_profile

    if usable_afterpulsing(estimate) is None or not config.correct_afterpulsing or \
            not bool(np.any(estimate.significant())):
        return None
    sub = afterpulse_photons(photons)  # the photons of the estimate
    return AfterpulseBackground(afterpulse_nanotime_profile(sub, estimate), int(sub.size))


def g2_afterpulse_correction(estimate: AfterpulseEstimate, raw, gated, gate_ns,
                             gate_fraction, *, apply: bool) -> G2Afterpulse:
    """Afterpulse correction of the raw and gated g2(0) of the g2 stage.

    Parameters
    ----------
    estimate : AfterpulseEstimate
        Made from the photons of the g2.
    raw, gated : G2Histogram
        Measured histograms (``gated`` may hold NaN g2(0)).
    gate_ns : (float, float) or None
        The nanotime gate of ``gated`` (None: no gate).
    gate_fraction : (float, float)
        Fraction of each detector's photons inside the gate.
    apply : bool
        Whether the corrected values replace the measured ones (recorded in the result).

    Returns
    -------
    G2Afterpulse
    """
    from qrspec.stats.afterpulsing import correct_g2, gated_probability

    def corrected(h, p, p_err):
        # a g2(0) without an error (no pair in the centre peak: 0 counts) is not corrected: the
        # moment formula would turn 0 pairs into g2(0) = -p
        if not (math.isfinite(h.g2_zero) and math.isfinite(h.g2_zero_err)):
            return math.nan, math.nan, math.nan, False
        c = correct_g2(h.g2_zero, h.g2_zero_err, p, p_err)
        return c.g2_zero, c.g2_zero_err, c.bias, c.matters

    p, p_err = estimate.probability, estimate.probability_err
    raw_vals = corrected(raw, p, p_err)
    nan2 = np.full(2, np.nan)
    frac = np.asarray(gate_fraction, np.float64)
    if gate_ns is not None and frac.shape == (2,) and np.all(frac > 0):
        pg, pg_err = gated_probability(estimate, gate_ns, np.minimum(frac, 1.0))
        gated_vals = corrected(gated, pg, pg_err)
    else:
        pg, pg_err = nan2, nan2.copy()
        gated_vals = (math.nan, math.nan, math.nan, False)
    return G2Afterpulse(
        probability=np.asarray(p, np.float64), probability_err=np.asarray(p_err, np.float64),
        probability_gated=np.asarray(pg, np.float64),
        probability_gated_err=np.asarray(pg_err, np.float64),
        g2_zero=float(raw_vals[0]), g2_zero_err=float(raw_vals[1]),
        g2_zero_gated=float(gated_vals[0]), g2_zero_gated_err=float(gated_vals[1]),
        bias=float(raw_vals[2]), bias_gated=float(gated_vals[2]), matters=bool(raw_vals[3]),
        matters_gated=bool(gated_vals[3]), applied=bool(apply))


def g2_afterpulse_flags(c: G2Afterpulse) -> list[str]:
    """The "afterpulsing biases g2(0)" flags of a correction that matters."""
    out = []
    for label, bias, matters in (("g2(0)", c.bias, c.matters),
                                 ("gated g2(0)", c.bias_gated, c.matters_gated)):
        if matters:
            what = "corrected" if c.applied else "not corrected (correct_afterpulsing=False)"
            out.append(f"afterpulsing biases {label} by {bias:+.3g} (more than half its "
                       f"error): {what}")
    return out


def check_dead_time(photons: Photons, single_emitter: bool, config: AnalysisConfig) -> tuple:
    """Dead-time / pile-up check of the analysed photons, or None with the reason.

    Parameters
    ----------
    photons : Photons
        The analysed photons.
    single_emitter : bool
        The g2 stage's verdict (chooses the limit).
    config : AnalysisConfig
        Uses ``detectors``.

    Returns
    -------
    (qrspec.fitting.pileup.DeadTimeCheck or None, str)
    """
    from qrspec.fitting.pileup import dead_time_check

    if not photons.is_t3:
        return None, "T2 data (the check counts photons per laser period)"
    if photons.size == 0:
        return None, "no photons in the analysed part"
    return dead_time_check(photons, single_emitter=bool(single_emitter),
                           detectors=config.detectors), ""


def detector_artefacts(estimate: AfterpulseEstimate | None, why_not: str,
                       background: AfterpulseBackground | None, dead, dead_why_not: str,
                       config: AnalysisConfig) -> DetectorArtefacts:
    """Gather the stage result and its flags.

    Parameters
    ----------
    estimate, why_not
        :func:`estimate_detector_afterpulsing`.
    background
        :func:`afterpulse_background`.
    dead, dead_why_not : DeadTimeCheck or None, str
        :func:`check_dead_time`.
    config : AnalysisConfig
        Uses ``correct_afterpulsing``.

    Returns
    -------
    DetectorArtefacts
    """
    flags = []
    if estimate is None:
        flags.append(f"afterpulsing not estimated: {why_not}")
        significant = np.zeros(0, bool)
    else:
        significant = np.asarray(estimate.significant(), bool)
        if afterpulse_inconsistency(estimate):
            flags.append(afterpulse_inconsistency(estimate))
        elif significant.any() and not config.correct_afterpulsing:
            p = ", ".join(f"{v:.2g} ± {e:.1g}" for v, e in
                          zip(estimate.probability, estimate.probability_err, strict=True))
            flags.append(f"significant afterpulsing (p = {p}) not corrected in the decay fits "
                         "(correct_afterpulsing=False)")
    if dead is None:
        flags.append(f"dead time not checked: {dead_why_not}")
    elif dead.flagged:
        flags.append(dead.message)
    return DetectorArtefacts(
        afterpulsing=estimate, afterpulse_significant=significant,
        decay_correction=background is not None,
        p_det=np.zeros(0) if dead is None else np.asarray(dead.p_det, np.float64),
        p_det_limit=math.nan if dead is None else float(dead.limit),
        dead_time_flagged=False if dead is None else bool(dead.flagged), flags=tuple(flags))
