"""Issue 10: fuzzing the TTTR readers (PTU and legacy containers).

Property: ANY input either decodes into valid photons or raises a
:class:`~qrspec.errors.QrspecError` (``TTTRFormatError`` for file problems), in bounded time and
in memory proportional to the file size; never another exception, a hang, or a multi-GB
allocation. Decoded photons satisfy the :class:`Photons` invariants (non-negative,
non-decreasing timestamps, equal lengths) and chunked decoding (:func:`iter_tttr`) agrees with
:func:`read_tttr`.

Bases: synthetic files of every record type (``write_ptu`` and the legacy builders of
``test_legacy``) and, when present, the real files of ``../shared/realdata`` (header plus the
first 512 records). Mutations: byte flips, truncation at every region, tag values and type codes
(NaN, inf, negative and huge sizes), record-count lies, random record streams of every type.
Cases found by hypothesis or by the atheris run (see the report of issue 10) are kept as
``test_issue_10_<name>`` regression tests.
"""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA, raw_ptu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_legacy import hh_file, ph_file, th_file

from qrspec.errors import QrspecError, TTTRFormatError
from qrspec.io import iter_tttr, read_tttr, write_ptu
from qrspec.io.reader import concat_chunks, open_layout
from qrspec.io.records import RECORD_TYPES
from qrspec.io.writer import encode_records

# A few-KB file decodes in milliseconds; 5 s bounds a hang or quadratic behaviour with a wide
# margin for a loaded 2-core machine.
TIME_LIMIT_S = 5.0
# read_tttr holds ~11 bytes per record of output, two 4-byte chunk buffers, the per-chunk marker
# and sync buffers (18 bytes per record) and, for unsorted files, the sort copies: < 16 bytes of
# Python/NumPy memory per file byte. The 2 MiB covers the header dict and interpreter noise.
MEM_PER_BYTE = 16
MEM_SLACK = 2 << 20

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PTU_CODES = sorted(rt.code for rt in RECORD_TYPES.values() if rt.code)
INTERESTING_I64 = [0, 1, -1, 2**31, 2**32, 2**62, 2**63 - 1, -(2**63), 10**15, 7]
INTERESTING_F64 = [0.0, -0.0, 1e-300, 5e-324, -1.0, 1e300, math.inf, -math.inf, math.nan,
                   1e-12, 16e-12, 1e-7, 1e7]
TYPE_CODES = [0xFFFF0008, 0x00000008, 0x10000008, 0x11000008, 0x12000008, 0x20000008,
              0x21000008, 0x2001FFFF, 0x4001FFFF, 0x4002FFFF, 0xFFFFFFFF, 0x12345678]


# --------------------------------------------------------------------------- the property


def check_file(path) -> object:
    """Decode ``path`` under the fuzzing contract; return the Photons or None if refused."""
    path = Path(path)
    size = max(path.stat().st_size, 1)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        try:
            ph = read_tttr(path)
        except QrspecError as exc:  # TTTRFormatError included: the documented refusal
            assert str(exc)
            ph = None
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < TIME_LIMIT_S, f"read_tttr took {elapsed:.1f} s on a {size}-byte file"
    assert peak <= MEM_PER_BYTE * size + MEM_SLACK, \
        f"read_tttr peaked at {peak} bytes for a {size}-byte file"
    if ph is None:
        return None
    ts = ph.timestamps
    assert ts.dtype == np.int64 and ph.detectors.dtype == np.uint8
    assert ph.detectors.shape == ts.shape
    if ts.size:
        assert ts[0] >= 0, f"negative timestamp {ts[0]}"
        assert np.all(np.diff(ts) >= 0)
    if ph.measurement_mode == 3:
        assert ph.nanotimes is not None and ph.nanotimes.shape == ts.shape
        assert ph.nanotimes_unit > 0
    assert ph.timestamps_unit > 0
    # chunked decoding carries the overflow state: same photons (sorted the same way)
    parts = list(iter_tttr(path, chunk_records=5))
    if not parts:  # no records at all: iter_tttr yields nothing
        assert ph.size == 0
        return ph
    chunks = concat_chunks(parts)
    assert chunks.size == ph.size
    order = np.argsort(chunks.timestamps, kind="stable")
    np.testing.assert_array_equal(chunks.timestamps[order], ts)
    np.testing.assert_array_equal(chunks.detectors[order], ph.detectors)
    return ph


# --------------------------------------------------------------------------- base files


def _events(rng, rt, n=80):
    ts = np.sort(rng.integers(0, 4 * rt.wrap, n))
    max_det = {"pt3": 3, "t3r": 3, "pt2": 4}.get(rt.family, 3)
    det = rng.integers(0, max_det + 1, n)
    nt = rng.integers(0, min(rt.n_dtime_bins, 6000), n) if rt.mode == 3 else None
    return ts, det, nt


def _synthetic_ptu(rng, name) -> bytes:
    rt = RECORD_TYPES[name]
    ts, det, nt = _events(rng, rt)
    recs = encode_records(rt, ts, det, nt, marker_timestamps=ts[:3], marker_bits=[1, 2, 3],
                          sync_timestamps=ts[::7] if rt.family in ("ht2", "ht2v1") else None)
    glob = 1e-7 if rt.mode == 3 else 1e-12
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"qrspec_fuzz_base_{os.getpid()}.ptu"
    raw_ptu(path, recs, rec_type=rt.code, glob_res=glob, res=16e-12 if rt.mode == 3 else glob,
            extra_tags=[("File_Comment", "fuzz base"), ("Blob", b"\x01\x02\x03", -1,
                                                          "BinaryBlob"),
                        ("Arr", [1.0, 2.0], -1, "Float8Array")])
    blob = path.read_bytes()
    path.unlink()
    return blob


def _synthetic_legacy(rng) -> dict[str, bytes]:
    out = {}
    for name, build, kw in (
        ("ht3_v2", hh_file, {"version": "2.0"}),
        ("ht3_v1", hh_file, {"version": "1.0"}),
        ("ht2_v2", hh_file, {"version": "2.0", "mode": 2}),
        ("pt3", ph_file, {}),
        ("pt2", ph_file, {"mode": 2}),
        ("t3r_v5", th_file, {"version": "5.0"}),
    ):
        rt = {"ht3_v2": "HydraHarp2T3", "ht3_v1": "HydraHarpT3", "ht2_v2": "HydraHarp2T2",
              "pt3": "PicoHarpT3", "pt2": "PicoHarpT2", "t3r_v5": "TimeHarp200T3R"}[name]
        rtype = RECORD_TYPES[rt]
        ts, det, nt = _events(rng, rtype)
        if rtype.family == "t3r":  # TimeHarp 200 routes 0..3, no encoder for markers needed
            recs = _t3r_records(ts, det, nt)
        else:
            recs = encode_records(rtype, ts, det, nt)
        out[name] = build(recs, **kw)
    return out


def _t3r_records(ts, det, nt):
    recs = []
    ofl = 0
    for t, d, n in zip(ts, det, nt, strict=True):
        while t - ofl >= 65536:
            recs.append(0x800 << 16)
            ofl += 65536
        recs.append((1 << 30) | (int(d) << 28) | (int(n) << 16) | int(t - ofl))
    return np.asarray(recs, np.uint32)


def _real_bases() -> dict[str, bytes]:
    out = {}
    if not REALDATA.is_dir():
        return out
    for p in sorted(REALDATA.iterdir()):
        if p.suffix.lower() not in (".ptu", ".ht3", ".ht2", ".pt3", ".pt2", ".t3r"):
            continue
        try:
            lay = open_layout(p)
        except QrspecError:
            continue
        with open(p, "rb") as f:
            out[f"real_{p.name}"] = f.read(lay.data_offset + 4 * 512)
    return out


def _make_bases():
    rng = np.random.default_rng(20240611)
    bases = {f"ptu_{n}": _synthetic_ptu(rng, n) for n, rt in RECORD_TYPES.items() if rt.code}
    bases.update(_synthetic_legacy(rng))
    bases.update(_real_bases())
    return bases


def _header_sizes(bases) -> dict[str, int]:
    out = {}
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"qrspec_fuzz_hdr_{os.getpid()}.bin"
    try:
        for name, blob in bases.items():
            path.write_bytes(blob)
            out[name] = open_layout(path).data_offset
    finally:
        path.unlink(missing_ok=True)
    return out


BASES = _make_bases()
HEADER_SIZE = _header_sizes(BASES)
BASE_NAMES = sorted(BASES)
PTU_BASE_NAMES = [n for n in BASE_NAMES if BASES[n][:6] == b"PQTTTR"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "case.bin"


@pytest.fixture(scope="module", autouse=True)
def _warm_kernels(scratch):
    """Load every decoder kernel (numba cache) before memory is measured."""
    for name in BASE_NAMES:
        read_tttr(_write(scratch, BASES[name]))


def _write(scratch: Path, data: bytes) -> Path:
    scratch.write_bytes(bytes(data))
    return scratch


def ptu_tags(blob: bytes) -> list[tuple[int, str, int]]:
    """(offset, ident, type code) of each tag of a well-formed PTU header."""
    out, off = [], 16
    while off + 48 <= len(blob):
        ident, _, code, value = struct.unpack_from("<32siI8s", blob, off)
        name = ident.split(b"\0", 1)[0].decode("ascii", "replace")
        out.append((off, name, code))
        off += 48
        if code in (0x2001FFFF, 0x4001FFFF, 0x4002FFFF, 0xFFFFFFFF):
            off += struct.unpack("<q", value)[0]
        if name == "Header_End":
            break
    return out


# --------------------------------------------------------------------------- sanity


def test_issue_10_bases_decode(scratch):
    """Every unmutated base decodes (so the mutations start from valid files)."""
    assert len(BASES) >= 17
    for name in BASE_NAMES:
        ph = check_file(_write(scratch, BASES[name]))
        assert ph is not None, name
        # the real T2 samples hold 25 records of sync/overflow events only
        assert ph.size > 0 or name.startswith("real_"), name


# --------------------------------------------------------------------------- hypothesis


@SETTINGS
@given(name=st.sampled_from(BASE_NAMES), data=st.data())
def test_issue_10_fuzz_byte_flips(scratch, name, data):
    blob = bytearray(BASES[name])
    hdr = HEADER_SIZE[name]
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        # most flips in the header (where the parsing logic is), some anywhere
        hi = hdr - 1 if data.draw(st.booleans()) else len(blob) - 1
        pos = data.draw(st.integers(0, hi))
        blob[pos] = data.draw(st.integers(0, 255))
    check_file(_write(scratch, blob))


@SETTINGS
@given(name=st.sampled_from(BASE_NAMES), data=st.data())
def test_issue_10_fuzz_truncation(scratch, name, data):
    blob = BASES[name]
    cut = data.draw(st.integers(0, len(blob)))
    check_file(_write(scratch, blob[:cut]))


@pytest.mark.parametrize("name", ["ptu_HydraHarp2T3", "ht3_v2", "pt3", "t3r_v5"])
def test_issue_10_truncation_sweep_every_header_byte(scratch, name):
    """Truncation at every byte of the header and of the first records (every region)."""
    blob = BASES[name]
    hdr = HEADER_SIZE[name]
    refused = [cut for cut in range(0, hdr + 10)
               if check_file(_write(scratch, blob[:cut])) is None]
    # a file cut inside its header is refused; from the end of the header on it decodes (with
    # a truncation warning)
    assert refused == list(range(hdr))


@SETTINGS
@given(name=st.sampled_from(PTU_BASE_NAMES), data=st.data())
def test_issue_10_fuzz_tag_values(scratch, name, data):
    """Random tag value and/or type code: NaN, inf, negative and huge sizes, random bits."""
    blob = bytearray(BASES[name])
    tags = ptu_tags(bytes(blob))
    off, ident, code = data.draw(st.sampled_from(tags))
    if data.draw(st.booleans()):
        code = data.draw(st.sampled_from(TYPE_CODES))
        struct.pack_into("<I", blob, off + 36, code)
    kind = data.draw(st.sampled_from(["i64", "f64", "raw"]))
    if kind == "i64":
        v = struct.pack("<q", data.draw(st.one_of(st.sampled_from(INTERESTING_I64),
                                                   st.integers(-(2**63), 2**63 - 1))))
    elif kind == "f64":
        v = struct.pack("<d", data.draw(st.one_of(st.sampled_from(INTERESTING_F64),
                                                   st.floats(allow_nan=True))))
    else:
        v = data.draw(st.binary(min_size=8, max_size=8))
    blob[off + 40: off + 48] = v
    check_file(_write(scratch, blob))


KEY_TAGS = ["TTResultFormat_TTTRRecType", "TTResult_NumberOfRecords", "MeasDesc_Resolution",
            "MeasDesc_GlobalResolution", "TTResult_SyncRate", "Measurement_Mode",
            "TTResultFormat_BitsPerRecord", "MeasDesc_AcquisitionTime"]
NUMERIC_TYPES = {"Int8": 0x10000008, "Float8": 0x20000008, "Bool8": 0x00000008,
                 "TDateTime": 0x21000008, "Empty8": 0xFFFF0008, "BitSet64": 0x11000008}


@settings(SETTINGS, max_examples=300)  # cheap (~5 ms each) and the most productive target
@given(name=st.sampled_from([n for n in PTU_BASE_NAMES if n.startswith("ptu_")]),
       data=st.data())
def test_issue_10_fuzz_key_tags(scratch, name, data):
    """The tags the decoder depends on, with any numeric type and value (several at once)."""
    blob = bytearray(BASES[name])
    offsets = {ident: off for off, ident, _ in ptu_tags(bytes(blob))}
    present = [t for t in KEY_TAGS if t in offsets]
    for ident in data.draw(st.lists(st.sampled_from(present), min_size=1, max_size=3,
                                    unique=True)):
        off = offsets[ident]
        type_name = data.draw(st.sampled_from(sorted(NUMERIC_TYPES)))
        struct.pack_into("<I", blob, off + 36, NUMERIC_TYPES[type_name])
        if type_name in ("Float8", "TDateTime"):
            v = struct.pack("<d", data.draw(st.one_of(st.sampled_from(INTERESTING_F64),
                                                       st.floats())))
        else:
            v = struct.pack("<q", data.draw(st.one_of(st.sampled_from(INTERESTING_I64),
                                                       st.integers(-(2**63), 2**63 - 1))))
        blob[off + 40: off + 48] = v
    check_file(_write(scratch, blob))


@SETTINGS
@given(name=st.sampled_from(PTU_BASE_NAMES),
       n=st.one_of(st.sampled_from(INTERESTING_I64), st.integers(-(2**63), 2**63 - 1)))
def test_issue_10_fuzz_record_count_lies(scratch, name, n):
    blob = bytearray(BASES[name])
    off = next(o for o, ident, _ in ptu_tags(bytes(blob)) if ident == "TTResult_NumberOfRecords")
    struct.pack_into("<q", blob, off + 40, n)
    true_n = (len(blob) - HEADER_SIZE[name]) // 4
    ph = check_file(_write(scratch, blob))
    assert ph is not None  # a wrong count is recoverable: the file size decides
    if n != true_n:
        assert any("TTResult_NumberOfRecords" in w for w in ph.warnings)


@SETTINGS
@given(name=st.sampled_from(["ht3_v2", "ht3_v1", "ht2_v2", "pt3", "pt2", "t3r_v5"]),
       n=st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 7]),
                   st.integers(-(2**31), 2**31 - 1)), big=st.booleans())
def test_issue_10_fuzz_legacy_record_count_lies(scratch, name, n, big):
    """Legacy NumRecords/NumberOfRecords: negative counts are refused, others reconciled."""
    blob = bytearray(BASES[name])
    at = HEADER_SIZE[name] - 8  # the count sits 8 bytes before the records in these bases
    if name.startswith("ht"):  # int64 NumRecords just before the (empty) imaging header
        n = n * 2**31 if big else n
        struct.pack_into("<q", blob, at, n)
    else:  # int32 NumRecords, then ImgHdrSize / SpecHeaderLength (0)
        struct.pack_into("<i", blob, at, n)
    ph = check_file(_write(scratch, blob))
    assert (ph is None) == (n < 0)


def _record_strategy(rt):
    """Raw 32-bit records biased towards the special records of the family."""
    any_u32 = st.integers(0, 2**32 - 1)
    if rt.family in ("ht3", "ht3v1", "ht3sf", "ht2", "ht2v1"):
        special = st.builds(lambda ch, low: 0x80000000 | (ch << 25) | low,
                            st.sampled_from([63, 0, 1, 15, 16, 62]), st.integers(0, 2**25 - 1))
        photon = st.builds(lambda ch, low: (ch << 25) | low, st.integers(0, 63),
                           st.integers(0, 2**25 - 1))
    elif rt.family in ("pt3", "pt2", "t3r"):
        special = st.builds(lambda top, low: (top << 28) | low, st.sampled_from([15, 0, 4, 8]),
                            st.integers(0, 2**28 - 1))
        photon = st.builds(lambda top, low: (top << 28) | low, st.integers(0, 15),
                           st.integers(0, 2**28 - 1))
    else:  # pragma: no cover
        raise AssertionError(rt.family)
    return st.lists(st.one_of(any_u32, special, photon), max_size=300)


@SETTINGS
@given(code=st.sampled_from(PTU_CODES), data=st.data())
def test_issue_10_fuzz_random_record_streams(scratch, code, data):
    rt = next(r for r in RECORD_TYPES.values() if r.code == code)
    recs = data.draw(_record_strategy(rt))
    raw_ptu(scratch, np.asarray(recs, np.uint32), rec_type=code,
            glob_res=1e-7 if rt.mode == 3 else 1e-12, res=16e-12 if rt.mode == 3 else 1e-12,
            trailing=data.draw(st.binary(max_size=3)))
    ph = check_file(scratch)
    assert ph is not None  # every record stream of a valid header decodes (or is refused
    # as a whole with TTTRFormatError, which check_file would have returned as None)


@SETTINGS
@given(version=st.sampled_from(["1.0", "2.0"]), data=st.data())
def test_issue_10_fuzz_random_records_legacy_ht3(scratch, version, data):
    """Legacy HT3 1.0 picks the SF-compressed decoder from the data: random overflow records."""
    recs = data.draw(_record_strategy(RECORD_TYPES["HydraHarpT3"]))
    check_file(_write(scratch, hh_file(np.asarray(recs, np.uint32), version=version)))


# --------------------------------------------------------------------------- memory bound


_RLIMIT_SCRIPT = textwrap.dedent("""
    import resource, sys
    from qrspec.errors import QrspecError
    from qrspec.io import read_tttr
    read_tttr(sys.argv[1])  # warm up: numba kernels loaded from cache or compiled
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    limit = vm + (256 << 20)  # 256 MiB more address space than the warm interpreter
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for p in sys.argv[2:]:
        try:
            ph = read_tttr(p)
            print("decoded", ph.size)
        except QrspecError as exc:
            print("refused", type(exc).__name__)
""")


def test_issue_10_hostile_files_under_rlimit_as(tmp_path):
    """Files whose header claims gigabytes (record counts, tag sizes, imaging header) decode or
    are refused with 256 MiB of extra address space: nothing is allocated from the claims."""
    rng = np.random.default_rng(7)
    rt = RECORD_TYPES["HydraHarp2T3"]
    ts, det, nt = _events(rng, rt, 500)
    good = write_ptu(tmp_path / "good.ptu", record_type=rt.name, timestamps=ts, detectors=det,
                     nanotimes=nt, timestamps_unit=1e-7, nanotimes_unit=16e-12)
    blob = good.read_bytes()
    tags = {ident: off for off, ident, _ in ptu_tags(blob)}
    files = []

    def put(name, data):
        p = tmp_path / name
        p.write_bytes(bytes(data))
        files.append(str(p))

    b = bytearray(blob)
    struct.pack_into("<q", b, tags["TTResult_NumberOfRecords"] + 40, 2**62)
    put("count_2e62.ptu", b)
    b = bytearray(blob)
    struct.pack_into("<q", b, tags["File_Comment"] + 40, 2**40)
    put("tag_1TB.ptu", b)
    put("legacy_count.ht3", hh_file(encode_records(rt, ts, det, nt), n_records=2**62))
    put("legacy_img.ht3", hh_file(encode_records(rt, ts, det, nt), img=[0] * 70000))
    put("pt3_count.pt3", ph_file(encode_records(RECORD_TYPES["PicoHarpT3"], ts, det % 4,
                                                nt % 4096), n_records=2**31 - 1))
    r = subprocess.run([sys.executable, "-c", _RLIMIT_SCRIPT, str(good), *files],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")[:-1]
    assert lines == ["decoded 500", "refused TTTRFormatError", "decoded 500",
                     "refused TTTRFormatError", "decoded 500"], r.stdout


# --------------------------------------------------------------------------- regressions


def _set_tag(blob: bytes, ident: str, code: int, value: bytes) -> bytes:
    b = bytearray(blob)
    off = next(o for o, name, _ in ptu_tags(blob) if name == ident)
    struct.pack_into("<I", b, off + 36, code)
    b[off + 40: off + 48] = value
    return bytes(b)


def test_issue_10_float_nan_record_count(scratch):
    """Found while building the catalogue (and by test_issue_10_fuzz_key_tags on the old
    code): TTResult_NumberOfRecords stored as Float8 NaN raised a bare ValueError from int();
    now ignored with a warning (the file size decides)."""
    blob = _set_tag(BASES["ptu_HydraHarp2T3"], "TTResult_NumberOfRecords", 0x20000008,
                    struct.pack("<d", math.nan))
    ph = check_file(_write(scratch, blob))
    assert ph is not None and ph.size > 0
    assert "TTResult_NumberOfRecords=nan is not an integer; ignored" in ph.warnings


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 65540.5])
def test_issue_10_float_record_type_code(scratch, value):
    """Found while building the catalogue (and by test_issue_10_fuzz_key_tags on the old
    code): a Float8 inf record type raised OverflowError (NaN: ValueError) from int()."""
    blob = _set_tag(BASES["ptu_HydraHarp2T3"], "TTResultFormat_TTTRRecType", 0x20000008,
                    struct.pack("<d", value))
    with pytest.raises(TTTRFormatError, match=r"TTResultFormat_TTTRRecType=.* is not an "
                                              r"integer record-type code"):
        read_tttr(_write(scratch, blob))


def test_issue_10_float_integral_record_type_code_still_decodes(scratch):
    """A Float8 tag with an integer value is accepted (as before the fix)."""
    blob = _set_tag(BASES["ptu_HydraHarp2T3"], "TTResultFormat_TTTRRecType", 0x20000008,
                    struct.pack("<d", float(0x01010304)))
    assert check_file(_write(scratch, blob)).size > 0


@pytest.mark.parametrize("name", ["HydraHarp2T2", "TimeHarp260NT2", "TimeHarp260PT2",
                                  "GenericT2"])
def test_issue_10_overflow_accumulator_int64_wrap(scratch, name):
    """Found by review of the record kernels, confirmed by a hand-made file: ~8200 maximal T2
    overflow records (count 2**25 - 1 each, 2**50 ticks) wrapped the int64 overflow
    accumulator into negative, unsorted timestamps (and a negative duration with a
    RuntimeWarning); now refused. (Other families need > 2**29 records, i.e. a > 2 GB file.)"""
    rt = RECORD_TYPES[name]
    n = (2**63) // ((2**25 - 1) * rt.wrap) + 2  # just enough overflow records to pass 2**63
    recs = np.concatenate([np.full(n, 0xFFFFFFFF, np.uint32),
                           np.array([0x02000005], np.uint32)])
    code = rt.code
    raw_ptu(scratch, recs, rec_type=code, glob_res=1e-12, res=1e-12)
    with pytest.raises(TTTRFormatError, match=r"time-tag overflows of 33554432 ticks exceed "
                                              r"the int64 timestamp range"):
        read_tttr(scratch)
    with pytest.raises(TTTRFormatError, match=r"exceed the int64 timestamp range"):
        list(iter_tttr(scratch, chunk_records=100))


def test_issue_10_legacy_huge_imaging_header_refused(scratch):
    """Found by review of the fuzz memory bound: ImgHdrSize up to the file size made one header
    dict entry per int32 (~100 bytes each: gigabytes for a large file); now capped at 65536."""
    rt = RECORD_TYPES["HydraHarp2T3"]
    blob = hh_file(encode_records(rt, [1, 2], [0, 1], [5, 6]), img=[0] * 70000)
    with pytest.raises(TTTRFormatError, match=r"ImgHdrSize=70000 is implausibly large"):
        read_tttr(_write(scratch, blob))
    ok = hh_file(encode_records(rt, [1, 2], [0, 1], [5, 6]), img=[3] * 100)
    ph = check_file(_write(scratch, ok))
    assert ph.size == 2 and ph.header["ImgHdr[99]"] == 3
