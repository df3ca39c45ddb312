"""Benchmark of the intensity-level layer: runtime against photon count (linear scaling).

Simulated two-level telegraph traces (20 kcps / 5 kcps, mean dwell 50 ms, int64 ticks of
100 ns like T3 data at 10 MHz) with 0.5, 1, 2 and 5 M photons. Times the change-point analysis
(find_change_points), the level clustering (cluster_levels) and the threshold alternative
(threshold_levels, 10 ms bins). Numba compilation is excluded (one warm-up call). Prints the
median of ``--repeat`` runs, microseconds per photon, and the time ratio against the 0.5 M trace
divided by the photon-count ratio (1.0 = perfectly linear).

Run from the repository root:  PYTHONPATH=. python scripts/bench_levels.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from qrspec.levels import cluster_levels, find_change_points, threshold_levels

TICK_S = 1e-7
RATES_CPS = (20000.0, 5000.0)
DWELL_S = 0.05


def telegraph_ticks(n_photons: int, rng) -> np.ndarray:
    """Sorted int64 ticks of a two-state telegraph trace with about ``n_photons`` photons."""
    mean_rate = 0.5 * sum(RATES_CPS)
    duration = n_photons / mean_rate
    n_switch = int(duration / DWELL_S * 1.5) + 10
    dwell = rng.exponential(DWELL_S, n_switch)
    edges = np.concatenate([[0.0], np.cumsum(dwell)])
    edges = edges[edges < duration]
    edges = np.append(edges, duration)
    parts = []
    for j in range(edges.size - 1):
        a, b = edges[j], edges[j + 1]
        n = rng.poisson(RATES_CPS[j % 2] * (b - a))
        parts.append(rng.uniform(a, b, n))
    t = np.sort(np.concatenate(parts))
    return np.floor(t / TICK_S).astype(np.int64)


def timed(fn, repeat):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        out.append(time.perf_counter() - t0)
    return float(np.median(out)), res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1, 2, 5],
                   help="photon counts in millions")
    args = p.parse_args(argv)
    rng = np.random.default_rng(20240611)
    warm = telegraph_ticks(20000, rng)
    cps = find_change_points(warm, timestamps_unit=TICK_S)
    cluster_levels(cps)
    threshold_levels(warm, timestamps_unit=TICK_S)
    print(f"{'photons':>10} {'CPA s':>8} {'us/ph':>7} {'lin.ratio':>9} {'#CP':>6} "
          f"{'cluster s':>9} {'thresh s':>8} {'levels':>6}")
    base = None
    for m in args.sizes:
        ticks = telegraph_ticks(int(m * 1e6), rng)
        n = ticks.size
        t_cpa, cps = timed(lambda ticks=ticks: find_change_points(ticks, timestamps_unit=TICK_S),
                           args.repeat)
        t_cl, cl = timed(lambda cps=cps: cluster_levels(cps), args.repeat)
        t_th, _ = timed(lambda ticks=ticks: threshold_levels(ticks, timestamps_unit=TICK_S),
                        args.repeat)
        per = t_cpa / n
        if base is None:
            base = per
        print(f"{n:>10d} {t_cpa:>8.3f} {per * 1e6:>7.3f} {per / base:>9.2f} {cps.size:>6d} "
              f"{t_cl:>9.3f} {t_th:>8.3f} {cl.n_levels:>6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
