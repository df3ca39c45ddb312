"""Dwell-time figure: on and off stays on log-log axes with the fitted laws (issue 18).

Each panel shows the empirical ``P(T >= t)`` (Kaplan–Meier, censored stays as survivors) of one
state, the fitted power law (solid) and the preferred law when it is another one (dashed),
both from ``t_min`` on and scaled to the fraction of stays above ``t_min``; the region below
the change-point time resolution is shaded (stays there are missed). The curves come from
:func:`qrspec.levels.dwell.dwell_curve`, so the figure can be redrawn from stored arrays.

matplotlib is imported only inside the functions (conventions of :mod:`qrspec.app.plots`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["dwell_figure", "plot_dwell", "draw_dwell"]

STATE_COLORS = {"on": "#0072B2", "off": "#7F7F7F"}
MODEL_STYLES = {"power_law": "-", "truncated": "-.", "exponential": ":", "cutoff": "--"}
MODEL_NAMES = {"power_law": "power law", "truncated": "truncated power law",
               "exponential": "exponential", "cutoff": "power law × exp. cut-off"}


def draw_dwell(ax, curve) -> None:
    """Draw one :class:`~qrspec.levels.dwell.DwellCurve` on a matplotlib axis."""
    from qrspec.app.plots import _no_data, _pm

    color = STATE_COLORS.get(curve.state, "0.3")
    if curve.t_s.size == 0:
        _no_data(ax, f"no complete {curve.state} stays")
        return
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.step(curve.t_s, curve.survival, where="post", color=color, lw=1.0,
            label=f"{curve.state} stays ({curve.t_s.size})")
    if np.isfinite(curve.resolution_s):
        ax.axvspan(min(curve.t_s.min(), curve.resolution_s) / 2, curve.resolution_s,
                   color="0.9", lw=0, zorder=0, label="below resolution")
    shown = []
    for k, model in enumerate(curve.models):
        if model == "power_law" or model == curve.best_model:
            shown.append(model)
            lab = MODEL_NAMES[model]
            if model == "power_law" and math.isfinite(curve.alpha):
                lab += f", α = {_pm(curve.alpha, curve.alpha_err)}"
            ax.plot(curve.model_t_s, curve.model_survival[k], MODEL_STYLES[model],
                    color="black", lw=0.9, label=lab)
    if math.isfinite(curve.t_min_s):
        ax.axvline(curve.t_min_s, color="0.5", lw=0.6, ls=":")
        ax.text(curve.t_min_s, 0.93, " t_min", color="0.4", fontsize=6, va="top",
                transform=ax.get_xaxis_transform())
    else:
        ax.text(0.97, 0.95, "too few stays for a law", transform=ax.transAxes, ha="right",
                va="top", fontsize=6.5, color="0.4")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel(f"P(T ≥ t), {curve.state}")
    positive = curve.survival[curve.survival > 0]
    if positive.size:
        ax.set_ylim(positive.min() / 2, 1.5)
    ax.legend(loc="lower left")


def dwell_figure(stats, *, title: str = ""):
    """Figure with the on and off dwell-time panels of a
    :class:`~qrspec.levels.dwell.BlinkingStatistics` (matplotlib ``Figure``, Agg canvas)."""
    from qrspec.app.plots import _RC, WIDTH_IN, _guard, _letter, _mpl, _new_figure
    from qrspec.levels.dwell import dwell_curve

    mpl = _mpl()
    with mpl.rc_context(_RC):
        fig = _new_figure(WIDTH_IN, 2.6)
        axes = fig.subplots(1, 2)
        for ax, state, letter in zip(axes, ("on", "off"), "ab", strict=True):
            _guard(ax, draw_dwell, dwell_curve(stats, state))
            _letter(ax, letter)
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
    return fig


def plot_dwell(stats, out_path, *, fmt: str | None = None, dpi: int = 300,
               title: str = "") -> Path:
    """Write :func:`dwell_figure` to ``out_path`` (png or pdf) atomically."""
    from qrspec.app.plots import _check_dpi, _mpl, _out_fmt, _save

    _mpl()
    out, fmt = _out_fmt(out_path, fmt)
    _check_dpi(dpi)
    return _save(dwell_figure(stats, title=title), out, fmt, dpi)
