"""CW antibunching: fit of the dip of a cross-correlation (methods.md section 9.2).

Model, per lag bin ``[e_i, e_{i+1})`` of a :class:`~qrspec.stats.correlation.G2Curve`::

    mu_i = R * B * integral_{e_i}^{e_{i+1}} [1 - a exp(-|tau - tau0| / tau_r)] dtau
    g2(tau) = 1 - (1 - g2(0)) exp(-|tau - tau0| / tau_r),   a = 1 - g2(0)

with ``R = N_0 N_1 / T`` (pairs per ns of uncorrelated photons; ``G2Curve.normalization /
bin_ns``), fitted by Poisson maximum likelihood (deviance) with the exact bin integral; errors
from the Fisher information at the optimum (coverage checked on simulated populations:
``scripts/validate_hbt.py``). Optionally the dip is convolved with the Gaussian timing jitter of
the two detectors (``jitter_ns``: the standard deviation of the lag jitter).

Corrections to methods.md section 9.2:

* The baseline ``B`` is fitted, not fixed at 1 by the normalisation ``N_0 N_1 dtau / T``:
  blinking raises the correlation at lags of microseconds to milliseconds (bunching), so on the
  fitted window ``g2(inf)`` is ``B > 1`` and a fixed normalisation biases g2(0) upwards by
  ``B - 1``. ``g2(0)`` here is relative to the baseline (the dip depth), and ``B`` is reported.
* Background correction: for uncorrelated background the *dip depth* scales, ``1 - g2_meas(0)
  = rho_0 rho_1 (1 - g2(0))`` with ``rho_d = S_d / (S_d + B_d)`` per detector, which is the
  addendum's ``g2_meas - 1 = rho^2 (g2 - 1)``; ``g2_0_corrected = 1 - a / (rho_0 rho_1)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.validate import finite_float, interval

__all__ = ["AntibunchingFit", "fit_antibunching"]

logger = logging.getLogger(__name__)

_MIN_PAIRS = 100


@dataclass(frozen=True, eq=False)
class AntibunchingFit:
    """Result of :func:`fit_antibunching`.

    Values are NaN, with ``success=False`` and a message, when the data cannot define them.

    Attributes
    ----------
    g2_0, g2_0_err : float
        Dip bottom ``1 - a`` relative to the baseline, and its 1-sigma error.
    rise_time_ns, rise_time_err_ns : float
        ``tau_r`` (``1 / (k_exc + k_rad)`` for a two-level emitter) and its error (NaN when
        there is no dip to define it).
    tau0_ns, tau0_err_ns : float
        Lag of the dip centre (the residual detector delay).
    baseline, baseline_err : float
        ``B``: the fitted ``g2`` far from the dip on the fitted window.
    g2_0_corrected, g2_0_corrected_err : float
        Background-corrected g2(0) (NaN without ``background_cps``).
    rho : tuple of float
        Signal fractions ``S / (S + B)`` used (NaN without ``background_cps``).
    fit_range_ns : tuple of float
        Lag window fitted.
    n_pairs : int
        Pairs in the fitted window.
    deviance : float
        Poisson deviance at the optimum.
    dof : int
        Fitted bins minus 4.
    lag_ns, model_counts : ndarray
        Bin centres of the fitted window and the model there.
    covariance : ndarray, shape (4, 4)
        Covariance of ``(B, a, tau0_ns, tau_r_ns)``.
    success : bool
    message : str
    """

    g2_0: float = math.nan
    g2_0_err: float = math.nan
    rise_time_ns: float = math.nan
    rise_time_err_ns: float = math.nan
    tau0_ns: float = math.nan
    tau0_err_ns: float = math.nan
    baseline: float = math.nan
    baseline_err: float = math.nan
    g2_0_corrected: float = math.nan
    g2_0_corrected_err: float = math.nan
    rho: tuple = (math.nan, math.nan)
    fit_range_ns: tuple = (math.nan, math.nan)
    n_pairs: int = 0
    deviance: float = math.nan
    dof: int = 0
    lag_ns: np.ndarray | None = None
    model_counts: np.ndarray | None = None
    covariance: np.ndarray | None = None
    success: bool = False
    message: str = ""


class _Model:
    """Bin-integrated dip model and its Jacobian on fixed edges (optionally jitter-convolved)."""

    def __init__(self, edges, rate_per_ns, jitter_ns):
        self.e = edges
        self.w = np.diff(edges)
        self.r = rate_per_ns
        self.kernel = None
        if jitter_ns > 0:
            b = float(self.w.mean())
            half = int(math.ceil(4 * jitter_ns / b))
            x = np.arange(-half, half + 1) * b
            k = np.exp(-0.5 * (x / jitter_ns) ** 2)
            self.kernel = k / k.sum()

    def _conv(self, v):
        if self.kernel is None:
            return v
        h = self.kernel.size // 2
        pad = np.concatenate([np.full(h, v[0]), v, np.full(h, v[-1])])
        return np.convolve(pad, self.kernel, mode="valid")

    def __call__(self, theta, jac=False):
        b, a, t0, tr = theta
        u = self.e - t0
        au = np.abs(u)
        ex = np.exp(-au / tr)
        g = np.sign(u) * tr * (1 - ex)  # antiderivative of exp(-|u|/tr)
        integ = self._conv(np.diff(g))
        mu = self.r * b * (self.w - a * integ)
        if not jac:
            return mu
        d_t0 = self._conv(-np.diff(ex))  # d integ / d tau0
        dg_tr = np.sign(u) * ((1 - ex) - au / tr * ex)
        d_tr = self._conv(np.diff(dg_tr))
        j = np.empty((mu.size, 4))
        j[:, 0] = self.r * (self.w - a * integ)
        j[:, 1] = -self.r * b * integ
        j[:, 2] = -self.r * b * a * d_t0
        j[:, 3] = -self.r * b * a * d_tr
        return mu, j


def _deviance(c, mu):
    mu = np.maximum(mu, 1e-300)
    pos = c > 0
    return 2.0 * float((mu - c).sum() + (c[pos] * np.log(c[pos] / mu[pos])).sum())


def fit_antibunching(curve, *, fit_range_ns=None, background_cps=None, jitter_ns: float = 0.0,
                     tau0_range_ns=None) -> AntibunchingFit:
    """Fit ``g2(tau) = B [1 - (1 - g2(0)) exp(-|tau - tau0| / tau_r)]`` to a CW cross-correlation.

    Parameters
    ----------
    curve : G2Curve
        Cross-correlation in ``"cross"`` mode (``qrspec.stats.correlation.g2(photons,
        max_lag_ns=..., bin_ns=...)``), bins much narrower than the rise time.
    fit_range_ns : (float, float), optional
        Lag window (default: the whole curve).
    background_cps : (float, float), optional
        Uncorrelated background rate of each detector (dark counts, scattered light) for
        ``g2_0_corrected``.
    jitter_ns : float
        Standard deviation of the Gaussian lag jitter (both detectors' timing jitter in
        quadrature); 0: none.
    tau0_range_ns : (float, float), optional
        Where the dip centre may lie (default: the middle half of the fitted window).

    Returns
    -------
    AntibunchingFit
    """
    from scipy.optimize import minimize

    from qrspec.stats.correlation import G2Curve

    if not isinstance(curve, G2Curve):
        raise QrspecError(f"curve={type(curve).__name__} must be a G2Curve")
    if curve.mode != "cross":
        raise QrspecError(f"curve.mode={curve.mode!r} must be 'cross' for an antibunching fit")
    jitter = finite_float("jitter_ns", jitter_ns)
    if jitter < 0:
        raise QrspecError(f"jitter_ns={jitter_ns!r} must be >= 0")
    edges = curve.edges_ns
    if fit_range_ns is None:
        lo, hi = float(edges[0]), float(edges[-1])
    else:
        lo, hi = interval("fit_range_ns", fit_range_ns)
    sel = np.flatnonzero((edges[:-1] >= lo - 1e-9) & (edges[1:] <= hi + 1e-9))
    rng_ns = (lo, hi)
    if background_cps is not None:
        bg = np.asarray(background_cps, float)
        if bg.shape != (2,) or not np.all(np.isfinite(bg)) or np.any(bg < 0):
            raise QrspecError(f"background_cps={background_cps!r} must be two finite rates "
                              ">= 0 (one per detector)")
    t0_range = None if tau0_range_ns is None else interval("tau0_range_ns", tau0_range_ns)
    if sel.size < 8:
        return AntibunchingFit(fit_range_ns=rng_ns, message=f"fit_range_ns={rng_ns!r} holds "
                               f"{sel.size} bins (< 8)")
    e = edges[sel[0]:sel[-1] + 2]
    c = curve.counts[sel].astype(np.float64)
    n_pairs = int(c.sum())
    norm = curve.normalization
    if not (norm > 0) or n_pairs < _MIN_PAIRS:
        return AntibunchingFit(fit_range_ns=rng_ns, n_pairs=n_pairs,
                               message=f"{n_pairs} pairs in the fitted window (< {_MIN_PAIRS})")
    rate = norm / curve.bin_ns
    model = _Model(e, rate, jitter)
    lag = 0.5 * (e[:-1] + e[1:])
    width = float(e[-1] - e[0])
    t0_lo, t0_hi = (lo + width / 4, hi - width / 4) if t0_range is None else t0_range
    bin_ns = float(np.diff(e).mean())
    tr_lo, tr_hi = 0.25 * bin_ns, width / 4

    # starting values: baseline from the outer quarter, dip centre from a smoothed minimum,
    # then a grid over tau_r with (B, a) by linear least squares
    outer = (lag < lo + width / 8) | (lag > hi - width / 8)
    b0 = max(c[outer].mean() / (rate * bin_ns), 1e-6) if outer.any() else 1.0
    k = max(1, int(round(1.0 / bin_ns)))
    smooth = np.convolve(c, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    inside = (lag >= t0_lo) & (lag <= t0_hi)
    t00 = float(lag[inside][np.argmin(smooth[inside])]) if inside.any() else 0.5 * (lo + hi)
    best = None
    for tr in np.geomspace(max(tr_lo, bin_ns), tr_hi, 24):
        integ = np.diff(e) - model(np.array([1.0, 1.0, t00, tr])) / rate  # B = a = 1
        x = np.column_stack([rate * np.diff(e), -rate * integ])
        coef, *_ = np.linalg.lstsq(x, c, rcond=None)
        bb = max(coef[0], 1e-6 * b0)
        aa = float(np.clip(coef[1] / bb, -1.0, 1.0))
        th = np.array([bb, aa, t00, tr])
        d = _deviance(c, np.maximum(model(th), 1e-12))
        if best is None or d < best[0]:
            best = (d, th)
    theta0 = best[1]

    def fun(th):
        mu, j = model(th, jac=True)
        if np.any(mu <= 0):
            return 1e300, np.zeros(4)
        grad = 2.0 * ((1.0 - c / mu)[:, None] * j).sum(axis=0)
        return _deviance(c, mu), grad

    bounds = [(1e-9, None), (-20.0, 1.0), (t0_lo, t0_hi), (tr_lo, tr_hi)]
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10})
    th = res.x
    mu, j = model(th, jac=True)
    if not np.all(np.isfinite(mu)) or np.any(mu <= 0):
        return AntibunchingFit(fit_range_ns=rng_ns, n_pairs=n_pairs,
                               message=f"antibunching fit failed: {res.message}")
    info = j.T @ (j / mu[:, None])  # Fisher information of the Poisson likelihood
    with np.errstate(all="ignore"):
        try:
            cov = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            cov = np.full((4, 4), np.nan)
    err = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))
    messages = []
    b, a, t0, tr = (float(x) for x in th)
    at_bound = [name for name, x, (bl, bh) in zip(("baseline", "1 - g2(0)", "tau0_ns",
                                                     "rise_time_ns"), th, bounds, strict=True)
                if (bl is not None and abs(x - bl) <= 1e-6 * max(1, abs(bl)))
                or (bh is not None and abs(x - bh) <= 1e-6 * max(1, abs(bh)))]
    rise_err, t0_err = float(err[3]), float(err[2])
    if abs(a) < 2 * err[1] or not np.isfinite(err[1]):
        # no significant dip: its width and centre are not defined by the data
        rise_err = t0_err = math.nan
        messages.append("no significant dip: rise time and dip centre undefined")
    if at_bound:
        messages.append(f"at a bound: {', '.join(at_bound)}")
        if "1 - g2(0)" in at_bound:  # g2(0) = 0 on the bound: one-sided, error not Gaussian
            messages.append("g2(0) at its bound 0: error from the Fisher information is "
                            "one-sided")
    g_corr = g_corr_err = math.nan
    rho = (math.nan, math.nan)
    if background_cps is not None and curve.duration_s > 0:
        rates = np.asarray(curve.n_photons, float) / curve.duration_s
        rho_arr = 1.0 - bg / np.where(rates > 0, rates, np.nan)
        rho = (float(rho_arr[0]), float(rho_arr[1]))
        rr = rho[0] * rho[1]
        if rr > 0:
            g_corr = 1.0 - a / rr
            g_corr_err = float(err[1]) / rr
        else:
            messages.append(f"background_cps={tuple(bg.tolist())} leaves no signal "
                            f"(rho={rho})")
    dev = _deviance(c, mu)
    return AntibunchingFit(
        g2_0=1.0 - a, g2_0_err=float(err[1]), rise_time_ns=tr, rise_time_err_ns=rise_err,
        tau0_ns=t0, tau0_err_ns=t0_err, baseline=b, baseline_err=float(err[0]),
        g2_0_corrected=g_corr, g2_0_corrected_err=g_corr_err, rho=rho, fit_range_ns=rng_ns,
        n_pairs=n_pairs, deviance=dev, dof=int(c.size - 4), lag_ns=lag, model_counts=mu,
        covariance=cov, success=True, message="; ".join(messages))
