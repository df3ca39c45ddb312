"""Input files: safe opening, particle ids from file names, checksums.

Files are opened safely (regular files only), particle ids are made from file names, and file
checksums record provenance.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

from qrspec.errors import QrspecError

__all__ = ["sanitize_id", "check_particle_id", "storable_text", "sha256_file", "open_regular"]

_MAX_ID = 60


def sanitize_id(name: str, suffix: str = "") -> str:
    """A particle id safe as an HDF5 group name and a file name.

    [A-Za-z0-9_.-], not starting with '.', at most 60 characters including ``suffix`` (kept whole,
    so that disambiguating suffixes survive the truncation of long names).
    """
    s = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("_")
    s = s.lstrip(".") or "particle"
    return s[: _MAX_ID - len(suffix)] + suffix


_ID_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{_MAX_ID}}}")


def check_particle_id(pid, source="") -> str:
    """Return ``pid`` if it is a particle id :func:`sanitize_id` could have made, else raise.

    Use it on every id read back from a file (a results file's ``/summary``, a part file name)
    before the id names a file or an HDF5 group: an id like ``../../x`` or ``/etc/x`` must never
    lead outside the output folder.

    Parameters
    ----------
    pid : str or bytes
        The id (bytes are decoded as UTF-8).
    source : str
        Where the id came from, for the message (e.g. the results file).

    Raises
    ------
    QrspecError
        ``particle_id=...`` is not 1-60 characters of [A-Za-z0-9_.-] not starting with '.'.
    """
    if isinstance(pid, bytes):
        pid = pid.decode("utf-8", "backslashreplace")
    if not (isinstance(pid, str) and _ID_RE.fullmatch(pid) and not pid.startswith(".")):
        where = f"{source}: " if source else ""
        raise QrspecError(f"{where}particle_id={pid!r} is not a valid particle id (1-{_MAX_ID} "
                          "characters of A-Z a-z 0-9 _ . -, not starting with '.')")
    return pid


def storable_text(text) -> str:
    r"""``text`` with undecodable file-name bytes shown as ``\xNN``: safe to encode as UTF-8.

    Python represents the bytes of a file name that are not valid UTF-8 as lone surrogates
    (``os.fsdecode``, PEP 383); h5py, UTF-8 files and strict text streams refuse those. Use this
    for every path or message that is stored (HDF5 strings and attributes, CSV, JSON) or
    printed to stdout. Valid text is returned unchanged.
    """
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sha256_file(path) -> str:
    """Hex SHA-256 of a file (provenance).

    Raises
    ------
    QrspecError
        The path is missing or not a regular file (see :func:`open_regular`).
    OSError
        Reading failed.
    """
    h = hashlib.sha256()
    with open_regular(path) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


def _default_error(path, problem):
    return QrspecError(f"{path}: {problem}")


def open_regular(path, error=_default_error, kind: str = "regular file"):
    """Open an input file for binary reading, refusing anything but a regular file.

    A FIFO, a device, a socket or a directory given as input would hang (a FIFO without a
    writer blocks ``open``; a device or a pipe never ends) or fail obscurely. The type is checked
    before opening, and again on the open descriptor (the path may be swapped in between), which
    is opened non-blocking so that even a FIFO swapped in cannot block.

    Parameters
    ----------
    path : str or os.PathLike
        The input.
    error : callable, optional
        ``error(path, problem)`` builds the exception raised (default: :class:`QrspecError`
        with ``"path: problem"``), so that callers raise their own error type.
    kind : str, optional
        What the input should be, for messages (``"... is a FIFO (named pipe), not a TTTR
        file"``).

    Returns
    -------
    file object
        Open in ``"rb"`` mode; the caller closes it.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(path, "no such file") from None
    except OSError as exc:
        raise error(path, f"cannot open: {exc.strerror or exc}") from None
    what = _not_regular(st.st_mode)
    if what is not None:
        raise error(path, f"is {what}, not a {kind}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise error(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        what = _not_regular(os.fstat(fd).st_mode)
        if what is not None:
            raise error(path, f"is {what}, not a {kind}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
