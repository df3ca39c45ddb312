"""Encode photons into TTTR records and write PTU files.

Used by the simulator (``qrspec simulate``) and by the tests, which build hand-made files for
every record type and corner case from the PicoQuant format documentation. The file is written
to a temp file, fsynced and renamed into place (:func:`qrspec.io.atomic.atomic_output`), so a
failed write (disk full: :class:`~qrspec.errors.OutputError`) never leaves a half file.
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
from pathlib import Path

import numpy as np

from qrspec.io.records import RECORD_TYPES, RecordType

__all__ = ["encode_records", "encode_tag", "write_ptu", "TAG_TYPES"]

TAG_TYPES = {
    "Empty8": 0xFFFF0008,
    "Bool8": 0x00000008,
    "Int8": 0x10000008,
    "BitSet64": 0x11000008,
    "Color8": 0x12000008,
    "Float8": 0x20000008,
    "TDateTime": 0x21000008,
    "Float8Array": 0x2001FFFF,
    "AnsiString": 0x4001FFFF,
    "WideString": 0x4002FFFF,
    "BinaryBlob": 0xFFFFFFFF,
}

_HW_NAMES = {"PicoHarp": "PicoHarp 300", "HydraHarp": "HydraHarp", "HydraHarp2": "HydraHarp",
             "TimeHarp260N": "TimeHarp 260 N", "TimeHarp260P": "TimeHarp 260 P",
             "Generic": "MultiHarp 150"}
_FAMILY_ID = {"ht3": 0, "ht3v1": 1, "pt3": 2, "t3r": 3, "ht2": 4, "ht2v1": 5, "pt2": 6,
              "ht3sf": 7}
_MAX_OVF_PER_RECORD = {"ht3": 1023, "ht3v1": 1, "pt3": 1, "t3r": 1, "ht2": (1 << 25) - 1,
                       "ht2v1": 1, "pt2": 1, "ht3sf": 1 << 24}


def encode_records(
    record_type: str | RecordType,
    timestamps,
    detectors,
    nanotimes=None,
    *,
    marker_timestamps=None,
    marker_bits=None,
    sync_timestamps=None,
) -> np.ndarray:
    """Encode photons (and optionally markers and T2 sync events) into uint32 records.

    Overflow records are inserted as the record type requires (compressed counts where the type
    allows them). Events are merged in time order; at equal times markers and syncs come after
    photons.

    Parameters
    ----------
    record_type : str or RecordType
        A name from :data:`qrspec.io.records.RECORD_TYPES`, e.g. ``"HydraHarp2T3"``.
    timestamps : array_like of int
        Photon ticks (sync periods in T3), non-negative.
    detectors : array_like of int
        0-based detectors (PicoHarp T3 / t3r: 0..3; PicoHarp T2: 0..4; others 0..62).
    nanotimes : array_like of int, optional
        T3 dtime bins (required in T3).
    marker_timestamps, marker_bits : array_like, optional
        Marker records (bits 1..15).
    sync_timestamps : array_like of int, optional
        HydraHarp-family T2 sync events.
    """
    rt = RECORD_TYPES[record_type] if isinstance(record_type, str) else record_type
    ts = np.asarray(timestamps, np.int64)
    det = np.asarray(detectors, np.int64)
    if ts.size and ts.min() < 0:
        raise ValueError("timestamps must be >= 0")
    if rt.mode == 3:
        if nanotimes is None:
            raise ValueError(f"record_type={rt.name!r} is T3: nanotimes are required")
        nt = np.asarray(nanotimes, np.int64)
        if nt.size and (nt.min() < 0 or nt.max() >= rt.n_dtime_bins):
            raise ValueError(f"nanotimes must be in 0..{rt.n_dtime_bins - 1} for {rt.name}")
    else:
        nt = np.zeros(ts.size, np.int64)
    max_det = {"pt3": 3, "t3r": 3, "pt2": 4}.get(rt.family, 62)
    if det.size and (det.min() < 0 or det.max() > max_det):
        raise ValueError(f"detectors must be in 0..{max_det} for {rt.name}")
    mts = np.asarray([] if marker_timestamps is None else marker_timestamps, np.int64)
    mbits = np.asarray([] if marker_bits is None else marker_bits, np.int64)
    sts = np.asarray([] if sync_timestamps is None else sync_timestamps, np.int64)
    if sts.size and rt.family not in ("ht2", "ht2v1"):
        raise ValueError(f"sync events exist only in HydraHarp-family T2 records, not {rt.name}")
    max_bits = 7 if rt.family == "t3r" else 15
    if mbits.size and (mbits.min() < 1 or mbits.max() > max_bits):
        raise ValueError(f"marker_bits must be in 1..{max_bits} for {rt.name}")
    times = np.concatenate([ts, mts, sts])
    kinds = np.concatenate([np.zeros(ts.size, np.int8), np.ones(mts.size, np.int8),
                            np.full(sts.size, 2, np.int8)])
    values = np.concatenate([det, mbits, np.zeros(sts.size, np.int64)])
    nts = np.concatenate([nt, np.zeros(mts.size + sts.size, np.int64)])
    if mts.size or sts.size:
        order = np.lexsort((kinds, times))
        times, kinds, values, nts = times[order], kinds[order], values[order], nts[order]
    elif ts.size > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be non-decreasing")
    max_ovf = _MAX_OVF_PER_RECORD[rt.family]
    t_max = int(times[-1]) if times.size else 0
    n_ovf_upper = t_max // rt.wrap // max_ovf + times.size + 1
    out = np.empty(times.size + n_ovf_upper, np.uint32)
    from qrspec.io._kernels import encode

    n = encode(times, kinds, values, nts, _FAMILY_ID[rt.family], np.int64(rt.wrap),
               np.int64(max_ovf), out)
    return out[:n].copy()


def encode_tag(name: str, value, *, idx: int = -1, tag_type: str | None = None) -> bytes:
    """Encode one PTU header tag (48-byte record plus any 8-byte padded payload).

    ``tag_type`` defaults from the Python type: bool -> Bool8, int -> Int8, float -> Float8,
    str -> AnsiString (windows-1252), bytes -> BinaryBlob, datetime -> TDateTime,
    None -> Empty8, list of float -> Float8Array.
    """
    if tag_type is None:
        if value is None:
            tag_type = "Empty8"
        elif isinstance(value, bool):
            tag_type = "Bool8"
        elif isinstance(value, int | np.integer):
            tag_type = "Int8"
        elif isinstance(value, float | np.floating):
            tag_type = "Float8"
        elif isinstance(value, str):
            tag_type = "AnsiString"
        elif isinstance(value, bytes):
            tag_type = "BinaryBlob"
        elif isinstance(value, _dt.datetime):
            tag_type = "TDateTime"
        else:
            tag_type = "Float8Array"
    code = TAG_TYPES[tag_type]
    ident = name.encode("ascii")
    if len(ident) > 31:
        raise ValueError(f"tag name={name!r} is longer than 31 characters")
    head = struct.pack("<32siI", ident, idx, code)
    payload = b""
    if tag_type == "Empty8":
        val = b"\0" * 8
    elif tag_type == "Bool8":
        val = struct.pack("<q", 1 if value else 0)
    elif tag_type in ("Int8", "BitSet64", "Color8"):
        val = struct.pack("<q", int(value))
    elif tag_type == "Float8":
        val = struct.pack("<d", float(value))
    elif tag_type == "TDateTime":
        if isinstance(value, _dt.datetime):
            value = (value - _dt.datetime(1899, 12, 30)).total_seconds() / 86400.0
        val = struct.pack("<d", float(value))
    else:
        if tag_type == "AnsiString":
            payload = value.encode("cp1252") + b"\0"
        elif tag_type == "WideString":
            payload = value.encode("utf-16-le") + b"\0\0"
        elif tag_type == "Float8Array":
            payload = np.asarray(value, "<f8").tobytes()
        else:
            payload = bytes(value)
        payload += b"\0" * (-len(payload) % 8)
        val = struct.pack("<q", len(payload))
    return head + val + payload


def write_ptu(
    path,
    *,
    record_type: str,
    timestamps,
    detectors,
    nanotimes=None,
    timestamps_unit: float,
    nanotimes_unit: float | None = None,
    sync_rate_hz: float | None = None,
    marker_timestamps=None,
    marker_bits=None,
    sync_timestamps=None,
    acquisition_s: float | None = None,
    comment: str = "",
    extra_tags: list[tuple] | None = None,
    n_records_tag: int | None = None,
) -> Path:
    """Write photons to a PTU file (atomically: :func:`qrspec.io.atomic.atomic_output`).

    Parameters
    ----------
    record_type : str
        Record type name, e.g. ``"HydraHarp2T3"`` (the simulator's default) or ``"GenericT2"``.
    timestamps_unit : float
        ``MeasDesc_GlobalResolution`` in s (sync period in T3; tag resolution in T2).
    nanotimes_unit : float, optional
        ``MeasDesc_Resolution`` in s (T3). In T2 defaults to ``timestamps_unit``.
    extra_tags : list of (name, value) or (name, value, idx, tag_type), optional
        Tags written before ``Header_End`` (for tests of unusual headers).
    n_records_tag : int, optional
        Value of ``TTResult_NumberOfRecords`` (default: the true count; tests pass lies).

    Returns
    -------
    Path
        The written file.
    """
    rt = RECORD_TYPES[record_type]
    if rt.code == 0:
        raise ValueError(f"record_type={record_type!r} has no PTU record-type code")
    records = encode_records(rt, timestamps, detectors, nanotimes,
                             marker_timestamps=marker_timestamps, marker_bits=marker_bits,
                             sync_timestamps=sync_timestamps)
    if sync_rate_hz is None:
        sync_rate_hz = 1.0 / timestamps_unit if rt.mode == 3 else 0.0
    if nanotimes_unit is None:
        nanotimes_unit = timestamps_unit
    ts = np.asarray(timestamps)
    det = np.asarray(detectors)
    # inputs + the sync input, as HydraHarp-family PTU headers count them (the reader flags
    # photons on detectors >= HW_InpChannels + 1)
    n_inp_channels = max(3, int(det.max()) + 2 if det.size else 3)
    if acquisition_s is None:
        acquisition_s = float(ts.max() * timestamps_unit) if ts.size else 0.0
    tags = [
        ("File_GUID", "{00000000-0000-0000-0000-000000000000}"),
        ("File_CreatingTime", _dt.datetime(2026, 1, 1)),
        ("CreatorSW_Name", "qrspec"),
        ("CreatorSW_Version", "0.1"),
        ("File_Comment", comment),
        ("Measurement_Mode", int(rt.mode)),
        ("Measurement_SubMode", 0),
        ("TTResultFormat_TTTRRecType", int(rt.code)),
        ("TTResultFormat_BitsPerRecord", 32),
        ("MeasDesc_Resolution", float(nanotimes_unit)),
        ("MeasDesc_GlobalResolution", float(timestamps_unit)),
        ("MeasDesc_AcquisitionTime", int(round(acquisition_s * 1000))),
        ("TTResult_SyncRate", int(round(sync_rate_hz))),
        ("TTResult_NumberOfRecords", int(records.size if n_records_tag is None
                                         else n_records_tag)),
        ("HW_Type", _HW_NAMES.get(rt.name[:-2], "MultiHarp 150")),
        ("HW_InpChannels", n_inp_channels),
    ]
    blob = bytearray(b"PQTTTR\0\0" + b"1.0.00\0\0")
    for name, value in tags:
        blob += encode_tag(name, value)
    for t in extra_tags or ():
        name, value, *rest = t
        idx = rest[0] if rest else -1
        tag_type = rest[1] if len(rest) > 1 else None
        blob += encode_tag(name, value, idx=idx, tag_type=tag_type)
    blob += encode_tag("Header_End", None)
    from qrspec.io.atomic import atomic_output

    path = Path(os.fsdecode(os.fspath(path)))
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(blob)
        f.write(memoryview(np.ascontiguousarray(records, "<u4")).cast("B"))
    return path
