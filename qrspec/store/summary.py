"""The ``/summary`` table (one row per particle), its CSV form and the per-group statistics.

:data:`SUMMARY_COLUMNS` is the one list of summary columns; :func:`summary_values` reads them
from a :class:`~qrspec.analysis.particle.ParticleAnalysis`. Undefined values are NaN in the
table (HDF5, CSV) and ``null`` in JSON (:func:`row_to_dict`).
"""

from __future__ import annotations

import math

import numpy as np

from qrspec.analysis.particle import ParticleAnalysis
from qrspec.errors import QrspecError
from qrspec.io.files import storable_text

__all__ = ["SUMMARY_COLUMNS", "GROUP_STAT_COLUMNS", "summary_values", "summary_dtype",
           "summary_row", "row_to_dict", "group_statistics", "pooled_dwell_laws",
           "POOLED_N_BOOT"]

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
     "dip fit; afterpulse-corrected when pulsed (measured = g2_zero + "
     "g2_zero_afterpulse_bias)"),
    ("g2_zero_err", "f8", "", "standard error of g2_zero (NaN without centre-peak pairs)"),
    ("g2_zero_ci95_hi", "f8", "", "upper end of the 95 % interval of g2_zero (Clopper-Pearson "
     "when pulsed)"),
    ("g2_zero_gated", "f8", "", "g2(0) with both photons in the nanotime gate "
     "(afterpulse-corrected)"),
    ("g2_zero_gated_err", "f8", "", "standard error of g2_zero_gated"),
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
    # ---- photon hygiene and blinking statistics (issue 18)
    ("n_bursts", "i8", "", "photon bursts found (removed unless remove_bursts=False)"),
    ("n_burst_photons", "i8", "counts", "photons in the burst windows"),
    ("bleached", "?", "", "the trace ends in a permanent off state"),
    ("bleach_time_s", "f8", "s", "start of the permanent off state (analysis clock; later "
     "stages analyse the time before it unless trim_bleaching=False)"),
    ("dwell_resolution_s", "f8", "s", "shortest on/off stay trusted (change-point resolution)"),
    ("alpha_on", "f8", "", "power-law exponent of the on-stay durations (on: labels not in "
     "dwell_off_labels)"),
    ("alpha_on_err", "f8", "", "bootstrap error of alpha_on (t_min re-chosen)"),
    ("t_min_on_s", "f8", "s", "lower cut of the on-time law (KS-chosen)"),
    ("n_on_events", "i8", "", "complete on stays at or above t_min_on_s"),
    ("dwell_model_on", "S12", "", "preferred on-time law: power_law, exponential, truncated, "
     "cutoff or empty (undecided)"),
    ("alpha_off", "f8", "", "power-law exponent of the off-stay durations (dwell_off_labels)"),
    ("alpha_off_err", "f8", "", "bootstrap error of alpha_off (t_min re-chosen)"),
    ("t_min_off_s", "f8", "s", "lower cut of the off-time law (KS-chosen)"),
    ("n_off_events", "i8", "", "complete off stays at or above t_min_off_s"),
    ("dwell_model_off", "S12", "", "preferred off-time law"),
    ("memory_on", "f8", "", "correlation of successive on-stay log durations"),
    ("memory_on_err", "f8", "", "standard error of memory_on"),
    ("memory_off", "f8", "", "correlation of successive off-stay log durations"),
    ("memory_off_err", "f8", "", "standard error of memory_off"),
    ("memory_on_off", "f8", "", "correlation of each on-stay log duration with the next off "
     "stay's"),
    ("memory_on_off_err", "f8", "", "standard error of memory_on_off"),
    ("afterpulse_prob_start", "f8", "", "afterpulses per photon of the start detector "
     "(detectors[0])"),
    ("afterpulse_prob_start_err", "f8", "", "error of afterpulse_prob_start"),
    ("afterpulse_prob_stop", "f8", "", "afterpulses per photon of the stop detector "
     "(detectors[1])"),
    ("afterpulse_prob_stop_err", "f8", "", "error of afterpulse_prob_stop"),
    ("g2_zero_afterpulse_bias", "f8", "", "measured minus afterpulse-corrected g2_zero"),
    ("g2_zero_gated_afterpulse_bias", "f8", "", "measured minus afterpulse-corrected "
     "g2_zero_gated"),
    ("p_det_max", "f8", "", "largest recorded photons per laser period of a detector "
     "(pile-up check)"),
    ("analysis_s", "f8", "s", "wall time of the particle's analysis"),
]

# summary columns with per-group statistics in /groups
GROUP_STAT_COLUMNS = ["rate_cps", "g2_zero", "g2_zero_gated", "frac_time_neutral",
                      "tau_x_neutral_ns", "tau_xx_neutral_ns", "tau_a_xx_neutral_ns",
                      "tau_x_charged_ns", "tau_xx_charged_ns", "n_c_mean",
                      "tau_a_xx_charged_ns", "alpha_on", "alpha_off"]


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
        c = g.afterpulse
        if c is not None:
            v.update(_afterpulse_corrected(g, c))
    v.update(_hygiene_values(a))
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


def _afterpulse_corrected(g, c) -> dict:
    """The afterpulse-corrected g2(0) columns.

    Measured values where not correctable (a g2(0) without an error); the 95 % upper ends are
    mapped by the same monotonic correction ``g (1 + p) - p``.
    """
    v: dict = {"g2_zero_afterpulse_bias": c.bias, "g2_zero_gated_afterpulse_bias": c.bias_gated}
    if not c.applied:
        return v
    if math.isfinite(c.g2_zero):
        p = float(np.sum(c.probability))
        v.update(g2_zero=c.g2_zero, g2_zero_err=c.g2_zero_err,
                 g2_zero_ci95_hi=g.raw.g2_zero_ci95[1] * (1.0 + p) - p)
    if g.gated is not None and math.isfinite(c.g2_zero_gated):
        p = float(np.sum(c.probability_gated))
        v.update(g2_zero_gated=c.g2_zero_gated, g2_zero_gated_err=c.g2_zero_gated_err,
                 g2_zero_gated_ci95_hi=g.gated.g2_zero_ci95[1] * (1.0 + p) - p)
    return v


def _hygiene_values(a: ParticleAnalysis) -> dict:
    """Summary values of the bursts, blinking and detector stages (issue 18)."""
    v: dict = {}
    if a.bursts is not None:
        v.update(n_bursts=a.bursts.n_bursts, n_burst_photons=a.bursts.n_photons)
    if a.blinking is not None:
        b = a.blinking
        v.update(bleached=b.bleaching.bleached, bleach_time_s=b.bleaching.bleach_time_s,
                 dwell_resolution_s=b.resolution_s)
        for st in (b.on, b.off):
            n = st.state
            v.update({f"alpha_{n}": st.alpha, f"alpha_{n}_err": st.alpha_err,
                      f"t_min_{n}_s": st.t_min_s, f"n_{n}_events": st.n_events,
                      f"dwell_model_{n}": st.best_model})
        for key, m in (("memory_on", b.memory_on), ("memory_off", b.memory_off),
                       ("memory_on_off", b.memory_on_off)):
            v.update({key: m.r, f"{key}_err": m.r_err})
    if a.detector is not None:
        d = a.detector
        ap = d.afterpulsing
        if ap is not None:
            v.update(afterpulse_prob_start=ap.probability[0],
                     afterpulse_prob_start_err=ap.probability_err[0],
                     afterpulse_prob_stop=ap.probability[1],
                     afterpulse_prob_stop_err=ap.probability_err[1])
        if d.p_det.size:
            v.update(p_det_max=float(np.max(d.p_det)))
    return v


def summary_dtype() -> np.dtype:
    """The structured dtype of ``/summary``."""
    return np.dtype([(name, dt) for name, dt, _, _ in SUMMARY_COLUMNS])


def summary_row(values) -> np.ndarray:
    """One ``/summary`` row from a ParticleAnalysis or a dict of column values.

    Missing floats are NaN, ints -1, strings empty.
    """
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


# pooled dwell laws per group (issue 18): columns <name>_{on,off}_pooled...
POOLED_DWELL_COLUMNS = [("alpha_{s}_pooled", "f8"), ("alpha_{s}_pooled_err", "f8"),
                        ("t_min_{s}_pooled_s", "f8"), ("n_{s}_events_pooled", "i8"),
                        ("dwell_model_{s}_pooled", "S12")]
#: bootstrap resamples of a pooled law's alpha_err: the library's N_BOOT, as for each particle.
#: 50 resamples covered 0.89 at 95 % (200: 0.93; scripts/validate_pipeline_hygiene.py --part
#: pooled). The cost grows as resamples x stays: ~13 s for 25 000 pooled stays, paid once per
#: batch (its final merge) and per filtered report.
POOLED_N_BOOT = 200


def _group_dtype() -> np.dtype:
    fields = [("group", "S64"), ("n_particles", "i8"), ("n_ok", "i8"), ("n_selected", "i8"),
              ("frac_single_emitter", "f8")]
    for c in GROUP_STAT_COLUMNS:
        fields += [(f"{c}_n", "i8"), (f"{c}_mean", "f8"), (f"{c}_median", "f8"),
                   (f"{c}_sem", "f8")]
    fields.append(("n_dwell_particles_pooled", "i8"))
    for s in ("on", "off"):
        fields += [(name.format(s=s), dt) for name, dt in POOLED_DWELL_COLUMNS]
    return np.dtype(fields)


def pooled_dwell_laws(rows: np.ndarray, particles, *, selected=None,
                      min_events: int | None = None, n_boot: int = POOLED_N_BOOT) -> dict:
    """One on and one off dwell-time law per group, all stays of its particles pooled.

    Over particles with status ok, selected (``selected``) and present in ``particles``
    (:func:`qrspec.levels.dwell.pooled_dwell_law`; pooling assumes one law per group: compare
    with the spread of the per-particle exponents, ``/groups`` ``alpha_on_sem``).

    Parameters
    ----------
    rows : ndarray
        ``/summary`` rows.
    particles : mapping
        Particle id -> its blinking result (anything with a DwellSequence ``sequence`` and a
        ``resolution_s``, e.g. :class:`qrspec.analysis.blinking.Blinking`).
    selected : ndarray of bool, optional
        Rows to pool (a particle filter); default all.
    min_events : int, optional
        Fewest pooled complete stays above t_min (default ``MIN_EVENTS``).
    n_boot : int
        Bootstrap resamples of alpha_err (:data:`POOLED_N_BOOT`).

    Returns
    -------
    dict
        Group name (str) -> ``{"on": DwellLaw, "off": DwellLaw, "n_particles": int}``.
    """
    from qrspec.levels.dwell import MIN_EVENTS, pooled_dwell_law

    mask = _selection(rows, selected)
    out = {}
    for gname in sorted(set(_text_list(rows["group"]))) if rows.size else []:
        pids = [pid for pid, g, st, m in zip(_text_list(rows["particle_id"]),
                                             _text_list(rows["group"]),
                                             _text_list(rows["status"]), mask, strict=True)
                if g == gname and st == "ok" and m and pid in particles]
        if not pids:
            continue
        parts = [particles[p] for p in pids]
        out[gname] = {s: pooled_dwell_law(parts, state=s, n_boot=n_boot,
                                          min_events=min_events or MIN_EVENTS)
                      for s in ("on", "off")}
        out[gname]["n_particles"] = len(pids)
    return out


def _text_list(col) -> list[str]:
    return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
            for x in col.tolist()]


def _selection(rows: np.ndarray, selected) -> np.ndarray:
    if selected is None:
        return np.ones(rows.shape[0], bool)
    mask = np.asarray(selected, bool)
    if mask.shape != (rows.shape[0],):
        raise QrspecError(f"selected has shape {mask.shape}; it must be one boolean per row "
                          f"({rows.shape[0]})")
    return mask


def group_statistics(rows: np.ndarray, *, selected=None, pooled=None) -> np.ndarray:
    """Per-group mean, median and standard error of the mean of particle values.

    Over particles with status ok, selected and with finite values; the SEM uses ddof = 1 and
    is NaN for a single value. Columns: ``group, n_particles, n_ok, n_selected,
    frac_single_emitter``, per column of :data:`GROUP_STAT_COLUMNS` ``<c>_n, <c>_mean,
    <c>_median, <c>_sem``, and the pooled dwell laws (:func:`pooled_dwell_laws`;
    ``n_dwell_particles_pooled``, ``alpha_on_pooled``, ``alpha_on_pooled_err``,
    ``t_min_on_pooled_s``, ``n_on_events_pooled``, ``dwell_model_on_pooled`` and the same for
    off; NaN / 0 / "" when not given).

    Parameters
    ----------
    rows : ndarray
        ``/summary`` rows (bytes or str text columns).
    selected : ndarray of bool, optional
        Rows that enter the statistics (a particle filter, :mod:`qrspec.app.filters`); default
        all. ``n_particles`` and ``n_ok`` count every row, ``n_selected`` the selected ok rows.
    pooled : dict, optional
        :func:`pooled_dwell_laws` of the same rows and selection.

    Returns
    -------
    ndarray
        Structured array, one row per group (sorted by name).
    """
    mask = _selection(rows, selected)
    groups = sorted(set(rows["group"].tolist())) if rows.size else []
    out = np.zeros(len(groups), _group_dtype())
    status_ok = b"ok" if rows.size and rows.dtype["status"].kind == "S" else "ok"
    for i, gname in enumerate(groups):
        in_group = rows["group"] == gname
        sel = rows[in_group]
        out[i]["group"] = gname.encode() if isinstance(gname, str) else gname
        out[i]["n_particles"] = sel.size
        out[i]["n_ok"] = int(np.sum(sel["status"] == status_ok))
        ok = rows[in_group & mask & (rows["status"] == status_ok)]
        out[i]["n_selected"] = ok.size
        _pooled_columns(out[i], (pooled or {}).get(
            gname.decode("utf-8", "replace") if isinstance(gname, bytes) else str(gname)))
        out[i]["frac_single_emitter"] = ok["single_emitter"].mean() if ok.size else np.nan
        for c in GROUP_STAT_COLUMNS:
            v = ok[c][np.isfinite(ok[c])] if ok.size else np.zeros(0)
            out[i][f"{c}_n"] = v.size
            out[i][f"{c}_mean"] = v.mean() if v.size else np.nan
            out[i][f"{c}_median"] = np.median(v) if v.size else np.nan
            out[i][f"{c}_sem"] = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan
    return out


def _pooled_columns(row, laws) -> None:
    """Fill the pooled dwell-law columns of one /groups row (NaN / 0 / "" without laws)."""
    row["n_dwell_particles_pooled"] = 0 if laws is None else laws["n_particles"]
    for s in ("on", "off"):
        law = None if laws is None else laws[s]
        row[f"alpha_{s}_pooled"] = np.nan if law is None else law.alpha
        row[f"alpha_{s}_pooled_err"] = np.nan if law is None else law.alpha_err
        row[f"t_min_{s}_pooled_s"] = np.nan if law is None else law.t_min_s
        row[f"n_{s}_events_pooled"] = 0 if law is None else law.n_events
        row[f"dwell_model_{s}_pooled"] = b"" if law is None else law.best_model.encode()
