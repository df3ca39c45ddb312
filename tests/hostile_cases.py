"""The hostile-input catalogue of issue 16: a generator of cases, run as ``qrspec`` subprocesses.

Every case builds its inputs in a fresh folder (nothing binary is committed), runs one
``qrspec`` command line (or a small harness around it), and is *handled* when

* it ends within the time limit (no hang) and not by a signal (no crash),
* stdout/stderr hold no Python traceback and no "Exception ignored" noise,
* the exit code is one the README allows for it (``exit``), and the output matches ``expect``,
* the peak RSS of its whole process group stays under the limit (default 2 GB) and it did not
  run out of the runner's address-space cap ("out of memory" is a memory bomb, not a success),
* no file that existed before the run changed (inputs are never touched), no temp
  (``*.partial``) or lock file is left, and the case's own ``check`` finds nothing.

``tests/test_hostile.py`` runs the cheap cases in the suite; ``scripts/run_hostile.py`` runs
them all and prints handled / tried, the worst time and the worst peak RSS, and every failure
with its owner (the helper whose code must change).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# --------------------------------------------------------------------------- the case type


@dataclass
class Run:
    """What a case's ``make`` returns: the command line and what is expected of it."""

    argv: list  # qrspec arguments (str, Path or bytes)
    exit: tuple = (1,)
    expect: str | None = None  # regex searched in stderr + stdout
    harness: str | None = None  # python code run instead of ``-m qrspec`` (sys.argv = argv)
    env: dict = field(default_factory=dict)
    check: Callable | None = None  # check(work, proc) -> list of problems
    cleanup: Callable | None = None
    may_change: tuple = ()  # pre-existing files the command may replace (--overwrite)
    timeout_s: float | None = None


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    owner: str  # reliab, io, stats, arch: whose code handles it
    make: Callable  # make(work: Path, base: Path) -> Run
    cheap: bool = False  # run in the test suite
    needs: str = ""  # "tmpfs": a mountable tmpfs (root)


CASES: list[Case] = []


def case(category: str, owner: str = "reliab", *, cheap: bool = False, needs: str = "",
         name: str | None = None):
    def deco(fn):
        CASES.append(Case(name or fn.__name__, category, owner, fn, cheap, needs))
        return fn

    return deco


# --------------------------------------------------------------------------- input builders


def base_particle(folder: Path) -> Path:
    """A valid 2 s simulated particle (created once per folder)."""
    p = Path(folder) / "base.ptu"
    if not p.exists():
        from qrspec.simulate import preset, simulate_particle
        from qrspec.simulate.sidecar import write_particle

        sim = simulate_particle(preset("neutral", duration_s=2.0), seed=16)
        write_particle(sim, p, sidecar=False)
    return p


def _copy(src: Path, dst: Path) -> Path:
    dst = Path(dst)
    dst.write_bytes(Path(src).read_bytes())
    return dst


def _raw_ptu(path, records, **kw):
    sys.path.insert(0, str(TESTS))
    from conftest import raw_ptu

    return raw_ptu(path, records, **kw)


HH2T3 = 0x01010304
GENERIC_T3 = 0x00010307


def _hh2t3_records(nsync, chan, dtime):
    """HydraHarp V2 T3 photon records (special bit 0)."""
    return ((np.asarray(chan, np.uint32) << 25) | (np.asarray(dtime, np.uint32) << 10)
            | np.asarray(nsync, np.uint32)).astype("<u4")


def _results_file(path: Path, pids=("p0", "p2", "p4")) -> Path:
    """A small, valid qrspec results file (failed particles: no analysis needed)."""
    from qrspec.analysis.particle import ParticleAnalysis
    from qrspec.store.hdf5 import merge_results, write_particle_file

    parts = []
    for pid in pids:
        res = ParticleAnalysis.failed(pid, "g", f"/data/{pid}.ptu", "made by hostile_cases")
        parts.append(write_particle_file(path.with_name(f"_{pid}.h5"), res))
    merge_results(parts, path)
    for p in parts:
        p.unlink()
    return path


def _craft(path: Path, how: str) -> Path:
    import h5py

    with h5py.File(path, "r+") as f:
        if how in ("dotdot", "absolute"):
            rows = f["summary"][()]
            rows["particle_id"][0] = b"../../escape_hostile" if how == "dotdot" \
                else b"/tmp/escape_hostile"
            del f["summary"]
            f.create_dataset("summary", data=rows)
        elif how == "external_link":
            f["particles/p0/leak"] = h5py.ExternalLink("/etc/passwd", "/")
        elif how == "external_storage":
            f.create_dataset("particles/p0/leak", shape=(32,), dtype="u1",
                             external=[("/etc/hostname", 0, 32)])
        elif how == "huge_summary":  # 3 M rows, a few kB on disk
            rows = f["summary"][()]
            del f["summary"]
            ds = f.create_dataset("summary", shape=(3_000_000,), dtype=rows.dtype,
                                  chunks=(65536,), compression="gzip", compression_opts=9)
            ds[:rows.size] = rows
    return path


def proc_text(proc) -> str:
    """stderr + stdout of a finished case (``run_case`` attaches it to ``proc.text``)."""
    return getattr(proc, "text", "")


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _summary(work: Path, out: str) -> dict:
    from qrspec.store.hdf5 import read_results

    s = read_results(work / out).summary
    return {str(r["particle_id"]): (str(r["status"]), str(r["error"])) for r in s}


# --------------------------------------------------------------------------- disk full


class _Tmpfs:
    def __init__(self, where: Path, size: str):
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"cannot mount a tmpfs: {r.stderr.strip()}")
        self.where = where

    def __call__(self):
        if subprocess.run(["umount", str(self.where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(self.where)], capture_output=True)


def _diskfull_run(work, argv_fn, size):
    disk = _Tmpfs(work / "disk", size)

    def check(work, proc):
        left = [p.name for p in disk.where.rglob("*") if p.is_file()]
        bad = [n for n in left if n.endswith(".partial")]
        out = []
        if bad:
            out.append(f"temp files left on the full disk: {bad}")
        for p in disk.where.rglob("*.h5"):
            try:
                from qrspec.store.hdf5 import read_results

                read_results(p)
            except Exception as exc:  # a corrupt file was left behind
                out.append(f"{p.name} is not a valid results file: {exc}")
        return out

    return Run(argv_fn(disk.where), exit=(1,), expect=r"cannot write.*No space left on device",
               check=check, cleanup=disk)


@case("disk full", needs="tmpfs")
def diskfull_analyze(work, base):
    return _diskfull_run(work, lambda d: ["analyze", base, "-o", d / "out.h5"], "200k")


@case("disk full", needs="tmpfs")
def diskfull_export(work, base):
    return _diskfull_run(work, lambda d: ["export-photon-hdf5", base, "-o", d / "out.hdf5"],
                         "200k")


@case("disk full", needs="tmpfs")
def diskfull_batch(work, base):
    (work / "in").mkdir()
    for i in range(4):
        _copy(base, work / "in" / f"p{i}.ptu")
    return _diskfull_run(work, lambda d: ["batch", work / "in", "-o", d / "out.h5", "-j", "2",
                                          "--no-progress"], "700k")


# --------------------------------------------------------------------------- output = input

_IS_INPUT = r"cannot write: is the input file"


@case("output = input", cheap=True)
def out_is_input_analyze(work, base):
    x = _copy(base, work / "x.ptu")
    return Run(["analyze", x, "-o", x, "--overwrite"], expect=_IS_INPUT)


@case("output = input")
def out_is_input_batch(work, base):
    x = _copy(base, work / "x.ptu")
    return Run(["batch", x, "-o", x, "--overwrite", "--no-progress"], expect=_IS_INPUT)


@case("output = input")
def out_is_input_export(work, base):
    x = _copy(base, work / "x.ptu")
    return Run(["export-photon-hdf5", x, "-o", x, "--overwrite"], expect=_IS_INPUT)


@case("output = input")
def out_hardlink_of_input_analyze(work, base):
    x = _copy(base, work / "x.ptu")
    os.link(x, work / "r.h5")
    return Run(["analyze", x, "-o", work / "r.h5", "--overwrite"], expect=_IS_INPUT)


@case("output = input")
def out_symlink_to_input_batch(work, base):
    x = _copy(base, work / "x.ptu")
    (work / "r.h5").symlink_to(x)
    return Run(["batch", x, "-o", work / "r.h5", "--overwrite", "--no-progress"],
               expect=_IS_INPUT)


@case("output = input")
def out_default_is_input_export(work, base):
    x = _copy(base, work / "x.hdf5")  # a PTU file named .hdf5: the default output is itself
    return Run(["export-photon-hdf5", x, "--overwrite"], expect=_IS_INPUT)


# --------------------------------------------------------------------------- refused outputs


@case("refused output")
def out_proc_analyze(work, base):
    return Run(["analyze", base, "-o", "/proc/x.hdf5"], expect=r"/proc/x\.hdf5: cannot write")


@case("refused output")
def out_proc_export(work, base):
    return Run(["export-photon-hdf5", base, "-o", "/proc/x.hdf5"],
               expect=r"/proc/x\.hdf5: cannot write")


@case("refused output", cheap=True)
def out_proc_batch(work, base):
    return Run(["batch", base, "-o", "/proc/x.h5", "--no-progress"],
               expect=r"/proc/x\.h5: cannot write")


@case("refused output", cheap=True)
def out_devnull_analyze(work, base):
    return Run(["analyze", base, "-o", "/dev/null", "--overwrite"],
               expect=r"/dev/null: cannot write: exists and is not a regular file",
               check=lambda w, p: [] if Path("/dev/null").is_char_device()
               else ["/dev/null was replaced"])


@case("refused output")
def out_folder_analyze(work, base):
    return Run(["analyze", base, "-o", work], expect=r"cannot write: is a directory")


@case("refused output")
def out_missing_folder_batch(work, base):
    return Run(["batch", base, "-o", work / "missing" / "r.h5", "--no-progress"],
               expect=r"output folder .*missing does not exist")


@case("refused output")
def csv_unwritable_batch(work, base):
    return Run(["batch", base, "-o", work / "r.h5", "--csv", "/proc/x.csv", "--no-progress"],
               expect=r"/proc/x\.csv: cannot write",
               check=lambda w, p: ["the batch ran although --csv was unwritable"]
               if (w / "r.h5").exists() else [])


@case("refused output")
def out_exists_no_overwrite_analyze(work, base):
    (work / "r.h5").write_bytes(b"earlier results")
    return Run(["analyze", base, "-o", work / "r.h5"], expect=r"exists; pass overwrite=True")


# --------------------------------------------------------------------------- particle ids


def _resume_crafted(work, base, how, expect):
    out = _craft(_results_file(work / "r.h5"), how)
    (work / "in").mkdir()
    _copy(base, work / "in" / "p1.ptu")

    def check(work, proc):
        esc = [p for p in (work.parent / "escape_hostile.h5", Path("/tmp/escape_hostile.h5"),
                           Path("/tmp/escape_hostile")) if p.exists()]
        return [f"written outside the output folder: {esc}"] if esc else []

    return Run(["batch", work / "in", "-o", out, "--resume", "--no-progress"], expect=expect,
               check=check)


@case("path-escaping ids", cheap=True)
def resume_id_dotdot(work, base):
    return _resume_crafted(work, base, "dotdot", r"particle_id='\.\./\.\./escape_hostile' is "
                                                 r"not a valid particle id")


@case("path-escaping ids")
def resume_id_absolute(work, base):
    return _resume_crafted(work, base, "absolute", r"particle_id='/tmp/escape_hostile' is not "
                                                   r"a valid particle id")


# --------------------------------------------------------------------------- crafted results


@case("crafted results file", cheap=True)
def resume_huge_summary(work, base):
    return _resume_crafted(work, base, "huge_summary", r"refusing to resume from this file")


@case("crafted results file")
def resume_external_link(work, base):
    return _resume_crafted(work, base, "external_link", r"is a ExternalLink")


@case("crafted results file")
def resume_external_storage(work, base):
    return _resume_crafted(work, base, "external_storage", r"has external storage")


@case("crafted results file", owner="arch")
def report_huge_summary(work, base):
    out = _craft(_results_file(work / "r.h5"), "huge_summary")
    return Run(["report", out, "-o", work / "figs"], expect=r"r\.h5")


@case("crafted results file", owner="arch")
def report_external_link(work, base):
    out = _craft(_results_file(work / "r.h5"), "external_link")
    return Run(["report", out, "-o", work / "figs", "--particles", "p0"],
               expect=r"r\.h5.*[Ee]xternal")


@case("crafted results file", owner="arch")
def report_external_storage(work, base):
    out = _craft(_results_file(work / "r.h5"), "external_storage")
    return Run(["report", out, "-o", work / "figs", "--particles", "p0"],
               expect=r"r\.h5.*[Ee]xternal")


# --------------------------------------------------------------------------- undecodable names

_RAW = b"caf\xe9"  # latin-1 "café": not UTF-8


def _raw_input(work, base) -> bytes:
    raw = os.path.join(os.fsencode(work), _RAW + b".ptu")
    with open(raw, "wb") as fh:
        fh.write(base.read_bytes())
    return raw


@case("undecodable file name")
def undecodable_analyze(work, base):
    raw = _raw_input(work, base)
    return Run(["analyze", raw, "-o", raw + b".h5"], exit=(0,), expect=r"caf\\xe9\.ptu\.h5")


@case("undecodable file name")
def undecodable_batch(work, base):
    folder = os.path.join(os.fsencode(work), b"in")
    os.mkdir(folder)
    _raw_input(Path(os.fsdecode(folder)), base)

    def check(work, proc):
        s = _summary(work, "r.h5")
        return [] if s.get("caf", ("",))[0] == "ok" else [f"summary {s}"]

    return Run(["batch", folder, "-o", work / "r.h5", "--no-progress"], exit=(0,),
               check=check)


@case("undecodable file name")
def undecodable_export(work, base):
    raw = _raw_input(work, base)
    return Run(["export-photon-hdf5", raw], exit=(0,), expect=r"caf\\xe9\.hdf5")


@case("undecodable file name", owner="io")
def undecodable_info(work, base):
    raw = _raw_input(work, base)
    return Run(["info", raw], exit=(0,))


@case("undecodable file name", cheap=True)
def undecodable_missing_analyze(work, base):
    raw = os.path.join(os.fsencode(work), _RAW + b"_missing.ptu")
    return Run(["analyze", raw, "-o", work / "r.h5"], expect=r"caf\\xe9_missing\.ptu")


# --------------------------------------------------------------------------- FIFOs


@case("FIFO", cheap=True)
def fifo_config(work, base):
    return Run(["analyze", base, "-o", work / "r.h5", "--config", _fifo(work / "c.json")],
               exit=(2,), expect=r"c\.json: cannot read config: is a FIFO")


@case("FIFO", owner="io")
def fifo_input_analyze(work, base):
    return Run(["analyze", _fifo(work / "x.ptu"), "-o", work / "r.h5"], expect=r"x\.ptu")


@case("FIFO", owner="io")
def fifo_input_info(work, base):
    return Run(["info", _fifo(work / "x.ptu")], expect=r"x\.ptu")


@case("FIFO", owner="io")
def fifo_input_export(work, base):
    return Run(["export-photon-hdf5", _fifo(work / "x.ptu"), "-o", work / "x.hdf5"],
               expect=r"x\.ptu")


@case("FIFO")
def fifo_input_batch(work, base):
    """A FIFO among the batch inputs is that particle's failure; the batch goes on."""
    (work / "in").mkdir()
    _copy(base, work / "in" / "good.ptu")
    fifo = _fifo(work / "x.ptu")

    def check(work, proc):
        s = _summary(work, "r.h5")
        ok = s.get("good", ("",))[0] == "ok" and "FIFO" in s.get("x", ("", ""))[1]
        return [] if ok else [f"summary {s}"]

    return Run(["batch", work / "in", fifo, "-o", work / "r.h5", "--no-progress"], exit=(3,),
               check=check)


# --------------------------------------------------------------------------- stuck workers

# `qrspec batch` whose analysis of particle $QRSPEC_HOSTILE_PID does $QRSPEC_HOSTILE_DO first
_WORKER_HARNESS = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    import qrspec.analysis.pipeline as pipeline
    real = pipeline.analyze_file
    def analyze_file(path, config=None, **kw):
        if kw.get("particle_id") == os.environ["QRSPEC_HOSTILE_PID"]:
            what = os.environ["QRSPEC_HOSTILE_DO"]
            if what == "hang":
                time.sleep(3600)
            elif what == "sigstop":
                os.kill(os.getpid(), signal.SIGSTOP)
            elif what == "memory":
                np.ones(5 << 30)  # 40 GB
            elif what == "segfault":
                os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, config, **kw)
    pipeline.analyze_file = analyze_file
    from qrspec.cli import main
    main(prog_name="qrspec")
""")


def _stuck(work, base, what, reason, *extra):
    (work / "in").mkdir()
    for i in range(3):
        _copy(base, work / "in" / f"p{i}.ptu")

    def check(work, proc):
        s = _summary(work, "r.h5")
        good = all(s[p][0] == "ok" for p in ("p0", "p2"))
        return [] if good and re.search(reason, s["p1"][1]) else [f"summary {s}"]

    return Run(["batch", work / "in", "-o", work / "r.h5", "-j", "2", "--no-progress",
                *extra], exit=(3,), harness=_WORKER_HARNESS, check=check,
               env={"QRSPEC_HOSTILE_PID": "p1", "QRSPEC_HOSTILE_DO": what})


@case("stuck or dying worker")
def worker_hang(work, base):
    return _stuck(work, base, "hang", r"timed out after 6 s", "--timeout-s", "6")


@case("stuck or dying worker")
def worker_sigstop(work, base):
    return _stuck(work, base, "sigstop", r"timed out after 6 s .*stopped", "--timeout-s", "6")


@case("stuck or dying worker")
def worker_memory_bomb(work, base):
    return _stuck(work, base, "memory", r"MemoryError", "--memory-limit-mb", "3000")


@case("stuck or dying worker")
def worker_segfault(work, base):
    return _stuck(work, base, "segfault", r"worker process died .*SIGSEGV")


# --------------------------------------------------------------------------- memory bombs


@case("memory bomb", owner="stats")
def overflow_span_bomb(work, base):
    """23 kB: 10 ms sync period, 1000 photons at each end of a 5e7 s overflow span."""
    rng = np.random.default_rng(1)
    n = 1000
    head = _hh2t3_records(np.arange(n) % 1024, rng.integers(0, 2, n), rng.integers(0, 3000, n))
    ovf = np.full(4000, 0xFE000000 | 1023, "<u4")  # overflow records, 1023 x 1024 syncs each
    recs = np.concatenate([head, ovf, head])
    # 4 ns TCSPC bins: 2.5 M bins per 10 ms period, inside the pipeline's limit, so the span
    # (not the bins per period) is what the analysis must survive
    p = _raw_ptu(work / "span.ptu", recs, rec_type=HH2T3, glob_res=0.01, res=4e-9,
                 sync_rate=100)
    return Run(["analyze", p, "-o", work / "r.h5"], exit=(0, 1),
               check=lambda w, proc: ["refused for its bins per period, not its span"]
               if "bins per period" in proc_text(proc) else [])


@case("memory bomb", owner="stats")
def bin_width_tiny(work, base):
    def check(work, proc):  # a result must say that the trajectory was coarsened
        if proc.returncode != 0:
            return []
        err = next(iter(_summary(work, "r.h5").values()))[1]
        return [] if re.search(r"coarsen|bin_width", err) else [
            f"analysed at bin_width_s=1e-7 without a refusal or a coarsening flag: {err!r}"]

    return Run(["analyze", base, "-o", work / "r.h5", "--bin-width-s", "1e-7"], exit=(0, 1, 2),
               expect=None, check=check)


@case("memory bomb", owner="stats")
def g2_lag_huge(work, base):
    return Run(["analyze", base, "-o", work / "r.h5", "--g2-max-lag-periods", "100000000"],
               exit=(1, 2), expect=r"max_lag_periods=100000000")


@case("memory bomb", owner="io")
def sparse_zero_records(work, base):
    """A valid header followed by 1 GB of zero records (a sparse file: no disk used)."""
    p = _raw_ptu(work / "zeros.ptu", [], rec_type=HH2T3, n_records=0)
    with open(p, "r+b") as fh:
        fh.truncate(p.stat().st_size + (1 << 30))
    return Run(["analyze", p, "-o", work / "r.h5"], exit=(0, 1))


# --------------------------------------------------------------------------- hostile headers


def _base_records(base: Path) -> np.ndarray:
    """The raw records of the base PTU file (after the 48-byte Header_End tag)."""
    raw = base.read_bytes()
    off = raw.index(b"Header_End") + 48
    return np.frombuffer(raw[off:off + 4 * ((len(raw) - off) // 4)], "<u4")


@case("hostile header", owner="io")
def dup_float8array_tag(work, base):
    recs = _base_records(base)
    extra = [("HW_Test", [1.0, 2.0], -1, "Float8Array"), ("HW_Test", [3.0], -1, "Float8Array")]
    p = _raw_ptu(work / "dup.ptu", recs, rec_type=HH2T3, extra_tags=extra)
    return Run(["info", p], exit=(0, 1))


@case("hostile header", owner="io")
def global_resolution_1e300_export(work, base):
    p = _raw_ptu(work / "g.ptu", _base_records(base), rec_type=HH2T3, glob_res=1e300,
                 sync_rate=0)
    return Run(["export-photon-hdf5", p], exit=(0, 1))


@case("hostile header", owner="io")
def legacy_ht3_resolution_tiny(work, base):
    sys.path.insert(0, str(TESTS))
    from test_legacy import hh_file

    p = work / "tiny.ht3"
    p.write_bytes(hh_file(_base_records(base)[:5000], resolution_ps=2e-314 * 1e12))
    return Run(["analyze", p, "-o", work / "r.h5"], exit=(1,), expect=r"tiny\.ht3")


@case("hostile header")
def generic_t3_12_detectors_export(work, base):
    rng = np.random.default_rng(2)
    n = 5000
    recs = _hh2t3_records(np.arange(n) % 1024, rng.integers(0, 12, n), rng.integers(0, 3000, n))
    p = _raw_ptu(work / "g12.ptu", recs, rec_type=GENERIC_T3)
    return Run(["export-photon-hdf5", p], exit=(0, 1))


def _unit_case(work, base, value, name):
    p = _raw_ptu(work / f"{name}.ptu", _base_records(base), rec_type=HH2T3, res=value)
    return Run(["analyze", p, "-o", work / "r.h5"], exit=(1,), expect=rf"{name}\.ptu")


@case("hostile header", owner="io")
def tcspc_unit_1e_288(work, base):
    return _unit_case(work, base, 1e-288, "u288")


@case("hostile header", owner="io")
def tcspc_unit_inf(work, base):
    return _unit_case(work, base, float("inf"), "uinf")


@case("hostile header", owner="io")
def tcspc_unit_zero(work, base):
    return _unit_case(work, base, 0.0, "uzero")


@case("hostile header", owner="io")
def random_records_after_header(work, base):
    """A valid header followed by 1 MB of random records: a clean error or a flagged result,
    never a clean 'ok' (times go backwards, channels out of range)."""
    recs = np.random.default_rng(3).integers(0, 2**32, 1 << 18, dtype=np.uint64).astype("<u4")
    p = _raw_ptu(work / "rnd.ptu", recs, rec_type=HH2T3)

    def check(work, proc):
        if proc.returncode != 0:
            return []
        s = _summary(work, "r.h5")
        st, err = next(iter(s.values()))
        flagged = re.search(r"invalid|corrupt|record|backwards|decreas|unsorted", err)
        return [] if st != "ok" or flagged else [f"random records analysed as ok; the result's "
                                                 f"flags do not mention them: {err!r}"]

    return Run(["analyze", p, "-o", work / "r.h5"], exit=(0, 1), check=check)


# --------------------------------------------------------------------------- configs


def _config_case(name, content, expect, exit=(2,)):
    def make(work, base):
        c = work / "c.json"
        c.write_bytes(content if isinstance(content, bytes) else content.encode())
        return Run(["analyze", base, "-o", work / "r.h5", "--config", c], exit=exit,
                   expect=expect)

    case("wrong-type config", cheap=name in ("nested_100k", "detectors_fractions"),
         name=f"config_{name}")(make)


for _name, _content, _expect in [
    ("cpa_alpha_string", '{"cpa_alpha": "x"}', r"cpa_alpha='x' must be a finite number"),
    ("charge_model_int", '{"charge_model": 5}', r"charge_model=5 must be a ChargeModelParams"),
    ("detectors_string", '{"detectors": "ab"}', r"detectors='ab' must be distinct"),
    ("detectors_fractions", '{"detectors": [0.7, 1.2]}', r"detectors=\[0\.7, 1\.2\] must be"),
    ("mean_excitations_bool", '{"mean_excitations": true}', r"mean_excitations=True must be"),
    ("min_decay_photons_negative", '{"min_decay_photons": -1}',
     r"min_decay_photons=-1 must be an integer >= 1"),
    ("nested_100k", '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}",
     r"nested deeper than 16 levels"),
    ("not_an_object", "[1, 2]", r"config JSON must be an object"),
    ("unknown_key", '{"bin_widht_s": 1}', r"unknown config keys \['bin_widht_s'\]"),
    ("nan", '{"gate_after_rise_ns": NaN}', r"gate_after_rise_ns=nan must be a finite number"),
    ("renamed_key", '{"gate_ns": 3}', r"config key gate_ns was renamed gate_after_rise_ns"),
    ("eps_bool", '{"charge_model": {"eps": true}}', r"charge_model\.eps=True must be"),
    ("fit_method_int", '{"fit_method": 3}', r"fit_method=3 must be 'mle' or 'lsq'"),
    ("max_levels_float", '{"max_levels": 2.5}', r"max_levels=2\.5 must be an integer"),
    ("not_utf8", b'{"fit_method": "\xff"}', r"config is not UTF-8"),
    ("too_big", '{"x": "' + "a" * (2 << 20) + '"}', r"config file size=\d+ bytes exceeds"),
]:
    _config_case(_name, _content, _expect)


@case("wrong-type config")
def config_missing(work, base):
    return Run(["analyze", base, "-o", work / "r.h5", "--config", work / "nope.json"],
               exit=(2,), expect=r"nope\.json: cannot read config")


# --------------------------------------------------------------------------- nonsense values


def _option_case(name, argv_tail, expect, command="analyze"):
    def make(work, base):
        out = ["-o", work / "r.h5"]
        extra = ["--no-progress"] if command == "batch" else []
        return Run([command, base, *out, *extra, *argv_tail], exit=(2,), expect=expect)

    case("nonsense value", cheap=name == "detectors_fraction", name=f"option_{name}")(make)


for _name, _tail, _expect, _cmd in [
    ("min_decay_photons_negative", ["--min-decay-photons", "-1"], r"min_decay_photons=-1",
     "analyze"),
    ("cpa_alpha_2", ["--cpa-alpha", "2"], r"cpa_alpha=2\.0 must be", "analyze"),
    ("gate_nan", ["--gate-after-rise-ns", "nan"], r"gate_after_rise_ns=nan must be",
     "analyze"),
    ("detectors_same", ["--detectors", "1", "1"], r"detectors=\(1, 1\) must be distinct",
     "analyze"),
    ("detectors_fraction", ["--detectors", "0.7", "1.2"], r"0\.7", "analyze"),
    ("mean_excitations_zero", ["--mean-excitations", "0"], r"mean_excitations=0\.0", "batch"),
    ("timeout_zero", ["--timeout-s", "0"], r"timeout-s", "batch"),
    ("memory_limit_tiny", ["--memory-limit-mb", "5"], r"memory-limit-mb", "batch"),
    ("jobs_zero", ["--jobs", "0"], r"jobs", "batch"),
]:
    _option_case(_name, _tail, _expect, _cmd)


# --------------------------------------------------------------------------- concurrency

_LOCKER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()} otherhost\\n".encode())
    print("locked", flush=True)
    time.sleep(120)
""")


@case("concurrent batches", cheap=True)
def batch_output_locked(work, base):
    out = work / "r.h5"
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(out) + ".lock"],
                              stdout=subprocess.PIPE, text=True)
    locker.stdout.readline()

    def cleanup():
        locker.kill()
        locker.wait()
        locker.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(str(out) + ".lock")

    return Run(["batch", base, "-o", out, "--no-progress"],
               expect=rf"r\.h5: locked by pid {locker.pid} on otherhost", cleanup=cleanup,
               may_change=("r.h5.lock",))


# --------------------------------------------------------------------------- exit codes


@case("exit code", cheap=True)
def input_is_folder_analyze(work, base):
    return Run(["analyze", work, "-o", work / "r.h5"], expect=r"is a directory")


@case("exit code")
def input_is_folder_export(work, base):
    (work / "d").mkdir()
    return Run(["export-photon-hdf5", work / "d", "-o", work / "r.hdf5"],
               expect=r"is a directory")


@case("exit code")
def input_missing_batch(work, base):
    return Run(["batch", work / "nope.ptu", "-o", work / "r.h5", "--no-progress"],
               expect=r"nope\.ptu: no such file")


@case("exit code")
def input_unreadable_analyze(work, base):
    """A file that cannot be opened (a directory named .ptu stands in: root reads 0o000)."""
    (work / "d.ptu").mkdir()
    return Run(["analyze", work / "d.ptu", "-o", work / "r.h5"], expect=r"d\.ptu")


# --------------------------------------------------------------------------- the runner


@dataclass
class Outcome:
    case: Case
    handled: bool
    problems: list
    wall_s: float
    peak_rss_mb: float
    returncode: int | None
    output: str = ""


def _snapshot(work: Path) -> dict:
    out = {}
    for p in work.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                if st.st_size > (64 << 20):  # sparse bombs: size and mtime only
                    out[p] = (st.st_size, st.st_mtime_ns)
                else:
                    out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            pass
    return out


def _group_rss_mb(pgid: int) -> float:
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss pages
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def run_case(c: Case, work: Path, base: Path, *, timeout_s: float = 60.0,
             rss_limit_mb: float = 2048.0, kill_rss_mb: float = 4096.0,
             as_limit_mb: int = 6144) -> Outcome:
    """Run one case in ``work`` (an empty folder); see the module docstring for 'handled'."""
    work.mkdir(parents=True, exist_ok=True)
    try:
        run = c.make(work, base)
    except Exception as exc:  # the case could not be built (e.g. no tmpfs)
        return Outcome(c, False, [f"setup failed: {type(exc).__name__}: {exc}"], 0.0, 0.0,
                       None)
    before = _snapshot(work)
    base_before = hashlib.sha256(base.read_bytes()).hexdigest()
    argv = [a if isinstance(a, bytes) else str(a) for a in run.argv]
    cmd = [sys.executable, "-c", run.harness] if run.harness else [sys.executable, "-m",
                                                                   "qrspec"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **run.env}
    limit = as_limit_mb << 20

    def preexec():  # a safety net for the machine; hitting it counts as a memory bomb
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t0 = time.monotonic()
    proc = subprocess.Popen(cmd + argv, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
    problems: list[str] = []
    peak = 0.0
    limit_s = run.timeout_s or timeout_s
    out_chunks: dict[str, bytes] = {}

    def drain(name, stream):
        out_chunks[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    while proc.poll() is None:
        peak = max(peak, _group_rss_mb(proc.pid))
        if peak > kill_rss_mb:
            problems.append(f"memory: process group RSS {peak:.0f} MB > {kill_rss_mb:.0f} MB "
                            "(killed)")
            break
        if time.monotonic() - t0 > limit_s:
            problems.append(f"hang: still running after {limit_s:.0f} s (killed)")
            break
        time.sleep(0.02)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    rc = proc.wait()
    wall = time.monotonic() - t0
    with contextlib.suppress(ProcessLookupError):  # no process of the case may survive it
        os.killpg(proc.pid, 0)
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
            problems.append("processes of the case outlived it (orphaned workers)")
    for t in threads:
        t.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    text = (out_chunks.get("err", b"") + b"\n" + out_chunks.get("out", b"")).decode(
        "utf-8", "backslashreplace")
    if not problems:
        if rc < 0:
            problems.append(f"crash: killed by signal {signal.Signals(-rc).name}")
        if "Traceback (most recent call last)" in text:
            problems.append("traceback")
        if "Exception ignored" in text:
            problems.append("'Exception ignored' noise")
        if re.search(r"out of memory|MemoryError", text) and c.category != \
                "stuck or dying worker":
            problems.append("ran out of memory (hit the runner's address-space cap): a "
                            "memory bomb")
        if rc >= 0 and rc not in run.exit:
            problems.append(f"exit code {rc}, expected {run.exit}")
        if run.expect and not re.search(run.expect, text, re.S):
            problems.append(f"message does not match {run.expect!r}")
    if peak > rss_limit_mb:
        problems.append(f"peak RSS {peak:.0f} MB > {rss_limit_mb:.0f} MB")
    after = _snapshot(work)
    for p, h in before.items():
        if p.name in run.may_change:
            continue
        if p not in after:
            problems.append(f"input {p.name} was removed")
        elif after[p] != h:
            problems.append(f"input {p.name} was changed")
    left = [p.name for p in work.rglob("*") if p.name.endswith((".partial", ".lock"))
            and p.name not in run.may_change]
    if left:
        problems.append(f"left behind: {left}")
    if hashlib.sha256(base.read_bytes()).hexdigest() != base_before:
        problems.append("the shared base input was changed")
    proc.text = text
    if run.check is not None and not problems:
        try:
            problems += run.check(work, proc)
        except Exception as exc:
            problems.append(f"check failed: {type(exc).__name__}: {exc}")
    if run.cleanup is not None:
        run.cleanup()
    return Outcome(c, not problems, problems, wall, peak, rc, text[-2000:])


def tmpfs_available() -> bool:
    """Whether this process can mount a tmpfs (root with CAP_SYS_ADMIN)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                           capture_output=True)
        if r.returncode:
            return False
        subprocess.run(["umount", d], capture_output=True)
        return True


__all__ = ["CASES", "Case", "Run", "Outcome", "run_case", "base_particle", "tmpfs_available"]
