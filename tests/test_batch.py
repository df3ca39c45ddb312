"""Batch runner, resume, failures, HDF5 round trip and the analyze/batch CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from qrspec.app.batch import collect_inputs, run_batch, sanitize_id
from qrspec.cli import main
from qrspec.errors import QrspecError
from qrspec.store.hdf5 import read_results

COMPARE = [n for n in ("particle_id", "group", "status", "n_photons", "g2_zero",
                       "g2_zero_gated", "tau_x_neutral_ns", "tau_xx_neutral_ns", "n_c_mean",
                       "n_levels")]


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """Four short simulated particles in two group folders, plus a corrupt and a truncated
    file among them."""
    from qrspec.simulate import preset, simulate_particle
    from qrspec.simulate.sidecar import write_particle

    root = tmp_path_factory.mktemp("pop")
    for g, name in (("undoped", "undoped"), ("neutral", "neutral")):
        (root / g).mkdir()
        for i in range(2):
            sim = simulate_particle(preset(name, duration_s=4.0), seed=11 + i)
            write_particle(sim, root / g / f"p{i}.ptu", sidecar=False)
    good = (root / "neutral" / "p0.ptu").read_bytes()
    (root / "neutral" / "corrupt.ptu").write_bytes(b"garbage!" * 100)
    (root / "neutral" / "truncated.ptu").write_bytes(good[:300])
    return root


def _rows(path):
    s = read_results(path).summary
    return {r["particle_id"]: tuple(r[c] for c in COMPARE) for r in s}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        for x, y in zip(a[k], b[k], strict=True):
            if isinstance(x, float | np.floating):
                assert (np.isnan(x) and np.isnan(y)) or x == y, (k, x, y)
            else:
                assert x == y, (k, x, y)


def test_collect_inputs_ids_and_groups(population, tmp_path):
    items = collect_inputs([population])
    ids = [it.particle_id for it in items]
    assert len(ids) == len(set(ids)) == 6
    # p0/p1 exist in both folders: the second occurrence is disambiguated by its group
    assert {"p0", "p1", "undoped_p0", "undoped_p1"} <= set(ids)
    assert {it.group for it in items} == {"undoped", "neutral"}
    assert sanitize_id("a b/../c:d") == "a_b_.._c_d"
    with pytest.raises(QrspecError, match=r"nope: no such file or folder"):
        collect_inputs([tmp_path / "nope"])
    with pytest.raises(ValueError, match=r"group_by='x' must be 'folder' or 'none'"):
        collect_inputs([population], group_by="x")


def test_batch_failures_recorded_and_resume_equals_uninterrupted(population, tmp_path):
    full = tmp_path / "full.h5"
    rep = run_batch([population], full, jobs=2)
    assert rep.n_particles == 6 and rep.n_ok == 4 and rep.n_failed == 2
    assert rep.exit_code == 3
    res = read_results(full)
    bad = {r["particle_id"]: r for r in res.summary if r["status"] == "failed"}
    assert set(bad) == {"corrupt", "truncated"}
    assert "not a PTU file" in bad["corrupt"]["error"]
    assert "header ends before the Header_End tag" in bad["truncated"]["error"]
    assert read_results(full).particle("truncated").traceback.startswith("Traceback")
    assert not (tmp_path / "full.h5.parts").exists()
    assert not list(tmp_path.glob("*.partial"))

    # interrupt after the first successful particle (as Ctrl-C would), then resume
    part = tmp_path / "part.h5"

    def stop_after_one(pid, status):
        if status == "ok":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch([population], part, jobs=1, progress=stop_after_one, checkpoint_s=0)
    assert part.exists()  # a valid results file with what was finished
    assert len(read_results(part).summary) >= 1
    with pytest.raises(QrspecError, match=r"exists; use --resume to finish it or --overwrite"):
        run_batch([population], part)
    rep2 = run_batch([population], part, jobs=2, resume=True)
    assert rep2.n_skipped >= 1 and rep2.n_particles == 6
    _same(_rows(full), _rows(part))
    # resuming a complete batch redoes nothing but the failed particles
    rep3 = run_batch([population], part, resume=True)
    assert rep3.n_skipped == 4
    _same(_rows(full), _rows(part))


def test_particle_that_cannot_be_written_becomes_a_failed_row(population, tmp_path,
                                                            monkeypatch):
    """Issue 13 item 1: a particle whose result cannot be stored (as the FLID attributes of
    real files could not) is that particle's failed row with the reason; the batch goes on."""
    import qrspec.app.batch as batch

    real = batch.write_particle_file

    def fails_for_p0(path, res, config_json=None):
        if res.particle_id == "p0" and res.status == "ok":
            raise RuntimeError("Unable to synchronously create attribute (object header "
                               "message is too large)")
        return real(path, res, config_json)

    # the pool forks its workers (Linux), which inherit the patch; the external-executor path
    # writes in this process
    monkeypatch.setattr(batch, "write_particle_file", fails_for_p0)
    from concurrent.futures import ThreadPoolExecutor

    for kw in ({"jobs": 1}, {"executor": ThreadPoolExecutor(1)}):
        out = tmp_path / f"r{len(kw)}{'e' if 'executor' in kw else 'p'}.h5"
        rep = run_batch([population / "neutral"], out, **kw)
        assert rep.exit_code == 3
        res = read_results(out)
        rows = {r["particle_id"]: r for r in res.summary}
        assert rows["p0"]["status"] == "failed"
        assert rows["p0"]["error"].startswith("cannot write results: RuntimeError: Unable to "
                                              "synchronously create attribute")
        assert rows["p1"]["status"] == "ok"  # the batch went on
        assert res.particle("p0").traceback.startswith("Traceback")


def test_resume_never_follows_a_path_particle_id(population, tmp_path):
    """Issue 16 item 3: an output whose particle_id is a path is not trusted on --resume;
    nothing is written outside the output folder."""
    import h5py

    out_dir = tmp_path / "deep" / "out"
    out_dir.mkdir(parents=True)
    out = out_dir / "r.h5"
    run_batch([population / "undoped"], out)
    with h5py.File(out, "a") as f:
        s = f["summary"][()]
        s["particle_id"][0] = b"../../evil"
        f["summary"][...] = s
    with pytest.raises(QrspecError, match=r"particle_id='\.\./\.\./evil' is not a valid"):
        read_results(out)
    before = out.read_bytes()
    # refused, not silently replaced: --resume rewrites the output, and a file it cannot
    # trust (or read: another format version) must not be lost by resuming into it
    with pytest.raises(QrspecError, match=r"r\.h5: particle_id='\.\./\.\./evil' is not a "
                                          r"valid particle id"):
        run_batch([population / "undoped"], out, resume=True)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["r.h5"]
    rep = run_batch([population / "undoped"], out, overwrite=True)
    assert rep.n_ok == 2 and read_results(out).particle_ids == ["p0", "p1"]


def test_results_round_trip_datasets(population, tmp_path):
    out = tmp_path / "r.h5"
    run_batch([population / "undoped"], out, jobs=1)
    res = read_results(out)
    p = res.particle(res.particle_ids[0])
    counts = p.trajectory.counts
    assert counts.ndim == 2 and counts.shape[1] == 2
    assert int(counts.sum()) == int(res.summary["n_photons"][0])  # every photon in the trace
    assert p.g2.raw.counts.shape == p.g2.raw.lag_ns.shape
    assert p.alignment.counts.sum() == res.summary["n_photons"][0]
    assert p.status == "ok" and len(p.source_sha256) == 64
    assert res.config["detectors"] is None  # the user's config: the two with most photons
    assert set(res.groups["group"]) == {"undoped"}


def test_cli_analyze_and_batch(population, tmp_path):
    f = population / "neutral" / "p0.ptu"
    out = tmp_path / "one.h5"
    r = CliRunner().invoke(main, ["analyze", str(f), "-o", str(out), "--json",
                                  "--gate-after-rise-ns", "2.5"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["status"] == "ok" and row["gate_after_rise_ns"] == 2.5
    assert row["n_photons"] > 10000
    r = CliRunner().invoke(main, ["analyze", str(f), "-o", str(out)])
    assert r.exit_code == 1 and "exists; pass overwrite=True (CLI: --overwrite)" in r.output
    r = CliRunner().invoke(main, ["analyze", str(population / "neutral" / "corrupt.ptu"),
                                  "-o", str(tmp_path / "c.h5")])
    assert r.exit_code == 1 and "not a PTU file" in r.output
    assert not (tmp_path / "c.h5").exists()
    r = CliRunner().invoke(main, ["analyze", str(f), "-o", str(tmp_path / "x.h5"),
                                  "--bin-width-s", "-1"])
    assert r.exit_code == 2 and "bin_width_s=-1.0 must be a finite number in (0, 86400]" \
        in r.output
    res = tmp_path / "b.h5"
    r = CliRunner().invoke(main, ["batch", str(population), "-o", str(res), "--jobs", "2",
                                  "--csv", str(tmp_path / "s.csv"), "--no-progress"])
    assert r.exit_code == 3, r.output
    assert "failed: corrupt" in r.stderr
    assert (tmp_path / "s.csv").read_text().count("\n") == 7  # header + 6 particles
    r = CliRunner().invoke(main, ["batch", str(population), "-o", str(res)])
    assert r.exit_code == 1 and "exists; use --resume" in r.output
    r = CliRunner().invoke(main, ["batch", str(population), "-o", str(res), "--resume",
                                  "--overwrite"])
    assert r.exit_code == 2


def test_cli_analyze_unwritable_output(population, tmp_path):
    f = population / "neutral" / "p0.ptu"
    r = CliRunner().invoke(main, ["analyze", str(f), "-o", str(tmp_path / "no" / "x.h5")])
    # the real cause, not "disk or folder"
    assert r.exit_code == 1 and "x.h5: cannot write: output folder" in r.output \
        and "no does not exist" in r.output
    assert not (tmp_path / "no").exists()


def test_cli_demo_small(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", str(out), "--n-per-group", "1", "--duration-s", "3",
                                  "--jobs", "1", "--no-plots"])
    assert r.exit_code == 0, r.output
    header = r.stdout.splitlines()[0].split()
    assert header[:3] == ["group", "n", "ok"] and "single" in header
    assert {line.split()[0] for line in r.stdout.splitlines()[1:]} == {"mn_doped", "neutral",
                                                                        "undoped"}
    res = read_results(out / "results.h5")
    assert len(res.summary) == 3 and (out / "summary.csv").exists()


@pytest.fixture
def fake_tty(monkeypatch):
    """CliRunner's stderr (and stdout) report a terminal: the progress bars' enabled path."""
    import click.testing

    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True,
                        raising=False)


def test_cli_batch_progress_group_table_and_exclude(population, tmp_path, fake_tty):
    """``batch`` on a terminal: a progress bar on stderr, the per-group table at the end;
    ``--exclude`` leaves the listed particles out of the group statistics (recorded in the
    file); -q and --no-progress hide the bar."""
    from qrspec.app.exclude import write_exclusion_file
    from qrspec.store.hdf5 import group_statistics

    res = tmp_path / "b.h5"
    bad = write_exclusion_file(tmp_path / "bad.json", ["p1", "nope"])
    r = CliRunner().invoke(main, ["batch", str(population), "-o", str(res), "--exclude",
                                  str(bad)])
    assert r.exit_code == 1 and "1 particle ids are not among the batch's particles: ['nope']" \
        in r.output and not res.exists()  # refused before any work
    excl = write_exclusion_file(tmp_path / "excl.json", ["p1"], {"p1": "two emitters"})
    r = CliRunner().invoke(main, ["batch", str(population), "-o", str(res), "--exclude",
                                  str(excl), "-j", "2"])
    assert r.exit_code == 3, r.output
    assert "particles [" + "#" * 28 + "] 6/6  2 failed" in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["group", "n", "ok", "failed", "used"]
    assert lines[-1].endswith("1 particles excluded")
    back = read_results(res)
    assert back.excluded == ("p1",) and set(back.particle_ids) >= {"p1"}  # still stored
    g1 = str(back.summary["group"][back.summary["particle_id"] == "p1"][0])
    row = back.groups[back.groups["group"] == g1][0]
    assert row["n_selected"] == row["n_ok"] - 1
    # the stored statistics are the store's over the rows without p1
    from qrspec.app.batch_tables import store_rows

    keep = back.summary["particle_id"] != "p1"
    want = group_statistics(store_rows(back.summary), selected=keep)
    np.testing.assert_array_equal(row["g2_zero_gated_mean"],
                                  want[want["group"] == g1.encode()][0]["g2_zero_gated_mean"])
    table = {ln.split()[0]: ln.split() for ln in lines[1:-1]}
    assert table[g1][1:5] == [str(row["n_particles"]), str(row["n_ok"]),
                              str(row["n_particles"] - row["n_ok"]), str(row["n_selected"])]
    # resumed particles count on the bar too; -q: no bar, no table
    r = CliRunner().invoke(main, ["batch", str(population), "-o", str(res), "--resume",
                                  "--no-progress"])
    assert r.exit_code in (0, 3) and "particles [" not in r.stderr
    assert r.stdout.splitlines()[0].split()[0] == "group"
    r = CliRunner().invoke(main, ["-q", "batch", str(population), "-o", str(res), "--resume"])
    assert "particles [" not in r.stderr and r.stdout == ""


def test_cli_simulate_batch_progress(tmp_path, fake_tty, monkeypatch):
    """With stdout redirected and stderr a terminal, simulate-batch draws a bar; with both on
    one terminal its per-particle lines are the progress (no bar)."""
    import qrspec.cli.simulate as sim_cli

    args = ["simulate-batch", str(tmp_path / "s"), "--n-particles", "2", "--duration-s", "0.3"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "simulated [" not in r.stderr
    assert r.stdout.count("particle_") == 2
    monkeypatch.setattr(sim_cli, "_isatty", lambda stream: False)  # stdout to a file
    r = CliRunner().invoke(main, [*args, "--overwrite"])
    assert r.exit_code == 0 and "simulated [" + "#" * 28 + "] 2/2" in r.stderr
    assert r.stdout.count("particle_") == 2  # the lines still go to stdout
    r = CliRunner().invoke(main, [*args, "--overwrite", "--no-progress"])
    assert r.exit_code == 0 and "simulated [" not in r.stderr
