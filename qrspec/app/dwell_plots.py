"""Dwell-time figure: on and off stays on log-log axes with the fitted laws (issue 18).

Each panel shows the empirical ``P(T >= t)`` (Kaplan–Meier, censored stays as survivors) of one
state, the fitted power law (solid) and the preferred law when it is another one (dashed),
both from ``t_min`` on and scaled to the fraction of stays above ``t_min``; the region below
the change-point time resolution is shaded (stays there are missed). The curves come from
:func:`qrspec.levels.dwell.dwell_curve`, so the figure can be redrawn from stored arrays.

matplotlib is imported only inside the functions (style and writer of
:mod:`qrspec.app.figure_style`).
"""

from __future__ import annotations

from pathlib import Path

# the panel itself is qrspec.app.plots.draw_dwell (the particle figure draws it too; the two
# modules import in one direction only)
from qrspec.app.plots import draw_dwell

__all__ = ["dwell_figure", "plot_dwell", "draw_dwell"]


def dwell_figure(stats, *, title: str = ""):
    """Figure with the on and off dwell-time panels of a ``BlinkingStatistics``.

    The statistics are a :class:`~qrspec.levels.dwell.BlinkingStatistics`; the figure is a
    matplotlib ``Figure`` on an Agg canvas.
    """
    from qrspec.app.figure_style import (
        RC,
        WIDTH_IN,
        guard_panel,
        new_figure,
        panel_letter,
        require_matplotlib,
    )
    from qrspec.levels.dwell import dwell_curve

    mpl = require_matplotlib()
    with mpl.rc_context(RC):
        fig = new_figure(WIDTH_IN, 2.6)
        axes = fig.subplots(1, 2)
        for ax, state, letter in zip(axes, ("on", "off"), "ab", strict=True):
            guard_panel(ax, draw_dwell, dwell_curve(stats, state))
            panel_letter(ax, letter)
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
    return fig


def plot_dwell(stats, out_path, *, fmt: str | None = None, dpi: int = 300,
               title: str = "") -> Path:
    """Write :func:`dwell_figure` to ``out_path`` (png or pdf) crash-safely."""
    from qrspec.app.figure_style import check_dpi, output_format, save_figure

    out, fmt = output_format(out_path, fmt)
    check_dpi(dpi)
    return save_figure(dwell_figure(stats, title=title), out, fmt=fmt, dpi=dpi)
