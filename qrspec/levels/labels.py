"""State labels of intensity levels from physics.

Neutral, charged, trap, off (methods.md §2.8, §3.4).

For each level L: intensity ``I_L`` (photons / time in the level), exciton lifetime
``tau_L``, and where photon pairs allow the biexciton lifetime ``tau_XX,L`` and the ratio
``R_L = tau_L / tau_XX,L`` (:func:`qrspec.levels.level_evidence`); corrected intensity
``I_L^corr = (I_L - background) / correction_L`` and the apparent radiative rate
``k_r,app(L) = I_L^corr / tau_L``. Because ``I ∝ QY = k_r tau`` at fixed excitation and
collection, ``rho_rad(L) = k_r,app(L) / k_r,app(neutral)`` is the ratio of radiative rates.

Rules (thresholds are fields of :class:`LabelRules`; ``Phi`` the normal CDF):

1. **off**: ``I_L - background < off_sigma * sigma`` (within ``off_sigma`` Poisson standard
   errors of the background) or ``< off_fraction * (I_brightest - background)``.
2. **neutral candidate**: charging adds radiative and Auger rates, traps add non-radiative ones,
   so the neutral state has the *longest* exciton lifetime. The candidates are the levels whose
   lifetime is not significantly (``z``) shorter than another level's; the brightest candidate
   (raw intensity) is tested (a dimmer level at the same lifetime is B-type blinking or a
   collection change). Brightness rank alone decides nothing: a charged level can be brighter
   than a neutral one with a low QY_X0.
3. **is it neutral?** The pair ratio decides: neutral ``R0 = beta_XX QY_X0 + tau_X0 /
   tau_A,XX0 >= 2.9`` for QY_X0 >= 0.7, charged ``R < 2.9`` (capped variant, all n; the
   uncapped and power-law variants exceed it only at large n, whose levels are never the
   longest-lived). With ``P = Phi((R - ratio_split) / sigma_R)``: ``P >= 1 - alpha`` confirms
   the neutral label (confidence P); ``P <= alpha`` means **no neutral period** (flag
   ``no_neutral``, unless a non-off level without a lifetime might be the neutral one; the
   candidate is charged-like, confidence 1 - P); in between, or without pairs, the candidate
   is labelled neutral with flag ``neutral_unconfirmed`` (confidence P, NaN without pairs)
   when ``P >= 0.5``; for ``alpha < P < 0.5`` no level is labelled neutral (flag
   ``neutral_undecided``): a wrong neutral reference spoils every charging number, a missing
   one only withholds them. When no level has a lifetime at all, the brightest stands in
   (unconfirmed) so that its failing fits report why. An unconfirmed candidate whose radiative
   rate equals (rho_rad < ``rho_split`` at ``z``) that of a level charged by its own ratio is
   not labelled neutral either (``neutral_undecided``): charged states radiate at ``beta_X- k_r
   = 2 k_r``, so against a true neutral level a charged one has rho_rad ~ 2 (a staircase whose
   last, least-charged state lacks pairs). A user reference ``neutral_tau_x_ns``
   adds the test ``tau >= charged_tau_fraction * tau_ref`` (every charged state has
   ``tau_X^c <= tau_X0 / (1 + QY_X0) <= 0.59 tau_X0``): significantly shorter means no
   neutral period.
4. With a neutral level, the others by rho_rad (a z-test at ``z``): **charged** when
   ``rho_rad >= rho_split``, ``rho_rad - 1 > z sigma_rho`` (trion-like, rho ≈ 2) and, if
   ``require_shorter_tau``, a significantly shorter lifetime (confidence
   ``Phi((rho - rho_split) / sigma_rho)``); **trap** when ``rho_low <= rho_rad < rho_split``
   (dimmer at an unchanged radiative rate: non-radiative trapping, "BC" blinking; confidence
   the normal probability of that interval); **unclassified** otherwise, with the reason in
   ``notes``.
5. Without a neutral level: levels with ``Phi((ratio_split - R) / sigma_R) >= 1 - alpha`` are
   **charged** (confidence that probability; trap and charged cannot be told apart without a
   neutral reference, noted). With ``no_neutral`` (significant) every other level is charged
   too unless its own ratio is neutral-like (none outlives a charged level); the rest are
   unclassified.
6. **Mixed states**: a level whose late-tail decay needs two exciton lifetimes (``shape_p <
   shape_alpha``, minor component >= ``shape_min_fraction`` of the tail photons at a lifetime
   ratio >= ``shape_min_tau_ratio`` and <= ``shape_max_tau_ns``) merges charge states (a
   missed change point): flag ``mixed_states`` and a note; the label stays, its confidence
   does not cover the merge.
7. **Overrides** (``overrides=``): ``{level: label}`` entries replace a level's label
   (confidence 1, note "user override"); a level set to neutral replaces rules 2-3 and the
   others are labelled against it (rule 4); ``(start_s, stop_s, label)`` rows relabel the segments
   that lie more than half inside the time range. Flag ``user_override``.

Flags and their false-alarm rates on simulated rods are in ``docs/levels.md``.
"""

from __future__ import annotations

import logging
import math
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
    ratio_split : float
        tau_X/tau_XX above which a level is neutral-like (default 2.9: neutral >= 2.93 for
        QY_X0 >= 0.7, tau_X0 >= 4 ns, tau_A,XX0 <= 30 ns; capped-variant charged states <= 2.92).
    alpha : float
        One-sided error probability of the neutral / no-neutral / charged decisions from the
        ratio (default 0.023, i.e. 2 sigma).
    charged_tau_fraction : float
        With a reference neutral lifetime, a level with ``tau < charged_tau_fraction * tau_ref``
        (significantly) is not neutral (default 0.75; charged states have <= 0.59).
    shape_alpha : float
        p-value below which a level's late-tail decay is not mono-exponential (default 1e-3).
    shape_min_fraction : float
        Smallest photon fraction of the second component for the mixed-states flag
        (default 0.05; afterpulsing and the biexciton residue stay below 0.01).
    shape_min_tau_ratio : float
        Smallest ratio of the two components' lifetimes for the flag (default 1.5).
    shape_max_tau_ns : float
        Longest second-component lifetime that counts as an exciton (default 25 ns); longer
        components are afterpulsing and background structure (seen at 40-500 ns with 5-8 % of
        the late-tail photons of short-lived charged levels).
    """

    off_sigma: float = 3.0
    off_fraction: float = 0.1
    z: float = 2.0
    rho_split: float = 1.4
    rho_low: float = 0.7
    require_shorter_tau: bool = True
    ratio_split: float = 2.9
    alpha: float = 0.023
    charged_tau_fraction: float = 0.75
    shape_alpha: float = 1e-3
    shape_min_fraction: float = 0.05
    shape_min_tau_ratio: float = 1.5
    shape_max_tau_ns: float = 25.0

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
        if not (np.isfinite(self.ratio_split) and self.ratio_split > 1):
            raise QrspecError(f"ratio_split={self.ratio_split!r} must be > 1")
        for name in ("alpha", "shape_alpha"):
            v = getattr(self, name)
            if not 0 < v < 0.5:
                raise QrspecError(f"{name}={v!r} must be in (0, 0.5)")
        if not 0 < self.charged_tau_fraction < 1:
            raise QrspecError(f"charged_tau_fraction={self.charged_tau_fraction!r} must be in "
                              "(0, 1)")
        if not 0 <= self.shape_min_fraction < 0.5:
            raise QrspecError(f"shape_min_fraction={self.shape_min_fraction!r} must be in "
                              "[0, 0.5)")
        if not self.shape_min_tau_ratio >= 1:
            raise QrspecError(f"shape_min_tau_ratio={self.shape_min_tau_ratio!r} must be >= 1")
        if not self.shape_max_tau_ns > 0:
            raise QrspecError(f"shape_max_tau_ns={self.shape_max_tau_ns!r} must be > 0")


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
        Radiative-rate ratio against the neutral level (NaN for off levels and without a
        neutral level).
    neutral_level : int
        Index of the neutral level (-1 when there is none: every level off, or no_neutral).
    notes : tuple of str
        Reason or warning per level ("" when none).
    rules : LabelRules
        The rules used.
    confidence : ndarray of float64
        Probability of each level's label under the rule that decided it (module docstring;
        NaN where no probability applies: unclassified, or a neutral label without pairs).
    tau_xx_ns, tau_xx_err_ns : ndarray of float64
        Heralded biexciton lifetime per level (NaN without evidence or pairs).
    ratio, ratio_err : ndarray of float64
        ``tau_ns / tau_xx_ns`` and its error.
    flags : tuple of str
        Particle-level flags: ``no_neutral``, ``neutral_undecided``, ``neutral_unconfirmed``,
        ``mixed_states``, ``user_override`` (see ``docs/levels.md`` for their false-alarm rates).
    mixed : ndarray of bool
        Levels whose decay is inconsistent with one state.
    evidence : LevelEvidence or None
        The evidence used (lifetimes only when none was given).
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
    confidence: np.ndarray | None = None
    tau_xx_ns: np.ndarray | None = None
    tau_xx_err_ns: np.ndarray | None = None
    ratio: np.ndarray | None = None
    ratio_err: np.ndarray | None = None
    flags: tuple = ()
    mixed: np.ndarray | None = None
    evidence: object = None

    def time_fraction(self, label: str) -> float:
        """Fraction of the trace time whose segments carry ``label``."""
        seg = self.segments
        total = float(np.sum(seg.duration_s))
        return float(np.sum(seg.duration_s[seg.label == label]) / total) if total > 0 \
            else float("nan")


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
    evidence=None,
    lifetimes=None,
    tau_err_ns=None,
    nanotimes_ns=None,
    delay_offset_ns: float | None = None,
    background_cps: float = 0.0,
    background_err_cps: float = 0.0,
    intensity_correction=None,
    neutral_tau_x_ns=None,
    overrides=None,
    rules: LabelRules | None = None,
) -> LevelLabels:
    """Label intensity levels neutral / charged / trap / off / unclassified from physics.

    Parameters
    ----------
    levels : LevelClustering or Segments
        Segments with ``level`` assigned (e.g. from :func:`cluster_levels` or
        :func:`threshold_levels`).
    evidence : LevelEvidence, optional
        Per-level exciton and biexciton lifetimes and decay shape
        (:func:`qrspec.levels.level_evidence`); the recommended input. Without it the
        lifetimes come from ``lifetimes`` or the mean delay, and no pair ratio or shape test
        is available (the neutral label is then unconfirmed).
    lifetimes : callable, array_like or None
        Used only without ``evidence``. A callable gets the level's merged time windows
        (``ndarray (m, 2)`` of ``start_s, stop_s``) and returns ``(tau_ns, tau_err_ns)``. An
        array gives ``tau_ns`` per level (errors in ``tau_err_ns``, else treated as 0). None
        uses :func:`mean_delay_lifetime` on ``nanotimes_ns`` with ``delay_offset_ns``.
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
    neutral_tau_x_ns : float or (float, float), optional
        A neutral exciton lifetime known from elsewhere (the same rod earlier, the sample
        group), with an optional error: a candidate significantly shorter than
        ``charged_tau_fraction`` of it is not neutral (rule 3).
    overrides : mapping or sequence, optional
        User labels: ``{level_index: label}``, or rows ``(start_s, stop_s, label)`` (rule 7);
        a mapping may mix both (keys ``int`` or ``(start_s, stop_s)``).
    rules : LabelRules, optional
        Thresholds (defaults documented in :class:`LabelRules`).

    Returns
    -------
    LevelLabels
    """
    from scipy.stats import norm

    from qrspec.levels.clustering import assigned_segments
    from qrspec.levels.evidence import LevelEvidence

    rules = LabelRules() if rules is None else rules
    if not isinstance(rules, LabelRules):
        raise QrspecError(f"rules must be a LabelRules, got {type(rules).__name__}")
    seg = assigned_segments(levels)
    if not np.isfinite(background_cps) or background_cps < 0:
        raise QrspecError(f"background_cps={background_cps!r} must be >= 0")
    if not np.isfinite(background_err_cps) or background_err_cps < 0:
        raise QrspecError(f"background_err_cps={background_err_cps!r} must be >= 0")
    g = seg.n_levels
    level_ov, range_ov = _parse_overrides(overrides, g)
    ref = _parse_reference(neutral_tau_x_ns)
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

    if evidence is not None:
        if not isinstance(evidence, LevelEvidence):
            raise QrspecError(f"evidence must be a LevelEvidence, got "
                              f"{type(evidence).__name__}")
        if evidence.n_levels != g:
            raise QrspecError(f"evidence has {evidence.n_levels} levels, the segments {g}")
        ev = evidence
    else:
        tau0, err0 = _lifetimes(seg, g, lifetimes, tau_err_ns, nanotimes_ns, delay_offset_ns)
        ev = LevelEvidence.from_lifetimes(tau0, err0)
    tau, tau_err = ev.tau_x_ns, np.where(np.isfinite(ev.tau_x_err_ns), ev.tau_x_err_ns, 0.0)
    ratio, ratio_err = ev.ratio, ev.ratio_err
    mixed = ((ev.shape_p < rules.shape_alpha) & (ev.second_fraction >= rules.shape_min_fraction)
             & (np.maximum(ev.second_tau_ns / tau, tau / ev.second_tau_ns)
                >= rules.shape_min_tau_ratio) & (ev.second_tau_ns <= rules.shape_max_tau_ns))

    labels = np.full(g, "unclassified", dtype="U12")
    conf = np.full(g, np.nan)
    notes = [""] * g
    flags: list[str] = []
    brightest = int(np.nanargmax(inten))
    off = (net < rules.off_sigma * net_err) | (net < rules.off_fraction * net[brightest])
    off |= ~present
    labels[off] = "off"
    for k in np.flatnonzero(off):
        notes[k] = "intensity consistent with background" if present[k] else "empty level"
        if present[k] and net_err[k] > 0:
            conf[k] = float(norm.cdf((max(rules.off_sigma * net_err[k],
                                          rules.off_fraction * net[brightest]) - net[k])
                                     / net_err[k]))
    rho = np.full(g, np.nan)
    rho_err = np.full(g, np.nan)
    live = np.flatnonzero(~off & np.isfinite(tau) & (tau > 0))
    for k in np.flatnonzero(~off & ~(np.isfinite(tau) & (tau > 0))):
        notes[k] = "no lifetime"
    neutral = -1
    user_neutral = [k for k, lab in level_ov.items() if lab == "neutral"]
    if len(user_neutral) > 1:
        raise QrspecError(f"overrides name {len(user_neutral)} neutral levels "
                          f"{sorted(user_neutral)}; at most one")
    if user_neutral:
        neutral = user_neutral[0]
        labels[neutral] = "neutral"
        if neutral in live:
            _relative_labels(live, neutral, tau, tau_err, corrected, corrected_err, rules,
                             labels, conf, notes, rho, rho_err)
    elif live.size == 0 and not off.all():
        # no level has a lifetime (too few photons, a one-bin decay): nothing physical to
        # decide; the brightest level stands in so that its failing fits report why
        neutral = int(np.argmax(np.where(off, -np.inf, inten)))
        labels[neutral] = "neutral"
        flags.append("neutral_unconfirmed")
        notes[neutral] = "no level has a lifetime: brightest level, unconfirmed"
    elif live.size:
        cand = _neutral_candidate(live, tau, tau_err, inten, rules.z)
        p_ratio = _p_above(ratio[cand], ratio_err[cand], rules.ratio_split)
        p_tau = math.nan
        if ref is not None:
            p_tau = _p_above(tau[cand], math.hypot(tau_err[cand], rules.charged_tau_fraction
                                                   * ref[1]),
                             rules.charged_tau_fraction * ref[0])
        ps = [p for p in (p_ratio, p_tau) if np.isfinite(p)]
        p_min = min(ps) if ps else math.nan
        # levels too short for a lifetime could be the neutral one: no significant claim then
        unknown = [int(k) for k in np.flatnonzero(~off) if k not in live]
        same_kr = [] if ps and p_min >= 1.0 - rules.alpha else _charged_with_same_kr(
            live, cand, ratio, ratio_err, tau, tau_err, corrected, corrected_err, rules)
        if same_kr and not (ps and p_min < 0.5):
            # unconfirmed candidate with the radiative rate of a level that its pair ratio
            # shows charged (charged states have beta_X- k_r = 2 k_r, rho_rad ~ 2 against the
            # neutral one): probably charged too
            flags.append("neutral_undecided")
            notes[cand] = (f"longest-lived level unconfirmed and its radiative rate equals that "
                           f"of the charged levels {same_kr} (rho_rad < {rules.rho_split:g})")
            _labels_without_neutral(live, cand, False, math.nan, ratio, ratio_err, rules,
                                    labels, conf, notes)
        elif ps and p_min < 0.5:
            significant = p_min <= rules.alpha and not unknown
            flags.append("no_neutral" if significant else "neutral_undecided")
            why = []
            if np.isfinite(p_ratio) and p_ratio < 0.5:
                why.append(f"tau_X/tau_XX={ratio[cand]:.3g}±{ratio_err[cand]:.2g} < "
                           f"{rules.ratio_split:g}")
            if np.isfinite(p_tau) and p_tau < 0.5:
                why.append(f"tau_X={tau[cand]:.3g} ns < {rules.charged_tau_fraction:g} x "
                           f"reference {ref[0]:.3g} ns")
            if unknown:
                why.append(f"levels {unknown} have no lifetime and may be neutral")
            notes[cand] = (("longest-lived level is not neutral: " if significant else
                            f"longest-lived level probably not neutral (P={p_min:.2g}): ")
                           + "; ".join(why))
            _labels_without_neutral(live, cand, significant, 1.0 - p_min, ratio, ratio_err,
                                    rules, labels, conf, notes)
        else:
            neutral = cand
            labels[neutral] = "neutral"
            conf[neutral] = p_min
            if not ps or p_min < 1.0 - rules.alpha:
                flags.append("neutral_unconfirmed")
                notes[neutral] = ("neutral by lifetime only (no tau_X/tau_XX)" if not ps else
                                  f"tau_X/tau_XX={ratio[neutral]:.3g}±{ratio_err[neutral]:.2g}"
                                  " does not confirm neutral")
            brighter = [int(k) for k in live if k != neutral
                        and corrected[k] - corrected[neutral]
                        > rules.z * np.hypot(corrected_err[k], corrected_err[neutral])]
            if brighter:
                notes[neutral] = _join(notes[neutral], f"levels {brighter} are brighter but "
                                       "shorter-lived than the neutral level")
            _relative_labels(live, neutral, tau, tau_err, corrected, corrected_err, rules,
                             labels, conf, notes, rho, rho_err)
    for k in np.flatnonzero(mixed):
        notes[k] = _join(notes[k], f"decay inconsistent with one state (p={ev.shape_p[k]:.2g}, "
                         f"{ev.second_fraction[k]:.0%} at {ev.second_tau_ns[k]:.3g} ns): "
                         "merged states?")
    if mixed.any():
        flags.append("mixed_states")
    for k, lab in level_ov.items():
        labels[k] = lab
        conf[k] = 1.0
        notes[k] = _join(notes[k], "user override")
        if lab != "neutral" and k == neutral:
            neutral = -1
    seg_labels = labels[seg.level]
    for a, b, lab in range_ov:
        inside = np.clip(np.minimum(seg.stop_s, b) - np.maximum(seg.start_s, a), 0, None)
        seg_labels = np.where(inside > 0.5 * seg.duration_s, lab, seg_labels)
    if level_ov or range_ov:
        flags.append("user_override")
    logger.debug("level labels %s, flags %s", labels, flags)
    return LevelLabels(
        segments=seg.with_labels(seg_labels),
        label=labels,
        intensity_cps=inten,
        intensity_err_cps=inten_err,
        corrected_cps=corrected,
        corrected_err_cps=corrected_err,
        tau_ns=ev.tau_x_ns.copy(),
        tau_err_ns=ev.tau_x_err_ns.copy(),
        rho_rad=rho,
        rho_rad_err=rho_err,
        neutral_level=neutral,
        notes=tuple(notes),
        rules=rules,
        confidence=conf,
        tau_xx_ns=ev.tau_xx_ns.copy(),
        tau_xx_err_ns=ev.tau_xx_err_ns.copy(),
        ratio=ratio,
        ratio_err=ratio_err,
        flags=tuple(flags),
        mixed=mixed,
        evidence=ev,
    )


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def _p_above(value, err, threshold) -> float:
    """``Phi((value - threshold) / err)``: NaN when undefined, a step when err == 0."""
    from scipy.stats import norm

    if not (np.isfinite(value) and np.isfinite(err)):
        return math.nan
    if err <= 0:
        return 1.0 if value > threshold else 0.0
    return float(norm.cdf((value - threshold) / err))


def _neutral_candidate(live, tau, tau_err, intensity, z) -> int:
    """Brightest level whose lifetime is not significantly shorter than any other's.

    Brightness is the raw intensity.
    """
    cands = [k for k in live
             if not any(tau[j] - tau[k] > z * math.hypot(tau_err[j], tau_err[k]) for j in live)]
    return int(max(cands, key=lambda k: intensity[k]))


def _charged_with_same_kr(live, cand, ratio, ratio_err, tau, tau_err, corrected,
                         corrected_err, rules) -> list:
    """Levels charged by their own pair ratio that have the same radiative rate as ``cand``.

    The same radiative rate: their rho_rad against ``cand`` is significantly below ``rho_split``.
    """
    out = []
    for k in live:
        if k == cand:
            continue
        p_c = 1.0 - _p_above(ratio[k], ratio_err[k], rules.ratio_split)
        if not (np.isfinite(p_c) and p_c >= 1.0 - rules.alpha):
            continue
        rho = (corrected[k] / tau[k]) / (corrected[cand] / tau[cand])
        rel = math.hypot(math.hypot(corrected_err[k] / corrected[k], tau_err[k] / tau[k]),
                         math.hypot(corrected_err[cand] / corrected[cand],
                                    tau_err[cand] / tau[cand]))
        if rho + rules.z * abs(rho) * rel < rules.rho_split:
            out.append(int(k))
    return out


def _labels_without_neutral(live, cand, significant, p_cand, ratio, ratio_err, rules, labels,
                            conf, notes):
    """Rule 5: levels of a rod whose longest-lived level is (probably) not neutral."""
    for k in live:
        p_c = 1.0 - _p_above(ratio[k], ratio_err[k], rules.ratio_split)
        if np.isfinite(p_c) and p_c >= 1.0 - rules.alpha:
            labels[k] = "charged"
            conf[k] = p_c
            notes[k] = _join(notes[k], "charged by tau_X/tau_XX (no neutral reference: trap "
                             "and charged not separable)")
        elif significant and not (np.isfinite(p_c) and p_c < 0.5):
            # no level outlives the charged candidate: none is neutral
            labels[k] = "charged"
            conf[k] = p_c if np.isfinite(p_c) else p_cand
            notes[k] = _join(notes[k], f"not neutral: not longer-lived than level {cand} "
                             "(charged); trap and charged not separable")
        else:
            notes[k] = _join(notes[k], "no neutral reference and tau_X/tau_XX does not show "
                             "charging")


def _relative_labels(live, neutral, tau, tau_err, corrected, corrected_err, rules, labels,
                     conf, notes, rho, rho_err):
    """Rule 4: charged / trap / unclassified from rho_rad against the neutral level."""
    from scipy.stats import norm

    rho[neutral], rho_err[neutral] = 1.0, 0.0
    kr_n = corrected[neutral] / tau[neutral]
    rel_n = (corrected_err[neutral] / corrected[neutral]) ** 2 + (
        tau_err[neutral] / tau[neutral]) ** 2
    for k in live:
        if k == neutral:
            continue
        rho[k] = (corrected[k] / tau[k]) / kr_n
        rel = (corrected_err[k] / corrected[k]) ** 2 + (tau_err[k] / tau[k]) ** 2 + rel_n
        rho_err[k] = abs(rho[k]) * np.sqrt(rel)
        dtau_sig = np.hypot(tau_err[k], tau_err[neutral])
        shorter = tau[neutral] - tau[k] > rules.z * dtau_sig
        s = rho_err[k] if rho_err[k] > 0 else math.inf
        if rho[k] >= rules.rho_split:
            if rho[k] - 1.0 <= rules.z * rho_err[k]:
                notes[k] = f"rho_rad={rho[k]:.3g} not significantly above 1"
            elif rules.require_shorter_tau and not shorter:
                notes[k] = (f"rho_rad={rho[k]:.3g} charging-like but tau not shorter than "
                            "the neutral tau")
            else:
                labels[k] = "charged"
                conf[k] = float(norm.cdf((rho[k] - rules.rho_split) / s)) if s < math.inf \
                    else 1.0
        elif rho[k] >= rules.rho_low:
            labels[k] = "trap"
            conf[k] = (float(norm.cdf((rules.rho_split - rho[k]) / s)
                             - norm.cdf((rules.rho_low - rho[k]) / s)) if s < math.inf else 1.0)
        else:
            notes[k] = (f"rho_rad={rho[k]:.3g} < {rules.rho_low}: hot-carrier trapping "
                        "(B-type) or collection change")


def _parse_reference(ref):
    if ref is None:
        return None
    try:
        vals = [float(v) for v in np.atleast_1d(np.asarray(ref, dtype=np.float64))]
    except (TypeError, ValueError):
        vals = []
    if len(vals) == 1:
        vals.append(0.0)
    if len(vals) != 2 or not (np.isfinite(vals[0]) and vals[0] > 0 and np.isfinite(vals[1])
                              and vals[1] >= 0):
        raise QrspecError(f"neutral_tau_x_ns={ref!r} must be tau > 0 or (tau, err >= 0) in ns")
    return vals[0], vals[1]


def _parse_overrides(overrides, g):
    """``({level: label}, [(start_s, stop_s, label)])`` from the user's overrides."""
    level_ov, range_ov = {}, []
    if overrides is None:
        return level_ov, range_ov
    items = list(overrides.items()) if isinstance(overrides, dict) else [
        ((row[0], row[1]), row[2]) if isinstance(row, tuple | list) and len(row) == 3 else
        (row, None) for row in overrides]
    for key, lab in items:
        if lab not in LABELS:
            raise QrspecError(f"override label={lab!r} must be one of {LABELS}")
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            if not 0 <= key < g:
                raise QrspecError(f"override level={key!r} must be in 0..{g - 1}")
            level_ov[int(key)] = lab
            continue
        try:
            a, b = (float(v) for v in key)
        except (TypeError, ValueError):
            raise QrspecError(f"override key={key!r} must be a level index or a "
                              "(start_s, stop_s) pair") from None
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise QrspecError(f"override time range=({a!r}, {b!r}) must satisfy start < stop")
        range_ov.append((a, b, lab))
    return level_ov, range_ov


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
