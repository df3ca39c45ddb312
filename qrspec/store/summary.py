"""The ``/summary`` table (one row per particle), its CSV form and the per-group statistics.

:data:`SUMMARY_COLUMNS` is the one list of summary columns; :func:`summary_values` reads them
from a :class:`~qrspec.analysis.particle.ParticleAnalysis`. Undefined values are NaN in the
table (HDF5, CSV) and ``null`` in JSON (:func:`row_to_dict`).
"""

from __future__ import annotations

import math

import numpy as np

from qrspec.analysis.particle import ParticleAnalysis
from qrspec.io.files import storable_text

__all__ = ["SUMMARY_COLUMNS", "GROUP_STAT_COLUMNS", "summary_values", "summary_dtype",
           "summary_row", "row_to_dict", "group_statistics"]

# name, numpy dtype, units, description
SUMMARY_COLUMNS: list[tuple[str, str, str, str]] = [
    ("particle_id", "S64", "", "sanitised particle identifier (file stem)"),
    ("group", "S64", "", "sample group (e.g. the parent folder)"),
    ("source", "S512", "", "path of the TTTR file"),
    ("status", "S8", "", "ok or failed"),
    ("error", "S512", "", "error message or analysis flags"),
    ("n_photons", "i8", "counts", "photons on the analysed detectors"),
    ("duration_s", "f8", "s", "span of the photon stream"),
    ("rate_cps", "f8", "counts/s", "mean detected photon rate"),
    ("timing", "S8", "", "t3, t2_sync (T2 with sync events) or t2 (T2 without: no nanotimes)"),
    ("detectors", "S16", "", "analysed detectors, e.g. '0 1' (the HBT pair) or '0'"),
    ("n_photons_left_out", "i8", "counts", "photons on detectors that are not analysed"),
    ("n_markers", "i8", "counts", "marker records in the file (ignored)"),
    ("g2_mode", "S16", "", "pulsed, cw (T2 without a comb) or not_applicable (one detector)"),
    ("g2_period_ns", "f8", "ns", "period of the g2 comb: sync period, or found in a T2 "
     "correlation"),
    ("hbt_delay_ns", "f8", "ns", "HBT delay subtracted from every g2 lag, whole periods "
     "included"),
    ("hbt_delay_source", "S8", "", "data (the suppressed peak), user, default (undecided: "
     "flagged) or empty"),
    ("zero_peak_index", "f8", "", "chosen comb peak k: delay = sub-period delay + k periods"),
    ("zero_peak_z", "f8", "", "Poisson z-score of the chosen peak's suppression (>= 5 to "
     "decide)"),
    ("zero_peak_second_z", "f8", "", "z-score of the next most suppressed peak (<= 4 to "
     "decide)"),
    ("g2_zero", "f8", "", "g2(0), no gate: pulsed centre / mean side peak area, or the CW "
     "dip fit"),
    ("g2_zero_err", "f8", "", "standard error of g2_zero (NaN without centre-peak pairs)"),
    ("g2_zero_ci95_hi", "f8", "", "upper end of the 95 % interval of g2_zero (Clopper-Pearson "
     "when pulsed)"),
    ("g2_zero_gated", "f8", "", "g2(0) with both photons in the nanotime gate"),
    ("g2_zero_gated_err", "f8", "", "Poisson standard error of g2_zero_gated"),
    ("g2_zero_gated_ci95_hi", "f8", "", "upper end of the 95 % interval of g2_zero_gated"),
    ("gate_after_rise_ns", "f8", "ns", "gate start after the rise of the aligned decay"),
    ("g2_rise_time_ns", "f8", "ns", "CW: fitted antibunching rise time"),
    ("g2_rise_time_err_ns", "f8", "ns", "standard error of g2_rise_time_ns"),
    ("single_emitter", "?", "", "single_emitter_verdict == single"),
    ("single_emitter_verdict", "S16", "", "single, not_single or undecidable (gate chosen from "
     "the measured tau_XX of the levels; docs/levels.md)"),
    ("single_emitter_reason", "S512", "", "why, with the numbers"),
    ("verdict_gate_ns", "f8", "ns", "gate start after the rise of the deciding g2 test (NaN: "
     "ungated)"),
    ("verdict_g2", "f8", "", "g2(0) of the deciding test"),
    ("verdict_g2_upper", "f8", "", "one-sided upper bound of verdict_g2 (1 - verdict_alpha)"),
    ("decay_fit", "S16", "", "lifetime fits: tail, or reconvolution with a measured IRF"),
    ("frac_time_neutral", "f8", "", "fraction of time in neutral-labelled segments"),
    ("neutral_confidence", "f8", "", "confidence of the neutral label (pair ratio tau_X/tau_XX "
     "above 2.9; NaN without pairs or without a neutral level)"),
    ("tau_x_neutral_ns", "f8", "ns", "exciton lifetime in neutral periods"),
    ("tau_x_neutral_err_ns", "f8", "ns", "standard error of tau_x_neutral_ns"),
    ("tau_xx_neutral_ns", "f8", "ns", "biexciton lifetime in neutral periods"),
    ("tau_xx_neutral_err_ns", "f8", "ns", "standard error of tau_xx_neutral_ns"),
    ("tau_a_xx_neutral_ns", "f8", "ns", "neutral biexciton Auger lifetime (model)"),
    ("tau_a_xx_neutral_err_ns", "f8", "ns", "delta-method error of tau_a_xx_neutral_ns"),
    ("tau_a_xx_neutral_lo_ns", "f8", "ns", "68 % interval of tau_a_xx_neutral_ns: lower"),
    ("tau_a_xx_neutral_hi_ns", "f8", "ns", "68 % interval of tau_a_xx_neutral_ns: upper (inf: "
     "open)"),
    ("neutral_reference_source", "S8", "", "neutral reference of the inversion: particle, "
     "user or group"),
    ("tau_xx_neutral_gate_scan_ns", "f8", "ns", "neutral tau_XX from the g2(0; gate) scan"),
    ("tau_xx_neutral_gate_scan_err_ns", "f8", "ns", "error of the gate-scan tau_XX"),
    ("tau_xx_neutral_cascade_ns", "f8", "ns", "neutral tau_XX from the cascade decay fit"),
    ("tau_xx_neutral_cascade_err_ns", "f8", "ns", "error of the cascade tau_XX"),
    ("tau_xx_methods_p", "f8", "", "p-value of the tau_XX methods' consistency (chi2)"),
    ("tau_x_charged_ns", "f8", "ns", "time-weighted mean exciton lifetime in charged periods"),
    ("tau_x_charged_err_ns", "f8", "ns", "standard error of tau_x_charged_ns"),
    ("tau_xx_charged_ns", "f8", "ns", "time-weighted mean biexciton lifetime in charged periods"),
    ("tau_xx_charged_err_ns", "f8", "ns", "standard error of tau_xx_charged_ns"),
    ("n_c_mean", "f8", "", "time-weighted charging number over charged periods (joint fit)"),
    ("n_c_err", "f8", "", "half-width of the 68 % interval of n_c_mean"),
    ("n_c_lo", "f8", "", "profile-likelihood 68 % interval of n_c_mean: lower"),
    ("n_c_hi", "f8", "", "profile-likelihood 68 % interval of n_c_mean: upper"),
    ("tau_a_xx_charged_ns", "f8", "ns", "time-weighted charged biexciton Auger lifetime"),
    ("tau_a_xx_charged_err_ns", "f8", "ns", "half-width of the 68 % interval of "
     "tau_a_xx_charged_ns"),
    ("tau_a_xx_charged_lo_ns", "f8", "ns", "68 % interval of tau_a_xx_charged_ns: lower"),
    ("tau_a_xx_charged_hi_ns", "f8", "ns", "68 % interval of tau_a_xx_charged_ns: upper"),
    ("tau_a_xx_neutral_joint_ns", "f8", "ns", "neutral biexciton Auger lifetime of the joint "
     "fit of the neutral reference and all charging windows"),
    ("tau_a_xx_neutral_joint_lo_ns", "f8", "ns", "68 % interval of tau_a_xx_neutral_joint_ns: "
     "lower"),
    ("tau_a_xx_neutral_joint_hi_ns", "f8", "ns", "68 % interval of tau_a_xx_neutral_joint_ns: "
     "upper"),
    ("n_charging_windows", "i8", "", "charging windows with a value (usable: in n_c_mean)"),
    ("n_charging_windows_measured", "i8", "", "charging windows cut from the charged segments "
     "(rule charging_window_rule)"),
    ("n_levels", "i8", "", "number of intensity levels found by change-point analysis"),
    ("n_change_points", "i8", "", "number of change points"),
    ("analysis_s", "f8", "s", "wall time of the particle's analysis"),
]

# summary columns with per-group statistics in /groups
GROUP_STAT_COLUMNS = ["rate_cps", "g2_zero", "g2_zero_gated", "frac_time_neutral",
                      "tau_x_neutral_ns", "tau_xx_neutral_ns", "tau_a_xx_neutral_ns",
                      "tau_x_charged_ns", "tau_xx_charged_ns", "n_c_mean",
                      "tau_a_xx_charged_ns"]


def summary_values(analysis: ParticleAnalysis) -> dict:
    """The summary columns of one particle (stages that did not run give no value).

    Parameters
    ----------
    analysis : ParticleAnalysis

    Returns
    -------
    dict
        Column name -> value (missing columns are NaN / -1 / "" in :func:`summary_row`).
    """
    a = analysis
    v: dict = {"particle_id": a.particle_id, "group": a.group, "source": a.source,
               "status": a.status, "error": a.error, "analysis_s": a.analysis_s}
    if a.acquisition is not None:
        q = a.acquisition
        v.update(timing=q.timing, detectors=" ".join(map(str, q.detectors)),
                 n_photons_left_out=q.n_photons_left_out, n_markers=q.n_markers)
    if a.trajectory is not None:
        t = a.trajectory
        v.update(n_photons=t.n_photons, duration_s=t.duration_s, rate_cps=t.rate_cps)
    if a.alignment is not None and a.alignment.g2_mode != "not_applicable":
        al = a.alignment
        v.update(g2_mode=al.g2_mode, hbt_delay_ns=al.delay_ns,
                 hbt_delay_source=al.delay_source)
        if al.g2_mode == "pulsed":
            v.update(g2_period_ns=al.g2_period_ns, zero_peak_index=al.zero_peak_index,
                     zero_peak_z=al.zero_peak_z, zero_peak_second_z=al.zero_peak_second_z)
    elif a.alignment is not None:
        v.update(g2_mode="not_applicable")
    if a.g2 is not None:
        g = a.g2
        v.update(g2_zero=g.raw.g2_zero, g2_zero_err=g.raw.g2_zero_err,
                 g2_zero_ci95_hi=g.raw.g2_zero_ci95[1], single_emitter=g.single_emitter,
                 single_emitter_verdict=g.verdict, single_emitter_reason=g.verdict_reason,
                 verdict_gate_ns=g.verdict_gate_ns, verdict_g2=g.verdict_g2,
                 verdict_g2_upper=g.verdict_g2_upper)
        if g.gated is not None:
            v.update(gate_after_rise_ns=g.gate_after_rise_ns, g2_zero_gated=g.gated.g2_zero,
                     g2_zero_gated_err=g.gated.g2_zero_err,
                     g2_zero_gated_ci95_hi=g.gated.g2_zero_ci95[1])
        if g.antibunching is not None:
            v.update(g2_rise_time_ns=g.antibunching.rise_time_ns,
                     g2_rise_time_err_ns=g.antibunching.rise_time_err_ns)
    if a.states is not None:
        n = a.states.neutral
        kinds = {s.fit_kind for s in (n, a.states.charged) if s is not None and s.fit_kind}
        nan = math.nan
        v.update(decay_fit=" ".join(sorted(kinds)))
        v.update(frac_time_neutral=a.states.frac_time_neutral,
                 tau_x_neutral_ns=n.tau_x_ns if n else nan,
                 tau_x_neutral_err_ns=n.tau_x_err_ns if n else nan,
                 tau_xx_neutral_ns=n.tau_xx_ns if n else nan,
                 tau_xx_neutral_err_ns=n.tau_xx_err_ns if n else nan)
    if a.tau_xx is not None:
        x = a.tau_xx
        v.update(tau_xx_neutral_gate_scan_ns=x.gate_scan_ns,
                 tau_xx_neutral_gate_scan_err_ns=x.gate_scan_err_ns,
                 tau_xx_neutral_cascade_ns=x.cascade_ns,
                 tau_xx_neutral_cascade_err_ns=x.cascade_err_ns, tau_xx_methods_p=x.p_value)
    if a.charging is not None:
        c = a.charging
        v.update({name: getattr(c, name) for name in (
            "tau_a_xx_neutral_ns", "tau_a_xx_neutral_err_ns", "tau_a_xx_neutral_lo_ns",
            "tau_a_xx_neutral_hi_ns", "neutral_reference_source", "tau_x_charged_ns",
            "tau_x_charged_err_ns", "tau_xx_charged_ns", "tau_xx_charged_err_ns", "n_c_mean",
            "n_c_err", "n_c_lo", "n_c_hi", "tau_a_xx_charged_ns", "tau_a_xx_charged_err_ns",
            "tau_a_xx_charged_lo_ns", "tau_a_xx_charged_hi_ns", "tau_a_xx_neutral_joint_ns",
            "tau_a_xx_neutral_joint_lo_ns", "tau_a_xx_neutral_joint_hi_ns")})
        v.update(n_charging_windows=int(np.sum(c.windows.usable)),
                 n_charging_windows_measured=int(c.n_windows_measured))
    if a.levels is not None:
        v.update(n_levels=int(a.levels.label.size),
                 n_change_points=int(a.levels.change_points_s.size),
                 frac_time_neutral=a.levels.frac_time_neutral,
                 neutral_confidence=a.levels.neutral_confidence)
    return v


def summary_dtype() -> np.dtype:
    """The structured dtype of ``/summary``."""
    return np.dtype([(name, dt) for name, dt, _, _ in SUMMARY_COLUMNS])


def summary_row(values) -> np.ndarray:
    """One ``/summary`` row from a ParticleAnalysis or a dict of column values (missing floats
    NaN, ints -1, strings empty)."""
    if isinstance(values, ParticleAnalysis):
        values = summary_values(values)
    dt = summary_dtype()
    row = np.zeros((), dt)
    for name, kind, _, _ in SUMMARY_COLUMNS:
        v = values.get(name)
        if kind.startswith("S"):
            # undecodable file-name bytes as \\xNN; never cut a UTF-8 character in two
            b = storable_text("" if v is None else v).encode("utf-8")[: int(kind[1:])]
            row[name] = b.decode("utf-8", "ignore").encode("utf-8")
        elif kind == "f8":
            row[name] = math.nan if v is None else float(v)
        elif kind == "i8":
            row[name] = -1 if v is None else int(v)
        else:
            row[name] = bool(v) if v is not None else False
    return row


def row_to_dict(row) -> dict:
    """A ``/summary`` row as a JSON-ready dict (str for text, None for NaN)."""
    out = {}
    for name in row.dtype.names:
        v = row[name].item() if hasattr(row[name], "item") else row[name]
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        out[name] = v
    return out


def group_statistics(rows: np.ndarray) -> np.ndarray:
    """Per-group mean, median and standard error of the mean of particle values.

    Over particles with status ok and finite values; the SEM uses ddof = 1 and is NaN for a
    single value. Columns: ``group, n_particles, n_ok, frac_single_emitter`` and, per column
    of :data:`GROUP_STAT_COLUMNS`, ``<c>_n, <c>_mean, <c>_median, <c>_sem``.

    Parameters
    ----------
    rows : ndarray
        ``/summary`` rows (bytes or str text columns).

    Returns
    -------
    ndarray
        Structured array, one row per group (sorted by name).
    """
    fields = [("group", "S64"), ("n_particles", "i8"), ("n_ok", "i8"),
              ("frac_single_emitter", "f8")]
    for c in GROUP_STAT_COLUMNS:
        fields += [(f"{c}_n", "i8"), (f"{c}_mean", "f8"), (f"{c}_median", "f8"),
                   (f"{c}_sem", "f8")]
    groups = sorted(set(rows["group"].tolist())) if rows.size else []
    out = np.zeros(len(groups), np.dtype(fields))
    status_ok = b"ok" if rows.size and rows.dtype["status"].kind == "S" else "ok"
    for i, gname in enumerate(groups):
        sel = rows[rows["group"] == gname]
        ok = sel[sel["status"] == status_ok]
        out[i]["group"] = gname.encode() if isinstance(gname, str) else gname
        out[i]["n_particles"] = sel.size
        out[i]["n_ok"] = ok.size
        out[i]["frac_single_emitter"] = ok["single_emitter"].mean() if ok.size else np.nan
        for c in GROUP_STAT_COLUMNS:
            v = ok[c][np.isfinite(ok[c])] if ok.size else np.zeros(0)
            out[i][f"{c}_n"] = v.size
            out[i][f"{c}_mean"] = v.mean() if v.size else np.nan
            out[i][f"{c}_median"] = np.median(v) if v.size else np.nan
            out[i][f"{c}_sem"] = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan
    return out
