"""Biexciton lifetime three ways, each with its uncertainty, and their comparison.

(a) :func:`heralded_tau_xx`: same-pulse photon pairs on two detectors. The first photon of a
    cascade pair is the XX photon, so t1 = min(t_A, t_B) ~ IRF (*) Exp(tau_XX) (methods.md §2.4;
    exact without jitter, and the jitter of the later X photon matters only when the X delay is
    within the IRF width). Poisson MLE on the t1 histogram with the accidental pairs as a fixed
    expected-count component (:func:`accidental_first_photon_counts`). :func:`heralded_tau_x`
    gives tau_X of the same charge state from the delays t2 - t1.
(b) :func:`gate_scan_tau_xx`: generalised least squares of g2(0; T_g) against the exact gated
    cascade formula (:func:`qrspec.fitting.g2_analysis.g2_gated_cascade`), with tau_X fixed and
    the covariance of the nested gates (:func:`nested_gate_covariance`).
(c) :func:`cascade_tau_xx`: the constrained X/XX cascade fit of the decay
    (``fit_decay(model="cascade")``).

:func:`compare_tau_xx` tests the estimates for consistency (chi2 about the weighted mean).

Accidental pairs (correction to methods.md §2.4): pairs between pulse s on A and pulse s+k on B
(k != 0) combine two *signal* photons and so have the first-photon shape min(signal, signal),
which decays at ~tau_X/2; same-pulse accidentals combine signal with background (signal x
signal pairs from one pulse are the true cascade pairs), whose first-photon shape is
min(signal, flat) ~ the signal decay. The k != 0 pairs therefore do not give the accidental shape;
:func:`accidental_first_photon_counts` builds it from the per-detector decays and backgrounds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.fitting.g2_analysis import g2_gated_cascade
from qrspec.fitting.lifetime import LifetimeFit, fit_decay

logger = logging.getLogger(__name__)

__all__ = [
    "TauXXEstimate", "TauXXComparison", "heralded_tau_xx", "heralded_tau_x",
    "heralded_tau_xx_of_decay", "MIN_HERALDED_PAIRS",
    "accidental_first_photon_counts", "gate_scan_tau_xx", "nested_gate_covariance",
    "cascade_tau_xx", "compare_tau_xx",
]


@dataclass(frozen=True, eq=False)
class TauXXEstimate:
    """One lifetime estimate (tau_XX, or tau_X for :func:`heralded_tau_x`).

    Attributes
    ----------
    method : str
        "heralded", "gate_scan", "cascade" or "heralded_delay".
    tau_ns, tau_err_ns : float
        Estimate and 1-sigma error.
    interval_ns : (float, float)
        68.3 % interval (profile likelihood where available).
    n_events : int
        Pairs, gates or photons used.
    success : bool
    message : str
    fit : object or None
        The underlying fit (LifetimeFit for "heralded"/"cascade").
    extra : dict
        Other fitted values (e.g. ``qy_ratio``, ``reduced_chi2``).
    """

    method: str
    tau_ns: float
    tau_err_ns: float
    interval_ns: tuple
    n_events: int
    success: bool
    message: str
    fit: object = None
    extra: dict | None = None


def _from_fit(method, fit: LifetimeFit, k: int, n_events: int) -> TauXXEstimate:
    if not fit.success:
        return TauXXEstimate(method, math.nan, math.nan, (math.nan, math.nan), n_events, False,
                             fit.message, fit)
    return TauXXEstimate(method, fit.tau_ns[k], fit.tau_err_ns[k], fit.tau_interval_ns[k],
                         n_events, True, "", fit, dict(fit.params))


# ---------------------------------------------------------------------------------------------
# (a) heralded pairs
# ---------------------------------------------------------------------------------------------

def accidental_first_photon_counts(decay_a, decay_b, *, n_pulses: int, background_a,
                                   background_b) -> np.ndarray:
    """Expected first-photon histogram of same-pulse accidental pairs (signal x background).

    Parameters
    ----------
    decay_a, decay_b : array_like
        Micro-time histograms of every photon of detector A and B (same bins as the t1
        histogram, common time zero), accumulated over ``n_pulses`` sync periods.
    n_pulses : int
        Number of laser periods in the data.
    background_a, background_b : float or array_like
        Background (dark, afterpulse, stray light) counts per bin of each detector.

    Returns
    -------
    ndarray
        Expected accidental pairs per bin of t1: with per-pulse probabilities s (signal) and
        b (background) per bin and exceedances S>, B> (later bins, plus half of the same bin),
        ``N [s_A B_B> + b_B S_A> + b_A S_B> + s_B B_A> + b_A B_B> + b_B B_A>]``.
        Signal x signal pairs of one pulse are true cascade pairs and are excluded.
    """
    da = np.asarray(decay_a, dtype=float)
    db = np.asarray(decay_b, dtype=float)
    if da.ndim != 1 or da.shape != db.shape:
        raise QrspecError(f"decay_a.shape={da.shape} and decay_b.shape={db.shape} must be equal "
                          "and 1-D")
    if not n_pulses > 0:
        raise QrspecError(f"n_pulses={n_pulses!r} must be > 0")
    ba = np.broadcast_to(np.asarray(background_a, dtype=float), da.shape)
    bb = np.broadcast_to(np.asarray(background_b, dtype=float), db.shape)
    if np.any(ba < 0) or np.any(bb < 0):
        raise QrspecError("background_a and background_b must be >= 0")
    sa = np.clip(da - ba, 0.0, None) / n_pulses
    sb = np.clip(db - bb, 0.0, None) / n_pulses
    pa, pb = ba / n_pulses, bb / n_pulses

    def later(p):  # sum over later bins plus half of the same bin (ties split evenly)
        rev = np.cumsum(p[::-1])[::-1]
        return rev - 0.5 * p

    sa_l, sb_l, pa_l, pb_l = later(sa), later(sb), later(pa), later(pb)
    acc = sa * pb_l + pb * sa_l + pa * sb_l + sb * pa_l + pa * pb_l + pb * pa_l
    return n_pulses * acc


def heralded_tau_xx(first_ns, *, bin_ns: float = 0.016, period_ns: float = 100.0, irf=None,
                    accidental_counts=None, background: float | str = 0.0,
                    fit_range_ns=None, intervals: str = "profile", fit_shift: bool = True,
                    **fit_kwargs) -> TauXXEstimate:
    """tau_XX by Poisson MLE of the first-photon times of same-pulse two-detector pairs.

    Parameters
    ----------
    first_ns : array_like
        t1 = min(t_A, t_B) of each pair, ns from the common time zero (detector delays removed).
    bin_ns, period_ns : float
        Histogram grid (the period is the grid length).
    irf : array_like or ModelIRF
        Single-photon IRF on that grid (average of the two detectors' aligned IRFs); ``None``
        fits the tail from ``fit_range_ns[0]`` without reconvolution.
    accidental_counts : array_like, optional
        Expected accidental pairs per bin (:func:`accidental_first_photon_counts`), added to the
        model with fixed shape and size.
    background : "fit" or float
        Extra flat component (default 0: the accidentals are modelled explicitly).
    fit_range_ns, intervals, fit_shift, **fit_kwargs
        Passed to :func:`~qrspec.fitting.lifetime.fit_decay`.
    """
    t1 = np.asarray(first_ns, dtype=float)
    if t1.ndim != 1:
        raise QrspecError(f"first_ns.shape={t1.shape} must be one-dimensional")
    if not (bin_ns > 0 and period_ns > bin_ns):
        raise QrspecError(f"bin_ns={bin_ns!r} and period_ns={period_ns!r} must satisfy "
                          "0 < bin_ns < period_ns")
    n_bins = int(round(period_ns / bin_ns))
    finite = t1[np.isfinite(t1)]
    counts = np.bincount(np.clip((np.mod(finite, n_bins * bin_ns) / bin_ns).astype(np.int64),
                                 0, n_bins - 1), minlength=n_bins).astype(float)
    if accidental_counts is not None:
        accidental_counts = np.asarray(accidental_counts, dtype=float)
    fit = fit_decay(counts, bin_ns=bin_ns, model="mono", irf=irf, period_ns=n_bins * bin_ns,
                    fit_range_ns=fit_range_ns, background=background,
                    fixed_background=accidental_counts, intervals=intervals,
                    fit_shift=fit_shift and irf is not None, **fit_kwargs)
    est = _from_fit("heralded", fit, 0, finite.size)
    if finite.size < t1.size:
        logger.warning("heralded_tau_xx: %d non-finite first-photon times ignored",
                       t1.size - finite.size)
    return est


MIN_HERALDED_PAIRS = 20  # fewer same-period pairs: no heralded tau_XX (NaN with the reason)


def heralded_tau_xx_of_decay(t1_ns, decay, background, n_pulses: int, *,
                             min_pairs: int = MIN_HERALDED_PAIRS, start_ns: float = 0.3,
                             stop_ns: float | None = None) -> tuple:
    """Heralded tau_XX of one set of periods (a state, a level, a charging window).

    The one implementation used by the states, the charging windows
    (:mod:`qrspec.analysis.states`) and the level evidence (:mod:`qrspec.levels.evidence`).
    For a single emitter every same-period pair of emitter photons is a cascade pair, so the
    accidental pairs of the centre peak are signal x background pairs; their first-photon
    histogram follows from each detector's decay and background
    (:func:`accidental_first_photon_counts`) and enters the fit with fixed shape and size.
    Always a Poisson MLE (a few pairs per bin: least squares would be biased).

    Parameters
    ----------
    t1_ns : ndarray
        First-photon times of the periods' same-period two-detector pairs (aligned axis).
    decay : qrspec.stats.decay.Decay
        The periods' two-detector decay on the fit bins.
    background : array_like
        Flat background counts per detector over the whole period
        (:func:`qrspec.stats.decay.background_counts` of the full-resolution decay).
    n_pulses : int
        Laser periods the decay was accumulated over.
    min_pairs : int
        Fewer pairs: NaN with the reason.
    start_ns : float
        The fit starts this long after the rise ``decay.t0_ns`` (past the IRF peak).
    stop_ns : float, optional
        End of the fit (default: the last whole bin of the period).

    Returns
    -------
    tuple of (float, float, str)
        ``(tau_ns, tau_err_ns, message)``; NaN values with the reason ("" when defined).
    """
    n = int(np.asarray(t1_ns).size)
    if n < min_pairs:
        return math.nan, math.nan, f"{n} photon pairs < {min_pairs}"
    n_bins = int(np.floor(decay.period_ns / decay.bin_ns + 1e-9))
    per_bin = np.asarray(background, float) * decay.bin_ns / decay.period_ns
    cpd = decay.counts_per_detector[:, :n_bins]
    acc = accidental_first_photon_counts(cpd[0], cpd[1], n_pulses=max(int(n_pulses), 1),
                                         background_a=per_bin[0], background_b=per_bin[1])
    start = decay.t0_ns + start_ns
    stop = n_bins * decay.bin_ns if stop_ns is None else min(stop_ns, n_bins * decay.bin_ns)
    if not start < stop:
        return math.nan, math.nan, (f"tail fit start t0 + {start_ns:g} ns = {start:.4g} ns is "
                                    "past the end of the period")
    # the fit takes as few pairs in its range as the pair minimum (the inversion uses the
    # exact Gamma likelihood of an exponential MLE, valid at a few tens of events)
    est = heralded_tau_xx(t1_ns, bin_ns=decay.bin_ns, period_ns=n_bins * decay.bin_ns,
                          accidental_counts=acc, background=0.0, fit_range_ns=(start, stop),
                          intervals="hessian", min_photons=int(min_pairs))
    if not est.success or not np.isfinite(est.tau_err_ns):
        return math.nan, math.nan, f"heralded tau_XX failed: {est.message or 'no error'}"
    return float(est.tau_ns), float(est.tau_err_ns), ""


def _delay_derivatives(p, x, span):
    """``(nll, gradient, Hessian)`` of :func:`heralded_tau_x`'s -ln L in ``p = (ln tau, logit f)``.

    -ln L = -sum ln D_i, ``D_i = (1 - f) g_i + f / span``, ``g_i = exp(-x_i/tau) / N``,
    ``N = tau (1 - exp(-span/tau))``. With ``u = span/tau`` and ``q = u / (e^u - 1)``:
    d ln N / d ln tau = 1 - q and its derivative ``q (1 - u - q)``.
    """
    tau = math.exp(p[0])
    f = 1.0 / (1.0 + math.exp(-p[1]))
    u = span / tau
    q = u / math.expm1(u) if u < 700.0 else 0.0
    a = 1.0 - q
    a1 = q * (1.0 - u - q)
    xt = x / tau
    g = np.exp(-xt) / (tau * -math.expm1(-u))
    dens = (1.0 - f) * g + f / span
    r = g / dens
    c = xt - a
    lt = (1.0 - f) * r * c  # d ln D_i / d ln tau
    df = f * (1.0 - f)  # d f / d logit f
    w = (1.0 / span - g) / dens  # d ln D_i / d f
    lp = df * w
    ltt = (1.0 - f) * r * (c * c - xt - a1) - lt * lt
    lpp = df * (1.0 - 2.0 * f) * w - lp * lp
    ltp = -df * r * c - lt * lp
    grad = -np.array([lt.sum(), lp.sum()])
    hess = -np.array([[ltt.sum(), ltp.sum()], [ltp.sum(), lpp.sum()]])
    return -float(np.log(dens).sum()), grad, hess


_DELAY_MAX_ITER = 200
_DELAY_DECREMENT = 1e-12  # Newton decrement g.H^-1.g of -ln L: parameters to ~1e-7 before the
#                           last (quadratic) step, so to rounding after it
_DELAY_F_BOUNDARY = -8.0  # logit f below this and still falling: test the boundary f = 0


def _delay_mle(x, neg_x, span, tau0, nll):
    """Maximum of :func:`heralded_tau_x`'s likelihood in ``(ln tau, logit f)``.

    Damped Newton with the analytic gradient and Hessian (eigenvalues of an indefinite Hessian
    floored, Armijo backtracking on ``nll``) from ``(ln tau0, -3)``, the old Nelder-Mead start.
    When the accidental fraction runs to its boundary (logit f -> -inf, the likelihood flat in
    f) the optimum is ``f = 0`` at the pure-exponential MLE ``tau0`` if -ln L does not fall
    into ``f > 0`` there (d(-ln L)/df >= 0 at f = 0): returned as ``(ln tau0, -inf)``.

    Returns a ``scipy.optimize.OptimizeResult`` (``x``, ``fun``, ``nit``, ``success``).
    """
    from scipy.optimize import OptimizeResult

    p = np.array([math.log(tau0), -3.0])
    fun = nll(p)
    ok = False
    nit = 0
    while nit < _DELAY_MAX_ITER and not ok:
        nit += 1
        _, grad, hess = _delay_derivatives(p, x, span)
        if p[1] < _DELAY_F_BOUNDARY and grad[1] > 0:
            g0 = np.exp(neg_x / tau0) / (tau0 * -math.expm1(-span / tau0))
            if float(np.sum(1.0 - 1.0 / (span * g0))) >= 0:  # d(-ln L)/df at (tau0, 0)
                p = np.array([math.log(tau0), -math.inf])
                fun = nll(p)
                ok = True
                break
        lam, vec = np.linalg.eigh(hess)
        if not np.all(np.isfinite(lam)):
            break
        lam = np.maximum(np.abs(lam), 1e-8 * max(float(np.max(np.abs(lam))), 1e-300))
        step = -(vec @ ((vec.T @ grad) / lam))
        big = float(np.max(np.abs(step)))
        if big > 2.0:  # at most a factor e^2 in tau per step
            step *= 2.0 / big
        slope = float(grad @ step)
        t = 1.0
        for _ in range(60):
            trial = p + t * step
            f_trial = nll(trial)
            if f_trial <= fun + 1e-4 * t * slope:
                break
            t *= 0.5
        else:  # no decrease along a descent direction: stationary to rounding?
            ok = float(np.max(np.abs(grad))) < 1e-6 * max(1.0, abs(fun))
            break
        p, fun = trial, f_trial
        ok = -slope < _DELAY_DECREMENT
    return OptimizeResult(x=p, fun=fun, nit=nit, success=ok,
                          message="" if ok else "delay fit did not converge")


def heralded_tau_x(delays_ns, *, min_delay_ns: float = 0.5, max_delay_ns: float = 50.0,
                   fit_accidentals: bool = True) -> TauXXEstimate:
    """tau_X of the charge state from the XX -> X delays t2 - t1 of heralded pairs.

    Unbinned MLE on ``min_delay_ns <= d < max_delay_ns`` (the lower cut removes the
    jitter-dominated region) of a truncated exponential plus, with ``fit_accidentals``, a flat
    pedestal of fraction f (accidental pairs have delays spread over the whole period, nearly
    flat on a window << period). Errors from the observed information (numerical Hessian of
    -ln L); ``extra["accidental_fraction"]`` holds f.
    """
    from scipy.optimize import brentq

    d = np.asarray(delays_ns, dtype=float)
    if d.ndim != 1:
        raise QrspecError(f"delays_ns.shape={d.shape} must be one-dimensional")
    if not 0 <= min_delay_ns < max_delay_ns:
        raise QrspecError(f"min_delay_ns={min_delay_ns!r}, max_delay_ns={max_delay_ns!r} must "
                          "satisfy 0 <= min < max")
    x = d[(d >= min_delay_ns) & (d < max_delay_ns)] - min_delay_ns
    n = x.size
    span = max_delay_ns - min_delay_ns
    nan2 = (math.nan, math.nan)
    if n < 10:
        return TauXXEstimate("heralded_delay", math.nan, math.nan, nan2, n, False,
                             f"only {n} delays in range (< 10)")
    xbar = float(x.mean())
    if not 0 < xbar < 0.5 * span:
        return TauXXEstimate("heralded_delay", math.nan, math.nan, nan2, n, False,
                             f"mean delay {xbar:.4g} ns inconsistent with a decay in a "
                             f"{span:g} ns window")

    def mean_x(tau):
        e = math.exp(-span / tau)  # underflows harmlessly to 0 for tau << span
        return tau - span * e / (1.0 - e)

    tau0 = brentq(lambda t: mean_x(t) - xbar, 1e-3 * xbar, 1e3 * span, xtol=1e-12)
    if not fit_accidentals:
        e = math.exp(-span / tau0)
        var_x = tau0**2 - span**2 * e / (1.0 - e) ** 2
        err = tau0**2 / math.sqrt(n * var_x)  # Fisher: Var(x) / tau^4 per event
        return TauXXEstimate("heralded_delay", tau0, err, (tau0 - err, tau0 + err), n, True, "",
                             None, {"accidental_fraction": 0.0})

    neg_x = -x  # once: ``-x / tau`` is ``(-x) / tau``, the same numbers

    def nll(p):
        tau, f = math.exp(p[0]), 1.0 / (1.0 + math.exp(-p[1]))
        norm = tau * -math.expm1(-span / tau)
        dens = (1.0 - f) * np.exp(neg_x / tau) / norm + f / span
        return -float(np.log(dens).sum())

    res = _delay_mle(x, neg_x, span, tau0, nll)
    p = res.x
    # observed information by central differences in (log tau, logit f); each distinct point once
    memo = {}

    def nll_at(q):
        key = q.tobytes()
        if key not in memo:
            memo[key] = nll(q)
        return memo[key]

    h = 1e-4
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (nll_at(p + ei + ej) - nll_at(p + ei - ej) - nll_at(p - ei + ej)
                          + nll_at(p - ei - ej)) / (4 * h * h)
    tau = math.exp(p[0])
    f = 1.0 / (1.0 + math.exp(-p[1]))
    try:
        cov = np.linalg.inv(hess)
        err = tau * math.sqrt(cov[0, 0]) if cov[0, 0] > 0 else math.nan
    except np.linalg.LinAlgError:
        err = math.nan
    if not np.isfinite(err) and hess[0, 0] > 0:
        # f ran to its boundary 0 (logit -> -inf, singular information): tau alone at fixed f
        err = tau / math.sqrt(hess[0, 0])
    ok = bool(res.success and np.isfinite(err))
    return TauXXEstimate("heralded_delay", tau, err, (tau - err, tau + err), n, ok,
                         "" if ok else "delay fit did not converge", res,
                         {"accidental_fraction": f})


# ---------------------------------------------------------------------------------------------
# (b) gate scan
# ---------------------------------------------------------------------------------------------

def nested_gate_covariance(g2, center_counts, side_mean_counts, n_side: int) -> np.ndarray:
    """Covariance of g2(0; T_g) over gates whose photon sets are nested.

    With C_i the centre-peak counts and S_i the mean side-peak counts of gate i, later gates keep
    subsets of the pairs of earlier ones, so ``Cov(C_i, C_j) = C_later`` and
    ``Cov(g_i, g_j) / (g_i g_j) = 1 / C_early + 1 / (M S_early)`` (early = the gate with more
    counts); the diagonal is the usual ``1/C + 1/(M S)``.
    """
    g = np.asarray(g2, dtype=float)
    c = np.asarray(center_counts, dtype=float)
    s = np.asarray(side_mean_counts, dtype=float)
    if not (g.shape == c.shape == s.shape and g.ndim == 1):
        raise QrspecError(f"g2, center_counts, side_mean_counts shapes {g.shape}, {c.shape}, "
                          f"{s.shape} must be equal and 1-D")
    if n_side < 1 or np.any(c <= 0) or np.any(s <= 0):
        raise QrspecError(f"n_side={n_side!r} must be >= 1 and all counts > 0")
    cmax = np.maximum.outer(c, c)
    smax = np.maximum.outer(s, s)
    return np.outer(g, g) * (1.0 / cmax + 1.0 / (n_side * smax))


def gate_scan_tau_xx(gate_ns, g2, g2_err=None, *, tau_x_ns: float, mean_excitations: float,
                     g2_cov=None, tau_x_err_ns: float = 0.0, tau_xx0_ns: float | None = None
                     ) -> TauXXEstimate:
    """tau_XX (and eta_XX/eta_X) from g2(0; T_g) over a gate scan (methods.md §2.3).

    Generalised least squares of the exact gated cascade formula with tau_X fixed; the error
    comes from the GLS covariance, plus the propagated ``tau_x_err_ns`` (in quadrature). Pass
    ``g2_cov`` (e.g. :func:`nested_gate_covariance`): with only ``g2_err`` the gates are treated
    as independent and, because the photon sets are nested, the error is then too small.
    """
    from scipy.optimize import least_squares

    tg = np.asarray(gate_ns, dtype=float)
    y = np.asarray(g2, dtype=float)
    if tg.ndim != 1 or tg.shape != y.shape or tg.size < 3:
        raise QrspecError(f"gate_ns.shape={tg.shape} and g2.shape={y.shape} must be equal, "
                          "1-D, >= 3 gates")
    if g2_cov is None:
        if g2_err is None:
            raise QrspecError("give g2_err or g2_cov")
        e = np.asarray(g2_err, dtype=float)
        if e.shape != y.shape or np.any(~(e > 0)):
            raise QrspecError(f"g2_err.shape={e.shape} must equal g2.shape with values > 0")
        cov = np.diag(e**2)
    else:
        cov = np.asarray(g2_cov, dtype=float)
        if cov.shape != (y.size, y.size):
            raise QrspecError(f"g2_cov.shape={cov.shape} must be ({y.size}, {y.size})")
    if not (tau_x_ns > 0 and mean_excitations > 0):
        raise QrspecError(f"tau_x_ns={tau_x_ns!r} and mean_excitations={mean_excitations!r} "
                          "must be > 0")
    if not np.all(np.isfinite(y)):
        return TauXXEstimate("gate_scan", math.nan, math.nan, (math.nan, math.nan), y.size,
                             False, "g2 contains NaN/inf")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return TauXXEstimate("gate_scan", math.nan, math.nan, (math.nan, math.nan), y.size,
                             False, "g2_cov is not positive definite")

    def fit(tx):
        def resid(p):
            txx, rho = math.exp(p[0]), p[1]
            if txx >= 0.98 * tx:
                txx = 0.98 * tx
            r = y - g2_gated_cascade(tg, tx, txx, rho, mean_excitations)
            return np.linalg.solve(chol, r)

        t0 = tau_xx0_ns if tau_xx0_ns is not None else 0.2 * tx
        rho0 = max(float(y[np.argmin(tg)]), 0.05)
        res = least_squares(resid, [math.log(t0), rho0],
                            bounds=([math.log(1e-3), 0.0], [math.log(0.98 * tx), 100.0]),
                            x_scale=[0.1, 0.1])
        return res

    res = fit(tau_x_ns)
    jac = res.jac
    try:
        pcov = np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return TauXXEstimate("gate_scan", math.nan, math.nan, (math.nan, math.nan), y.size,
                             False, "singular GLS Jacobian")
    txx = math.exp(res.x[0])
    err = txx * math.sqrt(pcov[0, 0])
    if tau_x_err_ns > 0:
        res2 = fit(tau_x_ns + tau_x_err_ns)
        err = math.hypot(err, math.exp(res2.x[0]) - txx)
    chi2 = float(2.0 * res.cost)
    dof = y.size - 2
    ok = bool(res.success) and txx < 0.97 * tau_x_ns
    msg = "" if ok else (res.message if not res.success else "tau_XX at its upper bound")
    return TauXXEstimate("gate_scan", txx, err, (txx - err, txx + err), y.size, ok, msg, res,
                         {"qy_ratio": float(res.x[1]),
                          "qy_ratio_err": float(math.sqrt(pcov[1, 1])),
                          "chi2": chi2, "dof": dof})


# ---------------------------------------------------------------------------------------------
# (c) cascade decay fit
# ---------------------------------------------------------------------------------------------

def cascade_tau_xx(counts, time_ns=None, *, mean_excitations: float, qy_ratio=None,
                   intervals: str = "profile", **fit_kwargs) -> TauXXEstimate:
    """tau_XX from the constrained X/XX cascade fit of a decay histogram (methods.md §2.6).

    <N> must be known (calibration); fixing ``qy_ratio`` (from g2) sharpens tau_XX because
    with a free ratio the fast amplitude is one free parameter, as in a bi-exponential.
    """
    fit = fit_decay(counts, time_ns, model="cascade", mean_excitations=mean_excitations,
                    qy_ratio=qy_ratio, intervals=intervals, **fit_kwargs)
    n = int(np.nansum(np.asarray(counts, dtype=float))) if np.size(counts) else 0
    return _from_fit("cascade", fit, 0, n)


# ---------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TauXXComparison:
    """Consistency of several tau_XX estimates.

    Attributes
    ----------
    methods : tuple of str
    weighted_mean_ns, weighted_err_ns : float
        Inverse-variance mean of the successful estimates and its error.
    chi2 : float
        ``sum ((tau_i - mean) / err_i)^2``; ~ chi2 with ``dof = k - 1`` if consistent.
    dof : int
    p_value : float
    consistent : bool
        ``p_value >= alpha``.
    pairwise_z : dict
        ``(method_i, method_j) -> (tau_i - tau_j) / sqrt(err_i^2 + err_j^2)``.
    message : str
    """

    methods: tuple
    weighted_mean_ns: float
    weighted_err_ns: float
    chi2: float
    dof: int
    p_value: float
    consistent: bool
    pairwise_z: dict
    message: str


def compare_tau_xx(estimates, *, alpha: float = 0.01) -> TauXXComparison:
    """Compare tau_XX estimates (e.g. heralded, gate scan, cascade) by a chi2 consistency test.

    Failed estimates (``success=False`` or non-finite error) are left out and named in the
    message. The estimates are treated as independent; they share photons when taken from the
    same data, which makes the test conservative (too few disagreements flagged) only
    if they are positively correlated.
    """
    from scipy.stats import chi2 as chi2_dist

    if not 0 < alpha < 1:
        raise QrspecError(f"alpha={alpha!r} must be in (0, 1)")
    ests = list(estimates)
    good = [e for e in ests if e.success and np.isfinite(e.tau_ns) and np.isfinite(e.tau_err_ns)
            and e.tau_err_ns > 0]
    dropped = [e.method for e in ests if e not in good]
    note = f"; left out (failed): {', '.join(dropped)}" if dropped else ""
    if not good:
        return TauXXComparison(tuple(e.method for e in ests), math.nan, math.nan, math.nan, 0,
                               math.nan, False, {}, "no successful estimate" + note)
    tau = np.array([e.tau_ns for e in good])
    err = np.array([e.tau_err_ns for e in good])
    w = 1.0 / err**2
    mean = float((w * tau).sum() / w.sum())
    mean_err = float(1.0 / math.sqrt(w.sum()))
    chi2 = float((((tau - mean) / err) ** 2).sum())
    dof = len(good) - 1
    p = float(chi2_dist.sf(chi2, dof)) if dof > 0 else 1.0
    pair = {}
    for i in range(len(good)):
        for j in range(i + 1, len(good)):
            pair[(good[i].method, good[j].method)] = float(
                (tau[i] - tau[j]) / math.hypot(err[i], err[j]))
    consistent = bool(p >= alpha)
    if dof == 0:
        msg = "only one estimate: nothing to compare" + note
    elif consistent:
        msg = f"consistent: chi2={chi2:.3g} for {dof} dof (p={p:.3g})" + note
    else:
        worst = max(pair, key=lambda k: abs(pair[k]))
        msg = (f"DISAGREE: chi2={chi2:.3g} for {dof} dof (p={p:.3g} < {alpha:g}); largest "
               f"pairwise difference {worst[0]} vs {worst[1]}: z={pair[worst]:.2f}" + note)
        logger.warning("tau_XX estimates disagree: %s", msg)
    return TauXXComparison(tuple(e.method for e in good), mean, mean_err, chi2, dof, p,
                           consistent, pair, msg)
