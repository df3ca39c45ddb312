"""Numba kernels of the TTTR records: scan, decode (see :mod:`qrspec.io.records`) and encode.

Imported lazily by :mod:`qrspec.io.records` and :mod:`qrspec.io.writer`, so that reading headers
and summarising files (``qrspec info``) never imports numba. Kernels take arrays and return
counts; the wrappers in ``records.py`` / ``writer.py`` validate.
"""

from __future__ import annotations

import numba
import numpy as np

_cache = {"cache": True, "nogil": True, "boundscheck": False}


# --------------------------------------------------------------------------- scan kernels
# One read-only pass: what a part of the records holds, so that the parts of a chunk can be
# decoded in parallel straight into the final arrays (starting overflow state and output
# offsets are prefix sums of these counts).


@numba.njit(**_cache)
def _scan_hh_t3(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    n_bad = 0
    n_zero = 0
    prev = np.int64(-1)
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
        n_bad += (top == 64) | ((top >= 80) & (top <= 126))
        n_zero += (r | prev) == 0
        prev = r
    return n_ph, n_mk, 0, n_wraps, n_bad, n_zero


@numba.njit(**_cache)
def _scan_pt3(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    n_bad = 0
    n_zero = 0
    prev = np.int64(-1)
    for i in range(records.size):
        r = np.int64(records[i])
        ch = r >> 28
        special = ch == 15
        ovf = special & (((r >> 16) & 0xFFF) == 0)
        n_ph += (ch >= 1) & (ch <= 4)
        n_wraps += ovf
        n_mk += special & (not ovf)
        n_bad += (ch == 0) | ((ch >= 5) & (ch <= 14))
        n_zero += (r | prev) == 0
        prev = r
    return n_ph, n_mk, 0, n_wraps, n_bad, n_zero


@numba.njit(**_cache)
def _scan_t3r(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    n_bad = 0
    n_zero = 0
    prev = np.int64(-1)
    for i in range(records.size):
        r = np.int64(records[i])
        ph = ((r >> 30) & 1) == 1
        data = (r >> 16) & 0xFFF
        ovf = (not ph) & ((data & 0x800) != 0)
        n_ph += ph
        n_wraps += ovf
        n_mk += (not ph) & (not ovf) & ((data & 7) != 0)
        n_bad += (not ph) & (not ovf) & ((data & 7) == 0)
        n_zero += (r | prev) == 0
        prev = r
    return n_ph, n_mk, 0, n_wraps, n_bad, n_zero


@numba.njit(**_cache)
def _scan_hh_t2(records, mode):
    n_ph = 0
    n_mk = 0
    n_sy = 0
    n_wraps = 0
    n_bad = 0
    n_zero = 0
    prev = np.int64(-1)
    for i in range(records.size):
        r = np.int64(records[i])
        top = r >> 25
        k = max(r & 0x1FFFFFF, 1) if mode == 0 else 1
        n_ph += top < 64
        n_wraps += k if top == 127 else 0
        n_sy += top == 64
        n_mk += (top >= 65) & (top <= 79)
        n_bad += (top >= 80) & (top <= 126)
        n_zero += (r | prev) == 0
        prev = r
    return n_ph, n_mk, n_sy, n_wraps, n_bad, n_zero


@numba.njit(**_cache)
def _scan_pt2(records, mode):
    n_ph = 0
    n_mk = 0
    n_wraps = 0
    n_bad = 0
    n_zero = 0
    prev = np.int64(-1)
    for i in range(records.size):
        r = np.int64(records[i])
        ch = r >> 28
        special = ch == 15
        ovf = special & ((r & 0xF) == 0)
        n_ph += ch <= 4
        n_wraps += ovf
        n_mk += special & (not ovf)
        n_bad += (ch >= 5) & (ch <= 14)
        n_zero += (r | prev) == 0
        prev = r
    return n_ph, n_mk, 0, n_wraps, n_bad, n_zero


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
KERNELS = {
    "ht3": (_scan_hh_t3, _decode_hh_t3, 0),
    "ht3v1": (_scan_hh_t3, _decode_hh_t3, 1),
    "ht3sf": (_scan_hh_t3, _decode_hh_t3, 2),
    "pt3": (_scan_pt3, _decode_pt3, 0),
    "t3r": (_scan_t3r, _decode_t3r, 0),
    "ht2": (_scan_hh_t2, _decode_hh_t2, 0),
    "ht2v1": (_scan_hh_t2, _decode_hh_t2, 1),
    "pt2": (_scan_pt2, _decode_pt2, 0),
}


# --------------------------------------------------------------------------- encoder


@numba.njit(cache=True, nogil=True)
def encode(times, kinds, values, nts, family, wrap, max_ovf, out):
    """Write records for time-sorted events; kinds 0 photon, 1 marker, 2 sync; returns count."""
    n = 0
    wraps = np.int64(0)  # number of overflows written so far
    for i in range(times.size):
        t = times[i]
        need = t // wrap
        while wraps < need:
            k = need - wraps
            if k > max_ovf:
                k = max_ovf
            if family == 0:
                out[n] = 0x80000000 | (63 << 25) | k
            elif family == 1:
                out[n] = 0x80000000 | (63 << 25)
            elif family == 2:
                out[n] = 15 << 28
            elif family == 3:
                out[n] = 0x800 << 16
            elif family == 4:
                out[n] = 0x80000000 | (63 << 25) | k
            elif family == 5:
                out[n] = 0x80000000 | (63 << 25)
            elif family == 6:
                out[n] = 15 << 28
            else:
                out[n] = 0xFE000000 | (k - 1)
            n += 1
            wraps += k
        tt = np.uint32(t - wraps * wrap)
        kind = kinds[i]
        v = np.uint32(values[i])
        if family <= 1 or family == 7:  # HydraHarp-family T3
            if kind == 0:
                out[n] = (v << 25) | (np.uint32(nts[i]) << 10) | tt
            else:
                out[n] = 0x80000000 | (v << 25) | tt
        elif family == 2:  # PicoHarp T3
            if kind == 0:
                out[n] = ((v + 1) << 28) | (np.uint32(nts[i]) << 16) | tt
            else:
                out[n] = (15 << 28) | (v << 16) | tt
        elif family == 3:  # TimeHarp 200 t3r
            if kind == 0:
                out[n] = (1 << 30) | (v << 28) | (np.uint32(nts[i]) << 16) | tt
            else:
                out[n] = (v << 16) | tt
        elif family == 4 or family == 5:  # HydraHarp-family T2
            if kind == 0:
                out[n] = (v << 25) | tt
            elif kind == 1:
                out[n] = 0x80000000 | (v << 25) | tt
            else:
                out[n] = 0x80000000 | tt
        else:  # PicoHarp T2
            if kind == 0:
                out[n] = (v << 28) | tt
            else:
                out[n] = (15 << 28) | (tt & 0x0FFFFFF0) | (v & 0xF)
        n += 1
    return n
