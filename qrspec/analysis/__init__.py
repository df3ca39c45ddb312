"""Per-particle analysis of photons into typed results.

:class:`AnalysisConfig` and the pipeline that turns one particle's photons into typed results.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "AnalysisConfig": "qrspec.analysis.config",
    "ChargeModelParams": "qrspec.analysis.config",
    "analyze_file": "qrspec.analysis.pipeline",
    "analyze_photons": "qrspec.analysis.pipeline",
    "ParticleAnalysis": "qrspec.analysis.particle",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qrspec.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
