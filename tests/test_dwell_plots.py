"""Tests of the dwell-time figure (qrspec.app.dwell_plots) and its data (dwell_curve)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from qrspec.errors import QrspecError
from qrspec.levels.dwell import blinking_statistics, dwell_curve, kaplan_meier
from qrspec.levels.segments import Segments


def renewal(rng, n, alpha, t0=0.02):
    d = t0 * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))
    b_s = np.concatenate([[0.0], np.cumsum(d)])
    b_i = np.concatenate([[0], np.cumsum(np.round(d * np.tile([5e4, 500.0], n)[:n]))])
    labels = np.tile(["neutral", "off"], n)[:n]
    return Segments.from_boundaries(b_s, b_i, level=(labels == "neutral").astype(int),
                                    label=labels)


def test_kaplan_meier_without_and_with_censoring():
    t, s = kaplan_meier([1.0, 2.0, 2.0, 4.0])
    assert_allclose(t, [1.0, 2.0, 4.0])
    assert_allclose(s, [1.0, 0.75, 0.25])  # P(T >= t): the ECDF complement, ties grouped
    t, s = kaplan_meier([1.0, 3.0], [2.0])  # one survivor at 2: at risk 3, then 1
    assert_allclose(s, [1.0, 2.0 / 3.0])
    assert kaplan_meier([])[0].size == 0


def test_dwell_curve_scales_the_laws_to_the_tail(rng):
    st = blinking_statistics(renewal(rng, 400, 1.6))
    cur = dwell_curve(st, "on")
    assert cur.models[0] == "power_law" and cur.model_t_s[0] == pytest.approx(cur.t_min_s)
    i = int(np.searchsorted(cur.t_s, cur.t_min_s))
    assert cur.model_survival[0, 0] == pytest.approx(cur.survival[i])
    assert np.all(np.diff(cur.model_survival[0]) <= 0)
    with pytest.raises(QrspecError, match=r"state='grey' must be 'on' or 'off'"):
        dwell_curve(st, "grey")


def test_figure_written_as_png_and_pdf(tmp_path, rng):
    pytest.importorskip("matplotlib")
    from qrspec.app.dwell_plots import dwell_figure, plot_dwell

    st = blinking_statistics(renewal(rng, 300, 1.7))
    for name in ("d.png", "d.pdf"):
        out = plot_dwell(st, tmp_path / name, dpi=60, title="p1")
        assert out.stat().st_size > 1000
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.pdf", "d.png"]  # no temp files
    few = Segments.from_boundaries([0.0, 1.0, 2.0], [0, 100, 101], level=[1, 0],
                                   label=["neutral", "off"])
    fig = dwell_figure(blinking_statistics(few))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no complete on stays" in t for t in texts)  # the panel says why
    with pytest.raises(ValueError, match=r"must end in .png or .pdf"):
        plot_dwell(st, tmp_path / "d.svg")
