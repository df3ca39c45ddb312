"""Public TTTR reading API.

:func:`read_tttr`, :func:`iter_tttr`, :func:`read_header`, :func:`summarize_tttr`.

The file is read in chunks of 32-bit records: a background thread reads the next chunk and scans
it (photon, marker, sync and overflow counts of each part of the chunk) while the current chunk
is decoded, its parts in parallel threads (numba kernels release the GIL), each straight into its
place in the output: the prefix sums of the scans give every part its overflow state and output
offsets. The overflow accumulator is carried from chunk to chunk, so chunked and parallel
decoding equal whole-file decoding exactly, and memory stays bounded. :func:`read_tttr` decodes
into preallocated output arrays: peak memory is the output (11 bytes per T3 photon, 9 per T2
photon) plus two chunk buffers (measured: 11.75 bytes per photon above the fixed cost of the
interpreter, numpy and numba, ``scripts/bench_read.py``). Threads: ``decode_threads()``.

Sanity: records a valid file cannot hold make the file corrupt beyond
:func:`corrupt_tolerance`, checked before each chunk is decoded (see
``Photons.n_invalid_records``); only regular files are opened
(:func:`qrspec.io.files.open_regular`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from qrspec.errors import QrspecError, TTTRFormatError
from qrspec.io.files import open_regular
from qrspec.io.layout import FileLayout
from qrspec.io.ptu_header import PTU_MAGIC, ptu_layout
from qrspec.io.records import decode_chunk, scan_chunk
from qrspec.photons import Markers, Photons

__all__ = ["read_tttr", "iter_tttr", "read_header", "open_layout", "summarize_tttr", "TTTRSummary"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_RECORDS = 1 << 20  # iter_tttr: 4 MiB of records per chunk
READ_CHUNK_RECORDS = 1 << 22  # read_tttr: 16 MiB per chunk (fewer hand-offs between threads)
_MAX_TICKS = 1 << 62  # overflow ticks allowed: int64 headroom for the record's own time field


def _open_for_reading(path):
    """Open a TTTR file: a regular file only (a FIFO or device would hang the reader)."""
    return open_regular(path, TTTRFormatError, "TTTR file")


def open_layout(path) -> FileLayout:
    """Parse the header of a PTU or legacy (HT3/HT2/PT3/PT2/T3R) file.

    Raises
    ------
    TTTRFormatError
        When the file cannot be opened as a TTTR file; the message names file and problem.
    """
    path = os.fspath(path)
    f = _open_for_reading(path)
    with f:
        size = os.fstat(f.fileno()).st_size
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


def _record_chunks(layout: FileLayout, chunk_records: int, prepare=None):
    """Yield ``(records, prepare(records))`` for uint32 record arrays of at most ``chunk_records``.

    A thread reads (and prepares) the next chunk while the caller decodes this one. The two record
    buffers are reused: a chunk is valid until the next is yielded.
    """
    n_total = layout.n_records
    if n_total == 0:
        return
    with _open_for_reading(layout.path) as f, ThreadPoolExecutor(1) as pool:
        f.seek(layout.data_offset)
        bufs = [np.empty(min(chunk_records, n_total), "<u4") for _ in range(2)]
        remaining = n_total

        def read_into(buf, n):
            view = buf[:n]
            got = f.readinto(memoryview(view).cast("B"))
            view = view[: got // 4]
            if view.size < n:  # file shrank under us
                return view, None
            return view, prepare(view) if prepare is not None else None

        n_next = min(chunk_records, remaining)
        fut = pool.submit(read_into, bufs[0], n_next)
        k = 0
        while remaining > 0:
            chunk, prepared = fut.result()
            remaining -= n_next
            if chunk.size < n_next:
                raise TTTRFormatError(layout.path, "file ended before the expected records "
                                      f"(got {chunk.size} of {n_next} in a chunk)")
            k ^= 1
            if remaining > 0:
                n_next = min(chunk_records, remaining)
                fut = pool.submit(read_into, bufs[k], n_next)
            yield chunk, prepared


_MIN_PART_RECORDS = 1 << 17  # below this, a chunk is decoded by one thread


def decode_threads() -> int:
    """Threads used to decode one file.

    The CPUs this process may use, at most 4 (decoding is bound by memory bandwidth beyond that).
    ``QRSPEC_DECODE_THREADS`` overrides it.
    """
    env = os.environ.get("QRSPEC_DECODE_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise QrspecError(f"QRSPEC_DECODE_THREADS={env!r} must be a positive integer") \
                from None
        if n < 1:
            raise QrspecError(f"QRSPEC_DECODE_THREADS={env!r} must be a positive integer")
        return n
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _overflow_error(layout: FileLayout, wraps: int) -> TTTRFormatError:
    # corrupt overflow records (e.g. every record a T2 overflow of 2**25 - 1 counts) would
    # wrap the int64 accumulator into negative, unsorted timestamps
    return TTTRFormatError(layout.path, f"{wraps} time-tag overflows of "
                           f"{layout.record_type.wrap} ticks exceed the int64 timestamp range "
                           "(corrupt overflow records?)")


def corrupt_tolerance(n_records: int) -> int:
    """Invalid records tolerated in a file of ``n_records`` (see ``Photons.n_invalid_records``).

    Every real file we have (15 files, 7 record types, 5 writers) has none; random records
    after a valid header give about one in three (reserved codes alone); a zero-filled region
    gives all zero records. A few are tolerated (flagged) so that a single damaged record does
    not lose a long measurement.
    """
    return max(16, n_records // 10_000)


class _Decoder:
    """Carries overflow state, counts and sortedness across chunks.

    Decodes each chunk in parallel parts (scan, prefix sums, decode) straight into the caller's
    output arrays, and refuses the file as corrupt as soon as its invalid records exceed the
    tolerance (so that garbage never grows the output).
    """

    def __init__(self, layout: FileLayout, pool: ThreadPoolExecutor | None, n_parts: int):
        self.layout = layout
        self.rt = layout.record_type
        self.pool = pool
        self.n_parts = n_parts
        self.tolerance = corrupt_tolerance(layout.n_records)
        self.ofl = 0
        self.last_ts = -1
        self.n_wraps = 0
        self.n_records = 0  # decoded so far
        self.n_invalid = 0  # reserved codes
        self.n_zero = 0  # all-zero records following an all-zero record
        self.last_record = -1  # value of the last record decoded
        self.n_backwards = 0  # photons earlier than the photon before them
        self.n_off_detector = 0  # photons on detectors the header does not list

    @property
    def n_overflows(self) -> int:
        return self.n_wraps

    @property
    def n_invalid_records(self) -> int:
        return self.n_invalid + self.n_zero + self.n_backwards + self.n_off_detector

    def _map(self, fn, items):
        """``[fn(x) for x in items]``, the first in this thread and the rest in the pool."""
        if self.pool is None or len(items) == 1:
            return [fn(x) for x in items]
        futures = [self.pool.submit(fn, x) for x in items[1:]]
        first = fn(items[0])
        return [first] + [f.result() for f in futures]

    def plan(self, records):
        """Split ``records`` into parts and scan them (thread-safe: no decoder state)."""
        n = records.size
        k = self.n_parts if n >= 2 * _MIN_PART_RECORDS else 1
        bounds = [n * i // k for i in range(k + 1)]
        parts = [records[bounds[i]:bounds[i + 1]] for i in range(k)]
        return parts, [scan_chunk(self.rt, p) for p in parts]

    def _check(self, n_invalid, n_zero, n_backwards, n_records):
        _check_corrupt(self.layout, n_invalid, n_zero, n_backwards, n_records)

    def decode(self, records, plan=None, ts_out=None, det_out=None, nt_out=None):
        """Decode ``records`` into the start of ``ts_out``, ``det_out``, ``nt_out``.

        ``records`` are split and scanned by :meth:`plan` when ``plan`` is None; the output arrays
        are made of the exact photon count when not given. Returns the photon views and the markers
        and sync events: ``(ts, det, nt, mk_ts, mk_bits, sync)``.
        """
        parts, scans = plan if plan is not None else self.plan(records)
        rt = self.rt
        n_invalid = self.n_invalid + sum(s.n_invalid for s in scans)
        # repeated all-zero records (scans count the pairs inside each part)
        n_zero = self.n_zero + sum(s.n_zero for s in scans)
        prev = self.last_record
        for p in parts:
            if p.size:
                n_zero += prev == 0 and int(p[0]) == 0
                prev = int(p[-1])
        n_records = self.n_records + records.size
        self._check(n_invalid, n_zero, self.n_backwards, n_records)
        wraps = self.n_wraps + sum(s.n_wraps for s in scans)
        if wraps * rt.wrap > _MAX_TICKS:
            raise _overflow_error(self.layout, wraps)
        n_mk = sum(s.n_markers for s in scans)
        n_sy = sum(s.n_sync for s in scans)
        mk_ts = np.empty(n_mk, np.int64)
        mk_bits = np.empty(n_mk, np.uint16)
        sync = np.empty(n_sy, np.int64)
        t3 = rt.mode == 3
        if ts_out is None:
            n_ph = sum(s.n_photons for s in scans)
            ts_out = np.empty(n_ph, np.int64)
            det_out = np.empty(n_ph, np.uint8)
            nt_out = np.empty(n_ph if t3 else 0, np.uint16)
        limit = self.layout.detector_limit
        jobs = []  # (records, overflow accumulator, photon, marker and sync offsets, scan)
        ofl, ph, mk, sy = self.ofl, 0, 0, 0
        for p, s in zip(parts, scans, strict=True):
            jobs.append((p, ofl, ph, mk, sy, s))
            ofl += s.n_wraps * rt.wrap
            ph += s.n_photons
            mk += s.n_markers
            sy += s.n_sync

        def run(job):
            p, ofl0, o, m, y, s = job
            e = o + s.n_photons
            r = decode_chunk(rt, p, ofl0, ts_out[o:e], det_out[o:e],
                             nt_out[o:e] if t3 else nt_out, mk_ts[m:m + s.n_markers],
                             mk_bits[m:m + s.n_markers], sync[y:y + s.n_sync])
            off = 0
            if limit is not None and e > o and int(det_out[o:e].max()) >= limit:
                off = int(np.count_nonzero(det_out[o:e] >= limit))
            return r, off

        results = self._map(run, jobs)
        n_back = self.n_backwards
        for (_, _, o, _, _, s), (r, off) in zip(jobs, results, strict=True):
            if (r.n_photons, r.n_markers, r.n_sync, r.n_invalid) != \
                    (s.n_photons, s.n_markers, s.n_sync, s.n_invalid):
                raise RuntimeError(f"decoder scan/decode mismatch in {rt.name}: {s} vs {r}")
            n_back += r.n_backwards
            self.n_off_detector += off
            if s.n_photons:
                prev = int(ts_out[o - 1]) if o > 0 else self.last_ts
                n_back += int(ts_out[o]) < prev
        self._check(n_invalid, n_zero, n_back, n_records)
        self.n_invalid, self.n_zero, self.n_backwards = n_invalid, n_zero, n_back
        self.n_records = n_records
        self.last_record = prev
        self.ofl = ofl
        self.n_wraps = wraps
        if ph:
            self.last_ts = int(ts_out[ph - 1])
        return ts_out[:ph], det_out[:ph], nt_out[:ph] if t3 else None, mk_ts, mk_bits, sync

    @property
    def sorted_ok(self) -> bool:
        return self.n_backwards == 0

    def warnings(self) -> list[str]:
        return _warnings(self.layout, self.n_invalid, self.n_zero, self.n_off_detector,
                         self.n_backwards, sorted_by_reader=True)


def _check_corrupt(layout: FileLayout, n_invalid, n_zero, n_backwards, n_records):
    """Raise the "corrupt" TTTRFormatError when the invalid records exceed the tolerance."""
    tol = corrupt_tolerance(layout.n_records)
    if n_invalid + n_zero + n_backwards <= tol:
        return
    raise TTTRFormatError(
        layout.path,
        f"corrupt {layout.record_type.name} records: {n_invalid} with reserved codes, {n_zero} "
        f"repeated all-zero records (a zero-filled region) and {n_backwards} photons earlier "
        f"than the photon before them in the first {n_records} of {layout.n_records} records "
        f"(at most {tol} are tolerated; a valid file has none)")


def _warnings(layout: FileLayout, n_invalid, n_zero, n_off, n_backwards,
              sorted_by_reader: bool) -> list[str]:
    out = list(layout.warnings)
    if n_invalid:
        out.append(f"{n_invalid} records with reserved/invalid channel codes skipped")
    if n_zero:
        out.append(f"{n_zero} repeated all-zero records (a zero-filled region?) decoded as "
                   "photons on detector 0")
    if n_off:
        out.append(f"{n_off} photons on detectors >= {layout.detector_limit}, which the header "
                   "does not list")
    if n_backwards:
        out.append(f"photon timestamps decrease {n_backwards} times in the file"
                   + ("; photons were sorted by time (stable)" if sorted_by_reader else ""))
    return out


@contextmanager
def _decoder(layout: FileLayout, chunk_records: int):
    """A :class:`_Decoder` with a thread pool sized for the file's chunks."""
    n_threads = decode_threads()
    if n_threads > 1 and min(chunk_records, layout.n_records) >= 2 * _MIN_PART_RECORDS:
        with ThreadPoolExecutor(n_threads - 1, thread_name_prefix="qrspec-decode") as pool:
            yield _Decoder(layout, pool, n_threads)
    else:
        yield _Decoder(layout, None, 1)


def _photons(layout, ts, det, nt, markers, sync, n_overflows, n_invalid, warnings) -> Photons:
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
        n_invalid_records=n_invalid,
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
    t3 = layout.mode == 3
    with _decoder(layout, chunk_records) as dec:
        for records, plan in _record_chunks(layout, chunk_records, dec.plan):
            ts, det, nt, mk_ts, mk_bits, sync = dec.decode(records, plan)
            if keep is not None:
                m = np.isin(det, keep)
                ts, det = ts[m], det[m]
                nt = nt[m] if nt is not None else None
            yield _photons(layout, ts, det, nt, Markers(mk_ts, mk_bits),
                           sync if not t3 else None, dec.n_overflows, dec.n_invalid_records,
                           dec.warnings())


def read_tttr(path, *, channels=None, chunk_records: int = READ_CHUNK_RECORDS) -> Photons:
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
    t3 = layout.mode == 3
    n_max = layout.n_records
    # np.empty of the upper bound: pages never written are never touched, so the unused tail
    # (overflow/marker records) costs address space, not memory
    ts = np.empty(n_max, np.int64)
    det = np.empty(n_max, np.uint8)
    nt = np.empty(n_max if t3 else 0, np.uint16)
    mk_ts, mk_bits, syncs = [], [], []
    n = 0
    with _decoder(layout, chunk_records) as dec:
        for records, plan in _record_chunks(layout, chunk_records, dec.plan):
            c_ts, _, _, m_ts, m_bits, sync = dec.decode(records, plan, ts[n:], det[n:],
                                                        nt[n:] if t3 else nt)
            n += c_ts.size
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
    return _photons(layout, ts, det, nt, markers, sync, dec.n_overflows, dec.n_invalid_records,
                    warnings)


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



@dataclass(frozen=True, eq=False)
class TTTRSummary:
    """What a TTTR file holds, counted without decoding photons (:func:`summarize_tttr`).

    Attributes
    ----------
    layout : FileLayout
        Header, record type and units.
    n_photons : int
    counts_per_detector : dict of int to int
        Photons per 0-based detector (detectors with photons only).
    n_markers : int
    markers_per_input : dict of int to int
        Marker records in which input k (1-based) fired.
    n_sync : int or None
        T2 sync events (None in T3).
    n_overflows : int
    n_invalid_records : int
        As ``Photons.n_invalid_records``.
    first_ts, last_ts : int
        First and last photon times in ticks (-1 without photons).
    warnings : tuple of str
        As ``Photons.warnings`` (the reader would sort backwards photons; this says so).
    """

    layout: FileLayout
    n_photons: int
    counts_per_detector: dict
    n_markers: int
    markers_per_input: dict
    n_sync: int | None
    n_overflows: int
    n_invalid_records: int
    first_ts: int
    last_ts: int
    warnings: tuple

    @property
    def duration_s(self) -> float:
        """First to last photon in seconds, as ``Photons.duration_s`` (0 below 2 photons)."""
        if self.n_photons < 2:
            return 0.0
        return float(self.last_ts - self.first_ts) * self.layout.timestamps_unit


def summarize_tttr(path, *, chunk_records: int = DEFAULT_CHUNK_RECORDS) -> TTTRSummary:
    """Count photons per detector, markers, sync events and overflows of a TTTR file (numpy only).

    No numba: ``qrspec info`` starts in a fraction of a second.

    The counts equal those of :func:`read_tttr`, which applies the same corruption checks.

    Raises
    ------
    TTTRFormatError
        As :func:`read_tttr`.
    """
    from qrspec.io.records import summarize_chunk

    chunk_records = _check_chunk_records(chunk_records)
    layout = open_layout(path)
    rt = layout.record_type
    counts = np.zeros(256, np.int64)
    bits = np.zeros(16, np.int64)
    n_ph = n_mk = n_sy = wraps = n_inv = n_zero = n_back = n_rec = 0
    first, last, prev = -1, -1, -1
    for records, _ in _record_chunks(layout, chunk_records):
        try:
            c = summarize_chunk(rt, records, wraps * rt.wrap, last, prev, _MAX_TICKS)
        except OverflowError as exc:
            raise _overflow_error(layout, wraps + exc.args[0]) from None
        n_rec += records.size
        n_inv += c.n_invalid
        n_zero += c.n_zero
        n_back += c.n_backwards
        _check_corrupt(layout, n_inv, n_zero, n_back, n_rec)
        counts += c.counts_per_detector
        bits += c.marker_bit_counts
        n_ph += c.n_photons
        n_mk += c.n_markers
        n_sy += c.n_sync
        wraps += c.n_wraps
        if c.n_photons:
            first = c.first_ts if first < 0 else first
            last = c.last_ts if c.last_ts > last else last
        prev = c.last_record
    if n_back:  # the reader sorts: first and last of the sorted photons
        first, last = _sorted_first_last(layout, chunk_records)
    limit = layout.detector_limit
    n_off = int(counts[limit:].sum()) if limit is not None else 0
    return TTTRSummary(
        layout=layout,
        n_photons=n_ph,
        counts_per_detector={int(d): int(counts[d]) for d in np.flatnonzero(counts)},
        n_markers=n_mk,
        markers_per_input={int(k) + 1: int(bits[k]) for k in np.flatnonzero(bits)},
        n_sync=n_sy if layout.mode == 2 else None,
        n_overflows=wraps,
        n_invalid_records=n_inv + n_zero + n_back + n_off,
        first_ts=first,
        last_ts=last,
        warnings=tuple(_warnings(layout, n_inv, n_zero, n_off, n_back, sorted_by_reader=True)),
    )


def _sorted_first_last(layout: FileLayout, chunk_records: int) -> tuple[int, int]:
    """Minimum and maximum photon time (files whose photons go back in time: a few, flagged)."""
    from qrspec.io.records import _fields

    rt = layout.record_type
    lo, hi, ofl = None, None, 0
    for records, _ in _record_chunks(layout, chunk_records):
        r = records.astype(np.int64)
        ph, _, field, ovf, k, *_ = _fields(rt.family, r)
        cum = np.cumsum(np.where(ovf, k, 0))
        t = ofl + cum[ph] * rt.wrap + field[ph]
        if t.size:
            lo = int(t.min()) if lo is None else min(lo, int(t.min()))
            hi = int(t.max()) if hi is None else max(hi, int(t.max()))
        ofl += (int(cum[-1]) if cum.size else 0) * rt.wrap
    return (-1, -1) if lo is None else (lo, hi)
