"""Benchmark: TTTR decoding speed and memory against ptufile and the raw-read floor, in one run.

Generates (or reuses, ``--keep``) a synthetic HydraHarp V2 T3 file (default 50 M photons, 2
detectors, 10 MHz sync, 16 ps bins, 200 kcps) with qrspec's writer, then:

1. speed, in one process, paired and interleaved (every round runs each reader once, in turn):
   ``numpy.fromfile`` of the records (the raw-read floor), qrspec ``read_tttr`` and ptufile
   ``PtuFile.decode_records()`` (plus phconvert ``load_ptu`` with ``--phconvert``; plus qrspec
   with ``QRSPEC_DECODE_KERNEL=scalar`` where the AVX-512 vector kernels are in use); medians
   and the ratios ``ptufile / qrspec`` (target >= 2) and ``qrspec / floor`` (target <= 3);
2. peak memory, each reader in a fresh process (``VmHWM``, the process's own peak): qrspec's
   fixed cost is the peak of a process that imported qrspec and read a 1000-photon file (numpy,
   numba, the loaded kernels); the whole-file read must stay within 12 bytes per photon above
   it; ``iter_tttr`` streaming a 10 ms trace and a decay must stay bounded;
3. first run: a fresh process reading a small file with an empty numba cache, per decode
   kernel (the compile cost a new environment pays once per record family);
4. start-up: ``qrspec info`` on a 3 MB file (``--info-file``, default the real PicoHarp T2 file
   when present, else a generated one) against ``python -c "import ptufile; ...
   decode_records()"`` on the same file, whole processes, paired (target <= 0.5 s); and
   ``import qrspec``, ``qrspec --help``.

The machine is shared: quote medians and ratios measured in the same run.

Usage: ``python scripts/bench_read.py [--photons 50e6] [--rounds 7] [--keep FILE]``.
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
REAL_INFO_FILE = os.path.join(REPO, "..", "shared", "realdata", "pqsample_ph_v30_t2.ptu")

SPEED = r"""
import json, os, sys, time
import numpy as np
path, rounds, with_phconvert = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
import ptufile
import qrspec
from qrspec.io import open_layout, read_tttr
lay = open_layout(path)

def floor():
    with open(path, "rb") as f:
        f.seek(lay.data_offset)
        return np.fromfile(f, "<u4", lay.n_records).size

def q():
    return read_tttr(path).size

def q_scalar():
    os.environ["QRSPEC_DECODE_KERNEL"] = "scalar"
    try:
        return read_tttr(path).size
    finally:
        del os.environ["QRSPEC_DECODE_KERNEL"]

def ptf():
    with ptufile.PtuFile(path) as f:
        r = f.decode_records()
    return int((r["channel"] >= 0).sum())

from qrspec.io.records import decode_kernel
os.environ.pop("QRSPEC_DECODE_KERNEL", None)
readers = {"floor": floor, "qrspec": q, "ptufile": ptf}
if decode_kernel() == "vector":  # the record-by-record kernels, for comparison
    readers["qrspec_scalar"] = q_scalar
if with_phconvert:
    from phconvert import pqreader
    readers["phconvert"] = lambda: pqreader.load_ptu(path)[0].size
n = {k: fn() for k, fn in readers.items()}  # warm-up: numba cache load, page cache
times = {k: [] for k in readers}
for _ in range(rounds):
    for k, fn in readers.items():
        t = time.perf_counter()
        fn()
        times[k].append(time.perf_counter() - t)
print(json.dumps({"n": n, "times": times, "kernel": decode_kernel()}))
"""

MEMORY = r"""
import json, sys
which, path, small = sys.argv[1], sys.argv[2], sys.argv[3]

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

if which == "qrspec":
    from qrspec.io import read_tttr
    read_tttr(small)  # kernels loaded: the fixed cost
    fixed = hwm()
    n = read_tttr(path).size
elif which == "qrspec_stream":
    from qrspec.io import iter_tttr
    from qrspec.stats.decay import DecayAccumulator
    from qrspec.stats.trace import TraceAccumulator
    trace, decay = TraceAccumulator(0.01), DecayAccumulator()
    for c in iter_tttr(small):
        trace.add(c)
        decay.add(c)
    fixed = hwm()
    trace, decay, n = TraceAccumulator(0.01), DecayAccumulator(), 0
    for c in iter_tttr(path):
        trace.add(c)
        decay.add(c)
        n += c.size
    trace.result(), decay.result()
elif which == "ptufile":
    import ptufile
    fixed = hwm()
    with ptufile.PtuFile(path) as f:
        r = f.decode_records()
    n = int((r["channel"] >= 0).sum())
elif which == "floor":
    import numpy as np
    from qrspec.io import open_layout
    lay = open_layout(path)
    fixed = hwm()
    with open(path, "rb") as f:
        f.seek(lay.data_offset)
        n = np.fromfile(f, "<u4", lay.n_records).size
print(json.dumps({"n": n, "fixed": fixed, "peak": hwm()}))
"""


COLD = r"""
import json, sys, time
t = time.perf_counter()
from qrspec.io import read_tttr
from qrspec.io.records import decode_kernel
read_tttr(sys.argv[1])
print(json.dumps({"s": time.perf_counter() - t, "kernel": decode_kernel()}))
"""


def cold_reads(small: str, rounds: int) -> dict:
    """Median wall time of a fresh process reading ``small`` with an empty numba cache (it
    compiles the scan and decode kernels of the file's record type), per decode kernel."""
    times: dict = {}
    for _ in range(rounds):
        for setting in ("auto", "scalar"):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(ENV, NUMBA_CACHE_DIR=cache, QRSPEC_DECODE_KERNEL=setting)
                out = subprocess.run([sys.executable, "-c", COLD, small], capture_output=True,
                                     text=True, env=env, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            times.setdefault(f"{setting} ({r['kernel']})", []).append(r["s"])
    return {k: float(np.median(v)) for k, v in times.items()}


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


def run(code, *args):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, env=ENV)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def paired_walls(cmds: dict, rounds: int) -> dict:
    """Median wall time of whole commands, run in turn for ``rounds`` rounds."""
    times = {k: [] for k in cmds}
    for cmd in cmds.values():  # warm-up (OS caches, numba cache not involved in info)
        subprocess.run(cmd, check=True, capture_output=True, env=ENV)
    for _ in range(rounds):
        for k, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=ENV)
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, default=50e6)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--keep", help="use/keep the synthetic file at this path")
    ap.add_argument("--info-file", help="file for the `qrspec info` start-up comparison")
    ap.add_argument("--phconvert", action="store_true", help="also time phconvert.load_ptu")
    args = ap.parse_args()
    tmpdir = tempfile.mkdtemp()
    path = args.keep or os.path.join(tmpdir, "synth_hh2t3.ptu")
    if not os.path.exists(path):
        t = time.perf_counter()
        make_file(path, int(args.photons))
        print(f"generated {path} in {time.perf_counter() - t:.1f} s")
    small = os.path.join(tmpdir, "small.ptu")
    make_file(small, 1000)
    print(f"file: {os.path.getsize(path) / 1e6:.0f} MB; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")

    # 1. speed, paired and interleaved in one process
    r = run(SPEED, path, args.rounds, int(args.phconvert))
    med = {k: float(np.median(v)) for k, v in r["times"].items()}
    n_ph = r["n"]["qrspec"]
    assert r["n"]["ptufile"] == n_ph, r["n"]
    print(f"\nspeed: median of {args.rounds} interleaved rounds, {n_ph / 1e6:.1f} M photons, "
          f"{r['kernel']} decode kernels")
    for k, v in med.items():
        print(f"  {k:<13} {v:7.3f} s   {os.path.getsize(path) / v / 1e9:5.2f} GB/s   rounds "
              + " ".join(f"{x:.3f}" for x in r["times"][k]))
    print(f"  ptufile / qrspec = {med['ptufile'] / med['qrspec']:.2f} (target >= 2); "
          f"qrspec / floor = {med['qrspec'] / med['floor']:.2f} (target <= 3)")
    if "qrspec_scalar" in med:
        print(f"  scalar kernels / vector kernels = {med['qrspec_scalar'] / med['qrspec']:.2f}")

    # 2. peak memory, each in a fresh process
    print("\npeak RSS (VmHWM of a fresh process)")
    for which in ("floor", "qrspec", "ptufile", "qrspec_stream"):
        m = run(MEMORY, which, path, small)
        extra = (m["peak"] - m["fixed"]) / max(m["n"], 1)
        print(f"  {which:<14} peak {m['peak'] / 2**20:7.0f} MiB, fixed {m['fixed'] / 2**20:5.0f} "
              f"MiB, above fixed {extra:5.2f} B/photon")
        if which == "qrspec":
            print(f"    qrspec whole-file read: {extra:.2f} B/photon above the fixed cost "
                  f"{m['fixed'] / 2**20:.0f} MiB (target <= 12)")

    # 3. first run: kernels compiled from an empty numba cache
    cold = cold_reads(small, 3)
    print("\nfirst read in a fresh process with an empty numba cache (compiles the HydraHarp T3 "
          "scan and decode kernels), median of 3 paired rounds")
    for k, v in cold.items():
        print(f"  {k:<18} {v:6.2f} s")

    # 4. start-up
    info_file = args.info_file or (REAL_INFO_FILE if os.path.exists(REAL_INFO_FILE) else None)
    if info_file is None:
        info_file = os.path.join(tmpdir, "info.ptu")
        make_file(info_file, 900_000)
    walls = paired_walls({
        "qrspec info": [sys.executable, "-m", "qrspec", "info", info_file],
        "ptufile decode": [sys.executable, "-c", "import sys, ptufile; "
                           "ptufile.PtuFile(sys.argv[1]).decode_records()", info_file],
        "import qrspec": [sys.executable, "-c", "import qrspec"],
        "qrspec --help": [sys.executable, "-m", "qrspec", "--help"],
    }, max(args.rounds, 5))
    print(f"\nstart-up (whole processes, median of paired rounds), info on "
          f"{os.path.basename(info_file)} ({os.path.getsize(info_file) / 1e6:.1f} MB)")
    for k, v in walls.items():
        print(f"  {k:<15} {v:6.3f} s")
    print(f"  qrspec info / ptufile = {walls['qrspec info'] / walls['ptufile decode']:.2f}; "
          f"target: qrspec info <= 0.5 s")


if __name__ == "__main__":
    main()
