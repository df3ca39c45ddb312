"""Batch analysis of many particles: a process pool, checkpoints, resume, atomic results.

Each particle is analysed in a worker process, which writes the particle's results to
``<output>.parts/<particle_id>.h5`` (atomically). The main process merges the finished parts
(and, with ``resume``, the particles already complete in an existing output) into ``output``
every ``checkpoint_s`` seconds and at the end, always through ``<output>.partial`` + rename.
So a batch killed at any moment leaves a valid results file plus the parts, and ``resume``
finishes the rest without redoing or losing work. A failing particle is recorded (status,
error, traceback) and never stops the batch; a worker that dies (segfault, kill) is detected
and its particle recorded as failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py

from qrspec.analysis.particle import ParticleAnalysis
from qrspec.errors import OutputError, QrspecError
from qrspec.io.files import sanitize_id, sha256_file
from qrspec.store.hdf5 import (
    GroupSelection,
    completed_particles,
    copy_particle_to_part,
    merge_results_from,
    write_particle_file,
)

__all__ = ["ParticleInput", "collect_inputs", "run_batch", "BatchReport", "sanitize_id"]

logger = logging.getLogger(__name__)

TTTR_SUFFIXES = (".ptu", ".ht3", ".ht2", ".pt3", ".pt2", ".t3r")


@dataclass(frozen=True)
class ParticleInput:
    """One file to analyse."""

    path: str
    particle_id: str
    group: str


@dataclass(frozen=True)
class BatchReport:
    """What a batch did."""

    output: str
    n_particles: int
    n_ok: int
    n_failed: int
    n_skipped: int
    failed: tuple  # (particle_id, error) pairs
    wall_s: float

    @property
    def exit_code(self) -> int:
        """0 when every particle succeeded, 3 when some failed."""
        return 3 if self.n_failed else 0




def collect_inputs(inputs: Iterable, *, group_by: str = "folder") -> list[ParticleInput]:
    """Files and folders (searched recursively for TTTR files) -> particles with unique ids.

    Parameters
    ----------
    group_by : {"folder", "none"}
        ``folder``: the group is the name of the file's parent folder; ``none``: one group "all".
    """
    if group_by not in ("folder", "none"):
        raise ValueError(f"group_by={group_by!r} must be 'folder' or 'none'")
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file()
                           and q.suffix.lower() in TTTR_SUFFIXES)
            if not found:
                logger.warning("%s: folder holds no TTTR files", p)
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise QrspecError(f"{p}: no such file or folder")
    seen: dict[str, int] = {}
    out = []
    unique = list(dict.fromkeys(os.path.abspath(f) for f in files))
    for f in unique:
        f = Path(f)
        group = f.parent.name if group_by == "folder" else "all"
        base = sanitize_id(f.stem)
        pid = base
        # ids are compared case-insensitively: part files <id>.h5 must not collide on a
        # case-insensitive file system
        if pid.lower() in seen:  # duplicate stem (e.g. same name in two folders)
            pid = sanitize_id(f"{group}_{base}")
            k = 2
            while pid.lower() in seen:  # the suffix survives truncation: always terminates
                pid = sanitize_id(f"{group}_{base}", suffix=f"_{k}")
                k += 1
        seen[pid.lower()] = 1
        out.append(ParticleInput(str(f), pid, sanitize_id(group)))
    return out



def _analyze_result(item: ParticleInput, config_json: str) -> ParticleAnalysis:
    """Analyse one particle; every failure becomes a failed ParticleAnalysis."""
    from qrspec.analysis.config import AnalysisConfig
    from qrspec.analysis.pipeline import analyze_file

    if os.environ.get("QRSPEC_TEST_CRASH_ON") == item.particle_id:
        # TEST-ONLY hook (tests/test_faults.py): die like a segfaulting worker (exit 139,
        # no cleanup) to check that the batch records the particle as failed
        os._exit(139)
    try:
        config = AnalysisConfig.from_json(config_json)
        return analyze_file(item.path, config, particle_id=item.particle_id, group=item.group)
    except Exception as exc:  # one bad particle must never stop the batch: record it
        return failed_result(item, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def write_part(part_path, res: ParticleAnalysis, config_json: str, item: ParticleInput
               ) -> ParticleAnalysis:
    """Write one particle's part file; a result that cannot be written becomes the particle's
    failed record with the reason. Returns what was written.

    Raises
    ------
    OutputError
        Not even the failed record can be written (disk full, permissions): a batch-level
        problem, not the particle's.
    """
    try:
        write_particle_file(part_path, res, config_json)
        return res
    except Exception as exc:  # the particle's data cannot be stored: record why, go on
        if res.status != "ok":
            raise
        reason = str(exc) if isinstance(exc, QrspecError) else \
            f"cannot write results: {type(exc).__name__}: {exc}"
        failed = failed_result(item, reason, traceback.format_exc())
        try:
            write_particle_file(part_path, failed, config_json)
        except Exception:
            raise exc from None
        return failed


def _analyze_one(item: ParticleInput, config_json: str, part_path: str) -> tuple:
    """Pool worker: analyse one particle, write its part file, return (pid, status, error)."""
    res = write_part(part_path, _analyze_result(item, config_json), config_json, item)
    return item.particle_id, res.status, res.error


def failed_result(item: ParticleInput, error: str, tb: str = "") -> ParticleAnalysis:
    """A ParticleAnalysis recording a failure."""
    try:
        sha = sha256_file(item.path)
    except (OSError, QrspecError):  # missing, unreadable or not a regular file (a FIFO)
        sha = ""
    return ParticleAnalysis.failed(item.particle_id, item.group, item.path, error,
                                   source_sha256=sha, traceback=tb)


def _complete_in_output(output: Path) -> dict[str, str]:
    """Particle ids with status ok in an existing results file (empty if unreadable)."""
    try:
        return completed_particles(output)
    except (OSError, QrspecError) as exc:
        logger.warning("%s: existing output unreadable (%s); resuming from checkpoints only",
                       output, exc)
        return {}


def _valid_part(path: Path) -> str | None:
    """Status of a finished part file, or None if it is unreadable."""
    try:
        with h5py.File(path, "r") as f:
            return f["summary"][0]["status"].decode()
    except (OSError, KeyError, IndexError):
        return None


def _merge(output: Path, sources: dict, order: list[str], config_json: str,
           selection: GroupSelection | None = None):
    """Atomically write ``output`` from ``sources`` (pid -> h5 file holding that particle);
    ``selection``: the particle filter and pooled dwell laws of ``/groups``."""
    pids = [p for p in order if p in sources]
    with _io_errors(output):
        merge_results_from([(sources[p], p) for p in pids], output, config_json,
                           selection=selection)


@contextmanager
def _io_errors(output: Path):
    """Turn an OSError (disk full, permissions, ...) into a QrspecError naming the output.

    Every write is atomic (``.partial`` + rename), so the previous ``output`` and the finished
    part files in ``<output>.parts`` are intact and ``--resume`` continues from them.
    """
    try:
        yield
    except (OSError, OutputError) as exc:
        if isinstance(exc, OutputError):  # the cause, and which file (a part file or output)
            what, where = exc.reason, "" if exc.path == str(output) else f" ({exc.path})"
        else:
            what = exc.strerror or str(exc)
            where = f" ({exc.filename})" if exc.filename else ""
        raise QrspecError(f"{output}: cannot write results: {what}{where}. Results finished "
                          f"so far are kept ({output.name} is unchanged, finished particles "
                          f"are in {output.name}.parts); fix the problem and rerun with "
                          "--resume") from exc


def run_batch(
    inputs,
    output,
    config=None,
    *,
    jobs: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    group_by: str = "folder",
    progress: Callable[[str, str], None] | None = None,
    checkpoint_s: float = 30.0,
    executor=None,
    particle_filter: str | None = None,
) -> BatchReport:
    """Analyse every particle in ``inputs`` and write one results file.

    Parameters
    ----------
    inputs : iterable of path
        Files and folders (recursive search for ``*.ptu`` and legacy TTTR files).
    output : path
        Results HDF5 file.
    config : AnalysisConfig, optional
        Analysis parameters (defaults when None).
    jobs : int
        Worker processes.
    resume : bool
        Skip particles already complete in ``output`` or its checkpoints.
    overwrite : bool
        Replace an existing ``output``.
    progress : callable(particle_id, status), optional
        Called once per finished particle.
    checkpoint_s : float
        Seconds between intermediate merges of finished particles into ``output``.
    executor : concurrent.futures.Executor, optional
        Run the particles there instead of a local process pool (e.g. a dask.distributed
        cluster, :func:`qrspec.app.dask_backend.dask_executor`); workers return results and this
        process alone writes them, with the same outputs and resume semantics. ``jobs`` is
        then ignored.
    particle_filter : str, optional
        Filter expression over the summary columns (:mod:`qrspec.app.filters`, e.g.
        ``"single_emitter and rate_cps > 5000"``): every particle is analysed and stored, the
        group statistics and pooled dwell laws of ``/groups`` use the selected ones, and the
        expression is recorded (attribute ``filter`` of the file and of ``/groups``). Checked
        before any particle is analysed.

    Returns
    -------
    BatchReport

    Raises
    ------
    QrspecError
        Output exists without ``resume``/``overwrite``, no input files, or the results cannot
        be written (disk full, permissions): the message says so, the previous ``output`` is
        unchanged and the finished particles are kept in ``<output>.parts`` for ``resume``.
    """
    from qrspec.analysis.config import AnalysisConfig

    t0 = time.perf_counter()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be a positive integer")
    if resume and overwrite:
        raise ValueError("resume=True and overwrite=True are mutually exclusive")
    config = config or AnalysisConfig()
    config_json = config.to_json()
    pf = None
    if particle_filter is not None:
        from qrspec.app.filters import parse_filter
        from qrspec.store.summary import SUMMARY_COLUMNS

        pf = parse_filter(particle_filter, [c[0] for c in SUMMARY_COLUMNS])
    checkpoint_sel = GroupSelection(particle_filter=pf)
    output = Path(output)
    items = collect_inputs(inputs, group_by=group_by)
    if not items:
        raise QrspecError("no TTTR files found in the inputs")
    parts_dir = output.with_name(output.name + ".parts")
    if output.exists() and not (resume or overwrite):
        raise QrspecError(f"{output}: exists; use --resume to finish it or --overwrite to "
                          "replace it")
    if not output.parent.exists():
        raise QrspecError(f"{output.parent}: output folder does not exist")
    with _io_errors(output):
        _remove_stale_partials(output)
        if overwrite and parts_dir.exists():
            shutil.rmtree(parts_dir)
        parts_dir.mkdir(exist_ok=True)

    sources: dict[str, str] = {}  # pid -> file holding its finished result
    statuses: dict[str, str] = {}
    if resume:
        if output.exists():
            for pid, st in _complete_in_output(output).items():
                if st == "ok":
                    sources[pid] = str(output)
                    statuses[pid] = st
        for part in parts_dir.glob("*.h5"):
            st = _valid_part(part)
            if st == "ok":
                sources[part.stem] = str(part)
                statuses[part.stem] = st
    wanted = {it.particle_id for it in items}
    order = [it.particle_id for it in items]
    # keep earlier complete particles that are not among the inputs this time, too
    order += sorted(p for p in sources if p not in wanted)
    todo = [it for it in items if it.particle_id not in sources]
    n_skipped = len(items) - len(todo)
    if resume and output.exists():
        # the output is rewritten from copies: stage its complete particles as part files
        with _io_errors(output):
            sources = _stage_output(output, sources, parts_dir)

    def finish(pid, status):
        sources[pid] = str(parts_dir / f"{pid}.h5")
        statuses[pid] = status
        if progress:
            progress(pid, status)

    last = [time.monotonic()]

    def tick():
        if time.monotonic() - last[0] >= checkpoint_s:
            _merge(output, sources, order, config_json, checkpoint_sel)
            last[0] = time.monotonic()

    finished = False  # the final merge fits the pooled dwell laws (seconds: not at checkpoints)

    try:
        with _io_errors(output):  # e.g. a worker could not write its part file (disk full)
            if executor is not None:
                crashed = []
                _run_executor(executor, todo, config_json, parts_dir, finish, tick)
            else:
                crashed = _run_pool(todo, config_json, parts_dir, jobs, finish, tick) \
                    if todo else []
            for it in crashed:  # isolate: one pool per suspect, so the culprit is known
                if _run_pool([it], config_json, parts_dir, 1, finish, tick):
                    res = failed_result(it, "worker process died while analysing this "
                                        "particle (crash or killed)")
                    write_particle_file(parts_dir / f"{it.particle_id}.h5", res, config_json)
                    finish(it.particle_id, "failed")
        finished = True
    finally:
        if sources:
            _merge(output, sources, order, config_json,
                   GroupSelection(particle_filter=pf, pooled_dwell=finished))
    shutil.rmtree(parts_dir, ignore_errors=True)
    failed = [(pid, err) for pid, st, err in _summary_status(output) if st != "ok"
              and pid in wanted]
    n_ok = sum(1 for p in wanted if statuses.get(p) == "ok")
    return BatchReport(output=str(output), n_particles=len(items), n_ok=n_ok,
                       n_failed=len(failed), n_skipped=n_skipped, failed=tuple(failed),
                       wall_s=time.perf_counter() - t0)


def _summary_status(output: Path) -> list[tuple[str, str, str]]:
    from qrspec.store.hdf5 import read_results

    rows = read_results(output).summary
    return [(str(r["particle_id"]), str(r["status"]), str(r["error"])) for r in rows]


def _stage_output(output: Path, sources: dict, parts_dir: Path) -> dict:
    """Copy particles held in ``output`` into part files so the output can be rewritten."""
    out = {}
    for pid, src in sources.items():
        if src == str(output):
            dst = parts_dir / f"{pid}.h5"
            if not dst.exists():
                copy_particle_to_part(output, pid, dst)
            out[pid] = str(dst)
        else:
            out[pid] = src
    return out


def _worker_init(parent_pid: int):
    """Pool initializer: a worker exits when the batch process is gone (e.g. ``kill -9``).

    Without this, the idle workers of a killed batch wait on their task queue forever (it never
    reports end-of-file, because every worker holds the queue's write end too).
    """
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="qrspec-parent-watch", daemon=True).start()


def _remove_stale_partials(output: Path):
    """Delete temp files of ``output`` left by a killed batch (dead writer pid)."""
    from qrspec.io.atomic import remove_stale_temps

    remove_stale_temps(output)


def _run_executor(executor, items, config_json, parts_dir: Path, finish, tick) -> None:
    """Run ``items`` on an external executor whose workers return ParticleAnalysis; this
    process writes the part files. A task that raises (e.g. dask's KilledWorker after a
    worker died repeatedly) is recorded as a failed particle."""
    futs = {executor.submit(_analyze_result, it, config_json): it for it in items}
    not_done = set(futs)
    try:
        while not_done:
            done, not_done = wait(not_done, timeout=1.0, return_when=FIRST_COMPLETED)
            for fu in done:
                it = futs[fu]
                try:
                    res = fu.result()
                except Exception as exc:  # the task itself died: record, go on
                    res = failed_result(it, f"worker failed: {type(exc).__name__}: {exc}")
                res = write_part(parts_dir / f"{it.particle_id}.h5", res, config_json, it)
                finish(it.particle_id, res.status)
            tick()
    except BaseException:
        for fu in not_done:
            fu.cancel()
        raise


def _run_pool(items, config_json, parts_dir: Path, jobs: int, finish, tick) -> list:
    """Run ``items`` in a process pool; return the items whose worker died."""
    crashed = []
    ex = ProcessPoolExecutor(max_workers=min(jobs, len(items)), initializer=_worker_init,
                             initargs=(os.getpid(),))
    try:
        futs = {ex.submit(_analyze_one, it, config_json, str(parts_dir / f"{it.particle_id}.h5")):
                it for it in items}
        not_done = set(futs)
        while not_done:
            done, not_done = wait(not_done, timeout=1.0, return_when=FIRST_COMPLETED)
            for fu in done:
                it = futs[fu]
                try:
                    pid, status, _ = fu.result()
                except BrokenProcessPool:
                    crashed.append(it)
                    continue
                finish(pid, status)
            tick()
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return crashed
