"""Tests of afterpulsing (qrspec.stats.afterpulsing) and pile-up / dead time (fitting.pileup)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.fitting.pileup import (
    P_DET_LIMIT_POISSON,
    P_DET_LIMIT_SINGLE,
    coates_correction,
    dead_time_check,
    first_photon_counts,
)
from qrspec.photons import Photons
from qrspec.stats._kernels.afterpulse import pair_counts, tagged_nanotime_histograms
from qrspec.stats.afterpulsing import (
    correct_g2,
    estimate_afterpulsing,
    gated_probability,
)

UNIT = 1e-7  # 10 MHz


def two_detector_photons(rng, rate_per_period, n_periods, p_ap=(0.0, 0.0), delay_periods=5.0):
    """Independent Poisson photons on two detectors (at most one per period and detector) plus
    afterpulses: each photon of detector d is followed, with probability p_ap[d], by one on the
    same detector 1 + Exp(delay_periods) periods later."""
    ts, det = [], []
    n_ap = [0, 0]
    for d in (0, 1):
        s = np.flatnonzero(rng.random(n_periods) < rate_per_period)
        hit = rng.random(s.size) < p_ap[d]
        a = s[hit] + 1 + np.floor(rng.exponential(delay_periods, hit.sum())).astype(np.int64)
        a = a[a < n_periods]
        n_ap[d] = a.size
        ts += [s, a]
        det += [np.full(s.size, d), np.full(a.size, d)]
    ts = np.concatenate(ts)
    det = np.concatenate(det)
    ph = Photons.from_arrays(ts, det, np.zeros(ts.size, np.int64), timestamps_unit=UNIT,
                             nanotimes_unit=16e-12)
    return ph, np.asarray(n_ap) / np.bincount(ph.detectors)


def test_pair_kernel_against_brute_force(rng):
    sync = np.sort(rng.integers(0, 300, 300))
    code = rng.integers(-1, 2, 300).astype(np.int8)  # -1: another detector, skipped
    nt = rng.integers(0, 50, 300)
    ref = np.zeros((2, 2, 8), np.int64)
    hist = np.zeros((2, 2, 50), np.int64)
    for i in range(300):
        for j in range(i + 1, 300):
            k = sync[j] - sync[i]
            if code[i] >= 0 and code[j] >= 0 and k <= 7:
                ref[code[i], code[j], k] += 1
                if k >= 1:
                    hist[code[i], code[j], nt[j]] += 1
    assert_array_equal(pair_counts(sync, code, 7), ref)
    assert_array_equal(pair_counts.py_func(sync, code, 7), ref)
    assert_array_equal(tagged_nanotime_histograms(sync, code, nt, 7, 50), hist)


def test_afterpulse_probability_recovered(rng):
    ph, truth = two_detector_photons(rng, 2e-3, 5_000_000, p_ap=(0.02, 0.005))
    est = estimate_afterpulsing(ph, max_lag_s=100 * UNIT)  # delays 1 + Exp(5): all < 100
    # pulls within 3 sd (errors from Poisson pair counts)
    assert np.all(np.abs(est.probability - truth) < 3 * est.probability_err)
    assert est.probability_err[0] == pytest.approx(est.probability_err[1], rel=0.2)
    assert est.significant().tolist() == [True, True] or est.probability[1] < 3e-3
    # the delay profile: afterpulses sit 1 + Exp(5) periods after their parent, so the
    # excess of the first 3 periods is ~ the excess of periods 4-20 times
    # (1 - e^-3/5)/(e^-3/5 - e^-20/5) ~ 0.86 (noisy: only its sign and size are checked)
    assert est.excess.shape == (2, 100)
    assert est.excess[0, :3].sum() > 0 and est.excess[0, 3:20].sum() > 0
    assert_allclose(est.lag_s[:2], [UNIT, 2 * UNIT])


def test_no_afterpulses_gives_zero_within_error(rng):
    ph, _ = two_detector_photons(rng, 2e-3, 5_000_000)
    est = estimate_afterpulsing(ph, max_lag_s=100 * UNIT)
    assert np.all(np.abs(est.probability) < 3 * est.probability_err)
    assert not est.significant().any()
    assert_array_equal(est.same_period_pairs, [0, 0])


def test_afterpulsing_of_simulated_detectors():
    simulate = pytest.importorskip("qrspec.simulate")
    from qrspec.simulate.particle import ORIGIN_CODE

    cfg = simulate.preset("neutral", duration_s=5.0).replace(
        detection=dict(afterpulse_prob=(0.02, 0.0)))
    sim = simulate.simulate_particle(cfg, seed=4)
    est = estimate_afterpulsing(sim.photons)
    tr = sim.truth
    k = tr.arrival_sync - tr.arrival_sync[np.maximum(tr.parent, 0)]
    ap = (tr.origin == ORIGIN_CODE["afterpulse"]) & (k >= 1) & (k <= est.max_lag_periods)
    truth = [np.sum(ap & (sim.photons.detectors == d)) / np.sum(sim.photons.detectors == d)
             for d in (0, 1)]
    assert truth[1] == 0.0
    assert np.all(np.abs(est.probability - truth) < 3 * est.probability_err)


def test_g2_correction_inverts_the_afterpulse_pairs():
    for g in (0.05, 0.3, 1.0):
        p = (0.02, 0.01)
        measured = (g + sum(p)) / (1 + sum(p))
        c = correct_g2(measured, 0.01, p)
        assert c.g2_zero == pytest.approx(g)
        assert c.bias == pytest.approx(sum(p) * (1 - g) / (1 + sum(p)))
        assert c.matters == (abs(c.bias) > 0.005)
    c = correct_g2(0.1, 0.02, (0.01, 0.01), (0.002, 0.002))
    assert c.g2_zero_err == pytest.approx(math.hypot(0.02 * 1.02, 0.9 * math.hypot(0.002,
                                                                                   0.002)))


def test_gated_probability_scales_by_the_gate():
    ph_est = estimate_afterpulsing(two_detector_photons(np.random.default_rng(1), 2e-3,
                                                        1_000_000, (0.02, 0.02))[0],
                                   max_lag_s=50 * UNIT)
    p, e = gated_probability(ph_est, (10.0, 60.0), (0.25, 0.5))
    assert_allclose(p, ph_est.probability * 0.5 / np.array([0.25, 0.5]))
    assert_allclose(e, ph_est.probability_err * 0.5 / np.array([0.25, 0.5]))
    with pytest.raises(QrspecError, match=r"photons_in_gate_fraction=\(0.0, 0.5\) must be two"):
        gated_probability(ph_est, (10.0, 60.0), (0.0, 0.5))


def test_afterpulsing_input_checks(rng):
    ph, _ = two_detector_photons(rng, 1e-3, 10_000)
    with pytest.raises(QrspecError, match=r"photons=list must be a Photons object"):
        estimate_afterpulsing([1, 2])
    t2 = Photons.from_arrays([1, 2, 3], [0, 1, 0], timestamps_unit=1e-12)
    with pytest.raises(QrspecError, match=r"afterpulsing needs T3 data"):
        estimate_afterpulsing(t2)
    with pytest.raises(QrspecError, match=r"detectors=\(0, 0\) must be two different"):
        estimate_afterpulsing(ph, detectors=(0, 0))
    with pytest.raises(QrspecError, match=r"max_lag_s=1e-08 must be a finite number >= one"):
        estimate_afterpulsing(ph, max_lag_s=1e-8)
    with pytest.raises(QrspecError, match=r"detector 2 has no photons"):
        estimate_afterpulsing(ph, detectors=(0, 2))
    with pytest.raises(QrspecError, match=r"p=\(0.1,\) and p_err=\(0.0, 0.0\) must be pairs"):
        correct_g2(0.1, 0.01, (0.1,))
    with pytest.raises(QrspecError, match=r"must be finite with p0 \+ p1 > -1"):
        correct_g2(0.1, 0.01, (math.nan, 0.0))


# ---------------------------------------------------------------- pile-up and dead time
def poisson_first_photon(rng, mu, tau_bins, n_bins, n_periods):
    """Recorded histogram of Poisson light (mean mu photons per period, exponential delays)
    with one photon per period (the first), and the true expected counts per bin."""
    k = rng.poisson(mu, n_periods)
    n = int(k.sum())
    delays = np.minimum(np.floor(rng.exponential(tau_bins, n)).astype(np.int64), n_bins - 1)
    period = np.repeat(np.arange(n_periods), k)
    first = np.full(n_periods, n_bins, np.int64)
    np.minimum.at(first, period, delays)
    rec = np.bincount(first[first < n_bins], minlength=n_bins)
    p = np.diff(-np.exp(-np.arange(n_bins + 1) / tau_bins))
    p[-1] += np.exp(-n_bins / tau_bins)
    return rec, mu * n_periods * p


def test_coates_recovers_poisson_light(rng):
    rec, true = poisson_first_photon(rng, 0.5, 20.0, 200, 400_000)
    corr = coates_correction(rec, 400_000)
    # recorded counts are biased low at late bins by ~exp(-mu F): > 20 % at the end
    assert rec[150:].sum() < 0.85 * true[150:].sum()
    # corrected: within Poisson errors (sqrt of counts, inflated by 1/(live fraction))
    sel = true > 100
    z = (corr[sel] - true[sel]) / np.sqrt(true[sel] / np.exp(-0.5) )
    assert np.abs(np.mean(z)) < 0.3 and np.std(z) < 1.5
    assert_allclose(first_photon_counts(corr, 400_000), rec, rtol=1e-9, atol=1e-9)


def test_coates_rejects_impossible_counts():
    with pytest.raises(QrspecError, match=r"counts exceed the periods still live"):
        coates_correction([5, 6], 10)
    with pytest.raises(QrspecError, match=r"n_periods=0 must be a finite number > 0"):
        coates_correction([1, 2], 0)
    with pytest.raises(QrspecError, match=r"counts must be a non-empty 1-D array"):
        first_photon_counts([[1.0]], 10)


def test_dead_time_check_flags_bright_particles(rng):
    ph, _ = two_detector_photons(rng, 0.08, 200_000)
    chk = dead_time_check(ph, single_emitter=False)
    assert chk.flagged and chk.limit == P_DET_LIMIT_POISSON
    assert_allclose(chk.p_det, 0.08, rtol=0.05)
    assert "coates_correction applies" in chk.message
    single = dead_time_check(ph, single_emitter=True)  # 0.08 < 0.13: checked unbiased
    assert not single.flagged and single.limit == P_DET_LIMIT_SINGLE and single.message == ""
    bright, _ = two_detector_photons(rng, 0.2, 100_000)
    assert "beyond the range" in dead_time_check(bright, single_emitter=True).message
    dim, _ = two_detector_photons(rng, 0.01, 200_000)
    assert not dead_time_check(dim, single_emitter=False).flagged
    with pytest.raises(QrspecError, match=r"limit=0 must be in \(0, 1\]"):
        dead_time_check(dim, single_emitter=True, limit=0)
    with pytest.raises(QrspecError, match=r"dead_time_check needs T3 data"):
        dead_time_check(Photons.from_arrays([1, 2], [0, 1], timestamps_unit=1e-12),
                        single_emitter=True)
    with pytest.raises(QrspecError, match=r"photons=int must be a Photons object"):
        dead_time_check(3, single_emitter=True)


def test_afterpulse_profile_corrects_the_lifetime():
    """Simulated rod with 5 % afterpulsing: the measured nanotime profile matches the truth
    away from the decay peak, and as a fixed background it removes most of the tau_X bias."""
    simulate = pytest.importorskip("qrspec.simulate")
    from qrspec.analysis.decay_fits import FIT_BIN_NS, TAIL_START_NS
    from qrspec.analysis.decay_fits import whole_bins as _whole_bins
    from qrspec.fitting.lifetime import fit_decay
    from qrspec.simulate.particle import ORIGIN_CODE
    from qrspec.stats.afterpulsing import afterpulse_nanotime_profile, aligned_profile
    from qrspec.stats.decay import decay_histogram

    def tau(dec, fixed=None):
        counts, t = _whole_bins(dec)
        kw = dict(time_ns=t, period_ns=dec.period_ns, background="fit",
                  fit_range_ns=(dec.t0_ns + TAIL_START_NS, dec.period_ns))
        if fixed is not None:
            kw["fixed_background"] = fixed[: counts.size]
        # the pipeline's model: bi-exponential tail (X and XX), tau_X the long component
        f = fit_decay(counts, model="bi", **kw)
        k = int(np.argmax(f.tau_ns))
        return f.tau_ns[k], f.tau_err_ns[k]

    taus = {}
    for p in (0.0, 0.05):
        cfg = simulate.preset("neutral", duration_s=10.0).replace(
            detection=dict(afterpulse_prob=(p, p)))
        sim = simulate.simulate_particle(cfg, seed=8)
        ph = sim.photons
        dec = decay_histogram(ph, detectors=(0, 1), bin_ns=FIT_BIN_NS)
        taus[p] = tau(dec)
    est = estimate_afterpulsing(ph)
    assert est.significant().all()
    prof = afterpulse_nanotime_profile(ph, est)
    assert prof.shape == (2, ph.nanotime_bins_per_period) and prof.min() >= 0
    nb = ph.nanotime_bins_per_period
    ap = sim.truth.origin == ORIGIN_CODE["afterpulse"]
    truth = np.vstack([np.bincount(ph.nanotimes[ap & (ph.detectors == d)], minlength=nb)[:nb]
                       for d in (0, 1)])
    # 20-80 ns (away from the decay peak at ~5-15 ns and the wrap): within 15 % in 20 ns bins
    # (truth ~1500 per 20 ns bin per detector: Poisson 3 %, the estimate's noise ~8 %)
    sl = slice(int(20 / 0.016), int(80 / 0.016))
    got = prof[:, sl].reshape(2, 3, -1).sum(axis=2)
    ref = truth[:, sl].reshape(2, 3, -1).sum(axis=2)
    assert_allclose(got, ref, rtol=0.15)
    corrected, err = tau(dec, aligned_profile(prof, dec))
    raw_shift = taus[0.05][0] - taus[0.0][0]
    assert raw_shift > 3 * taus[0.05][1]  # uncorrected: biased by several standard errors
    assert abs(corrected - taus[0.0][0]) < 0.35 * raw_shift  # most of the bias removed
    with pytest.raises(QrspecError, match=r"profile shape \(2, 3\) must be \(2, 6250\)"):
        aligned_profile(np.zeros((2, 3)), dec)
    with pytest.raises(QrspecError, match=r"coarse_ns=0 must be a finite number > 0"):
        afterpulse_nanotime_profile(ph, est, coarse_ns=0)
