"""Benchmark: the full per-particle pipeline and a batch, with scaling from 1 to 2 jobs.

Simulates ``--n`` particles of ``--duration-s`` seconds (default 50 x 60 s of the "undoped"
preset, about 2.6 M photons each) once into ``--data`` (reused when present), then measures

* the per-particle wall time on one core (``analyze_file`` in one warm process, every
  particle; median and range) and its split into decode and analysis;
* ``qrspec batch`` wall time with ``--jobs 1`` and ``--jobs 2`` (fresh processes, numba caches
  warm), giving the scaling and the projected time for 250 particles.

Usage: ``python scripts/bench_batch.py [--n 50] [--duration-s 60] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def simulate(data: Path, n: int, duration_s: float):
    from qrspec.simulate import preset
    from qrspec.simulate.population import simulate_population
    from qrspec.simulate.sidecar import write_particle

    data.mkdir(parents=True, exist_ok=True)
    have = sorted(data.glob("*.ptu"))
    if len(have) >= n:
        return have[:n]
    t = time.perf_counter()
    for i, sim in enumerate(simulate_population(preset("undoped", duration_s=duration_s), n,
                                                seed=99)):
        write_particle(sim, data / f"p{i:03d}.ptu", sidecar=False)
    print(f"simulated {n} particles in {time.perf_counter() - t:.0f} s")
    return sorted(data.glob("*.ptu"))[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "qrspec_bench_batch"))
    args = ap.parse_args()
    files = simulate(Path(args.data), args.n, args.duration_s)

    from qrspec.analysis.pipeline import analyze_file, analyze_photons
    from qrspec.io import read_tttr

    analyze_file(files[0])  # warm numba caches in this process
    walls, decode, photons = [], [], []
    for f in files:
        t0 = time.perf_counter()
        ph = read_tttr(f)
        t1 = time.perf_counter()
        analyze_photons(ph)
        t2 = time.perf_counter()
        walls.append(t2 - t0)
        decode.append(t1 - t0)
        photons.append(ph.size)
    med = statistics.median(walls)
    print(f"\nper particle, one core ({len(files)} particles, median "
          f"{statistics.median(photons) / 1e6:.2f} M photons):")
    print(f"  wall median {med:.3f} s (min {min(walls):.3f}, max {max(walls):.3f}); decode "
          f"median {statistics.median(decode):.3f} s; target < 0.5 s")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            out = Path(tmp) / f"r{jobs}.h5"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "qrspec", "batch", args.data, "-o", str(out),
                            "--jobs", str(jobs), "--no-progress"], check=True, env=env,
                           capture_output=True)
            times[jobs] = time.perf_counter() - t
            print(f"batch --jobs {jobs}: {times[jobs]:.1f} s for {len(files)} particles "
                  f"({times[jobs] / len(files):.3f} s per particle)")
    print(f"scaling 1 -> 2 jobs: {times[1] / times[2]:.2f}x; projected 250 particles with 2 "
          f"jobs: {250 * times[2] / len(files):.0f} s")


if __name__ == "__main__":
    main()
