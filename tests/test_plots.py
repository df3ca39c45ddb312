"""The particle figure and ``qrspec report -o`` (qrspec.app.plots, qrspec.app.figure_style):
the drawn artists carry the analysis' numbers, NaN is never drawn, a missing panel says why."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from click.testing import CliRunner  # noqa: E402
from matplotlib import image as mpimg  # noqa: E402

from qrspec.analysis.alignment import Alignment  # noqa: E402
from qrspec.analysis.charging import Charging, ChargingWindows  # noqa: E402
from qrspec.analysis.decay_fits import TAIL_START_NS  # noqa: E402
from qrspec.analysis.flid import Flid  # noqa: E402
from qrspec.analysis.g2 import G2Histogram, G2Result  # noqa: E402
from qrspec.analysis.levels import Levels  # noqa: E402
from qrspec.analysis.particle import ParticleAnalysis  # noqa: E402
from qrspec.analysis.states import StateResult, States  # noqa: E402
from qrspec.analysis.tau_xx import TauXXMethods  # noqa: E402
from qrspec.analysis.trajectory import Trajectory  # noqa: E402
from qrspec.app import figure_style, plots  # noqa: E402
from qrspec.errors import OutputError, QrspecError  # noqa: E402
from qrspec.fitting.lifetime import fit_decay  # noqa: E402
from qrspec.levels.segments import Segments  # noqa: E402
from qrspec.store.hdf5 import merge_results, write_particle_file  # noqa: E402

PERIOD_NS = 100.0
RES_NS = 0.016  # TCSPC bin: 6250 bins per period
N_FINE = 6250
STATE_R = 3  # state decays are summed over 3 TCSPC bins (~50 ps), as in the pipeline
T0_NS = 5.0
TAU = {"neutral": 8.0, "charged": 2.5}
BIN_S = 0.01
DURATION_S = 6.0


def _decay(rng, tau_ns, n_photons, r=1, bg_frac=0.01):
    """Poisson counts of a periodic mono-exponential decay (rise at T0_NS) plus background."""
    t = np.arange(N_FINE) * RES_NS
    d = (t - T0_NS) % PERIOD_NS
    shape = np.exp(-d / tau_ns) / (1 - np.exp(-PERIOD_NS / tau_ns))
    shape = (1 - bg_frac) * shape / shape.sum() + bg_frac / N_FINE
    fine = rng.poisson(n_photons * shape)
    n_out = -(-N_FINE // r)
    pad = np.zeros(n_out * r, np.int64)
    pad[:N_FINE] = fine
    return pad.reshape(n_out, r).sum(axis=1)


def _g2(rng, g0, pairs_per_peak):
    lag = np.arange(-350.0, 350.0, 0.5) + 0.25
    k = np.round(lag / PERIOD_NS)
    peak = np.exp(-np.abs(lag - k * PERIOD_NS) / 8.0)
    peak *= pairs_per_peak / peak[np.abs(lag) < 50].sum()
    expect = np.where(k == 0, g0, 1.0) * peak
    return lag, rng.poisson(expect)


NAN = math.nan
NO_TAU_XX = TauXXMethods(False, "mean_excitations not given", NAN, NAN, NAN, NAN, NAN, NAN, ())


def _g2_hist(lag, counts, g0, gate=None):
    return G2Histogram(lag_ns=lag, counts=counts, peaks=np.arange(-3, 4),
                       peak_areas=np.full(7, 400), g2_zero=g0, g2_zero_err=0.05,
                       window_ns=PERIOD_NS, gate_window_ns=gate)


def _state(rng, label):
    """A state decay on 3-TCSPC-bin bins with the pipeline's stored tail fit."""
    dcounts = _decay(rng, TAU[label], 150_000, STATE_R)
    bin_ns = STATE_R * RES_NS
    n_whole = N_FINE // STATE_R
    fit = fit_decay(dcounts[:n_whole], time_ns=np.arange(n_whole) * bin_ns,
                    period_ns=N_FINE * RES_NS, model="mono", irf=None, background="fit",
                    fit_range_ns=(T0_NS + TAIL_START_NS, N_FINE * RES_NS))
    return StateResult(label=label, windows_s=np.zeros((0, 2)), n_photons=int(dcounts.sum()),
                       n_pairs=100, tau_x_ns=TAU[label], tau_x_err_ns=0.05,
                       tau_xx_ns=1.5 if label == "neutral" else NAN,
                       tau_xx_err_ns=0.1 if label == "neutral" else NAN, g2_zero=NAN,
                       g2_zero_err=NAN, message="", decay_counts=dcounts,
                       decay_time_ns=np.arange(dcounts.size) * bin_ns, decay_bin_ns=bin_ns,
                       fit_model="mono", fit_tau_ns=tuple(fit.tau_ns),
                       fit_model_counts=fit.model_counts, fit_residuals=fit.residuals)


def _charging(windows, **values):
    """A Charging stage result: NaN (or "") for every value not given."""
    import dataclasses

    kw = {f.name: ("" if f.type in ("str", str) else 0 if f.type in ("int", int) else NAN)
          for f in dataclasses.fields(Charging) if f.name not in ("windows", "flags")}
    kw.update(values)
    return Charging(windows=windows, flags=(), **{**kw, "model_json": ""})


def _full_particle(rng, pid="rod_full", group="doped", charging=True, g2_zero=(0.9, 0.3)):
    """A particle with every stage: two levels (neutral bright, charged dim)."""
    n_bins = int(DURATION_S / BIN_S)
    t = (np.arange(n_bins) + 0.5) * BIN_S
    charged = (t > 2.0) & (t < 4.5) if charging else np.zeros(n_bins, bool)
    rate = np.where(charged, 15e3, 60e3)
    counts = rng.poisson(np.column_stack([rate, rate]) * BIN_S / 2).astype(np.uint32)
    if charging:
        bounds = np.array([0.0, 2.0, 4.5, DURATION_S])
        labels = ["neutral", "charged", "neutral"]
        seg_rate = np.array([60e3, 15e3, 60e3])
        cp = np.array([2.0, 4.5])
    else:
        bounds = np.array([0.0, DURATION_S])
        labels = ["neutral"]
        seg_rate = np.array([60e3])
        cp = np.zeros(0)
    index = np.concatenate([[0], np.cumsum(np.round(seg_rate * np.diff(bounds)))])
    segments = Segments.from_boundaries(bounds, index.astype(np.int64),
                                        level=[1 if x == "neutral" else 0 for x in labels],
                                        label=labels)
    levels = Levels(segments=segments, change_points_s=cp,
                    change_points_ci_s=np.column_stack([cp - 0.02, cp + 0.03])
                    if cp.size else np.zeros((0, 2)), cpa_alpha=0.05, cpa_confidence=0.69,
                    intensity_cps=np.array([60e3, 15e3]),
                    tau_ns=np.array([TAU["neutral"], TAU["charged"]]),
                    rho_rad=np.array([1.0, NAN]), label=np.array(["neutral", "charged"]))
    alignment = Alignment(time_ns=np.arange(N_FINE) * RES_NS,
                          counts=_decay(rng, 6.0, 300_000), t0_ns=T0_NS,
                          offsets_ns=np.zeros(2), period_ns=N_FINE * RES_NS, bin_ns=RES_NS,
                          delay_ns=0.0)
    (lag, c_raw), (_, c_gated) = _g2(rng, g2_zero[0], 400), _g2(rng, g2_zero[1], 400)
    g2 = G2Result(detectors=(0, 1), delay_ns=0.0, gate_after_rise_ns=3.0,
                  raw=_g2_hist(lag, c_raw, g2_zero[0]),
                  gated=_g2_hist(lag, c_gated, g2_zero[1], (T0_NS + 3, PERIOD_NS)),
                  single_emitter=True, flags=())
    states = States(neutral=_state(rng, "neutral"),
                    charged=_state(rng, "charged") if charging else None,
                    frac_time_neutral=0.6 if charging else 1.0,
                    flags=() if charging else ("no charged period",))
    rate_bins = counts.sum(axis=1)
    delay = np.where(charged, TAU["charged"], TAU["neutral"]) + rng.normal(0, 0.3, n_bins)
    ce, de = np.arange(rate_bins.max() + 2.0), np.arange(0.0, 12.0, 0.1)
    hist, _, _ = np.histogram2d(rate_bins, delay, bins=(ce, de))
    rows = np.array([[2.0, 3.2, 6.0, 0.8, 1.5, 0.1], [3.2, 4.5, 7.0, 1.2, 1.3, 0.2]]) \
        if charging else np.zeros((0, 6))
    windows = ChargingWindows(*(rows[:, j] for j in range(6)), tau_x_ns=np.full(len(rows), NAN),
                              tau_xx_ns=np.full(len(rows), NAN),
                              tau_x_err_ns=np.full(len(rows), NAN),
                              tau_xx_err_ns=np.full(len(rows), NAN),
                              n_photons=np.full(len(rows), 1000),
                              flags=("", "at_upper_bound")[:len(rows)],
                              usable=np.array([True, False][:len(rows)]))
    charging_result = _charging(windows, neutral_tau_x_ns=TAU["neutral"],
                                tau_a_xx_neutral_ns=12.0, n_c_mean=6.0 if charging else NAN,
                                n_c_err=0.8 if charging else NAN,
                                tau_a_xx_charged_ns=1.5 if charging else NAN)
    return ParticleAnalysis(
        pid, group, f"{pid}.ptu", "0" * 64, "ok",
        trajectory=Trajectory(counts, BIN_S, 0.0, (0, 1), int(counts.sum()), DURATION_S,
                              counts.sum() / DURATION_S, ()),
        alignment=alignment, g2=g2, levels=levels, states=states,
        flid=Flid(hist.astype(np.int64), ce, de, BIN_S), tau_xx=NO_TAU_XX,
        charging=charging_result)


def _nan_particle():
    """Status ok but every number NaN and every array empty (nothing could be decided)."""
    empty = np.zeros(0)
    one = np.array([NAN])
    hist = _g2_hist(empty, np.zeros(0, np.int64), NAN)
    windows = ChargingWindows(np.array([0.0]), np.array([1.0]), one, one, one, one, one, one,
                              one, one, np.array([0]), ("",), np.array([False]))
    return ParticleAnalysis(
        "rod_nan", "doped", "rod_nan.ptu", "0" * 64, "ok",
        trajectory=Trajectory(np.zeros((0, 2), np.uint32), BIN_S, 0.0, (0, 1), 0, NAN, NAN,
                              ()),
        alignment=Alignment(np.arange(N_FINE) * RES_NS, np.zeros(N_FINE, np.int64), NAN,
                            np.zeros(2), N_FINE * RES_NS, RES_NS, 0.0),
        g2=G2Result((0, 1), 0.0, 3.0, hist, hist, False, ()),
        states=States(None, None, NAN, ("no neutral period",)),
        flid=Flid(np.zeros((3, 2), np.int64), np.arange(4.0), np.arange(3.0), BIN_S),
        tau_xx=NO_TAU_XX,
        charging=_charging(windows))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results file: two full particles, a neutral-only one, an all-NaN one, a failed one."""
    rng = np.random.default_rng(90210)
    d = tmp_path_factory.mktemp("plots")
    parts = [_full_particle(rng, "rod_a", "doped"),
             _full_particle(rng, "rod_b", "doped", g2_zero=(0.8, 0.2)),
             _full_particle(rng, "rod_c", "undoped", charging=False), _nan_particle(),
             ParticleAnalysis.failed("rod_failed", "undoped", "rod_failed.ptu",
                                     "TTTRFormatError: truncated record", traceback="tb")]
    files = [write_particle_file(d / f"{p.particle_id}.h5", p) for p in parts]
    return merge_results(files, d / "results.h5")


@pytest.fixture(scope="module")
def figures(results, tmp_path_factory):
    """Every figure of ``results`` as PNG at 150 dpi (drawn once; the default 300 dpi is
    checked in test_cli_report), warnings of the figure modules captured."""
    import logging

    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logs = [logging.getLogger(n) for n in ("qrspec.app.plots", "qrspec.app.figure_style")]
    for log in logs:
        log.addHandler(handler)
    try:
        paths = plots.write_figures(results, tmp_path_factory.mktemp("figs"), dpi=150)
    finally:
        for log in logs:
            log.removeHandler(handler)
    return paths, records


def _pixels(path):
    img = mpimg.imread(path)
    return img[..., :3].mean(axis=2)  # grey levels in [0, 1]


def _axes(fig, label):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


def _texts(ax):
    """Every text of a panel (titles too), line breaks of wrapped text as spaces."""
    return " ".join(" ".join([t.get_text() for t in ax.texts]
                             + [ax.get_title(loc=k) for k in ("left", "center", "right")])
                    .split())


def _gid(ax, gid):
    return [a for a in list(ax.lines) + list(ax.collections) if a.get_gid() == gid]


BATCH_PNGS = ["batch_auger_charge.png", "batch_g2_histograms.png", "batch_group_summary.png",
              "batch_population.png", "batch_threshold_map.png"]


# ------------------------------------------------------------------ the figures
def test_write_figures_all_particles_non_trivial_pngs(figures):
    paths, records = figures
    names = [p.name for p in paths]
    assert sorted(names[:5]) == BATCH_PNGS
    assert names[5:] == [f"particle_{pid}.png" for pid in ("rod_a", "rod_b", "rod_c",
                                                           "rod_nan", "rod_failed")]
    assert sorted(x.name for x in paths[0].parent.iterdir()) == sorted(names)  # no temp files
    # no panel fell back to the "could not draw" path: every missing datum is handled
    assert not [r.getMessage() for r in records]
    for p in paths:
        grey = _pixels(p)
        assert p.stat().st_size > 8_000, p  # a blank 150-dpi figure compresses to ~2-8 kB
        # an all-white image has std 0; axes, text and data lines give far more
        assert grey.std() > 0.05, p
    full, failed = _pixels(paths[5]), _pixels(paths[-1])
    w, h = plots.PARTICLE_FIGURE_SIZE_IN
    assert full.shape == (round(h * 150), round(w * 150))
    # a failed particle is a small figure with its error, not a page of empty panels
    assert failed.shape == (round(1.6 * 150), round(7.2 * 150))


def test_particle_figure_content(results):
    fig = plots.particle_figure(results, "rod_a")
    tr = _axes(fig, "trajectory")
    # one shaded span per segment, coloured by label: neutral, charged, neutral
    (spans,) = _gid(tr, "label_spans")
    from matplotlib.colors import to_rgb

    assert [tuple(np.round(c[:3], 3)) for c in spans.get_facecolors()] == [
        tuple(np.round(to_rgb(figure_style.LABEL_COLORS[k]), 3))
        for k in ("neutral", "charged", "neutral")]
    legend = [t.get_text() for t in tr.get_legend().get_texts()]
    assert legend == ["neutral", "charged", "change point (2)"]
    # level lines at the segment intensity in counts per trace bin: 60e3 cps * 10 ms = 600
    (levels,) = _gid(tr, "levels")
    ys = sorted({round(float(s[0][1]), 6) for s in levels.get_segments()})
    assert ys == [150.0, 600.0]
    assert tr.get_ylabel() == "Intensity (counts / 10 ms)"
    # the trace is the trajectory's counts (both detectors) at the bin centres
    (trace,) = _gid(tr, "trace")
    np.testing.assert_array_equal(trace.get_ydata()[:3], np.asarray(
        plots._Particle(_read(results, "rod_a")).a.trajectory.counts).sum(axis=1)[:3])
    # charging windows (file rows 2.0-3.2 s n_c 6.0 +- 0.8 usable, 3.2-4.5 s 7.0 +- 1.2
    # flagged at a bound): the usable window is a star at its centre with its error as a box
    # over its span; the flagged one an open star, no box
    nc = _axes(fig, "n_c")
    (use,) = _gid(nc, "n_c_usable")
    np.testing.assert_allclose(use.get_xydata(), [[2.6, 6.0]])
    (box,) = _gid(nc, "n_c_error")
    np.testing.assert_allclose(box.get_paths()[0].vertices[:4],
                               [[2.0, 5.2], [3.2, 5.2], [3.2, 6.8], [2.0, 6.8]])
    (flag,) = _gid(nc, "n_c_flagged")
    np.testing.assert_allclose(flag.get_xydata(), [[3.85, 7.0]])
    assert flag.get_markerfacecolor() == "white"
    assert [t.get_text() for t in nc.get_legend().get_texts()] == [
        "usable windows (1)", "bound / not identifiable (1)"]
    # tau_A,XX(t) on a log axis (1.5 ns next to the neutral 12 ns), the reference line
    ta = _axes(fig, "tau_a")
    assert ta.get_yscale() == "log"
    (use,) = _gid(ta, "tau_a_usable")
    np.testing.assert_allclose(use.get_xydata(), [[2.6, 1.5]])
    assert 12.0 in [ln.get_ydata()[0] for ln in ta.lines]
    lo, hi = ta.get_ylim()
    assert lo < 1.3 and hi > 12.0  # every drawn value and the reference are on the axis
    # decays: stored lifetimes in the legend, fit curves and residuals drawn
    dec = _axes(fig, "decays")
    leg = [t.get_text() for t in dec.get_legend().get_texts()]
    assert leg[0].startswith("neutral") and "8.000 ± 0.050 ns" in leg[0]
    assert leg[1].startswith("charged") and "2.500 ± 0.050 ns" in leg[1]
    res = _axes(fig, "residuals")
    resid = np.concatenate([ln.get_ydata() for st in ("neutral", "charged")
                            for ln in _gid(res, f"residuals_{st}")])
    resid = resid[np.isfinite(resid)]
    # the data are Poisson draws of a mono-exponential + flat background, which the tail
    # fit contains: Pearson residuals on the display bins have unit spread (0.8-1.2 allows
    # for the ~400-bin sample and the few parameters fitted)
    assert resid.size > 300 and 0.8 < np.std(resid) < 1.2
    assert dec.get_yscale() == "log" and dec.get_xlabel() == "" \
        and res.get_xlabel() == r"Delay $t - t_0$ (ns)"
    # g2 raw and gated with the stored g2(0); lags are the stored ones (about the chosen 0)
    g2 = _axes(fig, "g2")
    assert "0.90 ± 0.05" in _texts(g2)
    assert "0.30 ± 0.05" in _texts(_axes(fig, "g2_gated"))
    (curve,) = _gid(g2, "g2_counts")
    assert curve.get_xdata().min() >= -350 and curve.get_xdata().max() <= 350
    flid = _axes(fig, "flid")
    assert flid.get_xlabel() == r"Mean delay $t - t_0$ (ns)"
    # intensity rows merged for display (<= 60 rows); every trace bin is still counted once
    (mesh,) = _gid(flid, "flid")
    assert mesh.get_array().sum() == DURATION_S / BIN_S
    assert mesh.get_coordinates().shape[0] <= plots.FLID_MAX_ROWS + 1


def _read(results, pid):
    from qrspec.store.hdf5 import read_particle

    return read_particle(results, pid)


def test_nan_windows_are_not_drawn(results):
    """A window with NaN n_c (not inverted) is neither a point nor a box; a NaN error draws
    the point without a box."""
    import dataclasses

    a = _read(results, "rod_a")
    w = a.charging.windows
    nan_w = dataclasses.replace(w, n_c=np.array([NAN, 7.0]), n_c_err=np.array([NAN, NAN]),
                                usable=np.array([False, True]))
    fig = plots.particle_figure(dataclasses.replace(
        a, charging=dataclasses.replace(a.charging, windows=nan_w)))
    nc = _axes(fig, "n_c")
    (use,) = _gid(nc, "n_c_usable")
    np.testing.assert_allclose(use.get_xydata(), [[3.85, 7.0]])
    assert not _gid(nc, "n_c_error") and not _gid(nc, "n_c_flagged")
    for ln in nc.lines:
        assert np.isfinite(np.asarray(ln.get_ydata(), float)).all()


def test_flid_delay_axis_is_physical(results):
    """Trace bins whose background-corrected mean delay is far below the rise (dim bins of a
    background-dominated file gave axes from -175 ns) are counted, not drawn; the clusters are
    all on the axis."""
    import dataclasses

    a = _read(results, "rod_a")
    fl = a.flid
    de = np.concatenate([np.arange(-1750, 0) * 0.1, fl.delay_edges_ns])
    h = np.zeros((fl.histogram.shape[0], de.size - 1), np.int64)
    h[:, -fl.histogram.shape[1]:] = fl.histogram  # the clusters at 0-12 ns
    h[3, 10] += 4  # four dim bins at -174 ns
    fig = plots.particle_figure(dataclasses.replace(
        a, flid=dataclasses.replace(fl, histogram=h, delay_edges_ns=de)))
    ax = _axes(fig, "flid")
    lo, hi = ax.get_xlim()
    cols = np.flatnonzero(fl.histogram.sum(axis=0))  # every cluster column is on the axis
    assert plots.FLID_MIN_DELAY_NS <= lo <= fl.delay_edges_ns[cols[0]] + 1e-9
    assert hi >= fl.delay_edges_ns[cols[-1] + 1] - 1e-9
    assert lo > -3  # not -175 ns
    (mesh,) = _gid(ax, "flid")
    assert mesh.get_array().sum() == h.sum() - 4
    assert "4 dim bins beyond the axis" in _texts(ax)


def test_missing_data_panels_say_why(results):
    fig = plots.particle_figure(results, "rod_c")  # never charged
    assert "no charged period" in _texts(_axes(fig, "n_c"))
    assert "no charged period" in _texts(_axes(fig, "tau_a"))
    fig = plots.particle_figure(results, "rod_failed")
    assert [ax.get_label() for ax in fig.axes] == ["error"]
    assert "ANALYSIS FAILED" in " ".join(t.get_text() for t in fig.texts)
    assert "TTTRFormatError: truncated record" in _texts(_axes(fig, "error"))
    fig = plots.particle_figure(results, "rod_nan")
    for label in ("trajectory", "n_c", "decays", "g2", "flid"):
        assert "no " in _texts(_axes(fig, label)), label
        assert not _axes(fig, label).lines, label  # nothing drawn of a NaN


def test_pdf(results, tmp_path):
    out = plots.plot_particle(results, "rod_a", tmp_path / "x.PDF")  # format from the suffix
    assert out.read_bytes()[:5] == b"%PDF-"
    assert out.stat().st_size > 10_000


def test_particle_figure_in_memory_equals_read_back(results, rng):
    """particle_figure draws an analysis in memory exactly as read back from the store."""
    back = _read(results, "rod_a")
    a, b = plots.particle_figure(back), plots.particle_figure(results, "rod_a")
    for label in ("trajectory", "decays", "g2", "n_c"):
        la = [ln.get_ydata() for ln in _axes(a, label).lines]
        lb = [ln.get_ydata() for ln in _axes(b, label).lines]
        assert len(la) == len(lb) > 0
        for x, y in zip(la, lb, strict=True):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(QrspecError, match=r"particle_id='rod_b' is not the given analysis"):
        plots.particle_figure(back, "rod_b")


def test_format_pm_rounds_to_error():
    fp = figure_style.format_pm
    assert fp(9.8123, 0.0312, "ns") == "9.812 ± 0.031 ns"
    assert fp(24.1, 5.6) == "24.1 ± 5.6"
    assert fp(13.03, math.nan, "ns") == "13.0 ns"
    assert fp(math.nan, 1.0) == "n/a"


# ------------------------------------------------------------------ errors
def test_unknown_particle(results, tmp_path):
    with pytest.raises(QrspecError, match=r"particle_id='nope' not in .*results.h5 "
                                          r"\(5 particles: rod_a"):
        plots.plot_particle(results, "nope", tmp_path / "x.png")
    with pytest.raises(QrspecError, match=r"particles=\['nope'\] not in"):
        plots.write_figures(results, tmp_path, particles=["rod_a", "nope"])
    with pytest.raises(QrspecError, match=r"jobs=0 must be an integer >= 1"):
        plots.write_figures(results, tmp_path, jobs=0)


def test_bad_format_and_dpi(results, tmp_path):
    with pytest.raises(ValueError, match=r"fmt='svg' must be one of 'png', 'pdf'"):
        plots.write_figures(results, tmp_path, fmt="svg")
    with pytest.raises(ValueError, match=r"out_path='.*x\.jpg' must end in \.png or \.pdf"):
        plots.plot_particle(results, "rod_a", tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"dpi=5 must be an integer in \[10, 2400\]"):
        plots.plot_particle(results, "rod_a", tmp_path / "b.png", dpi=5)
    assert not list(tmp_path.iterdir())


def test_not_a_results_file(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    with pytest.raises(QrspecError, match=r"x\.h5: cannot open as HDF5"):
        plots.write_figures(bad, tmp_path / "figs")


def test_failed_save_leaves_no_file_and_keeps_the_old_one(results, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def boom(self, fname, **kw):
        with open(fname, "wb") as fh:  # a partial file exists when the error hits
            fh.write(b"half")
        raise OSError(28, "No space left on device")

    old = tmp_path / "b.png"
    old.write_bytes(b"previous figure")
    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(OutputError, match=r"b\.png.*No space left on device"):
        plots.plot_particle(results, "rod_a", old)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["b.png"]
    assert old.read_bytes() == b"previous figure"


def test_missing_matplotlib_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'qrspec\[plot\]'"):
        plots.write_figures("unused.h5", "unused")


def test_unexpected_panel_error_is_shown_not_raised(caplog):
    fig = figure_style.new_figure(3, 2)
    ax = fig.add_subplot()

    def draw(ax):
        ax.plot([0, 1], [0, 1])
        raise RuntimeError("odd data")

    assert not figure_style.guard_panel(ax, draw)
    assert not ax.lines and "could not draw: RuntimeError: odd data" in _texts(ax)
    assert "panel draw failed: RuntimeError: odd data" in caplog.text


def test_import_without_matplotlib_hints_install():
    # a None entry in sys.modules makes "import matplotlib" fail, as when it is not installed
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "try:\n    import qrspec.app.plots\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "qrspec figures need matplotlib: pip install 'qrspec[plot]'"


def test_import_qrspec_does_not_import_matplotlib():
    code = ("import sys, qrspec, qrspec.app.plots, qrspec.app.batch_figures, "
            "qrspec.app.figure_style, qrspec.cli.report; sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_no_module_imports_private_figure_helpers():
    """One public home for the shared style: no module reaches into another's privates."""
    import pathlib
    import re

    app = pathlib.Path(plots.__file__).parent
    for path in app.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"from qrspec\.app\.\w+ import[^\n]*\b_[a-z]", text), path
        assert not re.search(r"from qrspec\.app\.plots import \(", text), path


# ------------------------------------------------------------------ CLI
def test_cli_report(results, tmp_path):
    from qrspec.cli.report import report

    r = CliRunner().invoke(report, [str(results), "-o", str(tmp_path / "f"), "--particles",
                                    "rod_failed", "-j", "1"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        *BATCH_PNGS, "particle_rod_failed.png"]
    assert str(tmp_path / "f" / "particle_rod_failed.png") in r.output.splitlines()
    assert "6 figures" in r.output
    assert "\r" not in r.output  # stderr is no terminal: no progress bar
    # the default 300 dpi: the failed particle's figure is 7.2 x 1.6 in
    assert _pixels(tmp_path / "f" / "particle_rod_failed.png").shape == (480, 2160)
    # two processes draw the same files
    r = CliRunner().invoke(report, [str(results), "-o", str(tmp_path / "g"), "--particles",
                                    "rod_nan,rod_c", "--dpi", "20", "--format", "png",
                                    "-j", "2"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        *BATCH_PNGS, "particle_rod_c.png", "particle_rod_nan.png"]


def test_report_o_leaves_excluded_and_filtered_particles_out_of_the_batch_figures(
        results, tmp_path, monkeypatch):
    """``report -o --exclude/--filter``: the batch figures get the store's statistics without
    the excluded particles; a filter also limits the particle figures; an exclusion list
    naming an unknown particle is an error before anything is written."""
    from qrspec.app import batch_figures
    from qrspec.app.exclude import write_exclusion_file
    from qrspec.cli import main

    seen = []

    def fake(tables, out_dir, **kw):
        seen.append(tables)
        return {}

    monkeypatch.setattr(batch_figures, "write_batch_figures", fake)
    excl = write_exclusion_file(tmp_path / "x.json", ["rod_b"])
    r = CliRunner().invoke(main, ["report", str(results), "-o", str(tmp_path / "f"),
                                  "--exclude", str(excl), "--particles", "rod_c", "--dpi", "20",
                                  "-j", "1"])
    assert r.exit_code == 0, r.output
    (tables,) = seen
    assert "rod_b" not in tables.particle_ids and len(tables.particle_ids) == 4
    doped = tables.groups[tables.groups["group"] == "doped"][0]
    assert doped["n_ok"] == 2  # rod_a and rod_nan
    r = CliRunner().invoke(main, ["report", str(results), "-o", str(tmp_path / "g"),
                                  "--filter", "group == \"undoped\"", "--dpi", "20", "-j", "1"])
    assert r.exit_code == 0, r.output
    assert sorted(seen[-1].particle_ids) == ["rod_c", "rod_failed"]
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "particle_rod_c.png", "particle_rod_failed.png"]
    bad = write_exclusion_file(tmp_path / "bad.json", ["nope"])
    r = CliRunner().invoke(main, ["report", str(results), "-o", str(tmp_path / "h"),
                                  "--exclude", str(bad)])
    assert r.exit_code == 1 and "1 particle ids are not in" in r.output
    assert not (tmp_path / "h").exists()


def test_cli_report_progress_on_a_terminal(results, tmp_path, monkeypatch):
    """The bar is drawn when stderr is a terminal (a fake TTY stream here), never with -q or
    --no-progress."""
    import click.testing

    from qrspec.cli import main

    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True,
                        raising=False)
    args = ["report", str(results), "-o", str(tmp_path / "f"), "--particles", "rod_c",
            "--dpi", "20", "-j", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "figures [" + "#" * 28 + "] 2/2" in r.stderr
    for extra in (["--no-progress"], ):
        r = CliRunner().invoke(main, args + extra)
        assert r.exit_code == 0 and "figures [" not in r.stderr
    r = CliRunner().invoke(main, ["-q", *args])
    assert r.exit_code == 0 and "figures [" not in r.stderr


@pytest.mark.parametrize("fresh_import", [False, True])
def test_cli_report_without_matplotlib(results, tmp_path, monkeypatch, fresh_import):
    from qrspec.cli.report import report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    if fresh_import:  # qrspec.app.plots not imported yet: the import itself fails
        monkeypatch.delitem(sys.modules, "qrspec.app.plots")
    r = CliRunner().invoke(report, [str(results), "-o", str(tmp_path)])
    assert r.exit_code == 1 and "pip install 'qrspec[plot]'" in r.output


def test_cli_report_errors(results, tmp_path):
    from qrspec.cli.report import report

    runner = CliRunner()
    r = runner.invoke(report, [str(results), "-o", str(tmp_path), "--particles", "nope"])
    assert r.exit_code == 1 and "particles=['nope'] not in" in r.output
    r = runner.invoke(report, [str(results), "-o", str(tmp_path), "--format", "svg"])
    assert r.exit_code == 2  # usage error
    r = runner.invoke(report, [str(tmp_path / "missing.h5"), "-o", str(tmp_path)])
    assert r.exit_code == 2
    bad = tmp_path / "bad.h5"
    bad.write_text("x")
    r = runner.invoke(report, [str(bad), "-o", str(tmp_path / "g")])
    assert r.exit_code == 1 and "cannot open as HDF5" in r.output


def test_g2_panels_of_t2_cw_single_detector_and_zero_peak(tmp_path, rng):
    """The g2 panels follow the acquisition: CW dip with its fit and rise time; T2 without
    sync: no gated panel (why said); one detector: no g2 (why said); pulsed: which peak is lag
    zero; an undefined g2(0) is not drawn as a number."""
    from test_hbt import PERIOD_NS, pulsed_hbt

    from qrspec.analysis.config import AnalysisConfig
    from qrspec.analysis.pipeline import analyze_photons
    from qrspec.simulate.cw import simulate_cw_hbt

    ph, _ = simulate_cw_hbt(5, duration_s=0.4, k_exc_per_ns=0.005, k_rad_per_ns=0.1,
                            eta=(0.1, 0.1), background_cps=(5000.0, 5000.0))
    cw = analyze_photons(ph, particle_id="cw")
    fig = plots.particle_figure(cw)
    g = _axes(fig, "g2")
    assert "CW $g^{(2)}(0)$ = " in _texts(g) and r"$\tau_r$ = " in _texts(g)
    assert any(line.get_label() == "dip fit" for line in g.lines)
    assert g.get_xlabel() == r"Lag $\tau$ (ns)"  # the gated panel is empty: lag axis here
    assert "T2 data without sync: no nanotimes" in _texts(_axes(fig, "g2_gated"))
    assert "T2 data without sync: no nanotimes" in _texts(_axes(fig, "decays"))
    single = analyze_photons(ph, AnalysisConfig(detectors=[0]), particle_id="one")
    fig = plots.particle_figure(single)
    assert "one detector (0): g2 not applicable" in _texts(_axes(fig, "g2"))
    t3 = pulsed_hbt(rng, n_pulses=200_000, p_photon=0.06, g2_zero=None,
                    delay_ns=2 * PERIOD_NS + 3.3)
    fig = plots.particle_figure(analyze_photons(t3, particle_id="classical"))
    assert "lag 0 undecided: sub-period delay" in _texts(_axes(fig, "g2"))
    # no coincidences: the panel says n/a, no number
    empty = analyze_photons(_two_far_detectors(), particle_id="nopairs")
    assert math.isnan(empty.g2.raw.g2_zero)
    fig = plots.particle_figure(empty)
    assert "$g^{(2)}(0)$ = n/a" in _texts(_axes(fig, "g2"))
    assert "no photon pairs at these lags" in _texts(_axes(fig, "g2"))


def _two_far_detectors():
    """Two detectors whose photons are never within 6 laser periods: no pair at all."""
    from qrspec.photons import Photons

    ts = np.concatenate([np.arange(0, 10**6, 1000), np.arange(10**6 + 10**5, 2 * 10**6, 1000)])
    det = np.repeat([0, 1], [1000, ts.size - 1000])
    nt = (300 + np.arange(ts.size) % 200).astype(np.int64)
    return Photons.from_arrays(ts, det, nt, timestamps_unit=1e-7, nanotimes_unit=16e-12)
