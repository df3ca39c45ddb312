"""Charge-state process n(t) of one rod, simulated in continuous time as half-open intervals.

The process runs on its own clock, independent of the laser pulses (methods.md §6.2). The
result is a :class:`ChargeIntervals`: contiguous ``[t_start_s, t_stop_s)`` intervals covering
``[0, duration_s)`` with a constant charge number ``n`` each (adjacent equal ``n`` merged).

Not implemented: Auger ionisation (a charge change triggered by a non-radiative Auger event,
methods.md §6.2 last item) would couple n(t) to every excited pulse and needs a sequential loop
over all ~10^8 excited pulses of a 60 s run; it is left out (the telegraph/death processes
already model the observed blinking and discharge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.simulate.config import ChargeConfig

__all__ = ["ChargeIntervals", "simulate_charge_intervals", "sample_dwell_times"]

_BLOCK = 1024  # dwell times drawn per block (fixed: part of the seed -> result contract)


@dataclass(frozen=True, eq=False)
class ChargeIntervals:
    """Piecewise-constant charge number over the run.

    Attributes
    ----------
    t_start_s, t_stop_s : ndarray of float64
        Half-open interval bounds; ``t_start_s[0] = 0``, ``t_stop_s[-1] = duration_s``,
        ``t_start_s[i + 1] = t_stop_s[i]``.
    n : ndarray of int64
        Extra electrons in each interval (0 = neutral).
    """

    t_start_s: np.ndarray
    t_stop_s: np.ndarray
    n: np.ndarray

    @property
    def size(self) -> int:
        """Number of intervals."""
        return int(self.n.size)

    @property
    def n_max(self) -> int:
        """Largest charge number reached."""
        return int(self.n.max())

    @property
    def duration_s(self) -> np.ndarray:
        """Length of each interval."""
        return self.t_stop_s - self.t_start_s

    def at(self, time_s) -> np.ndarray:
        """Charge number at the given times (times outside the run take the edge values)."""
        i = np.searchsorted(self.t_start_s, np.asarray(time_s, float), side="right") - 1
        return self.n[np.clip(i, 0, self.size - 1)]

    def time_fraction(self) -> dict[int, float]:
        """``{n: fraction of the run spent with charge n}``."""
        total = self.t_stop_s[-1] - self.t_start_s[0]
        out: dict[int, float] = {}
        for n, d in zip(self.n.tolist(), self.duration_s.tolist(), strict=True):
            out[n] = out.get(n, 0.0) + d / total
        return out

    def as_rows(self) -> list[tuple[float, float, int]]:
        """``[(t_start_s, t_stop_s, n), ...]``."""
        return list(zip(self.t_start_s.tolist(), self.t_stop_s.tolist(), self.n.tolist(),
                        strict=True))

    @classmethod
    def from_breakpoints(cls, times_s, n, duration_s: float) -> ChargeIntervals:
        """Intervals from change times (first 0) and levels; merges equal neighbours."""
        times = np.asarray(times_s, float)
        n = np.asarray(n, np.int64)
        keep = times < duration_s
        times, n = times[keep], n[keep]
        if times.size == 0 or times[0] != 0.0:
            raise QrspecError(f"times_s[0]={times[:1]!r} must be 0")
        change = np.ones(n.size, bool)
        change[1:] = n[1:] != n[:-1]
        times, n = times[change], n[change]
        stops = np.append(times[1:], float(duration_s))
        return cls(times, stops, n)


def sample_dwell_times(rng, size: int, *, law: str, mean_s: float, alpha: float,
                       t_min_s: float, t_max_s: float) -> np.ndarray:
    """Draw dwell times: exponential with mean ``mean_s``, or p(t) ~ t^-alpha on [t_min, t_max].

    The truncated power law is sampled by inverting its CDF,
    ``t = [a^(1-alpha) + u (b^(1-alpha) - a^(1-alpha))]^(1/(1-alpha))`` (``a (b/a)^u`` at
    alpha = 1).
    """
    if law == "exponential":
        return rng.exponential(mean_s, size)
    u = rng.random(size)
    a, b = t_min_s, t_max_s
    if abs(alpha - 1.0) < 1e-12:
        return a * (b / a) ** u
    e = 1.0 - alpha
    return (a**e + u * (b**e - a**e)) ** (1.0 / e)


def _telegraph_switches(cfg: ChargeConfig, duration_s: float, rng):
    """Switch times (first 0) and the state after each switch (True = charged)."""
    total = 0.0
    charged_first = bool(cfg.start_charged)
    dwells = []
    while total < duration_s:
        c = sample_dwell_times(rng, _BLOCK, law=cfg.dwell_law, mean_s=cfg.charged_dwell_s,
                               alpha=cfg.alpha_charged, t_min_s=cfg.t_min_s, t_max_s=cfg.t_max_s)
        z = sample_dwell_times(rng, _BLOCK, law=cfg.dwell_law, mean_s=cfg.neutral_dwell_s,
                               alpha=cfg.alpha_neutral, t_min_s=cfg.t_min_s, t_max_s=cfg.t_max_s)
        pair = np.column_stack([c, z] if charged_first else [z, c]).ravel()
        dwells.append(pair)
        total += float(pair.sum())
    d = np.concatenate(dwells)
    edges = np.cumsum(d)
    k = int(np.searchsorted(edges, duration_s, side="left")) + 1
    starts = np.concatenate([[0.0], edges[: k - 1]])
    state = np.arange(k) % 2 == 0
    if not charged_first:
        state = ~state
    return starts, state


def _death_times(n0: int, rate_hz: float, rng) -> np.ndarray:
    """Sorted departure times of n0 charges that leave independently at ``rate_hz`` each."""
    if rate_hz <= 0 or n0 == 0:
        return np.full(n0, np.inf)
    return np.sort(rng.exponential(1.0 / rate_hz, n0))


def simulate_charge_intervals(cfg: ChargeConfig, duration_s: float, rng) -> ChargeIntervals:
    """Simulate n(t) on [0, duration_s) for the given :class:`ChargeConfig`.

    Parameters
    ----------
    cfg : ChargeConfig
        Process definition.
    duration_s : float
        Run length (> 0).
    rng : numpy.random.Generator
        Source of randomness (the process consumes a variable number of draws).
    """
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise QrspecError(f"duration_s={duration_s!r} must be a finite number > 0")
    if not isinstance(cfg, ChargeConfig):
        raise QrspecError(f"cfg={cfg!r} must be a ChargeConfig")
    mode = cfg.mode
    if mode == "stable":
        return ChargeIntervals.from_breakpoints([0.0], [cfg.n_charged], duration_s)
    if mode == "telegraph":
        starts, charged = _telegraph_switches(cfg, duration_s, rng)
        return ChargeIntervals.from_breakpoints(starts, np.where(charged, cfg.n_charged, 0),
                                                duration_s)
    if mode == "script":
        rows = cfg.schedule
        if rows[-1][1] < duration_s:
            raise QrspecError(f"schedule ends at t_stop_s={rows[-1][1]!r} before "
                              f"duration_s={duration_s!r}")
        return ChargeIntervals.from_breakpoints([r[0] for r in rows], [r[2] for r in rows],
                                                duration_s)
    if mode == "decay_plus_telegraph":
        deaths = _death_times(cfg.n_initial, cfg.discharge_rate_hz, rng)
        deaths = deaths[deaths < duration_s]
        starts, charged = _telegraph_switches(cfg, duration_s, rng)
        times = np.unique(np.concatenate([starts, deaths]))
        n_c = cfg.n_initial - np.searchsorted(deaths, times, side="right")
        idx = np.searchsorted(starts, times, side="right") - 1
        return ChargeIntervals.from_breakpoints(times, np.where(charged[idx], n_c, 0), duration_s)
    # birth_death: Gillespie
    times, levels = [0.0], [cfg.n_initial]
    t, n = 0.0, cfg.n_initial
    lam_up, mu = cfg.charge_rate_hz, cfg.discharge_rate_hz
    while True:
        up = lam_up if n < cfg.n_max else 0.0
        total = up + mu * n
        if total <= 0:
            break
        t += rng.exponential(1.0 / total)
        if t >= duration_s:
            break
        n = n + 1 if rng.random() * total < up else n - 1
        times.append(t)
        levels.append(n)
    return ChargeIntervals.from_breakpoints(times, levels, duration_s)
