"""Closed forms for the simulated photon statistics (used by the tests and for planning).

All expressions are for one charge state with per-level quantum yields ``qy = (QY_X, QY_XX,
QY_XXX)`` and lifetimes ``tau_ns``, Poisson excitation with mean <N> and the cascade capped at
``n_max_cascade`` levels (N' = min(N, K)). m is the number of photons emitted in one pulse.

* ``E[m] = sum_k P(N'=k) sum_{j<=k} QY_j``
* ``E[m(m-1)] = sum_k P(N'=k) [(sum_{j<=k} QY_j)^2 - sum_{j<=k} QY_j^2]``
* pulsed ``g2(0) = E[m(m-1)] / E[m]^2`` (methods.md §2.2; independent of detection
  efficiencies and split, which thin both factorial moments by p_0 p_1).

These factorial moments are computed in one place, :func:`qrspec.fitting.g2_analysis.g2_moments`
(the cascade truncated at ``n_max_cascade`` levels is the QY list cut to that length);
:func:`photon_number_moments` and :func:`expected_g2_zero` are its simulator-facing wrappers.
* time-gated g2(0; T_g): every photon with emission time < T_g is discarded. The photon of
  level j, reached from N' = k, leaves at the sum of the dwell times of levels k..j, a
  hypo-exponential with survival ``S_kj(T)``; a pair (j, j') survives iff the *earlier* photon
  (the higher level) does, so ``E[m(m-1); T] = sum_k P(k) sum_{j != j'} QY_j QY_j' S_k,max(j,j')``.
  For K = 2 this reduces to methods.md §2.3.
"""

from __future__ import annotations

import numpy as np

from qrspec.errors import QrspecError
from qrspec.simulate.cascade import cascade_pmf

__all__ = [
    "dead_time_rate_cps",
    "expected_g2_zero",
    "expected_gated_g2_zero",
    "photon_number_moments",
    "hypoexponential_survival",
]


def _levels(qy, n_max_cascade):
    qy = np.asarray(qy, float)
    if qy.ndim != 1 or qy.size < n_max_cascade:
        raise QrspecError(f"qy={qy.tolist()!r} must hold at least n_max_cascade={n_max_cascade} "
                          "values (X, XX, XXX)")
    return qy[:n_max_cascade]


def photon_number_moments(mean_excitations: float, qy, n_max_cascade: int = 3
                          ) -> tuple[float, float]:
    """(E[m], E[m(m-1)]) of the number of photons emitted per pulse (0, 0 at <N> = 0)."""
    from qrspec.fitting.g2_analysis import g2_moments

    q = _levels(qy, n_max_cascade)
    if mean_excitations == 0:
        return 0.0, 0.0
    return g2_moments(mean_excitations, q)


def expected_g2_zero(mean_excitations: float, qy, n_max_cascade: int = 3) -> float:
    """Pulsed g2(0) = E[m(m-1)] / E[m]^2 (NaN when E[m] = 0)."""
    m1, m2 = photon_number_moments(mean_excitations, qy, n_max_cascade)
    return m2 / (m1 * m1) if m1 > 0 else float("nan")


def hypoexponential_survival(tau_ns, t_ns: float) -> float:
    """P(sum of independent Exp(tau_i) >= t) for distinct ``tau_ns``."""
    lam = 1.0 / np.asarray(tau_ns, float)
    if lam.size == 1:
        return float(np.exp(-lam[0] * t_ns))
    if np.unique(lam).size != lam.size:
        raise QrspecError(f"tau_ns={np.asarray(tau_ns).tolist()!r} must be distinct")
    out = 0.0
    for i in range(lam.size):
        others = np.delete(lam, i)
        out += np.prod(others / (others - lam[i])) * np.exp(-lam[i] * t_ns)
    return float(out)


def expected_gated_g2_zero(mean_excitations: float, qy, tau_ns, gate_ns: float,
                           n_max_cascade: int = 3) -> float:
    """g2(0) after discarding photons emitted before ``gate_ns`` (see module docstring)."""
    q = _levels(qy, n_max_cascade)
    tau = np.asarray(tau_ns, float)[:n_max_cascade]
    pmf = cascade_pmf(mean_excitations, n_max_cascade)
    m1 = m2 = 0.0
    for k in range(1, n_max_cascade + 1):
        # survival of the photon of level j (1-based) reached from N' = k: levels k..j
        surv = [hypoexponential_survival(tau[j - 1:k], gate_ns) for j in range(1, k + 1)]
        for j in range(1, k + 1):
            m1 += pmf[k] * q[j - 1] * surv[j - 1]
            for jj in range(1, k + 1):
                if jj != j:
                    m2 += pmf[k] * q[j - 1] * q[jj - 1] * surv[max(j, jj) - 1]
    return m2 / (m1 * m1) if m1 > 0 else float("nan")


def dead_time_rate_cps(rate_cps, dead_time_ns):
    """Recorded rate of a non-paralysable detector under Poisson input: r / (1 + r tau)."""
    r = np.asarray(rate_cps, float)
    return r / (1.0 + r * np.asarray(dead_time_ns, float) * 1e-9)
