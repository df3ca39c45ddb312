"""qrspec.io.atomic: crash-safe output files (issue 16).

Every test checks the two promises: the target holds either its previous content or the
complete new file, and no temp file is left behind.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from qrspec.errors import OutputError, QrspecError
from qrspec.io import atomic
from qrspec.io.atomic import (
    atomic_h5,
    atomic_output,
    atomic_write_bytes,
    check_output_path,
    remove_stale_temps,
    same_file,
    verify_h5,
)

ROOT = Path(__file__).resolve().parents[1]


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_atomic_output_writes_and_leaves_no_temp(tmp_path):
    out = tmp_path / "a.txt"
    with atomic_output(out) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and not out.exists()
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert _temps(tmp_path) == []


def test_atomic_output_exception_keeps_old_file(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(KeyError, match="boom"):  # not an I/O error: propagates unchanged
        with atomic_output(out) as tmp:
            tmp.write_text("half")
            raise KeyError("boom")
    assert out.read_text() == "old" and _temps(tmp_path) == []


def test_atomic_output_oserror_becomes_output_error(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(OutputError, match=r"a\.txt: cannot write: No space left on device$"):
        with atomic_output(out) as tmp:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert out.read_text() == "old" and _temps(tmp_path) == []
    # an error on another file names that file too
    with pytest.raises(OutputError, match=r"cannot write: Input/output error \(/elsewhere\)"):
        with atomic_output(out):
            raise OSError(errno.EIO, os.strerror(errno.EIO), "/elsewhere")


def test_output_error_is_a_qrspec_error_and_pickles():
    import pickle

    e = OutputError("x.h5", "No space left on device", errno.ENOSPC)
    assert isinstance(e, QrspecError) and isinstance(e, ValueError)
    e2 = pickle.loads(pickle.dumps(e))
    assert (str(e2), e2.errno, e2.path) == (str(e), errno.ENOSPC, "x.h5")


def test_atomic_output_verify_rejects(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")

    def verify(p):
        if Path(p).read_text() != "good":
            raise ValueError("content is bad")

    with pytest.raises(OutputError, match=r"failed verification \(ValueError: content is bad\)"):
        with atomic_output(out, verify=verify) as tmp:
            tmp.write_text("bad")
    assert out.read_text() == "old" and _temps(tmp_path) == []
    with atomic_output(out, verify=verify) as tmp:
        tmp.write_text("good")
    assert out.read_text() == "good"


@pytest.mark.parametrize("how", ["same", "hardlink", "symlink", "dotdot"])
def test_output_never_replaces_an_input(tmp_path, how):
    inp = tmp_path / "x.ptu"
    inp.write_bytes(b"precious")
    (tmp_path / "sub").mkdir()
    out = {"same": inp, "hardlink": tmp_path / "h.ptu", "symlink": tmp_path / "s.ptu",
           "dotdot": tmp_path / "sub" / ".." / "x.ptu"}[how]
    if how == "hardlink":
        os.link(inp, out)
    elif how == "symlink":
        out.symlink_to(inp)
    with pytest.raises(OutputError, match=r"is the input file .*x\.ptu; refusing to replace"):
        check_output_path(out, inputs=[inp])
    with pytest.raises(OutputError, match=r"is the input file"):
        atomic_write_bytes(out, b"results", inputs=[inp])
    assert inp.read_bytes() == b"precious" and _temps(tmp_path) == []
    assert same_file(out, inp)


def test_input_renamed_onto_target_while_writing_is_caught(tmp_path):
    inp, out = tmp_path / "x.ptu", tmp_path / "r.h5"
    inp.write_bytes(b"precious")
    with pytest.raises(OutputError, match=r"is the input file"):
        with atomic_output(out, inputs=[inp]) as tmp:
            tmp.write_bytes(b"results")
            os.link(inp, out)  # the target became the input meanwhile
    assert inp.read_bytes() == b"precious"


@pytest.mark.parametrize("target, match", [
    ("dir", r"is a directory"),
    ("/dev/null", r"exists and is not a regular file"),
    ("fifo", r"exists and is not a regular file"),
    ("missing/x.h5", r"output folder .*missing does not exist"),
    ("file/x.h5", r"cannot write: Not a directory"),
])
def test_refused_targets(tmp_path, target, match):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    path = target if target.startswith("/") else tmp_path / target
    with pytest.raises(OutputError, match=match):
        atomic_write_bytes(path, b"x")
    assert Path("/dev/null").is_char_device()


def test_unwritable_folder_is_an_output_error():
    with pytest.raises(OutputError, match=r"/proc/x\.hdf5: cannot write: "):
        atomic_write_bytes("/proc/x.hdf5", b"x")


def test_overwrite_false_never_clobbers(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(OutputError, match=r"a\.txt: cannot write: exists; pass "
                                          r"overwrite=True \(CLI: --overwrite\)"):
        atomic_write_bytes(out, b"new", overwrite=False)
    out.unlink()
    with pytest.raises(OutputError, match=r"exists"):
        with atomic_output(out, overwrite=False) as tmp:
            tmp.write_text("mine")
            out.write_text("someone else's")  # created while we wrote
    assert out.read_text() == "someone else's" and _temps(tmp_path) == []
    out.unlink()
    atomic_write_bytes(out, b"new", overwrite=False)
    assert out.read_bytes() == b"new" and _temps(tmp_path) == []


def test_long_and_undecodable_names(tmp_path):
    long = tmp_path / ("n" * 250 + ".h5")  # the temp name must stay within NAME_MAX
    atomic_write_bytes(long, b"x")
    assert long.read_bytes() == b"x"
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.h5")  # latin-1 byte, not UTF-8
    atomic_write_bytes(raw, b"y")
    with open(raw, "rb") as fh:
        assert fh.read() == b"y"
    with pytest.raises(OutputError, match="caf\udce9.h5.d: cannot write: is a directory"):
        os.mkdir(raw + b".d")
        atomic_write_bytes(raw + b".d", b"z")
    assert _temps(tmp_path) == []


def test_remove_stale_temps(tmp_path):
    out = tmp_path / "out.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = [tmp_path / f"out.h5.{dead}.abcd1234.partial", tmp_path / f"out.h5.{dead}.partial"]
    live = tmp_path / f"out.h5.{os.getppid()}.abcd1234.partial"
    other = [tmp_path / "out.h5.x.partial", tmp_path / f"other.h5.{dead}.partial"]
    for p in stale + [live] + other:
        p.write_text("x")
    assert sorted(remove_stale_temps(out)) == sorted(stale)
    assert live.exists() and all(p.exists() for p in other)


# --------------------------------------------------------------------------- h5py


def test_atomic_h5_round_trip(tmp_path):
    out = tmp_path / "r.h5"
    data = np.arange(100_000, dtype=float)
    with atomic_h5(out) as h:
        h.file.create_dataset("x", data=data, compression="gzip", chunks=(4096,))
        h.file.attrs["a"] = "b"
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["x"][()], data) and f.attrs["a"] == "b"
    assert _temps(tmp_path) == []


def test_atomic_h5_exception_keeps_old_file(tmp_path):
    out = tmp_path / "r.h5"
    out.write_bytes(b"old")
    with pytest.raises(KeyError, match="boom"):
        with atomic_h5(out) as h:
            h.file.create_dataset("x", data=np.arange(10))
            raise KeyError("boom")
    assert out.read_bytes() == b"old" and _temps(tmp_path) == []


def _fail_pwrite_after(monkeypatch, n_bytes: int, err=errno.ENOSPC):
    """os.pwrite that fails like a full disk once ``n_bytes`` have been written."""
    real = os.pwrite
    written = [0]

    def pwrite(fd, data, offset):
        if written[0] + len(data) > n_bytes:
            raise OSError(err, os.strerror(err))
        written[0] += len(data)
        return real(fd, data, offset)

    monkeypatch.setattr(atomic.os, "pwrite", pwrite)


@pytest.mark.parametrize("limit", [0, 2048, 100_000, 1_000_000])
def test_atomic_h5_write_error_inside_hdf5(tmp_path, monkeypatch, limit):
    """A failed write inside HDF5 (at any point: superblock, metadata, chunks) is reported as
    an OutputError after a clean close; the old file survives; HDF5 never sees the failure
    (the native driver segfaults in this situation)."""
    out = tmp_path / "r.h5"
    out.write_bytes(b"old")
    _fail_pwrite_after(monkeypatch, limit)
    rng = np.random.default_rng(1)
    with pytest.raises(OutputError, match=r"r\.h5: cannot write: No space left on device$"):
        with atomic_h5(out) as h:
            for i in range(30):
                g = h.file.create_group(f"p{i}")
                g.create_dataset("x", data=rng.normal(size=20_000), compression="gzip")
                g.attrs["note"] = "x" * 100
    assert out.read_bytes() == b"old" and _temps(tmp_path) == []


def test_atomic_h5_raise_if_failed_stops_early(tmp_path, monkeypatch):
    _fail_pwrite_after(monkeypatch, 50_000)
    done = []
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_h5(tmp_path / "r.h5") as h:
            for i in range(100):
                h.file.create_dataset(f"x{i}", data=np.random.default_rng(i).normal(size=5000))
                h.file.flush()
                h.raise_if_failed()
                done.append(i)
    assert len(done) < 10  # stopped soon after the disk filled (8 datasets = 320 kB)


def test_nofail_file_reads_back_what_was_written(tmp_path, monkeypatch):
    """After a failed write the overlay keeps later writes: reads see the logical file."""
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        f = atomic._NoFailFile(fd)
        f.seek(0)
        f.write(b"a" * 10)
        _fail_pwrite_after(monkeypatch, 0, errno.EIO)
        f.seek(5)
        f.write(b"bb")
        f.seek(20)
        f.write(b"cc")
        assert f.error is not None and f.error.errno == errno.EIO
        f.seek(0)
        assert f.read(24) == b"aaaaabbaaa" + bytes(10) + b"cc" + bytes(2)  # zeros past EOF
        f.seek(0, 2)
        assert f.tell() == 22
        buf = bytearray(3)
        f.seek(4)
        assert f.readinto(buf) == 3 and bytes(buf) == b"abb"
    finally:
        os.close(fd)


def test_verify_h5_detects_a_truncated_file(tmp_path):
    p = tmp_path / "r.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=np.random.default_rng(0).normal(size=200_000),
                         chunks=(10_000,), compression="gzip")
    verify_h5(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises((OSError, RuntimeError)):
        verify_h5(p)


# --------------------------------------------------------------------------- a full disk


_ENOSPC_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from qrspec.errors import OutputError
    from qrspec.io.atomic import atomic_h5
    try:
        with atomic_h5(sys.argv[1]) as h:
            rng = np.random.default_rng(0)
            for i in range(40):
                h.file.create_dataset(f"x{i}", data=rng.normal(size=50_000))
    except OutputError as exc:
        print(exc)
        sys.exit(1)
""")


def test_atomic_h5_on_a_full_tmpfs(small_tmpfs):
    """Real ENOSPC from the kernel, in a subprocess (h5py's native driver segfaults here):
    exit 1 with the message, no traceback, no 'Exception ignored', nothing left behind."""
    disk = small_tmpfs("512k")
    out = disk / "r.h5"
    r = subprocess.run([sys.executable, "-c", _ENOSPC_SCRIPT, str(out)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stdout.strip() == f"{out}: cannot write: No space left on device"
    assert r.stderr == ""
    assert list(disk.iterdir()) == []


# --------------------------------------------------------------------------- particle ids


@pytest.mark.parametrize("pid", ["p1", "a.b", "x" * 60, "A-b_c.9"])
def test_check_particle_id_accepts_sanitized_ids(pid):
    from qrspec.io.files import check_particle_id, sanitize_id

    assert check_particle_id(pid) == pid == sanitize_id(pid)
    assert check_particle_id(pid.encode()) == pid


@pytest.mark.parametrize("pid", ["../../x", "/etc/passwd", "..", ".", ".hidden", "a/b", "",
                                 "x" * 61, "a\x00b", "ü", b"\xff", 5, None])
def test_check_particle_id_refuses_escaping_ids(pid):
    from qrspec.io.files import check_particle_id

    with pytest.raises(QrspecError, match=r"^r\.h5: particle_id=.* is not a valid particle id"):
        check_particle_id(pid, "r.h5")


def test_verify_h5_compares_expected_datasets(tmp_path):
    p = tmp_path / "r.h5"
    x = np.arange(1000)
    with h5py.File(p, "w") as f:
        f["g/x"] = x
    verify_h5(p, expected={"g/x": x}, block_bytes=800)  # 100 rows per block
    with pytest.raises(ValueError, match=r"g/x: rows from 900 differ"):
        verify_h5(p, expected={"g/x": np.r_[x[:-1], -1]}, block_bytes=800)
    with pytest.raises(ValueError, match=r"g/x: shape \(1000,\) != \(999,\)"):
        verify_h5(p, expected={"g/x": x[:-1]})
    with pytest.raises(ValueError, match=r"datasets \['g/y'\] are missing"):
        verify_h5(p, expected={"g/y": x})


def test_probe_refuses_an_unwritable_folder():
    with pytest.raises(OutputError, match=r"/proc/x\.h5: cannot write: "):
        check_output_path("/proc/x.h5", probe=True)
    check_output_path("/proc/x.h5")  # without the probe the folder merely exists
