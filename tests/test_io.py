"""Reader tests: real files against ptufile, hand-made corner cases, every record type."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
from conftest import raw_ptu
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from qrspec import QrspecError, TTTRFormatError
from qrspec.io import encode_records, iter_tttr, read_header, read_tttr, write_ptu
from qrspec.io.reader import concat_chunks
from qrspec.io.records import RECORD_TYPES

# ---------------------------------------------------------------- record builders (from the
# PicoQuant format documentation, apx_tttrrecords; fields listed MSB first)


def ht3_photon(ch, dtime, nsync):
    return (ch << 25) | (dtime << 10) | nsync


def ht3_special(ch, nsync):
    return 0x80000000 | (ch << 25) | nsync


def ht2_photon(ch, tt):
    return (ch << 25) | tt


def ht2_special(ch, tt):
    return 0x80000000 | (ch << 25) | tt


def pt3_record(ch, dtime, nsync):
    return (ch << 28) | (dtime << 16) | nsync


def pt2_record(ch, tt):
    return (ch << 28) | tt


HH2T3, HH1T3, PHT3 = 0x01010304, 0x00010304, 0x00010303
HH2T2, HH1T2, PHT2, GENT2 = 0x01010204, 0x00010204, 0x00010203, 0x00010207

# ---------------------------------------------------------------- real files vs ptufile

REAL_PTU = [
    "pqsample_hh_v10_t3.ptu",
    "pqsample_hh_v20_t3.ptu",
    "tttrlib_Microtime200_HH400_beads.ptu",
    "libpicoquant_hh_v30_t2.ptu",
    "pqsample_ph_v30_t2.ptu",
]


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL_PTU)
def test_real_ptu_equals_ptufile(realdata, name, decode_kernel):
    ptufile = pytest.importorskip("ptufile")
    path = realdata / name
    ours = read_tttr(path)
    with ptufile.PtuFile(path) as f:
        rec = f.decode_records()
    photon = rec["channel"] >= 0
    # ptufile's `time` of photon records is the global sync (T3) / tag (T2) count
    assert_array_equal(ours.timestamps, rec["time"][photon].astype(np.int64))
    assert_array_equal(ours.detectors, rec["channel"][photon].astype(np.uint8))
    if ours.is_t3:
        assert_array_equal(ours.nanotimes, rec["dtime"][photon].astype(np.uint16))
    assert ours.markers.size == int(np.count_nonzero(rec["marker"] > 0))
    assert np.all(np.diff(ours.timestamps) >= 0)


# counts per detector from ../shared/realdata/INVENTORY.md (ptufile / tttrlib / manual decode)
INVENTORY_COUNTS = {
    "pqsample_hh_v10_t3.ptu": ("HydraHarpT3", {0: 48001, 1: 46559}, 73241),
    "pqsample_hh_v20_t3.ptu": ("HydraHarp2T3", {0: 45012, 1: 32871}, 48827),
    "tttrlib_Microtime200_HH400_beads.ptu": ("HydraHarp2T3", {0: 52833, 1: 20954}, 412333),
    "libpicoquant_hh_v30_t2.ptu": ("HydraHarp2T2", {0: 305565}, None),
    "pqsample_ph_v30_t2.ptu": ("PicoHarpT2", {0: 531477, 1: 388700}, 9077),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(INVENTORY_COUNTS))
def test_real_ptu_inventory(realdata, name):
    rtype, counts, n_ovf = INVENTORY_COUNTS[name]
    p = read_tttr(realdata / name)
    assert p.record_type == rtype
    assert {int(d): int(p.counts_per_detector[d]) for d in p.detector_ids} == counts
    if n_ovf is not None:
        assert p.n_overflows == n_ovf


@pytest.mark.realdata
def test_real_markers_are_separated(realdata):
    # INVENTORY: beads image has markers 4:50 and 8:50 (bit values) = inputs 3 and 4
    p = read_tttr(realdata / "tttrlib_Microtime200_HH400_beads.ptu")
    assert p.markers.counts_per_bit() == {3: 50, 4: 50}
    assert set(p.detector_ids.tolist()) == {0, 1}


@pytest.mark.realdata
def test_real_units_and_header(realdata):
    p = read_tttr(realdata / "pqsample_hh_v20_t3.ptu")
    assert p.timestamps_unit == pytest.approx(200.0016e-9, rel=1e-6)
    assert p.nanotimes_unit == pytest.approx(64e-12)
    assert p.sync_rate_hz == 4999960
    assert p.header["TTResultFormat_TTTRRecType"] == HH2T3
    # indexed tags keep their index; the file writes index 3 before index 1 (out of order)
    assert p.header["UsrHeadName[1]"] == "405.0nm (DC405)"
    assert isinstance(p.header["File_CreatingTime"], dt.datetime)
    # PicoHarp T2: header says 60 s acquisition, data spans 7.65 s (stopped early)
    q = read_tttr(realdata / "pqsample_ph_v30_t2.ptu")
    assert q.acquisition_s == 60.0
    assert q.duration_s == pytest.approx(7.65, abs=0.01)


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL_PTU)
def test_real_chunked_equals_whole(realdata, name, decode_kernel):
    path = realdata / name
    whole = read_tttr(path)
    chunks = concat_chunks(iter_tttr(path, chunk_records=9973))
    assert_array_equal(chunks.timestamps, whole.timestamps)
    assert_array_equal(chunks.detectors, whole.detectors)
    if whole.is_t3:
        assert_array_equal(chunks.nanotimes, whole.nanotimes)
    assert_array_equal(chunks.markers.timestamps, whole.markers.timestamps)
    assert chunks.n_overflows == whole.n_overflows


# ---------------------------------------------------------------- corner cases of the spec


def test_hh2_t3_overflow_count_zero_means_one(tmp_path):
    recs = [ht3_photon(0, 5, 9), ht3_special(63, 0), ht3_photon(1, 7, 3),
            ht3_special(63, 3), ht3_photon(0, 1, 1)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=HH2T3))
    assert_array_equal(p.timestamps, [9, 1024 + 3, 1024 * 4 + 1])
    assert_array_equal(p.detectors, [0, 1, 0])
    assert_array_equal(p.nanotimes, [5, 7, 1])
    assert p.n_overflows == 4


def test_hh1_t3_overflow_always_one(tmp_path):
    # in V1 files the nsync field of an overflow record carries no count
    recs = [ht3_special(63, 5), ht3_photon(2, 3, 4)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=HH1T3))
    assert_array_equal(p.timestamps, [1024 + 4])
    assert_array_equal(p.detectors, [2])


def test_hh_t3_markers_separated(tmp_path):
    recs = [ht3_photon(0, 5, 9), ht3_special(5, 10), ht3_special(63, 1), ht3_special(2, 20),
            ht3_photon(1, 2, 30)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=HH2T3))
    assert_array_equal(p.timestamps, [9, 1054])
    assert_array_equal(p.markers.timestamps, [10, 1044])
    assert_array_equal(p.markers.bits, [5, 2])
    assert p.markers.counts_per_bit() == {1: 1, 2: 1, 3: 1}


def test_picoharp_t3_dtime_zero_is_photon_and_markers(tmp_path):
    recs = [pt3_record(1, 0, 10), pt3_record(15, 4, 11), pt3_record(15, 0, 0),
            pt3_record(4, 4095, 12)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=PHT3, res=4e-12))
    assert_array_equal(p.timestamps, [10, 65536 + 12])
    assert_array_equal(p.detectors, [0, 3])  # channel 1 -> 0, channel 4 -> 3
    assert_array_equal(p.nanotimes, [0, 4095])
    assert_array_equal(p.markers.bits, [4])
    assert_array_equal(p.markers.timestamps, [11])


def test_hh_t2_sync_events_kept_apart(tmp_path):
    recs = [ht2_special(0, 200), ht2_photon(0, 250), ht2_special(63, 2), ht2_photon(1, 7),
            ht2_special(0, 9)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=HH2T2, glob_res=1e-12))
    assert_array_equal(p.timestamps, [250, 2 * 2**25 + 7])
    assert_array_equal(p.detectors, [0, 1])
    assert_array_equal(p.sync_timestamps, [200, 2 * 2**25 + 9])
    assert p.nanotimes is None


def test_hh2_t2_overflow_count_zero_means_one(tmp_path):
    recs = [ht2_special(63, 0), ht2_photon(3, 5)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=HH2T2, glob_res=1e-12))
    assert_array_equal(p.timestamps, [2**25 + 5])


def test_hh1_t2_overflow_period(tmp_path):
    recs = [ht2_special(63, 0), ht2_special(63, 7), ht2_photon(0, 5)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=HH1T2, glob_res=1e-12))
    assert_array_equal(p.timestamps, [2 * 33_552_000 + 5])


def test_generic_t2_same_as_hh2(tmp_path):
    recs = [ht2_special(63, 3), ht2_photon(5, 5)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=GENT2, glob_res=5e-12))
    assert_array_equal(p.timestamps, [3 * 2**25 + 5])
    assert p.record_type == "GenericT2"


def test_picoharp_t2_overflow_and_marker_time(tmp_path):
    recs = [pt2_record(15, 0), pt2_record(15, 0x1230 | 0x2), pt2_record(0, 9), pt2_record(2, 11)]
    p = read_tttr(raw_ptu(tmp_path / "a.ptu", recs, rec_type=PHT2, glob_res=4e-12))
    assert_array_equal(p.timestamps, [210_698_240 + 9, 210_698_240 + 11])
    assert_array_equal(p.detectors, [0, 2])
    # the low 4 bits of a marker record's time field are the marker bits, not time
    assert_array_equal(p.markers.timestamps, [210_698_240 + 0x1230])
    assert_array_equal(p.markers.bits, [2])


# ---------------------------------------------------------------- round trips of every type


def _random_stream(rng, rt, n):
    if rt.mode == 3:
        ts = np.sort(rng.integers(0, 5 * rt.wrap * 50, n))
        nt = rng.integers(0, rt.n_dtime_bins, n)
    else:
        ts = np.sort(rng.integers(0, 4 * rt.wrap, n))
        nt = None
    max_det = {"pt3": 3, "t3r": 3, "pt2": 4}.get(rt.family, 62)
    return ts, rng.integers(0, max_det + 1, n), nt


@pytest.mark.parametrize("name", [n for n, rt in RECORD_TYPES.items() if rt.code])
def test_round_trip_every_ptu_record_type(tmp_path, rng, name, decode_kernel):
    rt = RECORD_TYPES[name]
    ts, det, nt = _random_stream(rng, rt, 2000)
    mts = np.sort(rng.integers(0, ts[-1], 20)) & ~0xF  # PicoHarp T2 marker times are /16
    mbits = rng.integers(1, 16, 20)
    path = write_ptu(tmp_path / "x.ptu", record_type=name, timestamps=ts, detectors=det,
                     nanotimes=nt, timestamps_unit=1e-7 if rt.mode == 3 else 1e-12,
                     nanotimes_unit=16e-12, marker_timestamps=mts, marker_bits=mbits)
    p = read_tttr(path)
    assert p.record_type == name
    assert_array_equal(p.timestamps, ts)
    assert_array_equal(p.detectors, det)
    if nt is not None:
        assert_array_equal(p.nanotimes, nt)
    order = np.argsort(mts, kind="stable")
    assert_array_equal(p.markers.timestamps, mts[order])
    bits = mbits[order] & 0xF
    assert_array_equal(p.markers.bits, bits)
    assert p.warnings == ()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from([n for n, rt in RECORD_TYPES.items() if rt.code]),
    data=st.data(),
)
def test_property_random_streams_survive_encode_decode(tmp_path, name, data):
    rt = RECORD_TYPES[name]
    n = data.draw(st.integers(0, 60))
    gaps = data.draw(st.lists(st.integers(0, 3 * rt.wrap), min_size=n, max_size=n))
    ts = np.cumsum(np.asarray(gaps, np.int64))
    max_det = {"pt3": 3, "t3r": 3, "pt2": 4}.get(rt.family, 62)
    det = np.asarray(data.draw(st.lists(st.integers(0, max_det), min_size=n, max_size=n)),
                     np.int64)
    nt = None
    if rt.mode == 3:
        nt = np.asarray(data.draw(st.lists(st.integers(0, rt.n_dtime_bins - 1), min_size=n,
                                           max_size=n)), np.int64)
    # more than 16 all-zero records right after an all-zero record (photons on detector 0 at
    # the same time field 0 and dtime 0: one detector cannot record them, its dead time is
    # longer than a tick) are a zero-filled region to the reader: a corrupt file (tested in
    # test_issue_16_*)
    zero = encode_records(rt, ts, det, nt) == 0
    assume(np.count_nonzero(zero[1:] & zero[:-1]) <= 16)
    path = write_ptu(tmp_path / f"{name}.ptu", record_type=name, timestamps=ts, detectors=det,
                     nanotimes=nt, timestamps_unit=1e-7 if rt.mode == 3 else 1e-12,
                     nanotimes_unit=4e-12)
    p = read_tttr(path)
    assert_array_equal(p.timestamps, ts)
    assert_array_equal(p.detectors, det)
    if nt is not None:
        assert_array_equal(p.nanotimes, nt)
    chunked = list(iter_tttr(path, chunk_records=data.draw(st.integers(1, 7))))
    if chunked:
        assert_array_equal(concat_chunks(chunked).timestamps, ts)


def test_t2_sync_round_trip(tmp_path, rng):
    ts = np.sort(rng.integers(0, 10 * 2**25, 300))
    sync = np.sort(rng.integers(0, 10 * 2**25, 50))
    path = write_ptu(tmp_path / "s.ptu", record_type="HydraHarp2T2", timestamps=ts,
                     detectors=rng.integers(0, 4, 300), timestamps_unit=1e-12,
                     sync_timestamps=sync)
    p = read_tttr(path)
    assert_array_equal(p.timestamps, ts)
    assert_array_equal(p.sync_timestamps, sync)


def test_channels_filter(tmp_path, rng):
    ts = np.sort(rng.integers(0, 10**6, 500))
    det = rng.integers(0, 3, 500)
    path = write_ptu(tmp_path / "c.ptu", record_type="HydraHarp2T3", timestamps=ts,
                     detectors=det, nanotimes=rng.integers(0, 1000, 500), timestamps_unit=1e-7,
                     nanotimes_unit=16e-12)
    p = read_tttr(path, channels=[0, 2])
    assert_array_equal(p.timestamps, ts[det != 1])
    with pytest.raises(ValueError, match=r"channels=\[-1\] must be 0-based"):
        read_tttr(path, channels=[-1])
    with pytest.raises(ValueError, match=r"chunk_records=0 must be a positive integer"):
        read_tttr(path, chunk_records=0)


# ---------------------------------------------------------------- header: every tag type


def test_every_tag_type_decodes(tmp_path):
    when = dt.datetime(2024, 6, 11, 12, 30)
    extra = [
        ("T_Empty", None, -1, "Empty8"),
        ("T_Bool", True, -1, "Bool8"),
        ("T_Int", -42, -1, "Int8"),
        ("T_Bits", 0xF0F0, -1, "BitSet64"),
        ("T_Color", 0x00FF00, -1, "Color8"),
        ("T_Float", 2.5, -1, "Float8"),
        ("T_Date", when, -1, "TDateTime"),
        ("T_Array", [1.0, 2.0, 3.5], -1, "Float8Array"),
        ("T_Ansi", "5 µm Ø", -1, "AnsiString"),  # 0xB5 and 0xD8 in cp1252: not UTF-8
        ("T_Wide", "wide ✓", -1, "WideString"),
        ("T_Blob", b"\x01\x02\x03", -1, "BinaryBlob"),
        ("T_Idx", "third", 3, "AnsiString"),
        ("T_Idx", "first", 1, "AnsiString"),  # indices out of order
    ]
    path = raw_ptu(tmp_path / "t.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, extra_tags=extra)
    h = read_header(path)
    assert h["T_Empty"] is None
    assert h["T_Bool"] is True
    assert h["T_Int"] == -42
    assert h["T_Bits"] == 0xF0F0
    assert h["T_Color"] == 0x00FF00
    assert h["T_Float"] == 2.5
    assert abs(h["T_Date"] - when) < dt.timedelta(seconds=1)
    assert_array_equal(h["T_Array"], [1.0, 2.0, 3.5])
    assert h["T_Ansi"] == "5 µm Ø"
    assert h["T_Wide"] == "wide ✓"
    assert h["T_Blob"][:3] == b"\x01\x02\x03"
    assert h["T_Idx[3]"] == "third" and h["T_Idx[1]"] == "first"
    keys = list(h)
    assert keys.index("T_Idx[3]") < keys.index("T_Idx[1]")  # order as written
    assert keys[-1] == "Header_End"


@pytest.mark.parametrize(("value", "expected"), [
    (13334234245.695, dt.datetime(2023, 7, 19, 9, 57, 25, 695000)),  # s since 1601 (SymPhoTime 64)
    (45000.5, dt.datetime(2023, 3, 15, 12, 0)),  # TDateTime days written as a plain Float8
])
def test_float8_creation_time_is_a_date(tmp_path, value, expected):
    # zoccoler_hazelnut_z10.ptu stores File_CreatingTime as a Float8 of seconds since 1601;
    # a raw number broke the Photon-HDF5 provenance (ptufile's .datetime gives None for it)
    extra = [("File_CreatingTime", value, -1, "Float8")]
    path = raw_ptu(tmp_path / "t.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, extra_tags=extra)
    got = read_header(path)["File_CreatingTime"]
    assert abs(got - expected) < dt.timedelta(milliseconds=1)


def test_float8_creation_time_out_of_range_kept_as_number(tmp_path):
    extra = [("File_CreatingTime", 3.0, -1, "Float8")]
    path = raw_ptu(tmp_path / "t.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, extra_tags=extra)
    assert read_header(path)["File_CreatingTime"] == 3.0


# ---------------------------------------------------------------- robustness and errors


@pytest.mark.parametrize("n_claimed", [0, -5, 10])
def test_record_count_lies_use_what_file_holds(tmp_path, caplog, n_claimed):
    recs = [ht3_photon(0, 1, k) for k in range(1, 4)]
    path = raw_ptu(tmp_path / "n.ptu", recs, rec_type=HH2T3, n_records=n_claimed)
    with caplog.at_level(logging.WARNING, logger="qrspec"):
        p = read_tttr(path)
    assert p.size == 3
    assert any("TTResult_NumberOfRecords" in w for w in p.warnings)
    assert "TTResult_NumberOfRecords" in caplog.text


def test_truncated_last_record(tmp_path, caplog):
    path = raw_ptu(tmp_path / "t.ptu", [ht3_photon(0, 1, 1), ht3_photon(1, 1, 2)],
                   rec_type=HH2T3, trailing=b"\x01\x02")
    with caplog.at_level(logging.WARNING, logger="qrspec"):
        p = read_tttr(path)
    assert p.size == 2
    assert any("truncated record" in w for w in p.warnings)
    assert "truncated record" in caplog.text


def test_mode_tag_disagreeing_with_record_type(tmp_path):
    path = raw_ptu(tmp_path / "m.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3, mode=2)
    p = read_tttr(path)
    assert p.is_t3
    assert any("Measurement_Mode=2 disagrees" in w for w in p.warnings)


def test_absurd_tag_payload_size(tmp_path):
    path = raw_ptu(tmp_path / "big.ptu", [], rec_type=HH2T3)
    data = bytearray(path.read_bytes())
    # turn File_GUID's payload size (first tag after the 16-byte preamble) into 2**60
    data[16 + 40:16 + 48] = (2**60).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(TTTRFormatError, match=r"big.ptu at byte 56: tag 'File_GUID' claims a "
                       r"payload of size=1152921504606846976 bytes"):
        read_tttr(path)


def test_wrong_magic_empty_and_header_only(tmp_path):
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(b"PQXXXXXX" + b"\0" * 100)
    with pytest.raises(TTTRFormatError, match=r"bad.ptu at byte 0: not a PTU file"):
        read_tttr(bad)
    empty = tmp_path / "empty.ptu"
    empty.write_bytes(b"")
    with pytest.raises(TTTRFormatError, match=r"empty.ptu at byte 0: empty file"):
        read_tttr(empty)
    good = raw_ptu(tmp_path / "good.ptu", [ht3_photon(0, 1, 1)], rec_type=HH2T3)
    cut = tmp_path / "cut.ptu"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(TTTRFormatError, match=r"header ends before the Header_End tag"):
        read_tttr(cut)
    phu = tmp_path / "h.phu"
    phu.write_bytes(b"PQHISTO\0" + b"1.0.00\0\0")
    with pytest.raises(TTTRFormatError, match=r"unsupported file type: PHU histogram file"):
        read_tttr(phu)
    with pytest.raises(TTTRFormatError, match=r"nope.ptu: no such file"):
        read_tttr(tmp_path / "nope.ptu")
    assert issubclass(TTTRFormatError, QrspecError) and issubclass(QrspecError, ValueError)


def test_unsupported_record_type_and_bits(tmp_path):
    p1 = raw_ptu(tmp_path / "r.ptu", [], rec_type=0x00010999)
    with pytest.raises(TTTRFormatError, match=r"unsupported record type "
                       r"TTResultFormat_TTTRRecType=0x00010999"):
        read_tttr(p1)
    p3 = raw_ptu(tmp_path / "b3.ptu", [], rec_type=HH2T3, omit=("TTResultFormat_BitsPerRecord",),
                 extra_tags=[("TTResultFormat_BitsPerRecord", 64)])
    with pytest.raises(TTTRFormatError, match=r"TTResultFormat_BitsPerRecord=64 is not "
                       "supported"):
        read_tttr(p3)
    p4 = raw_ptu(tmp_path / "nr.ptu", [], rec_type=HH2T3, omit=("TTResultFormat_TTTRRecType",))
    with pytest.raises(TTTRFormatError, match=r"missing tag TTResultFormat_TTTRRecType"):
        read_tttr(p4)


def test_zero_photons_and_sync_rate_zero(tmp_path):
    path = raw_ptu(tmp_path / "z.ptu", [ht3_special(63, 2)], rec_type=HH2T3, sync_rate=0)
    p = read_tttr(path)
    assert p.size == 0 and p.duration_s == 0.0
    assert p.sync_rate_hz == pytest.approx(1e7)
    assert any("TTResult_SyncRate=0" in w for w in p.warnings)
    assert p.n_overflows == 2


def test_unknown_tag_type(tmp_path):
    path = raw_ptu(tmp_path / "u.ptu", [], rec_type=HH2T3)
    data = bytearray(path.read_bytes())
    i = data.index(b"Measurement_SubMode")
    data[i + 36:i + 40] = (0x7777).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(TTTRFormatError, match=r"tag 'Measurement_SubMode' has unknown type "
                       r"code 0x00007777"):
        read_header(path)


def test_unsorted_photons_are_sorted_with_warning(tmp_path):
    # a T3 file cannot store decreasing photon times except through corrupt records; a
    # photon before an overflow-free earlier one (nsync going back) must not break monotonicity
    recs = [ht3_photon(0, 1, 500), ht3_photon(1, 2, 100)]
    p = read_tttr(raw_ptu(tmp_path / "s.ptu", recs, rec_type=HH2T3))
    assert_array_equal(p.timestamps, [100, 500])
    assert_array_equal(p.detectors, [1, 0])
    assert any("sorted" in w for w in p.warnings)


def test_encode_records_rejects_bad_input():
    with pytest.raises(ValueError, match=r"nanotimes are required"):
        encode_records("HydraHarp2T3", [1], [0])
    with pytest.raises(ValueError, match=r"detectors must be in 0..3 for PicoHarpT3"):
        encode_records("PicoHarpT3", [1], [4], [0])
    with pytest.raises(ValueError, match=r"nanotimes must be in 0..4095 for PicoHarpT3"):
        encode_records("PicoHarpT3", [1], [0], [4096])
    with pytest.raises(ValueError, match=r"timestamps must be non-decreasing"):
        encode_records("HydraHarp2T2", [5, 1], [0, 0])
    with pytest.raises(ValueError, match=r"sync events exist only"):
        encode_records("HydraHarp2T3", [1], [0], [0], sync_timestamps=[3])


@pytest.mark.parametrize("name", [n for n, rt in RECORD_TYPES.items() if not rt.code])
def test_round_trip_legacy_only_record_types(rng, name, decode_kernel):
    from qrspec.io.records import decode_chunk, scan_chunk

    rt = RECORD_TYPES[name]
    ts, det, nt = _random_stream(rng, rt, 3000)
    ts[100:] += 5 * rt.wrap * 2000  # a long gap: many overflows in a row / one compressed
    mts = np.sort(rng.integers(0, ts[-1], 10))
    mbits = rng.integers(1, 8, 10)
    recs = encode_records(rt, ts, det, nt, marker_timestamps=mts, marker_bits=mbits)
    sc = scan_chunk(rt, recs)
    assert (sc.n_photons, sc.n_markers) == (ts.size, mts.size)
    n_ph, n_mk = sc.n_photons, sc.n_markers
    bufs = (np.empty(n_ph, np.int64), np.empty(n_ph, np.uint8), np.empty(n_ph, np.uint16),
            np.empty(n_mk, np.int64), np.empty(n_mk, np.uint16), np.empty(0, np.int64))
    r = decode_chunk(rt, recs, 0, *bufs)
    assert (r.n_photons, r.n_markers, r.n_invalid, r.n_backwards) == (n_ph, n_mk, 0, 0)
    assert r.ofl == sc.n_wraps * rt.wrap
    assert_array_equal(bufs[0][:n_ph], ts)
    assert_array_equal(bufs[1][:n_ph], det)
    assert_array_equal(bufs[2][:n_ph], nt)
    assert_array_equal(bufs[3][:n_mk], mts)
    assert_array_equal(bufs[4][:n_mk], mbits)


# ---------------------------------------------------------------- scalar and vector decode kernels

_FAMILY_TYPES = {}
for _rt in RECORD_TYPES.values():
    _FAMILY_TYPES.setdefault(_rt.family, _rt)


def _decode_all(rt, recs, monkeypatch, kernel):
    """scan + decode of ``recs`` with ``kernel``: the counts and every output array."""
    from qrspec.io.records import decode_chunk, scan_chunk

    monkeypatch.setenv("QRSPEC_DECODE_KERNEL", kernel)
    sc = scan_chunk(rt, recs)
    # outputs pre-filled with a value no decode writes: unwritten slots would show
    bufs = (np.full(sc.n_photons, -7, np.int64), np.full(sc.n_photons, 201, np.uint8),
            np.full(sc.n_photons if rt.mode == 3 else 0, 60001, np.uint16),
            np.full(sc.n_markers, -7, np.int64), np.full(sc.n_markers, 60001, np.uint16),
            np.full(sc.n_sync, -7, np.int64))
    return decode_chunk(rt, recs, 12345, *bufs), bufs


def _noisy_records(rng, rt, n):
    """Mostly photons and overflows with a few other records (markers, sync events, reserved
    codes), or, one time in three, uniformly random words (any record, times backwards)."""
    recs = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    if rng.random() < 1 / 3:
        return recs
    special = rng.random(n)
    if rt.family in ("pt3", "pt2"):
        lo = 1 if rt.family == "pt3" else 0
        recs = (recs & 0x0FFFFFFF) | (rng.integers(lo, 5, n).astype(np.uint32) << 28)
        ovf = (np.uint32(15) << 28) | (recs & (0xFFFF if rt.family == "pt3" else 0x0FFFFFF0))
    elif rt.family == "t3r":
        recs = (recs & 0x3FFFFFFF) | np.uint32(1 << 30)
        ovf = np.uint32(0x800 << 16) | (recs & 0xFFFF)
    else:
        recs &= np.uint32(0x7FFFFFFF)
        ovf = recs | np.uint32(0xFE000000)
    recs[special < 0.1] = ovf[special < 0.1]
    other = special > 0.995
    recs[other] = rng.integers(0, 2**32, int(other.sum()), dtype=np.uint64).astype(np.uint32)
    return recs


@pytest.mark.parametrize("family", sorted(_FAMILY_TYPES))
def test_vector_decode_equals_scalar_on_random_records(rng, monkeypatch, family):
    """The AVX-512 kernels (8 records per step, rare groups and the tail by the scalar kernel)
    against the record-by-record kernels on random records of every family: every count (the
    overflow accumulator, photons earlier than the photon before them across group edges,
    reserved codes) and every output slot. Lengths around multiples of 8 and odd start
    addresses (a slice one word into a buffer) hit the group edges."""
    from qrspec.io._kernels import vector_decode_supported

    if not vector_decode_supported():
        pytest.skip("the vector decode kernels need a CPU with AVX-512 F and VL")
    rt = _FAMILY_TYPES[family]
    for trial in range(60):
        n = int(rng.integers(0, 100)) if trial % 2 else int(rng.integers(0, 3)) + 8 * trial
        recs = np.concatenate([[0], _noisy_records(rng, rt, n)]).astype(np.uint32)[1:]
        s_counts, s_bufs = _decode_all(rt, recs, monkeypatch, "scalar")
        v_counts, v_bufs = _decode_all(rt, recs, monkeypatch, "vector")
        assert v_counts == s_counts, (trial, n)
        for s, v in zip(s_bufs, v_bufs, strict=True):
            assert_array_equal(v, s)


@pytest.mark.realdata
def test_real_files_vector_decode_equals_scalar(realdata, monkeypatch):
    """Every real file (all record families) decodes identically with both kernels."""
    from qrspec.io._kernels import vector_decode_supported

    if not vector_decode_supported():
        pytest.skip("the vector decode kernels need a CPU with AVX-512 F and VL")
    names = sorted(p.name for p in realdata.iterdir()
                   if p.suffix in (".ptu", ".ht3", ".ht2", ".pt3", ".t3r"))
    assert len(names) >= 10
    for name in names:
        out = {}
        for kernel in ("scalar", "vector"):
            monkeypatch.setenv("QRSPEC_DECODE_KERNEL", kernel)
            out[kernel] = read_tttr(realdata / name)
        s, v = out["scalar"], out["vector"]
        for field in ("timestamps", "detectors", "nanotimes", "sync_timestamps"):
            assert_array_equal(getattr(v, field), getattr(s, field), err_msg=f"{name} {field}")
        assert_array_equal(v.markers.timestamps, s.markers.timestamps)
        assert_array_equal(v.markers.bits, s.markers.bits)
        assert (v.n_overflows, v.n_invalid_records) == (s.n_overflows, s.n_invalid_records)


def test_decode_kernel_setting(monkeypatch):
    import qrspec.io.records as records
    from qrspec.io._kernels import vector_decode_supported

    have = vector_decode_supported()
    monkeypatch.delenv("QRSPEC_DECODE_KERNEL", raising=False)
    assert records.decode_kernel() == ("vector" if have else "scalar")
    monkeypatch.setenv("QRSPEC_DECODE_KERNEL", "scalar")
    assert records.decode_kernel() == "scalar"
    monkeypatch.setenv("QRSPEC_DECODE_KERNEL", "avx")
    with pytest.raises(QrspecError, match=r"QRSPEC_DECODE_KERNEL='avx' must be one of auto, "
                                         r"scalar, vector"):
        records.decode_kernel()
    # a CPU without AVX-512: auto is scalar, vector is refused
    monkeypatch.setattr(records, "_VECTOR_SUPPORTED", [False])
    monkeypatch.setenv("QRSPEC_DECODE_KERNEL", "auto")
    assert records.decode_kernel() == "scalar"
    monkeypatch.setenv("QRSPEC_DECODE_KERNEL", "vector")
    with pytest.raises(QrspecError, match=r"QRSPEC_DECODE_KERNEL='vector' needs a CPU with "
                                         r"AVX-512 F and VL"):
        records.decode_kernel()


def test_vector_decode_follows_numba_target_features(monkeypatch):
    """The choice follows the features numba compiles for, not the host's: a portable cache
    (``NUMBA_CPU_NAME=generic`` sets the features to ""), AVX disabled, or a CPU without VL all
    get the scalar kernels."""
    from numba.core import config

    from qrspec.io._kernels import vector_decode_supported

    for feats, expected in (("", False), ("+avx2,-avx512f,-avx512vl", False),
                            ("+avx512f,-avx512vl,+sse2", False),
                            ("+sse2,+avx512f,+avx512bw,+avx512vl", True)):
        monkeypatch.setattr(config, "CPU_FEATURES", feats)
        assert vector_decode_supported() is expected, feats
