"""Stage: intensity levels (change points, clustering) and their labels from physics.

With nanotimes and two detectors each level's exciton lifetime (late tail), heralded biexciton
lifetime, their ratio and the decay shape decide neutral / charged / trap
(:func:`qrspec.levels.level_evidence`, :func:`qrspec.levels.label_levels`; rules, flags and
measured rates in ``docs/levels.md``); with one detector only the lifetime (no pair ratio: a
neutral label stays unconfirmed); without nanotimes (T2) only the intensity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.levels.segments import Segments
from qrspec.photons import Photons

__all__ = ["Levels", "find_levels", "find_labelled_levels"]


@dataclass(frozen=True, eq=False)
class Levels:
    """Change points, segments and the labelled levels of one particle.

    Attributes
    ----------
    segments : Segments
        Segments between change points with their level and label.
    change_points_s : ndarray of float64
        Change-point times.
    change_points_ci_s : ndarray of float64, shape (n, 2)
        Confidence region of each change point.
    cpa_alpha, cpa_confidence : float
        False-positive rate per test and confidence level used.
    intensity_cps : ndarray of float64
        Intensity of each level.
    tau_ns : ndarray of float64
        Level exciton lifetime (late-tail fit with two detectors, tail fit with one; NaN
        without nanotimes or photons).
    rho_rad : ndarray of float64
        Radiative-rate ratio of each level to the neutral level.
    label : ndarray of str
        Label of each level.
    tau_err_ns : ndarray of float64
        Standard error of ``tau_ns``.
    tau_xx_ns, tau_xx_err_ns : ndarray of float64
        Heralded biexciton lifetime of each level and its error (NaN: < 20 pairs, one
        detector, no nanotimes).
    ratio, ratio_err : ndarray of float64
        ``tau_ns / tau_xx_ns`` (neutral >= 2.9, charged below; ``docs/levels.md``) and its error.
    n_pairs : ndarray of int64
        Same-period two-detector pairs in each level.
    confidence : ndarray of float64
        Probability of each level's label under the rule that decided it (NaN where none
        applies).
    mixed : ndarray of bool
        Levels whose late-tail decay needs two exciton lifetimes (merged states).
    notes : tuple of str
        Reason or warning per level ("" when none).
    neutral_level : int
        Index of the neutral level (-1: none).
    frac_time_neutral : float
        Fraction of the segments' time labelled neutral (NaN without segments).
    neutral_confidence : float
        Confidence of the neutral label (NaN without a neutral level or without pairs).
    flags : tuple of str
        Particle-level label flags (``no_neutral``, ``neutral_undecided``,
        ``neutral_unconfirmed``, ``mixed_states``, ``user_override``; false-alarm rates in
        ``docs/levels.md``).
    """

    segments: Segments
    change_points_s: np.ndarray
    change_points_ci_s: np.ndarray
    cpa_alpha: float
    cpa_confidence: float
    intensity_cps: np.ndarray
    tau_ns: np.ndarray
    rho_rad: np.ndarray
    label: np.ndarray
    tau_err_ns: np.ndarray | None = None
    tau_xx_ns: np.ndarray | None = None
    tau_xx_err_ns: np.ndarray | None = None
    ratio: np.ndarray | None = None
    ratio_err: np.ndarray | None = None
    n_pairs: np.ndarray | None = None
    confidence: np.ndarray | None = None
    mixed: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    neutral_level: int = -1
    frac_time_neutral: float = math.nan
    neutral_confidence: float = math.nan
    flags: tuple[str, ...] = ()


def _background_cps(photons: Photons, alignment: Alignment, detectors) -> float:
    """Flat background (dark counts, stray light) of the analysed detectors, counts/s.

    Estimated from the pre-rise window of the particle's full-resolution decay.
    """
    from qrspec.stats.decay import background_counts, decay_histogram

    dec = decay_histogram(photons, detectors=list(detectors), offsets_ns=alignment.offsets_ns)
    dur = photons.duration_s
    bg = float(np.sum(background_counts(dec)))
    return bg / dur if dur > 0 and np.isfinite(bg) else 0.0


def find_labelled_levels(photons: Photons, alignment: Alignment, config: AnalysisConfig,
                         pairs=None):
    """Change points, levels and their physics labels.

    Also the :class:`qrspec.levels.LevelLabels` the single-emitter verdict needs.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    alignment : Alignment
        Detector offsets for the per-level decays.
    config : AnalysisConfig
        Uses the ``cpa_*`` fields, ``max_levels``, ``min_decay_photons``, ``fit_method``,
        ``detectors``, ``neutral_tau_x_ns`` and ``label_overrides``.
    pairs : qrspec.stats.pairs.PhotonPairs, optional
        Same-period pairs of all photons (two detectors with nanotimes; the states reuse them).

    Returns
    -------
    tuple of (Levels, LevelLabels)
    """
    from qrspec.analysis.decay_fits import fit_bin_ns, fit_x, merge_rows
    from qrspec.levels import cluster_levels, find_change_points, label_levels, level_evidence
    from qrspec.stats.decay import decay_histogram

    cp = find_change_points(photons, alpha=config.cpa_alpha, confidence=config.cpa_confidence,
                            window_photons=config.cpa_window_photons,
                            overlap_photons=config.cpa_overlap_photons,
                            refine=config.cpa_refine, max_sweeps=config.cpa_max_sweeps)
    clus = cluster_levels(cp.segments(), max_levels=config.max_levels)
    common = dict(neutral_tau_x_ns=config.neutral_tau_x_ns,
                  overrides=config.label_override_map())
    if photons.is_t3 and pairs is not None and len(config.detectors) == 2:
        ev = level_evidence(photons, clus, detectors=config.detectors,
                            offsets_ns=alignment.offsets_ns, pairs=pairs,
                            bin_ns=fit_bin_ns(photons))
        labels = label_levels(clus, evidence=ev,
                              background_cps=_background_cps(photons, alignment,
                                                             config.detectors), **common)
    elif photons.is_t3:
        def lifetime_of(windows):  # one detector: a mono-exponential tail fit per level
            sub = photons.select_windows(merge_rows(np.asarray(windows)))
            d = decay_histogram(sub, detectors=config.detectors,
                                offsets_ns=alignment.offsets_ns, bin_ns=fit_bin_ns(photons))
            fit = fit_x(d, config.min_decay_photons, models=("mono",), method=config.fit_method)
            return fit.tau_ns, fit.tau_err_ns

        labels = label_levels(clus, lifetimes=lifetime_of,
                              background_cps=_background_cps(photons, alignment,
                                                             config.detectors), **common)
    else:  # T2 without sync: levels by intensity only (lifetimes NaN)
        labels = label_levels(clus, lifetimes=np.full(clus.n_levels, np.nan), **common)
    ci = np.column_stack([cp.ci_start_s, cp.ci_stop_s]) if cp.size else np.zeros((0, 2))
    g = labels.label.size
    nan = np.full(g, np.nan)

    def arr(v):
        return nan.copy() if v is None else np.asarray(v, np.float64)

    ev = labels.evidence
    k0 = labels.neutral_level
    conf = arr(labels.confidence)
    levels = Levels(
        segments=labels.segments, change_points_s=cp.time_s, change_points_ci_s=ci,
        cpa_alpha=float(config.cpa_alpha), cpa_confidence=float(config.cpa_confidence),
        intensity_cps=labels.intensity_cps, tau_ns=labels.tau_ns, rho_rad=labels.rho_rad,
        label=np.asarray(labels.label), tau_err_ns=arr(labels.tau_err_ns),
        tau_xx_ns=arr(labels.tau_xx_ns), tau_xx_err_ns=arr(labels.tau_xx_err_ns),
        ratio=arr(labels.ratio), ratio_err=arr(labels.ratio_err),
        n_pairs=np.asarray(ev.n_pairs, np.int64) if ev is not None else np.zeros(g, np.int64),
        confidence=conf,
        mixed=np.zeros(g, bool) if labels.mixed is None else np.asarray(labels.mixed, bool),
        notes=tuple(str(n) for n in labels.notes), neutral_level=int(k0),
        frac_time_neutral=labels.time_fraction("neutral"),
        neutral_confidence=float(conf[k0]) if k0 >= 0 else math.nan,
        flags=tuple(labels.flags))
    return levels, labels


def find_levels(photons: Photons, alignment: Alignment, config: AnalysisConfig,
                pairs=None) -> Levels:
    """Change points, levels and labels.

    As :func:`find_labelled_levels`, without the :class:`~qrspec.levels.LevelLabels`.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    alignment : Alignment
        Detector offsets for the per-level decays.
    config : AnalysisConfig
        Analysis parameters.
    pairs : qrspec.stats.pairs.PhotonPairs, optional
        Same-period pairs of all photons.

    Returns
    -------
    Levels
    """
    return find_labelled_levels(photons, alignment, config, pairs)[0]
