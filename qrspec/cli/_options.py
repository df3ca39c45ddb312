"""Options shared by ``analyze`` and ``batch``, and the CLI's input/output checks.

Each option maps to one ``AnalysisConfig`` field.

Exit codes (README): 0 ok; 1 unreadable input or refused output (``click.ClickException``);
2 usage error (``click.UsageError`` / ``BadParameter``: bad options, bad config); 3 batch
finished with failed particles. Inputs and outputs are therefore plain ``click.Path()``
arguments: a folder given as the input FILE, or as ``-o``, is the library's clean error (exit
1), not click's usage error.
"""

from __future__ import annotations

import functools
import json

import click


class _JsonRows(click.ParamType):
    """A JSON list on the command line (``label_overrides``: ``'[[0, "neutral"]]'``).

    The config checks the rows.
    """

    name = "JSON"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            rows = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"{value!r} is not JSON ({exc.msg}); e.g. '[[0, \"neutral\"], "
                      f"[10.0, 20.0, \"charged\"]]'", param, ctx)
        return rows

# option name -> (config field, click type or "flag", help)
_FIELDS = [
    ("--detectors", "detectors", (int, int),
     "The two 0-based HBT detectors (default: the two with most photons; a file with one "
     "detector is analysed without g2)."),
    ("--hbt-delay-ns", "hbt_delay_ns", float,
     "HBT delay t(second detector) - t(first) [ns], whole laser periods included (default: "
     "the suppressed zero peak found in the data, flagged when undecidable)."),
    ("--bin-width-s", "bin_width_s", float, "Intensity trajectory bin width [s]."),
    ("--g2-bin-ns", "g2_bin_ns", float, "g2 histogram bin width [ns]."),
    ("--g2-max-lag-periods", "g2_max_lag_periods", int, "g2 range in laser periods."),
    ("--g2-peak-window-ns", "g2_peak_window_ns", float,
     "Window integrated around each g2 peak [ns] (default: whole period)."),
    ("--gate-after-rise-ns", "gate_after_rise_ns", float,
     "Nanotime gate start of the gated g2 [ns after the rise of the decay]."),
    ("--cpa-alpha", "cpa_alpha", float, "False-positive rate of each change-point test."),
    ("--cpa-confidence", "cpa_confidence", float, "Confidence level of change-point regions."),
    ("--cpa-window-photons", "cpa_window_photons", int,
     "Largest photon range of one change-point test (2..8192)."),
    ("--cpa-overlap-photons", "cpa_overlap_photons", int,
     "Overlap of consecutive change-point scan windows (default: half a window)."),
    ("--cpa-refine", "cpa_refine", click.BOOL,
     "Re-test every change between its neighbours and search beside it (default true)."),
    ("--cpa-max-sweeps", "cpa_max_sweeps", int, "Most change-point refinement sweeps."),
    ("--neutral-tau-x-ns", "neutral_tau_x_ns", float,
     "A neutral exciton lifetime known from elsewhere [ns]: a level significantly shorter "
     "than 0.75 of it is not labelled neutral."),
    ("--label-overrides", "label_overrides", _JsonRows(),
     "Labels set by hand, a JSON list of [level, label] or [start_s, stop_s, label] rows, e.g. "
     "'[[0, \"neutral\"], [10.0, 20.0, \"charged\"]]'."),
    ("--max-levels", "max_levels", int, "Maximum number of intensity levels."),
    ("--min-decay-photons", "min_decay_photons", int, "Minimum photons for a lifetime fit."),
    ("--fit-method", "fit_method", click.Choice(["mle", "lsq"]), "Lifetime estimator."),
    ("--charging-window-rule", "charging_window_rule", click.Choice(["pairs", "time"]),
     "How charged segments become n_c(t) windows: a fixed number of heralded pairs each "
     "(default) or a fixed charged time."),
    ("--charging-window-pairs", "charging_window_pairs", int,
     "Heralded pairs per charging window (rule pairs; >= 20)."),
    ("--charging-max-windows", "charging_max_windows", int,
     "At most about this many charging windows per particle (rule pairs)."),
    ("--charging-window-s", "charging_window_s", float,
     "Charged time per n_c(t) window (rule time), or the longest window (rule pairs) [s]."),
    ("--mean-excitations", "mean_excitations", float,
     "Mean excitons per pulse <N>: corrects the heralded tau_XX for triexcitons and enables "
     "the gate-scan and cascade tau_XX estimates."),
    ("--single-emitter-max-g2", "single_emitter_max_g2", float,
     "Single-emitter verdict: the one-sided upper bound of the gated g2(0) must be below "
     "this (default 0.35)."),
    ("--verdict-alpha", "verdict_alpha", float,
     "One-sided error probability of the single-emitter verdict's bounds."),
    ("--irf", "irf_path", click.Path(),
     "Measured IRF: a TTTR file of scattered laser light, or a histogram (text: counts or "
     "time_ns,counts; .npy). State decays are then fitted by reconvolution (default: tail "
     "fits)."),
    ("--irf-bin-ns", "irf_bin_ns", float, "Bin width of a one-column IRF histogram [ns]."),
    ("--allow-scan", "allow_scan", "flag",
     "Analyse a scan image (FLIM, line scan) as one particle anyway (default: refused)."),
    ("--remove-bursts", "remove_bursts", bool,
     "Remove photon bursts before the analysis (false: find and flag only)."),
    ("--burst-bin-width-s", "burst_bin_width_s", float, "Bin width of the burst search [s]."),
    ("--burst-alpha", "burst_alpha", float, "False-alarm probability of a burst per particle."),
    ("--trim-bleaching", "trim_bleaching", bool,
     "Analyse only the time before a detected bleaching (false: flag only)."),
    ("--bleach-p-threshold", "bleach_p_threshold", float,
     "A final off stay less probable than this as a blink is bleaching."),
    ("--bleach-prior-alpha", "bleach_prior_alpha", float,
     "Off-time exponent assumed for the bleaching test without an own off-time law."),
    ("--dwell-off-labels", "dwell_off_labels", str,
     "Comma-separated level labels counted as off in the dwell-time laws "
     "[default: charged,trap,off,unclassified; 'off': the quantum-dot convention]."),
    ("--dwell-min-events", "dwell_min_events", int,
     "Fewest stays above t_min for a dwell-time exponent."),
    ("--afterpulse-max-lag-s", "afterpulse_max_lag_s", float,
     "Longest afterpulse delay counted [s]."),
    ("--correct-afterpulsing", "correct_afterpulsing", bool,
     "Correct g2(0) and the decay fits for afterpulsing (false: estimate and flag only)."),
]
_MODEL_FIELDS = [
    ("--charge-model", "variant", click.Choice(["capped", "uncapped", "power_law"]),
     "Charge-model variant."),
    ("--eps", "eps", float, "Electron-acceptor fraction of the Auger rate."),
    ("--gamma", "gamma", float, "Auger-acceptor weight of an electron above the band edge."),
    ("--qy-x0", "qy_x0", float, "Neutral exciton quantum yield."),
    ("--beta-xminus", "beta_xminus", float, "Radiative scaling of the trion."),
    ("--beta-xx", "beta_xx", float, "Radiative scaling of the biexciton."),
    ("--tau-a-xx0-ns", "tau_a_xx0_ns", float,
     "Neutral biexciton Auger lifetime [ns] (default: from the neutral periods)."),
    ("--tau-a-xx0-err-ns", "tau_a_xx0_err_ns", float,
     "Error of a given --tau-a-xx0-ns [ns] (default 0: exact)."),
    ("--tau-x0-ns", "tau_x0_ns", float,
     "Neutral exciton lifetime [ns] (default: from the neutral periods)."),
    ("--tau-x0-err-ns", "tau_x0_err_ns", float,
     "Error of a given --tau-x0-ns [ns] (default 0: exact)."),
    ("--knr-all-states", "knr_all_states", bool,
     "Apply k_nr0 = (1 - QY_X0)/tau_X0 to biexcitons too (default: excitons only)."),
]


def analysis_options(func):
    """Add ``--config`` and every AnalysisConfig option to a command."""
    for opt, name, typ, help_ in reversed(_FIELDS + _MODEL_FIELDS):
        if typ == "flag":  # a flag: absent leaves the config's value
            func = click.option(opt, name, is_flag=True, flag_value=True, default=None,
                                help=help_)(func)
        else:
            func = click.option(opt, name, type=typ, default=None, help=help_)(func)
    func = click.option("--config", "config_path", type=click.Path(),
                        help="JSON AnalysisConfig; options given here override it.")(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from qrspec.analysis.config import AnalysisConfig
        from qrspec.errors import QrspecError

        path = kwargs.pop("config_path")
        overrides = {n: kwargs.pop(n) for _, n, _, _ in _FIELDS}
        model = {n: kwargs.pop(n) for _, n, _, _ in _MODEL_FIELDS}
        try:
            cfg = AnalysisConfig.from_file(path) if path else AnalysisConfig()
            d = cfg.to_dict()
            d.update({k: v for k, v in overrides.items() if v is not None})
            d["charge_model"].update({k: v for k, v in model.items() if v is not None})
            cfg = kwargs["config"] = AnalysisConfig.from_dict(d)
            if cfg.irf_path is not None:  # refuse an unusable IRF before any particle
                from qrspec.io.irf import read_irf

                read_irf(cfg.irf_path, bin_ns=cfg.irf_bin_ns)
        except QrspecError as exc:  # names the field; a usage error (exit 2)
            raise click.BadParameter(display(str(exc)),
                                     param_hint="--config" if path else "options") from None
        return func(*args, **kwargs)

    return wrapper


def display(text) -> str:
    r"""Text for the terminal.

    Undecodable file-name bytes shown as ``\xNN`` (stdout may be strict UTF-8, where they would
    raise UnicodeEncodeError).
    """
    from qrspec.io.files import storable_text

    return storable_text(text)


def check_output(output, *, inputs=(), overwrite: bool = False) -> None:
    """Refuse an output before any work.

    A folder, a device, an input file (by identity), an existing file without ``--overwrite``, a
    missing or unwritable folder. Exit 1 with the reason.
    """
    from qrspec.errors import QrspecError
    from qrspec.io.atomic import check_output_path

    try:
        check_output_path(output, inputs=inputs, overwrite=overwrite, probe=True)
    except QrspecError as exc:
        raise click.ClickException(display(str(exc))) from None


def default_jobs() -> int:
    """Worker processes when ``-j`` is not given.

    2 where the machine has 2 or more cores (figures and particles are independent; more would
    compete with the user's other work), else 1.
    """
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return 2 if n >= 2 else 1
