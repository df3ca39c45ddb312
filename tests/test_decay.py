"""Decay histograms, sliced decays and FLID against per-photon NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats._kernels import histogram as kh
from qrspec.stats._kernels import trace as kt
from qrspec.stats.decay import (
    DecayAccumulator,
    background_counts,
    decay_histogram,
    estimate_offsets_bins,
    flid,
    sliced_decays,
)
from qrspec.stats.trace import intensity_trace

P = 6250  # TCSPC bins per 100 ns period at 16 ps


def random_t3(rng, n=3000, n_periods=200_000, n_det=2, nt_max=P):
    ts = np.sort(rng.integers(0, n_periods, n))
    det = rng.integers(0, n_det, n)
    nt = rng.integers(0, nt_max, n)
    return Photons.from_arrays(ts, det, nt, timestamps_unit=1e-7, nanotimes_unit=16e-12)


def decay_photons(rng, n=100_000, rises_ns=(2.0, 3.5), tau_ns=5.0, sigma_ns=0.05,
                  bg_fraction=0.0, n_periods=10**7):
    """Photons with a Gaussian IRF at each detector's rise, exponential decay, flat background."""
    det = rng.integers(0, len(rises_ns), n)
    t = np.asarray(rises_ns)[det] + rng.normal(0, sigma_ns, n) + rng.exponential(tau_ns, n)
    bg = rng.random(n) < bg_fraction
    t[bg] = rng.uniform(0, 100, bg.sum())
    nt = np.floor(t / 0.016).astype(np.int64) % P
    ts = np.sort(rng.integers(0, n_periods, n))
    return Photons.from_arrays(ts, det, nt, timestamps_unit=1e-7, nanotimes_unit=16e-12)


def reference_decay(ph, dets, off_bins, r):
    """Per-photon alignment (nanotime - offset) mod P, then integer rebinning by r."""
    n_out = -(-P // r)
    out = np.zeros((len(dets), n_out), np.int64)
    for i, d in enumerate(dets):
        a = (ph.nanotimes[ph.detectors == d].astype(np.int64) - off_bins[i]) % P
        out[i] = np.bincount(a // r, minlength=n_out)
    return out


# ------------------------------------------------------------------ decay_histogram
@pytest.mark.parametrize("bin_ns", [None, 0.016, 0.1, 1.0])
def test_decay_matches_reference_with_given_offsets(rng, bin_ns):
    ph = random_t3(rng, n_det=3, nt_max=7000)  # some nanotimes beyond the period: wrapped
    offsets_ns = [0.0, -0.8, 99.2]  # -50 and +6200 bins: photons wrap both ways
    d = decay_histogram(ph, detectors=[0, 1, 2], bin_ns=bin_ns, offsets_ns=offsets_ns)
    r = 1 if bin_ns is None else round(bin_ns / 0.016)
    assert d.bin_ns == pytest.approx(r * 0.016, rel=1e-12)
    assert_array_equal(d.counts_per_detector, reference_decay(ph, [0, 1, 2], [0, -50, 6200], r))
    assert d.counts.sum() == ph.size  # wrap-around loses nothing
    assert not d.offsets_estimated
    assert_allclose(d.offsets_ns, [0.0, -0.8, -0.8], rtol=1e-12)  # 6200 bins = -50 (mod P)
    assert d.edges_ns[0] == 0 and d.edges_ns[-1] == pytest.approx(100.0, rel=1e-12)
    assert d.period_ns == pytest.approx(100.0, rel=1e-12)
    assert_array_equal(d.time_ns, d.edges_ns[:-1])


def test_estimated_offsets_recover_detector_shift(rng):
    ph = decay_photons(rng)
    d = decay_histogram(ph)
    assert d.offsets_estimated and d.detectors == (0, 1)
    # rise positions 2.0 and 3.5 ns: the half-maximum rise on 50k photons per detector with a
    # 0.05 ns IRF is good to a few 16 ps bins (0.05 ns = one IRF sigma)
    assert d.offsets_ns[0] == 0
    assert abs(d.offsets_ns[1] - 1.5) < 0.05
    assert abs(d.t0_ns - 2.0) < 0.05
    aligned = decay_histogram(ph, offsets_ns=d.offsets_ns)
    assert_array_equal(aligned.counts, d.counts)


def test_estimate_offsets_bins_skips_sparse_rows(caplog):
    folded = np.zeros((2, 100), np.int64)
    folded[0, 40:60] = 50
    folded[1, 10] = 5  # < 200 photons
    off = estimate_offsets_bins(folded, 0.016)
    # a step from 0 to 50 between bins 39 and 40, smoothed (centred) over 7 bins: the
    # half-maximum of the smoothed ramp is the step, within one bin
    assert off[1] == 0 and abs(off[0] - 40) <= 1
    ph = Photons.from_arrays(np.arange(300), np.r_[np.zeros(299), 1], np.full(300, 100),
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    d = decay_histogram(ph)
    assert d.offsets_ns[1] == 0 and "detector 1 has < 200 photons" in caplog.text


def test_kernels_py_func_match_compiled(rng):
    ph = random_t3(rng, n=300)
    row = np.full(256, -1, np.int64)
    row[[0, 1]] = [1, 0]
    a = kh.nanotime_counts(ph.detectors, ph.nanotimes, row, np.zeros((2, P), np.int64))
    b = kh.nanotime_counts.py_func(ph.detectors, ph.nanotimes, row, np.zeros((2, P), np.int64))
    assert_array_equal(a, b)
    seg = (np.array([0, 50_000]), np.array([40_000, 120_000]), np.array([1, 0]))
    n_out = -(-P // 7)
    raw = np.arange(1 << 16)
    bin_of = np.stack([((raw - o) % P) // 7 for o in (3, 6000)]).astype(np.int32)
    args = (ph.timestamps, ph.detectors, ph.nanotimes, row, bin_of, *seg)
    a = kh.segment_aligned_counts(*args, np.zeros((2, n_out), np.int64),
                                  np.zeros(n_out, np.int64))
    b = kh.segment_aligned_counts.py_func(*args, np.zeros((2, n_out), np.int64),
                                          np.zeros(n_out, np.int64))
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])
    assert a[0].sum() + a[1].sum() == ph.size
    seen = kt.detectors_seen(ph.detectors, np.zeros(256, np.bool_))
    assert_array_equal(seen, kt.detectors_seen.py_func(ph.detectors, np.zeros(256, np.bool_)))
    assert_array_equal(np.flatnonzero(seen), np.unique(ph.detectors))
    shift = np.full(256, -1, np.int64)
    shift[[0, 1]] = [3, 6000]
    args = (ph.timestamps, ph.detectors, ph.nanotimes, shift, P, int(ph.timestamps[0]), 999)
    n = (ph.timestamps[-1] - ph.timestamps[0]) // 999 + 1
    a = kh.bin_delay_sums(*args, np.zeros(n, np.int64), np.zeros(n, np.int64))
    b = kh.bin_delay_sums.py_func(*args, np.zeros(n, np.int64), np.zeros(n, np.int64))
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_cuts=st.integers(0, 5))
def test_decay_chunked_equals_whole(seed, n_cuts):
    rng = np.random.default_rng(seed)
    ph = random_t3(rng, n=int(rng.integers(1, 500)), n_det=3)
    whole = decay_histogram(ph, bin_ns=0.2, offsets_ns=None)
    cuts = np.sort(rng.integers(0, ph.size + 1, n_cuts))
    acc = DecayAccumulator()
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, ph.size], strict=True):
        acc.add(Photons.from_arrays(ph.timestamps[a:b], ph.detectors[a:b], ph.nanotimes[a:b],
                                    timestamps_unit=1e-7, nanotimes_unit=16e-12))
    part = acc.result(bin_ns=0.2)
    assert_array_equal(part.counts_per_detector, whole.counts_per_detector)
    assert part.detectors == whole.detectors
    assert part.counts.sum() == ph.size


@pytest.mark.realdata
def test_realdata_decay_chunks(realdata):
    from qrspec.io import iter_tttr, read_tttr

    path = realdata / "pqsample_hh_v20_t3.ptu"
    if not path.exists():
        pytest.skip(f"{path} absent")
    ph = read_tttr(path)
    whole = decay_histogram(ph)
    assert whole.counts.sum() == ph.size
    part = decay_histogram(iter_tttr(path, chunk_records=10_000))
    assert_array_equal(part.counts_per_detector, whole.counts_per_detector)
    assert_array_equal(part.offsets_ns, whole.offsets_ns)


# ------------------------------------------------------------------ sliced decays
def test_sliced_by_intensity_matches_per_photon_reference(rng):
    ph = decay_photons(rng, n=20_000, n_periods=200_000)
    ranges = [(0, 95), (95, 105), (120, 10**6)]
    s = sliced_decays(ph, bin_width_s=1e-3, intensity_ranges=ranges, bin_ns=0.1)
    trace = intensity_trace(ph, 1e-3)
    k = (ph.timestamps - trace.start_tick) // trace.bin_ticks
    c = trace.counts[k]  # count of each photon's bin
    off = np.rint(s.total.offsets_ns / 0.016).astype(np.int64)
    for j, (lo, hi) in enumerate(ranges):
        sel = (c >= lo) & (c < hi)
        sub = Photons.from_arrays(ph.timestamps[sel], ph.detectors[sel], ph.nanotimes[sel],
                                  timestamps_unit=1e-7, nanotimes_unit=16e-12)
        ref = reference_decay(sub, [0, 1], off, round(0.1 / 0.016)).sum(axis=0)
        assert_array_equal(s.counts[j], ref)
        assert s.n_time_bins[j] == np.count_nonzero((trace.counts >= lo) & (trace.counts < hi))
    assert_array_equal(s.counts.sum(axis=0) + s.unassigned, s.total.counts)
    assert s.labels == tuple(ranges) and s.bin_width_s == pytest.approx(1e-3)
    assert_allclose(s.duration_s, s.n_time_bins * 1e-3, rtol=1e-12)
    assert_array_equal(s.n_photons, s.counts.sum(axis=1))
    assert_array_equal(s.edges_ns, s.total.edges_ns)


def test_sliced_by_levels_and_windows(rng):
    ph = random_t3(rng, n=2000, n_periods=100_000)
    trace = intensity_trace(ph, 1e-3)
    levels = rng.integers(-1, 3, trace.n_bins)
    s = sliced_decays(ph, bin_width_s=1e-3, levels=levels, offsets_ns=[0, 0])
    k = (ph.timestamps - trace.start_tick) // trace.bin_ticks
    for j in range(3):
        sel = levels[k] == j
        assert_array_equal(s.counts[j], np.bincount(ph.nanotimes[sel], minlength=P))
    assert_array_equal(s.unassigned, np.bincount(ph.nanotimes[levels[k] == -1], minlength=P))
    # windows 0 and 2 share label 0
    windows = [(1e-3, 2e-3), (4e-3, 5.5e-3), (7e-3, 7.1e-3)]
    w = sliced_decays(ph, time_windows_s=windows, window_labels=[0, 1, 0], offsets_ns=[0, 0])
    t = ph.timestamps
    in0 = ((t >= 10_000) & (t < 20_000)) | ((t >= 70_000) & (t < 71_000))
    in1 = (t >= 40_000) & (t < 55_000)
    assert_array_equal(w.counts[0], np.bincount(ph.nanotimes[in0], minlength=P))
    assert_array_equal(w.counts[1], np.bincount(ph.nanotimes[in1], minlength=P))
    assert_array_equal(w.n_time_bins, [2, 1])
    assert_allclose(w.duration_s, [1.1e-3, 1.5e-3], rtol=1e-9)
    assert w.bin_width_s is None


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), edges=st.lists(st.integers(0, 40), min_size=2,
                                                        max_size=5, unique=True))
def test_sliced_decays_sum_to_total(seed, edges):
    rng = np.random.default_rng(seed)
    ph = random_t3(rng, n=int(rng.integers(1, 600)), n_periods=50_000)
    e = sorted(edges)
    ranges = list(zip(e[:-1], e[1:], strict=True))
    s = sliced_decays(ph, bin_width_s=2e-4, intensity_ranges=ranges)
    assert_array_equal(s.counts.sum(axis=0) + s.unassigned, s.total.counts)
    assert s.total.counts.sum() == ph.size
    assert_array_equal(s.total.counts, decay_histogram(ph).counts)


# ------------------------------------------------------------------ FLID
def test_flid_matches_per_bin_reference(rng):
    ph = decay_photons(rng, n=20_000, n_periods=200_000)
    f = flid(ph, 1e-3, background_cps=50.0, t_irf_ns=2.0, min_counts=5)
    d = decay_histogram(ph)
    off = np.rint(d.offsets_ns / 0.016).astype(np.int64)
    trace = intensity_trace(ph, 1e-3)
    k = (ph.timestamps - trace.start_tick) // trace.bin_ticks
    a = (ph.nanotimes.astype(np.int64) - off[ph.detectors]) % P
    counts = np.bincount(k, minlength=trace.n_bins)
    sums = np.bincount(k, weights=a * 0.016, minlength=trace.n_bins)
    n_b = 50.0 * 1e-3
    expected = (sums - n_b * (P - 1) / 2 * 0.016) / (counts - n_b) - 2.0
    expected[counts < 5] = np.nan
    assert_array_equal(f.counts, counts)
    assert_allclose(f.delay_ns, expected, rtol=1e-12, atol=1e-12)
    fin = np.isfinite(f.delay_ns)
    assert f.histogram.sum() == fin.sum()  # every finite bin in the 2-D histogram once
    assert f.background_cps == 50.0 and f.t_irf_ns == 2.0
    # mean delay of a 5 ns exponential after the 2 ns rise (detector 1 aligned onto detector 0)
    assert abs(np.nanmean(f.delay_ns) - 5.0) < 0.1  # 20k photons: sigma ~ 5/sqrt(2e4) = 0.035


def test_flid_background_is_estimated_and_corrected(rng):
    # 20 % flat background over the period: the estimated rate is within Poisson error of the
    # truth and the corrected mean delay returns tau
    ph = decay_photons(rng, n=200_000, n_periods=2_000_000, bg_fraction=0.2, rises_ns=(20.0,))
    f = flid(ph, 0.01)
    true_bg_cps = 0.2 * ph.size / ph.duration_s
    # window of 8 % of the period: ~3200 counts -> relative sigma ~ 1.8 %; 4 sigma
    assert abs(f.background_cps / true_bg_cps - 1) < 0.08
    assert abs(f.t_irf_ns - 20.0) < 0.05
    assert abs(np.nanmean(f.delay_ns) - 5.0) < 0.3  # ~800 photons per bin, 250 bins
    raw = flid(ph, 0.01, background_cps=0)
    # uncorrected: 0.8 * 5 ns + 0.2 * 30 ns (background uniform over the period, minus 20 ns)
    assert abs(np.nanmean(raw.delay_ns) - 10.0) < 0.5


def test_flid_nan_for_empty_or_background_only_bins():
    ph = Photons.from_arrays([0, 1, 2, 50_000], [0, 0, 0, 0], [100, 200, 300, 400],
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    f = flid(ph, 1e-3, background_cps=0.0, t_irf_ns=0.0, offsets_ns=[0.0])
    assert f.counts.tolist() == [3, 0, 0, 0, 0, 1]
    assert f.delay_ns[0] == pytest.approx(200 * 0.016, rel=1e-12)
    assert np.isnan(f.delay_ns[1:5]).all() and f.delay_ns[5] == pytest.approx(6.4, rel=1e-12)
    g = flid(ph, 1e-3, background_cps=2000.0, t_irf_ns=0.0, offsets_ns=[0.0])
    assert np.isnan(g.delay_ns[5])  # 1 photon - 2 expected background photons <= 0


def test_background_counts_scale_a_window_to_the_period(rng):
    ph = random_t3(rng, n=5000)
    d = decay_histogram(ph, offsets_ns=[0.0, 0.8])  # detector 1 shifted by 50 bins
    got = background_counts(d, (-1.6, 8.0))  # bins -100..499, wrapped: 600 of 6250 bins
    a = (ph.nanotimes.astype(np.int64) - 50 * ph.detectors) % P
    inside = (a >= P - 100) | (a < 500)
    expected = [np.count_nonzero(inside & (ph.detectors == k)) * P / 600 for k in (0, 1)]
    assert_allclose(got, expected, rtol=1e-12)


# ------------------------------------------------------------------ errors
def test_errors(rng):
    ph = random_t3(rng, n=500)
    t2 = Photons.from_arrays([1, 2], [0, 1], timestamps_unit=4e-12)
    cases = [
        (lambda: decay_histogram(t2), r"decay histograms need T3 data"),
        (lambda: decay_histogram(ph, offsets_ns=[1.0]), r"offsets_ns=\[1.0\] must hold one "),
        (lambda: decay_histogram(ph, bin_ns=0.001), r"bin_ns=0.001 is shorter than one TCSPC"),
        (lambda: decay_histogram([ph, ph.timestamps]), r"photons=ndarray must be a Photons"),
        (lambda: decay_histogram([ph, Photons.from_arrays(
            [1], [0], [1], timestamps_unit=2e-7, nanotimes_unit=16e-12)]),
         r"chunk timestamps_unit=2e-07 differs"),
        (lambda: DecayAccumulator().result(), r"no photons chunks were added"),
        (lambda: sliced_decays(t2, time_windows_s=[(0, 1)]), r"sliced decays need T3 data"),
        (lambda: sliced_decays(ph.timestamps), r"photons=ndarray must be a Photons object"),
        (lambda: sliced_decays(ph, bin_width_s=1e-3), r"give exactly one of .* \(got 0\)"),
        (lambda: sliced_decays(ph, levels=[0], time_windows_s=[(0, 1)]), r"\(got 2\)"),
        (lambda: sliced_decays(ph, levels=[0]), r"bin_width_s is required"),
        (lambda: sliced_decays(ph, bin_width_s=1e-3, intensity_ranges=[(5, 1)]),
         r"intensity_ranges=\[\(5, 1\)\] must be non-empty \(lo, hi\) pairs with lo < hi"),
        (lambda: sliced_decays(ph, bin_width_s=1e-3, intensity_ranges=[1, 2]),
         r"intensity_ranges=\[1, 2\] must be \(lo, hi\) count pairs"),
        (lambda: sliced_decays(ph, bin_width_s=1e-3, intensity_ranges=[(0, 5), (4, 9)]),
         r"must not overlap"),
        (lambda: sliced_decays(ph, bin_width_s=1e-3, levels=[0, 1]),
         r"levels shape \(2,\) dtype int64 must be integer labels, one per trace bin"),
        (lambda: sliced_decays(ph, bin_width_s=1e-2, levels=np.full(2, -2)),
         r"levels must be >= -1"),
        (lambda: sliced_decays(ph, time_windows_s=[(0, 1), (0.5, 2)]),
         r"time_windows_s=\[\(0, 1\), \(0.5, 2\)\] must not overlap"),
        (lambda: sliced_decays(ph, time_windows_s=[(1, 0)]), r"must be non-empty finite"),
        (lambda: sliced_decays(ph, time_windows_s="ab"), r"must be \(start, stop\) pairs"),
        (lambda: sliced_decays(ph, time_windows_s=[(0, 1)], window_labels=[-1]),
         r"window_labels=\[-1\] must be one integer >= 0 per window"),
        (lambda: flid(t2, 1e-3), r"FLID needs T3 data"),
        (lambda: flid(ph, 1e-3, min_counts=0), r"min_counts=0 must be an integer >= 1"),
        (lambda: flid(ph, 1e-3, background_cps=-1), r"background_cps=-1 must be finite"),
        (lambda: flid(ph, 1e-3, count_edges=[3, 1]), r"count_edges must be increasing"),
        (lambda: flid(ph, 1e-3, delay_edges_ns=[1]), r"delay_edges_ns must be increasing"),
        (lambda: flid(ph, 1e-3, background_window_ns=(5, 1)),
         r"background_window_ns=\(5, 1\) must satisfy start < stop"),
        (lambda: background_counts(decay_histogram(ph), 5), r"background_window_ns=5 must be a"),
        (lambda: background_counts(decay_histogram(ph, bin_ns=0.1), (0, 5)),
         r"decay bin_ns=0.096 must equal the TCSPC resolution"),
    ]
    for call, match in cases:
        with pytest.raises(QrspecError, match=match):
            call()


def test_simulated_x_only_decay():
    """qrspec.simulate ground truth: X-only emitter, the aligned decay's mean gives tau."""
    import qrspec.simulate as sim
    offsets_ns = (312 * 0.016, 468 * 0.016)
    tau = 6.0
    det = dict(eta_collection=0.5, split=0.55, qe=(0.7, 0.45), dark_cps=(0.0, 0.0),
               afterpulse_prob=(0.0, 0.0), dead_time_ns=(0.0, 0.0), one_photon_per_sync=False,
               irf_sigma_ns=(0.001, 0.001), irf_tail_weight=(0.0, 0.0), offset_ns=offsets_ns)
    cfg = sim.preset("neutral").replace(duration_s=0.1, mean_excitations=0.5,
                                        laser_fwhm_ns=0.0, n_max_cascade=1,
                                        emitter=dict(tau_ns=((tau, 1.5, 0.7),),
                                                     qy=((1.0, 0.9, 0.8),)), detection=det)
    ph = sim.simulate_particle(cfg, seed=3).photons
    d = decay_histogram(ph)
    # estimated alignment: detector 1 is 156 bins later; the rise of the sum is detector 0's
    assert abs(d.offsets_ns[1] - 156 * 0.016) <= 0.016 and abs(d.t0_ns - 312 * 0.016) <= 0.016
    given = decay_histogram(ph, offsets_ns=offsets_ns)  # zero at each detector's IRF
    # photons a bin before their IRF (1 ps jitter, float rounding of the offset) wrap to the
    # last bin: exactly those with nanotime below the offset
    early = np.count_nonzero(ph.nanotimes < np.array([312, 468])[ph.detectors])
    assert early > 0 and given.counts[-1] == early and given.counts[-100:-1].sum() == 0
    assert given.n_photons == ph.size
    t = np.where(given.time_ns > 50, given.time_ns - 100, given.time_ns)  # unwrap
    # periodic tail of earlier pulses is e^(-100/6) ~ 6e-8: the mean of the quantised
    # exponential is h q / (1 - q), q = e^(-h/tau); sd of an exponential mean tau / sqrt(N)
    mean = (given.counts * t).sum() / given.counts.sum()
    q = np.exp(-0.016 / tau)
    assert abs(mean - 0.016 * q / (1 - q)) < 4 * tau / np.sqrt(given.n_photons)


def test_issue_19_result_folds_only_used_columns_and_equals_the_full_width_decay(rng):
    """DecayAccumulator.result folds the raw columns up to the largest nanotime seen (the rest
    are zero): the Decay equals the one made from the full 65536-column histograms, also with
    chunks, an excluded detector holding the largest nanotimes, and TCSPC-range detection."""
    from qrspec.stats.decay import _make_decay

    for nt_max, dets in ((7000, None), (P, [0, 1]), (4096, [1]), (300, None)):
        ph = random_t3(rng, n=20_000, n_det=3, nt_max=nt_max)
        if dets is not None:  # detector 2 (excluded) gets the largest nanotimes
            nt = np.where(ph.detectors == 2, 30_000, ph.nanotimes)
            ph = Photons.from_arrays(ph.timestamps, ph.detectors, nt, timestamps_unit=1e-7,
                                     nanotimes_unit=16e-12)
        acc = DecayAccumulator(detectors=dets)
        for part in np.array_split(np.arange(ph.size), 3):
            acc.add(Photons.from_arrays(ph.timestamps[part], ph.detectors[part],
                                        ph.nanotimes[part], timestamps_unit=1e-7,
                                        nanotimes_unit=16e-12))
        zeros = [0.0] * len(acc.raw_counts()[0])
        for bin_ns, offsets in ((0.1, None), (None, None), (0.25, zeros)):
            got = acc.result(bin_ns=bin_ns, offsets_ns=offsets)
            d, raw = acc.raw_counts()
            assert raw.shape[1] == 1 << 16
            want = _make_decay(raw, d, acc._units, bin_ns, offsets)
            for name in ("counts", "counts_per_detector", "edges_ns", "offsets_ns"):
                assert_array_equal(getattr(got, name), getattr(want, name))
            assert (got.detectors, got.t0_ns, got.recorded_ns, got.bin_ns) == (
                want.detectors, want.t0_ns, want.recorded_ns, want.bin_ns)
