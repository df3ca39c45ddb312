"""Headers of the legacy PicoQuant TTTR containers (before PTU): HT3/HT2, PT3/PT2 and T3R.

:func:`parse_legacy` reads the binary header of one of these files and returns the
:class:`~qrspec.io.layout.FileLayout` the record decoders of :mod:`qrspec.io.records` need.
Field names follow PicoQuant's demo programs and libpicoquant (so a header can be compared with
``picoquant --header`` output); indexed fields are ``Name[i]`` or ``Name[i].Field``.

Supported (all little-endian, packed, no padding; every header starts with a 16-byte ``Ident``
and a 6-byte ``FormatVersion``, NUL-padded text):

==============  ===========  ==========================  ==========================================
Ident           version      records                     time units
==============  ===========  ==========================  ==========================================
HydraHarp       1.0 (T3)     HydraHarpT3 (one overflow   ticks 1/SyncRate, bins Resolution (ps)
                             per overflow record), or
                             HydraHarpT3SF (see below)
HydraHarp       2.0 (T3)     HydraHarp2T3 (count in the  same
                             overflow record, 0 = 1)
HydraHarp       1.0 (T2)     HydraHarpT2 (33,552,000)    Resolution (ps) = 0.5 ps in v1 T2 files
HydraHarp       2.0 (T2)     HydraHarp2T2 (2**25 x n)    Resolution (ps), 1 ps
PicoHarp 300    2.0 (T3)     PicoHarpT3                  ticks 1/CntRate0, bins Brd[0].Resolution
                                                         (ns)
PicoHarp 300    2.0 (T2)     PicoHarpT2                  4 ps (fixed, PicoHarp 300 T2)
TimeHarp 200    3.0/5.0/6.0  TimeHarp200T3R              ticks TTTRGlobClock (ns, 100 ns), bins
                                                         Brd[0].Resolution (ns)
==============  ===========  ==========================  ==========================================

Layout facts (sources: PicoQuant ``ht3demo``/``pt3demo``, libpicoquant ``src/hydraharp/hh_v10.h``,
``hh_v20.h``, ``src/picoharp/ph_v20.h``, ``src/timeharp/th_v30.h``, ``th_v50.h``, ``th_v60.h``,
phconvert 0.10.2 ``pqreader.ht3_reader/pt3_reader/t3r_reader``), checked on the real files listed
in ``realdata/INVENTORY.md``:

* HydraHarp: 328 bytes of text, the binary header (536), the hardware header (160), then
  ``InputChannelsPresent`` blocks of 4 int32 (``InpChan[i]``), then (T2/T3 only)
  ``InputChannelsPresent`` int32 ``InputRate[i]`` (phconvert interleaves these as 5-int32
  blocks: same total size, wrong field names), then SyncRate, StopAfter, StopReason, ImgHdrSize
  (int32) and NumRecords (int64), then ``ImgHdrSize`` int32 of imaging header. 4 inputs give the
  800-byte header of the libpicoquant samples, 8 inputs the 880 bytes of tttrlib's file.
* The v1 T2 tick is the header ``Resolution`` (0.5 ps, not 1 ps; libpicoquant halves the raw
  time): ``libpicoquant_hh_v10.ht2`` claims 52,378,636 records in 300 s = 174.6 k/s, which equals
  the input rates (115.5 kcps) plus one overflow per 33,552,000 x 0.5 ps (59.6 k/s); 1 ps ticks
  would give 145.3 k/s.
* HT3 2.0 overflow records carry counts: ``libpicoquant_hh_v20.ht3`` decodes to 9.999 s (Tacq
  10 s) with counts and to 9.70 s with one overflow per record.
* "SF-compressed" HT3 1.0 (Suren Felekyan's conversion, recognised by tttrlib): overflow records
  whose low 24 bits are not zero stand for ``1 + payload`` overflows. tttrlib's
  ``Split_rh110 sm-000000.ht3`` is such a file (no two overflow records in a row among 154,905;
  with one overflow per record its photon gaps never exceed 2048 syncs). It is decoded with the
  ``HydraHarpT3SF`` record type when :mod:`qrspec.io.records` provides it, otherwise refused.
* PicoHarp: ``NumberOfBoards`` board blocks of 60 bytes, each followed by 4 router-channel blocks
  of 6 int32 (always 4, whatever ``RoutingChannels`` says), then 9 int32 of TTTR header
  (NumRecords is int32) and the imaging header.
* TimeHarp 200: 3.0 and 5.0 have ``HardwareVersion[6]`` instead of creator fields (304 bytes of
  text) and 24-byte board blocks; 6.0 has the HydraHarp text header and 48-byte board blocks;
  the TTTR header is 12 int32 (3.0) or 13 int32 with ``SpecHeaderLength`` int32 to skip.
  Timestamps count the 100 ns global clock, **not** sync periods. Only 5.0 is checked on a
  real file; 3.0 and 6.0 follow libpicoquant's headers. PT3/PT2 have no real file here; hand-made
  PT3 files read the same with phconvert's independent ``pt3_reader``.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np

from qrspec.errors import TTTRFormatError
from qrspec.io.layout import BIN_WIDTH_S, SYNC_PERIOD_S, FileLayout
from qrspec.io.records import RECORD_TYPES

__all__ = ["parse_legacy", "LEGACY_IDENTS"]

LEGACY_IDENTS = ("HydraHarp", "PicoHarp 300", "TimeHarp 200")
_MAX_INPUTS = 64  # HydraHarp 400 has at most 8 inputs; anything above 64 is a corrupt header
_MAX_BOARDS = 16
_MAX_MODULES = 10  # fixed array in the HydraHarp hardware header
_SF_SCAN_RECORDS = 65536  # like tttrlib: SF files show counted overflows from the start
_MAX_IMG_HDR = 1 << 16  # int32 words of imaging/special header (real files: a few dozen)
_PT2_TICK_S = 4e-12  # PicoHarp 300 T2 time tag resolution (pt2demo: RESOL = 4 ps)


class _Reader:
    """Sequential little-endian field reader that fills an ordered header dict."""

    def __init__(self, path, f, file_size, what):
        self.path = path
        self.f = f
        self.file_size = file_size
        self.what = what
        self.pos = 0
        self.header: dict = {}

    def take(self, n: int, name: str) -> bytes:
        if self.pos + n > self.file_size:
            raise TTTRFormatError(self.path, f"file_size={self.file_size} ends inside the "
                                  f"{self.what} header (field {name} needs bytes "
                                  f"{self.pos}..{self.pos + n})", self.pos)
        b = self.f.read(n)
        if len(b) != n:
            raise TTTRFormatError(self.path, f"short read in field {name}: got {len(b)} of {n} "
                                  "bytes", self.pos)
        self.pos += n
        return b

    def num(self, name: str, fmt: str, store: bool = True):
        v = struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), name))[0]
        if fmt in "fd":
            v = float(v)
        if store:
            self.header[name] = v
        return v

    def i32(self, name, store=True):
        return self.num(name, "i", store)

    def u32(self, name):
        return self.num(name, "I")

    def i64(self, name):
        return self.num(name, "q")

    def u64(self, name):
        return self.num(name, "Q")

    def f32(self, name):
        # float32 fields (e.g. 0.070237 ns) are stored as the nearest float64 of the float32
        return self.num(name, "f")

    def f64(self, name):
        return self.num(name, "d")

    def text(self, name: str, n: int, store: bool = True) -> str:
        s = _decode_text(self.take(n, name))
        if store:
            self.header[name] = s
        return s

    def skip(self, n: int, name: str):
        self.take(n, name)

    def int_array(self, name: str, count: int, where: str):
        """``count`` int32 (imaging / special header); count validated against the file size."""
        if count < 0 or self.pos + 4 * count > self.file_size:
            raise TTTRFormatError(self.path, f"{where}={count} does not fit in file_size="
                                  f"{self.file_size} (header at byte {self.pos})", self.pos)
        if count > _MAX_IMG_HDR:
            # each value becomes a header dict entry (~100 bytes): a corrupt count must not
            # turn a large file into gigabytes of Python objects
            raise TTTRFormatError(self.path, f"{where}={count} is implausibly large (at most "
                                  f"{_MAX_IMG_HDR} int32 of imaging header are accepted)",
                                  self.pos)
        vals = np.frombuffer(self.take(4 * count, name), "<i4")
        for i, v in enumerate(vals):
            self.header[f"{name}[{i}]"] = int(v)

    def error(self, problem: str, offset: int | None = None):
        return TTTRFormatError(self.path, problem, self.pos if offset is None else offset)


def _decode_text(b: bytes) -> str:
    """NUL-terminated 8-bit text (Windows code page) -> str, stripped."""
    b = b.split(b"\0", 1)[0]
    try:
        s = b.decode("cp1252")
    except UnicodeDecodeError:  # bytes undefined in cp1252 (0x81, 0x8d, ...)
        s = b.decode("latin-1")
    return s.strip()


def parse_legacy(path, f, file_size: int) -> FileLayout:
    """Parse the header of a legacy PicoQuant TTTR file (HT3, HT2, PT3, PT2, T3R).

    Parameters
    ----------
    path : str or os.PathLike
        The file (for messages and the layout).
    f : binary file
        Open file positioned at byte 0.
    file_size : int
        Size of the file in bytes.

    Returns
    -------
    FileLayout
        Record type, data offset, number of whole records to decode (the header count
        reconciled with the file size), units and all header fields in file order.

    Raises
    ------
    TTTRFormatError
        Unknown identifier or format version, a non-TTTR measurement mode, a header that does
        not fit in the file or fields that make the data undecodable (zero sync rate, ...).
    """
    path = os.fspath(path)
    r = _Reader(path, f, int(file_size), "legacy")
    ident = r.text("Ident", 16)
    version = r.text("FormatVersion", 6)
    if ident == "HydraHarp":
        r.what = f"HydraHarp {version}"
        return _parse_hydraharp(r, version)
    if ident == "PicoHarp 300":
        r.what = f"PicoHarp {version}"
        return _parse_picoharp(r, version)
    if ident == "TimeHarp 200":
        r.what = f"TimeHarp 200 {version}"
        return _parse_timeharp(r, version)
    raise TTTRFormatError(path, f"Ident={ident!r} is not a PTU file nor a legacy PicoQuant TTTR "
                          f"file (expected one of {', '.join(LEGACY_IDENTS)})", 0)


# --------------------------------------------------------------------------- shared parts


def _common_text(r: _Reader):
    r.text("CreatorName", 18)
    r.text("CreatorVersion", 12)
    r.text("FileTime", 18)
    r.skip(2, "CRLF")
    r.text("Comment", 256)


def _display_and_repeat(r: _Reader):
    for i in range(8):
        r.i32(f"DisplayCurve[{i}].MapTo")
        r.i32(f"DisplayCurve[{i}].Show")
    for i in range(3):
        r.f32(f"Param[{i}].Start")
        r.f32(f"Param[{i}].Step")
        r.f32(f"Param[{i}].Stop")
    r.i32("RepeatMode")
    r.i32("RepeatsPerCurve")
    r.i32("RepeatTime")
    r.i32("RepeatWaitTime")
    r.text("ScriptName", 20)


def _measurement_mode(r: _Reader, mode: int, offset: int) -> int:
    if mode not in (2, 3):
        meaning = {0: " (interactive histogram mode: no TTTR records)"}.get(mode, "")
        raise r.error(f"MeasurementMode={mode}{meaning}; expected 2 (T2) or 3 (T3)", offset)
    return mode


def _bits_per_record(r: _Reader, name: str, offset: int):
    bits = r.header[name]
    if bits != 32:
        raise r.error(f"{name}={bits}; legacy TTTR records are 32 bits", offset)


def _positive(r: _Reader, name: str, value, why: str):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise r.error(f"{name}={value!r} must be > 0 ({why})")
    return value


def _unit_s(r: _Reader, name: str, value, per_s: float, unit: str, bounds, why: str) -> float:
    """A positive header time field in ``unit`` -> seconds, within ``bounds`` (s).

    ``unit`` has ``per_s`` of them per second.
    """
    _positive(r, name, value, why)
    lo, hi = bounds
    seconds = value / per_s
    if not lo <= seconds <= hi:
        raise r.error(f"{name}={value!r} {unit} is outside the plausible {lo * per_s:g}.."
                      f"{hi * per_s:g} {unit} ({why})")
    return seconds


def _sync_period_s(r: _Reader, name: str, rate_hz) -> float:
    """A sync rate field (Hz) -> the T3 timestamp unit (s), within ``SYNC_PERIOD_S``."""
    _unit_s(r, name, rate_hz, 1.0, "Hz", (1 / SYNC_PERIOD_S[1], 1 / SYNC_PERIOD_S[0]),
            "the sync period is the T3 timestamp unit")
    return 1.0 / rate_hz


def _reconcile(r: _Reader, n_header: int, count_name: str) -> tuple[int, list[str]]:
    """Number of whole records to decode, and warnings, from header count and file size."""
    warnings = []
    if n_header < 0:
        raise r.error(f"{count_name}={n_header} is negative")
    data_bytes = r.file_size - r.pos
    n_avail = data_bytes // 4
    partial = data_bytes - 4 * n_avail
    if n_header > n_avail:
        msg = (f"file truncated: header {count_name}={n_header} but only {n_avail} whole records "
               f"follow the {r.pos}-byte header; decoding the {n_avail} records present")
        if partial:
            msg += f" (a partial record of {partial} bytes at the end is ignored)"
        warnings.append(msg)
        return n_avail, warnings
    extra = data_bytes - 4 * n_header
    if extra:
        warnings.append(f"{extra} bytes after the {n_header} records the header announces "
                        f"({count_name}) are ignored")
    return n_header, warnings


def _layout(r: _Reader, container, rt_name, n_header, count_name, ts_unit, nt_unit, sync_rate,
            acq_ms, warnings=(), detector_limit=None) -> FileLayout:
    n, w = _reconcile(r, n_header, count_name)
    return FileLayout(
        path=r.path,
        container=container,
        header=r.header,
        record_type=RECORD_TYPES[rt_name],
        data_offset=r.pos,
        n_records=n,
        n_records_header=n_header,
        timestamps_unit=float(ts_unit),
        nanotimes_unit=None if nt_unit is None else float(nt_unit),
        sync_rate_hz=float(sync_rate),
        acquisition_s=acq_ms / 1e3 if acq_ms is not None else None,
        warnings=tuple(w) + tuple(warnings),
        detector_limit=detector_limit,
    )


# --------------------------------------------------------------------------- HydraHarp


def _parse_hydraharp(r: _Reader, version: str) -> FileLayout:
    if version not in ("1.0", "2.0"):
        raise r.error(f"FormatVersion={version!r} of a HydraHarp file is not supported "
                      "(known: 1.0, 2.0)", 16)
    _common_text(r)
    r.i32("NumberOfCurves")
    off_bits = r.pos
    r.i32("BitsPerRecord")
    r.i32("ActiveCurve")
    off_mode = r.pos
    mode = r.i32("MeasurementMode")
    r.i32("SubMode")
    r.i32("Binning")
    res_ps = r.f64("Resolution")  # ps: T3 bin width (base x 2**binning), T2 tag resolution
    r.i32("Offset")
    acq_ms = r.i32("AcquisitionTime")
    r.u32("StopAt")
    r.i32("StopOnOvfl")
    r.i32("Restart")
    r.i32("DisplayLinLog")
    r.u32("DisplayTimeAxisFrom")
    r.u32("DisplayTimeAxisTo")
    r.u32("DisplayCountAxisFrom")
    r.u32("DisplayCountAxisTo")
    _display_and_repeat(r)
    r.text("HardwareIdent", 16)
    r.text("HardwarePartNo", 8)
    r.i32("HardwareSerial")
    off_mod = r.pos
    n_mod = r.i32("NumberOfModules")
    if not 0 <= n_mod <= _MAX_MODULES:
        raise r.error(f"NumberOfModules={n_mod} outside 0..{_MAX_MODULES}", off_mod)
    for i in range(_MAX_MODULES):  # fixed array of 10; only the first n_mod are meaningful
        r.i32(f"ModuleInfo[{i}].Model", store=i < n_mod)
        r.i32(f"ModuleInfo[{i}].Version", store=i < n_mod)
    r.f64("BaseResolution")  # ps
    r.u64("InputsEnabled")  # bit field
    off_inp = r.pos
    n_inp = r.i32("InputChannelsPresent")
    r.i32("RefClockSource")
    r.i32("ExtDevices")
    r.i32("MarkerSettings")
    r.i32("SyncDivider")
    r.i32("SyncCFDLevel")  # mV
    r.i32("SyncCFDZeroCross")  # mV
    r.i32("SyncOffset")  # ps
    _measurement_mode(r, mode, off_mode)
    _bits_per_record(r, "BitsPerRecord", off_bits)
    if not 1 <= n_inp <= _MAX_INPUTS:
        raise r.error(f"InputChannelsPresent={n_inp} outside 1..{_MAX_INPUTS}", off_inp)
    for i in range(n_inp):
        r.i32(f"InpChan[{i}].ModuleIdx")
        r.i32(f"InpChan[{i}].CFDLevel")  # mV
        r.i32(f"InpChan[{i}].CFDZeroCross")  # mV
        r.i32(f"InpChan[{i}].Offset")  # ps
    for i in range(n_inp):
        r.i32(f"InputRate[{i}]")  # counts/s, rate meter at the end of the measurement
    sync_rate = r.i32("SyncRate")  # counts/s after the sync divider
    r.i32("StopAfter")  # ms
    r.i32("StopReason")  # 0 time over, 1 manual, 2 overflow, 3 error
    n_img = r.i32("ImgHdrSize")
    n_header = r.i64("NumRecords")
    r.int_array("ImgHdr", n_img, "ImgHdrSize")
    warnings = []
    if mode == 3:
        container = "HT3"
        ts_unit = _sync_period_s(r, "SyncRate", sync_rate)
        nt_unit = _unit_s(r, "Resolution", res_ps, 1e12, "ps", BIN_WIDTH_S,
                          "the T3 nanotime bin width in ps")
        if version == "2.0":
            rt_name = "HydraHarp2T3"
        else:
            rt_name = "HydraHarpT3"
            if _has_counted_overflows(r, n_header):
                if "HydraHarpT3SF" not in RECORD_TYPES:
                    raise r.error(
                        "FormatVersion='1.0' HT3 file with counted overflow records "
                        "(SF-compressed HT3: an overflow record means 1 + its low 24 bits "
                        "overflows); this record variant is not supported by this qrspec build",
                        r.pos)
                rt_name = "HydraHarpT3SF"
                warnings.append("SF-compressed HT3 1.0 file: overflow records carry 1 + their "
                                "low 24 bits overflows")
    else:
        container = "HT2"
        ts_unit = _unit_s(r, "Resolution", res_ps, 1e12, "ps", BIN_WIDTH_S,
                          "the T2 time tag resolution in ps")
        nt_unit = None
        rt_name = "HydraHarp2T2" if version == "2.0" else "HydraHarpT2"
    return _layout(r, container, rt_name, n_header, "NumRecords", ts_unit, nt_unit,
                   max(sync_rate, 0), acq_ms, warnings, detector_limit=n_inp)


def _has_counted_overflows(r: _Reader, n_header: int) -> bool:
    """True if an overflow record among the first records has a non-zero 24-bit payload."""
    n = min(_SF_SCAN_RECORDS, max(n_header, 0), (r.file_size - r.pos) // 4)
    if n <= 0:
        return False
    here = r.f.tell()
    try:
        rec = np.frombuffer(r.f.read(4 * n), "<u4")
    finally:
        r.f.seek(here)
    ovf = (rec >> 25) == 0x7F
    return bool(np.any((rec[ovf] & 0xFFFFFF) != 0))


# --------------------------------------------------------------------------- PicoHarp


def _parse_picoharp(r: _Reader, version: str) -> FileLayout:
    if version != "2.0":
        raise r.error(f"FormatVersion={version!r} of a PicoHarp file is not supported "
                      "(known: 2.0)", 16)
    _common_text(r)
    r.i32("NumberOfCurves")
    off_bits = r.pos
    r.i32("BitsPerRecord")
    r.i32("RoutingChannels")
    off_boards = r.pos
    n_boards = r.i32("NumberOfBoards")
    r.i32("ActiveCurve")
    off_mode = r.pos
    mode = r.i32("MeasurementMode")
    r.i32("SubMode")
    r.i32("RangeNo")
    r.i32("Offset")  # ns
    acq_ms = r.i32("AcquisitionTime")
    r.u32("StopAt")
    r.i32("StopOnOvfl")
    r.i32("Restart")
    r.i32("DisplayLinLog")
    r.i32("DisplayTimeAxisFrom")
    r.i32("DisplayTimeAxisTo")
    r.i32("DisplayCountAxisFrom")
    r.i32("DisplayCountAxisTo")
    _display_and_repeat(r)
    _measurement_mode(r, mode, off_mode)
    _bits_per_record(r, "BitsPerRecord", off_bits)
    if not 1 <= n_boards <= _MAX_BOARDS:
        raise r.error(f"NumberOfBoards={n_boards} outside 1..{_MAX_BOARDS}", off_boards)
    for b in range(n_boards):
        p = f"Brd[{b}]."
        r.text(p + "HardwareIdent", 16)
        r.text(p + "HardwareVersion", 8)
        r.i32(p + "HardwareSerial")
        r.i32(p + "SyncDivider")
        r.i32(p + "CFDZeroCross0")  # mV
        r.i32(p + "CFDLevel0")  # mV
        r.i32(p + "CFDZeroCross1")
        r.i32(p + "CFDLevel1")
        r.f32(p + "Resolution")  # ns
        r.i32(p + "RouterModelCode")
        r.i32(p + "RouterEnabled")
        for c in range(4):  # always 4 router channel blocks (libpicoquant ph_v20.c)
            q = f"{p}RtCh[{c}]."
            for name in ("InputType", "InputLevel", "InputEdge", "CFDPresent", "CFDLevel",
                         "CFDZCross"):
                r.i32(q + name)
    r.i32("ExtDevices")
    r.i32("Reserved1")
    r.i32("Reserved2")
    cnt0 = r.i32("CntRate0")  # sync input rate (counts/s, after the divider)
    r.i32("CntRate1")
    r.i32("StopAfter")  # ms
    r.i32("StopReason")
    n_header = r.i32("NumRecords")
    n_img = r.i32("ImgHdrSize")
    r.int_array("ImgHdr", n_img, "ImgHdrSize")
    res_ns = r.header["Brd[0].Resolution"]
    if mode == 3:
        period = _sync_period_s(r, "CntRate0", cnt0)
        res = _unit_s(r, "Brd[0].Resolution", res_ns, 1e9, "ns", BIN_WIDTH_S,
                      "the T3 nanotime bin width in ns")
        return _layout(r, "PT3", "PicoHarpT3", n_header, "NumRecords", period, res, cnt0,
                       acq_ms)
    return _layout(r, "PT2", "PicoHarpT2", n_header, "NumRecords", _PT2_TICK_S, None,
                   max(cnt0, 0), acq_ms)


# --------------------------------------------------------------------------- TimeHarp 200


def _parse_timeharp(r: _Reader, version: str) -> FileLayout:
    if version not in ("3.0", "5.0", "6.0"):
        raise r.error(f"FormatVersion={version!r} of a TimeHarp 200 file is not supported "
                      "(known: 3.0, 5.0, 6.0)", 16)
    if version == "6.0":
        _common_text(r)
    else:
        r.text("HardwareVersion", 6)
        r.text("FileTime", 18)
        r.skip(2, "CRLF")
        r.text("Comment", 256)
    r.i32("NumberOfChannels")
    r.i32("NumberOfCurves")
    off_bits = r.pos
    r.i32("BitsPerChannel")  # bits per TTTR record in TTTR mode
    r.i32("RoutingChannels")
    off_boards = r.pos
    n_boards = r.i32("NumberOfBoards")
    r.i32("ActiveCurve")
    off_mode = r.pos
    mode = r.i32("MeasurementMode")  # TimeHarp 200: 0 interactive, 1 continuous, 2 TTTR
    r.i32("HistogrammingMode" if version == "3.0" else "SubMode")
    r.i32("RangeNo")
    r.i32("Offset")
    acq_ms = r.i32("AcquisitionTime")
    r.u32("StopAt")
    r.i32("StopOnOvfl")
    r.i32("Restart")
    r.i32("DisplayLinLog")
    r.i32("DisplayTimeAxisFrom")
    r.i32("DisplayTimeAxisTo")
    r.i32("DisplayCountAxisFrom")
    r.i32("DisplayCountAxisTo")
    _display_and_repeat(r)
    if mode != 2:
        raise r.error(f"MeasurementMode={mode}; a TimeHarp 200 TTTR (.t3r) file has 2",
                      off_mode)
    _bits_per_record(r, "BitsPerChannel", off_bits)
    if not 1 <= n_boards <= _MAX_BOARDS:
        raise r.error(f"NumberOfBoards={n_boards} outside 1..{_MAX_BOARDS}", off_boards)
    for b in range(n_boards):
        p = f"Brd[{b}]."
        if version == "6.0":
            r.text(p + "HardwareIdent", 16)
            r.text(p + "HardwareVersion", 8)
        r.i32(p + "BoardSerial")
        r.i32(p + "CFDZeroCross")  # mV
        r.i32(p + "CFDDiscriminatorMin")  # mV
        r.i32(p + "SYNCLevel")  # mV
        r.i32(p + "CurveOffset")
        r.f32(p + "Resolution")  # ns
    glob_ns = r.i32("TTTRGlobClock")  # ns per time tag tick
    if version == "6.0":
        r.i32("ExtDevices")
        for i in range(5):
            r.i32(f"Reserved[{i}]")
    else:
        for i in range(6):
            r.i32(f"Reserved[{i}]")
    sync_rate = r.i32("SyncRate")
    r.i32("AverageCFDRate")
    r.i32("StopAfter")  # ms
    r.i32("StopReason")
    n_header = r.i32("NumberOfRecords")
    if version != "3.0":
        n_spec = r.i32("SpecHeaderLength")  # int32 words of special (imaging) header
        r.int_array("SpecHeader", n_spec, "SpecHeaderLength")
    res_ns = r.header["Brd[0].Resolution"]
    clock = _unit_s(r, "TTTRGlobClock", glob_ns, 1e9, "ns", SYNC_PERIOD_S,
                    "the T3R time tag unit in ns")
    res = _unit_s(r, "Brd[0].Resolution", res_ns, 1e9, "ns", BIN_WIDTH_S,
                  "the nanotime bin width in ns")
    return _layout(r, "T3R", "TimeHarp200T3R", n_header, "NumberOfRecords", clock, res,
                   max(sync_rate, 0), acq_ms)
