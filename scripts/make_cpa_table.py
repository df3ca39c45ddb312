"""Generate ``qrspec/levels/_cpa_table.py``: Monte-Carlo critical values of the change-point test.

Two tables (Watkins & Yang 2005 photon-by-photon change-point analysis, Henderson statistic):

1. ``CRIT[alpha][i]``: the ``1 - alpha`` quantile of ``max_k Lambda_k`` over a homogeneous
   Poisson range with ``N_GRID[i]`` inter-photon intervals (``REPS_CRIT`` ranges per n). Under
   H0 the interior photons of a range are uniform order statistics, so ``V_k`` are partial sums
   of i.i.d. exponentials divided by their total.
2. ``C_CI[confidence][j]``: the threshold ``c`` on the log-likelihood ratio ``P_k`` (twice the
   log of the profile likelihood of a change at photon k) such that the region
   ``{k : P_k > P_khat - c}`` (expanded contiguously around ``khat = argmax Lambda``) contains
   the true change time with probability ``confidence``, tabulated against the estimated
   rate ratio ``rhat`` (``LN_R_GRID = ln rhat``). The width of the region depends on the jump
   size, which a table in n alone cannot capture; it depends only weakly on n once each side has
   more than ~50 photons. Simulated ranges: one jump with true ratio log-uniform in [1.2, 50],
   up or down, each side log-uniform in [30, 1000] photons; only ranges where the change is
   detected at alpha = 0.05 count (the region is only ever built for detected change points).

Run from the repository root:  PYTHONPATH=. python scripts/make_cpa_table.py
Runtime ~1-2 min on one core. The seed is fixed; the output is deterministic.
"""

from __future__ import annotations

import math
import sys
import textwrap
import time
from pathlib import Path

import numba
import numpy as np

from qrspec.levels import _kernels

ALPHAS = (0.01, 0.05, 0.1)
CONFIDENCES = (0.69, 0.9, 0.95)
N_MAX = 8192
REPS_CRIT = 20000
REPS_CI = 200000
SEED = 20240611
OUT = Path(__file__).resolve().parents[1] / "qrspec" / "levels" / "_cpa_table.py"


def n_grid() -> np.ndarray:
    small = np.arange(2, 65)
    big = np.unique(np.round(64 * 1.15 ** np.arange(1, 60)).astype(np.int64))
    big = big[(big > 64) & (big < N_MAX)]
    return np.concatenate([small, big, [N_MAX]]).astype(np.int64)


@numba.njit(nogil=True)
def _seed(s):
    np.random.seed(s)


@numba.njit(nogil=True)
def _h0_max(n, reps, h1, h2, jlnj):
    """Lambda_max of ``reps`` homogeneous ranges with n intervals."""
    out = np.empty(reps)
    x = np.empty(n + 1)
    lam = np.empty(n + 1)
    raw = np.empty(n + 1)
    for r in range(reps):
        x[0] = 0.0
        for i in range(n):
            x[i + 1] = x[i] + np.random.exponential(1.0)
        _k, best = _kernels.cpa_scan(x, 0, n, h1, h2, jlnj, lam, raw)
        out[r] = best
    return out


@numba.njit(nogil=True)
def _ci_samples(reps, h1, h2, jlnj, crit):
    """(rhat, c_needed) for detected single-jump ranges; NaN rows where not detected."""
    rh = np.full(reps, np.nan)
    cn = np.full(reps, np.nan)
    x = np.empty(4000)
    lam = np.empty(4000)
    raw = np.empty(4000)
    for r in range(reps):
        ratio = math.exp(np.random.uniform(math.log(1.2), math.log(50.0)))
        n1 = math.exp(np.random.uniform(math.log(30.0), math.log(1000.0)))
        n2 = math.exp(np.random.uniform(math.log(30.0), math.log(1000.0)))
        rate1 = 1.0
        rate2 = ratio
        if np.random.uniform(0.0, 1.0) < 0.5:
            rate1, rate2 = ratio, 1.0
        tau = n1 / rate1
        t_end = tau + n2 / rate2
        # photon times of the piecewise-Poisson process on [0, t_end]; the range starts and
        # ends on photons, as in the analysis
        m = 0
        t = np.random.exponential(1.0 / rate1)
        while t < t_end and m < 4000:
            x[m] = t
            m += 1
            if t < tau:
                t_next = t + np.random.exponential(1.0 / rate1)
                if t_next > tau:  # memoryless: restart at tau with the new rate
                    t_next = tau + np.random.exponential(1.0 / rate2)
                t = t_next
            else:
                t = t + np.random.exponential(1.0 / rate2)
        if m >= 4000 or m < 4:
            continue
        n = m - 1
        if x[0] >= tau or x[n] <= tau:
            continue
        k, best = _kernels.cpa_scan(x, 0, n, h1, h2, jlnj, lam, raw)
        if best <= crit[n]:
            continue
        j = 0  # last photon before tau
        while x[j + 1] < tau:
            j += 1
        need = 0.0
        if tau < x[k]:
            for q in range(j + 1, k):
                need = max(need, raw[k] - raw[q])
        else:
            for q in range(k + 1, j + 1):
                need = max(need, raw[k] - raw[q])
        rh[r] = _kernels.rate_ratio(x, 0, n, k)
        cn[r] = need
    return rh, cn


def harmonics(n_max: int):
    j = np.arange(1, n_max + 1, dtype=np.float64)
    h1 = np.concatenate([[0.0], np.cumsum(1.0 / j)])
    h2 = np.concatenate([[0.0], np.cumsum(1.0 / j**2)])
    jlnj = np.concatenate([[0.0], j * np.log(j)])
    return h1, h2, jlnj


def main() -> int:
    t0 = time.perf_counter()
    _seed(SEED)
    h1, h2, jlnj = harmonics(2 * N_MAX + 2)
    grid = n_grid()
    crit = {a: np.empty(grid.size) for a in ALPHAS}
    for i, n in enumerate(grid):
        lm = _h0_max(int(n), REPS_CRIT, h1, h2, jlnj)
        for a in ALPHAS:
            crit[a][i] = np.quantile(lm, 1.0 - a)
    print(f"critical values: {grid.size} n values in {time.perf_counter() - t0:.1f} s")
    # dense alpha=0.05 critical values for the detection condition of the CI simulation
    dense = np.interp(np.log(np.arange(2, 4001)), np.log(grid), crit[0.05])
    crit_dense = np.concatenate([[np.inf, np.inf], dense])
    rh, cn = _ci_samples(REPS_CI, h1, h2, jlnj, crit_dense)
    ok = np.isfinite(rh)
    rh, cn = rh[ok], cn[ok]
    edges = np.log(np.array([1.0, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 25.0,
                             60.0]))
    centers, cvals = [], {c: [] for c in CONFIDENCES}
    lr = np.log(rh)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (lr >= lo) & (lr < hi)
        if sel.sum() < 300:
            continue
        centers.append(float(np.median(lr[sel])))
        for c in CONFIDENCES:
            cvals[c].append(float(np.quantile(cn[sel], c)))
    print(f"CI samples: {ok.sum()} detected of {REPS_CI}; {len(centers)} ratio bins "
          f"in {time.perf_counter() - t0:.1f} s")
    # the threshold can only shrink as the jump grows; enforce it against MC noise
    for c in CONFIDENCES:
        cvals[c] = list(np.minimum.accumulate(np.asarray(cvals[c])))

    def fmt(arr):
        body = textwrap.fill(", ".join(f"{float(v):.6g}" for v in arr) + ",", width=90,
                             initial_indent="        ", subsequent_indent="        ")
        return "(\n" + body + "\n    )"

    lines = [
        '"""Monte-Carlo critical values for qrspec.levels.changepoint.',
        "",
        "Generated by scripts/make_cpa_table.py (do not edit by hand).",
        f"seed={SEED}, REPS_CRIT={REPS_CRIT}, REPS_CI={REPS_CI}, N_MAX={N_MAX}.",
        '"""',
        "",
        f"N_GRID = {fmt(grid)}",
        "",
        "CRIT = {",
    ]
    for a in ALPHAS:
        lines.append(f"    {a!r}: {fmt(crit[a])},")
    lines += ["}", "", f"LN_R_GRID = {fmt(centers)}", "", "C_CI = {"]
    for c in CONFIDENCES:
        lines.append(f"    {c!r}: {fmt(cvals[c])},")
    lines += ["}", ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")
    for i in range(len(centers)):
        print(f"  rhat={math.exp(centers[i]):6.2f}  " + "  ".join(
            f"c{int(c * 100)}={cvals[c][i]:.3f}" for c in CONFIDENCES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
