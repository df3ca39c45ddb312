"""State labels of intensity levels: neutral, charged, trap, off (methods.md §2.8, §3.4).

For each level L: intensity ``I_L`` (photons / time in the level), lifetime ``tau_L`` (from the
fitting layer, or the built-in mean-delay estimate), corrected intensity
``I_L^corr = (I_L - background) / correction_L`` and the apparent radiative rate
``k_r,app(L) = I_L^corr / tau_L``. Because ``I ∝ QY = k_r tau`` at fixed excitation and
collection, ``rho_rad(L) = k_r,app(L) / k_r,app(neutral)`` is the ratio of radiative rates.

Rules (all thresholds are fields of :class:`LabelRules`):

1. **off**: ``I_L - background < off_sigma * sigma`` (within ``off_sigma`` Poisson standard
   errors of the background) or ``< off_fraction * (I_brightest - background)``.
2. **neutral**: the brightest level that is not off (rho_rad = 1 by definition). A note is added
   if another level has a significantly longer lifetime.
3. **charged**: ``rho_rad >= rho_split`` and ``rho_rad - 1 > z * sigma_rho`` (radiative rate
   raised, e.g. trion rho ≈ 2), and, if ``require_shorter_tau``, ``tau_L`` significantly shorter
   than the neutral lifetime.
4. **trap**: ``rho_low <= rho_rad < rho_split``: dimmer at an unchanged radiative rate
   (non-radiative trapping of band-edge carriers, "BC" blinking). Not converted to n_c.
5. **unclassified**: everything else, with the reason in ``notes``: ``rho_rad < rho_low``
   (intensity drop at a constant or longer lifetime: hot-carrier trapping, B-type blinking, or a
   collection change), a missing lifetime, or a charging-like rho that is not significant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from qrspec.errors import QrspecError
from qrspec.levels.segments import Segments

__all__ = ["LabelRules", "LevelLabels", "label_levels", "mean_delay_lifetime"]

logger = logging.getLogger(__name__)

LABELS = ("neutral", "charged", "trap", "off", "unclassified")


@dataclass(frozen=True)
class LabelRules:
    """Thresholds of the labelling rules (see the module docstring).

    Attributes
    ----------
    off_sigma : float
        A level is off when its background-corrected intensity is below ``off_sigma`` standard
        errors (default 3).
    off_fraction : float
        ... or below this fraction of the brightest level (default 0.1).
    z : float
        Significance, in standard errors, for "rho_rad differs from 1" and "tau shorter than the
        neutral tau" (default 2).
    rho_split : float
        Smallest rho_rad labelled charged (default 1.4 ≈ sqrt(2), the geometric midpoint between
        a trap, rho = 1, and a trion, rho = 2).
    rho_low : float
        Smallest rho_rad labelled trap (default 0.7 ≈ 1/sqrt(2)); below it: unclassified.
    require_shorter_tau : bool
        Charged levels must have a significantly shorter lifetime than the neutral one
        (default True).
    """

    off_sigma: float = 3.0
    off_fraction: float = 0.1
    z: float = 2.0
    rho_split: float = 1.4
    rho_low: float = 0.7
    require_shorter_tau: bool = True

    def __post_init__(self):
        for name in ("off_sigma", "z"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise QrspecError(f"{name}={v!r} must be >= 0")
        if not 0 <= self.off_fraction < 1:
            raise QrspecError(f"off_fraction={self.off_fraction!r} must be in [0, 1)")
        if not 0 < self.rho_low < 1 < self.rho_split:
            raise QrspecError(f"rho_low={self.rho_low!r} and rho_split={self.rho_split!r} must "
                              "satisfy 0 < rho_low < 1 < rho_split")


@dataclass(frozen=True, eq=False)
class LevelLabels:
    """Per-level quantities and labels.

    Attributes
    ----------
    segments : Segments
        Segments with ``label`` set from their level.
    label : ndarray of str
        Label of each level.
    intensity_cps, intensity_err_cps : ndarray of float64
        Raw level intensity and Poisson error.
    corrected_cps, corrected_err_cps : ndarray of float64
        ``(I - background) / correction`` and its error.
    tau_ns, tau_err_ns : ndarray of float64
        Level lifetimes (NaN where unknown).
    rho_rad, rho_rad_err : ndarray of float64
        Radiative-rate ratio against the neutral level (NaN for off levels).
    neutral_level : int
        Index of the neutral level (-1 if every level is off).
    notes : tuple of str
        Reason or warning per level ("" when none).
    rules : LabelRules
        The rules used.
    """

    segments: Segments
    label: np.ndarray
    intensity_cps: np.ndarray
    intensity_err_cps: np.ndarray
    corrected_cps: np.ndarray
    corrected_err_cps: np.ndarray
    tau_ns: np.ndarray
    tau_err_ns: np.ndarray
    rho_rad: np.ndarray
    rho_rad_err: np.ndarray
    neutral_level: int
    notes: tuple
    rules: LabelRules = field(default_factory=LabelRules)


def mean_delay_lifetime(nanotimes_ns, offset_ns: float) -> tuple[float, float]:
    """Lifetime from the mean delay after ``offset_ns`` (rough; for tests and quick looks).

    ``tau = mean(t - offset)`` over photons with ``t >= offset``, error ``tau/sqrt(N)`` (exact
    for a mono-exponential decay without IRF, background or period truncation).
    """
    t = np.asarray(nanotimes_ns, dtype=np.float64)
    d = t[t >= offset_ns] - offset_ns
    if d.size < 2:
        return float("nan"), float("nan")
    tau = float(d.mean())
    return tau, tau / np.sqrt(d.size)


def _level_stats(segments: Segments, n_levels: int):
    n = np.bincount(segments.level, weights=segments.n_photons, minlength=n_levels)
    t = np.bincount(segments.level, weights=segments.duration_s, minlength=n_levels)
    return n, t


def label_levels(
    levels,
    *,
    lifetimes=None,
    tau_err_ns=None,
    nanotimes_ns=None,
    delay_offset_ns: float | None = None,
    background_cps: float = 0.0,
    background_err_cps: float = 0.0,
    intensity_correction=None,
    rules: LabelRules | None = None,
) -> LevelLabels:
    """Label intensity levels neutral / charged / trap / off / unclassified.

    Parameters
    ----------
    levels : LevelClustering or Segments
        Segments with ``level`` assigned (e.g. from :func:`cluster_levels` or
        :func:`threshold_levels`).
    lifetimes : callable, array_like or None
        Lifetime of each level in ns. A callable gets the level's merged time windows
        (``ndarray (m, 2)`` of ``start_s, stop_s``) and returns ``(tau_ns, tau_err_ns)``; this is
        how a fit from ``qrspec.fitting`` plugs in. An array gives ``tau_ns`` per level (errors in
        ``tau_err_ns``, else treated as 0). None uses :func:`mean_delay_lifetime` on
        ``nanotimes_ns`` with ``delay_offset_ns``.
    tau_err_ns : array_like, optional
        Errors for an array ``lifetimes``.
    nanotimes_ns : array_like, optional
        Per-photon TCSPC delays in ns, aligned with the time-sorted photons the segments index.
    delay_offset_ns : float, optional
        IRF position for the mean-delay estimate.
    background_cps, background_err_cps : float
        Background rate subtracted from every level, and its error.
    intensity_correction : array_like, optional
        Per-level divisor of the background-corrected intensity, e.g. the multiexciton share
        ``P(>=1) + (eta_XX/eta_X) P(>=2)`` of methods.md §2.8 (default 1).
    rules : LabelRules, optional
        Thresholds (defaults documented in :class:`LabelRules`).

    Returns
    -------
    LevelLabels
    """
    from qrspec.levels.clustering import LevelClustering

    rules = LabelRules() if rules is None else rules
    if not isinstance(rules, LabelRules):
        raise QrspecError(f"rules must be a LabelRules, got {type(rules).__name__}")
    seg = levels.segments if isinstance(levels, LevelClustering) else levels
    if not isinstance(seg, Segments):
        raise QrspecError(f"levels must be LevelClustering or Segments, got "
                          f"{type(levels).__name__}")
    if seg.size == 0 or np.any(seg.level < 0):
        raise QrspecError("levels must have every segment assigned to a level (level >= 0); "
                          "run cluster_levels first")
    if not np.isfinite(background_cps) or background_cps < 0:
        raise QrspecError(f"background_cps={background_cps!r} must be >= 0")
    if not np.isfinite(background_err_cps) or background_err_cps < 0:
        raise QrspecError(f"background_err_cps={background_err_cps!r} must be >= 0")
    g = seg.n_levels
    n_ph, dur = _level_stats(seg, g)
    present = dur > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        inten = np.where(present, n_ph / np.where(present, dur, 1.0), np.nan)
        inten_err = np.where(present, np.sqrt(n_ph) / np.where(present, dur, 1.0), np.nan)
    if intensity_correction is None:
        corr = np.ones(g)
    else:
        corr = np.asarray(intensity_correction, dtype=np.float64)
        if corr.shape != (g,) or not np.all(np.isfinite(corr)) or np.any(corr <= 0):
            raise QrspecError(f"intensity_correction must hold {g} positive values, got "
                              f"{intensity_correction!r}")
    net = inten - background_cps
    net_err = np.sqrt(inten_err**2 + background_err_cps**2)
    corrected = net / corr
    corrected_err = net_err / corr

    tau, tau_err = _lifetimes(seg, g, lifetimes, tau_err_ns, nanotimes_ns, delay_offset_ns)

    labels = np.full(g, "unclassified", dtype="U12")
    notes = [""] * g
    brightest = int(np.nanargmax(inten))
    off = (net < rules.off_sigma * net_err) | (net < rules.off_fraction * net[brightest])
    off |= ~present
    labels[off] = "off"
    for k in np.flatnonzero(off):
        notes[k] = "intensity consistent with background" if present[k] else "empty level"
    rho = np.full(g, np.nan)
    rho_err = np.full(g, np.nan)
    if off.all():
        neutral = -1
    else:
        cand = np.where(off, -np.inf, inten)
        neutral = int(np.argmax(cand))
        labels[neutral] = "neutral"
        rho[neutral], rho_err[neutral] = 1.0, 0.0
        kr_n = corrected[neutral] / tau[neutral]
        rel_n = (corrected_err[neutral] / corrected[neutral]) ** 2 + (
            tau_err[neutral] / tau[neutral]) ** 2
        longer = [k for k in range(g) if k != neutral and not off[k] and np.isfinite(tau[k])
                  and tau[k] - tau[neutral] > rules.z * np.hypot(tau_err[k], tau_err[neutral])]
        if longer:
            notes[neutral] = f"levels {longer} have a longer lifetime than the brightest level"
        for k in range(g):
            if off[k] or k == neutral:
                continue
            if not (np.isfinite(tau[k]) and np.isfinite(tau[neutral]) and tau[k] > 0):
                notes[k] = "no lifetime"
                continue
            rho[k] = (corrected[k] / tau[k]) / kr_n
            rel = (corrected_err[k] / corrected[k]) ** 2 + (tau_err[k] / tau[k]) ** 2 + rel_n
            rho_err[k] = rho[k] * np.sqrt(rel)
            dtau_sig = np.hypot(tau_err[k], tau_err[neutral])
            shorter = tau[neutral] - tau[k] > rules.z * dtau_sig
            if rho[k] >= rules.rho_split:
                if rho[k] - 1.0 <= rules.z * rho_err[k]:
                    notes[k] = f"rho_rad={rho[k]:.3g} not significantly above 1"
                elif rules.require_shorter_tau and not shorter:
                    notes[k] = (f"rho_rad={rho[k]:.3g} charging-like but tau not shorter than "
                                "the neutral tau")
                else:
                    labels[k] = "charged"
            elif rho[k] >= rules.rho_low:
                labels[k] = "trap"
            else:
                notes[k] = (f"rho_rad={rho[k]:.3g} < {rules.rho_low}: hot-carrier trapping "
                            "(B-type) or collection change")
    seg_labels = labels[seg.level]
    logger.debug("level labels %s", labels)
    return LevelLabels(
        segments=seg.with_labels(seg_labels),
        label=labels,
        intensity_cps=inten,
        intensity_err_cps=inten_err,
        corrected_cps=corrected,
        corrected_err_cps=corrected_err,
        tau_ns=tau,
        tau_err_ns=tau_err,
        rho_rad=rho,
        rho_rad_err=rho_err,
        neutral_level=neutral,
        notes=tuple(notes),
        rules=rules,
    )


def _lifetimes(seg, g, lifetimes, tau_err_ns, nanotimes_ns, delay_offset_ns):
    if callable(lifetimes):
        tau = np.full(g, np.nan)
        err = np.full(g, np.nan)
        for k in range(g):
            w = seg.windows(level=k)
            if w.shape[0] == 0:
                continue
            out = lifetimes(w)
            try:
                tau[k], err[k] = (float(v) for v in out)
            except (TypeError, ValueError):
                raise QrspecError(f"lifetimes callable must return (tau_ns, tau_err_ns), got "
                                  f"{out!r}") from None
        return tau, err
    if lifetimes is not None:
        tau = np.asarray(lifetimes, dtype=np.float64)
        if tau.shape != (g,):
            raise QrspecError(f"lifetimes shape {tau.shape} != number of levels ({g},)")
        if tau_err_ns is None:
            err = np.zeros(g)
        else:
            err = np.asarray(tau_err_ns, dtype=np.float64)
            if err.shape != (g,):
                raise QrspecError(f"tau_err_ns shape {err.shape} != number of levels ({g},)")
        return tau, err
    if nanotimes_ns is None or delay_offset_ns is None:
        raise QrspecError("give lifetimes, or nanotimes_ns and delay_offset_ns for the built-in "
                          "mean-delay estimate")
    nt = np.asarray(nanotimes_ns, dtype=np.float64)
    if nt.ndim != 1 or nt.size < int(seg.stop_index[-1]):
        raise QrspecError(f"nanotimes_ns has {nt.size} values; the segments index "
                          f"{int(seg.stop_index[-1])} photons")
    tau = np.full(g, np.nan)
    err = np.full(g, np.nan)
    for k in range(g):
        rng = seg.windows(level=k, as_index=True)
        if rng.shape[0] == 0:
            continue
        sel = np.concatenate([nt[a:b] for a, b in rng])
        tau[k], err[k] = mean_delay_lifetime(sel, delay_offset_ns)
    return tau, err
