"""Monte-Carlo simulator of a single quantum rod's photon stream, with ground truth.

Quick start::

    from qrspec.simulate import preset, simulate_particle, write_particle
    sim = simulate_particle(preset("undoped", duration_s=60.0), seed=1)
    write_particle(sim, "rod.ptu")          # rod.ptu + rod.truth.npz

See :mod:`qrspec.simulate.cascade` and :mod:`qrspec.simulate.particle` for the algorithm and
where it departs from methods.md §6, and :mod:`qrspec.simulate.theory` for the closed forms the
tests compare against.
"""

from qrspec.simulate.charge import ChargeIntervals, simulate_charge_intervals
from qrspec.simulate.config import (
    PRESETS,
    ChargeConfig,
    DetectionConfig,
    EmitterConfig,
    SimulationConfig,
    preset,
)
from qrspec.simulate.emitters import SimulatedEmitters, simulate_emitters
from qrspec.simulate.particle import ORIGINS, GroundTruth, SimulatedParticle, simulate_particle
from qrspec.simulate.population import PopulationSpread, population_configs, simulate_population
from qrspec.simulate.sidecar import read_truth, sidecar_path, write_particle

__all__ = [
    "ChargeConfig",
    "ChargeIntervals",
    "DetectionConfig",
    "EmitterConfig",
    "GroundTruth",
    "ORIGINS",
    "PRESETS",
    "PopulationSpread",
    "SimulatedEmitters",
    "SimulatedParticle",
    "SimulationConfig",
    "population_configs",
    "preset",
    "read_truth",
    "sidecar_path",
    "simulate_charge_intervals",
    "simulate_emitters",
    "simulate_particle",
    "simulate_population",
    "write_particle",
]
