"""Instrument response functions: measured (normalised histogram) or modelled (Gaussian + tail).

The fits take the IRF as a unit-sum array on the periodic grid of the decay histogram (one per
detector: fit each detector's decay with its own IRF). :class:`ModelIRF` is an exponentially
modified Gaussian mixture (methods.md §4.7): a Gaussian of width ``sigma_ns`` centred at
``t0_ns`` plus, with weight ``tail_weight``, the same Gaussian convolved with an exponential
(``tail_tau_ns``), the diffusion tail of a SPAD.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

logger = logging.getLogger(__name__)

__all__ = ["ModelIRF", "normalize_irf", "irf_stats", "fit_model_irf", "IRFStats"]


def _norm_cdf(x):
    from scipy.special import ndtr

    return ndtr(x)


def _exgauss_cdf(t, sigma_ns, tau_ns):
    """CDF of Gaussian(0, sigma) + Exp(tau): Phi(t/s) - tau * pdf_exgauss(t)."""
    from qrspec.fitting.models import _exgaussian

    return _norm_cdf(t / sigma_ns) - tau_ns * _exgaussian(t, tau_ns, sigma_ns)


@dataclass(frozen=True, slots=True)
class ModelIRF:
    """Modelled IRF: Gaussian (``t0_ns``, ``sigma_ns``) with an exponential tail.

    Parameters
    ----------
    t0_ns : float
        Centre of the Gaussian on the histogram time axis (ns from the start of bin 0).
    sigma_ns : float
        Gaussian standard deviation (FWHM = 2.3548 sigma).
    tail_weight : float
        Fraction of the IRF in the exponential tail, in [0, 1).
    tail_tau_ns : float
        Decay time of the tail.
    """

    t0_ns: float
    sigma_ns: float
    tail_weight: float = 0.0
    tail_tau_ns: float = 0.3

    def __post_init__(self):
        if not self.sigma_ns > 0:
            raise QrspecError(f"sigma_ns={self.sigma_ns!r} must be > 0")
        if not 0.0 <= self.tail_weight < 1.0:
            raise QrspecError(f"tail_weight={self.tail_weight!r} must be in [0, 1)")
        if not self.tail_tau_ns > 0:
            raise QrspecError(f"tail_tau_ns={self.tail_tau_ns!r} must be > 0")

    def histogram(self, n_bins: int, bin_ns: float) -> np.ndarray:
        """Unit-sum, bin-integrated IRF on ``n_bins`` bins of ``bin_ns``.

        The IRF is periodic in ``n_bins * bin_ns`` (the parts that fall outside wrap around).
        """
        if n_bins < 1 or not bin_ns > 0:
            raise QrspecError(f"n_bins={n_bins!r} and bin_ns={bin_ns!r} must be positive")
        period = n_bins * bin_ns
        edges = np.arange(n_bins + 1) * bin_ns - self.t0_ns
        out = np.zeros(n_bins)
        for k in (-1, 0, 1):  # images of the neighbouring periods (sigma, tail << period)
            e = edges + k * period
            g = np.diff(_norm_cdf(e / self.sigma_ns))
            if self.tail_weight > 0:
                tail = np.diff(_exgauss_cdf(e, self.sigma_ns, self.tail_tau_ns))
                g = (1.0 - self.tail_weight) * g + self.tail_weight * tail
            out += g
        out = np.clip(out, 0.0, None)
        return out / out.sum()

    @property
    def fwhm_ns(self) -> float:
        """FWHM of the Gaussian core."""
        return 2.0 * math.sqrt(2.0 * math.log(2.0)) * self.sigma_ns


@dataclass(frozen=True, slots=True)
class IRFStats:
    """Peak, centroid and FWHM of an IRF histogram (ns on the histogram axis)."""

    peak_ns: float
    centroid_ns: float
    fwhm_ns: float


def normalize_irf(irf_counts, *, background: float | str | None = "auto",
                  n_bins: int | None = None) -> np.ndarray:
    """Unit-sum IRF from a measured IRF histogram.

    Parameters
    ----------
    irf_counts : array_like
        IRF histogram (counts per bin), same bin width as the decay.
    background : float, "auto" or None
        Counts per bin subtracted before normalising. ``"auto"`` uses the mean of the lowest
        quarter of the bins (dark counts); ``None`` subtracts nothing. Negative values are
        clipped to 0.
    n_bins : int, optional
        Length of the periodic grid; the IRF is zero-padded to it (default: its own length).
    """
    irf = np.asarray(irf_counts, dtype=float)
    if irf.ndim != 1 or irf.size < 2:
        raise QrspecError(f"irf_counts.shape={irf.shape} must be one-dimensional with >= 2 bins")
    if not np.all(np.isfinite(irf)):
        raise QrspecError("irf_counts contains NaN or inf")
    if background == "auto":
        low = np.sort(irf)[: max(1, irf.size // 4)]
        bg = float(low.mean())
    elif background is None:
        bg = 0.0
    elif isinstance(background, str):
        raise QrspecError(f"background={background!r} must be a number, 'auto' or None")
    else:
        bg = float(background)
    irf = np.clip(irf - bg, 0.0, None)
    total = irf.sum()
    if not total > 0:
        raise QrspecError(f"irf_counts has no counts above background={bg:.4g}")
    if n_bins is not None:
        if n_bins < irf.size:
            raise QrspecError(f"n_bins={n_bins} is shorter than the IRF ({irf.size} bins)")
        irf = np.concatenate([irf, np.zeros(n_bins - irf.size)])
    return irf / total


def irf_stats(irf, bin_ns: float) -> IRFStats:
    """Peak position, centroid (within +-5 FWHM of the peak) and FWHM of an IRF histogram."""
    irf = np.asarray(irf, dtype=float)
    if irf.ndim != 1 or irf.size < 3 or not irf.max() > 0:
        raise QrspecError(f"irf.shape={irf.shape} must be 1-D, >= 3 bins, with a positive peak")
    n = irf.size
    ip = int(np.argmax(irf))
    half = irf[ip] / 2.0
    # walk outwards (periodically) to the half-maximum crossings, interpolating linearly
    def _cross(step):
        i = ip
        for _ in range(n):
            j = (i + step) % n
            if irf[j] < half:
                frac = (irf[i] - half) / (irf[i] - irf[j])
                return (i - ip if step > 0 else ip - i) + frac
            i = j
        return float(n)
    fwhm_bins = _cross(1) + _cross(-1)
    w = max(3, int(math.ceil(5 * fwhm_bins)))
    idx = np.arange(ip - w, ip + w + 1)
    vals = irf[idx % n]
    centroid = float((idx * vals).sum() / vals.sum())
    return IRFStats(peak_ns=(ip + 0.5) * bin_ns, centroid_ns=(centroid + 0.5) * bin_ns,
                    fwhm_ns=fwhm_bins * bin_ns)


def fit_model_irf(irf_counts, bin_ns: float, *, tail: bool = True) -> ModelIRF:
    """Fit a :class:`ModelIRF` (plus flat background) to a measured IRF histogram (Poisson MLE).

    Raises :class:`QrspecError` when the optimiser fails (an IRF is calibration input, not a
    per-particle fit).
    """
    from scipy.optimize import minimize

    c = np.asarray(irf_counts, dtype=float)
    if c.ndim != 1 or c.size < 8 or not np.all(np.isfinite(c)) or c.min() < 0:
        raise QrspecError(f"irf_counts.shape={c.shape} must be 1-D, >= 8 finite counts >= 0")
    if not bin_ns > 0:
        raise QrspecError(f"bin_ns={bin_ns!r} must be > 0")
    n = c.size
    st = irf_stats(c, bin_ns)
    total = c.sum()
    bg0 = float(np.sort(c)[: max(1, n // 4)].mean())
    x0 = [st.peak_ns - 0.5 * bin_ns, math.log(max(st.fwhm_ns, bin_ns) / 2.3548),
          math.log(max(total - bg0 * n, 1.0)), math.log(bg0 + 1e-3)]
    if tail:
        x0 += [0.0, math.log(0.3)]  # logit(weight)=0 -> 0.5 start, tau 0.3 ns
    pos = c > 0
    clogc = float((c[pos] * np.log(c[pos])).sum())

    def unpack(x):
        w = 1.0 / (1.0 + math.exp(-x[4])) if tail else 0.0
        w = min(w, 0.99)
        tau = math.exp(x[5]) if tail else 0.3
        return ModelIRF(x[0], math.exp(x[1]), w, tau), math.exp(x[2]), math.exp(x[3])

    def dev(x):
        try:
            model, amp, bg = unpack(x)
        except QrspecError:
            return 1e300
        m = amp * model.histogram(n, bin_ns) + bg
        m = np.maximum(m, 1e-300)
        return 2.0 * float((m - c).sum() - (c[pos] * np.log(m[pos])).sum() + clogc)

    res = minimize(dev, np.array(x0), method="Nelder-Mead",
                   options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6})
    res = minimize(dev, res.x, method="Nelder-Mead",
                   options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-7})
    if not np.isfinite(res.fun):
        raise QrspecError(f"IRF model fit failed: {res.message}")
    return unpack(res.x)[0]
