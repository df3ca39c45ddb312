"""Decay models on the periodic (laser-period) time axis.

Two layers:

* closed-form functions of ``time_ns`` (``periodic_exponential``, ``periodic_exgaussian``,
  ``cascade_intensity``): densities used as references and for plotting;
* :class:`ReconvolutionModel`: the binned model used by the fits, ``m_i = sum_k A_k [IRF (*) h_k]_i
  + s IRF_i + b + fixed_i`` on a periodic grid of ``period_bins`` bins, with circular convolution
  (O(n) recursion, :func:`qrspec.fitting._kernels.exp_conv_periodic`; IRF bins taken as point
  masses at their centres, which beat "uniform within the bin" against the exact bin-integrated
  exGaussian: e.g. max error 0.23 % vs 0.56 % of the peak at sigma = 2 bins), a sub-bin shift by
  Catmull-Rom cubic interpolation (C1 in the shift: linear interpolation puts kinks in the
  objective at whole bins, which stalled low-count fits), and the analytic Jacobian.

Amplitudes are photon numbers: each convolved component sums to 1 over one period, so ``A_k`` is
the number of photons of component k per histogram (counted over the full period).

Cascade model (methods.md §2.6, re-derived): with P1 = <N> e^-<N>, P2 = P(N >= 2), rho = eta_XX /
eta_X, D = tau_X - tau_XX, the emitted intensity is a bi-exponential whose photon fractions are
``w_X = (P1 + P2 tau_X / D) / Z`` and ``w_XX = P2 (rho - tau_XX / D) / Z`` with
``Z = P1 + P2 (1 + rho)``; ``w_X + w_XX = 1``. ``w_XX`` is negative (a rise) when
rho < tau_XX / D.
"""

from __future__ import annotations

import math

import numpy as np

from qrspec.fitting import _kernels

MULTI_EXP_ORDER = {"mono": 1, "bi": 2, "tri": 3}


# ---------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------

def periodic_exponential(time_ns, tau_ns: float, period_ns: float):
    """Unit-area periodic exponential density ``exp(-t/tau) / (tau (1 - exp(-T/tau)))``.

    ``time_ns`` is reduced modulo the period; the density integrates to 1 over one period.
    """
    t = np.mod(np.asarray(time_ns, dtype=float), period_ns)
    return np.exp(-t / tau_ns) / (tau_ns * -np.expm1(-period_ns / tau_ns))


def _exgaussian(t, tau_ns, sigma_ns):
    """Unit-area exponential (tau) convolved with a zero-mean Gaussian (sigma), at t."""
    from scipy.special import erfc, erfcx

    t = np.asarray(t, dtype=float)
    z = (sigma_ns / tau_ns - t / sigma_ns) / math.sqrt(2.0)
    out = np.empty_like(t)
    # exp(a) erfc(z) / 2 tau with a = s^2/2tau^2 - t/tau. For z >= 0 use erfcx (no overflow):
    # erfc(z) exp(a) = erfcx(z) exp(a - z^2), a - z^2 = -t^2 / (2 sigma^2); for z < 0 erfc <= 2
    # and a < s^2/2tau^2 - s^2/tau^2 < 0, so the direct form is safe.
    pos = z >= 0
    out[pos] = 0.5 / tau_ns * np.exp(-0.5 * (t[pos] / sigma_ns) ** 2) * erfcx(z[pos])
    a = 0.5 * (sigma_ns / tau_ns) ** 2 - t[~pos] / tau_ns
    out[~pos] = 0.5 / tau_ns * np.exp(a) * erfc(z[~pos])
    return out


def periodic_exgaussian(time_ns, tau_ns: float, sigma_ns: float, t0_ns: float, period_ns: float):
    """Periodic sum of an exponential convolved with a Gaussian IRF centred at ``t0_ns``.

    Unit area per period. Sums the images ``k = -2 .. K`` with ``K`` large enough that the
    neglected tail is below 1e-16 of the peak.
    """
    t = np.mod(np.asarray(time_ns, dtype=float), period_ns) - t0_ns
    n_img = int(math.ceil(40.0 * tau_ns / period_ns)) + 1
    out = np.zeros_like(t)
    for k in range(-2, n_img + 1):
        out += _exgaussian(t + k * period_ns, tau_ns, sigma_ns)
    return out


def poisson_probabilities(mean_excitations: float) -> tuple[float, float]:
    """(P(N = 1), P(N >= 2)) for Poisson excitation with mean ``mean_excitations``."""
    mu = float(mean_excitations)
    p1 = mu * math.exp(-mu)
    p2 = -math.expm1(-mu) - p1
    return p1, p2


def cascade_weights(tau_x_ns: float, tau_xx_ns: float, qy_ratio: float, mean_excitations: float):
    """Photon fractions (w_X, w_XX) of the two exponentials of the X/XX cascade (sum to 1)."""
    p1, p2 = poisson_probabilities(mean_excitations)
    d = tau_x_ns - tau_xx_ns
    z = p1 + p2 * (1.0 + qy_ratio)
    return (p1 + p2 * tau_x_ns / d) / z, p2 * (qy_ratio - tau_xx_ns / d) / z


def cascade_intensity(time_ns, tau_x_ns: float, tau_xx_ns: float, qy_ratio: float,
                      mean_excitations: float, qy_x: float = 1.0):
    """Emitted photons per ns per pulse of the truncated X/XX cascade, t >= 0 (no IRF, no wrap).

    ``I(t) = k_r,XX P_XX(t) + k_r,X P_X(t)`` with ``P_XX = P2 e^{-t/tau_XX}`` and
    ``P_X = P1 e^{-t/tau_X} + P2 tau_X / (tau_X - tau_XX) (e^{-t/tau_X} - e^{-t/tau_XX})``.
    """
    t = np.asarray(time_ns, dtype=float)
    p1, p2 = poisson_probabilities(mean_excitations)
    k_x = qy_x / tau_x_ns
    k_xx = qy_ratio * qy_x / tau_xx_ns
    ex, exx = np.exp(-t / tau_x_ns), np.exp(-t / tau_xx_ns)
    p_xx = p2 * exx
    p_x = p1 * ex + p2 * tau_x_ns / (tau_x_ns - tau_xx_ns) * (ex - exx)
    return k_xx * p_xx + k_x * p_x


# ---------------------------------------------------------------------------------------------
# binned reconvolution model with Jacobian
# ---------------------------------------------------------------------------------------------

class ReconvolutionModel:
    """Binned periodic decay model and its Jacobian in the internal parameters.

    Parameters
    ----------
    kind : {"mono", "bi", "tri", "cascade"}
    n_data : int
        Number of histogram bins (<= ``period_bins``).
    bin_ns : float
    period_bins : int
        Bins per laser period (the periodic grid).
    irf : ndarray or None
        Unit-sum IRF on the periodic grid (length ``period_bins``); ``None`` puts a delta at bin
        ``origin_bin`` (tail fitting: no reconvolution, no shift).
    fit_shift, fit_scatter, fit_background : bool
    mean_excitations : float
        <N> for the cascade model.
    fixed_background : ndarray or None
        Known expected counts added to the model (length ``n_data``).

    Internal parameters (in this order): ``log_tau_k`` (k components; cascade: X then XX),
    amplitudes (multi-exp: ``amp_k`` photons; cascade: ``amp`` and ``qy_ratio``),
    ``background`` (counts/bin), ``shift_bins``, ``scatter`` (photons).
    """

    def __init__(self, kind, n_data, bin_ns, period_bins, irf=None, *, origin_bin=0,
                 fit_shift=True, fit_scatter=False, mean_excitations=None,
                 fixed_background=None):
        self.kind = kind
        self.n_data = int(n_data)
        self.bin_ns = float(bin_ns)
        self.period_bins = int(period_bins)
        self.reconvolve = irf is not None
        if irf is None:
            irf = np.zeros(self.period_bins)
            irf[origin_bin] = 1.0
            fit_shift = False
            fit_scatter = False
        self.irf = np.ascontiguousarray(irf, dtype=float)
        self.has_shift = bool(fit_shift)
        self.has_scatter = bool(fit_scatter)
        self.fixed_background = (None if fixed_background is None
                                 else np.ascontiguousarray(fixed_background, dtype=float))
        if kind == "cascade":
            self.n_tau = 2
            self.p1, self.p2 = poisson_probabilities(mean_excitations)
            names = ["log_tau_x", "log_tau_xx", "amp", "qy_ratio"]
        else:
            self.n_tau = MULTI_EXP_ORDER[kind]
            names = ([f"log_tau_{k + 1}" for k in range(self.n_tau)]
                     + [f"amp_{k + 1}" for k in range(self.n_tau)])
        names.append("background")
        self.i_bg = len(names) - 1
        self.i_shift = self.i_scatter = None
        if self.has_shift:
            names.append("shift_bins")
            self.i_shift = len(names) - 1
        if self.has_scatter:
            names.append("scatter")
            self.i_scatter = len(names) - 1
        self.names = names

    @property
    def n_params(self) -> int:
        """Number of internal parameters (``len(self.names)``)."""
        return len(self.names)

    @property
    def amp_indices(self) -> list:
        """Indices of the amplitude parameters (cascade: the total amplitude)."""
        return [2] if self.kind == "cascade" else list(range(self.n_tau, 2 * self.n_tau))

    @property
    def shift_indices(self) -> list:
        """Index of the IRF shift parameter (empty without a fitted shift)."""
        return [self.i_shift] if self.has_shift else []

    def bounds(self, period_ns, shift_bounds_ns):
        """(lower, upper) arrays of the internal parameters."""
        lo = np.full(self.n_params, -np.inf)
        hi = np.full(self.n_params, np.inf)
        lo[: self.n_tau] = math.log(0.05 * self.bin_ns)
        hi[: self.n_tau] = math.log(20.0 * period_ns)
        if self.kind == "cascade":
            lo[2], lo[3], hi[3] = 0.0, 0.0, 100.0
        else:
            lo[self.n_tau: 2 * self.n_tau] = 0.0
        lo[self.i_bg] = 0.0
        if self.has_shift:
            lo[self.i_shift] = shift_bounds_ns[0] / self.bin_ns
            hi[self.i_shift] = shift_bounds_ns[1] / self.bin_ns
        if self.has_scatter:
            lo[self.i_scatter] = 0.0
        return lo, hi

    def project(self, theta, lo, hi):
        """Clip to the bounds; cascade: also tau_XX <= 0.98 tau_X."""
        theta = np.clip(theta, lo, hi)
        if self.kind == "cascade":
            theta[1] = min(theta[1], theta[0] + math.log(0.98))
        return theta

    def evaluate(self, theta, jacobian=True):
        """Model counts (n_data,) and Jacobian (n_data, n_params) at internal ``theta``.

        Computed by :func:`qrspec.fitting._kernels.model_jacobian` (the code the fit runs): the
        IRF is shifted by ``delta + 1/2`` bin for the exponentials (midpoint convention: IRF bin
        j is a point mass at its centre; the plain discrete convolution is half a bin early) and
        by ``delta`` for the scatter term (the IRF histogram itself). Without an IRF (tail fit)
        the bin-integrated exponential starting at the first fitted bin is exact and nothing is
        shifted. ``jacobian=False`` returns ``(m, None)``.
        """
        return _evaluate(self, theta, jacobian)

    def kernel_arrays(self):
        """``(irf, fixed_bg, pmap, spec, fpar)`` of :mod:`qrspec.fitting._kernels`.

        The objective, iteration limit and start scaling entries of ``spec`` are left 0.
        """
        k = _kernels
        spec = np.zeros(k.S_SIZE, np.int64)
        spec[k.S_KIND] = 1 if self.kind == "cascade" else 0
        spec[k.S_NTAU] = self.n_tau
        spec[k.S_RECONV] = int(self.reconvolve)
        spec[k.S_IBG] = self.i_bg
        spec[k.S_ISHIFT] = -1 if self.i_shift is None else self.i_shift
        spec[k.S_ISCAT] = -1 if self.i_scatter is None else self.i_scatter
        spec[k.S_NDATA] = self.n_data
        fpar = np.zeros(k.F_SIZE)
        fpar[k.F_BIN] = self.bin_ns
        if self.kind == "cascade":
            fpar[k.F_P1], fpar[k.F_P2] = self.p1, self.p2
        fixed = (np.zeros((1, self.n_data)) if self.fixed_background is None
                 else self.fixed_background[None, :])
        pmap = np.arange(self.n_params, dtype=np.int64)[None, :]
        return self.irf[None, :], fixed, pmap, spec, fpar

    def _cascade_weights(self, theta):
        tx, txx = math.exp(theta[0]), math.exp(theta[1])
        rho = theta[3]
        p1, p2 = self.p1, self.p2
        d = tx - txx
        z = p1 + p2 * (1.0 + rho)
        u = tx / d
        v = txx / d
        w = np.array([(p1 + p2 * u) / z, p2 * (rho - v) / z])
        # du/dtau_x = dv/dtau_x = -txx/d^2 ; du/dtau_xx = dv/dtau_xx = tx/d^2 ; w_X + w_XX = 1
        du_dlt = np.array([-txx / d**2 * tx, tx / d**2 * txx])
        dw_dlt = np.array([[p2 * du_dlt[0] / z, -p2 * du_dlt[0] / z],
                           [p2 * du_dlt[1] / z, -p2 * du_dlt[1] / z]])
        dw_drho = np.array([-(p1 + p2 * u) * p2 / z**2, p2 / z - p2 * (rho - v) * p2 / z**2])
        return w, dw_dlt, dw_drho


class GlobalModel:
    """Several detectors' multi-exponential models sharing their lifetimes.

    Parameters: ``log_tau_k`` (shared), then each detector's own amplitudes, background, shift
    and scatter (named ``<name>_det<d>``). Data are the detectors' histograms concatenated.
    """

    def __init__(self, models):
        if models[0].kind == "cascade":
            raise ValueError("GlobalModel supports multi-exponential models only")
        self.models = list(models)
        self.kind = models[0].kind
        self.n_tau = nt = models[0].n_tau
        self.bin_ns = models[0].bin_ns
        names = [f"log_tau_{k + 1}" for k in range(nt)]
        self.maps = []
        for d, m in enumerate(self.models):
            mp = list(range(nt))
            for j in range(nt, m.n_params):
                mp.append(len(names))
                names.append(f"{m.names[j]}_det{d}")
            self.maps.append(np.array(mp))
        self.names = names
        self.offsets = np.cumsum([0] + [m.n_data for m in self.models])
        self.n_data = int(self.offsets[-1])

    @property
    def n_params(self) -> int:
        """Number of global parameters (shared lifetimes plus every detector's own)."""
        return len(self.names)

    @property
    def amp_indices(self) -> list:
        """Global indices of every detector's amplitude parameters."""
        return [int(mp[i]) for m, mp in zip(self.models, self.maps, strict=True)
                for i in m.amp_indices]

    @property
    def shift_indices(self) -> list:
        """Global indices of every detector's IRF shift parameter (empty without shifts)."""
        return [int(mp[i]) for m, mp in zip(self.models, self.maps, strict=True)
                for i in m.shift_indices]

    def project(self, theta, lo, hi):
        """``theta`` clipped into the box ``[lo, hi]``."""
        return np.clip(theta, lo, hi)

    def evaluate(self, theta, jacobian=True):
        """Model counts (n_data,) and Jacobian (n_data, n_params): detectors concatenated."""
        return _evaluate(self, theta, jacobian)

    def kernel_arrays(self):
        """As :meth:`ReconvolutionModel.kernel_arrays`, one row per detector."""
        _, _, _, spec, fpar = self.models[0].kernel_arrays()
        irf = np.vstack([m.irf for m in self.models])
        fixed = np.zeros((len(self.models), self.models[0].n_data))
        pmap = np.array(self.maps, dtype=np.int64)
        return irf, fixed, pmap, spec, fpar


def _evaluate(model, theta, jacobian):
    irf, fixed, pmap, spec, fpar = model.kernel_arrays()
    theta = np.ascontiguousarray(theta, dtype=float)
    m = np.empty(model.n_data)
    jac = np.empty((model.n_data, theta.size))
    work = np.empty((irf.shape[0], 4 + 3 * model.n_tau, irf.shape[1]))
    _kernels.model_jacobian(theta, irf, fixed, pmap, spec, fpar, m, jac, work)
    return m, (jac if jacobian else None)
