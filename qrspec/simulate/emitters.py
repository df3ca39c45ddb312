"""Several independent emitters in one focus: one photon stream, one detection chain.

:func:`simulate_emitters` is the two-rod (or n-rod) counterpart of
:func:`~qrspec.simulate.simulate_particle`: every emitter has its own charge process, state
table, excitation <N> and collection efficiency (its own :class:`SimulationConfig`); their
photons are merged before the detection chain of the first config (dark counts, background,
dead time, afterpulsing, crosstalk and TDC quantisation act once on the summed stream, as on a
real setup). A pair of rods gives ``g2(0) = (s1 r^2 + s2 + 2 r) / (1 + r)^2`` with ``s_i`` each
rod's own g2(0) and ``r`` their brightness ratio (checked in ``tests/test_simulate.py``).

Simplification: the laser jitter of a pulse is drawn per emitter (the same pulse should shift
both rods together); at the default 50 ps FWHM this is far below every time scale analysed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.simulate.cascade import emitter_photons
from qrspec.simulate.charge import ChargeIntervals, simulate_charge_intervals
from qrspec.simulate.config import SimulationConfig
from qrspec.simulate.particle import _resolve_table, record_events

__all__ = ["SimulatedEmitters", "simulate_emitters"]

logger = logging.getLogger(__name__)

# fields that must agree between the emitters' configs (one laser, one TDC)
_SHARED = ("duration_s", "sync_rate_hz", "laser_fwhm_ns", "resolution_s", "record_type",
           "t2_resolution_s")


@dataclass(frozen=True, eq=False)
class SimulatedEmitters:
    """Photons of several emitters in one focus, with per-photon truth.

    Attributes
    ----------
    photons : Photons
        The recorded stream.
    emitter : ndarray of int8
        Source emitter of each photon (index into ``configs``); -1 for dark counts,
        background, afterpulses and crosstalk.
    origin, charge_n, pulse, emission_ns : ndarray
        As in :class:`~qrspec.simulate.GroundTruth` (charge of the source emitter).
    charges : tuple of ChargeIntervals
        Each emitter's charge process.
    state_tables : tuple of StateTable
        Each emitter's lifetimes and QYs.
    configs : tuple of SimulationConfig
        The emitters' configs; the detection chain is that of ``configs[0]``.
    seed : int
    """

    photons: Photons
    emitter: np.ndarray
    origin: np.ndarray
    charge_n: np.ndarray
    pulse: np.ndarray
    emission_ns: np.ndarray
    charges: tuple
    state_tables: tuple
    configs: tuple
    seed: int

    @property
    def n_emitters(self) -> int:
        """Number of emitters."""
        return len(self.configs)

    def charge_state_at(self, time_s) -> np.ndarray:
        """Charge number of every emitter at the given times, shape ``(n_emitters, n)``."""
        return np.stack([c.at(time_s) for c in self.charges])


def _check_shared(configs: Sequence[SimulationConfig]) -> None:
    first = configs[0]
    for i, cfg in enumerate(configs[1:], start=1):
        for name in _SHARED:
            if getattr(cfg, name) != getattr(first, name):
                raise QrspecError(f"configs[{i}].{name}={getattr(cfg, name)!r} differs from "
                                  f"configs[0].{name}={getattr(first, name)!r}: emitters in "
                                  "one focus share the laser and the TDC")
        a = dataclasses.replace(cfg.detection, eta_collection=first.detection.eta_collection)
        if a != first.detection:
            raise QrspecError(f"configs[{i}].detection differs from configs[0].detection in "
                              "more than eta_collection: emitters in one focus share the "
                              "detectors")


def simulate_emitters(configs: Sequence[SimulationConfig], seed: int, *,
                      state_tables=None) -> SimulatedEmitters:
    """Simulate independent emitters sharing one focus and one detection chain.

    Parameters
    ----------
    configs : sequence of SimulationConfig
        One config per emitter (>= 1). They must share the laser, TDC and detectors (all of
        ``detection`` except ``eta_collection``, which sets each emitter's brightness).
    seed : int
        Seed of ``numpy.random.default_rng``; deterministic for (configs, seed).
    state_tables : sequence, optional
        Per emitter a StateTable, a callable ``n_max -> StateTable`` or None (the config's).

    Returns
    -------
    SimulatedEmitters
    """
    configs = tuple(configs)
    if not configs or not all(isinstance(c, SimulationConfig) for c in configs):
        raise QrspecError(f"configs={configs!r} must be a non-empty sequence of "
                          "SimulationConfig")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise QrspecError(f"seed={seed!r} must be an integer >= 0")
    if state_tables is None:
        state_tables = (None,) * len(configs)
    state_tables = tuple(state_tables)
    if len(state_tables) != len(configs):
        raise QrspecError(f"state_tables has {len(state_tables)} entries for "
                          f"{len(configs)} configs")
    _check_shared(configs)
    rng = np.random.default_rng(int(seed))
    duration = configs[0].n_pulses / configs[0].sync_rate_hz
    charges: list[ChargeIntervals] = []
    tables, ems = [], []
    for cfg, st in zip(configs, state_tables, strict=True):
        charge = simulate_charge_intervals(cfg.charge, duration, rng)
        table, _ = _resolve_table(cfg, charge.n_max, st)
        ems.append(emitter_photons(cfg, charge, table, rng))
        charges.append(charge)
        tables.append(table)
    rec = record_events(configs[0], ems, rng)
    logger.debug("simulated %d photons of %d emitters", rec.photons.size, len(configs))
    return SimulatedEmitters(photons=rec.photons, emitter=rec.emitter, origin=rec.origin,
                             charge_n=rec.charge_n, pulse=rec.pulse,
                             emission_ns=rec.emission_ns, charges=tuple(charges),
                             state_tables=tuple(tables), configs=configs, seed=int(seed))
