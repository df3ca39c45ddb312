"""TTTR record types and their numba decoders (the only module that knows record bit layouts).

Decoding a run of 32-bit records takes two passes, so that the parts of a chunk can be decoded
concurrently (numba kernels release the GIL) straight into the final output arrays:

* :func:`scan_chunk` (read-only, cheap) counts photons, markers, sync events and overflows;
  prefix sums of these counts give each part its starting overflow accumulator and its
  offsets in the outputs;
* :func:`decode_chunk` decodes a part, carrying the overflow accumulator (ticks) in and out,
  so that chunked and parallel decoding equal whole-file decoding exactly::

    kernel(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode)
        -> (ofl, n_photons, n_markers, n_sync, n_invalid, n_backwards)

On CPUs with AVX-512 F + VL the decode kernels step 8 records at a time (see
:func:`decode_kernel`; ``QRSPEC_DECODE_KERNEL=scalar`` forces the record-by-record kernels).

``records`` uint32; ``ts_out`` int64, ``det_out`` uint8, ``nt_out`` uint16 (unused in T2),
``mk_ts`` int64, ``mk_bits`` uint16 and ``sync_out`` int64 hold exactly the counts the scan
reports; nothing is written beyond them. ``n_invalid`` counts records with reserved codes
(skipped) and ``n_backwards`` photons earlier than the photon before them (neither occurs in a
valid file).

Record layouts (PicoQuant ``apx_tttrrecords``; fields listed from the MSB):

* PicoHarp 300 T3: channel 4 | dtime 12 | nsync 16; channel 15 special: dtime 0 = overflow
  (65,536 syncs), else dtime low 4 bits = markers. Photon channels 1..4 -> detectors 0..3.
* HydraHarp/TimeHarp 260/Generic T3: special 1 | channel 6 | dtime 15 | nsync 10; special
  channel 63 = overflow of 1024 syncs (HydraHarp V1: always one; later: ``nsync`` of them, 0
  meaning 1), special channel 1..15 = markers. Photon channel c -> detector c.
* PicoHarp 300 T2: channel 4 | time 28; channel 15 special: low 4 bits 0 = overflow
  (210,698,240 ticks), else markers (the marker time has its low 4 bits cleared). Photon
  channels 0..4 (0 is the sync input used as a detector) -> detectors 0..4.
* HydraHarp/TimeHarp 260/Generic T2: special 1 | channel 6 | time 25; special channel 63 =
  overflow (HydraHarp V1: 33,552,000 ticks, one per record; later 2**25 x count, 0 meaning 1),
  special channel 0 = sync event (kept apart, never a detector), 1..15 = markers.
* TimeHarp 200 ``.t3r``: reserved 1 | valid 1 | route 2 | data 12 | time 16; valid=1 is a photon
  on detector ``route`` with dtime ``data``; valid=0 with data bit 11 = overflow (65,536 ticks),
  else data low 3 bits = markers. The time tag counts a 100 ns clock (``TTTRGlobClock``), not
  laser periods.
* SF-compressed HT3 (legacy HT3 1.0 written by conversion tools, detected from the data): as
  HydraHarp V1 T3, but an overflow record holds 1 + its low 24 bits overflows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["RecordType", "RECORD_TYPES", "record_type_from_code", "scan_chunk", "decode_chunk",
           "ScanCounts", "DecodeCounts", "summarize_chunk", "ChunkSummary", "decode_kernel",
           "DECODE_KERNELS"]

@dataclass(frozen=True)
class RecordType:
    """A TTTR record type."""

    name: str
    code: int  # TTResultFormat_TTTRRecType (0 for legacy-only layouts)
    mode: int  # 2 = T2, 3 = T3
    family: str  # decoder family
    wrap: int  # ticks added per overflow
    n_dtime_bins: int  # T3: size of the dtime field (bins); T2: 0


RECORD_TYPES: dict[str, RecordType] = {
    rt.name: rt
    for rt in (
        RecordType("PicoHarpT3", 0x00010303, 3, "pt3", 65536, 4096),
        RecordType("PicoHarpT2", 0x00010203, 2, "pt2", 210698240, 0),
        RecordType("HydraHarpT3", 0x00010304, 3, "ht3v1", 1024, 32768),
        RecordType("HydraHarpT2", 0x00010204, 2, "ht2v1", 33552000, 0),
        RecordType("HydraHarp2T3", 0x01010304, 3, "ht3", 1024, 32768),
        RecordType("HydraHarp2T2", 0x01010204, 2, "ht2", 33554432, 0),
        RecordType("TimeHarp260NT3", 0x00010305, 3, "ht3", 1024, 32768),
        RecordType("TimeHarp260NT2", 0x00010205, 2, "ht2", 33554432, 0),
        RecordType("TimeHarp260PT3", 0x00010306, 3, "ht3", 1024, 32768),
        RecordType("TimeHarp260PT2", 0x00010206, 2, "ht2", 33554432, 0),
        RecordType("GenericT3", 0x00010307, 3, "ht3", 1024, 32768),
        RecordType("GenericT2", 0x00010207, 2, "ht2", 33554432, 0),
        RecordType("TimeHarp200T3R", 0, 3, "t3r", 65536, 4096),
        # legacy HT3 1.0 rewritten by Suren Felekyan's tools: overflow = 1 + low 24 bits
        RecordType("HydraHarpT3SF", 0, 3, "ht3sf", 1024, 32768),
    )
}

_BY_CODE = {rt.code: rt for rt in RECORD_TYPES.values() if rt.code}


def record_type_from_code(code: int) -> RecordType | None:
    """Return the :class:`RecordType` of a ``TTResultFormat_TTTRRecType`` value, or None."""
    return _BY_CODE.get(int(code))


@dataclass(frozen=True)
class ScanCounts:
    """What a run of records holds (from :func:`scan_chunk`)."""

    n_photons: int
    n_markers: int
    n_sync: int
    n_wraps: int  # overflows: the run advances the overflow accumulator by n_wraps * wrap
    n_invalid: int  # records with reserved codes
    n_zero: int  # all-zero records after an all-zero record of the run (a zero-filled region)


@dataclass(frozen=True)
class DecodeCounts:
    """What :func:`decode_chunk` wrote and found."""

    ofl: int  # overflow accumulator (ticks) after the last record
    n_photons: int
    n_markers: int
    n_sync: int
    n_invalid: int  # records with reserved/invalid codes (skipped)
    n_backwards: int  # photons earlier than the photon before them (corrupt data)


def scan_chunk(record_type: RecordType, records) -> ScanCounts:
    """Count photons, markers, sync events and overflows in ``records`` (read-only pass)."""
    from qrspec.io._kernels import KERNELS

    scan, _, mode, _ = KERNELS[record_type.family]
    return ScanCounts(*(int(v) for v in scan(records, mode)))


_VECTOR_SUPPORTED: list[bool] = []  # [vector_decode_supported()], decided on first use
DECODE_KERNELS = ("auto", "scalar", "vector")


def decode_kernel() -> str:
    """The decode kernels in use.

    ``"vector"`` (AVX-512, 8 records per step) where numba compiles for a CPU with AVX-512 F and
    VL, else ``"scalar"`` (same results, tested on every record type and real file).
    ``QRSPEC_DECODE_KERNEL`` = ``auto`` (default), ``scalar`` or ``vector`` overrides it;
    ``vector`` on a CPU without AVX-512 F + VL is refused (LLVM would expand the compress
    instructions into slow code).
    """
    from qrspec.errors import QrspecError
    from qrspec.io._kernels import vector_decode_supported

    env = os.environ.get("QRSPEC_DECODE_KERNEL", "auto") or "auto"
    if env not in DECODE_KERNELS:
        raise QrspecError(f"QRSPEC_DECODE_KERNEL={env!r} must be one of "
                          f"{', '.join(DECODE_KERNELS)}")
    if env == "scalar":
        return "scalar"
    if not _VECTOR_SUPPORTED:
        _VECTOR_SUPPORTED.append(vector_decode_supported())
    if env == "vector" and not _VECTOR_SUPPORTED[0]:
        raise QrspecError("QRSPEC_DECODE_KERNEL='vector' needs a CPU with AVX-512 F and VL (numba "
                          "compiles for one without them here)")
    return "vector" if _VECTOR_SUPPORTED[0] else "scalar"


def _decode_kernel(family: str):
    """The decode kernel of ``family`` (see :func:`decode_kernel`) and its mode."""
    from qrspec.io._kernels import KERNELS

    _, scalar, mode, vector = KERNELS[family]
    return (vector if decode_kernel() == "vector" else scalar), mode


def decode_chunk(record_type: RecordType, records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits,
                 sync_out) -> DecodeCounts:
    """Decode ``records`` with the kernel of ``record_type`` (see the module docstring).

    ``ofl`` is the overflow accumulator (ticks) before the first record. The output buffers
    must hold the counts :func:`scan_chunk` reports for ``records`` (``nt_out`` may be empty
    in T2, ``sync_out`` outside HydraHarp-family T2); nothing is written beyond them.
    """
    kernel, mode = _decode_kernel(record_type.family)
    return DecodeCounts(*(int(v) for v in kernel(records, np.int64(ofl), ts_out, det_out,
                                                 nt_out, mk_ts, mk_bits, sync_out, mode)))


# --------------------------------------------------------------------------- numpy summary
# ``qrspec info`` must not import numba (start-up time): this numpy version of the record
# layouts counts what the numba decoder decodes (tests compare the two on every record type).


@dataclass(frozen=True, eq=False)
class ChunkSummary:
    """Counts of a run of records (from :func:`summarize_chunk`), without decoding photons."""

    n_photons: int
    counts_per_detector: np.ndarray  # int64, 256 entries
    marker_bit_counts: np.ndarray  # int64, 16 entries: records in which marker input k+1 fired
    n_markers: int
    n_sync: int
    n_wraps: int
    n_invalid: int
    n_zero: int  # all-zero records right after an all-zero record (the first of the run too)
    n_backwards: int  # photons earlier than the photon before them (the first vs last_ts too)
    first_ts: int  # -1 without photons
    last_ts: int  # -1 without photons
    last_record: int


def _fields(family: str, r: np.ndarray):
    """Per-record masks and fields of ``r`` (int64).

    ``(photon, detector, time field, overflow, overflows counted, marker, marker bits, sync)``;
    every other record is invalid.
    """
    none = np.zeros(r.shape, bool)
    if family in ("ht3", "ht3v1", "ht3sf", "ht2", "ht2v1"):
        t3 = family.startswith("ht3")
        top = r >> 25
        field = r & (1023 if t3 else 0x1FFFFFF)
        if family in ("ht3", "ht2"):
            k = np.maximum(field, 1)
        elif family == "ht3sf":
            k = (r & 0xFFFFFF) + 1
        else:
            k = np.ones_like(r)
        return (top < 64, top, field, top == 127, k, (top >= 65) & (top <= 79), top - 64,
                none if t3 else top == 64)
    if family == "pt3":
        ch = r >> 28
        ovf = (r >> 16) == 0xF000
        return ((ch >= 1) & (ch <= 4), ch - 1, r & 0xFFFF, ovf, np.ones_like(r),
                (ch == 15) & ~ovf, (r >> 16) & 0xF, none)
    if family == "t3r":
        ph = ((r >> 30) & 1) == 1
        data = (r >> 16) & 0xFFF
        ovf = ~ph & ((data & 0x800) != 0)
        return (ph, (r >> 28) & 3, r & 0xFFFF, ovf, np.ones_like(r),
                ~ph & ~ovf & ((data & 7) != 0), data & 7, none)
    if family == "pt2":
        ch = r >> 28
        ovf = (ch == 15) & ((r & 0xF) == 0)
        return (ch <= 4, ch, r & 0x0FFFFFFF, ovf, np.ones_like(r), (ch == 15) & ~ovf, r & 0xF,
                none)
    raise ValueError(f"unknown record family={family!r}")


def summarize_chunk(record_type: RecordType, records, ofl: int, last_ts: int = -1,
                    prev_record: int = -1, max_ticks: int = 1 << 62) -> ChunkSummary:
    """Count photons, markers, syncs, overflows and invalid records of ``records`` (numpy only).

    Photons are counted per detector and markers per input: what :func:`decode_chunk` would decode.

    ``ofl`` is the overflow accumulator (ticks) before the first record, ``last_ts`` the last
    photon time before it and ``prev_record`` the record before it (for runs of zero records).
    Raises ``OverflowError`` when the overflows would take times past ``max_ticks``.
    """
    r = np.asarray(records).astype(np.int64)
    ph, det, field, ovf, k, mk, mk_bits, sync = _fields(record_type.family, r)
    invalid = ~(ph | ovf | mk | sync)
    cum = np.cumsum(np.where(ovf, k, 0))
    n_wraps = int(cum[-1]) if cum.size else 0
    if ofl + n_wraps * record_type.wrap > max_ticks:
        raise OverflowError(n_wraps)
    zero = r == 0
    n_zero = int(np.count_nonzero(zero[1:] & zero[:-1]))
    if zero.size and zero[0] and prev_record == 0:
        n_zero += 1
    t = ofl + cum[ph] * record_type.wrap + field[ph]
    n_back = int(np.count_nonzero(t[1:] < t[:-1]))
    if t.size and t[0] < last_ts:
        n_back += 1
    b = mk_bits[mk]
    return ChunkSummary(
        n_photons=int(t.size),
        counts_per_detector=np.bincount(det[ph], minlength=256)[:256],
        marker_bit_counts=np.array([np.count_nonzero(b & (1 << j)) for j in range(16)],
                                   np.int64),
        n_markers=int(b.size),
        n_sync=int(np.count_nonzero(sync)),
        n_wraps=n_wraps,
        n_invalid=int(np.count_nonzero(invalid)),
        n_zero=n_zero,
        n_backwards=n_back,
        first_ts=int(t[0]) if t.size else -1,
        last_ts=int(t[-1]) if t.size else -1,
        last_record=int(r[-1]) if r.size else prev_record,
    )
