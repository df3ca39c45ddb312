"""HDF5 results: per-particle files, the merged batch file, reading back, CSV of the summary.

Layout of a results file (``format = "qrspec-results"``, ``format_version = "2"``)::

    /  attrs: format, format_version, qrspec_version, created_utc, config (JSON)
    /summary      compound, one row per particle (columns: qrspec.store.summary.SUMMARY_COLUMNS);
                  attrs units / columns (JSON: column -> units / description)
    /groups       compound, per-group statistics (qrspec.store.summary.group_statistics)
    /particles/<particle_id>/   attrs: the ParticleAnalysis identity fields
        trajectory/, alignment/, g2/{raw,gated}/, levels/segments/, states/{neutral,charged}/,
        flid/, tau_xx/, charging/windows/   one group per stage (ParticleAnalysis field)

Inside a stage group every array field is a dataset (chunked and gzip-compressed above 64 KiB)
with ``units`` and ``description`` attributes; tuples are 1-d datasets; scalars and short
strings are attributes of the group, described by its ``units`` and ``descriptions`` attributes
(JSON); a nested result is a subgroup; a field that is None is absent. Units and descriptions
come from :mod:`qrspec.store.schema`. NaN stands for an undefined value.

Writing is crash-safe (:mod:`qrspec.io.atomic`): a temp file in the target folder, fsynced,
reopened and read back, then renamed; on any error (disk full included) the temp file is
removed and :class:`~qrspec.errors.OutputError` names the file and the cause.

Reading is safe against crafted files: external links, soft links, external storage and virtual
datasets are refused, sizes are checked against :data:`MAX_SUMMARY_ROWS` and
:data:`MAX_DATASET_BYTES` before anything is read, and particle ids must be sanitised names
(never a path).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import re
import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import numpy as np

from qrspec.analysis.particle import STAGES, ParticleAnalysis
from qrspec.errors import OutputError, QrspecError
from qrspec.io.files import storable_text
from qrspec.store.schema import FIELD_DOCS, IDENTITY_DOCS
from qrspec.store.summary import (
    SUMMARY_COLUMNS,
    group_statistics,
    summary_dtype,
    summary_row,
)

__all__ = ["write_particle_file", "merge_results", "merge_results_from", "read_results",
           "read_particle", "Results", "GroupSelection", "recompute_groups",
           "export_summary_csv", "copy_particle_to_part",
           "completed_particles", "valid_particle_id", "FORMAT",
           "MODEL_FORMAT", "FORMAT_VERSION", "MAX_SUMMARY_ROWS", "MAX_DATASET_BYTES"]

FORMAT = "qrspec-results"
FORMAT_VERSION = "2"
MODEL_FORMAT = "qrspec-model"  # tables of `qrspec model` (qrspec.store.tables): not results
MAX_SUMMARY_ROWS = 100_000  # a batch is ~250 particles; 100 k rows of /summary are ~150 MB
MAX_DATASET_BYTES = 1 << 30  # one stored array; the grids are capped far below (issue 13)
_COMPRESS_BYTES = 1 << 16  # arrays above this are chunked and compressed
_ATTR_STR_MAX = 1024  # longer strings are datasets (HDF5 object headers are capped at 64 KiB)


def _version() -> str:
    from qrspec import __version__

    return __version__


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else ("" if v is None else str(v))


def _verify(kind: str):
    """Verification of a written temp file.

    Readable HDF5 of the right format, every dataset read back
    (:func:`qrspec.io.atomic.verify_h5`).
    """
    def verify(tmp):
        import h5py

        from qrspec.io.atomic import verify_h5

        verify_h5(tmp)
        with h5py.File(tmp, "r") as f:
            if _text(f.attrs.get("format")) != kind:
                raise OSError(f"written file does not read back as {kind}")
    return verify


@contextmanager
def atomic_h5(path, kind: str = FORMAT, *, inputs=(), overwrite: bool = True):
    """Write an HDF5 file of format ``kind`` crash-safely and yield the open h5py file.

    Uses :func:`qrspec.io.atomic.atomic_h5`: temp file in the target folder, fsync, verify, rename.
    Any error, also one inside HDF5 (an attribute too large, a type h5py cannot store), is an
    :class:`~qrspec.errors.OutputError` naming the file and the cause; nothing is left.
    """
    from qrspec.io import atomic

    path = Path(path)
    try:
        with atomic.atomic_h5(path, verify=_verify(kind), inputs=inputs,
                              overwrite=overwrite) as out:
            try:
                yield out.file
            except (RuntimeError, ValueError, TypeError, KeyError) as exc:
                if isinstance(exc, QrspecError):
                    raise
                raise OutputError(path, _cause(exc)) from exc
    except OSError as exc:  # not turned into OutputError by atomic (e.g. raised by h5py)
        raise OutputError(path, _cause(exc), exc.errno) from exc


def _root_attrs(f, config_json: str, kind: str = FORMAT):
    f.attrs["format"] = kind
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["qrspec_version"] = _version()
    f.attrs["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["config"] = config_json


def _write_summary(f, rows: np.ndarray):
    ds = f.create_dataset("summary", data=rows)
    ds.attrs["units"] = json.dumps({n: u for n, _, u, _ in SUMMARY_COLUMNS})
    ds.attrs["description"] = "one row per particle; column descriptions in attr 'columns'"
    ds.attrs["columns"] = json.dumps({n: d for n, _, _, d in SUMMARY_COLUMNS})


def _write_groups(f, rows, selection=None):
    """``/groups`` of ``rows``.

    ``selection`` (:class:`GroupSelection`) restricts the statistics to a particle filter's rows
    without the excluded particles and adds the pooled dwell laws.
    """
    sel = selection or GroupSelection()
    mask = sel.mask(rows)
    pooled = _pooled_dwell(f, rows, mask) if sel.pooled_dwell else None
    ds = f.create_dataset("groups", data=group_statistics(rows, selected=mask, pooled=pooled))
    ds.attrs["units"] = "as the summary column of the same name"
    ds.attrs["description"] = ("per-group statistics over particles with status ok (and "
                               "selected by the filter): count, mean, median and standard error "
                               "of the mean of each column; pooled dwell-time laws")
    expr = "" if sel.particle_filter is None else sel.particle_filter.expression
    ds.attrs["filter"] = expr
    f.attrs["filter"] = expr
    excluded = json.dumps(sel.exclusion_record(), ensure_ascii=False) if sel.exclude else ""
    ds.attrs["exclude"] = excluded
    f.attrs["exclude"] = excluded


@dataclass(frozen=True)
class GroupSelection:
    """What ``/groups`` of a merged results file is computed over.

    Attributes
    ----------
    particle_filter : object, optional
        A parsed particle filter (:class:`qrspec.app.filters.ParticleFilter`: ``expression``
        and ``mask(rows)``); the group statistics and pooled laws use only the rows it selects,
        and its expression is recorded (root and ``/groups`` attribute ``filter``).
    pooled_dwell : bool
        Fit the pooled on/off dwell-time law of each group (seconds for a large batch, so a
        batch does it in its final merge only).
    exclude : tuple of str
        Particle ids left out of the statistics and pooled laws (an exclusion list,
        :mod:`qrspec.app.exclude`; they stay in ``/summary``); recorded as JSON
        ``{"particles": [...], "reason": {...}, "source": ...}`` in the root and ``/groups``
        attribute ``exclude`` ("" for none).
    exclude_reason : tuple of (str, str)
        ``(particle id, reason)`` pairs recorded with the exclusions.
    exclude_source : str
        Where the list came from (its file name), recorded with them.
    """

    particle_filter: object | None = None
    pooled_dwell: bool = False
    exclude: tuple = ()
    exclude_reason: tuple = ()
    exclude_source: str = ""

    def mask(self, rows) -> np.ndarray | None:
        """Rows that enter the statistics (None: all): selected by the filter and not excluded."""
        mask = self.particle_filter.mask(rows) if self.particle_filter is not None else None
        if self.exclude:
            ids = np.asarray([_text(x) for x in rows["particle_id"].tolist()], dtype=object)
            keep = ~np.isin(ids, np.asarray(list(self.exclude), dtype=object))
            mask = keep if mask is None else (np.asarray(mask, bool) & keep)
        return mask

    def exclusion_record(self) -> dict:
        """What is recorded of the exclusions (attribute ``exclude``)."""
        return {"particles": list(self.exclude), "reason": dict(self.exclude_reason),
                "source": self.exclude_source}


def _pooled_dwell(f, rows, mask) -> dict:
    """Pooled dwell laws per group from the stays stored under ``/particles/<id>/blinking``."""
    from qrspec.store.summary import pooled_dwell_laws

    particles = {}
    parts = f.get("particles")
    for pid in rows["particle_id"].tolist():
        pid = _text(pid)
        g = parts.get(f"{pid}/blinking") if parts is not None and pid in parts else None
        if g is not None:
            particles[pid] = _read_dwell_input(g, str(f.filename))
    return pooled_dwell_laws(rows, particles, selected=mask)


@dataclass(frozen=True, eq=False)
class _DwellInput:
    """The part of a stored Blinking stage a pooled law needs."""

    sequence: object
    resolution_s: float


def _read_dwell_input(g, where: str) -> _DwellInput:
    from qrspec.levels.dwell import DwellSequence

    if "sequence" not in g or "resolution_s" not in g.attrs:
        raise QrspecError(f"{where}: {g.name} holds no dwell sequence and resolution_s")
    return _DwellInput(_read_object(g["sequence"], DwellSequence, where),
                       float(g.attrs["resolution_s"]))


# ------------------------------------------------------------------ typed results <-> groups
def _dataset(g, name: str, data: np.ndarray, units: str, description: str):
    data = np.asarray(data)
    text = data.dtype.kind == "U"
    text_dtype = data.dtype.str
    if text:  # HDF5 has no UCS-4 strings: UTF-8 bytes, decoded on reading
        data = np.char.encode(data, "utf-8") if data.size else data.astype("S1")
    kw = {"compression": "gzip", "compression_opts": 1, "shuffle": True, "chunks": True} \
        if data.nbytes > _COMPRESS_BYTES else {}
    d = g.create_dataset(name, data=data, **kw)
    d.attrs["units"] = units
    d.attrs["description"] = description
    if text:
        d.attrs["text_dtype"] = text_dtype  # e.g. "<U12": restored on reading
    return d


def _write_object(g, obj) -> None:
    """Write a result dataclass into group ``g`` (see the module docstring)."""
    cls = type(obj).__name__
    docs = FIELD_DOCS.get(cls)
    if docs is None:
        raise TypeError(f"{cls} has no entry in qrspec.store.schema.FIELD_DOCS")
    g.attrs["type"] = cls
    units, descriptions = {}, {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        unit, desc = docs[f.name]
        if value is None:
            continue
        if isinstance(value, str):  # h5py stores UTF-8 only: undecodable bytes as \xNN
            value = storable_text(value)
        elif isinstance(value, tuple) and all(isinstance(x, str) for x in value):
            value = tuple(storable_text(x) for x in value)
        if is_dataclass(value):
            _write_object(g.create_group(f.name), value)
        elif isinstance(value, np.ndarray):
            _dataset(g, f.name, value, unit, desc)
        elif isinstance(value, tuple):
            if all(isinstance(x, str) for x in value):
                import h5py

                d = g.create_dataset(f.name, data=np.asarray(value, dtype=object),
                                     dtype=h5py.string_dtype(), shape=(len(value),))
                d.attrs["units"], d.attrs["description"] = unit, desc
            else:
                _dataset(g, f.name, np.asarray(value), unit, desc)
        elif isinstance(value, str) and len(value) > _ATTR_STR_MAX:
            import h5py

            d = g.create_dataset(f.name, data=value, dtype=h5py.string_dtype())
            d.attrs["units"], d.attrs["description"] = unit, desc
        elif isinstance(value, bool | int | float | str | np.number | np.bool_):
            g.attrs[f.name] = value
            units[f.name], descriptions[f.name] = unit, desc
        else:
            raise TypeError(f"{cls}.{f.name}: cannot store a {type(value).__name__}")
    g.attrs["units"] = json.dumps(units)
    g.attrs["descriptions"] = json.dumps(descriptions)


def _write_particle_group(g, a: ParticleAnalysis) -> None:
    for name in IDENTITY_DOCS:
        value = getattr(a, name)
        if isinstance(value, str):  # a file name's bytes that are not UTF-8 become \xNN
            value = storable_text(value)
        if isinstance(value, str) and len(value) > _ATTR_STR_MAX:
            import h5py

            g.create_dataset(name, data=value, dtype=h5py.string_dtype())
        else:
            g.attrs[name] = value
    g.attrs["units"] = json.dumps({k: u for k, (u, _) in IDENTITY_DOCS.items()})
    g.attrs["descriptions"] = json.dumps({k: d for k, (_, d) in IDENTITY_DOCS.items()})
    for name in STAGES:
        stage = getattr(a, name)
        if stage is not None:
            _write_object(g.create_group(name), stage)


def _base_type(t):
    """``X | None`` -> ``(X, True)``; ``X`` -> ``(X, False)``."""
    if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return args[0], True
    return t, False


def _hints(cls) -> dict:
    import sys

    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def _check_size(d, where: str) -> None:
    nbytes = int(np.prod(d.shape, dtype=np.int64)) * d.dtype.itemsize if d.shape else \
        d.dtype.itemsize
    if nbytes > MAX_DATASET_BYTES:
        raise QrspecError(f"{where}: dataset {d.name} holds {nbytes} bytes > "
                          f"MAX_DATASET_BYTES={MAX_DATASET_BYTES}; not a qrspec results file")


def _read_value(g, name: str, where: str):
    import h5py

    d = g[name]
    if not isinstance(d, h5py.Dataset):
        raise QrspecError(f"{where}: {g.name}/{name} is not a dataset")
    _check_size(d, where)
    text_dtype = d.attrs.get("text_dtype")
    if text_dtype is not None:  # a str array stored as UTF-8 bytes
        text_dtype = _text(text_dtype)
        if not re.fullmatch(r"[<>|]U[0-9]{1,4}", text_dtype):
            raise QrspecError(f"{where}: dataset {d.name} has text_dtype={text_dtype!r}")
        data = d[()]
        return np.char.decode(data, "utf-8", "replace").astype(_text(text_dtype)) \
            if data.size else np.zeros(data.shape, _text(text_dtype))
    info = h5py.check_string_dtype(d.dtype)
    if info is not None and info.length is None:  # variable-length strings
        return d.asstr()[()]
    return d[()]


def _read_object(g, cls, where: str):
    """Read a result dataclass written by :func:`_write_object`."""
    import h5py

    kw = {}
    for f in fields(cls):
        t, optional = _base_type(_hints(cls)[f.name])
        origin = typing.get_origin(t)
        present_ds = f.name in g
        if is_dataclass(t):
            if present_ds:
                sub = g[f.name]
                if not isinstance(sub, h5py.Group):
                    raise QrspecError(f"{where}: {sub.name} is not a group")
                kw[f.name] = _read_object(sub, t, where)
            elif optional:
                kw[f.name] = None
            else:
                raise QrspecError(f"{where}: {g.name}/{f.name} is missing")
        elif present_ds:
            value = _read_value(g, f.name, where)
            if origin is tuple or t is tuple:  # tuple[float, ...], or a bare ``tuple``
                elem = typing.get_args(t)[0] if typing.get_args(t) else float
                value = tuple(elem(x) for x in np.atleast_1d(value))
            elif t is str:
                value = str(value)
            kw[f.name] = value
        elif f.name in g.attrs:
            value = g.attrs[f.name]
            if t is str:
                value = _text(value)
            elif t is bool:
                value = bool(value)
            elif t is int:
                value = int(value)
            elif t is float:
                value = float(value)
            kw[f.name] = value
        elif optional or origin is tuple or t is tuple:
            kw[f.name] = None if optional else ()
        else:
            raise QrspecError(f"{where}: {g.name} has no field {f.name!r}")
    return cls(**kw)


# ------------------------------------------------------------------ safe reading
def valid_particle_id(pid: str) -> bool:
    """True when ``pid`` is a particle id ``sanitize_id`` could have made (never a path)."""
    from qrspec.io.files import check_particle_id

    try:
        check_particle_id(pid)
    except QrspecError:
        return False
    return True


def _check_links(g, where: str) -> None:
    """Refuse external / soft links, external storage and virtual datasets under ``g``."""
    import h5py

    # a walk in Python, not h5py's visititems_links: an exception inside its C callback (a
    # Ctrl-C arriving mid-merge) came out as SystemError with a traceback instead of a clean
    # KeyboardInterrupt (tests/test_faults.py::test_issue_16_sigint_mid_batch_then_resume,
    # 1 of ~4 runs)
    links, stores = [], []
    seen = set()  # hard links can make cycles

    def walk(grp, prefix):
        for key in grp:
            name = f"{prefix}{key}"
            link = grp.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink | h5py.SoftLink):
                links.append((name, type(link).__name__))
                continue
            if links:  # follow hard links only until the first refused link
                continue
            obj = grp[key]
            if obj.id in seen:
                continue
            seen.add(obj.id)
            if isinstance(obj, h5py.Group):
                walk(obj, name + "/")
            elif isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
                stores.append(obj.name)

    walk(g, "")
    if links:
        name, kind = links[0]
        raise QrspecError(f"{where}: {g.name}/{name} is a {kind}; results files never hold "
                          "links (refused)")
    if stores:
        raise QrspecError(f"{where}: dataset {stores[0]} has external or virtual storage "
                          "(refused)")


def _open_results(path):
    """Open a results file for reading after the format and root-level checks."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise QrspecError(f"{path}: cannot open as HDF5 ({exc})") from None
    try:
        kind = _text(f.attrs.get("format"))
        if kind != FORMAT:
            hint = " (a `qrspec model` table, not analysis results)" \
                if kind == MODEL_FORMAT else ""
            raise QrspecError(f"{path}: not a qrspec results file (format={kind!r}){hint}")
        version = _text(f.attrs.get("format_version"))
        if version != FORMAT_VERSION:
            raise QrspecError(f"{path}: results format_version={version!r}; this qrspec reads "
                              f"{FORMAT_VERSION!r} (re-run the analysis)")
        for name in ("summary", "groups", "particles"):
            link = f.get(name, getlink=True)
            if link is not None and not isinstance(link, h5py.HardLink):
                raise QrspecError(f"{path}: /{name} is a {type(link).__name__} (refused)")
        if "summary" not in f or not isinstance(f["summary"], h5py.Dataset):
            raise QrspecError(f"{path}: results file without a /summary table")
        for name in ("summary", "groups"):
            if name in f:
                d = f[name]
                if d.external or d.is_virtual:
                    raise QrspecError(f"{path}: /{name} has external or virtual storage "
                                      "(refused)")
        rows = f["summary"].shape[0] if f["summary"].shape else 0
        if rows > MAX_SUMMARY_ROWS:
            raise QrspecError(f"{path}: /summary has {rows} rows > MAX_SUMMARY_ROWS="
                              f"{MAX_SUMMARY_ROWS}; not a qrspec results file")
        if f["summary"].dtype != summary_dtype():
            raise QrspecError(f"{path}: /summary columns are not those of this qrspec")
    except BaseException:
        f.close()
        raise
    return f


def _decode_struct(arr: np.ndarray) -> np.ndarray:
    """Bytes columns -> str columns."""
    if arr.dtype.names is None:
        return arr
    dt = [(n, f"U{arr.dtype[n].itemsize}" if arr.dtype[n].kind == "S" else arr.dtype[n])
          for n in arr.dtype.names]
    out = np.zeros(arr.shape, dt)
    for n in arr.dtype.names:
        out[n] = np.char.decode(arr[n], "utf-8", "replace") if arr.dtype[n].kind == "S" \
            else arr[n]
    return out


def _particle_ids(path, summary: np.ndarray) -> list[str]:
    from qrspec.io.files import check_particle_id

    return [check_particle_id(_text(x), str(path)) for x in summary["particle_id"]]


def _read_particle_open(f, path, particle_id: str) -> ParticleAnalysis:
    import h5py

    from qrspec.io.files import check_particle_id

    check_particle_id(particle_id, str(path))
    parts = f.get("particles")
    if parts is None or particle_id not in parts:
        raise QrspecError(f"particle_id={particle_id!r} not in {path}")
    link = parts.get(particle_id, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise QrspecError(f"{path}: /particles/{particle_id} is a {type(link).__name__} "
                          "(refused)")
    g = parts[particle_id]
    _check_links(g, str(path))
    kw = {}
    hints = _hints(ParticleAnalysis)
    for name in IDENTITY_DOCS:
        if name in g:
            kw[name] = str(_read_value(g, name, str(path)))
        elif name in g.attrs:
            t, _ = _base_type(hints[name])
            kw[name] = _text(g.attrs[name]) if t is str else float(g.attrs[name])
    for name in STAGES:
        if name in g:
            kw[name] = _read_object(g[name], _base_type(hints[name])[0], str(path))
    try:
        return ParticleAnalysis(**kw)
    except TypeError as exc:
        raise QrspecError(f"{path}: /particles/{particle_id} is incomplete ({exc})") from None


# ------------------------------------------------------------------ public API
def write_particle_file(path, analysis: ParticleAnalysis, config_json: str | None = None, *,
                        inputs=(), overwrite: bool = True) -> Path:
    """Write one particle's results as a standalone results file (crash-safe).

    Parameters
    ----------
    path : str or Path
        Results file to write (replaced if it exists).
    analysis : ParticleAnalysis
        The particle.
    config_json : str, optional
        Configuration recorded at the root (default: the particle's own ``config_json``).
    inputs : iterable of path
        Files the output must never replace (e.g. the particle's TTTR file).
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path

    Raises
    ------
    OutputError
        The file cannot be written or is refused (the message names it and the cause);
        nothing is left behind.
    """
    from qrspec.io.files import check_particle_id

    check_particle_id(analysis.particle_id)
    path = Path(path)
    rows = np.asarray([summary_row(analysis)], summary_dtype())
    with atomic_h5(path, inputs=inputs, overwrite=overwrite) as f:
        _root_attrs(f, config_json if config_json is not None else analysis.config_json or "{}")
        _write_summary(f, rows)
        _write_particle_group(f.create_group(f"particles/{analysis.particle_id}"), analysis)
        _write_groups(f, rows)
    return path


def merge_results(part_files, out_path, config_json: str = "{}", *,
                  selection: GroupSelection | None = None) -> Path:
    """Merge single-particle results files into one results file (crash-safe), in order.

    Parameters
    ----------
    part_files : sequence of path
        Results files of one particle each.
    out_path : str or Path
        Output results file.
    config_json : str
        Configuration recorded at the root.
    selection : GroupSelection, optional
        Particle filter and pooled dwell laws of ``/groups`` (default: all rows, no pooled
        laws).

    Returns
    -------
    Path
    """
    sources = []
    for p in part_files:
        with _open_results(p) as src:
            sources.append((p, _particle_ids(p, src["summary"][()])[0]))
    return merge_results_from(sources, out_path, config_json, selection=selection)


def merge_results_from(sources, out_path, config_json: str = "{}", *,
                       selection: GroupSelection | None = None) -> Path:
    """Write a results file from ``(file, particle_id)`` pairs (crash-safe), in the given order.

    Each file is a qrspec results file holding that particle under ``/particles/<id>`` and its
    row in ``/summary``.

    Parameters
    ----------
    sources : sequence of (path, str)
        Where each particle is.
    out_path : str or Path
        Output results file.
    config_json : str
        Configuration recorded at the root.
    selection : GroupSelection, optional
        Particle filter and pooled dwell laws of ``/groups`` (default: all rows, no pooled
        laws).

    Returns
    -------
    Path
    """
    out_path = Path(out_path)
    rows = []
    with atomic_h5(out_path) as f:
        _root_attrs(f, config_json)
        parts = f.create_group("particles")
        for path, pid in sources:
            with _open_results(path) as src:
                summ = src["summary"][()]
                row = summ[summ["particle_id"] == pid.encode()]
                if row.size != 1:
                    raise QrspecError(f"particle_id={pid!r} has {row.size} summary rows in "
                                      f"{path}")
                _check_links(src[f"particles/{pid}"], str(path))
                src.copy(src[f"particles/{pid}"], parts, name=pid)
                rows.append(row[0])
        arr = np.asarray(rows, summary_dtype()) if rows else np.zeros(0, summary_dtype())
        _write_summary(f, arr)
        if selection is None:
            _write_groups(f, arr)
        else:
            _write_groups(f, arr, selection)
    return out_path


def copy_particle_to_part(results_path, particle_id: str, part_path) -> Path:
    """Extract one particle of a results file into a single-particle file (crash-safe).

    Parameters
    ----------
    results_path : str or Path
        Source results file.
    particle_id : str
        The particle to copy.
    part_path : str or Path
        Output single-particle file.

    Returns
    -------
    Path
    """
    from qrspec.io.files import check_particle_id

    check_particle_id(particle_id, str(results_path))
    with _open_results(results_path) as src, atomic_h5(part_path) as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        summ = src["summary"][()]
        row = summ[summ["particle_id"] == particle_id.encode()]
        _write_summary(f, row)
        _write_groups(f, row)
        f.create_group("particles")
        _check_links(src[f"particles/{particle_id}"], str(results_path))
        src.copy(src[f"particles/{particle_id}"], f["particles"], name=particle_id)
    return Path(part_path)


@dataclass(frozen=True, eq=False)
class Results:
    """A results file read back: summary and group tables plus access to each particle.

    Attributes
    ----------
    path : str
        The file.
    attrs : dict
        Root attributes (format, versions, config JSON).
    summary : ndarray
        ``/summary`` with str text columns.
    groups : ndarray
        ``/groups`` with str text columns.
    """

    path: str
    attrs: dict
    summary: np.ndarray
    groups: np.ndarray

    @property
    def config(self) -> dict:
        """The analysis configuration the file was made with."""
        return json.loads(self.attrs.get("config", "{}"))

    @property
    def particle_ids(self) -> list[str]:
        """Particle ids in summary order."""
        return [str(x) for x in self.summary["particle_id"]]

    @property
    def filter(self) -> str:
        """The particle filter the group statistics were computed with ("" for none)."""
        return str(self.attrs.get("filter", ""))

    @property
    def excluded(self) -> tuple[str, ...]:
        """Particles left out of the group statistics by an exclusion list (``batch --exclude``).

        Empty for none.
        """
        text = str(self.attrs.get("exclude", "") or "")
        if not text:
            return ()
        try:
            rec = json.loads(text)
        except json.JSONDecodeError:
            raise QrspecError(f"{self.path}: attribute exclude={text[:80]!r} is not the JSON "
                              "record of an exclusion list") from None
        parts = rec.get("particles") if isinstance(rec, dict) else None
        if not isinstance(parts, list) or not all(isinstance(x, str) for x in parts):
            raise QrspecError(f"{self.path}: attribute exclude has no list of particle ids")
        return tuple(parts)

    def particle(self, particle_id: str) -> ParticleAnalysis:
        """One particle read back (:func:`read_particle`)."""
        return read_particle(self.path, particle_id)


def read_results(path) -> Results:
    """Read the tables of a qrspec results file (batch or single particle).

    Parameters
    ----------
    path : str or Path
        A results file.

    Returns
    -------
    Results

    Raises
    ------
    QrspecError
        Not a results file (or another version), links or external storage, a table larger
        than the documented maxima, or an unsafe particle id.
    """
    path = os.fspath(path)
    with _open_results(path) as f:
        attrs = {k: _text(v) if isinstance(v, bytes | str) else v for k, v in f.attrs.items()}
        summary = _decode_struct(f["summary"][()])
        _particle_ids(path, summary)
        groups = np.zeros(0)
        if "groups" in f:
            _check_size(f["groups"], path)
            groups = _decode_struct(f["groups"][()])
    return Results(path=path, attrs=attrs, summary=summary, groups=groups)


def recompute_groups(path, selection: GroupSelection) -> np.ndarray:
    """``/groups`` of a results file recomputed for another selection, without writing.

    E.g. ``qrspec report --filter``: the store's :func:`group_statistics` on the selected rows and,
    with ``selection.pooled_dwell``, the pooled dwell laws of the stored stays.

    Parameters
    ----------
    path : str or Path
        A results file.
    selection : GroupSelection

    Returns
    -------
    ndarray
        Group rows as in ``/groups`` (text columns as str).
    """
    path = os.fspath(path)
    with _open_results(path) as f:
        rows = f["summary"][()]
        ids = _particle_ids(path, _decode_struct(rows))
        mask = selection.mask(_decode_struct(rows))
        pooled = None
        if selection.pooled_dwell:
            parts = f.get("particles")
            keep = {}
            for pid in ids:
                if parts is not None and pid in parts:
                    _check_links(parts[pid], path)
                    if "blinking" in parts[pid]:
                        keep[pid] = _read_dwell_input(parts[pid]["blinking"], path)
            from qrspec.store.summary import pooled_dwell_laws

            pooled = pooled_dwell_laws(rows, keep, selected=mask)
        return _decode_struct(group_statistics(rows, selected=mask, pooled=pooled))


def read_particle(path, particle_id: str | None = None) -> ParticleAnalysis:
    """One particle of a results file, read back into the typed result.

    Parameters
    ----------
    path : str or Path
        A results file.
    particle_id : str, optional
        Needed when the file holds more than one particle.

    Returns
    -------
    ParticleAnalysis
        Equal field by field to the one written.

    Raises
    ------
    QrspecError
        Not a results file, unknown or ambiguous particle, or an unsafe file.
    """
    path = os.fspath(path)
    with _open_results(path) as f:
        ids = _particle_ids(path, _decode_struct(f["summary"][()]))
        listed = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        if particle_id is None:
            if len(ids) != 1:
                raise QrspecError(f"{path} holds {len(ids)} particles; give particle_id (one "
                                  f"of {listed})")
            particle_id = ids[0]
        elif particle_id not in ids:
            raise QrspecError(f"particle_id={particle_id!r} not in {path} ({len(ids)} "
                              f"particles: {listed})")
        return _read_particle_open(f, path, particle_id)


def completed_particles(path) -> dict[str, str]:
    """``particle_id -> status`` of the particles in a results file (ids validated).

    Parameters
    ----------
    path : str or Path
        A results file.

    Returns
    -------
    dict
    """
    res = read_results(path)
    return {pid: str(st) for pid, st in zip(res.particle_ids, res.summary["status"],
                                            strict=True)}


def export_summary_csv(results_path, csv_path) -> Path:
    """Write ``/summary`` of a results file as CSV (crash-safe); NaN is written as ``nan``.

    Parameters
    ----------
    results_path : str or Path
        A results file.
    csv_path : str or Path
        The CSV file.

    Returns
    -------
    Path
    """
    from qrspec.io.atomic import atomic_output

    res = read_results(results_path)
    csv_path = Path(csv_path)
    with atomic_output(csv_path, inputs=[results_path]) as tmp, \
            open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        names = res.summary.dtype.names
        w.writerow(names)
        for row in res.summary:
            w.writerow([row[n].item() if hasattr(row[n], "item") else row[n] for n in names])
    return csv_path

