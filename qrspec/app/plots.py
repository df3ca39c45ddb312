"""The particle figure: everything the analysis found for one particle, on one page.

:func:`particle_figure` draws a :class:`~qrspec.analysis.particle.ParticleAnalysis` given in
memory or read back from a results file; :func:`plot_particle` writes it;
:func:`write_figures` writes the batch figures (:mod:`qrspec.app.batch_figures`) and one
particle figure per particle (``qrspec report -o``). :func:`forward_figure` is the charge
model's figure (``qrspec model forward --png``). The batch figures live in
:mod:`qrspec.app.batch_figures`, the shared style and the crash-safe writer in
:mod:`qrspec.app.figure_style`.

matplotlib is an optional dependency (extra ``plot``) and is imported only inside these
functions, so ``import qrspec`` never imports it; importing this module without matplotlib
installed raises ImportError with the install hint (found with ``importlib.util.find_spec``,
which does not import it).

The particle figure has fixed axes positions (in inches, on a 7.2 in page): no layout engine
runs at save time (constrained layout cost ~60 % of a figure's time and could collapse on
odd particles), and every figure of a report has its panels in the same place. A panel whose
data are missing (no charged period, T2 data without nanotimes, one detector) says "no ..."
and why; an undefined (NaN) value is never drawn; an unexpected error while drawing one
panel is logged and shown in that panel, never raised, so one odd particle never stops a
report.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import textwrap
from pathlib import Path

import numpy as np

from qrspec.app.figure_style import (
    COLORS,
    DPI,
    INSTALL_HINT,
    LABEL_COLORS,
    RC,
    WIDTH_IN,
    check_dpi,
    check_format,
    format_pm,
    guard_panel,
    is_finite,
    new_figure,
    no_data,
    output_format,
    plain_log_labels,
    require_matplotlib,
    save_figure,
)
from qrspec.errors import QrspecError

__all__ = ["particle_figure", "plot_particle", "write_figures", "forward_figure", "draw_dwell",
           "PARTICLE_FIGURE_SIZE_IN", "FLID_MIN_DELAY_NS"]

logger = logging.getLogger(__name__)


def _have_matplotlib() -> bool:
    if "matplotlib" in sys.modules:
        return sys.modules["matplotlib"] is not None
    return importlib.util.find_spec("matplotlib") is not None


if not _have_matplotlib():
    raise ImportError(INSTALL_HINT)

PARTICLE_FIGURE_SIZE_IN = (WIDTH_IN, 10.4)
FAILED_FIGURE_SIZE_IN = (WIDTH_IN, 1.6)
# A mean delay after the rise below this is background over-subtraction or noise of a dim
# trace bin, not a lifetime: the FLID's delay axis starts here at the lowest (the bins
# beyond it are counted in the panel).
FLID_MIN_DELAY_NS = -2.0
FLID_MAX_ROWS = 60  # intensity rows of the FLID map (unit count bins are too fine to see)
DECAY_MAX_POINTS = 400  # display bins of a decay over the shown delay range
G2_K_MAX = 3  # g2 panels show lags within +-(G2_K_MAX + 0.5) periods
TRACE_RASTER_POINTS = 4000  # a longer trajectory line is rasterised (PDF size, speed)


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

    def text(self, col) -> str:
        v = self.row.get(col, "")
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

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
        """A short reason for a missing panel.

        The particle failed, the acquisition cannot give it (no nanotimes, one detector), or
        (charging panels) the flag that explains it.
        """
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
            ch = self.a.charging
            for flag in (ch.flags if ch is not None else ()):
                if "charging window" in flag or "not inverted" in flag:
                    return flag
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


# ------------------------------------------------------------------ fixed layout
class _Page:
    """Axes placed in inches from the top-left corner of a figure (no layout engine)."""

    def __init__(self, fig):
        self.fig = fig
        self.w, self.h = fig.get_size_inches()

    def axes(self, left_in, top_in, width_in, height_in, label, **kw):
        ax = self.fig.add_axes((left_in / self.w, 1.0 - (top_in + height_in) / self.h,
                                width_in / self.w, height_in / self.h), label=label, **kw)
        return ax

    def letter(self, ax, letter, dx_in=0.5):
        """Bold panel letter ``dx_in`` left of the axes' left edge, at its top."""
        x0, _, _, y1 = ax.get_position().extents
        self.fig.text(x0 - dx_in / self.w, y1 + 0.02 / self.h, letter, ha="left",
                      va="bottom", fontsize=10, fontweight="bold")


# ------------------------------------------------------------------ trajectory
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


def _label_spans(ax, seg, alpha: float):
    """One shaded span per level segment, coloured by its label (full axis height)."""
    from matplotlib.collections import PolyCollection
    from matplotlib.transforms import blended_transform_factory

    s0, s1, labels, _ = seg
    colors = [LABEL_COLORS.get(lab, LABEL_COLORS["unclassified"]) for lab in labels]
    blend = blended_transform_factory(ax.transData, ax.transAxes)
    coll = PolyCollection([[(a, 0), (b, 0), (b, 1), (a, 1)] for a, b in zip(s0, s1, strict=True)],
                          facecolors=colors, edgecolors="none", alpha=alpha, transform=blend,
                          zorder=0.5)
    coll.set_gid("label_spans")
    ax.add_collection(coll, autolim=False)
    return colors


def _bin_text(bw: float) -> str:
    return f"{bw * 1e3:.3g} ms" if bw < 1 else f"{bw:.3g} s"


def _draw_trace(ax, p: _Particle, ax_hist):
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    tr = _trace_axis(p)
    if tr is None:
        no_data(ax, "no intensity trajectory", what="trajectory")
        no_data(ax_hist)
        return
    t, counts, bw, start = tr
    line, = ax.plot(t, counts, color=COLORS["trace"], lw=0.45, zorder=2)
    line.set_gid("trace")
    if counts.size > TRACE_RASTER_POINTS:
        line.set_rasterized(True)
    ax.set_xlim(start, float(p.file_s(start + counts.size * bw)))
    ymax = counts.max() * 1.12 if counts.max() > 0 else 1.0
    ax.set_ylim(0, ymax)
    seg = _segments(p)
    handles = []
    if seg is not None:
        s0, s1, labels, n_ph = seg
        colors = _label_spans(ax, seg, 0.13)
        if n_ph is not None and len(n_ph) == len(s0):
            dur = np.maximum(s1 - s0, 1e-12)
            level = np.asarray(n_ph, float) / dur * bw
            lc = LineCollection([[(a, y), (b, y)] for a, b, y in zip(s0, s1, level, strict=True)],
                                colors=colors, linewidths=1.6, zorder=3)
            lc.set_gid("levels")
            ax.add_collection(lc, autolim=False)
        for lab in LABEL_COLORS:
            if lab in labels:
                handles.append(Patch(facecolor=LABEL_COLORS[lab], alpha=0.5, label=lab))
    cps = p.a.levels.change_points_s if p.a.levels is not None else None
    if cps is not None and np.size(cps):
        blend = blended_transform_factory(ax.transData, ax.transAxes)
        cps = p.file_s(cps)
        many = np.size(cps) > 60  # a dense comb: small ticks, no intervals
        ci = p.a.levels.change_points_ci_s
        if not many and ci is not None and np.shape(ci) == (np.size(cps), 2):
            ci = p.file_s(ci)
            ax.hlines(np.full(np.size(cps), 0.985), ci[:, 0], ci[:, 1], color="black", lw=0.8,
                      transform=blend, zorder=4)
        marker, ms = ("|", 3.0) if many else ("v", 3.0)
        ax.plot(cps, np.full(np.size(cps), 0.985), linestyle="none", marker=marker, ms=ms,
                mew=0.5 if many else 1.0, color="black", transform=blend, zorder=4,
                clip_on=False, gid="change_points")
        handles.append(Line2D([], [], linestyle="none", marker=marker, ms=3, color="black",
                              label=f"change point ({np.size(cps)})"))
    handles += _draw_hygiene(ax, p, float(ax.get_xlim()[1]))
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=6,
                  borderaxespad=0.1, handlelength=1.2, columnspacing=1.0)
    ax.set_ylabel(f"Intensity (counts / {_bin_text(bw)})")
    # sideways intensity histogram, same y axis
    step = max(1, int(math.ceil((counts.max() + 1) / 60)))  # whole counts per bar: no aliasing
    edges = np.arange(-0.5, counts.max() + step + 0.5, step)
    hist, edges = np.histogram(counts, bins=edges)
    ax_hist.barh(edges[:-1], hist, height=np.diff(edges), align="edge",
                 color=COLORS["trace"], alpha=0.8, lw=0)
    ax_hist.set_ylim(0, ymax)
    ax_hist.set_xlabel("Trace bins")
    ax_hist.tick_params(labelleft=False)


def _draw_hygiene(ax, p: _Particle, t_end: float) -> list:
    """Burst windows and the bleach time on the trajectory; returns legend handles.

    Bursts are shaded red, at least 0.2 % of the axis wide so a 1 ms burst shows; the bleach time
    is a line, with the trimmed part greyed.
    """
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


# ------------------------------------------------------------------ n_c(t), tau_A(t)
def _charging_rows(p: _Particle):
    """The charging windows as columns (file clock), with the stored usable flag."""
    ch = p.a.charging
    if ch is None or ch.windows.n_c.size == 0:
        return None
    w = ch.windows
    cols = {c: np.asarray(getattr(w, c), float) for c in ("t_start_s", "t_stop_s", "n_c",
                                                        "n_c_err", "tau_a_xx_ns",
                                                        "tau_a_xx_err_ns")}
    cols["t_start_s"], cols["t_stop_s"] = p.file_s(cols["t_start_s"]), p.file_s(cols["t_stop_s"])
    cols["usable"] = np.asarray(w.usable, bool)
    return cols


def _draw_charging(ax, p: _Particle, key: str, seg):
    """n_c(t) or tau_A,XX(t) per charging window (paper Figs. 1f, 2g).

    Each usable window a marker at its centre and its error as a shaded box over the window's time
    span (the markers joined by a thin line); windows the inversion could only bound or not
    identify as open markers (not in the particle's means, not shaded); tau_A on a log axis (1-2 ns
    next to tens of ns) with the neutral tau_A,XX0 and its error band.
    """
    from matplotlib.collections import PolyCollection

    is_nc = key == "n_c"
    col, err_col, color, marker = (("n_c", "n_c_err", COLORS["n_c"], "*") if is_nc else
                                   ("tau_a_xx_ns", "tau_a_xx_err_ns", COLORS["tau_a"], "o"))
    ax.set_ylabel(r"$n_c$" if is_nc else r"$\tau_{\mathrm{A,XX}}$ (ns)")
    if seg is not None:
        _label_spans(ax, seg, 0.06)
    rows = _charging_rows(p)
    if rows is None or not np.isfinite(rows[col]).any():
        no_data(ax, p.why_missing("charging windows", charging=True), keep_axes=True,
                what="charging windows")
        ax.set_yticks([])
        return
    t0, t1 = rows["t_start_s"], rows["t_stop_s"]
    x = 0.5 * (t0 + t1)
    y = rows[col]
    e = rows[err_col]
    finite = np.isfinite(y)
    use = rows["usable"] & finite
    flagged = ~rows["usable"] & finite
    tiny = 1e-3
    if use.any():
        o = np.flatnonzero(use)[np.argsort(x[use])]
        band = [i for i in o if np.isfinite(e[i]) and e[i] > 0]
        if band:
            lo = np.maximum(y[band] - e[band], tiny if not is_nc else -np.inf)
            hi = y[band] + e[band]
            boxes = PolyCollection([[(t0[i], a), (t1[i], a), (t1[i], b), (t0[i], b)]
                                    for i, a, b in zip(band, lo, hi, strict=True)],
                                   facecolors=color, edgecolors="none", alpha=0.25, zorder=2)
            boxes.set_gid(f"{key}_error")
            ax.add_collection(boxes)
        ax.plot(x[o], y[o], color=color, lw=0.7, alpha=0.6, zorder=3)
        ax.plot(x[o], y[o], linestyle="none", marker=marker, ms=8 if is_nc else 4, color=color,
                mec="white" if is_nc else color, mew=0.4, zorder=4, gid=f"{key}_usable",
                label=f"usable windows ({o.size})")
    if flagged.any():
        ax.plot(x[flagged], y[flagged], linestyle="none", marker=marker, ms=7 if is_nc else 4,
                mfc="white", mec=color, mew=0.8, zorder=4, gid=f"{key}_flagged",
                label=f"bound / not identifiable ({int(flagged.sum())})")
    lo = np.nanmin(np.where(np.isfinite(e), y - e, y)[finite])
    hi = np.nanmax(np.where(np.isfinite(e), y + e, y)[finite])
    ref, ref_err = p.value("tau_a_xx_neutral_ns"), p.value("tau_a_xx_neutral_err_ns")
    if not is_nc and is_finite(ref) and ref > 0:
        # its 68 % interval as stored (an open upper end reaches the top of the axis)
        r_lo, r_hi = p.value("tau_a_xx_neutral_lo_ns"), p.value("tau_a_xx_neutral_hi_ns")
        if not (r_lo == r_lo and r_hi == r_hi) and is_finite(ref_err):  # NaN: no interval
            r_lo, r_hi = ref - ref_err, ref + ref_err
        if r_lo == r_lo and r_hi == r_hi and r_hi > r_lo:
            ax.axhspan(max(r_lo, tiny), min(r_hi, 1e6), color=LABEL_COLORS["neutral"],
                       alpha=0.10, lw=0, zorder=1, gid="tau_a_neutral_interval")
        ax.axhline(ref, color=LABEL_COLORS["neutral"], ls="--", lw=0.8, zorder=1.5,
                   label=r"neutral $\tau^0_{\mathrm{A,XX}}$ = " + format_pm(ref, ref_err, "ns"))
        lo, hi = min(lo, ref), max(hi, ref)
    if is_nc:
        ax.set_ylim(min(0.0, lo), max(hi, 1.0) * 1.45)
    else:
        lo = max(lo, np.nanmin(y[finite]) / 3, tiny)
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.4, hi * (hi / lo) ** 0.5 * 1.4)
        plain_log_labels(ax.yaxis)
    ax.legend(loc="upper left", ncol=3, handlelength=1.0, borderaxespad=0.2,
              columnspacing=1.0)


# ------------------------------------------------------------------ decays
def _display_bins(c, model, resid, r: int):
    """Sum ``r`` neighbouring bins of data and model; Pearson residuals on the summed bins."""
    n = (c.size // r) * r
    cs = c[:n].reshape(-1, r).sum(axis=1)
    if model is None:
        return cs, None, None
    m = np.asarray(model[:n], float)
    ok = np.isfinite(np.asarray(resid[:n], float)) & np.isfinite(m)
    ms = np.where(ok, m, 0.0).reshape(-1, r).sum(axis=1)
    full = ok.reshape(-1, r).all(axis=1) & (ms > 0)
    rs = np.where(full, (np.where(ok, c[:n], 0.0).reshape(-1, r).sum(axis=1) - ms)
                  / np.sqrt(np.where(full, ms, 1.0)), np.nan)
    return cs, np.where(full, ms, np.nan), rs


def _draw_decays(ax, ax_res, p: _Particle):
    al = p.a.alignment
    t0 = al.t0_ns if al is not None and is_finite(al.t0_ns) else 0.0
    drawn, taus = [], []
    total, time_ns = (al.counts, al.time_ns) if al is not None else (None, None)
    span = (float(time_ns[-1]) - t0) if time_ns is not None and np.size(time_ns) else 50.0
    states = []
    for state in ("neutral", "charged"):
        st = getattr(p.a.states, state, None) if p.a.states is not None else None
        if st is not None and st.decay_counts is not None and np.sum(st.decay_counts) > 0:
            states.append((state, st))
            if is_finite(st.tau_x_ns):
                taus.append(st.tau_x_ns)
    if total is not None and np.size(total) and np.any(np.asarray(total) > 0):
        # the recorded TCSPC range may end before the period (no photon can be later)
        last = int(np.flatnonzero(np.asarray(total) > 0)[-1])
        span = min(span, float(time_ns[last]) + float(al.bin_ns) - t0)
    x_hi = min(span, max(20.0, 6.0 * max(taus))) if taus else span
    x_lo = -2.0
    for state, st in states:
        bin_ns = st.decay_bin_ns
        n_whole = int(np.floor(al.period_ns / bin_ns + 1e-9))  # a last, shorter bin: not drawn
        t = np.asarray(st.decay_time_ns[:n_whole], float)
        c = np.asarray(st.decay_counts[: t.size], float)
        r = max(1, int(math.ceil((x_hi - x_lo) / bin_ns / DECAY_MAX_POINTS)))
        model, resid = st.fit_model_counts, st.fit_residuals
        fit_ok = is_finite(st.tau_x_ns) and model is not None and resid is not None
        if fit_ok:
            n = min(np.size(model), np.size(resid), t.size)
            cs, ms, rs = _display_bins(c[:n], np.asarray(model[:n], float),
                                       np.asarray(resid[:n], float), r)
        else:
            cs, ms, rs = _display_bins(c, None, None, r)
        ts = t[: cs.size * r: r] - t0
        norm = cs.max()
        color = LABEL_COLORS[state]
        label = f"{state}  {format_pm(st.tau_x_ns, st.tau_x_err_ns, 'ns')}"
        ax.plot(ts, np.where(cs > 0, cs / norm, np.nan), color=color, lw=0.6, alpha=0.75,
                drawstyle="steps-post", label=label, gid=f"decay_{state}")
        drawn.append(state)
        if ms is not None:  # NaN outside the fit range: gaps, not lines across them
            tm = ts + r * bin_ns / 2
            m = np.flatnonzero(np.isfinite(ms))
            part = slice(m[0], m[-1] + 1) if m.size else slice(0, 0)
            ax.plot(tm[part], ms[part] / norm, color=color, lw=1.0, zorder=4,
                    ls=(0, (4, 1.5)) if state == "charged" else "-", gid=f"fit_{state}")
            ax_res.plot(tm[part], np.clip(rs[part], -4.9, 4.9), color=color, lw=0.5,
                        alpha=0.8, gid=f"residuals_{state}")
    if total is not None and time_ns is not None and np.sum(total) > 0:
        tt = np.asarray(time_ns, float)
        c = np.asarray(total, float)
        r = max(1, int(math.ceil((x_hi - x_lo) / float(al.bin_ns) / DECAY_MAX_POINTS)))
        cs, _, _ = _display_bins(c, None, None, r)
        ax.plot(tt[: cs.size * r: r] - t0, np.where(cs > 0, cs / cs.max(), np.nan),
                color=COLORS["total"], lw=0.5, alpha=0.6, drawstyle="steps-post",
                label="all photons", zorder=1, gid="decay_total")
        drawn.append("total")
    if not drawn:
        no_data(ax, p.why_missing("decays"), what="decays")
        ax_res.set_visible(False)
        return
    ax.set_yscale("log")
    ax.set_ylabel("Norm. counts")
    ax.set_xlim(x_lo, x_hi)
    lo = max(ax.get_ylim()[0], 1e-4)
    ax.set_ylim(lo, 30.0)  # headroom for the legend, no ticks there
    ax.set_yticks([10.0 ** k for k in range(-8, 1) if 10.0 ** k >= lo])
    ax.set_yticks([], minor=True)
    ax.legend(loc="upper right", handlelength=1.0, borderaxespad=0.2,
              title=r"$\tau_\mathrm{X}$ (tail fit)", title_fontsize=6.5, alignment="right")
    ax.tick_params(labelbottom=False)
    ax_res.axhline(0, color="black", lw=0.6)
    ax_res.set_xlim(x_lo, x_hi)
    ax_res.set_ylim(-5, 5)
    ax_res.set_yticks([-4, 0, 4])
    ax_res.set_ylabel("Resid. (σ)")
    ax_res.set_xlabel(r"Delay $t - t_0$ (ns)")


# ------------------------------------------------------------------ g2
def _zero_peak_note(p: _Particle) -> str:
    """Which peak is lag zero and why (one short line)."""
    al = p.a.alignment
    if al is None or al.g2_mode != "pulsed":
        return ""
    src = al.delay_source
    if src == "data":
        return f"lag 0: peak k = {al.zero_peak_index} (z = {al.zero_peak_z:.1f})"
    if src == "user":
        return f"lag 0: user delay {al.delay_ns:.4g} ns"
    return "lag 0 undecided: sub-period delay"


def _g2_value_text(h) -> str:
    """g2(0) with its error.

    With an empty centre peak its 95 % upper bound; "n/a" for an undefined value.
    """
    g, e = h.g2_zero, h.g2_zero_err
    hi = h.g2_zero_ci95[1] if h.g2_zero_ci95 is not None and len(h.g2_zero_ci95) == 2 \
        else math.nan
    if is_finite(g) and not is_finite(e) and is_finite(hi):
        return rf"$g^{{(2)}}(0)$ < {hi:.2f} (95 %, no centre pairs)"
    return rf"$g^{{(2)}}(0)$ = {format_pm(g, e, digits=2)}"


def _draw_g2(ax, p: _Particle, key: str):
    raw = key == "g2"
    g2 = p.a.g2
    h = None if g2 is None else (g2.raw if raw else g2.gated)
    color = COLORS["g2_raw"] if raw else COLORS["g2_gated"]
    name = "raw" if raw else "gated"
    if g2 is not None and g2.g2_mode == "cw":
        name = "CW"
    if h is None or np.size(h.lag_ns) < 2:
        no_data(ax, p.why_missing("g2" if raw else "gated g2"),
                what="g2" if raw else "gated g2")
        return
    lag = np.asarray(h.lag_ns, float)
    counts = np.asarray(h.counts, float)
    bin_ns = float(lag[1] - lag[0])
    al = p.a.alignment
    period = al.g2_period_ns if al is not None and is_finite(al.g2_period_ns) else (
        al.period_ns if al is not None and g2.g2_mode == "pulsed" else None)
    window = h.window_ns
    notes = []
    if g2.g2_mode == "cw":
        ab = g2.antibunching
        tr = ab.rise_time_ns if ab is not None and is_finite(ab.rise_time_ns) else 10.0
        lim = min(float(np.abs(lag).max()), max(10.0, 8.0 * tr))
        if ab is not None and ab.success and ab.model_counts is not None:
            ax.plot(ab.lag_ns, ab.model_counts, color=COLORS["g2_gated"], lw=1.0, zorder=4,
                    label="dip fit")
        if ab is not None:
            notes.append(r"$\tau_r$ = " + format_pm(ab.rise_time_ns, ab.rise_time_err_ns,
                                                   "ns"))
    elif period is not None and is_finite(period):
        lim = (G2_K_MAX + 0.5) * period
        if is_finite(window):
            ax.axvspan(-window / 2, window / 2, lw=0, color=color, alpha=0.15, zorder=0)
            if window < 0.95 * period:  # side-peak windows only when they are not the period
                for k in range(1, G2_K_MAX + 1):
                    for c in (-k * period, k * period):
                        ax.axvspan(c - window / 2, c + window / 2, lw=0, color="0.5",
                                   alpha=0.08, zorder=0)
    else:
        lim = float(np.abs(lag).max())
    shown = np.abs(lag) <= lim + bin_ns
    ax.plot(lag[shown], counts[shown], color=color, lw=0.6, drawstyle="steps-mid",
            gid=f"{key}_counts")
    ax.set_xlim(-lim, lim)
    value = _g2_value_text(h)
    c = g2.afterpulse
    if c is not None and c.applied:  # the particle's value: afterpulse pairs removed
        v, e = (c.g2_zero, c.g2_zero_err) if raw else (c.g2_zero_gated, c.g2_zero_gated_err)
        if is_finite(v):
            value = rf"$g^{{(2)}}(0)$ = {format_pm(v, e, digits=3)}"
            notes.append(f"afterpulse-corrected; meas. {format_pm(h.g2_zero, digits=3)}")
    if raw and _zero_peak_note(p):
        notes.append(_zero_peak_note(p))
    if not raw and is_finite(g2.gate_after_rise_ns):
        notes.insert(0, f"gate $t - t_0 \\geq$ {g2.gate_after_rise_ns:g} ns")
    ax.set_title(f"{name} {value}", loc="left", fontsize=6.5, pad=2)
    if notes:
        ax.text(0.02, 0.96, "\n".join(notes), transform=ax.transAxes, ha="left", va="top",
                fontsize=5.8, color="0.25", linespacing=1.15)
    top = counts[shown].max() if shown.any() else 0.0
    if top == 0:
        ax.text(0.5, 0.45, "no photon pairs at these lags", transform=ax.transAxes,
                ha="center", va="center", fontsize=6.5, color="0.35")
    ax.set_ylim(0, max(top * (1.25 + 0.22 * len(notes)), 1.0))  # room for the notes
    ax.set_ylabel(f"Coinc. / {bin_ns:g} ns")


# ------------------------------------------------------------------ FLID
def _draw_flid(ax, p: _Particle, cax):
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator

    fl = p.a.flid
    if fl is None or np.sum(fl.histogram) <= 0:
        no_data(ax, p.why_missing("FLID"), what="FLID")
        cax.set_visible(False)
        return
    h = np.asarray(fl.histogram, float)
    ce, de = np.asarray(fl.count_edges, float), np.asarray(fl.delay_edges_ns, float)
    n_total = h.sum()
    # the delay axis: every column with trace bins whose mean delay after the rise is
    # physical, [FLID_MIN_DELAY_NS, period - t0] (the clusters are never cropped; dim bins of
    # an over-subtracted background beyond are counted, not drawn)
    al = p.a.alignment
    phys_hi = (al.period_ns - al.t0_ns) if al is not None and is_finite(
        al.period_ns, al.t0_ns) else de[-1]
    centres = 0.5 * (de[:-1] + de[1:])
    cols = np.flatnonzero(h.sum(axis=0) * ((centres >= FLID_MIN_DELAY_NS)
                                           & (centres <= phys_hi)))
    if cols.size == 0:
        no_data(ax, "every trace bin has a mean delay outside "
                f"[{FLID_MIN_DELAY_NS:g}, {phys_hi:.4g}] ns", what="FLID")
        cax.set_visible(False)
        return
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    h_cols = h[:, c0:c1]
    rows = np.flatnonzero(h_cols.sum(axis=1))
    r0, r1 = rows[0], rows[-1] + 1
    shown = h_cols[r0:r1]
    n_hidden = int(round(n_total - shown.sum()))
    hh, cce = shown, ce[r0:r1 + 1]
    n_rows = hh.shape[0]
    k = max(1, -(-n_rows // FLID_MAX_ROWS))
    if k > 1:  # merge intensity rows; exact edges (the last group may be short)
        pad = np.zeros((-(-n_rows // k) * k, hh.shape[1]))
        pad[:n_rows] = hh
        hh = pad.reshape(-1, k, hh.shape[1]).sum(axis=1)
        cce = np.append(cce[0:n_rows:k], cce[n_rows])
    dde = de[c0:c1 + 1]
    masked = np.ma.masked_less_equal(hh, 0)
    mesh = ax.pcolormesh(dde, cce, masked, norm=LogNorm(vmin=1, vmax=max(hh.max(), 2)),
                         cmap="viridis", rasterized=True)
    mesh.set_gid("flid")
    cb = ax.figure.colorbar(mesh, cax=cax)
    cb.set_label("Trace bins", labelpad=1)
    cb.locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
    cb.formatter = FuncFormatter(lambda v, _: f"{v:g}")
    cb.update_ticks()
    cb.ax.tick_params(labelsize=6, which="both", right=True)
    cb.ax.minorticks_off()
    x_lim, y_lim = [dde[0], dde[-1]], [cce[0], cce[-1]]
    # levels found by the change-point analysis, at (lifetime, intensity per trace bin)
    lv = p.a.levels
    bw = fl.bin_width_s
    if lv is not None and is_finite(bw):
        for ti, ii, la in zip(lv.tau_ns, lv.intensity_cps, lv.label, strict=False):
            la = str(la)
            if is_finite(ti, ii) and FLID_MIN_DELAY_NS <= ti <= phys_hi:
                ax.plot(ti, ii * bw, marker="o", ms=5, mec="white", mew=0.9, linestyle="none",
                        mfc=LABEL_COLORS.get(la, LABEL_COLORS["unclassified"]), zorder=5,
                        gid="flid_level")
                x_lim = [min(x_lim[0], ti - 0.5), max(x_lim[1], ti + 0.5)]
                y_lim = [min(y_lim[0], ii * bw * 0.95), max(y_lim[1], ii * bw * 1.05)]
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    notes = []
    tr = p.a.trajectory
    n_trace = int(np.size(tr.counts) // max(1, len(tr.detectors))) if tr is not None and \
        np.ndim(tr.counts) == 2 else (int(np.size(tr.counts)) if tr is not None else 0)
    if tr is not None and math.isclose(float(tr.bin_width_s), float(bw)) and \
            n_total < 0.98 * n_trace:
        notes.append(f"{n_total:.0f} of {n_trace} trace bins have a delay")
    if n_hidden:
        notes.append(f"{n_hidden} dim bins beyond the axis")
    if notes:  # above the map: its corners may hold data
        ax.set_title("\n".join(notes), loc="right", fontsize=5.2, color="0.3", pad=2)
    ax.set_xlabel(r"Mean delay $t - t_0$ (ns)")
    ax.set_ylabel(f"Intensity (counts / {_bin_text(bw) if is_finite(bw) else 'bin'})")


# ------------------------------------------------------------------ dwell times
DWELL_STATE_COLORS = {"on": "#0072B2", "off": "#7F7F7F"}
DWELL_MODEL_STYLES = {"power_law": "-", "truncated": "-.", "exponential": ":", "cutoff": "--"}
DWELL_MODEL_NAMES = {"power_law": "power law", "truncated": "truncated power law",
                     "exponential": "exponential", "cutoff": "power law × exp. cut-off"}


def draw_dwell(ax, curve) -> None:
    """Draw one :class:`~qrspec.levels.dwell.DwellCurve` on a matplotlib axis.

    The Kaplan-Meier ``P(T >= t)`` of the stays, the fitted power law (solid) and the preferred law
    when it is another one, from ``t_min`` on; the region below the change-point time resolution
    shaded (:mod:`qrspec.app.dwell_plots` has the two-panel figure).
    """
    color = DWELL_STATE_COLORS.get(curve.state, "0.3")
    if curve.t_s.size == 0:
        no_data(ax, f"no complete {curve.state} stays", what=f"{curve.state} dwell times")
        return
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.step(curve.t_s, curve.survival, where="post", color=color, lw=1.0,
            marker="." if curve.t_s.size < 5 else None,
            label=f"{curve.state} stays ({curve.t_s.size})", gid=f"dwell_{curve.state}")
    if np.isfinite(curve.resolution_s):
        ax.axvspan(min(curve.t_s.min(), curve.resolution_s) / 2, curve.resolution_s,
                   color="0.9", lw=0, zorder=0, label="below resolution")
    for k, model in enumerate(curve.models):
        if model == "power_law" or model == curve.best_model:
            lab = DWELL_MODEL_NAMES[model]
            if model == "power_law" and math.isfinite(curve.alpha):
                lab += f", α = {format_pm(curve.alpha, curve.alpha_err)}"
            ax.plot(curve.model_t_s, curve.model_survival[k], DWELL_MODEL_STYLES[model],
                    color="black", lw=0.9, label=lab)
    if math.isfinite(curve.t_min_s):
        ax.axvline(curve.t_min_s, color="0.5", lw=0.6, ls=":")
        # above the frame: inside it the label sat on the survival curve, which starts at 1
        ax.text(curve.t_min_s, 1.01, "t_min", color="0.4", fontsize=6, va="bottom",
                ha="center", transform=ax.get_xaxis_transform(), clip_on=False)
    else:
        ax.text(0.97, 0.95, "too few stays for a law", transform=ax.transAxes, ha="right",
                va="top", fontsize=6.5, color="0.4")
    ax.set_xlabel("Duration (s)")
    ax.set_ylabel(f"P(T ≥ t), {curve.state}")
    positive = curve.survival[curve.survival > 0]
    if positive.size:
        ax.set_ylim(positive.min() / 2, 1.5)
    lo, hi = ax.get_ylim()
    plain_log_labels(ax.yaxis, (1.0,) if hi / lo > 300 else (1.0, 2.0, 5.0))
    from matplotlib.ticker import LogLocator

    ax.xaxis.set_major_locator(LogLocator(base=10, numticks=8))
    ax.xaxis.set_minor_formatter(_null_formatter())
    if curve.t_s.max() / curve.t_s.min() > 1e4:  # minor ticks over many decades: noise
        ax.xaxis.set_minor_locator(_null_locator())
    ax.legend(loc="lower left")


def _null_formatter():
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _null_locator():
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _draw_dwell_state(ax, p: _Particle, state: str):
    """The stored dwell-time curve of the on or off stays (:func:`draw_dwell`), log-log."""
    bl = p.a.blinking
    if bl is None:
        no_data(ax, p.why_missing("dwell times"), what=f"{state} dwell times")
        return
    draw_dwell(ax, (bl.on if state == "on" else bl.off).curve)


# ------------------------------------------------------------------ numbers
def _verdict(p: _Particle) -> tuple[str, str]:
    """(row name, value) of the single-emitter decision.

    The stored three-way verdict when the results have one, else whether single emission was shown.
    """
    v = p.text("single_emitter_verdict")
    if v:
        return "emitter", v.replace("_", " ")
    if p.a.g2 is None:
        return "single emitter", "n/a"
    return "single emitter", "yes" if bool(p.row.get("single_emitter")) else "not shown"


def _info_text(ax, p: _Particle):
    ax.axis("off")
    rate = p.value("rate_cps")
    lines = [
        ("status", p.status),
        ("mean rate", f"{rate / 1e3:.1f} kcps" if is_finite(rate) else "n/a"),
        (r"$f_\mathrm{neutral}$", f"{p.value('frac_time_neutral'):.2f}"
         if is_finite(p.value("frac_time_neutral")) else "n/a"),
        (r"$\tau_\mathrm{X}^0$", format_pm(p.value("tau_x_neutral_ns"),
                                           p.value("tau_x_neutral_err_ns"), "ns")),
        (r"$\tau_\mathrm{XX}^0$", format_pm(p.value("tau_xx_neutral_ns"),
                                            p.value("tau_xx_neutral_err_ns"), "ns")),
        (r"$\tau_\mathrm{A,XX}^0$", format_pm(p.value("tau_a_xx_neutral_ns"),
                                              p.value("tau_a_xx_neutral_err_ns"), "ns")),
        (r"$\langle n_c\rangle$", format_pm(p.value("n_c_mean"), p.value("n_c_err"))),
        (r"$\tau_\mathrm{A,XX}^c$", format_pm(p.value("tau_a_xx_charged_ns"),
                                              p.value("tau_a_xx_charged_err_ns"), "ns")),
        (r"$g^{(2)}(0)$ gated", format_pm(p.value("g2_zero_gated"),
                                          p.value("g2_zero_gated_err"), digits=2)),
        _verdict(p),
        ("levels", f"{int(p.value('n_levels'))}" if is_finite(p.value("n_levels")) and
         p.value("n_levels") >= 0 else "n/a"),
        (r"$\alpha_\mathrm{on}$", format_pm(p.value("alpha_on"), p.value("alpha_on_err"))),
        (r"$\alpha_\mathrm{off}$", format_pm(p.value("alpha_off"), p.value("alpha_off_err"))),
    ]
    y = 1.0
    for k, v in lines:
        ax.text(0.0, y, k, transform=ax.transAxes, fontsize=6.5, va="top")
        ax.text(1.0, y, v, transform=ax.transAxes, fontsize=6.5, va="top", ha="right",
                color="#B00000" if v == "failed" else "black")
        y -= 1.0 / len(lines)


# ------------------------------------------------------------------ the figure
def _title(p: _Particle) -> str:
    title = f"{p.id}   group: {p.a.group or '(none)'}"
    n_ph, dur = p.value("n_photons"), p.value("duration_s")
    if is_finite(n_ph, dur) and n_ph >= 0:
        title += f"   {int(n_ph):,} photons in {dur:.1f} s"
    if p.failed:
        title += "   ANALYSIS FAILED"
    return title


def _failed_figure(p: _Particle):
    """A failed particle: its title and the error, nothing else to draw."""
    fig = new_figure(*FAILED_FIGURE_SIZE_IN, layout=None)
    page = _Page(fig)
    fig.text(0.08 / page.w, 1 - 0.08 / page.h, _title(p), ha="left", va="top", fontsize=9,
             fontweight="bold")
    ax = page.axes(0.1, 0.45, page.w - 0.2, page.h - 0.55, "error")
    ax.axis("off")
    ax.text(0.0, 1.0, textwrap.fill("error: " + (p.error or "(no message)"), 140),
            transform=ax.transAxes, va="top", ha="left", fontsize=7, color="#B00000")
    return fig


def particle_figure(analysis_or_path, particle_id: str | None = None):
    """Multi-panel figure of one particle, as a :class:`matplotlib.figure.Figure`.

    Panels: (a) intensity trajectory with the levels coloured by label (neutral, charged,
    trap, off, unclassified) and the change points with their confidence regions, the
    removed photon bursts (red) and a bleach (dashed line, the part not analysed greyed), plus
    the intensity histogram; (b) n_c(t) and (c) tau_A,XX(t) per charging window on the
    trajectory's time axis (paper Figs. 1f / 2g): usable windows as markers with their error
    as shaded boxes over the window's span, windows the inversion could only bound or not
    identify as open markers, tau_A on a log axis with the neutral tau_A,XX0 and its error;
    numbers; (d) decays per state (log scale, normalised to their maximum) with the stored
    exciton tail fit, its lifetimes in the legend and Pearson residuals (display bins of at
    most :data:`DECAY_MAX_POINTS`); (e) g2 raw and (f) gated, lags relative to the chosen
    zero, the centre window shaded, g2(0) (afterpulse-corrected when it was) and which peak
    is lag zero; (g) FLID with the levels marked, on the physical delay axis (never below
    :data:`FLID_MIN_DELAY_NS`, the trace bins beyond it counted); (h) on and (i) off
    dwell-time distributions (log-log) with the fitted laws. Times are on the file's clock
    (the stages' analysis clock with the burst windows put back). Axes carry labels
    ("trajectory", "histogram", "n_c", "tau_a", "info", "decays", "residuals", "g2",
    "g2_gated", "flid", "flid_colorbar", "dwell_on", "dwell_off"). A failed particle gives a
    small figure with its error (axis "error").

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
        Drawn with the Agg canvas and fixed axes positions; save it with
        :func:`plot_particle` or :func:`qrspec.app.figure_style.save_figure`.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, or ``particle_id`` is not in it.
    """
    matplotlib = require_matplotlib()
    p = _Particle(_analysis(analysis_or_path, particle_id))
    with matplotlib.rc_context(RC):
        if p.failed:
            return _failed_figure(p)
        fig = new_figure(*PARTICLE_FIGURE_SIZE_IN, layout=None)
        pg = _Page(fig)
        L = 0.58  # left edge of the first column (room for the y labels)
        ax_tr = pg.axes(L, 0.55, 5.12, 1.75, "trajectory")
        ax_h = pg.axes(5.80, 0.55, 1.25, 1.75, "histogram")
        ax_nc = pg.axes(L, 2.40, 5.12, 0.95, "n_c")
        ax_ta = pg.axes(L, 3.45, 5.12, 0.95, "tau_a")
        ax_info = pg.axes(5.80, 2.74, 1.30, 1.66, "info")
        ax_dec = pg.axes(L, 5.12, 1.66, 1.55, "decays")
        ax_res = pg.axes(L, 6.72, 1.66, 0.53, "residuals")
        ax_g2 = pg.axes(2.84, 5.20, 1.74, 0.88, "g2")
        ax_g2g = pg.axes(2.84, 6.37, 1.74, 0.88, "g2_gated")
        ax_fl = pg.axes(5.22, 5.12, 1.28, 2.13, "flid")
        ax_cb = pg.axes(6.56, 5.12, 0.07, 2.13, "flid_colorbar")
        ax_on = pg.axes(L, 7.98, 2.90, 1.42, "dwell_on")
        ax_off = pg.axes(4.10, 7.98, 2.95, 1.42, "dwell_off")

        # no shared axes: a "no data" panel clears its own ticks only; the time axes are
        # made equal by hand
        seg = _segments(p)
        guard_panel(ax_tr, _draw_trace, p, ax_h)
        guard_panel(ax_nc, _draw_charging, p, "n_c", seg)
        guard_panel(ax_ta, _draw_charging, p, "tau_a", seg)
        if ax_tr.lines:
            for a in (ax_nc, ax_ta):
                a.set_xlim(ax_tr.get_xlim())
        for a in (ax_tr, ax_nc):
            a.tick_params(labelbottom=False)
        ax_ta.set_xlabel("Time (s)")
        guard_panel(ax_info, _info_text, p)
        guard_panel(ax_dec, _draw_decays, ax_res, p)
        guard_panel(ax_g2, _draw_g2, p, "g2")
        guard_panel(ax_g2g, _draw_g2, p, "g2_gated")
        if ax_g2g.lines:
            ax_g2g.set_xlim(ax_g2.get_xlim())
            ax_g2.tick_params(labelbottom=False)
            ax_g2g.set_xlabel(r"Lag $\tau$ (ns)")
        elif ax_g2.lines:  # no gated panel: the raw one carries the lag axis
            ax_g2.set_xlabel(r"Lag $\tau$ (ns)")
        guard_panel(ax_fl, _draw_flid, p, ax_cb)
        guard_panel(ax_on, _draw_dwell_state, p, "on")
        guard_panel(ax_off, _draw_dwell_state, p, "off")
        for ax, letter, dx in ((ax_tr, "a", 0.56), (ax_nc, "b", 0.56), (ax_ta, "c", 0.56),
                               (ax_dec, "d", 0.56), (ax_g2, "e", 0.52), (ax_fl, "g", 0.52),
                               (ax_on, "h", 0.56), (ax_off, "i", 0.52)):
            pg.letter(ax, letter, dx)
        pg.letter(ax_g2g, "f", 0.52)
        fig.text(0.08 / pg.w, 1 - 0.06 / pg.h, _title(p), ha="left", va="top", fontsize=9,
                 fontweight="bold")
        if p.error:
            fig.text(0.08 / pg.w, 1 - 9.88 / pg.h, textwrap.fill(textwrap.shorten(
                "flags: " + p.error, 560, placeholder=" ..."), 165), ha="left", va="top",
                fontsize=5.8, color="0.35")
        return fig


def plot_particle(analysis_or_path, particle_id: str | None, out_path, *,
                  fmt: str | None = None, dpi: int = DPI) -> Path:
    """Write the figure of one particle (:func:`particle_figure`) crash-safely.

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
        Unknown format or dpi.
    OutputError
        The file cannot be written (nothing is left behind).
    """
    require_matplotlib()
    out, fmt = output_format(out_path, fmt)
    check_dpi(dpi)
    return save_figure(particle_figure(analysis_or_path, particle_id), out, fmt=fmt, dpi=dpi)


# ------------------------------------------------------------------ many figures
def _write_batch_task(tables, out_dir, fmt, dpi) -> list[Path]:
    from qrspec.app.batch_figures import write_batch_figures

    return list(write_batch_figures(tables, out_dir, fmt=fmt, dpi=dpi).values())


def write_figures(results_path, out_dir, *, particles=None, fmt: str = "png",
                  dpi: int = DPI, particle_filter: str | None = None, exclude=None,
                  batch: bool = True, jobs: int = 1, progress=None) -> list[Path]:
    """Write the batch figures and one figure per particle into ``out_dir`` (``report -o``).

    Parameters
    ----------
    results_path : str or Path
        A qrspec results file.
    out_dir : str or Path
        Created if needed. Files: ``batch_<name>.<fmt>``
        (:func:`qrspec.app.batch_figures.write_batch_figures`) and ``particle_<id>.<fmt>``.
    particles : sequence of str, optional
        Particle ids to draw (default: all).
    fmt : {"png", "pdf"}
    dpi : int
        Resolution of raster output.
    particle_filter : str, optional
        Filter expression over the summary columns (:mod:`qrspec.app.filters`): the batch
        figures summarise the selected particles (group statistics recomputed by the store)
        and only their particle figures are drawn.
    exclude : ExclusionList, str, Path or dict, optional
        Particles left out of the batch figures' statistics (:mod:`qrspec.app.exclude`);
        their particle figures are still drawn.
    batch : bool
        Write the batch figures (False: particle figures only).
    jobs : int
        Processes drawing the figures (1: in this process; the batch figures are one task).
    progress : callable, optional
        ``progress(item, status)`` after each figure ("batch figures", then each particle id,
        with "drawn"), the signature of :class:`qrspec.app.progress.ProgressBar`.

    Returns
    -------
    list of Path
        The batch figures first, then the particle figures in summary order.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    QrspecError
        Not a results file, unknown particle ids, a bad filter or exclusion list.
    ValueError
        Unknown format or dpi.
    """
    from qrspec.app.batch_tables import load_batch_tables

    require_matplotlib()
    fmt = check_format(fmt)
    check_dpi(dpi)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise QrspecError(f"jobs={jobs!r} must be an integer >= 1")
    tables = load_batch_tables(results_path)
    ids = tables.particle_ids
    if particles is None:
        chosen = ids
    else:
        chosen = [str(x) for x in particles]
        unknown = [x for x in chosen if x not in ids]
        if unknown:
            raise QrspecError(f"particles={unknown!r} not in {tables.path}")
    excl = None
    if exclude is not None:
        from qrspec.app.exclude import as_exclusion

        excl = as_exclusion(exclude)
    if particle_filter is not None:
        from qrspec.app.filters import apply_filter, filter_exclusion

        keep = set(np.asarray(tables.summary["particle_id"])[apply_filter(tables.summary,
                                                                           particle_filter)])
        chosen = [x for x in chosen if x in keep]
        excl = filter_exclusion(tables.summary, particle_filter, excl)
    out_dir = Path(out_dir)
    shown = None
    if batch:
        from qrspec.app.exclude import exclude_from_tables

        shown = exclude_from_tables(tables, excl) if excl is not None else tables
    batch_paths: list[Path] = []
    done: dict[str, Path] = {}
    outs = {pid: out_dir / f"particle_{pid}.{fmt}" for pid in chosen}
    if jobs == 1 or len(chosen) + batch <= 1:
        if batch:
            batch_paths = _write_batch_task(shown, out_dir, fmt, dpi)
            if progress:
                progress("batch figures", "ok")
        for pid in chosen:
            done[pid] = plot_particle(tables.path, pid, outs[pid], fmt=fmt, dpi=dpi)
            logger.info("figure of particle %s written", pid)
            if progress:
                progress(pid, "drawn")
    else:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        with ProcessPoolExecutor(max_workers=min(jobs, len(chosen) + batch)) as ex:
            futs = {ex.submit(plot_particle, tables.path, pid, outs[pid], fmt=fmt, dpi=dpi): pid
                    for pid in chosen}
            if batch:
                futs[ex.submit(_write_batch_task, shown, out_dir, fmt, dpi)] = None
            pending = set(futs)
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fu in finished:
                        pid = futs[fu]
                        if pid is None:
                            batch_paths = fu.result()
                            if progress:
                                progress("batch figures", "ok")
                            continue
                        done[pid] = fu.result()
                        logger.info("figure of particle %s written", pid)
                        if progress:
                            progress(pid, "drawn")
            except BaseException:  # an error or Ctrl-C: do not draw the rest
                for fu in pending:
                    fu.cancel()
                raise
    return batch_paths + [done[pid] for pid in chosen]


# ------------------------------------------------------------------ charge-model figure
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
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(RC):
        fig = new_figure(WIDTH_IN, 2.8)
        ax = fig.subplots(1, 2)
        ax[0].semilogy(res.n, res.tau_x_ns, "o-", label="X$^{n-}$")
        ax[0].semilogy(res.n, res.tau_xx_ns, "s-", label="XX$^{n-}$")
        ax[0].semilogy(res.n, res.tau_a_xx_ns, "^-", label=r"$\tau_{A,XX^{n-}}$")
        ax[0].set_xlabel("n")
        ax[0].set_ylabel("Lifetime (ns)")
        plain_log_labels(ax[0].yaxis)
        ax[0].legend()
        ax[1].plot(res.n, res.qy_x, "o-", label="QY X$^{n-}$")
        ax[1].plot(res.n, res.qy_xx, "s-", label="QY XX$^{n-}$")
        ax[1].set_xlabel("n")
        ax[1].legend()
    return fig
