"""Physics of each intensity level from its photons: the evidence the state labels use.

For every level of a :class:`~qrspec.levels.LevelClustering` (or labelled
:class:`~qrspec.levels.Segments`), :func:`level_evidence` measures from the level's photons:

* ``tau_xx_ns``: the biexciton lifetime from the first photon of same-period two-detector
  pairs (heralded; accidental signal x background pairs modelled with fixed shape and size,
  :func:`qrspec.fitting.biexciton.accidental_first_photon_counts`), when the level has at
  least ``min_pairs`` pairs.
* ``tau_x_ns``: the exciton lifetime from a mono-exponential (+ flat background) Poisson fit of
  the *late* tail of the aligned decay, starting ``xx_suppression`` biexciton lifetimes after
  the rise (``tau_xx + 2 sigma`` when measured, else ``tau/1.7`` from a first tail fit: in
  every variant of :mod:`qrspec.charging` with QY_X0 >= 0.7, ``tau_X/tau_XX >= 1.7``). The
  biexciton then contributes < 0.2 % of the fitted photons, so a pure charge state is
  mono-exponential there.
* ``shape_p``: the p-value of the likelihood-ratio test mono- versus bi-exponential on the same
  late tail (deviance difference against chi-square with 2 degrees of freedom, conservative for
  the boundary), and ``second_fraction``/``second_tau_ns``: the minor component of the bi fit.
  A level that merges two charge states (a missed change point) has two X lifetimes;
  :func:`qrspec.levels.label_levels` flags it when ``shape_p < LabelRules.shape_alpha`` and the
  minor component carries at least ``LabelRules.shape_min_fraction`` of the tail photons at a
  lifetime differing by at least ``LabelRules.shape_min_tau_ratio``.
* ``tau_x_heralded_ns``: the exciton lifetime from the delays ``t2 - t1`` of the same pairs
  (:func:`qrspec.fitting.biexciton.heralded_tau_x`, flat accidental pedestal) from
  ``HERALD_MIN_DELAY_XX`` tau_XX (at least 0.5 ns) to 50 ns. At finite <N> a triexciton pulse
  gives XXX -> XX pairs whose delay is ~Exp(tau_XX): from 0.5 ns on they made the heralded
  tau_X of a single neutral rod 4.7 % short at <N> = 0.3 (2-3 of its standard errors for 30 s,
  which the verdict then read as a second emitter); from 3 tau_XX on it is -1 +- 1 % (6
  simulated rods each; without triexcitons, n_max_cascade = 2: +1 +- 1 %).
  For one emitter in one state the X photon follows its XX photon after ``Exp(tau_X)``, the
  same lifetime as the late tail; pairs of two emitters, or of two merged states, add a faster
  component (the second photon of a cross pair from a short-lived partner), so a heralded
  ``tau_X`` significantly shorter than the late-tail one shows a second emitter or state.
* ``ratio = tau_x / tau_xx`` with its delta-method error. Neutral:
  ``tau_X0/tau_XX0 = beta_XX QY_X0 + tau_X0/tau_A,XX0 >= 2.8`` for QY_X0 >= 0.7 (beta_XX = 4);
  charged (capped variant, every n): 1.7-2.9 (``qrspec.charging`` tables, validated in
  ``scripts/validate_levels.py``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["LevelEvidence", "level_evidence"]

logger = logging.getLogger(__name__)

TAIL_START_NS = 0.3  # past the IRF peak (~0.1 ns): the tail fits start this far after the rise
MIN_RATIO_X_XX = 1.7  # smallest tau_X/tau_XX of any charge state (module docstring)
HERALD_MIN_DELAY_XX = 3.0  # heralded tau_X from delays >= this many tau_XX (module docstring)


@dataclass(frozen=True, eq=False)
class LevelEvidence:
    """Per-level lifetimes, pair statistics and decay shape (one entry per level).

    Attributes
    ----------
    tau_x_ns, tau_x_err_ns : ndarray of float64
        Late-tail exciton lifetime and its error (NaN: too few photons or failed fit).
    tau_xx_ns, tau_xx_err_ns : ndarray of float64
        Heralded biexciton lifetime and its error (NaN: fewer than ``min_pairs`` pairs).
    n_photons, n_pairs : ndarray of int64
        Photons (selected detectors) and same-period pairs in the level.
    tail_start_ns : ndarray of float64
        Start of the late-tail fits after the rise.
    shape_p : ndarray of float64
        p-value of mono- vs bi-exponential on the late tail (NaN when not testable).
    second_fraction : ndarray of float64
        Photon fraction of the minor bi-exponential component in the late tail (NaN if none).
    second_tau_ns : ndarray of float64
        Its lifetime.
    tau_x_heralded_ns, tau_x_heralded_err_ns : ndarray of float64
        Exciton lifetime from the pair delays and its error (NaN: fewer than ``min_pairs``).
    messages : tuple of str
        Why a value is NaN, per level ("" when all are defined).
    """

    tau_x_ns: np.ndarray
    tau_x_err_ns: np.ndarray
    tau_xx_ns: np.ndarray
    tau_xx_err_ns: np.ndarray
    n_photons: np.ndarray
    n_pairs: np.ndarray
    tail_start_ns: np.ndarray
    shape_p: np.ndarray
    second_fraction: np.ndarray
    second_tau_ns: np.ndarray
    messages: tuple
    tau_x_heralded_ns: np.ndarray | None = None
    tau_x_heralded_err_ns: np.ndarray | None = None

    @property
    def n_levels(self) -> int:
        """Number of levels."""
        return int(self.tau_x_ns.size)

    @property
    def ratio(self) -> np.ndarray:
        """``tau_x_ns / tau_xx_ns`` (NaN where either is undefined)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.tau_x_ns / self.tau_xx_ns

    @property
    def ratio_err(self) -> np.ndarray:
        """Delta-method error of :attr:`ratio` (independent photon sets: tail vs pairs)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.ratio * np.hypot(self.tau_x_err_ns / self.tau_x_ns,
                                         self.tau_xx_err_ns / self.tau_xx_ns)

    @classmethod
    def from_lifetimes(cls, tau_x_ns, tau_x_err_ns=None, tau_xx_ns=None,
                       tau_xx_err_ns=None) -> LevelEvidence:
        """Evidence from given lifetimes only (no photon counts, no shape test)."""
        tx = np.asarray(tau_x_ns, dtype=np.float64)
        g = tx.size
        nan = np.full(g, np.nan)

        def arr(v, name):
            if v is None:
                return nan.copy()
            a = np.asarray(v, dtype=np.float64)
            if a.shape != (g,):
                raise QrspecError(f"{name} shape {a.shape} != number of levels ({g},)")
            return a

        return cls(tx, arr(tau_x_err_ns, "tau_x_err_ns"), arr(tau_xx_ns, "tau_xx_ns"),
                   arr(tau_xx_err_ns, "tau_xx_err_ns"), np.zeros(g, np.int64),
                   np.zeros(g, np.int64), nan.copy(), nan.copy(), nan.copy(), nan.copy(),
                   ("",) * g, nan.copy(), nan.copy())


def _whole_bins(decay):
    n = int(np.floor(decay.period_ns / decay.bin_ns + 1e-9))
    return decay.counts[:n], decay.time_ns[:n], n


def _tail_fit(counts, time_ns, period_ns, start_ns, model, min_photons):
    from qrspec.fitting.lifetime import fit_decay

    return fit_decay(counts, time_ns=time_ns, period_ns=period_ns,
                     fit_range_ns=(start_ns, period_ns), irf=None, background="fit",
                     model=model, min_photons=min_photons)


def level_evidence(photons, levels, *, detectors=(0, 1), offsets_ns=None, pairs=None,
                   bin_ns: float = 0.1, min_photons: int = 500, min_pairs: int = 20,
                   xx_suppression: float = 4.0) -> LevelEvidence:
    """Measure each level's exciton and biexciton lifetimes and decay shape.

    Parameters
    ----------
    photons : Photons
        T3 photons the segments were computed from (the change points of
        :func:`~qrspec.levels.find_change_points` index the photons of ``detectors``).
    levels : LevelClustering or Segments
        Segments with their level.
    detectors : (int, int)
        The two HBT detectors.
    offsets_ns : (float, float), optional
        Detector alignment (default: from the decay of all photons).
    pairs : PhotonPairs, optional
        Same-period pairs of all ``photons`` (:func:`qrspec.stats.pairs.photon_pairs` with the
        same offsets); computed when omitted.
    bin_ns : float
        Decay bin for the fits (whole TCSPC bins).
    min_photons : int
        Fewest photons in a late-tail fit range.
    min_pairs : int
        Fewest pairs for a heralded tau_XX.
    xx_suppression : float
        The late tail starts this many biexciton lifetimes after the rise (> 0).

    Returns
    -------
    LevelEvidence
    """
    from scipy.stats import chi2

    from qrspec.fitting.biexciton import heralded_tau_x, heralded_tau_xx_of_decay
    from qrspec.levels.clustering import assigned_segments
    from qrspec.photons import Photons
    from qrspec.stats.decay import DecayAccumulator, background_counts, decay_histogram
    from qrspec.stats.pairs import photon_pairs

    seg = assigned_segments(levels)
    if not isinstance(photons, Photons) or not photons.is_t3:
        raise QrspecError("photons must be T3 Photons (nanotimes are needed for lifetimes)")
    if not (np.isfinite(xx_suppression) and xx_suppression > 0):
        raise QrspecError(f"xx_suppression={xx_suppression!r} must be > 0")
    for name, v in (("min_photons", min_photons), ("min_pairs", min_pairs)):
        if not isinstance(v, int | np.integer) or v < 1:
            raise QrspecError(f"{name}={v!r} must be an integer >= 1")
    dets = [int(d) for d in detectors]
    # read only: no copy when every photon is already on ``detectors`` (the pipeline's case)
    ph = photons if np.isin(photons.detector_ids, dets).all() \
        else photons.select(detectors=dets)
    if offsets_ns is None:
        offsets_ns = decay_histogram(ph, detectors=dets).offsets_ns
    offsets = np.asarray(offsets_ns, dtype=np.float64)
    if pairs is None:
        pairs = photon_pairs(ph, detectors=dets, offsets_ns=offsets)
    g = seg.n_levels
    out = {k: np.full(g, np.nan) for k in ("tx", "txe", "txx", "txxe", "start", "p", "f2",
                                           "t2", "txh", "txhe")}
    n_ph = np.zeros(g, np.int64)
    n_pairs = np.zeros(g, np.int64)
    msgs = [""] * g
    for k in range(g):
        w = seg.windows(level=k)
        if w.shape[0] == 0:
            msgs[k] = "empty level"
            continue
        sub = ph.select_windows(w)
        n_ph[k] = sub.size
        if sub.size == 0:
            msgs[k] = "no photons"
            continue
        acc = DecayAccumulator(detectors=dets)
        acc.add(sub)
        full = acc.result(offsets_ns=offsets)
        dec = acc.result(offsets_ns=offsets, bin_ns=bin_ns)
        in_level = pairs.in_windows(w, ph.timestamps_unit)
        t1 = pairs.t1_ns[in_level]
        n_pairs[k] = t1.size
        span_s = float(np.sum(w[:, 1] - w[:, 0]))
        n_pulses = max(int(round(span_s / sub.sync_period_s)), 1)
        txx, txxe, m = heralded_tau_xx_of_decay(t1, dec, background_counts(full), n_pulses,
                                                min_pairs=int(min_pairs),
                                                start_ns=TAIL_START_NS)
        out["txx"][k], out["txxe"][k] = txx, txxe
        if t1.size >= min_pairs:
            # delays from HERALD_MIN_DELAY_XX tau_XX on: the XXX -> XX delays of triexciton
            # pulses (~Exp(tau_XX)) are gone there (module docstring)
            d_min = max(0.5, HERALD_MIN_DELAY_XX * txx) if np.isfinite(txx) else 0.5
            her = heralded_tau_x(pairs.delay_ns[in_level], min_delay_ns=d_min)
            if her.success:
                out["txh"][k], out["txhe"][k] = her.tau_ns, her.tau_err_ns
        notes = [f"tau_XX: {m}"] if m else []
        counts, time_ns, n_bins = _whole_bins(dec)
        period = n_bins * dec.bin_ns
        if not dec.t0_ns + TAIL_START_NS < period:  # rise at the period end: no tail to fit
            notes.append(f"tau_X: tail start t0 + {TAIL_START_NS:g} ns = "
                         f"{dec.t0_ns + TAIL_START_NS:.4g} ns is past the end of the period")
            msgs[k] = "; ".join(notes)
            continue
        if np.isfinite(txx):
            xx_hi = txx + 2.0 * txxe
        else:
            first = _tail_fit(counts, time_ns, period, dec.t0_ns + TAIL_START_NS, "mono",
                              int(min_photons))
            xx_hi = first.tau_ns[0] / MIN_RATIO_X_XX if first.success else math.nan
        if not np.isfinite(xx_hi):
            notes.append("tau_X: first tail fit failed")
            msgs[k] = "; ".join(notes)
            continue
        start = dec.t0_ns + max(TAIL_START_NS, xx_suppression * xx_hi)
        if not start < period:
            notes.append(f"tau_X: late tail start {start:.4g} ns is past the end of the period "
                         f"({period:.4g} ns)")
            msgs[k] = "; ".join(notes)
            continue
        out["start"][k] = start - dec.t0_ns
        mono = _tail_fit(counts, time_ns, period, start, "mono", int(min_photons))
        if not (mono.success and np.isfinite(mono.tau_err_ns[0])):
            notes.append(f"tau_X: late-tail fit failed ({mono.message or 'no error'})")
            msgs[k] = "; ".join(notes)
            continue
        out["tx"][k], out["txe"][k] = mono.tau_ns[0], mono.tau_err_ns[0]
        bi = _tail_fit(counts, time_ns, period, start, "bi", int(min_photons))
        if bi.success:
            dd = max(mono.deviance - bi.deviance, 0.0)
            out["p"][k] = float(chi2.sf(dd, 2))
            j = int(np.argmin(bi.fractions))
            out["f2"][k] = float(bi.fractions[j])
            out["t2"][k] = float(bi.tau_ns[j])
        else:
            out["p"][k] = 1.0  # a second component cannot even be fitted
        msgs[k] = "; ".join(notes)
    logger.debug("level evidence: tau_x %s tau_xx %s", out["tx"], out["txx"])
    return LevelEvidence(out["tx"], out["txe"], out["txx"], out["txxe"], n_ph, n_pairs,
                         out["start"], out["p"], out["f2"], out["t2"], tuple(msgs),
                         out["txh"], out["txhe"])
