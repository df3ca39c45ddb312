"""Validation of the levels layer and the single-emitter verdict on simulated data (issue 15).

Parts (``--part``, default all):

``cpa``
    Change points. (1) False changes on stationary Poisson streams: P(any) for one window and
    false changes per ``window_photons`` photons of long streams. (2) Changes placed at window
    seams, default overlap against the old 200-photon overlap. (3) Recall of one change between
    a segment of ``m`` photons and a long one (rate ratio r), at random positions. (4) Recall of
    the true charge transitions of simulated rods, by intensity ratio and photons per side.
``labels``
    Labels from physics on simulated rods (telegraph, undoped staircase, staircase ending at
    n = 2, charged throughout, neutral only, QY_X0 = 0.7): label accuracy by time, the flag
    rates, the false-alarm rate of ``no_neutral`` on rods with neutral periods and of
    ``mixed_states`` on single-state levels, and its power on forced merges.
``verdict``
    The single-emitter verdict on single rods and on two-rod particles (two rods of the same
    preset in one focus, :func:`qrspec.simulate.simulate_emitters`), for two thresholds.

A transition counts as found when a reported change lies within
``max(50, 10 (ln r / (r - 1 - ln r))^2)`` photons: the likelihood profile of the location is a
random walk with drift ``r - 1 - ln r`` and variance ``(ln r)^2`` per photon, so the maximum
scatters on that scale with heavy tails (e.g. 345 photons at r = 1.25, 51 at r = 2).

Run from the repository root (a few minutes; ``nice`` it on a shared machine)::

    python scripts/validate_levels.py [--part cpa|labels|verdict] [--n 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from qrspec.levels import cluster_levels, find_change_points, label_levels
from qrspec.levels.emitter import emitter_verdict
from qrspec.levels.evidence import level_evidence
from qrspec.simulate import population_configs, preset, simulate_emitters, simulate_particle


def tolerance(ratio):
    lr = np.log(ratio)
    return np.maximum(50.0, 10.0 * (lr / np.maximum(ratio - 1.0 - lr, 1e-12)) ** 2)


def binom_ci(k, n, conf=0.95):
    """Clopper-Pearson interval of k/n."""
    from scipy.stats import beta

    if n == 0:
        return math.nan, math.nan
    a = 1 - conf
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def fmt_rate(k, n):
    lo, hi = binom_ci(k, n)
    return f"{k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]" if n else "-"


# ----------------------------------------------------------------------------- change points
def _exp_trace(rng, rates, counts):
    parts, cur = [], 0.0
    for r, m in zip(rates, counts, strict=True):
        t = cur + np.cumsum(rng.exponential(1.0 / r, m))
        parts.append(t)
        cur = t[-1]
    return np.concatenate(parts)


def cpa_part(n, seed):
    rng = np.random.default_rng(seed)
    print("## Change points\n")
    print("### False changes on stationary Poisson streams (alpha = 0.05)\n")
    print("| window_photons | photons | traces | P(any false change) | false per window |")
    print("|---|---|---|---|---|")
    for w in (2000, 4096):
        for n_ph, reps in ((w, 40 * n), (100_000, 2 * n)):
            tot = anyf = 0
            for _ in range(reps):
                k = find_change_points(np.cumsum(rng.exponential(1e-4, n_ph)),
                                       window_photons=w).size
                tot += k
                anyf += k > 0
            print(f"| {w} | {n_ph} | {reps} | {fmt_rate(anyf, reps)} | "
                  f"{tot / reps / (n_ph / w):.4f} |")
    print("\n### Changes at window seams (ratio 1.3, 12000 photons, window 4096)\n")
    print("| change at photon | default overlap (2048) | overlap 200 (old default) |")
    print("|---|---|---|")
    tol = float(tolerance(1.3))
    for pos in (2048, 3996, 4095, 4096, 4097, 6144):
        hits = [0, 0]
        reps = 5 * n
        for _ in range(reps):
            t = _exp_trace(rng, (1000.0, 1300.0), (pos, 12000 - pos))
            for j, ov in enumerate((None, 200)):
                idx = find_change_points(t, overlap_photons=ov).index
                hits[j] += bool(np.any(np.abs(idx - pos) <= tol))
        print(f"| {pos} | {fmt_rate(hits[0], reps)} | {fmt_rate(hits[1], reps)} |")
    print("\n### Recall of a change with m photons on its short side\n")
    print("Step: m photons at rate 1, then 8000 at rate r (the trace starts m photons before "
          "the change). Burst: m photons at rate r inside a long trace at rate 1 (random "
          "position; the start of the burst is scored): two changes m photons apart.\n")
    print("| rate ratio | m | step | burst |")
    print("|---|---|---|---|")
    for ratio in (1.25, 1.5, 2.0):
        tol = float(tolerance(ratio))
        for m in (400, 1000, 4000):
            reps = 5 * n
            hit = [0, 0]
            for _ in range(reps):
                t = _exp_trace(rng, (1000.0, 1000.0 * ratio), (m, 8000))
                hit[0] += bool(np.any(np.abs(find_change_points(t).index - m) <= tol))
                pre = int(rng.integers(500, 9000))
                t = _exp_trace(rng, (1000.0, 1000.0 * ratio, 1000.0), (pre, m, 6000))
                hit[1] += bool(np.any(np.abs(find_change_points(t).index - pre) <= tol))
            print(f"| {ratio} | {m} | {fmt_rate(hit[0], reps)} | {fmt_rate(hit[1], reps)} |")
    print("\n### Simulated rods: recall of true transitions (20 s rods)\n")
    rows = []
    bases = [preset("mn-doped", duration_s=20.0), preset("undoped", duration_s=20.0),
             preset("mn-doped", duration_s=20.0,
                    charge=dict(charged_dwell_s=0.3, neutral_dwell_s=0.1)),
             preset("undoped", duration_s=20.0, detection=dict(eta_collection=0.015))]
    names = ("telegraph (mn-doped)", "undoped staircase", "fast telegraph", "dim undoped")
    n_rods = 0
    for k, base in enumerate(bases):
        for cfg, s in population_configs(base, n, seed + 100 + k):
            sim = simulate_particle(cfg, s)
            n_rods += 1
            ph = sim.photons
            ts = ph.timestamps * ph.timestamps_unit
            ch = sim.truth.charge
            start = np.searchsorted(ts, ch.t_start_s)
            cnt = np.diff(np.append(start, ts.size))
            rate = {int(q): cnt[ch.n == q].sum() / ch.duration_s[ch.n == q].sum()
                    for q in np.unique(ch.n)}
            ratios = np.array([max(rate[int(ch.n[j - 1])], rate[int(ch.n[j])])
                               / min(rate[int(ch.n[j - 1])], rate[int(ch.n[j])])
                               for j in range(1, ch.size)])
            for ov in (None, 200):
                found = find_change_points(ph, overlap_photons=ov).index
                used = np.zeros(found.size, bool)
                # greedy one-to-one matching, strongest transitions first (a weak transition's
                # wide tolerance must not take the change of a strong neighbour)
                for j in np.argsort(-ratios, kind="stable") + 1:
                    ratio = ratios[j - 1]
                    d = np.abs(found - start[j]).astype(float)
                    d[used] = np.inf
                    ok = bool(d.size) and d.min() <= tolerance(ratio)
                    if ok:
                        used[int(np.argmin(d))] = True
                    rows.append((names[k], ov is None, ratio, min(cnt[j - 1], cnt[j]), ok))
    arr = np.array([(r[1], r[2], r[3], r[4]) for r in rows], float)
    print(f"{n_rods} rods. Recall (found / true), default scan vs the old 200-photon overlap:\n")
    print("| intensity ratio | photons per side | default | overlap 200 |")
    print("|---|---|---|---|")
    for rlo, rhi in ((1.25, 1.5), (1.5, 2.0), (2.0, np.inf)):
        for mlo, mhi in ((400, 1000), (1000, 5000), (5000, np.inf)):
            cells = []
            for new in (1.0, 0.0):
                sel = ((arr[:, 0] == new) & (arr[:, 1] >= rlo) & (arr[:, 1] < rhi)
                       & (arr[:, 2] >= mlo) & (arr[:, 2] < mhi))
                cells.append(fmt_rate(int(arr[sel, 3].sum()), int(sel.sum())))
            print(f"| {rlo}-{rhi} | {mlo}-{mhi} | {cells[0]} | {cells[1]} |")
    cells = []
    for new in (1.0, 0.0):
        sel = (arr[:, 0] == new) & (arr[:, 1] >= 1.25) & (arr[:, 2] >= 400)
        cells.append(fmt_rate(int(arr[sel, 3].sum()), int(sel.sum())))
    print(f"| >= 1.25 | >= 400 | {cells[0]} | {cells[1]} |\n")


# ----------------------------------------------------------------------------- labels
def analyse(ph, **kw):
    cps = find_change_points(ph)
    cl = cluster_levels(cps, **kw)
    ev = level_evidence(ph, cl)
    return cl, ev, label_levels(cl, evidence=ev, background_cps=200.0)


def time_accuracy(lab, charge):
    seg = lab.segments
    t = np.linspace(seg.start_s[0], seg.stop_s[-1], 20001)[:-1]
    j = np.clip(np.searchsorted(seg.stop_s, t, side="right"), 0, seg.size - 1)
    pred = seg.label[j]
    n = charge.at(t)
    ok = ((pred == "neutral") & (n == 0)) | ((pred == "charged") & (n > 0))
    unl = (pred != "neutral") & (pred != "charged")
    return float(ok.mean()), float(unl.mean())


LABEL_CASES = {
    "telegraph (mn-doped)": lambda: preset("mn-doped", duration_s=20.0),
    "undoped staircase": lambda: preset("undoped", duration_s=20.0),
    "staircase 5->2, no neutral": lambda: preset(
        "undoped", duration_s=20.0, charge=dict(mode="script", schedule=(
            (0, 5, 5), (5, 10, 4), (10, 15, 3), (15, 20, 2)))),
    "charged throughout (n=6)": lambda: preset("mn-doped", duration_s=20.0,
                                               charge=dict(mode="stable")),
    "neutral only": lambda: preset("neutral", duration_s=20.0),
    "telegraph, QY_X0 = 0.7": lambda: preset("mn-doped", duration_s=20.0,
                                             emitter=dict(qy_x0=0.7)),
}


def labels_part(n, seed):
    print("## Labels from physics\n")
    print("Accuracy by time: fraction of the trace where the label matches the truth "
          "(neutral <-> n = 0, charged <-> n > 0); unlabelled: trap, unclassified or off.\n")
    print("| rods | n | accuracy mean | accuracy min | unlabelled | no_neutral | "
          "neutral_undecided | neutral_unconfirmed | mixed_states |")
    print("|---|---|---|---|---|---|---|---|---|")
    far_nn = [0, 0]
    mixed_far = [0, 0]
    mixed_pow = [0, 0]
    for k, (name, make) in enumerate(LABEL_CASES.items()):
        acc, unl, flags = [], [], {}
        for cfg, s in population_configs(make(), n, seed + 10 * k):
            sim = simulate_particle(cfg, s)
            ph = sim.photons
            cl, ev, lab = analyse(ph)
            a, u = time_accuracy(lab, sim.truth.charge)
            acc.append(a)
            unl.append(u)
            for f in lab.flags:
                flags[f] = flags.get(f, 0) + 1
            has_neutral = 0 in sim.truth.charge.n
            if has_neutral:
                far_nn[0] += "no_neutral" in lab.flags
                far_nn[1] += 1
            # mixed_states: levels with >= 98 % of photons from one charge state
            ts = ph.timestamps * ph.timestamps_unit
            state = sim.truth.charge.at(ts)
            lev = np.repeat(lab.segments.level, lab.segments.n_photons)
            for q in range(cl.n_levels):
                sel = state[lev == q]
                if sel.size < 2000:
                    continue
                top = np.bincount(sel).max() / sel.size
                if top >= 0.98:
                    mixed_far[0] += bool(lab.mixed[q])
                    mixed_far[1] += 1
            if name.startswith("telegraph (mn"):
                # a missed change merges the states: force one level
                cl1 = cluster_levels(find_change_points(ph), n_levels=1)
                ev1 = level_evidence(ph, cl1)
                lab1 = label_levels(cl1, evidence=ev1, background_cps=200.0)
                mixed_pow[0] += "mixed_states" in lab1.flags
                mixed_pow[1] += 1

        n_rods = len(acc)

        def rate(f, flags=flags, m=n_rods):
            return f"{flags.get(f, 0)}/{m}"

        print(f"| {name} | {len(acc)} | {np.mean(acc):.3f} | {np.min(acc):.3f} | "
              f"{np.mean(unl):.3f} | {rate('no_neutral')} | {rate('neutral_undecided')} | "
              f"{rate('neutral_unconfirmed')} | {rate('mixed_states')} |")
    print("\nFalse alarms and power:\n")
    print(f"- no_neutral on rods with a neutral period: {fmt_rate(*far_nn)}")
    print(f"- mixed_states on levels with >= 98 % of photons from one charge state (>= 2000 "
          f"photons): {fmt_rate(*mixed_far)}")
    print(f"- mixed_states when neutral and charged periods are forced into one level "
          f"(telegraph rods): {fmt_rate(*mixed_pow)}\n")


# ----------------------------------------------------------------------------- verdict
VERDICT_PRESETS = ("neutral", "mn-doped", "undoped")
THRESHOLDS = (0.35, 0.5)  # the default of emitter_verdict first


def verdict_part(n, seed):
    print("## Single-emitter verdict\n")
    print("Two-rod particles: two rods drawn from the same preset population (brightness, "
          "excitation, lifetime and charging spread) in one focus. Outcomes "
          "single / not_single / undecidable; the goals are <= 2 % of single rods not_single "
          "and <= 5 % of two-rod particles single.\n")
    print("| particles | preset | threshold | n | single | not_single | undecidable |")
    print("|---|---|---|---|---|---|---|")
    totals = {}
    for k, name in enumerate(VERDICT_PRESETS):
        base = preset(name, duration_s=20.0)
        res = {(kind, t): {"single": 0, "not_single": 0, "undecidable": 0}
               for kind in ("single rod", "two rods") for t in THRESHOLDS}
        for cfg, s in population_configs(base, n, seed + 1000 + k):
            sim = simulate_particle(cfg, s)
            _, _, lab = analyse(sim.photons)
            for t in THRESHOLDS:
                res[("single rod", t)][emitter_verdict(sim.photons, lab,
                                                       threshold=t).outcome] += 1
        cfgs = population_configs(base, 2 * n, seed + 2000 + k)
        for i in range(n):
            pair = simulate_emitters([cfgs[2 * i][0], cfgs[2 * i + 1][0]], cfgs[2 * i][1])
            _, _, lab = analyse(pair.photons)
            for t in THRESHOLDS:
                res[("two rods", t)][emitter_verdict(pair.photons, lab,
                                                     threshold=t).outcome] += 1
        for (kind, t), c in res.items():
            tot = totals.setdefault((kind, t), {"single": 0, "not_single": 0,
                                                "undecidable": 0})
            for o in c:
                tot[o] += c[o]
            print(f"| {kind} | {name} | {t} | {n} | {fmt_rate(c['single'], n)} | "
                  f"{fmt_rate(c['not_single'], n)} | {fmt_rate(c['undecidable'], n)} |")
    for (kind, t), c in totals.items():
        m = sum(c.values())
        print(f"| {kind} | all | {t} | {m} | {fmt_rate(c['single'], m)} | "
              f"{fmt_rate(c['not_single'], m)} | {fmt_rate(c['undecidable'], m)} |")
    print()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("cpa", "labels", "verdict", "all"), default="all")
    p.add_argument("--n", type=int, default=20, help="particles per population")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    parts = ("cpa", "labels", "verdict") if args.part == "all" else (args.part,)
    for part in parts:
        {"cpa": cpa_part, "labels": labels_part, "verdict": verdict_part}[part](args.n,
                                                                              args.seed)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
