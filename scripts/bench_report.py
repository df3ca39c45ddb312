"""Benchmark: the HTML report of a results file (``write_html_report``), 1 vs 2 jobs, reuse.

Measures, on one results file (default: the demo's 24 particles, made once with
``qrspec demo`` into ``--demo`` when absent):

* a fresh report with ``jobs=1`` and with ``jobs=2`` (interleaved, ``--repeats`` times each;
  medians, and the ratio jobs=1 / jobs=2 from the paired runs);
* a rebuild that reuses every particle figure (only the pages and batch figures are redone);
* the per-particle figure time (one warm process) and the batch figures.

From these it projects the time for 250 particles. The machine is shared: quote medians and
paired ratios, not single runs.

Usage: ``python scripts/bench_report.py [--results FILE] [--repeats 2] [--jobs 2]``.
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
sys.path.insert(0, str(REPO))


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (pool workers): the work done,
    whatever the other users of the machine take."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def demo_results(folder: Path) -> Path:
    out = folder / "results.h5"
    if not out.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qrspec", "demo", str(folder), "--no-plots"],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"demo results made in {time.perf_counter() - t:.0f} s")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path)
    ap.add_argument("--demo", type=Path,
                    default=Path(tempfile.gettempdir()) / "qrspec_bench_report_demo")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    results = args.results or demo_results(args.demo)

    from qrspec.app.batch_tables import load_batch_tables
    from qrspec.app.html_report import _render_batch, default_particle_figure, write_html_report

    tables = load_batch_tables(results)
    n = tables.summary.size
    work = Path(tempfile.mkdtemp(prefix="qrspec_bench_report_"))
    try:
        # per-figure cost in one warm process
        default_particle_figure(results, tables.particle_ids[0], work / "warm.png")
        per, per_cpu = [], []
        for pid in tables.particle_ids[: min(n, 6)]:
            t, c = time.perf_counter(), time.process_time()
            default_particle_figure(results, pid, work / "p.png")
            per.append(time.perf_counter() - t)
            per_cpu.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        (work / "b").mkdir()
        _render_batch(tables, str(work / "b"), 100, {})
        t_batch, c_batch = time.perf_counter() - t, time.process_time() - c

        fresh = {1: [], args.jobs: []}
        cpu = {1: [], args.jobs: []}
        for _ in range(args.repeats):  # interleaved: 1, jobs, 1, jobs, ...
            for jobs in (1, args.jobs):
                out = work / f"site{jobs}"
                shutil.rmtree(out, ignore_errors=True)
                c0 = _cpu_s()
                fresh[jobs].append(write_html_report(results, out, jobs=jobs).seconds)
                cpu[jobs].append(_cpu_s() - c0)
        reuse = [write_html_report(results, work / "site1", jobs=1).seconds
                 for _ in range(args.repeats)]
        size_mb = sum(p.stat().st_size for p in (work / "site1").rglob("*")) / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    ratios = [a / b for a, b in zip(fresh[1], fresh[args.jobs], strict=True)]
    print(f"results: {results} ({n} particles); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"particle figure: median {med(per):.2f} s wall, {med(per_cpu):.2f} s CPU (range "
          f"{min(per):.2f}-{max(per):.2f} s wall, {len(per)} figures, one warm process); "
          f"batch figures {t_batch:.1f} s wall, {c_batch:.1f} s CPU")
    print(f"fresh report, jobs=1: median {med(fresh[1]):.1f} s  {fresh[1]}")
    print(f"fresh report, jobs={args.jobs}: median {med(fresh[args.jobs]):.1f} s  "
          f"{fresh[args.jobs]}")
    print(f"paired ratio jobs=1 / jobs={args.jobs}: median {med(ratios):.2f}")
    print(f"CPU seconds per fresh report: jobs=1 median {med(cpu[1]):.1f}, jobs={args.jobs} "
          f"median {med(cpu[args.jobs]):.1f} ({med(cpu[1]) / n:.2f} s per particle)")
    print(f"rebuild reusing the figures: median {med(reuse):.1f} s; site {size_mb:.1f} MB")
    for jobs in (1, args.jobs):
        per_particle = (med(fresh[jobs]) - med(reuse)) / n
        print(f"projected 250 particles, jobs={jobs}, at this load: "
              f"{250 * per_particle + med(reuse) * 250 / n:.0f} s fresh")
    cpu_250 = 250 * (med(cpu[1]) - c_batch) / n + c_batch
    print(f"projected 250 particles from CPU seconds: {cpu_250:.0f} s of CPU, i.e. about "
          f"{cpu_250:.0f} s with jobs=1 and {cpu_250 / args.jobs:.0f} s with jobs={args.jobs} "
          "on an otherwise idle machine")


if __name__ == "__main__":
    main()
