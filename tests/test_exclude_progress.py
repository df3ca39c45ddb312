"""Exclusion lists (qrspec.app.exclude) and progress output (qrspec.app.progress)."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from report_population import write_population

from qrspec.app import exclude as ex
from qrspec.app.batch_tables import load_batch_tables
from qrspec.app.progress import ProgressBar, format_group_table, progress_enabled
from qrspec.errors import QrspecError


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_population(tmp_path_factory.mktemp("pop"))


def _write(tmp_path, obj, name="x.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return p


DOC = {"format": "qrspec-exclude", "version": 1, "particles": ["doped_02", "undoped_00"],
       "reason": {"doped_02": "two emitters"}}


# ---------------------------------------------------------------------------- file format
def test_exclusion_file_round_trip(tmp_path):
    p = ex.write_exclusion_file(tmp_path / "excl.json", ["a", "b"], {"a": "blinks"},
                                results="r.h5")
    got = ex.read_exclusion_file(p)
    assert got.particles == ("a", "b")
    assert got.reason == {"a": "blinks"}
    assert got.extra == {"results": "r.h5"}
    assert got.source == str(p)
    assert json.loads(p.read_text())["format"] == "qrspec-exclude"
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("change, match", [
    ({"format": "qrspec-results"}, r"format='qrspec-results', expected 'qrspec-exclude'"),
    ({"version": 2}, r"version=2 is not supported \(this qrspec reads version 1\)"),
    ({"version": True}, r"version=True is not supported"),
    ({"version": "1"}, r"version='1' is not supported"),
    ({"particles": "doped_02"}, r"particles='doped_02' must be a list of particle ids"),
    ({"particles": ["a", 3]}, r"particles holds 1 entries that are not non-empty strings "
                              r"\(first: 3\)"),
    ({"particles": ["a", " "]}, r"particles holds 1 entries that are not non-empty strings "
                                r"\(first: ' '\)"),
    ({"reason": ["x"]}, r"reason=\['x'\] must be an object"),
    ({"reason": {"doped_02": 5}}, r"reason\['doped_02'\]=5 must be a string"),
    ({"reason": {"other": "x"}}, r"reason names particles that are not in particles: "
                                 r"\['other'\]"),
])
def test_bad_exclusion_documents_are_named(tmp_path, change, match):
    p = _write(tmp_path, {**DOC, **change})
    with pytest.raises(QrspecError, match=rf"^{p}: {match}"):
        ex.read_exclusion_file(p)


def test_bad_exclusion_files(tmp_path, monkeypatch):
    with pytest.raises(QrspecError, match=r"missing.json: cannot read the exclusion file "
                                          r"\(No such file or directory\)"):
        ex.read_exclusion_file(tmp_path / "missing.json")
    p = _write(tmp_path, '{"format": ')
    with pytest.raises(QrspecError, match=r"x.json: not valid JSON \(Expecting value at line 1"):
        ex.read_exclusion_file(p)
    p = tmp_path / "bin.json"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(QrspecError, match=r"bin.json: not UTF-8 text"):
        ex.read_exclusion_file(p)
    p = _write(tmp_path, "[1, 2]", "list.json")
    with pytest.raises(QrspecError, match=r"list.json: must be a JSON object, got list"):
        ex.read_exclusion_file(p)
    monkeypatch.setattr(ex, "MAX_BYTES", 10)
    p = _write(tmp_path, DOC, "big.json")
    with pytest.raises(QrspecError, match=r"big.json: \d+ bytes is too large for an exclusion "
                                          r"list \(limit 10\)"):
        ex.read_exclusion_file(p)
    with pytest.raises(QrspecError, match=r"exclusion=3 must be an ExclusionList, a path or "
                                          "a dict"):
        ex.apply_exclusion(tmp_path / "none.h5", 3)


def test_duplicates_are_dropped_with_a_warning(tmp_path, caplog):
    p = _write(tmp_path, {**DOC, "particles": ["a", "b", "a"], "reason": {}})
    with caplog.at_level(logging.WARNING, logger="qrspec.app.exclude"):
        got = ex.read_exclusion_file(p)
    assert got.particles == ("a", "b")
    assert "1 duplicate particle ids ignored" in caplog.text


def test_exclusion_json_refuses_what_it_could_not_read():
    with pytest.raises(QrspecError, match=r"particles holds 1 entries"):
        ex.exclusion_json(["ok", ""])


# ---------------------------------------------------------------------------- statistics
def test_group_statistics_without_excluded_particles(results):
    res = ex.apply_exclusion(results, DOC)
    assert res.excluded == ("doped_02", "undoped_00") and res.unknown == ()
    assert "doped_02" not in set(res.summary["particle_id"])
    g = {str(r["group"]): r for r in res.groups}
    # doped without doped_02: n_c 6 and 7 -> mean 6.5, SEM = std(ddof=1)/sqrt(2) = 0.5
    assert g["doped"]["n_particles"] == 2 and g["doped"]["n_c_mean_n"] == 2
    assert g["doped"]["n_c_mean_mean"] == pytest.approx(6.5, rel=1e-15)
    assert g["doped"]["n_c_mean_sem"] == pytest.approx(0.5, rel=1e-12)
    # undoped without undoped_00: only undoped_01 has n_c -> SEM undefined (NaN), not 0
    assert g["undoped"]["n_c_mean_n"] == 1 and g["undoped"]["n_c_mean_mean"] == 10.0
    assert np.isnan(g["undoped"]["n_c_mean_sem"])
    # untouched groups are as in the file
    before = {str(r["group"]): r for r in load_batch_tables(results).groups}
    assert g["neutral"]["rate_cps_mean"] == before["neutral"]["rate_cps_mean"]


def test_unknown_ids_are_an_error_unless_allowed(results, tmp_path):
    p = _write(tmp_path, {**DOC, "particles": ["doped_00", "rod_99"], "reason": {}})
    with pytest.raises(QrspecError, match=rf"{p}: 1 particle ids are not in .*results.h5: "
                                          r"\['rod_99'\]"):
        ex.apply_exclusion(results, p)
    res = ex.apply_exclusion(results, p, allow_unknown=True)
    assert res.unknown == ("rod_99",) and res.excluded == ("doped_00",)


def test_excluding_a_whole_group_drops_it(results):
    tables = ex.exclude_from_tables(load_batch_tables(results),
                                    {**DOC, "particles": ["empty_00", "empty_01"],
                                     "reason": {}})
    assert "empty" not in set(tables.groups["group"])
    assert tables.summary.size == load_batch_tables(results).summary.size - 2


# ---------------------------------------------------------------------------- progress
class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_only_when_enabled():
    out = _Tty()
    with ProgressBar(3, "particles", stream=out, min_interval_s=0.0) as bar:
        assert bar.enabled  # a terminal: on by default
        bar("rod_0", "ok")
        bar("rod_1", "failed")
        bar("rod_2", "ok")
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    last = text.split("\r")[-1]
    assert "[" + "#" * 28 + "] 3/3" in last and "1 failed" in last and "left" not in last
    pipe = io.StringIO()  # not a terminal: nothing drawn, still counted
    bar = ProgressBar(2, stream=pipe)
    bar("a")
    bar("b", "failed")
    bar.close()
    assert pipe.getvalue() == "" and (bar.done, bar.failed) == (2, 1)


def test_progress_enabled_rules():
    assert progress_enabled(stream=_Tty())
    assert not progress_enabled(quiet=True, stream=_Tty())
    assert not progress_enabled(no_progress=True, stream=_Tty())
    assert not progress_enabled(stream=io.StringIO())
    with pytest.raises(QrspecError, match=r"total=-1 must be an integer >= 0"):
        ProgressBar(-1)


def test_group_table_counts_and_medians(results):
    text = format_group_table(load_batch_tables(results))
    lines = text.splitlines()
    assert lines[0].split() == ["group", "n", "ok", "failed", "g2(0)", "gated", "tau_X0",
                                "[ns]", "n_c"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:-1]}
    # undoped: 4 particles, 3 ok, 1 failed; gated g2 of 0.45, 0.39, 0.61 -> median 0.45 (3);
    # tau_X0 10.5 and 11.0 -> 10.75 shown to 3 digits (2); n_c 14 and 10 -> 12 (2)
    assert rows["undoped"] == ["4", "3", "1", "0.45", "(3)", "10.8", "(2)", "12", "(2)"]
    assert rows["empty"] == ["2", "1", "1", "-", "(0)", "-", "(0)", "-", "(0)"]
    assert rows["neutral"][-2:] == ["-", "(0)"]
    assert lines[-1].startswith("medians over ok particles")


def test_store_selection_records_and_recomputes_exclusions(results, tmp_path):
    """The store's GroupSelection leaves excluded ids out of /groups (they stay in /summary),
    records the list, and Results.excluded reads it back; a damaged record is an error."""
    import shutil

    import h5py

    from qrspec.store.hdf5 import GroupSelection, read_results, recompute_groups

    sel = GroupSelection(exclude=("doped_02",), exclude_reason=(("doped_02", "two"),),
                         exclude_source="x.json")
    table = recompute_groups(results, sel)
    doped = table[table["group"] == "doped"][0]
    assert (doped["n_ok"], doped["n_selected"]) == (3, 2)
    assert doped["n_c_mean_mean"] == 6.5  # doped_00 6.0 and doped_01 7.0
    assert sel.exclusion_record() == {"particles": ["doped_02"], "reason": {"doped_02": "two"},
                                      "source": "x.json"}
    copy = tmp_path / "r.h5"
    shutil.copy(results, copy)
    assert read_results(copy).excluded == ()
    with h5py.File(copy, "a") as f:
        f.attrs["exclude"] = json.dumps(sel.exclusion_record())
    assert read_results(copy).excluded == ("doped_02",)
    with h5py.File(copy, "a") as f:
        f.attrs["exclude"] = "{not json"
    with pytest.raises(QrspecError, match=r"r\.h5: attribute exclude='\{not json' is not the "
                                          r"JSON record of an exclusion list"):
        _ = read_results(copy).excluded
    with h5py.File(copy, "a") as f:
        f.attrs["exclude"] = json.dumps({"particles": [1, 2]})
    with pytest.raises(QrspecError, match=r"attribute exclude has no list of particle ids"):
        _ = read_results(copy).excluded


def test_group_table_of_a_selection_says_so(results):
    """The table shows the stored statistics: with exclusions a "used" column and a note."""
    import dataclasses

    from qrspec.store.hdf5 import GroupSelection, recompute_groups

    tables = load_batch_tables(results)
    groups = recompute_groups(results, GroupSelection(exclude=("doped_02",)))
    text = format_group_table(dataclasses.replace(
        tables, groups=groups, attrs={**tables.attrs, "exclude": json.dumps(
            {"particles": ["doped_02"]})}))
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["group", "n", "ok", "failed", "used"]
    assert {ln.split()[0]: ln.split()[4] for ln in lines[1:-1]}["doped"] == "2"
    assert lines[-1].endswith("; 1 particles excluded")
