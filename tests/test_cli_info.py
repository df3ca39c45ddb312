"""``qrspec info`` and the top-level CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from qrspec.cli import main
from qrspec.io import write_ptu


def _sample(tmp_path):
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 10**7, 1000))
    det = rng.integers(0, 2, 1000)
    return write_ptu(tmp_path / "s.ptu", record_type="HydraHarp2T3", timestamps=ts,
                     detectors=det, nanotimes=rng.integers(0, 6000, 1000), timestamps_unit=1e-7,
                     nanotimes_unit=16e-12, marker_timestamps=[5, 6], marker_bits=[1, 3]), det


def test_info_text_and_json(tmp_path):
    path, det = _sample(tmp_path)
    r = CliRunner().invoke(main, ["info", str(path)])
    assert r.exit_code == 0, r.output
    assert "HydraHarp2T3 (T3)" in r.output
    assert f"detector 0       {np.sum(det == 0)}" in r.output
    r = CliRunner().invoke(main, ["info", "--json", str(path)])
    assert r.exit_code == 0
    d = json.loads(r.output)
    assert d["n_photons"] == 1000
    assert d["photons_per_detector"] == {"0": int(np.sum(det == 0)), "1": int(np.sum(det == 1))}
    assert d["n_markers"] == 2
    assert d["markers_per_input"] == {"1": 2, "2": 1}


def test_info_exit_codes(tmp_path):
    path, _ = _sample(tmp_path)
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(b"garbage!" * 10)
    r = CliRunner().invoke(main, ["info", str(path), str(bad)])
    assert r.exit_code == 1
    assert "bad.ptu at byte 0: Ident='garbage!garbage!' is not a PTU file" in r.stderr
    assert "HydraHarp2T3" in r.output  # the good file is still described
    r = CliRunner().invoke(main, ["info"])
    assert r.exit_code == 2  # usage error


def test_help_and_version_fast_import():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "info" in r.output
    # `import qrspec` must not pull in numba, scipy or h5py (start-up time of every CLI call)
    code = ("import sys, qrspec, qrspec.cli; "
            "print(sorted(m for m in ('numba', 'scipy', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_public_names_resolve():
    import qrspec

    for name in qrspec._LAZY:
        assert getattr(qrspec, name) is not None
    assert set(qrspec._LAZY) <= set(dir(qrspec))
