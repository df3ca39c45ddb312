"""``qrspec model``: forward, inverse and threshold-map of the charging-associated Auger model.

Numerical code is imported inside the command functions only.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

_VARIANTS = ("capped", "uncapped", "power_law", "levels")


def _model_options(f):
    opts = [
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help="ChargeModelConfig JSON; the options below override its fields."),
        click.option("--variant", type=click.Choice(_VARIANTS), default=None,
                     help="Model variant (default capped)."),
        click.option("--tau-x0-ns", type=float, default=None, help="Neutral X lifetime, ns."),
        click.option("--qy-x0", type=float, default=None, help="Neutral X quantum yield."),
        click.option("--tau-a-xx0-ns", type=float, default=None,
                     help="Neutral XX Auger lifetime, ns."),
        click.option("--eps", type=float, default=None, help="Electron-acceptor fraction."),
        click.option("--gamma", type=float, default=None,
                     help="Higher-level acceptor weight."),
        click.option("--beta-xx", type=float, default=None, help="XX radiative scaling."),
        click.option("--power-p", type=float, default=None, help="power_law exponent p."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _build_config(config_path, **overrides):
    from qrspec.charging.config import ChargeModelConfig
    from qrspec.errors import QrspecError

    try:
        cfg = (ChargeModelConfig.from_json(Path(config_path).read_text())
               if config_path else ChargeModelConfig())
        changes = {k: v for k, v in overrides.items() if v is not None}
        return cfg.replace(**changes) if changes else cfg
    except QrspecError as exc:
        raise click.BadParameter(str(exc)) from None


def _write_table(path, columns: dict, attrs: dict, overwrite: bool, group="model"):
    """CSV (by suffix .csv) or HDF5 (.h5/.hdf5) table (:func:`qrspec.store.write_model_table`)."""
    from qrspec.errors import OutputError, QrspecError
    from qrspec.store.tables import write_model_table

    try:
        write_model_table(path, columns, attrs, group=group, overwrite=overwrite)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    except QrspecError as exc:
        if "exists; use --overwrite" in str(exc):
            raise click.ClickException(str(exc)) from None
        raise click.BadParameter(str(exc)) from None


@click.group("model")
def model():
    """Charging-associated Auger model: forward, inverse, threshold map."""


@model.command("forward")
@_model_options
@click.option("--n-max", type=int, default=20, show_default=True, help="Largest charge number.")
@click.option("--n-step", type=float, default=1.0, show_default=True, help="Step in n.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .csv or .h5 (default: CSV on stdout).")
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Plot of tau and QY versus n (needs matplotlib).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def forward_cmd(config_path, variant, tau_x0_ns, qy_x0, tau_a_xx0_ns, eps, gamma, beta_xx,
                power_p, n_max, n_step, output, png, overwrite):
    """Lifetimes, QYs, tau_A,XX and g2(0) of X^{n-}, XX^{n-}, XXX^{n-} for n = 0..N_MAX."""
    from qrspec.charging.forward import forward
    from qrspec.charging.grids import charge_grid
    from qrspec.errors import QrspecError

    try:
        n = charge_grid(n_max, n_step, names=("--n-max", "--n-step"))
    except QrspecError as exc:
        raise click.BadParameter(str(exc)) from None
    cfg = _build_config(config_path, variant=variant, tau_x0_ns=tau_x0_ns, qy_x0=qy_x0,
                        tau_a_xx0_ns=tau_a_xx0_ns, eps=eps, gamma=gamma, beta_xx=beta_xx,
                        power_p=power_p)
    res = forward(cfg, n)
    cols = {"n": n}
    for name in ("tau_x_ns", "qy_x", "tau_xx_ns", "qy_xx", "tau_a_xx_ns", "tau_a_x_ns",
                 "tau_xxx_ns", "qy_xxx", "g2_zero", "rad_ratio"):
        cols[name] = getattr(res, name)
    attrs = {"config": cfg.to_json()}
    if output:
        _write_table(output, cols, attrs, overwrite, group="forward")
    else:
        click.echo(",".join(cols))
        for row in zip(*cols.values(), strict=True):
            click.echo(",".join(f"{v:.6g}" for v in row))
    if png:
        _plot_forward(png, res)


def _plot_forward(png, res):
    def make():
        from qrspec.app.plots import forward_figure

        return forward_figure(res)

    _save_png(png, make)


def _save_png(png, make):
    """Draw a model figure (``make()``) and save it; a clear error without matplotlib."""
    from qrspec.errors import OutputError

    try:
        from qrspec.app.figure_style import save_figure

        save_figure(make(), png)
    except ImportError:
        raise click.ClickException("--png needs matplotlib (pip install qrspec[plot])") from None
    except (ValueError, OSError, OutputError) as exc:
        raise click.ClickException(f"{png}: cannot write the figure ({exc})") from None


@model.command("inverse")
@_model_options
@click.option("--tau-x0-err-ns", type=float, default=0.0, show_default=True)
@click.option("--tau-xx0-ns", type=float, default=None,
              help="Neutral XX lifetime (else --tau-a-xx0-ns is the neutral Auger lifetime).")
@click.option("--tau-xx0-err-ns", type=float, default=0.0, show_default=True)
@click.option("--tau-a-xx0-err-ns", type=float, default=0.0, show_default=True)
@click.option("--tau-x-ns", type=float, default=None, help="Charged X lifetime, ns.")
@click.option("--tau-x-err-ns", type=float, default=None)
@click.option("--tau-xx-ns", type=float, default=None, help="Charged XX lifetime, ns.")
@click.option("--tau-xx-err-ns", type=float, default=None)
@click.option("--g2", type=float, default=None, help="Charged low-<N> g2(0) (QY ratio).")
@click.option("--g2-err", type=float, default=0.0, show_default=True)
@click.option("--rad-ratio", type=float, default=None,
              help="Charged/neutral radiative-rate ratio (methods.md §2.8).")
@click.option("--rad-ratio-err", type=float, default=0.0, show_default=True)
@click.option("--g2-0", "g2_0", type=float, default=None,
              help="Neutral low-<N> g2(0) (QY ratio); enables --free beta_xx.")
@click.option("--g2-0-err", "g2_0_err", type=float, default=0.0, show_default=True)
@click.option("--segments", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with columns t_start_s,t_stop_s,tau_x_ns,tau_x_err_ns,tau_xx_ns,"
                   "tau_xx_err_ns[,g2,g2_err,rad_ratio,rad_ratio_err]: n_c(t) trajectory.")
@click.option("--free", multiple=True,
              type=click.Choice(("eps", "gamma", "power_p", "power_q", "beta_xx")),
              help="Extra fitted parameter (repeatable).")
@click.option("--n-max-fit", type=float, default=40.0, show_default=True)
@click.option("--n-boot", type=int, default=0, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .csv or .h5 (default: JSON on stdout).")
@click.option("--overwrite", is_flag=True)
def inverse_cmd(config_path, variant, tau_x0_ns, qy_x0, tau_a_xx0_ns, eps, gamma, beta_xx,
                power_p, tau_x0_err_ns, tau_xx0_ns, tau_xx0_err_ns, tau_a_xx0_err_ns, tau_x_ns,
                tau_x_err_ns, tau_xx_ns, tau_xx_err_ns, g2, g2_err, rad_ratio, rad_ratio_err,
                g2_0, g2_0_err, segments, free, n_max_fit, n_boot, seed, output, overwrite):
    """n_c and tau_A,XX^{nc-} from charged X/XX lifetimes and the neutral reference."""
    from qrspec.charging.inverse import ChargedObservation, infer_charging
    from qrspec.charging.neutral import NeutralReference
    from qrspec.charging.trajectory import charging_trajectory
    from qrspec.errors import QrspecError

    cfg = _build_config(config_path, variant=variant, tau_x0_ns=tau_x0_ns, qy_x0=qy_x0,
                        tau_a_xx0_ns=tau_a_xx0_ns, eps=eps, gamma=gamma, beta_xx=beta_xx,
                        power_p=power_p)
    try:
        neutral = NeutralReference(
            tau_x0_ns=cfg.tau_x0_ns, tau_x0_err_ns=tau_x0_err_ns, tau_xx0_ns=tau_xx0_ns,
            tau_xx0_err_ns=tau_xx0_err_ns,
            tau_a_xx0_ns=None if tau_xx0_ns is not None else cfg.tau_a_xx0_ns,
            tau_a_xx0_err_ns=tau_a_xx0_err_ns, g2_0=g2_0, g2_0_err=g2_0_err)
        opts = dict(free=free, n_max=n_max_fit, n_boot=n_boot, seed=seed)
        if segments:
            from qrspec.store.tables import read_segments_table

            segs = read_segments_table(segments)
            traj = charging_trajectory(segs, neutral, cfg, **opts)
            cols = {"t_start_s": traj.t_start_s, "t_stop_s": traj.t_stop_s, "n": traj.n,
                    "n_lo": traj.n_lo, "n_hi": traj.n_hi, "tau_a_xx_ns": traj.tau_a_xx_ns,
                    "tau_a_xx_err_ns": traj.tau_a_xx_err_ns, "chi2": traj.chi2,
                    "dof": traj.dof, "success": traj.success.astype(float)}
            flags = [";".join(f) for f in traj.flags]
        else:
            if None in (tau_x_ns, tau_x_err_ns, tau_xx_ns, tau_xx_err_ns):
                raise click.BadParameter("give --tau-x-ns, --tau-x-err-ns, --tau-xx-ns, "
                                         "--tau-xx-err-ns, or --segments")
            obs = ChargedObservation(tau_x_ns, tau_x_err_ns, tau_xx_ns, tau_xx_err_ns, g2,
                                     g2_err, rad_ratio, rad_ratio_err)
            fit = infer_charging(neutral, obs, cfg, **opts)
            cols = {"n": [fit.n], "n_lo": [fit.n_lo], "n_hi": [fit.n_hi],
                    "n_err_delta": [fit.n_err_delta], "tau_a_xx_ns": [fit.tau_a_xx_ns],
                    "tau_a_xx_err_ns": [fit.tau_a_xx_err_ns],
                    "tau_a_xx_direct_ns": [fit.tau_a_xx_direct_ns], "chi2": [fit.chi2],
                    "dof": [fit.dof], "success": [float(fit.success)]}
            flags = [";".join(fit.flags)]
            if not output:
                click.echo(json.dumps({**{k: v[0] for k, v in cols.items()},
                                       "flags": list(fit.flags), "message": fit.message,
                                       "free_params": fit.free_params}, default=float))
                return
    except QrspecError as exc:
        raise click.BadParameter(str(exc)) from None
    attrs = {"config": cfg.to_json(), "flags": json.dumps(flags)}
    if output:
        _write_table(output, cols, attrs, overwrite, group="inverse")
    else:
        click.echo(",".join([*cols, "flags"]))
        for i, row in enumerate(zip(*cols.values(), strict=True)):
            click.echo(",".join([*(f"{v:.6g}" for v in row), flags[i]]))


@model.command("threshold-map")
@_model_options
@click.option("--nc-max", type=float, default=20.0, show_default=True)
@click.option("--nc-step", type=float, default=0.25, show_default=True)
@click.option("--tau-min-ns", type=float, default=0.05, show_default=True)
@click.option("--tau-max-ns", type=float, default=100.0, show_default=True)
@click.option("--n-tau", type=int, default=30, show_default=True)
@click.option("--g-loss", type=float, default=0.05, show_default=True,
              help="Cavity loss as a fraction of the maximum gain.")
@click.option("--pulse", type=click.Choice(("flat", "gaussian", "delta")), default="flat",
              show_default=True)
@click.option("--pulse-ns", type=float, default=5.0, show_default=True)
@click.option("--criterion", type=click.Choice(("gain_clamp", "buildup")),
              default="gain_clamp", show_default=True)
@click.option("--gain-rate-per-ns", type=float, default=1.0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Output .csv (long format) or .h5.")
@click.option("--png", type=click.Path(dir_okay=False), default=None)
@click.option("--overwrite", is_flag=True)
def threshold_map_cmd(config_path, variant, tau_x0_ns, qy_x0, tau_a_xx0_ns, eps, gamma,
                      beta_xx, power_p, nc_max, nc_step, tau_min_ns, tau_max_ns, n_tau, g_loss,
                      pulse, pulse_ns, criterion, gain_rate_per_ns, output, png, overwrite):
    """Lasing threshold <N_las>(<n_c>, tau_A,XX0) map (methods.md §5.3, paper Fig. 1b)."""
    from qrspec.charging.grids import charge_grid, log_grid_ns
    from qrspec.charging.thresholds import threshold_map
    from qrspec.errors import QrspecError

    try:
        nc = charge_grid(nc_max, nc_step, names=("--nc-max", "--nc-step"))
        taus = log_grid_ns(tau_min_ns, tau_max_ns, n_tau,
                           names=("--tau-min-ns", "--tau-max-ns", "--n-tau"))
    except QrspecError as exc:
        raise click.BadParameter(str(exc)) from None
    cfg = _build_config(config_path, variant=variant, tau_x0_ns=tau_x0_ns, qy_x0=qy_x0,
                        tau_a_xx0_ns=tau_a_xx0_ns, eps=eps, gamma=gamma, beta_xx=beta_xx,
                        power_p=power_p)
    try:
        tm = threshold_map(nc, taus, cfg, g_loss=g_loss, pulse=pulse, pulse_ns=pulse_ns,
                           criterion=criterion, gain_rate_per_ns=gain_rate_per_ns)
    except QrspecError as exc:
        raise click.BadParameter(str(exc)) from None
    from qrspec.store.tables import Column

    if Path(output).suffix.lower() == ".csv":  # long format: one row per (n_c, tau) cell
        cols = tm.long_columns()
    else:
        cols = {"mean_nc": Column(tm.mean_nc, "1", "mean charge number <n_c> (rows)"),
                "tau_a_xx_ns": Column(tm.tau_a_xx_ns, "ns", "neutral tau_A,XX0 (columns)"),
                "n_las": Column(tm.n_las, "excitons per particle",
                                "lasing threshold <N_las>, inf = none")}
    _write_table(output, cols, tm.settings, overwrite, group="threshold_map")
    if png:
        def make():  # the map alone; the batch version marks the measured groups on it
            from qrspec.app.batch_figures import threshold_map_figure

            return threshold_map_figure(None, threshold_map=tm)

        _save_png(png, make)
