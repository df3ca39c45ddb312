"""Size caps of every photon-statistics grid: coarsened past the cap, refused where coarsening
cannot help, memory bounded by the photons (issue 13 item 2)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats import correlation, decay, trace
from qrspec.stats.correlation import g2, g2_gate_scan
from qrspec.stats.decay import decay_histogram, flid, sliced_decays
from qrspec.stats.pairs import photon_pairs
from qrspec.stats.trace import intensity_trace


def long_span_t3(rng, n=3000, span_periods=10**9, period_s=1e-2, res_s=16e-12):
    """A 10 ms sync period with a very long overflow span: 1e9 periods = 1e7 s (the 23 KB file
    of issue 13 that needed > 9 GB for its trajectory)."""
    ts = np.sort(rng.integers(0, span_periods, n))
    ts[0], ts[-1] = 0, span_periods
    nt = np.minimum(rng.exponential(300, n).astype(np.int64) + 100, 65535)
    return Photons.from_arrays(ts, rng.integers(0, 2, n), nt, timestamps_unit=period_s,
                               nanotimes_unit=res_s)


def peak_mib(call):
    tracemalloc.start()
    try:
        out = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak / 2**20


# ------------------------------------------------------------------ trajectory
def test_long_span_trace_is_coarsened_with_bounded_memory(rng):
    ph = long_span_t3(rng)
    tr, mib = peak_mib(lambda: intensity_trace(ph, 0.01))
    # 1e9 bins of 10 ms would need 16 GB; capped: 2**21 bins x 2 detectors x 8 B = 32 MiB of
    # counts, plus the summed row and per-chunk copies
    assert mib < 150
    assert tr.n_bins <= trace.MAX_TRACE_BINS and tr.counts.sum() == ph.size
    # smallest power of two that fits: 1e9 / 2**21 = 477 -> 512
    assert tr.bin_ticks == 512 and tr.coarsened_from_s == 0.01
    assert tr.bin_width_s == pytest.approx(5.12)
    assert "trajectory coarsened: bin_width_s=0.01" in tr.coarsening_note
    assert intensity_trace(ph, 10.0).coarsened_from_s is None  # fits: not coarsened
    assert intensity_trace(ph, 10.0).coarsening_note == ""


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cap=st.sampled_from([1, 2, 7, 64]),
       n_cuts=st.integers(0, 5))
def test_coarsened_trace_matches_brute_force_and_chunks(seed, cap, n_cuts):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    ts = np.sort(rng.integers(0, int(rng.choice([10, 1000, 10**6])), n)) + 17
    ph = Photons.from_arrays(ts, rng.integers(0, 3, n), timestamps_unit=1e-6)
    old = trace.MAX_TRACE_BINS
    trace.MAX_TRACE_BINS = cap
    try:
        whole = intensity_trace(ph, 3e-6)
        cuts = np.sort(rng.integers(0, n + 1, n_cuts))
        parts = [Photons.from_arrays(ts[a:b], ph.detectors[a:b], timestamps_unit=1e-6)
                 for a, b in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True)]
        streamed = intensity_trace(iter(parts), 3e-6)
    finally:
        trace.MAX_TRACE_BINS = old
    f = 1
    while (ts[-1] - ts[0]) // (3 * f) + 1 > cap:
        f *= 2
    assert whole.bin_ticks == 3 * f
    assert (whole.coarsened_from_s is None) == (f == 1)
    k = (ts - ts[0]) // (3 * f)
    assert_array_equal(whole.counts, np.bincount(k))
    assert_array_equal(streamed.counts_per_detector, whole.counts_per_detector)
    assert streamed.detectors == whole.detectors and streamed.bin_ticks == whole.bin_ticks


def test_tiny_bin_width_is_coarsened(rng):
    # --bin-width-s 1e-7 on a 10 MHz T3 stream of 10 s: 1e8 bins (> 4 GB with both detectors)
    ts = np.sort(rng.integers(0, 10**8, 5000))
    ph = Photons.from_arrays(ts, rng.integers(0, 2, ts.size), rng.integers(0, 6000, ts.size),
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    tr = intensity_trace(ph, 1e-7)
    assert tr.n_bins <= trace.MAX_TRACE_BINS and tr.coarsened_from_s == 1e-7
    assert tr.counts.sum() == ph.size


# ------------------------------------------------------------------ decays, sliced decays, FLID
def test_long_period_decay_axis_is_the_nanotime_range(rng):
    # 10 ms / 16 ps = 625 M TCSPC bins per period: the axis stops at the 65536 uint16 bins
    ph = long_span_t3(rng)
    d, mib = peak_mib(lambda: decay_histogram(ph))
    assert mib < 20  # 2 detectors x 65536 bins x 8 B = 1 MiB per array
    assert d.counts.size == decay.MAX_DECAY_BINS and d.counts.sum() == ph.size
    assert d.period_ns == pytest.approx(65536 * 0.016)
    s, mib = peak_mib(lambda: sliced_decays(ph, time_windows_s=[(0, 1e6), (1e6, 1e7)]))
    assert mib < 40 and s.counts.shape == (2, 65536)
    assert_array_equal(s.counts.sum(axis=0) + s.unassigned, s.total.counts)
    f, mib = peak_mib(lambda: flid(ph, 0.01))
    assert mib < 200 and f.histogram.size <= (decay.MAX_FLID_COUNT_BINS
                                              * decay.MAX_FLID_DELAY_BINS)


def test_sliced_decays_coarsened_past_the_cap(rng, monkeypatch):
    n = 4000
    ts = np.sort(rng.integers(0, 10**5, n))
    nt = rng.integers(0, 6250, n)
    ph = Photons.from_arrays(ts, rng.integers(0, 2, n), nt, timestamps_unit=1e-7,
                             nanotimes_unit=16e-12)
    windows = [(i * 1e-4, (i + 1) * 1e-4) for i in range(100)]
    ref = sliced_decays(ph, time_windows_s=windows, offsets_ns=(0.0, 0.0))
    assert ref.coarsened_from_ns is None and ref.coarsening_note == ""
    monkeypatch.setattr(decay, "MAX_SLICED_CELLS", 100 * 1000)
    s = sliced_decays(ph, time_windows_s=windows, offsets_ns=(0.0, 0.0))
    # 6250 bins per period x 100 slices > 1e5 cells: bins of ceil(6250 / 1000) = 7 TCSPC bins
    assert s.total.bin_ns == pytest.approx(7 * 0.016) and s.coarsened_from_ns == 0.016
    assert s.counts.shape == (100, 893) and "sliced decays coarsened" in s.coarsening_note
    # the coarse slices are the fine ones rebinned (offsets are zero here)
    fine = np.pad(ref.counts, ((0, 0), (0, 893 * 7 - 6250)))
    assert_array_equal(s.counts, fine.reshape(100, 893, 7).sum(axis=2))
    assert_array_equal(s.counts.sum(axis=0) + s.unassigned, s.total.counts)
    monkeypatch.setattr(decay, "MAX_SLICED_CELLS", 64 * 99)
    with pytest.raises(QrspecError, match=r"time_windows_s gives 100 slices; at most 99 fit"):
        sliced_decays(ph, time_windows_s=windows)
    n_bins = intensity_trace(ph, 1e-5).n_bins
    with pytest.raises(QrspecError, match=rf"levels gives {n_bins} slices; at most 99 fit"):
        sliced_decays(ph, bin_width_s=1e-5, levels=np.arange(n_bins))


def test_sliced_decays_levels_need_the_coarsened_trace(rng, monkeypatch):
    ph = Photons.from_arrays(np.arange(0, 1000, 7), np.zeros(143, int), np.zeros(143, int),
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    monkeypatch.setattr(trace, "MAX_TRACE_BINS", 10)
    with pytest.raises(QrspecError, match=r"levels= needs one label per trace bin, but the "
                                          r"trace of bin_width_s=1e-06 exceeds MAX_TRACE_BINS"):
        sliced_decays(ph, bin_width_s=1e-6, levels=np.zeros(100, int))
    s = sliced_decays(ph, bin_width_s=1e-6, intensity_ranges=[(0, 100)])
    assert s.trace_coarsened_from_s == 1e-6 and "slice trajectory coarsened" in \
        s.coarsening_note


def test_flid_axes_are_capped(rng):
    # --bin-width-s 100: counts per bin up to ~2e4 would make 2e4 count bins
    n = 40_000
    ts = np.sort(rng.integers(0, 2 * 10**9, n))
    nt = rng.integers(0, 6250, n)
    ph = Photons.from_arrays(ts, rng.integers(0, 2, n), nt, timestamps_unit=1e-7,
                             nanotimes_unit=16e-12)
    f = flid(ph, 100.0, background_cps=0)
    assert f.histogram.shape[0] <= decay.MAX_FLID_COUNT_BINS
    assert f.histogram.shape[1] <= decay.MAX_FLID_DELAY_BINS
    w = f.count_edges[1] - f.count_edges[0]
    assert w == np.ceil((f.counts.max() + 1) / decay.MAX_FLID_COUNT_BINS) and w > 1
    assert "FLID count axis coarsened" in f.coarsening_note
    assert f.histogram.sum() == np.isfinite(f.delay_ns).sum()
    with pytest.raises(QrspecError, match=r"count_edges has 999 bins; at most 512"):
        flid(ph, 100.0, count_edges=np.arange(1000))
    with pytest.raises(QrspecError, match=r"delay_edges_ns has 9999 bins; at most 512"):
        flid(ph, 100.0, delay_edges_ns=np.arange(10_000) * 0.01)


def test_flid_of_a_short_tcspc_range_has_physical_delays(rng):
    # TCSPC range 32768 bins of 16 ps (524 ns) inside a 1 us period (libpicoquant_hh_v20.ht3):
    # background fills only the recorded range, so its mean is ~262 ns, not ~500 ns
    n = 60_000
    ts = np.sort(rng.integers(0, 10**7, n))
    sig = rng.random(n) < 0.5
    nt = np.where(sig, 3000 + rng.exponential(5.0 / 0.016, n).astype(np.int64),
                  rng.integers(0, 32768, n))
    nt[-1] = 32767
    ph = Photons.from_arrays(ts, np.zeros(n, int), np.minimum(nt, 32767), timestamps_unit=1e-6,
                             nanotimes_unit=16e-12)
    d = decay_histogram(ph)
    assert d.recorded_ns == pytest.approx(32768 * 0.016) and d.period_ns == pytest.approx(1000)
    bg = decay.background_counts(d, (100.0, 400.0))  # only background there
    # expected background: the non-signal photons; Poisson sigma ~ sqrt(n/2 * 524/300)
    assert abs(bg[0] - (~sig).sum()) < 5 * np.sqrt((~sig).sum() * 524 / 300)
    f = flid(ph, 0.1, background_window_ns=(100.0, 400.0))
    # after subtracting the background (mean 262 ns) the mean delay is the 5 ns lifetime
    assert abs(np.nanmedian(f.delay_ns) - 5.0) < 1.0  # per-bin scatter ~ 0.3 ns, median of 1e3


# ------------------------------------------------------------------ g2
def test_g2_huge_lag_range_is_refused(rng):
    # issue 13: g2_max_lag_periods=100000000 ended in a MemoryError
    ts = np.sort(rng.integers(0, 10**8, 200_000))
    ph = Photons.from_arrays(ts, rng.integers(0, 2, ts.size), rng.integers(0, 6000, ts.size),
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    with pytest.raises(QrspecError, match=r"max_lag_periods=100000000 \(lag range \+-1e\+10 ns\) "
                                          r"needs more than 1048576 lag bins"):
        g2(ph, max_lag_periods=100_000_000)
    # 2 Mcps: +-5 ms fits the bins at 12.5 ns (period / 8) but compares each photon with ~2e4
    ts = np.sort(rng.integers(0, 10**6, 200_000))
    ph = Photons.from_arrays(ts, rng.integers(0, 2, ts.size), rng.integers(0, 6000, ts.size),
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    with pytest.raises(QrspecError, match=r"max_lag_periods=50000 \(reach [\d.e+]+ ns\) would "
                                          r"compare each photon with ~[\d.e+]+ others"):
        g2(ph, max_lag_periods=50_000, bin_ns=12.5)


def test_g2_coarsened_past_the_bin_cap(monkeypatch, rng):
    ts = np.sort(rng.integers(0, 10**9, 2000))  # T2, 1 ps ticks: CW-like
    ph = Photons.from_arrays(ts, rng.integers(0, 2, ts.size), timestamps_unit=1e-12)
    fine = g2(ph, max_lag_ns=1000.0, bin_ns=1.0)
    monkeypatch.setattr(correlation, "MAX_G2_BINS", 500)
    c = g2(ph, max_lag_ns=1000.0, bin_ns=1.0)
    assert c.counts.size <= 500 and c.bin_ns == 4.0 and c.coarsened_from_ns == 1.0
    assert "g2 coarsened: bin_ns=1" in c.coarsening_note and fine.coarsening_note == ""
    assert_array_equal(c.counts, fine.counts.reshape(-1, 4).sum(axis=1))
    # pulsed: a period known, the widened bin must keep >= 8 bins per period
    ph3 = Photons.from_arrays(ts // 10**5, ph.detectors, np.zeros(ts.size, int),
                              timestamps_unit=1e-7, nanotimes_unit=16e-12)
    c3 = g2(ph3, max_lag_periods=20)  # 8200 bins of 0.5 ns -> 8.2 ns bins
    assert c3.counts.size <= 500 and c3.bin_ns == pytest.approx(8.2) and c3.bin_ns <= 100 / 8
    with pytest.raises(QrspecError, match=r"max_lag_periods=1000 .* needs more than 500 lag "
                                          r"bins even at 12.5 ns \(period / 8\)"):
        g2(ph3, max_lag_periods=1000)


def test_g2_small_data_long_lag_is_allowed(rng):
    # the pair budget counts comparisons: 50 photons cost nothing whatever the lag range
    ts = np.sort(rng.integers(0, 10**6, 50))
    ph = Photons.from_arrays(ts, rng.integers(0, 2, 50), timestamps_unit=1e-9)
    assert g2(ph, max_lag_ns=1e6, bin_ns=1e3).counts.sum() == (ph.detectors == 0).sum() * (
        ph.detectors == 1).sum()


def test_gate_scan_and_pair_shift_caps(rng):
    ph = Photons.from_arrays(np.arange(1000), np.arange(1000) % 2, np.full(1000, 10),
                             timestamps_unit=1e-7, nanotimes_unit=16e-12)
    with pytest.raises(QrspecError, match=r"max_lag_periods=200 gives 401 peaks; a gate scan "
                                          r"holds at most 256"):
        g2_gate_scan(ph, [1.0], max_lag_periods=200, gate_offsets_ns=(0, 0))
    with pytest.raises(QrspecError, match=r"max_shift=1001 must be an integer <= 1000"):
        photon_pairs(ph, max_shift=1001)
