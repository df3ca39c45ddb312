"""Batch analysis of many particles: worker processes, checkpoints, resume, atomic results.

Each particle is analysed in a worker process, which writes the particle's results to
``<output>.parts/<particle_id>.h5`` (atomically). The main process merges the finished parts
(and, with ``resume``, the particles already complete in an existing output) into ``output``
every ``checkpoint_s`` seconds and at the end, always through a temp file + rename
(:mod:`qrspec.io.atomic`). So a batch killed at any moment leaves a valid results file plus
the parts, and ``resume`` finishes the rest without redoing or losing work.

Robustness (issue 16):

* A failing particle is recorded (status, error, traceback) and never stops the batch. The
  workers are qrspec's own processes (not a ``ProcessPoolExecutor``), so the batch knows which
  particle each one holds: a worker that dies (segfault, ``kill -9``, the memory limit), hangs
  or is stopped (SIGSTOP) past ``timeout_s`` is killed and replaced, and only its particle is
  recorded as failed.
* ``memory_limit_mb`` caps each worker's address space (``RLIMIT_AS``): a particle that needs
  more fails with a MemoryError instead of exhausting the machine.
* The output is locked while a batch writes it (``<output>.lock``, a POSIX record lock, which
  the kernel releases when the process dies, so a stale lock of a killed batch is taken over).
* The output never replaces an input (file identity), particle ids read back from an existing
  output or part file must be valid ids (:func:`qrspec.io.files.check_particle_id`: nothing is
  written outside the output folder), and an existing output is checked before it is read for
  ``resume``: no external links, soft links, external storage or virtual datasets, at most
  :data:`qrspec.store.hdf5.MAX_SUMMARY_ROWS` summary rows and
  :data:`qrspec.store.hdf5.MAX_DATASET_BYTES` per dataset (the store's documented maxima).
* A full disk or another problem of the output location stops the batch with a clear error;
  the previous output and the finished part files are kept for ``--resume``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py

from qrspec.analysis.particle import ParticleAnalysis
from qrspec.errors import OutputError, QrspecError
from qrspec.io.atomic import (
    ENVIRONMENT_ERRNOS,
    check_output_path,
    remove_stale_temps,
    remove_stale_temps_in,
)
from qrspec.io.files import check_particle_id, sanitize_id, sha256_file
from qrspec.store.hdf5 import (
    MAX_DATASET_BYTES,
    MAX_SUMMARY_ROWS,
    GroupSelection,
    completed_particles,
    copy_particle_to_part,
    merge_results_from,
    write_particle_file,
)

__all__ = ["ParticleInput", "collect_inputs", "run_batch", "BatchReport", "sanitize_id",
           "DEFAULT_TIMEOUT_S", "default_memory_limit_mb", "write_part", "failed_result"]

logger = logging.getLogger(__name__)

TTTR_SUFFIXES = (".ptu", ".ht3", ".ht2", ".pt3", ".pt2", ".t3r")
#: default per-particle time limit: generous (a 50 MB file takes well under a minute; the
#: first particle of a fresh install also compiles the numba kernels)
DEFAULT_TIMEOUT_S = 1800.0


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
        raise QrspecError(f"group_by={group_by!r} must be 'folder' or 'none'")
    files: list[Path] = []
    for item in inputs:
        p = Path(os.fsdecode(os.fspath(item)))  # bytes names (not UTF-8) too
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
    """Write one particle's part file.

    A result that cannot be written becomes the particle's failed record with the reason. Returns
    what was written.

    Raises
    ------
    OutputError
        A problem of the output location (disk full, quota, permissions, I/O error: errno in
        :data:`qrspec.io.atomic.ENVIRONMENT_ERRNOS`), or not even the failed record can be
        written: a batch-level problem, not the particle's. The batch stops (``--resume``
        continues).
    """
    try:
        write_particle_file(part_path, res, config_json)
        return res
    except Exception as exc:  # the particle's data cannot be stored: record why, go on
        errno_ = getattr(exc, "errno", None)
        if res.status != "ok" or errno_ in ENVIRONMENT_ERRNOS:
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
    """Worker: analyse one particle, write its part file, return (pid, status, error)."""
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


def _check_resumable(f: h5py.File, path: Path) -> None:
    """Refuse a results file that could make a resume read or write anything but its own data.

    External or soft links, external storage, virtual datasets, oversized datasets.
    """
    bad: list[str] = []

    def link(name):
        lk = f.get(name, getlink=True)
        if isinstance(lk, h5py.ExternalLink | h5py.SoftLink):
            bad.append(f"{name} is a {type(lk).__name__}")
            return
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                bad.append(f"{name} has external storage")
            elif obj.is_virtual:
                bad.append(f"{name} is a virtual dataset")
            elif obj.size * obj.dtype.itemsize > MAX_DATASET_BYTES:
                bad.append(f"{name} holds {obj.size * obj.dtype.itemsize} bytes "
                           f"(> {MAX_DATASET_BYTES})")
        return 1 if len(bad) >= 3 else None

    f.visit_links(link)
    if bad:
        raise QrspecError(f"{path}: refusing to resume from this file: " + "; ".join(bad))


def _summary_ids(f: h5py.File, path: Path) -> list[tuple[str, str]]:
    """(particle_id, status) of every summary row, validated, without reading other columns."""
    ds = f.get("summary")
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.names is None \
            or not {"particle_id", "status"} <= set(ds.dtype.names):
        raise QrspecError(f"{path}: not a qrspec results file (no valid /summary table)")
    if ds.shape[0] > MAX_SUMMARY_ROWS:
        raise QrspecError(f"{path}: /summary has {ds.shape[0]} rows (> {MAX_SUMMARY_ROWS}); "
                          "refusing to resume from it")
    rows = ds.fields(["particle_id", "status"])[()]
    out = []
    for r in rows:
        pid = check_particle_id(r["particle_id"], str(path))
        out.append((pid, r["status"].decode("utf-8", "replace")))
    return out


def _complete_in_output(output: Path) -> dict[str, str]:
    """Particle ids and status of an existing results file, checked.

    No links, external storage, virtual or oversized datasets anywhere (:func:`_check_resumable`),
    then the store's reader (format and version, documented maxima, valid ids). A file that fails
    is an error, never skipped: the resumed batch rewrites the output, and what it cannot read it
    would lose.
    """
    advice = "; refusing to resume from it (move it away, or use --overwrite to replace it)"
    try:
        f = h5py.File(output, "r")
    except OSError as exc:
        raise QrspecError(f"{output}: not a readable HDF5 file ({exc}){advice}") from None
    with f:
        _check_resumable(f, output)
    try:
        ids = completed_particles(output)
    except QrspecError as exc:
        raise QrspecError(f"{exc}{advice}") from None
    with h5py.File(output, "r") as f:
        for pid in ids:
            if not isinstance(f.get(f"particles/{pid}"), h5py.Group):
                raise QrspecError(f"{output}: particle_id={pid!r} has a /summary row but no "
                                  f"/particles group{advice}")
    return ids


def _valid_part(path: Path) -> str | None:
    """Status of a finished part file, or None if it is unreadable or not the named particle's.

    None also when the file is not a part file of the particle its name says (an id that is not
    valid is never used).
    """
    try:
        check_particle_id(path.stem)
        with h5py.File(path, "r") as f:
            _check_resumable(f, path)
            ids = _summary_ids(f, path)
            if len(ids) != 1 or ids[0][0] != path.stem or f"particles/{path.stem}" not in f:
                return None
            return ids[0][1]
    except (OSError, KeyError, QrspecError):
        return None


def _merge(output: Path, sources: dict, order: list[str], config_json: str,
           selection: GroupSelection | None = None):
    """Atomically write ``output`` from ``sources`` (pid -> h5 file holding that particle).

    ``selection``: the particle filter and pooled dwell laws of ``/groups``.
    """
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
        if isinstance(exc, OutputError):
            what = exc.reason
            where = f" ({exc.path})" if exc.path != str(output) else ""
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
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    memory_limit_mb: int | None = None,
    particle_filter: str | None = None,
    exclude=None,
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
        Called once per input particle: with its status when it finishes, or with
        "resumed" (at the start) when ``resume`` takes it from an earlier run.
    checkpoint_s : float
        Seconds between intermediate merges of finished particles into ``output``.
    executor : concurrent.futures.Executor, optional
        Run the particles there instead of qrspec's worker processes (e.g. a dask.distributed
        cluster, :func:`qrspec.app.dask_backend.dask_executor`); workers return results and
        this process alone writes them, with the same outputs and resume semantics. ``jobs``,
        ``timeout_s`` and ``memory_limit_mb`` are then not applied (use the cluster's own
        limits).
    timeout_s : float or None
        Wall-time limit of one particle (default :data:`DEFAULT_TIMEOUT_S`); a worker that
        exceeds it (hung, or stopped with SIGSTOP) is killed and the particle recorded as
        failed. None: no limit.
    memory_limit_mb : int or None
        Address-space limit of each worker (``RLIMIT_AS``) in MiB; a particle needing more
        fails with a MemoryError. None: :func:`default_memory_limit_mb` (80 % of the RAM
        shared by the workers); 0: no limit.
    particle_filter : str, optional
        Filter expression over the summary columns (:mod:`qrspec.app.filters`, e.g.
        ``"single_emitter and rate_cps > 5000"``): every particle is analysed and stored, the
        group statistics and pooled dwell laws of ``/groups`` use the selected ones, and the
        expression is recorded (attribute ``filter`` of the file and of ``/groups``). Checked
        before any particle is analysed.
    exclude : ExclusionList, str, Path or dict, optional
        An exclusion list (:mod:`qrspec.app.exclude`, e.g. saved from the HTML report): every
        particle is analysed and stored, the group statistics and pooled dwell laws leave the
        listed ones out, and the list is recorded (attribute ``exclude``,
        :attr:`qrspec.store.hdf5.Results.excluded`). Read and checked before any particle is
        analysed: ids that are not among the inputs (nor, with ``resume``, in ``output``) are
        an error.

    Returns
    -------
    BatchReport

    Raises
    ------
    QrspecError
        No input files; the output exists without ``resume``/``overwrite``, is an input, a
        folder or a device, or is locked by another running batch ("locked by pid N"); an
        existing output cannot be resumed from (unreadable, invalid particle ids, external
        links or storage, oversized); or the results cannot be written (disk full,
        permissions): the message says so, the previous ``output`` is unchanged and the
        finished particles are kept in ``<output>.parts`` for ``resume``.
    """
    from qrspec.analysis.config import AnalysisConfig

    t0 = time.perf_counter()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise QrspecError(f"jobs={jobs!r} must be a positive integer")
    if resume and overwrite:
        raise QrspecError("resume=True and overwrite=True are mutually exclusive")
    if timeout_s is not None and (isinstance(timeout_s, bool)
                                  or not isinstance(timeout_s, int | float)
                                  or not 0 < timeout_s < float("inf")):
        raise QrspecError(f"timeout_s={timeout_s!r} must be a positive number of seconds "
                          "or None")
    if memory_limit_mb is None:
        memory_limit_mb = default_memory_limit_mb(jobs)
    if isinstance(memory_limit_mb, bool) or not isinstance(memory_limit_mb, int) \
            or memory_limit_mb < 0 or 0 < memory_limit_mb < 256:
        raise QrspecError(f"memory_limit_mb={memory_limit_mb!r} must be an integer >= 256 "
                          "(MiB), or 0 for no limit")
    config = config or AnalysisConfig()
    config_json = config.to_json()
    pf = None
    if particle_filter is not None:
        from qrspec.app.filters import parse_filter
        from qrspec.store.summary import SUMMARY_COLUMNS

        pf = parse_filter(particle_filter, [c[0] for c in SUMMARY_COLUMNS])
    excl = None
    if exclude is not None:
        from qrspec.app.exclude import as_exclusion

        excl = as_exclusion(exclude)
    output = Path(os.fsdecode(os.fspath(output)))
    items = collect_inputs(inputs, group_by=group_by)
    if not items:
        raise QrspecError("no TTTR files found in the inputs")
    if excl is not None:
        known = {it.particle_id for it in items}
        if resume and output.exists():
            known |= set(_complete_in_output(output))
        unknown = [x for x in excl.particles if x not in known]
        if unknown:
            raise QrspecError(f"{excl.source or 'exclusion list'}: {len(unknown)} particle ids "
                              f"are not among the batch's particles: {unknown[:5]}"
                              f"{' ...' if len(unknown) > 5 else ''}")
    check_output_path(output, inputs=[it.path for it in items], overwrite=True, probe=True)
    parts_dir = output.with_name(output.name + ".parts")
    with _BatchLock(output):
        if output.exists() and not (resume or overwrite):
            raise QrspecError(f"{output}: exists; use --resume to finish it or --overwrite to "
                              "replace it")
        with _io_errors(output):
            remove_stale_temps(output)
            if overwrite and parts_dir.exists():
                shutil.rmtree(parts_dir)
            parts_dir.mkdir(exist_ok=True)
            remove_stale_temps_in(parts_dir)  # of workers killed with an earlier batch
        report = _run_locked(items, output, parts_dir, config_json, jobs=jobs, resume=resume,
                             progress=progress, checkpoint_s=checkpoint_s, executor=executor,
                             timeout_s=timeout_s, memory_limit_mb=memory_limit_mb,
                             particle_filter=pf, exclusion=excl)
    return BatchReport(**{**report, "wall_s": time.perf_counter() - t0})


def _run_locked(items, output: Path, parts_dir: Path, config_json: str, *, jobs, resume,
                progress, checkpoint_s, executor, timeout_s, memory_limit_mb,
                particle_filter=None, exclusion=None) -> dict:
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
    if progress:  # every input particle is reported once: resumed ones now
        for it in items:
            if it.particle_id in sources:
                progress(it.particle_id, "resumed")
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

    ex = {} if exclusion is None else dict(
        exclude=tuple(exclusion.particles), exclude_reason=tuple(exclusion.reason.items()),
        exclude_source=Path(exclusion.source).name if exclusion.source else "")
    checkpoint_sel = GroupSelection(particle_filter=particle_filter, **ex)

    def tick():
        if time.monotonic() - last[0] >= checkpoint_s:
            _merge(output, sources, order, config_json, checkpoint_sel)
            last[0] = time.monotonic()

    finished = False  # the final merge fits the pooled dwell laws (seconds: not at checkpoints)
    try:
        with _io_errors(output):  # e.g. a worker could not write its part file (disk full)
            if executor is not None:
                _run_executor(executor, todo, config_json, parts_dir, finish, tick)
            elif todo:
                _run_workers(todo, config_json, parts_dir, jobs, finish, tick,
                             timeout_s=timeout_s, memory_limit_mb=memory_limit_mb)
        finished = True
    finally:
        if sources:
            _merge(output, sources, order, config_json,
                   GroupSelection(particle_filter=particle_filter, pooled_dwell=finished, **ex))
    # second pass: rods without a neutral period get their group's pooled reference
    from qrspec.app.pooled import apply_group_references

    with _io_errors(output):
        if sources and apply_group_references(output, sources, parts_dir, config_json):
            _merge(output, sources, order, config_json,
                   GroupSelection(particle_filter=particle_filter, pooled_dwell=finished, **ex))
    shutil.rmtree(parts_dir, ignore_errors=True)
    failed = [(pid, err) for pid, st, err in _summary_status(output) if st != "ok"
              and pid in wanted]
    n_ok = sum(1 for p in wanted if statuses.get(p) == "ok")
    return dict(output=str(output), n_particles=len(items), n_ok=n_ok, n_failed=len(failed),
                n_skipped=n_skipped, failed=tuple(failed))


def default_memory_limit_mb(jobs: int) -> int:
    """Per-worker address-space limit.

    80 % of the physical RAM divided among ``jobs`` workers (at least 1 GiB); 0 (no limit) where
    the RAM size is unknown.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
    return max(1024, int(0.8 * total / max(jobs, 1) / (1 << 20)))


class _BatchLock:
    """``<output>.lock``: held (POSIX record lock) while a batch writes ``output``.

    The kernel drops the lock when its process dies, so the lock of a killed batch is taken
    over by the next one; forked workers do not inherit it. The file names the holder
    (``pid host``) for the message of a batch that finds it locked.
    """

    def __init__(self, output: Path):
        self.output = output
        self.path = output.with_name(output.name + ".lock")
        self.fd: int | None = None

    def __enter__(self):
        import fcntl

        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                             0o666)
            except OSError as exc:
                raise OutputError(self.output, f"cannot create the lock file {self.path} "
                                               f"({exc.strerror or exc})", exc.errno) from None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = ""
                with contextlib.suppress(OSError):
                    holder = os.pread(fd, 200, 0).decode("ascii", "replace").split()
                os.close(fd)
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise OutputError(self.path, exc.strerror or str(exc), exc.errno) \
                        from None
                who = (f"pid {holder[0]}" + (f" on {holder[1]}" if len(holder) > 1 else "")
                       if holder else "another process")
                raise QrspecError(f"{self.output}: locked by {who}: another batch is writing "
                                  "this output; wait for it to finish or choose another "
                                  "output") from None
            try:  # the previous holder may have removed the file meanwhile: lock the new one
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
                self.fd = fd
                return self
            os.close(fd)
        raise QrspecError(f"{self.output}: could not lock {self.path} (it keeps changing)")

    def __exit__(self, *exc):
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)  # releases the lock
            self.fd = None


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


def _run_executor(executor, items, config_json, parts_dir: Path, finish, tick) -> None:
    """Run ``items`` on an external executor whose workers return ParticleAnalysis.

    This process writes the part files. A task that raises (e.g. dask's KilledWorker after a worker
    died repeatedly) is recorded as a failed particle.
    """
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


# --------------------------------------------------------------------------- workers


def _watch_parent(parent_pid: int) -> None:
    """A worker exits when the batch process is gone (e.g. ``kill -9`` of the batch)."""
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="qrspec-parent-watch", daemon=True).start()


def _worker_main(conn, parent_pid: int, memory_limit_mb: int, config_json: str) -> None:
    """Worker process: analyse the particles sent on ``conn`` one at a time.

    Each is answered with ``("done", pid, status, error)``, or ``("error", exception)`` when the
    part file cannot be written for a reason that stops the batch (disk full).
    """
    # Ctrl-C is the batch process's to handle (it kills the workers). SIGINT arrives blocked
    # (see _Worker): ignore it before unblocking, so no worker ever prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _watch_parent(parent_pid)
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb << 20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        item, part_path = task
        try:
            msg = ("done", *_analyze_one(item, config_json, part_path))
        except Exception as exc:  # only write errors of the output location get here
            msg = ("error", exc)
        try:
            conn.send(msg)
        except Exception:  # an unpicklable exception: send its text
            conn.send(("error", QrspecError(f"{type(msg[1]).__name__}: {msg[1]}")))


class _Worker:
    """A worker process, its pipe, and the particle it holds (None when idle)."""

    def __init__(self, ctx, parent_pid, memory_limit_mb, config_json):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, name="qrspec-batch-worker",
                                args=(child, parent_pid, memory_limit_mb, config_json),
                                daemon=True)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        child.close()
        self.item: ParticleInput | None = None
        self.started = 0.0

    def assign(self, item: ParticleInput, part_path: str) -> None:
        self.conn.send((item, part_path))
        self.item = item
        self.started = time.monotonic()

    def kill(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(self.proc.pid, signal.SIGKILL)  # also ends a stopped (SIGSTOP) one
        self.proc.join(timeout=10)
        self.conn.close()


def _died(proc) -> str:
    code = proc.exitcode
    if code is None:
        return "worker process died while analysing this particle"
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        how = f"killed by {sig}"
    else:
        how = f"exit code {code}"
    return (f"worker process died while analysing this particle ({how}: a crash, the "
            "memory limit or an external kill)")


def _run_workers(items, config_json, parts_dir: Path, jobs: int, finish, tick, *,
                 timeout_s: float | None, memory_limit_mb: int) -> None:
    """Run ``items`` on ``jobs`` worker processes.

    A worker that dies, or holds a particle longer than ``timeout_s``, is killed and replaced; its
    particle is recorded as failed.
    """
    import multiprocessing
    from multiprocessing.connection import wait as mp_wait

    ctx = multiprocessing.get_context()
    queue = deque(items)
    workers: list[_Worker] = []

    def part(it):  # ids come from sanitize_id; checked again before they name a file
        return str(parts_dir / f"{check_particle_id(it.particle_id)}.h5")

    def record_failure(it, reason):
        res = failed_result(it, reason)
        write_part(part(it), res, config_json, it)
        finish(it.particle_id, "failed")

    def start_worker():
        w = _Worker(ctx, os.getpid(), memory_limit_mb, config_json)
        workers.append(w)
        return w

    def feed(w):
        w.item = None
        if not queue:
            return
        it = queue.popleft()
        for attempt in range(2):
            try:
                w.assign(it, part(it))
                return
            except OSError:  # the idle worker is gone (killed from outside): replace it
                w.kill()
                workers.remove(w)
                if attempt:
                    queue.appendleft(it)
                    raise QrspecError("cannot start batch worker processes (each one died "
                                      "at once)") from None
                w = start_worker()

    try:
        for _ in range(min(jobs, len(queue))):
            feed(start_worker())
        while True:
            busy = [w for w in workers if w.item is not None]
            if not busy:
                break
            wait_s = 1.0
            if timeout_s is not None:
                now = time.monotonic()
                wait_s = max(0.0, min(wait_s, min(w.started + timeout_s - now for w in busy)))
            ready = set(mp_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                timeout=wait_s))
            for w in busy:
                it = w.item
                msg = None
                if w.conn in ready or w.proc.sentinel in ready:
                    try:
                        if w.conn.poll():
                            msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is None and w.proc.sentinel not in ready:
                        continue  # spurious wake-up
                if msg is not None:
                    if msg[0] == "error":
                        raise msg[1]
                    _, pid, status, _err = msg
                    finish(pid, status)
                    feed(w)
                    continue
                if w.proc.sentinel in ready:  # died without an answer
                    w.proc.join(timeout=5)
                    reason = _died(w.proc)
                elif timeout_s is not None and time.monotonic() - w.started >= timeout_s:
                    stopped = _is_stopped(w.proc.pid)
                    reason = (f"timed out after {timeout_s:g} s (timeout_s; the worker was "
                              f"{'stopped' if stopped else 'still running'} and was killed)")
                else:
                    continue
                logger.warning("%s: %s", it.particle_id, reason)
                w.kill()
                workers.remove(w)
                remove_stale_temps_in(parts_dir)
                record_failure(it, reason)
                if queue:
                    feed(start_worker())
            tick()
    finally:
        for w in workers:  # idle ones get a polite stop, the rest are killed
            if w.item is None and w.proc.is_alive():
                with contextlib.suppress(OSError):
                    w.conn.send(None)
                w.proc.join(timeout=2)
            w.kill()
        remove_stale_temps_in(parts_dir)  # temp files of workers killed while writing


def _is_stopped(pid: int) -> bool:
    """True when the process is stopped (SIGSTOP / SIGTSTP) or traced."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False
