"""Stage: the intensity trajectory of the analysed detectors (and the photon totals)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.photons import Photons

__all__ = ["Trajectory", "trajectory"]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Photons per trajectory bin and per detector.

    Attributes
    ----------
    counts : ndarray of uint32, shape (n_bins, n_detectors)
        Photons per bin; columns follow ``detectors``.
    bin_width_s : float
        Bin width.
    start_s : float
        Start of bin 0 (seconds on the file's clock).
    detectors : tuple of int
        The analysed detectors (0-based).
    n_photons : int
        Photons on the analysed detectors.
    duration_s : float
        Span of the photon stream.
    rate_cps : float
        Mean detected rate (NaN when the duration is 0).
    flags : tuple of str
        Flags of this stage.
    """

    counts: np.ndarray
    bin_width_s: float
    start_s: float
    detectors: tuple[int, ...]
    n_photons: int
    duration_s: float
    rate_cps: float
    flags: tuple[str, ...]


def trajectory(photons: Photons, bin_width_s: float) -> Trajectory:
    """Intensity trajectory of ``photons`` (already restricted to the analysed detectors).

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    bin_width_s : float
        Trajectory bin width.

    Returns
    -------
    Trajectory
    """
    from qrspec.stats.trace import intensity_trace

    trace = intensity_trace(photons, bin_width_s)
    flags = [] if photons.duration_s > 0 else [
        "all photons share one timestamp: duration and rate undefined"]
    if trace.coarsening_note:  # more bins than MAX_TRACE_BINS: a wider bin, flagged
        flags.append(trace.coarsening_note)
    return Trajectory(counts=trace.counts_per_detector.T.astype(np.uint32),
                      bin_width_s=float(trace.bin_width_s),
                      start_s=float(trace.start_tick * trace.timestamps_unit),
                      detectors=tuple(int(d) for d in trace.detectors),
                      n_photons=int(photons.size), duration_s=float(photons.duration_s),
                      rate_cps=float(photons.rate_cps), flags=tuple(flags))
