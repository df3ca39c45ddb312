"""Shared fixtures: a fixed RNG, the real-data folder, and a raw PTU file builder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qrspec.io.writer import encode_tag

REALDATA = Path(os.environ.get("QRSPEC_REALDATA",
                               Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"))


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def realdata():
    """The ../shared/realdata folder; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} not present")
    return REALDATA


def raw_ptu(path, records, *, rec_type: int, mode: int | None = None, glob_res=1e-7,
            res=16e-12, sync_rate=10_000_000, n_records=None, extra_tags=(), trailing=b"",
            omit=()):
    """Write a PTU file from raw uint32 records and explicit header tags (for corner cases)."""
    records = np.asarray(records, "<u4")
    tags = [
        ("File_GUID", "{test}"),
        ("Measurement_Mode", mode if mode is not None else (3 if (rec_type >> 8) & 0xF == 3
                                                             else 2)),
        ("Measurement_SubMode", 0),
        ("TTResultFormat_TTTRRecType", rec_type),
        ("TTResultFormat_BitsPerRecord", 32),
        ("MeasDesc_Resolution", res),
        ("MeasDesc_GlobalResolution", glob_res),
        ("TTResult_SyncRate", sync_rate),
        ("TTResult_NumberOfRecords", records.size if n_records is None else n_records),
    ]
    blob = bytearray(b"PQTTTR\0\0" + b"1.0.00\0\0")
    for name, value in tags:
        if name not in omit:
            blob += encode_tag(name, value)
    for t in extra_tags:
        name, value, *rest = t
        blob += encode_tag(name, value, idx=rest[0] if rest else -1,
                           tag_type=rest[1] if len(rest) > 1 else None)
    blob += encode_tag("Header_End", None)
    Path(path).write_bytes(bytes(blob) + records.tobytes() + trailing)
    return Path(path)
