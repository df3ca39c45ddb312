"""The results file.

The one place that knows its layout (HDF5 paths, units, summary columns, group statistics, CSV);
writes a :class:`~qrspec.analysis.particle.ParticleAnalysis` and reads it back (``read_particle``),
and writes the tables of ``qrspec model`` under their own format.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "write_particle_file": "qrspec.store.hdf5",
    "read_particle": "qrspec.store.hdf5",
    "read_results": "qrspec.store.hdf5",
    "merge_results": "qrspec.store.hdf5",
    "export_summary_csv": "qrspec.store.hdf5",
    "Results": "qrspec.store.hdf5",
    "SUMMARY_COLUMNS": "qrspec.store.summary",
    "summary_values": "qrspec.store.summary",
    "summary_row": "qrspec.store.summary",
    "row_to_dict": "qrspec.store.summary",
    "group_statistics": "qrspec.store.summary",
    "write_model_table": "qrspec.store.tables",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qrspec.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
