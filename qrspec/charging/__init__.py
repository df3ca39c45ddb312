"""Charging-associated Auger model: forward, inverse, n_c(t) trajectories and thresholds.

Modules: :mod:`~qrspec.charging.config` (``ChargeModelConfig``, the one emitter / charge-model
parameter set), :mod:`~qrspec.charging.engine` (general level-filling enumeration, the
reference), :mod:`~qrspec.charging.forward` (closed forms), :mod:`~qrspec.charging.neutral`
(``NeutralReference`` with its source and covariance, ``neutral_rates``,
``pool_neutral_references``), :mod:`~qrspec.charging.inverse` (``ChargedObservation``,
``infer_charging`` for one window), :mod:`~qrspec.charging.particle` (``combine_windows``: the
particle's n_c, tau_A,XX^{nc-} and tau_A,XX0 from one fit of all windows),
:mod:`~qrspec.charging.trajectory` (``charging_trajectory``), :mod:`~qrspec.charging.heralded`
(what a heralded tau_XX measures at finite <N>: ``heralded_tau_xx_apparent``,
``true_tau_xx0``), :mod:`~qrspec.charging.states`
(``StateTable``) and :mod:`~qrspec.charging.thresholds` (gain / lasing thresholds, fluence, L-L
and TA thresholds). See docs/charging_model.md. Names load lazily (scipy is
imported only when a fit or threshold is computed). The forward function is not re-exported
here because it shares its name with the module :mod:`qrspec.charging.forward` (importing the
module would shadow it): use ``from qrspec.charging.forward import forward``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ChargeModelConfig": "qrspec.charging.config",
    "ForwardResult": "qrspec.charging.forward",
    "state_table": "qrspec.charging.forward",
    "state_rates": "qrspec.charging.engine",
    "StateTable": "qrspec.charging.states",
    "NeutralReference": "qrspec.charging.neutral",
    "NeutralRates": "qrspec.charging.neutral",
    "neutral_rates": "qrspec.charging.neutral",
    "pool_neutral_references": "qrspec.charging.neutral",
    "ChargedObservation": "qrspec.charging.inverse",
    "ChargingFit": "qrspec.charging.inverse",
    "infer_charging": "qrspec.charging.inverse",
    "UNUSABLE_FLAGS": "qrspec.charging.inverse",
    "ParticleCharging": "qrspec.charging.particle",
    "combine_windows": "qrspec.charging.particle",
    "heralded_tau_xx_apparent": "qrspec.charging.heralded",
    "true_tau_xx0": "qrspec.charging.heralded",
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
