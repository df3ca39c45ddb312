"""TTTR record types and their numba decoders (the only module that knows record bit layouts).

Every decoder has the same signature and decodes one chunk of 32-bit records, carrying the
overflow accumulator in and out so that chunked decoding equals whole-file decoding::

    kernel(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out)
        -> (ofl, n_photons, n_markers, n_sync, n_overflows, n_invalid, first_ts, sorted_ok)

``records`` uint32; ``ofl`` int64 overflow accumulator (ticks) before the first record;
``ts_out`` int64, ``det_out`` uint8, ``nt_out`` uint16 (unused in T2), ``mk_ts`` int64,
``mk_bits`` uint16 and ``sync_out`` int64 are output buffers at least ``records.size`` long.
``first_ts`` is the first photon's timestamp (-1 if none) and ``sorted_ok`` is False when a
photon time decreased inside the chunk (never for valid files).

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

__all__ = ["RecordType", "RECORD_TYPES", "record_type_from_code", "decode_chunk"]

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


# --------------------------------------------------------------------------- T3 kernels


@numba.njit(**_cache)
def _decode_hh_t3(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """HydraHarp-family T3. Overflow records count: mode 0 (V2, TimeHarp 260, Generic) ``nsync``
    overflows, 0 meaning 1; mode 1 (HydraHarp V1) always one; mode 2 (SF-compressed legacy
    HT3, tttrlib's ``PQ_RECORD_TYPE_SF_HT3``) 1 + the low 24 bits."""
    n_ph = 0
    n_mk = 0
    n_ovf = 0
    n_bad = 0
    last = np.int64(-1)
    ok = True
    for i in range(records.size):
        r = records[i]
        nsync = np.int64(r & 1023)
        ch = (r >> 25) & 63
        if r & 0x80000000:
            if ch == 63:
                if mode == 0:
                    k = nsync if nsync > 0 else np.int64(1)
                elif mode == 1:
                    k = np.int64(1)
                else:
                    k = np.int64(r & 0xFFFFFF) + 1
                ofl += 1024 * k
                n_ovf += k
            elif ch >= 1 and ch <= 15:
                mk_ts[n_mk] = ofl + nsync
                mk_bits[n_mk] = ch
                n_mk += 1
            else:
                n_bad += 1
        else:
            t = ofl + nsync
            if t < last:
                ok = False
            last = t
            ts_out[n_ph] = t
            det_out[n_ph] = ch
            nt_out[n_ph] = (r >> 10) & 32767
            n_ph += 1
    first = ts_out[0] if n_ph > 0 else np.int64(-1)
    return ofl, n_ph, n_mk, 0, n_ovf, n_bad, first, ok


@numba.njit(**_cache)
def _decode_pt3(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """PicoHarp 300 T3: channels 1..4 are photons (dtime 0 is a valid photon)."""
    n_ph = 0
    n_mk = 0
    n_ovf = 0
    n_bad = 0
    last = np.int64(-1)
    ok = True
    for i in range(records.size):
        r = records[i]
        nsync = np.int64(r & 0xFFFF)
        dtime = (r >> 16) & 0xFFF
        ch = (r >> 28) & 0xF
        if ch == 15:
            if dtime == 0:
                ofl += 65536
                n_ovf += 1
            else:
                mk_ts[n_mk] = ofl + nsync
                mk_bits[n_mk] = dtime & 0xF
                n_mk += 1
        elif ch >= 1 and ch <= 4:
            t = ofl + nsync
            if t < last:
                ok = False
            last = t
            ts_out[n_ph] = t
            det_out[n_ph] = ch - 1
            nt_out[n_ph] = dtime
            n_ph += 1
        else:
            n_bad += 1
    first = ts_out[0] if n_ph > 0 else np.int64(-1)
    return ofl, n_ph, n_mk, 0, n_ovf, n_bad, first, ok


@numba.njit(**_cache)
def _decode_t3r(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """TimeHarp 200 .t3r: valid bit 30, route bits 28-29, data 16-27, nsync 0-15."""
    n_ph = 0
    n_mk = 0
    n_ovf = 0
    n_bad = 0
    last = np.int64(-1)
    ok = True
    for i in range(records.size):
        r = records[i]
        nsync = np.int64(r & 0xFFFF)
        data = (r >> 16) & 0xFFF
        route = (r >> 28) & 3
        if (r >> 30) & 1:
            t = ofl + nsync
            if t < last:
                ok = False
            last = t
            ts_out[n_ph] = t
            det_out[n_ph] = route
            nt_out[n_ph] = data
            n_ph += 1
        elif data & 0x800:
            ofl += 65536
            n_ovf += 1
        elif data & 0x7:
            mk_ts[n_mk] = ofl + nsync
            mk_bits[n_mk] = data & 0x7
            n_mk += 1
        else:
            n_bad += 1
    first = ts_out[0] if n_ph > 0 else np.int64(-1)
    return ofl, n_ph, n_mk, 0, n_ovf, n_bad, first, ok


# --------------------------------------------------------------------------- T2 kernels


@numba.njit(**_cache)
def _decode_hh_t2(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """HydraHarp-family T2. Overflow records: mode 0 (V2, TimeHarp 260, Generic) count x 2**25,
    0 meaning 1; mode 1 (HydraHarp V1) one overflow of 33,552,000 ticks."""
    n_ph = 0
    n_mk = 0
    n_sy = 0
    n_ovf = 0
    n_bad = 0
    last = np.int64(-1)
    ok = True
    for i in range(records.size):
        r = records[i]
        tt = np.int64(r & 0x1FFFFFF)
        ch = (r >> 25) & 63
        if r & 0x80000000:
            if ch == 63:
                if mode == 0:
                    k = tt if tt > 0 else np.int64(1)
                    ofl += 33554432 * k
                else:
                    k = np.int64(1)
                    ofl += 33552000
                n_ovf += k
            elif ch == 0:
                sync_out[n_sy] = ofl + tt
                n_sy += 1
            elif ch <= 15:
                mk_ts[n_mk] = ofl + tt
                mk_bits[n_mk] = ch
                n_mk += 1
            else:
                n_bad += 1
        else:
            t = ofl + tt
            if t < last:
                ok = False
            last = t
            ts_out[n_ph] = t
            det_out[n_ph] = ch
            n_ph += 1
    first = ts_out[0] if n_ph > 0 else np.int64(-1)
    return ofl, n_ph, n_mk, n_sy, n_ovf, n_bad, first, ok


@numba.njit(**_cache)
def _decode_pt2(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    """PicoHarp 300 T2: overflow 210,698,240 ticks; channels 0..4 are photons."""
    n_ph = 0
    n_mk = 0
    n_ovf = 0
    n_bad = 0
    last = np.int64(-1)
    ok = True
    for i in range(records.size):
        r = records[i]
        tt = np.int64(r & 0x0FFFFFFF)
        ch = (r >> 28) & 0xF
        if ch == 15:
            m = tt & 0xF
            if m == 0:
                ofl += 210698240
                n_ovf += 1
            else:
                mk_ts[n_mk] = ofl + (tt & ~np.int64(0xF))
                mk_bits[n_mk] = m
                n_mk += 1
        elif ch <= 4:
            t = ofl + tt
            if t < last:
                ok = False
            last = t
            ts_out[n_ph] = t
            det_out[n_ph] = ch
            n_ph += 1
        else:
            n_bad += 1
    first = ts_out[0] if n_ph > 0 else np.int64(-1)
    return ofl, n_ph, n_mk, 0, n_ovf, n_bad, first, ok


# family -> (kernel, mode)
_KERNELS = {
    "ht3": (_decode_hh_t3, 0),
    "ht3v1": (_decode_hh_t3, 1),
    "ht3sf": (_decode_hh_t3, 2),
    "pt3": (_decode_pt3, 0),
    "t3r": (_decode_t3r, 0),
    "ht2": (_decode_hh_t2, 0),
    "ht2v1": (_decode_hh_t2, 1),
    "pt2": (_decode_pt2, 0),
}


def decode_chunk(record_type: RecordType, records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits,
                 sync_out):
    """Decode one chunk of records with the kernel of ``record_type`` (see module docstring)."""
    kernel, mode = _KERNELS[record_type.family]
    return kernel(records, np.int64(ofl), ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                  mode)
