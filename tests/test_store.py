"""The results store: typed round trip, the schema, safe reading, crash-safe writing."""

from __future__ import annotations

import dataclasses
import typing

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from qrspec.analysis.flid import Flid
from qrspec.analysis.particle import STAGES, ParticleAnalysis
from qrspec.analysis.pipeline import analyze_file
from qrspec.errors import OutputError, QrspecError
from qrspec.store import hdf5 as store
from qrspec.store.schema import FIELD_DOCS
from qrspec.store.summary import summary_values

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def assert_same(x, y, path="analysis"):
    """Field-by-field equality of result dataclasses (arrays: dtype, shape and values)."""
    if dataclasses.is_dataclass(x):
        assert type(x) is type(y), path
        for f in dataclasses.fields(x):
            assert_same(getattr(x, f.name), getattr(y, f.name), f"{path}.{f.name}")
    elif isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray), path
        assert (x.dtype, x.shape) == (y.dtype, y.shape), path
        assert np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"), path
    elif isinstance(x, float):
        assert isinstance(y, float) and ((np.isnan(x) and np.isnan(y)) or x == y), (path, x, y)
    else:
        assert type(x) is type(y) and x == y, (path, x, y)


@pytest.fixture(scope="module")
def analysis():
    """A real pipeline result with a charging window (the Mn-doped sample)."""
    return analyze_file(ROOT / "data_samples" / "sim_mn_doped_blinking.ptu")


def test_round_trip_of_a_pipeline_result(analysis, tmp_path):
    assert analysis.status == "ok" and analysis.charging.windows.n_c.size >= 1
    path = store.write_particle_file(tmp_path / "a.h5", analysis)
    back = store.read_particle(path, analysis.particle_id)
    assert_same(analysis, back)
    assert back.flags == analysis.flags and back.error == analysis.error
    assert store.read_particle(path) is not None  # the only particle: id optional
    # the usable-window rule is stored, not re-derived
    with h5py.File(path) as f:
        usable = f[f"particles/{analysis.particle_id}/charging/windows/usable"]
        assert usable.dtype == bool and usable.attrs["units"] == ""


def test_round_trip_of_a_failed_particle(tmp_path):
    a = ParticleAnalysis.failed("p_1", "g", "/x/p 1.ptu", "TTTRFormatError: bad", traceback="tb")
    back = store.read_particle(store.write_particle_file(tmp_path / "f.h5", a))
    assert_same(a, back)
    assert back.error == "TTTRFormatError: bad" and back.flags == ()


def _stored_classes():
    """Every dataclass reachable from ParticleAnalysis' stage fields."""
    seen, todo = {}, [ParticleAnalysis]
    while todo:
        cls = todo.pop()
        hints = typing.get_type_hints(cls, vars(__import__("sys").modules[cls.__module__]))
        for f in dataclasses.fields(cls):
            if cls is ParticleAnalysis and f.name not in STAGES:
                continue
            for t in (hints[f.name], *typing.get_args(hints[f.name])):
                if dataclasses.is_dataclass(t) and t.__name__ not in seen:
                    seen[t.__name__] = t
                    todo.append(t)
    return seen


def test_schema_documents_every_stored_field():
    classes = _stored_classes()
    assert {"Trajectory", "Alignment", "G2Result", "G2Histogram", "Levels", "Segments",
            "States", "StateResult", "Flid", "TauXXMethods", "Charging",
            "ChargingWindows"} <= set(classes)
    for name, cls in classes.items():
        assert name in FIELD_DOCS, name
        assert set(FIELD_DOCS[name]) == {f.name for f in dataclasses.fields(cls)}, name
    assert STAGES == tuple(f.name for f in dataclasses.fields(ParticleAnalysis))[-len(STAGES):]


def test_large_arrays_are_datasets_not_attributes(tmp_path):
    """Issue 13 item 1: FLID edges of tens of thousands of values (HDF5 attributes are capped
    at 64 KiB) are datasets; large arrays are chunked and compressed."""
    n = 50_000
    flid = Flid(np.ones((n, 40), np.int64), np.arange(n + 1.0), np.linspace(0, 50, 41), 0.01)
    a = ParticleAnalysis("big", "", "", "", "ok", flid=flid)
    path = store.write_particle_file(tmp_path / "big.h5", a)
    with h5py.File(path) as f:
        d = f["particles/big/flid/count_edges"]
        assert d.shape == (n + 1,) and d.compression == "gzip" and d.chunks
    assert_same(a, store.read_particle(path))


def test_write_error_names_file_and_cause(tmp_path):
    a = ParticleAnalysis.failed("p", "", "", "x")
    target = tmp_path / "missing_dir" / "r.h5"
    with pytest.raises(OutputError, match=r"missing_dir/r.h5: cannot write: output folder "
                       r".*missing_dir does not exist"):
        store.write_particle_file(target, a)
    with pytest.raises(QrspecError, match=r"particle_id='\.\./x' is not a valid particle id"):
        store.write_particle_file(tmp_path / "r.h5", ParticleAnalysis.failed("../x", "", "", ""))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ hostile files
@pytest.fixture()
def good(tmp_path):
    a = ParticleAnalysis.failed("p1", "g", "", "x")
    return store.write_particle_file(tmp_path / "good.h5", a)


def test_refuses_external_link(good, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["secret"] = np.arange(3)
    with h5py.File(good, "a") as f:
        f["particles/p1/trajectory"] = h5py.ExternalLink(str(other), "/secret")
    with pytest.raises(QrspecError, match=r"ExternalLink; results files never hold links"):
        store.read_particle(good, "p1")


def test_refuses_external_storage(good, tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\0" * 800)
    with h5py.File(good, "a") as f:
        f.create_group("particles/p1/flid").create_dataset(
            "histogram", shape=(100,), dtype="i8", external=[(str(raw), 0, 800)])
    with pytest.raises(QrspecError, match=r"external or virtual storage \(refused\)"):
        store.read_particle(good, "p1")


def test_refuses_huge_summary_before_reading(tmp_path):
    """Issue 16 item 5: a small crafted file declaring millions of compressed summary rows is
    refused from its shape (nothing is read)."""
    from qrspec.store.summary import summary_dtype

    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = store.FORMAT, store.FORMAT_VERSION
        f.create_dataset("summary", shape=(3_000_000,), dtype=summary_dtype(),
                         chunks=(10_000,), compression="gzip")
    assert path.stat().st_size < 100_000
    with pytest.raises(QrspecError, match=r"/summary has 3000000 rows > MAX_SUMMARY_ROWS"):
        store.read_results(path)


def test_refuses_path_particle_ids(good):
    with h5py.File(good, "a") as f:
        s = f["summary"][()]
        s["particle_id"] = b"../../x"
        f["summary"][...] = s
    with pytest.raises(QrspecError, match=r"particle_id='\.\./\.\./x' is not a valid"):
        store.read_results(good)
    with pytest.raises(QrspecError, match=r"particle_id='/etc' is not a valid particle id"):
        store.copy_particle_to_part(good, "/etc", good.with_name("x.h5"))


def test_refuses_oversized_dataset(good, monkeypatch):
    with h5py.File(good, "a") as f:
        f.create_group("particles/p1/flid").create_dataset(
            "histogram", shape=(1000, 1000), dtype="i8", chunks=True, compression="gzip")
    monkeypatch.setattr(store, "MAX_DATASET_BYTES", 1 << 20)
    with pytest.raises(QrspecError, match=r"holds 8000000 bytes > MAX_DATASET_BYTES"):
        store.read_particle(good, "p1")


def test_refuses_other_versions_and_model_tables(good, tmp_path):
    with h5py.File(good, "a") as f:
        f.attrs["format_version"] = "1"
    with pytest.raises(QrspecError, match=r"format_version='1'; this qrspec reads '2'"):
        store.read_results(good)
    from qrspec.store.tables import write_model_table

    table = write_model_table(tmp_path / "m.h5", {"n": np.arange(3.0)}, {"a": 1})
    with pytest.raises(QrspecError, match=r"format='qrspec-model'\) \(a `qrspec model` table"):
        store.read_results(table)


def test_report_refuses_a_model_table_cleanly(tmp_path):
    from qrspec.cli import main

    out = tmp_path / "fw.h5"
    r = CliRunner().invoke(main, ["model", "forward", "--n-max", "3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "figs")])
    assert r.exit_code == 1 and "not a qrspec results file (format='qrspec-model')" in r.output
    assert "Traceback" not in r.output


def test_summary_values_and_json_nan_is_null(analysis):
    from qrspec.store.summary import row_to_dict, summary_row

    v = summary_values(analysis)
    assert v["n_photons"] == analysis.trajectory.n_photons
    assert v["n_c_mean"] == analysis.charging.n_c_mean
    d = row_to_dict(summary_row(ParticleAnalysis.failed("p", "", "", "x")))
    assert d["g2_zero"] is None and d["n_photons"] == -1 and d["status"] == "failed"


def test_model_tables_errors(tmp_path):
    from qrspec.store.tables import read_segments_table, write_model_table

    with pytest.raises(QrspecError, match=r"output='.*t\.txt' must end in \.csv, \.h5 or"):
        write_model_table(tmp_path / "t.txt", {"n": [1.0]}, {})
    path = write_model_table(tmp_path / "t.csv", {"n": [1.0, 2.0]}, {"a": 1})
    with pytest.raises(QrspecError, match=r"t\.csv exists; use --overwrite"):
        write_model_table(path, {"n": [1.0]}, {})
    with pytest.raises(OutputError, match=r"nodir/t\.csv: cannot write: output folder"):
        write_model_table(tmp_path / "nodir" / "t.csv", {"n": [1.0]}, {})
    with pytest.raises(QrspecError, match=r"missing\.csv: cannot read the segments table"):
        read_segments_table(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("t_start_s,t_stop_s\n1,2,3\n")
    with pytest.raises(QrspecError, match=r"bad\.csv: cannot read the segments table"):
        read_segments_table(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text("t_start_s,t_stop_s\n0,1\n1,2.5\n")
    assert read_segments_table(ok) == [{"t_start_s": 0.0, "t_stop_s": 1.0},
                                       {"t_start_s": 1.0, "t_stop_s": 2.5}]


def test_analyze_never_replaces_its_input(tmp_path):
    """Issue 16 item 2: ``qrspec analyze X.ptu -o X.ptu --overwrite`` is refused (by file
    identity: a hard link to the input is refused too), and the input is untouched."""
    import os
    import shutil

    from qrspec.cli import main

    src = tmp_path / "p.ptu"
    shutil.copy(ROOT / "data_samples" / "sim_neutral.ptu", src)
    before = src.read_bytes()
    link = tmp_path / "link.h5"
    os.link(src, link)
    for out in (src, link):
        r = CliRunner().invoke(main, ["analyze", str(src), "-o", str(out), "--overwrite"])
        assert r.exit_code == 1 and "refusing to replace an input with results" in r.output
    assert src.read_bytes() == before


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["pqsample_hh_v10_t3.ptu", "pqsample_hh_v20_t3.ptu"])
def test_real_files_write_and_read_back(realdata, tmp_path, name):
    """Issue 13 item 1: these real files could not be written (FLID edges as HDF5 attributes
    above the 64 KiB header limit); now they are, and read back equal."""
    a = analyze_file(realdata / name)
    path = store.write_particle_file(tmp_path / "r.h5", a)
    assert_same(a, store.read_particle(path))
    # the FLID edges that broke the attribute limit (64 KiB: 8192 float64 values) are now
    # capped in qrspec.stats.decay (issue 13 item 2); arrays above the limit are written as
    # datasets: test_large_arrays_are_datasets_not_attributes
    from qrspec.stats.decay import MAX_FLID_COUNT_BINS, MAX_FLID_DELAY_BINS

    assert a.flid.count_edges.size <= MAX_FLID_COUNT_BINS + 1
    assert a.flid.delay_edges_ns.size <= MAX_FLID_DELAY_BINS + 1


def test_analyze_on_a_full_disk_is_a_clean_error(small_tmpfs, tmp_path):
    """Issue 16 item 4: disk full while ``qrspec analyze`` writes its result: exit 1 with the
    file and the cause, no traceback or segfault, nothing left on the disk."""
    import subprocess
    import sys

    disk = small_tmpfs("256k")  # the sample's result is ~1 MB
    out = disk / "r.h5"
    r = subprocess.run([sys.executable, "-m", "qrspec", "analyze",
                        str(ROOT / "data_samples" / "sim_neutral.ptu"), "-o", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"{out}: cannot write: No space left on device" in r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    assert list(disk.iterdir()) == []
