"""Batch figures (qrspec.app.batch_figures): the drawn data are the table values, NaN and
failed particles are never drawn, counts are over particles with a value."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib import image as mpimg  # noqa: E402
from report_population import PARTICLES, write_population  # noqa: E402

from qrspec.app import batch_figures as bf  # noqa: E402
from qrspec.app.batch_tables import (  # noqa: E402
    error_column,
    load_batch_tables,
    store_group_statistics,
    value_columns,
)
from qrspec.charging.config import ChargeModelConfig  # noqa: E402
from qrspec.errors import QrspecError  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_population(tmp_path_factory.mktemp("pop"))


@pytest.fixture(scope="module")
def tables(results):
    return load_batch_tables(results)


def _ok(group=None):
    return [p for p in PARTICLES if p.status == "ok" and (group is None or p.group == group)]


def _finite_values(col, group):
    v = np.array([p.summary[col] for p in _ok(group)], float)
    return v[np.isfinite(v)]


def _lines(ax, gid):
    return [ln for ln in ax.lines if ln.get_gid() == gid]


def _axis(fig, label):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


# ---------------------------------------------------------------------------- tables
def test_error_columns_pair_values_with_their_errors(tables):
    names = tables.summary.dtype.names
    assert error_column("tau_x_neutral_ns", names) == "tau_x_neutral_err_ns"
    assert error_column("g2_zero_gated", names) == "g2_zero_gated_err"
    assert error_column("n_c_mean", names) == "n_c_err"
    assert error_column("gate_after_rise_ns", names) is None  # a setting, no error
    pairs = dict(value_columns(names))
    assert "n_c_err" not in pairs and "g2_zero_err" not in pairs  # shown with their values
    assert set(pairs) | {e for e in pairs.values() if e} == set(names)  # every column kept


def test_group_statistics_through_the_store_equal_the_file(tables):
    # the decoded summary goes back through the store's own function unchanged
    again = store_group_statistics(tables.summary)
    for name in tables.groups.dtype.names:
        if name == "group":
            assert list(again[name]) == list(tables.groups[name])
        else:
            np.testing.assert_array_equal(again[name], tables.groups[name])


# ---------------------------------------------------------------------------- Fig. 2h
def test_group_summary_draws_the_groups_table(tables):
    fig = bf.group_summary_figure(tables)
    ax, tw = _axis(fig, "intensity"), _axis(fig, "n_c")
    groups = [str(g) for g in tables.groups["group"]]
    (mean_rate,) = _lines(ax, "rate_mean")
    finite = np.isfinite(tables.groups["rate_cps_mean"])
    # exact: the markers are the /groups means (kcps), NaN means (group "empty") not drawn
    np.testing.assert_array_equal(mean_rate.get_ydata(),
                                  tables.groups["rate_cps_mean"][finite] / 1e3)
    (mean_nc,) = _lines(tw, "n_c_mean")
    finite_nc = np.isfinite(tables.groups["n_c_mean_mean"])
    assert [groups[i] for i in np.flatnonzero(finite_nc)] == ["doped", "undoped"]
    np.testing.assert_array_equal(mean_nc.get_ydata(), tables.groups["n_c_mean_mean"][finite_nc])
    # SEM bars: half-length equals the stored SEM
    (bars,) = [c for c in tw.collections if c.get_gid() == "n_c_mean_err"]
    half = [abs(s[1, 1] - s[0, 1]) / 2 for s in bars.get_segments()]
    np.testing.assert_allclose(half, tables.groups["n_c_mean_sem"][finite_nc], rtol=1e-12)
    # n in the tick labels counts particles with a value, per quantity
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[groups.index("undoped")].endswith("$n_I$ = 3, $n_{nc}$ = 2")
    assert labels[groups.index("neutral")].endswith("$n_I$ = 2, $n_{nc}$ = 0")
    assert labels[groups.index("empty")].endswith("$n_I$ = 0, $n_{nc}$ = 0")
    # particle dots: exactly the finite values of ok particles (the failed one is absent)
    dots = np.sort(np.concatenate([ln.get_ydata() for ln in _lines(ax, "rate_particles")]))
    want = np.sort(np.concatenate([_finite_values("rate_cps", g) for g in groups]) / 1e3)
    np.testing.assert_allclose(dots, want, rtol=1e-12)
    dots_nc = np.sort(np.concatenate([ln.get_ydata() for ln in _lines(tw, "n_c_particles")]))
    np.testing.assert_array_equal(dots_nc, np.sort(np.concatenate(
        [_finite_values("n_c_mean", g) for g in groups])))


def test_group_order_and_unknown_group(tables):
    fig = bf.group_summary_figure(tables, groups=["undoped", "doped"])
    labels = [t.get_text().split("\n")[0] for t in _axis(fig, "intensity").get_xticklabels()]
    assert labels == ["undoped", "doped"]
    with pytest.raises(QrspecError, match=r"groups=\['nope'\] not in .*results.h5"):
        bf.group_summary_figure(tables, groups=["nope"])


# ---------------------------------------------------------------------------- tau_A vs n_c
def test_auger_charge_points_errors_and_model(tables):
    fig = bf.auger_charge_figure(tables)
    ax = _axis(fig, "tau_a_vs_n_c")
    assert ax.get_yscale() == "log"
    for g in ("doped", "undoped"):
        ok = [p for p in _ok(g) if math.isfinite(p.summary["n_c_mean"])
              and math.isfinite(p.summary["tau_a_xx_charged_ns"])]
        (pts,) = _lines(ax, f"charged:{g}")
        np.testing.assert_array_equal(pts.get_xdata(), [p.summary["n_c_mean"] for p in ok])
        np.testing.assert_array_equal(pts.get_ydata(),
                                      [p.summary["tau_a_xx_charged_ns"] for p in ok])
        # one bar per finite error (undoped_01 has NaN errors: no bar of length 0)
        xbars, ybars = [c for c in ax.collections if c.get_gid() == f"charged:{g}_err"]
        n_fin = sum(math.isfinite(p.summary["n_c_err"]) for p in ok)
        assert len(xbars.get_segments()) == n_fin
        assert len(ybars.get_segments()) == sum(
            math.isfinite(p.summary["tau_a_xx_charged_err_ns"]) for p in ok)
        if g == "undoped":  # the NaN-error branch is exercised: undoped_01 has no errors
            assert n_fin == len(ok) - 1
    # neutral references at n_c = 0 (jittered by < 1.5 % of the axis), values exact
    (neu,) = _lines(ax, "neutral:neutral")
    np.testing.assert_array_equal(neu.get_ydata(), _finite_values("tau_a_xx_neutral_ns",
                                                                  "neutral"))
    # their errors: neutral_00 has one (1.5 ns), neutral_01 none (NaN): one bar
    (bars,) = [c for c in ax.collections if c.get_gid() == "neutral:neutral_err"]
    (seg,) = bars.get_segments()
    assert (seg[1, 1] - seg[0, 1]) / 2 == pytest.approx(1.5)
    assert np.all(np.abs(neu.get_xdata()) < 0.015 * ax.get_xlim()[1])
    # the model curve: capped, gamma*eps = 0.5, at the group's median neutral tau_A,XX0
    (model,) = _lines(ax, "model:doped")
    tau0 = np.median(_finite_values("tau_a_xx_neutral_ns", "doped"))
    n = np.asarray(model.get_xdata())
    np.testing.assert_allclose(model.get_ydata(), tau0 / (1 + 0.5 * n), rtol=1e-12)
    assert not _lines(ax, "model:neutral")  # no charged particle: no curve
    assert not _lines(ax, "charged:empty") and not _lines(ax, "neutral:empty")


def test_charge_model_for_reads_the_stored_model(tables):
    cfg = bf.charge_model_for(tables, tau_a_xx0_ns=13.9, tau_x0_ns=9.0)
    assert cfg == ChargeModelConfig(variant="capped", eps=0.5, gamma=1.0, tau_a_xx0_ns=13.9,
                                    tau_x0_ns=9.0)


# ---------------------------------------------------------------------------- g2 histograms
def test_g2_histograms_count_the_finite_gated_values(tables):
    fig = bf.g2_histogram_figure(tables)
    allv = np.concatenate([np.asarray(tables.summary[c], float)[tables.summary["status"] == "ok"]
                           for c in ("g2_zero_gated", "g2_zero")])
    edges = bf.g2_bin_edges(allv)
    assert edges[0] == 0.0 and edges[-1] >= 1.2 and np.allclose(np.diff(edges), bf.G2_BIN)
    for g in ("doped", "undoped", "neutral", "empty"):
        ax = _axis(fig, f"g2:{g}")
        bars = [p for p in ax.patches if p.get_gid() == f"g2_gated:{g}"]
        v = _finite_values("g2_zero_gated", g)
        if v.size == 0:
            assert not bars
            assert any("no finite gated" in t.get_text() for t in ax.texts)
            continue
        want, _ = np.histogram(v, edges)
        np.testing.assert_array_equal([b.get_height() for b in bars], want)
        assert [ln.get_xdata()[0] for ln in _lines(ax, "g2_limit")] == [0.5]
        n_ok = len(_ok(g))
        assert any(f"gated n = {v.size} of {n_ok} ok" in t.get_text() for t in ax.texts)


# ---------------------------------------------------------------------------- Fig. 1b
def test_threshold_map_marks_groups_with_their_errors(tables):
    from qrspec.charging.thresholds import threshold_map

    cfg = bf.charge_model_for(tables, tau_a_xx0_ns=13.9)
    tmap = threshold_map([0.0, 6.0, 12.0], [1.0, 10.0], cfg, n_steps=20)  # small: fast
    fig = bf.threshold_map_figure(tables, threshold_map=tmap)
    ax = _axis(fig, "threshold_map")
    g = {str(r["group"]): r for r in tables.groups}
    for name in ("doped", "undoped"):
        (pt,) = _lines(ax, f"group:{name}")
        assert pt.get_xdata()[0] == g[name]["n_c_mean_mean"]
        t0 = _finite_values("tau_a_xx_neutral_ns", name)
        assert pt.get_ydata()[0] == pytest.approx(t0.mean(), rel=1e-12)
        xbar, ybar = [c for c in ax.collections if c.get_gid() == f"group:{name}_err"]
        (seg,) = xbar.get_segments()
        assert (seg[1, 0] - seg[0, 0]) / 2 == pytest.approx(g[name]["n_c_mean_sem"])
        (seg,) = ybar.get_segments()
        assert (seg[1, 1] - seg[0, 1]) / 2 == pytest.approx(t0.std(ddof=1) / np.sqrt(t0.size))
    # always-neutral group: observed at n_c = 0 (frac_time_neutral 1), no x error
    (pt,) = _lines(ax, "group:neutral")
    assert pt.get_xdata()[0] == 0.0
    # a group with neither n_c nor a neutral record is named, not drawn
    assert not _lines(ax, "group:empty")
    assert any("empty: no n_c" in t.get_text() for t in ax.texts)
    mesh = [c for c in ax.collections if c.get_gid() == "n_las"]
    assert len(mesh) == 1
    assert ax.get_yscale() == "log"


def test_threshold_map_alone(tables):
    from qrspec.charging.thresholds import threshold_map

    tmap = threshold_map([0.0, 6.0], [1.0, 10.0], ChargeModelConfig(tau_x0_ns=8.0), n_steps=20)
    fig = bf.threshold_map_figure(None, threshold_map=tmap)
    ax = _axis(fig, "threshold_map")
    (mesh,) = [c for c in ax.collections if c.get_gid() == "n_las"]
    # the colours are the map: NaN-free values in the mesh equal the finite thresholds
    np.testing.assert_array_equal(np.sort(mesh.get_array().compressed()),
                                  np.sort(tmap.n_las[np.isfinite(tmap.n_las)]))
    assert not [ln for ln in ax.lines if (ln.get_gid() or "").startswith("group:")]
    assert "8 ns (default)" in ax.get_title(loc="left")
    with pytest.raises(QrspecError, match=r"results=None needs threshold_map="):
        bf.threshold_map_figure(None)


# ---------------------------------------------------------------------------- populations
def test_population_figure_draws_values_and_counts_particles_with_a_value(tables):
    fig = bf.population_figure(tables)
    groups = [str(g) for g in tables.groups["group"]]
    ax = _axis(fig, "lifetimes")
    for g in groups:
        want = _finite_values("tau_x_neutral_ns", g)
        dots = _lines(ax, f"particles:tau_x_neutral_ns:{g}")
        got = np.sort(dots[0].get_ydata()) if dots else np.zeros(0)
        np.testing.assert_array_equal(got, np.sort(want))  # NaN and failed never drawn
        # the count under the strip is over particles with a value (not all particles)
        (n,) = [t for t in ax.texts if t.get_gid() == f"n:tau_x_neutral_ns:{g}"]
        assert n.get_text() == str(want.size)
        mean = _lines(ax, f"mean:tau_x_neutral_ns:{g}")
        m, sem, k = bf._stat(tables, g, "tau_x_neutral_ns")
        if k:  # the group mean of /groups
            assert mean[0].get_ydata()[0] == m
        else:
            assert not mean
    ta = _axis(fig, "tau_a")
    assert ta.get_yscale() == "log"  # 1-2 ns next to tens of ns
    (dots,) = _lines(ta, "particles:tau_a_xx_charged_ns:doped")
    np.testing.assert_array_equal(np.sort(dots.get_ydata()), [1.5, 1.7, 1.9])


def test_write_batch_figures_writes_readable_pngs(results, tmp_path):
    paths = bf.write_batch_figures(results, tmp_path, which=("group_summary", "g2_histograms"),
                                   dpi=60)
    assert list(paths) == ["group_summary", "g2_histograms"]
    for p in paths.values():
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0  # drawn, not blank
    assert sorted(x.name for x in tmp_path.iterdir()) == ["batch_g2_histograms.png",
                                                         "batch_group_summary.png"]
    with pytest.raises(QrspecError, match=r"which=\['fig9'\]: unknown batch figures"):
        bf.write_batch_figures(results, tmp_path, which=("fig9",))


def test_empty_results_file_says_no_data(tmp_path):
    from qrspec.store.hdf5 import merge_results

    empty = merge_results([], tmp_path / "empty.h5")
    for fn in (bf.group_summary_figure, bf.auger_charge_figure, bf.g2_histogram_figure,
               bf.population_figure):
        fig = fn(empty)
        assert any("no " in t.get_text() for ax in fig.axes for t in ax.texts)
