"""The light bounded Levenberg-Marquardt solver of the charge-model inversion (issue 19)."""

from __future__ import annotations

import numpy as np

from qrspec.charging import inverse
from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.forward import forward
from qrspec.charging.inverse import ChargedObservation, _covariance, _lsq, _Problem
from qrspec.charging.lm import lm_bounded
from qrspec.charging.neutral import NeutralReference


def _obs(cfg, n, rel_x=0.01, rel_xx=0.02, shift=(0.0, 0.0), **extra):
    r = forward(cfg, n)
    tx, txx = float(r.tau_x_ns), float(r.tau_xx_ns)
    # shift (in sigma): noise-like offsets, so that the optimum has chi2 > 0
    return ChargedObservation(tx * (1 + rel_x * shift[0]), rel_x * tx,
                              txx * (1 + rel_xx * shift[1]), rel_xx * txx, **extra)


def test_issue_19_light_solver_linear_box_problem_equals_exact_solution():
    # a bounded linear least-squares problem: the exact solution (scipy's lsq_linear, an
    # active-set method that ends on the bounds exactly) with two parameters held on bounds
    from scipy.optimize import lsq_linear

    rng = np.random.default_rng(3)
    a = rng.normal(size=(12, 5))
    b = rng.normal(size=12) + a @ np.array([-1.0, 2.0, 0.5, 3.0, -0.2])
    lo = np.array([0.0, -np.inf, 0.0, -1.0, 0.0])
    hi = np.array([np.inf, 1.0, np.inf, 1.0, np.inf])
    want = lsq_linear(a, b, bounds=(lo, hi), tol=1e-14, method="bvls").x
    x, ok = lm_bounded(lambda t: a @ t - b, lambda t: a, np.full(5, 0.5), lo, hi, np.ones(5))
    assert ok
    assert np.sum((want <= lo) | (want >= hi)) >= 2  # bounds are active: the case under test
    # a linear problem ends in one Gauss-Newton step per active set: equal to rounding
    np.testing.assert_allclose(x, want, rtol=1e-10, atol=1e-12)


def _problems():
    cfg = ChargeModelConfig(tau_x0_ns=4.5, gamma=2.39)
    r0 = forward(cfg, 0.0)
    neutral = NeutralReference(tau_x0_ns=4.5, tau_x0_err_ns=0.04,
                               tau_xx0_ns=float(r0.tau_xx_ns), tau_xx0_err_ns=0.05)
    # one window, interior optimum
    one = _Problem(cfg, neutral, [_obs(cfg, 3.0, shift=(0.7, -1.1))], (), 40.0)
    # one window whose tau_X is longer than the neutral one: n ends on its lower bound 0
    at0 = _Problem(cfg, neutral, [_obs(cfg, 0.0, shift=(2.5, 1.5))], (), 40.0)
    # three windows, gamma free, g2 and radiative-ratio observables, one window at n = 0
    wins = [_obs(cfg, 2.0, shift=(0.5, -0.8), g2=0.3, g2_err=0.05),
            _obs(cfg, 6.0, shift=(-1.2, 0.4), rad_ratio=1.9, rad_ratio_err=0.1),
            _obs(cfg, 0.0, shift=(2.0, 0.3))]
    three = _Problem(cfg, neutral, wins, ("gamma",), 40.0)
    return one, at0, three


def _objective(problem, theta, penalty=None):
    r = problem.residuals(theta)
    c = float(r @ r)
    if penalty is not None:
        func, target, scale = penalty
        c += ((func(theta, grad=False)[0] - target) / scale) ** 2
    return c


def test_issue_19_light_solver_reaches_scipy_optimum(monkeypatch):
    converged = []

    def recording(*args, **kwargs):
        x, ok = lm_bounded(*args, **kwargs)
        converged.append(ok)
        return x, ok

    monkeypatch.setattr(inverse, "lm_bounded", recording)
    one, at0, three = _problems()
    wts = np.array([0.5, 0.3, 0.2])

    def tau_mean(t, grad=True):  # the profile constraint of combine_windows
        return float(wts @ three.tau_a(t)), three.tau_a_mean_grad(t, wts) if grad else None

    th3, _ = _lsq(three, three.x0, solver="scipy")
    value = tau_mean(th3)[0]
    cases = [(one, one.x0, {}), (at0, at0.x0, {}), (three, three.x0, {}),
             (one, one.x0, {"fix_n": 1.5}),  # a point of the profile over n
             (three, th3, {"penalty": (tau_mean, 1.05 * value, 1e-4 * value)})]
    at_bound = 0
    for problem, x0, kw in cases:
        want, _ = _lsq(problem, x0, solver="scipy", **kw)
        n_conv = len(converged)
        got, _ = _lsq(problem, x0, **kw)
        assert converged[n_conv:] == [True]  # the light solver's own answer, no fallback
        pen = kw.get("penalty")
        c_got, c_want = _objective(problem, got, pen), _objective(problem, want, pen)
        assert c_want > 0.1  # a real misfit: the relative comparison means something
        # never worse than scipy's optimum beyond rounding of chi2 (a sum of ~10 squares)
        assert c_got <= c_want * (1 + 1e-9)
        # theta: equal far below the statistical errors (1e-5 sigma); scipy's trf stays
        # strictly inside the box, so a parameter on a bound may differ by its tiny offset
        cov, _ = _covariance(problem, want)
        sigma = np.sqrt(np.maximum(np.diag(cov), 0.0))
        assert np.all(np.abs(got - want) <= 1e-5 * sigma + 1e-8)
        at_bound += int(np.any(got[:problem.W] == 0.0))
    assert at_bound >= 2  # n exactly on its lower bound (trf only approaches it)


def test_issue_19_light_solver_reports_no_convergence():
    # a kink the Jacobian cannot describe (|x| at 0, derivative +1 at the kink from the
    # one-sided Jacobian): the step collapses while the decrement stays large, and
    # non-finite residuals: both are reported as not converged (the caller falls back)
    x, ok = lm_bounded(lambda t: np.array([abs(t[0]) + 1.0]), lambda t: np.array([[1.0]]),
                       np.array([0.0]), np.array([-1.0]), np.array([1.0]), np.ones(1))
    assert not ok and x[0] == 0.0
    x, ok = lm_bounded(lambda t: np.array([np.nan]), lambda t: np.ones((1, 1)),
                       np.array([0.3]), np.array([-1.0]), np.array([1.0]), np.ones(1))
    assert not ok


def test_issue_19_light_solver_distrusts_a_degenerate_face(monkeypatch):
    # capped model, gamma free, from gamma = 1 and n = 6.67: the Gauss-Newton step clipped onto
    # gamma = 0, where n drops out of the model (a zero column of the Jacobian) and the
    # gradient holds gamma there: a stationary point with chi2 = 836 (the truth: chi2 = 0).
    # The light solver must not trust it; _lsq then reaches the truth through scipy's trf.
    truth = ChargeModelConfig(variant="capped", tau_x0_ns=4.5, gamma=2.39)
    neutral = NeutralReference(tau_x0_ns=4.5, tau_x0_err_ns=0.02, tau_a_xx0_ns=13.9,
                               tau_a_xx0_err_ns=0.3)
    problem = _Problem(truth.replace(gamma=1.0), neutral, [_obs(truth, 0.5)], ("gamma",), 40.0)
    x0 = problem.x0.copy()
    x0[0] = 20.0 / 3.0
    converged = []

    def recording(*args, **kwargs):
        x, ok = lm_bounded(*args, **kwargs)
        converged.append((x.copy(), ok))
        return x, ok

    monkeypatch.setattr(inverse, "lm_bounded", recording)
    theta, chi2 = _lsq(problem, x0)
    (x_light, ok), = converged
    assert x_light[1] == 0.0 and not ok  # on the face, and distrusted
    assert chi2 < 1e-12
    np.testing.assert_allclose(theta[:2], [0.5, 2.39], rtol=1e-6)


def test_issue_19_problem_params_equal_the_rates_of_the_config():
    """_Problem.params (a precomputed base, no dataclasses.replace) builds the same rates as
    ``replace(_rates_of(config, ...), ...)``, the construction it replaced: every field equal,
    for both charge signs, scalar parameters and (K, 1) columns (the batched fit)."""
    from dataclasses import fields, replace

    from qrspec.charging.forward import _rates_of

    neutral = NeutralReference(tau_x0_ns=9.5, tau_x0_err_ns=0.1, tau_xx0_ns=2.0,
                               tau_xx0_err_ns=0.1)
    obs = [ChargedObservation(4.0, 0.1, 1.2, 0.05)]
    cols = np.array([[0.9], [1.1]])
    for config in (ChargeModelConfig(gamma=1.7, gamma_h=0.4, eps=0.3),
                   ChargeModelConfig(sign="positive", gamma=1.7, gamma_h=0.4, eps=0.3,
                                     qy_x0=0.8, variant="power_law")):
        problem = _Problem(config, neutral, obs, ("eps", "gamma"), 40.0)
        for scale in (1.0, cols):
            d = dict(problem.fixed)
            d.update(k_r=0.1 * scale, k_a_xx0=0.35 * scale, eps=0.25 * scale,
                     gamma=1.3 * scale)
            k_r, k_axx, eps = d["k_r"], d["k_a_xx0"], d["eps"]
            ref = replace(_rates_of(config, k_r=k_r, k_nr0=k_r * (1 - problem.qy) / problem.qy,
                                    a_n=eps * k_axx / 2.0, a_p=(1.0 - eps) * k_axx / 2.0),
                          beta_xx=d["beta_xx"], power_p=d["power_p"], power_q=d["power_q"],
                          gamma=d["gamma"])
            got = problem.params(d)
            assert type(got) is type(ref)
            for f in fields(ref):
                np.testing.assert_array_equal(getattr(got, f.name), getattr(ref, f.name),
                                              err_msg=f.name)
