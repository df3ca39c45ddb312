"""Benchmark: the full per-particle pipeline and a batch, with scaling from 1 to 2 jobs.

Simulates ``--n`` particles of ``--duration-s`` seconds (default 50 x 60 s of the "undoped"
preset, about 2.6 M photons each) once into ``--data`` (reused when present), then measures

* the per-particle wall time on one core (``analyze_file`` in one warm process, every
  particle; median and range) and its split into decode and analysis;
* ``qrspec batch`` wall time with ``--jobs 1`` and ``--jobs 2`` (fresh processes, numba caches
  warm), giving the scaling and the projected time for 250 particles.

``--compare SRC`` (a source tree of another qrspec version, e.g. ``git archive main | tar -x
-C /tmp/main_src``) instead measures the analysis time per particle of both versions: fresh
processes alternating ``SRC, this tree, SRC, this tree, ...`` (``--rounds``), each analysing every
particle once after a warm-up, and prints the paired per-particle ratio (median over rounds and
particles), plus the share of this tree's time spent in the issue-18 stages (bursts, blinking and
bleaching, afterpulsing, dead time), timed inside the same runs.

``--stages-ab`` measures the same in one warm process, robust to the load of a shared machine:
for every particle, the pipeline with the issue-18 stages and with them stubbed out (no burst
search, no bleaching or dwell laws, no afterpulse estimate or correction, no dead-time check),
in ABBA order (``--rounds`` times), in CPU time of the process (``time.process_time``: other
processes' load does not enter it), and prints the median paired ratio.

Usage: ``python scripts/bench_batch.py [--n 50] [--duration-s 60] [--data DIR]
[--compare SRC | --stages-ab] [--rounds 3]``.
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


# one analysis process of --compare: analyse every file once (after a warm-up) and print one
# JSON line {"wall": [...], "stages": [...]}; "stages" (this tree only) is the time spent in the
# issue-18 stage functions of each particle
_WORKER = r"""
import json, sys, time
files = sys.argv[1:]
from qrspec.analysis import pipeline
from qrspec.io import read_tttr
spent = [0.0]
try:
    import qrspec.analysis.blinking as bl, qrspec.analysis.bursts as bu
    import qrspec.analysis.detector as de
    def timed(mod, name):
        f = getattr(mod, name)
        def g(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t
        setattr(mod, name, g)
    for mod, names in ((bu, ["remove_photon_bursts"]), (bl, ["measure_blinking",
                       "analysed_part"]), (de, ["estimate_detector_afterpulsing",
                       "afterpulse_background", "check_dead_time", "g2_afterpulse_correction"])):
        for n in names:
            timed(mod, n)
except ImportError:
    pass
pipeline.analyze_photons(read_tttr(files[0]))
wall, stages = [], []
for f in files:
    ph = read_tttr(f)
    spent[0] = 0.0
    t = time.perf_counter()
    pipeline.analyze_photons(ph)
    wall.append(time.perf_counter() - t)
    stages.append(spent[0])
print(json.dumps({"wall": wall, "stages": stages}))
"""


def compare(files, src: str, rounds: int):
    """Alternating fresh processes of another source tree and this one (see the docstring)."""
    import json

    trees = {"before": str(Path(src).resolve()), "after": str(REPO)}
    walls = {k: [] for k in trees}
    shares = []
    for r in range(rounds):
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run([sys.executable, "-c", _WORKER, *map(str, files)], env=env,
                                 check=True, capture_output=True, text=True, cwd=tree)
            d = json.loads(out.stdout.strip().splitlines()[-1])
            walls[name].append(d["wall"])
            if name == "after":
                shares += [s / w for s, w in zip(d["stages"], d["wall"], strict=True)]
            print(f"round {r + 1} {name}: median {statistics.median(d['wall']):.3f} s per "
                  "particle", flush=True)
    b, a = (statistics.median(x for run in walls[k] for x in run) for k in ("before", "after"))
    ratios = [a_ / b_ for ra, rb in zip(walls["after"], walls["before"], strict=True)
              for a_, b_ in zip(ra, rb, strict=True)]
    print(f"\nanalysis per particle (median over {rounds} rounds x {len(files)} particles): "
          f"before {b:.3f} s, after {a:.3f} s; paired after/before ratio: median "
          f"{statistics.median(ratios):.3f} (quartiles {statistics.quantiles(ratios, n=4)[0]:.3f}"
          f", {statistics.quantiles(ratios, n=4)[2]:.3f})")
    print(f"issue-18 stage functions: median {100 * statistics.median(shares):.1f} % of the "
          f"after time (quartiles {100 * statistics.quantiles(shares, n=4)[0]:.1f}, "
          f"{100 * statistics.quantiles(shares, n=4)[2]:.1f} %)")


def stages_ab(files, rounds: int):
    """The pipeline with and without the issue-18 stages, paired per particle (ABBA)."""
    import contextlib

    import numpy as np

    import qrspec.analysis.blinking as bl
    import qrspec.analysis.bursts as bu
    import qrspec.analysis.detector as de
    from qrspec.analysis.pipeline import analyze_photons
    from qrspec.io import read_tttr
    from qrspec.levels.bleaching import Bleaching

    nan = float("nan")

    class NoBlinking:  # what analysed_part reads
        trimmed = False
        bleaching = Bleaching(False, nan, nan, nan, "stub", (nan, nan), 0.01)

    stubs = {
        (bu, "remove_photon_bursts"): lambda ph, cfg: (None, ph),
        (bl, "measure_blinking"): lambda levels, cfg: NoBlinking(),
        (de, "estimate_detector_afterpulsing"): lambda ph, cfg: (None, "stub"),
        (de, "afterpulse_background"): lambda ph, est, cfg: None,
        (de, "check_dead_time"): lambda ph, single, cfg: (None, "stub"),
        (de, "detector_artefacts"): lambda *a: None,
    }

    @contextlib.contextmanager
    def stubbed():
        saved = {k: getattr(*k) for k in stubs}
        for (mod, name), f in stubs.items():
            setattr(mod, name, f)
        try:
            yield
        finally:
            for (mod, name), f in saved.items():
                setattr(mod, name, f)

    def run(ph, stub):
        # CPU time of this process: the other tenants of a shared machine do not enter it
        with stubbed() if stub else contextlib.nullcontext():
            t = time.process_time()
            analyze_photons(ph)
            return time.process_time() - t

    photons = [read_tttr(f) for f in files]
    run(photons[0], True)
    run(photons[0], False)
    ratios, before, after = [], [], []
    for _ in range(rounds):
        for ph in photons:
            a1, b1 = run(ph, True), run(ph, False)
            b2, a2 = run(ph, False), run(ph, True)
            before += [a1, a2]
            after += [b1, b2]
            ratios.append((b1 + b2) / (a1 + a2))
    q = np.quantile(ratios, [0.25, 0.5, 0.75])
    print(f"in one process, CPU time, ABBA x {rounds} rounds x {len(files)} particles: "
          f"without the issue-18 stages median {statistics.median(before):.3f} s, with them "
          f"{statistics.median(after):.3f} s; paired ratio median {q[1]:.3f} (quartiles "
          f"{q[0]:.3f}, {q[2]:.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "qrspec_bench_batch"))
    ap.add_argument("--compare", metavar="SRC", help="source tree of the version to compare")
    ap.add_argument("--stages-ab", action="store_true",
                    help="with / without the issue-18 stages in one process")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    files = simulate(Path(args.data), args.n, args.duration_s)
    if args.compare:
        compare(files, args.compare, args.rounds)
        return
    if args.stages_ab:
        stages_ab(files, args.rounds)
        return

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
          f"median {statistics.median(decode):.3f} s; target <= 0.3 s (issue 19)")
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
