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


# ----------------------------------------------------------------------------- physics labels
def two_levels(order=(0, 1, 0, 1)):
    """Level 0: 30000 cps, level 1: 60000 cps; 1-s segments."""
    rates = (30000, 60000)
    counts = [rates[k] for k in order]
    b_i = np.concatenate([[0], np.cumsum(counts)])
    return Segments.from_boundaries(np.arange(len(order) + 1.0), b_i).with_levels(list(order))


def _ev(tau_x, tau_xx, rel_err=(0.01, 0.05)):
    from qrspec.levels import LevelEvidence

    tx, txx = np.asarray(tau_x, float), np.asarray(tau_xx, float)
    return LevelEvidence.from_lifetimes(tx, rel_err[0] * tx, txx, rel_err[1] * txx)


def test_neutral_confirmed_by_the_pair_ratio():
    # charged 2.3 ns / 1.0 ns (R = 2.3), neutral 10 ns / 2.1 ns (R = 4.8 +- 0.24)
    res = label_levels(two_levels(), evidence=_ev([2.3, 10.0], [1.0, 2.1]))
    assert_array_equal(res.label, ["charged", "neutral"])
    assert res.neutral_level == 1 and res.flags == ()
    # P(R > 2.9) = Phi((4.76 - 2.9) / 0.24) ~ 1
    assert res.confidence[1] > 0.999
    assert_allclose(res.ratio, [2.3, 10 / 2.1], rtol=1e-12)
    assert res.time_fraction("neutral") == pytest.approx(0.5)


def test_brighter_charged_level_is_not_neutral():
    # issue 15: the brightest level was always neutral. Here the charged level is the
    # brighter one (low neutral QY): the longer-lived level is neutral
    seg = two_levels()
    res = label_levels(seg, evidence=_ev([10.0, 4.0], [2.1, 1.8]))
    assert_array_equal(res.label, ["neutral", "charged"])
    assert "[1] are brighter but shorter-lived" in res.notes[0]


@pytest.mark.parametrize(("ratio_err", "flag", "labels"), [
    (0.02, "no_neutral", ["charged", "charged"]),          # R = 2.2 +- 0.04: significant
    (0.60, "neutral_undecided", ["unclassified", "unclassified"]),  # P(R > 2.9) = 0.12
])
def test_rod_without_neutral_period(ratio_err, flag, labels):
    # a rod charged throughout (two charged states, R ~ 2.2): no level may be called neutral
    ev = _ev([2.2, 2.4], [1.0, 1.09], rel_err=(0.005, ratio_err))
    res = label_levels(two_levels(), evidence=ev)
    assert res.neutral_level == -1
    assert flag in res.flags
    assert list(res.label) == labels
    assert res.time_fraction("neutral") == 0.0
    if flag == "no_neutral":
        assert np.all(res.confidence > 0.97)


def test_unconfirmed_neutral_keeps_its_label_with_a_flag():
    # R = 3.2 +- 0.3: P(R > 2.9) = Phi(1) = 0.84
    ev = _ev([2.3, 10.0], [1.0, 3.125], rel_err=(1e-6, 0.09375))
    res = label_levels(two_levels(), evidence=ev)
    assert res.label[1] == "neutral" and "neutral_unconfirmed" in res.flags
    from scipy.stats import norm

    assert res.confidence[1] == pytest.approx(norm.cdf((3.2 - 2.9) / 0.3), rel=1e-3)


def test_reference_lifetime_recognises_a_charged_rod_without_pairs():
    # no tau_XX at all: only a known neutral tau_X (e.g. from the sample group) can tell
    seg = two_levels()
    res = label_levels(seg, lifetimes=[2.2, 2.4], tau_err_ns=[0.02, 0.02])
    assert res.label[1] == "neutral" and "neutral_unconfirmed" in res.flags
    res = label_levels(seg, lifetimes=[2.2, 2.4], tau_err_ns=[0.02, 0.02],
                       neutral_tau_x_ns=(10.0, 0.5))
    assert res.neutral_level == -1 and "no_neutral" in res.flags
    assert list(res.label) == ["charged", "charged"]


def test_mixed_states_flag_needs_a_real_second_component():
    from qrspec.levels import LevelEvidence

    base = _ev([2.3, 10.0], [1.0, 2.1])

    def with_shape(p, f2, t2):
        return LevelEvidence(base.tau_x_ns, base.tau_x_err_ns, base.tau_xx_ns,
                             base.tau_xx_err_ns, base.n_photons, base.n_pairs,
                             base.tail_start_ns, np.array([1.0, p]), np.array([np.nan, f2]),
                             np.array([np.nan, t2]), base.messages)

    res = label_levels(two_levels(), evidence=with_shape(1e-6, 0.2, 2.5))
    assert "mixed_states" in res.flags and res.mixed[1] and not res.mixed[0]
    assert "merged states" in res.notes[1]
    # afterpulse-like: 1 % at 25 ns, or a tiny component: no flag
    # or a long artifact component (afterpulsing: 7 % at 300 ns)
    for p, f2, t2 in ((1e-8, 0.01, 25.0), (1e-8, 0.2, 11.0), (0.01, 0.2, 2.5),
                      (1e-8, 0.07, 300.0)):
        assert "mixed_states" not in label_levels(two_levels(),
                                                  evidence=with_shape(p, f2, t2)).flags


def test_user_overrides():
    seg = two_levels()
    ev = _ev([2.3, 10.0], [1.0, 2.1])
    res = label_levels(seg, evidence=ev, overrides={0: "trap"})
    assert list(res.label) == ["trap", "neutral"] and res.confidence[0] == 1.0
    assert "user_override" in res.flags and "user override" in res.notes[0]
    # a time range relabels the segments more than half inside it (segment 2 = [2, 3) s)
    res = label_levels(seg, evidence=ev, overrides=[(1.9, 3.2, "off")])
    assert list(res.segments.label) == ["charged", "neutral", "off", "neutral"]
    assert list(res.label) == ["charged", "neutral"]
    # the user's neutral level: the others are labelled against it (rho_rad of level 1 is
    # (60000/10)/(30000/2.3) = 0.46 < rho_low: unclassified, not neutral)
    res = label_levels(seg, evidence=ev, overrides={0: "neutral"})
    assert res.neutral_level == 0 and list(res.label) == ["neutral", "unclassified"]
    assert res.rho_rad[1] == pytest.approx((60000 / 10.0) / (30000 / 2.3), rel=1e-12)


@pytest.mark.parametrize(("overrides", "match"), [
    ({0: "excited"}, r"override label='excited' must be one of"),
    ({5: "trap"}, r"override level=5 must be in 0..1"),
    ({(3.0, 1.0): "trap"}, r"override time range=\(3.0, 1.0\) must satisfy start < stop"),
    ({"x": "trap"}, r"override key='x' must be a level index or a \(start_s, stop_s\) pair"),
    ({0: "neutral", 1: "neutral"}, r"overrides name 2 neutral levels \[0, 1\]; at most one"),
])
def test_rejects_bad_overrides(overrides, match):
    with pytest.raises(QrspecError, match=match):
        label_levels(two_levels(), evidence=_ev([2.3, 10.0], [1.0, 2.1]), overrides=overrides)


def test_rejects_bad_evidence_and_reference():
    from qrspec.levels import LevelEvidence

    seg = two_levels()
    with pytest.raises(QrspecError, match=r"evidence must be a LevelEvidence, got dict"):
        label_levels(seg, evidence={})
    with pytest.raises(QrspecError, match=r"evidence has 3 levels, the segments 2"):
        label_levels(seg, evidence=_ev([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]))
    with pytest.raises(QrspecError, match=r"neutral_tau_x_ns=-1.0 must be tau > 0"):
        label_levels(seg, evidence=_ev([2.3, 10.0], [1.0, 2.1]), neutral_tau_x_ns=-1.0)
    with pytest.raises(QrspecError, match=r"tau_xx_ns shape \(1,\) != number of levels"):
        LevelEvidence.from_lifetimes([1.0, 2.0], tau_xx_ns=[1.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio_split": 1.0}, r"ratio_split=1.0 must be > 1"),
        ({"alpha": 0.5}, r"alpha=0.5 must be in \(0, 0.5\)"),
        ({"shape_alpha": 0.0}, r"shape_alpha=0.0 must be in \(0, 0.5\)"),
        ({"charged_tau_fraction": 1.0}, r"charged_tau_fraction=1.0 must be in \(0, 1\)"),
        ({"shape_min_fraction": 0.5}, r"shape_min_fraction=0.5 must be in \[0, 0.5\)"),
        ({"shape_min_tau_ratio": 0.9}, r"shape_min_tau_ratio=0.9 must be >= 1"),
        ({"shape_max_tau_ns": 0.0}, r"shape_max_tau_ns=0.0 must be > 0"),
    ],
)
def test_new_rules_validate(kwargs, match):
    with pytest.raises(QrspecError, match=match):
        LabelRules(**kwargs)


def test_unconfirmed_candidate_with_the_radiative_rate_of_a_charged_level():
    # issue 15: a staircase whose last (n = 2) state has no pairs was called neutral. Level 0
    # is charged by its pair ratio (2.1 +- 0.05); level 1 lives longer (4.3 ns) but has no
    # pairs. rho_rad of level 0 against level 1 = (30000/3.9)/(60000/4.3) = 0.55: the same or a
    # lower radiative rate, impossible for a charged level against a neutral one (~2)
    from qrspec.levels import LevelEvidence

    ev = LevelEvidence.from_lifetimes([3.9, 4.3], [0.02, 0.05], [1.857, np.nan],
                                      [0.044, np.nan])
    res = label_levels(two_levels(), evidence=ev)
    assert res.neutral_level == -1 and "neutral_undecided" in res.flags
    assert res.label[0] == "charged" and res.label[1] != "neutral"
    assert "radiative rate equals that of the charged levels [0]" in res.notes[1]
    # a charged level with rho_rad ~ 2 against the candidate leaves it neutral (unconfirmed):
    # level 0 at 30000 cps and 1.0 ns against level 1 at 60000 cps and 4.3 ns: rho = 2.15
    ev = LevelEvidence.from_lifetimes([1.0, 4.3], [0.01, 0.05], [0.476, np.nan],
                                      [0.011, np.nan])
    res = label_levels(two_levels(), evidence=ev)
    assert res.neutral_level == 1 and "neutral_unconfirmed" in res.flags
    assert res.label[0] == "charged"
