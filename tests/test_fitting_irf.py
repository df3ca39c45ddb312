"""IRF helpers: modelled IRF histogram, normalisation, statistics, model fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.fitting import ModelIRF, fit_model_irf, irf_stats, normalize_irf


def test_model_irf_histogram_moments():
    irf = ModelIRF(5.0, 0.06, tail_weight=0.2, tail_tau_ns=0.3)
    h = irf.histogram(6250, 0.016)
    assert h.sum() == pytest.approx(1.0, rel=1e-12)
    assert h.min() >= 0
    t = (np.arange(6250) + 0.5) * 0.016
    # mean of Gaussian + w * Exp(tail): t0 + w tau_tail (bin-centre quadrature: exact to ~1e-6)
    assert (h * t).sum() == pytest.approx(5.0 + 0.2 * 0.3, abs=1e-5)
    var = (h * (t - (h * t).sum()) ** 2).sum()
    # Var = s^2 + w(2 - w) tau^2 (mixture of N(0,s^2) and N(0,s^2)+Exp), + bin^2/12 (binning)
    assert var == pytest.approx(0.06**2 + 0.2 * 1.8 * 0.09 + 0.016**2 / 12, rel=1e-4)


def test_model_irf_wraps_around_the_period():
    h = ModelIRF(0.0, 0.1).histogram(100, 0.05)  # centred on the period boundary
    assert h[:10].sum() == pytest.approx(h[-10:].sum(), rel=1e-9)  # half on each side
    assert h.sum() == pytest.approx(1.0, rel=1e-12)


def test_irf_stats_of_a_gaussian():
    h = ModelIRF(3.0, 0.1).histogram(1000, 0.01)
    st = irf_stats(h, 0.01)
    # FWHM 2.3548 sigma; linear interpolation of the half-maximum crossings on 0.01 ns bins
    assert st.fwhm_ns == pytest.approx(2.3548 * 0.1, rel=0.01)
    assert st.centroid_ns == pytest.approx(3.0, abs=1e-6)
    assert abs(st.peak_ns - 3.0) <= 0.01


def test_normalize_irf_subtracts_background_and_pads(rng):
    h = ModelIRF(3.0, 0.1).histogram(200, 0.05) * 1e5
    counts = h + 7.0
    out = normalize_irf(counts, background=7.0, n_bins=300)
    assert out.size == 300 and out[200:].sum() == 0
    # (h + 7) - 7 loses the far tails below ~1e-15 of 7: compare with an absolute floor
    np.testing.assert_allclose(out[:200], h / h.sum(), rtol=1e-12, atol=1e-19)
    auto = normalize_irf(rng.poisson(counts))
    assert auto[:40].max() < 1e-3  # flat floor removed (auto background = low-quartile mean)
    raw = normalize_irf(counts, background=None)
    assert raw.sum() == pytest.approx(1.0)


def test_fit_model_irf_recovers_parameters(rng):
    true = ModelIRF(3.02, 0.08, tail_weight=0.15, tail_tau_ns=0.4)
    mu = 2e5 * true.histogram(400, 0.016) + 2.0
    fitted = fit_model_irf(rng.poisson(mu), 0.016)
    # 2e5 counts: statistical errors ~ sigma/sqrt(N) ~ 2e-4 ns; bounds allow for the strong
    # correlation of tail weight, tail tau and t0 (a few %)
    assert fitted.t0_ns == pytest.approx(3.02, abs=0.005)
    assert fitted.sigma_ns == pytest.approx(0.08, rel=0.03)
    assert fitted.tail_weight == pytest.approx(0.15, abs=0.03)
    assert fitted.tail_tau_ns == pytest.approx(0.4, rel=0.15)


@pytest.mark.parametrize("kwargs,match", [
    ({"t0_ns": 1.0, "sigma_ns": 0.0}, r"sigma_ns=0.0 must be > 0"),
    ({"t0_ns": 1.0, "sigma_ns": 0.1, "tail_weight": 1.0}, r"tail_weight=1.0 must be in \[0, 1\)"),
    ({"t0_ns": 1.0, "sigma_ns": 0.1, "tail_tau_ns": -1.0}, r"tail_tau_ns=-1.0 must be > 0"),
])
def test_model_irf_rejects_bad_parameters(kwargs, match):
    with pytest.raises(QrspecError, match=match):
        ModelIRF(**kwargs)


def test_irf_functions_reject_bad_input():
    with pytest.raises(QrspecError, match=r"n_bins=0 and bin_ns=0.1 must be positive"):
        ModelIRF(1.0, 0.1).histogram(0, 0.1)
    with pytest.raises(QrspecError, match=r"irf_counts.shape=\(1,\) must be one-dimensional"):
        normalize_irf([1.0])
    with pytest.raises(QrspecError, match=r"irf_counts contains NaN or inf"):
        normalize_irf([1.0, math.nan])
    with pytest.raises(QrspecError, match=r"background='x' must be a number"):
        normalize_irf([1.0, 2.0], background="x")
    with pytest.raises(QrspecError, match=r"irf_counts has no counts above background"):
        normalize_irf([1.0, 1.0], background=5.0)
    with pytest.raises(QrspecError, match=r"n_bins=1 is shorter than the IRF"):
        normalize_irf([1.0, 2.0], n_bins=1)
    with pytest.raises(QrspecError, match=r"irf.shape=\(2,\) must be 1-D, >= 3 bins"):
        irf_stats([1.0, 2.0], 0.1)
    with pytest.raises(QrspecError, match=r"irf_counts.shape=\(3,\) must be 1-D, >= 8 finite"):
        fit_model_irf([1.0, 2.0, 3.0], 0.1)
    with pytest.raises(QrspecError, match=r"bin_ns=0 must be > 0"):
        fit_model_irf(np.ones(10), 0)
