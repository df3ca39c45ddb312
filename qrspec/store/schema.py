"""Units and descriptions of every stored field: the results file's data dictionary.

One entry per field of every result class written under ``/particles/<id>/`` (the stage
dataclasses of :mod:`qrspec.analysis` and the model classes they embed). Arrays are written as
datasets with ``units`` and ``description`` attributes; scalars and short strings as attributes
of their group, whose ``units`` / ``descriptions`` attributes (JSON) describe them. A test checks
that every field of every stored class has an entry here, so a new stage or field cannot be
written undocumented.
"""

from __future__ import annotations

__all__ = ["FIELD_DOCS", "IDENTITY_DOCS"]

# class name -> field -> (units, description)
FIELD_DOCS: dict[str, dict[str, tuple[str, str]]] = {
    "Trajectory": {
        "counts": ("counts", "photons per bin (columns: detectors)"),
        "bin_width_s": ("s", "trajectory bin width"),
        "start_s": ("s", "start of bin 0"),
        "detectors": ("", "analysed detectors (0-based)"),
        "n_photons": ("counts", "photons on the analysed detectors"),
        "duration_s": ("s", "span of the photon stream"),
        "rate_cps": ("counts/s", "mean detected photon rate"),
        "flags": ("", "flags of the trajectory stage"),
    },
    "Alignment": {
        "time_ns": ("ns", "left bin edge on the aligned axis"),
        "counts": ("counts", "aligned decay, all photons"),
        "t0_ns": ("ns", "rise of the aligned decay (half maximum)"),
        "offsets_ns": ("ns", "nanotime offset subtracted from each detector"),
        "period_ns": ("ns", "laser period (length of the aligned axis)"),
        "bin_ns": ("ns", "TCSPC bin width"),
        "delay_ns": ("ns", "HBT delay subtracted from every g2 lag"),
    },
    "G2Histogram": {
        "lag_ns": ("ns", "bin centre lag t(det1) - t(det0) - delay_ns"),
        "counts": ("counts", "photon pairs per lag bin"),
        "peaks": ("", "peak index k (lag ~ k periods)"),
        "peak_areas": ("counts", "pairs per peak window"),
        "g2_zero": ("", "centre / mean side peak area"),
        "g2_zero_err": ("", "Poisson standard error of g2_zero"),
        "window_ns": ("ns", "full width of each peak window"),
        "gate_window_ns": ("ns", "(start, stop) aligned nanotime gate of both photons"),
    },
    "G2Result": {
        "detectors": ("", "(start, stop) detectors"),
        "delay_ns": ("ns", "HBT delay subtracted from every lag"),
        "gate_ns": ("ns", "gate start after the rise t0"),
        "raw": ("", "g2 without gate"),
        "gated": ("", "g2 with both photons in the gate"),
        "single_emitter": ("", "gated g2(0) significantly below single_emitter_max_g2"),
        "flags": ("", "flags of the g2 stage"),
    },
    "Levels": {
        "segments": ("", "segments between change points"),
        "change_points_s": ("s", "change-point times"),
        "change_points_ci_s": ("s", "confidence region of each change point"),
        "cpa_alpha": ("", "false-positive rate of each change-point test"),
        "cpa_confidence": ("", "confidence level of the change-point regions"),
        "intensity_cps": ("counts/s", "level intensity"),
        "tau_ns": ("ns", "level lifetime (mono-exponential tail fit, used for labelling)"),
        "rho_rad": ("", "radiative-rate ratio to neutral"),
        "label": ("", "level label: neutral / charged / trap / off / unclassified"),
    },
    "Segments": {
        "start_s": ("s", "segment start"),
        "stop_s": ("s", "segment stop"),
        "start_index": ("", "index of the segment's first photon"),
        "stop_index": ("", "index after the segment's last photon"),
        "n_photons": ("counts", "photons in segment"),
        "level": ("", "level index of each segment"),
        "label": ("", "neutral / charged / trap / off / unclassified"),
        "intensity_cps": ("counts/s", "segment intensity"),
    },
    "StateResult": {
        "label": ("", "state name"),
        "windows_s": ("s", "merged (start, stop) windows of the state"),
        "n_photons": ("counts", "photons in the windows"),
        "n_pairs": ("counts", "same-period two-detector photon pairs in the windows"),
        "tau_x_ns": ("ns", "exciton lifetime (tail fit)"),
        "tau_x_err_ns": ("ns", "standard error of tau_x_ns"),
        "tau_xx_ns": ("ns", "biexciton lifetime (heralded pairs)"),
        "tau_xx_err_ns": ("ns", "standard error of tau_xx_ns"),
        "g2_zero": ("", "ungated g2(0) of the windows"),
        "g2_zero_err": ("", "standard error of g2_zero"),
        "message": ("", "why a value is NaN"),
        "decay_counts": ("counts", "aligned decay of the state"),
        "decay_time_ns": ("ns", "left bin edge of decay_counts (aligned axis)"),
        "decay_bin_ns": ("ns", "bin width of decay_counts"),
        "fit_model": ("", "model of the exciton tail fit"),
        "fit_tau_ns": ("ns", "lifetimes of the tail fit"),
        "fit_model_counts": ("counts", "fitted tail model on the whole bins of decay_counts"),
        "fit_residuals": ("", "Pearson residuals of the fit (NaN outside the fit range)"),
    },
    "States": {
        "neutral": ("", "the neutral state"),
        "charged": ("", "the charged state"),
        "frac_time_neutral": ("", "fraction of time in neutral-labelled segments"),
        "flags": ("", "flags of the states stage"),
    },
    "Flid": {
        "histogram": ("counts", "trajectory bins per (counts, delay) cell"),
        "count_edges": ("counts", "edges of the counts axis"),
        "delay_edges_ns": ("ns", "edges of the mean-delay axis"),
        "bin_width_s": ("s", "trajectory bin width"),
    },
    "TauXXMethods": {
        "run": ("", "the comparison ran"),
        "reason": ("", "why it did not run"),
        "mean_excitations": ("", "mean excitons per pulse <N> used"),
        "gate_scan_ns": ("ns", "neutral tau_XX from the g2(0; gate) scan"),
        "gate_scan_err_ns": ("ns", "error of the gate-scan tau_XX"),
        "cascade_ns": ("ns", "neutral tau_XX from the cascade decay fit"),
        "cascade_err_ns": ("ns", "error of the cascade tau_XX"),
        "p_value": ("", "p-value of the methods' consistency (chi2)"),
        "flags": ("", "flags of the tau_XX stage"),
    },
    "ChargingWindows": {
        "t_start_s": ("s", "window start"),
        "t_stop_s": ("s", "window stop"),
        "n_c": ("", "charging number"),
        "n_c_err": ("", "68 % half-width of n_c"),
        "tau_a_xx_ns": ("ns", "charged biexciton Auger lifetime"),
        "tau_a_xx_err_ns": ("ns", "error of tau_a_xx_ns"),
        "tau_x_ns": ("ns", "charged exciton lifetime"),
        "tau_xx_ns": ("ns", "charged biexciton lifetime (heralded)"),
        "tau_x_err_ns": ("ns", "standard error of tau_x_ns"),
        "tau_xx_err_ns": ("ns", "standard error of tau_xx_ns"),
        "n_photons": ("counts", "photons in the window"),
        "flags": ("", "identifiability / quality flags of each window's inversion"),
        "usable": ("", "the window counts in the particle's values"),
    },
    "Charging": {
        "windows": ("", "one row per inverted charging window"),
        "model_json": ("", "charge model used (ChargeModelConfig JSON)"),
        "neutral_tau_x_ns": ("ns", "the particle's neutral exciton lifetime"),
        "neutral_reference_source": ("", "neutral reference of the inversion: particle, user "
                                         "or group"),
        "neutral_reference_note": ("", "how the neutral reference was put together"),
        "tau_a_xx_neutral_ns": ("ns", "neutral biexciton Auger lifetime from the neutral "
                                      "periods (model)"),
        "tau_a_xx_neutral_err_ns": ("ns", "delta-method error of tau_a_xx_neutral_ns"),
        "tau_a_xx_neutral_lo_ns": ("ns", "68 % interval of tau_a_xx_neutral_ns: lower"),
        "tau_a_xx_neutral_hi_ns": ("ns", "68 % interval of tau_a_xx_neutral_ns: upper (inf: "
                                         "open)"),
        "n_c_mean": ("", "time-weighted charging number over usable windows (joint fit)"),
        "n_c_err": ("", "half-width of the 68 % interval of n_c_mean"),
        "n_c_lo": ("", "profile-likelihood 68 % interval of n_c_mean: lower"),
        "n_c_hi": ("", "profile-likelihood 68 % interval of n_c_mean: upper"),
        "tau_a_xx_charged_ns": ("ns", "time-weighted charged biexciton Auger lifetime (joint "
                                      "fit)"),
        "tau_a_xx_charged_err_ns": ("ns", "half-width of the 68 % interval of "
                                          "tau_a_xx_charged_ns"),
        "tau_a_xx_charged_lo_ns": ("ns", "68 % interval of tau_a_xx_charged_ns: lower"),
        "tau_a_xx_charged_hi_ns": ("ns", "68 % interval of tau_a_xx_charged_ns: upper"),
        "tau_a_xx_neutral_joint_ns": ("ns", "neutral biexciton Auger lifetime of the joint fit "
                                            "of the neutral reference and all windows"),
        "tau_a_xx_neutral_joint_lo_ns": ("ns", "68 % interval of tau_a_xx_neutral_joint_ns: "
                                               "lower"),
        "tau_a_xx_neutral_joint_hi_ns": ("ns", "68 % interval of tau_a_xx_neutral_joint_ns: "
                                               "upper"),
        "tau_x_charged_ns": ("ns", "time-weighted mean exciton lifetime of usable windows"),
        "tau_x_charged_err_ns": ("ns", "standard error of tau_x_charged_ns"),
        "tau_xx_charged_ns": ("ns", "time-weighted mean biexciton lifetime of usable windows"),
        "tau_xx_charged_err_ns": ("ns", "standard error of tau_xx_charged_ns"),
        "flags": ("", "flags of the charging stage"),
    },
}

# attributes of /particles/<id> (ParticleAnalysis fields that are not stages)
IDENTITY_DOCS: dict[str, tuple[str, str]] = {
    "particle_id": ("", "particle identifier (group name)"),
    "group": ("", "sample group"),
    "source": ("", "path of the TTTR file"),
    "source_sha256": ("", "SHA-256 of the TTTR file"),
    "status": ("", "ok or failed"),
    "failure": ("", "why the particle failed"),
    "traceback": ("", "Python traceback of a failure"),
    "config_json": ("", "AnalysisConfig used (JSON)"),
    "analysis_s": ("s", "wall time of the particle's analysis"),
}
