"""Lifetime fits of TCSPC histograms: Poisson MLE (default) or least squares; IRF reconvolution.

``fit_decay`` fits a mono-, bi-, tri-exponential or the constrained X/XX cascade model
(:mod:`qrspec.fitting.models`) on the periodic laser-period axis, with a fitted sub-bin IRF shift,
background and optional scatter, over a chosen fit range (tail fitting). The optimiser is a
projected Levenberg-Marquardt / Fisher-scoring iteration on the Poisson deviance (Laurence & Chromy
2010) with the analytic Jacobian; uncertainties come from the Fisher information at the optimum
(the expected Hessian of D/2), optionally from profile likelihood (Delta D = 1) or a parametric
bootstrap.

A fit on bad data (empty, NaN, negative, all counts in one bin, too few photons, no convergence)
returns ``LifetimeFit(success=False, message=...)`` and never raises; invalid *arguments* (unknown
model, inconsistent shapes) raise :class:`~qrspec.errors.QrspecError`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from qrspec.errors import QrspecError
from qrspec.fitting import _kernels
from qrspec.fitting.irf import ModelIRF, irf_stats
from qrspec.fitting.models import GlobalModel, ReconvolutionModel

logger = logging.getLogger(__name__)

__all__ = ["LifetimeFit", "fit_decay", "fit_decays", "fit_decay_global"]

_MODELS = ("mono", "bi", "tri", "cascade")
MULTI_EXP = ("mono", "bi", "tri")
_METHODS = ("mle", "lsq")
_TINY = 1e-10  # floor of the model (counts/bin) inside logs and weights


@dataclass(frozen=True, eq=False)
class LifetimeFit:
    """Result of :func:`fit_decay`.

    When ``success`` is False the numeric fields are empty tuples / NaN / None and ``message``
    says why (bad data, no convergence, lifetime or IRF shift at a bound, zero amplitude).

    Attributes
    ----------
    tau_ns, tau_err_ns : tuple of float
        Lifetimes in ascending order and their 1-sigma errors (Fisher information, delta
        method). Cascade: ``(tau_XX, tau_X)``.
    tau_interval_ns : tuple of (float, float)
        68.3 % intervals: profile likelihood when requested, else ``tau -+ tau_err``.
    amplitudes, amplitude_errs : tuple of float
        Photons per component (per full period), same order as ``tau_ns``.
    fractions, fraction_errs : tuple of float
        Photon fractions ``A_k / sum(A)``; a cascade XX fraction can be negative (a rise).
    background, background_err : float
        Constant background in counts per bin (error NaN when it sits at the bound 0 or is fixed).
    shift_ns, shift_err_ns : float
        Fitted IRF shift (positive: model later than the IRF).
    scatter, scatter_err : float
        Photons in the scatter term ``s * IRF``.
    params, param_errs : dict
        Every named parameter (including cascade ``tau_x_ns``, ``tau_xx_ns``, ``qy_ratio``).
    deviance, reduced_deviance : float
        Poisson deviance (2I*) and 2I*_r = D / dof, computed for every method.
    chi2, reduced_chi2 : float
        Pearson chi2 ``sum (c - m)^2 / m`` and chi2 / dof.
    dof : int
        Fitted bins minus free parameters.
    residuals : ndarray
        Pearson residuals ``(c - m) / sqrt(m)`` (NaN outside the fit range).
    model_counts : ndarray
        Fitted model on every histogram bin.
    n_photons : int
        Counts in the fit range.
    model, method : str
    success : bool
    message : str
        Why ``success`` is False ("" on success).
    n_iter : int
    covariance : ndarray
        Covariance of the internal parameters (log tau, amplitudes, background, shift bins,
        scatter), NaN rows for fixed or at-bound parameters.
    param_names : tuple of str
        Internal parameter names (rows of ``covariance``).
    bootstrap_tau_err_ns : tuple of float or None
        Standard deviation of tau over parametric bootstrap replicates (when requested).
    """

    tau_ns: tuple = ()
    tau_err_ns: tuple = ()
    tau_interval_ns: tuple = ()
    amplitudes: tuple = ()
    amplitude_errs: tuple = ()
    fractions: tuple = ()
    fraction_errs: tuple = ()
    background: float = math.nan
    background_err: float = math.nan
    shift_ns: float = math.nan
    shift_err_ns: float = math.nan
    scatter: float = math.nan
    scatter_err: float = math.nan
    params: dict = field(default_factory=dict)
    param_errs: dict = field(default_factory=dict)
    deviance: float = math.nan
    reduced_deviance: float = math.nan
    chi2: float = math.nan
    reduced_chi2: float = math.nan
    dof: int = 0
    residuals: np.ndarray | None = None
    model_counts: np.ndarray | None = None
    n_photons: int = 0
    model: str = ""
    method: str = ""
    success: bool = False
    message: str = ""
    n_iter: int = 0
    covariance: np.ndarray | None = None
    param_names: tuple = ()
    bootstrap_tau_err_ns: tuple | None = None

    @property
    def tau_mean_ns(self) -> float:
        """Intensity-weighted mean lifetime ``sum f_k tau_k`` (photon fractions)."""
        if not self.tau_ns:
            return math.nan
        return float(np.dot(self.fractions, self.tau_ns))


def _failed(model, method, message, n_photons=0, n_iter=0):
    logger.info("fit_decay failed: %s", message)
    return LifetimeFit(model=model, method=method, success=False, message=message,
                       n_photons=int(round(n_photons)), n_iter=int(n_iter))


# ---------------------------------------------------------------------------------------------
# objective and optimiser
# ---------------------------------------------------------------------------------------------

class _Objective:
    """Objective on the fitted bins: Poisson deviance, Neyman or Pearson chi2."""

    _KINDS = {"mle": 0, "lsq_neyman": 1, "lsq_pearson": 2}

    def __init__(self, counts, idx, method, lsq_weights):
        self.counts = np.ascontiguousarray(counts, dtype=float)
        self.c = self.counts[idx]
        self.idx = np.ascontiguousarray(idx, dtype=np.int64)
        self.kind = self._KINDS["mle" if method == "mle" else f"lsq_{lsq_weights}"]
        pos = self.c > 0
        self.pos = pos
        self.clogc = float((self.c[pos] * np.log(self.c[pos])).sum())

    def deviance(self, m):
        """Poisson deviance of the model ``m`` on the fitted bins."""
        m = np.maximum(m, _TINY)
        c = self.c
        return 2.0 * float((m - c).sum() - (c[self.pos] * np.log(m[self.pos])).sum()
                           + self.clogc)

    def __call__(self, m_full, jac_full):
        return _kernels.objective_terms(m_full, jac_full, self.counts, self.idx, self.kind,
                                        _TINY)

    def information(self, m_full, jac_full):
        """Twice the Fisher information (expected Hessian of the objective) at the model."""
        kind = 3 if self.kind == 0 else self.kind
        return _kernels.objective_terms(m_full, jac_full, self.counts, self.idx, kind, _TINY)[2]


def _optimize(model, obj, theta0, lo, hi, fixed, max_iter=200, tol=1e-6):
    """Projected Levenberg-Marquardt on ``obj``; returns (theta, f, m, jac, g, h, n_iter, ok)."""
    theta = model.project(np.array(theta0, dtype=float), lo, hi)
    m, jac = model.evaluate(theta)
    f, g, h = obj(m, jac)
    if not np.isfinite(f):
        return theta, f, m, jac, g, h, 0, False
    lam = 1e-3
    ok = False
    n_iter = 0
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        at_lo = (theta <= lo + 1e-12 * span) & (g > 0)
        at_hi = (theta >= hi - 1e-12 * span) & (g < 0)
        free = ~(fixed | at_lo | at_hi)
        if not free.any():
            ok = True
            break
        hf = h[np.ix_(free, free)]
        gf = g[free]
        d = np.diag(hf).copy()
        d[~(d > 0)] = 1.0
        try:
            step = np.linalg.solve(hf + lam * np.diag(d), -gf)
        except np.linalg.LinAlgError:
            lam *= 10.0
            if lam > 1e12:
                break
            continue
        decrement = float(-gf @ step)
        if 0 <= decrement < tol and lam <= 1e-2:
            ok = True
            break
        new = theta.copy()
        new[free] += step
        new = model.project(new, lo, hi)
        m2, jac2 = model.evaluate(new)
        f2, g2, h2 = obj(m2, jac2)
        if np.isfinite(f2) and f2 <= f:
            df = f - f2
            theta, m, jac, f, g, h = new, m2, jac2, f2, g2, h2
            lam = max(lam * 0.1, 1e-9)
            if df < tol and lam <= 1e-2:
                ok = True
                break
        else:
            lam *= 10.0
            if lam > 1e12:
                # no descent possible: at a (constrained) minimum if the decrement is tiny
                ok = decrement < 1e-4
                break
    return theta, f, m, jac, g, h, n_iter, ok


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------

def fit_decay(counts, time_ns=None, *, bin_ns: float | None = None, model: str = "mono",
              irf=None, period_ns: float | None = None, fit_range_ns=None, method: str = "mle",
              lsq_weights: str = "neyman", background: float | str = "fit",
              fixed_background=None, fit_shift: bool = True, shift_ns: float = 0.0,
              shift_bounds_ns=(-0.2, 0.2), scatter: bool = False, tau0_ns=None,
              mean_excitations: float | None = None, qy_ratio: float | None = None,
              intervals: str = "hessian", n_bootstrap: int = 0, rng=None,
              min_photons: int = 30, max_iter: int = 200) -> LifetimeFit:
    """Fit a decay histogram with a periodic (multi-)exponential or X/XX cascade model.

    Parameters
    ----------
    counts : array_like
        Counts per micro-time bin (1-D).
    time_ns : array_like, optional
        Left edges of the bins (uniform spacing); bin 0 starts at ``time_ns[0]``.
    bin_ns : float, optional
        Bin width, when ``time_ns`` is not given (then ``time_ns = bin_ns * arange(n)``).
    model : {"mono", "bi", "tri", "cascade"}
    irf : array_like, ModelIRF or None
        Measured IRF on the same bins (normalised to unit sum here; subtract its background first
        with :func:`~qrspec.fitting.irf.normalize_irf`), a :class:`ModelIRF` (``t0_ns`` on the
        ``time_ns`` axis), or ``None`` for a tail fit without reconvolution (the exponential
        starts at the first fitted bin; no shift, no scatter).
    period_ns : float, optional
        Laser period (default: the histogram span). It is rounded to whole bins; the histogram may
        be shorter than the period (the model runs on the full period).
    fit_range_ns : (float, float), optional
        Half-open range ``start <= t < stop`` of bin left edges used in the fit.
    method : {"mle", "lsq"}
        Poisson maximum likelihood (deviance) or weighted least squares.
    lsq_weights : {"neyman", "pearson"}
        Least-squares weights: ``1/max(c, 1)`` (Neyman) or ``1/m`` (Pearson chi2).
    background : "fit" or float
        Fit a constant background (>= 0) or fix it (counts per bin).
    fixed_background : array_like, optional
        Known expected counts per bin added to the model (e.g. accidental pairs).
    fit_shift : bool
        Fit the IRF shift within ``shift_bounds_ns`` (starting from ``shift_ns``).
    scatter : bool
        Add a fitted scatter term ``s * IRF``.
    tau0_ns : float or sequence, optional
        Starting lifetimes (cascade: ``(tau_x, tau_xx)``).
    mean_excitations : float
        <N> (cascade model only; required there).
    qy_ratio : float, optional
        Cascade only: fix eta_XX/eta_X (e.g. from g2); free (>= 0) when None.
    intervals : {"hessian", "profile"}
        How ``tau_interval_ns`` is computed.
    n_bootstrap : int
        Parametric bootstrap replicates (0: none).
    rng : numpy.random.Generator, optional
        For the bootstrap.
    min_photons : int
        Fewer photons in the fit range give ``success=False``.
    max_iter : int

    Returns
    -------
    LifetimeFit
    """
    setup = _setup(counts, time_ns, bin_ns=bin_ns, model=model, irf=irf, period_ns=period_ns,
                   fit_range_ns=fit_range_ns, method=method, lsq_weights=lsq_weights,
                   background=background, fixed_background=fixed_background,
                   fit_shift=fit_shift, shift_ns=shift_ns, shift_bounds_ns=shift_bounds_ns,
                   scatter=scatter, tau0_ns=tau0_ns, mean_excitations=mean_excitations,
                   qy_ratio=qy_ratio, intervals=intervals, n_bootstrap=n_bootstrap,
                   min_photons=min_photons)
    if isinstance(setup, LifetimeFit):
        return setup
    return _run(setup, intervals=intervals, n_bootstrap=n_bootstrap, rng=rng,
                max_iter=max_iter)


def fit_decays(counts, time_ns=None, *, irf=None, n_threads: int | None = None,
               **kwargs) -> list[LifetimeFit]:
    """Fit many decay histograms on the same bins (e.g. one per intensity level) in one call.

    Every row is fitted exactly as ``fit_decay(counts[i], time_ns, irf=irf, **kwargs)`` does
    (the same code on the same inputs: the results are identical), with the rows spread over
    threads. Only the numba kernels (model, objective) release the GIL, so threads overlap
    them and little else: this is the one-call interface for the per-level case, not a
    parallel speed-up (a fully compiled optimiser, tried, was 2.5x faster per fit but added
    ~4 s of numba compilation to every cold start; see ``scripts/bench_fit.py``).

    Parameters
    ----------
    counts : array_like, shape (n_decays, n_bins)
        One histogram per row.
    time_ns, irf
        As :func:`fit_decay`, shared by all rows (a measured IRF is normalised once).
    n_threads : int, optional
        Worker threads (default: the CPUs this process may use, at most 8; 1 fits in this
        thread).
    **kwargs
        Any other argument of :func:`fit_decay` (``bin_ns``, ``model``, ``period_ns``, ...),
        shared by all rows; ``rng`` (bootstrap) is not accepted (the order of draws would
        depend on the threads).

    Returns
    -------
    list of LifetimeFit
        One per row, in order.
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2:
        raise QrspecError(f"counts.shape={c.shape} must be (n_decays, n_bins)")
    if "rng" in kwargs:
        raise QrspecError("fit_decays does not take rng=: fit bootstrapped decays one by one "
                          "with fit_decay")
    if n_threads is None:
        try:
            import os

            n_threads = min(8, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            n_threads = 1
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise QrspecError(f"n_threads={n_threads!r} must be a positive integer")
    if c.shape[0] == 0:
        return []
    if irf is not None and not isinstance(irf, ModelIRF):
        irf = np.asarray(irf, dtype=float)  # converted once, shared read-only by the threads

    def one(row):
        return fit_decay(row, time_ns, irf=irf, **kwargs)

    if n_threads == 1 or c.shape[0] == 1:
        return [one(row) for row in c]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(n_threads, c.shape[0])) as pool:
        return list(pool.map(one, c))


class _Setup:
    """A validated fit problem: model, data, bounds, fixed mask, start vectors."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _setup(counts, time_ns, *, bin_ns, model, irf, period_ns, fit_range_ns, method,
           lsq_weights, background, fixed_background, fit_shift, shift_ns, shift_bounds_ns,
           scatter, tau0_ns, mean_excitations, qy_ratio, intervals, n_bootstrap, min_photons):
    """Validate the arguments (raise) and the data (failed LifetimeFit) and build the problem."""


    # ---- argument validation (raises) ----
    if model not in _MODELS:
        raise QrspecError(f"model={model!r} must be one of {_MODELS}")
    if method not in _METHODS:
        raise QrspecError(f"method={method!r} must be one of {_METHODS}")
    if lsq_weights not in ("neyman", "pearson"):
        raise QrspecError(f"lsq_weights={lsq_weights!r} must be 'neyman' or 'pearson'")
    if intervals not in ("hessian", "profile"):
        raise QrspecError(f"intervals={intervals!r} must be 'hessian' or 'profile'")
    if model == "cascade" and (mean_excitations is None or not mean_excitations > 0):
        raise QrspecError(f"mean_excitations={mean_excitations!r} must be > 0 for the cascade "
                          "model")
    if model != "cascade" and qy_ratio is not None:
        raise QrspecError(f"qy_ratio={qy_ratio!r} applies only to model='cascade'")
    if qy_ratio is not None and not qy_ratio >= 0:
        raise QrspecError(f"qy_ratio={qy_ratio!r} must be >= 0")
    if n_bootstrap < 0:
        raise QrspecError(f"n_bootstrap={n_bootstrap!r} must be >= 0")
    c = np.asarray(counts, dtype=float)
    if c.ndim != 1:
        raise QrspecError(f"counts.shape={c.shape} must be one-dimensional")
    n = c.size
    if n == 0:
        return _failed(model, method, "empty histogram (0 bins)")
    if time_ns is not None:
        t = np.asarray(time_ns, dtype=float)
        if t.shape != c.shape:
            raise QrspecError(f"time_ns.shape={t.shape} must equal counts.shape={c.shape}")
        if n < 2:
            raise QrspecError(f"counts.size={n} too small to define bins from time_ns")
        width = np.diff(t)
        bw = float(width.mean())
        if not bw > 0 or np.abs(width - bw).max() > 1e-6 * bw:
            raise QrspecError("time_ns must be uniformly increasing bin edges")
        if bin_ns is not None and abs(bin_ns - bw) > 1e-6 * bw:
            raise QrspecError(f"bin_ns={bin_ns!r} disagrees with the spacing of time_ns ({bw})")
        bin_ns, t_first = bw, float(t[0])
    else:
        if bin_ns is None or not bin_ns > 0:
            raise QrspecError(f"bin_ns={bin_ns!r} must be > 0 when time_ns is not given")
        t_first = 0.0
        bin_ns = float(bin_ns)
    if period_ns is None:
        period_bins = n
    else:
        if not period_ns > 0:
            raise QrspecError(f"period_ns={period_ns!r} must be > 0")
        period_bins = int(round(period_ns / bin_ns))
        if period_bins < n:
            raise QrspecError(f"period_ns={period_ns!r} is shorter than the histogram "
                              f"({n} bins of {bin_ns} ns)")
    period = period_bins * bin_ns
    if fit_range_ns is None:
        start_ns, stop_ns = t_first, math.inf
    else:
        start_ns, stop_ns = (float(x) for x in fit_range_ns)
        if not start_ns < stop_ns:
            raise QrspecError(f"fit_range_ns={fit_range_ns!r} must satisfy start < stop")
    lo_b, hi_b = (float(x) for x in shift_bounds_ns)
    if not lo_b <= shift_ns <= hi_b:
        raise QrspecError(f"shift_ns={shift_ns!r} outside shift_bounds_ns={shift_bounds_ns!r}")
    if isinstance(background, str):
        if background != "fit":
            raise QrspecError(f"background={background!r} must be 'fit' or a number")
        bg_fixed = None
    else:
        bg_fixed = float(background)
        if not bg_fixed >= 0:
            raise QrspecError(f"background={background!r} must be >= 0")
    fixed_bg = None
    if fixed_background is not None:
        fixed_bg = np.asarray(fixed_background, dtype=float)
        if fixed_bg.shape != c.shape or not np.all(np.isfinite(fixed_bg)) or fixed_bg.min() < 0:
            raise QrspecError(f"fixed_background.shape={fixed_bg.shape} must equal counts.shape="
                              f"{c.shape} with finite values >= 0")
    irf_arr = _prepare_irf(irf, n, period_bins, bin_ns, t_first)

    # ---- data checks (never raise) ----
    if not np.all(np.isfinite(c)):
        return _failed(model, method, f"counts contain {int((~np.isfinite(c)).sum())} NaN/inf "
                       "values")
    if c.min() < 0:
        return _failed(model, method, "counts contain negative values")
    t_left = t_first + bin_ns * np.arange(n)
    idx = np.flatnonzero((t_left >= start_ns) & (t_left < stop_ns))
    n_ph = float(c[idx].sum()) if idx.size else 0.0
    if idx.size == 0:
        return _failed(model, method, f"fit_range_ns={fit_range_ns!r} contains no bins")
    if n_ph < min_photons:
        return _failed(model, method, f"only {n_ph:.0f} photons in the fit range "
                       f"(< min_photons={min_photons})", n_ph)
    if np.count_nonzero(c[idx]) <= 1:
        return _failed(model, method, f"all {n_ph:.0f} photons in one bin: no decay shape",
                       n_ph)

    mdl = ReconvolutionModel(model, n, bin_ns, period_bins, irf_arr, origin_bin=int(idx[0]),
                             fit_shift=fit_shift, fit_scatter=scatter,
                             mean_excitations=mean_excitations, fixed_background=fixed_bg)
    lo, hi = mdl.bounds(period, (lo_b, hi_b))
    fixed = np.zeros(mdl.n_params, dtype=bool)
    if bg_fixed is not None:
        fixed[mdl.i_bg] = True
    if model == "cascade" and qy_ratio is not None:
        fixed[3] = True
    if idx.size <= int((~fixed).sum()):
        return _failed(model, method, f"fit range has {idx.size} bins for "
                       f"{int((~fixed).sum())} free parameters", n_ph)
    obj = _Objective(c, idx, method, lsq_weights)
    starts = _start_values(mdl, c, idx, irf_arr, bin_ns, period, bg_fixed, shift_ns, tau0_ns,
                           qy_ratio, lo, hi)
    return _Setup(mdl=mdl, counts=c, idx=idx, lo=lo, hi=hi, fixed=fixed, obj=obj,
                  starts=starts, n_ph=n_ph, model=model, method=method,
                  lsq_weights=lsq_weights, shift_bounds=(lo_b, hi_b), bin_ns=bin_ns)


def _run(st, *, intervals, n_bootstrap, rng, max_iter):
    """Optimise, check and assemble a prepared fit problem (single or global)."""
    mdl, c, idx, lo, hi, fixed, obj = st.mdl, st.counts, st.idx, st.lo, st.hi, st.fixed, st.obj
    model, method, lsq_weights, n_ph = st.model, st.method, st.lsq_weights, st.n_ph
    lo_b, hi_b = st.shift_bounds
    starts = st.starts
    best = None
    for theta0 in starts:  # alternative starts only when the previous one failed
        res = _optimize(mdl, obj, theta0, lo, hi, fixed, max_iter=max_iter)
        if best is None or (np.isfinite(res[1]) and res[1] < best[1]):
            best = res
        if best[7] and not _tau_at_bound(mdl, best[0], lo, hi):
            break
    theta, f, m_full, jac_full, g, h, n_iter, ok = best
    if not np.isfinite(f):
        return _failed(model, method, "objective is not finite at the start values", n_ph)

    # ---- uncertainties ----
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    at_bound = (theta <= lo + 1e-9 * span) | (theta >= hi - 1e-9 * span)
    free = ~(fixed | at_bound)
    cov = np.full((mdl.n_params, mdl.n_params), np.nan)
    fisher = 0.5 * obj.information(m_full, jac_full)
    message = "" if ok else f"optimiser did not converge in {n_iter} iterations"
    try:
        cov_f = np.linalg.inv(fisher[np.ix_(free, free)])
        cov[np.ix_(free, free)] = cov_f
    except np.linalg.LinAlgError:
        if ok:
            ok, message = False, "singular Fisher information (parameters not identifiable)"
    dof = int(idx.size - (~fixed).sum())
    if ok and np.any(np.diag(cov)[free] < 0):
        ok, message = False, "Fisher information is not positive definite"
    if ok and np.any(at_bound[: mdl.n_tau]):
        ok, message = False, "a lifetime sits at its bound"
    for i_shift in mdl.shift_indices:
        if not (ok and at_bound[i_shift]):
            continue
        # at the bound: a misaligned IRF if the likelihood clearly prefers a shift beyond it
        # (likelihood ratio against a refit with 3x wider bounds: Delta D > 9, i.e. 3 sigma);
        # at low counts the shift merely wanders to the bound
        lo_w, hi_w = lo.copy(), hi.copy()
        lo_w[i_shift], hi_w[i_shift] = 3 * lo[i_shift], 3 * hi[i_shift]
        f_wide = _optimize(mdl, obj, theta, lo_w, hi_w, fixed, max_iter=max_iter)[1]
        if f - f_wide > 9.0:
            ok, message = False, (f"IRF shift at its bound (shift_bounds_ns=({lo_b:g}, {hi_b:g}))"
                                  ": align the IRF or widen the bounds")
    amp_idx = mdl.amp_indices
    if ok and np.any(theta[amp_idx] <= 0):
        ok, message = False, "a component amplitude is 0: its lifetime is undetermined"
    sd_logtau = np.sqrt(np.abs(np.diag(cov)[: mdl.n_tau]))
    if ok and np.any(~(sd_logtau < 10.0)):
        ok, message = False, ("a lifetime is undetermined (relative error > 10; no decay in "
                              "the data?)")

    if not ok:  # style: a failed fit carries no numbers, only the reason
        return _failed(model, method, message, n_ph, n_iter)
    profile = None
    if intervals == "profile" and ok:
        profile = [_profile_interval(mdl, obj, theta, f, lo, hi, fixed, j, cov, max_iter)
                   for j in range(mdl.n_tau)]
    boot = None
    if n_bootstrap > 0 and ok:
        boot = _bootstrap(mdl, c, idx, method, lsq_weights, theta, lo, hi, fixed, n_bootstrap,
                          rng, max_iter)
    if isinstance(mdl, GlobalModel):
        return _assemble_global(mdl, theta, cov, m_full, c, idx, obj, dof, n_ph, model, method,
                                n_iter, profile, boot)
    return _assemble(mdl, theta, cov, m_full, c, idx, obj, dof, n_ph, model, method, ok,
                     message, n_iter, profile, boot)


def _tau_at_bound(mdl, theta, lo, hi):
    t = theta[: mdl.n_tau]
    return bool(np.any((t <= lo[: mdl.n_tau] + 1e-9) | (t >= hi[: mdl.n_tau] - 1e-9)))


def _prepare_irf(irf, n, period_bins, bin_ns, t_first):
    if irf is None:
        return None
    if isinstance(irf, ModelIRF):
        shifted = ModelIRF(irf.t0_ns - t_first, irf.sigma_ns, irf.tail_weight, irf.tail_tau_ns)
        return shifted.histogram(period_bins, bin_ns)
    arr = np.asarray(irf, dtype=float)
    if arr.ndim != 1 or arr.size not in (n, period_bins):
        raise QrspecError(f"irf.shape={arr.shape} must be ({n},) or ({period_bins},)")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or not arr.sum() > 0:
        raise QrspecError("irf must be finite, >= 0 and have a positive sum")
    out = np.zeros(period_bins)
    out[: arr.size] = arr
    return out / out.sum()


def _start_values(mdl, c, idx, irf, bin_ns, period, bg_fixed, shift_ns, tau0_ns, qy_ratio,
                  lo, hi):
    """A list of start vectors (internal parameters)."""
    ci = c[idx]
    if bg_fixed is None:
        low = np.sort(ci)[: max(1, ci.size // 5)]
        # start above 0: from b = 0 the Fisher step of b is tiny (sum 1/m is huge where the
        # model is ~0) and b creeps up for many iterations; from above it reaches 0 in one step
        b0 = max(float(low.mean()), 0.1 * float(ci.mean()))
    else:
        b0 = bg_fixed
    if irf is None:
        origin = float(idx[0])
    else:
        origin = irf_stats(irf, 1.0).centroid_ns - 0.5 + shift_ns / bin_ns
    if tau0_ns is None:
        rel = idx - origin
        after = rel >= 0
        w = np.clip(ci[after] - b0, 0.0, None)
        if w.sum() > 0:
            tau_mean = float((w * (rel[after] + 0.5)).sum() / w.sum()) * bin_ns
        else:
            tau_mean = 10.0 * bin_ns
        tau_mean = min(max(tau_mean, 2.0 * bin_ns), 0.5 * period)
        if mdl.kind == "cascade":
            taus_list = [(tau_mean, tau_mean / 5.0)]
        elif mdl.n_tau == 1:
            taus_list = [(tau_mean,)]
        elif mdl.n_tau == 2:
            taus_list = [(0.3 * tau_mean, 1.5 * tau_mean), (0.1 * tau_mean, 1.1 * tau_mean)]
        else:
            taus_list = [(0.1 * tau_mean, 0.5 * tau_mean, 1.5 * tau_mean)]
    else:
        taus = tuple(float(x) for x in np.atleast_1d(tau0_ns))
        if len(taus) != mdl.n_tau or not all(x > 0 for x in taus):
            raise QrspecError(f"tau0_ns={tau0_ns!r} must give {mdl.n_tau} positive lifetimes")
        taus_list = [taus]
    starts = []
    for taus in taus_list:
        theta = np.zeros(mdl.n_params)
        theta[: mdl.n_tau] = np.log(taus)
        if mdl.kind == "cascade":
            theta[2] = 1.0
            theta[3] = 0.5 if qy_ratio is None else qy_ratio
        else:
            theta[mdl.n_tau: 2 * mdl.n_tau] = 1.0 / mdl.n_tau
        theta[mdl.i_bg] = 0.0
        if mdl.has_shift:
            theta[mdl.i_shift] = shift_ns / bin_ns
        if mdl.has_scatter:
            theta[mdl.i_scatter] = 0.0
        theta = mdl.project(theta, lo, hi)
        # scale the amplitudes so that the model matches the counts in the fit range
        m_unit, _ = mdl.evaluate(theta, jacobian=False)
        if mdl.fixed_background is not None:
            m_unit = m_unit - mdl.fixed_background
        fixed_sum = 0.0 if mdl.fixed_background is None else mdl.fixed_background[idx].sum()
        scale = max(ci.sum() - b0 * idx.size - fixed_sum, 1.0) / max(m_unit[idx].sum(), 1e-12)
        if mdl.kind == "cascade":
            theta[2] *= scale
        else:
            theta[mdl.n_tau: 2 * mdl.n_tau] *= scale
        theta[mdl.i_bg] = b0
        starts.append(theta)
    return starts


def _profile_interval(mdl, obj, theta_hat, f_hat, lo, hi, fixed, j, cov, max_iter):
    """68.3 % profile-likelihood interval of internal parameter j (Delta objective = 1)."""
    from scipy.optimize import brentq

    fixed_j = fixed.copy()
    fixed_j[j] = True
    warm = {"theta": theta_hat.copy()}

    def excess(x):
        th = warm["theta"].copy()
        th[j] = x
        res = _optimize(mdl, obj, th, lo, hi, fixed_j, max_iter=max_iter)
        if np.isfinite(res[1]):
            warm["theta"] = res[0]
        return res[1] - f_hat - 1.0

    sd = math.sqrt(cov[j, j]) if np.isfinite(cov[j, j]) and cov[j, j] > 0 else 0.1
    ends = []
    for side in (-1.0, 1.0):
        warm["theta"] = theta_hat.copy()
        bound = lo[j] if side < 0 else hi[j]
        step = sd
        x_in, x_out = theta_hat[j], None
        for _ in range(12):
            x = theta_hat[j] + side * step
            if (side < 0 and x <= bound) or (side > 0 and x >= bound):
                x = bound
            e = excess(x)
            if e > 0:
                x_out = x
                break
            x_in = x
            if x == bound:
                break
            step *= 2.0
        if x_out is None:
            ends.append(bound if np.isfinite(bound) else math.nan)
            continue
        warm["theta"] = theta_hat.copy()
        ends.append(brentq(excess, x_in, x_out, xtol=1e-5))
    return tuple(ends)


def _bootstrap(mdl, c, idx, method, lsq_weights, theta, lo, hi, fixed, n_boot, rng, max_iter):
    """Parametric bootstrap: Poisson redraws of the fitted model, refitted from the optimum."""
    if rng is None:
        rng = np.random.default_rng()
    m_hat, _ = mdl.evaluate(theta, jacobian=False)
    taus = []
    for _ in range(n_boot):
        cb = c.copy()
        cb[idx] = rng.poisson(np.maximum(m_hat[idx], 0.0))
        obj = _Objective(cb, idx, method, lsq_weights)
        res = _optimize(mdl, obj, theta, lo, hi, fixed, max_iter=max_iter)
        if res[7]:
            taus.append(np.exp(res[0][: mdl.n_tau]))
    if len(taus) < 2:
        return None
    return np.asarray(taus)


def _assemble(mdl, theta, cov, m_full, c, idx, obj, dof, n_ph, model, method, ok, message,
              n_iter, profile, boot):
    nt = mdl.n_tau
    var = np.diag(cov)
    sd = np.sqrt(np.where(var >= 0, var, np.nan))
    tau = np.exp(theta[:nt])
    tau_err = tau * sd[:nt]
    params, perrs = {}, {}
    if model == "cascade":
        w, dw_dlt, dw_drho = mdl._cascade_weights(theta)
        amp = theta[2]
        amps = amp * w
        # delta method for the component amplitudes from (log tau_x, log tau_xx, amp, rho)
        jac_a = np.zeros((2, mdl.n_params))
        for k in range(2):
            jac_a[k, 0] = amp * dw_dlt[0][k]
            jac_a[k, 1] = amp * dw_dlt[1][k]
            jac_a[k, 2] = w[k]
            jac_a[k, 3] = amp * dw_drho[k]
        cov0 = np.where(np.isfinite(cov), cov, 0.0)
        amp_err = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", jac_a, cov0, jac_a), 0.0))
        fr = w.copy()
        fr_err = amp_err / amp if amp > 0 else np.full(2, np.nan)
        params.update(tau_x_ns=tau[0], tau_xx_ns=tau[1], amplitude=amp, qy_ratio=theta[3])
        perrs.update(tau_x_ns=tau_err[0], tau_xx_ns=tau_err[1], amplitude=sd[2],
                     qy_ratio=sd[3])
        order = np.array([1, 0])
    else:
        amps = theta[nt: 2 * nt].copy()
        amp_err = sd[nt: 2 * nt]
        total = amps.sum()
        fr = amps / total if total > 0 else np.full(nt, np.nan)
        ca = cov[nt: 2 * nt, nt: 2 * nt]
        ca = np.where(np.isfinite(ca), ca, 0.0)
        if total > 0:
            jf = (np.eye(nt) * total - amps[:, None]) / total**2
            fr_err = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", jf, ca, jf), 0.0))
        else:
            fr_err = np.full(nt, np.nan)
        order = np.argsort(tau)
    if profile is not None:
        interval = [(math.exp(profile[k][0]), math.exp(profile[k][1])) for k in range(nt)]
    else:
        interval = [(tau[k] - tau_err[k], tau[k] + tau_err[k]) for k in range(nt)]
    tau_s = tuple(float(tau[k]) for k in order)
    terr_s = tuple(float(tau_err[k]) for k in order)
    amps_s = tuple(float(amps[k]) for k in order)
    aerr_s = tuple(float(amp_err[k]) for k in order)
    fr_s = tuple(float(fr[k]) for k in order)
    frerr_s = tuple(float(fr_err[k]) for k in order)
    int_s = tuple((float(interval[k][0]), float(interval[k][1])) for k in order)
    for i in range(nt):
        params[f"tau_{i + 1}_ns"] = tau_s[i]
        perrs[f"tau_{i + 1}_ns"] = terr_s[i]
        params[f"amplitude_{i + 1}"] = amps_s[i]
        perrs[f"amplitude_{i + 1}"] = aerr_s[i]
        params[f"fraction_{i + 1}"] = fr_s[i]
        perrs[f"fraction_{i + 1}"] = frerr_s[i]
    bg, bg_err = float(theta[mdl.i_bg]), float(sd[mdl.i_bg])
    params["background"], perrs["background"] = bg, bg_err
    if mdl.has_shift:
        shift, shift_err = theta[mdl.i_shift] * mdl.bin_ns, sd[mdl.i_shift] * mdl.bin_ns
    else:
        shift, shift_err = 0.0, math.nan
    params["shift_ns"], perrs["shift_ns"] = float(shift), float(shift_err)
    if mdl.has_scatter:
        sc, sc_err = float(theta[mdl.i_scatter]), float(sd[mdl.i_scatter])
    else:
        sc, sc_err = 0.0, math.nan
    params["scatter"], perrs["scatter"] = sc, sc_err
    m = m_full[idx]
    mm = np.maximum(m, _TINY)
    dev = obj.deviance(m)
    chi2 = float((((c[idx] - m) ** 2) / mm).sum())
    resid = np.full(c.size, np.nan)
    resid[idx] = (c[idx] - m) / np.sqrt(mm)
    boot_err = None
    if boot is not None:
        sd_boot = boot.std(axis=0, ddof=1)
        boot_err = tuple(float(sd_boot[k]) for k in order)
    return LifetimeFit(
        tau_ns=tau_s, tau_err_ns=terr_s, tau_interval_ns=int_s, amplitudes=amps_s,
        amplitude_errs=aerr_s, fractions=fr_s, fraction_errs=frerr_s, background=bg,
        background_err=bg_err, shift_ns=float(shift), shift_err_ns=float(shift_err),
        scatter=sc, scatter_err=sc_err, params=params, param_errs=perrs, deviance=dev,
        reduced_deviance=dev / dof if dof > 0 else math.nan, chi2=chi2,
        reduced_chi2=chi2 / dof if dof > 0 else math.nan, dof=dof, residuals=resid,
        model_counts=m_full, n_photons=int(round(n_ph)), model=model, method=method,
        success=bool(ok), message=message, n_iter=int(n_iter), covariance=cov,
        param_names=tuple(mdl.names), bootstrap_tau_err_ns=boot_err)


def fit_decay_global(counts, time_ns=None, *, irf, model: str = "mono",
                     bin_ns: float | None = None, period_ns: float | None = None,
                     fit_range_ns=None, method: str = "mle", lsq_weights: str = "neyman",
                     background: float | str = "fit", fit_shift: bool = True,
                     shift_ns: float = 0.0, shift_bounds_ns=(-0.2, 0.2), scatter: bool = False,
                     tau0_ns=None, intervals: str = "hessian", n_bootstrap: int = 0, rng=None,
                     min_photons: int = 30, max_iter: int = 200) -> LifetimeFit:
    """Global fit of several detectors' decays with shared lifetimes, each with its own IRF.

    Every detector keeps its own amplitudes, background, IRF shift (and scatter); the lifetimes
    are common. Arguments as :func:`fit_decay`; ``counts`` is ``(n_detectors, n_bins)`` and
    ``irf`` a sequence of one IRF (array or :class:`ModelIRF`) per detector. Multi-exponential
    models only. In the result, ``amplitudes`` and ``background`` are summed over detectors,
    ``shift_ns`` is NaN, and the per-detector values are in ``params`` (``..._det<d>``);
    ``model_counts`` and ``residuals`` are ``(n_detectors, n_bins)``.
    """
    if model not in MULTI_EXP:
        raise QrspecError(f"model={model!r} must be one of {MULTI_EXP} for a global fit")
    cnt = np.asarray(counts, dtype=float)
    if cnt.ndim != 2 or cnt.shape[0] < 1:
        raise QrspecError(f"counts.shape={cnt.shape} must be (n_detectors, n_bins)")
    irfs = list(irf) if not isinstance(irf, ModelIRF) else [irf]
    if isinstance(irf, np.ndarray) and irf.ndim == 1:
        irfs = [irf]
    if len(irfs) != cnt.shape[0]:
        raise QrspecError(f"irf gives {len(irfs)} IRFs for {cnt.shape[0]} detectors")
    setups = []
    for d in range(cnt.shape[0]):
        st = _setup(cnt[d], time_ns, bin_ns=bin_ns, model=model, irf=irfs[d],
                    period_ns=period_ns, fit_range_ns=fit_range_ns, method=method,
                    lsq_weights=lsq_weights, background=background, fixed_background=None,
                    fit_shift=fit_shift, shift_ns=shift_ns, shift_bounds_ns=shift_bounds_ns,
                    scatter=scatter, tau0_ns=tau0_ns, mean_excitations=None, qy_ratio=None,
                    intervals=intervals, n_bootstrap=n_bootstrap, min_photons=min_photons)
        if isinstance(st, LifetimeFit):
            return _failed(model, method, f"detector {d}: {st.message}", float(np.nansum(cnt)))
        setups.append(st)
    gm = GlobalModel([st.mdl for st in setups])
    lo = np.empty(gm.n_params)
    hi = np.empty(gm.n_params)
    fixed = np.zeros(gm.n_params, dtype=bool)
    for st, mp in zip(setups, gm.maps, strict=True):
        lo[mp], hi[mp], fixed[mp] = st.lo, st.hi, st.fixed
    n_starts = min(len(st.starts) for st in setups)
    starts = []
    for i in range(n_starts):
        theta = np.empty(gm.n_params)
        for st, mp in zip(setups, gm.maps, strict=True):
            theta[mp] = st.starts[i]
        # shared lifetimes start at the photon-weighted mean of the detectors' starts
        w = np.array([st.n_ph for st in setups])
        theta[: gm.n_tau] = (np.array([st.starts[i][: gm.n_tau] for st in setups])
                             * w[:, None]).sum(0) / w.sum()
        starts.append(theta)
    c = np.concatenate([st.counts for st in setups])
    idx = np.concatenate([st.idx + gm.offsets[d] for d, st in enumerate(setups)])
    g = _Setup(mdl=gm, counts=c, idx=idx, lo=lo, hi=hi, fixed=fixed,
               obj=_Objective(c, idx, method, lsq_weights), starts=starts,
               n_ph=sum(st.n_ph for st in setups), model=model, method=method,
               lsq_weights=lsq_weights, shift_bounds=setups[0].shift_bounds,
               bin_ns=setups[0].bin_ns)
    return _run(g, intervals=intervals, n_bootstrap=n_bootstrap, rng=rng, max_iter=max_iter)


def _assemble_global(gm, theta, cov, m_full, c, idx, obj, dof, n_ph, model, method, n_iter,
                     profile, boot):
    nt = gm.n_tau
    n_det = len(gm.models)
    sd = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))
    cov0 = np.where(np.isfinite(cov), cov, 0.0)
    tau = np.exp(theta[:nt])
    tau_err = tau * sd[:nt]
    # summed amplitudes A_k = sum_d A_kd and their covariance
    ja = np.zeros((nt, gm.n_params))
    for mdl, mp in zip(gm.models, gm.maps, strict=True):
        for k, i in enumerate(mdl.amp_indices):
            ja[k, mp[i]] = 1.0
    amps = ja @ theta
    cov_a = ja @ cov0 @ ja.T
    total = amps.sum()
    jf = (np.eye(nt) * total - amps[:, None]) / total**2
    fr = amps / total
    fr_err = np.sqrt(np.maximum(np.diag(jf @ cov_a @ jf.T), 0.0))
    order = np.argsort(tau)
    params, perrs = {}, {}
    for r, k in enumerate(order):
        params[f"tau_{r + 1}_ns"], perrs[f"tau_{r + 1}_ns"] = float(tau[k]), float(tau_err[k])
    bg_idx = [int(mp[m.i_bg]) for m, mp in zip(gm.models, gm.maps, strict=True)]
    for d, (mdl, mp) in enumerate(zip(gm.models, gm.maps, strict=True)):
        for r, k in enumerate(order):
            i = mp[mdl.amp_indices[k]]
            params[f"amplitude_{r + 1}_det{d}"] = float(theta[i])
            perrs[f"amplitude_{r + 1}_det{d}"] = float(sd[i])
        params[f"background_det{d}"] = float(theta[mp[mdl.i_bg]])
        perrs[f"background_det{d}"] = float(sd[mp[mdl.i_bg]])
        for name, i in (("shift_ns", mdl.i_shift), ("scatter", mdl.i_scatter)):
            if i is not None:
                scale = mdl.bin_ns if name == "shift_ns" else 1.0
                params[f"{name}_det{d}"] = float(theta[mp[i]] * scale)
                perrs[f"{name}_det{d}"] = float(sd[mp[i]] * scale)
    bg = float(theta[bg_idx].sum())
    bg_err = float(math.sqrt(max(cov0[np.ix_(bg_idx, bg_idx)].sum(), 0.0)))
    if profile is not None:
        interval = [(math.exp(profile[k][0]), math.exp(profile[k][1])) for k in range(nt)]
    else:
        interval = [(tau[k] - tau_err[k], tau[k] + tau_err[k]) for k in range(nt)]
    m = m_full[idx]
    mm = np.maximum(m, _TINY)
    dev = obj.deviance(m)
    chi2 = float((((c[idx] - m) ** 2) / mm).sum())
    resid = np.full(c.size, np.nan)
    resid[idx] = (c[idx] - m) / np.sqrt(mm)
    n_bins = gm.models[0].n_data
    boot_err = None
    if boot is not None:
        sd_boot = boot.std(axis=0, ddof=1)
        boot_err = tuple(float(sd_boot[k]) for k in order)
    return LifetimeFit(
        tau_ns=tuple(float(tau[k]) for k in order),
        tau_err_ns=tuple(float(tau_err[k]) for k in order),
        tau_interval_ns=tuple((float(interval[k][0]), float(interval[k][1])) for k in order),
        amplitudes=tuple(float(amps[k]) for k in order),
        amplitude_errs=tuple(float(math.sqrt(max(cov_a[k, k], 0.0))) for k in order),
        fractions=tuple(float(fr[k]) for k in order),
        fraction_errs=tuple(float(fr_err[k]) for k in order), background=bg,
        background_err=bg_err, shift_ns=math.nan, shift_err_ns=math.nan,
        scatter=math.nan, scatter_err=math.nan, params=params, param_errs=perrs,
        deviance=dev, reduced_deviance=dev / dof if dof > 0 else math.nan, chi2=chi2,
        reduced_chi2=chi2 / dof if dof > 0 else math.nan, dof=dof,
        residuals=resid.reshape(n_det, n_bins), model_counts=m_full.reshape(n_det, n_bins),
        n_photons=int(round(n_ph)), model=model, method=method, success=True, message="",
        n_iter=int(n_iter), covariance=cov, param_names=tuple(gm.names),
        bootstrap_tau_err_ns=boot_err)
