"""Benchmark: TTTR decoding speed and memory, qrspec against its peers, in one run.

Generates a synthetic HydraHarp V2 T3 file (default 50 M photons, 2 detectors, 10 MHz sync,
16 ps bins, 200 kcps) with qrspec's writer, then decodes it in a fresh subprocess per reader
(so that each peak RSS is that reader's own) and prints throughput and ratios:

* qrspec ``read_tttr`` (whole file) and ``iter_tttr`` streaming a 10 ms trace plus a nanotime
  histogram per detector;
* ptufile ``PtuFile.decode_records()``; phconvert ``pqreader.load_ptu``; tttrlib ``TTTR`` (each if
  importable; install them in the benchmark environment);
* the raw read floor ``numpy.fromfile``;
* ``python -c "import qrspec"`` and ``qrspec --help`` wall times (numba caches warm).

Usage: ``python scripts/bench_read.py [--photons 50e6] [--repeat 3] [--keep FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))

CHILD = r"""
import json, sys, time
import numpy as np
which, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rss_mb():
    # VmHWM is this process's own peak (ru_maxrss would inherit the parent's peak on fork)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

def run():
    if which == "floor":
        with open(path, "rb") as f:
            n = int(sys.argv[4])
            f.seek(int(sys.argv[5]))
            a = np.fromfile(f, "<u4", n)
        return a.size
    if which == "qrspec":
        import qrspec
        return qrspec.read_tttr(path).size
    if which == "qrspec_stream":
        from qrspec.stats.decay import DecayAccumulator
        from qrspec.io import iter_tttr
        from qrspec.stats.trace import TraceAccumulator
        trace, decay = TraceAccumulator(0.01), DecayAccumulator()
        n = 0
        for c in iter_tttr(path):
            trace.add(c)
            decay.add(c)
            n += c.size
        trace.result(), decay.result()
        return n
    if which == "ptufile":
        import ptufile
        with ptufile.PtuFile(path) as f:
            r = f.decode_records()
        return int((r["channel"] >= 0).sum())
    if which == "phconvert":
        from phconvert import pqreader
        ts, det, nt, meta = pqreader.load_ptu(path)[:4]
        return ts.size
    if which == "tttrlib":
        import tttrlib
        return len(tttrlib.TTTR(path, "PTU"))
    raise SystemExit("unknown reader " + which)

times = []
n = None
for _ in range(repeat):
    t = time.perf_counter()
    n = run()
    times.append(time.perf_counter() - t)
print(json.dumps({"n": int(n), "best_s": min(times), "rss_mb": rss_mb()}))
"""


def make_file(path, n_photons, seed=7):
    sys.path.insert(0, REPO)
    from qrspec.io import write_ptu

    rng = np.random.default_rng(seed)
    rate_per_sync = 2e5 / 1e7  # 200 kcps at 10 MHz
    gaps = rng.geometric(rate_per_sync, n_photons) - 1
    ts = np.cumsum(gaps, dtype=np.int64)
    del gaps
    det = rng.integers(0, 2, n_photons, dtype=np.uint8)
    nt = (rng.exponential(5e-9 / 16e-12, n_photons).astype(np.int64) + 300) % 6250
    write_ptu(path, record_type="HydraHarp2T3", timestamps=ts, detectors=det, nanotimes=nt,
              timestamps_unit=1e-7, nanotimes_unit=16e-12)
    return int(ts[-1])


def child(which, path, repeat, *extra):
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(path), str(repeat), *extra],
                         capture_output=True, text=True, env=ENV)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def wall(cmd, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=ENV)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, default=50e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="use/keep the synthetic file at this path")
    args = ap.parse_args()
    n_photons = int(args.photons)
    tmpdir = tempfile.mkdtemp()
    path = args.keep or os.path.join(tmpdir, "synth_hh2t3.ptu")
    if not os.path.exists(path):
        t = time.perf_counter()
        make_file(path, n_photons)
        print(f"generated {path} ({os.path.getsize(path) / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f} s")
    sys.path.insert(0, REPO)
    from qrspec.io import open_layout

    lay = open_layout(path)
    n_rec = lay.n_records
    print(f"file: {n_rec / 1e6:.2f} M records, {os.path.getsize(path) / 1e6:.0f} MB")
    child("qrspec", path, 1)  # warm numba caches
    res = {"floor": child("floor", path, args.repeat, str(n_rec), str(lay.data_offset))}
    for which in ("qrspec", "qrspec_stream", "ptufile", "phconvert", "tttrlib"):
        res[which] = child(which, path, args.repeat)
    print(f"\n{'reader':<16}{'photons':>12}{'best s':>9}{'Mrec/s':>9}{'peak RSS MB':>13}"
          f"{'B/photon':>10}")
    for which, r in res.items():
        if "error" in r:
            print(f"{which:<16}  unavailable: {r['error'][:70]}")
            continue
        n = r["n"]
        print(f"{which:<16}{n:>12}{r['best_s']:>9.3f}{n_rec / r['best_s'] / 1e6:>9.0f}"
              f"{r['rss_mb']:>13.0f}{r['rss_mb'] * 2**20 / max(n_photons, 1):>10.1f}")
    q = res["qrspec"]
    if "error" not in q:
        for peer in ("ptufile", "phconvert", "tttrlib"):
            if "error" not in res[peer]:
                print(f"speed ratio qrspec / {peer}: {res[peer]['best_s'] / q['best_s']:.2f}x")
        budget = (12 * n_photons + 50 * 2**20) / 2**20
        print(f"qrspec whole-file peak RSS {q['rss_mb']:.0f} MB vs budget 12 B/photon + 50 MB ="
              f" {budget:.0f} MB")
    s = res["qrspec_stream"]
    if "error" not in s:
        print(f"qrspec streaming trace + histogram peak RSS {s['rss_mb']:.0f} MB (target < 300)")
    t_imp = wall([sys.executable, "-c", "import qrspec"])
    t_help = wall([sys.executable, "-m", "qrspec", "--help"])
    print(f"import qrspec {t_imp:.3f} s; qrspec --help {t_help:.3f} s (target < 0.5 s each)")


if __name__ == "__main__":
    main()
