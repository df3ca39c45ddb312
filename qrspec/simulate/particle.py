"""Simulate one particle: charge process -> cascade -> detection chain -> TTTR photons + truth.

Detection chain (methods.md §6.4, with these changes):

* Dark counts (uniform) and background (flat or IRF-shaped) are added per detector.
* Dead time, afterpulsing and crosstalk are applied in *one* sequential pass over the merged,
  time-sorted events of both detectors (:func:`qrspec.simulate._kernels.detect_events`).
  methods.md applies dead time, then draws afterpulses from the accepted events and re-applies
  the dead time; in that two-pass scheme afterpulses never spawn afterpulses, and a photon
  removed by the second pass (blocked by an earlier afterpulse) keeps the afterpulse it
  spawned in the first pass. The single pass, in which every recorded event (photon, dark
  count, afterpulse, crosstalk) blocks its detector and may spawn further events, is exact for
  a non-paralysable detector.
* The afterpulse delay is counted from the end of the dead time (``dead + Exp(tau)``), so
  ``afterpulse_prob`` is the probability actually seen (methods.md's ``Exp(0.1 us)`` from the
  photon would lose a fraction ``1 - exp(-dead/tau)`` inside the dead time).
* Quantisation keeps the sync index and the in-period time apart (integer + float), so a
  long run never loses TCSPC precision to float rounding of the absolute time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qrspec.charging.states import StateTable
from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.simulate.cascade import emitter_photons
from qrspec.simulate.charge import ChargeIntervals, simulate_charge_intervals
from qrspec.simulate.config import T3_RECORD_TYPES, SimulationConfig

__all__ = ["GroundTruth", "ORIGINS", "SimulatedParticle", "simulate_particle", "quantise"]

logger = logging.getLogger(__name__)

#: per-photon origin codes (index = code); X/XX/XXX codes equal the cascade level m
ORIGINS = ("dark", "X", "XX", "XXX", "background", "afterpulse", "crosstalk")
ORIGIN_CODE = {name: i for i, name in enumerate(ORIGINS)}


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """What really happened, aligned photon by photon with ``SimulatedParticle.photons``.

    Attributes
    ----------
    charge : ChargeIntervals
        The charge-state intervals (t_start_s, t_stop_s, n).
    state_table : StateTable
        Lifetimes and QYs used for every charge state.
    origin : ndarray of uint8
        Index into :data:`ORIGINS` ("dark", "X", "XX", "XXX", "background", "afterpulse",
        "crosstalk").
    charge_n : ndarray of int16
        Charge state during the source pulse (-1 for non-emitter events).
    pulse : ndarray of int64
        Source laser pulse (-1 for non-emitter events).
    emission_ns : ndarray of float64
        Emission time after the excitation, without jitter (NaN for non-emitter events).
    arrival_sync : ndarray of int64
        Sync period of the (continuous) arrival time.
    arrival_ns : ndarray of float64
        Continuous arrival time after that sync, before TCSPC quantisation.
    parent : ndarray of int64
        For afterpulses and crosstalk: index of the photon that caused it; else -1.
    """

    charge: ChargeIntervals
    state_table: StateTable
    origin: np.ndarray
    charge_n: np.ndarray
    pulse: np.ndarray
    emission_ns: np.ndarray
    arrival_sync: np.ndarray
    arrival_ns: np.ndarray
    parent: np.ndarray

    def counts_by_origin(self) -> dict[str, int]:
        """``{origin name: number of recorded events}``."""
        c = np.bincount(self.origin, minlength=len(ORIGINS))
        return {name: int(c[i]) for i, name in enumerate(ORIGINS)}


@dataclass(frozen=True, eq=False)
class SimulatedParticle:
    """A simulated particle: the recorded photons and the ground truth.

    Attributes
    ----------
    photons : Photons
        What the TCSPC card records (T3 or T2 as ``config.record_type``).
    truth : GroundTruth
        Per-photon origin, charge, pulse, emission time, and the charge intervals.
    config : SimulationConfig
        The configuration.
    seed : int
        The seed; ``simulate_particle(config, seed)`` reproduces the particle exactly
        (with the same state table).
    state_table_source : str
        ``"config"`` (``config.emitter``) or ``"user"`` (passed in).
    """

    photons: Photons
    truth: GroundTruth
    config: SimulationConfig
    seed: int
    state_table_source: str = "config"


StateTableSource = StateTable | Callable[[int], StateTable] | None


def _resolve_table(cfg: SimulationConfig, n_max: int, state_table: StateTableSource):
    if state_table is None:
        return cfg.emitter.state_table(n_max), "config"
    if isinstance(state_table, StateTable):
        table = state_table
    elif callable(state_table):
        table = state_table(n_max)
        if not isinstance(table, StateTable):
            raise QrspecError(f"state_table({n_max}) returned {type(table).__name__}, "
                              "expected a StateTable")
    else:
        raise QrspecError(f"state_table={state_table!r} must be a StateTable, a callable "
                          "n_max -> StateTable, or None")
    if table.n_max < n_max:
        raise QrspecError(f"state_table.n_max={table.n_max} is below the largest charge state "
                          f"reached, n={n_max}")
    return table, "user"


def _noise(cfg: SimulationConfig, rng):
    """Dark counts and background per detector: (sync, t_ns, det, origin)."""
    d = cfg.detection
    period = cfg.period_ns
    out = []
    for det in (0, 1):
        for rate, origin in ((d.dark_cps[det], "dark"), (d.bg_cps[det], "background")):
            k = int(rng.poisson(rate * cfg.n_pulses / cfg.sync_rate_hz)) if rate > 0 else 0
            sync = rng.integers(0, cfg.n_pulses, k)
            if origin == "background" and d.bg_profile == "irf":
                sig_l = cfg.laser_fwhm_ns / (2.0 * np.sqrt(2.0 * np.log(2.0)))
                t = (d.offset_ns[det] + rng.normal(0.0, 1.0, k) * np.hypot(d.irf_sigma_ns[det],
                                                                          sig_l)
                     + np.where(rng.random(k) < d.irf_tail_weight[det],
                                rng.standard_exponential(k) * d.irf_tail_ns[det], 0.0))
            else:
                t = rng.random(k) * period
            out.append((sync, t, np.full(k, det), np.full(k, ORIGIN_CODE[origin])))
    return out


def _fold(sync, t_ns, period_ns):
    """Vectorised (sync, t) -> (sync', t') with 0 <= t' < period."""
    k = np.floor(t_ns / period_ns)
    s = sync + k.astype(np.int64)
    t = t_ns - k * period_ns
    hi = t >= period_ns
    t[hi] -= period_ns
    s[hi] += 1
    lo = t < 0
    t[lo] += period_ns
    s[lo] -= 1
    return s, t


def quantise(cfg: SimulationConfig, sync, t_ns, detectors, *, record_type: str | None = None
             ) -> tuple[Photons, np.ndarray]:
    """Turn continuous (sync, t_ns) arrival times into :class:`Photons`.

    T3: ``timestamps = sync``, ``nanotimes = floor(t_ns / resolution)`` (clipped to the last
    bin of the period). T2: ``timestamps = floor((sync period + t_ns) / t2_resolution)``.

    Returns the photons and the permutation applied to the inputs (identity unless T2 rounding
    reordered two events).
    """
    record_type = record_type or cfg.record_type
    common = dict(sync_rate_hz=cfg.sync_rate_hz, record_type=record_type,
                  acquisition_s=cfg.n_pulses / cfg.sync_rate_hz)
    order = np.arange(sync.size)
    if record_type in T3_RECORD_TYPES:
        res_ns = cfg.resolution_s * 1e9
        n_bins = int(np.ceil(cfg.period_ns / res_ns - 1e-9))
        nt = np.minimum(np.floor(t_ns / res_ns).astype(np.int64), n_bins - 1)
        ph = Photons.from_arrays(sync, detectors, nt, timestamps_unit=1.0 / cfg.sync_rate_hz,
                                 nanotimes_unit=cfg.resolution_s, **common)
        return ph, order
    res_ns = cfg.t2_resolution_s * 1e9
    ticks = np.floor((sync * cfg.period_ns + t_ns) / res_ns).astype(np.int64)
    if ticks.size > 1 and np.any(np.diff(ticks) < 0):
        order = np.argsort(ticks, kind="stable")
        ticks, detectors = ticks[order], detectors[order]
    ph = Photons.from_arrays(ticks, detectors, None, timestamps_unit=cfg.t2_resolution_s,
                             **common)
    return ph, order


@dataclass(frozen=True, eq=False)
class RecordedEvents:
    """Events of one or more emitters after the shared detection chain (time order).

    ``emitter`` is the index of the source emitter (-1 for dark counts, background,
    afterpulses and crosstalk); the other arrays are as in :class:`GroundTruth`.
    """

    photons: Photons
    origin: np.ndarray
    emitter: np.ndarray
    charge_n: np.ndarray
    pulse: np.ndarray
    emission_ns: np.ndarray
    arrival_sync: np.ndarray
    arrival_ns: np.ndarray
    parent: np.ndarray


def record_events(cfg: SimulationConfig, emitters, rng) -> RecordedEvents:
    """Add dark counts and background, apply the detection chain once, quantise.

    ``emitters`` is a sequence of :class:`~qrspec.simulate.cascade.EmitterPhotons` (one per
    emitter sharing the focus); noise, dead time, afterpulsing, crosstalk and the TDC are those
    of ``cfg.detection`` and ``cfg``.
    """
    from qrspec.simulate._kernels import detect_events

    period = cfg.period_ns
    parts = [(em.pulse, em.arrival_ns, em.detector, em.level.astype(np.int64))
             for em in emitters] + _noise(cfg, rng)
    sync = np.concatenate([p[0] for p in parts])
    t_ns = np.concatenate([p[1] for p in parts])
    det = np.concatenate([p[2] for p in parts]).astype(np.int64)
    origin = np.concatenate([p[3] for p in parts]).astype(np.uint8)
    sizes = [em.pulse.size for em in emitters]
    n_em = int(sum(sizes))
    src_emitter = np.repeat(np.arange(len(emitters)), sizes)
    em_charge = np.concatenate([em.charge_n for em in emitters]) if n_em else np.zeros(0)
    em_pulse = np.concatenate([em.pulse for em in emitters]) if n_em else np.zeros(0)
    em_emission = np.concatenate([em.emission_ns for em in emitters]) if n_em else np.zeros(0)
    sync, t_ns = _fold(sync, t_ns, period)
    inside = (sync >= 0) & (sync < cfg.n_pulses)
    idx = np.flatnonzero(inside)
    # a stable argsort of the float key is ~50x faster than lexsort on nearly sorted input;
    # fall back to the exact lexsort if float rounding mis-ordered two syncs (never seen)
    order = idx[np.argsort(sync[idx] * period + t_ns[idx], kind="stable")]
    if order.size > 1 and np.any(np.diff(sync[order]) < 0):
        order = idx[np.lexsort((t_ns[idx], sync[idx]))]
    d = cfg.detection
    kernel_seed = np.uint64(rng.integers(0, 2**63 - 1, dtype=np.int64))
    o_sync, o_t, o_det, o_src, o_kind, o_par = detect_events(
        sync[order], t_ns[order], det[order], float(period), np.int64(cfg.n_pulses),
        np.asarray(d.dead_time_ns, float), bool(d.one_photon_per_sync),
        np.asarray(d.afterpulse_prob, float), np.asarray(d.afterpulse_tau_ns, float),
        float(d.crosstalk_prob), float(d.crosstalk_delay_ns), kernel_seed)
    cand = np.where(o_src >= 0, order[np.maximum(o_src, 0)], -1)
    spawned = o_src < 0
    out_origin = np.where(spawned, np.where(o_kind == 1, ORIGIN_CODE["afterpulse"],
                                            ORIGIN_CODE["crosstalk"]),
                          origin[np.maximum(cand, 0)]).astype(np.uint8)
    is_em = (cand >= 0) & (cand < n_em)
    ci = np.where(is_em, cand, 0)
    charge_n = np.where(is_em, em_charge[ci] if n_em else 0, -1).astype(np.int16)
    pulse = np.where(is_em, em_pulse[ci] if n_em else 0, -1).astype(np.int64)
    emission = np.where(is_em, em_emission[ci] if n_em else 0.0, np.nan)
    emitter = np.where(is_em, src_emitter[ci] if n_em else 0, -1).astype(np.int8)
    photons, perm = quantise(cfg, o_sync, o_t, o_det)
    parent = o_par
    if not np.array_equal(perm, np.arange(perm.size)):
        inv = np.empty_like(perm)
        inv[perm] = np.arange(perm.size)
        parent = np.where(o_par >= 0, inv[np.maximum(o_par, 0)], -1)[perm]
        out_origin, charge_n, pulse, emission, emitter = (
            a[perm] for a in (out_origin, charge_n, pulse, emission, emitter))
        o_sync, o_t = o_sync[perm], o_t[perm]
    return RecordedEvents(photons, out_origin, emitter, charge_n, pulse, emission, o_sync, o_t,
                          parent)


def simulate_particle(config: SimulationConfig, seed: int, *,
                      state_table: StateTableSource = None) -> SimulatedParticle:
    """Simulate the photon stream of one quantum rod with ground truth.

    Parameters
    ----------
    config : SimulationConfig
        What to simulate (e.g. ``preset("undoped", duration_s=60)``).
    seed : int
        Seed of ``numpy.random.default_rng``; the same (config, seed, table) gives the same
        photons bit for bit.
    state_table : StateTable or callable, optional
        Lifetimes/QYs per charge state. A callable is called as ``state_table(n_max)`` with the
        largest charge state reached (hook for ``qrspec.charging``); default
        ``config.emitter.state_table(n_max)``.

    Returns
    -------
    SimulatedParticle
    """
    if not isinstance(config, SimulationConfig):
        raise QrspecError(f"config={config!r} must be a SimulationConfig")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise QrspecError(f"seed={seed!r} must be an integer >= 0")
    rng = np.random.default_rng(int(seed))
    cfg = config
    charge = simulate_charge_intervals(cfg.charge, cfg.n_pulses / cfg.sync_rate_hz, rng)
    table, source = _resolve_table(cfg, charge.n_max, state_table)
    em = emitter_photons(cfg, charge, table, rng)
    rec = record_events(cfg, [em], rng)
    photons, out_origin, charge_n, pulse, emission = (rec.photons, rec.origin, rec.charge_n,
                                                      rec.pulse, rec.emission_ns)
    o_sync, o_t, parent = rec.arrival_sync, rec.arrival_ns, rec.parent
    truth = GroundTruth(charge=charge, state_table=table, origin=out_origin, charge_n=charge_n,
                        pulse=pulse, emission_ns=emission, arrival_sync=o_sync, arrival_ns=o_t,
                        parent=parent)
    logger.debug("simulated %d photons (%s)", photons.size, truth.counts_by_origin())
    return SimulatedParticle(photons=photons, truth=truth, config=cfg, seed=int(seed),
                             state_table_source=source)
