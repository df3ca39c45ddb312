"""The neutral reference theta_0 of a particle: where it comes from, its covariance, its rates.

Every charged window of a particle is inverted against the same neutral parameters
theta_0 = (k_r, k_A,XX0) (methods.md §1.6):

    k_r      = QY_X0 / tau_X0                      k_nr0 = (1 - QY_X0) / tau_X0
    k_A,XX0  = 1/tau_XX0 - beta_XX k_r [- k_nr0]    (k_nr0 only with knr_all_states)
             = 1/tau_A,XX0                          (when the Auger lifetime itself is given)

QY_X0, beta_XX and ``knr_all_states`` are model parameters (:class:`ChargeModelConfig`); the
lifetimes come from a :class:`NeutralReference`, which records its source:

* ``"particle"``: the particle's own neutral periods (tau_X0 from the decay, tau_XX0 from
  heralded pairs: independent photon sets, so uncorrelated);
* ``"user"``: values the user knows (e.g. the paper's tau_A,XX0 = 13.9 ns), with errors
  (0 = exact, not fitted);
* ``"group"``: pooled from other particles of the sample (:func:`pool_neutral_references`)
  for a particle that has no neutral period. Its errors are *predictive*: the spread of the
  particles (measurement noise and true particle-to-particle variation) plus the error of the
  mean, because k_r varies between rods (methods.md §1.6 condition 3).

Since k_A,XX0 is a small difference of two large rates, its relative error is large (about
30 % for a few hundred heralded pairs); :func:`neutral_rates` therefore also reports the 68 %
interval of tau_A,XX0 = 1/k_A,XX0 obtained by transforming the (near-Gaussian) interval of
k_A,XX0, which is open above when k_A,XX0 - sigma <= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.charging.config import ChargeModelConfig
from qrspec.errors import QrspecError

__all__ = ["NeutralReference", "NeutralRates", "neutral_rates", "pool_neutral_references",
           "NEUTRAL_SOURCES"]

NEUTRAL_SOURCES = ("particle", "user", "group")


def _num(name, value, *, positive=True, allow_none=False, allow_zero=False):
    """Check a measured value of the charge model (the one check of ``neutral`` and ``inverse``).

    Finite and > 0 (>= 0 with ``allow_zero``; any sign without ``positive``); None only with
    ``allow_none``.
    """
    if value is None:
        if allow_none:
            return None
        raise QrspecError(f"{name}=None is required")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QrspecError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(v) or (positive and (v < 0 if allow_zero else v <= 0)):
        cmp = ">= 0" if allow_zero else "> 0"
        raise QrspecError(f"{name}={value!r} must be finite and {cmp}")
    return v


@dataclass(frozen=True)
class NeutralReference:
    """Estimate of a particle's neutral lifetimes, with covariance and source.

    Give ``tau_xx0_ns`` (measured neutral biexciton lifetime) or ``tau_a_xx0_ns`` (its Auger
    lifetime). An error of 0 fixes the value (it is not fitted).

    Parameters
    ----------
    tau_x0_ns, tau_x0_err_ns : float
        Neutral exciton lifetime and its 1-sigma error, ns.
    tau_xx0_ns, tau_xx0_err_ns : float or None, float
        Neutral biexciton lifetime and error, ns.
    tau_a_xx0_ns, tau_a_xx0_err_ns : float or None, float
        Neutral biexciton Auger lifetime and error, ns.
    corr : float
        Correlation coefficient of ``tau_x0_ns`` with the biexciton quantity (0 for the two
        independent fits of one particle; a pooled reference carries the group's).
    g2_0, g2_0_err : float or None, float
        Low-<N> QY ratio QY_XX0/QY_X0 (finite-<N> corrected) and its error.
    source : {"particle", "user", "group"}
        Where the values come from (recorded with every result).
    note : str
        Free text for the record (e.g. the group and the number of particles pooled).
    """

    tau_x0_ns: float
    tau_x0_err_ns: float = 0.0
    tau_xx0_ns: float | None = None
    tau_xx0_err_ns: float = 0.0
    tau_a_xx0_ns: float | None = None
    tau_a_xx0_err_ns: float = 0.0
    corr: float = 0.0
    g2_0: float | None = None
    g2_0_err: float = 0.0
    source: str = "user"
    note: str = ""

    def __post_init__(self):
        _num("tau_x0_ns", self.tau_x0_ns)
        _num("tau_x0_err_ns", self.tau_x0_err_ns, allow_zero=True)
        if (self.tau_xx0_ns is None) == (self.tau_a_xx0_ns is None):
            raise QrspecError(f"tau_xx0_ns={self.tau_xx0_ns!r}, tau_a_xx0_ns="
                              f"{self.tau_a_xx0_ns!r}: give exactly one of them")
        _num("tau_xx0_ns", self.tau_xx0_ns, allow_none=True)
        _num("tau_a_xx0_ns", self.tau_a_xx0_ns, allow_none=True)
        _num("tau_xx0_err_ns", self.tau_xx0_err_ns, allow_zero=True)
        _num("tau_a_xx0_err_ns", self.tau_a_xx0_err_ns, allow_zero=True)
        if not (isinstance(self.corr, int | float) and -1.0 < self.corr < 1.0):
            raise QrspecError(f"corr={self.corr!r} must be in (-1, 1)")
        if self.corr != 0 and not (self.tau_x0_err_ns > 0 and self.second_err_ns > 0):
            raise QrspecError(f"corr={self.corr!r} needs both errors > 0")
        _num("g2_0", self.g2_0, allow_none=True)
        _num("g2_0_err", self.g2_0_err, allow_zero=True)
        if self.g2_0 is not None and not self.g2_0_err > 0:
            raise QrspecError(f"g2_0_err={self.g2_0_err!r} must be > 0 when g2_0 is given")
        if self.source not in NEUTRAL_SOURCES:
            raise QrspecError(f"source={self.source!r} must be one of {NEUTRAL_SOURCES}")

    @property
    def second_kind(self) -> str:
        """``"tau_xx0"`` or ``"tau_a_xx0"``: which biexciton quantity is given."""
        return "tau_xx0" if self.tau_xx0_ns is not None else "tau_a_xx0"

    @property
    def second_ns(self) -> float:
        """The biexciton quantity given (``tau_xx0_ns`` or ``tau_a_xx0_ns``)."""
        return self.tau_xx0_ns if self.tau_xx0_ns is not None else self.tau_a_xx0_ns

    @property
    def second_err_ns(self) -> float:
        """Its error."""
        return self.tau_xx0_err_ns if self.tau_xx0_ns is not None else self.tau_a_xx0_err_ns

    @property
    def cov_ns2(self) -> np.ndarray:
        """2x2 covariance of (``tau_x0_ns``, the biexciton quantity), ns^2."""
        s0, s1 = self.tau_x0_err_ns, self.second_err_ns
        c = self.corr * s0 * s1
        return np.array([[s0 * s0, c], [c, s1 * s1]])

    @classmethod
    def from_particle(cls, tau_x0_ns, tau_x0_err_ns, tau_xx0_ns, tau_xx0_err_ns, *,
                      g2_0=None, g2_0_err=0.0, note="") -> NeutralReference:
        """The particle's own neutral periods (independent X and heralded XX fits)."""
        return cls(tau_x0_ns=tau_x0_ns, tau_x0_err_ns=tau_x0_err_ns, tau_xx0_ns=tau_xx0_ns,
                   tau_xx0_err_ns=tau_xx0_err_ns, g2_0=g2_0, g2_0_err=g2_0_err,
                   source="particle", note=note)


@dataclass(frozen=True)
class NeutralRates:
    """The neutral rates theta_0 of one :class:`NeutralReference` under one model.

    Attributes
    ----------
    k_r_per_ns, k_nr0_per_ns, k_a_xx0_per_ns : float
        Radiative rate, charge-independent loss and biexciton Auger rate, ns^-1.
    cov_per_ns2 : ndarray, shape (2, 2)
        Delta-method covariance of (k_r, k_A,XX0), ns^-2.
    tau_a_xx0_ns : float
        1/k_A,XX0 (NaN when k_A,XX0 <= 0).
    tau_a_xx0_err_ns : float
        Delta-method error sigma_k / k^2 (NaN when k_A,XX0 <= 0); symmetric, so only a guide
        when the relative error of k_A,XX0 is large: use the interval below.
    tau_a_xx0_lo_ns, tau_a_xx0_hi_ns : float
        68 % interval 1/(k + sigma_k), 1/(k - sigma_k); ``hi`` is inf when k - sigma_k <= 0.
    k_a_xx0_err_per_ns : float
        Its delta-method error.
    consistent : bool
        The data do not exclude k_A,XX0 > 0: k_A,XX0 + 2 sigma > 0 (k_A,XX0 > 0 when exact).
        Otherwise tau_XX0 is significantly longer than the radiative 1/(beta_XX k_r). A
        consistent reference with k_A,XX0 <= 0 has no tau_A,XX0 (NaN, interval open above) but
        can still be inverted: the fit of the windows decides k_A,XX0.
    source : str
        The reference's source.
    """

    k_r_per_ns: float
    k_nr0_per_ns: float
    k_a_xx0_per_ns: float
    k_a_xx0_err_per_ns: float
    cov_per_ns2: np.ndarray
    tau_a_xx0_ns: float
    tau_a_xx0_err_ns: float
    tau_a_xx0_lo_ns: float
    tau_a_xx0_hi_ns: float
    consistent: bool
    source: str


def _rates_and_jacobian(tau_x0, second, kind, config: ChargeModelConfig, beta_xx=None):
    """(k_r, k_nr0, k_a) and d(k_r, k_a)/d(tau_x0, second)."""
    qy = float(config.qy_x0)
    beta = float(config.beta_xx if beta_xx is None else beta_xx)
    k_r = qy / tau_x0
    k_nr0 = (1.0 - qy) / tau_x0
    jac = np.zeros((2, 2))
    jac[0, 0] = -qy / tau_x0**2
    if kind == "tau_xx0":
        c = beta * qy + ((1.0 - qy) if config.knr_all_states else 0.0)
        k_a = 1.0 / second - c / tau_x0
        jac[1, 0] = c / tau_x0**2
        jac[1, 1] = -1.0 / second**2
    else:
        k_a = 1.0 / second
        jac[1, 1] = -1.0 / second**2
    return k_r, k_nr0, k_a, jac


def neutral_rates(neutral: NeutralReference, config: ChargeModelConfig, *,
                  beta_xx: float | None = None) -> NeutralRates:
    """k_r, k_nr0 and k_A,XX0 of a neutral reference under a model, with their covariance.

    The one implementation of the neutral calibration of methods.md §1.6 (QY_X0 < 1 and
    ``knr_all_states`` included); the inverse fit starts from it.

    Parameters
    ----------
    neutral : NeutralReference
    config : ChargeModelConfig
        Supplies ``qy_x0``, ``beta_xx`` and ``knr_all_states`` (its own neutral lifetimes are
        not used).
    beta_xx : float, optional
        A per-particle biexciton radiative scaling replacing ``config.beta_xx``.

    Returns
    -------
    NeutralRates
    """
    if not isinstance(neutral, NeutralReference):
        raise QrspecError(f"neutral={neutral!r} must be a NeutralReference")
    if not isinstance(config, ChargeModelConfig):
        raise QrspecError(f"config={config!r} must be a ChargeModelConfig")
    k_r, k_nr0, k_a, jac = _rates_and_jacobian(neutral.tau_x0_ns, neutral.second_ns,
                                               neutral.second_kind, config, beta_xx)
    cov = jac @ neutral.cov_ns2 @ jac.T
    s_k = math.sqrt(max(cov[1, 1], 0.0))
    ok = k_a > 0
    nan = math.nan
    return NeutralRates(
        k_r_per_ns=k_r, k_nr0_per_ns=k_nr0, k_a_xx0_per_ns=k_a, k_a_xx0_err_per_ns=s_k,
        cov_per_ns2=cov, tau_a_xx0_ns=1.0 / k_a if ok else nan,
        tau_a_xx0_err_ns=s_k / k_a**2 if ok else nan,
        tau_a_xx0_lo_ns=1.0 / (k_a + s_k) if k_a + s_k > 0 else nan,
        tau_a_xx0_hi_ns=1.0 / (k_a - s_k) if k_a - s_k > 0 else math.inf,
        consistent=bool(k_a + 2.0 * s_k > 0 if s_k > 0 else ok), source=neutral.source)


def pool_neutral_references(references, config: ChargeModelConfig, *, min_particles: int = 3,
                            note: str = "") -> NeutralReference:
    """A group's neutral reference for a particle of the group that has no neutral period.

    Each particle's reference becomes (tau_X0, k_A,XX0) under ``config`` (rates, so that noisy
    particles with k_A,XX0 <= 0 enter without bias). The pooled value is the equal-weight mean
    (the population mean, not dominated by bright particles), and its covariance is the
    *predictive* covariance of one more particle, ``S (1 + 1/N)`` with S the sample covariance
    of the particles (their measurement noise and their true spread). It is returned as
    (tau_X0, tau_A,XX0 = 1/mean k_A,XX0) with errors and correlation by the delta method and
    ``source="group"``.

    Parameters
    ----------
    references : sequence of NeutralReference
        The particles' own references (source "particle" or "user").
    config : ChargeModelConfig
        Model (``qy_x0``, ``beta_xx``, ``knr_all_states``).
    min_particles : int
        Fewer references raise (a covariance from two points is meaningless).
    note : str
        Stored in the result (default: how many particles were pooled).

    Returns
    -------
    NeutralReference
    """
    refs = list(references)
    if isinstance(min_particles, bool) or int(min_particles) != min_particles \
            or min_particles < 3:
        raise QrspecError(f"min_particles={min_particles!r} must be an integer >= 3")
    if len(refs) < min_particles:
        raise QrspecError(f"references has {len(refs)} entries; pooling needs at least "
                          f"min_particles={min_particles}")
    for i, r in enumerate(refs):
        if not isinstance(r, NeutralReference):
            raise QrspecError(f"references[{i}]={r!r} must be a NeutralReference")
        if r.source == "group":
            raise QrspecError(f"references[{i}] is itself pooled (source='group')")
    pts = []
    for r in refs:
        _, _, k_a, _ = _rates_and_jacobian(r.tau_x0_ns, r.second_ns, r.second_kind, config)
        pts.append((r.tau_x0_ns, k_a))
    pts = np.asarray(pts)
    n = pts.shape[0]
    mean = pts.mean(axis=0)
    if not mean[1] > 0:
        raise QrspecError(f"the pooled neutral Auger rate {mean[1]:.4g} /ns is <= 0: the "
                          "group's neutral biexciton lifetimes are not shorter than radiative")
    cov = np.cov(pts, rowvar=False) * (1.0 + 1.0 / n)
    jac = np.array([[1.0, 0.0], [0.0, -1.0 / mean[1] ** 2]])  # (tau_x0, k_a) -> (tau_x0, tau_a)
    cov_t = jac @ cov @ jac.T
    s0, s1 = math.sqrt(cov_t[0, 0]), math.sqrt(cov_t[1, 1])
    corr = float(np.clip(cov_t[0, 1] / (s0 * s1), -0.999, 0.999)) if s0 > 0 and s1 > 0 else 0.0
    return NeutralReference(tau_x0_ns=float(mean[0]), tau_x0_err_ns=s0,
                            tau_a_xx0_ns=float(1.0 / mean[1]), tau_a_xx0_err_ns=s1, corr=corr,
                            source="group", note=note or f"mean of {n} particles")
