"""qrspec.validate: the one home of argument checks, the seconds-to-ticks rule and window
merging (issue 14)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from qrspec import validate as v
from qrspec.errors import QrspecError
from qrspec.photons import Photons


def test_scalar_checks():
    assert v.positive_float("x", "2.5") == 2.5 and v.finite_float("x", -1) == -1.0
    assert v.integer("k", np.int32(3), minimum=0, maximum=3) == 3
    assert v.interval("g", (1, math.inf)) == (1.0, math.inf)
    assert v.detector_list("d", 3) == [3] and v.detector_list("d", None) is None
    cases = [
        (lambda: v.positive_float("bin_ns", 0), r"bin_ns=0 must be a finite number > 0"),
        (lambda: v.positive_float("bin_ns", "a"), r"bin_ns='a' must be a number"),
        (lambda: v.positive_float("bin_ns", math.inf), r"bin_ns=inf must be a finite"),
        (lambda: v.finite_float("d", math.nan), r"d=nan must be finite"),
        (lambda: v.finite_float("d", None), r"d=None must be a number"),
        (lambda: v.integer("k", 1.5), r"k=1.5 must be an integer"),
        (lambda: v.integer("k", True), r"k=True must be an integer"),
        (lambda: v.integer("k", 0, minimum=1), r"k=0 must be an integer >= 1"),
        (lambda: v.integer("k", 9, maximum=8), r"k=9 must be an integer <= 8"),
        (lambda: v.interval("gate_ns", (50.0, 2.0)),
         r"gate_ns=\(50.0, 2.0\) must satisfy start < stop"),
        (lambda: v.interval("gate_ns", "ab"), r"gate_ns='ab' must be a \(start, stop\) pair"),
        (lambda: v.interval("gate_ns", (1, 2, 3)), r"must be a \(start, stop\) pair"),
        (lambda: v.detector_list("detectors", (1, 1)), r"detectors=\(1, 1\) must be distinct"),
        (lambda: v.detector_list("detectors", [256]), r"detectors=\[256\] must be distinct"),
        (lambda: v.detector_list("detectors", []), r"detectors=\[\] must be distinct"),
        (lambda: v.detector_list("detectors", ["a"]), r"detectors=\['a'\] must be distinct"),
        (lambda: v.windows_to_ticks("w", [(2, 1)], 1.0),
         r"w=\[\(2, 1\)\] must be non-empty finite"),
        (lambda: v.windows_to_ticks("w", "x", 1.0), r"w='x' must be \(start, stop\) pairs"),
        (lambda: v.windows_to_ticks("w", [], 1.0), r"w=\[\] must be non-empty"),
    ]
    for call, match in cases:
        with pytest.raises(QrspecError, match=match):
            call()


def test_seconds_to_ticks_rule():
    # tick k is in [a, b) iff a <= k * unit < b; float noise around whole ticks is forgiven
    assert v.to_grid(0.3, 0.1) == 3 and v.to_grid(0.30000000000000004, 0.1) == 3
    assert v.to_grid(0.7, 0.1) == 7 and v.to_grid(0.31, 0.1) == 4 and v.to_grid(-0.15, 0.1) == -1
    assert_array_equal(v.to_grid([0.0, 1e-7, 2.5e-7], 1e-7), [0, 1, 3])
    assert v.shift_to_grid(0.26, 0.1) == 3 and v.shift_to_grid(-0.24, 0.1) == -2
    assert v.interval_to_grid("gate_ns", (-math.inf, math.inf), 0.016) == (0, 1 << 62)
    assert v.interval_to_grid("gate_ns", (3.0, 100.0), 0.016) == (188, 6250)


@settings(max_examples=200, deadline=None)
@given(a=st.floats(-1e6, 1e6), unit=st.sampled_from([1e-12, 4e-12, 1e-7, 0.1, 2.0]))
def test_to_grid_is_the_smallest_tick_at_or_after(a, unit):
    k = v.to_grid(a, unit)
    # up to the stated tolerance (1e-9 tick + 4 ulp) k is the smallest integer with k*unit >= a
    tol = (1e-9 + 8 * np.spacing(abs(a / unit))) * unit
    assert k * unit >= a - tol and (k - 1) * unit < a + tol


def test_one_rule_for_photons_windows_and_gates():
    """Photons.select / select_windows, sliced decays, g2 windows and the gate use one rule."""
    from qrspec.stats.correlation import g2
    from qrspec.stats.decay import sliced_decays

    ts = np.arange(0, 100)
    ph = Photons.from_arrays(ts, ts % 2, ts % 7, timestamps_unit=0.1, nanotimes_unit=1e-9)
    w = (0.30000000000000004, 0.7)  # ticks 3..6
    assert_array_equal(ph.select(time_window_s=w).timestamps, [3, 4, 5, 6])
    assert_array_equal(ph.select_windows([w]).timestamps, [3, 4, 5, 6])
    s = sliced_decays(ph, time_windows_s=[w], offsets_ns=(0.0, 0.0))
    assert s.counts.sum() == 4
    c = g2(ph, max_lag_ns=1e9, bin_ns=1e8, time_windows_s=[w], period_ns=1e8)
    assert c.n_photons == (2, 2)  # ticks 4, 6 on detector 0; 3, 5 on detector 1
    assert ph.select(gate_ns=(2.0, 5.0)).size == ((ts % 7 >= 2) & (ts % 7 < 5)).sum()


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), max_size=12))
def test_merge_intervals_matches_a_brute_force_cover(rows):
    lo = np.array([a for a, _ in rows], np.int64)
    hi = lo + np.array([b for _, b in rows], np.int64)
    mlo, mhi = v.merge_intervals(lo, hi)
    cover = np.zeros(70, bool)
    for a, b in zip(lo, hi, strict=True):
        cover[a:b] = True
    got = np.zeros(70, bool)
    for a, b in zip(mlo, mhi, strict=True):
        got[a:b] = True
    # the same points are covered; the output is sorted, disjoint and non-touching
    assert_array_equal(got, cover)
    assert np.all(np.diff(mlo) > 0) and np.all(mlo[1:] > mhi[:-1])


def test_in_windows():
    lo, hi = v.windows_to_ticks("w", [(5, 8), (1, 3), (2.5, 4)], 1.0, merge=True)
    assert_array_equal(lo, [1, 5])
    assert_array_equal(hi, [4, 8])
    assert_array_equal(v.in_windows(np.arange(10), lo, hi),
                       [0, 1, 1, 1, 0, 1, 1, 1, 0, 0])
    assert not v.in_windows(np.arange(3), np.zeros(0, np.int64), np.zeros(0, np.int64)).any()


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 10)), max_size=12),
       steps=st.lists(st.integers(0, 3), min_size=0, max_size=40))
def test_in_windows_sorted_ticks_path_matches_the_per_tick_search(rows, steps):
    # non-decreasing ticks with repeats and gaps; windows merged as the callers pass them
    ticks = np.cumsum(np.array(steps, np.int64))
    lo = np.array([a for a, _ in rows], np.int64)
    lo, hi = v.merge_intervals(lo, lo + np.array([b for _, b in rows], np.int64))
    assert_array_equal(v.in_windows(ticks, lo, hi, ticks_sorted=True),
                       v.in_windows(ticks, lo, hi))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 10)), max_size=12),
       steps=st.lists(st.integers(0, 3), min_size=0, max_size=40),
       dets=st.lists(st.integers(-1, 5), min_size=1, max_size=3))
def test_photon_selection_fast_paths_match_the_reference(rows, steps, dets):
    """select_windows by slices == by one gather; select by comparisons == np.isin."""
    import qrspec.photons as qp

    ts = np.cumsum(np.array(steps, np.int64))
    ph = Photons.from_arrays(ts, ts % 3, ts % 7, timestamps_unit=1.0, nanotimes_unit=1e-9)
    lo = np.array([a for a, _ in rows], np.int64)
    mlo, mhi = v.merge_intervals(lo, lo + np.array([b for _, b in rows], np.int64))
    w = np.stack([mlo, mhi], axis=1).astype(float)
    sliced = ph.select_windows(w)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(qp, "_SLICE_WINDOWS", -1)  # force the gather
        gathered = ph.select_windows(w)
    for name in ("timestamps", "detectors", "nanotimes"):
        a, b = getattr(sliced, name), getattr(gathered, name)
        assert a.dtype == b.dtype
        assert_array_equal(a, b)
    keep = np.isin(ph.detectors, np.array(dets))
    sel = ph.select(detectors=dets)
    assert_array_equal(sel.timestamps, ph.timestamps[keep])
    assert_array_equal(sel.nanotimes, ph.nanotimes[keep])
    assert sel.timestamps is not ph.timestamps  # a copy even when every photon is kept


@pytest.mark.parametrize("top", [0, 3, 15, 16, 40])
def test_counts_per_detector_matches_bincount(top):
    # the comparison passes (top < 16) and bincount (more detectors) count the same
    det = np.random.default_rng(top).integers(0, top + 1, 500).astype(np.uint8)
    det[-1] = top
    ph = Photons.from_arrays(np.arange(det.size), det, timestamps_unit=1e-9)
    got = ph.counts_per_detector
    assert got.dtype == np.int64
    assert_array_equal(got, np.bincount(det))
    assert_array_equal(ph.detector_ids, np.flatnonzero(np.bincount(det)))
