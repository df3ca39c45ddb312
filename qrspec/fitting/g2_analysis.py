"""Pulsed g2(0) interpretation: QY_XX/QY_X with the finite-<N> correction, gated g2, verdicts.

Formulas (methods.md §2.2-2.3, re-derived and checked by Monte Carlo in
``tests/test_fitting_g2.py``):

* ``g2(0) = E[m(m-1)] / E[m]^2`` with m the number of photons emitted per pulse (binomial
  detection losses and the beam-splitter cancel). Cascade truncated at level ``K``: an N-exciton
  pulse (Poisson <N>) relaxes through levels ``min(N, K) .. 1``, level j emitting with QY eta_j,
  so ``E[m] = sum_N P(N) sum_{j <= N'} eta_j`` and
  ``E[m(m-1)] = sum_N P(N) [(sum_{j<=N'} eta_j)^2 - sum_{j<=N'} eta_j^2]``.
  For K = 2: ``g2(0) = 2 P2 rho / (P1 + P2 (1 + rho))^2`` (eta_X cancels), rho = eta_XX/eta_X,
  so g2 -> rho only as <N> -> 0 (0.887 at <N> = 0.2 and rho = 1).
* Gate ``t >= T_g`` on both detectors (t from the excitation): the pair survives when the XX photon
  does (the X photon comes later), ``C ~ 2 P2 eta_XX eta_X e^{-T/tau_XX}``, singles
  ``S = P1 eta_X e^{-T/tau_X} + P2 [eta_XX e^{-T/tau_XX} + eta_X F(T)]`` with the hypoexponential
  survival ``F(T) = (tau_X e^{-T/tau_X} - tau_XX e^{-T/tau_XX}) / (tau_X - tau_XX)``,
  ``g2(0; T) = C / S^2``.
* Two independent single-photon emitters with brightness ratio r give ``2 r / (1 + r)^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.fitting.models import poisson_probabilities

__all__ = [
    "G2Zero", "QYRatioEstimate", "EmitterVerdict", "g2_moments", "g2_zero_cascade",
    "g2_gated_cascade", "g2_from_peak_counts", "qy_ratio_from_g2", "single_emitter_verdict",
    "two_emitter_g2", "brightness_ratio_for_g2",
]


def _check_mean_excitations(mean_excitations):
    if not (np.isfinite(mean_excitations) and mean_excitations > 0):
        raise QrspecError(f"mean_excitations={mean_excitations!r} must be > 0")


def _poisson_tail(k: int, mu: float) -> float:
    """P(N >= k) for N ~ Poisson(mu); by its series when mu <= 1, where 1 - sum P(N < k)
    cancels catastrophically (relative error 1e-4 in g2 at <N> = 1e-6)."""
    if mu > 1.0:
        return max(0.0, 1.0 - sum(math.exp(-mu) * mu**n / math.factorial(n) for n in range(k)))
    term = math.exp(-mu) * mu**k / math.factorial(k)
    total, j = 0.0, k
    while term > 0.0 and term > 1e-17 * total:
        total += term
        j += 1
        term *= mu / j
    return total


def g2_moments(mean_excitations: float, qy) -> tuple[float, float]:
    """Factorial moments ``(E[m], E[m(m-1)])`` of photons per pulse for a truncated cascade.

    Parameters
    ----------
    mean_excitations : float
        <N>, the Poisson mean of excitons created per pulse.
    qy : sequence of float
        ``(eta_X, eta_XX, eta_XXX, ...)``; its length is the truncation level (N >= len(qy)
        relax to the top level).
    """
    _check_mean_excitations(mean_excitations)
    eta = np.asarray(qy, dtype=float)
    if eta.ndim != 1 or eta.size < 1 or np.any(eta < 0) or np.any(eta > 1):
        raise QrspecError(f"qy={qy!r} must be a non-empty sequence of values in [0, 1]")
    mu = float(mean_excitations)
    k_max = eta.size
    s1 = np.cumsum(eta)
    s2 = np.cumsum(eta**2)
    # P(N = n) for n < k_max, and P(N >= k_max) for the top level
    p = [math.exp(-mu) * mu**n / math.factorial(n) for n in range(k_max)]
    p_top = _poisson_tail(k_max, mu)
    p = p[1:] + [p_top]  # levels 1..k_max
    em = sum(pn * s1[n] for n, pn in enumerate(p))
    emm = sum(pn * (s1[n] ** 2 - s2[n]) for n, pn in enumerate(p))
    return float(em), float(emm)


def g2_zero_cascade(mean_excitations: float, qy_ratio: float, *, qy_x: float = 1.0,
                    qy_higher=()) -> float:
    """g2(0) of a cascade with eta_XX/eta_X = ``qy_ratio`` at finite <N> (``qy_higher``: eta of
    levels >= 3; empty means truncation at XX)."""
    if not qy_ratio >= 0:
        raise QrspecError(f"qy_ratio={qy_ratio!r} must be >= 0")
    _check_mean_excitations(mean_excitations)
    if not qy_higher:  # truncated at XX: eta_X cancels, any rho >= 0 allowed
        p1, p2 = poisson_probabilities(mean_excitations)
        return 2.0 * p2 * qy_ratio / (p1 + p2 * (1.0 + qy_ratio)) ** 2
    em, emm = g2_moments(mean_excitations, [qy_x, qy_ratio * qy_x, *qy_higher])
    return emm / em**2


def g2_gated_cascade(gate_ns, tau_x_ns: float, tau_xx_ns: float, qy_ratio: float,
                     mean_excitations: float):
    """g2(0; T_g) of the XX-truncated cascade for gates ``t >= T_g`` (no IRF, no background)."""
    _check_mean_excitations(mean_excitations)
    tg = np.asarray(gate_ns, dtype=float)
    p1, p2 = poisson_probabilities(mean_excitations)
    ex, exx = np.exp(-tg / tau_x_ns), np.exp(-tg / tau_xx_ns)
    surv = (tau_x_ns * ex - tau_xx_ns * exx) / (tau_x_ns - tau_xx_ns)
    c = 2.0 * p2 * qy_ratio * exx
    s = p1 * ex + p2 * (qy_ratio * exx + surv)
    return c / s**2


@dataclass(frozen=True, slots=True)
class G2Zero:
    """g2(0) from peak areas with its error and Clopper-Pearson interval.

    Attributes
    ----------
    g2, g2_err : float
        ``C0 / mean(side)`` and ``g2 sqrt(1/C0 + 1/sum(side))`` (NaN error when C0 = 0).
    interval : (float, float)
        Exact (Clopper-Pearson) interval at ``confidence`` from the binomial split of
        ``C0 + sum(side)`` photons pairs.
    center_counts, side_total : int
    n_side : int
    confidence : float
    """

    g2: float
    g2_err: float
    interval: tuple
    center_counts: int
    side_total: int
    n_side: int
    confidence: float


def g2_from_peak_counts(center_counts: int, side_counts, *, confidence: float = 0.6827) -> G2Zero:
    """g2(0) = C0 / mean(C_k) with Poisson error and an exact binomial interval.

    Conditioning on ``n = C0 + sum(C_k)``, ``C0 ~ Binomial(n, p)`` with ``g2 = M p / (1 - p)``
    (M side peaks); the Clopper-Pearson interval of p maps monotonically onto g2.
    """
    from scipy.stats import beta

    side = np.asarray(side_counts)
    if side.ndim != 1 or side.size < 1 or np.any(side < 0):
        raise QrspecError(f"side_counts={side_counts!r} must be a non-empty 1-D array of "
                          "counts >= 0")
    if center_counts < 0:
        raise QrspecError(f"center_counts={center_counts!r} must be >= 0")
    if not 0 < confidence < 1:
        raise QrspecError(f"confidence={confidence!r} must be in (0, 1)")
    c0 = int(center_counts)
    s_tot = int(side.sum())
    m = side.size
    if s_tot == 0:
        return G2Zero(math.nan, math.nan, (math.nan, math.nan), c0, 0, m, confidence)
    g2 = m * c0 / s_tot
    err = g2 * math.sqrt(1.0 / c0 + 1.0 / s_tot) if c0 > 0 else math.nan
    n = c0 + s_tot
    a = 1.0 - confidence
    p_lo = 0.0 if c0 == 0 else float(beta.ppf(a / 2, c0, n - c0 + 1))
    p_hi = float(beta.ppf(1 - a / 2, c0 + 1, n - c0))
    lo = m * p_lo / (1.0 - p_lo)
    hi = m * p_hi / (1.0 - p_hi) if p_hi < 1 else math.inf
    return G2Zero(g2, err, (lo, hi), c0, s_tot, m, confidence)


@dataclass(frozen=True, slots=True)
class QYRatioEstimate:
    """eta_XX/eta_X from g2(0) at finite <N>.

    Attributes
    ----------
    qy_ratio : float
        Solution on the rising branch of g2(rho) (NaN if g2 exceeds the model maximum).
    interval : (float, float)
        Image of the g2 interval (``g2 -+ g2_err`` unless given).
    qy_ratio_err : float
        Half-width of ``interval``.
    naive_ratio : float
        The uncorrected value (raw g2), for comparison.
    g2_max : float
        Largest g2(0) the model can produce at this <N>.
    success : bool
    message : str
    """

    qy_ratio: float
    qy_ratio_err: float
    interval: tuple
    naive_ratio: float
    g2_max: float
    mean_excitations: float
    success: bool
    message: str


def qy_ratio_from_g2(g2_zero: float, g2_err: float | None = None, *, mean_excitations: float,
                     interval=None, qy_higher=()) -> QYRatioEstimate:
    """Invert the finite-<N> cascade g2(0) for eta_XX/eta_X (methods.md §2.2 item 6).

    The truncated model ``2 P2 rho / (P1 + P2 (1 + rho))^2`` rises with rho up to
    ``rho* = (P1 + P2) / P2`` (g2 = 1/(2 (P1 + P2))); the physical (rising) branch is returned.
    With ``qy_higher`` (QYs of levels >= 3, eta_X = 1 assumed) the general moments are inverted
    numerically.
    """
    from scipy.optimize import brentq, minimize_scalar

    _check_mean_excitations(mean_excitations)
    if g2_err is not None and not g2_err >= 0:
        raise QrspecError(f"g2_err={g2_err!r} must be >= 0")

    def g2_of(rho):
        return g2_zero_cascade(mean_excitations, rho, qy_higher=qy_higher)

    if qy_higher:
        res = minimize_scalar(lambda r: -g2_of(r), bounds=(0.0, 1.0), method="bounded")
        rho_max = float(res.x)
    else:
        p1, p2 = poisson_probabilities(mean_excitations)
        rho_max = (p1 + p2) / p2
    g2_max = g2_of(rho_max)

    def invert(g):
        if not np.isfinite(g):
            return math.nan
        if g <= g2_of(0.0):
            return 0.0
        if g >= g2_max:
            return math.nan
        return brentq(lambda r: g2_of(r) - g, 0.0, rho_max, xtol=1e-12)

    if interval is None:
        interval = ((g2_zero - g2_err, g2_zero + g2_err) if g2_err is not None
                    else (math.nan, math.nan))
    rho = invert(g2_zero)
    lo = invert(max(interval[0], 0.0)) if np.isfinite(interval[0]) else math.nan
    hi = invert(interval[1]) if np.isfinite(interval[1]) else math.nan
    if np.isfinite(interval[1]) and not np.isfinite(hi) and interval[1] >= g2_max:
        hi = rho_max
    ok = bool(np.isfinite(rho))
    msg = "" if ok else (f"g2_zero={g2_zero!r} exceeds the cascade maximum {g2_max:.4g} at "
                         f"mean_excitations={mean_excitations!r}")
    return QYRatioEstimate(rho, 0.5 * (hi - lo), (lo, hi), float(g2_zero), g2_max,
                           float(mean_excitations), ok, msg)


def two_emitter_g2(brightness_ratio: float) -> float:
    """g2(0) of two independent ideal single-photon emitters with intensity ratio r."""
    r = float(brightness_ratio)
    return 2.0 * r / (1.0 + r) ** 2


def brightness_ratio_for_g2(g2_zero: float) -> float:
    """Smallest brightness ratio r >= 1 of two emitters that gives g2(0) <= ``g2_zero``.

    Solves ``2 r / (1 + r)^2 = g``: ``r = ((1 - g) + sqrt(1 - 2 g)) / g``; inf for g <= 0 and 1
    for g >= 0.5.
    """
    g = float(g2_zero)
    if g <= 0:
        return math.inf
    if g >= 0.5:
        return 1.0
    return ((1.0 - g) + math.sqrt(1.0 - 2.0 * g)) / g


@dataclass(frozen=True, slots=True)
class EmitterVerdict:
    """Single-emitter verdict from a gated g2(0).

    Attributes
    ----------
    single : bool
        ``g2 + n_sigma * g2_err < threshold``.
    g2_upper : float
        The one-sided upper bound used.
    threshold, n_sigma : float
    min_brightness_ratio : float
        A two-emitter explanation needs an intensity ratio of at least this (from ``g2_upper``).
    message : str
    """

    single: bool
    g2_upper: float
    threshold: float
    n_sigma: float
    min_brightness_ratio: float
    message: str


def single_emitter_verdict(g2_gated: float, g2_err: float, *, threshold: float = 0.5,
                           n_sigma: float = 2.0) -> EmitterVerdict:
    """Declare a single emitter when the gated g2(0) is below ``threshold`` at ``n_sigma``.

    The default is the textbook g2(0) < 0.5 criterion (two equal emitters give 0.5) at a
    one-sided 2 sigma (97.7 %); gate the g2 so that the XX photons are removed first
    (T_g >= 3 tau_XX). Because two *unequal* emitters give less than 0.5, the verdict reports
    the brightness ratio a two-emitter explanation would need.
    """
    if not (np.isfinite(g2_gated) and np.isfinite(g2_err) and g2_err >= 0):
        raise QrspecError(f"g2_gated={g2_gated!r} and g2_err={g2_err!r} must be finite, "
                          "g2_err >= 0")
    if not 0 < threshold <= 1:
        raise QrspecError(f"threshold={threshold!r} must be in (0, 1]")
    if not n_sigma >= 0:
        raise QrspecError(f"n_sigma={n_sigma!r} must be >= 0")
    upper = g2_gated + n_sigma * g2_err
    single = bool(upper < threshold)
    ratio = brightness_ratio_for_g2(upper)
    if single:
        msg = (f"single emitter: g2 + {n_sigma:g} sigma = {upper:.3g} < {threshold:g}; two "
               f"emitters would need a brightness ratio >= {ratio:.3g}")
    else:
        msg = f"not shown single: g2 + {n_sigma:g} sigma = {upper:.3g} >= {threshold:g}"
    return EmitterVerdict(single, upper, threshold, n_sigma, ratio, msg)
