"""Afterpulsing estimated from the data, and its correction of pulsed g2 (issue 18).

Estimate (:func:`estimate_afterpulsing`, T3 data): for each detector ``d`` and each laser-period
difference ``k = 1 .. K``, the number ``A_dd(k)`` of photon pairs of detector ``d`` ``k``
periods apart is compared with the cross pairs between ``d`` and the other detector ``e``,
``C(k) = (C_de(k) + C_ed(k)) / 2``. Both see the same emitter (the split is random: same
antibunching, same blinking bunching), so without afterpulses
``E[A_dd(k)] = (N_d / N_e) E[C(k)]``. Afterpulses follow their parent on the same detector and
never on the other one (methods.md §4.5), so::

    p_d = sum_k [A_dd(k) - (N_d/N_e) C(k)] / N_d
    var = sum_k A_dd(k) + (N_d/N_e)^2 sum_k (C_de(k) + C_ed(k)) / 4     (Poisson counts)

is the afterpulse probability per recorded photon for afterpulses that land 1..K periods after
their parent (default K: 10 us). Afterpulses inside the parent's own period are not in ``p_d``
(with a dead time close to the period there are almost none); their candidates, pairs of one
detector inside one period, are reported as ``same_period_pairs``. The dead time lowers
``A_dd(1)`` slightly (a photon late in a period blocks the start of the next): measured against
the simulator's truth in ``scripts/validate_detector.py``.

g2 (:func:`correct_g2`): afterpulses are copies of their parents shifted by delays spread over
many periods, so against the other detector they pair like uncorrelated counts: every peak of
the cross-correlation, the centre included, gains ``(p_0 + p_1) S`` pairs (``S``: the side-peak
area without them), whatever the antibunching. With whole-period peak windows::

    g2_measured = (g2 + p) / (1 + p),   p = p_0 + p_1
    g2 = g2_measured (1 + p) - p,       bias = p (1 - g2) / (1 + p)

For a nanotime gate, ``p_d`` becomes the afterpulse fraction among the gated photons; with
afterpulse delays much longer than the period the afterpulses are flat in nanotime, so
``p_d,gate = p_d (gate width / period) / (fraction of d's photons in the gate)``
(:func:`gated_probability`). The correction "matters" when the bias exceeds half the
statistical error of g2(0) (:attr:`G2Correction.matters`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["AfterpulseEstimate", "G2Correction", "estimate_afterpulsing", "correct_g2",
           "gated_probability", "MATTERS_FRACTION"]

MATTERS_FRACTION = 0.5  # a correction matters when |bias| > this x the statistical error


@dataclass(frozen=True, eq=False)
class AfterpulseEstimate:
    """Afterpulsing of two detectors estimated from their auto- and cross-pairs.

    Attributes
    ----------
    detectors : tuple of int
    probability, probability_err : ndarray of float64
        Afterpulses per recorded photon (landing 1..K periods after the parent) and error.
    n_photons : ndarray of int64
        Recorded photons per detector.
    excess : ndarray of float64, shape (2, K)
        ``A_dd(k) - (N_d/N_e) C(k)`` for ``k = 1..K``: the afterpulse delay profile in periods.
    same_period_pairs : ndarray of int64
        Pairs of one detector inside one laser period.
    max_lag_periods : int
        K.
    period_s : float
    """

    detectors: tuple
    probability: np.ndarray
    probability_err: np.ndarray
    n_photons: np.ndarray
    excess: np.ndarray
    same_period_pairs: np.ndarray
    max_lag_periods: int
    period_s: float

    @property
    def lag_s(self) -> np.ndarray:
        """Lag of each column of :attr:`excess` (k periods)."""
        return np.arange(1, self.max_lag_periods + 1) * self.period_s

    def significant(self, z: float = 3.0) -> np.ndarray:
        """``probability > z * probability_err`` per detector."""
        return self.probability > z * self.probability_err


def estimate_afterpulsing(photons, *, detectors=(0, 1), max_lag_s: float = 10e-6
                          ) -> AfterpulseEstimate:
    """Afterpulse probability of each of two detectors (see the module docstring).

    Parameters
    ----------
    photons : Photons
        T3 photons (timestamps count laser periods).
    detectors : (int, int)
        The two detectors (each one's reference is the other).
    max_lag_s : float
        Longest afterpulse delay counted (rounded up to whole periods).
    """
    from qrspec.photons import Photons
    from qrspec.stats._kernels.afterpulse import sync_difference_counts

    if not isinstance(photons, Photons):
        raise QrspecError(f"photons={type(photons).__name__} must be a Photons object")
    if not photons.is_t3:
        raise QrspecError(f"{photons.source or 'photons'}: afterpulsing needs T3 data "
                          "(timestamps in laser periods); this is T2 data")
    dets = tuple(int(d) for d in detectors)
    if len(dets) != 2 or dets[0] == dets[1] or min(dets) < 0:
        raise QrspecError(f"detectors={detectors!r} must be two different 0-based detectors")
    period = photons.sync_period_s
    if not (isinstance(max_lag_s, float | int) and math.isfinite(max_lag_s)
            and max_lag_s >= period):
        raise QrspecError(f"max_lag_s={max_lag_s!r} must be a finite number >= one laser "
                          f"period ({period:.4g} s)")
    k_max = int(math.ceil(max_lag_s / period - 1e-9))
    syncs = [photons.timestamps[photons.detectors == d] for d in dets]
    n = np.asarray([s.size for s in syncs], np.int64)
    if np.any(n == 0):
        raise QrspecError(f"{photons.source or 'photons'}: detector "
                          f"{dets[int(np.argmin(n))]} has no photons; afterpulsing needs both "
                          f"detectors={dets}")
    auto = [sync_difference_counts(s, s, k_max, True) for s in syncs]
    c01 = sync_difference_counts(syncs[0], syncs[1], k_max, False)
    c10 = sync_difference_counts(syncs[1], syncs[0], k_max, False)
    cross = 0.5 * (c01 + c10)
    prob = np.empty(2)
    err = np.empty(2)
    excess = np.empty((2, k_max))
    for i in range(2):
        r = n[i] / n[1 - i]
        excess[i] = auto[i][1:] - r * cross[1:]
        prob[i] = excess[i].sum() / n[i]
        var = auto[i][1:].sum() + r * r * (c01[1:].sum() + c10[1:].sum()) / 4.0
        err[i] = math.sqrt(var) / n[i]
    return AfterpulseEstimate(dets, prob, err, n, excess,
                              np.asarray([a[0] for a in auto], np.int64), k_max, float(period))


@dataclass(frozen=True)
class G2Correction:
    """g2(0) corrected for afterpulsing.

    Attributes
    ----------
    g2_zero, g2_zero_err : float
        Corrected value and its error (statistical error of the measurement scaled by
        ``1 + p``, plus the error of ``p`` propagated).
    bias : float
        ``measured - corrected``.
    matters : bool
        ``|bias| > MATTERS_FRACTION * measured error``.
    """

    g2_zero: float
    g2_zero_err: float
    bias: float
    matters: bool


def correct_g2(g2_zero: float, g2_zero_err: float, p: tuple, p_err: tuple = (0.0, 0.0)
               ) -> G2Correction:
    """Remove the afterpulse pairs from a pulsed g2(0) (whole-period peak windows).

    Parameters
    ----------
    g2_zero, g2_zero_err : float
        Measured g2(0) and its error.
    p, p_err : (float, float)
        Afterpulse fractions of the two detectors' photons that enter the g2 (e.g.
        ``AfterpulseEstimate.probability``, or :func:`gated_probability` for a gated g2) and
        their errors.
    """
    try:
        p0, p1 = (float(v) for v in p)
        e0, e1 = (float(v) for v in p_err)
    except (TypeError, ValueError):
        raise QrspecError(f"p={p!r} and p_err={p_err!r} must be pairs of numbers") from None
    if not all(math.isfinite(v) for v in (p0, p1, e0, e1)) or p0 + p1 <= -1:
        raise QrspecError(f"p={p!r} and p_err={p_err!r} must be finite with p0 + p1 > -1")
    ps = p0 + p1
    g = float(g2_zero) * (1.0 + ps) - ps
    dg_dp = float(g2_zero) - 1.0
    err = math.hypot(float(g2_zero_err) * (1.0 + ps), dg_dp * math.hypot(e0, e1))
    bias = float(g2_zero) - g
    matters = bool(abs(bias) > MATTERS_FRACTION * float(g2_zero_err)) \
        if math.isfinite(g2_zero_err) else bool(abs(bias) > 0)
    return G2Correction(g, err, bias, matters)


def gated_probability(estimate: AfterpulseEstimate, gate_ns, photons_in_gate_fraction
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Afterpulse fractions among gated photons, afterpulses taken as flat in nanotime.

    Parameters
    ----------
    estimate : AfterpulseEstimate
    gate_ns : (float, float)
        Gate (its width over the period is the afterpulses' share in it).
    photons_in_gate_fraction : (float, float)
        Fraction of each detector's photons inside the gate.
    """
    lo, hi = (float(g) for g in gate_ns)
    period_ns = estimate.period_s * 1e9
    width = min(max(hi - lo, 0.0), period_ns) / period_ns
    f = np.asarray(photons_in_gate_fraction, np.float64)
    if f.shape != (2,) or np.any(~(f > 0)) or np.any(f > 1):
        raise QrspecError(f"photons_in_gate_fraction={photons_in_gate_fraction!r} must be two "
                          "fractions in (0, 1]")
    scale = width / f
    return estimate.probability * scale, estimate.probability_err * scale
