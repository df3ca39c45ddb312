"""Blinking statistics of one particle or a group: dwell-time laws and memory (issue 18).

From labelled :class:`~qrspec.levels.segments.Segments` (change points, levels, labels)::

    seq = dwell_sequence(labels.segments)                 # on/off stays, runs merged
    stats = blinking_statistics(labels.segments)          # alpha_on, alpha_off, memory, ...
    group = pooled_dwell_law([s1, s2, ...], state="on")   # one law for a group of particles

On/off: a stay is "off" when its label is in ``off_labels`` (default ``("off",)``: within the
background, :mod:`qrspec.levels.labels`), "on" otherwise (neutral, charged, trap and
unclassified levels are all emitting). ``by="level"`` gives one state per intensity level,
``by="label"`` one per label.

Censoring: the first stay of a trajectory is dropped (left-censored) and the last stay is
right-censored (it enters the likelihoods through its survival term; see
:mod:`qrspec.levels.dwell_laws`).

Time resolution: change-point analysis misses short stays. On Poisson photon streams with
isolated dwells of ``k = (I_high - I_low) t`` contrast photons, the current Watkins–Yang
implementation finds both edges of a dwell (measured by ``scripts/validate_dwell.py``,
40 dwells per cell)::

    k photons       10    25    50   100   200   400   800
    dark gap      0.00  0.00  0.10-0.23  0.45-0.50  0.88-0.97  0.97-1.00  1.00
    bright blip   0.03  0.03-0.17  0.33-0.38  0.70-0.72  1.00  1.00  1.00

so ``resolution_s = 300 / (I_on - I_off)`` (about 93 % detection; :data:`RESOLUTION_PHOTONS`)
and ``t_min`` is never below it. Missed short stays also merge their neighbours into one
longer stay of the other state (Crouch et al., Nano Lett. 10, 1692 (2010)); the end-to-end
validation quantifies the resulting bias.

Memory: the Pearson correlation of the logarithms of successive complete stays (on with the
next on, off with the next off, on with the following off), with the large-sample error of a
lag-one autocorrelation, ``sqrt((1 - r^2)/n)`` (Bartlett), checked for coverage on AR(1)
sequences by ``scripts/validate_dwell.py``.

"Too few events": the power-law exponent and its error are reported only when at least
:data:`MIN_EVENTS` complete stays lie above ``t_min`` (the coverage and precision curve of
``scripts/validate_dwell.py``; see :data:`MIN_EVENTS`). The error ``alpha_err`` is the
bootstrap error of Clauset et al. §3.5 (``t_min`` re-chosen in every resample); it covers the
truth somewhat more often than nominal (conservative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.levels.dwell_laws import MODELS, N_BOOT, DwellLaw, fit_dwell_law
from qrspec.levels.segments import Segments

__all__ = ["DwellSequence", "MemoryCorrelation", "BlinkingStatistics", "DwellCurve",
           "dwell_sequence", "blinking_statistics", "memory_correlation", "pooled_dwell_law",
           "dwell_time_resolution_s", "level_dwell_laws", "dwell_curve", "kaplan_meier",
           "RESOLUTION_PHOTONS", "MIN_EVENTS"]

#: contrast photons ``(I_high - I_low) t`` of the shortest stay trusted (see module docstring)
RESOLUTION_PHOTONS = 300.0
#: fewest complete events above t_min for which alpha is reported. The coverage curve of
#: ``scripts/validate_dwell.py`` (iid power laws, alpha 1.3-2.2, KS-chosen t_min, bootstrap
#: errors) holds at every size down to 5 events (68 %: 0.70-0.89, 95 %: >= 0.955, median pull
#: within +-0.23); what fails with few events is precision: the median alpha_err is
#: 0.58-1.1 (alpha - 1) below 15 events and 0.36-0.40 (alpha - 1) at 15-20, so "too few" is
#: fewer than 15 (alpha_err > (alpha - 1)/2: alpha = 1.5 not told from 1 or 2). The curvature
#: error ignoring the choice of t_min covers only 0.49-0.71 at every size (not used when
#: t_min is chosen).
MIN_EVENTS = 15


@dataclass(frozen=True, eq=False)
class DwellSequence:
    """The stays of a trajectory in a set of states (neighbouring segments of a state merged).

    Attributes
    ----------
    start_s, duration_s : ndarray of float64
        Start and duration of each stay.
    state : ndarray of int64
        Index into ``names``.
    names : tuple of str
        State names (``("off", "on")`` for on/off).
    intensity_cps : ndarray of float64
        Photon-weighted intensity of each state (photons / time in the state).
    left_censored, right_censored : ndarray of bool
        The stay was cut by the start / end of the analysed trace.
    """

    start_s: np.ndarray
    duration_s: np.ndarray
    state: np.ndarray
    names: tuple[str, ...]
    intensity_cps: np.ndarray
    left_censored: np.ndarray
    right_censored: np.ndarray

    @property
    def size(self) -> int:
        """Number of stays."""
        return int(self.state.size)

    def code(self, state: str) -> int:
        """Index of a state name."""
        if state not in self.names:
            raise QrspecError(f"state={state!r} must be one of {list(self.names)}")
        return self.names.index(state)

    def durations(self, state: str) -> tuple[np.ndarray, np.ndarray]:
        """``(complete, right_censored)`` durations of ``state`` (left-censored stays dropped)."""
        k = self.code(state)
        mine = (self.state == k) & ~self.left_censored
        return (self.duration_s[mine & ~self.right_censored],
                self.duration_s[mine & self.right_censored])


@dataclass(frozen=True)
class MemoryCorrelation:
    """Correlation of the log durations of successive stays.

    Attributes
    ----------
    first, second : str
        States of the pair (e.g. ``"on", "on"``: each on-stay with the next on-stay).
    r, r_err : float
        Pearson correlation of the log durations and its standard error (NaN if < 4 pairs).
    n_pairs : int
    """

    first: str
    second: str
    r: float
    r_err: float
    n_pairs: int


@dataclass(frozen=True, eq=False)
class BlinkingStatistics:
    """Blinking statistics of one particle.

    Attributes
    ----------
    sequence : DwellSequence
        The on/off stays.
    on, off : DwellLaw
        Dwell-time laws of the on and off stays.
    memory : tuple of MemoryCorrelation
        on-on, off-off and on-off correlations.
    resolution_s : float
        Shortest stay trusted (``RESOLUTION_PHOTONS / (I_on - I_off)``).
    flags : tuple of str
        Why a value is NaN (too few events, no off state, ...).
    """

    sequence: DwellSequence
    on: DwellLaw
    off: DwellLaw
    memory: tuple
    resolution_s: float
    flags: tuple

    def memory_of(self, first: str, second: str) -> MemoryCorrelation:
        """The memory correlation of a state pair."""
        for m in self.memory:
            if (m.first, m.second) == (first, second):
                return m
        raise QrspecError(f"no memory correlation for ({first!r}, {second!r})")

    def summary(self) -> dict:
        """Scalar values for the results summary (names are the proposed column names)."""
        out = {"dwell_resolution_s": self.resolution_s}
        for name, law in (("on", self.on), ("off", self.off)):
            out[f"alpha_{name}"] = law.alpha
            out[f"alpha_{name}_err"] = law.alpha_err
            out[f"t_min_{name}_s"] = law.t_min_s
            out[f"n_{name}_events"] = law.n_events
            out[f"dwell_model_{name}"] = law.best_model
        for a, b, key in (("on", "on", "memory_on"), ("off", "off", "memory_off"),
                          ("on", "off", "memory_on_off")):
            m = self.memory_of(a, b)
            out[key] = m.r
            out[f"{key}_err"] = m.r_err
        return out


# ------------------------------------------------------------------------ sequences
def _check_segments(segments) -> Segments:
    if not isinstance(segments, Segments):
        raise QrspecError(f"segments={type(segments).__name__} must be a qrspec.levels.Segments")
    return segments


def dwell_sequence(segments: Segments, *, by: str = "onoff", off_labels=("off",),
                   censor_first: bool = True, censor_last: bool = True) -> DwellSequence:
    """Stays of a labelled trajectory.

    Parameters
    ----------
    segments : Segments
        Labelled (``by="onoff"``, ``"label"``) or clustered (``by="level"``) segments.
    by : str
        ``"onoff"``, ``"level"`` or ``"label"``.
    off_labels : sequence of str
        Labels counted as off (``by="onoff"``).
    censor_first, censor_last : bool
        Mark the first / last stay censored (set ``censor_last=False`` when the trajectory was
        trimmed at a real transition, e.g. before bleaching).
    """
    seg = _check_segments(segments)
    if by not in ("onoff", "level", "label"):
        raise QrspecError(f"by={by!r} must be 'onoff', 'level' or 'label'")
    if seg.size and by in ("onoff", "label") and np.any(seg.label == ""):
        raise QrspecError(f"by={by!r} needs labelled segments (label_levels); some labels "
                          "are empty")
    if seg.size and by == "level" and np.any(seg.level < 0):
        raise QrspecError("by='level' needs clustered segments (cluster_levels); some levels "
                          "are -1")
    if by == "onoff":
        names = ("off", "on")
        code = np.where(np.isin(seg.label, list(off_labels)), 0, 1).astype(np.int64)
    elif by == "level":
        names = tuple(f"level{k}" for k in range(seg.n_levels))
        code = seg.level.astype(np.int64)
    else:
        names = tuple(sorted(set(seg.label.tolist())))
        code = np.searchsorted(np.asarray(names), seg.label).astype(np.int64)
    dur = seg.duration_s
    counts = np.bincount(code, weights=seg.n_photons, minlength=len(names))
    times = np.bincount(code, weights=dur, minlength=len(names))
    with np.errstate(invalid="ignore", divide="ignore"):
        intensity = np.where(times > 0, counts / times, np.nan)
    if seg.size == 0:
        z = np.zeros(0)
        return DwellSequence(z, z.copy(), np.zeros(0, np.int64), names, intensity,
                             np.zeros(0, bool), np.zeros(0, bool))
    new = np.ones(seg.size, bool)
    new[1:] = code[1:] != code[:-1]
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    duration = np.bincount(run, weights=dur)
    m = starts.size
    left = np.zeros(m, bool)
    right = np.zeros(m, bool)
    left[0] = bool(censor_first)
    right[-1] = bool(censor_last)
    return DwellSequence(seg.start_s[starts].astype(np.float64), duration, code[starts], names,
                         intensity, left, right)


def dwell_time_resolution_s(high_cps: float, low_cps: float) -> float:
    """Shortest stay the change points find reliably: ``300 / (high_cps - low_cps)``.

    NaN when the contrast is not positive (a single state).
    """
    d = float(high_cps) - float(low_cps)
    return RESOLUTION_PHOTONS / d if d > 0 and math.isfinite(d) else math.nan


# ------------------------------------------------------------------------ memory
def memory_correlation(sequence: DwellSequence, first: str, second: str) -> MemoryCorrelation:
    """Correlation of ``ln`` durations of each complete ``first`` stay with the next ``second``.

    The next stay is the next complete ``second`` stay (for ``first == second``: the next stay of
    the same state).

    The error is Bartlett's large-sample ``sqrt((1 - r^2)/n)`` of a lag-one autocorrelation;
    NaN with fewer than 4 pairs.
    """
    a, b = sequence.code(first), sequence.code(second)
    ok = ~(sequence.left_censored | sequence.right_censored)
    idx = np.flatnonzero(sequence.state == a)
    pairs = []
    later_b = np.flatnonzero(sequence.state == b)
    for i in idx:
        j = later_b[np.searchsorted(later_b, i, "right")] if np.any(later_b > i) else -1
        if j >= 0 and ok[i] and ok[j]:
            pairs.append((i, j))
    n = len(pairs)
    if n < 4:
        return MemoryCorrelation(first, second, math.nan, math.nan, n)
    p = np.asarray(pairs)
    x = np.log(sequence.duration_s[p[:, 0]])
    y = np.log(sequence.duration_s[p[:, 1]])
    sx, sy = float(np.std(x)), float(np.std(y))
    if not (sx > 0 and sy > 0):
        return MemoryCorrelation(first, second, math.nan, math.nan, n)
    r = float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))
    return MemoryCorrelation(first, second, r, math.sqrt(max(1.0 - r * r, 0.0) / n), n)


# ------------------------------------------------------------------------ statistics
def blinking_statistics(segments: Segments, *, off_labels=("off",),
                        resolution_s: float | None = None, min_events: int = MIN_EVENTS,
                        models=MODELS, censor_last: bool = True) -> BlinkingStatistics:
    """On/off dwell-time laws and memory of one labelled trajectory.

    Parameters
    ----------
    segments : Segments
        Labelled segments (:func:`qrspec.levels.label_levels`).
    off_labels : sequence of str
        Labels counted as off.
    resolution_s : float, optional
        Shortest stay trusted; default :func:`dwell_time_resolution_s` of the on and off
        intensities.
    min_events : int
        Fewest complete events above ``t_min`` for an exponent (default :data:`MIN_EVENTS`).
    models : sequence of str
        Laws fitted besides the power law.
    censor_last : bool
        The last stay is cut by the end of the trace (False after trimming at bleaching).

    Returns
    -------
    BlinkingStatistics
        ``on.alpha``, ``off.alpha`` are NaN with a flag when undefined.
    """
    seq = dwell_sequence(segments, by="onoff", off_labels=off_labels, censor_last=censor_last)
    flags = []
    i_off, i_on = seq.intensity_cps
    if resolution_s is None:
        resolution_s = dwell_time_resolution_s(i_on, i_off)
        if not np.isfinite(resolution_s):
            # no off state: the on/off contrast is undefined; fall back to the on intensity
            resolution_s = dwell_time_resolution_s(i_on, 0.0)
    if not (isinstance(resolution_s, int | float | np.floating) and resolution_s > 0
            and math.isfinite(resolution_s)):
        if seq.size == 0 or not np.isfinite(i_on):
            resolution_s = math.inf
        else:
            raise QrspecError(f"resolution_s={resolution_s!r} must be a finite number > 0")
    laws = {}
    for state in ("on", "off"):
        complete, censored = seq.durations(state)
        if not math.isfinite(resolution_s):
            laws[state] = _empty_law(resolution_s, complete.size, f"no {state} intensity")
        else:
            laws[state] = fit_dwell_law(complete, censored, resolution_s=float(resolution_s),
                                        min_events=min_events, models=models)
        if laws[state].flag:
            flags.append(f"alpha_{state}: {laws[state].flag}")
    if not np.any(seq.state == 0):
        flags.append("no off stays (no segment labelled " + "/".join(off_labels) + ")")
    memory = tuple(memory_correlation(seq, a, b)
                   for a, b in (("on", "on"), ("off", "off"), ("on", "off")))
    return BlinkingStatistics(seq, laws["on"], laws["off"], memory, float(resolution_s),
                              tuple(flags))


def _empty_law(resolution_s, n_total, flag) -> DwellLaw:
    z = np.zeros(0)
    return DwellLaw(math.nan, float(resolution_s), math.nan, 0, 0, int(n_total), (), (), "",
                    flag, z, z.copy())


def level_dwell_laws(segments: Segments, *, min_events: int = MIN_EVENTS,
                     models=("power_law", "exponential")) -> tuple:
    """Dwell-time law of each intensity level (stays in one level; runs merged).

    The resolution of a level is :func:`dwell_time_resolution_s` of its smallest intensity
    difference to another level.
    """
    seq = dwell_sequence(segments, by="level")
    out = []
    inten = seq.intensity_cps
    for k, name in enumerate(seq.names):
        complete, censored = seq.durations(name)
        others = np.delete(inten, k)
        others = others[np.isfinite(others)]
        res = (dwell_time_resolution_s(float(np.min(np.abs(others - inten[k]))), 0.0)
               if others.size else math.nan)
        if not np.isfinite(res):
            out.append(_empty_law(math.inf, complete.size, "no other level to switch to"))
            continue
        out.append(fit_dwell_law(complete, censored, resolution_s=res, min_events=min_events,
                                 models=models))
    return tuple(out)


def pooled_dwell_law(particles: Sequence[BlinkingStatistics], *, state: str = "on",
                     min_events: int = MIN_EVENTS, models=MODELS, n_boot: int = N_BOOT
                     ) -> DwellLaw:
    """One dwell-time law for a group: all particles' complete and censored stays pooled.

    The resolution is the largest of the particles' (every particle's stays are trusted
    above it). Pooling assumes one law for the group; compare with the spread of the
    per-particle exponents before trusting it.

    Parameters
    ----------
    particles : sequence of BlinkingStatistics
        Or any results with a :class:`DwellSequence` ``sequence`` and a ``resolution_s``
        (e.g. the pipeline's :class:`qrspec.analysis.blinking.Blinking`).
    state : {"on", "off"}
    min_events : int
        Fewest complete pooled stays above ``t_min`` for an exponent.
    models : sequence of str
        Laws fitted besides the power law.
    n_boot : int
        Bootstrap resamples of ``alpha_err`` (see :func:`qrspec.levels.dwell_laws.fit_dwell_law`;
        the cost grows as ``n_boot`` x stays: 200 resamples of 25 000 pooled stays take ~13 s).
    """
    if state not in ("on", "off"):
        raise QrspecError(f"state={state!r} must be 'on' or 'off'")
    parts = [p for p in particles]
    if not parts or not all(isinstance(getattr(p, "sequence", None), DwellSequence)
                            and hasattr(p, "resolution_s") for p in parts):
        raise QrspecError("particles must be a non-empty sequence of BlinkingStatistics (or of "
                          "results with a DwellSequence 'sequence' and a 'resolution_s')")
    res = [p.resolution_s for p in parts if math.isfinite(p.resolution_s)]
    if not res:
        return _empty_law(math.inf, 0, "no particle has a finite resolution")
    comp, cens = zip(*(p.sequence.durations(state) for p in parts), strict=True)
    return fit_dwell_law(np.concatenate(comp), np.concatenate(cens), resolution_s=max(res),
                         min_events=min_events, models=models, n_boot=n_boot)


# ------------------------------------------------------------------------ figure data
@dataclass(frozen=True, eq=False)
class DwellCurve:
    """What a log-log dwell-time figure shows for one state (arrays, storable as datasets).

    Attributes
    ----------
    state : str
    t_s, survival : ndarray
        Distinct complete durations and the Kaplan–Meier ``P(T >= t)`` just before each (the
        censored stays enter as survivors).
    model_t_s : ndarray
        Log-spaced grid from ``t_min_s`` to the longest stay (empty when no law).
    models : tuple of str
        Fitted laws, in the row order of ``model_survival``.
    model_survival : ndarray, shape (len(models), model_t_s.size)
        Each law's ``P(T >= t)``, scaled to the empirical fraction of stays at or above
        ``t_min_s``.
    t_min_s, resolution_s, alpha, alpha_err : float
    best_model : str
    """

    state: str
    t_s: np.ndarray
    survival: np.ndarray
    model_t_s: np.ndarray
    models: tuple[str, ...]
    model_survival: np.ndarray
    t_min_s: float
    resolution_s: float
    alpha: float
    alpha_err: float
    best_model: str


def kaplan_meier(complete, censored=()) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier survival ``P(T >= t)`` at each distinct complete duration.

    Returns ``(t, s)``: ascending distinct complete durations and the survival just before
    each (``s[0] = 1`` when no censored stay is shorter than the first event).
    """
    x = np.sort(np.asarray(complete, np.float64))
    c = np.asarray(censored, np.float64)
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    t, d = np.unique(x, return_counts=True)
    at_risk = (x.size - np.searchsorted(x, t, "left")) + (c.size - np.searchsorted(np.sort(c),
                                                                                     t, "left"))
    after = np.cumprod(1.0 - d / at_risk)
    return t, np.concatenate([[1.0], after[:-1]])


def dwell_curve(stats: BlinkingStatistics, state: str, *, n_grid: int = 120) -> DwellCurve:
    """Figure data of one state of :func:`blinking_statistics` (see :class:`DwellCurve`)."""
    if state not in ("on", "off"):
        raise QrspecError(f"state={state!r} must be 'on' or 'off'")
    law = stats.on if state == "on" else stats.off
    complete, censored = stats.sequence.durations(state)
    t, surv = kaplan_meier(complete, censored)
    fits = [f for f in law.fits if f.success]
    if fits and np.isfinite(law.t_min_s) and t.size:
        top = max(float(t.max()), float(censored.max()) if censored.size else 0.0)
        grid = np.geomspace(law.t_min_s, max(top, law.t_min_s * 1.0001), n_grid)
        i = int(np.searchsorted(t, law.t_min_s, "left"))
        scale = float(surv[i]) if i < t.size else 0.0
        curves = np.vstack([scale * f.survival(grid) for f in fits])
        names = tuple(f.model for f in fits)
    else:
        grid, curves, names = np.zeros(0), np.zeros((0, 0)), ()
    return DwellCurve(state, t, surv, grid, names, curves, law.t_min_s, law.resolution_s,
                      law.alpha, law.alpha_err, law.best_model)
