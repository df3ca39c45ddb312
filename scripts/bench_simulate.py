"""Benchmark the simulator: a 60 s particle at ~50 kcps must simulate in a few seconds.

Usage: ``PYTHONPATH=. python scripts/bench_simulate.py [--duration-s 60] [--repeat 2]``

Prints, per preset, the best wall time of ``simulate_particle`` and of ``write_particle`` and
the photon rate. No peer simulator exists, so the reference in the same run is the direct
method of methods.md §6.3 (every excited pulse drawn, every photon thinned afterwards), timed on
a tenth of the duration and scaled linearly; its ratio to ours is printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from qrspec.simulate import preset, simulate_particle, write_particle


def naive_emitter(cfg, seed: int) -> int:
    """methods.md §6.3-6.4 done directly: all excited pulses, then thinning. Returns photons."""
    rng = np.random.default_rng(seed)
    n = cfg.n_pulses
    mu = cfg.mean_excitations
    k = rng.binomial(n, 1 - np.exp(-mu))
    pulses = np.sort(rng.choice(n, k, replace=False))
    # zero-truncated Poisson by inversion, capped at 3
    u = rng.random(k)
    p = np.array([mu * np.exp(-mu), mu**2 / 2 * np.exp(-mu)]) / (1 - np.exp(-mu))
    big_n = 1 + (u > p[0]) + (u > p[0] + p[1])
    table = cfg.emitter.state_table(0)
    dwell = rng.standard_exponential((k, 3)) * table.tau_ns[0]
    dwell[np.arange(3)[None, :] >= big_n[:, None]] = 0.0
    t = np.cumsum(dwell[:, ::-1], axis=1)[:, ::-1]
    emit = (np.arange(3)[None, :] < big_n[:, None]) & (rng.random((k, 3)) < table.qy[0])
    row, col = np.nonzero(emit)
    p0, p1 = cfg.detection.detection_probabilities()
    u = rng.random(row.size)
    keep = u < p0 + p1
    times = pulses[row[keep]] * cfg.period_ns + t[row[keep], col[keep]]
    return int(times.size)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    simulate_particle(preset("neutral", duration_s=0.01), seed=0)  # numba compile / cache load
    print(f"warm-up (numba compile or cache load): {time.perf_counter() - t0:.2f} s")
    tmp = Path(tempfile.mkdtemp())
    for name in ("neutral", "undoped", "mn-doped"):
        cfg = preset(name, duration_s=args.duration_s)
        best, sim = np.inf, None
        for r in range(args.repeat):
            t0 = time.perf_counter()
            sim = simulate_particle(cfg, seed=r)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        write_particle(sim, tmp / f"{name}.ptu")
        t_write = time.perf_counter() - t0
        rate = sim.photons.size / args.duration_s
        print(f"{name:9s} {args.duration_s:.0f} s  {sim.photons.size:9d} photons "
              f"({rate / 1e3:5.1f} kcps)  simulate {best:5.2f} s  "
              f"write PTU+truth {t_write:5.2f} s")
    cfg = preset("neutral", duration_s=args.duration_s / 10)
    t0 = time.perf_counter()
    naive_emitter(cfg, 0)
    t_naive = (time.perf_counter() - t0) * 10
    t0 = time.perf_counter()
    simulate_particle(cfg, seed=0)
    t_ours = (time.perf_counter() - t0) * 10
    print(f"direct method of methods.md §6.3 (emitter only, scaled from {cfg.duration_s:g} s): "
          f"{t_naive:.1f} s for {args.duration_s:.0f} s; full simulator {t_ours:.1f} s; "
          f"ratio direct/ours = {t_naive / t_ours:.1f}")


if __name__ == "__main__":
    main()
