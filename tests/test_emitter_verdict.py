"""Tests of the three-way single-emitter verdict (qrspec.fitting.g2_analysis.single_emitter_test,
qrspec.levels.emitter.emitter_verdict)."""

from __future__ import annotations

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.fitting.g2_analysis import g2_gated_cascade, single_emitter_test

T0 = 5.0
GATES = T0 + np.arange(0.0, 16.01, 0.5)
M_SIDE = 10
TAU = dict(tau_x_ns=10.0, tau_x_err_ns=0.1, tau_xx_ns=2.1, tau_xx_err_ns=0.05)


def _side(s0):
    """Expected side-peak areas: each photon of a pair must pass the gate, exp(-2g/tau_X)."""
    s = s0 * np.exp(-2.0 * (GATES - T0) / TAU["tau_x_ns"])
    return np.repeat(s[:, None], M_SIDE, axis=1)


def _single_g2(mean_excitations=0.2, qy_ratio=0.85):
    return g2_gated_cascade(GATES - T0, TAU["tau_x_ns"], TAU["tau_xx_ns"], qy_ratio,
                            mean_excitations)


def _test(centre, side, **kw):
    return single_emitter_test(GATES, np.rint(centre).astype(int), np.rint(side),
                               side.mean(axis=1), t0_ns=T0, **{**TAU, **kw})


def test_expected_counts_give_the_three_outcomes():
    side = _side(5000.0)
    s = _single_g2()
    single = _test(s * side.mean(axis=1), side)
    assert single.outcome == "single" and single.single
    assert single.g2_upper < 0.5 and single.gate_ns > 3.0  # a gate was needed
    assert single.min_brightness_ratio > 1.0
    # two equal emitters: 1/2 + s/2 at every gate
    pair = _test((0.5 + 0.5 * s) * side.mean(axis=1), side)
    assert pair.outcome == "not_single"
    assert pair.g2_lower > pair.single_max
    # the same single emitter with 200x fewer pairs
    few = _side(25.0)
    und = _test(s * few.mean(axis=1), few)
    assert und.outcome == "undecidable" and "too few pairs" in und.reason


def test_gating_that_cannot_work_is_undecidable():
    # charged-like lifetimes: tau_X/tau_XX = 2.05 +- 0.09, the gate removes nothing
    side = _side(5000.0)
    kw = dict(tau_x_ns=2.3, tau_x_err_ns=0.02, tau_xx_ns=1.12, tau_xx_err_ns=0.05)
    res = _test(0.8 * side.mean(axis=1), side, **kw)
    assert res.outcome == "undecidable"
    assert "not significantly above 2" in res.reason


def test_error_rates_on_poisson_draws(rng):
    # two equal emitters at g2 = 1/2 + s/2 must be called single with probability <= alpha,
    # a single emitter (<N> = 0.5, eta_XX/eta_X = 1: slower suppression than the low-<N>
    # formula) not single with probability <= alpha; 400 draws each: binomial 3 sigma
    side = _side(600.0)
    s = _single_g2(0.5, 1.0)
    alpha, reps = 0.01, 400
    wrong_single = wrong_not = 0
    for _ in range(reps):
        sd = rng.poisson(side).astype(float)
        c_pair = rng.poisson((0.5 + 0.5 * s) * side.mean(axis=1))
        c_one = rng.poisson(s * side.mean(axis=1))
        kw = dict(t0_ns=T0, alpha=alpha, **TAU)
        wrong_single += single_emitter_test(GATES, c_pair, sd, sd.mean(axis=1),
                                            **kw).outcome == "single"
        wrong_not += single_emitter_test(GATES, c_one, sd, sd.mean(axis=1),
                                         **kw).outcome == "not_single"
    bound = reps * alpha + 3 * np.sqrt(reps * alpha)
    assert wrong_single <= bound
    assert wrong_not <= bound


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(alpha=0.5), r"alpha=0.5 must be in \(0, 0.5\)"),
    (dict(threshold=0.0), r"threshold=0.0 must be in \(0, 1\]"),
    (dict(max_mean_excitations=0.0), r"max_mean_excitations=0.0 must be > 0"),
    (dict(max_qy_ratio=-1.0), r"max_qy_ratio=-1.0 must be > 0"),
    (dict(background_fraction=[0.1]), r"background_fraction must hold 33 values in \[0, 1\]"),
])
def test_rejects_bad_arguments(kwargs, match):
    side = _side(100.0)
    with pytest.raises(QrspecError, match=match):
        _test(side.mean(axis=1), side, **kwargs)


def test_rejects_mismatched_arrays():
    with pytest.raises(QrspecError, match=r"must describe the same gates"):
        single_emitter_test(GATES, [1, 2], np.ones((33, 10)), np.ones(33), t0_ns=T0, **TAU)


def test_no_side_pairs_is_undecidable():
    res = single_emitter_test(GATES, np.zeros(33, int), np.zeros((33, 10)), np.zeros(33),
                              t0_ns=T0, **TAU)
    assert res.outcome == "undecidable" and "no side-peak pairs" in res.reason
