"""Gain / lasing thresholds, fluence, L-L and TA thresholds (methods.md §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.forward import forward
from qrspec.charging.thresholds import (
    charge_distribution,
    cross_section_from_absorbance,
    fluence_to_mean_excitations,
    gain_per_particle,
    gain_threshold,
    lasing_threshold,
    ll_threshold,
    mean_field_gain_threshold,
    mean_gain,
    peak_fluence_gaussian,
    photon_energy_j,
    ta_gain_threshold,
    threshold_map,
)
from qrspec.errors import QrspecError


def test_gain_per_particle_table():
    # methods.md §5.1
    assert_allclose(gain_per_particle(0, [0, 1, 2, 3]), [-1, 0, 1, 1])
    assert_allclose(gain_per_particle(1, [0, 1]), [-0.5, 0.5])
    assert_allclose(gain_per_particle(2, [0, 1, 2]), [0, 0.5, 1])


def test_mean_field_threshold_is_1_half_0():
    # the paper's simplified values (no Poisson statistics)
    assert [mean_field_gain_threshold(n) for n in (0, 1, 2, 5)] == pytest.approx(
        [1.0, 0.5, 0.0, 0.0], abs=1e-12)
    assert mean_field_gain_threshold(0.5) == pytest.approx(0.75, abs=1e-12)  # 1 - n/2
    assert [gain_threshold(n, charge="fixed", excitation="fixed") for n in (0, 1, 2)] == \
        pytest.approx([1.0, 0.5, 0.0], abs=1e-10)


@pytest.mark.parametrize("mean_nc, fixed_n, poisson_n", [
    (0, 1.146, 1.146), (0.5, 0.880, 0.913), (1, 0.583, 0.713), (1.5, 0.356, 0.544),
    (2, 0.0, 0.406), (3, 0.0, 0.211), (4, 0.0, 0.101), (6, 0.0, 0.0195), (8, 0.0, 0.0033),
])
def test_poisson_gain_threshold_table_methods_5_2(mean_nc, fixed_n, poisson_n):
    # the table is printed to 3 digits; its 0.880 at <n_c> = 0.5 is 0.8795 (rounded up), so
    # compare at one unit of the last digit
    assert gain_threshold(mean_nc, charge="fixed") == pytest.approx(fixed_n, abs=1e-3)
    assert gain_threshold(mean_nc) == pytest.approx(poisson_n, rel=5e-3, abs=5e-5)


def test_neutral_poisson_threshold_closed_form_and_ta_value():
    from scipy.optimize import brentq

    x = brentq(lambda v: math.exp(-v) * (2 + v) - 1, 0.5, 2)  # P0 = P>=2
    assert gain_threshold(0) == pytest.approx(x, rel=1e-10)
    # methods.md §5.2: <N_g> = 0.082 (paper TA) <-> <n_c> ~ 4.3 in this static model
    nc = brentq(lambda m: gain_threshold(m) - 0.082, 2, 8)
    assert nc == pytest.approx(4.27, abs=0.01)


def test_mean_gain_histogram_equals_poisson():
    p = charge_distribution(2.5)
    assert mean_gain(0.3, 2.5, charge=p) == pytest.approx(mean_gain(0.3, 2.5), rel=1e-12)


def test_delta_pulse_lasing_threshold_is_poisson_gain_threshold():
    # short-pulse limit (methods.md §5.3): <N_las> -> <N_g> as G_loss -> 0
    cfg = ChargeModelConfig(tau_x0_ns=4.5)
    for nc in (0.0, 1.0, 3.0):
        got = lasing_threshold(nc, cfg, g_loss=1e-9, pulse="delta")
        assert got == pytest.approx(gain_threshold(nc), rel=1e-5)


def _steady_state_threshold(k, g_loss, n):
    """W with steady-state birth-death gain = g_loss, fixed charge n (P_N ~ prod W/K_m)."""
    from scipy.optimize import brentq

    def g(w):
        p = np.array([1.0, w / k[0], w**2 / (k[0] * k[1]), w**3 / (k[0] * k[1] * k[2])])
        p /= p.sum()
        return float(p @ gain_per_particle(n, np.arange(4))) - g_loss

    return brentq(g, 1e-9, 1e3, xtol=1e-14)


def test_long_flat_pulse_is_quasi_steady_state():
    cfg = ChargeModelConfig(tau_x0_ns=4.5)
    r = forward(cfg, 3.0)
    k = [1 / float(r.tau_x_ns), 1 / float(r.tau_xx_ns), 1 / float(r.tau_xxx_ns)]
    tau_p = 500.0  # >> all lifetimes (< 2.3 ns): transient weight exp(-500/2.3)
    w_th = _steady_state_threshold(k, 0.02, 3)
    got = lasing_threshold(3.0, cfg, g_loss=0.02, pulse="flat", pulse_ns=tau_p, charge="fixed")
    assert got == pytest.approx(w_th * tau_p, rel=1e-6)
    # methods.md small-W approximation W_th ~ 2 G_loss K_1 (n >= 2): a few % here
    assert got == pytest.approx(2 * 0.02 * k[0] * tau_p, rel=0.05)
    # Gaussian pulse: <N> = W_peak * 1.0645 FWHM (tau_p,eff of methods.md §5.3)
    fwhm = 300.0
    got_g = lasing_threshold(3.0, cfg, g_loss=0.02, pulse="gaussian", pulse_ns=fwhm,
                             charge="fixed", n_steps=400)
    eff = math.sqrt(2 * math.pi) / (2 * math.sqrt(2 * math.log(2)))
    assert eff == pytest.approx(1.0645, abs=1e-4)
    assert got_g == pytest.approx(w_th * eff * fwhm, rel=2e-3)  # peak sampled at dt = 0.02 sigma


def test_buildup_criterion_bounds_and_limit():
    cfg = ChargeModelConfig(tau_x0_ns=4.5)
    clamp = lasing_threshold(6.0, cfg, g_loss=0.05)
    build = lasing_threshold(6.0, cfg, g_loss=0.05, criterion="buildup", gain_rate_per_ns=50.0)
    fast = lasing_threshold(6.0, cfg, g_loss=0.05, criterion="buildup", gain_rate_per_ns=1e7)
    assert build > clamp  # any build-up needs g > G_loss for a while
    assert fast == pytest.approx(clamp, rel=0.02)  # infinite gain rate: criterion (a)


def test_optimum_charge_exists_for_long_auger_lifetime():
    # the paper's qualitative claim (Fig. 1b): for tau_A,XX0 = 13.9 ns the threshold has a
    # minimum at intermediate <n_c>; for 0.1 ns in the uncapped variant charging does not help
    cfg = ChargeModelConfig(tau_x0_ns=4.5)
    vals = [lasing_threshold(n, cfg) for n in (0, 4, 8, 16)]
    assert vals[0] > vals[1] > vals[2] < vals[3]
    unc = ChargeModelConfig(tau_x0_ns=4.5, variant="uncapped", tau_a_xx0_ns=0.1)
    assert lasing_threshold(0.0, unc) < lasing_threshold(4.0, unc)


def test_threshold_map_matches_single_cells():
    cfg = ChargeModelConfig(tau_x0_ns=4.5)
    nc = np.array([0.0, 2.0, 6.0])
    taus = np.array([1.7, 13.9])
    tm = threshold_map(nc, taus, cfg, n_steps=100)
    assert tm.n_las.shape == (3, 2)
    for i, n in enumerate(nc):
        for j, t in enumerate(taus):
            ref = lasing_threshold(n, cfg.replace(tau_a_xx0_ns=t), n_steps=100)
            # log-grid interpolation of 160 points over 1e-4..50: a few 1e-3 relative
            assert tm.n_las[i, j] == pytest.approx(ref, rel=5e-3)


def test_fluence_conversions():
    assert photon_energy_j(439.0) == pytest.approx(4.525e-19, rel=2e-4)  # methods.md §5.4
    n = fluence_to_mean_excitations(2.9e-6, 400.0, 1.58e-13)
    assert n == pytest.approx(1.58e-13 * 2.9e-6 / (6.62607015e-34 * 299792458 / 400e-9))
    assert peak_fluence_gaussian(1e-9, 1e-3) == pytest.approx(2e-9 / (math.pi * 1e-6))
    # sigma from absorbance vs the molar-extinction route (epsilon in M^-1 cm^-1)
    eps_molar = 0.1 / (1e-6 * 1.0)
    assert cross_section_from_absorbance(0.1, 1e-9, 1.0) == pytest.approx(
        1000 * math.log(10) * eps_molar / 6.02214076e23, rel=1e-12)


def test_ll_threshold_recovers_breakpoint(rng):
    x = np.linspace(0, 10, 41)
    y = 1 + 0.2 * np.minimum(x, 4.0) + 5.0 * np.maximum(x - 4.0, 0) + rng.normal(0, 0.3, x.size)
    res = ll_threshold(x, y, n_boot=100, seed=1)
    assert res.success
    # breakpoint sd ~ sigma/(slope change) ~ 0.3/4.8 / sqrt(points near the kink) -> 0.2 is >3 sd
    assert res.x_th == pytest.approx(4.0, abs=0.2)
    assert res.x_th_lo <= res.x_th <= res.x_th_hi
    assert res.slope_above == pytest.approx(5.0, rel=0.05)
    flat = ll_threshold(x, 2.0 - 0.1 * x, n_boot=0)
    assert not flat.success and "no slope increase" in flat.message


def test_ta_gain_threshold():
    x = np.array([0.02, 0.05, 0.08, 0.1, 0.2])
    res = ta_gain_threshold(x, 10.0 * x, 0.82, a0_err=0.0082, n_linear=3)
    assert res.n_g == pytest.approx(0.082, rel=1e-12)
    assert res.n_g_crossing == pytest.approx(0.082, rel=1e-12)
    assert res.n_g_err == pytest.approx(0.082 * 0.01, rel=1e-6)  # exact line: only A0 error
    bad = ta_gain_threshold(x, -x, 0.82)
    assert not bad.success and "no bleach growth" in bad.message


def test_threshold_functions_reject_bad_input():
    cfg = ChargeModelConfig()
    with pytest.raises(QrspecError, match=r"n=-1.0 must be finite and >= 0"):
        mean_field_gain_threshold(-1)
    with pytest.raises(QrspecError, match=r"mean_nc=-1.0 must be finite and >= 0"):
        charge_distribution(-1.0)
    with pytest.raises(QrspecError, match=r"kind='flat' must be 'poisson', 'fixed'"):
        charge_distribution(1.0, "flat")
    with pytest.raises(QrspecError, match=r"charge histogram must be a non-empty 1-d array"):
        charge_distribution(1.0, [-1.0, 2.0])
    with pytest.raises(QrspecError, match=r"mean_exc=-0.1 must be finite and >= 0"):
        mean_gain(-0.1, 1.0)
    with pytest.raises(QrspecError, match=r"excitation='x' must be 'poisson' or 'fixed'"):
        mean_gain(0.1, 1.0, excitation="x")
    with pytest.raises(QrspecError, match=r"charge='x' must be 'poisson', 'fixed'"):
        mean_gain(0.1, 1.0, charge="x")
    with pytest.raises(QrspecError, match=r"mean_nc=-2.0 must be finite and >= 0"):
        mean_gain(0.1, -2.0)
    with pytest.raises(QrspecError, match=r"g_loss=1.5 must be in \[0, 1\)"):
        lasing_threshold(1.0, cfg, g_loss=1.5)
    with pytest.raises(QrspecError, match=r"pulse='square' must be 'flat', 'gaussian'"):
        lasing_threshold(1.0, cfg, pulse="square")
    with pytest.raises(QrspecError, match=r"pulse_ns=0 must be > 0"):
        lasing_threshold(1.0, cfg, pulse_ns=0)
    with pytest.raises(QrspecError, match=r"criterion='x' must be 'gain_clamp' or 'buildup'"):
        lasing_threshold(1.0, cfg, criterion="x")
    with pytest.raises(QrspecError, match=r"gain_rate_per_ns=0 must be > 0 for buildup"):
        lasing_threshold(1.0, cfg, criterion="buildup", gain_rate_per_ns=0)
    with pytest.raises(QrspecError, match=r"n_exc_max=1 must be an integer >= 2"):
        lasing_threshold(1.0, cfg, n_exc_max=1)
    with pytest.raises(QrspecError, match=r"n_steps=5 must be >= 10"):
        lasing_threshold(1.0, cfg, n_steps=5)
    with pytest.raises(QrspecError, match=r"bracket=\(1.0, 0.5\) must satisfy 0 < lo < hi"):
        lasing_threshold(1.0, cfg, bracket=(1.0, 0.5))
    with pytest.raises(QrspecError, match=r"mean_nc_grid must be a non-empty 1-d array"):
        threshold_map([-1.0], [1.0], cfg)
    with pytest.raises(QrspecError, match=r"tau_a_xx_grid_ns must be a non-empty 1-d array"):
        threshold_map([1.0], [0.0], cfg)
    with pytest.raises(QrspecError, match=r"wavelength_nm=0 must be > 0"):
        photon_energy_j(0)
    with pytest.raises(QrspecError, match=r"fluence_j_per_cm2 must be finite and >= 0"):
        fluence_to_mean_excitations(-1.0, 400, 1e-13)
    with pytest.raises(QrspecError, match=r"sigma_cm2=0 must be > 0"):
        fluence_to_mean_excitations(1.0, 400, 0)
    with pytest.raises(QrspecError, match=r"pulse_energy_j=1 must be >= 0 and w_cm=0 > 0"):
        peak_fluence_gaussian(1, 0)
    with pytest.raises(QrspecError, match=r"absorbance=0, conc_mol_per_cm3=1, path_cm=1"):
        cross_section_from_absorbance(0, 1, 1)
    with pytest.raises(QrspecError, match=r"x and y must be 1-d of equal length >= 5"):
        ll_threshold([1, 2, 3], [1, 2, 3])
    with pytest.raises(QrspecError, match=r"x and y must be finite"):
        ll_threshold([1, 2, 3, 4, np.nan], [1, 2, 3, 4, 5])
    with pytest.raises(QrspecError, match=r"mean_exc and minus_delta_a must be 1-d"):
        ta_gain_threshold([1.0], [1.0], 1.0)
    with pytest.raises(QrspecError, match=r"a0=0 must be > 0"):
        ta_gain_threshold([1.0, 2.0], [1.0, 2.0], 0)
    with pytest.raises(QrspecError, match=r"n_linear=1 must be in \[2, 2\]"):
        ta_gain_threshold([1.0, 2.0], [1.0, 2.0], 1.0, n_linear=1)
