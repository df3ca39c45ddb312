"""Benchmark: per-fit time of qrspec's Poisson-MLE decay fits against tttrlib's Fit24.

Usage::

    PYTHONPATH=. /work/venv/bin/python scripts/bench_fit.py \
        [--tttrlib-python /work/benchvenv2/bin/python] [--repeats 7]

For 256, 1024 and 6250 bins over a 100 ns period (10 MHz) and 10^3-10^5 photons it times
``fit_decay`` (mono- and bi-exponential, measured IRF, fitted IRF shift and background) and, in a
subprocess of a separate environment that has tttrlib, ``tttrlib.Fit24`` (bi-exponential MLE
with periodic IRF convolution; "mono" = tau2 and its fraction fixed) on the same histograms
(mono data: tau = 3 ns; bi data: 1 and 5 ns, photon fractions 0.4/0.6; 2 % flat background).
Fit24 wants "Jordi" format (parallel + perpendicular concatenated), so it is given the decay
twice (2 x n bins) as in peers.md; qrspec is also timed on 2 x n bins for an equal-size
comparison. Times are the minimum over repeats (the machine is shared); ratios > 1 mean
qrspec is faster.
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

PERIOD_NS = 100.0
SIGMA_IRF_NS = 0.1
T0_NS = 5.0

TTTRLIB_WORKER = r"""
import json, sys, time
import numpy as np
import tttrlib
d = np.load(sys.argv[1])
out = {}
for key in [k for k in d.files if k.startswith("counts_")]:
    _, n_bins, n_ph, model = key.split("_")
    irf = d["irf_" + n_bins]
    dt = float(d["dt_" + n_bins])
    jordi = lambda a: np.hstack([a, a]).astype(np.float64)
    fit = tttrlib.Fit24(dt=dt, irf=jordi(irf * 1e4), background=jordi(np.ones_like(irf)),
                        period=float(d["period"]))
    counts = d[key].astype(np.float64)
    x0, fixed = {"mono": ([2.0, 0.0, 5.0, 0.0, 0.1], [0, 1, 1, 1, 0]),
                 "bi": ([1.5, 0.0, 6.0, 0.5, 0.1], [0, 1, 0, 0, 0])}[model]
    best = float("inf")
    for _ in range(int(d["repeats"])):
        t = time.perf_counter()
        r = fit(data=jordi(counts), initial_values=np.array(x0, float),
                fixed=np.array(fixed, np.int16))
        best = min(best, time.perf_counter() - t)
    out[key] = {"time_s": best, "x": [float(v) for v in r["x"][:5]]}
print(json.dumps(out))
"""


def simulate(rng, n_bins, n_photons, taus, fractions, bg_fraction=0.02):
    """Photon-level decay: Gaussian IRF + exponential(s), folded into the period, + flat bg."""
    bin_ns = PERIOD_NS / n_bins
    n_bg = rng.binomial(n_photons, bg_fraction)
    n_sig = n_photons - n_bg
    comp = rng.choice(len(taus), n_sig, p=fractions)
    t = T0_NS + rng.normal(0, SIGMA_IRF_NS, n_sig) + rng.exponential(np.asarray(taus)[comp])
    t = np.mod(np.concatenate([t, rng.uniform(0, PERIOD_NS, n_bg)]), PERIOD_NS)
    return np.bincount(np.minimum((t / bin_ns).astype(int), n_bins - 1), minlength=n_bins)


def time_qrspec(counts, irf, bin_ns, model, repeats):
    from qrspec.fitting import fit_decay

    best = float("inf")
    fit = None
    for _ in range(repeats):
        t = time.perf_counter()
        fit = fit_decay(counts, bin_ns=bin_ns, irf=irf, model=model, period_ns=PERIOD_NS)
        best = min(best, time.perf_counter() - t)
    return best, fit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tttrlib-python", default="/work/benchvenv2/bin/python")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    from qrspec.fitting import ModelIRF

    rng = np.random.default_rng(1)
    data = {"period": PERIOD_NS, "repeats": args.repeats}
    cases = []
    for n_bins in (256, 1024, 6250):
        bin_ns = PERIOD_NS / n_bins
        irf = ModelIRF(T0_NS, SIGMA_IRF_NS).histogram(n_bins, bin_ns)
        data[f"irf_{n_bins}"] = irf
        data[f"dt_{n_bins}"] = bin_ns
        for n_ph in (1000, 10_000, 100_000):
            for model, taus, fr in (("mono", [3.0], [1.0]), ("bi", [1.0, 5.0], [0.4, 0.6])):
                counts = simulate(rng, n_bins, n_ph, taus, fr)
                data[f"counts_{n_bins}_{n_ph}_{model}"] = counts
                cases.append((n_bins, n_ph, model, taus, fr, counts, irf, bin_ns))

    # warm-up (numba compilation / cache load) outside the timings
    time_qrspec(cases[1][5], cases[1][6], cases[1][7], "bi", 1)

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

    print(f"{'bins':>5} {'photons':>8} {'model':>5} {'qrspec ms':>10} {'tau (ns)':>18} "
          f"{'qrspec 2n ms':>13} {'Fit24 2xn ms':>13} {'ratio n':>8} {'ratio 2n':>9}")
    for n_bins, n_ph, model, taus, fr, counts, irf, bin_ns in cases:
        irf2 = ModelIRF(T0_NS, SIGMA_IRF_NS).histogram(2 * n_bins, bin_ns / 2)
        counts2 = simulate(rng, 2 * n_bins, n_ph, taus, fr)
        t_q, fit = time_qrspec(counts, irf, bin_ns, model, args.repeats)
        t_q2, _ = time_qrspec(counts2, irf2, bin_ns / 2, model, args.repeats)
        tau_txt = ", ".join(f"{t:.3g}" for t in fit.tau_ns) if fit.success else fit.message
        p = peer.get(f"counts_{n_bins}_{n_ph}_{model}")
        if p:
            t_p = p["time_s"]
            ratio, ratio2 = f"{t_p / t_q:8.2f}", f"{t_p / t_q2:9.2f}"
            peer_ms = f"{1e3 * t_p:13.2f}"
        else:
            ratio = ratio2 = peer_ms = "n/a"
        print(f"{n_bins:5d} {n_ph:8d} {model:>5} {1e3 * t_q:10.2f} {tau_txt:>18} "
              f"{1e3 * t_q2:13.2f} {peer_ms:>13} {ratio:>8} {ratio2:>9}")
    if peer:
        print("\nratio = Fit24 time / qrspec time (n: qrspec on n bins, Fit24 on 2 x n; "
              "2n: both on 2 x n bins). Fit24 parameters x (tau1, gamma, tau2, a2, offset) for "
              "the 1024-bin, 10^4-photon bi fit:",
              peer.get("counts_1024_10000_bi", {}).get("x"), "(truth 1, -, 5, 0.6, -)")


if __name__ == "__main__":
    main()
