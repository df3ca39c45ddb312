"""Hanbury Brown-Twiss set-up from the data: which detectors, pulsed or CW, where lag zero is.

* :func:`choose_detectors`: the HBT pair (given, or the two detectors with most photons); one
  detector means a single-detector analysis where g2 is not applicable.
* :func:`detect_comb`: is there a pulsed comb in a cross-correlation, its period and phase
  (T2 data without sync, methods.md section 9.2; the period refinement is
  :func:`qrspec.stats.correlation.refine_comb`).
* :func:`find_zero_peak`: which comb peak is lag zero when a detector's cable delay exceeds a
  laser period (methods.md section 9.1).
* :func:`plan_g2`: the three together, giving the g2 mode (``"pulsed"``, ``"cw"`` or
  ``"not_applicable"``), the period and the delay the g2 functions should use.

Corrections to methods.md section 9.1 (implemented here):

* The areas are compared with the median ``m`` of the *other* peaks, and the evidence is
  ``z = (m - A_k*) / sqrt(m)``, the Poisson z-score of the suppression. When ``m < z_min**2``
  even a perfectly empty peak cannot reach ``z_min``: the data cannot decide ("too few pairs"),
  which the addendum's rule would instead report as "not antibunched".
* "The second-lowest area is consistent with m" is made a threshold on the second-lowest
  peak's own z-score (default 4, above the ~2.5-3 that the lowest of ~30 Poisson peaks reaches
  by chance), so that two suppressed peaks (a periodic artefact, a wrong period) are flagged as
  ambiguous instead of choosing one.
* With no decision the fallback is the sub-period delay (k = 0), flagged; a user's delay always
  wins and is recorded as such (the data's evidence is still reported, and a clear
  disagreement is flagged).

Corrections to methods.md section 9.2 (comb detection): the addendum takes the comb period from
the first strong maximum of the histogram's autocorrelation, which a CW antibunching dip or
blinking bunching (smooth features near lag 0, whose spectrum is broad) also produces. Here the
centre ``|lag| < mask_ns`` is left out, each side is detrended by a straight line, and the
summed periodogram of the two sides is tested against Poisson noise (each normalised line is
Exp(1), their sum Gamma(2, 1)) at a stated false-alarm probability; only then is the period
taken (lowest strong line) and refined, with the comb's phase, by a straight-line fit of peak
centroids against peak index.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons
from qrspec.stats._input import check_photons
from qrspec.stats.correlation import G2Curve, _lowest_strong_line, g2, g2_peaks, refine_comb
from qrspec.validate import detector_list, finite_float, integer, positive_float

__all__ = [
    "Comb",
    "DetectorChoice",
    "G2Plan",
    "ZeroPeak",
    "choose_detectors",
    "detect_comb",
    "find_zero_peak",
    "plan_g2",
]

logger = logging.getLogger(__name__)

_GAMMA2_MEDIAN = 1.678346990016661  # median of Gamma(2, 1): the sum of two Exp(1) lines


# ------------------------------------------------------------------ detectors
@dataclass(frozen=True)
class DetectorChoice:
    """The detectors used for the analysis and those left out.

    Attributes
    ----------
    detectors : tuple of int
        The HBT pair ``(start, stop)`` in ascending order, or one detector.
    mode : str
        ``"hbt"`` (two detectors: g2 applies) or ``"single"`` (one detector: trajectory,
        levels and decays only; g2 not applicable).
    source : str
        ``"user"`` (given) or ``"most_photons"`` (the default rule).
    n_photons : tuple of int
        Photons on each used detector.
    left_out : tuple of int
        Detectors with photons that are not used.
    n_left_out : int
        Photons on them.
    """

    detectors: tuple
    mode: str
    source: str
    n_photons: tuple
    left_out: tuple
    n_left_out: int

    @property
    def g2_applicable(self) -> bool:
        """True for an HBT pair."""
        return self.mode == "hbt"

    @property
    def note(self) -> str:
        """One line for a summary: which detectors were used and what was left out."""
        used = ", ".join(f"{d} ({n} photons)" for d, n in zip(self.detectors, self.n_photons,
                                                               strict=True))
        text = f"detectors used: {used} ({self.source})"
        if self.left_out:
            text += (f"; left out: {', '.join(map(str, self.left_out))} "
                     f"({self.n_left_out} photons)")
        if self.mode == "single":
            text += "; one detector: g2 not applicable"
        return text


def choose_detectors(photons: Photons, detectors=None) -> DetectorChoice:
    """Choose the HBT detector pair.

    Parameters
    ----------
    photons : Photons
        The photons (any number of detectors).
    detectors : int or sequence of int, optional
        One or two detectors to use; each must hold photons. Default: the two detectors with
        most photons (ties: the lower number), or the only one.

    Returns
    -------
    DetectorChoice
    """
    photons = check_photons(photons)
    counts = photons.counts_per_detector
    present = [int(d) for d in np.flatnonzero(counts)]
    if not present:
        raise QrspecError(f"{photons.source or 'photons'}: no photons on any detector")
    if detectors is not None:
        dets = detector_list("detectors", detectors)
        if len(dets) > 2:
            raise QrspecError(f"detectors={detectors!r} must be one or two detectors")
        missing = [d for d in dets if d not in present]
        if missing:
            raise QrspecError(f"detectors={detectors!r}: detector "
                              f"{', '.join(map(str, missing))} has no photons; detectors with "
                              f"photons: {present}")
        source = "user"
    else:
        order = sorted(present, key=lambda d: (-int(counts[d]), d))
        dets = order[:2]
        source = "most_photons"
    dets = sorted(dets)
    left = tuple(d for d in present if d not in dets)
    n_left = int(sum(int(counts[d]) for d in left))
    return DetectorChoice(tuple(dets), "hbt" if len(dets) == 2 else "single", source,
                          tuple(int(counts[d]) for d in dets), left, n_left)


# ------------------------------------------------------------------ comb
@dataclass(frozen=True)
class Comb:
    """Result of :func:`detect_comb`.

    Attributes
    ----------
    present : bool
        A periodic comb is present at the false-alarm probability used.
    period_ns : float
        Refined comb period (NaN when absent).
    phase_ns : float
        Lag of the comb peak nearest to lag 0, in ``(-period/2, period/2]`` (NaN when absent):
        the sub-period delay between the detectors.
    statistic : float
        Largest normalised line of the summed two-sided periodogram (Gamma(2, 1) under
        Poisson noise).
    p_value : float
        Probability that noise alone gives a line this strong anywhere in the searched band.
    false_alarm : float
        Threshold on ``p_value`` used.
    n_peaks_fitted : int
        Peaks whose centroids fixed period and phase.
    """

    present: bool
    period_ns: float
    phase_ns: float
    statistic: float
    p_value: float
    false_alarm: float
    n_peaks_fitted: int


def detect_comb(curve: G2Curve, *, min_period_ns=None, max_period_ns=None, mask_ns=None,
                false_alarm: float = 1e-3) -> Comb:
    """Decide whether a cross-correlation holds a pulsed comb; its period and phase.

    Parameters
    ----------
    curve : G2Curve
        A cross-correlation over ``+-L`` (e.g. ``g2(photons, max_lag_ns=2000, bin_ns=0.1)``).
    min_period_ns, max_period_ns : float, optional
        Searched periods (default: 4 bins to a quarter of the usable side length).
    mask_ns : float, optional
        Lags ``|lag| < mask_ns`` are left out of the test (default ``L / 4``): a CW
        antibunching dip and short bunching live there.
    false_alarm : float
        Probability of declaring a comb in Poisson noise (the whole band searched).

    Returns
    -------
    Comb
    """
    if not isinstance(curve, G2Curve):
        raise QrspecError(f"curve={type(curve).__name__} must be a G2Curve")
    fa = positive_float("false_alarm", false_alarm)
    if fa >= 1:
        raise QrspecError(f"false_alarm={false_alarm!r} must be in (0, 1)")
    lag, c = curve.lag_ns, curve.counts.astype(np.float64)
    half = min(-curve.edges_ns[0], curve.edges_ns[-1])
    mask = 0.25 * half if mask_ns is None else finite_float("mask_ns", mask_ns)
    if not 0 <= mask < half:
        raise QrspecError(f"mask_ns={mask_ns!r} must lie in [0, {half:.6g}) ns")
    left = c[(lag < -mask) & (lag > -half)][::-1]
    right = c[(lag > mask) & (lag < half)]
    n = min(left.size, right.size)
    absent = Comb(False, math.nan, math.nan, 0.0, 1.0, fa, 0)
    if n < 16 or c.sum() == 0:
        return absent
    bin_ns = curve.bin_ns
    lo_p = 4 * bin_ns if min_period_ns is None else positive_float("min_period_ns",
                                                                   min_period_ns)
    hi_p = n * bin_ns / 4 if max_period_ns is None else positive_float("max_period_ns",
                                                                       max_period_ns)
    if not lo_p < hi_p:
        raise QrspecError(f"min_period_ns={min_period_ns!r}, max_period_ns={max_period_ns!r} "
                          "must satisfy 0 < min < max")
    x = np.arange(n, dtype=np.float64)
    power = np.zeros(n // 2 + 1)
    for seg in (left[:n], right[:n]):
        trend = np.polyval(np.polyfit(x, seg, 1), x)
        # |FFT|^2 of Poisson counts minus their mean is ~ sum(counts) x Exp(1) per line
        power += np.abs(np.fft.rfft(seg - trend)) ** 2 / max(seg.sum(), 1.0)
    freq = np.fft.rfftfreq(n, d=bin_ns)
    band = np.flatnonzero((freq >= 1 / hi_p) & (freq <= 1 / lo_p))
    if band.size == 0:
        raise QrspecError("no frequency in the comb search range: widen the curve's lag range")
    scale = max(1.0, float(np.median(power[band])) / _GAMMA2_MEDIAN)  # over-dispersed noise
    t = power[band] / scale
    t_max = float(t.max())
    p_one = (1.0 + t_max) * math.exp(-t_max)  # Gamma(2, 1) tail
    p_value = float(-math.expm1(band.size * math.log1p(-min(p_one, 1 - 1e-16))))
    if not p_value < fa:
        return Comb(False, math.nan, math.nan, t_max, p_value, fa, 0)
    i = _lowest_strong_line(power, band)
    period, phase, n_fit = refine_comb(curve, 1.0 / freq[i])
    return Comb(True, period, phase, t_max, p_value, fa, n_fit)


# ------------------------------------------------------------------ zero peak
@dataclass(frozen=True, eq=False)
class ZeroPeak:
    """Which comb peak is lag zero, and the evidence.

    Attributes
    ----------
    delay_ns : float
        Total delay to subtract from every lag (``g2(..., delay_ns=delay_ns)``):
        ``base_delay_ns + zero_peak_index * period_ns``, or the user's value.
    zero_peak_index : int
        Index ``k*`` of the chosen peak relative to the sub-period estimate (0 when the data
        could not decide and there was no user delay).
    base_delay_ns : float
        The sub-period delay: rise offsets ``offset(det 1) - offset(det 0)`` (T3) or the
        comb phase (T2), known only modulo the period.
    period_ns : float
        Laser period.
    source : str
        ``"data"`` (the suppressed peak), ``"user"`` (``delay_ns`` given) or ``"default"``
        (no decision: k = 0).
    flag : str
        Why the data did not decide, or a disagreement with the user's delay; ``""`` if none.
    z_score : float
        ``(m - A_k*) / sqrt(m)`` of the lowest candidate peak (NaN without pairs).
    second_z : float
        The same for the lowest of the other peaks.
    median_area : float
        ``m``: median exposure-corrected area of the peaks other than ``k*``.
    peaks : ndarray of int
        Peak indices ``k`` of the evidence curve (relative to ``base_delay_ns``).
    areas : ndarray of float64
        Exposure-corrected peak areas.
    """

    delay_ns: float
    zero_peak_index: int
    base_delay_ns: float
    period_ns: float
    source: str
    flag: str
    z_score: float
    second_z: float
    median_area: float
    peaks: np.ndarray
    areas: np.ndarray

    @property
    def decided(self) -> bool:
        """True when the delay comes from the data or the user (not the k = 0 fallback)."""
        return self.source in ("data", "user")


def _base_delay_t3(photons: Photons, dets) -> float:
    from qrspec.stats.decay import decay_histogram

    d = decay_histogram(photons, detectors=sorted(dets))
    off = dict(zip(d.detectors, d.offsets_ns.tolist(), strict=True))
    return float(off[dets[1]] - off[dets[0]])


def find_zero_peak(photons: Photons, *, detectors=(0, 1), delay_ns=None, period_ns=None,
                   base_delay_ns=None, max_delay_periods: int = 5, n_side: int = 10,
                   bin_ns=None, z_min: float = 5.0, second_z_max: float = 4.0,
                   time_windows_s=None) -> ZeroPeak:
    """Find the zero-delay peak of a pulsed cross-correlation, whole-period delays included.

    The cross-correlation with the sub-period delay removed has peaks at ``k`` periods; for an
    antibunched emitter the true zero is the suppressed one. ``k* = argmin A_k`` over
    ``|k| <= max_delay_periods`` is accepted when ``z = (m - A_k*) / sqrt(m) >= z_min`` and the
    lowest other peak has ``z <= second_z_max`` (``m``: median of the other peaks; module
    docstring). Otherwise the result is flagged and falls back to ``k = 0``. For a source that
    is not antibunched the data cannot decide: give ``delay_ns``.

    Parameters
    ----------
    photons : Photons
        T3 photons, or T2 photons with ``period_ns`` and ``base_delay_ns`` (e.g. from
        :func:`detect_comb`).
    detectors : (int, int)
        ``(start, stop)``: lag = t(stop) - t(start).
    delay_ns : float, optional
        The user's total delay: used as given (``source="user"``).
    period_ns : float, optional
        Laser period (default: the T3 sync period).
    base_delay_ns : float, optional
        Sub-period delay (default T3: the difference of the detectors' rise offsets).
    max_delay_periods : int
        Whole-period delays searched: ``|k| <= max_delay_periods``.
    n_side : int
        Side peaks beyond the search range on each side (the reference).
    bin_ns : float, optional
        Histogram bin (default ``period / 32``).
    z_min, second_z_max : float
        Acceptance thresholds (module docstring).
    time_windows_s : sequence of (float, float), optional
        As in :func:`~qrspec.stats.correlation.g2`.

    Returns
    -------
    ZeroPeak
    """
    photons = check_photons(photons)
    dets = detector_list("detectors", detectors)
    if len(dets) != 2:
        raise QrspecError(f"detectors={detectors!r} must be two distinct detectors")
    k_max = integer("max_delay_periods", max_delay_periods, minimum=0, maximum=1000)
    n_side = integer("n_side", n_side, minimum=2, maximum=1000)
    z_min = positive_float("z_min", z_min)
    second_z_max = positive_float("second_z_max", second_z_max)
    user = None if delay_ns is None else finite_float("delay_ns", delay_ns)
    if period_ns is None:
        if not photons.is_t3:
            raise QrspecError("find_zero_peak on T2 data needs period_ns= (e.g. "
                              "detect_comb(...).period_ns)")
        period = photons.sync_period_s * 1e9
    else:
        period = positive_float("period_ns", period_ns)
    if base_delay_ns is None:
        if not photons.is_t3:
            raise QrspecError("find_zero_peak on T2 data needs base_delay_ns= (e.g. "
                              "detect_comb(...).phase_ns)")
        base = _base_delay_t3(photons, dets)
    else:
        base = finite_float("base_delay_ns", base_delay_ns)
    b = period / 32 if bin_ns is None else positive_float("bin_ns", bin_ns)
    curve = g2(photons, detectors=dets, period_ns=period, max_lag_periods=k_max + n_side,
               bin_ns=b, delay_ns=base, time_windows_s=time_windows_s)
    pk = g2_peaks(curve)
    areas = pk.areas * pk.exposure_factors
    peaks = pk.peaks
    cand = np.flatnonzero(np.abs(peaks) <= k_max)
    order = cand[np.lexsort((np.abs(peaks[cand]), areas[cand]))]  # lowest, then nearest 0
    i_star = int(order[0])
    others = np.delete(np.arange(peaks.size), i_star)
    m = float(np.median(areas[others]))
    a2 = float(areas[others].min())
    if m > 0:
        z = (m - float(areas[i_star])) / math.sqrt(m)
        z2 = (m - a2) / math.sqrt(m)
    else:
        z = z2 = math.nan
    k_star = int(peaks[i_star])
    flag = ""
    if not m > 0:
        flag = "zero peak not found: no photon pairs in the side peaks"
    elif m < z_min**2:
        flag = (f"zero peak not found: too few pairs (median peak area {m:.3g} < z_min^2 = "
                f"{z_min**2:.3g}; even an empty peak cannot reach z_min={z_min:g})")
    elif z < z_min:
        flag = (f"zero peak not found: no suppressed peak (lowest k={k_star} has z={z:.2f} < "
                f"{z_min:g}); the source is not antibunched or the data are too few: set the "
                "delay")
    elif z2 > second_z_max:
        k2 = int(peaks[others][np.argmin(areas[others])])
        flag = (f"zero peak ambiguous: k={k_star} (z={z:.2f}) and k={k2} (z={z2:.2f}) are both "
                "suppressed")
    decided = flag == ""
    if user is not None:
        k_user = (user - base) / period
        note = ""
        if decided and abs(k_user - k_star) > 0.25:
            note = (f"user delay_ns={user:g} disagrees with the data's zero peak at "
                    f"{base + k_star * period:.4g} ns (k={k_star}, z={z:.2f})")
        return ZeroPeak(user, int(round(k_user)), base, period, "user", note, z, z2, m, peaks,
                        areas)
    if not decided:
        logger.info("%s", flag)
        return ZeroPeak(base, 0, base, period, "default", flag, z, z2, m, peaks, areas)
    return ZeroPeak(base + k_star * period, k_star, base, period, "data", "", z, z2, m, peaks,
                    areas)


# ------------------------------------------------------------------ plan
@dataclass(frozen=True, eq=False)
class G2Plan:
    """How to compute g2 for a particle: detectors, mode, period and lag zero.

    Attributes
    ----------
    choice : DetectorChoice
        The detectors.
    g2_mode : str
        ``"pulsed"`` (peak areas, :func:`~qrspec.stats.correlation.g2_peaks`), ``"cw"`` (dip
        fit, :func:`qrspec.fitting.antibunching.fit_antibunching`) or ``"not_applicable"``
        (one detector).
    period_ns : float
        Laser period (NaN unless pulsed).
    period_source : str
        ``"sync"`` (T3 sync), ``"comb"`` (found in the data), ``"user"`` or ``""``.
    delay_ns : float
        Delay to pass to ``g2(delay_ns=...)`` (pulsed: the zero peak's; CW: the user's or 0).
    zero_peak : ZeroPeak or None
        Pulsed only.
    comb : Comb or None
        The comb test (T2 without a given period).
    flags : tuple of str
        What a summary should carry (detector note excluded: ``choice.note``).
    """

    choice: DetectorChoice
    g2_mode: str
    period_ns: float
    period_source: str
    delay_ns: float
    zero_peak: ZeroPeak | None
    comb: Comb | None
    flags: tuple


def plan_g2(photons: Photons, *, detectors=None, delay_ns=None, period_ns=None,
            comb_lag_ns: float = 2000.0, comb_bin_ns: float = 0.1, false_alarm: float = 1e-3,
            **zero_peak_options) -> G2Plan:
    """Decide how to compute g2 for these photons.

    T3 data (or T2 data given nanotimes from sync records) are pulsed at the sync period; T2
    data without sync are pulsed if :func:`detect_comb` finds a comb in the cross-correlation
    over ``+-comb_lag_ns``, else CW; one detector is "not applicable". For pulsed data the zero
    peak comes from :func:`find_zero_peak` (or the user's ``delay_ns``).

    Parameters
    ----------
    photons : Photons
        The photons of one particle.
    detectors : sequence of int, optional
        As in :func:`choose_detectors`.
    delay_ns : float, optional
        The user's HBT delay (total, whole periods included).
    period_ns : float, optional
        The laser period (T2: skips the comb test and means pulsed).
    comb_lag_ns, comb_bin_ns : float
        Lag range and bin of the comb test curve (T2).
    false_alarm : float
        Comb test false-alarm probability.
    **zero_peak_options
        Passed to :func:`find_zero_peak` (``max_delay_periods``, ``z_min``, ...).

    Returns
    -------
    G2Plan
    """
    photons = check_photons(photons)
    choice = choose_detectors(photons, detectors)
    flags = []
    if not choice.g2_applicable:
        return G2Plan(choice, "not_applicable", math.nan, "", math.nan, None, None,
                      ("g2 not applicable: one detector",))
    dets = choice.detectors
    comb = None
    if photons.is_t3:
        period = photons.sync_period_s * 1e9 if period_ns is None else positive_float(
            "period_ns", period_ns)
        source = "sync" if period_ns is None else "user"
        base = None
    elif period_ns is not None:
        period, source = positive_float("period_ns", period_ns), "user"
        curve = g2(photons, detectors=dets, max_lag_ns=max(comb_lag_ns, 10 * period),
                   bin_ns=min(comb_bin_ns, period / 16))
        _, base, _ = refine_comb(curve, period)  # the comb's phase; the user's period stands
    else:
        curve = g2(photons, detectors=dets, max_lag_ns=positive_float("comb_lag_ns",
                                                                       comb_lag_ns),
                   bin_ns=positive_float("comb_bin_ns", comb_bin_ns))
        comb = detect_comb(curve, false_alarm=false_alarm)
        if not comb.present:
            user = 0.0 if delay_ns is None else finite_float("delay_ns", delay_ns)
            return G2Plan(choice, "cw", math.nan, "", user, None, comb, tuple(flags))
        period, base, source = comb.period_ns, comb.phase_ns, "comb"
    zp = find_zero_peak(photons, detectors=dets, delay_ns=delay_ns, period_ns=period,
                        base_delay_ns=base, **zero_peak_options)
    if zp.flag:
        flags.append(zp.flag)
    return G2Plan(choice, "pulsed", period, source, zp.delay_ns, zp, comb, tuple(flags))
