"""Photon pairs against a per-period Python reference and a simulated XX-X cascade."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats._kernels import correlate as kc
from qrspec.stats.pairs import photon_pairs

RES_NS = 0.016


def random_t3(rng, n=400, n_periods=300, n_det=3):
    ts = np.sort(rng.integers(0, n_periods, n))
    det = rng.integers(0, n_det, n)
    nt = rng.integers(0, 6250, n)
    return Photons.from_arrays(ts, det, nt, timestamps_unit=1e-7, nanotimes_unit=16e-12)


def reference(ph, dets, off_bins, gate_bins=None, max_shift=3):
    """Dict per detector: period -> smallest aligned nanotime (gate on aligned nanotimes)."""
    first = [{}, {}]
    for t, d, x in zip(ph.timestamps, ph.detectors, ph.nanotimes.astype(np.int64), strict=True):
        if d not in dets:
            continue
        r = dets.index(d)
        a = x - off_bins[r]
        if gate_bins is not None and not gate_bins[0] <= a < gate_bins[1]:
            continue
        first[r][t] = min(a, first[r].get(t, a))
    common = sorted(set(first[0]) & set(first[1]))
    pairs = [(first[0][s], first[1][s]) for s in common]
    shifted = {k: sum(1 for s in first[0] if s + k in first[1])
               for k in [*range(-max_shift, 0), *range(1, max_shift + 1)]}
    return common, pairs, shifted


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gate=st.booleans())
def test_pairs_match_reference(seed, gate):
    rng = np.random.default_rng(seed)
    ph = random_t3(rng)
    offsets_ns = (0.32, -1.6)  # 20 and -100 bins
    gate_ns = (10.0, 70.0) if gate else None
    pr = photon_pairs(ph, detectors=(2, 0), offsets_ns=offsets_ns, gate_ns=gate_ns,
                      max_shift=3)
    common, pairs, shifted = reference(ph, [2, 0], [20, -100],
                                       (625, 4375) if gate else None)
    assert_array_equal(pr.sync, common)
    expected = np.array(pairs, dtype=np.float64).reshape(-1, 2) * RES_NS
    assert_allclose(pr.nanotimes_ns, expected, rtol=1e-12)
    assert_allclose(pr.t1_ns, expected.min(axis=1), rtol=1e-12)
    assert_allclose(pr.delay_ns, np.abs(expected[:, 0] - expected[:, 1]), rtol=1e-12,
                    atol=1e-12)
    assert_array_equal(pr.first_detector, np.where(expected[:, 0] < expected[:, 1], 2, 0))
    assert_array_equal(pr.shifts, [-3, -2, -1, 1, 2, 3])
    assert_array_equal(pr.n_shifted, [shifted[k] for k in pr.shifts])
    assert pr.shifted_t1_ns.size == pr.n_shifted.sum() == pr.shifted_delay_ns.size
    assert_allclose(pr.offsets_ns, [0.32, -1.6], rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_period_pairs_py_func_and_brute_force(seed):
    """The one-pass kernel against its Python source and a per-period dictionary reference:
    periods with several photons (of one and of both roles), an unused detector, a gate."""
    rng = np.random.default_rng(seed)
    n = 300
    ts = np.sort(rng.integers(0, 120, n))
    det = rng.integers(0, 3, n).astype(np.uint8)
    nt = rng.integers(0, 6000, n).astype(np.uint16)
    role = np.full(256, -1, np.int64)
    role[[2, 0]] = [0, 1]
    lo, hi = np.zeros(256, np.int64), np.full(256, 5000, np.int64)
    lo[0] = 40
    shift = np.zeros(256, np.int64)
    shift[0] = 7
    max_shift = 3
    st_c, st_p = np.empty((3, 2), np.int64), np.empty((3, 2), np.int64)
    args = (ts, nt, det, role, lo, hi, shift, max_shift)
    a, b = kc.period_pairs(*args, st_c), kc.period_pairs.py_func(*args, st_p)
    for x, y in zip(a, b, strict=True):
        assert_array_equal(x, y)
    assert_array_equal(st_c, st_p)
    first = [{}, {}]
    used = np.zeros(2, np.int64)
    count = [{}, {}]
    for t, d, x in zip(ts.tolist(), det.tolist(), nt.tolist(), strict=True):
        r = role[d]
        if r < 0 or not lo[d] <= x < hi[d]:
            continue
        used[r] += 1
        first[r][t] = min(x - shift[d], first[r].get(t, x - shift[d]))
        count[r][t] = count[r].get(t, 0) + 1
    ref = [(s, k, first[0][s], first[1][s + k]) for s in sorted(first[0])
           for k in range(-max_shift, max_shift + 1) if s + k in first[1]]
    assert len(ref) > 50 and min(max(c.values()) for c in count) > 1  # the cases are there
    assert_array_equal(np.stack(a, axis=1), np.array(ref).reshape(-1, 4))
    assert_array_equal(st_c, [used, [len(first[0]), len(first[1])],
                              [sum(c > 1 for c in count[r].values()) for r in range(2)]])


def test_multiple_photons_per_period_counted():
    ph = Photons.from_arrays([5, 5, 5, 9], [0, 0, 1, 1], [300, 100, 200, 50],
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    pr = photon_pairs(ph, offsets_ns=(0, 0))
    assert pr.n_multiple == (1, 0) and pr.n_periods == (1, 2)
    assert_array_equal(pr.sync, [5])
    assert_allclose(pr.nanotimes_ns, [[100 * RES_NS, 200 * RES_NS]], rtol=1e-12)


def cascade(rng, *, n_pulses, p_xx, p_x, tau_xx_ns, tau_x_ns, eff):
    """Per pulse: XX (prob p_xx) emits at Exp(tau_xx) then X after Exp(tau_x); otherwise X only
    (prob p_x). Each photon is detected with probability eff on a random detector."""
    u = rng.random(n_pulses)
    xx = u < p_xx
    x_only = (u >= p_xx) & (u < p_xx + p_x)
    pulses_xx = np.flatnonzero(xx)
    t_xx = rng.exponential(tau_xx_ns, pulses_xx.size)
    t_x = t_xx + rng.exponential(tau_x_ns, pulses_xx.size)
    pulses_x = np.flatnonzero(x_only)
    ts = np.concatenate([pulses_xx, pulses_xx, pulses_x])
    t = np.concatenate([t_xx, t_x, rng.exponential(tau_x_ns, pulses_x.size)])
    keep = (rng.random(ts.size) < eff) & (t < 99.0)
    ts, t = ts[keep], t[keep]
    det = rng.integers(0, 2, ts.size)
    # dead time: one photon per detector per period (keep the first)
    order = np.lexsort((t, det, ts))
    ts, t, det = ts[order], t[order], det[order]
    first = np.r_[True, (ts[1:] != ts[:-1]) | (det[1:] != det[:-1])]
    return Photons.from_arrays(ts[first], det[first], np.floor(t[first] / RES_NS),
                               timestamps_unit=1e-7, nanotimes_unit=16e-12)


def test_cascade_pairs_give_tau_xx_and_tau_x(rng):
    ph = cascade(rng, n_pulses=4_000_000, p_xx=0.02, p_x=0.2, tau_xx_ns=2.0, tau_x_ns=8.0,
                 eff=0.3)
    pr = photon_pairs(ph, offsets_ns=(0, 0))
    n = pr.n_pairs
    # 4e6 * 0.02 * 0.3**2 / 2 = 3600 pairs from one pulse
    assert n > 2000
    # t1 is the XX photon, the delay the X photon; both exponential: sigma of the mean tau/sqrt(n)
    # (4 sigma). The TCSPC floor at 16 ps biases both by -8 ps (t1) / ~0 (delay): far below it.
    assert abs(pr.t1_ns.mean() - 2.0) < 4 * 2.0 / np.sqrt(n)
    assert abs(pr.delay_ns.mean() - 8.0) < 4 * 8.0 / np.sqrt(n)
    # shifted pairs: independent photons; a cascade source is antibunched except for XX-X
    # pairs: ratio ~ E[m(m-1)] / E[m]^2 = 2 * 0.02 / (0.24**2) ~ 0.69
    ratio = pr.pair_ratio
    assert abs(ratio - 2 * 0.02 / 0.24**2) < 4 * ratio * np.sqrt(1 / n + 1 / pr.n_shifted.sum())


def test_default_offsets_from_decays(rng):
    ph = cascade(rng, n_pulses=200_000, p_xx=0.02, p_x=0.2, tau_xx_ns=2.0, tau_x_ns=8.0,
                 eff=0.5)
    shifted = Photons.from_arrays(ph.timestamps, ph.detectors,
                                  ph.nanotimes + 100 * ph.detectors,  # detector 1 1.6 ns later
                                  timestamps_unit=1e-7, nanotimes_unit=16e-12)
    pr = photon_pairs(shifted)
    # the half-maximum rise of a sharp (IRF-free) exponential rise is within 2 bins
    assert abs(pr.offsets_ns[1] - 1.6) <= 2 * RES_NS and pr.offsets_ns[0] == 0


def test_errors(rng):
    ph = random_t3(rng, n=50)
    t2 = Photons.from_arrays([1, 2], [0, 1], timestamps_unit=4e-12)
    cases = [
        (lambda: photon_pairs(t2), r"photon pairs need T3 data"),
        (lambda: photon_pairs(ph.timestamps), r"photons=ndarray must be a Photons object"),
        (lambda: photon_pairs(ph, detectors=(0, 1, 2)), r"detectors=\(0, 1, 2\) must be two"),
        (lambda: photon_pairs(ph, max_shift=0), r"max_shift=0 must be an integer >= 1"),
        (lambda: photon_pairs(ph, offsets_ns=(1.0,)), r"offsets_ns=\(1.0,\) must be two finite"),
        (lambda: photon_pairs(ph, gate_ns=(3, 1)), r"gate_ns=\(3, 1\) must satisfy start"),
    ]
    for call, match in cases:
        with pytest.raises(QrspecError, match=match):
            call()


def test_simulated_heralded_pairs():
    """qrspec.simulate ground truth: realistic dead time, one photon per detector and sync."""
    import qrspec.simulate as sim
    offsets_ns = (312 * RES_NS, 468 * RES_NS)
    tau, qy = (6.0, 1.5, 0.7), (1.0, 0.9, 0.8)
    det = dict(eta_collection=0.5, split=0.55, qe=(0.7, 0.45), dark_cps=(0.0, 0.0),
               afterpulse_prob=(0.0, 0.0), dead_time_ns=(80.0, 80.0), one_photon_per_sync=True,
               irf_sigma_ns=(0.001, 0.001), irf_tail_weight=(0.0, 0.0), offset_ns=offsets_ns)
    cfg = sim.preset("neutral").replace(duration_s=0.3, mean_excitations=0.5,
                                        laser_fwhm_ns=0.0, n_max_cascade=2,
                                        emitter=dict(tau_ns=(tau,), qy=(qy,)), detection=det)
    particle = sim.simulate_particle(cfg, seed=4)
    pr = photon_pairs(particle.photons, offsets_ns=offsets_ns)
    n = pr.n_pairs
    assert n > 5000 and pr.n_multiple == (0, 0)

    def floor_mean(t):  # mean of an exponential quantised down to 16 ps bins
        q = np.exp(-RES_NS / t)
        return RES_NS * q / (1 - q)

    # t1 is the XX photon, the delay the X photon (tau / sqrt(n): sd of an exponential mean)
    assert abs(pr.t1_ns.mean() - floor_mean(tau[1])) < 4 * tau[1] / np.sqrt(n)
    assert abs(pr.delay_ns.mean() - tau[0]) < 4 * tau[0] / np.sqrt(n)
    # truth: the earlier photon of each pair is the XX photon
    tr = particle.truth
    idx = np.searchsorted(particle.photons.timestamps, pr.sync)  # first photon of the period
    assert np.all(tr.pulse[idx] == tr.pulse[idx + 1])
    assert np.all(np.minimum(tr.emission_ns[idx], tr.emission_ns[idx + 1]) < np.maximum(
        tr.emission_ns[idx], tr.emission_ns[idx + 1]))
    # the estimated offsets find the 156-bin detector delay (sharp IRF: to within a bin)
    est = photon_pairs(particle.photons)
    assert abs(est.offsets_ns[1] - (offsets_ns[1] - offsets_ns[0])) <= RES_NS


def test_simulated_accidental_pairs_from_background():
    """X-only emitter (never two photons per pulse) plus dark counts: every same-period pair is
    accidental; the background-window estimate predicts their number, the shifted pairs do not."""
    import qrspec.simulate as sim
    offsets_ns = (312 * RES_NS, 468 * RES_NS)
    det = dict(eta_collection=0.5, split=0.55, qe=(0.7, 0.45), dark_cps=(1e5, 1e5),
               afterpulse_prob=(0.0, 0.0), dead_time_ns=(0.0, 0.0), one_photon_per_sync=False,
               irf_sigma_ns=(0.001, 0.001), irf_tail_weight=(0.0, 0.0), offset_ns=offsets_ns)
    cfg = sim.preset("neutral").replace(duration_s=0.1, mean_excitations=0.5,
                                        laser_fwhm_ns=0.0, n_max_cascade=1,
                                        emitter=dict(tau_ns=((6.0, 1.5, 0.7),),
                                                     qy=((1.0, 0.9, 0.8),)), detection=det)
    particle = sim.simulate_particle(cfg, seed=5)
    pr = photon_pairs(particle.photons, offsets_ns=offsets_ns)
    origin = particle.truth.origin
    idx = np.searchsorted(particle.photons.timestamps, pr.sync)
    assert np.all((origin[idx] == 0) | (origin[idx + 1] == 0))  # truth: a dark photon in each
    # dark rate per detector and period: 1e5 cps * 100 ns = 0.01; the 8 ns pre-rise window of
    # 1e6 periods holds ~800 counts: 3.5 % Poisson error (4 sigma: 14 %)
    assert_allclose(pr.background_probability, 0.01, rtol=0.14)
    # pair count (Poisson) against the expectation (3.5 % error from the window), 4 sigma
    e = pr.expected_accidental
    assert abs(pr.n_pairs - e) < 4 * np.sqrt(e + (0.035 * e) ** 2)
    assert pr.shifted_mean > 3 * pr.n_pairs  # independent signal pairs: not the accidentals
    # a gate over half the period keeps half of the flat background
    gated = photon_pairs(particle.photons, offsets_ns=offsets_ns, gate_ns=(0.0, 50.0))
    assert_allclose(gated.background_probability, 0.5 * pr.background_probability, rtol=1e-12)
