"""Tests of qrspec.simulate.emitters: independent emitters in one focus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.simulate import preset, simulate_emitters, simulate_particle
from qrspec.stats.correlation import g2, g2_peaks


def _g2_zero(photons):
    pk = g2_peaks(g2(photons, max_lag_periods=5, bin_ns=1.0, delay_ns=0.0))
    return pk.g2_0, pk.g2_0_err


def test_two_rods_give_the_two_emitter_g2():
    # two neutral rods, brightness ratio ~2 (collection 0.05 vs 0.025); detector offsets equal
    # so the zero peak sits at lag 0 for both
    det = dict(offset_ns=(5.0, 5.0), dark_cps=(0.0, 0.0), afterpulse_prob=(0.0, 0.0))
    a = preset("neutral", duration_s=4.0, detection=det)
    b = a.replace(detection=dict(eta_collection=0.025))
    pair = simulate_emitters([a, b], seed=11)
    ph = pair.photons
    # per-photon truth: both emitters present, their count ratio is the brightness ratio
    n_a, n_b = np.sum(pair.emitter == 0), np.sum(pair.emitter == 1)
    r = n_a / n_b
    assert 1.7 < r < 2.3
    assert np.all(pair.emitter[pair.origin >= 1] >= 0)
    # each rod's own g2(0) from separate runs of the same configs
    s_a, e_a = _g2_zero(simulate_particle(a, seed=1).photons)
    s_b, e_b = _g2_zero(simulate_particle(b, seed=2).photons)
    g, e = _g2_zero(ph)
    expect = (s_a * r**2 + s_b + 2.0 * r) / (1.0 + r) ** 2
    err = math.hypot(e, math.hypot(r**2 * e_a, e_b) / (1.0 + r) ** 2)
    assert abs(g - expect) < 4.0 * err  # Poisson errors of the three g2 estimates
    assert g > 0.5  # two comparable emitters: never below 1/2 (methods.md 9.5)


def test_one_emitter_matches_simulate_particle():
    cfg = preset("mn-doped", duration_s=1.0)
    one = simulate_emitters([cfg], seed=4)
    ref = simulate_particle(cfg, seed=4)
    assert np.array_equal(one.photons.timestamps, ref.photons.timestamps)
    assert np.array_equal(one.photons.nanotimes, ref.photons.nanotimes)
    assert np.array_equal(one.charge_n, ref.truth.charge_n)
    assert np.all(one.emitter[ref.truth.charge_n >= 0] == 0)
    assert one.charge_state_at([0.0]).shape == (1, 1)


@pytest.mark.parametrize(("configs", "seed", "match"), [
    ([], 1, r"configs=\(\) must be a non-empty sequence"),
    ([preset("neutral"), preset("neutral", duration_s=5.0)], 1,
     r"configs\[1\].duration_s=5.0 differs from configs\[0\].duration_s=10.0"),
    ([preset("neutral"), preset("neutral", detection=dict(dark_cps=(0.0, 0.0)))], 1,
     r"configs\[1\].detection differs from configs\[0\].detection in more than "
     "eta_collection"),
    ([preset("neutral")], -1, r"seed=-1 must be an integer >= 0"),
])
def test_rejects_bad_input(configs, seed, match):
    with pytest.raises(QrspecError, match=match):
        simulate_emitters(configs, seed)


def test_rejects_wrong_number_of_tables():
    with pytest.raises(QrspecError, match=r"state_tables has 2 entries for 1 configs"):
        simulate_emitters([preset("neutral")], 1, state_tables=[None, None])
