"""Benchmark: lifetime fits of qrspec against tttrlib on the same decay histograms, in one run.

Usage::

    python scripts/bench_fit.py [--tttrlib-python /work/venvs/peers/bin/python] [--decays 100]

Two sets of cases, each printed side by side (ms per fit, median over rounds; ratio > 1 means
qrspec is faster):

* tttrlib's published case (``examples/fluorescence_decay/plot_fit23_benchmark_1.py``: its
  measured IRF, 32 channels of 0.508 ns, a 32 ns period, 20-10^4 photons, mono-exponential):
  ``tttrlib.Fit23`` (lifetime and rotation free, scatter and r0 fixed) on the "Jordi" histogram
  (parallel + perpendicular, 2 x 32), qrspec ``fit_decay(model="mono")`` with the IRF, fitted
  shift and background on the parallel 32 channels;
* qrspec's own case (100 ns period, 256 / 1024 / 6250 bins, Gaussian IRF sigma 0.1 ns, 2 % flat
  background, mono tau = 3 ns and bi 1 + 5 ns): ``tttrlib.Fit24`` (bi-exponential MLE with IRF;
  "mono" = tau2 and its fraction fixed) given the histogram twice (2 x n, as Fit24 wants Jordi
  data), qrspec ``fit_decay`` on n bins.

"single" times a loop of single fits; "batched" times one call for all decays
(``fit_decays``, threads). tttrlib 0.26.2 has no batch API (its published 0.07 ms "batched"
figure comes from a later interface), so its batched column repeats its loop. tttrlib runs in
its own environment (a subprocess); the machine is shared: compare the ratios, not the times.
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

# tttrlib's fit23 benchmark IRF (parallel 32 channels, perpendicular 32 channels)
FIT23_IRF = np.array([0, 0, 0, 260, 1582, 155] + [0] * 28 + [22, 1074, 830, 10] + [0] * 26,
                     np.float64)
FIT23_DT, FIT23_PERIOD = 0.5079365079365079, 32.0

PERIOD_NS, SIGMA_IRF_NS, T0_NS = 100.0, 0.1, 5.0

TTTRLIB_WORKER = r"""
import json, sys, time
import numpy as np
import tttrlib
d = np.load(sys.argv[1])
rounds = int(d["rounds"])
out = {}
for key in [k for k in d.files if k.startswith("counts_")]:
    _, case, model = key.split("|")
    counts = d[key].astype(np.float64)  # (n_decays, n_bins)
    if case.startswith("fit23"):
        irf = d["fit23_irf"]
        fit = tttrlib.Fit23(dt=float(d["fit23_dt"]), irf=irf, background=np.zeros_like(irf),
                            period=float(d["fit23_period"]), g_factor=1.0, l1=0.1, l2=0.1)
        x0, fixed = np.array([2.0, 0.01, 0.38, 1.22]), np.array([0, 1, 1, 0])
        data = np.hstack([counts, counts * 0.5])  # perpendicular: half the parallel
    else:
        n_bins = counts.shape[1]
        irf = d["irf_" + str(n_bins)]
        jordi = lambda a: np.hstack([a, a]).astype(np.float64)
        fit = tttrlib.Fit24(dt=float(d["dt_" + str(n_bins)]), irf=jordi(irf * 1e4),
                            background=jordi(np.ones_like(irf)), period=float(d["period"]))
        x0, fixed = {"mono": ([2.0, 0.0, 5.0, 0.0, 0.1], [0, 1, 1, 1, 0]),
                     "bi": ([1.5, 0.0, 6.0, 0.5, 0.1], [0, 1, 0, 0, 0])}[model]
        x0, fixed = np.array(x0, float), np.array(fixed, np.int16)
        data = np.hstack([counts, counts])
    times, taus = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        res = [fit(data=row, initial_values=x0, fixed=fixed)["x"][0] for row in data]
        times.append((time.perf_counter() - t) / len(data))
        taus = res
    out[key] = {"ms": 1e3 * float(np.median(times)), "tau_median": float(np.median(taus))}
print(json.dumps(out))
"""


def simulate(rng, n_decays, n_bins, bin_ns, period, n_photons, taus, fractions, t0, sigma,
             bg_fraction=0.02):
    """Photon-level decays (Gaussian IRF + exponentials folded into the period + flat bg)."""
    out = np.empty((n_decays, n_bins), np.int64)
    for i in range(n_decays):
        n_bg = rng.binomial(n_photons, bg_fraction)
        comp = rng.choice(len(taus), n_photons - n_bg, p=fractions)
        t = t0 + rng.normal(0, sigma, comp.size) + rng.exponential(np.asarray(taus)[comp])
        t = np.mod(np.concatenate([t, rng.uniform(0, period, n_bg)]), period)
        out[i] = np.bincount(np.minimum((t / bin_ns).astype(int), n_bins - 1), minlength=n_bins)
    return out


def fit23_decays(rng, n_decays, n_photons):
    """tttrlib's benchmark: photons drawn from the IRF (parallel half) convolved with tau."""
    irf = FIT23_IRF[:32] / FIT23_IRF[:32].sum()
    t_irf = (np.arange(32) + 0.5) * FIT23_DT
    out = np.empty((n_decays, 32), np.int64)
    for i in range(n_decays):
        t = rng.choice(t_irf, n_photons, p=irf) + rng.exponential(2.0, n_photons)
        t = np.mod(t, FIT23_PERIOD)
        out[i] = np.bincount(np.minimum((t / FIT23_DT).astype(int), 31), minlength=32)
    return out


def time_qrspec(counts, rounds, **kw):
    from qrspec.fitting import fit_decay, fit_decays

    single, batched = [], []
    for _ in range(rounds):  # interleaved: single loop, then the batched call
        t = time.perf_counter()
        fits = [fit_decay(row, **kw) for row in counts]
        single.append((time.perf_counter() - t) / len(counts))
        t = time.perf_counter()
        fits_b = fit_decays(counts, **kw)
        batched.append((time.perf_counter() - t) / len(counts))
    assert all(a.tau_ns == b.tau_ns for a, b in zip(fits, fits_b, strict=True))
    taus = [f.tau_ns[0] for f in fits if f.success]
    n_ok = sum(f.success for f in fits)
    return (1e3 * float(np.median(single)), 1e3 * float(np.median(batched)),
            float(np.median(taus)) if taus else float("nan"), n_ok)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tttrlib-python", default="/work/venvs/peers/bin/python")
    ap.add_argument("--decays", type=int, default=100, help="decays per case")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    sys.path.insert(0, REPO)
    from qrspec.fitting import ModelIRF

    rng = np.random.default_rng(1)
    data = {"period": PERIOD_NS, "rounds": args.rounds, "fit23_irf": FIT23_IRF,
            "fit23_dt": FIT23_DT, "fit23_period": FIT23_PERIOD}
    cases = []  # (key, label, counts, qrspec kwargs)
    irf23 = np.zeros(int(round(FIT23_PERIOD / FIT23_DT)))
    irf23[:32] = FIT23_IRF[:32]
    for n_ph in (20, 100, 1000, 10_000):
        counts = fit23_decays(rng, args.decays, n_ph)
        key = f"counts_|fit23_{n_ph}|mono"
        data[key] = counts
        cases.append((key, f"fit23 case   32 bins {n_ph:>6} ph mono", counts,
                      dict(bin_ns=FIT23_DT, irf=irf23[:32], model="mono",
                           period_ns=FIT23_PERIOD, min_photons=10)))
    for n_bins in (256, 1024, 6250):
        bin_ns = PERIOD_NS / n_bins
        irf = ModelIRF(T0_NS, SIGMA_IRF_NS).histogram(n_bins, bin_ns)
        data[f"irf_{n_bins}"], data[f"dt_{n_bins}"] = irf, bin_ns
        for n_ph in (1000, 100_000):
            for model, taus, fr in (("mono", [3.0], [1.0]), ("bi", [1.0, 5.0], [0.4, 0.6])):
                counts = simulate(rng, max(args.decays // 4, 5), n_bins, bin_ns, PERIOD_NS, n_ph,
                                  taus, fr, T0_NS, SIGMA_IRF_NS)
                key = f"counts_|own_{n_bins}_{n_ph}|{model}"
                data[key] = counts
                cases.append((key, f"qrspec case {n_bins:>4} bins {n_ph:>6} ph {model:<4}",
                               counts, dict(bin_ns=bin_ns, irf=irf, model=model,
                                            period_ns=PERIOD_NS)))
    # warm-up (numba cache load) outside the timings
    time_qrspec(cases[1][2][:2], 1, **cases[1][3])
    peer = {}
    if os.path.exists(args.tttrlib_python):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bench.npz")
            np.savez(path, **data)
            proc = subprocess.run([args.tttrlib_python, "-c", TTTRLIB_WORKER, path],
                                  capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                peer = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                print(f"tttrlib worker failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
    else:
        print(f"{args.tttrlib_python} not found: no tttrlib comparison", file=sys.stderr)
    print(f"{'case':<38}{'qrspec single':>14}{'batched':>9}{'tttrlib':>9}{'ratio':>7}"
          f"{'ratio b':>8}   tau median qrspec / tttrlib (ns)")
    for key, label, counts, kw in cases:
        single, batched, tau, n_ok = time_qrspec(counts, args.rounds, **kw)
        p = peer.get(key)
        t_p = p["ms"] if p else float("nan")
        tau_p = f"{p['tau_median']:.3g}" if p else "n/a"
        print(f"{label:<38}{single:>14.3f}{batched:>9.3f}{t_p:>9.3f}{t_p / single:>7.2f}"
              f"{t_p / batched:>8.2f}   {tau:.3g} / {tau_p} ({n_ok}/{len(counts)} ok)")
    print("\nms per fit (median of rounds); ratio = tttrlib / qrspec single, ratio b = tttrlib / "
          "qrspec batched. Truth: fit23 case tau = 2 ns; own case mono 3 ns, bi 1 and 5 ns.")


if __name__ == "__main__":
    main()
