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

# Runs `qrspec batch` with checkpoints after every finished particle. Every particle's
# analysis takes at least QRSPEC_FAULT_SLOW_S seconds (so that a kill lands in the middle of
# the batch, never after its end), and depending on QRSPEC_FAULT the main batch process
# SIGKILLs itself at the n-th event:
#   before_replace:n  just before the n-th rename of a merged output into place
#   mid_merge:n       while writing the n-th merged output (particles copied, tables not yet)
# Before it dies it writes the number of finished part files to QRSPEC_FAULT_LOG.
_HARNESS = textwrap.dedent("""
    import functools, os, signal, sys, time
    import qrspec.analysis.pipeline, qrspec.app.batch, qrspec.store.hdf5
    main_pid = os.getpid()
    out = os.path.abspath(sys.argv[sys.argv.index("-o") + 1])
    kind, _, n = os.environ.get("QRSPEC_FAULT", "").partition(":")
    seen = [0]

    def hit():
        if os.getpid() == main_pid:
            seen[0] += 1
            if seen[0] == int(n):
                parts = out + ".parts"
                done = len([p for p in os.listdir(parts) if p.endswith(".h5")]) \\
                    if os.path.isdir(parts) else 0
                with open(os.environ["QRSPEC_FAULT_LOG"], "w") as fh:
                    fh.write(str(done))
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
        real_merge = qrspec.store.hdf5.merge_results_from
        merging = [False]

        def write_groups(f, rows, *args):
            if merging[0]:
                hit()
            return real_groups(f, rows, *args)

        def merge(sources, out_path, *a, **k):
            merging[0] = os.path.abspath(out_path) == out
            try:
                return real_merge(sources, out_path, *a, **k)
            finally:
                merging[0] = False

        qrspec.store.hdf5._write_groups = write_groups
        qrspec.app.batch.merge_results_from = merge
    slow = float(os.environ.get("QRSPEC_FAULT_SLOW_S") or 0)
    if slow:
        real_analyze = qrspec.analysis.pipeline.analyze_file

        def analyze_file(*a, **k):
            time.sleep(slow)
            return real_analyze(*a, **k)

        qrspec.analysis.pipeline.analyze_file = analyze_file
    qrspec.app.batch.run_batch = functools.partial(qrspec.app.batch.run_batch, checkpoint_s=0.0)
    from qrspec.cli import main
    main(prog_name="qrspec")
""")
SLOW_S = "0.4"  # with 6 particles on 2 workers the batch lasts > 1.5 s after the first part


def _batch_cmd(population, out, *extra):
    return [sys.executable, "-c", _HARNESS, "batch", str(population), "-o", str(out), "-j", "2",
            "--no-progress", *extra]


def _env(fault="", log="", slow=""):
    return {**os.environ, "PYTHONPATH": str(ROOT), "QRSPEC_FAULT": fault,
            "QRSPEC_FAULT_LOG": str(log), "QRSPEC_FAULT_SLOW_S": slow}


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


def _finished_parts(out: Path) -> int:
    parts = out.with_name(out.name + ".parts")
    return len(list(parts.glob("*.h5"))) if parts.is_dir() else 0


def _interrupt(proc, out: Path, sig, rng) -> int:
    """Send ``sig`` in the middle of the batch: after its first finished particle plus a random
    delay, and only while it is still running. Returns the finished particles at that time."""
    t_end = time.monotonic() + 120
    while _finished_parts(out) == 0:
        assert proc.poll() is None, "the batch ended before any particle finished"
        assert time.monotonic() < t_end, "no particle finished within 120 s"
        time.sleep(0.02)
    time.sleep(float(rng.uniform(0.0, 0.5)))
    done = _finished_parts(out)
    assert proc.poll() is None, "the batch ended before the signal: the test would be vacuous"
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal: the whole foreground process group
    else:
        os.kill(proc.pid, sig)  # the main process only, like `kill -9 <pid>`
    return done


def kill_and_resume(population, tmp_path, ref, *, fault="", sig=None, rng=None):
    """Run a batch, interrupt it in the middle (via ``fault`` or by ``sig`` at a random time
    after the first finished particle), check it really was interrupted mid-batch, resume and
    compare with the uninterrupted run."""
    out = tmp_path / "out.h5"
    log = tmp_path / "fault.log"
    proc = subprocess.Popen(_batch_cmd(population, out), env=_env(fault, log, SLOW_S),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    if sig is not None:
        done = _interrupt(proc, out, sig, rng)
    rc = proc.wait(timeout=120)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    _wait_group_gone(proc.pid)
    if sig is None:
        assert rc == -signal.SIGKILL, f"fault {fault} never fired (exit {rc}): {err[-2000:]}"
        done = int(log.read_text())
    elif sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:  # SIGINT: a clean stop (click's "Aborted!", exit 1), no traceback
        assert rc == 1 and "Traceback" not in err, err[-3000:]
    assert done < len(ref), f"{done} of {len(ref)} particles were finished: not mid-batch"
    if out.exists():  # whatever was merged before the kill is a valid results file
        partial = _rows(out)
        assert set(partial) <= set(ref) and len(partial) < len(ref)
    r = subprocess.run(_batch_cmd(population, out, "--resume"), env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-3000:]  # the corrupt file fails, the rest is ok
    assert_same_results(_rows(out), ref)
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "out.h5.parts").exists()
    assert not (tmp_path / "out.h5.lock").exists()


def test_issue_10_kill9_during_merge_then_resume(population, reference, tmp_path):
    """SIGKILL while the first merged output is being written: no output yet; resume from the
    part files finishes with the uninterrupted results."""
    kill_and_resume(population, tmp_path, reference, fault="mid_merge:1")


def test_issue_10_kill9_at_random_time_then_resume(population, reference, tmp_path):
    """kill -9 of the batch process at a random moment after its first finished particle."""
    kill_and_resume(population, tmp_path, reference, sig=signal.SIGKILL,
                    rng=np.random.default_rng(10))


def test_issue_16_sigint_mid_batch_then_resume(population, reference, tmp_path):
    """Ctrl-C (SIGINT to the process group) in the middle: a clean exit 1 without traceback,
    workers gone, the finished particles kept; resume gives the uninterrupted results."""
    kill_and_resume(population, tmp_path, reference, sig=signal.SIGINT,
                    rng=np.random.default_rng(16))


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["before_replace:1", "before_replace:3", "mid_merge:3"])
def test_issue_10_kill9_sweep_merge_points(population, reference, tmp_path, fault):
    kill_and_resume(population, tmp_path, reference, fault=fault)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1))
def test_issue_10_kill9_sweep_random_times(population, reference, tmp_path, seed):
    kill_and_resume(population, tmp_path, reference, sig=signal.SIGKILL,
                    rng=np.random.default_rng(seed))


@pytest.mark.slow
def test_issue_10_kill9_twice_including_the_resume(population, reference, tmp_path):
    """Kill the batch, kill the resumed batch too, then resume again."""
    out = tmp_path / "out.h5"
    for fault in ("mid_merge:2", "before_replace:1"):
        resume = out.exists() or (tmp_path / "out.h5.parts").exists()
        proc = subprocess.Popen(_batch_cmd(population, out, *(["--resume"] if resume else [])),
                                env=_env(fault, tmp_path / "log", SLOW_S),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        assert proc.wait(timeout=120) == -signal.SIGKILL
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
                                          r"device\. .*rerun with --resume"):
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
    """ENOSPC at the first checkpoint merge (checkpoint_s=0), inside the HDF5 write of the
    merged output's temp file (injected into os.pwrite for that file only)."""
    out = tmp_path / "out.h5"
    before = _subset_batch(subset, out)
    real = os.pwrite

    def pwrite(fd, data, offset):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(name).startswith("out.h5.") and name.endswith(".partial"):
            raise _enospc(name)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
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
    with pytest.raises(QrspecError, match=r"out\.h5: cannot write: Not a directory"):
        run_batch([population / "a"], blocker / "out.h5")
    with pytest.raises(QrspecError, match=r"output folder .*missing does not exist"):
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
    """`qrspec batch --csv` into a missing folder: refused before the batch runs (exit 1)."""
    from click.testing import CliRunner

    from qrspec.cli.batch import batch

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.ptu").write_bytes(b"neither a PTU file nor a legacy TTTR file")
    out = tmp_path / "out.h5"
    r = CliRunner().invoke(batch, [str(tmp_path / "in"), "-o", str(out), "--no-progress",
                                   "--csv", str(tmp_path / "missing" / "s.csv")])
    assert r.exit_code == 1, r.output
    assert "s.csv: cannot write: output folder" in r.output and "does not exist" in r.output
    assert not out.exists()


# --------------------------------------------------------------------------- issue 16: workers


def _patch_analysis(monkeypatch, pid: str, action):
    """Make the analysis of particle ``pid`` run ``action()`` first, in the (forked) worker."""
    import qrspec.analysis.pipeline as pipeline

    real = pipeline.analyze_file

    def analyze_file(path, config=None, **kw):
        if kw.get("particle_id") == pid:
            action()
        return real(path, config, **kw)

    monkeypatch.setattr(pipeline, "analyze_file", analyze_file)


def _others_same(got: dict, ref: dict, skip: str):
    assert_same_results({k: v for k, v in got.items() if k != skip},
                        {k: v for k, v in ref.items() if k != skip})


def test_issue_16_stuck_workers_time_out(population, reference, tmp_path, monkeypatch):
    """A worker that hangs (p3) and one that is stopped with SIGSTOP (p1), past timeout_s:
    both are killed, their particles are failed rows saying why, every other particle
    completes, and resume retries them."""
    import qrspec.analysis.pipeline as pipeline

    real = pipeline.analyze_file

    def analyze_file(path, config=None, **kw):
        if kw.get("particle_id") == "p3":
            time.sleep(3600)
        elif kw.get("particle_id") == "p1":
            os.kill(os.getpid(), signal.SIGSTOP)
        return real(path, config, **kw)

    monkeypatch.setattr(pipeline, "analyze_file", analyze_file)
    out = tmp_path / "out.h5"
    t0 = time.monotonic()
    rep = run_batch([population], out, jobs=2, timeout_s=8.0)
    assert time.monotonic() - t0 < 60
    got = _rows(out)
    assert rep.n_failed == 3 and rep.n_ok == N_GOOD - 2
    for pid, state in (("p3", "still running"), ("p1", "stopped")):
        assert str(got[pid]["status"]) == "failed"
        assert f"timed out after 8 s (timeout_s; the worker was {state} and was killed)" \
            in str(got[pid]["error"])
    assert_same_results({k: v for k, v in got.items() if k not in ("p1", "p3")},
                        {k: v for k, v in reference.items() if k not in ("p1", "p3")})
    monkeypatch.undo()
    rep = run_batch([population], out, jobs=2, resume=True)
    assert rep.n_skipped == N_GOOD - 2
    assert_same_results(_rows(out), reference)


def test_issue_16_worker_memory_limit(population, reference, tmp_path, monkeypatch):
    """A particle that needs more memory than the worker's limit fails with a MemoryError (not
    the machine's OOM killer); the others complete. The limit is on the worker's address
    space, which includes what it inherited from this (pytest) process."""
    with open("/proc/self/status") as fh:
        vm_mb = next(int(x.split()[1]) // 1024 for x in fh if x.startswith("VmSize:"))
    limit = vm_mb + 2048
    _patch_analysis(monkeypatch, "p1", lambda: np.ones((limit + 1024) << 17))  # 8 B each
    out = tmp_path / "out.h5"
    rep = run_batch([population], out, jobs=2, memory_limit_mb=limit)
    got = _rows(out)
    assert rep.n_failed == 2 and "MemoryError" in str(got["p1"]["error"])
    _others_same(got, reference, "p1")


def test_issue_16_killed_worker_recorded_and_replaced(population, reference, tmp_path,
                                                      monkeypatch):
    """kill -9 of a worker (not the batch): that particle is a failed row naming SIGKILL; a
    new worker takes the remaining particles."""
    _patch_analysis(monkeypatch, "p0", lambda: os.kill(os.getpid(), signal.SIGKILL))
    out = tmp_path / "out.h5"
    rep = run_batch([population], out, jobs=1)
    got = _rows(out)
    assert rep.n_failed == 2 and rep.n_ok == N_GOOD - 1
    assert "worker process died while analysing this particle (killed by SIGKILL" \
        in str(got["p0"]["error"])
    _others_same(got, reference, "p0")


@pytest.mark.parametrize("bad", [dict(timeout_s=0), dict(timeout_s=True),
                                 dict(timeout_s=float("nan")), dict(memory_limit_mb=100),
                                 dict(memory_limit_mb=-1), dict(memory_limit_mb=1.5e3),
                                 dict(jobs=0)])
def test_issue_16_batch_limits_validated(population, tmp_path, bad):
    name = next(iter(bad))
    with pytest.raises(QrspecError, match=rf"^{name}=.* must be"):
        run_batch([population / "a"], tmp_path / "o.h5", **bad)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- issue 16: output


def test_issue_16_batch_output_is_an_input(population, tmp_path):
    """batch X.ptu -o X.ptu --overwrite (or a hard link of it): refused, the input intact."""
    src = population / "a" / "p0.ptu"
    x = tmp_path / "x.ptu"
    x.write_bytes(src.read_bytes())
    link = tmp_path / "link.h5"
    os.link(x, link)
    before = x.read_bytes()
    for out in (x, link):
        with pytest.raises(QrspecError, match=r"cannot write: is the input file .*x\.ptu"):
            run_batch([x], out, overwrite=True)
    from click.testing import CliRunner

    from qrspec.cli import main

    for cmd in (["batch", str(x), "-o", str(x), "--overwrite", "--no-progress"],
                ["analyze", str(x), "-o", str(link), "--overwrite"]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 1 and "is the input file" in r.output, r.output
    assert x.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.h5", "x.ptu"]


def test_issue_16_batch_output_locked(population, tmp_path):
    """A second batch on an output being written exits 1 naming the pid; a stale lock of a
    dead batch is taken over."""
    import fcntl

    out = tmp_path / "out.h5"
    lock = tmp_path / "out.h5.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        os.write(fd, f"{{os.getpid()}} somehost\\n".encode())
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(QrspecError, match=rf"out\.h5: locked by pid {holder.pid} on "
                                              r"somehost: another batch is writing"):
            run_batch([population / "a"], out)
        from click.testing import CliRunner

        from qrspec.cli import main

        r = CliRunner().invoke(main, ["batch", str(population / "a"), "-o", str(out),
                                      "--no-progress"])
        assert r.exit_code == 1 and f"locked by pid {holder.pid}" in r.output
        assert not out.exists() and lock.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert lock.read_text().split()[0] == str(holder.pid)  # stale: its holder is dead
    rep = run_batch([population / "a"], out)
    assert rep.n_ok == 3 and not lock.exists()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)  # the lock is free again
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def _crafted_output(path: Path, subset: bytes, how: str):
    """An existing results file made hostile in one way (for --resume)."""
    path.write_bytes(subset)
    with h5py.File(path, "r+") as f:
        if how in ("dotdot", "absolute"):
            rows = f["summary"][()]
            rows["particle_id"][0] = b"../../escape" if how == "dotdot" else b"/tmp/escape"
            del f["summary"]
            f.create_dataset("summary", data=rows)
        elif how == "external_link":
            f["particles/p0/leak"] = h5py.ExternalLink("/etc/passwd", "/")
        elif how == "soft_link":
            del f["particles/p2"]
            f["particles/p2"] = h5py.SoftLink("/particles/p0")
        elif how == "external_storage":
            f.create_dataset("particles/p0/leak", shape=(64,), dtype="u1",
                             external=[("/etc/hostname", 0, 64)])
        elif how in ("huge_summary", "many_rows"):  # 8.5 kB on disk
            rows = f["summary"][()]
            del f["summary"]
            n = 3_000_000 if how == "huge_summary" else 150_000
            ds = f.create_dataset("summary", shape=(n,), dtype=rows.dtype,
                                  chunks=(65536,), compression="gzip", compression_opts=9)
            ds[:rows.size] = rows
        elif how == "no_group":
            del f["particles/p2"]


@pytest.mark.parametrize("how, match", [
    ("dotdot", r"particle_id='\.\./\.\./escape' is not a valid particle id"),
    ("absolute", r"particle_id='/tmp/escape' is not a valid particle id"),
    ("external_link", r"refusing to resume from this file: particles/p0/leak is a ExternalLink"),
    ("soft_link", r"refusing to resume from this file: particles/p2 is a SoftLink"),
    ("external_storage", r"refusing to resume from this file: particles/p0/leak has external "
                         r"storage"),
    ("huge_summary", r"refusing to resume from this file: summary holds \d+ bytes "
                     r"\(> 1073741824\)"),
    ("many_rows", r"/summary has 150000 rows > MAX_SUMMARY_ROWS=100000.*refusing to resume"),
    ("no_group", r"particle_id='p2' has a /summary row but no /particles group; refusing"),
])
def test_issue_16_resume_refuses_crafted_output(population, subset, tmp_path, how, match):
    """--resume reads an existing output: ids that would leave the output folder, links and
    external storage that would read other files, and oversized tables are refused before
    anything is written; the file is left as it was."""
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out.h5"
    _crafted_output(out, subset, how)
    before = out.read_bytes()
    t0 = time.monotonic()
    with pytest.raises(QrspecError, match=match):
        run_batch([population / "a"], out, resume=True)
    assert time.monotonic() - t0 < 20
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name != "out.h5.parts") == \
        ["out.h5", "work"]
    assert not (tmp_path / "escape").exists() and not Path("/tmp/escape.h5").exists()


def test_issue_16_resume_ignores_crafted_part_files(population, reference, tmp_path):
    """A part file whose name or content does not match a valid particle id is not used."""
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    parts.mkdir()
    run_batch([population / "a" / "p0.ptu"], tmp_path / "one.h5")
    (parts / "p2.h5").write_bytes((tmp_path / "one.h5").read_bytes())  # holds p0, named p2
    (parts / "..h5").write_bytes(b"junk")
    rep = run_batch([population], out, resume=True, jobs=2)
    assert rep.n_skipped == 0
    assert_same_results(_rows(out), reference)


# --------------------------------------------------------------------------- undecodable names


def test_issue_16_undecodable_file_name_batch(population, tmp_path):
    """A file name with bytes that are not UTF-8: analysed, written, printed (\\xNN)."""
    from click.testing import CliRunner

    from qrspec.cli import main

    folder = os.path.join(os.fsencode(tmp_path), b"in")
    os.mkdir(folder)
    raw = os.path.join(folder, b"caf\xe9.ptu")
    with open(raw, "wb") as fh:
        fh.write((population / "a" / "p0.ptu").read_bytes())
    out = tmp_path / "out.h5"
    rep = run_batch([os.fsdecode(folder)], out)
    assert rep.n_ok == 1
    res = read_results(out)
    assert res.particle_ids == ["caf"]
    assert str(res.summary["source"][0]).endswith("in/caf\\xe9.ptu")
    assert res.particle("caf").source.endswith("in/caf\\xe9.ptu")
    r = CliRunner().invoke(main, ["analyze", os.fsdecode(raw), "-o",
                                  os.fsdecode(raw) + ".h5"])
    shown = os.fsdecode(raw).encode("utf-8", "surrogateescape").decode("utf-8",
                                                                      "backslashreplace")
    assert r.exit_code == 0 and r.output.startswith(f"caf: ok -> {shown}.h5"), r.output


# --------------------------------------------------------------------------- a real full disk


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "qrspec", *map(str, args)], env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _assert_clean_failure(r, target: Path):
    """Exit 1, one message naming the file and the cause, no traceback, no h5py noise."""
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert f"{target}: cannot write" in r.stderr and "No space left on device" in r.stderr, \
        r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-3000:]


@pytest.mark.parametrize("command", ["analyze", "export-photon-hdf5"])
def test_issue_16_disk_full_single_file(population, small_tmpfs, command):
    """`analyze` segfaulted (exit 139, h5py close) and `export-photon-hdf5` exited 0 with a
    corrupt file on a full disk. Now: exit 1, the message, nothing left on the disk."""
    disk = small_tmpfs("200k")  # the results file of a 2 s particle is ~250 kB
    out = disk / "out.h5"
    r = _cli(command, population / "a" / "p0.ptu", "-o", out)
    _assert_clean_failure(r, out)
    assert list(disk.iterdir()) == []


def test_issue_16_disk_full_batch_then_resume(population, reference, small_tmpfs):
    """A batch that fills the disk stops with exit 1 and the --resume advice; every file left
    is a valid results file (parts, possibly a checkpointed output), no temp file; after space
    is freed, --resume finishes with the uninterrupted results."""
    disk = small_tmpfs("1m")  # a few of the ~250 kB part files fit, the merged output not
    out = disk / "out.h5"
    r = _cli("batch", population, "-o", out, "-j", "2", "--no-progress")
    _assert_clean_failure(r, out)
    assert "rerun with --resume" in r.stderr
    left = [p for p in disk.rglob("*") if p.is_file()]
    assert not [p for p in left if p.name.endswith(".partial")]
    assert not (disk / "out.h5.lock").exists()
    for p in left:
        read_results(p)  # every file left behind is complete
    assert subprocess.run(["mount", "-o", "remount,size=20m", str(disk)]).returncode == 0
    r = _cli("batch", population, "-o", out, "-j", "2", "--no-progress", "--resume")
    assert r.returncode == 3, r.stderr[-3000:]
    assert_same_results(_rows(out), reference)


# --------------------------------------------------------------------------- issue 16: errors


def test_issue_16_workers_that_cannot_start(population, tmp_path, monkeypatch):
    """Every new worker is dead before it gets its particle: a clear error, not a hang."""
    import qrspec.app.batch as batch

    def assign(self, item, part_path):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(batch._Worker, "assign", assign)
    with pytest.raises(QrspecError, match=r"cannot start batch worker processes"):
        run_batch([population / "a"], tmp_path / "out.h5")


def test_issue_16_lock_file_cannot_be_created(population, tmp_path):
    (tmp_path / "out.h5.lock").mkdir()  # a folder where the lock file belongs
    with pytest.raises(QrspecError, match=r"out\.h5: cannot write: cannot create the lock file "
                                          r".*out\.h5\.lock \(Is a directory\)"):
        run_batch([population / "a"], tmp_path / "out.h5")


def test_issue_16_resume_from_a_file_that_is_not_hdf5(population, tmp_path):
    out = tmp_path / "out.h5"
    out.write_bytes(b"these are not the results you are looking for")
    with pytest.raises(QrspecError, match=r"out\.h5: not a readable HDF5 file .*refusing to "
                                          r"resume from it \(move it away, or use --overwrite"):
        run_batch([population / "a"], out, resume=True)
    assert out.read_bytes().startswith(b"these are not")


def test_issue_16_out_of_memory_is_a_clean_cli_error(population, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import qrspec.analysis.pipeline as pipeline
    from qrspec.cli import main

    def analyze_file(*a, **k):
        raise MemoryError("Unable to allocate 298. GiB for an array")

    monkeypatch.setattr(pipeline, "analyze_file", analyze_file)
    r = CliRunner().invoke(main, ["analyze", str(population / "a" / "p0.ptu"), "-o",
                                  str(tmp_path / "r.h5")])
    assert r.exit_code == 1
    assert "Error: out of memory (Unable to allocate 298. GiB for an array): this input or " \
           "these options need more memory" in r.output
    assert list(tmp_path.iterdir()) == []
