"""Export photons to Photon-HDF5 (http://photon-hdf5.org) with phconvert's writer.

The file is written by :func:`phconvert.hdf5.save_photon_hdf5` (PyTables), which also validates
it against the Photon-HDF5 0.5 specification before :func:`export_photon_hdf5` renames it into
place. Setup and provenance come from the TTTR header:

=========================================  ===================================================
Photon-HDF5 field                          source
=========================================  ===================================================
``photon_data/timestamps``                 ``Photons.timestamps`` (int64, ticks)
``timestamps_specs/timestamps_unit``       ``Photons.timestamps_unit`` (T3: the sync period)
``photon_data/detectors``                  ``Photons.detectors`` (uint8, 0-based as decoded)
``photon_data/nanotimes`` (T3)             ``Photons.nanotimes`` (uint16)
``nanotimes_specs/tcspc_unit``             ``Photons.nanotimes_unit`` (``MeasDesc_Resolution``)
``nanotimes_specs/tcspc_num_bins``         whole bins in one sync period (at least max+1)
``nanotimes_specs/tcspc_range``            ``tcspc_num_bins * tcspc_unit``
``laser_repetition_rate(s)``               T3: ``TTResult_SyncRate`` (else 1/timestamps_unit);
                                           T2: the sync rate if sync events were recorded,
                                           else CW (``excitation_cw``) unless overridden
``measurement_type``                       ``"generic"``; every detector is one beam-split
                                           channel (``split_chK``): the HBT geometry
``acquisition_duration``                   time of the last recorded event since the start
``provenance/*``                           source file, ``File_CreatingTime``,
                                           ``CreatorSW_Name`` / ``CreatorSW_Version``
``/user/picoquant/header_json``            every header tag (JSON), plus record type
=========================================  ===================================================

Markers and T2 sync events are not photons. Photon-HDF5 0.5 has no marker field; it allows
either keeping them out of ``/photon_data`` (recommended by the spec: "it is preferable to remove
them from the data stream") or "non-photon IDs" in ``/photon_data/detectors`` listed in
``detectors_specs/non_photon_idN``. :func:`export_photon_hdf5` supports both (``markers=``):

* ``"user"`` (default): ``/photon_data`` holds only photons, so every Photon-HDF5 reader
  (FRETBursts, tttrlib, phconvert) sees exactly the photons. Markers go to
  ``/user/markers/timestamps`` (int64, same ticks as the photons) and ``/user/markers/bits``
  (uint16 bit mask, bit 0 = marker input 1); T2 sync events to ``/user/sync/timestamps``.
  Official readers ignore ``/user``.
* ``"non_photon_id"``: markers and sync events are merged into the photon stream in time order
  (nanotime 0) with detector ids ``64 + bits`` (markers) and ``64`` (T2 sync), the convention of
  phconvert's own PicoQuant loader. ``detectors_specs/non_photon_id1`` lists the marker ids,
  ``non_photon_id2`` the sync id, explained in ``/user/experimental_settings/non_photon_id``.
  Readers older than Photon-HDF5 0.5 would count them as photons.

phconvert's default compression (zlib level 6) costs about 4 s per 5 M photons; the default here
is zlib level 1 with the shuffle filter (standard HDF5 filters that every HDF5 reader decodes),
about 2.5 times faster and 8 % larger. ``compression="blosc"`` (lz4) is about 10 times faster
again, but only PyTables or readers with the Blosc HDF5 plugin can read it (h5py needs
``hdf5plugin``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import io
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from qrspec.errors import QrspecError
from qrspec.io.files import storable_text
from qrspec.photons import Photons

__all__ = ["export_photon_hdf5", "COMPRESSION", "MARKER_MODES", "NON_PHOTON_BASE_ID"]

logger = logging.getLogger(__name__)

#: compression name -> PyTables filter settings passed to phconvert
COMPRESSION = {
    "zlib": dict(complevel=1, complib="zlib", shuffle=True),
    "blosc": dict(complevel=5, complib="blosc:lz4", shuffle=True),
    "none": dict(complevel=0),
}
#: how markers / T2 sync events are stored (see the module docstring)
MARKER_MODES = ("user", "non_photon_id")
#: detector id of T2 sync events in ``markers="non_photon_id"`` mode; markers get ``64 + bits``
NON_PHOTON_BASE_ID = 64


def _phconvert_hdf5():
    """Import :mod:`phconvert.hdf5` without running ``phconvert/__init__``.

    ``import phconvert`` imports its PicoQuant reader, which compiles numba functions eagerly
    (6-13 s on this machine); the writer and validator in ``phconvert.hdf5`` need only PyTables.
    When phconvert is not imported yet, its submodules are loaded under a temporary stub
    package that is removed afterwards, so a later ``import phconvert`` runs normally and reuses
    the already loaded ``phconvert.hdf5``.
    """
    import importlib
    import importlib.util
    import sys
    import types

    mod = sys.modules.get("phconvert.hdf5")
    if mod is not None:
        return _fix_ordinals(mod)
    if "phconvert" in sys.modules:
        return _fix_ordinals(importlib.import_module("phconvert.hdf5"))
    spec = importlib.util.find_spec("phconvert")
    if spec is None or not spec.submodule_search_locations:
        raise QrspecError("Photon-HDF5 export needs phconvert (pip install phconvert)")
    stub = types.ModuleType("phconvert")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__spec__ = spec
    sys.modules["phconvert"] = stub
    try:
        return _fix_ordinals(importlib.import_module("phconvert.hdf5"))
    finally:
        if sys.modules.get("phconvert") is stub:
            del sys.modules["phconvert"]


def _fix_ordinals(mod):
    """Work around a phconvert 0.10 bug.

    The descriptions of ``split_chN`` fields look up the ordinal suffix of N by ``N`` instead of
    ``N % 10``, so the 11th..13th, 21st.. channel raised ``KeyError: 11`` (12 or more detectors,
    e.g. a MultiHarp). Completing its suffix table gives the right English ordinals for every
    detector id.
    """
    table = getattr(mod, "_NTH_suffix", None)
    if isinstance(table, dict) and 11 not in table:
        for n in range(4, 256):
            if n % 10 in (1, 2, 3):
                table[n] = "th" if n % 100 in (11, 12, 13) else table[n % 10]
    return mod


def _json_header(header: dict) -> str:
    def conv(v):
        if isinstance(v, _dt.datetime):
            return v.isoformat()
        if isinstance(v, bytes | bytearray):
            return {"base64": base64.b64encode(bytes(v)).decode("ascii")}
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        return str(v)

    return json.dumps(header, default=conv, ensure_ascii=False)


def _time_string(value) -> str | None:
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _first(header: dict, *names):
    for n in names:
        v = header.get(n)
        if v is not None and v != "":
            return v
    return None


def _load(photons_or_path) -> Photons:
    if isinstance(photons_or_path, Photons):
        return photons_or_path
    if isinstance(photons_or_path, str | os.PathLike):
        from qrspec.io import read_tttr

        return read_tttr(photons_or_path)  # TTTRFormatError (a QrspecError) names the file
    raise QrspecError(f"photons_or_path={type(photons_or_path).__name__} must be a Photons "
                      "object or the path of a TTTR file")


def _tcspc_num_bins(p: Photons) -> int:
    # whole bins in one sync period (200.0016 ns / 64 ps -> 3125), never fewer than max + 1
    top = int(p.nanotimes.max()) + 1 if p.size else 0
    return max(p.nanotime_bins_per_period, top)


def _laser_rate_hz(p: Photons, override) -> float:
    if override is not None:
        rate = float(override)
        if not (math.isfinite(rate) and rate >= 0):
            raise QrspecError(f"laser_repetition_rate_hz={override!r} must be >= 0 "
                              "(0 = CW excitation)")
        if p.is_t3 and rate == 0:
            raise QrspecError("laser_repetition_rate_hz=0 (CW) contradicts T3 data, which is "
                              "timed against a pulsed laser")
        return rate
    if p.is_t3:
        return float(p.sync_rate_hz) if p.sync_rate_hz > 0 else 1.0 / p.timestamps_unit
    # T2: pulsed only when the card recorded sync events (HydraHarp-family T2). A PicoHarp T2
    # "sync" is channel 0 of the photon stream and may carry photons, so it proves nothing.
    sync = p.sync_timestamps
    if sync is None or sync.size == 0:
        logger.info("T2 data without sync events: excitation written as CW "
                    "(pass laser_repetition_rate_hz to state a pulsed laser)")
        return 0.0
    if p.sync_rate_hz > 0:
        return float(p.sync_rate_hz)
    if sync.size >= 2 and sync[-1] > sync[0]:
        return (sync.size - 1) / ((int(sync[-1]) - int(sync[0])) * p.timestamps_unit)
    return 0.0


def _hardware_ids(record_type: str, ids, photon_ids):
    """Channel field of the raw records: 1-based in PicoHarp T3 records, 0-based elsewhere."""
    from qrspec.io.records import RECORD_TYPES

    rt = RECORD_TYPES.get(record_type)
    offset = 1 if rt is not None and rt.family == "pt3" else 0
    return np.where(np.isin(ids, photon_ids), ids + offset, ids)


def _event_stream(p: Photons, markers: str, photon_counts):
    """Photon-data arrays, detector ids/labels/counts and non-photon specs for the mode."""
    ts, det, nt = p.timestamps, p.detectors, p.nanotimes
    photon_ids = np.flatnonzero(photon_counts)
    counts = list(photon_counts[photon_ids])
    labels = [f"photon detector {d}" for d in photon_ids]
    non_photon = {}
    sync = p.sync_timestamps if p.sync_timestamps is not None else np.zeros(0, np.int64)
    mk = p.markers
    if markers == "user" or (mk.size == 0 and sync.size == 0):
        return ts, det, nt, photon_ids, np.asarray(counts, np.int64), labels, non_photon
    if photon_ids.size and photon_ids.max() >= NON_PHOTON_BASE_ID:
        raise QrspecError(f"markers='non_photon_id' needs photon detectors < "
                          f"{NON_PHOTON_BASE_ID}; got detector {int(photon_ids.max())}")
    if mk.size and (int(mk.bits.min()) < 1 or int(mk.bits.max()) > 255 - NON_PHOTON_BASE_ID):
        raise QrspecError(f"marker bits {int(mk.bits.min())}..{int(mk.bits.max())} do not fit "
                          f"detector ids {NON_PHOTON_BASE_ID}+bits <= 255")
    ev_ts = np.concatenate([ts, mk.timestamps.astype(np.int64), sync.astype(np.int64)])
    ev_det = np.concatenate([det, (mk.bits + NON_PHOTON_BASE_ID).astype(np.uint8),
                             np.full(sync.size, NON_PHOTON_BASE_ID, np.uint8)])
    kind = np.concatenate([np.zeros(ts.size, np.int8), np.ones(mk.size + sync.size, np.int8)])
    order = np.lexsort((kind, ev_ts))  # time order; photons before markers at equal times
    ev_nt = None
    if nt is not None:
        ev_nt = np.concatenate([nt, np.zeros(mk.size + sync.size, np.uint16)])[order]
    ids = list(photon_ids)
    if mk.size:
        marker_ids = np.unique(mk.bits).astype(np.int64) + NON_PHOTON_BASE_ID
        non_photon["non_photon_id1"] = (
            marker_ids, "PicoQuant marker records; detector id = 64 + marker bit mask "
                        "(bit 0 = marker input 1); nanotime 0")
        ids += list(marker_ids)
        counts += [int(np.count_nonzero(mk.bits == i - NON_PHOTON_BASE_ID)) for i in marker_ids]
        labels += [f"marker bits {int(i) - NON_PHOTON_BASE_ID}" for i in marker_ids]
    if sync.size:
        key = f"non_photon_id{len(non_photon) + 1}"
        non_photon[key] = (np.array([NON_PHOTON_BASE_ID]),
                           "T2 sync (laser) events recorded by the TCSPC card")
        ids.append(NON_PHOTON_BASE_ID)
        counts.append(int(sync.size))
        labels.append("T2 sync event")
    return (ev_ts[order], ev_det[order], ev_nt, np.asarray(ids, np.int64),
            np.asarray(counts, np.int64), labels, non_photon)


def _build_dict(p: Photons, *, markers, author, author_affiliation, sample_name, description,
                laser_repetition_rate_hz) -> tuple[dict, dict]:
    """The phconvert data dict and the titles of the /user nodes."""
    from qrspec import __version__

    header = p.header or {}
    photon_counts = p.counts_per_detector
    photon_ids = np.flatnonzero(photon_counts)
    ts, det, nt, ids, counts, labels, non_photon = _event_stream(p, markers, photon_counts)
    n_pix = int(photon_ids.size)
    det_dtype = det.dtype

    rate = _laser_rate_hz(p, laser_repetition_rate_hz)
    pulsed = rate > 0
    setup = dict(
        num_pixels=n_pix,
        num_spots=1,
        num_spectral_ch=1,
        num_polarization_ch=1,
        num_split_ch=max(n_pix, 1),
        modulated_excitation=False,
        excitation_alternated=[False],
        excitation_cw=[not pulsed],
        lifetime=p.is_t3,
        detectors=dict(
            id=ids.astype(det_dtype),
            id_hardware=_hardware_ids(p.record_type, ids, photon_ids).astype(det_dtype),
            counts=counts.astype(np.int64),
            label=np.array([s.encode() for s in labels]),
        ),
    )
    if pulsed:
        setup["laser_repetition_rates"] = [rate]

    det_specs = {}
    if n_pix > 1:
        for k, d in enumerate(photon_ids, start=1):
            det_specs[f"split_ch{k}"] = np.array([d], det_dtype)
    for key, (vals, _) in non_photon.items():
        det_specs[key] = vals.astype(det_dtype)
    meas_specs = dict(measurement_type="generic", detectors_specs=det_specs)
    if pulsed:
        meas_specs["laser_repetition_rate"] = rate

    photon_data = dict(
        timestamps=ts,
        timestamps_specs=dict(timestamps_unit=float(p.timestamps_unit)),
        detectors=det,
        measurement_specs=meas_specs,
    )
    if p.is_t3:
        n_bins = _tcspc_num_bins(p)
        photon_data["nanotimes"] = nt
        photon_data["nanotimes_specs"] = dict(
            tcspc_unit=float(p.nanotimes_unit), tcspc_num_bins=n_bins,
            tcspc_range=n_bins * float(p.nanotimes_unit))

    # acquisition duration: last recorded event since the start of the measurement (tick 0)
    last = [int(ts[-1])] if ts.size else [0]
    if p.markers.size:
        last.append(int(p.markers.timestamps.max()))
    if p.sync_timestamps is not None and p.sync_timestamps.size:
        last.append(int(p.sync_timestamps.max()))
    first = min(int(ts[0]) if ts.size else 0, 0)
    duration_s = (max(last) - first) * float(p.timestamps_unit)

    src = p.source
    src_name = storable_text(os.path.basename(src)) if src else None
    if description is None:
        comment = _first(header, "File_Comment", "Comment")
        description = (f"{p.record_type} T{p.measurement_mode} photon data"
                       + (f" from {src_name}" if src_name else "")
                       + f", exported by qrspec {__version__}"
                       + (f". File comment: {comment}" if comment else ""))

    data = dict(
        description=str(description),
        acquisition_duration=float(duration_s),
        photon_data=photon_data,
        setup=setup,
        identity={},
    )
    if author is not None:
        data["identity"]["author"] = str(author)
    if author_affiliation is not None:
        data["identity"]["author_affiliation"] = str(author_affiliation)
    if sample_name is not None:
        data["sample"] = dict(sample_name=str(sample_name))

    prov = {}
    created = _time_string(_first(header, "File_CreatingTime", "FileTime", "DateTime"))
    if created:
        prov["creation_time"] = created
    if src and os.path.isfile(src) and storable_text(src) == src:
        # phconvert fills filename, filename_full and modification_time from the file on disk
        prov["filename"] = os.path.abspath(src)
    elif src and (created or storable_text(src) != src):
        # a name with bytes that are not UTF-8 is stored with them as \xNN
        prov["filename"] = src_name
        prov["filename_full"] = storable_text(os.path.abspath(src))
    sw = _first(header, "CreatorSW_Name", "CreatorName")
    sw_version = _first(header, "CreatorSW_Version", "CreatorVersion")
    if sw is not None:
        prov["software"] = str(sw)
    if sw_version is not None:
        prov["software_version"] = str(sw_version)
    if "creation_time" in prov or "filename" in prov:
        data["provenance"] = prov  # phconvert warns when neither is known

    titles = {}
    user = {}
    if header:
        user["picoquant"] = dict(
            header_json=_json_header(header),
            record_type=str(p.record_type),
            hw_type=str(_first(header, "HW_Type", "Ident") or ""),
        )
        titles["/user/picoquant"] = "Metadata of the original PicoQuant file"
        titles["/user/picoquant/header_json"] = (
            "All header tags of the original file as JSON (indexed tags as name[idx])")
        titles["/user/picoquant/record_type"] = "TTTR record type decoded by qrspec"
        titles["/user/picoquant/hw_type"] = "TCSPC hardware (HW_Type tag)"
    if markers == "user":
        if p.markers.size:
            user["markers"] = dict(timestamps=p.markers.timestamps.astype(np.int64),
                                   bits=p.markers.bits.astype(np.uint16))
            titles["/user/markers"] = ("Marker records of the TCSPC card (not photons; "
                                       "Photon-HDF5 has no marker field)")
            titles["/user/markers/timestamps"] = (
                "Marker times in units of /photon_data/timestamps_specs/timestamps_unit")
            titles["/user/markers/bits"] = "Marker bit mask (bit 0 = marker input 1)"
        if p.sync_timestamps is not None and p.sync_timestamps.size:
            user["sync"] = dict(timestamps=p.sync_timestamps.astype(np.int64))
            titles["/user/sync"] = "T2 sync (laser) events recorded by the TCSPC card"
            titles["/user/sync/timestamps"] = (
                "Sync times in units of /photon_data/timestamps_specs/timestamps_unit")
    elif non_photon:
        expl = {f"id{key[len('non_photon_id'):]}": text
                for key, (_, text) in non_photon.items()}
        titles["/user/experimental_settings"] = "Explanation of the non-photon ids"
        titles["/user/experimental_settings/non_photon_id"] = (
            "idN explains detectors_specs/non_photon_idN")
        titles["/user/experimental_settings/non_photon_id_explanation"] = "How to use them"
        for key in expl:
            titles[f"/user/experimental_settings/non_photon_id/{key}"] = (
                f"Meaning of detectors_specs/non_photon_{key}")
        user["experimental_settings"] = dict(
            non_photon_id=expl,
            non_photon_id_explanation=(
                "Non-photon events (markers, T2 sync) are in /photon_data/detectors with the "
                "ids listed in detectors_specs/non_photon_idN; their nanotimes are 0."))
    user["qrspec"] = dict(version=str(__version__), marker_storage=markers)
    titles["/user/qrspec"] = "Export settings of qrspec"
    titles["/user/qrspec/version"] = "qrspec version that wrote this file"
    titles["/user/qrspec/marker_storage"] = (
        "'user': markers in /user/markers; 'non_photon_id': markers in /photon_data")
    titles["/user"] = "Data outside the Photon-HDF5 specification (ignored by its readers)"
    data["user"] = user
    return data, titles


def export_photon_hdf5(photons_or_path, out_path, *, overwrite: bool = False,
                       author: str | None = None, author_affiliation: str | None = None,
                       sample_name: str | None = None, description: str | None = None,
                       markers: str = "user", compression: str = "zlib",
                       laser_repetition_rate_hz: float | None = None) -> Path:
    """Write photons to a validated Photon-HDF5 file.

    The file is written by phconvert to a temp file next to ``out_path``
    (:func:`qrspec.io.atomic.atomic_output`), validated by phconvert, fsynced, read back
    (every dataset decodes and the photon arrays equal the exported ones: a full disk or any
    other write error is caught here even when PyTables does not report it) and renamed to
    ``out_path``; on any error the temp file is removed and ``out_path`` is untouched. The
    output never replaces the input file (compared by identity).

    Parameters
    ----------
    photons_or_path : Photons or str or Path
        Decoded photons (e.g. from :func:`qrspec.io.read_tttr`) or a TTTR file to read.
    out_path : str or Path
        Output ``.hdf5`` file.
    overwrite : bool
        Replace an existing ``out_path`` (default: refuse).
    author, author_affiliation : str, optional
        ``/identity/author`` and ``/identity/author_affiliation``.
    sample_name : str, optional
        ``/sample/sample_name``.
    description : str, optional
        ``/description``; default names record type, mode, source file and File_Comment.
    markers : {"user", "non_photon_id"}
        Where markers and T2 sync events go (see the module docstring): ``/user/markers`` and
        ``/user/sync`` (default; ``/photon_data`` then holds exactly the photons), or non-photon
        detector ids in ``/photon_data``.
    compression : {"zlib", "blosc", "none"}
        ``"zlib"``: deflate level 1 + shuffle (standard filters, any HDF5 reader);
        ``"blosc"``: lz4 + shuffle, fastest, needs PyTables or the Blosc HDF5 plugin to read;
        ``"none"``: uncompressed.
    laser_repetition_rate_hz : float, optional
        Override the laser repetition rate; 0 = CW (T2 only). Default: T3 uses
        ``Photons.sync_rate_hz`` (else ``1 / timestamps_unit``); T2 is pulsed at the sync rate
        (header, else measured from the sync events) when the card recorded sync events,
        and CW otherwise, because a PicoHarp T2 "sync" channel may carry photons.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    QrspecError
        Unreadable input (names the file), no photons, bad option, or a file that fails
        Photon-HDF5 validation.
    OutputError
        (a QrspecError) existing output without ``overwrite``, the output is the input, a
        folder or a device, missing output folder, or the file cannot be written (e.g. "No
        space left on device"); nothing is left behind.
    """
    from qrspec.io.atomic import atomic_output, check_output_path

    if markers not in MARKER_MODES:
        raise QrspecError(f"markers={markers!r} must be one of {MARKER_MODES}")
    if compression not in COMPRESSION:
        raise QrspecError(f"compression={compression!r} must be one of {tuple(COMPRESSION)}")
    inputs = [photons_or_path] if isinstance(photons_or_path, str | os.PathLike) else []
    out = check_output_path(out_path, inputs=inputs, overwrite=overwrite)
    p = _load(photons_or_path)
    if p.size == 0:
        raise QrspecError(f"{p.source or 'photons'}: no photons to export")
    if p.source:
        inputs.append(p.source)

    data, titles = _build_dict(p, markers=markers, author=author,
                               author_affiliation=author_affiliation, sample_name=sample_name,
                               description=description,
                               laser_repetition_rate_hz=laser_repetition_rate_hz)
    ph = _phconvert_hdf5()
    _fix_phconvert_ordinals(ph)
    pd = data["photon_data"]
    expected = {"photon_data/timestamps": pd["timestamps"],
                "photon_data/detectors": pd["detectors"]}
    if "nanotimes" in pd:
        expected["photon_data/nanotimes"] = pd["nanotimes"]

    def verify(tmp):
        _verify_written(tmp, expected)

    with atomic_output(out, verify=verify, inputs=inputs, overwrite=overwrite) as tmp:
        h5 = None
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # phconvert prints "Saving: ..."
                h5 = ph.save_photon_hdf5(data, h5_fname=str(tmp), overwrite=True,
                                         compression=dict(COMPRESSION[compression]),
                                         close=False, validate=True, warnings=False)
            _finish(h5, ph, out, titles)
            h5.close()
        except (ph.Invalid_PhotonHDF5, ValueError) as exc:
            raise QrspecError(f"{out}: phconvert could not write a valid Photon-HDF5 file: "
                              f"{exc}") from exc
        except RuntimeError as exc:  # PyTables' HDF5ExtError: e.g. a write that failed
            raise _hdf5_write_error(out, exc) from exc
        finally:
            if h5 is None:
                h5 = data.get("_data_file")
            if h5 is not None and h5.isopen:
                with contextlib.suppress(Exception):
                    h5.close()
    logger.info("%s: wrote %d photons (%s, markers=%s)", out, p.size, compression, markers)
    return out


def _fix_phconvert_ordinals(ph) -> None:
    """Work around a phconvert bug.

    The title of ``split_ch11`` (and 12, 13, 21, 22, ...) looks up ``_NTH_suffix[n]`` where
    ``_NTH_suffix[n % 10]`` was meant, a KeyError for files with more than 10 detectors (e.g. a
    MultiHarp with 12 inputs). Adding the missing ordinal suffixes ("11th", "21st") to its table
    makes the lookup succeed with the right English.
    """
    table = getattr(ph, "_NTH_suffix", None)
    if not isinstance(table, dict):
        return
    for n in range(11, 1000):
        if n % 10 in (1, 2, 3) and n not in table:
            table[n] = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}[n % 10]


def _verify_written(path, expected: dict, block_bytes: int = 1 << 26) -> None:
    """Read the written file back with PyTables (which also reads blosc).

    Every array decodes, and the ``expected`` ones (the photon arrays) equal what was exported,
    block by block.
    """
    import tables

    expected = dict(expected)
    with tables.open_file(str(path), "r") as h5:
        for leaf in h5.walk_nodes("/", "Leaf"):
            name = leaf._v_pathname.lstrip("/")
            want = expected.pop(name, None)
            if not leaf.shape:
                leaf.read()
                continue
            if want is not None and tuple(leaf.shape) != np.shape(want):
                raise ValueError(f"{name}: shape {leaf.shape} != {np.shape(want)} exported")
            row = max(leaf.dtype.itemsize * int(np.prod(leaf.shape[1:], dtype=np.int64)), 1)
            step = max(block_bytes // row, 1)
            for i in range(0, leaf.shape[0], step):
                got = leaf.read(i, i + step)
                if want is not None and not np.array_equal(got, want[i:i + step]):
                    raise ValueError(f"{name}: rows from {i} differ from the exported photons")
    if expected:
        raise ValueError(f"arrays {sorted(expected)} are missing")


def _hdf5_write_error(out: Path, exc: Exception):
    """An :class:`~qrspec.errors.OutputError` from a PyTables/HDF5 error.

    It carries the system error HDF5 reports (``error message = 'No space left on device'``) when
    there is one.
    """
    import re

    from qrspec.errors import OutputError

    m = re.search(r"error message = '([^']*)'", str(exc))
    reason = m.group(1) if m else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return OutputError(out, f"HDF5 write failed: {reason}")


def _finish(h5, ph, out: Path, titles: dict) -> None:
    """Name the final file in /identity (phconvert saw ``.partial``) and title /user nodes."""
    for name, value in (("filename", storable_text(out.name)),
                        ("filename_full", storable_text(str(out.resolve())))):
        path = f"/identity/{name}"
        if path in h5:
            h5.remove_node(path)
        h5.create_array("/identity", name, obj=value.encode(),
                        title=ph._spec_dict.get_descr(path))
    for path, title in titles.items():
        if path in h5:
            h5.get_node(path)._f_setattr("TITLE", title)
    h5.flush()
