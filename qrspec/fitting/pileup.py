"""Pile-up and dead time in TCSPC decays (methods.md §4.5, checked here).

methods.md §4.5 gives the Coates correction as ``c_i N / (N - sum_{j<i} c_j)``. That is the
first-order form; the exact Coates (J. Phys. E 1, 878 (1968)) estimate of the expected photons
per period in bin ``i`` (bins in TCSPC order from the sync) is::

    lambda_i = -ln(1 - c_i / (N - sum_{j<i} c_j))       (true counts N lambda_i)

and :func:`first_photon_counts` is its forward model for fitting (Poisson light, one photon per
period and detector)::

    E[c_i] = N (1 - exp(-lambda_i)) exp(-sum_{j<i} lambda_j)

Both assume a *Poisson* number of photons per period. A single emitter is not Poisson: it
emits at most one X photon per pulse, after its XX photon. An X photon is lost when the XX
photon of the same pulse was recorded first on the same detector, which does not depend on the
X photon's delay, so same-pulse pile-up removes photons without distorting the X decay, and the
Coates correction *must not* be applied to single-emitter data (it would distort a correct
decay). What could distort it is the dead time reaching into the next period (methods.md says
there is no inter-period pile-up because the dead time is shorter than the period; that holds
only when ``dead time + latest photon delay < period``): a photon recorded late in period
``s`` blocks the start of period ``s + 1``. For tau_X = 10 ns at 10 MHz with 80 ns dead time
that needs a photon later than 20 ns, and the simulated exciton-lifetime bias stays at
+0.004 % up to 0.13 recorded photons per period and detector (the Coates "correction" of the
same data moves it by +1.3 %; ``scripts/validate_detector.py --part deadtime``):

    p_det/period   0.003    0.029    0.13
    tau_X bias    +0.015 % +0.028 % +0.004 %   (dead time 80 ns + one photon per period)
    Coates        +0.041 % +0.30 %  +1.27 %

For Poisson light (several emitters, strong background) the first-photon bias is
``tau_obs ~ tau (1 - mu/4)`` (``mu``: photons per period reaching the detector), 0.5 % at
``mu = 0.02``. :func:`dead_time_check` flags a single emitter above
:data:`P_DET_LIMIT_SINGLE` (beyond the simulated range) and anything else above
:data:`P_DET_LIMIT_POISSON`; for the latter :func:`coates_correction` is the remedy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["coates_correction", "first_photon_counts", "DeadTimeCheck", "dead_time_check",
           "P_DET_LIMIT_SINGLE", "P_DET_LIMIT_POISSON"]

#: photons per period and detector up to which a single emitter's tau_X is simulated unbiased
#: by dead time (+0.004 % at 0.13); flagged above (untested)
P_DET_LIMIT_SINGLE = 0.13
#: Poisson light: first-photon bias of tau = mu/4 reaches 0.5 % at mu = 0.02
P_DET_LIMIT_POISSON = 0.02


def _counts(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise QrspecError("counts must be a non-empty 1-D array of finite counts >= 0")
    return c


def _periods(n_periods) -> float:
    if isinstance(n_periods, bool) or not (isinstance(n_periods, int | float | np.integer)
                                           and math.isfinite(n_periods) and n_periods > 0):
        raise QrspecError(f"n_periods={n_periods!r} must be a finite number > 0")
    return float(n_periods)


def coates_correction(counts, n_periods) -> np.ndarray:
    """Exact Coates correction of one detector's histogram (bins in TCSPC order from the sync).

    Parameters
    ----------
    counts : array_like
        Recorded counts per TCSPC bin of one detector, bin 0 at the sync (not aligned).
    n_periods : int
        Laser periods of the acquisition.

    Returns
    -------
    ndarray
        Estimated counts without pile-up (``N lambda_i``). Only for Poisson light: see the
        module docstring.
    """
    c = _counts(counts)
    n = _periods(n_periods)
    before = np.concatenate([[0.0], np.cumsum(c)[:-1]])
    live = n - before
    if np.any(c > live) or np.any(live <= 0):
        raise QrspecError(f"counts exceed the periods still live (n_periods={n_periods!r} too "
                          "small for these counts)")
    with np.errstate(divide="ignore"):
        return -n * np.log1p(-c / live)


def first_photon_counts(expected_counts, n_periods) -> np.ndarray:
    """Recorded counts expected with one photon per period (Poisson light): forward model.

    ``expected_counts`` are the photons per bin without pile-up (``N lambda_i``), bins in TCSPC
    order from the sync.
    """
    lam = _counts(expected_counts) / _periods(n_periods)
    before = np.concatenate([[0.0], np.cumsum(lam)[:-1]])
    return float(n_periods) * -np.expm1(-lam) * np.exp(-before)


@dataclass(frozen=True)
class DeadTimeCheck:
    """Detection probability per period and the dead-time flag.

    Attributes
    ----------
    p_det : ndarray of float64
        Recorded photons per laser period, per detector.
    flagged : bool
        Some ``p_det`` exceeds ``limit``.
    limit : float
    message : str
        ``""`` or the flag text.
    """

    p_det: np.ndarray
    flagged: bool
    limit: float
    message: str


def dead_time_check(photons, *, single_emitter: bool, detectors=(0, 1),
                    limit: float | None = None) -> DeadTimeCheck:
    """Flag a particle whose detection probability per period makes pile-up bias lifetimes.

    Parameters
    ----------
    photons : Photons
        T3 photons.
    single_emitter : bool
        The particle's single-emitter verdict (chooses the limit; see the module docstring).
    detectors : sequence of int
    limit : float, optional
        Largest ``p_det`` not flagged (default :data:`P_DET_LIMIT_SINGLE` or
        :data:`P_DET_LIMIT_POISSON`).
    """
    from qrspec.photons import Photons

    if not isinstance(photons, Photons):
        raise QrspecError(f"photons={type(photons).__name__} must be a Photons object")
    if not photons.is_t3:
        raise QrspecError("dead_time_check needs T3 data (laser periods)")
    if limit is None:
        limit = P_DET_LIMIT_SINGLE if single_emitter else P_DET_LIMIT_POISSON
    if not (isinstance(limit, float | int) and 0 < limit <= 1):
        raise QrspecError(f"limit={limit!r} must be in (0, 1]")
    n_periods = (int(photons.timestamps[-1] - photons.timestamps[0]) + 1
                 if photons.size else 0)
    counts = np.asarray([np.sum(photons.detectors == d) for d in detectors], np.float64)
    p = counts / n_periods if n_periods else np.full(counts.size, np.nan)
    flagged = bool(np.any(p > limit))
    msg = ""
    if flagged:
        worst = int(np.argmax(p))
        what = ("beyond the range where a single emitter's decay was checked unbiased"
                if single_emitter else "pile-up biases the decay by > 0.5 % (Poisson light); "
                "coates_correction applies")
        msg = (f"detector {detectors[worst]} records {p[worst]:.3g} photons per laser period "
               f"(> {limit:g}): {what}")
    return DeadTimeCheck(p, flagged, float(limit), msg)
