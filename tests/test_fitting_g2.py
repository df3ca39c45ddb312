"""g2(0) interpretation: finite-<N> cascade formulas against Monte Carlo, inversions, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.fitting import (
    brightness_ratio_for_g2,
    g2_from_peak_counts,
    g2_gated_cascade,
    g2_moments,
    g2_zero_cascade,
    qy_ratio_from_g2,
    single_emitter_verdict,
    two_emitter_g2,
)


def _mc_photons_per_pulse(rng, n_pulses, mu, qy):
    """Photons emitted per pulse for a cascade truncated at len(qy) levels."""
    n_exc = np.minimum(rng.poisson(mu, n_pulses), len(qy))
    m = np.zeros(n_pulses, dtype=np.int64)
    for level, eta in enumerate(qy, start=1):
        m += (n_exc >= level) & (rng.random(n_pulses) < eta)
    return m


def _g2_and_err(m):
    """g2 = E[m(m-1)]/E[m]^2 and its delta-method error from per-pulse samples."""
    a, b = m * (m - 1.0), m.astype(float)
    ma, mb = a.mean(), b.mean()
    g = ma / mb**2
    cov = np.cov(np.vstack([a, b])) / m.size
    grad = np.array([1 / mb**2, -2 * ma / mb**3])
    return g, math.sqrt(grad @ cov @ grad)


@pytest.mark.parametrize("mu,qy", [(0.2, (1.0, 1.0)), (0.2, (0.9, 0.45)), (1.0, (0.8, 0.24)),
                                   (0.5, (0.9, 0.5, 0.3))])
def test_g2_zero_matches_monte_carlo(rng, mu, qy):
    m = _mc_photons_per_pulse(rng, 2_000_000, mu, qy)
    g_mc, err = _g2_and_err(m)
    em, emm = g2_moments(mu, qy)
    assert em == pytest.approx(m.mean(), rel=5 * m.std() / m.mean() / math.sqrt(m.size))
    g = emm / em**2
    assert abs(g - g_mc) < 4 * err  # 4 sigma of the Monte-Carlo estimate
    if len(qy) == 2:
        assert g2_zero_cascade(mu, qy[1] / qy[0], qy_x=qy[0]) == pytest.approx(g, rel=1e-12)
    else:
        assert g2_zero_cascade(mu, qy[1] / qy[0], qy_x=qy[0], qy_higher=qy[2:]) == \
            pytest.approx(g, rel=1e-12)


def test_methods_numbers_and_poisson_limit():
    # methods.md §2.2: 0.887 at <N> = 0.2 and rho = 1; g2 = 0.98 needs rho ~ 1.13
    assert g2_zero_cascade(0.2, 1.0) == pytest.approx(0.8868, abs=1e-4)
    est = qy_ratio_from_g2(0.98, 0.02, mean_excitations=0.2)
    assert est.success and est.qy_ratio == pytest.approx(1.1307, abs=1e-3)
    # every level emitting with QY 1 and a deep cascade: photon number = N is Poissonian, g2 = 1
    em, emm = g2_moments(0.7, [1.0] * 25)
    assert emm / em**2 == pytest.approx(1.0, rel=1e-12)
    # <N> -> 0: g2 -> rho (Nair, Zhao & Bawendi)
    assert g2_zero_cascade(1e-6, 0.37) == pytest.approx(0.37, rel=1e-5)


def test_gated_g2_matches_monte_carlo(rng):
    """Gate t >= T on emission times of an XX-truncated cascade (tau_X 6, tau_XX 1 ns)."""
    mu, rho, tx, txx, n = 0.2, 0.6, 6.0, 1.0, 3_000_000
    n_exc = rng.poisson(mu, n)
    exc = n_exc >= 1
    k = int(exc.sum())
    two = n_exc[exc] >= 2
    t_xx = rng.exponential(txx, k)
    t_x = np.where(two, t_xx, 0.0) + rng.exponential(tx, k)
    has_xx = two & (rng.random(k) < rho)
    for gate in (0.0, 1.0, 2.0, 4.0):
        m = np.zeros(n, dtype=np.int64)
        m[exc] = (t_x >= gate).astype(np.int64) + (has_xx & (t_xx >= gate))
        g_mc, err = _g2_and_err(m)
        assert abs(g2_gated_cascade(gate, tx, txx, rho, mu) - g_mc) < 4 * err, gate


def test_qy_ratio_inversion_round_trip_and_limits():
    for mu in (0.05, 0.2, 0.8):
        for rho in (0.05, 0.4, 1.0):
            g = g2_zero_cascade(mu, rho)
            est = qy_ratio_from_g2(g, 0.01, mean_excitations=mu)
            assert est.qy_ratio == pytest.approx(rho, rel=1e-8)
            lo, hi = est.interval
            assert lo < rho < hi
    too_big = qy_ratio_from_g2(3.0, 0.1, mean_excitations=0.2)  # maximum is 2.76 here
    assert not too_big.success and "exceeds the cascade maximum" in too_big.message
    zero = qy_ratio_from_g2(0.0, 0.01, mean_excitations=0.2)
    assert zero.qy_ratio == 0.0 and zero.interval[0] == 0.0
    general = qy_ratio_from_g2(0.5, 0.02, mean_excitations=0.3, qy_higher=(0.2,))
    assert general.success
    assert g2_zero_cascade(0.3, general.qy_ratio, qy_higher=(0.2,)) == pytest.approx(0.5)


def test_g2_from_peak_counts_and_exact_interval_coverage(rng):
    res = g2_from_peak_counts(30, np.full(10, 200))
    assert res.g2 == pytest.approx(30 / 200)
    assert res.g2_err == pytest.approx(0.15 * math.sqrt(1 / 30 + 1 / 2000))
    assert res.interval[0] < res.g2 < res.interval[1]
    # Clopper-Pearson is conservative: coverage >= nominal (minus 3.5 binomial sd of 400 draws)
    true_g2, side_mean, n_side = 0.1, 40.0, 8
    hits = 0
    for _ in range(400):
        c0 = rng.poisson(true_g2 * side_mean)
        side = rng.poisson(side_mean, n_side)
        lo, hi = g2_from_peak_counts(c0, side).interval
        hits += lo <= true_g2 <= hi
    assert hits / 400 > 0.6827 - 3.5 * math.sqrt(0.6827 * 0.3173 / 400)
    zero = g2_from_peak_counts(0, [10, 12])
    assert zero.g2 == 0 and math.isnan(zero.g2_err) and zero.interval[0] == 0
    empty = g2_from_peak_counts(0, [0, 0])
    assert math.isnan(empty.g2)


def test_two_emitter_relations_and_verdict():
    assert two_emitter_g2(1.0) == 0.5
    assert two_emitter_g2(9.0) == pytest.approx(0.18)
    assert brightness_ratio_for_g2(0.1) == pytest.approx(17.944, rel=1e-4)
    assert two_emitter_g2(brightness_ratio_for_g2(0.05)) == pytest.approx(0.05)
    assert brightness_ratio_for_g2(0.6) == 1.0 and brightness_ratio_for_g2(0.0) == math.inf
    v = single_emitter_verdict(0.1, 0.05)
    assert v.single and v.g2_upper == pytest.approx(0.2)
    assert v.min_brightness_ratio == pytest.approx(brightness_ratio_for_g2(0.2))
    assert "single emitter" in v.message
    v = single_emitter_verdict(0.4, 0.08)
    assert not v.single and "not shown single" in v.message
    assert single_emitter_verdict(0.1, 0.05, threshold=0.25, n_sigma=3).single is False


@pytest.mark.parametrize("call,match", [
    (lambda: g2_moments(0.0, [1.0]), r"mean_excitations=0.0 must be > 0"),
    (lambda: g2_moments(0.2, []), r"qy=\[\] must be a non-empty sequence"),
    (lambda: g2_moments(0.2, [1.5]), r"qy=\[1.5\] must be a non-empty sequence"),
    (lambda: g2_zero_cascade(0.2, -1.0), r"qy_ratio=-1.0 must be >= 0"),
    (lambda: g2_gated_cascade(1.0, 6, 1, 0.5, -1), r"mean_excitations=-1 must be > 0"),
    (lambda: g2_from_peak_counts(3, []), r"side_counts=\[\] must be a non-empty"),
    (lambda: g2_from_peak_counts(-1, [3]), r"center_counts=-1 must be >= 0"),
    (lambda: g2_from_peak_counts(1, [3], confidence=1.5), r"confidence=1.5 must be in"),
    (lambda: qy_ratio_from_g2(0.5, -1.0, mean_excitations=0.2), r"g2_err=-1.0 must be >= 0"),
    (lambda: single_emitter_verdict(math.nan, 0.1), r"g2_gated=nan and g2_err=0.1 must be"),
    (lambda: single_emitter_verdict(0.1, 0.1, threshold=2), r"threshold=2 must be in"),
    (lambda: single_emitter_verdict(0.1, 0.1, n_sigma=-1), r"n_sigma=-1 must be >= 0"),
])
def test_invalid_arguments_raise(call, match):
    with pytest.raises(QrspecError, match=match):
        call()
