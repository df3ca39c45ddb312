"""Benchmark the photon kernels on a synthetic 5 M-photon two-detector particle.

Times (minimum of ``--repeat`` runs, numba compilation excluded):

* ``intensity_trace`` (10 ms bins) and ``decay_histogram`` throughput in M photons/s;
* gated pulsed g2 over +-5 periods at 0.5 ns bins (``qrspec.stats.correlation.g2``, end to
  end from a ``Photons`` object, and streamed through ``G2Accumulator`` in 1 M-photon chunks)
  against a plain numba two-pointer loop on pre-gated, per-detector, time-sorted absolute times
  (the preparation of its input is timed separately and not charged to it), and against
  pycorrelate
  and tttrlib when importable in ``--peer-python`` (a separate venv; nothing is installed here).

The two-pointer result must equal qrspec's histogram exactly (checked). Ratios > 1 mean qrspec
is faster.

Usage::

    PYTHONPATH=. /work/venv/bin/python scripts/bench_kernels.py [--photons 5e6] [--repeat 3]
        [--peer-python /work/benchvenv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

PERIOD_S = 1e-7  # 10 MHz
RES_S = 16e-12
GATE_NS = (2.0, 90.0)
K_PERIODS = 5
BIN_NS = 0.5


def synthetic_particle(n_photons: int, seed: int = 20240611):
    """200 kcps two-detector emitter: Gaussian IRF at 2 ns, 20 ns exponential decay."""
    from qrspec.photons import Photons

    rng = np.random.default_rng(seed)
    n_periods = int(n_photons / 2e5 / PERIOD_S)  # 200 kcps
    ts = np.sort(rng.integers(0, n_periods, n_photons))
    det = rng.integers(0, 2, n_photons).astype(np.uint8)
    t_ns = 2.0 + rng.normal(0, 0.05, n_photons) + rng.exponential(20.0, n_photons)
    nt = (np.floor(t_ns / 0.016).astype(np.int64) % 6250).astype(np.uint16)
    return Photons.from_arrays(ts, det, nt, timestamps_unit=PERIOD_S, nanotimes_unit=RES_S)


@numba.njit(cache=True, nogil=True)
def two_pointer(a, b, half, bin_q, n_bins):
    """Plain two-pointer windowed histogram of b - a over [-half, half) (a, b sorted)."""
    h = np.zeros(n_bins, np.int64)
    lo = 0
    nb = b.size
    for x in a:
        while lo < nb and b[lo] < x - half:
            lo += 1
        j = lo
        while j < nb and b[j] < x + half:
            h[(b[j] - x + half) // bin_q] += 1
            j += 1
    return h


def best_time(fn, repeat):
    fn()  # warm-up: numba compilation and caches
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
d = np.load(sys.argv[1])
a, b, half, bin_q = d["a"], d["b"], int(d["half"]), int(d["bin_q"])
out = {}
try:
    import pycorrelate
    bins = np.arange(0, half + 1, bin_q, dtype=np.int64)
    pycorrelate.pcorrelate(a[:1000], b[:1000], bins)  # compile
    t0 = time.perf_counter()
    nbins = bins + 1  # a - b in [1, half + 1): lag 0 only once, lag -half included
    pos = pycorrelate.pcorrelate(a, b, bins) * np.diff(bins)   # b - a in [0, half)
    neg = pycorrelate.pcorrelate(b, a, nbins) * np.diff(nbins)
    out["pycorrelate_s"] = time.perf_counter() - t0
    out["pycorrelate_pairs"] = int(round(pos.sum() + neg.sum()))
except Exception as e:  # report, never hide
    out["pycorrelate_error"] = repr(e)
try:
    import tttrlib
    c = tttrlib.Correlator()
    c.n_casc = 37
    c.n_bins = 7
    t0 = time.perf_counter()
    c.set_events(a.astype(np.uint64), np.ones(a.size), b.astype(np.uint64), np.ones(b.size))
    c.run()
    _ = c.get_corr()
    out["tttrlib_s"] = time.perf_counter() - t0
except Exception as e:
    out["tttrlib_error"] = repr(e)
print(json.dumps(out))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photons", type=float, default=5e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-python", default="/work/benchvenv/bin/python")
    args = ap.parse_args(argv)

    from qrspec.stats.correlation import G2Accumulator, g2
    from qrspec.stats.decay import decay_histogram
    from qrspec.stats.trace import intensity_trace

    n = int(args.photons)
    ph = synthetic_particle(n)
    print(f"synthetic particle: {ph.size:,} photons, 2 detectors, {ph.duration_s:.1f} s, "
          f"10 MHz, 16 ps bins")
    results = {}

    t, _ = best_time(lambda: intensity_trace(ph, 0.01), args.repeat)
    results["trace"] = t
    print(f"intensity_trace 10 ms     {t * 1e3:8.2f} ms  {n / t / 1e6:7.0f} M photons/s "
          f"(target >= 200)")
    t, _ = best_time(lambda: decay_histogram(ph), args.repeat)
    results["decay"] = t
    print(f"decay_histogram           {t * 1e3:8.2f} ms  {n / t / 1e6:7.0f} M photons/s "
          f"(target >= 200; includes offset estimation)")

    from qrspec.stats.decay import flid, sliced_decays
    from qrspec.stats.pairs import photon_pairs

    t, _ = best_time(lambda: sliced_decays(ph, bin_width_s=0.01,
                                           intensity_ranges=[(0, 1500), (1500, 10**6)]),
                     args.repeat)
    print(f"sliced_decays 10 ms       {t * 1e3:8.2f} ms  {n / t / 1e6:7.0f} M photons/s "
          "(trace + decays, two passes)")
    t, _ = best_time(lambda: flid(ph, 0.01), args.repeat)
    print(f"flid 10 ms                {t * 1e3:8.2f} ms  {n / t / 1e6:7.0f} M photons/s")
    t, _ = best_time(lambda: photon_pairs(ph), args.repeat)
    print(f"photon_pairs              {t * 1e3:8.2f} ms  {n / t / 1e6:7.0f} M photons/s")

    # zero offsets: the gate on the raw nanotimes, as the two-pointer reference's pre-gating
    kw = dict(gate_ns=GATE_NS, gate_offsets_ns=(0.0, 0.0), max_lag_periods=K_PERIODS,
              bin_ns=BIN_NS)
    t_q, curve = best_time(lambda: g2(ph, **kw), args.repeat)
    print(f"qrspec g2 gated +-{K_PERIODS}P     {t_q * 1e3:8.2f} ms  ({curve.counts.sum():,} pairs,"
          f" {curve.counts.size} bins, end to end)")
    t_u, _ = best_time(lambda: g2(ph, max_lag_periods=K_PERIODS, bin_ns=BIN_NS), args.repeat)
    print(f"qrspec g2 ungated         {t_u * 1e3:8.2f} ms")

    def streamed():
        acc = G2Accumulator(**kw)
        step = 1_000_000
        for i in range(0, ph.size, step):
            acc.add(_slice(ph, i, i + step))
        return acc.result()

    t_s, c_s = best_time(streamed, args.repeat)
    assert np.array_equal(c_s.counts, curve.counts)
    print(f"qrspec g2 streamed (1M)   {t_s * 1e3:8.2f} ms  (chunk slicing included; == whole)")

    # two-pointer baseline on pre-gated, per-detector, time-sorted absolute times (1 ps)
    def prepare():
        lo, hi = int(np.ceil(GATE_NS[0] / 0.016 - 1e-9)), int(np.ceil(GATE_NS[1] / 0.016 - 1e-9))
        keep = (ph.nanotimes >= lo) & (ph.nanotimes < hi)
        t_abs = (ph.timestamps - ph.timestamps[0]) * 100_000 + ph.nanotimes.astype(np.int64) * 16
        a = np.sort(t_abs[keep & (ph.detectors == 0)])
        b = np.sort(t_abs[keep & (ph.detectors == 1)])
        return a, b

    t_prep, (a, b) = best_time(prepare, args.repeat)
    bin_q = round(curve.bin_ns * 1000)
    half = -round(curve.edges_ns[0] * 1000)
    t_tp, h = best_time(lambda: two_pointer(a, b, half, bin_q, curve.counts.size), args.repeat)
    assert np.array_equal(h, curve.counts), "two-pointer and qrspec histograms differ"
    print(f"two-pointer numba loop    {t_tp * 1e3:8.2f} ms  (+ {t_prep * 1e3:.1f} ms input "
          "preparation not charged; identical histogram)")
    print(f"  ratio two-pointer / qrspec g2: {t_tp / t_q:5.2f} "
          f"(with its preparation: {(t_tp + t_prep) / t_q:5.2f})")

    if os.path.exists(args.peer_python):
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "times.npz")
            np.savez(f, a=a, b=b, half=half, bin_q=bin_q)
            script = os.path.join(tmp, "peer.py")
            with open(script, "w") as fh:
                fh.write(PEER_SCRIPT)
            proc = subprocess.run([args.peer_python, script, f], capture_output=True, text=True,
                                  timeout=600)
        if proc.returncode != 0:
            print(f"peers failed: {proc.stderr.strip()[-500:]}")
        else:
            peers = json.loads(proc.stdout.strip().splitlines()[-1])
            if "pycorrelate_s" in peers:
                ok = peers["pycorrelate_pairs"] == int(curve.counts.sum())
                print(f"pycorrelate pcorrelate x2 {peers['pycorrelate_s'] * 1e3:8.0f} ms  "
                      f"ratio {peers['pycorrelate_s'] / t_q:6.0f}x  (pairs match: {ok})")
            else:
                print(f"pycorrelate: {peers.get('pycorrelate_error')}")
            if "tttrlib_s" in peers:
                print(f"tttrlib Correlator (fine) {peers['tttrlib_s'] * 1e3:8.0f} ms  "
                      f"ratio {peers['tttrlib_s'] / t_q:6.0f}x  (multi-tau log axis, 37 "
                      "cascades x 7 bins on 1 ps times: not a linear pulsed histogram)")
            else:
                print(f"tttrlib: {peers.get('tttrlib_error')}")
    else:
        print(f"peers skipped: {args.peer_python} not found")
    return 0


def _slice(ph, a, b):
    from dataclasses import replace

    return replace(ph, timestamps=ph.timestamps[a:b], detectors=ph.detectors[a:b],
                   nanotimes=ph.nanotimes[a:b])


if __name__ == "__main__":
    sys.exit(main())
