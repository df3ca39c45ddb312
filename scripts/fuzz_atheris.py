# ruff: noqa: E402  (instrumented imports must follow atheris set-up)
"""Coverage-guided fuzzing of qrspec.io.read_tttr with atheris (issue 10).

Run (atheris in its own venv: pip install atheris):
     NUMBA_CACHE_DIR=/tmp/fz/numba PYTHONPATH=. python \
     scripts/fuzz_atheris.py /tmp/fz/corpus -max_total_time=300 -timeout=10 \
     -rss_limit_mb=3000 -max_len=16384 -artifact_prefix=/tmp/fz/crashes/
Any exception other than TTTRFormatError/QrspecError, a timeout or an RSS blow-up is a crash.
"""
import logging
import os
import sys

import atheris

logging.disable(logging.CRITICAL)

import qrspec.io._kernels  # noqa: F401  numba kernels: must not be instrumented
import qrspec.io.records  # noqa: F401
import qrspec.io.writer  # noqa: F401
import qrspec.photons  # noqa: F401

with atheris.instrument_imports(include=["qrspec.io.ptu_header", "qrspec.io.legacy",
                                         "qrspec.io.reader", "qrspec.io.layout",
                                         "qrspec.errors"]):
    import qrspec.io.legacy  # noqa: F401
    from qrspec.errors import QrspecError
    from qrspec.io.reader import iter_tttr, read_tttr, summarize_tttr

import inspect

import numpy as np

import qrspec.io.files
import qrspec.io.ptu_header
import qrspec.io.reader

# qrspec.io.{ptu_header,reader,records,files} were imported (uninstrumented) with the package:
# instrument their plain-Python functions and methods in place (never the numba kernels of
# qrspec.io._kernels)
for _mod in (qrspec.io.ptu_header, qrspec.io.reader, qrspec.io.records, qrspec.io.files):
    for _obj in list(vars(_mod).values()):
        if inspect.isfunction(_obj) and _obj.__module__ == _mod.__name__:
            atheris.instrument_func(_obj)
        elif inspect.isclass(_obj) and _obj.__module__ == _mod.__name__:
            for _m in vars(_obj).values():
                if inspect.isfunction(_m):
                    atheris.instrument_func(_m)

PATH = f"/tmp/fz/atheris_input_{os.getpid()}.bin"


def TestOneInput(data: bytes):
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        ph = read_tttr(PATH, chunk_records=64)
    except QrspecError:
        try:  # `qrspec info` (numpy summary) refuses what the reader refuses
            summarize_tttr(PATH, chunk_records=64)
        except QrspecError:
            return
        raise AssertionError("summarize_tttr accepted a file read_tttr refused") from None
    ts = ph.timestamps
    assert ts.dtype == np.int64 and ph.detectors.shape == ts.shape
    if ts.size:
        assert ts.min() >= 0, f"negative timestamp {ts.min()}"
        assert np.all(np.diff(ts) >= 0)
    if ph.nanotimes is not None:
        assert ph.nanotimes.shape == ts.shape
    n = sum(c.size for c in iter_tttr(PATH, chunk_records=7))
    assert n == ph.size, (n, ph.size)
    s = summarize_tttr(PATH, chunk_records=64)
    assert (s.n_photons, s.n_invalid_records, s.n_overflows) == (
        ph.size, ph.n_invalid_records, ph.n_overflows)


atheris.Setup(sys.argv, TestOneInput)
atheris.Fuzz()
