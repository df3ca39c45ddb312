"""`qrspec model` CLI: forward, inverse, threshold-map (CliRunner on the group object)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.forward import forward
from qrspec.cli.model import model


def test_help_lists_subcommands():
    res = CliRunner().invoke(model, ["--help"])
    assert res.exit_code == 0
    for name in ("forward", "inverse", "threshold-map"):
        assert name in res.output


def test_forward_stdout_csv_and_h5(tmp_path):
    runner = CliRunner()
    res = runner.invoke(model, ["forward", "--n-max", "6", "--tau-x0-ns", "4.5"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("n,tau_x_ns,qy_x,tau_xx_ns")
    row6 = [float(v) for v in lines[7].split(",")]
    ref = forward(ChargeModelConfig(tau_x0_ns=4.5), 6.0)
    assert row6[1] == pytest.approx(float(ref.tau_x_ns), rel=1e-5)  # printed with 6 digits
    out = tmp_path / "fw.h5"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(ChargeModelConfig(variant="uncapped", eps=0.174).to_json())
    res = runner.invoke(model, ["forward", "--config", str(cfg), "--tau-x0-ns", "4.5",
                                "-o", str(out)])
    assert res.exit_code == 0, res.output
    with h5py.File(out) as h5:
        g = h5["forward"]
        assert ChargeModelConfig.from_json(g.attrs["config"]).variant == "uncapped"
        ref = forward(ChargeModelConfig(variant="uncapped", eps=0.174, tau_x0_ns=4.5),
                      g["n"][:])
        assert_allclose(g["tau_a_xx_ns"][:], ref.tau_a_xx_ns, rtol=1e-14)
        assert g["tau_x_ns"].attrs["units"] == "ns"
    res = runner.invoke(model, ["forward", "-o", str(out)])
    assert res.exit_code == 1 and "exists; use --overwrite" in res.output
    res = runner.invoke(model, ["forward", "-o", str(tmp_path / "x.txt")])
    assert res.exit_code == 2 and "must end in .csv, .h5 or .hdf5" in res.output
    res = runner.invoke(model, ["forward", "--eps", "3"])
    assert res.exit_code == 2 and "eps=3.0 must be in" in res.output
    res = runner.invoke(model, ["forward", "--n-step", "0"])
    assert res.exit_code == 2 and "--n-step=0.0 must be a finite number > 0" in res.output


def test_threshold_map_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "map.png"
    res = CliRunner().invoke(model, ["threshold-map", "--nc-max", "2", "--nc-step", "1",
                                     "--n-tau", "2", "-o", str(tmp_path / "m.h5"),
                                     "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forward_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "f.png"
    res = CliRunner().invoke(model, ["forward", "--n-max", "4", "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inverse_single_and_segments(tmp_path):
    cfg = ChargeModelConfig(tau_x0_ns=4.5)
    r = forward(cfg, 6.0)
    args = ["inverse", "--tau-x0-ns", "4.5", "--tau-x0-err-ns", "0.02",
            "--tau-a-xx0-err-ns", "0.3", "--tau-x-ns", f"{float(r.tau_x_ns)!r}",
            "--tau-x-err-ns", "0.02", "--tau-xx-ns", f"{float(r.tau_xx_ns)!r}",
            "--tau-xx-err-ns", "0.02"]
    res = CliRunner().invoke(model, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n"] == pytest.approx(6.0, rel=1e-5)
    assert out["n_lo"] < 6.0 < out["n_hi"]
    seg = tmp_path / "segs.csv"
    rows = ["t_start_s,t_stop_s,tau_x_ns,tau_x_err_ns,tau_xx_ns,tau_xx_err_ns"]
    for i, n in enumerate((8.0, 6.0, 3.0)):
        rr = forward(cfg, n)
        rows.append(f"{10 * i},{10 * i + 10},{float(rr.tau_x_ns)!r},0.02,"
                    f"{float(rr.tau_xx_ns)!r},0.02")
    seg.write_text("\n".join(rows) + "\n")
    out_csv = tmp_path / "traj.csv"
    res = CliRunner().invoke(model, [*args[:7], "--segments", str(seg), "-o", str(out_csv)])
    assert res.exit_code == 0, res.output
    data = np.genfromtxt(out_csv, delimiter=",", names=True, skip_header=1)
    assert_allclose(data["n"], [8.0, 6.0, 3.0], rtol=1e-5)
    res = CliRunner().invoke(model, args[:7])
    assert res.exit_code == 2 and "or --segments" in res.output
    # trap-like radiative ratio: refused, reported in the JSON
    res = CliRunner().invoke(model, [*args, "--rad-ratio", "1.0", "--rad-ratio-err", "0.05"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["flags"] == ["trap_like"] and out["success"] == 0.0
    # HDF5 output of a single window
    out_h5 = tmp_path / "inv.h5"
    res = CliRunner().invoke(model, [*args, "--g2", f"{float(r.g2_zero)!r}", "--g2-err", "0.05",
                                     "-o", str(out_h5)])
    assert res.exit_code == 0, res.output
    with h5py.File(out_h5) as h5:
        assert h5["inverse/n"][0] == pytest.approx(6.0, rel=1e-5)
        assert h5["inverse/dof"][0] == 2
    res = CliRunner().invoke(model, [*args, "--tau-x-err-ns", "-1"])
    assert res.exit_code == 2 and "tau_x_err_ns=-1.0 must be finite and > 0" in res.output


def test_threshold_map_csv_h5_png(tmp_path):
    runner = CliRunner()
    base = ["threshold-map", "--tau-x0-ns", "4.5", "--nc-max", "4", "--nc-step", "2",
            "--tau-min-ns", "1", "--tau-max-ns", "10", "--n-tau", "2"]
    out = tmp_path / "map.h5"
    res = runner.invoke(model, [*base, "-o", str(out)])
    assert res.exit_code == 0, res.output
    with h5py.File(out) as h5:
        g = h5["threshold_map"]
        assert g["n_las"].shape == (3, 2)
        assert g.attrs["g_loss"] == 0.05
        assert np.all(np.diff(g["n_las"][:, 1]) < 0)  # charging lowers it at 10 ns
    out_csv = tmp_path / "map.csv"
    res = runner.invoke(model, [*base, "-o", str(out_csv)])
    assert res.exit_code == 0, res.output
    data = np.genfromtxt(out_csv, delimiter=",", names=True, skip_header=1)
    assert data.size == 6
    res = runner.invoke(model, [*base[:-2], "--n-tau", "0", "-o", str(out_csv)])
    assert res.exit_code == 2 and "--n-tau=0 must be an integer from 1" in res.output
    res = runner.invoke(model, [*base, "--g-loss", "2", "-o", str(tmp_path / "z.h5")])
    assert res.exit_code == 2 and "g_loss=2.0 must be in [0, 1)" in res.output
    res = runner.invoke(model, [*base, "-o", str(out)])
    assert res.exit_code == 1 and "exists; use --overwrite" in res.output
    res = runner.invoke(model, [*base, "-o", str(tmp_path / "m.txt")])
    assert res.exit_code == 2 and "must end in .csv, .h5 or .hdf5" in res.output


def test_png_without_matplotlib_is_a_clean_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    res = CliRunner().invoke(model, ["forward", "--n-max", "2", "--png", str(tmp_path / "a.png")])
    assert res.exit_code == 1 and "--png needs matplotlib" in res.output
    res = CliRunner().invoke(model, ["threshold-map", "--nc-max", "1", "--n-tau", "1",
                                     "-o", str(tmp_path / "m.h5"), "--png",
                                     str(tmp_path / "m.png")])
    assert res.exit_code == 1 and "--png needs matplotlib" in res.output


def test_issue_14_model_grids_live_in_the_library():
    """The ``qrspec model`` grids come from qrspec.charging.grids (the CLI holds no numerics):
    the end point is on the grid within half a step, limits are checked with their names."""
    from qrspec.charging.grids import charge_grid, log_grid_ns
    from qrspec.errors import QrspecError

    np.testing.assert_array_equal(charge_grid(2.0, 0.5), [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_array_equal(charge_grid(0.0, 1.0), [0.0])
    # 0.3 / 0.1 = 2.9999999999999996 in floating point: still 4 points, 0.3 included
    assert charge_grid(0.3, 0.1).size == 4
    np.testing.assert_allclose(log_grid_ns(0.1, 10.0, 3), [0.1, 1.0, 10.0])
    with pytest.raises(QrspecError, match=r"n_max=-1.0 must be a finite number >= 0"):
        charge_grid(-1.0, 1.0)
    with pytest.raises(QrspecError, match=r"n_step=0.0 must be a finite number > 0"):
        charge_grid(1.0, 0.0)
    with pytest.raises(QrspecError, match=r"n_step=nan must be a finite number > 0"):
        charge_grid(1.0, float("nan"))
    with pytest.raises(QrspecError, match=r"gives 100000001 points \(at most 1000000\)"):
        charge_grid(1e8, 1.0)
    with pytest.raises(QrspecError, match=r"start_ns=5.0, stop_ns=1.0 must satisfy"):
        log_grid_ns(5.0, 1.0, 3)
    with pytest.raises(QrspecError, match=r"n=0 must be an integer from 1 to 1000000"):
        log_grid_ns(1.0, 5.0, 0)
    res = CliRunner().invoke(model, ["forward", "--n-max", "-1"])
    assert res.exit_code == 2 and "--n-max=-1 must be a finite number >= 0" in res.output
    res = CliRunner().invoke(model, ["threshold-map", "--tau-min-ns", "0", "-o", "x.csv"])
    assert res.exit_code == 2 and "--tau-min-ns=0.0, --tau-max-ns=" in res.output
