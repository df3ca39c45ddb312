"""Gain and lasing thresholds of charged QDs/QRs (methods.md §5), checked.

Gain per particle (§5.1, two-fold band edges filled first)::

    G(n, N) = (min(n + N, 2) + min(N, 2))/2 - 1      (-1 absorbing, 0 transparent, +1 inverted)

(stimulated emission f_e f_h minus absorption (1-f_e)(1-f_h) = f_e + f_h - 1, f = N_BE/2).
Mean field (no Poisson, N continuous): <N_g> = 1 - n/2 for n <= 2, else 0 -> 1, 0.5, 0.

Poisson statistics (§5.2): ``<G> = sum_n p_c(n) sum_N P(N; <N>) G(n, N)`` and ``<N_g>`` is the
root of ``<G> = 0`` (0 when ``<G>(0) >= 0``). Because G(n, N) is the same for all N >= 2 and
for all n >= 2 at fixed N, only P(0), P(1), P(>=2) of each distribution enter. The values of the
methods.md §5.2 table are reproduced by the tests (neutral 1.146: e^-x (2 + x) = 1).

Lasing (§5.3, the proposed "modified gain-switching" model; Supplementary Note 1 of the paper
is unavailable, so this is our model, not the paper's): for each charge n (static during the
pulse) the exciton populations P_{n,N}(t), N = 0..N_max, follow a birth-death chain with pump
rate W(t) (integral <N>) and decay rates K_N = 1/tau(N-pair state of charge n) from the charge
model; the normalised gain is g(t) = sum_n p_c(n) sum_N P_{n,N}(t) G(n, N). Criteria: (a)
``gain_clamp``: max_t g(t) >= G_loss; (b) ``buildup``: integral of gain_rate (g - G_loss)_+ dt >=
ln(S_det/S_seed). The chain is integrated exactly per time step with matrix exponentials.
Limits checked in the tests: a delta pulse gives the §5.2 Poisson <N_g> as G_loss -> 0; a long
flat pulse gives the steady-state birth-death threshold, ~ 2 G_loss K_1 tau_p for n >= 2.

Also: pump fluence -> <N> (§5.4), the L-L-curve threshold (§5.5, segmented regression with
bootstrap) and the TA gain threshold (§5.6, line through the origin, -dA = A0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.errors import QrspecError

__all__ = ["gain_per_particle", "mean_field_gain_threshold", "mean_gain", "gain_threshold",
           "lasing_threshold", "threshold_map", "ThresholdMap", "photon_energy_j",
           "fluence_to_mean_excitations", "peak_fluence_gaussian",
           "cross_section_from_absorbance", "ll_threshold", "LLThreshold",
           "ta_gain_threshold", "TAThreshold", "charge_distribution"]

_H = 6.62607015e-34
_C = 299792458.0
_LN_1E5 = math.log(1e5)  # default build-up factor S_det/S_seed = 1e5


def gain_per_particle(n, n_exc):
    """Normalised band-edge gain G(n, N) (continuous arguments allowed, mean field)."""
    n = np.asarray(n, float)
    n_exc = np.asarray(n_exc, float)
    return (np.minimum(n + n_exc, 2.0) + np.minimum(n_exc, 2.0)) / 2.0 - 1.0


def mean_field_gain_threshold(n: float) -> float:
    """<N_g> without Poisson statistics: root in N of the continuous G(n, N) (1 - n/2, >= 0)."""
    from scipy.optimize import brentq

    n = float(n)
    if not math.isfinite(n) or n < 0:
        raise QrspecError(f"n={n!r} must be finite and >= 0")
    if gain_per_particle(n, 0.0) >= 0:
        return 0.0
    return float(brentq(lambda x: float(gain_per_particle(n, x)), 0.0, 2.0, xtol=1e-14))


def _three(dist_kind, mean):
    """(P(0), P(1), P(>=2)) of a Poisson or of a point mass mixing floor and ceil."""
    if dist_kind == "poisson":
        p0 = math.exp(-mean)
        p1 = mean * p0
        return p0, p1, max(0.0, -math.expm1(-mean) - p1)
    lo = math.floor(mean)
    w = mean - lo
    p = np.zeros(3)
    p[min(lo, 2)] += 1 - w
    p[min(lo + 1, 2)] += w
    return tuple(p)


def charge_distribution(mean_nc, kind="poisson", n_cap=None):
    """p_c(n) for n = 0..n_cap: Poisson (default), point mass (floor/ceil mix) or a histogram."""
    from scipy.stats import poisson

    if isinstance(kind, str):
        mean_nc = float(mean_nc)
        if not math.isfinite(mean_nc) or mean_nc < 0:
            raise QrspecError(f"mean_nc={mean_nc!r} must be finite and >= 0")
        if kind == "poisson":
            cap = int(poisson.isf(1e-12, mean_nc)) + 2 if n_cap is None else int(n_cap)
            p = poisson.pmf(np.arange(cap + 1), mean_nc)
            p[-1] += poisson.sf(cap, mean_nc)
            return p
        if kind == "fixed":
            lo = math.floor(mean_nc)
            p = np.zeros(lo + 2)
            p[lo] = 1 - (mean_nc - lo)
            p[lo + 1] = mean_nc - lo
            return p
        raise QrspecError(f"kind={kind!r} must be 'poisson', 'fixed' or a histogram array")
    p = np.asarray(kind, float)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not p.sum() > 0:
        raise QrspecError("charge histogram must be a non-empty 1-d array of weights >= 0")
    return p / p.sum()


def mean_gain(mean_exc, mean_nc, *, charge="poisson", excitation="poisson") -> float:
    """Ensemble gain <G>(<N>, <n_c>) (methods.md §5.2).

    ``charge``: "poisson", "fixed" (floor/ceil mix) or a histogram p_c(n); ``excitation``:
    "poisson" or "fixed" (mean field, N continuous).
    """
    mean_exc = float(mean_exc)
    if not math.isfinite(mean_exc) or mean_exc < 0:
        raise QrspecError(f"mean_exc={mean_exc!r} must be finite and >= 0")
    if excitation not in ("poisson", "fixed"):
        raise QrspecError(f"excitation={excitation!r} must be 'poisson' or 'fixed'")
    if isinstance(charge, str) and charge != "poisson" and charge != "fixed":
        raise QrspecError(f"charge={charge!r} must be 'poisson', 'fixed' or a histogram array")
    pc = charge_distribution(mean_nc, charge) if not (isinstance(charge, str)
                                                     and charge == "poisson") else None
    if pc is None:
        c3 = _three("poisson", float(mean_nc))
        if not math.isfinite(float(mean_nc)) or float(mean_nc) < 0:
            raise QrspecError(f"mean_nc={mean_nc!r} must be finite and >= 0")
    else:
        c3 = (pc[0], pc[1] if pc.size > 1 else 0.0, pc[2:].sum())
    if excitation == "poisson":
        e3 = _three("poisson", mean_exc)
        g = 0.0
        for n, pn in enumerate(c3):
            for k, pk in enumerate(e3):
                g += pn * pk * float(gain_per_particle(n, k))
        return g
    return float(sum(pn * gain_per_particle(n, mean_exc) for n, pn in enumerate(c3)))


def gain_threshold(mean_nc, *, charge="poisson", excitation="poisson",
                   n_exc_max: float = 50.0) -> float:
    """<N_g>: the smallest <N> with <G> >= 0 (0 when already transparent), methods.md §5.2."""
    from scipy.optimize import brentq

    def f(x):
        return mean_gain(x, mean_nc, charge=charge, excitation=excitation)

    if f(0.0) >= 0:
        return 0.0
    if f(n_exc_max) < 0:
        return math.inf
    return float(brentq(f, 0.0, n_exc_max, xtol=1e-12))


# ---------------------------------------------------------------------------------------------
# lasing threshold
# ---------------------------------------------------------------------------------------------
def _decay_rates(config: ChargeModelConfig, n_values):
    from qrspec.charging.forward import forward

    fr = forward(config, n_values)
    return np.stack([1 / fr.tau_x_ns, 1 / fr.tau_xx_ns, 1 / fr.tau_xxx_ns], axis=1)


def _generators(k_decay, n_exc_max):
    """Decay matrix K (n_ch, M, M) and pump matrix B (M, M) of the birth-death chain."""
    m = n_exc_max + 1
    n_ch = k_decay.shape[0]
    kmat = np.zeros((n_ch, m, m))
    for j in range(1, m):
        kj = k_decay[:, min(j, 3) - 1]
        kmat[:, j, j] -= kj
        kmat[:, j - 1, j] += kj
    bmat = np.zeros((m, m))
    for j in range(m - 1):
        bmat[j, j] -= 1.0
        bmat[j + 1, j] += 1.0
    return kmat, bmat


def _expm_batch(a):
    """Matrix exponential of a stack of small generators (eigen route, scipy as fallback)."""
    lam, vec = np.linalg.eig(a)
    if np.all(np.isfinite(lam)) and np.max(np.linalg.cond(vec)) < 1e8:
        vec = vec.real
        return np.einsum("cij,cj,cjk->cik", vec, np.exp(lam.real), np.linalg.inv(vec))
    from scipy.linalg import expm

    return expm(a)


def _propagate(a, pop0, times):
    """pop(t) = expm(a t) pop0 for every t (a: (n_ch, m, m)); returns (n_ch, m, n_t)."""
    lam, vec = np.linalg.eig(a)
    ok = np.all(np.isfinite(lam)) and np.max(np.linalg.cond(vec)) < 1e8
    if ok:
        lam = lam.real
        vec = vec.real
        coef = np.linalg.solve(vec, pop0[..., None])[..., 0]  # (n_ch, m)
        e = np.exp(lam[:, :, None] * times[None, None, :])  # (n_ch, m, n_t)
        return np.einsum("cij,cj,cjt->cit", vec, coef, e)
    # defective / ill-conditioned generator: exact stepping with one matrix exponential
    dt = times[1] - times[0] if times.size > 1 else 0.0
    step = _expm_batch(a * dt)
    out = [pop0]
    pop = pop0
    for _ in range(times.size - 1):
        pop = np.einsum("cij,cj->ci", step, pop)
        out.append(pop)
    return np.stack(out, axis=-1)


def _gain_traces(k_decay, n_values, mean_exc, *, pulse, pulse_ns, n_exc_max, n_steps,
                 tail_ns):
    """Per-charge gain g_n(t) (n_ch, n_t) on a uniform time grid, and the time step."""
    from scipy.stats import poisson

    kmat, bmat = _generators(k_decay, n_exc_max)
    m = n_exc_max + 1
    gmat = gain_per_particle(n_values[:, None], np.arange(m)[None, :])  # (n_ch, m)
    n_ch = k_decay.shape[0]
    pops = []
    if pulse == "delta":
        p0 = poisson.pmf(np.arange(m), mean_exc)
        p0[-1] += poisson.sf(m - 1, mean_exc)
        pop = np.tile(p0, (n_ch, 1))
        dt = tail_ns / n_steps if tail_ns > 0 else 1.0
        pops.append(pop[..., None])
    elif pulse == "flat":
        dt = pulse_ns / n_steps
        w = mean_exc / pulse_ns
        pop0 = np.zeros((n_ch, m))
        pop0[:, 0] = 1.0
        on = _propagate(kmat + w * bmat[None], pop0, dt * np.arange(n_steps + 1))
        pops.append(on)
        pop = on[..., -1]
    else:  # gaussian, pulse_ns = FWHM, from -4 sigma to +4 sigma
        sig = pulse_ns / (2 * math.sqrt(2 * math.log(2)))
        t0 = -4 * sig
        dt = 8 * sig / n_steps
        pop = np.zeros((n_ch, m))
        pop[:, 0] = 1.0
        out = [pop]
        for i in range(n_steps):
            tm = t0 + (i + 0.5) * dt
            w = mean_exc * math.exp(-0.5 * (tm / sig) ** 2) / (sig * math.sqrt(2 * math.pi))
            pop = np.einsum("cij,cj->ci", _expm_batch(kmat * dt + w * dt * bmat[None]), pop)
            out.append(pop)
        pops.append(np.stack(out, axis=-1))
    if tail_ns > 0:
        n_tail = max(int(math.ceil(tail_ns / dt)), 1)
        tail = _propagate(kmat, pop, dt * np.arange(1, n_tail + 1))
        pops.append(tail)
    allpop = np.concatenate(pops, axis=-1)  # (n_ch, m, n_t)
    return np.einsum("cm,cmt->ct", gmat, allpop), dt


def _criterion_value(g_t, dt, criterion, g_loss, gain_rate_per_ns, ln_gain):
    """Positive when lasing is reached."""
    if criterion == "gain_clamp":
        return float(np.max(g_t) - g_loss)
    excess = np.clip(g_t - g_loss, 0.0, None)
    integral = gain_rate_per_ns * float(np.sum((excess[1:] + excess[:-1]) / 2) * dt)
    return integral - ln_gain


@dataclass(frozen=True)
class _LasingSetup:
    g_loss: float
    pulse: str
    pulse_ns: float
    criterion: str
    gain_rate_per_ns: float
    ln_gain: float
    n_exc_max: int
    n_steps: int


def _setup(g_loss, pulse, pulse_ns, criterion, gain_rate_per_ns, ln_gain, n_exc_max,
           n_steps):
    if not (isinstance(g_loss, (int, float)) and 0 <= g_loss < 1):
        raise QrspecError(f"g_loss={g_loss!r} must be in [0, 1)")
    if pulse not in ("flat", "gaussian", "delta"):
        raise QrspecError(f"pulse={pulse!r} must be 'flat', 'gaussian' or 'delta'")
    if pulse != "delta" and not (isinstance(pulse_ns, (int, float)) and pulse_ns > 0):
        raise QrspecError(f"pulse_ns={pulse_ns!r} must be > 0")
    if criterion not in ("gain_clamp", "buildup"):
        raise QrspecError(f"criterion={criterion!r} must be 'gain_clamp' or 'buildup'")
    if criterion == "buildup" and not gain_rate_per_ns > 0:
        raise QrspecError(f"gain_rate_per_ns={gain_rate_per_ns!r} must be > 0 for buildup")
    if int(n_exc_max) != n_exc_max or n_exc_max < 2:
        raise QrspecError(f"n_exc_max={n_exc_max!r} must be an integer >= 2")
    if int(n_steps) < 10:
        raise QrspecError(f"n_steps={n_steps!r} must be >= 10")
    return _LasingSetup(float(g_loss), pulse, float(pulse_ns or 0.0), criterion,
                        float(gain_rate_per_ns), float(ln_gain), int(n_exc_max), int(n_steps))


def _evaluator(config, pc, s: _LasingSetup):
    n_values = np.arange(pc.size, dtype=float)
    k_decay = _decay_rates(config, n_values)
    tail = 0.0
    if s.criterion == "buildup":
        tail = 5.0 / float(np.min(k_decay[:, 0]))
    elif s.pulse == "delta":
        tail = 0.0
    keep = pc > 1e-14
    k_decay, n_values, pc = k_decay[keep], n_values[keep], pc[keep]

    def h(mean_exc):
        traces, dt = _gain_traces(k_decay, n_values, mean_exc, pulse=s.pulse,
                                  pulse_ns=s.pulse_ns, n_exc_max=s.n_exc_max,
                                  n_steps=s.n_steps, tail_ns=tail)
        g_t = pc @ traces
        return _criterion_value(g_t, dt, s.criterion, s.g_loss, s.gain_rate_per_ns, s.ln_gain)

    return h


def lasing_threshold(mean_nc, config: ChargeModelConfig | None = None, *, g_loss=0.05,
                     pulse="flat", pulse_ns=5.0, criterion="gain_clamp",
                     gain_rate_per_ns=1.0, ln_gain=_LN_1E5, charge="poisson",
                     n_exc_max=3, n_steps=200, bracket=(1e-6, 50.0)) -> float:
    """<N_las>(<n_c>) of the §5.3 rate-equation model (inf when not reached in ``bracket``).

    Parameters
    ----------
    mean_nc : float
        Mean charge number (distribution ``charge``: "poisson", "fixed" or a histogram).
    config : ChargeModelConfig
        Charge model giving K_1, K_2, K_3 per n (its tau_a_xx0_ns is the neutral Auger lifetime).
    g_loss : float
        Cavity loss as a fraction of the maximum gain, alpha/(Gamma g_0).
    pulse, pulse_ns : str, float
        "flat" (duration), "gaussian" (FWHM) or "delta" (instantaneous).
    criterion : {"gain_clamp", "buildup"}
        (a) max_t g >= g_loss; (b) integral gain_rate_per_ns (g - g_loss)_+ dt >= ln_gain.
    """
    from scipy.optimize import brentq

    config = ChargeModelConfig() if config is None else config
    s = _setup(g_loss, pulse, pulse_ns, criterion, gain_rate_per_ns, ln_gain, n_exc_max,
               n_steps)
    pc = charge_distribution(mean_nc, charge)
    h = _evaluator(config, pc, s)
    lo, hi = float(bracket[0]), float(bracket[1])
    if not 0 < lo < hi:
        raise QrspecError(f"bracket={bracket!r} must satisfy 0 < lo < hi")
    if h(lo) >= 0:
        return lo
    if h(hi) < 0:
        return math.inf
    # first crossing on a coarse log grid, then brentq
    grid = np.geomspace(lo, hi, 16)
    prev = lo
    for x in grid[1:]:
        if h(x) >= 0:
            return float(brentq(h, prev, x, xtol=1e-6 * x))
        prev = x
    return math.inf


@dataclass(frozen=True, eq=False)
class ThresholdMap:
    """<N_las> on a grid (inf = no threshold below the bracket top).

    Attributes
    ----------
    mean_nc : ndarray (n_nc,)
    tau_a_xx_ns : ndarray (n_tau,)
        Neutral tau_A,XX0 (default axis) used for each column.
    n_las : ndarray (n_nc, n_tau)
    settings : dict
    """

    mean_nc: np.ndarray
    tau_a_xx_ns: np.ndarray
    n_las: np.ndarray
    settings: dict

    def long_columns(self) -> dict:
        """The map in long format: one row per (<n_c>, tau_A,XX0) cell, <n_c> outer.

        Returns
        -------
        dict
            ``mean_nc``, ``tau_a_xx_ns``, ``n_las``: 1-d arrays of ``n_nc * n_tau`` values.
        """
        grid_nc, grid_tau = np.meshgrid(self.mean_nc, self.tau_a_xx_ns, indexing="ij")
        return {"mean_nc": grid_nc.ravel(), "tau_a_xx_ns": grid_tau.ravel(),
                "n_las": np.asarray(self.n_las).ravel()}


def threshold_map(mean_nc_grid, tau_a_xx_grid_ns, config: ChargeModelConfig | None = None, *,
                  g_loss=0.05, pulse="flat", pulse_ns=5.0, criterion="gain_clamp",
                  gain_rate_per_ns=1.0, ln_gain=_LN_1E5, n_exc_max=3, n_steps=100,
                  n_exc_grid=None) -> ThresholdMap:
    """<N_las>(<n_c>, tau_A,XX0) over a grid (paper Fig. 1b; methods.md §5.3), Poisson charges.

    Per-charge populations do not depend on <n_c>, so each column is computed once on a log
    grid of <N> and the crossing is interpolated in log <N> (grid ``n_exc_grid``, default
    160 points from 1e-4 to 50; relative error < grid ratio, ~4 %; refine a single cell with
    :func:`lasing_threshold`).
    """
    config = ChargeModelConfig() if config is None else config
    s = _setup(g_loss, pulse, pulse_ns, criterion, gain_rate_per_ns, ln_gain, n_exc_max,
               n_steps)
    nc = np.asarray(mean_nc_grid, float)
    taus = np.asarray(tau_a_xx_grid_ns, float)
    if nc.ndim != 1 or nc.size == 0 or np.any(~np.isfinite(nc)) or np.any(nc < 0):
        raise QrspecError("mean_nc_grid must be a non-empty 1-d array of values >= 0")
    if taus.ndim != 1 or taus.size == 0 or np.any(~(taus > 0)) or np.any(~np.isfinite(taus)):
        raise QrspecError("tau_a_xx_grid_ns must be a non-empty 1-d array of values > 0")
    xs = np.geomspace(1e-4, 50.0, 160) if n_exc_grid is None else np.asarray(n_exc_grid, float)
    pcs = [charge_distribution(v, "poisson") for v in nc]
    n_cap = max(p.size for p in pcs)
    pmat = np.zeros((nc.size, n_cap))
    for i, p in enumerate(pcs):
        pmat[i, :p.size] = p
    n_values = np.arange(n_cap, dtype=float)
    out = np.full((nc.size, taus.size), np.inf)
    for j, tau in enumerate(taus):
        cfg = config.replace(tau_a_xx0_ns=float(tau), tau_a_xminus_ns=None,
                             tau_a_xplus_ns=None)
        k_decay = _decay_rates(cfg, n_values)
        tail = 5.0 / float(np.min(k_decay[:, 0])) if s.criterion == "buildup" else 0.0
        vals = np.empty((nc.size, xs.size))
        for k, x in enumerate(xs):
            traces, dt = _gain_traces(k_decay, n_values, x, pulse=s.pulse, pulse_ns=s.pulse_ns,
                                      n_exc_max=s.n_exc_max, n_steps=s.n_steps, tail_ns=tail)
            g_t = pmat @ traces  # (n_nc, n_t)
            for i in range(nc.size):
                vals[i, k] = _criterion_value(g_t[i], dt, s.criterion, s.g_loss,
                                              s.gain_rate_per_ns, s.ln_gain)
        for i in range(nc.size):
            pos = np.nonzero(vals[i] >= 0)[0]
            if pos.size == 0:
                continue
            k = pos[0]
            if k == 0:
                out[i, j] = xs[0]
                continue
            a, b = vals[i, k - 1], vals[i, k]
            f = a / (a - b)
            out[i, j] = float(np.exp(np.log(xs[k - 1]) + f * (np.log(xs[k]) - np.log(xs[k - 1]))))
    settings = {"g_loss": s.g_loss, "pulse": s.pulse, "pulse_ns": s.pulse_ns,
                "criterion": s.criterion, "gain_rate_per_ns": s.gain_rate_per_ns,
                "ln_gain": s.ln_gain, "n_exc_max": s.n_exc_max, "n_steps": s.n_steps,
                "charge": "poisson", "config": config.to_json()}
    return ThresholdMap(mean_nc=nc, tau_a_xx_ns=taus, n_las=out, settings=settings)


# ---------------------------------------------------------------------------------------------
# fluence, L-L curve, TA
# ---------------------------------------------------------------------------------------------
def photon_energy_j(wavelength_nm: float) -> float:
    """Photon energy h c / lambda in J (439 nm: 4.525e-19 J)."""
    if not wavelength_nm > 0:
        raise QrspecError(f"wavelength_nm={wavelength_nm!r} must be > 0")
    return _H * _C / (wavelength_nm * 1e-9)


def fluence_to_mean_excitations(fluence_j_per_cm2, wavelength_nm, sigma_cm2):
    """<N> = sigma j with j = F/(h nu) photons per cm^2 (methods.md §5.4)."""
    f = np.asarray(fluence_j_per_cm2, float)
    if np.any(f < 0) or not np.all(np.isfinite(f)):
        raise QrspecError("fluence_j_per_cm2 must be finite and >= 0")
    if not sigma_cm2 > 0:
        raise QrspecError(f"sigma_cm2={sigma_cm2!r} must be > 0")
    return sigma_cm2 * f / photon_energy_j(wavelength_nm)


def peak_fluence_gaussian(pulse_energy_j, w_cm):
    """Peak fluence 2 E/(pi w^2) of a Gaussian beam with 1/e^2 radius w (J/cm^2)."""
    if not (pulse_energy_j >= 0 and w_cm > 0):
        raise QrspecError(f"pulse_energy_j={pulse_energy_j!r} must be >= 0 and w_cm={w_cm!r} > 0")
    return 2.0 * pulse_energy_j / (math.pi * w_cm**2)


def cross_section_from_absorbance(absorbance, conc_mol_per_cm3, path_cm):
    """Absorption cross-section sigma = ln(10) A/(c N_A L) per particle, cm^2."""
    if not (absorbance > 0 and conc_mol_per_cm3 > 0 and path_cm > 0):
        raise QrspecError(f"absorbance={absorbance!r}, conc_mol_per_cm3={conc_mol_per_cm3!r}, "
                          f"path_cm={path_cm!r} must all be > 0")
    return math.log(10.0) * absorbance / (conc_mol_per_cm3 * 6.02214076e23 * path_cm)


@dataclass(frozen=True)
class LLThreshold:
    """Segmented-regression threshold of an L-L curve (units of x).

    ``x_th_lo``/``x_th_hi`` are bootstrap 16/84 percentiles (NaN without bootstrap).
    """

    x_th: float
    x_th_lo: float
    x_th_hi: float
    intercept: float
    slope_below: float
    slope_above: float
    sse: float
    success: bool
    message: str


def _segmented(x, y, n_grid=400):
    best = (math.inf, math.nan, None)
    xs = np.sort(np.unique(x))
    cand = np.linspace(xs[1], xs[-2], n_grid) if xs.size >= 4 else xs
    for xt in cand:
        a = np.column_stack([np.ones_like(x), np.minimum(x, xt), np.maximum(x - xt, 0.0)])
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        sse = float(np.sum((a @ coef - y) ** 2))
        if sse < best[0]:
            best = (sse, float(xt), coef)
    return best


def ll_threshold(x, y, *, n_boot: int = 200, seed=None) -> LLThreshold:
    """Threshold of a light-in/light-out curve by continuous two-segment regression (§5.5).

    ``y = a + b1 min(x, x_th) + b2 max(x - x_th, 0)`` with the SSE minimised over x_th on a grid
    between the 2nd and the 2nd-last point; CI by bootstrap over points.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 5:
        raise QrspecError(f"x and y must be 1-d of equal length >= 5 (got {x.shape}, {y.shape})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise QrspecError("x and y must be finite")
    sse, xt, coef = _segmented(x, y)
    nan = math.nan
    if coef is None or not coef[2] > coef[1]:
        return LLThreshold(xt, nan, nan, *(coef if coef is not None else (nan,) * 3), sse,
                           False, "no slope increase above threshold (b2 <= b1)")
    lo = hi = nan
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        vals = []
        for _ in range(int(n_boot)):
            idx = rng.integers(0, x.size, x.size)
            if np.unique(x[idx]).size < 4:
                continue
            vals.append(_segmented(x[idx], y[idx], n_grid=100)[1])
        if vals:
            lo, hi = np.percentile(vals, [15.87, 84.13])
    return LLThreshold(xt, float(lo), float(hi), float(coef[0]), float(coef[1]), float(coef[2]),
                       sse, True, "")


@dataclass(frozen=True)
class TAThreshold:
    """TA gain threshold: ``n_g`` from the line through the origin, ``n_g_crossing`` from data."""

    n_g: float
    n_g_err: float
    slope: float
    slope_err: float
    n_g_crossing: float
    success: bool
    message: str


def ta_gain_threshold(mean_exc, minus_delta_a, a0, *, a0_err=0.0,
                      n_linear: int | None = None) -> TAThreshold:
    """<N_g> from -dA(<N>) at the band-edge bleach: -dA = s <N>, <N_g> = A0/s (§5.6).

    ``n_linear`` uses only the lowest-<N> points for the slope (default: all). The direct
    crossing -dA = A0 (linear interpolation) is reported when the data reach it.
    """
    x = np.asarray(mean_exc, float)
    y = np.asarray(minus_delta_a, float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise QrspecError(f"mean_exc and minus_delta_a must be 1-d of equal length >= 2 "
                          f"(got {x.shape}, {y.shape})")
    if not a0 > 0:
        raise QrspecError(f"a0={a0!r} must be > 0")
    order = np.argsort(x)
    x, y = x[order], y[order]
    k = x.size if n_linear is None else int(n_linear)
    if k < 2 or k > x.size:
        raise QrspecError(f"n_linear={n_linear!r} must be in [2, {x.size}]")
    xl, yl = x[:k], y[:k]
    s = float(np.sum(xl * yl) / np.sum(xl * xl))
    dof = k - 1
    resid = yl - s * xl
    s_err = float(math.sqrt(np.sum(resid**2) / dof / np.sum(xl * xl))) if dof > 0 else math.nan
    crossing = math.nan
    above = np.nonzero(y >= a0)[0]
    if above.size and above[0] > 0:
        i = above[0]
        crossing = float(x[i - 1] + (a0 - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
    if not s > 0:
        return TAThreshold(math.nan, math.nan, s, s_err, crossing, False,
                           f"slope={s:.3g} <= 0: no bleach growth")
    n_g = a0 / s
    n_g_err = n_g * math.sqrt((s_err / s) ** 2 + (a0_err / a0) ** 2)
    return TAThreshold(n_g, n_g_err, s, s_err, crossing, True, "")
