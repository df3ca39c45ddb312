"""CW-excited single emitter on an HBT set-up, recorded in T2 mode.

Ground truth for the CW antibunching fit (methods.md section 9.2).

A two-level emitter excited at rate ``k_exc`` and decaying at ``k_rad`` emits a renewal
process: each inter-emission time is ``Exp(k_exc) + Exp(k_rad)``. Every photon is detected
independently (detector 0 with ``eta[0]``, detector 1 with ``eta[1]``, at most one of them), so
the cross-correlation is exactly ``g2(tau) = 1 - exp(-(k_exc + k_rad) |tau|)``: rise time
``tau_r = 1 / (k_exc + k_rad)``, ``g2(0) = 0``. Uncorrelated Poisson background on each
detector lowers the dip to ``1 - rho_0 rho_1`` with ``rho_d = S_d / (S_d + B_d)``; a second,
independent emitter of relative brightness ``r`` gives ``g2(0) = 2r / (1 + r)^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["CWTruth", "simulate_cw_hbt"]


@dataclass(frozen=True)
class CWTruth:
    """Ground truth of :func:`simulate_cw_hbt`.

    Attributes
    ----------
    g2_0 : float
        g2(0) of the recorded photons (background and second emitter included).
    g2_0_emitter : float
        g2(0) without background (0 for one emitter).
    rise_time_ns : float
        ``1 / (k_exc + k_rad)``.
    rho : tuple of float
        Signal fraction ``S / (S + B)`` per detector.
    delay_ns : float
        Cable delay of detector 1 (the dip sits at lag ``delay_ns``).
    """

    g2_0: float
    g2_0_emitter: float
    rise_time_ns: float
    rho: tuple
    delay_ns: float


def _emitter_times(rng, duration_ns, k_exc, k_rad):
    rate = 1.0 / (1.0 / k_exc + 1.0 / k_rad)
    n = int(duration_ns * rate * 1.05 + 10 * np.sqrt(duration_ns * rate) + 10)
    t = np.cumsum(rng.exponential(1 / k_exc, n) + rng.exponential(1 / k_rad, n))
    while t[-1] < duration_ns:  # rare: extend
        t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(1 / k_exc, n)
                                                 + rng.exponential(1 / k_rad, n))])
    return t[t < duration_ns]


def simulate_cw_hbt(seed: int, *, duration_s: float, k_exc_per_ns: float, k_rad_per_ns: float,
                    eta=(0.01, 0.01), background_cps=(0.0, 0.0), delay_ns: float = 0.0,
                    second_emitter_ratio: float = 0.0, t2_resolution_s: float = 1e-12
                    ) -> tuple[Photons, CWTruth]:
    """Simulate T2 photons of a CW-excited emitter on two detectors.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``.
    duration_s : float
        Acquisition time.
    k_exc_per_ns, k_rad_per_ns : float
        Excitation and radiative rates.
    eta : (float, float)
        Detection probability of an emitted photon on detector 0 and 1 (sum <= 1).
    background_cps : (float, float)
        Uncorrelated Poisson background per detector.
    delay_ns : float
        Extra cable delay of detector 1.
    second_emitter_ratio : float
        Brightness of an independent second identical emitter relative to the first (0: none).
    t2_resolution_s : float
        Time-tag resolution.

    Returns
    -------
    photons : Photons
        T2 photons (no sync).
    truth : CWTruth
    """
    if not (k_exc_per_ns > 0 and k_rad_per_ns > 0 and duration_s > 0):
        raise QrspecError("k_exc_per_ns, k_rad_per_ns and duration_s must be > 0")
    e0, e1 = (float(x) for x in eta)
    if not (e0 >= 0 and e1 >= 0 and e0 + e1 <= 1):
        raise QrspecError(f"eta={eta!r} must be two probabilities with sum <= 1")
    rng = np.random.default_rng(int(seed))
    dur_ns = duration_s * 1e9
    times, dets = [], []
    emitters = [(k_exc_per_ns, 1.0)]
    if second_emitter_ratio > 0:
        emitters.append((k_exc_per_ns, float(second_emitter_ratio)))
    signal = np.zeros(2)
    for k_exc, scale in emitters:
        t = _emitter_times(rng, dur_ns, k_exc, k_rad_per_ns)
        u = rng.random(t.size)
        d0 = u < e0 * scale
        d1 = (u >= e0 * scale) & (u < (e0 + e1) * scale)
        times += [t[d0], t[d1] + delay_ns]
        dets += [np.zeros(d0.sum(), np.int64), np.ones(d1.sum(), np.int64)]
        signal += [d0.sum(), d1.sum()]
    bg = np.asarray(background_cps, float)
    for d in (0, 1):
        k = rng.poisson(bg[d] * duration_s)
        times.append(rng.random(k) * dur_ns + (delay_ns if d == 1 else 0.0))
        dets.append(np.full(k, d, np.int64))
    t = np.concatenate(times)
    det = np.concatenate(dets)
    ticks = np.floor(t / (t2_resolution_s * 1e9)).astype(np.int64)
    keep = ticks >= 0
    ph = Photons.from_arrays(ticks[keep], det[keep], timestamps_unit=t2_resolution_s,
                             record_type="GenericT2")
    rate_bg = bg * duration_s
    rho = tuple(float(s / (s + b)) if s + b > 0 else float("nan")
                for s, b in zip(signal, rate_bg, strict=True))
    r = float(second_emitter_ratio)
    g_em = 2 * r / (1 + r) ** 2 if r > 0 else 0.0
    g_rec = 1 - rho[0] * rho[1] * (1 - g_em)
    return ph, CWTruth(g_rec, g_em, 1 / (k_exc_per_ns + k_rad_per_ns), rho, float(delay_ns))
