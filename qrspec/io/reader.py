"""Public TTTR reading API: :func:`read_tttr`, :func:`iter_tttr`, :func:`read_header`.

The file is read in chunks of 32-bit records (a background thread reads the next chunk while
numba decodes the current one, with the GIL released), and the overflow accumulator is carried
from chunk to chunk, so chunked decoding equals whole-file decoding exactly and memory stays
bounded. :func:`read_tttr` decodes straight into preallocated output arrays: peak memory is the
output (11 bytes per T3 photon, 9 per T2 photon) plus two chunk buffers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from qrspec.errors import TTTRFormatError
from qrspec.io.layout import FileLayout
from qrspec.io.ptu_header import PTU_MAGIC, ptu_layout
from qrspec.io.records import decode_chunk
from qrspec.photons import Markers, Photons

__all__ = ["read_tttr", "iter_tttr", "read_header", "open_layout"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_RECORDS = 1 << 20  # 4 MiB of records per chunk
_MAX_TICKS = 1 << 62  # overflow ticks allowed: int64 headroom for the record's own time field


def open_layout(path) -> FileLayout:
    """Parse the header of a PTU or legacy (HT3/HT2/PT3/PT2/T3R) file.

    Raises
    ------
    TTTRFormatError
        When the file cannot be opened as a TTTR file; the message names file and problem.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except FileNotFoundError:
        raise TTTRFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise TTTRFormatError(path, "is a directory, not a TTTR file") from None
    except OSError as exc:
        raise TTTRFormatError(path, f"cannot open: {exc.strerror or exc}") from None
    with f:
        if size == 0:
            raise TTTRFormatError(path, "empty file (0 bytes)", 0)
        head = f.read(8)
        f.seek(0)
        if head == PTU_MAGIC or head.startswith(b"PQ"):
            layout = ptu_layout(path, f, size)
        else:
            from qrspec.io import legacy

            layout = legacy.parse_legacy(path, f, size)
    for w in layout.warnings:
        logger.warning("%s: %s", path, w)
    return layout


def read_header(path) -> dict:
    """Return all header tags/fields of a TTTR file as a dict in file order."""
    return open_layout(path).header


def _validate_channels(channels):
    if channels is None:
        return None
    ch = np.atleast_1d(np.asarray(channels))
    if ch.size == 0 or not np.issubdtype(ch.dtype, np.integer) or ch.min() < 0 or ch.max() > 255:
        raise ValueError(f"channels={channels!r} must be 0-based detector indices (0..255)")
    return ch.astype(np.int64)


def _record_chunks(layout: FileLayout, chunk_records: int):
    """Yield uint32 record arrays of at most ``chunk_records``; reads ahead in a thread."""
    n_total = layout.n_records
    if n_total == 0:
        return
    with open(layout.path, "rb") as f, ThreadPoolExecutor(1) as pool:
        f.seek(layout.data_offset)
        bufs = [np.empty(min(chunk_records, n_total), "<u4") for _ in range(2)]
        remaining = n_total

        def read_into(buf, n):
            view = buf[:n]
            got = f.readinto(memoryview(view).cast("B"))
            return view[: got // 4]

        n_next = min(chunk_records, remaining)
        fut = pool.submit(read_into, bufs[0], n_next)
        k = 0
        while remaining > 0:
            chunk = fut.result()
            remaining -= n_next
            if chunk.size < n_next:  # file shrank under us
                raise TTTRFormatError(layout.path, "file ended before the expected records "
                                      f"(got {chunk.size} of {n_next} in a chunk)")
            k ^= 1
            if remaining > 0:
                n_next = min(chunk_records, remaining)
                fut = pool.submit(read_into, bufs[k], n_next)
            yield chunk


class _Decoder:
    """Carries overflow state and sortedness across chunks."""

    def __init__(self, layout: FileLayout):
        self.layout = layout
        self.rt = layout.record_type
        self.ofl = 0
        self.last_ts = -1
        self.sorted_ok = True
        self.n_overflows = 0
        self.n_invalid = 0

    def decode(self, records, ts_out, det_out, nt_out):
        n = records.size
        mk_ts = np.empty(n, np.int64)
        mk_bits = np.empty(n, np.uint16)
        sync_out = np.empty(n if self.rt.mode == 2 else 0, np.int64)
        ofl, n_ph, n_mk, n_sy, n_ovf, n_bad, first, ok = decode_chunk(
            self.rt, records, self.ofl, ts_out, det_out, nt_out, mk_ts, mk_bits, sync_out)
        self.ofl = int(ofl)
        self.n_overflows += int(n_ovf)
        self.n_invalid += int(n_bad)
        if self.n_overflows * self.rt.wrap > _MAX_TICKS:
            # the int64 accumulator of the kernel wrapped (or is about to): corrupt overflow
            # records (e.g. every record a T2 overflow of 2**25 - 1 counts) must not decode
            # into negative, unsorted timestamps
            raise TTTRFormatError(self.layout.path, f"{self.n_overflows} time-tag overflows of "
                                  f"{self.rt.wrap} ticks exceed the int64 timestamp range "
                                  "(corrupt overflow records?)")
        if not ok or (n_ph and first < self.last_ts):
            self.sorted_ok = False
        if n_ph:
            self.last_ts = int(ts_out[n_ph - 1])
        return n_ph, mk_ts[:n_mk].copy(), mk_bits[:n_mk].copy(), sync_out[:n_sy].copy()

    def warnings(self) -> list[str]:
        out = list(self.layout.warnings)
        if self.n_invalid:
            out.append(f"{self.n_invalid} records with reserved/invalid channel codes skipped")
        if not self.sorted_ok:
            out.append("photon timestamps decrease somewhere in the file; photons were sorted "
                       "by time (stable)")
        return out


def _photons(layout, ts, det, nt, markers, sync, n_overflows, warnings) -> Photons:
    return Photons(
        timestamps=ts,
        timestamps_unit=layout.timestamps_unit,
        detectors=det,
        nanotimes=nt,
        nanotimes_unit=layout.nanotimes_unit,
        markers=markers,
        sync_timestamps=sync,
        header=layout.header,
        record_type=layout.record_type.name,
        measurement_mode=layout.mode,
        sync_rate_hz=layout.sync_rate_hz,
        acquisition_s=layout.acquisition_s,
        n_overflows=n_overflows,
        warnings=tuple(warnings),
        source=layout.path,
    )


def _check_chunk_records(chunk_records):
    if isinstance(chunk_records, bool) or not isinstance(chunk_records, int | np.integer) \
            or chunk_records < 1:
        raise ValueError(f"chunk_records={chunk_records!r} must be a positive integer")
    return int(chunk_records)


def iter_tttr(path, *, chunk_records: int = DEFAULT_CHUNK_RECORDS,
              channels=None) -> Iterator[Photons]:
    """Decode a TTTR file chunk by chunk, in bounded memory.

    Each yielded :class:`Photons` holds the photons of ``chunk_records`` consecutive records
    (possibly none) with absolute timestamps: the overflow state is carried across chunks, so
    concatenating the chunks equals :func:`read_tttr`. Markers and T2 sync events of a chunk are
    in its ``markers`` / ``sync_timestamps``.

    Parameters
    ----------
    path : str or Path
        PTU or legacy TTTR file.
    chunk_records : int
        Records per chunk (4 bytes each).
    channels : sequence of int, optional
        0-based detectors to keep.
    """
    chunk_records = _check_chunk_records(chunk_records)
    keep = _validate_channels(channels)
    layout = open_layout(path)
    dec = _Decoder(layout)
    t3 = layout.mode == 3
    for records in _record_chunks(layout, chunk_records):
        n = records.size
        ts = np.empty(n, np.int64)
        det = np.empty(n, np.uint8)
        nt = np.empty(n if t3 else 0, np.uint16)
        n_ph, mk_ts, mk_bits, sync = dec.decode(records, ts, det, nt)
        ts, det = ts[:n_ph].copy(), det[:n_ph].copy()
        nt = nt[:n_ph].copy() if t3 else None
        if keep is not None:
            m = np.isin(det, keep)
            ts, det = ts[m], det[m]
            nt = nt[m] if nt is not None else None
        yield _photons(layout, ts, det, nt, Markers(mk_ts, mk_bits), sync if not t3 else None,
                       dec.n_overflows, dec.warnings())


def read_tttr(path, *, channels=None, chunk_records: int = DEFAULT_CHUNK_RECORDS) -> Photons:
    """Read every photon of a PicoQuant TTTR file.

    Supports PTU files of every PicoQuant record type (PicoHarp 300, HydraHarp V1/V2,
    TimeHarp 260 N/P, MultiHarp / PicoHarp 330 "Generic", T2 and T3) and the legacy
    ``.ht3``/``.ht2``/``.pt3``/``.t3r`` containers.

    Parameters
    ----------
    path : str or Path
        The file.
    channels : sequence of int, optional
        0-based detectors to keep (default: all). Detectors are 0-based as decoded:
        HydraHarp-family input 1 -> 0; PicoHarp T3 channel 1 -> 0; PicoHarp T2 raw channel
        (0 is the sync input used as a detector).
    chunk_records : int
        Records decoded per chunk (memory/speed trade-off only; results do not depend on it).

    Returns
    -------
    Photons
        Photons with markers separated, T2 sync events in ``sync_timestamps``, all header tags
        in ``header`` and recoverable problems in ``warnings`` (also logged).

    Raises
    ------
    TTTRFormatError
        Unreadable, corrupt or unsupported file (message names file, offset and problem).
    """
    chunk_records = _check_chunk_records(chunk_records)
    keep = _validate_channels(channels)
    layout = open_layout(path)
    dec = _Decoder(layout)
    t3 = layout.mode == 3
    n_max = layout.n_records
    # np.empty of the upper bound: pages never written are never touched, so the unused tail
    # (overflow/marker records) costs address space, not memory
    ts = np.empty(n_max, np.int64)
    det = np.empty(n_max, np.uint8)
    nt = np.empty(n_max if t3 else 0, np.uint16)
    mk_ts, mk_bits, syncs = [], [], []
    n = 0
    for records in _record_chunks(layout, chunk_records):
        n_ph, m_ts, m_bits, sync = dec.decode(records, ts[n:], det[n:], nt[n:] if t3 else nt)
        n += n_ph
        if m_ts.size:
            mk_ts.append(m_ts)
            mk_bits.append(m_bits)
        if sync.size:
            syncs.append(sync)
    ts, det = ts[:n], det[:n]
    nt = nt[:n] if t3 else None
    if not dec.sorted_ok:
        order = np.argsort(ts, kind="stable")
        ts, det = ts[order], det[order]
        nt = nt[order] if nt is not None else None
    if keep is not None:
        m = np.isin(det, keep)
        ts, det = ts[m], det[m]
        nt = nt[m] if nt is not None else None
    markers = Markers(
        np.concatenate(mk_ts) if mk_ts else np.zeros(0, np.int64),
        np.concatenate(mk_bits) if mk_bits else np.zeros(0, np.uint16),
    )
    sync = None
    if not t3:
        sync = np.concatenate(syncs) if syncs else np.zeros(0, np.int64)
    warnings = dec.warnings()
    for w in warnings[len(layout.warnings):]:
        logger.warning("%s: %s", layout.path, w)
    return _photons(layout, ts, det, nt, markers, sync, dec.n_overflows, warnings)


def concat_chunks(chunks) -> Photons:
    """Concatenate :func:`iter_tttr` chunks into one :class:`Photons` (for tests and tools)."""
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no chunks to concatenate")
    first = chunks[-1]
    cat = np.concatenate
    nt = cat([c.nanotimes for c in chunks]) if first.nanotimes is not None else None
    sync = cat([c.sync_timestamps for c in chunks]) if first.sync_timestamps is not None else None
    markers = Markers(cat([c.markers.timestamps for c in chunks]),
                      cat([c.markers.bits for c in chunks]))
    return replace(first, timestamps=cat([c.timestamps for c in chunks]),
                   detectors=cat([c.detectors for c in chunks]), nanotimes=nt,
                   sync_timestamps=sync, markers=markers)

