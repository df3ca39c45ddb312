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

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["RecordType", "RECORD_TYPES", "record_type_from_code", "scan_chunk", "decode_chunk",
           "ScanCounts", "DecodeCounts"]

_cache = {"cache": True, "nogil": True, "boundscheck": False}


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


# --------------------------------------------------------------------------- scan kernels
# One read-only pass: what a part of the records holds, so that the parts of a chunk can be
# decoded in parallel straight into the final arrays (starting overflow state and output
# offsets are prefix sums of these counts).


@numba.njit(**_cache)
def _scan_hh_t3(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    for i in range(records.size):
        r = np.int64(records[i])
        top = r >> 25
        if mode == 0:
            k = max(r & 1023, 1)
        elif mode == 1:
            k = 1
        else:
            k = (r & 0xFFFFFF) + 1
        n_ph += top < 64
        n_wraps += k if top == 127 else 0
        n_mk += (top >= 65) & (top <= 79)
    return n_ph, n_mk, 0, n_wraps


@numba.njit(**_cache)
def _scan_pt3(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    for i in range(records.size):
        r = np.int64(records[i])
        ch = r >> 28
        special = ch == 15
        ovf = special & (((r >> 16) & 0xFFF) == 0)
        n_ph += (ch >= 1) & (ch <= 4)
        n_wraps += ovf
        n_mk += special & (not ovf)
    return n_ph, n_mk, 0, n_wraps


@numba.njit(**_cache)
def _scan_t3r(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    for i in range(records.size):
        r = np.int64(records[i])
        ph = ((r >> 30) & 1) == 1
        data = (r >> 16) & 0xFFF
        ovf = (not ph) & ((data & 0x800) != 0)
        n_ph += ph
        n_wraps += ovf
        n_mk += (not ph) & (not ovf) & ((data & 7) != 0)
    return n_ph, n_mk, 0, n_wraps


@numba.njit(**_cache)
def _scan_hh_t2(records, mode):
    n_ph = 0
    n_mk = 0
    n_sy = 0
    n_wraps = 0
    for i in range(records.size):
        r = np.int64(records[i])
        top = r >> 25
        k = max(r & 0x1FFFFFF, 1) if mode == 0 else 1
        n_ph += top < 64
        n_wraps += k if top == 127 else 0
        n_sy += top == 64
        n_mk += (top >= 65) & (top <= 79)
    return n_ph, n_mk, n_sy, n_wraps


@numba.njit(**_cache)
def _scan_pt2(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    for i in range(records.size):
        r = np.int64(records[i])
        ch = r >> 28
        special = ch == 15
        ovf = special & ((r & 0xF) == 0)
        n_ph += ch <= 4
        n_wraps += ovf
        n_mk += special & (not ovf)
    return n_ph, n_mk, 0, n_wraps


# --------------------------------------------------------------------------- decode kernels
# The main loop is branch-free for photons and overflows (the overflow increment is a select,
# every record is stored at the photon cursor and the cursor advances only for photons); only
# markers, sync events and reserved codes take a branch. The stores of a non-photon record are
# overwritten by the next photon, so the main loop stops at the part's last photon and the
# trailing non-photon records are decoded by a branchy tail loop: a part never writes beyond its
# own photons (the parts of a chunk are decoded concurrently into one output array).


@numba.njit(**_cache)
def _decode_hh_t3(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """HydraHarp-family T3. Overflow records count: mode 0 (V2, TimeHarp 260, Generic) ``nsync``
    overflows, 0 meaning 1; mode 1 (HydraHarp V1) always one; mode 2 (SF-compressed legacy
    HT3, tttrlib's ``PQ_RECORD_TYPE_SF_HT3``) 1 + the low 24 bits."""
    end = records.size
    while end > 0 and records[end - 1] >= 0x80000000:
        end -= 1
    n_ph = 0
    n_mk = 0
    n_bad = 0
    n_back = 0
    last = np.int64(-1)
    for i in range(end):
        r = np.int64(records[i])
        top = r >> 25  # special bit and channel
        nsync = r & 1023
        if mode == 0:
            k = max(nsync, 1)
        elif mode == 1:
            k = 1
        else:
            k = (r & 0xFFFFFF) + 1
        ofl += (k << 10) if top == 127 else 0
        t = ofl + nsync
        ts_out[n_ph] = t
        det_out[n_ph] = top
        nt_out[n_ph] = (r >> 10) & 32767
        ph = top < 64
        n_back += ph & (t < last)
        last = t if ph else last
        if np.uint64(top - 64) < 63:  # special, not an overflow: rare
            if top >= 65 and top <= 79:
                mk_ts[n_mk] = t
                mk_bits[n_mk] = top - 64
                n_mk += 1
            else:
                n_bad += 1
        n_ph += ph
    for i in range(end, records.size):
        r = np.int64(records[i])
        top = r >> 25
        nsync = r & 1023
        if top == 127:
            if mode == 0:
                k = max(nsync, 1)
            elif mode == 1:
                k = 1
            else:
                k = (r & 0xFFFFFF) + 1
            ofl += k << 10
        elif top >= 65 and top <= 79:
            mk_ts[n_mk] = ofl + nsync
            mk_bits[n_mk] = top - 64
            n_mk += 1
        else:
            n_bad += 1
    return ofl, n_ph, n_mk, 0, n_bad, n_back


@numba.njit(**_cache)
def _decode_pt3(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """PicoHarp 300 T3: channels 1..4 are photons (dtime 0 is a valid photon)."""
    end = records.size
    while end > 0 and not 1 <= (records[end - 1] >> 28) <= 4:
        end -= 1
    n_ph = 0
    n_mk = 0
    n_bad = 0
    n_back = 0
    last = np.int64(-1)
    for i in range(end):
        r = np.int64(records[i])
        ch = r >> 28
        dtime = (r >> 16) & 0xFFF
        ofl += 65536 if (r >> 16) == 0xF000 else 0
        t = ofl + (r & 0xFFFF)
        ts_out[n_ph] = t
        det_out[n_ph] = ch - 1
        nt_out[n_ph] = dtime
        ph = np.uint64(ch - 1) < 4
        n_back += ph & (t < last)
        last = t if ph else last
        if not ph and (r >> 16) != 0xF000:  # marker or reserved channel: rare
            if ch == 15:
                mk_ts[n_mk] = t
                mk_bits[n_mk] = dtime & 0xF
                n_mk += 1
            else:
                n_bad += 1
        n_ph += ph
    for i in range(end, records.size):
        r = np.int64(records[i])
        ch = r >> 28
        if (r >> 16) == 0xF000:
            ofl += 65536
        elif ch == 15:
            mk_ts[n_mk] = ofl + (r & 0xFFFF)
            mk_bits[n_mk] = (r >> 16) & 0xF
            n_mk += 1
        else:
            n_bad += 1
    return ofl, n_ph, n_mk, 0, n_bad, n_back


@numba.njit(**_cache)
def _decode_t3r(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """TimeHarp 200 .t3r: valid bit 30, route bits 28-29, data 16-27, nsync 0-15."""
    end = records.size
    while end > 0 and not (records[end - 1] >> 30) & 1:
        end -= 1
    n_ph = 0
    n_mk = 0
    n_bad = 0
    n_back = 0
    last = np.int64(-1)
    for i in range(end):
        r = np.int64(records[i])
        data = (r >> 16) & 0xFFF
        ph = ((r >> 30) & 1) == 1
        ovf = (not ph) & ((data & 0x800) != 0)
        ofl += 65536 if ovf else 0
        t = ofl + (r & 0xFFFF)
        ts_out[n_ph] = t
        det_out[n_ph] = (r >> 28) & 3
        nt_out[n_ph] = data
        n_back += ph & (t < last)
        last = t if ph else last
        if not ph and not ovf:  # marker or invalid: rare
            if data & 7:
                mk_ts[n_mk] = t
                mk_bits[n_mk] = data & 7
                n_mk += 1
            else:
                n_bad += 1
        n_ph += ph
    for i in range(end, records.size):
        r = np.int64(records[i])
        data = (r >> 16) & 0xFFF
        if data & 0x800:
            ofl += 65536
        elif data & 7:
            mk_ts[n_mk] = ofl + (r & 0xFFFF)
            mk_bits[n_mk] = data & 7
            n_mk += 1
        else:
            n_bad += 1
    return ofl, n_ph, n_mk, 0, n_bad, n_back


@numba.njit(**_cache)
def _decode_hh_t2(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """HydraHarp-family T2. Overflow records: mode 0 (V2, TimeHarp 260, Generic) count x 2**25,
    0 meaning 1; mode 1 (HydraHarp V1) one overflow of 33,552,000 ticks."""
    end = records.size
    while end > 0 and records[end - 1] >= 0x80000000:
        end -= 1
    n_ph = 0
    n_mk = 0
    n_sy = 0
    n_bad = 0
    n_back = 0
    last = np.int64(-1)
    for i in range(end):
        r = np.int64(records[i])
        top = r >> 25
        tt = r & 0x1FFFFFF
        inc = (max(tt, 1) << 25) if mode == 0 else np.int64(33552000)
        ofl += inc if top == 127 else 0
        t = ofl + tt
        ts_out[n_ph] = t
        det_out[n_ph] = top
        ph = top < 64
        n_back += ph & (t < last)
        last = t if ph else last
        if np.uint64(top - 64) < 63:  # sync, marker or reserved code
            if top == 64:
                sync_out[n_sy] = t
                n_sy += 1
            elif top <= 79:
                mk_ts[n_mk] = t
                mk_bits[n_mk] = top - 64
                n_mk += 1
            else:
                n_bad += 1
        n_ph += ph
    for i in range(end, records.size):
        r = np.int64(records[i])
        top = r >> 25
        tt = r & 0x1FFFFFF
        if top == 127:
            ofl += (max(tt, 1) << 25) if mode == 0 else np.int64(33552000)
        elif top == 64:
            sync_out[n_sy] = ofl + tt
            n_sy += 1
        elif top <= 79:
            mk_ts[n_mk] = ofl + tt
            mk_bits[n_mk] = top - 64
            n_mk += 1
        else:
            n_bad += 1
    return ofl, n_ph, n_mk, n_sy, n_bad, n_back


@numba.njit(**_cache)
def _decode_pt2(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """PicoHarp 300 T2: overflow 210,698,240 ticks; channels 0..4 are photons."""
    end = records.size
    while end > 0 and (records[end - 1] >> 28) > 4:
        end -= 1
    n_ph = 0
    n_mk = 0
    n_bad = 0
    n_back = 0
    last = np.int64(-1)
    for i in range(end):
        r = np.int64(records[i])
        ch = r >> 28
        tt = r & 0x0FFFFFFF
        special = ch == 15
        ovf = special & ((r & 0xF) == 0)
        ofl += 210698240 if ovf else 0
        t = ofl + tt
        ts_out[n_ph] = t
        det_out[n_ph] = ch
        ph = ch <= 4
        n_back += ph & (t < last)
        last = t if ph else last
        if not ph and not ovf:  # marker or reserved channel: rare
            if special:
                mk_ts[n_mk] = ofl + (tt & ~np.int64(0xF))
                mk_bits[n_mk] = r & 0xF
                n_mk += 1
            else:
                n_bad += 1
        n_ph += ph
    for i in range(end, records.size):
        r = np.int64(records[i])
        ch = r >> 28
        tt = r & 0x0FFFFFFF
        if ch == 15 and (r & 0xF) == 0:
            ofl += 210698240
        elif ch == 15:
            mk_ts[n_mk] = ofl + (tt & ~np.int64(0xF))
            mk_bits[n_mk] = r & 0xF
            n_mk += 1
        else:
            n_bad += 1
    return ofl, n_ph, n_mk, 0, n_bad, n_back


# family -> (scan kernel, decode kernel, mode)
_KERNELS = {
    "ht3": (_scan_hh_t3, _decode_hh_t3, 0),
    "ht3v1": (_scan_hh_t3, _decode_hh_t3, 1),
    "ht3sf": (_scan_hh_t3, _decode_hh_t3, 2),
    "pt3": (_scan_pt3, _decode_pt3, 0),
    "t3r": (_scan_t3r, _decode_t3r, 0),
    "ht2": (_scan_hh_t2, _decode_hh_t2, 0),
    "ht2v1": (_scan_hh_t2, _decode_hh_t2, 1),
    "pt2": (_scan_pt2, _decode_pt2, 0),
}


@dataclass(frozen=True)
class ScanCounts:
    """What a run of records holds (from :func:`scan_chunk`)."""

    n_photons: int
    n_markers: int
    n_sync: int
    n_wraps: int  # overflows: the run advances the overflow accumulator by n_wraps * wrap


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
    scan, _, mode = _KERNELS[record_type.family]
    return ScanCounts(*(int(v) for v in scan(records, mode)))


def decode_chunk(record_type: RecordType, records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits,
                 sync_out) -> DecodeCounts:
    """Decode ``records`` with the kernel of ``record_type`` (see the module docstring).

    ``ofl`` is the overflow accumulator (ticks) before the first record. The output buffers
    must hold the counts :func:`scan_chunk` reports for ``records`` (``nt_out`` may be empty
    in T2, ``sync_out`` outside HydraHarp-family T2); nothing is written beyond them.
    """
    _, kernel, mode = _KERNELS[record_type.family]
    return DecodeCounts(*(int(v) for v in kernel(records, np.int64(ofl), ts_out, det_out,
                                                 nt_out, mk_ts, mk_bits, sync_out, mode)))
