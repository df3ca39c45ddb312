"""Charging-associated Auger model: forward, inverse, n_c(t) trajectories and thresholds.

Modules: :mod:`~qrspec.charging.config` (``ChargeModelConfig``), :mod:`~qrspec.charging.engine`
(general level-filling enumeration, the reference), :mod:`~qrspec.charging.forward` (closed
forms), :mod:`~qrspec.charging.inverse` (``infer_charging``), :mod:`~qrspec.charging.trajectory`
(``charging_trajectory``) and :mod:`~qrspec.charging.thresholds` (gain / lasing thresholds,
fluence, L-L and TA thresholds). See docs/charging_model.md. Names load lazily (scipy is
imported only when a fit or threshold is computed). The forward function is not re-exported
here because it shares its name with the module :mod:`qrspec.charging.forward` (importing the
module would shadow it): use ``from qrspec.charging.forward import forward`` (the config
module does not import the forward module: no import circle).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ChargeModelConfig": "qrspec.charging.config",
    "ForwardResult": "qrspec.charging.forward",
    "state_table": "qrspec.charging.forward",
    "expected_g2_zero": "qrspec.charging.forward",
    "state_rates": "qrspec.charging.engine",
    "NeutralReference": "qrspec.charging.inverse",
    "ChargedObservation": "qrspec.charging.inverse",
    "ChargingFit": "qrspec.charging.inverse",
    "infer_charging": "qrspec.charging.inverse",
    "ChargedSegment": "qrspec.charging.trajectory",
    "ChargingTrajectory": "qrspec.charging.trajectory",
    "charging_trajectory": "qrspec.charging.trajectory",
    "gain_threshold": "qrspec.charging.thresholds",
    "mean_gain": "qrspec.charging.thresholds",
    "lasing_threshold": "qrspec.charging.thresholds",
    "threshold_map": "qrspec.charging.thresholds",
    "ThresholdMap": "qrspec.charging.thresholds",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qrspec.charging' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
