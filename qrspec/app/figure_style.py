"""The shared style of every qrspec figure, and how figures are saved.

One home for what the particle figure (:mod:`qrspec.app.plots`), the batch figures
(:mod:`qrspec.app.batch_figures`), the dwell-time figure (:mod:`qrspec.app.dwell_plots`) and the
HTML report (:mod:`qrspec.app.html_report`) share: the rc settings (journal sizes: 7-8 pt
text on a 7.2 in double-column width), the colour-blind-safe palette, the canvas, the
"no data, because ..." panel, the value ± error text, and the crash-safe writer.

matplotlib is an optional dependency (extra ``plot``): this module never imports it at import
time, so ``import qrspec.app.figure_style`` is cheap; :func:`require_matplotlib` imports it
with the install hint. Figures are :class:`matplotlib.figure.Figure` objects on the Agg canvas
(no pyplot, no global backend switch, nothing is ever shown), drawn under
``matplotlib.rc_context(RC)``, and written by :func:`save_figure` through
:func:`qrspec.io.atomic.atomic_output` (temp file, fsync, rename: a crash or a full disk
never leaves a partial figure).
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from pathlib import Path

import numpy as np

__all__ = ["INSTALL_HINT", "require_matplotlib", "RC", "COLORS", "LABEL_COLORS",
           "GROUP_COLORS", "GROUP_MARKERS", "FORMATS", "DPI", "WIDTH_IN", "check_format",
           "check_dpi", "output_format", "new_figure", "save_figure", "no_data", "guard_panel",
           "headroom", "plain_log_labels", "panel_letter", "is_finite", "format_pm",
           "group_style"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "qrspec figures need matplotlib: pip install 'qrspec[plot]'"

# Okabe-Ito colour-blind-safe palette; one colour per state / quantity in every figure
LABEL_COLORS = {"neutral": "#0072B2", "charged": "#D55E00", "trap": "#009E73",
                "off": "#7F7F7F", "unclassified": "#CC79A7"}
COLORS = {"trace": "0.30", "total": "0.55", "g2_raw": "0.15", "g2_gated": "#CC79A7",
          "tau_x": "#0072B2", "tau_xx": "#56B4E9", "n_c": "#D55E00", "tau_a": "#882255",
          "intensity": "0.45", "fit": "black", "burst": "#CC3311", "alpha_on": "#0072B2",
          "alpha_off": "0.35"}
# one colour and marker per sample group (cycled beyond eight groups)
GROUP_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                "#999933")
GROUP_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")
FORMATS = ("png", "pdf")
DPI = 300
WIDTH_IN = 7.2  # double-column width (183 mm)

RC = {
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 6.5, "legend.frameon": False,
    "axes.linewidth": 0.7, "lines.linewidth": 1.0, "lines.markersize": 3.5,
    "xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True,
    "xtick.major.width": 0.7, "ytick.major.width": 0.7, "xtick.minor.width": 0.5,
    "ytick.minor.width": 0.5, "xtick.major.size": 3, "ytick.major.size": 3,
    "xtick.minor.size": 1.8, "ytick.minor.size": 1.8, "errorbar.capsize": 1.5,
    "savefig.dpi": DPI, "pdf.fonttype": 42, "ps.fonttype": 42, "axes.formatter.useoffset": False,
    "figure.constrained_layout.h_pad": 0.03, "figure.constrained_layout.w_pad": 0.03,
    "image.cmap": "viridis",
}


def require_matplotlib():
    """Import matplotlib (optional dependency) or raise ImportError with the install hint.

    Returns
    -------
    module
        ``matplotlib``.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install 'qrspec[plot]'``).
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return matplotlib


def check_format(fmt) -> str:
    """Return ``fmt`` if it is a figure format qrspec writes.

    Raises
    ------
    ValueError
        ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} must be one of {', '.join(map(repr, FORMATS))}")
    return fmt


def check_dpi(dpi) -> int:
    """Return ``dpi`` as int if it is an integer in [10, 2400].

    Raises
    ------
    ValueError
        Not an integer in [10, 2400].
    """
    if isinstance(dpi, bool) or not (isinstance(dpi, int | np.integer) and 10 <= dpi <= 2400):
        raise ValueError(f"dpi={dpi!r} must be an integer in [10, 2400]")
    return int(dpi)


def output_format(out_path, fmt=None) -> tuple[Path, str]:
    """``(path, format)`` of a figure file: ``fmt``, else the suffix of ``out_path``.

    Raises
    ------
    ValueError
        No ``fmt`` and the suffix is not .png or .pdf, or an unknown ``fmt``.
    """
    out = Path(out_path)
    if fmt is None:
        fmt = out.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"out_path={os.fspath(out_path)!r} must end in .png or .pdf "
                             "(or pass fmt=)")
    return out, check_format(fmt)


def new_figure(width_in: float, height_in: float, *, layout: str | None = "constrained"):
    """An empty Figure on the Agg canvas (no pyplot, no global state).

    Parameters
    ----------
    width_in, height_in : float
        Size in inches.
    layout : {"constrained", None}
        Constrained layout (default), or None for a figure whose axes are placed by hand.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, out_path, *, fmt: str | None = None, dpi: int = DPI) -> Path:
    """Write a figure crash-safely (:func:`qrspec.io.atomic.atomic_output`), under :data:`RC`.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    out_path : str or Path
        ``.png`` or ``.pdf`` (or any name with ``fmt``); its folder is created if needed.
    fmt : {"png", "pdf"}, optional
        Default: from the suffix of ``out_path``.
    dpi : int
        Resolution of raster output (and of rasterised artists in PDF).

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        Unknown format or dpi (nothing is written).
    OutputError
        The file cannot be written (disk full, permissions, a folder in the way); nothing is
        left behind and a previous file of that name is unchanged.
    """
    from qrspec.errors import OutputError
    from qrspec.io.atomic import atomic_output

    matplotlib = require_matplotlib()
    out, fmt = output_format(out_path, fmt)
    dpi = check_dpi(dpi)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out, exc.strerror or str(exc), exc.errno) from None
    with atomic_output(out) as tmp, matplotlib.rc_context(RC):
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return out


def no_data(ax, why: str = "", *, keep_axes: bool = False, what: str = "") -> None:
    """Mark a panel as empty: "no <what> data" and the reason, never a silent blank.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    why : str
        The reason (wrapped to the panel).
    keep_axes : bool
        Keep the frame and ticks (e.g. a time axis shared with other panels); otherwise the
        frame is hidden so that the panel reads as a note, not as a broken plot.
    what : str
        What is missing ("decays"), put after "no".
    """
    head = f"no {what}" if what else "no data"
    width = max(24, int(ax.get_position().width * ax.figure.get_figwidth() * 18))
    text = head + (f"\n{textwrap.fill(why, width)}" if why else "")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=6.5, color="0.35", gid="no_data")
    if not keep_axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.minorticks_off()
        for side in ax.spines.values():
            side.set_color("0.8")
            side.set_linestyle((0, (2, 2)))


def guard_panel(ax, draw, *args) -> bool:
    """Draw one panel with ``draw(ax, *args)``.

    An unexpected error becomes a message in the panel (and a WARNING log record of this module),
    so one odd particle never stops a report. Returns True when the panel was drawn.
    """
    try:
        draw(ax, *args)
        return True
    except Exception as exc:  # noqa: BLE001  a report must never stop on one panel
        logger.warning("panel %s failed: %s: %s", getattr(draw, "__name__", draw),
                       type(exc).__name__, exc)
        for art in list(ax.lines) + list(ax.collections) + list(ax.texts) + list(ax.patches):
            art.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        no_data(ax, f"could not draw: {type(exc).__name__}: {exc}")
        return False


def headroom(ax, frac: float = 0.3) -> None:
    """Extend the y axis upwards by ``frac`` of its span (room for a legend above the data)."""
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(lo, hi * (hi / lo) ** frac)
    else:
        ax.set_ylim(lo, hi + frac * (hi - lo))


def plain_log_labels(axis, subs=(1.0, 2.0, 5.0)) -> None:
    """Tick labels 2, 5, 10 (not 2x10^0) at 1-2-5 steps on a log axis; no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def panel_letter(ax, letter: str, x: float = -0.02) -> None:
    """The bold panel letter above the top-left corner of ``ax``."""
    ax.text(x, 1.0, letter, transform=ax.transAxes, ha="right", va="bottom", fontsize=10,
            fontweight="bold")


def is_finite(*values) -> bool:
    """True when every value is a finite number (None and NaN are not)."""
    try:
        return all(v is not None and np.isfinite(v) for v in values)
    except TypeError:
        return False


def format_pm(value, err=math.nan, unit: str = "", digits: int | None = None) -> str:
    """``value ± err unit`` rounded to two significant digits of the error.

    Parameters
    ----------
    value, err : float
        An undefined (non-finite) value gives "n/a"; an undefined or zero error prints the
        value alone with three significant digits.
    unit : str
        Appended after a space.
    digits : int, optional
        Fixed decimals instead of the rule.

    Returns
    -------
    str
    """
    if not is_finite(value):
        return "n/a"
    if is_finite(err) and err > 0:
        d = digits if digits is not None else int(min(4, max(0, 1 - math.floor(
            math.log10(err)))))
        s = f"{value:.{d}f} ± {err:.{d}f}"
    else:
        d = digits if digits is not None else int(min(4, max(0, 2 - math.floor(
            math.log10(abs(value)))))) if value != 0 else 0
        s = f"{value:.{d}f}"
    return s + (f" {unit}" if unit else "")


def group_style(i: int) -> tuple[str, str]:
    """``(colour, marker)`` of the ``i``-th group (colours cycle every 8, markers shift)."""
    return GROUP_COLORS[i % len(GROUP_COLORS)], GROUP_MARKERS[(i // len(GROUP_COLORS) + i)
                                                              % len(GROUP_MARKERS)]
