"""Validation of the dwell-time analysis (qrspec.levels.dwell, qrspec.levels.dwell_laws).

Sections (``--part`` selects; default all):

``coverage``  iid power-law dwell sequences with one right-censored stay, KS-chosen t_min:
              coverage of alpha +- alpha_err (68 %) and +- 2 alpha_err (95 %), median pull and
              pull spread, binned by the number of events above t_min. Sets MIN_EVENTS.
``censor``    alternating on/off renewal process watched through a finite window: the last
              stay as a survival term against dropping it (bias of alpha).
``models``    which law ``best_model`` picks for data drawn from each law.
``nested``    false-alarm rates of the nested likelihood-ratio tests.
``memory``    AR(1) log-normal dwell sequences: coverage of r +- r_err.
``resolution`` change-point detection of isolated dark gaps / bright blips against their
              contrast photons (the table behind RESOLUTION_PHOTONS).
``e2e``       simulated photon streams with power-law on/off blinking (qrspec.simulate)
              through change points, clustering, labels and blinking_statistics.

Usage: ``nice -n 10 python scripts/validate_dwell.py [--part coverage] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qrspec.levels.dwell import (  # noqa: E402
    MIN_EVENTS,
    DwellSequence,
    blinking_statistics,
    memory_correlation,
)
from qrspec.levels.dwell_laws import fit_dwell_law  # noqa: E402


def power_law(rng, n, alpha, t0):
    return t0 * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


# ------------------------------------------------------------------------------ coverage
def part_coverage(rng, quick):
    print("\n== coverage: iid power law above t0 = resolution, one censored stay, KS t_min ==")
    bins = [(5, 8), (8, 10), (10, 15), (15, 20), (20, 30), (30, 50), (50, 100), (100, 200),
            (200, 10**9)]
    sizes = [6, 8, 10, 12, 16, 20, 25, 35, 50, 80, 150, 300]
    reps = 100 if quick else 400
    print("alpha_err: bootstrap (KS t_min re-chosen per resample); last column: the curvature "
          "error at the chosen t_min")
    print("(min_events = 5 here, to show the curve below MIN_EVENTS; rel_err = median "
          "alpha_err / (alpha - 1))")
    print("alpha  events    n_fits  cover68  cover95  median_pull  pull_std  cover68_wald  "
          "rel_err")
    for alpha in (1.3, 1.5, 1.8, 2.2):
        pulls = {b: [] for b in bins}
        for n in sizes:
            for _ in range(reps):
                x = power_law(rng, n + 1, alpha, 0.01)
                censored = [x[-1] * rng.random()]  # the last stay, cut at a random time
                law = fit_dwell_law(x[:-1], censored if censored[0] >= 0.01 else [],
                                    resolution_s=0.01, min_events=5, models=("power_law",))
                wald = law.fit("power_law").alpha_err
                if not np.isfinite(law.alpha):
                    continue
                for b in bins:
                    if b[0] <= law.n_events < b[1]:
                        pulls[b].append(((law.alpha - alpha) / law.alpha_err,
                                         (law.alpha - alpha) / wald,
                                         law.alpha_err / (alpha - 1.0)))
        for b in bins:
            p = np.asarray(pulls[b]).reshape(-1, 3)
            if p.shape[0] < 20:
                continue
            q = p[:, 0]
            print(f"{alpha:4.1f}  {b[0]:4d}-{min(b[1], 9999):<5d} {q.size:6d}  "
                  f"{np.mean(np.abs(q) <= 1):7.3f}  {np.mean(np.abs(q) <= 2):7.3f}  "
                  f"{np.median(q):+10.3f}  {np.std(q):8.3f}  "
                  f"{np.mean(np.abs(p[:, 1]) <= 1):11.3f}  {np.median(p[:, 2]):9.2f}")
    print(f"(MIN_EVENTS = {MIN_EVENTS})")


# ------------------------------------------------------------------------------ censoring
def renewal(rng, alpha_on, alpha_off, t0, duration):
    t, state, starts, durs, states = 0.0, 1, [], [], []
    while t < duration:
        d = float(power_law(rng, 1, alpha_on if state else alpha_off, t0)[0])
        starts.append(t)
        durs.append(min(d, duration - t))
        states.append(state)
        t += d
        state = 1 - state
    n = len(durs)
    left = np.zeros(n, bool)
    left[0] = True
    right = np.zeros(n, bool)
    right[-1] = True
    return DwellSequence(np.asarray(starts), np.asarray(durs), np.asarray(states, np.int64),
                         ("off", "on"), np.array([0.0, 1.0]), left, right)


def part_censor(rng, quick):
    print("\n== censoring: on/off renewal process in a finite window (t0 = 10 ms) ==")
    print("alpha  window_s  n_particles  mean_events  bias(survival)  bias(drop last)  "
          "cover68(survival)")
    reps = 150 if quick else 500
    for alpha in (1.3, 1.6, 2.0):
        for window in (20.0, 100.0):
            rows = []
            for _ in range(reps):
                seq = renewal(rng, alpha, alpha, 0.01, window)
                comp, cens = seq.durations("on")
                a = fit_dwell_law(comp, cens, resolution_s=0.01, min_events=MIN_EVENTS,
                                  t_min_s=0.01, models=("power_law",))
                b = fit_dwell_law(comp, [], resolution_s=0.01, min_events=MIN_EVENTS,
                                  t_min_s=0.01, models=("power_law",))
                if np.isfinite(a.alpha) and np.isfinite(b.alpha):
                    rows.append((a.alpha, a.alpha_err, b.alpha, a.n_events))
            r = np.asarray(rows)
            if r.size == 0:
                continue
            print(f"{alpha:4.1f}  {window:8.0f}  {len(r):11d}  {r[:, 3].mean():11.1f}  "
                  f"{np.mean(r[:, 0]) - alpha:+14.4f}  {np.mean(r[:, 2]) - alpha:+15.4f}  "
                  f"{np.mean(np.abs(r[:, 0] - alpha) <= r[:, 1]):17.3f}")


# ------------------------------------------------------------------------------ models
def part_models(rng, quick):
    print("\n== best_model for data drawn from each law (t_min fixed at the resolution) ==")
    reps = 60 if quick else 200
    gens = {
        "power_law": lambda n: power_law(rng, n, 1.6, 0.01),
        "exponential": lambda n: 0.01 + rng.exponential(0.1, n),
        "cutoff": lambda n: _cutoff(rng, n, 1.3, 0.01, 1.0),
        "truncated": lambda n: _truncated(rng, n, 1.5, 0.01, 0.5),
    }
    print("truth        n     power_law  truncated  exponential  cutoff  undecided")
    for truth, gen in gens.items():
        for n in (50, 200):
            picks = []
            for _ in range(reps):
                law = fit_dwell_law(gen(n), resolution_s=0.01, min_events=MIN_EVENTS,
                                    t_min_s=0.01)
                picks.append(law.best_model or "undecided")
            picks = np.asarray(picks)
            print(f"{truth:11s} {n:4d}   " + "  ".join(
                f"{np.mean(picks == m):9.2f}" for m in ("power_law", "truncated", "exponential",
                                                       "cutoff", "undecided")))


def _cutoff(rng, n, alpha, t0, t_cut):
    out = []
    while len(out) < n:  # power law thinned by exp(-(t - t0)/t_cut): exact rejection sampler
        x = power_law(rng, 4 * n, alpha, t0)
        keep = rng.random(x.size) < np.exp(-(x - t0) / t_cut)
        out.extend(x[keep].tolist())
    return np.asarray(out[:n])


def _truncated(rng, n, alpha, t0, t1):
    u = rng.random(n)
    e = 1.0 - alpha
    return (t0**e + u * (t1**e - t0**e)) ** (1.0 / e)


def part_nested(rng, quick):
    from qrspec.levels.dwell_laws import (
        compare_laws,
        fit_cutoff_power_law,
        fit_exponential,
        fit_power_law,
        fit_truncated_power_law,
    )

    print("\n== false alarms of the nested tests (p < 0.1; data from the smaller model) ==")
    reps = 100 if quick else 300
    print("truth          param  n    cutoff>power_law  truncated>power_law  cutoff>exponential")
    for alpha in (1.3, 1.6, 2.0, 2.5, 3.5):
        for n in (50, 300):
            hits = np.zeros(2)
            for _ in range(reps):
                x = power_law(rng, n, alpha, 0.01)
                pl = fit_power_law(x, 0.01)
                hits += [compare_laws(fit_cutoff_power_law(x, 0.01), pl).p_value < 0.1,
                         compare_laws(fit_truncated_power_law(x, 0.01), pl).p_value < 0.1]
            print(f"power_law  alpha={alpha:3.1f}  {n:4d}  {hits[0] / reps:16.3f}  "
                  f"{hits[1] / reps:19.3f}")
    for n in (50, 300):
        hits = 0
        for _ in range(reps):
            x = 0.01 + rng.exponential(0.1, n)
            hits += compare_laws(fit_cutoff_power_law(x, 0.01),
                                 fit_exponential(x, 0.01)).p_value < 0.1
        print(f"exponential  mean=0.1  {n:4d}  {'':16s}  {'':19s}  {hits / reps:18.3f}")


# ------------------------------------------------------------------------------ memory
def part_memory(rng, quick):
    print("\n== memory: AR(1) log-normal on and off durations (rho on each state) ==")
    reps = 200 if quick else 800
    print("rho   n_stays  pairs  mean_r   cover68  cover95  std_pull")
    for rho in (0.0, 0.3, 0.6):
        for n in (40, 100, 400):
            pulls, rs, npairs = [], [], 0
            for _ in range(reps):
                m = 2 * n
                z = np.empty(m)
                eps = rng.normal(size=m)
                z[0] = eps[0]
                for k in range(1, m):
                    z[k] = rho * z[k - 1] + math.sqrt(1 - rho * rho) * eps[k]
                # alternate: on stays take z[0::2] chain, off stays an independent chain
                on = np.exp(-3 + 0.8 * z[:n])
                off = np.exp(-3 + 0.8 * rng.normal(size=n))
                dur = np.empty(m)
                dur[0::2] = on
                dur[1::2] = off
                state = np.tile([1, 0], n)
                left = np.zeros(m, bool)
                right = np.zeros(m, bool)
                seq = DwellSequence(np.cumsum(dur) - dur, dur, state, ("off", "on"),
                                    np.array([0.0, 1.0]), left, right)
                mc = memory_correlation(seq, "on", "on")
                pulls.append((mc.r - rho) / mc.r_err)
                rs.append(mc.r)
                npairs = mc.n_pairs
            p = np.asarray(pulls)
            print(f"{rho:3.1f}  {n:8d}  {npairs:5d}  {np.mean(rs):+7.3f}  "
                  f"{np.mean(np.abs(p) <= 1):7.3f}  {np.mean(np.abs(p) <= 2):7.3f}  "
                  f"{np.std(p):7.3f}")


# ------------------------------------------------------------------------------ resolution
def part_resolution(rng, quick):
    from qrspec.levels import find_change_points

    print("\n== change-point detection of isolated stays vs contrast photons (both edges "
          "found within 0.3 x duration) ==")
    n_events = 20 if quick else 40
    ks = (10, 25, 50, 100, 200, 300, 400, 800)
    print("I_on_cps  I_off_cps  kind   " + "  ".join(f"{k:5d}" for k in ks))
    for i_on, i_off in ((20000.0, 200.0), (5000.0, 100.0)):
        for kind in ("gap", "blip"):
            row = []
            for k in ks:
                dwell = k / (i_on - i_off)
                t, starts = _isolated(rng, i_on, i_off, dwell, kind, n_events)
                ct = find_change_points(t).time_s
                tol = max(0.3 * dwell, 5.0 / i_on)
                found = sum(bool(np.any(np.abs(ct - s) < tol)
                                 and np.any(np.abs(ct - (s + dwell)) < tol)) for s in starts)
                row.append(found / n_events)
            print(f"{i_on:8.0f}  {i_off:9.0f}  {kind:5s}  " + "  ".join(f"{f:5.2f}" for f in row))


def _isolated(rng, i_on, i_off, dwell, kind, n_events):
    base, ev = (i_on, i_off) if kind == "gap" else (i_off, i_on)
    spacing = max(10 * dwell, 3000.0 / base, 0.05)
    starts = spacing * (np.arange(n_events) + 0.5)
    edges = np.concatenate([[0.0], np.ravel(np.column_stack([starts, starts + dwell])),
                            [n_events * spacing]])
    t = []
    for k in range(edges.size - 1):
        a, b = edges[k], edges[k + 1]
        rate = base if k % 2 == 0 else ev
        t.append(np.sort(a + (b - a) * rng.random(rng.poisson(rate * (b - a)))))
    return np.concatenate(t), starts


# ------------------------------------------------------------------------------ end to end
def blinking_config(alpha_on, alpha_off, t_min_s, t_max_s, duration_s):
    """On/off blinking rod: neutral "on" state and a dark charged state (X QY 1 %)."""
    from qrspec.simulate import ChargeConfig, EmitterConfig, SimulationConfig

    base = EmitterConfig().state_table(1)
    tau = np.asarray(base.tau_ns, float).copy()
    qy = np.asarray(base.qy, float).copy()
    tau[1], qy[1] = (0.3, 0.1, 0.05), (0.01, 0.01, 0.01)  # dark: Auger-quenched
    em = EmitterConfig(tau_ns=tuple(map(tuple, tau)), qy=tuple(map(tuple, qy)))
    ch = ChargeConfig(mode="telegraph", n_charged=1, n_initial=1, n_max=1,
                      dwell_law="power_law", alpha_charged=alpha_off, alpha_neutral=alpha_on,
                      t_min_s=t_min_s, t_max_s=t_max_s, start_charged=False)
    return SimulationConfig(duration_s=duration_s, emitter=em, charge=ch, name="blinking")


def analyse_blinking(sim):
    from qrspec.levels import cluster_levels, find_change_points, label_levels

    ph = sim.photons
    cps = find_change_points(ph)
    levels = cluster_levels(cps.segments())
    det = sim.config.detection
    nt_ns = ph.nanotimes * ph.nanotimes_unit * 1e9 - np.asarray(det.offset_ns)[ph.detectors]
    lab = label_levels(levels, nanotimes_ns=nt_ns, delay_offset_ns=0.0,
                       background_cps=float(np.sum(det.dark_cps)))
    return blinking_statistics(lab.segments)


def part_e2e(rng, quick):
    from qrspec.simulate import simulate_particle

    print("\n== end to end: simulated power-law on/off blinking -> CPA -> levels -> labels ==")
    print("(60 s particles, ~13 kcps on, ~200 cps off; t0: the simulated lower end of the power "
          "law; n_ok: particles with alpha defined)")
    n = 6 if quick else 16
    print("state alpha   t0_s   n_ok/n  events  mean_alpha  median_pull  cover68  cover95  "
          "sec/particle")
    for a_on, a_off, t0 in ((2.0, 2.0, 0.03), (1.7, 2.3, 0.03), (2.0, 2.0, 0.002)):
        rows = []
        t = time.perf_counter()
        for _ in range(n):
            cfg = blinking_config(a_on, a_off, t0, 1e4, 60.0).replace(mean_excitations=0.1)
            st = analyse_blinking(simulate_particle(cfg, seed=int(rng.integers(1 << 31))))
            rows.append((st.on.alpha, st.on.alpha_err, st.on.n_events, st.off.alpha,
                         st.off.alpha_err, st.off.n_events))
        sec = (time.perf_counter() - t) / n
        r = np.asarray(rows)
        for j, name, truth in ((0, "on", a_on), (3, "off", a_off)):
            ok = np.isfinite(r[:, j])
            p = (r[ok, j] - truth) / r[ok, j + 1]
            print(f"{name:5s} {truth:5.1f} {t0:6.3f}  {ok.sum():3d}/{n:<3d} "
                  f"{np.mean(r[ok, j + 2]) if ok.any() else np.nan:7.1f}  "
                  f"{np.mean(r[ok, j]) if ok.any() else np.nan:10.3f}  "
                  f"{np.median(p) if ok.any() else np.nan:+11.2f}  "
                  f"{np.mean(np.abs(p) <= 1) if ok.any() else np.nan:7.2f}  "
                  f"{np.mean(np.abs(p) <= 2) if ok.any() else np.nan:7.2f}  {sec:12.1f}")


PARTS = {"coverage": part_coverage, "censor": part_censor, "models": part_models,
         "nested": part_nested,
         "memory": part_memory, "resolution": part_resolution, "e2e": part_e2e}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), action="append")
    ap.add_argument("--quick", action="store_true", help="smaller populations")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for name in args.part or list(PARTS):
        t = time.perf_counter()
        PARTS[name](rng, args.quick)
        print(f"[{name}: {time.perf_counter() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
