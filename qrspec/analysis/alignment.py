"""Stage: the total decay of the analysed detectors, which aligns them (per-detector nanotime
offsets, the rise t0) and gives the HBT delay used by every g2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.photons import Photons

__all__ = ["Alignment", "align_detectors"]


@dataclass(frozen=True, eq=False)
class Alignment:
    """Total aligned decay (TCSPC bins) and the alignment it defines.

    Attributes
    ----------
    time_ns : ndarray of float64
        Left bin edge of each bin on the aligned axis.
    counts : ndarray of int64
        Aligned decay of all photons.
    t0_ns : float
        Rise of the aligned decay (half maximum of the rising edge).
    offsets_ns : ndarray of float64
        Nanotime offset subtracted from each analysed detector (whole TCSPC bins).
    period_ns : float
        Length of the aligned axis (the laser period).
    bin_ns : float
        Bin width (the TCSPC resolution).
    delay_ns : float
        HBT delay ``offsets_ns[1] - offsets_ns[0]`` subtracted from every g2 lag.
    """

    time_ns: np.ndarray
    counts: np.ndarray
    t0_ns: float
    offsets_ns: np.ndarray
    period_ns: float
    bin_ns: float
    delay_ns: float


def align_detectors(photons: Photons, detectors: tuple) -> Alignment:
    """Total decay of ``detectors`` with per-detector offsets estimated from the data.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    detectors : tuple of int
        The two HBT detectors.

    Returns
    -------
    Alignment
    """
    from qrspec.stats.decay import decay_histogram

    dec = decay_histogram(photons, detectors=detectors)
    offsets = np.asarray(dec.offsets_ns, float)
    return Alignment(time_ns=dec.time_ns, counts=dec.counts, t0_ns=float(dec.t0_ns),
                     offsets_ns=offsets, period_ns=float(dec.period_ns),
                     bin_ns=float(dec.bin_ns), delay_ns=float(offsets[1] - offsets[0]))
