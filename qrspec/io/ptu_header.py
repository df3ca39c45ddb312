"""PTU header parsing: tags in file order, every tag type, validated against the file size."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import struct

import numpy as np

from qrspec.errors import TTTRFormatError
from qrspec.io.layout import BIN_WIDTH_S, SYNC_PERIOD_S, SYNC_RATE_HZ, FileLayout, check_unit
from qrspec.io.records import record_type_from_code

logger = logging.getLogger(__name__)

PTU_MAGIC = b"PQTTTR\0\0"
_OTHER_MAGICS = {
    b"PQHISTO\0": "PHU histogram file",
    b"PQRESLT\0": "PQRES result file",
    b"PQCOMNT\0": "PCO comment file",
    b"PQDEFLT\0": "PFS/PUS defaults file",
}

_TAG = struct.Struct("<32siI8s")
_TYPE_NAMES = {
    0xFFFF0008: "Empty8",
    0x00000008: "Bool8",
    0x10000008: "Int8",
    0x11000008: "BitSet64",
    0x12000008: "Color8",
    0x20000008: "Float8",
    0x21000008: "TDateTime",
    0x2001FFFF: "Float8Array",
    0x4001FFFF: "AnsiString",
    0x4002FFFF: "WideString",
    0xFFFFFFFF: "BinaryBlob",
}
_PAYLOAD_TYPES = {"Float8Array", "AnsiString", "WideString", "BinaryBlob"}
_MAX_TAGS = 1_000_000  # far above any real header (a few hundred tags); bounds a corrupt loop
_TDATETIME_EPOCH = _dt.datetime(1899, 12, 30)
_FILETIME_EPOCH = _dt.datetime(1601, 1, 1)
# File_CreatingTime is a TDateTime (days since 1899-12-30) in most files; SymPhoTime 64 also
# writes it as a Float8 of seconds since 1601-01-01 (Windows FILETIME / 1e7; e.g.
# 13334234245.695 = 2023-07-19 09:57:25). The two ranges are decades apart for any real date:
_TDATETIME_DAYS = (10_000.0, 200_000.0)  # 1927 .. 2447
_FILETIME_S = (1.0e10, 2.0e10)  # 1917 .. 2234


def parse_ptu_tags(path: str, f, file_size: int) -> tuple[dict, int, list[str]]:
    """Read PTU tags from an open file positioned after the 16-byte preamble.

    Returns
    -------
    tags : dict
        ``name`` (index -1) or ``name[idx]`` -> decoded value, in file order.
    data_offset : int
        Byte offset of the first record (just after ``Header_End``).
    warnings : list of str
    """
    tags: dict = {}
    warnings: list[str] = []
    offset = f.tell()
    for _ in range(_MAX_TAGS):
        raw = f.read(_TAG.size)
        if len(raw) < _TAG.size:
            raise TTTRFormatError(path, "header ends before the Header_End tag (file truncated?)",
                                  offset)
        ident_b, idx, code, value = _TAG.unpack(raw)
        ident = ident_b.split(b"\0", 1)[0].decode("ascii", errors="replace")
        type_name = _TYPE_NAMES.get(code)
        if type_name is None:
            raise TTTRFormatError(path, f"tag {ident!r} has unknown type code 0x{code:08X}",
                                  offset)
        if offset % 8:
            warnings.append(f"tag {ident!r} at byte {offset} is not 8-byte aligned")
        offset += _TAG.size
        if type_name in _PAYLOAD_TYPES:
            size = struct.unpack("<q", value)[0]
            remaining = file_size - offset
            if size < 0 or size > remaining:
                raise TTTRFormatError(
                    path, f"tag {ident!r} claims a payload of size={size} bytes but only "
                    f"{remaining} bytes remain in the file", offset - 8)
            payload = f.read(size)
            offset += size
            decoded = _decode_payload(type_name, payload)
        else:
            decoded = _decode_value(type_name, value)
        if ident == "File_CreatingTime" and type_name == "Float8":
            decoded = _float_date(decoded, warnings)
        key = ident if idx < 0 else f"{ident}[{idx}]"
        if key in tags and not _same_value(tags[key], decoded) and ident != "Header_End":
            warnings.append(f"tag {key!r} repeated with a different value; keeping the first")
        else:
            tags.setdefault(key, decoded)
        if ident == "Header_End":
            return tags, offset, warnings
    raise TTTRFormatError(path, f"more than {_MAX_TAGS} header tags without Header_End", offset)


def _same_value(a, b) -> bool:
    """Tag values equal (arrays element-wise, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and bool(np.array_equal(a, b, equal_nan=True)))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _float_date(value: float, warnings: list[str]):
    """A creation date stored as a Float8 -> datetime (see ``_FILETIME_S``); else the number."""
    if _TDATETIME_DAYS[0] <= value <= _TDATETIME_DAYS[1]:
        return _TDATETIME_EPOCH + _dt.timedelta(days=value)
    if _FILETIME_S[0] <= value <= _FILETIME_S[1]:
        return _FILETIME_EPOCH + _dt.timedelta(seconds=value)
    warnings.append(f"tag 'File_CreatingTime' is a Float8 ({value!r}) that is no known date "
                    "encoding; kept as a number")
    return value


def _decode_value(type_name: str, value: bytes):
    if type_name == "Empty8":
        return None
    if type_name == "Bool8":
        return struct.unpack("<q", value)[0] != 0
    if type_name in ("Int8", "Color8"):
        return struct.unpack("<q", value)[0]
    if type_name == "BitSet64":
        return struct.unpack("<Q", value)[0]
    if type_name == "Float8":
        return struct.unpack("<d", value)[0]
    # TDateTime: days since 1899-12-30 (fractional part = time of day)
    days = struct.unpack("<d", value)[0]
    try:
        return _TDATETIME_EPOCH + _dt.timedelta(days=days)
    except (OverflowError, ValueError):
        return days  # nonsense date: keep the raw number rather than fail the file


def _decode_payload(type_name: str, payload: bytes):
    if type_name == "AnsiString":
        # AnsiString is Windows "ANSI" (cp1252), not UTF-8; bytes cp1252 leaves undefined map
        # to latin-1 so that decoding never fails
        text = payload.split(b"\0", 1)[0]
        try:
            return text.decode("cp1252")
        except UnicodeDecodeError:
            return text.decode("latin-1")
    if type_name == "WideString":
        text = payload.decode("utf-16-le", errors="replace")
        return text.split("\0", 1)[0]
    if type_name == "Float8Array":
        n = len(payload) // 8
        return np.frombuffer(payload[: 8 * n], "<f8").copy()
    return bytes(payload)


def _number(tags: dict, name: str):
    v = tags.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return v


def _is_integral(v) -> bool:
    """True for an int or a finite float with an integer value (tags may be Float8)."""
    return isinstance(v, int) or (math.isfinite(v) and float(v).is_integer())


def ptu_layout(path: str, f, file_size: int) -> FileLayout:
    """Parse a PTU file's header into a :class:`FileLayout` (``f`` positioned at 0)."""
    preamble = f.read(16)
    magic = preamble[:8]
    if magic != PTU_MAGIC:
        what = _OTHER_MAGICS.get(magic)
        if what:
            raise TTTRFormatError(path, f"unsupported file type: {what} (magic {magic!r}), "
                                  "only TTTR (PQTTTR) files hold photon records", 0)
        raise TTTRFormatError(path, f"not a PTU file (magic {magic!r}, expected {PTU_MAGIC!r})",
                              0)
    if len(preamble) < 16:
        raise TTTRFormatError(path, "file ends inside the 16-byte preamble", 0)
    tags, data_offset, warnings = parse_ptu_tags(path, f, file_size)

    code = _number(tags, "TTResultFormat_TTTRRecType")
    if code is None:
        raise TTTRFormatError(path, "missing tag TTResultFormat_TTTRRecType (record type)")
    if not _is_integral(code):  # a Float8 NaN/inf/fraction: int() would raise ValueError
        raise TTTRFormatError(path, f"TTResultFormat_TTTRRecType={code!r} is not an integer "
                              "record-type code")
    rt = record_type_from_code(int(code))
    if rt is None:
        raise TTTRFormatError(path, f"unsupported record type TTResultFormat_TTTRRecType="
                              f"0x{int(code):08X}")
    bits = _number(tags, "TTResultFormat_BitsPerRecord")
    if bits is not None and bits != 32:
        raise TTTRFormatError(path, f"TTResultFormat_BitsPerRecord={bits} is not supported "
                              "(all PicoQuant TTTR records are 32 bits)")
    mode = _number(tags, "Measurement_Mode")
    if mode is not None and mode != rt.mode:
        warnings.append(f"Measurement_Mode={mode} disagrees with record type {rt.name} "
                        f"(T{rt.mode}); decoding as {rt.name}")

    # ---- units
    glob = _number(tags, "MeasDesc_GlobalResolution")
    res = _number(tags, "MeasDesc_Resolution")
    sync = _number(tags, "TTResult_SyncRate")
    sync_rate = float(sync) if sync is not None and math.isfinite(sync) and sync > 0 else 0.0
    if sync_rate and not SYNC_RATE_HZ[0] <= sync_rate <= SYNC_RATE_HZ[1]:
        warnings.append(f"TTResult_SyncRate={sync!r} Hz is outside {SYNC_RATE_HZ[0]:g}.."
                        f"{SYNC_RATE_HZ[1]:g} Hz; ignored")
        sync_rate = 0.0
    if res is not None and res > 1e-6 and rt.mode == 3:
        warnings.append(f"MeasDesc_Resolution={res} looks like picoseconds; using {res}e-12 s")
        res = res * 1e-12
    if rt.mode == 3:
        if glob is None or not (math.isfinite(glob) and glob > 0):
            if sync_rate > 0:
                warnings.append(f"MeasDesc_GlobalResolution={glob!r} invalid; using 1/"
                                f"TTResult_SyncRate={1.0 / sync_rate:.6g} s")
                glob = 1.0 / sync_rate
            else:
                raise TTTRFormatError(path, "T3 file without a valid MeasDesc_GlobalResolution "
                                      f"({glob!r}) or TTResult_SyncRate ({sync!r})")
        if res is None or not (math.isfinite(res) and res > 0):
            raise TTTRFormatError(path, f"T3 file without a valid MeasDesc_Resolution ({res!r})")
        check_unit(path, "MeasDesc_GlobalResolution", glob, SYNC_PERIOD_S, "T3 sync period")
        check_unit(path, "MeasDesc_Resolution", res, BIN_WIDTH_S, "T3 TCSPC bin width")
        if sync_rate == 0:
            warnings.append(f"TTResult_SyncRate={sync!r}; using 1/MeasDesc_GlobalResolution")
            sync_rate = 1.0 / glob
        timestamps_unit, nanotimes_unit = float(glob), float(res)
    else:
        name = "MeasDesc_GlobalResolution"
        unit = glob
        if unit is None or not (math.isfinite(unit) and unit > 0):
            name, unit = "MeasDesc_Resolution", res
            if unit is not None and math.isfinite(unit) and unit > 0:
                warnings.append(f"MeasDesc_GlobalResolution={glob!r} invalid; using "
                                f"MeasDesc_Resolution={res!r} s as the T2 time tag unit")
        if unit is None or not (math.isfinite(unit) and unit > 0):
            raise TTTRFormatError(path, "T2 file without a valid MeasDesc_GlobalResolution or "
                                  f"MeasDesc_Resolution ({glob!r}, {res!r})")
        check_unit(path, name, unit, BIN_WIDTH_S, "T2 time tag resolution")
        timestamps_unit, nanotimes_unit = float(unit), None

    # ---- record count
    n_header = _number(tags, "TTResult_NumberOfRecords")
    if n_header is not None and not _is_integral(n_header):
        warnings.append(f"TTResult_NumberOfRecords={n_header!r} is not an integer; ignored")
        n_header = None
    n_header = int(n_header) if n_header is not None else None
    n_records = reconcile_record_count(path, n_header, file_size - data_offset, warnings)

    acq = _number(tags, "MeasDesc_AcquisitionTime")
    n_inp = _number(tags, "HW_InpChannels")
    limit = int(n_inp) + 1 if n_inp is not None and _is_integral(n_inp) and 0 < n_inp < 256 \
        else None
    return FileLayout(
        path=path,
        container="PTU",
        header=tags,
        record_type=rt,
        data_offset=data_offset,
        n_records=n_records,
        n_records_header=n_header,
        timestamps_unit=timestamps_unit,
        nanotimes_unit=nanotimes_unit,
        sync_rate_hz=sync_rate,
        acquisition_s=None if acq is None else float(acq) / 1000.0,
        warnings=tuple(warnings),
        detector_limit=limit,
    )


def reconcile_record_count(path, n_header, data_bytes: int, warnings: list) -> int:
    """Number of whole records to decode; appends a warning when the header count is off."""
    data_bytes = max(int(data_bytes), 0)
    n_file = data_bytes // 4
    if data_bytes % 4:
        warnings.append(f"file ends with a truncated record ({data_bytes % 4} trailing bytes "
                        "ignored)")
    if n_header is None:
        warnings.append(f"no record count in header; decoding the {n_file} records the file "
                        "holds")
    elif n_header <= 0:
        warnings.append(f"header record count TTResult_NumberOfRecords={n_header}; decoding the "
                        f"{n_file} records the file holds")
    elif n_header > n_file:
        warnings.append(f"header claims TTResult_NumberOfRecords={n_header} but the file holds "
                        f"only {n_file} records (truncated file); decoding {n_file}")
    elif n_header < n_file:
        warnings.append(f"header claims TTResult_NumberOfRecords={n_header} but the file holds "
                        f"{n_file} records; decoding all {n_file}")
    return n_file
