"""Intensity trajectories against NumPy histograms (exact integer equality)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats._kernels import trace as kt
from qrspec.stats.trace import TraceAccumulator, intensity_trace


def random_t3(rng, n=2000, n_periods=100_000, n_det=3):
    ts = np.sort(rng.integers(0, n_periods, n)) + 12_345
    det = rng.integers(0, n_det, n)
    nt = rng.integers(0, 6250, n)
    return Photons.from_arrays(ts, det, nt, timestamps_unit=1e-7, nanotimes_unit=16e-12)


def reference(ph, bin_ticks, detectors=None, gate_bins=None):
    """Per-detector np.histogram on integer edges starting at the first photon."""
    dets = detectors if detectors is not None else [int(d) for d in np.unique(ph.detectors)]
    start = ph.timestamps[0]
    n_bins = (ph.timestamps[-1] - start) // bin_ticks + 1
    edges = start + bin_ticks * np.arange(n_bins + 1)  # the last photon is below the last edge
    keep = np.ones(ph.size, bool)
    if gate_bins is not None:
        keep = (ph.nanotimes >= gate_bins[0]) & (ph.nanotimes < gate_bins[1])
    return np.stack([np.histogram(ph.timestamps[keep & (ph.detectors == d)], edges)[0]
                     for d in dets])


@pytest.mark.parametrize("bin_width_s", [1e-7, 3.3e-5, 1e-3, 1.0])
def test_trace_matches_numpy_histogram(rng, bin_width_s):
    ph = random_t3(rng)
    trace = intensity_trace(ph, bin_width_s)
    ticks = round(bin_width_s / 1e-7)
    assert trace.bin_ticks == ticks and trace.bin_width_s == pytest.approx(ticks * 1e-7,
                                                                            rel=1e-15)
    assert trace.detectors == (0, 1, 2)
    assert_array_equal(trace.counts_per_detector, reference(ph, ticks))
    assert_array_equal(trace.counts, trace.counts_per_detector.sum(axis=0))
    assert trace.counts.sum() == ph.size  # every photon counted once
    assert trace.start_tick == ph.timestamps[0]
    assert trace.time_s[0] == pytest.approx(trace.start_s, rel=1e-15)
    assert_array_equal(trace.rate_cps, trace.counts / trace.bin_width_s)
    assert trace.edges_ticks[-1] > ph.timestamps[-1]


def test_trace_gate_and_detector_subset(rng):
    ph = random_t3(rng)
    trace = intensity_trace(ph, 1e-3, gate_ns=(5.0, 50.0), detectors=[2, 0])
    assert trace.detectors == (2, 0) and trace.gate_ns == (5.0, 50.0)
    # 5 ns / 16 ps = 312.5 -> bins from 313; 50 ns -> 3125
    assert_array_equal(trace.counts_per_detector,
                       reference(ph, 10_000, detectors=[2, 0], gate_bins=(313, 3125)))


def test_trace_t2(rng):
    ts = np.sort(rng.integers(0, 10**9, 1000))
    ph = Photons.from_arrays(ts, rng.integers(0, 2, 1000), timestamps_unit=4e-12)
    trace = intensity_trace(ph, 1e-6)
    assert_array_equal(trace.counts_per_detector, reference(ph, 250_000))


def test_kernel_py_func_matches_compiled(rng):
    ph = random_t3(rng, n=300)
    col = np.arange(256)
    lo, hi = np.zeros(256, np.int64), np.full(256, 4000, np.int64)
    args = (ph.timestamps, ph.detectors, ph.nanotimes, col, lo, hi, int(ph.timestamps[0]), 777)
    n = (ph.timestamps[-1] - ph.timestamps[0]) // 777 + 1
    a = kt.bin_counts(*args, np.zeros((n, 3), np.int64))
    b = kt.bin_counts.py_func(*args, np.zeros((n, 3), np.int64))
    assert_array_equal(a, b)
    assert a.sum() == np.count_nonzero(ph.nanotimes < 4000)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bin_ticks=st.integers(1, 5000),
       n_cuts=st.integers(0, 5))
def test_trace_conserves_counts_and_chunks_equal_whole(seed, bin_ticks, n_cuts):
    rng = np.random.default_rng(seed)
    ph = random_t3(rng, n=int(rng.integers(1, 400)), n_periods=20_000)
    whole = intensity_trace(ph, bin_ticks * 1e-7)
    assert whole.counts.sum() == ph.size
    cuts = np.sort(rng.integers(0, ph.size + 1, n_cuts))
    bounds = list(zip(np.r_[0, cuts], np.r_[cuts, ph.size], strict=True))
    chunks = [Photons.from_arrays(ph.timestamps[a:b], ph.detectors[a:b], ph.nanotimes[a:b],
                                  timestamps_unit=1e-7, nanotimes_unit=16e-12)
              for a, b in bounds]
    part = intensity_trace(iter(chunks), bin_ticks * 1e-7)
    assert_array_equal(part.counts_per_detector, whole.counts_per_detector)
    assert part.detectors == whole.detectors and part.start_tick == whole.start_tick


def test_chunks_with_different_detectors(rng):
    # the first chunk has detector 0 only, the second adds detector 3
    a = Photons.from_arrays([1, 5, 9], [0, 0, 0], [1, 2, 3], timestamps_unit=1e-7,
                            nanotimes_unit=16e-12)
    b = Photons.from_arrays([12, 30], [3, 0], [1, 2], timestamps_unit=1e-7,
                            nanotimes_unit=16e-12)
    trace = intensity_trace([a, b], 1e-6)  # 10 ticks per bin from tick 1
    assert trace.detectors == (0, 3)
    assert_array_equal(trace.counts_per_detector, [[3, 0, 1], [0, 1, 0]])


def test_empty_input_gives_empty_trace():
    acc = TraceAccumulator(1e-3, detectors=[0, 1])
    trace = acc.result()
    assert trace.counts.size == 0 and trace.counts_per_detector.shape == (2, 0)


@pytest.mark.realdata
def test_realdata_trace_whole_equals_chunks(realdata):
    from qrspec.io import iter_tttr, read_tttr

    path = realdata / "pqsample_hh_v20_t3.ptu"
    if not path.exists():
        pytest.skip(f"{path} absent")
    ph = read_tttr(path)
    whole = intensity_trace(ph, 0.01)
    assert whole.counts.sum() == ph.size
    assert whole.bin_width_s == pytest.approx(0.01, rel=1e-4)  # 50000 sync periods of 200 ns
    part = intensity_trace(iter_tttr(path, chunk_records=10_000), 0.01)
    assert_array_equal(part.counts_per_detector, whole.counts_per_detector)


def test_errors(rng):
    ph = random_t3(rng, n=20)
    t2 = Photons.from_arrays([1, 2], [0, 1], timestamps_unit=4e-12)
    cases = [
        (lambda: intensity_trace(ph, 1e-9), r"bin_width_s=1e-09 is shorter than one timestamp "
                                            r"tick \(1e-07 s\)"),
        (lambda: intensity_trace(ph, -1.0), r"bin_width_s=-1.0 must be a finite number > 0"),
        (lambda: intensity_trace(ph, "a"), r"bin_width_s='a' must be a number"),
        (lambda: intensity_trace(ph, 1e-3, gate_ns=(5, 1)), r"gate_ns=\(5, 1\) must satisfy"),
        (lambda: intensity_trace(ph, 1e-3, gate_ns=5), r"gate_ns=5 must be a \(start, stop\)"),
        (lambda: intensity_trace(t2, 1e-3, gate_ns=(1, 5)), r"gate_ns=\(1.0, 5.0\) needs T3"),
        (lambda: intensity_trace(ph, 1e-3, detectors=[0, 0]),
         r"detectors=\[0, 0\] must be distinct 0-based detectors"),
        (lambda: intensity_trace(ph, 1e-3, detectors=[300]), r"detectors=\[300\] must be"),
        (lambda: intensity_trace("file.ptu", 1e-3), r"photons=str must be Photons or an "),
        (lambda: intensity_trace([ph.timestamps], 1e-3), r"photons=ndarray must be a Photons"),
        (lambda: intensity_trace([ph, t2], 1e-3), r"chunk timestamps_unit=4e-12 differs"),
    ]
    for call, match in cases:
        with pytest.raises(QrspecError, match=match):
            call()
