"""Intensity levels: change points, level clustering, thresholding and state labels.

Pipeline::

    cps = find_change_points(photons, alpha=0.05, confidence=0.69)   # Watkins & Yang CPA
    levels = cluster_levels(cps, max_levels=5)                        # AHC + EM + BIC
    evidence = level_evidence(photons, levels)                        # tau_X, tau_XX, shape
    labels = label_levels(levels, evidence=evidence)                  # neutral/charged/trap/off
    windows = labels.segments.windows(label="charged")                # (start_s, stop_s) rows
    verdict = emitter_verdict(photons, labels)                        # single / not / undecid.
    stats = blinking_statistics(labels.segments)                      # on/off dwell-time laws

``threshold_levels`` is the binned threshold/hysteresis alternative. The names are loaded lazily
(numba and scipy are imported only when a function is first called).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Segments": "qrspec.levels.segments",
    "ChangePoints": "qrspec.levels.changepoint",
    "find_change_points": "qrspec.levels.changepoint",
    "available_alphas": "qrspec.levels.changepoint",
    "available_confidences": "qrspec.levels.changepoint",
    "LevelClustering": "qrspec.levels.clustering",
    "cluster_levels": "qrspec.levels.clustering",
    "ThresholdLevels": "qrspec.levels.threshold",
    "threshold_levels": "qrspec.levels.threshold",
    "fit_poisson_mixture": "qrspec.levels.threshold",
    "LevelEvidence": "qrspec.levels.evidence",
    "level_evidence": "qrspec.levels.evidence",
    "ParticleVerdict": "qrspec.levels.emitter",
    "emitter_verdict": "qrspec.levels.emitter",
    "LabelRules": "qrspec.levels.labels",
    "LevelLabels": "qrspec.levels.labels",
    "label_levels": "qrspec.levels.labels",
    "mean_delay_lifetime": "qrspec.levels.labels",
    "BlinkingStatistics": "qrspec.levels.dwell",
    "DwellSequence": "qrspec.levels.dwell",
    "blinking_statistics": "qrspec.levels.dwell",
    "dwell_sequence": "qrspec.levels.dwell",
    "pooled_dwell_law": "qrspec.levels.dwell",
    "DwellLaw": "qrspec.levels.dwell_laws",
    "fit_dwell_law": "qrspec.levels.dwell_laws",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qrspec.levels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
