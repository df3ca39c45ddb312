"""Tests of photon-burst removal (qrspec.levels.bursts) and bleaching (qrspec.levels.bleaching)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from qrspec.errors import QrspecError
from qrspec.levels.bleaching import detect_bleaching
from qrspec.levels.bursts import BurstRemoval, find_bursts, remove_bursts
from qrspec.levels.segments import Segments
from qrspec.photons import Markers, Photons
from qrspec.stats.trace import intensity_trace

UNIT = 1e-7  # 10 MHz T3 tick


def poisson_photons(rng, rate_cps, duration_s, extra=()):
    """T3 photons at a constant rate plus (time_s, n) bursts of n photons within 100 us."""
    n_ticks = int(duration_s / UNIT)
    ts = [rng.integers(0, n_ticks, rng.poisson(rate_cps * duration_s))]
    for t, n in extra:
        ts.append(int(t / UNIT) + rng.integers(0, 1000, n))
    ts = np.sort(np.concatenate(ts))
    return Photons.from_arrays(ts, rng.integers(0, 2, ts.size), rng.integers(0, 6000, ts.size),
                               timestamps_unit=UNIT, nanotimes_unit=16e-12)


# ---------------------------------------------------------------- bursts
def covered(windows_s, start, duration):
    """Fraction of [start, start + duration) inside the windows."""
    lo = np.maximum(windows_s[:, 0], start)
    hi = np.minimum(windows_s[:, 1], start + duration)
    return float(np.sum(np.clip(hi - lo, 0, None))) / duration


def test_bursts_found_removed_and_counted(rng):
    ph = poisson_photons(rng, 20000.0, 20.0, extra=[(3.0, 600), (11.5, 800)])
    tr = intensity_trace(ph, 0.01)
    b = find_bursts(tr)
    assert isinstance(b, BurstRemoval)
    assert b.n_bursts == 2
    for t in (3.0, 11.5):  # each burst (100 us from t) lies in removed windows, except a
        # remainder cut off by a bin edge that is within the noise of the level (< ~3 sigma)
        assert covered(b.windows_s, t, 1e-4) > 0.85
    # reference: the largest of ~400 independent medians of 5 bins (sd ~8 counts) -> ~+3 sd
    # above 200 counts/bin; threshold ~ mu + 5 sqrt(mu)
    assert 20000 < b.reference_cps < 23500 and 260 < b.threshold_counts < 320
    n_bins = int(round(b.removed_s / 0.01))  # 2, or 3 if a burst straddles two bins
    # level photons 200 per bin (sd 14 per bin); a remainder of <= 15 % of a burst may stay;
    # the excess uses the reference mu (a running maximum: ~1.5 sd high), so it is low by
    # up to ~25 photons per bin
    assert b.n_photons == pytest.approx(1400 + n_bins * 200, abs=150)
    assert 1400 - 250 < b.excess_photons <= 1400 + 50
    clean = remove_bursts(ph, b)
    assert clean.size == ph.size - b.n_photons
    assert find_bursts(intensity_trace(clean, 0.01)).n_bursts == 0
    # gaps closed by whole ticks: the last photon moves back by the removed time
    assert (ph.timestamps[-1] - clean.timestamps[-1]) * UNIT == pytest.approx(b.removed_s)
    assert b.removed_s == pytest.approx(0.01 * n_bins)
    # analysis time -> file time
    t = clean.timestamps * UNIT
    back = b.to_original_s(t)
    keep = ~np.any((ph.timestamps[:, None] >= b.windows_ticks[:, 0])
                   & (ph.timestamps[:, None] < b.windows_ticks[:, 1]), axis=1)
    assert np.allclose(back, ph.timestamps[keep] * UNIT, atol=1e-12)


def test_no_false_bursts_on_blinking_traces(rng):
    # on/off telegraph, 20 kcps / 200 cps, 60 traces of 30 s: design alpha = 0.01 per particle
    # (measured 0.003, scripts/validate_hygiene.py); more than 3 false particles in 60 would
    # need a rate > ~0.02 (binomial tail < 0.5 % at 0.01)
    false = 0
    for _ in range(60):
        n_bins = 3000
        on = np.repeat(rng.random(n_bins // 50) < 0.5, 50)
        c = rng.poisson(np.where(on, 200.0, 2.0))
        c = np.append(c, 0)
        from qrspec.stats.trace import IntensityTrace
        tr = IntensityTrace(c, c[None, :], (0,), 100000 * UNIT, 100000, 0, UNIT)
        false += find_bursts(tr).n_bursts > 0
    assert false <= 3


def test_markers_and_sync_follow_the_removal(rng):
    ph = poisson_photons(rng, 20000.0, 5.0, extra=[(2.0, 900)])
    ph = Photons(ph.timestamps, ph.timestamps_unit, ph.detectors, ph.nanotimes,
                 ph.nanotimes_unit, markers=Markers(np.array([10, 20_000_005, 40_000_000]),
                                                    np.array([1, 2, 4], np.uint16)))
    b = find_bursts(intensity_trace(ph, 0.01))
    out = remove_bursts(ph, b)
    assert_array_equal(out.markers.bits, [1, 4])
    assert b.n_bursts == 1
    assert out.markers.timestamps[1] == 40_000_000 - int(np.diff(b.windows_ticks)[0, 0])


def test_burst_input_checks(rng):
    ph = poisson_photons(rng, 1000.0, 2.0)
    tr = intensity_trace(ph, 0.01)
    with pytest.raises(QrspecError, match=r"photons=ndarray must be Photons or an "):
        find_bursts(np.zeros(5))
    with pytest.raises(QrspecError, match=r"alpha=1.5 must be in \(0, 1\)"):
        find_bursts(tr, alpha=1.5)
    with pytest.raises(QrspecError, match=r"max_burst_bins=0 must be an integer >= 1"):
        find_bursts(tr, max_burst_bins=0)
    b = find_bursts(tr)
    assert b.n_bursts == 0 and remove_bursts(ph, b) is ph
    with pytest.raises(QrspecError, match=r"photons=str must be a Photons object"):
        remove_bursts("x", b)
    with pytest.raises(QrspecError, match=r"bursts=int must be a BurstRemoval"):
        remove_bursts(ph, 3)
    other = Photons.from_arrays([0, 5], [0, 1], timestamps_unit=1e-12)
    with pytest.raises(QrspecError, match=r"bursts.timestamps_unit=1e-07 differs"):
        remove_bursts(other, b)
    from qrspec.stats.trace import IntensityTrace
    empty = IntensityTrace(np.zeros(1, np.int64), np.zeros((1, 1), np.int64), (0,), 0.01,
                           100000, 0, UNIT)
    assert find_bursts(empty).n_bursts == 0


def test_simulated_bursts_found(rng):
    simulate = pytest.importorskip("qrspec.simulate")
    from qrspec.simulate.artefacts import add_bursts

    sim = simulate.simulate_particle(simulate.preset("mn-doped", duration_s=8.0), seed=2)
    assert find_bursts(sim.photons).n_bursts == 0
    # 62 kcps neutral level = 62 counts per 1 ms bin: 300 photons in 1 ms are far above
    # every level, also in a dim (charged) period
    ph, truth = add_bursts(sim, start_s=[2.0, 6.5], n_photons=300, duration_s=1e-3, seed=1)
    assert ph.size == sim.photons.size + 600
    b = find_bursts(ph)
    for s, d in zip(truth.start_s, truth.duration_s, strict=True):
        assert covered(b.windows_s, s, d) > 0.9
    with pytest.raises(QrspecError, match=r"profile='x' must be 'irf' or 'flat'"):
        add_bursts(sim, start_s=[1.0], n_photons=3, profile="x")


# ---------------------------------------------------------------- bleaching
def labelled(durations, labels, rate_on=20000.0, rate_off=200.0):
    d = np.asarray(durations, float)
    b_s = np.concatenate([[0.0], np.cumsum(d)])
    rates = np.where(np.asarray(labels) == "off", rate_off, rate_on)
    b_i = np.concatenate([[0], np.cumsum(np.round(d * rates)).astype(np.int64)])
    lv = (np.asarray(labels) != "off").astype(int)
    return Segments.from_boundaries(b_s, b_i, level=lv, label=labels)


def blinking(rng, n, alpha_off, final=None):
    """Alternating on/off stays (on exponential 0.5 s, off power law from 20 ms)."""
    d, lab = [], []
    for k in range(n):
        if k % 2 == 0:
            d.append(rng.exponential(0.5) + 0.02)
            lab.append("neutral")
        else:
            d.append(0.02 * (1 - rng.random()) ** (-1 / (alpha_off - 1)))
            lab.append("off")
    if final is not None:
        if lab[-1] == "off":
            d.append(0.3)
            lab.append("neutral")
        d.append(final)
        lab.append("off")
    return labelled(d, lab)


def test_bleaching_detected_and_trimmed(rng):
    seg = blinking(rng, 200, 2.5, final=40.0)
    b = detect_bleaching(seg)
    assert b.bleached and b.method == "power_law" and b.survival_p < 0.01
    assert b.bleach_time_s == pytest.approx(seg.start_s[-1])
    assert b.final_off_s == pytest.approx(40.0)
    assert b.window_s == (0.0, pytest.approx(seg.start_s[-1]))
    trimmed = b.trim(seg)
    assert trimmed.size == seg.size - 1 and trimmed.stop_s[-1] == pytest.approx(b.bleach_time_s)


def test_long_final_blink_with_heavy_tailed_off_times_is_not_bleaching(rng):
    # off stays alpha = 1.3: a 5 s blink is common (P(T >= 5 s) ~ 0.2)
    seg = blinking(rng, 200, 1.3, final=5.0)
    b = detect_bleaching(seg)
    assert not b.bleached and b.method == "power_law" and b.survival_p > 0.01
    assert b.trim(seg) is seg and math.isnan(b.bleach_time_s)


def test_bleaching_without_an_off_history_uses_the_prior_law():
    # resolution 300 / (20000 - 200) s ~ 15 ms; prior alpha 1.5: an off stay begun at age a
    # survives to the end with (a / 15 ms)^-0.5; two off stays (ages 8 s, 13.1 s) -> p ~ 0.08
    seg = labelled([10.0, 0.1, 5.0, 8.0], ["neutral", "off", "neutral", "off"])
    b = detect_bleaching(seg)
    assert not b.bleached and b.method == "prior_power_law"
    res = 300 / (20000 - 200)
    assert b.survival_p == pytest.approx((8.0 / res) ** -0.5 + (13.1 / res) ** -0.5, rel=0.01)
    long = labelled([10.0, 0.1, 5.0, 2000.0], ["neutral", "off", "neutral", "off"])
    assert detect_bleaching(long).bleached
    assert detect_bleaching(seg, prior_alpha=3.0).bleached


@pytest.mark.parametrize("labels, method", [
    (["neutral", "off", "neutral"], "last_stay_on"),
    (["off"], "never_on"),
])
def test_bleaching_trivial_cases(labels, method):
    b = detect_bleaching(labelled([1.0] * len(labels), labels))
    assert not b.bleached and b.method == method
    assert detect_bleaching(Segments.empty()).method == "empty"


@pytest.mark.parametrize("kw, match", [
    (dict(p_threshold=0.0), r"p_threshold=0.0 must be in \(0, 1\)"),
    (dict(min_final_s=-1.0), r"min_final_s=-1.0 must be a finite number >= 0"),
    (dict(prior_alpha=1.0), r"prior_alpha=1.0 must be a finite number > 1"),
])
def test_bleaching_rejects_bad_options(kw, match):
    with pytest.raises(QrspecError, match=match):
        detect_bleaching(labelled([1.0, 1.0], ["neutral", "off"]), **kw)


def test_simulated_bleaching_removes_emitter_photons():
    simulate = pytest.importorskip("qrspec.simulate")
    from qrspec.simulate.artefacts import bleach

    sim = simulate.simulate_particle(simulate.preset("neutral", duration_s=4.0), seed=1)
    ph = bleach(sim, 3.0)
    late = ph.timestamps * ph.timestamps_unit >= 3.0
    # after 3 s only dark counts (2 x 100 cps) and late afterpulses remain
    assert late.sum() < 0.01 * (sim.photons.timestamps * UNIT >= 3.0).sum()
    with pytest.raises(QrspecError, match=r"bleach_time_s=-1.0 must be a finite number >= 0"):
        bleach(sim, -1.0)
