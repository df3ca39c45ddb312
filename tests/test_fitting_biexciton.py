"""Biexciton lifetime three ways on synthetic cascades generated here (ground truth known).

Truth everywhere: tau_X = 6 ns, tau_XX = 1 ns, eta_X = 1, eta_XX/eta_X = 0.5, cascade truncated
at XX (N >= 2 relax to XX), Gaussian jitter 0.05 ns at t0 = 5 ns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import poisson

from qrspec.errors import QrspecError
from qrspec.fitting import (
    ModelIRF,
    TauXXEstimate,
    accidental_first_photon_counts,
    cascade_tau_xx,
    compare_tau_xx,
    gate_scan_tau_xx,
    heralded_tau_x,
    heralded_tau_xx,
    nested_gate_covariance,
)

TAU_X, TAU_XX, RHO, T0, SIGMA = 6.0, 1.0, 0.5, 5.0, 0.05
PERIOD = 100.0


def cascade_photons(rng, n_pulses, mu):
    """Excited pulses (indices) and emission times of their X and XX photons (NaN: none)."""
    k = rng.binomial(n_pulses, -math.expm1(-mu))
    pulses = np.sort(rng.choice(n_pulses, k, replace=False))
    n_exc = poisson.ppf(rng.uniform(poisson.cdf(0, mu), 1.0, k), mu)  # zero-truncated Poisson
    two = n_exc >= 2
    t_xx = rng.exponential(TAU_XX, k)
    t_x = np.where(two, t_xx, 0.0) + rng.exponential(TAU_X, k)
    t_xx = np.where(two & (rng.random(k) < RHO), t_xx, np.nan)
    return pulses, t_x, t_xx


def simulate_hbt(rng, n_pulses, *, mu=0.2, eta=0.2, p_bg=0.002):
    """First event per detector per pulse (dead time > period), with dark counts.

    Returns times (2, n_pulses) in ns (NaN: no event) and a flag marking background events."""
    pulses, t_x, t_xx = cascade_photons(rng, n_pulses, mu)
    first = np.full((2, n_pulses), np.nan)
    is_bg = np.zeros((2, n_pulses), dtype=bool)
    for t in (t_x, t_xx):
        r = rng.random(t.size)
        for d in (0, 1):
            hit = np.isfinite(t) & (r >= d * eta) & (r < (d + 1) * eta)
            tt = t[hit] + T0 + rng.normal(0.0, SIGMA, hit.sum())
            idx = pulses[hit]
            first[d, idx] = np.fmin(first[d, idx], tt)
    for d in (0, 1):
        nb = rng.binomial(n_pulses, p_bg)
        idx = rng.integers(0, n_pulses, nb)
        tt = rng.uniform(0.0, PERIOD, nb)
        earlier = ~(first[d, idx] <= tt)  # NaN compares False: an empty slot takes the dark count
        np.fmin.at(first[d], idx, tt)
        is_bg[d, idx[earlier]] = True  # the dark count is the recorded (first) event
    return first, is_bg


@pytest.fixture(scope="module")
def hbt():
    rng = np.random.default_rng(20240611)
    n_pulses = 3_000_000
    first, is_bg = simulate_hbt(rng, n_pulses)
    return n_pulses, first, is_bg


def _hist(t, bin_ns=0.016):
    n = int(round(PERIOD / bin_ns))
    t = t[np.isfinite(t)]
    return np.bincount(np.minimum((t / bin_ns).astype(np.int64), n - 1), minlength=n)


def _accidentals(n_pulses, first, bin_ns=0.016):
    ha, hb = _hist(first[0], bin_ns), _hist(first[1], bin_ns)
    pre = int(4.0 / bin_ns)  # 0-4 ns: before the rise at 5 ns (wrap-around of 6 ns: e^-16)
    return accidental_first_photon_counts(ha, hb, n_pulses=n_pulses,
                                          background_a=ha[:pre].mean(),
                                          background_b=hb[:pre].mean())


def test_accidental_model_matches_simulated_accidentals(hbt):
    n_pulses, first, is_bg = hbt
    pair = np.isfinite(first).all(axis=0)
    acc_true = pair & is_bg.any(axis=0)
    expected = _accidentals(n_pulses, first)
    n_true = int(acc_true.sum())
    # Poisson (4 sd) plus the ~2 % error of the background estimated from 250 pre-rise bins
    assert abs(expected.sum() - n_true) < 4 * math.sqrt(n_true) + 0.04 * n_true
    t1 = np.nanmin(first[:, acc_true], axis=0)
    centre = (np.arange(expected.size) + 0.5) * 0.016
    mean_model = (expected * centre).sum() / expected.sum()
    assert abs(mean_model - t1.mean()) < 4 * t1.std() / math.sqrt(n_true)


def test_heralded_pairs_recover_tau_xx_and_tau_x(hbt):
    n_pulses, first, _ = hbt
    pair = np.isfinite(first).all(axis=0)
    t1 = np.nanmin(first[:, pair], axis=0)
    est = heralded_tau_xx(t1, bin_ns=0.016, period_ns=PERIOD, irf=ModelIRF(T0, SIGMA),
                          accidental_counts=_accidentals(n_pulses, first))
    assert est.success, est.message
    assert abs(est.tau_ns - TAU_XX) < 3 * est.tau_err_ns  # 3 sigma (fixed seed)
    lo, hi = est.interval_ns
    assert lo < est.tau_ns < hi
    assert est.tau_err_ns < 0.05  # ~2600 pairs: sigma ~ tau/sqrt(N_pairs) ~ 0.02
    # ignoring the accidentals (flat background instead) biases tau_XX long by far more
    naive = heralded_tau_xx(t1, bin_ns=0.016, period_ns=PERIOD, irf=ModelIRF(T0, SIGMA),
                            background="fit")
    assert naive.tau_ns - TAU_XX > 4 * naive.tau_err_ns
    delays = np.abs(first[0, pair] - first[1, pair])
    est_x = heralded_tau_x(delays, min_delay_ns=0.5, max_delay_ns=60.0)
    assert est_x.success and abs(est_x.tau_ns - TAU_X) < 3 * est_x.tau_err_ns
    assert 0 < est_x.extra["accidental_fraction"] < 0.3


def _gate_scan_data(rng, n_pulses, gates, eta=0.25, n_side=10, mu=0.2):
    """g2(0; gate) from an ideal HBT (no dead time, no background): every photon detected on
    A or B with probability eta each; side peaks k = +-1..+-n_side/2."""
    pulses, t_x, t_xx = cascade_photons(rng, n_pulses, mu)
    t = np.concatenate([t_x, t_xx])
    p = np.concatenate([pulses, pulses])
    ok = np.isfinite(t)
    t, p = t[ok] + rng.normal(0.0, SIGMA, ok.sum()), p[ok]
    r = rng.random(t.size)
    det = np.where(r < eta, 0, np.where(r < 2 * eta, 1, -1))
    g2, centre, side_mean = [], [], []
    for gate in gates:
        sel = t >= gate
        na = np.bincount(p[sel & (det == 0)], minlength=n_pulses)
        nb = np.bincount(p[sel & (det == 1)], minlength=n_pulses)
        c0 = float(na @ nb)
        sides = [float(na[:-k] @ nb[k:]) for k in range(1, n_side // 2 + 1)]
        sides += [float(nb[:-k] @ na[k:]) for k in range(1, n_side // 2 + 1)]
        centre.append(c0)
        side_mean.append(np.mean(sides))
        g2.append(c0 / np.mean(sides))
    return np.array(g2), np.array(centre), np.array(side_mean)


GATES = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0])


@pytest.fixture(scope="module")
def gate_scan():
    rng = np.random.default_rng(7)
    return _gate_scan_data(rng, 2_000_000, GATES)


def test_gate_scan_recovers_tau_xx(gate_scan):
    g2, centre, side_mean = gate_scan
    cov = nested_gate_covariance(g2, centre, side_mean, 10)
    est = gate_scan_tau_xx(GATES, g2, tau_x_ns=TAU_X, mean_excitations=0.2, g2_cov=cov)
    assert est.success, est.message
    assert abs(est.tau_ns - TAU_XX) < 3 * est.tau_err_ns
    assert abs(est.extra["qy_ratio"] - RHO) < 3 * est.extra["qy_ratio_err"]
    # treating nested gates as independent understates the error
    indep = gate_scan_tau_xx(GATES, g2, np.sqrt(np.diag(cov)), tau_x_ns=TAU_X,
                             mean_excitations=0.2)
    assert indep.tau_err_ns < est.tau_err_ns
    with_tx_err = gate_scan_tau_xx(GATES, g2, tau_x_ns=TAU_X, mean_excitations=0.2,
                                   g2_cov=cov, tau_x_err_ns=0.3)
    assert with_tx_err.tau_err_ns > est.tau_err_ns


def test_gate_scan_errors_are_calibrated():
    """Pulls (tau - truth)/err over 12 seeds: their mean square is chi2_12/12, within
    [3.0/12, 32.9/12] at 99.8 %; too-small errors (independent gates) fail the upper bound."""
    rng = np.random.default_rng(11)
    pulls = []
    for _ in range(12):
        g2, centre, side_mean = _gate_scan_data(rng, 400_000, GATES)
        cov = nested_gate_covariance(g2, centre, side_mean, 10)
        est = gate_scan_tau_xx(GATES, g2, tau_x_ns=TAU_X, mean_excitations=0.2, g2_cov=cov)
        assert est.success, est.message
        pulls.append((est.tau_ns - TAU_XX) / est.tau_err_ns)
    ms = float(np.mean(np.square(pulls)))
    assert 3.0 / 12 < ms < 32.9 / 12


@pytest.fixture(scope="module")
def cascade_decay():
    rng = np.random.default_rng(3)
    _, t_x, t_xx = cascade_photons(rng, 2_000_000, 0.5)
    t = np.concatenate([t_x, t_xx[np.isfinite(t_xx)]])
    t = np.mod(t + T0 + rng.normal(0.0, SIGMA, t.size), PERIOD)
    return _hist(t).astype(float)


def test_cascade_fit_recovers_tau_xx(cascade_decay):
    irf = ModelIRF(T0, SIGMA)
    est = cascade_tau_xx(cascade_decay, bin_ns=0.016, irf=irf, mean_excitations=0.5,
                         period_ns=PERIOD)
    assert est.success, est.message
    assert abs(est.tau_ns - TAU_XX) < 3 * est.tau_err_ns
    fit = est.fit
    assert abs(fit.params["tau_x_ns"] - TAU_X) < 3 * fit.param_errs["tau_x_ns"]
    assert abs(fit.params["qy_ratio"] - RHO) < 3 * fit.param_errs["qy_ratio"]
    assert fit.fractions[0] < fit.fractions[1]  # XX share (may be negative: a rise)
    fixed = cascade_tau_xx(cascade_decay, bin_ns=0.016, irf=irf, mean_excitations=0.5,
                           qy_ratio=RHO, period_ns=PERIOD)
    assert fixed.success and abs(fixed.tau_ns - TAU_XX) < 3 * fixed.tau_err_ns
    assert fixed.tau_err_ns < est.tau_err_ns  # fixing eta_XX/eta_X (from g2) sharpens tau_XX


def test_three_methods_agree(hbt, gate_scan, cascade_decay):
    n_pulses, first, _ = hbt
    pair = np.isfinite(first).all(axis=0)
    est_a = heralded_tau_xx(np.nanmin(first[:, pair], axis=0), irf=ModelIRF(T0, SIGMA),
                            accidental_counts=_accidentals(n_pulses, first))
    g2, centre, side_mean = gate_scan
    est_b = gate_scan_tau_xx(GATES, g2, tau_x_ns=TAU_X, mean_excitations=0.2,
                             g2_cov=nested_gate_covariance(g2, centre, side_mean, 10))
    est_c = cascade_tau_xx(cascade_decay, bin_ns=0.016, irf=ModelIRF(T0, SIGMA),
                           mean_excitations=0.5, period_ns=PERIOD, intervals="hessian")
    cmp = compare_tau_xx([est_a, est_b, est_c])
    assert cmp.consistent, cmp.message
    assert cmp.dof == 2 and abs(cmp.weighted_mean_ns - TAU_XX) < 3 * cmp.weighted_err_ns


def test_compare_flags_disagreement_and_skips_failures():
    a = TauXXEstimate("heralded", 1.0, 0.05, (0.95, 1.05), 100, True, "")
    b = TauXXEstimate("gate_scan", 1.6, 0.05, (1.55, 1.65), 8, True, "")
    c = TauXXEstimate("cascade", math.nan, math.nan, (math.nan, math.nan), 0, False, "bad")
    cmp = compare_tau_xx([a, b, c])
    assert not cmp.consistent
    assert "DISAGREE" in cmp.message and "cascade" in cmp.message
    assert cmp.pairwise_z[("heralded", "gate_scan")] == pytest.approx(-0.6 / math.hypot(.05, .05))
    assert compare_tau_xx([a]).message.startswith("only one estimate")
    assert compare_tau_xx([c]).message.startswith("no successful estimate")


def _delay_sample(rng, n, tau, f, span):
    """Delays on [0, span): truncated Exp(tau) with a flat fraction f."""
    flat = rng.random(n) < f
    e = rng.exponential(tau, 4 * n)
    e = e[e < span][:n]
    return np.where(flat, rng.uniform(0.0, span, n), e)


def _delay_nll(p, x, span):
    """-ln L of heralded_tau_x written out independently (p = ln tau, logit f)."""
    tau, f = math.exp(p[0]), 1.0 / (1.0 + math.exp(-p[1]))
    dens = (1 - f) * np.exp(-x / tau) / (tau * (1 - math.exp(-span / tau))) + f / span
    return -np.sum(np.log(dens))


def test_heralded_delay_derivatives_match_finite_differences():
    from qrspec.fitting.biexciton import _delay_derivatives

    rng = np.random.default_rng(7)
    span = 49.5
    x = _delay_sample(rng, 400, 6.0, 0.05, span)
    for p in ([math.log(6.0), -3.0], [math.log(0.3), 1.5], [math.log(200.0), -9.0]):
        p = np.array(p)
        val, grad, hess = _delay_derivatives(p, x, span)
        assert val == pytest.approx(_delay_nll(p, x, span), rel=1e-12)
        h = 1e-5
        for i in range(2):
            e = np.eye(2)[i] * h
            g_fd = (_delay_nll(p + e, x, span) - _delay_nll(p - e, x, span)) / (2 * h)
            _, gp, _ = _delay_derivatives(p + e, x, span)
            _, gm, _ = _delay_derivatives(p - e, x, span)
            # central differences: O(h^2) truncation plus rounding of a sum of ~400 logs
            # (~1e-13 / h = 1e-8): 1e-6 of the scale of the gradient and the Hessian
            scale = 1.0 + np.abs(hess).max()
            assert abs(grad[i] - g_fd) < 1e-6 * scale
            assert_close = np.abs(hess[:, i] - (gp - gm) / (2 * h))
            assert np.all(assert_close < 1e-6 * scale)


@pytest.mark.parametrize("f_true, n", [(0.05, 600), (0.0, 300), (0.3, 40)])
def test_heralded_tau_x_optimum_matches_nelder_mead(f_true, n):
    # the old optimiser (Nelder-Mead from the same start) as the reference maximum
    from scipy.optimize import minimize

    from qrspec.fitting.biexciton import _delay_derivatives

    rng = np.random.default_rng(11 + n)
    span = 49.5
    x = _delay_sample(rng, n, 6.0, f_true, span)
    est = heralded_tau_x(x + 0.5, min_delay_ns=0.5, max_delay_ns=50.0)
    assert est.success
    pure = heralded_tau_x(x + 0.5, min_delay_ns=0.5, max_delay_ns=50.0, fit_accidentals=False)
    tau0 = pure.tau_ns  # the pure-exponential MLE: the old start
    ref = minimize(_delay_nll, [math.log(tau0), -3.0], args=(x, span), method="Nelder-Mead",
                   options={"xatol": 1e-8, "fatol": 1e-9, "maxiter": 2000})
    # never a worse likelihood (to rounding of the sum), and the same point to Nelder-Mead's
    # own tolerance (xatol 1e-8 in ln tau; its fatol 1e-9 leaves ~1e-6 in tau on flat fits)
    assert est.fit.fun <= ref.fun + 1e-9
    assert est.tau_ns == pytest.approx(math.exp(ref.x[0]), rel=1e-6)
    f_ref = 1.0 / (1.0 + math.exp(-ref.x[1]))
    assert est.extra["accidental_fraction"] == pytest.approx(f_ref, abs=1e-6)
    if f_true == 0.0:
        # the boundary: f = 0 exactly at the pure-exponential MLE (fit_accidentals=False)
        assert est.extra["accidental_fraction"] == 0.0
        assert est.tau_ns == pytest.approx(pure.tau_ns, rel=1e-14)
        # singular information at f = 0: tau alone, tau / sqrt(d2(-ln L)/d(ln tau)^2); the
        # numerical Hessian agrees with the analytic one to its ~1e-4 difference error
        h00 = _delay_derivatives(np.array([math.log(est.tau_ns), -math.inf]), x, span)[2][0, 0]
        assert est.tau_err_ns == pytest.approx(est.tau_ns / math.sqrt(h00), rel=1e-3)


def test_bad_data_and_arguments():
    assert not heralded_tau_xx(np.array([5.0, 5.1]), irf=ModelIRF(T0, SIGMA)).success
    assert not heralded_tau_x(np.array([1.0, 2.0])).success
    assert not cascade_tau_xx(np.zeros(100), bin_ns=0.1, mean_excitations=0.2).success
    nan_g2 = gate_scan_tau_xx(GATES, np.full(8, np.nan), np.ones(8), tau_x_ns=6,
                              mean_excitations=0.2)
    assert not nan_g2.success and "NaN" in nan_g2.message
    with pytest.raises(QrspecError, match=r"first_ns.shape=\(1, 2\) must be one-dimensional"):
        heralded_tau_xx(np.ones((1, 2)))
    with pytest.raises(QrspecError, match=r"bin_ns=1.0 and period_ns=0.5 must satisfy"):
        heralded_tau_xx(np.ones(3), bin_ns=1.0, period_ns=0.5)
    with pytest.raises(QrspecError, match=r"delays_ns.shape=\(1, 1\) must be one-dimensional"):
        heralded_tau_x(np.ones((1, 1)))
    with pytest.raises(QrspecError, match=r"min_delay_ns=3, max_delay_ns=1 must satisfy"):
        heralded_tau_x(np.ones(3), min_delay_ns=3, max_delay_ns=1)
    with pytest.raises(QrspecError, match=r"decay_a.shape=\(3,\) and decay_b.shape=\(2,\)"):
        accidental_first_photon_counts(np.ones(3), np.ones(2), n_pulses=1, background_a=0,
                                       background_b=0)
    with pytest.raises(QrspecError, match=r"n_pulses=0 must be > 0"):
        accidental_first_photon_counts(np.ones(3), np.ones(3), n_pulses=0, background_a=0,
                                       background_b=0)
    with pytest.raises(QrspecError, match=r"background_a and background_b must be >= 0"):
        accidental_first_photon_counts(np.ones(3), np.ones(3), n_pulses=5, background_a=-1,
                                       background_b=0)
    with pytest.raises(QrspecError, match=r"must be equal and 1-D"):
        nested_gate_covariance(np.ones(3), np.ones(2), np.ones(3), 10)
    with pytest.raises(QrspecError, match=r"n_side=0 must be >= 1 and all counts > 0"):
        nested_gate_covariance(np.ones(3), np.ones(3), np.ones(3), 0)
    with pytest.raises(QrspecError, match=r"gate_ns.shape=\(2,\) and g2.shape=\(2,\)"):
        gate_scan_tau_xx([1, 2], [0.1, 0.2], [0.1, 0.1], tau_x_ns=6, mean_excitations=0.2)
    with pytest.raises(QrspecError, match=r"give g2_err or g2_cov"):
        gate_scan_tau_xx([1, 2, 3], [0.1, 0.2, 0.3], tau_x_ns=6, mean_excitations=0.2)
    with pytest.raises(QrspecError, match=r"g2_err.shape=\(3,\) must equal g2.shape"):
        gate_scan_tau_xx([1, 2, 3], [0.1, 0.2, 0.3], [0, 1, 1], tau_x_ns=6,
                         mean_excitations=0.2)
    with pytest.raises(QrspecError, match=r"g2_cov.shape=\(2, 2\) must be \(3, 3\)"):
        gate_scan_tau_xx([1, 2, 3], [0.1, 0.2, 0.3], g2_cov=np.eye(2), tau_x_ns=6,
                         mean_excitations=0.2)
    with pytest.raises(QrspecError, match=r"tau_x_ns=-6 and mean_excitations=0.2 must be > 0"):
        gate_scan_tau_xx([1, 2, 3], [0.1, 0.2, 0.3], [1, 1, 1], tau_x_ns=-6,
                         mean_excitations=0.2)
    with pytest.raises(QrspecError, match=r"alpha=2 must be in \(0, 1\)"):
        compare_tau_xx([], alpha=2)
    not_pd = gate_scan_tau_xx([1, 2, 3], [0.1, 0.2, 0.3], g2_cov=-np.eye(3), tau_x_ns=6,
                              mean_excitations=0.2)
    assert not not_pd.success and "positive definite" in not_pd.message


def test_on_the_project_simulator():
    """End to end on qrspec.simulate (neutral particle, cascade truncated at XX, 20 s):
    tail-fitted tau_X per detector, heralded tau_XX and tau_X against the state table."""
    import qrspec.simulate as simulate
    cfg = simulate.preset("neutral", duration_s=20.0, n_max_cascade=2)
    sim = simulate.simulate_particle(cfg, seed=1)
    ph, truth = sim.photons, sim.truth
    tau_x, tau_xx = truth.state_table.tau_ns[0, 0], truth.state_table.tau_ns[0, 1]
    bin_ns = ph.nanotimes_unit * 1e9
    n_bins = ph.nanotime_bins_per_period
    period = 1e9 / cfg.sync_rate_hz
    offsets = cfg.detection.offset_ns
    hists, backgrounds = [], []
    for d in (0, 1):
        h = np.bincount(ph.nanotimes[ph.detectors == d], minlength=n_bins)[:n_bins].astype(float)
        fit = cascade_tail_fit(h, bin_ns, offsets[d] + 5 * tau_xx, period)
        assert fit.success, fit.message
        assert abs(fit.tau_ns[0] - tau_x) < 4 * fit.tau_err_ns[0]
        # roll so that every detector's IRF sits at t = 0 (common time zero)
        hists.append(np.roll(h, -int(round(offsets[d] / bin_ns))))
        backgrounds.append(fit.background)
    ts0, ts1 = ph.timestamps[ph.detectors == 0], ph.timestamps[ph.detectors == 1]
    _, ia, ib = np.intersect1d(ts0, ts1, return_indices=True)  # same sync on both detectors
    ta = ph.nanotimes[ph.detectors == 0][ia] * bin_ns - offsets[0]
    tb = ph.nanotimes[ph.detectors == 1][ib] * bin_ns - offsets[1]
    acc = accidental_first_photon_counts(hists[0], hists[1],
                                         n_pulses=int(cfg.duration_s * cfg.sync_rate_hz),
                                         background_a=backgrounds[0],
                                         background_b=backgrounds[1])
    sigma = math.hypot(cfg.detection.irf_sigma_ns[0], cfg.laser_fwhm_ns / 2.3548)
    irf = ModelIRF(0.0, sigma, cfg.detection.irf_tail_weight[0], cfg.detection.irf_tail_ns[0])
    est = heralded_tau_xx(np.minimum(ta, tb), bin_ns=bin_ns, period_ns=period, irf=irf,
                          accidental_counts=acc)
    assert est.success, est.message
    assert abs(est.tau_ns - tau_xx) < 4 * est.tau_err_ns
    est_x = heralded_tau_x(np.abs(ta - tb), min_delay_ns=0.5, max_delay_ns=60.0)
    assert est_x.success and abs(est_x.tau_ns - tau_x) < 4 * est_x.tau_err_ns


def cascade_tail_fit(h, bin_ns, start_ns, period_ns):
    """Tail fit from ``start_ns`` (>= 5 tau_XX after the rise: pure X, methods.md §2.5)."""
    from qrspec.fitting import fit_decay

    return fit_decay(h, bin_ns=bin_ns, fit_range_ns=(start_ns, h.size * bin_ns),
                     period_ns=period_ns)
