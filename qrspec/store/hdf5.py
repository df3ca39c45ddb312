"""HDF5 results: per-particle files, the merged batch file, reading back, CSV of the summary.

Layout of a results file (``format = "qrspec-results"``, ``format_version = "1"``)::

    /  attrs: format, format_version, qrspec_version, created_utc, config (JSON)
    /summary      compound, one row per particle (columns:
                  qrspec.analysis.results.SUMMARY_COLUMNS);
                  attrs units / description (JSON: column -> text)
    /groups       compound, per-group statistics (mean, median, SEM of particle values)
    /particles/<particle_id>/   attrs: source_path, source_sha256, group, status, error, traceback
        trace/..., levels/..., decays/..., g2/..., g2_gated/..., fits/..., charging/...
        (every dataset has `units` and `description` attributes)

Every file is written by :func:`qrspec.io.atomic.atomic_h5` (temp file, fsync, read back, rename),
so a reader never sees a half-written file and a full disk is a clean error.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from qrspec.analysis.results import SUMMARY_COLUMNS, ParticleResult, summary_dtype
from qrspec.io.files import storable_text

__all__ = ["write_particle_file", "merge_results", "read_results", "Results",
           "export_summary_csv", "group_statistics", "FORMAT", "FORMAT_VERSION"]

FORMAT = "qrspec-results"
FORMAT_VERSION = "1"
GROUP_STAT_COLUMNS = ["rate_cps", "g2_zero", "g2_zero_gated", "frac_time_neutral",
                      "tau_x_neutral_ns", "tau_xx_neutral_ns", "tau_x_charged_ns",
                      "tau_xx_charged_ns", "n_c_mean", "tau_a_xx_charged_ns"]


def _version() -> str:
    from qrspec import __version__

    return __version__


@contextmanager
def atomic_h5(path, *, inputs=()):
    """Open a temp file for writing; publish it as ``path`` only if the block succeeds.

    :func:`qrspec.io.atomic.atomic_h5`: temp file ``<name>.<pid>.<token>.partial`` in the same
    folder, fsync, reopened and read back, renamed; a full disk or any other write error is an
    :class:`~qrspec.errors.OutputError` naming ``path`` (never h5py's segfault), and ``path``
    never replaces one of ``inputs``.
    """
    from qrspec.io.atomic import atomic_h5 as _atomic_h5

    with _atomic_h5(path, inputs=inputs) as h:
        yield h.file


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


def _write_particle_group(g, res: ParticleResult):
    # storable_text: a file name with undecodable bytes is kept as \\xNN (h5py needs UTF-8)
    g.attrs["source_path"] = storable_text(res.source)
    g.attrs["source_sha256"] = res.source_sha256
    g.attrs["group"] = storable_text(res.group)
    g.attrs["status"] = res.status
    g.attrs["error"] = storable_text(res.error)
    g.attrs["traceback"] = storable_text(res.traceback)
    for name, ds in res.datasets.items():
        data = np.asarray(ds.data)
        kw = {"compression": "gzip", "compression_opts": 1, "shuffle": True} \
            if data.nbytes > 65536 else {}
        d = g.create_dataset(name, data=data, **kw)
        d.attrs["units"] = ds.units
        d.attrs["description"] = ds.description
        for k, v in ds.attrs.items():
            d.attrs[k] = storable_text(v) if isinstance(v, str) else v
    for gname, attrs in res.attrs.items():
        sub = g.require_group(gname)
        for k, v in attrs.items():
            sub.attrs[k] = storable_text(v) if isinstance(v, str) else v


def write_particle_file(path, res: ParticleResult, config_json: str = "{}", *,
                        inputs=()) -> Path:
    """Write one particle's results as a standalone results file (atomically; never onto one
    of ``inputs``)."""
    path = Path(path)
    with atomic_h5(path, inputs=inputs) as f:
        _root_attrs(f, config_json)
        _write_summary(f, np.asarray([res.summary_row()], summary_dtype()))
        _write_particle_group(f.create_group(f"particles/{res.particle_id}"), res)
        _write_groups(f, np.asarray([res.summary_row()], summary_dtype()))
    return path


def group_statistics(rows: np.ndarray) -> np.ndarray:
    """Per-group mean, median and SEM of particle values (ok particles, finite values)."""
    fields = [("group", "S64"), ("n_particles", "i8"), ("n_ok", "i8"),
              ("frac_single_emitter", "f8")]
    for c in GROUP_STAT_COLUMNS:
        fields += [(f"{c}_n", "i8"), (f"{c}_mean", "f8"), (f"{c}_median", "f8"),
                   (f"{c}_sem", "f8")]
    groups = sorted(set(rows["group"].tolist())) if rows.size else []
    out = np.zeros(len(groups), np.dtype(fields))
    for i, gname in enumerate(groups):
        sel = rows[rows["group"] == gname]
        ok = sel[sel["status"] == b"ok"]
        out[i]["group"] = gname
        out[i]["n_particles"] = sel.size
        out[i]["n_ok"] = ok.size
        out[i]["frac_single_emitter"] = ok["single_emitter"].mean() if ok.size else np.nan
        for c in GROUP_STAT_COLUMNS:
            v = ok[c][np.isfinite(ok[c])] if ok.size else np.zeros(0)
            out[i][f"{c}_n"] = v.size
            out[i][f"{c}_mean"] = v.mean() if v.size else np.nan
            out[i][f"{c}_median"] = np.median(v) if v.size else np.nan
            out[i][f"{c}_sem"] = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan
    return out


def _write_groups(f, rows):
    ds = f.create_dataset("groups", data=group_statistics(rows))
    ds.attrs["units"] = "as the summary column of the same name"
    ds.attrs["description"] = ("per-group statistics over particles with status ok: count, mean, "
                               "median and standard error of the mean of each column")


def merge_results(part_files, out_path, config_json: str = "{}") -> Path:
    """Merge single-particle results files into one results file (atomically), in order."""
    sources = []
    for p in part_files:
        with h5py.File(p, "r") as src:
            sources.append((p, src["summary"][0]["particle_id"].decode()))
    return merge_results_from(sources, out_path, config_json)


def merge_results_from(sources, out_path, config_json: str = "{}") -> Path:
    """Write a results file from ``(file, particle_id)`` pairs (atomically), in the given order.

    Each file is a qrspec results file holding that particle under ``/particles/<id>`` and its
    row in ``/summary``.
    """
    out_path = Path(out_path)
    rows = []
    with atomic_h5(out_path) as f:
        _root_attrs(f, config_json)
        parts = f.create_group("particles")
        for path, pid in sources:
            with h5py.File(path, "r") as src:
                summ = src["summary"][()]
                row = summ[summ["particle_id"] == pid.encode()]
                if row.size != 1:
                    raise KeyError(f"particle_id={pid!r} has {row.size} summary rows in {path}")
                src.copy(src[f"particles/{pid}"], parts, name=pid)
                rows.append(row[0])
        arr = np.asarray(rows, summary_dtype()) if rows else np.zeros(0, summary_dtype())
        _write_summary(f, arr)
        _write_groups(f, arr)
    return out_path


def copy_particle_to_part(results_path, particle_id: str, part_path) -> Path:
    """Extract one particle of a results file into a single-particle file (atomically)."""
    with h5py.File(results_path, "r") as src, atomic_h5(part_path) as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        summ = src["summary"][()]
        row = summ[summ["particle_id"] == particle_id.encode()]
        _write_summary(f, row)
        _write_groups(f, row)
        f.create_group("particles")
        src.copy(src[f"particles/{particle_id}"], f["particles"], name=particle_id)
    return Path(part_path)


def _decode_struct(arr: np.ndarray) -> np.ndarray:
    """Bytes columns -> str columns."""
    if arr.dtype.names is None:
        return arr
    dt = [(n, f"U{arr.dtype[n].itemsize}" if arr.dtype[n].kind == "S" else arr.dtype[n])
          for n in arr.dtype.names]
    out = np.zeros(arr.shape, dt)
    for n in arr.dtype.names:
        out[n] = np.char.decode(arr[n], "utf-8") if arr.dtype[n].kind == "S" else arr[n]
    return out


@dataclass(frozen=True, eq=False)
class Results:
    """A results file read back: summary and group tables plus lazy access to particles."""

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

    def particle(self, particle_id: str) -> dict:
        """All arrays and attributes of one particle: ``{"trace/counts": array, ...,
        "attrs": {...}}``."""
        out: dict = {}
        with h5py.File(self.path, "r") as f:
            if f"particles/{particle_id}" not in f:
                raise KeyError(f"particle_id={particle_id!r} not in {self.path}")
            g = f[f"particles/{particle_id}"]
            out["attrs"] = dict(g.attrs)

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[name] = obj[()]
                elif obj.attrs:
                    out[f"{name}/attrs"] = dict(obj.attrs)

            g.visititems(visit)
        return out


def read_results(path) -> Results:
    """Read a qrspec results file (batch or single particle)."""
    from qrspec.errors import QrspecError

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise QrspecError(f"{path}: cannot open as HDF5 ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise QrspecError(f"{path}: not a qrspec results file "
                              f"(format={f.attrs.get('format')!r})")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        summary = _decode_struct(f["summary"][()])
        groups = _decode_struct(f["groups"][()]) if "groups" in f else np.zeros(0)
    return Results(path=path, attrs=attrs, summary=summary, groups=groups)


def export_summary_csv(results_path, csv_path) -> Path:
    """Write ``/summary`` of a results file as CSV (atomically)."""
    from qrspec.io.atomic import atomic_output

    res = read_results(results_path)
    csv_path = Path(csv_path)
    with atomic_output(csv_path, inputs=[results_path]) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
            w = csv.writer(fh)
            names = res.summary.dtype.names
            w.writerow(names)
            for row in res.summary:
                w.writerow([row[n].item() if hasattr(row[n], "item") else row[n]
                            for n in names])
    return csv_path
