"""Validate the particle-level charging numbers on a simulated population (library level).

Usage: ``python scripts/validate_charging.py [--particles N] [--seed S] [--flags]``

Each simulated particle has its own truth (tau_X0 4-12 ns, QY_X0 0.7-1, tau_A,XX0 5-30 ns,
gamma 1 or 2.39, eps 1/2, capped model; <N> 0.05-0.5; detection efficiency 0.75-3 % per
detector), a neutral period of 2-30 s and 2-10 charged windows of 5 s, either at one charge
number (2-16) or on a staircase down from 6-16. For every period the photon budget follows from
the forward model's QYs (photons of the exciton decay and heralded two-detector pairs), and the
lifetimes are drawn as the maximum-likelihood estimates of that many exponential arrival times
(tau_hat = tau Gamma(N)/N, error tau_hat/sqrt(N)): the neutral reference is drawn once and
shared by all windows, which is the correlation the particle values must account for. Periods
with < 200 photons or < 20 pairs are dropped, as in the pipeline.

Every particle is analysed three ways: each window alone (``infer_charging``, for the flags and
for the "independent" particle mean sum w_i n_i +- sqrt(sum w_i^2 sigma_i^2) that the pipeline
used before), and jointly (``combine_windows``: one likelihood over the neutral reference and
all usable windows, profile-likelihood 68 % intervals and delta-method errors). It prints, for
n_c, tau_A,XX^{nc-} and tau_A,XX0: median relative bias, pull mean / std / robust std
(1.4826 MAD) and 1- and 2-sigma coverage, pulls taken with the interval half-width on the side
of the truth. ``--flags`` also prints every flag's firing rate on the windows (all simulated
windows have a correct model, so every firing of a model-consistency flag is a false alarm).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.forward import forward
from qrspec.charging.inverse import ChargedObservation, infer_charging
from qrspec.charging.neutral import NeutralReference, neutral_rates
from qrspec.charging.particle import combine_windows

REP_HZ = 1e7
WINDOW_S = 5.0
MIN_PHOTONS, MIN_PAIRS = 200, 20  # the pipeline's thresholds


@dataclass
class ParticleTruth:
    """One simulated particle: model, excitation, detection and charge history."""

    model: ChargeModelConfig
    mean_excitations: float
    p_det: float  # detection probability of an emitted photon, per detector
    neutral_s: float
    n_windows: np.ndarray  # true n of each charged window
    kind: str


@dataclass
class ParticleOutcome:
    """Estimates and truths of one particle (NaN where the analysis gave nothing)."""

    truth: ParticleTruth
    n_true: float = math.nan
    tau_a_true: float = math.nan
    tau_a0_true: float = math.nan
    joint: object = None
    indep_n: float = math.nan
    indep_n_err: float = math.nan
    indep_tau_a: float = math.nan
    indep_tau_a_err: float = math.nan
    window_flags: list = field(default_factory=list)
    window_n: list = field(default_factory=list)  # (n_true, n, n_err) per analysed window
    tau_ratio_below_2: list = field(default_factory=list)
    n_windows_dropped: int = 0
    neutral_ok: bool = True
    neutral_k_a: tuple = (math.nan, math.nan)  # neutral k_A,XX0 and its error, /ns


def draw_particle(rng) -> ParticleTruth:
    """A particle of the validation population (ranges in the module doc)."""
    gamma = float(rng.choice([1.0, 2.39]))
    model = ChargeModelConfig(tau_x0_ns=float(rng.uniform(4, 12)),
                              qy_x0=float(rng.uniform(0.7, 1.0)),
                              tau_a_xx0_ns=float(np.exp(rng.uniform(np.log(5), np.log(30)))),
                              eps=0.5, gamma=gamma)
    n_w = int(rng.integers(2, 11))
    if rng.random() < 0.5:
        kind = "stable"
        n = np.full(n_w, float(rng.integers(2, 17)))
    else:
        kind = "staircase"
        n0 = int(rng.integers(6, 17))
        n = np.round(np.linspace(n0, max(1, n0 // 3), n_w))
    return ParticleTruth(model=model,
                         mean_excitations=float(np.exp(rng.uniform(np.log(0.05), np.log(0.5)))),
                         p_det=0.015 * float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
                         neutral_s=float(rng.uniform(2, 30)), n_windows=n, kind=kind)


def budget(qy_x: float, qy_xx: float, mean_excitations: float, p_det: float,
           duration_s: float) -> tuple[float, float]:
    """Expected (exciton-decay photons, heralded two-detector pairs) of one period."""
    mu = mean_excitations
    p_ge1 = 1.0 - math.exp(-mu)
    p_ge2 = p_ge1 - mu * math.exp(-mu)
    pulses = REP_HZ * duration_s
    n_x = pulses * p_ge1 * qy_x * 2 * p_det
    n_pairs = pulses * p_ge2 * qy_xx * qy_x * 2 * p_det * p_det
    return n_x, n_pairs


def draw_lifetime(tau: float, n_expected: float, rng, minimum: int):
    """MLE of an exponential lifetime from Poisson(n_expected) arrivals, or None if too few."""
    n = int(rng.poisson(n_expected))
    if n < minimum:
        return None
    est = tau * rng.gamma(n) / n
    return est, est / math.sqrt(n)


def analyse(truth: ParticleTruth, rng, *, profile: bool = True) -> ParticleOutcome:
    """Draw the particle's lifetimes and analyse them (windows alone and jointly)."""
    out = ParticleOutcome(truth)
    m = truth.model
    f0 = forward(m, 0.0)
    nx, npairs = budget(float(f0.qy_x), float(f0.qy_xx), truth.mean_excitations, truth.p_det,
                        truth.neutral_s)
    tx0 = draw_lifetime(float(f0.tau_x_ns), nx, rng, MIN_PHOTONS)
    txx0 = draw_lifetime(float(f0.tau_xx_ns), npairs, rng, MIN_PAIRS)
    if tx0 is None or txx0 is None:
        out.neutral_ok = False
        return out
    ref = NeutralReference.from_particle(tx0[0], tx0[1], txx0[0], txx0[1])
    rates = neutral_rates(ref, m)
    out.neutral_k_a = (rates.k_a_xx0_per_ns, rates.k_a_xx0_err_per_ns)
    if not rates.consistent:
        out.neutral_ok = False
        out.window_flags.append(("neutral_inconsistent",))
        return out
    analysis_model = m.replace(tau_x0_ns=None, tau_a_xx0_ns=None)  # measured, not known
    windows, n_true, fits = [], [], []
    for n in truth.n_windows:
        fw = forward(m, float(n))
        nx, npairs = budget(float(fw.qy_x), float(fw.qy_xx), truth.mean_excitations,
                            truth.p_det, WINDOW_S)
        tx = draw_lifetime(float(fw.tau_x_ns), nx, rng, MIN_PHOTONS)
        txx = draw_lifetime(float(fw.tau_xx_ns), npairs, rng, MIN_PAIRS)
        if tx is None or txx is None:
            out.n_windows_dropped += 1
            continue
        t0 = len(windows) * WINDOW_S
        obs = ChargedObservation(tx[0], tx[1], txx[0], txx[1], t_start_s=t0,
                                 t_stop_s=t0 + WINDOW_S)
        fit = infer_charging(ref, obs, analysis_model, profile=False, n_starts=0)
        out.window_flags.append(fit.flags)
        out.tau_ratio_below_2.append(tx[0] / txx[0] < 2.0)
        if math.isfinite(fit.n):
            out.window_n.append((float(n), fit.n, fit.n_err_delta))
        if fit.usable:
            windows.append(obs)
            n_true.append(float(n))
            fits.append(fit)
    if not windows:
        return out
    w = np.full(len(windows), 1.0 / len(windows))
    n_true = np.asarray(n_true)
    out.n_true = float(w @ n_true)
    out.tau_a_true = float(w @ forward(m, n_true).tau_a_xx_ns)
    out.tau_a0_true = float(m.tau_a_xx0_ns)
    # the former pipeline: windows combined as if independent
    n_i = np.array([f.n for f in fits])
    s_i = np.array([0.5 * (min(f.n + f.n_err_delta, 40.0) - max(f.n - f.n_err_delta, 0.0))
                    for f in fits])
    out.indep_n, out.indep_n_err = float(w @ n_i), float(np.sqrt(np.sum((w * s_i) ** 2)))
    t_i = np.array([f.tau_a_xx_ns for f in fits])
    ts_i = np.array([f.tau_a_xx_err_ns for f in fits])
    out.indep_tau_a, out.indep_tau_a_err = float(w @ t_i), float(np.sqrt(np.sum((w * ts_i)
                                                                                ** 2)))
    out.joint = combine_windows(windows, ref, analysis_model, weights=w, starts=n_i,
                                profile=profile)
    return out


def pulls(est, lo, hi, truth):
    """Pulls with the interval half-width on the side of the truth (NaN-free entries only)."""
    est, lo, hi, truth = (np.asarray(a, float) for a in (est, lo, hi, truth))
    sigma = np.where(truth > est, hi - est, est - lo)
    ok = np.isfinite(est) & np.isfinite(truth) & (sigma > 0)
    return (truth[ok] - est[ok]) / sigma[ok], (est[ok] - truth[ok]) / truth[ok]


@dataclass
class Summary:
    """Bias, pull and coverage statistics of one estimate over a population."""

    n: int
    median_rel_bias: float
    pull_mean: float
    pull_std: float
    pull_robust_std: float
    coverage_1: float
    coverage_2: float


def summarise(p, rel) -> Summary:
    """Statistics of pulls ``p`` and relative errors ``rel`` (see module doc)."""
    if p.size == 0:
        return Summary(0, *(math.nan,) * 6)
    fin = np.isfinite(p)
    pf = p[fin]
    return Summary(int(p.size), float(np.median(rel)), float(np.mean(pf)), float(np.std(pf)),
                   float(1.4826 * np.median(np.abs(pf - np.median(pf)))),
                   float(np.mean(np.abs(p) <= 1)), float(np.mean(np.abs(p) <= 2)))


def population(n_particles: int, seed: int, *, profile: bool = True) -> list[ParticleOutcome]:
    """Simulate and analyse ``n_particles`` particles (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    return [analyse(draw_particle(rng), rng, profile=profile) for _ in range(n_particles)]


def tables(outcomes: list[ParticleOutcome]) -> dict[str, Summary]:
    """Summary per estimate: joint (profile interval, delta error) and independent."""
    done = [o for o in outcomes if o.joint is not None and o.joint.success]
    j = [o.joint for o in done]

    def col(get):
        return np.array([get(x) for x in j], float)

    def truth(name):
        return np.array([getattr(o, name) for o in done], float)

    res = {}
    for key, attr, tname in (("n_c", "n_mean", "n_true"),
                             ("tau_a_xx_c", "tau_a_xx_mean", "tau_a_true"),
                             ("tau_a_xx0", "tau_a_xx0", "tau_a0_true")):
        sfx = "_ns" if attr != "n_mean" else ""
        est = col(lambda x, a=attr, s=sfx: getattr(x, a + s))
        lo = col(lambda x, a=attr, s=sfx: getattr(x, a + "_lo" + s))
        hi = col(lambda x, a=attr, s=sfx: getattr(x, a + "_hi" + s))
        err = col(lambda x, a=attr, s=sfx: getattr(x, a + "_err" + s))
        res[f"{key} joint, profile interval"] = summarise(*pulls(est, lo, hi, truth(tname)))
        res[f"{key} joint, delta error"] = summarise(*pulls(est, est - err, est + err,
                                                            truth(tname)))
    ind = [o for o in outcomes if o.joint is not None]
    for key, e, s, t in (("n_c", "indep_n", "indep_n_err", "n_true"),
                         ("tau_a_xx_c", "indep_tau_a", "indep_tau_a_err", "tau_a_true")):
        est = np.array([getattr(o, e) for o in ind])
        err = np.array([getattr(o, s) for o in ind])
        tr = np.array([getattr(o, t) for o in ind])
        res[f"{key} windows as independent (before)"] = summarise(*pulls(est, est - err,
                                                                         est + err, tr))
    wn = np.array([x for o in outcomes for x in o.window_n], float).reshape(-1, 3)
    if wn.size:
        res["n per window alone, delta error"] = summarise(*pulls(wn[:, 1], wn[:, 1] - wn[:, 2],
                                                                  wn[:, 1] + wn[:, 2],
                                                                  wn[:, 0]))
    return res


def flag_rates(outcomes: list[ParticleOutcome]) -> tuple[int, dict[str, float]]:
    """Firing rate of every window flag, of the old tau_ratio_below_2 rule and particle flags."""
    wins = [f for o in outcomes for f in o.window_flags if f != ("neutral_inconsistent",)]
    names = sorted({x for f in wins for x in f})
    rates = {name: float(np.mean([name in f for f in wins])) for name in names}
    ratio = [x for o in outcomes for x in o.tau_ratio_below_2]
    rates["(old) tau_ratio_below_2"] = float(np.mean(ratio)) if ratio else math.nan
    joint = [o.joint for o in outcomes if o.joint is not None]
    for name in sorted({x for j in joint for x in j.flags}):
        rates[f"particle: {name}"] = float(np.mean([name in j.flags for j in joint]))
    ka = np.array([o.neutral_k_a for o in outcomes if np.isfinite(o.neutral_k_a[0])])
    if ka.size:
        rates["particle: neutral_inconsistent (k_A,XX0 + 2 sigma <= 0)"] = float(
            np.mean(ka[:, 0] + 2 * ka[:, 1] <= 0))
        rates["(old) neutral k_A,XX0 <= 0 refused"] = float(np.mean(ka[:, 0] <= 0))
    return len(wins), rates


SENSITIVITY_TRUTH = ChargeModelConfig(tau_x0_ns=10.0, qy_x0=0.7, tau_a_xx0_ns=13.9, eps=0.5,
                                      gamma=2.39)
SENSITIVITY_CASES = {
    "told the truth": {},
    "QY_X0 assumed 1": {"qy_x0": 1.0},
    "QY_X0 assumed 0.85": {"qy_x0": 0.85},
    "eps assumed 0.3": {"eps": 0.3},
    "eps assumed 1": {"eps": 1.0},
    "gamma assumed 1 (default)": {"gamma": 1.0},
    "gamma fitted (free)": {"free": ("gamma",)},
    "variant uncapped": {"variant": "uncapped"},
    "k_nr0 on all states assumed": {"knr_all_states": True},
    "beta_XX assumed 3.5": {"beta_xx": 3.5},
}


def sensitivity(n_true: float = 6.0) -> dict[str, tuple]:
    """n_c and tau_A,XX^{nc-} from exact lifetimes of SENSITIVITY_TRUTH under wrong assumptions.

    Returns name -> (n, tau_A,XX^{nc-} of the model, model-free tau_A,XX^{nc-}, tau_A,XX0 as
    derived from the neutral lifetimes, flags).
    """
    t = SENSITIVITY_TRUTH
    f0, fn = forward(t, 0.0), forward(t, n_true)
    ref = NeutralReference.from_particle(float(f0.tau_x_ns), 1e-4 * float(f0.tau_x_ns),
                                         float(f0.tau_xx_ns), 1e-4 * float(f0.tau_xx_ns))
    obs = ChargedObservation(float(fn.tau_x_ns), 1e-4 * float(fn.tau_x_ns), float(fn.tau_xx_ns),
                             1e-4 * float(fn.tau_xx_ns))
    out = {}
    for name, change in SENSITIVITY_CASES.items():
        change = dict(change)
        free = change.pop("free", ())
        told = t.replace(tau_x0_ns=None, tau_a_xx0_ns=None, **change)
        rates = neutral_rates(ref, told)
        fit = infer_charging(ref, obs, told, free=free, profile=False,
                             n_starts=5 if told.variant == "uncapped" else 0)
        out[name] = (fit.n, fit.tau_a_xx_ns, fit.tau_a_xx_direct_ns, rates.tau_a_xx0_ns,
                     fit.flags)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--flags", action="store_true")
    ap.add_argument("--sensitivity", action="store_true",
                    help="only the table of n_c under wrong model assumptions")
    args = ap.parse_args(argv)
    if args.sensitivity:
        t = SENSITIVITY_TRUTH
        print(f"truth: capped, tau_X0 {t.tau_x0_ns} ns, QY_X0 {t.qy_x0}, tau_A,XX0 "
              f"{t.tau_a_xx0_ns} ns, eps {t.eps}, gamma {t.gamma}, n = 6 (tau_A,XX^6- = "
              f"{float(forward(t, 6.0).tau_a_xx_ns):.3f} ns); exact lifetimes")
        print(f"{'analysed with':30s} {'n_c':>7s} {'tau_A,XX^c':>10s} {'model-free':>10s} "
              f"{'tau_A,XX0':>9s}  flags")
        for name, (n, ta, td, t0, fl) in sensitivity().items():
            print(f"{name:30s} {n:7.2f} {ta:10.3f} {td:10.3f} {t0:9.2f}  {','.join(fl)}")
        return 0
    t0 = time.perf_counter()
    outcomes = population(args.particles, args.seed)
    dt = time.perf_counter() - t0
    done = sum(o.joint is not None and o.joint.success for o in outcomes)
    print(f"{args.particles} particles (seed {args.seed}), {done} with a particle value; "
          f"{dt:.0f} s")
    print(f"{'estimate':48s} {'N':>4s} {'bias':>7s} {'pull mean':>9s} {'std':>6s} "
          f"{'rob.std':>7s} {'1-sig':>6s} {'2-sig':>6s}")
    for name, s in tables(outcomes).items():
        print(f"{name:48s} {s.n:4d} {100 * s.median_rel_bias:6.1f}% {s.pull_mean:9.2f} "
              f"{s.pull_std:6.2f} {s.pull_robust_std:7.2f} {100 * s.coverage_1:5.1f}% "
              f"{100 * s.coverage_2:5.1f}%")
    if args.flags:
        n_win, rates = flag_rates(outcomes)
        print(f"\nflag firing rates on {n_win} simulated windows (correct model throughout)")
        for name, r in rates.items():
            print(f"  {name:48s} {100 * r:6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
