"""Inverse problem: measured charged lifetimes + neutral reference -> n_c and tau_A,XX^{nc-}.

Method (methods.md §1.6 "General", implemented as a joint weighted least-squares fit):

* observables (each with its 1-sigma error; an error of 0 means "fixed, not fitted"):
  neutral ``tau_X0`` and either ``tau_XX0`` or ``tau_A,XX0`` from a
  :class:`~qrspec.charging.neutral.NeutralReference` (their covariance, e.g. of a pooled
  reference, is honoured by whitening), optionally ``g2_0`` (the low-<N> QY ratio after the
  finite-<N> correction of §2.2); per charged window ``tau_X^c``, ``tau_XX^c`` and optionally
  ``g2_c`` and the radiative ratio ``rho_rad`` (§2.8);
* parameters: a continuous ``n`` in [0, n_max] per window and the shared neutral rates ``k_r``
  and ``k_A,XX`` (fitted together with the windows, so that their uncertainty propagates and
  is shared), plus any of ``eps``, ``gamma``, ``power_p``, ``power_q``, ``beta_xx`` named in
  ``free`` (shared by all windows);
* chi^2 = sum ((model - obs)/sigma)^2 in lifetime space; multi-start over n so that a second
  root (uncapped variant) is found and flagged.

:func:`infer_charging` fits one window; :func:`qrspec.charging.particle.combine_windows` fits
all windows of a particle together (the same problem with W windows).

k_nr0 = (1 - QY_X0)/tau_X0 comes from the model's ``qy_x0`` and enters X-type states (all
states with ``knr_all_states``) in the fit exactly as in the forward model: the neutral
calibration is :func:`qrspec.charging.neutral.neutral_rates`.

Uncertainties: delta method (Gauss-Newton covariance ``(J^T J)^-1`` of the weighted residuals;
``tau_A,XX^{nc-}`` by the gradient of ``1/k_A(XX^{n-})``), the profile-likelihood 68 % interval
of n (``Delta chi^2 = 1``; one-sided at the bounds), and optionally a parametric bootstrap
(Gaussian redraw of every observable, refit, 16/84 percentiles). In the capped variant with
``xi = 0`` the model-free ``tau_A,XX^{nc-} = 1/(1/tau_XX^c - beta_xx k_r)`` is also reported
(``tau_a_xx_direct_ns``) with the delta-method error of methods.md §1.6.

Identifiability (methods.md §1.6 conditions, each a flag; a failing one never leaves a silent
number): ``degenerate`` (rank-deficient Jacobian, e.g. capped with gamma = 1 and eps free: only
eps*n is identifiable -> n is NaN and ``extras['eps_n']`` holds the product),
``underdetermined`` (more free parameters than observables), ``auger_signal_small``
(Y/sigma_Y < 2 and the charge-induced XX Auger rate < 2 sigma: n is an upper limit only),
``trap_like`` (rho_rad consistent with 1, not with charging: not converted),
``multiple_solutions``,
``at_lower_bound`` / ``at_upper_bound`` (one-sided interval), ``poor_fit`` (chi^2 p < 0.01),
``no_dof`` (exactly determined: no goodness of fit; with chi^2 > 3.84 also ``poor_fit``: no
solution inside the bounds), ``<param>_at_bound``, ``neutral_inconsistent`` (the neutral
k_A,XX = 1/tau_XX0 - beta_xx k_r is more than 2 sigma below 0; a smaller excursion below 0 is
noise, and the fit then starts at k_A,XX = sigma and lets the windows decide),
``no_xx_auger`` (1/tau_XX^c <= beta_xx k_r: no charged Auger rate). Measured false-alarm rates
are in docs/charging_model.md.

The former ``tau_ratio_below_2`` flag (tau_X^c/tau_XX^c < 2, methods.md condition 2) is gone:
in the capped model tau_X^c/tau_XX^c - 2 = [k_A,XX (1 - eps + eps gamma) - 2 k_nr0] tau_X^c
(derived from §1.5), which tends to 0 as n grows, so the ratio of a correct model sits at
2.1-2.2 for n >= 4 and falls below 2 legitimately when QY_X0 < 1; the point-estimate test fired
on about half of such windows. A ratio the model cannot produce shows up in chi^2
(``poor_fit``, false-alarm rate 1 %), and how well tau_XX is resolved is in its error.

Note on methods.md §1.6: the closed-form estimates ``n = 1 + (Y/A_n - 1)/gamma`` (from X) and
``n = (Z/k_A,XX - 1)/(gamma eps)`` (from XX) and the pair ``(n, gamma)`` formulas are correct for
n >= 1 (checked against the engine); for n < 1 the X estimate must use the interpolated
X^{n-} rates (see :mod:`qrspec.charging.forward`). They are provided in :func:`capped_closed_form`
and used as the start of the fit. In the capped variant the optional g2_c carries no
information on n beyond tau_X^c and tau_XX^c (both radiative rates are n-independent for xi = 0:
g2_c = beta_xx tau_XX^c/(beta_x- tau_X^c)), so it only adds a consistency degree of freedom.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.charging.forward import _VARIANT_FUNCS, _rates_of, _state_rates, _with_rates
from qrspec.charging.lm import lm_bounded
from qrspec.charging.neutral import NeutralReference, _num, neutral_rates
from qrspec.errors import QrspecError

__all__ = ["ChargedObservation", "ChargingFit", "infer_charging", "capped_closed_form",
           "FREE_PARAMS", "UNUSABLE_FLAGS"]

logger = logging.getLogger(__name__)

FREE_PARAMS = ("eps", "gamma", "power_p", "power_q", "beta_xx")
_BOUNDS = {"eps": (0.0, 1.0), "gamma": (0.0, 50.0), "power_p": (0.0, 10.0),
           "power_q": (0.0, 10.0), "beta_xx": (0.5, 8.0)}
# a window with one of these flags has no n to average (only a bound, or none at all)
UNUSABLE_FLAGS = frozenset({"degenerate", "underdetermined", "auger_signal_small", "trap_like",
                            "at_upper_bound", "poor_fit", "neutral_inconsistent",
                            "no_xx_auger"})


@dataclass(frozen=True)
class ChargedObservation:
    """One charged window: X^{nc-} and XX^{nc-} lifetimes (+ optional g2, rho_rad) and times.

    Parameters
    ----------
    tau_x_ns, tau_x_err_ns, tau_xx_ns, tau_xx_err_ns : float
        Charged exciton and biexciton lifetimes and their 1-sigma errors, ns.
    g2, g2_err : float or None, float
        Low-<N> QY ratio of the window and error.
    rad_ratio, rad_ratio_err : float or None, float
        Radiative-rate ratio to neutral (methods.md §2.8) and error.
    t_start_s, t_stop_s : float or None
        The window's time span (needed by trajectories and for time weights).
    """

    tau_x_ns: float
    tau_x_err_ns: float
    tau_xx_ns: float
    tau_xx_err_ns: float
    g2: float | None = None
    g2_err: float = 0.0
    rad_ratio: float | None = None
    rad_ratio_err: float = 0.0
    t_start_s: float | None = None
    t_stop_s: float | None = None

    def __post_init__(self):
        _num("tau_x_ns", self.tau_x_ns)
        _num("tau_x_err_ns", self.tau_x_err_ns)
        _num("tau_xx_ns", self.tau_xx_ns)
        _num("tau_xx_err_ns", self.tau_xx_err_ns)
        _num("g2", self.g2, allow_none=True)
        _num("rad_ratio", self.rad_ratio, allow_none=True)
        if self.g2 is not None:
            _num("g2_err", self.g2_err)
        if self.rad_ratio is not None:
            _num("rad_ratio_err", self.rad_ratio_err)
        times = (self.t_start_s, self.t_stop_s)
        if any(t is not None for t in times):
            ok = all(isinstance(t, int | float) and math.isfinite(t) for t in times)
            if not (ok and self.t_stop_s > self.t_start_s):
                raise QrspecError(f"t_start_s={self.t_start_s!r}, t_stop_s={self.t_stop_s!r} "
                                  "must be finite with t_start_s < t_stop_s")

    @property
    def duration_s(self) -> float:
        """``t_stop_s - t_start_s`` (NaN without times)."""
        if self.t_start_s is None:
            return math.nan
        return float(self.t_stop_s - self.t_start_s)


@dataclass(frozen=True, eq=False)
class ChargingFit:
    """Result of :func:`infer_charging`.

    Attributes
    ----------
    n : float
        Best-fit (effective, continuous) charge number; NaN when not identifiable.
    n_lo, n_hi : float
        Profile-likelihood 68 % interval (Delta chi^2 = 1); at a bound it is one-sided.
    n_err_delta : float
        Delta-method standard error of n.
    n_boot_lo, n_boot_hi : float
        Bootstrap 16/84 percentiles (NaN unless ``n_boot > 0``).
    tau_a_xx_ns, tau_a_xx_err_ns : float
        Model tau_A,XX^{nc-} = 1/k_A(XX^{n-}) at the fit, delta-method error.
    tau_a_xx_boot_lo_ns, tau_a_xx_boot_hi_ns : float
        Bootstrap 16/84 percentiles of tau_A,XX^{nc-}.
    tau_a_xx_direct_ns, tau_a_xx_direct_err_ns : float
        Model-free 1/(1/tau_XX^c - k_r(XX)) (capped, xi = 0; NaN otherwise or when <= 0).
    free_params : dict
        name -> (value, delta-method error) of every fitted parameter besides n.
    chi2, dof, p_value : float, int, float
        Goodness of fit (p_value NaN when dof = 0).
    flags : tuple of str
        Identifiability / quality flags (module doc).
    extras : dict
        E.g. ``eps_n`` when only eps*n is identifiable, ``other_minima``.
    success : bool
    message : str
    variant : str
    """

    n: float
    n_lo: float
    n_hi: float
    n_err_delta: float
    n_boot_lo: float
    n_boot_hi: float
    tau_a_xx_ns: float
    tau_a_xx_err_ns: float
    tau_a_xx_boot_lo_ns: float
    tau_a_xx_boot_hi_ns: float
    tau_a_xx_direct_ns: float
    tau_a_xx_direct_err_ns: float
    free_params: dict
    chi2: float
    dof: int
    p_value: float
    flags: tuple
    extras: dict = field(default_factory=dict)
    success: bool = True
    message: str = ""
    variant: str = "capped"

    @property
    def n_err_lo(self) -> float:
        """Distance of n above its lower interval end, n - n_lo."""
        return self.n - self.n_lo

    @property
    def n_err_hi(self) -> float:
        """n_hi - n."""
        return self.n_hi - self.n

    @property
    def usable(self) -> bool:
        """True when n is a number to average: a success, finite, no :data:`UNUSABLE_FLAGS`."""
        return bool(self.success) and math.isfinite(self.n) \
            and not (set(self.flags) & UNUSABLE_FLAGS)


def capped_closed_form(y_per_ns, z_per_ns, *, k_a_xx0_per_ns, eps=0.5, gamma=1.0):
    """methods.md §1.6 closed forms of the capped variant (n >= 1 branch for the X estimate).

    ``Y`` is the Auger rate of X^{nc-} and ``Z`` that of XX^{nc-}. Returns a dict with
    ``n_from_x``, ``n_from_xx`` (gamma fixed) and ``gamma_free``, ``n_gamma_free`` (eps fixed).
    """
    a_n = eps * k_a_xx0_per_ns / 2.0
    out = {"n_from_x": 1.0 + (y_per_ns / a_n - 1.0) / gamma if a_n > 0 and gamma > 0
           else math.nan,
           "n_from_xx": (z_per_ns / k_a_xx0_per_ns - 1.0) / (gamma * eps)
           if gamma * eps > 0 else math.nan}
    # with gamma free and eps fixed: (n, gamma) identifiable
    g = 1.0 - (y_per_ns - (z_per_ns - k_a_xx0_per_ns) / 2.0) / a_n if a_n > 0 else math.nan
    out["gamma_free"] = g
    out["n_gamma_free"] = (z_per_ns - k_a_xx0_per_ns) / (2.0 * a_n * g) if a_n * g != 0 \
        else math.nan
    return out


class _Problem:
    """Observables, parameter layout and model predictions of an inversion of W windows.

    Parameters are ``n`` of every window (first W entries), then the shared free parameters,
    then the neutral nuisance rates ``k_r`` and ``k_a_xx0`` (each only when its neutral
    observable has an error > 0; otherwise it is fixed).
    """

    def __init__(self, config: ChargeModelConfig, neutral: NeutralReference, windows, free,
                 n_max, gamma_lifetimes: bool = True, mean_excitations: float | None = None):
        self.config = config
        # the rates that no parameter changes (variant, xi, levels, ...; mirrored for a
        # positive sign): params() sets the others per evaluation
        self._rates_base = _rates_of(config, k_r=math.nan, k_nr0=math.nan, a_n=math.nan,
                                     a_p=math.nan)
        # windows' tau_XX are heralded measurements at this <N>: predict what such a fit
        # reports (the triexciton share, qrspec.charging.heralded); None: the true lifetime
        self.mean_excitations = mean_excitations
        if mean_excitations is not None:
            from qrspec.charging.heralded import HERALDED_START_NS, _pair_weights

            self.pair_weights = (*_pair_weights(mean_excitations), HERALDED_START_NS)
        self.positive = config.sign == "positive"
        self.neutral = neutral
        self.windows = tuple(windows)
        self.W = len(self.windows)
        self.n_max = float(n_max)
        self.qy = float(config.qy_x0)
        beta = config.beta_xx
        if "beta_xx" in free and neutral.g2_0 is not None and neutral.tau_xx0_ns is not None:
            # per-particle estimate (methods.md §1.6): g2_0 = beta tau_XX0/tau_X0
            beta = float(np.clip(neutral.g2_0 * neutral.tau_x0_ns / neutral.tau_xx0_ns,
                                 *_BOUNDS["beta_xx"]))
        self.beta0 = beta
        rates = neutral_rates(neutral, config, beta_xx=beta)
        # the neutral data alone exclude k_A,XX0 > 0 only when it lies 2 sigma below 0; a
        # smaller or negative estimate is noise (a few hundred pairs: sigma ~ 30 % of k_A)
        self.neutral_consistent = rates.consistent
        self.k_axx0_measured = k_axx0 = rates.k_a_xx0_per_ns
        k_axx0 = max(k_axx0, rates.k_a_xx0_err_per_ns)  # start (or fixed value): positive
        k_r0 = rates.k_r_per_ns
        self.k_r0, self.k_nr0, self.k_axx0 = k_r0, rates.k_nr0_per_ns, k_axx0
        self.eps0 = config.eps_effective
        self.n_names = ["n"] if self.W == 1 else [f"n{i}" for i in range(self.W)]
        self.names = [*self.n_names, *free]
        if neutral.tau_x0_err_ns > 0:
            self.names.append("k_r")
        if neutral.second_err_ns > 0:
            self.names.append("k_a_xx0")
        self.shared = self.names[self.W:]
        gamma = config.gamma_h if self.positive else config.gamma
        self.fixed = {"k_r": k_r0, "k_a_xx0": k_axx0, "eps": self.eps0, "gamma": gamma,
                      "power_p": config.power_p, "power_q": config.power_q, "beta_xx": beta}
        lo, hi, x0 = [], [], []
        for name in self.names:
            if name in self.n_names:
                b, v = (0.0, self.n_max), 1.0
            elif name in ("k_r", "k_a_xx0"):
                b, v = (1e-12, np.inf), self.fixed[name]
            else:
                b, v = _BOUNDS[name], self.fixed[name]
            lo.append(b[0])
            hi.append(b[1])
            x0.append(v)
        self.lo, self.hi, self.x0 = np.array(lo), np.array(hi), np.array(x0, float)
        # ---- observables: the neutral block (whitened with its covariance), then windows
        nk, nv, ns = [], [], []
        if neutral.tau_x0_err_ns > 0:
            nk.append("tau_x0")
            nv.append(neutral.tau_x0_ns)
            ns.append(neutral.tau_x0_err_ns)
        if neutral.second_err_ns > 0:
            nk.append(neutral.second_kind)
            nv.append(neutral.second_ns)
            ns.append(neutral.second_err_ns)
        if len(nk) == 2:
            cov = neutral.cov_ns2
        else:
            cov = np.diag(np.square(ns)) if ns else np.zeros((0, 0))
        if neutral.g2_0 is not None:
            nk.append("g2_0")
            nv.append(neutral.g2_0)
            cov = np.pad(cov, ((0, 1), (0, 1)))
            cov[-1, -1] = neutral.g2_0_err**2
        self.neutral_kinds = nk
        self.neutral_vals = np.array(nv, float)
        self.neutral_chol = np.linalg.cholesky(cov) if nk else np.zeros((0, 0))
        self.neutral_errs = np.sqrt(np.diag(cov)) if nk else np.zeros(0)
        wk, wv, ws, wi = [], [], [], []
        for i, obs in enumerate(self.windows):
            for kind, value, err in (("tau_x", obs.tau_x_ns, obs.tau_x_err_ns),
                                     ("tau_xx", obs.tau_xx_ns, obs.tau_xx_err_ns),
                                     ("g2", obs.g2, obs.g2_err),
                                     ("rad_ratio", obs.rad_ratio, obs.rad_ratio_err)):
                if value is not None and err > 0:
                    wk.append(kind)
                    wv.append(float(value))
                    ws.append(float(err))
                    wi.append(i)
        self.window_kinds = np.array(wk)
        self.window_vals = np.array(wv, float)
        self.window_errs = np.array(ws, float)
        self.window_of_row = np.array(wi, int)
        self.kinds = [*nk, *wk]
        self.n_obs = len(self.kinds)
        # lifetimes: the exact likelihood of an exponential MLE from N_eff = (tau/sigma)^2
        # arrivals (Gamma), as signed-root deviance residuals; a correlated neutral block
        # (pooled reference) stays Gaussian
        lifetimes = ("tau_x0", "tau_xx0", "tau_a_xx0", "tau_x", "tau_xx")
        self.window_gamma = np.isin(self.window_kinds, lifetimes) if gamma_lifetimes \
            else np.zeros(self.window_vals.size, bool)
        self.window_n_eff = (self.window_vals / self.window_errs) ** 2
        if len(nk) and neutral.corr == 0:
            self.neutral_gamma = np.isin(np.array(nk), lifetimes) & gamma_lifetimes
            self.neutral_n_eff = (self.neutral_vals / self.neutral_errs) ** 2
        else:
            self.neutral_gamma = None
        self.obs_errs = np.concatenate([self.neutral_errs, self.window_errs])
        # ---- layout of the fit's inner loop (predictions are evaluated ~10^4 times per
        # particle): theta column of every shared parameter, rows of every window observable
        self._col = {name: j for j, name in enumerate(self.names) if j >= self.W}
        self._kind_rows = tuple((kind, np.flatnonzero(self.window_kinds == kind),
                                 self.window_of_row[self.window_kinds == kind])
                                for kind in ("tau_x", "tau_xx", "g2", "rad_ratio")
                                if np.any(self.window_kinds == kind))
        # prediction columns of each kind; win None: one row per window in window order
        self._kind_cols = tuple(
            (kind, self.neutral_vals.size + rows,
             None if np.array_equal(win, np.arange(self.W)) else win)
            for kind, rows, win in self._kind_rows)
        self._rows_w = self.neutral_vals.size + np.arange(self.window_vals.size)
        # several parameter vectors are evaluated in one pass over arrays (K, W) with the
        # shared parameters as (K, 1) columns: every number is the same elementwise operation
        # as for one vector. Not for free power-law exponents (numpy's ``x ** scalar`` has fast
        # paths an array exponent lacks) nor for the engine: those go vector by vector.
        self._batched = config.variant in ("capped", "uncapped") or (
            config.variant == "power_law" and not {"power_p", "power_q"} & set(self.shared))
        if self.neutral_gamma is not None:  # one residual formula for every observable
            self._obs_gamma = np.concatenate([self.neutral_gamma, self.window_gamma])
            self._obs_n_eff = np.concatenate([self.neutral_n_eff, self.window_n_eff])
            self._gamma_cols = np.flatnonzero(self._obs_gamma)
            self._gamma_all = bool(self._obs_gamma.all())
            self._gamma_n_eff = self._obs_n_eff[self._gamma_cols]
        self._obs_vals = np.concatenate([self.neutral_vals, self.window_vals])
        if self.neutral_gamma is not None:
            self._gamma_vals = self._obs_vals[self._gamma_cols]
        # central-difference layout (_perturbed): the plus-step row of every column (all n in
        # row 0, then one row pair per shared parameter); the minus step is the next row
        P = len(self.names)
        self._step_rows = 2 * np.concatenate([np.zeros(self.W, int),
                                              np.arange(1, P - self.W + 1)])
        self._step_cols = np.arange(P)
        self._n_steps = 2 * (P - self.W + 1)
        self._rate_func = _VARIANT_FUNCS[config.variant]
        self._memo = {}

    def with_observations(self, neutral_vals, window_vals) -> _Problem:
        """A copy with other observed values (same errors): the bootstrap redraws."""
        new = object.__new__(_Problem)
        new.__dict__.update(self.__dict__)
        new.neutral_vals = np.asarray(neutral_vals, float)
        new.window_vals = np.asarray(window_vals, float)
        new._obs_vals = np.concatenate([new.neutral_vals, new.window_vals])
        if new.neutral_gamma is not None:
            new._gamma_vals = new._obs_vals[new._gamma_cols]
        new._memo = {}
        return new

    def values(self, theta):
        d = dict(self.fixed)
        d.update(zip(self.names[self.W:], theta[self.W:], strict=True))
        d["n"] = np.asarray(theta[:self.W], float)
        return d

    def params(self, d):
        """The model's rates at the parameters ``d`` (name -> scalar or (K, 1) column)."""
        k_r, k_axx, eps = d["k_r"], d["k_a_xx0"], d["eps"]
        a_n, a_p = eps * k_axx / 2.0, (1.0 - eps) * k_axx / 2.0
        if self.positive:  # holes charge: mirrored as _rates_of does
            a_n, a_p = a_p, a_n
        return _with_rates(self._rates_base, k_r=k_r, k_nr0=k_r * (1 - self.qy) / self.qy,
                           a_n=a_n, a_p=a_p, beta_xx=d["beta_xx"], power_p=d["power_p"],
                           power_q=d["power_q"], gamma=d["gamma"])

    def _model(self, n, d):
        """Predictions of the charge numbers ``n`` (K, W) with the parameters ``d``.

        ``d``: name -> scalar or (K, 1) column. Returns the observables (K, n_obs; the neutral
        ones first) and k_A(XX) (K, W).
        """
        p = self.params(d)
        shape = n.shape
        rates = self._rate_func  # _state_rates without its dispatch: n is a float array
        kr1, ka1 = rates(p, n, 1)
        kr2, ka2 = rates(p, n, 2)
        knr2 = p.k_nr0 if p.knr_all_states else 0.0
        tau_x = 1.0 / (kr1 + ka1 + p.k_nr0)
        tau_xx = 1.0 / (kr2 + ka2 + knr2)
        tau_xx_seen = tau_xx
        if self.mean_excitations is not None:
            from qrspec.charging.heralded import _apparent

            kr3, ka3 = rates(p, n, 3)
            tau_xxx = 1.0 / (kr3 + ka3 + knr2)
            tau_xx_seen = _apparent(tau_xx, tau_xxx, kr1 * tau_x, kr2 * tau_xx, kr3 * tau_xxx,
                                    *self.pair_weights)
        nn = len(self.neutral_kinds)
        pred = np.empty((shape[0], nn + self.window_vals.size))
        for i, kind in enumerate(self.neutral_kinds):
            if kind == "tau_x0":
                v = self.qy / p.k_r
            elif kind == "tau_a_xx0":
                v = 1.0 / d["k_a_xx0"]
            else:
                tau_xx0 = 1.0 / (p.beta_xx * p.k_r + d["k_a_xx0"] + knr2)
                v = tau_xx0 if kind == "tau_xx0" else p.beta_xx * p.k_r * tau_xx0 / self.qy
            pred[:, i:i + 1] = v
        for kind, cols, win in self._kind_cols:
            if kind == "tau_x":
                v = tau_x
            elif kind == "tau_xx":
                v = tau_xx_seen
            elif kind == "g2":
                v = kr2 * tau_xx / (kr1 * tau_x)
            else:
                v = kr1 / p.k_r
            if np.shape(v) != shape:
                v = np.broadcast_to(v, shape)
            pred[:, cols] = v if win is None else v[:, win]
        return pred, ka2 if np.shape(ka2) == shape else np.broadcast_to(ka2, shape)

    def _predict_rows(self, thetas):
        """:meth:`_model` of every row of ``thetas`` (K, P).

        The last single vector and the last batch are remembered (the fit asks for the same
        ones several times).
        """
        thetas = np.ascontiguousarray(thetas, dtype=float)
        key = (thetas.shape, thetas.tobytes())
        slot = thetas.shape[0] > 1
        hit = self._memo.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        if self._batched:
            d = dict(self.fixed)
            for name, j in self._col.items():
                d[name] = thetas[:, j:j + 1]
            out = self._model(thetas[:, :self.W], d)
        else:
            parts = []
            for theta in thetas:
                d = dict(self.fixed)
                d.update(zip(self.shared, theta[self.W:], strict=True))
                parts.append(self._model(theta[None, :self.W], d))
            out = tuple(np.concatenate(a) for a in zip(*parts, strict=True))
        # owned float arrays as they are (the model's fresh results), copies of views
        out = tuple(a if a.dtype == np.float64 and a.flags.owndata else np.array(a, float)
                    for a in out)
        for a in out:
            a.flags.writeable = False
        self._memo[slot] = (key, out)
        return out

    def predict(self, theta):
        """(neutral predictions, window predictions per observable row, k_A(XX) per window)."""
        pred, ka2 = self._predict_rows(np.asarray(theta, float)[None, :])
        nn = self.neutral_vals.size
        return pred[0, :nn], pred[0, nn:], ka2[0]

    def _residuals_rows(self, thetas):
        """Residuals (K, n_obs) of every row of ``thetas``."""
        pred, _ = self._predict_rows(thetas)
        if self.neutral_gamma is not None:
            if self._gamma_all:  # every observable a lifetime (the pipeline's case)
                return _gamma_residual(pred, self._gamma_vals, self._gamma_n_eff)
            res = (pred - self._obs_vals) / self.obs_errs
            g = self._gamma_cols
            res[:, g] = _gamma_residual(pred[:, g], self._gamma_vals, self._gamma_n_eff)
            return res
        # correlated neutral block: whitened Gaussian
        nn = self.neutral_vals.size
        pn, pw = pred[:, :nn], pred[:, nn:]
        rn = np.array([np.linalg.solve(self.neutral_chol, row - self.neutral_vals)
                       for row in pn]) if nn else pn
        rw = (pw - self.window_vals) / self.window_errs
        g = self.window_gamma
        rw[:, g] = _gamma_residual(pw[:, g], self.window_vals[g], self.window_n_eff[g])
        return np.concatenate([rn, rw], axis=1)

    def residuals(self, theta):
        return self._residuals_rows(np.asarray(theta, float)[None, :])[0]

    def tau_a(self, theta):
        """tau_A,XX^{nc-} = 1/k_A(XX^{n-}) of every window (inf when k_A <= 0)."""
        return _tau_a_of(self.predict(theta)[2])

    def _perturbed(self, theta):
        """Central-difference steps: all n at once, then each shared parameter.

        Window i depends on n_i only; steps are one-sided at the bounds. Returns (thetas
        (2 G, P): plus and minus step of every group in turn, step widths (P,)).
        """
        theta = np.asarray(theta, float)
        h = 1e-5 * np.maximum(np.abs(theta), 1e-3)
        tp = np.minimum(theta + h, self.hi)
        tm = np.maximum(theta - h, self.lo)
        thetas = np.repeat(theta[None, :], self._n_steps, axis=0)
        thetas[self._step_rows, self._step_cols] = tp
        thetas[self._step_rows + 1, self._step_cols] = tm
        return thetas, tp - tm

    def tau_a_mean_grad(self, theta, weights):
        """Gradient of ``weights @ tau_a(theta)`` by central differences.

        All n are perturbed at once (tau_a of window i depends on n_i only); one-sided at the
        bounds.
        """
        thetas, den = self._perturbed(theta)
        ta = _tau_a_of(self._predict_rows(thetas)[1])
        d = weights * (ta[0::2] - ta[1::2])
        grad = np.empty(den.size)
        grad[:self.W] = d[0] / den[:self.W]
        grad[self.W:] = [row.sum() for row in d[1:]]  # as 1-d sums (same rounding)
        grad[self.W:] /= den[self.W:]
        return grad

    def tau_a_jac(self, theta):
        """Central-difference Jacobian (W, P) of :meth:`tau_a`, from one batch of perturbations.

        tau_a of window i depends on n_i only (and the shared parameters), so all n are
        perturbed at once (off-diagonal n entries are 0); one-sided at the bounds.
        """
        thetas, den = self._perturbed(theta)
        ta = _tau_a_of(self._predict_rows(thetas)[1])
        d = ta[0::2] - ta[1::2]
        jac = np.zeros((self.W, den.size))
        diag = np.arange(self.W)
        jac[diag, diag] = d[0] / den[:self.W]
        jac[:, self.W:] = (d[1:] / den[self.W:, None]).T
        return jac

    def k_a_xx0(self, theta):
        j = self._col.get("k_a_xx0")
        return float(self.fixed["k_a_xx0"] if j is None else theta[j])

    def jacobian(self, theta):
        """Central-difference Jacobian of the residuals.

        All n are perturbed at once (window i's rows depend on n_i only); one-sided at the
        bounds.
        """
        thetas, den = self._perturbed(theta)
        res = self._residuals_rows(thetas)
        diff = res[0::2] - res[1::2]
        jac = np.zeros((res.shape[1], den.size))
        # the n block: window rows only, each from its own n
        w = self.window_of_row
        jac[self._rows_w, w] = diff[0, self._rows_w] / den[w]
        jac[:, self.W:] = (diff[1:] / den[self.W:, None]).T
        return jac


def _tau_a_of(ka2):
    """1/k_A (inf when k_A <= 0)."""
    with np.errstate(divide="ignore"):
        return np.where(ka2 > 0, 1.0 / np.maximum(ka2, 1e-300), np.inf)


def _gamma_residual(model, observed, n_eff):
    """Signed root of the Gamma deviance of an exponential-lifetime MLE.

    ``observed`` is the MLE of N = ``n_eff`` arrivals; ``-2 ln L(model)`` relative to its
    maximum is ``2 N (x - 1 - ln x)``, ``x = observed/model``. The sign is that of
    ``model - observed``; near the minimum the residual is ``(model - observed)/(model/sqrt N)``,
    a Gaussian whose width follows the model (not the noisy estimate, which would give the
    shorter estimates more weight and bias the fit).
    """
    u = observed / model - 1.0
    dev = np.maximum(u - np.log1p(u), 0.0)
    return np.sign(-u) * np.sqrt(2.0 * n_eff * dev)


def _lsq(problem, x0, fix_n=None, penalty=None, solver="lm"):
    """Least-squares fit from x0. Returns (theta, chi2).

    ``fix_n`` (W = 1 only) holds n fixed; ``penalty = (func, target, scale)`` adds the residual
    ``(func(theta) - target)/scale`` (a profile constraint; ``func`` returns (value, grad)).
    ``solver="lm"``: the light bounded Levenberg-Marquardt of :mod:`qrspec.charging.lm`, with
    scipy's ``least_squares`` (trf) from the same start when it does not converge;
    ``"scipy"``: scipy only (the reference of the light solver's tests).
    """
    lo, hi = problem.lo, problem.hi
    if fix_n is not None:
        if len(problem.names) == 1:
            th = np.array([fix_n])
            r = problem.residuals(th)
            return th, float(r @ r)
        lo, hi = lo[1:], hi[1:]

        def fun(t):
            return problem.residuals(np.concatenate(([fix_n], t)))

        def jac(t):
            return problem.jacobian(np.concatenate(([fix_n], t)))[:, 1:]

        start = np.clip(x0[1:], lo, hi)
    elif penalty is not None:
        func, target, p_scale = penalty

        def fun(t):  # the value only: func(t, grad=False) skips the gradient
            return np.append(problem.residuals(t), (func(t, grad=False)[0] - target) / p_scale)

        def jac(t):
            return np.vstack([problem.jacobian(t), func(t)[1] / p_scale])

        start = np.clip(x0, lo, hi)
    else:
        fun, jac = problem.residuals, problem.jacobian
        start = np.clip(x0, lo, hi)
    x_scale = np.where(np.isfinite(hi) & (hi < 1e3), 1.0, np.maximum(np.abs(start), 1e-3))
    converged = False
    with np.errstate(all="ignore"):
        if solver == "lm":
            x, converged = lm_bounded(fun, jac, start, lo, hi, x_scale, xtol=1e-12, ftol=1e-12,
                                      gtol=1e-12, max_nfev=2000)
        if not converged:
            from scipy.optimize import least_squares

            x = least_squares(fun, start, jac=jac, bounds=(lo, hi), x_scale=x_scale,
                              method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12,
                              max_nfev=2000).x
    th = x if fix_n is None else np.concatenate(([fix_n], x))
    r = problem.residuals(th)
    return th, float(r @ r)


def _covariance(problem, theta):
    """Gauss-Newton covariance (pinv of J^T J) and the singular values of J."""
    jac = problem.jacobian(theta)
    s = np.linalg.svd(jac, compute_uv=False)
    return np.linalg.pinv(jac.T @ jac), s


def _profile_interval(problem, theta_hat, chi2_min, n_grid):
    """Profile chi^2 over n (W = 1): 68 % interval, and whether it has separate regions."""
    from scipy.optimize import brentq

    cache = {}

    def prof(n):
        key = round(float(n), 12)
        if key not in cache:
            cache[key] = _lsq(problem, theta_hat, fix_n=float(n))[1]
        return cache[key]

    grid = np.unique(np.concatenate([np.linspace(0, problem.n_max, n_grid), [theta_hat[0]]]))
    vals = np.array([prof(n) for n in grid])
    level = chi2_min + 1.0
    inside = vals <= level
    i_hat = int(np.argmin(np.abs(grid - theta_hat[0])))
    inside[i_hat] = True
    # contiguous region around the best fit
    lo_i = i_hat
    while lo_i > 0 and inside[lo_i - 1]:
        lo_i -= 1
    hi_i = i_hat
    while hi_i < grid.size - 1 and inside[hi_i + 1]:
        hi_i += 1

    def edge(a, b):
        fa, fb = prof(a) - level, prof(b) - level
        if fa * fb > 0:
            return b if fb <= 0 else a
        # 1e-4 in n is far below any statistical error of n
        return brentq(lambda x: prof(x) - level, a, b, xtol=1e-4)

    n_lo = grid[0] if lo_i == 0 else edge(grid[lo_i - 1], grid[lo_i])
    n_hi = grid[-1] if hi_i == grid.size - 1 else edge(grid[hi_i], grid[hi_i + 1])
    separate = bool(np.any(inside[:lo_i]) or np.any(inside[hi_i + 1:]))
    return float(n_lo), float(n_hi), separate


def _check_mean_excitations(mu):
    if mu is None:
        return None
    if isinstance(mu, bool) or not isinstance(mu, int | float) or not (math.isfinite(mu)
                                                                      and 0 < mu < 50):
        raise QrspecError(f"mean_excitations={mu!r} must be in (0, 50) or None")
    return float(mu)


def _check_common(neutral, config, free, n_max):
    """Shared argument checks of the single-window and the joint inversion."""
    config = ChargeModelConfig() if config is None else config
    if not isinstance(config, ChargeModelConfig):
        raise QrspecError(f"config={config!r} must be a ChargeModelConfig")
    if not isinstance(neutral, NeutralReference):
        raise QrspecError(f"neutral={neutral!r} must be a NeutralReference")
    free = tuple(free)
    bad = [f for f in free if f not in FREE_PARAMS]
    if bad or len(set(free)) != len(free):
        raise QrspecError(f"free={free!r}: each must be one of {FREE_PARAMS}, no repeats")
    if config.variant == "levels":
        raise QrspecError("variant='levels' is too slow to invert; use 'capped', 'uncapped' or "
                          "'power_law' (the engine is their reference)")
    if "eps" in free and config.tau_a_xminus_ns is not None:
        raise QrspecError("free=('eps', ...) needs a config with tau_a_xx0_ns, not trion "
                          "Auger lifetimes")
    return config, free, _num("n_max", n_max)


def _direct_tau_a(problem, obs, config, neutral):
    """Model-free tau_A,XX^{nc-} = 1/(1/tau_XX^c - beta k_r [- k_nr0]) and its delta error."""
    if not (config.variant in ("capped", "power_law") and config.xi_rad == 0):
        return math.nan, math.nan
    knr2 = problem.k_nr0 if config.knr_all_states else 0.0
    z = 1.0 / obs.tau_xx_ns - problem.beta0 * problem.k_r0 - knr2
    if not z > 0:
        return math.nan, math.nan
    direct = 1.0 / z
    c = problem.beta0 * problem.qy + ((1.0 - problem.qy) if config.knr_all_states else 0.0)
    s_k = c * neutral.tau_x0_err_ns / neutral.tau_x0_ns**2  # error of beta k_r [+ k_nr0]
    err = direct**2 * math.sqrt(obs.tau_xx_err_ns**2 / obs.tau_xx_ns**4 + s_k**2)
    return direct, err


def infer_charging(neutral: NeutralReference, obs: ChargedObservation,
                   config: ChargeModelConfig | None = None, *, free=(), n_max: float = 40.0,
                   profile: bool = True, n_grid: int = 41, n_boot: int = 0, seed=None,
                   n_starts: int = 7, mean_excitations: float | None = None) -> ChargingFit:
    """Invert the charge model for one charged window.

    Parameters
    ----------
    neutral : NeutralReference
        The particle's neutral reference (its own, a user's or a group's).
    obs : ChargedObservation
        The charged window.
    config : ChargeModelConfig, optional
        Variant and fixed parameters, QY_X0 included (default: methods.md §1.8 defaults). Its
        neutral lifetimes are not used: ``neutral`` supplies them.
    free : sequence of str
        Extra fitted parameters among ``eps, gamma, power_p, power_q, beta_xx``.
    n_max : float
        Upper bound of n.
    profile : bool
        Compute the profile-likelihood interval of n (else the delta-method +/- 1 sigma).
    n_grid : int
        Grid points of the profile scan.
    n_boot : int
        Parametric-bootstrap replicates (0 = none).
    seed : int or numpy Generator, optional
        Bootstrap random state.
    n_starts : int
        Number of grid starts over [0, n_max] (besides the capped closed-form starts); below 2,
        no grid (for models whose lifetimes are monotonic in n).
    mean_excitations : float, optional
        <N> of a heralded ``obs.tau_xx_ns``: the fit then predicts the lifetime a heralded fit
        reports (triexciton share, :mod:`qrspec.charging.heralded`). The neutral reference's
        tau_XX0 must be the true one (:func:`qrspec.charging.heralded.true_tau_xx0`).

    Returns
    -------
    ChargingFit
        Never raises on data that cannot decide: ``success=False`` and ``message`` instead.
    """
    from scipy.stats import chi2 as chi2_dist

    config, free, n_max = _check_common(neutral, config, free, n_max)
    if not isinstance(obs, ChargedObservation):
        raise QrspecError(f"obs={obs!r} must be a ChargedObservation")
    if int(n_grid) < 5:
        raise QrspecError(f"n_grid={n_grid!r} must be >= 5")
    if int(n_boot) < 0:
        raise QrspecError(f"n_boot={n_boot!r} must be >= 0")

    problem = _Problem(config, neutral, [obs], free, n_max,
                       mean_excitations=_check_mean_excitations(mean_excitations))
    nan = math.nan
    flags = []
    base = dict(n=nan, n_lo=nan, n_hi=nan, n_err_delta=nan, n_boot_lo=nan, n_boot_hi=nan,
                tau_a_xx_ns=nan, tau_a_xx_err_ns=nan, tau_a_xx_boot_lo_ns=nan,
                tau_a_xx_boot_hi_ns=nan, tau_a_xx_direct_ns=nan, tau_a_xx_direct_err_ns=nan,
                free_params={}, chi2=nan, dof=0, p_value=nan, variant=config.variant)

    if not problem.neutral_consistent:
        return ChargingFit(**base, flags=("neutral_inconsistent",), success=False,
                           message=f"neutral k_A,XX = {problem.k_axx0_measured:.4g} /ns is "
                                   "significantly <= 0: tau_xx0_ns is not shorter than the "
                                   "radiative 1/(beta_xx k_r)")
    n_obs, n_par = problem.n_obs, len(problem.names)
    dof = n_obs - n_par
    if dof < 0:
        return ChargingFit(**base, flags=("underdetermined",), success=False,
                           message=f"{n_par} free parameters {problem.names} but only {n_obs} "
                                   f"observables {problem.kinds}")

    direct, direct_err = _direct_tau_a(problem, obs, config, neutral)
    if config.variant in ("capped", "power_law") and config.xi_rad == 0 and math.isnan(direct):
        flags.append("no_xx_auger")
    base.update(tau_a_xx_direct_ns=direct, tau_a_xx_direct_err_ns=direct_err)

    # trap-like dim state: radiative ratio consistent with 1 and not with charging
    if obs.rad_ratio is not None:
        z1 = abs(obs.rad_ratio - 1.0) / obs.rad_ratio_err
        zc = abs(obs.rad_ratio - config.beta_xminus) / obs.rad_ratio_err
        if z1 < 2.0 and zc > 2.0:
            return ChargingFit(**base, flags=(*flags, "trap_like"), success=False,
                               message=f"rad_ratio={obs.rad_ratio:.3g}+-{obs.rad_ratio_err:.2g} "
                                       "is consistent with 1 (trap/BC blinking), not with "
                                       "charging; not converted to n_c")

    # multi-start fit
    # grid starts find a second root (uncapped); n_starts < 2 uses only the closed-form starts
    # (capped: exact for n >= 1) or, without them, the default start
    starts = list(np.linspace(0.0, n_max, int(n_starts))) if n_starts >= 2 else []
    if config.variant == "capped":
        starts += _closed_form_starts(problem, obs, config)
    if not starts:
        starts = [float(problem.x0[0])]
    fits = []
    for n0 in starts:
        x0 = problem.x0.copy()
        x0[0] = min(max(n0, 0.0), n_max)
        fits.append(_lsq(problem, x0)[::-1])
    fits.sort(key=lambda t: t[0])
    chi2_min, theta = fits[0]
    others = sorted({round(float(th[0]), 3) for c, th in fits[1:]
                     if c <= chi2_min + 1.0 and abs(th[0] - theta[0]) > 0.05 * max(1, theta[0])
                     and abs(th[0] - theta[0]) > 0.05})
    extras = {}
    if others:
        extras["other_minima"] = others

    # delta method and identifiability
    cov, s = _covariance(problem, theta)
    degenerate = s.size < n_par or s[-1] <= 1e-7 * s[0]
    p_value = float(chi2_dist.sf(chi2_min, dof)) if dof > 0 else nan
    d = problem.values(theta)
    free_out = {}
    for i, name in enumerate(problem.names[1:], start=1):
        free_out[name] = (float(theta[i]), float(math.sqrt(max(cov[i, i], 0.0))))
    base.update(chi2=chi2_min, dof=dof, p_value=p_value, free_params=free_out)

    if degenerate:
        flags.append("degenerate")
        msg = (f"parameters {problem.names} are not all identifiable (singular values "
               f"{np.array2string(s, precision=3)})")
        if config.variant == "capped" and "eps" in free and "gamma" not in free \
                and config.gamma == 1.0:
            extras["eps_n"] = float(d["eps"] * d["n"][0])
            msg = ("capped variant with gamma=1: only eps*n is identifiable "
                   f"(eps*n = {extras['eps_n']:.4g}); fix eps or calibrate A_n from an n=1 period")
        return ChargingFit(**base, flags=tuple(flags), extras=extras, success=False,
                           message=msg)

    n_hat = float(theta[0])
    n_err = float(math.sqrt(max(cov[0, 0], 0.0)))
    tau_a = float(problem.tau_a(theta)[0])
    g = problem.tau_a_jac(theta)[0]
    tau_a_err = float(math.sqrt(max(g @ cov @ g, 0.0)))

    if profile:
        n_lo, n_hi, separate = _profile_interval(problem, theta, chi2_min, int(n_grid))
        if separate:
            flags.append("multiple_solutions")
    else:
        n_lo, n_hi = max(n_hat - n_err, 0.0), min(n_hat + n_err, n_max)
    if others and "multiple_solutions" not in flags:
        flags.append("multiple_solutions")
    if n_lo <= 1e-9:
        flags.append("at_lower_bound")
    if n_hi >= n_max - 1e-9:
        flags.append("at_upper_bound")

    # Auger-signal test (methods.md §1.6 condition 1)
    y, sig_y, zc, sig_z = _auger_signal(problem, theta, obs)
    extras.update(auger_x_per_ns=y, auger_x_snr=y / sig_y, auger_xx_extra_per_ns=zc,
                  auger_xx_snr=zc / sig_z)
    if y / sig_y < 2.0 and zc / sig_z < 2.0:
        flags.append("auger_signal_small")
    for i, name in enumerate(problem.names[1:], start=1):
        if name in _BOUNDS and (theta[i] <= problem.lo[i] + 1e-9
                                or theta[i] >= problem.hi[i] - 1e-9):
            flags.append(f"{name}_at_bound")
    if dof == 0:
        flags.append("no_dof")
        # exactly determined: an exact solution exists unless the bounds exclude it
        if chi2_min > 3.84:  # > 95 % point of chi2(1): no solution within the bounds
            flags.append("poor_fit")
    elif p_value < 0.01:
        flags.append("poor_fit")

    if int(n_boot) > 0:
        base.update(_bootstrap(problem, theta, int(n_boot), seed))

    msg = ""
    success = True
    if "poor_fit" in flags:
        success = False
        msg = (f"model inconsistent with data: chi2={chi2_min:.3g} for dof={dof}"
               + ("; no parameters within the bounds reproduce the data" if dof == 0 else ""))
    elif "auger_signal_small" in flags:
        msg = (f"Auger signal too small (Y/sigma_Y = {y / sig_y:.2g}): n is an upper limit, "
               f"n < {n_hi:.3g}")
    elif "multiple_solutions" in flags:
        msg = "several n fit equally well; interval spans the best one only, see extras"
    base.update(n=n_hat, n_lo=n_lo, n_hi=n_hi, n_err_delta=n_err, tau_a_xx_ns=tau_a,
                tau_a_xx_err_ns=tau_a_err)
    return ChargingFit(**base, flags=tuple(flags), extras=extras, success=success,
                       message=msg)


def _closed_form_starts(problem, obs, config):
    """Capped closed-form estimates of n (from X and from XX) as fit starts."""
    y = 1.0 / obs.tau_x_ns - config.beta_xminus * problem.k_r0 - problem.k_nr0
    knr2 = problem.k_nr0 if config.knr_all_states else 0.0
    cf = capped_closed_form(y, 1.0 / obs.tau_xx_ns - problem.beta0 * problem.k_r0 - knr2,
                            k_a_xx0_per_ns=problem.k_axx0, eps=problem.eps0,
                            gamma=config.gamma)
    return [v for v in (cf["n_from_x"], cf["n_from_xx"]) if np.isfinite(v)]


def _auger_signal(problem, theta, obs, i=0):
    """Auger rate of X^{nc-} and charge-induced XX Auger rate of window i with their errors."""
    d = problem.values(theta)
    p = problem.params(d)
    n_i = float(d["n"][i])
    kr1, _ = _state_rates(p, n_i, 1)
    y = 1.0 / obs.tau_x_ns - float(kr1) - p.k_nr0
    sig_y = obs.tau_x_err_ns / obs.tau_x_ns**2
    kr2, _ = _state_rates(p, n_i, 2)
    knr2 = p.k_nr0 if p.knr_all_states else 0.0
    zc = 1.0 / obs.tau_xx_ns - float(kr2) - knr2 - d["k_a_xx0"]
    sig_z = obs.tau_xx_err_ns / obs.tau_xx_ns**2
    return y, sig_y, zc, sig_z


def _bootstrap(problem, theta, n_boot, seed):
    """Parametric bootstrap of n and tau_A,XX^{nc-} (window 0).

    Gaussian redraw of every observable (correlated neutral block), refit from the estimate;
    16/84 percentiles.
    """
    rng = np.random.default_rng(seed)
    ns, tas = [], []
    tau_rows = np.array([k.startswith("tau") for k in problem.window_kinds], bool)
    for _ in range(n_boot):
        nv = problem.neutral_vals + problem.neutral_chol @ rng.normal(
            size=problem.neutral_vals.size)
        wv = problem.window_vals + rng.normal(0.0, problem.window_errs)
        if np.any(wv[tau_rows] <= 0) or np.any(nv <= 0):
            continue
        th, _ = _lsq(problem.with_observations(nv, wv), theta)
        ns.append(th[0])
        tas.append(problem.tau_a(th)[0])
    nan = math.nan
    if not ns:
        return {}
    return dict(n_boot_lo=float(np.percentile(ns, 15.87)),
                n_boot_hi=float(np.percentile(ns, 84.13)),
                tau_a_xx_boot_lo_ns=float(np.percentile(tas, 15.87)) if tas else nan,
                tau_a_xx_boot_hi_ns=float(np.percentile(tas, 84.13)) if tas else nan)
