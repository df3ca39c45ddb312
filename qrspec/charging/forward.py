"""Closed-form forward models of charged excitons and biexcitons (methods.md §1.5, checked).

For a charge number n (continuous, >= 0; n extra electrons) the model gives radiative and
Auger rates of X^{n-} (one pair), XX^{n-} (two pairs) and XXX^{n-} (three pairs), and from them
``tau = 1/(k_r + k_A + k_nr0)``, ``QY = k_r tau``, ``tau_A,XX^{n-} = 1/k_A(XX^{n-})`` and the
low-<N> ``g2(0) = QY(XX^{n-})/QY(X^{n-})`` (Nair-Zhao-Bawendi; at finite <N> the
factorial-moment formula :func:`qrspec.fitting.g2_analysis.g2_moments` on the QYs of
:func:`state_table`). ``A_n = eps k_A,XX/2``, ``A_p = (1-eps) k_A,XX/2``.

Variant C, ``capped`` (default; Pauli filling of two-fold levels, only band-edge pairs
recombine; derived from the engine and checked against it for n = 0..30)::

    X^{n-},  n >= 1:  k_r = k_r [beta_x- + xi (n-1)]      k_A = A_n [1 + gamma (n-1)]
    X^{n-},  n <  1:  k_r = k_r [1 + (beta_x- - 1) n]     k_A = A_n n
    XX^{n-}, n >= 0:  k_r = k_r [beta_xx + 2 xi n]        k_A = 2 A_n (1 + gamma n) + 2 A_p
                                                              = k_A,XX (1 + gamma eps n)
    XXX^{n-}, n >= 0: k_r = k_r [beta_xx + xi (3n + 5)]   k_A = 2 A_n (1 + gamma (n+1))
                                                                + 2 A_p (1 + gamma_h)

Correction to methods.md §1.5: the X^{n-} closed form holds only for n >= 1 (at n = 0 it gives
``k_A = A_n (1 - gamma)`` and ``k_r (2 - xi)``, not the neutral 0 and k_r). For a continuous n
in [0, 1) we interpolate the rates linearly between the integer states n = 0 and n = 1
(X^0: k_r, no Auger; X^-: beta_x- k_r, A_n), which the engine also does for non-integer n.
The XX and XXX forms hold for every n >= 0 because XX already fills both band-edge electron
states. methods.md gives no XXX form; the one above is the engine's band-edge result (the third
hole sits in the next hole level, acceptor weight gamma_h).

Variant U, ``uncapped`` (all carriers equivalent; engine with one level of infinite degeneracy)::

    k_r(X^{n-})   = k_r [1 + (beta_x- - 1) n]     (= (n+1) k_r for beta_x- = 2, as methods.md)
    k_A(X^{n-})   = A_n n (n+1)/2
    k_r(XX^{n-})  = (beta_xx/4) 2 (n+2) k_r
    k_A(XX^{n-})  = (n+2) [(n+1) A_n + A_p] = k_A,XX (n+2)(1 + n eps)/2
    k_r(XXX^{n-}) = (beta_xx/4) 3 (n+3) k_r
    k_A(XXX^{n-}) = (n+3) [3/2 (n+2) A_n + 3 A_p]

(methods.md writes the X radiative count as (n+1) and leaves beta_x- out of U; we let
beta_x- scale each extra electron so that U and C agree for X^- at any beta_x-.)

Variant P, ``power_law`` (phenomenological, for fitting only)::

    k_A(XX^{n-}) = k_A,XX (1 + n/2)^p,   k_A(X^{n-}) = A_n n^q (0 at n = 0),
    k_A(XXX^{n-}) = k_A(XXX^0, capped) (1 + n/2)^p, radiative rates as capped with xi = 0.

``levels``: the engine of :mod:`qrspec.charging.engine` at floor(n) and ceil(n), rates
interpolated linearly.

``k_nr0 = (1 - QY_X0)/tau_X0`` is added to X-type states, and to all states when
``knr_all_states``. Positive charging mirrors electrons and holes (eps -> 1 - eps,
gamma <-> gamma_h).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.errors import QrspecError

__all__ = ["ForwardResult", "forward", "state_table"]


@dataclass(frozen=True)
class _Rates:
    """The rates of one :class:`ChargeModelConfig` as plain floats (ns^-1), charge sign mirrored.

    Internal: built only by :func:`_rates_of` (or by the inverse fit, which varies k_r, A_n,
    A_p and the free parameters); it is not a second parameter set and has no defaults.
    """

    variant: str
    k_r: float
    k_nr0: float
    a_n: float
    a_p: float
    gamma: float
    gamma_h: float
    xi: float
    beta_xminus: float
    beta_xx: float
    power_p: float
    power_q: float
    knr_all_states: bool
    levels_e: tuple
    levels_h: tuple
    temperature_k: float | None


def _rates_of(config: ChargeModelConfig, **given) -> _Rates:
    """Rates of a config, with electrons/holes mirrored for ``sign="positive"``.

    ``given`` may hold ``k_r``, ``k_nr0``, ``a_n``, ``a_p`` (ns^-1, ``a_n``/``a_p`` before
    mirroring) that replace the config's own values; the inverse fit passes all four, so the
    config's neutral lifetimes are then not needed.
    """
    if not {"k_r", "k_nr0", "a_n", "a_p"} <= set(given):
        config.require_neutral_lifetimes()
    k_r = given["k_r"] if "k_r" in given else config.k_r_per_ns
    k_nr0 = given["k_nr0"] if "k_nr0" in given else config.k_nr0_per_ns
    a_n = given["a_n"] if "a_n" in given else config.a_n_per_ns
    a_p = given["a_p"] if "a_p" in given else config.a_p_per_ns
    gamma, gamma_h = config.gamma, config.gamma_h
    lev_e, lev_h = config.levels_e, config.levels_h
    if config.sign == "positive":
        a_n, a_p, gamma, gamma_h, lev_e, lev_h = a_p, a_n, gamma_h, gamma, lev_h, lev_e
    return _Rates(variant=config.variant, k_r=k_r, k_nr0=k_nr0, a_n=a_n, a_p=a_p, gamma=gamma,
                  gamma_h=gamma_h, xi=config.xi_rad, beta_xminus=config.beta_xminus,
                  beta_xx=config.beta_xx, power_p=config.power_p, power_q=config.power_q,
                  knr_all_states=config.knr_all_states, levels_e=lev_e, levels_h=lev_h,
                  temperature_k=config.temperature_k)


def _with_rates(base: _Rates, **changes) -> _Rates:
    """``dataclasses.replace(base, **changes)`` without the generated ``__init__``.

    The inverse fit builds a :class:`_Rates` per model evaluation (~10^3 per particle) and
    replace's per-field machinery was a tenth of the fit's time; ``_Rates`` has no checks in
    ``__init__`` and no ``__post_init__``, so the fields (the same objects) are all there is.
    """
    new = object.__new__(_Rates)
    new.__dict__.update(base.__dict__)
    new.__dict__.update(changes)
    return new


def _capped(p, n, m):
    if m == 1:
        hi = n >= 1
        nm1 = n - 1
        kr = np.where(hi, p.beta_xminus + p.xi * nm1, 1 + (p.beta_xminus - 1) * n)
        ka = np.where(hi, p.a_n * (1 + p.gamma * nm1), p.a_n * n)
        return p.k_r * kr, ka
    if m == 2:
        return (p.k_r * (p.beta_xx + 2 * p.xi * n),
                2 * p.a_n * (1 + p.gamma * n) + 2 * p.a_p)
    return (p.k_r * (p.beta_xx + p.xi * (3 * n + 5)),
            2 * p.a_n * (1 + p.gamma * (n + 1)) + 2 * p.a_p * (1 + p.gamma_h))


def _uncapped(p, n, m):
    if m == 1:
        return p.k_r * (1 + (p.beta_xminus - 1) * n), p.a_n * n * (n + 1) / 2
    if m == 2:
        return p.k_r * p.beta_xx / 4 * 2 * (n + 2), (n + 2) * ((n + 1) * p.a_n + p.a_p)
    return p.k_r * p.beta_xx / 4 * 3 * (n + 3), (n + 3) * (1.5 * (n + 2) * p.a_n + 3 * p.a_p)


def _power_law(p, n, m):
    kr, _ = _capped(replace(p, xi=0.0), n, m)
    growth = (1 + n / 2) ** p.power_p
    if m == 1:
        pos = n > 0
        return kr, np.where(pos, p.a_n * np.where(pos, n, 1.0) ** p.power_q, 0.0)
    if m == 2:
        return kr, (2 * p.a_n + 2 * p.a_p) * growth
    return kr, (2 * p.a_n * (1 + p.gamma) + 2 * p.a_p * (1 + p.gamma_h)) * growth


def _levels(p, n, m):
    from qrspec.charging.engine import state_rates

    lo = np.floor(n).astype(int)
    frac = n - lo
    cache = {}

    def at(k):
        if k not in cache:
            cache[k] = state_rates(int(k), m, k_r=p.k_r, a_n=p.a_n, a_p=p.a_p, gamma=p.gamma,
                                   gamma_h=p.gamma_h, xi=p.xi, beta_xminus=p.beta_xminus,
                                   beta_xx=p.beta_xx, levels_e=p.levels_e,
                                   levels_h=p.levels_h, temperature_k=p.temperature_k)
        return cache[k]

    kr = np.empty(n.shape)
    ka = np.empty(n.shape)
    for idx in np.ndindex(n.shape):
        r0 = at(lo[idx])
        r1 = at(lo[idx] + 1) if frac[idx] > 0 else r0
        f = frac[idx]
        kr[idx] = (1 - f) * r0[0] + f * r1[0]
        ka[idx] = (1 - f) * r0[1] + f * r1[1]
    return kr, ka


_VARIANT_FUNCS = {"capped": _capped, "uncapped": _uncapped, "power_law": _power_law,
                  "levels": _levels}


def _state_rates(params: _Rates, n, m: int):
    """(k_r, k_A) of the m-pair state for charge numbers n (array), without k_nr0. ns^-1."""
    n = np.asarray(n, dtype=float)
    return _VARIANT_FUNCS[params.variant](params, n, m)


@dataclass(frozen=True, eq=False)
class ForwardResult:
    """Model prediction per charge number (arrays of the shape of ``n``; rates in ns^-1).

    Attributes
    ----------
    n : ndarray
        Charge numbers.
    k_r_x_per_ns, k_a_x_per_ns, tau_x_ns, qy_x : ndarray
        X^{n-}: radiative and Auger rate, lifetime, emission QY.
    k_r_xx_per_ns, k_a_xx_per_ns, tau_xx_ns, qy_xx : ndarray
        XX^{n-}.
    k_r_xxx_per_ns, k_a_xxx_per_ns, tau_xxx_ns, qy_xxx : ndarray
        XXX^{n-}.
    tau_a_x_ns, tau_a_xx_ns : ndarray
        Auger lifetimes 1/k_A of X^{n-} (inf at n = 0) and XX^{n-}.
    g2_zero : ndarray
        Low-<N> pulsed g2(0) = QY_XX/QY_X.
    rad_ratio : ndarray
        Radiative-rate ratio k_r(X^{n-})/k_r (what methods.md §2.8 measures).
    """

    n: np.ndarray
    k_r_x_per_ns: np.ndarray
    k_a_x_per_ns: np.ndarray
    tau_x_ns: np.ndarray
    qy_x: np.ndarray
    k_r_xx_per_ns: np.ndarray
    k_a_xx_per_ns: np.ndarray
    tau_xx_ns: np.ndarray
    qy_xx: np.ndarray
    k_r_xxx_per_ns: np.ndarray
    k_a_xxx_per_ns: np.ndarray
    tau_xxx_ns: np.ndarray
    qy_xxx: np.ndarray
    tau_a_x_ns: np.ndarray
    tau_a_xx_ns: np.ndarray
    g2_zero: np.ndarray
    rad_ratio: np.ndarray


def _check_n(n):
    arr = np.asarray(n, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise QrspecError(f"n={n!r} must be finite charge numbers >= 0")
    return arr


def _forward_rates(params: _Rates, n) -> ForwardResult:
    """:func:`forward` on already-built :class:`_Rates` (no validation)."""
    n = np.asarray(n, dtype=float)
    out = {}
    for m, tag in ((1, "x"), (2, "xx"), (3, "xxx")):
        kr, ka = _state_rates(params, n, m)
        kr = np.broadcast_to(kr, n.shape).astype(float)
        ka = np.broadcast_to(ka, n.shape).astype(float)
        knr = params.k_nr0 if (m == 1 or params.knr_all_states) else 0.0
        tau = 1.0 / (kr + ka + knr)
        out[f"k_r_{tag}_per_ns"] = kr
        out[f"k_a_{tag}_per_ns"] = ka
        out[f"tau_{tag}_ns"] = tau
        out[f"qy_{tag}"] = kr * tau
    with np.errstate(divide="ignore"):
        out["tau_a_x_ns"] = np.where(out["k_a_x_per_ns"] > 0,
                                     1.0 / np.maximum(out["k_a_x_per_ns"], 1e-300), np.inf)
        out["tau_a_xx_ns"] = np.where(out["k_a_xx_per_ns"] > 0,
                                      1.0 / np.maximum(out["k_a_xx_per_ns"], 1e-300), np.inf)
    out["g2_zero"] = out["qy_xx"] / out["qy_x"]
    out["rad_ratio"] = out["k_r_x_per_ns"] / params.k_r
    return ForwardResult(n=n, **out)


def forward(config: ChargeModelConfig, n) -> ForwardResult:
    """Rates, lifetimes, QYs, Auger lifetimes and g2(0) of X^{n-}, XX^{n-}, XXX^{n-}.

    Parameters
    ----------
    config : ChargeModelConfig
        The model, with its neutral lifetimes given.
    n : float or array_like
        Charge numbers (>= 0, continuous allowed).

    Returns
    -------
    ForwardResult
    """
    if not isinstance(config, ChargeModelConfig):
        raise QrspecError(f"config={config!r} must be a ChargeModelConfig")
    return _forward_rates(_rates_of(config), _check_n(n))


def state_table(config: ChargeModelConfig, n_max: int):
    """:class:`qrspec.charging.states.StateTable`: tau_ns[n, m-1], qy[n, m-1], n = 0..n_max."""
    from qrspec.charging.states import StateTable

    if isinstance(n_max, bool) or int(n_max) != n_max or n_max < 0:
        raise QrspecError(f"n_max={n_max!r} must be an integer >= 0")
    res = forward(config, np.arange(int(n_max) + 1, dtype=float))
    tau = np.stack([res.tau_x_ns, res.tau_xx_ns, res.tau_xxx_ns], axis=1)
    qy = np.stack([res.qy_x, res.qy_xx, res.qy_xxx], axis=1)
    return StateTable(tau, qy)
