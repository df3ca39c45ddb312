"""Stage: the fluorescence-lifetime-intensity distribution (FLID) of the particle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.photons import Photons

__all__ = ["Flid", "measure_flid"]


@dataclass(frozen=True, eq=False)
class Flid:
    """Trace bins per (photon count, mean delay) cell.

    Attributes
    ----------
    histogram : ndarray of int64, shape (n_count_bins, n_delay_bins)
        Number of trajectory bins per cell.
    count_edges : ndarray of float64
        Edges of the counts axis.
    delay_edges_ns : ndarray of float64
        Edges of the mean-delay axis.
    bin_width_s : float
        Trajectory bin width used.
    flags : tuple of str
        Flags of this stage (grids coarsened to fit their caps).
    """

    histogram: np.ndarray
    count_edges: np.ndarray
    delay_edges_ns: np.ndarray
    bin_width_s: float
    flags: tuple[str, ...] = ()


def measure_flid(photons: Photons, alignment: Alignment, config: AnalysisConfig) -> Flid:
    """FLID of the analysed detectors on the trajectory's bins.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    alignment : Alignment
        Detector offsets.
    config : AnalysisConfig
        Uses ``bin_width_s`` and ``detectors``.

    Returns
    -------
    Flid
    """
    from qrspec.stats.decay import flid

    fl = flid(photons, config.bin_width_s, detectors=config.detectors,
              offsets_ns=alignment.offsets_ns)
    return Flid(histogram=fl.histogram, count_edges=fl.count_edges,
                delay_edges_ns=fl.delay_edges_ns, bin_width_s=float(fl.bin_width_s),
                flags=_notes(fl.coarsening_note))


def _notes(note: str) -> tuple[str, ...]:
    """The FLID's coarsening note as flags.

    Its own axes' notes ("FLID ...") and, as one flag, the note of the trajectory it was built on
    (the trajectory stage's flag, counted once).
    """
    parts = [p for p in note.split("; ") if p]
    own = [p for p in parts if p.startswith("FLID ")]
    trace = "; ".join(p for p in parts if not p.startswith("FLID "))
    return tuple(([trace] if trace else []) + own)
