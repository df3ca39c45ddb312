"""Lifetime fitting: kernels against NumPy references, the model against closed forms, and the
estimators on photon-level simulations (ground truth independent of the model code)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.fitting import ModelIRF, fit_decay, fit_decay_global
from qrspec.fitting import _kernels as K
from qrspec.fitting.models import (
    ReconvolutionModel,
    cascade_weights,
    periodic_exgaussian,
    periodic_exponential,
)

BIN_NS = 0.05
N_BINS = 1024
PERIOD_NS = N_BINS * BIN_NS  # 51.2 ns
IRF = ModelIRF(t0_ns=3.0, sigma_ns=0.1, tail_weight=0.05, tail_tau_ns=0.3)
TAU_NS = 4.0


def photon_decay(rng, n_photons, taus, fractions=(1.0,), *, bg_fraction=0.0, irf=IRF,
                 n_bins=N_BINS, bin_ns=BIN_NS, period_ns=None, scatter_fraction=0.0,
                 irf_offset_ns=0.0):
    """Histogram of simulated photons: IRF jitter (Gaussian + exponential tail) plus an
    exponential delay, folded into the laser period (wrap-around), plus uniform background and
    IRF-shaped scatter. Independent of qrspec's model code."""
    period_ns = n_bins * bin_ns if period_ns is None else period_ns
    n_bg = rng.binomial(n_photons, bg_fraction)
    n_sc = rng.binomial(n_photons - n_bg, scatter_fraction)
    n_sig = n_photons - n_bg - n_sc

    def jitter(n):
        tail = (rng.random(n) < irf.tail_weight) * rng.exponential(irf.tail_tau_ns, n)
        return irf.t0_ns + irf_offset_ns + rng.normal(0.0, irf.sigma_ns, n) + tail

    comp = rng.choice(len(taus), n_sig, p=np.asarray(fractions) / np.sum(fractions))
    t_sig = jitter(n_sig) + rng.exponential(np.asarray(taus, dtype=float)[comp])
    t = np.concatenate([t_sig, jitter(n_sc), rng.uniform(0.0, period_ns, n_bg)])
    t = np.mod(t, period_ns)
    idx = np.minimum((t / bin_ns).astype(np.int64), int(round(period_ns / bin_ns)) - 1)
    return np.bincount(idx, minlength=int(round(period_ns / bin_ns)))[:n_bins].astype(float)


def irf_hist(n_bins=N_BINS, bin_ns=BIN_NS, irf=IRF):
    return irf.histogram(n_bins, bin_ns)


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------

def _exp_conv(irf, q, kernel=K.exp_conv_periodic, derivative=True):
    y, dy = np.empty_like(irf), np.empty_like(irf)
    kernel(irf, q, y, dy, derivative)
    return y, dy


def _shift(rows, delta, n_data, kernel=K.shift_periodic, clip=False):
    """shift_periodic on each row of ``rows`` (first ``n_data`` output bins)."""
    out = np.empty((rows.shape[0], n_data))
    dout = np.empty_like(out)
    for k in range(rows.shape[0]):
        kernel(rows[k], delta, out[k], dout[k], clip)
    return out, dout


def _fft_reference(irf, q):
    n = irf.size
    h = (1 - q) * q ** np.arange(n) / (1 - q**n)
    return np.real(np.fft.ifft(np.fft.fft(irf) * np.fft.fft(h)))


@pytest.mark.parametrize("tau_ns", [0.01, 0.7, 5.0, 80.0, 900.0])
def test_exp_conv_matches_fft_and_finite_difference(rng, tau_ns):
    irf = rng.random(400) ** 8  # spiky, arbitrary
    irf /= irf.sum()
    q = math.exp(-BIN_NS / tau_ns)
    y, dy = _exp_conv(irf, q)
    ref = _fft_reference(irf, q)
    # deterministic float arithmetic: FFT round-off ~1e-15 of the maximum (q^n near 1 at 900 ns
    # costs a few digits in 1 - q^n)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-11 * ref.max())
    assert y.sum() == pytest.approx(1.0, rel=1e-10)  # the kernel is normalised per period
    h = 1e-4
    yp, _ = _exp_conv(irf, math.exp(-BIN_NS / (tau_ns * math.exp(h))))
    ym, _ = _exp_conv(irf, math.exp(-BIN_NS / (tau_ns * math.exp(-h))))
    # central difference: truncation ~h^2 = 1e-8 relative; round-off of 1 - q (~1e-16/(1 - q))
    # divided by h stays < 1e-6 of max|dy| even at tau = 900 ns (checked against long double)
    np.testing.assert_allclose(dy, (yp - ym) / (2 * h), rtol=0, atol=1e-5 * np.abs(dy).max())
    y2, dy2 = _exp_conv(irf, q, K.exp_conv_periodic.py_func)
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dy2, dy, rtol=1e-12, atol=1e-15)
    y3, _ = _exp_conv(irf, q, derivative=False)  # the value alone is the same value
    np.testing.assert_array_equal(y3, y)


def _catmull_rom_reference(rows, delta, n_data):
    s = math.floor(delta)
    u = delta - s
    w = [0.5 * (-u**3 + 2 * u**2 - u), 0.5 * (3 * u**3 - 5 * u**2 + 2),
         0.5 * (-3 * u**3 + 4 * u**2 + u), 0.5 * (u**3 - u**2)]
    shifts = [s - 1, s, s + 1, s + 2]  # np.roll(x, k)[i] = x[i - k]
    out = sum(wk * np.roll(rows, k, axis=1) for wk, k in zip(w, shifts, strict=True))
    return out[:, :n_data]


@pytest.mark.parametrize("delta", [-3.7, -0.2, 0.0, 0.5, 2.0, 7.25])
def test_shift_rows_matches_roll_reference(rng, delta):
    rows = rng.random((3, 50))
    out, dout = _shift(rows, delta, 40)
    np.testing.assert_allclose(out, _catmull_rom_reference(rows, delta, 40), rtol=1e-12)
    h = 1e-6
    num = (_catmull_rom_reference(rows, delta + h, 40)
           - _catmull_rom_reference(rows, delta - h, 40)) / (2 * h)
    if abs(delta - round(delta)) > 1e-3:  # C1: derivative continuous, check away from knots
        np.testing.assert_allclose(dout, num, rtol=1e-6, atol=1e-8)
    full, _ = _shift(rows, delta, 50)
    np.testing.assert_allclose(full.sum(axis=1), rows.sum(axis=1), rtol=1e-12)  # partition of 1
    np.testing.assert_allclose(_shift(rows, delta, 40, K.shift_periodic.py_func)[0], out,
                               rtol=1e-12)
    # clipped: the undershoot of the cubic set to 0 (value and derivative), the rest unchanged
    spiky = np.zeros((1, 50))
    spiky[0, 20] = 1.0  # a delta: Catmull-Rom undershoots next to it
    raw, draw = _shift(spiky, delta, 50)
    clipped, dclipped = _shift(spiky, delta, 50, clip=True)
    neg = raw < 0
    assert neg.any() or delta == round(delta)
    np.testing.assert_array_equal(clipped, np.where(neg, 0.0, raw))
    np.testing.assert_array_equal(dclipped, np.where(neg, 0.0, draw))


def test_integer_shift_is_a_roll(rng):
    rows = rng.random((2, 30))
    out, _ = _shift(rows, 3.0, 30)
    np.testing.assert_array_equal(out, np.roll(rows, 3, axis=1))


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_objective_terms_match_numpy(rng, kind):
    m = rng.uniform(0.05, 5.0, 60)
    c = rng.poisson(m).astype(float)
    jac = rng.normal(size=(60, 4))
    idx = np.arange(5, 55)
    g, h = np.empty(4), np.empty((4, 4))
    f = K.objective_terms(m, jac, c, idx, kind, 1e-10, g, h)
    mi, ci, ji = m[idx], c[idx], jac[idx]
    if kind == 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(ci > 0, ci * np.log(ci / mi), 0.0)
        f_ref = 2 * np.sum(mi - ci + term)
        g_ref = 2 * ji.T @ (1 - ci / mi)
        h_ref = 2 * ji.T @ (ji / mi[:, None])
    elif kind == 1:
        w = 1 / np.maximum(ci, 1)
        f_ref = np.sum(w * (ci - mi) ** 2)
        g_ref = -2 * ji.T @ (w * (ci - mi))
        h_ref = 2 * ji.T @ (ji * w[:, None])
    else:
        f_ref = np.sum((ci - mi) ** 2 / mi)
        g_ref = ji.T @ ((mi**2 - ci**2) / mi**2)
        h_ref = 2 * ji.T @ (ji / mi[:, None])
    assert f == pytest.approx(f_ref, rel=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10)
    f2 = K.objective_terms.py_func(m, jac, c, idx, kind, 1e-10, np.empty(4), np.empty((4, 4)))
    assert f2 == pytest.approx(f, rel=1e-12)


@pytest.mark.parametrize("kind,theta", [
    ("mono", [math.log(4.0), 1000, 2, 0.37, 50]),
    ("bi", [0.0, math.log(5.0), 300, 700, 2, -1.3, 30]),
    ("tri", [-1.0, 0.5, 2.0, 100, 200, 300, 1, 2.6, 10]),
    ("cascade", [math.log(6.0), 0.0, 1000, 0.6, 1, 0.4, 20]),
])
def test_model_jacobian_matches_finite_differences(kind, theta):
    mdl = ReconvolutionModel(kind, 500, BIN_NS, 512, irf_hist(512), fit_scatter=True,
                             mean_excitations=0.3)
    theta = np.array(theta, dtype=float)
    _, jac = mdl.evaluate(theta)
    for j in range(theta.size):
        h = 1e-6 * max(1.0, abs(theta[j]))
        e = np.zeros_like(theta)
        e[j] = h
        num = (mdl.evaluate(theta + e)[0] - mdl.evaluate(theta - e)[0]) / (2 * h)
        # central differences: relative error ~1e-9 of the column scale
        np.testing.assert_allclose(jac[:, j], num, rtol=0, atol=1e-6 * np.abs(num).max())


def test_model_and_objective_split_kernels_match_their_python_code(rng):
    """model_values / model_derivatives and objective_value / objective_derivatives (the fit
    evaluates candidates with the first of each and the rest only at accepted steps): compiled
    and pure-Python (``py_func``) agree to round-off, and the split gives exactly the numbers of
    model_jacobian / objective_terms (the same arithmetic)."""
    for kind, theta, irf in [
        ("bi", [0.0, math.log(5.0), 300, 700, 2, -1.3, 30], irf_hist(512)),
        ("cascade", [math.log(6.0), 0.0, 1000, 0.6, 1, 0.4, 20], irf_hist(512)),
        ("bi", [0.3, math.log(4.0), 300, 700, 2], None),  # tail fit: no reconvolution
    ]:
        mdl = ReconvolutionModel(kind, 500, BIN_NS, 512, irf, fit_scatter=irf is not None,
                                 fit_shift=irf is not None, mean_excitations=0.3,
                                 origin_bin=40)
        theta = np.array(theta, dtype=float)
        irf2, fixed, pmap, spec, fpar = mdl.kernel_arrays()
        out = []
        for values, derivatives in [(K.model_values, K.model_derivatives),
                                    (K.model_values.py_func, K.model_derivatives.py_func)]:
            m, jac = np.empty(500), np.empty((500, theta.size))
            work = np.empty((1, 4 + 3 * mdl.n_tau, 512))
            values(theta, irf2, fixed, pmap, spec, fpar, m, work)
            derivatives(theta, irf2, pmap, spec, fpar, jac, work)
            out.append((m, jac))
        m_all, jac_all = mdl.evaluate(theta)  # model_jacobian
        np.testing.assert_array_equal(out[0][0], m_all)
        np.testing.assert_array_equal(out[0][1], jac_all)
        np.testing.assert_allclose(out[1][0], m_all, rtol=1e-12)
        np.testing.assert_allclose(out[1][1], jac_all, rtol=1e-12, atol=1e-12 * np.abs(
            jac_all).max())
        c = rng.poisson(np.maximum(m_all, 0)).astype(float)
        idx = np.arange(45, 500)
        for obj in (0, 1, 2):
            g, h = np.empty(theta.size), np.empty((theta.size, theta.size))
            f = K.objective_terms(m_all, jac_all, c, idx, obj, 1e-10, g, h)
            assert K.objective_value(m_all, c, idx, obj, 1e-10) == f
            assert K.objective_value.py_func(m_all, c, idx, obj, 1e-10) == pytest.approx(
                f, rel=1e-12)
            g2, h2 = np.empty_like(g), np.empty_like(h)
            K.objective_derivatives.py_func(m_all, jac_all, c, idx, obj, 1e-10, g2, h2)
            np.testing.assert_allclose(g2, g, rtol=1e-10, atol=1e-10 * np.abs(g).max())
            np.testing.assert_allclose(h2, h, rtol=1e-10)


@pytest.mark.parametrize("tau_ns", [0.3, 2.0, 100.0])
def test_model_matches_periodic_exgaussian_closed_form(tau_ns):
    """Binned model with a Gaussian IRF vs the exact bin integral of the periodic exGaussian.

    100 ns > period checks the wrap-around sum. Tolerance: the discrete convolution treats each
    IRF bin as a point mass at its centre; with sigma = 2 bins the measured error is 0.08-0.5 %
    of the peak (it scales as (bin/sigma)^2), so 1 % is the bound."""
    irf = ModelIRF(3.013, 0.1)
    mdl = ReconvolutionModel("mono", N_BINS, BIN_NS, N_BINS, irf_hist(irf=irf), fit_shift=False)
    y, _ = mdl.evaluate(np.array([math.log(tau_ns), 1.0, 0.0]), jacobian=False)
    sub = 32
    tf = (np.arange(N_BINS * sub) + 0.5) * BIN_NS / sub
    exact = periodic_exgaussian(tf, tau_ns, 0.1, 3.013, PERIOD_NS).reshape(N_BINS, sub).mean(1)
    exact *= BIN_NS
    assert exact.sum() == pytest.approx(1.0, rel=1e-6)  # the reference is a unit density
    assert np.abs(y - exact).max() < 0.01 * exact.max()


def test_periodic_exponential_is_a_unit_density():
    t = (np.arange(100_000) + 0.5) * 1e-3
    for tau in (0.5, 20.0, 500.0):
        assert periodic_exponential(t, tau, 100.0).sum() * 1e-3 == pytest.approx(1.0, rel=1e-6)


def test_cascade_weights_sum_to_one_and_match_direct_integrals():
    wx, wxx = cascade_weights(6.0, 1.0, 0.5, 0.3)
    assert wx + wxx == pytest.approx(1.0, rel=1e-14)
    # photon fractions from the closed-form intensity: X part = a_X tau_X / total
    from qrspec.fitting.models import cascade_intensity
    t = np.linspace(0, 200, 2_000_001)
    total = np.trapezoid(cascade_intensity(t, 6.0, 1.0, 0.5, 0.3), t)
    p1 = 0.3 * math.exp(-0.3)
    p2 = 1 - math.exp(-0.3) * 1.3
    assert total == pytest.approx(p1 + p2 * 1.5, rel=1e-6)  # eta_X (P1 + P2) + eta_XX P2


# --------------------------------------------------------------------------------------------
# estimators on simulated photons
# --------------------------------------------------------------------------------------------

def _crb_sigma_tau(n_photons, bg_fraction):
    """Cramer-Rao sigma of tau from the Fisher information of the exact binned model at truth."""
    mdl = ReconvolutionModel("mono", N_BINS, BIN_NS, N_BINS, irf_hist())
    theta = np.array([math.log(TAU_NS), n_photons * (1 - bg_fraction),
                      n_photons * bg_fraction / N_BINS, 0.0])
    m, jac = mdl.evaluate(theta)
    if bg_fraction == 0:
        jac = jac[:, [0, 1, 3]]  # background fixed at 0
    info = jac.T @ (jac / m[:, None])
    return TAU_NS * math.sqrt(np.linalg.inv(info)[0, 0])


@pytest.mark.parametrize("n_photons,n_rep,bg_fraction", [
    (100, 150, 0.0), (1000, 100, 0.2), (10_000, 40, 0.2), (100_000, 15, 0.2)])
def test_mle_is_unbiased_with_calibrated_errors(rng, n_photons, n_rep, bg_fraction):
    """MLE mean within 4 standard errors of the truth; spread equal to the Cramer-Rao bound.

    sigma_tau = F tau / sqrt(N): F ~ 1 without background (Koellner-Wolfrum), larger with it;
    here F is computed from the Fisher information of the exact model (``_crb_sigma_tau``).
    At 100 photons the background is fixed at 0: a fitted background sitting at its bound 0
    biases tau low by ~1 % (measured -1.2 % +- 0.6 %), a boundary effect, not an MLE bias.
    """
    kw = {"background": 0.0} if bg_fraction == 0 else {}
    fits = [fit_decay(photon_decay(rng, n_photons, [TAU_NS], bg_fraction=bg_fraction),
                      bin_ns=BIN_NS, irf=irf_hist(), **kw) for _ in range(n_rep)]
    assert sum(f.success for f in fits) >= n_rep - 2  # rare low-count failures are reported
    tau = np.array([f.tau_ns[0] for f in fits if f.success])
    err = np.array([f.tau_err_ns[0] for f in fits if f.success])
    crb = _crb_sigma_tau(n_photons, bg_fraction)
    assert abs(tau.mean() - TAU_NS) < 4 * crb / math.sqrt(tau.size)
    # reported errors match the CRB (fitted values replace the truth: 15 % at N = 100)
    assert np.median(err) == pytest.approx(crb, rel=0.15)
    # empirical spread matches: the sd of a sample sd is ~sd/sqrt(2n) -> 4 of those
    assert tau.std(ddof=1) == pytest.approx(crb, rel=4 / math.sqrt(2 * tau.size) + 0.05)
    f_value = crb * math.sqrt(n_photons) / TAU_NS
    assert 1.0 <= f_value < (1.2 if bg_fraction == 0 else 2.0)


def test_least_squares_low_count_bias_sign(rng):
    """Measured least-squares bias (1024 bins of 50 ps, tau = 4 ns, IRF 0.1 ns, no background;
    mean tau / truth - 1 with its standard error, 60-150 simulated decays each):

    =======  ===============  ===============  ==============
    photons  Neyman chi2      Pearson chi2     Poisson MLE
    =======  ===============  ===============  ==============
    100      +8.6 +- 1.4 %    +62 +- 2 %       -2.2 +- 0.8 %
    1000     -10.8 +- 0.4 %   +26.4 +- 0.6 %   0.0 +- 0.3 %
    10000    -5.9 +- 0.1 %    +4.3 +- 0.2 %    +0.1 +- 0.1 %
    =======  ===============  ===============  ==============

    Neyman weights 1/max(c, 1) pull the model under the fluctuations (tau low) once most bins
    have counts, but at ~0.1 counts/bin zeros and ones get equal weight and tau comes out long;
    Pearson weights 1/m bias tau high throughout (methods.md §4.2 expected "Neyman low, Pearson
    high": true from ~1 count/bin up, not at 0.1). The MLE -2 % at 100 photons is the
    background bound (see the unbiasedness test). Asserted: the signs at 1000 photons (about one
    count per bin) and at 100 photons, each by > 4 standard errors.
    """
    res = {}
    for n_photons, n_rep in ((1000, 60), (100, 150)):
        taus = {"mle": [], "neyman": [], "pearson": []}
        for _ in range(n_rep):
            c = photon_decay(rng, n_photons, [TAU_NS])
            for key, kw in (("mle", {}), ("neyman", {"method": "lsq"}),
                            ("pearson", {"method": "lsq", "lsq_weights": "pearson"})):
                f = fit_decay(c, bin_ns=BIN_NS, irf=irf_hist(), **kw)
                if f.success:
                    taus[key].append(f.tau_ns[0])
        res[n_photons] = {k: (np.mean(v), np.std(v, ddof=1) / math.sqrt(len(v)))
                          for k, v in taus.items()}
    mean, sem = res[1000]["neyman"]
    assert mean < TAU_NS - 4 * sem
    mean, sem = res[1000]["pearson"]
    assert mean > TAU_NS + 4 * sem
    mean, sem = res[1000]["mle"]
    assert abs(mean - TAU_NS) < 4 * sem
    mean, sem = res[100]["neyman"]
    assert mean > TAU_NS + 4 * sem
    mean, sem = res[100]["pearson"]
    assert mean > TAU_NS + 4 * sem


def _coverage_tolerance(n, p=0.6827):
    return 3.5 * math.sqrt(p * (1 - p) / n)  # binomial sd of the coverage fraction, 3.5 sigma


def test_coverage_of_hessian_and_profile_intervals(rng):
    """68 % intervals contain the truth in 68 % of seeds (binomial tolerance 3.5 sigma).

    Coarser bins (256 x 0.2 ns, same 51.2 ns period) keep the profile fits fast."""
    irf = irf_hist(256, 0.2)
    hits = {"hessian": [], "profile": []}
    for i in range(160):
        c = photon_decay(rng, 300, [TAU_NS], bg_fraction=0.1, n_bins=256, bin_ns=0.2)
        intervals = "profile" if i < 100 else "hessian"
        f = fit_decay(c, bin_ns=0.2, irf=irf, intervals=intervals)
        assert f.success, f.message
        lo, hi = f.tau_interval_ns[0]
        hits[intervals].append(lo <= TAU_NS < hi)
        if intervals == "profile":
            # Hessian interval of the same fit, for the larger sample
            hits["hessian"].append(abs(f.tau_ns[0] - TAU_NS) < f.tau_err_ns[0])
    for key, h in hits.items():
        assert abs(np.mean(h) - 0.6827) < _coverage_tolerance(len(h)), (key, np.mean(h))


def test_profile_interval_is_asymmetric_at_low_counts(rng):
    f = fit_decay(photon_decay(rng, 60, [TAU_NS]), bin_ns=BIN_NS, irf=irf_hist(),
                  background=0.0, intervals="profile")
    lo, hi = f.tau_interval_ns[0]
    assert lo < f.tau_ns[0] < hi
    assert hi - f.tau_ns[0] > f.tau_ns[0] - lo  # likelihood of a scale parameter: long upper


def test_biexponential_recovers_components(rng):
    c = photon_decay(rng, 100_000, [0.8, 5.0], [0.3, 0.7], bg_fraction=0.05)
    f = fit_decay(c, bin_ns=BIN_NS, irf=irf_hist(), model="bi")
    assert f.success, f.message
    for got, err, true in zip(f.tau_ns, f.tau_err_ns, (0.8, 5.0), strict=True):
        assert abs(got - true) < 4 * err  # 4 sigma from the fit's own errors
    assert abs(f.fractions[0] - 0.3) < 4 * f.fraction_errs[0]
    assert f.amplitudes[0] + f.amplitudes[1] == pytest.approx(95_000, rel=0.02)
    assert f.tau_mean_ns == pytest.approx(0.3 * 0.8 + 0.7 * 5.0, rel=0.03)
    # Poisson deviance per dof ~ 1 for a correct model: sd sqrt(2/dof) ~ 0.044 -> 4 sd
    assert abs(f.reduced_deviance - 1.0) < 0.2


def test_triexponential_runs_and_orders_lifetimes(rng):
    c = photon_decay(rng, 300_000, [0.3, 2.0, 10.0], [0.3, 0.3, 0.4])
    f = fit_decay(c, bin_ns=BIN_NS, irf=irf_hist(), model="tri")
    assert f.success, f.message
    assert list(f.tau_ns) == sorted(f.tau_ns)
    for got, err, true in zip(f.tau_ns, f.tau_err_ns, (0.3, 2.0, 10.0), strict=True):
        assert abs(got - true) < 4 * err


def _mono_problem(rng, n_photons=5000, n_bins=256, bin_ns=0.2):
    """A mono fit with IRF, fitted background and shift: (counts, fit, model, theta)."""
    c = photon_decay(rng, n_photons, [TAU_NS], bg_fraction=0.1, n_bins=n_bins, bin_ns=bin_ns)
    irf = irf_hist(n_bins, bin_ns)
    f = fit_decay(c, bin_ns=bin_ns, irf=irf)
    assert f.success, f.message
    mdl = ReconvolutionModel("mono", n_bins, bin_ns, n_bins, irf)
    theta = np.array([math.log(f.tau_ns[0]), f.amplitudes[0], f.background,
                      f.shift_ns / bin_ns])
    return c, f, mdl, theta


def test_optimum_matches_brute_force_minimisation(rng):
    """The compiled Levenberg-Marquardt reaches the minimum of the deviance that Nelder-Mead
    (scipy, another algorithm on the same objective) finds from a start 0.5 sigma away.

    Tolerances: the optimiser stops when the predicted decrease of D is < 1e-6, so D is within
    ~1e-6 of its minimum and the parameters within ~sqrt(1e-6) = 1e-3 sigma; asserted with 10x
    margins (1e-5 in D, 0.01 sigma)."""
    from scipy.optimize import minimize

    c, f, mdl, theta = _mono_problem(rng)

    def deviance(x):
        m = np.maximum(mdl.evaluate(x, jacobian=False)[0], 1e-10)
        pos = c > 0
        return 2.0 * float((m - c).sum() + (c[pos] * np.log(c[pos] / m[pos])).sum())

    sd = np.sqrt(np.diag(f.covariance))
    res = minimize(deviance, theta + 0.5 * sd, method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 20_000,
                            "maxfev": 20_000})
    assert deviance(theta) == pytest.approx(f.deviance, abs=1e-8)
    assert abs(f.deviance - res.fun) < 1e-5
    np.testing.assert_array_less(np.abs(res.x - theta), 0.01 * sd)


def test_covariance_is_the_inverse_fisher_information(rng):
    """The reported covariance equals the inverse of J^T diag(1/m) J computed here from the
    model's Jacobian at the optimum (NumPy, not the kernel's accumulation): equal to rounding
    (condition number of F ~1e4 -> 1e-10 relative; asserted 1e-8)."""
    c, f, mdl, theta = _mono_problem(rng)
    m, jac = mdl.evaluate(theta)
    fisher = jac.T @ (jac / np.maximum(m, 1e-10)[:, None])
    np.testing.assert_allclose(f.covariance, np.linalg.inv(fisher), rtol=1e-8)
    assert f.tau_err_ns[0] == pytest.approx(f.tau_ns[0] * math.sqrt(f.covariance[0, 0]),
                                            rel=1e-12)


def test_compiled_fit_matches_python_execution():
    """kernels.fit_rows compiled and run as Python (py_func; it calls the compiled model and
    objective): the same iteration, equal to rounding of libm's exp/pow in the two."""
    from qrspec.fitting import lifetime as L

    rng = np.random.default_rng(3)
    rows = np.array([photon_decay(rng, n, [TAU_NS], bg_fraction=0.1, n_bins=64, bin_ns=0.8)
                     for n in (300, 3000)])
    prob = L._problem(64, None, bin_ns=0.8, model="mono", irf=irf_hist(64, 0.8),
                      period_ns=None, fit_range_ns=None, method="mle", lsq_weights="neyman",
                      background="fit", fixed_background=None, fit_shift=True, shift_ns=0.0,
                      shift_bounds_ns=(-0.2, 0.2), scatter=False, tau0_ns=None,
                      mean_excitations=None, qy_ratio=None, intervals="hessian",
                      n_bootstrap=0, min_photons=30, max_iter=200)
    starts = np.ascontiguousarray(L._start_rows(prob, rows)[:, 0])
    outs = []
    for kernel in (K.fit_rows, K.fit_rows.py_func):
        out = [np.empty((2, 4)), np.empty((2, 4, 4)), np.empty((2, 64)), np.empty((2, 64)),
               np.empty((2, K.R_SIZE))]
        kernel(rows, starts, prob.lo, prob.hi, prob.fixed, prob.idx, prob.irf2, prob.fixed2,
               prob.pmap, prob.spec, prob.fpar, *out)
        outs.append(out)
    for a, b in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert (outs[0][4][:, K.R_CONVERGED] == 1).all()


def test_tail_fit_without_irf(rng):
    c = photon_decay(rng, 20_000, [TAU_NS], bg_fraction=0.1)
    f = fit_decay(c, bin_ns=BIN_NS, fit_range_ns=(4.0, PERIOD_NS))
    assert f.success, f.message
    assert abs(f.tau_ns[0] - TAU_NS) < 4 * f.tau_err_ns[0]
    assert np.isnan(f.residuals[:80]).all() and np.isfinite(f.residuals[80:]).all()


def test_irf_shift_and_scatter_are_recovered(rng):
    c = photon_decay(rng, 200_000, [TAU_NS], irf_offset_ns=0.08, scatter_fraction=0.1)
    f = fit_decay(c, bin_ns=BIN_NS, irf=irf_hist(), scatter=True)
    assert f.success, f.message
    assert abs(f.shift_ns - 0.08) < 4 * f.shift_err_ns
    assert abs(f.scatter - 20_000) < 4 * f.scatter_err
    assert abs(f.tau_ns[0] - TAU_NS) < 4 * f.tau_err_ns[0]


def test_misaligned_irf_is_flagged(rng):
    c = photon_decay(rng, 50_000, [TAU_NS], irf_offset_ns=0.5)  # IRF 0.5 ns too early
    f = fit_decay(c, bin_ns=BIN_NS, irf=irf_hist())
    assert not f.success and "IRF shift at its bound" in f.message
    wide = fit_decay(c, bin_ns=BIN_NS, irf=irf_hist(), shift_bounds_ns=(-1.0, 1.0))
    assert wide.success and abs(wide.shift_ns - 0.5) < 4 * wide.shift_err_ns


def test_time_axis_offset_and_partial_period(rng):
    """A histogram covering 40 of 51.2 ns, on an axis starting at 10 ns: the model still runs
    on the full period (tau = 30 ns: the wrap-around carries 18 % of the decay)."""
    c = photon_decay(rng, 200_000, [30.0])[:800]
    time_ns = 10.0 + BIN_NS * np.arange(800)
    irf = ModelIRF(13.0, 0.1, 0.05, 0.3)  # t0 on the time_ns axis
    f = fit_decay(c, time_ns, irf=irf, period_ns=PERIOD_NS)
    assert f.success, f.message
    assert abs(f.tau_ns[0] - 30.0) < 4 * f.tau_err_ns[0]
    wrong = fit_decay(c, time_ns, irf=irf)  # period = histogram span: wrong wrap-around
    assert abs(wrong.tau_ns[0] - 30.0) > 4 * wrong.tau_err_ns[0]


def test_bootstrap_error_agrees_with_hessian(rng):
    c = photon_decay(rng, 5000, [TAU_NS], bg_fraction=0.1, n_bins=256, bin_ns=0.2)
    f = fit_decay(c, bin_ns=0.2, irf=irf_hist(256, 0.2), n_bootstrap=60,
                  rng=np.random.default_rng(1))
    # sd of a 60-replicate sd estimate ~ 9 %: 3 of those
    assert f.bootstrap_tau_err_ns[0] == pytest.approx(f.tau_err_ns[0], rel=0.3)


def test_fixed_background_component_is_added(rng):
    c = photon_decay(rng, 20_000, [TAU_NS])
    extra = np.full(N_BINS, 2.0)
    c2 = c + rng.poisson(extra)
    f = fit_decay(c2, bin_ns=BIN_NS, irf=irf_hist(), background=0.0, fixed_background=extra)
    assert f.success and abs(f.tau_ns[0] - TAU_NS) < 4 * f.tau_err_ns[0]
    assert np.all(f.model_counts >= 2.0)


def test_global_fit_of_two_detectors_with_own_irfs(rng):
    """Two detectors, different IRFs (cable delay, width) and backgrounds, one lifetime."""
    irf_b = ModelIRF(5.5, 0.15, 0.1, 0.4)
    ca = photon_decay(rng, 20_000, [TAU_NS], bg_fraction=0.05)
    cb = photon_decay(rng, 30_000, [TAU_NS], bg_fraction=0.1, irf=irf_b)
    counts = np.vstack([ca, cb])
    f = fit_decay_global(counts, bin_ns=BIN_NS, irf=[irf_hist(), irf_b], intervals="profile")
    assert f.success, f.message
    assert abs(f.tau_ns[0] - TAU_NS) < 4 * f.tau_err_ns[0]
    single = [fit_decay(c, bin_ns=BIN_NS, irf=i) for c, i in ((ca, irf_hist()), (cb, irf_b))]
    # shared lifetime: the information adds, 1/err^2 = sum of 1/err_d^2 (to 10 %)
    expected = sum(s.tau_err_ns[0] ** -2 for s in single) ** -0.5
    assert f.tau_err_ns[0] == pytest.approx(expected, rel=0.1)
    assert f.model_counts.shape == (2, N_BINS) and f.residuals.shape == (2, N_BINS)
    assert f.amplitudes[0] == pytest.approx(0.95 * 20_000 + 0.9 * 30_000, rel=0.03)
    assert f.params["background_det1"] > f.params["background_det0"]
    lo, hi = f.tau_interval_ns[0]
    assert lo < f.tau_ns[0] < hi
    bi = fit_decay_global(np.vstack([photon_decay(rng, 50_000, [0.8, 5.0], [0.3, 0.7]),
                                     photon_decay(rng, 50_000, [0.8, 5.0], [0.3, 0.7],
                                                  irf=irf_b)]),
                          bin_ns=BIN_NS, irf=[irf_hist(), irf_b], model="bi")
    assert bi.success, bi.message
    for got, err, true in zip(bi.tau_ns, bi.tau_err_ns, (0.8, 5.0), strict=True):
        assert abs(got - true) < 4 * err


def test_global_fit_failures_and_errors():
    good = np.arange(100, 0, -1, dtype=float)
    irf = ModelIRF(1.0, 0.1).histogram(100, 0.1)
    bad = fit_decay_global(np.vstack([good, np.full(100, np.nan)]), bin_ns=0.1, irf=[irf, irf])
    assert not bad.success and bad.message.startswith("detector 1: counts contain 100 NaN")
    with pytest.raises(QrspecError, match=r"model='cascade' must be one of"):
        fit_decay_global(np.vstack([good, good]), bin_ns=0.1, irf=[irf, irf], model="cascade")
    with pytest.raises(QrspecError, match=r"counts.shape=\(100,\) must be \(n_detectors"):
        fit_decay_global(good, bin_ns=0.1, irf=[irf])
    with pytest.raises(QrspecError, match=r"irf gives 1 IRFs for 2 detectors"):
        fit_decay_global(np.vstack([good, good]), bin_ns=0.1, irf=[irf])


# --------------------------------------------------------------------------------------------
# failure modes (never raise) and argument errors (raise)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("counts,msg", [
    (np.zeros(0), "empty histogram"),
    (np.zeros(100), "only 0 photons"),
    (np.r_[np.zeros(50), 500.0, np.zeros(49)], "all 500 photons in one bin"),
    (np.r_[np.full(50, 3.0), np.nan, np.full(49, 3.0)], "1 NaN/inf"),
    (np.r_[np.full(50, 3.0), -1.0, np.full(49, 3.0)], "negative"),
    (np.full(100, 0.2), "only 20 photons"),
])
def test_bad_data_returns_failure(counts, msg):
    f = fit_decay(counts, bin_ns=0.1)
    assert not f.success
    assert msg in f.message
    assert f.tau_ns == () and math.isnan(f.background)


def test_too_few_bins_for_parameters():
    f = fit_decay(np.full(100, 50.0), bin_ns=0.1, fit_range_ns=(0.0, 0.25), model="bi")
    assert not f.success and "3 bins for 5 free parameters" in f.message


def test_flat_histogram_fails_or_reports_bound():
    f = fit_decay(np.full(200, 50.0), bin_ns=0.1, irf=ModelIRF(2.0, 0.1).histogram(200, 0.1))
    # a flat histogram has no decay: the amplitude goes to 0 (or tau to a bound): flagged
    assert not f.success
    assert "amplitude is 0" in f.message or "undetermined" in f.message


@pytest.mark.parametrize("kwargs,match", [
    ({"model": "quad"}, r"model='quad' must be one of"),
    ({"method": "chi"}, r"method='chi' must be one of"),
    ({"lsq_weights": "x"}, r"lsq_weights='x' must be"),
    ({"intervals": "x"}, r"intervals='x' must be"),
    ({"model": "cascade"}, r"mean_excitations=None must be > 0"),
    ({"qy_ratio": 0.5}, r"qy_ratio=0.5 applies only to model='cascade'"),
    ({"model": "cascade", "mean_excitations": 0.2, "qy_ratio": -1.0},
     r"qy_ratio=-1.0 must be >= 0"),
    ({"n_bootstrap": -1}, r"n_bootstrap=-1 must be >= 0"),
    ({"bin_ns": None}, r"bin_ns=None must be > 0"),
    ({"period_ns": -1.0}, r"period_ns=-1.0 must be > 0"),
    ({"period_ns": 5.0}, r"period_ns=5.0 is shorter than the histogram"),
    ({"fit_range_ns": (5.0, 1.0)}, r"fit_range_ns=\(5.0, 1.0\) must satisfy start < stop"),
    ({"shift_ns": 1.0}, r"shift_ns=1.0 outside shift_bounds_ns"),
    ({"background": "auto"}, r"background='auto' must be 'fit' or a number"),
    ({"background": -1.0}, r"background=-1.0 must be >= 0"),
    ({"fixed_background": np.ones(3)}, r"fixed_background.shape=\(3,\) must equal"),
    ({"irf": np.ones(7)}, r"irf.shape=\(7,\) must be \(100,\)"),
    ({"irf": -np.ones(100)}, r"irf must be finite, >= 0 and have a positive sum"),
    ({"tau0_ns": (1.0, 2.0)}, r"tau0_ns=\(1.0, 2.0\) must give 1 positive lifetimes"),
])
def test_invalid_arguments_raise(kwargs, match):
    counts = np.arange(100, 0, -1, dtype=float)
    kw = {"bin_ns": 0.1, **kwargs}
    with pytest.raises(QrspecError, match=match):
        fit_decay(counts, **kw)


@pytest.mark.parametrize("args,kwargs,match", [
    ((np.ones((2, 3)),), {"bin_ns": 0.1}, r"counts.shape=\(2, 3\) must be one-dimensional"),
    ((np.ones(5), np.arange(4.0)), {}, r"time_ns.shape=\(4,\) must equal counts.shape"),
    ((np.ones(1), np.arange(1.0)), {}, r"counts.size=1 too small"),
    ((np.ones(4), np.array([0.0, 1.0, 3.0, 4.0])), {}, r"time_ns must be uniformly"),
    ((np.ones(4), np.arange(4.0)), {"bin_ns": 0.5}, r"bin_ns=0.5 disagrees"),
])
def test_invalid_axes_raise(args, kwargs, match):
    with pytest.raises(QrspecError, match=match):
        fit_decay(*args, **kwargs)


def _same_fit(a, b):
    """Equal fits: the same code on the same inputs, so equal to rounding (1e-9 relative is
    far below any statistical error; in practice the numbers are identical)."""
    assert (a.success, a.message, a.n_iter, a.model) == (b.success, b.message, b.n_iter, b.model)
    if not a.success:
        return
    for name in ("tau_ns", "tau_err_ns", "amplitudes", "fractions", "fraction_errs"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, err_msg=name)
    for name in ("background", "shift_ns", "deviance", "chi2"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(a.model_counts, b.model_counts, rtol=1e-9)
    np.testing.assert_allclose(a.covariance, b.covariance, rtol=1e-9, equal_nan=True)


def _decay_rows(rng, model, n_bins, bin_ns):
    rows = []
    for n_ph in (20, 300, 3000, 30000, 3000, 500, 80, 10000):
        if model == "mono":
            tau = np.full(n_ph, 3.0)
        else:  # bi: 1 and 5 ns; cascade-like: a fast rise-free XX part
            tau = np.where(rng.random(n_ph) < 0.4, 1.0, 5.0)
        t = 5.0 + rng.normal(0, 0.1, n_ph) + rng.exponential(tau)
        rows.append(np.bincount(np.minimum((np.mod(t, 100.0) / bin_ns).astype(int),
                                           n_bins - 1), minlength=n_bins))
    return np.array(rows)


@pytest.mark.parametrize(("model", "data", "with_irf", "n_threads"), [
    ("mono", "mono", True, 3), ("bi", "bi", True, 2), ("mono", "mono", False, 1),
    ("bi", "bi", False, 4), ("cascade", "bi", False, 2),
    ("bi", "mono", True, 2)])  # bi fits of mono decays: second starts, failures
def test_fit_decays_equal_single_fits(model, data, with_irf, n_threads, monkeypatch):
    """The batched API fits every row as fit_decay does (issue 19): shared setup and start
    values, one kernel call per thread, alternative starts only for the rows that need them."""
    from qrspec.fitting import ModelIRF, fit_decays, lifetime

    monkeypatch.setattr(lifetime, "_BINS_PER_THREAD", 1)  # threads even for this small batch

    rng = np.random.default_rng(7)
    n_bins, bin_ns = 400, 0.25
    irf = ModelIRF(5.0, 0.1).histogram(n_bins, bin_ns) if with_irf else None
    rows = _decay_rows(rng, data, n_bins, bin_ns)
    kw = dict(bin_ns=bin_ns, model=model, period_ns=100.0,
              fit_range_ns=None if with_irf else (6.0, 100.0))
    if model == "cascade":
        kw["mean_excitations"] = 0.3
    batch = fit_decays(rows, irf=irf, n_threads=n_threads, **kw)
    assert len(batch) == len(rows)
    assert not batch[0].success and "min_photons" in batch[0].message  # 20 photons
    for row, b in zip(rows, batch, strict=True):
        _same_fit(b, fit_decay(row, irf=irf, **kw))
    if model == data:
        assert sum(f.success for f in batch) >= len(rows) - 3


def test_fit_decays_errors():
    from qrspec.fitting import fit_decays

    with pytest.raises(QrspecError, match=r"counts.shape=\(5,\) must be \(n_decays, n_bins\)"):
        fit_decays(np.ones(5), bin_ns=1.0)
    with pytest.raises(QrspecError, match=r"n_threads=0 must be a positive integer"):
        fit_decays(np.ones((2, 5)), bin_ns=1.0, n_threads=0)
    with pytest.raises(QrspecError, match=r"fit_decays does not take rng="):
        fit_decays(np.ones((2, 5)), bin_ns=1.0, rng=np.random.default_rng())
    assert fit_decays(np.zeros((0, 5)), bin_ns=1.0) == []


def test_issue_19_repeated_fit_decay_reuses_its_checked_problem(rng):
    """A loop of fit_decay calls with the same arguments builds (and checks) the problem once;
    the reused problem gives exactly the fits of a fresh one, is keyed by content and type (a
    changed array, 30 vs 30.0 in a message, -0.0 vs 0.0), and keeps copies of the arrays."""
    from qrspec.fitting import lifetime as L

    c = photon_decay(rng, 3000, [TAU_NS], bg_fraction=0.1)
    bg = np.full(c.size, 0.5)
    kw = dict(bin_ns=BIN_NS, irf=irf_hist(), fixed_background=bg, fit_range_ns=(1.0, 50.0))
    L._PROBLEMS.clear()
    first = fit_decay(c, **kw)
    n_built = len(L._PROBLEMS)
    again = fit_decay(c, **kw)
    assert len(L._PROBLEMS) == n_built == 1
    L._PROBLEMS.clear()
    fresh = fit_decay(c, **kw)
    for f in (again, fresh):
        assert f.tau_ns == first.tau_ns and f.params == first.params
        np.testing.assert_array_equal(f.covariance, first.covariance)
        np.testing.assert_array_equal(f.model_counts, first.model_counts)
    bg[:] = 5.0  # the caller's array changes: a new problem, the old one kept its copy
    changed = fit_decay(c, **kw)
    assert len(L._PROBLEMS) == 2 and changed.tau_ns != first.tau_ns
    bg[:] = 0.5
    assert fit_decay(c, **kw).params == first.params
    few = c * 0
    few[100] = 3
    assert "min_photons=30)" in fit_decay(few, **kw, min_photons=30).message
    assert "min_photons=30.0)" in fit_decay(few, **kw, min_photons=30.0).message
    assert L._arg_key(-0.0) != L._arg_key(0.0)
    with pytest.raises(L._Unkeyed):
        L._arg_key(object())
    # unkeyed arguments (a long list) are checked every time, not cached
    n = len(L._PROBLEMS)
    fit_decay(c, bin_ns=BIN_NS, irf=list(irf_hist()))
    assert len(L._PROBLEMS) == n


def test_issue_19_cycle_exit_gives_the_result_of_iterating_to_the_limit():
    """fit_rows stops a stalled cycle (the lifetimes of a bi-exponential fit of mono-exponential
    data merge; accepted steps no longer move the point) where the iteration limit would: the
    kernel's own code (py_func) with the exit and with the exit removed give the same numbers,
    bit for bit, and the exit fires on this case."""
    import inspect

    from qrspec.fitting import lifetime as L

    rng = np.random.default_rng(1)
    n, bin_ns = 200, 0.25
    t = rng.exponential(3.0, 30_000) + 2.0
    c = np.bincount(np.minimum((np.mod(t, 50.0) / bin_ns).astype(int), n - 1), minlength=n)
    c = (c + rng.poisson(1.0, n)).astype(float)[None, :]
    prob = L._problem(n, None, bin_ns=bin_ns, model="bi", irf=None, period_ns=None,
                      fit_range_ns=(2.5, 50.0), method="mle", lsq_weights="neyman",
                      background="fit", fixed_background=None, fit_shift=True, shift_ns=0.0,
                      shift_bounds_ns=(-0.2, 0.2), scatter=False, tau0_ns=None,
                      mean_excitations=None, qy_ratio=None, intervals="hessian",
                      n_bootstrap=0, min_photons=30, max_iter=200)
    starts = np.ascontiguousarray(L._start_rows(prob, c)[:, 0])
    src = inspect.getsource(K.fit_rows.py_func)
    src = src[src.index("def fit_rows"):]
    exit_line = "                    n_iter = max_iter\n"
    assert src.count(exit_line) == 1
    spied = src.replace(exit_line, exit_line + "                    fired[0] += 1\n")
    a = src.index("                # cycle exit")
    last = "                    still_lam = lam\n"
    b = src.index(last) + len(last)
    variants = {}
    for name, code in (("exit", spied), ("no_exit", src[:a] + src[b:])):
        ns = dict(vars(K), fired=[0])
        exec(code, ns)  # the kernel's source as Python (it calls the compiled helpers)
        out = [np.empty((1, 5)), np.empty((1, 5, 5)), np.empty((1, n)), np.empty((1, n)),
               np.empty((1, K.R_SIZE))]
        ns["fit_rows"](c, starts, prob.lo, prob.hi, prob.fixed, prob.idx, prob.irf2,
                       prob.fixed2, prob.pmap, prob.spec, prob.fpar, *out)
        variants[name] = (out, ns["fired"][0])
    assert variants["exit"][1] == 1 and variants["no_exit"][1] == 0
    for x, y in zip(variants["exit"][0], variants["no_exit"][0], strict=True):
        np.testing.assert_array_equal(x, y)
    stats = variants["exit"][0][4][0]
    assert stats[K.R_NITER] == 200 and stats[K.R_CONVERGED] == 0
    compiled = [np.empty_like(x) for x in variants["exit"][0]]
    K.fit_rows(c, starts, prob.lo, prob.hi, prob.fixed, prob.idx, prob.irf2, prob.fixed2,
               prob.pmap, prob.spec, prob.fpar, *compiled)
    for x, y in zip(compiled, variants["exit"][0], strict=True):  # libm rounding (see above)
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)


def _fit_bits(f):
    """Every field of a LifetimeFit, floats by their bits and arrays by their bytes."""
    import dataclasses

    def bits(x):
        if isinstance(x, np.ndarray):
            return x.dtype.str, x.shape, x.tobytes()
        if isinstance(x, dict):
            return tuple((k, bits(v)) for k, v in x.items())
        if isinstance(x, (tuple, list)):
            return tuple(bits(v) for v in x)
        if isinstance(x, float):
            return x.hex()
        return type(x).__name__, repr(x)

    return [(fl.name, bits(getattr(f, fl.name))) for fl in dataclasses.fields(f)]


def test_issue_19_fit_decay_one_histogram_path_equals_batch_bit_for_bit(rng):
    """fit_decay fits one histogram by its own path (_fit_one: Python scalars instead of NumPy
    arrays of one row, a tenth of a 32-bin fit's cost); it must give exactly the numbers of the
    batch path (fit_decays) on the same histogram: every field, bit for bit, for successes and
    for each kind of failure, integer and non-integer counts."""
    from qrspec.fitting import fit_decays

    n, bin_ns = 160, 0.25
    irf = irf_hist(n, bin_ns, ModelIRF(5.0, 0.1))
    rows = [photon_decay(rng, n_ph, taus, fr, bg_fraction=0.05, irf=ModelIRF(5.0, 0.1),
                         n_bins=n, bin_ns=bin_ns)
            for n_ph, taus, fr in ((400, [3.0], [1.0]), (20_000, [1.0, 5.0], [0.4, 0.6]),
                                   (60, [3.0], [1.0]), (20, [3.0], [1.0]))]
    rows.append(rows[1] * 0.73 + rng.random(n) / 3)  # non-integer counts: sums need an order
    huge = np.zeros(n)
    huge[60] = 1e301  # a sum above 1e300: fit_decay checks it for overflow
    rows.append(huge)
    rows.append(np.roll(rows[1], 12))  # misaligned with the IRF: shift at its bound
    one_bin = np.zeros(n)
    one_bin[50] = 100.0
    bad_nan, bad_neg = rows[0].copy(), rows[0].copy()
    bad_nan[3], bad_neg[3] = np.nan, -1.0
    rows += [one_bin, bad_nan, bad_neg, np.zeros(n)]
    rows = np.array(rows)
    cases = [dict(model="mono", irf=irf), dict(model="bi", irf=irf),
             dict(model="mono", fit_range_ns=(6.0, 40.0)),
             dict(model="bi", fit_range_ns=(6.0, 40.0)),
             dict(model="mono", irf=irf, scatter=True, method="lsq"),
             dict(model="bi", irf=irf, tau0_ns=(1.0, 4.0), background=0.5, fit_shift=False),
             dict(model="mono", irf=irf, fixed_background=np.full(n, 0.3), max_iter=4),
             dict(model="cascade", irf=irf, mean_excitations=0.3),
             dict(model="mono", irf=irf, intervals="profile"),
             dict(model="bi", fit_range_ns=(6.0, 6.6))]  # 2 bins for 5 parameters
    messages = set()
    for kw in cases:
        batch = fit_decays(rows, bin_ns=bin_ns, n_threads=1, **kw)
        for row, b in zip(rows, batch, strict=True):
            one = fit_decay(row, bin_ns=bin_ns, **kw)
            assert _fit_bits(one) == _fit_bits(b), (kw, b.message)
            messages.add(one.message.split(" ")[0] if one.message else "")
    # the cases reach successes and the failures of the data and of the optimum
    assert {"", "only", "all", "counts", "optimiser", "IRF", "a", "fit"} <= messages


def test_issue_19_new_fit_is_the_dataclass_instance():
    """_new_fit builds a LifetimeFit without the frozen dataclass __init__ (2 us a fit): the
    same attributes in the same order, defaults and fresh default dicts, still frozen."""
    import dataclasses

    from qrspec.fitting import lifetime as L

    assert not hasattr(L.LifetimeFit, "__post_init__")
    full = {f.name: i for i, f in enumerate(dataclasses.fields(L.LifetimeFit))}
    for kw in (full, dict(model="mono", method="mle", success=False, message="x", n_photons=3,
                          n_iter=0), {}):
        a, b = L._new_fit(**kw), L.LifetimeFit(**kw)
        assert list(vars(a).items()) == list(vars(b).items())
    a, b = L._new_fit(), L._new_fit()
    assert a.params == {} and a.params is not b.params and a.param_errs is not b.param_errs
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field"):
        a.tau_ns = (1.0,)


def _vectorised_row_sums(x):
    """Row sums in order (the batch path before rows_start: np.cumsum's last column)."""
    return np.zeros(x.shape[0]) if x.shape[1] == 0 else np.cumsum(x, axis=1)[:, -1]


def _vectorised_start_rows(prob, c):
    """The batch path's start statistics before rows_start (2fcf948): NumPy over (n_rows, n_bins)
    arrays, the reference of the compiled ones; the start vectors are assembled from them by
    the library's own ``_starts_from`` (not what is under test)."""
    from qrspec.fitting import lifetime as L

    idx = prob.idx
    ci = c[:, idx]
    n_rows = c.shape[0]
    if prob.bg_fixed is None:
        n_low = max(1, idx.size // 5)
        low = np.partition(ci, n_low - 1, axis=1)[:, :n_low]
        b0 = np.maximum(_vectorised_row_sums(low) / n_low,
                        0.1 * _vectorised_row_sums(ci) / idx.size)
    else:
        b0 = np.full(n_rows, prob.bg_fixed)
    tau_mean = np.full(n_rows, 10.0 * prob.bin_ns)
    if prob.tau0 is None:
        w = np.maximum(ci[:, prob.after] - b0[:, None], 0.0)
        w_sum = _vectorised_row_sums(w)
        num = _vectorised_row_sums(w * prob.after_bins)
        pos = w_sum > 0
        tau_mean[pos] = num[pos] / w_sum[pos] * prob.bin_ns
        tau_mean = np.minimum(np.maximum(tau_mean, 2.0 * prob.bin_ns), 0.5 * prob.period)
    return L._starts_from(prob, b0, tau_mean)


def test_issue_19_batch_start_kernel_equals_the_vectorised_start(rng, monkeypatch):
    """fit_decays' start values and photon counts come from rows_start (row_start per row, on
    row chunks, no (n_rows, n_bins) temporaries: they made a batch slower per fit than single
    calls on 6250 bins); they must be the former vectorised NumPy start bit for bit, in one
    chunk and in chunks of 1-3 rows, for integer and non-integer counts and every start kind
    (fitted or fixed background, tail fit, fixed lifetimes)."""
    from qrspec.fitting import lifetime as L

    n, bin_ns = 120, 0.25
    irf = irf_hist(n, bin_ns, ModelIRF(5.0, 0.1))
    rows = np.array([photon_decay(rng, n_ph, taus, fr, bg_fraction=0.05, irf=ModelIRF(5.0, 0.1),
                                  n_bins=n, bin_ns=bin_ns)
                     for n_ph in (30, 500, 20_000)
                     for taus, fr in (([3.0], [1.0]), ([1.0, 5.0], [0.4, 0.6]))])
    rows = np.vstack([rows, rows * 0.731 + rng.random(rows.shape) / 3, np.zeros((1, n))])
    rows[-1, 70] = 5.0  # counts in one bin only (after the centroid: w_sum > 0)
    rows = np.vstack([rows, np.zeros((1, n))])  # no counts: tau_mean from its default
    cases = (dict(irf=irf), dict(irf=irf, model="bi"), dict(fit_range_ns=(6.0, 25.0)),
             dict(irf=irf, background=0.7), dict(irf=irf, model="bi", tau0_ns=(1.0, 4.0)),
             dict(irf=irf, fixed_background=np.full(n, 0.3)))
    for kw in cases:
        kw = dict(kw, bin_ns=bin_ns)
        prob = L._problem(n, None, irf=kw.pop("irf", None), **L._with_defaults(kw))
        want = _vectorised_start_rows(prob, rows)
        want_ph = _vectorised_row_sums(rows[:, prob.idx])
        for chunk_bins in (L._START_CHUNK_BINS, 1, 2 * prob.idx.size, 3 * prob.idx.size):
            monkeypatch.setattr(L, "_START_CHUNK_BINS", chunk_bins)
            stats = L._row_stats(prob, rows)
            assert L._start_rows(prob, rows).tobytes() == want.tobytes(), (kw, chunk_bins)
            assert stats[:, 2].tobytes() == want_ph.tobytes()
        low = np.ascontiguousarray(np.partition(rows[:, prob.i0:prob.i1], prob.n_low - 1,
                                                axis=1)[:, :prob.n_low])
        bg = math.nan if prob.bg_fixed is None else prob.bg_fixed
        ref = np.empty_like(stats)
        K.rows_start.py_func(rows, prob.i0, prob.i1, prob.a0, prob.after_bins, low, bg,
                             prob.bin_ns, prob.period, ref)
        assert ref.tobytes() == stats.tobytes()


def test_issue_19_row_start_kernel_equals_python_and_the_batch_start(rng):
    """row_start (the one-histogram checks and start statistics) compiled equals its Python
    source, and its start values and photon counts are the batch path's (_start_rows,
    _row_sums) bit for bit: sums in order, the same maxima and clipping."""
    from qrspec.fitting import lifetime as L

    n, bin_ns = 96, 0.25
    irf = irf_hist(n, bin_ns, ModelIRF(5.0, 0.1))
    base = photon_decay(rng, 3000, [3.0], bg_fraction=0.05, irf=ModelIRF(5.0, 0.1), n_bins=n,
                        bin_ns=bin_ns)
    rows = [base, base * 0.73 + rng.random(n) / 3, np.zeros(n), base + 1e303]
    rows[2][[10, 40]] = 2.0
    bad = base.copy()
    bad[7] = np.nan
    for kw in (dict(irf=irf), dict(fit_range_ns=(6.0, 20.0)), dict(irf=irf, background=0.7)):
        kw = dict(kw, bin_ns=bin_ns)
        prob = L._problem(n, None, irf=kw.pop("irf", None), **L._with_defaults(kw))
        for c in rows + [bad, -base]:
            low = c[prob.i0:prob.i1].copy()
            low.partition(prob.n_low - 1)
            low = low[:prob.n_low]
            bg = math.nan if prob.bg_fixed is None else prob.bg_fixed
            args = (c, prob.i0, prob.i1, prob.a0, prob.after_bins, low, bg, prob.bin_ns,
                    prob.period)
            got = K.row_start(*args)
            with np.errstate(over="ignore"):  # NumPy scalars warn where the kernel does not
                ref = K.row_start.py_func(*args)
            assert [x.hex() for x in got] == [float(x).hex() for x in ref]
            ok, total, n_ph, n_nonzero, b0, tau_mean = got
            ci = c[None, prob.idx]
            assert ok == (c.min() >= 0)
            assert n_ph.hex() == float(_vectorised_row_sums(ci)[0]).hex()
            assert n_nonzero == np.count_nonzero(ci)
            if ok and n_nonzero > 1:  # a histogram that gets start values
                want = _vectorised_start_rows(prob, c[None])[0]
                assert want.tobytes() == L._start_one(prob, b0, tau_mean).tobytes()
