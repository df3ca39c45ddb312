"""Artefacts added to simulated photons for validation: photon bursts and bleaching.

Both act on a finished :class:`~qrspec.simulate.particle.SimulatedParticle` and return new
:class:`~qrspec.photons.Photons` plus what was done (the ground truth of the artefact); the
particle's own ground truth is not rewritten.

* :func:`add_bursts`: scatter / cosmic bursts, ``n`` photons spread uniformly over a short
  window, split evenly over the two detectors, nanotimes at the IRF position (scattered laser
  light) or uniform (``profile="flat"``, e.g. a cosmic event).
* :func:`bleach`: the emitter stops for good at ``bleach_time_s`` (its X, XX, XXX photons
  after it are removed; dark counts, background and afterpulses of earlier photons remain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["InjectedBursts", "add_bursts", "bleach"]


@dataclass(frozen=True, eq=False)
class InjectedBursts:
    """Ground truth of :func:`add_bursts`: start, duration and photon count of each burst."""

    start_s: np.ndarray
    duration_s: np.ndarray
    n_photons: np.ndarray


def add_bursts(sim, *, start_s, n_photons, duration_s=1e-3, profile: str = "irf",
               seed: int = 0) -> tuple[Photons, InjectedBursts]:
    """Photons of ``sim`` with bursts added.

    Parameters
    ----------
    sim : SimulatedParticle
        T3 particle.
    start_s : array_like
        Burst start times (s, from the start of the run).
    n_photons : int or array_like
        Photons per burst.
    duration_s : float or array_like
        Burst durations.
    profile : str
        ``"irf"`` (nanotime at each detector's IRF position with its Gaussian jitter) or
        ``"flat"`` (uniform in the period).
    seed : int
        Randomness of the burst photons.
    """
    ph = sim.photons
    cfg = sim.config
    if not ph.is_t3:
        raise QrspecError("add_bursts needs T3 photons (nanotimes)")
    if profile not in ("irf", "flat"):
        raise QrspecError(f"profile={profile!r} must be 'irf' or 'flat'")
    start = np.atleast_1d(np.asarray(start_s, np.float64))
    n = np.broadcast_to(np.asarray(n_photons, np.int64), start.shape).copy()
    dur = np.broadcast_to(np.asarray(duration_s, np.float64), start.shape).copy()
    if np.any(n < 0) or np.any(dur <= 0) or np.any(start < 0):
        raise QrspecError("start_s >= 0, n_photons >= 0 and duration_s > 0 are required")
    rng = np.random.default_rng(seed)
    total = int(n.sum())
    t = np.repeat(start, n) + rng.random(total) * np.repeat(dur, n)
    sync = np.floor(t * cfg.sync_rate_hz).astype(np.int64)
    det = rng.integers(0, 2, total)
    res_ns = cfg.resolution_s * 1e9
    n_bins = int(np.ceil(cfg.period_ns / res_ns - 1e-9))
    if profile == "irf":
        d = cfg.detection
        t_ns = (np.asarray(d.offset_ns)[det]
                + rng.normal(size=total) * np.asarray(d.irf_sigma_ns)[det]) % cfg.period_ns
    else:
        t_ns = rng.random(total) * cfg.period_ns
    nt = np.minimum(np.floor(t_ns / res_ns).astype(np.int64), n_bins - 1)
    ok = sync < cfg.n_pulses
    out = Photons.from_arrays(
        np.concatenate([ph.timestamps, sync[ok]]), np.concatenate([ph.detectors, det[ok]]),
        np.concatenate([ph.nanotimes, nt[ok]]), timestamps_unit=ph.timestamps_unit,
        nanotimes_unit=ph.nanotimes_unit, sync_rate_hz=ph.sync_rate_hz,
        record_type=ph.record_type, acquisition_s=ph.acquisition_s)
    return out, InjectedBursts(start, dur, n)


def bleach(sim, bleach_time_s: float) -> Photons:
    """Photons of ``sim`` without the emitter's photons after ``bleach_time_s``."""
    from qrspec.simulate.particle import ORIGIN_CODE

    if not (np.isfinite(bleach_time_s) and bleach_time_s >= 0):
        raise QrspecError(f"bleach_time_s={bleach_time_s!r} must be a finite number >= 0")
    ph = sim.photons
    t = ph.timestamps * ph.timestamps_unit
    emitter = np.isin(sim.truth.origin, [ORIGIN_CODE["X"], ORIGIN_CODE["XX"], ORIGIN_CODE["XXX"]])
    keep = ~(emitter & (t >= bleach_time_s))
    return Photons.from_arrays(ph.timestamps[keep], ph.detectors[keep],
                               None if ph.nanotimes is None else ph.nanotimes[keep],
                               timestamps_unit=ph.timestamps_unit,
                               nanotimes_unit=ph.nanotimes_unit, sync_rate_hz=ph.sync_rate_hz,
                               record_type=ph.record_type, acquisition_s=ph.acquisition_s)
