"""Tests of qrspec.levels.threshold (binned threshold / hysteresis levels)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.levels import _kernels
from qrspec.levels.threshold import (
    _equal_posterior,
    _min_dwell,
    fit_poisson_mixture,
    threshold_levels,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def blocks(rng, rates_cps, dwell_s):
    """Photon times of consecutive constant-rate blocks with the given durations."""
    edges = np.concatenate([[0.0], np.cumsum(dwell_s)])
    parts = [rng.uniform(edges[j], edges[j + 1], rng.poisson(r * (edges[j + 1] - edges[j])))
             for j, r in enumerate(rates_cps)]
    return np.sort(np.concatenate(parts)), edges


def test_hysteresis_kernel_by_hand():
    counts = np.array([10, 14, 16, 14, 9, 11, 16, 30, 24, 19], np.float64)
    lower = np.array([12.0, 25.0])
    upper = np.array([15.0, 28.0])
    # start 10 -> 0; 14 stays 0 (< 15); 16 -> 1; 14 stays 1 (>= 12); 9 -> 0; 11 stays 0;
    # 16 -> 1; 30 -> 2; 24 -> 1 (< 25); 19 stays 1
    expect = [0, 0, 1, 1, 0, 0, 1, 2, 1, 1]
    assert_array_equal(_kernels.hysteresis_states(counts, lower, upper), expect)
    assert_array_equal(_kernels.hysteresis_states.py_func(counts, lower, upper), expect)


def test_min_dwell_absorbs_short_runs():
    s = np.array([0, 0, 0, 1, 0, 0, 2, 2, 2, 1, 1, 1])
    assert_array_equal(_min_dwell(s, 2), [0, 0, 0, 0, 0, 0, 2, 2, 2, 1, 1, 1])
    assert_array_equal(_min_dwell(np.array([1, 0, 0, 0]), 2), [0, 0, 0, 0])
    assert_array_equal(_min_dwell(s, 1), s)


def test_equal_posterior_threshold_matches_brute_force():
    from scipy.stats import poisson

    ma, mb, wa, wb = 20.0, 80.0, 0.7, 0.3
    c = _equal_posterior(ma, mb, wa, wb)
    grid = np.arange(0, 200)
    a = wa * poisson.pmf(grid, ma)
    b = wb * poisson.pmf(grid, mb)
    first_b = grid[np.argmax(b > a)]
    assert first_b - 1 < c <= first_b  # the crossing lies between the last a- and first b-bin


def test_poisson_mixture_recovers_components(rng):
    counts = np.concatenate([rng.poisson(30.0, 3000), rng.poisson(150.0, 1000)])
    means, weights, _ = fit_poisson_mixture(counts, 2)
    # Poisson SE of a component mean: sqrt(mu / n_bins) -> 0.1 and 0.39; 4 sigma
    assert abs(means[0] - 30.0) < 4 * np.sqrt(30 / 3000)
    assert abs(means[1] - 150.0) < 4 * np.sqrt(150 / 1000)
    # binomial SE of a weight sqrt(0.25*0.75/4000) = 0.007; 4 sigma
    assert_allclose(weights, [0.75, 0.25], atol=0.03)


def test_automatic_levels_on_two_state_trace(rng):
    rates = [2e4, 4e3] * 10
    t, edges = blocks(rng, rates, np.full(20, 0.2))
    res = threshold_levels(t, bin_width_s=0.005)
    assert res.means_cps.size == 2
    # 800 bins per state, Poisson SE of a mean rate sqrt(rate * bw / 800) / bw -> 4 sigma
    for m, r in zip(res.means_cps, [4e3, 2e4], strict=True):
        assert abs(m - r) < 4 * np.sqrt(r * 0.005 / 800) / 0.005
    assert res.segments.size == 20
    assert_allclose(res.segments.start_s[1:], edges[1:-1], atol=0.005 + 1e-12)  # one bin
    assert_array_equal(res.segments.level, [1, 0] * 10)
    assert res.segments.n_photons.sum() == t.size
    assert res.misassignment < 1e-3  # the two components barely overlap
    assert res.counts.sum() == t.size


def test_user_thresholds_and_hysteresis_suppress_flicker(rng):
    # rate just at the threshold: without hysteresis the state flickers
    t, _ = blocks(rng, [1e4], [2.0])
    no_h = threshold_levels(t, bin_width_s=0.01, thresholds_cps=[1e4], hysteresis_sigma=0,
                            min_dwell_bins=1)
    with_h = threshold_levels(t, bin_width_s=0.01, thresholds_cps=[1e4], hysteresis_sigma=3.0,
                              min_dwell_bins=1)
    assert no_h.segments.size > 20
    # 3 sigma band: a crossing needs a > 3 sigma fluctuation from the threshold (p ~ 1e-3/bin)
    assert with_h.segments.size <= 3
    assert_allclose(with_h.lower_cps, [1e4 - 3 * np.sqrt(100) / 0.01])
    assert_allclose(with_h.upper_cps, [1e4 + 3 * np.sqrt(100) / 0.01])
    assert np.isnan(with_h.misassignment)


def test_ticks_input(rng):
    t, _ = blocks(rng, [2e4, 4e3], [0.5, 0.5])
    ticks = np.floor(t / 1e-7).astype(np.int64)
    res = threshold_levels(ticks, timestamps_unit=1e-7, bin_width_s=0.01, thresholds_cps=[1e4])
    assert_array_equal(res.segments.level, [1, 0])
    assert res.segments.n_photons.sum() == t.size


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bin_width_s": 0.0}, r"bin_width_s=0.0 must be > 0"),
        ({"hysteresis_sigma": -1.0}, r"hysteresis_sigma=-1.0 must be >= 0"),
        ({"min_dwell_bins": 0}, r"min_dwell_bins=0 must be an integer >= 1"),
        ({"max_levels": 11}, r"max_levels=11 must be an integer in 1..10"),
        ({"thresholds_cps": [-1.0]}, r"thresholds_cps=\[-1.0\] must be positive and finite"),
        ({"thresholds_cps": [5.0, 2.0]}, r"thresholds_cps=\[5.0, 2.0\] must be strictly"),
    ],
)
def test_rejects_bad_parameters(kwargs, match):
    with pytest.raises(QrspecError, match=match):
        threshold_levels(np.arange(100.0) * 1e-3, **kwargs)


def test_rejects_too_few_photons():
    with pytest.raises(QrspecError, match=r"need at least 2 photons, got 1"):
        threshold_levels(np.array([0.0]))


def test_mixture_rejects_bad_input():
    with pytest.raises(QrspecError, match=r"counts must be a non-empty 1-D array"):
        fit_poisson_mixture(np.zeros(0), 2)
    with pytest.raises(QrspecError, match=r"n_components=0 must be an integer >= 1"):
        fit_poisson_mixture(np.ones(5), 0)
