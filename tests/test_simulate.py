"""Tests of qrspec.simulate against closed forms, with tolerances from counting statistics.

Statistical checks use ``4 sigma`` bounds (two-sided false-alarm probability 6e-5 per check) with
sigma computed from the counts involved; every seed is fixed, so the tests are deterministic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from qrspec.charging.states import StateTable
from qrspec.errors import QrspecError
from qrspec.simulate import (
    ORIGINS,
    ChargeConfig,
    ChargeIntervals,
    DetectionConfig,
    EmitterConfig,
    PopulationSpread,
    SimulationConfig,
    _kernels,
    population_configs,
    preset,
    read_truth,
    sidecar_path,
    simulate_charge_intervals,
    simulate_particle,
    simulate_population,
    theory,
    write_particle,
)
from qrspec.simulate.cascade import bernoulli_positions, cascade_pmf
from qrspec.simulate.charge import sample_dwell_times

RES_NS = 0.016
OFFSETS_NS = (312 * RES_NS, 468 * RES_NS)  # whole TCSPC bins: gates and means are exact
TAU = (6.0, 1.5, 0.7)  # X, XX, XXX lifetimes (ns) of the explicit test emitter
QY = (1.0, 0.9, 0.8)

# detection without noise, dead time or IRF: the photon statistics of the emitter itself
CLEAN = dict(eta_collection=0.5, split=0.55, qe=(0.7, 0.45), dark_cps=(0.0, 0.0),
             afterpulse_prob=(0.0, 0.0), dead_time_ns=(0.0, 0.0), one_photon_per_sync=False,
             irf_sigma_ns=(0.001, 0.001), irf_tail_weight=(0.0, 0.0), offset_ns=OFFSETS_NS)


def clean_config(**changes) -> SimulationConfig:
    det = dict(CLEAN)
    det.update(changes.pop("detection", {}))
    base = dict(duration_s=0.2, mean_excitations=0.5, laser_fwhm_ns=0.0,
                emitter=dict(tau_ns=(TAU,), qy=(QY,)), detection=det)
    base.update(changes)
    return preset("neutral").replace(**base)


@pytest.fixture(scope="module")
def sim_k2():
    return simulate_particle(clean_config(n_max_cascade=2), seed=11)


@pytest.fixture(scope="module")
def sim_k3():
    return simulate_particle(clean_config(n_max_cascade=3), seed=12)


def micro_ns(photons) -> np.ndarray:
    """Nanotime relative to each detector's IRF position, ns."""
    return photons.nanotimes * RES_NS - np.asarray(OFFSETS_NS)[photons.detectors]


def pair_counts(photons, n_pulses: int, keep=None, max_k: int = 10) -> dict[int, int]:
    """C_k = number of (det 0 in sync s, det 1 in sync s + k) pairs (numpy reference)."""
    keep = np.ones(photons.size, bool) if keep is None else keep
    ts, det = photons.timestamps[keep], photons.detectors[keep]
    c0 = np.bincount(ts[det == 0], minlength=n_pulses)
    c1 = np.bincount(ts[det == 1], minlength=n_pulses)
    out = {}
    for k in range(-max_k, max_k + 1):
        out[k] = int(np.dot(c0[: n_pulses - k], c1[k:]) if k >= 0 else np.dot(c0[-k:], c1[:k]))
    return out


def g2_from_pairs(c: dict[int, int]) -> tuple[float, float]:
    """g2(0) = C_0 / mean(C_k, k != 0) and its Poisson sigma (methods.md §2.2 item 4)."""
    side = [v for k, v in c.items() if k != 0]
    g2 = c[0] / np.mean(side)
    return g2, g2 * np.sqrt(1.0 / c[0] + 1.0 / np.sum(side))


def floor_mean_ns(tau_ns: float, h: float = RES_NS) -> float:
    """E[floor(X/h) h] for X ~ Exp(tau): the mean of an exponential quantised to bins."""
    q = np.exp(-h / tau_ns)
    return h * q / (1.0 - q)


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("name", ["neutral", "undoped", "mn-doped"])
def test_config_json_round_trip(name):
    cfg = preset(name, duration_s=3.0)
    assert SimulationConfig.from_json(cfg.to_json()) == cfg
    assert SimulationConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.config_hash() == SimulationConfig.from_json(cfg.to_json()).config_hash()


def test_config_round_trip_with_schedule_and_table():
    cfg = clean_config(charge=dict(mode="script", schedule=((0.0, 0.1, 0), (0.1, 1.0, 2))),
                       emitter=dict(tau_ns=(TAU, TAU, TAU), qy=(QY, QY, QY)))
    back = SimulationConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.charge.schedule == ((0.0, 0.1, 0), (0.1, 1.0, 2))


BAD_CONFIGS = [
    (lambda: SimulationConfig(duration_s=-1.0), r"duration_s=-1.0 must be a finite number > 0"),
    (lambda: SimulationConfig(duration_s=1e-9), r"duration_s=1e-09 is shorter than one laser"),
    (lambda: SimulationConfig(mean_excitations=-0.1), r"mean_excitations=-0.1 must lie in"),
    (lambda: SimulationConfig(laser_fwhm_ns=-1.0), r"laser_fwhm_ns=-1.0 must be >= 0"),
    (lambda: SimulationConfig(n_max_cascade=4), r"n_max_cascade=4 must be 1, 2 or 3"),
    (lambda: SimulationConfig(record_type="PicoHarpT3"), r"record_type='PicoHarpT3' must be"),
    (lambda: SimulationConfig(resolution_s=1e-15), r"resolution_s=1e-15 gives .* at most 32768"),
    (lambda: SimulationConfig(emitter={}), r"emitter=\{\} must be a EmitterConfig"),
    (lambda: EmitterConfig(tau_x0_ns=0.0), r"tau_x0_ns=0.0 must be a finite number > 0"),
    (lambda: EmitterConfig(qy_x0=1.5), r"qy_x0=1.5 must be in \(0, 1\]"),
    (lambda: EmitterConfig(gamma=-1.0), r"gamma=-1.0 must be in \[0.0, 1000.0\]"),
    (lambda: EmitterConfig(tau_x0_ns=None), r"tau_x0_ns=None, tau_a_xx0_ns=13.9: a simulated "
                                            r"emitter needs both neutral lifetimes"),
    (lambda: EmitterConfig(tau_ns=((1.0, 1.0, 1.0),)), r"tau_ns=.* and qy must be given"),
    (lambda: EmitterConfig().state_table(-1), r"n_max=-1 must be >= 0"),
    (lambda: EmitterConfig(tau_ns=(TAU,), qy=(QY,)).state_table(2),
     r"n_max=2 exceeds the explicit table's largest charge state 0"),
    (lambda: ChargeConfig(mode="random"), r"mode='random' must be one of"),
    (lambda: ChargeConfig(dwell_law="gauss"), r"dwell_law='gauss' must be one of"),
    (lambda: ChargeConfig(n_charged=-1), r"n_charged=-1 must be an integer >= 0"),
    (lambda: ChargeConfig(n_charged=50), r"n_max=40 must be >= n_charged and n_initial"),
    (lambda: ChargeConfig(discharge_rate_hz=-1.0), r"discharge_rate_hz=-1.0 must be a finite"),
    (lambda: ChargeConfig(t_min_s=0.0), r"t_min_s=0.0 must be a finite number > 0"),
    (lambda: ChargeConfig(t_min_s=20.0), r"t_min_s=20.0 must be < t_max_s"),
    (lambda: ChargeConfig(alpha_charged=0.0), r"alpha_charged=0.0 must be a finite number > 0"),
    (lambda: ChargeConfig(schedule=((0.0, 1.0),)), r"schedule row=\(0.0, 1.0\) must be"),
    (lambda: ChargeConfig(schedule=((0.0, 1.0, 1.5),)), r"schedule n=1.5 must be an integer"),
    (lambda: ChargeConfig(mode="script"), r"schedule=\(\) must not be empty"),
    (lambda: ChargeConfig(mode="script", schedule=((1.0, 2.0, 0),)), r"must start at t_start_s"),
    (lambda: ChargeConfig(mode="script", schedule=((0.0, 0.0, 0),)), r"t_start_s < t_stop_s"),
    (lambda: ChargeConfig(mode="script", schedule=((0.0, 1.0, 0), (2.0, 3.0, 1))),
     r"rows must be contiguous"),
    (lambda: DetectionConfig(split=2.0), r"split=2.0 must lie in \[0, 1\]"),
    (lambda: DetectionConfig(crosstalk_delay_ns=-1.0), r"crosstalk_delay_ns=-1.0 must be >= 0"),
    (lambda: DetectionConfig(bg_profile="gauss"), r"bg_profile='gauss' must be 'flat' or 'irf'"),
    (lambda: DetectionConfig(qe=(0.5, 1.5)), r"qe=\(0.5, 1.5\) must lie in \[0.0, 1.0\]"),
    (lambda: DetectionConfig(qe=0.5), r"qe=0.5 must be a pair of numbers"),
    (lambda: DetectionConfig(irf_tail_ns=(0.0, 0.3)), r"irf_tail_ns=\(0.0, 0.3\) must lie in \("),
    (lambda: SimulationConfig.from_json("{"), r"config JSON is invalid"),
    (lambda: SimulationConfig.from_dict([1]), r"config=\[1\] must be a JSON object"),
    (lambda: SimulationConfig.from_dict({"speed": 1}), r"config keys=\['speed'\] are not"),
    (lambda: SimulationConfig.from_dict({"charge": {"x": 1}}), r"charge keys=\['x'\] are not"),
    (lambda: SimulationConfig().replace(speed=1), r"fields=\['speed'\] are not SimulationConfig"),
    (lambda: SimulationConfig().replace(charge={"x": 1}), r"charge=\['x'\] are not ChargeConfig"),
    (lambda: preset("quantum-dot"), r"preset='quantum-dot' must be one of"),
]


@pytest.mark.parametrize("make, match", BAD_CONFIGS)
def test_config_rejects_bad_values(make, match):
    with pytest.raises(QrspecError, match=match):
        make()


def test_emitter_state_table_follows_variant_c():
    em = EmitterConfig(tau_x0_ns=8.0, qy_x0=1.0, tau_a_xx0_ns=13.9, eps=0.5, gamma=1.0)
    t = em.state_table(6)
    k_r, k_axx = 1 / 8.0, 1 / 13.9
    # neutral: tau_XX = 1/(4 k_r + k_A,XX); trion: 1/(2 k_r + A_n), A_n = eps k_A,XX / 2
    np.testing.assert_allclose(t.tau_ns[0, :2], [8.0, 1 / (4 * k_r + k_axx)], rtol=1e-12)
    np.testing.assert_allclose(t.tau_ns[1, 0], 1 / (2 * k_r + 0.25 * k_axx), rtol=1e-12)
    # superposition identity of Variant C, gamma = 1: k_A(XX^n-) - k_A,XX = 2 k_A(X^n-)
    ka_x = 1 / t.tau_ns[:, 0] - np.r_[k_r, np.full(6, 2 * k_r)]
    ka_xx = 1 / t.tau_ns[:, 1] - 4 * k_r
    np.testing.assert_allclose(ka_xx - k_axx, 2 * ka_x, rtol=1e-9, atol=1e-15)
    # Mn-doped preset reproduces the paper's tau_A,XX(6-) = 1.70 ns (methods.md §1.7)
    t6 = preset("mn-doped").emitter.state_table(6)
    k_r6 = 1 / preset("mn-doped").emitter.tau_x0_ns
    assert abs(1 / (1 / t6.tau_ns[6, 1] - 4 * k_r6) - 1.70) < 0.005


def test_emitter_is_the_charge_model():
    # one parameter set: the emitter is a ChargeModelConfig, its table the model's state table
    from qrspec.charging.config import ChargeModelConfig
    from qrspec.charging.forward import state_table

    model = ChargeModelConfig(tau_x0_ns=9.0, gamma=2.0, qy_x0=0.8, knr_all_states=True)
    em = EmitterConfig.from_dict(model.to_dict())
    assert isinstance(em, ChargeModelConfig) and em.charge_model() == model
    assert EmitterConfig().charge_model() == ChargeModelConfig()  # one set of defaults
    cfg = preset("mn-doped", emitter=em)
    assert SimulationConfig.from_json(cfg.to_json()) == cfg
    got, want = em.state_table(6), state_table(model, 6)
    np.testing.assert_array_equal(got.tau_ns, want.tau_ns)
    np.testing.assert_array_equal(got.qy, want.qy)
    # sidecars written before the merge stored the model in "charge_model": still readable
    old = {"tau_x0_ns": 10.0, "qy_x0": 1.0, "tau_a_xx0_ns": 13.9, "beta_xminus": 2.0,
           "beta_xx": 4.0, "eps": 0.5, "gamma": 1.0, "tau_ns": None, "qy": None,
           "charge_model": model.to_dict()}
    assert EmitterConfig.from_dict(old).charge_model() == model
    assert SimulationConfig.from_dict({"emitter": {**old, "charge_model": None}}).emitter \
        == EmitterConfig()
    with pytest.raises(QrspecError, match=r"charge_model=1 must be a dict"):
        EmitterConfig.from_dict({"charge_model": 1})
    with pytest.raises(QrspecError, match=r"unknown EmitterConfig keys \['bogus'\]"):
        EmitterConfig.from_dict({"bogus": 1})
    # the population spreads the neutral lifetimes of the model
    pop = population_configs(cfg, 2, seed=3)
    assert pop[0][0].emitter.tau_x0_ns != 9.0 and pop[0][0].emitter.tau_a_xx0_ns != 13.9
    assert pop[0][0].emitter.knr_all_states


# --------------------------------------------------------------------------- charge process
def test_charge_stable_and_script():
    iv = simulate_charge_intervals(ChargeConfig(mode="stable", n_charged=3), 2.0, None)
    assert iv.as_rows() == [(0.0, 2.0, 3)]
    cfg = ChargeConfig(mode="script", schedule=((0.0, 0.5, 0), (0.5, 0.7, 0), (0.7, 9.0, 4)))
    iv = simulate_charge_intervals(cfg, 2.0, None)
    assert iv.as_rows() == [(0.0, 0.7, 0), (0.7, 2.0, 4)]  # equal neighbours merged, clipped
    assert iv.time_fraction() == pytest.approx({0: 0.35, 4: 0.65}, rel=1e-12)
    np.testing.assert_array_equal(iv.at([0.0, 0.69, 0.7, 5.0]), [0, 0, 4, 4])


def test_charge_telegraph_dwell_means(rng):
    cfg = ChargeConfig(mode="telegraph", n_charged=5, charged_dwell_s=2.0, neutral_dwell_s=0.5)
    iv = simulate_charge_intervals(cfg, 3000.0, rng)
    assert iv.t_start_s[0] == 0 and iv.t_stop_s[-1] == 3000.0
    np.testing.assert_array_equal(iv.t_start_s[1:], iv.t_stop_s[:-1])
    assert set(iv.n.tolist()) == {0, 5} and iv.n[0] == 5
    for level, mean in ((5, 2.0), (0, 0.5)):
        d = iv.duration_s[:-1][iv.n[:-1] == level]  # the last interval is truncated
        assert abs(d.mean() - mean) < 4 * mean / np.sqrt(d.size)  # exponential: sd = mean


def test_truncated_power_law_dwell(rng):
    a, b, alpha = 1e-3, 1.0, 1.5
    t = sample_dwell_times(rng, 100_000, law="power_law", mean_s=1.0, alpha=alpha,
                           t_min_s=a, t_max_s=b)
    assert t.min() >= a and t.max() <= b
    # closed-form mean of p(t) ~ t^-1.5 on [a, b]
    norm = (a**-0.5 - b**-0.5) / 0.5
    mean = (b**0.5 - a**0.5) / 0.5 / norm
    sd = np.sqrt((b**1.5 - a**1.5) / 1.5 / norm - mean**2)
    assert abs(t.mean() - mean) < 4 * sd / np.sqrt(t.size)
    t1 = sample_dwell_times(rng, 1000, law="power_law", mean_s=1.0, alpha=1.0, t_min_s=a,
                            t_max_s=b)
    assert t1.min() >= a and t1.max() <= b


def test_charge_pure_death_mean(rng):
    # birth_death without births is the pure-death process: n(t) ~ Binomial(n0, exp(-mu t))
    cfg = ChargeConfig(mode="birth_death", n_initial=400, n_max=400, discharge_rate_hz=0.5)
    iv = simulate_charge_intervals(cfg, 2.0, rng)
    assert np.all(np.diff(iv.n) == -1)
    p = np.exp(-0.5 * 1.0)
    assert abs(iv.at(1.0) - 400 * p) < 4 * np.sqrt(400 * p * (1 - p))


def test_charge_birth_death_stationary(rng):
    # M/M/inf: stationary n ~ Poisson(lambda/mu); time average over a long run
    cfg = ChargeConfig(mode="birth_death", n_initial=0, n_max=100, charge_rate_hz=40.0,
                       discharge_rate_hz=10.0)
    iv = simulate_charge_intervals(cfg, 500.0, rng)
    mean = np.sum(iv.n * iv.duration_s) / 500.0
    # correlation time 1/mu = 0.1 s -> ~2500 independent samples of variance 4
    assert abs(mean - 4.0) < 4 * np.sqrt(4.0 * 2 * 0.1 / 500.0)


def test_charge_decay_plus_telegraph(rng):
    cfg = ChargeConfig(mode="decay_plus_telegraph", n_initial=20, discharge_rate_hz=0.05,
                       charged_dwell_s=2.0, neutral_dwell_s=0.3)
    iv = simulate_charge_intervals(cfg, 60.0, rng)
    charged = iv.n[iv.n > 0]
    assert charged[0] == 20 and np.all(np.diff(charged) <= 0)  # the reservoir only empties
    assert np.any(iv.n == 0) and iv.n_max == 20


def test_charge_errors():
    with pytest.raises(QrspecError, match=r"duration_s=0.0 must be a finite number > 0"):
        simulate_charge_intervals(ChargeConfig(), 0.0, None)
    with pytest.raises(QrspecError, match=r"cfg=1 must be a ChargeConfig"):
        simulate_charge_intervals(1, 1.0, None)
    cfg = ChargeConfig(mode="script", schedule=((0.0, 1.0, 0),))
    with pytest.raises(QrspecError, match=r"schedule ends at t_stop_s=1.0 before duration_s=2"):
        simulate_charge_intervals(cfg, 2.0, None)
    with pytest.raises(QrspecError, match=r"times_s\[0\]=array\(\[1.\]\) must be 0"):
        ChargeIntervals.from_breakpoints([1.0], [0], 2.0)


# --------------------------------------------------------------------------- helpers
def test_cascade_pmf_and_bernoulli_positions(rng):
    pmf = cascade_pmf(0.2, 2)
    np.testing.assert_allclose(pmf, [np.exp(-0.2), 0.2 * np.exp(-0.2),
                                      1 - 1.2 * np.exp(-0.2)], rtol=1e-12)
    pos = bernoulli_positions(rng, 1_000_000, 0.01)
    assert np.all(np.diff(pos) > 0) and pos[-1] < 1_000_000
    assert abs(pos.size - 10_000) < 4 * np.sqrt(10_000 * 0.99)
    assert bernoulli_positions(rng, 10, 0.0).size == 0
    np.testing.assert_array_equal(bernoulli_positions(rng, 5, 1.0), np.arange(5))


def test_theory_matches_methods_numbers():
    # methods.md §2.2: cascade truncated at XX, <N> = 0.2, eta_XX = eta_X -> g2(0) = 0.887
    assert theory.expected_g2_zero(0.2, (1.0, 1.0), 2) == pytest.approx(0.887, abs=5e-4)
    # full cascade with unit QYs is Poissonian only without the cap; K=3 at small <N> -> ~1
    assert theory.expected_g2_zero(0.01, (1, 1, 1), 3) == pytest.approx(1.0, abs=0.01)
    # gated, K = 2: the §2.3 closed form
    mu, (qx, qxx), (tx, txx), tg = 0.3, (0.9, 0.7), (8.0, 2.0), 1.5
    p1 = mu * np.exp(-mu)
    p2 = 1 - np.exp(-mu) * (1 + mu)
    f = (tx * np.exp(-tg / tx) - txx * np.exp(-tg / txx)) / (tx - txx)
    c = p2 * qxx * qx * np.exp(-tg / txx)
    s = p1 * qx * np.exp(-tg / tx) + p2 * (qxx * np.exp(-tg / txx) + qx * f)
    got = theory.expected_gated_g2_zero(mu, (qx, qxx), (tx, txx), tg, 2)
    assert got == pytest.approx(2 * c / s**2, rel=1e-12)
    assert theory.expected_gated_g2_zero(mu, (qx, qxx), (tx, txx), 0.0, 2) == pytest.approx(
        theory.expected_g2_zero(mu, (qx, qxx), 2), rel=1e-12)
    assert theory.dead_time_rate_cps(1e6, 100.0) == pytest.approx(1e6 / 1.1, rel=1e-12)
    with pytest.raises(QrspecError, match=r"qy=\[1.0\] must hold at least n_max_cascade=2"):
        theory.photon_number_moments(0.2, (1.0,), 2)
    with pytest.raises(QrspecError, match=r"tau_ns=\[2.0, 2.0\] must be distinct"):
        theory.hypoexponential_survival((2.0, 2.0), 1.0)


# --------------------------------------------------------------------------- emission statistics
def test_count_rates_match_closed_form(sim_k3):
    cfg = sim_k3.config
    m1, m2 = theory.photon_number_moments(cfg.mean_excitations, QY, 3)
    n = cfg.n_pulses
    for d, p in enumerate(cfg.detection.detection_probabilities()):
        expected = n * p * m1
        var = n * (p * p * m2 + p * m1 - (p * m1) ** 2)  # exact per-pulse variance, summed
        got = int(np.count_nonzero(sim_k3.photons.detectors == d))
        assert abs(got - expected) < 4 * np.sqrt(var)
    counts = sim_k3.truth.counts_by_origin()
    assert counts["dark"] == counts["afterpulse"] == 0 and counts["XXX"] > 0


def test_count_rates_per_charge_state_with_dark_counts():
    # telegraph rod: counts inside each charge state follow that state's E[m]; plus dark counts
    cfg = clean_config(duration_s=0.5, n_max_cascade=2, emitter=dict(tau_ns=None, qy=None),
                       charge=dict(mode="telegraph", n_charged=6, n_max=6, n_initial=6,
                                   charged_dwell_s=0.05, neutral_dwell_s=0.05),
                       detection=dict(dark_cps=(2000.0, 0.0)))
    sim = simulate_particle(cfg, seed=5)
    tr = sim.truth
    p_tot = sum(cfg.detection.detection_probabilities())
    expected = var = 0.0
    for t0, t1, n in tr.charge.as_rows():
        k = np.ceil(t1 * cfg.sync_rate_hz) - np.ceil(t0 * cfg.sync_rate_hz)  # pulses inside
        m1, m2 = theory.photon_number_moments(cfg.mean_excitations, tr.state_table.qy[n], 2)
        expected += k * p_tot * m1
        var += k * (p_tot**2 * m2 + p_tot * m1 - (p_tot * m1) ** 2)
    emitter = int(np.count_nonzero((tr.origin >= 1) & (tr.origin <= 3)))
    assert abs(emitter - expected) < 4 * np.sqrt(var)
    # every emitter photon carries the charge state of its source pulse
    em = tr.pulse >= 0
    np.testing.assert_array_equal(tr.charge_n[em], tr.charge.at(tr.pulse[em] / 1e7))
    dark = tr.counts_by_origin()["dark"]
    assert abs(dark - 1000.0) < 4 * np.sqrt(1000.0)  # Poisson(dark_cps * duration)
    assert np.all(sim.photons.detectors[tr.origin == 0] == 0)


def test_lifetime_follows_charge_state():
    # X only; the decay of the photons emitted while charged has tau_X(6-), neutral tau_X0
    cfg = clean_config(n_max_cascade=1, duration_s=0.3, emitter=dict(tau_ns=None, qy=None),
                       charge=dict(mode="telegraph", n_charged=6, n_max=6, n_initial=6,
                                   charged_dwell_s=0.03, neutral_dwell_s=0.03))
    sim = simulate_particle(cfg, seed=14)
    t = micro_ns(sim.photons)
    for n in (0, 6):
        sel = sim.truth.charge_n == n
        tau = sim.truth.state_table.tau_ns[n, 0]
        assert abs(t[sel].mean() - floor_mean_ns(tau)) < 4 * tau / np.sqrt(sel.sum())
    assert sim.truth.state_table.tau_ns[6, 0] < 0.5 * sim.truth.state_table.tau_ns[0, 0]


def test_irf_gaussian_plus_tail():
    # arrival - emission - offset = laser jitter (per pulse) + Gaussian + Bernoulli(w) Exp(tail)
    sim = simulate_particle(preset("neutral", duration_s=1.0), seed=15)
    cfg, tr = sim.config, sim.truth
    em = tr.pulse >= 0
    det = sim.photons.detectors[em]
    j = (tr.arrival_sync[em] - tr.pulse[em]) * 100.0 + tr.arrival_ns[em] - tr.emission_ns[em] \
        - np.asarray(cfg.detection.offset_ns)[det]
    sig_l = cfg.laser_fwhm_ns / (2 * np.sqrt(2 * np.log(2)))
    w, s_g, tail = 0.05, 0.06, 0.3
    mean = w * tail
    var = sig_l**2 + s_g**2 + w * (2 - w) * tail**2
    assert abs(j.mean() - mean) < 4 * np.sqrt(var / j.size)
    # sd of the sample variance = sqrt((mu4 - var^2)/N), mu4 from the sample (the exponential
    # tail makes the kurtosis ~60, so no Gaussian shortcut)
    mu4 = np.mean((j - j.mean()) ** 4)
    assert abs(j.var() - var) < 4 * np.sqrt((mu4 - j.var() ** 2) / j.size)
    np.testing.assert_allclose(j, np.clip(j, -1.0, 10.0))  # no stray arrivals


def test_g2_zero_equals_factorial_moment_ratio(sim_k3):
    g2, sigma = g2_from_pairs(pair_counts(sim_k3.photons, sim_k3.config.n_pulses))
    expected = theory.expected_g2_zero(0.5, QY, 3)
    assert abs(g2 - expected) < 4 * sigma


def test_gated_g2(sim_k2):
    ph = sim_k2.photons
    for gate in (0.0, 2.0):  # 2 ns = 125 whole bins: the gate on nanotimes is exact
        keep = micro_ns(ph) >= gate - 1e-9
        g2, sigma = g2_from_pairs(pair_counts(ph, sim_k2.config.n_pulses, keep))
        expected = theory.expected_gated_g2_zero(0.5, QY, TAU, gate, 2)
        assert abs(g2 - expected) < 4 * sigma
    assert theory.expected_gated_g2_zero(0.5, QY, TAU, 2.0, 2) < 0.6 * theory.expected_g2_zero(
        0.5, QY, 2)  # the gate removes XX photons: the test can tell gated from ungated


def test_x_only_decay_mean_recovers_tau():
    sim = simulate_particle(clean_config(n_max_cascade=1, duration_s=0.1), seed=3)
    t = micro_ns(sim.photons)
    assert set(sim.truth.counts_by_origin()[k] for k in ("XX", "XXX")) == {0}
    # quantised exponential: mean = floor_mean(tau); MLE sd of an exponential mean = tau/sqrt(N)
    assert abs(t.mean() - floor_mean_ns(TAU[0])) < 4 * TAU[0] / np.sqrt(t.size)


def test_heralded_pairs_give_tau_xx_and_tau_x():
    # realistic dead time and one photon per detector and sync (the defaults)
    cfg = clean_config(n_max_cascade=2, duration_s=0.3,
                       detection=dict(dead_time_ns=(80.0, 80.0), one_photon_per_sync=True))
    sim = simulate_particle(cfg, seed=4)
    ph = sim.photons
    t = micro_ns(ph)
    ts = ph.timestamps
    same = np.flatnonzero((ts[1:] == ts[:-1]) & (ph.detectors[1:] != ph.detectors[:-1]))
    for d in (0, 1):  # at most one photon per detector and sync
        assert np.all(np.diff(ts[ph.detectors == d]) > 0)
    a, b = t[same], t[same + 1]
    t1 = np.minimum(a, b)
    delay = np.abs(b - a)
    n = same.size
    assert n > 5000
    assert abs(t1.mean() - floor_mean_ns(TAU[1])) < 4 * TAU[1] / np.sqrt(n)
    # delay = floor(t_X) - floor(t_XX): the half-bin offsets cancel to O(h^2/tau)
    assert abs(delay.mean() - TAU[0]) < 4 * TAU[0] / np.sqrt(n)
    # truth: both photons come from one pulse and the earlier emission is the XX photon
    tr = sim.truth
    np.testing.assert_array_equal(tr.pulse[same], tr.pulse[same + 1])
    ea, eb = tr.emission_ns[same], tr.emission_ns[same + 1]
    assert np.all(np.where(ea < eb, tr.origin[same], tr.origin[same + 1]) == 2)


# --------------------------------------------------------------------------- detector effects
def dark_only(duration_s=0.1, **det) -> SimulationConfig:
    base = dict(eta_collection=0.0, afterpulse_prob=(0.0, 0.0), dead_time_ns=(0.0, 0.0),
                one_photon_per_sync=False)
    base.update(det)
    return preset("neutral").replace(duration_s=duration_s, detection=base)


def test_dead_time_non_paralysable_rate():
    r, dead = 3e6, 80.0
    sim = simulate_particle(dark_only(dark_cps=(r, 0.0), dead_time_ns=(dead, 0.0)), seed=7)
    tr = sim.truth
    t_abs = tr.arrival_sync * 100.0 + tr.arrival_ns
    assert np.diff(t_abs).min() >= dead - 1e-6  # no two recorded events closer than dead
    expected = theory.dead_time_rate_cps(r, dead) * 0.1
    # dead-time-filtered Poisson counts are sub-Poissonian: sqrt(N) over-estimates sigma
    assert abs(sim.photons.size - expected) < 4 * np.sqrt(expected)


def test_one_photon_per_sync():
    r = 5e6  # 0.5 dark counts per 100 ns period
    sim = simulate_particle(dark_only(dark_cps=(r, 0.0), one_photon_per_sync=True), seed=8)
    ts = sim.photons.timestamps
    assert np.all(np.diff(ts) > 0)
    p = 1 - np.exp(-r * 1e-7)  # P(at least one count in a period)
    n = 1_000_000
    assert abs(ts.size - n * p) < 4 * np.sqrt(n * p * (1 - p))
    free = simulate_particle(dark_only(dark_cps=(r, 0.0)), seed=8)
    assert np.any(np.diff(free.photons.timestamps) == 0)  # without the rule: doubles exist


def test_afterpulsing_probability_and_delay():
    p, tau, dead = 0.05, 200.0, 50.0
    cfg = dark_only(duration_s=1.0, dark_cps=(2e4, 0.0), afterpulse_prob=(p, 0.0),
                    afterpulse_tau_ns=(tau, 100.0), dead_time_ns=(dead, 0.0))
    sim = simulate_particle(cfg, seed=9)
    tr = sim.truth
    ap = tr.origin == ORIGINS.index("afterpulse")
    n_all, n_ap = tr.origin.size, int(ap.sum())
    # each recorded event (dark or afterpulse) spawns one with probability p; blocking by
    # another event inside dead + delay (~2e4/s * 250 ns = 0.5 %) is far below sigma
    assert abs(n_ap - p * n_all) < 4 * np.sqrt(n_all * p * (1 - p))
    par = tr.parent[ap]
    delay = (tr.arrival_sync[ap] - tr.arrival_sync[par]) * 100.0 + tr.arrival_ns[ap] \
        - tr.arrival_ns[par] - dead
    assert delay.min() >= 0.0
    assert abs(delay.mean() - tau) < 4 * tau / np.sqrt(n_ap)
    assert np.all(tr.parent[~ap] == -1)


def test_crosstalk_fraction_and_delay():
    cfg = dark_only(duration_s=1.0, dark_cps=(2e4, 2e4), crosstalk_prob=0.1,
                    crosstalk_delay_ns=3.0)
    sim = simulate_particle(cfg, seed=10)
    tr = sim.truth
    xt = tr.origin == ORIGINS.index("crosstalk")
    n_all, n_xt = tr.origin.size, int(xt.sum())
    assert abs(n_xt - 0.1 * n_all) < 4 * np.sqrt(n_all * 0.1 * 0.9)
    par = tr.parent[xt]
    d = (tr.arrival_sync[xt] - tr.arrival_sync[par]) * 100.0 + tr.arrival_ns[xt] \
        - tr.arrival_ns[par]
    np.testing.assert_allclose(d, 3.0, atol=1e-6)
    assert np.all(sim.photons.detectors[xt] != sim.photons.detectors[par])


def test_background_irf_profile():
    cfg = dark_only(bg_cps=(1e5, 0.0), bg_profile="irf", dark_cps=(0.0, 0.0))
    sim = simulate_particle(cfg, seed=13)
    t = sim.photons.nanotimes * RES_NS
    assert sim.truth.counts_by_origin()["background"] == sim.photons.size > 0
    assert abs(np.median(t) - 5.0) < 0.1  # scatter sits at the IRF (offset 5 ns)


def test_detect_events_kernel_equals_py_func(rng):
    n = 2000
    t_abs = np.sort(rng.random(n) * 2e5)
    sync = (t_abs // 100).astype(np.int64)
    t = t_abs - sync * 100.0
    det = rng.integers(0, 2, n)
    args = (sync, t, det, 100.0, np.int64(3000), np.array([30.0, 50.0]), True,
            np.array([0.2, 0.1]), np.array([80.0, 40.0]), 0.1, 2.0, np.uint64(12345))
    fast = _kernels.detect_events(*args)
    with np.errstate(over="ignore"):  # SplitMix64 relies on uint64 wrap-around
        slow = _kernels.detect_events.py_func(*args)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)
    o_sync, o_t, o_det = fast[:3]
    # reference check of the dead-time rule on the output: per detector gaps >= dead time
    for d, dead in ((0, 30.0), (1, 50.0)):
        ta = o_sync[o_det == d] * 100.0 + o_t[o_det == d]
        assert np.diff(ta).min() >= dead - 1e-9
        assert np.all(np.diff(o_sync[o_det == d]) > 0)


# --------------------------------------------------------------------------- files
def _decode_ptufile(path):
    ptufile = pytest.importorskip("ptufile")
    with ptufile.PtuFile(path) as f:
        r = f.decode_records()
    return r[r["channel"] >= 0]


def test_ptu_round_trip_t3_exact(tmp_path):
    sim = simulate_particle(preset("undoped", duration_s=0.5), seed=21)
    ptu, side = write_particle(sim, tmp_path / "rod.ptu")
    assert side == sidecar_path(ptu) == tmp_path / "rod.truth.npz"
    r = _decode_ptufile(ptu)
    np.testing.assert_array_equal(r["time"], sim.photons.timestamps)
    np.testing.assert_array_equal(r["dtime"], sim.photons.nanotimes)
    np.testing.assert_array_equal(r["channel"], sim.photons.detectors)
    from qrspec.io.reader import read_tttr

    ph = read_tttr(ptu)
    np.testing.assert_array_equal(ph.timestamps, sim.photons.timestamps)
    np.testing.assert_array_equal(ph.nanotimes, sim.photons.nanotimes)
    np.testing.assert_array_equal(ph.detectors, sim.photons.detectors)
    assert ph.record_type == "HydraHarp2T3" and ph.nanotimes_unit == pytest.approx(16e-12)
    assert f"seed={sim.seed}" in ph.header["File_Comment"]


@pytest.mark.parametrize("record_type", ["GenericT2", "HydraHarp2T2"])
def test_ptu_round_trip_t2(tmp_path, record_type):
    sim = simulate_particle(preset("mn-doped", duration_s=0.2), seed=22)
    ptu, side = write_particle(sim, tmp_path / "rod.ptu", record_type=record_type)
    r = _decode_ptufile(ptu)
    expected = np.floor((sim.truth.arrival_sync * 100.0 + sim.truth.arrival_ns) / 1e-3)
    np.testing.assert_array_equal(r["time"], expected.astype(np.int64))
    np.testing.assert_array_equal(r["channel"], sim.photons.detectors)
    assert read_truth(side).record_type == record_type
    t2 = simulate_particle(sim.config.replace(record_type=record_type), seed=22)
    np.testing.assert_array_equal(t2.photons.timestamps, r["time"])
    assert t2.photons.nanotimes is None


def test_sidecar_round_trip(tmp_path):
    sim = simulate_particle(preset("undoped", duration_s=0.3), seed=23)
    _, side = write_particle(sim, tmp_path / "rod.ptu")
    back = read_truth(side)
    assert back.config == sim.config and back.seed == 23
    assert back.state_table_source == "config"
    a, b = back.truth, sim.truth
    for name in ("origin", "charge_n", "pulse", "arrival_sync", "parent"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # float32 storage: relative precision 6e-8 (far below a 16 ps bin at <= 100 ns)
    np.testing.assert_allclose(a.arrival_ns, b.arrival_ns, rtol=1e-6)
    np.testing.assert_allclose(a.emission_ns, b.emission_ns, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(a.charge.n, b.charge.n)
    np.testing.assert_array_equal(a.charge.t_stop_s, b.charge.t_stop_s)
    np.testing.assert_array_equal(a.state_table.tau_ns, b.state_table.tau_ns)
    # same particle, same bytes (fixed header time, fixed zip timestamps)
    ptu_bytes, side_bytes = (tmp_path / "rod.ptu").read_bytes(), side.read_bytes()
    write_particle(sim, tmp_path / "rod.ptu")
    assert (tmp_path / "rod.ptu").read_bytes() == ptu_bytes and side.read_bytes() == side_bytes


def test_file_errors(tmp_path):
    with pytest.raises(QrspecError, match=r"sim=1 must be a SimulatedParticle"):
        write_particle(1, tmp_path / "x.ptu")
    sim = simulate_particle(preset("neutral", duration_s=0.01), seed=1)
    with pytest.raises(QrspecError, match=r"record_type='PicoHarpT2' must be one of"):
        write_particle(sim, tmp_path / "x.ptu", record_type="PicoHarpT2")
    with pytest.raises(QrspecError, match=r"is not a file"):
        read_truth(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(QrspecError, match=r"is not a qrspec truth sidecar \(format=None"):
        read_truth(tmp_path / "other.npz")


# --------------------------------------------------------------------------- API
def test_deterministic_for_seed():
    cfg = preset("undoped", duration_s=0.3)
    a, b, c = (simulate_particle(cfg, s) for s in (5, 5, 6))
    for name in ("timestamps", "detectors", "nanotimes"):
        np.testing.assert_array_equal(getattr(a.photons, name), getattr(b.photons, name))
    np.testing.assert_array_equal(a.truth.origin, b.truth.origin)
    assert a.truth.charge.as_rows() == b.truth.charge.as_rows()
    assert a.photons.size != c.photons.size or not np.array_equal(a.photons.timestamps,
                                                                   c.photons.timestamps)


def test_state_table_hook():
    cfg = preset("mn-doped", duration_s=0.2)
    calls = []

    def factory(n_max):
        calls.append(n_max)
        return StateTable.constant(5.0, 1.0, 1.0, 0.5, n_max=n_max)

    sim = simulate_particle(cfg, 3, state_table=factory)
    assert calls == [sim.truth.charge.n_max] and sim.state_table_source == "user"
    np.testing.assert_array_equal(sim.truth.state_table.tau_ns[:, 0], 5.0)
    small = StateTable.constant(5.0, 1.0, 1.0, 0.5, n_max=0)
    with pytest.raises(QrspecError, match=r"state_table.n_max=0 is below the largest charge"):
        simulate_particle(cfg, 3, state_table=small)
    with pytest.raises(QrspecError, match=r"state_table\(6\) returned int, expected"):
        simulate_particle(cfg, 3, state_table=lambda n: 1)
    with pytest.raises(QrspecError, match=r"state_table=1 must be a StateTable"):
        simulate_particle(cfg, 3, state_table=1)
    with pytest.raises(QrspecError, match=r"config=1 must be a SimulationConfig"):
        simulate_particle(1, 3)
    with pytest.raises(QrspecError, match=r"seed=-1 must be an integer >= 0"):
        simulate_particle(cfg, -1)


def test_population_spread_and_determinism():
    base = preset("mn-doped", duration_s=0.05)
    a = population_configs(base, 5, seed=1)
    assert a == population_configs(base, 5, seed=1)
    etas = {c.detection.eta_collection for c, _ in a}
    taus = {c.emitter.tau_x0_ns for c, _ in a}
    assert len(etas) == 5 and len(taus) == 5 and len({s for _, s in a}) == 5
    assert all(c.charge.n_charged >= 1 for c, _ in a)
    same = population_configs(base, 3, seed=1, spread=PopulationSpread(0, 0, 0, 0, 0))
    assert all(c.replace(name=base.name) == base for c, _ in same)
    sims = list(simulate_population(base, 2, seed=2))
    assert len(sims) == 2 and sims[0].config.name == "mn-doped-0000"
    with pytest.raises(QrspecError, match=r"brightness_cv=-1 must lie in \[0, 3\]"):
        PopulationSpread(brightness_cv=-1)
    with pytest.raises(QrspecError, match=r"base=1 must be a SimulationConfig"):
        population_configs(1, 2, 0)
    with pytest.raises(QrspecError, match=r"n_particles=0 must be an integer >= 1"):
        population_configs(base, 0, 0)
    with pytest.raises(QrspecError, match=r"seed=-2 must be an integer >= 0"):
        population_configs(base, 1, -2)


# --------------------------------------------------------------------------- CLI
def test_cli_simulate(tmp_path):
    from qrspec.cli.simulate import simulate

    runner = CliRunner()
    out = tmp_path / "rod.ptu"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"mean_excitations": 0.1, "detection": {"dark_cps": [0, 0]}}))
    res = runner.invoke(simulate, [str(out), "--preset", "mn-doped", "--duration-s", "0.05",
                                   "--seed", "4", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert out.exists() and sidecar_path(out).exists() and "seed=4" in res.output
    side = read_truth(sidecar_path(out))
    assert side.config.mean_excitations == 0.1 and side.config.detection.dark_cps == (0.0, 0.0)
    assert side.config.charge.n_charged == 6
    res = runner.invoke(simulate, [str(out), "--duration-s", "0.05"])
    assert res.exit_code == 1 and "exists; use --overwrite" in res.output
    res = runner.invoke(simulate, [str(out), "--duration-s", "0.05", "--overwrite",
                                   "--record-type", "GenericT2", "--no-sidecar"])
    assert res.exit_code == 0, res.output
    cfg.write_text(json.dumps({"n_max_cascade": 7}))
    res = runner.invoke(simulate, [str(tmp_path / "b.ptu"), "--config", str(cfg)])
    assert res.exit_code == 2 and "n_max_cascade=7 must be 1, 2 or 3" in res.output
    cfg.write_text("[1]")
    res = runner.invoke(simulate, [str(tmp_path / "b.ptu"), "--config", str(cfg)])
    assert res.exit_code == 2 and "must be an object" in res.output
    cfg.write_text("{")
    res = runner.invoke(simulate, [str(tmp_path / "b.ptu"), "--config", str(cfg)])
    assert res.exit_code == 2 and "cannot read JSON config" in res.output


def test_cli_simulate_batch(tmp_path):
    from qrspec.cli.simulate import simulate_batch

    runner = CliRunner()
    args = [str(tmp_path / "pop"), "--n-particles", "2", "--duration-s", "0.02", "--seed", "3",
            "--preset", "neutral"]
    res = runner.invoke(simulate_batch, args)
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "pop" / "population.json").read_text())
    assert [p["file"] for p in man["particles"]] == ["particle_0000.ptu", "particle_0001.ptu"]
    assert (tmp_path / "pop" / "particle_0001.truth.npz").exists()
    res = runner.invoke(simulate_batch, args)
    assert res.exit_code == 1 and "use --overwrite" in res.output
