"""Tests of qrspec.levels.dwell_laws: the four dwell-time laws, t_min, bootstrap, comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from qrspec.errors import QrspecError
from qrspec.levels import _dwell_kernels as kernels
from qrspec.levels.dwell_laws import (
    compare_laws,
    fit_cutoff_power_law,
    fit_dwell_law,
    fit_exponential,
    fit_power_law,
    fit_truncated_power_law,
    log_upper_gamma,
    select_t_min,
)


def power_law(rng, n, alpha, t0):
    return t0 * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


def brute_max(fit, x, t_min, c, starts, bounds):
    """Best log-likelihood found by Nelder-Mead from several starts (reference optimiser)."""
    from scipy.optimize import minimize

    from qrspec.levels import dwell_laws as dl

    y = x[x >= t_min] / t_min
    cc = np.asarray(c, float)
    cc = cc[cc >= t_min] / t_min

    def nll(p):
        if not all(lo <= v <= hi for v, (lo, hi) in zip(p, bounds, strict=True)):
            return np.inf
        par = tuple(p) if len(p) == 2 else (p[0], 0.0)
        if fit.model == "truncated":
            par = (p[0], max(y.max(), cc.max() if cc.size else 0) * math.exp(p[1]))
        if fit.model == "cutoff":
            par = (p[0], math.exp(p[1]))
        ll = np.sum(dl._log_pdf(fit.model, y, par)) - y.size * math.log(t_min)
        if cc.size:
            ll += np.sum(dl._log_survival(fit.model, cc, par))
        return -ll if np.isfinite(ll) else np.inf

    best = min((minimize(nll, s, method="Nelder-Mead",
                         options=dict(xatol=1e-10, fatol=1e-12, maxiter=5000)) for s in starts),
               key=lambda r: r.fun)
    return -best.fun


# ---------------------------------------------------------------- special function
@pytest.mark.parametrize("a", [-3.7, -2.0, -1.0, -0.4, 0.0, 1e-9, 0.3, 1.0, 2.5])
def test_log_upper_gamma_matches_references(a):
    from scipy.integrate import quad
    from scipy.special import gamma, gammaincc

    x = np.array([1e-8, 1e-3, 0.2, 3.0, 25.0, 39.99, 40.0, 55.0, 400.0])
    got = log_upper_gamma(a, x)
    for xi, g in zip(x, got, strict=True):
        # reference: adaptive quadrature of t^(a-1) e^-t in u = ln t, scaled at the lower end
        scale = a * math.log(xi) - xi
        val, _ = quad(lambda u, s=scale: math.exp(a * u - math.exp(u) - s), math.log(xi),
                      math.log(xi) + 60.0, limit=400, epsabs=0, epsrel=1e-13)
        assert g == pytest.approx(math.log(val) + scale, rel=1e-10, abs=1e-10)
        if a > 0 and xi < 300:  # scipy covers a > 0 only
            assert g == pytest.approx(math.log(gammaincc(a, xi) * gamma(a)), rel=1e-10)


# ---------------------------------------------------------------- the four fits
def test_power_law_closed_form_is_the_likelihood_maximum(rng):
    x = power_law(rng, 150, 1.7, 0.01)
    c = [3.0, 0.005]  # the second is below t_min and ignored
    fit = fit_power_law(x, 0.01, c)
    y = x[x >= 0.01] / 0.01
    assert fit.alpha == pytest.approx(1.0 + y.size / (np.log(y).sum() + math.log(300.0)))
    assert fit.n_events == y.size and fit.n_censored == 1
    assert fit.alpha_err == pytest.approx((fit.alpha - 1.0) / math.sqrt(y.size))
    best = brute_max(fit, x, 0.01, c, [(1.5,), (2.5,)], [(1.0001, 10.0)])
    assert fit.loglik == pytest.approx(best, abs=1e-8)


def test_exponential_closed_form_is_the_likelihood_maximum(rng):
    x = 0.02 + rng.exponential(0.3, 120)
    fit = fit_exponential(x, 0.02, [1.5])
    assert fit.rate_hz == pytest.approx(120 / (np.sum(x - 0.02) + 1.48))
    best = brute_max(fit, x, 0.02, [1.5], [(0.0, 5.0), (0.0, 20.0)], [(-1, 1), (1e-9, 1e3)])
    assert fit.loglik == pytest.approx(best, abs=1e-8)


@pytest.mark.parametrize("censored", [[], [0.4], [50.0]])
def test_truncated_fit_is_the_likelihood_maximum(rng, censored):
    x = power_law(rng, 200, 1.5, 0.01)
    x = x[x < 2.0]
    fit = fit_truncated_power_law(x, 0.01, censored)
    assert fit.success
    if not censored:
        assert fit.t_max_s == pytest.approx(x.max())  # the MLE sits at the longest event
    starts = [(a, w) for a in (1.2, 1.6, 2.0) for w in (1e-6, 0.1, 1.0)]
    best = brute_max(fit, x, 0.01, censored, starts, [(-10, 10), (1e-9 if censored else 0, 30)])
    assert fit.loglik >= best - 1e-7  # never worse than the brute-force optimum


@pytest.mark.parametrize("censored", [[], [0.3], [1.5]])
def test_cutoff_fit_is_the_likelihood_maximum(rng, censored):
    x = power_law(rng, 300, 1.4, 0.01)
    x = x[rng.random(x.size) < np.exp(-x / 0.5)]  # exponential cut-off at 0.5 s
    fit = fit_cutoff_power_law(x, 0.01, censored)
    assert fit.success and np.isfinite(fit.alpha_err) and np.isfinite(fit.rate_err_hz)
    starts = [(a, lr) for a in (-1.0, 0.5, 1.5, 2.5) for lr in (-12.0, -5.0, -2.0, 0.0)]
    best = brute_max(fit, x, 0.01, censored, starts, [(-5, 8), (-20, 5)])
    assert fit.loglik >= best - 1e-7
    assert fit.rate_hz == pytest.approx(2.0, rel=0.6)  # 1/0.5 s, within ~2.5 sigma


@pytest.mark.parametrize("make", [fit_power_law, fit_truncated_power_law, fit_exponential,
                                  fit_cutoff_power_law])
def test_pdf_normalised_and_survival_is_its_tail_integral(rng, make):
    from scipy.integrate import quad

    x = power_law(rng, 300, 1.6, 0.01)
    x = x[x < 5.0]
    fit = make(x, 0.01, [1.0])
    top = min(fit.t_max_s, 50.0) if fit.model == "truncated" else 50.0

    def mass(a, b):  # integral of the pdf over [a, b] in u = ln t
        v, _ = quad(lambda u: float(fit.pdf(np.exp(u))) * math.exp(u), math.log(a),
                    math.log(b), limit=400, epsabs=1e-12, epsrel=1e-10)
        return v

    assert mass(0.01, top) + float(fit.survival(top)) == pytest.approx(1.0, abs=1e-8)
    for t in (0.02, 0.3, 2.0):
        assert float(fit.survival(t)) - float(fit.survival(top)) == pytest.approx(
            mass(t, top), abs=1e-8)
    assert float(fit.survival(0.001)) == 1.0  # below t_min


# ---------------------------------------------------------------- t_min and the kernels
def test_ks_kernels_match_their_python_reference(rng):
    x = np.sort(np.round(power_law(rng, 120, 1.8, 0.01), 3))  # rounded: ties
    c = np.array([0.5, 0.02])
    for res, m in ((0.01, 10), (0.05, 5)):
        cand = kernels.candidate_indices(x, res, m, 200)
        assert np.array_equal(cand, kernels.candidate_indices.py_func(x, res, m, 200))
        ks, a = kernels.ks_scan(x, c, cand)
        ks_ref, a_ref = kernels.ks_scan.py_func(x, c, cand)
        assert_allclose(ks, ks_ref, rtol=1e-12)
        assert_allclose(a, a_ref, rtol=1e-12)
    few = kernels.candidate_indices(np.sort(rng.random(1000)) + 1.0, 0.0, 10, 50)
    assert few.size <= 50 and few[0] == 0 and np.all(np.diff(few) > 0)


def test_ks_brute_force_at_one_candidate(rng):
    x = np.sort(power_law(rng, 80, 2.0, 0.01))
    t, ks, cand_s, scan = select_t_min(x, resolution_s=0.01, min_events=10)
    i = int(np.searchsorted(x, t))
    tail = x[i:]
    a = 1.0 + tail.size / np.sum(np.log(tail / t))
    f = 1.0 - (tail / t) ** (1.0 - a)
    emp_hi = np.arange(1, tail.size + 1) / tail.size
    emp_lo = np.arange(tail.size) / tail.size
    assert ks == pytest.approx(max(np.max(emp_hi - f), np.max(f - emp_lo)))
    assert ks == pytest.approx(scan.min()) and t in cand_s


def test_t_min_found_above_a_non_power_law_body(rng):
    # uniform body on [1, 10] ms, power law alpha 1.8 from 10 ms: KS puts t_min near 10 ms
    x = np.concatenate([rng.uniform(0.001, 0.01, 800), power_law(rng, 1500, 1.8, 0.01)])
    law = fit_dwell_law(x, resolution_s=0.001, min_events=15, models=("power_law",))
    assert 0.008 < law.t_min_s < 0.02
    assert abs(law.alpha - 1.8) < 3 * law.alpha_err
    assert law.t_min_s >= law.resolution_s


def test_t_min_never_below_the_resolution(rng):
    x = power_law(rng, 400, 1.5, 0.001)
    law = fit_dwell_law(x, resolution_s=0.02, min_events=15, models=("power_law",))
    assert law.t_min_s >= 0.02
    assert np.all(law.scan_t_min_s >= 0.02)


# ---------------------------------------------------------------- recovery and coverage
def test_alpha_error_bars_cover_the_truth_on_a_small_population(rng):
    # 60 particles x 60 stays, alpha 1.6, one right-censored stay each (the last one).
    # Expected coverage (scripts/validate_dwell.py): 68 % interval 0.70-0.89, 95 % >= 0.955;
    # with 60 fits the binomial sd is ~0.06 (68 %) and ~0.03 (95 %): limits at ~3 sd.
    inside1 = inside2 = 0
    n_fit = 0
    for _ in range(60):
        x = power_law(rng, 61, 1.6, 0.01)
        law = fit_dwell_law(x[:-1], [x[-1] * rng.random()], resolution_s=0.01, min_events=15,
                            models=("power_law",))
        assert np.isfinite(law.alpha) and law.alpha_err > 0
        n_fit += 1
        pull = abs(law.alpha - 1.6) / law.alpha_err
        inside1 += pull <= 1
        inside2 += pull <= 2
    assert 0.55 <= inside1 / n_fit <= 0.99
    assert inside2 / n_fit >= 0.86


def test_too_few_events_gives_nan_with_a_flag(rng):
    x = power_law(rng, 12, 1.6, 0.01)
    law = fit_dwell_law(x, resolution_s=0.01, min_events=15)
    assert math.isnan(law.alpha) and math.isnan(law.alpha_err) and math.isnan(law.t_min_s)
    assert law.flag.startswith("too few events: 12")
    assert law.best_model == "" and law.fits == ()


def test_fixed_t_min_uses_the_curvature_error(rng):
    x = power_law(rng, 100, 1.6, 0.01)
    law = fit_dwell_law(x, resolution_s=0.01, min_events=15, t_min_s=0.01)
    assert law.alpha_err == law.fit("power_law").alpha_err
    assert math.isnan(law.alpha_err_bootstrap)
    assert np.isfinite(law.ks_distance)


# ---------------------------------------------------------------- comparison
def test_comparison_prefers_the_true_law(rng):
    pl = fit_dwell_law(power_law(rng, 400, 1.6, 0.01), resolution_s=0.01, min_events=15,
                       t_min_s=0.01, n_boot=0)
    assert pl.best_model == "power_law"
    ex = fit_dwell_law(0.01 + rng.exponential(0.1, 400), resolution_s=0.01, min_events=15,
                       t_min_s=0.01, n_boot=0)
    assert ex.best_model == "exponential"
    x = power_law(rng, 3000, 1.3, 0.01)
    cut = x[rng.random(x.size) < np.exp(-x / 0.3)]
    law = fit_dwell_law(cut, resolution_s=0.01, min_events=15, t_min_s=0.01, n_boot=0)
    assert law.best_model == "cutoff"
    comp = {(c.first, c.second): c for c in law.comparisons}
    assert comp[("cutoff", "power_law")].nested and comp[("cutoff", "power_law")].p_value < 1e-3


def test_nested_cutoff_test_false_alarm_rate(rng):
    # power-law data (alpha 1.7 < 2: infinite mean): the cut-off is called significant
    # (p < 0.1) in ~10 % of cases with the chi2_1 law (measured 0.09-0.10 at alpha 1.6, see
    # scripts/validate_dwell.py --part nested); 80 samples -> sd ~0.034, limit ~2 sd
    hits = 0
    for _ in range(80):
        x = power_law(rng, 100, 1.7, 0.01)
        a = fit_cutoff_power_law(x, 0.01)
        b = fit_power_law(x, 0.01)
        hits += compare_laws(a, b).p_value < 0.1
    assert hits / 80 <= 0.16


def test_compare_rejects_fits_of_different_events(rng):
    x = power_law(rng, 50, 1.7, 0.01)
    with pytest.raises(QrspecError, match=r"must be fitted to the same events"):
        compare_laws(fit_power_law(x, 0.01), fit_exponential(x, 0.02))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(durations_s=[0.1, -1.0]), r"durations_s must be finite durations > 0 s"),
    (dict(censored_s=[np.nan]), r"censored_s must be finite durations > 0 s"),
    (dict(resolution_s=0.0), r"t_min_s=0.0 must be a finite number > 0"),
    (dict(min_events=2), r"min_events=2 must be an integer >= 3"),
    (dict(n_boot=-1), r"n_boot=-1 must be an integer >= 0"),
    (dict(models=("power_law", "lognormal")), r"models=\['power_law', 'lognormal'\] must be"),
    (dict(t_min_s=0.001), r"t_min_s=0.001 must be >= resolution_s=0.01"),
])
def test_fit_dwell_law_rejects_bad_input(kwargs, match):
    args = dict(durations_s=[0.02, 0.05, 0.1], censored_s=(), resolution_s=0.01, min_events=3)
    args.update(kwargs)
    with pytest.raises(QrspecError, match=match):
        fit_dwell_law(args.pop("durations_s"), args.pop("censored_s"), **args)


def test_degenerate_fits_fail_cleanly():
    for make in (fit_power_law, fit_truncated_power_law, fit_exponential, fit_cutoff_power_law):
        f = make([0.01, 0.01, 0.01, 0.01], 0.01)
        assert not f.success and "equal t_min" in f.message
        assert np.all(np.isnan(f.survival([0.1])))
        f = make([0.5], 0.01)
        assert not f.success and "need" in f.message


def test_damped_newton_lazy_hessian_takes_the_same_path():
    # Rosenbrock in a box (rejected trial steps happen): the lazy mode evaluates the Hessian
    # only at accepted points, and everything else must be the same numbers
    from qrspec.levels.dwell_laws import _damped_newton

    n_hess = [0]

    def fg(p):
        x, y = float(p[0]), float(p[1])
        f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        return f, np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])

    def hess(p):
        n_hess[0] += 1
        x, y = float(p[0]), float(p[1])
        return np.array([[2 - 400 * (y - 3 * x * x), -400 * x], [-400 * x, 200.0]])

    def fgh(p):
        f, g = fg(p)
        return f, g, hess(p)

    lo, hi = np.array([-2.0, -1.0]), np.array([2.0, 3.0])
    full = _damped_newton(fgh, np.array([-1.5, 2.5]), lo, hi)
    n_full = n_hess[0]
    n_hess[0] = 0
    lazy = _damped_newton(fgh, np.array([-1.5, 2.5]), lo, hi, lazy=(fg, hess))
    assert full[3] and lazy[3]
    assert np.array_equal(full[0], lazy[0]) and full[1] == lazy[1]
    assert np.array_equal(full[2], lazy[2])
    assert_allclose(full[0], [1.0, 1.0], atol=1e-6)
    assert n_hess[0] < n_full
