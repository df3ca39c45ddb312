"""Fitting layer: lifetime fits with IRF reconvolution, biexciton lifetimes, g2 interpretation.

Importing this package imports numpy and numba (not at CLI start-up: CLI commands import it inside
their function); kernels compile on first use and are cached.
"""

from __future__ import annotations

from qrspec.fitting.biexciton import (
    TauXXComparison,
    TauXXEstimate,
    accidental_first_photon_counts,
    cascade_tau_xx,
    compare_tau_xx,
    gate_scan_tau_xx,
    heralded_tau_x,
    heralded_tau_xx,
    nested_gate_covariance,
)
from qrspec.fitting.g2_analysis import (
    EmitterVerdict,
    G2Zero,
    QYRatioEstimate,
    brightness_ratio_for_g2,
    g2_from_peak_counts,
    g2_gated_cascade,
    g2_moments,
    g2_zero_cascade,
    qy_ratio_from_g2,
    single_emitter_verdict,
    two_emitter_g2,
)
from qrspec.fitting.irf import IRFStats, ModelIRF, fit_model_irf, irf_stats, normalize_irf
from qrspec.fitting.lifetime import LifetimeFit, fit_decay, fit_decay_global, fit_decays

__all__ = [
    "EmitterVerdict", "G2Zero", "IRFStats", "LifetimeFit", "ModelIRF", "QYRatioEstimate",
    "TauXXComparison", "TauXXEstimate", "accidental_first_photon_counts",
    "brightness_ratio_for_g2", "cascade_tau_xx", "compare_tau_xx", "fit_decay", "fit_decay_global",
    "fit_decays",
    "fit_model_irf", "g2_from_peak_counts", "g2_gated_cascade", "g2_moments", "g2_zero_cascade",
    "gate_scan_tau_xx", "heralded_tau_x", "heralded_tau_xx", "irf_stats",
    "nested_gate_covariance", "normalize_irf", "qy_ratio_from_g2", "single_emitter_verdict",
    "two_emitter_g2",
]
