"""Issue 10: faults during a batch. Nothing finished may ever be lost.

* ``kill -9`` of a ``qrspec batch`` process at several points (during the analysis, just before
  the rename of a checkpoint merge, while the merged file is being written), then
  ``qrspec batch --resume``: the final ``/summary`` equals an uninterrupted run (every column
  but ``analysis_s``), no particle is missing or duplicated, and the workers of the killed
  batch exit by themselves.
* Disk full (ENOSPC) and unwritable output: a clear :class:`QrspecError`, the earlier results
  file byte-identical, the finished particles kept for ``--resume``.
* A worker that dies like a segfault (``QRSPEC_TEST_CRASH_ON``, test-only hook in
  ``qrspec.app.batch``) is recorded as a failed particle while the others complete.
* Particle ids from file names are safe HDF5 names and part-file names; duplicate, long,
  unicode and case-colliding stems are disambiguated.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from qrspec.app.batch import collect_inputs, run_batch, sanitize_id
from qrspec.errors import QrspecError
from qrspec.store.hdf5 import read_results

ROOT = Path(__file__).resolve().parents[1]
N_GOOD = 5


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """Five short simulated particles in two folders plus one corrupt file."""
    from qrspec.simulate import preset, simulate_particle
    from qrspec.simulate.sidecar import write_particle

    root = tmp_path_factory.mktemp("faultpop")
    for g in ("a", "b"):
        (root / g).mkdir()
    for i in range(N_GOOD):
        name = "undoped" if i % 2 else "neutral"
        sim = simulate_particle(preset(name, duration_s=2.0), seed=300 + i)
        write_particle(sim, root / "ab"[i % 2] / f"p{i}.ptu", sidecar=False)
    (root / "b" / "corrupt.ptu").write_bytes(b"PQTTTR\0\0" + b"\xff" * 200)
    return root


@pytest.fixture(scope="module")
def reference(population, tmp_path_factory):
    """The uninterrupted batch: {particle_id: summary row}."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    rep = run_batch([population], out, jobs=2)
    assert rep.n_ok == N_GOOD and rep.n_failed == 1
    return _rows(out)


def _rows(path) -> dict:
    s = read_results(path).summary
    ids = [str(x) for x in s["particle_id"]]
    assert len(ids) == len(set(ids)), f"duplicated particles in {path}: {ids}"
    with h5py.File(path, "r") as f:
        assert sorted(f["particles"]) == sorted(ids)  # every row has its particle group
    return {str(r["particle_id"]): r for r in s}


def assert_same_results(got: dict, ref: dict):
    """Same particles, and every summary column but analysis_s identical (NaN == NaN)."""
    assert sorted(got) == sorted(ref), "missing or extra particles"
    for pid, r in ref.items():
        g = got[pid]
        for name in r.dtype.names:
            if name == "analysis_s":
                continue
            a, b = r[name], g[name]
            if isinstance(a, float | np.floating):
                assert (np.isnan(a) and np.isnan(b)) or a == b, (pid, name, a, b)
            else:
                assert a == b, (pid, name, a, b)


# --------------------------------------------------------------------------- kill -9

# Runs `qrspec batch` with checkpoints after every finished particle and, depending on
# QRSPEC_FAULT, SIGKILLs itself (the main batch process only) at the n-th event:
#   before_replace:n  just before the n-th rename of a merged output into place
#   mid_merge:n       while writing the n-th merged output (particles copied, tables not yet)
_HARNESS = textwrap.dedent("""
    import functools, os, signal, sys
    import qrspec.app.batch, qrspec.store.hdf5
    main_pid = os.getpid()
    out = os.path.abspath(sys.argv[sys.argv.index("-o") + 1])
    kind, _, n = os.environ.get("QRSPEC_FAULT", "").partition(":")
    seen = [0]

    def hit():
        if os.getpid() == main_pid:
            seen[0] += 1
            if seen[0] == int(n):
                os.kill(main_pid, signal.SIGKILL)

    if kind == "before_replace":
        real_replace = os.replace

        def replace(src, dst, *a, **k):
            if os.path.abspath(dst) == out:
                hit()
            return real_replace(src, dst, *a, **k)

        os.replace = replace
    elif kind == "mid_merge":
        real_groups = qrspec.store.hdf5._write_groups

        def write_groups(f, rows, *args):
            # the main process writes only merges (workers write the part files; hit() counts
            # the main process only): f.filename is no path under qrspec.io.atomic's fileobj
            hit()
            return real_groups(f, rows, *args)

        qrspec.store.hdf5._write_groups = write_groups
    qrspec.app.batch.run_batch = functools.partial(qrspec.app.batch.run_batch, checkpoint_s=0.0)
    from qrspec.cli import main
    main(prog_name="qrspec")
""")


def _batch_cmd(population, out, *extra):
    return [sys.executable, "-c", _HARNESS, "batch", str(population), "-o", str(out), "-j", "2",
            "--no-progress", *extra]


def _env(fault=""):
    return {**os.environ, "PYTHONPATH": str(ROOT), "QRSPEC_FAULT": fault}


def _wait_group_gone(pgid: int, timeout_s: float = 15.0):
    """Wait until no process of the killed batch's group is left (workers exit by themselves
    when their parent dies)."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        # zombies count for killpg; they are reaped by init, so also look at live states
        alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _in_group(p, pgid)]
        if not alive:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)  # clean up before failing
    raise AssertionError(f"processes of the killed batch (pgid {pgid}) still run after "
                         f"{timeout_s} s: orphaned workers")


def _in_group(proc: Path, pgid: int) -> bool:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[2]) == pgid and fields[0] != "Z"


def kill_and_resume(population, tmp_path, ref, *, fault="", kill_after_s=None):
    """Run a batch, kill -9 it (via ``fault`` or after ``kill_after_s``), resume, compare."""
    out = tmp_path / "out.h5"
    proc = subprocess.Popen(_batch_cmd(population, out), env=_env(fault),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    if kill_after_s is not None:
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)  # the main process only, like `kill -9 <pid>`
    rc = proc.wait(timeout=120)
    proc.stderr.close()
    killed = rc == -signal.SIGKILL
    _wait_group_gone(proc.pid)
    if out.exists():  # whatever was merged before the kill is a valid results file
        partial = _rows(out)
        assert set(partial) <= set(ref)
    r = subprocess.run(_batch_cmd(population, out, "--resume"), env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-3000:]  # the corrupt file fails, the rest is ok
    assert_same_results(_rows(out), ref)
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "out.h5.parts").exists()
    return killed


def test_issue_10_kill9_during_merge_then_resume(population, reference, tmp_path):
    """SIGKILL while the first merged output is being written: no output yet; resume from the
    part files finishes with the uninterrupted results."""
    assert kill_and_resume(population, tmp_path, reference, fault="mid_merge:1")


def test_issue_10_kill9_at_random_time_then_resume(population, reference, tmp_path):
    """kill -9 of the batch process at a random moment of the analysis."""
    rng = np.random.default_rng(10)
    kill_and_resume(population, tmp_path, reference, kill_after_s=float(rng.uniform(1.5, 3.5)))


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["before_replace:1", "before_replace:2", "before_replace:3",
                                   "mid_merge:2", "mid_merge:4"])
def test_issue_10_kill9_sweep_merge_points(population, reference, tmp_path, fault):
    assert kill_and_resume(population, tmp_path, reference, fault=fault)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_issue_10_kill9_sweep_random_times(population, reference, tmp_path, seed):
    rng = np.random.default_rng(seed)
    kill_and_resume(population, tmp_path, reference, kill_after_s=float(rng.uniform(1.0, 6.0)))


@pytest.mark.slow
def test_issue_10_kill9_twice_including_the_resume(population, reference, tmp_path):
    """Kill the batch, kill the resumed batch too, then resume again."""
    out = tmp_path / "out.h5"
    for fault in ("mid_merge:2", "before_replace:1"):
        proc = subprocess.Popen(_batch_cmd(population, out, *(["--resume"] if out.exists()
                                                              or (tmp_path / "out.h5.parts")
                                                              .exists() else [])),
                                env=_env(fault), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        proc.wait(timeout=120)
        _wait_group_gone(proc.pid)
    r = subprocess.run(_batch_cmd(population, out, "--resume"), env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-3000:]
    assert_same_results(_rows(out), reference)


# --------------------------------------------------------------------------- disk full


@pytest.fixture(scope="module")
def subset(population, tmp_path_factory):
    """An earlier, complete batch of folder a only (the results that must survive)."""
    out = tmp_path_factory.mktemp("subset") / "out.h5"
    rep = run_batch([population / "a"], out, jobs=2)
    assert rep.n_ok == 3
    return out.read_bytes()


def _subset_batch(subset, out):
    out.write_bytes(subset)
    return subset


def _enospc(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_issue_10_enospc_on_rename_keeps_earlier_results(population, reference, subset,
                                                         tmp_path, monkeypatch):
    out = tmp_path / "out.h5"
    before = _subset_batch(subset, out)
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if Path(dst) == out:
            raise _enospc(dst)
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(QrspecError, match=r"out\.h5: cannot write results: No space left on "
                                          r"device .*rerun with --resume"):
        run_batch([population], out, jobs=2, resume=True)
    monkeypatch.undo()
    assert out.read_bytes() == before  # the earlier results file is untouched
    parts = {p.stem for p in (tmp_path / "out.h5.parts").glob("*.h5")}
    assert {"p0", "p2", "p4"} <= parts and len(parts) == N_GOOD + 1  # all kept for --resume
    assert not list(tmp_path.glob("*.partial"))
    rep = run_batch([population], out, jobs=2, resume=True)
    assert rep.n_skipped == N_GOOD  # nothing ok is analysed twice (the failed one is retried)
    assert_same_results(_rows(out), reference)


def test_issue_10_enospc_while_writing_merge_keeps_earlier_results(population, subset,
                                                                   tmp_path, monkeypatch):
    """ENOSPC at the first checkpoint merge (checkpoint_s=0), inside the HDF5 write."""
    import qrspec.store.hdf5

    out = tmp_path / "out.h5"
    before = _subset_batch(subset, out)
    real = qrspec.store.hdf5._write_groups
    main_pid = os.getpid()

    def write_groups(f, rows, *args):
        # a merge: in this process (forked workers write the part files) and with more than
        # one particle (staging a resumed particle writes one); f.filename is no path under
        # qrspec.io.atomic's fileobj driver
        if os.getpid() == main_pid and len(rows) > 1:
            raise _enospc(str(out))
        return real(f, rows, *args)

    monkeypatch.setattr(qrspec.store.hdf5, "_write_groups", write_groups)
    with pytest.raises(QrspecError, match=r"cannot write results: No space left on device"):
        run_batch([population], out, jobs=2, resume=True, checkpoint_s=0.0)
    monkeypatch.undo()
    assert out.read_bytes() == before
    assert not list(tmp_path.glob("*.partial"))  # the half-written merge was removed
    assert {"p0", "p2", "p4"} <= {p.stem for p in (tmp_path / "out.h5.parts").glob("*.h5")}


def test_issue_10_worker_cannot_write_part_file(population, subset, tmp_path, monkeypatch):
    """A worker's part file cannot be written (EACCES/ENOSPC in the worker): the batch stops
    with a clear error instead of a traceback from the pool; earlier results intact."""
    out = tmp_path / "out.h5"
    before = _subset_batch(subset, out)
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if Path(dst).parent.name == "out.h5.parts" and Path(dst).stem == "p1":
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)  # inherited by the forked workers
    with pytest.raises(QrspecError, match=r"cannot write results: Permission denied "
                                          r"\(.*out\.h5\.parts/p1\.h5\)"):
        run_batch([population], out, jobs=1, resume=True)
    monkeypatch.undo()
    assert before  # the earlier batch held p0, p2, p4
    assert {"p0", "p2", "p4"} <= set(_rows(out))  # a final merge may add, never lose


def test_issue_10_unwritable_output_folder(population, tmp_path):
    """Output 'folder' that cannot hold files (a regular file here; root ignores chmod)."""
    blocker = tmp_path / "notadir"
    blocker.write_text("x")
    with pytest.raises(QrspecError, match=r"cannot write results: Not a directory"):
        run_batch([population / "a"], blocker / "out.h5")
    with pytest.raises(QrspecError, match=r"output folder does not exist"):
        run_batch([population / "a"], tmp_path / "missing" / "out.h5")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_issue_10_read_only_output_folder(population, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(QrspecError, match=r"cannot write results: Permission denied"):
            run_batch([population / "a"], ro / "out.h5")
    finally:
        ro.chmod(0o755)


# --------------------------------------------------------------------------- worker crash


def test_issue_10_worker_segfault_recorded_as_failed(population, reference, tmp_path,
                                                     monkeypatch):
    monkeypatch.setenv("QRSPEC_TEST_CRASH_ON", "p3")  # worker calls os._exit(139) on p3
    out = tmp_path / "out.h5"
    rep = run_batch([population], out, jobs=2)
    assert rep.n_particles == N_GOOD + 1 and rep.n_ok == N_GOOD - 1 and rep.n_failed == 2
    got = _rows(out)
    assert str(got["p3"]["status"]) == "failed"
    assert "worker process died while analysing this particle" in str(got["p3"]["error"])
    others = {k: v for k, v in reference.items() if k != "p3"}
    assert_same_results({k: v for k, v in got.items() if k != "p3"}, others)


# --------------------------------------------------------------------------- particle ids


@pytest.mark.parametrize("name, expected", [
    ("a/b", "a_b"), ("../x", "_x"), ("..", "particle"), (".hidden", "hidden"),
    ("p.1.v2", "p.1.v2"), ("Quantenpunkt_ü_42", "Quantenpunkt___42"), ("量子点", "particle"),
    ("a b:c*d?e", "a_b_c_d_e"), ("x" * 100, "x" * 60),
])
def test_issue_10_sanitize_id(name, expected):
    pid = sanitize_id(name)
    assert pid == expected
    with h5py.File(Path(os.environ.get("TMPDIR", "/tmp")) / f"ids_{os.getpid()}.h5", "w",
                   driver="core", backing_store=False) as f:
        f.create_group(f"particles/{pid}")  # a single, valid HDF5 path component
        assert list(f["particles"]) == [pid]


def test_issue_10_collect_inputs_long_unicode_duplicate_and_case_stems(tmp_path):
    """Regression: three files whose stems share their first 60 characters made
    collect_inputs loop forever (the disambiguating suffix was cut off by the 60-character
    limit); ids must also differ case-insensitively (part files on macOS/Windows)."""
    long = "particle_" + "x" * 80
    files = []
    for folder in ("g1", "g2", "g3"):
        (tmp_path / folder).mkdir()
        for stem in (long, long + "_other", "Ünïcødé", "üñí", "P1", "p1", "a.b"):
            f = tmp_path / folder / f"{stem}.ptu"
            f.write_bytes(b"x")
            files.append(f)

    def alarm(signum, frame):
        raise TimeoutError("collect_inputs did not terminate")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        items = collect_inputs([tmp_path])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    ids = [it.particle_id for it in items]
    assert len(items) == len(files)
    assert len({i.lower() for i in ids}) == len(ids)  # unique, also case-insensitively
    assert all(0 < len(i) <= 60 and i == sanitize_id(i) for i in ids)
    assert "p1" in ids or "P1" in ids


def test_issue_10_awkward_names_round_trip_through_batch(tmp_path):
    """Files with such names go through a batch: one HDF5 group per file, none lost."""
    names = ["x" * 90 + "_1", "x" * 90 + "_2", "Ünïcødé", "üñí", "P1", "p1", ".dot", "a.b"]
    (tmp_path / "in").mkdir()
    for n in names:
        (tmp_path / "in" / f"{n}.ptu").write_bytes(b"neither a PTU file nor a legacy TTTR file")
    out = tmp_path / "out.h5"
    rep = run_batch([tmp_path / "in"], out, jobs=1)
    assert rep.n_particles == len(names) and rep.n_failed == len(names)
    rows = _rows(out)
    assert len(rows) == len(names)
    sources = sorted(Path(str(r["source"])).stem for r in rows.values())
    assert sources == sorted(names)
    res = read_results(out)
    for pid in res.particle_ids:
        assert "not a PTU file" in res.particle(pid).failure


def test_issue_10_cli_batch_csv_unwritable(tmp_path):
    """`qrspec batch --csv` into a missing folder: exit 1 with a message, results complete."""
    from click.testing import CliRunner

    from qrspec.cli.batch import batch

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.ptu").write_bytes(b"neither a PTU file nor a legacy TTTR file")
    out = tmp_path / "out.h5"
    r = CliRunner().invoke(batch, [str(tmp_path / "in"), "-o", str(out), "--no-progress",
                                   "--csv", str(tmp_path / "missing" / "s.csv")])
    assert r.exit_code == 1, r.output
    assert "s.csv: cannot write: output folder" in r.output and "missing does not exist" \
        in r.output
    assert f"{out} is complete" in r.output
    assert list(_rows(out)) == ["bad"]
