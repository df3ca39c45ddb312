"""Particle-level n_c, tau_A,XX^{nc-} and tau_A,XX0: all windows and the neutral reference at once.

Every charged window of a particle is inverted against the same neutral rates
theta_0 = (k_r, k_A,XX0), so the window values share the error of theta_0. Combining them as if
independent (``sum w_i^2 Var(n_i)``) is overconfident: measured on simulated particles the pull
of the particle's n_c then has a standard deviation of ~2.4 and its 2-sigma coverage is ~65 %
(scripts/validate_charging.py).

:func:`combine_windows` fits one likelihood over the neutral observables and every window
(the fit of :func:`qrspec.charging.inverse.infer_charging` with W windows: a charge number per
window, the shared k_r and k_A,XX0 and any shared free model parameter). The time-weighted
particle values

    n_mean       = sum_i w_i n_i
    tau_a_mean   = sum_i w_i tau_A,XX(n_i; theta)
    tau_a_xx0    = 1 / k_A,XX0

get two uncertainties: the delta method with the full covariance of the joint fit (``*_err``,
``g^T Cov g``; this is the methods.md §9.4 formula ``sum w_i^2 Var_own + g^T Cov(theta_0) g``
done right: the windows also inform theta_0, through the model's over-determination of n by
tau_X^c and tau_XX^c, which §9.4's "n_i = f(tau_i; theta_0)" leaves out) and the
profile-likelihood 68 % interval (``*_lo``, ``*_hi``; Delta chi^2 = 1 with the particle value
held fixed and everything else refitted). Report the interval: k_A,XX0 is a small difference
of two large rates with a relative error of ~30 % for a few hundred neutral heralded pairs,
and n ~ 1/k_A,XX0, so the linearised error under-covers (2-sigma coverage 87 % against 93 %
for the profile interval in the validation). The delta-method error of a derived quantity is
the same in every parametrisation, so no reparametrisation fixes it; the profile interval is
parametrisation-invariant and follows the skew.

The windows given are combined as they are: drop windows whose own fit is not usable
(:attr:`qrspec.charging.inverse.ChargingFit.usable`) before calling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.inverse import (
    ChargedObservation,
    _check_common,
    _check_mean_excitations,
    _covariance,
    _lsq,
    _Problem,
    infer_charging,
)
from qrspec.charging.neutral import NeutralReference
from qrspec.errors import QrspecError

__all__ = ["ParticleCharging", "combine_windows"]


@dataclass(frozen=True, eq=False)
class ParticleCharging:
    """Particle-level charging numbers from the joint fit of all windows (module doc).

    Attributes
    ----------
    n_mean, n_mean_lo, n_mean_hi, n_mean_err : float
        Time-weighted charge number, its profile 68 % interval and delta-method error.
    tau_a_xx_mean_ns, tau_a_xx_mean_lo_ns, tau_a_xx_mean_hi_ns, tau_a_xx_mean_err_ns : float
        Time-weighted charged biexciton Auger lifetime tau_A,XX^{nc-}, interval, error.
    tau_a_xx0_ns, tau_a_xx0_lo_ns, tau_a_xx0_hi_ns, tau_a_xx0_err_ns : float
        Neutral biexciton Auger lifetime 1/k_A,XX0 of the joint fit (hi may be inf).
    k_r_per_ns, k_r_err_per_ns : float
        Radiative rate of the joint fit.
    n, n_err : ndarray
        Per-window charge numbers of the joint fit and delta errors (shared part included).
    tau_a_xx_ns, tau_a_xx_err_ns : ndarray
        Per-window tau_A,XX^{nc-} and delta errors.
    weights : ndarray
        The normalised time weights.
    free_params : dict
        name -> (value, delta error) of the shared fitted parameters (k_r, k_a_xx0, ...).
    chi2, dof, p_value : float, int, float
        Goodness of the joint fit.
    flags : tuple of str
        ``neutral_inconsistent``, ``underdetermined``, ``degenerate``, ``poor_fit``
        (p < 0.01), ``at_lower_bound`` / ``at_upper_bound`` (n_mean interval one-sided),
        ``window_at_bound`` (some n_i at 0 or n_max), ``tau_a_xx0_unbounded`` (hi = inf).
    success : bool
    message : str
    neutral_source : str
        ``NeutralReference.source`` ("particle", "user" or "group").
    """

    n_mean: float
    n_mean_lo: float
    n_mean_hi: float
    n_mean_err: float
    tau_a_xx_mean_ns: float
    tau_a_xx_mean_lo_ns: float
    tau_a_xx_mean_hi_ns: float
    tau_a_xx_mean_err_ns: float
    tau_a_xx0_ns: float
    tau_a_xx0_lo_ns: float
    tau_a_xx0_hi_ns: float
    tau_a_xx0_err_ns: float
    k_r_per_ns: float
    k_r_err_per_ns: float
    n: np.ndarray
    n_err: np.ndarray
    tau_a_xx_ns: np.ndarray
    tau_a_xx_err_ns: np.ndarray
    weights: np.ndarray
    free_params: dict = field(default_factory=dict)
    chi2: float = math.nan
    dof: int = 0
    p_value: float = math.nan
    flags: tuple = ()
    success: bool = True
    message: str = ""
    neutral_source: str = ""


def _weights(windows, weights):
    if weights is None:
        d = np.array([w.duration_s for w in windows], float)
        w = d if np.all(np.isfinite(d)) else np.ones(len(windows))
    else:
        w = np.asarray(weights, float)
        if w.shape != (len(windows),) or not np.all(np.isfinite(w)) or np.any(w < 0) \
                or not w.sum() > 0:
            raise QrspecError(f"weights={weights!r} must be {len(windows)} finite values >= 0 "
                              "with a positive sum")
    return w / w.sum()


def _profile_edges(problem, theta, chi2_min, func, value, sigma, bounds, level=1.0,
                   path=None):
    """Profile-likelihood interval of the scalar ``func`` (returns (value, grad)).

    The constraint ``func(theta) = t`` is a stiff penalty residual; an edge is where the
    constrained chi^2 exceeds the minimum by ``level``, bracketed by doubling steps from the
    estimate (start: the delta error ``sigma``) and refined from the outer end by Newton steps
    on ``sqrt(Delta chi^2)`` (nearly linear in t), whose slope each profile fit gives for free
    (the penalty's multiplier, envelope theorem), kept inside the bracket (else an Illinois
    regula falsi step). A trial within 1e-4 of ``sqrt(level)`` (Delta chi^2 within ~2e-4) or
    a bracket narrower than 1e-2 sigma ends the search. An edge at a bound that is never
    reached is the bound (inf for an open upper bound).

    Warm starts: the first profile fit starts on the linearised profile path ``theta + (t -
    value) path`` (``path = Cov g / (g^T Cov g)``; None: at the estimate), the further
    doubling steps on the line through the last two profile optima, the refinement from the
    last profile optimum. The refinement comes from the outside, as the Illinois steps it
    replaced did: where the profile has two branches (a window at the capped model's kink
    n = 1), the fits started outside find the branch of lower chi^2 there.
    """
    if not (math.isfinite(sigma) and sigma > 0):
        sigma = 0.05 * max(abs(value), 1e-6)
    scale = 1e-2 * sigma  # constraint met to ~1e-4 sigma at Delta chi2 = 1
    r = math.sqrt(level)
    lo, hi = problem.lo, problem.hi

    def prof(t, start):
        """(sqrt(Delta chi^2) - sqrt(level), its slope in t, profile optimum or None).

        The slope of Delta chi^2 is the penalty's multiplier: at the optimum of chi^2 + p^2
        with p = (func - t) / scale, d/dt = -2 p / scale.
        """
        th, c = _lsq(problem, np.clip(start, lo, hi), penalty=(func, t, scale))
        off = func(th, grad=False)[0] - t
        h = math.sqrt(max(c - chi2_min, 0.0))
        dh = -off / scale**2 / h if h > 0 else 0.0  # (d Delta chi^2/dt) / (2 h)
        return h - r, dh, (th if abs(off) < 10 * scale else None)

    edges = []
    for sign in (-1.0, 1.0):
        a, ga, th_a = value, -r, theta  # the outermost trial inside (Delta chi^2 < level)
        t_prev, th_prev = value, theta
        step = sigma
        t = min(max(value + sign * step, bounds[0]), bounds[1])
        start = theta if path is None else theta + (t - value) * path
        edge = b = None
        for _ in range(40):  # bracket: doubling steps outwards
            gt, dh, th = prof(t, start)
            if abs(gt) < 1e-4:  # Delta chi^2 within ~2e-4 of the level
                edge = t
                break
            if gt >= 0:
                b, gb, dhb, th_b = t, gt, dh, (th if th is not None else th_a)
                break
            if t in bounds:
                edge = t
                break
            if th is not None:
                th_a, th_prev, t_prev = th, th_a, a
            a, ga = t, gt
            step *= 2.0
            t = min(max(value + sign * step, bounds[0]), bounds[1])
            start = th_a + (t - a) * (th_a - th_prev) / (a - t_prev)
        if b is not None:  # refine from the outer end: Newton, kept inside the bracket
            t, gt, dh, th_last = b, gb, dhb, th_b
            side = 0
            for _ in range(60):
                if abs(b - a) <= 1e-2 * sigma:
                    edge = 0.5 * (a + b)
                    break
                c = t - gt / dh if sign * dh > 0 else math.nan
                if not min(a, b) < c < max(a, b):  # regula falsi (Illinois)
                    c = b - gb * (b - a) / (gb - ga) if gb != ga else 0.5 * (a + b)
                    if not min(a, b) < c < max(a, b):
                        c = 0.5 * (a + b)
                t = c
                gt, dh, th = prof(t, th_last)
                if th is not None:
                    th_last = th
                if abs(gt) < 1e-4:
                    edge = t
                    break
                if gt < 0:
                    a, ga = t, gt
                    if side == -1:
                        gb *= 0.5
                    side = -1
                else:
                    b, gb = t, gt
                    if side == 1:
                        ga *= 0.5
                    side = 1
            if edge is None:
                edge = 0.5 * (a + b)
        if edge is None:  # never reached Delta chi^2: open towards an infinite bound
            edge = bounds[1] if sign > 0 else bounds[0]
        edges.append(float(edge))
    return edges[0], edges[1]


def combine_windows(windows: Sequence[ChargedObservation], neutral: NeutralReference,
                    config: ChargeModelConfig | None = None, *, weights=None, free=(),
                    n_max: float = 40.0, starts=None, profile: bool = True,
                    mean_excitations: float | None = None) -> ParticleCharging:
    """Particle n_c, tau_A,XX^{nc-} and tau_A,XX0 from one fit of all windows (module doc).

    Parameters
    ----------
    windows : sequence of ChargedObservation
        The particle's usable charged windows.
    neutral : NeutralReference
        The neutral reference (its source is recorded).
    config : ChargeModelConfig, optional
        Model, QY_X0 included (default methods.md §1.8); its neutral lifetimes are not used.
    weights : array_like, optional
        Weights of the windows in the particle means (normalised); default: the window
        durations when every window has times, else equal.
    free : sequence of str
        Shared free model parameters (as in :func:`~qrspec.charging.inverse.infer_charging`).
    n_max : float
        Upper bound of every n_i.
    starts : array_like, optional
        Start values of the n_i (e.g. the per-window fits' n); default: a single-window fit of
        each window.
    profile : bool
        Compute the profile-likelihood intervals (else lo/hi are value -+ delta error).
    mean_excitations : float, optional
        <N> of the windows' heralded tau_XX (as in
        :func:`~qrspec.charging.inverse.infer_charging`).

    Returns
    -------
    ParticleCharging
        Never raises on data that cannot decide: NaN values, ``success=False`` and a message.
    """
    from scipy.stats import chi2 as chi2_dist

    config, free, n_max = _check_common(neutral, config, free, n_max)
    windows = list(windows)
    if not windows:
        raise QrspecError("windows=[] is empty; need at least one charged window")
    for i, w in enumerate(windows):
        if not isinstance(w, ChargedObservation):
            raise QrspecError(f"windows[{i}]={w!r} must be a ChargedObservation")
    wts = _weights(windows, weights)
    W = len(windows)
    nan = math.nan
    empty = np.full(W, nan)
    base = dict(n_mean=nan, n_mean_lo=nan, n_mean_hi=nan, n_mean_err=nan,
                tau_a_xx_mean_ns=nan, tau_a_xx_mean_lo_ns=nan, tau_a_xx_mean_hi_ns=nan,
                tau_a_xx_mean_err_ns=nan, tau_a_xx0_ns=nan, tau_a_xx0_lo_ns=nan,
                tau_a_xx0_hi_ns=nan, tau_a_xx0_err_ns=nan, k_r_per_ns=nan, k_r_err_per_ns=nan,
                n=empty, n_err=empty, tau_a_xx_ns=empty, tau_a_xx_err_ns=empty, weights=wts,
                neutral_source=neutral.source)
    problem = _Problem(config, neutral, windows, free, n_max,
                       mean_excitations=_check_mean_excitations(mean_excitations))
    if not problem.neutral_consistent:
        return ParticleCharging(**base, flags=("neutral_inconsistent",), success=False,
                                message=f"neutral k_A,XX = {problem.k_axx0_measured:.4g} /ns is "
                                        "significantly <= 0")
    n_par = len(problem.names)
    dof = problem.n_obs - n_par
    if dof < 0:
        return ParticleCharging(**base, flags=("underdetermined",), success=False,
                                message=f"{n_par} parameters but {problem.n_obs} observables")
    if starts is None:
        n_starts = 5 if config.variant == "uncapped" else 0
        starts = []
        for w in windows:
            f = infer_charging(neutral, w, config, free=free, n_max=n_max, profile=False,
                               n_starts=n_starts)
            starts.append(f.n if math.isfinite(f.n) else 1.0)
    starts = np.asarray(starts, float)
    if starts.shape != (W,) or not np.all(np.isfinite(starts)):
        raise QrspecError(f"starts={starts!r} must be {W} finite numbers")
    x0 = problem.x0.copy()
    x0[:W] = np.clip(starts, 0.0, n_max)
    theta, chi2_min = _lsq(problem, x0)
    cov, s = _covariance(problem, theta)
    p_value = float(chi2_dist.sf(chi2_min, dof)) if dof > 0 else nan
    flags = []
    free_out = {name: (float(theta[j]), float(math.sqrt(max(cov[j, j], 0.0))))
                for j, name in enumerate(problem.names) if j >= W}
    base.update(chi2=chi2_min, dof=dof, p_value=p_value, free_params=free_out)
    if s.size < n_par or s[-1] <= 1e-7 * s[0]:
        return ParticleCharging(**base, flags=("degenerate",), success=False,
                                message=f"parameters {problem.names} are not all identifiable")

    # each returns (value, gradient); grad=False: (value, None), for the fit's residuals
    def n_mean(t, grad=True):
        g = np.zeros(t.size)
        g[:W] = wts
        return float(wts @ t[:W]), g

    def tau_mean(t, grad=True):
        return float(wts @ problem.tau_a(t)), problem.tau_a_mean_grad(t, wts) if grad else None

    has_ka = "k_a_xx0" in problem.names
    j_ka = problem.names.index("k_a_xx0") if has_ka else None

    def tau0(t, grad=True):
        k = problem.k_a_xx0(t)
        g = np.zeros(t.size)
        if has_ka:
            g[j_ka] = -1.0 / k**2
        return 1.0 / k, g

    out = {}
    for key, func, bounds in (("n_mean", n_mean, (0.0, n_max)),
                              ("tau_a_xx_mean", tau_mean, (0.0, math.inf)),
                              ("tau_a_xx0", tau0, (0.0, math.inf))):
        value, g = func(theta)
        err = float(math.sqrt(max(g @ cov @ g, 0.0)))
        if profile and err > 0:
            # d theta / d t along the linearised profile: the first profile fits' start
            path = cov @ g / (g @ cov @ g)
            lo, hi = _profile_edges(problem, theta, chi2_min, func, value, err, bounds,
                                    path=path)
        else:
            lo, hi = max(value - err, bounds[0]), min(value + err, bounds[1])
        out[key] = (value, lo, hi, err)
    ta = problem.tau_a(theta)
    ta_jac = problem.tau_a_jac(theta)
    ta_err = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", ta_jac, cov, ta_jac), 0.0))
    n_i = theta[:W]
    if out["n_mean"][1] <= 1e-9:
        flags.append("at_lower_bound")
    if out["n_mean"][2] >= n_max - 1e-9:
        flags.append("at_upper_bound")
    if np.any(n_i <= 1e-9) or np.any(n_i >= n_max - 1e-9):
        flags.append("window_at_bound")
    if not math.isfinite(out["tau_a_xx0"][2]):
        flags.append("tau_a_xx0_unbounded")
    success, msg = True, ""
    if dof > 0 and p_value < 0.01:
        flags.append("poor_fit")
        success = False
        msg = f"model inconsistent with the windows: chi2={chi2_min:.3g} for dof={dof}"
    j_kr = problem.names.index("k_r") if "k_r" in problem.names else None
    k_r = float(problem.values(theta)["k_r"])
    base.update(
        n_mean=out["n_mean"][0], n_mean_lo=out["n_mean"][1], n_mean_hi=out["n_mean"][2],
        n_mean_err=out["n_mean"][3], tau_a_xx_mean_ns=out["tau_a_xx_mean"][0],
        tau_a_xx_mean_lo_ns=out["tau_a_xx_mean"][1],
        tau_a_xx_mean_hi_ns=out["tau_a_xx_mean"][2],
        tau_a_xx_mean_err_ns=out["tau_a_xx_mean"][3], tau_a_xx0_ns=out["tau_a_xx0"][0],
        tau_a_xx0_lo_ns=out["tau_a_xx0"][1], tau_a_xx0_hi_ns=out["tau_a_xx0"][2],
        tau_a_xx0_err_ns=out["tau_a_xx0"][3], k_r_per_ns=k_r,
        k_r_err_per_ns=float(math.sqrt(max(cov[j_kr, j_kr], 0.0))) if j_kr is not None
        else 0.0,
        n=n_i.copy(), n_err=np.sqrt(np.maximum(np.diag(cov)[:W], 0.0)), tau_a_xx_ns=ta,
        tau_a_xx_err_ns=ta_err)
    return ParticleCharging(**base, flags=tuple(flags), success=success, message=msg)
