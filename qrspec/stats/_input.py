"""Photon input plumbing shared by the photon-statistics modules (private).

Value checks live in :mod:`qrspec.validate`; this module holds what needs the
:class:`~qrspec.photons.Photons` type: chunk iteration, per-detector lookup tables and gates.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.validate import interval, interval_to_grid

N_DET = 256  # detectors are uint8: per-detector lookup tables have 256 entries
NO_GATE_HI = 1 << 20  # above any uint16 nanotime


def chunks(photons) -> Iterable[Photons]:
    """A Photons object as a one-chunk tuple; an iterable of chunks unchanged."""
    if isinstance(photons, Photons):
        return (photons,)
    if isinstance(photons, Iterable) and not isinstance(photons, str | bytes | np.ndarray):
        return photons
    raise QrspecError(f"photons={type(photons).__name__} must be Photons or an iterable of "
                      "Photons chunks")


def check_photons(photons) -> Photons:
    """``photons`` itself, which must be a Photons object."""
    if not isinstance(photons, Photons):
        raise QrspecError(f"photons={type(photons).__name__} must be a Photons object")
    return photons


def check_chunk(photons) -> Photons:
    """``photons`` itself, which must be a Photons chunk."""
    if not isinstance(photons, Photons):
        raise QrspecError(f"photons={type(photons).__name__} must be a Photons chunk")
    return photons


def check_same_units(photons: Photons, unit: float) -> None:
    """Every chunk of a stream shares the first chunk's ``timestamps_unit``."""
    if photons.timestamps_unit != unit:
        raise QrspecError(f"chunk timestamps_unit={photons.timestamps_unit!r} differs from the "
                          f"first chunk's {unit!r}")


def require_t3(photons: Photons, what: str) -> None:
    """Refuse T2 data for an analysis that needs nanotimes (``what`` ends with its verb)."""
    if not photons.is_t3:
        raise QrspecError(f"{what} T3 data (nanotimes); this is T2 data")


def column_table(detectors) -> np.ndarray:
    """column[det] = output column of a detector, -1 if not counted (None: column = det)."""
    if detectors is None:
        return np.arange(N_DET, dtype=np.int64)
    col = np.full(N_DET, -1, np.int64)
    col[list(detectors)] = np.arange(len(detectors))
    return col


def detectors_present(photons: Photons) -> np.ndarray:
    """Sorted detectors with at least one photon in ``photons`` (one O(N) kernel pass)."""
    from qrspec.stats._kernels import trace as _kt

    if photons.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(_kt.detectors_seen(photons.detectors, np.zeros(N_DET, np.bool_)))


def gate_tables(photons: Photons, gate_ns, offsets_bins=None):
    """Per-detector half-open nanotime gates [lo, hi) in TCSPC bins (whole range if no gate).

    ``offsets_bins`` (per detector) shift the gate of each detector by its offset.
    """
    lo = np.zeros(N_DET, np.int64)
    hi = np.full(N_DET, NO_GATE_HI, np.int64)
    if gate_ns is None:
        return lo, hi
    gate_ns = interval("gate_ns", gate_ns)
    require_t3(photons, f"gate_ns={gate_ns!r} needs")
    g0, g1 = interval_to_grid("gate_ns", gate_ns, photons.nanotimes_unit * 1e9)
    lo[:] = g0
    hi[:] = min(g1, NO_GATE_HI)
    if offsets_bins is not None:
        lo += offsets_bins
        hi += offsets_bins
    return lo, hi


def nanotimes_or_empty(photons: Photons) -> np.ndarray:
    """The nanotimes, or an empty array for T2 data (kernels treat empty as 'no nanotimes')."""
    return photons.nanotimes if photons.is_t3 else np.zeros(0, np.uint16)
