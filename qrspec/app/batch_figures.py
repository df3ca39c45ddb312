"""Batch figures of a results file, drawn from its ``/summary`` and ``/groups`` tables.

Five figures (paper Figs. 1b and 2h and three population views), one home for each:

* :func:`group_summary_figure` -- mean intensity and mean charging number per group with the
  standard error of the mean (paper Fig. 2h). Means, SEMs and counts are the ones the store
  wrote to ``/groups`` (never recomputed); each count is over particles *with a value*.
* :func:`auger_charge_figure` -- tau_A,XX against n_c across particles (log y axis), with the
  charge-model curve tau_A,XX(n) of :func:`qrspec.charging.forward.forward` for each group's
  median neutral tau_A,XX0.
* :func:`g2_histogram_figure` -- histograms of gated g2(0) per group, with the 0.5 line.
* :func:`population_figure` -- per-group distributions of the neutral lifetimes, the neutral
  and charged Auger lifetimes and the dwell-time exponents (particles and group means).
* :func:`threshold_map_figure` -- the lasing-threshold map <N_las>(<n_c>, tau_A,XX0) of
  :func:`qrspec.charging.thresholds.threshold_map` (paper Fig. 1b) with each group's measured
  (<n_c>, tau_A,XX0) marked with its errors.

Undefined values (NaN) are never drawn; a group without any value says so in the figure.
Particles with status other than ``ok`` are left out everywhere (as in ``/groups``).
Styles, colours and the crash-safe writer are those of :mod:`qrspec.app.figure_style`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields
from pathlib import Path

import numpy as np

from qrspec.app.batch_tables import (
    BatchTables,
    column_values,
    error_column,
    group_names,
    load_batch_tables,
)
from qrspec.app.figure_style import (
    COLORS,
    RC,
    WIDTH_IN,
    check_dpi,
    check_format,
    group_style,
    new_figure,
    no_data,
    plain_log_labels,
    require_matplotlib,
    save_figure,
)
from qrspec.errors import QrspecError

__all__ = ["group_summary_figure", "auger_charge_figure", "g2_histogram_figure",
           "threshold_map_figure", "write_batch_figures", "charge_model_for",
           "population_figure", "BATCH_FIGURES"]

logger = logging.getLogger(__name__)

# name -> (function, file stem); the order of the HTML report's group page
BATCH_FIGURES = ("group_summary", "auger_charge", "g2_histograms", "population",
                 "threshold_map")


def _label(group: str) -> str:
    return group if group else "(none)"


def _groups_row(tables: BatchTables, group: str):
    g = tables.groups
    if not g.size or "group" not in (g.dtype.names or ()):
        return None
    m = np.flatnonzero(g["group"] == group)
    return g[m[0]] if m.size else None


def _stat(tables: BatchTables, group: str, column: str) -> tuple[float, float, int]:
    """(mean, SEM, n with a value) of ``column`` for ``group`` as written in ``/groups``."""
    row = _groups_row(tables, group)
    if row is None or f"{column}_mean" not in row.dtype.names:
        return math.nan, math.nan, 0
    return (float(row[f"{column}_mean"]), float(row[f"{column}_sem"]),
            int(row[f"{column}_n"]))


def _mean_sem(values: np.ndarray) -> tuple[float, float, int]:
    """(mean, SEM, n) of the finite values, the convention of ``/groups``.

    The convention is ddof = 1, SEM NaN for a single value; used only for columns the store does
    not aggregate.
    """
    v = values[np.isfinite(values)]
    if v.size == 0:
        return math.nan, math.nan, 0
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), sem, int(v.size)


def _errorbar(ax, x, y, xerr=None, yerr=None, *, gid, label=None, **kw):
    """Points (finite x and y only) with their error bars.

    An undefined (NaN) error draws no bar rather than a bar of zero. Every drawn data line carries
    ``gid``, its bars ``<gid>_err``.
    """
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    keep = np.isfinite(x) & np.isfinite(y)
    errs = [None if e is None else np.atleast_1d(np.asarray(e, float))[keep]
            for e in (xerr, yerr)]
    x, y = x[keep], y[keep]
    if x.size == 0:
        return
    cont = ax.errorbar(x, y, xerr=None if errs[0] is None else np.nan_to_num(errs[0], nan=0.0),
                       yerr=None if errs[1] is None else np.nan_to_num(errs[1], nan=0.0),
                       label=label, **kw)
    cont.lines[0].set_gid(gid)
    # a NaN error became a bar of length 0 above: remove those bars and their caps
    given = [e for e in errs if e is not None]
    caps = list(cont.lines[1])
    for k, (coll, e) in enumerate(zip(cont.lines[2], given, strict=True)):
        coll.set_gid(f"{gid}_err")
        coll.set_segments([sg for sg, v in zip(coll.get_segments(), e, strict=True)
                           if np.isfinite(v)])
        for cap in caps[2 * k: 2 * k + 2]:
            cx, cy = cap.get_data()
            cap.set_data(np.asarray(cx)[np.isfinite(e)], np.asarray(cy)[np.isfinite(e)])


def _always_neutral(tables: BatchTables, group: str) -> bool:
    """Whether the group was observed uncharged (n_c = 0), which is not an undefined n_c.

    True when every ok particle of the group with a value of ``frac_time_neutral`` was neutral all
    the time.
    """
    fn = column_values(tables, "frac_time_neutral", group)
    fn = fn[np.isfinite(fn)]
    # frac_time_neutral is a ratio of summed durations: 1 up to rounding
    return bool(fn.size) and bool(np.all(fn >= 1.0 - 1e-9))


def _jitter(n: int, rng, width: float = 0.08) -> np.ndarray:
    return rng.uniform(-width, width, n)


def _select_groups(tables: BatchTables, groups) -> list[str]:
    """The groups to draw: all (``/groups`` order) or ``groups`` in the given order."""
    present = group_names(tables)
    if groups is None:
        return present
    if isinstance(groups, str):
        groups = [groups]
    chosen = [str(g) for g in groups]
    missing = [g for g in chosen if g not in present]
    if missing:
        raise QrspecError(f"groups={missing!r} not in {tables.path or 'the tables'} "
                          f"(groups: {present})")
    return chosen


def _check_tables(tables: BatchTables) -> None:
    need = {"particle_id", "group", "status"}
    names = set(tables.summary.dtype.names or ())
    if not need <= names:
        raise QrspecError(f"{tables.path or 'tables'}: summary lacks columns "
                          f"{sorted(need - names)}")


# ---------------------------------------------------------------------------- Fig. 2h
def group_summary_figure(results, *, groups=None):
    """Mean intensity and mean charging number per group, mean ± SEM (paper Fig. 2h).

    Left axis: ``rate_cps`` (kcps, pentagons); right axis: ``n_c_mean`` (squares). Large
    markers are the group mean ± standard error of the mean from ``/groups``; small dots are
    the particles (status ok, finite value). The tick label of each group gives the number of
    particles with a value of each quantity (``n_I``, ``n_nc``), which may differ.

    Parameters
    ----------
    results : str, Path or BatchTables
        A qrspec results file or its tables (:func:`qrspec.app.batch_tables.load_batch_tables`).
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).

    Returns
    -------
    matplotlib.figure.Figure
        Axes labelled "intensity" and "n_c"; mean lines have gids "rate_mean" / "n_c_mean",
        particle dots "rate_particles" / "n_c_particles".

    Raises
    ------
    QrspecError
        Not a results file.
    """
    matplotlib = require_matplotlib()
    tables = load_batch_tables(results)
    _check_tables(tables)
    groups = _select_groups(tables, groups)
    rng = np.random.default_rng(0)  # fixed jitter: identical figures for identical files
    c_i, c_n = COLORS["intensity"], COLORS["n_c"]
    with matplotlib.rc_context(RC):
        fig = new_figure(max(4.8, min(WIDTH_IN, 1.6 + 1.1 * len(groups))), 3.2)
        ax = fig.add_subplot()
        ax.set_label("intensity")
        if not groups:
            no_data(ax, "no particles in the results file")
            return fig
        tw = ax.twinx()
        tw.set_label("n_c")
        x = np.arange(len(groups), dtype=float)
        off = 0.17
        ticks = []
        stats_i, stats_n = [], []
        for i, g in enumerate(groups):
            for col, axis, dx, color, marker, gid, scale in (
                    ("rate_cps", ax, -off, c_i, "p", "rate", 1e-3),
                    ("n_c_mean", tw, off, c_n, "s", "n_c", 1.0)):
                v = column_values(tables, col, g)
                v = v[np.isfinite(v)] * scale
                if v.size:
                    line, = axis.plot(i + dx + _jitter(v.size, rng), v, ls="none",
                                      marker=marker, ms=2.6, mfc=color, mec="none",
                                      alpha=0.5, zorder=2)
                    line.set_gid(f"{gid}_particles")
            si, sn = _stat(tables, g, "rate_cps"), _stat(tables, g, "n_c_mean")
            stats_i.append(si)
            stats_n.append(sn)
            ticks.append(f"{_label(g)}\n$n_I$ = {si[2]}, $n_{{nc}}$ = {sn[2]}")
        mi = np.array([s[0] for s in stats_i]) * 1e-3
        ei = np.array([s[1] for s in stats_i]) * 1e-3
        mn = np.array([s[0] for s in stats_n])
        en = np.array([s[1] for s in stats_n])
        kw = dict(ms=7, mec="black", mew=0.6, lw=1.0, capsize=3, zorder=4)
        _errorbar(ax, x - off, mi, yerr=ei, gid="rate_mean", fmt="p", color=c_i,
                  label="intensity", **kw)
        _errorbar(tw, x + off, mn, yerr=en, gid="n_c_mean", fmt="s", color=c_n,
                  label=r"$\langle n_c\rangle$", **kw)
        for i, g in enumerate(groups):
            for val, axis, dx, color in ((mi[i], ax, -off, c_i), (mn[i], tw, off, c_n)):
                if not np.isfinite(val):
                    # a never-charged group has n_c = 0 by observation, not an undefined one
                    text = "0: always\nneutral" if axis is tw and _always_neutral(tables, g) \
                        else "n/a"
                    axis.text(i + dx, 0.03, text, transform=matplotlib.transforms.
                              blended_transform_factory(axis.transData, axis.transAxes),
                              ha="center", va="bottom", fontsize=6.5, color=color)
        ax.set_xticks(x)
        ax.set_xticklabels(ticks)
        ax.tick_params(axis="x", which="both", top=False, length=0)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel("Mean intensity (kcps)", color=c_i)
        ax.set_ylim(bottom=0)
        lo, hi = ax.get_ylim()
        ax.set_ylim(0, hi * 1.25)  # room for the legend
        ax.tick_params(axis="y", right=False)
        tw.set_ylabel(r"Mean charging number $\langle n_c\rangle$", color=c_n)
        tw.tick_params(axis="y", colors=c_n, direction="in")
        tw.spines["right"].set_color(c_n)
        if np.isfinite(mn).any() or any(line.get_gid() == "n_c_particles"
                                       for line in tw.lines):
            tw.set_ylim(0, tw.get_ylim()[1] * 1.25)
        else:
            tw.set_yticks([])
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = tw.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left", ncol=2)
        ax.set_title("Group means ± SEM (dots: particles)", loc="left", fontsize=8)
        return fig


# ---------------------------------------------------------------------------- tau_A vs n_c
def charge_model_for(tables: BatchTables, *, tau_a_xx0_ns: float, tau_x0_ns: float | None = None):
    """Build the charge model of a results file with a given neutral Auger lifetime.

    Parameters
    ----------
    tables : BatchTables
        Its config's ``charge_model`` gives the variant and the scaling parameters.
    tau_a_xx0_ns : float
        Neutral biexciton Auger lifetime.
    tau_x0_ns : float, optional
        Neutral exciton lifetime (used when finite and > 0).

    Returns
    -------
    qrspec.charging.config.ChargeModelConfig

    Notes
    -----
    Keys of the stored model that :class:`~qrspec.charging.config.ChargeModelConfig` does not
    know are ignored (logged); ``None`` values keep the defaults; trion Auger lifetimes are
    dropped because the measured neutral tau_A,XX0 replaces them.
    """
    from qrspec.charging.config import ChargeModelConfig

    stored = tables.config.get("charge_model") or {}
    known = {f.name for f in fields(ChargeModelConfig)}
    if not isinstance(stored, dict):
        stored = {}
    unknown = sorted(set(stored) - known)
    if unknown:
        logger.info("charge_model keys %s are not ChargeModelConfig fields; ignored", unknown)
    cm = {k: v for k, v in stored.items() if k in known and v is not None
          and k not in ("tau_a_xminus_ns", "tau_a_xplus_ns")}
    cm["tau_a_xx0_ns"] = float(tau_a_xx0_ns)
    if tau_x0_ns is not None and math.isfinite(tau_x0_ns) and tau_x0_ns > 0:
        cm["tau_x0_ns"] = float(tau_x0_ns)
    return ChargeModelConfig.from_dict(cm)


def _model_label(cfg) -> str:
    if cfg.variant == "capped":
        return (rf"model (capped, $\gamma\epsilon$ = {cfg.gamma * cfg.eps_effective:g}): "
                rf"$\tau^0/(1+\gamma\epsilon n)$")
    return f"model ({cfg.variant})"


def auger_charge_figure(results, *, groups=None):
    """Charged biexciton Auger lifetime against charging number across particles.

    Filled markers: particles (status ok) with finite ``n_c_mean`` and
    ``tau_a_xx_charged_ns``, with their standard errors (``n_c_err``,
    ``tau_a_xx_charged_err_ns``) as error bars where finite. Open markers at n_c = 0: the
    neutral reference ``tau_a_xx_neutral_ns`` of each particle, with its standard error
    (``tau_a_xx_neutral_err_ns``) where the store has one. Lines: the charge model of the
    file (its config's ``charge_model``) for each group
    with charged particles, at the group's median neutral tau_A,XX0 and median tau_X0
    (:func:`charge_model_for`). Log y axis (1-2 ns next to tens of ns).

    Parameters
    ----------
    results : str, Path or BatchTables
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).

    Returns
    -------
    matplotlib.figure.Figure
        Axis labelled "tau_a_vs_n_c"; per group g, lines with gid ``charged:<g>``,
        ``neutral:<g>`` and ``model:<g>``.
    """
    from qrspec.charging.forward import forward

    matplotlib = require_matplotlib()
    tables = load_batch_tables(results)
    _check_tables(tables)
    groups = _select_groups(tables, groups)
    with matplotlib.rc_context(RC):
        fig = new_figure(4.8, 4.4)
        ax = fig.add_subplot()
        ax.set_label("tau_a_vs_n_c")
        any_points = False
        notes = []
        curves = []
        names = tables.summary.dtype.names
        t0_err = error_column("tau_a_xx_neutral_ns", names)  # in newer stores only
        joint = "tau_a_xx_neutral_joint_ns" if "tau_a_xx_neutral_joint_ns" in names else None
        cols = {c: {g: column_values(tables, c, g) for g in groups}
                for c in ("n_c_mean", "n_c_err", "tau_a_xx_charged_ns",
                          "tau_a_xx_charged_err_ns", "tau_a_xx_neutral_ns",
                          "tau_x_neutral_ns") + ((t0_err,) if t0_err else ())
                + ((joint,) if joint else ())}
        n_max = 0.0
        for g in groups:
            nc, nce = cols["n_c_mean"][g], cols["n_c_err"][g]
            sel = np.isfinite(nc) & np.isfinite(cols["tau_a_xx_charged_ns"][g])
            if sel.any():
                n_max = max(n_max, float(np.max(nc[sel] + np.where(np.isfinite(nce[sel]),
                                                                    nce[sel], 0.0))))
        x_hi = max(1.0, 1.08 * n_max)
        rng = np.random.default_rng(0)  # fixed jitter: identical figures for identical files
        for i, g in enumerate(groups):
            color, marker = group_style(i)
            nc, nce = cols["n_c_mean"][g], cols["n_c_err"][g]
            ta, tae = cols["tau_a_xx_charged_ns"][g], cols["tau_a_xx_charged_err_ns"][g]
            t0, tx0 = cols["tau_a_xx_neutral_ns"][g], cols["tau_x_neutral_ns"][g]
            sel = np.isfinite(nc) & np.isfinite(ta)
            t0f = t0[np.isfinite(t0)]
            lab = _label(g)
            if sel.any():
                _errorbar(ax, nc[sel], ta[sel], xerr=nce[sel], yerr=tae[sel],
                          gid=f"charged:{g}", fmt=marker, color=color, ms=4, mec="black",
                          mew=0.4, lw=0.7, capsize=1.5, alpha=0.85, zorder=3,
                          label=f"{lab}: charged (n = {int(sel.sum())})")
                any_points = True
            if t0f.size:
                # all at n_c = 0, spread sideways by 1 % of the axis so they stay visible
                t0e = cols[t0_err][g][np.isfinite(t0)] if t0_err else None
                _errorbar(ax, _jitter(t0f.size, rng, 0.012 * x_hi), t0f, yerr=t0e,
                          gid=f"neutral:{g}", fmt=marker, ms=4.5, mfc="none", mec=color,
                          mew=0.8, color=color, lw=0.4, capsize=1.0, zorder=3,
                          label=f"{lab}: neutral, $n_c$ = 0 (n = {t0f.size})")
                any_points = True
            if sel.any() and t0f.size:
                tx = tx0[np.isfinite(tx0)]
                # the reference the particles' n_c were inferred with (joint fit), where stored
                tj = cols[joint][g] if joint else np.zeros(0)
                tref = tj[np.isfinite(tj)] if np.isfinite(tj).sum() >= 1 else t0f
                curves.append((g, color, float(np.median(tref)),
                               float(np.median(tx)) if tx.size else None,
                               tuple(np.percentile(tref, [16, 84]))))
            elif sel.any():
                notes.append(f"{lab}: no neutral tau_A,XX0, no model curve")
        if not any_points:
            no_data(ax, "no particle with a finite tau_A,XX (charged or neutral)")
            return fig
        n_grid = np.linspace(0.0, x_hi, 200)
        model_title = None
        for g, color, tau0, tx0, (p16, p84) in curves:
            cfg = charge_model_for(tables, tau_a_xx0_ns=tau0, tau_x0_ns=tx0)
            y = forward(cfg, n_grid).tau_a_xx_ns
            if p84 > p16:
                lo_c = forward(charge_model_for(tables, tau_a_xx0_ns=p16, tau_x0_ns=tx0),
                               n_grid).tau_a_xx_ns
                hi_c = forward(charge_model_for(tables, tau_a_xx0_ns=p84, tau_x0_ns=tx0),
                               n_grid).tau_a_xx_ns
                band = ax.fill_between(n_grid, lo_c, hi_c, color=color, alpha=0.12, lw=0,
                                       zorder=1)
                band.set_gid(f"model_band:{g}")
            line, = ax.plot(n_grid, y, color=color, lw=1.0, ls="--", zorder=2,
                            label=rf"{_label(g)}: model, median $\tau^0$ = {tau0:.3g} ns")
            line.set_gid(f"model:{g}")
            model_title = _model_label(cfg)
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
        # the axis spans the values (points and model), not their error bars: a neutral
        # reference with an open 68 % interval would otherwise squash 1-2 ns against 1000 ns
        ys = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in ax.lines
                             if str(ln.get_gid()).split(":")[0] in ("charged", "neutral")])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        ax.set_ylim(ys.min() / 2.0, ys.max() * 2.5)
        ax.set_xlim(-0.04 * n_grid[-1] - 0.3, n_grid[-1] * 1.02)
        ax.set_xlabel(r"Charging number $n_c$ (particle mean over charged periods)")
        ax.set_ylabel(r"Biexciton Auger lifetime $\tau_{\mathrm{A,XX}}$ (ns)")
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda k: (
            [i for i, g in enumerate(groups) if labels[k].startswith(f"{_label(g)}:")] or [0])[0])
        # below the axes: the points may be anywhere on it
        ax.legend([handles[k] for k in order], [labels[k] for k in order], loc="upper center",
                  bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=6, handlelength=1.6,
                  title=model_title, title_fontsize=6)
        if notes:
            ax.text(0.01, 0.01, "; ".join(notes), transform=ax.transAxes, fontsize=6,
                    color="0.35", va="bottom")
        return fig


# ---------------------------------------------------------------------------- g2 histograms
G2_BIN = 0.05  # histogram bin of g2(0): ~ the typical Poisson error of a particle's g2(0)


def g2_bin_edges(values: np.ndarray) -> np.ndarray:
    """Return the common bin edges of the g2(0) histograms.

    Parameters
    ----------
    values : ndarray
        All g2(0) values to be shown (NaN ignored).

    Returns
    -------
    ndarray
        Edges of width :data:`G2_BIN` from 0 (or below the smallest value) to at least 1.2
        (or above the largest).
    """
    v = values[np.isfinite(values)]
    lo = min(0.0, math.floor(float(v.min()) / G2_BIN) * G2_BIN) if v.size else 0.0
    hi = max(1.2, (math.floor(float(v.max()) / G2_BIN) + 1) * G2_BIN) if v.size else 1.2
    n = int(round((hi - lo) / G2_BIN))
    return lo + G2_BIN * np.arange(n + 1)


def g2_histogram_figure(results, *, groups=None):
    """Histograms of gated g2(0) per group (one panel per group, shared bins), 0.5 line.

    Filled bars: ``g2_zero_gated`` of particles with status ok and a finite value; grey
    outline: the raw ``g2_zero`` of the same group for comparison. Each panel states the
    number of particles with a value and the group's single-emitter fraction from ``/groups``.

    Parameters
    ----------
    results : str, Path or BatchTables
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).

    Returns
    -------
    matplotlib.figure.Figure
        One axis per group, labelled ``g2:<group>``; the bars of the gated histogram have gid
        ``g2_gated:<group>``, the 0.5 line gid ``g2_limit``.
    """
    matplotlib = require_matplotlib()
    tables = load_batch_tables(results)
    _check_tables(tables)
    groups = _select_groups(tables, groups)
    allv = np.concatenate([column_values(tables, c) for c in ("g2_zero_gated", "g2_zero")]) \
        if tables.summary.size else np.zeros(0)
    edges = g2_bin_edges(allv)
    with matplotlib.rc_context(RC):
        n = max(1, len(groups))
        fig = new_figure(4.8, 0.6 + 1.15 * n)
        axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
        if not groups:
            no_data(axes[0], "no particles in the results file")
            return fig
        for i, (ax, g) in enumerate(zip(axes, groups, strict=True)):
            ax.set_label(f"g2:{g}")
            color, _ = group_style(i)
            v = column_values(tables, "g2_zero_gated", g)
            v = v[np.isfinite(v)]
            raw = column_values(tables, "g2_zero", g)
            raw = raw[np.isfinite(raw)]
            n_ok = int(np.sum((tables.summary["group"] == g)
                              & (tables.summary["status"] == "ok")))
            if raw.size:
                ax.hist(raw, bins=edges, histtype="step", color="0.55", lw=0.8,
                        label="raw" if i == 0 else None)
            if v.size:
                _, _, bars = ax.hist(v, bins=edges, color=color, alpha=0.75,
                                     edgecolor="white", lw=0.3,
                                     label="gated" if i == 0 else None)
                for b in bars:
                    b.set_gid(f"g2_gated:{g}")
            ax.axvline(0.5, color="black", ls=":", lw=0.9, gid="g2_limit")
            row = _groups_row(tables, g)
            single = float(row["frac_single_emitter"]) if row is not None and \
                "frac_single_emitter" in row.dtype.names else math.nan
            text = f"{_label(g)}: gated n = {v.size} of {n_ok} ok"
            if math.isfinite(single):
                text += f"; single-emitter verdict {single:.0%} of ok"
            ax.text(0.99, 0.93, text, transform=ax.transAxes, ha="right", va="top",
                    fontsize=6.5, zorder=5,
                    bbox=dict(fc="white", ec="none", alpha=0.9, pad=1.0))
            if not v.size:
                ax.text(0.5, 0.45, "no finite gated g2(0)", transform=ax.transAxes,
                        ha="center", fontsize=7, color="0.4", zorder=5,
                        bbox=dict(fc="white", ec="none", pad=1.0))
            ax.set_ylabel("Particles")
            ax.yaxis.get_major_locator().set_params(integer=True)
            top = ax.get_ylim()[1]
            ax.set_ylim(0, max(top, 1.0) * 1.35)
        axes[0].legend(loc="upper left", ncol=2)
        axes[-1].set_xlabel(rf"$g^{{(2)}}(0)$ (bins of {G2_BIN:g}; dotted: 0.5)")
        axes[-1].set_xlim(edges[0], edges[-1])
        return fig


# ---------------------------------------------------------------------------- Fig. 1b
# the grid of methods.md section 5.3 (<n_c> 0..20 in steps of 0.25, tau_A,XX0 log-spaced
# 0.05..100 ns); ~5 s on one core
DEFAULT_NC_GRID = np.arange(0.0, 20.0 + 1e-9, 0.25)
DEFAULT_TAU_GRID_NS = np.geomspace(0.05, 100.0, 41)


def threshold_map_figure(results, *, groups=None, mean_nc_grid=None, tau_a_xx_grid_ns=None,
                         threshold_map=None, **threshold_kw):
    """Lasing-threshold map <N_las>(<n_c>, tau_A,XX0) with the groups marked (Fig. 1b).

    The map is :func:`qrspec.charging.thresholds.threshold_map` with the file's charge model
    (:func:`charge_model_for`, tau_X0 = median ``tau_x_neutral_ns`` of the batch) and its
    default lasing settings unless ``threshold_kw`` overrides them. Markers: per group with
    a finite ``n_c_mean`` in ``/groups``, the group mean ± SEM of ``n_c_mean`` (``/groups``)
    and the mean ± SEM of ``tau_a_xx_neutral_ns`` (from ``/groups`` where the store
    aggregates it, else computed with the same convention). A group whose particles with a value of
    ``frac_time_neutral`` were all neutral all the time (``frac_time_neutral == 1``) is
    marked at n_c = 0 (hollow marker): it was observed uncharged, not undefined.

    Parameters
    ----------
    results : str, Path, BatchTables or None
        A results file or its tables; None draws the map alone (needs ``threshold_map``).
    groups : sequence of str, optional
        Groups to mark, in this order (default: every group, sorted).
    mean_nc_grid, tau_a_xx_grid_ns : array_like, optional
        Map grid (default: <n_c> 0..20 in steps of 0.25, tau_A,XX0 41 log steps 0.05..100
        ns, as methods.md section 5.3).
    threshold_map : qrspec.charging.thresholds.ThresholdMap, optional
        A precomputed map (then the grids and ``threshold_kw`` are not used).
    **threshold_kw
        Passed to :func:`~qrspec.charging.thresholds.threshold_map` (``g_loss``, ``pulse``,
        ``pulse_ns``, ``criterion``, ...).

    Returns
    -------
    matplotlib.figure.Figure
        Axis labelled "threshold_map"; markers with gid ``group:<g>``; the mesh gid "n_las".

    Raises
    ------
    QrspecError
        Not a results file, an unknown group, or ``results=None`` without a map.
    """
    from matplotlib.colors import LogNorm

    from qrspec.charging import thresholds as th
    from qrspec.charging.config import ChargeModelConfig

    matplotlib = require_matplotlib()
    if results is None:  # the map alone (e.g. ``qrspec model threshold-map``)
        if threshold_map is None:
            raise QrspecError("results=None needs threshold_map= (a precomputed map)")
        tables, groups, tau_x0 = None, [], None
        cfg = ChargeModelConfig.from_json(threshold_map.settings.get(
            "config", ChargeModelConfig().to_json()))
    else:
        tables = load_batch_tables(results)
        _check_tables(tables)
        groups = _select_groups(tables, groups)
        tx = column_values(tables, "tau_x_neutral_ns")
        tx = tx[np.isfinite(tx)]
        tau_x0 = float(np.median(tx)) if tx.size else None
        # tau_A,XX0 is the map's y axis: threshold_map replaces this placeholder per column
        cfg = charge_model_for(tables, tau_a_xx0_ns=13.9, tau_x0_ns=tau_x0)
    if threshold_map is None:
        nc = DEFAULT_NC_GRID if mean_nc_grid is None else np.asarray(mean_nc_grid, float)
        taus = DEFAULT_TAU_GRID_NS if tau_a_xx_grid_ns is None else \
            np.asarray(tau_a_xx_grid_ns, float)
        tmap = th.threshold_map(nc, taus, cfg, **threshold_kw)
    else:
        tmap = threshold_map
    with matplotlib.rc_context(RC):
        fig = new_figure(4.8, 4.4)
        ax = fig.add_subplot()
        ax.set_label("threshold_map")
        z = np.ma.masked_invalid(np.where(np.isfinite(tmap.n_las), tmap.n_las, np.nan)).T
        finite = tmap.n_las[np.isfinite(tmap.n_las)]
        if finite.size == 0:
            no_data(ax, "no lasing threshold anywhere on the grid")
            return fig
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
        norm = LogNorm(vmin=max(float(finite.min()), 1e-3), vmax=float(finite.max()))
        mesh = ax.pcolormesh(tmap.mean_nc, tmap.tau_a_xx_ns, z, shading="nearest", cmap=cmap,
                             norm=norm, rasterized=True)
        mesh.set_gid("n_las")
        cb = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.06)
        cb.set_label(r"Lasing threshold $\langle N_\mathrm{las}\rangle$")
        from matplotlib.ticker import FuncFormatter, LogLocator

        cb.locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
        cb.formatter = FuncFormatter(lambda v, _: f"{v:g}")
        cb.update_ticks()
        if tmap.mean_nc.size > 1 and tmap.tau_a_xx_ns.size > 1:
            levels = [v for v in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20)
                      if finite.min() < v < finite.max()]
            if levels:
                cs = ax.contour(tmap.mean_nc, tmap.tau_a_xx_ns, z, levels=levels,
                                colors="white", linewidths=0.5, norm=norm)
                ax.clabel(cs, fontsize=5.5, fmt="%g")
            # the optimum: the <n_c> with the lowest threshold at each tau_A,XX0
            best = np.where(np.isfinite(tmap.n_las), tmap.n_las, np.inf).argmin(axis=0)
            ok = np.isfinite(tmap.n_las.min(axis=0))
            from matplotlib import patheffects

            ax.plot(tmap.mean_nc[best[ok]], tmap.tau_a_xx_ns[ok], color="white", ls="--",
                    lw=1.0, label=r"optimal $\langle n_c\rangle$", gid="optimum",
                    path_effects=[patheffects.withStroke(linewidth=2.2, foreground="0.25")])
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
        notes = []
        for i, g in enumerate(groups):
            color, marker = group_style(i)
            m_nc, e_nc, n_nc = _stat(tables, g, "n_c_mean")
            m_t0, e_t0, n_t0 = _stat(tables, g, "tau_a_xx_neutral_ns")
            if n_t0 == 0:  # not aggregated by this store version: same convention here
                m_t0, e_t0, n_t0 = _mean_sem(column_values(tables, "tau_a_xx_neutral_ns", g))
            hollow = False
            if n_nc == 0 and _always_neutral(tables, g):
                m_nc, e_nc, hollow = 0.0, math.nan, True
            if not (math.isfinite(m_nc) and math.isfinite(m_t0)):
                notes.append(f"{_label(g)}: " + ("no n_c" if not math.isfinite(m_nc)
                                                else "no tau_A,XX0"))
                continue
            lab = f"{_label(g)} ({n_nc} | {n_t0})" + (": always neutral" if hollow else "")
            _errorbar(ax, [m_nc], [m_t0], xerr=[e_nc], yerr=[e_t0], gid=f"group:{g}",
                      fmt=marker, color=color, mfc="none" if hollow else color,
                      mec="white" if not hollow else color, mew=1.0, ms=7, lw=1.2, capsize=3,
                      ecolor="white", zorder=5, label=lab, clip_on=False)
        ax.set_xlim(tmap.mean_nc[0], tmap.mean_nc[-1])
        ax.set_ylim(tmap.tau_a_xx_ns[0], tmap.tau_a_xx_ns[-1])
        ax.set_xlabel(r"Mean charging number $\langle n_c\rangle$")
        ax.set_ylabel(r"Neutral biexciton Auger lifetime $\tau^0_{\mathrm{A,XX}}$ (ns)")
        s = tmap.settings
        tx_txt = f"{cfg.tau_x0_ns:.3g} ns" + (" (batch median)" if tau_x0 else " (default)")
        ax.set_title(f"{cfg.variant} model, " + r"$\tau_\mathrm{X}^0$" + f" = {tx_txt}, "
                     + r"$G_\mathrm{loss}$" + f" = {s['g_loss']:g}, {s['pulse']} "
                     f"{s['pulse_ns']:g} ns pulse, {s['criterion'].replace('_', ' ')}",
                     loc="left", fontsize=6.5)
        # below the map: markers may sit anywhere on it
        n_entries = len(ax.get_legend_handles_labels()[0])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=6,
                  ncol=min(3, max(1, n_entries)), title_fontsize=6,
                  title=r"group (particles with $n_c$ | with $\tau^0_\mathrm{A,XX}$)")
        if notes:
            ax.text(0.01, 0.01, "not marked: " + "; ".join(notes), transform=ax.transAxes,
                    fontsize=6, color="black", va="bottom",
                    bbox=dict(fc="white", ec="none", alpha=0.8, pad=1.0))
        return fig


# ---------------------------------------------------------------------------- populations
def _strip(ax, tables, groups, column, offset, color, marker, label, rng, *, pooled=None):
    """Particles of ``column`` as jittered dots per group, with the group's mean ± SEM.

    Particles with status ok and a finite value are drawn; the group's mean ± SEM from ``/groups``
    is a large marker (``pooled``: per group a ``(value, error)`` drawn instead when finite). The
    count of particles with a value is written under each strip. Returns True when anything was
    drawn.
    """
    from matplotlib.transforms import blended_transform_factory

    below = blended_transform_factory(ax.transData, ax.transAxes)
    drawn = False
    for i, g in enumerate(groups):
        v = column_values(tables, column, g)
        v = v[np.isfinite(v)]
        ax.text(i + offset, 0.015, f"{v.size}", transform=below, ha="center", va="bottom",
                fontsize=5.5, color=color, gid=f"n:{column}:{g}")
        if v.size == 0:
            continue
        drawn = True
        line, = ax.plot(i + offset + _jitter(v.size, rng, 0.07), v, linestyle="none",
                        marker=marker, ms=2.6, mfc=color, mec="none", alpha=0.45, zorder=2)
        line.set_gid(f"particles:{column}:{g}")
        m, e, _ = _stat(tables, g, column)
        if pooled is not None and math.isfinite(pooled[i][0]):
            m, e = pooled[i]
        _errorbar(ax, [i + offset], [m], yerr=[e], gid=f"mean:{column}:{g}", fmt=marker,
                  ms=5.5, color=color, mec="black", mew=0.6, lw=1.0, capsize=2.5, zorder=3,
                  label=label)
        label = None  # one legend entry per series
    return drawn


def _pooled(tables, groups, state):
    """``(alpha, alpha_err)`` of each group's pooled dwell law (NaN when not stored)."""
    out = []
    for g in groups:
        row = _groups_row(tables, g)
        ok = row is not None and f"alpha_{state}_pooled" in row.dtype.names
        out.append((float(row[f"alpha_{state}_pooled"]), float(row[f"alpha_{state}_pooled_err"]))
                   if ok else (math.nan, math.nan))
    return out


def population_figure(results, *, groups=None):
    """Per-group distributions of the particles' lifetimes and dwell-time exponents.

    Panels: (a) neutral exciton and biexciton lifetimes tau_X0, tau_XX0; (b) neutral and
    charged biexciton Auger lifetimes (log axis: 1-2 ns next to tens of ns); (c) on- and
    off-time dwell exponents. Dots: particles with status ok and a value; large markers: the
    group mean ± SEM of ``/groups`` (panel c: the group's pooled dwell law ± its error when
    the file holds it, i.e. a finished batch without exclusions). The small number under each
    strip is the count of particles with a value of that quantity. (g2(0), intensity and
    n_c per group are :func:`g2_histogram_figure` and :func:`group_summary_figure`.)

    Parameters
    ----------
    results : str, Path or BatchTables
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).

    Returns
    -------
    matplotlib.figure.Figure
        Axes labelled "lifetimes", "tau_a", "alpha"; particle dots with gid
        ``particles:<column>:<group>``, means ``mean:<column>:<group>``, counts
        ``n:<column>:<group>``.
    """
    matplotlib = require_matplotlib()
    tables = load_batch_tables(results)
    _check_tables(tables)
    groups = _select_groups(tables, groups)
    rng = np.random.default_rng(0)  # fixed jitter: identical figures for identical files
    with matplotlib.rc_context(RC):
        fig = new_figure(WIDTH_IN, 2.9)
        axes = fig.subplots(1, 3)
        for ax, name in zip(axes, ("lifetimes", "tau_a", "alpha"), strict=True):
            ax.set_label(name)
        ax_t, ax_a, ax_al = axes
        if not groups:
            for ax in axes:
                no_data(ax, "no particles in the results file")
            return fig
        a = _strip(ax_t, tables, groups, "tau_x_neutral_ns", -0.17, COLORS["tau_x"], "o",
                   r"$\tau_\mathrm{X}^0$", rng)
        b = _strip(ax_t, tables, groups, "tau_xx_neutral_ns", 0.17, COLORS["tau_xx"], "s",
                   r"$\tau_\mathrm{XX}^0$", rng)
        if a or b:
            ax_t.set_ylabel("Neutral lifetime (ns)")
            ax_t.set_ylim(bottom=0)
            ax_t.set_ylim(0, ax_t.get_ylim()[1] * 1.2)
            ax_t.legend(loc="upper center", ncol=2)
        else:
            no_data(ax_t, "no neutral lifetimes")
        a = _strip(ax_a, tables, groups, "tau_a_xx_neutral_ns", -0.17, COLORS["tau_x"], "o",
                   "neutral", rng)
        b = _strip(ax_a, tables, groups, "tau_a_xx_charged_ns", 0.17, COLORS["tau_a"], "D",
                   "charged", rng)
        if a or b:
            ax_a.set_yscale("log")
            plain_log_labels(ax_a.yaxis)
            lo, hi = ax_a.get_ylim()
            ax_a.set_ylim(lo / 1.5, hi * (hi / lo) ** 0.3)
            ax_a.set_ylabel(r"$\tau_\mathrm{A,XX}$ (ns)")
            ax_a.legend(loc="upper center", ncol=2)
        else:
            no_data(ax_a, "no Auger lifetimes")
        pooled = {st: _pooled(tables, groups, st) for st in ("on", "off")}
        any_pooled = any(math.isfinite(v) for st in pooled.values() for v, _ in st)
        a = _strip(ax_al, tables, groups, "alpha_on", -0.17, COLORS["alpha_on"], "o", "on",
                   rng, pooled=pooled["on"])
        b = _strip(ax_al, tables, groups, "alpha_off", 0.17, COLORS["alpha_off"], "s", "off",
                   rng, pooled=pooled["off"])
        if a or b:
            ax_al.set_ylabel(r"Dwell exponent $\alpha$")
            lo, hi = ax_al.get_ylim()
            ax_al.set_ylim(lo, hi + 0.25 * (hi - lo))
            ax_al.legend(loc="upper center", ncol=2, fontsize=6, title_fontsize=6,
                         title="markers: pooled law" if any_pooled else "markers: mean ± SEM")
        else:
            no_data(ax_al, "no dwell-time exponents")
        for ax, letter in zip(axes, "abc", strict=True):
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([_label(g) for g in groups],
                               rotation=30 if len(groups) > 4 else 0,
                               ha="right" if len(groups) > 4 else "center")
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.tick_params(axis="x", which="both", top=False, length=0)
            ax.text(-0.02, 1.0, letter, transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=10, fontweight="bold")
        n_all = int(tables.summary.size)
        n_ok = int(np.sum(tables.summary["status"] == "ok")) if n_all else 0
        fig.suptitle(f"{n_ok} of {n_all} particles ok (failed ones not shown); dots: particles, "
                     "markers: group mean ± SEM; numbers: particles with a value",
                     x=0.01, ha="left", fontsize=7)
        return fig


# ---------------------------------------------------------------------------- writing
_FUNCS = {"group_summary": group_summary_figure, "auger_charge": auger_charge_figure,
          "g2_histograms": g2_histogram_figure, "population": population_figure,
          "threshold_map": threshold_map_figure}


def write_batch_figures(results, out_dir, *, which=BATCH_FIGURES, groups=None,
                        fmt: str = "png", dpi: int = 200,
                        threshold_kw: dict | None = None) -> dict[str, Path]:
    """Write the batch figures into ``out_dir`` as ``batch_<name>.<fmt>`` (atomically).

    Parameters
    ----------
    results : str, Path or BatchTables
        A qrspec results file or its tables.
    out_dir : str or Path
        Created if needed.
    which : sequence of str
        Names from :data:`BATCH_FIGURES`.
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).
    fmt : {"png", "pdf"}
    dpi : int
        Resolution of raster output.
    threshold_kw : dict, optional
        Passed to :func:`threshold_map_figure` (grids, lasing settings).

    Returns
    -------
    dict
        name -> written path, in the order of ``which``.

    Raises
    ------
    QrspecError
        Not a results file, an unknown figure name or an unknown group.
    ValueError
        Unknown format or dpi.
    """
    fmt = check_format(fmt)
    dpi = check_dpi(dpi)
    unknown = [w for w in which if w not in _FUNCS]
    if unknown:
        raise QrspecError(f"which={unknown!r}: unknown batch figures; known: "
                          f"{', '.join(BATCH_FIGURES)}")
    tables = load_batch_tables(results)
    out_dir = Path(out_dir)
    out = {}
    for name in which:
        kw = dict(threshold_kw or {}) if name == "threshold_map" else {}
        fig = _FUNCS[name](tables, groups=groups, **kw)
        out[name] = save_figure(fig, out_dir / f"batch_{name}.{fmt}", fmt=fmt, dpi=dpi)
    return out
