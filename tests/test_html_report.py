"""The static HTML report (qrspec.app.html_report): files, contents, reuse, atomicity, and the
site driven in a real headless Chromium (skipped when /usr/bin/chromium is absent)."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from report_population import write_population  # noqa: E402

from qrspec.app import html_report as hr  # noqa: E402
from qrspec.app.batch_tables import load_batch_tables, value_columns  # noqa: E402
from qrspec.app.exclude import read_exclusion_file, write_exclusion_file  # noqa: E402
from qrspec.errors import OutputError, QrspecError  # noqa: E402

FAILING = "doped_01"  # the stub figure fails for this particle


def stub_figure(results_path, particle_id, out_path):
    """A fast stand-in for the particle figure: a small PNG (fails for FAILING)."""
    from PIL import Image

    if particle_id == FAILING:
        raise RuntimeError("stub cannot draw this one")
    Image.new("RGB", (200, 240), (40, 120, 200)).save(out_path, "PNG")


def other_stub(results_path, particle_id, out_path):
    stub_figure(results_path, particle_id, out_path)


SMALL_MAP = {"mean_nc_grid": [0.0, 8.0], "tau_a_xx_grid_ns": [1.0, 10.0], "n_steps": 20}
FAST = {"threshold_kw": SMALL_MAP, "dpi": 40}  # small batch figures: fast tests


@pytest.fixture
def no_batch_figures(monkeypatch):
    """For tests of the site logic only: a stand-in for the batch figures (seconds per
    build) that writes one small PNG; returns the list of its calls."""
    calls = []

    def fake(tables, fig_dir, dpi, threshold_kw):
        from PIL import Image

        calls.append(tables.summary.size)
        Image.new("RGB", (20, 20)).save(Path(fig_dir) / "batch_group_summary.png")
        return {"group_summary": ""}

    monkeypatch.setattr(hr, "_render_batch", fake)
    return calls


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_population(tmp_path_factory.mktemp("pop"))


@pytest.fixture(scope="module")
def site(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "report"
    calls = []
    rep = hr.write_html_report(results, out, figure=stub_figure, **FAST,
                               progress=lambda item, status: calls.append((item, status)))
    return rep, calls


class _Rows(HTMLParser):
    """Rows of the particle table: data-id and the (data-v, text) of each cell."""

    def __init__(self):
        super().__init__()
        self.heads, self.rows = [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "th" and "data-col" in a:
            self.heads.append(a["data-col"])
        elif tag == "tr" and "data-id" in a:
            self.rows.append({"id": a["data-id"], "cells": []})
        elif tag == "td" and self.rows:
            self._cell = [a.get("data-v"), ""]
            self.rows[-1]["cells"].append(self._cell)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None


def _parse_index(rep):
    p = _Rows()
    p.feed(rep.index.read_text(encoding="utf-8"))
    return p


def _report_data(index: Path) -> dict:
    text = index.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)'
                                r"</script>", text).group(1))


# ---------------------------------------------------------------------------- files
def test_site_files_and_counts(site, results):
    rep, calls = site
    out = rep.outdir
    tables = load_batch_tables(results)
    assert (rep.n_particles, rep.n_drawn, rep.n_failed, rep.n_reused) == (11, 10, 1, 0)
    assert sorted(p.name for p in out.iterdir()) == ["assets", "fig", "group", "groups.html",
                                                     "index.html", "manifest.json",
                                                     "particle"]
    assert sorted(p.stem for p in (out / "particle").iterdir()) == sorted(tables.particle_ids)
    assert sorted(p.stem for p in (out / "group").iterdir()) == ["doped", "empty", "neutral",
                                                                 "undoped"]
    assert sorted(p.name for p in (out / "assets").iterdir()) == ["report.css", "report.js"]
    figs = {p.name for p in (out / "fig").iterdir()}
    assert {f"batch_{n}.png" for n in ("group_summary", "auger_charge", "g2_histograms",
                                       "threshold_map")} <= figs
    assert f"particle_{FAILING}.png" not in figs and f"thumb_{FAILING}.png" not in figs
    from PIL import Image

    with Image.open(out / "fig" / "thumb_doped_00.png") as im:
        assert im.size == (360, 432)  # 200 x 240 scaled to 360 wide
    # progress: one call per particle and one for the batch figures
    assert sorted(c[0] for c in calls) == sorted(tables.particle_ids + ["batch figures"])
    assert dict(calls)[FAILING] == "failed" and dict(calls)["batch figures"] == "ok"
    # no leftovers beside the site
    assert [p.name for p in out.parent.iterdir()] == ["report"]


def test_index_table_holds_every_column_and_row(site, results):
    rep, _ = site
    tables = load_batch_tables(results)
    p = _parse_index(rep)
    assert [r["id"] for r in p.rows] == tables.particle_ids  # one row per particle
    shown = [c for c in p.heads if not c.startswith("_")]
    pairs = dict(value_columns(tables.summary.dtype.names))
    # every summary column is shown: values as columns, errors inside their value's cells
    assert set(shown) | {e for e in pairs.values() if e} == set(tables.summary.dtype.names)
    by_id = {r["id"]: dict(zip(p.heads, r["cells"], strict=True)) for r in p.rows}
    row = by_id["doped_00"]
    assert row["g2_zero_gated"][1] == "0.310 ± 0.040"  # two significant digits of the error
    assert float(row["g2_zero_gated"][0]) == 0.31  # full precision for sorting
    assert row["n_c_mean"][1] == "6.0 ± 1.0"
    assert row["tau_a_xx_neutral_ns"][1] == "12.0"  # no stored error
    # undefined: blank sort key and a dash, never 0 or "nan"
    empty = by_id["empty_01"]
    for col in ("rate_cps", "g2_zero", "n_c_mean", "tau_x_neutral_ns"):
        assert empty[col] == ["", "—"], col
    assert by_id["undoped_01"]["n_c_mean"][1] == "10.0"  # NaN error: value alone
    assert by_id["undoped_03"]["status"][1] == "failed"
    assert by_id["doped_02"]["error"][1] == "charging window 0: tau_ratio_below_2"
    assert by_id["neutral_00"]["single_emitter"] == ["1", "yes"]
    # text columns other than the first four sort and filter as text, after the numbers
    assert by_id["neutral_00"]["neutral_reference_source"][1] == "own"
    assert 'data-col="neutral_reference_source" data-type="text"' in \
        rep.index.read_text(encoding="utf-8")
    assert p.heads.index("neutral_reference_source") > p.heads.index("n_change_points")


def test_text_is_escaped(site):
    rep, _ = site
    text = rep.index.read_text(encoding="utf-8")
    assert "truncated &lt;file&gt; &amp; such" in text
    assert "<file>" not in text
    page = (rep.outdir / "particle" / "undoped_03.html").read_text(encoding="utf-8")
    assert "<li>read error: truncated &lt;file&gt; &amp; such</li>" in page


def test_particle_and_group_pages(site, results):
    rep, _ = site
    page = (rep.outdir / "particle" / "doped_00.html").read_text(encoding="utf-8")
    assert 'src="../fig/particle_doped_00.png"' in page
    assert 'rel="next">doped_01 →' in page and 'rel="prev"' not in page
    assert "<td>ns</td><td>standard error" not in page  # error columns merged into values
    assert re.search(r"<th>n_c_mean</th><td class=\"num\">6.0 ± 1.0</td>", page)
    failed_fig = (rep.outdir / "particle" / f"{FAILING}.html").read_text(encoding="utf-8")
    assert "figure not drawn: RuntimeError: stub cannot draw this one" in failed_fig
    groups = (rep.outdir / "groups.html").read_text(encoding="utf-8")
    for name in ("group_summary", "auger_charge", "g2_histograms", "threshold_map"):
        assert f'src="fig/batch_{name}.png"' in groups
    g = {str(r["group"]): r for r in load_batch_tables(results).groups}
    # the stored group statistics, formatted: doped n_c 6.00 +- 0.58 (n = 3)
    sem = g["doped"]["n_c_mean_sem"]
    assert f"{hr._fmt(6.0, sem)}<br><span class=\"meta\">median 6.00, n = 3" in groups
    grp = (rep.outdir / "group" / "undoped.html").read_text(encoding="utf-8")
    assert grp.count('<a href="../particle/') == 4


def test_reuse_redraws_only_what_changed(results, tmp_path, no_batch_figures):
    out = tmp_path / "r"
    batch_calls = no_batch_figures
    first = hr.write_html_report(results, out, figure=stub_figure, **FAST)
    assert first.n_drawn == 10 and len(batch_calls) == 1
    again = hr.write_html_report(results, out, figure=stub_figure, **FAST)
    # the failed figure is tried again; the others come from the previous report
    assert (again.n_reused, again.n_drawn, again.n_failed) == (10, 0, 1)
    assert len(batch_calls) == 1  # batch figures reused too
    assert (out / "fig" / "thumb_doped_00.png").is_file()
    assert (out / "fig" / "batch_group_summary.png").is_file()
    other = hr.write_html_report(results, out, figure=other_stub, **FAST)
    assert (other.n_reused, other.n_drawn) == (0, 10)  # another figure function: redraw
    assert len(batch_calls) == 1  # ... but the batch figures do not depend on it
    excl = {"format": "qrspec-exclude", "version": 1, "particles": ["doped_00"]}
    hr.write_html_report(results, out, figure=other_stub, exclude=excl, **FAST)
    assert batch_calls == [11, 10]  # other exclusions: batch figures redrawn without it
    fresh = hr.write_html_report(results, out, figure=stub_figure, reuse=False,
                                 **FAST)
    assert fresh.n_reused == 0 and len(batch_calls) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_pool_draws_the_same_site(results, tmp_path):
    rep = hr.write_html_report(results, tmp_path / "pool", figure=stub_figure, jobs=2,
                               **FAST)
    assert (rep.n_drawn, rep.n_failed) == (10, 1)
    assert (tmp_path / "pool" / "fig" / "batch_threshold_map.png").is_file()


def test_simulate_analyse_report_end_to_end(tmp_path):
    """The default figure (qrspec.app.plots) on a real batch: 3 simulated rods of 2 s."""
    from qrspec.app.batch import run_batch
    from qrspec.app.demo import simulate_demo_population

    simulate_demo_population(tmp_path / "data", n_per_group=1, duration_s=2.0)
    batch = run_batch([tmp_path / "data"], tmp_path / "results.h5", jobs=1)
    rep = hr.write_html_report(batch.output, tmp_path / "site", dpi=30,
                               threshold_kw=SMALL_MAP)
    assert (rep.n_particles, rep.n_drawn, rep.n_failed) == (3, 3, 0)
    from matplotlib import image as mpimg

    pid = load_batch_tables(batch.output).particle_ids[0]
    img = mpimg.imread(tmp_path / "site" / "fig" / f"particle_{pid}.png")
    assert img.shape[1] == round(7.2 * 30)  # the particle figure's width at 30 dpi


def test_exclusion_list_recomputes_group_statistics(results, tmp_path):
    excl = write_exclusion_file(tmp_path / "x.json", ["doped_02"], {"doped_02": "bad fit"})
    rep = hr.write_html_report(results, tmp_path / "s", figure=stub_figure, exclude=excl,
                               **FAST)
    assert rep.n_excluded == 1
    groups = (tmp_path / "s" / "groups.html").read_text(encoding="utf-8")
    assert "leave out 1 excluded particles (x.json)" in groups
    # doped without doped_02: n_c 6 and 7 -> 6.50 +- 0.50, n = 2
    assert "6.50 ± 0.50<br><span class=\"meta\">median 6.50, n = 2" in groups
    cfg = _report_data(rep.index)
    assert cfg["initial_exclude"] == {"particles": ["doped_02"],
                                      "reason": {"doped_02": "bad fit"}}
    # the browser's storage key: same file and list -> same key (unsaved ticks survive a
    # rebuild); another starting list -> another key
    plain = hr.write_html_report(results, tmp_path / "p", figure=stub_figure, **FAST)
    again = hr.write_html_report(results, tmp_path / "p", figure=stub_figure, **FAST)
    assert _report_data(plain.index)["report_id"] == _report_data(again.index)["report_id"]
    assert _report_data(plain.index)["report_id"] != cfg["report_id"]
    bad = write_exclusion_file(tmp_path / "bad.json", ["rod_9"])
    with pytest.raises(QrspecError, match=r"bad.json: 1 particle ids are not in"):
        hr.write_html_report(results, tmp_path / "s2", figure=stub_figure, exclude=bad)
    assert not (tmp_path / "s2").exists()


def test_refuses_a_folder_that_is_not_a_report(results, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(QrspecError, match=r"outdir='.*mine' exists, is not empty and is not a "
                                          r"qrspec HTML report \(no manifest.json\)"):
        hr.write_html_report(results, tmp_path / "mine", figure=stub_figure)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(QrspecError, match=r"outdir='.*afile' exists and is not a folder"):
        hr.write_html_report(results, tmp_path / "afile", figure=stub_figure)


@pytest.mark.parametrize("kw, match", [
    ({"jobs": 0}, r"jobs=0 must be an integer >= 1"),
    ({"thumb_px": 5}, r"thumb_px=5 must be an integer in \[16, 2000\]"),
    ({"dpi": 5}, r"dpi=5 must be an integer in \[10, 2400\]"),
    ({"figure": 3}, r"figure=3 must be a callable figure\(results_path, particle_id, "
                    r"out_png\)"),
])
def test_bad_options(results, tmp_path, kw, match):
    with pytest.raises(QrspecError, match=match):
        hr.write_html_report(results, tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


def test_a_failure_while_writing_leaves_the_old_report(results, tmp_path, monkeypatch,
                                                      no_batch_figures):
    out = tmp_path / "r"
    hr.write_html_report(results, out, figure=stub_figure, **FAST)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hr, "_particle_page", boom)
    with pytest.raises(OutputError, match=r"/r: cannot write: No space left on device"):
        hr.write_html_report(results, out, figure=stub_figure, **FAST)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no .partial folder left


def test_build_folders_of_dead_writers_are_removed(results, tmp_path, no_batch_figures):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".r.{dead}.partial"
    (stale / "fig").mkdir(parents=True)
    mine = tmp_path / ".r.notapid.partial"  # not a build folder name: left alone
    mine.mkdir()
    hr.write_html_report(results, tmp_path / "r", figure=stub_figure, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.notapid.partial", "r"]


def test_hostile_ids_get_safe_file_names():
    assert hr._file_id("rod_01") == "rod_01"
    bad = hr._file_id("../../etc/passwd")
    assert "/" not in bad and not bad.startswith(".") and bad != hr._file_id("../etc/passwd")
    assert hr._file_id("a b") != hr._file_id("a_b")  # no collision with an existing id


# ---------------------------------------------------------------------------- browser
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="Chromium not installed (apt-get install chromium)")


@pytest.fixture
def browser(tmp_path):
    """A new headless Chromium per test: its own, empty profile, so no browser state (the
    exclusion ticks kept in localStorage) leaks from one test into the next."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed")
    from cdp_browser import Browser

    with Browser(download_dir=tmp_path / "downloads") as b:
        yield b


def _expected_order(tables, col, descending):
    v = np.asarray(tables.summary[col], float)
    ids = tables.particle_ids
    fin = [i for i in range(len(ids)) if math.isfinite(v[i])]
    fin.sort(key=lambda i: (-v[i] if descending else v[i], i))  # stable, like the page
    return [ids[i] for i in fin] + [ids[i] for i in range(len(ids)) if not math.isfinite(v[i])]


@needs_chromium
def test_browser_table_sort_filter_and_exclusion(site, results, browser):
    rep, _ = site
    tables = load_batch_tables(results)
    browser.open(rep.index.as_uri())
    assert browser.errors == []  # no JavaScript error, no missing file
    assert browser.requests and all(u.startswith("file:") for u in browser.requests)  # offline
    # a fresh profile: no exclusion ticks from another test
    assert browser.js("window.qrspecReport.exclusionDocument().particles") == []
    assert browser.js("document.querySelectorAll('#particles tbody tr').length") == 11
    assert browser.js("window.qrspecReport.visibleIds()") == tables.particle_ids

    # sorting a numeric column: ascending, then descending; NaN rows last both times
    for descending in (False, True):
        browser.js("document.querySelector('th[data-col=g2_zero_gated]').click()")
        got = browser.js("window.qrspecReport.visibleIds()")
        assert got == _expected_order(tables, "g2_zero_gated", descending)
        assert browser.js("document.querySelector('th[data-col=g2_zero_gated]')"
                          ".getAttribute('aria-sort')") == ("descending" if descending
                                                            else "ascending")
    browser.js("document.querySelector('th[data-col=particle_id]').click()")
    assert browser.js("window.qrspecReport.visibleIds()") == sorted(tables.particle_ids)

    # filtering: a column comparison, a word, the group and status menus
    def filt(text="", group="", status=""):
        return browser.js(f"""(() => {{
            const f = document.getElementById('filter'); f.value = {json.dumps(text)};
            f.dispatchEvent(new Event('input'));
            const g = document.getElementById('group-filter'); g.value = {json.dumps(group)};
            g.dispatchEvent(new Event('change'));
            const s = document.getElementById('status-filter'); s.value = {json.dumps(status)};
            s.dispatchEvent(new Event('change'));
            return window.qrspecReport.visibleIds(); }})()""")

    v = np.asarray(tables.summary["g2_zero_gated"], float)
    want = sorted(pid for pid, x in zip(tables.particle_ids, v, strict=True) if x < 0.5)
    assert filt("g2_zero_gated<0.5") == want
    nc = np.asarray(tables.summary["n_c_mean"], float)
    want = sorted(pid for pid, x, n in zip(tables.particle_ids, v, nc, strict=True)
                  if x < 0.5 and n >= 7)
    assert want == ["doped_01", "undoped_00", "undoped_01"]  # NaN n_c never passes
    assert filt("n_c_mean>=7 g2_zero_gated<0.5") == want
    assert filt("tau_ratio") == ["doped_02"]  # a word in the flags
    assert filt(group="neutral") == ["neutral_00", "neutral_01"]
    assert filt(status="failed") == ["empty_00", "undoped_03"]
    assert browser.js("document.getElementById('count').textContent") == "showing 2 of 11"
    assert filt() == sorted(tables.particle_ids)

    # exclusion: tick two rows, give one a reason, save: the download is a valid list
    browser.js("""(() => {
        for (const id of ['undoped_01', 'doped_00']) {
          document.querySelector(`tr[data-id="${id}"] input.exclude`).click(); }
        const r = document.querySelector('tr[data-id="doped_00"] input.reason');
        r.value = 'two emitters'; r.dispatchEvent(new Event('input'));
        document.getElementById('save-exclude').click(); })()""")
    ev = browser.wait_download()
    saved = read_exclusion_file(ev["params"]["filePath"])
    assert saved.particles == ("doped_00", "undoped_01")  # table order
    assert saved.reason == {"doped_00": "two emitters"}
    assert saved.extra["results"] == "results.h5"
    assert browser.js("document.getElementById('n-excluded').textContent") == "2"
    # the page can show only the excluded ones
    assert browser.js("""(() => { const e = document.getElementById('excluded-filter');
        e.value = 'only'; e.dispatchEvent(new Event('change'));
        return window.qrspecReport.visibleIds(); })()""") == ["doped_00", "undoped_01"]

    # the ticks survive a reload and show on the particle page
    browser.open(rep.index.as_uri())
    assert browser.js("document.getElementById('n-excluded').textContent") == "2"
    browser.open((rep.outdir / "particle" / "doped_00.html").as_uri())
    assert browser.js("document.getElementById('exclude-this').checked") is True
    assert browser.errors == []


@pytest.fixture(scope="module")
def site_with_list(results, tmp_path_factory):
    """A site built with a starting exclusion list: its own storage key (the key covers the
    results file and the starting list), so it never sees another test's ticks."""
    out = tmp_path_factory.mktemp("site2") / "report"
    return hr.write_html_report(results, out, figure=stub_figure, exclude={
        "format": "qrspec-exclude", "version": 1, "particles": ["empty_01"]}, **FAST)


@needs_chromium
def test_browser_loads_an_exclusion_file_and_every_page_is_clean(site, site_with_list,
                                                                  browser, tmp_path):
    rep = site_with_list
    assert _report_data(rep.index)["report_id"] != _report_data(site[0].index)["report_id"]
    excl = write_exclusion_file(tmp_path / "load.json", ["neutral_01", "empty_00"])
    browser.open(rep.index.as_uri())
    # the starting list only: nothing left over from another test or build
    assert browser.js("window.qrspecReport.exclusionDocument().particles") == ["empty_01"]
    doc = browser.call("DOM.getDocument", session=True)
    node = browser.call("DOM.querySelector", session=True, nodeId=doc["root"]["nodeId"],
                        selector="#load-exclude")["nodeId"]
    browser.call("DOM.setFileInputFiles", session=True, nodeId=node, files=[str(excl)])
    # wait for the loaded list itself (a count alone can be met by earlier ticks)
    browser.wait_until("JSON.stringify(window.qrspecReport.exclusionDocument().particles) === "
                       "JSON.stringify(['neutral_01', 'empty_00'])", "the loaded exclusion list")
    assert browser.js("document.getElementById('n-excluded').textContent") == "2"
    for page in ["groups.html", "group/undoped.html", "group/empty.html",
                 f"particle/{FAILING}.html", "particle/empty_01.html"]:
        browser.open((rep.outdir / page).as_uri())
        assert browser.errors == [], page
        assert all(u.startswith("file:") for u in browser.requests), page


# ---------------------------------------------------------------------------- CLI
def test_cli_report_html_and_exclude(results, tmp_path, no_batch_figures, monkeypatch):
    from click.testing import CliRunner

    from qrspec.cli.report import report

    # the default particle figure on a file without particle data fails per particle and
    # is reported on its page; here a stand-in keeps the test fast
    monkeypatch.setattr(hr, "default_particle_figure",
                        lambda results_path, pid, out, *, dpi: stub_figure(results_path, pid,
                                                                           out))
    excl = write_exclusion_file(tmp_path / "x.json", ["doped_02"])
    # -j 1: the stand-ins live in this process only (the default, -j 2 on 2+ cores, would
    # send them to pool workers, which cannot pickle them and would not see the patch)
    r = CliRunner().invoke(report, [str(results), "--html", str(tmp_path / "site"),
                                    "--exclude", str(excl), "-j", "1"])
    assert r.exit_code == 0, r.output
    assert str(tmp_path / "site" / "index.html") in r.output.splitlines()
    assert "HTML report of 11 particles" in r.output and "1 excluded" in r.output
    assert "(10 figures drawn, 0 reused, 1 failed;" in r.output
    assert no_batch_figures == [10]  # batch figures without the excluded particle
    assert _report_data(tmp_path / "site" / "index.html")["initial_exclude"]["particles"] \
        == ["doped_02"]


def test_cli_report_usage_and_bad_exclusion(results, tmp_path):
    from click.testing import CliRunner

    from qrspec.cli.report import report

    r = CliRunner().invoke(report, [str(results)])
    assert r.exit_code == 2 and "give -o/--output-dir, --html or both" in r.output
    r = CliRunner().invoke(report, [str(results), "--html", str(tmp_path / "s"),
                                    "--particles", "doped_00"])
    assert r.exit_code == 2 and "--particles applies to -o/--output-dir only" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    r = CliRunner().invoke(report, [str(results), "--html", str(tmp_path / "s"),
                                    "--exclude", str(bad)])
    assert r.exit_code == 1 and "bad.json: format='other', expected 'qrspec-exclude'" in r.output
    assert not (tmp_path / "s").exists()
