"""Per-pulse excitation, multiexciton cascade and detection thinning (vectorised).

Algorithm (improves methods.md §6.3/§6.4, which first simulates every excited pulse and then
thins each photon; at <N> = 0.2 and 10 MHz that is ~1.1e8 excited pulses for a 60 s run, far
too many to handle in a few seconds):

1. Per pulse the number of absorbed pairs is N ~ Poisson(<N>), capped at N' = min(N, K) with
   K = ``n_max_cascade`` (N > K relaxes at once to K).
2. Every cascade level j = 1..N' independently carries a *detection flag* D_j ~ Bernoulli(p),
   p = p_0 + p_1 the probability that a photon, if emitted, is detected on detector 0 or 1.
   Whether level j actually emits (probability QY_j of the current charge state) is an
   independent coin, so the flags can be drawn first: they do not depend on the charge state.
3. Only pulses with at least one flag can give a detected photon. They form a Bernoulli
   process with ``p_int = sum_k P(N' = k) [1 - (1 - p)^k]``; their indices are drawn exactly by
   geometric gaps (no sorting, no per-pulse loop). For each, (N', flags) is drawn from its
   conditional distribution (at most 1 + 3 + 7 patterns).
4. The charge n of the pulse is looked up in the charge intervals; the dwell time of level m
   is Exp(tau_m^(n)); the photon of level j leaves at the sum of the dwell times of levels
   N'..j; it is emitted with probability QY_j^(n) and routed to detector 0 with probability
   p_0/p.
5. Timing: the laser jitter N(0, sigma_laser) is drawn once per pulse and shared by all photons
   of the pulse (methods.md §6.4 item 2 adds it per photon, which wrongly decorrelates the XX
   and X photons of one cascade); then per photon IRF = N(0, sigma_d) + [Bernoulli(w_d)]
   Exp(tau_tail_d), plus the cable offset of detector d.

The result is exact in distribution for the detected photons (the undetected ones are never
drawn), so the cost scales with the detected count (~3e6 for 60 s at 50 kcps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.charging.states import StateTable
from qrspec.simulate.charge import ChargeIntervals
from qrspec.simulate.config import SimulationConfig

__all__ = ["EmitterPhotons", "emitter_photons", "bernoulli_positions", "cascade_pmf"]


@dataclass(frozen=True, eq=False)
class EmitterPhotons:
    """Detected-to-be photons of the emitter, before dead time (pulse order).

    Attributes
    ----------
    pulse : int64
        Source laser pulse.
    detector : int64
        0 or 1.
    level : uint8
        Cascade level that emitted the photon: 1 X, 2 XX, 3 XXX.
    charge_n : int16
        Charge state of the rod during the pulse.
    emission_ns : float64
        Emission time after the excitation (no jitter).
    arrival_ns : float64
        Arrival time after the source pulse's sync (emission + laser jitter + IRF + offset).
    n_flagged_pulses : int
        Pulses that had at least one detection flag (step 3).
    """

    pulse: np.ndarray
    detector: np.ndarray
    level: np.ndarray
    charge_n: np.ndarray
    emission_ns: np.ndarray
    arrival_ns: np.ndarray
    n_flagged_pulses: int


def cascade_pmf(mean_excitations: float, n_max_cascade: int) -> np.ndarray:
    """P(N' = k), k = 0..n_max_cascade, for N ~ Poisson(<N>) and N' = min(N, n_max_cascade)."""
    mu = float(mean_excitations)
    k = np.arange(n_max_cascade)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n_max_cascade)))])
    pmf = np.exp(-mu + k * np.log(mu) - logfact) if mu > 0 else (k == 0).astype(float)
    tail = max(0.0, 1.0 - float(pmf.sum()))
    return np.append(pmf, tail)


def bernoulli_positions(rng, n_trials: int, p: float) -> np.ndarray:
    """Sorted indices of the successes of ``n_trials`` Bernoulli(p) trials (geometric gaps)."""
    if p <= 0 or n_trials <= 0:
        return np.zeros(0, np.int64)
    if p >= 1:
        return np.arange(n_trials, dtype=np.int64)
    mean = n_trials * p
    block = int(mean + 6.0 * np.sqrt(mean) + 64)
    parts = []
    last = -1
    while last < n_trials:
        pos = np.cumsum(rng.geometric(p, block).astype(np.int64)) + last
        parts.append(pos)
        last = int(pos[-1])
    pos = np.concatenate(parts)
    return pos[: np.searchsorted(pos, n_trials)]


def _flag_patterns(pmf: np.ndarray, p: float):
    """All (k, mask) with k >= 1 and a nonzero flag mask, with probability P(N'=k) P(mask)."""
    ks, masks, probs = [], [], []
    for k in range(1, pmf.size):
        for mask in range(1, 1 << k):
            c = bin(mask).count("1")
            ks.append(k)
            masks.append(mask)
            probs.append(pmf[k] * p**c * (1.0 - p) ** (k - c))
    return np.array(ks), np.array(masks), np.array(probs)


def emitter_photons(cfg: SimulationConfig, charge: ChargeIntervals, table: StateTable,
                    rng) -> EmitterPhotons:
    """Draw the emitter photons that reach a detector (before dead time), in pulse order."""
    det_cfg = cfg.detection
    p0, p1 = det_cfg.detection_probabilities()
    p = p0 + p1
    kmax = cfg.n_max_cascade
    pmf = cascade_pmf(cfg.mean_excitations, kmax)
    ks, masks, probs = _flag_patterns(pmf, p)
    p_int = float(probs.sum())
    pulses = bernoulli_positions(rng, cfg.n_pulses, p_int)
    m = pulses.size
    if m == 0:
        z = np.zeros(0)
        return EmitterPhotons(np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros(0, np.uint8), np.zeros(0, np.int16), z, z.copy(), 0)
    cdf = np.cumsum(probs) / p_int
    combo = np.minimum(np.searchsorted(cdf, rng.random(m), side="right"), cdf.size - 1)
    k_arr = ks[combo]
    mask = masks[combo]
    n_arr = charge.at(pulses / cfg.sync_rate_hz)
    tau = table.tau_ns[n_arr, :kmax]
    qy = table.qy[n_arr, :kmax]
    levels = np.arange(kmax)
    active = levels[None, :] < k_arr[:, None]
    dwell = np.where(active, rng.standard_exponential((m, kmax)) * tau, 0.0)
    # photon of level j (index j-1) leaves after the dwell times of levels N'..j
    t_emit = np.cumsum(dwell[:, ::-1], axis=1)[:, ::-1]
    flagged = ((mask[:, None] >> levels[None, :]) & 1).astype(bool)
    emits = flagged & (rng.random((m, kmax)) < qy)
    row, col = np.nonzero(emits)
    n_ph = row.size
    detector = (rng.random(n_ph) >= (p0 / p)).astype(np.int64)
    sigma_laser = cfg.laser_fwhm_ns / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    laser = rng.normal(0.0, 1.0, m) * sigma_laser
    sigma = np.asarray(det_cfg.irf_sigma_ns)[detector]
    w = np.asarray(det_cfg.irf_tail_weight)[detector]
    tail_ns = np.asarray(det_cfg.irf_tail_ns)[detector]
    offset = np.asarray(det_cfg.offset_ns)[detector]
    gauss = rng.normal(0.0, 1.0, n_ph) * sigma
    tail = np.where(rng.random(n_ph) < w, rng.standard_exponential(n_ph) * tail_ns, 0.0)
    emission = t_emit[row, col]
    arrival = emission + laser[row] + gauss + tail + offset
    return EmitterPhotons(
        pulse=pulses[row],
        detector=detector,
        level=(col + 1).astype(np.uint8),
        charge_n=n_arr[row].astype(np.int16),
        emission_ns=emission,
        arrival_ns=arrival,
        n_flagged_pulses=int(m),
    )
