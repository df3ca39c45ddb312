"""Tests of qrspec.levels.dwell: stays from labelled segments, blinking statistics, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from qrspec.errors import QrspecError
from qrspec.levels.dwell import (
    MIN_EVENTS,
    BlinkingStatistics,
    DwellSequence,
    blinking_statistics,
    dwell_sequence,
    dwell_time_resolution_s,
    level_dwell_laws,
    memory_correlation,
    pooled_dwell_law,
)
from qrspec.levels.dwell_laws import fit_dwell_law
from qrspec.levels.segments import Segments


def labelled_segments(durations, labels, rates):
    """Segments with the given durations (s), labels and photon rates (cps; counts rounded)."""
    d = np.asarray(durations, float)
    b_s = np.concatenate([[0.0], np.cumsum(d)])
    counts = np.round(d * np.asarray(rates, float)).astype(np.int64)
    b_i = np.concatenate([[0], np.cumsum(counts)])
    levels = [0 if lab == "off" else 1 for lab in labels]
    return Segments.from_boundaries(b_s, b_i, level=levels, label=labels)


def renewal_segments(rng, n_stays, alpha_on, alpha_off, t0, rate_on=50000.0, rate_off=500.0):
    """Alternating on/off stays with power-law durations; each stay split in 1-3 segments of
    the same label (change points inside a state are merged back by dwell_sequence)."""
    durs, labs, rates = [], [], []
    truth = {"on": [], "off": []}
    for k in range(n_stays):
        state = "on" if k % 2 == 0 else "off"
        a = alpha_on if state == "on" else alpha_off
        d = t0 * (1.0 - rng.random()) ** (-1.0 / (a - 1.0))
        truth[state].append(d)
        parts = rng.integers(1, 4)
        cuts = np.sort(rng.random(parts - 1)) * d
        pieces = np.diff(np.concatenate([[0.0], cuts, [d]]))
        for p in pieces:
            durs.append(p)
            labs.append("neutral" if state == "on" else "off")
            rates.append(rate_on if state == "on" else rate_off)
    return labelled_segments(durs, labs, rates), truth


# ---------------------------------------------------------------- sequences
def test_dwell_sequence_merges_runs_and_marks_censoring():
    seg = labelled_segments([1.0, 0.5, 0.2, 0.3, 2.0, 1.0],
                            ["neutral", "charged", "off", "off", "neutral", "off"],
                            [1000, 600, 10, 10, 1000, 10])
    seq = dwell_sequence(seg)
    assert seq.names == ("off", "on")
    assert_array_equal(seq.state, [1, 0, 1, 0])
    assert_allclose(seq.duration_s, [1.5, 0.5, 2.0, 1.0])
    assert_allclose(seq.start_s, [0.0, 1.5, 2.0, 4.0])
    assert_array_equal(seq.left_censored, [True, False, False, False])
    assert_array_equal(seq.right_censored, [False, False, False, True])
    complete, censored = seq.durations("on")
    assert_allclose(complete, [2.0]) and censored.size == 0  # the first on-stay is dropped
    complete, censored = seq.durations("off")
    assert_allclose(complete, [0.5]) and assert_allclose(censored, [1.0])
    # photon-weighted intensities: on = (1000 + 300 + 2000) / 3.5 s, off = 15 / 1.5 s
    assert_allclose(seq.intensity_cps, [15 / 1.5, 3300 / 3.5])
    trimmed = dwell_sequence(seg, censor_last=False)
    assert not trimmed.right_censored.any()


def test_dwell_sequence_by_level_and_by_label():
    seg = labelled_segments([1.0, 0.5, 0.2, 2.0], ["neutral", "charged", "off", "neutral"],
                            [1000, 600, 10, 1000]).with_levels([2, 1, 0, 2])
    by_level = dwell_sequence(seg, by="level")
    assert by_level.names == ("level0", "level1", "level2")
    assert_array_equal(by_level.state, [2, 1, 0, 2])
    by_label = dwell_sequence(seg, by="label")
    assert by_label.names == ("charged", "neutral", "off")
    assert_array_equal(by_label.state, [1, 0, 2, 1])
    on_only = dwell_sequence(seg, off_labels=("off", "charged"))
    assert_array_equal(on_only.state, [1, 0, 1])
    assert dwell_sequence(Segments.empty()).size == 0


@pytest.mark.parametrize("call, match", [
    (lambda s: dwell_sequence(s, by="state"), r"by='state' must be 'onoff', 'level' or 'label'"),
    (lambda s: dwell_sequence(s.with_labels(["", "", ""])), r"by='onoff' needs labelled "),
    (lambda s: dwell_sequence(s.with_levels([-1, 0, 1]), by="level"), r"needs clustered"),
    (lambda s: dwell_sequence("segments"), r"segments=str must be a qrspec.levels.Segments"),
    (lambda s: dwell_sequence(s).durations("grey"), r"state='grey' must be one of"),
])
def test_dwell_sequence_rejects_bad_input(call, match):
    seg = labelled_segments([1.0, 1.0, 1.0], ["neutral", "off", "neutral"], [100, 1, 100])
    with pytest.raises(QrspecError, match=match):
        call(seg)


def test_resolution_from_the_contrast():
    assert dwell_time_resolution_s(30300.0, 300.0) == pytest.approx(0.01)
    assert math.isnan(dwell_time_resolution_s(100.0, 100.0))


# ---------------------------------------------------------------- memory
def sequence_from(durations, states):
    n = len(durations)
    d = np.asarray(durations, float)
    return DwellSequence(np.cumsum(d) - d, d, np.asarray(states, np.int64), ("off", "on"),
                         np.array([1.0, 100.0]), np.zeros(n, bool), np.zeros(n, bool))


def test_memory_correlation_against_numpy():
    rng = np.random.default_rng(4)
    on = np.exp(rng.normal(size=30))
    off = np.exp(rng.normal(size=30))
    dur = np.ravel(np.column_stack([on, off]))
    seq = sequence_from(dur, np.tile([1, 0], 30))
    m = memory_correlation(seq, "on", "on")
    r = np.corrcoef(np.log(on[:-1]), np.log(on[1:]))[0, 1]
    assert m.n_pairs == 29 and m.r == pytest.approx(r)
    assert m.r_err == pytest.approx(math.sqrt((1 - r * r) / 29))
    m2 = memory_correlation(seq, "on", "off")
    assert m2.n_pairs == 30
    assert m2.r == pytest.approx(np.corrcoef(np.log(on), np.log(off))[0, 1])
    few = memory_correlation(sequence_from([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 0]), "on", "on")
    assert few.n_pairs == 1 and math.isnan(few.r) and math.isnan(few.r_err)


def test_memory_error_covers_a_known_correlation():
    # AR(1) log durations with rho = 0.5, 120 stays per state, 80 sequences: coverage of
    # r +- r_err measured 0.63-0.73 for 68 % (scripts/validate_dwell.py --part memory); the
    # binomial sd with 80 samples is 0.05: limits at ~3 sd
    rng = np.random.default_rng(9)
    inside = 0
    for _ in range(80):
        z = np.empty(120)
        z[0] = rng.normal()
        for k in range(1, 120):
            z[k] = 0.5 * z[k - 1] + math.sqrt(0.75) * rng.normal()
        dur = np.ravel(np.column_stack([np.exp(z), np.exp(rng.normal(size=120))]))
        m = memory_correlation(sequence_from(dur, np.tile([1, 0], 120)), "on", "on")
        inside += abs(m.r - 0.5) <= m.r_err
    assert 0.52 <= inside / 80 <= 0.84


# ---------------------------------------------------------------- statistics
def test_blinking_statistics_recovers_the_exponents(rng):
    seg, truth = renewal_segments(rng, 600, 1.5, 2.0, 0.02)
    st = blinking_statistics(seg, models=("power_law", "exponential"))
    assert isinstance(st, BlinkingStatistics)
    # resolution = 300 / (I_on - I_off) = 300 / 49500 ~ 6 ms, below t0 = 20 ms
    assert st.resolution_s == pytest.approx(300 / 49500, rel=0.02)
    assert abs(st.on.alpha - 1.5) < 3 * st.on.alpha_err
    assert abs(st.off.alpha - 2.0) < 3 * st.off.alpha_err
    assert st.on.t_min_s >= st.resolution_s and st.off.t_min_s >= st.resolution_s
    assert st.on.best_model == "power_law"
    s = st.summary()
    for key in ("alpha_on", "alpha_on_err", "alpha_off", "alpha_off_err", "t_min_on_s",
                "n_on_events", "memory_on", "memory_on_err", "memory_on_off", "dwell_model_off",
                "dwell_resolution_s"):
        assert key in s
    assert s["alpha_on"] == st.on.alpha and s["n_off_events"] == st.off.n_events
    assert abs(s["memory_on"]) < 4 * s["memory_on_err"]  # independent stays: no memory
    assert st.flags == ()


def test_blinking_statistics_flags_missing_off_state():
    seg = labelled_segments([1.0, 2.0, 0.5], ["neutral", "charged", "neutral"], [1e4, 5e3, 1e4])
    st = blinking_statistics(seg)
    assert math.isnan(st.on.alpha) and math.isnan(st.off.alpha)
    assert any("no off stays" in f for f in st.flags)
    assert any(f.startswith("alpha_on: too few events") for f in st.flags)
    assert np.isfinite(st.resolution_s)  # from the on intensity alone
    assert math.isnan(st.summary()["alpha_off_err"])


def test_blinking_statistics_rejects_bad_resolution():
    seg = labelled_segments([1.0, 2.0], ["neutral", "off"], [1e4, 10])
    with pytest.raises(QrspecError, match=r"resolution_s=-1.0 must be a finite number > 0"):
        blinking_statistics(seg, resolution_s=-1.0)


def test_pooled_law_equals_the_fit_of_all_stays(rng):
    parts = [blinking_statistics(renewal_segments(rng, 80, 1.7, 1.7, 0.02)[0],
                                 models=("power_law",)) for _ in range(5)]
    pooled = pooled_dwell_law(parts, state="off", models=("power_law",))
    comp, cens = zip(*(p.sequence.durations("off") for p in parts), strict=True)
    ref = fit_dwell_law(np.concatenate(comp), np.concatenate(cens),
                        resolution_s=max(p.resolution_s for p in parts),
                        min_events=MIN_EVENTS, models=("power_law",))
    assert pooled.alpha == ref.alpha and pooled.t_min_s == ref.t_min_s
    assert abs(pooled.alpha - 1.7) < 3 * pooled.alpha_err
    with pytest.raises(QrspecError, match=r"state='grey' must be 'on' or 'off'"):
        pooled_dwell_law(parts, state="grey")
    with pytest.raises(QrspecError, match=r"particles must be a non-empty sequence"):
        pooled_dwell_law([])


def test_level_dwell_laws(rng):
    seg, _ = renewal_segments(rng, 300, 1.6, 1.6, 0.02)
    laws = level_dwell_laws(seg)
    assert len(laws) == 2
    for law in laws:
        assert abs(law.alpha - 1.6) < 3 * law.alpha_err
    single = labelled_segments([1.0, 1.0], ["neutral", "neutral"], [100, 100])
    (only,) = level_dwell_laws(single.with_levels([0, 0]))
    assert math.isnan(only.alpha) and "no other level" in only.flag


# ---------------------------------------------------------------- end to end
def test_power_law_blinking_recovered_through_change_points():
    """Simulated photons with power-law on/off blinking -> CPA -> levels -> labels -> alpha."""
    simulate = pytest.importorskip("qrspec.simulate")
    from qrspec.levels import cluster_levels, find_change_points, label_levels

    base = simulate.EmitterConfig().state_table(1)
    tau = np.asarray(base.tau_ns, float).copy()
    qy = np.asarray(base.qy, float).copy()
    tau[1], qy[1] = (0.3, 0.1, 0.05), (0.01, 0.01, 0.01)  # dark (Auger-quenched) state
    cfg = simulate.SimulationConfig(
        duration_s=40.0, mean_excitations=0.1,
        emitter=simulate.EmitterConfig(tau_ns=tuple(map(tuple, tau)), qy=tuple(map(tuple, qy))),
        charge=simulate.ChargeConfig(mode="telegraph", n_charged=1, n_initial=1, n_max=1,
                                     dwell_law="power_law", alpha_charged=2.2,
                                     alpha_neutral=2.2, t_min_s=0.05, t_max_s=1e4,
                                     start_charged=False))
    sim = simulate.simulate_particle(cfg, seed=5)
    ph = sim.photons
    det = sim.config.detection
    levels = cluster_levels(find_change_points(ph).segments())
    nt_ns = ph.nanotimes * ph.nanotimes_unit * 1e9 - np.asarray(det.offset_ns)[ph.detectors]
    lab = label_levels(levels, nanotimes_ns=nt_ns, delay_offset_ns=0.0,
                       background_cps=float(np.sum(det.dark_cps)))
    st = blinking_statistics(lab.segments, models=("power_law", "exponential"))
    truth = sim.truth.charge
    n_true = int(np.sum(truth.n[1:-1] == 0))
    # ~13 kcps on, 200 cps off: resolution ~23 ms < t0 = 50 ms, so nearly every stay is found
    assert st.resolution_s < 0.05
    assert st.on.n_events >= MIN_EVENTS and st.off.n_events >= MIN_EVENTS
    assert st.on.n_events <= n_true + 3
    # the exponents within 3 standard errors of the truth (errors include the t_min choice)
    assert abs(st.on.alpha - 2.2) < 3 * st.on.alpha_err
    assert abs(st.off.alpha - 2.2) < 3 * st.off.alpha_err
