"""Maximum-likelihood dwell-time laws (Clauset, Shalizi & Newman, SIAM Rev. 51, 661 (2009)).

Four models of the durations ``t >= t_min`` of one state (density ``p``, survival ``S``)::

    power_law    p = (a - 1)/t_min (t/t_min)^-a               S = (t/t_min)^(1 - a)     a > 1
    truncated    p = t^-a / Z,  Z = int_{t_min}^{t_max} t^-a    S = int_t^{t_max} t^-a / Z
    exponential  p = r exp(-r (t - t_min))                      S = exp(-r (t - t_min))
    cutoff       p = t^-a exp(-r t) / Z,  Z = r^(a-1) Gamma(1 - a, r t_min)

``truncated`` is the power law cut sharply at ``t_max`` (methods.md §9.3); ``cutoff`` is the
power law with an exponential cut-off (what the blinking literature often calls "truncated").

Censoring (decided here, methods.md §9.3 leaves it open): the caller drops the first stay of a
trajectory (left-censored: its start is unknown; conditioning on the first observed switch
makes the rest an exact renewal sequence) and passes the last stay as *right-censored*: it
enters the likelihood through its survival term ``ln S(c)``. Dropping the last stay instead
would bias every law towards short durations (long stays are the likeliest to be cut by the
end of the acquisition); with the survival term the likelihood is exact for a renewal process.
A censored stay shorter than ``t_min`` carries no information on the tail and is not used.

Lower cut ``t_min`` (Clauset et al. §3.3): among the complete durations at or above the
change-point time resolution, the value that minimises the Kolmogorov–Smirnov distance between
the complete tail and the fitted power law, restricted to candidates that leave at least
``min_events`` complete events (so a particle with enough events always gets an estimate).

Power-law MLE with censoring: ``a = 1 + n / (sum ln(x_i/t_min) + sum ln(c_k/t_min))`` with ``n``
complete events; ``a_err = (a - 1)/sqrt(n)`` (the censored terms are linear in ``a`` and do not
change the curvature). The other models are fitted numerically; their errors come from the
observed information (numerical Hessian). For ``truncated``, ``t_max`` sits at the longest
duration when no stay is censored (a boundary, non-regular estimate); ``a_err`` is then the
curvature error at fixed ``t_max``.

Model comparison (:func:`compare_laws`): non-nested pairs by Vuong's normalised log-likelihood
ratio (two-sided p); ``exponential`` inside ``cutoff`` (a = 0) by ``2R ~ chi2_1``;
``power_law`` inside ``cutoff`` (r -> 0) also by ``chi2_1``, *not* by the boundary mixture
``chi2_0/2 + chi2_1/2`` of a regular problem: for alpha < 2 the power law has no mean, the
score in r at r = 0 is infinite and the fitted r is positive in every sample, so the halved
p-value doubles the false alarms (measured 0.20 at nominal 0.1, alpha 1.6); plain ``chi2_1``
gives 0.06-0.14 at nominal 0.1 for alpha 1.3-3.5 (``scripts/validate_dwell.py --part
nested``). ``power_law`` against ``truncated`` by the probability of a maximum as small as the
observed one under the fitted power law, ``(1 - (x_max/t_min)^(1 - a))^n`` (the
likelihood-ratio statistic of an estimated end point has no chi-square law).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["DwellModelFit", "DwellLaw", "LawComparison", "MODELS", "fit_dwell_law",
           "fit_power_law", "fit_truncated_power_law", "fit_exponential", "fit_cutoff_power_law",
           "compare_laws", "select_t_min", "bootstrap_alpha", "log_upper_gamma"]

MODELS = ("power_law", "truncated", "exponential", "cutoff")
SIGNIFICANCE = 0.1  # Clauset et al. use p < 0.1 to call a likelihood-ratio sign significant
MAX_CANDIDATES = 200  # t_min candidates scanned (log-spaced subset beyond this)
N_BOOT = 200  # bootstrap resamples for the error of alpha with a KS-chosen t_min

# Gauss-Legendre nodes for the incomplete gamma integral (32 per piece of <= 2 units of ln t)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)
_X_ASYM = 40.0  # asymptotic series of Gamma(a, x) from here on (smallest term < 1e-16)


# ------------------------------------------------------------------------ special function
def log_upper_gamma(a: float, x) -> np.ndarray:
    """``ln Gamma(a, x)``, the upper incomplete gamma function, for any real ``a`` and ``x > 0``.

    scipy's ``gammaincc`` needs ``a > 0``; the cut-off power law needs ``a = 1 - alpha <= 0``.
    For ``x >= 40`` the asymptotic series ``x^(a-1) e^-x sum_k (a-1)...(a-k)/x^k`` (30 terms,
    relative error < 1e-15 for |a| <= 10); below, ``Gamma(a, 40)`` plus the integral from ``x``
    to 40 of ``t^(a-1) e^-t`` by composite Gauss-Legendre quadrature in ``ln t`` (32 nodes per
    piece of at most 2 units; checked against adaptive quadrature to 1e-11 in the tests).
    """
    return _log_upper_gamma_grad(float(a), x)[0]


def _log_upper_gamma_grad(a: float, x):
    """``(G, dG/da, dG/dx)`` with ``G = ln Gamma(a, x)`` (arrays shaped like ``x``)."""
    g, ga, _, gx, _, _ = _log_upper_gamma_hess(a, x)
    return g, ga, gx


def _log_upper_gamma_hess(a: float, x):
    """``G = ln Gamma(a, x)`` with its first and second derivatives.

    ``(G, G_a, G_aa, G_x, G_ax, G_xx)`` (arrays shaped like ``x``).
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    g = np.empty_like(x)
    ga = np.empty_like(x)
    gaa = np.empty_like(x)
    big = x >= _X_ASYM
    if big.any():
        g[big], ga[big], gaa[big] = _log_gamma_asym(a, x[big])
    small = ~big
    if small.any():
        xs = x[small]
        u0 = np.log(xs)
        u1 = math.log(_X_ASYM)
        pieces = max(1, int(math.ceil((u1 - float(u0.min())) / 2.0)))
        frac = (np.arange(pieces)[:, None] + 0.5 * (_GL_X[None, :] + 1.0)) / pieces  # (p, 32)
        span = u1 - u0
        u = u0[:, None, None] + span[:, None, None] * frac[None]
        w = (span / pieces * 0.5)[:, None, None] * _GL_W[None, None, :]
        logf = a * u - np.exp(u)  # integrand t^a e^-t in u = ln t (dt = t du)
        top, top_a, top_aa = _log_gamma_asym_scalar(a, _X_ASYM)
        m = np.maximum(logf.max(axis=(1, 2)), top)
        e = np.exp(logf - m[:, None, None]) * w
        t_scaled = np.exp(top - m)
        s0 = e.sum(axis=(1, 2)) + t_scaled
        s1 = (e * u).sum(axis=(1, 2)) + t_scaled * top_a
        s2 = (e * u * u).sum(axis=(1, 2)) + t_scaled * (top_aa + top_a * top_a)
        g[small] = m + np.log(s0)
        ga[small] = s1 / s0
        gaa[small] = s2 / s0 - (s1 / s0) ** 2
    gx = -np.exp((a - 1.0) * np.log(x) - x - g)
    gax = gx * (np.log(x) - ga)
    gxx = gx * ((a - 1.0) / x - 1.0 - gx)
    return g, ga, gaa, gx, gax, gxx


def _log_gamma_asym_scalar(a: float, x: float) -> tuple[float, float, float]:
    """:func:`_log_gamma_asym` for one float ``x`` (plain floats: no array overhead)."""
    term, d1, d2, s, s1, s2 = 1.0, 0.0, 0.0, 1.0, 0.0, 0.0
    for k in range(1, 31):
        d2 = (d2 * (a - k) + 2.0 * d1) / x
        d1 = (d1 * (a - k) + term) / x
        term = term * (a - k) / x
        s += term
        s1 += d1
        s2 += d2
    lx = math.log(x)
    return (a - 1.0) * lx - x + math.log(s), lx + s1 / s, s2 / s - (s1 / s) ** 2


def _log_gamma_asym(a: float, x: np.ndarray):
    """Asymptotic ``ln Gamma(a, x)`` and its first two derivatives in ``a`` (x >= 40)."""
    term = np.ones_like(x)
    d1 = np.zeros_like(x)
    d2 = np.zeros_like(x)
    s = np.ones_like(x)
    s1 = np.zeros_like(x)
    s2 = np.zeros_like(x)
    for k in range(1, 31):
        d2 = (d2 * (a - k) + 2.0 * d1) / x
        d1 = (d1 * (a - k) + term) / x
        term = term * (a - k) / x
        s = s + term
        s1 = s1 + d1
        s2 = s2 + d2
    lx = np.log(x)
    return (a - 1.0) * lx - x + np.log(s), lx + s1 / s, s2 / s - (s1 / s) ** 2


# ------------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class DwellModelFit:
    """One model fitted to the durations ``t >= t_min``.

    Attributes
    ----------
    model : str
        ``"power_law"``, ``"truncated"``, ``"exponential"`` or ``"cutoff"``.
    alpha, alpha_err : float
        Exponent and its standard error (NaN for ``exponential``).
    rate_hz, rate_err_hz : float
        Exponential rate ``r`` (``exponential``, ``cutoff``; NaN otherwise).
    t_max_s : float
        Upper end of ``truncated`` (NaN otherwise).
    t_min_s : float
        Lower cut.
    loglik : float
        Log-likelihood (durations in seconds; censored stays through ``ln S``).
    pointwise : ndarray
        Log-likelihood of each complete event, then of each censored stay (for Vuong's test).
    n_events, n_censored : int
        Complete events and right-censored stays at or above ``t_min``.
    longest_s : float
        Longest complete event at or above ``t_min``.
    success : bool
        The fit converged to finite values.
    message : str
        Why not, when ``success`` is False.
    """

    model: str
    alpha: float
    alpha_err: float
    rate_hz: float
    rate_err_hz: float
    t_max_s: float
    t_min_s: float
    loglik: float
    pointwise: np.ndarray
    n_events: int
    n_censored: int
    longest_s: float
    success: bool = True
    message: str = ""

    @property
    def n_params(self) -> int:
        """Free parameters (t_min excluded)."""
        return {"power_law": 1, "truncated": 2, "exponential": 1, "cutoff": 2}[self.model]

    def survival(self, t_s) -> np.ndarray:
        """``P(T >= t | T >= t_min)`` of the fitted law (1 below ``t_min``; NaN if failed)."""
        t = np.asarray(t_s, dtype=np.float64)
        if not self.success:
            return np.full(t.shape, np.nan)
        y = np.maximum(t / self.t_min_s, 1.0)
        return np.exp(_log_survival(self.model, y, self._scaled_params())).reshape(t.shape)

    def pdf(self, t_s) -> np.ndarray:
        """Density of the fitted law in 1/s (0 below ``t_min``, and above ``t_max``)."""
        t = np.asarray(t_s, dtype=np.float64)
        if not self.success:
            return np.full(t.shape, np.nan)
        y = t / self.t_min_s
        out = np.zeros(t.shape)
        ok = y >= 1.0
        if self.model == "truncated":
            ok &= t <= self.t_max_s
        out[ok] = np.exp(_log_pdf(self.model, y[ok], self._scaled_params())) / self.t_min_s
        return out

    def _scaled_params(self) -> tuple[float, float]:
        if self.model == "power_law":
            return self.alpha, 0.0
        if self.model == "truncated":
            return self.alpha, self.t_max_s / self.t_min_s
        return self.alpha, self.rate_hz * self.t_min_s


@dataclass(frozen=True)
class LawComparison:
    """Likelihood-ratio comparison of two laws fitted to the same events.

    Attributes
    ----------
    first, second : str
        The models; ``loglik_ratio > 0`` favours ``first``.
    loglik_ratio : float
        ``R = ln L(first) - ln L(second)``.
    statistic : float
        Vuong's ``R / (sigma sqrt(n))`` (non-nested) or ``2 R`` (nested), NaN if undefined.
    p_value : float
        Probability of a statistic this large if the data cannot tell the models apart
        (non-nested: two-sided Vuong) or if the smaller model (``second``) is true (nested).
    nested : bool
        ``second`` is a special case of ``first``.
    favoured : str
        ``first``, ``second`` or ``""`` (``p_value >= 0.1``).
    """

    first: str
    second: str
    loglik_ratio: float
    statistic: float
    p_value: float
    nested: bool
    favoured: str


@dataclass(frozen=True, eq=False)
class DwellLaw:
    """The dwell-time law of one state: ``t_min``, the four fitted models, their comparison.

    Attributes
    ----------
    t_min_s : float
        Lower cut (KS-optimal, >= ``resolution_s``); NaN when there are too few events.
    resolution_s : float
        Shortest duration trusted (change-point time resolution).
    ks_distance : float
        KS distance of the complete tail to the power law at ``t_min_s``.
    n_events, n_censored : int
        Complete events and right-censored stays at or above ``t_min_s``.
    n_total : int
        Complete events given (any duration).
    fits : tuple of DwellModelFit
        In the order of ``models`` requested (``power_law`` first).
    comparisons : tuple of LawComparison
    best_model : str
        See :func:`fit_dwell_law`; ``""`` when undecided or too few events.
    flag : str
        ``""`` or why the law is undefined (e.g. ``"too few events: 12 < 30"``).
    scan_t_min_s, scan_ks : ndarray
        The scanned ``t_min`` candidates and their KS distances.
    alpha_err_bootstrap, t_min_err_s : float
        Bootstrap standard errors of the power-law exponent and of ``t_min`` including the KS
        choice of ``t_min`` (NaN when ``t_min`` was given or the bootstrap was off).
    """

    t_min_s: float
    resolution_s: float
    ks_distance: float
    n_events: int
    n_censored: int
    n_total: int
    fits: tuple
    comparisons: tuple
    best_model: str
    flag: str
    scan_t_min_s: np.ndarray
    scan_ks: np.ndarray
    alpha_err_bootstrap: float = math.nan
    t_min_err_s: float = math.nan

    def fit(self, model: str) -> DwellModelFit | None:
        """The fit of ``model`` (None when not fitted)."""
        for f in self.fits:
            if f.model == model:
                return f
        return None

    @property
    def alpha(self) -> float:
        """Power-law exponent (NaN with ``flag`` set when undefined)."""
        f = self.fit("power_law")
        return f.alpha if f is not None and not self.flag else math.nan

    @property
    def alpha_err(self) -> float:
        """Standard error of :attr:`alpha`.

        The bootstrap error when ``t_min`` was chosen by KS (it includes the choice), else the
        curvature error at the fixed ``t_min``.
        """
        f = self.fit("power_law")
        if f is None or self.flag:
            return math.nan
        return self.alpha_err_bootstrap if np.isfinite(self.alpha_err_bootstrap) \
            else f.alpha_err


# ------------------------------------------------------------------------ densities
def _log_trunc_integral(alpha: float, log_lo, log_hi):
    """``ln int_lo^hi y^-alpha dy`` for ``hi >= lo > 0`` (stable at alpha = 1)."""
    return _trunc_terms(1.0 - alpha, log_lo, log_hi)[0]


def _trunc_terms(s: float, log_lo, log_hi):
    """``ln I``, ``d ln I/ds``, ``d ln I/d log_hi`` of ``I = int_lo^hi y^(s-1) dy``."""
    lo = np.asarray(log_lo, np.float64)
    hi = np.asarray(log_hi, np.float64)
    length = hi - lo
    sl = s * length
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if abs(s) < 1e-12:
            core = np.log(length)
            mean = 0.5 * length
        else:
            core = np.where(sl > 700.0, sl - math.log(abs(s)),
                            np.log(np.expm1(np.minimum(sl, 700.0)) / s))
            small = np.abs(sl) < 1e-6
            mean = np.where(small, 0.5 * length + s * length**2 / 12.0,
                            length / -np.expm1(-sl) - 1.0 / s)
    log_i = s * lo + core
    return log_i, lo + mean, np.exp(s * hi - log_i)


def _log_pdf(model: str, y: np.ndarray, p: tuple[float, float]) -> np.ndarray:
    """Log density, ln p(y), in units of t_min (y = t / t_min >= 1)."""
    a, b = p
    ly = np.log(y)
    if model == "power_law":
        return math.log(a - 1.0) - a * ly
    if model == "truncated":
        return -a * ly - _log_trunc_integral(a, 0.0, math.log(b))
    if model == "exponential":
        return math.log(b) - b * (y - 1.0)
    # cutoff: ln Z = (a - 1) ln r + ln Gamma(1 - a, r)
    log_z = (a - 1.0) * math.log(b) + float(log_upper_gamma(1.0 - a, b)[0])
    return -a * ly - b * y - log_z


def _log_survival(model: str, y: np.ndarray, p: tuple[float, float]) -> np.ndarray:
    a, b = p
    y = np.asarray(y, np.float64)
    ly = np.log(y)
    if model == "power_law":
        return (1.0 - a) * ly
    if model == "truncated":
        lb = math.log(b)
        with np.errstate(divide="ignore"):
            return np.where(y >= b, -np.inf, _log_trunc_integral(a, np.minimum(ly, lb), lb)
                            - _log_trunc_integral(a, 0.0, lb))
    if model == "exponential":
        return -b * (y - 1.0)
    return log_upper_gamma(1.0 - a, b * y) - float(log_upper_gamma(1.0 - a, b)[0])


def _pointwise(model, y, c, p, log_t_min):
    """Per-event log-likelihood in seconds: complete events then censored stays."""
    lp = _log_pdf(model, y, p) - log_t_min
    ls = _log_survival(model, c, p) if c.size else np.zeros(0)
    return np.concatenate([np.broadcast_to(lp, y.shape), ls])


# ------------------------------------------------------------------------ input
def _as_durations(name: str, values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size and not (np.all(np.isfinite(v)) and v.min() > 0):
        raise QrspecError(f"{name} must be finite durations > 0 s (got min={v.min()!r})")
    return v


def _check_t_min(t_min_s) -> float:
    if not (isinstance(t_min_s, int | float | np.floating) and math.isfinite(t_min_s)
            and t_min_s > 0):
        raise QrspecError(f"t_min_s={t_min_s!r} must be a finite number > 0")
    return float(t_min_s)


def _tail(durations_s, censored_s, t_min_s):
    x = _as_durations("durations_s", durations_s)
    c = _as_durations("censored_s", censored_s)
    t_min = _check_t_min(t_min_s)
    return x[x >= t_min] / t_min, c[c >= t_min] / t_min, t_min


def _failed(model, t_min, n, nc, message) -> DwellModelFit:
    nan = math.nan
    return DwellModelFit(model, nan, nan, nan, nan, nan, t_min, nan, np.zeros(0), n, nc, nan,
                         success=False, message=message)


# ------------------------------------------------------------------------ the four fits
def fit_power_law(durations_s, t_min_s: float, censored_s=()) -> DwellModelFit:
    """Power law above ``t_min_s`` (closed-form MLE, see the module docstring).

    Parameters
    ----------
    durations_s : array_like
        Complete durations (those below ``t_min_s`` are ignored).
    t_min_s : float
        Lower cut.
    censored_s : array_like
        Right-censored durations (the true duration is at least this).
    """
    y, c, t_min = _tail(durations_s, censored_s, t_min_s)
    n = y.size
    if n < 2:
        return _failed("power_law", t_min, n, c.size, f"{n} events >= t_min (need 2)")
    total = float(np.sum(np.log(y)) + np.sum(np.log(c)))
    if not total > 0:
        return _failed("power_law", t_min, n, c.size, "all events equal t_min")
    a = 1.0 + n / total
    pw = _pointwise("power_law", y, c, (a, 0.0), math.log(t_min))
    return DwellModelFit("power_law", a, (a - 1.0) / math.sqrt(n), math.nan, math.nan,
                         math.nan, t_min, float(pw.sum()), pw, n, c.size, float(y.max()) * t_min)


def fit_exponential(durations_s, t_min_s: float, censored_s=()) -> DwellModelFit:
    """Exponential above ``t_min_s``: ``r = n / sum(t - t_min)`` (censored stays included)."""
    y, c, t_min = _tail(durations_s, censored_s, t_min_s)
    n = y.size
    if n < 2:
        return _failed("exponential", t_min, n, c.size, f"{n} events >= t_min (need 2)")
    total = float(np.sum(y - 1.0) + np.sum(c - 1.0))
    if not total > 0:
        return _failed("exponential", t_min, n, c.size, "all events equal t_min")
    r = n / total  # per t_min
    pw = _pointwise("exponential", y, c, (0.0, r), math.log(t_min))
    return DwellModelFit("exponential", math.nan, math.nan, r / t_min, r / t_min / math.sqrt(n),
                         math.nan, t_min, float(pw.sum()), pw, n, c.size, float(y.max()) * t_min)


def _grad_hessian(fun_grad, x, steps):
    """Hessian by central differences of an analytic gradient."""
    x = np.asarray(x, np.float64)
    k = x.size
    h = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = steps[i]
        h[i] = (fun_grad(x + e)[1] - fun_grad(x - e)[1]) / (2.0 * steps[i])
    return 0.5 * (h + h.T)


def _cov(h):
    try:
        cov = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
        return None
    return cov


def fit_truncated_power_law(durations_s, t_min_s: float, censored_s=()) -> DwellModelFit:
    """Power law on ``[t_min, t_max]`` (methods.md §9.3), ``alpha`` and ``t_max`` by MLE.

    Without censored stays ``t_max`` is the longest duration (the likelihood decreases with
    ``t_max``) and ``alpha`` solves the score equation ``E[ln y] = mean(ln y)`` (monotonic in
    ``alpha``); a censored stay needs ``t_max`` above it and both are optimised (analytic
    gradient). ``alpha`` may be any real number (the range is finite); ``alpha_err`` is the
    curvature error at fixed ``t_max``.
    """
    from scipy.optimize import brentq

    y, c, t_min = _tail(durations_s, censored_s, t_min_s)
    n = y.size
    if n < 2:
        return _failed("truncated", t_min, n, c.size, f"{n} events >= t_min (need 2)")
    ly = np.log(y)
    lc = np.log(c)
    l_hi = float(max(ly.max(), lc.max() if c.size else 0.0))
    if not l_hi > 0.0:
        return _failed("truncated", t_min, n, c.size, "all events equal t_min")
    sly = float(ly.sum())

    def fun_grad(p):
        a, big_l = float(p[0]), float(p[1])
        s = 1.0 - a
        lz, dz_s, dz_l = (float(v) for v in _trunc_terms(s, 0.0, big_l))
        f = a * sly + n * lz
        g = np.array([sly - n * dz_s, n * dz_l])  # d/da = -d/ds
        if c.size:
            li, di_s, di_l = _trunc_terms(s, lc, big_l)
            f -= float(np.sum(li)) - c.size * lz
            g[0] += float(np.sum(di_s)) - c.size * dz_s
            g[1] -= float(np.sum(di_l)) - c.size * dz_l
        return (f, g) if np.isfinite(f) else (np.inf, np.zeros(2))

    if c.size == 0:
        target = sly / n

        def score(s):
            return float(_trunc_terms(s, 0.0, l_hi)[1]) - target

        lo, hi = -1.0, 1.0
        while score(lo) > 0 and lo > -1e4:
            lo *= 4.0
        while score(hi) < 0 and hi < 1e4:
            hi *= 4.0
        if score(lo) > 0 or score(hi) < 0:
            return _failed("truncated", t_min, n, c.size, "score equation has no root")
        a, big_l = 1.0 - brentq(score, lo, hi, xtol=1e-12), l_hi
    else:
        # damped Newton with the Hessian from central differences of the analytic gradient:
        # ~10x fewer likelihood evaluations than L-BFGS-B (which made this fit ~15 ms, half of
        # a particle's blinking statistics); the same optimum (tests/test_dwell_laws.py)
        lo, hi = np.array([-10.0, l_hi + 1e-9]), np.array([10.0, l_hi + 30.0])

        def hess(p):
            return _grad_hessian(fun_grad, p, [1e-6, 1e-6])

        def fgh(p):
            f, g = fun_grad(p)
            if not np.isfinite(f):
                return f, g, np.eye(2)
            return f, g, hess(p)

        pl = 1.0 + n / max(sly + float(lc.sum()), 1e-300)
        best = None
        for x0 in ((pl, l_hi + 0.1), (pl, l_hi + 2.0)):
            x, f, _, _ = _damped_newton(fgh, np.asarray(x0, np.float64), lo, hi,
                                        lazy=(fun_grad, hess))
            if np.isfinite(f) and (best is None or f < best[1]):
                best = (x, f)
        if best is None:
            return _failed("truncated", t_min, n, c.size, "no finite likelihood")
        a, big_l = float(best[0][0]), float(best[0][1])
    if abs(a) >= 9.999:
        return _failed("truncated", t_min, n, c.size, f"alpha={a:.4g} at the search bound")
    h = _grad_hessian(fun_grad, [a, big_l], [1e-5, 1e-5])[0, 0]
    a_err = 1.0 / math.sqrt(h) if h > 0 else math.nan
    b = math.exp(big_l)
    pw = _pointwise("truncated", y, c, (a, b), math.log(t_min))
    return DwellModelFit("truncated", a, a_err, math.nan, math.nan, b * t_min, t_min,
                         float(pw.sum()), pw, n, c.size, float(y.max()) * t_min)


def _damped_newton(fgh, x0, lo, hi, max_iter=200, tol=1e-10, lazy=None):
    """Minimise with Newton steps, Levenberg damping, backtracking and box bounds.

    ``fgh(x) -> (f, g, H)``. A coordinate at a bound whose gradient pushes outwards is held
    fixed (projected Newton). ``lazy = (fg, hess)`` with ``fg(x) -> (f, g)`` and
    ``hess(x) -> H`` (the numbers of ``fgh``) evaluates the Hessian only at accepted points
    (a costly one, e.g. by differences of the gradient). Returns ``(x, f, H, converged)``.
    """
    x = np.clip(np.asarray(x0, np.float64), lo, hi)
    f, g, h = fgh(x)
    lam = 0.0
    for _ in range(max_iter):
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        if not free.any():
            return x, f, h, True
        gf = g[free]
        hf = h[np.ix_(free, free)]
        improved = False
        for _ in range(40):
            try:
                step = -np.linalg.solve(hf + lam * np.eye(gf.size), gf)
            except np.linalg.LinAlgError:
                step = -gf
            if not np.all(np.isfinite(step)) or float(step @ gf) >= 0:
                lam = max(4.0 * lam, 1e-6 * (1.0 + float(np.max(np.abs(np.diag(hf))))))
                continue
            xn = x.copy()
            xn[free] = np.clip(x[free] + step, lo[free], hi[free])
            if lazy is None:
                fn, gn, hn = fgh(xn)
            else:
                fn, gn = lazy[0](xn)
            if np.isfinite(fn) and fn <= f + 1e-4 * float(gf @ (xn[free] - x[free])):
                improved = True
                if lazy is not None:
                    hn = lazy[1](xn)
                break
            lam = max(4.0 * lam, 1e-6 * (1.0 + float(np.max(np.abs(np.diag(hf))))))
        if not improved:
            return x, f, h, bool(np.max(np.abs(gf)) < 1e-6)
        moved = float(np.max(np.abs(xn - x)))
        x, f, g, h = xn, fn, gn, hn
        lam *= 0.1
        if moved < tol:
            return x, f, h, True
    return x, f, h, False


def fit_cutoff_power_law(durations_s, t_min_s: float, censored_s=()) -> DwellModelFit:
    """Power law with exponential cut-off above ``t_min_s``.

    Maximum likelihood in ``(alpha, ln r)`` by damped Newton steps with the analytic gradient
    and Hessian (derivatives of ``ln Gamma(1 - alpha, r t)`` from the same quadrature);
    errors from that Hessian. ``alpha`` is bounded to [-5, 8] and ``r t_min`` to
    [1e-6 t_min / t_longest, 100]: at the lower end of ``r`` the law is a pure power law.
    For complete data the negative log-likelihood is convex in ``(alpha, r)`` (an exponential
    family), so the optimum is global; it is started from the power-law fit.
    """
    y, c, t_min = _tail(durations_s, censored_s, t_min_s)
    n = y.size
    if n < 3:
        return _failed("cutoff", t_min, n, c.size, f"{n} events >= t_min (need 3)")
    y_hi = float(max(y.max(), c.max() if c.size else 0.0))
    if not y_hi > 1.0:
        return _failed("cutoff", t_min, n, c.size, "all events equal t_min")
    sly = float(np.sum(np.log(y)))
    sy = float(np.sum(y))
    xs = np.concatenate([[1.0], c])  # Gamma arguments / r: t_min, then the censored stays
    wk = np.concatenate([[n + c.size], -np.ones(c.size)])

    def fgh(p):
        a, rho = float(p[0]), float(p[1])
        r = math.exp(rho)
        xk = r * xs
        g, g_b, g_bb, g_x, g_bx, g_xx = _log_upper_gamma_hess(1.0 - a, xk)
        f = a * sly + r * sy + n * (a - 1.0) * rho + float(wk @ g)
        da = sly + n * rho - float(wk @ g_b)
        dr = r * sy + n * (a - 1.0) + float(wk @ (g_x * xk))
        haa = float(wk @ g_bb)
        har = n - float(wk @ (g_bx * xk))
        hrr = r * sy + float(wk @ (g_xx * xk * xk + g_x * xk))
        if not np.isfinite(f):
            return np.inf, np.zeros(2), np.eye(2)
        return f, np.array([da, dr]), np.array([[haa, har], [har, hrr]])

    lo = np.array([-5.0, math.log(1e-6 / y_hi)])
    hi = np.array([8.0, math.log(100.0)])
    a_pl = 1.0 + n / max(sly + float(np.sum(np.log(c))), 1e-300)
    x, f, h, ok = _damped_newton(fgh, [min(a_pl, 7.0), math.log(0.1 / y_hi)], lo, hi)
    if not (ok and np.isfinite(f)):
        return _failed("cutoff", t_min, n, c.size, "Newton iteration did not converge")
    a, r = float(x[0]), math.exp(float(x[1]))
    cov = _cov(h)
    a_err = math.sqrt(cov[0, 0]) if cov is not None else math.nan
    r_err = r * math.sqrt(cov[1, 1]) if cov is not None else math.nan
    pw = _pointwise("cutoff", y, c, (a, r), math.log(t_min))
    return DwellModelFit("cutoff", a, a_err, r / t_min, r_err / t_min, math.nan, t_min,
                         float(pw.sum()), pw, n, c.size, float(y.max()) * t_min)


_FITTERS = {"power_law": fit_power_law, "truncated": fit_truncated_power_law,
            "exponential": fit_exponential, "cutoff": fit_cutoff_power_law}


# ------------------------------------------------------------------------ comparison
def compare_laws(first: DwellModelFit, second: DwellModelFit) -> LawComparison:
    """Likelihood-ratio comparison of two fits to the same events (see module docstring)."""
    from scipy.special import chdtrc, erfc

    if (first.t_min_s != second.t_min_s or first.n_events != second.n_events
            or first.n_censored != second.n_censored):
        raise QrspecError(f"first={first.model} and second={second.model} must be fitted to the "
                          "same events (same t_min_s, n_events, n_censored)")
    nan = math.nan
    if not (first.success and second.success):
        return LawComparison(first.model, second.model, nan, nan, nan, False, "")
    r = first.loglik - second.loglik
    pair = (first.model, second.model)
    nested = pair in (("cutoff", "power_law"), ("cutoff", "exponential"),
                      ("truncated", "power_law"))
    if pair == ("truncated", "power_law"):
        # P(max <= observed | power law): a small value says the tail ends too early
        y_max = second.longest_s / second.t_min_s
        p = float((-np.expm1((1.0 - second.alpha) * math.log(y_max))) ** second.n_events)
        stat = 2.0 * r
    elif nested:
        stat = max(2.0 * r, 0.0)
        p = float(chdtrc(1, stat))  # chi2_1 also for r -> 0: see the module docstring
    else:
        d = first.pointwise - second.pointwise
        sd = float(np.std(d))
        if not sd > 0:
            return LawComparison(first.model, second.model, r, nan, 1.0, False, "")
        stat = r / (sd * math.sqrt(d.size))
        p = float(erfc(abs(stat) / math.sqrt(2.0)))
    if p < SIGNIFICANCE:
        favoured = first.model if (nested or r > 0) else second.model
    else:
        favoured = "" if not nested else second.model
    return LawComparison(first.model, second.model, r, stat, p, nested, favoured)


def _best_model(fits: dict, comps: dict) -> str:
    """Power law or exponential by Vuong; then the nested refinements if significant."""
    pe = comps.get(("power_law", "exponential"))
    if pe is None or pe.favoured == "":
        base = ""
    else:
        base = pe.favoured
    if base == "power_law":
        better = [m for m in ("cutoff", "truncated")
                  if (m, "power_law") in comps and comps[(m, "power_law")].favoured == m]
        if better:
            return max(better, key=lambda m: fits[m].loglik)
    if base == "exponential":
        ce = comps.get(("cutoff", "exponential"))
        if ce is not None and ce.favoured == "cutoff":
            return "cutoff"
    return base


# ------------------------------------------------------------------------ t_min
def select_t_min(durations_s, censored_s=(), *, resolution_s: float, min_events: int
                 ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """KS-optimal lower cut of a power law (Clauset et al. §3.3).

    Candidates are the distinct complete durations ``>= resolution_s`` that leave at least
    ``min_events`` complete events at or above them (at most 200, log-spaced by rank).

    Returns
    -------
    (t_min_s, ks_distance, candidates_s, ks) : the chosen cut, its KS distance, and the scan
        (NaN and empty arrays when no candidate exists).
    """
    from qrspec.levels import _dwell_kernels as k

    x = np.sort(_as_durations("durations_s", durations_s))
    c = _as_durations("censored_s", censored_s)
    res = _check_t_min(resolution_s)
    cand = k.candidate_indices(x, res, int(min_events), MAX_CANDIDATES)
    if cand.size == 0:
        return math.nan, math.nan, np.zeros(0), np.zeros(0)
    ks, _ = k.ks_scan(x, c, cand)
    best = int(np.argmin(ks))
    if not np.isfinite(ks[best]):
        return math.nan, math.nan, x[cand], ks
    return float(x[cand[best]]), float(ks[best]), x[cand], ks


def bootstrap_alpha(durations_s, censored_s=(), *, resolution_s: float, min_events: int,
                    n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Standard errors of the power-law exponent and of ``t_min``, including the KS choice.

    The KS choice of ``t_min`` is included (Clauset et al. §3.5): the spread over ``n_boot``
    resamples of the complete durations, each with its own ``t_min``. ``(nan, nan)`` with fewer
    than 10 usable resamples.
    """
    from qrspec.levels import _dwell_kernels as k

    x = _as_durations("durations_s", durations_s)
    c = _as_durations("censored_s", censored_s)
    a, t = k.bootstrap_power_law(x, c, _check_t_min(resolution_s), int(min_events),
                                 MAX_CANDIDATES, int(n_boot), int(seed))
    ok = np.isfinite(a)
    if ok.sum() < 10:
        return math.nan, math.nan
    return float(np.std(a[ok], ddof=1)), float(np.std(t[ok], ddof=1))


# ------------------------------------------------------------------------ the whole law
def fit_dwell_law(durations_s, censored_s=(), *, resolution_s: float, min_events: int,
                  t_min_s: float | None = None, models=MODELS, n_boot: int = N_BOOT
                  ) -> DwellLaw:
    """Dwell-time law of one state: ``t_min``, the fitted models and their comparison.

    Parameters
    ----------
    durations_s : array_like
        Complete durations in seconds (the first, left-censored stay already dropped).
    censored_s : array_like
        Right-censored durations (the last stay, cut by the end of the acquisition).
    resolution_s : float
        Shortest duration trusted: ``t_min`` is never below it.
    min_events : int
        Fewer complete events at or above ``resolution_s``: every value NaN, ``flag`` set.
    t_min_s : float, optional
        Fixed lower cut (>= ``resolution_s``) instead of the KS choice.
    models : sequence of str
        Models to fit (``power_law`` is always fitted, first).
    n_boot : int
        Bootstrap resamples for ``alpha_err`` with a KS-chosen ``t_min`` (0: curvature error
        only, which ignores the choice of ``t_min`` and covers too rarely; see
        ``scripts/validate_dwell.py``).

    Returns
    -------
    DwellLaw
        ``best_model``: the power law or the exponential, whichever Vuong's test favours
        (p < 0.1; ``""`` if neither), refined to ``cutoff`` or ``truncated`` when that nested
        extension is significant (the one with the higher likelihood if both are).
    """
    x = _as_durations("durations_s", durations_s)
    c = _as_durations("censored_s", censored_s)
    res = _check_t_min(resolution_s)
    if isinstance(min_events, bool) or not isinstance(min_events, int | np.integer) \
            or min_events < 3:
        raise QrspecError(f"min_events={min_events!r} must be an integer >= 3")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise QrspecError(f"n_boot={n_boot!r} must be an integer >= 0")
    models = tuple(models)
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise QrspecError(f"models={list(models)!r} must be drawn from {MODELS}")
    models = ("power_law",) + tuple(m for m in models if m != "power_law")
    n_res = int(np.sum(x >= res))
    empty = np.zeros(0)
    if t_min_s is not None:
        t_min = _check_t_min(t_min_s)
        if t_min < res:
            raise QrspecError(f"t_min_s={t_min_s!r} must be >= resolution_s={res!r}")
        ks, scan_t, scan_ks = math.nan, empty, empty
        n_tail = int(np.sum(x >= t_min))
    else:
        t_min, ks, scan_t, scan_ks = select_t_min(x, c, resolution_s=res, min_events=min_events)
        n_tail = int(np.sum(x >= t_min)) if np.isfinite(t_min) else n_res
    if n_tail < min_events or not np.isfinite(t_min):
        return DwellLaw(t_min_s=math.nan, resolution_s=res, ks_distance=math.nan,
                        n_events=n_tail, n_censored=0, n_total=x.size, fits=(), comparisons=(),
                        best_model="",
                        flag=f"too few events: {n_tail} >= {res:.3g} s < {min_events}",
                        scan_t_min_s=scan_t, scan_ks=scan_ks)
    if np.isnan(ks):
        pl0 = fit_power_law(x, t_min, c)
        if pl0.success:
            ks = _ks(x[x >= t_min], t_min, pl0.alpha)
    fits = {m: _FITTERS[m](x, t_min, c) for m in models}
    pairs = [("power_law", "exponential"), ("cutoff", "power_law"), ("truncated", "power_law"),
             ("cutoff", "exponential"), ("truncated", "exponential"), ("truncated", "cutoff")]
    comps = {(a, b): compare_laws(fits[a], fits[b]) for a, b in pairs
             if a in fits and b in fits}
    pl = fits["power_law"]
    flag = "" if pl.success else f"power-law fit failed: {pl.message}"
    a_boot = t_boot = math.nan
    if t_min_s is None and n_boot > 0 and pl.success:
        a_boot, t_boot = bootstrap_alpha(x, c, resolution_s=res, min_events=min_events,
                                         n_boot=n_boot)
    return DwellLaw(t_min_s=t_min, resolution_s=res, ks_distance=ks, n_events=pl.n_events,
                    n_censored=pl.n_censored, n_total=x.size, fits=tuple(fits.values()),
                    comparisons=tuple(comps.values()),
                    best_model=_best_model(fits, comps) if pl.success else "", flag=flag,
                    scan_t_min_s=scan_t, scan_ks=scan_ks, alpha_err_bootstrap=a_boot,
                    t_min_err_s=t_boot)


def _ks(tail, t_min, a):
    y = np.sort(tail) / t_min
    n = y.size
    f = -np.expm1((1.0 - a) * np.log(y))
    right = np.searchsorted(y, y, "right")
    left = np.searchsorted(y, y, "left")
    return float(max(np.max(right / n - f), np.max(f - left / n)))
