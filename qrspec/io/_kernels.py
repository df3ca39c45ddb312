"""Numba kernels of the TTTR records: scan, decode (see :mod:`qrspec.io.records`) and encode.

Imported lazily by :mod:`qrspec.io.records` and :mod:`qrspec.io.writer`, so that reading headers
and summarising files (``qrspec info``) never imports numba. Kernels take arrays and return
counts; the wrappers in ``records.py`` / ``writer.py`` validate.
"""

from __future__ import annotations

import numba
import numba.extending
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
    """Decode HydraHarp-family T3 records.

    Overflow records count: mode 0 (V2, TimeHarp 260, Generic) ``nsync`` overflows, 0 meaning 1;
    mode 1 (HydraHarp V1) always one; mode 2 (SF-compressed legacy HT3, tttrlib's
    ``PQ_RECORD_TYPE_SF_HT3``) 1 + the low 24 bits.
    """
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
    """Decode HydraHarp-family T2 records.

    Overflow records: mode 0 (V2, TimeHarp 260, Generic) count x 2**25, 0 meaning 1; mode 1
    (HydraHarp V1) one overflow of 33,552,000 ticks.
    """
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


# --------------------------------------------------------------------------- vector decode
# The scalar kernels above decode about 4 CPU cycles per record (a HydraHarp T3 photon: 3 stores,
# ~25 instructions, several loop-carried values). The vector kernels below decode 8 records per
# step with AVX-512 (measured on 50 M HydraHarp T3 photons, one thread, output pages already
# faulted in: 0.99 against 3.1 ns per record): one 32-byte load;
# photon/overflow masks and fields with vector integer operations; the overflow increments summed
# across the 8 lanes by a 3-step prefix sum; the photons packed to the front with a compress
# (``vpcompressq``/``vpcompressd``) and stored with plain 64/16/8-byte stores at the photon
# cursor. A group holding a marker, a sync event or a reserved code (rare) is decoded by the
# family's scalar kernel instead, as is the part's tail.
#
# The group stores always write 8 lanes at the cursor (lanes past the group's photons hold
# filler, overwritten by the next group): the group loop stops while 8 slots remain, so a part
# never writes beyond its own photons (parts of a chunk decode concurrently into one array).
#
# Compress is native with AVX-512 F + VL only; elsewhere LLVM expands it into slow code, so the
# scalar kernels are used there (``vector_decode_supported``). The kernels are written as numba
# intrinsics (LLVM IR built with llvmlite) because numba does not SLP-vectorise and its loop
# vectoriser cannot pack a data-dependent output cursor.

FAM_HT3, FAM_HT3V1, FAM_HT3SF, FAM_PT3, FAM_T3R, FAM_HT2, FAM_HT2V1, FAM_PT2 = range(8)
_T2_FAMILIES = (FAM_HT2, FAM_HT2V1, FAM_PT2)
_G = 8  # records per vector step


def vector_decode_supported() -> bool:
    """True when numba compiles for a CPU with AVX-512 F and VL (native compress).

    Reads the features numba's JIT targets (``NUMBA_CPU_FEATURES`` when set, e.g. ``""`` with
    ``NUMBA_CPU_NAME=generic`` for a portable cache; else the host's, with AVX removed under
    ``NUMBA_ENABLE_AVX=0``), not the host's alone. numba keys its on-disk cache by target
    triple, CPU name and this feature string, so a cached AVX-512 build is never loaded on a
    CPU without AVX-512; such a CPU gets the scalar kernels.
    """
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    feats = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    have = {f[1:] for f in str(feats).split(",") if f.startswith("+")}
    return {"avx512f", "avx512vl"} <= have


def _group_ir(fam, builder, v, ofl, last):
    """LLVM IR of one step over the 8 records ``v`` (<8 x i32>) of family ``fam``.

    Returns ``(photon mask, other mask, packed times <8 x i64>, packed records <8 x i32>, ofl
    after the group, n photons, last photon time, n photons earlier than the photon before)``;
    "other" marks records that are neither photons nor overflows.
    """
    from llvmlite import ir

    i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
    v32, v64 = ir.VectorType(i32, _G), ir.VectorType(i64, _G)

    def c32(x):
        return ir.Constant(v32, [x] * _G)

    def c64(x):
        return ir.Constant(v64, [x] * _G)

    def ult(a, b):
        return builder.icmp_unsigned("<", a, b)

    def eq(a, b):
        return builder.icmp_unsigned("==", a, b)

    def call(name, ret, *args):
        fnty = ir.FunctionType(ret, [a.type for a in args])
        fn = builder.module.globals.get(name)
        if fn is None:
            fn = ir.Function(builder.module, fnty, name=name)
        return builder.call(fn, list(args))

    def splat(x):
        ins = builder.insert_element(ir.Constant(v64, ir.Undefined), x, ir.Constant(i32, 0))
        return builder.shuffle_vector(ins, ir.Constant(v64, ir.Undefined),
                                      ir.Constant(v32, [0] * _G))

    def bits(mask):  # <8 x i1> -> i8
        return builder.bitcast(mask, i8)

    top = builder.lshr(v, c32(25))
    ch = builder.lshr(v, c32(28))
    if fam in (FAM_HT3, FAM_HT3V1, FAM_HT3SF, FAM_HT2, FAM_HT2V1):
        ph = ult(top, c32(64))
        ovf = eq(top, c32(127))
        field = builder.and_(v, c32(1023 if fam in (FAM_HT3, FAM_HT3V1, FAM_HT3SF)
                                    else 0x1FFFFFF))
        if fam == FAM_HT3 or fam == FAM_HT2:  # count of overflows, 0 meaning 1
            k = builder.select(eq(field, c32(0)), c32(1), field)
            k = builder.shl(builder.zext(k, v64), c64(10 if fam == FAM_HT3 else 25))
        elif fam == FAM_HT3SF:
            k = builder.add(builder.and_(v, c32(0xFFFFFF)), c32(1))
            k = builder.shl(builder.zext(k, v64), c64(10))
        else:
            k = c64(1024 if fam == FAM_HT3V1 else 33552000)
    elif fam == FAM_PT3:
        ph = ult(builder.sub(ch, c32(1)), c32(4))
        ovf = eq(builder.lshr(v, c32(16)), c32(0xF000))
        field = builder.and_(v, c32(0xFFFF))
        k = c64(65536)
    elif fam == FAM_T3R:
        ph = eq(builder.and_(builder.lshr(v, c32(30)), c32(1)), c32(1))
        data_ovf = builder.icmp_unsigned("!=", builder.and_(v, c32(0x800 << 16)), c32(0))
        ovf = builder.and_(builder.not_(ph), data_ovf)
        field = builder.and_(v, c32(0xFFFF))
        k = c64(65536)
    elif fam == FAM_PT2:
        ph = ult(ch, c32(5))
        ovf = builder.and_(eq(ch, c32(15)), eq(builder.and_(v, c32(0xF)), c32(0)))
        field = builder.and_(v, c32(0x0FFFFFFF))
        k = c64(210698240)
    else:  # pragma: no cover - guarded by the typer
        raise ValueError(f"unknown family code {fam}")
    other = builder.not_(builder.or_(ph, ovf))
    inc = builder.select(ovf, k, c64(0))
    zero = c64(0)
    for s in (1, 2, 4):  # inclusive prefix sum over the lanes
        shifted = builder.shuffle_vector(
            inc, zero, ir.Constant(v32, [_G + j if j < s else j - s for j in range(_G)]))
        inc = builder.add(inc, shifted)
    t = builder.add(builder.add(splat(ofl), inc), builder.zext(field, v64))
    ofl_after = builder.add(ofl, builder.extract_element(inc, ir.Constant(i32, _G - 1)))
    big = c64((1 << 63) - 1)  # filler: never earlier than a photon
    tc = call("llvm.experimental.vector.compress.v8i64", v64, t, ph, big)
    vc = call("llvm.experimental.vector.compress.v8i32", v32, v, ph, c32(0))
    n = builder.zext(call("llvm.ctpop.i8", i8, bits(ph)), i64)
    prev = builder.shuffle_vector(tc, splat(last), ir.Constant(v32, [_G] + list(range(_G - 1))))
    n_back = builder.zext(call("llvm.ctpop.i8", i8, bits(builder.icmp_signed("<", tc, prev))),
                          i64)
    has = builder.icmp_unsigned("!=", n, ir.Constant(i64, 0))
    idx = builder.select(has, builder.trunc(builder.sub(n, ir.Constant(i64, 1)), i32),
                         ir.Constant(i32, 0))
    last_after = builder.select(has, builder.extract_element(tc, idx), last)
    any_other = builder.icmp_unsigned("!=", bits(other), ir.Constant(i8, 0))
    del i1
    return ph, any_other, tc, vc, ofl_after, n, last_after, n_back


def _vector_group_typer(typingctx, records, i, ofl, ts_out, det_out, nt_out, n, last, fam):
    from numba import types
    from numba.core.errors import TypingError

    if not isinstance(fam, types.IntegerLiteral):
        raise TypingError(f"family code must be a literal, got {fam}")
    arrays = {"records": (records, types.uint32), "ts_out": (ts_out, types.int64),
              "det_out": (det_out, types.uint8), "nt_out": (nt_out, types.uint16)}
    for name, (ty, dtype) in arrays.items():
        if not (isinstance(ty, types.Array) and ty.ndim == 1 and ty.layout == "C"
                and ty.dtype == dtype):
            raise TypingError(f"{name} must be a C-contiguous 1-d {dtype} array, got {ty}")
    fam_code = fam.literal_value
    sig = types.UniTuple(types.int64, 4)(records, types.intp, types.int64, ts_out, det_out,
                                         nt_out, types.intp, types.int64, fam)

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        rec, i_, ofl_, ts, det, nt, n_, last_, _ = args
        arr = [context.make_array(signature.args[k])(context, builder, a)
               for k, a in ((0, rec), (3, ts), (4, det), (5, nt))]
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)

        def vptr(a, idx, elem):
            return builder.bitcast(builder.gep(a.data, [idx], inbounds=True),
                                   ir.VectorType(elem, _G).as_pointer())

        v = builder.load(vptr(arr[0], i_, i32), align=4)
        _, any_other, tc, vc, ofl_after, n_ph, last_after, n_back = _group_ir(
            fam_code, builder, v, ofl_, last_)
        v32 = ir.VectorType(i32, _G)
        builder.store(tc, vptr(arr[1], n_, i64), align=8)
        if fam_code == FAM_PT3:
            det_v = builder.sub(builder.lshr(vc, ir.Constant(v32, [28] * _G)),
                                ir.Constant(v32, [1] * _G))
        elif fam_code == FAM_T3R:
            det_v = builder.and_(builder.lshr(vc, ir.Constant(v32, [28] * _G)),
                                 ir.Constant(v32, [3] * _G))
        elif fam_code == FAM_PT2:
            det_v = builder.lshr(vc, ir.Constant(v32, [28] * _G))
        else:
            det_v = builder.lshr(vc, ir.Constant(v32, [25] * _G))
        builder.store(builder.trunc(det_v, ir.VectorType(i8, _G)), vptr(arr[2], n_, i8),
                      align=1)
        if fam_code not in _T2_FAMILIES:
            shift, mask = (10, 32767) if fam_code in (FAM_HT3, FAM_HT3V1, FAM_HT3SF) \
                else (16, 0xFFF)
            nt_v = builder.and_(builder.lshr(vc, ir.Constant(v32, [shift] * _G)),
                                ir.Constant(v32, [mask] * _G))
            builder.store(builder.trunc(nt_v, ir.VectorType(i16, _G)), vptr(arr[3], n_, i16),
                          align=2)
        sel = builder.select
        out = [sel(any_other, ofl_, ofl_after), sel(any_other, n_, builder.add(n_, n_ph)),
               sel(any_other, last_, last_after),
               sel(any_other, ir.Constant(i64, -1), n_back)]
        return context.make_tuple(builder, signature.return_type, out)

    return sig, codegen


_vector_group = numba.extending.intrinsic(prefer_literal=True)(_vector_group_typer)
_vector_group.__doc__ = """Decode 8 records at ``i`` into the outputs at photon cursor ``n``:
``(ofl, n, last, n_backwards)`` after them, or ``n_backwards`` = -1 (nothing consumed) when the
group holds a record that is neither a photon nor an overflow."""


@numba.njit(inline="always")
def _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode, fam,
                   scalar):
    """Decode groups of 8 records by :func:`_vector_group`, the rest by the scalar kernel.

    A group holding a marker, a sync event or a reserved code, and the records after the last whole
    group (or once fewer than 8 output slots remain), go to the family's ``scalar`` kernel on
    slices of the records and outputs (C-contiguous slices: the scalar kernel's compiled version is
    reused; no second copy of the record logic).
    """
    nrec = records.size
    n_out = ts_out.size
    n_ph = 0
    n_mk = 0
    n_sy = 0
    n_bad = 0
    n_back = 0
    last = np.int64(-1)
    i = 0
    while i < nrec:
        stop = nrec
        if i + _G <= nrec and n_ph + _G <= n_out:
            o2, n2, l2, nb = _vector_group(records, i, ofl, ts_out, det_out, nt_out, n_ph, last,
                                           fam)
            if nb >= 0:
                ofl, n_ph, last = o2, n2, l2
                n_back += nb
                i += _G
                continue
            stop = i + _G
        ofl, k_ph, k_mk, k_sy, k_bad, k_back = scalar(
            records[i:stop], ofl, ts_out[n_ph:], det_out[n_ph:], nt_out[n_ph:], mk_ts[n_mk:],
            mk_bits[n_mk:], sync_out[n_sy:], mode)
        if k_ph > 0:  # the scalar kernel starts with no previous photon: compare across
            n_back += k_back + (ts_out[n_ph] < last)
            last = ts_out[n_ph + k_ph - 1]
        n_ph += k_ph
        n_mk += k_mk
        n_sy += k_sy
        n_bad += k_bad
        i = stop
    return ofl, n_ph, n_mk, n_sy, n_bad, n_back


# One compiled kernel per record family (the family code is a compile-time constant of the
# intrinsic); same signature as the scalar kernels (``mode`` is implied by the family).


@numba.njit(**_cache)
def _vdecode_ht3(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_HT3, _decode_hh_t3)


@numba.njit(**_cache)
def _vdecode_ht3v1(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_HT3V1, _decode_hh_t3)


@numba.njit(**_cache)
def _vdecode_ht3sf(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_HT3SF, _decode_hh_t3)


@numba.njit(**_cache)
def _vdecode_pt3(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_PT3, _decode_pt3)


@numba.njit(**_cache)
def _vdecode_t3r(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_T3R, _decode_t3r)


@numba.njit(**_cache)
def _vdecode_ht2(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_HT2, _decode_hh_t2)


@numba.njit(**_cache)
def _vdecode_ht2v1(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_HT2V1, _decode_hh_t2)


@numba.njit(**_cache)
def _vdecode_pt2(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out, mode):
    return _decode_vector(records, ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out,
                          mode, FAM_PT2, _decode_pt2)


# family -> (scan kernel, scalar decode kernel, mode, vector decode kernel)
KERNELS = {
    "ht3": (_scan_hh_t3, _decode_hh_t3, 0, _vdecode_ht3),
    "ht3v1": (_scan_hh_t3, _decode_hh_t3, 1, _vdecode_ht3v1),
    "ht3sf": (_scan_hh_t3, _decode_hh_t3, 2, _vdecode_ht3sf),
    "pt3": (_scan_pt3, _decode_pt3, 0, _vdecode_pt3),
    "t3r": (_scan_t3r, _decode_t3r, 0, _vdecode_t3r),
    "ht2": (_scan_hh_t2, _decode_hh_t2, 0, _vdecode_ht2),
    "ht2v1": (_scan_hh_t2, _decode_hh_t2, 1, _vdecode_ht2v1),
    "pt2": (_scan_pt2, _decode_pt2, 0, _vdecode_pt2),
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
