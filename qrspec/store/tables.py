"""Tables of ``qrspec model`` (forward model, inversions, threshold maps) as CSV or HDF5.

HDF5 tables carry ``format = "qrspec-model"`` (:data:`qrspec.store.hdf5.MODEL_FORMAT`), never
the results format, so ``qrspec report`` and :func:`qrspec.store.hdf5.read_results` refuse them
with a clear message. Both kinds are written crash-safely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrspec.errors import QrspecError
from qrspec.store.hdf5 import MODEL_FORMAT, _root_attrs, atomic_h5

__all__ = ["Column", "write_model_table", "read_segments_table", "TABLE_SUFFIXES"]

TABLE_SUFFIXES = (".csv", ".h5", ".hdf5")


@dataclass(frozen=True, eq=False)
class Column:
    """One table column: values, units and a description."""

    data: np.ndarray
    units: str = ""
    description: str = ""


def _suffix(path: Path) -> str:
    s = path.suffix.lower()
    if s not in TABLE_SUFFIXES:
        raise QrspecError(f"output={str(path)!r} must end in .csv, .h5 or .hdf5")
    return s


def write_model_table(path, columns: dict, attrs: dict, *, group: str = "model",
                      overwrite: bool = False) -> Path:
    """Write a table of model values as CSV (1-d columns) or HDF5 (any shapes).

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.h5`` or ``.hdf5``.
    columns : dict
        Name -> :class:`Column` (or array; units then follow the name: ``_ns`` -> ns).
    attrs : dict
        Settings recorded with the table (CSV: a JSON comment line; HDF5: group attributes,
        non-scalars as JSON).
    group : str
        HDF5 group holding the columns.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    QrspecError
        Unknown suffix or the file exists without ``overwrite``.
    OutputError
        The file cannot be written (nothing is left behind).
    """
    path = Path(path)
    suffix = _suffix(path)
    if path.exists() and not overwrite:
        raise QrspecError(f"{path} exists; use --overwrite")
    cols = {k: v if isinstance(v, Column) else Column(
        np.asarray(v), "ns" if k.endswith("_ns") else "1/ns" if k.endswith("_per_ns") else "1",
        k.replace("_", " ")) for k, v in columns.items()}
    if suffix == ".csv":
        from qrspec.io.atomic import atomic_output

        names = list(cols)
        data = np.column_stack([np.asarray(cols[k].data, float).ravel() for k in names])
        header = "# " + json.dumps(attrs, sort_keys=True) + "\n" + ",".join(names)
        with atomic_output(path) as tmp, open(tmp, "w") as fh:
            np.savetxt(fh, data, delimiter=",", header=header, comments="", fmt="%.10g")
        return path
    with atomic_h5(path, kind=MODEL_FORMAT) as h5:
        _root_attrs(h5, json.dumps(attrs, sort_keys=True, default=str), kind=MODEL_FORMAT)
        g = h5.create_group(group)
        for k, v in attrs.items():
            g.attrs[k] = v if isinstance(v, int | float | str) else json.dumps(v)
        for k, c in cols.items():
            ds = g.create_dataset(k, data=np.asarray(c.data))
            ds.attrs["units"] = c.units
            ds.attrs["description"] = c.description
    return path


def read_segments_table(path) -> list[dict]:
    """Charged segments from a CSV table whose first line names the columns.

    Parameters
    ----------
    path : str or Path
        Columns as :class:`qrspec.charging.trajectory.ChargedSegment` fields (``t_start_s,
        t_stop_s, tau_x_ns, tau_x_err_ns, tau_xx_ns, tau_xx_err_ns``, optional ``g2``, ...).

    Returns
    -------
    list of dict
        One ``{column: float}`` per row.

    Raises
    ------
    QrspecError
        The file cannot be read or is not a numeric table with named columns.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rows = np.genfromtxt(path, delimiter=",", names=True, comments="#", dtype=float)
    except (OSError, ValueError, UserWarning) as exc:
        raise QrspecError(f"{path}: cannot read the segments table ({exc})") from None
    if rows.dtype.names is None:
        raise QrspecError(f"{path}: the segments table needs a header row of column names")
    rows = np.atleast_1d(rows)
    return [{k: float(r[k]) for k in rows.dtype.names} for r in rows]
