"""Benchmark: writing HDF5 through qrspec.io.atomic.atomic_h5 against h5py's own drivers.

Writes the same file (``--groups`` groups of 20 gzip-compressed float64 datasets of 5000 values
each, plus attributes; the default is about 80 MB) three ways, interleaved over ``--repeat``
rounds in one process so that machine noise hits all three alike:

* ``native``: ``h5py.File(path, "w")`` (sec2 driver) - fast, but segfaults on a full disk;
* ``atomic_h5``: h5py's fileobj driver on qrspec's never-failing file object, temp file, fsync,
  verification (reopen and read every dataset) and rename - what qrspec uses;
* ``core``: build the file in memory (``driver="core", backing_store=False``) and write the
  image with ``os.write`` - the other way to keep HDF5 from seeing a write error.

Prints the median wall time of each and its ratio to ``native``, and the peak RSS growth of one
write of each (each in a fresh subprocess: VmHWM after minus VmRSS before). Usage:
``python scripts/bench_atomic.py [--groups 100] [--repeat 5] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from qrspec.io.atomic import atomic_h5  # noqa: E402


def fill(f, n_groups: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n_groups):
        g = f.create_group(f"p{i}")
        for k in range(20):
            d = g.create_dataset(f"d{k}", data=rng.normal(size=5000), compression="gzip",
                                 compression_opts=1, shuffle=True)
            d.attrs["units"] = "ns"
            d.attrs["description"] = "x" * 50


def native(path, n):
    with h5py.File(path, "w") as f:
        fill(f, n)


def atomic(path, n):
    with atomic_h5(path) as h:
        fill(h.file, n)


def atomic_noverify(path, n):
    with atomic_h5(path, verify=False) as h:
        fill(h.file, n)


def core(path, n):
    with h5py.File("mem.h5", "w", driver="core", backing_store=False) as f:
        fill(f, n)
        f.flush()
        image = f.id.get_file_image()
    with open(path, "wb") as fh:
        fh.write(image)
        fh.flush()
        os.fsync(fh.fileno())


WAYS = {"native": native, "atomic_h5": atomic, "atomic_h5 (no verify)": atomic_noverify,
        "core": core}


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--rss-of", choices=list(WAYS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rss_of:  # child: one write, print the peak RSS growth in MB
        with tempfile.TemporaryDirectory(dir=a.dir) as d:
            before = _status_mb("VmRSS")
            WAYS[a.rss_of](os.path.join(d, "out.h5"), a.groups)
            print(_status_mb("VmHWM") - before)
        return
    ways = WAYS
    times = {k: [] for k in ways}
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        for _ in range(a.repeat):
            for name, fn in ways.items():
                p = os.path.join(d, "out.h5")
                t = time.perf_counter()
                fn(p, a.groups)
                times[name].append(time.perf_counter() - t)
                size = os.path.getsize(p)
                os.unlink(p)
    base = statistics.median(times["native"])
    print(f"file: {size / 1e6:.1f} MB, {a.groups * 20} datasets; medians of {a.repeat} "
          "interleaved rounds")
    for name, ts in times.items():
        m = statistics.median(ts)
        r = subprocess.run([sys.executable, __file__, "--groups", str(a.groups), "--rss-of",
                            name] + (["--dir", a.dir] if a.dir else []),
                           capture_output=True, text=True, check=True)
        print(f"  {name:24s} {m:7.3f} s   {m / base:5.2f}x native   peak RSS "
              f"+{float(r.stdout):.0f} MB")


if __name__ == "__main__":
    main()
