"""Tests of qrspec.simulate.emitters: independent emitters in one focus."""

from __future__ import annotations

import numpy as np
import pytest

from qrspec.errors import QrspecError
from qrspec.simulate import preset, simulate_emitters, simulate_particle
from qrspec.simulate.theory import expected_gated_g2_zero
from qrspec.stats.correlation import g2, g2_peaks


def test_two_rods_give_the_two_emitter_g2():
    # two neutral rods, brightness ratio ~2 (collection 0.05 vs 0.025), no noise, equal
    # detector offsets (zero peak at lag 0). Gated at 8 ns after emission each rod alone has
    # g2 ~0.1 (closed form); the pair must give (s r^2 + s + 2 r) / (1 + r)^2 ~ 0.5
    det = dict(offset_ns=(5.0, 5.0), dark_cps=(0.0, 0.0), afterpulse_prob=(0.0, 0.0))
    a = preset("neutral", duration_s=6.0, detection=det)
    b = a.replace(detection=dict(eta_collection=0.025))
    pair = simulate_emitters([a, b], seed=11)
    # per-photon truth: both emitters present, their count ratio is the brightness ratio
    r = np.sum(pair.emitter == 0) / np.sum(pair.emitter == 1)
    assert 1.8 < r < 2.2
    assert np.all(pair.emitter[(pair.origin >= 1) & (pair.origin <= 3)] >= 0)
    assert np.all(pair.emitter[pair.origin == 0] == -1)
    gate = 8.0
    table = pair.state_tables[0]
    s = expected_gated_g2_zero(a.mean_excitations, table.qy[0], table.tau_ns[0], gate)
    assert s < 0.15
    pk = g2_peaks(g2(pair.photons, max_lag_periods=5, bin_ns=1.0, delay_ns=0.0,
                     gate_ns=(5.0 + gate, 100.0)))
    expect = (s * r**2 + s + 2.0 * r) / (1.0 + r) ** 2
    # Poisson error of the measured g2 (~0.05 here); IRF and dead time shift the expectation
    # by < 0.01
    assert abs(pk.g2_0 - expect) < 4.0 * pk.g2_0_err + 0.01
    assert pk.g2_0 - 3.0 * pk.g2_0_err > s + 0.2  # far from a single rod


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
