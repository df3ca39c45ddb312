"""Bleaching: the trajectory ends in a permanent off state; the analysis stops before it.

A particle is called bleached when its last stay is off (label in ``off_labels``: at the
background) and that stay is too long to be one more off blink:

* with an off-dwell law (at least ``MIN_EVENTS`` complete off stays above the resolution): the
  probability, were the particle still blinking, that the trace ends inside an off stay that
  began at least ``D`` (the final duration) before the end, is below ``p_threshold`` (default
  0.01). Every off stay k that began at ``s_k <= T_end - D`` could have been the one that runs
  to the end, so ``p = sum_k P_emp(T >= t_min) S(T_end - s_k)`` (capped at 1) with ``S`` the
  fitted power law. Testing the final stay alone, ``S(D)``, ignores those other chances and
  gave 3 false alarms in 4 non-bleaching particles ending off (alpha_off = 1.5); and the power
  law is the heaviest-tailed law, so the choice is conservative. With heavy-tailed off times
  (alpha < 2: no mean, the process ages) a final off stay of tens of seconds is *not* evidence
  of bleaching, and the data cannot say more;
* without one (a particle that rarely blinked off): the same probability with a prior power law,
  exponent ``prior_alpha`` (default 1.5, the heavy end of the off-time exponents reported for
  single QDs) from ``t_min`` = the resolution. A rule on the duration alone (``D`` >= 5 s and
  >= 10x the longest off stay) was tried first and called 2 of 5 non-bleaching particles with
  heavy-tailed off times bleached; the prior makes the call conservative.

In both cases ``D >= min_final_s``. The bleach time is the start of the final stay (a segment
boundary); :meth:`Bleaching.trim` keeps the segments before it, and the photons of
``Bleaching.window_s`` are the ones to analyse. False-alarm and detection rates on simulated
particles: ``scripts/validate_hygiene.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.levels.segments import Segments

__all__ = ["Bleaching", "detect_bleaching"]


@dataclass(frozen=True)
class Bleaching:
    """Bleaching decision of one trajectory.

    Attributes
    ----------
    bleached : bool
    bleach_time_s : float
        Start of the permanent off state (NaN when not bleached).
    final_off_s : float
        Duration of the final off stay (NaN when the last stay is on).
    survival_p : float
        Probability of an off blink at least that long (NaN when not computed).
    method : str
        ``"power_law"`` (fitted off law), ``"prior_power_law"``, ``"last_stay_on"``,
        ``"never_on"``, ``"empty"``.
    window_s : tuple of float
        ``(start_s, stop_s)`` to analyse: the whole trace, or up to the bleach time.
    p_threshold : float
    """

    bleached: bool
    bleach_time_s: float
    final_off_s: float
    survival_p: float
    method: str
    window_s: tuple[float, ...]
    p_threshold: float

    def trim(self, segments: Segments) -> Segments:
        """The segments inside :attr:`window_s` (all of them when not bleached)."""
        if not self.bleached:
            return segments
        keep = segments.stop_s <= self.bleach_time_s + 1e-12
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return Segments.empty()
        b_s = np.concatenate([segments.start_s[idx], [segments.stop_s[idx[-1]]]])
        b_i = np.concatenate([segments.start_index[idx], [segments.stop_index[idx[-1]]]])
        return Segments.from_boundaries(b_s, b_i, level=segments.level[idx],
                                        label=segments.label[idx])


def detect_bleaching(segments: Segments, *, off_labels=("off",), p_threshold: float = 0.01,
                     min_final_s: float = 1.0, prior_alpha: float = 1.5,
                     resolution_s: float | None = None) -> Bleaching:
    """Decide whether the trajectory ends bleached (see the module docstring).

    Parameters
    ----------
    segments : Segments
        Labelled segments of the whole trace.
    off_labels : sequence of str
        Labels of the off (background) state.
    p_threshold : float
        Largest blink probability of the final stay that still counts as a blink.
    min_final_s : float
        Shortest final off stay ever called bleaching.
    prior_alpha : float
        Off-time exponent assumed when there are too few off stays for a law (> 1).
    resolution_s : float, optional
        Change-point time resolution (default from the on/off intensities).
    """
    from qrspec.levels.dwell import MIN_EVENTS, dwell_sequence, dwell_time_resolution_s
    from qrspec.levels.dwell_laws import fit_dwell_law

    if not (isinstance(p_threshold, float | int) and 0 < p_threshold < 1):
        raise QrspecError(f"p_threshold={p_threshold!r} must be in (0, 1)")
    if not (isinstance(min_final_s, float | int) and math.isfinite(min_final_s)
            and min_final_s >= 0):
        raise QrspecError(f"min_final_s={min_final_s!r} must be a finite number >= 0")
    if not (isinstance(prior_alpha, float | int) and math.isfinite(prior_alpha)
            and prior_alpha > 1):
        raise QrspecError(f"prior_alpha={prior_alpha!r} must be a finite number > 1")
    seq = dwell_sequence(segments, by="onoff", off_labels=off_labels)
    nan = math.nan
    if seq.size == 0:
        return Bleaching(False, nan, nan, nan, "empty", (nan, nan), float(p_threshold))
    whole = (float(segments.start_s[0]), float(segments.stop_s[-1]))
    if seq.state[-1] == 1:
        return Bleaching(False, nan, nan, nan, "last_stay_on", whole, float(p_threshold))
    if seq.size == 1:
        return Bleaching(False, nan, float(seq.duration_s[-1]), nan, "never_on", whole,
                         float(p_threshold))
    d_final = float(seq.duration_s[-1])
    start = float(seq.start_s[-1])
    complete, _ = seq.durations("off")
    if resolution_s is None:
        resolution_s = dwell_time_resolution_s(seq.intensity_cps[1], seq.intensity_cps[0])
    law = None
    if np.isfinite(resolution_s) and resolution_s > 0:
        law = fit_dwell_law(complete, (), resolution_s=float(resolution_s),
                            min_events=MIN_EVENTS, models=("power_law",), n_boot=0)
    end = float(seq.start_s[-1] + seq.duration_s[-1])
    starts = seq.start_s[(seq.state == 0) & ~seq.left_censored]
    age = end - starts[starts <= start + 1e-12]  # every off stay that began early enough
    if law is not None and np.isfinite(law.alpha):
        frac = float(np.mean(complete >= law.t_min_s))
        surv = law.fit("power_law").survival(np.maximum(age, law.t_min_s))
        method = "power_law"
    else:
        t0 = float(resolution_s) if np.isfinite(resolution_s) and resolution_s > 0 else 1e-3
        frac = 1.0
        surv = np.minimum(1.0, (np.maximum(age, t0) / t0) ** (1.0 - float(prior_alpha)))
        method = "prior_power_law"
    p = min(1.0, frac * float(np.sum(surv)))
    bleached = p < p_threshold and d_final >= min_final_s
    window = (whole[0], start) if bleached else whole
    return Bleaching(bool(bleached), start if bleached else nan, d_final, p, method, window,
                     float(p_threshold))
