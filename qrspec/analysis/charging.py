"""Stage: the neutral reference and the charging inversion n_c(t), tau_A,XX(t) per charging
window, with the particle's time-weighted values.

Which windows count in the particle's values (the *usable* rule,
:attr:`qrspec.charging.inverse.ChargingFit.usable`) is decided here, once, and stored per window
(:attr:`ChargingWindows.usable`); nothing downstream re-derives it. The particle's n_c,
tau_A,XX^{nc-} and tau_A,XX0 come from one fit of the neutral reference and all usable windows
(:func:`qrspec.charging.particle.combine_windows`), because the windows share the reference's
error; their errors are half the profile-likelihood 68 % intervals, which are stored too.
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
from qrspec.charging.inverse import UNUSABLE_FLAGS
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["ChargingWindows", "Charging", "invert_charging", "charging_windows",
           "UNUSABLE_CHARGING_FLAGS"]

# a window with one of these inversion flags gives only a bound or a non-identifiable n: it
# stays in the table (with its flags) but not in the particle's values (defined with the model)
UNUSABLE_CHARGING_FLAGS = UNUSABLE_FLAGS


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
    tau_x_err_ns, tau_xx_err_ns : ndarray of float64
        Their errors (with them a second pass, e.g. against a group's pooled neutral
        reference, can re-invert the windows from the results file).
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
    tau_x_err_ns: np.ndarray
    tau_xx_err_ns: np.ndarray
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
    neutral_reference_source, neutral_reference_note : str
        Where the reference of the inversion came from ("particle", "user", "group"; "" when
        there is none) and a note (e.g. "tau_x0 from the particle").
    tau_a_xx_neutral_ns, tau_a_xx_neutral_err_ns : float
        The particle's neutral biexciton Auger lifetime 1/(1/tau_XX0 - beta_xx k_r [- k_nr0])
        from its neutral periods alone, and its delta-method error (NaN when undefined).
    tau_a_xx_neutral_lo_ns, tau_a_xx_neutral_hi_ns : float
        Its 68 % interval (k_A,XX0 -+ sigma transformed; hi = inf when open).
    n_c_mean, n_c_err, n_c_lo, n_c_hi : float
        Time-weighted charging number over the usable windows (joint fit), half-width and ends
        of its profile-likelihood 68 % interval.
    tau_a_xx_charged_ns, tau_a_xx_charged_err_ns : float
        Time-weighted charged biexciton Auger lifetime (joint fit) and interval half-width.
    tau_a_xx_charged_lo_ns, tau_a_xx_charged_hi_ns : float
        Its 68 % interval.
    tau_a_xx_neutral_joint_ns, tau_a_xx_neutral_joint_lo_ns, tau_a_xx_neutral_joint_hi_ns : float
        Neutral biexciton Auger lifetime of the joint fit (neutral reference and windows) and
        its 68 % interval.
    tau_x_charged_ns, tau_x_charged_err_ns : float
        Time-weighted mean exciton lifetime of the usable windows and its standard error.
    tau_xx_charged_ns, tau_xx_charged_err_ns : float
        The same for the biexciton lifetime.
    flags : tuple of str
        Flags of this stage.
    """

    windows: ChargingWindows
    model_json: str
    neutral_tau_x_ns: float
    neutral_reference_source: str
    neutral_reference_note: str
    tau_a_xx_neutral_ns: float
    tau_a_xx_neutral_err_ns: float
    tau_a_xx_neutral_lo_ns: float
    tau_a_xx_neutral_hi_ns: float
    n_c_mean: float
    n_c_err: float
    n_c_lo: float
    n_c_hi: float
    tau_a_xx_charged_ns: float
    tau_a_xx_charged_err_ns: float
    tau_a_xx_charged_lo_ns: float
    tau_a_xx_charged_hi_ns: float
    tau_a_xx_neutral_joint_ns: float
    tau_a_xx_neutral_joint_lo_ns: float
    tau_a_xx_neutral_joint_hi_ns: float
    tau_x_charged_ns: float
    tau_x_charged_err_ns: float
    tau_xx_charged_ns: float
    tau_xx_charged_err_ns: float
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
    return ChargingWindows(f, f, f, f, f, f, f, f, f, f, np.zeros(0, np.int64), (),
                           np.zeros(0, bool))


def invert_charging(photons: Photons, levels: Levels, states: States, alignment: Alignment,
                    config: AnalysisConfig, pairs, *, afterpulse=None) -> Charging:
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
    afterpulse : qrspec.analysis.detector.AfterpulseBackground, optional
        Afterpulse profile for the windows' decay fits
        (:func:`qrspec.analysis.states.measure_state`).

    Returns
    -------
    Charging
    """
    from qrspec.charging import (
        ChargedObservation,
        NeutralReference,
        charging_trajectory,
        combine_windows,
        neutral_rates,
    )

    cm = config.charge_model
    neutral = states.neutral
    flags: list[str] = []
    nan = math.nan
    own_rates = particle = None
    tau_x_c = tau_xx_c = tau_x_c_err = tau_xx_c_err = nan
    # the particle's own neutral periods (tau_X0 and heralded tau_XX0)
    own_ref = None
    if neutral is not None and np.all(np.isfinite([neutral.tau_x_ns, neutral.tau_x_err_ns,
                                                   neutral.tau_xx_ns, neutral.tau_xx_err_ns])):
        try:
            own_ref = NeutralReference.from_particle(neutral.tau_x_ns, neutral.tau_x_err_ns,
                                                     neutral.tau_xx_ns, neutral.tau_xx_err_ns)
        except QrspecError as exc:
            flags.append(f"neutral reference unusable: {exc}")
    if own_ref is not None:
        own_rates = neutral_rates(own_ref, cm)
        if not own_rates.consistent:
            flags.append("neutral tau_XX is significantly longer than radiative "
                         "1/(beta_xx k_r): no neutral Auger rate")
            own_ref = None
        elif not own_rates.k_a_xx0_per_ns > 0:
            flags.append("neutral Auger rate consistent with 0 (tau_A,XX0 open above): the "
                         "charging windows decide it")
    # the reference the windows are inverted against: user values replace measured ones
    neutral_ref = None
    tau_x0 = (cm.tau_x0_ns, cm.tau_x0_err_ns) if cm.tau_x0_ns is not None else (
        (neutral.tau_x_ns, neutral.tau_x_err_ns) if neutral is not None
        and np.isfinite(neutral.tau_x_ns) and np.isfinite(neutral.tau_x_err_ns) else None)
    try:
        if cm.tau_a_xx0_ns is not None and tau_x0 is not None:
            neutral_ref = NeutralReference(
                tau_x0[0], tau_x0[1], tau_a_xx0_ns=cm.tau_a_xx0_ns,
                tau_a_xx0_err_ns=cm.tau_a_xx0_err_ns, source="user",
                note="tau_x0 from " + ("the user" if cm.tau_x0_ns is not None
                                       else "the particle"))
        elif own_ref is not None and cm.tau_x0_ns is not None:
            neutral_ref = NeutralReference(tau_x0[0], tau_x0[1], tau_xx0_ns=own_ref.tau_xx0_ns,
                                           tau_xx0_err_ns=own_ref.tau_xx0_err_ns, source="user",
                                           note="tau_xx0 from the particle")
        else:
            neutral_ref = own_ref
    except QrspecError as exc:
        flags.append(f"neutral reference unusable: {exc}")
    if neutral_ref is None and states.charged is not None:
        flags.append("no usable neutral reference: n_c and tau_A not inverted")

    model = None
    table = _empty_windows()
    w_charged = merge_rows(levels.segments.windows(label="charged"))
    if neutral_ref is not None and w_charged.size:
        ref_rates = neutral_rates(neutral_ref, cm)
        # the model as used, with the reference's neutral lifetimes (recorded in the results;
        # the fit takes them from neutral_ref)
        model = cm.charge_model().replace(
            tau_x0_ns=neutral_ref.tau_x0_ns,
            tau_a_xx0_ns=ref_rates.tau_a_xx0_ns if ref_rates.k_a_xx0_per_ns > 0 else None)
        segments, seg_meta = [], []
        windows = charging_windows(levels.segments, "charged", config.charging_window_s)
        for win in windows:
            st = measure_state(photons, merge_rows(win), "charged", alignment, config, pairs,
                               with_g2=False, afterpulse=afterpulse)
            ok = all(np.isfinite([st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns,
                                  st.tau_xx_err_ns])) and st.tau_x_err_ns > 0 \
                and st.tau_xx_err_ns > 0
            if not ok:
                continue
            segments.append(ChargedObservation(st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns,
                                               st.tau_xx_err_ns, t_start_s=float(win[0, 0]),
                                               t_stop_s=float(win[-1, 1])))
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
            good = np.asarray([f.usable for f in traj.fits])
            rows, win_flags = [], []
            for i, seg in enumerate(segments):
                fit = traj.fits[i]
                n_err = 0.5 * (traj.n_hi[i] - traj.n_lo[i]) \
                    if np.isfinite(traj.n_hi[i] - traj.n_lo[i]) else fit.n_err_delta
                rows.append((seg.t_start_s, seg.t_stop_s, traj.n[i], n_err,
                             traj.tau_a_xx_ns[i], traj.tau_a_xx_err_ns[i], seg.tau_x_ns,
                             seg.tau_xx_ns, seg.tau_x_err_ns, seg.tau_xx_err_ns,
                             seg_meta[i][1].n_photons))
                win_flags.append(",".join(fit.flags))
                if fit.flags:
                    flags.append(f"charging window {i}: {', '.join(fit.flags)}")
            r = np.asarray(rows, float).reshape(-1, 11)
            table = ChargingWindows(t_start_s=r[:, 0], t_stop_s=r[:, 1], n_c=r[:, 2],
                                    n_c_err=r[:, 3], tau_a_xx_ns=r[:, 4],
                                    tau_a_xx_err_ns=r[:, 5], tau_x_ns=r[:, 6],
                                    tau_xx_ns=r[:, 7], tau_x_err_ns=r[:, 8],
                                    tau_xx_err_ns=r[:, 9], n_photons=r[:, 10].astype(np.int64),
                                    flags=tuple(win_flags), usable=good)
            if good.any():
                idx = np.flatnonzero(good)
                # one fit of all usable windows and the neutral reference: the windows share
                # the reference's error (qrspec.charging.particle)
                particle = combine_windows([segments[i] for i in idx], neutral_ref, model,
                                           weights=w[idx], starts=table.n_c[idx])
                if particle.flags:
                    flags.append(f"particle charging: {', '.join(particle.flags)}")
                ww = w[idx] / w[idx].sum()
                # weighted means of independent windows' lifetimes (no shared reference)
                tau_x_c, tau_xx_c = float(ww @ table.tau_x_ns[idx]), float(
                    ww @ table.tau_xx_ns[idx])
                tau_x_c_err = float(np.sqrt(np.sum((ww * table.tau_x_err_ns[idx]) ** 2)))
                tau_xx_c_err = float(np.sqrt(np.sum((ww * table.tau_xx_err_ns[idx]) ** 2)))

    def part(attr):  # particle-level values of the joint fit (NaN without usable windows)
        return float(getattr(particle, attr)) if particle is not None else nan

    def own(attr):
        return float(getattr(own_rates, attr)) if own_rates is not None else nan

    return Charging(
        windows=table, model_json=model.to_json() if model is not None else "",
        neutral_tau_x_ns=neutral.tau_x_ns if neutral is not None else nan,
        neutral_reference_source=neutral_ref.source if neutral_ref is not None else "",
        neutral_reference_note=neutral_ref.note if neutral_ref is not None else "",
        tau_a_xx_neutral_ns=own("tau_a_xx0_ns"), tau_a_xx_neutral_err_ns=own("tau_a_xx0_err_ns"),
        tau_a_xx_neutral_lo_ns=own("tau_a_xx0_lo_ns"),
        tau_a_xx_neutral_hi_ns=own("tau_a_xx0_hi_ns"),
        n_c_mean=part("n_mean"), n_c_err=0.5 * (part("n_mean_hi") - part("n_mean_lo")),
        n_c_lo=part("n_mean_lo"), n_c_hi=part("n_mean_hi"),
        tau_a_xx_charged_ns=part("tau_a_xx_mean_ns"),
        tau_a_xx_charged_err_ns=0.5 * (part("tau_a_xx_mean_hi_ns")
                                       - part("tau_a_xx_mean_lo_ns")),
        tau_a_xx_charged_lo_ns=part("tau_a_xx_mean_lo_ns"),
        tau_a_xx_charged_hi_ns=part("tau_a_xx_mean_hi_ns"),
        tau_a_xx_neutral_joint_ns=part("tau_a_xx0_ns"),
        tau_a_xx_neutral_joint_lo_ns=part("tau_a_xx0_lo_ns"),
        tau_a_xx_neutral_joint_hi_ns=part("tau_a_xx0_hi_ns"),
        tau_x_charged_ns=tau_x_c, tau_x_charged_err_ns=tau_x_c_err, tau_xx_charged_ns=tau_xx_c,
        tau_xx_charged_err_ns=tau_xx_c_err, flags=tuple(flags))
