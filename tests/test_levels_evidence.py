"""Tests of qrspec.levels.evidence: per-level lifetimes, pair ratio and decay shape against the
simulator's truth."""

from __future__ import annotations

import numpy as np
import pytest

simulate = pytest.importorskip("qrspec.simulate")

from qrspec.errors import QrspecError  # noqa: E402
from qrspec.levels import cluster_levels, find_change_points, level_evidence  # noqa: E402
from qrspec.levels.segments import Segments  # noqa: E402


@pytest.mark.parametrize(("name", "kw", "n"), [
    ("neutral", {}, 0),
    ("mn-doped", {"charge": {"mode": "stable"}}, 6),
])
def test_lifetimes_and_ratio_match_the_truth(name, kw, n):
    sim = simulate.simulate_particle(simulate.preset(name, duration_s=6.0, **kw), seed=7)
    ph = sim.photons
    cl = cluster_levels(find_change_points(ph), n_levels=1)
    ev = level_evidence(ph, cl)
    tau_x, tau_xx = sim.truth.state_table.tau_ns[n, :2]
    # late-tail X lifetime: the IRF (60 ps) and the 0.1 ns bins are far below its error scale;
    # 4 sigma of the fit error
    assert abs(ev.tau_x_ns[0] - tau_x) < 4 * ev.tau_x_err_ns[0]
    assert abs(ev.tau_xx_ns[0] - tau_xx) < 4 * ev.tau_xx_err_ns[0]  # heralded
    assert abs(ev.tau_x_heralded_ns[0] - tau_x) < 4 * ev.tau_x_heralded_err_ns[0]
    r = tau_x / tau_xx
    assert abs(ev.ratio[0] - r) < 4 * ev.ratio_err[0]
    assert ev.n_pairs[0] > 100 and ev.n_photons[0] == ph.size
    # one state: no second exciton component (afterpulsing can add ~1 % at tens of ns)
    assert ev.shape_p[0] > 1e-3 or ev.second_fraction[0] < 0.02 or ev.second_tau_ns[0] > 25


def test_merged_states_show_two_components():
    sim = simulate.simulate_particle(simulate.preset("mn-doped", duration_s=6.0), seed=8)
    ph = sim.photons
    cl = cluster_levels(find_change_points(ph), n_levels=1)
    ev = level_evidence(ph, cl)
    assert ev.shape_p[0] < 1e-6
    assert ev.second_fraction[0] > 0.05 and 1.0 < ev.second_tau_ns[0] < 5.0


def test_rejects_bad_input():
    sim = simulate.simulate_particle(simulate.preset("neutral", duration_s=0.5), seed=1)
    ph = sim.photons
    seg = Segments.from_boundaries([0.0, 0.5], [0, ph.size])
    with pytest.raises(QrspecError, match=r"every segment assigned to a level"):
        level_evidence(ph, seg)
    lv = seg.with_levels([0])
    with pytest.raises(QrspecError, match=r"levels must be LevelClustering or Segments, got "
                                           "list"):
        level_evidence(ph, [1])
    with pytest.raises(QrspecError, match=r"photons must be T3 Photons"):
        level_evidence(np.arange(5), lv)
    with pytest.raises(QrspecError, match=r"xx_suppression=0 must be > 0"):
        level_evidence(ph, lv, xx_suppression=0)
    with pytest.raises(QrspecError, match=r"min_pairs=0 must be an integer >= 1"):
        level_evidence(ph, lv, min_pairs=0)
