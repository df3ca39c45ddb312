"""Single-emitter verdict of a particle from its intensity levels (methods.md §2.3, §9.5).

The gated g2(0) test (:func:`qrspec.fitting.g2_analysis.single_emitter_test`) works only in
periods where ``tau_X > 2 tau_XX`` (neutral), and a gate hides every photon of a short-lived
state, so :func:`emitter_verdict` combines it with the levels:

1. **Reference level**: the non-off level whose ``tau_X/tau_XX`` exceeds 2 most significantly
   (normally the neutral level). Its ``tau_XX`` sets the gates of every test.
2. **Tests**: every level in which that gate suppresses a single emitter's biexciton
   (``1/tau_XX,ref - 2/tau_X,level`` significantly > 0, i.e. the long-lived levels) is tested
   with its own photons and ``tau_X``. Two rods that are both neutral form their own brightest
   level; there the same-period pairs are mostly one photon from each rod (first photon
   ``~tau_X/2``, so that level's own ``tau_X/tau_XX ~ 2`` looks charged), and its gated g2
   stays >= 0.5: the reference ``tau_XX`` keeps the gate right for it.
3. **not_single** when any tested level is not single (each at ``alpha / n_tested``).
4. **single** when the reference level is single at ``alpha``, the X photons of its pairs
   decay like its decay tail (heralded ``tau_X`` not significantly shorter: a short-lived
   partner adds fast delays to the pairs), its late-tail decay has no significant second
   component (``shape_p < shape_alpha`` with >= 1 % of the tail photons at
   a lifetime < ``tau_X/1.5``, or >= 5 % at any lifetime) and no level is flagged
   ``mixed_states``: a second rod in a short-lived (charged) state is invisible after the gate
   but not in the decay, and two rods in different states make levels with two lifetimes.
5. **undecidable** otherwise, with the reason (no level where gating works, too few pairs, or
   a reference level whose decay shows a second short-lived component).

``single`` therefore means: no second emitter that is bright after the gate in the tested
periods (the reported ``min_brightness_ratio`` says how unequal such a pair would have to be).
Rates on simulated single rods and two-rod particles: ``docs/levels.md``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["ParticleVerdict", "emitter_verdict"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ParticleVerdict:
    """Single-emitter verdict of a particle.

    Attributes
    ----------
    outcome : str
        ``"single"``, ``"not_single"`` or ``"undecidable"``.
    reason : str
        Why, with the numbers.
    reference_level : int
        Level whose tau_XX set the gates (-1 if none).
    tested_levels : tuple of int
        Levels tested.
    tests : tuple of EmitterTest
        The test of each tested level (same order).
    decisive : EmitterTest or None
        The test that decided (None when undecidable before any test).
    """

    outcome: str
    reason: str
    reference_level: int
    tested_levels: tuple
    tests: tuple
    decisive: object

    @property
    def single(self) -> bool:
        """True only for the outcome ``"single"``."""
        return self.outcome == "single"


def emitter_verdict(photons, labels, *, detectors=(0, 1), offsets_ns=None,
                    threshold: float = 0.35, alpha: float = 0.01, shape_alpha: float = 1e-3,
                    shape_min_fraction: float = 0.01, heralded_sigma: float = 3.0,
                    max_mean_excitations: float = 1.0, **scan_kwargs) -> ParticleVerdict:
    """Three-way single-emitter verdict from the levels and the gated g2 (module docstring).

    Parameters
    ----------
    photons : Photons
        T3 photons of the particle.
    labels : LevelLabels
        From :func:`qrspec.levels.label_levels` with ``evidence`` (needs tau_X, tau_XX).
    detectors : (int, int)
        The HBT detectors.
    offsets_ns : (float, float), optional
        Detector alignment (default: from each tested level's decay).
    threshold : float
        Two-emitter g2 level excluded by ``single``: ``2r/(1+r)^2`` excludes pairs with a
        (gated) brightness ratio below r; 0.35 excludes r < 3.6 (0.5: only equal pairs). On the
        simulated populations 0.5 called 4.2 % [1.4, 9.5] of two-rod particles single (7.5 % of
        Mn-doped pairs), 0.35 1.7 % [0.2, 5.9], at 73 % vs 59 % of single rods called single
        and none not single (``docs/levels.md``).
    alpha : float
        One-sided error probability of the single test; the not-single tests share it.
    shape_alpha, shape_min_fraction : float
        A reference level with a shorter-lived second decay component (p < shape_alpha,
        fraction >= shape_min_fraction) cannot be called single.
    heralded_sigma : float
        A reference level whose heralded tau_X is shorter than its late-tail tau_X by more than
        this many standard errors cannot be called single (3: at finite <N> triexciton pulses
        add fast XXX -> XX delays and bias the heralded tau_X of one emitter low by a few %).
    max_mean_excitations : float
        Largest <N> for the single-emitter suppression bound.
    **scan_kwargs
        Passed to :func:`qrspec.fitting.g2_analysis.photon_gate_scan` (gate step, lag range,
        bin, delay), as :func:`~qrspec.fitting.g2_analysis.single_emitter_test_photons`.

    Returns
    -------
    ParticleVerdict
    """
    from qrspec.fitting.g2_analysis import photon_gate_scan
    from qrspec.levels.labels import LevelLabels

    if not isinstance(labels, LevelLabels):
        raise QrspecError(f"labels must be a LevelLabels, got {type(labels).__name__}")
    if labels.tau_xx_ns is None:
        raise QrspecError("labels carry no tau_XX: label the levels with evidence= "
                          "(qrspec.levels.level_evidence)")
    if not 0 < alpha < 0.5:
        raise QrspecError(f"alpha={alpha!r} must be in (0, 0.5)")
    seg = labels.segments
    tau, tau_e = labels.tau_ns, labels.tau_err_ns
    txx, txx_e = labels.tau_xx_ns, labels.tau_xx_err_ns
    live = [k for k in range(labels.label.size) if labels.label[k] != "off"
            and np.isfinite(tau[k]) and np.isfinite(tau_e[k])]
    # 1. reference level: tau_X/tau_XX most significantly above 2
    score = {}
    for k in live:
        if np.isfinite(txx[k]) and np.isfinite(txx_e[k]) and txx[k] > 0:
            rate = 1.0 / txx[k] - 2.0 / tau[k]
            err = math.hypot(txx_e[k] / txx[k] ** 2, 2.0 * tau_e[k] / tau[k] ** 2)
            score[k] = rate / err if err > 0 else (math.inf if rate > 0 else -math.inf)
    if not score:
        return ParticleVerdict("undecidable", "no level with both tau_X and a heralded tau_XX",
                               -1, (), (), None)
    ref = max(score, key=score.get)
    from scipy.stats import norm

    z = float(norm.ppf(1.0 - alpha))
    if not score[ref] > z:
        return ParticleVerdict(
            "undecidable", f"no level where a gate removes the biexciton: best tau_X/tau_XX = "
            f"{tau[ref] / txx[ref]:.3g} (level {ref}) is not significantly above 2",
            ref, (), (), None)
    # 2. levels where the reference gate works
    tested = []
    for k in live:
        rate = 1.0 / txx[ref] - 2.0 / tau[k]
        err = math.hypot(txx_e[ref] / txx[ref] ** 2, 2.0 * tau_e[k] / tau[k] ** 2)
        if k == ref or (err > 0 and rate / err > z):
            tested.append(k)
    a_each = alpha / len(tested)
    scans: dict = {}  # one gate scan per level (the reference level is tested twice)

    def test(k: int, a: float):
        if k not in scans:
            scans[k] = photon_gate_scan(photons, time_windows_s=seg.windows(level=k),
                                        tau_xx_ns=float(txx[ref]), detectors=detectors,
                                        offsets_ns=offsets_ns, **scan_kwargs)
        return scans[k].test(tau_x_ns=float(tau[k]), tau_x_err_ns=float(tau_e[k]),
                             tau_xx_ns=float(txx[ref]), tau_xx_err_ns=float(txx_e[ref]),
                             threshold=threshold, alpha=a,
                             max_mean_excitations=max_mean_excitations)

    tests = [test(k, a_each) for k in tested]
    tested_t, tests_t = tuple(tested), tuple(tests)
    # 3. not single anywhere
    for k, t in zip(tested, tests, strict=True):
        if t.outcome == "not_single":
            return ParticleVerdict("not_single", f"level {k}: {t.reason}", ref, tested_t,
                                   tests_t, t)
    # 4. single at the reference level (its own alpha) with a one-state decay
    ref_test = tests[tested.index(ref)] if len(tested) == 1 else test(ref, alpha)
    if ref_test.outcome == "single":
        second = _second_component(labels, ref, shape_alpha, shape_min_fraction)
        if second:
            return ParticleVerdict("undecidable", f"level {ref} passes the gated test but "
                                   f"{second}: a second emitter in another state would be "
                                   "hidden by the gate", ref, tested_t, tests_t, ref_test)
        fast = _fast_heralded(labels, ref, heralded_sigma)
        if fast:
            return ParticleVerdict("undecidable", f"level {ref} passes the gated test but "
                                   f"{fast}", ref, tested_t, tests_t, ref_test)
        mixed = [] if labels.mixed is None else [int(k) for k in np.flatnonzero(labels.mixed)]
        if mixed:
            return ParticleVerdict("undecidable", f"level {ref} passes the gated test but "
                                   f"levels {mixed} decay with two exciton lifetimes (merged "
                                   "states or a second emitter)", ref, tested_t, tests_t,
                                   ref_test)
        return ParticleVerdict("single", f"level {ref}: {ref_test.reason}", ref, tested_t,
                               tests_t, ref_test)
    return ParticleVerdict("undecidable", f"level {ref}: {ref_test.reason}", ref, tested_t,
                           tests_t, ref_test)


def _second_component(labels, k, shape_alpha, min_fraction) -> str:
    """Description of a significant second exciton component in level k's late tail, or "".

    Significant (``p < shape_alpha``) and either shorter-lived (< tau_X/1.5) with at least
    ``min_fraction`` of the tail photons (a partner in a charged state), or carrying >= 5 %
    at any exciton lifetime (<= ``LabelRules.shape_max_tau_ns``; a partner with another
    neutral lifetime). Afterpulsing (longer) and the biexciton residue (< 0.5 %, short) are
    not counted.
    """
    ev = labels.evidence
    if ev is None:
        return ""
    p, f2, t2 = ev.shape_p[k], ev.second_fraction[k], ev.second_tau_ns[k]
    tau = labels.tau_ns[k]
    if not (np.isfinite(p) and p < shape_alpha and np.isfinite(f2)):
        return ""
    if t2 > labels.rules.shape_max_tau_ns:  # afterpulsing / background structure
        return ""
    if (f2 >= min_fraction and t2 * 1.5 < tau) or f2 >= 0.05:
        return (f"its late-tail decay has a second component ({f2:.1%} at {t2:.3g} ns, "
                f"p = {p:.2g})")
    return ""


def _fast_heralded(labels, k, z) -> str:
    """Description of a heralded tau_X significantly shorter than the late-tail tau_X, or ""."""
    ev = labels.evidence
    if ev is None or ev.tau_x_heralded_ns is None:
        return ""
    th, the = ev.tau_x_heralded_ns[k], ev.tau_x_heralded_err_ns[k]
    tx, txe = labels.tau_ns[k], labels.tau_err_ns[k]
    if not all(np.isfinite(v) for v in (th, the, tx, txe)):
        return ""
    if tx - th > z * math.hypot(the, txe):
        return (f"the X photons of its pairs decay faster (heralded tau_X = {th:.3g} ± "
                f"{the:.2g} ns) than its decay tail ({tx:.3g} ± {txe:.2g} ns): the pairs "
                "come from two emitters or two states")
    return ""
