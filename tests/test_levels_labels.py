"""Tests of qrspec.levels.labels (neutral / charged / trap / off rules, methods.md §2.8)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.levels import LabelRules, label_levels, mean_delay_lifetime
from qrspec.levels.segments import Segments

# level: (intensity cps, tau ns) -- each level one 1-s segment
#   0 off      (150 cps with 100 cps background: < 10 % of the brightest)
#   1 B-type   (dimmer at the neutral tau: rho = 0.5 -> unclassified)
#   2 trap     (intensity and tau both halved: rho = 1)
#   3 charged  (trion-like: rho = 2)
#   4 neutral  (brightest, longest tau)
LEVELS = [(150.0, 3.0), (10000.0, 6.0), (10000.0, 3.0), (8000.0, 1.2), (20000.0, 6.0)]
BG = 100.0


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def toy_segments(order=(4, 0, 3, 4, 2, 4, 1)):
    """Segments of 1 s visiting the levels in ``order`` (level k has LEVELS[k][0] photons/s)."""
    counts = [int(LEVELS[k][0]) for k in order]
    b_i = np.concatenate([[0], np.cumsum(counts)])
    b_s = np.arange(len(order) + 1, dtype=np.float64)
    return Segments.from_boundaries(b_s, b_i).with_levels(list(order))


def test_labels_from_intensity_and_lifetime():
    seg = toy_segments()
    tau = np.array([t for _, t in LEVELS])
    res = label_levels(seg, lifetimes=tau, tau_err_ns=0.01 * tau, background_cps=BG)
    assert_array_equal(res.label, ["off", "unclassified", "trap", "charged", "neutral"])
    assert res.neutral_level == 4
    assert "B-type" in res.notes[1]
    net = np.array([i for i, _ in LEVELS]) - BG
    kr = net / tau
    expect = kr / kr[4]
    ok = res.label != "off"
    assert_allclose(res.rho_rad[ok], expect[ok], rtol=1e-12)
    assert np.isnan(res.rho_rad[0])
    # intensity: the neutral level is visited 3 times (3 s, 60000 photons)
    assert_allclose(res.intensity_cps, [i for i, _ in LEVELS], rtol=1e-12)
    assert_allclose(res.intensity_err_cps[4], np.sqrt(60000) / 3, rtol=1e-12)
    # delta-method error of rho for the charged level
    rel = ((res.corrected_err_cps[3] / net[3]) ** 2 + 0.01**2
           + (res.corrected_err_cps[4] / net[4]) ** 2 + 0.01**2)
    assert res.rho_rad_err[3] == pytest.approx(expect[3] * np.sqrt(rel), rel=1e-12)
    # per-segment labels follow the levels; windows usable by kernels and fits
    assert_array_equal(res.segments.label, ["neutral", "off", "charged", "neutral", "trap",
                                            "neutral", "unclassified"])
    assert_allclose(res.segments.windows(label="charged"), [[2.0, 3.0]])
    assert_allclose(res.segments.windows(label="neutral"), [[0.0, 1.0], [3.0, 4.0], [5.0, 6.0]])


def test_callable_lifetimes_get_level_windows():
    seg = toy_segments()
    calls = []

    def fit(windows):
        calls.append(windows)
        level = int(seg.level[np.searchsorted(seg.start_s, windows[0, 0])])
        return LEVELS[level][1], 0.01 * LEVELS[level][1]

    res = label_levels(seg, lifetimes=fit, background_cps=BG)
    assert len(calls) == 5
    assert_allclose(calls[4], [[0.0, 1.0], [3.0, 4.0], [5.0, 6.0]])
    assert_array_equal(res.label, ["off", "unclassified", "trap", "charged", "neutral"])


def test_mean_delay_lifetime_builtin(rng):
    seg = toy_segments()
    offset = 2.0
    nt = np.empty(int(seg.stop_index[-1]))
    for j in range(seg.size):
        a, b = seg.start_index[j], seg.stop_index[j]
        nt[a:b] = offset + rng.exponential(LEVELS[seg.level[j]][1], b - a)
    res = label_levels(seg, nanotimes_ns=nt, delay_offset_ns=offset, background_cps=BG)
    tau = np.array([t for _, t in LEVELS])
    n_ph = np.bincount(seg.level, weights=seg.n_photons)
    # mean of an exponential: SE tau/sqrt(N); 4 sigma
    assert np.all(np.abs(res.tau_ns - tau) < 4 * tau / np.sqrt(n_ph))
    assert_allclose(res.tau_err_ns, res.tau_ns / np.sqrt(n_ph), rtol=1e-12)
    assert_array_equal(res.label, ["off", "unclassified", "trap", "charged", "neutral"])
    t, e = mean_delay_lifetime([1.0, 5.0], 2.0)
    assert np.isnan(t) and np.isnan(e)  # one photon after the offset: undefined


def test_insignificant_rho_is_unclassified():
    seg = toy_segments()
    tau = np.array([t for _, t in LEVELS])
    err = 0.5 * tau  # huge lifetime errors: rho = 2 +- 1.4 is not significant
    res = label_levels(seg, lifetimes=tau, tau_err_ns=err, background_cps=BG)
    assert res.label[3] == "unclassified"
    assert "not significantly above 1" in res.notes[3]


def test_charging_without_shorter_tau():
    # multiexciton correction makes level 3 charging-like at the neutral tau
    seg = toy_segments()
    tau = np.array([3.0, 6.0, 3.0, 6.0, 6.0])
    corr = np.array([1.0, 1.0, 1.0, 0.2, 1.0])
    res = label_levels(seg, lifetimes=tau, tau_err_ns=0.01 * tau, background_cps=BG,
                       intensity_correction=corr)
    assert res.rho_rad[3] == pytest.approx((7900 / 0.2 / 6) / (19900 / 6), rel=1e-12)
    assert res.label[3] == "unclassified"
    assert "tau not shorter" in res.notes[3]
    relaxed = label_levels(seg, lifetimes=tau, tau_err_ns=0.01 * tau, background_cps=BG,
                           intensity_correction=corr,
                           rules=LabelRules(require_shorter_tau=False))
    assert relaxed.label[3] == "charged"


def test_neutral_is_the_longest_lived_level_not_the_brightest():
    # issue 15: brightness rank decided. Level 1 (10000 cps, 9 ns) outlives the brightest level
    # 4 (20000 cps, 6 ns): charging and traps only add decay rates, so level 1 is neutral and
    # level 4, with rho_rad = (19900/6)/(9900/9) = 3.0 and a shorter lifetime, is charged
    seg = toy_segments()
    tau = np.array([3.0, 9.0, 3.0, 1.2, 6.0])
    res = label_levels(seg, lifetimes=tau, tau_err_ns=0.01 * tau, background_cps=BG)
    assert res.neutral_level == 1
    assert res.label[1] == "neutral" and res.label[4] == "charged"
    assert res.rho_rad[4] == pytest.approx((19900 / 6) / (9900 / 9), rel=1e-12)
    assert "[4] are brighter but shorter-lived" in res.notes[1]
    # lifetimes only (no pairs): the neutral label is unconfirmed, its confidence undefined
    assert "neutral_unconfirmed" in res.flags and np.isnan(res.confidence[1])


def test_off_by_background_sigma():
    seg = toy_segments()
    tau = np.array([t for _, t in LEVELS])
    # background 140 +- 10 cps: level 0 (150 cps) is within 3 sigma
    res = label_levels(seg, lifetimes=tau, background_cps=140.0, background_err_cps=10.0,
                       rules=LabelRules(off_fraction=0.0))
    assert res.label[0] == "off"
    res = label_levels(seg, lifetimes=tau, background_cps=0.0,
                       rules=LabelRules(off_fraction=0.0))
    assert res.label[0] != "off"  # 150 +- 12 cps is far from 0


def test_all_off():
    seg = Segments.from_boundaries([0.0, 1.0, 2.0], [0, 10, 20]).with_levels([0, 1])
    res = label_levels(seg, lifetimes=[1.0, 1.0], background_cps=50.0)
    assert res.neutral_level == -1
    assert_array_equal(res.label, ["off", "off"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"off_sigma": -1.0}, r"off_sigma=-1.0 must be >= 0"),
        ({"z": float("nan")}, r"z=nan must be >= 0"),
        ({"off_fraction": 1.0}, r"off_fraction=1.0 must be in \[0, 1\)"),
        ({"rho_low": 1.2}, r"rho_low=1.2 and rho_split=1.4 must satisfy"),
    ],
)
def test_rules_validate(kwargs, match):
    with pytest.raises(QrspecError, match=match):
        LabelRules(**kwargs)


def test_rejects_bad_input():
    seg = toy_segments()
    tau = np.ones(5)
    with pytest.raises(QrspecError, match=r"rules must be a LabelRules, got dict"):
        label_levels(seg, lifetimes=tau, rules={})
    with pytest.raises(QrspecError, match=r"levels must be LevelClustering or Segments, got int"):
        label_levels(3, lifetimes=tau)
    unassigned = Segments.from_boundaries([0.0, 1.0], [0, 5])
    with pytest.raises(QrspecError, match=r"every segment assigned to a level"):
        label_levels(unassigned, lifetimes=[1.0])
    with pytest.raises(QrspecError, match=r"background_cps=-1.0 must be >= 0"):
        label_levels(seg, lifetimes=tau, background_cps=-1.0)
    with pytest.raises(QrspecError, match=r"background_err_cps=-1.0 must be >= 0"):
        label_levels(seg, lifetimes=tau, background_err_cps=-1.0)
    with pytest.raises(QrspecError, match=r"intensity_correction must hold 5 positive values"):
        label_levels(seg, lifetimes=tau, intensity_correction=[1.0, 2.0])
    with pytest.raises(QrspecError, match=r"lifetimes shape \(2,\) != number of levels \(5,\)"):
        label_levels(seg, lifetimes=[1.0, 2.0])
    with pytest.raises(QrspecError, match=r"tau_err_ns shape \(1,\) != number of levels"):
        label_levels(seg, lifetimes=tau, tau_err_ns=[1.0])
    with pytest.raises(QrspecError, match=r"callable must return \(tau_ns, tau_err_ns\)"):
        label_levels(seg, lifetimes=lambda w: 3.0)
    with pytest.raises(QrspecError, match=r"give lifetimes, or nanotimes_ns and delay_offset_ns"):
        label_levels(seg)
    with pytest.raises(QrspecError, match=r"nanotimes_ns has 3 values; the segments index"):
        label_levels(seg, nanotimes_ns=[1.0, 2.0, 3.0], delay_offset_ns=0.0)
