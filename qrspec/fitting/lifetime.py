"""Lifetime fits of TCSPC histograms: Poisson MLE (default) or least squares; IRF reconvolution.

``fit_decay`` fits a mono-, bi-, tri-exponential or the constrained X/XX cascade model
(:mod:`qrspec.fitting.models`) on the periodic laser-period axis, with a fitted sub-bin IRF shift,
background and optional scatter, over a chosen fit range (tail fitting). The optimiser is a
projected Levenberg-Marquardt / Fisher-scoring iteration on the Poisson deviance (Laurence & Chromy
2010) with the analytic Jacobian; uncertainties come from the Fisher information at the optimum
(the expected Hessian of D/2), optionally from profile likelihood (Delta D = 1) or a parametric
bootstrap.

The optimiser runs whole in one compiled kernel (:func:`qrspec.fitting._kernels.fit_rows`, one
numba signature for every model), for one histogram or many: ``fit_decay`` is a batch of one,
``fit_decays`` checks the arguments, prepares the IRF and computes the start values once for all
rows and fits them in one kernel call (threads over row chunks for large batches); its start
statistics are ``fit_decay``'s compiled per-row ones on row chunks
(:func:`qrspec.fitting._kernels.rows_start`: NumPy over (n_rows, n_bins) temporaries made a
6250-bin batch ~20 % slower per fit than single calls). Python keeps
what is cheap there: argument checks, the lowest fifth of each fit range (``np.partition``) and
the start vectors built from the compiled statistics, the covariance (inverse of the Fisher block
of the free parameters) and the checks of the optimum, vectorised over rows. A
fit of a row in a batch and alone gives the same numbers, bit for bit (tested; row sums
accumulate in order, never pairwise by shape). ``fit_decay`` has its own path for its one
histogram (``_fit_one``): the checks and start statistics in one compiled call
(:func:`qrspec.fitting._kernels.row_start`), the rest on Python floats instead of NumPy arrays
of one row, and the problem (checked arguments, kernel arrays) reused from the previous call
with the same arguments; on a 32-bin decay that Python part is about as long as the fit itself
(issue 19). Speed against tttrlib and the compilation a new environment pays once:
``scripts/bench_fit.py`` (``--compile``).

A fit on bad data (empty, NaN, negative, all counts in one bin, too few photons, no convergence)
returns ``LifetimeFit(success=False, message=...)`` and never raises; invalid *arguments* (unknown
model, inconsistent shapes) raise :class:`~qrspec.errors.QrspecError`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

from qrspec.errors import QrspecError
from qrspec.fitting import _kernels
from qrspec.fitting.irf import ModelIRF, irf_stats
from qrspec.fitting.models import MULTI_EXP_ORDER, GlobalModel, ReconvolutionModel

logger = logging.getLogger(__name__)

__all__ = ["LifetimeFit", "fit_decay", "fit_decays", "fit_decay_global"]

_MODELS = ("mono", "bi", "tri", "cascade")
MULTI_EXP = ("mono", "bi", "tri")
_METHODS = ("mle", "lsq")
_TINY = 1e-10  # floor of the model (counts/bin) inside logs and weights
_TOL = 1e-6  # convergence tolerance on the objective (deviance or chi2)
_BINS_PER_THREAD = 20_000  # fit_decays: histogram bins (rows x period) per extra thread


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


_FIT_DEFAULTS = {f.name: None if f.default is MISSING else f.default for f in fields(LifetimeFit)}
_FIT_FACTORIES = [(f.name, f.default_factory) for f in fields(LifetimeFit)
                  if f.default_factory is not MISSING]


def _new_fit(**values):
    """``LifetimeFit(**values)`` without the frozen dataclass's ``__init__``.

    That sets the 30 fields one ``object.__setattr__`` call at a time: 2 us, a twentieth of a
    32-bin fit. The instance is the same (attributes and their order, defaults, fresh default
    dicts, frozen; tested).
    """
    fit = object.__new__(LifetimeFit)
    attrs = fit.__dict__
    attrs.update(_FIT_DEFAULTS)  # every field, in order
    for name, factory in _FIT_FACTORIES:
        if name not in values:
            attrs[name] = factory()
    attrs.update(values)
    return fit


def _failed(model, method, message, n_photons=0, n_iter=0):
    logger.info("fit_decay failed: %s", message)
    return _new_fit(model=model, method=method, success=False, message=message,
                    n_photons=int(round(n_photons)), n_iter=int(n_iter))


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
    c = np.asarray(counts, dtype=float)
    if c.ndim != 1:
        raise QrspecError(f"counts.shape={c.shape} must be one-dimensional")
    prob = _problem_of(c.size, time_ns, _FIT_DECAY_ARGS, (
        bin_ns, model, irf, period_ns, fit_range_ns, method, lsq_weights, background,
        fixed_background, fit_shift, shift_ns, shift_bounds_ns, scatter, tau0_ns,
        mean_excitations, qy_ratio, intervals, n_bootstrap, min_photons, max_iter))
    return _fit_one(prob, c, rng)


# fit_decay's arguments of the problem, in the order fit_decay passes them to _problem_of
_FIT_DECAY_ARGS = ("bin_ns", "model", "irf", "period_ns", "fit_range_ns", "method", "lsq_weights",
                   "background", "fixed_background", "fit_shift", "shift_ns", "shift_bounds_ns",
                   "scatter", "tau0_ns", "mean_excitations", "qy_ratio", "intervals",
                   "n_bootstrap", "min_photons", "max_iter")


def fit_decays(counts, time_ns=None, *, irf=None, n_threads: int | None = None,
               **kwargs) -> list[LifetimeFit]:
    """Fit many decay histograms on the same bins (e.g. one per intensity level) in one call.

    Every row gets exactly the fit :func:`fit_decay` gives it (the same compiled code on the
    same inputs: identical results, tested), but the arguments are checked, the IRF is prepared
    and the start values are computed once for all rows, the rows are fitted by one call of the
    compiled kernel (:func:`qrspec.fitting._kernels.fit_rows`) per thread, and only the result
    objects are built per row in Python.

    Parameters
    ----------
    counts : array_like, shape (n_decays, n_bins)
        One histogram per row.
    time_ns, irf
        As :func:`fit_decay`, shared by all rows.
    n_threads : int, optional
        At most this many threads (default: the CPUs this process may use, at most 8; 1 fits
        in this thread). The kernel releases the GIL, so threads run fits in parallel; a thread
        is started per ~20000 histogram bins (rows x period bins) only, smaller batches are
        fitted in this thread.
    **kwargs
        Any other argument of :func:`fit_decay` (``bin_ns``, ``model``, ``period_ns``, ...),
        shared by all rows; ``rng`` (bootstrap) is not accepted (fit bootstrapped decays one by
        one with :func:`fit_decay`).

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
    prob = _problem(c.shape[1], time_ns, irf=irf, **_with_defaults(kwargs))
    return _fit_many(prob, c, rng=None, n_threads=n_threads)


def _with_defaults(kwargs):
    """fit_decay's keyword defaults updated with ``kwargs`` (unknown names raise TypeError)."""
    import inspect

    params = inspect.signature(fit_decay).parameters
    out = {}
    for name, par in params.items():
        if par.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("irf", "rng"):
            out[name] = par.default
    unknown = set(kwargs) - set(out)
    if unknown:
        raise TypeError(f"fit_decays() got unexpected keyword arguments {sorted(unknown)}")
    out.update(kwargs)
    return out


# ---------------------------------------------------------------------------------------------
# the fit problem: arguments checked once, kernel arrays built once
# ---------------------------------------------------------------------------------------------

class _Problem:
    """A validated fit problem shared by every histogram fitted with it.

    The model, the fitted bins, bounds, fixed mask, the kernel arrays and the start-value recipe.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)


_PROBLEMS: dict = {}  # problems built recently, by their arguments (see _problem)
_PROBLEMS_MAX = 32
_PROBLEMS_LOCK = threading.Lock()


class _Unkeyed(Exception):
    pass


_KEY_BY_VALUE = frozenset((bool, int, str, type(None), ModelIRF))  # hashable, compared by value


def _arg_key(v):
    """A key equal for arguments that build the same problem (exact types, arrays by content).

    Floats by value, zeros and NaN by their bits (-0.0 is not 0.0), the type kept (``30`` and
    ``30.0`` print differently in messages), numeric arrays by dtype, shape and bytes; anything
    else is not keyed.
    """
    t = type(v)
    if t is float or (t not in _KEY_BY_VALUE and isinstance(v, float)):
        return (t, v) if v and v == v else (t, v.hex())  # the bits of zeros and NaN
    if t in _KEY_BY_VALUE or isinstance(v, (bool, int, str, ModelIRF)):
        return t, v
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return "ndarray", v.dtype.str, v.shape, v.tobytes()
    if isinstance(v, (tuple, list)) and len(v) <= 8:
        return t, tuple([_arg_key(x) for x in v])
    raise _Unkeyed


def _problem(n, time_ns, **kw):
    """Check the arguments (raise) for histograms of ``n`` bins and build the problem.

    A loop of :func:`fit_decay` calls with the same arguments on new counts reuses the problem
    built (and checked) for its first call: keyed by every argument's type and value, arrays by
    content (the problem copies what it keeps, and nothing writes to a built problem).
    """
    return _problem_of(n, time_ns, tuple(kw), tuple(kw.values()))


def _problem_of(n, time_ns, names, values):
    """:func:`_problem` with the keyword arguments as a tuple of names and one of values."""
    try:
        key = (n, names, _arg_key(time_ns), *map(_arg_key, values))
    except _Unkeyed:
        return _build_problem(n, time_ns, **dict(zip(names, values, strict=True)))
    prob = _PROBLEMS.get(key)
    if prob is None:
        prob = _build_problem(n, time_ns, **dict(zip(names, values, strict=True)))
        with _PROBLEMS_LOCK:
            while len(_PROBLEMS) >= _PROBLEMS_MAX:
                _PROBLEMS.pop(next(iter(_PROBLEMS)))
            _PROBLEMS[key] = prob
    return prob


def _build_problem(n, time_ns, *, bin_ns, model, irf, period_ns, fit_range_ns, method,
                   lsq_weights, background, fixed_background, fit_shift, shift_ns,
                   shift_bounds_ns, scatter, tau0_ns, mean_excitations, qy_ratio, intervals,
                   n_bootstrap, min_photons, max_iter):
    """:func:`_problem` without the reuse."""
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
    base = dict(model=model, method=method, n=n, intervals=intervals, n_bootstrap=n_bootstrap)
    if n == 0:
        return _Problem(empty=True, **base)
    if time_ns is not None:
        t = np.asarray(time_ns, dtype=float)
        if t.shape != (n,):
            raise QrspecError(f"time_ns.shape={t.shape} must equal counts.shape={(n,)}")
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
        fixed_bg = np.array(fixed_background, dtype=float)  # a copy: problems are reused
        if fixed_bg.shape != (n,) or not np.all(np.isfinite(fixed_bg)) or fixed_bg.min() < 0:
            raise QrspecError(f"fixed_background.shape={fixed_bg.shape} must equal counts.shape="
                              f"{(n,)} with finite values >= 0")
    irf_arr = _prepare_irf(irf, n, period_bins, bin_ns, t_first)
    n_tau = 2 if model == "cascade" else MULTI_EXP_ORDER[model]
    if tau0_ns is not None:
        tau0 = tuple(float(x) for x in np.atleast_1d(tau0_ns))
        if len(tau0) != n_tau or not all(x > 0 for x in tau0):
            raise QrspecError(f"tau0_ns={tau0_ns!r} must give {n_tau} positive lifetimes")
    else:
        tau0 = None
    t_left = t_first + bin_ns * np.arange(n)
    idx = np.flatnonzero((t_left >= start_ns) & (t_left < stop_ns))
    base.update(empty=False, bin_ns=bin_ns, period=period, idx=idx, fit_range_ns=fit_range_ns,
                min_photons=min_photons, shift_bounds=(lo_b, hi_b))
    if idx.size == 0:
        return _Problem(mdl=None, **base)

    mdl = ReconvolutionModel(model, n, bin_ns, period_bins, irf_arr, origin_bin=int(idx[0]),
                             fit_shift=fit_shift, fit_scatter=scatter,
                             mean_excitations=mean_excitations, fixed_background=fixed_bg)
    lo, hi = mdl.bounds(period, (lo_b, hi_b))
    fixed = np.zeros(mdl.n_params)  # 1.0: fixed parameter (the kernel's convention)
    if bg_fixed is not None:
        fixed[mdl.i_bg] = 1.0
    if model == "cascade" and qy_ratio is not None:
        fixed[3] = 1.0
    # start values: the lifetimes from the first moment of the decay after the IRF centroid
    # (or tau0_ns), amplitudes scaled to the counts in the kernel, background from the lowest
    # fifth of the fitted bins
    if irf_arr is None:
        origin = float(idx[0])
    else:
        origin = irf_stats(irf_arr, 1.0).centroid_ns - 0.5 + shift_ns / bin_ns
    if tau0 is not None:
        tau_factors = None
    elif model == "cascade":
        tau_factors = np.array([[1.0, 0.2]])
    else:
        tau_factors = np.array({1: [[1.0]], 2: [[0.3, 1.5], [0.1, 1.1]],
                                3: [[0.1, 0.5, 1.5]]}[n_tau])
    theta0 = np.zeros(mdl.n_params)
    if model == "cascade":
        theta0[2] = 1.0
        theta0[3] = 0.5 if qy_ratio is None else qy_ratio
    else:
        theta0[n_tau: 2 * n_tau] = 1.0 / n_tau
    if mdl.has_shift:
        theta0[mdl.i_shift] = shift_ns / bin_ns
    irf2, fixed2, pmap, spec, fpar = mdl.kernel_arrays()
    spec[_kernels.S_OBJECTIVE] = (0 if method == "mle"
                                  else {"neyman": 1, "pearson": 2}[lsq_weights])
    spec[_kernels.S_MAXITER] = max_iter
    spec[_kernels.S_SCALE_STARTS] = 1
    fpar[_kernels.F_TINY] = _TINY
    fpar[_kernels.F_TOL] = _TOL
    n_free = int((fixed == 0).sum())
    after = idx - origin >= 0  # fitted bins after the IRF centroid: the first moment
    # for _fit_one: the bound tests of _outcomes and _tau_at_bound as lists of Python floats
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    starts_one = np.empty((1 if tau_factors is None else tau_factors.shape[0], mdl.n_params))
    starts_one[:] = theta0
    if tau0 is not None:  # as _start_rows (one row)
        starts_one[:, :n_tau] = np.log(np.broadcast_to(np.asarray(tau0), (1, 1, n_tau)))[0]
    one = dict(starts_one=starts_one, i0=int(idx[0]), i1=int(idx[-1]) + 1,
               a0=int(idx.size - after.sum()),
               n_low=max(1, idx.size // 5), near_lo=(lo + 1e-9 * span).tolist(),
               near_hi=(hi - 1e-9 * span).tolist(),
               tau_near=list(zip((lo[:n_tau] + 1e-9).tolist(), (hi[:n_tau] - 1e-9).tolist(),
                                 strict=True)),
               free_ok=(fixed == 0).tolist(), amp_indices=mdl.amp_indices,
               param_names=tuple(mdl.names),
               shift_indices=mdl.shift_indices)
    return _Problem(mdl=mdl, lo=lo, hi=hi, fixed=fixed, irf2=irf2, fixed2=fixed2, pmap=pmap,
                    spec=spec, fpar=fpar, bg_fixed=bg_fixed, tau0=tau0,
                    tau_factors=tau_factors, theta0=theta0, n_free=n_free,
                    dof=int(idx.size - n_free), after=after,
                    after_bins=idx[after] - origin + 0.5, **one, **base)


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


def _data_failures(prob, c):
    """Check every row of ``c`` before fitting.

    Checks, in this order: non-finite, negative, no bins, too few photons, one bin, fewer bins than
    free parameters. Returns ``(failures, stats)``: per row ``(message, photons)`` or None, and
    :func:`_row_stats` of the rows (None when the fit range has no bins).
    """
    n_rows = c.shape[0]
    if prob.empty:
        return [("empty histogram (0 bins)", 0.0)] * n_rows, None
    if prob.mdl is None:
        c.sum(axis=1)  # warns when a sum overflows, as fit_decay does
        return [_data_failure(prob, row, 0.0) for row in c], None
    stats = _row_stats(prob, c)
    good = stats[:, 0] != 0
    # no NaN or negative count, and a sum that does not overflow to inf (NumPy sums pairwise;
    # it cannot overflow when the sum in order is below 1e300): as _fit_one
    for r in np.flatnonzero(good & ~(stats[:, 1] <= 1e300)).tolist():
        good[r] = math.isfinite(np.add.reduce(c[r]))
    n_ph = stats[:, 2]
    bad = ~good | (n_ph < prob.min_photons) | (stats[:, 3] <= 1)
    if prob.idx.size <= prob.n_free:
        bad[:] = True
    out = [None] * n_rows
    for r in np.flatnonzero(bad).tolist():
        out[r] = _data_failure(prob, c[r], n_ph[r])
    return out, stats


def _data_failure(prob, c, n_ph):
    """The failure of histogram ``c`` (1-D) in :func:`_data_failures`.

    ``(message, photons)``, or None if it passes the checks; ``n_ph``: its counts in the fit
    range.
    """
    n_bad = int((~np.isfinite(c)).sum())
    if n_bad:
        return f"counts contain {n_bad} NaN/inf values", 0.0
    if c.min() < 0:
        return "counts contain negative values", 0.0
    if prob.mdl is None:
        return f"fit_range_ns={prob.fit_range_ns!r} contains no bins", 0.0
    if n_ph < prob.min_photons:
        return (f"only {n_ph:.0f} photons in the fit range (< min_photons={prob.min_photons})",
                n_ph)
    if np.count_nonzero(c[prob.idx]) <= 1:
        return f"all {n_ph:.0f} photons in one bin: no decay shape", n_ph
    if prob.idx.size <= prob.n_free:
        return f"fit range has {prob.idx.size} bins for {prob.n_free} free parameters", n_ph
    return None


# rows of the partition of the fit range per call of rows_start: a chunk of ~256 kB at most
_START_CHUNK_BINS = 32768


def _row_stats(prob, c):
    """:func:`qrspec.fitting._kernels.row_start` of every row of ``c``: ``(n_rows, 6)``.

    Columns: ok, total, photons in the fit range, non-zero bins there, start background ``b0``,
    first-moment lifetime ``tau_mean``. The lowest fifth of each fit range (the start
    background) comes from NumPy's partition of row chunks (the same entries in the same order
    as the partition of one row in :func:`_fit_one`); nothing of the size of ``c`` is built.
    """
    n_rows = c.shape[0]
    out = np.empty((n_rows, 6))
    i0, i1, n_low = prob.i0, prob.i1, prob.n_low
    bg = math.nan if prob.bg_fixed is None else prob.bg_fixed
    step = max(1, _START_CHUNK_BINS // (i1 - i0))
    low = np.empty((min(step, n_rows), 0))
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        if prob.bg_fixed is None:
            part = np.partition(c[a:b, i0:i1], n_low - 1, axis=1)
            low = np.ascontiguousarray(part[:, :n_low])
        _kernels.rows_start(np.ascontiguousarray(c[a:b]), i0, i1, prob.a0, prob.after_bins,
                            low[:b - a], bg, prob.bin_ns, prob.period, out[a:b])
    return out


def _start_rows(prob, c):
    """Start vectors ``(n_rows, n_starts, n_params)`` of the rows of ``c``.

    The amplitudes are scaled in the kernel.
    """
    stats = _row_stats(prob, c)
    return _starts_from(prob, stats[:, 4], stats[:, 5])


def _starts_from(prob, b0, tau_mean):
    """Start vectors ``(n_rows, n_starts, n_params)`` from start statistics.

    ``b0``, ``tau_mean``: each row's start background and first-moment lifetime
    (:func:`_row_stats`).
    """
    mdl, nt = prob.mdl, prob.mdl.n_tau
    n_rows = b0.size
    if prob.tau0 is None:
        taus = tau_mean[:, None, None] * prob.tau_factors
    else:
        taus = np.broadcast_to(np.asarray(prob.tau0), (n_rows, 1, nt))
    starts = np.empty((n_rows, taus.shape[1], mdl.n_params))
    starts[:] = prob.theta0
    starts[:, :, :nt] = np.log(taus)
    starts[:, :, mdl.i_bg] = b0[:, None]
    return starts


def _run_kernel(prob, c, starts, n_threads=1, lo=None, hi=None, fixed=None, spec=None):
    """:func:`qrspec.fitting._kernels.fit_rows` on the rows of ``c`` from ``starts``.

    ``starts`` is (n_rows, n_params); the rows are fitted in row chunks on ``n_threads`` threads;
    ``lo``, ``hi``, ``fixed``, ``spec`` replace the problem's.
    """
    lo = prob.lo if lo is None else lo
    hi = prob.hi if hi is None else hi
    fixed = prob.fixed if fixed is None else fixed
    spec = prob.spec if spec is None else spec
    n_rows, p = c.shape[0], lo.size
    out = _Problem(theta=np.empty((n_rows, p)), h=np.empty((n_rows, p, p)), m=np.empty(c.shape),
                   resid=np.empty(c.shape), stats=np.empty((n_rows, _kernels.R_SIZE)))

    def run(a, b):
        _kernels.fit_rows(c[a:b], starts[a:b], lo, hi, fixed, prob.idx, prob.irf2, prob.fixed2,
                          prob.pmap, spec, prob.fpar, out.theta[a:b], out.h[a:b], out.m[a:b],
                          out.resid[a:b], out.stats[a:b])

    # a thread is worth starting for >= ~20000 bins of histograms (about a millisecond of
    # fitting): smaller batches run in this thread
    n_threads = min(n_threads, n_rows * prob.irf2.shape[1] // _BINS_PER_THREAD)
    if n_threads <= 1:
        run(0, n_rows)
    else:
        from concurrent.futures import ThreadPoolExecutor

        edges = np.linspace(0, n_rows, n_threads + 1).round().astype(int)
        with ThreadPoolExecutor(n_threads) as pool:
            for fut in [pool.submit(run, a, b) for a, b in zip(edges[:-1], edges[1:],
                                                                strict=True)]:
                fut.result()
    out.f = out.stats[:, _kernels.R_F]
    out.n_iter = out.stats[:, _kernels.R_NITER].astype(int)
    out.ok = out.stats[:, _kernels.R_CONVERGED] != 0
    return out


def _optimize(prob, c, theta0, lo, hi, fixed, *, scale=False, max_iter=None):
    """One optimisation of histogram ``c`` from ``theta0`` (no alternative starts).

    Returns ``(theta, f, converged)``.
    """
    spec = prob.spec.copy()
    spec[_kernels.S_SCALE_STARTS] = int(scale)
    if max_iter is not None:
        spec[_kernels.S_MAXITER] = max_iter
    out = _run_kernel(prob, np.ascontiguousarray(c, dtype=float)[None, :],
                      np.asarray(theta0, dtype=float)[None, :], 1, lo, hi, fixed, spec)
    return out.theta[0], float(out.f[0]), bool(out.ok[0])


def _tau_at_bound(prob, theta):
    """Rows of ``theta`` with a lifetime within 1e-9 of its bound (in log tau)."""
    nt = prob.mdl.n_tau
    t = theta[:, :nt]
    return ((t <= prob.lo[:nt] + 1e-9) | (t >= prob.hi[:nt] - 1e-9)).any(axis=1)


def _fit_rows(prob, c, starts, n_threads):
    """Optimise every row of ``c`` from ``starts`` (n_rows, n_starts, n_params).

    A later start only for the rows whose best fit so far did not converge or has a lifetime at a
    bound.
    """
    out = _run_kernel(prob, c, np.ascontiguousarray(starts[:, 0]), n_threads)
    for s in range(1, starts.shape[1]):
        again = np.flatnonzero(~out.ok | _tau_at_bound(prob, out.theta))
        if again.size == 0:
            break
        alt = _run_kernel(prob, np.ascontiguousarray(c[again]),
                          np.ascontiguousarray(starts[again, s]), n_threads)
        better = np.isfinite(alt.f) & (alt.f < out.f[again])
        rows, sel = again[better], np.flatnonzero(better)
        for name in ("theta", "h", "m", "resid", "stats", "f", "n_iter", "ok"):
            getattr(out, name)[rows] = getattr(alt, name)[sel]
    return out


def _outcomes(prob, c, out):
    """Check the optima of :func:`_fit_rows` and compute their covariance.

    Checks, in this order: convergence, Fisher information, lifetimes and IRF shift at a bound,
    zero amplitudes, undetermined lifetimes. The covariance is the inverse Fisher information over
    the free parameters (not fixed, not at a bound; NaN elsewhere). Returns per row ``(message,
    covariance)``; the message is "" for a fit that succeeded.
    """
    mdl, lo, hi = prob.mdl, prob.lo, prob.hi
    theta = out.theta
    n_rows, p = theta.shape
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    at_bound = (theta <= lo + 1e-9 * span) | (theta >= hi - 1e-9 * span)
    free = (prob.fixed == 0) & ~at_bound
    finite = np.isfinite(out.f)
    cov = np.full((n_rows, p, p), np.nan)
    singular = np.zeros(n_rows, dtype=bool)
    groups = {}  # rows with the same free parameters are inverted together
    for r in np.flatnonzero(finite).tolist():
        groups.setdefault(free[r].tobytes(), []).append(r)
    for rows in groups.values():
        k = np.flatnonzero(free[rows[0]])
        block = rows if k.size == p else np.ix_(rows, k, k)  # all free: no sub-block
        try:
            cov[block] = np.linalg.inv(0.5 * out.h[block])
        except np.linalg.LinAlgError:  # a singular matrix: invert the others one by one
            for r in rows:
                one = np.ix_([r], k, k)
                try:
                    cov[one] = np.linalg.inv(0.5 * out.h[one])
                except np.linalg.LinAlgError:
                    singular[r] = True
    var = np.diagonal(cov, axis1=1, axis2=2)
    nt = mdl.n_tau
    # NaN (fixed, at a bound, not inverted) compares False without a warning
    not_pd = (np.where(free, var, 0.0) < 0).any(axis=1)
    undetermined = ~(np.sqrt(np.abs(var[:, :nt])) < 10.0).all(axis=1)
    tau_bound = at_bound[:, :nt].any(axis=1)
    amp_zero = (theta[:, mdl.amp_indices] <= 0).any(axis=1)
    shift_bound = at_bound[:, mdl.shift_indices].any(axis=1)
    return [(_optimum_message(prob, c[r], theta[r], out.f[r], at_bound[r], finite[r], out.ok[r],
                              out.n_iter[r], singular[r], not_pd[r], tau_bound[r],
                              shift_bound[r], amp_zero[r], undetermined[r]), cov[r])
            for r in range(n_rows)]


def _optimum_message(prob, c, theta, f, at_bound, finite, ok, n_iter, singular, not_pd,
                     tau_bound, shift_bound, amp_zero, undetermined):
    """The message of an optimum (:func:`_outcomes`' checks, in their order); "" if it passed."""
    if not finite:
        return "objective is not finite at the start values"
    if not ok:
        return f"optimiser did not converge in {n_iter} iterations"
    if singular:
        return "singular Fisher information (parameters not identifiable)"
    if not_pd:
        return "Fisher information is not positive definite"
    if tau_bound:
        return "a lifetime sits at its bound"
    if shift_bound and _shift_misaligned(prob, c, theta, f, at_bound):
        lo_b, hi_b = prob.shift_bounds
        return (f"IRF shift at its bound (shift_bounds_ns=({lo_b:g}, {hi_b:g})): align the IRF "
                "or widen the bounds")
    if amp_zero:
        return "a component amplitude is 0: its lifetime is undetermined"
    if undetermined:
        return "a lifetime is undetermined (relative error > 10; no decay in the data?)"
    return ""


def _shift_misaligned(prob, c, theta, f, at_bound):
    """An IRF shift at its bound.

    A misaligned IRF if the likelihood clearly prefers a shift beyond it (likelihood ratio against
    a refit with 3x wider bounds: Delta D > 9, i.e. 3 sigma); at low counts the shift merely
    wanders to the bound.
    """
    for i in prob.mdl.shift_indices:
        if not at_bound[i]:
            continue
        lo_w, hi_w = prob.lo.copy(), prob.hi.copy()
        lo_w[i], hi_w[i] = 3 * prob.lo[i], 3 * prob.hi[i]
        f_wide = _optimize(prob, c, theta, lo_w, hi_w, prob.fixed)[1]
        if f - f_wide > 9.0:
            return True
    return False


_NO_COUNTS = np.empty(0)


def _fit_one(prob, c, rng):
    """:func:`_fit_many` of one histogram ``c`` (1-D).

    The same checks, start values, kernel calls and arithmetic, bit for bit (tested), with Python
    scalars where the batch has arrays of one row (a NumPy call on a small array costs ~1 us,
    about what an iteration of the fit of a 32-bin decay costs).
    """
    model, method = prob.model, prob.method
    if prob.empty:
        return _failed(model, method, "empty histogram (0 bins)", 0.0)
    if prob.mdl is None:
        np.add.reduce(c)  # as _data_failures (which warns when a sum overflows)
        return _failed(model, method, *_data_failure(prob, c, 0.0))
    cf = np.ascontiguousarray(c[None, :])
    c1, i0, i1 = cf[0], prob.i0, prob.i1
    if prob.bg_fixed is None:
        low = c1[i0:i1].copy()  # np.partition(..., n_low - 1)[:n_low] of _row_stats
        low.partition(prob.n_low - 1)
        low, bg = low[:prob.n_low], math.nan
    else:
        low, bg = _NO_COUNTS, prob.bg_fixed
    ok, total, n_ph, n_nonzero, b0, tau_mean = _kernels.row_start(
        c1, i0, i1, prob.a0, prob.after_bins, low, bg, prob.bin_ns, prob.period)
    # _data_failures: no NaN or negative count, and a sum that does not overflow to inf (NumPy
    # sums pairwise; it cannot overflow when the sum in order is below 1e300)
    good = ok != 0 and (total <= 1e300 or math.isfinite(np.add.reduce(c)))
    if (not good or n_ph < prob.min_photons or n_nonzero <= 1
            or prob.idx.size <= prob.n_free):
        fail = _data_failure(prob, c, n_ph)
        if fail is not None:  # (a sum that overflows to inf fails no check: it is fitted)
            return _failed(model, method, *fail)
    starts = _start_one(prob, b0, tau_mean)
    n, p, nt = c.size, prob.lo.size, prob.mdl.n_tau
    res = _kernel_one(prob, cf, starts[0:1], n, p)
    stats = res[4][0].tolist()
    for s in range(1, starts.shape[0]):  # _fit_rows: a later start if needed
        tau = res[0][0, :nt].tolist()
        if stats[_kernels.R_CONVERGED] != 0 and not any(
                t <= a or t >= b for t, (a, b) in zip(tau, prob.tau_near, strict=True)):
            break
        alt = _kernel_one(prob, cf, starts[s:s + 1], n, p)
        f_alt = float(alt[4][0, _kernels.R_F])
        if math.isfinite(f_alt) and f_alt < stats[_kernels.R_F]:
            res, stats = alt, alt[4][0].tolist()
    theta, h, m, resid = res[0][0], res[1][0], res[2][0], res[3][0]
    f, n_iter = stats[_kernels.R_F], int(stats[_kernels.R_NITER])
    message, cov = _outcome_one(prob, cf[0], theta, h, f, stats[_kernels.R_CONVERGED] != 0,
                                n_iter)
    if message:
        n_it = 0 if message.startswith("objective is not finite") else n_iter
        return _failed(model, method, message, n_ph, n_it)
    profile = boot = None
    if prob.intervals == "profile":
        profile = [_profile_interval(prob, cf[0], theta, f, k, cov)
                   for k in range(prob.mdl.n_tau)]
    if prob.n_bootstrap > 0:
        boot = _bootstrap(prob, cf[0], theta, m, prob.n_bootstrap, rng)
    return _assemble(prob, theta, cov, m, resid, stats[_kernels.R_DEVIANCE],
                     stats[_kernels.R_CHI2], n_iter, n_ph, profile, boot)


def _start_one(prob, b0, tau_mean):
    """:func:`_starts_from` of one histogram: ``(n_starts, n_params)``.

    ``b0``, ``tau_mean``: its start background and first-moment lifetime
    (:func:`qrspec.fitting._kernels.row_start`).
    """
    starts = prob.starts_one.copy()  # theta0 in every row
    if prob.tau0 is None:
        starts[:, :prob.mdl.n_tau] = np.log(tau_mean * prob.tau_factors)
    starts[:, prob.mdl.i_bg] = b0
    return starts


def _kernel_one(prob, cf, start, n, p):
    """The kernel on one histogram ``cf`` (1, n) from ``start`` (1, p).

    Returns ``(theta, h, m, resid, stats)``, each with one row.
    """
    out = (np.empty((1, p)), np.empty((1, p, p)), np.empty((1, n)), np.empty((1, n)),
           np.empty((1, _kernels.R_SIZE)))
    _kernels.fit_rows(cf, start, prob.lo, prob.hi, prob.fixed, prob.idx, prob.irf2, prob.fixed2,
                      prob.pmap, prob.spec, prob.fpar, *out)
    return out


@functools.lru_cache(maxsize=256)
def _sub_block(k):
    """``np.ix_(k, k)`` (read-only) of the parameter indices ``k`` (a tuple), built once."""
    block = np.ix_(k, k)
    for a in block:
        a.flags.writeable = False
    return block


def _outcome_one(prob, c, theta, h, f, ok, n_iter):
    """:func:`_outcomes` of one optimum: ``(message, covariance)``."""
    th = theta.tolist()
    p, nt = len(th), prob.mdl.n_tau
    at_bound = [t <= a or t >= b for t, a, b in zip(th, prob.near_lo, prob.near_hi, strict=True)]
    free = [ok_ and not a for ok_, a in zip(prob.free_ok, at_bound, strict=True)]
    finite = math.isfinite(f)
    singular = False
    cov = None
    if finite:
        try:
            if False not in free:  # no sub-block
                cov = np.linalg.inv(0.5 * h)
            else:
                block = _sub_block(tuple(itertools.compress(range(p), free)))
                sub = np.linalg.inv(0.5 * h[block])
                cov = np.empty((p, p))
                cov.fill(np.nan)
                cov[block] = sub
        except np.linalg.LinAlgError:
            singular = True
    if cov is None:
        cov = np.empty((p, p))
        cov.fill(np.nan)
    var = cov.diagonal().tolist()
    # NaN (fixed, at a bound, not inverted) compares False
    not_pd = False
    for v, fr in zip(var, free, strict=True):
        if fr and v < 0:
            not_pd = True
    undetermined = False
    for v in var[:nt]:
        if not math.sqrt(abs(v)) < 10.0:
            undetermined = True
    message = _optimum_message(
        prob, c, theta, f, at_bound, finite, ok, n_iter, singular, not_pd, True in at_bound[:nt],
        any([at_bound[i] for i in prob.shift_indices]),
        any([th[i] <= 0 for i in prob.amp_indices]), undetermined)
    return message, cov


def _fit_many(prob, c, *, rng, n_threads):
    """Fit every row of ``c`` (n_rows, n_bins) with ``prob``; one LifetimeFit per row."""
    model, method = prob.model, prob.method
    fails, stats = _data_failures(prob, c)
    results = [None if f is None else _failed(model, method, f[0], f[1]) for f in fails]
    rows = [r for r, f in enumerate(fails) if f is None]
    if not rows:
        return results
    all_rows = len(rows) == c.shape[0]
    cf = np.ascontiguousarray(c if all_rows else c[rows])
    if not all_rows:
        stats = stats[rows]
    n_ph = stats[:, 2].tolist()
    out = _fit_rows(prob, cf, _starts_from(prob, stats[:, 4], stats[:, 5]), n_threads)
    dev = out.stats[:, _kernels.R_DEVIANCE].tolist()
    chi2 = out.stats[:, _kernels.R_CHI2].tolist()
    for j, (message, cov) in enumerate(_outcomes(prob, cf, out)):
        r, n_iter = rows[j], int(out.n_iter[j])
        if message:
            n_it = 0 if message.startswith("objective is not finite") else n_iter
            results[r] = _failed(model, method, message, n_ph[j], n_it)
            continue
        theta, f = out.theta[j], float(out.f[j])
        profile = boot = None
        if prob.intervals == "profile":
            profile = [_profile_interval(prob, cf[j], theta, f, k, cov)
                       for k in range(prob.mdl.n_tau)]
        if prob.n_bootstrap > 0:
            boot = _bootstrap(prob, cf[j], theta, out.m[j], prob.n_bootstrap, rng)
        results[r] = _assemble(prob, theta, cov, out.m[j], out.resid[j], dev[j], chi2[j],
                               n_iter, n_ph[j], profile, boot)
    return results


def _profile_interval(prob, c, theta_hat, f_hat, j, cov):
    """68.3 % profile-likelihood interval of internal parameter j (Delta objective = 1)."""
    from scipy.optimize import brentq

    lo, hi = prob.lo, prob.hi
    fixed_j = prob.fixed.copy()
    fixed_j[j] = 1.0
    warm = {"theta": theta_hat.copy()}

    def excess(x):
        th = warm["theta"].copy()
        th[j] = x
        theta, f, _ = _optimize(prob, c, th, lo, hi, fixed_j)
        if np.isfinite(f):
            warm["theta"] = theta
        return f - f_hat - 1.0

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


def _bootstrap(prob, c, theta, m_hat, n_boot, rng):
    """Parametric bootstrap: Poisson redraws of the fitted model, refitted from the optimum."""
    if rng is None:
        rng = np.random.default_rng()
    idx = prob.idx
    taus = []
    for _ in range(n_boot):
        cb = c.copy()
        cb[idx] = rng.poisson(np.maximum(m_hat[idx], 0.0))
        th, _, ok = _optimize(prob, cb, theta, prob.lo, prob.hi, prob.fixed)
        if ok:
            taus.append(np.exp(th[: prob.mdl.n_tau]))
    if len(taus) < 2:
        return None
    return np.asarray(taus)


_COMPONENT_KEYS = tuple((f"tau_{i}_ns", f"amplitude_{i}", f"fraction_{i}") for i in (1, 2, 3))


def _assemble(prob, theta, cov, m_full, resid, dev, chi2, n_iter, n_ph, profile, boot):
    mdl, model, dof = prob.mdl, prob.model, prob.dof
    nt = mdl.n_tau
    th = theta.tolist()
    var = cov.diagonal().tolist()
    sd = [math.sqrt(v) if v >= 0 else math.nan for v in var]
    tau = [math.exp(x) for x in th[:nt]]
    tau_err = [t * s for t, s in zip(tau, sd[:nt], strict=True)]
    params, perrs = {}, {}
    if model == "cascade":
        w, dw_dlt, dw_drho = mdl._cascade_weights(theta)
        amp = th[2]
        amps = (amp * w).tolist()
        # delta method for the component amplitudes from (log tau_x, log tau_xx, amp, rho)
        jac_a = np.zeros((2, mdl.n_params))
        for k in range(2):
            jac_a[k, 0] = amp * dw_dlt[0][k]
            jac_a[k, 1] = amp * dw_dlt[1][k]
            jac_a[k, 2] = w[k]
            jac_a[k, 3] = amp * dw_drho[k]
        cov0 = np.where(np.isfinite(cov), cov, 0.0)
        amp_err = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", jac_a, cov0, jac_a), 0.0))
        fr = w.tolist()
        fr_err = (amp_err / amp).tolist() if amp > 0 else [math.nan] * 2
        amp_err = amp_err.tolist()
        params.update(tau_x_ns=tau[0], tau_xx_ns=tau[1], amplitude=amp, qy_ratio=th[3])
        perrs.update(tau_x_ns=tau_err[0], tau_xx_ns=tau_err[1], amplitude=sd[2],
                     qy_ratio=sd[3])
        order = [1, 0]
    else:
        amps = th[nt: 2 * nt]
        amp_err = sd[nt: 2 * nt]
        total = sum(amps)
        if total > 0:
            fr = [a / total for a in amps]
            # delta method: d f_i / d A_j = (delta_ij total - A_i) / total^2
            ca = cov[nt: 2 * nt, nt: 2 * nt].tolist()
            ca = [[x if math.isfinite(x) else 0.0 for x in row] for row in ca]
            fr_err = []
            for i in range(nt):
                jf = [((total if i == j else 0.0) - amps[i]) / total**2 for j in range(nt)]
                v = sum([jf[a] * ca[a][b] * jf[b] for a in range(nt) for b in range(nt)])
                fr_err.append(math.sqrt(max(v, 0.0)))
        else:
            fr = fr_err = [math.nan] * nt
        order = sorted(range(nt), key=tau.__getitem__)
    if profile is not None:
        interval = [(math.exp(profile[k][0]), math.exp(profile[k][1])) for k in range(nt)]
    else:
        interval = [(tau[k] - tau_err[k], tau[k] + tau_err[k]) for k in range(nt)]
    if nt == 1:
        tau_s, terr_s, amps_s, aerr_s, fr_s, frerr_s, int_s = (
            (x[0],) for x in (tau, tau_err, amps, amp_err, fr, fr_err, interval))
    else:
        tau_s, terr_s, amps_s, aerr_s, fr_s, frerr_s, int_s = (
            tuple([x[k] for k in order]) for x in (tau, tau_err, amps, amp_err, fr, fr_err,
                                                   interval))
    for i, (k_tau, k_amp, k_fr) in enumerate(_COMPONENT_KEYS[:nt]):
        params[k_tau], params[k_amp], params[k_fr] = tau_s[i], amps_s[i], fr_s[i]
        perrs[k_tau], perrs[k_amp], perrs[k_fr] = terr_s[i], aerr_s[i], frerr_s[i]
    bg, bg_err = th[mdl.i_bg], sd[mdl.i_bg]
    params["background"], perrs["background"] = bg, bg_err
    if mdl.has_shift:
        shift, shift_err = th[mdl.i_shift] * mdl.bin_ns, sd[mdl.i_shift] * mdl.bin_ns
    else:
        shift, shift_err = 0.0, math.nan
    params["shift_ns"], perrs["shift_ns"] = shift, shift_err
    if mdl.has_scatter:
        sc, sc_err = th[mdl.i_scatter], sd[mdl.i_scatter]
    else:
        sc, sc_err = 0.0, math.nan
    params["scatter"], perrs["scatter"] = sc, sc_err
    boot_err = None
    if boot is not None:
        sd_boot = boot.std(axis=0, ddof=1)
        boot_err = tuple(float(sd_boot[k]) for k in order)
    return _new_fit(
        tau_ns=tau_s, tau_err_ns=terr_s, tau_interval_ns=int_s, amplitudes=amps_s,
        amplitude_errs=aerr_s, fractions=fr_s, fraction_errs=frerr_s, background=bg,
        background_err=bg_err, shift_ns=shift, shift_err_ns=shift_err,
        scatter=sc, scatter_err=sc_err, params=params, param_errs=perrs, deviance=dev,
        reduced_deviance=dev / dof if dof > 0 else math.nan, chi2=chi2,
        reduced_chi2=chi2 / dof if dof > 0 else math.nan, dof=dof, residuals=resid,
        model_counts=m_full, n_photons=int(round(n_ph)), model=model, method=prob.method,
        success=True, message="", n_iter=n_iter, covariance=cov,
        param_names=prob.param_names, bootstrap_tau_err_ns=boot_err)


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
    probs = []
    for d in range(cnt.shape[0]):
        pr = _problem(cnt.shape[1], time_ns, bin_ns=bin_ns, model=model, irf=irfs[d],
                      period_ns=period_ns, fit_range_ns=fit_range_ns, method=method,
                      lsq_weights=lsq_weights, background=background, fixed_background=None,
                      fit_shift=fit_shift, shift_ns=shift_ns, shift_bounds_ns=shift_bounds_ns,
                      scatter=scatter, tau0_ns=tau0_ns, mean_excitations=None, qy_ratio=None,
                      intervals=intervals, n_bootstrap=n_bootstrap, min_photons=min_photons,
                      max_iter=max_iter)
        fail = _data_failures(pr, cnt[d: d + 1])[0][0]
        if fail is not None:
            return _failed(model, method, f"detector {d}: {fail[0]}", float(np.nansum(cnt)))
        probs.append(pr)
    gm = GlobalModel([pr.mdl for pr in probs])
    lo = np.empty(gm.n_params)
    hi = np.empty(gm.n_params)
    fixed = np.zeros(gm.n_params)
    for pr, mp in zip(probs, gm.maps, strict=True):
        lo[mp], hi[mp], fixed[mp] = pr.lo, pr.hi, pr.fixed
    # each detector's start vectors, amplitudes scaled to its counts; the shared lifetimes
    # start at the photon-weighted mean of the detectors' starts
    det_starts = []
    for d, pr in enumerate(probs):
        st = _start_rows(pr, cnt[d: d + 1])[0]
        # no iteration: the projected start with its amplitudes scaled to the counts
        det_starts.append(np.array([_optimize(pr, cnt[d], th, pr.lo, pr.hi, pr.fixed,
                                              scale=True, max_iter=0)[0] for th in st]))
    n_starts = min(st.shape[0] for st in det_starts)
    w = np.array([cnt[d, pr.idx].sum() for d, pr in enumerate(probs)])
    starts = np.empty((1, n_starts, gm.n_params))
    for i in range(n_starts):
        for st, mp in zip(det_starts, gm.maps, strict=True):
            starts[0, i, mp] = st[i]
        starts[0, i, : gm.n_tau] = (np.array([st[i][: gm.n_tau] for st in det_starts])
                                    * w[:, None]).sum(0) / w.sum()
    c = np.concatenate(list(cnt))[None, :]
    idx = np.concatenate([pr.idx + gm.offsets[d] for d, pr in enumerate(probs)])
    irf2, fixed2, pmap, spec, fpar = gm.kernel_arrays()
    spec[:] = probs[0].spec
    spec[_kernels.S_SCALE_STARTS] = 0
    fpar[:] = probs[0].fpar
    n_free = int((fixed == 0).sum())
    g = _Problem(mdl=gm, lo=lo, hi=hi, fixed=fixed, irf2=irf2, fixed2=fixed2, pmap=pmap,
                 spec=spec, fpar=fpar, idx=idx, n_free=n_free, dof=int(idx.size - n_free),
                 model=model, method=method, shift_bounds=probs[0].shift_bounds)
    out = _fit_rows(g, c, starts, 1)
    n_ph = float(w.sum())
    message, cov = _outcomes(g, c, out)[0]
    n_iter = int(out.n_iter[0])
    if message:
        n_it = 0 if message.startswith("objective is not finite") else n_iter
        return _failed(model, method, message, n_ph, n_it)
    theta, f = out.theta[0], float(out.f[0])
    profile = boot = None
    if intervals == "profile":
        profile = [_profile_interval(g, c[0], theta, f, k, cov) for k in range(gm.n_tau)]
    if n_bootstrap > 0:
        boot = _bootstrap(g, c[0], theta, out.m[0], n_bootstrap, rng)
    dev, chi2 = (float(out.stats[0, k]) for k in (_kernels.R_DEVIANCE, _kernels.R_CHI2))
    return _assemble_global(g, theta, cov, out.m[0], out.resid[0], dev, chi2, n_iter, n_ph,
                            profile, boot)


def _assemble_global(prob, theta, cov, m_full, resid, dev, chi2, n_iter, n_ph, profile, boot):
    gm, dof = prob.mdl, prob.dof
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
        n_photons=int(round(n_ph)), model=prob.model, method=prob.method, success=True,
        message="", n_iter=int(n_iter), covariance=cov, param_names=tuple(gm.names),
        bootstrap_tau_err_ns=boot_err)
