"""Figures of a results file: one multi-panel figure per particle and a per-batch summary.

matplotlib is an optional dependency (extra ``plot``) and is imported only inside these
functions, so ``import qrspec`` never imports it; importing this module without matplotlib
installed raises ImportError with the install hint (found with ``importlib.util.find_spec``,
which does not import it). Figures are drawn on
:class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, no global backend
switch, nothing is ever shown) under a local ``rc_context`` with publication defaults, and
written atomically (``.<name>.partial`` then renamed).

A panel whose data are missing or NaN (no charged period, charging not inverted, a failed
particle) says "no data" and why; an unexpected error while drawing one panel is logged and
shown in that panel, never raised, so one odd particle never stops a report.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import textwrap
from pathlib import Path

import numpy as np

from qrspec.errors import QrspecError

__all__ = ["plot_particle", "plot_batch", "write_figures", "particle_figure", "batch_figure",
           "forward_figure", "threshold_map_figure", "save_figure", "draw_dwell", "LABEL_COLORS",
           "COLORS"]

logger = logging.getLogger(__name__)

_HINT = "qrspec figures need matplotlib: pip install 'qrspec[plot]'"


def _have_matplotlib() -> bool:
    if "matplotlib" in sys.modules:
        return sys.modules["matplotlib"] is not None
    return importlib.util.find_spec("matplotlib") is not None


if not _have_matplotlib():
    raise ImportError(_HINT)

# Okabe-Ito colour-blind-safe palette; one colour per state / quantity in every figure
LABEL_COLORS = {"neutral": "#0072B2", "charged": "#D55E00", "trap": "#009E73",
                "off": "#7F7F7F", "unclassified": "#CC79A7"}
COLORS = {"trace": "0.30", "total": "0.55", "g2_raw": "0.15", "g2_gated": "#CC79A7",
          "tau_x": "#0072B2", "tau_xx": "#56B4E9", "n_c": "#D55E00", "tau_a": "#882255",
          "intensity": "0.45", "fit": "black", "burst": "#CC3311", "alpha_on": "#0072B2",
          "alpha_off": "0.35"}
FORMATS = ("png", "pdf")
DPI = 300
WIDTH_IN = 7.2  # double-column width (183 mm)

_RC = {
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


# ------------------------------------------------------------------ plumbing
def _mpl():
    """Import matplotlib (optional dependency) with an install hint."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_HINT) from exc
    return matplotlib


def _check_fmt(fmt) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} must be one of {', '.join(map(repr, FORMATS))}")
    return fmt


def _out_fmt(out_path, fmt) -> tuple[Path, str]:
    out = Path(out_path)
    if fmt is None:
        fmt = out.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"out_path={os.fspath(out_path)!r} must end in .png or .pdf "
                             "(or pass fmt=)")
    return out, _check_fmt(fmt)


def _check_dpi(dpi) -> int:
    if isinstance(dpi, bool) or not (isinstance(dpi, int | np.integer) and 10 <= dpi <= 2400):
        raise ValueError(f"dpi={dpi!r} must be an integer in [10, 2400]")
    return int(dpi)


def _new_figure(width_in, height_in):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out: Path, fmt: str, dpi: int) -> Path:
    """Write ``fig`` to ``out`` atomically (under the figure rc settings)."""
    import matplotlib

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with matplotlib.rc_context(_RC):
            fig.savefig(partial, format=fmt, dpi=dpi)
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    return out


def _no_data(ax, why: str = "", *, keep_axes: bool = False):
    """Mark a panel as empty: 'no data' and the reason."""
    text = "no data" + (f"\n{textwrap.fill(why, 40)}" if why else "")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=7, color="0.4")
    if not keep_axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.minorticks_off()


def _guard(ax, draw, *args):
    """Draw one panel; an unexpected error becomes a message in the panel (and a log record)."""
    try:
        draw(ax, *args)
    except Exception as exc:  # noqa: BLE001  a report must never stop on one panel
        logger.warning("panel %s failed: %s: %s", getattr(draw, "__name__", draw),
                       type(exc).__name__, exc)
        for art in list(ax.lines) + list(ax.collections) + list(ax.texts):
            art.remove()
        _no_data(ax, f"could not draw: {type(exc).__name__}: {exc}")


def _headroom(ax, frac: float = 0.3):
    """Extend the y axis upwards by ``frac`` of its span (room for a legend above the data)."""
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(lo, hi * (hi / lo) ** frac)
    else:
        ax.set_ylim(lo, hi + frac * (hi - lo))


def _plain_log_labels(axis):
    """Tick labels 2, 5, 10 instead of 2x10^0 on a log axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _letter(ax, letter: str, x: float = -0.02):
    ax.text(x, 1.0, letter, transform=ax.transAxes, ha="right", va="bottom", fontsize=10,
            fontweight="bold")


def _finite(*values) -> bool:
    return all(v is not None and np.isfinite(v) for v in values)


def _pm(value, err, unit="", digits=None) -> str:
    """``value ± err unit``, rounded to two significant digits of the error (three significant
    digits of the value when the error is not finite)."""
    if not _finite(value):
        return "n/a"
    if _finite(err) and err > 0:
        d = digits if digits is not None else int(min(4, max(0, 1 - math.floor(
            math.log10(err)))))
        s = f"{value:.{d}f} ± {err:.{d}f}"
    else:
        d = digits if digits is not None else int(min(4, max(0, 2 - math.floor(
            math.log10(abs(value)))))) if value != 0 else 0
        s = f"{value:.{d}f}"
    return s + (f" {unit}" if unit else "")


# ------------------------------------------------------------------ reading
class _Particle:
    """A ParticleAnalysis and its summary values (what the store has; nothing re-derived)."""

    def __init__(self, analysis):
        from qrspec.store.summary import summary_values

        self.a = analysis
        self.id = analysis.particle_id
        self.row = summary_values(analysis)

    def file_s(self, time_s) -> np.ndarray:
        """File-clock times of the stages' analysis-clock times (burst windows put back)."""
        b = self.a.bursts
        t = np.asarray(time_s, float)
        return t.copy() if b is None else b.to_file_s(t)

    def value(self, col) -> float:
        try:
            return float(self.row[col])
        except (KeyError, ValueError, TypeError):
            return math.nan

    @property
    def status(self) -> str:
        return self.a.status

    @property
    def error(self) -> str:
        return self.a.error

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    def why_missing(self, what: str, *, charging: bool = False) -> str:
        """A short reason for a missing panel: the particle failed, or (charging panels) the
        analysis flag that explains it, else that the results hold no such data."""
        if self.failed:
            return "particle analysis failed"
        acq = self.a.acquisition
        if acq is not None and not acq.has_nanotimes and what in (
                "gated g2", "decays", "FLID", "charging windows"):
            return "T2 data without sync: no nanotimes"
        if acq is not None and len(acq.detectors) == 1 and (
                "g2" in what or what == "charging windows"):
            return f"one detector ({acq.detectors[0]}): g2 not applicable"
        if charging:
            for key, text in (("no charged period", "no charged period"),
                              ("no usable neutral reference", "no usable neutral reference: "
                               "n_c and tau_A not inverted"),
                              ("no neutral period", "no neutral period")):
                if key in self.error:
                    return text
        return f"no {what} in the results"


def _analysis(analysis_or_path, particle_id):
    """A ParticleAnalysis given in memory or read back from a results file."""
    from qrspec.analysis.particle import ParticleAnalysis
    from qrspec.store.hdf5 import read_particle

    if isinstance(analysis_or_path, ParticleAnalysis):
        if particle_id is not None and particle_id != analysis_or_path.particle_id:
            raise QrspecError(f"particle_id={particle_id!r} is not the given analysis "
                              f"({analysis_or_path.particle_id!r})")
        return analysis_or_path
    return read_particle(analysis_or_path, particle_id)


# ------------------------------------------------------------------ particle panels
def _trace_axis(p: _Particle):
    tr = p.a.trajectory
    if tr is None or np.size(tr.counts) == 0 or not tr.bin_width_s > 0:
        return None
    counts = np.asarray(tr.counts)
    total = counts.sum(axis=1) if counts.ndim == 2 else counts
    bw, start = float(tr.bin_width_s), float(tr.start_s)
    t = p.file_s(start + (np.arange(total.size) + 0.5) * bw)
    return t, total.astype(np.float64), bw, start


def _segments(p: _Particle):
    lv = p.a.levels
    if lv is None or lv.segments.size == 0:
        return None
    seg = lv.segments
    return (p.file_s(seg.start_s), p.file_s(seg.stop_s), [str(x) for x in seg.label],
            seg.n_photons)


def _draw_trace(ax, p: _Particle, ax_hist):
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    tr = _trace_axis(p)
    if tr is None:
        _no_data(ax, "no intensity trajectory" if not p.failed else "particle analysis failed")
        _no_data(ax_hist)
        return
    t, counts, bw, start = tr
    ax.plot(t, counts, color=COLORS["trace"], lw=0.45, zorder=2)
    ax.set_xlim(start, float(p.file_s(start + counts.size * bw)))
    ymax = counts.max() * 1.12 if counts.max() > 0 else 1.0
    ax.set_ylim(0, ymax)
    seg = _segments(p)
    handles = []
    if seg is not None:
        s0, s1, labels, n_ph = seg
        colors = [LABEL_COLORS.get(lab, LABEL_COLORS["unclassified"]) for lab in labels]
        blend = blended_transform_factory(ax.transData, ax.transAxes)
        ax.add_collection(PolyCollection(
            [[(a, 0), (b, 0), (b, 1), (a, 1)] for a, b in zip(s0, s1, strict=True)],
            facecolors=colors, edgecolors="none", alpha=0.13, transform=blend, zorder=1))
        if n_ph is not None and len(n_ph) == len(s0):
            dur = np.maximum(s1 - s0, 1e-12)
            level = np.asarray(n_ph, float) / dur * bw
            ax.add_collection(LineCollection(
                [[(a, y), (b, y)] for a, b, y in zip(s0, s1, level, strict=True)],
                colors=colors, linewidths=1.6, zorder=3))
        for lab in LABEL_COLORS:
            if lab in labels:
                handles.append(Patch(facecolor=LABEL_COLORS[lab], alpha=0.5, label=lab))
    cps = p.a.levels.change_points_s if p.a.levels is not None else None
    if cps is not None and np.size(cps):
        blend = blended_transform_factory(ax.transData, ax.transAxes)
        cps = p.file_s(cps)
        ci = p.a.levels.change_points_ci_s
        if ci is not None and np.shape(ci) == (np.size(cps), 2):
            ci = p.file_s(ci)
            ax.hlines(np.full(np.size(cps), 0.985), ci[:, 0], ci[:, 1], color="black", lw=0.8,
                      transform=blend, zorder=4)
        ax.plot(cps, np.full(np.size(cps), 0.985), linestyle="none", marker="v", ms=3,
                color="black", transform=blend, zorder=4, clip_on=False)
        handles.append(Line2D([], [], linestyle="none", marker="v", ms=3, color="black",
                              label=f"change point ({np.size(cps)})"))
    handles += _draw_hygiene(ax, p, float(ax.get_xlim()[1]))
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=6,
                  borderaxespad=0.1, handlelength=1.2, columnspacing=1.0)
    unit = f"{bw * 1e3:g} ms"
    ax.set_ylabel(f"Intensity (counts / {unit})")
    # sideways intensity histogram, same y axis
    nb = int(min(60, max(10, counts.max() - counts.min() + 1)))
    ax_hist.hist(counts, bins=nb, range=(0, ymax), orientation="horizontal",
                 color=COLORS["trace"], alpha=0.8)
    ax_hist.set_ylim(0, ymax)
    ax_hist.set_xlabel("Occurrence")
    ax_hist.tick_params(labelleft=False)


def _draw_hygiene(ax, p: _Particle, t_end: float) -> list:
    """Burst windows (shaded red, at least 0.2 % of the axis wide so a 1 ms burst shows) and
    the bleach time (line, the trimmed part greyed) on the trajectory; legend handles."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    b = p.a.bursts
    if b is not None and b.n_bursts:
        lo, hi = ax.get_xlim()
        min_w = 0.002 * (hi - lo)
        for a, z in b.removal.windows_s:
            c, w = 0.5 * (a + z), max(z - a, min_w)
            ax.axvspan(c - w / 2, c + w / 2, color=COLORS["burst"], alpha=0.5, lw=0, zorder=1.5)
        what = "removed" if b.removed else "kept"
        handles.append(Patch(facecolor=COLORS["burst"], alpha=0.5,
                             label=f"burst ({b.n_bursts}, {what})"))
    bl = p.a.blinking
    if bl is not None and bl.bleaching.bleached:
        t_b = float(p.file_s(bl.bleaching.bleach_time_s))
        ax.axvline(t_b, color="black", ls="--", lw=0.9, zorder=4)
        if bl.trimmed:
            ax.axvspan(t_b, t_end, color="0.55", alpha=0.35, lw=0, zorder=1.6)
        handles.append(Line2D([], [], color="black", ls="--", lw=0.9,
                              label=f"bleached at {t_b:.3g} s"
                              + (" (not analysed after)" if bl.trimmed else "")))
    return handles


def _charging_rows(p: _Particle):
    """The charging windows as columns, with the pipeline's usable flag per window."""
    ch = p.a.charging
    if ch is None or ch.windows.n_c.size == 0:
        return None
    w = ch.windows
    cols = {c: np.asarray(getattr(w, c), float) for c in ("t_start_s", "t_stop_s", "n_c",
                                                        "n_c_err", "tau_a_xx_ns",
                                                        "tau_a_xx_err_ns")}
    cols["t_start_s"], cols["t_stop_s"] = p.file_s(cols["t_start_s"]), p.file_s(cols["t_stop_s"])
    cols["good"] = np.asarray(w.usable, bool)
    return cols


def _draw_charging(ax, p: _Particle, key: str):
    rows = _charging_rows(p)
    col, err_col, color = (("n_c", "n_c_err", COLORS["n_c"]) if key == "n_c" else
                           ("tau_a_xx_ns", "tau_a_xx_err_ns", COLORS["tau_a"]))
    ylabel = r"$n_c$" if key == "n_c" else r"$\tau_{\mathrm{A,XX}}$ (ns)"
    ax.set_ylabel(ylabel)
    if rows is None or not np.isfinite(rows[col]).any():
        _no_data(ax, p.why_missing("charging windows", charging=True), keep_axes=True)
        ax.set_yticks([])
        return
    t0, t1 = rows["t_start_s"], rows["t_stop_s"]
    x = 0.5 * (t0 + t1)
    y = rows[col]
    e = np.where(np.isfinite(rows[err_col]), rows[err_col], 0.0)
    for good, face, lab in ((True, color, "identified"),
                            (False, "white", "flagged (bound / not identifiable)")):
        m = (rows["good"] == good) & np.isfinite(y)
        if m.any():
            ax.errorbar(x[m], y[m], yerr=e[m], xerr=[x[m] - t0[m], t1[m] - x[m]], fmt="o",
                        color=color, mfc=face, mec=color, ms=3.5, lw=0.8, label=lab)
    if key == "tau_a":
        ref = p.value("tau_a_xx_neutral_ns")
        if _finite(ref):
            ax.axhline(ref, color=LABEL_COLORS["neutral"], ls="--", lw=0.8,
                       label=r"neutral $\tau_{\mathrm{A,XX}}^0$")
    lo = np.nanmin(y - e)
    hi = np.nanmax(y + e)
    if key == "tau_a" and _finite(p.value("tau_a_xx_neutral_ns")):
        lo, hi = min(lo, p.value("tau_a_xx_neutral_ns")), max(hi, p.value("tau_a_xx_neutral_ns"))
    pad = 0.15 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.2
    ax.set_ylim(max(0.0, lo - pad), hi + pad)
    ax.legend(loc="best", ncol=3, handlelength=1.2)


def _draw_decays(ax, ax_res, p: _Particle):
    al = p.a.alignment
    t0 = al.t0_ns if al is not None else math.nan
    drawn, taus = [], []
    total, time_ns = (al.counts, al.time_ns) if al is not None else (None, None)
    if not _finite(t0):
        t0 = 0.0
    for state in ("neutral", "charged"):
        st = getattr(p.a.states, state, None) if p.a.states is not None else None
        if st is None or st.decay_counts is None or np.sum(st.decay_counts) <= 0:
            continue
        bin_ns = st.decay_bin_ns
        n_whole = int(np.floor(al.period_ns / bin_ns + 1e-9))  # a last, shorter bin is not drawn
        t = np.asarray(st.decay_time_ns[:n_whole], float)
        c = np.asarray(st.decay_counts[: t.size], float)
        norm = c.max()
        tau, tau_err = st.tau_x_ns, st.tau_x_err_ns
        color = LABEL_COLORS[state]
        label = f"{state}  {_pm(tau, tau_err, 'ns')}"
        ax.plot(t - t0, np.where(c > 0, c / norm, np.nan), color=color, lw=0.6, alpha=0.75,
                drawstyle="steps-post", label=label)
        drawn.append(state)
        if _finite(tau):
            taus.append(tau)
            # the pipeline stores the fitted tail model and its residuals on whole bins
            model, resid = st.fit_model_counts, st.fit_residuals
            if model is not None and resid is not None:
                n = min(np.size(model), t.size)
                m = np.isfinite(np.asarray(resid[:n], float))
                tm = t[:n][m] - t0 + bin_ns / 2
                ax.plot(tm, np.asarray(model[:n], float)[m] / norm, color=color,
                        lw=1.0, ls=(0, (4, 1.5)) if state == "charged" else "-", zorder=4)
                ax_res.plot(tm, np.asarray(resid[:n], float)[m], color=color, lw=0.5,
                            alpha=0.8)
    if total is not None and time_ns is not None and np.sum(total) > 0:
        tt = np.asarray(time_ns, float)
        c = np.asarray(total, float)
        ax.plot(tt - t0, np.where(c > 0, c / c.max(), np.nan), color=COLORS["total"],
                lw=0.5, alpha=0.6, drawstyle="steps-post", label="all photons", zorder=1)
        drawn.append("total")
    if not drawn:
        _no_data(ax, p.why_missing("decays"))
        _no_data(ax_res)
        return
    ax.set_yscale("log")
    ax.set_ylabel("Norm. counts")
    span = (float(time_ns[-1]) - t0) if time_ns is not None else 50.0
    x_hi = min(span, max(20.0, 6.0 * max(taus))) if taus else span
    ax.set_xlim(-2.0, x_hi)
    lo = max(ax.get_ylim()[0], 1e-4)
    ax.set_ylim(lo, 100.0)  # two decades of headroom for the legend, no ticks there
    ax.set_yticks([10.0 ** k for k in range(-8, 1) if 10.0 ** k >= lo])
    ax.set_yticks([m * 10.0 ** k for k in range(-8, 0) for m in range(2, 10)
                   if m * 10.0 ** k >= lo], minor=True)
    ax.legend(loc="upper right", handlelength=1.2, borderaxespad=0.3,
              title=r"$\tau_\mathrm{X}$ (tail fit)", title_fontsize=6.5, alignment="right")
    ax.tick_params(labelbottom=False)
    ax_res.axhline(0, color="black", lw=0.6)
    ax_res.set_ylim(-5, 5)
    ax_res.set_yticks([-4, 0, 4])
    ax_res.set_ylabel("Resid. (σ)")
    ax_res.set_xlabel(r"Delay $t - t_0$ (ns)")


def _zero_peak_note(p: _Particle) -> str:
    """Which peak is lag zero and why (one line)."""
    al = p.a.alignment
    if al is None or al.g2_mode != "pulsed":
        return ""
    src = al.delay_source
    if src == "data":
        return f"lag 0: peak k = {al.zero_peak_index} (suppressed, z = {al.zero_peak_z:.1f})"
    if src == "user":
        return f"lag 0: user delay {al.delay_ns:.4g} ns"
    return "lag 0: sub-period delay (zero peak undecided)"


def _g2_value_text(name: str, h) -> str:
    """g2(0) with its error; with an empty centre peak its 95 % upper bound; nothing drawn
    for an undefined value."""
    g, e = h.g2_zero, h.g2_zero_err
    hi = h.g2_zero_ci95[1] if h.g2_zero_ci95 is not None and len(h.g2_zero_ci95) == 2 \
        else math.nan
    if _finite(g) and not _finite(e) and _finite(hi):
        return rf"{name}: $g^{{(2)}}(0)$ < {hi:.2f} (95 %, no centre pairs)"
    return rf"{name}: $g^{{(2)}}(0)$ = {_pm(g, e, digits=2)}"


def _draw_g2(ax, p: _Particle, key: str):
    raw = key == "g2"
    g2 = p.a.g2
    h = None if g2 is None else (g2.raw if raw else g2.gated)
    color = COLORS["g2_raw"] if raw else COLORS["g2_gated"]
    name = "raw" if raw else "gated"
    if g2 is not None and g2.g2_mode == "cw":
        name = "CW"
    if h is None or np.size(h.lag_ns) < 2:
        _no_data(ax, p.why_missing("g2" if raw else "gated g2"))
        return
    lag = np.asarray(h.lag_ns, float)
    counts = np.asarray(h.counts, float)
    bin_ns = float(lag[1] - lag[0])
    al = p.a.alignment
    period = al.g2_period_ns if al is not None and _finite(al.g2_period_ns) else (
        al.period_ns if al is not None and g2.g2_mode == "pulsed" else None)
    window = h.window_ns
    peaks = h.peaks
    if g2.g2_mode == "cw":
        ab = g2.antibunching
        tr = ab.rise_time_ns if ab is not None and _finite(ab.rise_time_ns) else 10.0
        lim = min(float(np.abs(lag).max()), max(10.0, 8.0 * tr))
        ax.set_xlim(-lim, lim)
        if ab is not None and ab.success and ab.model_counts is not None:
            ax.plot(ab.lag_ns, ab.model_counts, color=COLORS["g2_gated"], lw=1.0, zorder=4,
                    label="dip fit")
    elif period is not None and _finite(period):
        k_max = 3
        if peaks is not None and np.size(peaks):
            k_max = int(min(3, np.max(np.abs(peaks))))
        lim = (k_max + 0.5) * period
        ax.set_xlim(-lim, lim)
        if _finite(window) and peaks is not None:
            for k in np.asarray(peaks):
                if abs(k) > k_max:
                    continue
                c = k * period
                ax.axvspan(c - window / 2, c + window / 2, lw=0,
                           color=color if k == 0 else "0.5",
                           alpha=0.16 if k == 0 else (0.09 if k % 2 else 0.04), zorder=0)
    ax.plot(lag, counts, color=color, lw=0.6, drawstyle="steps-mid")
    text = _g2_value_text(name, h)
    c = g2.afterpulse
    if c is not None and c.applied:  # the particle's value: afterpulse pairs removed
        v, e = (c.g2_zero, c.g2_zero_err) if raw else (c.g2_zero_gated, c.g2_zero_gated_err)
        if _finite(v):
            text = (rf"{name}: $g^{{(2)}}(0)$ = {_pm(v, e, digits=3)}"
                    f"\n(afterpulse-corrected; measured {_pm(h.g2_zero, math.nan, digits=3)})")
    if g2.g2_mode == "cw" and g2.antibunching is not None:
        ab = g2.antibunching
        text += "\n" + r"$\tau_r$ = " + _pm(ab.rise_time_ns, ab.rise_time_err_ns, "ns")
    if not raw:
        gate = g2.gate_after_rise_ns
        if _finite(gate):
            text += f"\ngate $t - t_0 \\geq$ {gate:g} ns"
    elif _zero_peak_note(p):
        text += "\n" + _zero_peak_note(p)
    ax.text(0.98, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    ax.set_ylim(0, max(counts.max() * (1.35 if raw else 1.5), 1.0))  # room for the text
    ax.set_ylabel(f"Coinc. / {bin_ns:g} ns")


def _draw_flid(ax, p: _Particle, fig):
    from matplotlib.colors import LogNorm

    fl = p.a.flid
    if fl is None or np.sum(fl.histogram) <= 0:
        _no_data(ax, p.why_missing("FLID"))
        return
    h = np.asarray(fl.histogram, float)
    ce, de = np.asarray(fl.count_edges, float), np.asarray(fl.delay_edges_ns, float)
    rows = np.flatnonzero(h.sum(axis=1))
    cols = np.flatnonzero(h.sum(axis=0))
    r0, r1 = rows[0], rows[-1] + 1
    c0, c1 = cols[0], cols[-1] + 1
    h, ce, de = h[r0:r1, c0:c1], ce[r0:r1 + 1], de[c0:c1 + 1]
    # merge intensity rows so the map has <= 60 rows (unit count bins are too fine to see)
    n_rows = h.shape[0]
    k = max(1, -(-n_rows // 60))
    if k > 1:
        pad = np.zeros((-(-n_rows // k) * k, h.shape[1]))
        pad[:n_rows] = h
        h = pad.reshape(-1, k, h.shape[1]).sum(axis=1)
        ce = np.append(ce[0:n_rows:k], ce[n_rows])  # exact edges; the last group may be short
    masked = np.ma.masked_less_equal(h, 0)
    mesh = ax.pcolormesh(de, ce, masked, norm=LogNorm(vmin=1, vmax=max(h.max(), 2)),
                         cmap="viridis", rasterized=True)
    cb = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.06)
    cb.set_label("Trace bins")
    cb.ax.tick_params(labelsize=6)
    # levels found by the change-point analysis, at (lifetime, intensity per trace bin)
    lv = p.a.levels
    tau, inten, lab = (lv.tau_ns, lv.intensity_cps, lv.label) if lv is not None else \
        (None, None, None)
    bw = fl.bin_width_s
    x_lim, y_lim = [de[0], de[-1]], [ce[0], ce[-1]]
    if tau is not None and inten is not None and lab is not None and _finite(bw):
        for ti, ii, la in zip(tau, inten, lab, strict=False):
            la = str(la)
            if _finite(ti, ii):
                ax.plot(ti, ii * bw, marker="o", ms=6, mec="white", mew=1.0,
                        mfc=LABEL_COLORS.get(la, LABEL_COLORS["unclassified"]), zorder=5)
                x_lim = [min(x_lim[0], ti - 0.5), max(x_lim[1], ti + 0.5)]
                y_lim = [min(y_lim[0], ii * bw * 0.95), max(y_lim[1], ii * bw * 1.05)]
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    unit = f"{bw * 1e3:g} ms" if _finite(bw) else "bin"
    ax.set_xlabel("Mean delay (ns)")
    ax.set_ylabel(f"Intensity (counts / {unit})")


DWELL_STATE_COLORS = {"on": "#0072B2", "off": "#7F7F7F"}
DWELL_MODEL_STYLES = {"power_law": "-", "truncated": "-.", "exponential": ":", "cutoff": "--"}
DWELL_MODEL_NAMES = {"power_law": "power law", "truncated": "truncated power law",
               "exponential": "exponential", "cutoff": "power law × exp. cut-off"}


def draw_dwell(ax, curve) -> None:
    """Draw one :class:`~qrspec.levels.dwell.DwellCurve` on a matplotlib axis: the
    Kaplan-Meier ``P(T >= t)`` of the stays, the fitted power law (solid) and the preferred
    law when it is another one, from ``t_min`` on; the region below the change-point time
    resolution shaded (:mod:`qrspec.app.dwell_plots` has the two-panel figure)."""
    color = DWELL_STATE_COLORS.get(curve.state, "0.3")
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
            lab = DWELL_MODEL_NAMES[model]
            if model == "power_law" and math.isfinite(curve.alpha):
                lab += f", α = {_pm(curve.alpha, curve.alpha_err)}"
            ax.plot(curve.model_t_s, curve.model_survival[k], DWELL_MODEL_STYLES[model],
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


def _draw_dwell_state(ax, p: _Particle, state: str):
    """The stored dwell-time curve of the on or off stays (:func:`draw_dwell`), log-log."""
    bl = p.a.blinking
    if bl is None:
        _no_data(ax, p.why_missing("dwell times"))
        return
    draw_dwell(ax, (bl.on if state == "on" else bl.off).curve)


def _info_text(ax, p: _Particle):
    ax.axis("off")
    lines = [
        ("status", p.status),
        ("⟨rate⟩", f"{p.value('rate_cps') / 1e3:.1f} kcps" if _finite(p.value("rate_cps"))
         else "n/a"),
        (r"$f_\mathrm{neutral}$", f"{p.value('frac_time_neutral'):.2f}"
         if _finite(p.value("frac_time_neutral")) else "n/a"),
        (r"$\tau_\mathrm{X}^0$", _pm(p.value("tau_x_neutral_ns"),
                                     p.value("tau_x_neutral_err_ns"), "ns")),
        (r"$\tau_\mathrm{XX}^0$", _pm(p.value("tau_xx_neutral_ns"),
                                      p.value("tau_xx_neutral_err_ns"), "ns")),
        (r"$\tau_\mathrm{A,XX}^0$", _pm(p.value("tau_a_xx_neutral_ns"), math.nan, "ns")),
        (r"$\langle n_c\rangle$", _pm(p.value("n_c_mean"), p.value("n_c_err"))),
        (r"$\tau_\mathrm{A,XX}^c$", _pm(p.value("tau_a_xx_charged_ns"),
                                        p.value("tau_a_xx_charged_err_ns"), "ns")),
        ("levels", f"{int(p.value('n_levels'))}" if _finite(p.value("n_levels")) and
         p.value("n_levels") >= 0 else "n/a"),
        (r"$\alpha_\mathrm{on}$", _pm(p.value("alpha_on"), p.value("alpha_on_err"))),
        (r"$\alpha_\mathrm{off}$", _pm(p.value("alpha_off"), p.value("alpha_off_err"))),
    ]
    y = 1.0
    for k, v in lines:
        ax.text(0.0, y, k, transform=ax.transAxes, fontsize=6.5, va="top")
        ax.text(1.0, y, v, transform=ax.transAxes, fontsize=6.5, va="top", ha="right",
                color="#B00000" if v == "failed" else "black")
        y -= 1.0 / len(lines)


def particle_figure(analysis_or_path, particle_id: str | None = None):
    """Multi-panel figure of one particle, as a :class:`matplotlib.figure.Figure`.

    Panels: (a) intensity trajectory with the levels coloured by label (neutral, charged,
    trap, off) and the change points with their confidence regions, the removed photon bursts
    (red) and a bleach (dashed line, the part not analysed greyed), plus the intensity
    histogram; (b) n_c(t) and (c) tau_A,XX(t) per charging window with error bars, on the
    trajectory's time axis (open markers: windows flagged as bounds or not identifiable);
    (d) decays per state (log scale, normalised to their maximum) with the pipeline's stored
    exciton tail fit, its lifetimes in the legend and Pearson residuals; (e) g2 raw and
    (f) gated with the peak windows shaded and g2(0) (afterpulse-corrected when it was);
    (g) FLID with the levels marked; (h) on and (i) off dwell-time distributions (log-log)
    with the fitted laws. Times are on the file's clock (the stages' analysis clock with the burst
    windows put back). Axes carry labels ("trajectory", "n_c", "tau_a", "decays",
    "residuals", "g2", "g2_gated", "flid", "histogram", "dwell_on", "dwell_off").

    Parameters
    ----------
    analysis_or_path : ParticleAnalysis or str or Path
        A particle in memory (:func:`qrspec.analysis.analyze_file`) or a results file
        (read back with :func:`qrspec.store.hdf5.read_particle`).
    particle_id : str, optional
        One of the file's particle ids (needed when the file holds several particles).

    Returns
    -------
    matplotlib.figure.Figure
        Drawn with the Agg canvas; save it with :func:`plot_particle` for the same rc settings.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, or ``particle_id`` is not in it.
    """
    matplotlib = _mpl()
    p = _Particle(_analysis(analysis_or_path, particle_id))
    with matplotlib.rc_context(_RC):
        fig = _new_figure(WIDTH_IN, 10.8)
        outer = fig.add_gridspec(4, 1, height_ratios=[4.4, 3.4, 2.2, 0.35])
        top = outer[0].subgridspec(3, 2, height_ratios=[2.0, 1.0, 1.0], width_ratios=[5.3, 1.2])
        ax_tr = fig.add_subplot(top[0, 0])
        ax_h = fig.add_subplot(top[0, 1], sharey=ax_tr)
        ax_nc = fig.add_subplot(top[1, 0], sharex=ax_tr)
        ax_ta = fig.add_subplot(top[2, 0], sharex=ax_tr)
        ax_info = fig.add_subplot(top[1:, 1])
        bottom = outer[1].subgridspec(1, 3, width_ratios=[1.0, 1.0, 1.05])
        dec = bottom[0].subgridspec(2, 1, height_ratios=[3, 1])
        ax_dec = fig.add_subplot(dec[0])
        ax_res = fig.add_subplot(dec[1], sharex=ax_dec)
        g2g = bottom[1].subgridspec(2, 1)
        ax_g2 = fig.add_subplot(g2g[0])
        ax_g2g = fig.add_subplot(g2g[1], sharex=ax_g2)
        ax_fl = fig.add_subplot(bottom[2])
        dw = outer[2].subgridspec(1, 2)
        ax_on = fig.add_subplot(dw[0])
        ax_off = fig.add_subplot(dw[1])
        ax_note = fig.add_subplot(outer[3])
        ax_note.axis("off")

        for ax, name in ((ax_tr, "trajectory"), (ax_h, "histogram"), (ax_nc, "n_c"),
                         (ax_ta, "tau_a"), (ax_dec, "decays"), (ax_res, "residuals"),
                         (ax_g2, "g2"), (ax_g2g, "g2_gated"), (ax_fl, "flid"),
                         (ax_on, "dwell_on"), (ax_off, "dwell_off")):
            ax.set_label(name)
        _guard(ax_tr, _draw_trace, p, ax_h)
        _guard(ax_nc, _draw_charging, p, "n_c")
        _guard(ax_ta, _draw_charging, p, "tau_a")
        for a in (ax_tr, ax_nc):
            a.tick_params(labelbottom=False)
        ax_ta.set_xlabel("Time (s)")
        _guard(ax_info, _info_text, p)
        _guard(ax_dec, _draw_decays, ax_res, p)
        _guard(ax_g2, _draw_g2, p, "g2")
        _guard(ax_g2g, _draw_g2, p, "g2_gated")
        ax_g2.tick_params(labelbottom=False)
        ax_g2g.set_xlabel(r"Lag $\tau$ (ns)")
        _guard(ax_fl, _draw_flid, p, fig)
        _guard(ax_on, _draw_dwell_state, p, "on")
        _guard(ax_off, _draw_dwell_state, p, "off")
        for ax, letter in ((ax_tr, "a"), (ax_nc, "b"), (ax_ta, "c"), (ax_dec, "d"),
                           (ax_g2, "e"), (ax_g2g, "f"), (ax_fl, "g"), (ax_on, "h"),
                           (ax_off, "i")):
            _letter(ax, letter, x=-0.01 if ax in (ax_tr, ax_nc, ax_ta) else -0.04)

        title = f"{p.id}   group: {p.a.group or '(none)'}"
        n_ph, dur = p.value("n_photons"), p.value("duration_s")
        if _finite(n_ph, dur) and n_ph >= 0:
            title += f"   {int(n_ph):,} photons in {dur:.1f} s"
        if p.failed:
            title += "   ANALYSIS FAILED"
        fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
        note = p.error
        if note:
            ax_note.text(0.0, 1.0, textwrap.shorten(
                ("error: " if p.failed else "flags: ") + note, 600, placeholder=" ..."),
                transform=ax_note.transAxes, va="top", ha="left", fontsize=6,
                color="#B00000" if p.failed else "0.35", wrap=True)
        return fig




def plot_particle(analysis_or_path, particle_id: str | None, out_path, *,
                  fmt: str | None = None, dpi: int = DPI) -> Path:
    """Write the figure of one particle (:func:`particle_figure`) atomically.

    Parameters
    ----------
    analysis_or_path : ParticleAnalysis or str or Path
        A particle in memory or a qrspec results file.
    particle_id : str or None
        One of the file's particle ids (None: the file's only particle, or the analysis).
    out_path : str or Path
        Figure file.
    fmt : {"png", "pdf"}, optional
        Default: from the suffix of ``out_path``.
    dpi : int
        Resolution of raster output (the FLID map is rasterised in PDF too).

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, or ``particle_id`` is not in it.
    ValueError
        Unknown format.
    """
    _mpl()
    out, fmt = _out_fmt(out_path, fmt)
    _check_dpi(dpi)
    return _save(particle_figure(analysis_or_path, particle_id), out, fmt, dpi)


# ------------------------------------------------------------------ batch figure
def _group_values(summary, groups, col):
    """Finite values of ``col`` per group (particles with status ok)."""
    ok = summary[summary["status"] == "ok"] if summary.size else summary
    out = []
    for g in groups:
        v = np.asarray(ok[col][ok["group"] == g], float) if ok.size else np.zeros(0)
        out.append(v[np.isfinite(v)])
    return out


def _group_stats(table, groups, col):
    """``(mean, sem)`` of ``col`` per group, as stored in ``/groups`` (never recomputed)."""
    out = []
    for g in groups:
        row = table[table["group"] == g] if table.size else table
        out.append((float(row[f"{col}_mean"][0]), float(row[f"{col}_sem"][0]))
                   if row.size else (math.nan, math.nan))
    return out


def _strip(ax, values, stats, offset, color, marker, label, rng, *, scale=1.0, width=0.09):
    """Individual particles as jittered dots, the group's mean ± SEM (from ``/groups``) as a
    large marker with error bar."""
    from matplotlib.transforms import blended_transform_factory

    any_data = False
    for i, v in enumerate(values):
        v = v * scale
        if v.size == 0:
            ax.text(i + offset, 0.02, "n/a", transform=blended_transform_factory(
                ax.transData, ax.transAxes), ha="center", va="bottom", fontsize=6,
                color=color)
            continue
        any_data = True
        x = i + offset + rng.uniform(-width, width, v.size)
        ax.plot(x, v, linestyle="none", marker=marker, ms=3, mfc=color, mec="none",
                alpha=0.45, zorder=2)
        m, s = stats[i]
        ax.errorbar(i + offset, m, yerr=s if _finite(s) else None, fmt=marker, ms=5.5,
                    color=color, mec="black", mew=0.6, lw=1.0, capsize=2.5, zorder=3,
                    label=label)
        label = None  # one legend entry per series
    return any_data


def _group_axis(ax, groups, counts):
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g or '(none)'}\n(n = {n})" for g, n in zip(groups, counts,
                                                                       strict=True)])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.tick_params(axis="x", which="both", top=False, length=0)
    if len(groups) > 4:  # long lists of group names: slanted labels do not overlap
        ax.tick_params(axis="x", labelrotation=30)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")


def batch_figure(results_path, *, groups=None, particle_filter: str | None = None):
    """Per-batch figure: per-group distributions and the group comparison (paper Fig. 2h).

    Panels: (a) g2(0) raw and gated, (b) neutral exciton and biexciton lifetimes, (c) mean
    charging number n_c, (d) intensity (bars) and n_c (points) versus group, (e) neutral and
    charged biexciton Auger lifetimes, (f) on- and off-time dwell exponents. Every panel shows
    the particles (status ok, finite value) as jittered dots and the group mean ± standard
    error of the mean (the statistics of ``/groups``: ddof = 1, no error bar for a single
    particle); panel (f) shows the group's pooled dwell law (all stays of its particles, one
    fit) ± its error instead, when the file holds it (a finished batch). Axes carry labels
    ("g2", "lifetimes", "n_c", "intensity", "tau_a", "alpha").

    Parameters
    ----------
    results_path : str or Path
        A qrspec results file.
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).
    particle_filter : str, optional
        Show and summarise only the particles this expression selects
        (:mod:`qrspec.app.filters`); the group statistics and pooled laws are recomputed by the
        store on them (:func:`qrspec.store.hdf5.recompute_groups`) and the expression is shown
        in the title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, or a requested group is not in it.
    """
    from qrspec.store.hdf5 import read_results

    matplotlib = _mpl()
    res = read_results(results_path)
    summ, table, shown = _selected_tables(res, particle_filter)
    present = sorted(set(summ["group"].tolist())) if summ.size else []
    if groups is None:
        groups = present
    else:
        groups = [str(g) for g in groups]
        missing = [g for g in groups if g not in present]
        if missing:
            raise QrspecError(f"groups={missing!r} not in {res.path} (groups: {present})")
    n_ok = [int(np.sum((summ["group"] == g) & (summ["status"] == "ok"))) for g in groups]
    n_all = [int(np.sum(summ["group"] == g)) for g in groups]
    rng = np.random.default_rng(0)  # fixed jitter: identical figures for identical files

    def vals(col):
        return _group_values(summ, groups, col)

    def stats(col):
        return _group_stats(table, groups, col)

    def strip(ax, col, *args):
        return _strip(ax, vals(col), stats(col), *args)

    with matplotlib.rc_context(_RC):
        fig = _new_figure(WIDTH_IN, 5.4)
        gs = fig.add_gridspec(2, 3)
        ax_g2 = fig.add_subplot(gs[0, 0])
        ax_tau = fig.add_subplot(gs[0, 1])
        ax_nc = fig.add_subplot(gs[0, 2])
        ax_h = fig.add_subplot(gs[1, 0])
        ax_al = fig.add_subplot(gs[1, 1])
        ax_ta = fig.add_subplot(gs[1, 2])
        for ax, name in ((ax_g2, "g2"), (ax_tau, "lifetimes"), (ax_nc, "n_c"),
                         (ax_h, "intensity"), (ax_al, "alpha"), (ax_ta, "tau_a")):
            ax.set_label(name)

        def panel_g2(ax):
            a = strip(ax, "g2_zero", -0.17, COLORS["g2_raw"], "o", "raw", rng)
            b = strip(ax, "g2_zero_gated", 0.17, COLORS["g2_gated"], "s", "gated", rng)
            if not (a or b):
                _no_data(ax, "no finite g2(0)")
                return
            ax.axhline(0.5, color="0.4", ls=":", lw=0.8)
            ax.text(1.0, 0.5, " 0.5", transform=ax.get_yaxis_transform(), fontsize=6,
                    va="center", ha="left", color="0.4")
            ax.set_ylabel(r"$g^{(2)}(0)$")
            ax.set_ylim(bottom=0)
            _headroom(ax, 0.2)
            ax.legend(loc="upper center", ncol=2)

        def panel_tau(ax):
            a = strip(ax, "tau_x_neutral_ns", -0.17, COLORS["tau_x"], "o",
                       r"$\tau_\mathrm{X}^0$", rng)
            b = strip(ax, "tau_xx_neutral_ns", 0.17, COLORS["tau_xx"], "s",
                       r"$\tau_\mathrm{XX}^0$", rng)
            if not (a or b):
                _no_data(ax, "no neutral lifetimes")
                return
            ax.set_ylabel("Neutral lifetime (ns)")
            ax.set_ylim(bottom=0)
            _headroom(ax, 0.2)
            ax.legend(loc="upper center", ncol=2)

        def panel_nc(ax):
            if not strip(ax, "n_c_mean", 0.0, COLORS["n_c"], "D", None, rng):
                _no_data(ax, "no particle with an inverted n_c")
                return
            ax.set_ylabel(r"$\langle n_c\rangle$ per particle")
            ax.set_ylim(bottom=0)

        def panel_h(ax):
            iv = vals("rate_cps")
            nc = vals("n_c_mean")
            if not any(v.size for v in iv) and not any(v.size for v in nc):
                _no_data(ax, "no particle with status ok")
                return
            x = np.arange(len(groups))
            ms = [(m / 1e3, e / 1e3) for m, e in stats("rate_cps")]
            ax.bar(x - 0.18, [m for m, _ in ms], width=0.32, color=COLORS["intensity"],
                   alpha=0.35, edgecolor=COLORS["intensity"], lw=0.8,
                   yerr=[s if _finite(s) else 0.0 for _, s in ms],
                   error_kw=dict(lw=0.9, capsize=2.5), label="intensity", zorder=1)
            for i, v in enumerate(iv):
                ax.plot(i - 0.18 + rng.uniform(-0.09, 0.09, v.size), v / 1e3,
                        linestyle="none", marker="o", ms=3, mfc=COLORS["intensity"],
                        mec="none", alpha=0.7, zorder=2)
            ax.set_ylabel("Intensity (kcps)")
            ax.set_ylim(bottom=0)
            _headroom(ax, 0.2)
            ax.tick_params(axis="y", right=False)
            tw = ax.twinx()
            tw.tick_params(axis="y", colors=COLORS["n_c"], direction="in")
            tw.spines["right"].set_color(COLORS["n_c"])
            tw.yaxis.label.set_color(COLORS["n_c"])
            tw.set_ylabel(r"$\langle n_c\rangle$")
            if any(v.size for v in nc):
                _strip(tw, nc, stats("n_c_mean"), 0.18, COLORS["n_c"], "D", None, rng)
                tw.set_ylim(bottom=0)
                _headroom(tw, 0.2)
            else:
                tw.text(0.98, 0.95, r"no $n_c$", transform=tw.transAxes, ha="right",
                        va="top", fontsize=7, color=COLORS["n_c"])
                tw.set_yticks([])
            from matplotlib.lines import Line2D
            from matplotlib.patches import Patch
            ax.legend(handles=[Patch(facecolor=COLORS["intensity"], alpha=0.35,
                                     edgecolor=COLORS["intensity"], label="intensity"),
                               Line2D([], [], marker="D", color=COLORS["n_c"], mec="black",
                                      mew=0.6, ls="none", label=r"$\langle n_c\rangle$")],
                      loc="upper left", ncol=2)

        def panel_ta(ax):
            a = strip(ax, "tau_a_xx_neutral_ns", -0.17, LABEL_COLORS["neutral"], "o",
                       "neutral", rng)
            b = strip(ax, "tau_a_xx_charged_ns", 0.17, COLORS["tau_a"], "D",
                       "charged", rng)
            if not (a or b):
                _no_data(ax, "no Auger lifetimes")
                return
            ax.set_ylabel(r"$\tau_\mathrm{A,XX}$ (ns)")
            ax.set_yscale("log")
            _plain_log_labels(ax.yaxis)
            _headroom(ax, 0.3)
            ax.legend(loc="upper center", ncol=2)

        def panel_alpha(ax):
            pooled = {s: _pooled_stats(table, groups, s) for s in ("on", "off")}
            a = _strip(ax, vals("alpha_on"), pooled["on"], -0.17, COLORS["alpha_on"], "o",
                       "on", rng)
            b = _strip(ax, vals("alpha_off"), pooled["off"], 0.17, COLORS["alpha_off"], "s",
                       "off", rng)
            if not (a or b):
                _no_data(ax, "no dwell-time exponents")
                return
            ax.set_ylabel(r"Dwell exponent $\alpha$")
            _headroom(ax, 0.25)
            ax.legend(loc="upper center", ncol=2, title="markers: pooled law", fontsize=6,
                      title_fontsize=6)

        for ax, draw, letter in ((ax_g2, panel_g2, "a"), (ax_tau, panel_tau, "b"),
                                 (ax_nc, panel_nc, "c"), (ax_h, panel_h, "d"),
                                 (ax_al, panel_alpha, "f"), (ax_ta, panel_ta, "e")):
            _guard(ax, draw)
            if groups:
                _group_axis(ax, groups, n_ok)
            _letter(ax, letter, x=-0.04)
        n_failed = sum(n_all) - sum(n_ok)
        title = (f"{Path(res.path).name}: {sum(n_all)} particles in {len(groups)} groups"
                 + (f", {n_failed} failed (not shown)" if n_failed else "")
                 + "; dots: particles, markers: mean ± SEM")
        if shown:
            title += f"\n{shown}"
        fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
        return fig


def _selected_tables(res, particle_filter):
    """``(summary rows shown, group table, title note)``: everything and the stored ``/groups``,
    or the rows a filter selects and the groups recomputed by the store for them."""
    if particle_filter is None:
        note = f"group statistics of the batch filter: {res.filter}" if res.filter else ""
        return res.summary, res.groups, note
    from qrspec.app.filters import parse_filter
    from qrspec.store.hdf5 import GroupSelection, recompute_groups

    pf = parse_filter(particle_filter, res.summary.dtype.names)
    mask = pf.mask(res.summary)
    table = recompute_groups(res.path, GroupSelection(particle_filter=pf, pooled_dwell=True))
    note = f"filter: {particle_filter} ({int(mask.sum())} of {mask.size} particles)"
    return res.summary[mask], table, note


def _pooled_stats(table, groups, state):
    """``(alpha, alpha_err)`` of each group's pooled dwell law (NaN when not stored)."""
    out = []
    for g in groups:
        row = table[table["group"] == g] if table.size else table
        ok = row.size and f"alpha_{state}_pooled" in (table.dtype.names or ())
        out.append((float(row[f"alpha_{state}_pooled"][0]),
                    float(row[f"alpha_{state}_pooled_err"][0])) if ok else (math.nan, math.nan))
    return out


def plot_batch(results_path, out_path, *, groups=None, fmt: str | None = None,
               dpi: int = DPI, particle_filter: str | None = None) -> Path:
    """Write the batch figure (:func:`batch_figure`) atomically.

    Parameters
    ----------
    results_path : str or Path
        A qrspec results file.
    out_path : str or Path
        Figure file.
    groups : sequence of str, optional
        Groups to show, in this order (default: every group, sorted).
    fmt : {"png", "pdf"}, optional
        Default: from the suffix of ``out_path``.
    dpi : int
        Resolution of raster output.
    particle_filter : str, optional
        Only the particles this expression selects (:func:`batch_figure`).

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, a requested group is not in it, or a bad filter.
    ValueError
        Unknown format or dpi.
    """
    _mpl()
    out, fmt = _out_fmt(out_path, fmt)
    _check_dpi(dpi)
    return _save(batch_figure(results_path, groups=groups, particle_filter=particle_filter),
                 out, fmt, dpi)


# ------------------------------------------------------------------ many figures
def write_figures(results_path, out_dir, *, particles=None, fmt: str = "png",
                  dpi: int = DPI, particle_filter: str | None = None) -> list[Path]:
    """Write the batch figure and one figure per particle into ``out_dir``.

    Parameters
    ----------
    results_path : str or Path
        A qrspec results file.
    out_dir : str or Path
        Created if needed. Files: ``batch_summary.<fmt>`` and ``particle_<id>.<fmt>``.
    particles : sequence of str, optional
        Particle ids to draw (default: all).
    fmt : {"png", "pdf"}
    dpi : int
        Resolution of raster output.
    particle_filter : str, optional
        Filter expression over the summary columns (:mod:`qrspec.app.filters`): the batch
        figure summarises the selected particles (group statistics recomputed by the store)
        and only their particle figures are drawn.

    Returns
    -------
    list of Path
        The batch figure first, then the particle figures in summary order.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, or unknown particle ids.
    ValueError
        Unknown format.
    """
    from qrspec.store.hdf5 import read_results

    _mpl()
    fmt = _check_fmt(fmt)
    _check_dpi(dpi)
    res = read_results(results_path)
    ids = res.particle_ids
    if particles is None:
        chosen = ids
    else:
        chosen = [str(x) for x in particles]
        unknown = [x for x in chosen if x not in ids]
        if unknown:
            raise QrspecError(f"particles={unknown!r} not in {res.path}")
    if particle_filter is not None:
        from qrspec.app.filters import apply_filter

        keep = set(np.asarray(res.summary["particle_id"])[apply_filter(res.summary,
                                                                        particle_filter)])
        chosen = [x for x in chosen if x in keep]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_batch(res.path, out_dir / f"batch_summary.{fmt}", fmt=fmt, dpi=dpi,
                        particle_filter=particle_filter)]
    for pid in chosen:
        paths.append(plot_particle(res.path, pid, out_dir / f"particle_{pid}.{fmt}", fmt=fmt,
                                   dpi=dpi))
        logger.info("figure of particle %s written", pid)
    return paths


# ------------------------------------------------------------------ charge-model figures
def save_figure(fig, out_path, *, fmt: str | None = None, dpi: int = DPI) -> Path:
    """Write any figure of this module atomically (format from the suffix by default).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    out_path : str or Path
        ``.png`` or ``.pdf``.
    fmt : {"png", "pdf"}, optional
    dpi : int

    Returns
    -------
    Path
    """
    out, fmt = _out_fmt(out_path, fmt)
    return _save(fig, out, fmt, _check_dpi(dpi))


def forward_figure(res):
    """Lifetimes and QYs of X, XX versus the charge number (``qrspec model forward --png``).

    Parameters
    ----------
    res : qrspec.charging.forward.ForwardResult
        Output of :func:`qrspec.charging.forward.forward`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    matplotlib = _mpl()
    with matplotlib.rc_context(_RC):
        fig = _new_figure(WIDTH_IN, 2.8)
        ax = fig.subplots(1, 2)
        ax[0].semilogy(res.n, res.tau_x_ns, "o-", label="X$^{n-}$")
        ax[0].semilogy(res.n, res.tau_xx_ns, "s-", label="XX$^{n-}$")
        ax[0].semilogy(res.n, res.tau_a_xx_ns, "^-", label=r"$\tau_{A,XX^{n-}}$")
        ax[0].set_xlabel("n")
        ax[0].set_ylabel("Lifetime (ns)")
        ax[0].legend()
        ax[1].plot(res.n, res.qy_x, "o-", label="QY X$^{n-}$")
        ax[1].plot(res.n, res.qy_xx, "s-", label="QY XX$^{n-}$")
        ax[1].set_xlabel("n")
        ax[1].legend()
    return fig


def threshold_map_figure(tm):
    """Lasing threshold map log10 <N_las>(<n_c>, tau_A,XX0) (``qrspec model threshold-map``).

    Parameters
    ----------
    tm : qrspec.charging.thresholds.ThresholdMap

    Returns
    -------
    matplotlib.figure.Figure
    """
    matplotlib = _mpl()
    with matplotlib.rc_context(_RC):
        fig = _new_figure(4.5, 3.6)
        ax = fig.add_subplot()
        n_las = np.asarray(tm.n_las, float)
        z = np.log10(np.where(np.isfinite(n_las), n_las, np.nan))  # no threshold: no colour
        im = ax.pcolormesh(tm.mean_nc, tm.tau_a_xx_ns, z.T, shading="auto")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\langle n_c\rangle$")
        ax.set_ylabel(r"$\tau_{A,XX}$ (ns)")
        fig.colorbar(im, ax=ax, label=r"log$_{10}\langle N_{las}\rangle$")
    return fig
