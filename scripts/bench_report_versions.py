"""Benchmark: ``qrspec report RESULTS --html OUT`` of this tree against another git revision.

Both versions run as the command a user types (``python -m qrspec report ...``, a fresh
process each: imports, reading, every figure, the pages), interleaved (A B B A A B ...) so
that both see the same load on a shared machine. For each version and each ``-j`` it prints
the median wall time, the median CPU seconds of the command (its children's rusage), and the
paired ratio baseline / this tree. The time for 250 particles is projected from two sizes: the
full results file (``n`` particles) and a copy with its first ``--small`` particles
(``t(250) = t(n) + (250 - n) * (t(n) - t(small)) / (n - small)``).

The baseline is ``git archive <rev>`` unpacked into a temp folder and put first on
PYTHONPATH (its own numba cache; one warm-up run per version before timing).

Usage::

    python scripts/bench_report_versions.py [--results FILE] [--baseline-rev main]
        [--jobs 1 2] [--repeats 3] [--small 4]

Default results: the demo's 24 particles (``qrspec demo --no-plots`` into a temp folder).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return c.ru_utime + c.ru_stime


def _run(src: Path, results: Path, out: Path, jobs: int) -> tuple[float, float]:
    """One ``report --html`` in a new process with ``src`` first on the path: (wall, CPU)."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(src))
    c0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "qrspec", "report", str(results), "--html", str(out),
                    "-j", str(jobs), "--no-progress"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0, _children_cpu() - c0


def _first_particles(results: Path, k: int, out: Path) -> Path:
    """A results file with the first ``k`` particles of ``results`` (the store's own copy)."""
    from qrspec.store.hdf5 import copy_particle_to_part, merge_results, read_results

    ids = read_results(results).particle_ids[:k]
    parts = [copy_particle_to_part(results, pid, out.parent / f"part_{i}.h5")
             for i, pid in enumerate(ids)]
    return merge_results(parts, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path)
    ap.add_argument("--baseline-rev", default="main")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", type=int, default=4)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="qrspec_bench_versions_"))
    try:
        results = args.results
        if results is None:
            subprocess.run([sys.executable, "-m", "qrspec", "demo", str(work / "demo"),
                            "--no-plots"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(REPO)))
            results = work / "demo" / "results.h5"
        from qrspec.store.hdf5 import read_results

        n = len(read_results(results).particle_ids)
        (work / "small").mkdir()
        small = _first_particles(results, args.small, work / "small" / "results.h5")
        base = work / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_rev],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short",
                              args.baseline_rev], check=True, capture_output=True,
                             text=True).stdout.strip()
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              check=True, capture_output=True, text=True).stdout.strip()
        versions = {f"baseline {args.baseline_rev} ({rev})": base, f"this tree ({head})": REPO}
        for src in versions.values():  # warm-up: numba caches, page cache
            _run(src, small, work / "warm", 1)
        wall = {(v, j, s): [] for v in versions for j in args.jobs for s in ("full", "small")}
        cpu = {k: [] for k in wall}
        order = list(versions)
        for r in range(args.repeats):
            for jobs in args.jobs:
                for size, res in (("full", results), ("small", small)):
                    for v in (order if r % 2 == 0 else order[::-1]):  # A B, then B A
                        w, c = _run(versions[v], res, work / "site", jobs)
                        wall[(v, jobs, size)].append(w)
                        cpu[(v, jobs, size)].append(c)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print(f"qrspec report --html on {results} ({n} particles; small copy: {args.small}); "
          f"{args.repeats} interleaved repeats; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    names = list(versions)
    for jobs in args.jobs:
        for v in names:
            f, s = wall[(v, jobs, "full")], wall[(v, jobs, "small")]
            per = (med(f) - med(s)) / (n - args.small)
            proj = med(f) + (250 - n) * per
            print(f"-j {jobs}  {v:28s} wall median {med(f):6.1f} s {[round(x, 1) for x in f]}; "
                  f"CPU median {med(cpu[(v, jobs, 'full')]):6.1f} s; small {med(s):5.1f} s; "
                  f"{per:.2f} s per particle -> 250 particles ~{proj:.0f} s")
        ratio = [a / b for a, b in zip(wall[(names[0], jobs, "full")],
                                       wall[(names[1], jobs, "full")], strict=True)]
        print(f"-j {jobs}  paired ratio baseline / this tree (wall, {n} particles): median "
              f"{med(ratio):.2f} {[round(x, 2) for x in ratio]}")


if __name__ == "__main__":
    main()
