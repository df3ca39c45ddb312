"""Stage: decays, exciton and biexciton lifetimes and g2(0) of the neutral and charged states.

:func:`measure_state` is shared with the charging stage (one state measurement per charging
window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.decay_fits import (
    CASCADE_START_NS,
    IRF_SHIFT_BOUNDS_NS,
    TAIL_START_NS,
    fit_bin_ns,
    fit_stop_ns,
    fit_x,
    late_tail_start_ns,
    merge_rows,
)
from qrspec.analysis.levels import Levels
from qrspec.photons import Photons

__all__ = ["StateResult", "States", "measure_states", "measure_state", "state_irf"]

TEXT_IRF_SHIFT_BOUNDS_NS = (-0.5, 0.5)  # a text / npy IRF placed on the rise by its median
# (alignment.py): for a decay much longer than the IRF the rise is within ~FWHM/2 of it

@dataclass(frozen=True, eq=False)
class StateResult:
    """Decay, lifetimes and g2(0) of the photons in one state's windows.

    Attributes
    ----------
    label : str
        ``"neutral"`` or ``"charged"``.
    windows_s : ndarray of float64, shape (n, 2)
        Merged ``(start, stop)`` windows of the state.
    n_photons : int
        Photons in the windows.
    n_pairs : int
        Same-period two-detector photon pairs in the windows (heralded tau_XX).
    tau_x_ns, tau_x_err_ns : float
        Exciton lifetime (tail or IRF-reconvolution fit: ``fit_kind``; the neutral state at a
        known <N>: the X/XX cascade, ``fit_model``) and its standard error (cascade: with a
        model term, ``tau_x_tail_ns``).
    tau_xx_ns, tau_xx_err_ns : float
        Biexciton lifetime (heralded pairs) and its standard error.
    g2_zero, g2_zero_err : float
        Ungated g2(0) of the windows (NaN when not computed).
    message : str
        Why a value is NaN ("" when none).
    decay_counts : ndarray of int64 or None
        Aligned decay on ~``FIT_BIN_NS`` bins, or TCSPC bins when coarser (None without
        photons).
    decay_time_ns : ndarray of float64 or None
        Left bin edges of ``decay_counts`` (the last bin may be shorter).
    decay_bin_ns : float
        Bin width of ``decay_counts``.
    fit_model : str
        Model of the exciton tail fit ("" when none).
    fit_tau_ns : tuple of float
        Lifetimes of that fit.
    fit_model_counts : ndarray of float64 or None
        Fitted model on the whole bins of ``decay_counts``.
    fit_residuals : ndarray of float64 or None
        Pearson residuals (NaN outside the fit range).
    fit_kind : str
        ``"tail"`` (from ``t0 + 0.3 ns``, no IRF) or ``"reconvolution"`` (measured IRF,
        ``AnalysisConfig.irf_path``, with a fitted shift); "" when no fit was made.
    fit_shift_ns : float
        Fitted IRF shift of a reconvolution fit (NaN otherwise).
    tau_xx_heralded_ns : float
        The heralded fit's own value when ``tau_xx_ns`` was corrected for the triexciton share
        at the given <N> (neutral state, ``mean_excitations`` set:
        :func:`qrspec.charging.heralded.true_tau_xx0`); NaN when not corrected.
    tau_x_tail_ns : float
        With a cascade fit (``fit_model == "cascade"``): the late-tail mono-exponential
        lifetime of the same photons; half its difference from ``tau_x_ns`` is added to
        ``tau_x_err_ns`` in quadrature (model uncertainty, :func:`measure_state`). NaN
        otherwise.
    """

    label: str
    windows_s: np.ndarray
    n_photons: int
    n_pairs: int
    tau_x_ns: float
    tau_x_err_ns: float
    tau_xx_ns: float
    tau_xx_err_ns: float
    g2_zero: float
    g2_zero_err: float
    message: str
    decay_counts: np.ndarray | None
    decay_time_ns: np.ndarray | None
    decay_bin_ns: float
    fit_model: str
    fit_tau_ns: tuple[float, ...]
    fit_model_counts: np.ndarray | None
    fit_residuals: np.ndarray | None
    fit_kind: str = ""
    fit_shift_ns: float = math.nan
    tau_xx_heralded_ns: float = math.nan
    tau_x_tail_ns: float = math.nan


@dataclass(frozen=True, eq=False)
class States:
    """The neutral and charged states of one particle.

    Attributes
    ----------
    neutral, charged : StateResult or None
        None when the particle has no period of that label (flagged).
    frac_time_neutral : float
        Fraction of the segments' time labelled neutral (NaN without segments).
    flags : tuple of str
        Flags of this stage.
    """

    neutral: StateResult | None
    charged: StateResult | None
    frac_time_neutral: float
    flags: tuple[str, ...]


def state_irf(alignment: Alignment, decay) -> np.ndarray | None:
    """The measured IRF of a state's decay.

    Each detector's IRF (on the aligned axis, background subtracted, unit area) weighted by that
    detector's share of the decay's photons, rebinned to the decay's bins. None without a measured
    IRF.
    """
    from qrspec.fitting.irf import normalize_irf

    rows = alignment.irf_counts
    if rows is None:
        return None
    r = int(round(decay.bin_ns / decay.resolution_ns))
    n_fine = rows.shape[1]
    share = decay.counts_per_detector.sum(axis=1).astype(np.float64)
    share = share / share.sum() if share.sum() > 0 else np.full(share.size, 1 / share.size)
    fine = sum(w * normalize_irf(row) for w, row in zip(share, rows, strict=True))
    pad = np.zeros(-(-n_fine // r) * r)
    pad[:n_fine] = fine
    return pad.reshape(-1, r).sum(axis=1)


def measure_state(photons: Photons, windows, label: str, alignment: Alignment,
                  config: AnalysisConfig, pairs, *, with_g2: bool = True,
                  late_tail: bool = False, afterpulse=None,
                  cascade_mean_excitations: float | None = None) -> StateResult:
    """Decay, lifetimes and g2(0) of the photons inside ``windows`` (None: all photons).

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    windows : ndarray, shape (n, 2), or None
        Merged ``(start, stop)`` windows in seconds.
    label : str
        Name of the state (recorded in the result).
    alignment : Alignment
        Offsets and HBT delay.
    config : AnalysisConfig
        Analysis parameters.
    pairs : qrspec.stats.pairs.PhotonPairs or None
        Same-period photon pairs of all of ``photons`` (computed once); the pairs of the
        windows are those whose period lies inside them. None with one detector: no tau_XX,
        no g2.
    with_g2 : bool
        Compute g2(0) of the windows too (two detectors only).
    late_tail : bool
        With a heralded tau_XX, fit the exciton's late tail (mono-exponential from
        :func:`~qrspec.analysis.decay_fits.late_tail_start_ns`: no biexciton cascade left)
        instead of the bi-exponential tail from 0.3 ns (the states; the charging windows keep
        the early fit, whose photons the inversion needs).
    afterpulse : qrspec.analysis.detector.AfterpulseBackground, optional
        Afterpulse nanotime profile of ``photons``: scaled to the windows' photons, a fixed
        background of the exciton fit.
    cascade_mean_excitations : float, optional
        The neutral state at a known <N>: fit the exciton lifetime with the constrained X/XX
        cascade model from ``CASCADE_START_NS`` after the rise (tail fit, no measured IRF),
        the late tail (or the bi/mono tail) only when that fit fails. Issue 15: the late tail's
        mono-exponential left the biexciton photons still there at 4 tau_XX and the rise of
        the exciton photons that follow a biexciton in the fit, and it took photons of
        charged periods (missed or misplaced change points) as neutral ones; on the full
        pipeline's 30 random rods tau_X0 pulls had std 5.6 (-1 % at <N> = 0.45, -8 % on a rod
        with 30 % of its "neutral" time charged). The cascade models the first two; its
        free eta_XX/eta_X also takes up a short charged component, with a larger error
        (pull std 1.24, 2-sigma coverage 93 % on those rods). It neglects N >= 3 and the
        detector dead time (the exciton photon after a detected biexciton photon is lost): on
        bright neutral rods at <N> = 0.45 (4-22 M photons) it came out up to +0.8 % long
        (pulls up to 10), where the late tail is 0.2-0.9 % short. The two fits' models fail
        in opposite directions, so half their difference is added to the cascade's error in
        quadrature (the late-tail value is kept as ``tau_x_tail_ns``): pull std 0.77 and
        2-sigma coverage 97 % on the 30 rods, 100 % on the bright ones
        (``docs/charging_model.md``).

    Returns
    -------
    StateResult
    """
    from qrspec.fitting.biexciton import heralded_tau_xx_of_decay
    from qrspec.stats.correlation import g2, g2_peaks
    from qrspec.stats.decay import DecayAccumulator, background_counts

    dets = config.detectors
    offsets = alignment.offsets_ns
    win = np.zeros((0, 2)) if windows is None else np.asarray(windows, float)
    sub = photons if windows is None else photons.select_windows(windows)
    if sub.size == 0:
        return StateResult(label, win, 0, 0, *(math.nan,) * 6, "no photons", None, None,
                           math.nan, "", (), None, None)
    acc = DecayAccumulator(detectors=dets)  # one pass; two resolutions of the same counts
    acc.add(sub)
    dec = acc.result(offsets_ns=offsets, bin_ns=fit_bin_ns(photons))
    msgs = []
    if pairs is None:  # one detector: no pairs, no g2 (flagged by the acquisition)
        t1_ns = np.zeros(0)
        txx = txx_err = math.nan
        with_g2 = False
        m_xx = ""
    else:
        inside = np.full(pairs.sync.size, windows is None) if windows is None \
            or windows.size == 0 else pairs.in_windows(windows, photons.timestamps_unit)
        t1_ns = pairs.t1_ns[inside]
        span_s = sub.duration_s if windows is None else float(np.sum(windows[:, 1]
                                                                     - windows[:, 0]))
        n_pulses = max(int(round(span_s / sub.sync_period_s)), 1)
        full = acc.result(offsets_ns=offsets)
        txx, txx_err, m_xx = heralded_tau_xx_of_decay(t1_ns, dec, background_counts(full),
                                                      n_pulses, start_ns=TAIL_START_NS,
                                                      stop_ns=fit_stop_ns(dec))
    irf = state_irf(alignment, dec)
    bounds = IRF_SHIFT_BOUNDS_NS if not alignment.irf_roll_ns else TEXT_IRF_SHIFT_BOUNDS_NS
    # with a heralded tau_XX the exciton tail is fitted where the biexciton cascade is over
    late = late_tail_start_ns(txx, txx_err) if irf is None and late_tail else None
    fixed = None if afterpulse is None else afterpulse.for_decay(dec, sub.size)
    x = fit_x(dec, config.min_decay_photons, method=config.fit_method, irf=irf,
              shift_bounds_ns=bounds, start_ns=late, fixed_background=fixed,
              models=("mono",) if late is not None else ("bi", "mono"))
    tail_ns = math.nan
    if irf is None and cascade_mean_excitations is not None:
        cas = fit_x(dec, config.min_decay_photons, method=config.fit_method,
                    start_ns=CASCADE_START_NS, fixed_background=fixed, models=("cascade",),
                    mean_excitations=cascade_mean_excitations)
        if cas.fit is not None and math.isfinite(x.tau_ns):
            tail_ns = x.tau_ns
            err = math.hypot(cas.tau_err_ns, 0.5 * (cas.tau_ns - tail_ns))
            x = replace(cas, tau_err_ns=err)
        elif cas.fit is not None:  # no late tail (too few photons there): the cascade alone
            x = cas
    if x.message:
        msgs.append(f"tau_X: {x.message}")
    if m_xx:
        msgs.append(f"tau_XX: {m_xx}")
    g2_0 = g2_err = math.nan
    if with_g2:
        curve = g2(sub, detectors=dets, max_lag_periods=config.g2_max_lag_periods,
                   bin_ns=config.g2_bin_ns, delay_ns=alignment.delay_ns,
                   time_windows_s=None if windows is None else windows)
        pk = g2_peaks(curve, window_ns=config.g2_peak_window_ns)
        g2_0, g2_err = pk.g2_0, pk.g2_0_err
    fit = x.fit
    return StateResult(
        label=label, windows_s=win, n_photons=int(sub.size), n_pairs=int(t1_ns.size),
        tau_x_ns=x.tau_ns, tau_x_err_ns=x.tau_err_ns, tau_xx_ns=txx, tau_xx_err_ns=txx_err,
        g2_zero=g2_0, g2_zero_err=g2_err, message="; ".join(msgs),
        decay_counts=dec.counts, decay_time_ns=dec.time_ns, decay_bin_ns=float(dec.bin_ns),
        fit_model="" if fit is None else fit.model,
        fit_tau_ns=() if fit is None else tuple(float(t) for t in fit.tau_ns),
        fit_model_counts=None if fit is None else fit.model_counts,
        fit_residuals=None if fit is None else fit.residuals,
        fit_kind="" if fit is None else ("tail" if irf is None else "reconvolution"),
        fit_shift_ns=math.nan if fit is None or irf is None else float(fit.shift_ns),
        tau_x_tail_ns=tail_ns)


def _triexciton_corrected(st: StateResult, config: AnalysisConfig) -> StateResult:
    """The neutral heralded tau_XX corrected for the triexciton share at the given <N>.

    See :mod:`qrspec.charging.heralded`: the uncorrected value is +4 % at <N> = 0.2 and +7 % at
    0.4, which halves k_A,XX0 = 1/tau_XX0 - beta_XX k_r. Unchanged without ``mean_excitations``.
    """
    from qrspec.charging.heralded import true_tau_xx0

    mu = config.mean_excitations
    if mu is None or not all(np.isfinite([st.tau_xx_ns, st.tau_xx_err_ns, st.tau_x_ns])):
        return st
    t, e = true_tau_xx0(st.tau_xx_ns, st.tau_xx_err_ns, st.tau_x_ns, config.charge_model, mu)
    return replace(st, tau_xx_ns=t, tau_xx_err_ns=e, tau_xx_heralded_ns=st.tau_xx_ns)


def measure_states(photons: Photons, levels: Levels, alignment: Alignment,
                   config: AnalysisConfig, pairs, *, afterpulse=None) -> States:
    """Neutral and charged states: all photons of the segments with each label.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    levels : Levels
        Labelled segments.
    alignment : Alignment
        Offsets and HBT delay.
    config : AnalysisConfig
        Analysis parameters.
    pairs : qrspec.stats.pairs.PhotonPairs
        Same-period photon pairs of all of ``photons``.
    afterpulse : qrspec.analysis.detector.AfterpulseBackground, optional
        Afterpulse profile for the decay fits (:func:`measure_state`).

    Returns
    -------
    States
    """
    segs = levels.segments
    total_time = float(np.sum(segs.stop_s - segs.start_s)) if segs.size else 0.0
    flags: list[str] = []
    found: dict[str, StateResult] = {}
    for label in ("neutral", "charged"):
        w = merge_rows(segs.windows(label=label))
        if w.size == 0:
            flags.append(f"no {label} period")
            continue
        mu = config.mean_excitations if label == "neutral" else None
        st = measure_state(photons, w, label, alignment, config, pairs, late_tail=True,
                           afterpulse=afterpulse,
                           cascade_mean_excitations=mu if mu is not None and mu > 0 else None)
        if label == "neutral":
            st = _triexciton_corrected(st, config)
        found[label] = st
        if st.message:
            flags.append(f"{label}: {st.message}")
    neutral = found.get("neutral")
    t_neutral = float(np.sum(neutral.windows_s[:, 1] - neutral.windows_s[:, 0])) \
        if neutral is not None else 0.0
    return States(neutral=neutral, charged=found.get("charged"),
                  frac_time_neutral=t_neutral / total_time if total_time > 0 else math.nan,
                  flags=tuple(flags))
