"""qrspec: single-particle photon-counting spectroscopy.

Read PicoQuant TTTR files, compute intensity trajectories, time-gated pulsed g2, sliced decays,
exciton/biexciton lifetimes and invert the charging-associated Auger model for n_c(t) and
tau_A(t).

The public names are loaded lazily so that ``import qrspec`` stays fast (numba, scipy and h5py
are imported only when a function that needs them is first used).
"""

from __future__ import annotations

import importlib
import logging

from qrspec.errors import QrspecError, TTTRFormatError  # light, no numerics

# A library never prints: without the application configuring logging, qrspec's warnings go
# nowhere (they are in the results as flags); the CLI sets up its own handler.
logging.getLogger("qrspec").addHandler(logging.NullHandler())

# public name -> module that defines it
_LAZY = {
    "Photons": "qrspec.photons",
    "Markers": "qrspec.photons",
    "read_tttr": "qrspec.io",
    "iter_tttr": "qrspec.io",
    "read_header": "qrspec.io",
    "write_ptu": "qrspec.io",
    "intensity_trace": "qrspec.stats.trace",
    "decay_histogram": "qrspec.stats.decay",
    "sliced_decays": "qrspec.stats.decay",
    "flid": "qrspec.stats.decay",
    "g2": "qrspec.stats.correlation",
    "g2_peaks": "qrspec.stats.correlation",
    "g2_gate_scan": "qrspec.stats.correlation",
    "find_comb_period_ns": "qrspec.stats.correlation",
    "photon_pairs": "qrspec.stats.pairs",
    "fit_decay": "qrspec.fitting.lifetime",
    "LifetimeFit": "qrspec.fitting.lifetime",
    "find_change_points": "qrspec.levels",
    "cluster_levels": "qrspec.levels",
    "label_levels": "qrspec.levels",
    "threshold_levels": "qrspec.levels",
    "Segments": "qrspec.levels",
    "ChargeModelConfig": "qrspec.charging",
    "infer_charging": "qrspec.charging",
    "charging_trajectory": "qrspec.charging",
    "AnalysisConfig": "qrspec.analysis.config",
    "analyze_file": "qrspec.analysis.pipeline",
    "analyze_photons": "qrspec.analysis.pipeline",
    "ParticleAnalysis": "qrspec.analysis.particle",
    "run_batch": "qrspec.app.batch",
    "read_results": "qrspec.store.hdf5",
    "read_particle": "qrspec.store.hdf5",
    "write_particle_file": "qrspec.store.hdf5",
    "simulate_particle": "qrspec.simulate",
}

__all__ = ["__version__", "QrspecError", "TTTRFormatError", *sorted(_LAZY)]


def _package_version() -> str:
    # importlib.metadata imports email & co. (~50 ms): only when the version is asked for
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qrspec")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = globals()["__version__"] = _package_version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qrspec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
