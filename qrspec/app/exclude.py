"""Exclusion lists: particles a user marked as bad, and group statistics without them.

The HTML report (:mod:`qrspec.app.html_report`) lets the user tick particles and save the
list as JSON; ``qrspec batch/report --exclude FILE`` read it back here::

    {"format": "qrspec-exclude", "version": 1,
     "particles": ["rod_03", "rod_17"],
     "reason": {"rod_03": "two emitters", "rod_17": ""}}

``reason`` maps an excluded particle id to free text (may be empty or absent). Other keys
(the report writes ``results`` and ``created_utc``) are kept for provenance and otherwise
ignored. Group statistics without the excluded particles are computed by the store's own
function (:func:`qrspec.app.batch_tables.store_group_statistics`), never re-implemented.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from qrspec.app.batch_tables import BatchTables, load_batch_tables, store_group_statistics
from qrspec.errors import QrspecError

__all__ = ["FORMAT", "VERSION", "ExclusionList", "read_exclusion_file", "write_exclusion_file",
           "exclusion_json", "parse_exclusion", "apply_exclusion", "ExclusionResult",
           "exclude_from_tables", "as_exclusion"]

logger = logging.getLogger(__name__)

FORMAT = "qrspec-exclude"
VERSION = 1
MAX_BYTES = 16 * 1024 * 1024  # ~250k ids; anything larger is not an exclusion list


@dataclass(frozen=True, eq=False)
class ExclusionList:
    """Particles to leave out of group statistics.

    Attributes
    ----------
    particles : tuple of str
        Excluded particle ids, in file order, without duplicates.
    reason : dict
        Particle id -> reason text (only ids in ``particles``).
    extra : dict
        Other keys of the file (provenance such as ``results``, ``created_utc``).
    source : str
        The file it was read from ("" when built in memory).
    """

    particles: tuple
    reason: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    source: str = ""


def parse_exclusion(data, source: str = "exclusion list") -> ExclusionList:
    """Validate a decoded exclusion document (a dict) and return it as an ExclusionList.

    Parameters
    ----------
    data : dict
        The decoded JSON object.
    source : str
        Name used in error messages (the file path).

    Returns
    -------
    ExclusionList

    Raises
    ------
    QrspecError
        Wrong format name or version, ``particles`` not a list of non-empty strings, or
        ``reason`` not an object of strings keyed by excluded ids.
    """
    if not isinstance(data, dict):
        raise QrspecError(f"{source}: must be a JSON object, got {type(data).__name__}")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise QrspecError(f"{source}: format={fmt!r}, expected {FORMAT!r}")
    version = data.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise QrspecError(f"{source}: version={version!r} is not supported (this qrspec reads "
                          f"version {VERSION})")
    ids = data.get("particles")
    if not isinstance(ids, list):
        raise QrspecError(f"{source}: particles={ids!r} must be a list of particle ids")
    bad = [x for x in ids if not isinstance(x, str) or not x.strip()]
    if bad:
        raise QrspecError(f"{source}: particles holds {len(bad)} entries that are not "
                          f"non-empty strings (first: {bad[0]!r})")
    seen: dict[str, None] = {}
    for x in ids:
        seen.setdefault(x, None)
    if len(seen) < len(ids):
        logger.warning("%s: %d duplicate particle ids ignored", source, len(ids) - len(seen))
    reason = data.get("reason", {})
    if reason is None:
        reason = {}
    if not isinstance(reason, dict):
        raise QrspecError(f"{source}: reason={reason!r} must be an object "
                          "{particle_id: text}")
    not_str = [k for k, v in reason.items() if not isinstance(v, str)]
    if not_str:
        raise QrspecError(f"{source}: reason[{not_str[0]!r}]={reason[not_str[0]]!r} must be "
                          "a string")
    stray = [k for k in reason if k not in seen]
    if stray:
        raise QrspecError(f"{source}: reason names particles that are not in particles: "
                          f"{stray[:5]}")
    extra = {k: v for k, v in data.items()
             if k not in ("format", "version", "particles", "reason")}
    return ExclusionList(particles=tuple(seen), reason=dict(reason), extra=extra,
                         source=source if source != "exclusion list" else "")


def read_exclusion_file(path) -> ExclusionList:
    """Read and validate an exclusion file (``{"format": "qrspec-exclude", ...}``).

    Parameters
    ----------
    path : str or Path
        The JSON file (as saved from the HTML report).

    Returns
    -------
    ExclusionList

    Raises
    ------
    QrspecError
        The file cannot be read, is larger than 16 MiB, is not UTF-8 JSON, or does not
        validate (:func:`parse_exclusion`). Every message starts with the path.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise QrspecError(f"{path}: {size} bytes is too large for an exclusion list "
                              f"(limit {MAX_BYTES})")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise QrspecError(f"{path}: cannot read the exclusion file "
                          f"({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise QrspecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from None
    except json.JSONDecodeError as exc:
        raise QrspecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                          f"{exc.colno})") from None
    return parse_exclusion(data, path)


def exclusion_json(particles, reason=None, **extra) -> str:
    """Format an exclusion list as JSON text (what the HTML report saves).

    Parameters
    ----------
    particles : iterable of str
        Excluded particle ids.
    reason : dict, optional
        Particle id -> reason.
    **extra
        Provenance keys (e.g. ``results="results.h5"``).

    Returns
    -------
    str
        Validated JSON text.
    """
    doc = {"format": FORMAT, "version": VERSION, "particles": list(particles),
           "reason": dict(reason or {}), **extra}
    parse_exclusion(doc)  # never write what we would refuse to read
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write_exclusion_file(path, particles, reason=None, **extra) -> Path:
    """Write an exclusion list atomically (:func:`qrspec.io.atomic.atomic_write_bytes`).

    Parameters
    ----------
    path : str or Path
        Output file.
    particles, reason, **extra
        As :func:`exclusion_json`.

    Returns
    -------
    Path

    Raises
    ------
    QrspecError
        Invalid ids or reasons (nothing is written).
    OutputError
        The file cannot be written.
    """
    from qrspec.io.atomic import atomic_write_bytes

    text = exclusion_json(particles, reason, **extra)
    return atomic_write_bytes(path, text.encode("utf-8"))


@dataclass(frozen=True, eq=False)
class ExclusionResult:
    """Group statistics recomputed without excluded particles.

    Attributes
    ----------
    summary : ndarray
        The ``/summary`` rows kept.
    groups : ndarray
        Per-group statistics of the kept rows (same columns as ``/groups``).
    excluded : tuple of str
        Ids removed (those found in the results).
    unknown : tuple of str
        Ids of the list that are not in the results (only with ``allow_unknown=True``).
    """

    summary: np.ndarray
    groups: np.ndarray
    excluded: tuple
    unknown: tuple


def as_exclusion(exclusion) -> ExclusionList:
    """An :class:`ExclusionList` from a list, a file path or a parsed JSON document.

    Parameters
    ----------
    exclusion : ExclusionList, str, Path or dict

    Returns
    -------
    ExclusionList

    Raises
    ------
    QrspecError
        Anything else, or an invalid file or document.
    """
    if isinstance(exclusion, ExclusionList):
        return exclusion
    if isinstance(exclusion, (str, os.PathLike)):
        return read_exclusion_file(exclusion)
    if isinstance(exclusion, dict):
        return parse_exclusion(exclusion)
    raise QrspecError(f"exclusion={exclusion!r} must be an ExclusionList, a path or a dict")


def apply_exclusion(results, exclusion, *, allow_unknown: bool = False) -> ExclusionResult:
    """Recompute the group statistics of a results file without the excluded particles.

    Parameters
    ----------
    results : str, Path or BatchTables
        A qrspec results file or its tables.
    exclusion : ExclusionList, str, Path or dict
        The exclusion list (a path is read with :func:`read_exclusion_file`).
    allow_unknown : bool
        Ids not in the results are an error (a list made for another batch, or a typo)
        unless this is True; they are then returned in ``unknown``.

    Returns
    -------
    ExclusionResult

    Raises
    ------
    QrspecError
        Unreadable results or exclusion file, or unknown ids without ``allow_unknown``.
    """
    excl = as_exclusion(exclusion)
    tables = load_batch_tables(results)
    ids = set(tables.particle_ids)
    unknown = tuple(x for x in excl.particles if x not in ids)
    if unknown and not allow_unknown:
        raise QrspecError(f"{excl.source or 'exclusion list'}: {len(unknown)} particle ids are "
                          f"not in {tables.path or 'the results'}: {list(unknown[:5])}"
                          f"{' ...' if len(unknown) > 5 else ''}")
    drop = set(excl.particles) & ids
    keep = ~np.isin(np.asarray(tables.summary["particle_id"], str), sorted(drop)) \
        if tables.summary.size else np.zeros(0, bool)
    kept = tables.summary[keep]
    return ExclusionResult(summary=kept, groups=store_group_statistics(kept),
                           excluded=tuple(x for x in excl.particles if x in drop),
                           unknown=unknown)


def exclude_from_tables(tables: BatchTables, exclusion, *,
                        allow_unknown: bool = False) -> BatchTables:
    """Remove excluded particles from ``tables`` and recompute ``groups``.

    Parameters
    ----------
    tables : BatchTables
    exclusion : ExclusionList, str, Path or dict
    allow_unknown : bool
        As :func:`apply_exclusion`.

    Returns
    -------
    BatchTables
        For the batch figures of a report made with ``--exclude``.
    """
    res = apply_exclusion(tables, exclusion, allow_unknown=allow_unknown)
    return replace(tables, summary=res.summary, groups=res.groups)
