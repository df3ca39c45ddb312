"""``qrspec info`` and the top-level CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import raw_ptu
from numpy.testing import assert_array_equal

from qrspec.cli import main
from qrspec.io import write_ptu
from qrspec.io.records import RECORD_TYPES
from qrspec.io.writer import encode_records


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


def test_info_imports_no_numba_scipy_h5py(tmp_path):
    """Issue 13 item 8: `qrspec info` counts with numpy on the raw records; importing numba
    alone costs more than the 0.5 s budget of the whole command."""
    path, _ = _sample(tmp_path)
    code = ("import sys; from qrspec.cli import main\n"
            "try:\n"
            f"    main(['info', '--json', {str(path)!r}])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print(sorted(m for m in ('numba', 'scipy', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["n_photons"] == 1000  # it did describe the file
    assert lines[-1] == "[]"


def _summary_equals_reader(path):
    from qrspec.cli.info import describe
    from qrspec.io import read_tttr

    d = describe(path)
    p = read_tttr(path)
    counts = p.counts_per_detector
    assert d["n_photons"] == p.size
    assert d["photons_per_detector"] == {int(k): int(counts[k]) for k in p.detector_ids}
    assert d["n_markers"] == p.markers.size
    assert d["markers_per_input"] == p.markers.counts_per_bit()
    assert d["n_sync_events"] == (None if p.sync_timestamps is None
                                  else int(p.sync_timestamps.size))
    assert d["n_overflows"] == p.n_overflows
    assert d["n_invalid_records"] == p.n_invalid_records
    assert d["duration_s"] == p.duration_s
    assert d["warnings"] == list(p.warnings)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_info_counts_equal_reader_every_record_type(tmp_path, rng, name):
    """The numpy summary of `info` and the numba decoder agree (overflows, markers, sync)."""
    from qrspec.io.records import decode_chunk, scan_chunk, summarize_chunk

    rt = RECORD_TYPES[name]
    n = 3000
    ts = np.sort(rng.integers(0, 40 * rt.wrap, n))
    max_det = {"pt3": 3, "t3r": 3, "pt2": 4}.get(rt.family, 62)
    det = rng.integers(0, max_det + 1, n)
    nt = rng.integers(0, rt.n_dtime_bins, n) if rt.mode == 3 else None
    mts = np.sort(rng.integers(0, ts[-1], 30)) & ~0xF
    mbits = rng.integers(1, 8, 30)
    sync = np.sort(rng.integers(0, ts[-1], 200)) if rt.family in ("ht2", "ht2v1") else None
    recs = encode_records(rt, ts, det, nt, marker_timestamps=mts, marker_bits=mbits,
                          sync_timestamps=sync)
    # a few invalid records: reserved codes where the layout has them, a zero run, a photon
    # back in time
    extra = {"ht3": 0x80000000 | (40 << 25), "ht3v1": 0x80000000 | (40 << 25),
             "ht3sf": 0x80000000 | (40 << 25), "ht2": 0x80000000 | (40 << 25),
             "ht2v1": 0x80000000 | (40 << 25), "pt3": 7 << 28, "pt2": 7 << 28, "t3r": 0}
    recs = np.concatenate([recs[:100], np.array([extra[rt.family], 0, 0, 0], np.uint32),
                           recs[100:], recs[50:51]]).astype(np.uint32)
    c = summarize_chunk(rt, recs, 0)
    s = scan_chunk(rt, recs)
    assert (c.n_photons, c.n_markers, c.n_sync, c.n_wraps, c.n_invalid, c.n_zero) == (
        s.n_photons, s.n_markers, s.n_sync, s.n_wraps, s.n_invalid, s.n_zero)
    n_ph = s.n_photons
    out = (np.empty(n_ph, np.int64), np.empty(n_ph, np.uint8), np.empty(n_ph, np.uint16),
           np.empty(s.n_markers, np.int64), np.empty(s.n_markers, np.uint16),
           np.empty(s.n_sync, np.int64))
    r = decode_chunk(rt, recs, 0, *out)
    assert c.n_backwards == r.n_backwards >= 1
    assert_array_equal(c.counts_per_detector[:64], np.bincount(out[1], minlength=256)[:64])
    assert (c.first_ts, c.last_ts) == (int(out[0][0]), int(out[0][-1]))
    if rt.code:  # and through the files: info == read_tttr
        path = raw_ptu(tmp_path / "f.ptu", recs, rec_type=rt.code,
                       glob_res=1e-7 if rt.mode == 3 else 1e-12, res=16e-12)
        _summary_equals_reader(path)


@pytest.mark.realdata
def test_info_counts_equal_reader_real_files(realdata):
    from qrspec.io import open_layout

    n = 0
    for path in sorted(realdata.iterdir()):
        if path.is_file() and path.suffix.lower() in (".ptu", ".ht3", ".ht2", ".pt3", ".t3r"):
            open_layout(path)
            _summary_equals_reader(path)
            n += 1
    assert n >= 15
