"""Benchmark: wall time of each pipeline stage per particle (where the per-particle time goes).

Wraps the stage functions that :func:`qrspec.analysis.pipeline.analyze_photons` calls with a
timer, analyses every ``*.ptu`` of ``--data`` once to warm up (numba caches, imports) and once
timed, and prints the total and each stage's mean wall time per particle. Decoding is not
included (the photons are read before). Stages called inside another stage count in both
(``photon_pairs`` is also called by the levels stage when given no pairs).

Usage: ``python scripts/bench_stages.py [--data DIR]`` (default: the particles of
``scripts/bench_batch.py``, ``$TMPDIR/qrspec_bench_batch``; simulate them with that script).
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = {
    "qrspec.analysis.acquisition": ["prepare"],
    "qrspec.analysis.alignment": ["align_detectors"],
    "qrspec.analysis.blinking": ["analysed_part", "measure_blinking"],
    "qrspec.analysis.bursts": ["remove_photon_bursts"],
    "qrspec.analysis.charging": ["invert_charging"],
    "qrspec.analysis.detector": ["afterpulse_background", "check_dead_time",
                                 "estimate_detector_afterpulsing"],
    "qrspec.analysis.flid": ["measure_flid"],
    "qrspec.analysis.g2": ["measure_g2"],
    "qrspec.analysis.levels": ["find_labelled_levels"],
    "qrspec.analysis.states": ["measure_states"],
    "qrspec.analysis.tau_xx": ["compare_tau_xx_methods"],
    "qrspec.analysis.trajectory": ["trajectory"],
    "qrspec.stats.pairs": ["photon_pairs"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "qrspec_bench_batch"))
    args = ap.parse_args()
    from qrspec.analysis import pipeline
    from qrspec.io import read_tttr

    files = sorted(Path(args.data).glob("*.ptu"))
    if not files:
        sys.exit(f"no *.ptu in {args.data}: run scripts/bench_batch.py --data {args.data} first")
    spent: dict = collections.defaultdict(float)

    def timed(mod, name):
        func = getattr(mod, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return func(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t

        setattr(mod, name, wrapper)

    for module, names in STAGES.items():  # analyze_photons imports them at call time
        mod = importlib.import_module(module)
        for name in names:
            timed(mod, name)
    photons = [read_tttr(f) for f in files]
    for ph in photons:  # warm-up
        pipeline.analyze_photons(ph)
    spent.clear()
    t = time.perf_counter()
    for ph in photons:
        pipeline.analyze_photons(ph)
    n = len(photons)
    print(f"{n} particles from {args.data}, load {os.getloadavg()[0]:.1f}")
    print(f"analysis (decoding excluded): {(time.perf_counter() - t) / n:.3f} s per particle")
    for name, s in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:32s} {s / n:.3f} s")


if __name__ == "__main__":
    main()
