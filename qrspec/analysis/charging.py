"""Stage: the neutral reference and the charging inversion n_c(t), tau_A,XX(t) per charging
window, with the particle's time-weighted means.

Which windows count in the particle's means (the *usable* rule) is decided here, once, and
stored per window (:attr:`ChargingWindows.usable`); nothing downstream re-derives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.decay_fits import merge_rows
from qrspec.analysis.levels import Levels
from qrspec.analysis.states import States, measure_state
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["ChargingWindows", "Charging", "invert_charging", "charging_windows",
           "UNUSABLE_CHARGING_FLAGS"]

# a window with one of these inversion flags gives only a bound or a non-identifiable n: it
# stays in the table (with its flags) but not in the particle's mean
UNUSABLE_CHARGING_FLAGS = frozenset({
    "degenerate", "underdetermined", "auger_signal_small", "trap_like", "at_upper_bound",
    "poor_fit", "neutral_inconsistent", "no_xx_auger"})


@dataclass(frozen=True, eq=False)
class ChargingWindows:
    """One row per inverted charging window (windows without both lifetimes are left out).

    Attributes
    ----------
    t_start_s, t_stop_s : ndarray of float64
        First start and last stop of the window's segments.
    n_c, n_c_err : ndarray of float64
        Charging number and its 68 % half-width.
    tau_a_xx_ns, tau_a_xx_err_ns : ndarray of float64
        Charged biexciton Auger lifetime and its error.
    tau_x_ns, tau_xx_ns : ndarray of float64
        Charged exciton lifetime and (heralded) biexciton lifetime of the window.
    n_photons : ndarray of int64
        Photons in the window.
    flags : tuple of str
        Identifiability / quality flags of each window's inversion (comma-joined).
    usable : ndarray of bool
        The window counts in the particle's means (inverted, finite n, no flag of
        :data:`UNUSABLE_CHARGING_FLAGS`).
    """

    t_start_s: np.ndarray
    t_stop_s: np.ndarray
    n_c: np.ndarray
    n_c_err: np.ndarray
    tau_a_xx_ns: np.ndarray
    tau_a_xx_err_ns: np.ndarray
    tau_x_ns: np.ndarray
    tau_xx_ns: np.ndarray
    n_photons: np.ndarray
    flags: tuple[str, ...]
    usable: np.ndarray


@dataclass(frozen=True, eq=False)
class Charging:
    """Charging inversion of one particle.

    Attributes
    ----------
    windows : ChargingWindows
        Per-window table (empty when nothing was inverted).
    model_json : str
        The charge model used (ChargeModelConfig JSON; "" when not inverted).
    neutral_tau_x_ns : float
        Neutral exciton lifetime used as reference (NaN without one).
    tau_a_xx_neutral_ns : float
        Neutral biexciton Auger lifetime (model; NaN when undefined).
    n_c_mean, n_c_err : float
        Time-weighted mean charging number over the usable windows and its standard error.
    tau_a_xx_charged_ns, tau_a_xx_charged_err_ns : float
        Time-weighted mean charged biexciton Auger lifetime and its standard error.
    tau_x_charged_ns, tau_xx_charged_ns : float
        Time-weighted mean exciton and biexciton lifetimes of the usable windows.
    flags : tuple of str
        Flags of this stage.
    """

    windows: ChargingWindows
    model_json: str
    neutral_tau_x_ns: float
    tau_a_xx_neutral_ns: float
    n_c_mean: float
    n_c_err: float
    tau_a_xx_charged_ns: float
    tau_a_xx_charged_err_ns: float
    tau_x_charged_ns: float
    tau_xx_charged_ns: float
    flags: tuple[str, ...]


def charging_windows(segments, label: str, min_time_s: float) -> list[np.ndarray]:
    """Group consecutive segments with ``label`` into windows of >= ``min_time_s`` total.

    Parameters
    ----------
    segments : qrspec.levels.Segments
        Labelled segments.
    label : str
        Segment label to group.
    min_time_s : float
        Least time per window.

    Returns
    -------
    list of ndarray, shape (n, 2)
        The segments' ``(start, stop)`` rows of each window.
    """
    m = segments.label == label
    starts, stops = segments.start_s[m], segments.stop_s[m]
    out, cur, acc = [], [], 0.0
    for a, b in zip(starts, stops, strict=True):
        cur.append((a, b))
        acc += b - a
        if acc >= min_time_s:
            out.append(np.asarray(cur))
            cur, acc = [], 0.0
    if cur and (acc >= 0.5 * min_time_s or not out):
        # a last window at least half full stands alone; a shorter one joins the previous
        # window; when all charged time is shorter than one window, it is one window
        if out and acc < 0.5 * min_time_s:
            out[-1] = np.concatenate([out[-1], np.asarray(cur)])
        else:
            out.append(np.asarray(cur))
    elif cur and out:
        out[-1] = np.concatenate([out[-1], np.asarray(cur)])
    return out


def _empty_windows() -> ChargingWindows:
    f = np.zeros(0)
    return ChargingWindows(f, f, f, f, f, f, f, f, np.zeros(0, np.int64), (), np.zeros(0, bool))


def invert_charging(photons: Photons, levels: Levels, states: States, alignment: Alignment,
                    config: AnalysisConfig, pairs) -> Charging:
    """Neutral reference, then n_c and tau_A,XX of every charging window.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    levels : Levels
        Labelled segments (charged segments are pooled into windows of
        ``config.charging_window_s``).
    states : States
        The neutral state gives the reference (tau_X0, tau_XX0).
    alignment : Alignment
        Offsets and HBT delay.
    config : AnalysisConfig
        Uses ``charge_model``, ``charging_window_s`` and the state parameters.
    pairs : qrspec.stats.pairs.PhotonPairs
        Same-period photon pairs of all of ``photons``.

    Returns
    -------
    Charging
    """
    from qrspec.charging import (
        ChargedSegment,
        ChargeModelConfig,
        NeutralReference,
        charging_trajectory,
    )

    cm = config.charge_model
    neutral = states.neutral
    flags: list[str] = []
    tau_a_xx_neutral = math.nan
    n_c_mean = n_c_err = tau_a_c = tau_a_c_err = tau_x_c = tau_xx_c = math.nan
    neutral_ref = None
    if neutral is not None and np.isfinite(neutral.tau_x_ns):
        k_r = cm.qy_x0 / neutral.tau_x_ns
        if np.isfinite(neutral.tau_xx_ns):
            k_a = 1.0 / neutral.tau_xx_ns - cm.beta_xx * k_r
            tau_a_xx_neutral = 1.0 / k_a if k_a > 0 else math.nan
            if not k_a > 0:
                flags.append("neutral tau_XX is not shorter than radiative 1/(beta_xx k_r): "
                             "no neutral Auger rate")
        try:
            if cm.tau_a_xx0_ns is not None:
                neutral_ref = NeutralReference(neutral.tau_x_ns, neutral.tau_x_err_ns,
                                               tau_a_xx0_ns=cm.tau_a_xx0_ns, qy_x0=cm.qy_x0)
            elif np.isfinite(neutral.tau_xx_ns) and np.isfinite(tau_a_xx_neutral):
                neutral_ref = NeutralReference(neutral.tau_x_ns, neutral.tau_x_err_ns,
                                               tau_xx0_ns=neutral.tau_xx_ns,
                                               tau_xx0_err_ns=neutral.tau_xx_err_ns,
                                               qy_x0=cm.qy_x0)
        except QrspecError as exc:
            flags.append(f"neutral reference unusable: {exc}")
    if neutral_ref is None and states.charged is not None:
        flags.append("no usable neutral reference: n_c and tau_A not inverted")

    model = None
    table = _empty_windows()
    w_charged = merge_rows(levels.segments.windows(label="charged"))
    if neutral_ref is not None and w_charged.size:
        model = ChargeModelConfig(variant=cm.variant, eps=cm.eps, gamma=cm.gamma,
                                  qy_x0=cm.qy_x0, beta_xminus=cm.beta_xminus,
                                  beta_xx=cm.beta_xx, tau_x0_ns=neutral.tau_x_ns,
                                  tau_a_xx0_ns=(cm.tau_a_xx0_ns if cm.tau_a_xx0_ns is not None
                                                else tau_a_xx_neutral))
        segments, seg_meta = [], []
        windows = charging_windows(levels.segments, "charged", config.charging_window_s)
        for win in windows:
            st = measure_state(photons, merge_rows(win), "charged", alignment, config, pairs,
                               with_g2=False)
            ok = all(np.isfinite([st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns,
                                  st.tau_xx_err_ns])) and st.tau_x_err_ns > 0 \
                and st.tau_xx_err_ns > 0
            if not ok:
                continue
            segments.append(ChargedSegment(float(win[0, 0]), float(win[-1, 1]), st.tau_x_ns,
                                           st.tau_x_err_ns, st.tau_xx_ns, st.tau_xx_err_ns))
            seg_meta.append((float(np.sum(win[:, 1] - win[:, 0])), st))
        n_windows = len(windows)
        if len(segments) < n_windows:
            flags.append(f"{n_windows - len(segments)} of {n_windows} charging windows had "
                         "too few photons or pairs for both lifetimes")
        if segments:
            # grid starts find the uncapped variant's second root; the capped and power-law
            # lifetimes are monotonic in n: the closed-form / default start suffices
            traj = charging_trajectory(segments, neutral_ref, model, profile=False,
                                       n_starts=5 if cm.variant == "uncapped" else 0)
            w = np.asarray([m[0] for m in seg_meta])
            good = np.asarray([bool(f.success) and np.isfinite(f.n)
                               and not (set(f.flags) & UNUSABLE_CHARGING_FLAGS)
                               for f in traj.fits])
            rows, win_flags = [], []
            for i, seg in enumerate(segments):
                fit = traj.fits[i]
                n_err = 0.5 * (traj.n_hi[i] - traj.n_lo[i]) \
                    if np.isfinite(traj.n_hi[i] - traj.n_lo[i]) else fit.n_err_delta
                rows.append((seg.t_start_s, seg.t_stop_s, traj.n[i], n_err,
                             traj.tau_a_xx_ns[i], traj.tau_a_xx_err_ns[i], seg.tau_x_ns,
                             seg.tau_xx_ns, seg_meta[i][1].n_photons))
                win_flags.append(",".join(fit.flags))
                if fit.flags:
                    flags.append(f"charging window {i}: {', '.join(fit.flags)}")
            r = np.asarray(rows, float).reshape(-1, 9)
            table = ChargingWindows(t_start_s=r[:, 0], t_stop_s=r[:, 1], n_c=r[:, 2],
                                    n_c_err=r[:, 3], tau_a_xx_ns=r[:, 4],
                                    tau_a_xx_err_ns=r[:, 5], tau_x_ns=r[:, 6],
                                    tau_xx_ns=r[:, 7], n_photons=r[:, 8].astype(np.int64),
                                    flags=tuple(win_flags), usable=good)
            if good.any():
                ww = w[good] / w[good].sum()
                n_c_mean = float(np.sum(ww * table.n_c[good]))
                n_c_err = float(np.sqrt(np.sum((ww * table.n_c_err[good]) ** 2)))
                ta = np.asarray(traj.tau_a_xx_ns)[good]
                ta_e = np.asarray(traj.tau_a_xx_err_ns)[good]
                tau_a_c = float(np.sum(ww * ta))
                tau_a_c_err = float(np.sqrt(np.sum((ww * ta_e) ** 2)))
                tau_x_c = float(np.sum(ww * np.asarray([s.tau_x_ns for s in segments])[good]))
                tau_xx_c = float(np.sum(ww * np.asarray([s.tau_xx_ns for s in segments])[good]))
    return Charging(windows=table, model_json=model.to_json() if model is not None else "",
                    neutral_tau_x_ns=neutral.tau_x_ns if neutral is not None else math.nan,
                    tau_a_xx_neutral_ns=float(tau_a_xx_neutral), n_c_mean=n_c_mean,
                    n_c_err=n_c_err, tau_a_xx_charged_ns=tau_a_c,
                    tau_a_xx_charged_err_ns=tau_a_c_err, tau_x_charged_ns=tau_x_c,
                    tau_xx_charged_ns=tau_xx_c, flags=tuple(flags))
