"""End-to-end test of qrspec.levels on the simulator's ground truth (qrspec.simulate)."""

from __future__ import annotations

import numpy as np

import qrspec.simulate as simulate
from qrspec.levels import cluster_levels, find_change_points, label_levels


def confusion(sim, labels):
    """Photon counts: rows true state (neutral n=0, charged n>0), columns predicted label."""
    ph = sim.photons
    ci = sim.truth.charge
    t_s = ph.timestamps * ph.timestamps_unit
    true_n = ci.n[np.searchsorted(ci.t_start_s, t_s, side="right") - 1]
    seg = labels.segments
    pred = np.repeat(seg.label, seg.n_photons)
    cols = ("neutral", "charged", "trap", "off", "unclassified")
    rows = (true_n == 0, true_n > 0)
    return np.array([[np.sum(r & (pred == c)) for c in cols] for r in rows]), cols


def test_labels_match_simulated_charge_states():
    # Mn-doped preset: stable n = 6 with telegraph blinking to neutral (3 s / 0.5 s dwells)
    sim = simulate.simulate_particle(simulate.preset("mn-doped", duration_s=20.0), seed=3)
    ph = sim.photons
    cps = find_change_points(ph)
    levels = cluster_levels(cps)
    det = sim.config.detection
    # mean-delay lifetimes after removing each detector's cable delay
    nt_ns = ph.nanotimes * ph.nanotimes_unit * 1e9 - np.asarray(det.offset_ns)[ph.detectors]
    lab = label_levels(levels, nanotimes_ns=nt_ns, delay_offset_ns=0.0,
                       background_cps=float(np.sum(det.dark_cps)))
    assert levels.n_levels == 2
    assert list(lab.label) == ["charged", "neutral"]
    assert lab.tau_ns[0] < lab.tau_ns[1]
    assert lab.rho_rad[0] > lab.rules.rho_split
    # every true change found: 16 changes, each detected within 2 ms (the dim side has ~28 kcps,
    # so 2 ms is ~50 photons, far beyond the confidence regions seen here)
    true_cp = sim.truth.charge.t_start_s[1:]
    nearest = np.min(np.abs(cps.time_s[None, :] - true_cp[:, None]), axis=1)
    assert np.all(nearest < 2e-3)
    m, cols = confusion(sim, lab)
    # misassigned photons come only from change-point placement: <= ~50 photons per change
    # (16 changes -> < 800 of ~650k photons)
    wrong = m[0, 1:].sum() + m[1, 0] + m[1, 2:].sum()
    assert wrong < 16 * 50
    assert m.sum() == ph.size
