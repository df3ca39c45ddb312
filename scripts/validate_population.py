"""Full-pipeline validation on simulated populations (issue 15): coverage of every particle
number, the single-emitter verdict's error rates and every flag's false-alarm rate.

Usage::

    nice -n 10 python scripts/validate_population.py [--n 40] [--seed 1] [--jobs 2]
        [--part numbers|verdict|all] [--presets]

Each particle is simulated with :func:`qrspec.simulate.simulate_particle` (photons, detectors,
IRF, dark counts, afterpulsing, dead time) and analysed by :func:`qrspec.analysis.pipeline.
analyze_photons`, told what a user knows from a calibration: the model variant (capped), eps,
gamma, QY_X0 and <N>; tau_X0 and tau_A,XX0 are measured.

``numbers`` (``--n`` rods per class): telegraph rods (n_c 2-16 <-> neutral) and staircase rods
(undoped: n_c(0) 6-16 discharging, with neutral excursions), each with tau_X0 4-12 ns, QY_X0
0.7-1, tau_A,XX0 5-30 ns, gamma 1 or 2.39, <N> 0.05-0.5 (log-uniform), 0.5-3 % detection per
detector, dark counts 0-1000 cps, IRF sigma 30-200 ps, 20-120 s. It prints bias (median
relative error), pull mean / std / robust std (1.4826 MAD) and 1- and 2-sigma coverage of the
particle's n_c, tau_A,XX^{nc-}, tau_A,XX0 (joint fit), tau_X0 and tau_XX0 (heralded,
triexciton-corrected), pulls taken with the 68 % interval's half-width on the side of the
truth. The truth of a charging window is the time average of the simulated n(t) (and of
tau_A,XX(n(t))) over the charged segments inside it; the particle's truth is their average with
the pipeline's weights. ``--presets`` adds populations of the simulator presets (mn-doped,
undoped) at the demo's <N>.

``verdict``: single rods (the classes above plus neutral-only rods) and two-rod particles (two
independent rods of the same class in one focus, :func:`qrspec.simulate.simulate_emitters`):
rates of single / not_single / undecidable with Clopper-Pearson 95 % intervals. Goals: <= 2 %
of single rods called not single, <= 5 % of two-rod particles called single.

Flags: every flag of every particle is counted by class; on these rods the model is right, so
every model-consistency flag (``poor_fit``) and every label flag contradicted by the truth
(``no_neutral`` / ``neutral_undecided`` on rods with a neutral period, ``mixed_states`` on
rods with one state) is a false alarm.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = ("telegraph", "staircase")


# ----------------------------------------------------------------------------- population
def draw_config(rng, kind: str, *, duration_s=None, mean_excitations=None):
    """(SimulationConfig, AnalysisConfig) of one rod of ``kind`` with random parameters.

    ``kind``: telegraph, staircase, neutral, charged (stable, no neutral period).
    """
    from qrspec.analysis.config import AnalysisConfig, ChargeModelParams
    from qrspec.simulate import ChargeConfig, DetectionConfig, EmitterConfig, SimulationConfig

    tau_x0 = rng.uniform(4.0, 12.0)
    qy = rng.uniform(0.7, 1.0)
    tau_a = rng.uniform(5.0, 30.0)
    gamma = float(rng.choice([1.0, 2.39]))
    mu = float(np.exp(rng.uniform(np.log(0.05), np.log(0.5)))) if mean_excitations is None \
        else float(mean_excitations)
    dur = float(rng.uniform(20.0, 120.0)) if duration_s is None else float(duration_s)
    p_det = rng.uniform(0.005, 0.03)  # per detector
    dark = float(rng.uniform(0.0, 1000.0))
    irf = float(rng.uniform(0.03, 0.2))
    em = EmitterConfig(tau_x0_ns=tau_x0, qy_x0=qy, tau_a_xx0_ns=tau_a, gamma=gamma, eps=0.5)
    if kind == "telegraph":
        n = int(rng.integers(2, 17))
        ch = ChargeConfig(mode="telegraph", n_charged=n, n_initial=n, n_max=max(n, 1),
                          charged_dwell_s=rng.uniform(1.0, 4.0),
                          neutral_dwell_s=rng.uniform(0.3, 1.5))
    elif kind == "staircase":
        n0 = int(rng.integers(6, 17))
        ch = ChargeConfig(mode="decay_plus_telegraph", n_initial=n0, n_max=40,
                          discharge_rate_hz=rng.uniform(0.5, 2.0) / dur,
                          charged_dwell_s=rng.uniform(1.0, 4.0),
                          neutral_dwell_s=rng.uniform(0.3, 1.5))
    elif kind == "charged":
        n = int(rng.integers(2, 17))
        ch = ChargeConfig(mode="stable", n_charged=n, n_initial=n, n_max=n)
    elif kind == "neutral":
        ch = ChargeConfig(mode="stable", n_charged=0)
    else:
        raise ValueError(kind)
    # eta_collection * qe * split = p_det per detector (qe 0.6, split 0.5)
    det = DetectionConfig(eta_collection=min(1.0, p_det / 0.3), dark_cps=(dark, dark),
                          irf_sigma_ns=(irf, irf))
    sim = SimulationConfig(duration_s=dur, mean_excitations=mu, emitter=em, charge=ch,
                           detection=det, name=kind)
    ana = AnalysisConfig(mean_excitations=mu, charge_model=ChargeModelParams(
        variant="capped", eps=0.5, gamma=gamma, qy_x0=qy))
    return sim, ana


def preset_config(rng, name: str, mean_excitations: float, duration_s: float):
    """A rod of a simulator preset (with the population spread) and its analysis config."""
    from qrspec.analysis.config import AnalysisConfig, ChargeModelParams
    from qrspec.simulate import preset
    from qrspec.simulate.population import population_configs

    base = preset(name, duration_s=duration_s, mean_excitations=mean_excitations)
    cfg, _ = population_configs(base, 1, int(rng.integers(0, 2**31)))[0]
    em = cfg.emitter
    return cfg, AnalysisConfig(mean_excitations=mean_excitations, charge_model=ChargeModelParams(
        eps=em.eps, gamma=em.gamma, qy_x0=em.qy_x0))


# ----------------------------------------------------------------------------- truth
def _time_average(charge, rows, f=None):
    """Time average of f(n(t)) over the (start, stop) rows of the truth charge intervals."""
    tot = acc = 0.0
    for a, b in rows:
        m = (charge.t_stop_s > a) & (charge.t_start_s < b)
        for s0, s1, n in zip(charge.t_start_s[m], charge.t_stop_s[m], charge.n[m], strict=True):
            d = min(s1, b) - max(s0, a)
            tot += d
            acc += d * (n if f is None else f(int(n)))
    return acc / tot if tot > 0 else math.nan


def window_truths(res, sim):
    """Per charging window: the truth time averages of n and tau_A,XX^{n-} over its charged
    segments (``res`` the ParticleAnalysis, ``sim`` the SimulatedParticle)."""
    from qrspec.charging.forward import forward

    w = res.charging.windows
    seg = res.levels.segments
    charged = seg.label == "charged"
    ch = sim.truth.charge
    em = sim.config.emitter
    n_max = int(max(ch.n.max(), 1))
    tau_a = forward(em, np.arange(n_max + 1, dtype=float)).tau_a_xx_ns
    out_n, out_t = [], []
    for a, b in zip(w.t_start_s, w.t_stop_s, strict=True):
        m = charged & (seg.stop_s > a) & (seg.start_s < b)
        rows = [(max(s0, a), min(s1, b)) for s0, s1 in zip(seg.start_s[m], seg.stop_s[m],
                                                            strict=True)]
        out_n.append(_time_average(ch, rows))
        out_t.append(_time_average(ch, rows, lambda n: tau_a[n]))
    return np.asarray(out_n), np.asarray(out_t)


def score(est, lo, hi, truth):
    """Relative error and the pull with the interval half-width on the side of the truth."""
    if not all(math.isfinite(v) for v in (est, lo, hi, truth)):
        return None
    half = (hi - est) if truth >= est else (est - lo)
    if not half > 0:
        return None
    return (est - truth) / truth, (truth - est) / half


def analyse_one(args):
    """Simulate and analyse one particle; return what the tables need (picklable dict)."""
    kind, seed, opts = args
    from qrspec.analysis.pipeline import analyze_photons
    from qrspec.charging.forward import forward
    from qrspec.simulate import simulate_emitters, simulate_particle

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    if kind.startswith("preset:"):
        sim_cfg, ana = preset_config(rng, kind.split(":", 1)[1], opts["mean_excitations"],
                                     opts["duration_s"])
    else:
        base = kind.removeprefix("pair:")
        sim_cfg, ana = draw_config(rng, base, duration_s=opts.get("duration_s"))
    if kind.startswith("pair:"):
        other, _ = draw_config(rng, kind.removeprefix("pair:"), duration_s=sim_cfg.duration_s)
        other = other.replace(mean_excitations=sim_cfg.mean_excitations,
                              detection=dict(dark_cps=sim_cfg.detection.dark_cps,
                                             irf_sigma_ns=sim_cfg.detection.irf_sigma_ns))
        sims = simulate_emitters([sim_cfg, other], int(seed))
        res = analyze_photons(sims.photons, ana)
        return dict(kind=kind, verdict=res.g2.verdict, flags=res.flags,
                    seconds=time.perf_counter() - t0)
    sim = simulate_particle(sim_cfg, int(seed))
    res = analyze_photons(sim.photons, ana)
    out = dict(kind=kind, verdict=res.g2.verdict, flags=res.flags,
               seconds=time.perf_counter() - t0, has_neutral=bool(np.any(sim.truth.charge.n == 0)),
               one_state=bool(np.unique(sim.truth.charge.n).size == 1), numbers={}, seed=seed,
               params=dict(mu=sim_cfg.mean_excitations, dur=sim_cfg.duration_s,
                           dark=sim_cfg.detection.dark_cps[0],
                           irf=sim_cfg.detection.irf_sigma_ns[0],
                           p_det=sim_cfg.detection.detection_probabilities()[0],
                           tau_x0=sim_cfg.emitter.tau_x0_ns, qy=sim_cfg.emitter.qy_x0,
                           tau_a=sim_cfg.emitter.tau_a_xx0_ns, gamma=sim_cfg.emitter.gamma,
                           labels=list(map(str, res.levels.label)),
                           frac_neutral=res.levels.frac_time_neutral))
    table = sim.truth.state_table
    st = res.states
    if st is not None and st.neutral is not None:
        n = st.neutral
        out["numbers"]["tau_X0"] = score(n.tau_x_ns, n.tau_x_ns - n.tau_x_err_ns,
                                         n.tau_x_ns + n.tau_x_err_ns, table.tau_ns[0, 0])
        out["numbers"]["tau_XX0"] = score(n.tau_xx_ns, n.tau_xx_ns - n.tau_xx_err_ns,
                                          n.tau_xx_ns + n.tau_xx_err_ns, table.tau_ns[0, 1])
    c = res.charging
    if c is not None and c.windows.t_start_s.size and np.isfinite(c.n_c_mean):
        tn, tt = window_truths(res, sim)
        u = c.windows.usable
        w = c.windows.charged_s[u] / c.windows.charged_s[u].sum()
        if np.all(np.isfinite(tn[u])):
            out["numbers"]["n_c"] = score(c.n_c_mean, c.n_c_lo, c.n_c_hi, float(w @ tn[u]))
            out["numbers"]["tau_A,XX^c"] = score(c.tau_a_xx_charged_ns, c.tau_a_xx_charged_lo_ns,
                                                 c.tau_a_xx_charged_hi_ns, float(w @ tt[u]))
        em = sim.config.emitter
        out["numbers"]["tau_A,XX0"] = score(c.tau_a_xx_neutral_joint_ns,
                                            c.tau_a_xx_neutral_joint_lo_ns,
                                            c.tau_a_xx_neutral_joint_hi_ns,
                                            float(forward(em, 0.0).tau_a_xx_ns))
        wins = []
        for i in np.flatnonzero(u):
            e = c.windows.n_c_err[i]
            wins.append(score(c.windows.n_c[i], c.windows.n_c[i] - e, c.windows.n_c[i] + e,
                              tn[i]))
        out["windows"] = [x for x in wins if x is not None]
        # n_c(t) trend: sign of the weighted slope against the truth's
        if u.sum() >= 3:
            tm = 0.5 * (c.windows.t_start_s + c.windows.t_stop_s)[u]
            out["slope"] = (_slope(tm, c.windows.n_c[u], c.windows.n_c_err[u]),
                            _slope(tm, tn[u], np.ones(u.sum())))
    out["n_windows"] = int(c.windows.usable.sum()) if c is not None else 0
    return out


def _slope(t, y, e):
    w = 1.0 / np.square(e)
    x = np.vstack([np.ones_like(t), t]).T
    return float(np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (w * y))[1])


# ----------------------------------------------------------------------------- tables
def binom_ci(k, n, conf=0.95):
    """Clopper-Pearson interval of k/n."""
    from scipy.stats import beta

    if n == 0:
        return math.nan, math.nan
    a = 1 - conf
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def rate(k, n):
    lo, hi = binom_ci(k, n)
    return f"{k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]" if n else "-"


def number_rows(results, names=("n_c", "tau_A,XX^c", "tau_A,XX0", "tau_X0", "tau_XX0")):
    """Per estimate: N, bias, pull mean, pull std, robust std, 1- and 2-sigma coverage."""
    rows = []
    for name in names:
        s = [r["numbers"][name] for r in results if r.get("numbers", {}).get(name)]
        if not s:
            rows.append((name, 0) + (math.nan,) * 6)
            continue
        rel = np.array([x[0] for x in s])
        pull = np.array([x[1] for x in s])
        mad = 1.4826 * np.median(np.abs(pull - np.median(pull)))
        rows.append((name, len(s), float(np.median(rel)), float(pull.mean()), float(pull.std()),
                     float(mad), float(np.mean(np.abs(pull) <= 1)),
                     float(np.mean(np.abs(pull) <= 2))))
    return rows


def print_numbers(results, title):
    print(f"\n### {title}\n")
    print("| estimate | N | bias | pull mean | pull std | robust std | 1σ cover | 2σ cover |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, b, pm, ps, rs, c1, c2 in number_rows(results):
        if n:
            print(f"| {name} | {n} | {b:+.1%} | {pm:+.2f} | {ps:.2f} | {rs:.2f} | {c1:.0%} | "
                  f"{c2:.0%} |")
        else:
            print(f"| {name} | 0 | | | | | | |")
    wins = [x for r in results for x in r.get("windows", [])]
    if wins:
        p = np.array([x[1] for x in wins])
        print(f"| n per window (joint-reference fit) | {p.size} | "
              f"{np.median([x[0] for x in wins]):+.1%} | {p.mean():+.2f} | {p.std():.2f} | "
              f"{1.4826 * np.median(np.abs(p - np.median(p))):.2f} | "
              f"{np.mean(np.abs(p) <= 1):.0%} | {np.mean(np.abs(p) <= 2):.0%} |")
    have = [r for r in results if "numbers" in r]
    with_value = sum(1 for r in have if r["numbers"].get("n_c"))
    nw = [r["n_windows"] for r in have]
    print(f"\n{with_value} of {len(have)} particles have a particle n_c; usable charging "
          f"windows per particle: median {np.median(nw) if nw else math.nan:.0f}.")
    sl = [r["slope"] for r in have if r.get("slope")]
    if sl:
        falling_truth = [s for s in sl if s[1] < 0]
        agree = sum(1 for s in falling_truth if s[0] < 0)
        print(f"n_c(t) slope (weighted fit over >= 3 windows) negative where the truth falls: "
              f"{rate(agree, len(falling_truth))}.")


FLAG_WORDS = re.compile(r"[a-z_]{4,}")


def flag_keys(flags):
    """Short keys of a particle's flags: the label / inversion flag names and the first words
    of free-text flags (numbers stripped)."""
    keys = set()
    for f in flags:
        for name in ("no_neutral", "neutral_undecided", "neutral_unconfirmed", "mixed_states",
                     "poor_fit", "at_upper_bound", "at_lower_bound", "auger_signal_small",
                     "no_xx_auger", "neutral_inconsistent", "window_at_bound"):
            if name in f:
                keys.add(("particle charging: " if f.startswith("particle charging")
                          else "window: " if f.startswith("charging window") else "") + name)
        if not any(k in f for k in ("no_neutral", "neutral_undecided", "neutral_unconfirmed",
                                    "mixed_states", "charging window", "particle charging")):
            keys.add(re.sub(r"[-+]?\d[\d.e+-]*", "#", f)[:70])
    return keys


def print_flags(results):
    print("\n### Flags (fraction of particles with the flag, by class)\n")
    by = {}
    for r in results:
        by.setdefault(r["kind"], []).append(r)
    kinds = sorted(by)
    counts = {k: Counter(key for r in by[k] for key in flag_keys(r["flags"])) for k in kinds}
    keys = sorted(set().union(*counts.values()))
    print("| flag | " + " | ".join(f"{k} (n={len(by[k])})" for k in kinds) + " |")
    print("|---" * (len(kinds) + 1) + "|")
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{counts[k][key] / len(by[k]):.2f}" for k in kinds)
              + " |")
    nn = [r for r in results if r.get("has_neutral")]
    print("\nFalse alarms against the truth:")
    for flag in ("no_neutral", "neutral_undecided"):
        k = sum(1 for r in nn if any(flag in f for f in r["flags"]))
        print(f"- {flag} on rods with a neutral period: {rate(k, len(nn))}")
    one = [r for r in results if r.get("one_state")]
    k = sum(1 for r in one if any("mixed_states" in f for f in r["flags"]))
    print(f"- mixed_states on rods with one charge state: {rate(k, len(one))}")
    k = sum(1 for r in results if any(f.startswith("particle charging") and "poor_fit" in f
                                      for f in r["flags"]))
    m = sum(1 for r in results if r.get("numbers", {}).get("n_c"))
    print(f"- particle poor_fit (correct model, every firing false): {rate(k, m)}")


def print_verdicts(results):
    print("\n### Single-emitter verdict\n")
    print("| particles | n | single | not_single | undecidable |")
    print("|---|---|---|---|---|")
    for label, sel in (("single rods", lambda r: not r["kind"].startswith("pair:")),
                       ("two-rod particles", lambda r: r["kind"].startswith("pair:"))):
        rs = [r for r in results if sel(r)]
        c = Counter(r["verdict"] for r in rs)
        n = len(rs)
        print(f"| {label} | {n} | {rate(c['single'], n)} | {rate(c['not_single'], n)} | "
              f"{rate(c['undecidable'], n)} |")


# ----------------------------------------------------------------------------- main
def run(tasks, jobs):
    if jobs <= 1:
        return [analyse_one(t) for t in tasks]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        return pool.map(analyse_one, tasks, chunksize=1)


def main(argv=None) -> int:
    import logging

    logging.disable(logging.WARNING)  # the library's warnings (e.g. tau_XX methods) are flags
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40, help="rods per class")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--part", choices=("numbers", "verdict", "all"), default="all")
    p.add_argument("--presets", action="store_true",
                   help="also the mn-doped and undoped presets at <N> = 0.3, 20 s")
    p.add_argument("--duration-s", type=float, default=None,
                   help="fix every rod's duration (default 20-120 s)")
    p.add_argument("--worst", type=int, default=0,
                   help="list the particles with the largest |pull| of each estimate")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    opts = {"duration_s": args.duration_s}
    seeds = iter(np.random.SeedSequence(args.seed).generate_state(100_000, np.uint32))
    tasks = []
    if args.part in ("numbers", "all"):
        tasks += [(k, int(next(seeds)), opts) for k in CLASSES for _ in range(args.n)]
        if args.presets:
            popts = {"mean_excitations": 0.3, "duration_s": 20.0}
            tasks += [(f"preset:{k}", int(next(seeds)), popts) for k in ("mn-doped", "undoped")
                      for _ in range(args.n)]
    if args.part in ("verdict", "all"):
        tasks += [("neutral", int(next(seeds)), opts) for _ in range(args.n // 2)]
        tasks += [(f"pair:{k}", int(next(seeds)), opts) for k in (*CLASSES, "neutral")
                  for _ in range(args.n // 2)]
    results = run(tasks, args.jobs)
    print(f"# Full-pipeline validation: {len(results)} particles, seed {args.seed}\n")
    singles = [r for r in results if "numbers" in r]
    if args.part in ("numbers", "all"):
        for k in CLASSES:
            print_numbers([r for r in singles if r["kind"] == k], f"{k} rods")
        print_numbers([r for r in singles if r["kind"] in CLASSES], "all random rods")
        if args.presets:
            for k in ("mn-doped", "undoped"):
                print_numbers([r for r in singles if r["kind"] == f"preset:{k}"],
                              f"preset {k} (<N> = 0.3, 20 s)")
    print_verdicts(results)
    print_flags(singles)
    if args.worst:
        for name in ("n_c", "tau_A,XX^c", "tau_A,XX0", "tau_X0", "tau_XX0"):
            have = [r for r in singles if r["numbers"].get(name)]
            have.sort(key=lambda r: -abs(r["numbers"][name][1]))
            print(f"\nworst {name}:")
            for r in have[:args.worst]:
                rel, pull = r["numbers"][name]
                print(f"  {r['kind']} seed {r['seed']}: pull {pull:+.2f}, rel {rel:+.2%}, "
                      f"{r['params']}")
    secs = [r["seconds"] for r in results]
    print(f"\n({time.perf_counter() - t0:.0f} s wall; per particle median {np.median(secs):.1f} "
          f"s simulate + analyse)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
