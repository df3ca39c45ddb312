"""Stage: the neutral reference and the charging inversion n_c(t), tau_A,XX(t).

The inversion is made per charging window, with the particle's time-weighted values.

**Charging windows** (:func:`charging_windows`, issue 17). A window must hold enough heralded
photon pairs for its biexciton lifetime; the exciton lifetime is never the limit (10^4-10^5
photons per second of charged time). Rule ``"pairs"`` (default) therefore walks through the
charged segments in time order, skipping the neutral, trap and off ones between them (the
segments of one state are merged across its neighbours), and cuts a window after every
``charging_window_pairs`` pairs in the heralded fit range (first photon >= 0.3 ns after the
rise; midway to the next pair, or at a segment end), or more when that would give more than
``charging_max_windows`` windows; a window is
also closed after ``charging_window_s`` of charged time (a dim rod: too few pairs, the window
is measured and flagged, not merged for minutes); a last window with fewer than half the
target joins the previous one. Bright periods thus give short windows and dim ones long
windows, so n_c(t) gets as many points as the photon budget allows. Rule ``"time"`` (the former
one) pools segments until ``charging_window_s`` of charged time. On the demo's undoped rods the
former 5-s windows left the median rod 3 windows with a value (and some none: "3 of 3 charging
windows had too few photons"); 30 pairs per window give it >= 5 (``docs/charging_model.md``).

**Without a neutral reference** (no neutral period, ``no_neutral``; no user reference) the
windows are still measured and stored with NaN n_c, so that a second pass can invert them
against a reference from elsewhere: :func:`reinvert_charging` (``batch``: the group's pooled
reference, :func:`qrspec.charging.pool_neutral_references`; source ``"group"``).

Which windows count in the particle's values (the *usable* rule,
:attr:`qrspec.charging.inverse.ChargingFit.usable`) is decided here, once, and stored per window
(:attr:`ChargingWindows.usable`); nothing downstream re-derives it. The particle's n_c,
tau_A,XX^{nc-} and tau_A,XX0 come from one fit of the neutral reference and all usable windows
(:func:`qrspec.charging.particle.combine_windows`), because the windows share the reference's
error; their errors are half the profile-likelihood 68 % intervals, which are stored too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qrspec.analysis.alignment import Alignment
from qrspec.analysis.config import AnalysisConfig
from qrspec.analysis.decay_fits import TAIL_START_NS, merge_rows
from qrspec.analysis.levels import Levels
from qrspec.analysis.states import States, measure_state
from qrspec.charging.inverse import UNUSABLE_FLAGS
from qrspec.errors import QrspecError
from qrspec.photons import Photons

__all__ = ["ChargingWindows", "Charging", "invert_charging", "reinvert_charging",
           "charging_windows", "UNUSABLE_CHARGING_FLAGS"]

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
    charged_s : ndarray of float64 or None
        Charged time inside the window (its weight in the particle's time-weighted values; the
        span ``t_stop_s - t_start_s`` also holds the neutral periods between its segments).
    n_pairs : ndarray of int64 or None
        Heralded same-period pairs in the window.
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
    charged_s: np.ndarray | None = None
    n_pairs: np.ndarray | None = None


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
    window_rule : str
        How the windows were cut (``"pairs"`` or ``"time"``, ``charging_window_rule``).
    n_windows_measured : int
        Charging windows cut from the charged segments (also those without both lifetimes).
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
    window_rule: str = "time"
    n_windows_measured: int = 0


def charging_windows(segments, label: str, min_time_s: float, *, pair_times_s=None,
                     pairs_per_window: int | None = None) -> list[np.ndarray]:
    """Cut the segments with ``label`` into charging windows (module docstring).

    Parameters
    ----------
    segments : qrspec.levels.Segments
        Labelled segments.
    label : str
        Segment label to group.
    min_time_s : float
        Without ``pairs_per_window``: least time per window (rule ``"time"``). With it: the
        longest charged time of one window.
    pair_times_s : array_like, optional
        Sorted times of the heralded pairs (their laser periods), for rule ``"pairs"``.
    pairs_per_window : int, optional
        Pairs per window (rule ``"pairs"``).

    Returns
    -------
    list of ndarray, shape (n, 2)
        The ``(start, stop)`` rows of each window (whole segments, or parts of a segment cut at
        a window boundary).
    """
    if pairs_per_window is not None:
        return _windows_by_pairs(segments, label, np.asarray(pair_times_s, np.float64),
                                 int(pairs_per_window), float(min_time_s))
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


def _windows_by_pairs(segments, label: str, t_pairs: np.ndarray, target: int,
                      max_time_s: float) -> list[np.ndarray]:
    """Rule ``"pairs"``: cut after every ``target`` pairs or ``max_time_s`` of charged time."""
    m = segments.label == label
    out: list[list] = []
    cur: list = []
    count, acc = 0, 0.0  # pairs and charged time of the open window
    for a, b in zip(segments.start_s[m], segments.stop_s[m], strict=True):
        lo, hi = np.searchsorted(t_pairs, [a, b], "left")
        p = t_pairs[lo:hi]
        j, start = 0, a  # pairs of this segment already in closed windows; open part's start
        while True:
            need = target - count
            cut = start + (max_time_s - acc)  # the time cap
            if p.size - j > need:  # the need-th pair and a next one inside the segment
                cut = min(cut, 0.5 * (p[j + need - 1] + p[j + need]))
            if not start < cut < b:
                break
            k = int(np.searchsorted(p, cut, "left"))
            cur.append((start, cut))
            out.append(cur)
            cur, count, acc, j, start = [], 0, 0.0, k, cut
        cur.append((start, b))
        count += p.size - j
        acc += b - start
        if count >= target or acc >= max_time_s:
            out.append(cur)
            cur, count, acc = [], 0, 0.0
    if cur:
        if out and count < 0.5 * target:  # a short remainder joins the previous window
            out[-1] += cur
        else:
            out.append(cur)
    return [np.asarray(rows, np.float64).reshape(-1, 2) for rows in out]


def _empty_windows() -> ChargingWindows:
    f = np.zeros(0)
    return ChargingWindows(f, f, f, f, f, f, f, f, f, f, np.zeros(0, np.int64), (),
                           np.zeros(0, bool))


def _own_reference(states: States, cm, flags: list):
    """The particle's own neutral reference (tau_X0, heralded tau_XX0) and its rates."""
    from qrspec.charging import NeutralReference, neutral_rates

    neutral = states.neutral
    if neutral is None or not np.all(np.isfinite([neutral.tau_x_ns, neutral.tau_x_err_ns,
                                                  neutral.tau_xx_ns, neutral.tau_xx_err_ns])):
        return None, None
    try:
        ref = NeutralReference.from_particle(neutral.tau_x_ns, neutral.tau_x_err_ns,
                                             neutral.tau_xx_ns, neutral.tau_xx_err_ns)
    except QrspecError as exc:
        flags.append(f"neutral reference unusable: {exc}")
        return None, None
    rates = neutral_rates(ref, cm)
    if not rates.consistent:
        flags.append("neutral tau_XX is significantly longer than radiative "
                     "1/(beta_xx k_r): no neutral Auger rate")
        return None, rates
    if not rates.k_a_xx0_per_ns > 0:
        flags.append("neutral Auger rate consistent with 0 (tau_A,XX0 open above): the "
                     "charging windows decide it")
    return ref, rates


def _reference(states: States, own_ref, cm, flags: list):
    """The reference the windows are inverted against: user values replace measured ones."""
    from qrspec.charging import NeutralReference

    neutral = states.neutral
    tau_x0 = (cm.tau_x0_ns, cm.tau_x0_err_ns) if cm.tau_x0_ns is not None else (
        (neutral.tau_x_ns, neutral.tau_x_err_ns) if neutral is not None
        and np.isfinite(neutral.tau_x_ns) and np.isfinite(neutral.tau_x_err_ns) else None)
    try:
        if cm.tau_a_xx0_ns is not None and tau_x0 is not None:
            return NeutralReference(
                tau_x0[0], tau_x0[1], tau_a_xx0_ns=cm.tau_a_xx0_ns,
                tau_a_xx0_err_ns=cm.tau_a_xx0_err_ns, source="user",
                note="tau_x0 from " + ("the user" if cm.tau_x0_ns is not None
                                       else "the particle"))
        if own_ref is not None and cm.tau_x0_ns is not None:
            return NeutralReference(tau_x0[0], tau_x0[1], tau_xx0_ns=own_ref.tau_xx0_ns,
                                    tau_xx0_err_ns=own_ref.tau_xx0_err_ns, source="user",
                                    note="tau_xx0 from the particle")
    except QrspecError as exc:
        flags.append(f"neutral reference unusable: {exc}")
        return None
    return own_ref


def _measure_windows(photons, levels, alignment, config, pairs, afterpulse=None):
    """Cut the charged segments into windows and measure both lifetimes in each.

    Returns ``(n_cut, observations, table)``: the windows with both lifetimes as
    ChargedObservations, and a ChargingWindows table of them with NaN inversion columns.
    """
    from qrspec.charging import ChargedObservation

    seg = levels.segments
    if config.charging_window_rule == "pairs" and pairs is not None:
        # the pairs the heralded fit uses: first photon after the rise + TAIL_START_NS
        in_fit = pairs.t1_ns >= alignment.t0_ns + TAIL_START_NS
        t_pairs = pairs.sync[in_fit].astype(np.float64) * photons.timestamps_unit
        w_all = seg.windows(label="charged")
        n_charged = int(np.sum(pairs.in_windows(w_all, photons.timestamps_unit)[in_fit])) \
            if w_all.size else 0
        target = max(config.charging_window_pairs,
                     -(-n_charged // config.charging_max_windows))
        windows = charging_windows(seg, "charged", config.charging_window_s,
                                   pair_times_s=t_pairs, pairs_per_window=target)
    else:
        windows = charging_windows(seg, "charged", config.charging_window_s)
    obs, rows = [], []
    for win in windows:
        w = merge_rows(win)
        st = measure_state(photons, w, "charged", alignment, config, pairs, with_g2=False,
                           afterpulse=afterpulse)
        ok = all(np.isfinite([st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns, st.tau_xx_err_ns])) \
            and st.tau_x_err_ns > 0 and st.tau_xx_err_ns > 0
        if not ok:
            continue
        obs.append(ChargedObservation(st.tau_x_ns, st.tau_x_err_ns, st.tau_xx_ns,
                                      st.tau_xx_err_ns, t_start_s=float(w[0, 0]),
                                      t_stop_s=float(w[-1, 1])))
        rows.append((float(np.sum(w[:, 1] - w[:, 0])), st.n_photons, st.n_pairs))
    k = len(obs)
    nan = np.full(k, np.nan)
    r = np.asarray(rows, float).reshape(-1, 3)
    table = ChargingWindows(
        t_start_s=np.array([o.t_start_s for o in obs], float),
        t_stop_s=np.array([o.t_stop_s for o in obs], float), n_c=nan.copy(),
        n_c_err=nan.copy(), tau_a_xx_ns=nan.copy(), tau_a_xx_err_ns=nan.copy(),
        tau_x_ns=np.array([o.tau_x_ns for o in obs], float),
        tau_xx_ns=np.array([o.tau_xx_ns for o in obs], float),
        tau_x_err_ns=np.array([o.tau_x_err_ns for o in obs], float),
        tau_xx_err_ns=np.array([o.tau_xx_err_ns for o in obs], float),
        n_photons=r[:, 1].astype(np.int64), flags=("",) * k, usable=np.zeros(k, bool),
        charged_s=r[:, 0], n_pairs=r[:, 2].astype(np.int64))
    return len(windows), obs, table


def _observations(table: ChargingWindows) -> list:
    """The stored windows as ChargedObservations (for a second inversion)."""
    from qrspec.charging import ChargedObservation

    return [ChargedObservation(float(table.tau_x_ns[i]), float(table.tau_x_err_ns[i]),
                               float(table.tau_xx_ns[i]), float(table.tau_xx_err_ns[i]),
                               t_start_s=float(table.t_start_s[i]),
                               t_stop_s=float(table.t_stop_s[i]))
            for i in range(table.t_start_s.size)]


def _invert(obs: list, table: ChargingWindows, neutral_ref, cm, flags: list,
            mean_excitations=None):
    """Invert every window against ``neutral_ref`` and fit the particle's values jointly.

    Returns ``(model, table, particle, (tau_x_c, err, tau_xx_c, err))``.
    """
    from qrspec.charging import charging_trajectory, combine_windows, neutral_rates

    ref_rates = neutral_rates(neutral_ref, cm)
    # the model as used, with the reference's neutral lifetimes (recorded in the results; the
    # fit takes them from neutral_ref)
    model = cm.charge_model().replace(
        tau_x0_ns=neutral_ref.tau_x0_ns,
        tau_a_xx0_ns=ref_rates.tau_a_xx0_ns if ref_rates.k_a_xx0_per_ns > 0 else None)
    nan4 = (math.nan,) * 4
    if not obs:
        return model, table, None, nan4
    # grid starts find the uncapped variant's second root; the capped and power-law lifetimes
    # are monotonic in n: the closed-form / default start suffices
    # with <N> known the windows' heralded tau_XX are modelled as measured (triexciton share)
    traj = charging_trajectory(obs, neutral_ref, model, profile=False,
                               n_starts=5 if cm.variant == "uncapped" else 0,
                               mean_excitations=mean_excitations)
    good = np.asarray([f.usable for f in traj.fits])
    n_err = np.where(np.isfinite(traj.n_hi - traj.n_lo), 0.5 * (traj.n_hi - traj.n_lo),
                     [f.n_err_delta for f in traj.fits])
    win_flags = []
    for i, fit in enumerate(traj.fits):
        win_flags.append(",".join(fit.flags))
        if fit.flags:
            flags.append(f"charging window {i}: {', '.join(fit.flags)}")
    table = replace(table, n_c=np.asarray(traj.n, float), n_c_err=np.asarray(n_err, float),
                    tau_a_xx_ns=np.asarray(traj.tau_a_xx_ns, float),
                    tau_a_xx_err_ns=np.asarray(traj.tau_a_xx_err_ns, float),
                    flags=tuple(win_flags), usable=good)
    if not good.any():
        return model, table, None, nan4
    idx = np.flatnonzero(good)
    w = table.charged_s[idx] if table.charged_s is not None else np.ones(idx.size)
    # one fit of all usable windows and the neutral reference: the windows share the
    # reference's error (qrspec.charging.particle)
    particle = combine_windows([obs[i] for i in idx], neutral_ref, model, weights=w,
                               starts=table.n_c[idx], mean_excitations=mean_excitations)
    if particle.flags:
        flags.append(f"particle charging: {', '.join(particle.flags)}")
    ww = w / w.sum()
    # weighted means of independent windows' lifetimes (no shared reference)
    lifetimes = (float(ww @ table.tau_x_ns[idx]),
                 float(np.sqrt(np.sum((ww * table.tau_x_err_ns[idx]) ** 2))),
                 float(ww @ table.tau_xx_ns[idx]),
                 float(np.sqrt(np.sum((ww * table.tau_xx_err_ns[idx]) ** 2))))
    return model, table, particle, lifetimes


def _result(table, model, neutral_ref, own_rates, particle, lifetimes, neutral_tau_x_ns,
            flags, rule, n_cut) -> Charging:
    nan = math.nan

    def part(attr):  # particle-level values of the joint fit (NaN without usable windows)
        return float(getattr(particle, attr)) if particle is not None else nan

    def own(attr):
        return float(getattr(own_rates, attr)) if own_rates is not None else nan

    return Charging(
        windows=table, model_json=model.to_json() if model is not None else "",
        neutral_tau_x_ns=neutral_tau_x_ns,
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
        tau_x_charged_ns=lifetimes[0], tau_x_charged_err_ns=lifetimes[1],
        tau_xx_charged_ns=lifetimes[2], tau_xx_charged_err_ns=lifetimes[3],
        flags=tuple(flags), window_rule=rule, n_windows_measured=int(n_cut))


NO_REFERENCE = ("no usable neutral reference: n_c and tau_A not inverted (give tau_a_xx0_ns, "
                "or batch pools the group's reference)")


def invert_charging(photons: Photons, levels: Levels, states: States, alignment: Alignment,
                    config: AnalysisConfig, pairs, *, afterpulse=None) -> Charging:
    """Neutral reference, then n_c and tau_A,XX of every charging window.

    Parameters
    ----------
    photons : Photons
        The particle's photons on the analysed detectors.
    levels : Levels
        Labelled segments (the charged ones are cut into windows: :func:`charging_windows`).
    states : States
        The neutral state gives the reference (tau_X0, tau_XX0).
    alignment : Alignment
        Offsets and HBT delay.
    config : AnalysisConfig
        Uses ``charge_model``, ``charging_window_rule``, ``charging_window_pairs``,
        ``charging_window_s`` and the state parameters.
    pairs : qrspec.stats.pairs.PhotonPairs
        Same-period photon pairs of all of ``photons``.
    afterpulse : qrspec.analysis.detector.AfterpulseBackground, optional
        Afterpulse profile for the windows' decay fits
        (:func:`qrspec.analysis.states.measure_state`).

    Returns
    -------
    Charging
        Without a neutral reference the windows are measured and stored with NaN n_c
        (:func:`reinvert_charging` inverts them later).
    """
    cm = config.charge_model
    flags: list[str] = []
    own_ref, own_rates = _own_reference(states, cm, flags)
    neutral_ref = _reference(states, own_ref, cm, flags)
    neutral = states.neutral
    tau_x0 = neutral.tau_x_ns if neutral is not None else math.nan
    table, model, particle = _empty_windows(), None, None
    lifetimes = (math.nan,) * 4
    n_cut = 0
    if levels.segments.size and np.any(levels.segments.label == "charged"):
        n_cut, obs, table = _measure_windows(photons, levels, alignment, config, pairs,
                                             afterpulse)
        if len(obs) < n_cut:
            flags.append(f"{n_cut - len(obs)} of {n_cut} charging windows had too few photons "
                         "or pairs for both lifetimes")
        if neutral_ref is None:
            flags.append(NO_REFERENCE)
        else:
            model, table, particle, lifetimes = _invert(obs, table, neutral_ref, cm, flags,
                                                        config.mean_excitations)
    return _result(table, model, neutral_ref, own_rates, particle, lifetimes, tau_x0, flags,
                   config.charging_window_rule, n_cut)


def reinvert_charging(charging: Charging, neutral_ref, config: AnalysisConfig) -> Charging:
    """Invert a particle's stored charging windows again against another neutral reference.

    The second pass of ``batch`` for a particle without a neutral period: the group's pooled
    reference (:func:`qrspec.charging.pool_neutral_references`, source ``"group"``) replaces
    the missing one. The windows' lifetimes are those stored; the particle's own neutral
    values (NaN) are kept.

    Parameters
    ----------
    charging : Charging
        The particle's charging stage (windows with lifetimes).
    neutral_ref : qrspec.charging.NeutralReference
        The reference to invert against.
    config : AnalysisConfig
        Uses ``charge_model``.

    Returns
    -------
    Charging
    """
    from qrspec.charging import NeutralReference

    if not isinstance(neutral_ref, NeutralReference):
        raise QrspecError(f"neutral_ref={neutral_ref!r} must be a NeutralReference")
    cm = config.charge_model
    flags = [f for f in charging.flags if f != NO_REFERENCE
             and not f.startswith(("charging window ", "particle charging: "))]
    table = charging.windows
    obs = _observations(table)
    model, table, particle, lifetimes = _invert(obs, table, neutral_ref, cm, flags,
                                                config.mean_excitations)
    out = _result(table, model, neutral_ref, None, particle, lifetimes,
                  charging.neutral_tau_x_ns, flags, charging.window_rule,
                  charging.n_windows_measured)
    return replace(out, tau_a_xx_neutral_ns=charging.tau_a_xx_neutral_ns,
                   tau_a_xx_neutral_err_ns=charging.tau_a_xx_neutral_err_ns,
                   tau_a_xx_neutral_lo_ns=charging.tau_a_xx_neutral_lo_ns,
                   tau_a_xx_neutral_hi_ns=charging.tau_a_xx_neutral_hi_ns)
