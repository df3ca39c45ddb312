"""Benchmark: lifetime fits of qrspec against tttrlib on the same decay histograms, in one run.

Usage::

    python scripts/bench_fit.py [--decays 100] [--rounds 5] [--baseline DIR]
                                [--tttrlib-python /work/venvs/peers/bin/python]
    python scripts/bench_fit.py --compile [--rounds 3] [--baseline DIR]

Cases (ms per fit; ratio > 1 means qrspec is faster):

* tttrlib's published case (``examples/fluorescence_decay/plot_fit23_benchmark_1.py``: its
  measured IRF, 32 channels of 0.508 ns, a 32 ns period, 20-10^4 photons, mono-exponential):
  ``tttrlib.Fit23`` (lifetime and rotation free, scatter and r0 fixed, background given) on the
  "Jordi" histogram (parallel + perpendicular, 2 x 32); qrspec ``fit_decay(model="mono")`` with
  the IRF on the parallel 32 channels, twice: "4 free" (lifetime, amplitude, background, IRF
  shift: qrspec's default, more work than Fit23) and "2 free" (lifetime and amplitude;
  background fixed at 0 and no shift: the same number of free parameters as Fit23);
* qrspec's own case (100 ns period, 256 / 1024 / 6250 bins, Gaussian IRF sigma 0.1 ns, 2 % flat
  background, mono tau = 3 ns and bi 1 + 5 ns, fitted background and shift): ``tttrlib.Fit24``
  (bi-exponential MLE with IRF; "mono" = tau2 and its fraction fixed) given the histogram twice
  (2 x n, as Fit24 wants Jordi data), qrspec ``fit_decay`` on n bins.

qrspec columns: "single" times a loop of ``fit_decay`` calls (arguments checked, start values
and result built per call); "batch 1" one ``fit_decays`` call for all decays on one thread
(checks and start values shared, one kernel call); "batch" the same on all CPUs (threads over
row chunks). tttrlib times a loop of calls of one fit object (built once per case); 0.26.2 has
no batch API (its published 0.07 ms "batched" figure comes from a later interface).

Every runner is a subprocess (tttrlib in its own environment; ``--baseline DIR`` adds the same
qrspec timings of another checkout, e.g. ``git worktree add /tmp/base <commit>``), and the
rounds are interleaved: each round runs every runner once on every case; the medians over the
rounds are printed. The machine is shared: compare ratios measured in the same run.

``--compile``: the numba compilation that a new environment pays once, per checkout: a fresh
process with an empty ``NUMBA_CACHE_DIR`` runs five fits (tail mono and bi, IRF mono with
shift, IRF bi with scatter, cascade), each twice; the CPU time of the first call minus the
second is the compilation (numba, scipy and qrspec are imported before). Median of the rounds,
checkouts interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# tttrlib's fit23 benchmark IRF (parallel 32 channels, perpendicular 32 channels)
FIT23_IRF = np.array([0, 0, 0, 260, 1582, 155] + [0] * 28 + [22, 1074, 830, 10] + [0] * 26,
                     np.float64)
FIT23_DT, FIT23_PERIOD = 0.5079365079365079, 32.0

PERIOD_NS, SIGMA_IRF_NS, T0_NS = 100.0, 0.1, 5.0

TTTRLIB_WORKER = r"""
import gc, json, sys, time
import numpy as np
import tttrlib
d = np.load(sys.argv[1])
out = {}
for key in [k for k in d.files if k.startswith("counts|")]:
    _, case, model, variant = key.split("|")
    if variant != "default":
        continue  # tttrlib runs its own configuration once per case
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
    fit(data=data[0], initial_values=x0, fixed=fixed)  # warm-up
    gc.collect()
    t = time.perf_counter()
    res = [fit(data=row, initial_values=x0, fixed=fixed)["x"] for row in data]
    dt = (time.perf_counter() - t) / len(data)
    # Fit24: x = (tau1, gamma, tau2, A2, offset): report the shorter lifetime for "bi"
    taus = [min(r[0], r[2]) if model == "bi" else r[0] for r in res]
    out[key] = {"single": 1e3 * dt, "tau": float(np.median(taus))}
print(json.dumps(out))
"""

QRSPEC_WORKER = r"""
import gc, json, os, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
from qrspec.fitting import fit_decay, fit_decays
d = np.load(sys.argv[1])
n_threads = min(8, len(os.sched_getaffinity(0)))
out = {}
for key in [k for k in d.files if k.startswith("counts|")]:
    counts = d[key].astype(np.float64)
    kw = json.loads(str(d["kwargs|" + key]))
    if "irf" in kw:
        kw["irf"] = d[kw["irf"]]
    fit_decay(counts[0], **kw)  # numba cache load, first-call costs (of both paths)
    fit_decays(counts[:2], n_threads=1, **kw)
    gc.collect()  # every timed block starts without garbage (as timeit's)
    t = time.perf_counter()
    fits = [fit_decay(row, **kw) for row in counts]
    single = (time.perf_counter() - t) / len(counts)
    gc.collect()
    t = time.perf_counter()
    fits_1 = fit_decays(counts, n_threads=1, **kw)
    batch_1 = (time.perf_counter() - t) / len(counts)
    gc.collect()
    t = time.perf_counter()
    fits_n = fit_decays(counts, n_threads=n_threads, **kw)
    batch_n = (time.perf_counter() - t) / len(counts)
    same = all(np.allclose(a.tau_ns, b.tau_ns, rtol=1e-9) and np.allclose(a.tau_ns, c.tau_ns,
               rtol=1e-9) for a, b, c in zip(fits, fits_1, fits_n) if a.success)
    taus = [f.tau_ns[0] for f in fits if f.success]
    out[key] = {"single": 1e3 * single, "batch_1": 1e3 * batch_1, "batch": 1e3 * batch_n,
                "tau": float(np.median(taus)) if taus else float("nan"),
                "n_ok": sum(f.success for f in fits), "same": bool(same)}
print(json.dumps(out))
"""

COMPILE_WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import numba  # noqa: F401 - imports outside the measurement
import scipy.optimize, scipy.special  # noqa: F401
from qrspec.fitting import ModelIRF, fit_decay
rng = np.random.default_rng(0)
n, bin_ns = 256, 100.0 / 256
t_ns = np.arange(n) * bin_ns
irf = ModelIRF(5.0, 0.1).histogram(n, bin_ns)
shape = np.convolve(np.exp(-t_ns / 3.0), irf)[:n]
c = rng.poisson(5000 * shape / shape.sum() + 2).astype(float)
cases = {
    "tail mono": dict(model="mono", fit_range_ns=(6.0, 100.0)),
    "tail bi": dict(model="bi", fit_range_ns=(6.0, 100.0)),
    "IRF mono": dict(model="mono", irf=irf),
    "IRF bi scatter": dict(model="bi", irf=irf, scatter=True),
    "cascade": dict(model="cascade", irf=irf, mean_excitations=0.2),
}
out = {}
for name, kw in cases.items():
    t0 = time.process_time()
    fit_decay(c, bin_ns=bin_ns, **kw)
    t1 = time.process_time()
    fit_decay(c, bin_ns=bin_ns, **kw)
    t2 = time.process_time()
    out[name] = (t1 - t0) - (t2 - t1)
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


def make_cases(n_decays):
    """(npz dict, [(key, label)]) of every case: counts, qrspec keyword arguments (JSON)."""
    rng = np.random.default_rng(1)
    data = {"period": PERIOD_NS, "fit23_irf": FIT23_IRF, "fit23_dt": FIT23_DT,
            "fit23_period": FIT23_PERIOD, "irf_fit23": FIT23_IRF[:32]}
    cases = []
    for n_ph in (20, 100, 1000, 10_000):
        counts = fit23_decays(rng, n_decays, n_ph)
        base = dict(bin_ns=FIT23_DT, irf="irf_fit23", model="mono", period_ns=FIT23_PERIOD,
                    min_photons=10)
        for variant, extra, label in (("default", {}, "4 free"),
                                      ("matched", {"background": 0.0, "fit_shift": False},
                                       "2 free")):
            key = f"counts|fit23_{n_ph}|mono|{variant}"
            data[key] = counts
            data["kwargs|" + key] = np.asarray(json.dumps({**base, **extra}))
            cases.append((key, f"fit23   32 bins {n_ph:>6} ph mono {label}"))
    from qrspec.fitting import ModelIRF

    for n_bins in (256, 1024, 6250):
        bin_ns = PERIOD_NS / n_bins
        data[f"irf_{n_bins}"] = ModelIRF(T0_NS, SIGMA_IRF_NS).histogram(n_bins, bin_ns)
        data[f"dt_{n_bins}"] = bin_ns
        for n_ph in (1000, 100_000):
            for model, taus, fr in (("mono", [3.0], [1.0]), ("bi", [1.0, 5.0], [0.4, 0.6])):
                counts = simulate(rng, max(n_decays // 4, 5), n_bins, bin_ns, PERIOD_NS, n_ph,
                                  taus, fr, T0_NS, SIGMA_IRF_NS)
                key = f"counts|own_{n_bins}_{n_ph}|{model}|default"
                data[key] = counts
                data["kwargs|" + key] = np.asarray(json.dumps(
                    dict(bin_ns=bin_ns, irf=f"irf_{n_bins}", model=model,
                         period_ns=PERIOD_NS)))
                cases.append((key, f"own   {n_bins:>4} bins {n_ph:>6} ph {model:<4} 4-5 free"))
    return data, cases


def run_json(cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        print(f"{cmd[:2]} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_speed(args):
    sys.path.insert(0, REPO)
    data, cases = make_cases(args.decays)
    runners = [("qrspec", [sys.executable, "-c", QRSPEC_WORKER, None, REPO])]
    for path in args.baseline:
        runners.append((f"base:{os.path.basename(os.path.normpath(path))}",
                        [sys.executable, "-c", QRSPEC_WORKER, None, os.path.abspath(path)]))
    if os.path.exists(args.tttrlib_python):
        runners.append(("tttrlib", [args.tttrlib_python, "-c", TTTRLIB_WORKER, None]))
    else:
        print(f"{args.tttrlib_python} not found: no tttrlib comparison", file=sys.stderr)
    times = {name: {} for name, _ in runners}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.npz")
        np.savez(path, **data)
        for _ in range(args.rounds):
            for name, cmd in runners:
                res = run_json([path if c is None else c for c in cmd])
                for key, v in (res or {}).items():
                    times[name].setdefault(key, []).append(v)
    med = {name: {key: {f: statistics.median(r[f] for r in rows)
                        for f in rows[0] if isinstance(rows[0][f], float)}
                  for key, rows in per.items()} for name, per in times.items()}
    peer = med.get("tttrlib", {})
    bases = [name for name, _ in runners if name.startswith("base:")]
    head = (f"{'case':<40}{'single':>8}{'batch 1':>8}{'batch':>8}{'tttrlib':>9}"
            f"{'x single':>9}{'x batch':>8}")
    head += f"{'base single':>12}{'speed-up':>9}{'base batch 1':>13}{'speed-up':>9}" * len(bases)
    print(head + "   tau median qrspec / tttrlib (ns)")
    for key, label in cases:
        q = med["qrspec"].get(key)
        if q is None:
            continue
        peer_key = key.rsplit("|", 1)[0] + "|default"
        p = peer.get(peer_key, {})
        t_p = p.get("single", float("nan"))
        line = (f"{label:<40}{q['single']:>8.3f}{q['batch_1']:>8.3f}{q['batch']:>8.3f}"
                f"{t_p:>9.3f}{t_p / q['single']:>9.2f}{t_p / q['batch']:>8.2f}")
        for b in bases:
            s = med[b].get(key, {}).get("single", float("nan"))
            s1 = med[b].get(key, {}).get("batch_1", float("nan"))
            line += f"{s:>12.3f}{s / q['single']:>9.2f}{s1:>13.3f}{s1 / q['batch_1']:>9.2f}"
        last = times["qrspec"][key][-1]
        tau_p = f"{p['tau']:.3g}" if "tau" in p else "n/a"
        same = "" if last["same"] else "  BATCH != SINGLE"
        print(f"{line}   {q['tau']:.3g} / {tau_p} ({last['n_ok']}/"
              f"{data[key].shape[0]} ok){same}")
    print(f"\nms per fit, median of {args.rounds} interleaved rounds; x single = tttrlib / qrspec "
          "single, x batch = tttrlib / qrspec batch (threads); speed-up = baseline single / "
          "qrspec single (the second: base batch 1 / batch 1). Truth: fit23 tau = 2 ns; own "
          "mono 3 ns, bi 1 and 5 ns (the shorter lifetime is shown).")


def bench_compile(args):
    repos = [REPO] + [os.path.abspath(p) for p in args.baseline]
    runs = {r: [] for r in repos}
    for _ in range(args.rounds):
        for r in repos:
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, NUMBA_CACHE_DIR=cache)
                res = run_json([sys.executable, "-c", COMPILE_WORKER, r], env=env)
                if res is not None:
                    runs[r].append(res)
    print(f"{'checkout':<45}" + "".join(f"{k:>15}" for k in runs[REPO][0]) + f"{'total':>9}")
    for r, rows in runs.items():
        if not rows:
            continue
        cols = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        total = statistics.median(sum(row.values()) for row in rows)
        print(f"{r:<45}" + "".join(f"{v:>15.2f}" for v in cols.values()) + f"{total:>9.2f}")
    print(f"\nCPU seconds of numba compilation in a fresh process with an empty cache (first "
          f"call minus second), median of {args.rounds} interleaved rounds; a case compiles "
          "only what the cases before it have not.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tttrlib-python", default="/work/venvs/peers/bin/python")
    ap.add_argument("--decays", type=int, default=100, help="decays per fit23 case")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", action="append", default=[],
                    help="another qrspec checkout timed in the same rounds (repeatable)")
    ap.add_argument("--compile", action="store_true",
                    help="measure the cold-cache numba compilation instead")
    args = ap.parse_args(argv)
    if args.compile:
        bench_compile(args)
    else:
        bench_speed(args)


if __name__ == "__main__":
    main()
