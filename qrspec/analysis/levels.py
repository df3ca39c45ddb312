"""Stage: intensity levels (change points, clustering, labels neutral / charged / trap / off)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.levels.segments import Segments
from qrspec.photons import Photons

__all__ = ["Levels", "find_levels"]


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
        Level lifetime (mono-exponential tail fit, used for labelling).
    rho_rad : ndarray of float64
        Radiative-rate ratio of each level to the neutral level.
    label : ndarray of str
        Label of each level.
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


def find_levels(photons: Photons, alignment: Alignment, config: AnalysisConfig) -> Levels:
    """Change-point analysis, level clustering and labelling by intensity and lifetime.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    alignment : Alignment
        Detector offsets for the per-level decays (T2 without nanotimes: no lifetimes).
    config : AnalysisConfig
        Uses ``cpa_alpha``, ``cpa_confidence``, ``max_levels``, ``min_decay_photons``,
        ``fit_method`` and ``detectors``.

    Returns
    -------
    Levels
    """
    from qrspec.analysis.decay_fits import fit_bin_ns, fit_x, merge_rows
    from qrspec.levels import cluster_levels, find_change_points, label_levels
    from qrspec.stats.decay import decay_histogram

    cp = find_change_points(photons, alpha=config.cpa_alpha, confidence=config.cpa_confidence)
    clus = cluster_levels(cp.segments(), max_levels=config.max_levels)

    def lifetime_of(windows):
        sub = photons.select_windows(merge_rows(np.asarray(windows)))
        d = decay_histogram(sub, detectors=config.detectors, offsets_ns=alignment.offsets_ns,
                            bin_ns=fit_bin_ns(photons))
        # labelling only compares levels: one mono-exponential tail fit per level
        fit = fit_x(d, config.min_decay_photons, models=("mono",), method=config.fit_method)
        return fit.tau_ns, fit.tau_err_ns

    # T2 data without sync have no nanotimes: levels by intensity only (lifetimes NaN)
    labels = label_levels(clus, lifetimes=lifetime_of if photons.is_t3 else
                          np.full(clus.n_levels, np.nan))
    ci = np.column_stack([cp.ci_start_s, cp.ci_stop_s]) if cp.size else np.zeros((0, 2))
    return Levels(segments=labels.segments, change_points_s=cp.time_s, change_points_ci_s=ci,
                  cpa_alpha=float(config.cpa_alpha), cpa_confidence=float(config.cpa_confidence),
                  intensity_cps=labels.intensity_cps, tau_ns=labels.tau_ns,
                  rho_rad=labels.rho_rad, label=np.asarray(labels.label))
