"""Shared fixtures: a fixed RNG, the real-data folder, each decode kernel, a small tmpfs (disk-full
tests) and a raw PTU file builder."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture(params=["scalar", "vector"])
def decode_kernel(request, monkeypatch):
    """Runs the test with each decode kernel (``QRSPEC_DECODE_KERNEL``); the vector kernels are
    skipped on a CPU without AVX-512 F + VL (never used there)."""
    from qrspec.io._kernels import vector_decode_supported

    if request.param == "vector" and not vector_decode_supported():
        pytest.skip("the vector decode kernels need a CPU with AVX-512 F and VL")
    monkeypatch.setenv("QRSPEC_DECODE_KERNEL", request.param)
    return request.param


@pytest.fixture
def small_tmpfs(tmp_path):
    """``make(size)`` mounts a tmpfs of ``size`` (e.g. ``"256k"``) in a temp folder and returns
    it; unmounted afterwards. Skips the test where mounting is impossible (not root, no
    CAP_SYS_ADMIN, no ``mount``): disk-full behaviour needs a real full file system."""
    mounted = []

    def make(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                                str(where)], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot mount a tmpfs ({exc})")
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


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
