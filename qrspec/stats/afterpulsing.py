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

Decays (:func:`afterpulse_nanotime_profile`): afterpulses are not flat in nanotime when their
delays are comparable to the period (the simulator's 80 ns dead time + Exp(100 ns) at 10 MHz
gives a wrapped exponential), and a tail fit with a flat background then lengthens tau_X:
+1.2 % at 2 % afterpulsing, +3 % at 5 % (5.6 and 12 standard errors for a 20 s neutral rod;
``scripts/validate_detector.py --part decay``). The profile is measured the way ``p_d`` is:
the nanotime histogram of the photons of ``d`` that follow another photon of ``d`` by 1..K
periods (once per such predecessor), minus ``N_d/N_e`` times the histogram of the photons of
``d`` that follow a photon of ``e`` by 1..K periods. The accidental part cancels only in
expectation and is large under the decay peak, so the difference is smoothed with inverse-
variance weights (afterpulse delays spread over tens of ns, the profile is smooth); it then
enters the decay fit as a known background shape (``fixed_background``), never subtracted
from the counts (Poisson likelihoods need the counts as they are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["AfterpulseEstimate", "G2Correction", "estimate_afterpulsing", "correct_g2",
           "gated_probability", "afterpulse_nanotime_profile", "aligned_profile",
           "MATTERS_FRACTION"]

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

    detectors: tuple[int, ...]
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
    from qrspec.stats._kernels.afterpulse import pair_counts

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
    code = _codes(photons.detectors, dets)
    n = np.asarray([np.count_nonzero(code == 0), np.count_nonzero(code == 1)], np.int64)
    if np.any(n == 0):
        raise QrspecError(f"{photons.source or 'photons'}: detector "
                          f"{dets[int(np.argmin(n))]} has no photons; afterpulsing needs both "
                          f"detectors={dets}")
    counts = pair_counts(photons.timestamps, code, k_max)
    auto = [counts[0, 0], counts[1, 1]]
    c01, c10 = counts[0, 1], counts[1, 0]
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


def _codes(detectors: np.ndarray, dets: tuple) -> np.ndarray:
    """0 / 1 for the two detectors, -1 for any other (int8, one pass over a lookup table)."""
    table = np.full(256, -1, np.int8)
    table[dets[0]] = 0
    table[dets[1]] = 1
    return table[detectors]


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


def afterpulse_nanotime_profile(photons, estimate: AfterpulseEstimate, *,
                                coarse_ns: float = 5.0, span_ns: float = 15.0) -> np.ndarray:
    """Afterpulse counts per TCSPC bin of each detector (see the module docstring).

    The raw difference of the tagged histograms is summed in coarse bins of ``coarse_ns``; each
    coarse value is replaced by a local linear fit over the coarse bins within ``span_ns``
    (circularly), weighted by the inverse Poisson variance, so that the bins under the decay
    peak, where the accidental pairs make the difference noisy, take their value from their
    quieter neighbours; the result is interpolated back to TCSPC bins.

    Parameters
    ----------
    photons : Photons
        The T3 photons ``estimate`` was made from.
    estimate : AfterpulseEstimate
    coarse_ns, span_ns : float
        Coarse bin and smoothing half-width.

    Returns
    -------
    ndarray, shape (2, bins per period)
        Expected afterpulse counts per raw (unaligned) nanotime bin, clipped at 0. Pass it,
        aligned like the decay (:func:`aligned_profile`), as ``fixed_background`` of
        :func:`qrspec.fitting.lifetime.fit_decay` when the afterpulsing is significant
        (:meth:`AfterpulseEstimate.significant`); without afterpulses it is noise.
    """
    from qrspec.stats._kernels.afterpulse import tagged_nanotime_histograms

    if not isinstance(estimate, AfterpulseEstimate):
        raise QrspecError(f"estimate={type(estimate).__name__} must be an AfterpulseEstimate")
    for name, v in (("coarse_ns", coarse_ns), ("span_ns", span_ns)):
        if not (isinstance(v, float | int) and math.isfinite(v) and v > 0):
            raise QrspecError(f"{name}={v!r} must be a finite number > 0")
    nb = photons.nanotime_bins_per_period
    res_ns = photons.nanotimes_unit * 1e9
    code = _codes(photons.detectors, estimate.detectors)
    hist = tagged_nanotime_histograms(photons.timestamps, code, photons.nanotimes,
                                      estimate.max_lag_periods, nb)
    cw = max(1, int(round(coarse_ns / res_ns)))
    nc = -(-nb // cw)
    centres = (np.arange(nc) * cw + 0.5 * (np.minimum((np.arange(nc) + 1) * cw, nb)
                                           - np.arange(nc) * cw)) * res_ns
    width = np.diff(np.minimum(np.arange(nc + 1) * cw, nb))
    period_ns = nb * res_ns
    out = np.empty((2, nb))
    for i in range(2):
        j = 1 - i
        r = estimate.n_photons[i] / estimate.n_photons[j]
        tag, ref = hist[i, i], hist[j, i]
        pad = np.zeros(nc * cw)
        pad[:nb] = tag - r * ref
        y = pad.reshape(nc, cw).sum(axis=1) / width  # per TCSPC bin
        pad[:nb] = tag + r * r * ref
        var = np.maximum(pad.reshape(nc, cw).sum(axis=1), 1.0) / width**2
        w = 1.0 / var
        smooth = np.empty(nc)
        for c in range(nc):
            dx = (centres - centres[c] + 0.5 * period_ns) % period_ns - 0.5 * period_ns
            m = np.abs(dx) <= span_ns
            ww, xx, yy = w[m], dx[m], y[m]
            sw, sx, sxx = ww.sum(), (ww * xx).sum(), (ww * xx * xx).sum()
            sy, sxy = (ww * yy).sum(), (ww * xx * yy).sum()
            det = sw * sxx - sx * sx
            smooth[c] = (sxx * sy - sx * sxy) / det if det > 0 else sy / sw
        t = (np.arange(nb) + 0.5) * res_ns
        out[i] = np.interp(t, np.concatenate([centres - period_ns, centres,
                                              centres + period_ns]),
                           np.tile(smooth, 3))
    # expected counts cannot be negative (noise where there are no afterpulses)
    return np.maximum(out, 0.0)


def aligned_profile(profile: np.ndarray, decay) -> np.ndarray:
    """A raw per-detector nanotime profile on the aligned, rebinned axis of ``decay``.

    The profile is e.g. :func:`afterpulse_nanotime_profile`; ``decay`` is a
    :class:`qrspec.stats.decay.Decay` of the same detectors, in the same order; the result is
    summed over detectors.
    """
    prof = np.asarray(profile, np.float64)
    res = decay.resolution_ns
    nb = int(round(decay.period_ns / res))
    if prof.ndim != 2 or prof.shape != (len(decay.detectors), nb):
        raise QrspecError(f"profile shape {prof.shape} must be ({len(decay.detectors)}, {nb}) "
                          "(detectors x TCSPC bins per period)")
    r = int(round(decay.bin_ns / res))
    off = np.round(np.asarray(decay.offsets_ns) / res).astype(np.int64)
    aligned = np.vstack([np.roll(prof[d], -int(off[d])) for d in range(prof.shape[0])])
    n_out = decay.counts.size
    pad = np.zeros((prof.shape[0], n_out * r))
    pad[:, :nb] = aligned
    return pad.reshape(prof.shape[0], n_out, r).sum(axis=2).sum(axis=0)
