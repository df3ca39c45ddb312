"""Benchmark: the charge-model inversion's inner loop and fits, this tree against another.

Synthetic problems shaped like the pipeline's (capped model, no free parameters, the particle's
own neutral reference; a rod with tau_X0 = 9.5 ns): one window (what
:func:`qrspec.charging.trajectory.charging_trajectory` fits per window) and ``--windows``
windows (the joint fit of :func:`qrspec.charging.particle.combine_windows`). Measured, per
call, in CPU time of the process (``time.process_time``: the load of other processes on a
shared machine does not enter it, only its cache effects):

* ``predict``, ``residuals``, ``jacobian`` of the inversion's ``_Problem`` (two parameter
  vectors in turn, so that no call repeats the previous one);
* ``infer_charging`` of every window as the pipeline calls it (``profile=False``,
  ``n_starts=0``);
* ``combine_windows`` with its profile-likelihood intervals.

``--compare SRC`` (a source tree of another qrspec version, e.g. ``git archive main | tar -x
-C /tmp/main_src``) runs fresh processes alternating ``SRC, this tree, ...`` (``--rounds``) and
prints the medians and the after/before ratio of every item; without it, this tree only.

Usage: ``python scripts/bench_charging.py [--compare SRC] [--rounds 3] [--windows 12]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# one measuring process: prints one JSON line {item: [us per call of each repeat]}
_WORKER = r"""
import json, sys, time
import numpy as np
import qrspec
from qrspec.charging import ChargedObservation, ChargeModelConfig, NeutralReference
from qrspec.charging.forward import forward
from qrspec.charging.inverse import _Problem, infer_charging
from qrspec.charging.particle import combine_windows

n_windows = int(sys.argv[1])
rng = np.random.default_rng(2026)
cfg = ChargeModelConfig(tau_x0_ns=9.5)
r0 = forward(cfg, 0.0)
neutral = NeutralReference(tau_x0_ns=float(r0.tau_x_ns) * 1.002, tau_x0_err_ns=0.03,
                           tau_xx0_ns=float(r0.tau_xx_ns) * 0.99,
                           tau_xx0_err_ns=0.03 * float(r0.tau_xx_ns), source="particle")
windows = []
for i, n in enumerate(np.linspace(1.0, 8.0, n_windows)):
    r = forward(cfg, n)
    tx, txx = float(r.tau_x_ns), float(r.tau_xx_ns)
    windows.append(ChargedObservation(tx * (1 + 0.01 * rng.normal()), 0.01 * tx,
                                      txx * (1 + 0.05 * rng.normal()), 0.05 * txx,
                                      t_start_s=5.0 * i, t_stop_s=5.0 * i + 2.0))


def per_call(f, calls, repeats=5):
    out = []
    for _ in range(repeats):
        t = time.process_time()
        for i in range(calls):
            f(i)
        out.append((time.process_time() - t) / calls * 1e6)
    return out


res = {"qrspec": qrspec.__file__}
for tag, wins in (("W1", windows[2:3]), (f"W{n_windows}", windows)):
    pb = _Problem(cfg, neutral, wins, (), 40.0)
    th = [pb.x0.copy(), pb.x0.copy()]
    th[0][:pb.W] = np.linspace(1.0, 8.0, pb.W)
    th[1][:pb.W] = th[0][:pb.W] * 1.01
    th[1][pb.W:] *= 1.001
    for name, f, calls in (("predict", pb.predict, 2000), ("residuals", pb.residuals, 2000),
                           ("jacobian", pb.jacobian, 500)):
        res[f"{name} {tag}"] = per_call(lambda i: f(th[i % 2]), calls)
res["infer_charging (per window)"] = per_call(
    lambda i: infer_charging(neutral, windows[i % n_windows], cfg, profile=False, n_starts=0),
    2 * n_windows)
res[f"combine_windows W{n_windows}"] = per_call(
    lambda i: combine_windows(windows, neutral, cfg, starts=np.linspace(1.0, 8.0, n_windows)),
    1, repeats=3)
print(json.dumps(res))
"""


def run(tree: str, n_windows: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", _WORKER, str(n_windows)], env=env, check=True,
                         capture_output=True, text=True, cwd=tree)
    d = json.loads(out.stdout.strip().splitlines()[-1])
    if not d.pop("qrspec").startswith(tree):
        raise RuntimeError(f"the worker of {tree} imported another qrspec")
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare", metavar="SRC", help="source tree of the version to compare")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--windows", type=int, default=12)
    args = ap.parse_args(argv)
    trees = {"after": str(REPO)}
    if args.compare:
        trees = {"before": str(Path(args.compare).resolve()), **trees}
    got = {k: {} for k in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            for item, us in run(tree, args.windows).items():
                got[name].setdefault(item, []).extend(us)
            print(f"round {r + 1} {name} done (load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"\nCPU time per call, us (median over {args.rounds} processes x repeats)")
    head = f"{'item':32s}" + "".join(f"{k:>12s}" for k in trees)
    print(head + ("  after/before" if args.compare else ""))
    for item in got["after"]:
        med = {k: statistics.median(got[k][item]) for k in trees}
        line = f"{item:32s}" + "".join(f"{med[k]:12.1f}" for k in trees)
        if args.compare:
            line += f"  {med['after'] / med['before']:12.3f}"
        print(line)


if __name__ == "__main__":
    main()
