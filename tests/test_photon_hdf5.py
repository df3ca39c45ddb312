"""Photon-HDF5 export: phconvert validation, exact photon round trip, markers, atomic writes."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
import tables
from click.testing import CliRunner
from numpy.testing import assert_array_equal

from qrspec.errors import QrspecError, TTTRFormatError
from qrspec.io import read_tttr, write_ptu
from qrspec.io.photon_hdf5 import NON_PHOTON_BASE_ID, _phconvert_hdf5, export_photon_hdf5
from qrspec.photons import Markers, Photons

SYNC_HZ = 10e6


def assert_valid(path):
    """phconvert's own validator (strict field names, descriptions and setup rules)."""
    ph = _phconvert_hdf5()
    with tables.open_file(str(path)) as h5:  # the validator leaves files it opens itself open
        ph.assert_valid_photon_hdf5(h5, warnings=False)


def read_back(path) -> dict:
    """Every dataset of the file, read with h5py (independent of PyTables)."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(
            "/" + name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.fixture
def t3_file(tmp_path, rng):
    """HydraHarp2T3 with two detectors, markers on inputs 1 and 2, several overflows."""
    n = 20_000
    ts = np.cumsum(rng.geometric(0.01, n)).astype(np.int64)  # ~100 sync periods apart: wraps
    det = rng.integers(0, 2, n)
    nt = rng.integers(0, 1000, n)  # 100 ns period / 100 ps bins = 1000 bins
    mts = np.sort(rng.integers(0, ts[-1], 50))
    mbits = rng.choice([1, 2, 3], 50)
    path = write_ptu(tmp_path / "hh_t3.ptu", record_type="HydraHarp2T3", timestamps=ts,
                     detectors=det, nanotimes=nt, timestamps_unit=1 / SYNC_HZ,
                     nanotimes_unit=1e-10, sync_rate_hz=SYNC_HZ, marker_timestamps=mts,
                     marker_bits=mbits, comment="synthetic HBT")
    return path


@pytest.fixture
def t2_file(tmp_path, rng):
    """GenericT2 with two detectors, sync events every 100 ns and a few markers."""
    n = 20_000
    ts = np.cumsum(rng.geometric(1e-5, n)).astype(np.int64)  # 1 ps ticks, many wraps
    det = rng.integers(0, 2, n)
    sync = np.arange(0, ts[-1], 100_000, dtype=np.int64)[:5000]
    mts = np.sort(rng.integers(0, ts[-1], 20))
    path = write_ptu(tmp_path / "gen_t2.ptu", record_type="GenericT2", timestamps=ts,
                     detectors=det, timestamps_unit=1e-12, sync_rate_hz=SYNC_HZ,
                     sync_timestamps=sync, marker_timestamps=mts, marker_bits=np.full(20, 4))
    return path


# ---------------------------------------------------------------------------- T3 with markers
def test_t3_validates_and_round_trips(t3_file, tmp_path):
    p = read_tttr(t3_file)
    assert p.markers.size == 50 and p.n_overflows > 0  # the file exercises markers and wraps
    out = export_photon_hdf5(t3_file, tmp_path / "o.hdf5", author="A. Author",
                             author_affiliation="Lab", sample_name="QR 7")
    assert out == tmp_path / "o.hdf5"
    assert not (tmp_path / "o.hdf5.partial").exists()
    assert_valid(out)
    d = read_back(out)
    assert_array_equal(d["/photon_data/timestamps"], p.timestamps)  # integer data: exact
    assert_array_equal(d["/photon_data/detectors"], p.detectors)
    assert_array_equal(d["/photon_data/nanotimes"], p.nanotimes)
    assert d["/photon_data/timestamps"].dtype == np.int64
    assert d["/photon_data/detectors"].dtype == np.uint8
    assert d["/photon_data/nanotimes"].dtype == np.uint16
    # markers kept out of the photon stream, stored under /user
    assert_array_equal(d["/user/markers/timestamps"], p.markers.timestamps)
    assert_array_equal(d["/user/markers/bits"], p.markers.bits)
    assert "/user/sync/timestamps" not in d
    # setup and specs from the header
    assert d["/photon_data/timestamps_specs/timestamps_unit"] == p.timestamps_unit
    assert d["/photon_data/nanotimes_specs/tcspc_unit"] == p.nanotimes_unit
    assert d["/photon_data/nanotimes_specs/tcspc_num_bins"] == 1000
    assert d["/photon_data/nanotimes_specs/tcspc_range"] == pytest.approx(1e-7, rel=1e-12)
    assert d["/photon_data/measurement_specs/laser_repetition_rate"] == SYNC_HZ
    assert d["/photon_data/measurement_specs/measurement_type"] == b"generic"
    assert_array_equal(d["/photon_data/measurement_specs/detectors_specs/split_ch1"], [0])
    assert_array_equal(d["/photon_data/measurement_specs/detectors_specs/split_ch2"], [1])
    assert_array_equal(d["/setup/laser_repetition_rates"], [SYNC_HZ])
    assert_array_equal(d["/setup/excitation_cw"], [0])
    assert d["/setup/lifetime"] == 1 and d["/setup/num_pixels"] == 2
    assert d["/setup/num_split_ch"] == 2
    assert_array_equal(d["/setup/detectors/id"], [0, 1])
    assert_array_equal(d["/setup/detectors/counts"], p.counts_per_detector)
    # duration: last event since the start of the measurement
    last = max(p.timestamps[-1], p.markers.timestamps[-1])
    assert d["/acquisition_duration"] == pytest.approx(last * p.timestamps_unit, rel=1e-12)
    # provenance and identity
    assert d["/provenance/filename"] == b"hh_t3.ptu"
    # write_ptu stores File_CreatingTime 2026-01-01
    assert d["/provenance/creation_time"] == b"2026-01-01 00:00:00"
    assert d["/provenance/software"] == b"qrspec"
    assert d["/identity/filename"] == b"o.hdf5"  # the final name, not the .partial one
    assert d["/identity/author"] == b"A. Author"
    assert d["/identity/author_affiliation"] == b"Lab"
    assert d["/sample/sample_name"] == b"QR 7"
    assert b"synthetic HBT" in d["/description"] and b"HydraHarp2T3" in d["/description"]
    assert b'"HW_Type": "HydraHarp"' in d["/user/picoquant/header_json"]


def test_t3_non_photon_id_mode(t3_file, tmp_path):
    p = read_tttr(t3_file)
    out = export_photon_hdf5(p, tmp_path / "np.hdf5", markers="non_photon_id")
    assert_valid(out)
    d = read_back(out)
    det = d["/photon_data/detectors"]
    ts = d["/photon_data/timestamps"]
    non_photon = d["/photon_data/measurement_specs/detectors_specs/non_photon_id1"]
    assert_array_equal(non_photon, NON_PHOTON_BASE_ID + np.array([1, 2, 3]))
    assert np.all(np.diff(ts) >= 0)  # one time-ordered stream
    photon = ~np.isin(det, non_photon)
    assert_array_equal(ts[photon], p.timestamps)  # photons exactly, in order
    assert_array_equal(det[photon], p.detectors)
    assert_array_equal(d["/photon_data/nanotimes"][photon], p.nanotimes)
    assert_array_equal(ts[~photon], p.markers.timestamps)
    assert_array_equal(det[~photon] - NON_PHOTON_BASE_ID, p.markers.bits)
    assert_array_equal(d["/setup/detectors/id"], [0, 1, 65, 66, 67])
    assert d["/setup/num_pixels"] == 2  # non-photon ids are not pixels
    assert d["/setup/detectors/counts"].sum() == det.size
    assert b"marker" in d["/user/experimental_settings/non_photon_id/id1"]


# ---------------------------------------------------------------------------- T2 with sync
def test_t2_sync_events_and_markers(t2_file, tmp_path):
    p = read_tttr(t2_file)
    assert p.sync_timestamps.size == 5000 and p.markers.size == 20
    out = export_photon_hdf5(t2_file, tmp_path / "t2.hdf5")
    assert_valid(out)
    d = read_back(out)
    assert "/photon_data/nanotimes" not in d
    assert_array_equal(d["/photon_data/timestamps"], p.timestamps)
    assert_array_equal(d["/photon_data/detectors"], p.detectors)
    assert_array_equal(d["/user/sync/timestamps"], p.sync_timestamps)
    assert_array_equal(d["/user/markers/timestamps"], p.markers.timestamps)
    assert d["/setup/lifetime"] == 0
    assert d["/photon_data/timestamps_specs/timestamps_unit"] == 1e-12
    assert_array_equal(d["/setup/laser_repetition_rates"], [SYNC_HZ])  # from TTResult_SyncRate

    out2 = export_photon_hdf5(p, tmp_path / "t2np.hdf5", markers="non_photon_id")
    assert_valid(out2)
    d = read_back(out2)
    det = d["/photon_data/detectors"]
    ts = d["/photon_data/timestamps"]
    specs = "/photon_data/measurement_specs/detectors_specs/"
    assert_array_equal(d[specs + "non_photon_id1"], [NON_PHOTON_BASE_ID + 4])
    assert_array_equal(d[specs + "non_photon_id2"], [NON_PHOTON_BASE_ID])
    assert_array_equal(ts[det == NON_PHOTON_BASE_ID], p.sync_timestamps)
    assert_array_equal(ts[det == NON_PHOTON_BASE_ID + 4], p.markers.timestamps)
    photon = det < NON_PHOTON_BASE_ID
    assert_array_equal(ts[photon], p.timestamps)
    assert_array_equal(det[photon], p.detectors)


def test_t2_without_sync_rate_is_cw_unless_given(tmp_path, rng):
    ts = np.sort(rng.integers(0, 10**9, 1000))
    p = Photons.from_arrays(ts, rng.integers(0, 2, 1000), timestamps_unit=1e-12)
    assert p.sync_rate_hz == 0 and p.header == {} and p.source is None
    d = read_back(export_photon_hdf5(p, tmp_path / "cw.hdf5"))
    assert_array_equal(d["/setup/excitation_cw"], [1])
    assert "/setup/laser_repetition_rates" not in d
    assert "/provenance/filename" not in d  # nothing is known about a source file
    out = export_photon_hdf5(p, tmp_path / "pulsed.hdf5", laser_repetition_rate_hz=8e7)
    assert_valid(out)
    d = read_back(out)
    assert_array_equal(d["/setup/excitation_cw"], [0])
    assert d["/photon_data/measurement_specs/laser_repetition_rate"] == 8e7
    # a header sync rate alone does not make T2 data pulsed (PicoHarp T2 "sync" = channel 0)
    p_rate = Photons.from_arrays(ts, p.detectors, timestamps_unit=1e-12, sync_rate_hz=5e6)
    d = read_back(export_photon_hdf5(p_rate, tmp_path / "rate.hdf5"))
    assert_array_equal(d["/setup/excitation_cw"], [1])
    # recorded sync events without a header rate: rate measured from them (100 ns apart)
    p_sync = Photons.from_arrays(ts, p.detectors, timestamps_unit=1e-12,
                                 sync_timestamps=np.arange(0, 10**9, 100_000, dtype=np.int64))
    out = export_photon_hdf5(p_sync, tmp_path / "sync.hdf5")
    assert_valid(out)
    d = read_back(out)
    assert d["/photon_data/measurement_specs/laser_repetition_rate"] == pytest.approx(
        1e7, rel=1e-12)  # float arithmetic on exact integer ticks


def test_single_detector_has_no_split_channels(tmp_path, rng):
    ts = np.sort(rng.integers(0, 10**6, 500))
    p = Photons.from_arrays(ts, np.zeros(500, int), rng.integers(0, 100, 500),
                            timestamps_unit=1e-7, nanotimes_unit=1e-9)
    out = export_photon_hdf5(p, tmp_path / "one.hdf5")
    assert_valid(out)
    d = read_back(out)
    assert d["/setup/num_split_ch"] == 1 and d["/setup/num_pixels"] == 1
    assert d["/photon_data/nanotimes_specs/tcspc_num_bins"] == 100  # 100 ns / 1 ns
    assert d["/photon_data/measurement_specs/laser_repetition_rate"] == pytest.approx(1e7)


@pytest.mark.parametrize("compression", ["none", "blosc"])
def test_other_compressions_validate(t3_file, tmp_path, compression):
    p = read_tttr(t3_file)
    out = export_photon_hdf5(p, tmp_path / f"{compression}.hdf5", compression=compression)
    assert_valid(out)
    with tables.open_file(str(out)) as h5:  # PyTables decodes blosc (h5py needs a plugin)
        assert_array_equal(h5.root.photon_data.timestamps.read(), p.timestamps)
        assert_array_equal(h5.root.photon_data.nanotimes.read(), p.nanotimes)
        flt = h5.root.photon_data.timestamps.filters
        assert flt.complevel == (0 if compression == "none" else 5)


# ---------------------------------------------------------------------------- real files
def _realdata_ptus():
    from tests.conftest import REALDATA

    return sorted(p.name for p in REALDATA.glob("*.ptu")) if REALDATA.is_dir() else ["none"]


@pytest.mark.realdata
@pytest.mark.parametrize("name", _realdata_ptus())
def test_real_files_validate_and_round_trip(realdata, tmp_path, name):
    src = realdata / name
    if not src.exists():
        pytest.skip(f"{src} not present")
    p = read_tttr(src)
    out = export_photon_hdf5(src, tmp_path / "real.hdf5")
    assert_valid(out)
    d = read_back(out)
    assert_array_equal(d["/photon_data/timestamps"], p.timestamps)
    assert_array_equal(d["/photon_data/detectors"], p.detectors)
    if p.is_t3:
        assert_array_equal(d["/photon_data/nanotimes"], p.nanotimes)
        assert d["/photon_data/nanotimes_specs/tcspc_unit"] == p.nanotimes_unit
        assert d["/photon_data/nanotimes_specs/tcspc_num_bins"] > int(p.nanotimes.max())
    else:
        assert "/photon_data/nanotimes" not in d
    if p.markers.size:
        assert_array_equal(d["/user/markers/timestamps"], p.markers.timestamps)
    has_sync = p.sync_timestamps is not None and p.sync_timestamps.size > 0
    assert_array_equal(d["/setup/excitation_cw"], [not (p.is_t3 or has_sync)])
    if p.is_t3:
        assert_array_equal(d["/setup/laser_repetition_rates"], [p.sync_rate_hz])
    assert d["/provenance/software"] == p.header["CreatorSW_Name"].encode()
    created = p.header["File_CreatingTime"].strftime("%Y-%m-%d %H:%M:%S").encode()
    assert d["/provenance/creation_time"] == created
    # the spec-sanctioned alternative also validates and keeps the photons
    out2 = export_photon_hdf5(p, tmp_path / "real_np.hdf5", markers="non_photon_id")
    assert_valid(out2)
    d = read_back(out2)
    det = d["/photon_data/detectors"]
    assert_array_equal(d["/photon_data/timestamps"][det < NON_PHOTON_BASE_ID], p.timestamps)


# ---------------------------------------------------------------------------- files and errors
def test_refuses_existing_output_unless_overwrite(t3_file, tmp_path):
    out = tmp_path / "o.hdf5"
    out.write_bytes(b"keep me")
    with pytest.raises(QrspecError, match=r"o\.hdf5: cannot write: exists; pass overwrite=True"):
        export_photon_hdf5(t3_file, out)
    assert out.read_bytes() == b"keep me"
    export_photon_hdf5(t3_file, out, overwrite=True)
    assert_valid(out)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["hh_t3.ptu", "o.hdf5"]


def test_refuses_to_overwrite_its_input(t3_file):
    with pytest.raises(QrspecError, match=r"hh_t3\.ptu: cannot write: is the input file"):
        export_photon_hdf5(t3_file, t3_file, overwrite=True)


def test_unreadable_input_names_the_file(tmp_path):
    bad = tmp_path / "junk.ptu"
    bad.write_bytes(b"this is not a PTU file at all" * 10)
    with pytest.raises(TTTRFormatError, match=r"junk\.ptu"):
        export_photon_hdf5(bad, tmp_path / "o.hdf5")
    with pytest.raises(QrspecError, match=r"missing\.ptu.*no such file"):
        export_photon_hdf5(tmp_path / "missing.ptu", tmp_path / "o.hdf5")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["junk.ptu"]  # nothing written


def test_failed_validation_leaves_no_file(t3_file, tmp_path, monkeypatch):
    ph = _phconvert_hdf5()

    def reject(*args, **kwargs):
        raise ph.Invalid_PhotonHDF5("injected failure")

    monkeypatch.setattr(ph, "assert_valid_photon_hdf5", reject)
    with pytest.raises(QrspecError, match=r"o\.hdf5: phconvert could not write a valid "
                                          r"Photon-HDF5 file: injected failure"):
        export_photon_hdf5(t3_file, tmp_path / "o.hdf5")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["hh_t3.ptu"]


def test_bad_arguments(t3_file, tmp_path, rng):
    out = tmp_path / "o.hdf5"
    with pytest.raises(QrspecError, match=r"markers='x' must be one of"):
        export_photon_hdf5(t3_file, out, markers="x")
    with pytest.raises(QrspecError, match=r"compression='lzf' must be one of"):
        export_photon_hdf5(t3_file, out, compression="lzf")
    with pytest.raises(QrspecError, match=r"cannot write: is a directory"):
        export_photon_hdf5(t3_file, tmp_path)
    with pytest.raises(QrspecError, match=r"output folder .*nodir does not exist"):
        export_photon_hdf5(t3_file, tmp_path / "nodir" / "o.hdf5")
    with pytest.raises(QrspecError, match=r"photons_or_path=list must be a Photons object"):
        export_photon_hdf5([1, 2], out)
    with pytest.raises(QrspecError, match=r"laser_repetition_rate_hz=-1.0 must be >= 0"):
        export_photon_hdf5(t3_file, out, laser_repetition_rate_hz=-1.0)
    with pytest.raises(QrspecError, match=r"laser_repetition_rate_hz=0 \(CW\) contradicts T3"):
        export_photon_hdf5(t3_file, out, laser_repetition_rate_hz=0)
    empty = Photons.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.uint8),
                                timestamps_unit=1e-12)
    with pytest.raises(QrspecError, match=r"photons: no photons to export"):
        export_photon_hdf5(empty, out)
    high = Photons.from_arrays([1, 2], [0, 70], timestamps_unit=1e-12,
                               markers=Markers(np.array([1]), np.array([1], np.uint16)))
    with pytest.raises(QrspecError, match=r"needs photon detectors < 64; got detector 70"):
        export_photon_hdf5(high, out, markers="non_photon_id")
    assert not out.exists()


def test_stub_import_does_not_shadow_phconvert():
    _phconvert_hdf5()
    pkg = sys.modules.get("phconvert")
    # either phconvert was never imported as a package, or it is the real one (with __file__)
    assert pkg is None or getattr(pkg, "__file__", None)


# ---------------------------------------------------------------------------- CLI
def test_cli(t3_file, tmp_path):
    from qrspec.cli.export_photon_hdf5 import export_photon_hdf5 as cmd

    runner = CliRunner()
    res = runner.invoke(cmd, [str(t3_file), "-o", str(tmp_path / "c.hdf5"), "--author", "Me"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(tmp_path / "c.hdf5")
    assert_valid(tmp_path / "c.hdf5")
    res = runner.invoke(cmd, [str(t3_file), "-o", str(tmp_path / "c.hdf5")])
    assert res.exit_code == 1 and "exists; pass overwrite=True" in res.output
    res = runner.invoke(cmd, [str(t3_file), "-o", str(tmp_path / "c.hdf5"), "--overwrite",
                              "--markers", "non_photon_id"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cmd, [str(t3_file)])  # default output: FILE with suffix .hdf5
    assert res.exit_code == 0 and (tmp_path / "hh_t3.hdf5").exists()
    res = runner.invoke(cmd, [str(tmp_path / "nope.ptu")])
    assert res.exit_code == 1 and "nope.ptu" in res.output
    res = runner.invoke(cmd, [str(t3_file), "--compression", "lzf"])
    assert res.exit_code == 2  # click usage error


def test_issue_16_twelve_detectors_export(tmp_path):
    """A Generic T3 file with 12 detectors: phconvert's KeyError for split_ch11 is worked
    around; all 12 detectors are exported and the file validates."""
    rng = np.random.default_rng(16)
    n = 1200
    det = np.repeat(np.arange(12), n // 12).astype(np.uint8)
    p = Photons.from_arrays(np.sort(rng.integers(0, 10**6, n)), det,
                            nanotimes=rng.integers(0, 3000, n).astype(np.uint16),
                            timestamps_unit=1e-7, nanotimes_unit=16e-12)
    out = export_photon_hdf5(p, tmp_path / "g12.hdf5")
    assert_valid(out)
    d = read_back(out)
    assert_array_equal(np.unique(d["/photon_data/detectors"]), np.arange(12))


def test_issue_16_undecodable_name_export(t3_file, tmp_path):
    """A source and output name with a byte that is not UTF-8: exported, named as \\xNN in
    /identity and /provenance, no stray file (PyTables would write 'caf?.hdf5')."""
    import os

    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.ptu")
    with open(raw, "wb") as fh:
        fh.write(t3_file.read_bytes())
    out = export_photon_hdf5(os.fsdecode(raw), os.fsdecode(raw[:-4] + b".hdf5"))
    link = tmp_path / "ascii_link.hdf5"  # PyTables (used by assert_valid) needs UTF-8 names
    os.symlink(out, link)
    assert_valid(link)
    d = read_back(link)
    assert d["/identity/filename"] == b"caf\\xe9.hdf5"
    assert d["/provenance/filename"] == b"caf\\xe9.ptu"
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"ascii_link.hdf5", b"caf\xe9.hdf5",
                                                         b"caf\xe9.ptu", b"hh_t3.ptu"]


def test_issue_16_write_errors_pytables_reports(t3_file, tmp_path, monkeypatch):
    """An HDF5 error raised by PyTables while writing: OutputError with the system cause."""
    import tables

    import qrspec.io.photon_hdf5 as mod
    from qrspec.errors import OutputError

    def finish(*a, **k):
        raise tables.HDF5ExtError("Problems writing (file write failed: errno = 28, error "
                                  "message = 'No space left on device', buf = 0x1)")

    monkeypatch.setattr(mod, "_finish", finish)
    with pytest.raises(OutputError, match=r"o\.hdf5: cannot write: HDF5 write failed: No space "
                                          r"left on device$"):
        export_photon_hdf5(t3_file, tmp_path / "o.hdf5")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["hh_t3.ptu"]


def test_issue_16_read_back_check_catches_wrong_data(t3_file, tmp_path):
    """The check run before the rename: missing, reshaped or altered photon arrays fail."""
    from qrspec.io.photon_hdf5 import _verify_written

    out = export_photon_hdf5(t3_file, tmp_path / "o.hdf5")
    ts = read_back(out)["/photon_data/timestamps"]
    _verify_written(out, {"photon_data/timestamps": ts})
    with pytest.raises(ValueError, match=r"photon_data/timestamps: rows from 0 differ"):
        _verify_written(out, {"photon_data/timestamps": ts + 1})
    with pytest.raises(ValueError, match=r"photon_data/timestamps: shape"):
        _verify_written(out, {"photon_data/timestamps": ts[:-1]})
    with pytest.raises(ValueError, match=r"arrays \['photon_data/extra'\] are missing"):
        _verify_written(out, {"photon_data/extra": ts})
