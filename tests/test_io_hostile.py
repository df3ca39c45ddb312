"""Issue 16 (reader side): hostile inputs get a clean TTTRFormatError or a flagged result, never
a hang, a traceback of another type, a silent clean result or memory sized by anything but
photons. Every file is generated here (no committed binaries)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import raw_ptu
from numpy.testing import assert_array_equal
from test_io import HH2T2, HH2T3, ht3_photon, ht3_special
from test_legacy import hh_file

from qrspec.errors import QrspecError, TTTRFormatError
from qrspec.io import iter_tttr, open_layout, read_header, read_tttr, write_ptu
from qrspec.io.files import open_regular, sha256_file
from qrspec.io.reader import corrupt_tolerance
from qrspec.io.records import RECORD_TYPES
from qrspec.io.writer import encode_records

READERS = [read_tttr, read_header, open_layout, lambda p: list(iter_tttr(p))]


def _good_records(n=2000, seed=3):
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(1, 300, n))
    return encode_records("HydraHarp2T3", ts, rng.integers(0, 2, n), rng.integers(0, 3000, n))


# --------------------------------------------------------------------------- not regular files


def _in_subprocess(code: str, timeout=60):
    """Run ``code`` in a fresh interpreter: a hang fails the test (timeout) instead of hanging
    the suite."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=os.path.dirname(__file__))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_issue_16_fifo_input_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.ptu"
    os.mkfifo(fifo)
    out = _in_subprocess(f"""
        from qrspec.io import iter_tttr, open_layout, read_header, read_tttr
        from qrspec.io.files import sha256_file
        from qrspec.cli.info import describe
        for f in (read_tttr, read_header, open_layout, lambda p: list(iter_tttr(p)),
                  sha256_file, describe):
            try:
                f({str(fifo)!r})
            except ValueError as exc:
                print(type(exc).__name__, exc)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 6
    assert all("pipe.ptu: is a FIFO (named pipe), not a" in line for line in lines), lines
    assert all(line.startswith(("TTTRFormatError", "QrspecError")) for line in lines), lines


@pytest.mark.parametrize("reader", READERS)
def test_issue_16_directory_and_device_are_refused(tmp_path, reader):
    folder = tmp_path / "folder.ptu"
    folder.mkdir()
    with pytest.raises(TTTRFormatError, match=r"folder.ptu: is a directory, not a TTTR file"):
        reader(folder)
    if os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode):
        with pytest.raises(TTTRFormatError, match=r"/dev/null: is a character device, not a "
                                                  r"TTTR file"):
            reader("/dev/null")


def test_issue_16_open_regular_checks_the_open_descriptor(tmp_path, monkeypatch):
    """A path swapped for a FIFO between the type check and the open is caught on the open
    descriptor (opened non-blocking, so the open itself cannot hang)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    import qrspec.io.files as files

    monkeypatch.setattr(files.os, "stat", lambda p: regular)  # the check sees a regular file
    with pytest.raises(QrspecError, match=r"swapped: is a FIFO \(named pipe\), not a regular "
                                          r"file"):
        open_regular(fifo)


def test_issue_16_sha256_of_missing_or_directory(tmp_path):
    with pytest.raises(QrspecError, match=r"nope: no such file"):
        sha256_file(tmp_path / "nope")
    with pytest.raises(QrspecError, match=r"is a directory, not a regular file"):
        sha256_file(tmp_path)
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


# --------------------------------------------------------------------------- hostile headers


def test_issue_16_duplicated_float8array_tag(tmp_path, caplog):
    same = [("Arr", [1.0, 2.0], -1, "Float8Array"), ("Arr", [1.0, 2.0], -1, "Float8Array")]
    p = raw_ptu(tmp_path / "same.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, extra_tags=same)
    ph = read_tttr(p)
    assert_array_equal(ph.header["Arr"], [1.0, 2.0])
    assert not any("repeated" in w for w in ph.warnings)
    other = [("Arr", [1.0, 2.0], -1, "Float8Array"), ("Arr", [3.0], -1, "Float8Array"),
             ("Num", float("nan")), ("Num", float("nan"))]
    p = raw_ptu(tmp_path / "other.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, extra_tags=other)
    ph = read_tttr(p)
    assert_array_equal(ph.header["Arr"], [1.0, 2.0])  # the first is kept
    assert [w for w in ph.warnings if "repeated" in w] == [
        "tag 'Arr' repeated with a different value; keeping the first"]  # NaN == NaN here


@pytest.mark.parametrize(("tag", "value", "match"), [
    ("MeasDesc_GlobalResolution", 1e300, r"MeasDesc_GlobalResolution=1e\+300 s is not a "
                                         r"plausible T3 sync period \(expected 1e-11..10 s\)"),
    ("MeasDesc_GlobalResolution", 1e-288, r"MeasDesc_GlobalResolution=1e-288 s is not a "
                                          r"plausible T3 sync period"),
    ("MeasDesc_Resolution", 1e-288, r"MeasDesc_Resolution=1e-288 s is not a plausible T3 "
                                    r"TCSPC bin width"),
    ("MeasDesc_Resolution", 5e-324, r"MeasDesc_Resolution=5e-324 s is not a plausible"),
    ("MeasDesc_Resolution", float("inf"), r"T3 file without a valid MeasDesc_Resolution "
                                          r"\(inf\)"),
    ("MeasDesc_Resolution", 0.0, r"T3 file without a valid MeasDesc_Resolution \(0.0\)"),
])
def test_issue_16_t3_time_units_out_of_range(tmp_path, tag, value, match):
    kw = {"glob_res": value} if tag == "MeasDesc_GlobalResolution" else {"res": value}
    p = raw_ptu(tmp_path / "u.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, **kw)
    for reader in READERS:
        with pytest.raises(TTTRFormatError, match=match):
            reader(p)


@pytest.mark.parametrize("value", [float("inf"), 0.0, -1.0])
def test_issue_16_t3_sync_period_sanitised_from_sync_rate(tmp_path, value):
    p = raw_ptu(tmp_path / "g.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, glob_res=value,
                sync_rate=20_000_000)
    ph = read_tttr(p)
    assert ph.timestamps_unit == pytest.approx(5e-8)
    assert any(f"MeasDesc_GlobalResolution={value!r} invalid; using 1/TTResult_SyncRate" in w
               for w in ph.warnings)


def test_issue_16_t2_units(tmp_path):
    rec = [(1 << 25) | 5]
    p = raw_ptu(tmp_path / "a.ptu", rec, rec_type=HH2T2, glob_res=1e-288, res=1e-12)
    with pytest.raises(TTTRFormatError, match=r"MeasDesc_GlobalResolution=1e-288 s is not a "
                                              r"plausible T2 time tag resolution"):
        read_tttr(p)
    p = raw_ptu(tmp_path / "b.ptu", rec, rec_type=HH2T2, glob_res=float("inf"), res=1e-12)
    ph = read_tttr(p)
    assert ph.timestamps_unit == 1e-12
    assert any("MeasDesc_GlobalResolution=inf invalid; using MeasDesc_Resolution=1e-12 s" in w
               for w in ph.warnings)
    p = raw_ptu(tmp_path / "c.ptu", rec, rec_type=HH2T2, glob_res=0.0, res=float("nan"))
    with pytest.raises(TTTRFormatError, match=r"T2 file without a valid "
                                              r"MeasDesc_GlobalResolution or MeasDesc_Resolution "
                                              r"\(0.0, nan\)"):
        read_tttr(p)


def test_issue_16_sync_rate_out_of_range_is_ignored(tmp_path):
    p = raw_ptu(tmp_path / "s.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, sync_rate=10**15)
    ph = read_tttr(p)
    assert ph.sync_rate_hz == pytest.approx(1e7)  # 1 / MeasDesc_GlobalResolution
    assert any("TTResult_SyncRate=1000000000000000 Hz is outside 0.1..1e+11 Hz; ignored" in w
               for w in ph.warnings)


@pytest.mark.parametrize(("kw", "match"), [
    ({"resolution_ps": 2e-314}, r"Resolution=2e-314 ps is outside the plausible 0.01..1e\+06 "
                                r"ps \(the T3 nanotime bin width in ps\)"),
    ({"resolution_ps": 1e300}, r"Resolution=1e\+300 ps is outside the plausible"),
    ({"resolution_ps": 2e-314, "mode": 2}, r"Resolution=2e-314 ps is outside the plausible "
                                           r"0.01..1e\+06 ps \(the T2 time tag resolution"),
])
def test_issue_16_legacy_units_out_of_range(tmp_path, kw, match):
    p = tmp_path / "x.ht3"
    p.write_bytes(hh_file(_good_records(20), **kw))
    for reader in READERS:
        with pytest.raises(TTTRFormatError, match=match):
            reader(p)


# --------------------------------------------------------------------------- corrupt records


def _valid_then_random(tmp_path, rec_type, n_random, seed=0, name="r.ptu"):
    rng = np.random.default_rng(seed)
    recs = np.concatenate([_good_records(2000), rng.integers(0, 2**32, n_random, np.uint32)])
    return raw_ptu(tmp_path / name, recs, rec_type=rec_type)


@pytest.mark.parametrize("code", sorted(rt.code for rt in RECORD_TYPES.values() if rt.code))
def test_issue_16_random_records_are_corrupt(tmp_path, code):
    """1 MB of random records after a valid header: refused by every reader (and `info`),
    never decoded into a clean-looking result."""
    from qrspec.cli.info import describe

    p = _valid_then_random(tmp_path, code, 1 << 18)
    name = next(rt.name for rt in RECORD_TYPES.values() if rt.code == code)
    pattern = rf"r.ptu: corrupt {name} records: \d+ with reserved codes, \d+ repeated all-zero"
    for reader in (read_tttr, lambda q: list(iter_tttr(q)), describe):
        with pytest.raises(TTTRFormatError, match=pattern):
            reader(p)


def test_issue_16_few_invalid_records_are_flagged(tmp_path, caplog):
    """Within the tolerance (16 here) the file decodes, flagged in n_invalid_records and in
    warnings: photons going back in time are sorted, reserved codes skipped."""
    recs = list(_good_records(2000))
    recs[100:100] = [ht3_special(40, 5)] * 3  # reserved special codes
    recs[500:500] = [ht3_photon(1, 7, 0)]  # a photon back in time (nsync 0 in a busy wrap)
    p = raw_ptu(tmp_path / "few.ptu", recs, rec_type=HH2T3)
    ph = read_tttr(p)
    assert ph.n_invalid_records == 4
    assert "3 records with reserved/invalid channel codes skipped" in ph.warnings
    assert any("photon timestamps decrease 1 times" in w for w in ph.warnings)
    assert np.all(np.diff(ph.timestamps) >= 0)
    chunks = list(iter_tttr(p, chunk_records=300))
    assert chunks[-1].n_invalid_records == 4
    assert sum(c.size for c in chunks) == ph.size


def test_issue_16_backwards_times_beyond_tolerance(tmp_path):
    rng = np.random.default_rng(5)
    recs = _good_records(4000)
    ph_idx = np.flatnonzero(recs < 0x80000000)
    bad = rng.choice(ph_idx[1:], 40, replace=False)
    recs[bad] = recs[bad] & ~np.uint32(1023)  # nsync -> 0: earlier than the photon before
    p = raw_ptu(tmp_path / "back.ptu", recs, rec_type=HH2T3)
    with pytest.raises(TTTRFormatError, match=r"0 with reserved codes, 0 repeated all-zero "
                                              r"records \(a zero-filled region\) and \d\d "
                                              r"photons earlier than the photon before them in "
                                              r"the first \d+ of \d+ records \(at most 16 are "
                                              r"tolerated"):
        read_tttr(p)


def test_issue_16_tolerance():
    assert corrupt_tolerance(0) == 16
    assert corrupt_tolerance(1_000_000) == 100


def test_issue_16_photons_on_unlisted_detectors_are_flagged(tmp_path):
    rng = np.random.default_rng(2)
    ts = np.cumsum(rng.integers(1, 300, 500))
    det = rng.integers(0, 2, 500)
    det[::50] = 7
    recs = encode_records("HydraHarp2T3", ts, det, rng.integers(0, 300, 500))
    p = raw_ptu(tmp_path / "d.ptu", recs, rec_type=HH2T3, extra_tags=[("HW_InpChannels", 3)])
    ph = read_tttr(p)
    assert ph.n_invalid_records == 10
    assert "10 photons on detectors >= 4, which the header does not list" in ph.warnings
    assert_array_equal(ph.detectors, det)  # decoded, only flagged


def test_issue_16_zero_filled_sparse_file(tmp_path):
    """A 1 GB sparse file of zero records: refused at its first chunk, in bounded memory and
    time (a zero record is a photon on detector 0 at time 0; a run of them is no data)."""
    good = raw_ptu(tmp_path / "z.ptu", _good_records(1000), rec_type=HH2T3,
                   n_records=(1 << 28))
    with open(good, "r+b") as f:
        f.truncate(os.path.getsize(good) + (1 << 30))  # sparse: no disk blocks
    code = f"""
        import json, time
        from qrspec.errors import TTTRFormatError
        from qrspec.io import read_tttr, iter_tttr
        from qrspec.cli.info import describe
        out = []
        for f in (read_tttr, lambda p: next(iter(iter_tttr(p))), describe):
            t = time.perf_counter()
            try:
                f({str(good)!r})
                out.append("decoded")
            except TTTRFormatError as exc:
                out.append(str(exc))
            out.append(time.perf_counter() - t)
        # VmHWM: this process's own peak (ru_maxrss would start at the parent's peak: fork)
        with open("/proc/self/status") as f:
            rss = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024
        print(json.dumps([out, rss]))
    """
    r = _in_subprocess(code, timeout=120)
    assert r.returncode == 0, r.stderr
    out, rss_mb = json.loads(r.stdout.splitlines()[-1])
    for msg in out[::2]:
        assert "repeated all-zero records (a zero-filled region)" in msg, msg
    # each refusal within a few seconds even on a loaded 2-core machine (it reads one chunk)
    assert max(out[1::2]) < 20
    # one chunk of records and the interpreter with numpy/numba: far below the 11 GB that 1 GB
    # of zero "photons" would take, and below the budget of issue 16 (2 GB)
    assert rss_mb < 500, rss_mb


# --------------------------------------------------------------------------- many detectors


@pytest.mark.parametrize("n_det", [11, 12])
def test_issue_16_generic_t3_with_many_detectors(tmp_path, n_det):
    """Generic T3 (MultiHarp) with 11-12 detectors decodes, and the Photon-HDF5 export (phconvert
    raised KeyError: 11 naming the 11th split channel) works."""
    h5py = pytest.importorskip("h5py")
    from qrspec.io.photon_hdf5 import export_photon_hdf5

    rng = np.random.default_rng(n_det)
    ts = np.sort(rng.integers(0, 10**7, 3000))
    det = np.arange(3000) % n_det
    p = write_ptu(tmp_path / "g.ptu", record_type="GenericT3", timestamps=ts, detectors=det,
                  nanotimes=rng.integers(0, 3000, 3000), timestamps_unit=5e-8,
                  nanotimes_unit=5e-12)
    ph = read_tttr(p)
    assert ph.detector_ids.tolist() == list(range(n_det))
    assert ph.warnings == () and ph.n_invalid_records == 0
    out = export_photon_hdf5(ph, tmp_path / "g.h5")
    with h5py.File(out) as f:
        specs = f["photon_data/measurement_specs/detectors_specs"]
        assert specs[f"split_ch{n_det}"][()] == [n_det - 1]
        assert_array_equal(f["photon_data/detectors"][:], det)


def test_issue_16_unopenable_path(tmp_path):
    loop = tmp_path / "loop.ptu"
    os.symlink(loop, loop)  # stat fails with ELOOP: not "no such file"
    with pytest.raises(TTTRFormatError, match=r"loop.ptu: cannot open: Too many levels of "
                                              r"symbolic links"):
        read_tttr(loop)


def test_decode_threads_setting(tmp_path, monkeypatch):
    from qrspec.io.reader import decode_threads

    monkeypatch.setenv("QRSPEC_DECODE_THREADS", "3")
    assert decode_threads() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("QRSPEC_DECODE_THREADS", bad)
        with pytest.raises(QrspecError, match=rf"QRSPEC_DECODE_THREADS='{bad}' must be a "
                                              r"positive integer"):
            decode_threads()


def test_issue_19_bad_decode_threads_setting_is_a_clean_cli_error(tmp_path, monkeypatch):
    """A nonsense QRSPEC_DECODE_THREADS was a plain ValueError: a traceback from the CLI."""
    from click.testing import CliRunner

    from qrspec.cli import main

    p = write_ptu(tmp_path / "a.ptu", record_type="HydraHarp2T3",
                  timestamps=np.arange(100), detectors=np.zeros(100, int),
                  nanotimes=np.zeros(100, int), timestamps_unit=1e-7, nanotimes_unit=16e-12)
    monkeypatch.setenv("QRSPEC_DECODE_THREADS", "two")
    out = tmp_path / "out.h5"
    res = CliRunner().invoke(main, ["analyze", str(p), "-o", str(out)])
    assert res.exit_code == 1, res.output
    assert "QRSPEC_DECODE_THREADS='two' must be a positive integer" in res.output
    assert "Traceback" not in res.output and not out.exists()


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_parallel_decode_equals_serial(tmp_path, monkeypatch, threads, decode_kernel):
    """Chunks split into parts decoded by threads straight into the output: the same photons
    for any thread count and chunk size (parts start mid-run of overflows and markers)."""
    monkeypatch.setenv("QRSPEC_DECODE_THREADS", threads)
    rng = np.random.default_rng(int(threads))
    n = 700_000
    ts = np.cumsum(rng.geometric(0.02, n) - 1)
    det = rng.integers(0, 4, n)
    nt = rng.integers(0, 6000, n)
    mts = np.sort(rng.integers(0, ts[-1], 5000))
    p = write_ptu(tmp_path / "big.ptu", record_type="HydraHarp2T3", timestamps=ts,
                  detectors=det, nanotimes=nt, timestamps_unit=1e-7, nanotimes_unit=16e-12,
                  marker_timestamps=mts, marker_bits=rng.integers(1, 16, 5000))
    for chunk in (1 << 18, 1 << 20):
        ph = read_tttr(p, chunk_records=chunk)
        assert_array_equal(ph.timestamps, ts)
        assert_array_equal(ph.detectors, det)
        assert_array_equal(ph.nanotimes, nt)
        assert_array_equal(ph.markers.timestamps, mts)
        assert ph.warnings == () and ph.n_invalid_records == 0


def test_scan_decode_mismatch_is_an_internal_error(tmp_path, monkeypatch):
    """The decoder checks that each part decoded the counts its scan promised (a kernel bug
    would otherwise leave unwritten output)."""
    import qrspec.io.reader as reader
    from qrspec.io.records import DecodeCounts

    p = raw_ptu(tmp_path / "m.ptu", _good_records(50), rec_type=HH2T3)
    real = reader.decode_chunk

    def wrong(*args):
        r = real(*args)
        return DecodeCounts(r.ofl, r.n_photons - 1, r.n_markers, r.n_sync, r.n_invalid,
                            r.n_backwards)

    monkeypatch.setattr(reader, "decode_chunk", wrong)
    with pytest.raises(RuntimeError, match=r"decoder scan/decode mismatch in HydraHarp2T3"):
        read_tttr(p)


def test_info_refuses_overflow_past_int64(tmp_path):
    from qrspec.cli.info import describe

    rt = RECORD_TYPES["GenericT2"]
    n = (2**63) // ((2**25 - 1) * rt.wrap) + 2
    recs = np.concatenate([np.full(n, 0xFFFFFFFF, np.uint32), np.array([0x02000005], np.uint32)])
    p = raw_ptu(tmp_path / "o.ptu", recs, rec_type=rt.code, glob_res=1e-12, res=1e-12)
    with pytest.raises(TTTRFormatError, match=r"time-tag overflows of 33554432 ticks exceed "
                                              r"the int64 timestamp range"):
        describe(p)
