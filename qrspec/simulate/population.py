"""A sample population: many particles with particle-to-particle spread (for simulate-batch).

Each particle's config is the base config with multiplicative log-normal factors (mean 1,
coefficient of variation ``*_cv``) on brightness (``eta_collection``), excitation
(``mean_excitations``), lifetimes (``tau_x0_ns``, or the whole explicit table), the neutral
Auger lifetimes (``tau_a_xx0_ns`` or the trion ones) and charging
(charge numbers, rounded, and the discharge rate and dwell times of the charge process).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.simulate.config import SimulationConfig, _require

__all__ = ["PopulationSpread", "population_configs", "simulate_population"]


@dataclass(frozen=True)
class PopulationSpread:
    """Coefficients of variation of the particle-to-particle spread (0 = identical)."""

    brightness_cv: float = 0.3
    excitation_cv: float = 0.1
    tau_cv: float = 0.15
    auger_cv: float = 0.2
    charging_cv: float = 0.3

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            _require(np.isfinite(v) and 0 <= v <= 3, f.name, v, "must lie in [0, 3]")


def _lognormal(rng, cv: float) -> float:
    """A mean-1 log-normal factor with coefficient of variation ``cv`` (1.0 at cv = 0)."""
    s = np.sqrt(np.log1p(cv * cv))
    return float(np.exp(rng.normal(-0.5 * s * s, s))) if cv > 0 else 1.0


def population_configs(base: SimulationConfig, n_particles: int, seed: int,
                       spread: PopulationSpread | None = None
                       ) -> list[tuple[SimulationConfig, int]]:
    """Per-particle (config, seed) pairs of a population drawn around ``base``.

    Deterministic for ``seed``; particle i's config is named ``"<base.name>-<i:04d>"``.
    """
    if not isinstance(base, SimulationConfig):
        raise QrspecError(f"base={base!r} must be a SimulationConfig")
    if isinstance(n_particles, bool) or not isinstance(n_particles, int | np.integer) \
            or n_particles < 1:
        raise QrspecError(f"n_particles={n_particles!r} must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise QrspecError(f"seed={seed!r} must be an integer >= 0")
    spread = spread or PopulationSpread()
    rng = np.random.default_rng(int(seed))
    seeds = np.random.SeedSequence(int(seed)).generate_state(int(n_particles), np.uint32)
    out = []
    for i in range(int(n_particles)):
        em = base.emitter
        f_tau = _lognormal(rng, spread.tau_cv)
        f_aug = _lognormal(rng, spread.auger_cv)
        if em.tau_ns is not None:
            em = dataclasses.replace(em, tau_ns=tuple(tuple(t * f_tau for t in row)
                                                      for row in em.tau_ns))
        else:
            auger = {key: getattr(em, key) * f_aug
                     for key in ("tau_a_xx0_ns", "tau_a_xminus_ns", "tau_a_xplus_ns")
                     if getattr(em, key) is not None}
            em = dataclasses.replace(em, tau_x0_ns=em.tau_x0_ns * f_tau, **auger)
        det = dataclasses.replace(
            base.detection,
            eta_collection=min(1.0, base.detection.eta_collection
                               * _lognormal(rng, spread.brightness_cv)))
        ch = base.charge
        f_n = _lognormal(rng, spread.charging_cv)

        def scale_n(n, f=f_n):
            return 0 if n == 0 else max(1, int(round(n * f)))

        n_charged, n_initial = scale_n(ch.n_charged), scale_n(ch.n_initial)
        ch = dataclasses.replace(
            ch, n_charged=n_charged, n_initial=n_initial,
            n_max=max(ch.n_max, n_charged, n_initial),
            discharge_rate_hz=ch.discharge_rate_hz * _lognormal(rng, spread.charging_cv),
            charged_dwell_s=ch.charged_dwell_s * _lognormal(rng, spread.charging_cv),
            neutral_dwell_s=ch.neutral_dwell_s * _lognormal(rng, spread.charging_cv))
        cfg = dataclasses.replace(
            base, emitter=em, detection=det, charge=ch, name=f"{base.name}-{i:04d}",
            mean_excitations=base.mean_excitations * _lognormal(rng, spread.excitation_cv))
        out.append((cfg, int(seeds[i])))
    return out


def simulate_population(base: SimulationConfig, n_particles: int, seed: int,
                        spread: PopulationSpread | None = None, *,
                        state_table=None) -> Iterator:
    """Yield one :class:`~qrspec.simulate.SimulatedParticle` per particle of the population.

    ``state_table`` (a ``StateTable`` or a callable ``n_max -> StateTable``) is passed to every
    :func:`~qrspec.simulate.simulate_particle` call; by default each particle's own
    ``config.emitter`` (with its spread) is used.
    """
    from qrspec.simulate.particle import simulate_particle

    for cfg, s in population_configs(base, n_particles, seed, spread):
        yield simulate_particle(cfg, s, state_table=state_table)
