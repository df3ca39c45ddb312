"""AnalysisConfig JSON round trip and the HDF5 results layout (write, merge, read, CSV)."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.particle import ParticleAnalysis
from qrspec.analysis.trajectory import Trajectory
from qrspec.errors import QrspecError
from qrspec.store.hdf5 import (
    export_summary_csv,
    merge_results,
    read_particle,
    read_results,
    write_particle_file,
)
from qrspec.store.summary import group_statistics, summary_dtype, summary_row


def test_config_json_round_trip():
    cfg = AnalysisConfig(bin_width_s=0.005, gate_after_rise_ns=2.5, detectors=(1, 0),
                         charging_window_s=2.0, hbt_delay_ns=-25.0, irf_path="irf.ptu",
                         allow_scan=True)
    again = AnalysisConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.charge_model.variant == "capped" and again.charge_model.eps == 0.5
    assert cfg.replace(g2_bin_ns=0.25).g2_bin_ns == 0.25


@pytest.mark.parametrize("bad, match", [
    ({"bin_width_s": 0}, r"bin_width_s=0 must be a finite number in \(0, 86400\]"),
    ({"detectors": [0, 0]}, r"detectors=\[0, 0\] must be distinct 0-based detectors"),
    ({"detectors": [0, 1, 2]}, r"detectors=\[0, 1, 2\] must be one or two 0-based detectors"),
    ({"detectors": []}, r"detectors=\[\] must be distinct 0-based detectors"),
    ({"hbt_delay_ns": float("nan")}, r"hbt_delay_ns=nan must be a finite number"),
    ({"irf_path": ""}, r"irf_path='' must be a file path"),
    ({"irf_bin_ns": 0}, r"irf_bin_ns=0 must be a finite number in \(0, 1e\+06\] or null"),
    ({"allow_scan": "yes"}, r"allow_scan='yes' must be true or false"),
    ({"gate_after_rise_ns": -1}, r"gate_after_rise_ns=-1 must be a finite number in "
                                 r"\[0, 1e\+09\]"),
    ({"gate_ns": 3.0}, r"config key gate_ns was renamed gate_after_rise_ns"),
    ({"fit_method": "chi"}, r"fit_method='chi' must be 'mle' or 'lsq'"),
    ({"cpa_alpha": 0.7}, r"cpa_alpha=0.7 must be a finite number in \(0, 0.5\)"),
    ({"g2_max_lag_periods": 1}, r"g2_max_lag_periods=1 must be an integer >= 2"),
    ({"bogus": 1}, r"unknown config keys \['bogus'\]"),
    ({"charge_model": {"epsilon": 1}}, r"unknown charge_model keys \[.epsilon.\]"),
    ({"charge_model": {"variant": "x"}}, r"charge_model.variant='x' must be"),
])
def test_config_rejects_nonsense(bad, match):
    with pytest.raises(QrspecError, match=match):
        AnalysisConfig.from_dict(bad)


def test_config_file_errors(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("{not json")
    with pytest.raises(QrspecError, match=r"c.json: config is not valid JSON"):
        AnalysisConfig.from_file(p)
    with pytest.raises(QrspecError, match=r"missing.json: cannot read config"):
        AnalysisConfig.from_file(tmp_path / "missing.json")


def _result(pid, group, tau, status="ok"):
    """A particle with a trajectory stage only (the other stages did not run)."""
    from qrspec.analysis.states import StateResult, States

    if status != "ok":
        return ParticleAnalysis.failed(pid, group, f"/data/{pid}.ptu", "boom",
                                       source_sha256="ab" * 32)
    nan = float("nan")
    neutral = StateResult("neutral", np.zeros((0, 2)), 1000, 0, tau, 0.1, nan, nan, nan, nan,
                          "", None, None, nan, "", (), None, None)
    return ParticleAnalysis(
        particle_id=pid, group=group, source=f"/data/{pid}.ptu", source_sha256="ab" * 32,
        status=status, config_json=AnalysisConfig().to_json(),
        trajectory=Trajectory(np.arange(10, dtype=np.uint32).reshape(5, 2), 0.01, 0.0, (0, 1),
                              1000, 0.05, 2e4, ()),
        states=States(neutral, None, 1.0, ("no charged period",)))


def test_particle_file_round_trip(tmp_path):
    res = _result("p1", "undoped", 12.5)
    path = write_particle_file(tmp_path / "p1.h5", res)
    r = read_results(path)
    assert r.attrs["format"] == "qrspec-results" and r.attrs["format_version"] == "2"
    assert r.config == AnalysisConfig().to_dict()
    assert r.particle_ids == ["p1"]
    assert r.summary["tau_x_neutral_ns"][0] == 12.5
    assert np.isnan(r.summary["n_c_mean"][0])  # not computed -> NaN, never 0
    assert r.summary["error"][0] == "no charged period"
    p = r.particle("p1")
    assert_array_equal(p.trajectory.counts, np.arange(10).reshape(5, 2))
    assert p.trajectory.detectors == (0, 1) and p.trajectory.bin_width_s == 0.01
    assert p.source_sha256 == "ab" * 32 and p.flags == ("no charged period",)
    assert p.states.neutral.decay_counts is None and p.states.charged is None
    with h5py.File(path) as f:
        d = f["particles/p1/trajectory/counts"]
        assert d.attrs["units"] == "counts" and d.attrs["description"] == \
            "photons per bin (columns: detectors)"
        g = f["particles/p1/trajectory"]
        assert g.attrs["bin_width_s"] == 0.01
        assert json.loads(g.attrs["units"])["bin_width_s"] == "s"
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(QrspecError, match=r"particle_id='nope' not in"):
        r.particle("nope")


def test_merge_groups_and_csv(tmp_path):
    parts = []
    taus = {"a": [10.0, 12.0, 14.0], "b": [5.0, 7.0]}
    k = 0
    for g, ts in taus.items():
        for t in ts:
            parts.append(write_particle_file(tmp_path / f"{k}.h5", _result(f"p{k}", g, t)))
            k += 1
    parts.append(write_particle_file(tmp_path / "f.h5", _result("pf", "b", 99.0, "failed")))
    out = merge_results(parts, tmp_path / "all.h5")
    r = read_results(out)
    assert r.particle_ids == ["p0", "p1", "p2", "p3", "p4", "pf"]
    grp = {row["group"]: row for row in r.groups}
    # failed particles are counted but excluded from the statistics
    assert grp["b"]["n_particles"] == 3 and grp["b"]["n_ok"] == 2
    assert grp["a"]["tau_x_neutral_ns_mean"] == pytest.approx(12.0)
    assert grp["a"]["tau_x_neutral_ns_sem"] == pytest.approx(np.std([10, 12, 14], ddof=1)
                                                             / np.sqrt(3))
    assert grp["b"]["tau_x_neutral_ns_median"] == pytest.approx(6.0)
    csv_path = export_summary_csv(out, tmp_path / "s.csv")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [x["particle_id"] for x in rows] == r.particle_ids
    assert float(rows[0]["tau_x_neutral_ns"]) == 10.0
    assert rows[-1]["status"] == "failed" and rows[-1]["error"] == "boom"
    assert read_particle(out, "pf").failure == "boom"


def test_group_statistics_matches_numpy(rng):
    rows = np.zeros(50, summary_dtype())
    for i in range(50):
        rows[i] = summary_row({"group": "g", "status": "ok", "n_c_mean": rng.normal(5, 1)})
    stats = group_statistics(rows)
    assert stats["n_c_mean_mean"][0] == pytest.approx(rows["n_c_mean"].mean(), rel=1e-12)
    assert stats["n_c_mean_n"][0] == 50


def test_read_results_rejects_other_files(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "other"
    with pytest.raises(QrspecError, match=r"x.h5: not a qrspec results file"):
        read_results(p)
    q = tmp_path / "y.h5"
    q.write_text("nope")
    with pytest.raises(QrspecError, match=r"y.h5: cannot open as HDF5"):
        read_results(q)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    from qrspec.errors import OutputError

    res = _result("p1", "g", 1.0)
    bad = ParticleAnalysis(**{**res.__dict__, "trajectory": Trajectory(
        np.array([object()]), 0.01, 0.0, (0, 1), 1, 1.0, 1.0, ())})
    with pytest.raises(OutputError, match=r"bad.h5: cannot write: TypeError"):
        write_particle_file(tmp_path / "bad.h5", bad)
    assert list(tmp_path.iterdir()) == []
    assert json.loads(AnalysisConfig().to_json())["detectors"] is None
