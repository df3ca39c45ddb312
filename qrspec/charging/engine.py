"""General level-filling enumeration engine for radiative and Auger rates (methods.md §1.4).

This is the reference implementation: every closed form in :mod:`qrspec.charging.forward`
is a special case of it, and the tests compare them state by state.

A state has ``n_extra`` extra electrons and ``n_pairs`` electron-hole pairs, i.e.
``N_e = n_extra + n_pairs`` electrons and ``N_h = n_pairs`` holes. Carriers fill confined
levels in order (degeneracy ``g`` per level; two-fold spin levels by default), or, with a
temperature, are Boltzmann-averaged over all configurations (weight = number of microstates
``prod C(g_l, o_l)`` times ``exp(-E/kT)``).

Counting rule (§1.1, checked): a triple (electron e_i, hole h_j, third carrier c) contributes
``w_n`` if c is an electron and ``w_p`` if c is a hole, with ``w_n = A_n/2`` and
``w_p = A_p/2`` so that X- (2e, 1h) gives A_n, X+ gives A_p and XX gives 2 A_n + 2 A_p. With
levels, only pairs allowed by ``M_A`` recombine (band edge only by default) and an acceptor in
level l is weighted ``a_e[l]`` (1 at the band edge, gamma above) or ``a_h[l]``:

    k_A = sum_{le,lh} o_e[le] o_h[lh] M_A[le,lh] (w_n (S_e - a_e[le]) + w_p (S_h - a_h[lh]))
    S_e = sum_l a_e[l] o_e[l],  S_h = sum_l a_h[l] o_h[l]

which is methods.md §1.4 step 3 with the Kronecker delta summed out.

Radiative rate. The engine counts optically allowed pairs, ``c00 = o_e[0] o_h[0]`` band-edge
pairs plus ``xi`` times every other pair (§1.4 step 2). The measured scalings enter through
the band-edge count only (methods.md does not say how beta and the counting combine; this is
our choice, documented in docs/charging_model.md): for one e-h pair (X-type states)
``f(c) = c`` for c <= 1 and ``1 + (c - 1)(beta_xminus - 1)`` above, so X: 1, X-: beta_xminus;
for two or more pairs ``f(c) = c beta_xx / 4`` so XX: beta_xx. With the default betas 2 and 4
``f(c) = c``, the pure count.

Positive charging (extra holes) is the mirror image: call with electrons and holes swapped
(``A_n <-> A_p``, ``gamma <-> gamma_h``, ``levels_e <-> levels_h``); the model layer does this.
"""

from __future__ import annotations

import math

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["fill_levels", "configurations", "state_rates", "radiative_count_scale"]

_KB_MEV_PER_K = 0.08617333262  # Boltzmann constant, meV/K
_MAX_CONFIGS = 200_000


def fill_levels(n_carriers: int, degeneracies) -> np.ndarray:
    """Ground-state occupations: fill ``n_carriers`` into levels of the given degeneracies."""
    occ = np.zeros(len(degeneracies), dtype=np.int64)
    left = int(n_carriers)
    for i, g in enumerate(degeneracies):
        take = min(int(g), left)
        occ[i] = take
        left -= take
        if left == 0:
            break
    if left > 0:
        raise QrspecError(f"n_carriers={n_carriers} exceeds the capacity "
                          f"{int(sum(degeneracies))} of the level list; add levels")
    return occ


def _thermal_configs(n_carriers, degeneracies, energies_mev, kt_mev):
    """All occupation vectors within ~25 kT of the ground configuration, with weights."""
    g = [int(x) for x in degeneracies]
    e = [float(x) for x in energies_mev]
    ground = fill_levels(n_carriers, g)
    e_ground = float(np.dot(ground, e))
    cutoff = e_ground + 25.0 * kt_mev  # exp(-25) ~ 1e-11: negligible weight
    # levels that can ever be occupied below the cutoff: E_l <= cutoff - (E_ground minus top)
    n_lev = len(g)
    out = []
    occ = [0] * n_lev

    def rec(level, left, energy, mult):
        if len(out) > _MAX_CONFIGS:
            raise QrspecError(f"temperature_k gives more than {_MAX_CONFIGS} configurations; "
                              "use fewer levels or a lower temperature")
        if left == 0:
            out.append((mult * math.exp(-(energy - e_ground) / kt_mev), np.array(occ)))
            return
        if level >= n_lev:
            return
        # minimal energy to place `left` carriers from this level on
        for k in range(min(g[level], left), -1, -1):
            new_e = energy + k * e[level]
            # lower bound of the remaining energy: fill the next levels in order
            rest, lb = left - k, new_e
            for j in range(level + 1, n_lev):
                if rest == 0:
                    break
                t = min(g[j], rest)
                lb += t * e[j]
                rest -= t
            if rest > 0 or lb > cutoff:
                continue
            occ[level] = k
            rec(level + 1, left - k, new_e, mult * math.comb(g[level], k))
            occ[level] = 0

    rec(0, int(n_carriers), 0.0, 1.0)
    w = np.array([c[0] for c in out])
    return w / w.sum(), [c[1] for c in out]


def configurations(n_carriers, degeneracies, energies_mev=None, temperature_k=None):
    """(weights, occupation vectors) of the carriers: one ground configuration or thermal set."""
    if temperature_k is None:
        return np.ones(1), [fill_levels(n_carriers, degeneracies)]
    if energies_mev is None:
        raise QrspecError("temperature_k given but energies_mev=None")
    return _thermal_configs(n_carriers, degeneracies, energies_mev,
                            _KB_MEV_PER_K * float(temperature_k))


def radiative_count_scale(count: float, n_pairs: int, beta_xminus=2.0, beta_xx=4.0) -> float:
    """Map the band-edge pair count to a radiative rate in units of k_r (see module doc)."""
    if n_pairs <= 1:
        return count if count <= 1.0 else 1.0 + (count - 1.0) * (beta_xminus - 1.0)
    return count * beta_xx / 4.0


def state_rates(n_extra: int, n_pairs: int, *, k_r: float, a_n: float, a_p: float,
                gamma: float = 1.0, gamma_h: float = 1.0, xi: float = 0.0,
                beta_xminus: float = 2.0, beta_xx: float = 4.0,
                levels_e=None, levels_h=None, temperature_k=None,
                auger_pairs: str = "band_edge"):
    """Radiative and Auger rate of the state with ``n_extra`` extra electrons, ``n_pairs`` pairs.

    Parameters
    ----------
    n_extra, n_pairs : int
        Extra electrons (>= 0) and electron-hole pairs (>= 1).
    k_r, a_n, a_p : float
        Neutral exciton radiative rate and the negative / positive trion Auger rates, ns^-1.
    gamma, gamma_h : float
        Acceptor weight of an electron / a hole above the band edge.
    xi : float
        Radiative weight of every pair other than band-edge/band-edge.
    beta_xminus, beta_xx : float
        Radiative scalings applied to the band-edge count (see module doc).
    levels_e, levels_h : sequence of (degeneracy, energy_meV), optional
        Level ladders; default 64 two-fold levels. One level of huge degeneracy gives the
        "no Pauli" (uncapped) limit.
    temperature_k : float, optional
        Boltzmann-average over configurations.
    auger_pairs : {"band_edge", "all"}
        Which pairs may recombine by Auger (``M_A``).

    Returns
    -------
    k_r_state, k_a_state : float
        Rates in ns^-1 (no k_nr0; the model layer adds it).
    """
    if int(n_extra) != n_extra or n_extra < 0:
        raise QrspecError(f"n_extra={n_extra!r} must be an integer >= 0")
    if int(n_pairs) != n_pairs or n_pairs < 1:
        raise QrspecError(f"n_pairs={n_pairs!r} must be an integer >= 1")
    if auger_pairs not in ("band_edge", "all"):
        raise QrspecError(f"auger_pairs={auger_pairs!r} must be 'band_edge' or 'all'")
    levels_e = ((2, 0.0),) * 64 if levels_e is None else tuple(levels_e)
    levels_h = ((2, 0.0),) * 64 if levels_h is None else tuple(levels_h)
    g_e = [int(g) for g, _ in levels_e]
    g_h = [int(g) for g, _ in levels_h]
    w_e, conf_e = configurations(n_extra + n_pairs, g_e, [e for _, e in levels_e],
                                 temperature_k)
    w_h, conf_h = configurations(n_pairs, g_h, [e for _, e in levels_h], temperature_k)
    n_le, n_lh = len(g_e), len(g_h)
    a_e = np.full(n_le, float(gamma))
    a_e[0] = 1.0
    a_h = np.full(n_lh, float(gamma_h))
    a_h[0] = 1.0
    if auger_pairs == "band_edge":
        m_a = np.zeros((n_le, n_lh))
        m_a[0, 0] = 1.0
    else:
        m_a = np.ones((n_le, n_lh))
    # all (electron config, hole config) pairs at once; k_A is bilinear in the occupations:
    # k_A = w_n (o_e * (S_e - a_e))^T M_A o_h + w_p o_e^T M_A (o_h * (S_h - a_h))
    oe = np.array(conf_e, dtype=float)  # (K_e, L_e)
    oh = np.array(conf_h, dtype=float)  # (K_h, L_h)
    s_e = oe @ a_e
    s_h = oh @ a_h
    t1 = (oe * (s_e[:, None] - a_e[None, :])) @ m_a @ oh.T
    t2 = oe @ m_a @ (oh * (s_h[:, None] - a_h[None, :])).T
    k_a = (a_n / 2.0) * t1 + (a_p / 2.0) * t2  # (K_e, K_h)
    c00 = np.outer(oe[:, 0], oh[:, 0])
    other = np.outer(oe.sum(axis=1), oh.sum(axis=1)) - c00  # pairs with weight M_r = xi
    f = np.vectorize(lambda c: radiative_count_scale(c, n_pairs, beta_xminus, beta_xx))(c00)
    kr = f + xi * other
    weights = np.outer(w_e, w_h)
    kr_tot = float(np.sum(weights * kr))
    ka_tot = float(np.sum(weights * k_a))
    return k_r * kr_tot, ka_tot
