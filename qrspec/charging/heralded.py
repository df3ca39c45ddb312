"""What a heralded biexciton lifetime measures at finite <N>: the triexciton share.

The heralded tau_XX (:func:`qrspec.fitting.biexciton.heralded_tau_xx`) fits the first photon t1
of same-period two-detector pairs with one exponential from ``start_ns`` after the rise. At
low <N> every such pair is an XX -> X cascade and t1 ~ Exp(tau_XX). At finite <N> a pulse that
leaves N >= 3 pairs (N > 3 relaxes to XXX at once) cascades XXX -> XX -> X, and two of its three
photons make the pair (to leading order in the detection probability):

* XXX and XX, or XXX and X: t1 is the XXX photon, ~ Exp(tau_XXX);
* XX and X: t1 is the XX photon emitted *after* the XXX decay, ~ Exp(tau_XXX) * Exp(tau_XX)
  (a convolution, slower than either).

Per pulse the pair rates are ``P(N=2) eta_XX eta_X``, ``P(N>=3) eta_XXX (eta_XX + eta_X)`` and
``P(N>=3) eta_XX eta_X`` (eta: emission QYs of the state). The maximum-likelihood lifetime of an
exponential fitted from ``a = start_ns`` to a period much longer than the lifetimes is the mean
excess ``E[t1 - a | t1 > a]`` of this mixture (:func:`heralded_tau_xx_apparent`). For a neutral
rod (tau_X0 9.5 ns, tau_XX0 2.0 ns, tau_XXX0 1.7 ns) it exceeds tau_XX0 by 3.8 % at <N> = 0.2 and
6.7 % at <N> = 0.4 (simulated: +4.6 +- 1.8 % and +6.2 +- 0.5 %). Because k_A,XX0 = 1/tau_XX0 -
beta_XX k_r is a small difference of two large rates, such a bias halves k_A,XX0 and doubles
n_c; :func:`true_tau_xx0` removes it from a neutral measurement and the inversion
(:mod:`qrspec.charging.inverse`, ``mean_excitations=``) predicts the apparent lifetime of every
charged window. Not modelled: three detected photons (third order in the detection
probability), the IRF (the fit starts after it), and the accidental pairs (fitted explicitly).
"""

from __future__ import annotations

import math

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.errors import QrspecError

__all__ = ["heralded_tau_xx_apparent", "true_tau_xx0", "HERALDED_START_NS"]

HERALDED_START_NS = 0.3  # the heralded fit starts this long after the rise (analysis.decay_fits)


def _pair_weights(mean_excitations):
    """P(N = 2) and P(N >= 3) of a Poisson(<N>) excitation."""
    mu = float(mean_excitations)
    if not (math.isfinite(mu) and 0 < mu < 50):
        raise QrspecError(f"mean_excitations={mean_excitations!r} must be in (0, 50)")
    p0 = math.exp(-mu)
    p2 = p0 * mu * mu / 2.0
    # P(N >= 3) as a series at small <N> (1 - p0 - p1 - p2 cancels)
    if mu < 0.5:
        term, tail, k = p0 * mu ** 3 / 6.0, 0.0, 3
        while term > 1e-18 * max(tail, 1e-300):
            tail += term
            k += 1
            term *= mu / k
    else:
        tail = 1.0 - p0 * (1.0 + mu + mu * mu / 2.0)
    return p2, max(tail, 0.0)


def heralded_tau_xx_apparent(tau_x_ns, tau_xx_ns, tau_xxx_ns, qy_x, qy_xx, qy_xxx,
                             mean_excitations: float, start_ns: float = HERALDED_START_NS):
    """The lifetime a heralded tau_XX fit reports at <N> (module docstring).

    Parameters
    ----------
    tau_x_ns, tau_xx_ns, tau_xxx_ns : float or array_like
        Lifetimes of the X, XX and XXX of the charge state (broadcast together).
    qy_x, qy_xx, qy_xxx : float or array_like
        Their emission QYs.
    mean_excitations : float
        <N>.
    start_ns : float
        Start of the fit after the rise.

    Returns
    -------
    ndarray
        Apparent heralded lifetime (ns); ``tau_xx_ns`` itself as <N> -> 0. ``tau_x_ns`` enters
        only through ``qy_x`` (kept for a uniform call).
    """
    p2, p3 = _pair_weights(mean_excitations)
    return _apparent(np.asarray(tau_xx_ns, float), np.asarray(tau_xxx_ns, float),
                     np.asarray(qy_x, float), np.asarray(qy_xx, float),
                     np.asarray(qy_xxx, float), p2, p3, float(start_ns))


def _apparent(t2, t3, e1, e2, e3, p2, p3, a):
    """Mean excess beyond ``a`` of the t1 mixture (the inverse fit calls this per step)."""
    s2, s3 = np.exp(-a / t2), np.exp(-a / t3)
    d = t2 - t3
    close = np.abs(d) < 1e-6 * t2
    if close.any():  # Exp(t3) * Exp(t2) at equal lifetimes: the limit
        dd = np.where(close, 1.0, d)
        surv = np.where(close, (1.0 + a / t2) * s2, (t2 * s2 - t3 * s3) / dd)
        integ = np.where(close, t2 * (2.0 + a / t2) * s2, (t2 * t2 * s2 - t3 * t3 * s3) / dd)
    else:  # survival beyond a of the convolution and its integral from a
        surv = (t2 * s2 - t3 * s3) / d
        integ = (t2 * t2 * s2 - t3 * t3 * s3) / d
    e12 = e2 * e1
    w2 = p2 * e12 * s2
    w3a = p3 * e3 * (e2 + e1) * s3
    den = w2 + w3a + p3 * e12 * surv
    num = w2 * t2 + w3a * t3 + p3 * e12 * integ
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, t2)


def _neutral_apparent(tau_xx0, tau_x0, config, mean_excitations, start_ns):
    """Apparent heralded lifetime of the neutral state whose true tau_XX0 is ``tau_xx0``."""
    from qrspec.charging.forward import _forward_rates, _rates_of

    qy = float(config.qy_x0)
    k_r = qy / tau_x0
    k_nr0 = (1.0 - qy) / tau_x0
    knr2 = k_nr0 if config.knr_all_states else 0.0
    k_a = max(1.0 / tau_xx0 - config.beta_xx * k_r - knr2, 0.0)
    eps = config.eps_effective
    p = _rates_of(config, k_r=k_r, k_nr0=k_nr0, a_n=eps * k_a / 2.0, a_p=(1.0 - eps) * k_a / 2.0)
    f = _forward_rates(p, np.zeros(1))
    return float(heralded_tau_xx_apparent(tau_x0, tau_xx0, f.tau_xxx_ns[0], qy,
                                          f.qy_xx[0], f.qy_xxx[0], mean_excitations,
                                          start_ns))


def true_tau_xx0(tau_xx_measured_ns: float, tau_xx_err_ns: float, tau_x0_ns: float,
                 config: ChargeModelConfig, mean_excitations: float,
                 start_ns: float = HERALDED_START_NS) -> tuple[float, float]:
    """The neutral tau_XX0 whose heralded measurement at <N> gives ``tau_xx_measured_ns``.

    The XXX state of the neutral rod comes from the model (``config``: variant, eps, gamma,
    gamma_h, beta_xx, QY_X0) with k_A,XX0 = 1/tau_XX0 - beta_XX k_r (consistent at every trial
    value); the error is scaled by the slope of the apparent lifetime. The uncertainty of <N>
    and of the model is not propagated.

    Parameters
    ----------
    tau_xx_measured_ns, tau_xx_err_ns : float
        Heralded tau_XX of the neutral periods and its error.
    tau_x0_ns : float
        Neutral exciton lifetime.
    config : ChargeModelConfig
        The charge model.
    mean_excitations : float
        <N>.
    start_ns : float
        Start of the heralded fit after the rise.

    Returns
    -------
    tuple of (float, float)
        ``(tau_xx0_ns, tau_xx0_err_ns)``; the measurement itself when the correction has no
        solution (then the mixture cannot produce the measured value: NaN-free, unchanged).
    """
    from scipy.optimize import brentq

    m, s, tx = float(tau_xx_measured_ns), float(tau_xx_err_ns), float(tau_x0_ns)
    for name, v in (("tau_xx_measured_ns", m), ("tau_x0_ns", tx)):
        if not (math.isfinite(v) and v > 0):
            raise QrspecError(f"{name}={v!r} must be a finite lifetime > 0")

    def g(t):
        return _neutral_apparent(t, tx, config, mean_excitations, start_ns) - m

    lo, hi = 0.5 * m, 1.5 * m
    try:
        if g(lo) * g(hi) > 0:
            return m, s
        t = brentq(g, lo, hi, xtol=1e-6 * m)
    except (ValueError, FloatingPointError):
        return m, s
    h = 1e-4 * t
    slope = (g(t + h) - g(t - h)) / (2 * h)
    return float(t), float(s / slope) if slope > 0 else s
