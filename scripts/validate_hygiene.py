"""Validation of photon bursts and bleaching detection (qrspec.levels.bursts, .bleaching).

Sections (``--part``; default all):

``bursts-traces``  false-alarm rate of :func:`find_bursts` on many traces drawn from the
                   telegraph intensity model (exact sub-bin blinking, Poisson counts), no
                   bursts; and detection of injected bursts against their size.
``bursts-sim``     the same on full simulated particles (qrspec.simulate presets and power-law
                   blinking), with bursts added by :func:`qrspec.simulate.artefacts.add_bursts`.
``bleaching``      false alarms on simulated blinking particles that do not bleach, and
                   detection when they bleach at 70 % of the run.

Usage: ``nice -n 10 python scripts/validate_hygiene.py [--part bursts-traces] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from qrspec.levels.bursts import find_bursts  # noqa: E402
from qrspec.stats.trace import IntensityTrace  # noqa: E402


def telegraph_trace(rng, duration_s, bin_s, on_cps, off_cps, alpha, t0):
    """Counts per bin of a power-law on/off telegraph (rates integrated over each bin)."""
    edges, state, t = [0.0], [], 0.0
    s = 1
    while t < duration_s:
        t += t0 * (1.0 - rng.random()) ** (-1.0 / (alpha - 1.0))
        edges.append(min(t, duration_s))
        state.append(s)
        s = 1 - s
    edges = np.asarray(edges)
    rate = np.where(np.asarray(state) == 1, on_cps, off_cps)
    n_bins = int(duration_s / bin_s)
    grid = np.arange(n_bins + 1) * bin_s
    cum = np.concatenate([[0.0], np.cumsum(rate * np.diff(edges))])
    expected = np.diff(np.interp(grid, edges, cum))
    return rng.poisson(expected)


def as_trace(counts, bin_s):
    unit = 1e-7
    ticks = int(round(bin_s / unit))
    c = np.append(counts, 0)  # a last, partial bin (never searched)
    return IntensityTrace(c, c[None, :], (0,), ticks * unit, ticks, 0, unit)


def part_bursts_traces(rng, quick):
    print("\n== bursts on telegraph traces (1 ms bins, 60 s, power-law on/off alpha 1.6) ==")
    n = 300 if quick else 2000
    print("on_cps  off_cps   n_traces  particles_with_false_bursts  (design alpha 0.01)")
    for on, off in ((5000.0, 100.0), (20000.0, 200.0), (60000.0, 500.0)):
        fa = sum(find_bursts(as_trace(telegraph_trace(rng, 60.0, 1e-3, on, off, 1.6, 0.01),
                                      1e-3)).n_bursts > 0 for _ in range(n))
        print(f"{on:6.0f}  {off:7.0f}   {n:8d}  {fa / n:27.4f}")
    print("\ndetection of one burst of k photons within one 1 ms bin, on level 20 kcps (20 "
          "counts/bin), off 200 cps; fraction found")
    ks = (10, 20, 30, 40, 60, 100)
    print("k:      " + "  ".join(f"{k:5d}" for k in ks))
    row = []
    for k in ks:
        hits = 0
        for _ in range(n // 3):
            c = telegraph_trace(rng, 60.0, 1e-3, 20000.0, 200.0, 1.6, 0.01)
            i = int(rng.integers(0, c.size))
            c[i] += k
            b = find_bursts(as_trace(c, 1e-3))
            hits += bool(np.any(b.windows_ticks[:, 0] == i * 10000))
        row.append(hits / (n // 3))
    print("found:  " + "  ".join(f"{f:5.2f}" for f in row))


def _sim_particles(rng, n, duration_s):
    from validate_dwell import blinking_config

    from qrspec.simulate import preset, simulate_particle

    cfgs = [preset("undoped", duration_s=duration_s), preset("mn-doped", duration_s=duration_s),
            preset("neutral", duration_s=duration_s),
            blinking_config(1.6, 1.6, 0.01, 1e4, duration_s)]
    for i in range(n):
        cfg = cfgs[i % len(cfgs)]
        yield cfg.name, simulate_particle(cfg, seed=int(rng.integers(1 << 31)))


def part_bursts_sim(rng, quick):
    from qrspec.levels.bursts import remove_bursts
    from qrspec.simulate.artefacts import add_bursts
    from qrspec.stats.trace import intensity_trace

    n = 8 if quick else 24
    print(f"\n== bursts on simulated particles ({n} x 30 s: undoped, mn-doped, neutral, "
          "power-law blinking) ==")
    print("                     false_bursts  | 3 bursts of 300 ph/1 ms found")
    print("preset     photons    1 ms 10 ms  |  1 ms 10 ms   photons_removed(1ms)  "
          "excess_estimate")
    for name, sim in _sim_particles(rng, n, 30.0):
        fb = find_bursts(sim.photons)
        fb10 = find_bursts(intensity_trace(sim.photons, 0.01))
        starts = rng.uniform(1.0, 29.0, 3)
        ph, truth = add_bursts(sim, start_s=starts, n_photons=300, duration_s=1e-3,
                               seed=int(rng.integers(1 << 31)))
        b = find_bursts(ph)
        b10 = find_bursts(intensity_trace(ph, 0.01))
        found = sum(_covered(b.windows_s, s, 1e-3) > 0.5 for s in starts)
        found10 = sum(_covered(b10.windows_s, s, 1e-3) > 0.5 for s in starts)
        cleaned = remove_bursts(ph, b)
        print(f"{name:9s} {sim.photons.size:8d}   {fb.n_bursts:5d} {fb10.n_bursts:5d}  | "
              f"{found:5d}/3 {found10:5d}/3  {ph.size - cleaned.size:15d}  "
              f"{b.excess_photons:15.0f}")


def _covered(windows_s, start, duration):
    lo = np.maximum(windows_s[:, 0], start)
    hi = np.minimum(windows_s[:, 1], start + duration)
    return float(np.sum(np.clip(hi - lo, 0, None))) / duration


def part_bleaching(rng, quick):
    from validate_dwell import blinking_config

    from qrspec.levels import cluster_levels, find_change_points, label_levels
    from qrspec.levels.bleaching import detect_bleaching
    from qrspec.simulate import simulate_particle
    from qrspec.simulate.artefacts import bleach

    n = 8 if quick else 30
    print(f"\n== bleaching: {n} power-law blinking particles of 60 s (alpha_on 1.6, alpha_off "
          "a_off, t0 10 ms), without and with bleaching at 42 s ==")
    print("alpha_off  ends_off  false_alarms  |  bleached: detected  |bleach_time error| "
          "median (s)  methods")
    for a_off in (1.5, 2.2):
        ends_off = fa = det = 0
        err, methods, fa_methods = [], [], []
        for _ in range(n):
            cfg = blinking_config(1.6, a_off, 0.01, 1e4, 60.0).replace(mean_excitations=0.1)
            sim = simulate_particle(cfg, seed=int(rng.integers(1 << 31)))
            for bleached_run, ph in ((False, sim.photons), (True, bleach(sim, 42.0))):
                det_cfg = sim.config.detection
                lv = cluster_levels(find_change_points(ph).segments())
                nt = ph.nanotimes * ph.nanotimes_unit * 1e9 - np.asarray(
                    det_cfg.offset_ns)[ph.detectors]
                lab = label_levels(lv, nanotimes_ns=nt, delay_offset_ns=0.0,
                                   background_cps=float(np.sum(det_cfg.dark_cps)))
                b = detect_bleaching(lab.segments)
                if not bleached_run:
                    ends_off += b.method not in ("last_stay_on",)
                    fa += b.bleached
                    if b.bleached:
                        fa_methods.append(b.method)
                else:
                    det += b.bleached
                    methods.append(b.method)
                    if b.bleached:
                        err.append(abs(b.bleach_time_s - 42.0))
        print(f"{a_off:9.1f}  {ends_off:8d}  {fa:12d}  |  {det:8d}/{n:<3d}  "
              f"{np.median(err) if err else np.nan:24.3f}  "
              f"{_count(methods)}  false alarms by method: {_count(fa_methods)}")


def _count(names):
    return {str(k): int(v) for k, v in zip(*np.unique(names, return_counts=True), strict=True)}


PARTS = {"bursts-traces": part_bursts_traces, "bursts-sim": part_bursts_sim,
         "bleaching": part_bleaching}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), action="append")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for name in args.part or list(PARTS):
        t = time.perf_counter()
        PARTS[name](rng, args.quick)
        print(f"[{name}: {time.perf_counter() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
