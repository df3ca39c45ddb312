"""Stage: bleaching and blinking statistics (dwell-time laws, memory) of the labelled levels.

Runs right after the levels stage, on the whole trace's labelled segments:

1. **Bleaching** (:func:`qrspec.levels.bleaching.detect_bleaching`): the trace ends in an off
   stay (label ``off``: at the background) too long to be one more blink. Bleaching always uses
   the background-level ``off`` label, whatever ``dwell_off_labels`` says: a rod that ends in
   a grey charged state has not bleached. With ``AnalysisConfig.trim_bleaching`` every later
   stage (g2, detector artefacts, states, FLID, tau_XX, charging) and the dwell laws analyse
   only :attr:`Blinking.window_s`, the time before the bleach; the trajectory, the alignment and
   the levels stay whole (the figures grey out the trimmed part).
2. **Dwell-time laws** (:func:`qrspec.levels.dwell.blinking_statistics`) of the on and off
   stays of the analysed segments, with the on/off split of ``dwell_off_labels``. The default
   counts every label but ``neutral`` as off: for quantum rods, whose charged (trion) and trap
   states still emit and whose undoped form has no background-level off state at all, "on" is
   the bright neutral state and "off" any dimmer state; ``("off",)`` gives the quantum-dot
   convention (off = at the background). After a trim at bleaching the last stay ended at a
   real transition and is not censored. Per-level laws
   (:func:`qrspec.levels.dwell.level_dwell_laws`) give one exponent per intensity level.
3. **Memory**: the correlations of successive log durations (on-on, off-off, on-off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.levels import Levels
from qrspec.levels.bleaching import Bleaching
from qrspec.levels.dwell import DwellCurve, DwellSequence, MemoryCorrelation
from qrspec.photons import Photons

__all__ = ["DwellState", "Blinking", "measure_blinking", "analysed_part",
           "BLEACH_OFF_LABELS"]

BLEACH_OFF_LABELS = ("off",)  # bleaching: a permanent stay at the background, never grey


@dataclass(frozen=True, eq=False)
class DwellState:
    """The dwell-time law of the on or off stays of one particle.

    Attributes
    ----------
    state : str
        ``"on"`` or ``"off"``.
    alpha, alpha_err : float
        Power-law exponent and its bootstrap error (t_min re-chosen in each resample); NaN when
        there are too few events (``flag``).
    t_min_s : float
        Lower cut (KS-chosen, never below the change-point resolution); NaN when undefined.
    t_min_err_s : float
        Bootstrap error of ``t_min_s``.
    ks_distance : float
        KS distance of the complete stays above ``t_min_s`` to the power law.
    n_events, n_censored : int
        Complete and right-censored stays at or above ``t_min_s``.
    n_total : int
        Complete stays of any duration.
    best_model : str
        Preferred law (``power_law``, ``exponential``, ``truncated``, ``cutoff``; "" when the
        likelihood ratios cannot decide or there are too few events).
    models : tuple of str
        The fitted laws.
    model_loglik : ndarray of float64
        Log-likelihood of each fitted law (same order; NaN where a fit failed).
    comparisons : tuple of str
        ``"first vs second"`` for each likelihood-ratio comparison.
    comparison_p : ndarray of float64
        p-value of each comparison (Vuong for non-nested, chi2_1 for nested laws).
    comparison_favoured : tuple of str
        The law each comparison favours ("" when p >= 0.1).
    flag : str
        Why ``alpha`` is NaN ("" when defined).
    curve : DwellCurve
        Figure data: Kaplan-Meier survival of the stays and the fitted laws.
    """

    state: str
    alpha: float
    alpha_err: float
    t_min_s: float
    t_min_err_s: float
    ks_distance: float
    n_events: int
    n_censored: int
    n_total: int
    best_model: str
    models: tuple[str, ...]
    model_loglik: np.ndarray
    comparisons: tuple[str, ...]
    comparison_p: np.ndarray
    comparison_favoured: tuple[str, ...]
    flag: str
    curve: DwellCurve


@dataclass(frozen=True, eq=False)
class Blinking:
    """Bleaching, dwell-time laws and memory of one particle.

    Attributes
    ----------
    bleaching : Bleaching
        The bleaching decision on the whole trace (:class:`qrspec.levels.bleaching.Bleaching`).
    trimmed : bool
        Later stages analyse only ``window_s`` (bleached and ``trim_bleaching``).
    window_s : tuple of float
        ``(start, stop)`` of the analysed part (analysis clock): the whole trace, or up to the
        bleach time.
    off_labels : tuple of str
        Labels counted as off in the dwell laws (``AnalysisConfig.dwell_off_labels``).
    sequence : DwellSequence
        On/off stays of the analysed part (neighbouring segments of a state merged).
    resolution_s : float
        Shortest stay trusted (change-point time resolution from the on/off contrast).
    on, off : DwellState
        Dwell-time laws of the on and off stays.
    memory_on, memory_off, memory_on_off : MemoryCorrelation
        Correlation of the log durations of each on stay with the next on stay, each off stay
        with the next off stay, each on stay with the following off stay.
    level_alpha, level_alpha_err : ndarray of float64
        Power-law exponent of the stays in each intensity level (index as ``Levels``; NaN when
        too few events or no stays in the analysed part).
    level_t_min_s : ndarray of float64
        Lower cut of each level's law.
    level_n_events : ndarray of int64
        Complete stays above t_min per level.
    level_best_model : ndarray of str
        Preferred law per level (power law or exponential; "" when undecided).
    flags : tuple of str
        Flags of this stage.
    """

    bleaching: Bleaching
    trimmed: bool
    window_s: tuple[float, ...]
    off_labels: tuple[str, ...]
    sequence: DwellSequence
    resolution_s: float
    on: DwellState
    off: DwellState
    memory_on: MemoryCorrelation
    memory_off: MemoryCorrelation
    memory_on_off: MemoryCorrelation
    level_alpha: np.ndarray
    level_alpha_err: np.ndarray
    level_t_min_s: np.ndarray
    level_n_events: np.ndarray
    level_best_model: np.ndarray
    flags: tuple[str, ...]


def _dwell_state(stats, state: str) -> DwellState:
    from qrspec.levels.dwell import dwell_curve

    law = stats.on if state == "on" else stats.off
    ll = np.asarray([f.loglik if f.success else math.nan for f in law.fits], np.float64)
    return DwellState(
        state=state, alpha=float(law.alpha), alpha_err=float(law.alpha_err),
        t_min_s=float(law.t_min_s), t_min_err_s=float(law.t_min_err_s),
        ks_distance=float(law.ks_distance), n_events=int(law.n_events),
        n_censored=int(law.n_censored), n_total=int(law.n_total), best_model=law.best_model,
        models=tuple(f.model for f in law.fits), model_loglik=ll,
        comparisons=tuple(f"{c.first} vs {c.second}" for c in law.comparisons),
        comparison_p=np.asarray([c.p_value for c in law.comparisons], np.float64),
        comparison_favoured=tuple(c.favoured for c in law.comparisons), flag=law.flag,
        curve=dwell_curve(stats, state))


def _level_laws(segments, n_levels: int, min_events: int) -> dict:
    from qrspec.levels.dwell import level_dwell_laws

    out = {"alpha": np.full(n_levels, np.nan), "alpha_err": np.full(n_levels, np.nan),
           "t_min_s": np.full(n_levels, np.nan), "n_events": np.zeros(n_levels, np.int64),
           "best_model": np.full(n_levels, "", dtype="U12")}
    if segments.size == 0:
        return out
    for k, law in enumerate(level_dwell_laws(segments, min_events=min_events)[:n_levels]):
        out["alpha"][k] = law.alpha
        out["alpha_err"][k] = law.alpha_err
        out["t_min_s"][k] = law.t_min_s
        out["n_events"][k] = law.n_events
        out["best_model"][k] = law.best_model
    return out


def measure_blinking(levels: Levels, config: AnalysisConfig) -> Blinking:
    """Bleaching, the on/off and per-level dwell-time laws and the memory correlations.

    Parameters
    ----------
    levels : Levels
        Labelled segments of the whole trace.
    config : AnalysisConfig
        Uses ``trim_bleaching``, ``bleach_p_threshold``, ``bleach_prior_alpha``,
        ``dwell_off_labels`` and ``dwell_min_events``.

    Returns
    -------
    Blinking
    """
    from qrspec.levels.bleaching import detect_bleaching
    from qrspec.levels.dwell import blinking_statistics

    segs = levels.segments
    bl = detect_bleaching(segs, off_labels=BLEACH_OFF_LABELS,
                          p_threshold=config.bleach_p_threshold,
                          prior_alpha=config.bleach_prior_alpha)
    flags = []
    trimmed = bool(bl.bleached and config.trim_bleaching)
    whole = (float(segs.start_s[0]), float(segs.stop_s[-1])) if segs.size else \
        (math.nan, math.nan)
    if bl.bleached:
        what = ("later stages analyse only the time before it" if trimmed
                else "not trimmed (trim_bleaching=False)")
        flags.append(f"bleached at {bl.bleach_time_s:.4g} s (final off stay "
                     f"{bl.final_off_s:.3g} s, blink probability {bl.survival_p:.2g}): {what}")
    part = bl.trim(segs) if trimmed else segs
    stats = blinking_statistics(part, off_labels=config.dwell_off_labels,
                                min_events=config.dwell_min_events, censor_last=not trimmed)
    if np.any(stats.sequence.state == 0):
        flags += list(stats.flags)
    else:  # one flag says why both laws are undefined (a particle that never blinked off)
        flags.append(f"no off stays (no segment labelled {'/'.join(config.dwell_off_labels)}"
                     "): no dwell-time laws")
    memory = {key: stats.memory_of(a, b) for key, a, b in (
        ("memory_on", "on", "on"), ("memory_off", "off", "off"), ("memory_on_off", "on", "off"))}
    if not any("too few events" in f or f.startswith("no off stays") for f in flags):
        for key, m in memory.items():  # else those flags already say why
            if not np.isfinite(m.r):
                flags.append(f"{key} undefined: {m.n_pairs} pairs of complete stays (< 4) or "
                             "no spread of their durations")
    lv = _level_laws(part, int(np.size(levels.intensity_cps)), config.dwell_min_events)
    return Blinking(
        bleaching=bl, trimmed=trimmed,
        window_s=(whole[0], float(bl.bleach_time_s)) if trimmed else whole,
        off_labels=tuple(config.dwell_off_labels), sequence=stats.sequence,
        resolution_s=float(stats.resolution_s), on=_dwell_state(stats, "on"),
        off=_dwell_state(stats, "off"), memory_on=memory["memory_on"],
        memory_off=memory["memory_off"], memory_on_off=memory["memory_on_off"],
        level_alpha=lv["alpha"], level_alpha_err=lv["alpha_err"], level_t_min_s=lv["t_min_s"],
        level_n_events=lv["n_events"], level_best_model=lv["best_model"], flags=tuple(flags))


def analysed_part(photons: Photons, levels: Levels, blinking: Blinking
                  ) -> tuple[Photons, Levels]:
    """The photons and levels the later stages analyse.

    Everything, or (trimmed at bleaching) the photons before the bleach time and the segments that
    end by then.

    Parameters
    ----------
    photons : Photons
        The particle's photons (analysis clock).
    levels : Levels
        Levels of the whole trace.
    blinking : Blinking
        The stage result (:func:`measure_blinking`).

    Returns
    -------
    (Photons, Levels)
    """
    if not blinking.trimmed:
        return photons, levels
    t_stop = blinking.bleaching.bleach_time_s
    # half-open [0, t_stop): the photon index of the bleach boundary starts the final stay
    ph = photons.select(time_window_s=(0.0, t_stop))
    return ph, replace(levels, segments=blinking.bleaching.trim(levels.segments))
