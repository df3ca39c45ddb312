"""Exception types raised by qrspec.

Every error raised on bad input is a :class:`QrspecError`; file-format problems are
:class:`TTTRFormatError`, which names the file, the byte offset (where known) and the problem.
Both subclass :class:`ValueError`, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class QrspecError(ValueError):
    """Base class of every error qrspec raises on bad input."""


class TTTRFormatError(QrspecError):
    """A TTTR file cannot be decoded: wrong magic, truncated header, unsupported record type, ...

    Parameters
    ----------
    path : str
        The file.
    problem : str
        What is wrong, with the offending ``name=value``.
    offset : int, optional
        Byte offset in the file where the problem was found.
    """

    def __init__(self, path, problem: str, offset: int | None = None):
        self.path = str(path)
        self.problem = problem
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.path}{where}: {problem}")

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.path, self.problem, self.offset))


# the name used in the style guide
PTUFormatError = TTTRFormatError


class OutputError(QrspecError):
    """An output file cannot be written or is refused.

    Causes: disk full, permissions, the output is an input or a directory, ... The previous content
    of the file is unchanged.

    Parameters
    ----------
    path : str or Path
        The output file.
    reason : str
        The cause, e.g. the ``strerror`` of the failed system call ("No space left on device").
    errno : int, optional
        The ``errno`` of the failed system call, when there was one.
    """

    def __init__(self, path, reason: str, errno: int | None = None):
        import os

        self.path = os.fsdecode(os.fspath(path))
        self.reason = reason
        self.errno = errno
        super().__init__(f"{self.path}: cannot write: {reason}")

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.path, self.reason, self.errno))
