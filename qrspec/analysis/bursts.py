"""Stage: photon bursts (scatter, cosmic events) found and removed before the trajectory.

:func:`remove_photon_bursts` runs :func:`qrspec.levels.bursts.find_bursts` on the analysed
detectors' photons and, with ``AnalysisConfig.remove_bursts``, drops the photons of the burst
windows and closes the gaps (:func:`qrspec.levels.bursts.remove_bursts`). Every later stage then
works on the *analysis clock*: file time minus the burst windows that came before.
:meth:`Bursts.to_file_s` maps analysis times back to the file's clock (the figures do; the
windows are milliseconds, so the two clocks differ by a few ms at most for a normal particle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.analysis.config import AnalysisConfig
from qrspec.levels.bursts import BurstRemoval
from qrspec.photons import Photons

__all__ = ["Bursts", "remove_photon_bursts"]


@dataclass(frozen=True, eq=False)
class Bursts:
    """Photon bursts of one particle.

    Attributes
    ----------
    removal : BurstRemoval
        The burst windows (file clock), their photons and the detection threshold
        (:class:`qrspec.levels.bursts.BurstRemoval`).
    removed : bool
        The burst photons were removed and later times moved back (``remove_bursts``); False:
        found and flagged only (the analysis clock is then the file clock).
    flags : tuple of str
        Flags of this stage.
    """

    removal: BurstRemoval
    removed: bool
    flags: tuple[str, ...]

    @property
    def n_bursts(self) -> int:
        """Burst windows found."""
        return self.removal.n_bursts

    @property
    def n_photons(self) -> int:
        """Photons in the burst windows."""
        return self.removal.n_photons

    def to_file_s(self, time_s) -> np.ndarray:
        """File-clock times of analysis-clock times (identity when nothing was removed)."""
        if not self.removed:
            return np.asarray(time_s, dtype=np.float64).copy()
        return self.removal.to_original_s(time_s)


def remove_photon_bursts(photons: Photons, config: AnalysisConfig) -> tuple[Bursts, Photons]:
    """Find photon bursts and (``config.remove_bursts``) remove them.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    config : AnalysisConfig
        Uses ``remove_bursts``, ``burst_bin_width_s`` and ``burst_alpha``.

    Returns
    -------
    (Bursts, Photons)
        The stage result and the photons every later stage analyses.
    """
    from qrspec.levels.bursts import find_bursts, remove_bursts

    # never below one timestamp tick (a coarse T2 clock); the trace is also size-capped
    # (qrspec.stats.trace.MAX_TRACE_BINS): a long acquisition is searched on coarser bins
    bin_s = max(float(config.burst_bin_width_s), float(photons.timestamps_unit))
    found = find_bursts(photons, bin_width_s=bin_s, alpha=config.burst_alpha)
    flags = []
    if found.bin_width_s > 1.5 * config.burst_bin_width_s:
        flags.append(f"burst search on {found.bin_width_s:.3g} s bins instead of "
                     f"burst_bin_width_s={config.burst_bin_width_s:g} (timestamp tick or trace "
                     "size cap): short bursts may be missed")
    removed = bool(config.remove_bursts)
    if found.n_bursts:
        what = "removed" if removed else "not removed (remove_bursts=False)"
        flags.append(f"{found.n_bursts} photon burst(s) of {found.n_photons} photons "
                     f"{what}")
    out = remove_bursts(photons, found) if removed else photons
    return Bursts(removal=found, removed=removed,
                  flags=tuple(flags)), out
